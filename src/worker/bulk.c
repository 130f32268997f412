/* bulk.c: see bulk.h. The settled state is read from the store, never from this process's
 * workers: another process may have run the item. */
#include "worker/bulk.h"

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/str.h"
#include "store/records.h"
#include "store/work.h"

struct failure {
    int64_t model_id; /* 0: the job's pass as a whole */
    char *why;
};

struct entry {
    char *conn;
    int64_t job_id;
    int64_t *models; /* the complete models selected */
    size_t n_models;
    /* The item's claim counter once queued: a failed item settles the job only after a pass
     * claimed it since (the item may still hold an earlier pass's failure). */
    int64_t claim_floor;
    bool settled;
    struct failure *failed;
    size_t n_failed;
};

struct hs_bulk {
    struct hs_store *store;
    const struct hs_clock *clock;
    struct entry *v;
    size_t n, cap;
    struct hs_bulk_counts counts;
};

int hs_bulk_new(struct hs_store *store, const struct hs_clock *clock, struct hs_bulk **out,
                struct hs_error *err)
{
    if (!store)
        return hs_fail(err, HS_ERR_INVALID, "a bulk sync needs a store");
    struct hs_bulk *b = hs_calloc(1, sizeof *b);
    b->store = store;
    b->clock = clock ? clock : hs_clock_system();
    *out = b;
    return HS_OK;
}

void hs_bulk_free(struct hs_bulk *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++) {
        free(b->v[i].conn);
        free(b->v[i].models);
        for (size_t k = 0; k < b->v[i].n_failed; k++)
            free(b->v[i].failed[k].why);
        free(b->v[i].failed);
    }
    free(b->v);
    free(b);
}

/* The item's claim counter now (0 without an item). */
static int claim_floor(struct hs_bulk *b, const char *conn, int64_t job_id, int64_t *out,
                       struct hs_error *err)
{
    struct hs_work_item w = {0};
    int rc = b->store->work->work_get(b->store, conn, job_id, &w, err);
    *out = rc == HS_OK ? w.claim : 0;
    hs_work_item_clear(&w);
    return rc;
}

/* The selections and the item, in the open transaction. */
static int queue_job(struct hs_bulk *b, const char *conn, const struct hs_job *job, struct entry *e,
                     struct hs_error *err)
{
    struct hs_store *st = b->store;
    int rc = HS_OK;
    for (size_t i = 0; rc == HS_OK && i < e->n_models; i++) {
        struct hs_selection sel = {.job_id = job->id,
                                   .model_id = e->models[i],
                                   .status = HS_SEL_SELECTED,
                                   .connection_key = (char *)conn};
        rc = st->records->selection_put(st, &sel, err);
    }
    int64_t now = b->clock->wall_ms(b->clock);
    struct hs_work_trigger t = {.connection_key = conn,
                                .job_id = job->id,
                                .reason = "backfill",
                                .priority = HS_WORK_PRIO_BULK,
                                .now_ms = now,
                                .due_ms = now,
                                .payload = job->raw_json};
    if (rc == HS_OK)
        rc = st->work->work_schedule(st, &t, err);
    if (rc == HS_OK)
        rc = claim_floor(b, conn, job->id, &e->claim_floor, err);
    return rc;
}

static void remember(struct hs_bulk *b, const char *conn, struct entry *e)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 64;
        b->v = hs_realloc(b->v, b->cap * sizeof *b->v);
    }
    e->conn = hs_strdup(conn);
    b->v[b->n++] = *e;
    b->counts.jobs++;
}

int hs_bulk_add(struct hs_bulk *b, const char *connection_key, const struct hs_job *job,
                bool *queued, struct hs_error *err)
{
    struct entry e = {.job_id = job->id};
    e.models = hs_calloc(job->n_models + 1, sizeof *e.models);
    for (size_t i = 0; i < job->n_models; i++)
        if (hs_model_is_complete(&job->models[i]))
            e.models[e.n_models++] = job->models[i].id;
    if (queued)
        *queued = false;
    if (e.n_models == 0) {
        free(e.models);
        return HS_OK;
    }
    struct hs_store *st = b->store;
    int rc = st->ops->begin(st, err);
    if (rc == HS_OK) {
        rc = queue_job(b, connection_key, job, &e, err);
        if (rc)
            st->ops->rollback(st);
        else
            rc = st->ops->commit(st, err);
    }
    if (rc) {
        free(e.models);
        return rc;
    }
    remember(b, connection_key, &e);
    if (queued)
        *queued = true;
    return HS_OK;
}

int hs_bulk_retry(struct hs_bulk *b, const char *connection_key, int64_t job_id,
                  const int64_t *model_ids, size_t n, struct hs_error *err)
{
    int64_t now = b->clock->wall_ms(b->clock);
    struct hs_work_trigger t = {.connection_key = connection_key,
                                .job_id = job_id,
                                .reason = "backfill",
                                .priority = HS_WORK_PRIO_BULK,
                                .now_ms = now,
                                .due_ms = now,
                                .now = true};
    struct hs_store *st = b->store;
    struct entry e = {.job_id = job_id};
    int rc = st->ops->begin(st, err);
    if (rc == HS_OK) {
        rc = st->work->work_schedule(st, &t, err);
        if (rc == HS_OK)
            rc = claim_floor(b, connection_key, job_id, &e.claim_floor, err);
        if (rc)
            st->ops->rollback(st);
        else
            rc = st->ops->commit(st, err);
    }
    if (rc)
        return rc;
    e.models = hs_calloc(n + 1, sizeof *e.models);
    if (n)
        memcpy(e.models, model_ids, n * sizeof *model_ids);
    e.n_models = n;
    remember(b, connection_key, &e);
    return HS_OK;
}

static void add_failure(struct entry *e, int64_t model_id, const char *why)
{
    e->failed = hs_realloc(e->failed, (e->n_failed + 1) * sizeof *e->failed);
    e->failed[e->n_failed++] =
        (struct failure){.model_id = model_id, .why = hs_strdup(why ? why : "not synced")};
}

static const struct hs_model_status *status_of(const struct hs_model_status *st, size_t n,
                                               int64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (st[i].model_id == id)
            return &st[i];
    return NULL;
}

/* A settled job's models, counted; last_error: the item's, when its pass failed as a whole. */
static int tally(struct hs_bulk *b, struct entry *e, const char *last_error, struct hs_error *err)
{
    struct hs_model_status *st = NULL;
    size_t n = 0;
    int rc = b->store->records->job_models_status(b->store, e->job_id, &st, &n, err);
    if (rc)
        return rc;
    bool job_failed = false;
    for (size_t i = 0; i < e->n_models; i++) {
        const struct hs_model_status *s = status_of(st, n, e->models[i]);
        enum hs_selection_status sel = s && s->has_selection ? s->selection : HS_SEL_SELECTED;
        if (sel == HS_SEL_SYNCED) {
            b->counts.synced++;
        } else if (sel == HS_SEL_PENDING) {
            b->counts.pending++;
        } else if (sel == HS_SEL_SELECTED && last_error) {
            job_failed = true; /* the pass never got to it: one line for the job */
            b->counts.failed++;
        } else {
            add_failure(e, e->models[i], s ? s->reason : NULL);
            b->counts.failed++;
        }
    }
    if (job_failed)
        add_failure(e, 0, last_error);
    hs_model_statuses_free(st, n);
    return HS_OK;
}

int hs_bulk_poll(struct hs_bulk *b, bool *all, struct hs_bulk_counts *out, struct hs_error *err)
{
    int rc = HS_OK;
    for (size_t i = 0; rc == HS_OK && i < b->n; i++) {
        struct entry *e = &b->v[i];
        if (e->settled)
            continue;
        struct hs_work_item w = {0};
        rc = b->store->work->work_get(b->store, e->conn, e->job_id, &w, err);
        if (rc == HS_ERR_NOT_FOUND) {
            e->settled = true; /* done */
            rc = tally(b, e, NULL, err);
        } else if (rc == HS_OK && w.attempts > 0 && w.lease_until_ms == 0 &&
                   w.claim != e->claim_floor) {
            e->settled = true; /* failed; the queue retries it later */
            rc = tally(b, e, w.last_error ? w.last_error : "the pass failed", err);
        }
        if (e->settled)
            b->counts.settled++;
        hs_work_item_clear(&w);
    }
    if (out)
        *out = b->counts;
    if (all)
        *all = b->counts.settled == b->counts.jobs;
    return rc;
}

void hs_bulk_failures(struct hs_bulk *b,
                      void (*fn)(void *ctx, int64_t job_id, int64_t model_id, const char *why),
                      void *ctx)
{
    for (size_t i = 0; i < b->n; i++)
        for (size_t k = 0; k < b->v[i].n_failed; k++)
            fn(ctx, b->v[i].job_id, b->v[i].failed[k].model_id, b->v[i].failed[k].why);
}
