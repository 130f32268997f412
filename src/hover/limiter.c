/* limiter.c: see limiter.h. The log is a ring of the last `limit` start times (monotonic ms):
 * the oldest entry tells when the window has room again. A shared limiter books in the store
 * instead (store/budget.h, wall-clock ms) and keeps the ring only for when the store fails.
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

#include "core/log.h"
#include "core/mem.h"
#include "store/budget.h"

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
    int64_t hold_until; /* Hover's Retry-After, monotonic ms: no start before */
    /* shared: the budget booked in the store (NULL: this process's ring alone) */
    struct hs_store *store;
    char *budget;
};

static struct hs_log_limiter store_failed_lines = HS_LOG_LIMITER_INIT(1);

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

struct hs_limiter *hs_limiter_new_shared(int limit, int64_t window_ms, const struct hs_clock *clock,
                                         struct hs_store *store, const char *budget)
{
    struct hs_limiter *l = hs_limiter_new(limit, window_ms, clock);
    if (l->limit && store) {
        l->store = store;
        l->budget = hs_strdup(budget ? budget : "");
    }
    return l;
}

void hs_limiter_free(struct hs_limiter *l)
{
    if (!l)
        return;
    free(l->budget);
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
    if (!l->limit)
        return now;
    int64_t start = now > l->hold_until ? now : l->hold_until;
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

/* Books one start of the shared budget in the store: HS_OK with *b booked, or when to ask
 * again; b->start_ms is made relative to now (a wait in ms). A failure is logged (at most a line
 * a second) and the caller counts in this process's ring instead. */
static int shared_book(struct hs_limiter *l, bool background, const char *key, bool others_wait,
                       struct hs_budget_booking *b)
{
    struct hs_budget_request rq = {.name = l->budget,
                                   .limit = l->limit,
                                   .window_ms = l->window_ms,
                                   .background = background,
                                   .key = key ? key : "",
                                   .others_wait = others_wait,
                                   .now_ms = l->clock->wall_ms(l->clock)};
    struct hs_error err = {0};
    int rc = l->store->budget->budget_book(l->store, &rq, b, &err);
    if (rc)
        hs_log_limited(&store_failed_lines, HS_LOG_WARN,
                       "limiter msg=\"cannot book in the store: this process counts alone\" "
                       "error=\"%s\"",
                       err.msg);
    else
        b->start_ms -= rq.now_ms;
    return rc;
}

/* After a wait for a shared start: a 429 another process met meanwhile holds this request too
 * (the hold is read once: a short read transaction). */
static void shared_wait_hold(struct hs_limiter *l)
{
    int64_t until = 0;
    if (l->store->budget->budget_held_until(l->store, l->budget, &until, NULL) != HS_OK)
        return;
    int64_t wait = until - l->clock->wall_ms(l->clock);
    if (wait > 0)
        l->clock->sleep_ms(l->clock, wait);
}

static int64_t acquire_interactive(struct hs_limiter *l, hs_limiter_notify_fn notify, void *ctx)
{
    struct hs_budget_booking b = {0};
    bool shared = l->store && shared_book(l, false, NULL, false, &b) == HS_OK;
    pthread_mutex_lock(&l->lock);
    int64_t now = l->clock->mono_ms(l->clock);
    int64_t start = shared ? now + b.start_ms : next_free(l, now);
    if (!shared)
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
    if (wait > 0 && shared)
        shared_wait_hold(l);
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

/* Another connection than k has a background request waiting. */
static bool others_wait(const struct hs_limiter *l, const struct bg_key *k)
{
    for (const struct bg_key *o = l->keys; o; o = o->next)
        if (o != k && has_waiter(o))
            return true;
    return false;
}

/* The starts in the ring within the window before now (reserved future ones included). The ring
 * is in order: counted from the latest back. */
static int64_t starts_in_window(const struct hs_limiter *l, int64_t now)
{
    int64_t n = 0;
    for (int i = 1; i <= l->used; i++) {
        if (l->starts[(l->head + l->limit - i) % l->limit] <= now - l->window_ms)
            break;
        n++;
    }
    return n;
}

/* The waiter holding the turn, between two looks at the budget. */
struct bg_wait {
    int64_t ask_at; /* shared: when to ask the store again (monotonic ms) */
    bool local;     /* the store failed: this request counts in the ring */
    int64_t expect; /* the wait expected at the last look, for notify */
};

/* For the waiter whose turn it is: 0 when its request may start now (booked in the store, or
 * reserved in the ring), else how long to wait before looking again (w->expect: the whole wait
 * expected). Called and returns with the lock held; the store is asked without it, only when it
 * said a start may be free, or to renew the connection's place among the store's waiters. */
static int64_t background_look(struct hs_limiter *l, struct bg_key *k, int64_t now,
                               struct bg_wait *w)
{
    if (l->store && !w->local && now >= w->ask_at) {
        struct hs_budget_booking b = {0};
        bool others = others_wait(l, k);
        pthread_mutex_unlock(&l->lock);
        int rc = shared_book(l, true, k->key, others, &b);
        pthread_mutex_lock(&l->lock);
        w->local = rc != HS_OK;
        if (!rc && b.booked)
            return 0;
        if (!rc) {
            int64_t again =
                b.start_ms < HS_BUDGET_WAITER_MS / 2 ? b.start_ms : HS_BUDGET_WAITER_MS / 2;
            w->ask_at = now + (again > 1 ? again : 1);
            w->expect = b.start_ms;
        }
    }
    if (l->store && !w->local)
        return w->ask_at - now > 0 ? w->ask_at - now : 1;
    /* A shared limiter counts here only while the store fails: it knows neither the
     * installation's starts nor its waiters then, so it keeps to the spacing. */
    enum hs_budget_background rule =
        l->store || !l->limit
            ? (l->limit ? HS_BUDGET_BG_SPACED : HS_BUDGET_BG_NOW)
            : hs_budget_background_rule(l->limit, starts_in_window(l, now), others_wait(l, k));
    int64_t start = next_free(l, now);
    if (rule == HS_BUDGET_BG_SPACED && start < l->bg_next)
        start = l->bg_next;
    if (rule == HS_BUDGET_BG_FULL) { /* the window holds room = limit - reserve starts or more */
        int room = l->limit - hs_budget_reserve(l->limit);
        int64_t room_at = l->starts[(l->head + l->limit - room) % l->limit] + l->window_ms;
        if (start < room_at)
            start = room_at;
    }
    if (start <= now) {
        reserve(l, now);
        /* When spaced, spread evenly: the window then frees a slot every window/limit, and an
         * interactive request never waits long behind a backlog. */
        l->bg_next = now + (l->limit ? l->window_ms / l->limit : 0);
        return 0;
    }
    w->expect = start - now;
    return start - now;
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
    struct bg_wait bw = {0};
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
        int64_t wait = background_look(l, k, now, &bw);
        if (l->shutdown)
            continue; /* noticed while the store was asked */
        if (wait <= 0) {
            now = l->clock->mono_ms(l->clock);
            k->serving++;
            l->last_served = k;
            result = now - entered;
            l->stats.acquired++;
            l->stats.background_acquired++;
            if (result > 0) {
                l->stats.waits++;
                l->stats.waited_ms += result;
                l->stats.background_waited_ms += result;
            }
            break;
        }
        pthread_mutex_unlock(&l->lock);
        if (notify && !told)
            notify(ctx, bw.expect);
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

void hs_limiter_hold(struct hs_limiter *l, int64_t wait_ms)
{
    if (!l || !l->limit || wait_ms <= 0)
        return;
    pthread_mutex_lock(&l->lock);
    int64_t until = l->clock->mono_ms(l->clock) + wait_ms;
    if (until > l->hold_until)
        l->hold_until = until;
    pthread_mutex_unlock(&l->lock);
    struct hs_error err = {0};
    if (l->store && l->store->budget->budget_hold(l->store, l->budget,
                                                  l->clock->wall_ms(l->clock) + wait_ms, &err))
        hs_warn("limiter msg=\"cannot tell the other processes to wait\" error=\"%s\"", err.msg);
}

void hs_limiter_shutdown(struct hs_limiter *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->lock);
    l->shutdown = true;
    pthread_cond_broadcast(&l->bg_turn);
    size_t n = 0;
    for (struct bg_key *k = l->keys; k; k = k->next)
        n++;
    char **keys = hs_calloc(n + 1, sizeof *keys);
    n = 0;
    for (struct bg_key *k = l->keys; l->store && k; k = k->next)
        keys[n++] = hs_strdup(k->key);
    pthread_mutex_unlock(&l->lock);
    /* This process's background requests wait no more: the other processes need not wait for
     * their places in the store's turn to lapse. */
    for (size_t i = 0; i < n; i++) {
        (void)l->store->budget->budget_leave(l->store, l->budget, keys[i], NULL);
        free(keys[i]);
    }
    free(keys);
}

void hs_limiter_get_stats(struct hs_limiter *l, struct hs_limiter_stats *out)
{
    pthread_mutex_lock(&l->lock);
    *out = l->stats;
    pthread_mutex_unlock(&l->lock);
}
