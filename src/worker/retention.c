/* retention.c: one pass of the retention duty (retention.h). */
#include "worker/retention.h"

#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "store/service.h"

/* The collector's pass: its store and its hold on the files (in real time, as a backup's). */
struct pass {
    struct hs_store *store;
    int64_t fence, renewed_ms;
};

static int64_t wall_ms(void)
{
    return hs_clock_system()->wall_ms(hs_clock_system());
}

/* The store's answer for the collector of files; the hold renewed on the way (every third of
 * its length: a pass over many files may outlast it). A hold lost stops the pass. */
static int referenced(void *ctx, const char *sha256, bool *used, struct hs_error *err)
{
    struct pass *p = ctx;
    int64_t now = wall_ms();
    if (now - p->renewed_ms >= HS_FILES_HOLD_MS / 3) {
        int rc = p->store->service->lease_renew(p->store, HS_FILES_HOLD, p->fence,
                                                now + HS_FILES_HOLD_MS, err);
        if (rc)
            return rc;
        p->renewed_ms = now;
    }
    return p->store->retention->blob_referenced(p->store, sha256, used, err);
}

/* Batches of one kind until one removes fewer than the batch: each its own short transaction,
 * so that the service's writes go on between them. */
static int prune_kind(struct hs_store *store, enum hs_prune_kind kind, int64_t before_ms,
                      int64_t batch, struct hs_retention_report *r, struct hs_error *err)
{
    int64_t n = 0;
    int rc;
    do {
        n = 0;
        rc = store->retention->prune(store, kind, before_ms, batch, &n, err);
        r->removed[kind] += n;
        r->batches += n > 0;
    } while (rc == HS_OK && n == batch);
    if (r->removed[kind])
        hs_info("retention=rows table=%s removed=%lld", hs_prune_kind_name(kind),
                (long long)r->removed[kind]);
    return rc;
}

/* The files no row points at, under the hold a backup takes while it copies files. */
static int collect_files(struct hs_store *store, const struct hs_retention_config *cfg,
                         int64_t now_ms, struct hs_blob_gc_stats *st, struct hs_error *err)
{
    struct pass p = {.store = store, .renewed_ms = wall_ms()};
    int rc = store->service->lease_claim(store, HS_FILES_HOLD, p.renewed_ms, HS_FILES_HOLD_MS,
                                         &p.fence, err);
    if (rc == HS_ERR_BUSY) {
        hs_info("retention=files msg=\"a backup copies files: collected at the next pass\"");
        return HS_OK;
    }
    if (rc)
        return rc;
    rc = hs_blob_gc(cfg->data_dir, now_ms, cfg->blob_grace_ms, referenced, &p, NULL, NULL, st, err);
    (void)store->service->lease_release(store, HS_FILES_HOLD, p.fence, NULL);
    if (st->removed || st->restored)
        hs_info("retention=files removed=%lld bytes=%lld kept_recent=%lld put_back=%lld",
                (long long)st->removed, (long long)st->removed_bytes, (long long)st->kept_fresh,
                (long long)st->restored);
    return rc;
}

int hs_retention_run(struct hs_store *store, const struct hs_retention_config *cfg, int64_t now_ms,
                     struct hs_retention_report *out, struct hs_error *err)
{
    struct hs_retention_report r;
    memset(&r, 0, sizeof r);
    int64_t batch = cfg->batch > 0 ? cfg->batch : HS_RETENTION_BATCH;
    /* Results before runs: a run goes once no result of it is left. Replays and connect flows
     * go when they expire (their own dates). */
    const struct {
        enum hs_prune_kind kind;
        int64_t keep_ms;
    } plan[] = {
        {HS_PRUNE_WEBHOOK_EVENTS, cfg->keep_events_ms},
        {HS_PRUNE_SYNC_RESULTS, cfg->keep_runs_ms},
        {HS_PRUNE_SYNC_RUNS, cfg->keep_runs_ms},
        {HS_PRUNE_OUTBOX, cfg->keep_outbox_ms},
        {HS_PRUNE_REPLAYS, -1},
        {HS_PRUNE_CONNECT_FLOWS, -1},
    };
    int first = HS_OK;
    struct hs_error e = {0};
    for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++) {
        if (plan[i].keep_ms == 0)
            continue; /* kept for ever */
        int64_t before = plan[i].keep_ms < 0 ? now_ms : now_ms - plan[i].keep_ms;
        if (before <= 0)
            continue;
        int rc = prune_kind(store, plan[i].kind, before, batch, &r, &e);
        if (rc) {
            hs_warn("retention=error table=%s error=\"%s\"", hs_prune_kind_name(plan[i].kind),
                    e.msg);
            if (!first) {
                first = rc;
                if (err)
                    *err = e;
            }
        }
    }
    if (cfg->data_dir && *cfg->data_dir) {
        int rc = collect_files(store, cfg, now_ms, &r.files, &e);
        if (rc) {
            hs_warn("retention=error files=%s error=\"%s\"", cfg->data_dir, e.msg);
            if (!first) {
                first = rc;
                if (err)
                    *err = e;
            }
        }
    }
    if (out)
        *out = r;
    return first;
}
