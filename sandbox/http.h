/* http.h: the request and response objects the sandbox's routes work with, and the small HTTP
 * helpers they share (query and header access, bodies as JSON or form data, JSON error shapes,
 * ETags and If-None-Match, HTML escaping). server.c turns them into libmicrohttpd calls. */
#ifndef HS_SANDBOX_HTTP_H
#define HS_SANDBOX_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/json.h"
#include "core/str.h"
#include "oauth.h"

struct MHD_Connection;
struct sb_server;

enum sb_listener { SB_LISTENER_API = 0, SB_LISTENER_STORAGE = 1, SB_LISTENER_S3 = 2 };

#define SB_BODY_MAX    (1024u * 1024u)
#define SB_MAX_HEADERS 12

struct sb_req {
    struct sb_server *srv;
    struct MHD_Connection *conn;
    enum sb_listener listener;
    const char *method;
    const char *path;     /* decoded, without the query */
    const char *raw_path; /* as on the request line (still percent-encoded) */
    const char *query;    /* raw query string ("" when none) */
    const char *body;
    size_t body_len;
    bool has_auth;                 /* an Authorization header was sent */
    enum sb_token_state tok_state; /* of the Bearer token; UNKNOWN when none */
    bool has_bearer;
    struct sb_token_info tok; /* valid when tok_state is OK (client_id also when EXPIRED) */
    json_t *params;           /* body parameters, parsed once (sb_req_params) */
    int params_rc;
    int basic_parsed; /* HTTP Basic client credentials, parsed once (sb_basic_auth_user) */
    char basic_user[128], basic_secret[256];
    json_t *log_extra; /* keys a route adds to the request's log entry (owned), or NULL */
};

struct sb_resp {
    int status;
    const char *ctype; /* static string */
    char *body;        /* malloc'd, may be NULL */
    size_t len;
    int n_headers;
    char *hname[SB_MAX_HEADERS], *hvalue[SB_MAX_HEADERS];
    size_t head_len; /* a bodiless answer to HEAD: the Content-Length to announce */
};

void sb_resp_init(struct sb_resp *r);
void sb_resp_clear(struct sb_resp *r);
/* Replaces the body. `body` is taken (malloc'd). */
void sb_resp_set(struct sb_resp *r, int status, const char *ctype, char *body, size_t len);
void sb_resp_text(struct sb_resp *r, int status, const char *ctype, const char *text);
/* JSON body from j (reference stolen). */
void sb_resp_json(struct sb_resp *r, int status, json_t *j);
/* {"error": msg} */
void sb_resp_error(struct sb_resp *r, int status, const char *msg);
/* {"error": code, "error_description": desc} (RFC 6749) */
void sb_resp_oauth_error(struct sb_resp *r, int status, const char *code, const char *desc);
void sb_resp_header(struct sb_resp *r, const char *name, const char *value);
/* A cacheable entity: a strong ETag over the bytes, and 304 without a body when the request's
 * If-None-Match names it. Takes `body`. */
void sb_resp_entity(struct sb_resp *r, const struct sb_req *q, const char *ctype, char *body,
                    size_t len);
/* The same with the object store's ETag, the MD5 of the bytes (the storage listener). */
void sb_resp_object(struct sb_resp *r, const struct sb_req *q, const char *ctype, char *body,
                    size_t len);

/* A query parameter (decoded) or NULL. */
const char *sb_arg(const struct sb_req *q, const char *name);
/* Every value of a repeated query parameter: calls fn for each; returns how many. */
size_t sb_arg_each(const struct sb_req *q, const char *name,
                   void (*fn)(void *ctx, const char *value), void *ctx);
const char *sb_header(const struct sb_req *q, const char *name);
/* The request body as a JSON object: JSON bodies, form-encoded bodies (as strings) and an empty
 * body ({}). Returns 0, or -1 for malformed JSON or a body that is not an object. The object
 * belongs to the request. */
int sb_req_params(struct sb_req *q, json_t **out);
/* The same, but the body is JSON whatever its Content-Type (the admin routes: curl -d sends a
 * form content type by default). */
int sb_req_json(struct sb_req *q, json_t **out);
/* A body parameter as a string (numbers formatted), or NULL. */
const char *sb_param_str(struct sb_req *q, const char *name);

/* Percent-decodes (and '+' to space) in place; returns the new length. */
size_t sb_url_decode(char *s, size_t n);
/* application/x-www-form-urlencoded to a JSON object of strings (last value wins). */
json_t *sb_form_parse(const char *body, size_t len);

/* strerror_r whichever flavour libc has; returns the message. */
const char *sb_errstr(int e, char *buf, size_t n);

/* Wall-clock unix milliseconds. */
int64_t sb_now_ms(void);

#endif
