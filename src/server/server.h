/* server.h: `hoversync serve`, the HTTP service of docs/API.md on libmicrohttpd: the modal's API
 * (search, jobs, syncs and their progress, records, files, images), the connect flow (Hover OAuth),
 * the modal's static files, /healthz, /readyz and /metrics; optionally a second listener that plays
 * a CRM page for demos (--demo-crm).
 *
 * Threads: libmicrohttpd's epoll thread pool does the I/O and the quick routes; routes that wait
 * on the store (and the webhook intake) run on a small pool of worker threads while their
 * connection is suspended; routes that wait on Hover run on a pool of their own and answer 504
 * after a bounded wait, so a slow Hover holds up only its own work; progress streams (SSE) park
 * their connection while nothing changes and a watcher thread wakes them; a timer thread closes
 * connections whose headers are late. */
#ifndef HS_SERVER_SERVER_H
#define HS_SERVER_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/clock.h"
#include "hover/limiter.h"
#include "hover/multi.h"
#include "hover/pool.h"
#include "hoversync.h"
#include "notify/outbox.h"
#include "search/search.h"
#include "store/store.h"
#include "worker/duties.h"
#include "worker/events.h"
#include "worker/syncq.h"

struct hs_blobs;

struct hs_server_config {
    const char *listen;     /* "HOST:PORT"; port 0 = any free port */
    const char *public_url; /* how browsers reach the service; NULL: http://HOST:PORT as bound */
    const char *const *allow_origins; /* CRM origins that may call the API and frame the modal */
    size_t n_allow_origins;
    const char *demo_listen; /* "HOST:PORT" of the demo CRM page; NULL: none */
    const char *web_dir;     /* the modal's files (web/) */
    const char *data_dir;    /* artifact files (the sync engine's data directory) */
    /* Where they are stored (outlives the server); NULL: the local folder data_dir. */
    const struct hs_blobs *blobs;
    const char *hover_url; /* Hover's base URL, for the connect flow */
    const char *client_id, *client_secret;
    const unsigned char *api_key_hash; /* 32 bytes: SHA-256 of HOVERSYNC_API_KEY; NULL: none */
    bool metrics_public;               /* /metrics from any address, not only loopback */
    int threads;                       /* libmicrohttpd's thread pool; 0: 4 */
    int workers;                       /* threads for routes that wait on the store; 0: 8 */
    int hover_workers;                 /* threads for routes that wait on Hover; 0: 32 */
    int64_t hover_wait_ms;     /* a route waiting on Hover answers 504 after this; 0: 20 s */
    int64_t header_timeout_ms; /* a request's headers are due within this; 0: 10 s */
    unsigned max_connections;  /* open connections at most; 0: 1024 */
    int caller_rate; /* requests a minute per API key or session to routes that ask Hover; 0: no
                        limit */
    /* Webhooks: an event for a job whose work item is being run makes one more pass, due this
     * long after the event (0: 25 ms; a job whose item is idle runs at once); register_webhooks:
     * connect flow and hs_server_register_webhooks register the service's webhook (<public
     * url>/webhooks/hover) for connections without a verified one. */
    int64_t webhook_delay_ms;
    bool register_webhooks;
};

/* What the service works with (borrowed: they must outlive the server). search and syncq may be
 * NULL (their routes then answer 503); events and duties are this process's work queue workers
 * and periodic duties, NULL when other processes run them (serve --no-workers). */
struct hs_server_deps {
    struct hs_store *store;
    struct hs_client_pool *pool;
    struct hs_search_service *search;
    struct hs_syncq *syncq;
    struct hs_events *events; /* woken when a webhook or POST /api/syncs queued work */
    struct hs_duties *duties;
    const struct hs_clock *clock; /* NULL: the system clock */
    /* The loop of the transfers to Hover (hover/multi.h), stopped when the server stops so that
     * nothing waits on a slow Hover then; NULL: none. */
    struct hs_curl_multi *upstream;
    /* For /metrics (NULL: their series are left out): the Hover budget of this process, and its
     * CRM outbox (delivery attempts, when events is set). */
    struct hs_limiter *limiter;
    struct hs_outbox *outbox;
};

struct hs_server;

/* API keys. Stored ones have a name (hoversync apikeys, /api/apikeys) and are kept only as
 * their SHA-256; HOVERSYNC_API_KEY, when set, works besides them and is listed as "env". A
 * created key is the prefix and 64 hex digits. */
#define HS_API_KEY_NAME_MAX 64
#define HS_API_KEY_PREFIX   "hsk_"
#define HS_API_KEY_LEN      (4 + 64)
#define HS_API_KEY_ENV_NAME "env"
/* True when name may name a stored key: 1 to HS_API_KEY_NAME_MAX of [A-Za-z0-9._-], not "env". */
bool hs_api_key_name_ok(const char *name);
/* Creates a key named name at now_s: key gets it (shown once: only its hash is stored).
 * HS_ERR_INVALID for a bad name, HS_ERR_CONFLICT when the name is taken. */
int hs_api_key_create(struct hs_store *store, const char *name, int64_t now_s,
                      char key[HS_API_KEY_LEN + 1], struct hs_error *err);
/* The API keys at start: `configured` (HOVERSYNC_API_KEY), when set, is checked and its SHA-256
 * put in hash (*from_env true); the stored keys work besides it. With neither, a key named
 * "default" (32 random bytes, hex) is stored and given once in `generated` (else generated[0]
 * is '\0') for the caller to show. */
int hs_server_api_key(struct hs_store *store, const char *configured, unsigned char hash[32],
                      bool *from_env, char generated[65], struct hs_error *err);

int hs_server_new(const struct hs_server_config *cfg, const struct hs_server_deps *deps,
                  struct hs_server **out, struct hs_error *err);
/* Binds the listener(s) and starts serving. */
int hs_server_start(struct hs_server *s, struct hs_error *err);
int hs_server_port(const struct hs_server *s);
/* The service's public URL (no trailing slash), once started. */
const char *hs_server_url(const struct hs_server *s);
/* The demo CRM page's URL, or NULL. */
const char *hs_server_demo_url(const struct hs_server *s);
/* The start of a graceful stop (SIGTERM): from now on /readyz answers 503 "draining" and new
 * requests other than /healthz, /readyz and /metrics get 503 with Connection: close; requests
 * in flight go on. Safe from any thread, twice too. */
void hs_server_drain(struct hs_server *s);
/* Requests in flight, open progress streams left out (hs_server_stop ends those). */
int64_t hs_server_busy(struct hs_server *s);
/* Stops accepting, ends progress streams, lets running requests finish (a few seconds at most),
 * then stops. Safe to call twice. */
void hs_server_stop(struct hs_server *s);
/* Registers the service's webhook for connection_key (NULL: every connection with a token)
 * unless a verified one is stored (routes_webhooks.c). Call once the server is started: Hover
 * delivers the verification code to it. Failures are logged; the first is returned. */
int hs_server_register_webhooks(struct hs_server *s, const char *connection_key,
                                struct hs_error *err);
void hs_server_free(struct hs_server *s);

#endif
