/* sqlite_work.c: the work queue, the syncs of POST /api/syncs with their progress, and the
 * pending pass's polls, in the SQLite back-end (store/work.h; the tables are migrations 5 and
 * 13).
 *
 * Every op runs through hs_sqlite_enter: in a transaction of its own, or joining the calling
 * thread's (a sync's progress commits with the artifact or the result it reports, and with the
 * fence of the run's claim).
 *
 * The fence: each claim bumps the item's claim counter, and the claim's token is the counter's
 * value. A write of the run checks, in its own transaction, that the counter is still the token
 * and that the lease has not ended at the caller's clock: a worker paused past its lease (or cut
 * off from the store) commits nothing once it resumes, whoever claimed the item since. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/json.h"
#include "store/sqlite_internal.h"
#include "store/work.h"

/* ---- work items ---- */

#define ITEM_COLS                                                                                  \
    "id, connection_key, job_id, reason, priority, generation, attempts, not_before_ms, claims, "  \
    "lease_until_ms, trigger_ms, payload, payload_ms, last_error"

static int item_fill(struct sq_txn *t, sqlite3_stmt *st, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    struct hs_work_item *w = row;
    w->id = sqlite3_column_int64(st, 0);
    w->connection_key = hs_sqlite_col_text(st, 1);
    w->job_id = sqlite3_column_int64(st, 2);
    w->reason = hs_sqlite_col_text(st, 3);
    w->priority = sqlite3_column_int(st, 4);
    w->generation = sqlite3_column_int64(st, 5);
    w->attempts = sqlite3_column_int64(st, 6);
    w->not_before_ms = sqlite3_column_int64(st, 7);
    w->claim = sqlite3_column_int64(st, 8);
    w->lease_until_ms = sqlite3_column_int64(st, 9);
    w->trigger_ms = sqlite3_column_int64(st, 10);
    w->payload = hs_sqlite_col_text(st, 11);
    w->payload_ms = sqlite3_column_int64(st, 12);
    w->last_error = hs_sqlite_col_text(st, 13);
    return HS_OK;
}

/* An item is being run while a claim's lease holds. */
#define ITEM_RUNNING "claimed_by IS NOT NULL AND lease_until_ms > ?5"

int hs_sqlite_work_bump(struct sq_txn *t, const struct hs_work_trigger *tr, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    /* The payload is the newest trigger's: a later trigger without one means the job may have
     * changed since it was listed. */
    int rc = hs_sqlite_prep_kept(
        t, &st,
        "INSERT INTO work_items (connection_key, job_id, reason, priority, generation, attempts, "
        "not_before_ms, trigger_ms, payload, payload_ms, created_at) VALUES (?1, ?2, ?3, ?4, 1, "
        "0, ?6, ?5, ?8, CASE WHEN ?8 IS NULL THEN NULL ELSE ?5 END, " HS_SQL_NOW ") "
        "ON CONFLICT(connection_key, job_id) DO UPDATE SET "
        "generation = generation + 1, reason = excluded.reason, "
        "priority = MAX(priority, excluded.priority), trigger_ms = excluded.trigger_ms, "
        "payload = excluded.payload, payload_ms = excluded.payload_ms, "
        "not_before_ms = CASE WHEN " ITEM_RUNNING " THEN ?5 + ?7 "
        "WHEN attempts > 0 AND excluded.priority < ?9 AND NOT ?10 THEN not_before_ms "
        "ELSE MIN(not_before_ms, excluded.not_before_ms) END",
        "scheduling work", err);
    if (rc)
        return rc;
    hs_sqlite_bind_text(st, 1, tr->connection_key);
    sqlite3_bind_int64(st, 2, tr->job_id);
    hs_sqlite_bind_text(st, 3, tr->reason);
    sqlite3_bind_int(st, 4, tr->priority);
    sqlite3_bind_int64(st, 5, tr->now_ms);
    sqlite3_bind_int64(st, 6, tr->due_ms);
    sqlite3_bind_int64(st, 7, tr->rerun_ms > 0 ? tr->rerun_ms : 0);
    hs_sqlite_bind_text(st, 8, tr->payload);
    sqlite3_bind_int(st, 9, HS_WORK_PRIO_INTERACTIVE);
    sqlite3_bind_int(st, 10, tr->now ? 1 : 0);
    return hs_sqlite_run(t, st, NULL, "scheduling work", err);
}

static int sq_work_schedule(struct hs_store *base, const struct hs_work_trigger *tr,
                            struct hs_error *err)
{
    if (!tr || !tr->connection_key || tr->job_id <= 0 || !tr->reason)
        return hs_fail(err, HS_ERR_INVALID, "work item without a connection, a job or a reason");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "work_schedule", err);
    if (rc)
        return rc;
    rc = hs_sqlite_work_bump(&t, tr, err);
    return hs_sqlite_leave(&t, rc, err);
}

/* An item is due when its not_before has passed and nobody holds a live lease on it. */
#define WORK_DUE "not_before_ms <= ?1 AND (lease_until_ms IS NULL OR lease_until_ms <= ?1)"

/* The claim's row: highest priority, then the connection whose last claim is the oldest (never
 * claimed counts as oldest), then the oldest due. */
static int claim_row(struct sq_txn *t, const char *worker, const char *only, int64_t now_ms,
                     int64_t lease_ms, struct hs_work_item *w, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep_kept(
        t, &st,
        "UPDATE work_items SET claimed_by = ?2, lease_until_ms = ?1 + ?3, claims = claims + 1 "
        "WHERE id = (SELECT i.id FROM work_items i LEFT JOIN work_turns t "
        "ON t.connection_key = i.connection_key WHERE i." WORK_DUE " AND (?4 IS NULL OR "
        "i.connection_key = ?4) "
        "ORDER BY i.priority DESC, COALESCE(t.last_claim, 0), i.not_before_ms, i.id LIMIT 1) "
        "RETURNING " ITEM_COLS,
        "claiming work", err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, now_ms);
    hs_sqlite_bind_text(st, 2, worker);
    sqlite3_bind_int64(st, 3, lease_ms);
    hs_sqlite_bind_text(st, 4, only);
    rc = hs_sqlite_one(t, st, item_fill, w, "claiming work", err);
    if (rc == HS_ERR_NOT_FOUND)
        hs_fail(err, HS_ERR_NOT_FOUND, "no work item is due");
    return rc;
}

/* When the next item that is not due now will be (0: none). */
static int next_due(struct sq_txn *t, const char *only, int64_t now_ms, int64_t *out,
                    struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep_kept(t, &st,
                                 "SELECT MIN(MAX(not_before_ms, COALESCE(lease_until_ms, 0))) FROM "
                                 "work_items WHERE NOT (" WORK_DUE ") AND (?2 IS NULL OR "
                                 "connection_key = ?2)",
                                 "reading the next due work", err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, now_ms);
    hs_sqlite_bind_text(st, 2, only);
    return hs_sqlite_int(t, st, out, "reading the next due work", err);
}

/* The claim's other writes: the connection's turn, and the job's queued syncs now running. */
static int claim_after(struct sq_txn *t, const struct hs_work_item *w, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep_kept(
        t, &st,
        "INSERT INTO work_turns (connection_key, last_claim) VALUES (?1, "
        "(SELECT COALESCE(MAX(last_claim), 0) + 1 FROM work_turns)) "
        "ON CONFLICT(connection_key) DO UPDATE SET last_claim = excluded.last_claim",
        "claiming work", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, w->connection_key);
        rc = hs_sqlite_run(t, st, NULL, "claiming work", err);
    }
    if (!rc)
        rc = hs_sqlite_prep_kept(t, &st,
                                 "UPDATE syncs SET status = 'running', version = version + 1 WHERE "
                                 "connection_key = ?1 AND job_id = ?2 AND status = 'queued'",
                                 "starting syncs", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, w->connection_key);
        sqlite3_bind_int64(st, 2, w->job_id);
        rc = hs_sqlite_run(t, st, NULL, "starting syncs", err);
    }
    return rc;
}

static int sq_work_claim(struct hs_store *base, const char *worker, const char *only_connection,
                         int64_t now_ms, int64_t lease_ms, struct hs_work_item *out,
                         int64_t *next_due_ms, struct hs_error *err)
{
    if (!worker || lease_ms <= 0)
        return hs_fail(err, HS_ERR_INVALID, "work claim without a worker name or a lease");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "work_claim", err);
    if (rc)
        return rc;
    struct hs_work_item w = {0};
    int64_t next = 0;
    rc = claim_row(&t, worker, only_connection, now_ms, lease_ms, &w, err);
    if (rc == HS_ERR_NOT_FOUND) {
        struct hs_error nerr = {0};
        if (next_due(&t, only_connection, now_ms, &next, &nerr) != HS_OK)
            next = 0;
    } else if (!rc) {
        rc = claim_after(&t, &w, err);
    }
    rc = hs_sqlite_leave(&t, rc, err);
    if (rc) {
        hs_work_item_clear(&w);
        if (rc == HS_ERR_NOT_FOUND && next_due_ms)
            *next_due_ms = next;
        return rc;
    }
    *out = w;
    return HS_OK;
}

static int fence_check(struct sq_txn *t, const struct hs_work_item *w, int64_t now_ms,
                       struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc =
        hs_sqlite_prep_kept(t, &st,
                            "SELECT COUNT(*) FROM work_items WHERE id = ?1 AND claims = ?2 AND "
                            "claimed_by IS NOT NULL AND lease_until_ms > ?3",
                            "checking the work item's claim", err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, w->id);
    sqlite3_bind_int64(st, 2, w->claim);
    sqlite3_bind_int64(st, 3, now_ms);
    int64_t holds = 0;
    rc = hs_sqlite_int(t, st, &holds, "checking the work item's claim", err);
    if (!rc && !holds)
        rc = hs_fail(err, HS_ERR_CONFLICT,
                     "the claim of the work item of job %lld lapsed (its lease ended, or it was "
                     "claimed again): this run commits nothing more",
                     (long long)w->job_id);
    return rc;
}

static int sq_work_fence(struct hs_store *base, const struct hs_work_item *w, int64_t now_ms,
                         struct hs_error *err)
{
    if (!w || w->id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "work_fence without an item");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "work_fence", err);
    if (rc)
        return rc;
    rc = fence_check(&t, w, now_ms, err);
    return hs_sqlite_leave(&t, rc, err);
}

/* The write transaction of a run's own op on its item, with the claim checked in it. */
static int fenced_enter(struct hs_store *base, struct sq_txn *t, const struct hs_work_item *w,
                        int64_t now_ms, const char *what, struct hs_error *err)
{
    if (!w || w->id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "%s without an item", what);
    int rc = hs_sqlite_enter(hs_sqlite_of(base), t, SQ_WRITE, what, err);
    if (rc)
        return rc;
    rc = fence_check(t, w, now_ms, err);
    if (rc)
        hs_sqlite_leave(t, rc, NULL);
    return rc;
}

/* Runs sql with ?1 the item's id, ?2 and ?3 integers and ?4 text (those it uses); *changes
 * (may be NULL) gets the rows changed. */
static int item_exec(struct sq_txn *t, const char *sql, int64_t id, int64_t a, int64_t b,
                     const char *text, int *changes, const char *what, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(t, &st, sql, what, err);
    if (rc)
        return rc;
    /* Binding a parameter the statement lacks is a harmless SQLITE_RANGE. */
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, a);
    sqlite3_bind_int64(st, 3, b);
    hs_sqlite_bind_text(st, 4, text);
    return hs_sqlite_run(t, st, changes, what, err);
}

static int sq_work_renew(struct hs_store *base, const struct hs_work_item *w, int64_t now_ms,
                         int64_t lease_ms, struct hs_error *err)
{
    if (lease_ms <= 0)
        return hs_fail(err, HS_ERR_INVALID, "work_renew without a lease");
    struct sq_txn t;
    int rc = fenced_enter(base, &t, w, now_ms, "work_renew", err);
    if (rc)
        return rc;
    rc = item_exec(&t, "UPDATE work_items SET lease_until_ms = ?2 WHERE id = ?1", w->id,
                   now_ms + lease_ms, 0, NULL, NULL, "renewing a lease", err);
    return hs_sqlite_leave(&t, rc, err);
}

static int sq_work_done(struct hs_store *base, const struct hs_work_item *w, int64_t now_ms,
                        struct hs_error *err)
{
    struct sq_txn t;
    int rc = fenced_enter(base, &t, w, now_ms, "work_done", err);
    if (rc)
        return rc;
    int changes = 0;
    rc = item_exec(&t, "DELETE FROM work_items WHERE id = ?1 AND generation = ?2", w->id,
                   w->generation, 0, NULL, &changes, "finishing work", err);
    if (!rc && changes == 0) /* a newer trigger came in while it ran: another pass when due */
        rc = item_exec(&t,
                       "UPDATE work_items SET claimed_by = NULL, lease_until_ms = NULL, "
                       "attempts = 0, last_error = NULL WHERE id = ?1",
                       w->id, 0, 0, NULL, NULL, "finishing work", err);
    return hs_sqlite_leave(&t, rc, err);
}

static int sq_work_retry(struct hs_store *base, const struct hs_work_item *w, int64_t now_ms,
                         int64_t not_before_ms, const char *error, struct hs_error *err)
{
    struct sq_txn t;
    int rc = fenced_enter(base, &t, w, now_ms, "work_retry", err);
    if (rc)
        return rc;
    rc = item_exec(&t,
                   "UPDATE work_items SET claimed_by = NULL, lease_until_ms = NULL, "
                   "attempts = attempts + 1, not_before_ms = ?2, last_error = ?4, "
                   "priority = MAX(priority, ?3) WHERE id = ?1",
                   w->id, not_before_ms, w->priority, error, NULL, "retrying work", err);
    return hs_sqlite_leave(&t, rc, err);
}

static int sq_work_release(struct hs_store *base, const struct hs_work_item *w, int64_t now_ms,
                           struct hs_error *err)
{
    struct sq_txn t;
    int rc = fenced_enter(base, &t, w, now_ms, "work_release", err);
    if (rc)
        return rc;
    rc = item_exec(&t,
                   "UPDATE work_items SET claimed_by = NULL, lease_until_ms = NULL, "
                   "not_before_ms = MIN(not_before_ms, ?2) WHERE id = ?1",
                   w->id, now_ms, 0, NULL, NULL, "handing back work", err);
    return hs_sqlite_leave(&t, rc, err);
}

static int sq_work_get(struct hs_store *base, const char *connection_key, int64_t job_id,
                       struct hs_work_item *out, struct hs_error *err)
{
    if (!connection_key || job_id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "work_get needs a connection and a job");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "work_get", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    struct hs_work_item w = {0};
    rc = hs_sqlite_prep(&t, &st,
                        "SELECT " ITEM_COLS " FROM work_items WHERE connection_key = ?1 AND "
                        "job_id = ?2",
                        "reading a work item", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, connection_key);
        sqlite3_bind_int64(st, 2, job_id);
        rc = hs_sqlite_one(&t, st, item_fill, &w, "reading a work item", err);
        if (rc == HS_ERR_NOT_FOUND)
            hs_fail(err, HS_ERR_NOT_FOUND, "no work item for job %lld", (long long)job_id);
    }
    rc = hs_sqlite_leave(&t, rc, err);
    if (rc) {
        hs_work_item_clear(&w);
        return rc;
    }
    *out = w;
    return HS_OK;
}

/* Runs a statement of one integer column (?1 bound to num when it has one) into *out. */
static int count_one(struct sq_txn *t, const char *sql, int64_t num, int64_t *out, const char *what,
                     struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(t, &st, sql, what, err);
    if (rc)
        return rc;
    if (sqlite3_bind_parameter_count(st) > 0)
        sqlite3_bind_int64(st, 1, num);
    return hs_sqlite_int(t, st, out, what, err);
}

static int sq_work_depth(struct hs_store *base, int64_t *due, int64_t *total,
                         int64_t *oldest_due_ms, int64_t now_ms, struct hs_error *err)
{
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "work_depth", err);
    if (rc)
        return rc;
    int64_t d = 0, n = 0, oldest = 0;
    rc = count_one(&t, "SELECT COUNT(*) FROM work_items WHERE " WORK_DUE, now_ms, &d,
                   "counting work", err);
    if (!rc)
        rc = count_one(&t, "SELECT COUNT(*) FROM work_items", 0, &n, "counting work", err);
    if (!rc)
        rc = count_one(&t, "SELECT MIN(not_before_ms) FROM work_items WHERE " WORK_DUE, now_ms,
                       &oldest, "counting work", err);
    rc = hs_sqlite_leave(&t, rc, err);
    if (rc)
        return rc;
    if (due)
        *due = d;
    if (total)
        *total = n;
    if (oldest_due_ms)
        *oldest_due_ms = oldest;
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

/* ---- syncs and their progress ---- */

/* A sync's result by its models': synced when every model is, failed when none got anywhere (no
 * result counts as nowhere), partial otherwise. Correlated on syncs.id. */
#define SYNC_RESULT                                                                                \
    "(SELECT CASE WHEN COUNT(*) > 0 AND COUNT(*) = SUM(m.result = 'synced') THEN 'synced' "        \
    "WHEN COUNT(*) = SUM(COALESCE(m.result IN ('failed_upstream', 'error'), 1)) THEN 'failed' "    \
    "ELSE 'partial' END FROM sync_models m WHERE m.sync_id = syncs.id)"

/* The job's syncs (connection ?1, job ?2). */
#define JOB_SYNCS "connection_key = ?1 AND job_id = ?2"

static int sync_model_insert(struct sq_txn *t, const char *sync_id, size_t position,
                             const struct hs_sync_model_row *m, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(t, &st,
                            "INSERT INTO sync_models (sync_id, model_id, position, name, "
                            "when_ready) VALUES (?1, ?2, ?3, ?4, ?5)",
                            "storing the sync's models", err);
    if (rc)
        return rc;
    hs_sqlite_bind_text(st, 1, sync_id);
    sqlite3_bind_int64(st, 2, m->model_id);
    sqlite3_bind_int64(st, 3, (int64_t)position);
    hs_sqlite_bind_text(st, 4, m->name);
    sqlite3_bind_int(st, 5, m->when_ready ? 1 : 0);
    return hs_sqlite_run(t, st, NULL, "storing the sync's models", err);
}

static int sq_sync_create(struct hs_store *base, const struct hs_sync_row *r, int64_t now_ms,
                          struct hs_error *err)
{
    if (!r || !r->id || !*r->id || !r->connection_key || r->job_id <= 0 || r->n_models == 0)
        return hs_fail(err, HS_ERR_INVALID, "a sync needs an id, a connection, a job and models");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "sync_create", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(&t, &st,
                        "INSERT INTO syncs (id, connection_key, job_id, status, version, "
                        "created_ms) VALUES (?1, ?2, ?3, 'queued', 1, ?4)",
                        "storing the sync", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, r->id);
        hs_sqlite_bind_text(st, 2, r->connection_key);
        sqlite3_bind_int64(st, 3, r->job_id);
        sqlite3_bind_int64(st, 4, now_ms);
        rc = hs_sqlite_run(&t, st, NULL, "storing the sync", err);
    }
    for (size_t i = 0; !rc && i < r->n_models; i++)
        rc = sync_model_insert(&t, r->id, i, &r->models[i], err);
    return hs_sqlite_leave(&t, rc, err);
}

static int sync_fill(struct sq_txn *t, sqlite3_stmt *st, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    struct hs_sync_row *r = row;
    r->id = hs_sqlite_col_text(st, 0);
    r->connection_key = hs_sqlite_col_text(st, 1);
    r->job_id = sqlite3_column_int64(st, 2);
    r->status = hs_sqlite_col_text(st, 3);
    r->result = hs_sqlite_col_text(st, 4);
    r->error_code = hs_sqlite_col_text(st, 5);
    r->error_message = hs_sqlite_col_text(st, 6);
    r->version = sqlite3_column_int64(st, 7);
    r->created_ms = sqlite3_column_int64(st, 8);
    r->finished_ms = sqlite3_column_int64(st, 9);
    return HS_OK;
}

static int sync_model_fill(struct sq_txn *t, sqlite3_stmt *st, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    *(struct hs_sync_model_row *)row = (struct hs_sync_model_row){
        .model_id = sqlite3_column_int64(st, 0),
        .name = hs_sqlite_col_text(st, 1),
        .when_ready = sqlite3_column_int(st, 2) != 0,
        .result = hs_sqlite_col_text(st, 3),
        .message = hs_sqlite_col_text(st, 4),
        .artifacts_done = sqlite3_column_int64(st, 5),
        .artifacts_total = sqlite3_column_int64(st, 6),
        .pdf_sha256 = hs_sqlite_col_text(st, 7),
        .json_sha256 = hs_sqlite_col_text(st, 8),
    };
    return HS_OK;
}

static void sync_model_clear(void *row)
{
    struct hs_sync_model_row *m = row;
    free(m->name);
    free(m->result);
    free(m->message);
    free(m->pdf_sha256);
    free(m->json_sha256);
}

static int sync_models_read(struct sq_txn *t, struct hs_sync_row *r, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(t, &st,
                            "SELECT model_id, name, when_ready, result, message, artifacts_done, "
                            "artifacts_total, pdf_sha256, json_sha256 FROM sync_models WHERE "
                            "sync_id = ?1 ORDER BY position",
                            "reading the sync's models", err);
    if (rc)
        return rc;
    hs_sqlite_bind_text(st, 1, r->id);
    void *v = NULL;
    rc = hs_sqlite_rows(t, st, sizeof *r->models, sync_model_fill, sync_model_clear, &v,
                        &r->n_models, "reading the sync's models", err);
    if (!rc)
        r->models = v;
    return rc;
}

static int sq_sync_get(struct hs_store *base, const char *id, struct hs_sync_row *out,
                       struct hs_error *err)
{
    if (!id)
        return hs_fail(err, HS_ERR_INVALID, "sync_get without an id");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "sync_get", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    struct hs_sync_row r = {0};
    rc = hs_sqlite_prep(&t, &st,
                        "SELECT id, connection_key, job_id, status, result, error_code, "
                        "error_message, version, created_ms, finished_ms FROM syncs WHERE id = ?1",
                        "reading the sync", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, id);
        rc = hs_sqlite_one(&t, st, sync_fill, &r, "reading the sync", err);
        if (rc == HS_ERR_NOT_FOUND)
            hs_fail(err, HS_ERR_NOT_FOUND, "no sync %s", id);
    }
    if (!rc)
        rc = sync_models_read(&t, &r, err);
    rc = hs_sqlite_leave(&t, rc, err);
    if (rc) {
        hs_sync_row_clear(&r);
        return rc;
    }
    *out = r;
    return HS_OK;
}

static int sq_sync_version(struct hs_store *base, const char *id, int64_t *version,
                           struct hs_error *err)
{
    if (!id)
        return hs_fail(err, HS_ERR_INVALID, "sync_version without an id");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "sync_version", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    int64_t v = 0;
    rc =
        hs_sqlite_prep(&t, &st, "SELECT version FROM syncs WHERE id = ?1", "reading the sync", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, id);
        rc = hs_sqlite_int(&t, st, &v, "reading the sync", err);
    }
    if (!rc && v == 0) /* versions start at 1 */
        rc = hs_fail(err, HS_ERR_NOT_FOUND, "no sync %s", id);
    rc = hs_sqlite_leave(&t, rc, err);
    if (!rc)
        *version = v;
    return rc;
}

/* The model's row in each of the job's syncs that has not seen it synced, where a value really
 * changes; the ids of the syncs changed go into *ids (a JSON array, caller frees; NULL when
 * none changed). Parameters: ?1 connection, ?2 job, ?3 model, ?4 name, ?5 result, ?6 message,
 * ?7 done, ?8 total, ?9 pdf, ?10 json. */
#define NEW_RESULT  "COALESCE(?5, result)"
#define NEW_MESSAGE "CASE WHEN ?5 IS NOT NULL THEN ?6 ELSE message END"
#define NEW_DONE    "CASE WHEN ?7 >= 0 THEN ?7 ELSE artifacts_done END"
#define NEW_TOTAL   "CASE WHEN ?8 >= 0 THEN ?8 ELSE artifacts_total END"
static int progress_models(struct sq_txn *t, const char *conn, int64_t job_id,
                           const struct hs_sync_model_row *m, char **ids, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(
        t, &st,
        "UPDATE sync_models SET name = COALESCE(name, ?4), result = " NEW_RESULT ", "
        "message = " NEW_MESSAGE ", artifacts_done = " NEW_DONE ", artifacts_total = " NEW_TOTAL
        ", pdf_sha256 = COALESCE(?9, pdf_sha256), json_sha256 = COALESCE(?10, json_sha256) "
        "WHERE model_id = ?3 AND COALESCE(result, '') <> 'synced' AND sync_id IN (SELECT id FROM "
        "syncs WHERE " JOB_SYNCS ") AND (name IS NULL AND ?4 IS NOT NULL OR result IS "
        "NOT " NEW_RESULT " OR message IS NOT " NEW_MESSAGE " OR artifacts_done IS NOT " NEW_DONE
        " OR artifacts_total IS NOT " NEW_TOTAL " OR pdf_sha256 IS NOT COALESCE(?9, pdf_sha256) "
        "OR json_sha256 IS NOT COALESCE(?10, json_sha256)) RETURNING sync_id",
        "recording a sync's progress", err);
    if (rc)
        return rc;
    hs_sqlite_bind_text(st, 1, conn);
    sqlite3_bind_int64(st, 2, job_id);
    sqlite3_bind_int64(st, 3, m->model_id);
    hs_sqlite_bind_text(st, 4, m->name);
    hs_sqlite_bind_text(st, 5, m->result);
    hs_sqlite_bind_text(st, 6, m->message);
    sqlite3_bind_int64(st, 7, m->artifacts_done);
    sqlite3_bind_int64(st, 8, m->artifacts_total);
    hs_sqlite_bind_text(st, 9, m->pdf_sha256);
    hs_sqlite_bind_text(st, 10, m->json_sha256);
    void *v = NULL;
    size_t n = 0;
    rc = hs_sqlite_rows(t, st, sizeof(char *), hs_sqlite_fill_text, hs_sqlite_clear_text, &v, &n,
                        "recording a sync's progress", err);
    if (rc)
        return rc;
    char **changed = v;
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(a, json_string(changed[i] ? changed[i] : ""));
        free(changed[i]);
    }
    free(changed);
    *ids = n ? hs_json_dump(a) : NULL;
    json_decref(a);
    return HS_OK;
}

/* Runs sql with ?1 connection, ?2 job, ?3 now_ms, ?4 and ?5 text (may be NULL; parameters sql
 * does not use are left unbound); *changes (may be NULL) gets the rows changed. */
static int job_syncs_exec(struct sq_txn *t, const char *sql, const char *conn, int64_t job_id,
                          int64_t now_ms, const char *text, const char *text2, int *changes,
                          struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(t, &st, sql, "updating syncs", err);
    if (rc)
        return rc;
    hs_sqlite_bind_text(st, 1, conn);
    sqlite3_bind_int64(st, 2, job_id);
    sqlite3_bind_int64(st, 3, now_ms);
    hs_sqlite_bind_text(st, 4, text);
    hs_sqlite_bind_text(st, 5, text2);
    return hs_sqlite_run(t, st, changes, "updating syncs", err);
}

static int sq_sync_progress(struct hs_store *base, const char *connection_key, int64_t job_id,
                            const struct hs_sync_model_row *m, int64_t now_ms, int64_t *changed,
                            int64_t *finished, struct hs_error *err)
{
    if (!connection_key || job_id <= 0 || !m || m->model_id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "sync_progress needs a connection, a job and a model");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "sync_progress", err);
    if (rc)
        return rc;
    char *ids = NULL;
    int n = 0, settled = 0;
    rc = progress_models(&t, connection_key, job_id, m, &ids, err);
    if (!rc && ids) /* ?4: the changed ids. A finished sync's result follows its models. */
        rc = job_syncs_exec(&t,
                            "UPDATE syncs SET version = version + 1, result = CASE WHEN status = "
                            "'done' THEN " SYNC_RESULT " ELSE result END WHERE " JOB_SYNCS
                            " AND id IN (SELECT value FROM json_each(?4))",
                            connection_key, job_id, now_ms, ids, NULL, &n, err);
    if (!rc && ids) /* a running sync whose models all have a result is over */
        rc = job_syncs_exec(&t,
                            "UPDATE syncs SET status = 'done', result = " SYNC_RESULT
                            ", finished_ms = ?3, version = version + 1 WHERE " JOB_SYNCS
                            " AND status = 'running' AND NOT EXISTS (SELECT 1 "
                            "FROM sync_models m WHERE m.sync_id = syncs.id AND m.result IS NULL)",
                            connection_key, job_id, now_ms, NULL, NULL, &settled, err);
    free(ids);
    rc = hs_sqlite_leave(&t, rc, err);
    if (!rc && changed)
        *changed = n;
    if (!rc && finished)
        *finished = settled;
    return rc;
}

static int sq_syncs_finish(struct hs_store *base, const char *connection_key, int64_t job_id,
                           const char *error_code, const char *error_message, int64_t now_ms,
                           int64_t *finished, struct hs_error *err)
{
    if (!connection_key || job_id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "syncs_finish needs a connection and a job");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "syncs_finish", err);
    if (rc)
        return rc;
    int n = 0;
    const char *why = error_message ? error_message : error_code;
    if (error_code) {
        /* The models that got nowhere say why. */
        rc = job_syncs_exec(&t,
                            "UPDATE sync_models SET message = ?4 WHERE result IS NULL AND "
                            "sync_id IN (SELECT id FROM syncs WHERE " JOB_SYNCS
                            " AND status = 'running')",
                            connection_key, job_id, now_ms, why, NULL, NULL, err);
        if (!rc)
            rc = job_syncs_exec(&t,
                                "UPDATE syncs SET status = 'failed', result = 'failed', "
                                "error_code = ?4, error_message = ?5, finished_ms = ?3, "
                                "version = version + 1 WHERE " JOB_SYNCS " AND status = 'running'",
                                connection_key, job_id, now_ms, error_code, why, &n, err);
    } else {
        rc = job_syncs_exec(&t,
                            "UPDATE syncs SET status = 'done', result = " SYNC_RESULT
                            ", finished_ms = ?3, version = version + 1 WHERE " JOB_SYNCS
                            " AND status = 'running'",
                            connection_key, job_id, now_ms, NULL, NULL, &n, err);
    }
    rc = hs_sqlite_leave(&t, rc, err);
    if (!rc && finished)
        *finished = n;
    return rc;
}

static int sq_syncs_expire(struct hs_store *base, int64_t before_ms, int64_t *removed,
                           struct hs_error *err)
{
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "syncs_expire", err);
    if (rc)
        return rc;
    int n = 0;
    rc = item_exec(&t,
                   "DELETE FROM sync_models WHERE sync_id IN (SELECT id FROM syncs WHERE "
                   "finished_ms IS NOT NULL AND finished_ms < ?1)",
                   before_ms, 0, 0, NULL, NULL, "deleting old syncs", err);
    if (!rc)
        rc = item_exec(&t, "DELETE FROM syncs WHERE finished_ms IS NOT NULL AND finished_ms < ?1",
                       before_ms, 0, 0, NULL, &n, "deleting old syncs", err);
    rc = hs_sqlite_leave(&t, rc, err);
    if (!rc && removed)
        *removed = n;
    return rc;
}

static int sq_syncs_count(struct hs_store *base, int64_t *queued, int64_t *running,
                          struct hs_error *err)
{
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "syncs_count", err);
    if (rc)
        return rc;
    int64_t q = 0, r = 0;
    rc = count_one(&t, "SELECT COUNT(*) FROM syncs WHERE status = 'queued'", 0, &q,
                   "counting syncs", err);
    if (!rc)
        rc = count_one(&t, "SELECT COUNT(*) FROM syncs WHERE status = 'running'", 0, &r,
                       "counting syncs", err);
    rc = hs_sqlite_leave(&t, rc, err);
    if (rc)
        return rc;
    if (queued)
        *queued = q;
    if (running)
        *running = r;
    return HS_OK;
}

/* ---- the pending pass's polls ---- */

/* The jobs with open selections, by connection (a selection without one is the default's). */
#define OPEN_JOBS                                                                                  \
    "SELECT DISTINCT COALESCE(NULLIF(connection_key, ''), 'default') AS conn, job_id FROM "        \
    "selections WHERE status IN ('selected', 'pending', 'error')"
/* No work item for the job (p: the row with conn and job_id). */
#define NO_ITEM(p)                                                                                 \
    "NOT EXISTS (SELECT 1 FROM work_items w WHERE w.connection_key = " p ".conn AND w.job_id = " p \
    ".job_id)"

/* Runs sql with ?1 now_ms, ?2 first_ms, ?3 the skipped connections (JSON), those it uses. */
static int polls_exec(struct sq_txn *t, const char *sql, int64_t now_ms, int64_t first_ms,
                      const char *skip, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(t, &st, sql, "updating pending polls", err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int64(st, 2, first_ms);
    hs_sqlite_bind_text(st, 3, skip);
    return hs_sqlite_run(t, st, NULL, "updating pending polls", err);
}

/* Forgets the polls of jobs without open selections and of skipped connections (a webhook
 * reports their changes; if it fails later, polling starts over from the first interval), and
 * starts polling the jobs with open selections and no work item. */
static int polls_refresh(struct sq_txn *t, int64_t now_ms, int64_t first_ms, const char *skip,
                         struct hs_error *err)
{
    int rc = polls_exec(t,
                        "DELETE FROM pending_polls WHERE ("
                        "connection_key IN (SELECT value FROM json_each(?3)) OR NOT EXISTS ("
                        "SELECT 1 FROM (" OPEN_JOBS ") o WHERE o.conn = "
                        "pending_polls.connection_key AND o.job_id = pending_polls.job_id))",
                        now_ms, first_ms, skip, err);
    if (!rc)
        rc = polls_exec(
            t,
            "INSERT OR IGNORE INTO pending_polls (connection_key, job_id, interval_ms, "
            "next_poll_ms) SELECT o.conn, o.job_id, ?2, ?1 + ?2 FROM (" OPEN_JOBS
            ") o WHERE o.conn NOT IN (SELECT value FROM json_each(?3)) AND " NO_ITEM("o"),
            now_ms, first_ms, skip, err);
    return rc;
}

static int pending_fill(struct sq_txn *t, sqlite3_stmt *st, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    *(struct hs_pending_job *)row =
        (struct hs_pending_job){.connection_key = hs_sqlite_col_text(st, 0),
                                .job_id = sqlite3_column_int64(st, 1),
                                .interval_ms = sqlite3_column_int64(st, 2)};
    return HS_OK;
}

static void pending_clear(void *row)
{
    free(((struct hs_pending_job *)row)->connection_key);
}

/* The polls due now whose job has no work item, their interval doubled (at most cap_ms). */
static int polls_due(struct sq_txn *t, int64_t now_ms, int64_t cap_ms, struct hs_pending_job **out,
                     size_t *n, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(
        t, &st,
        "UPDATE pending_polls SET interval_ms = MIN(interval_ms * 2, ?2), next_poll_ms = ?1 + "
        "MIN(interval_ms * 2, ?2) WHERE next_poll_ms <= ?1 AND NOT EXISTS (SELECT 1 FROM "
        "work_items w WHERE w.connection_key = pending_polls.connection_key AND w.job_id = "
        "pending_polls.job_id) RETURNING connection_key, job_id, interval_ms",
        "reading due pending polls", err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int64(st, 2, cap_ms);
    void *v = NULL;
    rc = hs_sqlite_rows(t, st, sizeof **out, pending_fill, pending_clear, &v, n,
                        "reading due pending polls", err);
    if (!rc)
        *out = v;
    return rc;
}

/* The skipped connections as a JSON array, for json_each (caller frees). */
static char *skip_json(const char *const *skip, size_t n_skip)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n_skip; i++)
        if (skip[i])
            json_array_append_new(a, json_string(skip[i]));
    char *s = hs_json_dump(a);
    json_decref(a);
    return s;
}

static int sq_pending_poll(struct hs_store *base, int64_t now_ms, int64_t first_ms, int64_t cap_ms,
                           const char *const *skip, size_t n_skip, struct hs_pending_job **out,
                           size_t *n, struct hs_error *err)
{
    if (cap_ms <= 0 || first_ms <= 0)
        return hs_fail(err, HS_ERR_INVALID, "pending_poll needs a first interval and a cap");
    if (first_ms > cap_ms)
        first_ms = cap_ms;
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "pending_poll", err);
    if (rc)
        return rc;
    char *skipped = skip_json(skip, n_skip);
    struct hs_pending_job *v = NULL;
    size_t nv = 0;
    rc = polls_refresh(&t, now_ms, first_ms, skipped, err);
    if (!rc)
        rc = polls_due(&t, now_ms, cap_ms, &v, &nv, err);
    for (size_t i = 0; !rc && i < nv; i++) {
        struct hs_work_trigger tr = {.connection_key = v[i].connection_key,
                                     .job_id = v[i].job_id,
                                     .reason = "pending",
                                     .priority = HS_WORK_PRIO_BACKGROUND,
                                     .now_ms = now_ms,
                                     .due_ms = now_ms};
        rc = hs_sqlite_work_bump(&t, &tr, err);
    }
    rc = hs_sqlite_leave(&t, rc, err);
    free(skipped);
    if (rc) {
        hs_pending_jobs_free(v, nv);
        return rc;
    }
    *out = v;
    *n = nv;
    return HS_OK;
}

/* No channel between the processes of one file: a wait is a sleep (store/work.h). */
static int sq_work_wait(struct hs_store *base, int cancel_fd, int64_t timeout_ms, bool *woken,
                        struct hs_error *err)
{
    (void)base;
    (void)err;
    *woken = false;
    hs_work_wait_idle(cancel_fd, timeout_ms);
    return HS_OK;
}

const struct hs_work_ops hs_sqlite_work_ops = {
    .work_schedule = sq_work_schedule,
    .work_claim = sq_work_claim,
    .work_fence = sq_work_fence,
    .work_renew = sq_work_renew,
    .work_done = sq_work_done,
    .work_retry = sq_work_retry,
    .work_get = sq_work_get,
    .work_depth = sq_work_depth,
    .work_release = sq_work_release,
    .work_release_dead = sq_work_release_dead,
    .work_wait = sq_work_wait,
    .sync_create = sq_sync_create,
    .sync_get = sq_sync_get,
    .sync_version = sq_sync_version,
    .sync_progress = sq_sync_progress,
    .syncs_finish = sq_syncs_finish,
    .syncs_expire = sq_syncs_expire,
    .syncs_count = sq_syncs_count,
    .pending_poll = sq_pending_poll,
};
