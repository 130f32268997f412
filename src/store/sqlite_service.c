/* sqlite_service.c: the service's own tables in the SQLite back-end (store/service.h): settings,
 * browser sessions with their connections, the list of connections, named leases (rows of
 * `leases`, migration 12, shared with the token refresh lease of sqlite_tokens.c), and the state
 * the service's instances share: connect flows, image sources, callers' request counts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/str.h"
#include "store/migrations.h"
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

/* ---- connect flows (migration 14) ---- */

/* Forgets the expired flows, then makes room for f under lim (in t). */
static int flow_room(struct sq_txn *t, const struct hs_connect_flow *f,
                     const struct hs_flow_limits *lim, int64_t now_ms, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int64_t mine = 0, here = 0, all = 0;
    int rc = hs_sqlite_prep(t, &st, "DELETE FROM connect_flows WHERE expires_ms <= ?1",
                            "storing a connect flow", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, now_ms);
        rc = hs_sqlite_run(t, st, NULL, "storing a connect flow", err);
    }
    if (!rc)
        rc = hs_sqlite_prep(t, &st, "SELECT COUNT(*) FROM connect_flows WHERE browser_sha256 = ?1",
                            "storing a connect flow", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, f->browser_sha256);
        rc = hs_sqlite_int(t, st, &mine, "storing a connect flow", err);
    }
    if (!rc && mine >= lim->per_browser) {
        rc = hs_sqlite_prep(t, &st,
                            "DELETE FROM connect_flows WHERE id_sha256 = (SELECT id_sha256 FROM "
                            "connect_flows WHERE browser_sha256 = ?1 "
                            "ORDER BY expires_ms, id_sha256 LIMIT 1)",
                            "storing a connect flow", err);
        if (!rc) {
            hs_sqlite_bind_text(st, 1, f->browser_sha256);
            rc = hs_sqlite_run(t, st, NULL, "storing a connect flow", err);
        }
        return rc; /* the browser's own slot: neither the address nor the total grows */
    }
    if (!rc)
        rc = hs_sqlite_prep(t, &st, "SELECT COUNT(*) FROM connect_flows WHERE address = ?1",
                            "storing a connect flow", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, f->address);
        rc = hs_sqlite_int(t, st, &here, "storing a connect flow", err);
    }
    if (!rc && here >= lim->per_address)
        return hs_fail(err, HS_ERR_RATE_LIMITED, "too many connect flows from this address");
    if (!rc)
        rc = hs_sqlite_prep(t, &st, "SELECT COUNT(*) FROM connect_flows", "storing a connect flow",
                            err);
    if (!rc)
        rc = hs_sqlite_int(t, st, &all, "storing a connect flow", err);
    if (!rc && all >= lim->total)
        return hs_fail(err, HS_ERR_BUSY, "too many connect flows are pending");
    return rc;
}

static int flow_insert(struct sq_txn *t, const struct hs_connect_flow *f, struct hs_error *err)
{
    char aad_a[120], aad_r[120], *acc = NULL, *ref = NULL;
    hs_secret_flow_places(f->id_sha256, aad_a, aad_r, sizeof aad_a);
    int rc = hs_sqlite_seal(t->s, f->grant.access_token, aad_a, &acc, err);
    if (!rc)
        rc = hs_sqlite_seal(t->s, f->grant.refresh_token, aad_r, &ref, err);
    sqlite3_stmt *st = NULL;
    if (!rc)
        rc = hs_sqlite_prep(
            t, &st,
            "INSERT INTO connect_flows (id_sha256, stage, browser_sha256, address, connection, "
            "session, expires_ms, connection_key, old_owner, access_token, refresh_token, "
            "token_expires_at, owner_id, owner_type) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
            "?10, ?11, ?12, ?13, ?14)",
            "storing a connect flow", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, f->id_sha256);
        hs_sqlite_bind_text(st, 2, f->confirm ? "confirm" : "authorize");
        hs_sqlite_bind_text(st, 3, f->browser_sha256);
        hs_sqlite_bind_text(st, 4, f->address);
        hs_sqlite_bind_text(st, 5, f->connection);
        hs_sqlite_bind_text(st, 6, f->session);
        sqlite3_bind_int64(st, 7, f->expires_ms);
        hs_sqlite_bind_text(st, 8, f->key);
        sqlite3_bind_int64(st, 9, f->old_owner);
        hs_sqlite_bind_text(st, 10, acc);
        hs_sqlite_bind_text(st, 11, ref);
        sqlite3_bind_int64(st, 12, f->grant.expires_at);
        sqlite3_bind_int64(st, 13, f->grant.owner_id);
        hs_sqlite_bind_text(st, 14, f->grant.owner_type);
        rc = hs_sqlite_run(t, st, NULL, "storing a connect flow", err);
    }
    hs_secret_free(acc);
    hs_secret_free(ref);
    return rc;
}

static bool flow_valid(const struct hs_connect_flow *f, const struct hs_flow_limits *lim)
{
    return f && lim && strlen(f->id_sha256) == 64 && strlen(f->browser_sha256) == 64 &&
           (!f->confirm || (f->key && f->grant.access_token)) && lim->per_browser > 0 &&
           lim->per_address > 0 && lim->total > 0;
}

static int sq_flow_put(struct hs_store *base, const struct hs_connect_flow *f,
                       const struct hs_flow_limits *lim, int64_t now_ms, struct hs_error *err)
{
    if (!flow_valid(f, lim))
        return hs_fail(err, HS_ERR_INVALID, "connect flow without its hashes, grant or limits");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE_ALONE, "flow_put", err);
    if (rc)
        return rc;
    rc = flow_room(&t, f, lim, now_ms, err);
    if (!rc)
        rc = flow_insert(&t, f, err);
    return hs_sqlite_leave(&t, rc, err);
}

static int flow_fill(struct sq_txn *t, sqlite3_stmt *st, void *row, struct hs_error *err)
{
    struct hs_connect_flow *f = row;
    (void)hs_strlcpy(f->id_sha256, (const char *)sqlite3_column_text(st, 0), sizeof f->id_sha256);
    f->confirm = strcmp((const char *)sqlite3_column_text(st, 1), "confirm") == 0;
    (void)hs_strlcpy(f->browser_sha256, (const char *)sqlite3_column_text(st, 2),
                     sizeof f->browser_sha256);
    (void)hs_strlcpy(f->address, (const char *)sqlite3_column_text(st, 3), sizeof f->address);
    f->connection = hs_sqlite_col_text(st, 4);
    f->session = hs_sqlite_col_text(st, 5);
    f->expires_ms = sqlite3_column_int64(st, 6);
    f->key = hs_sqlite_col_text(st, 7);
    f->old_owner = sqlite3_column_int64(st, 8);
    f->grant.expires_at = sqlite3_column_int64(st, 11);
    f->grant.owner_id = sqlite3_column_int64(st, 12);
    f->grant.owner_type = hs_sqlite_col_text(st, 13);
    char aad_a[120], aad_r[120];
    hs_secret_flow_places(f->id_sha256, aad_a, aad_r, sizeof aad_a);
    int rc = hs_sqlite_unseal(t->s, (const char *)sqlite3_column_text(st, 9), aad_a,
                              &f->grant.access_token, err);
    if (!rc)
        rc = hs_sqlite_unseal(t->s, (const char *)sqlite3_column_text(st, 10), aad_r,
                              &f->grant.refresh_token, err);
    return rc;
}

static int sq_flow_take(struct hs_store *base, const char *id_sha256, const char *browser_sha256,
                        bool confirm, int64_t now_ms, struct hs_connect_flow *out,
                        struct hs_error *err)
{
    if (!id_sha256 || !browser_sha256)
        return hs_fail(err, HS_ERR_INVALID, "flow_take without its hashes");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "flow_take", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    struct hs_connect_flow f = {0};
    rc = hs_sqlite_prep(&t, &st,
                        "DELETE FROM connect_flows WHERE id_sha256 = ?1 AND browser_sha256 = ?2 "
                        "AND stage = ?3 AND expires_ms > ?4 RETURNING id_sha256, stage, "
                        "browser_sha256, address, connection, session, expires_ms, "
                        "connection_key, old_owner, access_token, refresh_token, "
                        "token_expires_at, owner_id, owner_type",
                        "taking a connect flow", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, id_sha256);
        hs_sqlite_bind_text(st, 2, browser_sha256);
        hs_sqlite_bind_text(st, 3, confirm ? "confirm" : "authorize");
        sqlite3_bind_int64(st, 4, now_ms);
        rc = hs_sqlite_one(&t, st, flow_fill, &f, "taking a connect flow", err);
        if (rc == HS_ERR_NOT_FOUND)
            hs_fail(err, HS_ERR_NOT_FOUND, "no such connect flow");
    }
    rc = hs_sqlite_leave(&t, rc, err);
    if (rc) {
        hs_connect_flow_clear(&f);
        return rc;
    }
    *out = f;
    return HS_OK;
}

/* ---- image sources (migration 14) ---- */

static int image_source_put(struct sq_txn *t, const struct hs_image_source *v, int64_t now_ms,
                            struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(
        t, &st,
        "INSERT INTO image_sources (image_id, connection_key, model_id, url, seen_ms) "
        "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (image_id) DO UPDATE SET "
        "connection_key = excluded.connection_key, model_id = excluded.model_id, "
        "url = excluded.url, seen_ms = excluded.seen_ms",
        "remembering an image", err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, v->image_id);
    hs_sqlite_bind_text(st, 2, v->connection_key);
    sqlite3_bind_int64(st, 3, v->model_id);
    hs_sqlite_bind_text(st, 4, v->url);
    sqlite3_bind_int64(st, 5, now_ms);
    return hs_sqlite_run(t, st, NULL, "remembering an image", err);
}

static int sq_image_sources_put(struct hs_store *base, const struct hs_image_source *v, size_t n,
                                int64_t now_ms, struct hs_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].image_id <= 0 || !v[i].connection_key || !v[i].url)
            return hs_fail(err, HS_ERR_INVALID, "image source without an id, connection or URL");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "image_sources_put", err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && !rc; i++)
        rc = image_source_put(&t, &v[i], now_ms, err);
    sqlite3_stmt *st = NULL;
    if (!rc)
        rc = hs_sqlite_prep(&t, &st,
                            "DELETE FROM image_sources WHERE seen_ms < (SELECT seen_ms FROM "
                            "image_sources ORDER BY seen_ms DESC LIMIT 1 OFFSET ?1)",
                            "remembering an image", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, HS_IMAGE_SOURCES_MAX - 1);
        rc = hs_sqlite_run(&t, st, NULL, "remembering an image", err);
    }
    return hs_sqlite_leave(&t, rc, err);
}

static int image_fill(struct sq_txn *t, sqlite3_stmt *st, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    struct hs_image_source *v = row;
    v->image_id = sqlite3_column_int64(st, 0);
    v->connection_key = hs_sqlite_col_text(st, 1);
    v->model_id = sqlite3_column_int64(st, 2);
    v->url = hs_sqlite_col_text(st, 3);
    return HS_OK;
}

static int sq_image_source_get(struct hs_store *base, int64_t image_id,
                               const struct hs_scope *scope, struct hs_image_source *out,
                               struct hs_error *err)
{
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "image_source_get", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    struct hs_image_source v = {0};
    char *keys = hs_sqlite_scope_json(scope);
    rc = hs_sqlite_prep(&t, &st,
                        "SELECT image_id, connection_key, model_id, url FROM image_sources "
                        "WHERE image_id = ?1 AND " HS_SQL_IN_SCOPE("connection_key", "2"),
                        "reading an image source", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, image_id);
        hs_sqlite_bind_text(st, 2, keys);
        rc = hs_sqlite_one(&t, st, image_fill, &v, "reading an image source", err);
        if (rc == HS_ERR_NOT_FOUND)
            hs_fail(err, HS_ERR_NOT_FOUND, "image %lld is unknown", (long long)image_id);
    }
    free(keys);
    rc = hs_sqlite_leave(&t, rc, err);
    if (rc) {
        hs_image_source_clear(&v);
        return rc;
    }
    *out = v;
    return HS_OK;
}

/* ---- callers' request counts (migration 14) ---- */

static int sq_caller_rate_take(struct hs_store *base, const char *caller, int64_t window_ms,
                               int limit, int want, int *granted, struct hs_error *err)
{
    if (!caller || limit <= 0 || want <= 0)
        return hs_fail(err, HS_ERR_INVALID, "caller rate without a caller, a limit or a want");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "caller_rate_take", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    int64_t used = 0;
    rc = hs_sqlite_prep(&t, &st, "DELETE FROM caller_rates WHERE window_ms < ?1",
                        "counting a caller's requests", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, window_ms);
        rc = hs_sqlite_run(&t, st, NULL, "counting a caller's requests", err);
    }
    if (!rc)
        rc = hs_sqlite_prep(&t, &st,
                            "SELECT used FROM caller_rates WHERE caller = ?1 AND window_ms = ?2",
                            "counting a caller's requests", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, caller);
        sqlite3_bind_int64(st, 2, window_ms);
        rc = hs_sqlite_int(&t, st, &used, "counting a caller's requests", err);
    }
    int64_t give = limit - used < want ? limit - used : want;
    if (give < 0)
        give = 0;
    if (!rc && give > 0)
        rc =
            hs_sqlite_prep(&t, &st,
                           "INSERT INTO caller_rates (caller, window_ms, used) VALUES (?1, ?2, ?3) "
                           "ON CONFLICT (caller, window_ms) DO UPDATE SET used = used + ?3",
                           "counting a caller's requests", err);
    if (!rc && give > 0) {
        hs_sqlite_bind_text(st, 1, caller);
        sqlite3_bind_int64(st, 2, window_ms);
        sqlite3_bind_int64(st, 3, give);
        rc = hs_sqlite_run(&t, st, NULL, "counting a caller's requests", err);
    }
    rc = hs_sqlite_leave(&t, rc, err);
    if (!rc)
        *granted = (int)give;
    return rc;
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

static int sq_schema_status(struct hs_store *base, int *have, int *want, struct hs_error *err)
{
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "schema_status", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    int64_t v = 0;
    rc = hs_sqlite_prep(&t, &st, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                        "reading the schema version", err);
    if (!rc)
        rc = hs_sqlite_int(&t, st, &v, "reading the schema version", err);
    rc = hs_sqlite_leave(&t, rc, err);
    if (rc)
        return rc;
    *have = (int)v;
    *want = hs_sqlite_migrations[hs_sqlite_migrations_count - 1].version;
    return HS_OK;
}

static int sq_session_delete(struct hs_store *base, const char *token_sha256, struct hs_error *err)
{
    if (!token_sha256)
        return hs_fail(err, HS_ERR_INVALID, "session_delete without a token hash");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE_ALONE, "session_delete", err);
    if (rc)
        return rc;
    static const char *const sql[] = {
        "DELETE FROM session_connections WHERE token_sha256 = ?1",
        "DELETE FROM sessions WHERE token_sha256 = ?1",
    };
    int changes = 0;
    for (size_t i = 0; i < sizeof sql / sizeof sql[0] && !rc; i++) {
        sqlite3_stmt *st = NULL;
        rc = hs_sqlite_prep(&t, &st, sql[i], "deleting session", err);
        if (!rc) {
            hs_sqlite_bind_text(st, 1, token_sha256);
            rc = hs_sqlite_run(&t, st, &changes, "deleting session", err);
        }
    }
    if (!rc && changes == 0)
        rc = hs_fail(err, HS_ERR_NOT_FOUND, "no such session");
    return hs_sqlite_leave(&t, rc, err);
}

static int sq_api_key_put(struct hs_store *base, const char *name, const char *key_sha256,
                          int64_t created_at, struct hs_error *err)
{
    if (!name || !*name || !key_sha256)
        return hs_fail(err, HS_ERR_INVALID, "API key without a name or a hash");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE_ALONE, "api_key_put", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(&t, &st,
                        "INSERT INTO api_keys (name, key_sha256, created_at) VALUES (?1, ?2, ?3)",
                        "storing API key", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, name);
        hs_sqlite_bind_text(st, 2, key_sha256);
        sqlite3_bind_int64(st, 3, created_at);
        rc = hs_sqlite_run(&t, st, NULL, "storing API key", err);
        if (rc == HS_ERR_CONFLICT)
            hs_fail(err, HS_ERR_CONFLICT, "an API key named '%s' exists already", name);
    }
    return hs_sqlite_leave(&t, rc, err);
}

static int api_key_fill(struct sq_txn *t, sqlite3_stmt *st, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    struct hs_api_key *k = row;
    k->name = hs_sqlite_col_text(st, 0);
    k->key_sha256 = hs_sqlite_col_text(st, 1);
    k->created_at = sqlite3_column_int64(st, 2);
    k->last_used_at = sqlite3_column_int64(st, 3);
    return HS_OK;
}

static void api_key_clear(void *row)
{
    struct hs_api_key *k = row;
    free(k->name);
    free(k->key_sha256);
}

static int sq_api_keys_list(struct hs_store *base, struct hs_api_key **out, size_t *n,
                            struct hs_error *err)
{
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "api_keys_list", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    void *v = NULL;
    size_t len = 0;
    rc = hs_sqlite_prep(&t, &st,
                        "SELECT name, key_sha256, created_at, COALESCE(last_used_at, 0) "
                        "FROM api_keys ORDER BY name",
                        "listing API keys", err);
    if (!rc)
        rc = hs_sqlite_rows(&t, st, sizeof(struct hs_api_key), api_key_fill, api_key_clear, &v,
                            &len, "listing API keys", err);
    rc = hs_sqlite_leave(&t, rc, err);
    if (rc) {
        hs_api_keys_free(v, len);
        return rc;
    }
    *out = v;
    *n = len;
    return HS_OK;
}

/* One statement on the key `name` (?1) and a time (?2, ignored by a statement without it), alone
 * in a write transaction; *changes gets the rows it changed. */
static int api_key_stmt(struct hs_store *base, const char *sql, const char *name, int64_t at_s,
                        int *changes, const char *what, struct hs_error *err)
{
    if (!name)
        return hs_fail(err, HS_ERR_INVALID, "%s without a name", what);
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE_ALONE, what, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(&t, &st, sql, what, err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, name);
        sqlite3_bind_int64(st, 2, at_s);
        rc = hs_sqlite_run(&t, st, changes, what, err);
    }
    return hs_sqlite_leave(&t, rc, err);
}

static int sq_api_key_delete(struct hs_store *base, const char *name, struct hs_error *err)
{
    int changes = 0;
    int rc = api_key_stmt(base, "DELETE FROM api_keys WHERE name = ?1", name, 0, &changes,
                          "api_key_delete", err);
    if (!rc && changes == 0)
        rc = hs_fail(err, HS_ERR_NOT_FOUND, "no API key named '%s'", name);
    return rc;
}

static int sq_api_key_used(struct hs_store *base, const char *name, int64_t at_s,
                           struct hs_error *err)
{
    return api_key_stmt(base,
                        "UPDATE api_keys SET last_used_at = ?2 WHERE name = ?1 AND "
                        "(last_used_at IS NULL OR last_used_at <= ?2 - 60)",
                        name, at_s, NULL, "api_key_used", err);
}

const struct hs_service_ops hs_sqlite_service_ops = {
    .setting_get = sq_setting_get,
    .setting_put = sq_setting_put,
    .session_put = sq_session_put,
    .session_get = sq_session_get,
    .session_delete = sq_session_delete,
    .connections_list = sq_connections_list,
    .flow_put = sq_flow_put,
    .flow_take = sq_flow_take,
    .image_sources_put = sq_image_sources_put,
    .image_source_get = sq_image_source_get,
    .caller_rate_take = sq_caller_rate_take,
    .lease_claim = sq_lease_claim,
    .lease_renew = sq_lease_renew,
    .lease_release = sq_lease_release,
    .schema_status = sq_schema_status,
    .api_key_put = sq_api_key_put,
    .api_keys_list = sq_api_keys_list,
    .api_key_delete = sq_api_key_delete,
    .api_key_used = sq_api_key_used,
    .connection_delete = hs_sqlite_connection_delete,
};
