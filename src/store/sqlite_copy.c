/* sqlite_copy.c: whole tables read and written for `store copy` (store/copy.h) on SQLite. Values
 * go as text, typed again on the way in (integers and reals bound as numbers, bytes as blobs),
 * so that a row read back compares equal whichever back-end it went through. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/mem.h"
#include "core/str.h"
#include "store/copy.h"
#include "store/sqlite_internal.h"

/* "c1", "c2", ... of t (quoted: `user` is a keyword elsewhere); prefix and suffix around. */
static char *column_sql(const struct hs_copy_table *t, const char *prefix, const char *suffix,
                        bool params)
{
    struct hs_buf b;
    hs_buf_init(&b, (size_t)1 << 20);
    int rc = hs_buf_appends(&b, prefix);
    for (size_t i = 0; i < t->n_cols && !rc; i++)
        rc = hs_buf_appendf(&b, "%s\"%s\"", i ? ", " : "", t->cols[i].name);
    if (!rc && params) {
        rc = hs_buf_appends(&b, ") VALUES (");
        for (size_t i = 0; i < t->n_cols && !rc; i++)
            rc = hs_buf_appendf(&b, "%s?%zu", i ? ", " : "", i + 1);
        if (!rc)
            rc = hs_buf_appends(&b, ")");
    }
    if (!rc)
        rc = hs_buf_appends(&b, suffix);
    if (rc)
        abort(); /* the names are constants, far under the cap */
    return hs_buf_take(&b, NULL);
}

/* Column i of st as t's column i says, into v (num: room for a formatted number). */
static void read_value(sqlite3_stmt *st, int i, enum hs_copy_type type, struct hs_copy_value *v,
                       char *num, size_t num_n)
{
    int ct = sqlite3_column_type(st, i);
    v->p = NULL;
    v->n = 0;
    if (ct == SQLITE_NULL)
        return;
    if (type == HS_COPY_BYTES) {
        const void *p = sqlite3_column_blob(st, i);
        v->n = (size_t)sqlite3_column_bytes(st, i);
        v->p = p ? p : "";
        return;
    }
    if ((type == HS_COPY_INT || type == HS_COPY_BOOL) && ct == SQLITE_INTEGER) {
        (void)snprintf(num, num_n, "%lld", (long long)sqlite3_column_int64(st, i));
        v->p = num;
    } else if (type == HS_COPY_REAL && (ct == SQLITE_INTEGER || ct == SQLITE_FLOAT)) {
        hs_copy_format_real(sqlite3_column_double(st, i), num, num_n);
        v->p = num;
    } else {
        v->p = (const char *)sqlite3_column_text(st, i);
        v->n = (size_t)sqlite3_column_bytes(st, i);
        return;
    }
    v->n = strlen(v->p);
}

static int read_table(struct sq_txn *t, const struct hs_copy_table *tb,
                      const struct hs_copy_sink *sink, struct hs_error *err)
{
    char *sql = column_sql(tb, "SELECT ", "", false);
    struct hs_buf b;
    hs_buf_init(&b, (size_t)1 << 20);
    if (hs_buf_appendf(&b, "%s FROM \"%s\" ORDER BY rowid", sql, tb->name))
        abort();
    free(sql);
    sql = hs_buf_take(&b, NULL);
    sqlite3_stmt *st = NULL;
    struct hs_copy_value *v = hs_calloc(tb->n_cols, sizeof *v);
    char(*num)[32] = hs_calloc(tb->n_cols, sizeof *num);
    int rc = sink->table(sink->arg, tb, err);
    if (!rc)
        rc = hs_sqlite_prep(t, &st, sql, "reading a table to copy", err);
    while (!rc) {
        int s = sqlite3_step(st);
        if (s == SQLITE_DONE)
            break;
        if (s != SQLITE_ROW) {
            rc = hs_sqlite_fail(t->db, s, err, "reading a table to copy");
            break;
        }
        for (size_t i = 0; i < tb->n_cols; i++)
            read_value(st, (int)i, tb->cols[i].type, &v[i], num[i], sizeof num[i]);
        rc = sink->row(sink->arg, v, err);
    }
    sqlite3_finalize(st);
    free(num);
    free(v);
    free(sql);
    return rc;
}

int hs_sqlite_copy_read(struct hs_store *base, const struct hs_copy_table *tables, size_t n,
                        const struct hs_copy_sink *sink, struct hs_error *err)
{
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "copy_read", err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && !rc; i++)
        rc = read_table(&t, &tables[i], sink, err);
    return hs_sqlite_leave(&t, rc, err);
}

int hs_sqlite_copy_count(struct hs_store *base, const struct hs_copy_table *tb, int64_t *out,
                         struct hs_error *err)
{
    char sql[512];
    (void)snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM \"%s\" WHERE NOT (%s)", tb->name,
                   tb->initial ? tb->initial : "0");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "copy_count", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(&t, &st, sql, "counting rows", err);
    if (!rc)
        rc = hs_sqlite_int(&t, st, out, "counting rows", err);
    return hs_sqlite_leave(&t, rc, err);
}

int hs_sqlite_copy_clear(struct hs_store *base, const struct hs_copy_table *tb,
                         struct hs_error *err)
{
    char sql[256];
    (void)snprintf(sql, sizeof sql, "DELETE FROM \"%s\"", tb->name);
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "copy_clear", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(&t, &st, sql, "emptying a table", err);
    if (!rc)
        rc = hs_sqlite_run(&t, st, NULL, "emptying a table", err);
    return hs_sqlite_leave(&t, rc, err);
}

struct hs_copy_writer {
    struct sq_txn t;
    const struct hs_copy_table *tb;
    sqlite3_stmt *st;
    char what[96]; /* "copying a row into <table>" */
};

int hs_sqlite_copy_write_begin(struct hs_store *base, const struct hs_copy_table *tb,
                               struct hs_copy_writer **out, struct hs_error *err)
{
    struct hs_copy_writer *w = hs_calloc(1, sizeof *w);
    w->tb = tb;
    (void)snprintf(w->what, sizeof w->what, "copying a row into %s", tb->name);
    char prefix[128];
    (void)snprintf(prefix, sizeof prefix, "INSERT INTO \"%s\" (", tb->name);
    char *sql = column_sql(tb, prefix, "", true);
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &w->t, SQ_WRITE, "copy_write", err);
    if (!rc) {
        rc = hs_sqlite_prep(&w->t, &w->st, sql, "copying rows", err);
        if (rc)
            hs_sqlite_leave(&w->t, rc, NULL);
    }
    free(sql);
    if (rc) {
        free(w);
        return rc;
    }
    *out = w;
    return HS_OK;
}

static int bind_value(sqlite3_stmt *st, int i, enum hs_copy_type type,
                      const struct hs_copy_value *v, struct hs_error *err)
{
    if (!v->p)
        return sqlite3_bind_null(st, i);
    if (v->n > INT32_MAX)
        return hs_fail(err, HS_ERR_TOOBIG, "a value of %zu bytes", v->n);
    int64_t n = 0;
    double d = 0;
    switch (type) {
    case HS_COPY_BYTES:
        return sqlite3_bind_blob(st, i, v->p, (int)v->n, SQLITE_STATIC);
    case HS_COPY_INT:
    case HS_COPY_BOOL:
        if (hs_parse_i64(v->p, &n) == HS_OK)
            return sqlite3_bind_int64(st, i, n);
        break;
    case HS_COPY_REAL:
        if (hs_parse_double(v->p, &d) == HS_OK)
            return sqlite3_bind_double(st, i, d);
        break;
    default:
        break;
    }
    return sqlite3_bind_text(st, i, v->p, (int)v->n, SQLITE_STATIC);
}

int hs_sqlite_copy_write_row(struct hs_copy_writer *w, const struct hs_copy_value *v,
                             struct hs_error *err)
{
    int rc = HS_OK;
    sqlite3_reset(w->st);
    sqlite3_clear_bindings(w->st);
    for (size_t i = 0; i < w->tb->n_cols && !rc; i++) {
        int s = bind_value(w->st, (int)i + 1, w->tb->cols[i].type, &v[i], err);
        if (s < 0)
            rc = s;
        else if (s != SQLITE_OK)
            rc = hs_sqlite_fail(w->t.db, s, err, w->what);
    }
    if (rc)
        return rc;
    int s = sqlite3_step(w->st);
    if (s != SQLITE_DONE)
        rc = hs_sqlite_fail(w->t.db, s, err, w->what);
    return rc;
}

int hs_sqlite_copy_write_end(struct hs_copy_writer *w, int rc, struct hs_error *err)
{
    sqlite3_finalize(w->st);
    rc = hs_sqlite_leave(&w->t, rc, rc ? NULL : err);
    free(w);
    return rc;
}
