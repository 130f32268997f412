/* syncq.c: the syncs a person watches (syncq.h). The state lives in the store (syncs,
 * sync_models); this file turns it into docs/API.md's object and keeps the local change counter
 * and listener under one small mutex. */
#include "worker/syncq.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "store/records.h"
#include "store/work.h"

struct hs_syncq {
    struct hs_syncq_config cfg;
    struct hs_store *store;
    const struct hs_clock *clock;
    pthread_mutex_t lock;
    int64_t counter;       /* ids made here */
    int64_t local_changes; /* hs_syncq_progress_written calls */
    void (*listener)(void *ctx);
    void *listener_ctx;
};

int hs_syncq_new(const struct hs_syncq_config *cfg, struct hs_store *store,
                 const struct hs_clock *clock, struct hs_syncq **out, struct hs_error *err)
{
    if (!store)
        return hs_fail(err, HS_ERR_INVALID, "the sync queue needs a store");
    struct hs_syncq *q = hs_calloc(1, sizeof *q);
    if (cfg)
        q->cfg = *cfg;
    if (q->cfg.keep_done_ms <= 0)
        q->cfg.keep_done_ms = 3600000;
    q->store = store;
    q->clock = clock ? clock : hs_clock_system();
    pthread_mutex_init(&q->lock, NULL);
    *out = q;
    return HS_OK;
}

void hs_syncq_free(struct hs_syncq *q)
{
    if (!q)
        return;
    pthread_mutex_destroy(&q->lock);
    free(q);
}

static bool contains(const int64_t *v, size_t n, int64_t x)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == x)
            return true;
    return false;
}

static void new_id(struct hs_syncq *q, char out[40])
{
    unsigned char rnd[8];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        /* No entropy source: the time and the counter still make the id unlikely to repeat. */
        memset(rnd, 0, sizeof rnd);
    }
    char hex[17];
    hs_hex(rnd, sizeof rnd, hex);
    pthread_mutex_lock(&q->lock);
    int64_t n = ++q->counter;
    pthread_mutex_unlock(&q->lock);
    snprintf(out, 40, "s%lld-%s", (long long)n, hex);
}

/* The selection (model_ids selected, when_ready pending), the sync and the job's work item, in
 * the open transaction. */
static int store_sync(struct hs_syncq *q, const struct hs_sync_row *row, const char *job_json,
                      int64_t now, struct hs_error *err)
{
    struct hs_store *st = q->store;
    int rc = HS_OK;
    for (size_t i = 0; rc == HS_OK && i < row->n_models; i++) {
        bool ready = row->models[i].when_ready;
        struct hs_selection sel = {.job_id = row->job_id,
                                   .model_id = row->models[i].model_id,
                                   .status = ready ? HS_SEL_PENDING : HS_SEL_SELECTED,
                                   .reason = ready ? (char *)"sync when ready" : NULL,
                                   .connection_key = row->connection_key};
        rc = st->records->selection_put(st, &sel, err);
    }
    if (rc == HS_OK)
        rc = st->work->sync_create(st, row, now, err);
    if (rc == HS_OK) {
        struct hs_work_trigger t = {.connection_key = row->connection_key,
                                    .job_id = row->job_id,
                                    .reason = "api",
                                    .priority = HS_WORK_PRIO_INTERACTIVE,
                                    .now_ms = now,
                                    .due_ms = now,
                                    .now = true,
                                    .payload = job_json};
        rc = st->work->work_schedule(st, &t, err);
    }
    return rc;
}

int hs_syncq_submit(struct hs_syncq *q, const char *connection_key, int64_t job_id,
                    const int64_t *model_ids, size_t n_models, const int64_t *when_ready,
                    size_t n_when_ready, const char *job_json, char id_out[40],
                    struct hs_error *err)
{
    if (job_id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "job_id must be a Hover job id");
    if (n_models + n_when_ready == 0)
        return hs_fail(err, HS_ERR_INVALID, "no model to sync: give model_ids or when_ready");
    if (n_models + n_when_ready > 1000)
        return hs_fail(err, HS_ERR_INVALID, "at most 1000 models in one sync");
    int64_t *ids = hs_calloc(n_models + n_when_ready, sizeof *ids);
    struct hs_sync_model_row *models = hs_calloc(n_models + n_when_ready, sizeof *models);
    size_t n = 0;
    for (size_t i = 0; i < n_models + n_when_ready; i++) {
        int64_t id = i < n_models ? model_ids[i] : when_ready[i - n_models];
        if (id <= 0) {
            free(ids);
            free(models);
            return hs_fail(err, HS_ERR_INVALID, "model ids must be Hover model ids, not %lld",
                           (long long)id);
        }
        /* Asked both ways: now wins, the engine keeps it pending if need be. */
        if (contains(ids, n, id))
            continue;
        ids[n] = id;
        models[n++] = (struct hs_sync_model_row){.model_id = id, .when_ready = i >= n_models};
    }
    char id[40];
    new_id(q, id);
    struct hs_sync_row row = {
        .id = id,
        .connection_key = (char *)(connection_key && *connection_key ? connection_key : "default"),
        .job_id = job_id,
        .models = models,
        .n_models = n};
    int64_t now = q->clock->wall_ms(q->clock);
    struct hs_store *st = q->store;
    int rc = st->ops->begin(st, err);
    if (rc == HS_OK) {
        rc = store_sync(q, &row, job_json, now, err);
        if (rc)
            st->ops->rollback(st);
        else
            rc = st->ops->commit(st, err);
    }
    if (rc == HS_OK) {
        hs_strlcpy(id_out, id, 40);
        hs_info("syncq=queued sync=%s job=%lld models=%zu conn=%s", id, (long long)job_id, n,
                row.connection_key);
    }
    free(ids);
    free(models);
    return rc;
}

/* ---- the state as JSON ---- */

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

static json_t *model_json(const struct hs_sync_model_row *m)
{
    json_t *mo = json_object();
    json_object_set_new(mo, "id", json_integer(m->model_id));
    json_object_set_new(mo, "name", jstr(m->name));
    json_object_set_new(mo, "result", jstr(m->result));
    json_object_set_new(mo, "message", jstr(m->message));
    json_object_set_new(mo, "artifacts_done", json_integer(m->artifacts_done));
    json_object_set_new(mo, "artifacts_total", json_integer(m->artifacts_total));
    json_object_set_new(mo, "when_ready", json_boolean(m->when_ready));
    json_object_set_new(mo, "records", links(m->pdf_sha256, m->json_sha256));
    return mo;
}

static json_t *state_json(const struct hs_sync_row *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(s->id));
    json_object_set_new(o, "job_id", json_integer(s->job_id));
    json_object_set_new(o, "connection", jstr(s->connection_key));
    json_object_set_new(o, "status", jstr(s->status));
    json_object_set_new(o, "result", jstr(s->result));
    json_object_set_new(o, "version", json_integer(s->version));
    if (hs_streq(s->status, "failed")) {
        json_t *e = json_object();
        json_object_set_new(e, "code", jstr(s->error_code));
        json_object_set_new(e, "message", jstr(s->error_message));
        json_object_set_new(o, "error", e);
    }
    json_t *models = json_array(), *records = json_object(), *by_model = json_object();
    bool first = true;
    for (size_t i = 0; i < s->n_models; i++) {
        const struct hs_sync_model_row *m = &s->models[i];
        json_array_append_new(models, model_json(m));
        if (hs_streq(m->result, "synced") && (m->pdf_sha256 || m->json_sha256)) {
            char key[24];
            snprintf(key, sizeof key, "%lld", (long long)m->model_id);
            json_object_set_new(by_model, key, links(m->pdf_sha256, m->json_sha256));
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

/* Finished more than keep_done_ms ago: gone, whether or not the clean-up has run yet. */
static bool expired(const struct hs_syncq *q, int64_t finished_ms)
{
    return finished_ms > 0 && q->clock->wall_ms(q->clock) - finished_ms > q->cfg.keep_done_ms;
}

int hs_syncq_get(struct hs_syncq *q, const char *id, json_t **out, int64_t *version,
                 struct hs_error *err)
{
    struct hs_sync_row row = {0};
    int rc = q->store->work->sync_get(q->store, id, &row, err);
    if (rc == HS_OK && expired(q, row.finished_ms))
        rc = hs_fail(err, HS_ERR_NOT_FOUND, "no sync %s (finished too long ago)", id);
    if (rc == HS_OK) {
        *out = state_json(&row);
        if (version)
            *version = row.version;
    }
    hs_sync_row_clear(&row);
    return rc;
}

int hs_syncq_version(struct hs_syncq *q, const char *id, int64_t *version, struct hs_error *err)
{
    return q->store->work->sync_version(q->store, id, version, err);
}

void hs_syncq_progress_written(void *ctx)
{
    struct hs_syncq *q = ctx;
    if (!q)
        return;
    /* The listener is called under the lock, so that once hs_syncq_set_listener(NULL) returns
     * no call is under way. */
    pthread_mutex_lock(&q->lock);
    q->local_changes++;
    if (q->listener)
        q->listener(q->listener_ctx);
    pthread_mutex_unlock(&q->lock);
}

int64_t hs_syncq_local_changes(struct hs_syncq *q)
{
    pthread_mutex_lock(&q->lock);
    int64_t n = q->local_changes;
    pthread_mutex_unlock(&q->lock);
    return n;
}

void hs_syncq_set_listener(struct hs_syncq *q, void (*fn)(void *ctx), void *ctx)
{
    pthread_mutex_lock(&q->lock);
    q->listener = fn;
    q->listener_ctx = ctx;
    pthread_mutex_unlock(&q->lock);
}

int hs_syncq_get_stats(struct hs_syncq *q, struct hs_syncq_stats *out, struct hs_error *err)
{
    memset(out, 0, sizeof *out);
    return q->store->work->syncs_count(q->store, &out->queued, &out->running, err);
}
