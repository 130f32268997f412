/* http.h: the service's small HTTP layer over libmicrohttpd: the request and response objects
 * handlers work with, the JSON error shape of docs/API.md, the one mapping of hs_err to an HTTP
 * status, and helpers (query, headers, cookies, JSON bodies, HTML escaping, listen addresses). */
#ifndef HS_SERVER_HTTP_H
#define HS_SERVER_HTTP_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/json.h"
#include "core/str.h"

#include "hoversync.h"
#include "store/service.h"

/* Request bodies are refused beyond this (413 payload_too_large). */
#define HS_HTTP_BODY_MAX   (64u * 1024u)
#define HS_HTTP_MAX_PARAMS 2

struct hs_server;
struct route;
struct hs_artifact_row;

enum hs_auth_kind { HS_AUTH_NONE, HS_AUTH_KEY, HS_AUTH_SESSION };

enum hs_listener_kind { HS_LISTENER_API, HS_LISTENER_DEMO };

/* A header, query argument or cookie of a request (kind: MHD_HEADER_KIND, ...). */
struct hs_req_value {
    int kind;
    char *name;
    char *value; /* NULL for an argument without '=' */
};

/* A copy of what a handler reads from its request, for handlers that may outlive their
 * connection (routes that wait on Hover answer 504 while the handler goes on). */
struct hs_req_values {
    char *method, *path;
    struct hs_req_value *v;
    size_t n;
};

struct hs_req {
    struct hs_server *srv;
    struct MHD_Connection *conn;
    enum hs_listener_kind listener;
    const char *method; /* as sent ("GET", "POST", ...) */
    const char *path;   /* percent-decoded, without the query */
    const char *uri;    /* the request line's target as sent (path and query, not decoded) */
    const char *body;   /* NUL-terminated, body_len bytes ("" when none) */
    size_t body_len;
    const char *origin;  /* the Origin header, or NULL */
    bool origin_allowed; /* in the allow-list: CORS headers go out */
    const struct route *route;
    char *params[HS_HTTP_MAX_PARAMS]; /* {id} captures of the route pattern */
    size_t n_params;
    enum hs_auth_kind auth;
    struct hs_session session; /* when auth is HS_AUTH_SESSION */
    char key_name[65]; /* when auth is HS_AUTH_KEY: the key's name ("env"; "" for a ticket's) */
    /* When set, headers, arguments and cookies come from this copy and conn is NULL. */
    const struct hs_req_values *values;
    /* Set on the connection's thread for an R_HERE_FIRST route: the handler must not wait on
     * Hover; it sets r->defer instead (server/internal.h), and may leave in resume a note for
     * its run on the worker (which gets a copy of this request). */
    bool no_wait;
    int64_t resume;
};

struct hs_resp {
    int status;
    char *ctype; /* NULL: none (no body) */
    char *body;
    size_t len;
    /* A file answer: fd (taken: closed by libmicrohttpd) and its size. -1 when not a file. */
    int fd;
    uint64_t fd_size;
    /* A streamed answer (Server-Sent Events, a file from object storage): its size
     * (MHD_SIZE_UNKNOWN unless set) and the most it asks of the reader at once. */
    uint64_t reader_size;
    size_t reader_block;
    MHD_ContentReaderCallback reader;
    void *reader_cls;
    MHD_ContentReaderFreeCallback reader_free;
    /* Optional: told the connection the answer goes out on, before the reader is first called
     * (a handler run off the connection's thread does not have it). */
    void (*reader_bind)(void *cls, struct MHD_Connection *conn);
    size_t n_headers, cap_headers;
    char **hname, **hvalue;
    /* Set by a handler called with q->no_wait that needs to wait: no answer yet. */
    bool defer;
};

void hs_resp_init(struct hs_resp *r);
/* Frees what r holds (closing a file, freeing a stream's state) and re-initialises it. */
void hs_resp_clear(struct hs_resp *r);
/* Sets (replacing) a header. */
void hs_resp_header(struct hs_resp *r, const char *name, const char *value);
const char *hs_resp_get_header(const struct hs_resp *r, const char *name);
/* Replaces the body; `body` is taken (malloc'd, may be NULL). */
void hs_resp_set(struct hs_resp *r, int status, const char *ctype, char *body, size_t len);
void hs_resp_text(struct hs_resp *r, int status, const char *ctype, const char *text);
/* A JSON body from j (reference stolen); NULL j (a failed json_pack) is a 500. */
void hs_resp_json(struct hs_resp *r, int status, json_t *j);
/* docs/API.md's error: {"error":{"code":..,"message":..,"status":..}}. */
void hs_resp_error(struct hs_resp *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The one mapping of an hs_err from Hover or the store to a status and a code; internal
 * details are logged, not sent. `what` names the operation for the message. */
void hs_resp_fail(struct hs_resp *r, int rc, const struct hs_error *err, const char *what);
/* The code of docs/API.md for a status ("not_found"). */
const char *hs_http_code_for_status(int status);
/* An HTML page (html taken), never cached. */
void hs_resp_html(struct hs_resp *r, int status, char *html);
/* A small HTML page with a title and an escaped message. */
void hs_resp_html_message(struct hs_resp *r, int status, const char *title, const char *message);
/* Serves a stored file (an artifact of the blob store b, which outlives the response) with its
 * type and sha256 ETag (304 on a matching If-None-Match; 404 when the file is missing): from a
 * local file, streamed from object storage in ranges, or as a redirect to a presigned URL when
 * the store is configured so. */
struct hs_blobs;
void hs_resp_stored_file(const struct hs_req *q, struct hs_resp *r, const struct hs_blobs *b,
                         const struct hs_artifact_row *a, const char *cache_control);

/* Copies the headers, arguments and cookies of conn, and method and path (clear frees them). */
void hs_req_values_copy(struct hs_req_values *v, struct MHD_Connection *conn, const char *method,
                        const char *path);
void hs_req_values_clear(struct hs_req_values *v);

/* What a request's headers say of its body, checked before routing (RFC 9112 section 6):
 * status 0 when the framing is acceptable, else 400 (Content-Length with Transfer-Encoding,
 * several different Content-Lengths, HTTP/1.1 without exactly one Host) or 501 (a
 * Transfer-Encoding other than chunked), with a message. */
struct hs_framing {
    int status;
    char msg[160];
    bool has_length;
    uint64_t length; /* UINT64_MAX when over what 64 bits hold */
    bool chunked;
    bool expect_continue; /* "Expect: 100-continue": the body waits for a go-ahead */
};
void hs_http_framing(const char *version, const struct hs_req_value *headers, size_t n,
                     struct hs_framing *out);

const char *hs_req_arg(const struct hs_req *q, const char *name);
const char *hs_req_header(const struct hs_req *q, const char *name);
const char *hs_req_cookie(const struct hs_req *q, const char *name);
/* The body as a JSON object. 0, or -1 with a 400 in r. An empty body is {} when empty_ok. */
int hs_req_json_object(const struct hs_req *q, bool empty_ok, json_t **out, struct hs_resp *r);
/* A query parameter as an integer in [min, max]; dflt when absent. 0, or -1 with a 400 in r. */
int hs_req_int_arg(const struct hs_req *q, const char *name, int64_t min, int64_t max, int64_t dflt,
                   int64_t *out, struct hs_resp *r);

/* A content type for a file name by its extension ("application/octet-stream" if unknown). */
const char *hs_content_type_for(const char *name);
/* Constant-time comparison of two NUL-terminated secrets (false when lengths differ). */
bool hs_secret_equal(const char *a, const char *b);

/* Matches a path against a route pattern ("/api/jobs/{id}": {name} matches one non-empty
 * segment). On a match, caps (may be NULL) gets up to max captures (new strings, caller frees)
 * and *n their number; on no match nothing is allocated. */
bool hs_path_match(const char *pattern, const char *path, char **caps, size_t max, size_t *n);
/* True for a path that names a file under web/ and nothing else: "/" then [A-Za-z0-9._/-], no
 * empty segment, no segment starting with '.' (so no "..", no hidden files), at most 512 bytes. */
bool hs_web_path_ok(const char *path);

/* Splits "HOST:PORT", "[V6]:PORT", ":PORT" (127.0.0.1) into host and port (0..65535). */
int hs_listen_parse(const char *spec, char *host, size_t hn, int *port);

#endif
