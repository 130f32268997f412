/* syncq.c: the service's sync queue (syncq.h).
 *
 * A submitted sync is first a set of selections in the store (durable: a crash or a shutdown
 * after the id was returned loses nothing, the pending pass picks them up), then an entry of an
 * in-memory FIFO that `workers` threads drain with the sync engine. Each sync has a state that
 * the engine's progress hook updates (model started, artifact stored, model finished); every
 * change bumps its version and wakes the sync's waiters (GET /api/syncs/{id}/events).
 *
 * One mutex (q->lock) guards the queue, every sync state and the stats; it is never held across
 * the store, Hover or the engine. A sync state is freed when it has expired (finished more than
 * keep_done_ms ago) and no waiter holds a reference.
 *
 * The pending pass (hs_syncq_run_pending): at most one at a time, one hs_sync_pending per
 * connection with open selections, jobs being synced by the queue left out. Its results update
 * the syncs still readable, so a "sync when ready" model turns synced in the sync the user
 * watches. The timer that runs it waits on a condition variable in real time (the injected
 * clock dates the syncs; tests run passes by calling hs_syncq_run_pending). */
#include "worker/syncq.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "store/records.h"
#include "sync/engine.h"

#define WORKERS_MAX 64

enum sync_status { ST_QUEUED, ST_RUNNING, ST_DONE, ST_FAILED };
static const char *const status_names[] = {"queued", "running", "done", "failed"};

struct model_state {
    int64_t id;
    char *name;
    const char *result; /* hs_model_result_name(), NULL until finished */
    char *message;
    int64_t done, total;
    bool when_ready;
    char pdf[65], json[65]; /* sha256 of the stored PDF and summarized measurements, or "" */
};

struct sync {
    char id[40];
    int64_t job_id;
    char *conn;
    int64_t *model_ids; /* model_ids then when_ready, without duplicates */
    size_t n_model_ids;
    enum sync_status status;
    const char *result; /* "synced", "partial", "failed" or NULL */
    char *error_code, *error_msg;
    struct model_state *models;
    size_t n_models;
    int64_t version;
    int64_t finished_at; /* clock mono ms */
    int refs;            /* waiters in hs_syncq_wait */
    bool expired;        /* no longer readable; stays in q->syncs while refs > 0 */
    pthread_cond_t changed;
    struct sync *next; /* the FIFO */
};

struct hs_syncq {
    struct hs_syncq_config cfg;
    char *data_dir;
    struct hs_store *store;
    struct hs_client_provider clients;
    const struct hs_clock *clock;

    pthread_mutex_t lock;
    pthread_cond_t work;       /* the FIFO got an entry, or stopping */
    pthread_cond_t timer_wake; /* stopping */
    pthread_cond_t released;   /* a waiter let go of a sync */
    struct sync *head, *tail;
    struct sync **syncs; /* readable ones, and expired ones still waited on */
    size_t n_syncs, cap_syncs;
    bool stopping, pending_running;
    int64_t counter;
    struct hs_syncq_stats stats;

    pthread_t workers[WORKERS_MAX];
    int n_workers;
    pthread_t timer;
    bool has_timer;
};

/* ---- sync states (caller holds q->lock) ---- */

static void sync_free(struct sync *s)
{
    free(s->conn);
    free(s->model_ids);
    free(s->error_code);
    free(s->error_msg);
    for (size_t i = 0; i < s->n_models; i++) {
        free(s->models[i].name);
        free(s->models[i].message);
    }
    free(s->models);
    pthread_cond_destroy(&s->changed);
    free(s);
}

static void touch(struct sync *s)
{
    s->version++;
    pthread_cond_broadcast(&s->changed);
}

static struct sync *find(struct hs_syncq *q, const char *id)
{
    for (size_t i = 0; id && i < q->n_syncs; i++)
        if (!q->syncs[i]->expired && strcmp(q->syncs[i]->id, id) == 0)
            return q->syncs[i];
    return NULL;
}

static struct model_state *model_of(struct sync *s, int64_t model_id)
{
    for (size_t i = 0; i < s->n_models; i++)
        if (s->models[i].id == model_id)
            return &s->models[i];
    return NULL;
}

static bool finished(const struct sync *s)
{
    return s->status == ST_DONE || s->status == ST_FAILED;
}

/* Drops the syncs finished more than keep_done_ms ago: freed now, or hidden until their last
 * waiter lets go (it frees them then; hs_syncq_free can still wake it meanwhile). */
static void expire(struct hs_syncq *q)
{
    int64_t now = q->clock->mono_ms(q->clock);
    for (size_t i = 0; i < q->n_syncs;) {
        struct sync *s = q->syncs[i];
        if (finished(s) && now - s->finished_at > q->cfg.keep_done_ms)
            s->expired = true;
        if (s->expired && s->refs == 0) {
            q->syncs[i] = q->syncs[--q->n_syncs];
            sync_free(s);
        } else {
            i++;
        }
    }
}

/* The job has a sync queued or running: the pending pass leaves it to the queue. */
static bool job_busy(struct hs_syncq *q, int64_t job_id)
{
    for (size_t i = 0; i < q->n_syncs; i++)
        if (q->syncs[i]->job_id == job_id && !finished(q->syncs[i]))
            return true; /* (a sync expires only once finished) */
    return false;
}

/* The sync's overall result, by the engine's rule: synced when every model is, failed when
 * none got anywhere, partial otherwise. */
static const char *overall(const struct sync *s)
{
    size_t synced = 0, bad = 0;
    for (size_t i = 0; i < s->n_models; i++) {
        const char *r = s->models[i].result;
        synced += hs_streq(r, "synced");
        bad += hs_streq(r, "failed_upstream") || hs_streq(r, "error") || !r;
    }
    if (s->n_models > 0 && synced == s->n_models)
        return "synced";
    if (bad == s->n_models)
        return "failed";
    return "partial";
}

/* The links a CRM follows: the PDF and the summarized measurements JSON of a synced model. */
static void note_artifact(struct model_state *m, const char *kind, const char *sha)
{
    if (!kind || !sha || !*sha)
        return;
    if (strcmp(kind, "measurements.pdf") == 0)
        hs_strlcpy(m->pdf, sha, sizeof m->pdf);
    else if (strcmp(kind, "measurements.json") == 0 || strstr(kind, "summarized"))
        hs_strlcpy(m->json, sha, sizeof m->json);
}

static void set_message(struct model_state *m, const char *msg)
{
    free(m->message);
    m->message = hs_strdup(msg);
}

/* A model's outcome from an engine report (the sync's own run, or a pending pass). */
static void apply_model_report(struct model_state *m, const struct hs_sync_model *r)
{
    if (r->name && !m->name)
        m->name = hs_strdup(r->name);
    m->result = hs_model_result_name(r->result);
    set_message(m, r->message);
    m->done = (int64_t)r->n_artifacts;
    if (m->total < m->done || r->result == HS_RESULT_SYNCED)
        m->total = m->done;
    for (size_t k = 0; k < r->n_artifacts; k++)
        note_artifact(m, r->artifacts[k].kind, r->artifacts[k].sha256);
}

/* ---- the state as JSON (caller holds q->lock) ---- */

static json_t *jstr(const char *s)
{
    json_t *v = s ? json_string(s) : NULL;
    return v ? v : json_null();
}

static json_t *links(const char *pdf, const char *json)
{
    json_t *o = json_object();
    char path[80];
    if (pdf && *pdf) {
        snprintf(path, sizeof path, "/files/%s", pdf);
        json_object_set_new(o, "pdf", json_string(path));
    }
    if (json && *json) {
        snprintf(path, sizeof path, "/files/%s", json);
        json_object_set_new(o, "measurements_json", json_string(path));
    }
    return o;
}

static json_t *state_json(const struct sync *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(s->id));
    json_object_set_new(o, "job_id", json_integer(s->job_id));
    json_object_set_new(o, "connection", jstr(s->conn));
    json_object_set_new(o, "status", json_string(status_names[s->status]));
    json_object_set_new(o, "result", jstr(s->result));
    json_object_set_new(o, "version", json_integer(s->version));
    if (s->status == ST_FAILED) {
        json_t *e = json_object();
        json_object_set_new(e, "code", jstr(s->error_code));
        json_object_set_new(e, "message", jstr(s->error_msg));
        json_object_set_new(o, "error", e);
    }
    json_t *models = json_array(), *records = json_object(), *by_model = json_object();
    bool first = true;
    for (size_t i = 0; i < s->n_models; i++) {
        const struct model_state *m = &s->models[i];
        json_t *mo = json_object();
        json_object_set_new(mo, "id", json_integer(m->id));
        json_object_set_new(mo, "name", jstr(m->name));
        json_object_set_new(mo, "result", jstr(m->result));
        json_object_set_new(mo, "message", jstr(m->message));
        json_object_set_new(mo, "artifacts_done", json_integer(m->done));
        json_object_set_new(mo, "artifacts_total", json_integer(m->total));
        json_object_set_new(mo, "when_ready", json_boolean(m->when_ready));
        json_object_set_new(mo, "records", links(m->pdf, m->json));
        json_array_append_new(models, mo);
        if (hs_streq(m->result, "synced") && (m->pdf[0] || m->json[0])) {
            char key[24];
            snprintf(key, sizeof key, "%lld", (long long)m->id);
            json_object_set_new(by_model, key, links(m->pdf, m->json));
            if (first) {
                json_object_update(records, json_object_get(by_model, key));
                first = false;
            }
        }
    }
    json_object_set_new(records, "by_model", by_model);
    json_object_set_new(o, "models", models);
    json_object_set_new(o, "records", records);
    return o;
}

/* ---- running a sync (worker threads) ---- */

struct progress_ctx {
    struct hs_syncq *q;
    struct sync *s;
};

static void on_progress(void *ctx, const struct hs_sync_progress *p)
{
    struct progress_ctx *pc = ctx;
    pthread_mutex_lock(&pc->q->lock);
    struct model_state *m = model_of(pc->s, p->model_id);
    if (m) {
        if (!m->name && p->model_name)
            m->name = hs_strdup(p->model_name);
        switch (p->event) {
        case HS_PROGRESS_MODEL_STARTED:
            m->total = p->artifacts_total;
            m->done = 0;
            break;
        case HS_PROGRESS_ARTIFACT:
            m->done = p->artifacts_done;
            m->total = p->artifacts_total;
            if (p->artifact)
                note_artifact(m, p->artifact->kind, p->artifact->sha256);
            break;
        case HS_PROGRESS_MODEL_FINISHED:
            if (p->model)
                apply_model_report(m, p->model);
            break;
        }
        touch(pc->s);
    }
    pthread_mutex_unlock(&pc->q->lock);
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

/* The CRM notification of a sync, if it changed something (notify/outbox.h); a failure to
 * queue it is logged: the records feed still has the change. */
static void notify(struct hs_syncq *q, const char *conn, const struct hs_sync_report *r)
{
    struct hs_error err = {0};
    if (q->cfg.outbox && hs_outbox_after_sync(q->cfg.outbox, conn, r->job_id, r, NULL, &err))
        hs_warn("syncq=notify job=%lld error=\"%s\"", (long long)r->job_id, err.msg);
}

static void run_sync(struct hs_syncq *q, struct sync *s)
{
    /* s->job_id, conn and model_ids never change after submit: read without the lock. */
    struct hs_error err = {0};
    struct hs_sync_report *report = NULL;
    struct hs_client *client = NULL;
    int rc = q->clients.acquire ? q->clients.acquire(q->clients.ctx, s->conn, &client, &err)
                                : hs_fail(&err, HS_ERR_NO_CREDENTIALS, "no Hover connection");
    if (rc == HS_OK) {
        struct progress_ctx pc = {q, s};
        struct hs_sync_engine e = {.client = client,
                                   .store = q->store,
                                   .data_dir = q->data_dir,
                                   .connection_key = s->conn,
                                   .on_progress = on_progress,
                                   .progress_ctx = &pc};
        struct hs_sync_request rq = {.job_id = s->job_id,
                                     .model_ids = s->model_ids,
                                     .n_model_ids = s->n_model_ids,
                                     .trigger = "api"};
        rc = hs_sync_job(&e, &rq, &report, &err);
        q->clients.release(q->clients.ctx, client);
    }
    if (rc == HS_OK)
        notify(q, s->conn, report);

    pthread_mutex_lock(&q->lock);
    if (rc == HS_OK) {
        for (size_t i = 0; i < report->n_models; i++) {
            struct model_state *m = model_of(s, report->models[i].id);
            if (m)
                apply_model_report(m, &report->models[i]);
        }
        s->status = ST_DONE;
        s->result = overall(s);
        q->stats.done++;
    } else {
        for (size_t i = 0; i < s->n_models; i++)
            if (!s->models[i].result)
                set_message(&s->models[i], err.msg[0] ? err.msg : hs_err_name(rc));
        s->status = ST_FAILED;
        s->result = "failed";
        s->error_code = hs_strdup(failure_code(rc));
        s->error_msg = hs_strdup(err.msg[0] ? err.msg : hs_err_name(rc));
        q->stats.failed++;
    }
    s->finished_at = q->clock->mono_ms(q->clock);
    q->stats.running--;
    touch(s);
    pthread_mutex_unlock(&q->lock);
    hs_info("syncq=done sync=%s job=%lld status=%s result=%s", s->id, (long long)s->job_id,
            status_names[s->status], s->result ? s->result : "-");
    hs_sync_report_free(report);
}

static void *worker_main(void *arg)
{
    struct hs_syncq *q = arg;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (!q->stopping && !q->head)
            pthread_cond_wait(&q->work, &q->lock);
        if (q->stopping)
            break; /* queued syncs stay as selections in the store */
        struct sync *s = q->head;
        q->head = s->next;
        if (!q->head)
            q->tail = NULL;
        s->next = NULL;
        s->status = ST_RUNNING;
        q->stats.queued--;
        q->stats.running++;
        touch(s);
        pthread_mutex_unlock(&q->lock);
        run_sync(q, s);
        pthread_mutex_lock(&q->lock);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

/* ---- the pending pass ---- */

struct pending_filter {
    struct hs_syncq *q;
    const char *conn;
};

static const char *conn_of(const struct hs_selection *sel)
{
    return sel->connection_key && *sel->connection_key ? sel->connection_key : "default";
}

static bool pending_filter(void *ctx, const struct hs_selection *sel)
{
    struct pending_filter *f = ctx;
    if (strcmp(conn_of(sel), f->conn) != 0)
        return false;
    pthread_mutex_lock(&f->q->lock);
    bool busy = job_busy(f->q, sel->job_id);
    pthread_mutex_unlock(&f->q->lock);
    return !busy;
}

/* A pending pass's results, into the syncs that still show those models. */
static void publish_pending(struct hs_syncq *q, struct hs_sync_report **reports, size_t n)
{
    pthread_mutex_lock(&q->lock);
    for (size_t i = 0; i < q->n_syncs; i++) {
        struct sync *s = q->syncs[i];
        if (!finished(s) || s->expired)
            continue;
        bool changed = false;
        for (size_t r = 0; r < n; r++) {
            if (reports[r]->job_id != s->job_id)
                continue;
            for (size_t k = 0; k < reports[r]->n_models; k++) {
                struct model_state *m = model_of(s, reports[r]->models[k].id);
                if (m && !hs_streq(m->result, "synced")) {
                    apply_model_report(m, &reports[r]->models[k]);
                    changed = true;
                }
            }
        }
        if (changed) {
            if (s->status == ST_DONE)
                s->result = overall(s);
            touch(s);
        }
    }
    pthread_mutex_unlock(&q->lock);
}

int hs_syncq_run_pending(struct hs_syncq *q, size_t *n_jobs, struct hs_error *err)
{
    pthread_mutex_lock(&q->lock);
    if (q->pending_running) {
        pthread_mutex_unlock(&q->lock);
        return hs_fail(err, HS_ERR_BUSY, "a pending pass is running");
    }
    q->pending_running = true;
    pthread_mutex_unlock(&q->lock);

    struct hs_selection *sels = NULL;
    size_t ns = 0, synced_jobs = 0;
    int rc = q->store->records->selections_open(q->store, &sels, &ns, err);
    /* The connections that have open selections, each once. */
    const char **conns = hs_calloc(ns + 1, sizeof *conns);
    size_t nc = 0;
    for (size_t i = 0; rc == HS_OK && i < ns; i++) {
        bool seen = false;
        for (size_t k = 0; k < nc && !seen; k++)
            seen = strcmp(conns[k], conn_of(&sels[i])) == 0;
        if (!seen)
            conns[nc++] = conn_of(&sels[i]);
    }
    for (size_t c = 0; c < nc; c++) {
        struct hs_error cerr = {0};
        struct hs_client *client = NULL;
        int crc = q->clients.acquire ? q->clients.acquire(q->clients.ctx, conns[c], &client, &cerr)
                                     : hs_fail(&cerr, HS_ERR_NO_CREDENTIALS, "no Hover connection");
        if (crc) {
            hs_warn("syncq=pending conn=%s error=\"%s\"", conns[c], cerr.msg);
            continue; /* another connection may still work; this one is retried next pass */
        }
        struct pending_filter f = {q, conns[c]};
        struct hs_sync_engine e = {.client = client,
                                   .store = q->store,
                                   .data_dir = q->data_dir,
                                   .connection_key = conns[c],
                                   .pending_filter = pending_filter,
                                   .pending_filter_ctx = &f};
        struct hs_sync_report **reports = NULL;
        size_t nr = 0;
        crc = hs_sync_pending(&e, &reports, &nr, &cerr);
        q->clients.release(q->clients.ctx, client);
        if (crc)
            hs_warn("syncq=pending conn=%s error=\"%s\"", conns[c], cerr.msg);
        publish_pending(q, reports, nr);
        for (size_t r = 0; r < nr; r++)
            notify(q, conns[c], reports[r]);
        synced_jobs += nr;
        for (size_t r = 0; r < nr; r++)
            hs_sync_report_free(reports[r]);
        free(reports);
    }
    free(conns);
    hs_selections_free(sels, ns);

    pthread_mutex_lock(&q->lock);
    q->pending_running = false;
    q->stats.pending_runs++;
    pthread_mutex_unlock(&q->lock);
    if (rc == HS_OK && n_jobs)
        *n_jobs = synced_jobs;
    return rc;
}

static void *timer_main(void *arg)
{
    struct hs_syncq *q = arg;
    /* The pending pass is background work for the request budget (hover/limiter.h). */
    hs_client_set_thread_priority(HS_PRIO_BACKGROUND);
    pthread_mutex_lock(&q->lock);
    while (!q->stopping) {
        struct timespec until = hs_deadline_after(CLOCK_MONOTONIC, q->cfg.pending_interval_ms);
        int rc = 0;
        while (!q->stopping && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&q->timer_wake, &q->lock, &until);
        if (q->stopping)
            break;
        expire(q);
        pthread_mutex_unlock(&q->lock);
        struct hs_error err = {0};
        size_t n = 0;
        if (hs_syncq_run_pending(q, &n, &err) && err.code != HS_ERR_BUSY)
            hs_warn("syncq=pending error=\"%s\"", err.msg);
        else if (n)
            hs_info("syncq=pending jobs=%zu", n);
        pthread_mutex_lock(&q->lock);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

/* ---- the interface ---- */

int hs_syncq_new(const struct hs_syncq_config *cfg, struct hs_store *store,
                 struct hs_client_provider clients, const struct hs_clock *clock,
                 struct hs_syncq **out, struct hs_error *err)
{
    if (!cfg || !cfg->data_dir || !*cfg->data_dir || !store)
        return hs_fail(err, HS_ERR_INVALID, "the sync queue needs a data directory and a store");
    struct hs_syncq_config c = *cfg;
    if (c.workers <= 0)
        c.workers = 2;
    if (c.workers > WORKERS_MAX)
        return hs_fail(err, HS_ERR_INVALID, "at most %d sync workers", WORKERS_MAX);
    if (c.pending_interval_ms < 0)
        return hs_fail(err, HS_ERR_INVALID, "pending_interval_ms must be 0 (never) or more");
    if (c.keep_done_ms <= 0)
        c.keep_done_ms = 3600000;
    struct hs_syncq *q = hs_calloc(1, sizeof *q);
    q->cfg = c;
    q->data_dir = hs_strdup(c.data_dir);
    q->cfg.data_dir = q->data_dir;
    q->store = store;
    q->clients = clients;
    q->clock = clock ? clock : hs_clock_system();
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->work, NULL);
    pthread_cond_init(&q->released, NULL);
    hs_cond_init_monotonic(&q->timer_wake);
    for (int i = 0; i < c.workers; i++) {
        if (pthread_create(&q->workers[i], NULL, worker_main, q) != 0) {
            hs_syncq_free(q);
            return hs_fail(err, HS_ERR_INTERNAL, "cannot start a sync worker");
        }
        q->n_workers++;
    }
    if (c.pending_interval_ms > 0) {
        if (pthread_create(&q->timer, NULL, timer_main, q) != 0) {
            hs_syncq_free(q);
            return hs_fail(err, HS_ERR_INTERNAL, "cannot start the pending timer");
        }
        q->has_timer = true;
    }
    *out = q;
    return HS_OK;
}

void hs_syncq_free(struct hs_syncq *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->lock);
    q->stopping = true;
    pthread_cond_broadcast(&q->work);
    pthread_cond_broadcast(&q->timer_wake);
    for (size_t i = 0; i < q->n_syncs; i++)
        pthread_cond_broadcast(&q->syncs[i]->changed);
    pthread_mutex_unlock(&q->lock);
    for (int i = 0; i < q->n_workers; i++)
        pthread_join(q->workers[i], NULL);
    if (q->has_timer)
        pthread_join(q->timer, NULL);
    pthread_mutex_lock(&q->lock);
    for (;;) { /* waiters leave at once (stopping); wait for them to let go */
        bool held = false;
        for (size_t i = 0; i < q->n_syncs; i++)
            held |= q->syncs[i]->refs > 0;
        if (!held)
            break;
        pthread_cond_wait(&q->released, &q->lock);
    }
    for (size_t i = 0; i < q->n_syncs; i++)
        sync_free(q->syncs[i]);
    pthread_mutex_unlock(&q->lock);
    free(q->syncs);
    pthread_cond_destroy(&q->work);
    pthread_cond_destroy(&q->timer_wake);
    pthread_cond_destroy(&q->released);
    pthread_mutex_destroy(&q->lock);
    free(q->data_dir);
    free(q);
}

static bool contains(const int64_t *v, size_t n, int64_t x)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == x)
            return true;
    return false;
}

/* Stores the selection, in one transaction: model_ids selected, when_ready pending. */
static int store_selection(struct hs_syncq *q, const char *conn, int64_t job_id,
                           const int64_t *model_ids, size_t n_models, const int64_t *when_ready,
                           size_t n_when_ready, struct hs_error *err)
{
    struct hs_store *st = q->store;
    int rc = st->ops->begin(st, err);
    if (rc)
        return rc;
    for (size_t i = 0; rc == HS_OK && i < n_models + n_when_ready; i++) {
        bool now = i < n_models;
        int64_t id = now ? model_ids[i] : when_ready[i - n_models];
        if (!now && contains(model_ids, n_models, id))
            continue; /* asked both ways: now wins, the engine keeps it pending if need be */
        struct hs_selection sel = {.job_id = job_id,
                                   .model_id = id,
                                   .status = now ? HS_SEL_SELECTED : HS_SEL_PENDING,
                                   .reason = now ? NULL : (char *)"sync when ready",
                                   .connection_key = (char *)conn};
        rc = st->records->selection_put(st, &sel, err);
    }
    if (rc) {
        st->ops->rollback(st);
        return rc;
    }
    return st->ops->commit(st, err);
}

static void new_id(struct hs_syncq *q, char out[40])
{
    unsigned char rnd[8];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        /* No entropy source: the counter alone still makes the id unique in this process. */
        memset(rnd, 0, sizeof rnd);
    }
    char hex[17];
    hs_hex(rnd, sizeof rnd, hex);
    snprintf(out, 40, "s%lld-%s", (long long)q->counter, hex);
}

int hs_syncq_submit(struct hs_syncq *q, const char *connection_key, int64_t job_id,
                    const int64_t *model_ids, size_t n_models, const int64_t *when_ready,
                    size_t n_when_ready, char id_out[40], struct hs_error *err)
{
    if (job_id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "job_id must be a Hover job id");
    if (n_models + n_when_ready == 0)
        return hs_fail(err, HS_ERR_INVALID, "no model to sync: give model_ids or when_ready");
    if (n_models + n_when_ready > 1000)
        return hs_fail(err, HS_ERR_INVALID, "at most 1000 models in one sync");
    for (size_t i = 0; i < n_models + n_when_ready; i++) {
        int64_t id = i < n_models ? model_ids[i] : when_ready[i - n_models];
        if (id <= 0)
            return hs_fail(err, HS_ERR_INVALID, "model ids must be Hover model ids, not %lld",
                           (long long)id);
    }
    const char *conn = connection_key && *connection_key ? connection_key : "default";
    int rc = store_selection(q, conn, job_id, model_ids, n_models, when_ready, n_when_ready, err);
    if (rc)
        return rc;

    struct sync *s = hs_calloc(1, sizeof *s);
    s->job_id = job_id;
    s->conn = hs_strdup(conn);
    s->model_ids = hs_calloc(n_models + n_when_ready, sizeof *s->model_ids);
    s->models = hs_calloc(n_models + n_when_ready, sizeof *s->models);
    for (size_t i = 0; i < n_models + n_when_ready; i++) {
        int64_t id = i < n_models ? model_ids[i] : when_ready[i - n_models];
        if (contains(s->model_ids, s->n_model_ids, id))
            continue;
        s->model_ids[s->n_model_ids++] = id;
        struct model_state *m = &s->models[s->n_models++];
        m->id = id;
        m->when_ready = i >= n_models;
    }
    s->status = ST_QUEUED;
    s->version = 1;
    hs_cond_init_monotonic(&s->changed);

    pthread_mutex_lock(&q->lock);
    if (q->stopping) {
        pthread_mutex_unlock(&q->lock);
        sync_free(s);
        /* The selection is stored: the next start's pending pass runs it. */
        return hs_fail(err, HS_ERR_BUSY, "the sync queue is stopping");
    }
    expire(q);
    q->counter++;
    new_id(q, s->id);
    if (q->n_syncs == q->cap_syncs) {
        q->cap_syncs = q->cap_syncs ? 2 * q->cap_syncs : 16;
        q->syncs = hs_realloc(q->syncs, q->cap_syncs * sizeof *q->syncs);
    }
    q->syncs[q->n_syncs++] = s;
    if (q->tail)
        q->tail->next = s;
    else
        q->head = s;
    q->tail = s;
    q->stats.queued++;
    hs_strlcpy(id_out, s->id, 40);
    pthread_cond_signal(&q->work);
    pthread_mutex_unlock(&q->lock);
    hs_info("syncq=queued sync=%s job=%lld models=%zu conn=%s", id_out, (long long)job_id,
            s->n_models, conn);
    return HS_OK;
}

int hs_syncq_get(struct hs_syncq *q, const char *id, json_t **out, int64_t *version,
                 struct hs_error *err)
{
    pthread_mutex_lock(&q->lock);
    expire(q);
    struct sync *s = find(q, id);
    if (!s) {
        pthread_mutex_unlock(&q->lock);
        return hs_fail(err, HS_ERR_NOT_FOUND, "no sync %s", id ? id : "(null)");
    }
    json_t *o = state_json(s);
    int64_t v = s->version;
    pthread_mutex_unlock(&q->lock);
    *out = o;
    if (version)
        *version = v;
    return HS_OK;
}

int64_t hs_syncq_wait(struct hs_syncq *q, const char *id, int64_t after, int64_t timeout_ms)
{
    pthread_mutex_lock(&q->lock);
    struct sync *s = find(q, id);
    if (!s) {
        pthread_mutex_unlock(&q->lock);
        return HS_ERR_NOT_FOUND;
    }
    s->refs++;
    struct timespec until = hs_deadline_after(CLOCK_MONOTONIC, timeout_ms > 0 ? timeout_ms : 0);
    int rc = 0;
    while (s->version <= after && !q->stopping && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&s->changed, &q->lock, &until);
    int64_t v = s->version;
    s->refs--;
    if (s->refs == 0) {
        pthread_cond_broadcast(&q->released);
        if (s->expired && !q->stopping)
            expire(q); /* frees it (hs_syncq_free frees everything itself) */
    }
    pthread_mutex_unlock(&q->lock);
    return v;
}

void hs_syncq_get_stats(struct hs_syncq *q, struct hs_syncq_stats *out)
{
    pthread_mutex_lock(&q->lock);
    *out = q->stats;
    pthread_mutex_unlock(&q->lock);
}
