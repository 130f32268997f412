/* webhooks.c: webhook registrations and deliveries; see webhooks.h.
 *
 * Deliveries wait in one queue ordered by (due time, order key). A worker takes the first due
 * delivery whose webhook has nothing in flight, so one webhook's deliveries go out one at a time
 * and in emission order, unless a failure (its retry waits while later ones go on) or the reorder
 * switch changes that; a slow receiver holds up only its own webhook. Webhook records live until
 * the module is freed (a deleted one is only flagged), so a worker keeps its pointer across the
 * network call; url, secret and id never change after registration and are read without the lock.
 * Chaos draws come from one generator seeded with --seed, in emission order, so a run repeats. */
#include "webhooks.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/clock.h"
#include "core/mem.h"
#include "core/str.h"
#include "http.h"
#include "oauth.h"
#include "rng.h"
#include "webhook_sign.h"

#define WORKERS            4
#define QUEUE_MAX          100000
#define REORDER_BATCH      4
#define REORDER_HOLD_MS    500
#define CONNECT_TIMEOUT_MS 5000
#define FIRST_WEBHOOK_ID   230293
#define FIRST_UNKNOWN_ID   880001
#define CONTENT_TYPE       "application/json"

enum { CHAOS_DROP = 1, CHAOS_DUPLICATE = 2, CHAOS_REORDERED = 4, CHAOS_UNKNOWN = 8 };

struct delivery;

struct hook {
    int64_t id, org_id;
    char *url, *path, *query; /* path and query: for the request log */
    char content_type[8];
    char secret[64];
    char code[40];
    int64_t created_ms, updated_ms, verified_ms; /* wall clock; verified_ms 0: not verified */
    char *last_error;
    bool deleted, in_flight;
    int64_t sent, delivered, failed, dropped, duplicated, unverified, cancelled;
    struct delivery **held; /* the reorder switch's held deliveries */
    size_t n_held, cap_held;
    int64_t held_since; /* monotonic */
};

struct delivery {
    int64_t id, copy_of;
    struct hook *hook;
    char *event;
    int64_t job_id, model_id;
    char *body;
    size_t len;
    int attempts;
    unsigned chaos;
    int64_t due; /* monotonic */
    uint64_t order;
    struct delivery *next;
};

struct sb_webhooks {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    struct sb_reqlog *log, *deliveries;
    struct sb_webhook_settings st;
    struct sb_rng rng;
    struct hook **hooks;
    size_t n_hooks, cap_hooks;
    int64_t next_hook_id, next_delivery_id, next_unknown_id;
    uint64_t next_order;
    struct delivery *queue;
    size_t n_queued;
    atomic_bool stopping;
    pthread_t workers[WORKERS];
    size_t n_workers;
};

static int64_t mono_ms(void)
{
    const struct hs_clock *c = hs_clock_system();
    return c->mono_ms(c);
}

/* ---- small helpers ---- */

static json_t *iso_json(int64_t ms)
{
    if (ms <= 0)
        return json_null();
    char b[40];
    hs_iso8601_format(ms / 1000, (int)(ms % 1000), b, sizeof b);
    return json_string(b);
}

static char *dump_body(const json_t *o, size_t *len)
{
    /* 12 significant digits: 1.39 goes out as 1.39, not 1.3899999999999999 */
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(12));
    if (!s)
        abort();
    char *d = hs_strdup(s);
    free(s);
    *len = strlen(d);
    return d;
}

static void uuid4(char *out, size_t n)
{
    unsigned char b[16];
    sb_random_bytes(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    char hex[33];
    hs_hex(b, sizeof b, hex);
    (void)snprintf(out, n, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

static void set_last_error(struct hook *k, const char *err, int64_t now)
{
    if (hs_streq(k->last_error, err))
        return;
    free(k->last_error);
    k->last_error = hs_strdup(err);
    k->updated_ms = now;
}

static int64_t backoff_ms(int64_t base, int attempts)
{
    int64_t d = base > 0 ? base : 1;
    for (int i = 1; i < attempts && d < SB_WEBHOOK_RETRY_CAP_MS; i++)
        d *= 2;
    return d < SB_WEBHOOK_RETRY_CAP_MS ? d : SB_WEBHOOK_RETRY_CAP_MS;
}

static void chaos_name(unsigned chaos, char *out, size_t n)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{CHAOS_DROP, "drop"},
                 {CHAOS_DUPLICATE, "duplicate"},
                 {CHAOS_REORDERED, "reordered"},
                 {CHAOS_UNKNOWN, "unknown_event"}};
    out[0] = '\0';
    size_t o = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!(chaos & names[i].bit))
            continue;
        int w = snprintf(out + o, n - o, "%s%s", o ? "+" : "", names[i].name);
        if (w < 0 || (size_t)w >= n - o)
            break;
        o += (size_t)w;
    }
    if (!o)
        (void)hs_strlcpy(out, "none", n);
}

/* ---- URL check ---- */

bool sb_webhook_url_ok(const char *url)
{
    if (!url)
        return false;
    size_t len = strlen(url);
    if (len == 0 || len > SB_WEBHOOK_URI_MAX)
        return false;
    for (const unsigned char *c = (const unsigned char *)url; *c; c++)
        if (*c <= 0x20 || *c >= 0x7f || *c == '#' || *c == '\\')
            return false;
    const char *p;
    if (strncasecmp(url, "http://", 7) == 0)
        p = url + 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        p = url + 8;
    else
        return false;
    size_t alen = strcspn(p, "/?");
    if (memchr(p, '@', alen))
        return false;
    const char *port;
    if (alen >= 5 && strncmp(p, "[::1]", 5) == 0) {
        port = p + 5;
    } else {
        size_t hlen = strcspn(p, ":/?");
        if (!((hlen == 9 && strncmp(p, "127.0.0.1", 9) == 0) ||
              (hlen == 9 && strncasecmp(p, "localhost", 9) == 0)))
            return false;
        port = p + hlen;
    }
    const char *end = p + alen;
    if (port == end)
        return true;
    if (*port != ':' || end - port < 2 || end - port > 6)
        return false;
    int v = 0;
    for (const char *c = port + 1; c < end; c++) {
        if (*c < '0' || *c > '9')
            return false;
        v = v * 10 + (*c - '0');
    }
    return v >= 1 && v <= 65535;
}

/* ---- webhook records ---- */

static json_t *hook_json(const struct hook *k, bool with_secret)
{
    json_t *o = json_pack("{sI ss sI so so so so}", "id", (json_int_t)k->id, "owner_type", "Org",
                          "owner_id", (json_int_t)k->org_id, "url", hs_json_text(k->url),
                          "created_at", iso_json(k->created_ms), "updated_at",
                          iso_json(k->updated_ms), "verified_at", iso_json(k->verified_ms));
    if (with_secret)
        json_object_set_new(o, "hmac_secret", json_string(k->secret));
    json_object_set_new(o, "last_error", hs_json_text(k->last_error));
    json_object_set_new(o, "content_type", json_string(k->content_type));
    return o;
}

static struct hook *find_hook(struct sb_webhooks *h, int64_t org_id, int64_t id)
{
    for (size_t i = 0; i < h->n_hooks; i++) {
        struct hook *k = h->hooks[i];
        if (k->id == id && k->org_id == org_id && !k->deleted)
            return k;
    }
    return NULL;
}

static void hook_free(struct hook *k)
{
    free(k->url);
    free(k->path);
    free(k->query);
    free(k->last_error);
    free(k->held);
    OPENSSL_cleanse(k->secret, sizeof k->secret);
    free(k);
}

/* ---- deliveries ---- */

static struct delivery *delivery_new(struct sb_webhooks *h, struct hook *k, const char *event,
                                     int64_t job_id, int64_t model_id, json_t *body)
{
    struct delivery *d = hs_calloc(1, sizeof *d);
    d->id = h->next_delivery_id++;
    d->hook = k;
    d->event = hs_strdup(event);
    d->job_id = job_id;
    d->model_id = model_id;
    d->body = dump_body(body, &d->len);
    json_decref(body);
    return d;
}

static struct delivery *delivery_copy(struct sb_webhooks *h, const struct delivery *src)
{
    struct delivery *d = hs_calloc(1, sizeof *d);
    d->id = h->next_delivery_id++;
    d->copy_of = src->id;
    d->hook = src->hook;
    d->event = hs_strdup(src->event);
    d->job_id = src->job_id;
    d->model_id = src->model_id;
    d->body = hs_strndup(src->body, src->len);
    d->len = src->len;
    d->chaos = src->chaos | CHAOS_DUPLICATE;
    return d;
}

static void delivery_free(struct delivery *d)
{
    if (!d)
        return;
    free(d->event);
    free(d->body);
    free(d);
}

/* One line in the request log (listener "webhook") and in the delivery log. Call with the lock
 * held (the logs' locks are leaves). status 0: nothing was received (or nothing sent). */
/* sent_ms: when the attempt began (the log's own time is when its answer came), 0: not sent. */
static void log_delivery(struct sb_webhooks *h, const struct delivery *d, bool sent,
                         int64_t sent_ms, long status, const char *result, const char *error,
                         int64_t retry_in)
{
    const struct hook *k = d->hook;
    char fault[64];
    chaos_name(d->chaos, fault, sizeof fault);
    json_t *extra = json_pack(
        "{sI sI so ss so so si ss so so ss so so}", "webhook_id", (json_int_t)k->id, "delivery_id",
        (json_int_t)d->id, "copy_of", d->copy_of ? json_integer(d->copy_of) : json_null(), "event",
        d->event, "job_id", d->job_id ? json_integer(d->job_id) : json_null(), "model_id",
        d->model_id ? json_integer(d->model_id) : json_null(), "attempt", d->attempts, "result",
        result, "error", hs_json_text(error), "retry_in_ms",
        retry_in >= 0 ? json_integer(retry_in) : json_null(), "url", k->url, "body",
        json_stringn_nocheck(d->body, d->len), "sent_ms",
        sent_ms > 0 ? json_integer(sent_ms) : json_null());
    struct sb_reqlog_entry e = {
        .listener = "webhook",
        .method = "POST",
        .path = k->path,
        .query = k->query,
        .status = (int)status,
        .auth = sent,
        .client_id = NULL,
        .bytes = sent ? d->len : 0,
        .fault = fault,
        .if_none_match = false,
        .extra = extra,
    };
    int64_t now = sb_now_ms();
    if (h->log)
        (void)sb_reqlog_add(h->log, &e, now);
    (void)sb_reqlog_add(h->deliveries, &e, now);
    json_decref(extra);
}

static void queue_insert(struct sb_webhooks *h, struct delivery *d)
{
    struct delivery **pp = &h->queue;
    while (*pp && ((*pp)->due < d->due || ((*pp)->due == d->due && (*pp)->order < d->order)))
        pp = &(*pp)->next;
    d->next = *pp;
    *pp = d;
    h->n_queued++;
}

static void queue_now(struct sb_webhooks *h, struct delivery *d, int64_t now)
{
    d->due = now;
    d->order = ++h->next_order;
    queue_insert(h, d);
}

/* Sends a webhook's held deliveries in a shuffled order that is never the original one. */
static void flush_held(struct sb_webhooks *h, struct hook *k, int64_t now)
{
    size_t n = k->n_held;
    if (n == 0)
        return;
    struct delivery **a = k->held;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = sb_rng_below(&h->rng, (uint32_t)(i + 1));
        struct delivery *t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
    bool same = true; /* held in emission (= id) order */
    for (size_t i = 1; i < n && same; i++)
        same = a[i - 1]->id < a[i]->id;
    if (same && n > 1) {
        struct delivery *first = a[0];
        memmove(a, a + 1, (n - 1) * sizeof *a);
        a[n - 1] = first;
    }
    for (size_t i = 0; i < n; i++) {
        if (n > 1)
            a[i]->chaos |= CHAOS_REORDERED;
        queue_now(h, a[i], now);
    }
    k->n_held = 0;
    pthread_cond_broadcast(&h->cond);
}

/* Flushes the holds that are full, old enough, or no longer wanted; returns the next deadline. */
static int64_t flush_holds(struct sb_webhooks *h, int64_t now)
{
    int64_t wake = INT64_MAX;
    for (size_t i = 0; i < h->n_hooks; i++) {
        struct hook *k = h->hooks[i];
        if (!k->n_held)
            continue;
        if (!h->st.reorder || now - k->held_since >= REORDER_HOLD_MS)
            flush_held(h, k, now);
        else if (k->held_since + REORDER_HOLD_MS < wake)
            wake = k->held_since + REORDER_HOLD_MS;
    }
    return wake;
}

/* An event delivery enters the queue, or the reorder hold. */
static void enqueue_event(struct sb_webhooks *h, struct delivery *d, int64_t now)
{
    struct hook *k = d->hook;
    if (!h->st.reorder) {
        queue_now(h, d, now);
        pthread_cond_signal(&h->cond);
        return;
    }
    if (k->n_held == k->cap_held) {
        k->cap_held = k->cap_held ? k->cap_held * 2 : REORDER_BATCH;
        k->held = hs_realloc(k->held, k->cap_held * sizeof *k->held);
    }
    if (k->n_held == 0)
        k->held_since = now;
    k->held[k->n_held++] = d;
    if (k->n_held >= REORDER_BATCH)
        flush_held(h, k, now);
    else
        pthread_cond_signal(&h->cond); /* a worker must wake for the hold deadline */
}

/* Takes the first due delivery whose webhook is idle; lowers *wake to the next due time. */
static struct delivery *take_due(struct sb_webhooks *h, int64_t now, int64_t *wake)
{
    for (struct delivery **pp = &h->queue; *pp; pp = &(*pp)->next) {
        struct delivery *x = *pp;
        if (x->due > now) {
            if (x->due < *wake)
                *wake = x->due;
            break; /* sorted: the rest is later */
        }
        if (x->hook->in_flight)
            continue; /* its webhook's attempt ends with a broadcast */
        *pp = x->next;
        x->next = NULL;
        h->n_queued--;
        return x;
    }
    return NULL;
}

/* ---- HTTP ---- */

static size_t discard(char *p, size_t size, size_t nmemb, void *ud)
{
    (void)p;
    (void)ud;
    return size * nmemb;
}

static int progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt;
    (void)dn;
    (void)ut;
    (void)un;
    struct sb_webhooks *h = ud;
    return atomic_load(&h->stopping) ? 1 : 0; /* aborts the transfer on shutdown */
}

static void curl_error_text(CURLcode rc, char *err, size_t n)
{
    const char *msg;
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        msg = "connection refused";
        break;
    case CURLE_OPERATION_TIMEDOUT:
        msg = "timeout";
        break;
    case CURLE_GOT_NOTHING:
        msg = "empty reply (connection closed)";
        break;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
        msg = "connection reset";
        break;
    case CURLE_ABORTED_BY_CALLBACK:
        msg = "aborted: sandbox stopping";
        break;
    default:
        msg = NULL;
    }
    if (msg)
        (void)hs_strlcpy(err, msg, n);
    else
        (void)snprintf(err, n, "curl: %s", curl_easy_strerror(rc));
}

/* POSTs a signed body. Returns the HTTP status, or 0 with err filled. */
static long post(struct sb_webhooks *h, CURL *c, const char *url,
                 const struct sb_webhook_signed *sig, const char *body, size_t len, char *err,
                 size_t errn)
{
    struct curl_slist *hd = NULL;
    char line[320];
    hd = curl_slist_append(hd, "Content-Type: " CONTENT_TYPE);
    (void)snprintf(line, sizeof line, "%s: %s", sig->digest_header, sig->digest);
    hd = curl_slist_append(hd, line);
    (void)snprintf(line, sizeof line, "Date: %s", sig->date);
    hd = curl_slist_append(hd, line);
    (void)snprintf(line, sizeof line, "Authorization: %s", sig->authorization);
    hd = curl_slist_append(hd, line);
    hd = curl_slist_append(hd, "Expect:");
    if (!hd)
        abort();
    curl_easy_reset(c);
    (void)curl_easy_setopt(c, CURLOPT_URL, url);
    (void)curl_easy_setopt(c, CURLOPT_POST, 1L);
    (void)curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    (void)curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    (void)curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd);
    (void)curl_easy_setopt(c, CURLOPT_USERAGENT, "hover-sandbox-webhooks/1");
    (void)curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    (void)curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)SB_WEBHOOK_TIMEOUT_MS);
    (void)curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
    /* Loopback only, whatever the environment says: no proxy, no redirects. */
    (void)curl_easy_setopt(c, CURLOPT_PROXY, "");
    (void)curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    (void)curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    (void)curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    (void)curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    (void)curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    (void)curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress);
    (void)curl_easy_setopt(c, CURLOPT_XFERINFODATA, h);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    if (rc == CURLE_OK)
        (void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    else
        curl_error_text(rc, err, errn);
    curl_slist_free_all(hd);
    return status;
}

/* One attempt of d, whose webhook is marked in flight; d is in no list. Called without the lock.
 * Afterwards d is requeued for a retry or freed. */
static void attempt(struct sb_webhooks *h, CURL *c, struct delivery *d)
{
    struct hook *k = d->hook;
    int64_t now = sb_now_ms();
    struct sb_webhook_signed sig;
    char err[256] = "";
    long status = 0;
    pthread_mutex_lock(&h->lock);
    enum sb_signer signer = h->st.signer;
    enum sb_access_id form = h->st.access_id;
    pthread_mutex_unlock(&h->lock);
    char access_id[48];
    if (form == SB_ACCESS_ORG_ID)
        (void)snprintf(access_id, sizeof access_id, "%lld", (long long)k->org_id);
    else if (form == SB_ACCESS_NAME)
        (void)snprintf(access_id, sizeof access_id, "hover-org-%lld", (long long)k->org_id);
    else
        (void)snprintf(access_id, sizeof access_id, "%lld", (long long)k->id);
    if (sb_webhook_sign(signer, access_id, k->secret, k->url, CONTENT_TYPE, d->body, d->len,
                        now / 1000, &sig) != 0)
        (void)hs_strlcpy(err, "cannot sign the delivery", sizeof err);
    else
        status = post(h, c, k->url, &sig, d->body, d->len, err, sizeof err);
    bool ok = status >= 200 && status < 300;
    if (!ok && status > 0)
        (void)snprintf(err, sizeof err, "HTTP %ld", status);

    pthread_mutex_lock(&h->lock);
    d->attempts++;
    k->sent++;
    k->in_flight = false;
    int64_t retry_in = -1;
    const char *result;
    if (ok) {
        k->delivered++;
        set_last_error(k, NULL, now);
        result = "delivered";
    } else {
        k->failed++;
        set_last_error(k, err, now);
        if (k->deleted || atomic_load(&h->stopping)) {
            result = "failed";
        } else if (d->attempts >= SB_WEBHOOK_MAX_ATTEMPTS) {
            result = "gave_up";
        } else {
            result = "failed";
            retry_in = backoff_ms(h->st.retry_base_ms, d->attempts);
        }
    }
    log_delivery(h, d, true, now, status, result, ok ? NULL : err, retry_in);
    if (retry_in >= 0) {
        d->due = mono_ms() + retry_in;
        d->order = ++h->next_order;
        queue_insert(h, d);
        d = NULL;
    }
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
    delivery_free(d);
}

static void *worker_main(void *arg)
{
    struct sb_webhooks *h = arg;
    CURL *c = curl_easy_init();
    if (!c)
        abort();
    pthread_mutex_lock(&h->lock);
    while (!atomic_load(&h->stopping)) {
        int64_t now = mono_ms();
        int64_t wake = flush_holds(h, now);
        struct delivery *d = take_due(h, now, &wake);
        if (d) {
            d->hook->in_flight = true;
            pthread_mutex_unlock(&h->lock);
            attempt(h, c, d);
            pthread_mutex_lock(&h->lock);
            continue;
        }
        if (wake == INT64_MAX) {
            pthread_cond_wait(&h->cond, &h->lock);
        } else {
            struct timespec ts = {.tv_sec = (time_t)(wake / 1000),
                                  .tv_nsec = (long)(wake % 1000) * 1000000L};
            (void)pthread_cond_timedwait(&h->cond, &h->lock, &ts);
        }
    }
    pthread_mutex_unlock(&h->lock);
    curl_easy_cleanup(c);
    return NULL;
}

/* ---- life cycle ---- */

struct sb_webhooks *sb_webhooks_new(struct sb_reqlog *log, uint64_t seed,
                                    const struct sb_webhook_settings *st)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return NULL;
    struct sb_webhooks *h = hs_calloc(1, sizeof *h);
    pthread_mutex_init(&h->lock, NULL);
    hs_cond_init_monotonic(&h->cond);
    h->log = log;
    h->deliveries = sb_reqlog_new(NULL, SB_WEBHOOK_DELIVERY_RING);
    h->st = *st;
    sb_rng_init(&h->rng, seed ^ 0x5745424855ull);
    h->next_hook_id = FIRST_WEBHOOK_ID;
    h->next_delivery_id = 1;
    h->next_unknown_id = FIRST_UNKNOWN_ID;
    atomic_init(&h->stopping, false);
    return h;
}

int sb_webhooks_start(struct sb_webhooks *h, char *err, size_t errn)
{
    for (size_t i = 0; i < WORKERS; i++) {
        if (pthread_create(&h->workers[i], NULL, worker_main, h) != 0) {
            (void)snprintf(err, errn, "cannot start a webhook delivery thread");
            sb_webhooks_stop(h);
            return -1;
        }
        h->n_workers++;
    }
    return 0;
}

void sb_webhooks_stop(struct sb_webhooks *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    atomic_store(&h->stopping, true);
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
    for (size_t i = 0; i < h->n_workers; i++)
        pthread_join(h->workers[i], NULL);
    h->n_workers = 0;
}

void sb_webhooks_free(struct sb_webhooks *h)
{
    if (!h)
        return;
    sb_webhooks_stop(h);
    while (h->queue) {
        struct delivery *d = h->queue;
        h->queue = d->next;
        delivery_free(d);
    }
    for (size_t i = 0; i < h->n_hooks; i++) {
        for (size_t k = 0; k < h->hooks[i]->n_held; k++)
            delivery_free(h->hooks[i]->held[k]);
        hook_free(h->hooks[i]);
    }
    free(h->hooks);
    sb_reqlog_free(h->deliveries);
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->lock);
    free(h);
    curl_global_cleanup();
}

void sb_webhooks_get_settings(struct sb_webhooks *h, struct sb_webhook_settings *out)
{
    pthread_mutex_lock(&h->lock);
    *out = h->st;
    pthread_mutex_unlock(&h->lock);
}

void sb_webhooks_set_settings(struct sb_webhooks *h, const struct sb_webhook_settings *st)
{
    pthread_mutex_lock(&h->lock);
    h->st = *st;
    pthread_cond_broadcast(&h->cond); /* reorder off: the workers flush the holds */
    pthread_mutex_unlock(&h->lock);
}

/* ---- the API ---- */

static struct delivery *verification_delivery(struct sb_webhooks *h, struct hook *k)
{
    json_t *body = json_pack("{ss sI ss}", "event", SB_WEBHOOK_VERIFICATION_EV, "webhook_id",
                             (json_int_t)k->id, "code", k->code);
    return delivery_new(h, k, SB_WEBHOOK_VERIFICATION_EV, 0, 0, body);
}

int sb_webhooks_register(struct sb_webhooks *h, int64_t org_id, const char *url,
                         const char *content_type, json_t **out)
{
    if (!sb_webhook_url_ok(url))
        return SB_WEBHOOK_BAD_URL;
    if (content_type && *content_type && strcmp(content_type, "json") != 0)
        return SB_WEBHOOK_BAD_CONTENT_TYPE;
    char uri[SB_WEBHOOK_URI_MAX + 2];
    if (sb_webhook_request_uri(url, uri, sizeof uri) != 0)
        return SB_WEBHOOK_BAD_URL;
    int64_t now = sb_now_ms();
    pthread_mutex_lock(&h->lock);
    size_t n = 0;
    for (size_t i = 0; i < h->n_hooks; i++)
        n += h->hooks[i]->org_id == org_id && !h->hooks[i]->deleted;
    if (n >= SB_WEBHOOKS_PER_ORG) {
        pthread_mutex_unlock(&h->lock);
        return SB_WEBHOOK_TOO_MANY;
    }
    struct hook *k = hs_calloc(1, sizeof *k);
    k->id = h->next_hook_id++;
    k->org_id = org_id;
    k->url = hs_strdup(url);
    char *q = strchr(uri, '?');
    k->query = hs_strdup(q ? q + 1 : "");
    k->path = q ? hs_strndup(uri, (size_t)(q - uri)) : hs_strdup(uri);
    (void)hs_strlcpy(k->content_type, "json", sizeof k->content_type);
    unsigned char raw[32];
    sb_random_bytes(raw, sizeof raw);
    (void)EVP_EncodeBlock((unsigned char *)k->secret, raw, (int)sizeof raw);
    OPENSSL_cleanse(raw, sizeof raw);
    uuid4(k->code, sizeof k->code);
    k->created_ms = k->updated_ms = now;
    if (h->n_hooks == h->cap_hooks) {
        h->cap_hooks = h->cap_hooks ? h->cap_hooks * 2 : 16;
        h->hooks = hs_realloc(h->hooks, h->cap_hooks * sizeof *h->hooks);
    }
    h->hooks[h->n_hooks++] = k;
    *out = hook_json(k, true);
    struct delivery *d = verification_delivery(h, k);
    bool now_inline = h->st.verification_before_response && !atomic_load(&h->stopping);
    if (now_inline) {
        k->in_flight = true;
    } else {
        queue_now(h, d, mono_ms());
        pthread_cond_signal(&h->cond);
    }
    pthread_mutex_unlock(&h->lock);
    if (now_inline) {
        /* The receiver sees its code before the client sees the 201: the race it must handle. */
        CURL *c = curl_easy_init();
        if (!c)
            abort();
        attempt(h, c, d);
        curl_easy_cleanup(c);
    }
    return SB_WEBHOOK_OK;
}

json_t *sb_webhooks_list(struct sb_webhooks *h, int64_t org_id)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->n_hooks; i++) {
        const struct hook *k = h->hooks[i];
        if (k->org_id == org_id && !k->deleted)
            json_array_append_new(arr, hook_json(k, false));
    }
    pthread_mutex_unlock(&h->lock);
    return arr;
}

int sb_webhooks_show(struct sb_webhooks *h, int64_t org_id, int64_t id, json_t **out)
{
    pthread_mutex_lock(&h->lock);
    struct hook *k = find_hook(h, org_id, id);
    if (k)
        *out = hook_json(k, false);
    pthread_mutex_unlock(&h->lock);
    return k ? SB_WEBHOOK_OK : SB_WEBHOOK_NOT_FOUND;
}

int sb_webhooks_verify(struct sb_webhooks *h, int64_t org_id, const char *code, json_t **out)
{
    size_t clen = code ? strlen(code) : 0;
    int rc = SB_WEBHOOK_NOT_FOUND;
    int64_t now = sb_now_ms();
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->n_hooks; i++) {
        struct hook *k = h->hooks[i];
        if (k->org_id != org_id || k->deleted || strlen(k->code) != clen || clen == 0 ||
            CRYPTO_memcmp(k->code, code, clen) != 0)
            continue;
        if (!k->verified_ms) {
            k->verified_ms = now;
            k->updated_ms = now;
        }
        *out = hook_json(k, false);
        rc = SB_WEBHOOK_OK;
        break;
    }
    pthread_mutex_unlock(&h->lock);
    return rc;
}

int sb_webhooks_delete(struct sb_webhooks *h, int64_t org_id, int64_t id)
{
    pthread_mutex_lock(&h->lock);
    struct hook *k = find_hook(h, org_id, id);
    if (!k) {
        pthread_mutex_unlock(&h->lock);
        return SB_WEBHOOK_NOT_FOUND;
    }
    k->deleted = true;
    k->updated_ms = sb_now_ms();
    /* Pending deliveries and retries die with the webhook. */
    for (struct delivery **pp = &h->queue; *pp;) {
        struct delivery *d = *pp;
        if (d->hook != k) {
            pp = &d->next;
            continue;
        }
        *pp = d->next;
        h->n_queued--;
        k->cancelled++;
        log_delivery(h, d, false, 0, 0, "cancelled", "webhook deleted", -1);
        delivery_free(d);
    }
    for (size_t i = 0; i < k->n_held; i++) {
        k->cancelled++;
        log_delivery(h, k->held[i], false, 0, 0, "cancelled", "webhook deleted", -1);
        delivery_free(k->held[i]);
    }
    k->n_held = 0;
    pthread_mutex_unlock(&h->lock);
    return SB_WEBHOOK_OK;
}

size_t sb_webhooks_clear(struct sb_webhooks *h)
{
    size_t n = 0;
    for (;;) {
        int64_t org = 0, id = 0;
        pthread_mutex_lock(&h->lock);
        for (size_t i = 0; i < h->n_hooks && !id; i++)
            if (!h->hooks[i]->deleted) {
                org = h->hooks[i]->org_id;
                id = h->hooks[i]->id;
            }
        pthread_mutex_unlock(&h->lock);
        if (!id || sb_webhooks_delete(h, org, id) != SB_WEBHOOK_OK)
            return n;
        n++;
    }
}

int sb_webhooks_request_verification(struct sb_webhooks *h, int64_t org_id, int64_t id,
                                     json_t **out)
{
    pthread_mutex_lock(&h->lock);
    struct hook *k = find_hook(h, org_id, id);
    if (!k) {
        pthread_mutex_unlock(&h->lock);
        return SB_WEBHOOK_NOT_FOUND;
    }
    uuid4(k->code, sizeof k->code);
    k->updated_ms = sb_now_ms();
    queue_now(h, verification_delivery(h, k), mono_ms());
    pthread_cond_signal(&h->cond);
    *out = hook_json(k, false);
    pthread_mutex_unlock(&h->lock);
    return SB_WEBHOOK_OK;
}

/* ---- events ---- */

static json_t *event_json(const struct sb_event *ev, int64_t webhook_id)
{
    json_t *o = json_pack("{so sI sI}", "event", hs_json_text(ev->type), "webhook_id",
                          (json_int_t)webhook_id, "job_id", (json_int_t)ev->job_id);
    if (!strcmp(ev->type, "job-state-changed-v2")) {
        json_object_set_new(o, "job_external_identifier",
                            hs_json_text(ev->job_external_identifier));
        json_object_set_new(o, "state", hs_json_text(ev->state));
        json_object_set_new(o, "content-available", json_integer(1));
        json_object_set_new(o, "job_estimated_hours_to_completion", json_real(ev->estimated_hours));
    } else if (!strcmp(ev->type, "model-created") || !strcmp(ev->type, "model-state-changed")) {
        json_object_set_new(o, "model_id", json_integer(ev->model_id));
        json_object_set_new(o, "state", hs_json_text(ev->state));
        json_object_set_new(o, "job_external_identifier",
                            hs_json_text(ev->job_external_identifier));
    } else {
        if (ev->model_id)
            json_object_set_new(o, "model_id", json_integer(ev->model_id));
        if (ev->state)
            json_object_set_new(o, "state", hs_json_text(ev->state));
    }
    return o;
}

/* An event type the receiver does not know, about the same job. */
static json_t *unknown_json(struct sb_webhooks *h, const struct sb_event *ev, int64_t webhook_id,
                            const char **type)
{
    json_int_t uid = (json_int_t)h->next_unknown_id++, job = (json_int_t)ev->job_id,
               wid = (json_int_t)webhook_id;
    switch (sb_rng_below(&h->rng, 3)) {
    case 0:
        *type = "capture-request-state-changed";
        return json_pack("{ss sI sI sI ss}", "event", *type, "webhook_id", wid,
                         "capture_request_id", uid, "job_id", job, "state", "completed");
    case 1:
        *type = "deliverable-change-request-state-changed";
        return json_pack("{ss sI sI sI ss}", "event", *type, "webhook_id", wid,
                         "deliverable_change_request_id", uid, "job_id", job, "state", "complete");
    default:
        *type = "estimate-created";
        return json_pack("{ss sI sI sI}", "event", *type, "webhook_id", wid, "estimate_id", uid,
                         "job_id", job);
    }
}

/* One event delivery through the drop and duplicate switches. */
static void emit_one(struct sb_webhooks *h, struct delivery *d, int64_t now)
{
    struct hook *k = d->hook;
    if (h->st.drop_rate > 0 && sb_rng_chance(&h->rng, h->st.drop_rate)) {
        k->dropped++;
        d->chaos |= CHAOS_DROP;
        log_delivery(h, d, false, 0, 0, "dropped", NULL, -1);
        delivery_free(d);
        return;
    }
    if (h->n_queued >= QUEUE_MAX) {
        k->dropped++;
        log_delivery(h, d, false, 0, 0, "dropped", "delivery queue full", -1);
        delivery_free(d);
        return;
    }
    int copies = 0;
    if (h->st.duplicate_rate > 0 && sb_rng_chance(&h->rng, h->st.duplicate_rate))
        copies = sb_rng_chance(&h->rng, h->st.duplicate_rate / 2) ? 2 : 1;
    struct delivery *dup[2] = {NULL, NULL};
    for (int i = 0; i < copies; i++) {
        dup[i] = delivery_copy(h, d);
        k->duplicated++;
    }
    enqueue_event(h, d, now);
    for (int i = 0; i < copies; i++)
        enqueue_event(h, dup[i], now);
}

size_t sb_webhooks_emit(struct sb_webhooks *h, int64_t org_id, const struct sb_event *ev, size_t n)
{
    size_t hooks = 0;
    int64_t now = mono_ms();
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->n_hooks; i++) {
        struct hook *k = h->hooks[i];
        if (k->org_id != org_id || k->deleted)
            continue;
        hooks++;
        for (size_t e = 0; e < n; e++) {
            struct delivery *d = delivery_new(h, k, ev[e].type, ev[e].job_id, ev[e].model_id,
                                              event_json(&ev[e], k->id));
            if (!k->verified_ms) {
                /* hover-api.md 4: nothing but the code before the verify call */
                k->unverified++;
                log_delivery(h, d, false, 0, 0, "unverified", "webhook not verified", -1);
                delivery_free(d);
                continue;
            }
            emit_one(h, d, now);
            if (h->st.unknown_events) {
                const char *type = NULL;
                json_t *body = unknown_json(h, &ev[e], k->id, &type);
                struct delivery *u = delivery_new(h, k, type, ev[e].job_id, 0, body);
                u->chaos |= CHAOS_UNKNOWN;
                emit_one(h, u, now);
            }
        }
    }
    pthread_mutex_unlock(&h->lock);
    return hooks;
}

/* ---- admin ---- */

json_t *sb_webhooks_admin_json(struct sb_webhooks *h)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->n_hooks; i++) {
        const struct hook *k = h->hooks[i];
        int64_t pending = (int64_t)k->n_held + (k->in_flight ? 1 : 0);
        for (const struct delivery *d = h->queue; d; d = d->next)
            pending += d->hook == k;
        json_t *o = json_pack(
            "{sI sI ss sb so ss so so sb sI sI sI sI sI sI sI sI}", "id", (json_int_t)k->id,
            "org_id", (json_int_t)k->org_id, "url", k->url, "verified", k->verified_ms != 0,
            "verified_at", iso_json(k->verified_ms), "verification_code", k->code, "last_error",
            hs_json_text(k->last_error), "created_at", iso_json(k->created_ms), "deleted",
            k->deleted, "sent", (json_int_t)k->sent, "delivered", (json_int_t)k->delivered,
            "failed", (json_int_t)k->failed, "dropped", (json_int_t)k->dropped, "duplicated",
            (json_int_t)k->duplicated, "unverified", (json_int_t)k->unverified, "cancelled",
            (json_int_t)k->cancelled, "pending", (json_int_t)pending);
        json_array_append_new(arr, o);
    }
    pthread_mutex_unlock(&h->lock);
    return json_pack("{so}", "webhooks", arr);
}

char *sb_webhooks_deliveries_dump(struct sb_webhooks *h, int64_t since, size_t limit, size_t *len)
{
    return sb_reqlog_dump_named(h->deliveries, "deliveries", since, limit, len);
}

void sb_webhooks_deliveries_clear(struct sb_webhooks *h)
{
    sb_reqlog_clear(h->deliveries);
}
