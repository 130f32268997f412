/* health.h: what `hoversync status` and GET /api/status show: the connections, their webhooks
 * with Hover's word on them (verified_at, last_error: the health signal) and ours (local_error:
 * a verification code Hover refused, see verifier.h), and the depth of the
 * background queues (work items, CRM outbox, open selections). One builder, two front-ends. */
#ifndef HS_WEBHOOK_HEALTH_H
#define HS_WEBHOOK_HEALTH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "hover/pool.h"
#include "hover/webhooks.h"
#include "hoversync.h"
#include "store/store.h"

/* Hover's list of a connection's webhooks (and the stored rows refreshed from it). */
typedef int (*hs_health_list_fn)(void *ctx, const char *connection_key,
                                 struct hs_hover_webhook **out, size_t *n, struct hs_error *err);

/* hs_health_list_fn with ctx = a struct hs_health_source *: hs_webhooks_refresh through the
 * connection's client of the provider. */
struct hs_health_source {
    const struct hs_client_provider *provider;
    struct hs_store *store;
};
int hs_health_list_via_provider(void *ctx, const char *connection_key,
                                struct hs_hover_webhook **out, size_t *n, struct hs_error *err);

/* The status document (a new reference):
 *   {"connections":[{"key","owner_id","owner_type","connected_at","has_token",
 *                    "reconnect_required","auto_sync","hover_error"}],
 *    "webhooks":[{"id","connection","url","verified_at","last_error","local_error","stored",
 *                 "secret_stored","at_hover","healthy"}],
 *    "work":{"due","total"},"outbox":{"pending"},
 *    "selections":{"open","selected","pending","error"},
 *    "runs":{"running","interrupted"}}
 * reconnect_required: Hover refused the stored refresh token (the org must be connected again).
 * runs: sync runs whose lease holds, and those whose process died (lapsed leases are marked
 * interrupted by this call: sync/lease.h).
 * list (may be NULL: stored values only) is asked once per connection that has a token; its
 * failure is reported in that connection's hover_error, not as a failure of the whole. */
int hs_health_collect(struct hs_store *store, int64_t now_ms, hs_health_list_fn list, void *ctx,
                      json_t **out, struct hs_error *err);

/* Adds to the status document what the installation occupies:
 *   "storage":{"backend","bytes","tables":[{"name","bytes","rows"}],
 *              "files":{"count","bytes"}}
 * bytes: the store's (SQLite: page_count * page_size; PostgreSQL: pg_database_size); tables: the
 * five largest, indexes included; files: the artifact files under data_dir (NULL: left out, as
 * where they are in object storage). */
int hs_health_add_storage(json_t *doc, struct hs_store *store, const char *data_dir,
                          struct hs_error *err);

#endif
