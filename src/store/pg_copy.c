/* pg_copy.c: whole tables read and written for `store copy` (store/copy.h) on PostgreSQL. The
 * values go as text in SQLite's forms: our timestamps as ISO-8601 UTC with milliseconds, booleans
 * as 0 and 1, numbers as PostgreSQL prints them (the shortest exact decimal), bytea as raw bytes.
 * On the way in, each table's rows go in one COPY, which types each value from its column. A read
 * walks each table with a cursor, so a large table never sits in memory whole. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/mem.h"
#include "store/copy.h"
#include "store/pg_internal.h"

/* Rows fetched from a cursor at a time. */
#define FETCH_ROWS "500"

static char *sql_of(struct hs_buf *b)
{
    return hs_buf_take(b, NULL);
}

/* SELECT of t's columns in copy.h's text forms, in its order. */
static char *select_sql(const struct hs_copy_table *t)
{
    struct hs_buf b;
    hs_buf_init(&b, (size_t)1 << 20);
    int rc = hs_buf_appends(&b, "SELECT ");
    for (size_t i = 0; i < t->n_cols && !rc; i++) {
        const char *c = t->cols[i].name;
        const char *sep = i ? ", " : "";
        switch (t->cols[i].type) {
        case HS_COPY_TIME:
            rc = hs_buf_appendf(&b, "%s" HS_PG_ISO("\"%s\""), sep, c);
            break;
        case HS_COPY_BOOL:
            rc = hs_buf_appendf(&b, "%s\"%s\"::int", sep, c);
            break;
        case HS_COPY_JSON:
        case HS_COPY_REAL:
            rc = hs_buf_appendf(&b, "%s\"%s\"::text", sep, c);
            break;
        default:
            rc = hs_buf_appendf(&b, "%s\"%s\"", sep, c);
            break;
        }
    }
    if (!rc)
        rc = hs_buf_appendf(&b, " FROM \"%s\" ORDER BY %s", t->name, t->pg_order);
    if (rc)
        abort(); /* constants, far under the cap */
    return sql_of(&b);
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* bytea's text form ("\x" and hex) into raw bytes, in place (the result is never longer). */
static int unhex(char *s, size_t *n, struct hs_error *err)
{
    size_t len = strlen(s);
    if (len < 2 || s[0] != '\\' || s[1] != 'x' || len % 2)
        return hs_fail(err, HS_ERR_DB, "a bytea value not in hex form");
    size_t out = 0;
    for (size_t i = 2; i < len; i += 2) {
        int hi = hex_digit(s[i]), lo = hex_digit(s[i + 1]);
        if (hi < 0 || lo < 0)
            return hs_fail(err, HS_ERR_DB, "a bytea value not in hex form");
        s[out++] = (char)(hi * 16 + lo);
    }
    *n = out;
    return HS_OK;
}

/* Gives the rows of one fetch to the sink. */
static int give_rows(PGresult *r, const struct hs_copy_table *t, struct hs_copy_value *v,
                     const struct hs_copy_sink *sink, struct hs_error *err)
{
    int rc = HS_OK;
    for (int row = 0; row < PQntuples(r) && !rc; row++) {
        for (size_t i = 0; i < t->n_cols && !rc; i++) {
            v[i].p = NULL;
            v[i].n = 0;
            if (PQgetisnull(r, row, (int)i))
                continue;
            char *p = PQgetvalue(r, row, (int)i); /* ours until PQclear */
            v[i].p = p;
            v[i].n = (size_t)PQgetlength(r, row, (int)i);
            if (t->cols[i].type == HS_COPY_BYTES)
                rc = unhex(p, &v[i].n, err);
        }
        if (!rc)
            rc = sink->row(sink->arg, v, err);
    }
    return rc;
}

static int read_table(struct pg_txn *t, const struct hs_copy_table *tb,
                      const struct hs_copy_sink *sink, struct hs_error *err)
{
    char *select = select_sql(tb);
    struct hs_buf b;
    hs_buf_init(&b, (size_t)1 << 20);
    if (hs_buf_appendf(&b, "DECLARE hs_copy NO SCROLL CURSOR FOR %s", select))
        abort();
    free(select);
    char *declare = sql_of(&b);
    struct hs_copy_value *v = hs_calloc(tb->n_cols, sizeof *v);
    int rc = sink->table(sink->arg, tb, err);
    if (!rc)
        rc = hs_pg_run(t, declare, NULL, NULL, "reading a table to copy", err);
    bool open = !rc;
    while (!rc) {
        PGresult *r = NULL;
        rc = hs_pg_exec(t, "FETCH " FETCH_ROWS " FROM hs_copy", NULL, &r, "reading a table to copy",
                        err);
        if (rc)
            break;
        int n = PQntuples(r);
        rc = give_rows(r, tb, v, sink, err);
        PQclear(r);
        if (n == 0)
            break;
    }
    if (open)
        (void)hs_pg_run(t, "CLOSE hs_copy", NULL, NULL, "closing a cursor", rc ? NULL : err);
    free(v);
    free(declare);
    return rc;
}

/* The read has a connection of its own, outside the pool: a copy from one PostgreSQL store into
 * another holds the target's transaction in this thread meanwhile, and a thread joins the one
 * transaction it holds (store_pg.c). */
int hs_pg_copy_read(struct hs_store *base, const struct hs_copy_table *tables, size_t n,
                    const struct hs_copy_sink *sink, struct hs_error *err)
{
    struct pg_txn t = {.s = hs_pg_of(base)};
    t.c = PQconnectdb(t.s->conninfo);
    int rc = PQstatus(t.c) == CONNECTION_OK
                 ? HS_OK
                 : hs_pg_fail(t.c, NULL, err, "connecting to PostgreSQL");
    /* Numbers printed exactly (the shortest form that reads back the same, whatever the
     * server's default), text as stored; one snapshot for every table. */
    if (!rc && PQsetClientEncoding(t.c, "UTF8") != 0)
        rc = hs_pg_fail(t.c, NULL, err, "setting the client encoding");
    if (!rc)
        rc = hs_pg_run(&t, "SET extra_float_digits = 3", NULL, NULL, "setting the output", err);
    if (!rc)
        rc = hs_pg_run(&t, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", NULL, NULL,
                       "beginning a read", err);
    for (size_t i = 0; i < n && !rc; i++)
        rc = read_table(&t, &tables[i], sink, err);
    PQfinish(t.c); /* ends the read */
    return rc;
}

int hs_pg_copy_count(struct hs_store *base, const struct hs_copy_table *tb, int64_t *out,
                     struct hs_error *err)
{
    char sql[512];
    (void)snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM \"%s\" WHERE NOT (%s)", tb->name,
                   tb->initial ? tb->initial : "false");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "copy_count", err);
    if (rc)
        return rc;
    rc = hs_pg_int1(&t, sql, NULL, out, "counting rows", err);
    return hs_pg_leave(&t, rc, err);
}

int hs_pg_copy_clear(struct hs_store *base, const struct hs_copy_table *tb, struct hs_error *err)
{
    char sql[256];
    (void)snprintf(sql, sizeof sql, "DELETE FROM \"%s\"", tb->name);
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "copy_clear", err);
    if (rc)
        return rc;
    rc = hs_pg_run(&t, sql, NULL, NULL, "emptying a table", err);
    return hs_pg_leave(&t, rc, err);
}

/* An insertion is one COPY ... FROM STDIN (a round trip per table, not per row), under a
 * savepoint of the thread's transaction. */
struct hs_copy_writer {
    struct pg_txn t;
    const struct hs_copy_table *tb;
    bool copying; /* COPY IN under way */
    struct hs_buf line;
    char what[96]; /* "copying rows into <table>" */
};

/* The message of a failed COPY without its DETAIL and CONTEXT, which quote the row (a token,
 * say): the primary message only. */
static int copy_fail(struct hs_copy_writer *w, const PGresult *r, struct hs_error *err)
{
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    hs_fail(err, HS_ERR_DB, "%s: %s", w->what, msg ? msg : PQerrorMessage(w->t.c));
    return state && strncmp(state, "23", 2) == 0 ? HS_ERR_CONFLICT : HS_ERR_DB;
}

int hs_pg_copy_write_begin(struct hs_store *base, const struct hs_copy_table *tb,
                           struct hs_copy_writer **out, struct hs_error *err)
{
    struct hs_buf b;
    hs_buf_init(&b, (size_t)1 << 20);
    int rc = hs_buf_appendf(&b, "COPY \"%s\" (", tb->name);
    for (size_t i = 0; i < tb->n_cols && !rc; i++)
        rc = hs_buf_appendf(&b, "%s\"%s\"", i ? ", " : "", tb->cols[i].name);
    if (!rc)
        rc = hs_buf_appends(&b, ") FROM STDIN");
    if (rc)
        abort(); /* constants, far under the cap */
    char *sql = sql_of(&b);
    struct hs_copy_writer *w = hs_calloc(1, sizeof *w);
    w->tb = tb;
    /* A row's line: its values, the largest a webhook body or a raw job, twice over for hex. */
    hs_buf_init(&w->line, (size_t)1 << 30);
    (void)snprintf(w->what, sizeof w->what, "copying rows into %s", tb->name);
    rc = hs_pg_enter(hs_pg_of(base), &w->t, PG_WRITE, "copy_write", err);
    if (!rc) {
        PGresult *r = PQexec(w->t.c, sql);
        if (PQresultStatus(r) == PGRES_COPY_IN)
            w->copying = true;
        else
            rc = hs_pg_fail(w->t.c, r, err, w->what);
        PQclear(r);
        if (rc)
            hs_pg_leave(&w->t, rc, NULL);
    }
    free(sql);
    if (rc) {
        hs_buf_free(&w->line);
        free(w);
        return rc;
    }
    *out = w;
    return HS_OK;
}

/* A value in COPY's text form: backslash, tab, newline and carriage return escaped; bytes as
 * bytea's hex form (its backslash escaped in turn). */
static int put_value(struct hs_buf *b, enum hs_copy_type type, const struct hs_copy_value *v)
{
    if (!v->p)
        return hs_buf_appends(b, "\\N");
    int rc = HS_OK;
    if (type == HS_COPY_BYTES) {
        static const char hex[] = "0123456789abcdef";
        rc = hs_buf_appends(b, "\\\\x");
        for (size_t i = 0; i < v->n && !rc; i++) {
            unsigned char c = (unsigned char)v->p[i];
            char two[2] = {hex[c >> 4], hex[c & 15]};
            rc = hs_buf_append(b, two, 2);
        }
        return rc;
    }
    size_t from = 0;
    for (size_t i = 0; i < v->n && !rc; i++) {
        const char *esc = v->p[i] == '\\'   ? "\\\\"
                          : v->p[i] == '\t' ? "\\t"
                          : v->p[i] == '\n' ? "\\n"
                          : v->p[i] == '\r' ? "\\r"
                                            : NULL;
        if (!esc)
            continue;
        rc = hs_buf_append(b, v->p + from, i - from);
        if (!rc)
            rc = hs_buf_appends(b, esc);
        from = i + 1;
    }
    return rc ? rc : hs_buf_append(b, v->p + from, v->n - from);
}

int hs_pg_copy_write_row(struct hs_copy_writer *w, const struct hs_copy_value *v,
                         struct hs_error *err)
{
    hs_buf_reset(&w->line);
    int rc = HS_OK;
    for (size_t i = 0; i < w->tb->n_cols && !rc; i++) {
        if (i)
            rc = hs_buf_append(&w->line, "\t", 1);
        if (!rc)
            rc = put_value(&w->line, w->tb->cols[i].type, &v[i]);
    }
    if (!rc)
        rc = hs_buf_append(&w->line, "\n", 1);
    if (rc)
        return hs_fail(err, HS_ERR_TOOBIG, "%s: a row over the size cap", w->what);
    if (w->line.len > INT32_MAX ||
        PQputCopyData(w->t.c, hs_buf_str(&w->line), (int)w->line.len) != 1)
        return hs_pg_fail(w->t.c, NULL, err, w->what);
    return HS_OK;
}

/* Ends the COPY: its rows are in (ok) or refused; the result of it is PostgreSQL's. */
static int copy_end(struct hs_copy_writer *w, bool ok, struct hs_error *err)
{
    int rc = HS_OK;
    if (PQputCopyEnd(w->t.c, ok ? NULL : "the copy failed") != 1)
        rc = hs_pg_fail(w->t.c, NULL, err, w->what);
    PGresult *r;
    while ((r = PQgetResult(w->t.c)) != NULL) {
        if (!rc && ok && PQresultStatus(r) != PGRES_COMMAND_OK)
            rc = copy_fail(w, r, err);
        PQclear(r);
    }
    w->copying = false;
    return rc;
}

/* The identity column's sequence moved past the copied ids, so that the next row the store
 * writes itself gets a new one. */
static int identity_past(struct hs_copy_writer *w, struct hs_error *err)
{
    char sql[512];
    (void)snprintf(sql, sizeof sql,
                   "SELECT setval(pg_get_serial_sequence('\"%s\"', '%s'), "
                   "COALESCE(MAX(\"%s\"), 0) + 1, false) FROM \"%s\"",
                   w->tb->name, w->tb->identity, w->tb->identity, w->tb->name);
    return hs_pg_run(&w->t, sql, NULL, NULL, "moving an identity past the copied rows", err);
}

int hs_pg_copy_write_end(struct hs_copy_writer *w, int rc, struct hs_error *err)
{
    if (w->copying) {
        int r2 = copy_end(w, rc == HS_OK, rc ? NULL : err);
        rc = rc ? rc : r2;
    }
    if (!rc && w->tb->identity)
        rc = identity_past(w, err);
    rc = hs_pg_leave(&w->t, rc, rc ? NULL : err);
    hs_buf_free(&w->line);
    free(w);
    return rc;
}
