/* pg_outbox.c: the CRM outbox and the auto-sync policies in the PostgreSQL back-end
 * (store/outbox.h, store/policies.h). */
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "store/outbox.h"
#include "store/pg_internal.h"
#include "store/policies.h"

#define NOW "clock_timestamp()"

/* ---- outbox ---- */

static int pg_outbox_add(struct hs_store *base, const char *endpoint, int64_t job_id,
                         const char *payload, const char *idempotency_key, struct hs_error *err)
{
    if (!endpoint || !payload || !idempotency_key)
        return hs_fail(err, HS_ERR_INVALID,
                       "outbox message without an endpoint, a payload or an idempotency key");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "outbox_add", err);
    if (rc)
        return rc;
    struct pg_args a = {0};
    hs_pg_text(&a, endpoint);
    hs_pg_int(&a, job_id);
    hs_pg_text(&a, idempotency_key);
    hs_pg_text(&a, payload);
    /* The same idempotency key is the same message: adding it again is a no-op. */
    rc = hs_pg_run(&t,
                   "INSERT INTO outbox (endpoint, job_id, seq_in_job, idempotency_key, payload, "
                   "attempts, next_attempt_ms, created_at) VALUES ($1, $2, "
                   "(SELECT COALESCE(MAX(seq_in_job), 0) + 1 FROM outbox WHERE endpoint = $1 "
                   "AND job_id = $2), $3, $4, 0, 0, " NOW ") "
                   "ON CONFLICT (idempotency_key) DO NOTHING",
                   &a, NULL, "adding outbox message", err);
    return hs_pg_leave(&t, rc, err);
}

static int outbox_fill(struct pg_txn *t, const PGresult *r, int i, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    struct hs_outbox_row *o = row;
    o->id = hs_pg_col_int(r, i, 0);
    o->endpoint = hs_pg_col_text(r, i, 1);
    o->job_id = hs_pg_col_int(r, i, 2);
    o->seq_in_job = hs_pg_col_int(r, i, 3);
    o->idempotency_key = hs_pg_col_text(r, i, 4);
    o->payload = hs_pg_col_text(r, i, 5);
    o->attempts = hs_pg_col_int(r, i, 6);
    o->next_attempt_ms = hs_pg_col_int(r, i, 7);
    o->last_error = hs_pg_col_text(r, i, 8);
    return HS_OK;
}

static int pg_outbox_next(struct hs_store *base, int64_t now_ms, struct hs_outbox_row *out,
                          struct hs_error *err)
{
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "outbox_next", err);
    if (rc)
        return rc;
    struct hs_outbox_row o = {0};
    struct pg_args a = {0};
    hs_pg_int(&a, now_ms);
    rc = hs_pg_one(&t,
                   "SELECT o.id, o.endpoint, o.job_id, o.seq_in_job, o.idempotency_key, "
                   "o.payload, o.attempts, o.next_attempt_ms, o.last_error FROM outbox o "
                   "WHERE o.delivered_at IS NULL AND o.next_attempt_ms <= $1 AND NOT EXISTS ("
                   "SELECT 1 FROM outbox p WHERE p.endpoint = o.endpoint AND p.job_id = o.job_id "
                   "AND p.seq_in_job < o.seq_in_job AND p.delivered_at IS NULL) "
                   "ORDER BY o.next_attempt_ms, o.id LIMIT 1",
                   &a, outbox_fill, &o, "reading outbox", err);
    if (rc == HS_ERR_NOT_FOUND)
        hs_fail(err, HS_ERR_NOT_FOUND, "no outbox message is due");
    rc = hs_pg_leave(&t, rc, err);
    if (rc) {
        hs_outbox_row_clear(&o);
        return rc;
    }
    *out = o;
    return HS_OK;
}

static int pg_outbox_delivered(struct hs_store *base, int64_t id, struct hs_error *err)
{
    return hs_pg_change_by_id(base,
                              "UPDATE outbox SET delivered_at = COALESCE(delivered_at, " NOW
                              "), last_error = NULL WHERE id = $1",
                              id, 0, NULL, "marking outbox message delivered",
                              "no outbox message %lld", err);
}

static int pg_outbox_retry(struct hs_store *base, int64_t id, int64_t next_attempt_ms,
                           const char *error, struct hs_error *err)
{
    return hs_pg_change_by_id(base,
                              "UPDATE outbox SET attempts = attempts + 1, next_attempt_ms = $2, "
                              "last_error = $3 WHERE id = $1 AND delivered_at IS NULL",
                              id, next_attempt_ms, error, "retrying outbox message",
                              "no outbox message %lld", err);
}

static int pg_outbox_depth(struct hs_store *base, int64_t *pending, struct hs_error *err)
{
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "outbox_depth", err);
    if (rc)
        return rc;
    int64_t n = 0;
    rc = hs_pg_int1(&t, "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL", NULL, &n,
                    "counting outbox", err);
    rc = hs_pg_leave(&t, rc, err);
    if (!rc && pending)
        *pending = n;
    return rc;
}

const struct hs_outbox_ops hs_pg_outbox_ops = {
    .outbox_add = pg_outbox_add,
    .outbox_next = pg_outbox_next,
    .outbox_delivered = pg_outbox_delivered,
    .outbox_retry = pg_outbox_retry,
    .outbox_depth = pg_outbox_depth,
};

/* ---- policies ---- */

static bool policy_valid(const char *p)
{
    return p && (strcmp(p, "all") == 0 || strcmp(p, "linked") == 0 || strcmp(p, "none") == 0);
}

static int pg_policy_get(struct hs_store *base, const char *connection_key, char **policy,
                         struct hs_error *err)
{
    if (!connection_key)
        return hs_fail(err, HS_ERR_INVALID, "policy without a connection");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "policy_get", err);
    if (rc)
        return rc;
    char *v = NULL;
    struct pg_args a = {0};
    hs_pg_text(&a, connection_key);
    rc = hs_pg_one(&t, "SELECT auto_sync FROM policies WHERE connection_key = $1", &a,
                   hs_pg_fill_text, &v, "reading policy", err);
    if (rc == HS_ERR_NOT_FOUND)
        rc = HS_OK; /* no row: the default */
    rc = hs_pg_leave(&t, rc, err);
    if (rc) {
        free(v);
        return rc;
    }
    *policy = v ? v : hs_strdup("all");
    return HS_OK;
}

static int pg_policy_put(struct hs_store *base, const char *connection_key, const char *policy,
                         struct hs_error *err)
{
    if (!connection_key || !policy_valid(policy))
        return hs_fail(err, HS_ERR_INVALID, "policy must be all, linked or none");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "policy_put", err);
    if (rc)
        return rc;
    struct pg_args a = {0};
    hs_pg_text(&a, connection_key);
    hs_pg_text(&a, policy);
    rc = hs_pg_run(
        &t,
        "INSERT INTO policies (connection_key, auto_sync, updated_at) VALUES ($1, $2, " NOW
        ") ON CONFLICT (connection_key) DO UPDATE SET "
        "auto_sync = excluded.auto_sync, updated_at = excluded.updated_at",
        &a, NULL, "storing policy", err);
    return hs_pg_leave(&t, rc, err);
}

const struct hs_policy_ops hs_pg_policy_ops = {
    .policy_get = pg_policy_get,
    .policy_put = pg_policy_put,
};
