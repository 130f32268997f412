/* disconnect.h: deleting a connection (a Hover org) for `hoversync connections delete` and
 * DELETE /api/connections/{name}: its webhooks deregistered at Hover first (while its token pair
 * is still there to do it), then the store's connection_delete (store/service.h), then, with
 * purge, the files no row holds any more. */
#ifndef HS_WEBHOOK_DISCONNECT_H
#define HS_WEBHOOK_DISCONNECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "hover/client.h"
#include "hoversync.h"
#include "store/service.h"

struct hs_disconnect_report {
    struct hs_connection_deleted store; /* what the store dropped */
    int64_t deregistered;               /* webhooks Hover deleted (or no longer knew) */
    int64_t *kept_at_hover;             /* webhooks Hover could not be told to delete */
    size_t n_kept_at_hover;
    char hover_error[256]; /* why (the first failure), "" when none */
    int64_t files_removed;
};
void hs_disconnect_report_clear(struct hs_disconnect_report *r);
/* The report as the CLI's --json and the API answer it (docs/openapi.yaml ConnectionDeleted). */
json_t *hs_disconnect_report_json(const char *name, bool purge,
                                  const struct hs_disconnect_report *r);

/* Deletes connection `key`. client: one of that connection (NULL: none; then its webhooks are
 * not deregistered and the report says so). A Hover that cannot be reached, or refuses, does
 * not stop the rest: the local deletion goes on and out->kept_at_hover lists what Hover still
 * has. purge and now_ms as connection_delete; data_dir: where the files are (purge).
 * HS_ERR_NOT_FOUND when nothing of that name exists. */
int hs_connection_disconnect(struct hs_store *store, struct hs_client *client, const char *key,
                             bool purge, const char *data_dir, int64_t now_ms,
                             struct hs_disconnect_report *out, struct hs_error *err);

#endif
