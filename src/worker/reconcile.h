/* reconcile.h: reconciliation, the safety net under webhooks. Every interval, per connection,
 * List Jobs updated since the connection's checkpoint (checkpoint "reconcile:<connection>": the
 * unix second of the newest updated_at seen), oldest first, page after page as background work
 * for the request budget; a job a pass would sync something of (the plan every work item
 * follows, sync/plan.h, against the store's sync marks) gets a work item with reason
 * "reconcile", and the queue's workers do the rest. The checkpoint advances after every
 * page, so a pass that dies half-way resumes where it was. Deliveries that never arrived (Hover
 * retries for a while, then gives up; a receiver down for a day) are caught within an interval.
 * The thread runs a pass under the lease "duty:reconcile" (worker/duties.h hs_duty_claim): one
 * pass per interval across every process using the store, whichever one makes it.
 *
 * Without a checkpoint a connection starts one hour back (a new install does not reconcile the
 * whole history: that is `hoversync backfill`). */
#ifndef HS_WORKER_RECONCILE_H
#define HS_WORKER_RECONCILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"
#include "hover/pool.h"
#include "hoversync.h"
#include "store/store.h"
#include "worker/events.h"

struct hs_reconcile_config {
    int64_t interval_ms;   /* between passes; 0: no thread (hs_reconcile_run still works) */
    int64_t per;           /* jobs per page, 1..100; default 100 */
    int64_t first_since_s; /* a connection without checkpoint starts this far back; 3600 */
    int64_t max_pages;     /* per connection and pass (the rest waits for the next); 1000 */
};

struct hs_reconcile;

/* store and clients are borrowed; events (may be NULL) is woken when work was scheduled. */
int hs_reconcile_new(const struct hs_reconcile_config *cfg, struct hs_store *store,
                     struct hs_client_provider clients, struct hs_events *events,
                     const struct hs_clock *clock, struct hs_reconcile **out, struct hs_error *err);
/* Starts the thread (nothing when interval_ms is 0): its first look is one interval after, then
 * it looks every quarter interval and runs the pass when it claims the pass's lease. */
int hs_reconcile_start(struct hs_reconcile *r, struct hs_error *err);
void hs_reconcile_free(struct hs_reconcile *r);

/* One pass over every stored connection that has a token, in the calling thread. *scheduled
 * (may be NULL) gets the number of work items scheduled. */
int hs_reconcile_run(struct hs_reconcile *r, size_t *scheduled, struct hs_error *err);

struct hs_reconcile_stats {
    int64_t passes, pages, jobs_seen, scheduled, errors;
};
void hs_reconcile_get_stats(struct hs_reconcile *r, struct hs_reconcile_stats *out);

#endif
