/* clock.c: the system clock and a fake one for tests; see clock.h. */
#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int64_t sys_mono(const struct hs_clock *c)
{
    (void)c;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t sys_wall(const struct hs_clock *c)
{
    (void)c;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sys_sleep(const struct hs_clock *c, int64_t ms)
{
    (void)c;
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static pthread_once_t seed_once = PTHREAD_ONCE_INIT;
static unsigned short seed48v[3];
static pthread_mutex_t rand_lock = PTHREAD_MUTEX_INITIALIZER;

static void seed_init(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    seed48v[0] = (unsigned short)ts.tv_nsec;
    seed48v[1] = (unsigned short)(ts.tv_nsec >> 16) ^ (unsigned short)getpid();
    seed48v[2] = (unsigned short)ts.tv_sec;
}

static double sys_random(const struct hs_clock *c)
{
    (void)c;
    pthread_once(&seed_once, seed_init);
    pthread_mutex_lock(&rand_lock);
    double r = erand48(seed48v);
    pthread_mutex_unlock(&rand_lock);
    return r;
}

static const struct hs_clock system_clock = {sys_mono, sys_wall, sys_sleep, sys_random, NULL};

const struct hs_clock *hs_clock_system(void)
{
    return &system_clock;
}

static int64_t fake_mono(const struct hs_clock *c)
{
    return ((const struct hs_fake_clock *)c->ctx)->mono;
}

static int64_t fake_wall(const struct hs_clock *c)
{
    return ((const struct hs_fake_clock *)c->ctx)->wall;
}

static void fake_sleep(const struct hs_clock *c, int64_t ms)
{
    struct hs_fake_clock *fc = c->ctx;
    fc->sleeps++;
    if (ms > 0) {
        fc->slept_total += ms;
        hs_fake_clock_advance(fc, ms);
    }
}

static double fake_random(const struct hs_clock *c)
{
    return ((const struct hs_fake_clock *)c->ctx)->random;
}

void hs_fake_clock_init(struct hs_fake_clock *fc, int64_t wall_ms)
{
    fc->clock.mono_ms = fake_mono;
    fc->clock.wall_ms = fake_wall;
    fc->clock.sleep_ms = fake_sleep;
    fc->clock.random01 = fake_random;
    fc->clock.ctx = fc;
    fc->mono = 1000000;
    fc->wall = wall_ms;
    fc->slept_total = 0;
    fc->sleeps = 0;
    fc->random = 0.5;
}

void hs_fake_clock_advance(struct hs_fake_clock *fc, int64_t ms)
{
    fc->mono += ms;
    fc->wall += ms;
}

struct timespec hs_deadline_after(clockid_t clk, int64_t ms)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

int64_t hs_backoff_ms(int64_t base_ms, int64_t max_ms, int64_t attempts)
{
    if (max_ms < base_ms)
        max_ms = base_ms;
    int64_t d = base_ms;
    for (int64_t i = 0; i < attempts && d < max_ms; i++)
        d *= 2;
    return d < max_ms ? d : max_ms;
}

void hs_cond_init_monotonic(pthread_cond_t *c)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
}

void hs_thread_stop(pthread_mutex_t *lock, pthread_cond_t *wake, bool *stopping, pthread_t thread,
                    bool started)
{
    pthread_mutex_lock(lock);
    *stopping = true;
    pthread_cond_broadcast(wake);
    pthread_mutex_unlock(lock);
    if (started)
        pthread_join(thread, NULL);
    pthread_cond_destroy(wake);
    pthread_mutex_destroy(lock);
}
