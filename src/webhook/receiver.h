/* receiver.h: what happens to a webhook delivery from Hover, independent of HTTP (the route
 * POST /webhooks/hover in src/server/routes_webhooks.c is a thin shell around it; the fuzz target
 * and the unit tests call it directly). It never calls Hover: the request is answered as soon as
 * the store holds what it must.
 *
 * The order matters (docs/WEBHOOKS.md):
 *   1. method POST (405), body at most HS_WEBHOOK_MAX_BODY (413);
 *   2. the Authorization header read (signature.h; missing: 401, malformed: 400), the Date
 *      (malformed: 400; missing, stale or future: 401) and the body digest (Content-MD5 and/or
 *      X-Authorization-Content-SHA256 must match the raw body: 401), before any secret is used;
 *   3. the webhook whose secret verifies the signature: the one the access id names (when it is
 *      one of our webhook ids), else the one this access id verified under before, else each
 *      registered webhook in turn (newest first, at most HS_WEBHOOK_TRIAL_MAX; the winner is
 *      remembered for the access id). The signed request_uri is the path and query of the URL
 *      the webhook was registered with. The org of the delivery is that webhook's: a
 *      webhook_id in the body is never trusted;
 *   4. none verifies: a "webhook-verification-code" event is kept "unverified" (the verification
 *      race: Hover may deliver the code before the registration's answer, with the secret, is
 *      stored; the store keeps at most HS_STORE_UNVERIFIED_MAX such rows, none older than
 *      HS_STORE_UNVERIFIED_TTL_MS): 202. Anything else: 401;
 *   5. the JSON body (400 when malformed);
 *   6. stored with event_accept in one durable transaction with what it causes: a verification
 *      code queued for the background verifier (src/worker/verify.h): 202; a job event as
 *      "accepted" with its work item, unknown types as "ignored": 200; only once the store said
 *      OK (503 otherwise), and once the work item is committed the workers are woken
 *      (cfg->wake: hs_events_wake). The signature is remembered in the same transaction until the
 * Date leaves the window: a delivery sent again is answered 200 "duplicate" and stored once.
 * Nothing is stored for a delivery refused with 4xx. Refusals are logged through a rate limit
 * (a few lines a second, with the count held back). The answer is a short JSON object. */
#ifndef HS_WEBHOOK_RECEIVER_H
#define HS_WEBHOOK_RECEIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"
#include "hoversync.h"
#include "store/store.h"

#define HS_WEBHOOK_MAX_BODY (64u * 1024u)
/* Registered webhooks whose secrets are tried for an access id that names none: hundreds of
 * orgs cost a few hundred HMACs of a short string; past this, the newest are tried and a line
 * says so. */
#define HS_WEBHOOK_TRIAL_MAX 1000

struct hs_receiver_config {
    struct hs_store *store;
    const struct hs_clock *clock; /* NULL: the system clock */
    int64_t max_skew_s;           /* 0: HS_WEBHOOK_MAX_SKEW_S */
    /* An event for a job whose work item is being run makes one more pass, due this long after
     * the event (a burst during a run costs one pass); an idle item is due at once. */
    int64_t delay_ms;
    /* Called once an accepted event's work item is committed (the route: hs_events_wake, so
     * that a worker starts it at once); NULL: none. */
    void (*wake)(void *ctx);
    void *wake_ctx;
    /* Webhooks read for earlier deliveries (hs_webhook_cache_new); NULL: each delivery reads its
     * webhook from the store. */
    struct hs_webhook_cache *cache;
};

/* A process's webhooks as read for deliveries, each kept HS_WEBHOOK_CACHE_TTL_MS (monotonic)
 * so that a delivery verifies without a read of the store. A delivery that a kept secret does
 * not verify reads the store again (a rotated secret works at once); an old secret replaced by
 * any process verifies for the TTL at most; a deleted webhook is refused at once, as the event's
 * commit checks that its row is still there (webhook_must_exist). Thread-safe. */
#define HS_WEBHOOK_CACHE_TTL_MS 1000
struct hs_webhook_cache;
struct hs_webhook_cache *hs_webhook_cache_new(void);
void hs_webhook_cache_free(struct hs_webhook_cache *c);

/* A delivery as received; header values NULL when absent. */
struct hs_webhook_request {
    const char *method;
    /* The path and query signed when a webhook's registered URL does not tell (the public URL's,
     * or the request line's when no public URL is configured). */
    const char *request_uri;
    const char *content_type;
    const char *content_md5;
    const char *content_sha256; /* X-Authorization-Content-SHA256 */
    const char *date;
    const char *authorization;
    const char *body; /* raw bytes */
    size_t body_len;
    bool body_too_big; /* the HTTP layer stopped reading at the cap */
};

/* What became of a delivery, as /metrics counts it. */
enum hs_webhook_result {
    HS_WH_ACCEPTED,      /* a job event: stored with its job's work item (200) */
    HS_WH_UNKNOWN_EVENT, /* an event type that names no job: stored as "ignored" (200) */
    HS_WH_VERIFICATION,  /* a verification code, queued for the verifier or kept (202) */
    HS_WH_DUPLICATE,     /* a signature already accepted (200, stored once) */
    HS_WH_BAD_SIGNATURE, /* unsigned, stale, a wrong digest or no secret verifies it (401) */
    HS_WH_MALFORMED,     /* a malformed header or body (400) */
    HS_WH_TOO_BIG,       /* a body over the cap (413) */
    HS_WH_BAD_METHOD,    /* not a POST (405) */
    HS_WH_UNAVAILABLE,   /* the store failed, or the service was busy or stopping (503) */
    HS_WH_RESULT_COUNT
};
/* The result's label ("accepted", "bad_signature", ...). */
const char *hs_webhook_result_label(enum hs_webhook_result r);

struct hs_receiver_result {
    enum hs_webhook_result result;
    int status;         /* 200, 202, 400, 401, 405, 413 or 503 */
    char body[192];     /* a short JSON object: {"status":"accepted","event_id":N} or an error */
    int64_t event_id;   /* the stored event, 0 when none (refused, or a replay) */
    int64_t webhook_id; /* the webhook whose secret verified it, 0 when none */
};

/* Handles one delivery (see the top of this file). Never fails: every outcome is a status. */
void hs_receiver_handle(const struct hs_receiver_config *cfg, const struct hs_webhook_request *rq,
                        struct hs_receiver_result *out);

/* The other half of the verification race, once the webhook's row (with its secret) is stored:
 * each delivery kept "unverified" that the secret verifies (against the time it was received)
 * is marked "processed" and its code queued for the verifier; one that names this webhook's id
 * but does not verify is "rejected"; the others stay (they may be another webhook's) until
 * they age out. *queued (may be NULL) gets how many codes were queued. */
int hs_receiver_complete_unverified(const struct hs_receiver_config *cfg, int64_t webhook_id,
                                    size_t *queued, struct hs_error *err);

#endif
