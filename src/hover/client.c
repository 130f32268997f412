/* client.c: the Hover API client (client.h): URL building, the request pipeline (limiter, token,
 * transport, status, retries) and the typed calls on top of it.
 *
 * The token pair lives in a struct cred_shared that the clones of a client share: its lock is
 * held to read the access token to send and around a refresh, so the clones of one connection
 * refresh once between them (the store serialises refreshes across processes). */
#include "hover/client.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "hover/api_error.h"
#include "hover/limiter.h"
#include "hover/oauth.h"
#include "hover/retry.h"

#define DEFAULT_DOWNLOAD_MAX ((size_t)1 << 30)
#define URL_MAX              (16u * 1024u)

struct cred_shared {
    pthread_mutex_t lock;
    struct hs_oauth_cred cred;
    atomic_int refs;
};

struct hs_client {
    char *base_url; /* without trailing slash */
    char *client_id, *client_secret;
    char *as_user_email;
    int64_t as_user_id;
    int64_t timeout_ms;
    size_t max_response;
    size_t max_download;
    int max_redirects;
    int64_t refresh_skew_s;
    struct hs_retry_policy retry;

    const struct hs_clock *clock;
    struct hs_transport *transport;
    bool own_transport;
    struct hs_limiter *limiter;
    bool own_limiter;

    struct hs_oauth_app app;
    struct cred_shared *sh; /* the credential, shared with the clones */
    struct hs_client_stats stats;
    hs_client_wait_fn on_wait;
    void *on_wait_ctx;
};

void hs_client_config_defaults(struct hs_client_config *cfg)
{
    cfg->max_attempts = 5;
    cfg->backoff_base_ms = 500;
    cfg->backoff_max_ms = 30000;
    cfg->timeout_ms = 60000;
    cfg->max_response_bytes = HS_JSON_MAX_BYTES;
    cfg->rate_per_minute = 120;
    cfg->refresh_skew_s = 300;
    cfg->max_redirects = 5;
    cfg->max_retry_after_s = 120;
    cfg->max_download_bytes = DEFAULT_DOWNLOAD_MAX;
}

static const char *opt(const char *s)
{
    return s && *s ? s : NULL;
}

static bool is_absolute(const char *s)
{
    return strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0;
}

/* What token requests travel through: this client's settings and counters. */
static void set_app(struct hs_client *c)
{
    memset(&c->app, 0, sizeof c->app);
    c->app.base_url = c->base_url;
    c->app.client_id = c->client_id;
    c->app.client_secret = c->client_secret;
    c->app.transport = c->transport;
    c->app.clock = c->clock;
    c->app.limiter = c->limiter;
    c->app.retry = &c->retry;
    c->app.timeout_ms = c->timeout_ms;
}

int hs_client_new(const struct hs_client_config *cfg, struct hs_token_store tokens,
                  const struct hs_clock *clock, struct hs_transport *transport,
                  struct hs_client **out, struct hs_error *err)
{
    if (!cfg || !opt(cfg->base_url) || !is_absolute(cfg->base_url))
        return hs_fail(err, HS_ERR_INVALID, "the Hover base URL must be an http(s) URL");

    struct hs_client *c = hs_calloc(1, sizeof *c);
    size_t blen = strlen(cfg->base_url);
    while (blen && cfg->base_url[blen - 1] == '/')
        blen--;
    c->base_url = hs_strndup(cfg->base_url, blen);
    c->client_id = hs_strdup(opt(cfg->client_id));
    c->client_secret = hs_strdup(opt(cfg->client_secret));
    c->as_user_email = hs_strdup(opt(cfg->as_user_email));
    c->as_user_id = cfg->as_user_id > 0 ? cfg->as_user_id : 0;
    c->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 60000;
    c->max_response = cfg->max_response_bytes ? cfg->max_response_bytes : HS_JSON_MAX_BYTES;
    c->max_download = cfg->max_download_bytes ? cfg->max_download_bytes : DEFAULT_DOWNLOAD_MAX;
    c->max_redirects = cfg->max_redirects > 0 ? cfg->max_redirects : 5;
    c->refresh_skew_s = cfg->refresh_skew_s > 0 ? cfg->refresh_skew_s : 300;
    hs_retry_policy_default(&c->retry);
    if (cfg->max_attempts > 0)
        c->retry.max_attempts = cfg->max_attempts;
    if (cfg->backoff_base_ms > 0)
        c->retry.base_ms = cfg->backoff_base_ms;
    if (cfg->backoff_max_ms > 0)
        c->retry.max_ms = cfg->backoff_max_ms;
    if (cfg->max_retry_after_s > 0)
        c->retry.max_wait_ms = cfg->max_retry_after_s * 1000;

    c->clock = clock ? clock : hs_clock_system();
    c->transport = transport;
    if (!c->transport) {
        c->transport = hs_transport_curl_new();
        c->own_transport = true;
        if (!c->transport) {
            hs_client_free(c);
            return hs_fail(err, HS_ERR_INTERNAL, "cannot initialise libcurl");
        }
    }
    c->limiter = cfg->limiter;
    if (!c->limiter) {
        c->limiter = hs_limiter_new(cfg->rate_per_minute, 60000, c->clock);
        c->own_limiter = true;
    }

    set_app(c);

    struct cred_shared *sh = hs_calloc(1, sizeof *sh);
    pthread_mutex_init(&sh->lock, NULL);
    atomic_init(&sh->refs, 1);
    int rc =
        hs_oauth_cred_init(&sh->cred, tokens, opt(cfg->credential_key),
                           opt(cfg->initial_access_token), opt(cfg->initial_refresh_token), err);
    if (rc != HS_OK) {
        pthread_mutex_destroy(&sh->lock);
        free(sh);
        hs_client_free(c);
        return rc;
    }
    c->sh = sh;
    *out = c;
    return HS_OK;
}

int hs_client_clone(const struct hs_client *c, struct hs_client **out)
{
    struct hs_client *k = hs_calloc(1, sizeof *k);
    *k = *c;
    k->base_url = hs_strdup(c->base_url);
    k->client_id = hs_strdup(c->client_id);
    k->client_secret = hs_strdup(c->client_secret);
    k->as_user_email = hs_strdup(c->as_user_email);
    k->own_transport = false; /* borrowed from c, like the limiter */
    k->own_limiter = false;
    memset(&k->stats, 0, sizeof k->stats);
    k->on_wait = NULL; /* the hook belongs to the caller that set it, not to its clones */
    k->on_wait_ctx = NULL;
    set_app(k);
    atomic_fetch_add(&c->sh->refs, 1);
    *out = k;
    return HS_OK;
}

const char *hs_client_credential_key(const struct hs_client *c)
{
    return c->sh->cred.key;
}

void hs_client_free(struct hs_client *c)
{
    if (!c)
        return;
    if (c->sh && atomic_fetch_sub(&c->sh->refs, 1) == 1) {
        hs_oauth_cred_clear(&c->sh->cred);
        pthread_mutex_destroy(&c->sh->lock);
        free(c->sh);
    }
    if (c->own_transport)
        hs_transport_free(c->transport);
    if (c->own_limiter)
        hs_limiter_free(c->limiter);
    free(c->base_url);
    free(c->client_id);
    if (c->client_secret)
        memset(c->client_secret, 0, strlen(c->client_secret));
    free(c->client_secret);
    free(c->as_user_email);
    free(c);
}

void hs_client_set_thread_priority(enum hs_prio p)
{
    hs_limiter_set_thread_priority(p);
}

const char *hs_status_class_label(int sc)
{
    static const char *const labels[HS_SC_COUNT] = {"2xx", "3xx", "401", "403",    "404",
                                                    "4xx", "429", "5xx", "network"};
    return sc >= 0 && sc < HS_SC_COUNT ? labels[sc] : "network";
}

void hs_client_get_stats(const struct hs_client *c, struct hs_client_stats *out)
{
    *out = c->stats;
    out->requests += c->app.requests;
}

/* ---- URLs ---- */

static char query_sep(const struct hs_buf *url)
{
    return memchr(hs_buf_str(url), '?', url->len) ? '&' : '?';
}

static int add_param(struct hs_buf *url, const char *name, const char *value)
{
    char *v = hs_url_escape(value);
    int rc = hs_buf_appendf(url, "%c%s=%s", query_sep(url), name, v);
    free(v);
    return rc;
}

static int add_param_i64(struct hs_buf *url, const char *name, int64_t value)
{
    return hs_buf_appendf(url, "%c%s=%lld", query_sep(url), name, (long long)value);
}

/* current_user_email / current_user_id, unless the URL already names a user (a link that Hover
 * handed out may carry its own). */
static int add_user_params(const struct hs_client *c, struct hs_buf *url)
{
    int rc = HS_OK;
    const char *s = hs_buf_str(url);
    if (c->as_user_email && !strstr(s, "current_user_email="))
        rc = add_param(url, "current_user_email", c->as_user_email);
    if (rc == HS_OK && c->as_user_id > 0 && !strstr(hs_buf_str(url), "current_user_id="))
        rc = add_param_i64(url, "current_user_id", c->as_user_id);
    return rc;
}

/* The absolute URL of a path or URL, with the user parameters when it is on base_url's origin.
 * *same_origin says whether the bearer token may be sent. */
static int build_url(const struct hs_client *c, const char *url_or_path, struct hs_buf *url,
                     bool *same_origin, struct hs_error *err)
{
    int rc;
    if (is_absolute(url_or_path)) {
        *same_origin = hs_url_same_origin(url_or_path, c->base_url);
        rc = hs_buf_appends(url, url_or_path);
    } else {
        *same_origin = true;
        rc = hs_buf_appendf(url, "%s%s%s", c->base_url, url_or_path[0] == '/' ? "" : "/",
                            url_or_path);
    }
    if (rc == HS_OK && *same_origin)
        rc = add_user_params(c, url);
    if (rc != HS_OK)
        return hs_fail(err, HS_ERR_TOOBIG, "request URL over %u bytes", URL_MAX);
    return HS_OK;
}

/* ---- the request pipeline ---- */

struct call {
    const char *method;
    const char *url;
    bool auth; /* the bearer token may go out (same origin as base_url) */
    const char *if_none_match;
    size_t max;
    hs_http_sink_fn sink;
    void *sink_ctx;
    int (*reset)(void *ctx);
    const char *what;   /* for messages: "GET /api/v3/jobs/1" */
    const char *accept; /* NULL: any type (artifacts are PDFs, images, ...) */
    const char *body;   /* a JSON request body, or NULL */
    size_t body_len;
    /* Not idempotent (POST): retried only after a 429, which Hover refuses before doing
     * anything; a network error or a 5xx may have happened after Hover acted. */
    bool once;
};

/* Counts what reached the sink, so that a retry knows whether the sink must start over, and
 * hashes it, so that the body can be checked against the digests its answer announced. */
struct counted_sink {
    hs_http_sink_fn fn;
    void *ctx;
    int64_t bytes;
    EVP_MD_CTX *md5, *sha256;
};

static int counted_sink_write(void *ctx, const char *data, size_t len)
{
    struct counted_sink *cs = ctx;
    cs->bytes += (int64_t)len;
    if (EVP_DigestUpdate(cs->md5, data, len) != 1 || EVP_DigestUpdate(cs->sha256, data, len) != 1)
        return HS_ERR_INTERNAL;
    return cs->fn(cs->ctx, data, len);
}

static void counted_sink_start(struct counted_sink *cs)
{
    cs->bytes = 0;
    if (!cs->md5)
        return;
    if (EVP_DigestInit_ex(cs->md5, EVP_md5(), NULL) != 1 ||
        EVP_DigestInit_ex(cs->sha256, EVP_sha256(), NULL) != 1)
        abort(); /* only fails when out of memory, which aborts everywhere else too */
}

/* ---- a downloaded body against what its answer announced ----
 * Object storage answers a complete transfer even when it sends fewer bytes than the object
 * holds (a short body with a matching Content-Length), so "the transfer ended well" is not
 * enough: the body must match every digest the answer carries. */

bool hs_etag_digest(const char *etag, char out[33])
{
    if (!etag || etag[0] != '"' || strlen(etag) != 34 || etag[33] != '"')
        return false;
    for (int i = 0; i < 32; i++) {
        char ch = etag[1 + i];
        if (ch >= 'A' && ch <= 'F')
            ch = (char)(ch - 'A' + 'a');
        else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return false;
        out[i] = ch;
    }
    out[32] = '\0';
    return true;
}

/* base64 of a digest, as Content-MD5 and Digest carry it. */
static void b64(const unsigned char *d, size_t n, char out[48])
{
    EVP_EncodeBlock((unsigned char *)out, d, (int)n);
}

/* Compares "md5=..." and "sha-256=..." items of a Digest header (RFC 3230); others are skipped. */
static int check_digest_header(const char *hdr, const char *md5_b64, const char *sha_b64,
                               const char *what, struct hs_error *err)
{
    const char *p = hdr;
    while (*p) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, ",");
        const char *eq = memchr(p, '=', n);
        if (eq) {
            size_t an = (size_t)(eq - p), vn = n - an - 1;
            const char *v = eq + 1;
            while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
                vn--;
            const char *want = an == 3 && strncasecmp(p, "md5", 3) == 0       ? md5_b64
                               : an == 7 && strncasecmp(p, "sha-256", 7) == 0 ? sha_b64
                                                                              : NULL;
            if (want && (vn != strlen(want) || memcmp(v, want, vn) != 0))
                return hs_fail(err, HS_ERR_TRUNCATED,
                               "%s: the body does not match its Digest header (%.*s)", what,
                               (int)an, p);
        }
        p += n;
    }
    return HS_OK;
}

static int check_download(const struct hs_http_response *rs, struct counted_sink *cs,
                          const char *what, struct hs_error *err)
{
    if (rs->content_length >= 0 && rs->content_length != cs->bytes)
        return hs_fail(err, HS_ERR_TRUNCATED,
                       "%s: %lld body bytes received, Content-Length announced %lld", what,
                       (long long)cs->bytes, (long long)rs->content_length);
    unsigned char md5[16], sha[32];
    unsigned int l1 = 0, l2 = 0;
    if (EVP_DigestFinal_ex(cs->md5, md5, &l1) != 1 || EVP_DigestFinal_ex(cs->sha256, sha, &l2) != 1)
        return hs_fail(err, HS_ERR_INTERNAL, "%s: cannot finish the body's digests", what);
    char tag[33], md5_hex[33], sha_hex[65], md5_b64[48], sha_b64[48];
    hs_hex(md5, sizeof md5, md5_hex);
    hs_hex(sha, sizeof sha, sha_hex);
    b64(md5, sizeof md5, md5_b64);
    b64(sha, sizeof sha, sha_b64);
    if (hs_etag_digest(rs->etag, tag) && strcmp(tag, md5_hex) != 0 &&
        strncmp(tag, sha_hex, 32) != 0)
        return hs_fail(err, HS_ERR_TRUNCATED,
                       "%s: the body (%lld bytes) does not match its ETag %s: incomplete or "
                       "damaged",
                       what, (long long)cs->bytes, rs->etag);
    if (rs->content_md5 && strcmp(rs->content_md5, md5_b64) != 0)
        return hs_fail(err, HS_ERR_TRUNCATED,
                       "%s: the body (%lld bytes) does not match its Content-MD5", what,
                       (long long)cs->bytes);
    if (rs->digest)
        return check_digest_header(rs->digest, md5_b64, sha_b64, what, err);
    return HS_OK;
}

void hs_client_set_wait_hook(struct hs_client *c, hs_client_wait_fn fn, void *ctx)
{
    c->on_wait = fn;
    c->on_wait_ctx = ctx;
}

void hs_client_share_wait_hook(struct hs_client *to, const struct hs_client *from)
{
    to->on_wait = from->on_wait;
    to->on_wait_ctx = from->on_wait_ctx;
}

void hs_client_log_wait(const struct hs_client_wait *w)
{
    hs_warn("hover wait_s=%lld reason=%s request=\"%s\" msg=\"%s\"",
            (long long)((w->wait_ms + 999) / 1000), w->reason, w->what,
            strcmp(w->reason, "429") == 0 ? "Hover's rate limit: waiting as it asks"
                                          : "waiting for the request budget (Hover's rate limit)");
}

static void announce_wait(struct hs_client *c, int64_t ms, const char *reason, const char *what)
{
    if (ms < HS_WAIT_ANNOUNCE_MS)
        return;
    struct hs_client_wait w = {.wait_ms = ms, .reason = reason, .what = what};
    if (c->on_wait)
        c->on_wait(c->on_wait_ctx, &w);
    else
        hs_client_log_wait(&w);
}

struct budget_wait {
    struct hs_client *c;
    const char *what;
};

static void on_budget_wait(void *ctx, int64_t ms)
{
    struct budget_wait *b = ctx;
    announce_wait(b->c, ms, "budget", b->what);
}

static void wait_ms(struct hs_client *c, int64_t ms)
{
    if (ms <= 0)
        return;
    c->stats.waited_ms += ms;
    c->clock->sleep_ms(c->clock, ms);
}

/* ensure_token with the credential's lock held. */
static int ensure_token_locked(struct hs_client *c, struct hs_oauth_cred *cred, bool *refreshed_now,
                               struct hs_error *err)
{
    if (!cred->tok.access_token) {
        int rc = hs_oauth_cred_reload(cred, err);
        if (rc != HS_OK)
            return rc;
        if (!cred->tok.access_token && !cred->tok.refresh_token)
            return hs_fail(err, HS_ERR_NO_CREDENTIALS,
                           "no Hover token for credential %s: connect the org first", cred->key);
    }
    int64_t now_s = c->clock->wall_ms(c->clock) / 1000;
    if (*refreshed_now ||
        (cred->tok.access_token && !hs_oauth_expiring(cred, now_s, c->refresh_skew_s)))
        return HS_OK;

    bool rotated = false;
    struct hs_error rerr = {0};
    int rc = hs_oauth_refresh(&c->app, cred, cred->tok.access_token, &rotated, &rerr);
    *refreshed_now = true;
    if (rc == HS_OK) {
        if (rotated)
            c->stats.refreshes++;
        return HS_OK;
    }
    /* A token that has not expired yet still works: a failed early refresh is not fatal, unless
     * the grant itself is gone. */
    if (rc != HS_ERR_INVALID_GRANT && cred->tok.access_token && cred->tok.expires_at > now_s) {
        hs_warn("oauth credential=%s early refresh failed (%s): %s", cred->key, hs_err_name(rc),
                rerr.msg);
        return HS_OK;
    }
    if (err)
        *err = rerr;
    return rc;
}

/* A token to send (*send, a copy): loads one if none is held, refreshes one that is about to
 * expire. */
static int ensure_token(struct hs_client *c, bool *refreshed_now, char **send, struct hs_error *err)
{
    pthread_mutex_lock(&c->sh->lock);
    int rc = ensure_token_locked(c, &c->sh->cred, refreshed_now, err);
    if (rc == HS_OK)
        *send = hs_strdup(c->sh->cred.tok.access_token);
    pthread_mutex_unlock(&c->sh->lock);
    return rc;
}

/* After a 401 for `sent`: a new pair, unless a clone already replaced that token (then its
 * pair is used and *rotated stays false). */
static int refresh_after_401(struct hs_client *c, const char *sent, bool *rotated,
                             struct hs_error *err)
{
    pthread_mutex_lock(&c->sh->lock);
    struct hs_oauth_cred *cred = &c->sh->cred;
    int rc = HS_OK;
    if (!cred->tok.access_token || hs_streq(cred->tok.access_token, sent))
        rc = hs_oauth_refresh(&c->app, cred, sent, rotated, err);
    pthread_mutex_unlock(&c->sh->lock);
    return rc;
}

static int call_fail_final(const struct call *k, int rc, const struct hs_http_response *rs,
                           int attempts, struct hs_error *err)
{
    if (rc == HS_OK)
        rc = hs_api_fail(rs->status, rs->body.data, rs->body.len, k->what, err);
    /* else the transport filled err */
    if (err && attempts > 1) {
        size_t n = strlen(err->msg);
        (void)snprintf(err->msg + n, sizeof err->msg - n, " (after %d attempts)", attempts);
    }
    return rc;
}

/* The class of one exchange's outcome, for the status counters. */
static int status_class(int rc, long status)
{
    if (rc != HS_OK)
        return HS_SC_NETWORK;
    if (status >= 200 && status < 300)
        return HS_SC_2XX;
    if (status >= 300 && status < 400)
        return HS_SC_3XX;
    if (status == 401)
        return HS_SC_401;
    if (status == 403)
        return HS_SC_403;
    if (status == 404)
        return HS_SC_404;
    if (status == 429)
        return HS_SC_429;
    if (status >= 500)
        return HS_SC_5XX;
    return HS_SC_4XX;
}

#define CALL_AGAIN 1 /* a step's answer: send the request again */

/* The request's turn: the limiter may wait (the request counts in the calling thread's class,
 * for this connection: limiter.h; a long wait is announced through bw), then the token is
 * checked, right before it is sent; *sent gets a copy of it for an authorised request. */
static int take_turn(struct hs_client *c, const struct call *k, struct budget_wait *bw,
                     bool *refreshed_now, char **sent, struct hs_error *err)
{
    int64_t waited = hs_limiter_acquire_notify(c->limiter, hs_limiter_thread_priority(),
                                               c->sh->cred.key, on_budget_wait, bw);
    if (waited < 0)
        return hs_fail(err, HS_ERR_BUSY, "%s: not sent: the service is stopping", k->what);
    if (waited > 0) {
        c->stats.rate_limit_waits++;
        c->stats.waited_ms += waited;
    }
    return k->auth ? ensure_token(c, refreshed_now, sent, err) : HS_OK;
}

/* A 401 to an authorised request that sent `sent`: CALL_AGAIN after one refresh (or with the
 * pair a clone already got); a second 401 is final. */
static int on_unauthorized(struct hs_client *c, const struct call *k,
                           const struct hs_http_response *rs, const char *sent, bool *retried_401,
                           struct hs_error *err)
{
    if (*retried_401) {
        int rc = hs_api_fail(401, rs->body.data, rs->body.len, k->what, err);
        if (err) {
            size_t n = strlen(err->msg);
            (void)snprintf(err->msg + n, sizeof err->msg - n,
                           " (rejected again after a token refresh)");
        }
        return rc;
    }
    *retried_401 = true;
    bool rotated = false;
    int rc = refresh_after_401(c, sent, &rotated, err);
    if (rc != HS_OK)
        return rc;
    if (rotated)
        c->stats.refreshes++;
    return CALL_AGAIN;
}

/* After an exchange that failed (rc, or rs's status): CALL_AGAIN once the retry policy's wait
 * is over (a long wait Hover asked for with a 429 is announced), else the final error, rs
 * cleared. */
static int retry_or_fail(struct hs_client *c, const struct call *k, const struct counted_sink *cs,
                         struct hs_http_response *rs, int rc, int attempts, struct hs_error *err)
{
    struct hs_retry_decision d =
        hs_retry_decide(&c->retry, attempts, rc, rc == HS_OK ? rs->status : 0,
                        rc == HS_OK ? rs->retry_after_s : -1, c->clock);
    if (d.verdict == HS_RETRY_WAIT && k->once && !(rc == HS_OK && rs->status == 429))
        d.verdict = HS_RETRY_DONE;
    if (rc == HS_OK && rs->status == 429) /* every request of the budget waits, not this one */
        hs_limiter_hold(c->limiter, rs->retry_after_s < 0 ? d.wait_ms
                                    : rs->retry_after_s <= c->retry.max_wait_ms / 1000
                                        ? rs->retry_after_s * 1000
                                        : c->retry.max_wait_ms);
    if (d.verdict == HS_RETRY_WAIT && cs->bytes > 0) {
        /* Part of a body reached the sink: it must start over, or we stop here. */
        if (!k->reset || k->reset(k->sink_ctx) != 0)
            d.verdict = HS_RETRY_DONE;
    }
    if (d.verdict == HS_RETRY_WAIT) {
        hs_debug("hover retry what=\"%s\" attempt=%d status=%ld rc=%s wait_ms=%lld", k->what,
                 attempts, rc == HS_OK ? rs->status : 0L, hs_err_name(rc), (long long)d.wait_ms);
        if (rc == HS_OK && rs->status == 429)
            announce_wait(c, d.wait_ms, "429", k->what);
        hs_http_response_clear(rs);
        c->stats.retries++;
        wait_ms(c, d.wait_ms);
        return CALL_AGAIN;
    }
    if (d.verdict == HS_RETRY_GIVE_UP && d.retry_after_too_long) {
        rc = hs_fail(err, HS_ERR_RATE_LIMITED,
                     "%s: HTTP %ld: Hover asks to wait %lld s before retrying, over the %lld s "
                     "cap; try again later",
                     k->what, rs->status, (long long)rs->retry_after_s,
                     (long long)(c->retry.max_wait_ms / 1000));
        if (err)
            err->http_status = (int)rs->status;
    } else {
        rc = call_fail_final(k, rc, rs, attempts, err);
    }
    hs_http_response_clear(rs);
    return rc;
}

/* Sends k until it succeeds or fails for good, its body (if any) into cs. On success rs holds
 * the final answer (2xx/304). */
static int call_loop(struct hs_client *c, const struct call *k, struct counted_sink *cs,
                     struct hs_http_response *rs, struct hs_error *err)
{
    const struct hs_http_header headers[] = {{"Accept", k->accept ? k->accept : "*/*"},
                                             {"Content-Type", "application/json"}};
    struct budget_wait bw = {c, k->what};
    struct hs_http_request rq = {
        .method = k->method,
        .url = k->url,
        .headers = headers,
        .n_headers = k->body ? 2 : 1,
        .body = k->body,
        .body_len = k->body_len,
        .max_response = k->max,
        .timeout_ms = c->timeout_ms,
        .max_redirects = c->max_redirects,
        .sink = k->sink ? counted_sink_write : NULL,
        .sink_ctx = cs,
        .if_none_match = k->if_none_match,
    };
    bool refreshed_now = false, retried_401 = false;
    int attempts = 0;

    if (err)
        err->http_status = 0;
    for (;;) {
        char *sent_token = NULL;
        int rc = take_turn(c, k, &bw, &refreshed_now, &sent_token, err);
        if (rc != HS_OK)
            return rc;
        rq.bearer_token = sent_token;
        counted_sink_start(cs);
        rc = c->transport->perform(c->transport, &rq, rs, err);
        c->stats.requests++;
        c->stats.by_status[status_class(rc, rs->status)]++;
        attempts++;
        /* A download counts only once its bytes match what the answer announced; a mismatch
         * is retried like a truncated transfer. */
        if (rc == HS_OK && k->sink && rs->status >= 200 && rs->status < 300)
            rc = check_download(rs, cs, k->what, err);
        if (rc == HS_OK && rs->status == 401 && k->auth) {
            rc = on_unauthorized(c, k, rs, sent_token, &retried_401, err);
            free(sent_token);
            if (rc != CALL_AGAIN)
                return rc;
            refreshed_now = true;
            attempts--; /* the retry after a refresh is not a retry of a failure */
            continue;
        }
        free(sent_token);
        if (rc == HS_OK && hs_http_status_code(rs->status) == HS_OK)
            return HS_OK;
        if ((rc = retry_or_fail(c, k, cs, rs, rc, attempts, err)) != CALL_AGAIN)
            return rc;
    }
}

static int client_call(struct hs_client *c, const struct call *k, struct hs_http_response *rs,
                       struct hs_error *err)
{
    struct counted_sink cs = {k->sink, k->sink_ctx, 0, NULL, NULL};
    if (k->sink) {
        cs.md5 = EVP_MD_CTX_new();
        cs.sha256 = EVP_MD_CTX_new();
        if (!cs.md5 || !cs.sha256)
            abort(); /* out of memory, like hs_malloc */
    }
    int rc = call_loop(c, k, &cs, rs, err);
    EVP_MD_CTX_free(cs.md5);
    EVP_MD_CTX_free(cs.sha256);
    return rc;
}

/* "GET /api/v3/jobs" (no query: it may hold an email; no host: messages stay short). */
static void describe(const char *method, const char *url, char *out, size_t n)
{
    char shown[200];
    hs_url_for_log(url, shown, sizeof shown);
    const char *path = shown;
    const char *p = strstr(shown, "://");
    if (p) {
        const char *slash = strchr(p + 3, '/');
        path = slash ? slash : "/";
    }
    (void)snprintf(out, n, "%s %s", method, path);
}

static int get_json(struct hs_client *c, const char *url, struct hs_http_response *rs,
                    struct hs_error *err)
{
    char what[240];
    describe("GET", url, what, sizeof what);
    struct call k = {.method = "GET",
                     .url = url,
                     .auth = true,
                     .max = c->max_response,
                     .what = what,
                     .accept = "application/json"};
    return client_call(c, &k, rs, err);
}

/* ---- typed calls ---- */

int hs_client_list_jobs(struct hs_client *c, const struct hs_list_params *p,
                        struct hs_job_page **out, struct hs_error *err)
{
    static const struct hs_list_params none = {.archived = -1};
    if (!p)
        p = &none;
    if (opt(p->search) && strlen(p->search) < 3)
        return hs_fail(err, HS_ERR_INVALID, "a search needs at least 3 characters");
    if (p->per < 0 || p->per > 100)
        return hs_fail(err, HS_ERR_INVALID, "per must be between 1 and 100");
    if (p->page < 0)
        return hs_fail(err, HS_ERR_INVALID, "page must be 1 or more");

    struct hs_buf url;
    hs_buf_init(&url, URL_MAX);
    int rc = hs_buf_appendf(&url, "%s/api/v3/jobs", c->base_url);
    if (rc == HS_OK && opt(p->search))
        rc = add_param(&url, "search", p->search);
    if (rc == HS_OK && p->page > 0)
        rc = add_param_i64(&url, "page", p->page);
    if (rc == HS_OK && p->per > 0)
        rc = add_param_i64(&url, "per", p->per);
    if (rc == HS_OK && opt(p->sort_by))
        rc = add_param(&url, "sort_by", p->sort_by);
    if (rc == HS_OK && opt(p->sort_order))
        rc = add_param(&url, "sort_order", p->sort_order);
    if (rc == HS_OK && p->archived >= 0)
        rc = add_param(&url, "archived", p->archived ? "true" : "false");
    if (rc == HS_OK && p->updated_since > 0)
        rc = add_param_i64(&url, "updated_since", p->updated_since);
    if (rc == HS_OK && opt(p->reconstruction_state))
        rc = add_param(&url, "reconstruction_state", p->reconstruction_state);
    for (size_t i = 0; rc == HS_OK && i < p->n_deliverable_ids; i++)
        rc = add_param_i64(&url, "deliverable_ids%5B%5D", p->deliverable_ids[i]);
    if (rc == HS_OK)
        rc = add_user_params(c, &url);
    if (rc != HS_OK) {
        hs_buf_free(&url);
        return hs_fail(err, HS_ERR_TOOBIG, "list jobs URL over %u bytes", URL_MAX);
    }

    struct hs_http_response rs;
    hs_http_response_init(&rs);
    rc = get_json(c, hs_buf_str(&url), &rs, err);
    if (rc == HS_OK)
        rc = hs_job_page_from_json(hs_buf_str(&rs.body), rs.body.len, out, err);
    hs_http_response_clear(&rs);
    hs_buf_free(&url);
    return rc;
}

int hs_client_show_job(struct hs_client *c, int64_t job_id, struct hs_job **out,
                       struct hs_error *err)
{
    if (job_id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "job ids are positive integers");
    struct hs_buf url;
    hs_buf_init(&url, URL_MAX);
    int rc = hs_buf_appendf(&url, "%s/api/v3/jobs/%lld", c->base_url, (long long)job_id);
    if (rc == HS_OK)
        rc = add_user_params(c, &url);
    if (rc != HS_OK) {
        hs_buf_free(&url);
        return hs_fail(err, HS_ERR_TOOBIG, "show job URL over %u bytes", URL_MAX);
    }
    struct hs_http_response rs;
    hs_http_response_init(&rs);
    rc = get_json(c, hs_buf_str(&url), &rs, err);
    if (rc == HS_OK)
        rc = hs_job_from_json(hs_buf_str(&rs.body), rs.body.len, out, err);
    hs_http_response_clear(&rs);
    hs_buf_free(&url);
    return rc;
}

int hs_client_exchange_code(struct hs_client *c, const char *code, const char *redirect_uri,
                            struct hs_token *out, struct hs_error *err)
{
    struct hs_oauth_cred *cred = &c->sh->cred;
    if (!cred->ts.ops)
        return hs_fail(err, HS_ERR_INVALID, "connecting needs a store to keep the token pair");
    struct hs_token t = {0};
    int rc = hs_oauth_exchange_code(&c->app, cred->ts, cred->key, code, redirect_uri, &t, err);
    if (rc != HS_OK)
        return rc;
    pthread_mutex_lock(&c->sh->lock);
    hs_token_clear(&cred->tok);
    hs_token_copy(&cred->tok, &t);
    pthread_mutex_unlock(&c->sh->lock);
    if (out)
        *out = t;
    else
        hs_token_clear(&t);
    return HS_OK;
}

/* ---- generic GET / download ---- */

void hs_fetch_result_clear(struct hs_fetch_result *r)
{
    if (!r)
        return;
    free(r->etag);
    free(r->content_type);
    free(r->final_url);
    free(r->body);
    memset(r, 0, sizeof *r);
    r->content_length = -1;
}

static void fetch_result_from(struct hs_http_response *rs, struct hs_fetch_result *out)
{
    memset(out, 0, sizeof *out);
    out->status = rs->status;
    out->etag = rs->etag;
    out->content_type = rs->content_type;
    out->final_url = rs->final_url;
    out->content_length = rs->content_length;
    out->bytes = rs->body_bytes;
    rs->etag = rs->content_type = rs->final_url = NULL;
}

static int fetch(struct hs_client *c, const char *url_or_path, const char *if_none_match,
                 const struct hs_download_opts *o, struct hs_fetch_result *out,
                 struct hs_error *err)
{
    if (!url_or_path || !*url_or_path)
        return hs_fail(err, HS_ERR_INVALID, "GET without a URL");
    struct hs_buf url;
    hs_buf_init(&url, URL_MAX);
    bool same = false;
    int rc = build_url(c, url_or_path, &url, &same, err);
    if (rc != HS_OK) {
        hs_buf_free(&url);
        return rc;
    }
    char what[240];
    describe("GET", hs_buf_str(&url), what, sizeof what);
    struct call k = {
        .method = "GET",
        .url = hs_buf_str(&url),
        .auth = same,
        .if_none_match = opt(if_none_match),
        .max = o ? (o->max_bytes ? o->max_bytes : c->max_download) : c->max_response,
        .sink = o ? o->sink : NULL,
        .sink_ctx = o ? o->sink_ctx : NULL,
        .reset = o ? o->reset : NULL,
        .what = what,
    };
    struct hs_http_response rs;
    hs_http_response_init(&rs);
    rc = client_call(c, &k, &rs, err);
    if (rc == HS_OK) {
        fetch_result_from(&rs, out);
        if (!o)
            out->body = hs_buf_take(&rs.body, &out->body_len);
    }
    hs_http_response_clear(&rs);
    hs_buf_free(&url);
    return rc;
}

/* ---- other API calls (webhooks, ...) ---- */

int hs_client_request(struct hs_client *c, const char *method, const char *path,
                      const char *json_body, struct hs_fetch_result *out, struct hs_error *err)
{
    if (!method || !path || path[0] != '/')
        return hs_fail(err, HS_ERR_INVALID, "a request needs a method and a path");
    struct hs_buf url;
    hs_buf_init(&url, URL_MAX);
    if (hs_buf_appendf(&url, "%s%s", c->base_url, path) != HS_OK) {
        hs_buf_free(&url);
        return hs_fail(err, HS_ERR_TOOBIG, "request URL over %u bytes", URL_MAX);
    }
    char what[240];
    describe(method, hs_buf_str(&url), what, sizeof what);
    struct call k = {
        .method = method,
        .url = hs_buf_str(&url),
        .auth = true,
        .max = c->max_response,
        .what = what,
        .accept = "application/json",
        .body = json_body,
        .body_len = json_body ? strlen(json_body) : 0,
        .once = strcmp(method, "POST") == 0 || strcmp(method, "PATCH") == 0,
    };
    struct hs_http_response rs;
    hs_http_response_init(&rs);
    int rc = client_call(c, &k, &rs, err);
    if (rc == HS_OK) {
        fetch_result_from(&rs, out);
        out->body = hs_buf_take(&rs.body, &out->body_len);
    }
    hs_http_response_clear(&rs);
    hs_buf_free(&url);
    return rc;
}

int hs_client_get(struct hs_client *c, const char *url_or_path, const char *if_none_match,
                  struct hs_fetch_result *out, struct hs_error *err)
{
    return fetch(c, url_or_path, if_none_match, NULL, out, err);
}

int hs_client_download(struct hs_client *c, const char *url_or_path,
                       const struct hs_download_opts *o, struct hs_fetch_result *out,
                       struct hs_error *err)
{
    if (!o || !o->sink)
        return hs_fail(err, HS_ERR_INVALID, "a download needs a sink");
    return fetch(c, url_or_path, o->if_none_match, o, out, err);
}
