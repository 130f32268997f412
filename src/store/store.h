/* store.h: the store handle, its transactions, and opening a back-end.
 *
 * The storage interface is split by concern, each a small table of function pointers in its own
 * header, included by the modules that use it and by no other:
 *   store/tokens.h    OAuth token pairs and their refresh lease (the Hover client's only store)
 *   store/records.h   jobs, models, artifacts, measurements, selections, runs, checkpoints and
 *                     the records feed
 *   store/search.h    the local job search
 *   store/service.h   the service's settings, browser sessions and the list of connections
 *   store/webhooks.h  registered webhooks, received events, signatures, verification codes
 *   store/work.h      the work queue: items with priorities and fenced leases, the syncs of
 *                     POST /api/syncs and their progress, the pending pass's polls
 *   store/outbox.h    CRM notifications
 *   store/policies.h  per-connection auto-sync policies
 *   store/budget.h    the installation's Hover request budget, shared by its processes
 *   store/retention.h pruning old rows in batches, the artifact files' references, sizes
 * struct hs_store holds one table per concern; call sites read st->records->job_upsert(st, ...).
 * A back-end implements every operation of every concern (hs_store_complete checks it when a
 * store opens): no caller tests for a missing operation. SQLite (store_sqlite.c and the
 * sqlite_*.c files) is the default back-end; every back-end runs the same storage suite
 * (tests/store). Strings returned in out-structs are owned by the caller. */
#ifndef HS_STORE_STORE_H
#define HS_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hoversync.h"

struct hs_store;
struct hs_token_ops;
struct hs_records_ops;
struct hs_search_ops;
struct hs_service_ops;
struct hs_webhook_ops;
struct hs_work_ops;
struct hs_outbox_ops;
struct hs_policy_ops;
struct hs_budget_ops;
struct hs_retention_ops;
struct hs_copy_table;
struct hs_copy_sink;
struct hs_copy_writer;
struct hs_copy_value;

/* What spans concerns: the store's life, its transactions, its secrets. */
struct hs_store_ops {
    const char *name; /* "sqlite", ... */
    void (*close)(struct hs_store *s);

    /* A write transaction of the calling thread, across concerns (a sync writes its records and
     * an outbox message together). Every write of the thread between begin and commit belongs
     * to it; rollback undoes it. Reads of that thread see its writes; other threads' reads go
     * on meanwhile and see the last commit. An operation that fails inside the transaction
     * leaves nothing of itself behind and the caller decides whether to commit the rest. A
     * failed commit rolls back. Operations documented as durable before they return (token
     * writes, event_accept, session_put, setting_put) refuse to run inside a transaction (its
     * commit would come later). No network I/O between begin and commit: the transaction holds
     * the store's writes up for every process. */
    int (*begin)(struct hs_store *s, struct hs_error *err);
    /* begin for writes a power cut may take back (never a crash of the process alone): a step's
     * progress that a person watches and the next commit rewrites. Its commit does not wait for
     * the disk (SQLite: synchronous=NORMAL for it, the WAL synced by the next commit of any
     * other transaction; PostgreSQL: synchronous_commit off); it ends like any other. */
    int (*begin_lazy)(struct hs_store *s, struct hs_error *err);
    int (*commit)(struct hs_store *s, struct hs_error *err);
    void (*rollback)(struct hs_store *s); /* harmless without a transaction */

    /* Seals every secret (OAuth tokens, webhook secrets) again under new_key (its text as
     * configured; NULL: stores them in clear), in one transaction; the store then uses that
     * key. *count (may be NULL) gets the number of values rewritten (store/secrets.h). */
    int (*secrets_rekey)(struct hs_store *s, const char *new_key, int64_t *count,
                         struct hs_error *err);

    /* Whole tables, for `store copy` (store/copy.h). copy_read: every row of tables[0..n), all
     * in one snapshot, given to sink. copy_count: the rows of t other than its initial ones.
     * copy_clear: every row of t deleted. copy_write_begin: an insertion of rows of t, each by
     * copy_write_row (values as copy_read gives them, secrets as stored), until copy_write_end
     * (rc: how it went; it frees w, and a failed rc undoes its rows). copy_clear and the writes
     * run inside this thread's transaction (begin .. commit). */
    int (*copy_read)(struct hs_store *s, const struct hs_copy_table *tables, size_t n,
                     const struct hs_copy_sink *sink, struct hs_error *err);
    int (*copy_count)(struct hs_store *s, const struct hs_copy_table *t, int64_t *out,
                      struct hs_error *err);
    int (*copy_clear)(struct hs_store *s, const struct hs_copy_table *t, struct hs_error *err);
    int (*copy_write_begin)(struct hs_store *s, const struct hs_copy_table *t,
                            struct hs_copy_writer **w, struct hs_error *err);
    int (*copy_write_row)(struct hs_copy_writer *w, const struct hs_copy_value *v,
                          struct hs_error *err);
    int (*copy_write_end)(struct hs_copy_writer *w, int rc, struct hs_error *err);
};

struct hs_store {
    const struct hs_store_ops *ops;
    const struct hs_token_ops *tokens;
    const struct hs_records_ops *records;
    const struct hs_search_ops *search;
    const struct hs_service_ops *service;
    const struct hs_webhook_ops *webhooks;
    const struct hs_work_ops *work;
    const struct hs_outbox_ops *outbox;
    const struct hs_policy_ops *policies;
    const struct hs_budget_ops *budget;
    const struct hs_retention_ops *retention;
};

/* HS_OK when every table of s is there and every operation of it is set; otherwise
 * HS_ERR_INTERNAL naming the first table with a hole. Every back-end's open calls it. */
int hs_store_complete(const struct hs_store *s, struct hs_error *err);

/* What a caller of the service may read: the rows of jobs read through one of these
 * connections (jobs.connection_key), and their models and artifacts. A NULL scope (the API
 * key) reads everything; a scope of no keys reads nothing. Records and search reads take one. */
struct hs_scope {
    const char *const *keys;
    size_t n;
};
/* True when scope lets connection `key` be read (a NULL scope lets every key). */
bool hs_scope_has(const struct hs_scope *scope, const char *key);

struct hs_store_options {
    /* HOVERSYNC_ENCRYPTION_KEY as configured (store/secrets.h); NULL or "": secrets in clear. A
     * store whose secrets are sealed under another key, or opened without its key, is refused
     * (HS_ERR_INVALID, with a message that says which). */
    const char *encryption_key;
    /* true: a store that does not exist yet (no file; a database without hoversync's schema)
     * is refused (HS_ERR_NOT_FOUND) and nothing is created. */
    bool must_exist;
    /* SQLite: true: the read connections read the file through a small page cache each instead
     * of mapping it. A batch command (backfill, sync) then keeps its resident memory small: the
     * pages a mapping touched count in it until the mapping goes. false (serve): the readers
     * share the kernel's pages of the file, which suits many searches at once. */
    bool unmapped_reads;
};

/* Opens the store at `location` (HOVERSYNC_DB / --db), creating it if needed and applying
 * pending migrations: a file path is a SQLite store (store/sqlite.h). o may be NULL. */
int hs_store_open(const char *location, const struct hs_store_options *o, struct hs_store **out,
                  struct hs_error *err);
void hs_store_close(struct hs_store *s);

#endif
