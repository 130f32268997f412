/* test_syncq.c: the syncs a person watches (src/worker/syncq.c) run through the work queue
 * (src/worker/events.c), with a real SQLite store and data directory in a temporary directory
 * and a fake client provider whose one hs_client talks to the scripted fake transport of
 * tests/hover (Show Job and artifact answers, every request recorded). Items are run with
 * hs_events_run_once in the test's thread, on a fake clock: what a sync shows at each step,
 * failures, a sync asked for while its job runs, a worker whose lease lapsed mid-run, a restart
 * between the answer and the run, "sync when ready" completed by the pending pass, expiry. */
#include <openssl/evp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "core/clock.h"
#include "core/mem.h"
#include "core/str.h"
#include "fake_transport.h"
#include "hover/client.h"
#include "store/outbox.h"
#include "store/records.h"
#include "store/store.h"
#include "store/tokens.h"
#include "store/work.h"
#include "worker/duties.h"
#include "worker/events.h"
#include "worker/syncq.h"

#define NOW_S 1742200000LL
#define BASE  "https://hover.test"

static const char PDF[] = "%PDF-1.4 fake measurements of model 601\n%%EOF\n";
static const char SUMMARY[] = "{\"roof\":{\"area\":{\"total\":2450.3},\"facets\":{\"total\":12}}}";
static const char PDF_602[] = "%PDF-1.4 the garage, once it was done\n%%EOF\n";

/* Job 501: model 601 complete (a PDF and the summarized JSON), 602 still processing. */
static const char JOB_501[] =
    "{\"id\":501,\"name\":\"Main House\",\"reconstruction_state\":\"processing\","
    "\"updated_at\":\"2025-03-17T01:00:00.000Z\",\"address\":{\"location_line_1\":\"4312 Meadow "
    "Drive\"},\"models\":[{\"id\":601,\"name\":\"House\",\"state\":\"complete\",\"updated_at\":"
    "\"2025-03-17T01:00:00.000Z\",\"artifacts\":{\"measurements\":{\"pdf\":\"" BASE
    "/api/v3/models/601/artifacts/measurements.pdf\",\"json\":\"" BASE
    "/api/v3/models/601/artifacts/measurements.json?version=summarized_json\"}}},"
    "{\"id\":602,\"name\":\"Detached Garage\",\"state\":\"processing\",\"updated_at\":"
    "\"2025-03-17T01:00:00.000Z\",\"artifacts\":null}]}";
/* The same job a day later: 602 is complete too. */
static const char JOB_501_DONE[] =
    "{\"id\":501,\"name\":\"Main House\",\"reconstruction_state\":\"completed\","
    "\"updated_at\":\"2025-03-18T01:00:00.000Z\",\"models\":[{\"id\":601,\"name\":\"House\","
    "\"state\":\"complete\",\"updated_at\":\"2025-03-17T01:00:00.000Z\",\"artifacts\":{"
    "\"measurements\":{\"pdf\":\"" BASE "/api/v3/models/601/artifacts/measurements.pdf\"}}},"
    "{\"id\":602,\"name\":\"Detached Garage\",\"state\":\"complete\",\"updated_at\":"
    "\"2025-03-18T01:00:00.000Z\",\"artifacts\":{\"measurements\":{\"pdf\":\"" BASE
    "/api/v3/models/602/artifacts/measurements.pdf\"}}}]}";
/* Job 777: one complete model without artifacts (Capture Only): a sync costs one Show Job. */
static const char JOB_777[] =
    "{\"id\":777,\"name\":\"Maple Court Capture\",\"reconstruction_state\":\"completed\","
    "\"models\":[{\"id\":7771,\"name\":\"House\",\"state\":\"complete\",\"updated_at\":"
    "\"2025-01-01T00:00:00.000Z\",\"artifacts\":{}}]}";

/* ---- the fake provider ---- */

struct provider {
    int fail; /* an hs_err that acquire answers with, 0: none */
    char last_key[64];
    struct fake_transport ft;
    struct hs_fake_clock fc;
    struct hs_client *client;
};

static int p_acquire(void *ctx, const char *key, struct hs_client **out, struct hs_error *err)
{
    struct provider *p = ctx;
    hs_strlcpy(p->last_key, key, sizeof p->last_key);
    if (p->fail)
        return hs_fail(err, p->fail, "fake provider: %s", hs_err_name(p->fail));
    *out = p->client;
    return HS_OK;
}

static void p_release(void *ctx, struct hs_client *c)
{
    struct provider *p = ctx;
    assert_ptr_equal(c, p->client);
}

/* ---- fixture ---- */

struct fixture {
    char dir[256];
    char db[300];
    struct hs_store *store;
    struct provider p;
    struct hs_fake_clock clock; /* the queue's and the workers': leases, dates of syncs */
    struct hs_syncq *q;
    struct hs_events *w;
    struct hs_outbox *outbox;
    int told; /* progress hook calls */
};

static void on_progress(void *ctx)
{
    struct fixture *f = ctx;
    f->told++;
    hs_syncq_progress_written(f->q);
}

static void start_workers(struct fixture *f)
{
    struct hs_events_config ec = {
        .data_dir = f->dir, .lease_ms = 30000, .on_sync_progress = on_progress, .progress_ctx = f};
    struct hs_client_provider cp = {p_acquire, p_release, &f->p};
    struct hs_error err = {0};
    if (hs_events_new(&ec, f->store, cp, f->outbox, &f->clock.clock, &f->w, &err))
        fail_msg("hs_events_new: %s", err.msg);
}

static void start_queue(struct fixture *f)
{
    struct hs_syncq_config qc = {.keep_done_ms = 60000};
    struct hs_error err = {0};
    if (hs_syncq_new(&qc, f->store, &f->clock.clock, &f->q, &err))
        fail_msg("hs_syncq_new: %s", err.msg);
}

static int setup(void **state)
{
    struct fixture *f = hs_calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/hs-syncq-test-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->db, sizeof f->db, "%s/store.db", f->dir);
    struct hs_error err = {0};
    if (hs_store_open(f->db, NULL, &f->store, &err)) {
        fprintf(stderr, "open: %s\n", err.msg);
        return -1;
    }
    struct hs_token t = {.access_token = (char *)"tok-1",
                         .refresh_token = (char *)"ref-1",
                         .expires_at = NOW_S + 86400};
    if (f->store->tokens->token_save(f->store, "org-1", &t, &err))
        return -1;
    struct provider *p = &f->p;
    fake_transport_init(&p->ft);
    hs_fake_clock_init(&p->fc, NOW_S * 1000);
    struct hs_client_config cc = {.base_url = BASE,
                                  .client_id = "cid",
                                  .client_secret = "secret",
                                  .credential_key = "org-1",
                                  .max_attempts = 1};
    if (hs_client_new(&cc, hs_store_tokens(f->store), &p->fc.clock, &p->ft.base, &p->client,
                      &err)) {
        fprintf(stderr, "client: %s\n", err.msg);
        return -1;
    }
    hs_fake_clock_init(&f->clock, NOW_S * 1000);
    start_queue(f);
    start_workers(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    hs_events_free(f->w);
    hs_syncq_free(f->q);
    hs_outbox_free(f->outbox);
    hs_client_free(f->p.client);
    fake_transport_cleanup(&f->p.ft);
    hs_store_close(f->store);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

static void script(struct fixture *f, long status, const char *body, const char *type)
{
    fake_transport_push(
        &f->p.ft, (struct fake_response){.status = status, .body = body, .content_type = type});
}

static void script_501(struct fixture *f)
{
    script(f, 200, JOB_501, "application/json");
    script(f, 200, PDF, "application/pdf");
    script(f, 200, SUMMARY, "application/json");
}

static void submit(struct fixture *f, int64_t job, const int64_t *now, size_t n_now,
                   const int64_t *later, size_t n_later, char id[40])
{
    struct hs_error err = {0};
    int rc = hs_syncq_submit(f->q, "org-1", job, now, n_now, later, n_later, NULL, id, &err);
    if (rc)
        fail_msg("submit: %s", err.msg);
}

static json_t *get(struct fixture *f, const char *id)
{
    json_t *o = NULL;
    struct hs_error err = {0};
    if (hs_syncq_get(f->q, id, &o, NULL, &err))
        fail_msg("get %s: %s", id, err.msg);
    return o;
}

/* Runs the next due item (want: whether one was due). */
static void run_one(struct fixture *f, const char *worker, bool want)
{
    bool ran = !want;
    struct hs_error err = {0};
    assert_int_equal(hs_events_run_once(f->w, worker, &ran, &err), HS_OK);
    assert_int_equal(ran, want);
}

static const char *str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static int64_t num(json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

static json_t *model_at(json_t *o, size_t i)
{
    return json_array_get(json_object_get(o, "models"), i);
}

static void sha_link(const char *bytes, char out[80])
{
    unsigned char md[32];
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(bytes, strlen(bytes), md, &n, EVP_sha256(), NULL), 1);
    char hex[65];
    hs_hex(md, 32, hex);
    snprintf(out, 80, "/files/%s", hex);
}

/* The open selections as "job/model:status" words, in the store's order. */
static char *open_selections(struct fixture *f)
{
    struct hs_selection *v = NULL;
    size_t n = 0;
    assert_int_equal(f->store->records->selections_open(f->store, &v, &n, NULL), HS_OK);
    char buf[1024] = "";
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len +=
            (size_t)snprintf(buf + len, sizeof buf - len, "%lld/%lld:%s ", (long long)v[i].job_id,
                             (long long)v[i].model_id, hs_selection_status_name(v[i].status));
    hs_selections_free(v, n);
    return hs_strdup(buf);
}

/* SELECT of one integer, as a CRM developer would read the file (-1: no row). */
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

/* Mid-run, when the summarized JSON is asked for (a hook of the transport): what GET
 * /api/syncs/{id} shows then, and what the hook's `act` does. */
struct mid_run {
    struct fixture *f;
    char id[40];
    json_t *snapshot;
    void (*act)(struct mid_run *m);
    char other_id[40];
};

static void mid_run_hook(void *ctx, struct fake_transport *ft, const struct fake_request *r)
{
    struct mid_run *m = ctx;
    (void)ft;
    if (!strstr(r->url, "measurements.json") || m->snapshot)
        return;
    m->snapshot = get(m->f, m->id);
    if (m->act)
        m->act(m);
}

static void watch(struct fixture *f, struct mid_run *m, const char *id)
{
    m->f = f;
    hs_strlcpy(m->id, id, sizeof m->id);
    f->p.ft.on_request = mid_run_hook;
    f->p.ft.on_request_ctx = m;
}

/* ---- cases ---- */

static void test_submit_then_a_worker_runs_it_with_progress(void **state)
{
    struct fixture *f = *state;
    script_501(f);
    const int64_t now[] = {601}, later[] = {602};
    char id[40];
    submit(f, 501, now, 1, later, 1, id);
    /* Durable before the id came back: both selections, the sync, the job's work item. */
    char *sel = open_selections(f);
    assert_string_equal(sel, "501/601:selected 501/602:pending ");
    free(sel);
    assert_int_equal(sql_int(f, "SELECT priority FROM work_items WHERE job_id = 501 AND reason "
                                "= 'api'"),
                     HS_WORK_PRIO_INTERACTIVE);
    json_t *o = get(f, id);
    assert_string_equal(str(o, "id"), id);
    assert_int_equal(num(o, "job_id"), 501);
    assert_string_equal(str(o, "connection"), "org-1");
    assert_string_equal(str(o, "status"), "queued");
    assert_true(json_is_null(json_object_get(o, "result")));
    assert_int_equal(json_array_size(json_object_get(o, "models")), 2);
    assert_int_equal(num(model_at(o, 0), "id"), 601);
    assert_false(json_boolean_value(json_object_get(model_at(o, 0), "when_ready")));
    assert_true(json_boolean_value(json_object_get(model_at(o, 1), "when_ready")));
    int64_t v0 = num(o, "version");
    json_decref(o);
    struct hs_syncq_stats st;
    assert_int_equal(hs_syncq_get_stats(f->q, &st, NULL), HS_OK);
    assert_int_equal(st.queued, 1);

    struct mid_run m = {0};
    watch(f, &m, id);
    run_one(f, "w:1:0", true);

    /* Mid-way: running, the first artifact of two stored, the other model said to wait. */
    assert_non_null(m.snapshot);
    assert_string_equal(str(m.snapshot, "status"), "running");
    assert_true(num(m.snapshot, "version") > v0);
    json_t *mm = model_at(m.snapshot, 0);
    assert_string_equal(str(mm, "name"), "House");
    assert_int_equal(num(mm, "artifacts_done"), 1);
    assert_int_equal(num(mm, "artifacts_total"), 2);
    assert_true(json_is_null(json_object_get(mm, "result")));
    json_decref(m.snapshot);

    /* The end: 601 synced with its links, 602 pending until Hover completes it. */
    o = get(f, id);
    assert_string_equal(str(o, "status"), "done");
    assert_string_equal(str(o, "result"), "partial");
    mm = model_at(o, 0);
    assert_string_equal(str(mm, "result"), "synced");
    assert_int_equal(num(mm, "artifacts_done"), 2);
    assert_int_equal(num(mm, "artifacts_total"), 2);
    char pdf[80], summary[80];
    sha_link(PDF, pdf);
    sha_link(SUMMARY, summary);
    assert_string_equal(str(json_object_get(mm, "records"), "pdf"), pdf);
    assert_string_equal(str(json_object_get(mm, "records"), "measurements_json"), summary);
    json_t *rec = json_object_get(o, "records");
    assert_string_equal(str(rec, "pdf"), pdf);
    assert_string_equal(str(rec, "measurements_json"), summary);
    assert_string_equal(str(json_object_get(json_object_get(rec, "by_model"), "601"), "pdf"), pdf);
    mm = model_at(o, 1);
    assert_string_equal(str(mm, "name"), "Detached Garage");
    assert_string_equal(str(mm, "result"), "pending");
    assert_non_null(strstr(str(mm, "message"), "processing"));
    json_decref(o);
    assert_true(f->told > 0);
    assert_true(hs_syncq_local_changes(f->q) >= f->told);

    /* What went to Hover: Show Job and the two files, nothing for the processing model. */
    assert_int_equal(f->p.ft.n_reqs, 3);
    assert_non_null(strstr(f->p.ft.reqs[0].url, "/api/v3/jobs/501"));
    assert_string_equal(f->p.last_key, "org-1");
    sel = open_selections(f);
    assert_string_equal(sel, "501/602:pending ");
    free(sel);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM work_items"), 0);
    assert_int_equal(hs_syncq_get_stats(f->q, &st, NULL), HS_OK);
    assert_int_equal(st.queued + st.running, 0);
    struct hs_events_stats es;
    hs_events_get_stats(f->w, &es);
    assert_int_equal(es.syncs_done, 1);

    /* A day later the garage is done: the pending pass (no webhook here) polls the job a minute
     * after it was first seen waiting, and the sync shows the garage synced. */
    f->p.ft.on_request = NULL;
    int64_t t0 = f->clock.clock.wall_ms(&f->clock.clock);
    size_t n = 0;
    assert_int_equal(hs_duty_pending(f->store, t0, 60000, 900000, &n, NULL), HS_OK);
    assert_int_equal(n, 0);
    run_one(f, "w:1:0", false);
    hs_fake_clock_advance(&f->clock, 60000);
    assert_int_equal(hs_duty_pending(f->store, t0 + 60000, 60000, 900000, &n, NULL), HS_OK);
    assert_int_equal(n, 1);
    script(f, 200, JOB_501_DONE, "application/json");
    script(f, 200, PDF_602, "application/pdf");
    o = get(f, id);
    int64_t v1 = num(o, "version");
    json_decref(o);
    run_one(f, "w:1:0", true);
    assert_int_equal(f->p.ft.n_reqs, 5); /* Show Job and 602's PDF; 601 is not asked again */
    assert_non_null(strstr(f->p.ft.reqs[4].url, "/models/602/"));
    o = get(f, id);
    assert_true(num(o, "version") > v1);
    assert_string_equal(str(o, "result"), "synced");
    assert_string_equal(str(model_at(o, 1), "result"), "synced");
    char pdf602[80];
    sha_link(PDF_602, pdf602);
    assert_string_equal(str(json_object_get(model_at(o, 1), "records"), "pdf"), pdf602);
    json_decref(o);
    sel = open_selections(f);
    assert_string_equal(sel, "");
    free(sel);
}

static void test_failures_are_reported_and_retried(void **state)
{
    struct fixture *f = *state;
    /* The org's grant was revoked. */
    f->p.fail = HS_ERR_INVALID_GRANT;
    const int64_t now[] = {601};
    char id[40];
    submit(f, 501, now, 1, NULL, 0, id);
    run_one(f, "w:1:0", true);
    json_t *o = get(f, id);
    assert_string_equal(str(o, "status"), "failed");
    assert_string_equal(str(o, "result"), "failed");
    assert_string_equal(str(json_object_get(o, "error"), "code"), "reconnect_required");
    assert_true(json_is_null(json_object_get(model_at(o, 0), "result")));
    assert_non_null(str(model_at(o, 0), "message"));
    json_decref(o);
    char *sel = open_selections(f);
    assert_string_equal(sel, "501/601:selected ");
    free(sel);
    /* The item stays, for a retry in 5 s. */
    assert_int_equal(sql_int(f, "SELECT attempts FROM work_items WHERE job_id = 501"), 1);
    run_one(f, "w:1:0", false);
    hs_fake_clock_advance(&f->clock, 5000);
    f->p.fail = 0;
    script_501(f);
    run_one(f, "w:1:0", true);
    sel = open_selections(f);
    assert_string_equal(sel, ""); /* the later pass synced it; the failed sync shows it too */
    free(sel);
    o = get(f, id);
    assert_string_equal(str(o, "status"), "failed");
    assert_string_equal(str(model_at(o, 0), "result"), "synced");
    json_decref(o);

    /* A model that is no longer on the job: closed, failed upstream. */
    script(f, 200, JOB_777, "application/json");
    const int64_t wrong[] = {9999};
    char id2[40];
    submit(f, 777, wrong, 1, NULL, 0, id2);
    assert_string_not_equal(id, id2);
    run_one(f, "w:1:0", true);
    o = get(f, id2);
    assert_string_equal(str(o, "status"), "done");
    assert_string_equal(str(o, "result"), "failed");
    assert_string_equal(str(model_at(o, 0), "result"), "failed_upstream");
    assert_string_equal(str(model_at(o, 0), "message"), "model no longer on the job");
    json_decref(o);

    /* Bad submissions store nothing. */
    struct hs_error err = {0};
    char id3[40];
    const int64_t zero[] = {0};
    assert_int_equal(hs_syncq_submit(f->q, "org-1", 0, now, 1, NULL, 0, NULL, id3, &err),
                     HS_ERR_INVALID);
    assert_int_equal(hs_syncq_submit(f->q, "org-1", 5, NULL, 0, NULL, 0, NULL, id3, &err),
                     HS_ERR_INVALID);
    assert_int_equal(hs_syncq_submit(f->q, "org-1", 5, now, 1, zero, 1, NULL, id3, &err),
                     HS_ERR_INVALID);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM syncs"), 2);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM work_items"), 0);
}

static void submit_again(struct mid_run *m)
{
    const int64_t now[] = {601};
    submit(m->f, 501, now, 1, NULL, 0, m->other_id);
}

/* A sync asked for while its job is being synced: the run under way finishes its own sync,
 * the new one gets the pass after it. */
static void test_a_sync_during_a_run_gets_the_next_pass(void **state)
{
    struct fixture *f = *state;
    script_501(f);
    const int64_t now[] = {601};
    char id[40];
    submit(f, 501, now, 1, NULL, 0, id);
    struct mid_run m = {.act = submit_again};
    watch(f, &m, id);
    run_one(f, "w:1:0", true);
    json_decref(m.snapshot);
    f->p.ft.on_request = NULL;
    json_t *o = get(f, id);
    assert_string_equal(str(o, "status"), "done");
    json_decref(o);
    o = get(f, m.other_id);
    assert_string_equal(str(o, "status"), "queued");
    json_decref(o);
    /* The item runs again at once: one Show Job, the model unchanged. */
    script(f, 200, JOB_501, "application/json");
    run_one(f, "w:1:0", true);
    assert_int_equal(f->p.ft.n_reqs, 4);
    o = get(f, m.other_id);
    assert_string_equal(str(o, "status"), "done");
    assert_string_equal(str(o, "result"), "synced");
    assert_int_equal(num(model_at(o, 0), "artifacts_done"), 2);
    json_decref(o);
    run_one(f, "w:1:0", false);
}

static void lapse(struct mid_run *m)
{
    hs_fake_clock_advance(&m->f->clock, 30001); /* past the lease: paused, or cut off */
}

/* A worker whose lease lapsed mid-run commits nothing more: its download is not recorded, the
 * sync is not finished by it, and the item runs again elsewhere, once. */
static void test_a_late_worker_cannot_commit(void **state)
{
    struct fixture *f = *state;
    script_501(f);
    const int64_t now[] = {601};
    char id[40];
    submit(f, 501, now, 1, NULL, 0, id);
    struct mid_run m = {.act = lapse};
    watch(f, &m, id);
    run_one(f, "late:1:0", true);
    json_decref(m.snapshot);
    f->p.ft.on_request = NULL;
    struct hs_events_stats es;
    hs_events_get_stats(f->w, &es);
    assert_int_equal(es.fenced, 1);
    /* The model's rows commit with its result, which the fence refused: no artifact row, the
     * selection is open, the sync still running, the item still there. */
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM artifacts"), 0);
    char *sel = open_selections(f);
    assert_string_equal(sel, "501/601:selected ");
    free(sel);
    json_t *o = get(f, id);
    assert_string_equal(str(o, "status"), "running");
    json_decref(o);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM work_items WHERE claimed_by = 'late:1:0'"),
                     1);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM sync_runs WHERE status = 'interrupted'"), 1);

    /* Another worker takes it (the lease ended) and finishes the sync. */
    script_501(f);
    run_one(f, "other:2:0", true);
    o = get(f, id);
    assert_string_equal(str(o, "status"), "done");
    assert_string_equal(str(o, "result"), "synced");
    json_decref(o);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM artifacts"), 2);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM work_items"), 0);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM sync_results WHERE model_id = 601 AND "
                                "result = 'synced'"),
                     1);
    hs_events_get_stats(f->w, &es);
    assert_int_equal(es.syncs_done, 1);
}

/* The answer was given, then the process died before any worker ran: a new process finds the
 * sync in the store and runs it. */
static void test_an_accepted_sync_survives_a_restart(void **state)
{
    struct fixture *f = *state;
    const int64_t now[] = {601};
    char id[40];
    submit(f, 501, now, 1, NULL, 0, id);
    hs_events_free(f->w);
    hs_syncq_free(f->q);
    hs_client_free(f->p.client);
    hs_store_close(f->store);
    assert_int_equal(hs_store_open(f->db, NULL, &f->store, NULL), HS_OK);
    struct hs_client_config cc = {.base_url = BASE,
                                  .client_id = "cid",
                                  .client_secret = "secret",
                                  .credential_key = "org-1",
                                  .max_attempts = 1};
    assert_int_equal(hs_client_new(&cc, hs_store_tokens(f->store), &f->p.fc.clock, &f->p.ft.base,
                                   &f->p.client, NULL),
                     HS_OK);
    start_queue(f);
    start_workers(f);
    script_501(f);
    run_one(f, "w:2:0", true);
    json_t *o = get(f, id);
    assert_string_equal(str(o, "status"), "done");
    assert_string_equal(str(o, "result"), "synced");
    json_decref(o);
}

static void test_finished_syncs_expire(void **state)
{
    struct fixture *f = *state;
    script(f, 200, JOB_777, "application/json");
    const int64_t now[] = {7771};
    char id[40];
    submit(f, 777, now, 1, NULL, 0, id);
    run_one(f, "w:1:0", true);
    json_t *o = get(f, id);
    assert_string_equal(str(o, "result"), "synced");
    int64_t v = -1;
    assert_int_equal(hs_syncq_version(f->q, id, &v, NULL), HS_OK);
    assert_int_equal(v, num(o, "version"));
    json_decref(o);
    hs_fake_clock_advance(&f->clock, 60000);
    o = get(f, id); /* exactly keep_done_ms: still readable */
    json_decref(o);
    hs_fake_clock_advance(&f->clock, 1);
    struct hs_error err = {0};
    assert_int_equal(hs_syncq_get(f->q, id, &o, NULL, &err), HS_ERR_NOT_FOUND);
    assert_int_equal(hs_syncq_get(f->q, "no-such-sync", &o, NULL, &err), HS_ERR_NOT_FOUND);
    /* The clean-up deletes it. */
    int64_t removed = 0;
    assert_int_equal(hs_duty_expire_syncs(f->store, f->clock.clock.wall_ms(&f->clock.clock), 60000,
                                          &removed, NULL),
                     HS_OK);
    assert_int_equal(removed, 1);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM syncs"), 0);
}

/* A sync from the modal that stored something queues one CRM notification (notify/outbox.h);
 * the same sync again, with nothing new, none. */
static void test_sync_that_changed_something_notifies_the_crm(void **state)
{
    struct fixture *f = *state;
    const char *eps[] = {"http://crm.test/hook"};
    struct hs_outbox_config oc = {.endpoints = eps, .n_endpoints = 1, .secret = "s"};
    struct hs_error err = {0};
    assert_int_equal(hs_outbox_new(&oc, f->store, NULL, &f->p.ft.base, &f->outbox, &err), 0);
    hs_events_free(f->w);
    start_workers(f);
    script_501(f);
    const int64_t now[] = {601};
    char id[40];
    submit(f, 501, now, 1, NULL, 0, id);
    run_one(f, "w:1:0", true);
    int64_t n = -1;
    assert_int_equal(f->store->outbox->outbox_depth(f->store, &n, NULL), 0);
    assert_int_equal(n, 1);
    struct hs_outbox_row row = {0};
    assert_int_equal(f->store->outbox->outbox_next(f->store, INT64_MAX / 2, &row, NULL), 0);
    assert_int_equal(row.job_id, 501);
    assert_non_null(strstr(row.payload, "\"type\":\"hoversync.job.synced\""));
    hs_outbox_row_clear(&row);
    /* Unchanged: one Show Job, nothing stored, nothing to tell. */
    script(f, 200, JOB_501, "application/json");
    submit(f, 501, now, 1, NULL, 0, id);
    run_one(f, "w:1:0", true);
    assert_int_equal(f->store->outbox->outbox_depth(f->store, &n, NULL), 0);
    assert_int_equal(n, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_submit_then_a_worker_runs_it_with_progress, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_failures_are_reported_and_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_sync_during_a_run_gets_the_next_pass, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_late_worker_cannot_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_accepted_sync_survives_a_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finished_syncs_expire, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_that_changed_something_notifies_the_crm, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("syncq", tests, NULL, NULL);
}
