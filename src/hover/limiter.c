/* limiter.c: see limiter.h. The log is a ring of the last `limit` start times (monotonic ms):
 * the oldest entry tells when the window has room again. */
#include "hover/limiter.h"

#include <pthread.h>
#include <stdlib.h>

#include "core/mem.h"

struct hs_limiter {
    pthread_mutex_t lock;
    const struct hs_clock *clock;
    int limit;
    int64_t window_ms;
    int64_t *starts; /* ring of `limit` reserved start times */
    int head;        /* oldest entry, where the next reservation goes */
    int used;
    struct hs_limiter_stats stats;
};

struct hs_limiter *hs_limiter_new(int limit, int64_t window_ms, const struct hs_clock *clock)
{
    struct hs_limiter *l = hs_calloc(1, sizeof *l);
    pthread_mutex_init(&l->lock, NULL);
    l->clock = clock ? clock : hs_clock_system();
    l->limit = limit > 0 ? limit : 0;
    l->window_ms = window_ms > 0 ? window_ms : 60000;
    if (l->limit)
        l->starts = hs_calloc((size_t)l->limit, sizeof *l->starts);
    return l;
}

void hs_limiter_free(struct hs_limiter *l)
{
    if (!l)
        return;
    pthread_mutex_destroy(&l->lock);
    free(l->starts);
    free(l);
}

int64_t hs_limiter_acquire(struct hs_limiter *l)
{
    if (!l)
        return 0;
    pthread_mutex_lock(&l->lock);
    int64_t now = l->clock->mono_ms(l->clock);
    int64_t start = now;
    if (l->limit) {
        if (l->used == l->limit) {
            /* The window is full: start when the oldest reservation leaves it. */
            int64_t free_at = l->starts[l->head] + l->window_ms;
            if (free_at > start)
                start = free_at;
        } else {
            l->used++;
        }
        /* Reservations are handed out in order, so the ring stays sorted. */
        int prev = (l->head + l->limit - 1) % l->limit;
        if (l->used > 1 && l->starts[prev] > start)
            start = l->starts[prev];
        l->starts[l->head] = start;
        l->head = (l->head + 1) % l->limit;
    }
    int64_t wait = start - now;
    l->stats.acquired++;
    if (wait > 0) {
        l->stats.waits++;
        l->stats.waited_ms += wait;
    }
    pthread_mutex_unlock(&l->lock);
    if (wait > 0)
        l->clock->sleep_ms(l->clock, wait);
    return wait > 0 ? wait : 0;
}

void hs_limiter_get_stats(struct hs_limiter *l, struct hs_limiter_stats *out)
{
    pthread_mutex_lock(&l->lock);
    *out = l->stats;
    pthread_mutex_unlock(&l->lock);
}
