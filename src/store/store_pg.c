/* store_pg.c: the PostgreSQL back-end of the store (store.h), through libpq, for installations
 * whose processes run on several machines.
 *
 * A small pool of connections per store handle; every operation of every concern enters its
 * transaction through hs_pg_enter and leaves it through hs_pg_leave (pg_internal.h), and reads
 * its rows through the helpers below; the concerns' SQL is in the pg_*.c files. Migrations run
 * at open in one transaction under an advisory lock, so instances starting together migrate
 * once. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "store/migrations.h"
#include "store/pg.h"
#include "store/pg_internal.h"

/* The advisory lock of migrations (any constant; "hvsync" in ASCII). */
#define MIGRATION_LOCK "126905437730403"

/* ---- errors ---- */

/* The one place SQLSTATEs become hs_err: integrity violations are conflicts, serialization
 * failures, deadlocks and lock timeouts are "try later", the rest (a lost connection too) is a
 * database error. */
static hs_err code_of(const char *state)
{
    if (!state)
        return HS_ERR_DB;
    if (strncmp(state, "23", 2) == 0)
        return HS_ERR_CONFLICT;
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0)
        return HS_ERR_BUSY;
    return HS_ERR_DB;
}

int hs_pg_fail(PGconn *c, const PGresult *r, struct hs_error *err, const char *what)
{
    const char *msg = r ? PQresultErrorMessage(r) : NULL;
    if (!msg || !*msg)
        msg = c ? PQerrorMessage(c) : "no connection";
    size_t len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
        len--;
    return hs_fail(err, code_of(r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL), "%s: %.*s",
                   what, (int)len, msg);
}

/* Runs SQL without parameters (BEGIN, COMMIT, SAVEPOINT, a migration's statements). */
static int exec_plain(PGconn *c, const char *sql, const char *what, struct hs_error *err)
{
    PGresult *r = PQexec(c, sql);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK
                 ? HS_OK
                 : hs_pg_fail(c, r, err, what);
    PQclear(r);
    return rc;
}

/* COMMIT; PostgreSQL answers a COMMIT of a failed transaction with a ROLLBACK, which is a
 * failure here. */
static int commit(PGconn *c, struct hs_error *err)
{
    PGresult *r = PQexec(c, "COMMIT");
    int rc = HS_OK;
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = hs_pg_fail(c, r, err, "committing");
    else if (strcmp(PQcmdStatus(r), "COMMIT") != 0)
        rc = hs_fail(err, HS_ERR_DB,
                     "committing: a statement of the transaction failed, it was "
                     "rolled back");
    PQclear(r);
    return rc;
}

/* ---- the pool ---- */

static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message; /* NOTICEs ("already exists, skipping") are not ours to print */
}

static int conn_open(struct pg_store *s, struct pg_conn *pc, struct hs_error *err)
{
    pc->c = PQconnectdb(s->conninfo);
    if (!pc->c || PQstatus(pc->c) != CONNECTION_OK) {
        int rc = hs_pg_fail(pc->c, NULL, err, "cannot connect to PostgreSQL");
        PQfinish(pc->c);
        pc->c = NULL;
        return rc;
    }
    PQsetNoticeProcessor(pc->c, quiet, NULL);
    return HS_OK;
}

int hs_pg_connect(struct pg_store *s, PGconn **out, struct hs_error *err)
{
    struct pg_conn pc = {0};
    int rc = conn_open(s, &pc, err);
    if (!rc)
        *out = pc.c;
    return rc;
}

/* A free connection, opening one when none is free and the pool is not full, else waiting. */
static int pool_take(struct pg_store *s, struct pg_conn **out, struct hs_error *err)
{
    int rc = HS_OK;
    pthread_mutex_lock(&s->pool_lock);
    while (!s->free_conns && s->n_open == HS_PG_CONNS)
        pthread_cond_wait(&s->pool_cond, &s->pool_lock);
    struct pg_conn *pc = s->free_conns;
    if (pc) {
        s->free_conns = pc->next;
    } else {
        pc = &s->conns[s->n_open];
        rc = conn_open(s, pc, err);
        if (!rc)
            s->n_open++;
    }
    pthread_mutex_unlock(&s->pool_lock);
    if (!rc) {
        pc->txn_seq = 0;
        pc->user_txn = false;
        *out = pc;
    }
    return rc;
}

static void pool_give(struct pg_store *s, struct pg_conn *pc)
{
    pthread_mutex_lock(&s->pool_lock);
    pc->next = s->free_conns;
    s->free_conns = pc;
    pthread_cond_signal(&s->pool_cond);
    pthread_mutex_unlock(&s->pool_lock);
}

/* BEGINs on pc. A connection that died since its last use (PostgreSQL restarted, a failover) is
 * reset and the BEGIN tried once more: nothing of the transaction had run yet. */
static int conn_begin(struct pg_conn *pc, const char *sql, struct hs_error *err)
{
    for (int attempt = 0;; attempt++) {
        PGresult *r = PQexec(pc->c, sql);
        if (PQresultStatus(r) == PGRES_COMMAND_OK) {
            PQclear(r);
            return HS_OK;
        }
        if (attempt > 0 || PQstatus(pc->c) != CONNECTION_BAD) {
            int rc = hs_pg_fail(pc->c, r, err, "beginning a transaction");
            PQclear(r);
            return rc;
        }
        PQclear(r);
        hs_warn("store=postgresql msg=\"connection lost, reconnecting\"");
        PQreset(pc->c);
        if (PQstatus(pc->c) != CONNECTION_OK)
            return hs_pg_fail(pc->c, NULL, err, "reconnecting to PostgreSQL");
        PQsetNoticeProcessor(pc->c, quiet, NULL);
    }
}

/* ---- the one way into a transaction ---- */

/* The connection this thread holds (a transaction of the interface, or an operation's own), so
 * that an operation called inside it joins it instead of taking another. */
static _Thread_local struct pg_conn *my_conn;
static _Thread_local const struct pg_store *my_store;
static _Thread_local bool my_write;                       /* the held transaction may write */
static _Thread_local const struct pg_store *my_key_owner; /* holds key_lock exclusively */

int hs_pg_key_exclusive(struct pg_store *s, bool on)
{
    if (on && my_conn && my_store == s)
        return HS_ERR_INTERNAL; /* its shared hold would never end */
    if (on) {
        pthread_rwlock_wrlock(&s->key_lock);
        my_key_owner = s;
    } else {
        my_key_owner = NULL;
        pthread_rwlock_unlock(&s->key_lock);
    }
    return HS_OK;
}

static void key_shared(struct pg_store *s, bool on)
{
    if (my_key_owner == s)
        return;
    if (on)
        pthread_rwlock_rdlock(&s->key_lock);
    else
        pthread_rwlock_unlock(&s->key_lock);
}

static int join(struct pg_txn *t, enum pg_mode mode, const char *what, struct hs_error *err)
{
    t->conn = my_conn;
    t->c = my_conn->c;
    if (mode == PG_WRITE_ALONE)
        return hs_fail(err, HS_ERR_INTERNAL, "%s called inside a store transaction", what);
    if (mode == PG_READ)
        return HS_OK; /* sees the transaction's own writes */
    if (!my_write)
        return hs_fail(err, HS_ERR_INTERNAL, "%s called inside a read", what);
    t->seq_before = my_conn->txn_seq;
    return exec_plain(t->c, "SAVEPOINT hs_op", what, err);
}

int hs_pg_enter(struct pg_store *s, struct pg_txn *t, enum pg_mode mode, const char *what,
                struct hs_error *err)
{
    memset(t, 0, sizeof *t);
    t->s = s;
    t->write = mode != PG_READ;
    if (my_conn && my_store == s)
        return join(t, mode, what, err);
    key_shared(s, true);
    int rc = pool_take(s, &t->conn, err);
    if (!rc) {
        /* A read sees one snapshot for all its statements (the feed's cursor and its rows). */
        rc = conn_begin(
            t->conn, t->write ? "BEGIN" : "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err);
        if (rc)
            pool_give(s, t->conn);
    }
    if (rc) {
        key_shared(s, false);
        t->conn = NULL;
        return rc;
    }
    t->c = t->conn->c;
    t->own = true;
    t->conn->outer_conn = my_conn;
    t->conn->outer_store = my_store;
    t->conn->outer_write = my_write;
    my_conn = t->conn;
    my_store = s;
    my_write = t->write;
    return HS_OK;
}

int hs_pg_leave(struct pg_txn *t, int rc, struct hs_error *err)
{
    if (!t->own) {
        if (!t->write)
            return rc;
        if (rc) {
            exec_plain(t->c, "ROLLBACK TO SAVEPOINT hs_op", "rolling back", NULL);
            t->conn->txn_seq = t->seq_before; /* the counter's update was undone too */
        }
        int r2 =
            exec_plain(t->c, "RELEASE SAVEPOINT hs_op", "releasing a savepoint", rc ? NULL : err);
        return rc ? rc : r2;
    }
    if (!rc)
        rc = commit(t->c, err);
    else
        exec_plain(t->c, "ROLLBACK", "rolling back", NULL);
    t->conn->txn_seq = 0;
    my_conn = t->conn->outer_conn;
    my_store = t->conn->outer_store;
    my_write = t->conn->outer_write;
    t->conn->outer_conn = NULL;
    t->conn->outer_store = NULL;
    pool_give(t->s, t->conn);
    key_shared(t->s, false);
    t->conn = NULL;
    return rc;
}

/* ---- the store interface's transactions ---- */

static int pg_begin(struct hs_store *base, struct hs_error *err)
{
    struct pg_store *s = hs_pg_of(base);
    if (my_conn && my_store == s)
        return hs_fail(err, HS_ERR_INTERNAL, "begin: this thread already has a transaction open");
    struct pg_txn t;
    int rc = hs_pg_enter(s, &t, PG_WRITE, "begin", err);
    if (!rc)
        t.conn->user_txn = true;
    return rc;
}

static int pg_begin_lazy(struct hs_store *base, struct hs_error *err)
{
    int rc = pg_begin(base, err);
    if (rc == HS_OK) {
        struct pg_txn t = {.s = hs_pg_of(base), .conn = my_conn, .c = my_conn->c, .write = true};
        rc = hs_pg_exec(&t, "SET LOCAL synchronous_commit TO OFF", NULL, NULL, "begin", err);
        if (rc)
            base->ops->rollback(base);
    }
    return rc;
}

/* The thread's transaction of the interface as a pg_txn of its own, to leave; NULL when the
 * thread has none. */
static bool user_txn(struct pg_store *s, struct pg_txn *t)
{
    if (!my_conn || my_store != s || !my_conn->user_txn)
        return false;
    *t = (struct pg_txn){.s = s, .conn = my_conn, .c = my_conn->c, .own = true, .write = true};
    my_conn->user_txn = false;
    return true;
}

/* A failed COMMIT rolls back: the transaction is over either way. */
static int pg_commit(struct hs_store *base, struct hs_error *err)
{
    struct pg_txn t;
    if (!user_txn(hs_pg_of(base), &t))
        return hs_fail(err, HS_ERR_INTERNAL, "commit without begin");
    return hs_pg_leave(&t, HS_OK, err);
}

static void pg_rollback(struct hs_store *base)
{
    struct pg_txn t;
    if (user_txn(hs_pg_of(base), &t)) /* nothing open: callers may roll back on any error */
        hs_pg_leave(&t, HS_ERR_INTERNAL, NULL);
}

/* ---- parameters ---- */

static void arg(struct pg_args *a, const char *v, int len, int fmt)
{
    if (a->n >= HS_PG_MAX_ARGS)
        abort(); /* the statements are constants with fewer parameters */
    a->v[a->n] = v;
    a->len[a->n] = len;
    a->fmt[a->n] = fmt;
    a->n++;
}

void hs_pg_text(struct pg_args *a, const char *v)
{
    arg(a, v, 0, 0);
}

void hs_pg_int(struct pg_args *a, int64_t v)
{
    char *num = a->num[a->n < HS_PG_MAX_ARGS ? a->n : 0];
    (void)snprintf(num, sizeof a->num[0], "%lld", (long long)v);
    arg(a, num, 0, 0);
}

void hs_pg_id(struct pg_args *a, int64_t v)
{
    if (v > 0)
        hs_pg_int(a, v);
    else
        arg(a, NULL, 0, 0);
}

void hs_pg_count(struct pg_args *a, int64_t v)
{
    if (v >= 0)
        hs_pg_int(a, v);
    else
        arg(a, NULL, 0, 0);
}

/* The shortest text that reads back as the same double (numeric columns keep what is sent). */
void hs_pg_real(struct pg_args *a, double v)
{
    if (!isfinite(v)) {
        arg(a, NULL, 0, 0);
        return;
    }
    char *num = a->num[a->n < HS_PG_MAX_ARGS ? a->n : 0];
    for (int prec = 15; prec <= 17; prec++) {
        (void)snprintf(num, sizeof a->num[0], "%.*g", prec, v);
        double back = 0;
        if (hs_parse_double(num, &back) == HS_OK && back == v)
            break;
    }
    arg(a, num, 0, 0);
}

void hs_pg_bool(struct pg_args *a, bool v)
{
    arg(a, v ? "t" : "f", 0, 0);
}

void hs_pg_bytes(struct pg_args *a, const void *p, size_t n)
{
    arg(a, n ? (const char *)p : "", (int)n, 1);
}

char *hs_pg_scope_array(const struct hs_scope *scope)
{
    if (!scope)
        return NULL;
    struct hs_buf b;
    hs_buf_init(&b, (size_t)1 << 30);
    int rc = hs_buf_appends(&b, "{");
    size_t had = 0;
    for (size_t i = 0; i < scope->n && !rc; i++) {
        if (!scope->keys[i])
            continue;
        rc = hs_buf_appends(&b, had++ ? ",\"" : "\"");
        for (const char *p = scope->keys[i]; *p && !rc; p++) {
            if (*p == '"' || *p == '\\')
                rc = hs_buf_append(&b, "\\", 1);
            if (!rc)
                rc = hs_buf_append(&b, p, 1);
        }
        if (!rc)
            rc = hs_buf_appends(&b, "\"");
    }
    if (!rc)
        rc = hs_buf_appends(&b, "}");
    if (rc)
        abort(); /* no cap on this buffer */
    return hs_buf_take(&b, NULL);
}

/* ---- statements and the row collector ---- */

int hs_pg_exec(struct pg_txn *t, const char *sql, const struct pg_args *a, PGresult **res,
               const char *what, struct hs_error *err)
{
    PGresult *r = PQexecParams(t->c, sql, a ? a->n : 0, a ? a->type : NULL, a ? a->v : NULL,
                               a ? a->len : NULL, a ? a->fmt : NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        int rc = hs_pg_fail(t->c, r, err, what);
        PQclear(r);
        return rc;
    }
    if (res)
        *res = r;
    else
        PQclear(r);
    return HS_OK;
}

int hs_pg_run(struct pg_txn *t, const char *sql, const struct pg_args *a, int64_t *changes,
              const char *what, struct hs_error *err)
{
    PGresult *r = NULL;
    int rc = hs_pg_exec(t, sql, a, &r, what, err);
    if (!rc && changes) {
        const char *n = PQcmdTuples(r);
        if (!n || !*n || hs_parse_i64(n, changes) != HS_OK)
            *changes = 0;
    }
    PQclear(r);
    return rc;
}

int hs_pg_int1(struct pg_txn *t, const char *sql, const struct pg_args *a, int64_t *out,
               const char *what, struct hs_error *err)
{
    PGresult *r = NULL;
    int rc = hs_pg_exec(t, sql, a, &r, what, err);
    if (!rc)
        *out = PQntuples(r) > 0 ? hs_pg_col_int(r, 0, 0) : 0;
    PQclear(r);
    return rc;
}

int hs_pg_one(struct pg_txn *t, const char *sql, const struct pg_args *a, hs_pg_fill_fn fill,
              void *row, const char *what, struct hs_error *err)
{
    PGresult *r = NULL;
    int rc = hs_pg_exec(t, sql, a, &r, what, err);
    if (!rc)
        rc = PQntuples(r) > 0 ? fill(t, r, 0, row, err) : HS_ERR_NOT_FOUND;
    PQclear(r);
    return rc;
}

int hs_pg_rows(struct pg_txn *t, const char *sql, const struct pg_args *a, size_t elem,
               hs_pg_fill_fn fill, void (*clear)(void *row), void **out, size_t *n,
               const char *what, struct hs_error *err)
{
    PGresult *r = NULL;
    int rc = hs_pg_exec(t, sql, a, &r, what, err);
    if (rc)
        return rc;
    size_t len = (size_t)PQntuples(r), done = 0;
    unsigned char *v = len ? hs_calloc(len, elem) : NULL;
    for (; done < len && !rc; done++)
        rc = fill(t, r, (int)done, v + done * elem, err);
    PQclear(r);
    if (rc) {
        for (size_t i = 0; clear && i < done; i++)
            clear(v + i * elem);
        free(v);
        return rc;
    }
    *out = v;
    *n = len;
    return HS_OK;
}

int hs_pg_fill_text(struct pg_txn *t, const PGresult *r, int row, void *out, struct hs_error *err)
{
    (void)t;
    (void)err;
    *(char **)out = hs_pg_col_text(r, row, 0);
    return HS_OK;
}

void hs_pg_clear_text(void *row)
{
    free(*(char **)row);
}

int hs_pg_change_by_id(struct hs_store *base, const char *sql, int64_t id, int64_t num,
                       const char *text, const char *what, const char *missing,
                       struct hs_error *err)
{
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, what, err);
    if (rc)
        return rc;
    /* Typed, so that a statement may leave $2 or $3 out. */
    struct pg_args a = {.type = {20, 20, 25}}; /* bigint, bigint, text */
    hs_pg_int(&a, id);
    hs_pg_int(&a, num);
    hs_pg_text(&a, text);
    int64_t changes = 0;
    rc = hs_pg_run(&t, sql, &a, &changes, what, err);
    if (!rc && changes == 0)
        rc = hs_fail(err, HS_ERR_NOT_FOUND, missing, (long long)id);
    return hs_pg_leave(&t, rc, err);
}

char *hs_pg_col_text(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : hs_strdup(PQgetvalue(r, row, col));
}

int64_t hs_pg_col_int(const PGresult *r, int row, int col)
{
    int64_t v = 0;
    if (PQgetisnull(r, row, col))
        return 0;
    const char *s = PQgetvalue(r, row, col);
    if (strcmp(s, "t") == 0)
        return 1;
    if (hs_parse_i64(s, &v) != HS_OK)
        v = 0;
    return v;
}

bool hs_pg_col_null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) != 0;
}

/* ---- migrations ---- */

static int schema_version(PGconn *c, int *out, struct hs_error *err)
{
    PGresult *r = PQexec(c, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
    int rc = HS_OK;
    int64_t v = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        rc = hs_pg_fail(c, r, err, "reading schema version");
    else if (hs_parse_i64(PQgetvalue(r, 0, 0), &v) != HS_OK)
        rc = hs_fail(err, HS_ERR_DB, "reading schema version: not a number");
    PQclear(r);
    *out = (int)v;
    return rc;
}

/* Whether the migration of version is recorded: versions are given out ahead to changes made
 * side by side, so a store may have later ones and miss an earlier one; it is applied then. */
static int migration_recorded(PGconn *c, int version, bool *yes, struct hs_error *err)
{
    char v[16];
    (void)snprintf(v, sizeof v, "%d", version);
    const char *args[1] = {v};
    PGresult *r = PQexecParams(c, "SELECT COUNT(*) FROM schema_migrations WHERE version = $1", 1,
                               NULL, args, NULL, NULL, 0);
    int rc = HS_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        rc = hs_pg_fail(c, r, err, "reading schema version");
    else
        *yes = strcmp(PQgetvalue(r, 0, 0), "0") != 0;
    PQclear(r);
    return rc;
}

static int migration_apply(PGconn *c, const struct hs_migration *m, struct hs_error *err)
{
    int rc = exec_plain(c, m->sql, "applying a migration", err);
    if (rc)
        return rc;
    char version[16];
    (void)snprintf(version, sizeof version, "%d", m->version);
    const char *v[2] = {version, m->name};
    PGresult *r = PQexecParams(c, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                               2, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = hs_pg_fail(c, r, err, "recording migration");
    PQclear(r);
    return rc;
}

/* Every pending migration in one transaction under the advisory lock: an instance that starts
 * while another migrates waits for it, then finds nothing left to do (PostgreSQL's DDL is
 * transactional, so a failed migration leaves nothing behind). */
static int migrate_locked(PGconn *c, bool must_exist, struct hs_error *err)
{
    if (must_exist) { /* nothing created in a database without our schema */
        PGresult *r = PQexec(c, "SELECT to_regclass('schema_migrations') IS NULL");
        int rc = PQresultStatus(r) == PGRES_TUPLES_OK ? HS_OK
                                                      : hs_pg_fail(c, r, err, "reading the schema");
        bool missing = !rc && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
        PQclear(r);
        if (missing)
            rc = hs_fail(err, HS_ERR_NOT_FOUND, "the database holds no hoversync store");
        if (rc)
            return rc;
    }
    int rc = exec_plain(c,
                        "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK ");"
                        "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY "
                        "KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                        "locking the schema", err);
    int have = 0;
    if (!rc)
        rc = schema_version(c, &have, err);
    if (rc)
        return rc;
    int latest = hs_pg_migrations[hs_pg_migrations_count - 1].version;
    if (have > latest)
        return hs_fail(err, HS_ERR_DB,
                       "database schema version %d is newer than this hoversync (%d): upgrade "
                       "hoversync",
                       have, latest);
    for (int i = 0; i < hs_pg_migrations_count && !rc; i++) {
        const struct hs_migration *m = &hs_pg_migrations[i];
        bool recorded = m->version <= have;
        if (recorded && (rc = migration_recorded(c, m->version, &recorded, err)))
            break;
        if (recorded)
            continue;
        if (!(rc = migration_apply(c, m, err)))
            hs_info("store=postgresql msg=\"applied migration\" version=%d name=\"%s\"", m->version,
                    m->name);
    }
    return rc;
}

static int migrate(struct pg_store *s, bool must_exist, struct hs_error *err)
{
    struct pg_conn *pc = NULL;
    int rc = pool_take(s, &pc, err);
    if (rc)
        return rc;
    rc = conn_begin(pc, "BEGIN", err);
    if (!rc) {
        rc = migrate_locked(pc->c, must_exist, err);
        if (!rc)
            rc = commit(pc->c, err);
        else
            exec_plain(pc->c, "ROLLBACK", "rolling back", NULL);
    }
    pool_give(s, pc);
    return rc;
}

/* ---- open and close ---- */

static void pg_close(struct hs_store *base)
{
    struct pg_store *s = hs_pg_of(base);
    for (int i = 0; i < s->n_open; i++)
        PQfinish(s->conns[i].c);
    PQfinish(s->listen);
    hs_secret_key_clear(s->key);
    free(s->key);
    free(s->conninfo);
    pthread_mutex_destroy(&s->pool_lock);
    pthread_cond_destroy(&s->pool_cond);
    pthread_rwlock_destroy(&s->key_lock);
    pthread_mutex_destroy(&s->listen_lock);
    free(s);
}

static const struct hs_store_ops pg_ops = {
    .name = "postgresql",
    .close = pg_close,
    .begin = pg_begin,
    .begin_lazy = pg_begin_lazy,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .secrets_rekey = hs_pg_secrets_rekey,
    .copy_read = hs_pg_copy_read,
    .copy_count = hs_pg_copy_count,
    .copy_clear = hs_pg_copy_clear,
    .copy_write_begin = hs_pg_copy_write_begin,
    .copy_write_row = hs_pg_copy_write_row,
    .copy_write_end = hs_pg_copy_write_end,
};

bool hs_store_is_pg_url(const char *location)
{
    return location && (strncmp(location, "postgresql://", 13) == 0 ||
                        strncmp(location, "postgres://", 11) == 0);
}

/* Whether url carries a password: "scheme://user:password@host" or a password parameter. */
static bool url_has_password(const char *url)
{
    const char *auth = strstr(url, "://");
    auth = auth ? auth + 3 : url;
    size_t len = strcspn(auth, "/?");
    const char *at = memchr(auth, '@', len);
    if (at && memchr(auth, ':', (size_t)(at - auth)))
        return true;
    const char *q = strchr(url, '?');
    return q && (strstr(q, "?password=") || strstr(q, "&password="));
}

int hs_store_open_pg(const char *url, const struct hs_store_options *o, struct hs_store **out,
                     struct hs_error *err)
{
    if (url_has_password(url))
        return hs_fail(err, HS_ERR_INVALID,
                       "the PostgreSQL URL holds a password: put it in PGPASSWORD, PGPASSFILE "
                       "(~/.pgpass) or a service file, never in --db or HOVERSYNC_DB");
    struct hs_secret_key *key = NULL;
    if (o && o->encryption_key && *o->encryption_key) {
        key = hs_calloc(1, sizeof *key);
        int rc = hs_secret_key_parse(o->encryption_key, key, err);
        if (rc) {
            free(key);
            return rc;
        }
    }
    struct pg_store *s = hs_calloc(1, sizeof *s);
    s->base = (struct hs_store){
        .ops = &pg_ops,
        .tokens = &hs_pg_token_ops,
        .records = &hs_pg_records_ops,
        .search = &hs_pg_search_ops,
        .service = &hs_pg_service_ops,
        .webhooks = &hs_pg_webhook_ops,
        .work = &hs_pg_work_ops,
        .outbox = &hs_pg_outbox_ops,
        .policies = &hs_pg_policy_ops,
        .budget = &hs_pg_budget_ops,
        .retention = &hs_pg_retention_ops,
    };
    s->conninfo = hs_strdup(url);
    pthread_mutex_init(&s->pool_lock, NULL);
    pthread_cond_init(&s->pool_cond, NULL);
    pthread_rwlock_init(&s->key_lock, NULL);
    pthread_mutex_init(&s->listen_lock, NULL);
    int rc = migrate(s, o && o->must_exist, err);
    if (!rc)
        rc = hs_pg_key_check(s, key, err);
    if (!rc)
        rc = hs_store_complete(&s->base, err);
    if (rc) {
        hs_secret_key_clear(key);
        free(key);
        pg_close(&s->base);
        return rc;
    }
    s->key = key;
    *out = &s->base;
    return HS_OK;
}
