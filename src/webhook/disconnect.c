/* disconnect.c: deleting a connection: Hover first, the store then, the files last (disconnect.h).
 * Deregistering first, while the token pair is still stored, is what lets it be done at all;
 * a failure there is reported, never a reason to keep an org the operator wants gone. */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "hover/webhooks.h"
#include "store/blob_gc.h"
#include "store/retention.h"
#include "store/webhooks.h"
#include "webhook/disconnect.h"

/* A purged file modified this recently may be one a sync of another org is about to point at
 * (it renews a file it reuses just before its row commits): the collector takes it later. */
#define PURGE_GRACE_MS (60 * 1000LL)

void hs_disconnect_report_clear(struct hs_disconnect_report *r)
{
    if (!r)
        return;
    hs_connection_deleted_clear(&r->store);
    free(r->kept_at_hover);
    memset(r, 0, sizeof *r);
}

json_t *hs_disconnect_report_json(const char *name, bool purge,
                                  const struct hs_disconnect_report *r)
{
    json_t *kept = json_array();
    for (size_t i = 0; i < r->n_kept_at_hover; i++)
        json_array_append_new(kept, json_integer(r->kept_at_hover[i]));
    return json_pack("{s:s, s:b, s:I, s:I, s:o, s:o, s:I, s:I, s:I}", "name", name, "purged", purge,
                     "jobs", (json_int_t)r->store.jobs, "webhooks_deregistered",
                     (json_int_t)r->deregistered, "webhooks_not_deregistered", kept, "hover_error",
                     r->hover_error[0] ? json_string(r->hover_error) : json_null(),
                     "work_items_dropped", (json_int_t)r->store.work_items, "syncs_ended",
                     (json_int_t)r->store.syncs, "files_removed", (json_int_t)r->files_removed);
}

static void kept(struct hs_disconnect_report *r, int64_t id, const char *why)
{
    r->kept_at_hover =
        hs_realloc(r->kept_at_hover, (r->n_kept_at_hover + 1) * sizeof *r->kept_at_hover);
    r->kept_at_hover[r->n_kept_at_hover++] = id;
    if (!r->hover_error[0])
        (void)hs_strlcpy(r->hover_error, why, sizeof r->hover_error);
}

/* Deletes the connection's stored webhooks at Hover (one already gone there counts as done). */
static int deregister(struct hs_store *store, struct hs_client *client, const char *key,
                      struct hs_disconnect_report *r, struct hs_error *err)
{
    struct hs_webhook_row *v = NULL;
    size_t n = 0;
    int rc = store->webhooks->webhook_list(store, &v, &n, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (!v[i].connection_key || strcmp(v[i].connection_key, key) != 0)
            continue;
        struct hs_error e = {0};
        int d = client ? hs_webhooks_delete(client, v[i].id, &e)
                       : hs_fail(&e, HS_ERR_NO_CREDENTIALS, "no token pair to ask Hover with");
        if (d == HS_OK || d == HS_ERR_NOT_FOUND) {
            r->deregistered++;
            continue;
        }
        kept(r, v[i].id, e.msg[0] ? e.msg : hs_err_name(d));
        hs_warn("connection msg=\"webhook not deregistered at Hover\" connection=%s "
                "webhook_id=%lld error=\"%s\"",
                key, (long long)v[i].id, e.msg[0] ? e.msg : hs_err_name(d));
    }
    hs_webhook_rows_free(v, n);
    return HS_OK;
}

static int orphan_referenced(void *ctx, const char *sha256, bool *used, struct hs_error *err)
{
    struct hs_store *store = ctx;
    return store->retention->blob_referenced(store, sha256, used, err);
}

/* The files only the purged rows held, removed the collector's way (store/blob_gc.h) under the
 * files' hold: a sync of another org writing the same bytes at this moment, or a backup copying
 * them, keeps its file. A file written or reused within PURGE_GRACE_MS, and every file while a
 * backup holds the files, stays for the collector's next pass. */
static void remove_orphans(struct hs_store *store, const char *data_dir, const char *key,
                           int64_t now_ms, struct hs_disconnect_report *r)
{
    int64_t fence = 0;
    struct hs_error e = {0};
    if (store->service->lease_claim(store, HS_FILES_HOLD, now_ms, HS_FILES_HOLD_MS, &fence, &e)) {
        hs_info("connection msg=\"purged files left to the collector\" connection=%s files=%zu "
                "reason=\"%s\"",
                key, r->store.n_orphans, e.msg);
        return;
    }
    for (size_t i = 0; i < r->store.n_orphans; i++) {
        bool removed = false;
        if (hs_blob_collect_one(data_dir, r->store.orphans[i], now_ms, PURGE_GRACE_MS,
                                orphan_referenced, store, &removed, &e) != HS_OK)
            hs_warn("connection msg=\"cannot remove a purged file\" connection=%s error=\"%s\"",
                    key, e.msg);
        r->files_removed += removed;
    }
    (void)store->service->lease_release(store, HS_FILES_HOLD, fence, NULL);
    if ((size_t)r->files_removed < r->store.n_orphans)
        hs_info("connection msg=\"recent purged files left to the collector\" connection=%s "
                "files=%lld",
                key, (long long)(r->store.n_orphans - (size_t)r->files_removed));
}

int hs_connection_disconnect(struct hs_store *store, struct hs_client *client, const char *key,
                             bool purge, const char *data_dir, int64_t now_ms,
                             struct hs_disconnect_report *out, struct hs_error *err)
{
    struct hs_disconnect_report r = {0};
    char iso[32];
    hs_iso8601_format(now_ms / 1000, (int)(now_ms % 1000), iso, sizeof iso);
    int rc = deregister(store, client, key, &r, err);
    if (!rc)
        rc = store->service->connection_delete(store, key, purge, now_ms, iso, &r.store, err);
    if (!rc && r.store.n_orphans)
        remove_orphans(store, data_dir, key, now_ms, &r);
    if (rc) {
        hs_disconnect_report_clear(&r);
        return rc;
    }
    hs_info("connection msg=\"deleted\" connection=%s purge=%d jobs=%lld webhooks=%lld "
            "deregistered=%lld not_deregistered=%zu work_items=%lld files_removed=%lld",
            key, purge, (long long)r.store.jobs, (long long)r.store.webhooks,
            (long long)r.deregistered, r.n_kept_at_hover, (long long)r.store.work_items,
            (long long)r.files_removed);
    *out = r;
    return HS_OK;
}
