/* test_receiver.c: the webhook receiver (src/webhook/receiver.h) on a real SQLite file with a
 * fake clock: every refusal leaves the store untouched (rows are counted), a valid job event
 * lands as an event row and a work item together, and the verification race completes whichever
 * side comes first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "store/store.h"
#include "webhook/receiver.h"
#include "webhook/signature.h"

#define SECRET     "c2VjcmV0LW9mLXRoZS13ZWJob29r"
#define WEBHOOK_ID 230293
#define URI        "/webhooks/hover"
#define NOW_MS     1795773894000LL
#define JOB_BODY                                                                                   \
    "{\"event\":\"job-state-changed-v2\",\"webhook_id\":230293,\"job_id\":15100021,"               \
    "\"job_external_identifier\":null,\"state\":\"completed\",\"content-available\":1,"            \
    "\"job_estimated_hours_to_completion\":0.0}"
#define CODE_BODY                                                                                  \
    "{\"event\":\"webhook-verification-code\",\"webhook_id\":230293,"                              \
    "\"code\":\"5f0c6c36-8d1e-4d8c-9a43-0c8a5f1e2b77\"}"

struct fixture {
    char dir[64];
    char path[96];
    struct hs_store *store;
    struct hs_fake_clock clock;
    struct hs_receiver_config cfg;
    /* The fake verify endpoint. */
    int verify_calls;
    char last_code[64];
    int verify_rc;
};

/* A signed delivery: the header values live here. */
struct delivery {
    char md5[32];
    char date[40];
    char auth[128];
    struct hs_webhook_request rq;
};

static void http_date(int64_t unix_s, char out[40])
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 40, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static void sign(struct delivery *d, const char *secret, int64_t id, const char *body, size_t len,
                 int64_t date_s)
{
    memset(d, 0, sizeof *d);
    hs_webhook_content_md5(body, len, d->md5);
    http_date(date_s, d->date);
    char sig[45];
    hs_webhook_sign(secret, false, "application/json", d->md5, URI, d->date, sig);
    snprintf(d->auth, sizeof d->auth, "APIAuth-HMAC-SHA256 %lld:%s", (long long)id, sig);
    d->rq = (struct hs_webhook_request){
        .method = "POST",
        .request_uri = URI,
        .content_type = "application/json",
        .content_md5 = d->md5,
        .date = d->date,
        .authorization = d->auth,
        .body = body,
        .body_len = len,
    };
}

static int fake_verify(void *ctx, const char *connection_key, const char *code, char **verified_at,
                       struct hs_error *err)
{
    struct fixture *f = ctx;
    assert_string_equal(connection_key, "org-463605");
    f->verify_calls++;
    snprintf(f->last_code, sizeof f->last_code, "%s", code);
    if (f->verify_rc)
        return hs_fail(err, f->verify_rc, "verify: HTTP 502");
    *verified_at = hs_strdup("2026-11-27T10:39:31.000Z");
    return HS_OK;
}

static void store_webhook(struct fixture *f, const char *secret)
{
    struct hs_webhook_row w = {.id = WEBHOOK_ID,
                               .connection_key = (char *)"org-463605",
                               .url = (char *)"http://127.0.0.1:9/webhooks/hover",
                               .hmac_secret = (char *)secret};
    assert_int_equal(f->store->ops->webhook_put(f->store, &w, NULL), HS_OK);
}

static int setup(void **state)
{
    struct fixture *f = hs_calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/hs-receiver-test-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof f->path, "%s/store.db", f->dir);
    struct hs_error err = {0};
    if (hs_store_open_sqlite(f->path, &f->store, &err) != HS_OK)
        return -1;
    /* The connection exists (its token pair is stored): its job events are scheduled. */
    struct hs_token t = {.access_token = (char *)"a",
                         .refresh_token = (char *)"r",
                         .expires_at = 1,
                         .owner_id = 463605,
                         .owner_type = (char *)"orgs"};
    if (f->store->ops->token_save(f->store, "org-463605", &t, &err) != HS_OK)
        return -1;
    hs_fake_clock_init(&f->clock, NOW_MS);
    f->cfg = (struct hs_receiver_config){.store = f->store,
                                         .clock = &f->clock.clock,
                                         .delay_ms = 1000,
                                         .verify = fake_verify,
                                         .verify_ctx = f};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    hs_store_close(f->store);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

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

static int64_t events(struct fixture *f)
{
    return sql_int(f, "SELECT COUNT(*) FROM webhook_events");
}

static int64_t work_items(struct fixture *f)
{
    return sql_int(f, "SELECT COUNT(*) FROM work_items");
}

static struct hs_receiver_result handle(struct fixture *f, const struct hs_webhook_request *rq)
{
    struct hs_receiver_result res;
    hs_receiver_handle(&f->cfg, rq, &res);
    return res;
}

static void assert_refused(struct fixture *f, const struct hs_webhook_request *rq, int status)
{
    struct hs_receiver_result res = handle(f, rq);
    assert_int_equal(res.status, status);
    assert_non_null(strstr(res.body, "\"error\""));
    assert_int_equal(events(f), 0);
    assert_int_equal(work_items(f), 0);
}

/* A valid job event: the event row and the job's work item, answered 200 once stored. */
static void test_valid_job_event_is_stored_with_its_work_item(void **state)
{
    struct fixture *f = *state;
    store_webhook(f, SECRET);
    struct delivery d;
    sign(&d, SECRET, WEBHOOK_ID, JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000 - 60);
    struct hs_receiver_result res = handle(f, &d.rq);
    assert_int_equal(res.status, 200);
    assert_true(res.event_id > 0);
    assert_non_null(strstr(res.body, "\"accepted\""));
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_events WHERE status = 'accepted' "
                                "AND job_id = 15100021 AND connection_key = 'org-463605' AND "
                                "event = 'job-state-changed-v2' AND webhook_id = 230293 AND "
                                "json_extract(headers, '$.date') IS NOT NULL"),
                     1);
    /* The raw bytes, exactly as signed. */
    assert_int_equal(sql_int(f, "SELECT length(body) FROM webhook_events"), strlen(JOB_BODY));
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM work_items WHERE job_id = 15100021 AND "
                                "connection_key = 'org-463605' AND reason = 'webhook'"),
                     1);
    assert_int_equal(sql_int(f, "SELECT not_before_ms FROM work_items"), NOW_MS + 1000);

    /* Two more about the same job: still one work item, generation 3. */
    handle(f, &d.rq);
    handle(f, &d.rq);
    assert_int_equal(events(f), 3);
    assert_int_equal(work_items(f), 1);
    assert_int_equal(sql_int(f, "SELECT generation FROM work_items"), 3);
}

/* The event row and the work item commit together: when the work item cannot be written, the
 * event is not kept either, and the answer is 503 (Hover retries). */
static void test_store_failure_is_503_and_nothing_is_kept(void **state)
{
    struct fixture *f = *state;
    store_webhook(f, SECRET);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TRIGGER no_work BEFORE INSERT ON work_items BEGIN "
                                  "SELECT RAISE(ABORT, 'disk says no'); END",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    struct delivery d;
    sign(&d, SECRET, WEBHOOK_ID, JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000);
    assert_refused(f, &d.rq, 503);
}

static void test_forged_signature_is_401(void **state)
{
    struct fixture *f = *state;
    store_webhook(f, SECRET);
    struct delivery d;
    sign(&d, "another-secret", WEBHOOK_ID, JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000);
    assert_refused(f, &d.rq, 401);
    /* Signed for another request URI: refused too. */
    sign(&d, SECRET, WEBHOOK_ID, JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000);
    d.rq.request_uri = "/webhooks/hover?x=1";
    assert_refused(f, &d.rq, 401);
}

static void test_stale_or_future_date_is_401(void **state)
{
    struct fixture *f = *state;
    store_webhook(f, SECRET);
    struct delivery d;
    sign(&d, SECRET, WEBHOOK_ID, JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000 - 16 * 60);
    assert_refused(f, &d.rq, 401);
    sign(&d, SECRET, WEBHOOK_ID, JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000 + 16 * 60);
    assert_refused(f, &d.rq, 401);
    /* Within the 15 minutes: fine. */
    sign(&d, SECRET, WEBHOOK_ID, JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000 - 14 * 60);
    assert_int_equal(handle(f, &d.rq).status, 200);
}

static void test_body_modified_after_signing_is_401(void **state)
{
    struct fixture *f = *state;
    store_webhook(f, SECRET);
    char body[] = JOB_BODY;
    struct delivery d;
    sign(&d, SECRET, WEBHOOK_ID, body, strlen(body), NOW_MS / 1000);
    char *p = strstr(body, "15100021");
    p[7] = '2'; /* another job */
    assert_refused(f, &d.rq, 401);
    /* ... also with a Content-MD5 recomputed for the new body (the HMAC covers it). */
    hs_webhook_content_md5(body, strlen(body), d.md5);
    assert_refused(f, &d.rq, 401);
}

static void test_unsigned_and_malformed_headers(void **state)
{
    struct fixture *f = *state;
    store_webhook(f, SECRET);
    struct delivery d;
    sign(&d, SECRET, WEBHOOK_ID, JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000);
    struct hs_webhook_request rq = d.rq;
    rq.authorization = NULL;
    assert_refused(f, &rq, 401);
    rq.authorization = "";
    assert_refused(f, &rq, 401);
    rq = d.rq;
    rq.content_md5 = NULL;
    assert_refused(f, &rq, 401);
    rq = d.rq;
    rq.date = NULL;
    assert_refused(f, &rq, 401);
    /* Present but malformed: 400. */
    rq = d.rq;
    rq.authorization = "Bearer abc";
    assert_refused(f, &rq, 400);
    rq.authorization = "APIAuth-HMAC-SHA256 notanumber:sig";
    assert_refused(f, &rq, 400);
    rq = d.rq;
    rq.date = "yesterday at noon";
    assert_refused(f, &rq, 400);
    rq = d.rq;
    rq.method = "GET";
    assert_int_equal(handle(f, &rq).status, 405);
    assert_int_equal(events(f), 0);
}

static void test_oversize_body_is_413(void **state)
{
    struct fixture *f = *state;
    store_webhook(f, SECRET);
    size_t n = HS_WEBHOOK_MAX_BODY + 1;
    char *big = hs_malloc(n);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    struct delivery d;
    sign(&d, SECRET, WEBHOOK_ID, big, n, NOW_MS / 1000);
    assert_refused(f, &d.rq, 413);
    sign(&d, SECRET, WEBHOOK_ID, big, 10, NOW_MS / 1000);
    d.rq.body_too_big = true; /* the HTTP layer stopped reading */
    assert_refused(f, &d.rq, 413);
    free(big);
}

static void test_malformed_json_is_400(void **state)
{
    struct fixture *f = *state;
    store_webhook(f, SECRET);
    static const char *const bad[] = {"{\"event\":", "[1,2,3]", "", "\"job\"", "{\"a\":1}x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct delivery d;
        sign(&d, SECRET, WEBHOOK_ID, bad[i], strlen(bad[i]), NOW_MS / 1000);
        assert_refused(f, &d.rq, 400);
    }
}

/* Unknown event types are stored and acknowledged, never failed; nothing is scheduled. */
static void test_unknown_event_is_stored_as_ignored(void **state)
{
    struct fixture *f = *state;
    store_webhook(f, SECRET);
    static const char body[] = "{\"event\":\"capture-request-state-changed\",\"webhook_id\":"
                               "230293,\"capture_request_id\":77,\"job_id\":15100021}";
    struct delivery d;
    sign(&d, SECRET, WEBHOOK_ID, body, strlen(body), NOW_MS / 1000);
    struct hs_receiver_result res = handle(f, &d.rq);
    assert_int_equal(res.status, 200);
    assert_non_null(strstr(res.body, "\"ignored\""));
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_events WHERE status = 'ignored' AND "
                                "event = 'capture-request-state-changed'"),
                     1);
    /* No event name at all: ignored too. */
    sign(&d, SECRET, WEBHOOK_ID, "{}", 2, NOW_MS / 1000);
    assert_int_equal(handle(f, &d.rq).status, 200);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_events WHERE status = 'ignored'"), 2);
    assert_int_equal(work_items(f), 0);
}

/* The code arrives before the registration's answer (with the secret) is stored: kept as
 * "unverified" (202); once the row is stored, the kept delivery is checked with the secret and
 * its code sent to Hover. */
static void test_verification_before_registration_completes(void **state)
{
    struct fixture *f = *state;
    struct delivery d;
    sign(&d, SECRET, WEBHOOK_ID, CODE_BODY, strlen(CODE_BODY), NOW_MS / 1000);
    struct hs_receiver_result res = handle(f, &d.rq);
    assert_int_equal(res.status, 202);
    assert_int_equal(f->verify_calls, 0);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_events WHERE status = 'unverified' "
                                "AND webhook_id = 230293 AND connection_key IS NULL"),
                     1);
    /* A forged code for the same webhook id is kept too (it cannot be told apart yet)... */
    struct delivery forged;
    sign(&forged, "not-the-secret", WEBHOOK_ID, CODE_BODY, strlen(CODE_BODY), NOW_MS / 1000);
    assert_int_equal(handle(f, &forged.rq).status, 202);

    /* The registration stores the row, minutes later (the kept Date still counts as of when it
     * was received). */
    hs_fake_clock_advance(&f->clock, 20 * 60 * 1000);
    store_webhook(f, SECRET);
    bool verified = false;
    struct hs_error err = {0};
    assert_int_equal(hs_receiver_complete_unverified(&f->cfg, WEBHOOK_ID, &verified, &err), HS_OK);
    assert_true(verified);
    assert_int_equal(f->verify_calls, 1);
    assert_string_equal(f->last_code, "5f0c6c36-8d1e-4d8c-9a43-0c8a5f1e2b77");
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhooks WHERE verified_at = "
                                "'2026-11-27T10:39:31.000Z' AND hmac_secret IS NOT NULL"),
                     1);
    /* ... and ends rejected, the genuine one processed. */
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_events WHERE status = 'processed'"),
                     1);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_events WHERE status = 'rejected'"),
                     1);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_events WHERE status = "
                                "'unverified'"),
                     0);
}

/* The other order: the row is stored first, the code is verified at once by the receiver. */
static void test_verification_of_a_known_webhook(void **state)
{
    struct fixture *f = *state;
    store_webhook(f, SECRET);
    struct delivery d;
    sign(&d, SECRET, WEBHOOK_ID, CODE_BODY, strlen(CODE_BODY), NOW_MS / 1000);
    f->verify_rc = HS_ERR_SERVER;
    assert_int_equal(handle(f, &d.rq).status, 503); /* Hover retries the delivery */
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhooks WHERE verified_at IS NULL"), 1);
    f->verify_rc = 0;
    struct hs_receiver_result res = handle(f, &d.rq);
    assert_int_equal(res.status, 200);
    assert_non_null(strstr(res.body, "\"verified\""));
    assert_int_equal(f->verify_calls, 2);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhooks WHERE verified_at IS NOT NULL"), 1);
    assert_int_equal(work_items(f), 0);
}

/* From an unknown webhook, nothing but a well-formed verification code is kept. */
static void test_unknown_webhook_is_401_except_its_code(void **state)
{
    struct fixture *f = *state;
    struct delivery d;
    sign(&d, SECRET, WEBHOOK_ID, JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000);
    assert_refused(f, &d.rq, 401);
    /* A code whose body does not match its Content-MD5, or stale: refused. */
    char body[] = CODE_BODY;
    sign(&d, SECRET, WEBHOOK_ID, body, strlen(body), NOW_MS / 1000);
    body[strlen(body) - 3] = 'x';
    assert_refused(f, &d.rq, 401);
    sign(&d, SECRET, WEBHOOK_ID, CODE_BODY, strlen(CODE_BODY), NOW_MS / 1000 - 3600);
    assert_refused(f, &d.rq, 401);
    /* A code naming another webhook than the header: refused. */
    static const char other[] =
        "{\"event\":\"webhook-verification-code\",\"webhook_id\":1,\"code\":\"abc\"}";
    sign(&d, SECRET, WEBHOOK_ID, other, strlen(other), NOW_MS / 1000);
    assert_refused(f, &d.rq, 401);
    /* At most HS_WEBHOOK_MAX_UNVERIFIED kept per webhook id. */
    sign(&d, SECRET, WEBHOOK_ID, CODE_BODY, strlen(CODE_BODY), NOW_MS / 1000);
    for (int i = 0; i < HS_WEBHOOK_MAX_UNVERIFIED; i++)
        assert_int_equal(handle(f, &d.rq).status, 202);
    assert_int_equal(handle(f, &d.rq).status, 401);
    assert_int_equal(events(f), HS_WEBHOOK_MAX_UNVERIFIED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_valid_job_event_is_stored_with_its_work_item, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_failure_is_503_and_nothing_is_kept, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_forged_signature_is_401, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_or_future_date_is_401, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_modified_after_signing_is_401, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsigned_and_malformed_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversize_body_is_413, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_json_is_400, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_event_is_stored_as_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verification_before_registration_completes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_verification_of_a_known_webhook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_webhook_is_401_except_its_code, setup,
                                        teardown),
    };
    hs_log_set_level(HS_LOG_ERROR); /* the refusals' warn lines are expected here */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
