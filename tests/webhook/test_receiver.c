/* test_receiver.c: the webhook receiver (src/webhook/receiver.h) and the verifier
 * (src/webhook/verifier.h) on a real SQLite file with a fake clock: every refusal leaves the
 * store untouched (rows are counted), a valid job event lands as an event row and a work item
 * together, a replay is stored once, the org is the one whose secret verified the delivery, a
 * verification code is answered without calling Hover and sent by the verifier, and the
 * verification race completes whichever side comes first. Deliveries are signed here by
 * signature.c's own functions, whose output test_signature.c checks against independent
 * vectors. */
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
#include "store/tokens.h"
#include "store/webhooks.h"
#include "webhook/receiver.h"
#include "webhook/signature.h"
#include "webhook/verifier.h"

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
    struct hs_verifier *verifier;
    /* The fake verify endpoint. */
    int verify_calls;
    char last_code[64];
    int verify_rc;
    int wakes; /* the workers woken */
};

static void count_wake(void *ctx)
{
    struct fixture *f = ctx;
    f->wakes++;
}

/* A signed delivery: the header values live here. */
struct delivery {
    char md5[32];
    char sha256[48];
    char date[40];
    char auth[256];
    struct hs_webhook_request rq;
};

/* The signers' forms (signature.h): Hover's docs (1.x), api_auth 2.4, api_auth 2.5. */
enum form { F_1X, F_24, F_25 };

static void http_date(int64_t unix_s, char out[40])
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 40, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* Signs as a signer of `form` would, for access id `id` and the signed URI `uri`. */
static void sign_as(struct delivery *d, enum form form, const char *secret, const char *id,
                    const char *body, size_t len, int64_t date_s, const char *uri)
{
    memset(d, 0, sizeof *d);
    http_date(date_s, d->date);
    bool method = form != F_1X;
    const char *digest;
    if (form == F_25) {
        hs_webhook_content_sha256(body, len, d->sha256);
        digest = d->sha256;
    } else {
        hs_webhook_content_md5(body, len, d->md5);
        digest = d->md5;
    }
    char canonical[512], sig[HS_APIAUTH_SIG_MAX + 1];
    assert_int_equal(hs_webhook_canonical(method ? "POST" : NULL, "application/json", digest, uri,
                                          d->date, canonical, sizeof canonical),
                     HS_OK);
    static const enum hs_apiauth_digest digests[] = {HS_APIAUTH_SHA256, HS_APIAUTH_SHA1,
                                                     HS_APIAUTH_SHA512};
    static const char *const prefixes[] = {"APIAuth-HMAC-SHA256", "APIAuth", "APIAuth-HMAC-SHA512"};
    hs_webhook_sign(digests[form], secret, canonical, sig);
    snprintf(d->auth, sizeof d->auth, "%s %s:%s", prefixes[form], id, sig);
    d->rq = (struct hs_webhook_request){
        .method = "POST",
        .request_uri = URI,
        .content_type = "application/json",
        .content_md5 = d->md5[0] ? d->md5 : NULL,
        .content_sha256 = d->sha256[0] ? d->sha256 : NULL,
        .date = d->date,
        .authorization = d->auth,
        .body = body,
        .body_len = len,
    };
}

/* A 2.5-style delivery to the registered URI, with the webhook id as the access id. */
static void sign(struct delivery *d, const char *secret, int64_t id, const char *body, size_t len,
                 int64_t date_s)
{
    char ids[24];
    snprintf(ids, sizeof ids, "%lld", (long long)id);
    sign_as(d, F_25, secret, ids, body, len, date_s, URI);
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

static void put_webhook(struct fixture *f, int64_t id, const char *conn, const char *url,
                        const char *secret)
{
    struct hs_webhook_row w = {.id = id,
                               .connection_key = (char *)conn,
                               .url = (char *)url,
                               .hmac_secret = (char *)secret};
    assert_int_equal(f->store->webhooks->webhook_put(f->store, &w, NULL), HS_OK);
}

static void store_webhook(struct fixture *f, const char *secret)
{
    put_webhook(f, WEBHOOK_ID, "org-463605", "http://127.0.0.1:9/webhooks/hover", secret);
}

static int setup(void **state)
{
    struct fixture *f = hs_calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/hs-receiver-test-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof f->path, "%s/store.db", f->dir);
    struct hs_error err = {0};
    if (hs_store_open(f->path, NULL, &f->store, &err) != HS_OK)
        return -1;
    /* The connection exists (its token pair is stored): its job events are scheduled. */
    struct hs_token t = {.access_token = (char *)"a",
                         .refresh_token = (char *)"r",
                         .expires_at = 1,
                         .owner_id = 463605,
                         .owner_type = (char *)"orgs"};
    if (f->store->tokens->token_save(f->store, "org-463605", &t, &err) != HS_OK)
        return -1;
    hs_fake_clock_init(&f->clock, NOW_MS);
    f->cfg = (struct hs_receiver_config){.store = f->store,
                                         .clock = &f->clock.clock,
                                         .delay_ms = 1000,
                                         .wake = count_wake,
                                         .wake_ctx = f};
    struct hs_verifier_config vc = {
        .verify = fake_verify, .verify_ctx = f, .retry_base_ms = 1000, .give_up_ms = 3600000};
    if (hs_verifier_new(&vc, f->store, &f->clock.clock, &f->verifier, &err) != HS_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    hs_verifier_free(f->verifier);
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

/* Runs the verifier until nothing is due; returns how many codes it handled. */
static int run_verifier(struct fixture *f)
{
    int n = 0;
    bool ran = true;
    while (ran) {
        struct hs_error err = {0};
        assert_int_equal(hs_verifier_run_once(f->verifier, &ran, &err), HS_OK);
        n += ran;
    }
    return n;
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
    /* Due at once: nobody runs the job's item (the 1000 ms delay is for one being run); the
     * workers are woken once it is committed. */
    assert_int_equal(sql_int(f, "SELECT not_before_ms FROM work_items"), NOW_MS);
    assert_int_equal(f->wakes, 1);

    /* Two more about the same job (signed at other times): still one work item, generation 3. */
    sign(&d, SECRET, WEBHOOK_ID, JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000 - 59);
    assert_int_equal(handle(f, &d.rq).status, 200);
    sign(&d, SECRET, WEBHOOK_ID, JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000 - 58);
    assert_int_equal(handle(f, &d.rq).status, 200);
    assert_int_equal(events(f), 3);
    assert_int_equal(work_items(f), 1);
    assert_int_equal(sql_int(f, "SELECT generation FROM work_items"), 3);
}

/* Each signer's form lands the same way. */
static void test_every_signer_form_is_accepted(void **state)
{
    struct fixture *f = *state;
    store_webhook(f, SECRET);
    for (int form = F_1X; form <= F_25; form++) {
        struct delivery d;
        sign_as(&d, (enum form)form, SECRET, "230293", JOB_BODY, strlen(JOB_BODY),
                NOW_MS / 1000 - form, URI);
        assert_int_equal(handle(f, &d.rq).status, 200);
        sign_as(&d, (enum form)form, "a-forged-secret", "230293", JOB_BODY, strlen(JOB_BODY),
                NOW_MS / 1000 - form, URI);
        assert_int_equal(handle(f, &d.rq).status, 401);
    }
    assert_int_equal(events(f), 3);
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
    /* Nothing remembered of it either: Hover's retry of the same delivery is stored. */
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_replays"), 0);
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "DROP TRIGGER no_work", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(handle(f, &d.rq).status, 200);
    assert_int_equal(events(f), 1);
}

static void test_forged_signature_is_401(void **state)
{
    struct fixture *f = *state;
    store_webhook(f, SECRET);
    struct delivery d;
    sign(&d, "another-secret", WEBHOOK_ID, JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000);
    assert_refused(f, &d.rq, 401);
    /* Signed for another request URI than the registered one: refused too. */
    sign_as(&d, F_25, SECRET, "230293", JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000,
            "/webhooks/hover?x=1");
    assert_refused(f, &d.rq, 401);
}

/* request_uri is the registered URL's path, not what a proxy passed on. */
static void test_signed_uri_is_the_registered_one(void **state)
{
    struct fixture *f = *state;
    put_webhook(f, WEBHOOK_ID, "org-463605", "https://crm.example/hs/webhooks/hover?t=1", SECRET);
    struct delivery d;
    sign_as(&d, F_25, SECRET, "230293", JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000,
            "/hs/webhooks/hover?t=1");
    d.rq.request_uri = "/webhooks/hover"; /* what the proxy made of it */
    assert_int_equal(handle(f, &d.rq).status, 200);
    /* Signed over the rewritten path: not what the sender signs. */
    sign_as(&d, F_25, SECRET, "230293", JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000,
            "/webhooks/hover");
    assert_int_equal(handle(f, &d.rq).status, 401);
    assert_int_equal(events(f), 1);
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
    for (int form = F_1X; form <= F_25; form++) {
        char body[] = JOB_BODY;
        struct delivery d;
        sign_as(&d, (enum form)form, SECRET, "230293", body, strlen(body), NOW_MS / 1000, URI);
        char *p = strstr(body, "15100021");
        p[7] = '2'; /* another job */
        assert_refused(f, &d.rq, 401);
        /* ... also with the digest recomputed for the new body (the HMAC covers it). */
        if (form == F_25)
            hs_webhook_content_sha256(body, strlen(body), d.sha256);
        else
            hs_webhook_content_md5(body, strlen(body), d.md5);
        assert_refused(f, &d.rq, 401);
    }
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
    rq.content_sha256 = NULL;
    assert_refused(f, &rq, 401);
    rq = d.rq;
    rq.date = NULL;
    assert_refused(f, &rq, 401);
    /* Present but malformed: 400. */
    rq = d.rq;
    rq.authorization = "Bearer abc";
    assert_refused(f, &rq, 400);
    rq.authorization = "APIAuth-HMAC-SHA256 230293:sig";
    assert_refused(f, &rq, 400);
    rq.authorization = "APIAuth-HMAC-SHA256 :i/aTpZjBAJidl4XqaSTPEtjqUzqfYxmexnSJUzo492w=";
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

/* A delivery sent again (same signature) within the window: 2xx, stored and acted on once,
 * also after the store is reopened (the memory is a table); once its Date is out of the
 * window it is refused as stale, and the memory of it is gone. */
static void test_replay_is_acknowledged_and_stored_once(void **state)
{
    struct fixture *f = *state;
    store_webhook(f, SECRET);
    for (int form = F_1X; form <= F_25; form++) {
        struct delivery d;
        sign_as(&d, (enum form)form, SECRET, "230293", JOB_BODY, strlen(JOB_BODY),
                NOW_MS / 1000 - form, URI);
        struct hs_receiver_result res = handle(f, &d.rq);
        assert_int_equal(res.status, 200);
        res = handle(f, &d.rq);
        assert_int_equal(res.status, 200);
        assert_non_null(strstr(res.body, "\"duplicate\""));
        assert_int_equal(res.event_id, 0);
    }
    assert_int_equal(events(f), 3);
    assert_int_equal(f->wakes, 3); /* a replay queues nothing: nobody is woken */
    assert_int_equal(sql_int(f, "SELECT generation FROM work_items"), 3);
    /* Durable: a restart does not forget. */
    struct delivery d;
    sign(&d, SECRET, WEBHOOK_ID, JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000);
    assert_int_equal(handle(f, &d.rq).status, 200);
    hs_store_close(f->store);
    assert_int_equal(hs_store_open(f->path, NULL, &f->store, NULL), HS_OK);
    f->cfg.store = f->store;
    hs_verifier_free(f->verifier);
    struct hs_verifier_config vc = {.verify = fake_verify, .verify_ctx = f};
    assert_int_equal(hs_verifier_new(&vc, f->store, &f->clock.clock, &f->verifier, NULL), HS_OK);
    assert_non_null(strstr(handle(f, &d.rq).body, "\"duplicate\""));
    assert_int_equal(events(f), 4);
    /* Past the window: stale. The expired signatures stay until the retention duty deletes
     * them (a delivery does not). */
    hs_fake_clock_advance(&f->clock, 16 * 60 * 1000);
    assert_int_equal(handle(f, &d.rq).status, 401);
    struct delivery later;
    sign(&later, SECRET, WEBHOOK_ID, JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000 + 16 * 60);
    assert_int_equal(handle(f, &later.rq).status, 200);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_replays"), 5);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_replays WHERE expires_ms > "
                                "(SELECT MIN(expires_ms) FROM webhook_replays) + 15 * 60 * 1000"),
                     1);
}

/* With the webhooks kept (a serve's receiver): a secret changed in the store verifies the next
 * delivery at once; a deleted webhook verifies no delivery, kept or not. */
static void test_kept_webhook_follows_the_store(void **state)
{
    struct fixture *f = *state;
    f->cfg.cache = hs_webhook_cache_new();
    store_webhook(f, SECRET);
    struct delivery d;
    sign(&d, SECRET, WEBHOOK_ID, JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000);
    assert_int_equal(handle(f, &d.rq).status, 200);
    sign(&d, SECRET, WEBHOOK_ID, JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000 - 1);
    assert_int_equal(handle(f, &d.rq).status, 200);
    store_webhook(f, "cm90YXRlZC1zZWNyZXQ");
    sign(&d, "cm90YXRlZC1zZWNyZXQ", WEBHOOK_ID, JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000 - 2);
    assert_int_equal(handle(f, &d.rq).status, 200);
    /* The old secret was forgotten when the new one was read. */
    sign(&d, SECRET, WEBHOOK_ID, JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000 - 3);
    assert_int_equal(handle(f, &d.rq).status, 401);
    /* Deleted (by any process): the kept copy still verifies the signature, but the event's
     * commit finds the row gone, so nothing is stored and the copy is dropped. */
    assert_int_equal(f->store->webhooks->webhook_delete(f->store, WEBHOOK_ID, NULL), HS_OK);
    sign(&d, "cm90YXRlZC1zZWNyZXQ", WEBHOOK_ID, JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000 - 4);
    assert_int_equal(handle(f, &d.rq).status, 401);
    hs_fake_clock_advance(&f->clock, HS_WEBHOOK_CACHE_TTL_MS);
    sign(&d, "cm90YXRlZC1zZWNyZXQ", WEBHOOK_ID, JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000 - 5);
    assert_int_equal(handle(f, &d.rq).status, 401);
    assert_int_equal(events(f), 3);
    hs_webhook_cache_free(f->cfg.cache);
    f->cfg.cache = NULL;
}

/* Two orgs: the org of a delivery is the one whose secret verified it, whatever the access id
 * and the body's webhook_id say; an access id that is no webhook id is tried against the
 * registered secrets and remembered. */
static void test_org_is_the_one_whose_secret_verified(void **state)
{
    struct fixture *f = *state;
    store_webhook(f, SECRET);
    put_webhook(f, 230400, "org-77", "http://127.0.0.1:9/webhooks/hover", "secret-of-org-77");
    struct hs_token t = {.access_token = (char *)"a", .refresh_token = (char *)"r"};
    assert_int_equal(f->store->tokens->token_save(f->store, "org-77", &t, NULL), HS_OK);
    /* Org 77's secret, but org 463605's webhook id as access id and in the body. */
    struct delivery d;
    sign(&d, "secret-of-org-77", WEBHOOK_ID, JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000);
    struct hs_receiver_result res = handle(f, &d.rq);
    assert_int_equal(res.status, 200);
    assert_int_equal(res.webhook_id, 230400);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_events WHERE connection_key = "
                                "'org-77' AND webhook_id = 230400"),
                     1);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM work_items WHERE connection_key = 'org-77'"),
                     1);
    /* Access ids that are not webhook ids: a name, and a number that is no webhook of ours. */
    static const char *const ids[] = {"hover", "463605"};
    for (size_t i = 0; i < 2; i++) {
        sign_as(&d, F_25, SECRET, ids[i], JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000 - 1 - (int)i,
                URI);
        res = handle(f, &d.rq);
        assert_int_equal(res.status, 200);
        assert_int_equal(res.webhook_id, WEBHOOK_ID);
    }
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_access_ids WHERE webhook_id = "
                                "230293 AND access_id IN ('hover', '463605')"),
                     2);
    /* Remembered: the next one goes straight to it (the other secret is not needed: a forged
     * one still fails). */
    sign_as(&d, F_25, SECRET, "hover", JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000 - 5, URI);
    assert_int_equal(handle(f, &d.rq).status, 200);
    sign_as(&d, F_25, "forged", "hover", JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000 - 6, URI);
    assert_int_equal(handle(f, &d.rq).status, 401);
}

/* Past HS_WEBHOOK_TRIAL_MAX registered webhooks, an access id that names none is tried against
 * the newest ones only: the oldest's delivery is refused, the newest's accepted. */
static void test_trial_of_secrets_is_capped(void **state)
{
    struct fixture *f = *state;
    const struct hs_store_ops *ops = f->store->ops;
    assert_int_equal(ops->begin(f->store, NULL), HS_OK);
    for (int i = 0; i <= HS_WEBHOOK_TRIAL_MAX; i++) {
        char secret[32];
        snprintf(secret, sizeof secret, "secret-%d", i);
        put_webhook(f, 100000 + i, "org-463605", "http://127.0.0.1:9/webhooks/hover", secret);
    }
    assert_int_equal(ops->commit(f->store, NULL), HS_OK);
    struct delivery d;
    sign_as(&d, F_25, "secret-0", "hover", JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000, URI);
    assert_refused(f, &d.rq, 401);
    char newest[32];
    snprintf(newest, sizeof newest, "secret-%d", HS_WEBHOOK_TRIAL_MAX);
    sign_as(&d, F_25, newest, "hover", JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000, URI);
    assert_int_equal(handle(f, &d.rq).status, 200);
}

/* The code arrives before the registration's answer (with the secret) is stored: kept as
 * "unverified" (202); once the row is stored, the kept delivery is checked with the secret and
 * its code queued; the verifier sends it to Hover. */
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
    hs_fake_clock_advance(&f->clock, 10 * 60 * 1000);
    store_webhook(f, SECRET);
    size_t queued = 0;
    struct hs_error err = {0};
    assert_int_equal(hs_receiver_complete_unverified(&f->cfg, WEBHOOK_ID, &queued, &err), HS_OK);
    assert_int_equal(queued, 1);
    assert_int_equal(f->verify_calls, 0);
    assert_int_equal(run_verifier(f), 1);
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

/* The other order: the row is stored first. The receiver answers without calling Hover
 * (however slow or failing Hover is); the verifier calls it, retries a failure with backoff,
 * and a replayed or re-sent code never calls Hover again. */
static void test_verification_of_a_known_webhook(void **state)
{
    struct fixture *f = *state;
    store_webhook(f, SECRET);
    struct delivery d;
    sign(&d, SECRET, WEBHOOK_ID, CODE_BODY, strlen(CODE_BODY), NOW_MS / 1000);
    f->verify_rc = HS_ERR_SERVER;
    struct hs_receiver_result res = handle(f, &d.rq);
    assert_int_equal(res.status, 202);
    assert_non_null(strstr(res.body, "\"verifying\""));
    assert_int_equal(f->verify_calls, 0); /* not on the request path */
    assert_int_equal(run_verifier(f), 1);
    assert_int_equal(f->verify_calls, 1);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhooks WHERE verified_at IS NULL AND "
                                "local_error IS NULL"),
                     1);
    /* Retried after the backoff, not before. */
    assert_int_equal(run_verifier(f), 0);
    hs_fake_clock_advance(&f->clock, 1000);
    f->verify_rc = 0;
    assert_int_equal(run_verifier(f), 1);
    assert_int_equal(f->verify_calls, 2);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhooks WHERE verified_at IS NOT NULL"), 1);
    /* The same delivery again, and the same code signed anew: acknowledged, no call. */
    res = handle(f, &d.rq);
    assert_int_equal(res.status, 200);
    assert_non_null(strstr(res.body, "\"duplicate\""));
    sign(&d, SECRET, WEBHOOK_ID, CODE_BODY, strlen(CODE_BODY), NOW_MS / 1000 + 1);
    assert_int_equal(handle(f, &d.rq).status, 202);
    assert_int_equal(run_verifier(f), 0);
    assert_int_equal(f->verify_calls, 2);
    assert_int_equal(work_items(f), 0);
}

/* A code Hover refuses for good (404, 422): acknowledged, recorded as the webhook's own error
 * (not Hover's last_error), not retried; a later good code clears it. */
static void test_code_refused_for_good_is_a_local_error(void **state)
{
    struct fixture *f = *state;
    store_webhook(f, SECRET);
    static const int refusals[] = {HS_ERR_NOT_FOUND, HS_ERR_UNPROCESSABLE};
    for (size_t i = 0; i < 2; i++) {
        char body[160];
        snprintf(body, sizeof body,
                 "{\"event\":\"webhook-verification-code\",\"webhook_id\":230293,"
                 "\"code\":\"refused-%zu\"}",
                 i);
        struct delivery d;
        sign(&d, SECRET, WEBHOOK_ID, body, strlen(body), NOW_MS / 1000);
        f->verify_rc = refusals[i];
        assert_int_equal(handle(f, &d.rq).status, 202);
        assert_int_equal(run_verifier(f), 1);
        hs_fake_clock_advance(&f->clock, 3600 * 1000);
        assert_int_equal(run_verifier(f), 0); /* not retried */
        hs_fake_clock_advance(&f->clock, -3600 * 1000);
        assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhooks WHERE local_error LIKE "
                                    "'Hover refused the verification code%' AND last_error IS "
                                    "NULL AND verified_at IS NULL"),
                         1);
    }
    assert_int_equal(f->verify_calls, 2);
    struct hs_webhook_row w = {0};
    assert_int_equal(f->store->webhooks->webhook_get(f->store, WEBHOOK_ID, &w, NULL), HS_OK);
    assert_non_null(w.local_error);
    hs_webhook_row_clear(&w);
    f->verify_rc = 0;
    struct delivery d;
    sign(&d, SECRET, WEBHOOK_ID, CODE_BODY, strlen(CODE_BODY), NOW_MS / 1000);
    assert_int_equal(handle(f, &d.rq).status, 202);
    assert_int_equal(run_verifier(f), 1);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhooks WHERE local_error IS NULL AND "
                                "verified_at IS NOT NULL"),
                     1);
}

/* From an unknown webhook, nothing but a well-formed verification code is kept. */
static void test_unknown_webhook_is_401_except_its_code(void **state)
{
    struct fixture *f = *state;
    struct delivery d;
    sign(&d, SECRET, WEBHOOK_ID, JOB_BODY, strlen(JOB_BODY), NOW_MS / 1000);
    assert_refused(f, &d.rq, 401);
    /* A code whose body does not match its digest, or stale: refused. */
    char body[] = CODE_BODY;
    sign(&d, SECRET, WEBHOOK_ID, body, strlen(body), NOW_MS / 1000);
    body[strlen(body) - 3] = 'x';
    assert_refused(f, &d.rq, 401);
    sign(&d, SECRET, WEBHOOK_ID, CODE_BODY, strlen(CODE_BODY), NOW_MS / 1000 - 3600);
    assert_refused(f, &d.rq, 401);
    /* A verification event without a code: refused. */
    static const char nocode[] = "{\"event\":\"webhook-verification-code\",\"webhook_id\":1}";
    sign(&d, SECRET, WEBHOOK_ID, nocode, strlen(nocode), NOW_MS / 1000);
    assert_refused(f, &d.rq, 401);
}

/* A flood of unsigned codes under ever new access ids: at most HS_STORE_UNVERIFIED_MAX rows in
 * all, the oldest dropped, and none kept past HS_STORE_UNVERIFIED_TTL_MS. */
static void test_flood_of_codes_keeps_a_bounded_number(void **state)
{
    struct fixture *f = *state;
    int64_t before = events(f);
    int sent = HS_STORE_UNVERIFIED_MAX + 500;
    for (int i = 0; i < sent; i++) {
        char id[32];
        snprintf(id, sizeof id, "%d", 500000 + i);
        struct delivery d;
        sign_as(&d, F_25, "attacker", id, CODE_BODY, strlen(CODE_BODY), NOW_MS / 1000, URI);
        assert_int_equal(handle(f, &d.rq).status, 202);
    }
    int64_t after = events(f);
    printf("flood: %d unsigned codes sent, rows before %lld, after %lld\n", sent, (long long)before,
           (long long)after);
    assert_int_equal(after, HS_STORE_UNVERIFIED_MAX);
    /* The oldest went first. */
    assert_int_equal(sql_int(f, "SELECT MIN(webhook_id) FROM webhook_events"), 500000 + 500);
    /* Aged out: dropped by the next keep, or by the trim the verifier runs. */
    hs_fake_clock_advance(&f->clock, HS_STORE_UNVERIFIED_TTL_MS + 1000);
    int64_t removed = 0;
    assert_int_equal(f->store->webhooks->events_unverified_trim(
                         f->store, f->clock.clock.wall_ms(&f->clock.clock), &removed, NULL),
                     HS_OK);
    assert_int_equal(removed, HS_STORE_UNVERIFIED_MAX);
    assert_int_equal(events(f), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_valid_job_event_is_stored_with_its_work_item, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_every_signer_form_is_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_failure_is_503_and_nothing_is_kept, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_forged_signature_is_401, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signed_uri_is_the_registered_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_or_future_date_is_401, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_modified_after_signing_is_401, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsigned_and_malformed_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversize_body_is_413, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_json_is_400, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_event_is_stored_as_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_is_acknowledged_and_stored_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_kept_webhook_follows_the_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_org_is_the_one_whose_secret_verified, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trial_of_secrets_is_capped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verification_before_registration_completes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_verification_of_a_known_webhook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_code_refused_for_good_is_a_local_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unknown_webhook_is_401_except_its_code, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_flood_of_codes_keeps_a_bounded_number, setup,
                                        teardown),
    };
    hs_log_set_level(HS_LOG_ERROR); /* the refusals' warn lines are expected here */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
