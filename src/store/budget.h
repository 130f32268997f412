/* budget.h: the installation's Hover request budget, booked in the store (store.h), so that every
 * process using the store (serve, worker, CLI commands, on one machine or several) shares one
 * budget: Hover counts requests per integration (client id), whatever process sends them.
 *
 * A budget is a log of booked request starts: a booking takes a start at which no window of
 * window_ms (a minute and the safety margin) holds more than `limit` starts. Starts are booked in
 * order (never before the latest booked one), so the limit-th latest start alone tells when the
 * window has room again. A booked start counts whether or not its request is sent: a process
 * that dies after booking wastes that slot and never exceeds the limit. Each booking is one
 * short write transaction (two a second at 120 a minute, for the whole installation).
 *
 * Two classes, across processes:
 *  - interactive (a person waits): books the earliest free start at once, possibly in the
 *    future, and sleeps until it;
 *  - background: books only a start free now, and only when it is the turn of its connection:
 *    among the connections with a background request waiting anywhere, the one served longest
 *    ago (round robin between orgs); at once while its connection is alone, up to a reserve,
 *    spread while others wait (hs_budget_background_rule). Since an interactive booking holds
 *    the next free start as soon as it is made, a background request never takes a slot that
 *    an interactive one waits for.
 * Hover's 429 with Retry-After holds every booking of the budget until then (budget_hold). */
#ifndef HS_STORE_BUDGET_H
#define HS_STORE_BUDGET_H

#include <stdbool.h>

#include "store/store.h"

/* The starts of a window that a lone connection's background work leaves to people: a tenth of
 * the limit (none below ten, where a reserve would take too much of a small budget). */
static inline int hs_budget_reserve(int limit)
{
    return limit / 10;
}

/* How a background start may be taken, the one rule of the store's budget and of a process's own
 * limiter (hover/limiter.c):
 *  - while another connection's background request waits: spaced, at most one every
 *    window/limit, as long as the window has room (the connections share it slot by slot, in
 *    turn, and slots keep freeing for people);
 *  - else, while the window holds fewer than limit - reserve starts (future interactive bookings
 *    included): at once, so a lone sync waits only on Hover;
 *  - else not before the window holds fewer again: a lone backlog never takes the reserve, so a
 *    person arriving behind it still starts at once (and Hover's count has room for a request
 *    the budget does not know of). A lone backlog runs at limit - reserve a window. */
enum hs_budget_background {
    HS_BUDGET_BG_NOW,
    HS_BUDGET_BG_SPACED,
    HS_BUDGET_BG_FULL,
};

static inline enum hs_budget_background
hs_budget_background_rule(int limit, int64_t starts_in_window, bool others_wait)
{
    if (others_wait)
        return HS_BUDGET_BG_SPACED;
    return starts_in_window < limit - hs_budget_reserve(limit) ? HS_BUDGET_BG_NOW
                                                               : HS_BUDGET_BG_FULL;
}

/* How long a background waiter's place in the turn lasts without being renewed: a waiter asks
 * again at least this often (a dead process's place lapses). */
#define HS_BUDGET_WAITER_MS 3000

struct hs_budget_request {
    const char *name;  /* the budget: the integration's client id ("" when none is set) */
    int limit;         /* starts per window, > 0 */
    int64_t window_ms; /* > 0 */
    bool background;
    const char *key;  /* background: the connection the request is for (NULL: "") */
    bool others_wait; /* background: another connection's request waits in the caller's process
                         (it is among the store's waiters only once its turn there comes) */
    int64_t now_ms;   /* unix ms */
};

struct hs_budget_booking {
    bool booked;      /* a start was booked */
    int64_t start_ms; /* booked: when the request may start (>= now); not booked: when asking
                         again may succeed (> now) */
};

/* How the budget is used, as a person plans with it (hoversync status). */
struct hs_budget_usage {
    int64_t interactive, background; /* request starts booked after since_ms, by class */
    int64_t requests_per_job_milli;  /* the Hover requests of the last 50 finished sync runs, on
                                        average, in thousandths; 0: none ran */
};

struct hs_budget_ops {
    /* Books one request start (see above). Interactive requests are always booked; a background
     * one is booked only at now, else *out says when to ask again (and the request's connection
     * keeps its place in the turn until HS_BUDGET_WAITER_MS after this call). */
    int (*budget_book)(struct hs_store *s, const struct hs_budget_request *rq,
                       struct hs_budget_booking *out, struct hs_error *err);
    /* No start of budget `name` before until_ms (unix ms; the later of it and a hold in force
     * wins): Hover answered 429 with Retry-After. */
    int (*budget_hold)(struct hs_store *s, const char *name, int64_t until_ms,
                       struct hs_error *err);
    /* The hold in force for budget `name` (0: none); a read. */
    int (*budget_held_until)(struct hs_store *s, const char *name, int64_t *until_ms,
                             struct hs_error *err);
    /* The background requests of connection `key` stopped waiting (the process stops): its
     * place in the turn is given up at once. */
    int (*budget_leave)(struct hs_store *s, const char *name, const char *key,
                        struct hs_error *err);
    /* A read: the bookings of budget `name` whose start is after since_ms (bookings older than
     * a window are gone: ask about the last minute at most), and the recent runs' cost. */
    int (*budget_usage)(struct hs_store *s, const char *name, int64_t since_ms,
                        struct hs_budget_usage *out, struct hs_error *err);
};

#endif
