/* internal.h: what the files of the service share (server.c: listeners, request pipeline,
 * workers; http.c: requests and answers; auth.c: API key, sessions, origins; connections.c: the
 * Hover connections; sse.c: progress streams; routes_*.c: the handlers, which call into the
 * others but never into server.c). Not for other modules. */
#ifndef HS_SERVER_INTERNAL_H
#define HS_SERVER_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "server/http.h"
#include "server/metrics.h"
#include "server/server.h"
#include "store/blobs.h"
#include "webhook/receiver.h"
#include "webhook/registration.h"

/* Route flags. */
enum {
    R_AUTH = 1,      /* API key or session cookie */
    R_KEY_ONLY = 2,  /* API key only */
    R_WORKER = 4,    /* runs on a worker thread (it waits on the store) */
    R_JSON_BODY = 8, /* a body, when sent, must be application/json */
    R_TICKET = 16,   /* a ticket (?ticket=, POST /api/tickets) may stand for the caller */
    /* Runs on the Hover workers, detached from its connection: the answer waits at most
     * --hover-wait (then 504) while the handler may go on and fill the caches. */
    R_HOVER = 32,
    R_QUOTA = 64, /* counts against the caller's request rate (--caller-rate-limit) */
    /* With R_HOVER: runs first on the connection's thread with q->no_wait set, and answers
     * there unless it sets r->defer (it needs Hover or a wait); then the Hover workers run it.
     * Spares the hand-over (two thread switches) of answers that need only the store. */
    R_HERE_FIRST = 128,
};

typedef void (*hs_handler)(struct hs_req *q, struct hs_resp *r);

struct route {
    const char *method;
    const char *pattern; /* "/api/jobs/{id}": {name} matches one non-empty segment */
    unsigned flags;
    hs_handler fn;
};

#define SESSION_TTL_S       (12 * 3600)
#define JOB_CACHE_MS        5000
#define JOB_CACHE_N         256
#define SYNC_JOB_FRESH_MS   5000 /* a Show Job this recent goes with a queued sync to its pass */
#define OAUTH_STATES_N      256  /* pending connect flows (in the store), whoever started them */
#define OAUTH_STATE_MS      (10 * 60 * 1000)
#define FLOWS_PER_BROWSER   4  /* a browser's fifth flow replaces its oldest */
#define FLOWS_PER_ADDRESS   32 /* past this, /connect from that address is refused */
#define TICKETS_N           1024
#define TICKET_MS           (60 * 1000)
#define TICKETS_PER_SESSION 16 /* a caller's seventeenth ticket replaces its oldest */
#define CONN_FLAGS_N        64
#define KEYS_CACHE_MS       1000 /* stored API keys re-read at least this often: a revoke's delay */
#define KEYS_MISS_MS        50 /* an unknown key of a created key's shape re-reads at most this often */
#define HTML_MAX            (1u << 20)

struct job_entry {
    int64_t id;
    char *connection;
    json_t *doc; /* the job as Hover showed it (without the store's per-model status) */
    char *raw;   /* the same as Hover sent it (JSON): a sync queued now hands it to its pass */
    int64_t at_ms;
};

struct server_rt;    /* server.c: daemons and workers */
struct sse_hub;      /* sse.c */
struct blob_hub;     /* blobstream.c */
struct hs_conns;     /* conns.c */
struct hs_quota;     /* quota.c */
struct health_cache; /* routes_webhooks.c */

struct hs_server {
    char *listen, *demo_listen, *web_dir, *data_dir, *hover_url, *client_id, *client_secret;
    int rate_limit;               /* Hover requests a minute, for GET /api/status's budget */
    const struct hs_blobs *blobs; /* the artifact files: the configured store or local_blobs */
    struct hs_blobs local_blobs;  /* the local folder data_dir, when none was configured */
    char *public_url_cfg;
    char *public_url;    /* no trailing slash */
    char *public_origin; /* scheme://host[:port] of public_url */
    char *own_origins[3];
    size_t n_own;
    char **origins; /* the allow-list, normalised (and the demo CRM's origin) */
    size_t n_origins;
    char *csp; /* Content-Security-Policy of HTML pages */
    bool cookie_secure;
    bool metrics_public;
    unsigned char api_key_hash[32]; /* HOVERSYNC_API_KEY's, when has_env_key */
    bool has_env_key;
    /* The stored API keys (auth.c), re-read every KEYS_CACHE_MS, under keys_lock. */
    pthread_mutex_t keys_lock;
    struct key_entry *keys;
    size_t n_keys;
    int64_t keys_read_ms;
    bool keys_loaded;
    int threads, workers;
    /* R_HERE_FIRST routes run on the connection's thread first: the store reads a local file
     * (SQLite); a round trip to PostgreSQL would hold every connection of that thread. */
    bool here_first;
    char *demo_url;
    int port, demo_port;

    struct hs_store *store;
    struct hs_client_pool *pool;
    struct hs_search_service *search;
    struct hs_syncq *syncq;
    struct hs_events *events; /* NULL: no workers in this process */
    struct hs_duties *duties;
    const struct hs_clock *clock;
    struct hs_metrics *metrics;
    struct hs_limiter *limiter; /* NULL: no budget series */
    struct hs_outbox *outbox;   /* NULL: no delivery series */
    atomic_bool draining;       /* SIGTERM came: /readyz 503, new requests 503 */

    /* Caches and flow state, under cache_lock. */
    pthread_mutex_t cache_lock;
    struct job_entry jobs[JOB_CACHE_N];
    size_t jobs_next;
    char *reconnect[CONN_FLAGS_N]; /* connections whose grant Hover refused */
    atomic_llong oauth_requests;

    /* What the request pipeline counts (server.c), read by GET /metrics. */
    struct hs_server_counters {
        atomic_llong in_flight; /* requests being handled */
        /* Routes that wait on Hover: answered in time, answered 504, waiting now, and their
         * handlers running (those answered 504 included). */
        atomic_llong hover_answered, hover_timed_out, hover_waiting, hover_running;
    } counters;
    struct hs_conns *conns; /* NULL until started */

    struct server_rt *rt;
    struct sse_hub *sse;
    struct blob_hub *blobhub;    /* object storage only */
    struct hs_quota *quota;      /* NULL: no per-caller limit */
    struct health_cache *health; /* Hover's word on the webhooks, for GET /api/status */
    /* The webhooks read for deliveries (receiver.h). */
    struct hs_webhook_cache *webhook_cache;
    int hover_workers;
    int64_t hover_wait_ms, header_timeout_ms;
    unsigned max_connections;

    /* Webhooks (routes_webhooks.c). */
    struct hs_client_provider provider; /* the pool, for the verify call and health */
    int64_t webhook_delay_ms;
    bool register_webhooks;
};

/* ---- server.c ---- */
/* The route table (the metrics labels; the HTTP fuzz target matches paths against it). */
extern const struct route hs_routes[];
extern const size_t hs_n_routes;

/* ---- the service's clock ---- */
static inline int64_t hs_server_mono_ms(const struct hs_server *s)
{
    return s->clock->mono_ms(s->clock);
}

static inline int64_t hs_server_wall_s(const struct hs_server *s)
{
    return s->clock->wall_ms(s->clock) / 1000;
}

/* ---- auth.c ---- */
/* The auth of a request to a route that needs it: 0, or -1 with a 401/403 in r. */
int hs_auth_check(struct hs_req *q, struct hs_resp *r);
/* Frees the cache of stored API keys. */
void hs_auth_free(struct hs_server *s);
/* True when origin may call the API with credentials (the allow-list). */
bool hs_origin_allowed(const struct hs_server *s, const char *origin);
/* True when origin is the service's own. */
bool hs_origin_own(const struct hs_server *s, const char *origin);
/* Creates and stores a session that may use the n connections (keys) given; token gets the
 * secret (64 hex), *out the stored row. */
int hs_session_create(struct hs_server *s, const char *user, const char *const *connections,
                      size_t n, char token[65], struct hs_session *out, struct hs_error *err);
/* Finds the session of a token (NOT_FOUND when unknown or expired). */
int hs_session_lookup(struct hs_server *s, const char *token, struct hs_session *out,
                      struct hs_error *err);
/* Sets the hs_session cookie on r. */
void hs_session_set_cookie(const struct hs_server *s, struct hs_resp *r, const char *token);
/* The caller's scope for the store: NULL for the API key, else the session's connections (in
 * *buf, valid while q is). */
const struct hs_scope *hs_req_scope(const struct hs_req *q, struct hs_scope *buf);
/* True when the caller may use connection `key` (the API key may use any). */
bool hs_req_may_use(const struct hs_req *q, const char *key);
/* Issues a ticket for purpose and target on behalf of the caller of q (its session, or the API
 * key), stored (as its SHA-256) for any instance to take; out gets it (64 hex), *expires_ms its
 * end (unix ms). HS_ERR_BUSY when TICKETS_N are live; another failure of the store. */
int hs_ticket_issue(struct hs_req *q, const char *purpose, const char *target, char out[65],
                    int64_t *expires_ms, struct hs_error *err);
/* Random bytes as hex (2n chars + NUL in out); 0 or HS_ERR_INTERNAL. */
int hs_random_hex(size_t n, char *out);
void hs_sha256_hex(const char *s, char out[65]);
/* True when s is exactly n lowercase hex digits (tokens, tickets, hashes). */
bool hs_is_hex(const char *s, size_t n);

/* ---- connections.c: the Hover connections as the routes see them ---- */
/* Every stored connection (the caller filters by its scope); 0, or -1 with the error in r.
 * hs_connection_rows_free frees them. */
int hs_connections_read(struct hs_req *q, struct hs_connection_row **rows, size_t *n,
                        struct hs_resp *r);
/* The connection a request names (`asked`, checked against the store and the caller's scope:
 * 404 outside it), or the caller's first one (connected first); NULL when it has none. 0, or -1
 * with an error in r. *key is owned by the caller. */
int hs_pick_connection(struct hs_req *q, const char *asked, char **key, struct hs_resp *r);
/* Remembers what Hover said of a connection's grant (reconnect needed or fine). */
void hs_connection_note(struct hs_server *s, const char *key, int rc);
bool hs_connection_needs_reconnect(struct hs_server *s, const char *key);

/* ---- routes_jobs.c ---- */
/* The job as Hover shows it (cached JOB_CACHE_MS, or up to max_age_ms when >= 0), through the
 * connection given (or the one that knows it), within a scope (NULL: any connection; else
 * HS_ERR_NOT_FOUND when none of its connections has the job); *doc is a new reference, *conn
 * the connection (caller frees). */
int hs_job_fetch(struct hs_server *s, int64_t job_id, const char *connection,
                 const struct hs_scope *scope, int64_t max_age_ms, json_t **doc, char **conn,
                 struct hs_error *err);
/* The job as Hover sent it (JSON, caller frees) when the cache holds a Show Job of it through
 * connection at most max_age_ms old; else NULL. */
char *hs_job_recent_raw(struct hs_server *s, int64_t job_id, const char *connection,
                        int64_t max_age_ms);

/* ---- conns.c: connections and the header deadline ---- */
/* idle_ms: libmicrohttpd's keep-alive idle timeout; limit: the connection limit. */
struct hs_conns *hs_conns_new(const struct hs_clock *clock, int64_t header_ms, int64_t idle_ms,
                              size_t limit);
void hs_conns_free(struct hs_conns *t);
/* MHD_OPTION_NOTIFY_CONNECTION's callback (cls: the table). */
void hs_conns_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                     enum MHD_ConnectionNotificationCode code);
/* The access handler's first call: the request's headers are complete. */
void hs_conns_headers_done(struct MHD_Connection *conn);
/* A request ended: the next one's headers are due after the idle time plus the header time. */
void hs_conns_request_done(struct MHD_Connection *conn);
/* Shuts down the sockets of connections past their deadline; how many. */
size_t hs_conns_reap(struct hs_conns *t);
void hs_conns_counts(struct hs_conns *t, int64_t *open, int64_t *reaped);

/* ---- quota.c: requests per minute per caller (API key or session) ---- */
struct hs_quota *hs_quota_new(int per_minute, struct hs_store *store);
void hs_quota_free(struct hs_quota *qt);
/* 0 when the caller may go on; else the seconds to wait before the next request (>= 1). */
int64_t hs_quota_take(struct hs_quota *qt, const char *caller, int64_t now_ms);
int64_t hs_quota_refused(struct hs_quota *qt);
/* The request's caller takes one of its requests: 0, or -1 with a 429 (Retry-After) in r. */
int hs_quota_check(struct hs_req *q, struct hs_resp *r);

/* ---- routes_webhooks.c ---- */
void hs_health_cache_free(struct hs_server *s);

/* ---- sse.c ---- */
/* The state of sync `id` (a new reference, with its version) if the caller may see it (a
 * session: a sync of one of its connections); 0, or -1 with a 404 (or 503) in r. */
int hs_sync_state(struct hs_req *q, const char *id, json_t **st, int64_t *version,
                  struct hs_resp *r);
int hs_sse_start(struct hs_server *s, struct hs_error *err);
/* Ends every stream (their connections are resumed) and refuses new parking. */
void hs_sse_stop(struct hs_server *s);
void hs_sse_free(struct hs_server *s);
int64_t hs_sse_count(struct hs_server *s);

/* ---- blobstream.c ---- */
/* The threads that fetch the ranges of files streamed from object storage (none for a local
 * folder). */
int hs_blobstream_start(struct hs_server *s, struct hs_error *err);
/* Ends every stream (their connections are resumed) and refuses new ones. */
void hs_blobstream_stop(struct hs_server *s);
/* Then, once libmicrohttpd stopped: joins the threads. */
void hs_blobstream_free(struct hs_server *s);
/* Makes r stream size bytes of a's file from object storage; -1 when streams are not running. */
int hs_blobstream_response(const struct hs_req *q, struct hs_resp *r, const struct hs_blobs *b,
                           const struct hs_artifact_row *a, int64_t size);

/* ---- the connect flow (routes_web.c) ---- */
/* Whether the caller may start a connect flow for `name` (NULL: org-<owner id>): a valid name,
 * and for a session one of its connections or a name not taken yet. 0, or -1 with a 400 or 404
 * in r. */
int hs_connect_allowed(struct hs_req *q, const char *name, struct hs_resp *r);

/* ---- handlers ---- */
void hs_route_healthz(struct hs_req *q, struct hs_resp *r);
void hs_route_readyz(struct hs_req *q, struct hs_resp *r);
void hs_route_metrics(struct hs_req *q, struct hs_resp *r);
void hs_route_openapi(struct hs_req *q, struct hs_resp *r);
void hs_route_sessions_create(struct hs_req *q, struct hs_resp *r);
void hs_route_session_get(struct hs_req *q, struct hs_resp *r);
void hs_route_connections(struct hs_req *q, struct hs_resp *r);
void hs_route_jobs_search(struct hs_req *q, struct hs_resp *r);
void hs_route_job_show(struct hs_req *q, struct hs_resp *r);
void hs_route_syncs_create(struct hs_req *q, struct hs_resp *r);
void hs_route_sync_get(struct hs_req *q, struct hs_resp *r);
void hs_route_sync_events(struct hs_req *q, struct hs_resp *r);
void hs_route_records(struct hs_req *q, struct hs_resp *r);
void hs_route_file(struct hs_req *q, struct hs_resp *r);
void hs_route_file_model(struct hs_req *q, struct hs_resp *r);
void hs_route_image(struct hs_req *q, struct hs_resp *r);
void hs_route_tickets_create(struct hs_req *q, struct hs_resp *r);
void hs_route_connect(struct hs_req *q, struct hs_resp *r);
void hs_route_connect_confirm(struct hs_req *q, struct hs_resp *r);
void hs_route_oauth_callback(struct hs_req *q, struct hs_resp *r);
void hs_route_modal(struct hs_req *q, struct hs_resp *r);
void hs_route_webhook_hover(struct hs_req *q, struct hs_resp *r);
void hs_route_status(struct hs_req *q, struct hs_resp *r);
/* routes_access.c */
void hs_route_apikeys_list(struct hs_req *q, struct hs_resp *r);
void hs_route_apikeys_create(struct hs_req *q, struct hs_resp *r);
void hs_route_apikeys_revoke(struct hs_req *q, struct hs_resp *r);
void hs_route_sessions_revoke(struct hs_req *q, struct hs_resp *r);
void hs_route_session_end(struct hs_req *q, struct hs_resp *r);
void hs_route_connection_delete(struct hs_req *q, struct hs_resp *r);
/* Static files of web/ on the API listener (no route matched); false when there is none. */
bool hs_route_static(struct hs_req *q, struct hs_resp *r);
/* Everything the demo CRM listener serves. */
void hs_route_demo(struct hs_req *q, struct hs_resp *r);

#endif
