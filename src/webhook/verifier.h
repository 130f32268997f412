/* verifier.h: the verification calls to Hover, off the request path. The receiver only stores a
 * delivered verification code and queues it (store verification_add, in the delivery's own
 * transaction); background work here claims each queued code (a lease in the store, so that
 * several processes on one store share the queue), calls PUT /api/v2/webhooks/{code}/verify
 * through the webhook's connection, and records the outcome:
 *   - verified: the webhook's verified_at, its local error cleared;
 *   - refused for good (404, 422, a code that is no plain token): the code is done with, and
 *     when the webhook is not verified the refusal becomes its local error (shown by
 *     `hoversync status` and /api/status), since Hover's last_error is not ours to write;
 *   - anything else (network, 5xx, 429, a missing connection): retried with backoff
 *     (retry_base_ms * 2^attempts, capped), given up after give_up_ms with a local error.
 * A code is queued once per webhook, so a replayed code never calls Hover again. The thread
 * also drops the kept "unverified" deliveries that aged out (store events_unverified_trim). */
#ifndef HS_WEBHOOK_VERIFIER_H
#define HS_WEBHOOK_VERIFIER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/clock.h"
#include "hoversync.h"
#include "store/store.h"

/* Calls Hover's verify endpoint through the client of the connection; *verified_at (may be left
 * NULL; caller frees) gets Hover's verified_at. HS_ERR_NOT_FOUND / HS_ERR_UNPROCESSABLE when
 * Hover refuses the code. */
typedef int (*hs_webhook_verify_fn)(void *ctx, const char *connection_key, const char *code,
                                    char **verified_at, struct hs_error *err);

struct hs_verifier_config {
    hs_webhook_verify_fn verify;
    void *verify_ctx;
    int64_t idle_ms;       /* how often an idle thread looks for due codes; default 500 */
    int64_t lease_ms;      /* a claim's lease; default 120000 */
    int64_t retry_base_ms; /* default 2000 */
    int64_t retry_max_ms;  /* default 600000 */
    int64_t give_up_ms;    /* default 24 h after the code arrived */
};

struct hs_verifier;

/* store is borrowed; clock NULL: the system clock. */
int hs_verifier_new(const struct hs_verifier_config *cfg, struct hs_store *store,
                    const struct hs_clock *clock, struct hs_verifier **out, struct hs_error *err);
/* Starts the one thread. */
int hs_verifier_start(struct hs_verifier *v, struct hs_error *err);
/* Stops the thread after the call it makes, and frees. Accepts NULL. */
void hs_verifier_free(struct hs_verifier *v);
/* Claims and handles one due code in the calling thread; *ran false when none was due. The
 * thread loops on it; tests and `hoversync webhooks register` call it directly. */
int hs_verifier_run_once(struct hs_verifier *v, bool *ran, struct hs_error *err);

#endif
