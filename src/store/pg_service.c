/* pg_service.c: the service's own tables in the PostgreSQL back-end (store/service.h): settings,
 * browser sessions with their connections, and the list of connections. */
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "store/pg_internal.h"
#include "store/service.h"

#define NOW "clock_timestamp()"

static int pg_setting_get(struct hs_store *base, const char *key, char **value,
                          struct hs_error *err)
{
    if (!key)
        return hs_fail(err, HS_ERR_INVALID, "setting without a key");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "setting_get", err);
    if (rc)
        return rc;
    char *v = NULL;
    struct pg_args a = {0};
    hs_pg_text(&a, key);
    rc = hs_pg_one(&t, "SELECT value FROM settings WHERE key = $1", &a, hs_pg_fill_text, &v,
                   "reading setting", err);
    if (rc == HS_ERR_NOT_FOUND)
        hs_fail(err, HS_ERR_NOT_FOUND, "no setting '%s'", key);
    rc = hs_pg_leave(&t, rc, err);
    if (rc)
        free(v);
    else
        *value = v;
    return rc;
}

static int pg_setting_put(struct hs_store *base, const char *key, const char *value,
                          struct hs_error *err)
{
    if (!key || !value)
        return hs_fail(err, HS_ERR_INVALID, "setting without a key or a value");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE_ALONE, "setting_put", err);
    if (rc)
        return rc;
    struct pg_args a = {0};
    hs_pg_text(&a, key);
    hs_pg_text(&a, value);
    rc = hs_pg_run(&t,
                   "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, " NOW
                   ") ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                   "updated_at = excluded.updated_at",
                   &a, NULL, "storing setting", err);
    return hs_pg_leave(&t, rc, err);
}

static int session_write(struct pg_txn *t, const struct hs_session *ss, struct hs_error *err)
{
    struct pg_args a = {0};
    hs_pg_int(&a, ss->created_at);
    int rc = hs_pg_run(t, "DELETE FROM sessions WHERE expires_at <= $1", &a, NULL,
                       "storing session", err);
    if (!rc) {
        struct pg_args b = {0};
        hs_pg_text(&b, ss->token_sha256);
        hs_pg_text(&b, ss->csrf_token);
        hs_pg_text(&b, ss->user);
        hs_pg_int(&b, ss->created_at);
        hs_pg_int(&b, ss->expires_at);
        rc = hs_pg_run(t,
                       "INSERT INTO sessions (token_sha256, csrf_token, \"user\", created_at, "
                       "expires_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (token_sha256) DO "
                       "UPDATE SET csrf_token = excluded.csrf_token, created_at = "
                       "excluded.created_at, expires_at = excluded.expires_at, "
                       "\"user\" = excluded.\"user\"",
                       &b, NULL, "storing session", err);
    }
    struct pg_args k = {0};
    hs_pg_text(&k, ss->token_sha256);
    if (!rc)
        rc = hs_pg_run(t, "DELETE FROM session_connections WHERE token_sha256 = $1", &k, NULL,
                       "storing session", err);
    for (size_t i = 0; i < ss->n_connections && !rc; i++) {
        struct pg_args c = {0};
        hs_pg_text(&c, ss->token_sha256);
        hs_pg_text(&c, ss->connections[i]);
        rc = hs_pg_run(t,
                       "INSERT INTO session_connections (token_sha256, connection_key) "
                       "VALUES ($1, $2) ON CONFLICT DO NOTHING",
                       &c, NULL, "storing session", err);
    }
    return rc;
}

static int pg_session_put(struct hs_store *base, const struct hs_session *ss, struct hs_error *err)
{
    if (!ss || !ss->token_sha256 || !ss->csrf_token || ss->expires_at <= ss->created_at)
        return hs_fail(err, HS_ERR_INVALID, "session without a token, a csrf token or a future");
    for (size_t i = 0; i < ss->n_connections; i++)
        if (!ss->connections[i])
            return hs_fail(err, HS_ERR_INVALID, "session with a NULL connection");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE_ALONE, "session_put", err);
    if (rc)
        return rc;
    return hs_pg_leave(&t, session_write(&t, ss, err), err);
}

static int session_fill(struct pg_txn *t, const PGresult *r, int i, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    struct hs_session *v = row;
    v->token_sha256 = hs_pg_col_text(r, i, 0);
    v->csrf_token = hs_pg_col_text(r, i, 1);
    v->created_at = hs_pg_col_int(r, i, 2);
    v->expires_at = hs_pg_col_int(r, i, 3);
    v->user = hs_pg_col_text(r, i, 4);
    return HS_OK;
}

static int pg_session_get(struct hs_store *base, const char *token_sha256, int64_t now_s,
                          struct hs_session *out, struct hs_error *err)
{
    if (!token_sha256)
        return hs_fail(err, HS_ERR_INVALID, "session lookup without a token hash");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "session_get", err);
    if (rc)
        return rc;
    struct hs_session v = {0};
    struct pg_args a = {0};
    hs_pg_text(&a, token_sha256);
    hs_pg_int(&a, now_s);
    rc = hs_pg_one(&t,
                   "SELECT token_sha256, csrf_token, created_at, expires_at, \"user\" "
                   "FROM sessions WHERE token_sha256 = $1 AND expires_at > $2",
                   &a, session_fill, &v, "reading session", err);
    if (rc == HS_ERR_NOT_FOUND)
        hs_fail(err, HS_ERR_NOT_FOUND, "no such session, or it expired");
    if (!rc) {
        struct pg_args k = {0};
        hs_pg_text(&k, token_sha256);
        void *keys = NULL;
        rc = hs_pg_rows(&t,
                        "SELECT connection_key FROM session_connections WHERE token_sha256 = $1 "
                        "ORDER BY position",
                        &k, sizeof(char *), hs_pg_fill_text, hs_pg_clear_text, &keys,
                        &v.n_connections, "reading session", err);
        if (!rc)
            v.connections = keys;
    }
    rc = hs_pg_leave(&t, rc, err);
    if (rc)
        hs_session_clear(&v);
    else
        *out = v;
    return rc;
}

static int connection_fill(struct pg_txn *t, const PGresult *r, int i, void *row,
                           struct hs_error *err)
{
    (void)t;
    (void)err;
    struct hs_connection_row *c = row;
    c->key = hs_pg_col_text(r, i, 0);
    c->owner_id = hs_pg_col_int(r, i, 1);
    c->owner_type = hs_pg_col_text(r, i, 2);
    c->connected_at = hs_pg_col_text(r, i, 3);
    c->has_token = hs_pg_col_int(r, i, 4) != 0;
    c->reconnect_required = hs_pg_col_int(r, i, 5) != 0;
    return HS_OK;
}

static void connection_clear(void *row)
{
    struct hs_connection_row *c = row;
    free(c->key);
    free(c->owner_type);
    free(c->connected_at);
}

static int pg_connections_list(struct hs_store *base, struct hs_connection_row **out, size_t *n,
                               struct hs_error *err)
{
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "connections_list", err);
    if (rc)
        return rc;
    void *v = NULL;
    size_t len = 0;
    rc = hs_pg_rows(&t,
                    "SELECT c.key, c.owner_id, c.owner_type, " HS_PG_ISO(
                        "c.created_at") ", "
                                        "t.connection_key IS NOT NULL, COALESCE(r.generation = "
                                        "t.generation, false) "
                                        "FROM connections c LEFT JOIN oauth_tokens t ON "
                                        "t.connection_key = c.key "
                                        "LEFT JOIN token_rejections r ON r.connection_key = c.key "
                                        "ORDER BY c.created_at, c.key",
                    NULL, sizeof(struct hs_connection_row), connection_fill, connection_clear, &v,
                    &len, "listing connections", err);
    rc = hs_pg_leave(&t, rc, err);
    if (rc) {
        hs_connection_rows_free(v, len);
        return rc;
    }
    *out = v;
    *n = len;
    return HS_OK;
}

const struct hs_service_ops hs_pg_service_ops = {
    .setting_get = pg_setting_get,
    .setting_put = pg_setting_put,
    .session_put = pg_session_put,
    .session_get = pg_session_get,
    .connections_list = pg_connections_list,
};
