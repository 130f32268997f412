/* outbox.h: CRM notifications. After a sync that changed something (webhook-driven, reconciled or
 * interactive), one message per configured CRM endpoint goes into the store's durable outbox in
 * one transaction; a deliverer thread POSTs each message, signed, until the endpoint answers 2xx,
 * with exponential backoff, in order per (endpoint, job). The records feed stays the source of
 * truth: a notification only says "job J changed, read the feed from cursor C".
 *
 * When is a notification due: the highest change sequence of the job's synced data (store
 * job_synced_seq: artifacts and measurements) is above the one last notified for the job
 * (checkpoint "notify:<job id>"); both are read and the checkpoint moves in the transaction that
 * adds the messages. So a crash between a sync and its notification loses nothing (the next pass
 * over the job notifies), a sync that changed nothing notifies nothing, and the same change is
 * never notified twice. The idempotency key is sha256(endpoint "\n" job "\n" cursor) in hex: the
 * same change always gets the same key.
 *
 * The message (docs/WEBHOOKS.md "CRM notifications"):
 *   POST <endpoint>
 *   Content-Type: application/json
 *   Idempotency-Key: <64 hex>
 *   X-Hoversync-Timestamp: <unix seconds>
 *   X-Hoversync-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
 *   {"type":"hoversync.job.synced","id":"<idempotency key>","job_id":J,"connection":"org-1",
 *    "models":[{"id":M,"result":"synced"}],"cursor":C,"previous_cursor":P,
 *    "records_url":"/api/records?since=P","created_at":"<ISO-8601>"} */
#ifndef HS_NOTIFY_OUTBOX_H
#define HS_NOTIFY_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"
#include "hover/transport.h"
#include "hoversync.h"
#include "store/store.h"
#include "sync/engine.h"

struct hs_outbox_config {
    const char *const *endpoints; /* CRM URLs (http or https); none: nothing is queued */
    size_t n_endpoints;
    const char *secret;    /* the HMAC key (HOVERSYNC_CRM_SECRET); required with endpoints */
    int64_t retry_base_ms; /* first retry delay, doubled per attempt; default 1000 */
    int64_t retry_max_ms;  /* cap of the delay; default 300000 (5 minutes) */
    int64_t timeout_ms;    /* per POST; default 10000 */
    int64_t idle_ms;       /* the deliverer looks again this often when nothing is due (a
                              message added by this process wakes it at once); default 1000 */
};

struct hs_outbox;

/* store, clock (NULL: system) and transport (NULL: libcurl, owned) are borrowed otherwise. */
int hs_outbox_new(const struct hs_outbox_config *cfg, struct hs_store *store,
                  const struct hs_clock *clock, struct hs_transport *transport,
                  struct hs_outbox **out, struct hs_error *err);
/* Stops the deliverer (after the POST in flight) and frees. Accepts NULL. */
void hs_outbox_free(struct hs_outbox *o);
/* True when at least one endpoint is configured. */
bool hs_outbox_enabled(const struct hs_outbox *o);

/* After a sync of job_id through connection_key (report: the sync's, or NULL when no sync ran:
 * the models are then read from the store): queues the job's notification if one is due (see
 * above). *queued (may be NULL) gets the number of messages added. o may be NULL (no-op). */
int hs_outbox_after_sync(struct hs_outbox *o, const char *connection_key, int64_t job_id,
                         const struct hs_sync_report *report, size_t *queued, struct hs_error *err);

/* Starts the deliverer thread. */
int hs_outbox_start(struct hs_outbox *o, struct hs_error *err);
/* Wakes the deliverer (a message was added). */
void hs_outbox_wake(struct hs_outbox *o);
/* Delivers (or fails) the next due message in the calling thread: *sent true when one was
 * tried. The deliverer thread loops on it; tests call it directly. */
int hs_outbox_deliver_one(struct hs_outbox *o, bool *sent, struct hs_error *err);

struct hs_outbox_stats {
    int64_t queued, delivered, failed_attempts;
};
void hs_outbox_get_stats(struct hs_outbox *o, struct hs_outbox_stats *out);

/* ---- the pieces, for tests and for CRM developers reading the code ---- */
/* "v1=" + hex HMAC-SHA256(secret, "<timestamp>.<body>"): 68 characters and a NUL. */
#define HS_OUTBOX_SIG_LEN 68
void hs_outbox_sign(const char *secret, int64_t timestamp_s, const char *body, size_t body_len,
                    char out[HS_OUTBOX_SIG_LEN + 1]);
/* hex sha256(endpoint "\n" job "\n" cursor). */
void hs_outbox_idempotency_key(const char *endpoint, int64_t job_id, int64_t cursor, char out[65]);
/* The delay before attempt `attempts + 1`: base * 2^attempts, capped at max. */
int64_t hs_outbox_backoff_ms(int64_t base_ms, int64_t max_ms, int64_t attempts);

#endif
