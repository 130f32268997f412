/* sqlite_worker.c: the event worker's reads of the SQLite back-end (store.h, "the event worker's
 * reads"): the last accepted event of a job, and the highest change sequence of a job's synced
 * data (artifacts, measurements).
 * Each is one SELECT: run under the store lock, in the caller's transaction when this thread has
 * one open (the notification step reads the sequence inside its own transaction). */
#include <stdlib.h>

#include "store/sqlite_internal.h"

static int select_i64(struct sqlite_store *s, const char *sql, const char *text, int64_t id,
                      int64_t *out, const char *what, struct hs_error *err)
{
    bool mine = hs_sqlite_held_by_me(s);
    if (!mine)
        hs_sqlite_lock(s);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    int ret = HS_OK;
    if (rc != SQLITE_OK) {
        ret = hs_sqlite_fail(s, rc, err, what);
    } else {
        int i = 1;
        if (text)
            sqlite3_bind_text(st, i++, text, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, i, id);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            *out = sqlite3_column_int64(st, 0); /* NULL (no row matched) reads as 0 */
        else if (rc == SQLITE_DONE)
            *out = 0;
        else
            ret = hs_sqlite_fail(s, rc, err, what);
    }
    sqlite3_finalize(st);
    if (!mine)
        hs_sqlite_unlock(s);
    return ret;
}

int hs_sqlite_events_last_accepted(struct hs_store *base, const char *connection_key,
                                   int64_t job_id, int64_t *event_id, struct hs_error *err)
{
    if (!connection_key || job_id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "events_last_accepted needs a connection and a job");
    return select_i64((struct sqlite_store *)base,
                      "SELECT MAX(id) FROM webhook_events WHERE connection_key = ?1 AND "
                      "job_id = ?2 AND status = 'accepted'",
                      connection_key, job_id, event_id, "reading the last accepted event", err);
}

int hs_sqlite_job_synced_seq(struct hs_store *base, int64_t job_id, int64_t *seq,
                             struct hs_error *err)
{
    if (job_id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "job_synced_seq needs a job id");
    return select_i64((struct sqlite_store *)base,
                      "SELECT MAX(s) FROM ("
                      "SELECT a.change_seq AS s FROM artifacts a JOIN models m "
                      "ON m.id = a.model_id WHERE m.job_id = ?1 "
                      "UNION ALL SELECT x.change_seq FROM measurements x JOIN models m "
                      "ON m.id = x.model_id WHERE m.job_id = ?1)",
                      NULL, job_id, seq, "reading the job's change sequence", err);
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
