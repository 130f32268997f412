/* sqlite_internal.h: what the files of the SQLite back-end share (store_sqlite.c: connection,
 * migrations, tokens, transactions; sqlite_records.c: the sync records). Not for other modules. */
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

/* Who holds the store lock and why. */
enum sqlite_txn {
    SQ_TXN_NONE = 0, /* lock free, or held between statements of a token op */
    SQ_TXN_REFRESH,  /* token_refresh_begin .. end */
    SQ_TXN_USER,     /* records begin .. commit/rollback */
    SQ_TXN_OP,       /* one records op outside begin/commit */
};

struct sqlite_store {
    struct hs_store base;
    sqlite3 *db;
    /* Serialises the threads sharing this connection; held for a whole transaction. */
    pthread_mutex_t lock;
    /* The thread holding `lock` (hs_sqlite_thread_tag()), 0 when free: lets an op called inside
     * a transaction of its own thread join it instead of deadlocking on the lock. Atomic because
     * other threads read it without the lock. */
    _Atomic uintptr_t holder;
    enum sqlite_txn txn;
    /* The change sequence taken by the open transaction, 0 until a row really changes. */
    int64_t txn_seq;
    /* Group commit of event_accept (sqlite_events.c): requests queue here and one thread at a
     * time (the leader) commits every queued one in a single transaction, one fsync for all. */
    pthread_mutex_t gc_lock;
    pthread_cond_t gc_done;
    struct hs_sqlite_accept *gc_head, *gc_tail;
    bool gc_leader;
    /* The key that seals secrets at rest (secrets.h); NULL: they are stored in clear. */
    struct hs_secret_key *key;
};

/* The one place SQLite result codes become hs_err. */
int hs_sqlite_fail(struct sqlite_store *s, int rc, struct hs_error *err, const char *what);
/* Runs SQL without results (pragmas, BEGIN, COMMIT, SAVEPOINT ...). */
int hs_sqlite_exec(struct sqlite_store *s, const char *sql, struct hs_error *err);
/* A column as a new string (caller frees), NULL for SQL NULL. */
char *hs_sqlite_col_text(sqlite3_stmt *st, int i);
/* Prepares sql; a failure is mapped (what: for the message) and *st is NULL. */
int hs_sqlite_prep(struct sqlite_store *s, sqlite3_stmt **st, const char *sql, const char *what,
                   struct hs_error *err);
/* Steps a statement that returns no rows and finalizes it; *changes (may be NULL) gets the
 * number of rows it changed. */
int hs_sqlite_run(struct sqlite_store *s, sqlite3_stmt *st, int *changes, const char *what,
                  struct hs_error *err);
/* Binds text (NULL binds SQL NULL) / a Hover id (0 or less binds NULL: ids are positive). */
void hs_sqlite_bind_text(sqlite3_stmt *st, int i, const char *v);
void hs_sqlite_bind_id(sqlite3_stmt *st, int i, int64_t v);
/* A scope as a JSON array of its keys, for "key IN (SELECT value FROM json_each(?))"; NULL
 * (binds SQL NULL: no filter) for a NULL scope. The caller frees. */
char *hs_sqlite_scope_json(const struct hs_scope *scope);
/* The filter of rows of jobs (alias j) in a scope bound to ?N as hs_sqlite_scope_json. */
#define HS_SQL_IN_SCOPE(col, n)                                                                    \
    "(?" n " IS NULL OR " col " IN (SELECT value FROM json_each(?" n ")))"

/* Secrets at rest: the value to store for a clear one (sealed under s->key, or the clear value
 * without a key), and the clear value of a stored one; aad names its place ("table.column:row").
 * *out is new (NULL for NULL). */
int hs_sqlite_seal(struct sqlite_store *s, const char *clear, const char *aad, char **out,
                   struct hs_error *err);
int hs_sqlite_unseal(struct sqlite_store *s, const char *stored, const char *aad, char **out,
                     struct hs_error *err);

/* The places of a connection's tokens: the associated data of their sealed values. */
void hs_sqlite_token_places(const char *key, char *access, char *refresh, size_t n);
/* Secrets at rest (sqlite_secrets.c): the store file made private before SQLite opens it (its
 * -wal and -shm then get the same mode); the key checked against the one the store's secrets are
 * sealed under (and recorded); every secret sealed again under another key (or none). */
void hs_sqlite_make_private(const char *path);
int hs_sqlite_key_check(struct sqlite_store *s, const struct hs_secret_key *key,
                        struct hs_error *err);
int hs_sqlite_secrets_rekey(struct hs_store *base, const char *new_key, int64_t *count,
                            struct hs_error *err);

void hs_sqlite_lock(struct sqlite_store *s);
void hs_sqlite_unlock(struct sqlite_store *s);
/* True when the calling thread holds s->lock. */
bool hs_sqlite_held_by_me(struct sqlite_store *s);

/* The records ops (sqlite_records.c), plugged into the ops table by store_sqlite.c. */
int hs_sqlite_begin(struct hs_store *base, struct hs_error *err);
int hs_sqlite_commit(struct hs_store *base, struct hs_error *err);
void hs_sqlite_rollback(struct hs_store *base);
int hs_sqlite_job_upsert(struct hs_store *base, const struct hs_job *job,
                         const char *connection_key, bool *changed, struct hs_error *err);
int hs_sqlite_model_get(struct hs_store *base, int64_t model_id, struct hs_model_row *out,
                        struct hs_error *err);
int hs_sqlite_model_mark_synced(struct hs_store *base, int64_t model_id, const char *updated_at,
                                struct hs_error *err);
int hs_sqlite_artifact_get(struct hs_store *base, int64_t model_id, const char *kind,
                           struct hs_artifact_row *out, struct hs_error *err);
int hs_sqlite_artifact_put(struct hs_store *base, const struct hs_artifact_row *a, bool *changed,
                           struct hs_error *err);
int hs_sqlite_artifact_each(struct hs_store *base,
                            int (*fn)(void *ctx, const struct hs_artifact_row *a), void *ctx,
                            struct hs_error *err);
int hs_sqlite_measurements_put(struct hs_store *base, const struct hs_measurements *m,
                               bool *changed, struct hs_error *err);
int hs_sqlite_selection_put(struct hs_store *base, const struct hs_selection *sel,
                            struct hs_error *err);
int hs_sqlite_selections_open(struct hs_store *base, struct hs_selection **out, size_t *n,
                              struct hs_error *err);
int hs_sqlite_run_begin(struct hs_store *base, int64_t job_id, const char *trigger, int64_t *run_id,
                        struct hs_error *err);
int hs_sqlite_run_model_result(struct hs_store *base, int64_t run_id, int64_t model_id,
                               const char *result, const char *message, int64_t artifacts_fetched,
                               int64_t artifacts_unchanged, struct hs_error *err);
int hs_sqlite_run_end(struct hs_store *base, int64_t run_id, const char *status,
                      int64_t hover_requests, struct hs_error *err);
int hs_sqlite_export_since(struct hs_store *base, int64_t since, char **out, struct hs_error *err);
int hs_sqlite_export_since_scoped(struct hs_store *base, int64_t since,
                                  const struct hs_scope *scope, char **out, struct hs_error *err);
int hs_sqlite_artifact_by_sha_scoped(struct hs_store *base, const char *sha256,
                                     const struct hs_scope *scope, struct hs_artifact_row *out,
                                     struct hs_error *err);
int hs_sqlite_artifact_by_image_scoped(struct hs_store *base, int64_t image_id,
                                       const struct hs_scope *scope, struct hs_artifact_row *out,
                                       struct hs_error *err);
/* The service's reads (sqlite_records.c). */
int hs_sqlite_artifact_by_sha(struct hs_store *base, const char *sha256,
                              struct hs_artifact_row *out, struct hs_error *err);
int hs_sqlite_artifact_by_image(struct hs_store *base, int64_t image_id,
                                struct hs_artifact_row *out, struct hs_error *err);
int hs_sqlite_job_models_status(struct hs_store *base, int64_t job_id, struct hs_model_status **out,
                                size_t *n, struct hs_error *err);
int hs_sqlite_checkpoint_get(struct hs_store *base, const char *name, char **value,
                             struct hs_error *err);
int hs_sqlite_checkpoint_put(struct hs_store *base, const char *name, const char *value,
                             struct hs_error *err);
/* The event worker's reads (sqlite_worker.c). */
int hs_sqlite_events_last_accepted(struct hs_store *base, const char *connection_key,
                                   int64_t job_id, int64_t *event_id, struct hs_error *err);
int hs_sqlite_job_synced_seq(struct hs_store *base, int64_t job_id, int64_t *seq,
                             struct hs_error *err);
/* jobs_search (sqlite_search.c). */
int hs_sqlite_jobs_search(struct hs_store *base, const char *q, const char *state, int64_t page,
                          int64_t per, struct hs_job_summary **out, size_t *n, int64_t *total,
                          struct hs_error *err);
int hs_sqlite_jobs_search_scoped(struct hs_store *base, const char *q, const char *state,
                                 int64_t page, int64_t per, const struct hs_scope *scope,
                                 struct hs_job_summary **out, size_t *n, int64_t *total,
                                 struct hs_error *err);

/* Webhooks, events, work items, outbox, policies (sqlite_events.c). */
int hs_sqlite_webhook_put(struct hs_store *base, const struct hs_webhook_row *w,
                          struct hs_error *err);
int hs_sqlite_webhook_get(struct hs_store *base, int64_t id, struct hs_webhook_row *out,
                          struct hs_error *err);
int hs_sqlite_webhook_list(struct hs_store *base, struct hs_webhook_row **out, size_t *n,
                           struct hs_error *err);
int hs_sqlite_webhook_delete(struct hs_store *base, int64_t id, struct hs_error *err);
int hs_sqlite_event_accept(struct hs_store *base, const struct hs_event_row *e, bool schedule,
                           int64_t delay_ms, int64_t now_ms, int64_t *event_id,
                           struct hs_error *err);
int hs_sqlite_events_unverified(struct hs_store *base, int64_t webhook_id,
                                struct hs_event_row **out, size_t *n, struct hs_error *err);
int hs_sqlite_event_set_status(struct hs_store *base, int64_t event_id, const char *status,
                               struct hs_error *err);
int hs_sqlite_events_processed(struct hs_store *base, const char *connection_key, int64_t job_id,
                               int64_t up_to_event_id, struct hs_error *err);
int hs_sqlite_webhook_set_local_error(struct hs_store *base, int64_t id, const char *error,
                                      struct hs_error *err);
int hs_sqlite_webhook_access_get(struct hs_store *base, const char *access_id, int64_t *webhook_id,
                                 struct hs_error *err);
int hs_sqlite_webhook_access_put(struct hs_store *base, const char *access_id, int64_t webhook_id,
                                 struct hs_error *err);
int hs_sqlite_events_unverified_trim(struct hs_store *base, int64_t now_ms, int64_t *removed,
                                     struct hs_error *err);
int hs_sqlite_verification_add(struct hs_store *base, int64_t webhook_id, const char *code,
                               int64_t event_id, int64_t now_ms, struct hs_error *err);
int hs_sqlite_verification_claim(struct hs_store *base, int64_t now_ms, int64_t lease_ms,
                                 struct hs_verification *out, struct hs_error *err);
int hs_sqlite_verification_finish(struct hs_store *base, int64_t id, const char *status,
                                  int64_t next_attempt_ms, const char *error, struct hs_error *err);
int hs_sqlite_outbox_add(struct hs_store *base, const char *endpoint, int64_t job_id,
                         const char *payload, const char *idempotency_key, struct hs_error *err);
int hs_sqlite_outbox_next(struct hs_store *base, int64_t now_ms, struct hs_outbox_row *out,
                          struct hs_error *err);
int hs_sqlite_outbox_delivered(struct hs_store *base, int64_t id, struct hs_error *err);
int hs_sqlite_outbox_retry(struct hs_store *base, int64_t id, int64_t next_attempt_ms,
                           const char *error, struct hs_error *err);
int hs_sqlite_outbox_depth(struct hs_store *base, int64_t *pending, struct hs_error *err);
int hs_sqlite_policy_get(struct hs_store *base, const char *connection_key, char **policy,
                         struct hs_error *err);
int hs_sqlite_policy_put(struct hs_store *base, const char *connection_key, const char *policy,
                         struct hs_error *err);

/* An op's transaction (sqlite_events.c): its own BEGIN (IMMEDIATE for a write) under the store
 * lock, or a savepoint of the caller's when this thread has one open. */
struct hs_sqlite_op {
    bool own;
    bool write;
};
int hs_sqlite_op_enter(struct sqlite_store *s, struct hs_sqlite_op *op, bool write,
                       struct hs_error *err);
int hs_sqlite_op_leave(struct sqlite_store *s, struct hs_sqlite_op *op, int rc,
                       struct hs_error *err);

/* The work queue, syncs' progress, pending polls (sqlite_queue.c). */
int hs_sqlite_work_bump(struct sqlite_store *s, const struct hs_work_trigger *t,
                        struct hs_error *err);
int hs_sqlite_work_schedule(struct hs_store *base, const struct hs_work_trigger *t,
                            struct hs_error *err);
int hs_sqlite_work_claim(struct hs_store *base, const char *worker, const char *only_connection,
                         int64_t now_ms, int64_t lease_ms, struct hs_work_item *out,
                         int64_t *next_due_ms, struct hs_error *err);
int hs_sqlite_work_fence(struct hs_store *base, const struct hs_work_item *w, int64_t now_ms,
                         struct hs_error *err);
int hs_sqlite_work_renew(struct hs_store *base, const struct hs_work_item *w, int64_t now_ms,
                         int64_t lease_ms, struct hs_error *err);
int hs_sqlite_work_done(struct hs_store *base, const struct hs_work_item *w, int64_t now_ms,
                        struct hs_error *err);
int hs_sqlite_work_retry(struct hs_store *base, const struct hs_work_item *w, int64_t now_ms,
                         int64_t not_before_ms, const char *error, struct hs_error *err);
int hs_sqlite_work_get(struct hs_store *base, const char *connection_key, int64_t job_id,
                       struct hs_work_item *out, struct hs_error *err);
int hs_sqlite_work_depth(struct hs_store *base, int64_t *due, int64_t *total, int64_t now_ms,
                         struct hs_error *err);
int hs_sqlite_work_release_dead(struct hs_store *base, bool (*dead)(void *ctx, const char *worker),
                                void *ctx, int64_t *released, struct hs_error *err);
int hs_sqlite_sync_create(struct hs_store *base, const struct hs_sync_row *r, int64_t now_ms,
                          struct hs_error *err);
int hs_sqlite_sync_get(struct hs_store *base, const char *id, struct hs_sync_row *out,
                       struct hs_error *err);
int hs_sqlite_sync_version(struct hs_store *base, const char *id, int64_t *version,
                           struct hs_error *err);
int hs_sqlite_sync_progress(struct hs_store *base, const char *connection_key, int64_t job_id,
                            const struct hs_sync_model_row *m, int64_t now_ms, int64_t *changed,
                            int64_t *finished, struct hs_error *err);
int hs_sqlite_syncs_finish(struct hs_store *base, const char *connection_key, int64_t job_id,
                           const char *error_code, const char *error_message, int64_t now_ms,
                           int64_t *finished, struct hs_error *err);
int hs_sqlite_syncs_expire(struct hs_store *base, int64_t before_ms, int64_t *removed,
                           struct hs_error *err);
int hs_sqlite_syncs_count(struct hs_store *base, int64_t *queued, int64_t *running,
                          struct hs_error *err);
int hs_sqlite_pending_poll(struct hs_store *base, int64_t now_ms, int64_t first_ms, int64_t cap_ms,
                           const char *const *skip, size_t n_skip, struct hs_pending_job **out,
                           size_t *n, struct hs_error *err);

#endif
