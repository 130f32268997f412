/* store_sqlite.c: the SQLite back-end of the storage interface (the default).
 *
 * One connection per store object, WAL mode, synchronous=FULL so that a committed row survives a
 * power cut. A mutex serialises the threads that share a store; a token refresh holds a
 * BEGIN IMMEDIATE transaction (the database's write lock) so that a refresh in another process
 * waits for it and then re-reads the rotated pair. The sync records (sqlite_records.c) use the
 * same lock and the same kind of transaction. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "store/migrations.h"
#include "store/sqlite_internal.h"
#include "store/store.h"

/* A refresh waits at most this long for another process's refresh (HTTP timeout + margin). */
#define BUSY_TIMEOUT_MS 90000

/* The one place SQLite result codes become hs_err (hs_sqlite_fail and hs_sqlite_exec). */
static hs_err code_of(int rc)
{
    switch (rc & 0xff) { /* the primary code of an extended one */
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return HS_ERR_BUSY;
    case SQLITE_CONSTRAINT:
        return HS_ERR_CONFLICT;
    default:
        return HS_ERR_DB;
    }
}

int hs_sqlite_fail(struct sqlite_store *s, int rc, struct hs_error *err, const char *what)
{
    return hs_fail(err, code_of(rc), "%s: %s", what,
                   s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
}

int hs_sqlite_exec(struct sqlite_store *s, const char *sql, struct hs_error *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        int r = hs_fail(err, code_of(rc), "%s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return r;
    }
    return HS_OK;
}

/* The address of a thread-local object: unique among live threads, never 0. */
static uintptr_t thread_tag(void)
{
    static _Thread_local char tag;
    return (uintptr_t)&tag;
}

void hs_sqlite_lock(struct sqlite_store *s)
{
    pthread_mutex_lock(&s->lock);
    atomic_store(&s->holder, thread_tag());
}

void hs_sqlite_unlock(struct sqlite_store *s)
{
    atomic_store(&s->holder, 0);
    pthread_mutex_unlock(&s->lock);
}

bool hs_sqlite_held_by_me(struct sqlite_store *s)
{
    return atomic_load(&s->holder) == thread_tag();
}

/* Token ops take the lock themselves: called by a thread that already holds it (inside a records
 * transaction or a refresh) they would wait for themselves forever. */
static int refuse_nested(struct sqlite_store *s, struct hs_error *err, const char *op)
{
    if (hs_sqlite_held_by_me(s))
        return hs_fail(err, HS_ERR_INTERNAL, "%s called inside a store transaction", op);
    return HS_OK;
}

static int schema_version(struct sqlite_store *s, int *out, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "SELECT COALESCE(MAX(version),0) FROM schema_migrations", -1,
                                &st, NULL);
    if (rc != SQLITE_OK)
        return hs_sqlite_fail(s, rc, err, "reading schema version");
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        return hs_sqlite_fail(s, rc, err, "reading schema version");
    }
    *out = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return HS_OK;
}

static int migrate(struct sqlite_store *s, struct hs_error *err)
{
    int rc =
        hs_sqlite_exec(s,
                       "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                       "name TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT "
                       "(strftime('%Y-%m-%dT%H:%M:%fZ','now')))",
                       err);
    if (rc)
        return rc;
    int have = 0;
    if ((rc = schema_version(s, &have, err)))
        return rc;
    int latest = hs_sqlite_migrations[hs_sqlite_migrations_count - 1].version;
    if (have > latest)
        return hs_fail(err, HS_ERR_DB,
                       "database schema version %d is newer than this hoversync (%d): upgrade "
                       "hoversync",
                       have, latest);
    for (int i = 0; i < hs_sqlite_migrations_count; i++) {
        const struct hs_migration *m = &hs_sqlite_migrations[i];
        if (m->version <= have)
            continue;
        if ((rc = hs_sqlite_exec(s, "BEGIN IMMEDIATE", err)))
            return rc;
        rc = hs_sqlite_exec(s, m->sql, err);
        if (!rc) {
            sqlite3_stmt *st = NULL;
            int src = sqlite3_prepare_v2(
                s->db, "INSERT INTO schema_migrations(version, name) VALUES (?, ?)", -1, &st, NULL);
            if (src == SQLITE_OK) {
                sqlite3_bind_int(st, 1, m->version);
                sqlite3_bind_text(st, 2, m->name, -1, SQLITE_STATIC);
                src = sqlite3_step(st);
            }
            sqlite3_finalize(st);
            if (src != SQLITE_DONE)
                rc = hs_sqlite_fail(s, src, err, "recording migration");
        }
        if (rc) {
            hs_sqlite_exec(s, "ROLLBACK", NULL);
            return rc;
        }
        if ((rc = hs_sqlite_exec(s, "COMMIT", err)))
            return rc;
        hs_info("store=sqlite msg=\"applied migration\" version=%d name=\"%s\"", m->version,
                m->name);
    }
    return HS_OK;
}

char *hs_sqlite_col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? hs_strdup((const char *)t) : NULL;
}

/* ---- statement helpers shared by the sqlite_*.c files ---- */

int hs_sqlite_prep(struct sqlite_store *s, sqlite3_stmt **st, const char *sql, const char *what,
                   struct hs_error *err)
{
    int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(*st);
        *st = NULL;
        return hs_sqlite_fail(s, rc, err, what);
    }
    return HS_OK;
}

int hs_sqlite_run(struct sqlite_store *s, sqlite3_stmt *st, int *changes, const char *what,
                  struct hs_error *err)
{
    int rc = sqlite3_step(st);
    int ret = rc == SQLITE_DONE ? HS_OK : hs_sqlite_fail(s, rc, err, what);
    if (changes)
        *changes = ret ? 0 : sqlite3_changes(s->db);
    sqlite3_finalize(st);
    return ret;
}

void hs_sqlite_bind_text(sqlite3_stmt *st, int i, const char *v)
{
    sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC); /* NULL binds SQL NULL */
}

void hs_sqlite_bind_id(sqlite3_stmt *st, int i, int64_t v)
{
    if (v > 0)
        sqlite3_bind_int64(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

char *hs_sqlite_scope_json(const struct hs_scope *scope)
{
    if (!scope)
        return NULL;
    json_t *a = json_array();
    for (size_t i = 0; i < scope->n; i++)
        if (scope->keys[i])
            json_array_append_new(a, json_string(scope->keys[i]));
    char *text = hs_json_dump(a);
    json_decref(a);
    return text;
}

/* ---- secrets at rest (secrets.h) ---- */

int hs_sqlite_seal(struct sqlite_store *s, const char *clear, const char *aad, char **out,
                   struct hs_error *err)
{
    if (!s->key) {
        *out = clear ? hs_strdup(clear) : NULL;
        return HS_OK;
    }
    return hs_secret_seal(s->key, clear, aad, out, err);
}

int hs_sqlite_unseal(struct sqlite_store *s, const char *stored, const char *aad, char **out,
                     struct hs_error *err)
{
    return hs_secret_open(s->key, stored, aad, out, err);
}

/* Reads the pair; the caller holds s->lock. */
static int token_read(struct sqlite_store *s, const char *key, struct hs_token *out,
                      struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        s->db,
        "SELECT t.access_token, t.refresh_token, t.expires_at, t.generation, c.owner_id, "
        "c.owner_type FROM oauth_tokens t JOIN connections c ON c.key = t.connection_key "
        "WHERE t.connection_key = ?",
        -1, &st, NULL);
    if (rc != SQLITE_OK)
        return hs_sqlite_fail(s, rc, err, "reading token");
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    int ret;
    if (rc == SQLITE_ROW) {
        struct hs_token t = {0};
        char aad_a[300], aad_r[300];
        hs_sqlite_token_places(key, aad_a, aad_r, sizeof aad_a);
        ret = hs_sqlite_unseal(s, (const char *)sqlite3_column_text(st, 0), aad_a, &t.access_token,
                               err);
        if (!ret)
            ret = hs_sqlite_unseal(s, (const char *)sqlite3_column_text(st, 1), aad_r,
                                   &t.refresh_token, err);
        t.expires_at = sqlite3_column_int64(st, 2);
        t.generation = sqlite3_column_int64(st, 3);
        t.owner_id = sqlite3_column_int64(st, 4);
        t.owner_type = hs_sqlite_col_text(st, 5);
        if (ret)
            hs_token_clear(&t);
        else
            *out = t;
    } else if (rc == SQLITE_DONE) {
        ret = hs_fail(err, HS_ERR_NOT_FOUND, "no token stored for connection '%s'", key);
    } else {
        ret = hs_sqlite_fail(s, rc, err, "reading token");
    }
    sqlite3_finalize(st);
    return ret;
}

/* Writes the pair; the caller holds s->lock and an open transaction. */
static int token_write(struct sqlite_store *s, const char *key, const struct hs_token *t,
                       struct hs_error *err)
{
    static const char *const sql[] = {
        "INSERT INTO connections(key, owner_id, owner_type) VALUES (?1, NULLIF(?2, 0), ?3) "
        "ON CONFLICT(key) DO UPDATE SET owner_id = COALESCE(excluded.owner_id, owner_id), "
        "owner_type = COALESCE(excluded.owner_type, owner_type), "
        "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')",
        "INSERT INTO oauth_tokens(connection_key, access_token, refresh_token, expires_at) "
        "VALUES (?1, ?4, ?5, ?6) ON CONFLICT(connection_key) DO UPDATE SET "
        "access_token = excluded.access_token, refresh_token = excluded.refresh_token, "
        "expires_at = excluded.expires_at, generation = generation + 1, "
        "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')",
    };
    char aad_a[300], aad_r[300], *access = NULL, *refresh = NULL;
    hs_sqlite_token_places(key, aad_a, aad_r, sizeof aad_a);
    int ret = hs_sqlite_seal(s, t->access_token, aad_a, &access, err);
    if (!ret)
        ret = hs_sqlite_seal(s, t->refresh_token, aad_r, &refresh, err);
    for (size_t i = 0; !ret && i < sizeof sql / sizeof sql[0]; i++) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->db, sql[i], -1, &st, NULL);
        if (rc != SQLITE_OK) {
            ret = hs_sqlite_fail(s, rc, err, "saving token");
            break;
        }
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, t->owner_id);
        sqlite3_bind_text(st, 3, t->owner_type, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, access, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, refresh, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, t->expires_at);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
            ret = hs_sqlite_fail(s, rc, err, "saving token");
    }
    hs_secret_free(access);
    hs_secret_free(refresh);
    return ret;
}

static int sq_token_load(struct hs_store *base, const char *key, struct hs_token *out,
                         struct hs_error *err)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    int rc = refuse_nested(s, err, "token_load");
    if (rc)
        return rc;
    hs_sqlite_lock(s);
    rc = token_read(s, key, out, err);
    hs_sqlite_unlock(s);
    return rc;
}

static int sq_token_save(struct hs_store *base, const char *key, const struct hs_token *t,
                         struct hs_error *err)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    if (!t->access_token)
        return hs_fail(err, HS_ERR_INVALID, "token pair without an access token");
    int rc = refuse_nested(s, err, "token_save");
    if (rc)
        return rc;
    hs_sqlite_lock(s);
    rc = hs_sqlite_exec(s, "BEGIN IMMEDIATE", err);
    if (!rc) {
        rc = token_write(s, key, t, err);
        if (!rc)
            rc = hs_sqlite_exec(s, "COMMIT", err);
        if (rc)
            hs_sqlite_exec(s, "ROLLBACK", NULL);
    }
    hs_sqlite_unlock(s);
    return rc;
}

static int sq_refresh_begin(struct hs_store *base, const char *key, struct hs_token *current,
                            struct hs_error *err)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    int rc = refuse_nested(s, err, "token_refresh_begin");
    if (rc)
        return rc;
    hs_sqlite_lock(s);
    rc = hs_sqlite_exec(s, "BEGIN IMMEDIATE", err);
    if (rc) {
        hs_sqlite_unlock(s);
        return rc;
    }
    s->txn = SQ_TXN_REFRESH;
    rc = token_read(s, key, current, err);
    if (rc && rc != HS_ERR_NOT_FOUND) {
        hs_sqlite_exec(s, "ROLLBACK", NULL);
        s->txn = SQ_TXN_NONE;
        hs_sqlite_unlock(s);
    }
    /* On success and on NOT_FOUND the lock stays held until refresh_end. */
    return rc;
}

static int sq_refresh_end(struct hs_store *base, const char *key, const struct hs_token *rotated,
                          struct hs_error *err)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    /* Only the thread that began the refresh may end it (and release its lock). */
    if (!hs_sqlite_held_by_me(s) || s->txn != SQ_TXN_REFRESH)
        return hs_fail(err, HS_ERR_INTERNAL, "token_refresh_end without begin");
    int rc = HS_OK;
    if (rotated) {
        rc = token_write(s, key, rotated, err);
        if (!rc)
            rc = hs_sqlite_exec(s, "COMMIT", err);
        if (rc)
            hs_sqlite_exec(s, "ROLLBACK", NULL);
    } else {
        hs_sqlite_exec(s, "ROLLBACK", NULL);
    }
    s->txn = SQ_TXN_NONE;
    hs_sqlite_unlock(s);
    return rc;
}

/* ---- the service's tables (settings, sessions, connections) ----
 * Each op is one statement (or one short transaction) under the store lock, like the token ops. */

static int svc_prepare(struct sqlite_store *s, const char *sql, sqlite3_stmt **st, const char *what,
                       struct hs_error *err)
{
    int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(*st);
        *st = NULL;
        return hs_sqlite_fail(s, rc, err, what);
    }
    return HS_OK;
}

static int sq_setting_get(struct hs_store *base, const char *key, char **value,
                          struct hs_error *err)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    if (!key)
        return hs_fail(err, HS_ERR_INVALID, "setting without a key");
    int rc = refuse_nested(s, err, "setting_get");
    if (rc)
        return rc;
    hs_sqlite_lock(s);
    sqlite3_stmt *st = NULL;
    char *v = NULL;
    rc = svc_prepare(s, "SELECT value FROM settings WHERE key = ?1", &st, "reading setting", err);
    if (!rc) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW)
            v = hs_sqlite_col_text(st, 0);
        else if (src == SQLITE_DONE)
            rc = hs_fail(err, HS_ERR_NOT_FOUND, "no setting '%s'", key);
        else
            rc = hs_sqlite_fail(s, src, err, "reading setting");
    }
    sqlite3_finalize(st);
    hs_sqlite_unlock(s);
    if (!rc)
        *value = v;
    return rc;
}

static int sq_setting_put(struct hs_store *base, const char *key, const char *value,
                          struct hs_error *err)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    if (!key || !value)
        return hs_fail(err, HS_ERR_INVALID, "setting without a key or a value");
    int rc = refuse_nested(s, err, "setting_put");
    if (rc)
        return rc;
    hs_sqlite_lock(s);
    sqlite3_stmt *st = NULL;
    rc = svc_prepare(s,
                     "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, " HS_SQL_NOW
                     ") ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
                     "updated_at = excluded.updated_at",
                     &st, "storing setting", err);
    if (!rc) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
        int src = sqlite3_step(st);
        if (src != SQLITE_DONE)
            rc = hs_sqlite_fail(s, src, err, "storing setting");
    }
    sqlite3_finalize(st);
    hs_sqlite_unlock(s);
    return rc;
}

/* One statement of session_put: ?1 token hash, ?2 csrf, ?3 user, ?4 created, ?5 expires,
 * ?6 a connection key. */
static int session_stmt(struct sqlite_store *s, const char *sql, const struct hs_session *ss,
                        const char *key, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = svc_prepare(s, sql, &st, "storing session", err);
    if (rc)
        return rc;
    /* A statement without some of the parameters ignores their binding (SQLITE_RANGE). */
    sqlite3_bind_text(st, 1, ss->token_sha256, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, ss->csrf_token, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, ss->user, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, ss->created_at);
    sqlite3_bind_int64(st, 5, ss->expires_at);
    sqlite3_bind_text(st, 6, key, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    if (src != SQLITE_DONE)
        rc = hs_sqlite_fail(s, src, err, "storing session");
    sqlite3_finalize(st);
    return rc;
}

static int sq_session_put(struct hs_store *base, const struct hs_session *ss, struct hs_error *err)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    if (!ss || !ss->token_sha256 || !ss->csrf_token || ss->expires_at <= ss->created_at)
        return hs_fail(err, HS_ERR_INVALID, "session without a token, a csrf token or a future");
    for (size_t i = 0; i < ss->n_connections; i++)
        if (!ss->connections[i])
            return hs_fail(err, HS_ERR_INVALID, "session with a NULL connection");
    int rc = refuse_nested(s, err, "session_put");
    if (rc)
        return rc;
    hs_sqlite_lock(s);
    rc = hs_sqlite_exec(s, "BEGIN IMMEDIATE", err);
    if (rc) {
        hs_sqlite_unlock(s);
        return rc;
    }
    static const char *const sql[] = {
        "DELETE FROM sessions WHERE expires_at <= ?4",
        "INSERT INTO sessions (token_sha256, csrf_token, created_at, expires_at, user) "
        "VALUES (?1, ?2, ?4, ?5, ?3) ON CONFLICT(token_sha256) DO UPDATE SET "
        "csrf_token = excluded.csrf_token, created_at = excluded.created_at, "
        "expires_at = excluded.expires_at, user = excluded.user",
        "DELETE FROM session_connections WHERE token_sha256 = ?1",
    };
    for (size_t i = 0; i < sizeof sql / sizeof sql[0] && !rc; i++)
        rc = session_stmt(s, sql[i], ss, NULL, err);
    for (size_t i = 0; i < ss->n_connections && !rc; i++)
        rc = session_stmt(s,
                          "INSERT OR IGNORE INTO session_connections (token_sha256, "
                          "connection_key) VALUES (?1, ?6)",
                          ss, ss->connections[i], err);
    if (!rc)
        rc = hs_sqlite_exec(s, "COMMIT", err);
    if (rc)
        hs_sqlite_exec(s, "ROLLBACK", NULL);
    hs_sqlite_unlock(s);
    return rc;
}

/* The session's connections, in the order given, into v (under the store lock). */
static int session_connections_read(struct sqlite_store *s, struct hs_session *v,
                                    struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = svc_prepare(s,
                         "SELECT connection_key FROM session_connections WHERE token_sha256 = ?1 "
                         "ORDER BY rowid",
                         &st, "reading session", err);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, v->token_sha256, -1, SQLITE_STATIC);
    size_t cap = 0;
    for (;;) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = hs_sqlite_fail(s, src, err, "reading session");
            break;
        }
        if (v->n_connections == cap) {
            cap = cap ? cap * 2 : 4;
            v->connections = hs_realloc(v->connections, cap * sizeof *v->connections);
        }
        v->connections[v->n_connections++] = hs_sqlite_col_text(st, 0);
    }
    sqlite3_finalize(st);
    return rc;
}

static int sq_session_get(struct hs_store *base, const char *token_sha256, int64_t now_s,
                          struct hs_session *out, struct hs_error *err)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    if (!token_sha256)
        return hs_fail(err, HS_ERR_INVALID, "session lookup without a token hash");
    int rc = refuse_nested(s, err, "session_get");
    if (rc)
        return rc;
    hs_sqlite_lock(s);
    sqlite3_stmt *st = NULL;
    struct hs_session v = {0};
    rc = svc_prepare(s,
                     "SELECT token_sha256, csrf_token, created_at, expires_at, user FROM sessions "
                     "WHERE token_sha256 = ?1 AND expires_at > ?2",
                     &st, "reading session", err);
    if (!rc) {
        sqlite3_bind_text(st, 1, token_sha256, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, now_s);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            v.token_sha256 = hs_sqlite_col_text(st, 0);
            v.csrf_token = hs_sqlite_col_text(st, 1);
            v.created_at = sqlite3_column_int64(st, 2);
            v.expires_at = sqlite3_column_int64(st, 3);
            v.user = hs_sqlite_col_text(st, 4);
        } else if (src == SQLITE_DONE) {
            rc = hs_fail(err, HS_ERR_NOT_FOUND, "no such session, or it expired");
        } else {
            rc = hs_sqlite_fail(s, src, err, "reading session");
        }
    }
    sqlite3_finalize(st);
    if (!rc)
        rc = session_connections_read(s, &v, err);
    hs_sqlite_unlock(s);
    if (rc)
        hs_session_clear(&v);
    else
        *out = v;
    return rc;
}

static int sq_connections_list(struct hs_store *base, struct hs_connection_row **out, size_t *n,
                               struct hs_error *err)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    int rc = refuse_nested(s, err, "connections_list");
    if (rc)
        return rc;
    hs_sqlite_lock(s);
    sqlite3_stmt *st = NULL;
    struct hs_connection_row *v = NULL;
    size_t len = 0, cap = 0;
    rc = svc_prepare(s,
                     "SELECT c.key, c.owner_id, c.owner_type, c.created_at, "
                     "t.connection_key IS NOT NULL FROM connections c "
                     "LEFT JOIN oauth_tokens t ON t.connection_key = c.key "
                     "ORDER BY c.created_at, c.key",
                     &st, "listing connections", err);
    while (!rc) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = hs_sqlite_fail(s, src, err, "listing connections");
            break;
        }
        if (len == cap) {
            cap = cap ? cap * 2 : 8;
            v = hs_realloc(v, cap * sizeof *v);
        }
        struct hs_connection_row *r = &v[len++];
        r->key = hs_sqlite_col_text(st, 0);
        r->owner_id = sqlite3_column_int64(st, 1);
        r->owner_type = hs_sqlite_col_text(st, 2);
        r->connected_at = hs_sqlite_col_text(st, 3);
        r->has_token = sqlite3_column_int(st, 4) != 0;
    }
    sqlite3_finalize(st);
    hs_sqlite_unlock(s);
    if (rc) {
        hs_connection_rows_free(v, len);
        return rc;
    }
    *out = v;
    *n = len;
    return HS_OK;
}

static void sq_close(struct hs_store *base)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    hs_secret_key_clear(s->key);
    free(s->key);
    sqlite3_close_v2(s->db);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->gc_lock);
    pthread_cond_destroy(&s->gc_done);
    free(s);
}

static const struct hs_store_ops sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
    .token_load = sq_token_load,
    .token_save = sq_token_save,
    .token_refresh_begin = sq_refresh_begin,
    .token_refresh_end = sq_refresh_end,
    .begin = hs_sqlite_begin,
    .commit = hs_sqlite_commit,
    .rollback = hs_sqlite_rollback,
    .job_upsert = hs_sqlite_job_upsert,
    .model_get = hs_sqlite_model_get,
    .model_mark_synced = hs_sqlite_model_mark_synced,
    .artifact_get = hs_sqlite_artifact_get,
    .artifact_put = hs_sqlite_artifact_put,
    .artifact_each = hs_sqlite_artifact_each,
    .measurements_put = hs_sqlite_measurements_put,
    .selection_put = hs_sqlite_selection_put,
    .selections_open = hs_sqlite_selections_open,
    .run_begin = hs_sqlite_run_begin,
    .run_model_result = hs_sqlite_run_model_result,
    .run_end = hs_sqlite_run_end,
    .export_since = hs_sqlite_export_since,
    .checkpoint_get = hs_sqlite_checkpoint_get,
    .checkpoint_put = hs_sqlite_checkpoint_put,
    .setting_get = sq_setting_get,
    .setting_put = sq_setting_put,
    .session_put = sq_session_put,
    .session_get = sq_session_get,
    .connections_list = sq_connections_list,
    .artifact_by_sha = hs_sqlite_artifact_by_sha,
    .artifact_by_image = hs_sqlite_artifact_by_image,
    .job_models_status = hs_sqlite_job_models_status,
    .jobs_search_scoped = hs_sqlite_jobs_search_scoped,
    .export_since_scoped = hs_sqlite_export_since_scoped,
    .artifact_by_sha_scoped = hs_sqlite_artifact_by_sha_scoped,
    .artifact_by_image_scoped = hs_sqlite_artifact_by_image_scoped,
    .jobs_search = hs_sqlite_jobs_search,
    .events_last_accepted = hs_sqlite_events_last_accepted,
    .job_synced_seq = hs_sqlite_job_synced_seq,
    .webhook_put = hs_sqlite_webhook_put,
    .webhook_get = hs_sqlite_webhook_get,
    .webhook_list = hs_sqlite_webhook_list,
    .webhook_delete = hs_sqlite_webhook_delete,
    .event_accept = hs_sqlite_event_accept,
    .events_unverified = hs_sqlite_events_unverified,
    .event_set_status = hs_sqlite_event_set_status,
    .events_processed = hs_sqlite_events_processed,
    .webhook_set_local_error = hs_sqlite_webhook_set_local_error,
    .webhook_access_get = hs_sqlite_webhook_access_get,
    .webhook_access_put = hs_sqlite_webhook_access_put,
    .events_unverified_trim = hs_sqlite_events_unverified_trim,
    .verification_add = hs_sqlite_verification_add,
    .verification_claim = hs_sqlite_verification_claim,
    .verification_finish = hs_sqlite_verification_finish,
    .outbox_add = hs_sqlite_outbox_add,
    .outbox_next = hs_sqlite_outbox_next,
    .outbox_delivered = hs_sqlite_outbox_delivered,
    .outbox_retry = hs_sqlite_outbox_retry,
    .outbox_depth = hs_sqlite_outbox_depth,
    .policy_get = hs_sqlite_policy_get,
    .policy_put = hs_sqlite_policy_put,
    .work_schedule = hs_sqlite_work_schedule,
    .work_claim = hs_sqlite_work_claim,
    .work_fence = hs_sqlite_work_fence,
    .work_renew = hs_sqlite_work_renew,
    .work_done = hs_sqlite_work_done,
    .work_retry = hs_sqlite_work_retry,
    .work_get = hs_sqlite_work_get,
    .work_depth = hs_sqlite_work_depth,
    .work_release_dead = hs_sqlite_work_release_dead,
    .sync_create = hs_sqlite_sync_create,
    .sync_get = hs_sqlite_sync_get,
    .sync_version = hs_sqlite_sync_version,
    .sync_progress = hs_sqlite_sync_progress,
    .syncs_finish = hs_sqlite_syncs_finish,
    .syncs_expire = hs_sqlite_syncs_expire,
    .syncs_count = hs_sqlite_syncs_count,
    .pending_poll = hs_sqlite_pending_poll,
    .secrets_rekey = hs_sqlite_secrets_rekey,
};

int hs_store_open_sqlite(const char *path, struct hs_store **out, struct hs_error *err)
{
    return hs_store_open_sqlite_opts(path, NULL, out, err);
}

int hs_store_open_sqlite_opts(const char *path, const struct hs_store_options *o,
                              struct hs_store **out, struct hs_error *err)
{
    struct hs_secret_key *key = NULL;
    if (o && o->encryption_key && *o->encryption_key) {
        key = hs_calloc(1, sizeof *key);
        int rc = hs_secret_key_parse(o->encryption_key, key, err);
        if (rc) {
            free(key);
            return rc;
        }
    }
    hs_sqlite_make_private(path);
    struct sqlite_store *s = hs_calloc(1, sizeof *s);
    s->base.ops = &sqlite_ops;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->gc_lock, NULL);
    pthread_cond_init(&s->gc_done, NULL);
    atomic_init(&s->holder, 0);
    int rc = sqlite3_open_v2(
        path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rc = hs_fail(err, HS_ERR_DB, "cannot open database %s: %s", path,
                     s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    if ((rc = hs_sqlite_exec(
             s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;", err)))
        goto fail;
    if ((rc = migrate(s, err)))
        goto fail;
    if ((rc = hs_sqlite_key_check(s, key, err)))
        goto fail;
    s->key = key;
    key = NULL;
    *out = &s->base;
    return HS_OK;
fail:
    hs_secret_key_clear(key);
    free(key);
    sq_close(&s->base);
    return rc;
}
