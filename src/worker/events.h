/* events.h: the event worker. Webhook deliveries (and reconciliation, and pending selections)
 * become work items in the store, one per (connection, job): events coalesce, since their
 * payloads carry no id or time and are only triggers. N threads claim due items with a lease,
 * re-read the job from Hover (one Show Job per item, whatever the number of events behind it)
 * and sync what is complete now through the sync engine, as background work for the request
 * budget (hover/limiter.h).
 *
 * Which models sync is the connection's auto-sync policy (store policy_get): "all" (default)
 * every complete model not synced at its current updated_at; "linked" the same, but only for a
 * job already linked to a CRM record (an external identifier at Hover, or a selection in the
 * store); "none" nothing automatically. Open selections of the job (a model chosen in the modal
 * "sync when ready") run whatever the policy: they complete as soon as their model does.
 *
 * After the pass: the job's CRM notification if one is due (notify/outbox.h), the job's accepted
 * events up to the last one seen before the Show Job marked processed, and the item done (a newer
 * trigger that came in meanwhile makes it run again). A failure releases the item for a retry
 * with backoff (5 s * 2^attempts, at most 10 minutes); it is never dropped. A worker that dies
 * holds its item only until the lease ends. */
#ifndef HS_WORKER_EVENTS_H
#define HS_WORKER_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"
#include "hover/pool.h"
#include "hoversync.h"
#include "notify/outbox.h"
#include "store/records.h"

struct hs_events_config {
    const char *data_dir;  /* the sync engine's artifact files */
    int threads;           /* default 2 */
    int64_t lease_ms;      /* a claim's lease; default 120000 */
    int64_t idle_ms;       /* how often an idle thread looks for due work; default 250 */
    int64_t retry_base_ms; /* default 5000 */
    int64_t retry_max_ms;  /* default 600000 */
};

struct hs_events;

/* store, clients and outbox (may be NULL: no notifications) are borrowed. clock NULL: system. */
int hs_events_new(const struct hs_events_config *cfg, struct hs_store *store,
                  struct hs_client_provider clients, struct hs_outbox *outbox,
                  const struct hs_clock *clock, struct hs_events **out, struct hs_error *err);
/* Starts the threads (named host:pid:N in claims). */
int hs_events_start(struct hs_events *w, struct hs_error *err);
/* Wakes an idle thread: work was just scheduled (the receiver calls it). Accepts NULL. */
void hs_events_wake(struct hs_events *w);
/* Stops the threads after the items they run (a waiting request is released at once when the
 * pool's limiter is shut down first) and frees. Accepts NULL. */
void hs_events_free(struct hs_events *w);

/* Claims and runs one due item in the calling thread; *ran false when none was due. The
 * threads loop on it; tests call it directly. */
int hs_events_run_once(struct hs_events *w, const char *worker_id, bool *ran, struct hs_error *err);

struct hs_events_stats {
    int64_t claimed;   /* items claimed */
    int64_t synced;    /* passes that ran the sync engine */
    int64_t unchanged; /* passes with nothing to sync (already synced, not complete, policy) */
    int64_t retried;   /* passes that failed and were released for a retry */
    int64_t running;   /* passes running now */
};
void hs_events_get_stats(struct hs_events *w, struct hs_events_stats *out);

/* ---- the decision, a pure function (tested on its own) ---- */
enum hs_autosync { HS_AUTOSYNC_ALL, HS_AUTOSYNC_LINKED, HS_AUTOSYNC_NONE };
/* "all", "linked", "none"; HS_ERR_INVALID otherwise. */
int hs_autosync_parse(const char *s, enum hs_autosync *out);

/* The models of `job` (as Hover has it now) that a pass syncs, given the store's view of them
 * (job_models_status: sync marks and selections): ids into out (room for job->n_models), in
 * the job's order; returns how many. An open selection counts when its model is complete or
 * failed (to record the outcome) or when it is waiting to be run (selected, error); the policy
 * adds every complete model not synced at its current updated_at. */
size_t hs_events_plan(enum hs_autosync policy, const struct hs_job *job,
                      const struct hs_model_status *st, size_t n_st, int64_t *out);

/* The retry delay after `attempts` failed passes: base * 2^attempts, capped. */
int64_t hs_events_backoff_ms(int64_t base_ms, int64_t max_ms, int64_t attempts);

#endif
