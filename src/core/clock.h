/* clock.h: the clock interface. Code that waits or reads time takes a clock, so tests drive time
 * by hand (hs_fake_clock) and never sleep. */
#ifndef HS_CORE_CLOCK_H
#define HS_CORE_CLOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct hs_clock {
    /* Monotonic milliseconds, for intervals and deadlines. */
    int64_t (*mono_ms)(const struct hs_clock *c);
    /* Wall-clock unix milliseconds, for token expiry and timestamps. */
    int64_t (*wall_ms)(const struct hs_clock *c);
    void (*sleep_ms)(const struct hs_clock *c, int64_t ms);
    /* A uniform random number in [0, 1), for jitter. */
    double (*random01)(const struct hs_clock *c);
    void *ctx;
};

/* The process's real clock (a static object). */
const struct hs_clock *hs_clock_system(void);

/* A clock for tests: time moves only when sleep_ms or hs_fake_clock_advance is called, and
 * random01 returns `random` (settable). */
struct hs_fake_clock {
    struct hs_clock clock;
    int64_t mono, wall;
    int64_t slept_total;
    int sleeps;
    double random;
};
void hs_fake_clock_init(struct hs_fake_clock *fc, int64_t wall_ms);
void hs_fake_clock_advance(struct hs_fake_clock *fc, int64_t ms);

/* Timed condition waits, the one way: a condition variable from hs_cond_init_monotonic times
 * its waits on CLOCK_MONOTONIC, so that a deadline does not move when the wall clock is set;
 * hs_deadline_after(CLOCK_MONOTONIC, ms) is the deadline for its pthread_cond_timedwait, ms
 * milliseconds from now (CLOCK_REALTIME for a condition variable left on the default clock). */
void hs_cond_init_monotonic(pthread_cond_t *c);
struct timespec hs_deadline_after(clockid_t clk, int64_t ms);

/* Stops a background thread that waits on `wake` under `lock` and leaves once *stopping is set:
 * sets it, wakes the thread, joins it if it was started, then destroys the lock and the
 * condition variable (the owner frees the rest). */
void hs_thread_stop(pthread_mutex_t *lock, pthread_cond_t *wake, bool *stopping, pthread_t thread,
                    bool started);

/* A retry's delay after `attempts` failures: base_ms doubled per failure, at most max_ms (a
 * max_ms below base_ms counts as base_ms). */
int64_t hs_backoff_ms(int64_t base_ms, int64_t max_ms, int64_t attempts);

#endif
