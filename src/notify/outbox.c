/* outbox.c: CRM notifications (outbox.h): queueing after a sync, signing, the deliverer thread.
 *
 * One deliverer per store: a process delivers only while it holds the named lease
 * "outbox:lease" (store/service.h: claimed, renewed before every message, released at stop;
 * each claim under a new fence), so that the `hoversync serve` and `hoversync worker` processes
 * sharing one store, on one machine or a fleet on PostgreSQL, never POST the same message at
 * the same time, and messages go out in order per (endpoint, job). The holder writes itself and
 * its fence into checkpoint "outbox:deliverer", so that a restart after kill -9 on the same host
 * releases its dead predecessor's lease at once instead of waiting for it to lapse. A message
 * acknowledged by the endpoint but not yet marked delivered when the process dies goes out again
 * after the restart, with the same Idempotency-Key: receivers drop repeats. */
#include "notify/outbox.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "store/outbox.h"
#include "store/records.h"
#include "store/service.h"

#define LEASE_NAME   "outbox:lease"
#define HOLDER_NAME  "outbox:deliverer" /* checkpoint: "<owner> <fence>" of the lease's holder */
#define LEASE_MS     30000
#define PAYLOAD_MAX  (256u * 1024u)
#define RESPONSE_MAX (64u * 1024u)

struct hs_outbox {
    struct hs_outbox_config cfg;
    char **endpoints;
    char *secret;
    struct hs_store *store;
    const struct hs_clock *clock;
    struct hs_transport *transport;
    bool own_transport;
    char owner[96];         /* this process, for the lease */
    int64_t fence;          /* of this process's claim of the lease; 0: not held (deliverer's) */
    int64_t lease_until_ms; /* of that claim */

    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping, woken, started;
    pthread_t thread;
    struct hs_outbox_stats stats;
};

/* ---- pieces ---- */

void hs_outbox_sign(const char *secret, int64_t timestamp_s, const char *body, size_t body_len,
                    char out[HS_OUTBOX_SIG_LEN + 1])
{
    char prefix[32];
    int n = snprintf(prefix, sizeof prefix, "%lld.", (long long)timestamp_s);
    size_t len = (size_t)n + body_len;
    unsigned char *msg = hs_malloc(len + 1);
    memcpy(msg, prefix, (size_t)n);
    if (body_len)
        memcpy(msg + n, body, body_len);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    const char *key = secret ? secret : "";
    if (!HMAC(EVP_sha256(), key, (int)strlen(key), msg, len, mac, &mac_len) || mac_len != 32)
        abort(); /* HMAC-SHA256 with a valid key cannot fail but for a broken libcrypto */
    free(msg);
    memcpy(out, "v1=", 3);
    hs_hex(mac, 32, out + 3);
}

void hs_outbox_idempotency_key(const char *endpoint, int64_t job_id, int64_t cursor, char out[65])
{
    char *s = hs_aprintf("%s\n%lld\n%lld", endpoint ? endpoint : "", (long long)job_id,
                         (long long)cursor);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL) != 1 || n != 32)
        abort();
    free(s);
    hs_hex(md, 32, out);
}

int64_t hs_outbox_backoff_ms(int64_t base_ms, int64_t max_ms, int64_t attempts)
{
    return hs_backoff_ms(base_ms > 0 ? base_ms : 1000, max_ms, attempts);
}

/* ---- lifecycle ---- */

int hs_outbox_new(const struct hs_outbox_config *cfg, struct hs_store *store,
                  const struct hs_clock *clock, struct hs_transport *transport,
                  struct hs_outbox **out, struct hs_error *err)
{
    if (!cfg || !store)
        return hs_fail(err, HS_ERR_INVALID, "the outbox needs a configuration and a store");
    for (size_t i = 0; i < cfg->n_endpoints; i++) {
        const char *e = cfg->endpoints[i];
        if (!e || (!hs_starts_with(e, "http://") && !hs_starts_with(e, "https://")))
            return hs_fail(err, HS_ERR_INVALID, "a CRM endpoint must be an http(s) URL, not '%s'",
                           e ? e : "");
    }
    if (cfg->n_endpoints && (!cfg->secret || !*cfg->secret))
        return hs_fail(err, HS_ERR_INVALID,
                       "CRM endpoints need HOVERSYNC_CRM_SECRET: notifications are signed with it");
    struct hs_outbox *o = hs_calloc(1, sizeof *o);
    o->cfg = *cfg;
    if (o->cfg.retry_base_ms <= 0)
        o->cfg.retry_base_ms = 1000;
    if (o->cfg.retry_max_ms <= 0)
        o->cfg.retry_max_ms = 300000;
    if (o->cfg.timeout_ms <= 0)
        o->cfg.timeout_ms = 10000;
    if (o->cfg.idle_ms <= 0)
        o->cfg.idle_ms = o->cfg.retry_base_ms < 1000 ? o->cfg.retry_base_ms : 1000;
    o->endpoints = hs_calloc(cfg->n_endpoints + 1, sizeof *o->endpoints);
    for (size_t i = 0; i < cfg->n_endpoints; i++)
        o->endpoints[i] = hs_strdup(cfg->endpoints[i]);
    o->cfg.endpoints = (const char *const *)o->endpoints;
    o->secret = hs_strdup(cfg->secret);
    o->cfg.secret = o->secret;
    o->store = store;
    o->clock = clock ? clock : hs_clock_system();
    o->transport = transport;
    if (!o->transport && cfg->n_endpoints) {
        o->transport = hs_transport_curl_new();
        o->own_transport = true;
        if (!o->transport) {
            hs_outbox_free(o);
            return hs_fail(err, HS_ERR_INTERNAL, "cannot initialise libcurl");
        }
    }
    char host[64] = "host";
    (void)gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    snprintf(o->owner, sizeof o->owner, "%s:%d:%p", host, (int)getpid(), (void *)o);
    pthread_mutex_init(&o->lock, NULL);
    hs_cond_init_monotonic(&o->wake);
    *out = o;
    return HS_OK;
}

void hs_outbox_free(struct hs_outbox *o)
{
    if (!o)
        return;
    hs_thread_stop(&o->lock, &o->wake, &o->stopping, o->thread, o->started);
    if (o->own_transport)
        hs_transport_free(o->transport);
    for (size_t i = 0; i < o->cfg.n_endpoints; i++)
        free(o->endpoints[i]);
    free(o->endpoints);
    if (o->secret)
        memset(o->secret, 0, strlen(o->secret));
    free(o->secret);
    free(o);
}

bool hs_outbox_enabled(const struct hs_outbox *o)
{
    return o && o->cfg.n_endpoints > 0;
}

void hs_outbox_get_stats(struct hs_outbox *o, struct hs_outbox_stats *out)
{
    pthread_mutex_lock(&o->lock);
    *out = o->stats;
    pthread_mutex_unlock(&o->lock);
}

void hs_outbox_wake(struct hs_outbox *o)
{
    if (!o)
        return;
    pthread_mutex_lock(&o->lock);
    o->woken = true;
    pthread_cond_signal(&o->wake);
    pthread_mutex_unlock(&o->lock);
}

/* ---- queueing ---- */

static void now_iso(const struct hs_clock *clock, char out[32])
{
    int64_t ms = clock->wall_ms(clock);
    hs_iso8601_format(ms / 1000, (int)(ms % 1000), out, 32);
}

/* The models of the notification: the sync's results, or what the store knows. */
static json_t *models_json(struct hs_outbox *o, int64_t job_id, const struct hs_sync_report *r)
{
    json_t *a = json_array();
    if (r) {
        for (size_t i = 0; i < r->n_models; i++) {
            json_t *m = json_object();
            json_object_set_new(m, "id", json_integer(r->models[i].id));
            json_object_set_new(m, "result",
                                json_string(hs_model_result_name(r->models[i].result)));
            json_array_append_new(a, m);
        }
        return a;
    }
    struct hs_model_status *st = NULL;
    size_t n = 0;
    if (o->store->records->job_models_status(o->store, job_id, &st, &n, NULL) == HS_OK) {
        for (size_t i = 0; i < n; i++) {
            const char *res = st[i].synced_updated_at ? "synced"
                              : st[i].has_selection   ? hs_selection_status_name(st[i].selection)
                                                      : "not_synced";
            json_t *m = json_object();
            json_object_set_new(m, "id", json_integer(st[i].model_id));
            json_object_set_new(m, "result", json_string(res));
            json_array_append_new(a, m);
        }
        hs_model_statuses_free(st, n);
    }
    return a;
}

static char *payload_json(struct hs_outbox *o, const char *key, const char *conn, int64_t job_id,
                          const struct hs_sync_report *r, int64_t cursor, int64_t previous)
{
    char when[32], url[64];
    now_iso(o->clock, when);
    snprintf(url, sizeof url, "/api/records?since=%lld", (long long)previous);
    json_t *p = json_object();
    json_object_set_new(p, "type", json_string("hoversync.job.synced"));
    json_object_set_new(p, "id", json_string(key));
    json_object_set_new(p, "job_id", json_integer(job_id));
    json_object_set_new(p, "connection", conn ? json_string(conn) : json_null());
    json_object_set_new(p, "models", models_json(o, job_id, r));
    json_object_set_new(p, "cursor", json_integer(cursor));
    json_object_set_new(p, "previous_cursor", json_integer(previous));
    json_object_set_new(p, "records_url", json_string(url));
    json_object_set_new(p, "created_at", json_string(when));
    char *s = json_dumps(p, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(p);
    if (!s)
        abort(); /* out of memory */
    char *out = hs_strdup(s);
    free(s);
    return out;
}

int hs_outbox_after_sync(struct hs_outbox *o, const char *connection_key, int64_t job_id,
                         const struct hs_sync_report *report, size_t *queued, struct hs_error *err)
{
    if (queued)
        *queued = 0;
    if (!o || !o->cfg.n_endpoints || job_id <= 0)
        return HS_OK;
    /* Built before the transaction (it reads the store); discarded when nothing is due. The
     * cursors are filled in once known, inside the transaction. */
    char name[48];
    snprintf(name, sizeof name, "notify:%lld", (long long)job_id);
    size_t added = 0;
    int rc = o->store->ops->begin(o->store, err);
    if (rc)
        return rc;
    int64_t seq = 0, last = 0;
    char *v = NULL;
    rc = o->store->records->job_synced_seq(o->store, job_id, &seq, err);
    if (rc == HS_OK) {
        int g = o->store->records->checkpoint_get(o->store, name, &v, err);
        if (g == HS_OK)
            (void)hs_parse_i64(v, &last);
        else if (g != HS_ERR_NOT_FOUND)
            rc = g;
        free(v);
    }
    if (rc == HS_OK && seq > last) {
        for (size_t i = 0; rc == HS_OK && i < o->cfg.n_endpoints; i++) {
            char key[65];
            hs_outbox_idempotency_key(o->endpoints[i], job_id, seq, key);
            char *payload = payload_json(o, key, connection_key, job_id, report, seq, last);
            rc = o->store->outbox->outbox_add(o->store, o->endpoints[i], job_id, payload, key, err);
            free(payload);
            added += rc == HS_OK;
        }
        char val[24];
        snprintf(val, sizeof val, "%lld", (long long)seq);
        if (rc == HS_OK)
            rc = o->store->records->checkpoint_put(o->store, name, val, err);
    }
    if (rc) {
        o->store->ops->rollback(o->store);
        return rc;
    }
    rc = o->store->ops->commit(o->store, err);
    if (rc)
        return rc;
    if (added) {
        hs_info("outbox=queued job=%lld cursor=%lld previous=%lld messages=%zu", (long long)job_id,
                (long long)seq, (long long)last, added);
        pthread_mutex_lock(&o->lock);
        o->stats.queued += (int64_t)added;
        pthread_mutex_unlock(&o->lock);
        hs_outbox_wake(o);
    }
    if (queued)
        *queued = added;
    return HS_OK;
}

/* ---- delivery ---- */

/* The holder "<owner> <fence>" names a process of this host that no longer exists (a restart
 * after kill -9 takes over at once instead of waiting for the lease to end). */
static bool owner_dead(const struct hs_outbox *o, const char *v, size_t owner_len)
{
    const char *colon = strchr(o->owner, ':');
    size_t hl = colon ? (size_t)(colon - o->owner) : 0;
    if (!hl || owner_len <= hl + 1 || strncmp(v, o->owner, hl + 1) != 0)
        return false;
    char num[24];
    size_t i = 0;
    for (const char *p = v + hl + 1; p < v + owner_len && *p != ':' && i + 1 < sizeof num; p++)
        num[i++] = *p;
    num[i] = '\0';
    int64_t pid = 0;
    if (hs_parse_i64(num, &pid) != 0 || pid <= 0 || pid == (int64_t)getpid())
        return false;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* Releases the lease of a dead holder of this host (per checkpoint HOLDER_NAME); whether it did.
 * Its fence makes this safe: had another process claimed the lease since, the release would
 * conflict and change nothing. */
static bool release_dead_holder(struct hs_outbox *o)
{
    char *v = NULL;
    if (o->store->records->checkpoint_get(o->store, HOLDER_NAME, &v, NULL) != HS_OK)
        return false;
    const char *sp = strrchr(v, ' ');
    int64_t fence = 0;
    bool released = sp && hs_parse_i64(sp + 1, &fence) == 0 && fence > 0 &&
                    owner_dead(o, v, (size_t)(sp - v)) &&
                    o->store->service->lease_release(o->store, LEASE_NAME, fence, NULL) == HS_OK;
    if (released)
        hs_info("outbox=lease msg=\"released the lease of a process that died\" holder=\"%.*s\"",
                (int)(sp - v), v);
    free(v);
    return released;
}

/* Claims the lease and says so in HOLDER_NAME; false when another process holds it. */
static bool lease_claim(struct hs_outbox *o, int64_t now)
{
    struct hs_error err = {0};
    int64_t fence = 0;
    int rc = o->store->service->lease_claim(o->store, LEASE_NAME, now, LEASE_MS, &fence, &err);
    if (rc == HS_ERR_BUSY && release_dead_holder(o))
        rc = o->store->service->lease_claim(o->store, LEASE_NAME, now, LEASE_MS, &fence, &err);
    if (rc) {
        if (rc != HS_ERR_BUSY)
            hs_warn("outbox=lease error=\"%s\"", err.msg);
        return false;
    }
    o->fence = fence;
    o->lease_until_ms = now + LEASE_MS;
    char val[160];
    snprintf(val, sizeof val, "%s %lld", o->owner, (long long)fence);
    if (o->store->records->checkpoint_put(o->store, HOLDER_NAME, val, &err))
        hs_warn("outbox=lease msg=\"cannot record the holder\" error=\"%s\"", err.msg);
    return true;
}

/* Takes or renews this process's delivery lease; false when another process holds it. Called
 * before every message: a process that was paused past its lease finds it claimed by another
 * and stops delivering. */
static bool lease(struct hs_outbox *o)
{
    int64_t now = o->clock->wall_ms(o->clock);
    if (o->fence && o->lease_until_ms - now > LEASE_MS / 2)
        return true; /* held and fresh: no write needed */
    if (o->fence) {
        struct hs_error err = {0};
        int rc =
            o->store->service->lease_renew(o->store, LEASE_NAME, o->fence, now + LEASE_MS, &err);
        if (rc == HS_OK) {
            o->lease_until_ms = now + LEASE_MS;
            return true;
        }
        if (rc != HS_ERR_CONFLICT) { /* the store is unreachable: hold off until it answers */
            hs_warn("outbox=lease error=\"%s\"", err.msg);
            return false;
        }
        hs_warn("outbox=lease msg=\"lost the delivery lease to another process\"");
        o->fence = 0;
    }
    return lease_claim(o, now);
}

static void release_lease(struct hs_outbox *o)
{
    if (!o->fence)
        return;
    (void)o->store->service->lease_release(o->store, LEASE_NAME, o->fence, NULL);
    o->fence = 0;
}

int hs_outbox_deliver_one(struct hs_outbox *o, bool *sent, struct hs_error *err)
{
    *sent = false;
    struct hs_outbox_row row = {0};
    int64_t now_ms = o->clock->wall_ms(o->clock);
    int rc = o->store->outbox->outbox_next(o->store, now_ms, &row, err);
    if (rc == HS_ERR_NOT_FOUND)
        return HS_OK;
    if (rc)
        return rc;
    *sent = true;

    size_t len = row.payload ? strlen(row.payload) : 0;
    int64_t ts = now_ms / 1000;
    char sig[HS_OUTBOX_SIG_LEN + 1], tsbuf[24];
    hs_outbox_sign(o->secret, ts, row.payload, len, sig);
    snprintf(tsbuf, sizeof tsbuf, "%lld", (long long)ts);
    const struct hs_http_header headers[] = {
        {"Content-Type", "application/json"}, {"Idempotency-Key", row.idempotency_key},
        {"X-Hoversync-Timestamp", tsbuf},     {"X-Hoversync-Signature", sig},
        {"User-Agent", "hoversync-notify/1"},
    };
    struct hs_http_request rq = {
        .method = "POST",
        .url = row.endpoint,
        .headers = headers,
        .n_headers = sizeof headers / sizeof headers[0],
        .body = row.payload,
        .body_len = len,
        .max_response = RESPONSE_MAX,
        .timeout_ms = o->cfg.timeout_ms,
        .max_redirects = -1, /* a redirect is not an acknowledgement */
    };
    struct hs_http_response rs;
    hs_http_response_init(&rs);
    struct hs_error terr = {0};
    int trc = o->transport->perform(o->transport, &rq, &rs, &terr);
    char why[300];
    bool ok = trc == HS_OK && rs.status >= 200 && rs.status < 300;
    if (trc != HS_OK)
        snprintf(why, sizeof why, "%s", terr.msg[0] ? terr.msg : hs_err_name(trc));
    else
        snprintf(why, sizeof why, "HTTP %ld", rs.status);
    hs_http_response_clear(&rs);
    char shown[160];
    hs_url_for_log(row.endpoint, shown, sizeof shown);
    if (ok) {
        rc = o->store->outbox->outbox_delivered(o->store, row.id, err);
        hs_info("outbox=delivered id=%lld job=%lld endpoint=%s attempts=%lld", (long long)row.id,
                (long long)row.job_id, shown, (long long)row.attempts + 1);
        pthread_mutex_lock(&o->lock);
        o->stats.delivered++;
        pthread_mutex_unlock(&o->lock);
    } else {
        int64_t delay =
            hs_outbox_backoff_ms(o->cfg.retry_base_ms, o->cfg.retry_max_ms, row.attempts);
        rc = o->store->outbox->outbox_retry(o->store, row.id, now_ms + delay, why, err);
        hs_warn("outbox=failed id=%lld job=%lld endpoint=%s attempt=%lld error=\"%s\" "
                "retry_in_ms=%lld",
                (long long)row.id, (long long)row.job_id, shown, (long long)row.attempts + 1, why,
                (long long)delay);
        pthread_mutex_lock(&o->lock);
        o->stats.failed_attempts++;
        pthread_mutex_unlock(&o->lock);
    }
    hs_outbox_row_clear(&row);
    return rc;
}

static void *deliverer_main(void *arg)
{
    struct hs_outbox *o = arg;
    bool had_lease = false;
    for (;;) {
        pthread_mutex_lock(&o->lock);
        bool stop = o->stopping;
        o->woken = false;
        pthread_mutex_unlock(&o->lock);
        if (stop)
            break;
        bool sent = false;
        had_lease = lease(o);
        if (had_lease) {
            struct hs_error err = {0};
            if (hs_outbox_deliver_one(o, &sent, &err))
                hs_warn("outbox=error error=\"%s\"", err.msg);
        }
        if (sent)
            continue; /* more may be due */
        pthread_mutex_lock(&o->lock);
        struct timespec until =
            hs_deadline_after(CLOCK_MONOTONIC, had_lease ? o->cfg.idle_ms : LEASE_MS / 3);
        int rc = 0;
        while (!o->stopping && !o->woken && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&o->wake, &o->lock, &until);
        pthread_mutex_unlock(&o->lock);
    }
    release_lease(o);
    return NULL;
}

int hs_outbox_start(struct hs_outbox *o, struct hs_error *err)
{
    if (!o->cfg.n_endpoints)
        return HS_OK; /* nothing to deliver to */
    if (pthread_create(&o->thread, NULL, deliverer_main, o) != 0)
        return hs_fail(err, HS_ERR_INTERNAL, "cannot start the CRM notification deliverer");
    o->started = true;
    return HS_OK;
}
