/* limiter.c: see limiter.h. The log is a ring of the last `limit` start times (monotonic ms):
 * the oldest entry tells when the window has room again.
 *
 * Interactive callers reserve their start under the mutex and sleep outside it. Background
 * callers queue per connection key (struct bg_key, a ticket counter per key) and take a start
 * only when it is due now; the one whose turn it is (the next key after the last served one,
 * round-robin, and the oldest ticket of that key) sleeps until the next free start, in slices so
 * that hs_limiter_shutdown is noticed; the others wait on `bg_turn`, which every background grant
 * (and the shutdown) broadcasts. The turn changes only at a grant, or when a waiter of a key that
 * had none registers (then that waiter itself holds the turn and is awake), so nobody waits on the
 * condition variable while holding the turn. */
#include "hover/limiter.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

/* The longest a background waiter sleeps before it looks at the shutdown flag again. */
#define BG_SLICE_MS 250

struct bg_key {
    char *key;
    uint64_t next_ticket; /* given to the next waiter of this key */
    uint64_t serving;     /* the ticket whose turn it is within the key */
    struct bg_key *next;  /* in order of first use: the round-robin order */
};

struct hs_limiter {
    pthread_mutex_t lock;
    const struct hs_clock *clock;
    int limit;
    int64_t window_ms;
    int64_t *starts; /* ring of `limit` reserved start times */
    int head;        /* oldest entry, where the next reservation goes */
    int used;
    struct hs_limiter_stats stats;
    /* background */
    pthread_cond_t bg_turn;
    struct bg_key *keys;
    struct bg_key *last_served; /* NULL: none yet */
    int64_t bg_next;            /* the earliest start of the next background request */
    bool shutdown;
};

static _Thread_local enum hs_prio thread_prio = HS_PRIO_INTERACTIVE;

void hs_limiter_set_thread_priority(enum hs_prio p)
{
    thread_prio = p;
}

enum hs_prio hs_limiter_thread_priority(void)
{
    return thread_prio;
}

struct hs_limiter *hs_limiter_new(int limit, int64_t window_ms, const struct hs_clock *clock)
{
    struct hs_limiter *l = hs_calloc(1, sizeof *l);
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->bg_turn, NULL);
    l->clock = clock ? clock : hs_clock_system();
    l->limit = limit > 0 ? limit : 0;
    l->window_ms = window_ms > 0 ? window_ms : 60000;
    if (l->limit)
        l->starts = hs_calloc((size_t)l->limit, sizeof *l->starts);
    return l;
}

void hs_limiter_free(struct hs_limiter *l)
{
    if (!l)
        return;
    struct bg_key *k = l->keys;
    while (k) {
        struct bg_key *next = k->next;
        free(k->key);
        free(k);
        k = next;
    }
    pthread_cond_destroy(&l->bg_turn);
    pthread_mutex_destroy(&l->lock);
    free(l->starts);
    free(l);
}

/* The earliest start a new reservation may take (>= now). Reservations are handed out in order,
 * so it is never before the latest one (an interactive request may hold one in the future). */
static int64_t next_free(const struct hs_limiter *l, int64_t now)
{
    int64_t start = now;
    if (!l->limit)
        return start;
    if (l->used == l->limit) {
        int64_t free_at = l->starts[l->head] + l->window_ms;
        if (free_at > start)
            start = free_at;
    }
    if (l->used > 0) {
        int prev = (l->head + l->limit - 1) % l->limit;
        if (l->starts[prev] > start)
            start = l->starts[prev];
    }
    return start;
}

static void reserve(struct hs_limiter *l, int64_t start)
{
    if (!l->limit)
        return;
    if (l->used < l->limit)
        l->used++;
    l->starts[l->head] = start;
    l->head = (l->head + 1) % l->limit;
}

static int64_t acquire_interactive(struct hs_limiter *l, hs_limiter_notify_fn notify, void *ctx)
{
    pthread_mutex_lock(&l->lock);
    int64_t now = l->clock->mono_ms(l->clock);
    int64_t start = next_free(l, now);
    reserve(l, start);
    int64_t wait = start - now;
    l->stats.acquired++;
    if (wait > 0) {
        l->stats.waits++;
        l->stats.waited_ms += wait;
    }
    pthread_mutex_unlock(&l->lock);
    if (wait > 0 && notify)
        notify(ctx, wait);
    if (wait > 0)
        l->clock->sleep_ms(l->clock, wait);
    return wait > 0 ? wait : 0;
}

static struct bg_key *key_get(struct hs_limiter *l, const char *key)
{
    struct bg_key **pp = &l->keys;
    for (; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->key, key) == 0)
            return *pp;
    *pp = hs_calloc(1, sizeof **pp);
    (*pp)->key = hs_strdup(key);
    return *pp;
}

static bool has_waiter(const struct bg_key *k)
{
    return k->serving != k->next_ticket;
}

/* The key whose turn it is: the first one with a waiter after the last served, cyclically. */
static struct bg_key *turn_key(struct hs_limiter *l)
{
    struct bg_key *k = l->last_served ? l->last_served->next : l->keys;
    for (int pass = 0; pass < 2; pass++) {
        for (; k; k = k->next)
            if (has_waiter(k))
                return k;
        k = l->keys;
    }
    return NULL;
}

static int64_t acquire_background(struct hs_limiter *l, const char *key,
                                  hs_limiter_notify_fn notify, void *ctx)
{
    pthread_mutex_lock(&l->lock);
    if (l->shutdown) {
        pthread_mutex_unlock(&l->lock);
        return HS_ERR_BUSY;
    }
    struct bg_key *k = key_get(l, key ? key : "");
    uint64_t ticket = k->next_ticket++;
    l->stats.background_waiting++;
    int64_t entered = l->clock->mono_ms(l->clock);
    int64_t result;
    bool told = false;
    for (;;) {
        if (l->shutdown) {
            result = HS_ERR_BUSY;
            k->serving++; /* hand the key's turn on: the others leave too */
            break;
        }
        int64_t now = l->clock->mono_ms(l->clock);
        bool my_turn = turn_key(l) == k && k->serving == ticket;
        if (!my_turn) {
            pthread_cond_wait(&l->bg_turn, &l->lock);
            continue;
        }
        int64_t start = next_free(l, now);
        if (start < l->bg_next)
            start = l->bg_next;
        if (start <= now) {
            reserve(l, now);
            /* Spread evenly, never in a burst: the window then frees a slot every
             * window/limit, and an interactive request never waits long behind a backlog. */
            l->bg_next = now + (l->limit ? l->window_ms / l->limit : 0);
            k->serving++;
            l->last_served = k;
            result = now - entered;
            l->stats.acquired++;
            l->stats.background_acquired++;
            if (result > 0) {
                l->stats.waits++;
                l->stats.waited_ms += result;
            }
            break;
        }
        int64_t wait = start - now;
        pthread_mutex_unlock(&l->lock);
        if (notify && !told)
            notify(ctx, wait);
        told = true;
        l->clock->sleep_ms(l->clock, wait < BG_SLICE_MS ? wait : BG_SLICE_MS);
        pthread_mutex_lock(&l->lock);
    }
    l->stats.background_waiting--;
    pthread_cond_broadcast(&l->bg_turn);
    pthread_mutex_unlock(&l->lock);
    return result;
}

int64_t hs_limiter_acquire_notify(struct hs_limiter *l, enum hs_prio prio, const char *key,
                                  hs_limiter_notify_fn notify, void *ctx)
{
    if (!l)
        return 0;
    if (prio == HS_PRIO_BACKGROUND)
        return acquire_background(l, key, notify, ctx);
    return acquire_interactive(l, notify, ctx);
}

int64_t hs_limiter_acquire_as(struct hs_limiter *l, enum hs_prio prio, const char *key)
{
    return hs_limiter_acquire_notify(l, prio, key, NULL, NULL);
}

int64_t hs_limiter_acquire(struct hs_limiter *l)
{
    return hs_limiter_acquire_as(l, thread_prio, NULL);
}

void hs_limiter_shutdown(struct hs_limiter *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->lock);
    l->shutdown = true;
    pthread_cond_broadcast(&l->bg_turn);
    pthread_mutex_unlock(&l->lock);
}

void hs_limiter_get_stats(struct hs_limiter *l, struct hs_limiter_stats *out)
{
    pthread_mutex_lock(&l->lock);
    *out = l->stats;
    pthread_mutex_unlock(&l->lock);
}
