/* test_limiter.c: the client-side limiter (src/hover/limiter.c) with fake clocks: no sleeping. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "core/clock.h"
#include "hover/limiter.h"

#define WINDOW 60000

/* Fails unless every window of WINDOW ms holds at most limit of the (sorted) start times. */
static void assert_window(const int64_t *t, int n, int limit)
{
    for (int i = 0; i + limit < n; i++)
        assert_true(t[i + limit] - t[i] >= WINDOW);
}

static void test_burst_of_130(void **state)
{
    (void)state;
    struct hs_fake_clock fc;
    hs_fake_clock_init(&fc, 0);
    struct hs_limiter *l = hs_limiter_new(120, WINDOW, &fc.clock);
    int64_t t0 = fc.mono;
    int64_t starts[130];
    for (int i = 0; i < 130; i++) {
        int64_t waited = hs_limiter_acquire(l);
        starts[i] = fc.mono;
        assert_int_equal(waited, i < 120 ? 0 : (i == 120 ? WINDOW : 0));
    }
    /* The first 120 go at once; the 121st waits a full window, the rest go with it. */
    for (int i = 0; i < 120; i++)
        assert_int_equal(starts[i], t0);
    for (int i = 120; i < 130; i++)
        assert_int_equal(starts[i], t0 + WINDOW);
    assert_int_equal(fc.slept_total, WINDOW);
    assert_window(starts, 130, 120);
    struct hs_limiter_stats st;
    hs_limiter_get_stats(l, &st);
    assert_int_equal(st.acquired, 130);
    assert_int_equal(st.waits, 1);
    assert_int_equal(st.waited_ms, WINDOW);
    hs_limiter_free(l);
}

/* A steady stream faster than the budget: never more than the limit in a window, and no start
 * later than the window requires. */
static void test_steady_stream(void **state)
{
    (void)state;
    struct hs_fake_clock fc;
    hs_fake_clock_init(&fc, 0);
    struct hs_limiter *l = hs_limiter_new(120, WINDOW, &fc.clock);
    enum { N = 1000 };
    int64_t *starts = calloc(N, sizeof *starts);
    for (int i = 0; i < N; i++) {
        hs_fake_clock_advance(&fc, 100); /* wants 600 a minute */
        int64_t before = fc.mono;
        hs_limiter_acquire(l);
        starts[i] = fc.mono;
        if (i >= 120) /* as early as allowed: when the request 120 back leaves the window */
            assert_int_equal(starts[i],
                             before > starts[i - 120] + WINDOW ? before : starts[i - 120] + WINDOW);
        else
            assert_int_equal(starts[i], before);
    }
    assert_window(starts, N, 120);
    /* 120 a minute: request 999 starts at least 8 windows after request 39. */
    assert_true(starts[N - 1] - starts[39] >= 8 * WINDOW);
    free(starts);
    hs_limiter_free(l);
}

/* Slower than the budget: nobody waits. */
static void test_under_budget_never_waits(void **state)
{
    (void)state;
    struct hs_fake_clock fc;
    hs_fake_clock_init(&fc, 0);
    struct hs_limiter *l = hs_limiter_new(120, WINDOW, &fc.clock);
    for (int i = 0; i < 500; i++) {
        hs_fake_clock_advance(&fc, 500);
        assert_int_equal(hs_limiter_acquire(l), 0);
    }
    assert_int_equal(fc.sleeps, 0);
    hs_limiter_free(l);
}

static void test_unlimited(void **state)
{
    (void)state;
    struct hs_fake_clock fc;
    hs_fake_clock_init(&fc, 0);
    struct hs_limiter *l = hs_limiter_new(0, WINDOW, &fc.clock);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(hs_limiter_acquire(l), 0);
    assert_int_equal(fc.sleeps, 0);
    hs_limiter_free(l);
    assert_int_equal(hs_limiter_acquire(NULL), 0);
    hs_limiter_free(NULL);
}

/* A frozen clock that many threads may call: sleeps are recorded, time does not move, so the
 * reservations show exactly what the limiter handed out. */
struct frozen_clock {
    struct hs_clock clock;
    pthread_mutex_t lock;
    int64_t now;
    int64_t waits[1024];
    int n_waits;
};

static int64_t frozen_mono(const struct hs_clock *c)
{
    return ((struct frozen_clock *)c->ctx)->now;
}

static void frozen_sleep(const struct hs_clock *c, int64_t ms)
{
    struct frozen_clock *fc = c->ctx;
    pthread_mutex_lock(&fc->lock);
    fc->waits[fc->n_waits++] = ms;
    pthread_mutex_unlock(&fc->lock);
}

static double frozen_random(const struct hs_clock *c)
{
    (void)c;
    return 0.5;
}

struct worker {
    struct hs_limiter *l;
    int n;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < w->n; i++)
        hs_limiter_acquire(w->l);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    struct frozen_clock fc = {
        .clock = {frozen_mono, frozen_mono, frozen_sleep, frozen_random, NULL}, .now = 5000};
    fc.clock.ctx = &fc;
    pthread_mutex_init(&fc.lock, NULL);
    struct hs_limiter *l = hs_limiter_new(120, WINDOW, &fc.clock);
    enum { THREADS = 8, EACH = 45 }; /* 360 requests: three windows' worth */
    pthread_t th[THREADS];
    struct worker w = {l, EACH};
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    /* 120 went at once, 120 were told to wait one window and 120 two windows. */
    int one = 0, two = 0;
    for (int i = 0; i < fc.n_waits; i++) {
        if (fc.waits[i] == WINDOW)
            one++;
        else if (fc.waits[i] == 2 * WINDOW)
            two++;
        else
            fail_msg("unexpected wait %lld", (long long)fc.waits[i]);
    }
    assert_int_equal(one, 120);
    assert_int_equal(two, 120);
    struct hs_limiter_stats st;
    hs_limiter_get_stats(l, &st);
    assert_int_equal(st.acquired, THREADS * EACH);
    assert_int_equal(st.waits, 240);
    hs_limiter_free(l);
    pthread_mutex_destroy(&fc.lock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_of_130),
        cmocka_unit_test(test_steady_stream),
        cmocka_unit_test(test_under_budget_never_waits),
        cmocka_unit_test(test_unlimited),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
