/* retention.h: one pass of the retention duty (docs/OPERATIONS.md "Retention"): the rows kept
 * for a limited time (webhook deliveries, sync runs and results, delivered CRM notifications),
 * expired replay signatures and connect flows, deleted in batches of short transactions; then
 * the artifact files no row points at, after their grace (store/blob_gc.h). The duties thread
 * (duties.h) runs it once per interval across the installation; `hoversync store prune` runs
 * it at once. What is kept whatever its age is listed in store/retention.h. */
#ifndef HS_WORKER_RETENTION_H
#define HS_WORKER_RETENTION_H

#include <stdint.h>

#include "hoversync.h"
#include "store/blob_gc.h"
#include "store/retention.h"
#include "store/store.h"

#define HS_RETENTION_BATCH 500

struct hs_retention_config {
    int64_t keep_events_ms; /* handled webhook deliveries; 0: kept for ever */
    int64_t keep_runs_ms;   /* sync runs and their results; 0: kept for ever */
    int64_t keep_outbox_ms; /* delivered CRM notifications; 0: kept for ever */
    int64_t blob_grace_ms;  /* unreferenced files younger than this are kept */
    const char *data_dir;   /* the artifact files; NULL: no collection of files */
    int64_t batch;          /* rows per transaction; 0: HS_RETENTION_BATCH */
};

struct hs_retention_report {
    int64_t removed[HS_PRUNE_KINDS]; /* rows, per kind */
    int64_t batches;                 /* transactions that deleted rows */
    struct hs_blob_gc_stats files;
};

/* One pass at now_ms; every kind is tried even when one fails (the first error is returned).
 * The files are collected under HS_FILES_HOLD, and left for the next pass while a backup holds
 * it. Logs one line per kind that removed rows and one for the files. */
int hs_retention_run(struct hs_store *store, const struct hs_retention_config *cfg, int64_t now_ms,
                     struct hs_retention_report *out, struct hs_error *err);

#endif
