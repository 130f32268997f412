/* bulk.h: many jobs synced through the work queue by a process that waits for them
 * (`hoversync backfill --sync`). Each listed job is queued with its complete models selected
 * (whatever the connection's auto-sync policy: a person asked for every complete model) and the
 * job as listed for payload (the pass spares its Show Job while the payload is young), at bulk
 * priority, in one transaction. Any process running the work queue on the store may take the
 * items (the waiting process runs workers of its own meanwhile). A job is settled once its item
 * is done, or has failed (the queue retries it later): then each of its selected models is
 * synced, pending (not complete yet), or failed with the reason the store keeps. */
#ifndef HS_WORKER_BULK_H
#define HS_WORKER_BULK_H

#include <stdbool.h>
#include <stdint.h>

#include "core/clock.h"
#include "hoversync.h"
#include "store/store.h"

struct hs_bulk;

/* store is borrowed; clock NULL: the system's. */
int hs_bulk_new(struct hs_store *store, const struct hs_clock *clock, struct hs_bulk **out,
                struct hs_error *err);
void hs_bulk_free(struct hs_bulk *b);

/* Queues the job (see above); *queued (may be NULL) false when it has no complete model (then
 * nothing is stored). */
int hs_bulk_add(struct hs_bulk *b, const char *connection_key, const struct hs_job *job,
                bool *queued, struct hs_error *err);

/* Runs the job's item again now (a backoff after a failure does not hold), for its open
 * selections model_ids (left in error by an earlier run): they are what the job is settled on. */
int hs_bulk_retry(struct hs_bulk *b, const char *connection_key, int64_t job_id,
                  const int64_t *model_ids, size_t n, struct hs_error *err);

struct hs_bulk_counts {
    int64_t jobs, settled;           /* queued by hs_bulk_add, and settled of them */
    int64_t synced, pending, failed; /* models of the settled jobs */
};
/* Reads the store: which of the jobs settled since the last call (their models counted); *all
 * true once every job is. */
int hs_bulk_poll(struct hs_bulk *b, bool *all, struct hs_bulk_counts *out, struct hs_error *err);

/* The failures of the settled jobs, in the order they were queued: a model that ended failed
 * (model_id), or a job whose pass failed as a whole (model_id 0, why: the item's last error). */
void hs_bulk_failures(struct hs_bulk *b,
                      void (*fn)(void *ctx, int64_t job_id, int64_t model_id, const char *why),
                      void *ctx);

#endif
