/* routes_webhooks.c: POST /webhooks/hover (Hover's deliveries, a thin shell around
 * src/webhook/receiver.h), GET /api/status (src/webhook/health.h), and the registration of the
 * service's webhook for connections (--register-webhooks). The intake stays fast: no Hover call
 * on a delivery (a verification code is queued for the verifier, src/webhook/verifier.h). */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "server/internal.h"
#include "webhook/health.h"
#include "webhook/receiver.h"
#include "webhook/registration.h"
#include "webhook/signature.h"

void hs_route_webhook_hover(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    /* The sender signed the path of the URL it was given (the public URL's), whatever a proxy
     * in between passed on to us. */
    char uri[2048];
    const char *request_uri = q->uri ? q->uri : q->path;
    char *url = s->public_url ? hs_webhook_receiver_url(s->public_url) : NULL;
    if (url && hs_webhook_uri_of_url(url, uri, sizeof uri) == HS_OK)
        request_uri = uri;
    free(url);
    struct hs_webhook_request rq = {
        .method = q->method,
        .request_uri = request_uri,
        .content_type = hs_req_header(q, MHD_HTTP_HEADER_CONTENT_TYPE),
        .content_md5 = hs_req_header(q, "Content-MD5"),
        .content_sha256 = hs_req_header(q, "X-Authorization-Content-SHA256"),
        .date = hs_req_header(q, MHD_HTTP_HEADER_DATE),
        .authorization = hs_req_header(q, MHD_HTTP_HEADER_AUTHORIZATION),
        .body = q->body,
        .body_len = q->body_len,
    };
    struct hs_receiver_config cfg = {
        .store = s->store,
        .clock = s->clock,
        .delay_ms = s->webhook_delay_ms,
    };
    struct hs_receiver_result res;
    hs_receiver_handle(&cfg, &rq, &res);
    hs_resp_text(r, res.status, "application/json", res.body);
    if (res.status == 503)
        hs_resp_header(r, "Retry-After", "5");
}

void hs_route_status(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    struct hs_health_source src = {.provider = &s->provider, .store = s->store};
    json_t *doc = NULL;
    struct hs_error err = {0};
    int rc = hs_health_collect(s->store, s->clock->wall_ms(s->clock), hs_health_list_via_provider,
                               &src, &doc, &err);
    if (rc) {
        hs_resp_fail(r, rc, &err, "status");
        return;
    }
    hs_resp_json(r, 200, doc);
}

static int register_one(struct hs_server *s, const char *key, const char *url, struct hs_error *err)
{
    struct hs_client *c = NULL;
    int rc = s->provider.acquire(s->provider.ctx, key, &c, err);
    if (rc)
        return rc;
    enum hs_webhook_outcome what = HS_WEBHOOK_REGISTERED;
    bool verified = false;
    struct hs_webhook_row w = {0};
    rc = hs_webhook_ensure(s->store, c, key, url, false, &w, &what, &verified, err);
    s->provider.release(s->provider.ctx, c);
    if (!rc)
        hs_info("webhook connection=%s webhook_id=%lld outcome=%s verified=%s", key,
                (long long)w.id,
                what == HS_WEBHOOK_ALREADY_VERIFIED ? "already_verified"
                : what == HS_WEBHOOK_CODE_REQUESTED ? "code_requested"
                                                    : "registered",
                verified ? "yes" : "pending");
    hs_webhook_row_clear(&w);
    return rc;
}

int hs_server_register_webhooks(struct hs_server *s, const char *connection_key,
                                struct hs_error *err)
{
    if (!s->public_url)
        return hs_fail(err, HS_ERR_INVALID, "the server is not started");
    char *url = hs_webhook_receiver_url(s->public_url);
    struct hs_connection_row *conns = NULL;
    size_t n = 0;
    int first = HS_OK;
    int rc = s->store->ops->connections_list(s->store, &conns, &n, err);
    for (size_t i = 0; !rc && i < n; i++) {
        if (!conns[i].has_token || (connection_key && strcmp(connection_key, conns[i].key) != 0))
            continue;
        struct hs_error e1 = {0};
        int r = register_one(s, conns[i].key, url, &e1);
        if (r) {
            hs_warn("webhook registration failed connection=%s error=%s msg=\"%s\"", conns[i].key,
                    hs_err_name(r), e1.msg);
            if (!first) {
                first = r;
                if (err)
                    *err = e1;
            }
        }
    }
    hs_connection_rows_free(conns, n);
    free(url);
    return rc ? rc : first;
}
