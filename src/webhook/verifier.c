/* verifier.c: verification codes sent to Hover by background work (verifier.h). */
#include "webhook/verifier.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "hover/client.h"
#include "hover/retry.h"
#include "store/webhooks.h"

/* Kept deliveries are trimmed this often (a write transaction: not on every idle look). */
#define TRIM_EVERY_MS 60000

struct hs_verifier {
    struct hs_verifier_config cfg;
    struct hs_store *store;
    const struct hs_clock *clock;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping, started;
    pthread_t thread;
};

int hs_verifier_new(const struct hs_verifier_config *cfg, struct hs_store *store,
                    const struct hs_clock *clock, struct hs_verifier **out, struct hs_error *err)
{
    if (!cfg || !cfg->verify || !store)
        return hs_fail(err, HS_ERR_INVALID, "the verifier needs a verify call and a store");
    struct hs_verifier *v = hs_calloc(1, sizeof *v);
    v->cfg = *cfg;
    if (v->cfg.idle_ms <= 0)
        v->cfg.idle_ms = 500;
    if (v->cfg.lease_ms <= 0)
        v->cfg.lease_ms = 120000;
    if (v->cfg.retry_base_ms <= 0)
        v->cfg.retry_base_ms = 2000;
    if (v->cfg.retry_max_ms <= 0)
        v->cfg.retry_max_ms = 600000;
    if (v->cfg.give_up_ms <= 0)
        v->cfg.give_up_ms = 24 * 3600 * 1000LL;
    v->store = store;
    v->clock = clock ? clock : hs_clock_system();
    pthread_mutex_init(&v->lock, NULL);
    hs_cond_init_monotonic(&v->wake);
    *out = v;
    return HS_OK;
}

/* A refusal of Hover's that another try cannot change. */
static bool refused_for_good(int rc)
{
    return rc == HS_ERR_NOT_FOUND || rc == HS_ERR_UNPROCESSABLE || rc == HS_ERR_INVALID;
}

static void set_local_error(struct hs_verifier *v, int64_t id, const char *text)
{
    struct hs_error err = {0};
    if (v->store->webhooks->webhook_set_local_error(v->store, id, text, &err) != HS_OK)
        hs_warn("webhook local error not stored webhook_id=%lld msg=\"%s\"", (long long)id,
                err.msg);
}

static int record_verified(struct hs_verifier *v, const struct hs_webhook_row *w,
                           const char *verified_at, struct hs_error *err)
{
    int64_t now_ms = v->clock->wall_ms(v->clock);
    char now[32];
    hs_iso8601_format(now_ms / 1000, (int)(now_ms % 1000), now, sizeof now);
    struct hs_webhook_row upd = *w;
    upd.hmac_secret = NULL; /* kept as stored */
    upd.verified_at = (char *)(verified_at ? verified_at : now);
    upd.last_error = NULL;
    int rc = v->store->webhooks->webhook_put(v->store, &upd, err);
    if (!rc && w->local_error)
        set_local_error(v, w->id, NULL);
    return rc;
}

/* The outcome of one call, in the store. */
static int settle(struct hs_verifier *v, const struct hs_verification *q,
                  const struct hs_webhook_row *w, int rc, const char *verified_at,
                  const struct hs_error *cerr, struct hs_error *err)
{
    int64_t now_ms = v->clock->wall_ms(v->clock);
    const char *why = cerr->msg[0] ? cerr->msg : hs_err_name(rc);
    if (rc == HS_OK) {
        int r = record_verified(v, w, verified_at, err);
        if (r)
            return r;
        hs_info("webhook verified webhook_id=%lld connection=%s", (long long)w->id,
                w->connection_key);
        return v->store->webhooks->verification_finish(v->store, q->id, "verified", now_ms, NULL,
                                                       err);
    }
    if (refused_for_good(rc)) {
        hs_warn("webhook verification code refused webhook_id=%lld error=%s msg=\"%s\"",
                (long long)w->id, hs_err_name(rc), why);
        if (!w->verified_at) {
            char text[400];
            (void)snprintf(text, sizeof text, "Hover refused the verification code (%s): %s",
                           hs_err_name(rc), why);
            set_local_error(v, w->id, text);
        }
        return v->store->webhooks->verification_finish(v->store, q->id, "rejected", now_ms, why,
                                                       err);
    }
    if (now_ms - q->created_ms >= v->cfg.give_up_ms) {
        hs_warn("webhook verification given up webhook_id=%lld attempts=%lld msg=\"%s\"",
                (long long)w->id, (long long)q->attempts + 1, why);
        char text[400];
        (void)snprintf(text, sizeof text, "the verification call kept failing: %s", why);
        set_local_error(v, w->id, text);
        return v->store->webhooks->verification_finish(v->store, q->id, "failed", now_ms, why, err);
    }
    struct hs_retry_policy p = {
        .base_ms = v->cfg.retry_base_ms, .max_ms = v->cfg.retry_max_ms, .jitter = HS_JITTER_NONE};
    int attempt = q->attempts > 30 ? 30 : (int)q->attempts;
    int64_t delay = hs_retry_backoff_ms(&p, attempt, v->clock);
    hs_warn("webhook verification retry webhook_id=%lld attempt=%lld retry_in_ms=%lld msg=\"%s\"",
            (long long)w->id, (long long)q->attempts + 1, (long long)delay, why);
    return v->store->webhooks->verification_finish(v->store, q->id, "pending", now_ms + delay, why,
                                                   err);
}

int hs_verifier_run_once(struct hs_verifier *v, bool *ran, struct hs_error *err)
{
    *ran = false;
    struct hs_verification q = {0};
    int rc = v->store->webhooks->verification_claim(v->store, v->clock->wall_ms(v->clock),
                                                    v->cfg.lease_ms, &q, err);
    if (rc == HS_ERR_NOT_FOUND)
        return HS_OK;
    if (rc)
        return rc;
    *ran = true;
    struct hs_webhook_row w = {0};
    rc = v->store->webhooks->webhook_get(v->store, q.webhook_id, &w, err);
    if (rc == HS_ERR_NOT_FOUND) {
        hs_info("webhook verification dropped webhook_id=%lld msg=\"webhook no longer stored\"",
                (long long)q.webhook_id);
        rc = v->store->webhooks->verification_finish(
            v->store, q.id, "failed", v->clock->wall_ms(v->clock), "webhook no longer stored", err);
    } else if (rc == HS_OK) {
        char *verified_at = NULL;
        struct hs_error cerr = {0};
        int crc = v->cfg.verify(v->cfg.verify_ctx, w.connection_key, q.code, &verified_at, &cerr);
        rc = settle(v, &q, &w, crc, verified_at, &cerr, err);
        free(verified_at);
    }
    hs_webhook_row_clear(&w);
    hs_verification_clear(&q);
    return rc;
}

static void trim_kept(struct hs_verifier *v)
{
    int64_t removed = 0;
    struct hs_error err = {0};
    if (v->store->webhooks->events_unverified_trim(v->store, v->clock->wall_ms(v->clock), &removed,
                                                   &err) != HS_OK)
        hs_warn("webhook kept deliveries not trimmed msg=\"%s\"", err.msg);
    else if (removed)
        hs_info("webhook kept deliveries dropped count=%lld msg=\"aged out\"", (long long)removed);
}

static void *thread_main(void *arg)
{
    struct hs_verifier *v = arg;
    hs_client_set_thread_priority(HS_PRIO_BACKGROUND);
    int64_t last_trim = 0;
    for (;;) {
        pthread_mutex_lock(&v->lock);
        bool stop = v->stopping;
        pthread_mutex_unlock(&v->lock);
        if (stop)
            break;
        int64_t now = v->clock->mono_ms(v->clock);
        if (now - last_trim >= TRIM_EVERY_MS || last_trim == 0) {
            trim_kept(v);
            last_trim = now ? now : 1;
        }
        bool ran = false;
        struct hs_error err = {0};
        int rc = hs_verifier_run_once(v, &ran, &err);
        if (rc)
            hs_warn("webhook verifier error=%s msg=\"%s\"", hs_err_name(rc), err.msg);
        if (ran && rc == HS_OK)
            continue;
        pthread_mutex_lock(&v->lock);
        struct timespec until = hs_deadline_after(CLOCK_MONOTONIC, v->cfg.idle_ms);
        int wrc = 0;
        while (!v->stopping && wrc != ETIMEDOUT)
            wrc = pthread_cond_timedwait(&v->wake, &v->lock, &until);
        pthread_mutex_unlock(&v->lock);
    }
    return NULL;
}

int hs_verifier_start(struct hs_verifier *v, struct hs_error *err)
{
    if (v->started)
        return HS_OK;
    if (pthread_create(&v->thread, NULL, thread_main, v) != 0)
        return hs_fail(err, HS_ERR_INTERNAL, "cannot start the webhook verifier thread");
    v->started = true;
    return HS_OK;
}

void hs_verifier_free(struct hs_verifier *v)
{
    if (!v)
        return;
    hs_thread_stop(&v->lock, &v->wake, &v->stopping, v->thread, v->started);
    free(v);
}
