/* test_client.c: the client's request pipeline (src/hover/client.c) against the fake transport:
 * query building, current_user_*, retries and Retry-After, status mapping, error messages,
 * redirects and the bearer rule, size caps, conditional downloads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/str.h"
#include "fake_store.h"
#include "fake_transport.h"
#include "hover/client.h"
#include "hover/limiter.h"

#define NOW_S 1700000000LL
#define BASE  "https://hover.test"
#define KEY   "org-1"
#define TOKEN "access-token-1"

static const char job_answer[] = "{\"id\":7,\"name\":\"J\"}";
static const char page_answer[] =
    "{\"results\":[{\"id\":1},{\"id\":2}],\"pagination\":{\"current_page\":1,\"next_page\":2}}";

struct env {
    struct hs_fake_clock fc;
    struct fake_transport ft;
    struct fake_store fs;
    struct hs_client_config cfg;
    struct hs_client *c;
};

static int env_setup(void **state)
{
    struct env *e = calloc(1, sizeof *e);
    hs_fake_clock_init(&e->fc, NOW_S * 1000);
    fake_transport_init(&e->ft);
    fake_store_init(&e->fs);
    fake_store_put(&e->fs, KEY, TOKEN, "refresh-1", NOW_S + 7200);
    e->cfg = (struct hs_client_config){.base_url = BASE "/",
                                       .client_id = "cid",
                                       .client_secret = "csecret",
                                       .credential_key = KEY};
    *state = e;
    return 0;
}

static int env_teardown(void **state)
{
    struct env *e = *state;
    hs_client_free(e->c);
    fake_transport_cleanup(&e->ft);
    fake_store_cleanup(&e->fs);
    free(e);
    return 0;
}

static void client_open(struct env *e)
{
    struct hs_error err = {0};
    int rc =
        hs_client_new(&e->cfg, fake_store_tokens(&e->fs), &e->fc.clock, &e->ft.base, &e->c, &err);
    if (rc)
        fail_msg("hs_client_new: %s", err.msg);
}

static int show(struct env *e, struct hs_error *err)
{
    struct hs_job *j = NULL;
    int rc = hs_client_show_job(e->c, 7, &j, err);
    if (rc == HS_OK)
        assert_int_equal(j->id, 7);
    hs_job_free(j);
    return rc;
}

static void test_list_query_building(void **state)
{
    struct env *e = *state;
    e->cfg.as_user_email = "pat+ops@example.com";
    client_open(e);
    fake_transport_answer(&e->ft, 200, page_answer);
    const int64_t ids[] = {3, 7};
    struct hs_list_params p = {.search = "4312 Meadow & Co/ü",
                               .page = 2,
                               .per = 100,
                               .sort_by = "updated_at",
                               .sort_order = "ASC",
                               .archived = 1,
                               .updated_since = 1700000000,
                               .reconstruction_state = "completed",
                               .deliverable_ids = ids,
                               .n_deliverable_ids = 2};
    struct hs_job_page *page = NULL;
    struct hs_error err = {0};
    assert_int_equal(hs_client_list_jobs(e->c, &p, &page, &err), HS_OK);
    assert_int_equal(page->n_jobs, 2);
    assert_true(page->has_more);
    hs_job_page_free(page);
    assert_int_equal(e->ft.n_reqs, 1);
    assert_string_equal(e->ft.reqs[0].method, "GET");
    assert_string_equal(e->ft.reqs[0].url,
                        BASE "/api/v3/jobs?search=4312%20Meadow%20%26%20Co%2F%C3%BC&page=2"
                             "&per=100&sort_by=updated_at&sort_order=ASC&archived=true"
                             "&updated_since=1700000000&reconstruction_state=completed"
                             "&deliverable_ids%5B%5D=3&deliverable_ids%5B%5D=7"
                             "&current_user_email=pat%2Bops%40example.com");
    assert_string_equal(e->ft.reqs[0].bearer, TOKEN);
    assert_string_equal(e->ft.reqs[0].accept, "application/json");
    assert_int_equal(e->ft.reqs[0].timeout_ms, 60000);
    assert_int_equal(e->ft.reqs[0].max_response, HS_JSON_MAX_BYTES);
}

static void test_list_minimal_and_invalid(void **state)
{
    struct env *e = *state;
    e->cfg.as_user_id = 99;
    e->cfg.as_user_email = ""; /* empty means unset */
    client_open(e);
    fake_transport_answer(&e->ft, 200, "{\"results\":[]}");
    struct hs_job_page *page = NULL;
    assert_int_equal(hs_client_list_jobs(e->c, NULL, &page, NULL), HS_OK);
    assert_false(page->has_more);
    hs_job_page_free(page);
    assert_string_equal(e->ft.reqs[0].url, BASE "/api/v3/jobs?current_user_id=99");

    struct hs_error err = {0};
    struct hs_list_params p = {.search = "ab", .archived = -1};
    assert_int_equal(hs_client_list_jobs(e->c, &p, &page, &err), HS_ERR_INVALID);
    assert_non_null(strstr(err.msg, "3 characters"));
    p = (struct hs_list_params){.per = 101, .archived = -1};
    assert_int_equal(hs_client_list_jobs(e->c, &p, &page, &err), HS_ERR_INVALID);
    assert_int_equal(e->ft.n_reqs, 1);
    assert_int_equal(hs_client_show_job(e->c, 0, NULL, &err), HS_ERR_INVALID);
}

static void test_show_job_url_and_user(void **state)
{
    struct env *e = *state;
    e->cfg.as_user_email = "a@b.co";
    e->cfg.as_user_id = 12;
    client_open(e);
    fake_transport_answer(&e->ft, 200, job_answer);
    assert_int_equal(show(e, NULL), HS_OK);
    assert_string_equal(e->ft.reqs[0].url,
                        BASE "/api/v3/jobs/7?current_user_email=a%40b.co&current_user_id=12");
}

static void test_429_retry_after_honoured(void **state)
{
    struct env *e = *state;
    client_open(e);
    fake_transport_push(&e->ft, (struct fake_response){.status = 429, .retry_after = "7"});
    fake_transport_answer(&e->ft, 200, job_answer);
    assert_int_equal(show(e, NULL), HS_OK);
    assert_int_equal(e->ft.n_reqs, 2);
    assert_true(e->fc.slept_total >= 7000);
    struct hs_client_stats st;
    hs_client_get_stats(e->c, &st);
    assert_int_equal(st.retries, 1);
    assert_int_equal(st.requests, 2);
    assert_true(st.waited_ms >= 7000);
}

static void test_429_retry_after_too_long(void **state)
{
    struct env *e = *state;
    client_open(e);
    fake_transport_push(&e->ft, (struct fake_response){.status = 429, .retry_after = "3600"});
    struct hs_error err = {0};
    assert_int_equal(show(e, &err), HS_ERR_RATE_LIMITED);
    assert_int_equal(e->ft.n_reqs, 1);
    assert_int_equal(e->fc.sleeps, 0);
    assert_non_null(strstr(err.msg, "3600"));
    assert_int_equal(err.http_status, 429);
}

static void test_429_until_out_of_attempts(void **state)
{
    struct env *e = *state;
    e->cfg.max_attempts = 3;
    client_open(e);
    for (int i = 0; i < 3; i++)
        fake_transport_answer(&e->ft, 429, "{\"error\":\"Too many requests\"}");
    struct hs_error err = {0};
    assert_int_equal(show(e, &err), HS_ERR_RATE_LIMITED);
    assert_int_equal(e->ft.n_reqs, 3);
    assert_int_equal(e->fc.sleeps, 2);
    assert_non_null(strstr(err.msg, "Too many requests"));
    assert_non_null(strstr(err.msg, "after 3 attempts"));
}

static void test_503_twice_then_200(void **state)
{
    struct env *e = *state;
    e->cfg.backoff_base_ms = 100;
    client_open(e);
    e->fc.random = 0.0; /* equal jitter: half of each backoff */
    fake_transport_answer(&e->ft, 503, "<html>busy</html>");
    fake_transport_answer(&e->ft, 503, NULL);
    fake_transport_answer(&e->ft, 200, job_answer);
    assert_int_equal(show(e, NULL), HS_OK);
    assert_int_equal(e->ft.n_reqs, 3);
    assert_int_equal(e->fc.sleeps, 2);
    assert_int_equal(e->fc.slept_total, 50 + 100);
    for (int i = 0; i < 3; i++)
        assert_string_equal(e->ft.reqs[i].bearer, TOKEN);
    struct hs_client_stats st;
    hs_client_get_stats(e->c, &st);
    assert_int_equal(st.by_status[HS_SC_5XX], 2);
    assert_int_equal(st.by_status[HS_SC_2XX], 1);
    assert_int_equal(st.by_status[HS_SC_429], 0);
    assert_string_equal(hs_status_class_label(HS_SC_NETWORK), "network");
}

static void test_5xx_exhausted(void **state)
{
    struct env *e = *state;
    client_open(e);
    for (int i = 0; i < 5; i++)
        fake_transport_answer(&e->ft, 502, NULL);
    struct hs_error err = {0};
    assert_int_equal(show(e, &err), HS_ERR_SERVER);
    assert_int_equal(e->ft.n_reqs, 5);
    assert_int_equal(err.http_status, 502);
}

static void test_network_errors_retried(void **state)
{
    struct env *e = *state;
    client_open(e);
    fake_transport_push(&e->ft, (struct fake_response){.error = HS_ERR_NETWORK});
    fake_transport_push(&e->ft,
                        (struct fake_response){.error = HS_ERR_TRUNCATED, .body = "{\"id\":"});
    fake_transport_answer(&e->ft, 200, job_answer);
    assert_int_equal(show(e, NULL), HS_OK);
    assert_int_equal(e->ft.n_reqs, 3);
}

static void test_404_no_retry(void **state)
{
    struct env *e = *state;
    client_open(e);
    fake_transport_answer(&e->ft, 404, "{\"error\":\"Couldn't find Job with 'id'=7\"}");
    struct hs_error err = {0};
    assert_int_equal(show(e, &err), HS_ERR_NOT_FOUND);
    assert_int_equal(e->ft.n_reqs, 1);
    assert_int_equal(e->fc.sleeps, 0);
    assert_int_equal(err.http_status, 404);
    assert_non_null(strstr(err.msg, "Couldn't find Job"));
    assert_non_null(strstr(err.msg, "GET /api/v3/jobs/7"));
}

static void test_422_message_surfaced(void **state)
{
    struct env *e = *state;
    client_open(e);
    fake_transport_answer(&e->ft, 422,
                          "{\"error\":{\"job\":\"Invalid failed_models_count: 4. Allowed: 0, 1, "
                          "2\"}}");
    struct hs_error err = {0};
    assert_int_equal(show(e, &err), HS_ERR_UNPROCESSABLE);
    assert_non_null(strstr(err.msg, "job: Invalid failed_models_count: 4. Allowed: 0, 1, 2"));
    assert_int_equal(e->ft.n_reqs, 1);
}

static void test_403_errors_shape(void **state)
{
    struct env *e = *state;
    client_open(e);
    fake_transport_answer(&e->ft, 403,
                          "{\"errors\":{\"user\":[\"has no access\",\"is not an admin\"]}}");
    struct hs_error err = {0};
    assert_int_equal(show(e, &err), HS_ERR_FORBIDDEN);
    assert_non_null(strstr(err.msg, "user: has no access, is not an admin"));
    /* an unknown 4xx */
    fake_transport_answer(&e->ft, 409, "conflicting state");
    assert_int_equal(show(e, &err), HS_ERR_HTTP);
    assert_non_null(strstr(err.msg, "HTTP 409: conflicting state"));
}

static void test_bad_json_is_parse_error(void **state)
{
    struct env *e = *state;
    client_open(e);
    fake_transport_answer(&e->ft, 200, "{\"id\":7,");
    struct hs_error err = {0};
    assert_int_equal(show(e, &err), HS_ERR_PARSE);
    assert_int_equal(e->ft.n_reqs, 1);
}

static void test_response_over_cap(void **state)
{
    struct env *e = *state;
    e->cfg.max_response_bytes = 1024;
    client_open(e);
    char *big = calloc(1, 2001);
    memset(big, ' ', 2000);
    big[0] = '{';
    big[1999] = '}';
    fake_transport_answer(&e->ft, 200, big);
    struct hs_error err = {0};
    assert_int_equal(show(e, &err), HS_ERR_TOOBIG);
    assert_int_equal(e->ft.n_reqs, 1); /* not retried */
    assert_int_equal(e->ft.reqs[0].max_response, 1024);
    free(big);
}

static void test_redirect_to_other_host_drops_bearer(void **state)
{
    struct env *e = *state;
    e->cfg.as_user_email = "a@b.co";
    client_open(e);
    fake_transport_push(&e->ft, (struct fake_response){.status = 302,
                                                       .location = "https://storage.example.net/b/"
                                                                   "x.pdf?X-Amz-Signature=abc"});
    fake_transport_push(&e->ft, (struct fake_response){.status = 200,
                                                       .body = "%PDF-1.4",
                                                       .etag = "\"v1\"",
                                                       .content_type = "application/pdf"});
    struct hs_fetch_result r = {0};
    struct hs_error err = {0};
    assert_int_equal(
        hs_client_get(e->c, "/api/v3/models/9/artifacts/measurements.pdf", NULL, &r, &err), HS_OK);
    assert_int_equal(e->ft.n_reqs, 2);
    assert_string_equal(e->ft.reqs[0].url, BASE "/api/v3/models/9/artifacts/measurements.pdf"
                                                "?current_user_email=a%40b.co");
    assert_string_equal(e->ft.reqs[0].bearer, TOKEN);
    assert_string_equal(e->ft.reqs[1].url,
                        "https://storage.example.net/b/x.pdf?X-Amz-Signature=abc");
    assert_null(e->ft.reqs[1].bearer);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "%PDF-1.4");
    assert_int_equal(r.body_len, 8);
    assert_string_equal(r.etag, "\"v1\"");
    assert_string_equal(r.content_type, "application/pdf");
    assert_string_equal(r.final_url, "https://storage.example.net/b/x.pdf?X-Amz-Signature=abc");
    hs_fetch_result_clear(&r);
}

static void test_redirect_same_origin_keeps_bearer(void **state)
{
    struct env *e = *state;
    client_open(e);
    fake_transport_push(&e->ft, (struct fake_response){.status = 301, .location = "/files/x.pdf"});
    fake_transport_push(
        &e->ft, (struct fake_response){.status = 307, .location = "https://HOVER.test:443/y"});
    fake_transport_push(&e->ft,
                        (struct fake_response){.status = 302, .location = "http://hover.test/z"});
    fake_transport_answer(&e->ft, 200, "ok");
    struct hs_fetch_result r = {0};
    assert_int_equal(
        hs_client_get(e->c, "/api/v3/models/9/artifacts/measurements.pdf", NULL, &r, NULL), HS_OK);
    assert_int_equal(e->ft.n_reqs, 4);
    assert_string_equal(e->ft.reqs[1].url, BASE "/files/x.pdf");
    assert_string_equal(e->ft.reqs[1].bearer, TOKEN);
    assert_string_equal(e->ft.reqs[2].bearer, TOKEN); /* same origin, spelled differently */
    assert_null(e->ft.reqs[3].bearer);                /* http is another origin */
    hs_fetch_result_clear(&r);
}

static void test_too_many_redirects(void **state)
{
    struct env *e = *state;
    e->cfg.max_redirects = 2;
    client_open(e);
    for (int i = 0; i < 3; i++)
        fake_transport_push(&e->ft, (struct fake_response){.status = 302, .location = "/loop"});
    struct hs_fetch_result r = {0};
    struct hs_error err = {0};
    assert_int_equal(hs_client_get(e->c, "/a", NULL, &r, &err), HS_ERR_HTTP);
    assert_int_equal(e->ft.n_reqs, 3);
    assert_non_null(strstr(err.msg, "redirects"));
    fake_transport_push(&e->ft,
                        (struct fake_response){.status = 302, .location = "file:///etc/passwd"});
    assert_int_equal(hs_client_get(e->c, "/a", NULL, &r, &err), HS_ERR_HTTP);
}

static void test_full_url_links(void **state)
{
    struct env *e = *state;
    e->cfg.as_user_id = 5;
    client_open(e);
    fake_transport_answer(&e->ft, 200, "a");
    fake_transport_answer(&e->ft, 200, "b");
    fake_transport_answer(&e->ft, 200, "c");
    struct hs_fetch_result r = {0};
    /* A link Hover handed out, on the API's origin: bearer and user. */
    assert_int_equal(hs_client_get(e->c, BASE "/api/v3/images/1.jpg?size=full", NULL, &r, NULL),
                     HS_OK);
    hs_fetch_result_clear(&r);
    assert_string_equal(e->ft.reqs[0].url, BASE "/api/v3/images/1.jpg?size=full&current_user_id=5");
    assert_string_equal(e->ft.reqs[0].bearer, TOKEN);
    /* A link elsewhere (presigned storage): neither. */
    assert_int_equal(hs_client_get(e->c, "https://cdn.example.org/1.jpg", NULL, &r, NULL), HS_OK);
    hs_fetch_result_clear(&r);
    assert_string_equal(e->ft.reqs[1].url, "https://cdn.example.org/1.jpg");
    assert_null(e->ft.reqs[1].bearer);
    /* A link that already names its user keeps it. */
    assert_int_equal(hs_client_get(e->c, "/api/v3/x?current_user_id=8", NULL, &r, NULL), HS_OK);
    hs_fetch_result_clear(&r);
    assert_string_equal(e->ft.reqs[2].url, BASE "/api/v3/x?current_user_id=8");
}

struct collect {
    struct hs_buf b;
    int resets;
};

static int collect_sink(void *ctx, const char *data, size_t len)
{
    struct collect *c = ctx;
    return hs_buf_append(&c->b, data, len);
}

static int collect_reset(void *ctx)
{
    struct collect *c = ctx;
    c->resets++;
    hs_buf_reset(&c->b);
    return 0;
}

static void test_download_stream_and_304(void **state)
{
    struct env *e = *state;
    client_open(e);
    struct collect col = {.resets = 0};
    hs_buf_init(&col.b, 1 << 20);
    const char *pdf = "%PDF-1.4 0123456789 0123456789 0123456789 %%EOF";
    fake_transport_push(&e->ft, (struct fake_response){.status = 200,
                                                       .body = pdf,
                                                       .etag = "\"abc\"",
                                                       .content_type = "application/pdf"});
    struct hs_download_opts o = {.sink = collect_sink, .sink_ctx = &col};
    struct hs_fetch_result r = {0};
    assert_int_equal(hs_client_download(e->c, "/api/v3/m.pdf", &o, &r, NULL), HS_OK);
    assert_string_equal(hs_buf_str(&col.b), pdf);
    assert_int_equal(r.bytes, (int64_t)strlen(pdf));
    assert_null(r.body);
    assert_string_equal(r.etag, "\"abc\"");
    assert_int_equal(e->ft.reqs[0].max_response, (size_t)1 << 30);
    assert_string_equal(e->ft.reqs[0].accept, "*/*"); /* a PDF is not JSON */
    hs_fetch_result_clear(&r);

    /* Conditional: 304 is a success with nothing written. */
    hs_buf_reset(&col.b);
    fake_transport_push(&e->ft, (struct fake_response){.status = 304, .etag = "\"abc\""});
    o.if_none_match = "\"abc\"";
    assert_int_equal(hs_client_download(e->c, "/api/v3/m.pdf", &o, &r, NULL), HS_OK);
    assert_int_equal(r.status, 304);
    assert_int_equal(col.b.len, 0);
    assert_string_equal(e->ft.reqs[1].if_none_match, "\"abc\"");
    hs_fetch_result_clear(&r);

    /* An error body does not reach the sink. */
    fake_transport_answer(&e->ft, 404, "{\"error\":\"gone\"}");
    struct hs_error err = {0};
    assert_int_equal(hs_client_download(e->c, "/api/v3/m.pdf", &o, &r, &err), HS_ERR_NOT_FOUND);
    assert_int_equal(col.b.len, 0);
    assert_non_null(strstr(err.msg, "gone"));
    hs_buf_free(&col.b);
}

static void test_download_broken_mid_body(void **state)
{
    struct env *e = *state;
    client_open(e);
    struct collect col = {.resets = 0};
    hs_buf_init(&col.b, 1 << 20);
    const char *full = "0123456789abcdefghij";
    /* With a reset: the retry starts the sink over and the result is whole. */
    fake_transport_push(
        &e->ft,
        (struct fake_response){.status = 200, .body = "0123456789", .error = HS_ERR_TRUNCATED});
    fake_transport_answer(&e->ft, 200, full);
    struct hs_download_opts o = {.sink = collect_sink, .sink_ctx = &col, .reset = collect_reset};
    struct hs_fetch_result r = {0};
    assert_int_equal(hs_client_download(e->c, "/d", &o, &r, NULL), HS_OK);
    assert_string_equal(hs_buf_str(&col.b), full);
    assert_int_equal(col.resets, 1);
    hs_fetch_result_clear(&r);

    /* Without one: no retry, the error surfaces. */
    hs_buf_reset(&col.b);
    o.reset = NULL;
    fake_transport_push(
        &e->ft,
        (struct fake_response){.status = 200, .body = "0123456789", .error = HS_ERR_TRUNCATED});
    assert_int_equal(hs_client_download(e->c, "/d", &o, &r, NULL), HS_ERR_TRUNCATED);
    assert_int_equal(e->ft.n_reqs, 3);

    /* Over the download cap. */
    o.max_bytes = 5;
    fake_transport_answer(&e->ft, 200, full);
    assert_int_equal(hs_client_download(e->c, "/d", &o, &r, NULL), HS_ERR_TOOBIG);
    hs_buf_free(&col.b);

    o.sink = NULL;
    assert_int_equal(hs_client_download(e->c, "/d", &o, &r, NULL), HS_ERR_INVALID);
}

/* ---- downloads checked against what their answer announced ---- */

struct digests {
    char md5_hex[33], sha_hex[65], md5_b64[48], sha_b64[48];
};

static void digests_of(const char *body, struct digests *d)
{
    unsigned char md5[16], sha[32];
    assert_int_equal(EVP_Digest(body, strlen(body), md5, NULL, EVP_md5(), NULL), 1);
    assert_int_equal(EVP_Digest(body, strlen(body), sha, NULL, EVP_sha256(), NULL), 1);
    hs_hex(md5, 16, d->md5_hex);
    hs_hex(sha, 32, d->sha_hex);
    EVP_EncodeBlock((unsigned char *)d->md5_b64, md5, 16);
    EVP_EncodeBlock((unsigned char *)d->sha_b64, sha, 32);
}

/* One download of the scripted answers; the collected body is left in col. */
static int download(struct env *e, struct collect *col, struct hs_error *err)
{
    hs_buf_reset(&col->b);
    struct hs_download_opts o = {.sink = collect_sink, .sink_ctx = col, .reset = collect_reset};
    struct hs_fetch_result r = {0};
    int rc = hs_client_download(e->c, "/api/v3/m.pdf", &o, &r, err);
    hs_fetch_result_clear(&r);
    return rc;
}

/* Scripts the answer r and downloads it. */
static int answer_download(struct env *e, struct collect *col, struct fake_response r,
                           struct hs_error *err)
{
    if (!r.status)
        r.status = 200;
    fake_transport_push(&e->ft, r);
    return download(e, col, err);
}

/* The client of a check test: one attempt per download (a mismatch fails at once). */
static void check_open(struct env *e, struct collect *col)
{
    e->cfg.max_attempts = 1;
    client_open(e);
    col->resets = 0;
    hs_buf_init(&col->b, 1 << 20);
}

static const char whole[] = "%PDF-1.4 the whole document %%EOF\n";
static const char cut[] = "%PDF-1.4 the whole";

static void test_download_checked_against_length(void **state)
{
    struct env *e = *state;
    e->cfg.max_attempts = 2;
    client_open(e);
    struct collect col = {.resets = 0};
    hs_buf_init(&col.b, 1 << 20);
    struct hs_error err = {0};
    const struct fake_response short_one = {.status = 200, .body = cut, .content_length = "35"};
    /* Fewer bytes than announced, twice: an error, not a success. */
    fake_transport_push(&e->ft, short_one);
    assert_int_equal(answer_download(e, &col, short_one, &err), HS_ERR_TRUNCATED);
    assert_non_null(strstr(err.msg, "Content-Length announced 35"));
    assert_int_equal(e->ft.n_reqs, 2); /* retried like a truncated transfer */
    assert_int_equal(col.resets, 1);
    /* Short once, then whole: the sink starts over and the result is whole. */
    fake_transport_push(&e->ft, short_one);
    assert_int_equal(answer_download(e, &col, (struct fake_response){.body = whole}, NULL), HS_OK);
    assert_string_equal(hs_buf_str(&col.b), whole);
    /* No length announced (chunked): nothing to compare. */
    assert_int_equal(answer_download(e, &col,
                                     (struct fake_response){.body = cut, .content_length = "none"},
                                     NULL),
                     HS_OK);
    hs_buf_free(&col.b);
}

static void test_download_checked_against_etag(void **state)
{
    struct env *e = *state;
    struct collect col;
    check_open(e, &col);
    struct digests d;
    digests_of(whole, &d);
    char md5_etag[40], sha_etag[40], upper[40];
    snprintf(md5_etag, sizeof md5_etag, "\"%s\"", d.md5_hex);
    snprintf(sha_etag, sizeof sha_etag, "\"%.32s\"", d.sha_hex);
    snprintf(upper, sizeof upper, "%s", md5_etag);
    for (char *p = upper; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    struct hs_error err = {0};

    /* The storage host's MD5 ETag of the whole object, on a short but complete-looking answer. */
    assert_int_equal(
        answer_download(e, &col, (struct fake_response){.body = cut, .etag = md5_etag}, &err),
        HS_ERR_TRUNCATED);
    assert_non_null(strstr(err.msg, "does not match its ETag"));
    /* The whole body matches it, in either case of hex digits. */
    assert_int_equal(
        answer_download(e, &col, (struct fake_response){.body = whole, .etag = md5_etag}, NULL),
        HS_OK);
    assert_int_equal(
        answer_download(e, &col, (struct fake_response){.body = whole, .etag = upper}, NULL),
        HS_OK);
    /* A SHA-256-prefix ETag (Rack's, the sandbox's) is a digest too. */
    assert_int_equal(
        answer_download(e, &col, (struct fake_response){.body = whole, .etag = sha_etag}, NULL),
        HS_OK);
    assert_int_equal(
        answer_download(e, &col, (struct fake_response){.body = cut, .etag = sha_etag}, NULL),
        HS_ERR_TRUNCATED);
    /* Weak, multipart and other ETags say nothing about the bytes. */
    const char *unchecked[] = {"W/\"0123456789abcdef0123456789abcdef\"",
                               "\"0123456789abcdef0123456789abcdef-3\"", "\"v17\"",
                               "\"0123456789abcdef0123456789abcdeg\""};
    for (size_t i = 0; i < sizeof unchecked / sizeof unchecked[0]; i++) {
        assert_int_equal(answer_download(e, &col,
                                         (struct fake_response){.body = cut, .etag = unchecked[i]},
                                         NULL),
                         HS_OK);
    }
    hs_buf_free(&col.b);
}

static void test_download_checked_against_content_md5_and_digest(void **state)
{
    struct env *e = *state;
    struct collect col;
    check_open(e, &col);
    struct digests d;
    digests_of(whole, &d);
    char dig[200];
    struct hs_error err = {0};

    assert_int_equal(answer_download(e, &col,
                                     (struct fake_response){.body = cut, .content_md5 = d.md5_b64},
                                     &err),
                     HS_ERR_TRUNCATED);
    assert_non_null(strstr(err.msg, "Content-MD5"));
    assert_int_equal(
        answer_download(e, &col, (struct fake_response){.body = whole, .content_md5 = d.md5_b64},
                        NULL),
        HS_OK);

    snprintf(dig, sizeof dig, "SHA-256=%s", d.sha_b64);
    assert_int_equal(
        answer_download(e, &col, (struct fake_response){.body = cut, .digest = dig}, &err),
        HS_ERR_TRUNCATED);
    assert_non_null(strstr(err.msg, "Digest"));
    assert_int_equal(
        answer_download(e, &col, (struct fake_response){.body = whole, .digest = dig}, NULL),
        HS_OK);

    snprintf(dig, sizeof dig, "unixsum=30637, md5=%s , sha-256=%s", d.md5_b64, d.sha_b64);
    assert_int_equal(
        answer_download(e, &col, (struct fake_response){.body = whole, .digest = dig}, NULL),
        HS_OK);
    assert_int_equal(
        answer_download(e, &col, (struct fake_response){.body = cut, .digest = dig}, NULL),
        HS_ERR_TRUNCATED);
    /* Only algorithms we know are compared. */
    assert_int_equal(answer_download(e, &col,
                                     (struct fake_response){.body = cut, .digest = "sha-512=AAAA"},
                                     NULL),
                     HS_OK);
    hs_buf_free(&col.b);
}

/* Waits for the budget and for a 429 are announced before they happen, to the hook. */
struct waits {
    int n;
    int64_t ms[4];
    char reason[4][16];
};

static void on_wait(void *ctx, const struct hs_client_wait *w)
{
    struct waits *ws = ctx;
    if (ws->n < 4) {
        ws->ms[ws->n] = w->wait_ms;
        snprintf(ws->reason[ws->n], sizeof ws->reason[0], "%s", w->reason);
    }
    ws->n++;
}

static void test_waits_announced(void **state)
{
    struct env *e = *state;
    e->cfg.rate_per_minute = 1;
    client_open(e);
    struct waits ws = {0};
    hs_client_set_wait_hook(e->c, on_wait, &ws);
    fake_transport_answer(&e->ft, 200, job_answer);
    fake_transport_push(&e->ft, (struct fake_response){.status = 429, .retry_after = "7"});
    fake_transport_answer(&e->ft, 200, job_answer);
    assert_int_equal(show(e, NULL), HS_OK); /* no wait */
    assert_int_equal(ws.n, 0);
    /* The budget of 1 a minute: a 60 s wait, told before it starts; then Hover's 429. */
    assert_int_equal(show(e, NULL), HS_OK);
    assert_int_equal(ws.n, 3);
    assert_int_equal(ws.ms[0], 60000);
    assert_string_equal(ws.reason[0], "budget");
    assert_int_equal(ws.ms[1], 7000);
    assert_string_equal(ws.reason[1], "429");
    assert_string_equal(ws.reason[2], "budget"); /* the retry waits for the budget again */
}

static void test_limiter_counts_waits(void **state)
{
    struct env *e = *state;
    e->cfg.rate_per_minute = 2;
    client_open(e);
    for (int i = 0; i < 3; i++)
        fake_transport_answer(&e->ft, 200, job_answer);
    for (int i = 0; i < 3; i++)
        assert_int_equal(show(e, NULL), HS_OK);
    struct hs_client_stats st;
    hs_client_get_stats(e->c, &st);
    assert_int_equal(st.rate_limit_waits, 1);
    assert_int_equal(st.waited_ms, 60000);
    assert_int_equal(e->fc.slept_total, 60000);
}

static void test_shared_limiter(void **state)
{
    struct env *e = *state;
    struct hs_limiter *l = hs_limiter_new(1, 60000, &e->fc.clock);
    e->cfg.limiter = l;
    e->cfg.rate_per_minute = 1000; /* ignored: the shared limiter rules */
    client_open(e);
    struct hs_client *c2 = NULL;
    assert_int_equal(
        hs_client_new(&e->cfg, fake_store_tokens(&e->fs), &e->fc.clock, &e->ft.base, &c2, NULL),
        HS_OK);
    fake_transport_answer(&e->ft, 200, job_answer);
    fake_transport_answer(&e->ft, 200, job_answer);
    struct hs_job *j = NULL;
    assert_int_equal(hs_client_show_job(e->c, 7, &j, NULL), HS_OK);
    hs_job_free(j);
    assert_int_equal(hs_client_show_job(c2, 7, &j, NULL), HS_OK);
    hs_job_free(j);
    assert_int_equal(e->fc.slept_total, 60000);
    hs_client_free(c2);
    hs_limiter_free(l);
}

static void test_config_defaults_and_bad_base(void **state)
{
    struct env *e = *state;
    struct hs_client_config cfg = {0};
    hs_client_config_defaults(&cfg);
    assert_int_equal(cfg.rate_per_minute, 120);
    assert_int_equal(cfg.max_attempts, 5);
    assert_int_equal(cfg.timeout_ms, 60000);
    struct hs_client *c = (struct hs_client *)0x1;
    struct hs_error err = {0};
    cfg.base_url = "hover.to";
    assert_int_equal(
        hs_client_new(&cfg, fake_store_tokens(&e->fs), &e->fc.clock, &e->ft.base, &c, &err),
        HS_ERR_INVALID);
    assert_ptr_equal(c, (struct hs_client *)0x1);
    hs_client_free(NULL);
}

#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_list_query_building),
        T(test_list_minimal_and_invalid),
        T(test_show_job_url_and_user),
        T(test_429_retry_after_honoured),
        T(test_429_retry_after_too_long),
        T(test_429_until_out_of_attempts),
        T(test_503_twice_then_200),
        T(test_5xx_exhausted),
        T(test_network_errors_retried),
        T(test_404_no_retry),
        T(test_422_message_surfaced),
        T(test_403_errors_shape),
        T(test_bad_json_is_parse_error),
        T(test_response_over_cap),
        T(test_redirect_to_other_host_drops_bearer),
        T(test_redirect_same_origin_keeps_bearer),
        T(test_too_many_redirects),
        T(test_full_url_links),
        T(test_download_stream_and_304),
        T(test_download_broken_mid_body),
        T(test_download_checked_against_length),
        T(test_download_checked_against_etag),
        T(test_download_checked_against_content_md5_and_digest),
        T(test_waits_announced),
        T(test_limiter_counts_waits),
        T(test_shared_limiter),
        T(test_config_defaults_and_bad_base),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
