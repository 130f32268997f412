/* sqlite_queue.c: the work queue, the syncs of POST /api/syncs with their progress, and the
 * pending pass's polls, in the SQLite back-end (store.h, "the work queue, syncs and their
 * progress, pending polls"; the tables are migrations 5 and 11).
 *
 * Every op runs in its own transaction under the store lock, or joins the caller's (a sync's
 * progress commits with the artifact or the result it reports, and with the fence of the run's
 * claim: sqlite_records.c's begin/commit).
 *
 * The fence: each claim bumps the item's claim counter, and the claim's token is the counter's
 * value. A write of the run checks, in its own transaction, that the counter is still the token
 * and that the lease has not ended at the caller's clock: a worker paused past its lease (or cut
 * off from the store) commits nothing once it resumes, whoever claimed the item since. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/json.h"
#include "core/mem.h"
#include "store/sqlite_internal.h"

static struct sqlite_store *sq(struct hs_store *base)
{
    return (struct sqlite_store *)base;
}

/* ---- work items ---- */

#define ITEM_COLS                                                                                  \
    "id, connection_key, job_id, reason, priority, generation, attempts, not_before_ms, claims, "  \
    "lease_until_ms, trigger_ms, payload, payload_ms, last_error"

static void item_read(sqlite3_stmt *st, struct hs_work_item *w)
{
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
}

/* An item is being run while a claim's lease holds. */
#define ITEM_RUNNING "claimed_by IS NOT NULL AND lease_until_ms > ?5"

int hs_sqlite_work_bump(struct sqlite_store *s, const struct hs_work_trigger *t,
                        struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    /* The payload is the newest trigger's: a later trigger without one means the job may have
     * changed since it was listed. */
    int rc = hs_sqlite_prep(
        s, &st,
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
    hs_sqlite_bind_text(st, 1, t->connection_key);
    sqlite3_bind_int64(st, 2, t->job_id);
    hs_sqlite_bind_text(st, 3, t->reason);
    sqlite3_bind_int(st, 4, t->priority);
    sqlite3_bind_int64(st, 5, t->now_ms);
    sqlite3_bind_int64(st, 6, t->due_ms);
    sqlite3_bind_int64(st, 7, t->rerun_ms > 0 ? t->rerun_ms : 0);
    hs_sqlite_bind_text(st, 8, t->payload);
    sqlite3_bind_int(st, 9, HS_WORK_PRIO_INTERACTIVE);
    sqlite3_bind_int(st, 10, t->now ? 1 : 0);
    return hs_sqlite_run(s, st, NULL, "scheduling work", err);
}

int hs_sqlite_work_schedule(struct hs_store *base, const struct hs_work_trigger *t,
                            struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (!t || !t->connection_key || t->job_id <= 0 || !t->reason)
        return hs_fail(err, HS_ERR_INVALID, "work item without a connection, a job or a reason");
    struct hs_sqlite_op op;
    int rc = hs_sqlite_op_enter(s, &op, true, err);
    if (rc)
        return rc;
    rc = hs_sqlite_work_bump(s, t, err);
    return hs_sqlite_op_leave(s, &op, rc, err);
}

/* An item is due when its not_before has passed and nobody holds a live lease on it. */
#define WORK_DUE "not_before_ms <= ?1 AND (lease_until_ms IS NULL OR lease_until_ms <= ?1)"

/* The claim's row: highest priority, then the connection whose last claim is the oldest (never
 * claimed counts as oldest), then the oldest due. */
static int claim_row(struct sqlite_store *s, const char *worker, const char *only, int64_t now_ms,
                     int64_t lease_ms, struct hs_work_item *w, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(
        s, &st,
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
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        item_read(st, w);
        src = sqlite3_step(st);
        rc = src == SQLITE_DONE ? HS_OK : hs_sqlite_fail(s, src, err, "claiming work");
    } else if (src == SQLITE_DONE) {
        rc = hs_fail(err, HS_ERR_NOT_FOUND, "no work item is due");
    } else {
        rc = hs_sqlite_fail(s, src, err, "claiming work");
    }
    sqlite3_finalize(st);
    return rc;
}

/* When the next item that is not due now will be (0: none). */
static int next_due(struct sqlite_store *s, const char *only, int64_t now_ms, int64_t *out,
                    struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(s, &st,
                            "SELECT MIN(MAX(not_before_ms, COALESCE(lease_until_ms, 0))) FROM "
                            "work_items WHERE NOT (" WORK_DUE ") AND (?2 IS NULL OR "
                            "connection_key = ?2)",
                            "reading the next due work", err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, now_ms);
    hs_sqlite_bind_text(st, 2, only);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0); /* NULL (none) reads as 0 */
    else
        rc = hs_sqlite_fail(s, src, err, "reading the next due work");
    sqlite3_finalize(st);
    return rc;
}

/* The claim's other writes: the connection's turn, and the job's queued syncs now running. */
static int claim_after(struct sqlite_store *s, const struct hs_work_item *w, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc =
        hs_sqlite_prep(s, &st,
                       "INSERT INTO work_turns (connection_key, last_claim) VALUES (?1, "
                       "(SELECT COALESCE(MAX(last_claim), 0) + 1 FROM work_turns)) "
                       "ON CONFLICT(connection_key) DO UPDATE SET last_claim = excluded.last_claim",
                       "claiming work", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, w->connection_key);
        rc = hs_sqlite_run(s, st, NULL, "claiming work", err);
    }
    if (!rc)
        rc = hs_sqlite_prep(s, &st,
                            "UPDATE syncs SET status = 'running', version = version + 1 WHERE "
                            "connection_key = ?1 AND job_id = ?2 AND status = 'queued'",
                            "starting syncs", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, w->connection_key);
        sqlite3_bind_int64(st, 2, w->job_id);
        rc = hs_sqlite_run(s, st, NULL, "starting syncs", err);
    }
    return rc;
}

int hs_sqlite_work_claim(struct hs_store *base, const char *worker, const char *only_connection,
                         int64_t now_ms, int64_t lease_ms, struct hs_work_item *out,
                         int64_t *next_due_ms, struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (!worker || lease_ms <= 0)
        return hs_fail(err, HS_ERR_INVALID, "work claim without a worker name or a lease");
    struct hs_sqlite_op op;
    int rc = hs_sqlite_op_enter(s, &op, true, err);
    if (rc)
        return rc;
    struct hs_work_item w = {0};
    int64_t next = 0;
    rc = claim_row(s, worker, only_connection, now_ms, lease_ms, &w, err);
    if (rc == HS_ERR_NOT_FOUND) {
        struct hs_error nerr = {0};
        if (next_due(s, only_connection, now_ms, &next, &nerr) != HS_OK)
            next = 0;
    } else if (!rc) {
        rc = claim_after(s, &w, err);
    }
    rc = hs_sqlite_op_leave(s, &op, rc, err);
    if (rc) {
        hs_work_item_clear(&w);
        if (rc == HS_ERR_NOT_FOUND && next_due_ms)
            *next_due_ms = next;
        return rc;
    }
    *out = w;
    return HS_OK;
}

static int fence_check(struct sqlite_store *s, const struct hs_work_item *w, int64_t now_ms,
                       struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(s, &st,
                            "SELECT 1 FROM work_items WHERE id = ?1 AND claims = ?2 AND "
                            "claimed_by IS NOT NULL AND lease_until_ms > ?3",
                            "checking the work item's claim", err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, w->id);
    sqlite3_bind_int64(st, 2, w->claim);
    sqlite3_bind_int64(st, 3, now_ms);
    int src = sqlite3_step(st);
    if (src == SQLITE_DONE)
        rc = hs_fail(err, HS_ERR_CONFLICT,
                     "the claim of the work item of job %lld lapsed (its lease ended, or it was "
                     "claimed again): this run commits nothing more",
                     (long long)w->job_id);
    else if (src != SQLITE_ROW)
        rc = hs_sqlite_fail(s, src, err, "checking the work item's claim");
    sqlite3_finalize(st);
    return rc;
}

int hs_sqlite_work_fence(struct hs_store *base, const struct hs_work_item *w, int64_t now_ms,
                         struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (!w || w->id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "work_fence without an item");
    struct hs_sqlite_op op;
    int rc = hs_sqlite_op_enter(s, &op, false, err);
    if (rc)
        return rc;
    rc = fence_check(s, w, now_ms, err);
    return hs_sqlite_op_leave(s, &op, rc, err);
}

/* The write transaction of a run's own op on its item, with the claim checked in it. */
static int fenced_enter(struct sqlite_store *s, struct hs_sqlite_op *op,
                        const struct hs_work_item *w, int64_t now_ms, const char *what,
                        struct hs_error *err)
{
    if (!w || w->id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "%s without an item", what);
    int rc = hs_sqlite_op_enter(s, op, true, err);
    if (rc)
        return rc;
    rc = fence_check(s, w, now_ms, err);
    if (rc)
        hs_sqlite_op_leave(s, op, rc, NULL);
    return rc;
}

/* Runs sql with ?1 the item's id, ?2 and ?3 integers and ?4 text (those it uses); *changes
 * (may be NULL) gets the rows changed. */
static int item_exec(struct sqlite_store *s, const char *sql, int64_t id, int64_t a, int64_t b,
                     const char *text, int *changes, const char *what, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(s, &st, sql, what, err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, a);
    sqlite3_bind_int64(st, 3, b);
    hs_sqlite_bind_text(st, 4, text);
    return hs_sqlite_run(s, st, changes, what, err);
}

int hs_sqlite_work_renew(struct hs_store *base, const struct hs_work_item *w, int64_t now_ms,
                         int64_t lease_ms, struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    struct hs_sqlite_op op;
    if (lease_ms <= 0)
        return hs_fail(err, HS_ERR_INVALID, "work_renew without a lease");
    int rc = fenced_enter(s, &op, w, now_ms, "work_renew", err);
    if (rc)
        return rc;
    rc = item_exec(s, "UPDATE work_items SET lease_until_ms = ?2 WHERE id = ?1", w->id,
                   now_ms + lease_ms, 0, NULL, NULL, "renewing a lease", err);
    return hs_sqlite_op_leave(s, &op, rc, err);
}

int hs_sqlite_work_done(struct hs_store *base, const struct hs_work_item *w, int64_t now_ms,
                        struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    struct hs_sqlite_op op;
    int rc = fenced_enter(s, &op, w, now_ms, "work_done", err);
    if (rc)
        return rc;
    int changes = 0;
    rc = item_exec(s, "DELETE FROM work_items WHERE id = ?1 AND generation = ?2", w->id,
                   w->generation, 0, NULL, &changes, "finishing work", err);
    if (!rc && changes == 0) /* a newer trigger came in while it ran: another pass when due */
        rc = item_exec(s,
                       "UPDATE work_items SET claimed_by = NULL, lease_until_ms = NULL, "
                       "attempts = 0, last_error = NULL WHERE id = ?1",
                       w->id, 0, 0, NULL, NULL, "finishing work", err);
    return hs_sqlite_op_leave(s, &op, rc, err);
}

int hs_sqlite_work_retry(struct hs_store *base, const struct hs_work_item *w, int64_t now_ms,
                         int64_t not_before_ms, const char *error, struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    struct hs_sqlite_op op;
    int rc = fenced_enter(s, &op, w, now_ms, "work_retry", err);
    if (rc)
        return rc;
    rc = item_exec(s,
                   "UPDATE work_items SET claimed_by = NULL, lease_until_ms = NULL, "
                   "attempts = attempts + 1, not_before_ms = ?2, last_error = ?4, "
                   "priority = MAX(priority, ?3) WHERE id = ?1",
                   w->id, not_before_ms, w->priority, error, NULL, "retrying work", err);
    return hs_sqlite_op_leave(s, &op, rc, err);
}

int hs_sqlite_work_get(struct hs_store *base, const char *connection_key, int64_t job_id,
                       struct hs_work_item *out, struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (!connection_key || job_id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "work_get needs a connection and a job");
    struct hs_sqlite_op op;
    int rc = hs_sqlite_op_enter(s, &op, false, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    struct hs_work_item w = {0};
    rc = hs_sqlite_prep(s, &st,
                        "SELECT " ITEM_COLS " FROM work_items WHERE connection_key = ?1 AND "
                        "job_id = ?2",
                        "reading a work item", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, connection_key);
        sqlite3_bind_int64(st, 2, job_id);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW)
            item_read(st, &w);
        else if (src == SQLITE_DONE)
            rc = hs_fail(err, HS_ERR_NOT_FOUND, "no work item for job %lld", (long long)job_id);
        else
            rc = hs_sqlite_fail(s, src, err, "reading a work item");
        sqlite3_finalize(st);
    }
    rc = hs_sqlite_op_leave(s, &op, rc, err);
    if (rc) {
        hs_work_item_clear(&w);
        return rc;
    }
    *out = w;
    return HS_OK;
}

/* One-statement read of integers (COUNT(*) and the like); NULL reads as 0. */
static int read_ints(struct sqlite_store *s, sqlite3_stmt *st, int64_t *a, int64_t *b,
                     const char *what, struct hs_error *err)
{
    int rc = sqlite3_step(st);
    int ret = HS_OK;
    if (rc == SQLITE_ROW) {
        *a = sqlite3_column_int64(st, 0);
        if (b)
            *b = sqlite3_column_int64(st, 1);
    } else {
        ret = hs_sqlite_fail(s, rc, err, what);
    }
    sqlite3_finalize(st);
    return ret;
}

int hs_sqlite_work_depth(struct hs_store *base, int64_t *due, int64_t *total, int64_t now_ms,
                         struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    struct hs_sqlite_op op;
    int rc = hs_sqlite_op_enter(s, &op, false, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    int64_t d = 0, t = 0;
    rc = hs_sqlite_prep(s, &st, "SELECT SUM(" WORK_DUE "), COUNT(*) FROM work_items",
                        "counting work", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, now_ms);
        rc = read_ints(s, st, &d, &t, "counting work", err);
    }
    rc = hs_sqlite_op_leave(s, &op, rc, err);
    if (rc)
        return rc;
    if (due)
        *due = d;
    if (total)
        *total = t;
    return HS_OK;
}

int hs_sqlite_work_release_dead(struct hs_store *base, bool (*dead)(void *ctx, const char *worker),
                                void *ctx, int64_t *released, struct hs_error *err)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    if (!dead)
        return hs_fail(err, HS_ERR_INVALID, "work_release_dead needs a test");
    if (hs_sqlite_held_by_me(s))
        return hs_fail(err, HS_ERR_INTERNAL, "work_release_dead inside a transaction");
    hs_sqlite_lock(s);
    int64_t total = 0;
    int ret = hs_sqlite_exec(s, "BEGIN IMMEDIATE", err);
    sqlite3_stmt *st = NULL, *up = NULL;
    if (!ret) {
        int rc = sqlite3_prepare_v2(s->db,
                                    "SELECT DISTINCT claimed_by FROM work_items WHERE "
                                    "claimed_by IS NOT NULL",
                                    -1, &st, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_prepare_v2(s->db,
                                    "UPDATE work_items SET claimed_by = NULL, lease_until_ms = "
                                    "NULL WHERE claimed_by = ?1",
                                    -1, &up, NULL);
        while (rc == SQLITE_OK || rc == SQLITE_ROW) {
            rc = sqlite3_step(st);
            if (rc != SQLITE_ROW)
                break;
            const char *who = (const char *)sqlite3_column_text(st, 0);
            if (!who || !dead(ctx, who))
                continue;
            sqlite3_reset(up);
            sqlite3_bind_text(up, 1, who, -1, SQLITE_TRANSIENT);
            int urc = sqlite3_step(up);
            if (urc != SQLITE_DONE) {
                rc = urc;
                break;
            }
            total += sqlite3_changes(s->db);
        }
        if (rc != SQLITE_DONE)
            ret = hs_sqlite_fail(s, rc, err, "releasing dead workers' claims");
        sqlite3_finalize(st);
        sqlite3_finalize(up);
        if (!ret)
            ret = hs_sqlite_exec(s, "COMMIT", err);
        if (ret)
            hs_sqlite_exec(s, "ROLLBACK", NULL);
    }
    hs_sqlite_unlock(s);
    if (!ret && released)
        *released = total;
    return ret;
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

int hs_sqlite_sync_create(struct hs_store *base, const struct hs_sync_row *r, int64_t now_ms,
                          struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (!r || !r->id || !*r->id || !r->connection_key || r->job_id <= 0 || r->n_models == 0)
        return hs_fail(err, HS_ERR_INVALID, "a sync needs an id, a connection, a job and models");
    struct hs_sqlite_op op;
    int rc = hs_sqlite_op_enter(s, &op, true, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(s, &st,
                        "INSERT INTO syncs (id, connection_key, job_id, status, version, "
                        "created_ms) VALUES (?1, ?2, ?3, 'queued', 1, ?4)",
                        "storing the sync", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, r->id);
        hs_sqlite_bind_text(st, 2, r->connection_key);
        sqlite3_bind_int64(st, 3, r->job_id);
        sqlite3_bind_int64(st, 4, now_ms);
        rc = hs_sqlite_run(s, st, NULL, "storing the sync", err);
    }
    for (size_t i = 0; !rc && i < r->n_models; i++) {
        const struct hs_sync_model_row *m = &r->models[i];
        rc = hs_sqlite_prep(s, &st,
                            "INSERT INTO sync_models (sync_id, model_id, position, name, "
                            "when_ready) VALUES (?1, ?2, ?3, ?4, ?5)",
                            "storing the sync's models", err);
        if (rc)
            break;
        hs_sqlite_bind_text(st, 1, r->id);
        sqlite3_bind_int64(st, 2, m->model_id);
        sqlite3_bind_int64(st, 3, (int64_t)i);
        hs_sqlite_bind_text(st, 4, m->name);
        sqlite3_bind_int(st, 5, m->when_ready ? 1 : 0);
        rc = hs_sqlite_run(s, st, NULL, "storing the sync's models", err);
    }
    return hs_sqlite_op_leave(s, &op, rc, err);
}

static int sync_models_read(struct sqlite_store *s, struct hs_sync_row *r, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(s, &st,
                            "SELECT model_id, name, when_ready, result, message, artifacts_done, "
                            "artifacts_total, pdf_sha256, json_sha256 FROM sync_models WHERE "
                            "sync_id = ?1 ORDER BY position",
                            "reading the sync's models", err);
    if (rc)
        return rc;
    hs_sqlite_bind_text(st, 1, r->id);
    size_t cap = 0;
    for (;;) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = hs_sqlite_fail(s, src, err, "reading the sync's models");
            break;
        }
        if (r->n_models == cap) {
            cap = cap ? cap * 2 : 4;
            r->models = hs_realloc(r->models, cap * sizeof *r->models);
        }
        struct hs_sync_model_row *m = &r->models[r->n_models++];
        *m = (struct hs_sync_model_row){
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
    }
    sqlite3_finalize(st);
    return rc;
}

int hs_sqlite_sync_get(struct hs_store *base, const char *id, struct hs_sync_row *out,
                       struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (!id)
        return hs_fail(err, HS_ERR_INVALID, "sync_get without an id");
    struct hs_sqlite_op op;
    int rc = hs_sqlite_op_enter(s, &op, false, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    struct hs_sync_row r = {0};
    rc = hs_sqlite_prep(s, &st,
                        "SELECT id, connection_key, job_id, status, result, error_code, "
                        "error_message, version, created_ms, finished_ms FROM syncs WHERE id = ?1",
                        "reading the sync", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, id);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            r.id = hs_sqlite_col_text(st, 0);
            r.connection_key = hs_sqlite_col_text(st, 1);
            r.job_id = sqlite3_column_int64(st, 2);
            r.status = hs_sqlite_col_text(st, 3);
            r.result = hs_sqlite_col_text(st, 4);
            r.error_code = hs_sqlite_col_text(st, 5);
            r.error_message = hs_sqlite_col_text(st, 6);
            r.version = sqlite3_column_int64(st, 7);
            r.created_ms = sqlite3_column_int64(st, 8);
            r.finished_ms = sqlite3_column_int64(st, 9);
        } else if (src == SQLITE_DONE) {
            rc = hs_fail(err, HS_ERR_NOT_FOUND, "no sync %s", id);
        } else {
            rc = hs_sqlite_fail(s, src, err, "reading the sync");
        }
        sqlite3_finalize(st);
    }
    if (!rc)
        rc = sync_models_read(s, &r, err);
    rc = hs_sqlite_op_leave(s, &op, rc, err);
    if (rc) {
        hs_sync_row_clear(&r);
        return rc;
    }
    *out = r;
    return HS_OK;
}

int hs_sqlite_sync_version(struct hs_store *base, const char *id, int64_t *version,
                           struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (!id)
        return hs_fail(err, HS_ERR_INVALID, "sync_version without an id");
    struct hs_sqlite_op op;
    int rc = hs_sqlite_op_enter(s, &op, false, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    int64_t v = 0;
    rc = hs_sqlite_prep(s, &st, "SELECT version FROM syncs WHERE id = ?1", "reading the sync", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, id);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
        else if (src == SQLITE_DONE)
            rc = hs_fail(err, HS_ERR_NOT_FOUND, "no sync %s", id);
        else
            rc = hs_sqlite_fail(s, src, err, "reading the sync");
        sqlite3_finalize(st);
    }
    rc = hs_sqlite_op_leave(s, &op, rc, err);
    if (!rc)
        *version = v;
    return rc;
}

/* The model's row in each of the job's syncs that has not seen it synced, where a value really
 * changes; the ids of the syncs changed go into *ids (a JSON array, caller frees). Parameters:
 * ?1 connection, ?2 job, ?3 model, ?4 name, ?5 result, ?6 message, ?7 done, ?8 total, ?9 pdf,
 * ?10 json. */
#define NEW_RESULT  "COALESCE(?5, result)"
#define NEW_MESSAGE "CASE WHEN ?5 IS NOT NULL THEN ?6 ELSE message END"
#define NEW_DONE    "CASE WHEN ?7 >= 0 THEN ?7 ELSE artifacts_done END"
#define NEW_TOTAL   "CASE WHEN ?8 >= 0 THEN ?8 ELSE artifacts_total END"
static int progress_models(struct sqlite_store *s, const char *conn, int64_t job_id,
                           const struct hs_sync_model_row *m, char **ids, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(
        s, &st,
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
    json_t *a = json_array();
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(a, json_string((const char *)sqlite3_column_text(st, 0)));
    if (src != SQLITE_DONE)
        rc = hs_sqlite_fail(s, src, err, "recording a sync's progress");
    sqlite3_finalize(st);
    *ids = json_array_size(a) ? hs_json_dump(a) : NULL;
    json_decref(a);
    return rc;
}

/* Runs sql with ?1 connection, ?2 job, ?3 now_ms, ?4 text (may be NULL; parameters sql does not
 * use are left unbound); *changes gets the rows changed. */
static int job_syncs_exec(struct sqlite_store *s, const char *sql, const char *conn, int64_t job_id,
                          int64_t now_ms, const char *text, int *changes, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(s, &st, sql, "updating syncs", err);
    if (rc)
        return rc;
    hs_sqlite_bind_text(st, 1, conn);
    sqlite3_bind_int64(st, 2, job_id);
    sqlite3_bind_int64(st, 3, now_ms);
    hs_sqlite_bind_text(st, 4, text);
    return hs_sqlite_run(s, st, changes, "updating syncs", err);
}

int hs_sqlite_sync_progress(struct hs_store *base, const char *connection_key, int64_t job_id,
                            const struct hs_sync_model_row *m, int64_t now_ms, int64_t *changed,
                            int64_t *finished, struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (!connection_key || job_id <= 0 || !m || m->model_id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "sync_progress needs a connection, a job and a model");
    struct hs_sqlite_op op;
    int rc = hs_sqlite_op_enter(s, &op, true, err);
    if (rc)
        return rc;
    char *ids = NULL;
    int n = 0, settled = 0;
    rc = progress_models(s, connection_key, job_id, m, &ids, err);
    if (!rc && ids) {
        /* ?4: the changed ids. A finished sync's result follows its models. */
        rc = job_syncs_exec(s,
                            "UPDATE syncs SET version = version + 1, result = CASE WHEN status = "
                            "'done' THEN " SYNC_RESULT " ELSE result END WHERE " JOB_SYNCS
                            " AND id IN (SELECT value FROM json_each(?4))",
                            connection_key, job_id, now_ms, ids, &n, err);
    }
    if (!rc && ids) /* a running sync whose models all have a result is over */
        rc = job_syncs_exec(s,
                            "UPDATE syncs SET status = 'done', result = " SYNC_RESULT
                            ", finished_ms = ?3, version = version + 1 WHERE " JOB_SYNCS
                            " AND status = 'running' AND NOT EXISTS (SELECT 1 "
                            "FROM sync_models m WHERE m.sync_id = syncs.id AND m.result IS NULL)",
                            connection_key, job_id, now_ms, NULL, &settled, err);
    free(ids);
    rc = hs_sqlite_op_leave(s, &op, rc, err);
    if (!rc && changed)
        *changed = n;
    if (!rc && finished)
        *finished = settled;
    return rc;
}

int hs_sqlite_syncs_finish(struct hs_store *base, const char *connection_key, int64_t job_id,
                           const char *error_code, const char *error_message, int64_t now_ms,
                           int64_t *finished, struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (!connection_key || job_id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "syncs_finish needs a connection and a job");
    struct hs_sqlite_op op;
    int rc = hs_sqlite_op_enter(s, &op, true, err);
    if (rc)
        return rc;
    int n = 0;
    if (error_code) {
        /* The models that got nowhere say why. */
        rc = job_syncs_exec(
            s,
            "UPDATE sync_models SET message = ?4 WHERE result IS NULL AND "
            "sync_id IN (SELECT id FROM syncs WHERE " JOB_SYNCS " AND status = 'running')",
            connection_key, job_id, now_ms, error_message ? error_message : error_code, NULL, err);
        sqlite3_stmt *st = NULL;
        if (!rc)
            rc = hs_sqlite_prep(s, &st,
                                "UPDATE syncs SET status = 'failed', result = 'failed', "
                                "error_code = ?4, error_message = ?5, finished_ms = ?3, "
                                "version = version + 1 WHERE " JOB_SYNCS " AND status = 'running'",
                                "ending syncs", err);
        if (!rc) {
            hs_sqlite_bind_text(st, 1, connection_key);
            sqlite3_bind_int64(st, 2, job_id);
            sqlite3_bind_int64(st, 3, now_ms);
            hs_sqlite_bind_text(st, 4, error_code);
            hs_sqlite_bind_text(st, 5, error_message ? error_message : error_code);
            rc = hs_sqlite_run(s, st, &n, "ending syncs", err);
        }
    } else {
        rc = job_syncs_exec(s,
                            "UPDATE syncs SET status = 'done', result = " SYNC_RESULT
                            ", finished_ms = ?3, version = version + 1 WHERE " JOB_SYNCS
                            " AND status = 'running'",
                            connection_key, job_id, now_ms, NULL, &n, err);
    }
    rc = hs_sqlite_op_leave(s, &op, rc, err);
    if (!rc && finished)
        *finished = n;
    return rc;
}

int hs_sqlite_syncs_expire(struct hs_store *base, int64_t before_ms, int64_t *removed,
                           struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    struct hs_sqlite_op op;
    int rc = hs_sqlite_op_enter(s, &op, true, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    int n = 0;
    rc = hs_sqlite_prep(s, &st,
                        "DELETE FROM sync_models WHERE sync_id IN (SELECT id FROM syncs WHERE "
                        "finished_ms IS NOT NULL AND finished_ms < ?1)",
                        "deleting old syncs", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, before_ms);
        rc = hs_sqlite_run(s, st, NULL, "deleting old syncs", err);
    }
    if (!rc)
        rc = hs_sqlite_prep(s, &st,
                            "DELETE FROM syncs WHERE finished_ms IS NOT NULL AND finished_ms < ?1",
                            "deleting old syncs", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, before_ms);
        rc = hs_sqlite_run(s, st, &n, "deleting old syncs", err);
    }
    rc = hs_sqlite_op_leave(s, &op, rc, err);
    if (!rc && removed)
        *removed = n;
    return rc;
}

int hs_sqlite_syncs_count(struct hs_store *base, int64_t *queued, int64_t *running,
                          struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    struct hs_sqlite_op op;
    int rc = hs_sqlite_op_enter(s, &op, false, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    int64_t q = 0, r = 0;
    rc = hs_sqlite_prep(s, &st,
                        "SELECT SUM(status = 'queued'), SUM(status = 'running') FROM syncs WHERE "
                        "status IN ('queued', 'running')",
                        "counting syncs", err);
    if (!rc)
        rc = read_ints(s, st, &q, &r, "counting syncs", err);
    rc = hs_sqlite_op_leave(s, &op, rc, err);
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
static int polls_exec(struct sqlite_store *s, const char *sql, int64_t now_ms, int64_t first_ms,
                      const char *skip, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(s, &st, sql, "updating pending polls", err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int64(st, 2, first_ms);
    hs_sqlite_bind_text(st, 3, skip);
    return hs_sqlite_run(s, st, NULL, "updating pending polls", err);
}

/* Forgets the polls of jobs without open selections and of skipped connections (a webhook
 * reports their changes; if it fails later, polling starts over from the first interval), and
 * starts polling the jobs with open selections and no work item. */
static int polls_refresh(struct sqlite_store *s, int64_t now_ms, int64_t first_ms, const char *skip,
                         struct hs_error *err)
{
    int rc = polls_exec(s,
                        "DELETE FROM pending_polls WHERE ("
                        "connection_key IN (SELECT value FROM json_each(?3)) OR NOT EXISTS ("
                        "SELECT 1 FROM (" OPEN_JOBS ") o WHERE o.conn = "
                        "pending_polls.connection_key AND o.job_id = pending_polls.job_id))",
                        now_ms, first_ms, skip, err);
    if (!rc)
        rc = polls_exec(
            s,
            "INSERT OR IGNORE INTO pending_polls (connection_key, job_id, interval_ms, "
            "next_poll_ms) SELECT o.conn, o.job_id, ?2, ?1 + ?2 FROM (" OPEN_JOBS
            ") o WHERE o.conn NOT IN (SELECT value FROM json_each(?3)) AND " NO_ITEM("o"),
            now_ms, first_ms, skip, err);
    return rc;
}

/* The polls due now whose job has no work item, their interval doubled (at most cap_ms). */
static int polls_due(struct sqlite_store *s, int64_t now_ms, int64_t cap_ms,
                     struct hs_pending_job **out, size_t *n, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(
        s, &st,
        "UPDATE pending_polls SET interval_ms = MIN(interval_ms * 2, ?2), next_poll_ms = ?1 + "
        "MIN(interval_ms * 2, ?2) WHERE next_poll_ms <= ?1 AND NOT EXISTS (SELECT 1 FROM "
        "work_items w WHERE w.connection_key = pending_polls.connection_key AND w.job_id = "
        "pending_polls.job_id) RETURNING connection_key, job_id, interval_ms",
        "reading due pending polls", err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int64(st, 2, cap_ms);
    size_t cap = 0;
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            *out = hs_realloc(*out, cap * sizeof **out);
        }
        (*out)[(*n)++] = (struct hs_pending_job){.connection_key = hs_sqlite_col_text(st, 0),
                                                 .job_id = sqlite3_column_int64(st, 1),
                                                 .interval_ms = sqlite3_column_int64(st, 2)};
    }
    if (src != SQLITE_DONE)
        rc = hs_sqlite_fail(s, src, err, "reading due pending polls");
    sqlite3_finalize(st);
    return rc;
}

int hs_sqlite_pending_poll(struct hs_store *base, int64_t now_ms, int64_t first_ms, int64_t cap_ms,
                           const char *const *skip, size_t n_skip, struct hs_pending_job **out,
                           size_t *n, struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (cap_ms <= 0 || first_ms <= 0)
        return hs_fail(err, HS_ERR_INVALID, "pending_poll needs a first interval and a cap");
    if (first_ms > cap_ms)
        first_ms = cap_ms;
    json_t *a = json_array();
    for (size_t i = 0; i < n_skip; i++)
        if (skip[i])
            json_array_append_new(a, json_string(skip[i]));
    char *skip_json = hs_json_dump(a);
    json_decref(a);
    struct hs_sqlite_op op;
    struct hs_pending_job *v = NULL;
    size_t nv = 0;
    int rc = hs_sqlite_op_enter(s, &op, true, err);
    if (!rc) {
        rc = polls_refresh(s, now_ms, first_ms, skip_json, err);
        if (!rc)
            rc = polls_due(s, now_ms, cap_ms, &v, &nv, err);
        for (size_t i = 0; !rc && i < nv; i++) {
            struct hs_work_trigger t = {.connection_key = v[i].connection_key,
                                        .job_id = v[i].job_id,
                                        .reason = "pending",
                                        .priority = HS_WORK_PRIO_BACKGROUND,
                                        .now_ms = now_ms,
                                        .due_ms = now_ms};
            rc = hs_sqlite_work_bump(s, &t, err);
        }
        rc = hs_sqlite_op_leave(s, &op, rc, err);
    }
    free(skip_json);
    if (rc) {
        hs_pending_jobs_free(v, nv);
        return rc;
    }
    *out = v;
    *n = nv;
    return HS_OK;
}
