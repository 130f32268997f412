/* events.c: the event worker (events.h).
 *
 * Threads: each loops claim -> run -> done/retry; with nothing due it waits on `wake` for idle_ms
 * (hs_events_wake cuts the wait short), so an idle service costs one small SELECT per thread per
 * idle_ms and no busy loop. Every thread is marked background for the request budget. The store
 * is shared with the HTTP service; nothing here holds a store transaction across a Hover request
 * (the sync engine writes after it downloads). */
#include "worker/events.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "hover/client.h"
#include "store/policies.h"
#include "store/records.h"
#include "store/webhooks.h"
#include "store/work.h"
#include "sync/engine.h"

#define THREADS_MAX 64

struct hs_events {
    struct hs_events_config cfg;
    char *data_dir;
    struct hs_store *store;
    struct hs_client_provider clients;
    struct hs_outbox *outbox;
    const struct hs_clock *clock;
    char host[64];

    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
    int64_t wakes; /* bumped by hs_events_wake: a waiter that missed the signal sees it */
    struct hs_events_stats stats;
    pthread_t threads[THREADS_MAX];
    int n_threads;
};

/* ---- the decision ---- */

int hs_autosync_parse(const char *s, enum hs_autosync *out)
{
    if (hs_streq(s, "all"))
        *out = HS_AUTOSYNC_ALL;
    else if (hs_streq(s, "linked"))
        *out = HS_AUTOSYNC_LINKED;
    else if (hs_streq(s, "none"))
        *out = HS_AUTOSYNC_NONE;
    else
        return HS_ERR_INVALID;
    return HS_OK;
}

static const struct hs_model_status *status_of(const struct hs_model_status *st, size_t n,
                                               int64_t model_id)
{
    for (size_t i = 0; i < n; i++)
        if (st[i].model_id == model_id)
            return &st[i];
    return NULL;
}

static bool selection_open(const struct hs_model_status *s)
{
    return s && s->has_selection &&
           (s->selection == HS_SEL_SELECTED || s->selection == HS_SEL_PENDING ||
            s->selection == HS_SEL_ERROR);
}

size_t hs_events_plan(enum hs_autosync policy, const struct hs_job *job,
                      const struct hs_model_status *st, size_t n_st, int64_t *out)
{
    bool linked = job->external_identifier && *job->external_identifier;
    for (size_t i = 0; i < n_st && !linked; i++)
        linked = st[i].has_selection;
    bool automatic = policy == HS_AUTOSYNC_ALL || (policy == HS_AUTOSYNC_LINKED && linked);
    size_t n = 0;
    for (size_t i = 0; i < job->n_models; i++) {
        const struct hs_model *m = &job->models[i];
        const struct hs_model_status *s = status_of(st, n_st, m->id);
        bool complete = hs_model_is_complete(m);
        bool take = false;
        if (selection_open(s)) {
            /* A pending one whose model is still working would only record "pending" again. */
            take = complete || hs_streq(m->state, "failed") || s->selection != HS_SEL_PENDING;
        }
        if (!take && automatic && complete) {
            /* Not yet synced at this updated_at (a model without updated_at: always). */
            take = !s || !s->synced_updated_at || !m->updated_at ||
                   strcmp(s->synced_updated_at, m->updated_at) != 0;
        }
        if (take)
            out[n++] = m->id;
    }
    return n;
}

int64_t hs_events_backoff_ms(int64_t base_ms, int64_t max_ms, int64_t attempts)
{
    if (base_ms <= 0)
        base_ms = 5000;
    if (max_ms < base_ms)
        max_ms = base_ms;
    int64_t d = base_ms;
    for (int64_t i = 0; i < attempts && d < max_ms; i++)
        d *= 2;
    return d < max_ms ? d : max_ms;
}

/* ---- one item ---- */

static enum hs_autosync policy_of(struct hs_events *w, const char *conn)
{
    enum hs_autosync p = HS_AUTOSYNC_ALL;
    char *v = NULL;
    struct hs_error err = {0};
    if (w->store->policies->policy_get(w->store, conn, &v, &err) == HS_OK) {
        if (hs_autosync_parse(v, &p) != HS_OK) {
            hs_warn("events=policy conn=%s policy=\"%s\" msg=\"unknown policy: syncing all\"", conn,
                    v);
            p = HS_AUTOSYNC_ALL;
        }
    } else if (err.code != HS_ERR_NOT_FOUND) {
        hs_warn("events=policy conn=%s error=\"%s\"", conn, err.msg);
    }
    free(v);
    return p;
}

/* Open selections of models no longer on the job can never complete: closed, like the pending
 * pass does. */
static void close_vanished(struct hs_events *w, const char *conn, const struct hs_job *job,
                           const struct hs_model_status *st, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!selection_open(&st[i]))
            continue;
        bool on_job = false;
        for (size_t k = 0; k < job->n_models && !on_job; k++)
            on_job = job->models[k].id == st[i].model_id;
        if (on_job)
            continue;
        struct hs_selection s = {.job_id = job->id,
                                 .model_id = st[i].model_id,
                                 .status = HS_SEL_FAILED_UPSTREAM,
                                 .reason = (char *)"model no longer on the job",
                                 .connection_key = (char *)conn};
        (void)w->store->records->selection_put(w->store, &s, NULL);
    }
}

static bool any_error(const struct hs_sync_report *r, char *why, size_t n)
{
    for (size_t i = 0; r && i < r->n_models; i++) {
        if (r->models[i].result == HS_RESULT_ERROR) {
            snprintf(why, n, "model %lld: %s", (long long)r->models[i].id,
                     r->models[i].message ? r->models[i].message : "error");
            return true;
        }
    }
    return false;
}

static int run_item(struct hs_events *w, const struct hs_work_item *it, struct hs_error *err)
{
    const char *conn = it->connection_key;
    int64_t last_event = 0;
    int rc = HS_OK;
    /* Before the Show Job: every event stored up to here is answered by what it reads. */
    if ((rc = w->store->webhooks->events_last_accepted(w->store, conn, it->job_id, &last_event,
                                                       err)))
        return rc;
    enum hs_autosync policy = policy_of(w, conn);

    struct hs_client *client = NULL;
    if (!w->clients.acquire)
        return hs_fail(err, HS_ERR_NO_CREDENTIALS, "no Hover connection");
    if ((rc = w->clients.acquire(w->clients.ctx, conn, &client, err)))
        return rc;
    struct hs_job *job = NULL;
    struct hs_sync_report *report = NULL;
    struct hs_model_status *st = NULL;
    size_t nst = 0;
    int64_t *ids = NULL;
    size_t nids = 0;
    rc = hs_client_show_job(client, it->job_id, &job, err);
    if (rc == HS_ERR_NOT_FOUND) {
        /* Deleted, or not visible to this org: nothing to sync, the events are answered. */
        w->clients.release(w->clients.ctx, client);
        hs_info("events=gone conn=%s job=%lld", conn, (long long)it->job_id);
        rc = HS_OK;
        goto processed;
    }
    /* What Hover says now is stored whatever this pass syncs: a model that failed, a job whose
     * models all failed, states that moved on. The records feed shows the change. */
    if (rc == HS_OK)
        rc = w->store->records->job_upsert(w->store, job, conn, NULL, err);
    if (rc == HS_OK)
        rc = w->store->records->job_models_status(w->store, it->job_id, &st, &nst, err);
    if (rc == HS_OK) {
        close_vanished(w, conn, job, st, nst);
        ids = hs_calloc(job->n_models + 1, sizeof *ids);
        nids = hs_events_plan(policy, job, st, nst, ids);
    }
    if (rc == HS_OK && nids > 0) {
        struct hs_sync_engine e = {
            .client = client, .store = w->store, .data_dir = w->data_dir, .connection_key = conn};
        struct hs_sync_request rq = {.job_id = it->job_id,
                                     .model_ids = ids,
                                     .n_model_ids = nids,
                                     .trigger = it->reason ? it->reason : "webhook",
                                     .prefetched = job};
        rc = hs_sync_job(&e, &rq, &report, err);
    }
    w->clients.release(w->clients.ctx, client);
    pthread_mutex_lock(&w->lock);
    if (rc == HS_OK && nids > 0)
        w->stats.synced++;
    else if (rc == HS_OK)
        w->stats.unchanged++;
    pthread_mutex_unlock(&w->lock);
    if (rc)
        goto out;
    hs_info("events=pass conn=%s job=%lld reason=%s models=%zu status=%s", conn,
            (long long)it->job_id, it->reason ? it->reason : "-", nids,
            report ? report->status : "unchanged");
    /* The notification goes even when this pass synced nothing: an earlier pass may have died
     * between its sync and its notification (outbox.h). */
    if ((rc = hs_outbox_after_sync(w->outbox, conn, it->job_id, report, NULL, err)))
        goto out;
    char why[300];
    if (any_error(report, why, sizeof why)) {
        rc = hs_fail(err, HS_ERR_CONFLICT, "%s", why);
        goto out;
    }
processed:
    if (last_event > 0)
        rc = w->store->webhooks->events_processed(w->store, conn, it->job_id, last_event, err);
out:
    hs_sync_report_free(report);
    hs_model_statuses_free(st, nst);
    hs_job_free(job);
    free(ids);
    return rc;
}

int hs_events_run_once(struct hs_events *w, const char *worker_id, bool *ran, struct hs_error *err)
{
    *ran = false;
    struct hs_work_item it = {0};
    int rc = w->store->work->work_claim(w->store, worker_id, w->clock->wall_ms(w->clock),
                                        w->cfg.lease_ms, &it, err);
    if (rc == HS_ERR_NOT_FOUND)
        return HS_OK;
    if (rc)
        return rc;
    *ran = true;
    pthread_mutex_lock(&w->lock);
    w->stats.claimed++;
    w->stats.running++;
    pthread_mutex_unlock(&w->lock);

    struct hs_error perr = {0};
    int prc = run_item(w, &it, &perr);
    if (prc == HS_OK) {
        rc = w->store->work->work_done(w->store, &it, err);
    } else {
        int64_t delay =
            hs_events_backoff_ms(w->cfg.retry_base_ms, w->cfg.retry_max_ms, it.attempts);
        const char *why = perr.msg[0] ? perr.msg : hs_err_name(prc);
        hs_warn("events=retry conn=%s job=%lld attempt=%lld retry_in_ms=%lld error=\"%s\"",
                it.connection_key, (long long)it.job_id, (long long)it.attempts + 1,
                (long long)delay, why);
        rc = w->store->work->work_retry(w->store, &it, w->clock->wall_ms(w->clock) + delay, why,
                                        err);
        pthread_mutex_lock(&w->lock);
        w->stats.retried++;
        pthread_mutex_unlock(&w->lock);
    }
    pthread_mutex_lock(&w->lock);
    w->stats.running--;
    pthread_mutex_unlock(&w->lock);
    hs_work_item_clear(&it);
    return rc;
}

/* ---- threads ---- */

struct thread_arg {
    struct hs_events *w;
    int index;
};

static void *thread_main(void *arg)
{
    struct thread_arg *ta = arg;
    struct hs_events *w = ta->w;
    char id[128];
    snprintf(id, sizeof id, "%s:%d:%d", w->host, (int)getpid(), ta->index);
    free(ta);
    hs_client_set_thread_priority(HS_PRIO_BACKGROUND);
    for (;;) {
        pthread_mutex_lock(&w->lock);
        bool stop = w->stopping;
        int64_t seen = w->wakes;
        pthread_mutex_unlock(&w->lock);
        if (stop)
            break;
        bool ran = false;
        struct hs_error err = {0};
        int rc = hs_events_run_once(w, id, &ran, &err);
        if (rc)
            hs_warn("events=error worker=%s error=\"%s\"", id, err.msg);
        if (ran && rc == HS_OK)
            continue;
        pthread_mutex_lock(&w->lock);
        struct timespec until = hs_deadline_after(CLOCK_MONOTONIC, w->cfg.idle_ms);
        int wrc = 0;
        while (!w->stopping && w->wakes == seen && wrc != ETIMEDOUT)
            wrc = pthread_cond_timedwait(&w->wake, &w->lock, &until);
        pthread_mutex_unlock(&w->lock);
    }
    return NULL;
}

int hs_events_new(const struct hs_events_config *cfg, struct hs_store *store,
                  struct hs_client_provider clients, struct hs_outbox *outbox,
                  const struct hs_clock *clock, struct hs_events **out, struct hs_error *err)
{
    if (!cfg || !cfg->data_dir || !*cfg->data_dir || !store)
        return hs_fail(err, HS_ERR_INVALID, "the event worker needs a data directory and a store");
    struct hs_events_config c = *cfg;
    if (c.threads <= 0)
        c.threads = 2;
    if (c.threads > THREADS_MAX)
        return hs_fail(err, HS_ERR_INVALID, "at most %d event worker threads", THREADS_MAX);
    if (c.lease_ms <= 0)
        c.lease_ms = 120000;
    if (c.idle_ms <= 0)
        c.idle_ms = 250;
    if (c.retry_base_ms <= 0)
        c.retry_base_ms = 5000;
    if (c.retry_max_ms <= 0)
        c.retry_max_ms = 600000;
    struct hs_events *w = hs_calloc(1, sizeof *w);
    w->cfg = c;
    w->data_dir = hs_strdup(c.data_dir);
    w->cfg.data_dir = w->data_dir;
    w->store = store;
    w->clients = clients;
    w->outbox = outbox;
    w->clock = clock ? clock : hs_clock_system();
    if (gethostname(w->host, sizeof w->host - 1) != 0)
        hs_strlcpy(w->host, "host", sizeof w->host);
    w->host[sizeof w->host - 1] = '\0';
    pthread_mutex_init(&w->lock, NULL);
    hs_cond_init_monotonic(&w->wake);
    *out = w;
    return HS_OK;
}

/* A claim "host:pid:thread" of this host whose process no longer exists. */
static bool claimer_dead(void *ctx, const char *worker)
{
    const struct hs_events *w = ctx;
    size_t hl = strlen(w->host);
    if (strncmp(worker, w->host, hl) != 0 || worker[hl] != ':')
        return false;
    int64_t pid = 0;
    char num[24];
    size_t i = 0;
    for (const char *p = worker + hl + 1; *p && *p != ':' && i + 1 < sizeof num; p++)
        num[i++] = *p;
    num[i] = '\0';
    if (hs_parse_i64(num, &pid) != 0 || pid <= 0 || pid == (int64_t)getpid())
        return false;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

int hs_events_start(struct hs_events *w, struct hs_error *err)
{
    /* Items a killed process of this host still holds: free them now rather than when their
     * leases end (workers on other hosts wait for the lease). */
    int64_t released = 0;
    struct hs_error rerr = {0};
    if (w->n_threads == 0) {
        if (w->store->work->work_release_dead(w->store, claimer_dead, w, &released, &rerr))
            hs_warn("events=release_dead error=\"%s\"", rerr.msg);
        else if (released)
            hs_info("events=release_dead items=%lld", (long long)released);
    }
    for (int i = w->n_threads; i < w->cfg.threads; i++) {
        struct thread_arg *ta = hs_calloc(1, sizeof *ta);
        ta->w = w;
        ta->index = i;
        if (pthread_create(&w->threads[i], NULL, thread_main, ta) != 0) {
            free(ta);
            return hs_fail(err, HS_ERR_INTERNAL, "cannot start an event worker thread");
        }
        w->n_threads++;
    }
    return HS_OK;
}

void hs_events_wake(struct hs_events *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->wakes++;
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

void hs_events_free(struct hs_events *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->lock);
    for (int i = 0; i < w->n_threads; i++)
        pthread_join(w->threads[i], NULL);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w->data_dir);
    free(w);
}

void hs_events_get_stats(struct hs_events *w, struct hs_events_stats *out)
{
    pthread_mutex_lock(&w->lock);
    *out = w->stats;
    pthread_mutex_unlock(&w->lock);
}
