/* events.c: the work queue's workers (events.h).
 *
 * Threads: each loops claim -> run -> done/retry; with nothing due it waits on `wake` until the
 * next item is due, at most idle_ms (hs_events_wake cuts the wait short), so an idle service
 * costs one small SELECT per thread per idle_ms and no busy loop. The heartbeat thread renews
 * the lease of every item this process runs, a third of a lease before it would end. The
 * listener thread waits in the store for work other processes commit (store work_wait:
 * PostgreSQL's LISTEN/NOTIFY) and wakes the threads, so an item accepted by another instance
 * starts within milliseconds; the idle_ms poll stays the fallback (SQLite, a lost listening
 * connection). The store
 * is shared with the HTTP service; nothing here holds a store transaction across a Hover request
 * (the sync engine writes after it downloads). */
#include "worker/events.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "hover/client.h"
#include "store/policies.h"
#include "store/records.h"
#include "store/webhooks.h"
#include "store/work.h"
#include "sync/engine.h"
#include "sync/plan.h"

#define THREADS_MAX 64
#define HELD_MAX    (THREADS_MAX + 16)
/* How long after the request that queued a person's sync its pass uses the job that request
 * read (server: SYNC_JOB_FRESH_MS old at most, so the job is at most 10 s old). */
#define API_PAYLOAD_MS 5000

struct hs_events {
    struct hs_events_config cfg;
    char *data_dir;
    char *artifacts;
    struct hs_store *store;
    struct hs_client_provider clients;
    struct hs_outbox *outbox;
    const struct hs_clock *clock;
    char host[64];

    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
    bool draining; /* no new claims; the heartbeat goes on */
    int64_t wakes; /* bumped by hs_events_wake: a waiter that missed the signal sees it */
    struct hs_events_stats stats;
    pthread_t threads[THREADS_MAX];
    int n_threads;
    /* The claims this process runs, for the heartbeat (under lock; id 0: a free slot). */
    struct held {
        int64_t id, claim, job_id;
    } held[HELD_MAX];
    pthread_t heartbeat;
    bool has_heartbeat;
    pthread_t listener;
    bool has_listener;
    int stop_pipe[2]; /* written once at stop: a listener waiting in the store returns */
};

/* The listener's wait in the store at most (it returns sooner when woken or stopped), and its
 * pause after the store failed to listen (the threads poll meanwhile). */
#define LISTEN_WAIT_MS  30000
#define LISTEN_RETRY_MS 1000

int64_t hs_events_backoff_ms(int64_t base_ms, int64_t max_ms, int64_t attempts)
{
    return hs_backoff_ms(base_ms > 0 ? base_ms : 5000, max_ms, attempts);
}

static int64_t now_ms(const struct hs_events *w)
{
    return w->clock->wall_ms(w->clock);
}

static void count(struct hs_events *w, int64_t *field, int64_t by)
{
    pthread_mutex_lock(&w->lock);
    *field += by;
    pthread_mutex_unlock(&w->lock);
}

/* ---- one run: the job's syncs and the fence ---- */

struct run {
    struct hs_events *w;
    const struct hs_work_item *it;
    bool told;       /* progress committed since the streams were last told */
    int64_t settled; /* syncs the run's progress finished (all their models have a result) */
};

static void tell(struct run *r)
{
    if (r->told && r->w->cfg.on_sync_progress)
        r->w->cfg.on_sync_progress(r->w->cfg.progress_ctx);
    r->told = false;
}

static int progress_write(struct run *r, const struct hs_sync_model_row *m, struct hs_error *err)
{
    int64_t changed = 0, finished = 0;
    int rc = r->w->store->work->sync_progress(r->w->store, r->it->connection_key, r->it->job_id, m,
                                              now_ms(r->w), &changed, &finished, err);
    if (rc == HS_OK && changed)
        r->told = true;
    if (rc == HS_OK)
        r->settled += finished; /* counted once the transaction commits */
    return rc;
}

/* The links a CRM follows: the PDF and the summarized measurements JSON of a model. */
static void note_artifact(struct hs_sync_model_row *m, const struct hs_sync_artifact *a)
{
    if (!a || !a->kind || !a->sha256[0])
        return;
    if (strcmp(a->kind, "measurements.pdf") == 0)
        m->pdf_sha256 = (char *)a->sha256;
    else if (strcmp(a->kind, "measurements.json") == 0 || strstr(a->kind, "summarized"))
        m->json_sha256 = (char *)a->sha256;
}

/* The sync engine's hook inside each of its transactions: the claim still holds, and the
 * progress it commits goes to the job's syncs. */
static int in_txn(void *ctx, const struct hs_sync_progress *p, struct hs_error *err)
{
    struct run *r = ctx;
    int rc = r->w->store->work->work_fence(r->w->store, r->it, now_ms(r->w), err);
    if (rc)
        return rc;
    struct hs_sync_model_row m = {.model_id = p->model_id,
                                  .name = (char *)p->model_name,
                                  .artifacts_done = -1,
                                  .artifacts_total = -1};
    switch (p->event) {
    case HS_PROGRESS_RUN_STARTED:
        m.artifacts_done = 0;
        m.artifacts_total = p->artifacts_total;
        break;
    case HS_PROGRESS_ARTIFACT:
        m.artifacts_done = p->artifacts_done;
        m.artifacts_total = p->artifacts_total;
        note_artifact(&m, p->artifact);
        break;
    case HS_PROGRESS_MODEL_FINISHED:
        m.result = (char *)hs_model_result_name(p->result);
        m.message = (char *)p->message;
        m.artifacts_done = p->artifacts_done;
        if (p->result == HS_RESULT_SYNCED)
            m.artifacts_total = p->artifacts_done;
        for (size_t k = 0; p->model && k < p->model->n_artifacts; k++)
            note_artifact(&m, &p->model->artifacts[k]);
        break;
    case HS_PROGRESS_MODEL_STARTED:
        return HS_OK;
    }
    return progress_write(r, &m, err);
}

static void on_progress(void *ctx, const struct hs_sync_progress *p)
{
    (void)p;
    tell(ctx); /* after the commit of what the step wrote */
}

static const struct hs_model *model_of(const struct hs_job *job, int64_t id)
{
    for (size_t i = 0; i < job->n_models; i++)
        if (job->models[i].id == id)
            return &job->models[i];
    return NULL;
}

/* What the plan leaves out, as the syncs show it: vanished selections closed, "sync when ready"
 * models still working said to wait. One transaction, fenced. */
static int plan_outcome(struct run *r, const struct hs_job *job, const struct hs_sync_plan *plan,
                        struct hs_error *err)
{
    if (plan->n_vanished + plan->n_waiting == 0)
        return HS_OK;
    struct hs_store *st = r->w->store;
    int rc = st->ops->begin(st, err);
    if (rc)
        return rc;
    rc = st->work->work_fence(st, r->it, now_ms(r->w), err);
    if (rc == HS_OK)
        rc = hs_sync_plan_close_vanished(st, r->it->connection_key, job->id, plan, err);
    for (size_t i = 0; rc == HS_OK && i < plan->n_vanished; i++) {
        struct hs_sync_model_row m = {.model_id = plan->vanished[i],
                                      .result = (char *)"failed_upstream",
                                      .message = (char *)HS_PLAN_VANISHED_REASON,
                                      .artifacts_done = -1,
                                      .artifacts_total = -1};
        rc = progress_write(r, &m, err);
    }
    for (size_t i = 0; rc == HS_OK && i < plan->n_waiting; i++) {
        const struct hs_model *jm = model_of(job, plan->waiting[i]);
        char *why = jm ? hs_sync_pending_message(jm) : NULL;
        struct hs_sync_model_row m = {.model_id = plan->waiting[i],
                                      .name = jm ? jm->name : NULL,
                                      .result = (char *)"pending",
                                      .message = why,
                                      .artifacts_done = 0,
                                      .artifacts_total = 0};
        rc = progress_write(r, &m, err);
        free(why);
    }
    if (rc) {
        st->ops->rollback(st);
        return rc;
    }
    rc = st->ops->commit(st, err);
    tell(r);
    return rc;
}

/* ---- one item ---- */

/* The job: the item's payload while it is young (the job as a list page gave it; or as the
 * Show Job of the request that queued a person's sync answered it, read at most a few seconds
 * before: API_PAYLOAD_MS after that request, a person's sync reads the job afresh), else a Show
 * Job, stored whatever the run syncs (states that moved on, models that failed). */
static int read_job(struct run *r, struct hs_client *client, struct hs_job **job,
                    struct hs_error *err)
{
    const struct hs_work_item *it = r->it;
    int64_t max_age = hs_streq(it->reason, "api") ? API_PAYLOAD_MS : r->w->cfg.payload_max_age_ms;
    if (it->payload && now_ms(r->w) - it->payload_ms <= max_age) {
        struct hs_error perr = {0};
        if (hs_job_from_json(it->payload, strlen(it->payload), job, &perr) == HS_OK &&
            (*job)->id == it->job_id)
            return HS_OK;
        hs_job_free(*job);
        *job = NULL;
        hs_warn("events=payload conn=%s job=%lld msg=\"unusable: reading the job\" error=\"%s\"",
                it->connection_key, (long long)it->job_id, perr.msg);
    }
    int rc = hs_client_show_job(client, it->job_id, job, err);
    if (rc == HS_OK)
        rc = r->w->store->records->job_upsert(r->w->store, *job, it->connection_key, NULL, err);
    return rc;
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

/* The plan for the job and the sync engine over it; *report NULL when nothing was synced. */
static int sync_plan(struct run *r, struct hs_client *client, const struct hs_job *job,
                     struct hs_sync_report **report, size_t *n_synced, struct hs_error *err)
{
    struct hs_events *w = r->w;
    const struct hs_work_item *it = r->it;
    struct hs_model_status *st = NULL;
    size_t nst = 0;
    struct hs_sync_plan plan = {0};
    int rc = w->store->records->job_models_status(w->store, it->job_id, &st, &nst, err);
    if (rc == HS_OK) {
        hs_sync_plan_make(hs_autosync_of(w->store, it->connection_key), job, st, nst, &plan);
        rc = plan_outcome(r, job, &plan, err);
    }
    *n_synced = plan.n_sync;
    if (rc == HS_OK && plan.n_sync > 0) {
        struct hs_sync_engine e = {.client = client,
                                   .store = w->store,
                                   .data_dir = w->data_dir,
                                   .artifacts = w->artifacts,
                                   .blobs = w->cfg.blobs,
                                   .connection_key = it->connection_key,
                                   .download_slots = w->cfg.download_slots,
                                   .run_end_lazy = true, /* finish() commits durably next */
                                   .on_progress = on_progress,
                                   .progress_ctx = r,
                                   .in_txn = in_txn,
                                   .in_txn_ctx = r};
        struct hs_sync_request rq = {.job_id = it->job_id,
                                     .model_ids = plan.sync,
                                     .n_model_ids = plan.n_sync,
                                     .trigger = it->reason ? it->reason : "webhook",
                                     .prefetched = job};
        rc = hs_sync_job(&e, &rq, report, err);
        tell(r);
    }
    hs_sync_plan_clear(&plan);
    hs_model_statuses_free(st, nst);
    return rc;
}

/* A pass over the item's job. *job_failed: the job could not be synced at all (its syncs fail
 * with that error); otherwise an error is a model's, retried later. */
static int run_item(struct run *r, bool *job_failed, struct hs_error *err)
{
    struct hs_events *w = r->w;
    const struct hs_work_item *it = r->it;
    const char *conn = it->connection_key;
    int64_t last_event = 0;
    *job_failed = true;
    /* Before the job is read: every event stored up to here is answered by what it reads. */
    int rc = w->store->webhooks->events_last_accepted(w->store, conn, it->job_id, &last_event, err);
    if (rc)
        return rc;
    struct hs_client *client = NULL;
    if (!w->clients.acquire)
        return hs_fail(err, HS_ERR_NO_CREDENTIALS, "no Hover connection");
    if ((rc = w->clients.acquire(w->clients.ctx, conn, &client, err)))
        return rc;
    struct hs_job *job = NULL;
    struct hs_sync_report *report = NULL;
    size_t n_synced = 0;
    rc = read_job(r, client, &job, err);
    if (rc == HS_OK) {
        rc = sync_plan(r, client, job, &report, &n_synced, err);
        *job_failed = rc != HS_OK;
    }
    w->clients.release(w->clients.ctx, client);
    if (rc == HS_ERR_NOT_FOUND && !job) {
        /* Deleted, or not visible to this org: nothing to sync, the events are answered (its
         * syncs say not_found). */
        hs_info("events=gone conn=%s job=%lld", conn, (long long)it->job_id);
        struct hs_error gerr = *err;
        if (last_event > 0 && (rc = w->store->webhooks->events_processed(w->store, conn, it->job_id,
                                                                         last_event, err)))
            goto out;
        *err = gerr;
        rc = HS_ERR_NOT_FOUND;
        goto out;
    }
    if (rc)
        goto out;
    count(w, n_synced > 0 ? &w->stats.synced : &w->stats.unchanged, 1);
    hs_info("events=pass conn=%s job=%lld reason=%s models=%zu status=%s", conn,
            (long long)it->job_id, it->reason ? it->reason : "-", n_synced,
            report ? report->status : "unchanged");
    /* The notification goes even when this pass synced nothing: an earlier pass may have died
     * between its sync and its notification (outbox.h). */
    if ((rc = hs_outbox_after_sync(w->outbox, conn, it->job_id, report, NULL, err)))
        goto out;
    if (last_event > 0 &&
        (rc = w->store->webhooks->events_processed(w->store, conn, it->job_id, last_event, err)))
        goto out;
    char why[300];
    if (any_error(report, why, sizeof why))
        rc = hs_fail(err, HS_ERR_CONFLICT, "%s", why);
out:
    hs_sync_report_free(report);
    hs_job_free(job);
    return rc;
}

static const char *failure_code(int rc)
{
    switch (rc) {
    case HS_ERR_INVALID_GRANT:
    case HS_ERR_NO_CREDENTIALS:
    case HS_ERR_UNAUTHORIZED:
        return "reconnect_required";
    case HS_ERR_NOT_FOUND:
        return "not_found";
    case HS_ERR_INVALID:
        return "bad_request";
    case HS_ERR_RATE_LIMITED:
        return "rate_limited";
    case HS_ERR_NETWORK:
    case HS_ERR_TRUNCATED:
    case HS_ERR_SERVER:
        return "upstream_unavailable";
    case HS_ERR_FORBIDDEN:
    case HS_ERR_HTTP:
    case HS_ERR_UNPROCESSABLE:
    case HS_ERR_PARSE:
        return "upstream_error";
    default:
        return "internal";
    }
}

/* The end of a run, in one transaction: the job's running syncs finished (failed with the
 * error when the job could not be synced at all), and the item done, or released for a retry
 * with backoff. Both are fenced. */
static int finish(struct run *r, int prc, bool job_failed, const struct hs_error *perr,
                  struct hs_error *err)
{
    struct hs_events *w = r->w;
    const struct hs_work_item *it = r->it;
    struct hs_store *st = w->store;
    const char *why = perr->msg[0] ? perr->msg : hs_err_name(prc);
    int64_t now = now_ms(w), finished = 0;
    int rc = st->ops->begin(st, err);
    if (rc)
        return rc;
    const char *code = prc && job_failed && prc != HS_ERR_NOT_FOUND ? failure_code(prc) : NULL;
    if (prc == HS_ERR_NOT_FOUND && job_failed)
        code = "not_found";
    rc = st->work->syncs_finish(st, it->connection_key, it->job_id, code, code ? why : NULL, now,
                                &finished, err);
    int64_t delay = 0;
    bool retry = prc && prc != HS_ERR_NOT_FOUND;
    if (rc == HS_OK && !retry) {
        rc = st->work->work_done(st, it, now, err);
    } else if (rc == HS_OK) {
        delay = hs_events_backoff_ms(w->cfg.retry_base_ms, w->cfg.retry_max_ms, it->attempts);
        rc = st->work->work_retry(st, it, now, now + delay, why, err);
    }
    if (rc) {
        st->ops->rollback(st);
        return rc;
    }
    if ((rc = st->ops->commit(st, err)))
        return rc;
    if (retry) {
        hs_warn("events=retry conn=%s job=%lld attempt=%lld retry_in_ms=%lld error=\"%s\"",
                it->connection_key, (long long)it->job_id, (long long)it->attempts + 1,
                (long long)delay, why);
        count(w, &w->stats.retried, 1);
    }
    if (finished) {
        count(w, code ? &w->stats.syncs_failed : &w->stats.syncs_done, finished);
        r->told = true;
        tell(r);
    }
    count(w, &w->stats.syncs_done, r->settled);
    return HS_OK;
}

/* ---- the heartbeat ---- */

static void hold(struct hs_events *w, const struct hs_work_item *it, bool on)
{
    pthread_mutex_lock(&w->lock);
    for (int i = 0; i < HELD_MAX; i++) {
        if (on && w->held[i].id == 0) {
            w->held[i] = (struct held){.id = it->id, .claim = it->claim, .job_id = it->job_id};
            break;
        }
        if (!on && w->held[i].id == it->id && w->held[i].claim == it->claim) {
            w->held[i].id = 0;
            break;
        }
    }
    pthread_mutex_unlock(&w->lock);
}

/* Renews the lease of every claim held now (a copy: the store is not used under the lock). */
static void renew_all(struct hs_events *w)
{
    struct held now[HELD_MAX];
    pthread_mutex_lock(&w->lock);
    memcpy(now, w->held, sizeof now);
    pthread_mutex_unlock(&w->lock);
    for (int i = 0; i < HELD_MAX; i++) {
        if (now[i].id == 0)
            continue;
        struct hs_work_item it = {.id = now[i].id, .claim = now[i].claim, .job_id = now[i].job_id};
        struct hs_error err = {0};
        if (w->store->work->work_renew(w->store, &it, now_ms(w), w->cfg.lease_ms, &err))
            hs_warn("events=renew job=%lld error=\"%s\"", (long long)it.job_id, err.msg);
    }
}

static void *heartbeat_main(void *arg)
{
    struct hs_events *w = arg;
    pthread_mutex_lock(&w->lock);
    while (!w->stopping) {
        struct timespec until = hs_deadline_after(CLOCK_MONOTONIC, w->cfg.lease_ms / 3);
        int rc = 0;
        while (!w->stopping && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&w->wake, &w->lock, &until);
        if (w->stopping)
            break;
        pthread_mutex_unlock(&w->lock);
        renew_all(w);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* ---- claims ---- */

static int claim(struct hs_events *w, const char *worker_id, struct hs_work_item *it,
                 int64_t *next_due, struct hs_error *err)
{
    int64_t t0 = now_ms(w);
    int rc = w->store->work->work_claim(w->store, worker_id, w->cfg.only_connection, t0,
                                        w->cfg.lease_ms, it, next_due, err);
    if (rc)
        return rc;
    /* From the newest trigger (or the due time, for a later one) to this claim. */
    int64_t since = it->trigger_ms > it->not_before_ms ? it->trigger_ms : it->not_before_ms;
    hs_info("queue=claim conn=%s job=%lld reason=%s priority=%d attempt=%lld waited_ms=%lld",
            it->connection_key, (long long)it->job_id, it->reason ? it->reason : "-", it->priority,
            (long long)it->attempts + 1, (long long)(since > 0 ? t0 - since : 0));
    return HS_OK;
}

static int run_once(struct hs_events *w, const char *worker_id, bool *ran, int64_t *next_due,
                    struct hs_error *err)
{
    *ran = false;
    struct hs_work_item it = {0};
    int rc = claim(w, worker_id, &it, next_due, err);
    if (rc == HS_ERR_NOT_FOUND)
        return HS_OK;
    if (rc)
        return rc;
    *ran = true;
    count(w, &w->stats.claimed, 1);
    count(w, &w->stats.running, 1);
    hold(w, &it, true);
    struct run r = {.w = w, .it = &it, .told = true};
    tell(&r); /* the claim turned the job's queued syncs running */
    hs_client_set_thread_priority(it.priority >= HS_WORK_PRIO_INTERACTIVE ? HS_PRIO_INTERACTIVE
                                                                          : HS_PRIO_BACKGROUND);
    struct hs_error perr = {0};
    bool job_failed = false;
    int prc = run_item(&r, &job_failed, &perr);
    hs_client_set_thread_priority(HS_PRIO_BACKGROUND);
    if (prc == HS_ERR_CONFLICT && w->store->work->work_fence(w->store, &it, now_ms(w), NULL)) {
        /* The claim lapsed: whoever holds the item now finishes it. */
        hs_warn("events=fenced conn=%s job=%lld error=\"%s\"", it.connection_key,
                (long long)it.job_id, perr.msg);
        count(w, &w->stats.fenced, 1);
    } else {
        rc = finish(&r, prc, job_failed, &perr, err);
    }
    hold(w, &it, false);
    count(w, &w->stats.running, -1);
    hs_work_item_clear(&it);
    return rc;
}

int hs_events_run_once(struct hs_events *w, const char *worker_id, bool *ran, struct hs_error *err)
{
    int64_t next_due = 0;
    return run_once(w, worker_id, ran, &next_due, err);
}

/* ---- threads ---- */

struct thread_arg {
    struct hs_events *w;
    int index;
};

/* Waits for a wake, the next due item (unix ms, 0: none known) or idle_ms, whichever first. */
static void idle_wait(struct hs_events *w, int64_t seen, int64_t next_due)
{
    int64_t wait = w->cfg.idle_ms;
    if (next_due > 0) {
        int64_t until_due = next_due - now_ms(w);
        if (until_due < wait)
            wait = until_due > 0 ? until_due : 0;
    }
    pthread_mutex_lock(&w->lock);
    struct timespec until = hs_deadline_after(CLOCK_MONOTONIC, wait);
    int wrc = 0;
    while (!w->stopping && !w->draining && w->wakes == seen && wrc != ETIMEDOUT)
        wrc = pthread_cond_timedwait(&w->wake, &w->lock, &until);
    pthread_mutex_unlock(&w->lock);
}

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
        bool stop = w->stopping || w->draining;
        int64_t seen = w->wakes;
        pthread_mutex_unlock(&w->lock);
        if (stop)
            break;
        bool ran = false;
        int64_t next_due = 0;
        struct hs_error err = {0};
        int rc = run_once(w, id, &ran, &next_due, &err);
        if (rc)
            hs_warn("events=error worker=%s error=\"%s\"", id, err.msg);
        if (ran && rc == HS_OK)
            continue;
        idle_wait(w, seen, rc ? 0 : next_due);
    }
    return NULL;
}

/* Wakes the threads when another process commits work (store work_wait). */
static void *listener_main(void *arg)
{
    struct hs_events *w = arg;
    bool failing = false;
    for (;;) {
        pthread_mutex_lock(&w->lock);
        bool stop = w->stopping;
        pthread_mutex_unlock(&w->lock);
        if (stop)
            break;
        bool woken = false;
        struct hs_error err = {0};
        int rc = w->store->work->work_wait(w->store, w->stop_pipe[0], LISTEN_WAIT_MS, &woken, &err);
        if (rc) {
            if (!failing) /* once per outage, not once per retry */
                hs_warn("events=listen error=\"%s\" msg=\"polling every %lld ms until it is back\"",
                        err.msg, (long long)w->cfg.idle_ms);
            failing = true;
            hs_work_wait_idle(w->stop_pipe[0], LISTEN_RETRY_MS);
            continue;
        }
        if (failing)
            hs_info("events=listen msg=\"listening again\"");
        failing = false;
        if (woken)
            hs_events_wake(w);
    }
    return NULL;
}

int hs_events_new(const struct hs_events_config *cfg, struct hs_store *store,
                  struct hs_client_provider clients, struct hs_outbox *outbox,
                  const struct hs_clock *clock, struct hs_events **out, struct hs_error *err)
{
    if (!cfg || !cfg->data_dir || !*cfg->data_dir || !store)
        return hs_fail(err, HS_ERR_INVALID, "the work queue needs a data directory and a store");
    struct hs_events_config c = *cfg;
    if (c.threads <= 0)
        c.threads = 2;
    if (c.threads > THREADS_MAX)
        return hs_fail(err, HS_ERR_INVALID, "at most %d work queue threads", THREADS_MAX);
    if (c.lease_ms <= 0)
        c.lease_ms = 30000;
    if (c.idle_ms <= 0)
        c.idle_ms = 250;
    if (c.retry_base_ms <= 0)
        c.retry_base_ms = 5000;
    if (c.retry_max_ms <= 0)
        c.retry_max_ms = 600000;
    if (c.payload_max_age_ms <= 0)
        c.payload_max_age_ms = 300000;
    struct hs_events *w = hs_calloc(1, sizeof *w);
    w->cfg = c;
    w->data_dir = hs_strdup(c.data_dir);
    w->cfg.data_dir = w->data_dir;
    w->artifacts = c.artifacts ? hs_strdup(c.artifacts) : NULL;
    w->cfg.artifacts = w->artifacts;
    w->store = store;
    w->clients = clients;
    w->outbox = outbox;
    w->clock = clock ? clock : hs_clock_system();
    if (gethostname(w->host, sizeof w->host - 1) != 0)
        hs_strlcpy(w->host, "host", sizeof w->host);
    w->host[sizeof w->host - 1] = '\0';
    if (pipe2(w->stop_pipe, O_CLOEXEC) != 0) {
        free(w->data_dir);
        free(w);
        return hs_fail(err, HS_ERR_IO, "cannot make the work queue's stop pipe");
    }
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
    if (!w->has_heartbeat) {
        if (pthread_create(&w->heartbeat, NULL, heartbeat_main, w) != 0)
            return hs_fail(err, HS_ERR_INTERNAL, "cannot start the lease heartbeat");
        w->has_heartbeat = true;
    }
    if (!w->has_listener) {
        if (pthread_create(&w->listener, NULL, listener_main, w) != 0)
            return hs_fail(err, HS_ERR_INTERNAL, "cannot start the work queue's listener");
        w->has_listener = true;
    }
    for (int i = w->n_threads; i < w->cfg.threads; i++) {
        struct thread_arg *ta = hs_calloc(1, sizeof *ta);
        ta->w = w;
        ta->index = i;
        if (pthread_create(&w->threads[i], NULL, thread_main, ta) != 0) {
            free(ta);
            return hs_fail(err, HS_ERR_INTERNAL, "cannot start a work queue thread");
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

void hs_events_drain(struct hs_events *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->draining = true;
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

int64_t hs_events_running(struct hs_events *w)
{
    if (!w)
        return 0;
    pthread_mutex_lock(&w->lock);
    int64_t n = w->stats.running;
    pthread_mutex_unlock(&w->lock);
    return n;
}

int64_t hs_events_hand_back(struct hs_events *w)
{
    if (!w)
        return 0;
    struct held now[HELD_MAX];
    pthread_mutex_lock(&w->lock);
    memcpy(now, w->held, sizeof now);
    pthread_mutex_unlock(&w->lock);
    int64_t n = 0;
    for (int i = 0; i < HELD_MAX; i++) {
        if (now[i].id == 0)
            continue;
        struct hs_work_item it = {.id = now[i].id, .claim = now[i].claim, .job_id = now[i].job_id};
        struct hs_error err = {0};
        if (w->store->work->work_release(w->store, &it, now_ms(w), &err) == HS_OK) {
            hs_info("events=handed_back job=%lld", (long long)it.job_id);
            hold(w, &it, false); /* the heartbeat renews it no more */
            n++;
        } else {
            hs_warn("events=hand_back job=%lld error=\"%s\"", (long long)it.job_id, err.msg);
        }
    }
    return n;
}

void hs_events_free(struct hs_events *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->lock);
    char byte = 1;
    while (write(w->stop_pipe[1], &byte, 1) < 0 && errno == EINTR)
        ;
    for (int i = 0; i < w->n_threads; i++)
        pthread_join(w->threads[i], NULL);
    if (w->has_heartbeat)
        pthread_join(w->heartbeat, NULL);
    if (w->has_listener)
        pthread_join(w->listener, NULL);
    close(w->stop_pipe[0]);
    close(w->stop_pipe[1]);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    free(w->data_dir);
    free(w->artifacts);
    free(w);
}

void hs_events_get_stats(struct hs_events *w, struct hs_events_stats *out)
{
    pthread_mutex_lock(&w->lock);
    *out = w->stats;
    pthread_mutex_unlock(&w->lock);
}
