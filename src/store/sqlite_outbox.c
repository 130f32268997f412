/* sqlite_outbox.c: the CRM outbox and the auto-sync policies in the SQLite back-end
 * (store/outbox.h, store/policies.h; migration 5). */
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "store/outbox.h"
#include "store/policies.h"
#include "store/sqlite_internal.h"

/* ---- outbox ---- */

static int sq_outbox_add(struct hs_store *base, const char *endpoint, int64_t job_id,
                         const char *payload, const char *idempotency_key, struct hs_error *err)
{
    if (!endpoint || !payload || !idempotency_key)
        return hs_fail(err, HS_ERR_INVALID,
                       "outbox message without an endpoint, a payload or an idempotency key");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "outbox_add", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    /* The same idempotency key is the same message: adding it again is a no-op. */
    rc = hs_sqlite_prep(
        &t, &st,
        "INSERT INTO outbox (endpoint, job_id, seq_in_job, idempotency_key, payload, "
        "attempts, next_attempt_ms, created_at) VALUES (?1, ?2, "
        "(SELECT COALESCE(MAX(seq_in_job), 0) + 1 FROM outbox WHERE endpoint = ?1 AND "
        "job_id = ?2), ?3, ?4, 0, 0, " HS_SQL_NOW ") "
        "ON CONFLICT(idempotency_key) DO NOTHING",
        "adding outbox message", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, endpoint);
        sqlite3_bind_int64(st, 2, job_id > 0 ? job_id : 0);
        hs_sqlite_bind_text(st, 3, idempotency_key);
        hs_sqlite_bind_text(st, 4, payload);
        rc = hs_sqlite_run(&t, st, NULL, "adding outbox message", err);
    }
    return hs_sqlite_leave(&t, rc, err);
}

static int outbox_fill(struct sq_txn *t, sqlite3_stmt *st, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    struct hs_outbox_row *o = row;
    o->id = sqlite3_column_int64(st, 0);
    o->endpoint = hs_sqlite_col_text(st, 1);
    o->job_id = sqlite3_column_int64(st, 2);
    o->seq_in_job = sqlite3_column_int64(st, 3);
    o->idempotency_key = hs_sqlite_col_text(st, 4);
    o->payload = hs_sqlite_col_text(st, 5);
    o->attempts = sqlite3_column_int64(st, 6);
    o->next_attempt_ms = sqlite3_column_int64(st, 7);
    o->last_error = hs_sqlite_col_text(st, 8);
    return HS_OK;
}

static int sq_outbox_next(struct hs_store *base, int64_t now_ms, struct hs_outbox_row *out,
                          struct hs_error *err)
{
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "outbox_next", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    struct hs_outbox_row o = {0};
    rc = hs_sqlite_prep(
        &t, &st,
        "SELECT o.id, o.endpoint, o.job_id, o.seq_in_job, o.idempotency_key, o.payload, "
        "o.attempts, o.next_attempt_ms, o.last_error FROM outbox o "
        "WHERE o.delivered_at IS NULL AND o.next_attempt_ms <= ?1 AND NOT EXISTS ("
        "SELECT 1 FROM outbox p WHERE p.endpoint = o.endpoint AND p.job_id = o.job_id "
        "AND p.seq_in_job < o.seq_in_job AND p.delivered_at IS NULL) "
        "ORDER BY o.next_attempt_ms, o.id LIMIT 1",
        "reading outbox", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, now_ms);
        rc = hs_sqlite_one(&t, st, outbox_fill, &o, "reading outbox", err);
        if (rc == HS_ERR_NOT_FOUND)
            hs_fail(err, HS_ERR_NOT_FOUND, "no outbox message is due");
    }
    rc = hs_sqlite_leave(&t, rc, err);
    if (rc) {
        hs_outbox_row_clear(&o);
        return rc;
    }
    *out = o;
    return HS_OK;
}

static int sq_outbox_delivered(struct hs_store *base, int64_t id, struct hs_error *err)
{
    return hs_sqlite_change_by_id(
        base,
        "UPDATE outbox SET delivered_at = COALESCE(delivered_at, " HS_SQL_NOW
        "), last_error = NULL WHERE id = ?1",
        id, 0, NULL, "marking outbox message delivered", "no outbox message %lld", err);
}

static int sq_outbox_retry(struct hs_store *base, int64_t id, int64_t next_attempt_ms,
                           const char *error, struct hs_error *err)
{
    return hs_sqlite_change_by_id(
        base,
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_ms = ?2, "
        "last_error = ?3 WHERE id = ?1 AND delivered_at IS NULL",
        id, next_attempt_ms, error, "retrying outbox message", "no outbox message %lld", err);
}

static int sq_outbox_depth(struct hs_store *base, int64_t *pending, struct hs_error *err)
{
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "outbox_depth", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    int64_t n = 0;
    rc = hs_sqlite_prep(&t, &st, "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL",
                        "counting outbox", err);
    if (!rc)
        rc = hs_sqlite_int(&t, st, &n, "counting outbox", err);
    rc = hs_sqlite_leave(&t, rc, err);
    if (!rc && pending)
        *pending = n;
    return rc;
}

const struct hs_outbox_ops hs_sqlite_outbox_ops = {
    .outbox_add = sq_outbox_add,
    .outbox_next = sq_outbox_next,
    .outbox_delivered = sq_outbox_delivered,
    .outbox_retry = sq_outbox_retry,
    .outbox_depth = sq_outbox_depth,
};

/* ---- policies ---- */

static bool policy_valid(const char *p)
{
    return p && (strcmp(p, "all") == 0 || strcmp(p, "linked") == 0 || strcmp(p, "none") == 0);
}

static int sq_policy_get(struct hs_store *base, const char *connection_key, char **policy,
                         struct hs_error *err)
{
    if (!connection_key)
        return hs_fail(err, HS_ERR_INVALID, "policy without a connection");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "policy_get", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    char *v = NULL;
    rc = hs_sqlite_prep(&t, &st, "SELECT auto_sync FROM policies WHERE connection_key = ?1",
                        "reading policy", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, connection_key);
        rc = hs_sqlite_one(&t, st, hs_sqlite_fill_text, &v, "reading policy", err);
        if (rc == HS_ERR_NOT_FOUND)
            rc = HS_OK; /* no row: the default */
    }
    rc = hs_sqlite_leave(&t, rc, err);
    if (rc) {
        free(v);
        return rc;
    }
    *policy = v ? v : hs_strdup("all");
    return HS_OK;
}

static int sq_policy_put(struct hs_store *base, const char *connection_key, const char *policy,
                         struct hs_error *err)
{
    if (!connection_key || !policy_valid(policy))
        return hs_fail(err, HS_ERR_INVALID, "policy must be all, linked or none");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "policy_put", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(
        &t, &st,
        "INSERT INTO policies (connection_key, auto_sync, updated_at) VALUES (?1, ?2, " HS_SQL_NOW
        ") ON CONFLICT(connection_key) DO UPDATE SET "
        "auto_sync = excluded.auto_sync, updated_at = excluded.updated_at",
        "storing policy", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, connection_key);
        hs_sqlite_bind_text(st, 2, policy);
        rc = hs_sqlite_run(&t, st, NULL, "storing policy", err);
    }
    return hs_sqlite_leave(&t, rc, err);
}

const struct hs_policy_ops hs_sqlite_policy_ops = {
    .policy_get = sq_policy_get,
    .policy_put = sq_policy_put,
};
