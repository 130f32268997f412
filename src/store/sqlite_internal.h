/* sqlite_internal.h: what the files of the SQLite back-end share. Not for other modules.
 *
 *   store_sqlite.c    the connections (one writer, a pool of readers), the one way into a
 *                     transaction (hs_sqlite_enter/leave), statement helpers and the one row
 *                     collector, migrations, open/close, the ops tables
 *   sqlite_tokens.c   tokens and their refresh leases        (store/tokens.h)
 *   sqlite_records.c  the sync records and the records feed  (store/records.h)
 *   sqlite_search.c   the job search over FTS5               (store/search.h)
 *   sqlite_service.c  settings, sessions, connections        (store/service.h)
 *   sqlite_webhooks.c webhooks, events, verifications        (store/webhooks.h)
 *   sqlite_work.c     work items, syncs' progress, polls     (store/work.h)
 *   sqlite_outbox.c   the outbox and the policies            (store/outbox.h, store/policies.h)
 *   sqlite_budget.c   the Hover request budget                (store/budget.h)
 *   sqlite_retention.c pruning, artifact references, sizes   (store/retention.h)
 *   sqlite_secrets.c  the file's mode, the key check, rotate-key
 *   sqlite_copy.c     whole tables read and written for `store copy` (store/copy.h)
 *
 * Connections. Writes go through one connection, the writer, under a mutex held for a whole
 * write transaction (SQLite allows one writer at a time anyway; the mutex makes the threads of
 * this process queue in order instead of spinning on SQLITE_BUSY). Reads of a thread that is not
 * inside a write transaction take a read-only connection of a small pool (WAL lets them read the
 * last commit while the writer writes), so searches and status pages do not queue behind a
 * sync's commit. A read of a thread inside its own write transaction must see that
 * transaction's writes: it runs on the writer. */
#ifndef HS_STORE_SQLITE_INTERNAL_H
#define HS_STORE_SQLITE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/secrets.h"
#include "store/store.h"

/* Timestamps written by the store: ISO-8601 UTC with milliseconds, like Hover's. */
#define HS_SQL_NOW "strftime('%Y-%m-%dT%H:%M:%fZ','now')"

/* Read-only connections at most; opened when first needed. */
#define HS_SQLITE_READERS 4

/* What the writer's holder is doing. */
enum sqlite_txn {
    SQ_TXN_NONE = 0,
    SQ_TXN_USER, /* begin .. commit/rollback of the store interface */
    SQ_TXN_OP,   /* one operation's own transaction */
};

/* Statements kept prepared on one connection (hs_sqlite_prep_kept): parsing and planning a
 * statement costs more than running a small insert, and the hot paths run the same few. Used by
 * whoever holds the connection, so it needs no lock of its own. */
#define HS_SQLITE_KEPT 32
struct sqlite_kept {
    int n;
    struct {
        const char *sql; /* the caller's string literal, by address */
        sqlite3_stmt *st;
        bool busy; /* handed out, not yet ended (a nested use prepares a copy of its own) */
    } v[HS_SQLITE_KEPT];
};

struct sqlite_reader {
    sqlite3 *db;
    struct sqlite_reader *next; /* in the free list */
    struct sqlite_kept kept;
};

struct sqlite_store {
    struct hs_store base;
    sqlite3 *db; /* the writer */
    struct sqlite_kept kept;
    /* Serialises the threads writing through `db`; held for a whole write transaction. */
    pthread_mutex_t lock;
    /* The thread holding `lock` (a thread tag), 0 when free: lets an operation called inside a
     * transaction of its own thread join it instead of deadlocking on the lock. Atomic because
     * other threads read it without the lock. */
    _Atomic uintptr_t holder;
    enum sqlite_txn txn;
    bool txn_lazy; /* begun by begin_lazy: synchronous=NORMAL until it ends */
    /* The change sequence taken by the open transaction, 0 until a row really changes. */
    int64_t txn_seq;

    /* The read pool: free readers, how many are open, and a wait for one to come back. */
    char *path;
    pthread_mutex_t pool_lock;
    pthread_cond_t pool_cond;
    struct sqlite_reader *free_readers;
    int n_readers, max_readers; /* max 0: reads use the writer (a ":memory:" store) */
    bool unmapped_reads;        /* hs_store_options: readers do not map the file */
    struct sqlite_reader readers[HS_SQLITE_READERS];
    /* The point reader (SQ_READ_POINT): no memory map, one holder at a time (point_lock; the
     * others take a pool reader meanwhile). */
    struct sqlite_reader point;
    pthread_mutex_t point_lock;

    /* Group commit of event_accept (sqlite_webhooks.c): requests queue here and one thread at a
     * time (the leader) commits every queued one in a single transaction, one fsync for all. */
    pthread_mutex_t gc_lock;
    struct hs_sqlite_accept *gc_head, *gc_tail;
    bool gc_leader;
    /* Committed batches waiting for the fdatasync that makes them durable (one at a time). */
    struct hs_sqlite_accept *gc_unsynced, *gc_unsynced_tail;
    bool gc_syncing;
    /* The log's frames at the writer's last commit (its wal hook, store_sqlite.c). A batch's
     * commit (SQ_WRITE_UNSYNCED) leaves the checkpoint to a syncer (hs_sqlite_checkpoint), on
     * a connection of its own, so that the writer is not held while pages are copied. */
    _Atomic int wal_frames;
    bool wal_deferred; /* under the writer lock: this transaction's commit does not checkpoint */
    pthread_mutex_t ckpt_lock;
    sqlite3 *ckpt_db;

    /* The key that seals secrets at rest (secrets.h); NULL: they are stored in clear. Readers
     * hold key_lock (shared) for their whole read transaction, so that rotate-key swaps the key
     * only between reads (a read sees rows sealed under the key it unseals with). */
    struct hs_secret_key *key;
    pthread_rwlock_t key_lock;
};

static inline struct sqlite_store *hs_sqlite_of(struct hs_store *base)
{
    return (struct sqlite_store *)base;
}

/* ---- the one way into a transaction ---- */

enum sq_mode {
    SQ_READ,       /* a snapshot: a reader of the pool, or the writer inside this thread's txn */
    SQ_READ_POINT, /* SQ_READ of a few rows by key, on the point reader: a pool reader maps the
                      file and drops its map whenever the log changed since its last read (every
                      read, under a stream of commits), which costs more than such a read */
    SQ_WRITE,      /* the writer: its own BEGIN IMMEDIATE .. COMMIT, or a savepoint of this thread's
                      open transaction (a failure rolls back to it, nothing of the op remains) */
    SQ_WRITE_ALONE,    /* the writer, its own transaction, committed before leave returns: refused
                          inside this thread's transaction (durable before returning) */
    SQ_WRITE_UNSYNCED, /* SQ_WRITE_ALONE whose commit does not wait for the disk: the caller
                          calls hs_sqlite_wal_sync after leave, and only then may say the rows
                          are stored (the writer is free meanwhile: group commit) */
};

/* One operation's hold on a connection, from hs_sqlite_enter to hs_sqlite_leave. */
struct sq_txn {
    struct sqlite_store *s;
    sqlite3 *db;                  /* the connection to run statements on */
    struct sqlite_reader *reader; /* the pool's reader held, or NULL (the writer) */
    bool own;                     /* a transaction of its own (else joined the thread's) */
    bool write;
    bool unsynced;      /* SQ_WRITE_UNSYNCED: synchronous=NORMAL until leave */
    int64_t seq_before; /* the thread's txn_seq when the savepoint was taken */
};

/* Enters `what` (for the messages) in mode. HS_ERR_INTERNAL for SQ_WRITE_ALONE (or
 * SQ_WRITE_UNSYNCED) inside this thread's transaction. */
int hs_sqlite_enter(struct sqlite_store *s, struct sq_txn *t, enum sq_mode mode, const char *what,
                    struct hs_error *err);
/* Ends what enter began: commits (rc HS_OK) or rolls back (rc failed; a savepoint rolls back to
 * itself and the thread's txn_seq is restored). Returns rc, or the commit's failure. */
int hs_sqlite_leave(struct sq_txn *t, int rc, struct hs_error *err);

/* Makes every commit so far durable, those of SQ_WRITE_UNSYNCED included: an fdatasync of the
 * write-ahead log, outside the writer's lock (several may run at once). */
int hs_sqlite_wal_sync(struct sqlite_store *s, struct hs_error *err);

/* A passive checkpoint when the log has grown past SQLite's usual threshold (1,000 frames),
 * on the checkpoint connection; skipped when another thread runs one. Called by the group
 * commit's syncer once its callers are answered. Failures only leave the log longer. */
void hs_sqlite_checkpoint(struct sqlite_store *s);

/* The store interface's begin/commit/rollback (store.h). */
int hs_sqlite_begin(struct hs_store *base, struct hs_error *err);
int hs_sqlite_begin_lazy(struct hs_store *base, struct hs_error *err);
int hs_sqlite_commit(struct hs_store *base, struct hs_error *err);
void hs_sqlite_rollback(struct hs_store *base);

/* True when the calling thread holds s->lock (is inside a write transaction). */
bool hs_sqlite_held_by_me(struct sqlite_store *s);

/* ---- statements ---- */

/* The one place SQLite result codes become hs_err. */
int hs_sqlite_fail(sqlite3 *db, int rc, struct hs_error *err, const char *what);
/* Runs SQL without results (pragmas, BEGIN, COMMIT, SAVEPOINT ...). */
int hs_sqlite_exec(sqlite3 *db, const char *sql, struct hs_error *err);
/* Prepares sql; a failure is mapped (what: for the message) and *st is NULL. */
int hs_sqlite_prep(struct sq_txn *t, sqlite3_stmt **st, const char *sql, const char *what,
                   struct hs_error *err);
/* The same for a hot statement, kept prepared on the connection for the next call: sql must be a
 * string literal (it is kept by its address), and the statement is ended by hs_sqlite_run, _one,
 * _int or _rows (which reset a kept statement instead of finalizing it), never finalized by the
 * caller. */
int hs_sqlite_prep_kept(struct sq_txn *t, sqlite3_stmt **st, const char *sql, const char *what,
                        struct hs_error *err);
/* Ends a statement of hs_sqlite_prep_kept that the caller stepped itself (a search's): reset and
 * kept for the next use. */
void hs_sqlite_unprep(struct sq_txn *t, sqlite3_stmt *st);
/* Steps a statement that returns no rows and finalizes it; *changes (may be NULL) gets the
 * number of rows it changed. */
int hs_sqlite_run(struct sq_txn *t, sqlite3_stmt *st, int *changes, const char *what,
                  struct hs_error *err);
/* Fills one row of a statement into `row` (fill may fail: then the row is cleared by the
 * caller's clear function). */
typedef int (*hs_sqlite_fill_fn)(struct sq_txn *t, sqlite3_stmt *st, void *row,
                                 struct hs_error *err);
/* A row of one text column: a fill into a char * (hs_sqlite_one, hs_sqlite_rows), and its
 * clear. */
int hs_sqlite_fill_text(struct sq_txn *t, sqlite3_stmt *st, void *row, struct hs_error *err);
void hs_sqlite_clear_text(void *row);
/* Steps st once and finalizes it: a row is filled into `row` (zeroed first); no row is
 * HS_ERR_NOT_FOUND, with err left for the caller to say what was not found. */
int hs_sqlite_one(struct sq_txn *t, sqlite3_stmt *st, hs_sqlite_fill_fn fill, void *row,
                  const char *what, struct hs_error *err);
/* The row collector: steps st to its end and finalizes it, each row filled into a new element
 * (zeroed, elem bytes) of a growing array. On success *out gets the array (NULL when empty) and
 * *n its length; on failure the rows so far are cleared (clear, may be NULL) and freed. */
int hs_sqlite_rows(struct sq_txn *t, sqlite3_stmt *st, size_t elem, hs_sqlite_fill_fn fill,
                   void (*clear)(void *row), void **out, size_t *n, const char *what,
                   struct hs_error *err);
/* Steps a statement of one integer column and finalizes it: *out gets it (0 for no row or
 * NULL). */
int hs_sqlite_int(struct sq_txn *t, sqlite3_stmt *st, int64_t *out, const char *what,
                  struct hs_error *err);
/* An operation of one statement that changes rows by id, in a write transaction of its own (or
 * a savepoint of the thread's): ?1 the id, ?2 num, ?3 text (a statement without ?2 or ?3 ignores
 * them). HS_ERR_NOT_FOUND, with `missing` (a format of the id as %lld), when nothing changed. */
int hs_sqlite_change_by_id(struct hs_store *base, const char *sql, int64_t id, int64_t num,
                           const char *text, const char *what, const char *missing,
                           struct hs_error *err);
/* A column as a new string (caller frees), NULL for SQL NULL. */
char *hs_sqlite_col_text(sqlite3_stmt *st, int i);
/* Binds text (NULL binds SQL NULL) / a Hover id (0 or less binds NULL: ids are positive). */
void hs_sqlite_bind_text(sqlite3_stmt *st, int i, const char *v);
void hs_sqlite_bind_id(sqlite3_stmt *st, int i, int64_t v);
/* A scope as a JSON array of its keys, for "key IN (SELECT value FROM json_each(?))"; NULL
 * (binds SQL NULL: no filter) for a NULL scope. The caller frees. */
char *hs_sqlite_scope_json(const struct hs_scope *scope);
/* The filter of rows of jobs (alias j) in a scope bound to ?N as hs_sqlite_scope_json. */
#define HS_SQL_IN_SCOPE(col, n)                                                                    \
    "(?" n " IS NULL OR " col " IN (SELECT value FROM json_each(?" n ")))"

/* ---- change sequence (sqlite_records.c) ----
 * The sequence of the open write transaction, or the one it would take (peek), and taking it
 * once a row really changed (take). */
int hs_sqlite_seq_peek(struct sq_txn *t, int64_t *out, struct hs_error *err);
int hs_sqlite_seq_take(struct sq_txn *t, int64_t seq, struct hs_error *err);

/* ---- secrets at rest ---- */

/* The value to store for a clear one (sealed under s->key, or the clear value without a key),
 * and the clear value of a stored one; aad names its place ("table.column:row"). *out is new
 * (NULL for NULL). */
int hs_sqlite_seal(struct sqlite_store *s, const char *clear, const char *aad, char **out,
                   struct hs_error *err);
int hs_sqlite_unseal(struct sqlite_store *s, const char *stored, const char *aad, char **out,
                     struct hs_error *err);
/* The places of a connection's tokens: the associated data of their sealed values. */
void hs_sqlite_token_places(const char *key, char *access, char *refresh, size_t n);
/* The place of a webhook's secret. */
void hs_sqlite_webhook_secret_place(const char *id, char *aad, size_t n);
/* The store file made private before SQLite opens it (its -wal and -shm then get the same
 * mode); the key checked against the one the store's secrets are sealed under (and recorded);
 * every secret sealed again under another key (or none). */
void hs_sqlite_make_private(const char *path);
int hs_sqlite_key_check(struct sqlite_store *s, const struct hs_secret_key *key,
                        struct hs_error *err);
int hs_sqlite_secrets_rekey(struct hs_store *base, const char *new_key, int64_t *count,
                            struct hs_error *err);

/* ---- named leases (sqlite_service.c; a row of `leases`, migration 12) ----
 * Inside t's write transaction. take: the lease `name`, free or lapsed at now_ms, until
 * now_ms + lease_ms under the next fence (*fence; 0 when another claim's lease holds). move: the
 * lease of claim `fence` moved to until_ms (0: released), unless it was released or claimed
 * again; *moved says whether it was. The token refresh lease and the service's leases share them.
 */
int hs_sqlite_lease_take(struct sq_txn *t, const char *name, int64_t now_ms, int64_t lease_ms,
                         int64_t *fence, struct hs_error *err);
int hs_sqlite_lease_move(struct sq_txn *t, const char *name, int64_t fence, int64_t until_ms,
                         bool *moved, struct hs_error *err);

/* ---- whole tables for `store copy` (sqlite_copy.c; store.h's copy_* operations) ---- */
int hs_sqlite_copy_read(struct hs_store *base, const struct hs_copy_table *tables, size_t n,
                        const struct hs_copy_sink *sink, struct hs_error *err);
int hs_sqlite_copy_count(struct hs_store *base, const struct hs_copy_table *tb, int64_t *out,
                         struct hs_error *err);
int hs_sqlite_copy_clear(struct hs_store *base, const struct hs_copy_table *tb,
                         struct hs_error *err);
int hs_sqlite_copy_write_begin(struct hs_store *base, const struct hs_copy_table *tb,
                               struct hs_copy_writer **out, struct hs_error *err);
int hs_sqlite_copy_write_row(struct hs_copy_writer *w, const struct hs_copy_value *v,
                             struct hs_error *err);
int hs_sqlite_copy_write_end(struct hs_copy_writer *w, int rc, struct hs_error *err);

/* ---- the concerns' tables, defined in their files ---- */
extern const struct hs_token_ops hs_sqlite_token_ops;
extern const struct hs_records_ops hs_sqlite_records_ops;
extern const struct hs_search_ops hs_sqlite_search_ops;
extern const struct hs_service_ops hs_sqlite_service_ops;
extern const struct hs_webhook_ops hs_sqlite_webhook_ops;
extern const struct hs_work_ops hs_sqlite_work_ops;
extern const struct hs_outbox_ops hs_sqlite_outbox_ops;
extern const struct hs_policy_ops hs_sqlite_policy_ops;
extern const struct hs_budget_ops hs_sqlite_budget_ops;
extern const struct hs_retention_ops hs_sqlite_retention_ops;

/* Inserts the item of a trigger's job or bumps it (sqlite_work.c, store/work.h work_schedule;
 * event_accept and the pending pass use it in their own transactions). */
struct hs_work_trigger;
int hs_sqlite_work_bump(struct sq_txn *t, const struct hs_work_trigger *tr, struct hs_error *err);

/* ---- connection_delete (sqlite_disconnect.c) ---- */
struct hs_connection_deleted;
int hs_sqlite_connection_delete(struct hs_store *base, const char *key, bool purge_records,
                                int64_t now_ms, const char *now_iso,
                                struct hs_connection_deleted *out, struct hs_error *err);

#endif
