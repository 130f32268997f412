/* server.c: the service's listeners and request pipeline (server.h).
 *
 * Life of a request (one struct req_ctx):
 *  0. the connection is noted (conns.c): its request's headers must be complete within
 *     --header-timeout, however slowly they trickle, or the timer thread closes it;
 *  1. first access-handler call: the framing is checked (hs_http_framing: 400 or 501 at once,
 *     the connection then closes); otherwise accept only (answering on the first call makes
 *     libmicrohttpd drop keep-alive); a Content-Length over the cap marks the body too big (413
 *     at once when the client waits for "100 Continue" or when it is not worth reading);
 *  2. body chunks: kept up to HS_HTTP_BODY_MAX, the rest read and dropped. Past DISCARD_MAX of a
 *     chunked body the connection closes without an answer: libmicrohttpd 0.9.75 accepts an
 *     answer only before the body or after all of it;
 *  3. last call: Origin check (403), CORS preflight, route match (404/405, then web/ files),
 *     413, auth and CSRF (401/403), media type (415), the caller's rate (429); then the handler
 *     runs here, on a store worker while the connection is suspended (routes that wait on the
 *     store, the webhook receiver), or on a Hover worker (routes that wait on Hover): those get
 *     their own copy of the request, and the timer thread answers 504 once --hover-wait has
 *     passed while the handler goes on (its result fills the caches). A Hover route marked
 *     R_HERE_FIRST (the search) runs here first with q->no_wait on a SQLite store, and goes to a
 *     Hover worker only when it says it must wait (r->defer): most searches are answered by the
 *     local index, and the hand-over (a suspend, two thread switches, a resume) cost more than
 *     the search;
 *  4. the answer is queued with the common headers (CORS, nosniff, no-store, CSP for HTML) and
 *     counted in the metrics.
 * Two pools: a slow Hover holds up Hover workers only, never the store routes or the webhook
 * intake. Stopping: stop accepting, end progress streams, wait for requests in flight (bounded),
 * cancel the transfers to Hover, answer what is still queued for the workers with 503, then stop
 * libmicrohttpd (which must not see a suspended connection). */
#include "server/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "hover/multi.h"

/* DEFAULT_WORKERS, the store workers: the webhook intake's deliveries in flight (one per
 * worker) share group commits, so more of them make bigger batches: fewer log writes and fsyncs
 * per delivery. */
#define DEFAULT_THREADS       4
#define DEFAULT_WORKERS       16
#define DEFAULT_HOVER_WORKERS 32
#define DEFAULT_HOVER_WAIT_MS 20000
#define DEFAULT_HEADER_MS     10000
#define CONNECTION_LIMIT      1024u
#define FD_RESERVE            64u /* files, the store, connections to Hover */
#define TICK_MS               100
#define PER_IP_LIMIT          64u
#define CONNECTION_TIMEOUT_S  30u
#define CONNECTION_MEMORY     ((size_t)64 * 1024)
#define DISCARD_MAX           ((uint64_t)1 << 20)
#define WORK_QUEUE_MAX        512
#define STOP_GRACE_MS         10000

/* ---- the route table (docs/API.md) ---- */

const struct route hs_routes[] = {
    {"GET", "/healthz", 0, hs_route_healthz},
    {"GET", "/readyz", 0, hs_route_readyz},
    {"GET", "/metrics", 0, hs_route_metrics},
    {"GET", "/openapi.yaml", 0, hs_route_openapi},
    {"POST", "/api/sessions", R_AUTH | R_KEY_ONLY | R_WORKER | R_JSON_BODY,
     hs_route_sessions_create},
    {"DELETE", "/api/sessions/{id}", R_AUTH | R_KEY_ONLY | R_WORKER, hs_route_sessions_revoke},
    {"GET", "/api/session", R_AUTH, hs_route_session_get},
    {"DELETE", "/api/session", R_AUTH | R_WORKER, hs_route_session_end},
    {"GET", "/api/apikeys", R_AUTH | R_KEY_ONLY | R_WORKER, hs_route_apikeys_list},
    {"POST", "/api/apikeys", R_AUTH | R_KEY_ONLY | R_WORKER | R_JSON_BODY, hs_route_apikeys_create},
    {"DELETE", "/api/apikeys/{name}", R_AUTH | R_KEY_ONLY | R_WORKER, hs_route_apikeys_revoke},
    {"GET", "/api/connections", R_AUTH | R_WORKER, hs_route_connections},
    /* Deregisters the org's webhooks at Hover first (src/webhook/disconnect.h). */
    {"DELETE", "/api/connections/{name}", R_AUTH | R_KEY_ONLY | R_HOVER,
     hs_route_connection_delete},
    /* The local index answers most searches at once; Hover (and the debounce) on a worker. */
    {"GET", "/api/jobs", R_AUTH | R_HOVER | R_HERE_FIRST | R_QUOTA, hs_route_jobs_search},
    {"GET", "/api/jobs/{id}", R_AUTH | R_HOVER | R_QUOTA, hs_route_job_show},
    {"POST", "/api/syncs", R_AUTH | R_HOVER | R_QUOTA | R_JSON_BODY, hs_route_syncs_create},
    {"GET", "/api/syncs/{id}", R_AUTH, hs_route_sync_get},
    {"GET", "/api/syncs/{id}/events", R_AUTH | R_TICKET, hs_route_sync_events},
    {"GET", "/api/records", R_AUTH | R_WORKER, hs_route_records},
    {"GET", "/files/{sha256}", R_AUTH | R_WORKER | R_TICKET, hs_route_file},
    /* Asks Hover for an artifact a sync recorded without downloading it (its first use); counts
     * against the caller's rate only when it downloads. */
    {"GET", "/files/models/{model_id}/{kind}", R_AUTH | R_HOVER, hs_route_file_model},
    /* Counts against the caller's rate only when it downloads (hs_quota_check). */
    {"GET", "/api/images/{id}", R_AUTH | R_HOVER, hs_route_image},
    {"POST", "/api/tickets", R_AUTH | R_WORKER | R_JSON_BODY, hs_route_tickets_create},
    {"GET", "/connect", R_AUTH | R_WORKER | R_TICKET, hs_route_connect},
    /* Authenticated by the flow's cookie and its confirmation token (routes_web.c); may register
     * the org's webhook at Hover. */
    {"POST", "/connect/confirm", R_HOVER, hs_route_connect_confirm},
    {"GET", "/oauth/callback", R_HOVER, hs_route_oauth_callback},
    {"GET", "/modal", R_WORKER, hs_route_modal},
    /* Hover's webhook list is cached a minute: at most one request per connection. */
    {"GET", "/api/status", R_AUTH | R_KEY_ONLY | R_HOVER, hs_route_status},
    /* Authenticated by its signature (src/webhook/receiver.h), not by key or session. */
    {"POST", HS_WEBHOOK_PATH, R_WORKER, hs_route_webhook_hover},
};
const size_t hs_n_routes = sizeof hs_routes / sizeof hs_routes[0];

/* Metrics labels: the routes, then requests no route took. */
enum { LBL_STATIC = 0, LBL_UNMATCHED, LBL_PREFLIGHT, LBL_DEMO, N_EXTRA_LABELS };
static const char *const extra_labels[N_EXTRA_LABELS] = {"static", "unmatched", "preflight",
                                                         "demo"};

/* ---- runtime ---- */

enum phase { PH_NEW, PH_BODY, PH_WORKING, PH_READY, PH_DONE };

struct listener {
    struct hs_server *srv;
    enum hs_listener_kind kind;
};

struct req_ctx {
    struct listener *l;
    /* The connection's (until libmicrohttpd completes the request) and a Hover worker's (until
     * its handler returns, which may be after the 504 went out). */
    atomic_int refs;
    enum phase phase;
    struct hs_buf body;
    bool too_big;
    bool bad_path; /* the raw path has an escaped NUL */
    bool counted;  /* in counters.in_flight */
    char *raw_uri; /* the request target as sent (webhook signatures cover it) */
    uint64_t discarded;
    struct hs_req req;
    struct hs_resp resp;
    size_t label; /* metrics label index */
    int64_t start_ms;
    struct req_ctx *next; /* work queue */
    /* A Hover-backed request: the handler's own copy of the request and its answer, the time
     * its answer is due, and its place among the requests waiting (under rt->hlock). */
    struct hs_req_values vals;
    struct hs_req wreq;
    struct hs_resp wresp;
    int64_t deadline_ms;
    bool waiting, timed_out;
    struct req_ctx *wprev, *wnext;
};

/* A pool of worker threads and its queue. */
struct wpool {
    struct hs_server *srv;
    bool hover; /* Hover-backed routes: detached handlers, bounded waits */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct req_ctx *head, *tail;
    size_t queued;
    bool stopping;
    pthread_t *threads;
    int n_threads;
};

struct server_rt {
    struct listener api_l, demo_l;
    struct MHD_Daemon *api, *demo;
    MHD_socket api_sock, demo_sock; /* returned by quiesce: closed after stop */
    const char **labels;
    /* the end of the requests in flight (counters.in_flight), for the graceful stop */
    pthread_mutex_t lock;
    pthread_cond_t idle;
    /* the workers: routes that wait on the store, and routes that wait on Hover */
    struct wpool store_pool, hover_pool;
    /* Hover-backed requests whose answer is not queued yet, for the 504 at their deadline. */
    pthread_mutex_t hlock;
    struct req_ctx *waiting;
    /* the timer thread: header deadlines (s->conns) and Hover waits */
    pthread_t timer;
    bool timer_started;
    atomic_bool timer_stop;
    struct hs_curl_multi *upstream;
    bool stopped;
    /* Set once every listener is up and the origins are final: requests before that (a client
     * racing the start) get a 503 instead of half-built state. */
    atomic_bool ready;
};

static void in_flight_add(struct hs_server *s, int d)
{
    pthread_mutex_lock(&s->rt->lock);
    if (atomic_fetch_add(&s->counters.in_flight, d) + d == 0)
        pthread_cond_broadcast(&s->rt->idle);
    pthread_mutex_unlock(&s->rt->lock);
}

/* ---- answers ---- */

static bool is_html(const char *ctype)
{
    return ctype && strncasecmp(ctype, "text/html", 9) == 0;
}

static bool is_json(const char *ctype)
{
    return ctype && strncasecmp(ctype, "application/json", 16) == 0;
}

static void add_common_headers(struct req_ctx *c, struct MHD_Response *mr)
{
    struct hs_req *q = &c->req;
    struct hs_resp *r = &c->resp;
    struct hs_server *s = c->l->srv;
    if (!hs_resp_get_header(r, "X-Content-Type-Options"))
        MHD_add_response_header(mr, "X-Content-Type-Options", "nosniff");
    if (!hs_resp_get_header(r, "Referrer-Policy"))
        MHD_add_response_header(mr, "Referrer-Policy", "no-referrer");
    if (is_json(r->ctype) && !hs_resp_get_header(r, "Cache-Control"))
        MHD_add_response_header(mr, "Cache-Control", "no-store");
    if (is_html(r->ctype) && !hs_resp_get_header(r, "Content-Security-Policy"))
        MHD_add_response_header(mr, "Content-Security-Policy", s->csp);
    if (c->l->kind == HS_LISTENER_API && q->origin && q->origin_allowed) {
        MHD_add_response_header(mr, "Access-Control-Allow-Origin", q->origin);
        MHD_add_response_header(mr, "Access-Control-Allow-Credentials", "true");
        MHD_add_response_header(mr, "Access-Control-Expose-Headers", "Location, ETag");
    }
    if (c->l->kind == HS_LISTENER_API)
        MHD_add_response_header(mr, "Vary", "Origin");
}

static enum MHD_Result respond(struct req_ctx *c)
{
    struct hs_resp *r = &c->resp;
    struct hs_server *s = c->l->srv;
    c->phase = PH_DONE;
    struct MHD_Response *mr = NULL;
    if (r->reader) {
        if (r->reader_bind)
            r->reader_bind(r->reader_cls, c->req.conn);
        mr = MHD_create_response_from_callback(r->reader_size, r->reader_block, r->reader,
                                               r->reader_cls, r->reader_free);
        if (mr) {
            r->reader = NULL;
            r->reader_cls = NULL;
            r->reader_free = NULL;
        }
    } else if (r->fd >= 0) {
        mr = MHD_create_response_from_fd64(r->fd_size, r->fd);
        if (mr)
            r->fd = -1; /* libmicrohttpd closes it */
    } else if (r->body) {
        mr = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
        if (mr) {
            r->body = NULL;
            r->len = 0;
        }
    } else {
        mr = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    if (!mr) {
        hs_error_log("http msg=\"cannot create a response\" path=%s", c->req.path);
        return MHD_NO;
    }
    if (r->ctype && r->status != 304)
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, r->ctype);
    for (size_t i = 0; i < r->n_headers; i++)
        MHD_add_response_header(mr, r->hname[i], r->hvalue[i]);
    add_common_headers(c, mr);
    enum MHD_Result ok = MHD_queue_response(c->req.conn, (unsigned)r->status, mr);
    MHD_destroy_response(mr);
    int64_t ms = hs_server_mono_ms(s) - c->start_ms;
    hs_metrics_observe(s->metrics, c->label, r->status, (double)ms / 1000.0);
    if (c->req.route && c->req.route->fn == hs_route_webhook_hover)
        hs_metrics_webhook_intake(s->metrics, (double)ms / 1000.0);
    if (hs_log_level <= HS_LOG_INFO) {
        /* The path is the client's: no control characters or quotes reach the log line. */
        char path[201];
        size_t i = 0;
        for (const char *p = c->req.path ? c->req.path : ""; *p && i < sizeof path - 1; p++)
            path[i++] =
                ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '"' || *p == ' ') ? '?' : *p;
        path[i] = '\0';
        hs_info("http method=%.16s path=%s status=%d ms=%lld", c->req.method ? c->req.method : "-",
                path, r->status, (long long)ms);
    }
    return ok;
}

/* A webhook delivery refused before the receiver saw it, counted by result all the same. */
static void webhook_refused(struct req_ctx *c, enum hs_webhook_result result)
{
    if (c->l->kind == HS_LISTENER_API && c->req.path && strcmp(c->req.path, HS_WEBHOOK_PATH) == 0)
        hs_metrics_webhook(c->l->srv->metrics, result);
}

/* ---- routing ---- */

/* Matches path against pattern; captures {name} segments into q->params. */
static bool match(const char *pattern, const char *path, struct hs_req *q)
{
    char *caps[HS_HTTP_MAX_PARAMS] = {0};
    size_t n = 0;
    if (!hs_path_match(pattern, path, q ? caps : NULL, HS_HTTP_MAX_PARAMS, &n))
        return false;
    if (q) {
        for (size_t i = 0; i < n; i++)
            q->params[i] = caps[i];
        q->n_params = n;
    }
    return true;
}

static const char *route_method(const char *method)
{
    return strcmp(method, "HEAD") == 0 ? "GET" : method;
}

/* The route for the request, or NULL with *allow listing the methods of the path (if any). */
static const struct route *find_route(struct hs_req *q, char *allow, size_t an, size_t *index)
{
    allow[0] = '\0';
    const char *m = route_method(q->method);
    for (size_t i = 0; i < hs_n_routes; i++) {
        if (!match(hs_routes[i].pattern, q->path, NULL))
            continue;
        if (strcmp(hs_routes[i].method, m) == 0) {
            (void)match(hs_routes[i].pattern, q->path, q);
            *index = i;
            return &hs_routes[i];
        }
        size_t len = strlen(allow);
        (void)snprintf(allow + len, an - len, "%s%s", len ? ", " : "", hs_routes[i].method);
    }
    return NULL;
}

static void preflight(struct req_ctx *c)
{
    struct hs_req *q = &c->req;
    struct hs_resp *r = &c->resp;
    hs_resp_set(r, 204, NULL, NULL, 0);
    if (q->origin && q->origin_allowed) {
        hs_resp_header(r, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
        hs_resp_header(r, "Access-Control-Allow-Headers",
                       "Authorization, Content-Type, X-CSRF-Token");
        hs_resp_header(r, "Access-Control-Max-Age", "600");
    }
    hs_resp_header(r, "Allow", "GET, HEAD, POST, DELETE, OPTIONS");
}

/* ---- workers: the store pool and the Hover pool ---- */

static bool pool_enqueue(struct wpool *p, struct req_ctx *c)
{
    pthread_mutex_lock(&p->lock);
    if (p->stopping || p->queued >= WORK_QUEUE_MAX) {
        pthread_mutex_unlock(&p->lock);
        return false;
    }
    c->phase = PH_WORKING;
    MHD_suspend_connection(c->req.conn);
    c->next = NULL;
    if (p->tail)
        p->tail->next = c;
    else
        p->head = c;
    p->tail = c;
    p->queued++;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    return true;
}

/* The waiting list of Hover-backed requests; under rt->hlock. */
static void wait_link(struct hs_server *s, struct req_ctx *c)
{
    struct server_rt *rt = s->rt;
    atomic_fetch_add(&s->counters.hover_waiting, 1);
    c->wprev = NULL;
    c->wnext = rt->waiting;
    if (rt->waiting)
        rt->waiting->wprev = c;
    rt->waiting = c;
    c->waiting = true;
}

static void wait_unlink(struct hs_server *s, struct req_ctx *c)
{
    struct server_rt *rt = s->rt;
    atomic_fetch_sub(&s->counters.hover_waiting, 1);
    if (c->wprev)
        c->wprev->wnext = c->wnext;
    else
        rt->waiting = c->wnext;
    if (c->wnext)
        c->wnext->wprev = c->wprev;
    c->wprev = c->wnext = NULL;
    c->waiting = false;
}

/* Hands a Hover-backed request to the Hover pool with its own copy of the request: the handler
 * never touches the connection, which may be answered (504) and gone before it returns. */
static bool hover_submit(struct hs_server *s, struct req_ctx *c)
{
    struct server_rt *rt = s->rt;
    hs_req_values_copy(&c->vals, c->req.conn, c->req.method, c->req.path);
    c->wreq = c->req;
    c->wreq.conn = NULL;
    c->wreq.values = &c->vals;
    c->wreq.method = c->vals.method;
    c->wreq.path = c->vals.path;
    c->wreq.origin = c->req.origin ? hs_req_header(&c->wreq, "Origin") : NULL;
    hs_resp_init(&c->wresp);
    c->deadline_ms = c->start_ms + s->hover_wait_ms;
    atomic_fetch_add(&c->refs, 1); /* the worker's */
    /* Linked before it is queued, under the lock the timer takes: the timer cannot answer a
     * connection that is not suspended yet, nor the worker finish one that is not linked. */
    pthread_mutex_lock(&rt->hlock);
    wait_link(s, c);
    bool ok = pool_enqueue(&rt->hover_pool, c);
    if (!ok)
        wait_unlink(s, c);
    pthread_mutex_unlock(&rt->hlock);
    if (!ok)
        atomic_fetch_sub(&c->refs, 1);
    return ok;
}

static void ctx_release(struct req_ctx *c);

/* A Hover worker's turn: the handler runs on its copy unless the answer already went out (504
 * while it was queued); its answer goes out unless the timer answered first. */
static void hover_run(struct hs_server *s, struct req_ctx *c, bool stopping)
{
    struct server_rt *rt = s->rt;
    pthread_mutex_lock(&rt->hlock);
    bool live = c->waiting;
    pthread_mutex_unlock(&rt->hlock);
    if (stopping) {
        hs_resp_error(&c->wresp, 503, "internal", "the service is stopping; try again");
        hs_resp_header(&c->wresp, "Retry-After", "5");
    } else if (live) {
        atomic_fetch_add(&s->counters.hover_running, 1);
        c->req.route->fn(&c->wreq, &c->wresp);
        atomic_fetch_sub(&s->counters.hover_running, 1);
    }
    pthread_mutex_lock(&rt->hlock);
    if (c->waiting) {
        wait_unlink(s, c);
        struct hs_resp mine = c->wresp;
        c->wresp = c->resp;
        c->resp = mine;
        c->phase = PH_READY;
        MHD_resume_connection(c->req.conn);
        atomic_fetch_add(&s->counters.hover_answered, 1);
    }
    pthread_mutex_unlock(&rt->hlock);
    ctx_release(c);
}

/* The timer's turn: requests whose wait on Hover is over get their 504 now. */
static void hover_deadlines(struct hs_server *s)
{
    struct server_rt *rt = s->rt;
    int64_t now = hs_server_mono_ms(s);
    pthread_mutex_lock(&rt->hlock);
    struct req_ctx *next;
    for (struct req_ctx *c = rt->waiting; c; c = next) {
        next = c->wnext;
        if (now < c->deadline_ms)
            continue;
        wait_unlink(s, c);
        c->timed_out = true;
        hs_resp_error(&c->resp, 504, "upstream_timeout",
                      "Hover did not answer within %lld s; the request goes on in the "
                      "background (a job it fetches is cached): try again shortly",
                      (long long)(s->hover_wait_ms / 1000));
        hs_resp_header(&c->resp, "Retry-After", "5");
        c->phase = PH_READY;
        MHD_resume_connection(c->req.conn);
        atomic_fetch_add(&s->counters.hover_timed_out, 1);
    }
    pthread_mutex_unlock(&rt->hlock);
}

static void *worker_main(void *arg)
{
    struct wpool *p = arg;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->cond, &p->lock);
        if (!p->head)
            break;
        struct req_ctx *c = p->head;
        p->head = c->next;
        if (!p->head)
            p->tail = NULL;
        p->queued--;
        bool stopping = p->stopping;
        pthread_mutex_unlock(&p->lock);
        if (p->hover) {
            hover_run(p->srv, c, stopping);
        } else {
            if (stopping) {
                hs_resp_error(&c->resp, 503, "internal", "the service is stopping; try again");
                hs_resp_header(&c->resp, "Retry-After", "5");
                webhook_refused(c, HS_WH_UNAVAILABLE);
            } else {
                c->req.route->fn(&c->req, &c->resp);
            }
            c->phase = PH_READY;
            /* From here on the connection's thread owns c again. */
            MHD_resume_connection(c->req.conn);
        }
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static void pool_init(struct wpool *p, struct hs_server *s, bool hover)
{
    memset(p, 0, sizeof *p);
    p->srv = s;
    p->hover = hover;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
}

static int pool_start(struct wpool *p, int n)
{
    p->threads = hs_calloc((size_t)n, sizeof *p->threads);
    for (int i = 0; i < n; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0)
            return HS_ERR_INTERNAL;
        p->n_threads++;
    }
    return HS_OK;
}

/* Queued requests are answered 503, running handlers end; then the threads are joined. */
static void pool_stop(struct wpool *p)
{
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    p->n_threads = 0;
}

static void pool_destroy(struct wpool *p)
{
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p->threads);
}

/* ---- the timer: header deadlines and Hover waits ---- */

static void *timer_main(void *arg)
{
    struct hs_server *s = arg;
    struct timespec tick = {0, TICK_MS * 1000000L};
    while (!atomic_load(&s->rt->timer_stop)) {
        (void)hs_conns_reap(s->conns);
        hover_deadlines(s);
        nanosleep(&tick, NULL);
    }
    return NULL;
}

/* Draining: the probes and the metrics still answer, so that a balancer sees the drain and a
 * scraper its end; the rest is refused, to go to another instance. True when refused. */
static bool draining_refused(struct req_ctx *c)
{
    struct hs_server *s = c->l->srv;
    const char *p = c->req.path;
    if (!atomic_load(&s->draining) || strcmp(p, "/healthz") == 0 || strcmp(p, "/readyz") == 0 ||
        strcmp(p, "/metrics") == 0)
        return false;
    c->label = hs_n_routes + LBL_UNMATCHED;
    hs_resp_error(&c->resp, 503, "internal", "the service is stopping; try another instance");
    hs_resp_header(&c->resp, "Retry-After", "1");
    hs_resp_header(&c->resp, "Connection", "close");
    webhook_refused(c, HS_WH_UNAVAILABLE);
    return true;
}

/* An R_HERE_FIRST route on the connection's thread (server/internal.h): true when it answered,
 * false when it goes to its worker. */
static bool ran_here(struct hs_server *s, const struct route *rt, struct req_ctx *c)
{
    if (!(rt->flags & R_HERE_FIRST) || !s->here_first)
        return false;
    c->req.no_wait = true;
    rt->fn(&c->req, &c->resp);
    c->req.no_wait = false;
    if (!c->resp.defer)
        return true;
    hs_resp_clear(&c->resp); /* nothing was answered: the worker's turn */
    return false;
}

static enum MHD_Result dispatch(struct req_ctx *c)
{
    struct hs_server *s = c->l->srv;
    struct hs_req *q = &c->req;
    struct hs_resp *r = &c->resp;
    q->body = hs_buf_str(&c->body);
    q->body_len = c->body.len;

    if (!atomic_load(&s->rt->ready)) {
        c->label = hs_n_routes + LBL_UNMATCHED;
        hs_resp_error(r, 503, "internal", "the service is starting; try again");
        hs_resp_header(r, "Retry-After", "1");
        return respond(c);
    }
    if (c->bad_path) {
        c->label = hs_n_routes + LBL_UNMATCHED;
        hs_resp_error(r, 400, "bad_request", "malformed path");
        return respond(c);
    }
    if (draining_refused(c))
        return respond(c);
    if (c->l->kind == HS_LISTENER_DEMO) {
        c->label = hs_n_routes + LBL_DEMO;
        hs_route_demo(q, r);
        return respond(c);
    }
    q->origin = hs_req_header(q, "Origin");
    /* Hover's deliveries are server to server: no browser, no CORS; the signature is what
     * authenticates them, so an Origin header there is neither checked nor answered. */
    if (strcmp(q->path, HS_WEBHOOK_PATH) == 0)
        q->origin = NULL;
    if (q->origin) {
        q->origin_allowed = hs_origin_allowed(s, q->origin);
        if (!q->origin_allowed && !hs_origin_own(s, q->origin)) {
            c->label = hs_n_routes + LBL_UNMATCHED;
            hs_resp_error(r, 403, "forbidden",
                          "requests from origin %.200s are not allowed (see --allow-origin)",
                          q->origin);
            return respond(c);
        }
    }
    if (strcmp(q->method, "OPTIONS") == 0) {
        c->label = hs_n_routes + LBL_PREFLIGHT;
        preflight(c);
        return respond(c);
    }
    char allow[128];
    size_t index = 0;
    const struct route *rt = find_route(q, allow, sizeof allow, &index);
    if (!rt) {
        if (allow[0]) {
            c->label = hs_n_routes + LBL_UNMATCHED;
            hs_resp_error(r, 405, "method_not_allowed",
                          "%.16s is not allowed on %.200s (allowed: %s)", q->method, q->path,
                          allow);
            hs_resp_header(r, "Allow", allow);
            return respond(c);
        }
        bool get = strcmp(route_method(q->method), "GET") == 0;
        if (get && !hs_starts_with(q->path, "/api/") && !hs_starts_with(q->path, "/files/") &&
            hs_route_static(q, r)) {
            c->label = hs_n_routes + LBL_STATIC;
            return respond(c);
        }
        c->label = hs_n_routes + LBL_UNMATCHED;
        hs_resp_error(r, 404, "not_found", "no such route: %.16s %.200s", q->method, q->path);
        return respond(c);
    }
    q->route = rt;
    c->label = index;
    if (c->too_big) {
        hs_resp_error(r, 413, "payload_too_large", "request bodies are limited to %u bytes",
                      HS_HTTP_BODY_MAX);
        webhook_refused(c, HS_WH_TOO_BIG);
        return respond(c);
    }
    if ((rt->flags & R_AUTH) && hs_auth_check(q, r) != 0)
        return respond(c);
    if ((rt->flags & R_JSON_BODY) && q->body_len > 0) {
        const char *ct = hs_req_header(q, MHD_HTTP_HEADER_CONTENT_TYPE);
        if (!ct || strncasecmp(ct, "application/json", 16) != 0 ||
            (ct[16] != '\0' && ct[16] != ';' && ct[16] != ' ')) {
            hs_resp_error(r, 415, "unsupported_media_type",
                          "the body must be JSON (Content-Type: application/json)");
            return respond(c);
        }
    }
    /* Over the caller's rate, or answered here (R_HERE_FIRST): the answer goes out now. */
    if (((rt->flags & R_QUOTA) && hs_quota_check(q, r) != 0) || ran_here(s, rt, c))
        return respond(c);
    if (rt->flags & (R_WORKER | R_HOVER)) {
        bool queued =
            (rt->flags & R_HOVER) ? hover_submit(s, c) : pool_enqueue(&s->rt->store_pool, c);
        if (queued)
            return MHD_YES; /* answered when the worker (or the timer) resumes the connection */
        hs_resp_error(r, 503, "internal", "the service is busy or stopping; try again");
        hs_resp_header(r, "Retry-After", "1");
        webhook_refused(c, HS_WH_UNAVAILABLE);
        return respond(c);
    }
    rt->fn(q, r);
    return respond(c);
}

/* ---- libmicrohttpd callbacks ---- */

/* Created by the URI log callback, which sees the path before libmicrohttpd decodes it: "%00"
 * would end the decoded C string early and make "/a%00b" look like "/a". */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)conn;
    struct listener *l = cls;
    struct req_ctx *c = hs_calloc(1, sizeof *c);
    c->l = l;
    atomic_init(&c->refs, 1);
    c->phase = PH_NEW;
    hs_buf_init(&c->body, HS_HTTP_BODY_MAX);
    hs_resp_init(&c->resp);
    hs_resp_init(&c->wresp);
    c->req.body = "";
    c->start_ms = hs_server_mono_ms(l->srv);
    c->raw_uri = hs_strdup(uri);
    c->req.uri = c->raw_uri;
    const char *q = uri ? strchr(uri, '?') : NULL;
    size_t plen = uri ? (q ? (size_t)(q - uri) : strlen(uri)) : 0;
    for (size_t i = 0; i + 2 < plen; i++)
        if (uri[i] == '%' && uri[i + 1] == '0' && uri[i + 2] == '0')
            c->bad_path = true;
    return c;
}

/* The request's headers, pointing into libmicrohttpd's memory (for hs_http_framing). */
struct header_list {
    struct hs_req_value *v;
    size_t n;
};

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    struct header_list *h = cls;
    h->v = hs_realloc(h->v, (h->n + 1) * sizeof *h->v);
    h->v[h->n++] = (struct hs_req_value){(int)kind, (char *)key, (char *)value};
    return MHD_YES;
}

/* The first call, headers complete: framing that cannot be served is answered at once (the
 * connection then closes: what follows the headers cannot be trusted), and so is a body over
 * the cap when it is not worth reading or the client waits for "100 Continue" first. */
static enum MHD_Result first_call(struct req_ctx *c, struct MHD_Connection *conn,
                                  const char *version)
{
    hs_conns_headers_done(conn);
    struct header_list h = {0};
    (void)MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_header, &h);
    struct hs_framing f;
    hs_http_framing(version, h.v, h.n, &f);
    free(h.v);
    if (!f.status && f.has_length && f.length > HS_HTTP_BODY_MAX) {
        c->too_big = true;
        if (f.length > DISCARD_MAX || f.expect_continue) {
            f.status = 413;
            (void)snprintf(f.msg, sizeof f.msg, "request bodies are limited to %u bytes",
                           HS_HTTP_BODY_MAX);
        }
    }
    if (!f.status)
        return MHD_YES; /* accept; answer on a later call (keep-alive) */
    c->label = hs_n_routes + LBL_UNMATCHED;
    webhook_refused(c, f.status == 413 ? HS_WH_TOO_BIG : HS_WH_MALFORMED);
    hs_resp_error(&c->resp, f.status, f.status == 413 ? "payload_too_large" : NULL, "%s", f.msg);
    hs_resp_header(&c->resp, "Connection", "close");
    return respond(c);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct listener *l = cls;
    struct req_ctx *c = *con_cls;
    if (!c) {
        c = on_uri(l, NULL, conn);
        *con_cls = c;
    }
    if (c->phase == PH_NEW) {
        c->phase = PH_BODY;
        c->req.srv = l->srv;
        c->req.conn = conn;
        c->req.listener = l->kind;
        c->req.method = method;
        c->req.path = url;
        c->counted = true;
        in_flight_add(l->srv, 1);
        return first_call(c, conn, version);
    }
    switch (c->phase) {
    case PH_BODY:
        if (*upload_data_size) {
            size_t n = *upload_data_size;
            *upload_data_size = 0;
            if (!c->too_big && hs_buf_append(&c->body, upload_data, n) != HS_OK)
                c->too_big = true;
            if (c->too_big) {
                c->discarded += n;
                if (c->discarded > DISCARD_MAX) {
                    /* A chunked body (a Content-Length this long was answered before the body):
                     * not worth reading on, and libmicrohttpd 0.9.75 takes no answer in the
                     * middle of a body, so the connection closes without one. */
                    hs_info("http msg=\"chunked body over the limit: connection closed\" "
                            "read=%llu",
                            (unsigned long long)(c->discarded + c->body.len));
                    return MHD_NO;
                }
            }
            return MHD_YES;
        }
        return dispatch(c);
    case PH_READY:
        return respond(c);
    case PH_NEW:
    case PH_WORKING:
    case PH_DONE:
    default:
        *upload_data_size = 0;
        return MHD_YES;
    }
}

static void ctx_release(struct req_ctx *c)
{
    if (atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    hs_buf_free(&c->body);
    free(c->raw_uri);
    hs_resp_clear(&c->resp);
    hs_resp_clear(&c->wresp);
    hs_req_values_clear(&c->vals);
    for (size_t i = 0; i < c->req.n_params; i++)
        free(c->req.params[i]);
    hs_session_clear(&c->req.session);
    free(c);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    struct listener *l = cls;
    hs_conns_request_done(conn);
    struct req_ctx *c = *con_cls;
    if (!c)
        return;
    bool counted = c->counted;
    *con_cls = NULL;
    ctx_release(c); /* a Hover worker may still hold it */
    if (counted)
        in_flight_add(l->srv, -1);
}

/* ---- listeners ---- */

static struct MHD_Daemon *start_daemon(struct hs_server *s, struct listener *l, const char *spec,
                                       int *port_out, char *host_out, size_t hn,
                                       struct hs_error *err)
{
    char host[256];
    int port = 0;
    if (hs_listen_parse(spec, host, sizeof host, &port) != HS_OK) {
        hs_fail(err, HS_ERR_INVALID, "bad listen address '%s' (want HOST:PORT)", spec);
        return NULL;
    }
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char pstr[16];
    (void)snprintf(pstr, sizeof pstr, "%d", port);
    int gai = getaddrinfo(host, pstr, &hints, &ai);
    if (gai != 0 || !ai) {
        hs_fail(err, HS_ERR_INVALID, "cannot resolve '%s': %s", host, gai_strerror(gai));
        return NULL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (hs_log_level <= HS_LOG_DEBUG)
        flags |= MHD_USE_ERROR_LOG;
    bool demo = l->kind == HS_LISTENER_DEMO;
    unsigned threads = (unsigned)(demo ? 1 : s->threads);
    unsigned limit = demo ? PER_IP_LIMIT : s->max_connections;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, l, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_LIMIT, limit,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, PER_IP_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
        CONNECTION_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT, CONNECTION_MEMORY,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, l, MHD_OPTION_URI_LOG_CALLBACK, on_uri, l,
        MHD_OPTION_NOTIFY_CONNECTION, hs_conns_notify, s->conns, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!d) {
        hs_fail(err, HS_ERR_IO, "cannot listen on %s (address in use or not available)", spec);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    *port_out = info ? info->port : port;
    /* URLs handed to browsers name a host they can reach. */
    const char *h = host;
    if (!strcmp(host, "0.0.0.0"))
        h = "127.0.0.1";
    else if (!strcmp(host, "::"))
        h = "::1";
    (void)hs_strlcpy(host_out, h, hn);
    return d;
}

/* Each connection is a descriptor: the soft limit is raised to fit the connection limit (as far
 * as the hard limit allows), else the connection limit is lowered to fit. */
static void fit_fd_limit(struct hs_server *s)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t need = (rlim_t)s->max_connections + PER_IP_LIMIT + FD_RESERVE;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
        if (want > rl.rlim_cur) {
            rl.rlim_cur = want;
            (void)setrlimit(RLIMIT_NOFILE, &rl);
            (void)getrlimit(RLIMIT_NOFILE, &rl);
        }
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        rlim_t room = rl.rlim_cur > PER_IP_LIMIT + FD_RESERVE + 16
                          ? rl.rlim_cur - PER_IP_LIMIT - FD_RESERVE
                          : 16;
        hs_warn("server msg=\"open files limit too low for the connection limit\" "
                "limit=%llu max_connections=%u lowered_to=%llu",
                (unsigned long long)rl.rlim_cur, s->max_connections, (unsigned long long)room);
        s->max_connections = (unsigned)room;
    }
}

static char *origin_of_host(const char *host, int port)
{
    return strchr(host, ':') ? hs_aprintf("http://[%s]:%d", host, port)
                             : hs_aprintf("http://%s:%d", host, port);
}

/* scheme://authority of a URL, lowercased; NULL if it is not an http(s) URL. */
static char *url_origin(const char *url)
{
    size_t skip;
    if (strncasecmp(url, "http://", 7) == 0)
        skip = 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        skip = 8;
    else
        return NULL;
    const char *end = url + skip;
    while (*end && *end != '/' && *end != '?' && *end != '#')
        end++;
    if (end == url + skip)
        return NULL;
    char *o = hs_strndup(url, (size_t)(end - url));
    for (char *p = o; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    /* Browsers leave default ports out of Origin. */
    size_t n = strlen(o);
    if (skip == 7 && n > 3 && strcmp(o + n - 3, ":80") == 0)
        o[n - 3] = '\0';
    else if (skip == 8 && n > 4 && strcmp(o + n - 4, ":443") == 0)
        o[n - 4] = '\0';
    return o;
}

static bool url_chars_ok(const char *u)
{
    for (; *u; u++)
        if (!((*u >= 'a' && *u <= 'z') || (*u >= 'A' && *u <= 'Z') || (*u >= '0' && *u <= '9') ||
              strchr(":/._~-[]%", *u)))
            return false;
    return true;
}

static void add_origin(struct hs_server *s, char *o)
{
    for (size_t i = 0; i < s->n_origins; i++) {
        if (strcmp(s->origins[i], o) == 0) {
            free(o);
            return;
        }
    }
    s->origins = hs_realloc(s->origins, (s->n_origins + 1) * sizeof *s->origins);
    s->origins[s->n_origins++] = o;
}

static void build_csp(struct hs_server *s)
{
    struct hs_buf b;
    hs_buf_init(&b, 1u << 16);
    (void)hs_buf_appends(&b, "frame-ancestors 'self'");
    for (size_t i = 0; i < s->n_origins; i++)
        (void)hs_buf_appendf(&b, " %s", s->origins[i]);
    free(s->csp);
    s->csp = hs_buf_take(&b, NULL);
}

/* What hs_server_new refuses before it builds anything. */
static int config_check(const struct hs_server_config *cfg, const struct hs_server_deps *deps,
                        struct hs_error *err)
{
    if (!cfg || !deps || !deps->store || !deps->pool || !cfg->listen)
        return hs_fail(err, HS_ERR_INVALID,
                       "the server needs a listen address, a store and a client pool");
    char host[256];
    int port;
    if (hs_listen_parse(cfg->listen, host, sizeof host, &port) != HS_OK)
        return hs_fail(err, HS_ERR_INVALID, "bad listen address '%s' (want HOST:PORT)",
                       cfg->listen);
    if (cfg->demo_listen && hs_listen_parse(cfg->demo_listen, host, sizeof host, &port) != HS_OK)
        return hs_fail(err, HS_ERR_INVALID, "bad demo CRM address '%s' (want HOST:PORT)",
                       cfg->demo_listen);
    if (cfg->public_url) {
        char *o = url_origin(cfg->public_url);
        bool ok = o && url_chars_ok(cfg->public_url);
        free(o);
        if (!ok)
            return hs_fail(err, HS_ERR_INVALID,
                           "bad public URL '%s' (want http(s)://HOST[:PORT][/PATH])",
                           cfg->public_url);
    }
    return HS_OK;
}

int hs_server_new(const struct hs_server_config *cfg, const struct hs_server_deps *deps,
                  struct hs_server **out, struct hs_error *err)
{
    int rc = config_check(cfg, deps, err);
    if (rc)
        return rc;
    struct hs_server *s = hs_calloc(1, sizeof *s);
    s->listen = hs_strdup(cfg->listen);
    s->demo_listen = hs_strdup(cfg->demo_listen);
    s->web_dir = hs_strdup(cfg->web_dir ? cfg->web_dir : "web");
    s->data_dir = hs_strdup(cfg->data_dir ? cfg->data_dir : ".");
    hs_blobs_local(&s->local_blobs, s->data_dir);
    s->blobs = cfg->blobs ? cfg->blobs : &s->local_blobs;
    s->hover_url = hs_strdup(cfg->hover_url ? cfg->hover_url : "https://hover.to");
    s->client_id = hs_strdup(cfg->client_id && *cfg->client_id ? cfg->client_id : NULL);
    s->client_secret =
        hs_strdup(cfg->client_secret && *cfg->client_secret ? cfg->client_secret : NULL);
    s->public_url_cfg = hs_strdup(cfg->public_url);
    if (cfg->api_key_hash) {
        memcpy(s->api_key_hash, cfg->api_key_hash, 32);
        s->has_env_key = true;
    }
    pthread_mutex_init(&s->keys_lock, NULL);
    s->metrics_public = cfg->metrics_public;
    s->threads = cfg->threads > 0 ? cfg->threads : DEFAULT_THREADS;
    s->workers = cfg->workers > 0 ? cfg->workers : DEFAULT_WORKERS;
    s->hover_workers = cfg->hover_workers > 0 ? cfg->hover_workers : DEFAULT_HOVER_WORKERS;
    s->hover_wait_ms = cfg->hover_wait_ms > 0 ? cfg->hover_wait_ms : DEFAULT_HOVER_WAIT_MS;
    s->header_timeout_ms = cfg->header_timeout_ms > 0 ? cfg->header_timeout_ms : DEFAULT_HEADER_MS;
    s->max_connections = cfg->max_connections > 0 ? cfg->max_connections : CONNECTION_LIMIT;
    s->store = deps->store;
    s->here_first = deps->store && strcmp(deps->store->ops->name, "sqlite") == 0;
    s->quota = hs_quota_new(cfg->caller_rate, deps->store);
    s->rate_limit = cfg->rate_limit;
    s->pool = deps->pool;
    s->search = deps->search;
    s->syncq = deps->syncq;
    s->events = deps->events;
    s->duties = deps->duties;
    s->limiter = deps->limiter;
    s->outbox = deps->outbox;
    atomic_init(&s->draining, false);
    s->clock = deps->clock ? deps->clock : hs_clock_system();
    s->provider = hs_client_pool_provider(deps->pool);
    s->webhook_delay_ms = cfg->webhook_delay_ms > 0 ? cfg->webhook_delay_ms : 25;
    s->register_webhooks = cfg->register_webhooks;
    s->webhook_cache = hs_webhook_cache_new();
    pthread_mutex_init(&s->cache_lock, NULL);
    atomic_init(&s->oauth_requests, 0);

    struct server_rt *rt = hs_calloc(1, sizeof *rt);
    s->rt = rt;
    rt->api_l = (struct listener){s, HS_LISTENER_API};
    rt->demo_l = (struct listener){s, HS_LISTENER_DEMO};
    rt->api_sock = MHD_INVALID_SOCKET;
    rt->demo_sock = MHD_INVALID_SOCKET;
    atomic_init(&rt->ready, false);
    pthread_mutex_init(&rt->lock, NULL);
    pthread_cond_init(&rt->idle, NULL);
    pool_init(&rt->store_pool, s, false);
    pool_init(&rt->hover_pool, s, true);
    pthread_mutex_init(&rt->hlock, NULL);
    atomic_init(&rt->timer_stop, false);
    rt->upstream = deps->upstream;
    rt->labels = hs_calloc(hs_n_routes + N_EXTRA_LABELS, sizeof *rt->labels);
    for (size_t i = 0; i < hs_n_routes; i++)
        rt->labels[i] = hs_routes[i].pattern;
    for (size_t i = 0; i < N_EXTRA_LABELS; i++)
        rt->labels[hs_n_routes + i] = extra_labels[i];
    s->metrics = hs_metrics_new(rt->labels, hs_n_routes + N_EXTRA_LABELS);
    for (size_t i = 0; i < cfg->n_allow_origins; i++) {
        const char *a = cfg->allow_origins[i];
        /* An origin is scheme://host[:port]: nothing after it but an optional '/'. */
        const char *rest = strncasecmp(a, "https://", 8) == 0  ? a + 8
                           : strncasecmp(a, "http://", 7) == 0 ? a + 7
                                                               : NULL;
        const char *tail = rest ? strpbrk(rest, "/?#") : NULL;
        bool ok = rest && *rest && rest != tail && url_chars_ok(a) &&
                  (!tail || (tail[0] == '/' && tail[1] == '\0'));
        char *o = ok ? url_origin(a) : NULL;
        if (!o) {
            hs_server_free(s);
            return hs_fail(err, HS_ERR_INVALID,
                           "bad origin '%s' (want scheme://host[:port], e.g. "
                           "https://crm.example.com)",
                           a);
        }
        add_origin(s, o);
    }
    *out = s;
    return HS_OK;
}

int hs_server_start(struct hs_server *s, struct hs_error *err)
{
    struct server_rt *rt = s->rt;
    char host[256];
    int rc = hs_sse_start(s, err);
    if (!rc)
        rc = hs_blobstream_start(s, err);
    if (rc)
        return rc;
    fit_fd_limit(s);
    s->conns = hs_conns_new(s->clock, s->header_timeout_ms, CONNECTION_TIMEOUT_S * 1000,
                            s->max_connections);
    if (pool_start(&rt->store_pool, s->workers) != HS_OK ||
        pool_start(&rt->hover_pool, s->hover_workers) != HS_OK ||
        pthread_create(&rt->timer, NULL, timer_main, s) != 0) {
        hs_server_stop(s);
        return hs_fail(err, HS_ERR_INTERNAL, "cannot start the worker threads");
    }
    rt->timer_started = true;
    rt->api = start_daemon(s, &rt->api_l, s->listen, &s->port, host, sizeof host, err);
    if (!rt->api) {
        hs_server_stop(s);
        return err ? err->code : HS_ERR_IO;
    }
    char *bound = origin_of_host(host, s->port);
    s->own_origins[s->n_own++] = hs_strdup(bound);
    if (strcmp(host, "127.0.0.1") == 0 || strcmp(host, "::1") == 0)
        s->own_origins[s->n_own++] = hs_aprintf("http://localhost:%d", s->port);
    if (s->public_url_cfg) {
        size_t n = strlen(s->public_url_cfg);
        while (n && s->public_url_cfg[n - 1] == '/')
            n--;
        s->public_url = hs_strndup(s->public_url_cfg, n);
    } else {
        s->public_url = hs_strdup(bound);
    }
    free(bound);
    s->public_origin = url_origin(s->public_url);
    if (s->n_own < 3)
        s->own_origins[s->n_own++] = hs_strdup(s->public_origin);
    s->cookie_secure = hs_starts_with(s->public_origin, "https://");

    if (s->demo_listen) {
        char dhost[256];
        rt->demo =
            start_daemon(s, &rt->demo_l, s->demo_listen, &s->demo_port, dhost, sizeof dhost, err);
        if (!rt->demo) {
            hs_server_stop(s);
            return err ? err->code : HS_ERR_IO;
        }
        s->demo_url = origin_of_host(dhost, s->demo_port);
        /* The demo CRM is another origin, like a real CRM: it may frame the modal. Browsers may
         * call it by "localhost" too. */
        add_origin(s, hs_strdup(s->demo_url));
        if (strcmp(dhost, "127.0.0.1") == 0)
            add_origin(s, hs_aprintf("http://localhost:%d", s->demo_port));
    }
    build_csp(s);
    atomic_store(&rt->ready, true);
    hs_info("server msg=\"serving\" url=%s port=%d origins=%zu workers=%d hover_workers=%d "
            "max_connections=%u header_timeout_ms=%lld hover_wait_ms=%lld",
            s->public_url, s->port, s->n_origins, s->workers, s->hover_workers, s->max_connections,
            (long long)s->header_timeout_ms, (long long)s->hover_wait_ms);
    return HS_OK;
}

int hs_server_port(const struct hs_server *s)
{
    return s->port;
}

const char *hs_server_url(const struct hs_server *s)
{
    return s->public_url;
}

const char *hs_server_demo_url(const struct hs_server *s)
{
    return s->demo_url;
}

void hs_server_drain(struct hs_server *s)
{
    if (s && !atomic_exchange(&s->draining, true))
        hs_info("server msg=\"draining\" in_flight=%lld",
                (long long)atomic_load(&s->counters.in_flight));
}

int64_t hs_server_busy(struct hs_server *s)
{
    if (!s)
        return 0;
    int64_t n = atomic_load(&s->counters.in_flight) - hs_sse_count(s);
    return n > 0 ? n : 0;
}

void hs_server_stop(struct hs_server *s)
{
    if (!s || !s->rt || s->rt->stopped)
        return;
    struct server_rt *rt = s->rt;
    rt->stopped = true;
    if (rt->api)
        rt->api_sock = MHD_quiesce_daemon(rt->api);
    if (rt->demo)
        rt->demo_sock = MHD_quiesce_daemon(rt->demo);
    hs_sse_stop(s);
    hs_blobstream_stop(s);
    /* Let the requests in flight end (bounded: a Hover call may take long). */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += STOP_GRACE_MS / 1000;
    pthread_mutex_lock(&rt->lock);
    while (atomic_load(&s->counters.in_flight) > 0)
        if (pthread_cond_timedwait(&rt->idle, &rt->lock, &deadline) != 0)
            break;
    int64_t left = atomic_load(&s->counters.in_flight);
    pthread_mutex_unlock(&rt->lock);
    if (left)
        hs_warn("server msg=\"stopping with requests in flight\" in_flight=%lld", (long long)left);
    /* What still waits on Hover ends now, not when Hover answers. */
    hs_curl_multi_stop(rt->upstream);
    /* Workers answer what is still queued (503) and finish what they run: after this no
     * connection is suspended, as libmicrohttpd requires before it stops. */
    pool_stop(&rt->store_pool);
    pool_stop(&rt->hover_pool);
    if (rt->timer_started) {
        atomic_store(&rt->timer_stop, true);
        pthread_join(rt->timer, NULL);
        rt->timer_started = false;
    }
    if (rt->demo)
        MHD_stop_daemon(rt->demo);
    if (rt->api)
        MHD_stop_daemon(rt->api);
    rt->demo = rt->api = NULL;
    if (rt->api_sock != MHD_INVALID_SOCKET)
        close(rt->api_sock);
    if (rt->demo_sock != MHD_INVALID_SOCKET)
        close(rt->demo_sock);
    rt->api_sock = rt->demo_sock = MHD_INVALID_SOCKET;
}

void hs_server_free(struct hs_server *s)
{
    if (!s)
        return;
    hs_server_stop(s);
    hs_sse_free(s);
    hs_blobstream_free(s);
    if (s->rt) {
        pthread_mutex_destroy(&s->rt->lock);
        pthread_cond_destroy(&s->rt->idle);
        pool_destroy(&s->rt->store_pool);
        pool_destroy(&s->rt->hover_pool);
        pthread_mutex_destroy(&s->rt->hlock);
        free(s->rt->labels);
        free(s->rt);
    }
    hs_conns_free(s->conns);
    hs_metrics_free(s->metrics);
    hs_quota_free(s->quota);
    hs_health_cache_free(s);
    hs_webhook_cache_free(s->webhook_cache);
    for (size_t i = 0; i < JOB_CACHE_N; i++) {
        free(s->jobs[i].connection);
        free(s->jobs[i].raw);
        json_decref(s->jobs[i].doc);
    }
    for (size_t i = 0; i < CONN_FLAGS_N; i++)
        free(s->reconnect[i]);
    pthread_mutex_destroy(&s->cache_lock);
    hs_auth_free(s);
    pthread_mutex_destroy(&s->keys_lock);
    for (size_t i = 0; i < s->n_origins; i++)
        free(s->origins[i]);
    free(s->origins);
    for (size_t i = 0; i < s->n_own; i++)
        free(s->own_origins[i]);
    free(s->listen);
    free(s->demo_listen);
    free(s->web_dir);
    free(s->data_dir);
    free(s->hover_url);
    free(s->client_id);
    if (s->client_secret)
        memset(s->client_secret, 0, strlen(s->client_secret));
    free(s->client_secret);
    free(s->public_url_cfg);
    free(s->public_url);
    free(s->public_origin);
    free(s->csp);
    free(s->demo_url);
    free(s);
}
