/* limiter.h: the client-side request limiter. Hover allows 120 requests a minute per integration
 * and answers more with 429 and a temporary block, so the process keeps itself under the budget
 * instead of finding the limit by hitting it.
 *
 * A sliding-window log: a request may start only when fewer than `limit` requests started in the
 * preceding window. Each caller reserves its start time under the mutex and then sleeps (through
 * the clock) outside it, so that the limiter is thread-safe and callers are served in order.
 * One limiter may be shared by several clients (one per connected org): the budget is per
 * integration, not per org. It does not coordinate separate processes. */
#ifndef HS_HOVER_LIMITER_H
#define HS_HOVER_LIMITER_H

#include <stdint.h>

#include "core/clock.h"

struct hs_limiter;

/* limit requests per window_ms (60000 for "per minute"); limit <= 0 makes a limiter that never
 * waits. The clock is borrowed. */
struct hs_limiter *hs_limiter_new(int limit, int64_t window_ms, const struct hs_clock *clock);
void hs_limiter_free(struct hs_limiter *l);

/* Waits until a request may start and counts it; returns the milliseconds waited (0 if none). */
int64_t hs_limiter_acquire(struct hs_limiter *l);

struct hs_limiter_stats {
    int64_t acquired;
    int64_t waits;
    int64_t waited_ms;
};
void hs_limiter_get_stats(struct hs_limiter *l, struct hs_limiter_stats *out);

#endif
