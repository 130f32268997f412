/* health.c: the status document of health.h. */
#include "webhook/health.h"

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "store/outbox.h"
#include "store/policies.h"
#include "store/blob_gc.h"
#include "store/records.h"
#include "store/retention.h"
#include "store/service.h"
#include "store/webhooks.h"
#include "store/work.h"
#include "webhook/registration.h"

int hs_health_list_via_provider(void *ctx, const char *connection_key,
                                struct hs_hover_webhook **out, size_t *n, struct hs_error *err)
{
    const struct hs_health_source *src = ctx;
    struct hs_client *c = NULL;
    int rc = src->provider->acquire(src->provider->ctx, connection_key, &c, err);
    if (rc)
        return rc;
    rc = hs_webhooks_refresh(src->store, c, connection_key, out, n, err);
    src->provider->release(src->provider->ctx, c);
    return rc;
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *webhook_json(const struct hs_webhook_row *w, bool at_hover)
{
    return json_pack("{s:I,s:s,s:s,s:o,s:o,s:o,s:b,s:b,s:b,s:b}", "id", (json_int_t)w->id,
                     "connection", w->connection_key ? w->connection_key : "", "url",
                     w->url ? w->url : "", "verified_at", str_or_null(w->verified_at), "last_error",
                     str_or_null(w->last_error), "local_error", str_or_null(w->local_error),
                     "stored", 1, "secret_stored", w->hmac_secret != NULL, "at_hover", at_hover,
                     "healthy", hs_webhook_row_healthy(w));
}

/* Adds Hover's webhooks of one connection: stored ones are marked at_hover (the rows were
 * refreshed by the list call); ones only Hover knows are added with stored false. */
static void merge_hover(json_t *hooks, const char *key, const struct hs_hover_webhook *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        size_t k;
        json_t *h;
        json_array_foreach(hooks, k, h)
        {
            if (json_integer_value(json_object_get(h, "id")) == v[i].id) {
                json_object_set_new(h, "at_hover", json_true());
                json_object_set_new(h, "verified_at", str_or_null(v[i].verified_at));
                json_object_set_new(h, "last_error", str_or_null(v[i].last_error));
                struct hs_webhook_row now = {
                    .verified_at = v[i].verified_at,
                    .last_error = v[i].last_error,
                    .local_error = (char *)json_string_value(json_object_get(h, "local_error"))};
                json_object_set_new(h, "healthy", json_boolean(hs_webhook_row_healthy(&now)));
                found = true;
            }
        }
        if (!found)
            json_array_append_new(hooks,
                                  json_pack("{s:I,s:s,s:s,s:o,s:o,s:n,s:b,s:b,s:b,s:b}", "id",
                                            (json_int_t)v[i].id, "connection", key, "url",
                                            v[i].url ? v[i].url : "", "verified_at",
                                            str_or_null(v[i].verified_at), "last_error",
                                            str_or_null(v[i].last_error), "local_error", "stored",
                                            0, "secret_stored", 0, "at_hover", 1, "healthy", 0));
    }
}

int hs_health_collect(struct hs_store *store, int64_t now_ms, hs_health_list_fn list, void *ctx,
                      json_t **out, struct hs_error *err)
{
    struct hs_connection_row *conns = NULL;
    size_t nc = 0;
    int rc = store->service->connections_list(store, &conns, &nc, err);
    if (rc)
        return rc;
    json_t *jc = json_array();
    json_t *hover_lists = json_object(); /* key -> list error, for the connections */
    struct hs_hover_webhook **lists = hs_calloc(nc ? nc : 1, sizeof *lists);
    size_t *counts = hs_calloc(nc ? nc : 1, sizeof *counts);
    /* Hover first: the list call refreshes the stored rows read below. */
    for (size_t i = 0; list && i < nc; i++) {
        if (!conns[i].has_token)
            continue;
        struct hs_error e2 = {0};
        int r = list(ctx, conns[i].key, &lists[i], &counts[i], &e2);
        if (r)
            json_object_set_new(hover_lists, conns[i].key,
                                json_string(e2.msg[0] ? e2.msg : hs_err_name(r)));
    }
    for (size_t i = 0; !rc && i < nc; i++) {
        char *policy = NULL;
        rc = store->policies->policy_get(store, conns[i].key, &policy, err);
        if (rc)
            break;
        json_t *he = json_object_get(hover_lists, conns[i].key);
        json_array_append_new(jc, json_pack("{s:s,s:I,s:o,s:o,s:b,s:b,s:s,s:O}", "key",
                                            conns[i].key, "owner_id", (json_int_t)conns[i].owner_id,
                                            "owner_type", str_or_null(conns[i].owner_type),
                                            "connected_at", str_or_null(conns[i].connected_at),
                                            "has_token", conns[i].has_token, "reconnect_required",
                                            conns[i].reconnect_required, "auto_sync", policy,
                                            "hover_error", he ? he : json_null()));
        free(policy);
    }
    json_t *jh = json_array();
    struct hs_webhook_row *hooks = NULL;
    size_t nh = 0;
    if (!rc)
        rc = store->webhooks->webhook_list(store, &hooks, &nh, err);
    for (size_t i = 0; !rc && i < nh; i++)
        json_array_append_new(jh, webhook_json(&hooks[i], false));
    for (size_t i = 0; !rc && i < nc; i++)
        if (lists[i])
            merge_hover(jh, conns[i].key, lists[i], counts[i]);
    hs_webhook_rows_free(hooks, nh);

    int64_t due = 0, total = 0, pending = 0;
    if (!rc)
        rc = store->work->work_depth(store, &due, &total, NULL, now_ms, err);
    if (!rc)
        rc = store->outbox->outbox_depth(store, &pending, err);
    struct hs_selection *sels = NULL;
    size_t ns = 0;
    if (!rc)
        rc = store->records->selections_open(store, &sels, &ns, err);
    int64_t by[3] = {0};
    for (size_t i = 0; !rc && i < ns; i++) {
        if (sels[i].status == HS_SEL_SELECTED)
            by[0]++;
        else if (sels[i].status == HS_SEL_PENDING)
            by[1]++;
        else if (sels[i].status == HS_SEL_ERROR)
            by[2]++;
    }
    hs_selections_free(sels, ns);
    /* Runs whose process died are marked here too: status is where one looks for them. */
    struct hs_run_counts runs = {0};
    if (!rc)
        rc = store->records->runs_interrupt_lapsed(store, now_ms, &runs, err);

    for (size_t i = 0; i < nc; i++)
        hs_hover_webhooks_free(lists[i], counts[i]);
    free(lists);
    free(counts);
    hs_connection_rows_free(conns, nc);
    json_decref(hover_lists);
    if (rc) {
        json_decref(jc);
        json_decref(jh);
        return rc;
    }
    *out = json_pack("{s:o,s:o,s:{s:I,s:I},s:{s:I},s:{s:I,s:I,s:I,s:I},s:{s:I,s:I}}", "connections",
                     jc, "webhooks", jh, "work", "due", (json_int_t)due, "total", (json_int_t)total,
                     "outbox", "pending", (json_int_t)pending, "selections", "open", (json_int_t)ns,
                     "selected", (json_int_t)by[0], "pending", (json_int_t)by[1], "error",
                     (json_int_t)by[2], "runs", "running", (json_int_t)runs.running, "interrupted",
                     (json_int_t)runs.interrupted);
    return *out ? HS_OK : hs_fail(err, HS_ERR_INTERNAL, "status document");
}

int hs_health_add_storage(json_t *doc, struct hs_store *store, const char *data_dir,
                          struct hs_error *err)
{
    struct hs_store_size sz = {0};
    int rc = store->retention->size(store, &sz, err);
    if (rc)
        return rc;
    json_t *tables = json_array();
    for (size_t i = 0; i < sz.n_top; i++)
        json_array_append_new(tables, json_pack("{s:s, s:I, s:I}", "name", sz.top[i].name, "bytes",
                                                (json_int_t)sz.top[i].bytes, "rows",
                                                (json_int_t)sz.top[i].rows));
    json_t *st = json_pack("{s:s, s:I, s:o}", "backend", store->ops->name, "bytes",
                           (json_int_t)sz.bytes, "tables", tables);
    hs_store_size_clear(&sz);
    int64_t files = 0, bytes = 0;
    if (data_dir && (rc = hs_blob_usage(data_dir, &files, &bytes, err)) == HS_OK)
        json_object_set_new(
            st, "files",
            json_pack("{s:I, s:I}", "count", (json_int_t)files, "bytes", (json_int_t)bytes));
    if (rc) {
        json_decref(st);
        return rc;
    }
    json_object_set_new(doc, "storage", st);
    return HS_OK;
}
