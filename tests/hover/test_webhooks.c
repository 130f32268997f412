/* test_webhooks.c: Hover's webhook API calls (src/hover/webhooks.h) against the scripted fake
 * transport: the requests sent (method, path, body), pagination, what a registration returns,
 * that a registration is not repeated after a failure that may have reached Hover, and that a
 * verification code from a delivery never becomes anything but one path segment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/clock.h"
#include "fake_store.h"
#include "fake_transport.h"
#include "hover/webhooks.h"

#define NOW_S 1700000000LL
#define BASE  "https://hover.test"
#define KEY   "org-1"

static const char hook[] =
    "{\"id\":230293,\"owner_type\":\"Org\",\"owner_id\":463605,\"url\":\"https://svc.example/"
    "webhooks/hover\",\"created_at\":\"2026-11-27T10:00:00.000Z\",\"updated_at\":\"2026-11-27T"
    "10:00:00.000Z\",\"verified_at\":null,\"hmac_secret\":\"c2VjcmV0\",\"last_error\":null,"
    "\"content_type\":\"json\"}";

struct env {
    struct hs_fake_clock fc;
    struct fake_transport ft;
    struct fake_store fs;
    struct hs_client *c;
};

static int env_setup(void **state)
{
    struct env *e = calloc(1, sizeof *e);
    hs_fake_clock_init(&e->fc, NOW_S * 1000);
    fake_transport_init(&e->ft);
    fake_store_init(&e->fs);
    fake_store_put(&e->fs, KEY, "access-token-1", "refresh-1", NOW_S + 7200);
    struct hs_client_config cfg = {.base_url = BASE,
                                   .client_id = "cid",
                                   .client_secret = "csecret",
                                   .credential_key = KEY,
                                   .max_attempts = 3};
    struct hs_error err = {0};
    if (hs_client_new(&cfg, fake_store_tokens(&e->fs), &e->fc.clock, &e->ft.base, &e->c, &err) !=
        HS_OK)
        return -1;
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

static void test_list_reads_every_page(void **state)
{
    struct env *e = *state;
    fake_transport_answer(&e->ft, 200,
                          "{\"results\":[{\"id\":1,\"url\":\"u1\",\"last_error\":\"HTTP 500\"}],"
                          "\"pagination\":{\"current_page\":1,\"next_page\":2,\"total_pages\":2}}");
    fake_transport_answer(&e->ft, 200,
                          "{\"results\":[{\"id\":2,\"verified_at\":\"2026-01-01T00:00:00Z\"}],"
                          "\"pagination\":{\"current_page\":2,\"next_page\":null,"
                          "\"total_pages\":2}}");
    struct hs_hover_webhook *v = NULL;
    size_t n = 0;
    assert_int_equal(hs_webhooks_list(e->c, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 2);
    assert_int_equal(v[0].id, 1);
    assert_string_equal(v[0].last_error, "HTTP 500");
    assert_null(v[0].verified_at);
    assert_string_equal(v[1].verified_at, "2026-01-01T00:00:00Z");
    hs_hover_webhooks_free(v, n);
    assert_int_equal(e->ft.n_reqs, 2);
    assert_string_equal(e->ft.reqs[0].method, "GET");
    assert_string_equal(e->ft.reqs[0].url, BASE "/api/v2/webhooks?page=1&per=100");
    assert_string_equal(e->ft.reqs[1].url, BASE "/api/v2/webhooks?page=2&per=100");
    assert_string_equal(e->ft.reqs[1].bearer, "access-token-1");
}

static void test_register_sends_the_url_and_returns_the_secret(void **state)
{
    struct env *e = *state;
    fake_transport_answer(&e->ft, 201, hook);
    struct hs_hover_webhook w = {0};
    assert_int_equal(hs_webhooks_register(e->c, "https://svc.example/webhooks/hover", &w, NULL),
                     HS_OK);
    assert_int_equal(w.id, 230293);
    assert_string_equal(w.hmac_secret, "c2VjcmV0");
    assert_null(w.verified_at);
    hs_hover_webhook_clear(&w);
    assert_int_equal(e->ft.n_reqs, 1);
    assert_string_equal(e->ft.reqs[0].method, "POST");
    assert_string_equal(e->ft.reqs[0].url, BASE "/api/v2/webhooks");
    assert_string_equal(e->ft.reqs[0].body, "{\"webhook\":{\"url\":\"https://svc.example/webhooks/"
                                            "hover\",\"content_type\":\"json\"}}");
}

/* A 5xx or a broken connection may come after Hover registered it: not sent again (a second
 * registration would deliver every event twice). A 429 is refused before anything happens. */
static void test_register_is_not_repeated_after_an_ambiguous_failure(void **state)
{
    struct env *e = *state;
    struct hs_hover_webhook w = {0};
    fake_transport_answer(&e->ft, 502, NULL);
    assert_int_equal(hs_webhooks_register(e->c, "https://svc.example/w", &w, NULL), HS_ERR_SERVER);
    assert_int_equal(e->ft.n_reqs, 1);
    fake_transport_push(&e->ft, (struct fake_response){.error = HS_ERR_NETWORK});
    assert_int_equal(hs_webhooks_register(e->c, "https://svc.example/w", &w, NULL), HS_ERR_NETWORK);
    assert_int_equal(e->ft.n_reqs, 2);
    fake_transport_push(&e->ft, (struct fake_response){.status = 429, .retry_after = "1"});
    fake_transport_answer(&e->ft, 201, hook);
    assert_int_equal(hs_webhooks_register(e->c, "https://svc.example/w", &w, NULL), HS_OK);
    assert_int_equal(e->ft.n_reqs, 4);
    hs_hover_webhook_clear(&w);
    /* An answer without the secret is useless: an error, not a webhook without one. */
    fake_transport_answer(&e->ft, 201, "{\"id\":5}");
    assert_int_equal(hs_webhooks_register(e->c, "https://svc.example/w", &w, NULL), HS_ERR_PARSE);
}

static void test_verify_delete_and_new_code(void **state)
{
    struct env *e = *state;
    fake_transport_answer(&e->ft, 200,
                          "{\"id\":230293,\"verified_at\":\"2026-11-27T10:00:01.000Z\"}");
    struct hs_hover_webhook w = {0};
    assert_int_equal(hs_webhooks_verify(e->c, "5f0c6c36-8d1e-4d8c-9a43-0c8a5f1e2b77", &w, NULL),
                     HS_OK);
    assert_string_equal(w.verified_at, "2026-11-27T10:00:01.000Z");
    hs_hover_webhook_clear(&w);
    assert_string_equal(e->ft.reqs[0].method, "PUT");
    assert_string_equal(e->ft.reqs[0].url,
                        BASE "/api/v2/webhooks/5f0c6c36-8d1e-4d8c-9a43-0c8a5f1e2b77/verify");
    fake_transport_answer(&e->ft, 204, NULL);
    assert_int_equal(hs_webhooks_delete(e->c, 230293, NULL), HS_OK);
    assert_string_equal(e->ft.reqs[1].method, "DELETE");
    assert_string_equal(e->ft.reqs[1].url, BASE "/api/v2/webhooks/230293");
    fake_transport_answer(&e->ft, 200, hook);
    assert_int_equal(hs_webhooks_request_verification(e->c, 230293, NULL), HS_OK);
    assert_string_equal(e->ft.reqs[2].method, "POST");
    assert_string_equal(e->ft.reqs[2].url, BASE "/api/v2/webhooks/230293/request_verification");
    fake_transport_answer(&e->ft, 404, "{\"error\":\"Not found\"}");
    assert_int_equal(hs_webhooks_delete(e->c, 230293, NULL), HS_ERR_NOT_FOUND);
}

/* The code comes from a delivery's body: it must stay one path segment. */
static void test_verify_refuses_codes_that_are_not_plain_tokens(void **state)
{
    struct env *e = *state;
    static const char *const bad[] = {"",       "../../jobs/1", "a/b",       "a?x=1",    "a b",
                                      "%2e%2e", "a#frag",       "a\r\nX: y", "\xc3\xa9", NULL};
    for (size_t i = 0; bad[i]; i++)
        assert_int_equal(hs_webhooks_verify(e->c, bad[i], NULL, NULL), HS_ERR_INVALID);
    char longcode[200];
    memset(longcode, 'a', sizeof longcode - 1);
    longcode[sizeof longcode - 1] = '\0';
    assert_int_equal(hs_webhooks_verify(e->c, longcode, NULL, NULL), HS_ERR_INVALID);
    assert_int_equal(hs_webhooks_verify(e->c, NULL, NULL, NULL), HS_ERR_INVALID);
    assert_int_equal(e->ft.n_reqs, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list_reads_every_page, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_register_sends_the_url_and_returns_the_secret,
                                        env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_register_is_not_repeated_after_an_ambiguous_failure,
                                        env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_verify_delete_and_new_code, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_verify_refuses_codes_that_are_not_plain_tokens,
                                        env_setup, env_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
