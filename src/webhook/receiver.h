/* receiver.h: what happens to a webhook delivery from Hover, independent of HTTP (the route
 * POST /webhooks/hover in src/server/routes_webhooks.c is a thin shell around it; the fuzz target
 * and the unit tests call it directly).
 *
 * The order matters (docs/WEBHOOKS.md):
 *   1. method POST (405), body at most HS_WEBHOOK_MAX_BODY (413);
 *   2. the webhook id from the Authorization header, before the body is looked at (missing: 401,
 *      malformed: 400);
 *   3. the webhook looked up in the store. Unknown (or stored without its secret yet): only a
 *      "webhook-verification-code" event is kept, as "unverified" (the verification race: Hover
 *      may deliver the code before the registration's answer, with the secret, is stored), once
 *      its Content-MD5 and Date are right: 202. Anything else from an unknown webhook: 401;
 *   4. known: the signature over the raw body (Content-MD5, Date within 15 minutes, HMAC in
 *      constant time): 401 when wrong, missing or stale, 400 when a header is malformed;
 *   5. the JSON body (400 when malformed);
 *   6. a verification code: Hover's verify endpoint is called (through cfg->verify, outside any
 *      store transaction) and verified_at recorded: 200 (503 when the call failed: Hover
 *      retries the delivery). Any other event: stored with event_accept in one durable
 *      transaction with its work item: job events as "accepted" (scheduled when the job is
 *      named), unknown types as "ignored"; 200 only once the store said OK, 503 otherwise.
 * Nothing is stored for a delivery refused with 4xx. The answer is a short JSON object. */
#ifndef HS_WEBHOOK_RECEIVER_H
#define HS_WEBHOOK_RECEIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"
#include "hoversync.h"
#include "store/store.h"

#define HS_WEBHOOK_MAX_BODY (64u * 1024u)
/* Unverified deliveries kept per webhook id: the unauthenticated path cannot fill the disk. */
#define HS_WEBHOOK_MAX_UNVERIFIED 16

/* Calls Hover's verify endpoint (PUT /api/v2/webhooks/{code}/verify) through the client of the
 * connection; *verified_at (may be left NULL; caller frees) gets Hover's verified_at. */
typedef int (*hs_webhook_verify_fn)(void *ctx, const char *connection_key, const char *code,
                                    char **verified_at, struct hs_error *err);

struct hs_receiver_config {
    struct hs_store *store;
    const struct hs_clock *clock; /* NULL: the system clock */
    int64_t max_skew_s;           /* 0: HS_WEBHOOK_MAX_SKEW_S */
    int64_t delay_ms;             /* a job's work item is due this long after its first event */
    hs_webhook_verify_fn verify;  /* NULL: verification events are refused with 503 */
    void *verify_ctx;
};

/* A delivery as received; header values NULL when absent. */
struct hs_webhook_request {
    const char *method;
    const char *request_uri; /* path and query as in the request line */
    const char *content_type;
    const char *content_md5;
    const char *date;
    const char *authorization;
    const char *body; /* raw bytes */
    size_t body_len;
    bool body_too_big; /* the HTTP layer stopped reading at the cap */
};

struct hs_receiver_result {
    int status;       /* 200, 202, 400, 401, 405, 413 or 503 */
    char body[192];   /* a short JSON object: {"status":"accepted","event_id":N} or an error */
    int64_t event_id; /* the stored event, 0 when none */
    int64_t webhook_id;
};

/* Handles one delivery (see the top of this file). Never fails: every outcome is a status. */
void hs_receiver_handle(const struct hs_receiver_config *cfg, const struct hs_webhook_request *rq,
                        struct hs_receiver_result *out);

/* The other half of the verification race, once the webhook's row (with its secret) is stored:
 * each delivery kept "unverified" for it is checked with the secret, against the time it was
 * received; a valid verification code is sent to Hover (cfg->verify) and verified_at recorded.
 * Valid deliveries end "processed", invalid ones "rejected". *verified (may be NULL) tells
 * whether the webhook got verified here. */
int hs_receiver_complete_unverified(const struct hs_receiver_config *cfg, int64_t webhook_id,
                                    bool *verified, struct hs_error *err);

#endif
