/* pg_internal.h: what the files of the PostgreSQL back-end share. Not for other modules.
 *
 *   store_pg.c      the connection pool, the one way into a transaction (hs_pg_enter/leave),
 *                   parameters, statement helpers and the one row collector, migrations under
 *                   an advisory lock, open/close, the ops tables
 *   migrations_pg.c the versioned schema (the version numbers mean what SQLite's mean)
 *   pg_tokens.c     tokens and their refresh leases        (store/tokens.h)
 *   pg_records.c    the sync records and the records feed  (store/records.h)
 *   pg_search.c     the job search over pg_trgm            (store/search.h)
 *   pg_service.c    settings, sessions, connections, flows (store/service.h)
 *   pg_webhooks.c   webhooks, events, verifications        (store/webhooks.h)
 *   pg_work.c       work items, syncs' progress, polls     (store/work.h)
 *   pg_outbox.c     the outbox and the policies            (store/outbox.h, store/policies.h)
 *   pg_budget.c     the Hover request budget               (store/budget.h)
 *   pg_retention.c  pruning, artifact references, sizes    (store/retention.h)
 *   pg_secrets.c    the key check, rotate-key
 *   pg_copy.c       whole tables read and written for `store copy` (store/copy.h)
 *
 * Connections. A process keeps a small pool of connections (HS_PG_CONNS), opened when first
 * needed. An operation outside a transaction of its thread takes a free connection for its own
 * transaction and gives it back at the end, so reads never wait behind another thread's write
 * transaction: PostgreSQL runs them side by side (MVCC). A transaction of the store interface
 * (begin .. commit) holds one connection for its thread until it ends; every operation of that
 * thread joins it (a write under a savepoint). A connection found dead (PostgreSQL restarted or
 * failed over) is reset when its next transaction begins, and that BEGIN is tried again once; a
 * connection lost inside a transaction fails the transaction, and its caller retries the work
 * later. */
#ifndef HS_STORE_PG_INTERNAL_H
#define HS_STORE_PG_INTERNAL_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/secrets.h"
#include "store/store.h"

/* Connections at most per store handle (per process, in practice). */
#define HS_PG_CONNS 4
/* Parameters of one statement at most. */
#define HS_PG_MAX_ARGS 32

/* Our own timestamps (timestamptz) as ISO-8601 UTC with milliseconds, like SQLite's text. */
#define HS_PG_ISO(col) "to_char((" col ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

struct pg_conn {
    PGconn *c;
    /* The change sequence taken by the open transaction, 0 until a row really changes. */
    int64_t txn_seq;
    bool user_txn;        /* held by begin .. commit of a thread */
    struct pg_conn *next; /* in the free list */
    /* While a thread holds it: what that thread held before (a transaction on another store
     * handle), given back when this transaction ends. */
    struct pg_conn *outer_conn;
    const struct pg_store *outer_store;
    bool outer_write;
};

struct pg_store {
    struct hs_store base;
    char *conninfo;
    pthread_mutex_t pool_lock;
    pthread_cond_t pool_cond;
    struct pg_conn *free_conns;
    int n_open;
    struct pg_conn conns[HS_PG_CONNS];
    /* The key that seals secrets at rest; NULL: clear. Every operation's own transaction holds
     * key_lock shared; rotate-key holds it exclusively, so the key changes between operations. */
    struct hs_secret_key *key;
    pthread_rwlock_t key_lock;
    /* The connection outside the pool that LISTENs for committed work (pg_work.c work_wait),
     * opened by the first wait, under listen_lock (one listening thread at a time). */
    pthread_mutex_t listen_lock;
    PGconn *listen;
};

static inline struct pg_store *hs_pg_of(struct hs_store *base)
{
    return (struct pg_store *)base;
}

/* A new connection of the store's conninfo, outside the pool (its NOTICEs silenced). */
int hs_pg_connect(struct pg_store *s, PGconn **out, struct hs_error *err);

/* ---- the one way into a transaction ---- */

enum pg_mode {
    PG_READ,       /* one snapshot for the whole operation (REPEATABLE READ, READ ONLY) */
    PG_WRITE,      /* a transaction of its own, or a savepoint of this thread's */
    PG_WRITE_ALONE /* its own transaction, committed before leave: refused inside this thread's */
};

struct pg_txn {
    struct pg_store *s;
    struct pg_conn *conn;
    PGconn *c;
    bool own; /* a transaction of its own (else joined the thread's) */
    bool write;
    int64_t seq_before; /* the transaction's txn_seq when the savepoint was taken */
};

int hs_pg_enter(struct pg_store *s, struct pg_txn *t, enum pg_mode mode, const char *what,
                struct hs_error *err);
/* Commits (rc HS_OK) or rolls back; a savepoint rolls back to itself and restores txn_seq. */
int hs_pg_leave(struct pg_txn *t, int rc, struct hs_error *err);

/* ---- parameters (text format; NULL values bind SQL NULL) ---- */

struct pg_args {
    int n;
    const char *v[HS_PG_MAX_ARGS];
    int len[HS_PG_MAX_ARGS];
    int fmt[HS_PG_MAX_ARGS];
    Oid type[HS_PG_MAX_ARGS]; /* 0: PostgreSQL infers it from the statement */
    char num[HS_PG_MAX_ARGS][32];
};
void hs_pg_text(struct pg_args *a, const char *v);
void hs_pg_int(struct pg_args *a, int64_t v);
void hs_pg_id(struct pg_args *a, int64_t v);    /* 0 or less: NULL (Hover ids are positive) */
void hs_pg_count(struct pg_args *a, int64_t v); /* below 0: NULL (absent) */
void hs_pg_real(struct pg_args *a, double v);   /* NaN or infinite: NULL (absent) */
void hs_pg_bool(struct pg_args *a, bool v);
void hs_pg_bytes(struct pg_args *a, const void *p, size_t n); /* bytea, binary */
/* A scope as a text[] literal, NULL (no filter) for a NULL scope; the caller frees. */
char *hs_pg_scope_array(const struct hs_scope *scope);

/* ---- statements ---- */

/* Maps a failed result or connection (the one place SQLSTATEs become hs_err). */
int hs_pg_fail(PGconn *c, const PGresult *r, struct hs_error *err, const char *what);
/* Runs sql; *res (may be NULL: then cleared) gets the result of a statement that succeeded. */
int hs_pg_exec(struct pg_txn *t, const char *sql, const struct pg_args *a, PGresult **res,
               const char *what, struct hs_error *err);
/* A statement without rows; *changes (may be NULL) gets the rows it changed. */
int hs_pg_run(struct pg_txn *t, const char *sql, const struct pg_args *a, int64_t *changes,
              const char *what, struct hs_error *err);
/* One integer of the first row (0 for no row or NULL). */
int hs_pg_int1(struct pg_txn *t, const char *sql, const struct pg_args *a, int64_t *out,
               const char *what, struct hs_error *err);

typedef int (*hs_pg_fill_fn)(struct pg_txn *t, const PGresult *r, int row, void *out,
                             struct hs_error *err);
/* The first row filled into `row` (zeroed first); no row is HS_ERR_NOT_FOUND (err left alone). */
int hs_pg_one(struct pg_txn *t, const char *sql, const struct pg_args *a, hs_pg_fill_fn fill,
              void *row, const char *what, struct hs_error *err);
/* The row collector: every row into a new element of a growing array (as hs_sqlite_rows). */
int hs_pg_rows(struct pg_txn *t, const char *sql, const struct pg_args *a, size_t elem,
               hs_pg_fill_fn fill, void (*clear)(void *row), void **out, size_t *n,
               const char *what, struct hs_error *err);
/* Fills a char * from column 0, and its clear. */
int hs_pg_fill_text(struct pg_txn *t, const PGresult *r, int row, void *out, struct hs_error *err);
void hs_pg_clear_text(void *row);
/* An operation of one statement by id in a write transaction of its own (or a savepoint):
 * $1 id, $2 num, $3 text. HS_ERR_NOT_FOUND with `missing` (a format of the id) when nothing
 * changed. */
int hs_pg_change_by_id(struct hs_store *base, const char *sql, int64_t id, int64_t num,
                       const char *text, const char *what, const char *missing,
                       struct hs_error *err);

/* Columns: a new string (NULL for SQL NULL), an integer (0 for NULL), a double (NaN for NULL). */
char *hs_pg_col_text(const PGresult *r, int row, int col);
int64_t hs_pg_col_int(const PGresult *r, int row, int col);
bool hs_pg_col_null(const PGresult *r, int row, int col);

/* ---- change sequence (pg_records.c) ---- */
int hs_pg_seq_peek(struct pg_txn *t, int64_t *out, struct hs_error *err);
int hs_pg_seq_take(struct pg_txn *t, int64_t seq, struct hs_error *err);

/* ---- secrets at rest (pg_secrets.c) ---- */
int hs_pg_seal(struct pg_store *s, const char *clear, const char *aad, char **out,
               struct hs_error *err);
int hs_pg_unseal(struct pg_store *s, const char *stored, const char *aad, char **out,
                 struct hs_error *err);
int hs_pg_key_check(struct pg_store *s, const struct hs_secret_key *key, struct hs_error *err);
/* Takes (on) or gives back the key lock exclusively for this thread: its own operations go on
 * meanwhile, every other thread's wait (rotate-key swaps the key with its commit). */
int hs_pg_key_exclusive(struct pg_store *s, bool on); /* HS_ERR_INTERNAL in a transaction */
int hs_pg_secrets_rekey(struct hs_store *base, const char *new_key, int64_t *count,
                        struct hs_error *err);

/* ---- whole tables for `store copy` (pg_copy.c; store.h's copy_* operations) ---- */
int hs_pg_copy_read(struct hs_store *base, const struct hs_copy_table *tables, size_t n,
                    const struct hs_copy_sink *sink, struct hs_error *err);
int hs_pg_copy_count(struct hs_store *base, const struct hs_copy_table *tb, int64_t *out,
                     struct hs_error *err);
int hs_pg_copy_clear(struct hs_store *base, const struct hs_copy_table *tb, struct hs_error *err);
int hs_pg_copy_write_begin(struct hs_store *base, const struct hs_copy_table *tb,
                           struct hs_copy_writer **out, struct hs_error *err);
int hs_pg_copy_write_row(struct hs_copy_writer *w, const struct hs_copy_value *v,
                         struct hs_error *err);
int hs_pg_copy_write_end(struct hs_copy_writer *w, int rc, struct hs_error *err);

/* ---- the concerns' tables ---- */
extern const struct hs_token_ops hs_pg_token_ops;
extern const struct hs_records_ops hs_pg_records_ops;
extern const struct hs_search_ops hs_pg_search_ops;
extern const struct hs_service_ops hs_pg_service_ops;
extern const struct hs_webhook_ops hs_pg_webhook_ops;
extern const struct hs_work_ops hs_pg_work_ops;
extern const struct hs_outbox_ops hs_pg_outbox_ops;
extern const struct hs_policy_ops hs_pg_policy_ops;
extern const struct hs_budget_ops hs_pg_budget_ops;
extern const struct hs_retention_ops hs_pg_retention_ops;

/* ---- named leases (pg_service.c; a row of `leases`) ----
 * Inside t's write transaction. take: the lease `name`, free or lapsed at now_ms, until
 * now_ms + lease_ms under the next fence (*fence; 0 when another claim's lease holds). move: the
 * lease of claim `fence` moved to until_ms (0: released), unless it was released or claimed
 * again; *moved says whether it was. The token refresh lease and the service's leases share them.
 */
int hs_pg_lease_take(struct pg_txn *t, const char *name, int64_t now_ms, int64_t lease_ms,
                     int64_t *fence, struct hs_error *err);
int hs_pg_lease_move(struct pg_txn *t, const char *name, int64_t fence, int64_t until_ms,
                     bool *moved, struct hs_error *err);

/* Inserts the item of a trigger's job or bumps it inside t (pg_work.c; event_accept and the
 * pending pass use it in their own transactions). */
struct hs_work_trigger;
int hs_pg_work_bump(struct pg_txn *t, const struct hs_work_trigger *tr, struct hs_error *err);

/* ---- connection_delete (pg_disconnect.c) ---- */
struct hs_connection_deleted;
int hs_pg_connection_delete(struct hs_store *base, const char *key, bool purge_records,
                            int64_t now_ms, const char *now_iso, struct hs_connection_deleted *out,
                            struct hs_error *err);

#endif
