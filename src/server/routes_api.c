/* routes_api.c: the JSON routes of docs/API.md that are not about one job: health, metrics,
 * sessions, connections, search, syncs, the records feed and stored files. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/crypto.h>

#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "server/internal.h"
#include "store/records.h"
#include "store/outbox.h"
#include "store/service.h"
#include "sync/engine.h"
#include "store/work.h"

#ifndef HOVERSYNC_VERSION
#define HOVERSYNC_VERSION "dev"
#endif

#define SYNC_MODELS_MAX 100
#define USER_MAX        256
#define QUERY_MAX       200

/* GET /healthz: liveness. The process answers; nothing else is asked (a store that does not
 * answer is /readyz's business: restarting the process would not mend it). */
void hs_route_healthz(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    hs_resp_json(r, 200,
                 json_pack("{s:s, s:s, s:s, s:s}", "status", "ok", "version", HOVERSYNC_VERSION,
                           "search", s->search ? "ok" : "off", "sync_queue",
                           s->syncq ? "ok" : "off"));
}

static void not_ready(struct hs_resp *r, const char *reason, const char *message)
{
    hs_resp_json(
        r, 503,
        json_pack("{s:s, s:s, s:s}", "status", "not_ready", "reason", reason, "message", message));
    hs_resp_header(r, "Retry-After", "5");
}

/* GET /readyz: readiness. Not draining, the store answers a cheap read, and its schema is the
 * one this binary knows (a store behind it is being migrated by another process). */
void hs_route_readyz(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    if (atomic_load(&s->draining)) {
        not_ready(r, "draining", "the service is stopping");
        return;
    }
    int have = 0, want = 0;
    struct hs_error err = {0};
    if (s->store->service->schema_status(s->store, &have, &want, &err) != HS_OK) {
        hs_warn("readyz msg=\"store unreachable\" error=\"%s\"", err.msg);
        not_ready(r, "store_unreachable", "the store does not answer");
        return;
    }
    if (have != want) {
        char msg[96];
        (void)snprintf(msg, sizeof msg, "the store's schema is at version %d, this binary's %d",
                       have, want);
        not_ready(r, "migrations_pending", msg);
        return;
    }
    hs_resp_json(r, 200, json_pack("{s:s, s:i}", "status", "ready", "schema_version", have));
}

static bool from_loopback(const struct hs_req *q)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(q->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return false;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        const unsigned char *b = in6->sin6_addr.s6_addr;
        static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
               (memcmp(b, v4mapped, 12) == 0 && b[12] == 127);
    }
    return false;
}

/* The gauges read from the store at scrape time (two short reads): left out when it fails. */
static void metrics_from_store(struct hs_server *s, struct hs_metrics_sources *src)
{
    struct hs_store *st = s->store;
    int64_t now = s->clock->wall_ms(s->clock), oldest = 0;
    src->have_queue =
        st->work->work_depth(st, &src->work_due, &src->work_total, &oldest, now, NULL) == HS_OK;
    if (src->have_queue && oldest > 0 && oldest < now)
        src->work_oldest_due_age_ms = now - oldest;
    src->have_backlog = st->outbox->outbox_depth(st, &src->outbox_backlog, NULL) == HS_OK;
}

/* GET /metrics */
void hs_route_metrics(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    if (!s->metrics_public && !from_loopback(q)) {
        hs_resp_error(r, 403, "forbidden",
                      "metrics are served to loopback only (serve --metrics-public opens them)");
        return;
    }
    struct hs_metrics_sources src = {0};
    hs_client_pool_get_stats(s->pool, &src.hover);
    if (s->syncq)
        src.have_syncq = hs_syncq_get_stats(s->syncq, &src.syncq, NULL) == HS_OK;
    if (s->events && s->duties) {
        src.have_workers = true;
        hs_events_get_stats(s->events, &src.events);
        hs_duties_get_stats(s->duties, &src.duties);
    }
    if (s->search) {
        src.have_search = true;
        hs_search_get_stats(s->search, &src.search);
    }
    src.oauth_requests = atomic_load(&s->oauth_requests);
    src.sse_streams = hs_sse_count(s);
    src.in_flight = atomic_load(&s->counters.in_flight);
    src.hover_answered = atomic_load(&s->counters.hover_answered);
    src.hover_timed_out = atomic_load(&s->counters.hover_timed_out);
    src.hover_waiting = atomic_load(&s->counters.hover_waiting);
    src.hover_running = atomic_load(&s->counters.hover_running);
    if (s->conns)
        hs_conns_counts(s->conns, &src.connections, &src.header_timeouts);
    src.callers_refused = hs_quota_refused(s->quota);
    metrics_from_store(s, &src);
    if (s->outbox && src.have_workers)
        hs_outbox_get_stats(s->outbox, &src.outbox);
    if (s->limiter) {
        src.have_budget = true;
        hs_limiter_get_stats(s->limiter, &src.budget);
    }
    char *text = hs_metrics_render(s->metrics, &src);
    hs_resp_set(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text));
    hs_resp_header(r, "Cache-Control", "no-store");
}

static json_t *iso_time(int64_t unix_s)
{
    char buf[32];
    hs_iso8601_format(unix_s, 0, buf, sizeof buf);
    return json_string(buf);
}

/* The names of the stored connections, as a JSON array. */
static json_t *connection_names(const struct hs_connection_row *rows, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, hs_json_text(rows[i].key));
    return a;
}

/* A 422 about the connections a session was asked for, with the names there are. */
static void connections_refused(struct hs_resp *r, const char *code, const char *msg,
                                const struct hs_connection_row *rows, size_t n)
{
    hs_resp_json(r, 422,
                 json_pack("{s:{s:s, s:s, s:i, s:o}}", "error", "code", code, "message", msg,
                           "status", 422, "connections", connection_names(rows, n)));
}

/* The connections of a new session (docs/API.md "Tenants"): those named in `connections`
 * (an array) or `connection` (a string), each of which must exist; none named: the only
 * connection there is, or none when there is none yet (the session may connect one). 0 with
 * *out (caller frees the strings and the array), or -1 with a 400 or 422 in r. */
static int session_connections(struct hs_server *s, json_t *body, char ***out, size_t *n_out,
                               struct hs_resp *r)
{
    json_t *many = json_object_get(body, "connections"), *one = json_object_get(body, "connection");
    json_t *asked = json_array();
    if (one && !json_is_null(one)) {
        if (!json_is_string(one)) {
            json_decref(asked);
            hs_resp_error(r, 400, "bad_request", "connection must be a string");
            return -1;
        }
        json_array_append(asked, one);
    }
    if (many && !json_is_null(many)) {
        size_t i;
        json_t *x;
        if (!json_is_array(many) || json_array_size(many) > CONN_FLAGS_N) {
            json_decref(asked);
            hs_resp_error(r, 400, "bad_request", "connections must be an array of at most %d names",
                          CONN_FLAGS_N);
            return -1;
        }
        json_array_foreach(many, i, x)
        {
            if (!json_is_string(x)) {
                json_decref(asked);
                hs_resp_error(r, 400, "bad_request", "connections must hold connection names");
                return -1;
            }
            json_array_append(asked, x);
        }
    }
    struct hs_connection_row *rows = NULL;
    size_t n = 0;
    struct hs_error err = {0};
    int rc = s->store->service->connections_list(s->store, &rows, &n, &err);
    if (rc) {
        json_decref(asked);
        hs_resp_fail(r, rc, &err, "listing connections");
        return -1;
    }
    size_t na = json_array_size(asked);
    char **v = hs_calloc(na + 1, sizeof *v);
    size_t k = 0;
    int ret = 0;
    if (na == 0 && n > 1) {
        connections_refused(r, "connection_required",
                            "several Hover orgs are connected: name the session's connections",
                            rows, n);
        ret = -1;
    } else if (na == 0 && n == 1) {
        v[k++] = hs_strdup(rows[0].key);
    }
    for (size_t i = 0; i < na && ret == 0; i++) {
        const char *name = json_string_value(json_array_get(asked, i));
        bool known = false, dup = false;
        for (size_t j = 0; j < n && !known; j++)
            known = strcmp(rows[j].key, name) == 0;
        for (size_t j = 0; j < k && !dup; j++)
            dup = strcmp(v[j], name) == 0;
        if (!known) {
            char msg[160];
            (void)snprintf(msg, sizeof msg, "no connection named %.64s", name);
            connections_refused(r, "unknown_connection", msg, rows, n);
            ret = -1;
        } else if (!dup) {
            v[k++] = hs_strdup(name);
        }
    }
    hs_connection_rows_free(rows, n);
    json_decref(asked);
    if (ret) {
        for (size_t i = 0; i < k; i++)
            free(v[i]);
        free(v);
        return -1;
    }
    *out = v;
    *n_out = k;
    return 0;
}

static json_t *string_array(char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, hs_json_text(v[i]));
    return a;
}

/* POST /api/sessions (API key only) */
void hs_route_sessions_create(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    json_t *body = NULL;
    char **conns = NULL;
    size_t n_conns = 0;
    if (hs_req_json_object(q, true, &body, r) != 0)
        return;
    json_t *u = json_object_get(body, "user");
    const char *user = NULL;
    if (u && !json_is_null(u)) {
        if (!json_is_string(u) || json_string_length(u) == 0 || json_string_length(u) > USER_MAX) {
            json_decref(body);
            hs_resp_error(r, 400, "bad_request", "user must be a string of 1 to %d characters",
                          USER_MAX);
            return;
        }
        user = json_string_value(u);
    }
    if (session_connections(s, body, &conns, &n_conns, r) != 0) {
        json_decref(body);
        return;
    }
    char token[65];
    struct hs_session ss = {0};
    struct hs_error err = {0};
    int rc = hs_session_create(s, user, (const char *const *)conns, n_conns, token, &ss, &err);
    json_decref(body);
    for (size_t i = 0; i < n_conns; i++)
        free(conns[i]);
    free(conns);
    if (rc) {
        hs_resp_fail(r, rc, &err, "creating the session");
        return;
    }
    /* The token goes in the fragment: never sent to a server, never in an access log. */
    char *modal = hs_aprintf("%s/modal#session=%s", s->public_url, token);
    hs_resp_json(r, 201,
                 json_pack("{s:s, s:s, s:s, s:o, s:s, s:o, s:o}", "id", ss.token_sha256, "session",
                           token, "csrf_token", ss.csrf_token, "expires_at",
                           iso_time(ss.expires_at), "modal_url", modal, "user",
                           hs_json_text(ss.user), "connections",
                           string_array(ss.connections, ss.n_connections)));
    hs_info("session msg=\"created\" user_set=%d connections=%zu expires_at=%lld", user != NULL,
            ss.n_connections, (long long)ss.expires_at);
    free(modal);
    hs_session_clear(&ss);
    memset(token, 0, sizeof token);
}

/* GET /api/session: what the caller's session is (the modal reads its csrf token here). */
void hs_route_session_get(struct hs_req *q, struct hs_resp *r)
{
    if (q->auth == HS_AUTH_KEY) {
        hs_resp_json(r, 200, json_pack("{s:s}", "auth", "api_key"));
        return;
    }
    hs_resp_json(r, 200,
                 json_pack("{s:s, s:o, s:s, s:o, s:o}", "auth", "session", "user",
                           hs_json_text(q->session.user), "csrf_token", q->session.csrf_token,
                           "expires_at", iso_time(q->session.expires_at), "connections",
                           string_array(q->session.connections, q->session.n_connections)));
}

/* GET /api/connections: the caller's (a session sees its own only). */
void hs_route_connections(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    struct hs_connection_row *rows = NULL;
    size_t n = 0;
    if (hs_connections_read(q, &rows, &n, r) != 0)
        return;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        if (!hs_req_may_use(q, rows[i].key))
            continue;
        bool refused = rows[i].reconnect_required || hs_connection_needs_reconnect(s, rows[i].key);
        const char *status = !rows[i].has_token ? "disconnected"
                             : refused          ? "reconnect_required"
                                                : "connected";
        json_array_append_new(
            arr, json_pack("{s:o, s:o, s:o, s:s}", "key", hs_json_text(rows[i].key), "owner_id",
                           rows[i].owner_id > 0 ? json_integer(rows[i].owner_id) : json_null(),
                           "connected_at", hs_json_text(rows[i].connected_at), "status", status));
    }
    hs_connection_rows_free(rows, n);
    hs_resp_json(r, 200, arr);
}

/* GET /api/jobs?q=&state=&page=&per=&connection= */
void hs_route_jobs_search(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    const char *text = hs_req_arg(q, "q");
    const char *state = hs_req_arg(q, "state");
    int64_t page, per;
    if (text && strlen(text) > QUERY_MAX) {
        hs_resp_error(r, 400, "bad_request", "q is limited to %d characters", QUERY_MAX);
        return;
    }
    if (state && *state && strcmp(state, "completed") != 0 && strcmp(state, "failed") != 0) {
        hs_resp_error(r, 400, "bad_request", "state must be completed or failed");
        return;
    }
    if (hs_req_int_arg(q, "page", 1, 10000, 1, &page, r) != 0 ||
        hs_req_int_arg(q, "per", 1, 100, 0, &per, r) != 0)
        return;
    if (!s->search) {
        hs_resp_error(r, 503, "internal", "the search service is not running");
        return;
    }
    char *key = NULL;
    if (hs_pick_connection(q, hs_req_arg(q, "connection"), &key, r) != 0)
        return;
    const char *named_arg = hs_req_arg(q, "connection");
    struct hs_scope scope_buf, named = {.keys = (const char *const *)&key, .n = 1};
    const struct hs_scope *scope = hs_req_scope(q, &scope_buf);
    if (scope && !key) {
        /* A session without a connection has nothing to search (and no org to ask). */
        hs_resp_json(r, 200,
                     json_pack("{s:s, s:[], s:I, s:b, s:i}", "source", "local", "results", "page",
                               (json_int_t)page, "more", 0, "total", 0));
        return;
    }
    struct hs_search_query sq = {
        .q = text,
        .state = state && *state ? state : NULL,
        .page = page,
        .per = per,
        .connection_key = key,
        /* Debounce per typist: a browser session's keystrokes supersede each other, not those
         * of another user of the same org. API-key callers share the connection's key. */
        .session = q->auth == HS_AUTH_SESSION ? q->session.token_sha256 : NULL,
        /* Stored jobs of the connection searched, when one is named; else the caller's. */
        .scope = named_arg && *named_arg ? &named : scope,
        /* On the connection's thread: an answer that needs Hover goes to a Hover worker, where
         * the search resumes with what the index answered here. */
        .no_wait = q->no_wait,
        .pending = &q->resume,
        .resume = q->resume,
    };
    json_t *out = NULL;
    struct hs_error err = {0};
    int rc = hs_search_run(s->search, &sq, &out, &err);
    r->defer = q->no_wait && q->resume != 0;
    if (key && !r->defer)
        hs_connection_note(s, key, rc);
    free(key);
    if (r->defer)
        return;
    if (rc) {
        hs_resp_fail(r, rc, &err, "searching jobs");
        return;
    }
    hs_resp_json(r, 200, out);
}

/* Model ids from a JSON array of positive integers (absent: none). 0, or -1 with a 400. */
static int id_list(json_t *body, const char *name, int64_t **out, size_t *n, struct hs_resp *r)
{
    *out = NULL;
    *n = 0;
    json_t *a = json_object_get(body, name);
    if (!a || json_is_null(a))
        return 0;
    if (!json_is_array(a) || json_array_size(a) > SYNC_MODELS_MAX) {
        hs_resp_error(r, 400, "bad_request", "%s must be an array of at most %d model ids", name,
                      SYNC_MODELS_MAX);
        return -1;
    }
    int64_t *v = hs_calloc(json_array_size(a) + 1, sizeof *v);
    size_t i;
    json_t *x;
    json_array_foreach(a, i, x)
    {
        if (!json_is_integer(x) || json_integer_value(x) <= 0) {
            free(v);
            hs_resp_error(r, 400, "bad_request", "%s must hold positive integer model ids", name);
            return -1;
        }
        v[i] = json_integer_value(x);
    }
    *out = v;
    *n = json_array_size(a);
    return 0;
}

static bool doc_has_model(json_t *doc, int64_t id)
{
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(doc, "models"), i, m)
    {
        if (json_integer_value(json_object_get(m, "id")) == id)
            return true;
    }
    return false;
}

/* The first selected id that the job does not have, or 0. */
static int64_t missing_model(json_t *doc, const int64_t *a, size_t na, const int64_t *b, size_t nb)
{
    for (size_t i = 0; i < na; i++)
        if (!doc_has_model(doc, a[i]))
            return a[i];
    for (size_t i = 0; i < nb; i++)
        if (!doc_has_model(doc, b[i]))
            return b[i];
    return 0;
}

/* What POST /api/syncs asks for. */
struct sync_ask {
    json_t *body;
    int64_t job_id;
    int64_t *ids, *ready;
    size_t n_ids, n_ready;
    char *hint; /* the connection named, checked against the caller's scope; or NULL */
};

static void sync_ask_clear(struct sync_ask *a)
{
    json_decref(a->body);
    free(a->ids);
    free(a->ready);
    free(a->hint);
}

/* The body, checked: 0, or -1 with the answer set. */
static int sync_ask_parse(struct hs_req *q, struct hs_resp *r, struct sync_ask *a)
{
    if (hs_req_json_object(q, false, &a->body, r) != 0)
        return -1;
    json_t *jid = json_object_get(a->body, "job_id");
    if (!json_is_integer(jid) || json_integer_value(jid) <= 0) {
        hs_resp_error(r, 400, "bad_request", "job_id must be a positive integer");
        return -1;
    }
    a->job_id = json_integer_value(jid);
    if (id_list(a->body, "model_ids", &a->ids, &a->n_ids, r) != 0 ||
        id_list(a->body, "when_ready", &a->ready, &a->n_ready, r) != 0)
        return -1;
    if (a->n_ids + a->n_ready == 0) {
        hs_resp_error(r, 400, "bad_request", "model_ids (or when_ready) must name a model");
        return -1;
    }
    for (size_t i = 0; i < a->n_ids; i++) {
        for (size_t k = 0; k < a->n_ready; k++) {
            if (a->ids[i] == a->ready[k]) {
                hs_resp_error(r, 400, "bad_request",
                              "model %lld is in both model_ids and when_ready",
                              (long long)a->ids[i]);
                return -1;
            }
        }
    }
    json_t *jc = json_object_get(a->body, "connection");
    if (jc && !json_is_null(jc) && !json_is_string(jc)) {
        hs_resp_error(r, 400, "bad_request", "connection must be a string");
        return -1;
    }
    const char *asked = json_is_string(jc) ? json_string_value(jc) : hs_req_arg(q, "connection");
    if (asked && hs_pick_connection(q, asked, &a->hint, r) != 0)
        return -1;
    return 0;
}

/* The job and its models checked before queueing: from the job's recent Show Job when there is
 * one, else (or when a model is not on it) from a fresh one. Hover being unreachable does not
 * refuse the sync: the queue reports what happens. *conn gets the connection to sync through.
 * 0, or -1 with the answer set. */
static int sync_job_check(struct hs_req *q, struct hs_resp *r, const struct sync_ask *a,
                          char **conn)
{
    struct hs_server *s = q->srv;
    struct hs_scope scope_buf;
    const struct hs_scope *scope = hs_req_scope(q, &scope_buf);
    json_t *doc = NULL;
    struct hs_error err = {0};
    int ret = -1;
    int rc = hs_job_fetch(s, a->job_id, a->hint, scope, 10 * 60 * 1000, &doc, conn, &err);
    if (rc == HS_OK && missing_model(doc, a->ids, a->n_ids, a->ready, a->n_ready)) {
        json_decref(doc);
        doc = NULL;
        free(*conn);
        *conn = NULL;
        rc = hs_job_fetch(s, a->job_id, a->hint, scope, -1, &doc, conn, &err);
    }
    int64_t bad = rc == HS_OK ? missing_model(doc, a->ids, a->n_ids, a->ready, a->n_ready) : 0;
    if (rc == HS_ERR_NOT_FOUND) {
        hs_resp_error(r, 404, "not_found", "job %lld not found in the connected Hover orgs",
                      (long long)a->job_id);
    } else if (bad) {
        hs_resp_error(r, 400, "bad_request", "model %lld is not on job %lld", (long long)bad,
                      (long long)a->job_id);
    } else if (rc == HS_OK) {
        ret = 0;
    } else {
        hs_warn("sync msg=\"cannot check the job before queueing\" job=%lld code=%s",
                (long long)a->job_id, hs_err_name(rc));
        free(*conn);
        *conn = a->hint ? hs_strdup(a->hint) : NULL;
        if (!*conn && hs_pick_connection(q, NULL, conn, r) != 0)
            ret = -1;
        else if (!*conn && scope)
            hs_resp_error(r, 404, "not_found", "job %lld not found in the connected Hover orgs",
                          (long long)a->job_id);
        else
            ret = 0;
    }
    json_decref(doc);
    return ret;
}

/* POST /api/syncs {"job_id":N,"model_ids":[..],"when_ready":[..],"connection":".."} */
void hs_route_syncs_create(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    struct sync_ask a = {0};
    char *conn = NULL;
    if (sync_ask_parse(q, r, &a) != 0 || sync_job_check(q, r, &a, &conn) != 0)
        goto out;
    if (!s->syncq) {
        hs_resp_error(r, 503, "internal", "the sync queue is not running");
        goto out;
    }
    char id[40] = "";
    struct hs_error err = {0};
    /* The job just checked goes with the sync: its pass then costs no second Show Job. */
    char *raw = hs_job_recent_raw(s, a.job_id, conn, SYNC_JOB_FRESH_MS);
    int rc = hs_syncq_submit(s->syncq, conn, a.job_id, a.ids, a.n_ids, a.ready, a.n_ready, raw, id,
                             &err);
    free(raw);
    if (rc) {
        hs_resp_fail(r, rc, &err, "queueing the sync");
        goto out;
    }
    hs_events_wake(s->events); /* the sync's work item is committed: start it now */
    char *loc = hs_aprintf("/api/syncs/%s", id);
    hs_resp_json(r, 202,
                 json_pack("{s:s, s:s, s:I, s:o}", "id", id, "status", "queued", "job_id",
                           (json_int_t)a.job_id, "connection", hs_json_text(conn)));
    hs_resp_header(r, "Location", loc);
    hs_info("sync msg=\"queued\" id=%s job=%lld models=%zu when_ready=%zu", id, (long long)a.job_id,
            a.n_ids, a.n_ready);
    free(loc);
out:
    sync_ask_clear(&a);
    free(conn);
}

/* GET /api/records?since=CURSOR */
void hs_route_records(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    int64_t since;
    if (hs_req_int_arg(q, "since", 0, INT64_MAX, 0, &since, r) != 0)
        return;
    char *doc = NULL;
    struct hs_error err = {0};
    struct hs_scope scope_buf;
    int rc =
        s->store->records->export_since(s->store, since, hs_req_scope(q, &scope_buf), &doc, &err);
    if (rc) {
        hs_resp_fail(r, rc, &err, "reading the records");
        return;
    }
    hs_resp_set(r, 200, "application/json", doc, strlen(doc));
}

/* GET /files/{sha256} */
void hs_route_file(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    const char *sha = q->params[0];
    if (!hs_is_hex(sha, 64)) {
        hs_resp_error(r, 400, "bad_request",
                      "a file is named by the 64 lowercase hex digits of "
                      "its SHA-256");
        return;
    }
    struct hs_artifact_row a = {0};
    struct hs_error err = {0};
    struct hs_scope scope_buf;
    /* A session sees the bytes of its connections' jobs only. */
    int rc =
        s->store->records->artifact_by_sha(s->store, sha, hs_req_scope(q, &scope_buf), &a, &err);
    if (rc == HS_ERR_NOT_FOUND) {
        hs_resp_error(r, 404, "not_found", "no stored file %s", sha);
        return;
    }
    if (rc) {
        hs_resp_fail(r, rc, &err, "finding the file");
        return;
    }
    /* Content-addressed: the bytes behind a name never change. */
    hs_resp_stored_file(q, r, s->blobs, &a, "private, max-age=31536000, immutable");
    hs_artifact_row_clear(&a);
}

/* The artifact's bytes fetched through the model's connection (sync/engine.h): a person waits,
 * so the request goes ahead of background work in the budget (this thread's class). */
static int fetch_recorded(struct hs_server *s, const struct hs_model_row *m, const char *kind,
                          struct hs_artifact_row *a, struct hs_error *err)
{
    const char *key = m->connection_key ? m->connection_key : "default";
    struct hs_client *c = NULL;
    int rc = hs_client_pool_acquire(s->pool, key, &c, err);
    if (rc)
        return rc;
    hs_client_set_thread_priority(HS_PRIO_INTERACTIVE);
    struct hs_sync_engine e = {
        .client = c, .store = s->store, .data_dir = s->data_dir, .blobs = s->blobs};
    rc = hs_sync_fetch_artifact(&e, m->id, kind, a, NULL, err);
    hs_client_pool_release(s->pool, c);
    hs_connection_note(s, key, rc == HS_ERR_NOT_FOUND ? HS_OK : rc);
    return rc;
}

/* GET /files/models/{model_id}/{kind}: a model's artifact by kind, fetched from Hover on first
 * use when its sync recorded it without downloading it (sync/profile.h). */
void hs_route_file_model(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    int64_t id = 0;
    const char *kind = q->params[1];
    if (hs_parse_i64_range(q->params[0], 1, INT64_MAX, &id) != 0 || !kind || !*kind) {
        hs_resp_error(r, 400, "bad_request", "a model id (a positive integer) and a kind expected");
        return;
    }
    struct hs_model_row m = {0};
    struct hs_artifact_row a = {0};
    struct hs_error err = {0};
    struct hs_scope scope_buf;
    int rc = s->store->records->model_get(s->store, id, &m, &err);
    /* A session sees the models of its connections' jobs only: others are unknown to it. */
    if (rc == HS_OK && !hs_scope_has(hs_req_scope(q, &scope_buf), m.connection_key))
        rc = HS_ERR_NOT_FOUND;
    if (rc == HS_OK)
        rc = s->store->records->artifact_get(s->store, id, kind, &a, &err);
    if (rc == HS_ERR_NOT_FOUND) {
        hs_resp_error(r, 404, "not_found", "no artifact '%s' recorded for model %lld", kind,
                      (long long)id);
        goto out;
    }
    if (rc) {
        hs_resp_fail(r, rc, &err, "finding the artifact");
        goto out;
    }
    if (a.not_fetched) {
        /* Only a download spends a Hover request: a stored file does not count for the caller. */
        hs_artifact_row_clear(&a);
        if (hs_quota_check(q, r) != 0)
            goto out;
        if ((rc = fetch_recorded(s, &m, kind, &a, &err))) {
            hs_resp_fail(r, rc, &err, "fetching the artifact from Hover");
            goto out;
        }
    }
    /* By kind, the bytes may change with the next sync: a short private cache. */
    hs_resp_stored_file(q, r, s->blobs, &a, "private, max-age=60");
out:
    hs_artifact_row_clear(&a);
    hs_model_row_clear(&m);
}

/* POST /api/tickets {"purpose":"events","sync_id":ID} | {"purpose":"file","sha256":SHA} |
 * {"purpose":"connect","connection":NAME}: a ticket for what cannot send a header, for the
 * caller's own sync, file or connection only (else 404, like the thing itself). */
void hs_route_tickets_create(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    json_t *body = NULL, *st = NULL;
    char *path = NULL;
    if (hs_req_json_object(q, false, &body, r) != 0)
        return;
    const char *purpose = json_string_value(json_object_get(body, "purpose"));
    const char *target = NULL;
    if (purpose && strcmp(purpose, "events") == 0) {
        int64_t v = 0;
        target = json_string_value(json_object_get(body, "sync_id"));
        if (!target) {
            hs_resp_error(r, 400, "bad_request", "sync_id must be a string");
            goto out;
        }
        if (hs_sync_state(q, target, &st, &v, r) != 0)
            goto out;
        char *esc = hs_url_escape(target);
        path = hs_aprintf("/api/syncs/%s/events?", esc);
        free(esc);
    } else if (purpose && strcmp(purpose, "file") == 0) {
        target = json_string_value(json_object_get(body, "sha256"));
        if (!target || !hs_is_hex(target, 64)) {
            hs_resp_error(r, 400, "bad_request", "sha256 must be 64 lowercase hex digits");
            goto out;
        }
        struct hs_artifact_row a = {0};
        struct hs_error err = {0};
        struct hs_scope scope_buf;
        int rc = s->store->records->artifact_by_sha(s->store, target, hs_req_scope(q, &scope_buf),
                                                    &a, &err);
        hs_artifact_row_clear(&a);
        if (rc) {
            hs_resp_fail(r, rc, &err, "finding the file");
            goto out;
        }
        path = hs_aprintf("/files/%s?", target);
    } else if (purpose && strcmp(purpose, "connect") == 0) {
        json_t *c = json_object_get(body, "connection");
        if (c && !json_is_null(c) && !json_is_string(c)) {
            hs_resp_error(r, 400, "bad_request", "connection must be a string");
            goto out;
        }
        target = json_string_value(c);
        if (hs_connect_allowed(q, target, r) != 0)
            goto out;
        char *esc = target && *target ? hs_url_escape(target) : NULL;
        path = esc ? hs_aprintf("/connect?connection=%s&", esc) : hs_strdup("/connect?");
        free(esc);
    } else {
        hs_resp_error(r, 400, "bad_request", "purpose must be events, file or connect");
        goto out;
    }
    char ticket[65];
    int64_t expires_ms = 0;
    struct hs_error err = {0};
    int rc = hs_ticket_issue(q, purpose, target, ticket, &expires_ms, &err);
    if (rc == HS_ERR_BUSY) {
        hs_resp_error(r, 503, "internal", "too many tickets are in use; try again in a minute");
        hs_resp_header(r, "Retry-After", "60");
        goto out;
    }
    if (rc) {
        hs_resp_fail(r, rc, &err, "storing the ticket");
        goto out;
    }
    char *url = hs_aprintf("%s%sticket=%s", s->public_url, path, ticket);
    int64_t expires_s = expires_ms / 1000;
    hs_resp_json(r, 201,
                 json_pack("{s:s, s:s, s:s, s:o}", "ticket", ticket, "purpose", purpose, "url", url,
                           "expires_at", iso_time(expires_s)));
    free(url);
    OPENSSL_cleanse(ticket, sizeof ticket);
out:
    free(path);
    json_decref(st);
    json_decref(body);
}
