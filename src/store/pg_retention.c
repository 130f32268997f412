/* pg_retention.c: pruning in batches, the artifact files' references and the store's sizes on
 * PostgreSQL (store/retention.h). The statements are SQLite's (sqlite_retention.c) with
 * timestamptz dates and ctid where SQLite uses rowid. */
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "store/pg_internal.h"
#include "store/retention.h"

/* $1 unix ms, $2 the batch. */
#define BEFORE "to_timestamp($1::bigint / 1000.0)"

static const char *const prune_sql[HS_PRUNE_KINDS] = {
    [HS_PRUNE_WEBHOOK_EVENTS] =
        "DELETE FROM webhook_events WHERE id IN (SELECT id FROM webhook_events "
        "WHERE received_at < " BEFORE " AND status IN ('processed','ignored','rejected') "
        "ORDER BY received_at LIMIT $2)",
    [HS_PRUNE_SYNC_RESULTS] =
        "DELETE FROM sync_results WHERE ctid = ANY (ARRAY(SELECT r.ctid FROM sync_results r "
        "WHERE r.at < " BEFORE " AND EXISTS (SELECT 1 FROM sync_results n "
        "WHERE n.model_id = r.model_id AND (n.at > r.at OR (n.at = r.at AND n.run_id > r.run_id))) "
        "ORDER BY r.at LIMIT $2))",
    [HS_PRUNE_SYNC_RUNS] = "DELETE FROM sync_runs WHERE id IN (SELECT r.id FROM sync_runs r "
                           "WHERE r.started_at < " BEFORE " AND r.status <> 'running' "
                           "AND NOT EXISTS (SELECT 1 FROM sync_results x WHERE x.run_id = r.id) "
                           "ORDER BY r.started_at LIMIT $2)",
    [HS_PRUNE_OUTBOX] = "DELETE FROM outbox WHERE id IN (SELECT o.id FROM outbox o "
                        "WHERE o.delivered_at IS NOT NULL AND o.delivered_at < " BEFORE
                        " AND EXISTS (SELECT 1 FROM outbox n WHERE n.endpoint = o.endpoint "
                        "AND n.job_id = o.job_id AND n.seq_in_job > o.seq_in_job) "
                        "ORDER BY o.delivered_at LIMIT $2)",
    [HS_PRUNE_REPLAYS] = "DELETE FROM webhook_replays WHERE signature IN (SELECT signature FROM "
                         "webhook_replays WHERE expires_ms < $1 ORDER BY expires_ms LIMIT $2)",
    [HS_PRUNE_CONNECT_FLOWS] = "DELETE FROM connect_flows WHERE id_sha256 IN (SELECT id_sha256 "
                               "FROM connect_flows WHERE expires_ms < $1 "
                               "ORDER BY expires_ms LIMIT $2)",
};

static int pg_prune(struct hs_store *base, enum hs_prune_kind kind, int64_t before_ms,
                    int64_t limit, int64_t *removed, struct hs_error *err)
{
    if (kind < 0 || kind >= HS_PRUNE_KINDS || limit <= 0 || before_ms < 0)
        return hs_fail(err, HS_ERR_INVALID, "prune of an unknown kind or without a limit");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE_ALONE, "prune", err);
    if (rc)
        return rc;
    struct pg_args a = {0};
    hs_pg_int(&a, before_ms);
    hs_pg_int(&a, limit);
    int64_t changes = 0;
    rc = hs_pg_run(&t, prune_sql[kind], &a, &changes, "pruning old rows", err);
    rc = hs_pg_leave(&t, rc, err);
    if (!rc && removed)
        *removed = changes;
    return rc;
}

static int pg_blob_referenced(struct hs_store *base, const char *sha256, bool *referenced,
                              struct hs_error *err)
{
    if (!sha256 || !*sha256)
        return hs_fail(err, HS_ERR_INVALID, "blob_referenced without a sha256");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "blob_referenced", err);
    if (rc)
        return rc;
    struct pg_args a = {0};
    hs_pg_text(&a, sha256);
    int64_t n = 0;
    rc = hs_pg_int1(&t, "SELECT EXISTS (SELECT 1 FROM artifacts WHERE sha256 = $1)::int", &a, &n,
                    "looking up an artifact file", err);
    rc = hs_pg_leave(&t, rc, err);
    if (!rc)
        *referenced = n != 0;
    return rc;
}

static int size_fill(struct pg_txn *t, const PGresult *r, int row, void *out, struct hs_error *err)
{
    (void)t;
    (void)err;
    struct hs_table_size *ts = out;
    ts->name = hs_pg_col_text(r, row, 0);
    ts->bytes = hs_pg_col_int(r, row, 1);
    return HS_OK;
}

/* The tables of the store's schema by their total size (indexes and TOAST included), each with
 * its row count. */
static int top_tables(struct pg_txn *t, struct hs_store_size *out, struct hs_error *err)
{
    struct hs_table_size *v = NULL;
    size_t n = 0;
    int rc = hs_pg_rows(t,
                        "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                        "JOIN pg_namespace ns ON ns.oid = c.relnamespace "
                        "WHERE c.relkind = 'r' AND ns.nspname = current_schema() "
                        "ORDER BY 2 DESC, 1 LIMIT 5",
                        NULL, sizeof *v, size_fill, hs_table_size_clear, (void **)&v, &n,
                        "measuring the tables", err);
    for (size_t i = 0; !rc && i < n && i < HS_STORE_TOP_TABLES; i++) {
        /* A name of the catalog, quoted as an identifier. */
        char *quoted = PQescapeIdentifier(t->c, v[i].name, strlen(v[i].name));
        if (!quoted) {
            rc = hs_pg_fail(t->c, NULL, err, "quoting a table's name");
            break;
        }
        char *sql = hs_aprintf("SELECT COUNT(*) FROM %s", quoted);
        PQfreemem(quoted);
        rc = hs_pg_int1(t, sql, NULL, &v[i].rows, "counting rows", err);
        free(sql);
    }
    hs_store_size_take(out, v, n, rc == HS_OK);
    return rc;
}

static int pg_size(struct hs_store *base, struct hs_store_size *out, struct hs_error *err)
{
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "size", err);
    if (rc)
        return rc;
    struct hs_store_size s = {0};
    rc = hs_pg_int1(&t, "SELECT pg_database_size(current_database())", NULL, &s.bytes,
                    "measuring the store", err);
    if (!rc)
        rc = top_tables(&t, &s, err);
    rc = hs_pg_leave(&t, rc, err);
    if (rc) {
        hs_store_size_clear(&s);
        return rc;
    }
    *out = s;
    return HS_OK;
}

const struct hs_retention_ops hs_pg_retention_ops = {
    .prune = pg_prune,
    .blob_referenced = pg_blob_referenced,
    .size = pg_size,
};
