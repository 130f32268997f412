/* sqlite_retention.c: pruning in batches, the artifact files' references and the store's sizes
 * on SQLite (store/retention.h). */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/str.h"
#include "store/retention.h"
#include "store/sqlite_internal.h"

/* Each statement deletes the oldest `?2` rows dated before `?1` (an ISO-8601 text for our own
 * timestamps, unix ms for the *_ms columns), keeping what retention.h promises to keep. */
static const struct {
    const char *sql;
    bool iso; /* ?1 as ISO-8601 text, else unix ms */
} prune_sql[HS_PRUNE_KINDS] = {
    [HS_PRUNE_WEBHOOK_EVENTS] =
        {"DELETE FROM webhook_events WHERE id IN (SELECT id FROM webhook_events "
         "WHERE received_at < ?1 AND status IN ('processed','ignored','rejected') "
         "ORDER BY received_at LIMIT ?2)",
         true},
    [HS_PRUNE_SYNC_RESULTS] =
        {"DELETE FROM sync_results WHERE rowid IN (SELECT r.rowid FROM sync_results r "
         "WHERE r.at < ?1 AND EXISTS (SELECT 1 FROM sync_results n WHERE n.model_id = r.model_id "
         "AND (n.at > r.at OR (n.at = r.at AND n.run_id > r.run_id))) ORDER BY r.at LIMIT ?2)",
         true},
    [HS_PRUNE_SYNC_RUNS] = {"DELETE FROM sync_runs WHERE id IN (SELECT r.id FROM sync_runs r "
                            "WHERE r.started_at < ?1 AND r.status <> 'running' "
                            "AND NOT EXISTS (SELECT 1 FROM sync_results x WHERE x.run_id = r.id) "
                            "ORDER BY r.started_at LIMIT ?2)",
                            true},
    [HS_PRUNE_OUTBOX] =
        {"DELETE FROM outbox WHERE id IN (SELECT o.id FROM outbox o "
         "WHERE o.delivered_at IS NOT NULL AND o.delivered_at < ?1 AND EXISTS (SELECT 1 FROM "
         "outbox n WHERE n.endpoint = o.endpoint AND n.job_id = o.job_id "
         "AND n.seq_in_job > o.seq_in_job) ORDER BY o.delivered_at LIMIT ?2)",
         true},
    [HS_PRUNE_REPLAYS] = {"DELETE FROM webhook_replays WHERE signature IN (SELECT signature FROM "
                          "webhook_replays WHERE expires_ms < ?1 ORDER BY expires_ms LIMIT ?2)",
                          false},
    [HS_PRUNE_CONNECT_FLOWS] = {"DELETE FROM connect_flows WHERE id_sha256 IN (SELECT id_sha256 "
                                "FROM connect_flows WHERE expires_ms < ?1 "
                                "ORDER BY expires_ms LIMIT ?2)",
                                false},
};

static int sq_prune(struct hs_store *base, enum hs_prune_kind kind, int64_t before_ms,
                    int64_t limit, int64_t *removed, struct hs_error *err)
{
    if (kind < 0 || kind >= HS_PRUNE_KINDS || limit <= 0 || before_ms < 0)
        return hs_fail(err, HS_ERR_INVALID, "prune of an unknown kind or without a limit");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE_ALONE, "prune", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    int changes = 0;
    rc = hs_sqlite_prep(&t, &st, prune_sql[kind].sql, "pruning old rows", err);
    if (!rc) {
        if (prune_sql[kind].iso) {
            char cutoff[40];
            hs_iso8601_format(before_ms / 1000, (int)(before_ms % 1000), cutoff, sizeof cutoff);
            sqlite3_bind_text(st, 1, cutoff, -1, SQLITE_TRANSIENT);
        } else {
            sqlite3_bind_int64(st, 1, before_ms);
        }
        sqlite3_bind_int64(st, 2, limit);
        rc = hs_sqlite_run(&t, st, &changes, "pruning old rows", err);
    }
    rc = hs_sqlite_leave(&t, rc, err);
    if (!rc && removed)
        *removed = changes;
    return rc;
}

static int sq_blob_referenced(struct hs_store *base, const char *sha256, bool *referenced,
                              struct hs_error *err)
{
    if (!sha256 || !*sha256)
        return hs_fail(err, HS_ERR_INVALID, "blob_referenced without a sha256");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "blob_referenced", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    int64_t n = 0;
    rc = hs_sqlite_prep(&t, &st, "SELECT EXISTS (SELECT 1 FROM artifacts WHERE sha256 = ?1)",
                        "looking up an artifact file", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, sha256);
        rc = hs_sqlite_int(&t, st, &n, "looking up an artifact file", err);
    }
    rc = hs_sqlite_leave(&t, rc, err);
    if (!rc)
        *referenced = n != 0;
    return rc;
}

static int size_fill(struct sq_txn *t, sqlite3_stmt *st, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    struct hs_table_size *ts = row;
    ts->name = hs_sqlite_col_text(st, 0);
    ts->bytes = sqlite3_column_int64(st, 1);
    return HS_OK;
}

/* The largest tables by their pages and their indexes' (dbstat, in Debian's SQLite), each with
 * its row count. */
static int top_tables(struct sq_txn *t, struct hs_store_size *out, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    struct hs_table_size *v = NULL;
    size_t n = 0;
    int rc = hs_sqlite_prep(t, &st,
                            "SELECT s.tbl_name, SUM(d.pgsize) FROM dbstat d "
                            "JOIN sqlite_schema s ON s.name = d.name WHERE d.aggregate = 1 "
                            "GROUP BY s.tbl_name ORDER BY 2 DESC, 1 LIMIT 5",
                            "measuring the tables", err);
    if (!rc)
        rc = hs_sqlite_rows(t, st, sizeof *v, size_fill, hs_table_size_clear, (void **)&v, &n,
                            "measuring the tables", err);
    for (size_t i = 0; !rc && i < n && i < HS_STORE_TOP_TABLES; i++) {
        char *sql = sqlite3_mprintf("SELECT COUNT(*) FROM \"%w\"", v[i].name);
        rc = hs_sqlite_prep(t, &st, sql, "counting rows", err);
        sqlite3_free(sql);
        if (!rc)
            rc = hs_sqlite_int(t, st, &v[i].rows, "counting rows", err);
    }
    hs_store_size_take(out, v, n, rc == HS_OK);
    return rc;
}

static int sq_size(struct hs_store *base, struct hs_store_size *out, struct hs_error *err)
{
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "size", err);
    if (rc)
        return rc;
    struct hs_store_size s = {0};
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(&t, &st,
                        "SELECT p.page_count * s.page_size FROM pragma_page_count() p, "
                        "pragma_page_size() s",
                        "measuring the store", err);
    if (!rc)
        rc = hs_sqlite_int(&t, st, &s.bytes, "measuring the store", err);
    if (!rc)
        rc = top_tables(&t, &s, err);
    rc = hs_sqlite_leave(&t, rc, err);
    if (rc) {
        hs_store_size_clear(&s);
        return rc;
    }
    *out = s;
    return HS_OK;
}

const struct hs_retention_ops hs_sqlite_retention_ops = {
    .prune = sq_prune,
    .blob_referenced = sq_blob_referenced,
    .size = sq_size,
};
