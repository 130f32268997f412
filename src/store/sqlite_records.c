/* sqlite_records.c: the sync records of the SQLite back-end (store/records.h: jobs, models,
 * artifacts, measurements, selections, runs, checkpoints) and the records feed
 * (docs/RECORDS.md). Every op enters its transaction through hs_sqlite_enter: its own, or a
 * savepoint of the caller's (store_sqlite.c).
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
#include "store/records.h"
#include "store/sqlite_internal.h"

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
int hs_sqlite_seq_peek(struct sq_txn *t, int64_t *out, struct hs_error *err)
{
    if (t->s->txn_seq) {
        *out = t->s->txn_seq;
        return HS_OK;
    }
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    int rc = hs_sqlite_prep_kept(t, &st,
                                 "SELECT COALESCE(MAX(value), -1) FROM counters "
                                 "WHERE name = 'change_seq'",
                                 "reading change_seq", err);
    if (!rc)
        rc = hs_sqlite_int(t, st, &v, "reading change_seq", err);
    if (!rc && v < 0)
        rc = hs_fail(err, HS_ERR_DB, "counters has no change_seq row");
    if (!rc)
        *out = v + 1;
    return rc;
}

int hs_sqlite_seq_take(struct sq_txn *t, int64_t seq, struct hs_error *err)
{
    if (t->s->txn_seq == seq)
        return HS_OK;
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep_kept(t, &st, "UPDATE counters SET value = ?1 WHERE name = 'change_seq'",
                                 "advancing change_seq", err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, seq);
    if ((rc = hs_sqlite_run(t, st, NULL, "advancing change_seq", err)))
        return rc;
    t->s->txn_seq = seq;
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

static int job_row_put(struct sq_txn *t, const struct hs_job *j, const char *connection_key,
                       int64_t seq, bool *changed, struct hs_error *err)
{
    char *sql = upsert_sql("jobs", job_cols, N_JOB_COLS, true);
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(t, &st, sql, "storing job", err);
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
    int changes = 0;
    if ((rc = hs_sqlite_run(t, st, &changes, "storing job", err)))
        return rc;
    *changed = changes > 0;
    return HS_OK;
}

/* One model on a statement prepared once per job (reset between models). */
static int model_row_put(struct sq_txn *t, sqlite3_stmt *st, int64_t job_id,
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
        return hs_sqlite_fail(t->db, rc, err, "storing model");
    *changed = sqlite3_changes(t->db) > 0;
    return HS_OK;
}

/* A job of a deleted connection (disconnected_at set, connection_delete) read again through a
 * connection is connected again: the feed shows it with disconnected_at null. */
static int job_connected(struct sq_txn *t, int64_t id, int64_t seq, bool *changed,
                         struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep_kept(t, &st,
                                 "UPDATE jobs SET disconnected_at = NULL, change_seq = ?2 "
                                 "WHERE id = ?1 AND disconnected_at IS NOT NULL",
                                 "storing job", err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, seq);
    int changes = 0;
    rc = hs_sqlite_run(t, st, &changes, "storing job", err);
    *changed = !rc && changes > 0;
    return rc;
}

static int sq_job_upsert(struct hs_store *base, const struct hs_job *job,
                         const char *connection_key, bool *changed, struct hs_error *err)
{
    if (!job || job->id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "job without an id");
    for (size_t i = 0; i < job->n_models; i++)
        if (job->models[i].id <= 0)
            return hs_fail(err, HS_ERR_INVALID, "job %lld has a model without an id",
                           (long long)job->id);
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "job_upsert", err);
    if (rc)
        return rc;
    int64_t seq = 0;
    bool any = false, one = false;
    sqlite3_stmt *mst = NULL;
    rc = hs_sqlite_seq_peek(&t, &seq, err);
    if (!rc)
        rc = job_row_put(&t, job, connection_key, seq, &any, err);
    if (!rc)
        rc = job_connected(&t, job->id, seq, &one, err);
    any = any || one;
    if (!rc && job->n_models > 0) {
        char *sql = upsert_sql("models", model_cols, N_MODEL_COLS, false);
        rc = hs_sqlite_prep(&t, &mst, sql, "storing model", err);
        free(sql);
    }
    for (size_t i = 0; !rc && i < job->n_models; i++) {
        rc = model_row_put(&t, mst, job->id, &job->models[i], seq, &one, err);
        any = any || one;
    }
    sqlite3_finalize(mst);
    if (!rc && any)
        rc = hs_sqlite_seq_take(&t, seq, err);
    rc = hs_sqlite_leave(&t, rc, err);
    if (!rc && changed)
        *changed = any;
    return rc;
}

static int model_fill(struct sq_txn *t, sqlite3_stmt *st, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    struct hs_model_row *m = row;
    m->id = sqlite3_column_int64(st, 0);
    m->job_id = sqlite3_column_int64(st, 1);
    m->name = hs_sqlite_col_text(st, 2);
    m->state = hs_sqlite_col_text(st, 3);
    m->deliverable = hs_sqlite_col_text(st, 4);
    m->updated_at = hs_sqlite_col_text(st, 5);
    m->synced_updated_at = hs_sqlite_col_text(st, 6);
    m->change_seq = sqlite3_column_int64(st, 7);
    m->connection_key = hs_sqlite_col_text(st, 8);
    return HS_OK;
}

static int sq_model_get(struct hs_store *base, int64_t model_id, struct hs_model_row *out,
                        struct hs_error *err)
{
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "model_get", err);
    if (rc)
        return rc;
    struct hs_model_row m = {0};
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep_kept(
        &t, &st,
        "SELECT id, job_id, name, state, deliverable, hover_updated_at, synced_updated_at, "
        "change_seq, (SELECT connection_key FROM jobs WHERE jobs.id = models.job_id) "
        "FROM models WHERE id = ?1",
        "reading model", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, model_id);
        rc = hs_sqlite_one(&t, st, model_fill, &m, "reading model", err);
        if (rc == HS_ERR_NOT_FOUND)
            hs_fail(err, HS_ERR_NOT_FOUND, "model %lld is not stored", (long long)model_id);
    }
    rc = hs_sqlite_leave(&t, rc, err);
    if (rc)
        hs_model_row_clear(&m);
    else
        *out = m;
    return rc;
}

static int model_exists(struct sq_txn *t, int64_t model_id, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int64_t n = 0;
    int rc =
        hs_sqlite_prep(t, &st, "SELECT COUNT(*) FROM models WHERE id = ?1", "reading model", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, model_id);
        rc = hs_sqlite_int(t, st, &n, "reading model", err);
    }
    if (!rc && n == 0)
        rc = hs_fail(err, HS_ERR_NOT_FOUND, "model %lld is not stored", (long long)model_id);
    return rc;
}

/* A new synced_updated_at is a change the CRM sees (the model's files are now all there). */
static int sq_model_mark_synced(struct hs_store *base, int64_t model_id, const char *updated_at,
                                struct hs_error *err)
{
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "model_mark_synced", err);
    if (rc)
        return rc;
    int64_t seq = 0;
    int changes = 0;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_seq_peek(&t, &seq, err);
    if (!rc)
        rc =
            hs_sqlite_prep_kept(&t, &st,
                                "UPDATE models SET synced_updated_at = ?2, updated_at = " HS_SQL_NOW
                                ", change_seq = ?3 WHERE id = ?1 AND synced_updated_at IS NOT ?2",
                                "marking model synced", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, model_id);
        hs_sqlite_bind_text(st, 2, updated_at);
        sqlite3_bind_int64(st, 3, seq);
        rc = hs_sqlite_run(&t, st, &changes, "marking model synced", err);
    }
    if (!rc)
        rc = changes > 0 ? hs_sqlite_seq_take(&t, seq, err) : model_exists(&t, model_id, err);
    return hs_sqlite_leave(&t, rc, err);
}

/* ---- artifacts ---- */

#define ARTIFACT_COLS                                                                              \
    "model_id, kind, source_url, sha256, bytes, content_type, path, etag, fetched_at, image_id, "  \
    "change_seq, fetched"

static int artifact_fill(struct sq_txn *t, sqlite3_stmt *st, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    struct hs_artifact_row *a = row;
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
    a->not_fetched = sqlite3_column_int(st, 11) == 0;
    return HS_OK;
}

static int sq_artifact_get(struct hs_store *base, int64_t model_id, const char *kind,
                           struct hs_artifact_row *out, struct hs_error *err)
{
    if (!kind)
        return hs_fail(err, HS_ERR_INVALID, "artifact_get without a kind");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "artifact_get", err);
    if (rc)
        return rc;
    struct hs_artifact_row a = {0};
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(&t, &st,
                        "SELECT " ARTIFACT_COLS " FROM artifacts WHERE model_id = ?1 AND kind = ?2",
                        "reading artifact", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, model_id);
        hs_sqlite_bind_text(st, 2, kind);
        rc = hs_sqlite_one(&t, st, artifact_fill, &a, "reading artifact", err);
        if (rc == HS_ERR_NOT_FOUND)
            hs_fail(err, HS_ERR_NOT_FOUND, "no artifact '%s' stored for model %lld", kind,
                    (long long)model_id);
    }
    rc = hs_sqlite_leave(&t, rc, err);
    if (rc)
        hs_artifact_row_clear(&a);
    else
        *out = a;
    return rc;
}

/* New bytes are a change. The same bytes fetched again (a new etag, a later fetched_at, a new
 * URL: presigned or host-dependent links change without the content changing) are bookkeeping:
 * stored, but the row keeps its sequence, so the records feed does not report churn. */
static int artifact_write(struct sq_txn *t, const struct hs_artifact_row *a, bool *changed,
                          struct hs_error *err)
{
    int64_t seq = 0;
    int changes = 0;
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_seq_peek(t, &seq, err);
    if (!rc)
        rc = hs_sqlite_prep_kept(
            t, &st,
            "INSERT INTO artifacts (" ARTIFACT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
            "?8, COALESCE(?9, " HS_SQL_NOW "), ?10, ?11, 1) "
            "ON CONFLICT(model_id, kind) DO UPDATE SET source_url = excluded.source_url, "
            "sha256 = excluded.sha256, bytes = excluded.bytes, "
            "content_type = excluded.content_type, path = excluded.path, "
            "etag = excluded.etag, fetched_at = excluded.fetched_at, "
            "image_id = excluded.image_id, change_seq = excluded.change_seq, fetched = 1 "
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
    if ((rc = hs_sqlite_run(t, st, &changes, "storing artifact", err)))
        return rc;
    if (changes > 0) {
        *changed = true;
        return hs_sqlite_seq_take(t, seq, err);
    }
    *changed = false;
    rc = hs_sqlite_prep_kept(t, &st,
                             "UPDATE artifacts SET etag = ?3, fetched_at = COALESCE(?4, " HS_SQL_NOW
                             "), source_url = ?5 WHERE model_id = ?1 AND kind = ?2",
                             "storing artifact", err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, a->model_id);
    hs_sqlite_bind_text(st, 2, a->kind);
    hs_sqlite_bind_text(st, 3, a->etag);
    hs_sqlite_bind_text(st, 4, a->fetched_at);
    hs_sqlite_bind_text(st, 5, a->source_url);
    return hs_sqlite_run(t, st, NULL, "storing artifact", err);
}

/* A row recorded but not downloaded: a new row is a change; the URL of a row still not fetched
 * is bookkeeping; a fetched row stays as it is. */
static int artifact_record(struct sq_txn *t, const struct hs_artifact_row *a, bool *changed,
                           struct hs_error *err)
{
    int64_t seq = 0;
    int changes = 0;
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_seq_peek(t, &seq, err);
    if (!rc)
        rc = hs_sqlite_prep_kept(t, &st,
                                 "INSERT INTO artifacts (" ARTIFACT_COLS
                                 ") VALUES (?1, ?2, ?3, '', 0, "
                                 "NULL, '', NULL, NULL, ?4, ?5, 0) "
                                 "ON CONFLICT(model_id, kind) DO NOTHING",
                                 "recording artifact", err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, a->model_id);
    hs_sqlite_bind_text(st, 2, a->kind);
    hs_sqlite_bind_text(st, 3, a->source_url);
    hs_sqlite_bind_id(st, 4, a->image_id);
    sqlite3_bind_int64(st, 5, seq);
    if ((rc = hs_sqlite_run(t, st, &changes, "recording artifact", err)))
        return rc;
    *changed = changes > 0;
    if (changes > 0)
        return hs_sqlite_seq_take(t, seq, err);
    rc = hs_sqlite_prep_kept(
        t, &st,
        "UPDATE artifacts SET source_url = ?3 WHERE model_id = ?1 AND kind = ?2 "
        "AND fetched = 0",
        "recording artifact", err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, a->model_id);
    hs_sqlite_bind_text(st, 2, a->kind);
    hs_sqlite_bind_text(st, 3, a->source_url);
    return hs_sqlite_run(t, st, NULL, "recording artifact", err);
}

static int sq_artifact_put(struct hs_store *base, const struct hs_artifact_row *a, bool *changed,
                           struct hs_error *err)
{
    if (a && a->kind && a->not_fetched) {
        struct sq_txn t;
        bool ch = false;
        int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "artifact_put", err);
        if (rc)
            return rc;
        rc = hs_sqlite_leave(&t, artifact_record(&t, a, &ch, err), err);
        if (!rc && changed)
            *changed = ch;
        return rc;
    }
    if (!a || !a->kind || !a->sha256 || !a->path || a->bytes < 0)
        return hs_fail(err, HS_ERR_INVALID, "artifact without kind, sha256, path or size");
    struct sq_txn t;
    bool ch = false;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "artifact_put", err);
    if (rc)
        return rc;
    rc = hs_sqlite_leave(&t, artifact_write(&t, a, &ch, err), err);
    if (!rc && changed)
        *changed = ch;
    return rc;
}

static int sq_artifact_each(struct hs_store *base,
                            int (*fn)(void *ctx, const struct hs_artifact_row *a), void *ctx,
                            struct hs_error *err)
{
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "artifact_each", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(&t, &st, "SELECT " ARTIFACT_COLS " FROM artifacts ORDER BY model_id, kind",
                        "listing artifacts", err);
    while (!rc) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = hs_sqlite_fail(t.db, src, err, "listing artifacts");
            break;
        }
        struct hs_artifact_row a = {0};
        artifact_fill(&t, st, &a, err);
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
    return hs_sqlite_leave(&t, rc, err);
}

/* Artifacts of models of jobs in the scope bound to ?2. */
#define ARTIFACT_IN_SCOPE                                                                          \
    "(?2 IS NULL OR model_id IN (SELECT m.id FROM models m JOIN jobs j ON j.id = m.job_id "        \
    "WHERE " HS_SQL_IN_SCOPE("j.connection_key", "2") "))"

/* One artifact row by a column that is not its key (the service's file and image routes), in a
 * scope (?2). */
static int artifact_find(struct hs_store *base, const char *sql, const char *text, int64_t num,
                         const struct hs_scope *scope, struct hs_artifact_row *out,
                         const char *what, struct hs_error *err)
{
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, what, err);
    if (rc)
        return rc;
    struct hs_artifact_row a = {0};
    sqlite3_stmt *st = NULL;
    char *in = hs_sqlite_scope_json(scope);
    rc = hs_sqlite_prep(&t, &st, sql, what, err);
    if (!rc) {
        if (text)
            hs_sqlite_bind_text(st, 1, text);
        else
            sqlite3_bind_int64(st, 1, num);
        hs_sqlite_bind_text(st, 2, in);
        rc = hs_sqlite_one(&t, st, artifact_fill, &a, what, err);
        if (rc == HS_ERR_NOT_FOUND)
            hs_fail(err, HS_ERR_NOT_FOUND, "no stored artifact with that %s",
                    text ? "sha256" : "image id");
    }
    free(in);
    rc = hs_sqlite_leave(&t, rc, err);
    if (rc)
        hs_artifact_row_clear(&a);
    else
        *out = a;
    return rc;
}

static int sq_artifact_by_sha(struct hs_store *base, const char *sha256,
                              const struct hs_scope *scope, struct hs_artifact_row *out,
                              struct hs_error *err)
{
    if (!sha256)
        return hs_fail(err, HS_ERR_INVALID, "artifact_by_sha without a sha256");
    return artifact_find(base,
                         "SELECT " ARTIFACT_COLS " FROM artifacts WHERE sha256 = ?1 "
                         "AND fetched = 1 AND " ARTIFACT_IN_SCOPE " LIMIT 1",
                         sha256, 0, scope, out, "finding artifact by sha256", err);
}

static int sq_artifact_by_image(struct hs_store *base, int64_t image_id,
                                const struct hs_scope *scope, struct hs_artifact_row *out,
                                struct hs_error *err)
{
    if (image_id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "artifact_by_image without an image id");
    return artifact_find(base,
                         "SELECT " ARTIFACT_COLS " FROM artifacts WHERE image_id = ?1 "
                         "AND fetched = 1 AND " ARTIFACT_IN_SCOPE
                         " ORDER BY fetched_at DESC LIMIT 1",
                         NULL, image_id, scope, out, "finding image", err);
}

static int model_status_fill(struct sq_txn *t, sqlite3_stmt *st, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    struct hs_model_status *m = row;
    m->model_id = sqlite3_column_int64(st, 0);
    m->synced_updated_at = hs_sqlite_col_text(st, 1);
    const char *status = (const char *)sqlite3_column_text(st, 2);
    m->has_selection = status && hs_selection_status_parse(status, &m->selection) == HS_OK;
    m->reason = hs_sqlite_col_text(st, 3);
    return HS_OK;
}

static void model_status_clear(void *row)
{
    struct hs_model_status *m = row;
    free(m->synced_updated_at);
    free(m->reason);
}

static int sq_job_models_status(struct hs_store *base, int64_t job_id, struct hs_model_status **out,
                                size_t *n, struct hs_error *err)
{
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "job_models_status", err);
    if (rc)
        return rc;
    void *v = NULL;
    size_t len = 0;
    sqlite3_stmt *st = NULL;
    /* Stored models with their selection, then selections of models not stored yet. */
    rc = hs_sqlite_prep_kept(
        &t, &st,
        "SELECT m.id, m.synced_updated_at, sel.status, sel.reason FROM models m "
        "LEFT JOIN selections sel ON sel.job_id = m.job_id AND sel.model_id = m.id "
        "WHERE m.job_id = ?1 "
        "UNION ALL "
        "SELECT sel.model_id, NULL, sel.status, sel.reason FROM selections sel "
        "WHERE sel.job_id = ?1 AND NOT EXISTS "
        "(SELECT 1 FROM models m WHERE m.id = sel.model_id AND m.job_id = sel.job_id) "
        "ORDER BY 1",
        "reading model status", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, job_id);
        rc = hs_sqlite_rows(&t, st, sizeof(struct hs_model_status), model_status_fill,
                            model_status_clear, &v, &len, "reading model status", err);
    }
    rc = hs_sqlite_leave(&t, rc, err);
    if (rc) {
        hs_model_statuses_free(v, len);
        return rc;
    }
    *out = v;
    *n = len;
    return HS_OK;
}

static int sq_job_synced_seq(struct hs_store *base, int64_t job_id, int64_t *seq,
                             struct hs_error *err)
{
    if (job_id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "job_synced_seq needs a job id");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "job_synced_seq", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(&t, &st,
                        "SELECT MAX(s) FROM ("
                        "SELECT a.change_seq AS s FROM artifacts a JOIN models m "
                        "ON m.id = a.model_id WHERE m.job_id = ?1 "
                        "UNION ALL SELECT x.change_seq FROM measurements x JOIN models m "
                        "ON m.id = x.model_id WHERE m.job_id = ?1)",
                        "reading the job's change sequence", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, job_id);
        rc = hs_sqlite_int(&t, st, seq, "reading the job's change sequence", err);
    }
    return hs_sqlite_leave(&t, rc, err);
}

/* ---- measurements ---- */

static const char *const meas_cols[] = {
    "model_id",           "roof_area_sqft",   "roof_facets",      "predominant_pitch",
    "ridges_ft",          "hips_ft",          "valleys_ft",       "rakes_ft",
    "eaves_ft",           "siding_area_sqft", "facade_area_sqft", "openings_count",
    "openings_area_sqft", "living_area_sqft", "raw_json",
};
#define N_MEAS_COLS (sizeof meas_cols / sizeof meas_cols[0])

static void measurements_bind(sqlite3_stmt *st, const struct hs_measurements *m, int64_t seq)
{
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
}

static int sq_measurements_put(struct hs_store *base, const struct hs_measurements *m,
                               bool *changed, struct hs_error *err)
{
    if (!m || m->model_id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "measurements without a model id");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "measurements_put", err);
    if (rc)
        return rc;
    int64_t seq = 0;
    int changes = 0;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_seq_peek(&t, &seq, err);
    if (!rc) {
        char *sql = upsert_sql("measurements", meas_cols, N_MEAS_COLS, false);
        rc = hs_sqlite_prep(&t, &st, sql, "storing measurements", err);
        free(sql);
    }
    if (!rc) {
        measurements_bind(st, m, seq);
        rc = hs_sqlite_run(&t, st, &changes, "storing measurements", err);
    }
    if (!rc && changes > 0)
        rc = hs_sqlite_seq_take(&t, seq, err);
    rc = hs_sqlite_leave(&t, rc, err);
    if (!rc && changed)
        *changed = changes > 0;
    return rc;
}

/* ---- selections ---- */

static int sq_selection_put(struct hs_store *base, const struct hs_selection *sel,
                            struct hs_error *err)
{
    if (!sel || sel->job_id <= 0 || (unsigned)sel->status > HS_SEL_ERROR)
        return hs_fail(err, HS_ERR_INVALID, "selection without a job id or with a bad status");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "selection_put", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    /* created_at stays the first selection's: it orders the work queue. A NULL connection_key
     * keeps the one already recorded. */
    rc = hs_sqlite_prep_kept(
        &t, &st,
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
        rc = hs_sqlite_run(&t, st, NULL, "storing selection", err);
    }
    return hs_sqlite_leave(&t, rc, err);
}

static int selection_fill(struct sq_txn *t, sqlite3_stmt *st, void *row, struct hs_error *err)
{
    (void)t;
    struct hs_selection *x = row;
    x->job_id = sqlite3_column_int64(st, 0);
    x->model_id = sqlite3_column_int64(st, 1);
    x->reason = hs_sqlite_col_text(st, 3);
    x->connection_key = hs_sqlite_col_text(st, 4);
    if (hs_selection_status_parse((const char *)sqlite3_column_text(st, 2), &x->status))
        return hs_fail(err, HS_ERR_DB, "selection %lld/%lld has an unknown status",
                       (long long)x->job_id, (long long)x->model_id);
    return HS_OK;
}

static void selection_clear(void *row)
{
    hs_selection_clear(row);
}

static int sq_selections_open(struct hs_store *base, struct hs_selection **out, size_t *n,
                              struct hs_error *err)
{
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "selections_open", err);
    if (rc)
        return rc;
    void *v = NULL;
    size_t len = 0;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(&t, &st,
                        "SELECT job_id, model_id, status, reason, connection_key FROM selections "
                        "WHERE status IN ('selected', 'pending', 'error') "
                        "ORDER BY created_at, job_id, model_id",
                        "listing selections", err);
    if (!rc)
        rc = hs_sqlite_rows(&t, st, sizeof(struct hs_selection), selection_fill, selection_clear,
                            &v, &len, "listing selections", err);
    rc = hs_sqlite_leave(&t, rc, err);
    if (rc) {
        hs_selections_free(v, len);
        return rc;
    }
    *out = v;
    *n = len;
    return HS_OK;
}

/* ---- runs ---- */

static int sq_run_begin(struct hs_store *base, int64_t job_id, const char *trigger, int64_t *run_id,
                        struct hs_error *err)
{
    if (!trigger)
        return hs_fail(err, HS_ERR_INVALID, "sync run without a trigger");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "run_begin", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    int64_t id = 0;
    rc = hs_sqlite_prep_kept(&t, &st,
                             "INSERT INTO sync_runs (job_id, trigger, status, started_at) "
                             "VALUES (?1, ?2, 'running', " HS_SQL_NOW ")",
                             "starting sync run", err);
    if (!rc) {
        hs_sqlite_bind_id(st, 1, job_id);
        hs_sqlite_bind_text(st, 2, trigger);
        rc = hs_sqlite_run(&t, st, NULL, "starting sync run", err);
        id = sqlite3_last_insert_rowid(t.db);
    }
    rc = hs_sqlite_leave(&t, rc, err);
    if (!rc)
        *run_id = id;
    return rc;
}

static int sq_run_model_result(struct hs_store *base, int64_t run_id, int64_t model_id,
                               const char *result, const char *message, int64_t artifacts_fetched,
                               int64_t artifacts_unchanged, struct hs_error *err)
{
    if (!result)
        return hs_fail(err, HS_ERR_INVALID, "sync result without a result");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "run_model_result", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep_kept(
        &t, &st,
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
        rc = hs_sqlite_run(&t, st, NULL, "recording sync result", err);
    }
    return hs_sqlite_leave(&t, rc, err);
}

static int sq_run_end(struct hs_store *base, int64_t run_id, const char *status,
                      int64_t hover_requests, struct hs_error *err)
{
    if (!status)
        return hs_fail(err, HS_ERR_INVALID, "sync run end without a status");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "run_end", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    int changes = 0;
    rc = hs_sqlite_prep_kept(
        &t, &st,
        "UPDATE sync_runs SET status = ?2, hover_requests = ?3, finished_at = " HS_SQL_NOW
        " WHERE id = ?1",
        "ending sync run", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, run_id);
        hs_sqlite_bind_text(st, 2, status);
        sqlite3_bind_int64(st, 3, hover_requests);
        rc = hs_sqlite_run(&t, st, &changes, "ending sync run", err);
    }
    if (!rc && changes == 0)
        rc = hs_fail(err, HS_ERR_NOT_FOUND, "no sync run %lld", (long long)run_id);
    return hs_sqlite_leave(&t, rc, err);
}

static int sq_run_renew(struct hs_store *base, int64_t run_id, int64_t lease_until_ms,
                        struct hs_error *err)
{
    /* A run marked interrupted while its process was stalled becomes running again: the
     * process is alive and still working on it. A run that ended stays as it ended. */
    struct hs_error e = {0};
    int rc = hs_sqlite_change_by_id(
        base,
        "UPDATE sync_runs SET lease_until_ms = ?2, status = 'running', finished_at = NULL "
        "WHERE id = ?1 AND (status = 'running' OR status = 'interrupted')",
        run_id, lease_until_ms, NULL, "renewing sync run", "no running sync run %lld", &e);
    if (rc == HS_ERR_NOT_FOUND)
        return HS_OK;
    if (rc && err)
        *err = e;
    return rc;
}

/* Running (and of those, lapsed) and interrupted runs, as count_runs reads them. */
struct run_tally {
    struct hs_run_counts c;
    int64_t lapsed;
};

static int run_tally_fill(struct sq_txn *t, sqlite3_stmt *st, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    struct run_tally *r = row;
    r->c.running = sqlite3_column_int64(st, 0);
    r->c.interrupted = sqlite3_column_int64(st, 1);
    r->lapsed = sqlite3_column_int64(st, 2);
    return HS_OK;
}

/* Counts running (and of those, lapsed) and interrupted runs into r (marked is kept). */
static int count_runs(struct sq_txn *t, int64_t now_ms, struct run_tally *r, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(t, &st,
                            "SELECT COALESCE(SUM(status = 'running'), 0), "
                            "COALESCE(SUM(status = 'interrupted'), 0), "
                            "COALESCE(SUM(status = 'running' AND (lease_until_ms IS NULL OR "
                            "lease_until_ms < ?1)), 0) FROM sync_runs "
                            "WHERE status IN ('running', 'interrupted')",
                            "counting sync runs", err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, now_ms);
    struct run_tally got = {0};
    rc = hs_sqlite_one(t, st, run_tally_fill, &got, "counting sync runs", err);
    if (!rc) {
        got.c.marked = r->c.marked;
        *r = got;
    }
    return rc;
}

static int sq_runs_interrupt_lapsed(struct hs_store *base, int64_t now_ms,
                                    struct hs_run_counts *out, struct hs_error *err)
{
    struct sqlite_store *s = hs_sqlite_of(base);
    struct run_tally r = {0};
    /* A read first: status is polled, and a write lock per poll would queue behind syncs. */
    struct sq_txn t;
    int rc = hs_sqlite_enter(s, &t, SQ_READ, "runs_interrupt_lapsed", err);
    if (rc)
        return rc;
    rc = hs_sqlite_leave(&t, count_runs(&t, now_ms, &r, err), err);
    if (rc == HS_OK && r.lapsed > 0) {
        if ((rc = hs_sqlite_enter(s, &t, SQ_WRITE, "runs_interrupt_lapsed", err)))
            return rc;
        sqlite3_stmt *st = NULL;
        int changes = 0;
        rc = hs_sqlite_prep(&t, &st,
                            "UPDATE sync_runs SET status = 'interrupted', finished_at = " HS_SQL_NOW
                            " WHERE status = 'running' AND (lease_until_ms IS NULL OR "
                            "lease_until_ms < ?1)",
                            "marking lapsed sync runs", err);
        if (!rc) {
            sqlite3_bind_int64(st, 1, now_ms);
            rc = hs_sqlite_run(&t, st, &changes, "marking lapsed sync runs", err);
            r.c.marked = changes;
        }
        if (!rc)
            rc = count_runs(&t, now_ms, &r, err);
        rc = hs_sqlite_leave(&t, rc, err);
    }
    if (!rc && out)
        *out = r.c;
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
static int feed_rows(struct sq_txn *t, const char *sql, int64_t since, const char *scope,
                     json_t *arr, json_t *(*row)(sqlite3_stmt *st), struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(t, &st, sql, "reading the records feed", err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, since);
    hs_sqlite_bind_text(st, 2, scope);
    for (;;) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = hs_sqlite_fail(t->db, src, err, "reading the records feed");
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
    "customer_name, customer_email, customer_phone, hover_updated_at, change_seq, "
    "disconnected_at "
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
    static const char *const tail[] = {"hover_updated_at", "change_seq", "disconnected_at"};
    json_t *j = json_object(), *a = json_object(), *c = json_object();
    put_cols(j, st, 0, top, 5);
    put_cols(a, st, 5, addr, 8);
    put_cols(c, st, 13, cust, 3);
    json_object_set_new(j, "address", a);
    json_object_set_new(j, "customer", c);
    put_cols(j, st, 16, tail, 3);
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
    "a.source_url, a.fetched_at, a.image_id, a.change_seq, a.fetched "
    "FROM artifacts a LEFT JOIN models m ON m.id = a.model_id "
    "WHERE a.change_seq > ?1 AND " FEED_JOB_IN_SCOPE " ORDER BY a.change_seq, a.id";

static json_t *feed_artifact(sqlite3_stmt *st)
{
    static const char *const keys[] = {"model_id",   "job_id",       "kind",      "sha256",
                                       "bytes",      "content_type", "path",      "source_url",
                                       "fetched_at", "image_id",     "change_seq"};
    json_t *j = json_object();
    put_cols(j, st, 0, keys, sizeof keys / sizeof keys[0]);
    /* Not fetched yet: no bytes, no file (fetched on first use, GET /files/models/...). */
    bool fetched = sqlite3_column_int(st, 11) != 0;
    json_object_set_new(j, "fetched", json_boolean(fetched));
    if (!fetched) {
        json_object_set_new(j, "sha256", json_null());
        json_object_set_new(j, "path", json_null());
    }
    return j;
}

static int feed_cursor(struct sq_txn *t, int64_t since, int64_t *out, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int64_t max = 0;
    int rc = hs_sqlite_prep(t, &st, "SELECT value FROM counters WHERE name = 'change_seq'",
                            "reading change_seq", err);
    if (!rc)
        rc = hs_sqlite_int(t, st, &max, "reading change_seq", err);
    /* The counter is only advanced by a transaction that changed a row, so it is the largest
     * change_seq in the store. */
    if (!rc)
        *out = max > since ? max : since;
    return rc;
}

static int sq_export_since(struct hs_store *base, int64_t since, const struct hs_scope *scope,
                           char **out, struct hs_error *err)
{
    struct sq_txn t;
    /* One read transaction: the cursor and the rows come from the same snapshot. */
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "export_since", err);
    if (rc)
        return rc;
    json_t *doc = json_object(), *jobs = json_array(), *models = json_array(),
           *artifacts = json_array();
    char *in = hs_sqlite_scope_json(scope);
    int64_t cursor = since;
    rc = feed_cursor(&t, since, &cursor, err);
    if (!rc)
        rc = feed_rows(&t, FEED_JOBS_SQL, since, in, jobs, feed_job, err);
    if (!rc)
        rc = feed_rows(&t, FEED_MODELS_SQL, since, in, models, feed_model, err);
    if (!rc)
        rc = feed_rows(&t, FEED_ARTIFACTS_SQL, since, in, artifacts, feed_artifact, err);
    free(in);
    rc = hs_sqlite_leave(&t, rc, err);
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

/* ---- checkpoints ---- */

static int sq_checkpoint_get(struct hs_store *base, const char *name, char **value,
                             struct hs_error *err)
{
    if (!name)
        return hs_fail(err, HS_ERR_INVALID, "checkpoint without a name");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "checkpoint_get", err);
    if (rc)
        return rc;
    char *v = NULL;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(&t, &st, "SELECT value FROM checkpoints WHERE name = ?1",
                        "reading checkpoint", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, name);
        rc = hs_sqlite_one(&t, st, hs_sqlite_fill_text, &v, "reading checkpoint", err);
        if (rc == HS_ERR_NOT_FOUND)
            hs_fail(err, HS_ERR_NOT_FOUND, "no checkpoint '%s'", name);
    }
    rc = hs_sqlite_leave(&t, rc, err);
    if (rc)
        free(v);
    else
        *value = v;
    return rc;
}

static int sq_checkpoint_put(struct hs_store *base, const char *name, const char *value,
                             struct hs_error *err)
{
    if (!name || !value)
        return hs_fail(err, HS_ERR_INVALID, "checkpoint without a name or a value");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "checkpoint_put", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(
        &t, &st,
        "INSERT INTO checkpoints (name, value, updated_at) VALUES (?1, ?2, " HS_SQL_NOW
        ") ON CONFLICT(name) DO UPDATE SET value = excluded.value, "
        "updated_at = excluded.updated_at",
        "storing checkpoint", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, name);
        hs_sqlite_bind_text(st, 2, value);
        rc = hs_sqlite_run(&t, st, NULL, "storing checkpoint", err);
    }
    return hs_sqlite_leave(&t, rc, err);
}

const struct hs_records_ops hs_sqlite_records_ops = {
    .job_upsert = sq_job_upsert,
    .model_get = sq_model_get,
    .model_mark_synced = sq_model_mark_synced,
    .job_models_status = sq_job_models_status,
    .job_synced_seq = sq_job_synced_seq,
    .artifact_get = sq_artifact_get,
    .artifact_put = sq_artifact_put,
    .artifact_each = sq_artifact_each,
    .artifact_by_sha = sq_artifact_by_sha,
    .artifact_by_image = sq_artifact_by_image,
    .measurements_put = sq_measurements_put,
    .selection_put = sq_selection_put,
    .selections_open = sq_selections_open,
    .run_begin = sq_run_begin,
    .run_model_result = sq_run_model_result,
    .run_end = sq_run_end,
    .run_renew = sq_run_renew,
    .runs_interrupt_lapsed = sq_runs_interrupt_lapsed,
    .export_since = sq_export_since,
    .checkpoint_get = sq_checkpoint_get,
    .checkpoint_put = sq_checkpoint_put,
};
