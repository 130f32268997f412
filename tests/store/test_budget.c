/* test_budget.c: the storage suite: the installation's Hover request budget (store/budget.h),
 * through the store interface only (store_test.h), so that every back-end runs it. Two handles
 * on one store stand for two processes. Times are unix ms given by the test. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/budget.h"
#include "store/records.h"
#include "store_test.h"

#define T0     1700000000000LL
#define WINDOW 61000

static struct hs_budget_booking book(struct hs_store *s, int limit, bool background,
                                     const char *key, int64_t now)
{
    struct hs_budget_request rq = {.name = "client-1",
                                   .limit = limit,
                                   .window_ms = WINDOW,
                                   .background = background,
                                   .key = key,
                                   .now_ms = now};
    struct hs_budget_booking b = {0};
    struct hs_error err = {0};
    int rc = s->budget->budget_book(s, &rq, &b, &err);
    if (rc)
        fprintf(stderr, "budget_book: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    return b;
}

static struct hs_budget_booking book_others_waiting(struct hs_store *s, int limit, const char *key,
                                                    int64_t now)
{
    struct hs_budget_request rq = {.name = "client-1",
                                   .limit = limit,
                                   .window_ms = WINDOW,
                                   .background = true,
                                   .key = key,
                                   .others_wait = true,
                                   .now_ms = now};
    struct hs_budget_booking b = {0};
    assert_int_equal(s->budget->budget_book(s, &rq, &b, NULL), HS_OK);
    return b;
}

/* The budget's use as status shows it: the starts booked after a moment, by class, of this
 * budget only; and what the last finished runs cost a job. */
static void test_budget_usage(void **state)
{
    struct fixture *f = *state;
    struct hs_budget_usage u = {.interactive = 9};
    assert_int_equal(f->store->budget->budget_usage(f->store, "client-1", T0 - 1, &u, NULL), HS_OK);
    assert_int_equal(u.interactive + u.background + u.requests_per_job_milli, 0);
    for (int i = 0; i < 3; i++)
        book(f->store, 100, false, NULL, T0 + i);
    assert_true(book(f->store, 100, true, "org-1", T0 + 10).booked);
    assert_true(book(f->store, 100, true, "org-1", T0 + 20000).booked);
    assert_int_equal(f->store->budget->budget_usage(f->store, "client-1", T0 - 1, &u, NULL), HS_OK);
    assert_int_equal(u.interactive, 3);
    assert_int_equal(u.background, 2);
    /* After a moment: only what started later. */
    assert_int_equal(f->store->budget->budget_usage(f->store, "client-1", T0 + 1, &u, NULL), HS_OK);
    assert_int_equal(u.interactive, 1);
    assert_int_equal(u.background, 2);
    assert_int_equal(f->store->budget->budget_usage(f->store, "client-2", T0 - 1, &u, NULL), HS_OK);
    assert_int_equal(u.interactive + u.background, 0);
    /* Finished runs with their requests; a running one does not count yet. */
    int64_t r1 = 0, r2 = 0, r3 = 0;
    assert_int_equal(f->store->records->run_begin(f->store, 1, "cli", &r1, NULL), HS_OK);
    assert_int_equal(f->store->records->run_begin(f->store, 2, "cli", &r2, NULL), HS_OK);
    assert_int_equal(f->store->records->run_begin(f->store, 3, "cli", &r3, NULL), HS_OK);
    assert_int_equal(f->store->records->run_end(f->store, r1, "synced", 10, NULL), HS_OK);
    assert_int_equal(f->store->records->run_end(f->store, r2, "synced", 5, NULL), HS_OK);
    assert_int_equal(f->store->budget->budget_usage(f->store, "client-1", T0 - 1, &u, NULL), HS_OK);
    assert_int_equal(u.requests_per_job_milli, 7500);
}

/* Two processes book interactive requests in turn, far more than the limit at once: every
 * request gets a start, and no window of the budget ever holds more than the limit. */
static void test_budget_two_processes_never_exceed_the_limit(void **state)
{
    struct fixture *f = *state;
    struct hs_store *other = NULL;
    assert_int_equal(open_store(f, &other), HS_OK);
    enum { LIMIT = 10, N = 35 };
    int64_t starts[N];
    for (int i = 0; i < N; i++) {
        struct hs_budget_booking b = book(i % 2 ? other : f->store, LIMIT, false, NULL, T0 + i);
        assert_true(b.booked);
        assert_true(b.start_ms >= T0 + i);
        starts[i] = b.start_ms;
    }
    for (int i = 0; i < N; i++) {
        if (i > 0)
            assert_true(starts[i] >= starts[i - 1]); /* in order */
        if (i + LIMIT < N)
            assert_true(starts[i + LIMIT] >= starts[i] + WINDOW);
    }
    /* The first ten go at once; the eleventh when the first leaves the window. */
    assert_int_equal(starts[9], T0 + 9);
    assert_int_equal(starts[10], T0 + WINDOW);
    assert_int_equal(starts[20], T0 + 2 * WINDOW);
    /* The process that booked half of them dies: its starts still count (no slot comes back
     * before its window ends). */
    hs_store_close(other);
    struct hs_budget_booking b = book(f->store, LIMIT, false, NULL, T0 + 100);
    assert_int_equal(b.start_ms, starts[N - LIMIT] + WINDOW);
}

/* Interactive first: a background request that waits for the slot does not get it when an
 * interactive one, even one asked later in another process, wants it. */
static void test_budget_interactive_goes_before_background(void **state)
{
    struct fixture *f = *state;
    struct hs_store *other = NULL;
    assert_int_equal(open_store(f, &other), HS_OK);
    assert_true(book(f->store, 1, false, NULL, T0).booked);
    struct hs_budget_booking bg = book(other, 1, true, "org-a", T0 + 10);
    assert_false(bg.booked);
    assert_int_equal(bg.start_ms, T0 + WINDOW); /* when the slot frees */
    struct hs_budget_booking in = book(f->store, 1, false, NULL, T0 + 20);
    assert_true(in.booked);
    assert_int_equal(in.start_ms, T0 + WINDOW); /* the slot the background request waited for */
    bg = book(other, 1, true, "org-a", T0 + WINDOW);
    assert_false(bg.booked);
    assert_int_equal(bg.start_ms, T0 + 2 * WINDOW);
    bg = book(other, 1, true, "org-a", T0 + 2 * WINDOW);
    assert_true(bg.booked);
    assert_int_equal(bg.start_ms, T0 + 2 * WINDOW);
    hs_store_close(other);
}

/* One connection alone with background work, in two processes: it takes limit - reserve starts
 * at once (18 of 20), then waits until the window holds fewer again; the reserve stays free, so
 * an interactive request behind the backlog starts at once. */
static void test_budget_lone_background_takes_all_but_the_reserve(void **state)
{
    struct fixture *f = *state;
    struct hs_store *other = NULL;
    assert_int_equal(open_store(f, &other), HS_OK);
    for (int i = 0; i < 18; i++) {
        struct hs_budget_booking b = book(i % 2 ? other : f->store, 20, true, "org-a", T0 + i);
        assert_true(b.booked);
        assert_int_equal(b.start_ms, T0 + i);
    }
    struct hs_budget_booking b = book(other, 20, true, "org-a", T0 + 18);
    assert_false(b.booked);
    assert_int_equal(b.start_ms, T0 + WINDOW); /* the first start leaves the window */
    b = book(f->store, 20, false, NULL, T0 + 19);
    assert_true(b.booked);
    assert_int_equal(b.start_ms, T0 + 19);
    /* The interactive start counts: two must leave before the backlog goes on. */
    b = book(other, 20, true, "org-a", T0 + WINDOW);
    assert_false(b.booked);
    assert_int_equal(b.start_ms, T0 + 1 + WINDOW);
    assert_true(book(other, 20, true, "org-a", T0 + 1 + WINDOW).booked);
    hs_store_close(other);
}

/* While another connection's background request waits, starts are spread from the first one:
 * whether that connection waits in the store or, as its process tells, in the caller's process. */
static void test_budget_background_spaced_while_another_waits(void **state)
{
    struct fixture *f = *state;
    struct hs_store *other = NULL;
    assert_int_equal(open_store(f, &other), HS_OK);
    const int64_t gap = WINDOW / 20;
    /* Both wait behind a hold (Hover's 429), org-a first. */
    assert_int_equal(f->store->budget->budget_hold(f->store, "client-1", T0, NULL), HS_OK);
    assert_false(book(f->store, 20, true, "org-a", T0 - 2).booked);
    assert_false(book(other, 20, true, "org-b", T0 - 1).booked);
    assert_true(book(f->store, 20, true, "org-a", T0).booked);
    assert_false(book(f->store, 20, true, "org-a", T0 + 1).booked); /* org-b's turn */
    struct hs_budget_booking b = book(other, 20, true, "org-b", T0 + 1);
    assert_false(b.booked); /* org-a waits too: spaced */
    assert_int_equal(b.start_ms, T0 + gap);
    assert_true(book(other, 20, true, "org-b", T0 + gap).booked);
    /* Nobody else waits: org-a's next start is at once, unless its process says another
     * connection waits there. */
    b = book_others_waiting(f->store, 20, "org-a", T0 + gap + 1);
    assert_false(b.booked);
    assert_int_equal(b.start_ms, T0 + 2 * gap);
    assert_true(book(f->store, 20, true, "org-a", T0 + gap + 2).booked);
    hs_store_close(other);
}

/* Background requests of two orgs waiting in two processes: the slots go to the orgs in turn,
 * spaced, even when one org asks far more often. */
static void test_budget_background_round_robin_between_orgs(void **state)
{
    struct fixture *f = *state;
    struct hs_store *other = NULL;
    assert_int_equal(open_store(f, &other), HS_OK);
    const int64_t gap = WINDOW / 100;
    /* Both wait behind a hold (Hover's 429) when the slots start. */
    assert_int_equal(f->store->budget->budget_hold(f->store, "client-1", T0, NULL), HS_OK);
    assert_false(book(f->store, 100, true, "org-a", T0 - 2).booked);
    assert_false(book(other, 100, true, "org-b", T0 - 1).booked);
    int64_t now = T0;
    char served[16] = "";
    for (int slot = 0; slot < 6; slot++, now += gap) {
        /* org-a asks first each time (twice), org-b once, from the other process. */
        struct hs_budget_booking a = book(f->store, 100, true, "org-a", now);
        struct hs_budget_booking a2 = book(f->store, 100, true, "org-a", now);
        struct hs_budget_booking b = book(other, 100, true, "org-b", now);
        assert_false(a2.booked);
        assert_true(a.booked + b.booked == 1);
        served[slot] = a.booked ? 'a' : 'b';
        if (a.booked) { /* the loser asks again after the spacing */
            assert_true(b.start_ms >= now + gap);
        } else { /* org-b's backlog goes on: it waits again */
            assert_false(book(other, 100, true, "org-b", now).booked);
        }
    }
    assert_string_equal(served, "ababab");
    hs_store_close(other);
}

/* A waiter that stops asking (its process died) loses its turn after HS_BUDGET_WAITER_MS; one
 * that leaves gives it up at once. */
static void test_budget_waiter_place_lapses(void **state)
{
    struct fixture *f = *state;
    const int64_t gap = WINDOW / 100;
    assert_int_equal(f->store->budget->budget_hold(f->store, "client-1", T0, NULL), HS_OK);
    assert_false(book(f->store, 100, true, "org-a", T0 - 2).booked);
    assert_false(book(f->store, 100, true, "org-b", T0 - 1).booked); /* b waits */
    assert_true(book(f->store, 100, true, "org-a", T0).booked);
    /* b's process dies. a waits: b, served never, has the turn until its place lapses. */
    assert_false(book(f->store, 100, true, "org-a", T0 + gap).booked);
    assert_false(book(f->store, 100, true, "org-a", T0 - 2 + HS_BUDGET_WAITER_MS).booked);
    assert_true(book(f->store, 100, true, "org-a", T0 - 1 + HS_BUDGET_WAITER_MS).booked);
    /* b waits again, then leaves (its process stops): a is not held up. */
    int64_t now = T0 + HS_BUDGET_WAITER_MS + gap;
    assert_int_equal(f->store->budget->budget_hold(f->store, "client-1", now + 5, NULL), HS_OK);
    assert_false(book(f->store, 100, true, "org-b", now - 1).booked);
    assert_false(book(f->store, 100, true, "org-a", now).booked);
    assert_int_equal(f->store->budget->budget_leave(f->store, "client-1", "org-b", NULL), HS_OK);
    assert_true(book(f->store, 100, true, "org-a", now + 5).booked);
}

/* Hover's 429 with Retry-After: every booking of the budget, from any process, waits until the
 * hold ends; a shorter hold does not cut a longer one. */
static void test_budget_hold_stops_every_booking(void **state)
{
    struct fixture *f = *state;
    struct hs_store *other = NULL;
    assert_int_equal(open_store(f, &other), HS_OK);
    int64_t until = -1;
    assert_int_equal(other->budget->budget_held_until(other, "client-1", &until, NULL), HS_OK);
    assert_int_equal(until, 0);
    assert_int_equal(f->store->budget->budget_hold(f->store, "client-1", T0 + 30000, NULL), HS_OK);
    assert_int_equal(f->store->budget->budget_hold(f->store, "client-1", T0 + 5000, NULL), HS_OK);
    assert_int_equal(other->budget->budget_held_until(other, "client-1", &until, NULL), HS_OK);
    assert_int_equal(until, T0 + 30000);
    struct hs_budget_booking b = book(other, 120, false, NULL, T0 + 1);
    assert_true(b.booked);
    assert_int_equal(b.start_ms, T0 + 30000);
    b = book(other, 120, true, "org-a", T0 + 2);
    assert_false(b.booked);
    assert_int_equal(b.start_ms, T0 + 30000);
    /* Another budget (another client id) is not held. */
    struct hs_budget_request rq = {
        .name = "client-2", .limit = 120, .window_ms = WINDOW, .now_ms = T0 + 3};
    assert_int_equal(other->budget->budget_book(other, &rq, &b, NULL), HS_OK);
    assert_int_equal(b.start_ms, T0 + 3);
    hs_store_close(other);
}

/* One process of the race below: its own handle, books `n` requests at one instant. */
struct racer {
    struct hs_store *store;
    bool background;
    int n, booked;
    int64_t starts[20];
    int failed;
};

static void *race_main(void *arg)
{
    struct racer *r = arg;
    for (int i = 0; i < r->n; i++) {
        struct hs_budget_request rq = {.name = r->background ? "client-2" : "client-1",
                                       .limit = 10,
                                       .window_ms = WINDOW,
                                       .background = r->background,
                                       .key = "org-a",
                                       .now_ms = T0};
        struct hs_budget_booking b = {0};
        struct hs_error err = {0};
        if (r->store->budget->budget_book(r->store, &rq, &b, &err) != HS_OK) {
            fprintf(stderr, "budget_book: %s\n", err.msg);
            r->failed++;
        } else if (b.booked) {
            r->starts[r->booked++] = b.start_ms;
        }
    }
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Four processes book at the same instant, at once: every interactive request gets a start and
 * no window holds more than the limit, however their bookings interleave; of their background
 * requests for one connection at that instant, exactly limit - reserve are booked. */
static void test_budget_concurrent_bookings_never_exceed_the_limit(void **state)
{
    struct fixture *f = *state;
    enum { P = 4, EACH = 15, LIMIT = 10 };
    struct racer r[P];
    pthread_t th[P];
    for (int bg = 0; bg < 2; bg++) {
        memset(r, 0, sizeof r);
        for (int i = 0; i < P; i++) {
            assert_int_equal(open_store(f, &r[i].store), HS_OK);
            r[i].background = bg;
            r[i].n = bg ? 5 : EACH;
        }
        for (int i = 0; i < P; i++)
            assert_int_equal(pthread_create(&th[i], NULL, race_main, &r[i]), 0);
        int64_t all[P * EACH];
        int n = 0;
        for (int i = 0; i < P; i++) {
            assert_int_equal(pthread_join(th[i], NULL), 0);
            assert_int_equal(r[i].failed, 0);
            for (int k = 0; k < r[i].booked; k++)
                all[n++] = r[i].starts[k];
            hs_store_close(r[i].store);
        }
        if (bg) { /* a burst: limit - reserve, at once */
            assert_int_equal(n, LIMIT - 1);
            for (int i = 0; i < n; i++)
                assert_int_equal(all[i], T0);
            break;
        }
        assert_int_equal(n, P * EACH);
        qsort(all, (size_t)n, sizeof all[0], cmp_i64);
        for (int i = 0; i + LIMIT < n; i++)
            assert_true(all[i + LIMIT] >= all[i] + WINDOW);
        assert_int_equal(all[LIMIT - 1], T0);
        assert_int_equal(all[n - 1], T0 + (n - 1) / LIMIT * WINDOW);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STORE_TEST(test_budget_two_processes_never_exceed_the_limit),
        STORE_TEST(test_budget_usage),
        STORE_TEST(test_budget_interactive_goes_before_background),
        STORE_TEST(test_budget_lone_background_takes_all_but_the_reserve),
        STORE_TEST(test_budget_background_spaced_while_another_waits),
        STORE_TEST(test_budget_background_round_robin_between_orgs),
        STORE_TEST(test_budget_waiter_place_lapses),
        STORE_TEST(test_budget_hold_stops_every_booking),
        STORE_TEST(test_budget_concurrent_bookings_never_exceed_the_limit),
    };
    return STORE_TESTS("store budget", tests);
}
