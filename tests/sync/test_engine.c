/* test_engine.c: the sync engine (src/sync/engine.c) against a real SQLite store and data
 * directory, with one hs_client on the scripted fake transport of tests/hover: downloads that
 * fail their checks (a short PDF, JPEG or JSON sent as complete, a body that contradicts its
 * ETag) end the model in error with no row and no file, and are fetched again later without
 * their validator; a stored file that contradicts its own ETag is fetched again; runs carry a
 * lease; the work queue's hook runs inside each of the engine's transactions (what it writes
 * commits with them), and a hook that refuses (a claim whose lease lapsed) stops the run: nothing
 * more of it commits. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <sqlite3.h>

#include "core/clock.h"
#include "core/mem.h"
#include "core/str.h"
#include "fake_transport.h"
#include "hover/client.h"
#include "store/records.h"
#include "store/store.h"
#include "store/tokens.h"
#include "store/work.h"
#include "sync/engine.h"

#define NOW_S 1742200000LL
#define BASE  "https://hover.test"

static const char PDF[] = "%PDF-1.4\nthe measurements of model 601\n%%EOF\n";
static const char PDF_CUT[] = "%PDF-1.4\nthe measurements";
static const char SUMMARY[] = "{\"roof\":{\"area\":{\"total\":2450.3},\"facets\":{\"total\":12}}}";
static const char JPEG[] = "\xFF\xD8\xFF\xE0 a photo \xFF\xD9";
static const char JPEG_CUT[] = "\xFF\xD8\xFF\xE0 a pho";

/* Job 501, model 601 complete: a PDF, the summarized JSON and one photo. */
#define JOB_501(UPDATED)                                                                           \
    "{\"id\":501,\"name\":\"Main House\",\"reconstruction_state\":\"completed\","                  \
    "\"updated_at\":\"" UPDATED "\",\"models\":[{\"id\":601,\"name\":\"House\",\"state\":"         \
    "\"complete\",\"updated_at\":\"" UPDATED "\",\"artifacts\":{\"measurements\":{\"pdf\":\"" BASE \
    "/api/v3/models/601/artifacts/measurements.pdf\",\"json\":\"" BASE                             \
    "/api/v3/models/601/artifacts/measurements.json?version=summarized_json\"}},"                  \
    "\"images\":[{\"id\":9001,\"url\":\"" BASE "/api/v3/images/9001\"}]}]}"
#define T1 "2025-03-17T01:00:00.000Z"
#define T2 "2025-03-18T01:00:00.000Z"

struct fixture {
    char dir[128];
    char db[200];
    struct hs_store *store;
    struct fake_transport ft;
    struct hs_fake_clock fc;
    struct hs_client *client;
    struct hs_sync_engine e;
};

static int setup(void **state)
{
    struct fixture *f = hs_calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/hs-engine-test-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->db, sizeof f->db, "%s/store.db", f->dir);
    struct hs_error err = {0};
    if (hs_store_open(f->db, NULL, &f->store, &err))
        return -1;
    struct hs_token t = {.access_token = (char *)"tok-1",
                         .refresh_token = (char *)"ref-1",
                         .expires_at = NOW_S + 86400};
    if (f->store->tokens->token_save(f->store, "org-1", &t, &err))
        return -1;
    fake_transport_init(&f->ft);
    hs_fake_clock_init(&f->fc, NOW_S * 1000);
    struct hs_client_config cc = {.base_url = BASE,
                                  .client_id = "cid",
                                  .client_secret = "secret",
                                  .credential_key = "org-1",
                                  .max_attempts = 1};
    if (hs_client_new(&cc, hs_store_tokens(f->store), &f->fc.clock, &f->ft.base, &f->client, &err))
        return -1;
    f->e = (struct hs_sync_engine){
        .client = f->client, .store = f->store, .data_dir = f->dir, .connection_key = "org-1"};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    hs_client_free(f->client);
    fake_transport_cleanup(&f->ft);
    hs_store_close(f->store);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

static int64_t sql_int(struct fixture *f, const char *q)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
    int64_t v = -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* Regular files under dir/sub, recursively. */
static int files_under(const char *dir, const char *sub)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char child[512];
        snprintf(child, sizeof child, "%s/%s", sub, de->d_name);
        if (de->d_type == DT_DIR)
            n += files_under(dir, child);
        else
            n++;
    }
    closedir(d);
    return n;
}

static void answer(struct fixture *f, const char *body, size_t len, const char *ctype,
                   const char *etag)
{
    fake_transport_push(
        &f->ft,
        (struct fake_response){
            .status = 200, .body = body, .body_len = len, .content_type = ctype, .etag = etag});
}

static void answer_job(struct fixture *f, const char *json)
{
    answer(f, json, 0, "application/json", NULL);
}

/* Show Job and the three whole artifacts of model 601, with these ETags (NULL: none). */
static void answer_whole(struct fixture *f, const char *pdf_etag, const char *json_etag,
                         const char *jpeg_etag)
{
    answer_job(f, JOB_501(T1));
    answer(f, PDF, 0, "application/pdf", pdf_etag);
    answer(f, SUMMARY, 0, "application/json", json_etag);
    answer(f, JPEG, sizeof JPEG - 1, "image/jpeg", jpeg_etag);
}

static struct hs_sync_report *sync_601(struct fixture *f)
{
    static const int64_t ids[] = {601};
    struct hs_sync_request rq = {.job_id = 501, .model_ids = ids, .n_model_ids = 1};
    struct hs_sync_report *r = NULL;
    struct hs_error err = {0};
    assert_int_equal(hs_sync_job(&f->e, &rq, &r, &err), HS_OK);
    assert_int_equal(r->n_models, 1);
    return r;
}

/* The model ends in error naming the artifact, with nothing stored and nothing left over. */
static void assert_not_stored(struct fixture *f, struct hs_sync_report *r, const char *kind,
                              const char *why)
{
    assert_int_equal(r->models[0].result, HS_RESULT_ERROR);
    assert_false(hs_sync_report_ok(r));
    assert_non_null(strstr(r->models[0].message, kind));
    assert_non_null(strstr(r->models[0].message, why));
    char q[200];
    snprintf(q, sizeof q, "SELECT COUNT(*) FROM artifacts WHERE kind = '%s'", kind);
    assert_int_equal(sql_int(f, q), 0);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM selections WHERE model_id = 601 AND "
                                "status = 'error'"),
                     1);
    assert_int_equal(files_under(f->dir, "tmp"), 0);
}

/* The next sync fetches it again, without If-None-Match, and stores it. */
static void assert_fetched_again(struct fixture *f, size_t first_req)
{
    answer_whole(f, NULL, NULL, NULL);
    struct hs_sync_report *r = sync_601(f);
    assert_int_equal(r->models[0].result, HS_RESULT_SYNCED);
    hs_sync_report_free(r);
    for (size_t i = first_req; i < f->ft.n_reqs; i++)
        assert_null(f->ft.reqs[i].if_none_match);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM artifacts WHERE model_id = 601"), 3);
    assert_int_equal(files_under(f->dir, "blobs"), 3);
}

static void test_short_pdf_is_not_stored(void **state)
{
    struct fixture *f = *state;
    answer_job(f, JOB_501(T1));
    /* Sent as complete (its Content-Length matches), with no digest to compare. */
    answer(f, PDF_CUT, 0, "application/pdf", "\"v1\"");
    struct hs_sync_report *r = sync_601(f);
    assert_not_stored(f, r, "measurements.pdf", "incomplete PDF");
    hs_sync_report_free(r);
    assert_int_equal(files_under(f->dir, "blobs"), 0);
    assert_fetched_again(f, f->ft.n_reqs);
}

static void test_short_jpeg_and_json_are_not_stored(void **state)
{
    struct fixture *f = *state;
    answer_job(f, JOB_501(T1));
    answer(f, PDF, 0, "application/pdf", NULL);
    answer(f, SUMMARY, 20, "application/json", NULL);
    struct hs_sync_report *r = sync_601(f);
    assert_not_stored(f, r, "measurements.json", "JSON that does not parse");
    hs_sync_report_free(r);

    answer_job(f, JOB_501(T1));
    answer(f, PDF, 0, "application/pdf", NULL);
    answer(f, SUMMARY, 0, "application/json", NULL);
    answer(f, JPEG_CUT, sizeof JPEG_CUT - 1, "image/jpeg", NULL);
    r = sync_601(f);
    assert_not_stored(f, r, "image.9001", "incomplete JPEG");
    hs_sync_report_free(r);
    assert_fetched_again(f, f->ft.n_reqs);
}

static void md5_etag(const char *body, size_t len, char out[40])
{
    unsigned char d[16];
    char hex[33];
    assert_int_equal(EVP_Digest(body, len, d, NULL, EVP_md5(), NULL), 1);
    hs_hex(d, 16, hex);
    snprintf(out, 40, "\"%s\"", hex);
}

static void test_body_contradicting_its_etag_is_not_stored(void **state)
{
    struct fixture *f = *state;
    char etag[40];
    md5_etag(PDF, strlen(PDF), etag);
    answer_job(f, JOB_501(T1));
    answer(f, PDF_CUT, 0, "application/pdf", etag); /* the storage host's ETag of the whole */
    struct hs_sync_report *r = sync_601(f);
    assert_not_stored(f, r, "measurements.pdf", "does not match its ETag");
    hs_sync_report_free(r);
    assert_fetched_again(f, f->ft.n_reqs);
}

/* A row stored before downloads were checked: a short file under the whole file's ETag. */
static void test_stored_file_contradicting_its_etag_is_fetched_again(void **state)
{
    struct fixture *f = *state;
    char etag[40];
    md5_etag(PDF, strlen(PDF), etag);
    answer_whole(f, etag, "\"j1\"", "\"i1\"");
    struct hs_sync_report *r = sync_601(f);
    assert_int_equal(r->models[0].result, HS_RESULT_SYNCED);
    hs_sync_report_free(r);

    /* The model changed at Hover: the validators go out, since the files match them. */
    size_t first = f->ft.n_reqs;
    answer_job(f, JOB_501(T2));
    for (int i = 0; i < 3; i++)
        fake_transport_push(&f->ft, (struct fake_response){.status = 304});
    r = sync_601(f);
    assert_int_equal(r->models[0].result, HS_RESULT_SYNCED);
    hs_sync_report_free(r);
    assert_string_equal(f->ft.reqs[first + 1].if_none_match, etag);
    assert_string_equal(f->ft.reqs[first + 2].if_none_match, "\"j1\"");

    /* Damage the stored PDF the way an unchecked short download left it. */
    char path[512];
    struct hs_artifact_row row = {0};
    assert_int_equal(f->store->records->artifact_get(f->store, 601, "measurements.pdf", &row, NULL),
                     HS_OK);
    snprintf(path, sizeof path, "%s/%s", f->dir, row.path);
    hs_artifact_row_clear(&row);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs(PDF_CUT, fp);
    fclose(fp);
    first = f->ft.n_reqs;
    answer_job(f, "{\"id\":501,\"models\":[{\"id\":601,\"state\":\"complete\",\"updated_at\":"
                  "\"2025-03-19T01:00:00.000Z\",\"artifacts\":{\"measurements\":{\"pdf\":\"" BASE
                  "/api/v3/models/601/artifacts/measurements.pdf\"}}}]}");
    answer(f, PDF, 0, "application/pdf", etag);
    r = sync_601(f);
    assert_int_equal(r->models[0].result, HS_RESULT_SYNCED);
    hs_sync_report_free(r);
    assert_null(f->ft.reqs[first + 1].if_none_match);
}

static void test_run_has_a_lease(void **state)
{
    struct fixture *f = *state;
    answer_whole(f, NULL, NULL, NULL);
    struct hs_sync_report *r = sync_601(f);
    assert_int_equal(r->models[0].result, HS_RESULT_SYNCED);
    hs_sync_report_free(r);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM sync_runs WHERE status = 'synced' AND "
                                "lease_until_ms > 0"),
                     1);
}

/* ---- the work queue's hook ---- */

/* What the hook saw, and how it answers: a claim of the job's work item, fenced at the fake
 * clock's time; lapse_at: the clock jumps past the lease at that call (1-based; 0: never). */
struct hook {
    struct fixture *f;
    struct hs_work_item it;
    int calls, lapse_at;
    char seen[256];
};

static int hook_in_txn(void *ctx, const struct hs_sync_progress *p, struct hs_error *err)
{
    struct hook *h = ctx;
    struct fixture *f = h->f;
    if (++h->calls == h->lapse_at)
        hs_fake_clock_advance(&f->fc, 60000);
    static const char *const names[] = {"started", "artifact", "finished", "run"};
    size_t len = strlen(h->seen);
    snprintf(h->seen + len, sizeof h->seen - len, "%s:%lld/%lld ", names[p->event],
             (long long)p->artifacts_done, (long long)p->artifacts_total);
    int rc = f->store->work->work_fence(f->store, &h->it, f->fc.clock.wall_ms(&f->fc.clock), err);
    if (rc)
        return rc;
    /* A write of the caller's: it commits with the engine's, or not at all. */
    char name[32];
    snprintf(name, sizeof name, "hook-%d", h->calls);
    return f->store->records->checkpoint_put(f->store, name, "1", err);
}

/* The job's item scheduled and claimed for 30 s at the fake clock's time, and the hook set. */
static void hook_claim(struct fixture *f, struct hook *h)
{
    memset(h, 0, sizeof *h);
    h->f = f;
    int64_t now = f->fc.clock.wall_ms(&f->fc.clock);
    struct hs_work_trigger t = {.connection_key = "org-1",
                                .job_id = 501,
                                .reason = "webhook",
                                .priority = HS_WORK_PRIO_BACKGROUND,
                                .now_ms = now,
                                .due_ms = now};
    assert_int_equal(f->store->work->work_schedule(f->store, &t, NULL), HS_OK);
    assert_int_equal(
        f->store->work->work_claim(f->store, "w", NULL, now, 30000, &h->it, NULL, NULL), HS_OK);
    f->e.in_txn = hook_in_txn;
    f->e.in_txn_ctx = h;
}

static int64_t checkpoints(struct fixture *f)
{
    return sql_int(f, "SELECT COUNT(*) FROM checkpoints WHERE name LIKE 'hook-%'");
}

/* The hook runs in the run's first transaction (once per model), per artifact in a lazy
 * transaction of its own as each is downloaded, then per artifact and for the result in the
 * model's result's (its rows commit with it), and its writes are there after the run. */
static void test_hook_runs_inside_each_transaction(void **state)
{
    struct fixture *f = *state;
    struct hook h;
    hook_claim(f, &h);
    answer_whole(f, NULL, NULL, NULL);
    struct hs_sync_report *r = sync_601(f);
    assert_int_equal(r->models[0].result, HS_RESULT_SYNCED);
    hs_sync_report_free(r);
    assert_string_equal(h.seen, "run:0/3 artifact:1/3 artifact:2/3 artifact:3/3 "
                                "artifact:1/3 artifact:2/3 artifact:3/3 finished:3/3 ");
    assert_int_equal(checkpoints(f), 8);
    hs_work_item_clear(&h.it);
}

/* The claim's lease lapses while the run downloads (the worker paused past it): the model's
 * transaction (its artifact rows and result) is refused and rolled back, the run stops there and
 * commits nothing more, and says why; another worker may run the item. The files already in place
 * are left for the collector, or for the next run that writes the same bytes. */
static void test_lost_claim_stops_the_run(void **state)
{
    struct fixture *f = *state;
    struct hook h;
    hook_claim(f, &h);
    h.lapse_at = 3; /* the second artifact's progress */
    answer_whole(f, NULL, NULL, NULL);
    static const int64_t ids[] = {601};
    struct hs_sync_request rq = {.job_id = 501, .model_ids = ids, .n_model_ids = 1};
    struct hs_sync_report *r = NULL;
    struct hs_error err = {0};
    assert_int_equal(hs_sync_job(&f->e, &rq, &r, &err), HS_ERR_CONFLICT);
    assert_null(r);
    assert_non_null(strstr(err.msg, "lapsed"));
    /* Show Job, the PDF and the JSON: the photo was never asked for (its answer is dropped). */
    assert_int_equal(f->ft.n_reqs, 3);
    f->ft.next++;
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM artifacts WHERE model_id = 601"), 0);
    assert_int_equal(files_under(f->dir, "blobs"), 2);
    assert_int_equal(checkpoints(f), 2); /* the run's start and the PDF's progress */
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM selections WHERE model_id = 601 AND "
                                "status = 'selected'"),
                     1);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM measurements"), 0);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM sync_runs WHERE status = 'interrupted'"), 1);
    assert_int_equal(files_under(f->dir, "tmp"), 0);
    hs_work_item_clear(&h.it);

    /* Another worker claims the item and runs it whole. */
    hook_claim(f, &h);
    assert_int_equal(h.it.claim, 2);
    answer_whole(f, NULL, NULL, NULL);
    r = sync_601(f);
    assert_int_equal(r->models[0].result, HS_RESULT_SYNCED);
    hs_sync_report_free(r);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM artifacts WHERE model_id = 601"), 3);
    hs_work_item_clear(&h.it);
}

/* Refused in the run's first transaction: nothing of the run is stored at all. */
static void test_lost_claim_before_the_run_stores_nothing(void **state)
{
    struct fixture *f = *state;
    struct hook h;
    hook_claim(f, &h);
    h.lapse_at = 1;
    answer_job(f, JOB_501(T1));
    static const int64_t ids[] = {601};
    struct hs_sync_request rq = {.job_id = 501, .model_ids = ids, .n_model_ids = 1};
    struct hs_sync_report *r = NULL;
    assert_int_equal(hs_sync_job(&f->e, &rq, &r, NULL), HS_ERR_CONFLICT);
    assert_null(r);
    assert_int_equal(f->ft.n_reqs, 1);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM sync_runs"), 0);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM selections"), 0);
    assert_int_equal(checkpoints(f), 0);
    hs_work_item_clear(&h.it);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_short_pdf_is_not_stored),
        T(test_short_jpeg_and_json_are_not_stored),
        T(test_body_contradicting_its_etag_is_not_stored),
        T(test_stored_file_contradicting_its_etag_is_fetched_again),
        T(test_run_has_a_lease),
        T(test_hook_runs_inside_each_transaction),
        T(test_lost_claim_stops_the_run),
        T(test_lost_claim_before_the_run_stores_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
