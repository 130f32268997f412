/* syncq.h: the service's sync queue. POST /api/syncs enqueues a sync and answers at once; worker
 * threads run it with the sync engine and publish progress per model and artifact, which
 * GET /api/syncs/{id} and its Server-Sent Events stream read. Pending selections (models chosen
 * "sync when ready") are re-run periodically, so they complete on their own. */
#ifndef HS_WORKER_SYNCQ_H
#define HS_WORKER_SYNCQ_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/clock.h"
#include "hover/pool.h"
#include "hoversync.h"
#include "notify/outbox.h"
#include "store/store.h"

struct hs_syncq_config {
    const char *data_dir;
    int workers;                 /* default 2 */
    int64_t pending_interval_ms; /* how often pending selections are retried; default 30000,
                                    0 = never */
    int64_t keep_done_ms;        /* finished syncs stay readable this long; default 3600000 */
    struct hs_outbox *outbox;    /* optional (borrowed): CRM notifications after each sync that
                                    changed something (notify/outbox.h) */
};

struct hs_syncq;

int hs_syncq_new(const struct hs_syncq_config *cfg, struct hs_store *store,
                 struct hs_client_provider clients, const struct hs_clock *clock,
                 struct hs_syncq **out, struct hs_error *err);
/* Stops the workers after the syncs they are running; queued ones stay as selections in the
 * store (a sync's selection is stored before its id is returned), so none is lost. */
void hs_syncq_free(struct hs_syncq *q);

/* Enqueues a sync of model_ids (complete now) and when_ready (kept pending until complete).
 * The selection is durably stored before this returns; id_out gets the sync id. */
int hs_syncq_submit(struct hs_syncq *q, const char *connection_key, int64_t job_id,
                    const int64_t *model_ids, size_t n_models, const int64_t *when_ready,
                    size_t n_when_ready, char id_out[40], struct hs_error *err);

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
 * A model synced later by the pending pass ("sync when ready") is updated here too, while the
 * sync is still readable. */
int hs_syncq_get(struct hs_syncq *q, const char *id, json_t **out, int64_t *version,
                 struct hs_error *err);
/* Waits until the sync's version passes `after` or timeout_ms passes; returns the current
 * version (for SSE), or HS_ERR_NOT_FOUND (negative) for an unknown id. Returns at once when the
 * queue is being freed. */
int64_t hs_syncq_wait(struct hs_syncq *q, const char *id, int64_t after, int64_t timeout_ms);

/* queued, running: now; done, failed: syncs finished since start (done: the engine ran, whatever
 * the models' results; failed: the job could not be synced); pending_runs: passes over the
 * pending selections. */
struct hs_syncq_stats {
    int64_t queued, running, done, failed, pending_runs;
};
void hs_syncq_get_stats(struct hs_syncq *q, struct hs_syncq_stats *out);

/* Extension: runs a pass over the open selections now, in the calling thread (the queue's own
 * timer calls it every pending_interval_ms): one hs_sync_pending per connection that has open
 * selections, skipping jobs the queue has queued or running. HS_ERR_BUSY when a pass is
 * already running (there is never more than one: each costs Hover requests). *n_jobs (may be
 * NULL) gets the number of jobs synced. */
int hs_syncq_run_pending(struct hs_syncq *q, size_t *n_jobs, struct hs_error *err);

#endif
