/* sqlite_budget.c: the Hover request budget in the SQLite back-end (store/budget.h; the tables
 * budget_bookings, budgets and budget_waiters are migration 14). A booking is one write
 * transaction: BEGIN IMMEDIATE makes the bookings of every process take their turn, so the
 * count a booking reads is the one it writes against. */
#include <string.h>

#include "store/budget.h"
#include "store/sqlite_internal.h"

/* A background request that is not its connection's turn asks again this long after the slot
 * (the connection whose turn it is books it first, if it still waits). */
#define NOT_MY_TURN_MS 100

static const char *name_of(const char *name)
{
    return name ? name : "";
}

struct budget_row {
    int64_t hold, next_bg;
};

static int budget_fill(struct sq_txn *t, sqlite3_stmt *st, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    struct budget_row *b = row;
    b->hold = sqlite3_column_int64(st, 0);
    b->next_bg = sqlite3_column_int64(st, 1);
    return HS_OK;
}

/* The budget's row (made when missing): its hold and the next background start. */
static int budget_row(struct sq_txn *t, const char *name, struct budget_row *out,
                      struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(t, &st,
                            "INSERT INTO budgets (budget) VALUES (?1) "
                            "ON CONFLICT (budget) DO NOTHING",
                            "booking a request", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, name);
        rc = hs_sqlite_run(t, st, NULL, "booking a request", err);
    }
    if (!rc)
        rc = hs_sqlite_prep(t, &st,
                            "SELECT hold_until_ms, next_background_ms FROM budgets "
                            "WHERE budget = ?1",
                            "booking a request", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, name);
        rc = hs_sqlite_one(t, st, budget_fill, out, "booking a request", err);
    }
    return rc;
}

static int64_t later(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* The earliest start free for a new booking: not before now, the hold, the latest booked start,
 * nor a window after the limit-th latest. Forgets the starts older than a window first. */
static int free_start(struct sq_txn *t, const struct hs_budget_request *rq, int64_t hold,
                      int64_t *out, struct hs_error *err)
{
    const char *name = name_of(rq->name);
    sqlite3_stmt *st = NULL;
    int64_t latest = 0, full_until = 0;
    int rc =
        hs_sqlite_prep(t, &st, "DELETE FROM budget_bookings WHERE budget = ?1 AND start_ms <= ?2",
                       "booking a request", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, name);
        sqlite3_bind_int64(st, 2, rq->now_ms - rq->window_ms);
        rc = hs_sqlite_run(t, st, NULL, "booking a request", err);
    }
    if (!rc)
        rc = hs_sqlite_prep(t, &st, "SELECT MAX(start_ms) FROM budget_bookings WHERE budget = ?1",
                            "booking a request", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, name);
        rc = hs_sqlite_int(t, st, &latest, "booking a request", err);
    }
    if (!rc)
        rc = hs_sqlite_prep(t, &st,
                            "SELECT (SELECT start_ms FROM budget_bookings WHERE budget = ?1 "
                            "ORDER BY start_ms DESC LIMIT 1 OFFSET ?2) + ?3",
                            "booking a request", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, name);
        sqlite3_bind_int64(st, 2, rq->limit - 1);
        sqlite3_bind_int64(st, 3, rq->window_ms);
        rc = hs_sqlite_int(t, st, &full_until, "booking a request", err); /* 0: not full */
    }
    if (!rc)
        *out = later(later(rq->now_ms, hold), later(latest, full_until));
    return rc;
}

static int insert_booking(struct sq_txn *t, const struct hs_budget_request *rq, int64_t start,
                          struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(t, &st,
                            "INSERT INTO budget_bookings (budget, start_ms, background) "
                            "VALUES (?1, ?2, ?3)",
                            "booking a request", err);
    if (rc)
        return rc;
    hs_sqlite_bind_text(st, 1, name_of(rq->name));
    sqlite3_bind_int64(st, 2, start);
    sqlite3_bind_int(st, 3, rq->background ? 1 : 0);
    return hs_sqlite_run(t, st, NULL, "booking a request", err);
}

/* Renews the place of rq's connection among the waiters; *mine when it is its turn (the waiting
 * connection served longest ago). */
static int background_turn(struct sq_txn *t, const struct hs_budget_request *rq, bool *mine,
                           struct hs_error *err)
{
    const char *key = rq->key ? rq->key : "";
    sqlite3_stmt *st = NULL;
    char *first = NULL;
    int rc = hs_sqlite_prep(t, &st,
                            "INSERT INTO budget_waiters (budget, connection_key, waiting_until_ms) "
                            "VALUES (?1, ?2, ?3) ON CONFLICT (budget, connection_key) "
                            "DO UPDATE SET waiting_until_ms = excluded.waiting_until_ms",
                            "booking a request", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, name_of(rq->name));
        hs_sqlite_bind_text(st, 2, key);
        sqlite3_bind_int64(st, 3, rq->now_ms + HS_BUDGET_WAITER_MS);
        rc = hs_sqlite_run(t, st, NULL, "booking a request", err);
    }
    if (!rc)
        rc = hs_sqlite_prep(t, &st,
                            "SELECT connection_key FROM budget_waiters WHERE budget = ?1 "
                            "AND waiting_until_ms > ?2 ORDER BY last_turn, connection_key LIMIT 1",
                            "booking a request", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, name_of(rq->name));
        sqlite3_bind_int64(st, 2, rq->now_ms);
        rc = hs_sqlite_one(t, st, hs_sqlite_fill_text, &first, "booking a request", err);
    }
    if (!rc)
        *mine = first && strcmp(first, key) == 0;
    hs_sqlite_clear_text(&first);
    return rc;
}

/* A background start booked at now: the next spaced one no sooner than window/limit, and rq's
 * connection goes to the back of the turn. */
static int background_served(struct sq_txn *t, const struct hs_budget_request *rq,
                             struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(t, &st,
                            "UPDATE budgets SET turn = turn + 1, next_background_ms = ?2 "
                            "WHERE budget = ?1",
                            "booking a request", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, name_of(rq->name));
        sqlite3_bind_int64(st, 2, rq->now_ms + rq->window_ms / rq->limit);
        rc = hs_sqlite_run(t, st, NULL, "booking a request", err);
    }
    if (!rc)
        rc = hs_sqlite_prep(t, &st,
                            "UPDATE budget_waiters SET waiting_until_ms = 0, last_turn = "
                            "(SELECT turn FROM budgets WHERE budget = ?1) "
                            "WHERE budget = ?1 AND connection_key = ?2",
                            "booking a request", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, name_of(rq->name));
        hs_sqlite_bind_text(st, 2, rq->key ? rq->key : "");
        rc = hs_sqlite_run(t, st, NULL, "booking a request", err);
    }
    return rc;
}

/* How rq's background start may be taken (hs_budget_background_rule): another connection
 * waits (here, or in rq's process as it says), or how many starts the window holds; for
 * HS_BUDGET_BG_FULL, *room_at: when it holds fewer than a lone connection may take. Read after
 * free_start forgot the starts older than a window. */
static int background_rule(struct sq_txn *t, const struct hs_budget_request *rq,
                           enum hs_budget_background *rule, int64_t *room_at, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int64_t others = 0, starts = 0;
    int rc = hs_sqlite_prep(t, &st,
                            "SELECT COUNT(*) FROM budget_waiters WHERE budget = ?1 "
                            "AND waiting_until_ms > ?2 AND connection_key <> ?3",
                            "booking a request", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, name_of(rq->name));
        sqlite3_bind_int64(st, 2, rq->now_ms);
        hs_sqlite_bind_text(st, 3, rq->key ? rq->key : "");
        rc = hs_sqlite_int(t, st, &others, "booking a request", err);
    }
    if (!rc)
        rc = hs_sqlite_prep(t, &st, "SELECT COUNT(*) FROM budget_bookings WHERE budget = ?1",
                            "booking a request", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, name_of(rq->name));
        rc = hs_sqlite_int(t, st, &starts, "booking a request", err);
    }
    if (!rc)
        *rule = hs_budget_background_rule(rq->limit, starts, rq->others_wait || others > 0);
    if (!rc && *rule == HS_BUDGET_BG_FULL)
        rc = hs_sqlite_prep(t, &st,
                            "SELECT (SELECT start_ms FROM budget_bookings WHERE budget = ?1 "
                            "ORDER BY start_ms DESC LIMIT 1 OFFSET ?2) + ?3",
                            "booking a request", err);
    if (!rc && *rule == HS_BUDGET_BG_FULL) {
        hs_sqlite_bind_text(st, 1, name_of(rq->name));
        sqlite3_bind_int64(st, 2, rq->limit - hs_budget_reserve(rq->limit) - 1);
        sqlite3_bind_int64(st, 3, rq->window_ms);
        rc = hs_sqlite_int(t, st, room_at, "booking a request", err);
    }
    return rc;
}

static int book_in(struct sq_txn *t, const struct hs_budget_request *rq,
                   struct hs_budget_booking *out, struct hs_error *err)
{
    struct budget_row b = {0};
    int64_t start = 0;
    int rc = budget_row(t, name_of(rq->name), &b, err);
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

static int sq_budget_book(struct hs_store *base, const struct hs_budget_request *rq,
                          struct hs_budget_booking *out, struct hs_error *err)
{
    if (!rq || rq->limit <= 0 || rq->window_ms <= 0)
        return hs_fail(err, HS_ERR_INVALID, "a budget booking needs a limit and a window");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "budget_book", err);
    if (rc)
        return rc;
    struct hs_budget_booking b = {0};
    rc = hs_sqlite_leave(&t, book_in(&t, rq, &b, err), err);
    if (!rc)
        *out = b;
    return rc;
}

static int sq_budget_hold(struct hs_store *base, const char *name, int64_t until_ms,
                          struct hs_error *err)
{
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "budget_hold", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(&t, &st,
                        "INSERT INTO budgets (budget, hold_until_ms) VALUES (?1, ?2) "
                        "ON CONFLICT (budget) DO UPDATE SET "
                        "hold_until_ms = MAX(hold_until_ms, excluded.hold_until_ms)",
                        "holding the budget", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, name_of(name));
        sqlite3_bind_int64(st, 2, until_ms);
        rc = hs_sqlite_run(&t, st, NULL, "holding the budget", err);
    }
    return hs_sqlite_leave(&t, rc, err);
}

static int sq_budget_held_until(struct hs_store *base, const char *name, int64_t *until_ms,
                                struct hs_error *err)
{
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "budget_held_until", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    int64_t v = 0;
    rc = hs_sqlite_prep(&t, &st, "SELECT hold_until_ms FROM budgets WHERE budget = ?1",
                        "reading the budget's hold", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, name_of(name));
        rc = hs_sqlite_int(&t, st, &v, "reading the budget's hold", err);
    }
    rc = hs_sqlite_leave(&t, rc, err);
    if (!rc)
        *until_ms = v;
    return rc;
}

static int sq_budget_leave(struct hs_store *base, const char *name, const char *key,
                           struct hs_error *err)
{
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "budget_leave", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(&t, &st,
                        "UPDATE budget_waiters SET waiting_until_ms = 0 "
                        "WHERE budget = ?1 AND connection_key = ?2",
                        "leaving the budget's turn", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, name_of(name));
        hs_sqlite_bind_text(st, 2, key ? key : "");
        rc = hs_sqlite_run(&t, st, NULL, "leaving the budget's turn", err);
    }
    return hs_sqlite_leave(&t, rc, err);
}

static const char USAGE_SQL[] =
    "SELECT COALESCE(SUM(background = 0), 0), COALESCE(SUM(background != 0), 0) "
    "FROM budget_bookings WHERE budget = ?1 AND start_ms > ?2";
static const char RUNS_SQL[] =
    "SELECT COALESCE(CAST(AVG(hover_requests) * 1000 AS INTEGER), 0) FROM (SELECT "
    "hover_requests FROM sync_runs WHERE status != 'running' AND hover_requests > 0 ORDER BY "
    "id DESC LIMIT 50) r";

static int usage_fill(struct sq_txn *t, sqlite3_stmt *st, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    struct hs_budget_usage *u = row;
    u->interactive = sqlite3_column_int64(st, 0);
    u->background = sqlite3_column_int64(st, 1);
    return HS_OK;
}

static int sq_budget_usage(struct hs_store *base, const char *name, int64_t since_ms,
                           struct hs_budget_usage *out, struct hs_error *err)
{
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "budget_usage", err);
    if (rc)
        return rc;
    struct hs_budget_usage u = {0};
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(&t, &st, USAGE_SQL, "reading the budget's use", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, name_of(name));
        sqlite3_bind_int64(st, 2, since_ms);
        rc = hs_sqlite_one(&t, st, usage_fill, &u, "reading the budget's use", err);
    }
    if (!rc)
        rc = hs_sqlite_prep(&t, &st, RUNS_SQL, "reading the runs' cost", err);
    if (!rc)
        rc = hs_sqlite_int(&t, st, &u.requests_per_job_milli, "reading the runs' cost", err);
    rc = hs_sqlite_leave(&t, rc, err);
    if (!rc)
        *out = u;
    return rc;
}

const struct hs_budget_ops hs_sqlite_budget_ops = {
    .budget_book = sq_budget_book,
    .budget_hold = sq_budget_hold,
    .budget_held_until = sq_budget_held_until,
    .budget_leave = sq_budget_leave,
    .budget_usage = sq_budget_usage,
};
