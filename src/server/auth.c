/* auth.c: who may call the service (docs/API.md "Authentication").
 *
 * The API key is kept only as its SHA-256 (in the store, or from HOVERSYNC_API_KEY) and compared
 * in constant time. Browser sessions are random 32-byte tokens in an HttpOnly cookie, also stored
 * only as their SHA-256, each with its own csrf token: a cookie-authenticated call that changes
 * state must echo it in X-CSRF-Token, which a page of another origin cannot read. Origins outside
 * the allow-list are refused before any of this (server.c). */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "server/internal.h"

#define API_KEY_SETTING "api_key_sha256"

static void sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 0;
    if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != 32)
        abort(); /* libcrypto without SHA-256 is not a state to run in */
}

void hs_sha256_hex(const char *s, char out[65])
{
    unsigned char md[32];
    sha256(s, strlen(s), md);
    hs_hex(md, sizeof md, out);
}

int hs_random_hex(size_t n, char *out)
{
    unsigned char buf[64];
    if (n > sizeof buf || RAND_bytes(buf, (int)n) != 1)
        return HS_ERR_INTERNAL;
    hs_hex(buf, n, out);
    OPENSSL_cleanse(buf, sizeof buf);
    return HS_OK;
}

static int unhex(const char *hex, unsigned char *out, size_t n)
{
    if (strlen(hex) != 2 * n)
        return HS_ERR_PARSE;
    for (size_t i = 0; i < n; i++) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char c = hex[2 * i + (size_t)k];
            int d = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
            if (d < 0)
                return HS_ERR_PARSE;
            v = v * 16 + d;
        }
        out[i] = (unsigned char)v;
    }
    return HS_OK;
}

static bool is_hex(const char *s, size_t n)
{
    if (!s || strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

int hs_server_api_key(struct hs_store *store, const char *configured, unsigned char hash[32],
                      char generated[65], struct hs_error *err)
{
    generated[0] = '\0';
    if (configured && *configured) {
        if (strlen(configured) < 16)
            return hs_fail(err, HS_ERR_INVALID,
                           "HOVERSYNC_API_KEY is too short: use at least 16 random characters");
        sha256(configured, strlen(configured), hash);
        return HS_OK;
    }
    char *stored = NULL;
    int rc = store->ops->setting_get(store, API_KEY_SETTING, &stored, err);
    if (rc == HS_OK) {
        rc = unhex(stored, hash, 32);
        free(stored);
        if (rc)
            return hs_fail(err, HS_ERR_DB, "the stored API key hash is malformed");
        return HS_OK;
    }
    if (rc != HS_ERR_NOT_FOUND)
        return rc;
    char key[65], hex[65];
    if (hs_random_hex(32, key) != HS_OK)
        return hs_fail(err, HS_ERR_INTERNAL, "no randomness for the API key");
    sha256(key, 64, hash);
    hs_hex(hash, 32, hex);
    if ((rc = store->ops->setting_put(store, API_KEY_SETTING, hex, err)) != HS_OK) {
        OPENSSL_cleanse(key, sizeof key);
        return rc;
    }
    memcpy(generated, key, sizeof key);
    OPENSSL_cleanse(key, sizeof key);
    return HS_OK;
}

bool hs_origin_allowed(const struct hs_server *s, const char *origin)
{
    for (size_t i = 0; origin && i < s->n_origins; i++)
        if (strcasecmp(s->origins[i], origin) == 0)
            return true;
    return false;
}

bool hs_origin_own(const struct hs_server *s, const char *origin)
{
    for (size_t i = 0; origin && i < s->n_own; i++)
        if (s->own_origins[i] && strcasecmp(s->own_origins[i], origin) == 0)
            return true;
    return false;
}

int hs_session_create(struct hs_server *s, const char *user, char token[65], struct hs_session *out,
                      struct hs_error *err)
{
    char hash[65], csrf[65];
    if (hs_random_hex(32, token) != HS_OK || hs_random_hex(32, csrf) != HS_OK)
        return hs_fail(err, HS_ERR_INTERNAL, "no randomness for a session");
    hs_sha256_hex(token, hash);
    struct hs_session ss = {
        .token_sha256 = hash,
        .csrf_token = csrf,
        .created_at = hs_server_wall_s(s),
        .user = (char *)user,
    };
    ss.expires_at = ss.created_at + SESSION_TTL_S;
    int rc = s->store->ops->session_put(s->store, &ss, err);
    if (rc)
        return rc;
    if (out) {
        out->token_sha256 = hs_strdup(hash);
        out->csrf_token = hs_strdup(csrf);
        out->created_at = ss.created_at;
        out->expires_at = ss.expires_at;
        out->user = hs_strdup(user);
    }
    return HS_OK;
}

int hs_session_lookup(struct hs_server *s, const char *token, struct hs_session *out,
                      struct hs_error *err)
{
    /* Anything that is not one of our tokens is not looked up at all. */
    if (!is_hex(token, 64))
        return hs_fail(err, HS_ERR_NOT_FOUND, "not a session token");
    char hash[65];
    hs_sha256_hex(token, hash);
    return s->store->ops->session_get(s->store, hash, hs_server_wall_s(s), out, err);
}

void hs_session_set_cookie(const struct hs_server *s, struct hs_resp *r, const char *token)
{
    /* Lax keeps the cookie off cross-site subrequests; a modal framed by a CRM on another site
     * needs None, which browsers accept only with Secure (https). */
    char *c = hs_aprintf("hs_session=%s; Path=/; HttpOnly; Max-Age=%d; %s", token, SESSION_TTL_S,
                         s->cookie_secure ? "SameSite=None; Secure" : "SameSite=Lax");
    hs_resp_header(r, "Set-Cookie", c);
    free(c);
}

static void unauthorized(struct hs_resp *r, const char *msg)
{
    hs_resp_error(r, 401, "unauthorized", "%s", msg);
    hs_resp_header(r, "WWW-Authenticate", "Bearer realm=\"hoversync\"");
}

static bool changes_state(const char *method)
{
    return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
           strcmp(method, "PATCH") == 0 || strcmp(method, "DELETE") == 0;
}

int hs_auth_check(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    const char *authz = hs_req_header(q, MHD_HTTP_HEADER_AUTHORIZATION);
    if (authz) {
        if (strncasecmp(authz, "Bearer ", 7) != 0) {
            unauthorized(r, "the Authorization header must be 'Bearer <API key>'");
            return -1;
        }
        const char *key = authz + 7;
        while (*key == ' ')
            key++;
        unsigned char h[32];
        sha256(key, strlen(key), h);
        if (CRYPTO_memcmp(h, s->api_key_hash, sizeof h) != 0) {
            unauthorized(r, "wrong API key");
            return -1;
        }
        q->auth = HS_AUTH_KEY;
        return 0;
    }
    const char *cookie = hs_req_cookie(q, "hs_session");
    if (q->route && (q->route->flags & R_KEY_ONLY)) {
        if (cookie) {
            hs_resp_error(r, 403, "forbidden", "this call needs the API key, not a session");
            return -1;
        }
        unauthorized(r, "this call needs the API key (Authorization: Bearer <key>)");
        return -1;
    }
    if (!cookie) {
        unauthorized(r, "an API key (Authorization: Bearer <key>) or a session cookie is needed");
        return -1;
    }
    struct hs_error err = {0};
    int rc = hs_session_lookup(s, cookie, &q->session, &err);
    if (rc == HS_ERR_NOT_FOUND) {
        unauthorized(r, "the session is unknown or expired: open the modal again");
        return -1;
    }
    if (rc) {
        hs_resp_fail(r, rc, &err, "checking the session");
        return -1;
    }
    q->auth = HS_AUTH_SESSION;
    if (changes_state(q->method) &&
        !hs_secret_equal(hs_req_header(q, "X-CSRF-Token"), q->session.csrf_token)) {
        hs_resp_error(r, 403, "forbidden",
                      "missing or wrong X-CSRF-Token (a session's state-changing calls need it)");
        return -1;
    }
    return 0;
}
