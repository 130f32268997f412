/* test_outbox.c: CRM notifications (src/notify/outbox.c) against a real SQLite store in a
 * temporary directory and a capturing transport (every POST recorded with its headers, each
 * answered with the next scripted status): the signature and the idempotency key against values
 * computed independently (Python's hmac and hashlib), the backoff, "one message per change per
 * endpoint", retries until acknowledged, and order per job. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/clock.h"
#include "core/mem.h"
#include "notify/outbox.h"
#include "store/outbox.h"
#include "store/records.h"
#include "store/store.h"

#define NOW_MS 1742200000000LL
#define EP1    "http://crm.test/hook"
#define EP2    "http://crm2.test/notify"

/* ---- a transport that records POSTs ---- */

struct post {
    char *url, *body, *idem, *ts, *sig, *ctype;
};

struct cap {
    struct hs_transport base;
    long statuses[32]; /* answers in order; past the script: 200 */
    int n_statuses;
    struct post posts[32];
    int n;
};

static char *header(const struct hs_http_request *rq, const char *name)
{
    for (size_t i = 0; i < rq->n_headers; i++)
        if (strcmp(rq->headers[i].name, name) == 0)
            return hs_strdup(rq->headers[i].value);
    return NULL;
}

static int cap_perform(struct hs_transport *t, const struct hs_http_request *rq,
                       struct hs_http_response *rs, struct hs_error *err)
{
    (void)err;
    struct cap *c = (struct cap *)t;
    hs_http_response_clear(rs);
    assert_true(c->n < 32);
    struct post *p = &c->posts[c->n];
    assert_string_equal(rq->method, "POST");
    p->url = hs_strdup(rq->url);
    p->body = hs_strndup(rq->body, rq->body_len);
    p->idem = header(rq, "Idempotency-Key");
    p->ts = header(rq, "X-Hoversync-Timestamp");
    p->sig = header(rq, "X-Hoversync-Signature");
    p->ctype = header(rq, "Content-Type");
    rs->status = c->n < c->n_statuses ? c->statuses[c->n] : 200;
    c->n++;
    return HS_OK;
}

static void cap_destroy(struct hs_transport *t)
{
    (void)t;
}

static void cap_free(struct cap *c)
{
    for (int i = 0; i < c->n; i++) {
        free(c->posts[i].url);
        free(c->posts[i].body);
        free(c->posts[i].idem);
        free(c->posts[i].ts);
        free(c->posts[i].sig);
        free(c->posts[i].ctype);
    }
}

/* ---- fixture ---- */

struct fixture {
    char dir[128];
    struct hs_store *store;
    struct hs_fake_clock fc;
    struct cap cap;
    struct hs_outbox *o;
};

static int setup(void **state)
{
    struct fixture *f = hs_calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/hs-outbox-test-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    char path[200];
    snprintf(path, sizeof path, "%s/store.db", f->dir);
    struct hs_error err = {0};
    if (hs_store_open(path, NULL, &f->store, &err))
        return -1;
    hs_fake_clock_init(&f->fc, NOW_MS);
    f->cap.base.perform = cap_perform;
    f->cap.base.destroy = cap_destroy;
    const char *eps[] = {EP1, EP2};
    struct hs_outbox_config oc = {.endpoints = eps,
                                  .n_endpoints = 2,
                                  .secret = "shh-secret",
                                  .retry_base_ms = 1000,
                                  .retry_max_ms = 300000};
    if (hs_outbox_new(&oc, f->store, &f->fc.clock, &f->cap.base, &f->o, &err)) {
        fprintf(stderr, "outbox: %s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    hs_outbox_free(f->o);
    cap_free(&f->cap);
    hs_store_close(f->store);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

/* A stored job 501 with model 601 and one artifact whose bytes are `sha`. */
static void store_artifact(struct fixture *f, const char *sha)
{
    static const char job_json[] =
        "{\"id\":501,\"name\":\"Main House\",\"models\":[{\"id\":601,\"name\":\"House\","
        "\"state\":\"complete\",\"updated_at\":\"2025-03-17T01:00:00.000Z\"}]}";
    struct hs_job *job = NULL;
    struct hs_error err = {0};
    assert_int_equal(hs_job_from_json(job_json, strlen(job_json), &job, &err), 0);
    assert_int_equal(f->store->records->job_upsert(f->store, job, "org-1", NULL, &err), 0);
    hs_job_free(job);
    char rel[100];
    snprintf(rel, sizeof rel, "blobs/%s", sha);
    struct hs_artifact_row a = {.model_id = 601,
                                .kind = (char *)"measurements.pdf",
                                .sha256 = (char *)sha,
                                .bytes = 10,
                                .path = rel,
                                .fetched_at = (char *)"2025-03-17T02:00:00.000Z"};
    assert_int_equal(f->store->records->artifact_put(f->store, &a, NULL, &err), 0);
}

static int64_t pending(struct fixture *f)
{
    int64_t n = -1;
    assert_int_equal(f->store->outbox->outbox_depth(f->store, &n, NULL), 0);
    return n;
}

/* ---- the pieces ---- */

static void test_signature_and_key(void **state)
{
    (void)state;
    char sig[HS_OUTBOX_SIG_LEN + 1];
    hs_outbox_sign("shh-secret", 1742200000, "{\"a\":1}", 7, sig);
    assert_string_equal(sig, "v1=2825c1f9618755877f3aa20aa42b2ea9f22e7bf9581acb81f7d8e06e79bcb459");
    char key[65];
    hs_outbox_idempotency_key(EP1, 501, 7, key);
    assert_string_equal(key, "53a6f89807e495fb97eb2c98b57ce2dd34e5d4834701c0961bc113470cd24cc5");
    /* Another cursor, another key; the same inputs, the same key. */
    char key2[65];
    hs_outbox_idempotency_key(EP1, 501, 8, key2);
    assert_string_not_equal(key, key2);
    hs_outbox_idempotency_key(EP1, 501, 7, key2);
    assert_string_equal(key, key2);
}

static void test_backoff(void **state)
{
    (void)state;
    assert_int_equal(hs_outbox_backoff_ms(1000, 300000, 0), 1000);
    assert_int_equal(hs_outbox_backoff_ms(1000, 300000, 1), 2000);
    assert_int_equal(hs_outbox_backoff_ms(1000, 300000, 3), 8000);
    assert_int_equal(hs_outbox_backoff_ms(1000, 300000, 8), 256000);
    assert_int_equal(hs_outbox_backoff_ms(1000, 300000, 9), 300000);
    assert_int_equal(hs_outbox_backoff_ms(1000, 300000, 60), 300000); /* no overflow */
}

/* ---- queueing ---- */

/* One message per endpoint per change; nothing for a sync that changed nothing; the next change
 * says where the previous one ended. */
static void test_one_message_per_change(void **state)
{
    struct fixture *f = *state;
    struct hs_error err = {0};
    size_t q = 99;
    /* Nothing stored yet: nothing to say. */
    assert_int_equal(hs_outbox_after_sync(f->o, "org-1", 501, NULL, &q, &err), 0);
    assert_int_equal(q, 0);
    store_artifact(f, "aaaa");
    assert_int_equal(hs_outbox_after_sync(f->o, "org-1", 501, NULL, &q, &err), 0);
    assert_int_equal(q, 2);
    assert_int_equal(pending(f), 2);
    /* Again, with no change in between: nothing. */
    assert_int_equal(hs_outbox_after_sync(f->o, "org-1", 501, NULL, &q, &err), 0);
    assert_int_equal(q, 0);
    /* The same bytes stored again: no change, nothing. */
    store_artifact(f, "aaaa");
    assert_int_equal(hs_outbox_after_sync(f->o, "org-1", 501, NULL, &q, &err), 0);
    assert_int_equal(q, 0);
    /* New bytes: one more per endpoint. */
    store_artifact(f, "bbbb");
    assert_int_equal(hs_outbox_after_sync(f->o, "org-1", 501, NULL, &q, &err), 0);
    assert_int_equal(q, 2);
    assert_int_equal(pending(f), 4);

    /* Delivered in order; the payloads chain their cursors. */
    int64_t prev_cursor = -1;
    for (int i = 0; i < 4; i++) {
        bool sent = false;
        assert_int_equal(hs_outbox_deliver_one(f->o, &sent, &err), 0);
        assert_true(sent);
    }
    assert_int_equal(pending(f), 0);
    assert_int_equal(f->cap.n, 4);
    int64_t cursors[2][2];
    int seen[2] = {0, 0};
    for (int i = 0; i < 4; i++) {
        const struct post *p = &f->cap.posts[i];
        json_t *j = json_loads(p->body, 0, NULL);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "type")), "hoversync.job.synced");
        assert_int_equal(json_integer_value(json_object_get(j, "job_id")), 501);
        assert_string_equal(json_string_value(json_object_get(j, "id")), p->idem);
        int64_t cursor = json_integer_value(json_object_get(j, "cursor"));
        int64_t previous = json_integer_value(json_object_get(j, "previous_cursor"));
        char want_url[64], want_key[65];
        snprintf(want_url, sizeof want_url, "/api/records?since=%lld", (long long)previous);
        assert_string_equal(json_string_value(json_object_get(j, "records_url")), want_url);
        hs_outbox_idempotency_key(p->url, 501, cursor, want_key);
        assert_string_equal(p->idem, want_key);
        int e = strcmp(p->url, EP1) == 0 ? 0 : 1;
        cursors[e][seen[e]++] = cursor;
        if (seen[e] == 2) /* the second change starts where the first ended */
            assert_int_equal(previous, cursors[e][0]);
        json_t *models = json_object_get(j, "models");
        assert_int_equal(json_array_size(models), 1);
        assert_int_equal(json_integer_value(json_object_get(json_array_get(models, 0), "id")), 601);
        json_decref(j);
        (void)prev_cursor;
    }
    assert_int_equal(seen[0], 2);
    assert_int_equal(seen[1], 2);
    assert_true(cursors[0][1] > cursors[0][0]);
}

/* The headers a CRM checks: the signature over "<timestamp>.<body>" with the secret. */
static void test_signed_headers(void **state)
{
    struct fixture *f = *state;
    struct hs_error err = {0};
    store_artifact(f, "cccc");
    assert_int_equal(hs_outbox_after_sync(f->o, "org-1", 501, NULL, NULL, &err), 0);
    bool sent = false;
    assert_int_equal(hs_outbox_deliver_one(f->o, &sent, &err), 0);
    const struct post *p = &f->cap.posts[0];
    assert_string_equal(p->ctype, "application/json");
    char ts[24];
    snprintf(ts, sizeof ts, "%lld", (long long)(NOW_MS / 1000));
    assert_string_equal(p->ts, ts);
    char sig[HS_OUTBOX_SIG_LEN + 1];
    hs_outbox_sign("shh-secret", NOW_MS / 1000, p->body, strlen(p->body), sig);
    assert_string_equal(p->sig, sig);
    hs_outbox_sign("another-secret", NOW_MS / 1000, p->body, strlen(p->body), sig);
    assert_string_not_equal(p->sig, sig);
    assert_int_equal(strlen(p->idem), 64);
}

/* The endpoint fails: the message waits base * 2^attempts, then goes again, with the same key;
 * the job's later message waits for it (order per job); the other endpoint is not held up. */
static void test_retry_with_backoff_in_order(void **state)
{
    struct fixture *f = *state;
    struct hs_error err = {0};
    store_artifact(f, "dddd");
    assert_int_equal(hs_outbox_after_sync(f->o, "org-1", 501, NULL, NULL, &err), 0);
    store_artifact(f, "eeee");
    assert_int_equal(hs_outbox_after_sync(f->o, "org-1", 501, NULL, NULL, &err), 0);
    assert_int_equal(pending(f), 4);
    /* EP1's first message fails twice (503, 500); everything else succeeds. */
    bool sent = false;
    f->cap.statuses[0] = 503;
    f->cap.n_statuses = 1;
    assert_int_equal(hs_outbox_deliver_one(f->o, &sent, &err), 0); /* EP1 #1: 503 */
    assert_true(sent);
    assert_string_equal(f->cap.posts[0].url, EP1);
    char *first_key = hs_strdup(f->cap.posts[0].idem);
    /* Now only EP2's first is due (EP1 #2 waits behind EP1 #1). */
    assert_int_equal(hs_outbox_deliver_one(f->o, &sent, &err), 0);
    assert_string_equal(f->cap.posts[1].url, EP2);
    assert_int_equal(hs_outbox_deliver_one(f->o, &sent, &err), 0);
    assert_string_equal(f->cap.posts[2].url, EP2);
    assert_int_equal(hs_outbox_deliver_one(f->o, &sent, &err), 0);
    assert_false(sent); /* EP1 #1 waits 1 s; EP1 #2 waits for it */
    hs_fake_clock_advance(&f->fc, 999);
    assert_int_equal(hs_outbox_deliver_one(f->o, &sent, &err), 0);
    assert_false(sent);
    hs_fake_clock_advance(&f->fc, 1);
    f->cap.statuses[3] = 500;
    f->cap.n_statuses = 4;
    assert_int_equal(hs_outbox_deliver_one(f->o, &sent, &err), 0); /* EP1 #1 again: 500 */
    assert_true(sent);
    assert_string_equal(f->cap.posts[3].idem, first_key);
    hs_fake_clock_advance(&f->fc, 1999); /* the second retry waits 2 s */
    assert_int_equal(hs_outbox_deliver_one(f->o, &sent, &err), 0);
    assert_false(sent);
    hs_fake_clock_advance(&f->fc, 1);
    assert_int_equal(hs_outbox_deliver_one(f->o, &sent, &err), 0); /* EP1 #1: 200 */
    assert_string_equal(f->cap.posts[4].idem, first_key);
    assert_int_equal(hs_outbox_deliver_one(f->o, &sent, &err), 0); /* EP1 #2 */
    assert_true(sent);
    assert_string_equal(f->cap.posts[5].url, EP1);
    assert_string_not_equal(f->cap.posts[5].idem, first_key);
    assert_int_equal(pending(f), 0);
    struct hs_outbox_stats st;
    hs_outbox_get_stats(f->o, &st);
    assert_int_equal(st.delivered, 4);
    assert_int_equal(st.failed_attempts, 2);
    free(first_key);
}

static void test_config_checks(void **state)
{
    struct fixture *f = *state;
    struct hs_outbox *o = NULL;
    struct hs_error err = {0};
    const char *bad[] = {"ftp://crm.test/"};
    struct hs_outbox_config oc = {.endpoints = bad, .n_endpoints = 1, .secret = "s"};
    assert_int_equal(hs_outbox_new(&oc, f->store, NULL, NULL, &o, &err), HS_ERR_INVALID);
    const char *good[] = {EP1};
    struct hs_outbox_config nosecret = {.endpoints = good, .n_endpoints = 1};
    assert_int_equal(hs_outbox_new(&nosecret, f->store, NULL, NULL, &o, &err), HS_ERR_INVALID);
    assert_non_null(strstr(err.msg, "HOVERSYNC_CRM_SECRET"));
    /* No endpoint: queueing is a no-op. */
    struct hs_outbox_config none = {0};
    assert_int_equal(hs_outbox_new(&none, f->store, NULL, NULL, &o, &err), 0);
    assert_false(hs_outbox_enabled(o));
    store_artifact(f, "ffff");
    size_t q = 9;
    assert_int_equal(hs_outbox_after_sync(o, "org-1", 501, NULL, &q, &err), 0);
    assert_int_equal(q, 0);
    hs_outbox_free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signature_and_key),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test_setup_teardown(test_one_message_per_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signed_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_with_backoff_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_checks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
