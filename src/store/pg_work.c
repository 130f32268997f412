/* pg_work.c: the queue of background work items in the PostgreSQL back-end (store/work.h), with
 * the rules of sqlite_work.c. A claim re-checks that the item is still due when it updates it,
 * so two processes claiming at once never both get it (the second finds none this time). */
#include <stdlib.h>
#include <string.h>

#include "store/pg_internal.h"
#include "store/work.h"

/* Inserts the item of (connection, job) or bumps it: generation + 1, the latest reason; a free
 * item keeps the earlier not_before, one being worked on gets the new one. */
int hs_pg_work_bump(struct pg_txn *t, const char *connection_key, int64_t job_id,
                    const char *reason, int64_t not_before_ms, struct hs_error *err)
{
    struct pg_args a = {0};
    hs_pg_text(&a, connection_key);
    hs_pg_int(&a, job_id);
    hs_pg_text(&a, reason);
    hs_pg_int(&a, not_before_ms);
    return hs_pg_run(t,
                     "INSERT INTO work_items (connection_key, job_id, reason, generation, "
                     "attempts, not_before_ms, created_at) VALUES ($1, $2, $3, 1, 0, $4, "
                     "clock_timestamp()) ON CONFLICT (connection_key, job_id) DO UPDATE SET "
                     "generation = work_items.generation + 1, reason = excluded.reason, "
                     "not_before_ms = CASE WHEN work_items.claimed_by IS NULL "
                     "THEN LEAST(work_items.not_before_ms, excluded.not_before_ms) "
                     "ELSE excluded.not_before_ms END",
                     &a, NULL, "scheduling work", err);
}

static int pg_work_schedule(struct hs_store *base, const char *connection_key, int64_t job_id,
                            const char *reason, int64_t not_before_ms, struct hs_error *err)
{
    if (!connection_key || job_id <= 0 || !reason)
        return hs_fail(err, HS_ERR_INVALID, "work item without a connection, a job or a reason");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "work_schedule", err);
    if (rc)
        return rc;
    rc = hs_pg_work_bump(&t, connection_key, job_id, reason, not_before_ms, err);
    return hs_pg_leave(&t, rc, err);
}

/* Due: not_before passed and no live lease ($1 now). */
#define WORK_DUE(p)                                                                                \
    p "not_before_ms <= $1 AND (" p "lease_until_ms IS NULL OR " p "lease_until_ms <= $1)"

static int work_fill(struct pg_txn *t, const PGresult *r, int i, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    struct hs_work_item *w = row;
    w->id = hs_pg_col_int(r, i, 0);
    w->connection_key = hs_pg_col_text(r, i, 1);
    w->job_id = hs_pg_col_int(r, i, 2);
    w->reason = hs_pg_col_text(r, i, 3);
    w->generation = hs_pg_col_int(r, i, 4);
    w->attempts = hs_pg_col_int(r, i, 5);
    w->not_before_ms = hs_pg_col_int(r, i, 6);
    return HS_OK;
}

/* Fairness: the connection whose last claim is the oldest among those with due items, then its
 * oldest due item; the connection then goes to the back of the line. */
static int pg_work_claim(struct hs_store *base, const char *worker, int64_t now_ms,
                         int64_t lease_ms, struct hs_work_item *out, struct hs_error *err)
{
    if (!worker || lease_ms <= 0)
        return hs_fail(err, HS_ERR_INVALID, "work claim without a worker name or a lease");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "work_claim", err);
    if (rc)
        return rc;
    struct hs_work_item w = {0};
    struct pg_args a = {0};
    hs_pg_int(&a, now_ms);
    hs_pg_text(&a, worker);
    hs_pg_int(&a, lease_ms);
    rc = hs_pg_one(
        &t,
        "UPDATE work_items SET claimed_by = $2, lease_until_ms = $1::bigint + $3 "
        "WHERE " WORK_DUE(
            "") " AND id = (SELECT i.id FROM work_items i "
                "LEFT JOIN work_turns t ON t.connection_key = i.connection_key "
                "WHERE " WORK_DUE(
                    "i.") " ORDER BY COALESCE(t.last_claim, 0), "
                          "i.not_before_ms, i.id LIMIT 1) "
                          "RETURNING id, connection_key, job_id, reason, generation, attempts, "
                          "not_before_ms",
        &a, work_fill, &w, "claiming work", err);
    if (rc == HS_ERR_NOT_FOUND)
        hs_fail(err, HS_ERR_NOT_FOUND, "no work item is due");
    if (!rc) {
        struct pg_args b = {0};
        hs_pg_text(&b, w.connection_key);
        rc = hs_pg_run(&t,
                       "INSERT INTO work_turns (connection_key, last_claim) VALUES ($1, "
                       "(SELECT COALESCE(MAX(last_claim), 0) + 1 FROM work_turns)) "
                       "ON CONFLICT (connection_key) DO UPDATE SET last_claim = "
                       "excluded.last_claim",
                       &b, NULL, "claiming work", err);
    }
    rc = hs_pg_leave(&t, rc, err);
    if (rc) {
        hs_work_item_clear(&w);
        return rc;
    }
    *out = w;
    return HS_OK;
}

static int pg_work_done(struct hs_store *base, const struct hs_work_item *w, struct hs_error *err)
{
    if (!w || w->id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "work_done without an item");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "work_done", err);
    if (rc)
        return rc;
    struct pg_args a = {0};
    hs_pg_int(&a, w->id);
    hs_pg_int(&a, w->generation);
    int64_t changes = 0;
    rc = hs_pg_run(&t, "DELETE FROM work_items WHERE id = $1 AND generation = $2", &a, &changes,
                   "finishing work", err);
    if (!rc && changes == 0) {
        /* A newer trigger came in while it ran: free it for another pass. */
        struct pg_args b = {0};
        hs_pg_int(&b, w->id);
        rc = hs_pg_run(&t,
                       "UPDATE work_items SET claimed_by = NULL, lease_until_ms = NULL, "
                       "attempts = 0, last_error = NULL WHERE id = $1",
                       &b, NULL, "finishing work", err);
    }
    return hs_pg_leave(&t, rc, err);
}

static int pg_work_retry(struct hs_store *base, const struct hs_work_item *w, int64_t not_before_ms,
                         const char *error, struct hs_error *err)
{
    if (!w || w->id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "work_retry without an item");
    return hs_pg_change_by_id(base,
                              "UPDATE work_items SET claimed_by = NULL, lease_until_ms = NULL, "
                              "attempts = attempts + 1, not_before_ms = $2, last_error = $3 "
                              "WHERE id = $1",
                              w->id, not_before_ms, error, "retrying work", "no work item %lld",
                              err);
}

static int pg_work_depth(struct hs_store *base, int64_t *due, int64_t *total, int64_t now_ms,
                         struct hs_error *err)
{
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "work_depth", err);
    if (rc)
        return rc;
    int64_t d = 0, n = 0;
    struct pg_args a = {0};
    hs_pg_int(&a, now_ms);
    rc = hs_pg_int1(&t, "SELECT COUNT(*) FROM work_items WHERE " WORK_DUE(""), &a, &d,
                    "counting work", err);
    if (!rc)
        rc = hs_pg_int1(&t, "SELECT COUNT(*) FROM work_items", NULL, &n, "counting work", err);
    rc = hs_pg_leave(&t, rc, err);
    if (rc)
        return rc;
    if (due)
        *due = d;
    if (total)
        *total = n;
    return HS_OK;
}

static int pg_work_release_dead(struct hs_store *base, bool (*dead)(void *ctx, const char *worker),
                                void *ctx, int64_t *released, struct hs_error *err)
{
    if (!dead)
        return hs_fail(err, HS_ERR_INVALID, "work_release_dead needs a test");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE_ALONE, "work_release_dead", err);
    if (rc)
        return rc;
    void *v = NULL;
    size_t n = 0;
    int64_t total = 0;
    rc = hs_pg_rows(&t, "SELECT DISTINCT claimed_by FROM work_items WHERE claimed_by IS NOT NULL",
                    NULL, sizeof(char *), hs_pg_fill_text, hs_pg_clear_text, &v, &n,
                    "releasing dead workers' claims", err);
    char **who = v;
    for (size_t i = 0; !rc && i < n; i++) {
        if (!who[i] || !dead(ctx, who[i]))
            continue;
        struct pg_args a = {0};
        hs_pg_text(&a, who[i]);
        int64_t changes = 0;
        rc = hs_pg_run(&t,
                       "UPDATE work_items SET claimed_by = NULL, lease_until_ms = NULL "
                       "WHERE claimed_by = $1",
                       &a, &changes, "releasing dead workers' claims", err);
        total += changes;
    }
    for (size_t i = 0; i < n; i++)
        free(who[i]);
    free(who);
    rc = hs_pg_leave(&t, rc, err);
    if (!rc && released)
        *released = total;
    return rc;
}

const struct hs_work_ops hs_pg_work_ops = {
    .work_schedule = pg_work_schedule,
    .work_claim = pg_work_claim,
    .work_done = pg_work_done,
    .work_retry = pg_work_retry,
    .work_depth = pg_work_depth,
    .work_release_dead = pg_work_release_dead,
};
