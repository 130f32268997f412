/* events.h: the work queue's workers. Every sync that does not answer a person in the
 * foreground is a work item in the store, one per (connection, job): modal syncs (POST
 * /api/syncs), webhook events, reconciliation, the pending pass ("sync when ready") and
 * backfill's sync step. Triggers coalesce, since webhook payloads carry no id or time and are
 * only triggers. N threads claim due items (highest priority first, fair between connections)
 * with a lease that a heartbeat renews while they run, read the job (the item's payload when it
 * is young, else one Show Job whatever the number of triggers behind it) and sync the models of
 * the plan (sync/plan.h: the connection's auto-sync policy plus the open selections) through
 * the sync engine.
 *
 * A run writes the progress of the job's syncs (store sync_progress) in the engine's own
 * transactions, each checked against the claim's fencing token (store work_fence): a worker
 * whose lease lapsed (paused, cut off, too slow) commits nothing more, and the item runs again
 * elsewhere. After the run: the job's CRM notification if one is due (notify/outbox.h), the
 * job's accepted events up to the last one seen before the job was read marked processed, the
 * job's running syncs finished and the item done (a newer trigger that came in meanwhile makes
 * it run again), in one transaction. A failure releases the item for a retry with backoff
 * (5 s * 2^attempts, at most 10 minutes); it is never dropped. A worker that dies holds its item
 * only until the lease ends.
 *
 * Producers wake the threads when they commit (hs_events_wake: the webhook receiver, POST
 * /api/syncs, reconciliation, the pending pass), so an item due now starts at once; an idle
 * thread also looks every idle_ms for items another process queued, and sleeps no longer than
 * until the next item is due. */
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
    const char *data_dir; /* the sync engine's artifact files */
    /* The installation's artifact profile (sync/profile.h) for connections without their own;
     * NULL: "default". */
    const char *artifacts;
    /* Where they are stored (outlives the queue); NULL: the local folder data_dir. */
    const struct hs_blobs *blobs;
    int threads;                /* default 2 */
    int download_slots;         /* a sync's downloads at once (sync/engine.h); 0: one */
    int64_t lease_ms;           /* a claim's lease, renewed every third of it; default 30000 */
    int64_t idle_ms;            /* how often an idle thread looks for other processes' items; 250 */
    int64_t retry_base_ms;      /* default 5000 */
    int64_t retry_max_ms;       /* default 600000 */
    int64_t payload_max_age_ms; /* an item's listed job is used this long; default 300000 */
    /* The items of this connection alone (a process holding one connection's credential, as
     * backfill does); NULL: any. */
    const char *only_connection;
    /* Optional: called (no store transaction open) after this process wrote the progress of a
     * sync, so that its progress streams look at once. */
    void (*on_sync_progress)(void *ctx);
    void *progress_ctx;
};

struct hs_events;

/* store, clients and outbox (may be NULL: no notifications) are borrowed. clock NULL: system. */
int hs_events_new(const struct hs_events_config *cfg, struct hs_store *store,
                  struct hs_client_provider clients, struct hs_outbox *outbox,
                  const struct hs_clock *clock, struct hs_events **out, struct hs_error *err);
/* Starts the threads (named host:pid:N in claims) and the lease heartbeat. */
int hs_events_start(struct hs_events *w, struct hs_error *err);
/* Wakes the idle threads: work was just committed. Accepts NULL. */
void hs_events_wake(struct hs_events *w);
/* Stops the threads after the items they run (a waiting request is released at once when the
 * pool's limiter is shut down first) and frees. Accepts NULL. */
void hs_events_free(struct hs_events *w);

/* The drain of a stopping process: no new item is claimed from now on (the threads end once
 * their runs do; the leases of those runs are still renewed). Accepts NULL. */
void hs_events_drain(struct hs_events *w);
/* Runs going on now (0 for NULL). */
int64_t hs_events_running(struct hs_events *w);
/* Hands back the claims of the runs still going (store work_release): their items are due at
 * once for any other process, and what those runs would still write is fenced out. Returns how
 * many were handed back. Accepts NULL. */
int64_t hs_events_hand_back(struct hs_events *w);

/* Claims and runs one due item in the calling thread; *ran false when none was due. The
 * threads loop on it; tests call it directly. */
int hs_events_run_once(struct hs_events *w, const char *worker_id, bool *ran, struct hs_error *err);

struct hs_events_stats {
    int64_t claimed;   /* items claimed */
    int64_t synced;    /* passes that ran the sync engine */
    int64_t unchanged; /* passes with nothing to sync (already synced, not complete, policy) */
    int64_t retried;   /* passes that failed and were released for a retry */
    int64_t fenced;    /* passes stopped because their claim lapsed */
    int64_t running;   /* passes running now */
    int64_t syncs_done, syncs_failed; /* syncs of POST /api/syncs finished by this process */
};
void hs_events_get_stats(struct hs_events *w, struct hs_events_stats *out);

/* The retry delay after `attempts` failed passes: base * 2^attempts, capped. */
int64_t hs_events_backoff_ms(int64_t base_ms, int64_t max_ms, int64_t attempts);

#endif
