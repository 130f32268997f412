/* work.h: the queue of background work (store.h; docs/WEBHOOKS.md): one item per job of a
 * connection to re-read and sync, claimed by workers of any process under a lease. Items are
 * also inserted by event_accept (store/webhooks.h) in the delivery's own transaction. */
#ifndef HS_STORE_WORK_H
#define HS_STORE_WORK_H

#include "store/store.h"

/* One unit of background work: a job of a connection to re-read and sync. Events about the same
 * job coalesce into one item (Hover's payloads carry no id or time: they are triggers). */
struct hs_work_item {
    int64_t id;
    char *connection_key;
    int64_t job_id;
    char *reason;       /* "webhook", "reconcile", "pending", ... (the latest) */
    int64_t generation; /* bumped by every new trigger; done() only deletes the generation it
                           claimed, so an event arriving during a sync schedules another pass */
    int64_t attempts;
    int64_t not_before_ms; /* unix ms */
};
void hs_work_item_clear(struct hs_work_item *w);

struct hs_work_ops {
    /* Inserts or bumps a work item (reconciliation, pending selections). */
    int (*work_schedule)(struct hs_store *s, const char *connection_key, int64_t job_id,
                         const char *reason, int64_t not_before_ms, struct hs_error *err);
    /* Claims the next due item (not_before <= now, not leased, or lease expired) for lease_ms:
     * oldest due first, and across connections in turn (fair between orgs). HS_ERR_NOT_FOUND
     * when none is due. A claim survives the claimer's death only until the lease ends. */
    int (*work_claim)(struct hs_store *s, const char *worker, int64_t now_ms, int64_t lease_ms,
                      struct hs_work_item *out, struct hs_error *err);
    /* Done: deletes the item if its generation is still the claimed one, else releases it (a
     * newer trigger came in: it runs again). */
    int (*work_done)(struct hs_store *s, const struct hs_work_item *w, struct hs_error *err);
    /* Failed: releases it for not_before_ms with attempts + 1 and the error. */
    int (*work_retry)(struct hs_store *s, const struct hs_work_item *w, int64_t not_before_ms,
                      const char *error, struct hs_error *err);
    int (*work_depth)(struct hs_store *s, int64_t *due, int64_t *total, int64_t now_ms,
                      struct hs_error *err);
    /* Frees the items claimed by workers that `dead` says are gone (a process restarted after a
     * kill -9 need not wait for its old leases to end); *released (may be NULL) gets how many.
     * dead is called inside the store's transaction: it must not use the store. */
    int (*work_release_dead)(struct hs_store *s, bool (*dead)(void *ctx, const char *worker),
                             void *ctx, int64_t *released, struct hs_error *err);
};

#endif
