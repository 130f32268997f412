/* http.c: request and response helpers of the service; see http.h. */
#include "server/http.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "server/internal.h"
#include "store/blobs.h"
#include "store/records.h"

void hs_resp_init(struct hs_resp *r)
{
    memset(r, 0, sizeof *r);
    r->status = 500;
    r->fd = -1;
    r->reader_size = MHD_SIZE_UNKNOWN;
    r->reader_block = 4096;
}

void hs_resp_clear(struct hs_resp *r)
{
    free(r->ctype);
    free(r->body);
    if (r->fd >= 0)
        close(r->fd);
    if (r->reader_free)
        r->reader_free(r->reader_cls);
    for (size_t i = 0; i < r->n_headers; i++) {
        free(r->hname[i]);
        free(r->hvalue[i]);
    }
    free(r->hname);
    free(r->hvalue);
    hs_resp_init(r);
}

void hs_resp_header(struct hs_resp *r, const char *name, const char *value)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        if (strcasecmp(r->hname[i], name) == 0) {
            free(r->hvalue[i]);
            r->hvalue[i] = hs_strdup(value);
            return;
        }
    }
    if (r->n_headers == r->cap_headers) {
        r->cap_headers = r->cap_headers ? r->cap_headers * 2 : 8;
        r->hname = hs_realloc(r->hname, r->cap_headers * sizeof *r->hname);
        r->hvalue = hs_realloc(r->hvalue, r->cap_headers * sizeof *r->hvalue);
    }
    r->hname[r->n_headers] = hs_strdup(name);
    r->hvalue[r->n_headers] = hs_strdup(value);
    r->n_headers++;
}

const char *hs_resp_get_header(const struct hs_resp *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++)
        if (strcasecmp(r->hname[i], name) == 0)
            return r->hvalue[i];
    return NULL;
}

/* Drops a body, file or stream set before (a handler that changes its mind, an error). */
static void resp_drop_content(struct hs_resp *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    if (r->reader_free)
        r->reader_free(r->reader_cls);
    r->reader = NULL;
    r->reader_cls = NULL;
    r->reader_free = NULL;
    r->reader_bind = NULL;
    r->reader_size = MHD_SIZE_UNKNOWN;
    r->reader_block = 4096;
}

void hs_resp_set(struct hs_resp *r, int status, const char *ctype, char *body, size_t len)
{
    resp_drop_content(r);
    free(r->ctype);
    r->status = status;
    r->ctype = hs_strdup(ctype);
    r->body = body;
    r->len = body ? len : 0;
}

void hs_resp_text(struct hs_resp *r, int status, const char *ctype, const char *text)
{
    hs_resp_set(r, status, ctype, hs_strdup(text), strlen(text));
}

void hs_resp_json(struct hs_resp *r, int status, json_t *j)
{
    if (!j) {
        hs_resp_error(r, 500, "internal", "internal error");
        return;
    }
    char *s = hs_json_dump(j);
    json_decref(j);
    hs_resp_set(r, status, "application/json", s, strlen(s));
}

const char *hs_http_code_for_status(int status)
{
    switch (status) {
    case 400:
        return "bad_request";
    case 401:
        return "unauthorized";
    case 403:
        return "forbidden";
    case 404:
        return "not_found";
    case 405:
        return "method_not_allowed";
    case 409:
        return "reconnect_required";
    case 413:
        return "payload_too_large";
    case 415:
        return "unsupported_media_type";
    case 429:
        return "rate_limited";
    case 502:
        return "upstream_error";
    case 501:
        return "not_implemented";
    case 503:
        return "upstream_unavailable";
    case 504:
        return "upstream_timeout";
    default:
        return status >= 500 ? "internal" : "bad_request";
    }
}

void hs_resp_error(struct hs_resp *r, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof msg, fmt, ap); /* a cut message is still a message */
    va_end(ap);
    json_t *e = json_pack("{s:s, s:o, s:i}", "code", code ? code : hs_http_code_for_status(status),
                          "message", hs_json_text(msg), "status", status);
    json_t *doc = json_pack("{s:o}", "error", e);
    char *s = hs_json_dump(doc);
    json_decref(doc);
    hs_resp_set(r, status, "application/json", s, strlen(s));
}

void hs_resp_fail(struct hs_resp *r, int rc, const struct hs_error *err, const char *what)
{
    const char *msg = err && err->msg[0] ? err->msg : hs_err_name(rc);
    switch (rc) {
    case HS_ERR_NOT_FOUND:
        hs_resp_error(r, 404, "not_found", "%s: %s", what, msg);
        break;
    case HS_ERR_INVALID:
        hs_resp_error(r, 400, "bad_request", "%s: %s", what, msg);
        break;
    case HS_ERR_RATE_LIMITED:
        hs_resp_error(r, 429, "rate_limited",
                      "%s: Hover's request budget is used up, try again "
                      "in a minute (%s)",
                      what, msg);
        hs_resp_header(r, "Retry-After", "60");
        break;
    case HS_ERR_NETWORK:
    case HS_ERR_TRUNCATED:
    case HS_ERR_SERVER:
        hs_resp_error(r, 503, "upstream_unavailable", "%s: Hover is unreachable or failing (%s)",
                      what, msg);
        hs_resp_header(r, "Retry-After", "30");
        break;
    case HS_ERR_UNAUTHORIZED:
    case HS_ERR_INVALID_GRANT:
    case HS_ERR_NO_CREDENTIALS:
        hs_resp_error(r, 409, "reconnect_required",
                      "%s: the Hover connection must be re-authorised (%s)", what, msg);
        break;
    case HS_ERR_HTTP:
    case HS_ERR_FORBIDDEN:
    case HS_ERR_UNPROCESSABLE:
    case HS_ERR_PARSE:
    case HS_ERR_TOOBIG:
        hs_resp_error(r, 502, "upstream_error", "%s: Hover's answer was refused (%s)", what, msg);
        break;
    default:
        /* Store and local failures: the detail (paths, SQL) goes to the log only. */
        hs_warn("http msg=\"internal error\" what=\"%s\" code=%s detail=\"%s\"", what,
                hs_err_name(rc), msg);
        hs_resp_error(r, 500, "internal", "%s failed: internal error (see the service log)", what);
    }
}

void hs_resp_html(struct hs_resp *r, int status, char *html)
{
    /* The CSP goes out with the common headers of every HTML answer (server.c). */
    hs_resp_set(r, status, "text/html; charset=utf-8", html, html ? strlen(html) : 0);
    hs_resp_header(r, "Cache-Control", "no-store");
}

void hs_resp_html_message(struct hs_resp *r, int status, const char *title, const char *message)
{
    char *t = hs_html_escape(title), *m = hs_html_escape(message);
    char *html = hs_aprintf("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                            "<title>%s</title></head><body><h1>%s</h1><p>%s</p></body></html>",
                            t, t, m);
    free(t);
    free(m);
    hs_resp_html(r, status, html);
}

/* The answer's body once its headers are set: a local file, a stream, or a redirect. */
static void stored_file_body(const struct hs_req *q, struct hs_resp *r, const struct hs_blobs *b,
                             const struct hs_artifact_row *a, int64_t size)
{
    struct hs_error err = {0};
    char *url = NULL;
    char *path = hs_blobs_local_path(b, a->path);
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
    if (path && fd < 0) {
        char eb[128];
        hs_warn("http msg=\"stored file missing\" sha256=%s path=%s error=\"%s\"", a->sha256, path,
                strerror_r(errno, eb, sizeof eb));
        hs_resp_error(r, 404, "not_found", "the stored file is missing");
    } else if (fd >= 0) {
        r->fd = fd;
        r->fd_size = (uint64_t)size;
    } else if (hs_blobs_redirect_seconds(b) > 0) {
        if (hs_blobs_presign(b, a->path, a->content_type, &url, &err) != HS_OK) {
            hs_resp_fail(r, HS_ERR_INTERNAL, &err, "signing the file's URL");
        } else {
            hs_resp_set(r, 302, NULL, NULL, 0);
            hs_resp_header(r, "Location", url);
            /* The URL expires: a cache must not keep the redirect longer than a minute. */
            hs_resp_header(r, "Cache-Control", "private, max-age=60");
        }
    } else if (hs_blobstream_response(q, r, b, a, size) != 0) {
        hs_resp_error(r, 503, "internal", "the service is stopping");
    }
    free(url);
    free(path);
}

void hs_resp_stored_file(const struct hs_req *q, struct hs_resp *r, const struct hs_blobs *b,
                         const struct hs_artifact_row *a, const char *cache_control)
{
    int64_t size = 0;
    struct hs_error err = {0};
    int rc = hs_blobs_size(b, a->path, &size, &err);
    if (rc == HS_ERR_NOT_FOUND || (rc == HS_OK && a->bytes > 0 && size != a->bytes)) {
        hs_warn("http msg=\"stored file missing\" sha256=%s path=%s bytes=%lld error=\"%s\"",
                a->sha256, a->path, (long long)(rc ? -1 : size),
                rc ? err.msg : "not the size of the row");
        hs_resp_error(r, 404, "not_found", "the stored file is missing");
        return;
    }
    if (rc) {
        /* The object store failing is not Hover failing: say which one. */
        hs_resp_error(r, 503, "storage_unavailable",
                      "reading the stored file: the artifact store is unreachable or failing (%s)",
                      err.msg[0] ? err.msg : hs_err_name(rc));
        hs_resp_header(r, "Retry-After", "30");
        return;
    }
    char etag[80];
    (void)snprintf(etag, sizeof etag, "\"%s\"", a->sha256);
    hs_resp_set(r, 200,
                a->content_type && *a->content_type ? a->content_type : "application/octet-stream",
                NULL, 0);
    hs_resp_header(r, "ETag", etag);
    hs_resp_header(r, "Cache-Control", cache_control);
    /* Bytes from Hover are served from our origin: never as an active document. */
    hs_resp_header(r, "Content-Security-Policy", "default-src 'none'; sandbox");
    if (hs_etag_matches(hs_req_header(q, MHD_HTTP_HEADER_IF_NONE_MATCH), etag)) {
        r->status = 304;
        return;
    }
    stored_file_body(q, r, b, a, size);
}

static enum MHD_Result copy_value(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    struct hs_req_values *v = cls;
    v->v = hs_realloc(v->v, (v->n + 1) * sizeof *v->v);
    v->v[v->n++] = (struct hs_req_value){(int)kind, hs_strdup(key), hs_strdup(value)};
    return MHD_YES;
}

void hs_req_values_copy(struct hs_req_values *v, struct MHD_Connection *conn, const char *method,
                        const char *path)
{
    memset(v, 0, sizeof *v);
    v->method = hs_strdup(method);
    v->path = hs_strdup(path);
    (void)MHD_get_connection_values(conn, MHD_HEADER_KIND | MHD_GET_ARGUMENT_KIND | MHD_COOKIE_KIND,
                                    copy_value, v);
}

void hs_req_values_clear(struct hs_req_values *v)
{
    for (size_t i = 0; i < v->n; i++) {
        free(v->v[i].name);
        free(v->v[i].value);
    }
    free(v->v);
    free(v->method);
    free(v->path);
    memset(v, 0, sizeof *v);
}

/* Like MHD_lookup_connection_value: the first of that kind, names without case. */
static const char *lookup(const struct hs_req *q, enum MHD_ValueKind kind, const char *name)
{
    if (!q->values)
        return MHD_lookup_connection_value(q->conn, kind, name);
    for (size_t i = 0; i < q->values->n; i++) {
        const struct hs_req_value *x = &q->values->v[i];
        if (x->kind == (int)kind && strcasecmp(x->name, name) == 0)
            return x->value;
    }
    return NULL;
}

const char *hs_req_arg(const struct hs_req *q, const char *name)
{
    return lookup(q, MHD_GET_ARGUMENT_KIND, name);
}

const char *hs_req_header(const struct hs_req *q, const char *name)
{
    return lookup(q, MHD_HEADER_KIND, name);
}

const char *hs_req_cookie(const struct hs_req *q, const char *name)
{
    return lookup(q, MHD_COOKIE_KIND, name);
}

/* ---- framing ---- */

static bool blank(char c)
{
    return c == ' ' || c == '\t';
}

/* The comma-separated codings of a Transfer-Encoding value: false when one is not "chunked" or
 * the value is empty; *chunks counts the "chunked" ones. */
static bool codings_ok(const char *v, int *chunks, const char **bad, size_t *bad_len)
{
    bool any = false;
    while (*v) {
        while (blank(*v) || *v == ',')
            v++;
        if (!*v)
            break;
        const char *start = v;
        while (*v && *v != ',')
            v++;
        size_t len = (size_t)(v - start);
        while (len && blank(start[len - 1]))
            len--;
        any = true;
        if (len != 7 || strncasecmp(start, "chunked", 7) != 0) {
            *bad = start;
            *bad_len = len;
            return false;
        }
        (*chunks)++;
    }
    if (!any) {
        *bad = "";
        *bad_len = 0;
    }
    return any;
}

static void framing_fail(struct hs_framing *f, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void framing_fail(struct hs_framing *f, int status, const char *fmt, ...)
{
    if (f->status)
        return; /* the first problem is the one told */
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(f->msg, sizeof f->msg, fmt, ap);
    va_end(ap);
    f->status = status;
}

static uint64_t parse_length(const char *v, bool *ok)
{
    uint64_t n = 0;
    const char *p = v;
    while (blank(*p))
        p++;
    *ok = *p >= '0' && *p <= '9';
    for (; *p >= '0' && *p <= '9'; p++)
        n = n > (UINT64_MAX - 9) / 10 ? UINT64_MAX : n * 10 + (uint64_t)(*p - '0');
    while (blank(*p))
        p++;
    if (*p)
        *ok = false;
    return n;
}

void hs_http_framing(const char *version, const struct hs_req_value *h, size_t n,
                     struct hs_framing *out)
{
    memset(out, 0, sizeof *out);
    size_t hosts = 0, lengths = 0, encodings = 0;
    int chunks = 0;
    const char *first_length = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *name = h[i].name ? h[i].name : "", *value = h[i].value ? h[i].value : "";
        if (strcasecmp(name, "Host") == 0) {
            hosts++;
        } else if (strcasecmp(name, "Content-Length") == 0) {
            bool ok;
            uint64_t len = parse_length(value, &ok);
            if (!ok)
                framing_fail(out, 400, "malformed Content-Length");
            else if (lengths && (!first_length || parse_length(first_length, &ok) != len))
                framing_fail(out, 400, "several different Content-Length headers");
            first_length = value;
            out->length = len;
            lengths++;
        } else if (strcasecmp(name, "Transfer-Encoding") == 0) {
            const char *bad = NULL;
            size_t bad_len = 0;
            encodings++;
            if (!codings_ok(value, &chunks, &bad, &bad_len)) {
                if (bad_len)
                    framing_fail(out, 501, "Transfer-Encoding %.*s is not supported (only chunked)",
                                 (int)(bad_len > 40 ? 40 : bad_len), bad);
                else
                    framing_fail(out, 400, "empty Transfer-Encoding");
            }
        } else if (strcasecmp(name, "Expect") == 0 && strcasecmp(value, "100-continue") == 0) {
            out->expect_continue = true;
        }
    }
    if (lengths && encodings)
        framing_fail(out, 400, "Content-Length and Transfer-Encoding together");
    if (chunks > 1)
        framing_fail(out, 400, "chunked applied more than once");
    if (hosts > 1)
        framing_fail(out, 400, "several Host headers");
    if (hosts == 0 && version && strcmp(version, "HTTP/1.1") == 0)
        framing_fail(out, 400, "an HTTP/1.1 request needs a Host header");
    out->has_length = lengths > 0;
    out->chunked = chunks == 1;
}

int hs_req_json_object(const struct hs_req *q, bool empty_ok, json_t **out, struct hs_resp *r)
{
    size_t i = 0;
    while (i < q->body_len &&
           (q->body[i] == ' ' || q->body[i] == '\t' || q->body[i] == '\r' || q->body[i] == '\n'))
        i++;
    if (i == q->body_len) {
        if (empty_ok) {
            *out = json_object();
            return 0;
        }
        hs_resp_error(r, 400, "bad_request", "a JSON object body is required");
        return -1;
    }
    json_t *j = NULL;
    struct hs_error err = {0};
    if (hs_json_parse(q->body, q->body_len, HS_HTTP_BODY_MAX, &j, &err) != HS_OK) {
        hs_resp_error(r, 400, "bad_request", "the body is not valid JSON: %s", err.msg);
        return -1;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        hs_resp_error(r, 400, "bad_request", "the body must be a JSON object");
        return -1;
    }
    *out = j;
    return 0;
}

int hs_req_int_arg(const struct hs_req *q, const char *name, int64_t min, int64_t max, int64_t dflt,
                   int64_t *out, struct hs_resp *r)
{
    const char *v = hs_req_arg(q, name);
    if (!v || !*v) {
        *out = dflt;
        return 0;
    }
    if (hs_parse_i64_range(v, min, max, out) != 0) {
        hs_resp_error(r, 400, "bad_request", "%s must be a whole number from %lld to %lld", name,
                      (long long)min, (long long)max);
        return -1;
    }
    return 0;
}

const char *hs_content_type_for(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".map", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".jpg", "image/jpeg"},
        {".jpeg", "image/jpeg"},
        {".gif", "image/gif"},
        {".webp", "image/webp"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
        {".woff2", "font/woff2"},
        {".pdf", "application/pdf"},
        {".yaml", "application/yaml"},
    };
    const char *dot = strrchr(name, '.');
    const char *slash = strrchr(name, '/');
    if (dot && (!slash || dot > slash))
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

bool hs_secret_equal(const char *a, const char *b)
{
    if (!a || !b)
        return false;
    size_t la = strlen(a), lb = strlen(b);
    /* The lengths of our secrets are fixed and public; only the bytes must not leak timing. */
    if (la != lb)
        return false;
    return CRYPTO_memcmp(a, b, la) == 0;
}

int hs_listen_parse(const char *spec, char *host, size_t hn, int *port)
{
    if (!spec || !*spec)
        return HS_ERR_INVALID;
    const char *pstr;
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (!close || close[1] != ':' || (size_t)(close - spec - 1) >= hn || close == spec + 1)
            return HS_ERR_INVALID;
        memcpy(host, spec + 1, (size_t)(close - spec - 1));
        host[close - spec - 1] = '\0';
        pstr = close + 2;
    } else {
        const char *colon = strrchr(spec, ':');
        if (!colon || (size_t)(colon - spec) >= hn || strchr(spec, ':') != colon)
            return HS_ERR_INVALID;
        memcpy(host, spec, (size_t)(colon - spec));
        host[colon - spec] = '\0';
        if (!host[0] && hs_strlcpy(host, "127.0.0.1", hn) != 0)
            return HS_ERR_INVALID;
        pstr = colon + 1;
    }
    int64_t p;
    if (hs_parse_i64_range(pstr, 0, 65535, &p) != 0)
        return HS_ERR_INVALID;
    *port = (int)p;
    return HS_OK;
}

bool hs_path_match(const char *pattern, const char *path, char **caps, size_t max, size_t *n)
{
    size_t k = 0;
    const char *p = pattern, *u = path;
    bool ok = true;
    while (ok && *p && *u) {
        if (*p != '/' || *u != '/') {
            ok = false;
            break;
        }
        p++;
        u++;
        const char *pe = strchr(p, '/'), *ue = strchr(u, '/');
        size_t pl = pe ? (size_t)(pe - p) : strlen(p), ul = ue ? (size_t)(ue - u) : strlen(u);
        if (pl >= 2 && p[0] == '{' && p[pl - 1] == '}') {
            if (ul == 0 || k == max)
                ok = false;
            else if (caps)
                caps[k++] = hs_strndup(u, ul);
            else
                k++;
        } else if (pl != ul || memcmp(p, u, pl) != 0) {
            ok = false;
        }
        p += pl;
        u += ul;
    }
    ok = ok && !*p && !*u;
    if (!ok && caps) {
        for (size_t i = 0; i < k; i++) {
            free(caps[i]);
            caps[i] = NULL;
        }
    }
    *n = ok ? k : 0;
    return ok;
}

bool hs_web_path_ok(const char *p)
{
    size_t n = strlen(p);
    if (n < 2 || n > 512 || p[0] != '/')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '/'))
            return false;
        if (c == '/' && (p[i + 1] == '/' || p[i + 1] == '.' || p[i + 1] == '\0'))
            return false;
    }
    return true;
}
