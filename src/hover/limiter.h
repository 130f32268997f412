/* limiter.h: the client-side request limiter. Hover allows 120 requests a minute per integration
 * and answers more with 429 and a temporary block, so the process keeps itself under the budget
 * instead of finding the limit by hitting it.
 *
 * A sliding-window log: a request may start only when fewer than `limit` requests started in the
 * preceding window. Each caller reserves its start time under the mutex and then sleeps (through
 * the clock) outside it, so that the limiter is thread-safe and callers are served in order.
 * One limiter may be shared by several clients (one per connected org): the budget is per
 * integration, not per org. A limiter made by hs_limiter_new_shared books its starts in the store
 * instead (store/budget.h): then every process using the store shares the one budget. */
#ifndef HS_HOVER_LIMITER_H
#define HS_HOVER_LIMITER_H

#include <stdint.h>

#include "core/clock.h"
#include "hoversync.h"

struct hs_limiter;
struct hs_store;

/* limit requests per window_ms (60000 for "per minute"); limit <= 0 makes a limiter that never
 * waits. The clock is borrowed. */
struct hs_limiter *hs_limiter_new(int limit, int64_t window_ms, const struct hs_clock *clock);
/* The installation's budget: every start booked in `store` under the budget `name` (the
 * integration's client id), counted with the starts of every other process using the store, in
 * the same two classes (store/budget.h says how they are shared across processes). Should the
 * store fail, a request counts in this process's own log instead (logged). The store is
 * borrowed and must outlive the limiter. limit <= 0: a limiter that never waits. */
struct hs_limiter *hs_limiter_new_shared(int limit, int64_t window_ms, const struct hs_clock *clock,
                                         struct hs_store *store, const char *name);
void hs_limiter_free(struct hs_limiter *l);

/* Waits until a request may start and counts it; returns the milliseconds waited (0 if none).
 * The request counts in the calling thread's class (hs_limiter_set_thread_priority), under no
 * connection key. */
int64_t hs_limiter_acquire(struct hs_limiter *l);

/* ---- two classes of work share the one budget ----
 * Interactive requests (a person waits: the modal's search and Show Job, POST /api/syncs) reserve
 * the next free start at once, in arrival order, exactly as above. Background requests (webhook
 * syncs, reconciliation, the pending pass, backfill) never reserve ahead: one may start only at a
 * moment when the window has room *now* and no interactive request holds a reservation at or
 * after that moment. So when both wait, interactive goes first (it books the slot that frees
 * next, the background waiter finds it taken and waits for the one after), and background gets
 * whatever interactive work leaves. While one connection alone has background work waiting, it
 * takes the free starts at once, up to limit - reserve in the window (the reserve, a tenth of the
 * limit, stays free for people: 108 of 120 a minute), then waits for the window to hold fewer, so
 * a person behind a lone backlog starts at once. While another connection's background request
 * waits, background starts are spread evenly instead, at most one every window/limit (0.5 s for
 * 120 a minute) up to the whole limit, so slots keep freeing and an interactive request arriving
 * behind them waits about that long, not a whole window (hs_budget_background_rule in
 * store/budget.h, the one rule of both).
 *
 * Fairness between connections (orgs) for background work: background waiters queue per
 * connection key, and the slot that frees goes to the connections in turn (round-robin over the
 * keys that have a waiter, FIFO within a key). Only the waiter whose turn it is sleeps until the
 * slot frees; the others wait on a condition variable. Together with work_claim going round the
 * connections (store.h), one org's backlog cannot starve another's.
 *
 * A shared limiter (hs_limiter_new_shared) keeps these rules across processes: the turn between
 * connections goes through the store too, and the reserve and the spacing are the installation's.
 */
enum hs_prio {
    HS_PRIO_INTERACTIVE = 0,
    HS_PRIO_BACKGROUND = 1,
};

/* The class of the requests the calling thread sends (thread-local; interactive until set).
 * Worker threads set HS_PRIO_BACKGROUND once at their start. */
void hs_limiter_set_thread_priority(enum hs_prio p);
enum hs_prio hs_limiter_thread_priority(void);

/* hs_limiter_acquire with an explicit class and the connection key the request is for (NULL:
 * one shared key). Returns the milliseconds waited, or HS_ERR_BUSY (negative) when a
 * background waiter was released by hs_limiter_shutdown: then the request must not be sent. */
int64_t hs_limiter_acquire_as(struct hs_limiter *l, enum hs_prio prio, const char *key);

/* hs_limiter_acquire_as that tells before it sleeps: notify(ctx, ms) is called once, outside
 * the mutex, with the expected wait when the request has to wait for the budget (for a
 * background request: when its turn has come and the slot is still ahead). */
typedef void (*hs_limiter_notify_fn)(void *ctx, int64_t wait_ms);
int64_t hs_limiter_acquire_notify(struct hs_limiter *l, enum hs_prio prio, const char *key,
                                  hs_limiter_notify_fn notify, void *ctx);

/* Hover answered 429 and asks to wait wait_ms (Retry-After): no request of this limiter starts
 * before then, nor, for a shared limiter, a request of any process using the store. */
void hs_limiter_hold(struct hs_limiter *l, int64_t wait_ms);

/* Releases every background waiter (now and later) with HS_ERR_BUSY, so that worker threads
 * stop without waiting for the budget; interactive requests are not affected. */
void hs_limiter_shutdown(struct hs_limiter *l);

struct hs_limiter_stats {
    int64_t acquired; /* both classes */
    int64_t waits;
    int64_t waited_ms;
    int64_t background_acquired;
    int64_t background_waited_ms; /* of the background class alone */
    int64_t background_waiting;   /* background requests waiting now */
};
void hs_limiter_get_stats(struct hs_limiter *l, struct hs_limiter_stats *out);

#endif
