/* syncq.h: the syncs a person watches (POST /api/syncs and GET /api/syncs/{id}). A sync is a
 * row in the store with its models, and the job's work item at interactive priority: submit
 * stores the selection, the sync and the item in one transaction before the id is returned, so
 * a restart loses no accepted sync; whichever process runs the job's item (events.h) writes the
 * sync's progress per model into the store, so any process may serve GET /api/syncs/{id} and
 * its progress stream. This module keeps only what is live for the watchers of this process: a
 * counter the local workers bump when they write progress, and a listener (the stream watcher)
 * told at once. */
#ifndef HS_WORKER_SYNCQ_H
#define HS_WORKER_SYNCQ_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/clock.h"
#include "hoversync.h"
#include "store/store.h"

struct hs_syncq_config {
    int64_t keep_done_ms; /* finished syncs stay readable this long; default 3600000 (the
                             periodic clean-up, worker/duties.h, deletes them after) */
};

struct hs_syncq;

/* store is borrowed; clock NULL: the system's. */
int hs_syncq_new(const struct hs_syncq_config *cfg, struct hs_store *store,
                 const struct hs_clock *clock, struct hs_syncq **out, struct hs_error *err);
void hs_syncq_free(struct hs_syncq *q);

/* Stores a sync of model_ids (complete now) and when_ready (kept pending until complete) of the
 * job: the selections, the sync (queued) and the job's work item at interactive priority, in
 * one transaction, durably, before this returns; id_out gets the sync id. job_json (may be
 * NULL): the job as a Show Job just answered it, stored as the item's payload, which its pass
 * uses instead of asking Hover again while it is young (worker/events.h). The caller then wakes
 * the local workers (hs_events_wake). */
int hs_syncq_submit(struct hs_syncq *q, const char *connection_key, int64_t job_id,
                    const int64_t *model_ids, size_t n_models, const int64_t *when_ready,
                    size_t n_when_ready, const char *job_json, char id_out[40],
                    struct hs_error *err);

/* The sync's state as docs/API.md shows it (a new reference), with its version: a counter that
 * grows with every change. HS_ERR_NOT_FOUND for an unknown id (or one finished more than
 * keep_done_ms ago). The object:
 *   {"id","job_id","connection","status":"queued"|"running"|"done"|"failed",
 *    "result":null|"synced"|"partial"|"failed", "version":N,
 *    "error":{"code","message"} (status failed only: the job could not be synced at all),
 *    "models":[{"id","name","result":null|"synced"|"pending"|"failed_upstream"|"error",
 *               "message","artifacts_done","artifacts_total","when_ready":bool,
 *               "records":{"pdf":"/files/<sha>","measurements_json":"/files/<sha>"}}],
 *    "records":{"pdf","measurements_json" (of the first synced model that has them),
 *               "by_model":{"<model id>":{"pdf","measurements_json"}}}}
 * A model synced later ("sync when ready") is updated here too, while the sync is readable. */
int hs_syncq_get(struct hs_syncq *q, const char *id, json_t **out, int64_t *version,
                 struct hs_error *err);
/* The sync's version alone (a progress stream's poll); HS_ERR_NOT_FOUND as hs_syncq_get. */
int hs_syncq_version(struct hs_syncq *q, const char *id, int64_t *version, struct hs_error *err);

/* The local workers' hook (hs_events_config.on_sync_progress, ctx: the queue): they just
 * committed some sync's progress. Bumps the counter and tells the listener. */
void hs_syncq_progress_written(void *q);
/* The counter of hs_syncq_progress_written calls. */
int64_t hs_syncq_local_changes(struct hs_syncq *q);
/* The one listener (NULL: none), called by the workers' threads under the queue's lock: it must
 * not block nor call back into the queue. Once this returns, the previous listener is not
 * being called. */
void hs_syncq_set_listener(struct hs_syncq *q, void (*fn)(void *ctx), void *ctx);

/* Syncs queued and running now (in the store, whichever process runs them). */
struct hs_syncq_stats {
    int64_t queued, running;
};
int hs_syncq_get_stats(struct hs_syncq *q, struct hs_syncq_stats *out, struct hs_error *err);

#endif
