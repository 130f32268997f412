/* pg_records.c: the sync records of the PostgreSQL back-end (store/records.h: jobs, models,
 * artifacts, measurements, selections, runs, checkpoints) and the records feed
 * (docs/RECORDS.md). Every op enters its transaction through hs_pg_enter: its own, or a savepoint
 * of the caller's (store_pg.c).
 *
 * Change sequence. counters.change_seq is the last sequence given out. A transaction that writes
 * records reads the counter FOR UPDATE (seq_peek) and holds its row lock until it commits or rolls
 * back; if it really changed a row it writes the next value to every row it changed and to the
 * counter (seq_take). Transactions that write records therefore take their sequences in the
 * order they commit: one that got sequence N committed before any that got N + 1 could read the
 * counter, so a reader whose snapshot shows N + 1 shows N too, and a cursor following the feed
 * never skips a row that commits later with a lower number (docs/RECORDS.md). The price is that
 * writers of records queue on one row from their first record write to their commit; readers do
 * not queue at all. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/str.h"
#include "store/pg_internal.h"
#include "store/records.h"

/* Type OIDs of the columns the feed reads (pg_type.h, stable across releases). */
#define OID_BOOL    16
#define OID_INT8    20
#define OID_INT2    21
#define OID_INT4    23
#define OID_FLOAT4  700
#define OID_FLOAT8  701
#define OID_NUMERIC 1700

#define NOW "clock_timestamp()"

/* ---- change sequence ---- */

int hs_pg_seq_peek(struct pg_txn *t, int64_t *out, struct hs_error *err)
{
    if (t->conn->txn_seq) {
        *out = t->conn->txn_seq;
        return HS_OK;
    }
    int64_t v = 0;
    int rc = hs_pg_int1(t, "SELECT value + 1 FROM counters WHERE name = 'change_seq' FOR UPDATE",
                        NULL, &v, "reading change_seq", err);
    if (!rc && v <= 0)
        rc = hs_fail(err, HS_ERR_DB, "counters has no change_seq row");
    if (!rc)
        *out = v;
    return rc;
}

int hs_pg_seq_take(struct pg_txn *t, int64_t seq, struct hs_error *err)
{
    if (t->conn->txn_seq == seq)
        return HS_OK;
    struct pg_args a = {0};
    hs_pg_int(&a, seq);
    int rc = hs_pg_run(t, "UPDATE counters SET value = $1 WHERE name = 'change_seq'", &a, NULL,
                       "advancing change_seq", err);
    if (!rc)
        t->conn->txn_seq = seq;
    return rc;
}

/* INSERT ... ON CONFLICT (cols[0]) DO UPDATE ... WHERE <some column differs>: the row is written,
 * and counted as changed, only when it is new or really changes. Values are $1..$n in the order
 * of cols, the change sequence $n+1. Caller frees. */
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
        rc |= hs_buf_appendf(&b, "$%zu, ", i + 1);
    if (first_seen)
        rc |= hs_buf_appends(&b, NOW ", ");
    rc |= hs_buf_appendf(&b, NOW ", $%zu) ON CONFLICT (%s) DO UPDATE SET ", n + 1, cols[0]);
    for (size_t i = 1; i < n; i++)
        rc |= hs_buf_appendf(&b, "%s = excluded.%s, ", cols[i], cols[i]);
    rc |= hs_buf_appends(
        &b, "updated_at = excluded.updated_at, change_seq = excluded.change_seq WHERE ");
    for (size_t i = 1; i < n; i++)
        rc |= hs_buf_appendf(&b, "%s%s.%s IS DISTINCT FROM excluded.%s", i > 1 ? " OR " : "", table,
                             cols[i], cols[i]);
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

static int job_row_put(struct pg_txn *t, const struct hs_job *j, const char *connection_key,
                       int64_t seq, bool *changed, struct hs_error *err)
{
    const struct hs_address *ad = &j->address;
    struct pg_args a = {0};
    hs_pg_int(&a, j->id);
    hs_pg_text(&a, connection_key);
    hs_pg_id(&a, j->org_id);
    hs_pg_text(&a, j->name);
    hs_pg_text(&a, j->external_identifier);
    hs_pg_text(&a, j->reconstruction_state);
    hs_pg_id(&a, j->deliverable_id);
    hs_pg_bool(&a, j->archived);
    hs_pg_text(&a, ad->line1);
    hs_pg_text(&a, ad->line2);
    hs_pg_text(&a, ad->city);
    hs_pg_text(&a, ad->region);
    hs_pg_text(&a, ad->postal_code);
    hs_pg_text(&a, ad->country);
    hs_pg_real(&a, ad->has_coords ? ad->latitude : NAN);
    hs_pg_real(&a, ad->has_coords ? ad->longitude : NAN);
    hs_pg_text(&a, j->customer.name);
    hs_pg_text(&a, j->customer.first_name);
    hs_pg_text(&a, j->customer.email);
    hs_pg_text(&a, j->customer.phone);
    hs_pg_text(&a, j->created_at);
    hs_pg_text(&a, j->updated_at);
    hs_pg_text(&a, j->completed_at);
    hs_pg_text(&a, j->raw_json);
    hs_pg_int(&a, seq);
    char *sql = upsert_sql("jobs", job_cols, N_JOB_COLS, true);
    int64_t changes = 0;
    int rc = hs_pg_run(t, sql, &a, &changes, "storing job", err);
    free(sql);
    if (!rc)
        *changed = changes > 0;
    return rc;
}

static int model_row_put(struct pg_txn *t, const char *sql, int64_t job_id,
                         const struct hs_model *m, int64_t seq, bool *changed, struct hs_error *err)
{
    struct pg_args a = {0};
    hs_pg_int(&a, m->id);
    hs_pg_int(&a, job_id);
    hs_pg_text(&a, m->name);
    hs_pg_text(&a, m->state);
    hs_pg_text(&a, m->deliverable);
    hs_pg_id(&a, m->deliverable_id);
    hs_pg_id(&a, m->capture_id);
    hs_pg_text(&a, m->updated_at);
    hs_pg_int(&a, seq);
    int64_t changes = 0;
    int rc = hs_pg_run(t, sql, &a, &changes, "storing model", err);
    if (!rc)
        *changed = changes > 0;
    return rc;
}

/* A job of a deleted connection (disconnected_at set, connection_delete) read again through a
 * connection is connected again: the feed shows it with disconnected_at null. */
static int job_connected(struct pg_txn *t, int64_t id, int64_t seq, bool *changed,
                         struct hs_error *err)
{
    struct pg_args a = {0};
    hs_pg_int(&a, id);
    hs_pg_int(&a, seq);
    int64_t changes = 0;
    int rc = hs_pg_run(t,
                       "UPDATE jobs SET disconnected_at = NULL, change_seq = $2 "
                       "WHERE id = $1 AND disconnected_at IS NOT NULL",
                       &a, &changes, "storing job", err);
    *changed = !rc && changes > 0;
    return rc;
}

static int pg_job_upsert(struct hs_store *base, const struct hs_job *job,
                         const char *connection_key, bool *changed, struct hs_error *err)
{
    if (!job || job->id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "job without an id");
    for (size_t i = 0; i < job->n_models; i++)
        if (job->models[i].id <= 0)
            return hs_fail(err, HS_ERR_INVALID, "job %lld has a model without an id",
                           (long long)job->id);
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "job_upsert", err);
    if (rc)
        return rc;
    int64_t seq = 0;
    bool any = false, one = false;
    rc = hs_pg_seq_peek(&t, &seq, err);
    if (!rc)
        rc = job_row_put(&t, job, connection_key, seq, &any, err);
    if (!rc)
        rc = job_connected(&t, job->id, seq, &one, err);
    any = any || one;
    char *msql = upsert_sql("models", model_cols, N_MODEL_COLS, false);
    for (size_t i = 0; !rc && i < job->n_models; i++) {
        rc = model_row_put(&t, msql, job->id, &job->models[i], seq, &one, err);
        any = any || one;
    }
    free(msql);
    if (!rc && any)
        rc = hs_pg_seq_take(&t, seq, err);
    rc = hs_pg_leave(&t, rc, err);
    if (!rc && changed)
        *changed = any;
    return rc;
}

static int model_fill(struct pg_txn *t, const PGresult *r, int i, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    struct hs_model_row *m = row;
    m->id = hs_pg_col_int(r, i, 0);
    m->job_id = hs_pg_col_int(r, i, 1);
    m->name = hs_pg_col_text(r, i, 2);
    m->state = hs_pg_col_text(r, i, 3);
    m->deliverable = hs_pg_col_text(r, i, 4);
    m->updated_at = hs_pg_col_text(r, i, 5);
    m->synced_updated_at = hs_pg_col_text(r, i, 6);
    m->change_seq = hs_pg_col_int(r, i, 7);
    return HS_OK;
}

static int pg_model_get(struct hs_store *base, int64_t model_id, struct hs_model_row *out,
                        struct hs_error *err)
{
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "model_get", err);
    if (rc)
        return rc;
    struct hs_model_row m = {0};
    struct pg_args a = {0};
    hs_pg_int(&a, model_id);
    rc = hs_pg_one(&t,
                   "SELECT id, job_id, name, state, deliverable, hover_updated_at, "
                   "synced_updated_at, change_seq FROM models WHERE id = $1",
                   &a, model_fill, &m, "reading model", err);
    if (rc == HS_ERR_NOT_FOUND)
        hs_fail(err, HS_ERR_NOT_FOUND, "model %lld is not stored", (long long)model_id);
    rc = hs_pg_leave(&t, rc, err);
    if (rc)
        hs_model_row_clear(&m);
    else
        *out = m;
    return rc;
}

static int model_exists(struct pg_txn *t, int64_t model_id, struct hs_error *err)
{
    struct pg_args a = {0};
    hs_pg_int(&a, model_id);
    int64_t n = 0;
    int rc =
        hs_pg_int1(t, "SELECT COUNT(*) FROM models WHERE id = $1", &a, &n, "reading model", err);
    if (!rc && n == 0)
        rc = hs_fail(err, HS_ERR_NOT_FOUND, "model %lld is not stored", (long long)model_id);
    return rc;
}

/* A new synced_updated_at is a change the CRM sees (the model's files are now all there). */
static int pg_model_mark_synced(struct hs_store *base, int64_t model_id, const char *updated_at,
                                struct hs_error *err)
{
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "model_mark_synced", err);
    if (rc)
        return rc;
    int64_t seq = 0, changes = 0;
    rc = hs_pg_seq_peek(&t, &seq, err);
    if (!rc) {
        struct pg_args a = {0};
        hs_pg_int(&a, model_id);
        hs_pg_text(&a, updated_at);
        hs_pg_int(&a, seq);
        rc = hs_pg_run(&t,
                       "UPDATE models SET synced_updated_at = $2, updated_at = " NOW
                       ", change_seq = $3 WHERE id = $1 AND "
                       "synced_updated_at IS DISTINCT FROM $2::text",
                       &a, &changes, "marking model synced", err);
    }
    if (!rc)
        rc = changes > 0 ? hs_pg_seq_take(&t, seq, err) : model_exists(&t, model_id, err);
    return hs_pg_leave(&t, rc, err);
}

/* ---- artifacts ---- */

#define ARTIFACT_COLS                                                                              \
    "model_id, kind, source_url, sha256, bytes, content_type, path, etag, " HS_PG_ISO(             \
        "fetched_at") ", image_id, change_seq"

static int artifact_fill(struct pg_txn *t, const PGresult *r, int i, void *row,
                         struct hs_error *err)
{
    (void)t;
    (void)err;
    struct hs_artifact_row *a = row;
    a->model_id = hs_pg_col_int(r, i, 0);
    a->kind = hs_pg_col_text(r, i, 1);
    a->source_url = hs_pg_col_text(r, i, 2);
    a->sha256 = hs_pg_col_text(r, i, 3);
    a->bytes = hs_pg_col_int(r, i, 4);
    a->content_type = hs_pg_col_text(r, i, 5);
    a->path = hs_pg_col_text(r, i, 6);
    a->etag = hs_pg_col_text(r, i, 7);
    a->fetched_at = hs_pg_col_text(r, i, 8);
    a->image_id = hs_pg_col_int(r, i, 9); /* NULL reads as 0 */
    a->change_seq = hs_pg_col_int(r, i, 10);
    return HS_OK;
}

static int pg_artifact_get(struct hs_store *base, int64_t model_id, const char *kind,
                           struct hs_artifact_row *out, struct hs_error *err)
{
    if (!kind)
        return hs_fail(err, HS_ERR_INVALID, "artifact_get without a kind");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "artifact_get", err);
    if (rc)
        return rc;
    struct hs_artifact_row art = {0};
    struct pg_args a = {0};
    hs_pg_int(&a, model_id);
    hs_pg_text(&a, kind);
    rc = hs_pg_one(&t, "SELECT " ARTIFACT_COLS " FROM artifacts WHERE model_id = $1 AND kind = $2",
                   &a, artifact_fill, &art, "reading artifact", err);
    if (rc == HS_ERR_NOT_FOUND)
        hs_fail(err, HS_ERR_NOT_FOUND, "no artifact '%s' stored for model %lld", kind,
                (long long)model_id);
    rc = hs_pg_leave(&t, rc, err);
    if (rc)
        hs_artifact_row_clear(&art);
    else
        *out = art;
    return rc;
}

/* New bytes are a change; the same bytes fetched again (a new etag, URL or fetched_at) are
 * bookkeeping: stored, but the row keeps its sequence (as in SQLite's artifact_write). */
static int artifact_write(struct pg_txn *t, const struct hs_artifact_row *art, bool *changed,
                          struct hs_error *err)
{
    int64_t seq = 0, changes = 0;
    int rc = hs_pg_seq_peek(t, &seq, err);
    if (rc)
        return rc;
    struct pg_args a = {0};
    hs_pg_int(&a, art->model_id);
    hs_pg_text(&a, art->kind);
    hs_pg_text(&a, art->source_url);
    hs_pg_text(&a, art->sha256);
    hs_pg_int(&a, art->bytes);
    hs_pg_text(&a, art->content_type);
    hs_pg_text(&a, art->path);
    hs_pg_text(&a, art->etag);
    hs_pg_text(&a, art->fetched_at);
    hs_pg_id(&a, art->image_id);
    hs_pg_int(&a, seq);
    rc = hs_pg_run(t,
                   "INSERT INTO artifacts (model_id, kind, source_url, sha256, bytes, "
                   "content_type, path, etag, fetched_at, image_id, change_seq) VALUES ($1, $2, "
                   "$3, $4, $5, $6, $7, $8, COALESCE($9::timestamptz, " NOW "), $10, $11) "
                   "ON CONFLICT (model_id, kind) DO UPDATE SET source_url = excluded.source_url, "
                   "sha256 = excluded.sha256, bytes = excluded.bytes, "
                   "content_type = excluded.content_type, path = excluded.path, "
                   "etag = excluded.etag, fetched_at = excluded.fetched_at, "
                   "image_id = excluded.image_id, change_seq = excluded.change_seq "
                   "WHERE artifacts.sha256 IS DISTINCT FROM excluded.sha256",
                   &a, &changes, "storing artifact", err);
    if (rc)
        return rc;
    if (changes > 0) {
        *changed = true;
        return hs_pg_seq_take(t, seq, err);
    }
    *changed = false;
    struct pg_args b = {0};
    hs_pg_int(&b, art->model_id);
    hs_pg_text(&b, art->kind);
    hs_pg_text(&b, art->etag);
    hs_pg_text(&b, art->fetched_at);
    hs_pg_text(&b, art->source_url);
    return hs_pg_run(t,
                     "UPDATE artifacts SET etag = $3, fetched_at = COALESCE($4::timestamptz, " NOW
                     "), source_url = $5 WHERE model_id = $1 AND kind = $2",
                     &b, NULL, "storing artifact", err);
}

static int pg_artifact_put(struct hs_store *base, const struct hs_artifact_row *a, bool *changed,
                           struct hs_error *err)
{
    if (!a || !a->kind || !a->sha256 || !a->path || a->bytes < 0)
        return hs_fail(err, HS_ERR_INVALID, "artifact without kind, sha256, path or size");
    struct pg_txn t;
    bool ch = false;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "artifact_put", err);
    if (rc)
        return rc;
    rc = hs_pg_leave(&t, artifact_write(&t, a, &ch, err), err);
    if (!rc && changed)
        *changed = ch;
    return rc;
}

static int pg_artifact_each(struct hs_store *base,
                            int (*fn)(void *ctx, const struct hs_artifact_row *a), void *ctx,
                            struct hs_error *err)
{
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "artifact_each", err);
    if (rc)
        return rc;
    PGresult *r = NULL;
    rc = hs_pg_exec(&t, "SELECT " ARTIFACT_COLS " FROM artifacts ORDER BY model_id, kind", NULL, &r,
                    "listing artifacts", err);
    for (int i = 0; !rc && i < PQntuples(r); i++) {
        struct hs_artifact_row a = {0};
        artifact_fill(&t, r, i, &a, err);
        int stop = fn(ctx, &a);
        hs_artifact_row_clear(&a);
        if (stop) {
            /* A negative answer is an error to pass on; a positive one just stops. */
            if (stop < 0)
                rc = stop;
            break;
        }
    }
    PQclear(r);
    return hs_pg_leave(&t, rc, err);
}

/* Artifacts of models of jobs in the scope $2 (a text[], NULL: any). */
#define ARTIFACT_IN_SCOPE                                                                          \
    "($2::text[] IS NULL OR model_id IN (SELECT m.id FROM models m JOIN jobs j ON j.id = "         \
    "m.job_id WHERE j.connection_key = ANY($2::text[])))"

static int artifact_find(struct hs_store *base, const char *sql, const char *text, int64_t num,
                         const struct hs_scope *scope, struct hs_artifact_row *out,
                         const char *what, struct hs_error *err)
{
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, what, err);
    if (rc)
        return rc;
    struct hs_artifact_row art = {0};
    char *in = hs_pg_scope_array(scope);
    struct pg_args a = {0};
    if (text)
        hs_pg_text(&a, text);
    else
        hs_pg_int(&a, num);
    hs_pg_text(&a, in);
    rc = hs_pg_one(&t, sql, &a, artifact_fill, &art, what, err);
    if (rc == HS_ERR_NOT_FOUND)
        hs_fail(err, HS_ERR_NOT_FOUND, "no stored artifact with that %s",
                text ? "sha256" : "image id");
    free(in);
    rc = hs_pg_leave(&t, rc, err);
    if (rc)
        hs_artifact_row_clear(&art);
    else
        *out = art;
    return rc;
}

static int pg_artifact_by_sha(struct hs_store *base, const char *sha256,
                              const struct hs_scope *scope, struct hs_artifact_row *out,
                              struct hs_error *err)
{
    if (!sha256)
        return hs_fail(err, HS_ERR_INVALID, "artifact_by_sha without a sha256");
    return artifact_find(base,
                         "SELECT " ARTIFACT_COLS " FROM artifacts WHERE sha256 = $1 "
                         "AND " ARTIFACT_IN_SCOPE " LIMIT 1",
                         sha256, 0, scope, out, "finding artifact by sha256", err);
}

static int pg_artifact_by_image(struct hs_store *base, int64_t image_id,
                                const struct hs_scope *scope, struct hs_artifact_row *out,
                                struct hs_error *err)
{
    if (image_id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "artifact_by_image without an image id");
    return artifact_find(base,
                         "SELECT " ARTIFACT_COLS " FROM artifacts WHERE image_id = $1 "
                         "AND " ARTIFACT_IN_SCOPE " ORDER BY artifacts.fetched_at DESC LIMIT 1",
                         NULL, image_id, scope, out, "finding image", err);
}

static int model_status_fill(struct pg_txn *t, const PGresult *r, int i, void *row,
                             struct hs_error *err)
{
    (void)t;
    (void)err;
    struct hs_model_status *m = row;
    m->model_id = hs_pg_col_int(r, i, 0);
    m->synced_updated_at = hs_pg_col_text(r, i, 1);
    const char *status = hs_pg_col_null(r, i, 2) ? NULL : PQgetvalue(r, i, 2);
    m->has_selection = status && hs_selection_status_parse(status, &m->selection) == HS_OK;
    m->reason = hs_pg_col_text(r, i, 3);
    return HS_OK;
}

static void model_status_clear(void *row)
{
    struct hs_model_status *m = row;
    free(m->synced_updated_at);
    free(m->reason);
}

static int pg_job_models_status(struct hs_store *base, int64_t job_id, struct hs_model_status **out,
                                size_t *n, struct hs_error *err)
{
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "job_models_status", err);
    if (rc)
        return rc;
    void *v = NULL;
    size_t len = 0;
    struct pg_args a = {0};
    hs_pg_int(&a, job_id);
    /* Stored models with their selection, then selections of models not stored yet. */
    rc = hs_pg_rows(&t,
                    "SELECT m.id, m.synced_updated_at, sel.status, sel.reason FROM models m "
                    "LEFT JOIN selections sel ON sel.job_id = m.job_id AND sel.model_id = m.id "
                    "WHERE m.job_id = $1 "
                    "UNION ALL "
                    "SELECT sel.model_id, NULL, sel.status, sel.reason FROM selections sel "
                    "WHERE sel.job_id = $1 AND NOT EXISTS "
                    "(SELECT 1 FROM models m WHERE m.id = sel.model_id AND m.job_id = sel.job_id) "
                    "ORDER BY 1",
                    &a, sizeof(struct hs_model_status), model_status_fill, model_status_clear, &v,
                    &len, "reading model status", err);
    rc = hs_pg_leave(&t, rc, err);
    if (rc) {
        hs_model_statuses_free(v, len);
        return rc;
    }
    *out = v;
    *n = len;
    return HS_OK;
}

static int pg_job_synced_seq(struct hs_store *base, int64_t job_id, int64_t *seq,
                             struct hs_error *err)
{
    if (job_id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "job_synced_seq needs a job id");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "job_synced_seq", err);
    if (rc)
        return rc;
    struct pg_args a = {0};
    hs_pg_int(&a, job_id);
    rc = hs_pg_int1(&t,
                    "SELECT MAX(s) FROM ("
                    "SELECT a.change_seq AS s FROM artifacts a JOIN models m "
                    "ON m.id = a.model_id WHERE m.job_id = $1 "
                    "UNION ALL SELECT x.change_seq FROM measurements x JOIN models m "
                    "ON m.id = x.model_id WHERE m.job_id = $1) u",
                    &a, seq, "reading the job's change sequence", err);
    return hs_pg_leave(&t, rc, err);
}

/* ---- measurements ---- */

static const char *const meas_cols[] = {
    "model_id",           "roof_area_sqft",   "roof_facets",      "predominant_pitch",
    "ridges_ft",          "hips_ft",          "valleys_ft",       "rakes_ft",
    "eaves_ft",           "siding_area_sqft", "facade_area_sqft", "openings_count",
    "openings_area_sqft", "living_area_sqft", "raw_json",
};
#define N_MEAS_COLS (sizeof meas_cols / sizeof meas_cols[0])

static int pg_measurements_put(struct hs_store *base, const struct hs_measurements *m,
                               bool *changed, struct hs_error *err)
{
    if (!m || m->model_id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "measurements without a model id");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "measurements_put", err);
    if (rc)
        return rc;
    int64_t seq = 0, changes = 0;
    rc = hs_pg_seq_peek(&t, &seq, err);
    if (!rc) {
        struct pg_args a = {0};
        hs_pg_int(&a, m->model_id);
        hs_pg_real(&a, m->roof_area_sqft);
        hs_pg_count(&a, m->roof_facets);
        hs_pg_text(&a, m->predominant_pitch);
        hs_pg_real(&a, m->ridges_ft);
        hs_pg_real(&a, m->hips_ft);
        hs_pg_real(&a, m->valleys_ft);
        hs_pg_real(&a, m->rakes_ft);
        hs_pg_real(&a, m->eaves_ft);
        hs_pg_real(&a, m->siding_area_sqft);
        hs_pg_real(&a, m->facade_area_sqft);
        hs_pg_count(&a, m->openings_count);
        hs_pg_real(&a, m->openings_area_sqft);
        hs_pg_real(&a, m->living_area_sqft);
        hs_pg_text(&a, m->raw_json);
        hs_pg_int(&a, seq);
        char *sql = upsert_sql("measurements", meas_cols, N_MEAS_COLS, false);
        rc = hs_pg_run(&t, sql, &a, &changes, "storing measurements", err);
        free(sql);
    }
    if (!rc && changes > 0)
        rc = hs_pg_seq_take(&t, seq, err);
    rc = hs_pg_leave(&t, rc, err);
    if (!rc && changed)
        *changed = changes > 0;
    return rc;
}

/* ---- selections ---- */

static int pg_selection_put(struct hs_store *base, const struct hs_selection *sel,
                            struct hs_error *err)
{
    if (!sel || sel->job_id <= 0 || (unsigned)sel->status > HS_SEL_ERROR)
        return hs_fail(err, HS_ERR_INVALID, "selection without a job id or with a bad status");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "selection_put", err);
    if (rc)
        return rc;
    struct pg_args a = {0};
    hs_pg_int(&a, sel->job_id);
    hs_pg_int(&a, sel->model_id);
    hs_pg_text(&a, sel->connection_key);
    hs_pg_text(&a, hs_selection_status_name(sel->status));
    hs_pg_text(&a, sel->reason);
    /* created_at stays the first selection's: it orders the work queue. A NULL connection_key
     * keeps the one already recorded. */
    rc = hs_pg_run(&t,
                   "INSERT INTO selections (job_id, model_id, connection_key, status, reason, "
                   "created_at, updated_at) VALUES ($1, $2, $3, $4, $5, " NOW ", " NOW
                   ") ON CONFLICT (job_id, model_id) DO UPDATE SET "
                   "connection_key = COALESCE(excluded.connection_key, "
                   "selections.connection_key), status = excluded.status, "
                   "reason = excluded.reason, updated_at = excluded.updated_at",
                   &a, NULL, "storing selection", err);
    return hs_pg_leave(&t, rc, err);
}

static int selection_fill(struct pg_txn *t, const PGresult *r, int i, void *row,
                          struct hs_error *err)
{
    (void)t;
    struct hs_selection *x = row;
    x->job_id = hs_pg_col_int(r, i, 0);
    x->model_id = hs_pg_col_int(r, i, 1);
    x->reason = hs_pg_col_text(r, i, 3);
    x->connection_key = hs_pg_col_text(r, i, 4);
    if (hs_selection_status_parse(PQgetvalue(r, i, 2), &x->status))
        return hs_fail(err, HS_ERR_DB, "selection %lld/%lld has an unknown status",
                       (long long)x->job_id, (long long)x->model_id);
    return HS_OK;
}

static void selection_clear(void *row)
{
    hs_selection_clear(row);
}

static int pg_selections_open(struct hs_store *base, struct hs_selection **out, size_t *n,
                              struct hs_error *err)
{
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "selections_open", err);
    if (rc)
        return rc;
    void *v = NULL;
    size_t len = 0;
    rc = hs_pg_rows(&t,
                    "SELECT job_id, model_id, status, reason, connection_key FROM selections "
                    "WHERE status IN ('selected', 'pending', 'error') "
                    "ORDER BY created_at, job_id, model_id",
                    NULL, sizeof(struct hs_selection), selection_fill, selection_clear, &v, &len,
                    "listing selections", err);
    rc = hs_pg_leave(&t, rc, err);
    if (rc) {
        hs_selections_free(v, len);
        return rc;
    }
    *out = v;
    *n = len;
    return HS_OK;
}

/* ---- runs ---- */

static int pg_run_begin(struct hs_store *base, int64_t job_id, const char *trigger, int64_t *run_id,
                        struct hs_error *err)
{
    if (!trigger)
        return hs_fail(err, HS_ERR_INVALID, "sync run without a trigger");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "run_begin", err);
    if (rc)
        return rc;
    struct pg_args a = {0};
    hs_pg_id(&a, job_id);
    hs_pg_text(&a, trigger);
    int64_t id = 0;
    rc = hs_pg_int1(&t,
                    "INSERT INTO sync_runs (job_id, trigger, status, started_at) "
                    "VALUES ($1, $2, 'running', " NOW ") RETURNING id",
                    &a, &id, "starting sync run", err);
    rc = hs_pg_leave(&t, rc, err);
    if (!rc)
        *run_id = id;
    return rc;
}

static int pg_run_model_result(struct hs_store *base, int64_t run_id, int64_t model_id,
                               const char *result, const char *message, int64_t artifacts_fetched,
                               int64_t artifacts_unchanged, struct hs_error *err)
{
    if (!result)
        return hs_fail(err, HS_ERR_INVALID, "sync result without a result");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "run_model_result", err);
    if (rc)
        return rc;
    struct pg_args a = {0};
    hs_pg_int(&a, run_id);
    hs_pg_int(&a, model_id);
    hs_pg_text(&a, result);
    hs_pg_text(&a, message);
    hs_pg_int(&a, artifacts_fetched);
    hs_pg_int(&a, artifacts_unchanged);
    rc = hs_pg_run(
        &t,
        "INSERT INTO sync_results (run_id, model_id, result, message, "
        "artifacts_fetched, artifacts_unchanged, at) VALUES ($1, $2, $3, $4, $5, $6, " NOW ")",
        &a, NULL, "recording sync result", err);
    return hs_pg_leave(&t, rc, err);
}

static int pg_run_end(struct hs_store *base, int64_t run_id, const char *status,
                      int64_t hover_requests, struct hs_error *err)
{
    if (!status)
        return hs_fail(err, HS_ERR_INVALID, "sync run end without a status");
    return hs_pg_change_by_id(base,
                              "UPDATE sync_runs SET status = $3, hover_requests = $2, "
                              "finished_at = " NOW " WHERE id = $1",
                              run_id, hover_requests, status, "ending sync run", "no sync run %lld",
                              err);
}

static int pg_run_renew(struct hs_store *base, int64_t run_id, int64_t lease_until_ms,
                        struct hs_error *err)
{
    /* A run marked interrupted while its process was stalled becomes running again; a run that
     * ended stays as it ended. */
    struct hs_error e = {0};
    int rc = hs_pg_change_by_id(
        base,
        "UPDATE sync_runs SET lease_until_ms = $2, status = 'running', finished_at = NULL "
        "WHERE id = $1 AND (status = 'running' OR status = 'interrupted')",
        run_id, lease_until_ms, NULL, "renewing sync run", "no running sync run %lld", &e);
    if (rc == HS_ERR_NOT_FOUND)
        return HS_OK;
    if (rc && err)
        *err = e;
    return rc;
}

struct run_tally {
    struct hs_run_counts c;
    int64_t lapsed;
};

static int run_tally_fill(struct pg_txn *t, const PGresult *r, int i, void *row,
                          struct hs_error *err)
{
    (void)t;
    (void)err;
    struct run_tally *x = row;
    x->c.running = hs_pg_col_int(r, i, 0);
    x->c.interrupted = hs_pg_col_int(r, i, 1);
    x->lapsed = hs_pg_col_int(r, i, 2);
    return HS_OK;
}

static int count_runs(struct pg_txn *t, int64_t now_ms, struct run_tally *r, struct hs_error *err)
{
    struct pg_args a = {0};
    hs_pg_int(&a, now_ms);
    struct run_tally got = {0};
    int rc = hs_pg_one(t,
                       "SELECT COUNT(*) FILTER (WHERE status = 'running'), "
                       "COUNT(*) FILTER (WHERE status = 'interrupted'), "
                       "COUNT(*) FILTER (WHERE status = 'running' AND (lease_until_ms IS NULL "
                       "OR lease_until_ms < $1)) FROM sync_runs "
                       "WHERE status IN ('running', 'interrupted')",
                       &a, run_tally_fill, &got, "counting sync runs", err);
    if (!rc) {
        got.c.marked = r->c.marked;
        *r = got;
    }
    return rc;
}

static int pg_runs_interrupt_lapsed(struct hs_store *base, int64_t now_ms,
                                    struct hs_run_counts *out, struct hs_error *err)
{
    struct pg_store *s = hs_pg_of(base);
    struct run_tally r = {0};
    /* A read first: status is polled, and most polls find nothing to mark. */
    struct pg_txn t;
    int rc = hs_pg_enter(s, &t, PG_READ, "runs_interrupt_lapsed", err);
    if (rc)
        return rc;
    rc = hs_pg_leave(&t, count_runs(&t, now_ms, &r, err), err);
    if (rc == HS_OK && r.lapsed > 0) {
        if ((rc = hs_pg_enter(s, &t, PG_WRITE, "runs_interrupt_lapsed", err)))
            return rc;
        struct pg_args a = {0};
        hs_pg_int(&a, now_ms);
        rc = hs_pg_run(&t,
                       "UPDATE sync_runs SET status = 'interrupted', finished_at = " NOW
                       " WHERE status = 'running' AND (lease_until_ms IS NULL OR "
                       "lease_until_ms < $1)",
                       &a, &r.c.marked, "marking lapsed sync runs", err);
        if (!rc)
            rc = count_runs(&t, now_ms, &r, err);
        rc = hs_pg_leave(&t, rc, err);
    }
    if (!rc && out)
        *out = r.c;
    return rc;
}

/* ---- the records feed ---- */

/* A column as JSON, typed as its column; SQL NULL is null. */
static json_t *col_json(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return json_null();
    const char *v = PQgetvalue(r, row, col);
    int64_t i = 0;
    double d = 0;
    json_t *j = NULL;
    switch (PQftype(r, col)) {
    case OID_BOOL:
        j = json_boolean(strcmp(v, "t") == 0);
        break;
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
        j = hs_parse_i64(v, &i) == HS_OK ? json_integer(i) : NULL;
        break;
    case OID_FLOAT4:
    case OID_FLOAT8:
    case OID_NUMERIC:
        j = hs_parse_double(v, &d) == HS_OK ? json_real(d) : NULL;
        break;
    default:
        j = json_string(v); /* the database is UTF-8; jansson refuses anything else (null) */
        break;
    }
    return j ? j : json_null();
}

static void put_cols(json_t *obj, const PGresult *r, int row, int first, const char *const *keys,
                     size_t n)
{
    for (size_t k = 0; k < n; k++)
        json_object_set_new(obj, keys[k], col_json(r, row, first + (int)k));
}

/* Runs a feed query ($1 since, $2 the scope) and appends one object per row made by `make`. */
static int feed_rows(struct pg_txn *t, const char *sql, int64_t since, const char *scope,
                     json_t *arr, json_t *(*make)(const PGresult *r, int row), struct hs_error *err)
{
    struct pg_args a = {0};
    hs_pg_int(&a, since);
    hs_pg_text(&a, scope);
    PGresult *r = NULL;
    int rc = hs_pg_exec(t, sql, &a, &r, "reading the records feed", err);
    for (int i = 0; !rc && i < PQntuples(r); i++)
        json_array_append_new(arr, make(r, i));
    PQclear(r);
    return rc;
}

#define IN_SCOPE(col) "($2::text[] IS NULL OR " col " = ANY($2::text[]))"

static const char FEED_JOBS_SQL[] =
    "SELECT id, name, external_identifier, reconstruction_state, org_id, "
    "address_line1, address_line2, city, region, postal_code, country, latitude, longitude, "
    "customer_name, customer_email, customer_phone, hover_updated_at, change_seq, "
    "disconnected_at "
    "FROM jobs WHERE change_seq > $1 AND " IN_SCOPE("connection_key") " ORDER BY change_seq, id";

static json_t *feed_job(const PGresult *r, int row)
{
    static const char *const top[] = {"id", "name", "external_identifier", "reconstruction_state",
                                      "org_id"};
    static const char *const addr[] = {"line1",       "line2",   "city",     "region",
                                       "postal_code", "country", "latitude", "longitude"};
    static const char *const cust[] = {"name", "email", "phone"};
    static const char *const tail[] = {"hover_updated_at", "change_seq", "disconnected_at"};
    json_t *j = json_object(), *a = json_object(), *c = json_object();
    put_cols(j, r, row, 0, top, 5);
    put_cols(a, r, row, 5, addr, 8);
    put_cols(c, r, row, 13, cust, 3);
    json_object_set_new(j, "address", a);
    json_object_set_new(j, "customer", c);
    put_cols(j, r, row, 16, tail, 3);
    return j;
}

#define FEED_JOB_IN_SCOPE                                                                          \
    "($2::text[] IS NULL OR m.job_id IN (SELECT id FROM jobs WHERE connection_key = "              \
    "ANY($2::text[])))"

/* A model counts as changed when its measurements changed: its sequence is the larger. */
static const char FEED_MODELS_SQL[] =
    "SELECT m.id, m.job_id, m.name, m.state, m.deliverable, m.synced_updated_at, "
    "GREATEST(m.change_seq, COALESCE(x.change_seq, 0)) AS seq, x.model_id, "
    "x.roof_area_sqft, x.roof_facets, x.predominant_pitch, x.ridges_ft, x.hips_ft, x.valleys_ft, "
    "x.rakes_ft, x.eaves_ft, x.siding_area_sqft, x.facade_area_sqft, x.openings_count, "
    "x.openings_area_sqft, x.living_area_sqft "
    "FROM models m LEFT JOIN measurements x ON x.model_id = m.id "
    "WHERE m.id IN (SELECT id FROM models WHERE change_seq > $1 "
    "UNION SELECT model_id FROM measurements WHERE change_seq > $1) "
    "AND " FEED_JOB_IN_SCOPE " ORDER BY seq, m.id";

static json_t *feed_model(const PGresult *r, int row)
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
    put_cols(j, r, row, 0, top, 7);
    if (PQgetisnull(r, row, 7)) {
        json_object_set_new(j, "measurements", json_null());
    } else {
        json_t *m = json_object();
        put_cols(m, r, row, 8, meas, sizeof meas / sizeof meas[0]);
        json_object_set_new(j, "measurements", m);
    }
    return j;
}

static const char FEED_ARTIFACTS_SQL[] =
    "SELECT a.model_id, m.job_id, a.kind, a.sha256, a.bytes, a.content_type, a.path, "
    "a.source_url, " HS_PG_ISO(
        "a.fetched_at") ", a.image_id, a.change_seq "
                        "FROM artifacts a LEFT JOIN models m ON m.id = a.model_id "
                        "WHERE a.change_seq > $1 AND " FEED_JOB_IN_SCOPE
                        " ORDER BY a.change_seq, a.id";

static json_t *feed_artifact(const PGresult *r, int row)
{
    static const char *const keys[] = {"model_id",   "job_id",       "kind",      "sha256",
                                       "bytes",      "content_type", "path",      "source_url",
                                       "fetched_at", "image_id",     "change_seq"};
    json_t *j = json_object();
    put_cols(j, r, row, 0, keys, sizeof keys / sizeof keys[0]);
    return j;
}

static int pg_export_since(struct hs_store *base, int64_t since, const struct hs_scope *scope,
                           char **out, struct hs_error *err)
{
    struct pg_txn t;
    /* One snapshot (REPEATABLE READ): the cursor and the rows agree. */
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "export_since", err);
    if (rc)
        return rc;
    json_t *doc = json_object(), *jobs = json_array(), *models = json_array(),
           *artifacts = json_array();
    char *in = hs_pg_scope_array(scope);
    int64_t max = 0;
    /* The counter is advanced only by a transaction that changed a row: the largest sequence. */
    rc = hs_pg_int1(&t, "SELECT value FROM counters WHERE name = 'change_seq'", NULL, &max,
                    "reading change_seq", err);
    if (!rc)
        rc = feed_rows(&t, FEED_JOBS_SQL, since, in, jobs, feed_job, err);
    if (!rc)
        rc = feed_rows(&t, FEED_MODELS_SQL, since, in, models, feed_model, err);
    if (!rc)
        rc = feed_rows(&t, FEED_ARTIFACTS_SQL, since, in, artifacts, feed_artifact, err);
    free(in);
    rc = hs_pg_leave(&t, rc, err);
    if (!rc) {
        json_object_set_new(doc, "cursor", json_integer(max > since ? max : since));
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

static int pg_checkpoint_get(struct hs_store *base, const char *name, char **value,
                             struct hs_error *err)
{
    if (!name)
        return hs_fail(err, HS_ERR_INVALID, "checkpoint without a name");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "checkpoint_get", err);
    if (rc)
        return rc;
    char *v = NULL;
    struct pg_args a = {0};
    hs_pg_text(&a, name);
    rc = hs_pg_one(&t, "SELECT value FROM checkpoints WHERE name = $1", &a, hs_pg_fill_text, &v,
                   "reading checkpoint", err);
    if (rc == HS_ERR_NOT_FOUND)
        hs_fail(err, HS_ERR_NOT_FOUND, "no checkpoint '%s'", name);
    rc = hs_pg_leave(&t, rc, err);
    if (rc)
        free(v);
    else
        *value = v;
    return rc;
}

static int pg_checkpoint_put(struct hs_store *base, const char *name, const char *value,
                             struct hs_error *err)
{
    if (!name || !value)
        return hs_fail(err, HS_ERR_INVALID, "checkpoint without a name or a value");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "checkpoint_put", err);
    if (rc)
        return rc;
    struct pg_args a = {0};
    hs_pg_text(&a, name);
    hs_pg_text(&a, value);
    rc = hs_pg_run(&t,
                   "INSERT INTO checkpoints (name, value, updated_at) VALUES ($1, $2, " NOW
                   ") ON CONFLICT (name) DO UPDATE SET value = excluded.value, "
                   "updated_at = excluded.updated_at",
                   &a, NULL, "storing checkpoint", err);
    return hs_pg_leave(&t, rc, err);
}

const struct hs_records_ops hs_pg_records_ops = {
    .job_upsert = pg_job_upsert,
    .model_get = pg_model_get,
    .model_mark_synced = pg_model_mark_synced,
    .job_models_status = pg_job_models_status,
    .job_synced_seq = pg_job_synced_seq,
    .artifact_get = pg_artifact_get,
    .artifact_put = pg_artifact_put,
    .artifact_each = pg_artifact_each,
    .artifact_by_sha = pg_artifact_by_sha,
    .artifact_by_image = pg_artifact_by_image,
    .measurements_put = pg_measurements_put,
    .selection_put = pg_selection_put,
    .selections_open = pg_selections_open,
    .run_begin = pg_run_begin,
    .run_model_result = pg_run_model_result,
    .run_end = pg_run_end,
    .run_renew = pg_run_renew,
    .runs_interrupt_lapsed = pg_runs_interrupt_lapsed,
    .export_since = pg_export_since,
    .checkpoint_get = pg_checkpoint_get,
    .checkpoint_put = pg_checkpoint_put,
};
