/* sqlite_service.c: the service's own tables in the SQLite back-end (store/service.h): settings,
 * browser sessions with their connections, the list of connections, and named leases (rows of
 * `leases`, migration 12, shared with the token refresh lease of sqlite_tokens.c). */
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "store/service.h"
#include "store/sqlite_internal.h"

static int sq_setting_get(struct hs_store *base, const char *key, char **value,
                          struct hs_error *err)
{
    if (!key)
        return hs_fail(err, HS_ERR_INVALID, "setting without a key");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "setting_get", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    char *v = NULL;
    rc = hs_sqlite_prep(&t, &st, "SELECT value FROM settings WHERE key = ?1", "reading setting",
                        err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, key);
        rc = hs_sqlite_one(&t, st, hs_sqlite_fill_text, &v, "reading setting", err);
        if (rc == HS_ERR_NOT_FOUND)
            hs_fail(err, HS_ERR_NOT_FOUND, "no setting '%s'", key);
    }
    rc = hs_sqlite_leave(&t, rc, err);
    if (rc)
        free(v);
    else
        *value = v;
    return rc;
}

static int sq_setting_put(struct hs_store *base, const char *key, const char *value,
                          struct hs_error *err)
{
    if (!key || !value)
        return hs_fail(err, HS_ERR_INVALID, "setting without a key or a value");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE_ALONE, "setting_put", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(&t, &st,
                        "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, " HS_SQL_NOW
                        ") ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
                        "updated_at = excluded.updated_at",
                        "storing setting", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, key);
        hs_sqlite_bind_text(st, 2, value);
        rc = hs_sqlite_run(&t, st, NULL, "storing setting", err);
    }
    return hs_sqlite_leave(&t, rc, err);
}

/* One statement of session_put: ?1 token hash, ?2 csrf, ?3 user, ?4 created, ?5 expires,
 * ?6 a connection key. */
static int session_stmt(struct sq_txn *t, const char *sql, const struct hs_session *ss,
                        const char *key, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(t, &st, sql, "storing session", err);
    if (rc)
        return rc;
    /* A statement without some of the parameters ignores their binding (SQLITE_RANGE). */
    hs_sqlite_bind_text(st, 1, ss->token_sha256);
    hs_sqlite_bind_text(st, 2, ss->csrf_token);
    hs_sqlite_bind_text(st, 3, ss->user);
    sqlite3_bind_int64(st, 4, ss->created_at);
    sqlite3_bind_int64(st, 5, ss->expires_at);
    hs_sqlite_bind_text(st, 6, key);
    return hs_sqlite_run(t, st, NULL, "storing session", err);
}

static int sq_session_put(struct hs_store *base, const struct hs_session *ss, struct hs_error *err)
{
    if (!ss || !ss->token_sha256 || !ss->csrf_token || ss->expires_at <= ss->created_at)
        return hs_fail(err, HS_ERR_INVALID, "session without a token, a csrf token or a future");
    for (size_t i = 0; i < ss->n_connections; i++)
        if (!ss->connections[i])
            return hs_fail(err, HS_ERR_INVALID, "session with a NULL connection");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE_ALONE, "session_put", err);
    if (rc)
        return rc;
    static const char *const sql[] = {
        "DELETE FROM sessions WHERE expires_at <= ?4",
        "INSERT INTO sessions (token_sha256, csrf_token, created_at, expires_at, user) "
        "VALUES (?1, ?2, ?4, ?5, ?3) ON CONFLICT(token_sha256) DO UPDATE SET "
        "csrf_token = excluded.csrf_token, created_at = excluded.created_at, "
        "expires_at = excluded.expires_at, user = excluded.user",
        "DELETE FROM session_connections WHERE token_sha256 = ?1",
    };
    for (size_t i = 0; i < sizeof sql / sizeof sql[0] && !rc; i++)
        rc = session_stmt(&t, sql[i], ss, NULL, err);
    for (size_t i = 0; i < ss->n_connections && !rc; i++)
        rc = session_stmt(&t,
                          "INSERT OR IGNORE INTO session_connections (token_sha256, "
                          "connection_key) VALUES (?1, ?6)",
                          ss, ss->connections[i], err);
    return hs_sqlite_leave(&t, rc, err);
}

static int session_fill(struct sq_txn *t, sqlite3_stmt *st, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    struct hs_session *v = row;
    v->token_sha256 = hs_sqlite_col_text(st, 0);
    v->csrf_token = hs_sqlite_col_text(st, 1);
    v->created_at = sqlite3_column_int64(st, 2);
    v->expires_at = sqlite3_column_int64(st, 3);
    v->user = hs_sqlite_col_text(st, 4);
    return HS_OK;
}

/* The session's connections, in the order given, into v. */
static int session_connections_read(struct sq_txn *t, struct hs_session *v, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(t, &st,
                            "SELECT connection_key FROM session_connections "
                            "WHERE token_sha256 = ?1 ORDER BY rowid",
                            "reading session", err);
    if (rc)
        return rc;
    hs_sqlite_bind_text(st, 1, v->token_sha256);
    void *keys = NULL;
    rc = hs_sqlite_rows(t, st, sizeof(char *), hs_sqlite_fill_text, hs_sqlite_clear_text, &keys,
                        &v->n_connections, "reading session", err);
    if (!rc)
        v->connections = keys;
    return rc;
}

static int sq_session_get(struct hs_store *base, const char *token_sha256, int64_t now_s,
                          struct hs_session *out, struct hs_error *err)
{
    if (!token_sha256)
        return hs_fail(err, HS_ERR_INVALID, "session lookup without a token hash");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "session_get", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    struct hs_session v = {0};
    rc = hs_sqlite_prep(&t, &st,
                        "SELECT token_sha256, csrf_token, created_at, expires_at, user "
                        "FROM sessions WHERE token_sha256 = ?1 AND expires_at > ?2",
                        "reading session", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, token_sha256);
        sqlite3_bind_int64(st, 2, now_s);
        rc = hs_sqlite_one(&t, st, session_fill, &v, "reading session", err);
        if (rc == HS_ERR_NOT_FOUND)
            hs_fail(err, HS_ERR_NOT_FOUND, "no such session, or it expired");
    }
    if (!rc)
        rc = session_connections_read(&t, &v, err);
    rc = hs_sqlite_leave(&t, rc, err);
    if (rc)
        hs_session_clear(&v);
    else
        *out = v;
    return rc;
}

static int connection_fill(struct sq_txn *t, sqlite3_stmt *st, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    struct hs_connection_row *r = row;
    r->key = hs_sqlite_col_text(st, 0);
    r->owner_id = sqlite3_column_int64(st, 1);
    r->owner_type = hs_sqlite_col_text(st, 2);
    r->connected_at = hs_sqlite_col_text(st, 3);
    r->has_token = sqlite3_column_int(st, 4) != 0;
    r->reconnect_required = sqlite3_column_int(st, 5) != 0;
    return HS_OK;
}

static void connection_clear(void *row)
{
    struct hs_connection_row *r = row;
    free(r->key);
    free(r->owner_type);
    free(r->connected_at);
}

static int sq_connections_list(struct hs_store *base, struct hs_connection_row **out, size_t *n,
                               struct hs_error *err)
{
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "connections_list", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    void *v = NULL;
    size_t len = 0;
    rc = hs_sqlite_prep(&t, &st,
                        "SELECT c.key, c.owner_id, c.owner_type, c.created_at, "
                        "t.connection_key IS NOT NULL, r.generation IS NOT NULL AND "
                        "r.generation = t.generation FROM connections c "
                        "LEFT JOIN oauth_tokens t ON t.connection_key = c.key "
                        "LEFT JOIN token_rejections r ON r.connection_key = c.key "
                        "ORDER BY c.created_at, c.key",
                        "listing connections", err);
    if (!rc)
        rc = hs_sqlite_rows(&t, st, sizeof(struct hs_connection_row), connection_fill,
                            connection_clear, &v, &len, "listing connections", err);
    rc = hs_sqlite_leave(&t, rc, err);
    if (rc) {
        hs_connection_rows_free(v, len);
        return rc;
    }
    *out = v;
    *n = len;
    return HS_OK;
}

/* ---- named leases ---- */

int hs_sqlite_lease_take(struct sq_txn *t, const char *name, int64_t now_ms, int64_t lease_ms,
                         int64_t *fence, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    *fence = 0;
    /* Taken when there is no row, or its lease ended (released: 0, or lapsed); else no row
     * comes back and the lease is another claim's. */
    int rc = hs_sqlite_prep(t, &st,
                            "INSERT INTO leases (name, fence, until_ms) VALUES (?1, 1, ?2 + ?3) "
                            "ON CONFLICT(name) DO UPDATE SET fence = fence + 1, "
                            "until_ms = excluded.until_ms WHERE leases.until_ms <= ?2 "
                            "RETURNING fence",
                            "claiming a lease", err);
    if (rc)
        return rc;
    hs_sqlite_bind_text(st, 1, name);
    sqlite3_bind_int64(st, 2, now_ms);
    sqlite3_bind_int64(st, 3, lease_ms);
    return hs_sqlite_int(t, st, fence, "claiming a lease", err);
}

int hs_sqlite_lease_move(struct sq_txn *t, const char *name, int64_t fence, int64_t until_ms,
                         bool *moved, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int changes = 0;
    *moved = false;
    int rc = hs_sqlite_prep(t, &st,
                            "UPDATE leases SET until_ms = ?3 WHERE name = ?1 AND fence = ?2 "
                            "AND until_ms <> 0",
                            "moving a lease", err);
    if (rc)
        return rc;
    hs_sqlite_bind_text(st, 1, name);
    sqlite3_bind_int64(st, 2, fence);
    sqlite3_bind_int64(st, 3, until_ms);
    rc = hs_sqlite_run(t, st, &changes, "moving a lease", err);
    *moved = rc == HS_OK && changes > 0;
    return rc;
}

static int sq_lease_claim(struct hs_store *base, const char *name, int64_t now_ms, int64_t lease_ms,
                          int64_t *fence, struct hs_error *err)
{
    if (!name || !fence || lease_ms <= 0)
        return hs_fail(err, HS_ERR_INVALID, "lease claim without a name or a duration");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE_ALONE, "lease_claim", err);
    if (rc)
        return rc;
    int64_t f = 0;
    rc = hs_sqlite_lease_take(&t, name, now_ms, lease_ms, &f, err);
    if (!rc && f == 0)
        rc = hs_fail(err, HS_ERR_BUSY, "lease '%s' is held by another claim", name);
    rc = hs_sqlite_leave(&t, rc, err);
    if (!rc)
        *fence = f;
    return rc;
}

static int lease_set(struct hs_store *base, const char *name, int64_t fence, int64_t until_ms,
                     const char *what, struct hs_error *err)
{
    if (!name)
        return hs_fail(err, HS_ERR_INVALID, "%s without a name", what);
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE_ALONE, what, err);
    if (rc)
        return rc;
    bool moved = false;
    rc = hs_sqlite_lease_move(&t, name, fence, until_ms, &moved, err);
    if (!rc && !moved)
        rc = hs_fail(err, HS_ERR_CONFLICT,
                     "lease '%s' is not this claim's any more (released, or claimed again)", name);
    return hs_sqlite_leave(&t, rc, err);
}

static int sq_lease_renew(struct hs_store *base, const char *name, int64_t fence, int64_t until_ms,
                          struct hs_error *err)
{
    return lease_set(base, name, fence, until_ms, "lease_renew", err);
}

static int sq_lease_release(struct hs_store *base, const char *name, int64_t fence,
                            struct hs_error *err)
{
    return lease_set(base, name, fence, 0, "lease_release", err);
}

const struct hs_service_ops hs_sqlite_service_ops = {
    .setting_get = sq_setting_get,
    .setting_put = sq_setting_put,
    .session_put = sq_session_put,
    .session_get = sq_session_get,
    .connections_list = sq_connections_list,
    .lease_claim = sq_lease_claim,
    .lease_renew = sq_lease_renew,
    .lease_release = sq_lease_release,
};
