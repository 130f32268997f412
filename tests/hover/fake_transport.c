/* fake_transport.c: see fake_transport.h. */
#include "fake_transport.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"
#include "core/str.h"

static void record(struct fake_transport *ft, const struct hs_http_request *rq, bool send_bearer)
{
    if (ft->n_reqs == FAKE_MAX)
        abort();
    struct fake_request *r = &ft->reqs[ft->n_reqs++];
    r->method = hs_strdup(rq->method ? rq->method : "GET");
    r->url = hs_strdup(rq->url);
    r->body = rq->body ? hs_strndup(rq->body, rq->body_len) : NULL;
    r->bearer = send_bearer ? hs_strdup(rq->bearer_token) : NULL;
    r->if_none_match = hs_strdup(rq->if_none_match);
    for (size_t i = 0; i < rq->n_headers; i++)
        if (strcasecmp(rq->headers[i].name, "Accept") == 0)
            r->accept = hs_strdup(rq->headers[i].value);
    r->max_response = rq->max_response;
    r->timeout_ms = rq->timeout_ms;
    if (ft->on_request)
        ft->on_request(ft->on_request_ctx, ft, r);
}

/* Delivers the body like curl does: to the sink for a 2xx with a sink, else to the buffer, in
 * small pieces, with the same cap. */
static int deliver(const struct hs_http_request *rq, struct hs_http_response *rs, const char *b,
                   size_t n, struct hs_error *err)
{
    size_t max = rq->max_response ? rq->max_response : HS_JSON_MAX_BYTES;
    bool to_sink = rq->sink && rs->status >= 200 && rs->status < 300;
    hs_buf_init(&rs->body, max);
    for (size_t off = 0; off < n;) {
        size_t k = n - off < 7 ? n - off : 7;
        if (off + k > max)
            return hs_fail(err, HS_ERR_TOOBIG, "fake: body over the %zu byte cap", max);
        if (to_sink) {
            int rc = rq->sink(rq->sink_ctx, b + off, k);
            if (rc)
                return hs_fail(err, rc < 0 ? rc : HS_ERR_IO, "fake: sink failed");
        } else if (hs_buf_append(&rs->body, b + off, k) != HS_OK) {
            return hs_fail(err, HS_ERR_TOOBIG, "fake: body over the cap");
        }
        off += k;
        rs->body_bytes += (int64_t)k;
    }
    return HS_OK;
}

static int fake_hop(void *ctx, const struct hs_http_request *rq, bool send_bearer,
                    struct hs_http_response *rs, struct hs_error *err)
{
    struct fake_transport *ft = ctx;
    record(ft, rq, send_bearer);
    if (ft->next >= ft->n_script)
        return hs_fail(err, HS_ERR_INTERNAL, "fake transport: no answer scripted for %s", rq->url);
    const struct fake_response *a = &ft->script[ft->next++];
    size_t blen = a->body ? (a->body_len ? a->body_len : strlen(a->body)) : 0;
    if (a->error && !a->body)
        return hs_fail(err, a->error, "fake transport error %s", hs_err_name(a->error));
    rs->status = a->status ? a->status : 200;
    rs->etag = hs_strdup(a->etag);
    rs->content_type = hs_strdup(a->content_type);
    rs->location = hs_strdup(a->location);
    if (a->retry_after) {
        int64_t v;
        rs->retry_after_s = hs_parse_i64(a->retry_after, &v) == HS_OK ? v : 0;
    }
    rs->content_md5 = hs_strdup(a->content_md5);
    rs->digest = hs_strdup(a->digest);
    rs->content_length = (int64_t)blen;
    if (a->content_length && strcmp(a->content_length, "none") == 0)
        rs->content_length = -1;
    else if (a->content_length && hs_parse_i64(a->content_length, &rs->content_length) != HS_OK)
        abort();
    int rc = deliver(rq, rs, a->body, blen, err);
    if (rc == HS_OK && a->error)
        rc = hs_fail(err, a->error, "fake transport error %s after %zu bytes",
                     hs_err_name(a->error), blen);
    return rc;
}

static int fake_perform(struct hs_transport *t, const struct hs_http_request *rq,
                        struct hs_http_response *rs, struct hs_error *err)
{
    return hs_http_follow(fake_hop, t, rq, rs, err);
}

static void fake_destroy(struct hs_transport *t)
{
    (void)t; /* tests own the struct */
}

void fake_transport_init(struct fake_transport *ft)
{
    memset(ft, 0, sizeof *ft);
    ft->base.perform = fake_perform;
    ft->base.destroy = fake_destroy;
}

void fake_transport_push(struct fake_transport *ft, struct fake_response r)
{
    if (ft->n_script == FAKE_MAX)
        abort();
    ft->script[ft->n_script++] = r;
}

void fake_transport_answer(struct fake_transport *ft, long status, const char *body)
{
    fake_transport_push(ft, (struct fake_response){.status = status, .body = body});
}

void fake_transport_cleanup(struct fake_transport *ft)
{
    for (size_t i = 0; i < ft->n_reqs; i++) {
        struct fake_request *r = &ft->reqs[i];
        free(r->method);
        free(r->url);
        free(r->body);
        free(r->bearer);
        free(r->if_none_match);
        free(r->accept);
    }
    ft->n_reqs = 0;
}
