/* pg_budget.c: the Hover request budget in the PostgreSQL back-end (store/budget.h; the tables
 * budget_bookings, budgets and budget_waiters are migration 14). A booking is one short write
 * transaction that first locks its budget's row (SELECT ... FOR UPDATE): the bookings of every
 * process and every machine on one budget take their turn there, and each statement after the
 * lock reads the bookings committed before it (READ COMMITTED), so the count a booking reads is
 * the one it writes against and two processes never book over the limit. */
#include <string.h>

#include "store/budget.h"
#include "store/pg_internal.h"

/* A background request that is not its connection's turn asks again this long after the slot
 * (the connection whose turn it is books it first, if it still waits). */
#define NOT_MY_TURN_MS 100

static const char *name_of(const char *name)
{
    return name ? name : "";
}

static const char *key_of(const char *key)
{
    return key ? key : "";
}

static int64_t later(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

struct budget_row {
    int64_t hold, next_bg;
};

static int budget_fill(struct pg_txn *t, const PGresult *r, int i, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    struct budget_row *b = row;
    b->hold = hs_pg_col_int(r, i, 0);
    b->next_bg = hs_pg_col_int(r, i, 1);
    return HS_OK;
}

/* The budget's row (made when missing), locked until the transaction ends: its hold and the
 * next background start. */
static int budget_lock(struct pg_txn *t, const char *name, struct budget_row *out,
                       struct hs_error *err)
{
    struct pg_args a = {0};
    hs_pg_text(&a, name);
    int rc =
        hs_pg_run(t, "INSERT INTO budgets (budget) VALUES ($1) ON CONFLICT (budget) DO NOTHING", &a,
                  NULL, "booking a request", err);
    if (!rc)
        rc = hs_pg_one(t,
                       "SELECT hold_until_ms, next_background_ms FROM budgets WHERE budget = $1 "
                       "FOR UPDATE",
                       &a, budget_fill, out, "booking a request", err);
    if (rc == HS_ERR_NOT_FOUND)
        rc = hs_fail(err, HS_ERR_DB, "the budget's row vanished while booking a request");
    return rc;
}

/* The earliest start free for a new booking: not before now, the hold, the latest booked start,
 * nor a window after the limit-th latest. Forgets the starts older than a window first. */
static int free_start(struct pg_txn *t, const struct hs_budget_request *rq, int64_t hold,
                      int64_t *out, struct hs_error *err)
{
    int64_t latest = 0, full_until = 0;
    struct pg_args a = {0};
    hs_pg_text(&a, name_of(rq->name));
    hs_pg_int(&a, rq->now_ms - rq->window_ms);
    int rc = hs_pg_run(t, "DELETE FROM budget_bookings WHERE budget = $1 AND start_ms <= $2", &a,
                       NULL, "booking a request", err);
    struct pg_args b = {0};
    hs_pg_text(&b, name_of(rq->name));
    if (!rc)
        rc = hs_pg_int1(t, "SELECT MAX(start_ms) FROM budget_bookings WHERE budget = $1", &b,
                        &latest, "booking a request", err);
    hs_pg_int(&b, rq->limit - 1);
    hs_pg_int(&b, rq->window_ms);
    if (!rc) /* NULL (0): the window is not full */
        rc = hs_pg_int1(t,
                        "SELECT (SELECT start_ms FROM budget_bookings WHERE budget = $1 "
                        "ORDER BY start_ms DESC LIMIT 1 OFFSET $2) + $3",
                        &b, &full_until, "booking a request", err);
    if (!rc)
        *out = later(later(rq->now_ms, hold), later(latest, full_until));
    return rc;
}

static int insert_booking(struct pg_txn *t, const struct hs_budget_request *rq, int64_t start,
                          struct hs_error *err)
{
    struct pg_args a = {0};
    hs_pg_text(&a, name_of(rq->name));
    hs_pg_int(&a, start);
    hs_pg_bool(&a, rq->background);
    return hs_pg_run(t,
                     "INSERT INTO budget_bookings (budget, start_ms, background) "
                     "VALUES ($1, $2, $3)",
                     &a, NULL, "booking a request", err);
}

/* Renews the place of rq's connection among the waiters; *mine when it is its turn (the waiting
 * connection served longest ago). */
static int background_turn(struct pg_txn *t, const struct hs_budget_request *rq, bool *mine,
                           struct hs_error *err)
{
    char *first = NULL;
    struct pg_args a = {0};
    hs_pg_text(&a, name_of(rq->name));
    hs_pg_text(&a, key_of(rq->key));
    hs_pg_int(&a, rq->now_ms + HS_BUDGET_WAITER_MS);
    int rc = hs_pg_run(t,
                       "INSERT INTO budget_waiters (budget, connection_key, waiting_until_ms) "
                       "VALUES ($1, $2, $3) ON CONFLICT (budget, connection_key) "
                       "DO UPDATE SET waiting_until_ms = excluded.waiting_until_ms",
                       &a, NULL, "booking a request", err);
    struct pg_args b = {0};
    hs_pg_text(&b, name_of(rq->name));
    hs_pg_int(&b, rq->now_ms);
    if (!rc)
        rc = hs_pg_one(t,
                       "SELECT connection_key FROM budget_waiters WHERE budget = $1 "
                       "AND waiting_until_ms > $2 ORDER BY last_turn, connection_key LIMIT 1",
                       &b, hs_pg_fill_text, &first, "booking a request", err);
    if (rc == HS_ERR_NOT_FOUND)
        rc = HS_OK;
    if (!rc)
        *mine = first && strcmp(first, key_of(rq->key)) == 0;
    hs_pg_clear_text(&first);
    return rc;
}

/* A background start booked at now: the next spaced one no sooner than window/limit, and rq's
 * connection goes to the back of the turn. */
static int background_served(struct pg_txn *t, const struct hs_budget_request *rq,
                             struct hs_error *err)
{
    struct pg_args a = {0};
    hs_pg_text(&a, name_of(rq->name));
    hs_pg_int(&a, rq->now_ms + rq->window_ms / rq->limit);
    int rc = hs_pg_run(t,
                       "UPDATE budgets SET turn = turn + 1, next_background_ms = $2 "
                       "WHERE budget = $1",
                       &a, NULL, "booking a request", err);
    struct pg_args b = {0};
    hs_pg_text(&b, name_of(rq->name));
    hs_pg_text(&b, key_of(rq->key));
    if (!rc)
        rc = hs_pg_run(t,
                       "UPDATE budget_waiters SET waiting_until_ms = 0, last_turn = "
                       "(SELECT turn FROM budgets WHERE budget = $1) "
                       "WHERE budget = $1 AND connection_key = $2",
                       &b, NULL, "booking a request", err);
    return rc;
}

/* How rq's background start may be taken (hs_budget_background_rule): another connection
 * waits (here, or in rq's process as it says), or how many starts the window holds; for
 * HS_BUDGET_BG_FULL, *room_at: when it holds fewer than a lone connection may take. Read after
 * free_start forgot the starts older than a window. */
static int background_rule(struct pg_txn *t, const struct hs_budget_request *rq,
                           enum hs_budget_background *rule, int64_t *room_at, struct hs_error *err)
{
    int64_t others = 0, starts = 0;
    struct pg_args a = {0};
    hs_pg_text(&a, name_of(rq->name));
    hs_pg_int(&a, rq->now_ms);
    hs_pg_text(&a, key_of(rq->key));
    int rc = hs_pg_int1(t,
                        "SELECT COUNT(*) FROM budget_waiters WHERE budget = $1 "
                        "AND waiting_until_ms > $2 AND connection_key <> $3",
                        &a, &others, "booking a request", err);
    struct pg_args b = {0};
    hs_pg_text(&b, name_of(rq->name));
    if (!rc)
        rc = hs_pg_int1(t, "SELECT COUNT(*) FROM budget_bookings WHERE budget = $1", &b, &starts,
                        "booking a request", err);
    if (!rc)
        *rule = hs_budget_background_rule(rq->limit, starts, rq->others_wait || others > 0);
    hs_pg_int(&b, rq->limit - hs_budget_reserve(rq->limit) - 1);
    hs_pg_int(&b, rq->window_ms);
    if (!rc && *rule == HS_BUDGET_BG_FULL)
        rc = hs_pg_int1(t,
                        "SELECT (SELECT start_ms FROM budget_bookings WHERE budget = $1 "
                        "ORDER BY start_ms DESC LIMIT 1 OFFSET $2) + $3",
                        &b, room_at, "booking a request", err);
    return rc;
}

static int book_in(struct pg_txn *t, const struct hs_budget_request *rq,
                   struct hs_budget_booking *out, struct hs_error *err)
{
    struct budget_row b = {0};
    int64_t start = 0;
    int rc = budget_lock(t, name_of(rq->name), &b, err);
    if (!rc)
        rc = free_start(t, rq, b.hold, &start, err);
    if (rc)
        return rc;
    if (!rq->background) {
        out->booked = true;
        out->start_ms = start;
        return insert_booking(t, rq, start, err);
    }
    bool mine = false;
    /* not rq's turn: another connection waits */
    enum hs_budget_background rule = HS_BUDGET_BG_SPACED;
    int64_t room_at = 0;
    if ((rc = background_turn(t, rq, &mine, err)))
        return rc;
    if (mine && (rc = background_rule(t, rq, &rule, &room_at, err)))
        return rc;
    if (rule == HS_BUDGET_BG_SPACED)
        start = later(start, b.next_bg);
    else if (rule == HS_BUDGET_BG_FULL)
        start = later(start, room_at);
    if (mine && start <= rq->now_ms) {
        out->booked = true;
        out->start_ms = rq->now_ms;
        rc = insert_booking(t, rq, rq->now_ms, err);
        return rc ? rc : background_served(t, rq, err);
    }
    out->booked = false;
    out->start_ms = mine ? start : later(start, rq->now_ms) + NOT_MY_TURN_MS;
    return HS_OK;
}

static int pg_budget_book(struct hs_store *base, const struct hs_budget_request *rq,
                          struct hs_budget_booking *out, struct hs_error *err)
{
    if (!rq || rq->limit <= 0 || rq->window_ms <= 0)
        return hs_fail(err, HS_ERR_INVALID, "a budget booking needs a limit and a window");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "budget_book", err);
    if (rc)
        return rc;
    struct hs_budget_booking b = {0};
    rc = hs_pg_leave(&t, book_in(&t, rq, &b, err), err);
    if (!rc)
        *out = b;
    return rc;
}

static int pg_budget_hold(struct hs_store *base, const char *name, int64_t until_ms,
                          struct hs_error *err)
{
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "budget_hold", err);
    if (rc)
        return rc;
    struct pg_args a = {0};
    hs_pg_text(&a, name_of(name));
    hs_pg_int(&a, until_ms);
    rc = hs_pg_run(&t,
                   "INSERT INTO budgets (budget, hold_until_ms) VALUES ($1, $2) "
                   "ON CONFLICT (budget) DO UPDATE SET "
                   "hold_until_ms = GREATEST(budgets.hold_until_ms, excluded.hold_until_ms)",
                   &a, NULL, "holding the budget", err);
    return hs_pg_leave(&t, rc, err);
}

static int pg_budget_held_until(struct hs_store *base, const char *name, int64_t *until_ms,
                                struct hs_error *err)
{
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "budget_held_until", err);
    if (rc)
        return rc;
    int64_t v = 0;
    struct pg_args a = {0};
    hs_pg_text(&a, name_of(name));
    rc = hs_pg_int1(&t, "SELECT hold_until_ms FROM budgets WHERE budget = $1", &a, &v,
                    "reading the budget's hold", err);
    rc = hs_pg_leave(&t, rc, err);
    if (!rc)
        *until_ms = v;
    return rc;
}

static int pg_budget_leave(struct hs_store *base, const char *name, const char *key,
                           struct hs_error *err)
{
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "budget_leave", err);
    if (rc)
        return rc;
    struct pg_args a = {0};
    hs_pg_text(&a, name_of(name));
    hs_pg_text(&a, key_of(key));
    rc = hs_pg_run(&t,
                   "UPDATE budget_waiters SET waiting_until_ms = 0 "
                   "WHERE budget = $1 AND connection_key = $2",
                   &a, NULL, "leaving the budget's turn", err);
    return hs_pg_leave(&t, rc, err);
}

static int pg_budget_usage(struct hs_store *base, const char *name, int64_t since_ms,
                           struct hs_budget_usage *out, struct hs_error *err)
{
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "budget_usage", err);
    if (rc)
        return rc;
    struct hs_budget_usage u = {0};
    struct pg_args a = {0};
    hs_pg_text(&a, name_of(name));
    hs_pg_int(&a, since_ms);
    rc = hs_pg_int1(&t,
                    "SELECT COUNT(*) FROM budget_bookings WHERE budget = $1 AND start_ms > $2 "
                    "AND NOT background",
                    &a, &u.interactive, "reading the budget's use", err);
    if (!rc)
        rc = hs_pg_int1(&t,
                        "SELECT COUNT(*) FROM budget_bookings WHERE budget = $1 AND start_ms > $2 "
                        "AND background",
                        &a, &u.background, "reading the budget's use", err);
    if (!rc)
        rc = hs_pg_int1(
            &t,
            "SELECT COALESCE(CAST(AVG(hover_requests) * 1000 AS bigint), 0) FROM (SELECT "
            "hover_requests FROM sync_runs WHERE status != 'running' AND hover_requests > 0 ORDER "
            "BY "
            "id DESC LIMIT 50) r",
            NULL, &u.requests_per_job_milli, "reading the runs' cost", err);
    rc = hs_pg_leave(&t, rc, err);
    if (!rc)
        *out = u;
    return rc;
}

const struct hs_budget_ops hs_pg_budget_ops = {
    .budget_book = pg_budget_book,
    .budget_hold = pg_budget_hold,
    .budget_held_until = pg_budget_held_until,
    .budget_leave = pg_budget_leave,
    .budget_usage = pg_budget_usage,
};
