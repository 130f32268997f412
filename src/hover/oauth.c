/* oauth.c: see oauth.h. */
#include "hover/oauth.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/crashpoint.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "hover/api_error.h"
#include "hover/limiter.h"

#define TOKEN_RESPONSE_MAX (64u * 1024u)

void hs_token_fingerprint(const char *token, char out[9])
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)(token ? token : ""); *p; p++) {
        h ^= *p;
        h *= 16777619u;
    }
    unsigned char b[4] = {(unsigned char)(h >> 24), (unsigned char)(h >> 16),
                          (unsigned char)(h >> 8), (unsigned char)h};
    hs_hex(b, 4, out);
}

int hs_oauth_token_from_json(const char *json, size_t len, int64_t now_s, struct hs_token *out,
                             struct hs_error *err)
{
    json_t *j = NULL;
    int rc = hs_json_parse(json, len, TOKEN_RESPONSE_MAX, &j, err);
    if (rc != HS_OK)
        return rc;
    const json_t *at = json_is_object(j) ? json_object_get(j, "access_token") : NULL;
    if (!json_is_string(at) || json_string_length(at) == 0) {
        rc = hs_fail(err, HS_ERR_PARSE, "token response without an access_token");
        goto out;
    }
    struct hs_token t = {0};
    t.access_token = hs_json_strdup(j, "access_token");
    t.refresh_token = hs_json_strdup(j, "refresh_token");
    t.owner_type = hs_json_strdup(j, "owner_type");
    (void)hs_json_i64(j, "owner_id", &t.owner_id);
    int64_t expires_in = 0, created_at = 0;
    if (hs_json_i64(j, "expires_in", &expires_in) && expires_in > 0) {
        if (!hs_json_i64(j, "created_at", &created_at) || created_at <= 0)
            created_at = now_s;
        /* A lifetime past the end of time is "does not expire", not an overflow. */
        t.expires_at = expires_in > INT64_MAX - created_at ? INT64_MAX : created_at + expires_in;
    }
    *out = t;
out:
    json_decref(j);
    return rc;
}

static bool empty(const char *s)
{
    return !s || !*s;
}

/* A token endpoint error body's `error` code ("invalid_grant"), or "" (into out). */
static void oauth_error_code(const char *body, size_t len, char *out, size_t n)
{
    out[0] = '\0';
    json_t *j = NULL;
    if (hs_json_parse(body, len, TOKEN_RESPONSE_MAX, &j, NULL) != HS_OK)
        return;
    const json_t *e = json_is_object(j) ? json_object_get(j, "error") : NULL;
    if (json_is_string(e))
        (void)hs_strlcpy(out, json_string_value(e), n);
    json_decref(j);
}

/* A refresh's hold on its credential's lease while its token request runs (NULL: none). */
struct lease_keeper {
    struct hs_token_store ts;
    const char *key;
    int64_t fence;
    int64_t step_ms; /* what one attempt may take: the request's timeout and a margin */
};

/* Keeps the lease until now + ahead_ms + one attempt; HS_ERR_CONFLICT when it was taken over
 * (then nothing is sent: the pair is the other refresher's to rotate). */
static int lease_keep(const struct lease_keeper *k, const struct hs_clock *clock, int64_t ahead_ms,
                      struct hs_error *err)
{
    if (!k)
        return HS_OK;
    return k->ts.ops->token_refresh_renew(k->ts.store, k->key, k->fence,
                                          clock->wall_ms(clock) + ahead_ms + k->step_ms, err);
}

/* What a refused token request means, in words that say what to do next. */
static int token_refused(const struct hs_http_response *rs, bool is_code, struct hs_error *err)
{
    char code[64];
    oauth_error_code(rs->body.data, rs->body.len, code, sizeof code);
    char text_err[200];
    (void)hs_api_error_text(rs->body.data, rs->body.len, text_err, sizeof text_err);
    int rc;
    if (strcmp(code, "invalid_grant") == 0) {
        if (is_code)
            rc = hs_fail(err, HS_ERR_INVALID_GRANT,
                         "Hover rejected the authorization code (%s): it is single-use and "
                         "short-lived, start the connect flow again",
                         text_err);
        else
            rc = hs_fail(err, HS_ERR_INVALID_GRANT,
                         "Hover rejected the refresh token (%s): the connection to Hover "
                         "must be re-authorised, reconnect this org (hoversync connect)",
                         text_err);
    } else if (strcmp(code, "invalid_client") == 0 || strcmp(code, "unauthorized_client") == 0) {
        rc = hs_fail(err, HS_ERR_NO_CREDENTIALS,
                     "Hover rejected the client id/secret (%s): check the configuration", text_err);
    } else {
        rc = hs_api_fail(rs->status, rs->body.data, rs->body.len, "POST /oauth/token", err);
    }
    if (err)
        err->http_status = (int)rs->status;
    return rc;
}

static int token_request(struct hs_oauth_app *app, const char *grant_type, const char *secret,
                         const char *redirect_uri, const struct lease_keeper *keeper,
                         struct hs_token *out, struct hs_error *err)
{
    if (empty(app->client_id) || empty(app->client_secret))
        return hs_fail(err, HS_ERR_NO_CREDENTIALS,
                       "the Hover client id and secret are needed to get a token: configure them");
    if (empty(secret) || empty(app->base_url))
        return hs_fail(err, HS_ERR_INVALID, "token request without %s",
                       empty(secret) ? "a code or refresh token" : "a base URL");
    bool is_code = strcmp(grant_type, "authorization_code") == 0;

    json_t *body = json_object();
    json_object_set_new(body, "grant_type", json_string(grant_type));
    json_object_set_new(body, is_code ? "code" : "refresh_token", json_string(secret));
    if (is_code && redirect_uri)
        json_object_set_new(body, "redirect_uri", json_string(redirect_uri));
    json_object_set_new(body, "client_id", json_string(app->client_id));
    json_object_set_new(body, "client_secret", json_string(app->client_secret));
    char *text = hs_json_dump(body);
    json_decref(body);

    size_t blen = strlen(app->base_url);
    while (blen && app->base_url[blen - 1] == '/')
        blen--;
    char *url = hs_aprintf("%.*s/oauth/token", (int)blen, app->base_url);
    const struct hs_http_header headers[] = {{"Content-Type", "application/json"},
                                             {"Accept", "application/json"}};
    struct hs_http_request rq = {
        .method = "POST",
        .url = url,
        .headers = headers,
        .n_headers = 2,
        .body = text,
        .body_len = strlen(text),
        .max_response = TOKEN_RESPONSE_MAX,
        .timeout_ms = app->timeout_ms,
        .max_redirects = -1, /* a token POST is never redirected with its secrets */
    };
    struct hs_retry_policy defaults;
    hs_retry_policy_default(&defaults);
    const struct hs_retry_policy *policy = app->retry ? app->retry : &defaults;
    const struct hs_clock *clock = app->clock ? app->clock : hs_clock_system();
    struct hs_http_response rs;
    hs_http_response_init(&rs);
    int rc;

    for (int attempt = 1;; attempt++) {
        hs_limiter_acquire(app->limiter);
        if ((rc = lease_keep(keeper, clock, 0, err)))
            goto out;
        app->requests++;
        rc = app->transport->perform(app->transport, &rq, &rs, err);
        if (rc != HS_OK) {
            /* Not retried: the request may have reached Hover and rotated the pair, and a
             * second try with the old refresh token would then fail for good. The caller's
             * next request tries again with whatever the store holds. */
            goto out;
        }
        if (rs.status >= 200 && rs.status <= 299)
            break;
        /* 429 and 5xx answers rotated nothing: those are retried. */
        struct hs_retry_decision d =
            hs_retry_decide(policy, attempt, HS_OK, rs.status, rs.retry_after_s, clock);
        if (d.verdict != HS_RETRY_WAIT)
            break;
        if ((rc = lease_keep(keeper, clock, d.wait_ms, err)))
            goto out;
        clock->sleep_ms(clock, d.wait_ms);
    }

    if (rs.status < 200 || rs.status > 299) {
        rc = token_refused(&rs, is_code, err);
        goto out;
    }
    rc =
        hs_oauth_token_from_json(rs.body.data, rs.body.len, clock->wall_ms(clock) / 1000, out, err);
out:
    hs_http_response_clear(&rs);
    /* The body held the client secret and the refresh token. */
    memset(text, 0, strlen(text));
    free(text);
    free(url);
    return rc;
}

int hs_oauth_token_request(struct hs_oauth_app *app, const char *grant_type, const char *secret,
                           const char *redirect_uri, struct hs_token *out, struct hs_error *err)
{
    return token_request(app, grant_type, secret, redirect_uri, NULL, out, err);
}

int hs_oauth_exchange_code(struct hs_oauth_app *app, struct hs_token_store ts, const char *key,
                           const char *code, const char *redirect_uri, struct hs_token *out,
                           struct hs_error *err)
{
    if (!ts.ops || empty(key))
        return hs_fail(err, HS_ERR_INVALID, "exchanging a code needs a store and a key");
    if (empty(redirect_uri))
        return hs_fail(err, HS_ERR_INVALID, "exchanging a code needs its redirect_uri");
    struct hs_token t = {0};
    int rc = hs_oauth_token_request(app, "authorization_code", code, redirect_uri, &t, err);
    if (rc != HS_OK)
        return rc;
    rc = ts.ops->token_save(ts.store, key, &t, err);
    if (rc == HS_OK) {
        char fp[9];
        hs_token_fingerprint(t.access_token, fp);
        hs_info("oauth connected credential=%s owner_id=%lld token=%s", key, (long long)t.owner_id,
                fp);
        if (out)
            hs_token_copy(out, &t);
    }
    hs_token_clear(&t);
    return rc;
}

char *hs_oauth_authorize_url(const char *base_url, const char *client_id, const char *redirect_uri,
                             const char *state)
{
    size_t blen = strlen(base_url);
    while (blen && base_url[blen - 1] == '/')
        blen--;
    char *cid = hs_url_escape(client_id ? client_id : "");
    char *ru = hs_url_escape(redirect_uri ? redirect_uri : "");
    char *st = hs_url_escape(state ? state : "");
    char *url = hs_aprintf("%.*s/oauth/authorize?client_id=%s&redirect_uri=%s"
                           "&response_type=code&state=%s",
                           (int)blen, base_url, cid, ru, st);
    free(cid);
    free(ru);
    free(st);
    return url;
}

int hs_oauth_cred_init(struct hs_oauth_cred *c, struct hs_token_store ts, const char *key,
                       const char *initial_access, const char *initial_refresh,
                       struct hs_error *err)
{
    memset(c, 0, sizeof *c);
    c->ts = ts;
    c->key = hs_strdup(key ? key : "default");
    int rc = HS_ERR_NOT_FOUND;
    if (ts.ops) {
        struct hs_error lerr = {0};
        rc = ts.ops->token_load(ts.store, c->key, &c->tok, &lerr);
        if (rc != HS_OK && rc != HS_ERR_NOT_FOUND) {
            if (err)
                *err = lerr;
            hs_oauth_cred_clear(c);
            return rc;
        }
    }
    if (rc == HS_ERR_NOT_FOUND) {
        memset(&c->tok, 0, sizeof c->tok);
        if (!empty(initial_access) || !empty(initial_refresh)) {
            c->tok.access_token = empty(initial_access) ? NULL : hs_strdup(initial_access);
            c->tok.refresh_token = empty(initial_refresh) ? NULL : hs_strdup(initial_refresh);
            c->tok.expires_at = 0; /* unknown: valid until a 401 says otherwise */
            if (ts.ops) {
                rc = ts.ops->token_save(ts.store, c->key, &c->tok, err);
                if (rc != HS_OK) {
                    hs_oauth_cred_clear(c);
                    return rc;
                }
            }
        }
    }
    return HS_OK;
}

void hs_oauth_cred_clear(struct hs_oauth_cred *c)
{
    if (!c)
        return;
    hs_token_clear(&c->tok);
    free(c->key);
    c->key = NULL;
}

int hs_oauth_cred_reload(struct hs_oauth_cred *c, struct hs_error *err)
{
    if (!c->ts.ops)
        return hs_fail(err, HS_ERR_NO_CREDENTIALS, "no token for credential %s", c->key);
    struct hs_token t = {0};
    int rc = c->ts.ops->token_load(c->ts.store, c->key, &t, err);
    if (rc == HS_ERR_NOT_FOUND)
        return hs_fail(err, HS_ERR_NO_CREDENTIALS,
                       "no Hover token stored for credential %s: connect the org first", c->key);
    if (rc != HS_OK)
        return rc;
    hs_token_clear(&c->tok);
    c->tok = t;
    return HS_OK;
}

bool hs_oauth_expiring(const struct hs_oauth_cred *c, int64_t now_s, int64_t skew_s)
{
    return c->tok.expires_at > 0 && c->tok.expires_at - skew_s <= now_s;
}

/* A refresh claims its lease for one attempt of the token request and a margin, then renews
 * it as the request goes (lease_keep). Waiters poll the lease, from 20 ms up to 500 ms apart,
 * for at most two leases' time: past that the holder keeps renewing (Hover is answering slowly)
 * and the caller's next request tries again. */
#define LEASE_MARGIN_MS 30000
#define WAIT_FIRST_MS   20
#define WAIT_MAX_MS     500

static int64_t lease_step_ms(const struct hs_oauth_app *app)
{
    return (app->timeout_ms > 0 ? app->timeout_ms : 60000) + LEASE_MARGIN_MS;
}

/* Claims the credential's refresh lease, waiting while another refresher holds it. */
static int claim_lease(struct hs_oauth_app *app, struct hs_oauth_cred *c, int64_t *fence,
                       struct hs_token *cur, struct hs_error *err)
{
    const struct hs_clock *clock = app->clock ? app->clock : hs_clock_system();
    int64_t step = lease_step_ms(app), waited = 0, pause = WAIT_FIRST_MS;
    for (;;) {
        struct hs_error cerr = {0};
        int rc = c->ts.ops->token_refresh_claim(c->ts.store, c->key, clock->wall_ms(clock), step,
                                                fence, cur, &cerr);
        if (rc != HS_ERR_BUSY || waited >= 2 * step) {
            if (rc && err)
                *err = cerr;
            return rc;
        }
        clock->sleep_ms(clock, pause);
        waited += pause;
        pause = pause * 2 < WAIT_MAX_MS ? pause * 2 : WAIT_MAX_MS;
    }
}

/* Uses the pair another refresher stored while this one waited (no request made). */
static int adopt(struct hs_oauth_cred *c, int64_t fence, struct hs_token *cur, bool *refreshed,
                 struct hs_error *err)
{
    int rc = c->ts.ops->token_refresh_finish(c->ts.store, c->key, fence, NULL, err);
    if (rc != HS_OK)
        return rc;
    char fp[9];
    hs_token_fingerprint(cur->access_token, fp);
    hs_info("oauth credential=%s adopted a pair rotated elsewhere token=%s", c->key, fp);
    hs_token_clear(&c->tok);
    c->tok = *cur;
    memset(cur, 0, sizeof *cur);
    *refreshed = false;
    return HS_OK;
}

/* Records the refusal, so that every process (status, the modal) can say the org must be
 * reconnected; a pair saved later (a new generation) clears it. */
static void mark_rejected(const struct hs_token_store *ts, const char *key, int64_t generation)
{
    struct hs_error err = {0};
    hs_warn("oauth credential=%s msg=\"Hover refused the refresh token: reconnect_required "
            "(run hoversync connect, or connect the org again from the modal)\"",
            key);
    if (ts->ops->token_rejected(ts->store, key, generation, &err) != HS_OK)
        hs_warn("oauth credential=%s msg=\"cannot record the refused grant\" error=\"%s\"", key,
                err.msg);
}

int hs_oauth_refresh(struct hs_oauth_app *app, struct hs_oauth_cred *c, const char *stale,
                     bool *refreshed, struct hs_error *err)
{
    if (empty(app->client_id) || empty(app->client_secret))
        return hs_fail(err, HS_ERR_NO_CREDENTIALS,
                       "the access token of credential %s needs a refresh, which needs the Hover "
                       "client id and secret: configure them",
                       c->key);
    if (!c->ts.ops)
        return hs_fail(err, HS_ERR_NO_CREDENTIALS,
                       "the access token of credential %s needs a refresh, and a rotated pair "
                       "can only be used once it is stored: open a store",
                       c->key);

    const struct hs_token_ops *ops = c->ts.ops;
    struct hs_token cur = {0}, fresh = {0};
    int64_t fence = 0;
    char *stale_copy = hs_strdup(stale); /* stale may point into c->tok */
    int rc = claim_lease(app, c, &fence, &cur, err);
    if (rc != HS_OK)
        goto out;
    bool have_cur = cur.access_token != NULL;
    if (have_cur && !hs_streq(cur.access_token, stale_copy)) {
        rc = adopt(c, fence, &cur, refreshed, err);
        goto out;
    }

    const char *rt = have_cur ? cur.refresh_token : c->tok.refresh_token;
    if (empty(rt)) {
        (void)ops->token_refresh_finish(c->ts.store, c->key, fence, NULL, NULL);
        rc = hs_fail(err, HS_ERR_NO_CREDENTIALS,
                     "no refresh token stored for credential %s: reconnect the org", c->key);
        goto out;
    }
    /* Hover rotates the pair when it handles this request: from then until the commit of
     * token_refresh_finish the new pair exists only in this process. So nothing runs in between
     * but parsing the answer, and the commit is durable (fsynced) before anything uses it. A
     * kill in the round trip itself still loses the pair: the next refresh is then refused
     * (invalid_grant) and the connection is marked reconnect_required below. */
    struct lease_keeper k = {
        .ts = c->ts, .key = c->key, .fence = fence, .step_ms = lease_step_ms(app)};
    rc = token_request(app, "refresh_token", rt, NULL, &k, &fresh, err);
    if (rc != HS_OK) {
        (void)ops->token_refresh_finish(c->ts.store, c->key, fence, NULL, NULL);
        if (rc == HS_ERR_INVALID_GRANT && have_cur)
            mark_rejected(&c->ts, c->key, cur.generation);
        goto out;
    }
    hs_crashpoint("refresh_answered");
    if (!fresh.refresh_token) /* a server that does not rotate keeps the old one valid */
        fresh.refresh_token = hs_strdup(rt);
    if (!fresh.owner_type && have_cur)
        fresh.owner_type = hs_strdup(cur.owner_type);
    if (!fresh.owner_id && have_cur)
        fresh.owner_id = cur.owner_id;
    fresh.generation = cur.generation + 1;

    /* Durable before used: only a stored pair replaces the one in memory. */
    rc = ops->token_refresh_finish(c->ts.store, c->key, fence, &fresh, err);
    if (rc != HS_OK) {
        hs_error_log("oauth credential=%s: the rotated token pair could not be stored (%s); the "
                     "previous refresh token is no longer valid at Hover",
                     c->key, hs_err_name(rc));
        goto out;
    }
    hs_crashpoint("refresh_stored");
    char fp[9];
    hs_token_fingerprint(fresh.access_token, fp);
    hs_info("oauth credential=%s refreshed token=%s expires_at=%lld", c->key, fp,
            (long long)fresh.expires_at);
    hs_token_clear(&c->tok);
    c->tok = fresh;
    memset(&fresh, 0, sizeof fresh);
    *refreshed = true;
out:
    hs_token_clear(&cur);
    hs_token_clear(&fresh);
    free(stale_copy);
    return rc;
}
