/* test_events.c: the event worker (src/worker/events.c). The policy decision (hs_events_plan)
 * on its own, then whole passes against a real SQLite store and data directory, with one
 * hs_client on the scripted fake transport of tests/hover (Show Job and artifact answers, every
 * request recorded): events coalesce into one Show Job, what is complete syncs, the events end
 * processed and the item done, failures retry with backoff, the policies, open selections, and
 * the CRM notification queued. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <poll.h>
#include <sqlite3.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/mem.h"
#include "fake_transport.h"
#include "hover/client.h"
#include "store/policies.h"
#include "store/records.h"
#include "store/store.h"
#include "worker/bulk.h"
#include "store/tokens.h"
#include "store/webhooks.h"
#include "store/work.h"
#include "worker/events.h"

#define NOW_S 1742200000LL
#define BASE  "https://hover.test"

static const char PDF[] = "%PDF-1.4 fake measurements of model 601\n%%EOF\n";
static const char SUMMARY[] = "{\"roof\":{\"area\":{\"total\":2450.3},\"facets\":{\"total\":12}}}";

/* Job 501: model 601 complete (a PDF and the summarized JSON), 602 still processing. */
#define JOB_501(EXT)                                                                               \
    "{\"id\":501,\"name\":\"Main House\",\"reconstruction_state\":\"processing\","                 \
    "\"external_identifier\":" EXT ",\"updated_at\":\"2025-03-17T01:00:00.000Z\","                 \
    "\"models\":[{\"id\":601,\"name\":\"House\",\"state\":\"complete\",\"updated_at\":"            \
    "\"2025-03-17T01:00:00.000Z\",\"artifacts\":{\"measurements\":{\"pdf\":\"" BASE                \
    "/api/v3/models/601/artifacts/measurements.pdf\",\"json\":\"" BASE                             \
    "/api/v3/models/601/artifacts/measurements.json?version=summarized_json\"}}},"                 \
    "{\"id\":602,\"name\":\"Detached Garage\",\"state\":\"processing\",\"updated_at\":"            \
    "\"2025-03-17T01:00:00.000Z\",\"artifacts\":null}]}"

static void test_backoff(void **state)
{
    (void)state;
    assert_int_equal(hs_events_backoff_ms(5000, 600000, 0), 5000);
    assert_int_equal(hs_events_backoff_ms(5000, 600000, 3), 40000);
    assert_int_equal(hs_events_backoff_ms(5000, 600000, 40), 600000);
}

/* ---- passes ---- */

struct provider {
    struct fake_transport ft;
    struct hs_fake_clock fc;
    struct hs_client *client;
    int acquires;
    int fail; /* an hs_err acquire answers with, 0: none */
};

static int p_acquire(void *ctx, const char *key, struct hs_client **out, struct hs_error *err)
{
    struct provider *p = ctx;
    assert_string_equal(key, "org-1");
    p->acquires++;
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

struct fixture {
    char dir[128];
    char db[200];
    struct hs_store *store;
    struct provider p;
    struct hs_fake_clock wclock; /* the worker's: leases and retry times */
    struct hs_events *w;
    struct hs_outbox *outbox;
};

static int setup(void **state)
{
    struct fixture *f = hs_calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/hs-events-test-XXXXXX");
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
    fake_transport_init(&f->p.ft);
    hs_fake_clock_init(&f->p.fc, NOW_S * 1000);
    struct hs_client_config cc = {.base_url = BASE,
                                  .client_id = "cid",
                                  .client_secret = "secret",
                                  .credential_key = "org-1",
                                  .max_attempts = 1};
    if (hs_client_new(&cc, hs_store_tokens(f->store), &f->p.fc.clock, &f->p.ft.base, &f->p.client,
                      &err))
        return -1;
    hs_fake_clock_init(&f->wclock, NOW_S * 1000);
    const char *eps[] = {"http://crm.test/hook"};
    struct hs_outbox_config oc = {.endpoints = eps, .n_endpoints = 1, .secret = "s"};
    if (hs_outbox_new(&oc, f->store, &f->wclock.clock, &f->p.ft.base, &f->outbox, &err))
        return -1;
    struct hs_events_config ec = {.data_dir = f->dir};
    struct hs_client_provider cp = {p_acquire, p_release, &f->p};
    if (hs_events_new(&ec, f->store, cp, f->outbox, &f->wclock.clock, &f->w, &err))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    hs_events_free(f->w);
    hs_outbox_free(f->outbox);
    hs_client_free(f->p.client);
    fake_transport_cleanup(&f->p.ft);
    hs_store_close(f->store);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

static int64_t accept_event(struct fixture *f, const char *event, int64_t job_id)
{
    char body[200];
    snprintf(body, sizeof body, "{\"event\":\"%s\",\"job_id\":%lld}", event, (long long)job_id);
    struct hs_event_row e = {.webhook_id = 230293,
                             .connection_key = (char *)"org-1",
                             .event = (char *)event,
                             .job_id = job_id,
                             .body = body,
                             .body_len = strlen(body),
                             .status = (char *)"accepted"};
    int64_t id = 0;
    struct hs_error err = {0};
    assert_int_equal(f->store->webhooks->event_accept(f->store, &e, true, 0,
                                                      f->wclock.clock.wall_ms(&f->wclock.clock),
                                                      &id, &err),
                     0);
    return id;
}

/* SELECT of one integer, as a CRM developer would read the file. */
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

static void script_job(struct fixture *f, const char *json)
{
    fake_transport_push(
        &f->p.ft,
        (struct fake_response){.status = 200, .body = json, .content_type = "application/json"});
}

static void script_artifacts(struct fixture *f)
{
    fake_transport_push(&f->p.ft, (struct fake_response){.status = 200,
                                                         .body = PDF,
                                                         .content_type = "application/pdf",
                                                         .etag = "\"p1\""});
    fake_transport_push(&f->p.ft, (struct fake_response){.status = 200,
                                                         .body = SUMMARY,
                                                         .content_type = "application/json",
                                                         .etag = "\"j1\""});
}

static void run_one(struct fixture *f, bool want_ran)
{
    bool ran = !want_ran;
    struct hs_error err = {0};
    assert_int_equal(hs_events_run_once(f->w, "test:1:0", &ran, &err), 0);
    assert_int_equal(ran, want_ran);
}

/* Three events about job 501: one item, one Show Job, the complete model synced (trigger
 * "webhook"), the events processed, the item gone, one CRM notification queued. */
static void test_events_coalesce_and_sync(void **state)
{
    struct fixture *f = *state;
    accept_event(f, "model-state-changed", 501);
    accept_event(f, "job-state-changed-v2", 501);
    int64_t last = accept_event(f, "model-state-changed", 501);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM work_items"), 1);
    script_job(f, JOB_501("null"));
    script_artifacts(f);
    run_one(f, true);
    assert_int_equal(f->p.ft.n_reqs, 3); /* Show Job + PDF + JSON */
    assert_non_null(strstr(f->p.ft.reqs[0].url, "/api/v3/jobs/501"));
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM artifacts a JOIN models m ON "
                                "m.id = a.model_id WHERE m.job_id = 501"),
                     2);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM sync_runs WHERE trigger = 'webhook'"), 1);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM selections WHERE model_id = 601 AND "
                                "status = 'synced'"),
                     1);
    /* 602 is processing: not selected, so no pending selection is left behind. */
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM selections WHERE model_id = 602"), 0);
    char q[200];
    snprintf(q, sizeof q,
             "SELECT COUNT(*) FROM webhook_events WHERE status = 'processed' AND id <= %lld",
             (long long)last);
    assert_int_equal(sql_int(f, q), 3);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM work_items"), 0);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM outbox WHERE job_id = 501"), 1);
    /* Nothing due any more. */
    run_one(f, false);

    /* The same event again (a duplicate delivery): one Show Job, nothing to sync, no run, no
     * second notification. */
    accept_event(f, "job-state-changed-v2", 501);
    script_job(f, JOB_501("null"));
    run_one(f, true);
    assert_int_equal(f->p.ft.n_reqs, 4);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM sync_runs"), 1);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM outbox"), 1);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_events WHERE status = 'accepted'"),
                     0);
    struct hs_events_stats st;
    hs_events_get_stats(f->w, &st);
    assert_int_equal(st.claimed, 2);
    assert_int_equal(st.synced, 1);
    assert_int_equal(st.unchanged, 1);
}

/* Hover fails: the item stays, released for 5 s later with one attempt, its events accepted;
 * the next pass after that succeeds. */
static void test_failure_retries_with_backoff(void **state)
{
    struct fixture *f = *state;
    accept_event(f, "job-state-changed-v2", 501);
    fake_transport_push(&f->p.ft, (struct fake_response){.status = 503, .body = "{}"});
    run_one(f, true);
    assert_int_equal(sql_int(f, "SELECT attempts FROM work_items WHERE job_id = 501"), 1);
    assert_int_equal(sql_int(f, "SELECT not_before_ms FROM work_items WHERE job_id = 501"),
                     NOW_S * 1000 + 5000);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_events WHERE status = 'accepted'"),
                     1);
    run_one(f, false); /* not due yet */
    hs_fake_clock_advance(&f->wclock, 5000);
    script_job(f, JOB_501("null"));
    script_artifacts(f);
    run_one(f, true);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM work_items"), 0);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_events WHERE status = 'processed'"),
                     1);
}

/* Policy "none": the job is read, nothing synced, the events processed. "linked": synced only
 * once the job has an external identifier. */
static void test_policies(void **state)
{
    struct fixture *f = *state;
    struct hs_error err = {0};
    assert_int_equal(f->store->policies->policy_put(f->store, "org-1", "none", &err), 0);
    accept_event(f, "job-state-changed-v2", 501);
    script_job(f, JOB_501("\"CRM-9\""));
    run_one(f, true);
    assert_int_equal(f->p.ft.n_reqs, 1);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM sync_runs"), 0);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM work_items"), 0);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_events WHERE status = 'processed'"),
                     1);

    assert_int_equal(f->store->policies->policy_put(f->store, "org-1", "linked", &err), 0);
    accept_event(f, "job-state-changed-v2", 501);
    script_job(f, JOB_501("null"));
    run_one(f, true);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM sync_runs"), 0);
    accept_event(f, "job-state-changed-v2", 501);
    script_job(f, JOB_501("\"CRM-9\""));
    script_artifacts(f);
    run_one(f, true);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM sync_runs"), 1);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM artifacts"), 2);
}

/* Policy "none" still completes a selection the user made in the modal ("sync when ready"). */
static void test_open_selection_runs_whatever_the_policy(void **state)
{
    struct fixture *f = *state;
    struct hs_error err = {0};
    assert_int_equal(f->store->policies->policy_put(f->store, "org-1", "none", &err), 0);
    struct hs_selection sel = {.job_id = 501,
                               .model_id = 601,
                               .status = HS_SEL_PENDING,
                               .reason = (char *)"sync when ready",
                               .connection_key = (char *)"org-1"};
    assert_int_equal(f->store->records->selection_put(f->store, &sel, &err), 0);
    accept_event(f, "model-state-changed", 501);
    script_job(f, JOB_501("null"));
    script_artifacts(f);
    run_one(f, true);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM selections WHERE model_id = 601 AND "
                                "status = 'synced'"),
                     1);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM artifacts"), 2);
}

/* A job Hover no longer shows (404): nothing to sync, events answered, item done. */
/* A pass with nothing to sync still stores what the Show Job says: the garage that failed after
 * the house was synced ends "failed", and a job whose models all failed gets its row. */
static void test_nothing_to_sync_still_stores_the_job(void **state)
{
    struct fixture *f = *state;
    accept_event(f, "job-state-changed-v2", 501);
    script_job(f, JOB_501("null"));
    script_artifacts(f);
    run_one(f, true);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM models WHERE id = 602 AND "
                                "state = 'processing'"),
                     1);
    int64_t seq = sql_int(f, "SELECT value FROM counters WHERE name = 'change_seq'");

    accept_event(f, "model-state-changed", 501);
    script_job(f, "{\"id\":501,\"name\":\"Main House\",\"reconstruction_state\":\"completed\","
                  "\"updated_at\":\"2025-03-17T01:00:00.000Z\",\"models\":[{\"id\":601,\"name\":"
                  "\"House\",\"state\":\"complete\",\"updated_at\":\"2025-03-17T01:00:00.000Z\"},"
                  "{\"id\":602,\"name\":\"Detached Garage\",\"state\":\"failed\","
                  "\"updated_at\":\"2025-03-18T01:00:00.000Z\"}]}");
    run_one(f, true);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM sync_runs"), 1); /* nothing synced */
    char q[200];
    snprintf(q, sizeof q,
             "SELECT COUNT(*) FROM models WHERE id = 602 AND state = 'failed' AND change_seq > "
             "%lld",
             (long long)seq);
    assert_int_equal(sql_int(f, q), 1);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM jobs WHERE id = 501 AND "
                                "reconstruction_state = 'completed'"),
                     1);

    accept_event(f, "job-state-changed-v2", 502);
    script_job(f, "{\"id\":502,\"name\":\"Cedar Ridge\",\"reconstruction_state\":\"failed\","
                  "\"models\":[{\"id\":611,\"state\":\"failed\"},{\"id\":612,"
                  "\"state\":\"failed\"}]}");
    run_one(f, true);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM jobs WHERE id = 502 AND "
                                "reconstruction_state = 'failed'"),
                     1);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM models WHERE job_id = 502 AND "
                                "state = 'failed'"),
                     2);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM work_items"), 0);
}

static void test_job_gone(void **state)
{
    struct fixture *f = *state;
    accept_event(f, "job-state-changed-v2", 999);
    fake_transport_push(&f->p.ft,
                        (struct fake_response){.status = 404, .body = "{\"error\":\"Not found\"}"});
    run_one(f, true);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM work_items"), 0);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_events WHERE status = 'processed'"),
                     1);
}

static void note_failure(void *ctx, int64_t job_id, int64_t model_id, const char *why)
{
    char *seen = ctx;
    size_t len = strlen(seen);
    snprintf(seen + len, 200 - len, "%lld/%lld:%s ", (long long)job_id, (long long)model_id, why);
}

/* Backfill's way: listed jobs queued with their complete models selected and the job as listed
 * for payload (no Show Job), at bulk priority after a webhook's item; settled when done or failed
 * once, with the failures named. */
static void test_bulk_jobs_settle_with_their_failures(void **state)
{
    struct fixture *f = *state;
    struct hs_error err = {0};
    /* Policy none: backfill's selection syncs them all the same. */
    assert_int_equal(f->store->policies->policy_put(f->store, "org-1", "none", &err), 0);
    struct hs_bulk *b = NULL;
    assert_int_equal(hs_bulk_new(f->store, &f->wclock.clock, &b, &err), 0);
    struct hs_job *job = NULL;
    const char *j501 = JOB_501("null");
    assert_int_equal(hs_job_from_json(j501, strlen(j501), &job, NULL), 0);
    bool queued = false;
    assert_int_equal(hs_bulk_add(b, "org-1", job, &queued, &err), 0);
    assert_true(queued);
    hs_job_free(job);
    assert_int_equal(sql_int(f, "SELECT priority FROM work_items WHERE job_id = 501 AND reason = "
                                "'backfill' AND payload IS NOT NULL"),
                     HS_WORK_PRIO_BULK);
    /* A job with nothing complete is not queued. */
    const char *j502 = "{\"id\":502,\"models\":[{\"id\":621,\"state\":\"processing\"}]}";
    assert_int_equal(hs_job_from_json(j502, strlen(j502), &job, NULL), 0);
    assert_int_equal(hs_bulk_add(b, "org-1", job, &queued, &err), 0);
    assert_false(queued);
    hs_job_free(job);
    /* A webhook's item goes first. */
    accept_event(f, "job-state-changed-v2", 999);
    fake_transport_push(&f->p.ft,
                        (struct fake_response){.status = 404, .body = "{\"error\":\"Not found\"}"});
    run_one(f, true);
    bool all = true;
    struct hs_bulk_counts c;
    assert_int_equal(hs_bulk_poll(b, &all, &c, &err), 0);
    assert_false(all);
    assert_int_equal(c.jobs, 1);
    /* The backfill item: no Show Job, the JSON fails: the model is named, the item retried. */
    fake_transport_push(
        &f->p.ft,
        (struct fake_response){.status = 200, .body = PDF, .content_type = "application/pdf"});
    fake_transport_push(&f->p.ft, (struct fake_response){.status = 500, .body = "{}"});
    run_one(f, true);
    assert_int_equal(f->p.ft.n_reqs, 3); /* the 404 Show Job, the PDF, the JSON */
    assert_non_null(strstr(f->p.ft.reqs[1].url, "measurements.pdf"));
    assert_int_equal(hs_bulk_poll(b, &all, &c, &err), 0);
    assert_true(all);
    assert_int_equal(c.settled, 1);
    assert_int_equal(c.failed, 1);
    assert_int_equal(c.synced, 0);
    char seen[200] = "";
    hs_bulk_failures(b, note_failure, seen);
    assert_non_null(strstr(seen, "501/601:"));
    hs_bulk_free(b);

    /* A rerun retries it now, the backoff notwithstanding: read again (no payload), synced. */
    assert_int_equal(hs_bulk_new(f->store, &f->wclock.clock, &b, &err), 0);
    const int64_t left[] = {601};
    assert_int_equal(hs_bulk_retry(b, "org-1", 501, left, 1, &err), 0);
    /* The item still holds the earlier pass's failure: not settled before a pass ran. */
    assert_int_equal(hs_bulk_poll(b, &all, &c, &err), 0);
    assert_false(all);
    assert_int_equal(c.settled, 0);
    script_job(f, JOB_501("null"));
    script_artifacts(f);
    run_one(f, true);
    assert_int_equal(hs_bulk_poll(b, &all, &c, &err), 0);
    assert_true(all);
    assert_int_equal(c.synced, 1);
    assert_int_equal(c.failed, 0);
    hs_bulk_free(b);

    /* A pass that fails as a whole: one line for the job, its error. */
    assert_int_equal(hs_bulk_new(f->store, &f->wclock.clock, &b, &err), 0);
    assert_int_equal(hs_job_from_json(j501, strlen(j501), &job, NULL), 0);
    hs_fake_clock_advance(&f->wclock, 600000);
    assert_int_equal(hs_bulk_add(b, "org-1", job, &queued, &err), 0);
    hs_job_free(job);
    f->p.fail = HS_ERR_INVALID_GRANT;
    run_one(f, true);
    assert_int_equal(hs_bulk_poll(b, &all, &c, &err), 0);
    assert_true(all);
    seen[0] = '\0';
    hs_bulk_failures(b, note_failure, seen);
    assert_non_null(strstr(seen, "501/0:fake provider"));
    hs_bulk_free(b);
}

/* ---- the listener: another process's commit wakes the idle threads ---- */

/* A store wait that hears "another process committed work" when the test writes to `heard`. */
static int heard[2] = {-1, -1};
static int waits;

static int fake_work_wait(struct hs_store *s, int cancel_fd, int64_t timeout_ms, bool *woken,
                          struct hs_error *err)
{
    (void)s;
    (void)err;
    __atomic_add_fetch(&waits, 1, __ATOMIC_SEQ_CST);
    struct pollfd p[2] = {{.fd = heard[0], .events = POLLIN}, {.fd = cancel_fd, .events = POLLIN}};
    *woken = false;
    if (poll(p, 2, (int)timeout_ms) > 0 && (p[0].revents & POLLIN)) {
        char c;
        *woken = read(heard[0], &c, 1) == 1;
    }
    return HS_OK;
}

/* Threads idle for ten minutes (idle_ms) run an item scheduled without waking them as soon as
 * the store's wait says another process committed work (PostgreSQL's NOTIFY); stopping ends
 * the listener's wait at once. */
static void test_listener_wakes_idle_threads(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(pipe(heard), 0);
    struct hs_work_ops ops = *f->store->work;
    const struct hs_work_ops *real = f->store->work;
    ops.work_wait = fake_work_wait;
    f->store->work = &ops;
    struct hs_events_config ec = {.data_dir = f->dir, .threads = 1, .idle_ms = 600000};
    struct hs_client_provider cp = {p_acquire, p_release, &f->p};
    struct hs_events *w = NULL;
    assert_int_equal(hs_events_new(&ec, f->store, cp, NULL, &f->wclock.clock, &w, NULL), 0);
    assert_int_equal(hs_events_start(w, NULL), 0);
    /* The thread finds nothing and goes idle; the listener waits in the store. */
    while (__atomic_load_n(&waits, __ATOMIC_SEQ_CST) == 0)
        usleep(10 * 1000);
    usleep(200 * 1000);
    script_job(f, JOB_501("null"));
    script_artifacts(f);
    accept_event(f, "job-state-changed-v2", 501); /* as another process would: no wake here */
    assert_int_equal(write(heard[1], "x", 1), 1);
    struct hs_events_stats st = {0};
    for (int i = 0; i < 6000 && st.claimed == 0; i++) { /* a minute, far below ten */
        usleep(10 * 1000);
        hs_events_get_stats(w, &st);
    }
    assert_int_equal(st.claimed, 1);
    hs_events_free(w);
    f->store->work = real;
    close(heard[0]);
    close(heard[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff),
        cmocka_unit_test_setup_teardown(test_events_coalesce_and_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_retries_with_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_policies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_selection_runs_whatever_the_policy, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_job_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bulk_jobs_settle_with_their_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nothing_to_sync_still_stores_the_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listener_wakes_idle_threads, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
