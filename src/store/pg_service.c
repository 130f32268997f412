/* pg_service.c: the service's own tables in the PostgreSQL back-end (store/service.h): settings,
 * browser sessions with their connections, the list of connections, named leases (rows of
 * `leases`, shared with the token refresh lease of pg_tokens.c), and the state the service's
 * instances share: connect flows, image sources, callers' request counts. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/mem.h"
#include "core/str.h"
#include "store/migrations.h"
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

/* ---- connect flows (migration 14) ---- */

/* The advisory lock that makes the flows' bounds hold across processes: flow_put counts, then
 * inserts, under it (any constant; "hsflow" in ASCII). */
#define FLOW_LOCK "115390044580471"

/* Forgets the expired flows, then makes room for f under lim (in t, under FLOW_LOCK). */
static int flow_room(struct pg_txn *t, const struct hs_connect_flow *f,
                     const struct hs_flow_limits *lim, int64_t now_ms, struct hs_error *err)
{
    int64_t mine = 0, here = 0, all = 0;
    struct pg_args now = {0}, br = {0}, ad = {0};
    hs_pg_int(&now, now_ms);
    hs_pg_text(&br, f->browser_sha256);
    hs_pg_text(&ad, f->address);
    int rc = hs_pg_run(t, "SELECT pg_advisory_xact_lock(" FLOW_LOCK ")", NULL, NULL,
                       "storing a connect flow", err);
    if (!rc)
        rc = hs_pg_run(t, "DELETE FROM connect_flows WHERE expires_ms <= $1", &now, NULL,
                       "storing a connect flow", err);
    if (!rc)
        rc = hs_pg_int1(t, "SELECT COUNT(*) FROM connect_flows WHERE browser_sha256 = $1", &br,
                        &mine, "storing a connect flow", err);
    if (!rc && mine >= lim->per_browser) /* the browser's own slot: nothing else grows */
        return hs_pg_run(t,
                         "DELETE FROM connect_flows WHERE id_sha256 = (SELECT id_sha256 FROM "
                         "connect_flows WHERE browser_sha256 = $1 "
                         "ORDER BY expires_ms, id_sha256 LIMIT 1)",
                         &br, NULL, "storing a connect flow", err);
    if (!rc)
        rc = hs_pg_int1(t, "SELECT COUNT(*) FROM connect_flows WHERE address = $1", &ad, &here,
                        "storing a connect flow", err);
    if (!rc && here >= lim->per_address)
        return hs_fail(err, HS_ERR_RATE_LIMITED, "too many connect flows from this address");
    if (!rc)
        rc = hs_pg_int1(t, "SELECT COUNT(*) FROM connect_flows", NULL, &all,
                        "storing a connect flow", err);
    if (!rc && all >= lim->total)
        return hs_fail(err, HS_ERR_BUSY, "too many connect flows are pending");
    return rc;
}

static int flow_insert(struct pg_txn *t, const struct hs_connect_flow *f, struct hs_error *err)
{
    char aad_a[120], aad_r[120], *acc = NULL, *ref = NULL;
    hs_secret_flow_places(f->id_sha256, aad_a, aad_r, sizeof aad_a);
    int rc = hs_pg_seal(t->s, f->grant.access_token, aad_a, &acc, err);
    if (!rc)
        rc = hs_pg_seal(t->s, f->grant.refresh_token, aad_r, &ref, err);
    struct pg_args a = {0};
    hs_pg_text(&a, f->id_sha256);
    hs_pg_text(&a, f->confirm ? "confirm" : "authorize");
    hs_pg_text(&a, f->browser_sha256);
    hs_pg_text(&a, f->address);
    hs_pg_text(&a, f->connection);
    hs_pg_text(&a, f->session);
    hs_pg_int(&a, f->expires_ms);
    hs_pg_text(&a, f->key);
    hs_pg_int(&a, f->old_owner);
    hs_pg_text(&a, acc);
    hs_pg_text(&a, ref);
    hs_pg_int(&a, f->grant.expires_at);
    hs_pg_int(&a, f->grant.owner_id);
    hs_pg_text(&a, f->grant.owner_type);
    if (!rc)
        rc = hs_pg_run(t,
                       "INSERT INTO connect_flows (id_sha256, stage, browser_sha256, address, "
                       "connection, session, expires_ms, connection_key, old_owner, access_token, "
                       "refresh_token, token_expires_at, owner_id, owner_type) VALUES ($1, $2, "
                       "$3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                       &a, NULL, "storing a connect flow", err);
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

static int pg_flow_put(struct hs_store *base, const struct hs_connect_flow *f,
                       const struct hs_flow_limits *lim, int64_t now_ms, struct hs_error *err)
{
    if (!flow_valid(f, lim))
        return hs_fail(err, HS_ERR_INVALID, "connect flow without its hashes, grant or limits");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE_ALONE, "flow_put", err);
    if (rc)
        return rc;
    rc = flow_room(&t, f, lim, now_ms, err);
    if (!rc)
        rc = flow_insert(&t, f, err);
    return hs_pg_leave(&t, rc, err);
}

static int flow_fill(struct pg_txn *t, const PGresult *r, int i, void *row, struct hs_error *err)
{
    struct hs_connect_flow *f = row;
    (void)hs_strlcpy(f->id_sha256, PQgetvalue(r, i, 0), sizeof f->id_sha256);
    f->confirm = strcmp(PQgetvalue(r, i, 1), "confirm") == 0;
    (void)hs_strlcpy(f->browser_sha256, PQgetvalue(r, i, 2), sizeof f->browser_sha256);
    (void)hs_strlcpy(f->address, PQgetvalue(r, i, 3), sizeof f->address);
    f->connection = hs_pg_col_text(r, i, 4);
    f->session = hs_pg_col_text(r, i, 5);
    f->expires_ms = hs_pg_col_int(r, i, 6);
    f->key = hs_pg_col_text(r, i, 7);
    f->old_owner = hs_pg_col_int(r, i, 8);
    f->grant.expires_at = hs_pg_col_int(r, i, 11);
    f->grant.owner_id = hs_pg_col_int(r, i, 12);
    f->grant.owner_type = hs_pg_col_text(r, i, 13);
    char aad_a[120], aad_r[120];
    hs_secret_flow_places(f->id_sha256, aad_a, aad_r, sizeof aad_a);
    const char *acc = hs_pg_col_null(r, i, 9) ? NULL : PQgetvalue(r, i, 9);
    const char *ref = hs_pg_col_null(r, i, 10) ? NULL : PQgetvalue(r, i, 10);
    int rc = hs_pg_unseal(t->s, acc, aad_a, &f->grant.access_token, err);
    if (!rc)
        rc = hs_pg_unseal(t->s, ref, aad_r, &f->grant.refresh_token, err);
    return rc;
}

/* DELETE ... RETURNING: of two processes taking one flow at once, one gets it. */
static int pg_flow_take(struct hs_store *base, const char *id_sha256, const char *browser_sha256,
                        bool confirm, int64_t now_ms, struct hs_connect_flow *out,
                        struct hs_error *err)
{
    if (!id_sha256 || !browser_sha256)
        return hs_fail(err, HS_ERR_INVALID, "flow_take without its hashes");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "flow_take", err);
    if (rc)
        return rc;
    struct hs_connect_flow f = {0};
    struct pg_args a = {0};
    hs_pg_text(&a, id_sha256);
    hs_pg_text(&a, browser_sha256);
    hs_pg_text(&a, confirm ? "confirm" : "authorize");
    hs_pg_int(&a, now_ms);
    rc = hs_pg_one(&t,
                   "DELETE FROM connect_flows WHERE id_sha256 = $1 AND browser_sha256 = $2 "
                   "AND stage = $3 AND expires_ms > $4 RETURNING id_sha256, stage, "
                   "browser_sha256, address, connection, session, expires_ms, connection_key, "
                   "old_owner, access_token, refresh_token, token_expires_at, owner_id, "
                   "owner_type",
                   &a, flow_fill, &f, "taking a connect flow", err);
    if (rc == HS_ERR_NOT_FOUND)
        hs_fail(err, HS_ERR_NOT_FOUND, "no such connect flow");
    rc = hs_pg_leave(&t, rc, err);
    if (rc) {
        hs_connect_flow_clear(&f);
        return rc;
    }
    *out = f;
    return HS_OK;
}

/* ---- image sources (migration 14) ---- */

/* The n sources as one JSON array (one statement, whatever n), each with its place in v. */
static char *image_sources_json(const struct hs_image_source *v, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr,
                              json_pack("{s:I, s:I, s:o, s:I, s:o}", "i", (json_int_t)i, "image_id",
                                        (json_int_t)v[i].image_id, "connection_key",
                                        hs_json_text(v[i].connection_key), "model_id",
                                        (json_int_t)v[i].model_id, "url", hs_json_text(v[i].url)));
    char *s = hs_json_dump(arr);
    json_decref(arr);
    return s;
}

/* Upserts in the order of image_id, so that processes listing the same images never deadlock;
 * of one image_id listed twice, the last wins. */
static int pg_image_sources_put(struct hs_store *base, const struct hs_image_source *v, size_t n,
                                int64_t now_ms, struct hs_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].image_id <= 0 || !v[i].connection_key || !v[i].url)
            return hs_fail(err, HS_ERR_INVALID, "image source without an id, connection or URL");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "image_sources_put", err);
    if (rc)
        return rc;
    char *doc = image_sources_json(v, n);
    struct pg_args a = {0};
    hs_pg_text(&a, doc);
    hs_pg_int(&a, now_ms);
    rc = hs_pg_run(&t,
                   "INSERT INTO image_sources (image_id, connection_key, model_id, url, seen_ms) "
                   "SELECT DISTINCT ON (x.image_id) x.image_id, x.connection_key, x.model_id, "
                   "x.url, $2::bigint FROM jsonb_to_recordset($1::jsonb) AS x(i bigint, "
                   "image_id bigint, connection_key text, model_id bigint, url text) "
                   "ORDER BY x.image_id, x.i DESC ON CONFLICT (image_id) DO UPDATE SET "
                   "connection_key = excluded.connection_key, model_id = excluded.model_id, "
                   "url = excluded.url, seen_ms = excluded.seen_ms",
                   &a, NULL, "remembering an image", err);
    free(doc);
    struct pg_args c = {0};
    hs_pg_int(&c, HS_IMAGE_SOURCES_MAX - 1);
    if (!rc)
        rc = hs_pg_run(&t,
                       "DELETE FROM image_sources WHERE seen_ms < (SELECT seen_ms FROM "
                       "image_sources ORDER BY seen_ms DESC LIMIT 1 OFFSET $1)",
                       &c, NULL, "remembering an image", err);
    return hs_pg_leave(&t, rc, err);
}

static int image_fill(struct pg_txn *t, const PGresult *r, int i, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    struct hs_image_source *v = row;
    v->image_id = hs_pg_col_int(r, i, 0);
    v->connection_key = hs_pg_col_text(r, i, 1);
    v->model_id = hs_pg_col_int(r, i, 2);
    v->url = hs_pg_col_text(r, i, 3);
    return HS_OK;
}

static int pg_image_source_get(struct hs_store *base, int64_t image_id,
                               const struct hs_scope *scope, struct hs_image_source *out,
                               struct hs_error *err)
{
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "image_source_get", err);
    if (rc)
        return rc;
    struct hs_image_source v = {0};
    char *in = hs_pg_scope_array(scope);
    struct pg_args a = {0};
    hs_pg_int(&a, image_id);
    hs_pg_text(&a, in);
    rc = hs_pg_one(&t,
                   "SELECT image_id, connection_key, model_id, url FROM image_sources "
                   "WHERE image_id = $1 AND ($2::text[] IS NULL OR connection_key = ANY($2))",
                   &a, image_fill, &v, "reading an image source", err);
    if (rc == HS_ERR_NOT_FOUND)
        hs_fail(err, HS_ERR_NOT_FOUND, "image %lld is unknown", (long long)image_id);
    free(in);
    rc = hs_pg_leave(&t, rc, err);
    if (rc) {
        hs_image_source_clear(&v);
        return rc;
    }
    *out = v;
    return HS_OK;
}

/* ---- callers' request counts (migration 14) ---- */

/* The caller's row of the window is made, then locked: every process counts against what the
 * others committed before it. */
static int caller_rate_in(struct pg_txn *t, const char *caller, int64_t window_ms, int limit,
                          int want, int64_t *give, struct hs_error *err)
{
    int64_t used = 0;
    struct pg_args w = {0}, a = {0};
    hs_pg_int(&w, window_ms);
    hs_pg_text(&a, caller);
    hs_pg_int(&a, window_ms);
    int rc = hs_pg_run(t, "DELETE FROM caller_rates WHERE window_ms < $1", &w, NULL,
                       "counting a caller's requests", err);
    if (!rc)
        rc = hs_pg_run(t,
                       "INSERT INTO caller_rates (caller, window_ms, used) VALUES ($1, $2, 0) "
                       "ON CONFLICT (caller, window_ms) DO NOTHING",
                       &a, NULL, "counting a caller's requests", err);
    if (!rc)
        rc = hs_pg_int1(t,
                        "SELECT used FROM caller_rates WHERE caller = $1 AND window_ms = $2 "
                        "FOR UPDATE",
                        &a, &used, "counting a caller's requests", err);
    *give = limit - used < want ? limit - used : want;
    if (*give < 0)
        *give = 0;
    hs_pg_int(&a, *give);
    if (!rc && *give > 0)
        rc = hs_pg_run(t,
                       "UPDATE caller_rates SET used = used + $3 WHERE caller = $1 "
                       "AND window_ms = $2",
                       &a, NULL, "counting a caller's requests", err);
    return rc;
}

static int pg_caller_rate_take(struct hs_store *base, const char *caller, int64_t window_ms,
                               int limit, int want, int *granted, struct hs_error *err)
{
    if (!caller || limit <= 0 || want <= 0)
        return hs_fail(err, HS_ERR_INVALID, "caller rate without a caller, a limit or a want");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "caller_rate_take", err);
    if (rc)
        return rc;
    int64_t give = 0;
    rc = hs_pg_leave(&t, caller_rate_in(&t, caller, window_ms, limit, want, &give, err), err);
    if (!rc)
        *granted = (int)give;
    return rc;
}

/* ---- named leases ---- */

int hs_pg_lease_take(struct pg_txn *t, const char *name, int64_t now_ms, int64_t lease_ms,
                     int64_t *fence, struct hs_error *err)
{
    *fence = 0;
    struct pg_args a = {0};
    hs_pg_text(&a, name);
    hs_pg_int(&a, now_ms);
    hs_pg_int(&a, lease_ms);
    /* Taken when there is no row, or its lease ended (released: 0, or lapsed); else no row
     * comes back and the lease is another claim's. */
    return hs_pg_int1(t,
                      "INSERT INTO leases (name, fence, until_ms) VALUES ($1, 1, $2::bigint + $3) "
                      "ON CONFLICT (name) DO UPDATE SET fence = leases.fence + 1, "
                      "until_ms = excluded.until_ms WHERE leases.until_ms <= $2::bigint "
                      "RETURNING fence",
                      &a, fence, "claiming a lease", err);
}

int hs_pg_lease_move(struct pg_txn *t, const char *name, int64_t fence, int64_t until_ms,
                     bool *moved, struct hs_error *err)
{
    *moved = false;
    struct pg_args a = {0};
    hs_pg_text(&a, name);
    hs_pg_int(&a, fence);
    hs_pg_int(&a, until_ms);
    int64_t changes = 0;
    int rc = hs_pg_run(t,
                       "UPDATE leases SET until_ms = $3 WHERE name = $1 AND fence = $2 "
                       "AND until_ms <> 0",
                       &a, &changes, "moving a lease", err);
    *moved = rc == HS_OK && changes > 0;
    return rc;
}

static int pg_lease_claim(struct hs_store *base, const char *name, int64_t now_ms, int64_t lease_ms,
                          int64_t *fence, struct hs_error *err)
{
    if (!name || !fence || lease_ms <= 0)
        return hs_fail(err, HS_ERR_INVALID, "lease claim without a name or a duration");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE_ALONE, "lease_claim", err);
    if (rc)
        return rc;
    int64_t f = 0;
    rc = hs_pg_lease_take(&t, name, now_ms, lease_ms, &f, err);
    if (!rc && f == 0)
        rc = hs_fail(err, HS_ERR_BUSY, "lease '%s' is held by another claim", name);
    rc = hs_pg_leave(&t, rc, err);
    if (!rc)
        *fence = f;
    return rc;
}

static int lease_set(struct hs_store *base, const char *name, int64_t fence, int64_t until_ms,
                     const char *what, struct hs_error *err)
{
    if (!name)
        return hs_fail(err, HS_ERR_INVALID, "%s without a name", what);
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE_ALONE, what, err);
    if (rc)
        return rc;
    bool moved = false;
    rc = hs_pg_lease_move(&t, name, fence, until_ms, &moved, err);
    if (!rc && !moved)
        rc = hs_fail(err, HS_ERR_CONFLICT,
                     "lease '%s' is not this claim's any more (released, or claimed again)", name);
    return hs_pg_leave(&t, rc, err);
}

static int pg_lease_renew(struct hs_store *base, const char *name, int64_t fence, int64_t until_ms,
                          struct hs_error *err)
{
    return lease_set(base, name, fence, until_ms, "lease_renew", err);
}

static int pg_lease_release(struct hs_store *base, const char *name, int64_t fence,
                            struct hs_error *err)
{
    return lease_set(base, name, fence, 0, "lease_release", err);
}

static int pg_schema_status(struct hs_store *base, int *have, int *want, struct hs_error *err)
{
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "schema_status", err);
    if (rc)
        return rc;
    int64_t v = 0;
    rc = hs_pg_int1(&t, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", NULL, &v,
                    "reading the schema version", err);
    rc = hs_pg_leave(&t, rc, err);
    if (rc)
        return rc;
    *have = (int)v;
    *want = hs_pg_migrations[hs_pg_migrations_count - 1].version;
    return HS_OK;
}

static int pg_session_delete(struct hs_store *base, const char *token_sha256, struct hs_error *err)
{
    if (!token_sha256)
        return hs_fail(err, HS_ERR_INVALID, "session_delete without a token hash");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE_ALONE, "session_delete", err);
    if (rc)
        return rc;
    struct pg_args a = {0};
    hs_pg_text(&a, token_sha256);
    int64_t changes = 0;
    /* session_connections follow by ON DELETE CASCADE. */
    rc = hs_pg_run(&t, "DELETE FROM sessions WHERE token_sha256 = $1", &a, &changes,
                   "deleting session", err);
    if (!rc && changes == 0)
        rc = hs_fail(err, HS_ERR_NOT_FOUND, "no such session");
    return hs_pg_leave(&t, rc, err);
}

static int pg_api_key_put(struct hs_store *base, const char *name, const char *key_sha256,
                          int64_t created_at, struct hs_error *err)
{
    if (!name || !*name || !key_sha256)
        return hs_fail(err, HS_ERR_INVALID, "API key without a name or a hash");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE_ALONE, "api_key_put", err);
    if (rc)
        return rc;
    struct pg_args a = {0};
    hs_pg_text(&a, name);
    hs_pg_text(&a, key_sha256);
    hs_pg_int(&a, created_at);
    rc = hs_pg_run(&t, "INSERT INTO api_keys (name, key_sha256, created_at) VALUES ($1, $2, $3)",
                   &a, NULL, "storing API key", err);
    if (rc == HS_ERR_CONFLICT)
        hs_fail(err, HS_ERR_CONFLICT, "an API key named '%s' exists already", name);
    return hs_pg_leave(&t, rc, err);
}

static int api_key_fill(struct pg_txn *t, const PGresult *r, int i, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    struct hs_api_key *k = row;
    k->name = hs_pg_col_text(r, i, 0);
    k->key_sha256 = hs_pg_col_text(r, i, 1);
    k->created_at = hs_pg_col_int(r, i, 2);
    k->last_used_at = hs_pg_col_int(r, i, 3);
    return HS_OK;
}

static void api_key_clear(void *row)
{
    struct hs_api_key *k = row;
    free(k->name);
    free(k->key_sha256);
}

static int pg_api_keys_list(struct hs_store *base, struct hs_api_key **out, size_t *n,
                            struct hs_error *err)
{
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "api_keys_list", err);
    if (rc)
        return rc;
    void *v = NULL;
    size_t len = 0;
    rc = hs_pg_rows(&t,
                    "SELECT name, key_sha256, created_at, COALESCE(last_used_at, 0) FROM api_keys "
                    "ORDER BY name",
                    NULL, sizeof(struct hs_api_key), api_key_fill, api_key_clear, &v, &len,
                    "listing API keys", err);
    rc = hs_pg_leave(&t, rc, err);
    if (rc) {
        hs_api_keys_free(v, len);
        return rc;
    }
    *out = v;
    *n = len;
    return HS_OK;
}

static int pg_api_key_delete(struct hs_store *base, const char *name, struct hs_error *err)
{
    if (!name)
        return hs_fail(err, HS_ERR_INVALID, "api_key_delete without a name");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE_ALONE, "api_key_delete", err);
    if (rc)
        return rc;
    struct pg_args a = {0};
    hs_pg_text(&a, name);
    int64_t changes = 0;
    rc = hs_pg_run(&t, "DELETE FROM api_keys WHERE name = $1", &a, &changes, "deleting API key",
                   err);
    if (!rc && changes == 0)
        rc = hs_fail(err, HS_ERR_NOT_FOUND, "no API key named '%s'", name);
    return hs_pg_leave(&t, rc, err);
}

static int pg_api_key_used(struct hs_store *base, const char *name, int64_t at_s,
                           struct hs_error *err)
{
    if (!name)
        return hs_fail(err, HS_ERR_INVALID, "api_key_used without a name");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE_ALONE, "api_key_used", err);
    if (rc)
        return rc;
    struct pg_args a = {0};
    hs_pg_text(&a, name);
    hs_pg_int(&a, at_s);
    rc = hs_pg_run(&t,
                   "UPDATE api_keys SET last_used_at = $2 WHERE name = $1 AND "
                   "(last_used_at IS NULL OR last_used_at <= $2 - 60)",
                   &a, NULL, "noting an API key's use", err);
    return hs_pg_leave(&t, rc, err);
}

const struct hs_service_ops hs_pg_service_ops = {
    .setting_get = pg_setting_get,
    .setting_put = pg_setting_put,
    .session_put = pg_session_put,
    .session_get = pg_session_get,
    .session_delete = pg_session_delete,
    .connections_list = pg_connections_list,
    .flow_put = pg_flow_put,
    .flow_take = pg_flow_take,
    .image_sources_put = pg_image_sources_put,
    .image_source_get = pg_image_source_get,
    .caller_rate_take = pg_caller_rate_take,
    .lease_claim = pg_lease_claim,
    .lease_renew = pg_lease_renew,
    .lease_release = pg_lease_release,
    .schema_status = pg_schema_status,
    .api_key_put = pg_api_key_put,
    .api_keys_list = pg_api_keys_list,
    .api_key_delete = pg_api_key_delete,
    .api_key_used = pg_api_key_used,
    .connection_delete = hs_pg_connection_delete,
};
