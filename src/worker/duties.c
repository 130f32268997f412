/* duties.c: the periodic duties (duties.h). The thread waits on a condition variable in real
 * time; the injected clock dates what the duties write (tests call the duty functions with
 * their own times). */
#include "worker/duties.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "hover/client.h"
#include "store/service.h"
#include "store/webhooks.h"
#include "store/work.h"

#define EXPIRE_EVERY_MS 60000

struct hs_duties {
    struct hs_duties_config cfg;
    struct hs_store *store;
    const struct hs_clock *clock;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping, started;
    pthread_t thread;
    struct hs_duties_stats stats;
};

/* The connections whose webhook reports their changes: a healthy one. */
static int healthy_connections(struct hs_store *store, char ***out, size_t *n, struct hs_error *err)
{
    struct hs_webhook_row *hooks = NULL;
    size_t nh = 0;
    int rc = store->webhooks->webhook_list(store, &hooks, &nh, err);
    if (rc)
        return rc;
    char **keys = hs_calloc(nh + 1, sizeof *keys);
    size_t nk = 0;
    for (size_t i = 0; i < nh; i++) {
        if (!hooks[i].connection_key || !hs_webhook_row_healthy(&hooks[i]))
            continue;
        bool seen = false;
        for (size_t k = 0; k < nk && !seen; k++)
            seen = strcmp(keys[k], hooks[i].connection_key) == 0;
        if (!seen)
            keys[nk++] = hs_strdup(hooks[i].connection_key);
    }
    hs_webhook_rows_free(hooks, nh);
    *out = keys;
    *n = nk;
    return HS_OK;
}

int hs_duty_pending(struct hs_store *store, int64_t now_ms, int64_t first_ms, int64_t cap_ms,
                    size_t *scheduled, struct hs_error *err)
{
    char **skip = NULL;
    size_t n_skip = 0;
    int rc = healthy_connections(store, &skip, &n_skip, err);
    struct hs_pending_job *jobs = NULL;
    size_t n = 0;
    if (rc == HS_OK)
        rc = store->work->pending_poll(store, now_ms, first_ms, cap_ms, (const char *const *)skip,
                                       n_skip, &jobs, &n, err);
    for (size_t i = 0; rc == HS_OK && i < n; i++)
        hs_info("pending=poll conn=%s job=%lld next_in_s=%lld", jobs[i].connection_key,
                (long long)jobs[i].job_id, (long long)(jobs[i].interval_ms / 1000));
    hs_pending_jobs_free(jobs, n);
    for (size_t i = 0; i < n_skip; i++)
        free(skip[i]);
    free(skip);
    if (rc == HS_OK && scheduled)
        *scheduled = n;
    return rc;
}

int hs_duty_expire_syncs(struct hs_store *store, int64_t now_ms, int64_t keep_ms, int64_t *removed,
                         struct hs_error *err)
{
    return store->work->syncs_expire(store, now_ms - keep_ms, removed, err);
}

bool hs_duty_claim(struct hs_store *store, const char *name, int64_t now_ms, int64_t interval_ms)
{
    char lease[96];
    (void)snprintf(lease, sizeof lease, "duty:%s", name);
    int64_t fence = 0;
    struct hs_error err = {0};
    int rc = store->service->lease_claim(store, lease, now_ms, interval_ms, &fence, &err);
    if (rc && rc != HS_ERR_BUSY)
        hs_warn("duty=%s error=\"%s\"", name, err.msg);
    return rc == HS_OK;
}

/* ---- the thread ---- */

/* Half the first poll's wait, within 0.2 .. 10 s; without a pending pass, the clean-up's. */
static int64_t tick_ms(const struct hs_duties_config *c)
{
    if (c->pending_cap_ms <= 0)
        return EXPIRE_EVERY_MS;
    int64_t first =
        c->pending_first_ms < c->pending_cap_ms ? c->pending_first_ms : c->pending_cap_ms;
    int64_t t = first / 2;
    return t < 200 ? 200 : t > 10000 ? 10000 : t;
}

static void run_duties(struct hs_duties *d)
{
    int64_t now = d->clock->wall_ms(d->clock);
    struct hs_error err = {0};
    if (d->cfg.pending_cap_ms > 0 && hs_duty_claim(d->store, "pending", now, tick_ms(&d->cfg))) {
        size_t n = 0;
        if (hs_duty_pending(d->store, now, d->cfg.pending_first_ms, d->cfg.pending_cap_ms, &n,
                            &err))
            hs_warn("pending=error error=\"%s\"", err.msg);
        pthread_mutex_lock(&d->lock);
        d->stats.pending_runs++;
        d->stats.pending_polls += (int64_t)n;
        pthread_mutex_unlock(&d->lock);
        if (n)
            hs_events_wake(d->cfg.events);
    }
    if (hs_duty_claim(d->store, "expire_syncs", now, EXPIRE_EVERY_MS)) {
        int64_t removed = 0;
        memset(&err, 0, sizeof err);
        if (hs_duty_expire_syncs(d->store, now, d->cfg.keep_done_ms, &removed, &err))
            hs_warn("syncs=expire error=\"%s\"", err.msg);
        pthread_mutex_lock(&d->lock);
        d->stats.syncs_expired += removed;
        pthread_mutex_unlock(&d->lock);
    }
    if (d->cfg.retention_interval_ms > 0 &&
        hs_duty_claim(d->store, "retention", now, d->cfg.retention_interval_ms)) {
        struct hs_retention_report r;
        (void)hs_retention_run(d->store, &d->cfg.retention, now, &r, NULL); /* logged */
        int64_t rows = 0;
        for (int k = 0; k < HS_PRUNE_KINDS; k++)
            rows += r.removed[k];
        pthread_mutex_lock(&d->lock);
        d->stats.retention_runs++;
        d->stats.retention_rows += rows;
        d->stats.retention_files += r.files.removed;
        pthread_mutex_unlock(&d->lock);
    }
}

static void *thread_main(void *arg)
{
    struct hs_duties *d = arg;
    hs_client_set_thread_priority(HS_PRIO_BACKGROUND);
    pthread_mutex_lock(&d->lock);
    while (!d->stopping) {
        /* Half a tick: a duty's lease, held for its interval, ends between two looks of every
         * process, so that the duty runs within half a tick of being due. */
        struct timespec until = hs_deadline_after(CLOCK_MONOTONIC, tick_ms(&d->cfg) / 2);
        int rc = 0;
        while (!d->stopping && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&d->wake, &d->lock, &until);
        if (d->stopping)
            break;
        pthread_mutex_unlock(&d->lock);
        run_duties(d);
        pthread_mutex_lock(&d->lock);
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

int hs_duties_new(const struct hs_duties_config *cfg, struct hs_store *store,
                  const struct hs_clock *clock, struct hs_duties **out, struct hs_error *err)
{
    if (!cfg || !store || cfg->pending_cap_ms < 0)
        return hs_fail(err, HS_ERR_INVALID, "the periodic duties need a store");
    struct hs_duties *d = hs_calloc(1, sizeof *d);
    d->cfg = *cfg;
    if (d->cfg.pending_first_ms <= 0)
        d->cfg.pending_first_ms = HS_PENDING_FIRST_MS;
    if (d->cfg.keep_done_ms <= 0)
        d->cfg.keep_done_ms = 3600000;
    d->store = store;
    d->clock = clock ? clock : hs_clock_system();
    pthread_mutex_init(&d->lock, NULL);
    hs_cond_init_monotonic(&d->wake);
    *out = d;
    return HS_OK;
}

int hs_duties_start(struct hs_duties *d, struct hs_error *err)
{
    if (d->started)
        return HS_OK;
    if (pthread_create(&d->thread, NULL, thread_main, d) != 0)
        return hs_fail(err, HS_ERR_INTERNAL, "cannot start the periodic duties");
    d->started = true;
    return HS_OK;
}

void hs_duties_free(struct hs_duties *d)
{
    if (!d)
        return;
    hs_thread_stop(&d->lock, &d->wake, &d->stopping, d->thread, d->started);
    free(d);
}

void hs_duties_get_stats(struct hs_duties *d, struct hs_duties_stats *out)
{
    pthread_mutex_lock(&d->lock);
    *out = d->stats;
    pthread_mutex_unlock(&d->lock);
}
