/* quota.c: how often one caller (the API key, or one browser session) may call the routes that
 * spend Hover requests: --caller-rate-limit a minute (clock minutes). Hover's budget is the
 * integration's (120 requests a minute for every org together): without this, one caller could
 * spend all of it and starve the others.
 *
 * The count is the installation's, in the store (store/service.h caller_rate_take), so that a
 * caller spread over several instances of the service gets the limit once, not once per
 * instance. A store write for every search would cost more than the search, so an instance
 * takes a few of the caller's requests of the minute at a time (LEASE_SHARE of the limit) and
 * hands them out from memory: what it took and did not use lapses with the minute, so the
 * caller may get a few less than the limit (never more). Should the store fail, the request
 * passes (Hover's own budget still holds) and the failure is logged.
 *
 * The table of leases is bounded: when it is full the entry used longest ago is reused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "server/internal.h"
#include "store/service.h"

#define QUOTA_CALLERS 1024
#define MINUTE_MS     60000
/* An instance takes 1 + limit/LEASE_SHARE of a caller's requests at a time. */
#define LEASE_SHARE 20

struct lease {
    char *caller;
    int64_t window; /* the minute the requests left belong to (unix ms) */
    int left;
    int64_t used_ms;
};

struct hs_quota {
    pthread_mutex_t lock;
    int per_minute;
    struct hs_store *store;
    struct lease b[QUOTA_CALLERS];
    int64_t refused;
};

static struct hs_log_limiter store_failed_lines = HS_LOG_LIMITER_INIT(1);

struct hs_quota *hs_quota_new(int per_minute, struct hs_store *store)
{
    if (per_minute <= 0)
        return NULL;
    struct hs_quota *qt = hs_calloc(1, sizeof *qt);
    pthread_mutex_init(&qt->lock, NULL);
    qt->per_minute = per_minute;
    qt->store = store;
    return qt;
}

void hs_quota_free(struct hs_quota *qt)
{
    if (!qt)
        return;
    for (size_t i = 0; i < QUOTA_CALLERS; i++)
        free(qt->b[i].caller);
    pthread_mutex_destroy(&qt->lock);
    free(qt);
}

/* The caller's lease (under the lock), made when missing. */
static struct lease *find(struct hs_quota *qt, const char *caller, int64_t now_ms)
{
    struct lease *oldest = &qt->b[0];
    for (size_t i = 0; i < QUOTA_CALLERS; i++) {
        struct lease *b = &qt->b[i];
        if (b->caller && strcmp(b->caller, caller) == 0) {
            b->used_ms = now_ms;
            return b;
        }
        if (!b->caller || (oldest->caller && b->used_ms < oldest->used_ms))
            oldest = b;
        if (!b->caller)
            break;
    }
    free(oldest->caller);
    oldest->caller = hs_strdup(caller);
    oldest->window = 0;
    oldest->left = 0;
    oldest->used_ms = now_ms;
    return oldest;
}

/* One of the caller's requests of this minute from its lease: true when there was one. */
static bool from_lease(struct hs_quota *qt, const char *caller, int64_t window, int64_t now_ms,
                       int add)
{
    pthread_mutex_lock(&qt->lock);
    struct lease *b = find(qt, caller, now_ms);
    if (b->window != window) {
        b->window = window;
        b->left = 0;
    }
    b->left += add;
    bool ok = b->left > 0;
    if (ok)
        b->left--;
    pthread_mutex_unlock(&qt->lock);
    return ok;
}

int64_t hs_quota_take(struct hs_quota *qt, const char *caller, int64_t now_ms)
{
    if (!qt || !caller)
        return 0;
    int64_t window = now_ms - now_ms % MINUTE_MS;
    if (from_lease(qt, caller, window, now_ms, 0))
        return 0;
    int granted = 0;
    struct hs_error err = {0};
    if (qt->store->service->caller_rate_take(qt->store, caller, window, qt->per_minute,
                                             1 + qt->per_minute / LEASE_SHARE, &granted,
                                             &err) != HS_OK) {
        hs_log_limited(&store_failed_lines, HS_LOG_WARN,
                       "quota msg=\"cannot count the caller's requests in the store: passed\" "
                       "error=\"%s\"",
                       err.msg);
        return 0;
    }
    if (granted > 0 && from_lease(qt, caller, window, now_ms, granted))
        return 0;
    pthread_mutex_lock(&qt->lock);
    qt->refused++;
    pthread_mutex_unlock(&qt->lock);
    return (window + MINUTE_MS - now_ms + 999) / 1000; /* the next minute */
}

int64_t hs_quota_refused(struct hs_quota *qt)
{
    if (!qt)
        return 0;
    pthread_mutex_lock(&qt->lock);
    int64_t n = qt->refused;
    pthread_mutex_unlock(&qt->lock);
    return n;
}

int hs_quota_check(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    if (!s->quota)
        return 0;
    char caller[96];
    if (q->auth == HS_AUTH_SESSION && q->session.token_sha256)
        (void)snprintf(caller, sizeof caller, "session:%s", q->session.token_sha256);
    else if (q->auth == HS_AUTH_KEY) /* each named key its own caller */
        (void)snprintf(caller, sizeof caller, "key%s%s", q->key_name[0] ? ":" : "", q->key_name);
    else
        return 0;
    int64_t wait_s = hs_quota_take(s->quota, caller, s->clock->wall_ms(s->clock));
    if (!wait_s)
        return 0;
    bool key = q->auth == HS_AUTH_KEY;
    hs_resp_error(r, 429, "rate_limited",
                  "too many requests that ask Hover from this %s: at most %d a minute "
                  "(--caller-rate-limit); try again in %lld s",
                  key ? "API key" : "session", s->quota->per_minute, (long long)wait_s);
    char ra[24];
    (void)snprintf(ra, sizeof ra, "%lld", (long long)wait_s);
    hs_resp_header(r, "Retry-After", ra);
    return -1;
}
