/* sqlite_work.c: the queue of background work items in the SQLite back-end (store/work.h; the
 * tables work_items and work_turns are migration 5). */
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_internal.h"
#include "store/work.h"

/* Inserts the item of (connection, job) or bumps it: generation + 1, the latest reason. A free
 * item keeps the earlier of its not_before and the new one (a burst of events runs once, at the
 * end of the first one's delay, and a steady stream cannot postpone it forever); an item being
 * worked on gets the new not_before, for the pass after the current one. */
int hs_sqlite_work_bump(struct sq_txn *t, const char *connection_key, int64_t job_id,
                        const char *reason, int64_t not_before_ms, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(
        t, &st,
        "INSERT INTO work_items (connection_key, job_id, reason, generation, attempts, "
        "not_before_ms, created_at) VALUES (?1, ?2, ?3, 1, 0, ?4, " HS_SQL_NOW ") "
        "ON CONFLICT(connection_key, job_id) DO UPDATE SET "
        "generation = generation + 1, reason = excluded.reason, "
        "not_before_ms = CASE WHEN claimed_by IS NULL "
        "THEN MIN(not_before_ms, excluded.not_before_ms) "
        "ELSE excluded.not_before_ms END",
        "scheduling work", err);
    if (rc)
        return rc;
    hs_sqlite_bind_text(st, 1, connection_key);
    sqlite3_bind_int64(st, 2, job_id);
    hs_sqlite_bind_text(st, 3, reason);
    sqlite3_bind_int64(st, 4, not_before_ms);
    return hs_sqlite_run(t, st, NULL, "scheduling work", err);
}

static int sq_work_schedule(struct hs_store *base, const char *connection_key, int64_t job_id,
                            const char *reason, int64_t not_before_ms, struct hs_error *err)
{
    if (!connection_key || job_id <= 0 || !reason)
        return hs_fail(err, HS_ERR_INVALID, "work item without a connection, a job or a reason");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "work_schedule", err);
    if (rc)
        return rc;
    rc = hs_sqlite_work_bump(&t, connection_key, job_id, reason, not_before_ms, err);
    return hs_sqlite_leave(&t, rc, err);
}

/* An item is due when its not_before has passed and nobody holds a live lease on it. */
#define WORK_DUE "not_before_ms <= ?1 AND (lease_until_ms IS NULL OR lease_until_ms <= ?1)"

static int work_fill(struct sq_txn *t, sqlite3_stmt *st, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    struct hs_work_item *w = row;
    w->id = sqlite3_column_int64(st, 0);
    w->connection_key = hs_sqlite_col_text(st, 1);
    w->job_id = sqlite3_column_int64(st, 2);
    w->reason = hs_sqlite_col_text(st, 3);
    w->generation = sqlite3_column_int64(st, 4);
    w->attempts = sqlite3_column_int64(st, 5);
    w->not_before_ms = sqlite3_column_int64(st, 6);
    return HS_OK;
}

/* The connection's turn is now: it goes to the back of the line (see work_claim). */
static int work_turn_taken(struct sq_txn *t, const char *connection_key, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc =
        hs_sqlite_prep(t, &st,
                       "INSERT INTO work_turns (connection_key, last_claim) VALUES (?1, "
                       "(SELECT COALESCE(MAX(last_claim), 0) + 1 FROM work_turns)) "
                       "ON CONFLICT(connection_key) DO UPDATE SET last_claim = excluded.last_claim",
                       "claiming work", err);
    if (rc)
        return rc;
    hs_sqlite_bind_text(st, 1, connection_key);
    return hs_sqlite_run(t, st, NULL, "claiming work", err);
}

/* Fairness: the connection whose last claim is the oldest (never claimed counts as oldest) among
 * those with due items, then its oldest due item. */
static int sq_work_claim(struct hs_store *base, const char *worker, int64_t now_ms,
                         int64_t lease_ms, struct hs_work_item *out, struct hs_error *err)
{
    if (!worker || lease_ms <= 0)
        return hs_fail(err, HS_ERR_INVALID, "work claim without a worker name or a lease");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "work_claim", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    struct hs_work_item w = {0};
    rc = hs_sqlite_prep(
        &t, &st,
        "UPDATE work_items SET claimed_by = ?2, lease_until_ms = ?1 + ?3 WHERE id = ("
        "SELECT i.id FROM work_items i LEFT JOIN work_turns t "
        "ON t.connection_key = i.connection_key WHERE i." WORK_DUE " "
        "ORDER BY COALESCE(t.last_claim, 0), i.not_before_ms, i.id LIMIT 1) "
        "RETURNING id, connection_key, job_id, reason, generation, attempts, not_before_ms",
        "claiming work", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, now_ms);
        hs_sqlite_bind_text(st, 2, worker);
        sqlite3_bind_int64(st, 3, lease_ms);
        rc = hs_sqlite_one(&t, st, work_fill, &w, "claiming work", err);
        if (rc == HS_ERR_NOT_FOUND)
            hs_fail(err, HS_ERR_NOT_FOUND, "no work item is due");
    }
    if (!rc)
        rc = work_turn_taken(&t, w.connection_key, err);
    rc = hs_sqlite_leave(&t, rc, err);
    if (rc) {
        hs_work_item_clear(&w);
        return rc;
    }
    *out = w;
    return HS_OK;
}

static int sq_work_done(struct hs_store *base, const struct hs_work_item *w, struct hs_error *err)
{
    if (!w || w->id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "work_done without an item");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "work_done", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    int changes = 0;
    rc = hs_sqlite_prep(&t, &st, "DELETE FROM work_items WHERE id = ?1 AND generation = ?2",
                        "finishing work", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, w->id);
        sqlite3_bind_int64(st, 2, w->generation);
        rc = hs_sqlite_run(&t, st, &changes, "finishing work", err);
    }
    if (!rc && changes == 0) {
        /* A newer trigger came in while it ran: free it for another pass. */
        rc = hs_sqlite_prep(
            &t, &st,
            "UPDATE work_items SET claimed_by = NULL, lease_until_ms = NULL, attempts = 0, "
            "last_error = NULL WHERE id = ?1",
            "finishing work", err);
        if (!rc) {
            sqlite3_bind_int64(st, 1, w->id);
            rc = hs_sqlite_run(&t, st, NULL, "finishing work", err);
        }
    }
    return hs_sqlite_leave(&t, rc, err);
}

static int sq_work_retry(struct hs_store *base, const struct hs_work_item *w, int64_t not_before_ms,
                         const char *error, struct hs_error *err)
{
    if (!w || w->id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "work_retry without an item");
    return hs_sqlite_change_by_id(base,
                                  "UPDATE work_items SET claimed_by = NULL, lease_until_ms = NULL, "
                                  "attempts = attempts + 1, not_before_ms = ?2, last_error = ?3 "
                                  "WHERE id = ?1",
                                  w->id, not_before_ms, error, "retrying work", "no work item %lld",
                                  err);
}

static int sq_work_depth(struct hs_store *base, int64_t *due, int64_t *total, int64_t now_ms,
                         struct hs_error *err)
{
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "work_depth", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    int64_t d = 0, n = 0;
    rc = hs_sqlite_prep(&t, &st, "SELECT COUNT(*) FROM work_items WHERE " WORK_DUE, "counting work",
                        err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, now_ms);
        rc = hs_sqlite_int(&t, st, &d, "counting work", err);
    }
    if (!rc)
        rc = hs_sqlite_prep(&t, &st, "SELECT COUNT(*) FROM work_items", "counting work", err);
    if (!rc)
        rc = hs_sqlite_int(&t, st, &n, "counting work", err);
    rc = hs_sqlite_leave(&t, rc, err);
    if (rc)
        return rc;
    if (due)
        *due = d;
    if (total)
        *total = n;
    return HS_OK;
}

/* The claimers are read first and asked about afterwards, each dead one's items freed by one
 * statement, all in one write transaction. */
static int sq_work_release_dead(struct hs_store *base, bool (*dead)(void *ctx, const char *worker),
                                void *ctx, int64_t *released, struct hs_error *err)
{
    if (!dead)
        return hs_fail(err, HS_ERR_INVALID, "work_release_dead needs a test");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE_ALONE, "work_release_dead", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    void *v = NULL;
    size_t n = 0;
    int64_t total = 0;
    rc = hs_sqlite_prep(&t, &st,
                        "SELECT DISTINCT claimed_by FROM work_items WHERE claimed_by IS NOT NULL",
                        "releasing dead workers' claims", err);
    if (!rc)
        rc = hs_sqlite_rows(&t, st, sizeof(char *), hs_sqlite_fill_text, hs_sqlite_clear_text, &v,
                            &n, "releasing dead workers' claims", err);
    char **who = v;
    for (size_t i = 0; !rc && i < n; i++) {
        if (!who[i] || !dead(ctx, who[i]))
            continue;
        int changes = 0;
        rc = hs_sqlite_prep(&t, &st,
                            "UPDATE work_items SET claimed_by = NULL, lease_until_ms = NULL "
                            "WHERE claimed_by = ?1",
                            "releasing dead workers' claims", err);
        if (!rc) {
            hs_sqlite_bind_text(st, 1, who[i]);
            rc = hs_sqlite_run(&t, st, &changes, "releasing dead workers' claims", err);
        }
        total += changes;
    }
    for (size_t i = 0; i < n; i++)
        free(who[i]);
    free(who);
    rc = hs_sqlite_leave(&t, rc, err);
    if (!rc && released)
        *released = total;
    return rc;
}

const struct hs_work_ops hs_sqlite_work_ops = {
    .work_schedule = sq_work_schedule,
    .work_claim = sq_work_claim,
    .work_done = sq_work_done,
    .work_retry = sq_work_retry,
    .work_depth = sq_work_depth,
    .work_release_dead = sq_work_release_dead,
};
