/* sqlite_records.c: the sync records of the SQLite back-end (jobs, models, artifacts,
 * measurements, selections, runs, checkpoints) and the records feed (docs/RECORDS.md).
 *
 * Transactions. begin() takes the store lock and runs BEGIN IMMEDIATE, so the database's write
 * lock is held from the start (a writer in another process waits for it instead of failing
 * half-way with SQLITE_BUSY); commit() and rollback() end it and release the lock. The lock is
 * held until commit: callers must not do network I/O between begin and commit (the sync engine
 * downloads first and writes afterwards). An op called outside begin/commit runs in its own
 * transaction; an op called inside one runs under a savepoint, so a failed op leaves nothing
 * half-written and the caller decides whether to commit the rest.
 *
 * Change sequence. counters.change_seq is the last sequence given out. A transaction that really
 * changes a row takes the next value once and writes it to every row it changes; the upserts
 * carry a WHERE clause that lets the update happen only when a column differs, so an unchanged
 * row reports sqlite3_changes() == 0 and keeps its sequence. Writers are serialised by the
 * write lock, so sequences become visible in order and a reader's cursor never skips a row. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/mem.h"
#include "store/sqlite_internal.h"

/* ---- transactions ---- */

static struct sqlite_store *sq(struct hs_store *base)
{
    return (struct sqlite_store *)base;
}

int hs_sqlite_begin(struct hs_store *base, struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (hs_sqlite_held_by_me(s))
        return hs_fail(err, HS_ERR_INTERNAL, "begin: this thread already has a transaction open");
    hs_sqlite_lock(s);
    int rc = hs_sqlite_exec(s, "BEGIN IMMEDIATE", err);
    if (rc) {
        hs_sqlite_unlock(s);
        return rc;
    }
    s->txn = SQ_TXN_USER;
    s->txn_seq = 0;
    return HS_OK;
}

static void end_user_txn(struct sqlite_store *s)
{
    s->txn = SQ_TXN_NONE;
    s->txn_seq = 0;
    hs_sqlite_unlock(s);
}

/* A failed COMMIT rolls back: the transaction is over either way. */
int hs_sqlite_commit(struct hs_store *base, struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (!hs_sqlite_held_by_me(s) || s->txn != SQ_TXN_USER)
        return hs_fail(err, HS_ERR_INTERNAL, "commit without begin");
    int rc = hs_sqlite_exec(s, "COMMIT", err);
    if (rc)
        hs_sqlite_exec(s, "ROLLBACK", NULL);
    end_user_txn(s);
    return rc;
}

void hs_sqlite_rollback(struct hs_store *base)
{
    struct sqlite_store *s = sq(base);
    if (!hs_sqlite_held_by_me(s) || s->txn != SQ_TXN_USER)
        return; /* nothing open: callers may roll back on every error path */
    hs_sqlite_exec(s, "ROLLBACK", NULL);
    end_user_txn(s);
}

/* The transaction one op runs in: its own, or a savepoint in the caller's. */
struct op {
    bool own;
    bool write;
    int64_t seq_before;
};

static int op_enter(struct sqlite_store *s, struct op *op, bool write, struct hs_error *err)
{
    op->write = write;
    op->own = false;
    op->seq_before = 0;
    if (hs_sqlite_held_by_me(s)) {
        if (s->txn != SQ_TXN_USER && s->txn != SQ_TXN_OP)
            return hs_fail(err, HS_ERR_INTERNAL, "sync records used inside a token refresh");
        op->seq_before = s->txn_seq;
        return write ? hs_sqlite_exec(s, "SAVEPOINT hs_op", err) : HS_OK;
    }
    hs_sqlite_lock(s);
    /* A read takes a snapshot only, so it does not hold up writers in other processes. */
    int rc = hs_sqlite_exec(s, write ? "BEGIN IMMEDIATE" : "BEGIN", err);
    if (rc) {
        hs_sqlite_unlock(s);
        return rc;
    }
    s->txn = SQ_TXN_OP;
    s->txn_seq = 0;
    op->own = true;
    return HS_OK;
}

static int op_leave(struct sqlite_store *s, struct op *op, int rc, struct hs_error *err)
{
    if (!op->own) {
        if (!op->write)
            return rc;
        if (rc) {
            hs_sqlite_exec(s, "ROLLBACK TO hs_op", NULL);
            /* The counter update, if this op made it, was undone with the rest. */
            s->txn_seq = op->seq_before;
        }
        int r2 = hs_sqlite_exec(s, "RELEASE hs_op", rc ? NULL : err);
        return rc ? rc : r2;
    }
    if (!rc)
        rc = hs_sqlite_exec(s, "COMMIT", err);
    if (rc)
        hs_sqlite_exec(s, "ROLLBACK", NULL);
    s->txn = SQ_TXN_NONE;
    s->txn_seq = 0;
    hs_sqlite_unlock(s);
    return rc;
}

/* ---- statements ---- */

/* Figures: NaN (absent) is NULL. */
static void bind_real(sqlite3_stmt *st, int i, double v)
{
    if (isfinite(v))
        sqlite3_bind_double(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

/* Counts: -1 (absent) is NULL. */
static void bind_count(sqlite3_stmt *st, int i, int64_t v)
{
    if (v >= 0)
        sqlite3_bind_int64(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

/* ---- change sequence ---- */

/* The sequence of the open transaction, or the one it would take: read here and written by
 * seq_take only once a row really changed, so a transaction that changes nothing leaves the
 * counter alone. Safe because the caller holds the write lock between the two. */
static int seq_peek(struct sqlite_store *s, int64_t *out, struct hs_error *err)
{
    if (s->txn_seq) {
        *out = s->txn_seq;
        return HS_OK;
    }
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(s, &st, "SELECT value FROM counters WHERE name = 'change_seq'",
                            "reading change_seq", err);
    if (rc)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0) + 1;
        rc = HS_OK;
    } else {
        rc = rc == SQLITE_DONE ? hs_fail(err, HS_ERR_DB, "counters has no change_seq row")
                               : hs_sqlite_fail(s, rc, err, "reading change_seq");
    }
    sqlite3_finalize(st);
    return rc;
}

static int seq_take(struct sqlite_store *s, int64_t seq, struct hs_error *err)
{
    if (s->txn_seq == seq)
        return HS_OK;
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(s, &st, "UPDATE counters SET value = ?1 WHERE name = 'change_seq'",
                            "advancing change_seq", err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, seq);
    if ((rc = hs_sqlite_run(s, st, NULL, "advancing change_seq", err)))
        return rc;
    s->txn_seq = seq;
    return HS_OK;
}

/* INSERT ... ON CONFLICT(cols[0]) DO UPDATE ... WHERE <some column differs>: the row is written,
 * and sqlite3_changes() is 1, only when it is new or really changes. Values bind to ?1..?n in
 * the order of cols, the change sequence to ?n+1. Caller frees. */
static char *upsert_sql(const char *table, const char *const *cols, size_t n, bool first_seen)
{
    struct hs_buf b;
    hs_buf_init(&b, 16384);
    int rc = hs_buf_appendf(&b, "INSERT INTO %s (", table);
    for (size_t i = 0; i < n; i++)
        rc |= hs_buf_appendf(&b, "%s, ", cols[i]);
    rc |= hs_buf_appends(&b, first_seen ? "first_seen_at, updated_at, change_seq) VALUES ("
                                        : "updated_at, change_seq) VALUES (");
    for (size_t i = 0; i < n; i++)
        rc |= hs_buf_appendf(&b, "?%zu, ", i + 1);
    if (first_seen)
        rc |= hs_buf_appends(&b, HS_SQL_NOW ", ");
    rc |=
        hs_buf_appendf(&b, "%s, ?%zu) ON CONFLICT(%s) DO UPDATE SET ", HS_SQL_NOW, n + 1, cols[0]);
    for (size_t i = 1; i < n; i++)
        rc |= hs_buf_appendf(&b, "%s = excluded.%s, ", cols[i], cols[i]);
    rc |= hs_buf_appends(
        &b, "updated_at = excluded.updated_at, change_seq = excluded.change_seq WHERE ");
    for (size_t i = 1; i < n; i++)
        rc |= hs_buf_appendf(&b, "%s%s.%s IS NOT excluded.%s", i > 1 ? " OR " : "", table, cols[i],
                             cols[i]);
    if (rc)
        abort(); /* the statements are constants far below the cap */
    return hs_buf_take(&b, NULL);
}

/* ---- jobs and models ---- */

static const char *const job_cols[] = {
    "id",
    "connection_key",
    "org_id",
    "name",
    "external_identifier",
    "reconstruction_state",
    "deliverable_id",
    "archived",
    "address_line1",
    "address_line2",
    "city",
    "region",
    "postal_code",
    "country",
    "latitude",
    "longitude",
    "customer_name",
    "customer_first_name",
    "customer_email",
    "customer_phone",
    "hover_created_at",
    "hover_updated_at",
    "hover_completed_at",
    "raw_json",
};
#define N_JOB_COLS (sizeof job_cols / sizeof job_cols[0])

static const char *const model_cols[] = {
    "id",          "job_id",         "name",       "state",
    "deliverable", "deliverable_id", "capture_id", "hover_updated_at",
};
#define N_MODEL_COLS (sizeof model_cols / sizeof model_cols[0])

static int job_row_put(struct sqlite_store *s, const struct hs_job *j, const char *connection_key,
                       int64_t seq, bool *changed, struct hs_error *err)
{
    char *sql = upsert_sql("jobs", job_cols, N_JOB_COLS, true);
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(s, &st, sql, "storing job", err);
    free(sql);
    if (rc)
        return rc;
    const struct hs_address *a = &j->address;
    int i = 1;
    sqlite3_bind_int64(st, i++, j->id);
    hs_sqlite_bind_text(st, i++, connection_key);
    hs_sqlite_bind_id(st, i++, j->org_id);
    hs_sqlite_bind_text(st, i++, j->name);
    hs_sqlite_bind_text(st, i++, j->external_identifier);
    hs_sqlite_bind_text(st, i++, j->reconstruction_state);
    hs_sqlite_bind_id(st, i++, j->deliverable_id);
    sqlite3_bind_int(st, i++, j->archived ? 1 : 0);
    hs_sqlite_bind_text(st, i++, a->line1);
    hs_sqlite_bind_text(st, i++, a->line2);
    hs_sqlite_bind_text(st, i++, a->city);
    hs_sqlite_bind_text(st, i++, a->region);
    hs_sqlite_bind_text(st, i++, a->postal_code);
    hs_sqlite_bind_text(st, i++, a->country);
    bind_real(st, i++, a->has_coords ? a->latitude : NAN);
    bind_real(st, i++, a->has_coords ? a->longitude : NAN);
    hs_sqlite_bind_text(st, i++, j->customer.name);
    hs_sqlite_bind_text(st, i++, j->customer.first_name);
    hs_sqlite_bind_text(st, i++, j->customer.email);
    hs_sqlite_bind_text(st, i++, j->customer.phone);
    hs_sqlite_bind_text(st, i++, j->created_at);
    hs_sqlite_bind_text(st, i++, j->updated_at);
    hs_sqlite_bind_text(st, i++, j->completed_at);
    hs_sqlite_bind_text(st, i++, j->raw_json);
    sqlite3_bind_int64(st, i, seq);
    if ((rc = hs_sqlite_run(s, st, NULL, "storing job", err)))
        return rc;
    *changed = sqlite3_changes(s->db) > 0;
    return HS_OK;
}

/* One model on a statement prepared once per job (reset between models). */
static int model_row_put(struct sqlite_store *s, sqlite3_stmt *st, int64_t job_id,
                         const struct hs_model *m, int64_t seq, bool *changed, struct hs_error *err)
{
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, m->id);
    sqlite3_bind_int64(st, 2, job_id);
    hs_sqlite_bind_text(st, 3, m->name);
    hs_sqlite_bind_text(st, 4, m->state);
    hs_sqlite_bind_text(st, 5, m->deliverable);
    hs_sqlite_bind_id(st, 6, m->deliverable_id);
    hs_sqlite_bind_id(st, 7, m->capture_id);
    hs_sqlite_bind_text(st, 8, m->updated_at);
    sqlite3_bind_int64(st, 9, seq);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return hs_sqlite_fail(s, rc, err, "storing model");
    *changed = sqlite3_changes(s->db) > 0;
    return HS_OK;
}

int hs_sqlite_job_upsert(struct hs_store *base, const struct hs_job *job,
                         const char *connection_key, bool *changed, struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (!job || job->id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "job without an id");
    for (size_t i = 0; i < job->n_models; i++)
        if (job->models[i].id <= 0)
            return hs_fail(err, HS_ERR_INVALID, "job %lld has a model without an id",
                           (long long)job->id);
    struct op op;
    int rc = op_enter(s, &op, true, err);
    if (rc)
        return rc;
    int64_t seq = 0;
    bool any = false, one = false;
    sqlite3_stmt *mst = NULL;
    rc = seq_peek(s, &seq, err);
    if (!rc)
        rc = job_row_put(s, job, connection_key, seq, &any, err);
    if (!rc && job->n_models > 0) {
        char *sql = upsert_sql("models", model_cols, N_MODEL_COLS, false);
        rc = hs_sqlite_prep(s, &mst, sql, "storing model", err);
        free(sql);
    }
    for (size_t i = 0; !rc && i < job->n_models; i++) {
        rc = model_row_put(s, mst, job->id, &job->models[i], seq, &one, err);
        any = any || one;
    }
    sqlite3_finalize(mst);
    if (!rc && any)
        rc = seq_take(s, seq, err);
    rc = op_leave(s, &op, rc, err);
    if (!rc && changed)
        *changed = any;
    return rc;
}

int hs_sqlite_model_get(struct hs_store *base, int64_t model_id, struct hs_model_row *out,
                        struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    struct op op;
    int rc = op_enter(s, &op, false, err);
    if (rc)
        return rc;
    struct hs_model_row m = {0};
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(
        s, &st,
        "SELECT id, job_id, name, state, deliverable, hover_updated_at, synced_updated_at, "
        "change_seq FROM models WHERE id = ?1",
        "reading model", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, model_id);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            m.id = sqlite3_column_int64(st, 0);
            m.job_id = sqlite3_column_int64(st, 1);
            m.name = hs_sqlite_col_text(st, 2);
            m.state = hs_sqlite_col_text(st, 3);
            m.deliverable = hs_sqlite_col_text(st, 4);
            m.updated_at = hs_sqlite_col_text(st, 5);
            m.synced_updated_at = hs_sqlite_col_text(st, 6);
            m.change_seq = sqlite3_column_int64(st, 7);
        } else if (src == SQLITE_DONE) {
            rc = hs_fail(err, HS_ERR_NOT_FOUND, "model %lld is not stored", (long long)model_id);
        } else {
            rc = hs_sqlite_fail(s, src, err, "reading model");
        }
        sqlite3_finalize(st);
    }
    rc = op_leave(s, &op, rc, err);
    if (rc)
        hs_model_row_clear(&m);
    else
        *out = m;
    return rc;
}

static int model_exists(struct sqlite_store *s, int64_t model_id, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(s, &st, "SELECT 1 FROM models WHERE id = ?1", "reading model", err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, model_id);
    int src = sqlite3_step(st);
    if (src == SQLITE_DONE)
        rc = hs_fail(err, HS_ERR_NOT_FOUND, "model %lld is not stored", (long long)model_id);
    else if (src != SQLITE_ROW)
        rc = hs_sqlite_fail(s, src, err, "reading model");
    sqlite3_finalize(st);
    return rc;
}

/* A new synced_updated_at is a change the CRM sees (the model's files are now all there). */
int hs_sqlite_model_mark_synced(struct hs_store *base, int64_t model_id, const char *updated_at,
                                struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    struct op op;
    int rc = op_enter(s, &op, true, err);
    if (rc)
        return rc;
    int64_t seq = 0;
    sqlite3_stmt *st = NULL;
    rc = seq_peek(s, &seq, err);
    if (!rc)
        rc = hs_sqlite_prep(s, &st,
                            "UPDATE models SET synced_updated_at = ?2, updated_at = " HS_SQL_NOW
                            ", change_seq = ?3 WHERE id = ?1 AND synced_updated_at IS NOT ?2",
                            "marking model synced", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, model_id);
        hs_sqlite_bind_text(st, 2, updated_at);
        sqlite3_bind_int64(st, 3, seq);
        rc = hs_sqlite_run(s, st, NULL, "marking model synced", err);
    }
    if (!rc)
        rc = sqlite3_changes(s->db) > 0 ? seq_take(s, seq, err) : model_exists(s, model_id, err);
    return op_leave(s, &op, rc, err);
}

/* ---- artifacts ---- */

#define ARTIFACT_COLS                                                                              \
    "model_id, kind, source_url, sha256, bytes, content_type, path, etag, fetched_at, image_id, "  \
    "change_seq"

static void artifact_read(sqlite3_stmt *st, struct hs_artifact_row *a)
{
    a->model_id = sqlite3_column_int64(st, 0);
    a->kind = hs_sqlite_col_text(st, 1);
    a->source_url = hs_sqlite_col_text(st, 2);
    a->sha256 = hs_sqlite_col_text(st, 3);
    a->bytes = sqlite3_column_int64(st, 4);
    a->content_type = hs_sqlite_col_text(st, 5);
    a->path = hs_sqlite_col_text(st, 6);
    a->etag = hs_sqlite_col_text(st, 7);
    a->fetched_at = hs_sqlite_col_text(st, 8);
    a->image_id = sqlite3_column_int64(st, 9); /* NULL reads as 0 */
    a->change_seq = sqlite3_column_int64(st, 10);
}

int hs_sqlite_artifact_get(struct hs_store *base, int64_t model_id, const char *kind,
                           struct hs_artifact_row *out, struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (!kind)
        return hs_fail(err, HS_ERR_INVALID, "artifact_get without a kind");
    struct op op;
    int rc = op_enter(s, &op, false, err);
    if (rc)
        return rc;
    struct hs_artifact_row a = {0};
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(s, &st,
                        "SELECT " ARTIFACT_COLS " FROM artifacts WHERE model_id = ?1 AND kind = ?2",
                        "reading artifact", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, model_id);
        hs_sqlite_bind_text(st, 2, kind);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            artifact_read(st, &a);
        } else if (src == SQLITE_DONE) {
            rc = hs_fail(err, HS_ERR_NOT_FOUND, "no artifact '%s' stored for model %lld", kind,
                         (long long)model_id);
        } else {
            rc = hs_sqlite_fail(s, src, err, "reading artifact");
        }
        sqlite3_finalize(st);
    }
    rc = op_leave(s, &op, rc, err);
    if (rc)
        hs_artifact_row_clear(&a);
    else
        *out = a;
    return rc;
}

/* New bytes are a change. The same bytes fetched again (a new etag, a later fetched_at, a new
 * URL: presigned or host-dependent links change without the content changing) are bookkeeping:
 * stored, but the row keeps its sequence, so the records feed does not report churn. */
static int artifact_write(struct sqlite_store *s, const struct hs_artifact_row *a, bool *changed,
                          struct hs_error *err)
{
    int64_t seq = 0;
    sqlite3_stmt *st = NULL;
    int rc = seq_peek(s, &seq, err);
    if (!rc)
        rc = hs_sqlite_prep(
            s, &st,
            "INSERT INTO artifacts (" ARTIFACT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
            "?8, COALESCE(?9, " HS_SQL_NOW "), ?10, ?11) "
            "ON CONFLICT(model_id, kind) DO UPDATE SET source_url = excluded.source_url, "
            "sha256 = excluded.sha256, bytes = excluded.bytes, "
            "content_type = excluded.content_type, path = excluded.path, "
            "etag = excluded.etag, fetched_at = excluded.fetched_at, "
            "image_id = excluded.image_id, change_seq = excluded.change_seq "
            "WHERE artifacts.sha256 IS NOT excluded.sha256",
            "storing artifact", err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, a->model_id);
    hs_sqlite_bind_text(st, 2, a->kind);
    hs_sqlite_bind_text(st, 3, a->source_url);
    hs_sqlite_bind_text(st, 4, a->sha256);
    sqlite3_bind_int64(st, 5, a->bytes);
    hs_sqlite_bind_text(st, 6, a->content_type);
    hs_sqlite_bind_text(st, 7, a->path);
    hs_sqlite_bind_text(st, 8, a->etag);
    hs_sqlite_bind_text(st, 9, a->fetched_at);
    hs_sqlite_bind_id(st, 10, a->image_id);
    sqlite3_bind_int64(st, 11, seq);
    if ((rc = hs_sqlite_run(s, st, NULL, "storing artifact", err)))
        return rc;
    if (sqlite3_changes(s->db) > 0) {
        *changed = true;
        return seq_take(s, seq, err);
    }
    *changed = false;
    rc =
        hs_sqlite_prep(s, &st,
                       "UPDATE artifacts SET etag = ?3, fetched_at = COALESCE(?4, " HS_SQL_NOW "), "
                       "source_url = ?5 WHERE model_id = ?1 AND kind = ?2",
                       "storing artifact", err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, a->model_id);
    hs_sqlite_bind_text(st, 2, a->kind);
    hs_sqlite_bind_text(st, 3, a->etag);
    hs_sqlite_bind_text(st, 4, a->fetched_at);
    hs_sqlite_bind_text(st, 5, a->source_url);
    return hs_sqlite_run(s, st, NULL, "storing artifact", err);
}

int hs_sqlite_artifact_put(struct hs_store *base, const struct hs_artifact_row *a, bool *changed,
                           struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (!a || !a->kind || !a->sha256 || !a->path || a->bytes < 0)
        return hs_fail(err, HS_ERR_INVALID, "artifact without kind, sha256, path or size");
    struct op op;
    bool ch = false;
    int rc = op_enter(s, &op, true, err);
    if (rc)
        return rc;
    rc = op_leave(s, &op, artifact_write(s, a, &ch, err), err);
    if (!rc && changed)
        *changed = ch;
    return rc;
}

int hs_sqlite_artifact_each(struct hs_store *base,
                            int (*fn)(void *ctx, const struct hs_artifact_row *a), void *ctx,
                            struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    struct op op;
    int rc = op_enter(s, &op, false, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(s, &st, "SELECT " ARTIFACT_COLS " FROM artifacts ORDER BY model_id, kind",
                        "listing artifacts", err);
    while (!rc) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = hs_sqlite_fail(s, src, err, "listing artifacts");
            break;
        }
        struct hs_artifact_row a = {0};
        artifact_read(st, &a);
        int stop = fn(ctx, &a);
        hs_artifact_row_clear(&a);
        if (stop) {
            /* A negative answer is an error to pass on; a positive one just stops. */
            if (stop < 0)
                rc = stop;
            break;
        }
    }
    sqlite3_finalize(st);
    return op_leave(s, &op, rc, err);
}

/* Artifacts of models of jobs in the scope bound to ?2. */
#define ARTIFACT_IN_SCOPE                                                                          \
    "(?2 IS NULL OR model_id IN (SELECT m.id FROM models m JOIN jobs j ON j.id = m.job_id "        \
    "WHERE " HS_SQL_IN_SCOPE("j.connection_key", "2") "))"

/* One artifact row by a column that is not its key (the service's file and image routes), in a
 * scope (?2). */
static int artifact_find(struct sqlite_store *s, const char *sql, const char *text, int64_t num,
                         const struct hs_scope *scope, struct hs_artifact_row *out,
                         const char *what, struct hs_error *err)
{
    struct op op;
    int rc = op_enter(s, &op, false, err);
    if (rc)
        return rc;
    struct hs_artifact_row a = {0};
    sqlite3_stmt *st = NULL;
    char *in = hs_sqlite_scope_json(scope);
    rc = hs_sqlite_prep(s, &st, sql, what, err);
    if (!rc) {
        if (text)
            hs_sqlite_bind_text(st, 1, text);
        else
            sqlite3_bind_int64(st, 1, num);
        hs_sqlite_bind_text(st, 2, in);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW)
            artifact_read(st, &a);
        else if (src == SQLITE_DONE)
            rc = hs_fail(err, HS_ERR_NOT_FOUND, "no stored artifact with that %s",
                         text ? "sha256" : "image id");
        else
            rc = hs_sqlite_fail(s, src, err, what);
        sqlite3_finalize(st);
    }
    free(in);
    rc = op_leave(s, &op, rc, err);
    if (rc)
        hs_artifact_row_clear(&a);
    else
        *out = a;
    return rc;
}

int hs_sqlite_artifact_by_sha_scoped(struct hs_store *base, const char *sha256,
                                     const struct hs_scope *scope, struct hs_artifact_row *out,
                                     struct hs_error *err)
{
    if (!sha256)
        return hs_fail(err, HS_ERR_INVALID, "artifact_by_sha without a sha256");
    return artifact_find(sq(base),
                         "SELECT " ARTIFACT_COLS " FROM artifacts WHERE sha256 = ?1 "
                         "AND " ARTIFACT_IN_SCOPE " LIMIT 1",
                         sha256, 0, scope, out, "finding artifact by sha256", err);
}

int hs_sqlite_artifact_by_sha(struct hs_store *base, const char *sha256,
                              struct hs_artifact_row *out, struct hs_error *err)
{
    return hs_sqlite_artifact_by_sha_scoped(base, sha256, NULL, out, err);
}

int hs_sqlite_artifact_by_image_scoped(struct hs_store *base, int64_t image_id,
                                       const struct hs_scope *scope, struct hs_artifact_row *out,
                                       struct hs_error *err)
{
    if (image_id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "artifact_by_image without an image id");
    return artifact_find(sq(base),
                         "SELECT " ARTIFACT_COLS " FROM artifacts WHERE image_id = ?1 "
                         "AND " ARTIFACT_IN_SCOPE " ORDER BY fetched_at DESC LIMIT 1",
                         NULL, image_id, scope, out, "finding image", err);
}

int hs_sqlite_artifact_by_image(struct hs_store *base, int64_t image_id,
                                struct hs_artifact_row *out, struct hs_error *err)
{
    return hs_sqlite_artifact_by_image_scoped(base, image_id, NULL, out, err);
}

int hs_sqlite_job_models_status(struct hs_store *base, int64_t job_id, struct hs_model_status **out,
                                size_t *n, struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    struct op op;
    int rc = op_enter(s, &op, false, err);
    if (rc)
        return rc;
    struct hs_model_status *v = NULL;
    size_t len = 0, cap = 0;
    sqlite3_stmt *st = NULL;
    /* Stored models with their selection, then selections of models not stored yet. */
    rc = hs_sqlite_prep(
        s, &st,
        "SELECT m.id, m.synced_updated_at, sel.status, sel.reason FROM models m "
        "LEFT JOIN selections sel ON sel.job_id = m.job_id AND sel.model_id = m.id "
        "WHERE m.job_id = ?1 "
        "UNION ALL "
        "SELECT sel.model_id, NULL, sel.status, sel.reason FROM selections sel "
        "WHERE sel.job_id = ?1 AND NOT EXISTS "
        "(SELECT 1 FROM models m WHERE m.id = sel.model_id AND m.job_id = sel.job_id) "
        "ORDER BY 1",
        "reading model status", err);
    if (!rc)
        sqlite3_bind_int64(st, 1, job_id);
    while (!rc) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = hs_sqlite_fail(s, src, err, "reading model status");
            break;
        }
        if (len == cap) {
            cap = cap ? cap * 2 : 8;
            v = hs_realloc(v, cap * sizeof *v);
        }
        struct hs_model_status *m = &v[len++];
        memset(m, 0, sizeof *m);
        m->model_id = sqlite3_column_int64(st, 0);
        m->synced_updated_at = hs_sqlite_col_text(st, 1);
        const char *status = (const char *)sqlite3_column_text(st, 2);
        m->has_selection = status && hs_selection_status_parse(status, &m->selection) == HS_OK;
        m->reason = hs_sqlite_col_text(st, 3);
    }
    sqlite3_finalize(st);
    rc = op_leave(s, &op, rc, err);
    if (rc) {
        hs_model_statuses_free(v, len);
        return rc;
    }
    *out = v;
    *n = len;
    return HS_OK;
}

/* ---- measurements ---- */

static const char *const meas_cols[] = {
    "model_id",           "roof_area_sqft",   "roof_facets",      "predominant_pitch",
    "ridges_ft",          "hips_ft",          "valleys_ft",       "rakes_ft",
    "eaves_ft",           "siding_area_sqft", "facade_area_sqft", "openings_count",
    "openings_area_sqft", "living_area_sqft", "raw_json",
};
#define N_MEAS_COLS (sizeof meas_cols / sizeof meas_cols[0])

int hs_sqlite_measurements_put(struct hs_store *base, const struct hs_measurements *m,
                               bool *changed, struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (!m || m->model_id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "measurements without a model id");
    struct op op;
    int rc = op_enter(s, &op, true, err);
    if (rc)
        return rc;
    int64_t seq = 0;
    bool ch = false;
    sqlite3_stmt *st = NULL;
    rc = seq_peek(s, &seq, err);
    if (!rc) {
        char *sql = upsert_sql("measurements", meas_cols, N_MEAS_COLS, false);
        rc = hs_sqlite_prep(s, &st, sql, "storing measurements", err);
        free(sql);
    }
    if (!rc) {
        int i = 1;
        sqlite3_bind_int64(st, i++, m->model_id);
        bind_real(st, i++, m->roof_area_sqft);
        bind_count(st, i++, m->roof_facets);
        hs_sqlite_bind_text(st, i++, m->predominant_pitch);
        bind_real(st, i++, m->ridges_ft);
        bind_real(st, i++, m->hips_ft);
        bind_real(st, i++, m->valleys_ft);
        bind_real(st, i++, m->rakes_ft);
        bind_real(st, i++, m->eaves_ft);
        bind_real(st, i++, m->siding_area_sqft);
        bind_real(st, i++, m->facade_area_sqft);
        bind_count(st, i++, m->openings_count);
        bind_real(st, i++, m->openings_area_sqft);
        bind_real(st, i++, m->living_area_sqft);
        hs_sqlite_bind_text(st, i++, m->raw_json);
        sqlite3_bind_int64(st, i, seq);
        rc = hs_sqlite_run(s, st, NULL, "storing measurements", err);
    }
    if (!rc && sqlite3_changes(s->db) > 0) {
        ch = true;
        rc = seq_take(s, seq, err);
    }
    rc = op_leave(s, &op, rc, err);
    if (!rc && changed)
        *changed = ch;
    return rc;
}

/* ---- selections ---- */

int hs_sqlite_selection_put(struct hs_store *base, const struct hs_selection *sel,
                            struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (!sel || sel->job_id <= 0 || (unsigned)sel->status > HS_SEL_ERROR)
        return hs_fail(err, HS_ERR_INVALID, "selection without a job id or with a bad status");
    struct op op;
    int rc = op_enter(s, &op, true, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    /* created_at stays the first selection's: it orders the work queue. A NULL connection_key
     * keeps the one already recorded. */
    rc = hs_sqlite_prep(
        s, &st,
        "INSERT INTO selections (job_id, model_id, connection_key, status, reason, "
        "created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, " HS_SQL_NOW ", " HS_SQL_NOW
        ") ON CONFLICT(job_id, model_id) DO UPDATE SET "
        "connection_key = COALESCE(excluded.connection_key, selections.connection_key), "
        "status = excluded.status, reason = excluded.reason, "
        "updated_at = excluded.updated_at",
        "storing selection", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, sel->job_id);
        sqlite3_bind_int64(st, 2, sel->model_id);
        hs_sqlite_bind_text(st, 3, sel->connection_key);
        hs_sqlite_bind_text(st, 4, hs_selection_status_name(sel->status));
        hs_sqlite_bind_text(st, 5, sel->reason);
        rc = hs_sqlite_run(s, st, NULL, "storing selection", err);
    }
    return op_leave(s, &op, rc, err);
}

int hs_sqlite_selections_open(struct hs_store *base, struct hs_selection **out, size_t *n,
                              struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    struct op op;
    int rc = op_enter(s, &op, false, err);
    if (rc)
        return rc;
    struct hs_selection *v = NULL;
    size_t len = 0, cap = 0;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(s, &st,
                        "SELECT job_id, model_id, status, reason, connection_key FROM selections "
                        "WHERE status IN ('selected', 'pending', 'error') "
                        "ORDER BY created_at, job_id, model_id",
                        "listing selections", err);
    while (!rc) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = hs_sqlite_fail(s, src, err, "listing selections");
            break;
        }
        if (len == cap) {
            cap = cap ? cap * 2 : 16;
            v = hs_realloc(v, cap * sizeof *v);
        }
        struct hs_selection *x = &v[len];
        memset(x, 0, sizeof *x);
        x->job_id = sqlite3_column_int64(st, 0);
        x->model_id = sqlite3_column_int64(st, 1);
        if (hs_selection_status_parse((const char *)sqlite3_column_text(st, 2), &x->status)) {
            rc = hs_fail(err, HS_ERR_DB, "selection %lld/%lld has an unknown status",
                         (long long)x->job_id, (long long)x->model_id);
            break;
        }
        x->reason = hs_sqlite_col_text(st, 3);
        x->connection_key = hs_sqlite_col_text(st, 4);
        len++;
    }
    sqlite3_finalize(st);
    rc = op_leave(s, &op, rc, err);
    if (rc) {
        hs_selections_free(v, len);
        return rc;
    }
    *out = v;
    *n = len;
    return HS_OK;
}

/* ---- runs ---- */

int hs_sqlite_run_begin(struct hs_store *base, int64_t job_id, const char *trigger, int64_t *run_id,
                        struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (!trigger)
        return hs_fail(err, HS_ERR_INVALID, "sync run without a trigger");
    struct op op;
    int rc = op_enter(s, &op, true, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    int64_t id = 0;
    rc = hs_sqlite_prep(s, &st,
                        "INSERT INTO sync_runs (job_id, trigger, status, started_at) "
                        "VALUES (?1, ?2, 'running', " HS_SQL_NOW ")",
                        "starting sync run", err);
    if (!rc) {
        hs_sqlite_bind_id(st, 1, job_id);
        hs_sqlite_bind_text(st, 2, trigger);
        rc = hs_sqlite_run(s, st, NULL, "starting sync run", err);
        id = sqlite3_last_insert_rowid(s->db);
    }
    rc = op_leave(s, &op, rc, err);
    if (!rc)
        *run_id = id;
    return rc;
}

int hs_sqlite_run_model_result(struct hs_store *base, int64_t run_id, int64_t model_id,
                               const char *result, const char *message, int64_t artifacts_fetched,
                               int64_t artifacts_unchanged, struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (!result)
        return hs_fail(err, HS_ERR_INVALID, "sync result without a result");
    struct op op;
    int rc = op_enter(s, &op, true, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(
        s, &st,
        "INSERT INTO sync_results (run_id, model_id, result, message, artifacts_fetched, "
        "artifacts_unchanged, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, " HS_SQL_NOW ")",
        "recording sync result", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, run_id);
        sqlite3_bind_int64(st, 2, model_id);
        hs_sqlite_bind_text(st, 3, result);
        hs_sqlite_bind_text(st, 4, message);
        sqlite3_bind_int64(st, 5, artifacts_fetched);
        sqlite3_bind_int64(st, 6, artifacts_unchanged);
        rc = hs_sqlite_run(s, st, NULL, "recording sync result", err);
    }
    return op_leave(s, &op, rc, err);
}

int hs_sqlite_run_end(struct hs_store *base, int64_t run_id, const char *status,
                      int64_t hover_requests, struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (!status)
        return hs_fail(err, HS_ERR_INVALID, "sync run end without a status");
    struct op op;
    int rc = op_enter(s, &op, true, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(
        s, &st,
        "UPDATE sync_runs SET status = ?2, hover_requests = ?3, finished_at = " HS_SQL_NOW
        " WHERE id = ?1",
        "ending sync run", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, run_id);
        hs_sqlite_bind_text(st, 2, status);
        sqlite3_bind_int64(st, 3, hover_requests);
        rc = hs_sqlite_run(s, st, NULL, "ending sync run", err);
    }
    if (!rc && sqlite3_changes(s->db) == 0)
        rc = hs_fail(err, HS_ERR_NOT_FOUND, "no sync run %lld", (long long)run_id);
    return op_leave(s, &op, rc, err);
}

int hs_sqlite_run_renew(struct hs_store *base, int64_t run_id, int64_t lease_until_ms,
                        struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    struct op op;
    int rc = op_enter(s, &op, true, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    /* A run marked interrupted while its process was stalled becomes running again: the
     * process is alive and still working on it. */
    rc = hs_sqlite_prep(
        s, &st,
        "UPDATE sync_runs SET lease_until_ms = ?2, status = 'running', finished_at = NULL "
        "WHERE id = ?1 AND (status = 'running' OR status = 'interrupted')",
        "renewing sync run", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, run_id);
        sqlite3_bind_int64(st, 2, lease_until_ms);
        rc = hs_sqlite_run(s, st, NULL, "renewing sync run", err);
    }
    return op_leave(s, &op, rc, err);
}

/* Counts running (and of those, lapsed) and interrupted runs; the caller holds an op. */
static int count_runs(struct sqlite_store *s, int64_t now_ms, struct hs_run_counts *c,
                      int64_t *lapsed, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(s, &st,
                            "SELECT COALESCE(SUM(status = 'running'), 0), "
                            "COALESCE(SUM(status = 'interrupted'), 0), "
                            "COALESCE(SUM(status = 'running' AND (lease_until_ms IS NULL OR "
                            "lease_until_ms < ?1)), 0) FROM sync_runs "
                            "WHERE status IN ('running', 'interrupted')",
                            "counting sync runs", err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, now_ms);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        c->running = sqlite3_column_int64(st, 0);
        c->interrupted = sqlite3_column_int64(st, 1);
        *lapsed = sqlite3_column_int64(st, 2);
    } else {
        rc = hs_sqlite_fail(s, src, err, "counting sync runs");
    }
    sqlite3_finalize(st);
    return rc;
}

int hs_sqlite_runs_interrupt_lapsed(struct hs_store *base, int64_t now_ms,
                                    struct hs_run_counts *out, struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    struct hs_run_counts c = {0};
    int64_t lapsed = 0;
    /* A read first: status is polled, and a write lock per poll would queue behind syncs. */
    struct op op;
    int rc = op_enter(s, &op, false, err);
    if (rc)
        return rc;
    rc = count_runs(s, now_ms, &c, &lapsed, err);
    rc = op_leave(s, &op, rc, err);
    if (rc == HS_OK && lapsed > 0) {
        if ((rc = op_enter(s, &op, true, err)))
            return rc;
        sqlite3_stmt *st = NULL;
        int changes = 0;
        rc = hs_sqlite_prep(s, &st,
                            "UPDATE sync_runs SET status = 'interrupted', finished_at = " HS_SQL_NOW
                            " WHERE status = 'running' AND (lease_until_ms IS NULL OR "
                            "lease_until_ms < ?1)",
                            "marking lapsed sync runs", err);
        if (!rc) {
            sqlite3_bind_int64(st, 1, now_ms);
            rc = hs_sqlite_run(s, st, &changes, "marking lapsed sync runs", err);
            c.marked = changes;
        }
        if (!rc)
            rc = count_runs(s, now_ms, &c, &lapsed, err);
        rc = op_leave(s, &op, rc, err);
    }
    if (!rc && out)
        *out = c;
    return rc;
}

/* ---- the records feed ---- */

/* A column as JSON, typed as stored; SQL NULL is null. */
static json_t *col_json(sqlite3_stmt *st, int i)
{
    json_t *v = NULL;
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER:
        v = json_integer(sqlite3_column_int64(st, i));
        break;
    case SQLITE_FLOAT:
        v = json_real(sqlite3_column_double(st, i));
        break;
    case SQLITE_TEXT:
        /* Text came in as JSON, so it is UTF-8; jansson refuses anything else (then null). */
        v = json_stringn((const char *)sqlite3_column_text(st, i),
                         (size_t)sqlite3_column_bytes(st, i));
        break;
    default:
        break;
    }
    return v ? v : json_null();
}

/* Sets obj[key] to the columns first.. (one per key) of the current row. */
static void put_cols(json_t *obj, sqlite3_stmt *st, int first, const char *const *keys, size_t n)
{
    for (size_t k = 0; k < n; k++)
        json_object_set_new(obj, keys[k], col_json(st, first + (int)k));
}

/* Runs a feed query (?1 = since, ?2 = the scope's JSON or NULL) and appends one object per row
 * made by `row`. */
static int feed_rows(struct sqlite_store *s, const char *sql, int64_t since, const char *scope,
                     json_t *arr, json_t *(*row)(sqlite3_stmt *st), struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(s, &st, sql, "reading the records feed", err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, since);
    hs_sqlite_bind_text(st, 2, scope);
    for (;;) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = hs_sqlite_fail(s, src, err, "reading the records feed");
            break;
        }
        json_array_append_new(arr, row(st));
    }
    sqlite3_finalize(st);
    return rc;
}

static const char FEED_JOBS_SQL[] =
    "SELECT id, name, external_identifier, reconstruction_state, org_id, "
    "address_line1, address_line2, city, region, postal_code, country, latitude, longitude, "
    "customer_name, customer_email, customer_phone, hover_updated_at, change_seq "
    "FROM jobs WHERE change_seq > ?1 AND " HS_SQL_IN_SCOPE("connection_key",
                                                           "2") " "
                                                                "ORDER BY change_seq, id";

static json_t *feed_job(sqlite3_stmt *st)
{
    static const char *const top[] = {"id", "name", "external_identifier", "reconstruction_state",
                                      "org_id"};
    static const char *const addr[] = {"line1",       "line2",   "city",     "region",
                                       "postal_code", "country", "latitude", "longitude"};
    static const char *const cust[] = {"name", "email", "phone"};
    static const char *const tail[] = {"hover_updated_at", "change_seq"};
    json_t *j = json_object(), *a = json_object(), *c = json_object();
    put_cols(j, st, 0, top, 5);
    put_cols(a, st, 5, addr, 8);
    put_cols(c, st, 13, cust, 3);
    json_object_set_new(j, "address", a);
    json_object_set_new(j, "customer", c);
    put_cols(j, st, 16, tail, 2);
    return j;
}

/* Rows whose model's job (m.job_id) is in the scope bound to ?2. */
#define FEED_JOB_IN_SCOPE                                                                          \
    "(?2 IS NULL OR m.job_id IN (SELECT id FROM jobs WHERE " HS_SQL_IN_SCOPE("connection_key",     \
                                                                             "2") "))"

/* A model counts as changed when its measurements changed: its sequence in the feed is the
 * larger of the two. The IN (... UNION ...) lets both change_seq indexes serve the filter. */
static const char FEED_MODELS_SQL[] =
    "SELECT m.id, m.job_id, m.name, m.state, m.deliverable, m.synced_updated_at, "
    "MAX(m.change_seq, COALESCE(x.change_seq, 0)) AS seq, x.model_id, "
    "x.roof_area_sqft, x.roof_facets, x.predominant_pitch, x.ridges_ft, x.hips_ft, x.valleys_ft, "
    "x.rakes_ft, x.eaves_ft, x.siding_area_sqft, x.facade_area_sqft, x.openings_count, "
    "x.openings_area_sqft, x.living_area_sqft "
    "FROM models m LEFT JOIN measurements x ON x.model_id = m.id "
    "WHERE m.id IN (SELECT id FROM models WHERE change_seq > ?1 "
    "UNION SELECT model_id FROM measurements WHERE change_seq > ?1) "
    "AND " FEED_JOB_IN_SCOPE " ORDER BY seq, m.id";

static json_t *feed_model(sqlite3_stmt *st)
{
    static const char *const top[] = {
        "id", "job_id", "name", "state", "deliverable", "synced_updated_at", "change_seq"};
    static const char *const meas[] = {
        "roof_area_sqft",   "roof_facets",      "predominant_pitch", "ridges_ft",
        "hips_ft",          "valleys_ft",       "rakes_ft",          "eaves_ft",
        "siding_area_sqft", "facade_area_sqft", "openings_count",    "openings_area_sqft",
        "living_area_sqft",
    };
    json_t *j = json_object();
    put_cols(j, st, 0, top, 7);
    if (sqlite3_column_type(st, 7) == SQLITE_NULL) {
        json_object_set_new(j, "measurements", json_null());
    } else {
        json_t *m = json_object();
        put_cols(m, st, 8, meas, sizeof meas / sizeof meas[0]);
        json_object_set_new(j, "measurements", m);
    }
    return j;
}

static const char FEED_ARTIFACTS_SQL[] =
    "SELECT a.model_id, m.job_id, a.kind, a.sha256, a.bytes, a.content_type, a.path, "
    "a.source_url, a.fetched_at, a.image_id, a.change_seq "
    "FROM artifacts a LEFT JOIN models m ON m.id = a.model_id "
    "WHERE a.change_seq > ?1 AND " FEED_JOB_IN_SCOPE " ORDER BY a.change_seq, a.id";

static json_t *feed_artifact(sqlite3_stmt *st)
{
    static const char *const keys[] = {"model_id",   "job_id",       "kind",      "sha256",
                                       "bytes",      "content_type", "path",      "source_url",
                                       "fetched_at", "image_id",     "change_seq"};
    json_t *j = json_object();
    put_cols(j, st, 0, keys, sizeof keys / sizeof keys[0]);
    return j;
}

static int feed_cursor(struct sqlite_store *s, int64_t since, int64_t *out, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(s, &st, "SELECT value FROM counters WHERE name = 'change_seq'",
                            "reading change_seq", err);
    if (rc)
        return rc;
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        /* The counter is only advanced by a transaction that changed a row, so it is the
         * largest change_seq in the store. */
        int64_t max = sqlite3_column_int64(st, 0);
        *out = max > since ? max : since;
    } else {
        rc = hs_sqlite_fail(s, src, err, "reading change_seq");
    }
    sqlite3_finalize(st);
    return rc;
}

int hs_sqlite_export_since_scoped(struct hs_store *base, int64_t since,
                                  const struct hs_scope *scope, char **out, struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    struct op op;
    /* One read transaction: the cursor and the rows come from the same snapshot. */
    int rc = op_enter(s, &op, false, err);
    if (rc)
        return rc;
    json_t *doc = json_object(), *jobs = json_array(), *models = json_array(),
           *artifacts = json_array();
    char *in = hs_sqlite_scope_json(scope);
    int64_t cursor = since;
    rc = feed_cursor(s, since, &cursor, err);
    if (!rc)
        rc = feed_rows(s, FEED_JOBS_SQL, since, in, jobs, feed_job, err);
    if (!rc)
        rc = feed_rows(s, FEED_MODELS_SQL, since, in, models, feed_model, err);
    if (!rc)
        rc = feed_rows(s, FEED_ARTIFACTS_SQL, since, in, artifacts, feed_artifact, err);
    free(in);
    rc = op_leave(s, &op, rc, err);
    if (!rc) {
        json_object_set_new(doc, "cursor", json_integer(cursor));
        json_object_set_new(doc, "jobs", jobs);
        json_object_set_new(doc, "models", models);
        json_object_set_new(doc, "artifacts", artifacts);
        *out = hs_json_dump(doc);
    } else {
        json_decref(jobs);
        json_decref(models);
        json_decref(artifacts);
    }
    json_decref(doc);
    return rc;
}

int hs_sqlite_export_since(struct hs_store *base, int64_t since, char **out, struct hs_error *err)
{
    return hs_sqlite_export_since_scoped(base, since, NULL, out, err);
}

/* ---- checkpoints ---- */

int hs_sqlite_checkpoint_get(struct hs_store *base, const char *name, char **value,
                             struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (!name)
        return hs_fail(err, HS_ERR_INVALID, "checkpoint without a name");
    struct op op;
    int rc = op_enter(s, &op, false, err);
    if (rc)
        return rc;
    char *v = NULL;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(s, &st, "SELECT value FROM checkpoints WHERE name = ?1",
                        "reading checkpoint", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, name);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW)
            v = hs_sqlite_col_text(st, 0);
        else if (src == SQLITE_DONE)
            rc = hs_fail(err, HS_ERR_NOT_FOUND, "no checkpoint '%s'", name);
        else
            rc = hs_sqlite_fail(s, src, err, "reading checkpoint");
        sqlite3_finalize(st);
    }
    rc = op_leave(s, &op, rc, err);
    if (rc)
        free(v);
    else
        *value = v;
    return rc;
}

int hs_sqlite_checkpoint_put(struct hs_store *base, const char *name, const char *value,
                             struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (!name || !value)
        return hs_fail(err, HS_ERR_INVALID, "checkpoint without a name or a value");
    struct op op;
    int rc = op_enter(s, &op, true, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(
        s, &st,
        "INSERT INTO checkpoints (name, value, updated_at) VALUES (?1, ?2, " HS_SQL_NOW
        ") ON CONFLICT(name) DO UPDATE SET value = excluded.value, "
        "updated_at = excluded.updated_at",
        "storing checkpoint", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, name);
        hs_sqlite_bind_text(st, 2, value);
        rc = hs_sqlite_run(s, st, NULL, "storing checkpoint", err);
    }
    return op_leave(s, &op, rc, err);
}
