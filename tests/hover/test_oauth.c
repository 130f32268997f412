/* test_oauth.c: token handling (src/hover/oauth.c) through the client: refresh before expiry,
 * 401 -> refresh -> retry with the rotated pair stored first, invalid_grant, and a rotation done
 * by another process, with the fake transport, the fake store and the fake clock. */
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
#include "core/log.h"
#include "fake_store.h"
#include "fake_transport.h"
#include "hover/client.h"
#include "hover/oauth.h"
#include "store/webhooks.h"

#define NOW_S 1700000000LL
#define BASE  "https://hover.test"
#define KEY   "org-463605"

/* Distinctive token values, so that a leak into the log is easy to spot. */
#define A1     "access-one-3f9a1c"
#define R1     "refresh-one-77b2e0"
#define A2     "access-two-c0ffee"
#define R2     "refresh-two-decade"
#define SECRET "client-secret-5ee5"

static const char token_answer[] =
    "{\"access_token\":\"" A2 "\",\"token_type\":\"Bearer\",\"expires_in\":7200,"
    "\"refresh_token\":\"" R2 "\",\"scope\":\"all\",\"created_at\":1700000000,"
    "\"owner_id\":463605,\"owner_type\":\"orgs\"}";
static const char job_answer[] = "{\"id\":15084303,\"name\":\"Main House\"}";

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
    e->cfg = (struct hs_client_config){.base_url = BASE,
                                       .client_id = "client-id-1",
                                       .client_secret = SECRET,
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
    int rc = hs_client_show_job(e->c, 15084303, &j, err);
    if (rc == HS_OK)
        assert_int_equal(j->id, 15084303);
    hs_job_free(j);
    return rc;
}

static void assert_token_request(const struct fake_request *r, const char *grant,
                                 const char *secret_field, const char *secret)
{
    assert_string_equal(r->method, "POST");
    assert_string_equal(r->url, BASE "/oauth/token");
    assert_null(r->bearer);
    json_error_t je;
    json_t *b = json_loads(r->body, 0, &je);
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(b, "grant_type")), grant);
    assert_string_equal(json_string_value(json_object_get(b, secret_field)), secret);
    assert_string_equal(json_string_value(json_object_get(b, "client_id")), "client-id-1");
    assert_string_equal(json_string_value(json_object_get(b, "client_secret")), SECRET);
    json_decref(b);
}

static void test_refresh_before_expiry(void **state)
{
    struct env *e = *state;
    fake_store_put(&e->fs, KEY, A1, R1, NOW_S + 100); /* inside the 300 s skew */
    client_open(e);
    fake_transport_answer(&e->ft, 200, token_answer);
    fake_transport_answer(&e->ft, 200, job_answer);
    struct hs_error err = {0};
    assert_int_equal(show(e, &err), HS_OK);
    assert_int_equal(e->ft.n_reqs, 2);
    assert_token_request(&e->ft.reqs[0], "refresh_token", "refresh_token", R1);
    assert_string_equal(e->ft.reqs[1].bearer, A2);
    const struct hs_token *t = fake_store_get(&e->fs, KEY);
    assert_string_equal(t->access_token, A2);
    assert_string_equal(t->refresh_token, R2);
    assert_int_equal(t->expires_at, NOW_S + 7200);
    assert_int_equal(t->owner_id, 463605);
    assert_int_equal(e->fs.claims, 1);
    assert_int_equal(e->fs.finishes, 1);
    assert_int_equal(e->fs.protocol_errors, 0);
    struct hs_client_stats st;
    hs_client_get_stats(e->c, &st);
    assert_int_equal(st.refreshes, 1);
    assert_int_equal(st.requests, 2);

    /* The fresh token is not refreshed again. */
    fake_transport_answer(&e->ft, 200, job_answer);
    assert_int_equal(show(e, &err), HS_OK);
    assert_int_equal(e->ft.n_reqs, 3);
    assert_string_equal(e->ft.reqs[2].bearer, A2);
}

static void test_no_refresh_when_valid(void **state)
{
    struct env *e = *state;
    fake_store_put(&e->fs, KEY, A1, R1, NOW_S + 301);
    client_open(e);
    fake_transport_answer(&e->ft, 200, job_answer);
    assert_int_equal(show(e, NULL), HS_OK);
    assert_int_equal(e->ft.n_reqs, 1);
    assert_string_equal(e->ft.reqs[0].bearer, A1);
    assert_int_equal(e->fs.claims, 0);
}

struct persist_check {
    struct fake_store *fs;
    size_t at; /* request index to check at */
    bool seen;
    bool stored_first;
    bool unlocked;
};

static void check_persisted(void *ctx, struct fake_transport *ft, const struct fake_request *r)
{
    struct persist_check *pc = ctx;
    if (ft->n_reqs - 1 != pc->at)
        return;
    pc->seen = true;
    const struct hs_token *t = fake_store_get(pc->fs, KEY);
    pc->stored_first = t && strcmp(t->access_token, A2) == 0 && strcmp(t->refresh_token, R2) == 0 &&
                       r->bearer && strcmp(r->bearer, A2) == 0;
    pc->unlocked = !pc->fs->held;
}

static void test_401_refresh_retry(void **state)
{
    struct env *e = *state;
    fake_store_put(&e->fs, KEY, A1, R1, 0); /* expiry unknown: used until a 401 */
    client_open(e);
    struct persist_check pc = {.fs = &e->fs, .at = 2};
    e->ft.on_request = check_persisted;
    e->ft.on_request_ctx = &pc;
    fake_transport_answer(&e->ft, 401, "{\"error\":\"token expired\"}");
    fake_transport_answer(&e->ft, 200, token_answer);
    fake_transport_answer(&e->ft, 200, job_answer);
    struct hs_error err = {0};
    assert_int_equal(show(e, &err), HS_OK);
    assert_int_equal(e->ft.n_reqs, 3);
    assert_string_equal(e->ft.reqs[0].bearer, A1);
    assert_token_request(&e->ft.reqs[1], "refresh_token", "refresh_token", R1);
    assert_string_equal(e->ft.reqs[2].url, e->ft.reqs[0].url);
    /* The retried request went out only once the rotated pair was stored and unlocked. */
    assert_true(pc.seen);
    assert_true(pc.stored_first);
    assert_true(pc.unlocked);
    assert_int_equal(e->fc.sleeps, 0); /* a 401 is not backed off */
    struct hs_client_stats st;
    hs_client_get_stats(e->c, &st);
    assert_int_equal(st.refreshes, 1);
    assert_int_equal(st.retries, 0);
}

static void test_second_401_unauthorized(void **state)
{
    struct env *e = *state;
    fake_store_put(&e->fs, KEY, A1, R1, 0);
    client_open(e);
    fake_transport_answer(&e->ft, 401, NULL);
    fake_transport_answer(&e->ft, 200, token_answer);
    fake_transport_answer(&e->ft, 401, "{\"error\":\"Not authorized\"}");
    struct hs_error err = {0};
    assert_int_equal(show(e, &err), HS_ERR_UNAUTHORIZED);
    assert_int_equal(e->ft.n_reqs, 3); /* one refresh, one retry, nothing more */
    assert_int_equal(err.http_status, 401);
    assert_non_null(strstr(err.msg, "Not authorized"));
    assert_int_equal(e->fs.claims, 1);
}

static void test_invalid_grant(void **state)
{
    struct env *e = *state;
    fake_store_put(&e->fs, KEY, A1, R1, 0);
    client_open(e);
    fake_transport_answer(&e->ft, 401, NULL);
    fake_transport_answer(&e->ft, 400,
                          "{\"error\":\"invalid_grant\",\"error_description\":\"The provided "
                          "authorization grant is invalid, expired or revoked\"}");
    struct hs_error err = {0};
    assert_int_equal(show(e, &err), HS_ERR_INVALID_GRANT);
    assert_int_equal(e->ft.n_reqs, 2);
    assert_non_null(strstr(err.msg, "reconnect"));
    assert_non_null(strstr(err.msg, "revoked"));
    /* Nothing stored, the lease released, and the refusal recorded for this generation of the
     * pair (status and the API say reconnect_required). */
    assert_string_equal(fake_store_get(&e->fs, KEY)->access_token, A1);
    assert_int_equal(e->fs.saves, 0);
    assert_int_equal(e->fs.claims, 1);
    assert_int_equal(e->fs.finishes, 1);
    assert_false(e->fs.held);
    assert_int_equal(e->fs.rejections, 1);
    assert_string_equal(e->fs.rejected_key, KEY);
    assert_int_equal(e->fs.rejected_generation, fake_store_get(&e->fs, KEY)->generation);
    assert_int_equal(e->fs.protocol_errors, 0);
}

static void test_concurrent_rotation_on_401(void **state)
{
    struct env *e = *state;
    fake_store_put(&e->fs, KEY, A1, R1, 0);
    client_open(e);
    /* Another process holds the refresh lease and rotates the pair while this one waits. */
    fake_store_rotate_elsewhere(&e->fs, A2, R2, NOW_S + 7200);
    fake_transport_answer(&e->ft, 401, NULL);
    fake_transport_answer(&e->ft, 200, job_answer);
    struct hs_error err = {0};
    assert_int_equal(show(e, &err), HS_OK);
    assert_int_equal(e->ft.n_reqs, 2); /* no POST /oauth/token */
    assert_string_equal(e->ft.reqs[1].method, "GET");
    assert_string_equal(e->ft.reqs[1].bearer, A2);
    assert_int_equal(e->fs.busy_answers, 1); /* it waited ... */
    assert_int_equal(e->fs.claims, 2);       /* ... and claimed again, reading the new pair */
    assert_true(e->fc.sleeps >= 1);
    assert_int_equal(e->fs.saves, 0);
    assert_int_equal(e->fs.finishes, 1);
    assert_int_equal(e->fs.protocol_errors, 0);
    struct hs_client_stats st;
    hs_client_get_stats(e->c, &st);
    assert_int_equal(st.refreshes, 0);
}

/* Clones of one client (the service's threads of one connection) share the pair: a clone whose
 * request was refused with the old token while another clone refreshed uses the new pair,
 * without a second refresh (that would spend the rotated refresh token twice). */
struct clone_race {
    struct env *e;
    struct hs_client *other;
    bool ran;
};

static void run_other_clone(void *ctx, struct fake_transport *ft, const struct fake_request *r)
{
    (void)ft;
    struct clone_race *cr = ctx;
    if (cr->ran || !r->bearer || strcmp(r->bearer, A1) != 0)
        return;
    cr->ran = true; /* the other clone's whole request, refresh included, happens now */
    struct hs_job *j = NULL;
    assert_int_equal(hs_client_show_job(cr->other, 15084303, &j, NULL), HS_OK);
    hs_job_free(j);
}

static void test_clones_share_one_refresh(void **state)
{
    struct env *e = *state;
    fake_store_put(&e->fs, KEY, A1, R1, 0);
    client_open(e);
    struct hs_client *k = NULL;
    assert_int_equal(hs_client_clone(e->c, &k), HS_OK);
    assert_string_equal(hs_client_credential_key(k), KEY);
    struct clone_race cr = {.e = e, .other = k};
    e->ft.on_request = run_other_clone;
    e->ft.on_request_ctx = &cr;
    fake_transport_answer(&e->ft, 401, NULL);         /* the clone's A1 */
    fake_transport_answer(&e->ft, 200, token_answer); /* its refresh */
    fake_transport_answer(&e->ft, 200, job_answer);   /* its retry with A2 */
    fake_transport_answer(&e->ft, 401, NULL);         /* this client's A1, sent before that */
    fake_transport_answer(&e->ft, 200, job_answer);   /* retried with A2, no refresh */
    struct hs_error err = {0};
    assert_int_equal(show(e, &err), HS_OK);
    assert_true(cr.ran);
    int token_requests = 0;
    for (size_t i = 0; i < e->ft.n_reqs; i++)
        token_requests += strcmp(e->ft.reqs[i].url, BASE "/oauth/token") == 0;
    assert_int_equal(token_requests, 1);
    assert_string_equal(e->ft.reqs[e->ft.n_reqs - 1].bearer, A2);
    struct hs_client_stats mine, theirs;
    hs_client_get_stats(e->c, &mine);
    hs_client_get_stats(k, &theirs);
    assert_int_equal(mine.refreshes, 0); /* counters are each clone's own */
    assert_int_equal(theirs.refreshes, 1);
    assert_int_equal(mine.requests, 2);
    hs_client_free(k);
}

static void test_concurrent_rotation_before_expiry(void **state)
{
    struct env *e = *state;
    fake_store_put(&e->fs, KEY, A1, R1, NOW_S + 10);
    client_open(e);
    fake_store_rotate_elsewhere(&e->fs, A2, R2, NOW_S + 7200);
    fake_transport_answer(&e->ft, 200, job_answer);
    assert_int_equal(show(e, NULL), HS_OK);
    assert_int_equal(e->ft.n_reqs, 1);
    assert_string_equal(e->ft.reqs[0].bearer, A2);
}

static void test_no_client_credentials(void **state)
{
    struct env *e = *state;
    e->cfg.client_secret = "";
    fake_store_put(&e->fs, KEY, A1, R1, 0);
    client_open(e);
    fake_transport_answer(&e->ft, 401, NULL);
    struct hs_error err = {0};
    assert_int_equal(show(e, &err), HS_ERR_NO_CREDENTIALS);
    assert_int_equal(e->ft.n_reqs, 1);
    assert_non_null(strstr(err.msg, "client id and secret"));
}

static void test_initial_tokens_seeded(void **state)
{
    struct env *e = *state;
    e->cfg.initial_access_token = A1;
    e->cfg.initial_refresh_token = R1;
    client_open(e);
    const struct hs_token *t = fake_store_get(&e->fs, KEY);
    assert_non_null(t);
    assert_string_equal(t->access_token, A1);
    assert_string_equal(t->refresh_token, R1);
    assert_int_equal(t->expires_at, 0);
    fake_transport_answer(&e->ft, 200, job_answer);
    assert_int_equal(show(e, NULL), HS_OK);
    assert_string_equal(e->ft.reqs[0].bearer, A1);
    assert_int_equal(e->ft.n_reqs, 1);
}

static void test_stored_pair_wins_over_initial(void **state)
{
    struct env *e = *state;
    fake_store_put(&e->fs, KEY, A2, R2, NOW_S + 7200);
    e->cfg.initial_access_token = A1;
    e->cfg.initial_refresh_token = R1;
    client_open(e);
    assert_int_equal(e->fs.saves, 0);
    fake_transport_answer(&e->ft, 200, job_answer);
    assert_int_equal(show(e, NULL), HS_OK);
    assert_string_equal(e->ft.reqs[0].bearer, A2);
}

static void test_no_token_at_all(void **state)
{
    struct env *e = *state;
    client_open(e);
    struct hs_error err = {0};
    assert_int_equal(show(e, &err), HS_ERR_NO_CREDENTIALS);
    assert_int_equal(e->ft.n_reqs, 0);
    /* Connected later (by another process): the next request finds the pair. */
    fake_store_put(&e->fs, KEY, A2, R2, NOW_S + 7200);
    fake_transport_answer(&e->ft, 200, job_answer);
    assert_int_equal(show(e, &err), HS_OK);
    assert_string_equal(e->ft.reqs[0].bearer, A2);
}

static void test_unstored_pair_not_used(void **state)
{
    struct env *e = *state;
    fake_store_put(&e->fs, KEY, A1, R1, 0);
    e->fs.fail_finish = HS_ERR_DB;
    client_open(e);
    fake_transport_answer(&e->ft, 401, NULL);
    fake_transport_answer(&e->ft, 200, token_answer);
    struct hs_error err = {0};
    assert_int_equal(show(e, &err), HS_ERR_DB);
    assert_int_equal(e->ft.n_reqs, 2); /* A2 never went out */
}

static void test_token_endpoint_retries_5xx(void **state)
{
    struct env *e = *state;
    fake_store_put(&e->fs, KEY, A1, R1, NOW_S + 5);
    client_open(e);
    fake_transport_answer(&e->ft, 503, "busy");
    fake_transport_answer(&e->ft, 200, token_answer);
    fake_transport_answer(&e->ft, 200, job_answer);
    assert_int_equal(show(e, NULL), HS_OK);
    assert_int_equal(e->ft.n_reqs, 3);
    assert_int_equal(e->fc.sleeps, 1);
    assert_string_equal(e->ft.reqs[2].bearer, A2);
    /* The lease kept before each attempt and before the wait between them. */
    assert_int_equal(e->fs.renews, 3);
    assert_int_equal(e->fs.protocol_errors, 0);
    assert_false(e->fs.held);
}

static void test_token_endpoint_network_error_not_retried(void **state)
{
    struct env *e = *state;
    fake_store_put(&e->fs, KEY, A1, R1, 0);
    client_open(e);
    fake_transport_answer(&e->ft, 401, NULL);
    fake_transport_push(&e->ft, (struct fake_response){.error = HS_ERR_NETWORK});
    assert_int_equal(show(e, NULL), HS_ERR_NETWORK);
    assert_int_equal(e->ft.n_reqs, 2);
    assert_false(e->fs.held);
    assert_string_equal(fake_store_get(&e->fs, KEY)->refresh_token, R1);
}

static void test_invalid_client(void **state)
{
    struct env *e = *state;
    fake_store_put(&e->fs, KEY, A1, R1, 0);
    client_open(e);
    fake_transport_answer(&e->ft, 401, NULL);
    fake_transport_answer(&e->ft, 401, "{\"error\":\"invalid_client\"}");
    struct hs_error err = {0};
    assert_int_equal(show(e, &err), HS_ERR_NO_CREDENTIALS);
    assert_non_null(strstr(err.msg, "client id/secret"));
}

static void test_tokens_never_logged(void **state)
{
    struct env *e = *state;
    FILE *log = tmpfile();
    assert_non_null(log);
    hs_log_set_file(log);
    hs_log_set_level(HS_LOG_DEBUG);
    fake_store_put(&e->fs, KEY, A1, R1, 0);
    client_open(e);
    fake_transport_answer(&e->ft, 401, NULL);
    fake_transport_answer(&e->ft, 200, token_answer);
    fake_transport_answer(&e->ft, 503, NULL);
    fake_transport_answer(&e->ft, 200, job_answer);
    assert_int_equal(show(e, NULL), HS_OK);
    hs_log_set_level(HS_LOG_WARN);
    hs_log_set_file(NULL);
    char text[8192];
    rewind(log);
    size_t n = fread(text, 1, sizeof text - 1, log);
    text[n] = '\0';
    fclose(log);
    assert_non_null(strstr(text, "refreshed")); /* the refresh is logged ... */
    char fp[9];
    hs_token_fingerprint(A2, fp);
    assert_non_null(strstr(text, fp)); /* ... with a fingerprint ... */
    static const char *const secrets[] = {A1, R1, A2, R2, SECRET};
    for (size_t i = 0; i < 5; i++) /* ... and no secret */
        assert_null(strstr(text, secrets[i]));
}

static void test_token_json(void **state)
{
    (void)state;
    struct hs_token t = {0};
    assert_int_equal(hs_oauth_token_from_json(token_answer, strlen(token_answer), 5, &t, NULL),
                     HS_OK);
    assert_string_equal(t.access_token, A2);
    assert_string_equal(t.refresh_token, R2);
    assert_int_equal(t.expires_at, NOW_S + 7200);
    assert_int_equal(t.owner_id, 463605);
    assert_string_equal(t.owner_type, "orgs");
    hs_token_clear(&t);

    const char *no_created = "{\"access_token\":\"x\",\"expires_in\":\"60\"}";
    assert_int_equal(hs_oauth_token_from_json(no_created, strlen(no_created), 1000, &t, NULL),
                     HS_OK);
    assert_int_equal(t.expires_at, 1060);
    assert_null(t.refresh_token);
    hs_token_clear(&t);

    const char *no_expiry = "{\"access_token\":\"x\"}";
    assert_int_equal(hs_oauth_token_from_json(no_expiry, strlen(no_expiry), 1000, &t, NULL), HS_OK);
    assert_int_equal(t.expires_at, 0);
    hs_token_clear(&t);

    static const char *const bad[] = {"{\"refresh_token\":\"r\"}", "{\"access_token\":\"\"}",
                                      "{\"access_token\":5}", "[]", "{"};
    for (size_t i = 0; i < 5; i++) {
        struct hs_error err = {0};
        assert_int_equal(hs_oauth_token_from_json(bad[i], strlen(bad[i]), 0, &t, &err),
                         HS_ERR_PARSE);
        assert_null(t.access_token);
    }
}

static void test_exchange_code(void **state)
{
    struct env *e = *state;
    struct hs_oauth_app app = {.base_url = BASE "/",
                               .client_id = "client-id-1",
                               .client_secret = SECRET,
                               .transport = &e->ft.base,
                               .clock = &e->fc.clock};
    fake_transport_answer(&e->ft, 200, token_answer);
    struct hs_token out = {0};
    struct hs_error err = {0};
    assert_int_equal(hs_oauth_exchange_code(&app, fake_store_tokens(&e->fs), "org-new", "code-123",
                                            "http://127.0.0.1:8080/callback", &out, &err),
                     HS_OK);
    assert_token_request(&e->ft.reqs[0], "authorization_code", "code", "code-123");
    json_t *b = json_loads(e->ft.reqs[0].body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(b, "redirect_uri")),
                        "http://127.0.0.1:8080/callback");
    json_decref(b);
    assert_string_equal(out.access_token, A2);
    assert_string_equal(fake_store_get(&e->fs, "org-new")->refresh_token, R2);
    assert_int_equal(app.requests, 1);
    hs_token_clear(&out);

    /* A used code */
    fake_transport_answer(&e->ft, 400, "{\"error\":\"invalid_grant\"}");
    assert_int_equal(hs_oauth_exchange_code(&app, fake_store_tokens(&e->fs), "org-x", "code-123",
                                            "http://127.0.0.1:8080/callback", NULL, &err),
                     HS_ERR_INVALID_GRANT);
    assert_non_null(strstr(err.msg, "connect flow"));
    assert_null(fake_store_get(&e->fs, "org-x"));

    app.client_id = NULL;
    assert_int_equal(hs_oauth_exchange_code(&app, fake_store_tokens(&e->fs), "org-x", "c",
                                            "http://x/cb", NULL, &err),
                     HS_ERR_NO_CREDENTIALS);
    assert_int_equal(e->ft.n_reqs, 2);
}

static void test_client_exchange_code(void **state)
{
    struct env *e = *state;
    client_open(e); /* nothing stored yet: the org is being connected */
    fake_transport_answer(&e->ft, 200, token_answer);
    fake_transport_answer(&e->ft, 200, job_answer);
    struct hs_token tok = {0};
    struct hs_error err = {0};
    assert_int_equal(
        hs_client_exchange_code(e->c, "code-9", "http://127.0.0.1:1/oauth/callback", &tok, &err),
        HS_OK);
    assert_token_request(&e->ft.reqs[0], "authorization_code", "code", "code-9");
    assert_int_equal(tok.owner_id, 463605);
    hs_token_clear(&tok);
    assert_string_equal(fake_store_get(&e->fs, KEY)->access_token, A2);
    assert_int_equal(show(e, NULL), HS_OK);
    assert_string_equal(e->ft.reqs[1].bearer, A2);
}

static void test_authorize_url(void **state)
{
    (void)state;
    char *u = hs_oauth_authorize_url("https://hover.to/", "abc 1", "http://127.0.0.1:8080/cb?x=1",
                                     "st&ate");
    assert_string_equal(u, "https://hover.to/oauth/authorize?client_id=abc%201&redirect_uri="
                           "http%3A%2F%2F127.0.0.1%3A8080%2Fcb%3Fx%3D1&response_type=code"
                           "&state=st%26ate");
    free(u);
    char fp1[9], fp2[9];
    hs_token_fingerprint(A1, fp1);
    hs_token_fingerprint(A2, fp2);
    assert_int_equal(strlen(fp1), 8);
    assert_string_not_equal(fp1, fp2);
}

#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)

/* The store's writes go on while the refresh's /oauth/token call is in flight: the refresh holds
 * a lease row in the store, not a transaction (a real SQLite store here, not the fake). */
struct write_during {
    struct hs_store *store;
    bool ran;
    int rc;
    int64_t event_id;
};

static void write_during_refresh(void *ctx, struct fake_transport *ft, const struct fake_request *r)
{
    (void)ft;
    struct write_during *w = ctx;
    if (w->ran || strcmp(r->url, BASE "/oauth/token") != 0)
        return;
    w->ran = true;
    struct hs_event_row e = {.webhook_id = 230293,
                             .connection_key = (char *)KEY,
                             .event = (char *)"job-state-changed-v2",
                             .job_id = 15084303,
                             .body = (char *)"{}",
                             .body_len = 2,
                             .status = (char *)"accepted"};
    w->rc =
        w->store->webhooks->event_accept(w->store, &e, true, 0, NOW_S * 1000, &w->event_id, NULL);
}

static void test_store_takes_writes_during_a_refresh(void **state)
{
    struct env *e = *state;
    char dir[] = "/tmp/hs-oauth-test-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/store.db", dir);
    struct hs_store *st = NULL;
    assert_int_equal(hs_store_open(path, NULL, &st, NULL), HS_OK);
    struct hs_token t = {.access_token = (char *)A1,
                         .refresh_token = (char *)R1,
                         .expires_at = NOW_S + 10,
                         .owner_id = 463605};
    assert_int_equal(st->tokens->token_save(st, KEY, &t, NULL), HS_OK);
    struct hs_error err = {0};
    assert_int_equal(
        hs_client_new(&e->cfg, hs_store_tokens(st), &e->fc.clock, &e->ft.base, &e->c, &err), HS_OK);
    struct write_during w = {.store = st};
    e->ft.on_request = write_during_refresh;
    e->ft.on_request_ctx = &w;
    fake_transport_answer(&e->ft, 200, token_answer);
    fake_transport_answer(&e->ft, 200, job_answer);
    assert_int_equal(show(e, &err), HS_OK);
    assert_true(w.ran);
    assert_int_equal(w.rc, HS_OK); /* accepted while /oauth/token was being answered */
    assert_true(w.event_id > 0);
    struct hs_token now = {0};
    assert_int_equal(st->tokens->token_load(st, KEY, &now, NULL), HS_OK);
    assert_string_equal(now.access_token, A2);
    assert_string_equal(now.refresh_token, R2);
    assert_int_equal(now.generation, 2);
    hs_token_clear(&now);
    hs_client_free(e->c);
    e->c = NULL;
    hs_store_close(st);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_refresh_before_expiry),
        T(test_no_refresh_when_valid),
        T(test_401_refresh_retry),
        T(test_second_401_unauthorized),
        T(test_invalid_grant),
        T(test_concurrent_rotation_on_401),
        T(test_concurrent_rotation_before_expiry),
        T(test_clones_share_one_refresh),
        T(test_store_takes_writes_during_a_refresh),
        T(test_no_client_credentials),
        T(test_initial_tokens_seeded),
        T(test_stored_pair_wins_over_initial),
        T(test_no_token_at_all),
        T(test_unstored_pair_not_used),
        T(test_token_endpoint_retries_5xx),
        T(test_token_endpoint_network_error_not_retried),
        T(test_invalid_client),
        T(test_tokens_never_logged),
        cmocka_unit_test(test_token_json),
        T(test_exchange_code),
        T(test_client_exchange_code),
        cmocka_unit_test(test_authorize_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
