/* duties.h: the periodic duties of a process that runs the work queue (serve, worker): the
 * pending pass ("sync when ready" without polling where webhooks report the changes) and the
 * clean-up of finished syncs. Each duty is one function over the store, independent of the
 * process that calls it; the thread of each process runs a duty only under its lease in the
 * store (hs_duty_claim), so that it runs once per interval across every process of an
 * installation (serve, worker, on one machine or several).
 *
 * The pending pass: a job with open selections (models chosen "sync when ready", or left
 * selected or in error) and no work item is polled only when its connection has no healthy
 * webhook (verified, no error from Hover nor ours: store.h hs_webhook_row_healthy); there the
 * model-state-changed event schedules the job's item, and reconciliation catches what a webhook
 * missed. Each poll schedules the job's item (reason "pending"), the first a minute after the
 * job was first seen waiting, then doubling up to --pending-interval (store pending_poll).
 *
 * The retention duty (retention.h, duty "retention"): old rows deleted in batches and the
 * artifact files no row points at, once per --retention-interval. */
#ifndef HS_WORKER_DUTIES_H
#define HS_WORKER_DUTIES_H

#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"
#include "hoversync.h"
#include "store/store.h"
#include "worker/events.h"
#include "worker/retention.h"

#define HS_PENDING_FIRST_MS 60000

struct hs_duties_config {
    int64_t pending_cap_ms;   /* the longest wait between two polls of a job; 0: no pending pass */
    int64_t pending_first_ms; /* the first wait; default HS_PENDING_FIRST_MS */
    int64_t keep_done_ms;     /* finished syncs are deleted this long after; default 3600000 */
    struct hs_events *events; /* woken when the pass scheduled work (may be NULL) */
    /* The retention duty (retention.h), once per interval; 0: never. */
    int64_t retention_interval_ms;
    struct hs_retention_config retention; /* its strings borrowed for the duties' life */
};

struct hs_duties;

/* store is borrowed; clock NULL: the system's. */
int hs_duties_new(const struct hs_duties_config *cfg, struct hs_store *store,
                  const struct hs_clock *clock, struct hs_duties **out, struct hs_error *err);
/* Starts the thread: the pending pass runs every tick (a fraction of the first poll's wait,
 * between 0.2 and 10 s) and the clean-up every minute, each once across all processes (the
 * thread wakes every half tick and claims the duty's lease). */
int hs_duties_start(struct hs_duties *d, struct hs_error *err);
/* Stops the thread (after the duty it runs) and frees. Accepts NULL. */
void hs_duties_free(struct hs_duties *d);

/* Whether duty `name` is to run now: claims its lease ("duty:<name>" in store/service.h) at
 * now_ms for interval_ms and never releases it, so that the lease's end is the duty's next run,
 * whichever process makes it. false when another process ran it less than an interval ago (or
 * the store failed: logged; the duty runs at a later claim). */
bool hs_duty_claim(struct hs_store *store, const char *name, int64_t now_ms, int64_t interval_ms);

/* The pending pass, once, at now_ms: *scheduled (may be NULL) gets the jobs polled. */
int hs_duty_pending(struct hs_store *store, int64_t now_ms, int64_t first_ms, int64_t cap_ms,
                    size_t *scheduled, struct hs_error *err);
/* Deletes the syncs finished more than keep_ms before now_ms. */
int hs_duty_expire_syncs(struct hs_store *store, int64_t now_ms, int64_t keep_ms, int64_t *removed,
                         struct hs_error *err);

struct hs_duties_stats {
    int64_t pending_runs;  /* pending passes run by this process */
    int64_t pending_polls; /* jobs they polled */
    int64_t syncs_expired;
    int64_t retention_runs;  /* retention passes run by this process */
    int64_t retention_rows;  /* rows they deleted */
    int64_t retention_files; /* unreferenced artifact files they removed */
};
void hs_duties_get_stats(struct hs_duties *d, struct hs_duties_stats *out);

#endif
