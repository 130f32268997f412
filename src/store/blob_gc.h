/* blob_gc.h: the artifact files of a data directory that no row points at any more (replaced
 * versions, models removed, orphans of a crash between a file and its row) collected after a
 * grace period, safely beside syncs writing the same bytes at that moment (the design is at the
 * top of blob_gc.c and in docs/OPERATIONS.md); and the files' total for `hoversync status`. */
#ifndef HS_STORE_BLOB_GC_H
#define HS_STORE_BLOB_GC_H

#include <stdbool.h>
#include <stdint.h>

#include "hoversync.h"

/* The named lease (store/service.h) that keeps whoever removes files (the collector, a purge)
 * and a backup copying files apart: a file a backup's database copy points at may lose its
 * last row meanwhile (a new version synced, an org purged), and must still be there when the
 * backup copies it. */
#define HS_FILES_HOLD    "files:hold"
#define HS_FILES_HOLD_MS (10 * 60 * 1000LL)

/* Whether a row points at the bytes of this hex sha256 (store/retention.h blob_referenced). */
typedef int (*hs_blob_referenced_fn)(void *ctx, const char *sha256, bool *referenced,
                                     struct hs_error *err);

/* Where the collector stands with one file, for a test's hook (a sync racing it). */
enum hs_blob_gc_stage {
    HS_BLOB_GC_CHECKED,   /* old enough, and no row pointed at it: about to set it aside */
    HS_BLOB_GC_SET_ASIDE, /* renamed to its tombstone: about to look again, then remove it */
};
typedef void (*hs_blob_gc_hook_fn)(void *ctx, enum hs_blob_gc_stage stage, const char *sha256);

struct hs_blob_gc_stats {
    int64_t files, bytes; /* files looked at, and their bytes */
    int64_t removed;      /* unreferenced files older than the grace, removed */
    int64_t removed_bytes;
    int64_t kept_fresh; /* unreferenced but written or reused within the grace */
    int64_t restored;   /* set aside, then found in use again: put back */
};

/* One pass over <data_dir>/blobs at now_ms: every file whose name is its digest, not modified
 * for grace_ms and not referenced (asked twice: before and after it is set aside) is removed;
 * leftovers of an interrupted pass are put back or removed. hook (may be NULL) is for tests.
 * A missing blobs directory is nothing to do. */
int hs_blob_gc(const char *data_dir, int64_t now_ms, int64_t grace_ms, hs_blob_referenced_fn ref,
               void *ref_ctx, hs_blob_gc_hook_fn hook, void *hook_ctx,
               struct hs_blob_gc_stats *stats, struct hs_error *err);

/* The file of one digest (a purge's: its last row just deleted), removed by the same rules as a
 * pass (set aside, asked again, removed), when not modified for grace_ms; *removed tells. A
 * file recently written or reused stays for the collector's next pass; a missing one is no
 * error. */
int hs_blob_collect_one(const char *data_dir, const char *sha256, int64_t now_ms, int64_t grace_ms,
                        hs_blob_referenced_fn ref, void *ref_ctx, bool *removed,
                        struct hs_error *err);

/* The artifact files under <data_dir>/blobs: how many and their bytes. */
int hs_blob_usage(const char *data_dir, int64_t *files, int64_t *bytes, struct hs_error *err);

#endif
