/* auth.c: who may call the service, and what they may see (docs/API.md "Authentication",
 * "Tenants").
 *
 * API keys are kept only as their SHA-256 (named ones in the store, read again every second so
 * that every instance honours a create or a revoke without a restart; HOVERSYNC_API_KEY's in
 * memory) and compared in constant time; any of them may do everything. Browser sessions are
 * random 32-byte tokens, also stored only as their SHA-256, each with the connections (Hover
 * orgs) it may use: its scope; a revoked one is deleted, and fails at its next request.
 * A session is sent as `Authorization: Bearer <token>` (not ambient, so no CSRF: a page of
 * another origin cannot make the browser send it), or, for pages served by the service on its
 * own site, in the HttpOnly hs_session cookie, where a state-changing call must also echo the
 * session's csrf token in X-CSRF-Token. What cannot send a header (an EventSource, a link opened
 * in a new tab) gets a ticket: single-use, a minute long, for one route and one target, issued
 * to a session or the API key and acting as it. Origins outside the allow-list are refused
 * before any of this (server.c). */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "server/internal.h"
#include "store/service.h"

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

bool hs_is_hex(const char *s, size_t n)
{
    if (!s || strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* Names of stored keys: what a shell, a log line and a URL path take as they are. */
bool hs_api_key_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > HS_API_KEY_NAME_MAX || strcmp(name, HS_API_KEY_ENV_NAME) == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

int hs_api_key_create(struct hs_store *store, const char *name, int64_t now_s,
                      char key[HS_API_KEY_LEN + 1], struct hs_error *err)
{
    if (!hs_api_key_name_ok(name))
        return hs_fail(err, HS_ERR_INVALID,
                       "an API key's name is 1 to %d letters, digits, '-', '_' or '.', and not "
                       "'" HS_API_KEY_ENV_NAME "'",
                       HS_API_KEY_NAME_MAX);
    char hex[65], hash[65];
    if (hs_random_hex(32, hex) != HS_OK)
        return hs_fail(err, HS_ERR_INTERNAL, "no randomness for the API key");
    /* The prefix tells a stored key from a session token (64 hex digits) before any lookup. */
    snprintf(key, HS_API_KEY_LEN + 1, "%s%s", HS_API_KEY_PREFIX, hex);
    OPENSSL_cleanse(hex, sizeof hex);
    hs_sha256_hex(key, hash);
    int rc = store->service->api_key_put(store, name, hash, now_s, err);
    if (rc)
        OPENSSL_cleanse(key, HS_API_KEY_LEN + 1);
    return rc;
}

int hs_server_api_key(struct hs_store *store, const char *configured, unsigned char hash[32],
                      bool *from_env, char generated[65], struct hs_error *err)
{
    generated[0] = '\0';
    *from_env = false;
    if (configured && *configured) {
        if (strlen(configured) < 16)
            return hs_fail(err, HS_ERR_INVALID,
                           "HOVERSYNC_API_KEY is too short: use at least 16 random characters");
        sha256(configured, strlen(configured), hash);
        *from_env = true;
        return HS_OK;
    }
    struct hs_api_key *keys = NULL;
    size_t n = 0;
    int rc = store->service->api_keys_list(store, &keys, &n, err);
    hs_api_keys_free(keys, n);
    if (rc || n > 0)
        return rc;
    /* No key at all: one named "default" is made and shown this once (as before keys had
     * names). Another instance starting at the same moment may win the name: its key stands. */
    char key[65], hex[65];
    if (hs_random_hex(32, key) != HS_OK)
        return hs_fail(err, HS_ERR_INTERNAL, "no randomness for the API key");
    hs_sha256_hex(key, hex);
    rc = store->service->api_key_put(store, "default", hex, (int64_t)time(NULL), err);
    if (rc == HS_OK)
        memcpy(generated, key, sizeof key);
    else if (rc == HS_ERR_CONFLICT)
        rc = HS_OK;
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

/* ---- the stored API keys, as the service checks them ---- */

struct key_entry {
    unsigned char hash[32];
    char *name;
    int64_t last_used_at; /* unix s, as read (or as noted by this process since) */
};

static void keys_drop(struct hs_server *s)
{
    for (size_t i = 0; i < s->n_keys; i++)
        free(s->keys[i].name);
    free(s->keys);
    s->keys = NULL;
    s->n_keys = 0;
}

void hs_auth_free(struct hs_server *s)
{
    keys_drop(s);
}

/* Reads the stored keys into the cache; under keys_lock. */
static int keys_read(struct hs_server *s, int64_t now_ms, struct hs_error *err)
{
    struct hs_api_key *v = NULL;
    size_t n = 0;
    int rc = s->store->service->api_keys_list(s->store, &v, &n, err);
    if (rc)
        return rc;
    keys_drop(s);
    s->keys = n ? hs_calloc(n, sizeof *s->keys) : NULL;
    for (size_t i = 0; i < n; i++) {
        struct key_entry *k = &s->keys[s->n_keys];
        if (unhex(v[i].key_sha256, k->hash, sizeof k->hash) != HS_OK)
            continue; /* not a hash we wrote: matches nothing */
        k->name = hs_strdup(v[i].name);
        k->last_used_at = v[i].last_used_at;
        s->n_keys++;
    }
    hs_api_keys_free(v, n);
    s->keys_read_ms = now_ms;
    s->keys_loaded = true;
    return HS_OK;
}

/* The cached key whose hash is h, compared with every one in constant time: its name into name,
 * and into touch when its use is to be noted (to the minute). Under keys_lock. */
static bool key_lookup(struct hs_server *s, const unsigned char h[32], int64_t wall,
                       char name[HS_API_KEY_NAME_MAX + 1], char touch[HS_API_KEY_NAME_MAX + 1])
{
    struct key_entry *hit = NULL;
    for (size_t i = 0; i < s->n_keys; i++)
        if (CRYPTO_memcmp(s->keys[i].hash, h, 32) == 0)
            hit = &s->keys[i];
    if (!hit)
        return false;
    (void)hs_strlcpy(name, hit->name, HS_API_KEY_NAME_MAX + 1);
    if (wall - hit->last_used_at >= 60) {
        hit->last_used_at = wall;
        (void)hs_strlcpy(touch, hit->name, HS_API_KEY_NAME_MAX + 1);
    }
    return true;
}

/* Whether h is the hash of a stored key: 1 (its name into name), 0, or a negative hs_err. The
 * keys are re-read every KEYS_CACHE_MS, so that a revoke holds everywhere within that. A miss on
 * what has a created key's shape (session tokens never have it) reads them again, so that a key
 * just created works at once; at most every KEYS_MISS_MS: a flood of wrong keys waits for its
 * turn, it does not hold the store. */
static int key_match(struct hs_server *s, const unsigned char h[32], bool maybe_new,
                     char name[HS_API_KEY_NAME_MAX + 1], struct hs_error *err)
{
    int64_t start = hs_server_mono_ms(s), wall = hs_server_wall_s(s);
    char touch[HS_API_KEY_NAME_MAX + 1] = "";
    int rc = HS_OK;
    pthread_mutex_lock(&s->keys_lock);
    if (!s->keys_loaded || start - s->keys_read_ms >= KEYS_CACHE_MS)
        rc = keys_read(s, start, err);
    bool found = !rc && key_lookup(s, h, wall, name, touch);
    if (!rc && !found && maybe_new) {
        int64_t since = hs_server_mono_ms(s) - s->keys_read_ms;
        if (since < KEYS_MISS_MS) {
            pthread_mutex_unlock(&s->keys_lock);
            s->clock->sleep_ms(s->clock, KEYS_MISS_MS - since);
            pthread_mutex_lock(&s->keys_lock);
        }
        /* A read begun after this request did (another miss's) saw every key made before. */
        if (s->keys_read_ms <= start)
            rc = keys_read(s, hs_server_mono_ms(s), err);
        found = !rc && key_lookup(s, h, wall, name, touch);
    }
    pthread_mutex_unlock(&s->keys_lock);
    /* "Last used" to the minute: a failure to note it does not refuse the request. */
    if (touch[0])
        (void)s->store->service->api_key_used(s->store, touch, wall, NULL);
    return rc ? rc : found;
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

int hs_session_create(struct hs_server *s, const char *user, const char *const *connections,
                      size_t n, char token[65], struct hs_session *out, struct hs_error *err)
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
        .connections = (char **)connections,
        .n_connections = n,
    };
    ss.expires_at = ss.created_at + SESSION_TTL_S;
    int rc = s->store->service->session_put(s->store, &ss, err);
    if (rc)
        return rc;
    if (out) {
        out->token_sha256 = hs_strdup(hash);
        out->csrf_token = hs_strdup(csrf);
        out->created_at = ss.created_at;
        out->expires_at = ss.expires_at;
        out->user = hs_strdup(user);
        out->connections = n ? hs_calloc(n, sizeof *out->connections) : NULL;
        for (size_t i = 0; i < n; i++)
            out->connections[i] = hs_strdup(connections[i]);
        out->n_connections = n;
    }
    return HS_OK;
}

int hs_session_lookup(struct hs_server *s, const char *token, struct hs_session *out,
                      struct hs_error *err)
{
    /* Anything that is not one of our tokens is not looked up at all. */
    if (!hs_is_hex(token, 64))
        return hs_fail(err, HS_ERR_NOT_FOUND, "not a session token");
    char hash[65];
    hs_sha256_hex(token, hash);
    return s->store->service->session_get(s->store, hash, hs_server_wall_s(s), out, err);
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

const struct hs_scope *hs_req_scope(const struct hs_req *q, struct hs_scope *buf)
{
    if (q->auth == HS_AUTH_KEY)
        return NULL;
    /* A session sees its connections; a request without auth (never asked) sees nothing. */
    buf->keys = (const char *const *)q->session.connections;
    buf->n = q->auth == HS_AUTH_SESSION ? q->session.n_connections : 0;
    return buf;
}

bool hs_req_may_use(const struct hs_req *q, const char *key)
{
    struct hs_scope b;
    return key && hs_scope_has(hs_req_scope(q, &b), key);
}

/* ---- tickets ---- */

int hs_ticket_issue(struct hs_req *q, const char *purpose, const char *target, char out[65],
                    int64_t *expires_ms)
{
    struct hs_server *s = q->srv;
    const char *who = q->auth == HS_AUTH_SESSION ? q->session.token_sha256 : "";
    if (!target)
        target = "";
    if (strlen(purpose) >= sizeof s->tickets[0].purpose ||
        strlen(target) >= sizeof s->tickets[0].target || strlen(who) >= 65)
        return HS_ERR_INVALID;
    if (hs_random_hex(32, out) != HS_OK)
        return HS_ERR_INTERNAL;
    int64_t now = hs_server_mono_ms(s);
    pthread_mutex_lock(&s->cache_lock);
    /* A free (or expired) slot; a caller with TICKETS_PER_SESSION live ones replaces its oldest,
     * so that no caller can push out the tickets of others. */
    struct ticket *slot = NULL, *oldest = NULL;
    size_t mine = 0;
    for (size_t i = 0; i < TICKETS_N; i++) {
        struct ticket *t = &s->tickets[i];
        if (t->expires_ms <= now) {
            if (!slot)
                slot = t;
            continue;
        }
        if (strcmp(t->session, who) == 0) {
            mine++;
            if (!oldest || t->created_ms < oldest->created_ms)
                oldest = t;
        }
    }
    if (mine >= TICKETS_PER_SESSION)
        slot = oldest;
    if (slot) {
        memset(slot, 0, sizeof *slot);
        sha256(out, 64, slot->hash);
        (void)hs_strlcpy(slot->purpose, purpose, sizeof slot->purpose);
        (void)hs_strlcpy(slot->target, target, sizeof slot->target);
        (void)hs_strlcpy(slot->session, who, sizeof slot->session);
        slot->created_ms = now;
        slot->expires_ms = now + TICKET_MS;
        *expires_ms = slot->expires_ms;
    }
    pthread_mutex_unlock(&s->cache_lock);
    if (!slot)
        OPENSSL_cleanse(out, 65);
    return slot ? HS_OK : HS_ERR_BUSY;
}

/* Takes (uses up) the live ticket with this value for purpose and target; true and the issuing
 * session's hash ("" for the API key) in who. */
static bool ticket_take(struct hs_server *s, const char *ticket, const char *purpose,
                        const char *target, char who[65])
{
    if (!hs_is_hex(ticket, 64))
        return false;
    unsigned char h[32];
    sha256(ticket, 64, h);
    bool found = false;
    int64_t now = hs_server_mono_ms(s);
    pthread_mutex_lock(&s->cache_lock);
    for (size_t i = 0; i < TICKETS_N && !found; i++) {
        struct ticket *t = &s->tickets[i];
        if (t->expires_ms <= now || CRYPTO_memcmp(t->hash, h, sizeof h) != 0)
            continue;
        /* Found: used up whatever it was asked for, so that a leaked ticket works at most once. */
        found = strcmp(t->purpose, purpose) == 0 && strcmp(t->target, target) == 0;
        if (found)
            memcpy(who, t->session, 65);
        memset(t, 0, sizeof *t);
        break;
    }
    pthread_mutex_unlock(&s->cache_lock);
    return found;
}

/* What a ticket may be used for: the route pattern, the purpose, where the target is. */
static const struct {
    const char *pattern, *purpose;
    bool target_in_path; /* else the ?connection= argument */
} ticket_routes[] = {
    {"/api/syncs/{id}/events", "events", true},
    {"/files/{sha256}", "file", true},
    {"/connect", "connect", false},
};

/* ---- the check ---- */

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

/* Loads the session of a token hash into q; 0, or -1 with the answer in r. */
static int session_by_hash(struct hs_req *q, const char *hash, struct hs_resp *r)
{
    struct hs_error err = {0};
    int rc = q->srv->store->service->session_get(q->srv->store, hash, hs_server_wall_s(q->srv),
                                                 &q->session, &err);
    if (rc == HS_ERR_NOT_FOUND) {
        unauthorized(r, "the session is unknown or expired: open the modal again");
        return -1;
    }
    if (rc) {
        hs_resp_fail(r, rc, &err, "checking the session");
        return -1;
    }
    q->auth = HS_AUTH_SESSION;
    return 0;
}

/* Authorization: Bearer <API key or session token>. */
static int bearer_check(struct hs_req *q, struct hs_resp *r, const char *authz)
{
    struct hs_server *s = q->srv;
    if (strncasecmp(authz, "Bearer ", 7) != 0) {
        unauthorized(r, "the Authorization header must be 'Bearer <API key or session>'");
        return -1;
    }
    const char *key = authz + 7;
    while (*key == ' ')
        key++;
    unsigned char h[32];
    sha256(key, strlen(key), h);
    struct hs_error err = {0};
    if (s->has_env_key && CRYPTO_memcmp(h, s->api_key_hash, sizeof h) == 0) {
        q->auth = HS_AUTH_KEY;
        (void)hs_strlcpy(q->key_name, HS_API_KEY_ENV_NAME, sizeof q->key_name);
        return 0;
    }
    char name[HS_API_KEY_NAME_MAX + 1];
    int rc = key_match(s, h, strncmp(key, HS_API_KEY_PREFIX, strlen(HS_API_KEY_PREFIX)) == 0, name,
                       &err);
    if (rc < 0) {
        hs_resp_fail(r, rc, &err, "checking the API key");
        return -1;
    }
    if (rc == 1) {
        q->auth = HS_AUTH_KEY;
        (void)hs_strlcpy(q->key_name, name, sizeof q->key_name);
        return 0;
    }
    if (!hs_is_hex(key, 64)) {
        unauthorized(r, "wrong API key");
        return -1;
    }
    char hash[65];
    hs_hex(h, sizeof h, hash);
    rc = s->store->service->session_get(s->store, hash, hs_server_wall_s(s), &q->session, &err);
    if (rc == HS_ERR_NOT_FOUND) {
        unauthorized(r, "wrong API key, or an unknown, expired or revoked session");
        return -1;
    }
    if (rc) {
        hs_resp_fail(r, rc, &err, "checking the session");
        return -1;
    }
    q->auth = HS_AUTH_SESSION;
    if (q->route->flags & R_KEY_ONLY) {
        hs_resp_error(r, 403, "forbidden", "this call needs the API key, not a session");
        return -1;
    }
    return 0;
}

/* ?ticket= on a route that takes one. */
static int ticket_check(struct hs_req *q, struct hs_resp *r, const char *ticket)
{
    for (size_t i = 0; i < sizeof ticket_routes / sizeof ticket_routes[0]; i++) {
        if (strcmp(ticket_routes[i].pattern, q->route->pattern) != 0)
            continue;
        const char *target =
            ticket_routes[i].target_in_path ? q->params[0] : hs_req_arg(q, "connection");
        char who[65] = "";
        if (!ticket_take(q->srv, ticket, ticket_routes[i].purpose, target ? target : "", who)) {
            unauthorized(r, "the ticket is unknown, used, expired or for another request");
            return -1;
        }
        if (!who[0]) {
            q->auth = HS_AUTH_KEY;
            return 0;
        }
        return session_by_hash(q, who, r);
    }
    unauthorized(r, "this call does not take a ticket");
    return -1;
}

int hs_auth_check(struct hs_req *q, struct hs_resp *r)
{
    const char *authz = hs_req_header(q, MHD_HTTP_HEADER_AUTHORIZATION);
    if (authz)
        return bearer_check(q, r, authz);
    const char *ticket = q->route->flags & R_TICKET ? hs_req_arg(q, "ticket") : NULL;
    if (ticket)
        return ticket_check(q, r, ticket);
    const char *cookie = hs_req_cookie(q, "hs_session");
    if (q->route->flags & R_KEY_ONLY) {
        if (cookie) {
            hs_resp_error(r, 403, "forbidden", "this call needs the API key, not a session");
            return -1;
        }
        unauthorized(r, "this call needs the API key (Authorization: Bearer <key>)");
        return -1;
    }
    if (!cookie) {
        unauthorized(r, "an API key or a session (Authorization: Bearer <token>) is needed");
        return -1;
    }
    /* The cookie of a page the service served on its own site (kept for such pages). */
    if (!hs_is_hex(cookie, 64)) {
        unauthorized(r, "the session is unknown or expired: open the modal again");
        return -1;
    }
    char hash[65];
    hs_sha256_hex(cookie, hash);
    if (session_by_hash(q, hash, r) != 0)
        return -1;
    if (changes_state(q->method) &&
        !hs_secret_equal(hs_req_header(q, "X-CSRF-Token"), q->session.csrf_token)) {
        hs_resp_error(r, 403, "forbidden",
                      "missing or wrong X-CSRF-Token (a session's state-changing calls need it)");
        return -1;
    }
    return 0;
}
