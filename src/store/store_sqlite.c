/* store_sqlite.c: the SQLite back-end of the store (store.h), the default.
 *
 * One file in WAL mode, synchronous=FULL so that a committed row survives a power cut. Writes go
 * through one writer connection under a mutex held for the whole write transaction; reads take a
 * read-only connection of a small pool and run beside the writer (sqlite_internal.h). Every
 * operation of every concern enters its transaction through hs_sqlite_enter and leaves it
 * through hs_sqlite_leave, and reads its rows through the helpers below; the concerns' SQL is
 * in the sqlite_*.c files. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "store/migrations.h"
#include "store/sqlite.h"
#include "store/sqlite_internal.h"

/* A write waits at most this long for another process's write transaction. */
#define BUSY_TIMEOUT_MS 90000
/* How much of the file a reader maps at most (the rest is read as usual). */
#define READER_MMAP_BYTES "1073741824"

/* The one place SQLite result codes become hs_err. */
static hs_err code_of(int rc)
{
    switch (rc & 0xff) { /* the primary code of an extended one */
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return HS_ERR_BUSY;
    case SQLITE_CONSTRAINT:
        return HS_ERR_CONFLICT;
    default:
        return HS_ERR_DB;
    }
}

int hs_sqlite_fail(sqlite3 *db, int rc, struct hs_error *err, const char *what)
{
    return hs_fail(err, code_of(rc), "%s: %s", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

int hs_sqlite_exec(sqlite3 *db, const char *sql, struct hs_error *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        int r = hs_fail(err, code_of(rc), "%s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return r;
    }
    return HS_OK;
}

/* ---- statements kept prepared (sqlite_internal.h) ---- */

/* The kept set of the connection db of s (the writer or one of its readers). */
static struct sqlite_kept *kept_of(struct sqlite_store *s, sqlite3 *db)
{
    if (db == s->db)
        return &s->kept;
    if (db == s->point.db)
        return &s->point.kept;
    for (int i = 0; i < HS_SQLITE_READERS; i++)
        if (s->readers[i].db == db)
            return &s->readers[i].kept;
    return NULL;
}

/* sql's statement, prepared once and then reset for each use; a nested use of a busy one, or
 * one past the set's size, gets a statement of its own (finalized when it ends). */
static int kept_take(struct sqlite_kept *k, sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
    for (int i = 0; k && i < k->n; i++) {
        if (k->v[i].sql != sql || k->v[i].busy)
            continue;
        k->v[i].busy = true;
        *st = k->v[i].st;
        return SQLITE_OK;
    }
    bool keep = k && k->n < HS_SQLITE_KEPT;
    for (int i = 0; keep && i < k->n; i++)
        keep = k->v[i].sql != sql; /* busy: this use's copy is not kept */
    int rc = sqlite3_prepare_v3(db, sql, -1, keep ? SQLITE_PREPARE_PERSISTENT : 0, st, NULL);
    if (rc == SQLITE_OK && keep && *st) {
        k->v[k->n].sql = sql;
        k->v[k->n].st = *st;
        k->v[k->n].busy = true;
        k->n++;
    }
    return rc;
}

/* Ends a statement: a kept one is reset for its next use, any other finalized. */
static void stmt_end(struct sq_txn *t, sqlite3_stmt *st)
{
    struct sqlite_kept *k = st ? kept_of(t->s, t->db) : NULL;
    for (int i = 0; k && i < k->n; i++) {
        if (k->v[i].st == st) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            k->v[i].busy = false;
            return;
        }
    }
    sqlite3_finalize(st);
}

static void kept_clear(struct sqlite_kept *k)
{
    for (int i = 0; i < k->n; i++)
        sqlite3_finalize(k->v[i].st);
    k->n = 0;
}

/* hs_sqlite_exec of a statement of the transactions' own (BEGIN, COMMIT, SAVEPOINT ...), kept
 * prepared: every operation runs two or three of them. */
static int kept_exec(struct sqlite_store *s, sqlite3 *db, const char *sql, struct hs_error *err)
{
    struct sqlite_kept *k = kept_of(s, db);
    sqlite3_stmt *st = NULL;
    int rc = kept_take(k, db, sql, &st);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE || rc == SQLITE_ROW)
            rc = SQLITE_OK;
    }
    int ret = rc == SQLITE_OK ? HS_OK : hs_fail(err, code_of(rc), "%s", sqlite3_errmsg(db));
    struct sq_txn t = {.s = s, .db = db};
    stmt_end(&t, st);
    return ret;
}

/* ---- the writer's lock ---- */

/* The address of a thread-local object: unique among live threads, never 0. */
static uintptr_t thread_tag(void)
{
    static _Thread_local char tag;
    return (uintptr_t)&tag;
}

static void writer_lock(struct sqlite_store *s)
{
    pthread_mutex_lock(&s->lock);
    atomic_store(&s->holder, thread_tag());
}

static void writer_unlock(struct sqlite_store *s)
{
    atomic_store(&s->holder, 0);
    pthread_mutex_unlock(&s->lock);
}

bool hs_sqlite_held_by_me(struct sqlite_store *s)
{
    return atomic_load(&s->holder) == thread_tag();
}

/* ---- the read pool ---- */

/* The reader this thread holds, for a read called back from inside another read (artifact_each):
 * it joins that read instead of taking a second reader, which could wait forever for a pool
 * that threads like it have emptied. */
static _Thread_local struct sqlite_reader *my_reader;
static _Thread_local const struct sqlite_store *my_reader_store;

static int reader_open(struct sqlite_store *s, struct sqlite_reader *r, bool map,
                       struct hs_error *err)
{
    int rc = sqlite3_open_v2(s->path, &r->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rc = hs_sqlite_fail(r->db, rc, err, "opening a read connection");
        sqlite3_close_v2(r->db);
        r->db = NULL;
        return rc;
    }
    sqlite3_busy_timeout(r->db, BUSY_TIMEOUT_MS);
    /* Read-write to SQLite (WAL readers write the -shm index), read-only to us. Readers map the
     * file rather than copy its pages through read() into a cache each of their own: several
     * readers of one file then share the kernel's page cache (bench/README.md, search_http). */
    rc = hs_sqlite_exec(r->db,
                        map && !s->unmapped_reads
                            ? "PRAGMA query_only=1; PRAGMA mmap_size=" READER_MMAP_BYTES
                            : "PRAGMA query_only=1",
                        err);
    if (rc) {
        sqlite3_close_v2(r->db);
        r->db = NULL;
    }
    return rc;
}

/* A free reader, opening one when none is free and the pool is not full (under the pool's lock:
 * it happens a few times in a process's life), else waiting for one. */
static int pool_take(struct sqlite_store *s, struct sqlite_reader **out, struct hs_error *err)
{
    int rc = HS_OK;
    pthread_mutex_lock(&s->pool_lock);
    while (!s->free_readers && s->n_readers == s->max_readers)
        pthread_cond_wait(&s->pool_cond, &s->pool_lock);
    struct sqlite_reader *r = s->free_readers;
    if (r) {
        s->free_readers = r->next;
    } else {
        r = &s->readers[s->n_readers];
        rc = reader_open(s, r, true, err);
        if (!rc)
            s->n_readers++;
    }
    pthread_mutex_unlock(&s->pool_lock);
    if (!rc)
        *out = r;
    return rc;
}

static void pool_give(struct sqlite_store *s, struct sqlite_reader *r)
{
    if (r == &s->point) {
        pthread_mutex_unlock(&s->point_lock);
        return;
    }
    pthread_mutex_lock(&s->pool_lock);
    r->next = s->free_readers;
    s->free_readers = r;
    pthread_cond_signal(&s->pool_cond);
    pthread_mutex_unlock(&s->pool_lock);
}

/* The point reader (SQ_READ_POINT), opened when first needed; one holder at a time. Held by
 * another thread, a reader of the pool serves instead: no queue forms behind a holder that the
 * scheduler has put aside. */
static int point_take(struct sqlite_store *s, struct sqlite_reader **out, struct hs_error *err)
{
    if (pthread_mutex_trylock(&s->point_lock) != 0)
        return pool_take(s, out, err);
    int rc = s->point.db ? HS_OK : reader_open(s, &s->point, false, err);
    if (rc) {
        pthread_mutex_unlock(&s->point_lock);
        return rc;
    }
    *out = &s->point;
    return HS_OK;
}

/* ---- the one way into a transaction ---- */

static int enter_read(struct sqlite_store *s, struct sq_txn *t, bool point, struct hs_error *err)
{
    if (my_reader && my_reader_store == s) { /* inside this thread's read: join it */
        t->db = my_reader->db;
        return HS_OK;
    }
    pthread_rwlock_rdlock(&s->key_lock);
    int rc = point ? point_take(s, &t->reader, err) : pool_take(s, &t->reader, err);
    if (!rc) {
        t->db = t->reader->db;
        rc = kept_exec(s, t->db, "BEGIN", err); /* one snapshot for every statement */
        if (rc)
            pool_give(s, t->reader);
    }
    if (rc) {
        pthread_rwlock_unlock(&s->key_lock);
        t->reader = NULL;
        return rc;
    }
    t->own = true;
    my_reader = t->reader;
    my_reader_store = s;
    return HS_OK;
}

int hs_sqlite_enter(struct sqlite_store *s, struct sq_txn *t, enum sq_mode mode, const char *what,
                    struct hs_error *err)
{
    memset(t, 0, sizeof *t);
    t->s = s;
    t->write = mode != SQ_READ && mode != SQ_READ_POINT;
    if (hs_sqlite_held_by_me(s)) {
        if (mode == SQ_WRITE_ALONE || mode == SQ_WRITE_UNSYNCED)
            return hs_fail(err, HS_ERR_INTERNAL, "%s called inside a store transaction", what);
        t->db = s->db;
        if (!t->write)
            return HS_OK; /* sees the transaction's own writes */
        t->seq_before = s->txn_seq;
        return kept_exec(s, s->db, "SAVEPOINT hs_op", err);
    }
    if (!t->write && s->max_readers > 0)
        return enter_read(s, t, mode == SQ_READ_POINT, err);
    writer_lock(s);
    /* The commit's fsync is the caller's (hs_sqlite_wal_sync); the setting is the connection's
     * and cannot change inside a transaction, so it is set here and put back in leave. */
    t->unsynced = mode == SQ_WRITE_UNSYNCED;
    s->wal_deferred = t->unsynced;
    int rc = t->unsynced ? hs_sqlite_exec(s->db, "PRAGMA synchronous=NORMAL", err) : HS_OK;
    /* A write takes the database's write lock at once (a writer in another process waits for
     * it instead of failing half-way with SQLITE_BUSY); a read on the writer only a snapshot. */
    if (!rc)
        rc = kept_exec(s, s->db, t->write ? "BEGIN IMMEDIATE" : "BEGIN", err);
    if (rc) {
        if (t->unsynced)
            hs_sqlite_exec(s->db, "PRAGMA synchronous=FULL", NULL);
        s->wal_deferred = false;
        writer_unlock(s);
        return rc;
    }
    t->db = s->db;
    t->own = true;
    s->txn = SQ_TXN_OP;
    s->txn_seq = 0;
    return HS_OK;
}

int hs_sqlite_leave(struct sq_txn *t, int rc, struct hs_error *err)
{
    struct sqlite_store *s = t->s;
    if (!t->own) {
        if (!t->write)
            return rc;
        if (rc) {
            kept_exec(s, t->db, "ROLLBACK TO hs_op", NULL);
            /* The counter update, if this op made it, was undone with the rest. */
            s->txn_seq = t->seq_before;
        }
        int r2 = kept_exec(s, t->db, "RELEASE hs_op", rc ? NULL : err);
        return rc ? rc : r2;
    }
    if (t->reader) {
        /* A read keeps nothing: ending its snapshot cannot lose anything. */
        if (kept_exec(s, t->db, "COMMIT", NULL))
            hs_sqlite_exec(t->db, "ROLLBACK", NULL);
        my_reader = NULL;
        my_reader_store = NULL;
        pool_give(s, t->reader);
        pthread_rwlock_unlock(&s->key_lock);
        t->reader = NULL;
        return rc;
    }
    if (!rc)
        rc = kept_exec(s, t->db, "COMMIT", err);
    if (rc)
        hs_sqlite_exec(t->db, "ROLLBACK", NULL);
    /* Every other commit of the writer waits for the disk. */
    if (t->unsynced && hs_sqlite_exec(t->db, "PRAGMA synchronous=FULL", rc ? NULL : err) != HS_OK)
        rc = rc ? rc : HS_ERR_DB;
    s->txn = SQ_TXN_NONE;
    s->txn_seq = 0;
    s->wal_deferred = false;
    writer_unlock(s);
    return rc;
}

/* The writer's log hook, in place of SQLite's automatic checkpoint (the same threshold): a
 * group commit's batch checkpoints only past WAL_BACKSTOP_FRAMES (its syncer normally has by
 * then), so that the writer goes on with the next batch. */
#define WAL_CHECKPOINT_FRAMES 1000
#define WAL_BACKSTOP_FRAMES   4000

static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    struct sqlite_store *s = arg;
    atomic_store(&s->wal_frames, frames);
    if (frames >= (s->wal_deferred ? WAL_BACKSTOP_FRAMES : WAL_CHECKPOINT_FRAMES))
        (void)sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return SQLITE_OK;
}

void hs_sqlite_checkpoint(struct sqlite_store *s)
{
    if (s->max_readers == 0 || atomic_load(&s->wal_frames) < WAL_CHECKPOINT_FRAMES ||
        pthread_mutex_trylock(&s->ckpt_lock) != 0)
        return;
    if (!s->ckpt_db &&
        sqlite3_open_v2(s->path, &s->ckpt_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK) {
        hs_warn("store checkpoint connection not opened msg=\"%s\"",
                s->ckpt_db ? sqlite3_errmsg(s->ckpt_db) : "out of memory");
        sqlite3_close_v2(s->ckpt_db);
        s->ckpt_db = NULL;
    }
    int log = -1, copied = -1;
    if (s->ckpt_db &&
        sqlite3_wal_checkpoint_v2(s->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &copied) ==
            SQLITE_OK &&
        log == copied)
        atomic_store(&s->wal_frames, 0); /* all copied: the next commit starts the log over */
    pthread_mutex_unlock(&s->ckpt_lock);
}

int hs_sqlite_wal_sync(struct sqlite_store *s, struct hs_error *err)
{
    const char *db = sqlite3_db_filename(s->db, "main");
    if (!db || !*db)
        return HS_OK; /* in memory: nothing to make durable */
    /* fdatasync works on any descriptor of the file; one of our own keeps this off the writer's
     * connection, which the next transaction is using meanwhile. */
    const char *wal = sqlite3_filename_wal(db);
    int fd = open(wal, O_RDONLY | O_CLOEXEC);
    int rc = fd >= 0 && fdatasync(fd) == 0 ? HS_OK : errno;
    if (fd >= 0)
        close(fd);
    if (rc) {
        char buf[128];
        /* GNU strerror_r (_GNU_SOURCE is set project-wide): returns the message, maybe not buf. */
        rc = hs_fail(err, HS_ERR_IO, "syncing %s: %s", wal, strerror_r(rc, buf, sizeof buf));
    }
    return rc;
}

/* ---- the store interface's transactions ---- */

int hs_sqlite_begin(struct hs_store *base, struct hs_error *err)
{
    struct sqlite_store *s = hs_sqlite_of(base);
    if (hs_sqlite_held_by_me(s))
        return hs_fail(err, HS_ERR_INTERNAL, "begin: this thread already has a transaction open");
    writer_lock(s);
    int rc = hs_sqlite_exec(s->db, "BEGIN IMMEDIATE", err);
    if (rc) {
        writer_unlock(s);
        return rc;
    }
    s->txn = SQ_TXN_USER;
    s->txn_seq = 0;
    return HS_OK;
}

/* The setting is the connection's: NORMAL from before BEGIN until after the transaction ends,
 * under the writer lock, so no other transaction commits under it. */
int hs_sqlite_begin_lazy(struct hs_store *base, struct hs_error *err)
{
    struct sqlite_store *s = hs_sqlite_of(base);
    if (hs_sqlite_held_by_me(s))
        return hs_fail(err, HS_ERR_INTERNAL, "begin: this thread already has a transaction open");
    writer_lock(s);
    int rc = hs_sqlite_exec(s->db, "PRAGMA synchronous=NORMAL", err);
    if (rc == HS_OK && (rc = hs_sqlite_exec(s->db, "BEGIN IMMEDIATE", err)) != HS_OK)
        hs_sqlite_exec(s->db, "PRAGMA synchronous=FULL", NULL);
    if (rc) {
        writer_unlock(s);
        return rc;
    }
    s->txn = SQ_TXN_USER;
    s->txn_seq = 0;
    s->txn_lazy = true;
    return HS_OK;
}

static void end_user_txn(struct sqlite_store *s)
{
    if (s->txn_lazy && hs_sqlite_exec(s->db, "PRAGMA synchronous=FULL", NULL) != HS_OK)
        abort(); /* every later commit would be lazy */
    s->txn_lazy = false;
    s->txn = SQ_TXN_NONE;
    s->txn_seq = 0;
    writer_unlock(s);
}

/* A failed COMMIT rolls back: the transaction is over either way. */
int hs_sqlite_commit(struct hs_store *base, struct hs_error *err)
{
    struct sqlite_store *s = hs_sqlite_of(base);
    if (!hs_sqlite_held_by_me(s) || s->txn != SQ_TXN_USER)
        return hs_fail(err, HS_ERR_INTERNAL, "commit without begin");
    int rc = hs_sqlite_exec(s->db, "COMMIT", err);
    if (rc)
        hs_sqlite_exec(s->db, "ROLLBACK", NULL);
    end_user_txn(s);
    return rc;
}

void hs_sqlite_rollback(struct hs_store *base)
{
    struct sqlite_store *s = hs_sqlite_of(base);
    if (!hs_sqlite_held_by_me(s) || s->txn != SQ_TXN_USER)
        return; /* nothing open: callers may roll back on every error path */
    hs_sqlite_exec(s->db, "ROLLBACK", NULL);
    end_user_txn(s);
}

/* ---- statements and the row collector ---- */

int hs_sqlite_prep(struct sq_txn *t, sqlite3_stmt **st, const char *sql, const char *what,
                   struct hs_error *err)
{
    int rc = sqlite3_prepare_v2(t->db, sql, -1, st, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(*st);
        *st = NULL;
        return hs_sqlite_fail(t->db, rc, err, what);
    }
    return HS_OK;
}

int hs_sqlite_prep_kept(struct sq_txn *t, sqlite3_stmt **st, const char *sql, const char *what,
                        struct hs_error *err)
{
    int rc = kept_take(kept_of(t->s, t->db), t->db, sql, st);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(*st);
        *st = NULL;
        return hs_sqlite_fail(t->db, rc, err, what);
    }
    return HS_OK;
}

void hs_sqlite_unprep(struct sq_txn *t, sqlite3_stmt *st)
{
    stmt_end(t, st);
}

int hs_sqlite_run(struct sq_txn *t, sqlite3_stmt *st, int *changes, const char *what,
                  struct hs_error *err)
{
    int rc = sqlite3_step(st);
    int ret = rc == SQLITE_DONE ? HS_OK : hs_sqlite_fail(t->db, rc, err, what);
    if (changes)
        *changes = ret ? 0 : sqlite3_changes(t->db);
    stmt_end(t, st);
    return ret;
}

int hs_sqlite_fill_text(struct sq_txn *t, sqlite3_stmt *st, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    *(char **)row = hs_sqlite_col_text(st, 0);
    return HS_OK;
}

void hs_sqlite_clear_text(void *row)
{
    free(*(char **)row);
}

int hs_sqlite_one(struct sq_txn *t, sqlite3_stmt *st, hs_sqlite_fill_fn fill, void *row,
                  const char *what, struct hs_error *err)
{
    int src = sqlite3_step(st);
    int rc;
    if (src == SQLITE_ROW)
        rc = fill(t, st, row, err);
    else if (src == SQLITE_DONE)
        rc = HS_ERR_NOT_FOUND;
    else
        rc = hs_sqlite_fail(t->db, src, err, what);
    stmt_end(t, st);
    return rc;
}

int hs_sqlite_rows(struct sq_txn *t, sqlite3_stmt *st, size_t elem, hs_sqlite_fill_fn fill,
                   void (*clear)(void *row), void **out, size_t *n, const char *what,
                   struct hs_error *err)
{
    unsigned char *v = NULL;
    size_t len = 0, cap = 0;
    int rc = HS_OK;
    for (;;) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = hs_sqlite_fail(t->db, src, err, what);
            break;
        }
        if (len == cap) {
            cap = cap ? cap * 2 : 8;
            v = hs_realloc(v, cap * elem);
        }
        void *row = v + len++ * elem;
        memset(row, 0, elem);
        if ((rc = fill(t, st, row, err)))
            break;
    }
    stmt_end(t, st);
    if (rc) {
        for (size_t i = 0; clear && i < len; i++)
            clear(v + i * elem);
        free(v);
        return rc;
    }
    *out = v;
    *n = len;
    return HS_OK;
}

int hs_sqlite_int(struct sq_txn *t, sqlite3_stmt *st, int64_t *out, const char *what,
                  struct hs_error *err)
{
    int src = sqlite3_step(st);
    int rc = HS_OK;
    if (src == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0); /* NULL reads as 0 */
    else if (src == SQLITE_DONE)
        *out = 0;
    else
        rc = hs_sqlite_fail(t->db, src, err, what);
    stmt_end(t, st);
    return rc;
}

int hs_sqlite_change_by_id(struct hs_store *base, const char *sql, int64_t id, int64_t num,
                           const char *text, const char *what, const char *missing,
                           struct hs_error *err)
{
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, what, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    int changes = 0;
    rc = hs_sqlite_prep(&t, &st, sql, what, err);
    if (!rc) {
        /* Binding a parameter the statement lacks is a harmless SQLITE_RANGE. */
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, num);
        hs_sqlite_bind_text(st, 3, text);
        rc = hs_sqlite_run(&t, st, &changes, what, err);
    }
    if (!rc && changes == 0)
        rc = hs_fail(err, HS_ERR_NOT_FOUND, missing, (long long)id);
    return hs_sqlite_leave(&t, rc, err);
}

char *hs_sqlite_col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? hs_strdup((const char *)t) : NULL;
}

void hs_sqlite_bind_text(sqlite3_stmt *st, int i, const char *v)
{
    sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC); /* NULL binds SQL NULL */
}

void hs_sqlite_bind_id(sqlite3_stmt *st, int i, int64_t v)
{
    if (v > 0)
        sqlite3_bind_int64(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

char *hs_sqlite_scope_json(const struct hs_scope *scope)
{
    if (!scope)
        return NULL;
    json_t *a = json_array();
    for (size_t i = 0; i < scope->n; i++)
        if (scope->keys[i])
            json_array_append_new(a, json_string(scope->keys[i]));
    char *text = hs_json_dump(a);
    json_decref(a);
    return text;
}

/* ---- secrets at rest (secrets.h) ---- */

int hs_sqlite_seal(struct sqlite_store *s, const char *clear, const char *aad, char **out,
                   struct hs_error *err)
{
    if (!s->key) {
        *out = clear ? hs_strdup(clear) : NULL;
        return HS_OK;
    }
    return hs_secret_seal(s->key, clear, aad, out, err);
}

int hs_sqlite_unseal(struct sqlite_store *s, const char *stored, const char *aad, char **out,
                     struct hs_error *err)
{
    return hs_secret_open(s->key, stored, aad, out, err);
}

/* ---- migrations ---- */

static int schema_version(sqlite3 *db, int *out, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT COALESCE(MAX(version),0) FROM schema_migrations", -1,
                                &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        *out = sqlite3_column_int(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? HS_OK : hs_sqlite_fail(db, rc, err, "reading schema version");
}

/* Whether the migration of version is recorded: versions are given out ahead to changes made
 * side by side, so a store may have later ones and miss an earlier one; it is applied then. */
static int migration_recorded(sqlite3 *db, int version, bool *yes, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM schema_migrations WHERE version = ?", -1,
                                &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int(st, 1, version);
        if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            *yes = sqlite3_column_int(st, 0) > 0;
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? HS_OK : hs_sqlite_fail(db, rc, err, "reading schema version");
}

static int migration_apply(sqlite3 *db, const struct hs_migration *m, struct hs_error *err)
{
    int rc = hs_sqlite_exec(db, "BEGIN IMMEDIATE", err);
    if (rc)
        return rc;
    rc = hs_sqlite_exec(db, m->sql, err);
    if (!rc) {
        sqlite3_stmt *st = NULL;
        int src = sqlite3_prepare_v2(
            db, "INSERT INTO schema_migrations(version, name) VALUES (?, ?)", -1, &st, NULL);
        if (src == SQLITE_OK) {
            sqlite3_bind_int(st, 1, m->version);
            sqlite3_bind_text(st, 2, m->name, -1, SQLITE_STATIC);
            src = sqlite3_step(st);
        }
        sqlite3_finalize(st);
        if (src != SQLITE_DONE)
            rc = hs_sqlite_fail(db, src, err, "recording migration");
    }
    if (!rc)
        rc = hs_sqlite_exec(db, "COMMIT", err);
    if (rc)
        hs_sqlite_exec(db, "ROLLBACK", NULL);
    return rc;
}

/* A store that must exist already (hs_store_options.must_exist): the file is there and holds
 * hoversync's schema, before anything is created in it. */
static int check_exists(const char *path, sqlite3 *db, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        db,
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
        -1, &st, NULL);
    if (rc != SQLITE_OK)
        return hs_sqlite_fail(db, rc, err, "reading the schema");
    rc = sqlite3_step(st);
    int64_t n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    int r = rc == SQLITE_ROW || rc == SQLITE_DONE
                ? HS_OK
                : hs_sqlite_fail(db, rc, err, "reading the schema");
    sqlite3_finalize(st);
    if (!r && n == 0)
        r = hs_fail(err, HS_ERR_NOT_FOUND, "%s is not a hoversync store", path);
    return r;
}

static int migrate(sqlite3 *db, struct hs_error *err)
{
    int rc = hs_sqlite_exec(db,
                            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER "
                            "PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT "
                            "(strftime('%Y-%m-%dT%H:%M:%fZ','now')))",
                            err);
    if (rc)
        return rc;
    int have = 0;
    if ((rc = schema_version(db, &have, err)))
        return rc;
    int latest = hs_sqlite_migrations[hs_sqlite_migrations_count - 1].version;
    if (have > latest)
        return hs_fail(err, HS_ERR_DB,
                       "database schema version %d is newer than this hoversync (%d): upgrade "
                       "hoversync",
                       have, latest);
    for (int i = 0; i < hs_sqlite_migrations_count; i++) {
        const struct hs_migration *m = &hs_sqlite_migrations[i];
        bool recorded = m->version <= have;
        if (recorded && (rc = migration_recorded(db, m->version, &recorded, err)))
            return rc;
        if (recorded)
            continue;
        if ((rc = migration_apply(db, m, err)))
            return rc;
        hs_info("store=sqlite msg=\"applied migration\" version=%d name=\"%s\"", m->version,
                m->name);
    }
    return HS_OK;
}

/* ---- open and close ---- */

static void sq_close(struct hs_store *base)
{
    struct sqlite_store *s = hs_sqlite_of(base);
    for (int i = 0; i < s->n_readers; i++) {
        kept_clear(&s->readers[i].kept);
        sqlite3_close_v2(s->readers[i].db);
    }
    kept_clear(&s->point.kept);
    sqlite3_close_v2(s->point.db);
    hs_secret_key_clear(s->key);
    free(s->key);
    sqlite3_close_v2(s->ckpt_db);
    kept_clear(&s->kept);
    sqlite3_close_v2(s->db);
    free(s->path);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->pool_lock);
    pthread_cond_destroy(&s->pool_cond);
    pthread_mutex_destroy(&s->gc_lock);
    pthread_mutex_destroy(&s->ckpt_lock);
    pthread_mutex_destroy(&s->point_lock);
    pthread_rwlock_destroy(&s->key_lock);
    free(s);
}

static const struct hs_store_ops sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
    .begin = hs_sqlite_begin,
    .begin_lazy = hs_sqlite_begin_lazy,
    .commit = hs_sqlite_commit,
    .rollback = hs_sqlite_rollback,
    .secrets_rekey = hs_sqlite_secrets_rekey,
    .copy_read = hs_sqlite_copy_read,
    .copy_count = hs_sqlite_copy_count,
    .copy_clear = hs_sqlite_copy_clear,
    .copy_write_begin = hs_sqlite_copy_write_begin,
    .copy_write_row = hs_sqlite_copy_write_row,
    .copy_write_end = hs_sqlite_copy_write_end,
};

/* A path SQLite opens as a private database of one connection: no reader can share it. */
static bool private_database(const char *path)
{
    return !*path || strcmp(path, ":memory:") == 0 || strstr(path, "mode=memory");
}

static struct sqlite_store *store_new(const char *path)
{
    struct sqlite_store *s = hs_calloc(1, sizeof *s);
    s->base = (struct hs_store){
        .ops = &sqlite_ops,
        .tokens = &hs_sqlite_token_ops,
        .records = &hs_sqlite_records_ops,
        .search = &hs_sqlite_search_ops,
        .service = &hs_sqlite_service_ops,
        .webhooks = &hs_sqlite_webhook_ops,
        .work = &hs_sqlite_work_ops,
        .outbox = &hs_sqlite_outbox_ops,
        .policies = &hs_sqlite_policy_ops,
        .budget = &hs_sqlite_budget_ops,
        .retention = &hs_sqlite_retention_ops,
    };
    s->path = hs_strdup(path);
    s->max_readers = private_database(path) ? 0 : HS_SQLITE_READERS;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->pool_lock, NULL);
    pthread_cond_init(&s->pool_cond, NULL);
    pthread_mutex_init(&s->gc_lock, NULL);
    pthread_mutex_init(&s->ckpt_lock, NULL);
    pthread_mutex_init(&s->point_lock, NULL);
    pthread_rwlock_init(&s->key_lock, NULL);
    atomic_init(&s->holder, 0);
    return s;
}

int hs_store_open_sqlite(const char *path, const struct hs_store_options *o, struct hs_store **out,
                         struct hs_error *err)
{
    struct hs_secret_key *key = NULL;
    if (o && o->encryption_key && *o->encryption_key) {
        key = hs_calloc(1, sizeof *key);
        int rc = hs_secret_key_parse(o->encryption_key, key, err);
        if (rc) {
            free(key);
            return rc;
        }
    }
    bool must_exist = o && o->must_exist;
    if (must_exist && access(path, F_OK) != 0) {
        hs_secret_key_clear(key);
        free(key);
        return hs_fail(err, HS_ERR_NOT_FOUND, "no store at %s", path);
    }
    hs_sqlite_make_private(path);
    struct sqlite_store *s = store_new(path);
    s->unmapped_reads = o && o->unmapped_reads;
    int rc = sqlite3_open_v2(
        path, &s->db,
        SQLITE_OPEN_READWRITE | (must_exist ? 0 : SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rc = hs_fail(err, HS_ERR_DB, "cannot open database %s: %s", path,
                     s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    if (must_exist && (rc = check_exists(path, s->db, err)))
        goto fail;
    if ((rc = hs_sqlite_exec(
             s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
             err)))
        goto fail;
    sqlite3_wal_hook(s->db, wal_hook, s);
    if ((rc = migrate(s->db, err)))
        goto fail;
    if ((rc = hs_sqlite_key_check(s, key, err)))
        goto fail;
    if ((rc = hs_store_complete(&s->base, err)))
        goto fail;
    s->key = key;
    key = NULL;
    *out = &s->base;
    return HS_OK;
fail:
    hs_secret_key_clear(key);
    free(key);
    sq_close(&s->base);
    return rc;
}
