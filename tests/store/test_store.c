/* test_store.c: the storage suite. Every back-end runs the same cases through the hs_store
 * interface; the SQLite back-end runs them on a real file in a temporary directory. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>

#include "core/mem.h"
#include "store/migrations.h"
#include "store/store.h"

struct fixture {
    char dir[256];
    char path[300];
    struct hs_store *store;
};

static int open_store(struct fixture *f, struct hs_store **out)
{
    struct hs_error err = {0};
    int rc = hs_store_open_sqlite(f->path, out, &err);
    if (rc)
        fprintf(stderr, "open failed: %s\n", err.msg);
    return rc;
}

static int setup(void **state)
{
    struct fixture *f = hs_calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/hs-store-test-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof f->path, "%s/store.db", f->dir);
    if (open_store(f, &f->store))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    hs_store_close(f->store);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

static struct hs_token pair(const char *access, const char *refresh, int64_t expires)
{
    struct hs_token t = {0};
    t.access_token = (char *)access;
    t.refresh_token = (char *)refresh;
    t.expires_at = expires;
    t.owner_id = 463605;
    t.owner_type = (char *)"orgs";
    return t;
}

static void test_missing_token_is_not_found(void **state)
{
    struct fixture *f = *state;
    struct hs_token t = {0};
    struct hs_error err = {0};
    assert_int_equal(f->store->ops->token_load(f->store, "default", &t, &err), HS_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "default"));
    assert_null(t.access_token);
}

static void test_save_load_roundtrip_survives_reopen(void **state)
{
    struct fixture *f = *state;
    struct hs_token in = pair("acc-1", "ref-1", 1800000000);
    assert_int_equal(f->store->ops->token_save(f->store, "org-1", &in, NULL), HS_OK);
    hs_store_close(f->store);
    assert_int_equal(open_store(f, &f->store), HS_OK);

    struct hs_token out = {0};
    assert_int_equal(f->store->ops->token_load(f->store, "org-1", &out, NULL), HS_OK);
    assert_string_equal(out.access_token, "acc-1");
    assert_string_equal(out.refresh_token, "ref-1");
    assert_int_equal(out.expires_at, 1800000000);
    assert_int_equal(out.owner_id, 463605);
    assert_string_equal(out.owner_type, "orgs");
    assert_int_equal(out.generation, 1);
    hs_token_clear(&out);
}

static void test_save_replaces_and_bumps_generation(void **state)
{
    struct fixture *f = *state;
    struct hs_token a = pair("acc-1", "ref-1", 100), b = pair("acc-2", "ref-2", 200);
    assert_int_equal(f->store->ops->token_save(f->store, "k", &a, NULL), HS_OK);
    assert_int_equal(f->store->ops->token_save(f->store, "k", &b, NULL), HS_OK);
    struct hs_token out = {0};
    assert_int_equal(f->store->ops->token_load(f->store, "k", &out, NULL), HS_OK);
    assert_string_equal(out.access_token, "acc-2");
    assert_int_equal(out.generation, 2);
    hs_token_clear(&out);
}

static void test_refresh_end_null_stores_nothing(void **state)
{
    struct fixture *f = *state;
    struct hs_token a = pair("acc-1", "ref-1", 100);
    assert_int_equal(f->store->ops->token_save(f->store, "k", &a, NULL), HS_OK);
    struct hs_token cur = {0};
    assert_int_equal(f->store->ops->token_refresh_begin(f->store, "k", &cur, NULL), HS_OK);
    assert_string_equal(cur.refresh_token, "ref-1");
    assert_int_equal(f->store->ops->token_refresh_end(f->store, "k", NULL, NULL), HS_OK);
    hs_token_clear(&cur);
    struct hs_token out = {0};
    assert_int_equal(f->store->ops->token_load(f->store, "k", &out, NULL), HS_OK);
    assert_string_equal(out.access_token, "acc-1");
    assert_int_equal(out.generation, 1);
    hs_token_clear(&out);
}

static void test_refresh_without_stored_pair(void **state)
{
    struct fixture *f = *state;
    struct hs_token cur = {0};
    assert_int_equal(f->store->ops->token_refresh_begin(f->store, "new", &cur, NULL),
                     HS_ERR_NOT_FOUND);
    struct hs_token r = pair("acc-9", "ref-9", 9);
    assert_int_equal(f->store->ops->token_refresh_end(f->store, "new", &r, NULL), HS_OK);
    struct hs_token out = {0};
    assert_int_equal(f->store->ops->token_load(f->store, "new", &out, NULL), HS_OK);
    assert_string_equal(out.refresh_token, "ref-9");
    hs_token_clear(&out);
}

static void test_refresh_end_without_begin_is_an_error(void **state)
{
    struct fixture *f = *state;
    struct hs_token r = pair("a", "b", 1);
    assert_int_equal(f->store->ops->token_refresh_end(f->store, "k", &r, NULL), HS_ERR_INTERNAL);
}

/* A refresh in another process holds the credential: ours must wait for it and then read the
 * pair it rotated, never the stale one (two refreshers would invalidate each other). */
struct waiter {
    const char *path;
    struct hs_token seen;
    int rc;
    volatile int done;
};

static void *wait_for_refresh(void *arg)
{
    struct waiter *w = arg;
    struct hs_store *s = NULL;
    w->rc = hs_store_open_sqlite(w->path, &s, NULL);
    if (w->rc == HS_OK) {
        w->rc = s->ops->token_refresh_begin(s, "k", &w->seen, NULL);
        if (w->rc == HS_OK)
            s->ops->token_refresh_end(s, "k", NULL, NULL);
        hs_store_close(s);
    }
    w->done = 1;
    return NULL;
}

static void test_refresh_is_exclusive_across_processes(void **state)
{
    struct fixture *f = *state;
    struct hs_token a = pair("acc-old", "ref-old", 100);
    assert_int_equal(f->store->ops->token_save(f->store, "k", &a, NULL), HS_OK);

    int to_parent[2], to_child[2];
    assert_int_equal(pipe(to_parent), 0);
    assert_int_equal(pipe(to_child), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct hs_store *s = NULL;
        struct hs_token cur = {0};
        char c = 'x';
        if (hs_store_open_sqlite(f->path, &s, NULL) ||
            s->ops->token_refresh_begin(s, "k", &cur, NULL))
            _exit(3);
        if (write(to_parent[1], "L", 1) != 1 || read(to_child[0], &c, 1) != 1)
            _exit(4);
        struct hs_token r = pair("acc-new", "ref-new", 200);
        int rc = s->ops->token_refresh_end(s, "k", &r, NULL);
        hs_store_close(s);
        _exit(rc ? 5 : 0);
    }
    char c;
    assert_int_equal(read(to_parent[0], &c, 1), 1); /* the child holds the credential */

    struct waiter w = {.path = f->path};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, wait_for_refresh, &w), 0);
    usleep(300 * 1000);
    assert_int_equal(w.done, 0); /* still waiting for the other process */
    assert_int_equal(write(to_child[1], "G", 1), 1);
    pthread_join(th, NULL);
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(w.rc, HS_OK);
    assert_string_equal(w.seen.access_token, "acc-new");
    assert_string_equal(w.seen.refresh_token, "ref-new");
    assert_int_equal(w.seen.generation, 2);
    hs_token_clear(&w.seen);
}

static void test_reopen_does_not_reapply_migrations(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 3; i++) {
        hs_store_close(f->store);
        assert_int_equal(open_store(f, &f->store), HS_OK);
    }
    struct hs_token a = pair("x", "y", 1);
    assert_int_equal(f->store->ops->token_save(f->store, "k", &a, NULL), HS_OK);
}

static void test_unwritable_path_is_a_clear_error(void **state)
{
    (void)state;
    struct hs_store *s = NULL;
    struct hs_error err = {0};
    assert_int_equal(hs_store_open_sqlite("/nonexistent-dir/x/y.db", &s, &err), HS_ERR_DB);
    assert_null(s);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/x/y.db"));
}

/* ---- sync records ---- */

/* SQLite-specific peeks at the file, for what the interface does not show (columns a CRM reads
 * directly, the migrations table). A second connection, as a CRM would have. */
static int64_t sql_int(struct fixture *f, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v = -999;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void sql_exec(struct fixture *f, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fprintf(stderr, "sql: %s\n", msg ? msg : "?");
    sqlite3_free(msg);
    sqlite3_close(db);
    assert_int_equal(rc, SQLITE_OK);
}

/* A job like Show Job's example: two models, the second still processing. */
struct test_job {
    struct hs_job job;
    struct hs_model models[2];
};

static void make_job(struct test_job *t)
{
    memset(t, 0, sizeof *t);
    struct hs_model *m = t->models;
    m[0].id = 17338410;
    m[0].name = (char *)"Main House";
    m[0].state = (char *)"complete";
    m[0].deliverable = (char *)"complete";
    m[0].deliverable_id = 3;
    m[0].capture_id = 558711;
    m[0].updated_at = (char *)"2025-03-17T01:00:00.000Z";
    m[1].id = 17338411;
    m[1].name = (char *)"Garage";
    m[1].state = (char *)"processing";
    m[1].deliverable = (char *)"complete";
    m[1].updated_at = (char *)"2025-03-17T01:00:00.000Z";
    struct hs_job *j = &t->job;
    j->id = 15084303;
    j->name = (char *)"Main House";
    j->reconstruction_state = (char *)"completed";
    j->external_identifier = (char *)"8675309";
    j->org_id = 463605;
    j->deliverable_id = 3;
    j->created_at = (char *)"2025-03-16T23:55:50.094Z";
    j->updated_at = (char *)"2025-03-17T01:00:00.000Z";
    j->address.line1 = (char *)"4312 Meadow Drive";
    j->address.line2 = (char *)"";
    j->address.city = (char *)"Santa Maria";
    j->address.region = (char *)"CA";
    j->address.postal_code = (char *)"93455";
    j->address.country = (char *)"US";
    j->address.has_coords = true;
    j->address.latitude = 34.8784998;
    j->address.longitude = -120.4139807;
    j->customer.email = (char *)"owner@example.com";
    j->raw_json = (char *)"{\"id\":15084303}";
    j->models = m;
    j->n_models = 2;
}

static json_t *feed(struct fixture *f, int64_t since)
{
    char *s = NULL;
    struct hs_error err = {0};
    int rc = f->store->ops->export_since(f->store, since, &s, &err);
    if (rc)
        fprintf(stderr, "export_since: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    json_error_t je;
    json_t *doc = json_loads(s, 0, &je);
    assert_non_null(doc);
    free(s);
    return doc;
}

static int64_t cursor_of(json_t *doc)
{
    return json_integer_value(json_object_get(doc, "cursor"));
}

static size_t count_of(json_t *doc, const char *key)
{
    json_t *a = json_object_get(doc, key);
    assert_true(json_is_array(a));
    return json_array_size(a);
}

static int64_t int_at(json_t *doc, const char *arr, size_t i, const char *key)
{
    json_t *v = json_object_get(json_array_get(json_object_get(doc, arr), i), key);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static void upsert(struct fixture *f, const struct hs_job *j, bool expect_changed)
{
    bool changed = !expect_changed;
    struct hs_error err = {0};
    int rc = f->store->ops->job_upsert(f->store, j, "default", &changed, &err);
    if (rc)
        fprintf(stderr, "job_upsert: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    assert_int_equal(changed, expect_changed);
}

static struct hs_artifact_row artifact(const char *kind, const char *sha, const char *etag)
{
    struct hs_artifact_row a = {0};
    a.model_id = 17338410;
    a.kind = (char *)kind;
    a.source_url = (char *)"https://hover.to/api/v3/models/17338410/artifacts/measurements.pdf";
    a.sha256 = (char *)sha;
    a.bytes = 1234;
    a.content_type = (char *)"application/pdf";
    a.path = (char *)"blobs/ab/cd/abcd";
    a.etag = (char *)etag;
    a.fetched_at = (char *)"2025-03-18T00:00:00.000Z";
    return a;
}

static bool put_artifact(struct fixture *f, const struct hs_artifact_row *a)
{
    bool changed = false;
    struct hs_error err = {0};
    int rc = f->store->ops->artifact_put(f->store, a, &changed, &err);
    if (rc)
        fprintf(stderr, "artifact_put: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    return changed;
}

static const char SHA_A[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
static const char SHA_B[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

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
    assert_int_equal(f->store->ops->model_get(f->store, 17338411, &m, NULL), HS_OK);
    assert_string_equal(m.state, "complete");
    assert_int_equal(m.job_id, 15084303);
    assert_null(m.synced_updated_at);
    hs_model_row_clear(&m);
    assert_int_equal(f->store->ops->model_get(f->store, 17338410, &m, NULL), HS_OK);
    assert_int_equal(m.change_seq, c1); /* the other model kept its sequence */
    hs_model_row_clear(&m);

    /* A model that is no longer on the job stays as it was. */
    t.job.n_models = 1;
    upsert(f, &t.job, false);
    assert_int_equal(f->store->ops->model_get(f->store, 17338411, &m, NULL), HS_OK);
    hs_model_row_clear(&m);
    struct hs_error err = {0};
    assert_int_equal(f->store->ops->model_get(f->store, 999, &m, &err), HS_ERR_NOT_FOUND);
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
    const struct hs_store_ops *ops = f->store->ops;
    assert_int_equal(ops->model_mark_synced(f->store, 17338410, "2025-03-17T01:00:00.000Z", NULL),
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
    assert_int_equal(ops->model_mark_synced(f->store, 17338410, "2025-03-17T01:00:00.000Z", NULL),
                     HS_OK);
    d = feed(f, c2);
    assert_int_equal(count_of(d, "models"), 0);
    json_decref(d);
    assert_int_equal(ops->model_mark_synced(f->store, 4242, "x", NULL), HS_ERR_NOT_FOUND);
}

static int count_row(void *ctx, const struct hs_artifact_row *a)
{
    (void)a;
    (*(int *)ctx)++;
    return 0;
}

static int artifact_count(struct fixture *f)
{
    int n = 0;
    assert_int_equal(f->store->ops->artifact_each(f->store, count_row, &n, NULL), HS_OK);
    return n;
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
        f->store->ops->artifact_get(f->store, 17338410, "measurements.pdf", &out, NULL), HS_OK);
    assert_string_equal(out.etag, "\"v2\""); /* kept for the next If-None-Match */
    assert_string_equal(out.fetched_at, "2025-03-19T00:00:00.000Z");
    assert_string_equal(out.sha256, SHA_A);
    assert_int_equal(out.bytes, 1234);
    assert_int_equal(out.image_id, 0);
    assert_int_equal(out.change_seq, c1);
    hs_artifact_row_clear(&out);
    struct hs_error err = {0};
    assert_int_equal(
        f->store->ops->artifact_get(f->store, 17338410, "measurements.json", &out, &err),
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
    assert_int_equal(f->store->ops->measurements_put(f->store, &m, &changed, NULL), HS_OK);
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

    assert_int_equal(f->store->ops->measurements_put(f->store, &m, &changed, NULL), HS_OK);
    assert_false(changed);
    d = feed(f, c2);
    assert_int_equal(count_of(d, "models"), 0);
    json_decref(d);

    m.raw_json = "{\"roof\":{\"x\":1}}";
    assert_int_equal(f->store->ops->measurements_put(f->store, &m, &changed, NULL), HS_OK);
    assert_true(changed);
    m.roof_area_sqft = 2400.5;
    assert_int_equal(f->store->ops->measurements_put(f->store, &m, &changed, NULL), HS_OK);
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
    int rc = f->store->ops->selection_put(f->store, &s, &err);
    if (rc)
        fprintf(stderr, "selection_put: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
}

static void test_selection_lifecycle(void **state)
{
    struct fixture *f = *state;
    const struct hs_store_ops *ops = f->store->ops;
    put_sel(f, sel(900, 9001, HS_SEL_SELECTED, NULL));
    usleep(5000); /* created_at has millisecond resolution */
    put_sel(f, sel(100, 1001, HS_SEL_SELECTED, NULL));
    put_sel(f, sel(100, 1002, HS_SEL_FAILED_UPSTREAM, "model failed"));
    put_sel(f, sel(100, 1003, HS_SEL_ERROR, "disk full"));

    struct hs_selection *v = NULL;
    size_t n = 0;
    assert_int_equal(ops->selections_open(f->store, &v, &n, NULL), HS_OK);
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
    assert_int_equal(ops->selections_open(f->store, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 3);
    assert_int_equal(v[0].job_id, 900);
    assert_int_equal(v[0].status, HS_SEL_PENDING);
    assert_string_equal(v[0].reason, "model processing");
    hs_selections_free(v, n);

    struct hs_selection done = sel(900, 9001, HS_SEL_SYNCED, NULL);
    done.connection_key = NULL; /* keeps the recorded connection */
    put_sel(f, done);
    put_sel(f, sel(100, 1003, HS_SEL_SYNCED, NULL));
    assert_int_equal(ops->selections_open(f->store, &v, &n, NULL), HS_OK);
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
    assert_int_equal(f->store->ops->selections_open(f->store, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 0);
    assert_null(v);
}

static void test_run_rows(void **state)
{
    struct fixture *f = *state;
    const struct hs_store_ops *ops = f->store->ops;
    int64_t r1 = 0, r2 = 0;
    assert_int_equal(ops->run_begin(f->store, 15084303, "cli", &r1, NULL), HS_OK);
    assert_int_equal(ops->run_begin(f->store, 0, "pending", &r2, NULL), HS_OK);
    assert_true(r1 > 0);
    assert_true(r2 != r1);
    assert_int_equal(ops->run_model_result(f->store, r1, 17338410, "synced", NULL, 3, 1, NULL),
                     HS_OK);
    assert_int_equal(
        ops->run_model_result(f->store, r1, 17338411, "pending", "model is processing", 0, 0, NULL),
        HS_OK);
    assert_int_equal(ops->run_end(f->store, r1, "ok", 7, NULL), HS_OK);
    struct hs_error err = {0};
    assert_int_equal(ops->run_end(f->store, 424242, "ok", 0, &err), HS_ERR_NOT_FOUND);

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

static void test_rollback_discards_writes(void **state)
{
    struct fixture *f = *state;
    const struct hs_store_ops *ops = f->store->ops;
    struct test_job t;
    make_job(&t);
    assert_int_equal(ops->begin(f->store, NULL), HS_OK);
    upsert(f, &t.job, true);
    struct hs_model_row m = {0};
    assert_int_equal(ops->model_get(f->store, 17338410, &m, NULL), HS_OK); /* seen inside */
    hs_model_row_clear(&m);
    struct hs_artifact_row a = artifact("measurements.pdf", SHA_A, NULL);
    assert_true(put_artifact(f, &a));
    assert_int_equal(ops->checkpoint_put(f->store, "backfill", "123", NULL), HS_OK);
    ops->rollback(f->store);

    assert_int_equal(ops->model_get(f->store, 17338410, &m, NULL), HS_ERR_NOT_FOUND);
    assert_int_equal(artifact_count(f), 0);
    char *v = NULL;
    assert_int_equal(ops->checkpoint_get(f->store, "backfill", &v, NULL), HS_ERR_NOT_FOUND);
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
    assert_int_equal(ops->artifact_put(f->store, &a, &changed, &err), HS_ERR_CONFLICT);
    assert_int_equal(ops->commit(f->store, NULL), HS_OK);
    struct hs_model_row m = {0};
    assert_int_equal(ops->model_get(f->store, 17338410, &m, NULL), HS_OK);
    hs_model_row_clear(&m);
    assert_int_equal(artifact_count(f), 0);

    /* After a failed op the transaction goes on, with one sequence value for what it changed. */
    assert_int_equal(ops->begin(f->store, NULL), HS_OK);
    struct hs_measurements ms = measurements();
    ms.model_id = 555;
    assert_int_equal(ops->measurements_put(f->store, &ms, &changed, NULL), HS_ERR_CONFLICT);
    ms.model_id = 17338410;
    assert_int_equal(ops->measurements_put(f->store, &ms, &changed, NULL), HS_OK);
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

static void test_token_op_inside_transaction_is_refused(void **state)
{
    struct fixture *f = *state;
    const struct hs_store_ops *ops = f->store->ops;
    assert_int_equal(ops->begin(f->store, NULL), HS_OK);
    struct hs_token a = pair("x", "y", 1);
    struct hs_error err = {0};
    assert_int_equal(ops->token_save(f->store, "k", &a, &err), HS_ERR_INTERNAL);
    assert_int_equal(ops->begin(f->store, NULL), HS_ERR_INTERNAL);
    ops->rollback(f->store);
    assert_int_equal(ops->token_save(f->store, "k", &a, NULL), HS_OK);
}

/* Another thread's write waits for our transaction instead of interleaving with it. */
struct writer {
    struct hs_store *store;
    int rc;
    volatile int done;
};

static void *write_checkpoint(void *arg)
{
    struct writer *w = arg;
    w->rc = w->store->ops->checkpoint_put(w->store, "other", "thread", NULL);
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
    usleep(200 * 1000);
    assert_int_equal(w.done, 0);
    assert_int_equal(ops->checkpoint_put(f->store, "mine", "1", NULL), HS_OK);
    ops->rollback(f->store);
    pthread_join(th, NULL);
    assert_int_equal(w.rc, HS_OK);
    char *v = NULL;
    assert_int_equal(ops->checkpoint_get(f->store, "other", &v, NULL), HS_OK);
    assert_string_equal(v, "thread");
    free(v);
    assert_int_equal(ops->checkpoint_get(f->store, "mine", &v, NULL), HS_ERR_NOT_FOUND);
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
        assert_int_equal(f->store->ops->job_upsert(f->store, &t.job, "default", &changed, NULL),
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

static void test_checkpoints_roundtrip(void **state)
{
    struct fixture *f = *state;
    const struct hs_store_ops *ops = f->store->ops;
    char *v = (char *)"untouched";
    struct hs_error err = {0};
    assert_int_equal(ops->checkpoint_get(f->store, "backfill.updated_since", &v, &err),
                     HS_ERR_NOT_FOUND);
    assert_string_equal(v, "untouched");
    assert_int_equal(ops->checkpoint_put(f->store, "backfill.updated_since", "1742169350", NULL),
                     HS_OK);
    assert_int_equal(ops->checkpoint_put(f->store, "backfill.updated_since", "1742200000", NULL),
                     HS_OK);
    hs_store_close(f->store);
    assert_int_equal(open_store(f, &f->store), HS_OK);
    assert_int_equal(f->store->ops->checkpoint_get(f->store, "backfill.updated_since", &v, NULL),
                     HS_OK);
    assert_string_equal(v, "1742200000");
    free(v);
}

/* Turns the file back into a version-1 database, whatever later migrations created: every view,
 * virtual table and table but those of migration 1 is dropped (views and virtual tables first,
 * their triggers and shadow tables go with them). */
static void back_to_v1(struct fixture *f)
{
    static const char next_sql[] =
        "SELECT type, name FROM sqlite_master WHERE type IN ('view', 'table') "
        "AND name NOT IN ('connections', 'oauth_tokens', 'schema_migrations') "
        "AND name NOT LIKE 'sqlite_%' "
        "ORDER BY type = 'view' DESC, sql LIKE 'CREATE VIRTUAL%' DESC LIMIT 1";
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    for (int guard = 0; guard < 100; guard++) {
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_prepare_v2(db, next_sql, -1, &st, NULL), SQLITE_OK);
        char drop[300] = "";
        if (sqlite3_step(st) == SQLITE_ROW)
            snprintf(drop, sizeof drop, "DROP %s \"%s\"",
                     strcmp((const char *)sqlite3_column_text(st, 0), "view") == 0 ? "VIEW"
                                                                                   : "TABLE",
                     (const char *)sqlite3_column_text(st, 1));
        sqlite3_finalize(st);
        if (!drop[0])
            break;
        assert_int_equal(sqlite3_exec(db, drop, NULL, NULL, NULL), SQLITE_OK);
    }
    assert_int_equal(
        sqlite3_exec(db, "DELETE FROM schema_migrations WHERE version > 1", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
}

static void test_migrations_recorded_once(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 3; i++) {
        hs_store_close(f->store);
        assert_int_equal(open_store(f, &f->store), HS_OK);
    }
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM schema_migrations"),
                     hs_sqlite_migrations_count);
    assert_int_equal(sql_int(f, "SELECT COUNT(DISTINCT version) FROM schema_migrations"),
                     hs_sqlite_migrations_count);
    assert_int_equal(sql_int(f, "SELECT MAX(version) FROM schema_migrations"),
                     hs_sqlite_migrations[hs_sqlite_migrations_count - 1].version);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM counters WHERE name = 'change_seq'"), 1);
}

/* A database from before the sync records gets them on open, and keeps its tokens. */
static void test_v1_database_is_upgraded(void **state)
{
    struct fixture *f = *state;
    struct hs_token a = pair("acc-v1", "ref-v1", 100);
    assert_int_equal(f->store->ops->token_save(f->store, "default", &a, NULL), HS_OK);
    hs_store_close(f->store);
    f->store = NULL;
    back_to_v1(f);
    assert_int_equal(sql_int(f, "SELECT MAX(version) FROM schema_migrations"), 1);
    assert_int_equal(open_store(f, &f->store), HS_OK);
    assert_int_equal(sql_int(f, "SELECT MAX(version) FROM schema_migrations"),
                     hs_sqlite_migrations[hs_sqlite_migrations_count - 1].version);
    struct hs_token out = {0};
    assert_int_equal(f->store->ops->token_load(f->store, "default", &out, NULL), HS_OK);
    assert_string_equal(out.access_token, "acc-v1");
    hs_token_clear(&out);
    struct test_job t;
    make_job(&t);
    upsert(f, &t.job, true);
}

/* ---- the service's ops (settings, sessions, connections, file and image lookups) ---- */

static void test_settings_roundtrip(void **state)
{
    struct fixture *f = *state;
    char *v = (char *)"untouched";
    struct hs_error err = {0};
    assert_int_equal(f->store->ops->setting_get(f->store, "api_key_sha256", &v, &err),
                     HS_ERR_NOT_FOUND);
    assert_string_equal(v, "untouched");
    assert_int_equal(f->store->ops->setting_put(f->store, "api_key_sha256", "aa", NULL), HS_OK);
    assert_int_equal(f->store->ops->setting_put(f->store, "api_key_sha256", "bb", NULL), HS_OK);
    assert_int_equal(f->store->ops->setting_put(f->store, NULL, "bb", &err), HS_ERR_INVALID);
    hs_store_close(f->store);
    assert_int_equal(open_store(f, &f->store), HS_OK);
    assert_int_equal(f->store->ops->setting_get(f->store, "api_key_sha256", &v, NULL), HS_OK);
    assert_string_equal(v, "bb");
    free(v);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM settings"), 1);
}

static struct hs_session session(const char *hash, int64_t created, int64_t expires)
{
    struct hs_session s = {0};
    s.token_sha256 = (char *)hash;
    s.csrf_token = (char *)"csrf-1";
    s.created_at = created;
    s.expires_at = expires;
    s.user = (char *)"crm-user-7";
    return s;
}

static void test_sessions_expire_and_are_purged(void **state)
{
    struct fixture *f = *state;
    const struct hs_store_ops *ops = f->store->ops;
    struct hs_session a = session(SHA_A, 1000, 2000);
    assert_int_equal(ops->session_put(f->store, &a, NULL), HS_OK);
    struct hs_session out = {0};
    assert_int_equal(ops->session_get(f->store, SHA_A, 1999, &out, NULL), HS_OK);
    assert_string_equal(out.token_sha256, SHA_A);
    assert_string_equal(out.csrf_token, "csrf-1");
    assert_string_equal(out.user, "crm-user-7");
    assert_int_equal(out.created_at, 1000);
    assert_int_equal(out.expires_at, 2000);
    hs_session_clear(&out);
    assert_null(out.csrf_token);
    /* Expired at its expiry second, and unknown hashes are not found either. */
    struct hs_error err = {0};
    assert_int_equal(ops->session_get(f->store, SHA_A, 2000, &out, &err), HS_ERR_NOT_FOUND);
    assert_null(out.token_sha256);
    assert_int_equal(ops->session_get(f->store, SHA_B, 1500, &out, NULL), HS_ERR_NOT_FOUND);
    /* No user is fine; a session that has already ended is refused. */
    struct hs_session b = session(SHA_B, 2500, 3000);
    b.user = NULL;
    struct hs_session bad = session(SHA_B, 2500, 2500);
    assert_int_equal(ops->session_put(f->store, &bad, &err), HS_ERR_INVALID);
    /* Storing a session deletes the ones expired by then. */
    assert_int_equal(ops->session_put(f->store, &b, NULL), HS_OK);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM sessions"), 1);
    assert_int_equal(ops->session_get(f->store, SHA_B, 2600, &out, NULL), HS_OK);
    assert_null(out.user);
    hs_session_clear(&out);
    /* Only the hash is stored, never a token. */
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM sessions WHERE length(token_sha256) = 64"),
                     1);
}

/* A session's connections are stored with it, in the order given, and replaced by a put. */
static void test_session_connections_roundtrip(void **state)
{
    struct fixture *f = *state;
    const struct hs_store_ops *ops = f->store->ops;
    const char *two[] = {"org-471122", "org-463605"};
    struct hs_session a = session(SHA_A, 1000, 2000);
    a.connections = (char **)two;
    a.n_connections = 2;
    assert_int_equal(ops->session_put(f->store, &a, NULL), HS_OK);
    struct hs_session out = {0};
    assert_int_equal(ops->session_get(f->store, SHA_A, 1500, &out, NULL), HS_OK);
    assert_int_equal(out.n_connections, 2);
    assert_string_equal(out.connections[0], "org-471122");
    assert_string_equal(out.connections[1], "org-463605");
    hs_session_clear(&out);
    /* A put replaces them (none is a session that may use no connection yet). */
    a.n_connections = 1;
    assert_int_equal(ops->session_put(f->store, &a, NULL), HS_OK);
    assert_int_equal(ops->session_get(f->store, SHA_A, 1500, &out, NULL), HS_OK);
    assert_int_equal(out.n_connections, 1);
    assert_string_equal(out.connections[0], "org-471122");
    hs_session_clear(&out);
    a.n_connections = 0;
    assert_int_equal(ops->session_put(f->store, &a, NULL), HS_OK);
    assert_int_equal(ops->session_get(f->store, SHA_A, 1500, &out, NULL), HS_OK);
    assert_int_equal(out.n_connections, 0);
    assert_null(out.connections);
    hs_session_clear(&out);
    /* An expired session goes with its connections. */
    a.n_connections = 2;
    assert_int_equal(ops->session_put(f->store, &a, NULL), HS_OK);
    struct hs_session b = session(SHA_B, 2500, 3000);
    assert_int_equal(ops->session_put(f->store, &b, NULL), HS_OK);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM session_connections"), 0);
    struct hs_session bad = session(SHA_B, 2500, 3000);
    const char *null_key[] = {NULL};
    bad.connections = (char **)null_key;
    bad.n_connections = 1;
    struct hs_error err = {0};
    assert_int_equal(ops->session_put(f->store, &bad, &err), HS_ERR_INVALID);
}

/* Back to the schema before session connections, with a session stored then. */
static void before_session_connections(struct fixture *f, const char *hash)
{
    hs_store_close(f->store);
    f->store = NULL;
    char sql[1024];
    /* Migration 11 undone too: it is applied again after 7. */
    snprintf(sql, sizeof sql,
             "DROP TABLE session_connections; DROP INDEX jobs_connection_updated; "
             "DROP INDEX jobs_search_rank; CREATE INDEX jobs_search_rank ON jobs(id, "
             "hover_updated_at, reconstruction_state); DROP TABLE sync_models; DROP TABLE syncs; "
             "DROP TABLE pending_polls; DROP INDEX work_items_due; ALTER TABLE work_items DROP "
             "COLUMN priority; ALTER TABLE work_items DROP COLUMN claims; ALTER TABLE work_items "
             "DROP COLUMN trigger_ms; ALTER TABLE work_items DROP COLUMN payload; ALTER TABLE "
             "work_items DROP COLUMN payload_ms; CREATE INDEX work_items_due ON "
             "work_items(not_before_ms); DELETE FROM schema_migrations WHERE version >= 7; "
             "INSERT INTO sessions VALUES ('%s', 'csrf', 1000, 4102444800, NULL);",
             hash);
    sql_exec(f, sql);
    assert_int_equal(open_store(f, &f->store), HS_OK);
}

/* Sessions of before keep working where that is unambiguous (one connection), else they end. */
static void test_sessions_of_before_get_the_only_connection(void **state)
{
    struct fixture *f = *state;
    struct hs_token a = pair("acc", "ref", 0);
    assert_int_equal(f->store->ops->token_save(f->store, "org-463605", &a, NULL), HS_OK);
    before_session_connections(f, SHA_A);
    struct hs_session out = {0};
    assert_int_equal(f->store->ops->session_get(f->store, SHA_A, 2000, &out, NULL), HS_OK);
    assert_int_equal(out.n_connections, 1);
    assert_string_equal(out.connections[0], "org-463605");
    hs_session_clear(&out);

    a.owner_id = 471122;
    assert_int_equal(f->store->ops->token_save(f->store, "org-471122", &a, NULL), HS_OK);
    before_session_connections(f, SHA_B);
    assert_int_equal(f->store->ops->session_get(f->store, SHA_B, 2000, &out, NULL),
                     HS_ERR_NOT_FOUND);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM sessions"), 0);
}

/* Two jobs of two connections, each with a stored file and image. */
static void two_tenants(struct fixture *f)
{
    struct test_job t;
    make_job(&t);
    struct hs_error err = {0};
    assert_int_equal(f->store->ops->job_upsert(f->store, &t.job, "org-a", NULL, &err), HS_OK);
    t.job.id = 15084399;
    t.job.name = (char *)"Meadow Barn";
    t.models[0].id = 17338490;
    t.models[1].id = 17338491;
    assert_int_equal(f->store->ops->job_upsert(f->store, &t.job, "org-b", NULL, &err), HS_OK);
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

static size_t search_count(struct fixture *f, const char *q, const struct hs_scope *scope,
                           int64_t *first)
{
    struct hs_job_summary *v = NULL;
    size_t n = 0;
    int64_t total = -1;
    assert_int_equal(
        f->store->ops->jobs_search_scoped(f->store, q, NULL, 1, 20, scope, &v, &n, &total, NULL),
        HS_OK);
    assert_int_equal(total, (int64_t)n);
    *first = n ? v[0].id : 0;
    hs_job_summaries_free(v, n);
    return n;
}

/* A scope reads the rows of its connections' jobs only: search, records feed, files, images. */
static void test_scoped_reads_stay_in_their_connections(void **state)
{
    struct fixture *f = *state;
    const struct hs_store_ops *ops = f->store->ops;
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
        ops->jobs_search_scoped(f->store, "", "completed", 1, 20, &a, &v, &n, &total, NULL), HS_OK);
    assert_int_equal(n, 1);
    hs_job_summaries_free(v, n);

    /* The records feed. */
    char *doc = NULL;
    assert_int_equal(ops->export_since_scoped(f->store, 0, &a, &doc, NULL), HS_OK);
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
    assert_int_equal(ops->export_since(f->store, 0, &doc, NULL), HS_OK);
    j = json_loads(doc, 0, NULL);
    free(doc);
    assert_int_equal(json_array_size(json_object_get(j, "jobs")), 2);
    assert_int_equal(json_array_size(json_object_get(j, "artifacts")), 4);
    assert_int_equal(json_integer_value(json_object_get(j, "cursor")), cursor);
    json_decref(j);
    assert_int_equal(ops->export_since_scoped(f->store, 0, &c, &doc, NULL), HS_OK);
    j = json_loads(doc, 0, NULL);
    free(doc);
    assert_int_equal(json_array_size(json_object_get(j, "jobs")), 0);
    assert_int_equal(json_array_size(json_object_get(j, "models")), 0);
    assert_int_equal(json_array_size(json_object_get(j, "artifacts")), 0);
    json_decref(j);

    /* Files and images. */
    struct hs_artifact_row out = {0};
    assert_int_equal(ops->artifact_by_sha_scoped(f->store, SHA_A, &a, &out, NULL), HS_OK);
    hs_artifact_row_clear(&out);
    assert_int_equal(ops->artifact_by_sha_scoped(f->store, SHA_B, &a, &out, NULL),
                     HS_ERR_NOT_FOUND);
    assert_int_equal(ops->artifact_by_sha_scoped(f->store, SHA_B, NULL, &out, NULL), HS_OK);
    assert_int_equal(out.model_id, 17338490);
    hs_artifact_row_clear(&out);
    assert_int_equal(ops->artifact_by_image_scoped(f->store, 166283801, &a, &out, NULL), HS_OK);
    hs_artifact_row_clear(&out);
    assert_int_equal(ops->artifact_by_image_scoped(f->store, 166283899, &a, &out, NULL),
                     HS_ERR_NOT_FOUND);
    assert_int_equal(ops->artifact_by_image_scoped(f->store, 166283899, &none, &out, NULL),
                     HS_ERR_NOT_FOUND);
    assert_int_equal(ops->artifact_by_image(f->store, 166283899, &out, NULL), HS_OK);
    hs_artifact_row_clear(&out);
}

static void test_connections_list(void **state)
{
    struct fixture *f = *state;
    const struct hs_store_ops *ops = f->store->ops;
    struct hs_connection_row *v = (struct hs_connection_row *)1;
    size_t n = 9;
    assert_int_equal(ops->connections_list(f->store, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 0);
    assert_null(v);
    struct hs_token a = pair("acc-a", "ref-a", 0);
    assert_int_equal(ops->token_save(f->store, "org-463605", &a, NULL), HS_OK);
    usleep(5000); /* created_at has millisecond resolution */
    a.owner_id = 471122;
    assert_int_equal(ops->token_save(f->store, "org-471122", &a, NULL), HS_OK);
    /* A reconnect (or a refresh) keeps the first connection time and the order. */
    usleep(5000);
    a.owner_id = 463605;
    assert_int_equal(ops->token_save(f->store, "org-463605", &a, NULL), HS_OK);
    assert_int_equal(ops->connections_list(f->store, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 2);
    assert_string_equal(v[0].key, "org-463605");
    assert_int_equal(v[0].owner_id, 463605);
    assert_string_equal(v[0].owner_type, "orgs");
    assert_true(v[0].has_token);
    assert_non_null(v[0].connected_at);
    assert_int_equal(strlen(v[0].connected_at), 24);
    assert_string_equal(v[1].key, "org-471122");
    assert_int_equal(v[1].owner_id, 471122);
    hs_connection_rows_free(v, n);
    /* A connection whose tokens were removed is listed without a token. */
    sql_exec(f, "DELETE FROM oauth_tokens WHERE connection_key = 'org-471122'");
    assert_int_equal(ops->connections_list(f->store, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 2);
    assert_false(v[1].has_token);
    hs_connection_rows_free(v, n);
}

static void test_artifact_by_sha_and_image(void **state)
{
    struct fixture *f = *state;
    const struct hs_store_ops *ops = f->store->ops;
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
    assert_int_equal(ops->artifact_by_sha(f->store, SHA_A, &out, NULL), HS_OK);
    assert_string_equal(out.kind, "measurements.pdf");
    assert_string_equal(out.content_type, "application/pdf");
    assert_string_equal(out.path, "blobs/ab/cd/abcd");
    assert_int_equal(out.model_id, 17338410);
    hs_artifact_row_clear(&out);
    struct hs_error err = {0};
    assert_int_equal(ops->artifact_by_sha(f->store, "00", &out, &err), HS_ERR_NOT_FOUND);
    assert_null(out.kind);

    assert_int_equal(ops->artifact_by_image(f->store, 166283801, &out, NULL), HS_OK);
    assert_string_equal(out.kind, "image.166283801");
    assert_string_equal(out.sha256, SHA_B);
    assert_string_equal(out.content_type, "image/jpeg");
    hs_artifact_row_clear(&out);
    assert_int_equal(ops->artifact_by_image(f->store, 166283802, &out, NULL), HS_ERR_NOT_FOUND);
    assert_int_equal(ops->artifact_by_image(f->store, 0, &out, NULL), HS_ERR_INVALID);
}

static void test_job_models_status(void **state)
{
    struct fixture *f = *state;
    const struct hs_store_ops *ops = f->store->ops;
    struct hs_model_status *v = (struct hs_model_status *)1;
    size_t n = 5;
    assert_int_equal(ops->job_models_status(f->store, 15084303, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 0);
    assert_null(v);

    struct test_job t;
    make_job(&t);
    upsert(f, &t.job, true);
    assert_int_equal(ops->model_mark_synced(f->store, 17338410, "2025-03-17T01:00:00.000Z", NULL),
                     HS_OK);
    put_sel(f, sel(15084303, 17338410, HS_SEL_SYNCED, NULL));
    put_sel(f, sel(15084303, 17338411, HS_SEL_PENDING, "model processing"));
    /* A selection of a model the store has not seen yet, and another job's. */
    put_sel(f, sel(15084303, 17338499, HS_SEL_SELECTED, NULL));
    put_sel(f, sel(15084399, 17338410, HS_SEL_ERROR, "x"));

    assert_int_equal(ops->job_models_status(f->store, 15084303, &v, &n, NULL), HS_OK);
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
    assert_int_equal(ops->job_models_status(f->store, 15084303, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 3);
    assert_false(v[1].has_selection);
    assert_null(v[1].reason);
    hs_model_statuses_free(v, n);
}

/* ---- search (jobs_search over the FTS5 index) ---- */

struct found {
    struct hs_job_summary *v;
    size_t n;
    int64_t total;
};

static struct found search(struct fixture *f, const char *q, const char *state, int64_t page,
                           int64_t per)
{
    struct found r = {0};
    struct hs_error err = {0};
    int rc = f->store->ops->jobs_search(f->store, q, state, page, per, &r.v, &r.n, &r.total, &err);
    if (rc)
        fprintf(stderr, "jobs_search(%s): %s\n", q ? q : "(null)", err.msg);
    assert_int_equal(rc, HS_OK);
    assert_true(r.n <= (size_t)per);
    return r;
}

static void found_free(struct found *r)
{
    hs_job_summaries_free(r->v, r->n);
    memset(r, 0, sizeof *r);
}

/* The ids found by q (page 1, up to 20), or 0 when none; asserts there are at most n_ids. */
static size_t ids_of(struct fixture *f, const char *q, int64_t *ids, size_t n_ids)
{
    struct found r = search(f, q, NULL, 1, 20);
    assert_true(r.n <= n_ids);
    assert_int_equal(r.total, (int64_t)r.n);
    for (size_t i = 0; i < r.n; i++)
        ids[i] = r.v[i].id;
    size_t n = r.n;
    found_free(&r);
    return n;
}

static int64_t only_id(struct fixture *f, const char *q)
{
    int64_t ids[20] = {0};
    size_t n = ids_of(f, q, ids, 20);
    if (n != 1)
        fprintf(stderr, "'%s' found %zu jobs, expected 1\n", q, n);
    assert_int_equal(n, 1);
    return ids[0];
}

static size_t count_found(struct fixture *f, const char *q)
{
    int64_t ids[20];
    return ids_of(f, q, ids, 20);
}

/* A second job, the showcase's 118 Orchard Lane, captured by Jordan Reyes per its raw JSON. */
static void make_orchard(struct test_job *t)
{
    make_job(t);
    t->job.id = 15084302;
    t->job.name = (char *)"Whitfield Garage Addition";
    t->job.external_identifier = (char *)"CRM-20417";
    t->job.updated_at = (char *)"2025-04-01T00:00:00.000Z";
    t->job.address.line1 = (char *)"118 Orchard Lane";
    t->job.address.city = (char *)"Boise";
    t->job.address.region = (char *)"ID";
    t->job.address.postal_code = (char *)"83702";
    t->job.customer.name = (char *)"Marcus Whitfield";
    t->job.customer.email = (char *)"marcus@example.net";
    t->job.raw_json = (char *)"{\"id\":15084302,\"user\":{\"id\":2190402,\"first_name\":\"Jordan\","
                              "\"last_name\":\"Reyes\",\"email\":"
                              "\"jordan.reyes@summitroofing.example\"}}";
    t->models[0].id = 17338404;
    t->models[1].id = 17338405;
    t->models[1].state = (char *)"failed";
}

static void test_jobs_search_finds_prefixes_of_every_field(void **state)
{
    struct fixture *f = *state;
    struct test_job a, b;
    make_job(&a);
    make_orchard(&b);
    upsert(f, &a.job, true);
    upsert(f, &b.job, true);

    assert_int_equal(only_id(f, "4312 mea"), 15084303);      /* street, as typed */
    assert_int_equal(only_id(f, "MEADOW"), 15084303);        /* any case */
    assert_int_equal(only_id(f, "santa mar"), 15084303);     /* city */
    assert_int_equal(only_id(f, "9345"), 15084303);          /* postal code */
    assert_int_equal(only_id(f, "8675309"), 15084303);       /* external id */
    assert_int_equal(only_id(f, "owner@exam"), 15084303);    /* customer email */
    assert_int_equal(only_id(f, "whitfield gar"), 15084302); /* name */
    assert_int_equal(only_id(f, "marcus"), 15084302);        /* customer name */
    assert_int_equal(only_id(f, "crm-20417"), 15084302);     /* external id with a dash */
    assert_int_equal(only_id(f, "jordan rey"), 15084302);    /* capturing user, from raw_json */
    assert_int_equal(only_id(f, "summitroofing"), 15084302);
    assert_int_equal(count_found(f, "main house"), 1);
    assert_int_equal(count_found(f, "meadow orchard"), 0); /* every word must match */
    assert_int_equal(count_found(f, "eadow"), 0);          /* prefixes, not infixes */
    assert_int_equal(count_found(f, "zzz"), 0);

    struct found r = search(f, "4312 meadow", NULL, 1, 20);
    assert_int_equal(r.n, 1);
    const struct hs_job_summary *j = &r.v[0];
    assert_string_equal(j->name, "Main House");
    assert_string_equal(j->address.line1, "4312 Meadow Drive");
    assert_string_equal(j->address.city, "Santa Maria");
    assert_string_equal(j->address.region, "CA");
    assert_string_equal(j->address.postal_code, "93455");
    assert_string_equal(j->address.country, "US");
    assert_string_equal(j->reconstruction_state, "completed");
    assert_string_equal(j->updated_at, "2025-03-17T01:00:00.000Z");
    assert_int_equal(j->models_count, 2);
    assert_int_equal(j->complete_models, 1);
    found_free(&r);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM jobs WHERE capture_user = "
                                "'Jordan Reyes jordan.reyes@summitroofing.example'"),
                     1);
}

static void test_jobs_search_index_follows_changes(void **state)
{
    struct fixture *f = *state;
    struct test_job a;
    make_job(&a);
    upsert(f, &a.job, true);
    assert_int_equal(only_id(f, "meadow"), 15084303);

    /* Renamed at Hover: the old words leave the index, the new ones enter it. */
    a.job.address.line1 = (char *)"9 Cedar Ridge Court";
    a.job.raw_json =
        (char *)"{\"id\":15084303,\"captures\":[{\"capture_by\":\"pat@crew.example\"}]}";
    upsert(f, &a.job, true);
    assert_int_equal(count_found(f, "meadow"), 0);
    assert_int_equal(only_id(f, "cedar ridge"), 15084303);
    assert_int_equal(only_id(f, "pat@crew"), 15084303); /* capture_by when no user object */
    upsert(f, &a.job, false);                           /* unchanged: index untouched */
    assert_int_equal(only_id(f, "cedar"), 15084303);
    /* A change of a column that is not indexed leaves the index as it is, and consistent. */
    a.job.reconstruction_state = (char *)"failed";
    upsert(f, &a.job, true);
    sql_exec(f, "INSERT INTO jobs_fts(jobs_fts) VALUES ('integrity-check')");
    assert_int_equal(only_id(f, "cedar"), 15084303);

    /* A deleted row leaves the index (a CRM developer may clean up by hand). */
    sql_exec(f, "DELETE FROM models; DELETE FROM jobs WHERE id = 15084303");
    assert_int_equal(count_found(f, "cedar"), 0);
    sql_exec(f, "INSERT INTO jobs_fts(jobs_fts) VALUES ('integrity-check')");
}

static void test_jobs_search_ranks_pages_and_filters(void **state)
{
    struct fixture *f = *state;
    struct test_job t;
    /* Five jobs on Meadow streets, updated one day apart; job 5 has "Meadow" in its name too. */
    static const char *const updated[] = {"2025-01-01T00:00:00.000Z", "2025-01-02T00:00:00.000Z",
                                          "2025-01-03T00:00:00.000Z", "2025-01-04T00:00:00.000Z",
                                          "2025-01-05T00:00:00.000Z"};
    for (int i = 0; i < 5; i++) {
        char line1[64], name[64];
        make_job(&t);
        t.job.id = 100 + i;
        t.job.updated_at = (char *)updated[i];
        snprintf(line1, sizeof line1, "%d Meadow Lane", 10 + i);
        snprintf(name, sizeof name, i == 0 ? "Meadow Farm" : "Job %d", i);
        t.job.name = name;
        t.job.address.line1 = line1;
        t.job.reconstruction_state = (char *)(i % 2 ? "failed" : "completed");
        t.models[0].id = 1000 + 2 * i;
        t.models[1].id = 1001 + 2 * i;
        upsert(f, &t.job, true);
    }
    /* The name hit ranks first (bm25), then the most recently updated. */
    struct found r = search(f, "meadow", NULL, 1, 20);
    assert_int_equal(r.total, 5);
    assert_int_equal(r.n, 5);
    assert_int_equal(r.v[0].id, 100);
    assert_int_equal(r.v[1].id, 104);
    assert_int_equal(r.v[2].id, 103);
    assert_int_equal(r.v[4].id, 101);
    found_free(&r);

    /* Pages of two: 2 + 2 + 1, then an empty page; total on each. */
    int64_t seen[5];
    size_t k = 0;
    for (int64_t page = 1; page <= 4; page++) {
        r = search(f, "meadow lane", NULL, page, 2);
        assert_int_equal(r.total, 5);
        assert_int_equal(r.n, page <= 2 ? 2 : page == 3 ? 1 : 0);
        for (size_t i = 0; i < r.n; i++)
            seen[k++] = r.v[i].id;
        found_free(&r);
    }
    assert_int_equal(k, 5);
    for (size_t i = 0; i < 5; i++)
        for (size_t m = i + 1; m < 5; m++)
            assert_int_not_equal(seen[i], seen[m]);

    r = search(f, "meadow", "failed", 1, 20);
    assert_int_equal(r.total, 2);
    assert_int_equal(r.v[0].id, 103);
    assert_int_equal(r.v[1].id, 101);
    found_free(&r);

    /* One or two letters (first keystrokes): the newest jobs by id, unranked. */
    r = search(f, "m", NULL, 1, 3);
    assert_int_equal(r.total, 5);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.v[0].id, 104);
    assert_int_equal(r.v[2].id, 102);
    found_free(&r);
    r = search(f, "M", "failed", 2, 1);
    assert_int_equal(r.total, 2);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.v[0].id, 101);
    found_free(&r);
    r = search(f, "me", NULL, 1, 20);
    assert_int_equal(r.v[0].id, 104);
    assert_int_equal(r.v[4].id, 100);
    found_free(&r);
    r = search(f, "mea", NULL, 1, 20); /* three: ranked again, the name hit first */
    assert_int_equal(r.v[0].id, 100);
    found_free(&r);

    /* No text: most recently updated first, with the state filter too. */
    r = search(f, NULL, NULL, 1, 3);
    assert_int_equal(r.total, 5);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.v[0].id, 104);
    assert_int_equal(r.v[2].id, 102);
    found_free(&r);
    r = search(f, "   ", "completed", 1, 20);
    assert_int_equal(r.total, 3);
    assert_int_equal(r.v[0].id, 104);
    found_free(&r);

    struct hs_error err = {0};
    struct hs_job_summary *v = NULL;
    size_t n = 0;
    int64_t total = 0;
    assert_int_equal(f->store->ops->jobs_search(f->store, "x", NULL, 1, 101, &v, &n, &total, &err),
                     HS_ERR_INVALID);
    assert_int_equal(f->store->ops->jobs_search(f->store, "x", NULL, 0, 20, &v, &n, &total, &err),
                     HS_ERR_INVALID);
}

/* What a user may type is never FTS5 syntax: quotes, operators, column filters, stars, bytes
 * that are not UTF-8. Each is searched as plain words or finds nothing, without an error. */
static void test_jobs_search_hostile_text_is_plain_words(void **state)
{
    struct fixture *f = *state;
    struct test_job t;
    make_job(&t);
    t.job.name = (char *)"Smith AND Sons NOT Near";
    upsert(f, &t.job, true);
    static const char *const hostile[] = {"\"",
                                          "\"\"",
                                          "*",
                                          "**",
                                          "\"meadow",
                                          "meadow\"*",
                                          "AND",
                                          "OR",
                                          "NOT",
                                          "NEAR(a b)",
                                          "name:meadow",
                                          "{name}: x",
                                          "^meadow",
                                          "-meadow",
                                          "+",
                                          "(",
                                          ")",
                                          "meadow)",
                                          "a OR b",
                                          "\xff\xfe\xfd",
                                          "\xc3",
                                          "caf\xc3\xa9",
                                          "a*b\"c(d)e:f^g",
                                          "meadow\x01\x02",
                                          "'; DROP"};
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        struct found r = search(f, hostile[i], NULL, 1, 20);
        found_free(&r);
    }
    char longq[4000];
    memset(longq, 'a', sizeof longq - 1);
    longq[sizeof longq - 1] = '\0';
    for (size_t i = 0; i < sizeof longq - 1; i += 7)
        longq[i] = ' ';
    struct found r = search(f, longq, NULL, 1, 20);
    found_free(&r);

    assert_int_equal(only_id(f, "and sons"), 15084303); /* operators are words here */
    assert_int_equal(only_id(f, "smith NOT"), 15084303);
    assert_int_equal(only_id(f, "near:smith"), 15084303); /* not a column filter */
    assert_int_equal(count_found(f, "name:meadow"), 0);   /* "name*" is not in the job */
    assert_int_equal(only_id(f, "\"meadow\""), 15084303);
    assert_int_equal(only_id(f, "(4312) meadow*"), 15084303);
    assert_int_equal(count_found(f, "!!! ?? --"), 0); /* no word at all: nothing, not everything */
}

/* Jobs stored before the index existed are searchable once the migration ran. */
static void test_jobs_search_backfills_stored_jobs(void **state)
{
    struct fixture *f = *state;
    hs_store_close(f->store);
    f->store = NULL;
    back_to_v1(f);
    /* Version 2 by hand, with a job in it, as an older hoversync left it. */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, hs_sqlite_migrations[1].sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO schema_migrations(version, name) VALUES (2, 'x');"
                                  "INSERT INTO jobs(id, name, address_line1, city, raw_json, "
                                  "first_seen_at, updated_at, change_seq) VALUES (77, 'Old Job', "
                                  "'300 Old Mill Road', 'Lancaster', "
                                  "'{\"user\":{\"email\":\"harold@mill.example\"}}', 'x', 'x', 1)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(open_store(f, &f->store), HS_OK);
    assert_int_equal(only_id(f, "old mill"), 77);
    assert_int_equal(only_id(f, "lancast"), 77);
    assert_int_equal(only_id(f, "harold@mill"), 77);
    sql_exec(f, "INSERT INTO jobs_fts(jobs_fts) VALUES ('integrity-check')");
}

/* ---- webhooks, events, work items, outbox, policies ---- */

static void connect_key(struct fixture *f, const char *key)
{
    struct hs_token t = pair("acc", "ref", 100);
    assert_int_equal(f->store->ops->token_save(f->store, key, &t, NULL), HS_OK);
}

static int64_t accept_event(struct fixture *f, const char *key, int64_t job_id, const char *status,
                            bool schedule, int64_t now_ms)
{
    static const char body[] = "{\"event\":\"job-state-changed-v2\",\"job_id\":7,\0\"x\"}";
    struct hs_event_row e = {0};
    e.webhook_id = 230293;
    e.connection_key = (char *)key;
    e.event = (char *)"job-state-changed-v2";
    e.job_id = job_id;
    e.state = (char *)"complete";
    e.body = (char *)body;
    e.body_len = sizeof body - 1;
    e.headers_json = (char *)"{\"Date\":\"x\"}";
    e.status = (char *)status;
    int64_t id = 0;
    struct hs_error err = {0};
    int rc = f->store->ops->event_accept(f->store, &e, schedule, 1000, now_ms, &id, &err);
    if (rc)
        fprintf(stderr, "event_accept: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    assert_true(id > 0);
    return id;
}

static void test_webhooks_roundtrip(void **state)
{
    struct fixture *f = *state;
    const struct hs_store_ops *ops = f->store->ops;
    struct hs_webhook_row w = {.id = 230293,
                               .connection_key = (char *)"default",
                               .url = (char *)"http://127.0.0.1:9/webhooks/hover",
                               .hmac_secret = (char *)"c2VjcmV0"};
    struct hs_webhook_row out = {0};
    assert_int_equal(ops->webhook_get(f->store, 230293, &out, NULL), HS_ERR_NOT_FOUND);
    assert_int_equal(ops->webhook_put(f->store, &w, NULL), HS_OK);
    /* A row as read back from Hover's list: no secret; verified now, with an error. */
    w.hmac_secret = NULL;
    w.verified_at = (char *)"2026-01-01T00:00:00.000Z";
    w.last_error = (char *)"HTTP 500";
    assert_int_equal(ops->webhook_put(f->store, &w, NULL), HS_OK);
    assert_int_equal(ops->webhook_get(f->store, 230293, &out, NULL), HS_OK);
    assert_string_equal(out.hmac_secret, "c2VjcmV0");
    assert_string_equal(out.verified_at, "2026-01-01T00:00:00.000Z");
    assert_string_equal(out.last_error, "HTTP 500");
    assert_non_null(out.created_at);
    hs_webhook_row_clear(&out);
    /* Verified stays verified; the error clears. */
    w.verified_at = NULL;
    w.last_error = NULL;
    assert_int_equal(ops->webhook_put(f->store, &w, NULL), HS_OK);
    w.id = 230294;
    w.connection_key = (char *)"org-2";
    assert_int_equal(ops->webhook_put(f->store, &w, NULL), HS_OK);
    struct hs_webhook_row *v = NULL;
    size_t n = 0;
    assert_int_equal(ops->webhook_list(f->store, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 2);
    assert_int_equal(v[0].id, 230293);
    assert_non_null(v[0].verified_at);
    assert_null(v[0].last_error);
    assert_null(v[1].hmac_secret);
    hs_webhook_rows_free(v, n);
    assert_int_equal(ops->webhook_delete(f->store, 230293, NULL), HS_OK);
    assert_int_equal(ops->webhook_delete(f->store, 230293, NULL), HS_ERR_NOT_FOUND);
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
    assert_int_equal(f->store->ops->work_depth(f->store, &due, &total, 9999, NULL), HS_OK);
    assert_int_equal(due, 0);
    assert_int_equal(total, 1);
    assert_int_equal(f->store->ops->work_claim(f->store, "w1", NULL, 9999, 5000, &w, NULL, NULL),
                     HS_ERR_NOT_FOUND);
    assert_int_equal(f->store->ops->work_claim(f->store, "w1", NULL, 10000, 5000, &w, NULL, NULL),
                     HS_OK);
    assert_string_equal(w.connection_key, "default");
    assert_int_equal(w.job_id, 7);
    assert_string_equal(w.reason, "webhook");
    assert_int_equal(w.generation, 3);
    assert_int_equal(f->store->ops->events_processed(f->store, "default", 7, last, NULL), HS_OK);
    assert_int_equal(f->store->ops->work_done(f->store, &w, 10000, NULL), HS_OK);
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
    assert_int_equal(ops->event_accept(f->store, &e, false, 0, 0, NULL, NULL), HS_ERR_INTERNAL);
    ops->rollback(f->store);
    e.status = (char *)"bogus";
    assert_int_equal(ops->event_accept(f->store, &e, false, 0, 0, NULL, NULL), HS_ERR_INVALID);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_events"), 0);
}

static int64_t next_outbox(struct fixture *f, int64_t now_ms, int64_t *job, int64_t *seq)
{
    struct hs_outbox_row o = {0};
    int rc = f->store->ops->outbox_next(f->store, now_ms, &o, NULL);
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
    assert_int_equal(ops->outbox_add(f->store, ep, 7, "{\"n\":1}", "k1", NULL), HS_OK);
    assert_int_equal(ops->outbox_add(f->store, ep, 7, "{\"n\":2}", "k2", NULL), HS_OK);
    assert_int_equal(ops->outbox_add(f->store, ep, 8, "{\"n\":3}", "k3", NULL), HS_OK);
    /* The same idempotency key is the same message. */
    assert_int_equal(ops->outbox_add(f->store, ep, 7, "{\"n\":1}", "k1", NULL), HS_OK);
    /* Inside a transaction: rolled back with it. */
    assert_int_equal(ops->begin(f->store, NULL), HS_OK);
    assert_int_equal(ops->outbox_add(f->store, ep, 7, "{\"n\":9}", "k9", NULL), HS_OK);
    ops->rollback(f->store);
    int64_t pending = -1;
    assert_int_equal(ops->outbox_depth(f->store, &pending, NULL), HS_OK);
    assert_int_equal(pending, 3);
    assert_int_equal(sql_int(f, "SELECT seq_in_job FROM outbox WHERE idempotency_key = 'k2'"), 2);
    assert_int_equal(sql_int(f, "SELECT seq_in_job FROM outbox WHERE idempotency_key = 'k3'"), 1);

    int64_t job = 0, seq = 0;
    int64_t first = next_outbox(f, 0, &job, &seq);
    assert_true(first > 0);
    assert_int_equal(job, 7);
    assert_int_equal(seq, 1);
    /* The first of job 7 fails: job 7's second waits, job 8's goes. */
    assert_int_equal(ops->outbox_retry(f->store, first, 5000, "HTTP 502", NULL), HS_OK);
    int64_t other = next_outbox(f, 100, &job, &seq);
    assert_int_equal(job, 8);
    assert_int_equal(ops->outbox_delivered(f->store, other, NULL), HS_OK);
    assert_int_equal(next_outbox(f, 100, NULL, NULL), HS_ERR_NOT_FOUND);
    /* Due again: the first of job 7, then (once delivered) its second. */
    assert_int_equal(next_outbox(f, 5000, &job, &seq), first);
    assert_int_equal(sql_int(f, "SELECT attempts FROM outbox WHERE idempotency_key = 'k1'"), 1);
    assert_int_equal(ops->outbox_delivered(f->store, first, NULL), HS_OK);
    int64_t second = next_outbox(f, 5000, &job, &seq);
    assert_true(second > 0);
    assert_int_equal(job, 7);
    assert_int_equal(seq, 2);
    assert_int_equal(ops->outbox_delivered(f->store, second, NULL), HS_OK);
    assert_int_equal(next_outbox(f, 1000000, NULL, NULL), HS_ERR_NOT_FOUND);
    assert_int_equal(ops->outbox_depth(f->store, &pending, NULL), HS_OK);
    assert_int_equal(pending, 0);
    /* A new message of job 7 continues its sequence. */
    assert_int_equal(ops->outbox_add(f->store, ep, 7, "{\"n\":4}", "k4", NULL), HS_OK);
    assert_int_equal(sql_int(f, "SELECT seq_in_job FROM outbox WHERE idempotency_key = 'k4'"), 3);
    assert_int_equal(ops->outbox_retry(f->store, 999999, 1, "x", NULL), HS_ERR_NOT_FOUND);
}

static void test_policies_default_all(void **state)
{
    struct fixture *f = *state;
    const struct hs_store_ops *ops = f->store->ops;
    char *p = NULL;
    assert_int_equal(ops->policy_get(f->store, "default", &p, NULL), HS_OK);
    assert_string_equal(p, "all");
    free(p);
    assert_int_equal(ops->policy_put(f->store, "default", "linked", NULL), HS_OK);
    assert_int_equal(ops->policy_put(f->store, "default", "some", NULL), HS_ERR_INVALID);
    assert_int_equal(ops->policy_get(f->store, "default", &p, NULL), HS_OK);
    assert_string_equal(p, "linked");
    free(p);
    assert_int_equal(ops->policy_put(f->store, "default", "none", NULL), HS_OK);
    assert_int_equal(ops->policy_get(f->store, "default", &p, NULL), HS_OK);
    assert_string_equal(p, "none");
    free(p);
    assert_int_equal(ops->policy_get(f->store, "org-2", &p, NULL), HS_OK);
    assert_string_equal(p, "all");
    free(p);
}

/* Concurrent event_accept calls share transactions (group commit): every accepted event is
 * stored with its work item, and one that fails inside a batch fails alone. */
struct accept_worker {
    struct hs_store *store;
    int n, ok, conflicts;
};

static void *accept_worker_main(void *arg)
{
    struct accept_worker *a = arg;
    for (int i = 0; i < a->n; i++) {
        int64_t job = i % 5 == 4 ? 13 : 1 + i % 10; /* job 13 cannot get a work item */
        struct hs_event_row e = {.webhook_id = 230293,
                                 .connection_key = (char *)"default",
                                 .event = (char *)"model-state-changed",
                                 .job_id = job,
                                 .body = (char *)"{}",
                                 .body_len = 2,
                                 .status = (char *)"accepted"};
        int64_t id = 0;
        int rc = a->store->ops->event_accept(a->store, &e, true, 0, 1000, &id, NULL);
        if (rc == HS_OK && id > 0)
            a->ok++;
        else if (rc == HS_ERR_CONFLICT && id == 0)
            a->conflicts++;
    }
    return NULL;
}

static void test_event_accept_group_commit(void **state)
{
    struct fixture *f = *state;
    connect_key(f, "default");
    sql_exec(f, "CREATE TRIGGER no_13 BEFORE INSERT ON work_items WHEN new.job_id = 13 "
                "BEGIN SELECT RAISE(ABORT, 'not this one'); END");
    enum { THREADS = 8, EACH = 40 };
    pthread_t t[THREADS];
    struct accept_worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct accept_worker){.store = f->store, .n = EACH};
        assert_int_equal(pthread_create(&t[i], NULL, accept_worker_main, &w[i]), 0);
    }
    int ok = 0, conflicts = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        ok += w[i].ok;
        conflicts += w[i].conflicts;
    }
    assert_int_equal(ok, THREADS * EACH * 4 / 5);
    assert_int_equal(conflicts, THREADS * EACH / 5);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_events"), ok);
    assert_int_equal(sql_int(f, "SELECT COUNT(DISTINCT id) FROM webhook_events"), ok);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_events WHERE job_id = 13"), 0);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM work_items"), 8);
    assert_int_equal(sql_int(f, "SELECT SUM(generation) FROM work_items"), ok);
}

/* Unverified deliveries (the verification race) are listed by webhook id with their raw body. */
static void test_events_unverified_and_status(void **state)
{
    struct fixture *f = *state;
    const struct hs_store_ops *ops = f->store->ops;
    int64_t a = accept_event(f, NULL, 0, "unverified", false, 0);
    accept_event(f, NULL, 0, "ignored", false, 0);
    struct hs_event_row *v = NULL;
    size_t n = 0;
    assert_int_equal(ops->events_unverified(f->store, 230293, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].id, a);
    assert_int_equal(v[0].body_len, 48);
    assert_int_equal(memcmp(v[0].body + 43, "\0\"x\"}", 5), 0);
    assert_string_equal(v[0].headers_json, "{\"Date\":\"x\"}");
    assert_null(v[0].connection_key);
    hs_event_rows_free(v, n);
    assert_int_equal(ops->event_set_status(f->store, a, "processed", NULL), HS_OK);
    assert_int_equal(ops->event_set_status(f->store, a, "nonsense", NULL), HS_ERR_INVALID);
    assert_int_equal(ops->event_set_status(f->store, 12345, "ignored", NULL), HS_ERR_NOT_FOUND);
    v = NULL;
    n = 7;
    assert_int_equal(ops->events_unverified(f->store, 230293, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 0);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_missing_token_is_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_load_roundtrip_survives_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_replaces_and_bumps_generation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_end_null_stores_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_without_stored_pair, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_end_without_begin_is_an_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refresh_is_exclusive_across_processes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reopen_does_not_reapply_migrations, setup, teardown),
        cmocka_unit_test(test_unwritable_path_is_a_clear_error),
        cmocka_unit_test_setup_teardown(test_job_upsert_twice_is_unchanged_and_feed_empty, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_model_state_change_bumps_only_that_model, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_model_mark_synced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_artifact_put_same_sha_is_unchanged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_artifact_new_sha_is_a_change_in_the_feed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_measurements_nan_is_null_and_change_counts_for_the_model, setup, teardown),
        cmocka_unit_test_setup_teardown(test_selection_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_selections_open_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_discards_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_op_inside_transaction_leaves_the_rest, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_token_op_inside_transaction_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_transaction_excludes_other_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_export_cursor_is_monotonic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoints_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sessions_expire_and_are_purged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_connections_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sessions_of_before_get_the_only_connection, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_scoped_reads_stay_in_their_connections, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_connections_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_artifact_by_sha_and_image, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_models_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrations_recorded_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_database_is_upgraded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jobs_search_finds_prefixes_of_every_field, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_jobs_search_index_follows_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jobs_search_ranks_pages_and_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jobs_search_hostile_text_is_plain_words, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_jobs_search_backfills_stored_jobs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_webhooks_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_coalesce_into_one_work_item, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_accept_refused_inside_transaction, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_outbox_order_per_job_and_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policies_default_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_unverified_and_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_accept_group_commit, setup, teardown),
    };
    return cmocka_run_group_tests_name("store-sqlite", tests, NULL, NULL);
}
