/* work.h: the work queue (store.h; docs/ARCHITECTURE.md "The work queue", docs/WEBHOOKS.md):
 * every background sync is a work item of a job of a connection, with a priority, a due time,
 * attempts with backoff and a fenced lease, claimed by workers of any process; the syncs asked
 * for through POST /api/syncs and their progress per model, so that any process may serve them;
 * and the pending pass's polls of jobs with open selections. Items are also scheduled by
 * event_accept (store/webhooks.h) in the delivery's own transaction.
 *
 * Every write below joins the caller's transaction when there is one (a sync's progress commits
 * with the artifact or the result it reports, and with the fence of the run's claim). */
#ifndef HS_STORE_WORK_H
#define HS_STORE_WORK_H

#include "store/store.h"

/* Priorities of work items: higher runs first. */
#define HS_WORK_PRIO_BULK        0  /* backfill */
#define HS_WORK_PRIO_BACKGROUND  10 /* webhook events, reconciliation, the pending pass */
#define HS_WORK_PRIO_INTERACTIVE 20 /* a person waits: POST /api/syncs */

/* What asks for a pass over a job (work_schedule). */
struct hs_work_trigger {
    const char *connection_key;
    int64_t job_id;
    const char *reason; /* "webhook", "api", "reconcile", "pending", "backfill", ... */
    int priority;       /* HS_WORK_PRIO_* */
    int64_t now_ms;     /* unix ms: when the trigger commits */
    /* An item nobody runs is due at due_ms (now_ms: at once). One being run makes one more
     * pass, due rerun_ms after now_ms (so a burst of events during a run costs one pass). */
    int64_t due_ms;
    int64_t rerun_ms;
    bool now;            /* due at due_ms even when backing off after a failure (asked again) */
    const char *payload; /* optional: the job as a list page gave it (JSON), read at now_ms */
};

/* One unit of background work: a job of a connection to re-read and sync. Triggers about the
 * same job coalesce into one item (Hover's payloads carry no id or time: they are triggers). */
struct hs_work_item {
    int64_t id;
    char *connection_key;
    int64_t job_id;
    char *reason;          /* "webhook", "reconcile", "pending", ... (the latest) */
    int priority;          /* the highest of the triggers since the item was created */
    int64_t generation;    /* bumped by every new trigger; done() only deletes the generation it
                              claimed, so a trigger arriving during a run schedules another pass */
    int64_t attempts;      /* failed runs since the last success */
    int64_t not_before_ms; /* unix ms: due */
    int64_t claim;         /* the fencing token of this claim (the item's claim counter) */
    int64_t lease_until_ms;
    int64_t trigger_ms; /* unix ms of the newest trigger */
    char *payload;      /* the job as listed (JSON), or NULL */
    int64_t payload_ms; /* when the payload was read */
    char *last_error;
};
void hs_work_item_clear(struct hs_work_item *w);

/* One model of a sync, as GET /api/syncs/{id} shows it. In sync_progress, NULL strings and
 * negative counts leave the stored value as it is. */
struct hs_sync_model_row {
    int64_t model_id;
    char *name;
    bool when_ready;
    char *result; /* "synced", "pending", "failed_upstream", "error"; NULL until known */
    char *message;
    int64_t artifacts_done, artifacts_total;
    char *pdf_sha256, *json_sha256; /* the stored PDF and summarized measurements JSON */
};

/* A sync asked for through POST /api/syncs. */
struct hs_sync_row {
    char *id;
    char *connection_key;
    int64_t job_id;
    char *status;                     /* "queued", "running", "done", "failed" */
    char *result;                     /* "synced", "partial", "failed"; NULL until finished */
    char *error_code, *error_message; /* status failed: the job could not be synced at all */
    int64_t version;                  /* bumped by every change */
    int64_t created_ms, finished_ms;  /* unix ms; finished_ms 0 while queued or running */
    struct hs_sync_model_row *models; /* in the order they were asked */
    size_t n_models;
};
void hs_sync_row_clear(struct hs_sync_row *r);

/* A job whose open selections the pending pass polls (pending_poll). */
struct hs_pending_job {
    char *connection_key;
    int64_t job_id;
    int64_t interval_ms; /* the wait before the poll after this one */
};
void hs_pending_jobs_free(struct hs_pending_job *v, size_t n);

struct hs_work_ops {
    /* Inserts the job's item or adds a trigger to it (generation + 1, the highest priority,
     * the latest reason and payload); see struct hs_work_trigger for its due time. An item
     * backing off after a failure keeps its due time unless the trigger is interactive or says
     * now. */
    int (*work_schedule)(struct hs_store *s, const struct hs_work_trigger *t, struct hs_error *err);
    /* Claims the next due item (not_before <= now, not leased, or lease ended) for lease_ms:
     * highest priority first; within one, across connections in turn (fair between orgs),
     * then oldest due first. The claim gets a new fencing token, and the job's queued syncs
     * turn running (syncs_finish ends them). only_connection (NULL: any): the items of that
     * connection alone (a process that holds one connection's credential). HS_ERR_NOT_FOUND
     * when none is due; *next_due_ms (may be NULL) then gets the due time of the next item that
     * is not due yet, 0 if none. */
    int (*work_claim)(struct hs_store *s, const char *worker, const char *only_connection,
                      int64_t now_ms, int64_t lease_ms, struct hs_work_item *out,
                      int64_t *next_due_ms, struct hs_error *err);
    /* The fence: HS_ERR_CONFLICT unless w's claim still holds at now_ms (the item was not
     * claimed again since, and the lease has not ended). renew also extends the lease; done,
     * retry and the run's own writes (in a transaction with work_fence) check it, so a worker
     * whose lease lapsed commits nothing more: the item runs again elsewhere. */
    int (*work_fence)(struct hs_store *s, const struct hs_work_item *w, int64_t now_ms,
                      struct hs_error *err);
    int (*work_renew)(struct hs_store *s, const struct hs_work_item *w, int64_t now_ms,
                      int64_t lease_ms, struct hs_error *err);
    /* Done: deletes the item if its generation is still the claimed one, else releases it (a
     * newer trigger came in: it runs again when due). */
    int (*work_done)(struct hs_store *s, const struct hs_work_item *w, int64_t now_ms,
                     struct hs_error *err);
    /* Failed: releases it for not_before_ms with attempts + 1 and the error. */
    int (*work_retry)(struct hs_store *s, const struct hs_work_item *w, int64_t now_ms,
                      int64_t not_before_ms, const char *error, struct hs_error *err);
    /* The job's item as it stands; HS_ERR_NOT_FOUND when it has none. */
    int (*work_get)(struct hs_store *s, const char *connection_key, int64_t job_id,
                    struct hs_work_item *out, struct hs_error *err);
    /* Items due at now_ms (not leased) and in all; *oldest_due_ms (may be NULL) gets the
     * earliest due time among the due ones (unix ms; 0 when none is due), so that a reader
     * tells how long work has been waiting for a worker. */
    int (*work_depth)(struct hs_store *s, int64_t *due, int64_t *total, int64_t *oldest_due_ms,
                      int64_t now_ms, struct hs_error *err);
    /* Hands back w's claim (a process stopping before its run ended): the item is free and due
     * again at once (its attempts unchanged) for any worker to claim, and the run's later
     * writes are fenced out. HS_ERR_CONFLICT when the claim no longer holds. */
    int (*work_release)(struct hs_store *s, const struct hs_work_item *w, int64_t now_ms,
                        struct hs_error *err);
    /* Frees the items claimed by workers that `dead` says are gone (a process restarted after a
     * kill -9 need not wait for its old leases to end); *released (may be NULL) gets how many.
     * dead is called inside the store's transaction: it must not use the store. */
    int (*work_release_dead)(struct hs_store *s, bool (*dead)(void *ctx, const char *worker),
                             void *ctx, int64_t *released, struct hs_error *err);
    /* Waits until some process commits work that may be due (work_schedule, event_accept, the
     * pending pass, work_retry, work_release, a work_done that leaves a newer trigger,
     * work_release_dead):
     * *woken true; or until cancel_fd (-1: none) is readable or timeout_ms passes: *woken
     * false. Wake-ups may be spurious; the caller claims and finds out. PostgreSQL: LISTEN on a
     * connection of its own (those writes NOTIFY in their transaction, heard on commit), one
     * listening thread per store handle at a time (another caller just waits); a lost
     * connection is an error, and the next call opens a new one and says *woken (a commit may
     * have gone unheard). SQLite: its processes share a file and no channel, so it only waits:
     * workers find other processes' items by polling, and this process's producers wake its
     * workers themselves (worker/events.h). */
    int (*work_wait)(struct hs_store *s, int cancel_fd, int64_t timeout_ms, bool *woken,
                     struct hs_error *err);

    /* A new sync (queued, version 1) and its models, in the caller's transaction (with the
     * selections and the job's work item). */
    int (*sync_create)(struct hs_store *s, const struct hs_sync_row *r, int64_t now_ms,
                       struct hs_error *err);
    /* The sync and its models; HS_ERR_NOT_FOUND for an unknown (or expired) id. */
    int (*sync_get)(struct hs_store *s, const char *id, struct hs_sync_row *out,
                    struct hs_error *err);
    int (*sync_version)(struct hs_store *s, const char *id, int64_t *version, struct hs_error *err);
    /* Progress of one model of the job, into every sync of the job that has the model and has
     * not seen it synced yet (a finished one too: a "sync when ready" model lands later). A
     * running sync whose models all have a result is done. Versions of changed syncs are
     * bumped; *changed and *finished (may be NULL) get how many changed, and ended. */
    int (*sync_progress)(struct hs_store *s, const char *connection_key, int64_t job_id,
                         const struct hs_sync_model_row *m, int64_t now_ms, int64_t *changed,
                         int64_t *finished, struct hs_error *err);
    /* Ends the job's running syncs: done (their result by their models') or, with error_code,
     * failed with that error. *finished (may be NULL) gets how many. */
    int (*syncs_finish)(struct hs_store *s, const char *connection_key, int64_t job_id,
                        const char *error_code, const char *error_message, int64_t now_ms,
                        int64_t *finished, struct hs_error *err);
    /* Deletes the syncs finished before before_ms; *removed (may be NULL) gets how many. */
    int (*syncs_expire)(struct hs_store *s, int64_t before_ms, int64_t *removed,
                        struct hs_error *err);
    /* Syncs queued and running now. */
    int (*syncs_count)(struct hs_store *s, int64_t *queued, int64_t *running, struct hs_error *err);

    /* The pending pass, in one transaction: forgets the jobs that have no open selection any
     * more; starts polling (first poll first_ms from now, at most cap_ms) the jobs that have
     * open selections and no work item, except those of the connections in skip (their
     * webhook reports the changes); and for each job whose poll is due and that has no work
     * item, schedules one (reason "pending", background) and doubles its interval up to cap_ms.
     * *out gets those jobs (caller frees with hs_pending_jobs_free). */
    int (*pending_poll)(struct hs_store *s, int64_t now_ms, int64_t first_ms, int64_t cap_ms,
                        const char *const *skip, size_t n_skip, struct hs_pending_job **out,
                        size_t *n, struct hs_error *err);
};

/* Sleeps until cancel_fd (-1: none) is readable or timeout_ms passes (a back-end's work_wait
 * when it has nothing to listen to). */
void hs_work_wait_idle(int cancel_fd, int64_t timeout_ms);

#endif
