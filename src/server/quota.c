/* quota.c: how often one caller (the API key, or one browser session) may call the routes that
 * spend Hover requests. A token bucket per caller: per_minute tokens, refilled continuously, a
 * full minute's worth at most, so a burst (a user typing) passes and a loop does not. Hover's
 * budget is the integration's (120 requests a minute for every org together): without this, one
 * caller could spend all of it and starve the others.
 *
 * The table is bounded: when it is full the bucket used longest ago is reused (a caller idle
 * that long has a full bucket anyway). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "server/internal.h"

#define QUOTA_CALLERS 1024

struct bucket {
    char *caller;
    double tokens;
    int64_t at_ms;
};

struct hs_quota {
    pthread_mutex_t lock;
    int per_minute;
    struct bucket b[QUOTA_CALLERS];
    int64_t refused;
};

struct hs_quota *hs_quota_new(int per_minute)
{
    if (per_minute <= 0)
        return NULL;
    struct hs_quota *qt = hs_calloc(1, sizeof *qt);
    pthread_mutex_init(&qt->lock, NULL);
    qt->per_minute = per_minute;
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

static struct bucket *find(struct hs_quota *qt, const char *caller, int64_t now_ms)
{
    struct bucket *oldest = &qt->b[0];
    for (size_t i = 0; i < QUOTA_CALLERS; i++) {
        struct bucket *b = &qt->b[i];
        if (b->caller && strcmp(b->caller, caller) == 0)
            return b;
        if (!b->caller || (oldest->caller && b->at_ms < oldest->at_ms))
            oldest = b;
        if (!b->caller)
            break;
    }
    free(oldest->caller);
    oldest->caller = hs_strdup(caller);
    oldest->tokens = qt->per_minute;
    oldest->at_ms = now_ms;
    return oldest;
}

int64_t hs_quota_take(struct hs_quota *qt, const char *caller, int64_t now_ms)
{
    if (!qt || !caller)
        return 0;
    pthread_mutex_lock(&qt->lock);
    struct bucket *b = find(qt, caller, now_ms);
    double rate = qt->per_minute / 60000.0; /* tokens a millisecond */
    if (now_ms > b->at_ms)
        b->tokens += (double)(now_ms - b->at_ms) * rate;
    if (b->tokens > qt->per_minute)
        b->tokens = qt->per_minute;
    b->at_ms = now_ms;
    int64_t wait_s = 0;
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
    } else {
        wait_s = (int64_t)((1.0 - b->tokens) / rate / 1000.0) + 1;
        qt->refused++;
    }
    pthread_mutex_unlock(&qt->lock);
    return wait_s;
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
    else if (q->auth == HS_AUTH_KEY)
        (void)snprintf(caller, sizeof caller, "key");
    else
        return 0;
    int64_t wait_s = hs_quota_take(s->quota, caller, hs_server_mono_ms(s));
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
