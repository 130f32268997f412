/* test_signature.c: webhook signature verification against vectors computed independently of
 * this code, for every form an api_auth signer of any release produces, and every way a delivery
 * can be refused.
 *
 * How the vectors were made: OpenSSL's command line, following the gem's algorithm
 * (hover-api.md 4.2), with SECRET, BODY, DATE and URI below:
 *   MD5=$(printf '%s' "$BODY" | openssl dgst -md5 -binary | base64 -w0)
 *   SHA=$(printf '%s' "$BODY" | openssl dgst -sha256 -binary | base64 -w0)
 *   canonical="POST,application/json,$SHA,$URI,$DATE"     (2.0+: the method first)
 *   canonical="application/json,$MD5,$URI,$DATE"          (1.x: no method)
 *   printf '%s' "$canonical" | openssl dgst -<digest> -hmac "$SECRET" -binary | base64 -w0
 * The two 1.x vectors had been computed before with Python's hmac/hashlib/base64 and agree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "webhook/signature.h"

#define SECRET "c2VjcmV0LXNlY3JldA=="
#define BODY   "{\"event\":\"job-state-changed-v2\",\"job_id\":15084301}"
#define MD5    "a8nvLG9xhASIr6VHtqEtDQ=="
#define SHA256 "WJI/4fNpHtdy6B1Sasv3YcZIMP+cVukZsCkaReHU3vY="
#define DATE   "Fri, 27 Nov 2026 10:00:00 GMT"
#define URI    "/webhooks/hover"
#define NOW    1795773600
#define SIG512                                                                                     \
    "6m5dLEbW5Ytqzi41kWuzfq9J/2ijSEE1X73Pn3KSsyJTGmIpRlvPnAthXCx36GYEqno8gqUxeJFxhFuN6C5xcw=="

/* One signer's form: the header prefix, whether the method leads the canonical string, which
 * digest header it sends, and the signature it computes (openssl, above). */
struct vector {
    const char *name;
    const char *prefix;
    enum hs_apiauth_digest digest;
    bool method;
    bool sha256_header; /* X-Authorization-Content-SHA256, else Content-MD5 */
    const char *sig;
};

static const struct vector vectors[] = {
    {"1.x APIAuth (HMAC-SHA1)", "APIAuth", HS_APIAUTH_SHA1, false, false,
     "E71yjmL+BkajW/ztU7cD2SCiF24="},
    {"1.x APIAuth-HMAC-SHA256 (Hover's docs)", "APIAuth-HMAC-SHA256", HS_APIAUTH_SHA256, false,
     false, "Rp3TeaVB1GR8SOzT1uxc//e6MymkirE0cCfN8h52pFY="},
    {"2.4 method first, Content-MD5, APIAuth", "APIAuth", HS_APIAUTH_SHA1, true, false,
     "3Yd93BzZDDL0G1yv6fu0A0Xh+Us="},
    {"2.4 method first, Content-MD5, HMAC-SHA256", "APIAuth-HMAC-SHA256", HS_APIAUTH_SHA256, true,
     false, "EYWb41/JWTwC7ma1xlMPa3Q8y3BSthvSQDazznphZA4="},
    {"2.5 method first, SHA-256 header, HMAC-SHA256", "APIAuth-HMAC-SHA256", HS_APIAUTH_SHA256,
     true, true, "i/aTpZjBAJidl4XqaSTPEtjqUzqfYxmexnSJUzo492w="},
    {"2.5 method first, SHA-256 header, HMAC-SHA512", "APIAuth-HMAC-SHA512", HS_APIAUTH_SHA512,
     true, true,
     "6m5dLEbW5Ytqzi41kWuzfq9J/2ijSEE1X73Pn3KSsyJTGmIpRlvPnAthXCx36GYEqno8gqUxeJFxhFuN6C5xcw=="},
    {"2.5 HMAC-MD5", "APIAuth-HMAC-MD5", HS_APIAUTH_MD5, true, true, "bpFdqINc40FaCQv9m9gjVw=="},
    {"2.5 HMAC-SHA (read as SHA-1)", "APIAuth-HMAC-SHA", HS_APIAUTH_SHA1, true, true,
     "a0IZulQ9kOwqCKLxlXliGIU+fKg="},
    {"2.5 HMAC-SHA1", "APIAuth-HMAC-SHA1", HS_APIAUTH_SHA1, true, true,
     "a0IZulQ9kOwqCKLxlXliGIU+fKg="},
    {"2.5 HMAC-SHA224", "APIAuth-HMAC-SHA224", HS_APIAUTH_SHA224, true, true,
     "KDAs2nMx8qguvQrd0S1AMKEJVgOIqwTw8CawMQ=="},
    {"2.5 HMAC-SHA384", "APIAuth-HMAC-SHA384", HS_APIAUTH_SHA384, true, true,
     "oO4Ua/bE9bwA/3Dxi7pICvCK6KlU36Grg0VTSp0BUdRicz0oIRS5+Or0184x3gJl"},
    {"no method, SHA-256 header, HMAC-SHA256", "APIAuth-HMAC-SHA256", HS_APIAUTH_SHA256, false,
     true, "DTzCm7wgW06mMfv9/4vwqu3Tofze6rrWdPAowEsJQiM="},
};
#define N_VECTORS (sizeof vectors / sizeof vectors[0])

/* A delivery signed as v says; auth holds its Authorization header. */
static struct hs_webhook_delivery delivery(const struct vector *v, const char *access_id,
                                           char auth[200])
{
    snprintf(auth, 200, "%s %s:%s", v->prefix, access_id, v->sig);
    struct hs_webhook_delivery d = {
        .method = "POST",
        .content_type = "application/json",
        .content_md5 = v->sha256_header ? NULL : MD5,
        .content_sha256 = v->sha256_header ? SHA256 : NULL,
        .date = DATE,
        .authorization = auth,
        .request_uri = URI,
        .body = BODY,
        .body_len = sizeof BODY - 1,
    };
    return d;
}

static void assert_refused(const struct hs_webhook_delivery *d, int64_t now, const char *why,
                           const char *name)
{
    struct hs_error err = {0};
    int rc = hs_webhook_verify(d, SECRET, now, HS_WEBHOOK_MAX_SKEW_S, &err);
    if (rc != HS_ERR_UNAUTHORIZED)
        fail_msg("%s: accepted (%d) where it must be refused for '%s'", name, rc, why);
    if (!strstr(err.msg, why))
        fail_msg("%s: reason '%s' does not mention '%s'", name, err.msg, why);
}

/* Our signer computes every vector, and the digests of the body are the expected ones. */
static void test_vectors(void **state)
{
    (void)state;
    char md5[25], sha[45];
    hs_webhook_content_md5(BODY, sizeof BODY - 1, md5);
    assert_string_equal(md5, MD5);
    hs_webhook_content_sha256(BODY, sizeof BODY - 1, sha);
    assert_string_equal(sha, SHA256);
    for (size_t i = 0; i < N_VECTORS; i++) {
        const struct vector *v = &vectors[i];
        char canonical[512], sig[HS_APIAUTH_SIG_MAX + 1];
        assert_int_equal(hs_webhook_canonical(v->method ? "POST" : NULL, "application/json",
                                              v->sha256_header ? SHA256 : MD5, URI, DATE, canonical,
                                              sizeof canonical),
                         HS_OK);
        hs_webhook_sign(v->digest, SECRET, canonical, sig);
        if (strcmp(sig, v->sig) != 0)
            fail_msg("%s: signed %s, the vector is %s", v->name, sig, v->name);
    }
}

/* Every form verifies, whatever the access id (a number, or any string without ':'), and each
 * is refused when forged, stale, or with the body changed. */
static void test_every_form_accepted_and_forgeries_refused(void **state)
{
    (void)state;
    static const char *const ids[] = {"230293", "hover", "org 463605/ä"};
    for (size_t i = 0; i < N_VECTORS; i++) {
        const struct vector *v = &vectors[i];
        char auth[200];
        for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
            struct hs_webhook_delivery d = delivery(v, ids[k], auth);
            struct hs_error err = {0};
            if (hs_webhook_verify(&d, SECRET, NOW, HS_WEBHOOK_MAX_SKEW_S, &err) != HS_OK)
                fail_msg("%s (access id %s) refused: %s", v->name, ids[k], err.msg);
        }
        struct hs_webhook_delivery d = delivery(v, "230293", auth);
        assert_int_equal(hs_webhook_verify(&d, SECRET, NOW + 900, HS_WEBHOOK_MAX_SKEW_S, NULL),
                         HS_OK);
        /* Forged: another secret; one character of the signature changed. */
        struct hs_error err = {0};
        if (hs_webhook_verify(&d, "another-secret", NOW, HS_WEBHOOK_MAX_SKEW_S, &err) !=
            HS_ERR_UNAUTHORIZED)
            fail_msg("%s: verified under another secret", v->name);
        auth[strlen(v->prefix) + 8] ^= 1;
        assert_refused(&d, NOW, "", v->name);
        d = delivery(v, "230293", auth);
        /* Stale and future. */
        assert_refused(&d, NOW + 901, "away from now", v->name);
        assert_refused(&d, NOW - 901, "away from now", v->name);
        /* The body changed after signing (its digest header kept). */
        d.body = "{\"event\":\"job-state-changed-v2\",\"job_id\":15084302}";
        assert_refused(&d, NOW, "body does not match", v->name);
        /* The body and its digest both changed: the signature no longer covers them. */
        d = delivery(v, "230293", auth);
        static const char other[] = "{\"event\":\"job-state-changed-v2\",\"job_id\":1}";
        char md5[25], sha[45];
        hs_webhook_content_md5(other, sizeof other - 1, md5);
        hs_webhook_content_sha256(other, sizeof other - 1, sha);
        d.body = other;
        d.body_len = sizeof other - 1;
        d.content_md5 = d.content_md5 ? md5 : NULL;
        d.content_sha256 = d.content_sha256 ? sha : NULL;
        assert_refused(&d, NOW, "signature does not match", v->name);
        /* Signed for another URI, another content type, another method. */
        d = delivery(v, "230293", auth);
        d.request_uri = "/webhooks/hover?x=1";
        assert_refused(&d, NOW, "signature does not match", v->name);
        d = delivery(v, "230293", auth);
        d.content_type = "text/plain";
        assert_refused(&d, NOW, "signature does not match", v->name);
        if (v->method) {
            d = delivery(v, "230293", auth);
            d.method = "PUT";
            assert_refused(&d, NOW, "signature does not match", v->name);
        }
    }
}

/* Prefixes are the gem's, case-sensitive; a signature under another prefix is refused. */
static void test_prefixes_are_exact(void **state)
{
    (void)state;
    const struct vector *v = &vectors[4]; /* 2.5, HMAC-SHA256 */
    static const char *const wrong[] = {"apiauth-hmac-sha256",
                                        "APIAuth-HMAC-sha256",
                                        "APIAuth-HMAC-SHA-256",
                                        "APIAuth-HMAC-SHA3",
                                        "APIAuth-HMAC-SHA384",
                                        "APIAuth",
                                        "Bearer"};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        char auth[200];
        struct hs_webhook_delivery d = delivery(v, "230293", auth);
        snprintf(auth, sizeof auth, "%s 230293:%s", wrong[i], v->sig);
        assert_refused(&d, NOW, "", wrong[i]);
    }
}

/* Both digest headers: both must match the body; the signature may use either. */
static void test_both_digest_headers(void **state)
{
    (void)state;
    char auth[200];
    struct hs_webhook_delivery d = delivery(&vectors[4], "230293", auth); /* 2.5: SHA-256 */
    d.content_md5 = MD5;
    assert_int_equal(hs_webhook_verify(&d, SECRET, NOW, HS_WEBHOOK_MAX_SKEW_S, NULL), HS_OK);
    d = delivery(&vectors[3], "230293", auth); /* 2.4: MD5 */
    d.content_sha256 = SHA256;
    assert_int_equal(hs_webhook_verify(&d, SECRET, NOW, HS_WEBHOOK_MAX_SKEW_S, NULL), HS_OK);
    d.content_sha256 = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="; /* the empty body's */
    assert_refused(&d, NOW, "X-Authorization-Content-SHA256", "both, SHA-256 wrong");
    d = delivery(&vectors[4], "230293", auth);
    d.content_md5 = "1B2M2Y8AsgTpgAmY7PhCfg=="; /* the empty body's */
    assert_refused(&d, NOW, "Content-MD5", "both, MD5 wrong");
    d = delivery(&vectors[4], "230293", auth);
    d.content_sha256 = NULL;
    assert_refused(&d, NOW, "no Content-MD5 or X-Authorization-Content-SHA256", "no digest");
    d = delivery(&vectors[4], "230293", auth);
    d.date = NULL;
    assert_refused(&d, NOW, "no Date", "no Date");
    d.date = "yesterday";
    assert_refused(&d, NOW, "Date", "bad Date");
    d.authorization = NULL;
    assert_refused(&d, NOW, "unsigned", "unsigned");
}

static void test_malformed_auth_headers(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "APIAuth-HMAC-SHA256",
        "APIAuth-HMAC-SHA256 :i/aTpZjBAJidl4XqaSTPEtjqUzqfYxmexnSJUzo492w=",
        "APIAuth-HMAC-SHA256 12:",
        "APIAuth-HMAC-SHA256 12:sig",
        /* not strict base64: wrong length for SHA-256, bad padding, another alphabet */
        "APIAuth-HMAC-SHA256 12:E71yjmL+BkajW/ztU7cD2SCiF24=",
        "APIAuth-HMAC-SHA256 12:i/aTpZjBAJidl4XqaSTPEtjqUzqfYxmexnSJUzo492w",
        "APIAuth-HMAC-SHA256 12:i/aTpZjBAJidl4XqaSTPEtjqUzqfYxmexnSJUzo49==",
        "APIAuth-HMAC-SHA256 12:i_aTpZjBAJidl4XqaSTPEtjqUzqfYxmexnSJUzo492w=",
        "APIAuth-HMAC-SHA256 12:i/aTpZjBAJidl4XqaSTPEtjqUzqfYxmexnSJUzo492w= ",
        "APIAuth 12:E71yjmL+BkajW/ztU7cD2SCiF24=\n",
        "APIAuth 1\t2:E71yjmL+BkajW/ztU7cD2SCiF24=",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct hs_apiauth a;
        if (hs_webhook_auth_parse(bad[i], &a, NULL) != HS_ERR_PARSE)
            fail_msg("accepted as an Authorization header: '%s'", bad[i]);
    }
    char longid[300];
    snprintf(longid, sizeof longid,
             "APIAuth %0*d:E71yjmL+BkajW/ztU7cD2SCiF24=", HS_APIAUTH_ACCESS_ID_MAX + 1, 7);
    struct hs_apiauth a;
    assert_int_equal(hs_webhook_auth_parse(longid, &a, NULL), HS_ERR_PARSE);
    /* An access id is any string without ':'; the signature keeps its '='. */
    assert_int_equal(hs_webhook_auth_parse("APIAuth-HMAC-SHA512 hover org 7:" SIG512, &a, NULL),
                     HS_OK);
    assert_string_equal(a.access_id, "hover org 7");
    assert_int_equal(a.digest, HS_APIAUTH_SHA512);
    assert_string_equal(a.signature, SIG512);
}

/* The URI a signer takes from a URL (the gem's parse_uri). */
static void test_uri_of_url(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(hs_webhook_uri_of_url("https://crm.example/hs/webhooks/hover", out, 64), 0);
    assert_string_equal(out, "/hs/webhooks/hover");
    assert_int_equal(hs_webhook_uri_of_url("http://127.0.0.1:8080/webhooks/hover?a=1", out, 64), 0);
    assert_string_equal(out, "/webhooks/hover?a=1");
    assert_int_equal(hs_webhook_uri_of_url("https://crm.example", out, 64), 0);
    assert_string_equal(out, "/");
    assert_int_equal(hs_webhook_uri_of_url("https://crm.example?x", out, 64), 0);
    assert_string_equal(out, "?x");
    assert_int_equal(hs_webhook_uri_of_url("/already/a/path", out, 64), 0);
    assert_string_equal(out, "/already/a/path");
    assert_int_equal(hs_webhook_uri_of_url("https://crm.example/a-long-path", out, 8),
                     HS_ERR_TOOBIG);
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
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_every_form_accepted_and_forgeries_refused),
        cmocka_unit_test(test_prefixes_are_exact),
        cmocka_unit_test(test_both_digest_headers),
        cmocka_unit_test(test_malformed_auth_headers),
        cmocka_unit_test(test_uri_of_url),
        cmocka_unit_test(test_http_dates),
    };
    return cmocka_run_group_tests_name("webhook-signature", tests, NULL, NULL);
}
