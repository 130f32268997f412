/* routes_webhooks.c: POST /webhooks/hover (Hover's deliveries, a thin shell around
 * src/webhook/receiver.h), GET /api/status (src/webhook/health.h), and the registration of the
 * service's webhook for connections (--register-webhooks). The intake stays fast: no Hover call
 * on a delivery (a verification code is queued for the verifier, src/webhook/verifier.h).
 *
 * GET /api/status reads the store, and Hover's word on the webhooks from a cache: each
 * connection's webhook list is asked at most once a minute (a failure is kept 15 s), one caller
 * at a time, the others waiting for its answer. Status is polled by dashboards; without the
 * cache every poll cost a request per connection out of the integration's 120 a minute. */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "server/internal.h"
#include "store/service.h"
#include "webhook/health.h"
#include "webhook/receiver.h"
#include "webhook/registration.h"
#include "webhook/signature.h"

static void wake_workers(void *ctx)
{
    hs_events_wake(ctx);
}

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
        .wake = s->events ? wake_workers : NULL,
        .wake_ctx = s->events,
        .cache = s->webhook_cache,
    };
    struct hs_receiver_result res;
    hs_receiver_handle(&cfg, &rq, &res);
    hs_metrics_webhook(s->metrics, res.result);
    hs_resp_text(r, res.status, "application/json", res.body);
    if (res.status == 503)
        hs_resp_header(r, "Retry-After", "5");
}

#define HEALTH_TTL_MS       60000
#define HEALTH_ERROR_TTL_MS 15000
#define HEALTH_N            64

struct health_entry {
    char *key;
    struct hs_hover_webhook *v;
    size_t n;
    int rc;
    struct hs_error err;
    int64_t at_ms;
};

struct health_cache {
    pthread_mutex_t lock;    /* the entries */
    pthread_mutex_t refresh; /* one list call at a time */
    struct health_entry e[HEALTH_N];
    size_t next;
    /* The status's sizes (hs_health_add_storage reads every table's pages and walks the files):
     * measured at most once a HEALTH_TTL_MS, one request at a time. */
    pthread_mutex_t storage_lock;
    json_t *storage;
    int64_t storage_at_ms;
};

static struct health_cache *health_cache(struct hs_server *s)
{
    pthread_mutex_lock(&s->cache_lock);
    if (!s->health) {
        s->health = hs_calloc(1, sizeof *s->health);
        pthread_mutex_init(&s->health->lock, NULL);
        pthread_mutex_init(&s->health->refresh, NULL);
        pthread_mutex_init(&s->health->storage_lock, NULL);
    }
    struct health_cache *h = s->health;
    pthread_mutex_unlock(&s->cache_lock);
    return h;
}

void hs_health_cache_free(struct hs_server *s)
{
    struct health_cache *h = s->health;
    if (!h)
        return;
    for (size_t i = 0; i < HEALTH_N; i++) {
        free(h->e[i].key);
        hs_hover_webhooks_free(h->e[i].v, h->e[i].n);
    }
    json_decref(h->storage);
    pthread_mutex_destroy(&h->storage_lock);
    pthread_mutex_destroy(&h->lock);
    pthread_mutex_destroy(&h->refresh);
    free(h);
    s->health = NULL;
}

static char *dup_or_null(const char *v)
{
    return v ? hs_strdup(v) : NULL;
}

static struct hs_hover_webhook *hooks_copy(const struct hs_hover_webhook *v, size_t n)
{
    struct hs_hover_webhook *c = hs_calloc(n ? n : 1, sizeof *c);
    for (size_t i = 0; i < n; i++) {
        c[i].id = v[i].id;
        c[i].owner_id = v[i].owner_id;
        c[i].owner_type = dup_or_null(v[i].owner_type);
        c[i].url = dup_or_null(v[i].url);
        c[i].content_type = dup_or_null(v[i].content_type);
        c[i].created_at = dup_or_null(v[i].created_at);
        c[i].updated_at = dup_or_null(v[i].updated_at);
        c[i].verified_at = dup_or_null(v[i].verified_at);
        c[i].last_error = dup_or_null(v[i].last_error);
        /* never the secret: the list does not carry it, and a cache need not either */
    }
    return c;
}

/* Hover's list of key from the cache when fresh: true with *rc set (and the list or error). */
static bool health_cached(struct health_cache *h, const char *key, int64_t now,
                          struct hs_hover_webhook **out, size_t *n, int *rc, struct hs_error *err)
{
    bool hit = false;
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < HEALTH_N && !hit; i++) {
        struct health_entry *e = &h->e[i];
        if (!e->key || strcmp(e->key, key) != 0)
            continue;
        if (now - e->at_ms >= (e->rc ? HEALTH_ERROR_TTL_MS : HEALTH_TTL_MS))
            break;
        hit = true;
        *rc = e->rc;
        if (e->rc) {
            if (err)
                *err = e->err;
        } else {
            *out = hooks_copy(e->v, e->n);
            *n = e->n;
        }
    }
    pthread_mutex_unlock(&h->lock);
    return hit;
}

static void health_store(struct health_cache *h, const char *key, int64_t now,
                         const struct hs_hover_webhook *v, size_t n, int rc,
                         const struct hs_error *err)
{
    pthread_mutex_lock(&h->lock);
    struct health_entry *e = NULL;
    for (size_t i = 0; i < HEALTH_N && !e; i++)
        if (h->e[i].key && strcmp(h->e[i].key, key) == 0)
            e = &h->e[i];
    if (!e) {
        e = &h->e[h->next++ % HEALTH_N];
        free(e->key);
        e->key = hs_strdup(key);
    }
    hs_hover_webhooks_free(e->v, e->n);
    e->v = rc ? NULL : hooks_copy(v, n);
    e->n = rc ? 0 : n;
    e->rc = rc;
    e->err = *err;
    e->at_ms = now;
    pthread_mutex_unlock(&h->lock);
}

/* hs_health_list_fn through the cache (ctx: the server). */
static int cached_list(void *ctx, const char *key, struct hs_hover_webhook **out, size_t *n,
                       struct hs_error *err)
{
    struct hs_server *s = ctx;
    struct health_cache *h = health_cache(s);
    int rc = HS_OK;
    if (health_cached(h, key, hs_server_mono_ms(s), out, n, &rc, err))
        return rc;
    pthread_mutex_lock(&h->refresh);
    /* Another caller may have asked while this one waited. */
    if (!health_cached(h, key, hs_server_mono_ms(s), out, n, &rc, err)) {
        struct hs_health_source src = {.provider = &s->provider, .store = s->store};
        struct hs_error e = {0};
        struct hs_hover_webhook *v = NULL;
        size_t nv = 0;
        rc = hs_health_list_via_provider(&src, key, &v, &nv, &e);
        health_store(h, key, hs_server_mono_ms(s), v, nv, rc, &e);
        if (rc) {
            if (err)
                *err = e;
        } else {
            *out = v;
            *n = nv;
        }
    }
    pthread_mutex_unlock(&h->refresh);
    return rc;
}

/* The sizes into the status document, measured again once the last measure is a minute old. */
static int add_storage(struct hs_server *s, json_t *doc, int64_t now, struct hs_error *err)
{
    struct health_cache *h = health_cache(s);
    pthread_mutex_lock(&h->storage_lock);
    int rc = HS_OK;
    if (!h->storage || now - h->storage_at_ms >= HEALTH_TTL_MS) {
        rc = hs_health_add_storage(doc, s->store, hs_blobs_is_local(s->blobs) ? s->data_dir : NULL,
                                   err);
        if (!rc) {
            json_decref(h->storage);
            h->storage = json_deep_copy(json_object_get(doc, "storage"));
            h->storage_at_ms = now;
        }
    } else {
        json_object_set_new(doc, "storage", json_deep_copy(h->storage));
    }
    pthread_mutex_unlock(&h->storage_lock);
    return rc;
}

void hs_route_status(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    json_t *doc = NULL;
    struct hs_error err = {0};
    int64_t now_ms = s->clock->wall_ms(s->clock);
    int rc = hs_health_collect(s->store, now_ms, cached_list, s, &doc, &err);
    json_t *budget = NULL;
    if (rc == HS_OK)
        rc = add_storage(s, doc, now_ms, &err);
    if (rc == HS_OK)
        rc = hs_health_budget(
            s->store, s->client_id ? s->client_id : "", s->rate_limit, now_ms,
            json_integer_value(json_object_get(json_object_get(doc, "work"), "total")), &budget,
            &err);
    if (rc) {
        json_decref(doc);
        hs_resp_fail(r, rc, &err, "status");
        return;
    }
    json_object_set_new(doc, "budget", budget);
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
    int rc = s->store->service->connections_list(s->store, &conns, &n, err);
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
