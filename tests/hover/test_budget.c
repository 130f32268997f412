/* test_budget.c: the two classes of the request budget (src/hover/limiter.c, "two classes of work
 * share the one budget"): interactive requests go first when both wait, background requests take
 * what is left, round-robin between connections, at once while one connection alone waits (but
 * never the reserve) and spaced otherwise, and no window ever holds more than the limit.
 * Time is a manual clock that the test moves: a sleeping thread blocks until the test advances
 * the clock past its wake-up time; nothing really sleeps. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/clock.h"
#include "hover/limiter.h"
#include "store/store.h"

/* ---- a manual clock that many threads may sleep on ---- */

struct manual_clock {
    struct hs_clock clock;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t now;
    int sleepers;
};

static int64_t m_now(const struct hs_clock *c)
{
    struct manual_clock *m = c->ctx;
    pthread_mutex_lock(&m->mu);
    int64_t t = m->now;
    pthread_mutex_unlock(&m->mu);
    return t;
}

static void m_sleep(const struct hs_clock *c, int64_t ms)
{
    struct manual_clock *m = c->ctx;
    pthread_mutex_lock(&m->mu);
    int64_t until = m->now + ms;
    m->sleepers++;
    pthread_cond_broadcast(&m->cv);
    while (m->now < until)
        pthread_cond_wait(&m->cv, &m->mu);
    m->sleepers--;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

static double m_random(const struct hs_clock *c)
{
    (void)c;
    return 0.5;
}

static void m_init(struct manual_clock *m, int64_t now)
{
    memset(m, 0, sizeof *m);
    m->clock = (struct hs_clock){m_now, m_now, m_sleep, m_random, m};
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    m->now = now;
}

static void m_destroy(struct manual_clock *m)
{
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
}

static void m_advance_to(struct manual_clock *m, int64_t t)
{
    pthread_mutex_lock(&m->mu);
    m->now = t;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

/* Waits until exactly n threads sleep on the clock. */
static void m_wait_sleepers(struct manual_clock *m, int n)
{
    pthread_mutex_lock(&m->mu);
    while (m->sleepers != n)
        pthread_cond_wait(&m->cv, &m->mu);
    pthread_mutex_unlock(&m->mu);
}

/* ---- requests run by threads, recording when they started and in which order ---- */

struct log {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
    char who[32][16];
    int64_t at[32];
    int64_t rc[32];
};

struct req {
    struct hs_limiter *l;
    struct manual_clock *clock;
    struct log *log;
    enum hs_prio prio;
    const char *key;
    const char *name;
    pthread_t th;
};

static void *req_main(void *arg)
{
    struct req *r = arg;
    int64_t rc = hs_limiter_acquire_as(r->l, r->prio, r->key);
    int64_t at = m_now(&r->clock->clock);
    pthread_mutex_lock(&r->log->mu);
    int i = r->log->n++;
    snprintf(r->log->who[i], sizeof r->log->who[i], "%s", r->name);
    r->log->at[i] = at;
    r->log->rc[i] = rc;
    pthread_cond_broadcast(&r->log->cv);
    pthread_mutex_unlock(&r->log->mu);
    return NULL;
}

static void log_init(struct log *g)
{
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
}

static void log_wait(struct log *g, int n)
{
    pthread_mutex_lock(&g->mu);
    while (g->n < n)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void start(struct req *r)
{
    assert_int_equal(pthread_create(&r->th, NULL, req_main, r), 0);
}

static void wait_background_waiting(struct hs_limiter *l, int64_t n)
{
    for (;;) {
        struct hs_limiter_stats st;
        hs_limiter_get_stats(l, &st);
        if (st.background_waiting == n)
            return;
        sched_yield();
    }
}

/* A background request is waiting for the next free slot when an interactive one arrives: the
 * interactive one gets that slot, the background one the slot after. */
static void test_interactive_goes_first(void **state)
{
    (void)state;
    struct manual_clock mc;
    m_init(&mc, 1000);
    struct log g;
    log_init(&g);
    struct hs_limiter *l = hs_limiter_new(2, 100, &mc.clock);
    assert_int_equal(hs_limiter_acquire_as(l, HS_PRIO_INTERACTIVE, NULL), 0); /* at 1000 */
    m_advance_to(&mc, 1050);
    assert_int_equal(hs_limiter_acquire_as(l, HS_PRIO_INTERACTIVE, NULL), 0); /* at 1050 */

    struct req bg = {l, &mc, &g, HS_PRIO_BACKGROUND, "org-1", "bg", 0};
    start(&bg);
    m_wait_sleepers(&mc, 1); /* it waits for 1100, when the first slot frees */
    struct req in = {l, &mc, &g, HS_PRIO_INTERACTIVE, NULL, "in", 0};
    start(&in);
    m_wait_sleepers(&mc, 2); /* the interactive one booked 1100 */
    m_advance_to(&mc, 1100);
    log_wait(&g, 1);
    assert_string_equal(g.who[0], "in");
    assert_int_equal(g.at[0], 1100);
    m_wait_sleepers(&mc, 1); /* background now waits for the second slot: 1150 */
    m_advance_to(&mc, 1150);
    log_wait(&g, 2);
    assert_string_equal(g.who[1], "bg");
    assert_int_equal(g.at[1], 1150);
    assert_int_equal(g.rc[1], 100); /* waited from 1050 */
    pthread_join(bg.th, NULL);
    pthread_join(in.th, NULL);
    struct hs_limiter_stats st;
    hs_limiter_get_stats(l, &st);
    assert_int_equal(st.acquired, 4);
    assert_int_equal(st.background_acquired, 1);
    assert_int_equal(st.background_waiting, 0);
    hs_limiter_free(l);
    m_destroy(&mc);
}

/* Three background requests of one org queued before one of another org: the freed slots go to
 * the orgs in turn (a, b, a, a), not first come first served (a, a, a, b). */
static void test_background_round_robin_between_orgs(void **state)
{
    (void)state;
    struct manual_clock mc;
    m_init(&mc, 1000);
    struct log g;
    log_init(&g);
    struct hs_limiter *l = hs_limiter_new(1, 100, &mc.clock);
    hs_limiter_acquire_as(l, HS_PRIO_INTERACTIVE, NULL); /* the window is full until 1100 */
    struct req r[4] = {
        {l, &mc, &g, HS_PRIO_BACKGROUND, "org-a", "a1", 0},
        {l, &mc, &g, HS_PRIO_BACKGROUND, "org-a", "a2", 0},
        {l, &mc, &g, HS_PRIO_BACKGROUND, "org-a", "a3", 0},
        {l, &mc, &g, HS_PRIO_BACKGROUND, "org-b", "b1", 0},
    };
    for (int i = 0; i < 4; i++) {
        start(&r[i]);
        wait_background_waiting(l, i + 1);
    }
    const char *want[4] = {"a1", "b1", "a2", "a3"};
    for (int i = 0; i < 4; i++) {
        m_wait_sleepers(&mc, 1); /* only the one whose turn it is sleeps */
        m_advance_to(&mc, 1100 + 100 * i);
        log_wait(&g, i + 1);
        assert_string_equal(g.who[i], want[i]);
        assert_int_equal(g.at[i], 1100 + 100 * i);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(r[i].th, NULL);
    hs_limiter_free(l);
    m_destroy(&mc);
}

/* Stopping releases background waiters at once with HS_ERR_BUSY; interactive still works. */
static void test_shutdown_releases_background(void **state)
{
    (void)state;
    struct manual_clock mc;
    m_init(&mc, 1000);
    struct log g;
    log_init(&g);
    struct hs_limiter *l = hs_limiter_new(1, 100000, &mc.clock);
    hs_limiter_acquire_as(l, HS_PRIO_INTERACTIVE, NULL);
    struct req a = {l, &mc, &g, HS_PRIO_BACKGROUND, "org-a", "a", 0};
    struct req b = {l, &mc, &g, HS_PRIO_BACKGROUND, "org-a", "b", 0};
    start(&a);
    wait_background_waiting(l, 1);
    start(&b);
    wait_background_waiting(l, 2);
    m_wait_sleepers(&mc, 1);
    hs_limiter_shutdown(l);
    m_advance_to(&mc, 1250); /* the sleeper's slice ends: it sees the shutdown */
    log_wait(&g, 2);
    assert_int_equal(g.rc[0], HS_ERR_BUSY);
    assert_int_equal(g.rc[1], HS_ERR_BUSY);
    pthread_join(a.th, NULL);
    pthread_join(b.th, NULL);
    assert_int_equal(hs_limiter_acquire_as(l, HS_PRIO_BACKGROUND, "org-a"), HS_ERR_BUSY);
    hs_limiter_free(l);
    m_destroy(&mc);
}

/* A mixed stream from one thread on the fake clock: every window of the limiter holds at most
 * `limit` starts, and the budget is used up (the stream is as fast as the window allows). */
static void test_never_more_than_limit_in_a_window(void **state)
{
    (void)state;
    struct hs_fake_clock fc;
    hs_fake_clock_init(&fc, 0);
    enum { LIMIT = 120, WINDOW = 61000, N = 1200 };
    struct hs_limiter *l = hs_limiter_new(LIMIT, WINDOW, &fc.clock);
    int64_t *t = calloc(N, sizeof *t);
    int64_t t0 = fc.mono;
    for (int i = 0; i < N; i++) {
        enum hs_prio p = i % 3 == 0 ? HS_PRIO_INTERACTIVE : HS_PRIO_BACKGROUND;
        const char *key = i % 2 ? "org-1" : "org-2";
        assert_true(hs_limiter_acquire_as(l, p, key) >= 0);
        t[i] = fc.mono;
        if (i % 7 == 0)
            hs_fake_clock_advance(&fc, 37); /* some think time */
    }
    for (int i = 1; i < N; i++)
        assert_true(t[i] >= t[i - 1]);
    for (int i = 0; i + LIMIT < N; i++)
        assert_true(t[i + LIMIT] - t[i] >= WINDOW);
    /* 1200 requests at 120 per window, background alone never past 108 (this one thread
     * waits for each request in turn, so the reserve is rarely used): within 12 windows. */
    assert_true(t[N - 1] - t0 <= 12 * WINDOW);
    free(t);
    hs_limiter_free(l);
}

/* One connection's background backlog, nothing else waiting: its first limit - reserve starts
 * go at once (108 of 120), then it waits until they leave the window: the reserve stays free, so
 * an interactive request behind the backlog starts at once, however long the backlog. */
static void test_lone_backlog_leaves_the_reserve(void **state)
{
    (void)state;
    struct hs_fake_clock fc;
    hs_fake_clock_init(&fc, 0);
    enum { LIMIT = 120, WINDOW = 61000, ROOM = LIMIT - LIMIT / 10 };
    struct hs_limiter *l = hs_limiter_new(LIMIT, WINDOW, &fc.clock);
    int64_t t0 = fc.mono;
    for (int i = 0; i < ROOM; i++)
        assert_int_equal(hs_limiter_acquire_as(l, HS_PRIO_BACKGROUND, "org-1"), 0);
    assert_int_equal(fc.mono, t0);
    assert_int_equal(hs_limiter_acquire_as(l, HS_PRIO_INTERACTIVE, NULL), 0);
    assert_true(hs_limiter_acquire_as(l, HS_PRIO_BACKGROUND, "org-1") > 0);
    assert_int_equal(fc.mono, t0 + WINDOW);
    for (int i = 0; i < 3 * LIMIT; i++) {
        assert_true(hs_limiter_acquire_as(l, HS_PRIO_BACKGROUND, "org-1") >= 0);
        int64_t at = fc.mono;
        assert_int_equal(hs_limiter_acquire_as(l, HS_PRIO_INTERACTIVE, NULL), 0);
        assert_int_equal(fc.mono, at);
    }
    hs_limiter_free(l);
}

/* While another connection's background request waits, background starts are spaced from the
 * first: a1 at once, b1 one spacing later (a2 waits meanwhile), then a2, alone, at once. */
static void test_background_spaced_while_another_connection_waits(void **state)
{
    (void)state;
    struct manual_clock mc;
    m_init(&mc, 1000);
    struct log g;
    log_init(&g);
    struct hs_limiter *l = hs_limiter_new(10, 1000, &mc.clock); /* spacing: 100 ms */
    hs_limiter_hold(l, 50);                                     /* all three wait until 1050 */
    struct req r[3] = {
        {l, &mc, &g, HS_PRIO_BACKGROUND, "org-a", "a1", 0},
        {l, &mc, &g, HS_PRIO_BACKGROUND, "org-a", "a2", 0},
        {l, &mc, &g, HS_PRIO_BACKGROUND, "org-b", "b1", 0},
    };
    for (int i = 0; i < 3; i++) {
        start(&r[i]);
        wait_background_waiting(l, i + 1);
    }
    m_wait_sleepers(&mc, 1);
    m_advance_to(&mc, 1050);
    log_wait(&g, 1);
    assert_string_equal(g.who[0], "a1");
    assert_int_equal(g.at[0], 1050);
    m_wait_sleepers(&mc, 1); /* b1's turn: a2 waits, so b1 waits for the spacing */
    m_advance_to(&mc, 1150);
    log_wait(&g, 3); /* both at 1150, logged in either order */
    assert_int_equal(g.at[1], 1150);
    assert_int_equal(g.at[2], 1150);
    assert_true(strcmp(g.who[1], "b1") == 0 || strcmp(g.who[2], "b1") == 0);
    for (int i = 0; i < 3; i++)
        pthread_join(r[i].th, NULL);
    hs_limiter_free(l);
    m_destroy(&mc);
}

/* The thread's class: interactive by default, per thread. */
static void *read_prio(void *arg)
{
    *(enum hs_prio *)arg = hs_limiter_thread_priority();
    return NULL;
}

static void test_thread_priority(void **state)
{
    (void)state;
    assert_int_equal(hs_limiter_thread_priority(), HS_PRIO_INTERACTIVE);
    hs_limiter_set_thread_priority(HS_PRIO_BACKGROUND);
    assert_int_equal(hs_limiter_thread_priority(), HS_PRIO_BACKGROUND);
    enum hs_prio other = HS_PRIO_BACKGROUND;
    pthread_t th;
    pthread_create(&th, NULL, read_prio, &other);
    pthread_join(th, NULL);
    assert_int_equal(other, HS_PRIO_INTERACTIVE);
    /* hs_limiter_acquire counts in the thread's class. */
    struct hs_fake_clock fc;
    hs_fake_clock_init(&fc, 0);
    struct hs_limiter *l = hs_limiter_new(5, 1000, &fc.clock);
    hs_limiter_acquire(l);
    struct hs_limiter_stats st;
    hs_limiter_get_stats(l, &st);
    assert_int_equal(st.background_acquired, 1);
    hs_limiter_set_thread_priority(HS_PRIO_INTERACTIVE);
    hs_limiter_acquire(l);
    hs_limiter_get_stats(l, &st);
    assert_int_equal(st.background_acquired, 1);
    assert_int_equal(st.acquired, 2);
    hs_limiter_free(l);
}

/* ---- one budget for several processes: limiters booking in one store ---- */

struct two_stores {
    char dir[64], path[96];
    struct hs_store *a, *b;
};

static void stores_open(struct two_stores *t)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/hs-budget-test-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof t->path, "%s/store.db", t->dir);
    assert_int_equal(hs_store_open(t->path, NULL, &t->a, NULL), HS_OK);
    assert_int_equal(hs_store_open(t->path, NULL, &t->b, NULL), HS_OK);
}

static void stores_close(struct two_stores *t)
{
    hs_store_close(t->a);
    hs_store_close(t->b);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->dir);
    assert_int_equal(system(cmd), 0);
}

/* Two processes (two store handles, a limiter each) send a mixed stream, taking turns: together
 * they never put more than the limit in a window, and together they use the budget up. */
static void test_shared_limiters_keep_one_budget(void **state)
{
    (void)state;
    struct two_stores ts;
    stores_open(&ts);
    struct hs_fake_clock fc;
    hs_fake_clock_init(&fc, 1700000000000LL);
    enum { LIMIT = 20, WINDOW = 6100, N = 200 };
    struct hs_limiter *l[2] = {
        hs_limiter_new_shared(LIMIT, WINDOW, &fc.clock, ts.a, "client-1"),
        hs_limiter_new_shared(LIMIT, WINDOW, &fc.clock, ts.b, "client-1"),
    };
    int64_t *t = calloc(N, sizeof *t);
    int64_t t0 = fc.wall;
    for (int i = 0; i < N; i++) {
        enum hs_prio p = i % 3 == 0 ? HS_PRIO_INTERACTIVE : HS_PRIO_BACKGROUND;
        assert_true(hs_limiter_acquire_as(l[i % 2], p, i % 4 < 2 ? "org-1" : "org-2") >= 0);
        t[i] = fc.wall;
        if (i % 7 == 0)
            hs_fake_clock_advance(&fc, 37);
    }
    for (int i = 1; i < N; i++)
        assert_true(t[i] >= t[i - 1]);
    for (int i = 0; i + LIMIT < N; i++)
        assert_true(t[i + LIMIT] - t[i] >= WINDOW);
    /* 200 requests at 20 a window, background alone never past 18: within 12 windows. */
    assert_true(t[N - 1] - t0 <= 12 * WINDOW);
    /* Each process counts its own requests: the budget's, not its share's. */
    struct hs_limiter_stats sa, sb;
    hs_limiter_get_stats(l[0], &sa);
    hs_limiter_get_stats(l[1], &sb);
    assert_int_equal(sa.acquired + sb.acquired, N);
    hs_limiter_free(l[0]);
    hs_limiter_free(l[1]);
    free(t);
    stores_close(&ts);
}

/* Hover answers one process 429 with Retry-After: 30: the other process's next request, of
 * either class, waits until then too. */
static void test_hold_in_one_process_holds_the_other(void **state)
{
    (void)state;
    struct two_stores ts;
    stores_open(&ts);
    struct hs_fake_clock fc;
    hs_fake_clock_init(&fc, 1700000000000LL);
    struct hs_limiter *a = hs_limiter_new_shared(120, 61000, &fc.clock, ts.a, "client-1");
    struct hs_limiter *b = hs_limiter_new_shared(120, 61000, &fc.clock, ts.b, "client-1");
    assert_int_equal(hs_limiter_acquire_as(b, HS_PRIO_INTERACTIVE, NULL), 0);
    hs_limiter_hold(a, 30000);
    int64_t t0 = fc.wall;
    assert_int_equal(hs_limiter_acquire_as(b, HS_PRIO_INTERACTIVE, NULL), 30000);
    assert_int_equal(fc.wall, t0 + 30000);
    hs_limiter_hold(a, 10000);
    assert_true(hs_limiter_acquire_as(b, HS_PRIO_BACKGROUND, "org-1") >= 10000);
    assert_true(fc.wall >= t0 + 40000);
    hs_limiter_free(a);
    hs_limiter_free(b);
    stores_close(&ts);
}

/* The same within one process, without a store. */
static void test_hold_without_a_store(void **state)
{
    (void)state;
    struct hs_fake_clock fc;
    hs_fake_clock_init(&fc, 0);
    struct hs_limiter *l = hs_limiter_new(120, 61000, &fc.clock);
    hs_limiter_hold(l, 5000);
    assert_int_equal(hs_limiter_acquire_as(l, HS_PRIO_INTERACTIVE, NULL), 5000);
    hs_limiter_hold(l, 2000);
    assert_true(hs_limiter_acquire_as(l, HS_PRIO_BACKGROUND, "org-1") >= 2000);
    hs_limiter_free(l);
    /* A limiter that never waits ignores holds. */
    l = hs_limiter_new(0, 61000, &fc.clock);
    hs_limiter_hold(l, 5000);
    assert_int_equal(hs_limiter_acquire_as(l, HS_PRIO_INTERACTIVE, NULL), 0);
    hs_limiter_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interactive_goes_first),
        cmocka_unit_test(test_background_round_robin_between_orgs),
        cmocka_unit_test(test_shutdown_releases_background),
        cmocka_unit_test(test_never_more_than_limit_in_a_window),
        cmocka_unit_test(test_lone_backlog_leaves_the_reserve),
        cmocka_unit_test(test_background_spaced_while_another_connection_waits),
        cmocka_unit_test(test_thread_priority),
        cmocka_unit_test(test_shared_limiters_keep_one_budget),
        cmocka_unit_test(test_hold_in_one_process_holds_the_other),
        cmocka_unit_test(test_hold_without_a_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
