/* test_disconnect.c: the storage suite: deleting a connection (service.h connection_delete),
 * with and without its records, through the store interface only (store_test.h), so that every
 * back-end runs it. Two orgs: org-a is deleted, org-b stays untouched, one file is shared by
 * content between them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/service.h"
#include "store_test.h"

#define NOW_MS  1796000000000LL
#define NOW_ISO "2026-11-30T00:53:20.000Z"

/* org-a: a token pair, a webhook, job 15084303 with two files (one shared with org-b), an
 * accepted delivery with its work item, an open and a synced selection, a session scoped to
 * both orgs. org-b: a token pair and job 15084302 holding the shared file. */
static void two_orgs(struct fixture *f)
{
    connect_key(f, "org-a");
    connect_key(f, "org-b");
    struct test_job a, b;
    make_job(&a);
    make_orchard(&b);
    assert_int_equal(f->store->records->job_upsert(f->store, &a.job, "org-a", NULL, NULL), HS_OK);
    assert_int_equal(f->store->records->job_upsert(f->store, &b.job, "org-b", NULL, NULL), HS_OK);
    struct hs_artifact_row x = artifact("measurements.pdf", SHA_A, "e1");
    put_artifact(f, &x);
    x = artifact("measurements.json", SHA_B, "e2");
    put_artifact(f, &x);
    x = artifact("measurements.pdf", SHA_A, "e3");
    x.model_id = b.models[0].id;
    put_artifact(f, &x);
    struct hs_webhook_row w = {.id = 230293,
                               .connection_key = (char *)"org-a",
                               .url = (char *)"https://sync.example/webhooks/hover",
                               .hmac_secret = (char *)"c2VjcmV0"};
    assert_int_equal(f->store->webhooks->webhook_put(f->store, &w, NULL), HS_OK);
    accept_event(f, "org-a", a.job.id, "accepted", true, NOW_MS - 1000);
    struct hs_selection open = {.job_id = a.job.id,
                                .model_id = a.models[1].id,
                                .status = HS_SEL_PENDING,
                                .connection_key = (char *)"org-a"};
    struct hs_selection done = open;
    done.model_id = a.models[0].id;
    done.status = HS_SEL_SYNCED;
    assert_int_equal(f->store->records->selection_put(f->store, &open, NULL), HS_OK);
    assert_int_equal(f->store->records->selection_put(f->store, &done, NULL), HS_OK);
    const char *both[] = {"org-a", "org-b"};
    struct hs_session s = {.token_sha256 = (char *)SHA_A,
                           .csrf_token = (char *)"c",
                           .created_at = NOW_MS / 1000,
                           .expires_at = NOW_MS / 1000 + 3600,
                           .connections = (char **)both,
                           .n_connections = 2};
    assert_int_equal(f->store->service->session_put(f->store, &s, NULL), HS_OK);
    /* A connect flow begun for each (authorize stage: the name asked for). */
    const struct hs_flow_limits lim = {4, 32, 256};
    for (int i = 0; i < 2; i++) {
        struct hs_connect_flow fl = {.connection = (char *)(i ? "org-b" : "org-a"),
                                     .expires_ms = NOW_MS + 600000};
        memset(fl.id_sha256, i ? 'b' : 'a', 64);
        memset(fl.browser_sha256, '1', 64);
        snprintf(fl.address, sizeof fl.address, "10.0.0.1");
        assert_int_equal(f->store->service->flow_put(f->store, &fl, &lim, NOW_MS, NULL), HS_OK);
    }
}

/* What stays of org-b whatever happens to org-a. */
static void org_b_untouched(struct fixture *f)
{
    struct hs_token t = {0};
    assert_int_equal(f->store->tokens->token_load(f->store, "org-b", &t, NULL), HS_OK);
    hs_token_clear(&t);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM jobs WHERE connection_key = 'org-b' AND "
                                "disconnected_at IS NULL"),
                     1);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM artifacts WHERE model_id = 17338404"), 1);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM connect_flows WHERE connection = 'org-b'"),
                     1);
    struct hs_session out = {0};
    assert_int_equal(f->store->service->session_get(f->store, SHA_A, NOW_MS / 1000 + 1, &out, NULL),
                     HS_OK);
    assert_int_equal(out.n_connections, 1);
    assert_string_equal(out.connections[0], "org-b");
    hs_session_clear(&out);
}

/* Gone whether purged or not: credentials, webhook, queued work, open selections. */
static void org_a_stopped(struct fixture *f)
{
    struct hs_token t = {0};
    struct hs_error err = {0};
    assert_int_equal(f->store->tokens->token_load(f->store, "org-a", &t, &err), HS_ERR_NOT_FOUND);
    struct hs_webhook_row w = {0};
    assert_int_equal(f->store->webhooks->webhook_get(f->store, 230293, &w, NULL), HS_ERR_NOT_FOUND);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM work_items"), 0);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM selections WHERE status = 'pending'"), 0);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM connections WHERE key = 'org-a'"), 0);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM connect_flows WHERE connection = 'org-a'"),
                     0);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_events WHERE status = 'accepted'"),
                     0);
}

static void test_delete_keeps_records_marked_in_the_feed(void **state)
{
    struct fixture *f = *state;
    two_orgs(f);
    json_t *before = feed(f, 0);
    int64_t cursor = cursor_of(before);
    json_decref(before);
    struct hs_connection_deleted d = {0};
    assert_int_equal(
        f->store->service->connection_delete(f->store, "org-a", false, NOW_MS, NOW_ISO, &d, NULL),
        HS_OK);
    assert_true(d.existed);
    assert_int_equal(d.webhooks, 1);
    assert_int_equal(d.work_items, 1);
    assert_int_equal(d.jobs, 1);
    assert_int_equal(d.n_orphans, 0);
    hs_connection_deleted_clear(&d);
    org_a_stopped(f);
    org_b_untouched(f);
    /* The records stay; the feed shows the job again, marked, and org-b's not at all. */
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM artifacts"), 3);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM selections WHERE status = 'synced'"), 1);
    json_t *after = feed(f, cursor);
    assert_int_equal(count_of(after, "jobs"), 1);
    json_t *job = json_array_get(json_object_get(after, "jobs"), 0);
    assert_int_equal(json_integer_value(json_object_get(job, "id")), 15084303);
    assert_string_equal(json_string_value(json_object_get(job, "disconnected_at")), NOW_ISO);
    assert_true(cursor_of(after) > cursor);
    json_decref(after);
    /* Connected jobs say null. */
    json_t *all = feed(f, 0);
    json_t *jobs = json_object_get(all, "jobs");
    for (size_t i = 0; i < json_array_size(jobs); i++) {
        json_t *j = json_array_get(jobs, i);
        if (json_integer_value(json_object_get(j, "id")) == 15084302)
            assert_true(json_is_null(json_object_get(j, "disconnected_at")));
    }
    json_decref(all);
    /* Nothing of that name any more: not found, and nothing changes. */
    struct hs_error err = {0};
    assert_int_equal(
        f->store->service->connection_delete(f->store, "org-a", false, NOW_MS, NOW_ISO, &d, &err),
        HS_ERR_NOT_FOUND);
    assert_int_equal(
        f->store->service->connection_delete(f->store, "org-z", true, NOW_MS, NOW_ISO, &d, &err),
        HS_ERR_NOT_FOUND);
    assert_int_equal(
        f->store->service->connection_delete(f->store, "", true, NOW_MS, NOW_ISO, &d, &err),
        HS_ERR_INVALID);
}

/* Connected again (the org connected anew, its job read again): the mark goes, in the feed. */
static void test_job_read_again_is_connected_again(void **state)
{
    struct fixture *f = *state;
    two_orgs(f);
    struct hs_connection_deleted d = {0};
    assert_int_equal(
        f->store->service->connection_delete(f->store, "org-a", false, NOW_MS, NOW_ISO, &d, NULL),
        HS_OK);
    hs_connection_deleted_clear(&d);
    json_t *before = feed(f, 0);
    int64_t cursor = cursor_of(before);
    json_decref(before);
    struct test_job a;
    make_job(&a);
    bool changed = false;
    assert_int_equal(f->store->records->job_upsert(f->store, &a.job, "org-a", &changed, NULL),
                     HS_OK);
    assert_true(changed);
    json_t *after = feed(f, cursor);
    assert_int_equal(count_of(after, "jobs"), 1);
    json_t *job = json_array_get(json_object_get(after, "jobs"), 0);
    assert_true(json_is_null(json_object_get(job, "disconnected_at")));
    json_decref(after);
}

static void test_purge_removes_rows_and_names_only_its_own_files(void **state)
{
    struct fixture *f = *state;
    two_orgs(f);
    int64_t first = 0;
    assert_int_equal(search_count(f, "4312 Meadow", NULL, &first), 1);
    struct hs_connection_deleted d = {0};
    assert_int_equal(
        f->store->service->connection_delete(f->store, "org-a", true, NOW_MS, NOW_ISO, &d, NULL),
        HS_OK);
    assert_int_equal(d.jobs, 1);
    /* SHA_A is org-b's too: only SHA_B's file is the caller's to remove. */
    assert_int_equal(d.n_orphans, 1);
    assert_string_equal(d.orphans[0], SHA_B);
    hs_connection_deleted_clear(&d);
    org_a_stopped(f);
    org_b_untouched(f);
    static const char *const gone[] = {
        "SELECT COUNT(*) FROM jobs WHERE id = 15084303",
        "SELECT COUNT(*) FROM models WHERE job_id = 15084303",
        "SELECT COUNT(*) FROM artifacts WHERE model_id IN (17338410, 17338411)",
        "SELECT COUNT(*) FROM selections WHERE job_id = 15084303",
        "SELECT COUNT(*) FROM webhook_events WHERE connection_key = 'org-a'",
    };
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++)
        assert_int_equal(sql_int(f, gone[i]), 0);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM artifacts"), 1);
    /* The search no longer finds it. */
    assert_int_equal(search_count(f, "4312 Meadow", NULL, &first), 0);
    store_check_integrity(f);
    /* A second purge of a name without a connection but with records left: none are left. */
    struct hs_error err = {0};
    assert_int_equal(
        f->store->service->connection_delete(f->store, "org-a", true, NOW_MS, NOW_ISO, &d, &err),
        HS_ERR_NOT_FOUND);
}

/* A connection deleted without purge can be purged later: its marked records go then. */
static void test_purge_after_delete(void **state)
{
    struct fixture *f = *state;
    two_orgs(f);
    struct hs_connection_deleted d = {0};
    assert_int_equal(
        f->store->service->connection_delete(f->store, "org-a", false, NOW_MS, NOW_ISO, &d, NULL),
        HS_OK);
    hs_connection_deleted_clear(&d);
    assert_int_equal(
        f->store->service->connection_delete(f->store, "org-a", true, NOW_MS, NOW_ISO, &d, NULL),
        HS_OK);
    assert_false(d.existed);
    assert_int_equal(d.jobs, 1);
    assert_int_equal(d.n_orphans, 1);
    hs_connection_deleted_clear(&d);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM jobs"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STORE_TEST(test_delete_keeps_records_marked_in_the_feed),
        STORE_TEST(test_purge_removes_rows_and_names_only_its_own_files),
        STORE_TEST(test_purge_after_delete),
        STORE_TEST(test_job_read_again_is_connected_again),
    };
    return STORE_TESTS("store disconnect", tests);
}
