/* test_outbox.c: the storage suite: CRM notifications and auto-sync policies (store/outbox.h,
 * store/policies.h), through the store interface only (store_test.h), so that every back-end runs
 * it. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/mem.h"
#include "store/outbox.h"
#include "store/policies.h"
#include "store_test.h"

static int64_t next_outbox(struct fixture *f, int64_t now_ms, int64_t *job, int64_t *seq)
{
    struct hs_outbox_row o = {0};
    int rc = f->store->outbox->outbox_next(f->store, now_ms, &o, NULL);
    if (rc)
        return rc;
    int64_t id = o.id;
    if (job)
        *job = o.job_id;
    if (seq)
        *seq = o.seq_in_job;
    hs_outbox_row_clear(&o);
    return id;
}

/* Per (endpoint, job) the messages go out in order: a failing earlier one holds later ones back,
 * and does not hold back other jobs. */
static void test_outbox_order_per_job_and_retry(void **state)
{
    struct fixture *f = *state;
    const struct hs_store_ops *ops = f->store->ops;
    const char *ep = "http://127.0.0.1:9/crm";
    assert_int_equal(f->store->outbox->outbox_add(f->store, ep, 7, "{\"n\":1}", "k1", NULL), HS_OK);
    assert_int_equal(f->store->outbox->outbox_add(f->store, ep, 7, "{\"n\":2}", "k2", NULL), HS_OK);
    assert_int_equal(f->store->outbox->outbox_add(f->store, ep, 8, "{\"n\":3}", "k3", NULL), HS_OK);
    /* The same idempotency key is the same message. */
    assert_int_equal(f->store->outbox->outbox_add(f->store, ep, 7, "{\"n\":1}", "k1", NULL), HS_OK);
    /* Inside a transaction: rolled back with it. */
    assert_int_equal(ops->begin(f->store, NULL), HS_OK);
    assert_int_equal(f->store->outbox->outbox_add(f->store, ep, 7, "{\"n\":9}", "k9", NULL), HS_OK);
    ops->rollback(f->store);
    int64_t pending = -1;
    assert_int_equal(f->store->outbox->outbox_depth(f->store, &pending, NULL), HS_OK);
    assert_int_equal(pending, 3);
    assert_int_equal(sql_int(f, "SELECT seq_in_job FROM outbox WHERE idempotency_key = 'k2'"), 2);
    assert_int_equal(sql_int(f, "SELECT seq_in_job FROM outbox WHERE idempotency_key = 'k3'"), 1);

    int64_t job = 0, seq = 0;
    int64_t first = next_outbox(f, 0, &job, &seq);
    assert_true(first > 0);
    assert_int_equal(job, 7);
    assert_int_equal(seq, 1);
    /* The first of job 7 fails: job 7's second waits, job 8's goes. */
    assert_int_equal(f->store->outbox->outbox_retry(f->store, first, 5000, "HTTP 502", NULL),
                     HS_OK);
    int64_t other = next_outbox(f, 100, &job, &seq);
    assert_int_equal(job, 8);
    assert_int_equal(f->store->outbox->outbox_delivered(f->store, other, NULL), HS_OK);
    assert_int_equal(next_outbox(f, 100, NULL, NULL), HS_ERR_NOT_FOUND);
    /* Due again: the first of job 7, then (once delivered) its second. */
    assert_int_equal(next_outbox(f, 5000, &job, &seq), first);
    assert_int_equal(sql_int(f, "SELECT attempts FROM outbox WHERE idempotency_key = 'k1'"), 1);
    assert_int_equal(f->store->outbox->outbox_delivered(f->store, first, NULL), HS_OK);
    int64_t second = next_outbox(f, 5000, &job, &seq);
    assert_true(second > 0);
    assert_int_equal(job, 7);
    assert_int_equal(seq, 2);
    assert_int_equal(f->store->outbox->outbox_delivered(f->store, second, NULL), HS_OK);
    assert_int_equal(next_outbox(f, 1000000, NULL, NULL), HS_ERR_NOT_FOUND);
    assert_int_equal(f->store->outbox->outbox_depth(f->store, &pending, NULL), HS_OK);
    assert_int_equal(pending, 0);
    /* A new message of job 7 continues its sequence. */
    assert_int_equal(f->store->outbox->outbox_add(f->store, ep, 7, "{\"n\":4}", "k4", NULL), HS_OK);
    assert_int_equal(sql_int(f, "SELECT seq_in_job FROM outbox WHERE idempotency_key = 'k4'"), 3);
    assert_int_equal(f->store->outbox->outbox_retry(f->store, 999999, 1, "x", NULL),
                     HS_ERR_NOT_FOUND);
}

static void test_policies_default_all(void **state)
{
    struct fixture *f = *state;
    char *p = NULL;
    assert_int_equal(f->store->policies->policy_get(f->store, "default", &p, NULL), HS_OK);
    assert_string_equal(p, "all");
    free(p);
    assert_int_equal(f->store->policies->policy_put(f->store, "default", "linked", NULL), HS_OK);
    assert_int_equal(f->store->policies->policy_put(f->store, "default", "some", NULL),
                     HS_ERR_INVALID);
    assert_int_equal(f->store->policies->policy_get(f->store, "default", &p, NULL), HS_OK);
    assert_string_equal(p, "linked");
    free(p);
    assert_int_equal(f->store->policies->policy_put(f->store, "default", "none", NULL), HS_OK);
    assert_int_equal(f->store->policies->policy_get(f->store, "default", &p, NULL), HS_OK);
    assert_string_equal(p, "none");
    free(p);
    assert_int_equal(f->store->policies->policy_get(f->store, "org-2", &p, NULL), HS_OK);
    assert_string_equal(p, "all");
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STORE_TEST(test_outbox_order_per_job_and_retry),
        STORE_TEST(test_policies_default_all),
    };
    return STORE_TESTS("store outbox", tests);
}
