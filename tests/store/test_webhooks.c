/* test_webhooks.c: the storage suite: webhooks and received events (store/webhooks.h), through the
 * store interface only (store_test.h), so that every back-end runs it. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/mem.h"
#include "store/webhooks.h"
#include "store/work.h"
#include "store_test.h"

static void test_webhooks_roundtrip(void **state)
{
    struct fixture *f = *state;
    struct hs_webhook_row w = {.id = 230293,
                               .connection_key = (char *)"default",
                               .url = (char *)"http://127.0.0.1:9/webhooks/hover",
                               .hmac_secret = (char *)"c2VjcmV0"};
    struct hs_webhook_row out = {0};
    assert_int_equal(f->store->webhooks->webhook_get(f->store, 230293, &out, NULL),
                     HS_ERR_NOT_FOUND);
    assert_int_equal(f->store->webhooks->webhook_put(f->store, &w, NULL), HS_OK);
    /* A row as read back from Hover's list: no secret; verified now, with an error. */
    w.hmac_secret = NULL;
    w.verified_at = (char *)"2026-01-01T00:00:00.000Z";
    w.last_error = (char *)"HTTP 500";
    assert_int_equal(f->store->webhooks->webhook_put(f->store, &w, NULL), HS_OK);
    assert_int_equal(f->store->webhooks->webhook_get(f->store, 230293, &out, NULL), HS_OK);
    assert_string_equal(out.hmac_secret, "c2VjcmV0");
    assert_string_equal(out.verified_at, "2026-01-01T00:00:00.000Z");
    assert_string_equal(out.last_error, "HTTP 500");
    assert_non_null(out.created_at);
    hs_webhook_row_clear(&out);
    /* Verified stays verified; the error clears. */
    w.verified_at = NULL;
    w.last_error = NULL;
    assert_int_equal(f->store->webhooks->webhook_put(f->store, &w, NULL), HS_OK);
    w.id = 230294;
    w.connection_key = (char *)"org-2";
    assert_int_equal(f->store->webhooks->webhook_put(f->store, &w, NULL), HS_OK);
    struct hs_webhook_row *v = NULL;
    size_t n = 0;
    assert_int_equal(f->store->webhooks->webhook_list(f->store, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 2);
    assert_int_equal(v[0].id, 230293);
    assert_non_null(v[0].verified_at);
    assert_null(v[0].last_error);
    assert_null(v[1].hmac_secret);
    hs_webhook_rows_free(v, n);
    assert_int_equal(f->store->webhooks->webhook_delete(f->store, 230293, NULL), HS_OK);
    assert_int_equal(f->store->webhooks->webhook_delete(f->store, 230293, NULL), HS_ERR_NOT_FOUND);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhooks"), 1);
}

/* Three events about one job: three event rows, one work item of generation 3. */
static void test_events_coalesce_into_one_work_item(void **state)
{
    struct fixture *f = *state;
    connect_key(f, "default");
    accept_event(f, "default", 7, "accepted", true, 10000);
    accept_event(f, "default", 7, "accepted", true, 10500);
    int64_t last = accept_event(f, "default", 7, "accepted", true, 20000);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_events WHERE job_id = 7"), 3);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM work_items"), 1);
    assert_int_equal(sql_int(f, "SELECT generation FROM work_items"), 3);
    /* Due at once: no delay while nobody runs the item, and later events do not postpone it. */
    assert_int_equal(sql_int(f, "SELECT not_before_ms FROM work_items"), 10000);
    assert_int_equal(sql_int(f, "SELECT length(body) FROM webhook_events WHERE id = 1"), 48);
    /* Not scheduled: an unknown connection, no job, or schedule false. */
    accept_event(f, "org-unknown", 8, "accepted", true, 10000);
    accept_event(f, "default", 0, "ignored", true, 10000);
    accept_event(f, "default", 9, "ignored", false, 10000);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM work_items"), 1);

    struct hs_work_item w = {0};
    int64_t due = -1, total = -1;
    assert_int_equal(f->store->work->work_depth(f->store, &due, &total, NULL, 9999, NULL), HS_OK);
    assert_int_equal(due, 0);
    assert_int_equal(total, 1);
    assert_int_equal(f->store->work->work_claim(f->store, "w1", NULL, 9999, 5000, &w, NULL, NULL),
                     HS_ERR_NOT_FOUND);
    assert_int_equal(f->store->work->work_claim(f->store, "w1", NULL, 10000, 5000, &w, NULL, NULL),
                     HS_OK);
    assert_string_equal(w.connection_key, "default");
    assert_int_equal(w.job_id, 7);
    assert_string_equal(w.reason, "webhook");
    assert_int_equal(w.generation, 3);
    assert_int_equal(f->store->webhooks->events_processed(f->store, "default", 7, last, NULL),
                     HS_OK);
    assert_int_equal(f->store->work->work_done(f->store, &w, 10000, NULL), HS_OK);
    hs_work_item_clear(&w);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM work_items"), 0);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_events WHERE status = 'processed' "
                                "AND processed_at IS NOT NULL"),
                     3);
}

/* event_accept is its own durable transaction: refused inside the caller's. */
static void test_event_accept_refused_inside_transaction(void **state)
{
    struct fixture *f = *state;
    const struct hs_store_ops *ops = f->store->ops;
    struct hs_event_row e = {.body = (char *)"{}", .body_len = 2, .status = (char *)"accepted"};
    assert_int_equal(ops->begin(f->store, NULL), HS_OK);
    assert_int_equal(f->store->webhooks->event_accept(f->store, &e, false, 0, 0, NULL, NULL),
                     HS_ERR_INTERNAL);
    ops->rollback(f->store);
    e.status = (char *)"bogus";
    assert_int_equal(f->store->webhooks->event_accept(f->store, &e, false, 0, 0, NULL, NULL),
                     HS_ERR_INVALID);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_events"), 0);
}

/* Unverified deliveries (the verification race) are listed by webhook id with their raw body. */
static void test_events_unverified_and_status(void **state)
{
    struct fixture *f = *state;
    int64_t a = accept_event(f, NULL, 0, "unverified", false, 0);
    accept_event(f, NULL, 0, "ignored", false, 0);
    struct hs_event_row *v = NULL;
    size_t n = 0;
    assert_int_equal(f->store->webhooks->events_unverified(f->store, 230293, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].id, a);
    assert_int_equal(v[0].body_len, 48);
    assert_int_equal(memcmp(v[0].body + 43, "\0\"x\"}", 5), 0);
    assert_string_equal(v[0].headers_json, "{\"Date\":\"x\"}");
    assert_null(v[0].connection_key);
    hs_event_rows_free(v, n);
    assert_int_equal(f->store->webhooks->event_set_status(f->store, a, "processed", NULL), HS_OK);
    assert_int_equal(f->store->webhooks->event_set_status(f->store, a, "nonsense", NULL),
                     HS_ERR_INVALID);
    assert_int_equal(f->store->webhooks->event_set_status(f->store, 12345, "ignored", NULL),
                     HS_ERR_NOT_FOUND);
    v = NULL;
    n = 7;
    assert_int_equal(f->store->webhooks->events_unverified(f->store, 230293, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 0);
    free(v);
}

/* A signature is remembered with the event stored for it: a second delivery of it while it is
 * remembered stores nothing (id 0), not even its job's work; once expired it is a new delivery
 * (expired signatures are deleted by retention, not by each delivery). */
static int64_t accept_signed(struct fixture *f, const char *key, int64_t until_ms, int64_t now_ms)
{
    struct hs_event_row e = {.webhook_id = 230293,
                             .connection_key = (char *)"default",
                             .event = (char *)"job-state-changed-v2",
                             .job_id = 7,
                             .body = (char *)"{}",
                             .body_len = 2,
                             .status = (char *)"accepted",
                             .replay_key = key,
                             .replay_until_ms = until_ms};
    int64_t id = -1;
    assert_int_equal(f->store->webhooks->event_accept(f->store, &e, true, 0, now_ms, &id, NULL),
                     HS_OK);
    return id;
}

static void test_event_replays(void **state)
{
    struct fixture *f = *state;
    connect_key(f, "default");
    int64_t first = accept_signed(f, "230293:sig-a", 20000, 10000);
    assert_true(first > 0);
    assert_int_equal(sql_int(f, "SELECT event_id FROM webhook_replays WHERE signature = "
                                "'230293:sig-a'"),
                     first);
    assert_int_equal(accept_signed(f, "230293:sig-a", 20000, 15000), 0);
    assert_int_equal(accept_signed(f, "230293:sig-a", 20000, 19999), 0);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_events"), 1);
    assert_int_equal(sql_int(f, "SELECT generation FROM work_items"), 1);
    int64_t other = accept_signed(f, "230293:sig-b", 20000, 15000);
    assert_true(other > first);
    /* Expired, still in the table: taken over by the new delivery. */
    int64_t again = accept_signed(f, "230293:sig-a", 40000, 20001);
    assert_true(again > other);
    assert_int_equal(sql_int(f, "SELECT event_id FROM webhook_replays WHERE signature = "
                                "'230293:sig-a'"),
                     again);
    assert_int_equal(sql_int(f, "SELECT expires_ms FROM webhook_replays WHERE signature = "
                                "'230293:sig-a'"),
                     40000);
    assert_int_equal(accept_signed(f, "230293:sig-a", 40000, 30000), 0);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_events"), 3);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_replays"), 2);
    assert_int_equal(sql_int(f, "SELECT generation FROM work_items"), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STORE_TEST(test_webhooks_roundtrip),
        STORE_TEST(test_events_coalesce_into_one_work_item),
        STORE_TEST(test_event_accept_refused_inside_transaction),
        STORE_TEST(test_events_unverified_and_status),
        STORE_TEST(test_event_replays),
    };
    return STORE_TESTS("store webhooks", tests);
}
