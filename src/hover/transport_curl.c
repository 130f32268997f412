/* transport_curl.c: the libcurl implementation of hs_transport. Each hop is its own easy handle
 * run on the process's multi loop (multi.h), which keeps connections alive across requests and
 * threads, so one transport serves any number of threads at once; curl's own redirect following
 * is off and hs_http_follow decides every hop (the bearer token never leaves its origin).
 * CURLcode is mapped to hs_err in map_curl_error() only. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/mem.h"
#include "core/str.h"
#include "hover/multi.h"
#include "hover/transport.h"

#define DEFAULT_TIMEOUT_MS 60000
/* The loop's last-resort wait beyond a transfer's own timeout. */
#define WAIT_MARGIN_MS 5000
#define USER_AGENT     "hoversync/0.1"

struct curl_transport {
    struct hs_transport base;
};

/* State of one hop, shared with curl's callbacks. */
struct hop {
    const struct hs_http_request *rq;
    struct hs_http_response *rs;
    CURL *easy;
    size_t max;
    int64_t bytes;
    bool decided; /* whether the body goes to the sink is decided at its first byte */
    bool to_sink;
    bool saw_retry_after;
    int abort_code; /* why a callback stopped the transfer: HS_ERR_TOOBIG or the sink's code */
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_OK;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Copies a header value without surrounding blanks and the CRLF. */
static char *header_value(const char *p, size_t n)
{
    while (n && (*p == ' ' || *p == '\t')) {
        p++;
        n--;
    }
    while (n && (p[n - 1] == '\r' || p[n - 1] == '\n' || p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    return hs_strndup(p, n);
}

static bool header_is(const char *line, size_t n, const char *name, const char **value,
                      size_t *vlen)
{
    size_t nl = strlen(name);
    if (n <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
        return false;
    *value = line + nl + 1;
    *vlen = n - nl - 1;
    return true;
}

static void set_header(char **slot, const char *v, size_t n)
{
    free(*slot);
    *slot = header_value(v, n);
}

static size_t on_header(char *line, size_t size, size_t nitems, void *ud)
{
    struct hop *h = ud;
    size_t n = size * nitems;
    const char *v;
    size_t vn;

    /* A new status line (after a 1xx answer) starts a new set of headers. */
    if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        hs_free_ptr(&h->rs->etag);
        hs_free_ptr(&h->rs->content_type);
        hs_free_ptr(&h->rs->location);
        hs_free_ptr(&h->rs->content_md5);
        hs_free_ptr(&h->rs->digest);
        h->saw_retry_after = false;
    } else if (header_is(line, n, "ETag", &v, &vn)) {
        set_header(&h->rs->etag, v, vn);
    } else if (header_is(line, n, "Content-Type", &v, &vn)) {
        set_header(&h->rs->content_type, v, vn);
    } else if (header_is(line, n, "Location", &v, &vn)) {
        set_header(&h->rs->location, v, vn);
    } else if (header_is(line, n, "Content-MD5", &v, &vn)) {
        set_header(&h->rs->content_md5, v, vn);
    } else if (header_is(line, n, "Digest", &v, &vn)) {
        set_header(&h->rs->digest, v, vn);
    } else if (header_is(line, n, "Retry-After", &v, &vn)) {
        h->saw_retry_after = true;
    }
    return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct hop *h = ud;
    size_t n = size * nmemb;

    if (!h->decided) {
        long status = 0;
        curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
        h->to_sink = h->rq->sink && status >= 200 && status < 300;
        h->decided = true;
    }
    if (n > h->max || (size_t)h->bytes > h->max - n) {
        h->abort_code = HS_ERR_TOOBIG;
        return 0;
    }
    h->bytes += (int64_t)n;
    if (h->to_sink) {
        int rc = h->rq->sink(h->rq->sink_ctx, data, n);
        if (rc != 0) {
            h->abort_code = rc < 0 ? rc : HS_ERR_IO;
            return 0;
        }
        return n;
    }
    if (hs_buf_append(&h->rs->body, data, n) != HS_OK) {
        h->abort_code = HS_ERR_TOOBIG;
        return 0;
    }
    return n;
}

/* The one place where CURLcode becomes hs_err. */
static int map_curl_error(CURLcode cc, const struct hop *h, const char *errbuf, int64_t timeout_ms,
                          struct hs_error *err)
{
    char url[256];
    hs_url_for_log(h->rq->url, url, sizeof url);
    const char *method = h->rq->method ? h->rq->method : "GET";
    const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(cc);

    switch (cc) {
    case CURLE_OK:
        return HS_OK;
    case CURLE_WRITE_ERROR:
    case CURLE_ABORTED_BY_CALLBACK:
        if (h->abort_code == HS_ERR_TOOBIG)
            return hs_fail(err, HS_ERR_TOOBIG, "%s %s: response body over the %zu byte cap", method,
                           url, h->max);
        if (h->abort_code != 0)
            return hs_fail(err, h->abort_code, "%s %s: the body sink failed (%s)", method, url,
                           hs_err_name(h->abort_code));
        return hs_fail(err, HS_ERR_IO, "%s %s: write error: %s", method, url, detail);
    case CURLE_FILESIZE_EXCEEDED:
        return hs_fail(err, HS_ERR_TOOBIG, "%s %s: response body over the %zu byte cap", method,
                       url, h->max);
    case CURLE_PARTIAL_FILE:
        return hs_fail(err, HS_ERR_TRUNCATED,
                       "%s %s: body shorter than its Content-Length (%lld bytes received): %s",
                       method, url, (long long)h->bytes, detail);
    case CURLE_OPERATION_TIMEDOUT:
        return hs_fail(err, HS_ERR_NETWORK, "%s %s: timed out after %lld ms: %s", method, url,
                       (long long)timeout_ms, detail);
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return hs_fail(err, HS_ERR_NETWORK, "%s %s: cannot resolve host: %s", method, url, detail);
    case CURLE_COULDNT_CONNECT:
        return hs_fail(err, HS_ERR_NETWORK, "%s %s: cannot connect: %s", method, url, detail);
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return hs_fail(err, HS_ERR_INVALID, "%s %s: bad URL: %s", method, url, detail);
    case CURLE_OUT_OF_MEMORY:
        return hs_fail(err, HS_ERR_INTERNAL, "%s %s: out of memory in libcurl", method, url);
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
        return hs_fail(err, HS_ERR_NETWORK, "%s %s: TLS failure: %s", method, url, detail);
    default:
        /* Resets, empty replies, send/receive errors, HTTP/2 stream errors: the network. */
        return hs_fail(err, HS_ERR_NETWORK, "%s %s: %s (curl error %d)", method, url, detail,
                       (int)cc);
    }
}

static void set_method(CURL *e, const struct hs_http_request *rq)
{
    const char *method = rq->method ? rq->method : "GET";
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else {
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        if (rq->body || strcmp(method, "POST") == 0) {
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, rq->body ? rq->body : "");
        }
    }
}

/* One "Name: value" line appended to *hdrs; HS_ERR_TOOBIG when it does not fit a line. */
static int add_header(struct curl_slist **hdrs, struct hs_buf *line, const char *name,
                      const char *prefix, const char *value, struct hs_error *err)
{
    hs_buf_reset(line);
    if (hs_buf_appendf(line, "%s: %s%s", name, prefix, value) != HS_OK)
        return hs_fail(err, HS_ERR_TOOBIG, "request header %s too long", name);
    *hdrs = curl_slist_append(*hdrs, hs_buf_str(line));
    return HS_OK;
}

/* The request's headers: the caller's (never its Authorization), If-None-Match, and the bearer
 * token when this hop may carry it. */
static int build_headers(const struct hs_http_request *rq, bool send_bearer,
                         struct curl_slist **hdrs, struct hs_error *err)
{
    struct hs_buf line;
    hs_buf_init(&line, 16 * 1024);
    /* No "Expect: 100-continue" round trip for bodies. */
    *hdrs = curl_slist_append(*hdrs, "Expect:");
    int rc = HS_OK;
    for (size_t i = 0; i < rq->n_headers && rc == HS_OK; i++) {
        if (strcasecmp(rq->headers[i].name, "Authorization") == 0)
            continue; /* only bearer_token authorises, and only on its origin */
        rc = add_header(hdrs, &line, rq->headers[i].name, "", rq->headers[i].value, err);
    }
    if (rc == HS_OK && rq->if_none_match)
        rc = add_header(hdrs, &line, "If-None-Match", "", rq->if_none_match, err);
    if (rc == HS_OK && send_bearer && rq->bearer_token)
        rc = add_header(hdrs, &line, "Authorization", "Bearer ", rq->bearer_token, err);
    if (rc == HS_OK && !*hdrs)
        rc = hs_fail(err, HS_ERR_INTERNAL, "out of memory building request headers");
    hs_buf_free(&line);
    return rc;
}

/* What the answer's status line and headers say, once its body is in. */
static void read_answer(CURL *e, const struct hop *h, struct hs_http_response *rs)
{
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &rs->status);
    curl_off_t cl = -1;
    if (curl_easy_getinfo(e, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK && cl >= 0)
        rs->content_length = (int64_t)cl;
    /* curl parses both forms of Retry-After (seconds and HTTP-date); 0 also means "absent". */
    curl_off_t ra = 0;
    if (h->saw_retry_after && curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK)
        rs->retry_after_s = ra > 0 ? (int64_t)ra : 0;
    rs->body_bytes = h->bytes;
}

static int curl_hop(void *ctx, const struct hs_http_request *rq, bool send_bearer,
                    struct hs_http_response *rs, struct hs_error *err)
{
    (void)ctx;
    char errbuf[CURL_ERROR_SIZE];
    struct curl_slist *hdrs = NULL;
    int rc = HS_OK;
    int64_t timeout_ms = rq->timeout_ms > 0 ? rq->timeout_ms : DEFAULT_TIMEOUT_MS;
    struct hop h = {.rq = rq, .rs = rs};

    h.max = rq->max_response ? rq->max_response : HS_JSON_MAX_BYTES;
    hs_buf_init(&rs->body, h.max);
    struct hs_curl_multi *loop = hs_curl_multi_default();
    CURL *e = curl_easy_init();
    h.easy = e;
    if (!e || !loop) {
        rc = hs_fail(err, e ? HS_ERR_BUSY : HS_ERR_INTERNAL, "%s",
                     e ? "not sent: the service is stopping" : "cannot make a libcurl handle");
        goto out;
    }

    errbuf[0] = '\0';
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_URL, rq->url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, USER_AGENT);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)h.max);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &h);

    set_method(e, rq);
    if ((rc = build_headers(rq, send_bearer, &hdrs, err)) != HS_OK)
        goto out;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);

    int stopped = 0;
    CURLcode cc = hs_curl_multi_perform(loop, e, timeout_ms + WAIT_MARGIN_MS, &stopped);
    if (stopped) {
        char url[256];
        hs_url_for_log(rq->url, url, sizeof url);
        rc = hs_fail(err, HS_ERR_BUSY, "%s %s: not completed: the service is stopping",
                     rq->method ? rq->method : "GET", url);
        goto out;
    }
    if (cc != CURLE_OK) {
        rc = map_curl_error(cc, &h, errbuf, timeout_ms, err);
        goto out;
    }
    read_answer(e, &h, rs);
out:
    curl_easy_cleanup(e); /* its connection stays in the loop's cache */
    curl_slist_free_all(hdrs);
    return rc;
}

static int curl_perform(struct hs_transport *t, const struct hs_http_request *rq,
                        struct hs_http_response *rs, struct hs_error *err)
{
    if (!rq->url)
        return hs_fail(err, HS_ERR_INVALID, "request without URL");
    return hs_http_follow(curl_hop, t, rq, rs, err);
}

static void curl_destroy(struct hs_transport *t)
{
    free(t);
}

struct hs_transport *hs_transport_curl_new(void)
{
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK || !hs_curl_multi_default())
        return NULL;
    struct curl_transport *ct = hs_calloc(1, sizeof *ct);
    ct->base.perform = curl_perform;
    ct->base.destroy = curl_destroy;
    return &ct->base;
}
