/* test_signature.c: webhook signature verification against vectors computed independently
 * (Python's hmac/hashlib/base64), and every way a delivery can be refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "webhook/signature.h"

#define SECRET "c2VjcmV0LXNlY3JldA=="
#define BODY   "{\"event\":\"job-state-changed-v2\",\"job_id\":15084301}"
#define MD5    "a8nvLG9xhASIr6VHtqEtDQ=="
#define DATE   "Fri, 27 Nov 2026 10:00:00 GMT"
#define NOW    1795773600
#define SIG256 "Rp3TeaVB1GR8SOzT1uxc//e6MymkirE0cCfN8h52pFY="
#define SIG1   "E71yjmL+BkajW/ztU7cD2SCiF24="

static struct hs_webhook_delivery good(void)
{
    struct hs_webhook_delivery d = {
        .content_type = "application/json",
        .content_md5 = MD5,
        .date = DATE,
        .authorization = "APIAuth-HMAC-SHA256 230293:" SIG256,
        .request_uri = "/webhooks/hover",
        .body = BODY,
        .body_len = sizeof BODY - 1,
    };
    return d;
}

static void assert_refused(const struct hs_webhook_delivery *d, const char *why)
{
    struct hs_error err = {0};
    assert_int_equal(hs_webhook_verify(d, SECRET, NOW, HS_WEBHOOK_MAX_SKEW_S, &err),
                     HS_ERR_UNAUTHORIZED);
    if (!strstr(err.msg, why))
        fail_msg("reason '%s' does not mention '%s'", err.msg, why);
}

static void test_vectors(void **state)
{
    (void)state;
    char md5[25], sig[45];
    hs_webhook_content_md5(BODY, sizeof BODY - 1, md5);
    assert_string_equal(md5, MD5);
    hs_webhook_sign(SECRET, false, "application/json", MD5, "/webhooks/hover", DATE, sig);
    assert_string_equal(sig, SIG256);
    hs_webhook_sign(SECRET, true, "application/json", MD5, "/webhooks/hover", DATE, sig);
    assert_string_equal(sig, SIG1);
}

static void test_valid_deliveries_pass(void **state)
{
    (void)state;
    struct hs_webhook_delivery d = good();
    assert_int_equal(hs_webhook_verify(&d, SECRET, NOW, HS_WEBHOOK_MAX_SKEW_S, NULL), HS_OK);
    assert_int_equal(hs_webhook_verify(&d, SECRET, NOW + 899, HS_WEBHOOK_MAX_SKEW_S, NULL), HS_OK);
    d.authorization = "APIAuth 230293:" SIG1;
    assert_int_equal(hs_webhook_verify(&d, SECRET, NOW, HS_WEBHOOK_MAX_SKEW_S, NULL), HS_OK);
    int64_t id = 0;
    bool sha1 = false;
    assert_int_equal(hs_webhook_auth_parse("APIAuth-HMAC-SHA256 230293:x", &id, &sha1, NULL),
                     HS_OK);
    assert_true(id == 230293 && !sha1);
}

static void test_refusals(void **state)
{
    (void)state;
    struct hs_webhook_delivery d = good();
    d.authorization = NULL;
    assert_refused(&d, "unsigned");
    d = good();
    d.authorization = "Bearer abc";
    assert_refused(&d, "APIAuth");
    d = good();
    d.authorization = "APIAuth-HMAC-SHA256 230293:" SIG1;
    assert_refused(&d, "signature does not match");
    d = good();
    d.body = "{\"event\":\"job-state-changed-v2\",\"job_id\":15084302}";
    assert_refused(&d, "Content-MD5");
    d = good();
    d.content_md5 = NULL;
    assert_refused(&d, "Content-MD5");
    d = good();
    d.date = "Fri, 27 Nov 2026 09:44:59 GMT";
    assert_refused(&d, "away from now");
    d = good();
    d.date = "yesterday";
    assert_refused(&d, "Date");
    d = good();
    d.request_uri = "/webhooks/hover?x=1";
    assert_refused(&d, "signature does not match");
    d = good();
    d.content_type = "text/plain";
    assert_refused(&d, "signature does not match");
    struct hs_error err = {0};
    d = good();
    assert_int_equal(hs_webhook_verify(&d, "other-secret", NOW, HS_WEBHOOK_MAX_SKEW_S, &err),
                     HS_ERR_UNAUTHORIZED);
}

static void test_malformed_auth_headers(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "APIAuth-HMAC-SHA256",
        "APIAuth-HMAC-SHA256 :sig",
        "APIAuth-HMAC-SHA256 12:",
        "APIAuth-HMAC-SHA256 abc:sig",
        "APIAuth-HMAC-SHA256 123456789012345678901234:sig",
        "APIAuth 0:sig",
        "APIAuth-HMAC-SHA256 -5:sig",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t id = 0;
        bool sha1;
        assert_int_equal(hs_webhook_auth_parse(bad[i], &id, &sha1, NULL), HS_ERR_PARSE);
    }
}

static void test_http_dates(void **state)
{
    (void)state;
    int64_t t = 0;
    assert_int_equal(hs_http_date_parse("Sun, 06 Nov 1994 08:49:37 GMT", &t), HS_OK);
    assert_true(t == 784111777);
    assert_int_equal(hs_http_date_parse("Sunday, 06-Nov-94 08:49:37 GMT", &t), HS_OK);
    assert_true(t == 784111777);
    assert_int_equal(hs_http_date_parse("Sun Nov  6 08:49:37 1994", &t), HS_OK);
    assert_true(t == 784111777);
    assert_int_equal(hs_http_date_parse("Sun, 06 Nov 1994 08:49:37 UTC", &t), HS_ERR_PARSE);
    assert_int_equal(hs_http_date_parse("Sun, 06 Foo 1994 08:49:37 GMT", &t), HS_ERR_PARSE);
    assert_int_equal(hs_http_date_parse("Sun, 06 Nov 1994 25:49:37 GMT", &t), HS_ERR_PARSE);
    assert_int_equal(hs_http_date_parse("", &t), HS_ERR_PARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),    cmocka_unit_test(test_valid_deliveries_pass),
        cmocka_unit_test(test_refusals),   cmocka_unit_test(test_malformed_auth_headers),
        cmocka_unit_test(test_http_dates),
    };
    return cmocka_run_group_tests_name("webhook-signature", tests, NULL, NULL);
}
