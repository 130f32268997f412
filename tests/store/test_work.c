/* test_work.c: the storage suite: the queue of work items (store/work.h), through the store
 * interface only (store_test.h), so that every back-end runs it. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/mem.h"
#include "store/work.h"
#include "store_test.h"

/* A worker dies holding a claim: the item is claimable again once the lease has run out. */
static void test_work_lease_expires_after_a_crash(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(
        f->store->work->work_schedule(f->store, "default", 42, "reconcile", 1000, NULL), HS_OK);
    struct hs_work_item w = {0};
    assert_int_equal(f->store->work->work_claim(f->store, "dead-worker", 1000, 30000, &w, NULL),
                     HS_OK);
    hs_work_item_clear(&w);
    assert_int_equal(sql_int(f, "SELECT lease_until_ms FROM work_items"), 31000);
    /* The claimer "crashed": nothing is claimable while the lease holds ... */
    hs_store_close(f->store);
    assert_int_equal(open_store(f, &f->store), HS_OK);
    assert_int_equal(f->store->work->work_claim(f->store, "w2", 30999, 30000, &w, NULL),
                     HS_ERR_NOT_FOUND);
    int64_t due = -1, total = -1;
    assert_int_equal(f->store->work->work_depth(f->store, &due, &total, 30999, NULL), HS_OK);
    assert_int_equal(due, 0);
    assert_int_equal(total, 1);
    /* ... and it is again once it ran out. */
    assert_int_equal(f->store->work->work_claim(f->store, "w2", 31000, 30000, &w, NULL), HS_OK);
    assert_int_equal(w.job_id, 42);
    assert_string_equal(w.reason, "reconcile");
    /* A failure: released for later, attempts + 1, the error kept. */
    assert_int_equal(f->store->work->work_retry(f->store, &w, 90000, "Show Job: HTTP 503", NULL),
                     HS_OK);
    hs_work_item_clear(&w);
    assert_int_equal(f->store->work->work_claim(f->store, "w2", 89999, 30000, &w, NULL),
                     HS_ERR_NOT_FOUND);
    assert_int_equal(f->store->work->work_claim(f->store, "w2", 90000, 30000, &w, NULL), HS_OK);
    assert_int_equal(w.attempts, 1);
    hs_work_item_clear(&w);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM work_items WHERE last_error = "
                                "'Show Job: HTTP 503' AND claimed_by = 'w2'"),
                     1);
}

/* An event arrives while the job is being synced: done() must not drop it. */
static void test_work_done_with_stale_generation_releases(void **state)
{
    struct fixture *f = *state;
    connect_key(f, "default");
    accept_event(f, "default", 7, "accepted", true, 0);
    struct hs_work_item w = {0};
    assert_int_equal(f->store->work->work_claim(f->store, "w1", 1000, 60000, &w, NULL), HS_OK);
    assert_int_equal(w.generation, 1);
    accept_event(f, "default", 7, "accepted", true, 2000); /* during the sync */
    /* The leased item takes the new not_before (the pass after this one). */
    assert_int_equal(sql_int(f, "SELECT not_before_ms FROM work_items"), 3000);
    assert_int_equal(f->store->work->work_done(f->store, &w, NULL), HS_OK);
    hs_work_item_clear(&w);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM work_items WHERE claimed_by IS NULL AND "
                                "lease_until_ms IS NULL AND generation = 2"),
                     1);
    assert_int_equal(f->store->work->work_claim(f->store, "w1", 3000, 60000, &w, NULL), HS_OK);
    assert_int_equal(w.generation, 2);
    assert_int_equal(f->store->work->work_done(f->store, &w, NULL), HS_OK);
    hs_work_item_clear(&w);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM work_items"), 0);
}

/* Org A has many due jobs, org B one that came later: B does not wait for all of A's. */
static void test_work_claims_take_connections_in_turn(void **state)
{
    struct fixture *f = *state;
    for (int64_t j = 1; j <= 5; j++)
        assert_int_equal(f->store->work->work_schedule(f->store, "org-a", j, "reconcile", j, NULL),
                         HS_OK);
    assert_int_equal(f->store->work->work_schedule(f->store, "org-b", 100, "webhook", 50, NULL),
                     HS_OK);
    assert_int_equal(f->store->work->work_schedule(f->store, "org-b", 101, "webhook", 60, NULL),
                     HS_OK);
    const char *want_key[] = {"org-a", "org-b", "org-a", "org-b", "org-a", "org-a", "org-a"};
    const int64_t want_job[] = {1, 100, 2, 101, 3, 4, 5};
    for (size_t i = 0; i < sizeof want_job / sizeof want_job[0]; i++) {
        struct hs_work_item w = {0};
        assert_int_equal(f->store->work->work_claim(f->store, "w", 1000, 60000, &w, NULL), HS_OK);
        assert_string_equal(w.connection_key, want_key[i]);
        assert_int_equal(w.job_id, want_job[i]);
        hs_work_item_clear(&w);
    }
    struct hs_work_item w = {0};
    assert_int_equal(f->store->work->work_claim(f->store, "w", 1000, 60000, &w, NULL),
                     HS_ERR_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STORE_TEST(test_work_lease_expires_after_a_crash),
        STORE_TEST(test_work_done_with_stale_generation_releases),
        STORE_TEST(test_work_claims_take_connections_in_turn),
    };
    return STORE_TESTS("store work", tests);
}
