/* receiver.c: a webhook delivery from signature to durable row (receiver.h). */
#include "webhook/receiver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "webhook/signature.h"

#define EV_VERIFICATION "webhook-verification-code"

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

static void answer(struct hs_receiver_result *out, int status, const char *what,
                   const char *message)
{
    out->status = status;
    if (status < 300)
        (void)snprintf(out->body, sizeof out->body, "{\"status\":\"%s\",\"event_id\":%lld}", what,
                       (long long)out->event_id);
    else
        (void)snprintf(out->body, sizeof out->body, "{\"error\":\"%s\",\"message\":\"%s\"}", what,
                       message);
}

/* A refusal: one log line (reason text is ours, never a header value or a secret). */
static void refuse(struct hs_receiver_result *out, int status, const char *what,
                   const char *message, const char *reason)
{
    hs_warn("webhook refused status=%d webhook_id=%lld error=%s reason=\"%s\"", status,
            (long long)out->webhook_id, what, reason ? reason : message);
    answer(out, status, what, message);
}

static char *headers_json(const struct hs_webhook_request *rq)
{
    json_t *h = json_object();
    const char *names[] = {"content_type", "content_md5", "date", "authorization", "request_uri"};
    const char *values[] = {rq->content_type, rq->content_md5, rq->date, rq->authorization,
                            rq->request_uri};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (values[i])
            json_object_set_new(h, names[i], json_stringn(values[i], strlen(values[i])));
    char *s = hs_json_dump(h);
    json_decref(h);
    return s;
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
    int64_t job_id, model_id, webhook_id;
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
    if (!hs_json_i64(p->root, "webhook_id", &p->webhook_id))
        p->webhook_id = 0;
    return HS_OK;
}

static int store_event(const struct hs_receiver_config *cfg, const struct hs_webhook_request *rq,
                       int64_t webhook_id, const char *connection_key, const struct parsed *p,
                       const char *status, bool schedule, int64_t now_ms, int64_t *event_id,
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
        .status = (char *)status,
    };
    int rc = cfg->store->ops->event_accept(cfg->store, &e, schedule, cfg->delay_ms, now_ms,
                                           event_id, err);
    free(e.headers_json);
    return rc;
}

/* Sends a verification code to Hover and records verified_at on the webhook's row. */
static int verify_code(const struct hs_receiver_config *cfg, const struct hs_webhook_row *w,
                       const char *code, int64_t now_ms, struct hs_error *err)
{
    if (!cfg->verify)
        return hs_fail(err, HS_ERR_INTERNAL, "no way to call Hover's verify endpoint here");
    char *verified_at = NULL;
    int rc = cfg->verify(cfg->verify_ctx, w->connection_key, code, &verified_at, err);
    if (rc) {
        free(verified_at);
        return rc;
    }
    char now[32];
    now_iso(now_ms, now);
    struct hs_webhook_row upd = *w;
    upd.verified_at = verified_at ? verified_at : now;
    upd.last_error = NULL;
    rc = cfg->store->ops->webhook_put(cfg->store, &upd, err);
    free(verified_at);
    if (!rc)
        hs_info("webhook verified webhook_id=%lld connection=%s", (long long)w->id,
                w->connection_key);
    return rc;
}

/* The unknown-webhook path: only a verification code is kept, for later (receiver.h, 3). */
static void handle_unknown(const struct hs_receiver_config *cfg,
                           const struct hs_webhook_request *rq, int64_t now_ms, int64_t skew_s,
                           struct hs_receiver_result *out)
{
    /* What can be checked without the secret is checked: the body is the one Content-MD5
     * names, and the Date is fresh. */
    char md5[25];
    hs_webhook_content_md5(rq->body ? rq->body : "", rq->body_len, md5);
    int64_t when = 0;
    if (!rq->content_md5 || strcmp(md5, rq->content_md5) != 0 || !rq->date ||
        hs_http_date_parse(rq->date, &when) != HS_OK || when < now_ms / 1000 - skew_s ||
        when > now_ms / 1000 + skew_s) {
        refuse(out, 401, "unauthorized", "unknown webhook",
               "unknown webhook, and Content-MD5 or Date do not hold");
        return;
    }
    struct parsed p;
    struct hs_error err = {0};
    if (parse_body(rq->body, rq->body_len, &p, &err) != HS_OK) {
        refuse(out, 401, "unauthorized", "unknown webhook", "unknown webhook, body is not JSON");
        return;
    }
    if (!p.event || strcmp(p.event, EV_VERIFICATION) != 0 || !p.code || !*p.code ||
        (p.webhook_id && p.webhook_id != out->webhook_id)) {
        json_decref(p.root);
        refuse(out, 401, "unauthorized", "unknown webhook",
               "unknown webhook, and not its verification code");
        return;
    }
    struct hs_event_row *kept = NULL;
    size_t n = 0;
    int rc = cfg->store->ops->events_unverified(cfg->store, out->webhook_id, &kept, &n, &err);
    hs_event_rows_free(kept, n);
    if (rc == HS_OK && n >= HS_WEBHOOK_MAX_UNVERIFIED) {
        json_decref(p.root);
        refuse(out, 401, "unauthorized", "unknown webhook",
               "unknown webhook with too many unverified deliveries kept");
        return;
    }
    if (rc == HS_OK)
        rc = store_event(cfg, rq, out->webhook_id, NULL, &p, "unverified", false, now_ms,
                         &out->event_id, &err);
    json_decref(p.root);
    if (rc) {
        hs_warn("webhook store failed status=503 webhook_id=%lld error=%s msg=\"%s\"",
                (long long)out->webhook_id, hs_err_name(rc), err.msg);
        answer(out, 503, "unavailable", "try again later");
        return;
    }
    hs_info("webhook verification code kept for later webhook_id=%lld event_id=%lld",
            (long long)out->webhook_id, (long long)out->event_id);
    answer(out, 202, "unverified", NULL);
    /* The registration may have stored the webhook between our look-up and our insert, and
     * read the unverified deliveries before it: then nobody would settle this one. Looking
     * again after the insert closes that window (settling twice is harmless). */
    struct hs_webhook_row w = {0};
    if (cfg->store->ops->webhook_get(cfg->store, out->webhook_id, &w, NULL) == HS_OK &&
        w.hmac_secret && cfg->verify) {
        bool verified = false;
        if (hs_receiver_complete_unverified(cfg, out->webhook_id, &verified, &err) == HS_OK &&
            verified)
            answer(out, 200, "verified", NULL);
    }
    hs_webhook_row_clear(&w);
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
    /* The webhook id first: it names the secret; the body is not looked at before that. */
    if (!rq->authorization || !*rq->authorization) {
        refuse(out, 401, "unauthorized", "unsigned delivery", "no Authorization header");
        return;
    }
    bool sha1 = false;
    if (hs_webhook_auth_parse(rq->authorization, &out->webhook_id, &sha1, &err) != HS_OK) {
        refuse(out, 400, "bad_request", "malformed Authorization header", err.msg);
        return;
    }
    int64_t when;
    if (rq->date && *rq->date && hs_http_date_parse(rq->date, &when) != HS_OK) {
        refuse(out, 400, "bad_request", "malformed Date header", NULL);
        return;
    }

    struct hs_webhook_row w = {0};
    int rc = cfg->store->ops->webhook_get(cfg->store, out->webhook_id, &w, &err);
    if (rc == HS_ERR_NOT_FOUND || (rc == HS_OK && !w.hmac_secret)) {
        hs_webhook_row_clear(&w);
        handle_unknown(cfg, rq, now_ms, skew_s, out);
        return;
    }
    if (rc) {
        hs_warn("webhook store failed status=503 webhook_id=%lld error=%s msg=\"%s\"",
                (long long)out->webhook_id, hs_err_name(rc), err.msg);
        answer(out, 503, "unavailable", "try again later");
        return;
    }

    struct hs_webhook_delivery d = {
        .content_type = rq->content_type,
        .content_md5 = rq->content_md5,
        .date = rq->date,
        .authorization = rq->authorization,
        .request_uri = rq->request_uri,
        .body = rq->body,
        .body_len = rq->body_len,
    };
    if (hs_webhook_verify(&d, w.hmac_secret, now_ms / 1000, skew_s, &err) != HS_OK) {
        refuse(out, 401, "unauthorized", "signature check failed", err.msg);
        hs_webhook_row_clear(&w);
        return;
    }
    struct parsed p;
    if (parse_body(rq->body, rq->body_len, &p, &err) != HS_OK) {
        refuse(out, 400, "bad_request", "body is not a JSON object", err.msg);
        hs_webhook_row_clear(&w);
        return;
    }

    if (p.event && strcmp(p.event, EV_VERIFICATION) == 0) {
        if (!p.code || !*p.code) {
            refuse(out, 400, "bad_request", "verification event without a code", NULL);
        } else if ((rc = verify_code(cfg, &w, p.code, now_ms, &err)) != HS_OK) {
            hs_warn("webhook verify failed status=503 webhook_id=%lld error=%s msg=\"%s\"",
                    (long long)out->webhook_id, hs_err_name(rc), err.msg);
            answer(out, 503, "unavailable", "verification failed; try again later");
        } else {
            /* The delivery itself is kept for the record; the webhook is verified either way. */
            if (store_event(cfg, rq, w.id, w.connection_key, &p, "processed", false, now_ms,
                            &out->event_id, &err) != HS_OK)
                hs_warn("webhook verification code not recorded webhook_id=%lld msg=\"%s\"",
                        (long long)w.id, err.msg);
            answer(out, 200, "verified", NULL);
        }
        json_decref(p.root);
        hs_webhook_row_clear(&w);
        return;
    }

    bool job = is_job_event(p.event) && p.job_id > 0;
    rc = store_event(cfg, rq, w.id, w.connection_key, &p, job ? "accepted" : "ignored", job, now_ms,
                     &out->event_id, &err);
    if (rc) {
        hs_warn("webhook store failed status=503 webhook_id=%lld error=%s msg=\"%s\"",
                (long long)w.id, hs_err_name(rc), err.msg);
        answer(out, 503, "unavailable", "try again later");
    } else {
        hs_debug("webhook stored webhook_id=%lld event_id=%lld job_id=%lld status=%s",
                 (long long)w.id, (long long)out->event_id, (long long)p.job_id,
                 job ? "accepted" : "ignored");
        answer(out, 200, job ? "accepted" : "ignored", NULL);
    }
    json_decref(p.root);
    hs_webhook_row_clear(&w);
}

/* ---- the verification race, registration side ---- */

static const char *hdr(const json_t *h, const char *name)
{
    return json_string_value(json_object_get(h, name));
}

/* Checks one kept delivery with the now-known secret, at the time it was received; sends its
 * code. *final gets the event's new status, or NULL to keep it (a failure worth retrying). */
static int settle_one(const struct hs_receiver_config *cfg, const struct hs_webhook_row *w,
                      const struct hs_event_row *e, int64_t skew_s, const char **final,
                      bool *verified, struct hs_error *err)
{
    *final = "rejected";
    json_t *h = NULL;
    int64_t received_s = 0;
    if (!e->headers_json || hs_json_parse(e->headers_json, strlen(e->headers_json),
                                          HS_WEBHOOK_MAX_BODY, &h, NULL) != HS_OK)
        return HS_OK;
    struct hs_webhook_delivery d = {
        .content_type = hdr(h, "content_type"),
        .content_md5 = hdr(h, "content_md5"),
        .date = hdr(h, "date"),
        .authorization = hdr(h, "authorization"),
        .request_uri = hdr(h, "request_uri"),
        .body = e->body,
        .body_len = e->body_len,
    };
    struct hs_error verr = {0};
    int64_t id = 0;
    bool sha1 = false;
    if (hs_iso8601_parse(e->received_at, &received_s) != HS_OK ||
        hs_webhook_auth_parse(d.authorization, &id, &sha1, NULL) != HS_OK || id != w->id ||
        hs_webhook_verify(&d, w->hmac_secret, received_s, skew_s, &verr) != HS_OK) {
        hs_warn("webhook kept delivery rejected webhook_id=%lld event_id=%lld reason=\"%s\"",
                (long long)w->id, (long long)e->id, verr.msg[0] ? verr.msg : "headers");
        json_decref(h);
        return HS_OK;
    }
    json_decref(h);
    struct parsed p;
    if (parse_body(e->body, e->body_len, &p, NULL) != HS_OK)
        return HS_OK;
    int rc = HS_OK;
    if (p.event && strcmp(p.event, EV_VERIFICATION) == 0 && p.code && *p.code) {
        const struct hs_clock *clock = cfg->clock ? cfg->clock : hs_clock_system();
        rc = verify_code(cfg, w, p.code, clock->wall_ms(clock), err);
        if (rc == HS_OK) {
            *final = "processed";
            *verified = true;
        } else if (rc == HS_ERR_NOT_FOUND || rc == HS_ERR_UNPROCESSABLE) {
            /* A code Hover no longer knows (a newer one was requested): done with it. */
            hs_info("webhook kept code no longer valid webhook_id=%lld event_id=%lld",
                    (long long)w->id, (long long)e->id);
            rc = HS_OK;
        } else {
            *final = NULL;
        }
    }
    json_decref(p.root);
    return rc;
}

int hs_receiver_complete_unverified(const struct hs_receiver_config *cfg, int64_t webhook_id,
                                    bool *verified, struct hs_error *err)
{
    bool done = false;
    struct hs_webhook_row w = {0};
    int rc = cfg->store->ops->webhook_get(cfg->store, webhook_id, &w, err);
    if (rc)
        return rc;
    if (!w.hmac_secret) {
        hs_webhook_row_clear(&w);
        return hs_fail(err, HS_ERR_INVALID, "webhook %lld has no secret stored",
                       (long long)webhook_id);
    }
    struct hs_event_row *v = NULL;
    size_t n = 0;
    rc = cfg->store->ops->events_unverified(cfg->store, webhook_id, &v, &n, err);
    int64_t skew_s = cfg->max_skew_s > 0 ? cfg->max_skew_s : HS_WEBHOOK_MAX_SKEW_S;
    int first_failure = HS_OK;
    for (size_t i = 0; !rc && i < n; i++) {
        const char *final = NULL;
        struct hs_error e1 = {0};
        int r = settle_one(cfg, &w, &v[i], skew_s, &final, &done, &e1);
        if (r && !first_failure) {
            first_failure = r;
            if (err)
                *err = e1;
        }
        if (final)
            rc = cfg->store->ops->event_set_status(cfg->store, v[i].id, final, err);
    }
    hs_event_rows_free(v, n);
    hs_webhook_row_clear(&w);
    if (!rc && !done && first_failure)
        rc = first_failure;
    if (verified)
        *verified = done;
    return rc;
}
