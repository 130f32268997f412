/* test_retry.c: the retry policy (src/hover/retry.c) with the fake clock: no sleeping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/clock.h"
#include "hover/retry.h"
#include "hoversync.h"

static void test_what_retries(void **state)
{
    (void)state;
    static const long yes[] = {429, 500, 502, 503, 504, 599};
    static const long no[] = {200, 204, 304, 400, 401, 403, 404, 409, 410, 422, 600};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        assert_true(hs_retry_is_retryable(HS_OK, yes[i]));
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        assert_false(hs_retry_is_retryable(HS_OK, no[i]));
    assert_true(hs_retry_is_retryable(HS_ERR_NETWORK, 0));
    assert_true(hs_retry_is_retryable(HS_ERR_TRUNCATED, 0));
    assert_false(hs_retry_is_retryable(HS_ERR_TOOBIG, 0));
    assert_false(hs_retry_is_retryable(HS_ERR_PARSE, 0));
    assert_false(hs_retry_is_retryable(HS_ERR_INVALID, 0));
    assert_false(hs_retry_is_retryable(HS_ERR_IO, 0));
}

static void test_backoff_exponential_capped(void **state)
{
    (void)state;
    struct hs_fake_clock fc;
    hs_fake_clock_init(&fc, 0);
    struct hs_retry_policy p;
    hs_retry_policy_default(&p);
    p.jitter = HS_JITTER_NONE;
    static const int64_t want[] = {500, 1000, 2000, 4000, 8000, 16000, 30000, 30000};
    for (int i = 0; i < 8; i++)
        assert_int_equal(hs_retry_backoff_ms(&p, i, &fc.clock), want[i]);
    /* Far attempts neither overflow nor pass the cap. */
    assert_int_equal(hs_retry_backoff_ms(&p, 1000, &fc.clock), 30000);
    assert_int_equal(hs_retry_backoff_ms(&p, 63, &fc.clock), 30000);
    p.max_ms = INT64_MAX;
    assert_true(hs_retry_backoff_ms(&p, 200, &fc.clock) > 0);
}

static void test_jitter(void **state)
{
    (void)state;
    struct hs_fake_clock fc;
    hs_fake_clock_init(&fc, 0);
    struct hs_retry_policy p;
    hs_retry_policy_default(&p);

    p.jitter = HS_JITTER_FULL;
    fc.random = 0.0;
    assert_int_equal(hs_retry_backoff_ms(&p, 2, &fc.clock), 0);
    fc.random = 0.5;
    assert_int_equal(hs_retry_backoff_ms(&p, 2, &fc.clock), 1000);
    fc.random = 0.75;
    assert_int_equal(hs_retry_backoff_ms(&p, 2, &fc.clock), 1500);

    p.jitter = HS_JITTER_EQUAL;
    fc.random = 0.0;
    assert_int_equal(hs_retry_backoff_ms(&p, 2, &fc.clock), 1000);
    fc.random = 0.5;
    assert_int_equal(hs_retry_backoff_ms(&p, 2, &fc.clock), 1500);
    fc.random = 0.75;
    assert_int_equal(hs_retry_backoff_ms(&p, 2, &fc.clock), 1750);
    /* Equal jitter never goes past the cap either. */
    assert_true(hs_retry_backoff_ms(&p, 50, &fc.clock) <= 30000);
    assert_true(hs_retry_backoff_ms(&p, 50, &fc.clock) >= 15000);
}

static void test_decide(void **state)
{
    (void)state;
    struct hs_fake_clock fc;
    hs_fake_clock_init(&fc, 0);
    fc.random = 0.0;
    struct hs_retry_policy p;
    hs_retry_policy_default(&p);

    struct hs_retry_decision d = hs_retry_decide(&p, 1, HS_OK, 404, -1, &fc.clock);
    assert_int_equal(d.verdict, HS_RETRY_DONE);
    d = hs_retry_decide(&p, 1, HS_OK, 200, -1, &fc.clock);
    assert_int_equal(d.verdict, HS_RETRY_DONE);
    d = hs_retry_decide(&p, 1, HS_ERR_PARSE, 0, -1, &fc.clock);
    assert_int_equal(d.verdict, HS_RETRY_DONE);

    d = hs_retry_decide(&p, 1, HS_OK, 503, -1, &fc.clock);
    assert_int_equal(d.verdict, HS_RETRY_WAIT);
    assert_int_equal(d.wait_ms, 250); /* equal jitter of 500 with random 0 */
    d = hs_retry_decide(&p, 2, HS_ERR_NETWORK, 0, -1, &fc.clock);
    assert_int_equal(d.verdict, HS_RETRY_WAIT);
    assert_int_equal(d.wait_ms, 500);
    d = hs_retry_decide(&p, 5, HS_OK, 503, -1, &fc.clock);
    assert_int_equal(d.verdict, HS_RETRY_GIVE_UP);
    assert_false(d.retry_after_too_long);

    /* Retry-After is a floor on the wait ... */
    d = hs_retry_decide(&p, 1, HS_OK, 429, 7, &fc.clock);
    assert_int_equal(d.verdict, HS_RETRY_WAIT);
    assert_int_equal(d.wait_ms, 7000);
    /* ... not a ceiling: a longer backoff stays. */
    d = hs_retry_decide(&p, 4, HS_OK, 429, 1, &fc.clock);
    assert_int_equal(d.wait_ms, 2000);
    d = hs_retry_decide(&p, 1, HS_OK, 429, 0, &fc.clock);
    assert_int_equal(d.wait_ms, 250);
    /* exactly the cap is fine, over it gives up at once, however many attempts are left */
    d = hs_retry_decide(&p, 1, HS_OK, 429, 120, &fc.clock);
    assert_int_equal(d.verdict, HS_RETRY_WAIT);
    assert_int_equal(d.wait_ms, 120000);
    d = hs_retry_decide(&p, 1, HS_OK, 429, 121, &fc.clock);
    assert_int_equal(d.verdict, HS_RETRY_GIVE_UP);
    assert_true(d.retry_after_too_long);
    d = hs_retry_decide(&p, 1, HS_OK, 503, INT64_MAX / 10, &fc.clock);
    assert_int_equal(d.verdict, HS_RETRY_GIVE_UP);
    assert_true(d.retry_after_too_long);
    /* a 404 with a Retry-After is still final */
    d = hs_retry_decide(&p, 1, HS_OK, 404, 5, &fc.clock);
    assert_int_equal(d.verdict, HS_RETRY_DONE);
}

/* Drives the policy like a client would, through the fake clock. */
static void test_loop_with_fake_clock(void **state)
{
    (void)state;
    struct hs_fake_clock fc;
    hs_fake_clock_init(&fc, 0);
    fc.random = 1.0 - 1e-12;
    struct hs_retry_policy p;
    hs_retry_policy_default(&p);
    p.jitter = HS_JITTER_NONE;
    int attempts = 0;
    struct hs_retry_decision d;
    do {
        attempts++;
        d = hs_retry_decide(&p, attempts, HS_OK, 503, -1, &fc.clock);
        if (d.verdict == HS_RETRY_WAIT)
            fc.clock.sleep_ms(&fc.clock, d.wait_ms);
    } while (d.verdict == HS_RETRY_WAIT);
    assert_int_equal(attempts, 5);
    assert_int_equal(d.verdict, HS_RETRY_GIVE_UP);
    assert_int_equal(fc.sleeps, 4);
    assert_int_equal(fc.slept_total, 500 + 1000 + 2000 + 4000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_what_retries),
        cmocka_unit_test(test_backoff_exponential_capped),
        cmocka_unit_test(test_jitter),
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_loop_with_fake_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
