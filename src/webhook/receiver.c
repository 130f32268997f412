/* receiver.c: a webhook delivery from signature to durable row (receiver.h). */
#include "webhook/receiver.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "store/secrets.h"
#include "store/webhooks.h"
#include "webhook/signature.h"

#define EV_VERIFICATION "webhook-verification-code"
#define URI_MAX         2048

/* Anyone can make us refuse, or keep a verification code: those lines go through a limit. */
static struct hs_log_limiter refused_lines = HS_LOG_LIMITER_INIT(5);
static struct hs_log_limiter kept_lines = HS_LOG_LIMITER_INIT(5);

/* Event types that name a job whose state may have changed: they schedule a sync. Everything
 * else is stored and acknowledged as "ignored" (hover-api.md 4.1: never fail on them). */
static bool is_job_event(const char *event)
{
    static const char *const known[] = {"job-state-changed-v2", "job-state-changed",
                                        "model-created", "model-state-changed"};
    for (size_t i = 0; event && i < sizeof known / sizeof known[0]; i++)
        if (strcmp(event, known[i]) == 0)
            return true;
    return false;
}

const char *hs_webhook_result_label(enum hs_webhook_result r)
{
    static const char *const labels[HS_WH_RESULT_COUNT] = {
        "accepted",  "unknown_event", "verification", "duplicate",   "bad_signature",
        "malformed", "too_big",       "bad_method",   "unavailable",
    };
    return r < HS_WH_RESULT_COUNT ? labels[r] : "unavailable";
}

/* The result by the answer's status and word (the words are this file's own). */
static enum hs_webhook_result result_of(int status, const char *what)
{
    switch (status) {
    case 200:
        return strcmp(what, "accepted") == 0    ? HS_WH_ACCEPTED
               : strcmp(what, "duplicate") == 0 ? HS_WH_DUPLICATE
                                                : HS_WH_UNKNOWN_EVENT;
    case 202:
        return HS_WH_VERIFICATION;
    case 400:
        return HS_WH_MALFORMED;
    case 401:
        return HS_WH_BAD_SIGNATURE;
    case 405:
        return HS_WH_BAD_METHOD;
    case 413:
        return HS_WH_TOO_BIG;
    default:
        return HS_WH_UNAVAILABLE;
    }
}

static void answer(struct hs_receiver_result *out, int status, const char *what,
                   const char *message)
{
    out->status = status;
    out->result = result_of(status, what);
    if (status < 300)
        (void)snprintf(out->body, sizeof out->body, "{\"status\":\"%s\",\"event_id\":%lld}", what,
                       (long long)out->event_id);
    else
        (void)snprintf(out->body, sizeof out->body, "{\"error\":\"%s\",\"message\":\"%s\"}", what,
                       message);
}

/* A refusal: one log line, rate-limited (the reason text is ours, never a header value or a
 * secret). */
static void refuse(struct hs_receiver_result *out, int status, const char *what,
                   const char *message, const char *reason)
{
    hs_log_limited(&refused_lines, HS_LOG_WARN,
                   "webhook refused status=%d webhook_id=%lld error=%s reason=\"%s\"", status,
                   (long long)out->webhook_id, what, reason ? reason : message);
    answer(out, status, what, message);
}

static void unavailable(struct hs_receiver_result *out, int rc, const struct hs_error *err)
{
    hs_warn("webhook store failed status=503 webhook_id=%lld error=%s msg=\"%s\"",
            (long long)out->webhook_id, hs_err_name(rc), err->msg);
    answer(out, 503, "unavailable", "try again later");
}

static char *headers_json(const struct hs_webhook_request *rq)
{
    json_t *h = json_object();
    const char *names[] = {"method", "content_type",  "content_md5", "content_sha256",
                           "date",   "authorization", "request_uri"};
    const char *values[] = {rq->method, rq->content_type,  rq->content_md5, rq->content_sha256,
                            rq->date,   rq->authorization, rq->request_uri};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (values[i])
            json_object_set_new(h, names[i], json_stringn(values[i], strlen(values[i])));
    char *s = hs_json_dump(h);
    json_decref(h);
    return s;
}

static struct hs_webhook_delivery delivery_of(const struct hs_webhook_request *rq)
{
    return (struct hs_webhook_delivery){
        .method = rq->method,
        .content_type = rq->content_type,
        .content_md5 = rq->content_md5,
        .content_sha256 = rq->content_sha256,
        .date = rq->date,
        .authorization = rq->authorization,
        .request_uri = rq->request_uri,
        .body = rq->body,
        .body_len = rq->body_len,
    };
}

static void now_iso(int64_t now_ms, char out[32])
{
    hs_iso8601_format(now_ms / 1000, (int)(now_ms % 1000), out, 32);
}

/* What the receiver reads out of a body: strings borrowed from root. */
struct parsed {
    json_t *root;
    const char *event;
    const char *code;
    const char *state;
    int64_t job_id, model_id;
};

static int parse_body(const char *body, size_t len, struct parsed *p, struct hs_error *err)
{
    memset(p, 0, sizeof *p);
    int rc = hs_json_parse(body, len, HS_WEBHOOK_MAX_BODY, &p->root, err);
    if (rc)
        return rc;
    if (!json_is_object(p->root)) {
        json_decref(p->root);
        p->root = NULL;
        return hs_fail(err, HS_ERR_PARSE, "body is not a JSON object");
    }
    p->event = json_string_value(json_object_get(p->root, "event"));
    p->code = json_string_value(json_object_get(p->root, "code"));
    p->state = json_string_value(json_object_get(p->root, "state"));
    if (!hs_json_i64(p->root, "job_id", &p->job_id) || p->job_id < 0)
        p->job_id = 0;
    if (!hs_json_i64(p->root, "model_id", &p->model_id) || p->model_id < 0)
        p->model_id = 0;
    return HS_OK;
}

static bool is_code(const struct parsed *p)
{
    return p->event && strcmp(p->event, EV_VERIFICATION) == 0 && p->code && *p->code;
}

/* What event_accept gets besides the event itself. */
struct accept_extra {
    const char *status;
    bool schedule;
    const char *replay_key;
    int64_t replay_until_ms;
    const char *verify_code;
};

static int store_event(const struct hs_receiver_config *cfg, const struct hs_webhook_request *rq,
                       int64_t webhook_id, const char *connection_key, const struct parsed *p,
                       const struct accept_extra *x, int64_t now_ms, int64_t *event_id,
                       struct hs_error *err)
{
    char received[32];
    now_iso(now_ms, received);
    struct hs_event_row e = {
        .webhook_id = webhook_id,
        .connection_key = (char *)connection_key,
        .event = (char *)p->event,
        .job_id = p->job_id,
        .model_id = p->model_id,
        .state = (char *)p->state,
        .body = (char *)rq->body,
        .body_len = rq->body_len,
        .headers_json = headers_json(rq),
        .received_at = received,
        .status = (char *)x->status,
        .replay_key = x->replay_key,
        .replay_until_ms = x->replay_until_ms,
        .verify_code = x->verify_code,
        /* verified with a webhook as kept: it must still be there when the event commits */
        .webhook_must_exist = connection_key != NULL && webhook_id > 0,
    };
    int rc = cfg->store->webhooks->event_accept(cfg->store, &e, x->schedule, cfg->delay_ms, now_ms,
                                                event_id, err);
    free(e.headers_json);
    return rc;
}

/* ---- whose secret verifies it ---- */

/* Whether w's secret signed the delivery, over the path and query of w's registered URL. */
static bool signed_by(const struct hs_webhook_delivery *d, const struct hs_apiauth *a,
                      const struct hs_webhook_row *w)
{
    if (!w->hmac_secret)
        return false;
    char uri[URI_MAX];
    const char *signed_uri = d->request_uri;
    if (w->url && hs_webhook_uri_of_url(w->url, uri, sizeof uri) == HS_OK)
        signed_uri = uri;
    return hs_webhook_signature_matches(d, a, w->hmac_secret, signed_uri);
}

/* ---- the webhooks kept for deliveries (receiver.h) ---- */

#define CACHE_N 16

struct cache_entry {
    int64_t id; /* 0: free */
    char *connection_key, *secret;
    char uri[URI_MAX]; /* the registered URL's path and query; "" to use the request's */
    int64_t at_ms;     /* read from the store then (monotonic) */
};

struct hs_webhook_cache {
    pthread_rwlock_t lock;
    struct cache_entry e[CACHE_N];
    size_t next;
};

struct hs_webhook_cache *hs_webhook_cache_new(void)
{
    struct hs_webhook_cache *c = hs_calloc(1, sizeof *c);
    pthread_rwlock_init(&c->lock, NULL);
    return c;
}

static void entry_clear(struct cache_entry *e)
{
    free(e->connection_key);
    hs_secret_free(e->secret);
    memset(e, 0, sizeof *e);
}

void hs_webhook_cache_free(struct hs_webhook_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < CACHE_N; i++)
        entry_clear(&c->e[i]);
    pthread_rwlock_destroy(&c->lock);
    free(c);
}

static int64_t cache_now(const struct hs_receiver_config *cfg)
{
    const struct hs_clock *clock = cfg->clock ? cfg->clock : hs_clock_system();
    return clock->mono_ms(clock);
}

/* Webhook `id` as kept, if read less than the TTL ago and its secret verifies the delivery:
 * true with out's id and connection filled. */
static bool cache_verifies(const struct hs_receiver_config *cfg, int64_t id,
                           const struct hs_webhook_delivery *d, const struct hs_apiauth *a,
                           struct hs_webhook_row *out)
{
    struct hs_webhook_cache *c = cfg->cache;
    int64_t now = cache_now(cfg);
    bool ok = false;
    pthread_rwlock_rdlock(&c->lock);
    for (size_t i = 0; i < CACHE_N; i++) {
        const struct cache_entry *e = &c->e[i];
        if (e->id != id)
            continue;
        if (now - e->at_ms < HS_WEBHOOK_CACHE_TTL_MS &&
            hs_webhook_signature_matches(d, a, e->secret, e->uri[0] ? e->uri : d->request_uri)) {
            out->id = id;
            out->connection_key = e->connection_key ? hs_strdup(e->connection_key) : NULL;
            ok = true;
        }
        break;
    }
    pthread_rwlock_unlock(&c->lock);
    return ok;
}

/* w as just read from the store, kept (replacing what was kept of it). */
static void cache_put(const struct hs_receiver_config *cfg, const struct hs_webhook_row *w)
{
    struct hs_webhook_cache *c = cfg->cache;
    if (!w->hmac_secret)
        return;
    int64_t now = cache_now(cfg);
    pthread_rwlock_wrlock(&c->lock);
    struct cache_entry *e = NULL;
    for (size_t i = 0; i < CACHE_N && !e; i++)
        if (c->e[i].id == w->id)
            e = &c->e[i];
    if (!e)
        e = &c->e[c->next++ % CACHE_N];
    entry_clear(e);
    e->id = w->id;
    e->connection_key = w->connection_key ? hs_strdup(w->connection_key) : NULL;
    e->secret = hs_strdup(w->hmac_secret);
    if (!w->url || hs_webhook_uri_of_url(w->url, e->uri, sizeof e->uri) != HS_OK)
        e->uri[0] = '\0';
    e->at_ms = now;
    pthread_rwlock_unlock(&c->lock);
}

/* Forgets what was kept of webhook id (the store says it is gone). */
static void cache_drop(const struct hs_receiver_config *cfg, int64_t id)
{
    struct hs_webhook_cache *c = cfg->cache;
    if (!c)
        return;
    pthread_rwlock_wrlock(&c->lock);
    for (size_t i = 0; i < CACHE_N; i++)
        if (c->e[i].id == id)
            entry_clear(&c->e[i]);
    pthread_rwlock_unlock(&c->lock);
}

/* The stored webhook `id`, if its secret verifies: HS_OK (*out filled), HS_ERR_NOT_FOUND. A
 * kept copy is tried first; when it does not verify, the store is read. */
static int try_id(const struct hs_receiver_config *cfg, int64_t id,
                  const struct hs_webhook_delivery *d, const struct hs_apiauth *a,
                  struct hs_webhook_row *out, struct hs_error *err)
{
    if (cfg->cache && cache_verifies(cfg, id, d, a, out))
        return HS_OK;
    struct hs_store *store = cfg->store;
    struct hs_webhook_row w = {0};
    int rc = store->webhooks->webhook_get(store, id, &w, err);
    if (rc == HS_OK && cfg->cache)
        cache_put(cfg, &w);
    if (rc == HS_OK && !signed_by(d, a, &w))
        rc = HS_ERR_NOT_FOUND;
    if (rc == HS_OK)
        *out = w;
    else
        hs_webhook_row_clear(&w);
    return rc;
}

static int by_id_desc(const void *x, const void *y)
{
    const struct hs_webhook_row *a = x, *b = y;
    return a->id < b->id ? 1 : a->id > b->id ? -1 : 0;
}

/* Every registered webhook with a secret but those already tried, newest first, capped. */
static int try_all(struct hs_store *store, const int64_t skip[2],
                   const struct hs_webhook_delivery *d, const struct hs_apiauth *a,
                   struct hs_webhook_row *out, struct hs_error *err)
{
    struct hs_webhook_row *v = NULL;
    size_t n = 0;
    int rc = store->webhooks->webhook_list(store, &v, &n, err);
    if (rc)
        return rc;
    if (n > 1)
        qsort(v, n, sizeof *v, by_id_desc);
    size_t tried = 0, candidates = 0;
    rc = HS_ERR_NOT_FOUND;
    for (size_t i = 0; i < n; i++) {
        if (!v[i].hmac_secret || v[i].id == skip[0] || v[i].id == skip[1])
            continue;
        candidates++;
        if (rc == HS_OK || tried == HS_WEBHOOK_TRIAL_MAX)
            continue;
        tried++;
        if (signed_by(d, a, &v[i])) {
            *out = v[i];
            memset(&v[i], 0, sizeof v[i]);
            rc = HS_OK;
        }
    }
    if (candidates > tried && rc != HS_OK)
        hs_log_limited(&refused_lines, HS_LOG_WARN,
                       "webhook secret trial capped registered=%zu tried=%zu msg=\"the access id "
                       "names no webhook: only the newest webhooks' secrets were tried\"",
                       candidates, tried);
    hs_webhook_rows_free(v, n);
    return rc;
}

/* The webhook whose secret verifies the delivery (receiver.h, 3): HS_OK with *out, or
 * HS_ERR_NOT_FOUND; another code when the store failed. */
static int find_webhook(const struct hs_receiver_config *cfg, const struct hs_webhook_delivery *d,
                        const struct hs_apiauth *a, struct hs_webhook_row *out,
                        struct hs_error *err)
{
    struct hs_store *store = cfg->store;
    int64_t skip[2] = {0, 0};
    int rc = HS_ERR_NOT_FOUND;
    if (hs_parse_i64_range(a->access_id, 1, INT64_MAX, &skip[0]) == HS_OK)
        rc = try_id(cfg, skip[0], d, a, out, err);
    else
        skip[0] = 0;
    if (rc != HS_ERR_NOT_FOUND)
        return rc;
    rc = store->webhooks->webhook_access_get(store, a->access_id, &skip[1], err);
    if (rc == HS_OK)
        rc = skip[1] != skip[0] ? try_id(cfg, skip[1], d, a, out, err) : HS_ERR_NOT_FOUND;
    if (rc != HS_ERR_NOT_FOUND)
        return rc;
    rc = try_all(store, skip, d, a, out, err);
    if (rc == HS_OK) {
        /* Next time, straight to it. Failing to remember costs only a trial. */
        struct hs_error e2 = {0};
        if (store->webhooks->webhook_access_put(store, a->access_id, out->id, &e2) != HS_OK)
            hs_debug("webhook access id not remembered webhook_id=%lld msg=\"%s\"",
                     (long long)out->id, e2.msg);
        else
            hs_info("webhook access id learnt webhook_id=%lld connection=%s", (long long)out->id,
                    out->connection_key);
    }
    return rc;
}

/* ---- the paths of a delivery ---- */

/* A code whose delivery is stored: queued for the verifier (marking the row processed). */
static int queue_kept(const struct hs_receiver_config *cfg, const struct hs_webhook_row *w,
                      int64_t event_id, const char *code, int64_t now_ms, struct hs_error *err)
{
    int rc = cfg->store->webhooks->verification_add(cfg->store, w->id, code, event_id, now_ms, err);
    if (!rc)
        rc = cfg->store->webhooks->event_set_status(cfg->store, event_id, "processed", err);
    if (!rc)
        hs_info("webhook kept verification code queued webhook_id=%lld event_id=%lld",
                (long long)w->id, (long long)event_id);
    return rc;
}

/* No secret verifies it (receiver.h, 4). */
static void keep_unverified(const struct hs_receiver_config *cfg,
                            const struct hs_webhook_request *rq,
                            const struct hs_webhook_delivery *d, const struct hs_apiauth *a,
                            int64_t now_ms, struct hs_receiver_result *out)
{
    struct parsed p;
    struct hs_error err = {0};
    if (parse_body(rq->body, rq->body_len, &p, &err) != HS_OK || !is_code(&p)) {
        json_decref(p.root);
        refuse(out, 401, "unauthorized", "signature check failed",
               "no registered webhook's secret verifies it");
        return;
    }
    int64_t id = 0;
    if (hs_parse_i64_range(a->access_id, 1, INT64_MAX, &id) != HS_OK)
        id = 0;
    struct accept_extra x = {.status = "unverified"};
    int rc = store_event(cfg, rq, id, NULL, &p, &x, now_ms, &out->event_id, &err);
    if (rc) {
        json_decref(p.root);
        unavailable(out, rc, &err);
        return;
    }
    hs_log_limited(&kept_lines, HS_LOG_INFO,
                   "webhook verification code kept for later event_id=%lld",
                   (long long)out->event_id);
    answer(out, 202, "unverified", NULL);
    /* A registration may have stored its webhook between our look-up and our insert, and read
     * the kept deliveries before it: then nobody would settle this one. Looking again after the
     * insert closes that window (queueing twice is harmless: a code is queued once). */
    struct hs_webhook_row w = {0};
    if (find_webhook(cfg, d, a, &w, &err) == HS_OK &&
        queue_kept(cfg, &w, out->event_id, p.code, now_ms, &err) == HS_OK) {
        out->webhook_id = w.id;
        answer(out, 202, "verifying", NULL);
    }
    hs_webhook_row_clear(&w);
    json_decref(p.root);
}

/* Verified by w's secret (receiver.h, 5 and 6). */
static void accept_verified(const struct hs_receiver_config *cfg,
                            const struct hs_webhook_request *rq, const struct hs_apiauth *a,
                            const struct hs_webhook_row *w, int64_t until_ms, int64_t now_ms,
                            struct hs_receiver_result *out)
{
    struct parsed p;
    struct hs_error err = {0};
    if (parse_body(rq->body, rq->body_len, &p, &err) != HS_OK) {
        refuse(out, 400, "bad_request", "body is not a JSON object", err.msg);
        return;
    }
    char *key = hs_aprintf("%lld:%s", (long long)w->id, a->signature);
    struct accept_extra x = {.replay_key = key, .replay_until_ms = until_ms};
    bool code = p.event && strcmp(p.event, EV_VERIFICATION) == 0;
    bool job = is_job_event(p.event) && p.job_id > 0;
    const char *what = job ? "accepted" : "ignored";
    int rc;
    if (code && !is_code(&p)) {
        refuse(out, 400, "bad_request", "verification event without a code", NULL);
        goto out;
    }
    if (code) {
        /* Kept for the record; the verification itself is background work. */
        x.status = "processed";
        x.verify_code = p.code;
        what = "verifying";
    } else {
        x.status = what;
        x.schedule = job;
    }
    rc = store_event(cfg, rq, w->id, w->connection_key, &p, &x, now_ms, &out->event_id, &err);
    if (rc == HS_ERR_NOT_FOUND) { /* deleted by another process since this one kept it */
        cache_drop(cfg, w->id);
        refuse(out, 401, "unauthorized", "signature check failed", err.msg);
    } else if (rc) {
        unavailable(out, rc, &err);
    } else if (out->event_id == 0) {
        hs_info("webhook replay acknowledged webhook_id=%lld msg=\"signature already accepted\"",
                (long long)w->id);
        answer(out, 200, "duplicate", NULL);
    } else {
        hs_debug("webhook stored webhook_id=%lld event_id=%lld job_id=%lld status=%s",
                 (long long)w->id, (long long)out->event_id, (long long)p.job_id, what);
        /* The job's work item is committed: the workers start it now, not at their next look. */
        if (x.schedule && cfg->wake)
            cfg->wake(cfg->wake_ctx);
        answer(out, code ? 202 : 200, what, NULL);
    }
out:
    free(key);
    json_decref(p.root);
}

void hs_receiver_handle(const struct hs_receiver_config *cfg, const struct hs_webhook_request *in,
                        struct hs_receiver_result *out)
{
    memset(out, 0, sizeof *out);
    struct hs_webhook_request copy = *in;
    if (!copy.body) {
        copy.body = "";
        copy.body_len = 0;
    }
    const struct hs_webhook_request *rq = &copy;
    const struct hs_clock *clock = cfg->clock ? cfg->clock : hs_clock_system();
    int64_t now_ms = clock->wall_ms(clock);
    int64_t skew_s = cfg->max_skew_s > 0 ? cfg->max_skew_s : HS_WEBHOOK_MAX_SKEW_S;
    struct hs_error err = {0};

    if (!rq->method || strcmp(rq->method, "POST") != 0) {
        answer(out, 405, "method_not_allowed", "POST only");
        return;
    }
    if (rq->body_too_big || rq->body_len > HS_WEBHOOK_MAX_BODY) {
        refuse(out, 413, "too_big", "body over 64 KiB", NULL);
        return;
    }
    /* What needs no secret first; the body is only hashed before a secret verifies it. */
    if (!rq->authorization || !*rq->authorization) {
        refuse(out, 401, "unauthorized", "unsigned delivery", "no Authorization header");
        return;
    }
    struct hs_apiauth a;
    if (hs_webhook_auth_parse(rq->authorization, &a, &err) != HS_OK) {
        refuse(out, 400, "bad_request", "malformed Authorization header", err.msg);
        return;
    }
    struct hs_webhook_delivery d = delivery_of(rq);
    int64_t date_s = 0;
    int rc = hs_webhook_check_date(&d, now_ms / 1000, skew_s, &date_s, &err);
    if (rc == HS_ERR_PARSE) {
        refuse(out, 400, "bad_request", "malformed Date header", NULL);
        return;
    }
    if (rc || (rc = hs_webhook_check_body(&d, &err)) != HS_OK) {
        refuse(out, 401, "unauthorized", "signature check failed", err.msg);
        return;
    }
    struct hs_webhook_row w = {0};
    rc = find_webhook(cfg, &d, &a, &w, &err);
    if (rc == HS_ERR_NOT_FOUND) {
        keep_unverified(cfg, rq, &d, &a, now_ms, out);
        return;
    }
    if (rc) {
        unavailable(out, rc, &err);
        return;
    }
    out->webhook_id = w.id;
    /* Remembered while a copy could still pass the Date check (+1 s: the check is inclusive). */
    accept_verified(cfg, rq, &a, &w, (date_s + skew_s + 1) * 1000, now_ms, out);
    hs_webhook_row_clear(&w);
}

/* ---- the verification race, registration side ---- */

static const char *hdr(const json_t *h, const char *name)
{
    return json_string_value(json_object_get(h, name));
}

/* One kept delivery against w, at the time it was received: "processed" (its code queued),
 * "rejected" (it names w's id but w's secret does not verify it) or NULL (not w's: left). */
static int settle_one(const struct hs_receiver_config *cfg, const struct hs_webhook_row *w,
                      const struct hs_event_row *e, int64_t skew_s, int64_t now_ms, bool *queued,
                      struct hs_error *err)
{
    json_t *h = NULL;
    int64_t received_s = 0;
    *queued = false;
    if (!e->headers_json || hs_iso8601_parse(e->received_at, &received_s) != HS_OK ||
        hs_json_parse(e->headers_json, strlen(e->headers_json), HS_WEBHOOK_MAX_BODY, &h, NULL) !=
            HS_OK)
        return HS_OK;
    struct hs_webhook_delivery d = {
        .method = hdr(h, "method"),
        .content_type = hdr(h, "content_type"),
        .content_md5 = hdr(h, "content_md5"),
        .content_sha256 = hdr(h, "content_sha256"),
        .date = hdr(h, "date"),
        .authorization = hdr(h, "authorization"),
        .request_uri = hdr(h, "request_uri"),
        .body = e->body,
        .body_len = e->body_len,
    };
    struct hs_apiauth a;
    struct parsed p = {0};
    int rc = HS_OK;
    if (hs_webhook_auth_parse(d.authorization, &a, NULL) == HS_OK &&
        hs_webhook_check_body(&d, NULL) == HS_OK &&
        hs_webhook_check_date(&d, received_s, skew_s, NULL, NULL) == HS_OK &&
        signed_by(&d, &a, w) && parse_body(e->body, e->body_len, &p, NULL) == HS_OK &&
        is_code(&p)) {
        rc = queue_kept(cfg, w, e->id, p.code, now_ms, err);
        *queued = rc == HS_OK;
    } else if (e->webhook_id == w->id) {
        hs_warn("webhook kept delivery rejected webhook_id=%lld event_id=%lld", (long long)w->id,
                (long long)e->id);
        rc = cfg->store->webhooks->event_set_status(cfg->store, e->id, "rejected", err);
    }
    json_decref(p.root);
    json_decref(h);
    return rc;
}

int hs_receiver_complete_unverified(const struct hs_receiver_config *cfg, int64_t webhook_id,
                                    size_t *queued, struct hs_error *err)
{
    struct hs_webhook_row w = {0};
    int rc = cfg->store->webhooks->webhook_get(cfg->store, webhook_id, &w, err);
    if (rc)
        return rc;
    if (!w.hmac_secret) {
        hs_webhook_row_clear(&w);
        return hs_fail(err, HS_ERR_INVALID, "webhook %lld has no secret stored",
                       (long long)webhook_id);
    }
    const struct hs_clock *clock = cfg->clock ? cfg->clock : hs_clock_system();
    int64_t now_ms = clock->wall_ms(clock);
    int64_t skew_s = cfg->max_skew_s > 0 ? cfg->max_skew_s : HS_WEBHOOK_MAX_SKEW_S;
    struct hs_event_row *v = NULL;
    size_t n = 0, done = 0;
    rc = cfg->store->webhooks->events_unverified(cfg->store, 0, &v, &n, err);
    for (size_t i = 0; !rc && i < n; i++) {
        bool q = false;
        rc = settle_one(cfg, &w, &v[i], skew_s, now_ms, &q, err);
        done += q;
    }
    hs_event_rows_free(v, n);
    hs_webhook_row_clear(&w);
    if (queued)
        *queued = done;
    return rc;
}
