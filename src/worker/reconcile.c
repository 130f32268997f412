/* reconcile.c: the periodic reconciliation pass (reconcile.h).
 *
 * Paging by keyset rather than by page number: each page is asked for with updated_since = the
 * newest updated_at of the page before (`>=`, so jobs sharing that second are seen again, which is
 * harmless: scheduling is idempotent and coalesces), because a job updated during the pass moves
 * to the end of an updated_at ordering and page numbers would skip the job that slid into its
 * place. Only when a whole page shares one second does it take the next page number. */
#include "worker/reconcile.h"

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
#include "sync/plan.h"
#include "store/policies.h"
#include "store/records.h"
#include "store/service.h"
#include "store/work.h"
#include "worker/duties.h"

struct hs_reconcile {
    struct hs_reconcile_config cfg;
    struct hs_store *store;
    struct hs_client_provider clients;
    struct hs_events *events;
    const struct hs_clock *clock;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping, started;
    pthread_t thread;
    struct hs_reconcile_stats stats;
};

/* Schedules the job when a pass over it would sync something. The pass reads the job again
 * (the listed one is not its payload): reconciliation is the safety net, and a job listed half
 * way through its reconstruction must not be synced from that snapshot alone when no later
 * listing or event comes (a job's updated_at may not move with every model). */
static int consider(struct hs_reconcile *r, const char *conn, enum hs_autosync policy,
                    const struct hs_job *job, bool *scheduled, struct hs_error *err)
{
    *scheduled = false;
    struct hs_model_status *st = NULL;
    size_t nst = 0;
    int rc = r->store->records->job_models_status(r->store, job->id, &st, &nst, err);
    if (rc)
        return rc;
    struct hs_sync_plan plan;
    hs_sync_plan_make(policy, job, st, nst, &plan);
    size_t n = plan.n_sync + plan.n_vanished;
    hs_sync_plan_clear(&plan);
    hs_model_statuses_free(st, nst);
    if (n == 0)
        return HS_OK;
    int64_t now = r->clock->wall_ms(r->clock);
    struct hs_work_trigger t = {.connection_key = conn,
                                .job_id = job->id,
                                .reason = "reconcile",
                                .priority = HS_WORK_PRIO_BACKGROUND,
                                .now_ms = now,
                                .due_ms = now};
    rc = r->store->work->work_schedule(r->store, &t, err);
    if (rc == HS_OK)
        *scheduled = true;
    return rc;
}

static int checkpoint_read(struct hs_reconcile *r, const char *name, int64_t *since,
                           struct hs_error *err)
{
    char *v = NULL;
    int rc = r->store->records->checkpoint_get(r->store, name, &v, err);
    if (rc == HS_ERR_NOT_FOUND) {
        *since = r->clock->wall_ms(r->clock) / 1000 - r->cfg.first_since_s;
        return HS_OK;
    }
    if (rc)
        return rc;
    if (hs_parse_i64(v, since) != 0)
        *since = r->clock->wall_ms(r->clock) / 1000 - r->cfg.first_since_s;
    free(v);
    return HS_OK;
}

static int reconcile_connection(struct hs_reconcile *r, struct hs_client *client, const char *conn,
                                size_t *scheduled, struct hs_error *err)
{
    char name[200];
    snprintf(name, sizeof name, "reconcile:%s", conn);
    int64_t since = 0;
    int rc = checkpoint_read(r, name, &since, err);
    if (rc)
        return rc;
    enum hs_autosync policy = hs_autosync_of(r->store, conn);
    int64_t page = 1;
    for (int64_t pages = 0; pages < r->cfg.max_pages; pages++) {
        struct hs_list_params p = {.page = page,
                                   .per = r->cfg.per,
                                   .sort_by = "updated_at",
                                   .sort_order = "ASC",
                                   .archived = -1,
                                   .updated_since = since > 0 ? since : 1};
        struct hs_job_page *pg = NULL;
        if ((rc = hs_client_list_jobs(client, &p, &pg, err)))
            return rc;
        int64_t newest = since;
        for (size_t i = 0; rc == HS_OK && i < pg->n_jobs; i++) {
            const struct hs_job *job = &pg->jobs[i];
            int64_t ts = 0;
            if (job->updated_at && hs_iso8601_parse(job->updated_at, &ts) == 0 && ts > newest)
                newest = ts;
            bool sch = false;
            rc = consider(r, conn, policy, job, &sch, err);
            if (sch) {
                (*scheduled)++;
                hs_info("reconcile=scheduled conn=%s job=%lld updated_at=%s", conn,
                        (long long)job->id, job->updated_at ? job->updated_at : "-");
            }
        }
        bool more = pg->has_more && pg->n_jobs >= (size_t)r->cfg.per;
        size_t n_jobs = pg->n_jobs;
        hs_job_page_free(pg);
        if (rc)
            return rc;
        pthread_mutex_lock(&r->lock);
        r->stats.pages++;
        r->stats.jobs_seen += (int64_t)n_jobs;
        pthread_mutex_unlock(&r->lock);
        if (newest > since) {
            char v[24];
            snprintf(v, sizeof v, "%lld", (long long)newest);
            if ((rc = r->store->records->checkpoint_put(r->store, name, v, err)))
                return rc;
        } else if (pages == 0) {
            /* Nothing newer: the checkpoint is written once, so a first pass remembers where
             * it started. */
            char v[24];
            snprintf(v, sizeof v, "%lld", (long long)since);
            if ((rc = r->store->records->checkpoint_put(r->store, name, v, err)))
                return rc;
        }
        if (!more)
            return HS_OK;
        if (newest > since) {
            since = newest;
            page = 1;
        } else {
            page++; /* a whole page in one second: page on */
        }
    }
    return HS_OK;
}

int hs_reconcile_run(struct hs_reconcile *r, size_t *scheduled, struct hs_error *err)
{
    struct hs_connection_row *conns = NULL;
    size_t nc = 0, total = 0;
    int rc = r->store->service->connections_list(r->store, &conns, &nc, err);
    if (rc)
        return rc;
    int first_rc = HS_OK;
    for (size_t i = 0; i < nc; i++) {
        if (!conns[i].has_token)
            continue;
        struct hs_error cerr = {0};
        struct hs_client *client = NULL;
        size_t n = 0;
        int crc = r->clients.acquire
                      ? r->clients.acquire(r->clients.ctx, conns[i].key, &client, &cerr)
                      : hs_fail(&cerr, HS_ERR_NO_CREDENTIALS, "no clients");
        if (crc == HS_OK) {
            crc = reconcile_connection(r, client, conns[i].key, &n, &cerr);
            r->clients.release(r->clients.ctx, client);
        }
        total += n;
        if (crc) {
            /* Another connection may still work: this one is tried again next pass. */
            hs_warn("reconcile=error conn=%s error=\"%s\"", conns[i].key, cerr.msg);
            pthread_mutex_lock(&r->lock);
            r->stats.errors++;
            pthread_mutex_unlock(&r->lock);
            if (!first_rc) {
                first_rc = crc;
                if (err)
                    *err = cerr;
            }
        }
    }
    hs_connection_rows_free(conns, nc);
    pthread_mutex_lock(&r->lock);
    r->stats.passes++;
    r->stats.scheduled += (int64_t)total;
    pthread_mutex_unlock(&r->lock);
    hs_info("reconcile=pass connections=%zu scheduled=%zu", nc, total);
    if (total)
        hs_events_wake(r->events);
    if (scheduled)
        *scheduled = total;
    return first_rc;
}

/* The first look one interval after the start, then every quarter interval: the pass runs
 * when this process claims its lease, held for an interval (worker/duties.h hs_duty_claim), so
 * that it runs once per interval across all processes, within a quarter interval of being due. */
static void *thread_main(void *arg)
{
    struct hs_reconcile *r = arg;
    hs_client_set_thread_priority(HS_PRIO_BACKGROUND);
    int64_t look_ms = r->cfg.interval_ms;
    pthread_mutex_lock(&r->lock);
    while (!r->stopping) {
        struct timespec until = hs_deadline_after(CLOCK_MONOTONIC, look_ms);
        int rc = 0;
        while (!r->stopping && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&r->wake, &r->lock, &until);
        if (r->stopping)
            break;
        pthread_mutex_unlock(&r->lock);
        look_ms = r->cfg.interval_ms / 4 > 0 ? r->cfg.interval_ms / 4 : 1;
        if (hs_duty_claim(r->store, "reconcile", r->clock->wall_ms(r->clock), r->cfg.interval_ms)) {
            struct hs_error err = {0};
            (void)hs_reconcile_run(r, NULL, &err);
        }
        pthread_mutex_lock(&r->lock);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

int hs_reconcile_new(const struct hs_reconcile_config *cfg, struct hs_store *store,
                     struct hs_client_provider clients, struct hs_events *events,
                     const struct hs_clock *clock, struct hs_reconcile **out, struct hs_error *err)
{
    if (!cfg || !store)
        return hs_fail(err, HS_ERR_INVALID, "reconciliation needs a configuration and a store");
    if (cfg->interval_ms < 0)
        return hs_fail(err, HS_ERR_INVALID, "the reconcile interval must be 0 (off) or more");
    struct hs_reconcile *r = hs_calloc(1, sizeof *r);
    r->cfg = *cfg;
    if (r->cfg.per <= 0 || r->cfg.per > 100)
        r->cfg.per = 100;
    if (r->cfg.first_since_s <= 0)
        r->cfg.first_since_s = 3600;
    if (r->cfg.max_pages <= 0)
        r->cfg.max_pages = 1000;
    r->store = store;
    r->clients = clients;
    r->events = events;
    r->clock = clock ? clock : hs_clock_system();
    pthread_mutex_init(&r->lock, NULL);
    hs_cond_init_monotonic(&r->wake);
    *out = r;
    return HS_OK;
}

int hs_reconcile_start(struct hs_reconcile *r, struct hs_error *err)
{
    if (r->cfg.interval_ms <= 0 || r->started)
        return HS_OK;
    if (pthread_create(&r->thread, NULL, thread_main, r) != 0)
        return hs_fail(err, HS_ERR_INTERNAL, "cannot start the reconciliation thread");
    r->started = true;
    return HS_OK;
}

void hs_reconcile_free(struct hs_reconcile *r)
{
    if (!r)
        return;
    hs_thread_stop(&r->lock, &r->wake, &r->stopping, r->thread, r->started);
    free(r);
}

void hs_reconcile_get_stats(struct hs_reconcile *r, struct hs_reconcile_stats *out)
{
    pthread_mutex_lock(&r->lock);
    *out = r->stats;
    pthread_mutex_unlock(&r->lock);
}
