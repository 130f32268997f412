/* transport.h: the HTTP transport interface of the Hover client (a struct of function pointers,
 * like redis' ConnectionType), so that the client and the sync engine are tested against a
 * scripted fake and run against libcurl (transport_curl.c).
 *
 * A transport performs one logical request: it follows redirects itself (hs_http_follow below,
 * at most max_redirects hops) and sends the bearer token only to the origin of the request URL.
 * HTTP error statuses are not transport errors: perform returns 0 with rs->status set; the
 * caller maps statuses (src/hover/api_error.c). */
#ifndef HS_HOVER_TRANSPORT_H
#define HS_HOVER_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "hoversync.h"

struct hs_http_header {
    const char *name, *value;
};

/* A body sink returns 0 to go on; anything else aborts the transfer and perform returns that
 * value if it is a negative hs_err, HS_ERR_IO otherwise. */
typedef int (*hs_http_sink_fn)(void *ctx, const char *data, size_t len);

struct hs_http_request {
    const char *method; /* "GET" when NULL */
    const char *url;    /* absolute http(s) URL */
    const struct hs_http_header *headers;
    size_t n_headers;
    const char *body; /* may be NULL; sent as is (set Content-Type in headers) */
    size_t body_len;
    /* Sent as "Authorization: Bearer <token>" only to the origin (scheme, host and port) of `url`:
     * a redirect to another origin drops it. Never put an Authorization header in `headers`. */
    const char *bearer_token;
    size_t max_response; /* cap on body bytes (buffer or sink); 0 = HS_JSON_MAX_BYTES */
    int64_t timeout_ms;  /* whole exchange per hop; 0 = 60000 */
    int max_redirects;   /* 0 = 5; negative = do not follow (a 3xx is returned as is) */
    /* Optional streaming sink: when set, the body of a 2xx answer goes to it instead of the
     * response buffer (error bodies still land in rs->body, for their message). */
    hs_http_sink_fn sink;
    void *sink_ctx;
    const char *if_none_match; /* sent as If-None-Match when set */
};

struct hs_http_response {
    long status;
    struct hs_buf body; /* the body, unless it went to the sink */
    char *etag;         /* headers of the final hop; NULL when absent */
    char *content_type;
    char *location;
    char *content_md5;      /* Content-MD5 (base64), for checking a download; NULL when absent */
    char *digest;           /* Digest ("md5=..., sha-256=..."), likewise */
    int64_t retry_after_s;  /* -1 if none */
    int64_t content_length; /* -1 if none */
    int64_t body_bytes;     /* bytes of the final body (buffered or streamed) */
    char *final_url;        /* URL of the final hop */
    int redirects;          /* hops followed */
};

/* Zeroes rs (nothing allocated). */
void hs_http_response_init(struct hs_http_response *rs);
/* Frees what rs holds and re-initialises it. */
void hs_http_response_clear(struct hs_http_response *rs);

struct hs_transport {
    /* Performs rq. rs must be initialised (hs_http_response_init); perform clears it first. On
     * success (an HTTP answer of any status) returns 0; on failure returns a negative hs_err with
     * err filled and leaves rs cleared. */
    int (*perform)(struct hs_transport *t, const struct hs_http_request *rq,
                   struct hs_http_response *rs, struct hs_error *err);
    void (*destroy)(struct hs_transport *t);
};

/* The libcurl transport on the process's multi loop (hover/multi.h): safe for concurrent use,
 * connections kept alive across requests. NULL when libcurl cannot start. */
struct hs_transport *hs_transport_curl_new(void);
/* Calls t->destroy; accepts NULL. */
void hs_transport_free(struct hs_transport *t);

/* ---- redirect handling shared by the transports ---- */

/* One exchange without following redirects. send_bearer says whether rq->bearer_token may go
 * out on this hop; rq->url is the hop's URL. Same contract as perform otherwise. */
typedef int (*hs_http_hop_fn)(void *ctx, const struct hs_http_request *rq, bool send_bearer,
                              struct hs_http_response *rs, struct hs_error *err);

/* Runs hop for rq, then follows 301/302/303/307/308 answers that carry a Location (resolved
 * against the hop's URL) up to rq->max_redirects; 303, and 301/302 after a POST, continue as a
 * GET without body. The bearer goes only to hops whose origin equals rq->url's. Too many
 * redirects or an unusable Location (not http/https) is HS_ERR_HTTP. */
int hs_http_follow(hs_http_hop_fn hop, void *ctx, const struct hs_http_request *rq,
                   struct hs_http_response *rs, struct hs_error *err);

/* True when a and b are absolute http(s) URLs with the same scheme, host and port (default ports
 * made explicit, host compared case-insensitively). False if either does not parse. */
bool hs_url_same_origin(const char *a, const char *b);
/* Resolves location (absolute or relative) against base into a new absolute URL. */
int hs_url_resolve(const char *base, const char *location, char **out, struct hs_error *err);
/* "scheme://host[:port]/path" of url without query and fragment, for messages (presigned URLs
 * carry credentials in their query). Always terminates out. */
void hs_url_for_log(const char *url, char *out, size_t n);

#endif
