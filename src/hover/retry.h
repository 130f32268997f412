/* retry.h: the retry policy of Hover requests, as pure functions of an outcome, an attempt count
 * and a clock (for jitter), so that it is tested without sleeping.
 *
 * Retried: 429, 5xx, HS_ERR_NETWORK, HS_ERR_TRUNCATED. Never retried here: other 4xx (a 401 is
 * handled once by the token refresh in the client), parse errors, size caps. */
#ifndef HS_HOVER_RETRY_H
#define HS_HOVER_RETRY_H

#include <stdbool.h>
#include <stdint.h>

#include "core/clock.h"

enum hs_jitter {
    HS_JITTER_EQUAL = 0, /* half the backoff fixed, half random: default */
    HS_JITTER_FULL = 1,  /* uniform in [0, backoff) */
    HS_JITTER_NONE = 2,
};

struct hs_retry_policy {
    int max_attempts;    /* including the first; default 5 */
    int64_t base_ms;     /* default 500 */
    int64_t max_ms;      /* cap of one backoff; default 30000 */
    int64_t max_wait_ms; /* a Retry-After longer than this gives up; default 120000 */
    enum hs_jitter jitter;
};

/* Fills the defaults above. */
void hs_retry_policy_default(struct hs_retry_policy *p);

/* Whether an outcome may be retried at all: rc is the transport's result, status the HTTP
 * status when rc == 0. */
bool hs_retry_is_retryable(int rc, long status);

/* Backoff before retry number `attempt` (0 for the wait after the first failure):
 * min(base * 2^attempt, max_ms) with the policy's jitter drawn from clock->random01. */
int64_t hs_retry_backoff_ms(const struct hs_retry_policy *p, int attempt,
                            const struct hs_clock *clock);

enum hs_retry_verdict {
    HS_RETRY_DONE = 0,    /* a final outcome (success, or an error that is not retried) */
    HS_RETRY_WAIT = 1,    /* wait wait_ms, then try again */
    HS_RETRY_GIVE_UP = 2, /* retryable, but out of attempts or Retry-After is over max_wait_ms */
};

struct hs_retry_decision {
    enum hs_retry_verdict verdict;
    int64_t wait_ms;
    bool retry_after_too_long; /* GIVE_UP because the server asked for more than max_wait_ms */
};

/* Decides after attempt number `attempts_made` (1 after the first try). retry_after_s is the
 * server's Retry-After (-1 if none): the wait is at least that long. */
struct hs_retry_decision hs_retry_decide(const struct hs_retry_policy *p, int attempts_made, int rc,
                                         long status, int64_t retry_after_s,
                                         const struct hs_clock *clock);

#endif
