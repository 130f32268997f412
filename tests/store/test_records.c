/* test_records.c: the storage suite: the sync records and the records feed (store/records.h), and
 * transactions across them, through the store interface only (store_test.h), so that every back-end
 * runs it. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/mem.h"
#include "store/records.h"
#include "store/search.h"
#include "store_test.h"

static int count_row(void *ctx, const struct hs_artifact_row *a)
{
    (void)a;
    (*(int *)ctx)++;
    return 0;
}

static int artifact_count(struct fixture *f)
{
    int n = 0;
    assert_int_equal(f->store->records->artifact_each(f->store, count_row, &n, NULL), HS_OK);
    return n;
}

static void test_job_upsert_twice_is_unchanged_and_feed_empty(void **state)
{
    struct fixture *f = *state;
    struct test_job t;
    make_job(&t);
    upsert(f, &t.job, true);
    json_t *d1 = feed(f, 0);
    int64_t c1 = cursor_of(d1);
    assert_true(c1 > 0);
    assert_int_equal(count_of(d1, "jobs"), 1);
    assert_int_equal(count_of(d1, "models"), 2);
    json_t *job = json_array_get(json_object_get(d1, "jobs"), 0);
    assert_int_equal(json_integer_value(json_object_get(job, "id")), 15084303);
    assert_string_equal(json_string_value(json_object_get(job, "external_identifier")), "8675309");
    json_t *addr = json_object_get(job, "address");
    assert_string_equal(json_string_value(json_object_get(addr, "city")), "Santa Maria");
    assert_true(fabs(json_real_value(json_object_get(addr, "latitude")) - 34.8784998) < 1e-9);
    json_t *cust = json_object_get(job, "customer");
    assert_true(json_is_null(json_object_get(cust, "name")));
    assert_string_equal(json_string_value(json_object_get(cust, "email")), "owner@example.com");
    assert_int_equal(json_integer_value(json_object_get(job, "change_seq")), c1);
    json_decref(d1);

    upsert(f, &t.job, false);
    json_t *d2 = feed(f, c1);
    assert_int_equal(cursor_of(d2), c1);
    assert_int_equal(count_of(d2, "jobs"), 0);
    assert_int_equal(count_of(d2, "models"), 0);
    assert_int_equal(count_of(d2, "artifacts"), 0);
    json_decref(d2);
}

static void test_model_state_change_bumps_only_that_model(void **state)
{
    struct fixture *f = *state;
    struct test_job t;
    make_job(&t);
    upsert(f, &t.job, true);
    json_t *d1 = feed(f, 0);
    int64_t c1 = cursor_of(d1);
    json_decref(d1);

    t.models[1].state = (char *)"complete";
    upsert(f, &t.job, true);
    json_t *d2 = feed(f, c1);
    assert_int_equal(count_of(d2, "jobs"), 0);
    assert_int_equal(count_of(d2, "models"), 1);
    assert_int_equal(int_at(d2, "models", 0, "id"), 17338411);
    assert_true(int_at(d2, "models", 0, "change_seq") > c1);
    assert_int_equal(cursor_of(d2), int_at(d2, "models", 0, "change_seq"));
    json_decref(d2);

    struct hs_model_row m = {0};
    assert_int_equal(f->store->records->model_get(f->store, 17338411, &m, NULL), HS_OK);
    assert_string_equal(m.state, "complete");
    assert_int_equal(m.job_id, 15084303);
    assert_null(m.synced_updated_at);
    hs_model_row_clear(&m);
    assert_int_equal(f->store->records->model_get(f->store, 17338410, &m, NULL), HS_OK);
    assert_int_equal(m.change_seq, c1); /* the other model kept its sequence */
    hs_model_row_clear(&m);

    /* A model that is no longer on the job stays as it was. */
    t.job.n_models = 1;
    upsert(f, &t.job, false);
    assert_int_equal(f->store->records->model_get(f->store, 17338411, &m, NULL), HS_OK);
    hs_model_row_clear(&m);
    struct hs_error err = {0};
    assert_int_equal(f->store->records->model_get(f->store, 999, &m, &err), HS_ERR_NOT_FOUND);
    assert_null(m.name);
}

static void test_model_mark_synced(void **state)
{
    struct fixture *f = *state;
    struct test_job t;
    make_job(&t);
    upsert(f, &t.job, true);
    json_t *d = feed(f, 0);
    int64_t c1 = cursor_of(d);
    json_decref(d);
    assert_int_equal(
        f->store->records->model_mark_synced(f->store, 17338410, "2025-03-17T01:00:00.000Z", NULL),
        HS_OK);
    d = feed(f, c1);
    assert_int_equal(count_of(d, "models"), 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(d, "models"), 0), "synced_updated_at")),
                        "2025-03-17T01:00:00.000Z");
    int64_t c2 = cursor_of(d);
    assert_true(c2 > c1);
    json_decref(d);
    /* The same mark again changes nothing. */
    assert_int_equal(
        f->store->records->model_mark_synced(f->store, 17338410, "2025-03-17T01:00:00.000Z", NULL),
        HS_OK);
    d = feed(f, c2);
    assert_int_equal(count_of(d, "models"), 0);
    json_decref(d);
    assert_int_equal(f->store->records->model_mark_synced(f->store, 4242, "x", NULL),
                     HS_ERR_NOT_FOUND);
}

static void test_artifact_put_same_sha_is_unchanged(void **state)
{
    struct fixture *f = *state;
    struct test_job t;
    make_job(&t);
    upsert(f, &t.job, true);
    struct hs_artifact_row a = artifact("measurements.pdf", SHA_A, "\"v1\"");
    assert_true(put_artifact(f, &a));
    json_t *d = feed(f, 0);
    int64_t c1 = cursor_of(d);
    assert_int_equal(count_of(d, "artifacts"), 1);
    json_decref(d);

    /* Fetched again: a new validator and time, the same bytes. */
    a.etag = (char *)"\"v2\"";
    a.fetched_at = (char *)"2025-03-19T00:00:00.000Z";
    assert_false(put_artifact(f, &a));
    assert_false(put_artifact(f, &a));
    assert_int_equal(artifact_count(f), 1);
    d = feed(f, c1);
    assert_int_equal(count_of(d, "artifacts"), 0);
    assert_int_equal(cursor_of(d), c1);
    json_decref(d);

    struct hs_artifact_row out = {0};
    assert_int_equal(
        f->store->records->artifact_get(f->store, 17338410, "measurements.pdf", &out, NULL), HS_OK);
    assert_string_equal(out.etag, "\"v2\""); /* kept for the next If-None-Match */
    assert_string_equal(out.fetched_at, "2025-03-19T00:00:00.000Z");
    assert_string_equal(out.sha256, SHA_A);
    assert_int_equal(out.bytes, 1234);
    assert_int_equal(out.image_id, 0);
    assert_int_equal(out.change_seq, c1);
    hs_artifact_row_clear(&out);
    struct hs_error err = {0};
    assert_int_equal(
        f->store->records->artifact_get(f->store, 17338410, "measurements.json", &out, &err),
        HS_ERR_NOT_FOUND);
    assert_null(out.kind);
}

static void test_artifact_new_sha_is_a_change_in_the_feed(void **state)
{
    struct fixture *f = *state;
    struct test_job t;
    make_job(&t);
    upsert(f, &t.job, true);
    struct hs_artifact_row a = artifact("measurements.pdf", SHA_A, NULL);
    assert_true(put_artifact(f, &a));
    json_t *d = feed(f, 0);
    int64_t c1 = cursor_of(d);
    json_decref(d);

    a.sha256 = (char *)SHA_B;
    a.path = (char *)"blobs/e3/b0/e3b0";
    assert_true(put_artifact(f, &a));
    struct hs_artifact_row img = artifact("image.166283885", SHA_A, NULL);
    img.image_id = 166283885;
    img.content_type = (char *)"image/jpeg";
    assert_true(put_artifact(f, &img));
    assert_int_equal(artifact_count(f), 2);

    d = feed(f, c1);
    assert_int_equal(count_of(d, "artifacts"), 2);
    json_t *x = json_array_get(json_object_get(d, "artifacts"), 0);
    assert_string_equal(json_string_value(json_object_get(x, "kind")), "measurements.pdf");
    assert_string_equal(json_string_value(json_object_get(x, "sha256")), SHA_B);
    assert_string_equal(json_string_value(json_object_get(x, "path")), "blobs/e3/b0/e3b0");
    assert_int_equal(json_integer_value(json_object_get(x, "job_id")), 15084303);
    assert_true(json_is_null(json_object_get(x, "image_id")));
    assert_true(json_integer_value(json_object_get(x, "change_seq")) > c1);
    x = json_array_get(json_object_get(d, "artifacts"), 1);
    assert_int_equal(json_integer_value(json_object_get(x, "image_id")), 166283885);
    json_decref(d);
    /* A CRM finds images by Hover image id. */
    assert_int_equal(sql_int(f, "SELECT model_id FROM images WHERE image_id = 166283885"),
                     17338410);

    /* A new URL for the same bytes (a presigned link, another host) is not a change: the feed
     * stays quiet, but the row keeps the URL it was last fetched from. */
    d = feed(f, 0);
    int64_t c2 = cursor_of(d);
    json_decref(d);
    a.source_url = (char *)"https://hover.to/other";
    assert_false(put_artifact(f, &a));
    d = feed(f, c2);
    assert_int_equal(count_of(d, "artifacts"), 0);
    json_decref(d);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM artifacts WHERE source_url = "
                                "'https://hover.to/other'"),
                     1);
}

/* An artifact outside the sync's profile is recorded with its URL, "not fetched", and shows so
 * in the feed; fetching it later is a change; recording it again never undoes a fetch. */
static void test_artifact_recorded_then_fetched(void **state)
{
    struct fixture *f = *state;
    struct test_job t;
    make_job(&t);
    upsert(f, &t.job, true);
    struct hs_artifact_row rec = {.model_id = 17338410,
                                  .kind = (char *)"measurements.xlsx",
                                  .source_url = (char *)"https://hover.to/x.xlsx",
                                  .not_fetched = true};
    json_t *d = feed(f, 0);
    int64_t c0 = cursor_of(d);
    json_decref(d);
    assert_true(put_artifact(f, &rec));
    struct hs_artifact_row out = {0};
    assert_int_equal(
        f->store->records->artifact_get(f->store, 17338410, "measurements.xlsx", &out, NULL),
        HS_OK);
    assert_true(out.not_fetched);
    assert_string_equal(out.source_url, "https://hover.to/x.xlsx");
    assert_string_equal(out.sha256, "");
    assert_string_equal(out.path, "");
    assert_int_equal(out.bytes, 0);
    hs_artifact_row_clear(&out);
    d = feed(f, c0);
    assert_int_equal(count_of(d, "artifacts"), 1);
    json_t *x = json_array_get(json_object_get(d, "artifacts"), 0);
    assert_true(json_is_false(json_object_get(x, "fetched")));
    assert_string_equal(json_string_value(json_object_get(x, "source_url")),
                        "https://hover.to/x.xlsx");
    int64_t c1 = cursor_of(d);
    json_decref(d);
    /* Not servable by sha256: no bytes yet. */
    struct hs_error err = {0};
    assert_int_equal(f->store->records->artifact_by_sha(f->store, "", NULL, &out, &err),
                     HS_ERR_NOT_FOUND);

    /* Recorded again with another URL: the URL is kept, no change. */
    rec.source_url = (char *)"https://hover.to/y.xlsx";
    assert_false(put_artifact(f, &rec));
    d = feed(f, c1);
    assert_int_equal(count_of(d, "artifacts"), 0);
    json_decref(d);

    /* Fetched: a change, with its bytes. */
    struct hs_artifact_row a = artifact("measurements.xlsx", SHA_A, NULL);
    assert_true(put_artifact(f, &a));
    assert_int_equal(
        f->store->records->artifact_get(f->store, 17338410, "measurements.xlsx", &out, NULL),
        HS_OK);
    assert_false(out.not_fetched);
    assert_string_equal(out.sha256, SHA_A);
    hs_artifact_row_clear(&out);
    d = feed(f, c1);
    assert_int_equal(count_of(d, "artifacts"), 1);
    x = json_array_get(json_object_get(d, "artifacts"), 0);
    assert_true(json_is_true(json_object_get(x, "fetched")));
    int64_t c2 = cursor_of(d);
    json_decref(d);

    /* A later sync whose profile leaves it out records it again: the fetched row stays. */
    assert_false(put_artifact(f, &rec));
    assert_int_equal(
        f->store->records->artifact_get(f->store, 17338410, "measurements.xlsx", &out, NULL),
        HS_OK);
    assert_false(out.not_fetched);
    assert_string_equal(out.sha256, SHA_A);
    assert_int_equal(out.bytes, 1234);
    hs_artifact_row_clear(&out);
    d = feed(f, c2);
    assert_int_equal(count_of(d, "artifacts"), 0);
    json_decref(d);
    assert_int_equal(artifact_count(f), 1);

    /* The images view lists stored images only: one recorded is not there until fetched. */
    struct hs_artifact_row img = {.model_id = 17338410,
                                  .kind = (char *)"image.166283886",
                                  .source_url = (char *)"https://hover.to/i.jpg",
                                  .image_id = 166283886,
                                  .not_fetched = true};
    assert_true(put_artifact(f, &img));
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM images WHERE image_id = 166283886"), 0);
    struct hs_artifact_row got = artifact("image.166283886", SHA_B, NULL);
    got.image_id = 166283886;
    assert_true(put_artifact(f, &got));
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM images WHERE image_id = 166283886"), 1);
}

static struct hs_measurements measurements(void)
{
    struct hs_measurements m = {0};
    m.model_id = 17338410;
    m.roof_area_sqft = NAN;
    m.roof_facets = 12;
    m.predominant_pitch = (char *)"6/12";
    m.ridges_ft = 48.5;
    m.hips_ft = NAN;
    m.valleys_ft = 10;
    m.rakes_ft = NAN;
    m.eaves_ft = 120.25;
    m.siding_area_sqft = 2100;
    m.facade_area_sqft = NAN;
    m.openings_count = -1;
    m.openings_area_sqft = NAN;
    m.living_area_sqft = NAN;
    m.raw_json = "{\"roof\":{}}";
    return m;
}

static void test_measurements_nan_is_null_and_change_counts_for_the_model(void **state)
{
    struct fixture *f = *state;
    struct test_job t;
    make_job(&t);
    upsert(f, &t.job, true);
    json_t *d = feed(f, 0);
    int64_t c1 = cursor_of(d);
    json_decref(d);

    struct hs_measurements m = measurements();
    bool changed = false;
    assert_int_equal(f->store->records->measurements_put(f->store, &m, &changed, NULL), HS_OK);
    assert_true(changed);
    d = feed(f, c1);
    assert_int_equal(count_of(d, "models"), 1); /* the model, because its measurements changed */
    json_t *model = json_array_get(json_object_get(d, "models"), 0);
    assert_int_equal(json_integer_value(json_object_get(model, "id")), 17338410);
    assert_true(json_integer_value(json_object_get(model, "change_seq")) > c1);
    json_t *ms = json_object_get(model, "measurements");
    assert_true(json_is_object(ms));
    assert_true(json_is_null(json_object_get(ms, "roof_area_sqft")));
    assert_true(json_is_null(json_object_get(ms, "openings_count")));
    assert_int_equal(json_integer_value(json_object_get(ms, "roof_facets")), 12);
    assert_true(json_real_value(json_object_get(ms, "ridges_ft")) == 48.5);
    assert_string_equal(json_string_value(json_object_get(ms, "predominant_pitch")), "6/12");
    int64_t c2 = cursor_of(d);
    json_decref(d);
    /* The columns a CRM reads are NULL, not NaN or -1. */
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM measurements WHERE roof_area_sqft IS NULL "
                                "AND openings_count IS NULL AND living_area_sqft IS NULL "
                                "AND eaves_ft = 120.25"),
                     1);
    d = feed(f, 0); /* ordered by sequence: first the model without measurements, with null */
    json_t *other = json_array_get(json_object_get(d, "models"), 0);
    assert_int_equal(json_integer_value(json_object_get(other, "id")), 17338411);
    assert_true(json_is_null(json_object_get(other, "measurements")));
    json_decref(d);

    assert_int_equal(f->store->records->measurements_put(f->store, &m, &changed, NULL), HS_OK);
    assert_false(changed);
    d = feed(f, c2);
    assert_int_equal(count_of(d, "models"), 0);
    json_decref(d);

    m.raw_json = "{\"roof\":{\"x\":1}}";
    assert_int_equal(f->store->records->measurements_put(f->store, &m, &changed, NULL), HS_OK);
    assert_true(changed);
    m.roof_area_sqft = 2400.5;
    assert_int_equal(f->store->records->measurements_put(f->store, &m, &changed, NULL), HS_OK);
    assert_true(changed);
    d = feed(f, c2);
    assert_int_equal(count_of(d, "models"), 1);
    json_decref(d);
}

static struct hs_selection sel(int64_t job, int64_t model, enum hs_selection_status st,
                               const char *reason)
{
    struct hs_selection s = {0};
    s.job_id = job;
    s.model_id = model;
    s.status = st;
    s.reason = (char *)reason;
    s.connection_key = (char *)"org-463605";
    return s;
}

static void put_sel(struct fixture *f, struct hs_selection s)
{
    struct hs_error err = {0};
    int rc = f->store->records->selection_put(f->store, &s, &err);
    if (rc)
        fprintf(stderr, "selection_put: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
}

static void test_selection_lifecycle(void **state)
{
    struct fixture *f = *state;
    put_sel(f, sel(900, 9001, HS_SEL_SELECTED, NULL));
    usleep(5000); /* created_at has millisecond resolution */
    put_sel(f, sel(100, 1001, HS_SEL_SELECTED, NULL));
    put_sel(f, sel(100, 1002, HS_SEL_FAILED_UPSTREAM, "model failed"));
    put_sel(f, sel(100, 1003, HS_SEL_ERROR, "disk full"));

    struct hs_selection *v = NULL;
    size_t n = 0;
    assert_int_equal(f->store->records->selections_open(f->store, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 3);
    assert_int_equal(v[0].job_id, 900); /* the oldest first, not the smallest id */
    assert_int_equal(v[1].model_id, 1001);
    assert_int_equal(v[2].model_id, 1003);
    assert_int_equal(v[2].status, HS_SEL_ERROR);
    assert_string_equal(v[2].reason, "disk full");
    assert_string_equal(v[0].connection_key, "org-463605");
    hs_selections_free(v, n);

    /* Not complete yet: it waits, keeping its place in the queue. */
    put_sel(f, sel(900, 9001, HS_SEL_PENDING, "model processing"));
    assert_int_equal(f->store->records->selections_open(f->store, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 3);
    assert_int_equal(v[0].job_id, 900);
    assert_int_equal(v[0].status, HS_SEL_PENDING);
    assert_string_equal(v[0].reason, "model processing");
    hs_selections_free(v, n);

    struct hs_selection done = sel(900, 9001, HS_SEL_SYNCED, NULL);
    done.connection_key = NULL; /* keeps the recorded connection */
    put_sel(f, done);
    put_sel(f, sel(100, 1003, HS_SEL_SYNCED, NULL));
    assert_int_equal(f->store->records->selections_open(f->store, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].model_id, 1001);
    hs_selections_free(v, n);
    assert_int_equal(
        sql_int(f, "SELECT COUNT(*) FROM selections WHERE job_id = 900 AND status = 'synced' "
                   "AND connection_key = 'org-463605' AND reason IS NULL"),
        1);

    assert_string_equal(hs_selection_status_name(HS_SEL_FAILED_UPSTREAM), "failed_upstream");
    enum hs_selection_status st = HS_SEL_SELECTED;
    assert_int_equal(hs_selection_status_parse("pending", &st), HS_OK);
    assert_int_equal(st, HS_SEL_PENDING);
    assert_int_equal(hs_selection_status_parse("bogus", &st), HS_ERR_PARSE);
}

static void test_selections_open_empty(void **state)
{
    struct fixture *f = *state;
    struct hs_selection *v = (struct hs_selection *)1;
    size_t n = 7;
    assert_int_equal(f->store->records->selections_open(f->store, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 0);
    assert_null(v);
}

static void test_run_rows(void **state)
{
    struct fixture *f = *state;
    int64_t r1 = 0, r2 = 0;
    assert_int_equal(f->store->records->run_begin(f->store, 15084303, "cli", &r1, NULL), HS_OK);
    assert_int_equal(f->store->records->run_begin(f->store, 0, "pending", &r2, NULL), HS_OK);
    assert_true(r1 > 0);
    assert_true(r2 != r1);
    assert_int_equal(
        f->store->records->run_model_result(f->store, r1, 17338410, "synced", NULL, 3, 1, NULL),
        HS_OK);
    assert_int_equal(f->store->records->run_model_result(f->store, r1, 17338411, "pending",
                                                         "model is processing", 0, 0, NULL),
                     HS_OK);
    assert_int_equal(f->store->records->run_end(f->store, r1, "ok", 7, NULL), HS_OK);
    struct hs_error err = {0};
    assert_int_equal(f->store->records->run_end(f->store, 424242, "ok", 0, &err), HS_ERR_NOT_FOUND);

    char q[300];
    snprintf(q, sizeof q,
             "SELECT COUNT(*) FROM sync_runs WHERE id = %lld AND job_id = 15084303 AND "
             "trigger = 'cli' AND status = 'ok' AND hover_requests = 7 AND finished_at IS NOT "
             "NULL AND finished_at >= started_at",
             (long long)r1);
    assert_int_equal(sql_int(f, q), 1);
    snprintf(q, sizeof q,
             "SELECT COUNT(*) FROM sync_runs WHERE id = %lld AND job_id IS NULL AND "
             "status = 'running' AND finished_at IS NULL",
             (long long)r2);
    assert_int_equal(sql_int(f, q), 1);
    snprintf(q, sizeof q,
             "SELECT SUM(artifacts_fetched) * 10 + SUM(artifacts_unchanged) FROM sync_results "
             "WHERE run_id = %lld",
             (long long)r1);
    assert_int_equal(sql_int(f, q), 31);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM sync_results WHERE result = 'pending' AND "
                                "message = 'model is processing'"),
                     1);
}

/* A run's lease: renewed by its process; once lapsed, the run is interrupted (by whoever looks),
 * and a late renewal of a live process makes it running again. */
static void test_run_leases(void **state)
{
    struct fixture *f = *state;
    const struct hs_records_ops *ops = f->store->records;
    int64_t dead = 0, alive = 0, old = 0;
    assert_int_equal(ops->run_begin(f->store, 1, "cli", &dead, NULL), HS_OK);
    assert_int_equal(ops->run_begin(f->store, 2, "cli", &alive, NULL), HS_OK);
    assert_int_equal(ops->run_begin(f->store, 3, "cli", &old, NULL), HS_OK); /* no lease */
    assert_int_equal(ops->run_renew(f->store, dead, 10000, NULL), HS_OK);
    assert_int_equal(ops->run_renew(f->store, alive, 10000, NULL), HS_OK);
    struct hs_run_counts c = {0};
    assert_int_equal(ops->runs_interrupt_lapsed(f->store, 5000, &c, NULL), HS_OK);
    assert_int_equal(c.marked, 1); /* the run without a lease */
    assert_int_equal(c.running, 2);
    assert_int_equal(c.interrupted, 1);
    assert_int_equal(ops->run_renew(f->store, alive, 20000, NULL), HS_OK);
    assert_int_equal(ops->runs_interrupt_lapsed(f->store, 15000, &c, NULL), HS_OK);
    assert_int_equal(c.marked, 1);
    assert_int_equal(c.running, 1);
    assert_int_equal(c.interrupted, 2);
    char q[200];
    snprintf(q, sizeof q,
             "SELECT COUNT(*) FROM sync_runs WHERE id = %lld AND status = 'interrupted' AND "
             "finished_at IS NOT NULL",
             (long long)dead);
    assert_int_equal(sql_int(f, q), 1);
    /* Looking again changes nothing. */
    assert_int_equal(ops->runs_interrupt_lapsed(f->store, 15000, &c, NULL), HS_OK);
    assert_int_equal(c.marked, 0);
    /* A process that was only stalled renews: its run is running again; an ended run stays. */
    assert_int_equal(ops->run_renew(f->store, dead, 30000, NULL), HS_OK);
    assert_int_equal(ops->run_end(f->store, alive, "synced", 3, NULL), HS_OK);
    assert_int_equal(ops->run_renew(f->store, alive, 40000, NULL), HS_OK);
    assert_int_equal(ops->runs_interrupt_lapsed(f->store, 25000, &c, NULL), HS_OK);
    assert_int_equal(c.running, 1);
    assert_int_equal(c.interrupted, 1);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM sync_runs WHERE status = 'synced'"), 1);
}

static void test_rollback_discards_writes(void **state)
{
    struct fixture *f = *state;
    const struct hs_store_ops *ops = f->store->ops;
    struct test_job t;
    make_job(&t);
    assert_int_equal(ops->begin(f->store, NULL), HS_OK);
    upsert(f, &t.job, true);
    struct hs_model_row m = {0};
    assert_int_equal(f->store->records->model_get(f->store, 17338410, &m, NULL),
                     HS_OK); /* seen inside */
    hs_model_row_clear(&m);
    struct hs_artifact_row a = artifact("measurements.pdf", SHA_A, NULL);
    assert_true(put_artifact(f, &a));
    assert_int_equal(f->store->records->checkpoint_put(f->store, "backfill", "123", NULL), HS_OK);
    ops->rollback(f->store);

    assert_int_equal(f->store->records->model_get(f->store, 17338410, &m, NULL), HS_ERR_NOT_FOUND);
    assert_int_equal(artifact_count(f), 0);
    char *v = NULL;
    assert_int_equal(f->store->records->checkpoint_get(f->store, "backfill", &v, NULL),
                     HS_ERR_NOT_FOUND);
    json_t *d = feed(f, 0);
    assert_int_equal(cursor_of(d), 0); /* the sequence it took was given back */
    assert_int_equal(count_of(d, "jobs"), 0);
    json_decref(d);
    ops->rollback(f->store); /* with nothing open: harmless */

    /* The same writes committed: one sequence value for the whole transaction. */
    assert_int_equal(ops->begin(f->store, NULL), HS_OK);
    upsert(f, &t.job, true);
    assert_true(put_artifact(f, &a));
    assert_int_equal(ops->commit(f->store, NULL), HS_OK);
    d = feed(f, 0);
    assert_int_equal(cursor_of(d), 1);
    assert_int_equal(int_at(d, "jobs", 0, "change_seq"), 1);
    assert_int_equal(int_at(d, "models", 1, "change_seq"), 1);
    assert_int_equal(int_at(d, "artifacts", 0, "change_seq"), 1);
    json_decref(d);
    assert_int_equal(ops->commit(f->store, NULL), HS_ERR_INTERNAL); /* nothing open */
}

/* A lazy transaction is a transaction like the others to its readers: rolled back, nothing of it
 * stays; committed, its writes are there, and the next ordinary one commits as always. */
static void test_lazy_transaction_commits_and_rolls_back(void **state)
{
    struct fixture *f = *state;
    const struct hs_store_ops *ops = f->store->ops;
    char *v = NULL;
    assert_int_equal(ops->begin_lazy(f->store, NULL), HS_OK);
    assert_int_equal(ops->begin_lazy(f->store, NULL), HS_ERR_INTERNAL); /* one at a time */
    assert_int_equal(f->store->records->checkpoint_put(f->store, "progress", "1", NULL), HS_OK);
    ops->rollback(f->store);
    assert_int_equal(f->store->records->checkpoint_get(f->store, "progress", &v, NULL),
                     HS_ERR_NOT_FOUND);

    assert_int_equal(ops->begin_lazy(f->store, NULL), HS_OK);
    assert_int_equal(f->store->records->checkpoint_put(f->store, "progress", "2", NULL), HS_OK);
    assert_int_equal(ops->commit(f->store, NULL), HS_OK);
    assert_int_equal(f->store->records->checkpoint_get(f->store, "progress", &v, NULL), HS_OK);
    assert_string_equal(v, "2");
    free(v);

    assert_int_equal(ops->begin(f->store, NULL), HS_OK);
    assert_int_equal(f->store->records->checkpoint_put(f->store, "progress", "3", NULL), HS_OK);
    assert_int_equal(ops->commit(f->store, NULL), HS_OK);
    assert_int_equal(f->store->records->checkpoint_get(f->store, "progress", &v, NULL), HS_OK);
    assert_string_equal(v, "3");
    free(v);
}

/* A failed op inside a transaction undoes only itself: the caller may still commit the rest. */
static void test_failed_op_inside_transaction_leaves_the_rest(void **state)
{
    struct fixture *f = *state;
    const struct hs_store_ops *ops = f->store->ops;
    struct test_job t;
    make_job(&t);
    assert_int_equal(ops->begin(f->store, NULL), HS_OK);
    upsert(f, &t.job, true);
    struct hs_artifact_row a = artifact("measurements.pdf", SHA_A, NULL);
    a.model_id = 555; /* no such model */
    bool changed = false;
    struct hs_error err = {0};
    assert_int_equal(f->store->records->artifact_put(f->store, &a, &changed, &err),
                     HS_ERR_CONFLICT);
    assert_int_equal(ops->commit(f->store, NULL), HS_OK);
    struct hs_model_row m = {0};
    assert_int_equal(f->store->records->model_get(f->store, 17338410, &m, NULL), HS_OK);
    hs_model_row_clear(&m);
    assert_int_equal(artifact_count(f), 0);

    /* After a failed op the transaction goes on, with one sequence value for what it changed. */
    assert_int_equal(ops->begin(f->store, NULL), HS_OK);
    struct hs_measurements ms = measurements();
    ms.model_id = 555;
    assert_int_equal(f->store->records->measurements_put(f->store, &ms, &changed, NULL),
                     HS_ERR_CONFLICT);
    ms.model_id = 17338410;
    assert_int_equal(f->store->records->measurements_put(f->store, &ms, &changed, NULL), HS_OK);
    assert_true(changed);
    t.models[0].state = (char *)"failed";
    upsert(f, &t.job, true);
    assert_int_equal(ops->commit(f->store, NULL), HS_OK);
    json_t *d = feed(f, 1);
    assert_int_equal(cursor_of(d), 2);
    assert_int_equal(count_of(d, "models"), 1);
    assert_int_equal(int_at(d, "models", 0, "change_seq"), 2);
    json_decref(d);
}

/* Another thread's write is no part of our transaction: it survives our rollback, and ours does
 * not leak into it. On SQLite (one writer) it waits for our transaction to end; on PostgreSQL
 * (row locks) it commits beside it. */
struct writer {
    struct hs_store *store;
    int rc;
    volatile int done;
};

static void *write_checkpoint(void *arg)
{
    struct writer *w = arg;
    w->rc = w->store->records->checkpoint_put(w->store, "other", "thread", NULL);
    w->done = 1;
    return NULL;
}

static void test_transaction_excludes_other_threads(void **state)
{
    struct fixture *f = *state;
    const struct hs_store_ops *ops = f->store->ops;
    assert_int_equal(ops->begin(f->store, NULL), HS_OK);
    struct writer w = {.store = f->store};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, write_checkpoint, &w), 0);
    if (!store_test_is_pg()) {
        usleep(200 * 1000);
        assert_int_equal(w.done, 0);
    }
    assert_int_equal(f->store->records->checkpoint_put(f->store, "mine", "1", NULL), HS_OK);
    ops->rollback(f->store);
    pthread_join(th, NULL);
    assert_int_equal(w.rc, HS_OK);
    char *v = NULL;
    assert_int_equal(f->store->records->checkpoint_get(f->store, "other", &v, NULL), HS_OK);
    assert_string_equal(v, "thread");
    free(v);
    assert_int_equal(f->store->records->checkpoint_get(f->store, "mine", &v, NULL),
                     HS_ERR_NOT_FOUND);
}

static void test_export_cursor_is_monotonic(void **state)
{
    struct fixture *f = *state;
    struct test_job t;
    make_job(&t);
    int64_t prev = 0;
    const char *states[] = {"uploading", "processing", "complete", "complete", "failed"};
    for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
        t.models[1].state = (char *)states[i];
        bool changed = false;
        assert_int_equal(f->store->records->job_upsert(f->store, &t.job, "default", &changed, NULL),
                         HS_OK);
        json_t *d = feed(f, prev);
        int64_t c = cursor_of(d);
        assert_true(c >= prev);
        assert_int_equal(c > prev, changed);
        assert_int_equal(count_of(d, "models") > 0, changed);
        json_decref(d);
        d = feed(f, c);
        assert_int_equal(cursor_of(d), c);
        assert_int_equal(count_of(d, "jobs") + count_of(d, "models") + count_of(d, "artifacts"), 0);
        json_decref(d);
        prev = c;
    }
    /* A cursor from the future stays where it is. */
    json_t *d = feed(f, prev + 100);
    assert_int_equal(cursor_of(d), prev + 100);
    json_decref(d);
}

/* ---- the feed under concurrent writers ---- */

#define FEED_WRITERS   6
#define FEED_TXNS      30 /* per writer, each of FEED_PER_TXN new jobs with a model each */
#define FEED_PER_TXN   2
#define FEED_JOBS      (FEED_WRITERS * FEED_TXNS * FEED_PER_TXN)
#define FEED_FIRST_JOB 40000000
#define FEED_MODEL_OF  100000000 /* a job's model id: the job's plus this */

struct feed_writer {
    struct hs_store *store; /* a handle of its own, as another process has */
    int index;
    int failures;
};

static void *feed_write(void *arg)
{
    struct feed_writer *w = arg;
    struct test_job t;
    make_job(&t);
    t.job.n_models = 1;
    for (int i = 0; i < FEED_TXNS; i++) {
        if (w->store->ops->begin(w->store, NULL) != HS_OK) {
            w->failures++;
            continue;
        }
        int rc = HS_OK;
        for (int k = 0; rc == HS_OK && k < FEED_PER_TXN; k++) {
            t.job.id = FEED_FIRST_JOB + (w->index * FEED_TXNS + i) * FEED_PER_TXN + k;
            t.models[0].id = t.job.id + FEED_MODEL_OF;
            bool changed = false;
            rc = w->store->records->job_upsert(w->store, &t.job, "default", &changed, NULL);
        }
        if (rc == HS_OK)
            rc = w->store->ops->commit(w->store, NULL);
        else
            w->store->ops->rollback(w->store);
        if (rc != HS_OK)
            w->failures++;
    }
    return NULL;
}

struct feed_follower {
    struct fixture *f;
    volatile int writers_done;
    int seen_jobs[FEED_JOBS], seen_models[FEED_JOBS];
    int strays, stale, polls;
    int64_t cursor;
};

/* Notes one page's rows of `key` (jobs or models) whose id is the job's plus `offset`. */
static void feed_note(struct feed_follower *fl, json_t *doc, const char *key, int64_t offset,
                      int *seen)
{
    json_t *arr = json_object_get(doc, key), *row;
    size_t i;
    json_array_foreach(arr, i, row)
    {
        int64_t n = json_integer_value(json_object_get(row, "id")) - offset - FEED_FIRST_JOB;
        if (json_integer_value(json_object_get(row, "change_seq")) <= fl->cursor)
            fl->stale++; /* a row at or below the cursor it was asked above */
        if (n < 0 || n >= FEED_JOBS)
            fl->strays++;
        else
            seen[n]++;
    }
}

/* Follows the feed as a CRM does (`since` = the last cursor) until the writers are done and a
 * last page brings nothing. */
static void *feed_follow(void *arg)
{
    struct feed_follower *fl = arg;
    for (bool last = false;;) {
        last = fl->writers_done; /* read before the page: a page after the end is the last */
        char *text = NULL;
        if (fl->f->store->records->export_since(fl->f->store, fl->cursor, NULL, &text, NULL)) {
            fl->strays++;
            break;
        }
        json_t *doc = json_loads(text, 0, NULL);
        free(text);
        if (!doc) {
            fl->strays++;
            break;
        }
        feed_note(fl, doc, "jobs", 0, fl->seen_jobs);
        feed_note(fl, doc, "models", FEED_MODEL_OF, fl->seen_models);
        bool empty = json_array_size(json_object_get(doc, "jobs")) == 0 &&
                     json_array_size(json_object_get(doc, "models")) == 0;
        int64_t next = json_integer_value(json_object_get(doc, "cursor"));
        if (next < fl->cursor)
            fl->stale++;
        fl->cursor = next;
        json_decref(doc);
        fl->polls++;
        if (last && empty)
            break;
    }
    return NULL;
}

/* Many writers (handles of their own, transactions of two jobs) while a follower reads the feed
 * since its last cursor in a loop: it sees every job and model exactly once, never a row at or
 * below a cursor it already had (a row committing later with a lower number would be skipped by
 * a real follower). */
static void test_feed_follower_sees_every_change_once_under_concurrent_writers(void **state)
{
    struct fixture *f = *state;
    struct feed_writer w[FEED_WRITERS];
    pthread_t th[FEED_WRITERS], follower;
    struct feed_follower *fl = hs_calloc(1, sizeof *fl);
    fl->f = f;
    for (int i = 0; i < FEED_WRITERS; i++) {
        w[i] = (struct feed_writer){.index = i};
        assert_int_equal(open_store(f, &w[i].store), HS_OK);
    }
    assert_int_equal(pthread_create(&follower, NULL, feed_follow, fl), 0);
    for (int i = 0; i < FEED_WRITERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, feed_write, &w[i]), 0);
    for (int i = 0; i < FEED_WRITERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
        hs_store_close(w[i].store);
    }
    fl->writers_done = 1;
    pthread_join(follower, NULL);
    assert_int_equal(fl->strays, 0);
    assert_int_equal(fl->stale, 0);
    for (int n = 0; n < FEED_JOBS; n++) {
        if (fl->seen_jobs[n] != 1 || fl->seen_models[n] != 1)
            fail_msg("job %d seen %d times, its model %d times", FEED_FIRST_JOB + n,
                     fl->seen_jobs[n], fl->seen_models[n]);
    }
    /* Followed while they wrote, not only read at the end. */
    fprintf(stderr, "feed: %d jobs by %d writers, followed in %d polls\n", FEED_JOBS, FEED_WRITERS,
            fl->polls);
    assert_true(fl->polls > 1);
    free(fl);
}

static void test_checkpoints_roundtrip(void **state)
{
    struct fixture *f = *state;
    char *v = (char *)"untouched";
    struct hs_error err = {0};
    assert_int_equal(
        f->store->records->checkpoint_get(f->store, "backfill.updated_since", &v, &err),
        HS_ERR_NOT_FOUND);
    assert_string_equal(v, "untouched");
    assert_int_equal(
        f->store->records->checkpoint_put(f->store, "backfill.updated_since", "1742169350", NULL),
        HS_OK);
    assert_int_equal(
        f->store->records->checkpoint_put(f->store, "backfill.updated_since", "1742200000", NULL),
        HS_OK);
    hs_store_close(f->store);
    assert_int_equal(open_store(f, &f->store), HS_OK);
    assert_int_equal(
        f->store->records->checkpoint_get(f->store, "backfill.updated_since", &v, NULL), HS_OK);
    assert_string_equal(v, "1742200000");
    free(v);
}

/* Two jobs of two connections, each with a stored file and image. */
static void two_tenants(struct fixture *f)
{
    struct test_job t;
    make_job(&t);
    struct hs_error err = {0};
    assert_int_equal(f->store->records->job_upsert(f->store, &t.job, "org-a", NULL, &err), HS_OK);
    t.job.id = 15084399;
    t.job.name = (char *)"Meadow Barn";
    t.models[0].id = 17338490;
    t.models[1].id = 17338491;
    assert_int_equal(f->store->records->job_upsert(f->store, &t.job, "org-b", NULL, &err), HS_OK);
    struct hs_artifact_row pdf = artifact("measurements.pdf", SHA_A, NULL);
    put_artifact(f, &pdf);
    struct hs_artifact_row img = artifact("image.166283801", SHA_A, NULL);
    img.image_id = 166283801;
    put_artifact(f, &img);
    pdf.model_id = 17338490;
    pdf.sha256 = (char *)SHA_B;
    put_artifact(f, &pdf);
    img.model_id = 17338490;
    img.kind = (char *)"image.166283899";
    img.image_id = 166283899;
    img.sha256 = (char *)SHA_B;
    put_artifact(f, &img);
}

/* A scope reads the rows of its connections' jobs only: search, records feed, files, images. */
static void test_scoped_reads_stay_in_their_connections(void **state)
{
    struct fixture *f = *state;
    two_tenants(f);
    const char *only_a[] = {"org-a"}, *only_c[] = {"org-c"};
    struct hs_scope a = {only_a, 1}, c = {only_c, 1}, none = {NULL, 0};
    int64_t first = 0;
    /* Search: text (ranked and short), and the recent list, with and without a state. */
    assert_int_equal(search_count(f, "meadow", NULL, &first), 2);
    assert_int_equal(search_count(f, "meadow", &a, &first), 1);
    assert_int_equal(first, 15084303);
    assert_int_equal(search_count(f, "me", &a, &first), 1);
    assert_int_equal(first, 15084303);
    assert_int_equal(search_count(f, "", &a, &first), 1);
    assert_int_equal(search_count(f, "", NULL, &first), 2);
    assert_int_equal(search_count(f, "barn", &a, &first), 0);
    assert_int_equal(search_count(f, "", &c, &first), 0);
    assert_int_equal(search_count(f, "meadow", &none, &first), 0);
    struct hs_job_summary *v = NULL;
    size_t n = 0;
    int64_t total = 0;
    assert_int_equal(
        f->store->search->jobs_search(f->store, "", "completed", 1, 20, &a, &v, &n, &total, NULL),
        HS_OK);
    assert_int_equal(n, 1);
    hs_job_summaries_free(v, n);

    /* The records feed. */
    char *doc = NULL;
    assert_int_equal(f->store->records->export_since(f->store, 0, &a, &doc, NULL), HS_OK);
    json_t *j = json_loads(doc, 0, NULL);
    free(doc);
    assert_int_equal(json_array_size(json_object_get(j, "jobs")), 1);
    assert_int_equal(
        json_integer_value(json_object_get(json_array_get(json_object_get(j, "jobs"), 0), "id")),
        15084303);
    assert_int_equal(json_array_size(json_object_get(j, "models")), 2);
    assert_int_equal(json_array_size(json_object_get(j, "artifacts")), 2);
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(j, "artifacts"), i, x)
    {
        assert_string_equal(json_string_value(json_object_get(x, "sha256")), SHA_A);
    }
    int64_t cursor = json_integer_value(json_object_get(j, "cursor"));
    json_decref(j);
    assert_int_equal(f->store->records->export_since(f->store, 0, NULL, &doc, NULL), HS_OK);
    j = json_loads(doc, 0, NULL);
    free(doc);
    assert_int_equal(json_array_size(json_object_get(j, "jobs")), 2);
    assert_int_equal(json_array_size(json_object_get(j, "artifacts")), 4);
    assert_int_equal(json_integer_value(json_object_get(j, "cursor")), cursor);
    json_decref(j);
    assert_int_equal(f->store->records->export_since(f->store, 0, &c, &doc, NULL), HS_OK);
    j = json_loads(doc, 0, NULL);
    free(doc);
    assert_int_equal(json_array_size(json_object_get(j, "jobs")), 0);
    assert_int_equal(json_array_size(json_object_get(j, "models")), 0);
    assert_int_equal(json_array_size(json_object_get(j, "artifacts")), 0);
    json_decref(j);

    /* Files and images. */
    struct hs_artifact_row out = {0};
    assert_int_equal(f->store->records->artifact_by_sha(f->store, SHA_A, &a, &out, NULL), HS_OK);
    hs_artifact_row_clear(&out);
    assert_int_equal(f->store->records->artifact_by_sha(f->store, SHA_B, &a, &out, NULL),
                     HS_ERR_NOT_FOUND);
    assert_int_equal(f->store->records->artifact_by_sha(f->store, SHA_B, NULL, &out, NULL), HS_OK);
    assert_int_equal(out.model_id, 17338490);
    hs_artifact_row_clear(&out);
    assert_int_equal(f->store->records->artifact_by_image(f->store, 166283801, &a, &out, NULL),
                     HS_OK);
    hs_artifact_row_clear(&out);
    assert_int_equal(f->store->records->artifact_by_image(f->store, 166283899, &a, &out, NULL),
                     HS_ERR_NOT_FOUND);
    assert_int_equal(f->store->records->artifact_by_image(f->store, 166283899, &none, &out, NULL),
                     HS_ERR_NOT_FOUND);
    assert_int_equal(f->store->records->artifact_by_image(f->store, 166283899, NULL, &out, NULL),
                     HS_OK);
    hs_artifact_row_clear(&out);
}

static void test_artifact_by_sha_and_image(void **state)
{
    struct fixture *f = *state;
    struct test_job t;
    make_job(&t);
    upsert(f, &t.job, true);
    struct hs_artifact_row pdf = artifact("measurements.pdf", SHA_A, "\"v1\"");
    put_artifact(f, &pdf);
    struct hs_artifact_row img = artifact("image.166283801", SHA_B, NULL);
    img.content_type = (char *)"image/jpeg";
    img.image_id = 166283801;
    put_artifact(f, &img);

    struct hs_artifact_row out = {0};
    assert_int_equal(f->store->records->artifact_by_sha(f->store, SHA_A, NULL, &out, NULL), HS_OK);
    assert_string_equal(out.kind, "measurements.pdf");
    assert_string_equal(out.content_type, "application/pdf");
    assert_string_equal(out.path, "blobs/ab/cd/abcd");
    assert_int_equal(out.model_id, 17338410);
    hs_artifact_row_clear(&out);
    struct hs_error err = {0};
    assert_int_equal(f->store->records->artifact_by_sha(f->store, "00", NULL, &out, &err),
                     HS_ERR_NOT_FOUND);
    assert_null(out.kind);

    assert_int_equal(f->store->records->artifact_by_image(f->store, 166283801, NULL, &out, NULL),
                     HS_OK);
    assert_string_equal(out.kind, "image.166283801");
    assert_string_equal(out.sha256, SHA_B);
    assert_string_equal(out.content_type, "image/jpeg");
    hs_artifact_row_clear(&out);
    assert_int_equal(f->store->records->artifact_by_image(f->store, 166283802, NULL, &out, NULL),
                     HS_ERR_NOT_FOUND);
    assert_int_equal(f->store->records->artifact_by_image(f->store, 0, NULL, &out, NULL),
                     HS_ERR_INVALID);
}

static void test_job_models_status(void **state)
{
    struct fixture *f = *state;
    struct hs_model_status *v = (struct hs_model_status *)1;
    size_t n = 5;
    assert_int_equal(f->store->records->job_models_status(f->store, 15084303, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 0);
    assert_null(v);

    struct test_job t;
    make_job(&t);
    upsert(f, &t.job, true);
    assert_int_equal(
        f->store->records->model_mark_synced(f->store, 17338410, "2025-03-17T01:00:00.000Z", NULL),
        HS_OK);
    put_sel(f, sel(15084303, 17338410, HS_SEL_SYNCED, NULL));
    put_sel(f, sel(15084303, 17338411, HS_SEL_PENDING, "model processing"));
    /* A selection of a model the store has not seen yet, and another job's. */
    put_sel(f, sel(15084303, 17338499, HS_SEL_SELECTED, NULL));
    put_sel(f, sel(15084399, 17338410, HS_SEL_ERROR, "x"));

    assert_int_equal(f->store->records->job_models_status(f->store, 15084303, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 3);
    assert_int_equal(v[0].model_id, 17338410);
    assert_string_equal(v[0].synced_updated_at, "2025-03-17T01:00:00.000Z");
    assert_true(v[0].has_selection);
    assert_int_equal(v[0].selection, HS_SEL_SYNCED);
    assert_int_equal(v[1].model_id, 17338411);
    assert_null(v[1].synced_updated_at);
    assert_int_equal(v[1].selection, HS_SEL_PENDING);
    assert_string_equal(v[1].reason, "model processing");
    assert_int_equal(v[2].model_id, 17338499);
    assert_int_equal(v[2].selection, HS_SEL_SELECTED);
    hs_model_statuses_free(v, n);

    /* A stored model nobody selected has no selection. */
    sql_exec(f, "DELETE FROM selections WHERE model_id = 17338411");
    assert_int_equal(f->store->records->job_models_status(f->store, 15084303, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 3);
    assert_false(v[1].has_selection);
    assert_null(v[1].reason);
    hs_model_statuses_free(v, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STORE_TEST(test_job_upsert_twice_is_unchanged_and_feed_empty),
        STORE_TEST(test_model_state_change_bumps_only_that_model),
        STORE_TEST(test_model_mark_synced),
        STORE_TEST(test_artifact_put_same_sha_is_unchanged),
        STORE_TEST(test_artifact_new_sha_is_a_change_in_the_feed),
        STORE_TEST(test_artifact_recorded_then_fetched),
        STORE_TEST(test_measurements_nan_is_null_and_change_counts_for_the_model),
        STORE_TEST(test_selection_lifecycle),
        STORE_TEST(test_selections_open_empty),
        STORE_TEST(test_run_rows),
        STORE_TEST(test_run_leases),
        STORE_TEST(test_rollback_discards_writes),
        STORE_TEST(test_lazy_transaction_commits_and_rolls_back),
        STORE_TEST(test_failed_op_inside_transaction_leaves_the_rest),
        STORE_TEST(test_transaction_excludes_other_threads),
        STORE_TEST(test_export_cursor_is_monotonic),
        STORE_TEST(test_feed_follower_sees_every_change_once_under_concurrent_writers),
        STORE_TEST(test_checkpoints_roundtrip),
        STORE_TEST(test_scoped_reads_stay_in_their_connections),
        STORE_TEST(test_artifact_by_sha_and_image),
        STORE_TEST(test_job_models_status),
    };
    return STORE_TESTS("store records", tests);
}
