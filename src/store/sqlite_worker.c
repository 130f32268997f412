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
