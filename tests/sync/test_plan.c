/* test_plan.c: which models of a job a pass syncs (src/sync/plan.c), on its own: the policies,
 * open selections first and whatever the policy, "sync when ready" models still working left
 * waiting, selections of models no longer on the job closed, and the policy read from a store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/mem.h"
#include "store/store.h"
#include "store/policies.h"
#include "sync/plan.h"

static struct hs_job *job_of(const char *json)
{
    struct hs_job *j = NULL;
    assert_int_equal(hs_job_from_json(json, strlen(json), &j, NULL), 0);
    return j;
}

/* The plan as "sync ids | waiting ids | vanished ids". */
static char *plan_str(enum hs_autosync policy, const struct hs_job *j,
                      const struct hs_model_status *st, size_t n)
{
    struct hs_sync_plan p;
    hs_sync_plan_make(policy, j, st, n, &p);
    char buf[512];
    size_t len = 0;
    const int64_t *lists[] = {p.sync, p.waiting, p.vanished};
    size_t counts[] = {p.n_sync, p.n_waiting, p.n_vanished};
    for (int l = 0; l < 3; l++) {
        if (l)
            len += (size_t)snprintf(buf + len, sizeof buf - len, "|");
        for (size_t i = 0; i < counts[l]; i++)
            len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%lld", i ? " " : "",
                                    (long long)lists[l][i]);
    }
    assert_true(p.n_selected <= p.n_sync);
    hs_sync_plan_clear(&p);
    return hs_strdup(buf);
}

#define assert_plan(policy, j, st, n, want)                                                        \
    do {                                                                                           \
        char *got_ = plan_str(policy, j, st, n);                                                   \
        assert_string_equal(got_, want);                                                           \
        free(got_);                                                                                \
    } while (0)

/* 701 complete, 702 complete, 703 processing, 704 failed. */
static const char JOB7[] =
    "{\"id\":7,\"external_identifier\":null,\"models\":["
    "{\"id\":701,\"state\":\"complete\",\"updated_at\":\"2025-01-02T00:00:00Z\"},"
    "{\"id\":702,\"state\":\"complete\",\"updated_at\":\"2025-01-02T00:00:00Z\"},"
    "{\"id\":703,\"state\":\"processing\",\"updated_at\":\"2025-01-02T00:00:00Z\"},"
    "{\"id\":704,\"state\":\"failed\",\"updated_at\":\"2025-01-02T00:00:00Z\"}]}";

static void test_policies(void **state)
{
    (void)state;
    struct hs_job *j = job_of(JOB7);
    /* Nothing stored: all -> both complete ones; linked (no external id, no selection) and
     * none -> nothing. */
    assert_plan(HS_AUTOSYNC_ALL, j, NULL, 0, "701 702||");
    assert_plan(HS_AUTOSYNC_LINKED, j, NULL, 0, "||");
    assert_plan(HS_AUTOSYNC_NONE, j, NULL, 0, "||");

    /* 701 synced at this updated_at: only 702 left; at an older one: both again. */
    struct hs_model_status st[1] = {
        {.model_id = 701, .synced_updated_at = (char *)"2025-01-02T00:00:00Z"}};
    assert_plan(HS_AUTOSYNC_ALL, j, st, 1, "702||");
    st[0].synced_updated_at = (char *)"2024-12-01T00:00:00Z";
    assert_plan(HS_AUTOSYNC_ALL, j, st, 1, "701 702||");
    hs_job_free(j);

    /* An external identifier links the job; an empty one does not. */
    j = job_of("{\"id\":8,\"external_identifier\":\"CRM-1\",\"models\":[{\"id\":801,"
               "\"state\":\"complete\"}]}");
    assert_plan(HS_AUTOSYNC_LINKED, j, NULL, 0, "801||");
    hs_job_free(j);
    j = job_of("{\"id\":8,\"external_identifier\":\"\",\"models\":[{\"id\":801,"
               "\"state\":\"complete\"}]}");
    assert_plan(HS_AUTOSYNC_LINKED, j, NULL, 0, "||");
    hs_job_free(j);

    enum hs_autosync p;
    assert_int_equal(hs_autosync_parse("linked", &p), 0);
    assert_int_equal(p, HS_AUTOSYNC_LINKED);
    assert_int_equal(hs_autosync_parse("some", &p), HS_ERR_INVALID);
    assert_int_equal(hs_autosync_parse(NULL, &p), HS_ERR_INVALID);
}

static void test_open_selections(void **state)
{
    (void)state;
    struct hs_job *j = job_of(JOB7);
    struct hs_model_status st[4] = {
        {.model_id = 701, .synced_updated_at = (char *)"2025-01-02T00:00:00Z"},
        {.model_id = 703, .has_selection = true, .selection = HS_SEL_PENDING},
    };
    /* A selection links the job: linked syncs like all. The pending selection of a model
     * still processing waits (running it would only record "pending" again). */
    assert_plan(HS_AUTOSYNC_LINKED, j, st, 2, "702|703|");
    assert_plan(HS_AUTOSYNC_NONE, j, st, 2, "|703|");
    /* ... but a pending one whose model failed runs (to record the failure), a selected one
     * always does; selections come first, then what the policy adds. */
    st[2] = (struct hs_model_status){
        .model_id = 704, .has_selection = true, .selection = HS_SEL_PENDING};
    assert_plan(HS_AUTOSYNC_NONE, j, st, 3, "704|703|");
    st[1].selection = HS_SEL_SELECTED;
    assert_plan(HS_AUTOSYNC_NONE, j, st, 3, "703 704||");
    assert_plan(HS_AUTOSYNC_ALL, j, st, 3, "703 704 702||");
    /* One left in error is run again, and a complete model selected but synced already too
     * (a person asked again). */
    st[0].has_selection = true;
    st[0].selection = HS_SEL_ERROR;
    assert_plan(HS_AUTOSYNC_NONE, j, st, 3, "701 703 704||");
    /* Closed selections (synced, failed upstream) are not open, but still link the job. */
    st[0].selection = HS_SEL_SYNCED;
    st[1].selection = HS_SEL_SYNCED;
    st[2].selection = HS_SEL_FAILED_UPSTREAM;
    assert_plan(HS_AUTOSYNC_NONE, j, st, 3, "||");
    assert_plan(HS_AUTOSYNC_LINKED, j, st, 3, "702||");
    hs_job_free(j);
}

/* Open selections of models no longer on the job are closed; closed ones are left alone. */
static void test_vanished(void **state)
{
    (void)state;
    struct hs_job *j = job_of(JOB7);
    struct hs_model_status st[3] = {
        {.model_id = 700, .has_selection = true, .selection = HS_SEL_PENDING},
        {.model_id = 702, .has_selection = true, .selection = HS_SEL_SELECTED},
        {.model_id = 799, .has_selection = true, .selection = HS_SEL_SYNCED},
    };
    assert_plan(HS_AUTOSYNC_NONE, j, st, 3, "702||700");
    assert_plan(HS_AUTOSYNC_ALL, j, st, 3, "702 701||700");
    hs_job_free(j);
}

/* The policy as a store holds it, and the vanished selections closed in it. */
static void test_store_policy_and_close(void **state)
{
    (void)state;
    char dir[] = "/tmp/hs-plan-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/store.db", dir);
    struct hs_store *s = NULL;
    assert_int_equal(hs_store_open(path, NULL, &s, NULL), HS_OK);
    assert_int_equal(hs_autosync_of(s, "org-1"), HS_AUTOSYNC_ALL); /* none set */
    assert_int_equal(s->policies->policy_put(s, "org-1", "linked", NULL), HS_OK);
    assert_int_equal(hs_autosync_of(s, "org-1"), HS_AUTOSYNC_LINKED);
    assert_int_equal(hs_autosync_of(s, "org-2"), HS_AUTOSYNC_ALL);

    struct hs_selection sel = {
        .job_id = 7, .model_id = 700, .status = HS_SEL_PENDING, .connection_key = (char *)"org-1"};
    assert_int_equal(s->records->selection_put(s, &sel, NULL), HS_OK);
    struct hs_job *j = job_of(JOB7);
    struct hs_model_status *st = NULL;
    size_t n = 0;
    assert_int_equal(s->records->job_models_status(s, 7, &st, &n, NULL), HS_OK);
    struct hs_sync_plan p;
    hs_sync_plan_make(HS_AUTOSYNC_NONE, j, st, n, &p);
    assert_int_equal(p.n_vanished, 1);
    assert_int_equal(hs_sync_plan_close_vanished(s, "org-1", 7, &p, NULL), HS_OK);
    hs_sync_plan_clear(&p);
    hs_model_statuses_free(st, n);
    struct hs_selection *open = NULL;
    assert_int_equal(s->records->selections_open(s, &open, &n, NULL), HS_OK);
    assert_int_equal(n, 0);
    hs_selections_free(open, n);
    assert_int_equal(s->records->job_models_status(s, 7, &st, &n, NULL), HS_OK);
    assert_int_equal(n, 1);
    assert_int_equal(st[0].selection, HS_SEL_FAILED_UPSTREAM);
    assert_string_equal(st[0].reason, HS_PLAN_VANISHED_REASON);
    hs_model_statuses_free(st, n);
    hs_job_free(j);
    hs_store_close(s);
    char cmd[100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policies),
        cmocka_unit_test(test_open_selections),
        cmocka_unit_test(test_vanished),
        cmocka_unit_test(test_store_policy_and_close),
    };
    return cmocka_run_group_tests_name("plan", tests, NULL, NULL);
}
