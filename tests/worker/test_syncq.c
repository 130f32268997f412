/* test_syncq.c: the sync queue (src/worker/syncq.c) with a real SQLite store and data directory
 * in a temporary directory, and a fake client provider whose one hs_client talks to the scripted
 * fake transport of tests/hover (Show Job and artifact answers, every request recorded). The
 * provider can hold acquires at a gate, so that a test sees a sync queued or running, and runs a
 * pending pass while the queue is busy, in a known order. */
#include <openssl/evp.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/clock.h"
#include "core/mem.h"
#include "core/str.h"
#include "fake_transport.h"
#include "hover/client.h"
#include "store/outbox.h"
#include "store/records.h"
#include "store/store.h"
#include "store/tokens.h"
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
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool gate;    /* closed: acquires number 1..gated wait until it opens */
    int gated;    /* see gate */
    int acquires; /* calls so far */
    bool busy;    /* the client is out */
    int fail;     /* an hs_err that acquire answers with, 0: none */
    char last_key[64];
    struct fake_transport ft;
    struct hs_fake_clock fc;
    struct hs_client *client;
};

static int p_acquire(void *ctx, const char *key, struct hs_client **out, struct hs_error *err)
{
    struct provider *p = ctx;
    pthread_mutex_lock(&p->mu);
    int n = ++p->acquires;
    hs_strlcpy(p->last_key, key, sizeof p->last_key);
    if (p->fail) {
        pthread_mutex_unlock(&p->mu);
        return hs_fail(err, p->fail, "fake provider: %s", hs_err_name(p->fail));
    }
    while ((p->gate && n <= p->gated) || p->busy)
        pthread_cond_wait(&p->cv, &p->mu);
    p->busy = true;
    pthread_mutex_unlock(&p->mu);
    *out = p->client;
    return HS_OK;
}

static void p_release(void *ctx, struct hs_client *c)
{
    struct provider *p = ctx;
    assert_ptr_equal(c, p->client);
    pthread_mutex_lock(&p->mu);
    p->busy = false;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void gate_close(struct provider *p, int first_n)
{
    pthread_mutex_lock(&p->mu);
    p->gate = true;
    p->gated = first_n;
    pthread_mutex_unlock(&p->mu);
}

static void gate_open(struct provider *p)
{
    pthread_mutex_lock(&p->mu);
    p->gate = false;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* ---- fixture ---- */

struct fixture {
    char dir[256];
    struct hs_store *store;
    struct provider p;
    struct hs_fake_clock qclock; /* the queue's clock: dates finished syncs */
    struct hs_syncq_config cfg;
    struct hs_syncq *q;
    json_t *snapshot; /* taken by the transport hook, mid-sync */
};

static int setup(void **state)
{
    struct fixture *f = hs_calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/hs-syncq-test-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    char path[300];
    snprintf(path, sizeof path, "%s/store.db", f->dir);
    struct hs_error err = {0};
    if (hs_store_open(path, NULL, &f->store, &err)) {
        fprintf(stderr, "open: %s\n", err.msg);
        return -1;
    }
    struct hs_token t = {.access_token = (char *)"tok-1",
                         .refresh_token = (char *)"ref-1",
                         .expires_at = NOW_S + 86400};
    if (f->store->tokens->token_save(f->store, "org-1", &t, &err))
        return -1;

    struct provider *p = &f->p;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
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
    hs_fake_clock_init(&f->qclock, NOW_S * 1000);
    f->cfg = (struct hs_syncq_config){.data_dir = f->dir, .workers = 1, .keep_done_ms = 60000};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    hs_syncq_free(f->q);
    hs_client_free(f->p.client);
    fake_transport_cleanup(&f->p.ft);
    hs_store_close(f->store);
    json_decref(f->snapshot);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

static void start(struct fixture *f)
{
    struct hs_client_provider cp = {p_acquire, p_release, &f->p};
    struct hs_error err = {0};
    if (hs_syncq_new(&f->cfg, f->store, cp, &f->qclock.clock, &f->q, &err))
        fail_msg("hs_syncq_new: %s", err.msg);
}

static void script(struct fixture *f, long status, const char *body, const char *type)
{
    fake_transport_push(
        &f->p.ft, (struct fake_response){.status = status, .body = body, .content_type = type});
}

static void submit(struct fixture *f, int64_t job, const int64_t *now, size_t n_now,
                   const int64_t *later, size_t n_later, char id[40])
{
    struct hs_error err = {0};
    int rc = hs_syncq_submit(f->q, "org-1", job, now, n_now, later, n_later, id, &err);
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

/* Waits (on the sync's condition variable) until it is done or failed. */
static json_t *wait_finished(struct fixture *f, const char *id)
{
    int64_t v = 0;
    for (int i = 0; i < 1000; i++) {
        json_t *o = get(f, id);
        const char *st = json_string_value(json_object_get(o, "status"));
        if (strcmp(st, "done") == 0 || strcmp(st, "failed") == 0)
            return o;
        v = json_integer_value(json_object_get(o, "version"));
        json_decref(o);
        assert_true(hs_syncq_wait(f->q, id, v, 5000) > v);
    }
    fail_msg("sync %s did not finish", id);
    return NULL;
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

/* The open selections as "job/model:status" lines, in the store's order. */
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

/* Mid-sync, when the second artifact is asked for: what GET /api/syncs/{id} shows then. */
struct snap_ctx {
    struct fixture *f;
    char id[40];
};

static void snapshot_hook(void *ctx, struct fake_transport *ft, const struct fake_request *r)
{
    struct snap_ctx *sc = ctx;
    (void)ft;
    if (strstr(r->url, "measurements.json") && !sc->f->snapshot)
        sc->f->snapshot = get(sc->f, sc->id);
}

/* ---- cases ---- */

static void test_submit_stores_selection_then_syncs_with_progress(void **state)
{
    struct fixture *f = *state;
    start(f);
    gate_close(&f->p, 1);
    script(f, 200, JOB_501, "application/json");
    script(f, 200, PDF, "application/pdf");
    script(f, 200, SUMMARY, "application/json");

    const int64_t now[] = {601}, later[] = {602};
    char id[40];
    submit(f, 501, now, 1, later, 1, id);
    /* Durable before the id came back: both selections, as asked. */
    char *sel = open_selections(f);
    assert_string_equal(sel, "501/601:selected 501/602:pending ");
    free(sel);
    json_t *o = get(f, id);
    assert_string_equal(str(o, "id"), id);
    assert_int_equal(num(o, "job_id"), 501);
    assert_true(strcmp(str(o, "status"), "queued") == 0 ||
                strcmp(str(o, "status"), "running") == 0);
    assert_true(json_is_null(json_object_get(o, "result")));
    assert_int_equal(json_array_size(json_object_get(o, "models")), 2);
    assert_int_equal(num(model_at(o, 0), "id"), 601);
    assert_false(json_boolean_value(json_object_get(model_at(o, 0), "when_ready")));
    assert_true(json_boolean_value(json_object_get(model_at(o, 1), "when_ready")));
    int64_t v0 = num(o, "version");
    json_decref(o);

    struct snap_ctx sc = {.f = f};
    hs_strlcpy(sc.id, id, sizeof sc.id);
    f->p.ft.on_request = snapshot_hook;
    f->p.ft.on_request_ctx = &sc;
    gate_open(&f->p);
    o = wait_finished(f, id);

    /* Mid-way: running, the first artifact of two stored. */
    assert_non_null(f->snapshot);
    assert_string_equal(str(f->snapshot, "status"), "running");
    assert_true(num(f->snapshot, "version") > v0);
    json_t *m = model_at(f->snapshot, 0);
    assert_string_equal(str(m, "name"), "House");
    assert_int_equal(num(m, "artifacts_done"), 1);
    assert_int_equal(num(m, "artifacts_total"), 2);
    assert_true(json_is_null(json_object_get(m, "result")));

    /* The end: 601 synced with its links, 602 pending until Hover completes it. */
    assert_string_equal(str(o, "status"), "done");
    assert_string_equal(str(o, "result"), "partial");
    m = model_at(o, 0);
    assert_string_equal(str(m, "result"), "synced");
    assert_int_equal(num(m, "artifacts_done"), 2);
    assert_int_equal(num(m, "artifacts_total"), 2);
    char pdf[80], summary[80];
    sha_link(PDF, pdf);
    sha_link(SUMMARY, summary);
    assert_string_equal(str(json_object_get(m, "records"), "pdf"), pdf);
    assert_string_equal(str(json_object_get(m, "records"), "measurements_json"), summary);
    json_t *rec = json_object_get(o, "records");
    assert_string_equal(str(rec, "pdf"), pdf);
    assert_string_equal(str(rec, "measurements_json"), summary);
    assert_string_equal(str(json_object_get(json_object_get(rec, "by_model"), "601"), "pdf"), pdf);
    m = model_at(o, 1);
    assert_string_equal(str(m, "name"), "Detached Garage");
    assert_string_equal(str(m, "result"), "pending");
    assert_non_null(strstr(str(m, "message"), "processing"));
    json_decref(o);

    /* What went to Hover: Show Job and the two files, nothing for the processing model. */
    assert_int_equal(f->p.ft.n_reqs, 3);
    assert_non_null(strstr(f->p.ft.reqs[0].url, "/api/v3/jobs/501"));
    assert_string_equal(f->p.last_key, "org-1");
    sel = open_selections(f);
    assert_string_equal(sel, "501/602:pending ");
    free(sel);
    struct hs_syncq_stats st;
    hs_syncq_get_stats(f->q, &st);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.running, 0);
    assert_int_equal(st.done, 1);
    assert_int_equal(st.failed, 0);

    /* A day later the garage is done: the pending pass syncs it, and the sync shows it. */
    f->p.ft.on_request = NULL;
    script(f, 200, JOB_501_DONE, "application/json");
    script(f, 200, PDF_602, "application/pdf");
    o = get(f, id);
    int64_t v1 = num(o, "version");
    json_decref(o);
    size_t n = 0;
    struct hs_error err = {0};
    assert_int_equal(hs_syncq_run_pending(f->q, &n, &err), HS_OK);
    assert_int_equal(n, 1);
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
    hs_syncq_get_stats(f->q, &st);
    assert_int_equal(st.pending_runs, 1);
}

static void test_failures_are_reported_and_selections_kept(void **state)
{
    struct fixture *f = *state;
    start(f);
    /* The org's grant was revoked. */
    f->p.fail = HS_ERR_INVALID_GRANT;
    const int64_t now[] = {601};
    char id[40];
    submit(f, 501, now, 1, NULL, 0, id);
    json_t *o = wait_finished(f, id);
    assert_string_equal(str(o, "status"), "failed");
    assert_string_equal(str(o, "result"), "failed");
    assert_string_equal(str(json_object_get(o, "error"), "code"), "reconnect_required");
    assert_true(json_is_null(json_object_get(model_at(o, 0), "result")));
    assert_non_null(str(model_at(o, 0), "message"));
    json_decref(o);
    char *sel = open_selections(f);
    assert_string_equal(sel, "501/601:selected "); /* retried by a later pending pass */
    free(sel);

    /* A model that is not on the job. */
    f->p.fail = 0;
    script(f, 200, JOB_777, "application/json");
    const int64_t wrong[] = {9999};
    char id2[40];
    submit(f, 777, wrong, 1, NULL, 0, id2);
    assert_string_not_equal(id, id2);
    o = wait_finished(f, id2);
    assert_string_equal(str(o, "status"), "failed");
    assert_string_equal(str(json_object_get(o, "error"), "code"), "bad_request");
    assert_non_null(strstr(str(json_object_get(o, "error"), "message"), "9999"));
    json_decref(o);
    struct hs_syncq_stats st;
    hs_syncq_get_stats(f->q, &st);
    assert_int_equal(st.failed, 2);

    /* Bad submissions store nothing. */
    struct hs_error err = {0};
    char id3[40];
    const int64_t zero[] = {0};
    assert_int_equal(hs_syncq_submit(f->q, "org-1", 0, now, 1, NULL, 0, id3, &err), HS_ERR_INVALID);
    assert_int_equal(hs_syncq_submit(f->q, "org-1", 5, NULL, 0, NULL, 0, id3, &err),
                     HS_ERR_INVALID);
    assert_int_equal(hs_syncq_submit(f->q, "org-1", 5, now, 1, zero, 1, id3, &err), HS_ERR_INVALID);
    sel = open_selections(f);
    assert_string_equal(sel, "501/601:selected 777/9999:selected ");
    free(sel);
}

static void test_finished_syncs_expire_and_wait_times_out(void **state)
{
    struct fixture *f = *state;
    start(f);
    script(f, 200, JOB_777, "application/json");
    const int64_t now[] = {7771};
    char id[40];
    submit(f, 777, now, 1, NULL, 0, id);
    json_t *o = wait_finished(f, id);
    assert_string_equal(str(o, "result"), "synced");
    int64_t v = num(o, "version");
    json_decref(o);
    /* Nothing changes any more: the wait gives up after its timeout, with the same version. */
    assert_int_equal(hs_syncq_wait(f->q, id, v, 20), v);
    assert_true(hs_syncq_wait(f->q, id, v - 1, 20) >= v); /* already past: at once */

    hs_fake_clock_advance(&f->qclock, 60000);
    o = get(f, id); /* exactly keep_done_ms: still readable */
    json_decref(o);
    hs_fake_clock_advance(&f->qclock, 1);
    struct hs_error err = {0};
    assert_int_equal(hs_syncq_get(f->q, id, &o, NULL, &err), HS_ERR_NOT_FOUND);
    assert_int_equal(hs_syncq_wait(f->q, id, 0, 20), HS_ERR_NOT_FOUND);
    assert_int_equal(hs_syncq_get(f->q, "no-such-sync", &o, NULL, &err), HS_ERR_NOT_FOUND);
}

/* A sync from the modal that stored something queues one CRM notification (notify/outbox.h);
 * the same sync again, with nothing new, none. */
static void test_sync_that_changed_something_notifies_the_crm(void **state)
{
    struct fixture *f = *state;
    const char *eps[] = {"http://crm.test/hook"};
    struct hs_outbox_config oc = {.endpoints = eps, .n_endpoints = 1, .secret = "s"};
    struct hs_outbox *o = NULL;
    struct hs_error err = {0};
    assert_int_equal(hs_outbox_new(&oc, f->store, NULL, &f->p.ft.base, &o, &err), 0);
    f->cfg.outbox = o;
    start(f);
    script(f, 200, JOB_501, "application/json");
    script(f, 200, PDF, "application/pdf");
    script(f, 200, SUMMARY, "application/json");
    const int64_t now[] = {601};
    char id[40];
    submit(f, 501, now, 1, NULL, 0, id);
    json_decref(wait_finished(f, id));
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
    json_decref(wait_finished(f, id));
    assert_int_equal(f->store->outbox->outbox_depth(f->store, &n, NULL), 0);
    assert_int_equal(n, 1);
    hs_syncq_free(f->q);
    f->q = NULL;
    hs_outbox_free(o);
}

struct pending_arg {
    struct fixture *f;
    int rc;
    size_t n;
};

static void *pending_main(void *arg)
{
    struct pending_arg *a = arg;
    a->rc = hs_syncq_run_pending(a->f->q, &a->n, NULL);
    return NULL;
}

/* One pass at a time, and a pass leaves the jobs the queue is syncing to the queue. */
static void test_pending_pass_is_exclusive_and_skips_busy_jobs(void **state)
{
    struct fixture *f = *state;
    start(f);
    /* Job 777 has an open selection from an earlier run (another process, a restart). */
    struct hs_selection s777 = {.job_id = 777,
                                .model_id = 7771,
                                .status = HS_SEL_PENDING,
                                .connection_key = (char *)"org-1"};
    assert_int_equal(f->store->records->selection_put(f->store, &s777, NULL), HS_OK);

    /* A sync of job 501 holds the first acquire at the gate: the queue is busy with 501. */
    gate_close(&f->p, 1);
    const int64_t now[] = {601};
    char id[40];
    submit(f, 501, now, 1, NULL, 0, id);
    /* Wait until the worker took it (running), so that its acquire is the gated one. */
    for (;;) {
        json_t *o = get(f, id);
        bool running = strcmp(str(o, "status"), "running") == 0;
        int64_t v = num(o, "version");
        json_decref(o);
        if (running)
            break;
        hs_syncq_wait(f->q, id, v, 5000);
    }
    for (;;) { /* and is at the gate */
        pthread_mutex_lock(&f->p.mu);
        int n = f->p.acquires;
        pthread_mutex_unlock(&f->p.mu);
        if (n >= 1)
            break;
        sched_yield();
    }

    /* A pass: 777 only (501 is the queue's); it holds the client while it runs. */
    script(f, 200, JOB_777, "application/json");
    gate_close(&f->p, 2); /* ...and the pass's own acquire waits too, for now */
    struct pending_arg pa = {.f = f};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, pending_main, &pa), 0);
    for (;;) {
        pthread_mutex_lock(&f->p.mu);
        int n = f->p.acquires;
        pthread_mutex_unlock(&f->p.mu);
        if (n >= 2)
            break;
        sched_yield();
    }
    struct hs_error err = {0};
    assert_int_equal(hs_syncq_run_pending(f->q, NULL, &err), HS_ERR_BUSY);

    /* Let the pass through alone first (gate: only acquire 1, the worker's, waits). */
    pthread_mutex_lock(&f->p.mu);
    f->p.gated = 1;
    pthread_cond_broadcast(&f->p.cv);
    pthread_mutex_unlock(&f->p.mu);
    pthread_join(th, NULL);
    assert_int_equal(pa.rc, HS_OK);
    assert_int_equal(pa.n, 1);
    assert_int_equal(f->p.ft.n_reqs, 1);
    assert_non_null(strstr(f->p.ft.reqs[0].url, "/api/v3/jobs/777"));
    char *sel = open_selections(f);
    assert_string_equal(sel, "501/601:selected "); /* 777 synced; 501 untouched by the pass */
    free(sel);

    script(f, 200, JOB_501, "application/json");
    script(f, 200, PDF, "application/pdf");
    script(f, 200, SUMMARY, "application/json");
    gate_open(&f->p);
    json_t *o = wait_finished(f, id);
    assert_string_equal(str(o, "result"), "synced");
    json_decref(o);
    assert_int_equal(f->p.ft.n_reqs, 4);
}

struct free_arg {
    struct fixture *f;
};

static void *free_main(void *arg)
{
    struct free_arg *a = arg;
    hs_syncq_free(a->f->q);
    return NULL;
}

/* Stopping: the running sync finishes, queued ones stay as selections for the next start. */
static void test_free_leaves_queued_syncs_as_selections(void **state)
{
    struct fixture *f = *state;
    start(f);
    gate_close(&f->p, 1);
    const int64_t m501[] = {601}, m777[] = {7771};
    char id1[40], id2[40];
    submit(f, 501, m501, 1, NULL, 0, id1); /* the worker takes it, and waits at the gate */
    submit(f, 777, m777, 1, NULL, 0, id2); /* queued behind it */
    for (;;) { /* the worker has taken the first (it is running, at the gate) */
        json_t *o = get(f, id1);
        bool running = strcmp(str(o, "status"), "running") == 0;
        int64_t v = num(o, "version");
        json_decref(o);
        if (running)
            break;
        hs_syncq_wait(f->q, id1, v, 5000);
    }

    struct free_arg fa = {f};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, free_main, &fa), 0);
    /* Once the queue is stopping, a submission is refused (its selection is stored all the
     * same: nothing the user asked for is lost). */
    const int64_t m999[] = {9991};
    struct hs_error err = {0};
    char id3[40];
    int rc;
    while ((rc = hs_syncq_submit(f->q, "org-1", 999, m999, 1, NULL, 0, id3, &err)) == HS_OK)
        sched_yield();
    assert_int_equal(rc, HS_ERR_BUSY);

    script(f, 404, "{\"error\":\"not found\"}", "application/json"); /* job 501 is gone */
    gate_open(&f->p);
    pthread_join(th, NULL);
    f->q = NULL;
    assert_int_equal(f->p.ft.n_reqs, 1); /* 501's Show Job only: 777 never ran */
    char *sel = open_selections(f);
    assert_non_null(strstr(sel, "501/601:selected"));
    assert_non_null(strstr(sel, "777/7771:selected"));
    assert_non_null(strstr(sel, "999/9991:selected"));
    free(sel);
}

static void test_timer_runs_pending_passes(void **state)
{
    struct fixture *f = *state;
    f->cfg.pending_interval_ms = 20;
    struct hs_selection s777 = {.job_id = 777,
                                .model_id = 7771,
                                .status = HS_SEL_PENDING,
                                .connection_key = (char *)"org-1"};
    assert_int_equal(f->store->records->selection_put(f->store, &s777, NULL), HS_OK);
    script(f, 200, JOB_777, "application/json");
    start(f);
    /* Real time here (the timer's only clock): up to 5 s, normally ~20 ms. */
    struct hs_syncq_stats st = {0};
    for (int i = 0; i < 1000 && st.pending_runs < 2; i++) {
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
        hs_syncq_get_stats(f->q, &st);
    }
    assert_true(st.pending_runs >= 2);
    char *sel = open_selections(f);
    assert_string_equal(sel, "");
    free(sel);
    assert_int_equal(f->p.ft.n_reqs, 1); /* the second pass had nothing to do: no request */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_submit_stores_selection_then_syncs_with_progress,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_failures_are_reported_and_selections_kept, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_finished_syncs_expire_and_wait_times_out, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pending_pass_is_exclusive_and_skips_busy_jobs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_free_leaves_queued_syncs_as_selections, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_timer_runs_pending_passes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_that_changed_something_notifies_the_crm, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("syncq", tests, NULL, NULL);
}
