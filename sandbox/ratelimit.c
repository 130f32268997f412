/* ratelimit.c: sliding-window request log per key; see ratelimit.h. A key's ring holds the
 * monotonic times of its last `limit` allowed requests: a request is allowed when the oldest of
 * them has left the window. Rejected requests are not recorded, so a client that keeps retrying
 * early is not blocked for ever. */
#include "ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

/* Keys idle for a whole window are dropped once there are this many. */
#define PRUNE_AT 1024

struct rl_key {
    char *name;
    int64_t *ring; /* `limit` slots, allocated on first use */
    size_t head;   /* index of the oldest timestamp when full */
    size_t used;
    int64_t last_ms;
    struct rl_key *next;
};

struct sb_ratelimit {
    pthread_mutex_t lock;
    int64_t limit, window_ms;
    struct rl_key *keys;
    size_t n_keys;
};

static void keys_free(struct rl_key *k)
{
    while (k) {
        struct rl_key *next = k->next;
        free(k->name);
        free(k->ring);
        free(k);
        k = next;
    }
}

struct sb_ratelimit *sb_ratelimit_new(int64_t limit, int64_t window_ms)
{
    struct sb_ratelimit *rl = hs_calloc(1, sizeof *rl);
    pthread_mutex_init(&rl->lock, NULL);
    rl->limit = limit;
    rl->window_ms = window_ms;
    return rl;
}

void sb_ratelimit_free(struct sb_ratelimit *rl)
{
    if (!rl)
        return;
    keys_free(rl->keys);
    pthread_mutex_destroy(&rl->lock);
    free(rl);
}

void sb_ratelimit_configure(struct sb_ratelimit *rl, int64_t limit, int64_t window_ms)
{
    pthread_mutex_lock(&rl->lock);
    keys_free(rl->keys);
    rl->keys = NULL;
    rl->n_keys = 0;
    rl->limit = limit;
    rl->window_ms = window_ms;
    pthread_mutex_unlock(&rl->lock);
}

void sb_ratelimit_settings(struct sb_ratelimit *rl, int64_t *limit, int64_t *window_ms)
{
    pthread_mutex_lock(&rl->lock);
    *limit = rl->limit;
    *window_ms = rl->window_ms;
    pthread_mutex_unlock(&rl->lock);
}

static void prune(struct sb_ratelimit *rl, int64_t now_ms)
{
    struct rl_key **pp = &rl->keys;
    while (*pp) {
        struct rl_key *k = *pp;
        if (now_ms - k->last_ms >= rl->window_ms) {
            *pp = k->next;
            k->next = NULL;
            keys_free(k);
            rl->n_keys--;
        } else {
            pp = &k->next;
        }
    }
}

bool sb_ratelimit_hit(struct sb_ratelimit *rl, const char *key, int64_t now_ms,
                      int64_t *retry_after_s)
{
    bool ok = true;
    pthread_mutex_lock(&rl->lock);
    if (rl->limit <= 0)
        goto out;
    struct rl_key *k = rl->keys;
    while (k && strcmp(k->name, key) != 0)
        k = k->next;
    if (!k) {
        if (rl->n_keys >= PRUNE_AT)
            prune(rl, now_ms);
        k = hs_calloc(1, sizeof *k);
        k->name = hs_strdup(key);
        k->ring = hs_malloc((size_t)rl->limit * sizeof *k->ring);
        k->next = rl->keys;
        rl->keys = k;
        rl->n_keys++;
    }
    size_t cap = (size_t)rl->limit;
    if (k->used == cap) {
        int64_t oldest = k->ring[k->head];
        if (now_ms - oldest < rl->window_ms) {
            int64_t wait_ms = oldest + rl->window_ms - now_ms;
            int64_t s = (wait_ms + 999) / 1000;
            *retry_after_s = s < 1 ? 1 : s;
            ok = false;
            goto out;
        }
        k->ring[k->head] = now_ms;
        k->head = (k->head + 1) % cap;
    } else {
        k->ring[(k->head + k->used) % cap] = now_ms;
        k->used++;
    }
    k->last_ms = now_ms;
out:
    pthread_mutex_unlock(&rl->lock);
    return ok;
}
