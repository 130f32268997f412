/* client.h: the Hover API client. One hs_client per credential (connected org), used by one
 * thread at a time; its clones (hs_client_clone) share the credential and run requests in
 * parallel, one thread each. Token refreshes are serialised between the clones (one lock) and
 * across processes (the store).
 *
 * Every request goes: client-side limiter -> token check (refresh when it expires within
 * refresh_skew_s) -> transport -> status mapping (api_error.c): 401 refreshes the token once and
 * retries once; 429, 5xx, network errors and truncated bodies are retried with exponential
 * backoff (retry.h), honouring Retry-After; other statuses are final. Optional strings of the
 * config may be NULL or "" (both mean unset). */
#ifndef HS_HOVER_CLIENT_H
#define HS_HOVER_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/clock.h"
#include "hoversync.h"
#include "hover/transport.h"
#include "store/tokens.h"

#include "hover/limiter.h"

struct hs_client_config {
    const char *base_url;  /* "https://hover.to"; no trailing slash needed */
    const char *client_id; /* needed for refreshes */
    const char *client_secret;
    const char *credential_key; /* key of the token pair in the store; "default" if NULL */
    /* Initial pair, used only when the store holds none for credential_key: then it is saved. */
    const char *initial_access_token;
    const char *initial_refresh_token;
    const char *as_user_email; /* adds current_user_email=.. to v3 job and artifact requests */
    int64_t as_user_id;        /* adds current_user_id=.. (0: not set) */
    int max_attempts;          /* per request, including the first; default 5 */
    int64_t backoff_base_ms;   /* default 500 */
    int64_t backoff_max_ms;    /* default 30000 */
    int64_t timeout_ms;        /* per HTTP request; default 60000 */
    size_t max_response_bytes; /* hard cap on a JSON response; default 32 MiB */
    int rate_per_minute;       /* client-side limiter budget; default 120, 0 = unlimited */
    int64_t refresh_skew_s;    /* refresh when the token expires within this; default 300 */
    /* Extensions (zero = default). */
    struct hs_limiter *limiter; /* a limiter shared by the clients of one integration (Hover's
                                   budget is per OAuth client); NULL: the client owns one built
                                   from rate_per_minute */
    int max_redirects;          /* per request; default 5 */
    int64_t max_retry_after_s;  /* a longer Retry-After gives up at once; default 120 */
    size_t max_download_bytes;  /* cap of hs_client_download; default 1 GiB */
};

/* Fills cfg with every default above, rate_per_minute 120 included (a zeroed config means "no
 * client-side limit" for that field). Strings are left as they are. */
void hs_client_config_defaults(struct hs_client_config *cfg);

/* Parameters of List Jobs (GET /api/v3/jobs). Unset fields are not sent. */
struct hs_list_params {
    const char *search; /* at least 3 characters when set */
    int64_t page;       /* from 1; 0 = not sent */
    int64_t per;        /* 1..100; 0 = not sent */
    const char *sort_by;
    const char *sort_order;
    int archived;          /* -1 not sent, 0 false, 1 true */
    int64_t updated_since; /* unix s; 0 = not sent */
    const char *reconstruction_state;
    const int64_t *deliverable_ids;
    size_t n_deliverable_ids;
};

struct hs_client;

/* The client borrows the token store (its only store: hs_store_tokens(st); ops NULL for none),
 * clock and transport: they must outlive it. transport may be NULL for the default libcurl
 * transport (owned by the client); clock NULL for the system clock. */
int hs_client_new(const struct hs_client_config *cfg, struct hs_token_store tokens,
                  const struct hs_clock *clock, struct hs_transport *transport,
                  struct hs_client **out, struct hs_error *err);
void hs_client_free(struct hs_client *c);
/* A client with c's settings, transport, limiter and token pair (a refresh by one is seen by
 * all), and counters of its own, for another thread. c must outlive it. */
int hs_client_clone(const struct hs_client *c, struct hs_client **out);
/* The key of the client's credential ("default" when none was given). */
const char *hs_client_credential_key(const struct hs_client *c);

int hs_client_list_jobs(struct hs_client *c, const struct hs_list_params *p,
                        struct hs_job_page **out, struct hs_error *err);
int hs_client_show_job(struct hs_client *c, int64_t job_id, struct hs_job **out,
                       struct hs_error *err);

/* The connect flow's code exchange (authorization_code grant) for this client's credential: the
 * pair is stored under credential_key before it is used, and the client then uses it. out (may be
 * NULL) receives a copy the caller releases with hs_token_clear. */
int hs_client_exchange_code(struct hs_client *c, const char *code, const char *redirect_uri,
                            struct hs_token *out, struct hs_error *err);

/* ---- generic requests: artifacts, images, anything Show Job hands out ----
 * url_or_path is a path on base_url ("/api/v3/models/1/artifacts/measurements.json?version=x")
 * or a full URL. The bearer token and current_user_* go only to base_url's origin (scheme, host,
 * port): a presigned link on another host gets neither, and a redirect to another origin drops
 * the token (transport.h). Success is a 2xx answer, or 304 when if_none_match matched. */
struct hs_fetch_result {
    long status; /* 2xx, or 304 */
    char *etag;  /* NULL when the server sent none */
    char *content_type;
    char *final_url;        /* after redirects */
    int64_t content_length; /* -1 when not announced */
    int64_t bytes;          /* body bytes received (into body, or through the sink) */
    char *body;             /* hs_client_get only: NUL-terminated, body_len bytes */
    size_t body_len;
};
void hs_fetch_result_clear(struct hs_fetch_result *r);

/* Any other call of Hover's API (webhooks, ...): method on a path of base_url ("/api/v2/..."),
 * with an optional JSON body (sent as application/json), the answer's body in memory (capped at
 * max_response_bytes). Success is a 2xx answer. POST and PATCH are retried only after a 429
 * (other failures may have happened after Hover acted). */
int hs_client_request(struct hs_client *c, const char *method, const char *path,
                      const char *json_body, struct hs_fetch_result *out, struct hs_error *err);

/* GET with the body in memory (capped at max_response_bytes). */
int hs_client_get(struct hs_client *c, const char *url_or_path, const char *if_none_match,
                  struct hs_fetch_result *out, struct hs_error *err);

/* The 32 lowercase hex digits of a strong ETag that is a bare digest ("d41d8cd9...": object
 * stores' single-part ETag is the MD5 of the bytes, Rack's the first half of their SHA-256);
 * false for weak, multipart ("...-3") and other ETags, which say nothing checkable. */
bool hs_etag_digest(const char *etag, char out[33]);

struct hs_download_opts {
    const char *if_none_match;
    /* Receives the body of a 2xx answer in pieces; non-zero stops the download (a negative
     * hs_err is returned as is). Required. */
    int (*sink)(void *ctx, const char *data, size_t len);
    void *sink_ctx;
    /* Called before a retry when part of a body already reached the sink (the sink must start
     * over); 0 to go on. NULL: a download that broke mid-body is not retried. */
    int (*reset)(void *ctx);
    size_t max_bytes; /* 0: max_download_bytes of the config */
};

/* GET streaming the body to o->sink. out gets status, validators and sizes (body stays NULL).
 * A 2xx body is checked before success is returned: its length against Content-Length, its
 * bytes against a strong ETag that is a bare digest (hs_etag_digest: MD5, or the SHA-256
 * prefix), against Content-MD5 and against Digest (md5=, sha-256=). A mismatch is retried like
 * a truncated transfer (o->reset starts the sink over), and is HS_ERR_TRUNCATED in the end. */
int hs_client_download(struct hs_client *c, const char *url_or_path,
                       const struct hs_download_opts *o, struct hs_fetch_result *out,
                       struct hs_error *err);

/* ---- waits on Hover's rate limit ----
 * A request that must wait HS_WAIT_ANNOUNCE_MS or more for the request budget (this process's
 * limiter, or a 429 answer's Retry-After) says so before it waits: one warn-level line, seen at
 * the default log level (hs_client_log_wait). A command that draws a progress display sets a
 * hook instead: it shows the wait there and logs the line itself. The hook runs in the thread
 * that waits. */
#define HS_WAIT_ANNOUNCE_MS 1000
struct hs_client_wait {
    int64_t wait_ms;
    const char *reason; /* "budget" (the limiter: --rate-limit) or "429" (Hover said wait) */
    const char *what;   /* the request: "GET /api/v3/jobs/1" */
};
typedef void (*hs_client_wait_fn)(void *ctx, const struct hs_client_wait *w);
void hs_client_set_wait_hook(struct hs_client *c, hs_client_wait_fn fn, void *ctx);
/* Gives a clone working for the same caller (a sync's download slots) the hook of from, which
 * must then be safe to call from several threads. */
void hs_client_share_wait_hook(struct hs_client *to, const struct hs_client *from);
/* The line: "hover wait_s=N reason=... request=... msg=..." at warn level. */
void hs_client_log_wait(const struct hs_client_wait *w);

/* Counters for status output and tests. */
/* Answers of Hover's API by status class, for metrics ("requests to Hover by status"). */
enum hs_status_class {
    HS_SC_2XX,
    HS_SC_3XX, /* redirects and 304 */
    HS_SC_401,
    HS_SC_403,
    HS_SC_404,
    HS_SC_4XX, /* any other 4xx, 422 among them */
    HS_SC_429,
    HS_SC_5XX,
    HS_SC_NETWORK, /* no answer: refused, reset, timeout, truncated */
    HS_SC_COUNT
};
/* "2xx", "3xx", "401", ..., "network". */
const char *hs_status_class_label(int sc);

struct hs_client_stats {
    int64_t requests;               /* HTTP requests sent, retries included */
    int64_t by_status[HS_SC_COUNT]; /* API requests (not token requests) by answer */
    int64_t retries;
    int64_t refreshes;
    int64_t rate_limit_waits; /* times the client-side limiter made us wait */
    int64_t waited_ms;
};
void hs_client_get_stats(const struct hs_client *c, struct hs_client_stats *out);

/* The class of every request the calling thread sends from now on, through any client
 * (hover/limiter.h): interactive by default; the service's background threads (event worker,
 * reconciliation, the pending pass) and backfill set HS_PRIO_BACKGROUND once at their start.
 * Background requests count for the client's connection, so orgs share the rest fairly. */
void hs_client_set_thread_priority(enum hs_prio p);

#endif
