/* retention.h: what keeps a store small over years (store.h; docs/OPERATIONS.md "Retention"):
 * the deletion of old rows in small batches, the question the artifact files' collector asks
 * (does a row still point at these bytes?), and the sizes `hoversync status` shows.
 *
 * Each prune deletes at most `limit` rows in one short transaction of its own, so that a
 * periodic duty (src/worker/retention.c) calls it again until it removes fewer than the limit,
 * never holding the store's writes for long. What a prune keeps, whatever its age:
 *   - the newest sync result of each model (and its run): what a CRM reading sync_results
 *     finds as "the last word on this model"; jobs, models, artifacts and measurements (what
 *     the records feed points at as current) are never pruned;
 *   - the newest delivered message of each (endpoint, job): the next one's seq_in_job follows
 *     it, so the order a CRM sees keeps increasing;
 *   - webhook deliveries still waiting for their work (status accepted or unverified: the
 *     latter have their own short limit, store/webhooks.h);
 *   - running sync runs. */
#ifndef HS_STORE_RETENTION_H
#define HS_STORE_RETENTION_H

#include "store/store.h"

enum hs_prune_kind {
    HS_PRUNE_WEBHOOK_EVENTS = 0, /* deliveries handled (processed, ignored, rejected) before */
    HS_PRUNE_SYNC_RESULTS,       /* per-model results older than before, but each model's last */
    HS_PRUNE_SYNC_RUNS,          /* finished runs started before, left without a result */
    HS_PRUNE_OUTBOX,             /* messages delivered before, but each (endpoint, job)'s last */
    HS_PRUNE_REPLAYS,            /* webhook signatures whose accepted window ended before */
    HS_PRUNE_CONNECT_FLOWS,      /* connect flows that expired before */
    HS_PRUNE_KINDS
};
/* The kind's name for logs and output: "webhook_events", "sync_results", ... (its table). */
const char *hs_prune_kind_name(enum hs_prune_kind kind);

/* One table among the largest of the store. */
struct hs_table_size {
    char *name;
    int64_t bytes; /* its pages and its indexes' (SQLite: dbstat; PostgreSQL: total relation) */
    int64_t rows;
};
#define HS_STORE_TOP_TABLES 5
struct hs_store_size {
    int64_t bytes; /* SQLite: page_count * page_size; PostgreSQL: pg_database_size */
    struct hs_table_size top[HS_STORE_TOP_TABLES]; /* largest first */
    size_t n_top;
};
void hs_store_size_clear(struct hs_store_size *s);
/* For the back-ends: the clear of one row of a table size (a row collector's), and the largest
 * HS_STORE_TOP_TABLES of the n rows v moved into out when keep (the others freed, all of them
 * when not), v freed. */
void hs_table_size_clear(void *row);
void hs_store_size_take(struct hs_store_size *out, struct hs_table_size *v, size_t n, bool keep);

struct hs_retention_ops {
    /* Deletes at most limit rows of `kind` dated before before_ms (unix ms), oldest first, in
     * one transaction of its own (refused inside the thread's transaction); *removed gets how
     * many. */
    int (*prune)(struct hs_store *s, enum hs_prune_kind kind, int64_t before_ms, int64_t limit,
                 int64_t *removed, struct hs_error *err);
    /* Whether a row points at the artifact file with this hex sha256 (artifacts.sha256). */
    int (*blob_referenced)(struct hs_store *s, const char *sha256, bool *referenced,
                           struct hs_error *err);
    /* The store's size and its largest tables (caller clears with hs_store_size_clear). */
    int (*size)(struct hs_store *s, struct hs_store_size *out, struct hs_error *err);
};

#endif
