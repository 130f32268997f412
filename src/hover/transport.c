/* transport.c: what every transport shares: response lifetime, URL origin checks and the manual
 * redirect loop (so that the bearer-token rule is written, and tested, once). */
#include "hover/transport.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"
#include "core/str.h"

#define HS_DEFAULT_MAX_REDIRECTS 5

void hs_http_response_init(struct hs_http_response *rs)
{
    memset(rs, 0, sizeof *rs);
    hs_buf_init(&rs->body, 0);
    rs->retry_after_s = -1;
    rs->content_length = -1;
}

void hs_http_response_clear(struct hs_http_response *rs)
{
    hs_buf_free(&rs->body);
    free(rs->etag);
    free(rs->content_type);
    free(rs->location);
    free(rs->content_md5);
    free(rs->digest);
    free(rs->final_url);
    hs_http_response_init(rs);
}

void hs_transport_free(struct hs_transport *t)
{
    if (t)
        t->destroy(t);
}

/* The parts of an absolute http(s) URL that make its origin. */
struct origin {
    char *scheme, *host, *port;
};

static void origin_free(struct origin *o)
{
    curl_free(o->scheme);
    curl_free(o->host);
    curl_free(o->port);
}

static bool origin_parse(const char *url, struct origin *o)
{
    memset(o, 0, sizeof *o);
    CURLU *u = curl_url();
    if (!u)
        return false;
    bool ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_SCHEME, &o->scheme, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_HOST, &o->host, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_PORT, &o->port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
              (strcasecmp(o->scheme, "http") == 0 || strcasecmp(o->scheme, "https") == 0);
    curl_url_cleanup(u);
    if (!ok)
        origin_free(o);
    return ok;
}

bool hs_url_same_origin(const char *a, const char *b)
{
    if (!a || !b)
        return false;
    struct origin oa, ob;
    if (!origin_parse(a, &oa))
        return false;
    if (!origin_parse(b, &ob)) {
        origin_free(&oa);
        return false;
    }
    bool same = strcasecmp(oa.scheme, ob.scheme) == 0 && strcasecmp(oa.host, ob.host) == 0 &&
                strcmp(oa.port, ob.port) == 0;
    origin_free(&oa);
    origin_free(&ob);
    return same;
}

int hs_url_resolve(const char *base, const char *location, char **out, struct hs_error *err)
{
    int rc = HS_OK;
    char *res = NULL, *scheme = NULL;
    CURLU *u = curl_url();
    if (!u)
        return hs_fail(err, HS_ERR_INTERNAL, "out of memory parsing a URL");
    if (curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK) {
        rc = hs_fail(err, HS_ERR_INVALID, "cannot parse URL");
        goto out;
    }
    /* With a URL already set, a relative one is resolved against it (RFC 3986 section 5). */
    if (curl_url_set(u, CURLUPART_URL, location, CURLU_ALLOW_SPACE) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &res, 0) != CURLUE_OK) {
        rc = hs_fail(err, HS_ERR_HTTP, "unusable redirect location");
        goto out;
    }
    if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
        rc = hs_fail(err, HS_ERR_HTTP, "redirect to a non-HTTP URL refused (scheme %s)", scheme);
        goto out;
    }
    *out = hs_strdup(res);
out:
    curl_free(scheme);
    curl_free(res);
    curl_url_cleanup(u);
    return rc;
}

void hs_url_for_log(const char *url, char *out, size_t n)
{
    if (n == 0)
        return;
    if (!url)
        url = "";
    size_t len = strcspn(url, "?#");
    if (len >= n)
        len = n - 1;
    memcpy(out, url, len);
    out[len] = '\0';
}

static bool is_redirect(long status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

int hs_http_follow(hs_http_hop_fn hop, void *ctx, const struct hs_http_request *rq,
                   struct hs_http_response *rs, struct hs_error *err)
{
    int max = rq->max_redirects == 0 ? HS_DEFAULT_MAX_REDIRECTS : rq->max_redirects;
    struct hs_http_request cur = *rq;
    char *url = hs_strdup(rq->url);
    int rc = HS_OK;

    hs_http_response_clear(rs);
    for (int hops = 0;; hops++) {
        cur.url = url;
        bool same = hs_url_same_origin(url, rq->url);
        rc = hop(ctx, &cur, same, rs, err);
        if (rc != HS_OK)
            goto out;
        rs->redirects = hops;
        if (!rs->final_url)
            rs->final_url = hs_strdup(url);
        if (max < 0 || !is_redirect(rs->status) || !rs->location)
            goto out;
        char shown[256];
        hs_url_for_log(rq->url, shown, sizeof shown);
        if (hops >= max) {
            rc = hs_fail(err, HS_ERR_HTTP, "%s: more than %d redirects", shown, max);
            if (err)
                err->http_status = (int)rs->status;
            goto out;
        }
        char *next = NULL;
        rc = hs_url_resolve(url, rs->location, &next, err);
        if (rc != HS_OK)
            goto out;
        free(url);
        url = next;
        bool was_post =
            cur.method && strcmp(cur.method, "GET") != 0 && strcmp(cur.method, "HEAD") != 0;
        if (rs->status == 303 || ((rs->status == 301 || rs->status == 302) && was_post)) {
            cur.method = "GET";
            cur.body = NULL;
            cur.body_len = 0;
        }
        hs_http_response_clear(rs);
    }
out:
    if (rc != HS_OK)
        hs_http_response_clear(rs);
    free(url);
    return rc;
}
