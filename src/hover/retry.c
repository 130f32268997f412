/* retry.c: see retry.h. */
#include "hover/retry.h"

#include "hoversync.h"

void hs_retry_policy_default(struct hs_retry_policy *p)
{
    p->max_attempts = 5;
    p->base_ms = 500;
    p->max_ms = 30000;
    p->max_wait_ms = 120000;
    p->jitter = HS_JITTER_EQUAL;
}

bool hs_retry_is_retryable(int rc, long status)
{
    if (rc != HS_OK)
        return rc == HS_ERR_NETWORK || rc == HS_ERR_TRUNCATED;
    return status == 429 || (status >= 500 && status <= 599);
}

int64_t hs_retry_backoff_ms(const struct hs_retry_policy *p, int attempt,
                            const struct hs_clock *clock)
{
    int64_t base = p->base_ms > 0 ? p->base_ms : 1;
    int64_t cap = p->max_ms > 0 ? p->max_ms : base;
    int64_t b = base;
    /* Doubling stops at the cap, so nothing can overflow. */
    for (int i = 0; i < attempt && b < cap; i++)
        b = b > cap / 2 ? cap : b * 2;
    if (b > cap)
        b = cap;
    double r = clock ? clock->random01(clock) : 0.5;
    if (r < 0 || r >= 1)
        r = 0.5;
    switch (p->jitter) {
    case HS_JITTER_FULL:
        return (int64_t)(r * (double)b);
    case HS_JITTER_NONE:
        return b;
    case HS_JITTER_EQUAL:
    default:
        return b / 2 + (int64_t)(r * (double)(b - b / 2));
    }
}

struct hs_retry_decision hs_retry_decide(const struct hs_retry_policy *p, int attempts_made, int rc,
                                         long status, int64_t retry_after_s,
                                         const struct hs_clock *clock)
{
    struct hs_retry_decision d = {HS_RETRY_DONE, 0, false};
    if (!hs_retry_is_retryable(rc, status))
        return d;
    if (rc == HS_OK && retry_after_s >= 0) {
        /* Compare in seconds first: a huge header must not overflow the milliseconds. */
        if (retry_after_s > p->max_wait_ms / 1000 || retry_after_s * 1000 > p->max_wait_ms) {
            d.verdict = HS_RETRY_GIVE_UP;
            d.retry_after_too_long = true;
            return d;
        }
    }
    if (attempts_made >= p->max_attempts) {
        d.verdict = HS_RETRY_GIVE_UP;
        return d;
    }
    int64_t wait = hs_retry_backoff_ms(p, attempts_made - 1, clock);
    if (rc == HS_OK && retry_after_s >= 0 && retry_after_s * 1000 > wait)
        wait = retry_after_s * 1000;
    d.verdict = HS_RETRY_WAIT;
    d.wait_ms = wait;
    return d;
}
