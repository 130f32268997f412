/* store.h: the storage interface. The engine and the client see only this struct of function
 * pointers; SQLite (store_sqlite.c) is the default back-end and every back-end passes the same
 * test suite (tests/store). Strings returned in out-structs are owned by the caller. */
#ifndef HS_STORE_STORE_H
#define HS_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hoversync.h"

/* An OAuth token pair of one credential (a connected Hover org). */
struct hs_token {
    char *access_token;
    char *refresh_token;
    int64_t expires_at; /* unix seconds; 0 when unknown */
    int64_t owner_id;   /* the org the grant covers; 0 when unknown */
    char *owner_type;
    int64_t generation; /* bumped by every save: a reader can tell that a rotation happened */
};
void hs_token_clear(struct hs_token *t);
void hs_token_copy(struct hs_token *dst, const struct hs_token *src);

/* ---- sync records (see docs/ARCHITECTURE.md "Sync") ----
 * Every row that the sync engine writes carries a change sequence: a store-wide counter bumped in
 * the transaction that really changed the row (an unchanged upsert leaves it as it was). The
 * records feed returns rows whose sequence is above a cursor. */

/* What the store remembers of a model between syncs. */
struct hs_model_row {
    int64_t id, job_id;
    char *name, *state, *deliverable;
    char *updated_at;        /* Hover's updated_at as last seen */
    char *synced_updated_at; /* Hover's updated_at when its artifacts were last all stored; NULL
                                if never fully synced */
    int64_t change_seq;
};
void hs_model_row_clear(struct hs_model_row *m);

/* One stored artifact (measurements JSON version, PDF, export) or image of a model. */
struct hs_artifact_row {
    int64_t model_id;
    char *kind; /* "measurements.json", "measurements.full_json", "measurements.pdf",
                   "image.<id>", ... */
    char *source_url;
    char *sha256; /* hex */
    int64_t bytes;
    char *content_type;
    char *path;       /* relative to the data directory: blobs/ab/cd/<sha256> */
    char *etag;       /* the validator the server gave, for If-None-Match */
    char *fetched_at; /* ISO-8601 */
    int64_t image_id; /* images only, else 0 */
    int64_t change_seq;
};
void hs_artifact_row_clear(struct hs_artifact_row *a);

/* Headline figures extracted from the summarized measurements JSON; NaN / -1 when absent. */
struct hs_measurements {
    int64_t model_id;
    double roof_area_sqft;
    int64_t roof_facets;
    char *predominant_pitch;
    double ridges_ft, hips_ft, valleys_ft, rakes_ft, eaves_ft;
    double siding_area_sqft;
    double facade_area_sqft;
    int64_t openings_count;
    double openings_area_sqft;
    double living_area_sqft; /* sketch_json (deliverables 5, 6) */
    const char *raw_json;    /* the summarized document, stored beside the columns */
};

/* The selection of a model for sync: what the user asked for, kept until it is done. */
enum hs_selection_status {
    HS_SEL_SELECTED = 0, /* accepted, not yet handled (or interrupted) */
    HS_SEL_SYNCED,
    HS_SEL_PENDING, /* model not complete yet: synced when it is */
    HS_SEL_FAILED_UPSTREAM,
    HS_SEL_ERROR, /* our side failed: retried by the next sync --pending */
};
const char *hs_selection_status_name(enum hs_selection_status s);
/* The reverse of hs_selection_status_name; HS_ERR_PARSE for an unknown name. */
int hs_selection_status_parse(const char *name, enum hs_selection_status *out);

struct hs_selection {
    int64_t job_id, model_id;
    enum hs_selection_status status;
    char *reason;
    char *connection_key;
};
void hs_selection_clear(struct hs_selection *s);

/* A job as a search result lists it (jobs_search). */
struct hs_job_summary {
    int64_t id;
    char *name;
    struct hs_address address; /* no coordinates */
    char *reconstruction_state;
    char *updated_at; /* Hover's updated_at */
    int64_t models_count, complete_models;
};
void hs_job_summaries_free(struct hs_job_summary *v, size_t n);

/* ---- the service (hoversync serve, src/server) ---- */

/* A browser session: the token itself is never stored, only its SHA-256. */
struct hs_session {
    char *token_sha256; /* hex */
    char *csrf_token;   /* sent back by the page in X-CSRF-Token on state-changing calls */
    int64_t created_at, expires_at; /* unix seconds */
    char *user;                     /* the CRM's user id, or NULL */
    /* The connections (Hover orgs) the session may use, by key; it sees nothing of the others.
     * Stored with the session (session_put replaces them). */
    char **connections;
    size_t n_connections;
};
void hs_session_clear(struct hs_session *s);

/* What a caller of the service may read: the rows of jobs read through one of these
 * connections (jobs.connection_key), and their models and artifacts. A NULL scope (the API
 * key) reads everything; a scope of no keys reads nothing. */
struct hs_scope {
    const char *const *keys;
    size_t n;
};
/* True when scope lets connection `key` be read (a NULL scope lets every key). */
bool hs_scope_has(const struct hs_scope *scope, const char *key);

/* A connected Hover org (a stored credential). */
struct hs_connection_row {
    char *key;          /* "org-463605", "default", or a name given at connect time */
    int64_t owner_id;   /* the org; 0 when unknown */
    char *owner_type;   /* "orgs", or NULL */
    char *connected_at; /* ISO-8601: when it was first connected */
    bool has_token;     /* a token pair is stored */
};
void hs_connection_rows_free(struct hs_connection_row *rows, size_t n);

/* What the store knows of one model of a job: synced or not, and its selection. */
struct hs_model_status {
    int64_t model_id;
    char *synced_updated_at; /* Hover's updated_at at the last complete sync; NULL: never */
    bool has_selection;
    enum hs_selection_status selection; /* valid when has_selection */
    char *reason;                       /* the selection's reason, or NULL */
};
void hs_model_statuses_free(struct hs_model_status *v, size_t n);

/* ---- webhooks, received events, background work, CRM notifications (docs/WEBHOOKS.md) ---- */

/* A webhook registered at Hover for one connection (org). */
struct hs_webhook_row {
    int64_t id; /* Hover's webhook id */
    char *connection_key;
    char *url;
    char *hmac_secret; /* a secret: never logged */
    char *verified_at; /* NULL until verified */
    char *last_error;  /* Hover's last_error as last read */
    char *created_at;
    char *local_error; /* our own failure with it (a verification code Hover refused for good);
                          webhook_put leaves it alone: webhook_set_local_error writes it */
};
void hs_webhook_row_clear(struct hs_webhook_row *w);
/* Frees an array of rows (webhook_list); NULL is fine. */
void hs_webhook_rows_free(struct hs_webhook_row *v, size_t n);
/* Healthy, as `hoversync status` says: verified, no error from Hover (last_error as last read)
 * and none of ours (local_error). Hover then delivers the connection's events. */
bool hs_webhook_row_healthy(const struct hs_webhook_row *w);

/* A delivery as received, stored raw before it is acknowledged. */
struct hs_event_row {
    int64_t id;
    int64_t webhook_id;
    char *connection_key; /* NULL when the webhook is not known yet (verification race) */
    char *event;          /* "job-state-changed-v2", "model-state-changed", unknown ones too */
    int64_t job_id;       /* 0 when the event names none */
    int64_t model_id;
    char *state;
    char *body; /* raw bytes as received (may hold NULs: use body_len) */
    size_t body_len;
    char *headers_json; /* the signed headers, for audit and late verification */
    char *received_at;
    char *status; /* "accepted", "unverified" (signature not checkable yet), "processed",
                     "ignored" (unknown type, or nothing to do), "rejected" */
    /* event_accept's inputs only (borrowed; reads leave them NULL): */
    const char *replay_key;  /* remembered until replay_until_ms; already remembered: a replay,
                                nothing is stored (see event_accept) */
    int64_t replay_until_ms; /* unix ms */
    const char *verify_code; /* queued for webhook_id in the same transaction (once per code) */
};
void hs_event_row_clear(struct hs_event_row *e);
/* Frees an array of rows (events_unverified); NULL is fine. */
void hs_event_rows_free(struct hs_event_row *v, size_t n);

/* Deliveries kept "unverified" (no known secret verifies them yet: the verification race) are
 * bounded whoever sends them: at most this many in all (the oldest go first), none older than
 * this. event_accept enforces both when it keeps one; events_unverified_trim on its own. */
#define HS_STORE_UNVERIFIED_MAX    1000
#define HS_STORE_UNVERIFIED_TTL_MS (15 * 60 * 1000LL)

/* A verification code to send to Hover (PUT /api/v2/webhooks/{code}/verify), claimed by
 * background work. */
struct hs_verification {
    int64_t id;
    int64_t webhook_id;
    char *code;
    int64_t event_id; /* the delivery that carried it, 0 when unknown */
    int64_t attempts; /* failed calls so far */
    int64_t created_ms;
};
void hs_verification_clear(struct hs_verification *v);

/* A notification for a CRM endpoint, kept until the endpoint acknowledges it. */
struct hs_outbox_row {
    int64_t id;
    char *endpoint;
    int64_t job_id;
    int64_t seq_in_job; /* delivered in this order per (endpoint, job) */
    char *idempotency_key;
    char *payload; /* JSON */
    int64_t attempts;
    int64_t next_attempt_ms;
    char *last_error;
};
void hs_outbox_row_clear(struct hs_outbox_row *o);

/* ---- the work queue, syncs and their progress, pending polls (docs/ARCHITECTURE.md "The work
 * queue"; SQLite: sqlite_queue.c) ---- */

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

struct hs_store;

struct hs_store_ops {
    const char *name;
    void (*close)(struct hs_store *s);

    /* The token pair of credential `key`; HS_ERR_NOT_FOUND when none is stored. */
    int (*token_load)(struct hs_store *s, const char *key, struct hs_token *out,
                      struct hs_error *err);
    /* Stores a pair (insert or replace), durably, before returning. */
    int (*token_save)(struct hs_store *s, const char *key, const struct hs_token *t,
                      struct hs_error *err);
    /* A refresh of one credential runs between begin and end, and no other refresh of it (in
     * this process or another) can run at the same time: begin waits for an exclusive lock and
     * then re-reads the current pair into *current (HS_ERR_NOT_FOUND if none), so that a caller
     * that waited sees the pair another refresher just stored. end stores `rotated` (durably)
     * and releases the lock; with rotated == NULL it releases the lock and stores nothing. */
    int (*token_refresh_begin)(struct hs_store *s, const char *key, struct hs_token *current,
                               struct hs_error *err);
    int (*token_refresh_end)(struct hs_store *s, const char *key, const struct hs_token *rotated,
                             struct hs_error *err);

    /* ---- sync records ----
     * A write transaction: every write below runs inside begin/commit; rollback undoes it. */
    int (*begin)(struct hs_store *s, struct hs_error *err);
    int (*commit)(struct hs_store *s, struct hs_error *err);
    void (*rollback)(struct hs_store *s);

    /* Upserts the job (address, customer, external id, states, timestamps, raw JSON) and every
     * model on it (name, state, deliverable, updated_at); *changed (may be NULL) tells whether
     * any row really changed. connection_key: the connection it was read through. */
    int (*job_upsert)(struct hs_store *s, const struct hs_job *job, const char *connection_key,
                      bool *changed, struct hs_error *err);
    int (*model_get)(struct hs_store *s, int64_t model_id, struct hs_model_row *out,
                     struct hs_error *err); /* HS_ERR_NOT_FOUND if unknown */
    /* Records that every artifact of the model was stored while Hover said updated_at. */
    int (*model_mark_synced)(struct hs_store *s, int64_t model_id, const char *updated_at,
                             struct hs_error *err);

    int (*artifact_get)(struct hs_store *s, int64_t model_id, const char *kind,
                        struct hs_artifact_row *out, struct hs_error *err); /* NOT_FOUND */
    /* Insert or update by (model_id, kind); *changed when the bytes (sha256) or URL changed. */
    int (*artifact_put)(struct hs_store *s, const struct hs_artifact_row *a, bool *changed,
                        struct hs_error *err);
    /* Every artifact row (for tests and the orphan check): callback per row; stop on non-zero. */
    int (*artifact_each)(struct hs_store *s, int (*fn)(void *ctx, const struct hs_artifact_row *a),
                         void *ctx, struct hs_error *err);

    int (*measurements_put)(struct hs_store *s, const struct hs_measurements *m, bool *changed,
                            struct hs_error *err);

    /* Selections: insert or update by (job_id, model_id). */
    int (*selection_put)(struct hs_store *s, const struct hs_selection *sel, struct hs_error *err);
    /* Selections whose status is SELECTED, PENDING or ERROR (work left to do), oldest first;
     * the caller frees with hs_selections_free. */
    int (*selections_open)(struct hs_store *s, struct hs_selection **out, size_t *n,
                           struct hs_error *err);

    /* Sync runs and their per-model result log. */
    int (*run_begin)(struct hs_store *s, int64_t job_id, const char *trigger, int64_t *run_id,
                     struct hs_error *err);
    int (*run_model_result)(struct hs_store *s, int64_t run_id, int64_t model_id,
                            const char *result, const char *message, int64_t artifacts_fetched,
                            int64_t artifacts_unchanged, struct hs_error *err);
    int (*run_end)(struct hs_store *s, int64_t run_id, const char *status, int64_t hover_requests,
                   struct hs_error *err);

    /* The records feed: every job, model and artifact whose change sequence is above `since`,
     * as {"cursor":N,"jobs":[...],"models":[...],"artifacts":[...]} (see docs/RECORDS.md);
     * *out is a new JSON string the caller frees. */
    int (*export_since)(struct hs_store *s, int64_t since, char **out, struct hs_error *err);

    /* Named checkpoints (backfill progress). get: HS_ERR_NOT_FOUND when unset. */
    int (*checkpoint_get)(struct hs_store *s, const char *name, char **value, struct hs_error *err);
    int (*checkpoint_put)(struct hs_store *s, const char *name, const char *value,
                          struct hs_error *err);

    /* ---- search (src/search) ----
     * The stored jobs matching q, a page of them: every word of q is a prefix of a word of the
     * job's name, address, customer, external id or capturing user ("4312 mea" finds "4312
     * Meadow Drive"), best match first (bm25), then most recently updated at Hover; q of one
     * word shorter than 3 characters (the first keystrokes, matching much of the store): the
     * newest jobs (highest Hover id) first, unranked. q NULL or blank: every job, most recently
     * updated first; q without any searchable word (only punctuation): none. state: "completed",
     * "failed" (the job's reconstruction_state) or NULL. page from 1, per 1..100. *out gets the
     * page (caller frees with hs_job_summaries_free; it may be NULL when *n is 0), *total the
     * number of matches on every page. */
    int (*jobs_search)(struct hs_store *s, const char *q, const char *state, int64_t page,
                       int64_t per, struct hs_job_summary **out, size_t *n, int64_t *total,
                       struct hs_error *err);

    /* ---- the service (src/server) ----
     * Small named settings (the API key's hash, ...). get: HS_ERR_NOT_FOUND when unset. */
    int (*setting_get)(struct hs_store *s, const char *key, char **value, struct hs_error *err);
    int (*setting_put)(struct hs_store *s, const char *key, const char *value,
                       struct hs_error *err);
    /* Stores a session (by token_sha256) and deletes every session expired at its created_at. */
    int (*session_put)(struct hs_store *s, const struct hs_session *ss, struct hs_error *err);
    /* The session whose token hashes to token_sha256, if it has not expired at now_s;
     * HS_ERR_NOT_FOUND otherwise. */
    int (*session_get)(struct hs_store *s, const char *token_sha256, int64_t now_s,
                       struct hs_session *out, struct hs_error *err);
    /* Every stored connection, first connected first (caller frees with
     * hs_connection_rows_free; *out may be NULL when *n is 0). */
    int (*connections_list)(struct hs_store *s, struct hs_connection_row **out, size_t *n,
                            struct hs_error *err);
    /* An artifact row holding these bytes (hex sha256); HS_ERR_NOT_FOUND if none. */
    int (*artifact_by_sha)(struct hs_store *s, const char *sha256, struct hs_artifact_row *out,
                           struct hs_error *err);
    /* The stored image with this Hover image id (kind "image.<id>"); HS_ERR_NOT_FOUND if none. */
    int (*artifact_by_image)(struct hs_store *s, int64_t image_id, struct hs_artifact_row *out,
                             struct hs_error *err);
    /* Per model of the job (stored models, and selections of models not stored yet), ordered by
     * model id: its sync mark and selection (caller frees with hs_model_statuses_free). */
    int (*job_models_status)(struct hs_store *s, int64_t job_id, struct hs_model_status **out,
                             size_t *n, struct hs_error *err);
    /* jobs_search, export_since, artifact_by_sha and artifact_by_image within a scope (a
     * browser session's connections); scope NULL: the same as the unscoped op. */
    int (*jobs_search_scoped)(struct hs_store *s, const char *q, const char *state, int64_t page,
                              int64_t per, const struct hs_scope *scope,
                              struct hs_job_summary **out, size_t *n, int64_t *total,
                              struct hs_error *err);
    int (*export_since_scoped)(struct hs_store *s, int64_t since, const struct hs_scope *scope,
                               char **out, struct hs_error *err);
    int (*artifact_by_sha_scoped)(struct hs_store *s, const char *sha256,
                                  const struct hs_scope *scope, struct hs_artifact_row *out,
                                  struct hs_error *err);
    int (*artifact_by_image_scoped)(struct hs_store *s, int64_t image_id,
                                    const struct hs_scope *scope, struct hs_artifact_row *out,
                                    struct hs_error *err);

    /* ---- webhooks, events, work items, outbox, policies ---- */
    int (*webhook_put)(struct hs_store *s, const struct hs_webhook_row *w, struct hs_error *err);
    int (*webhook_get)(struct hs_store *s, int64_t id, struct hs_webhook_row *out,
                       struct hs_error *err); /* HS_ERR_NOT_FOUND */
    int (*webhook_list)(struct hs_store *s, struct hs_webhook_row **out, size_t *n,
                        struct hs_error *err);
    int (*webhook_delete)(struct hs_store *s, int64_t id, struct hs_error *err);
    /* Our own error with a webhook (NULL clears it); HS_ERR_NOT_FOUND for an unknown id. */
    int (*webhook_set_local_error)(struct hs_store *s, int64_t id, const char *error,
                                   struct hs_error *err);
    /* The webhook whose secret last verified a delivery of this access id (an Authorization
     * id that is not a webhook id); HS_ERR_NOT_FOUND when none. put: insert or replace. */
    int (*webhook_access_get)(struct hs_store *s, const char *access_id, int64_t *webhook_id,
                              struct hs_error *err);
    int (*webhook_access_put)(struct hs_store *s, const char *access_id, int64_t webhook_id,
                              struct hs_error *err);

    /* Verification codes to send to Hover. add: queued, due now, unless (webhook, code) was
     * queued before (then nothing: a code goes to Hover once). claim: the oldest due pending one,
     * leased until now + lease_ms (pushed back, so that another process does not take it);
     * HS_ERR_NOT_FOUND when none is due. finish: status "verified", "rejected" (for good),
     * "failed" (given up) or "pending" again with attempts + 1, due at next_attempt_ms. */
    int (*verification_add)(struct hs_store *s, int64_t webhook_id, const char *code,
                            int64_t event_id, int64_t now_ms, struct hs_error *err);
    int (*verification_claim)(struct hs_store *s, int64_t now_ms, int64_t lease_ms,
                              struct hs_verification *out, struct hs_error *err);
    int (*verification_finish)(struct hs_store *s, int64_t id, const char *status,
                               int64_t next_attempt_ms, const char *error, struct hs_error *err);

    /* Stores a received delivery and, when schedule is true and it names a job of a known
     * connection, inserts or bumps the job's work item (work_schedule: due at once, or delay_ms
     * after now when the item is being run), in ONE transaction, durably, before returning:
     * only then may the receiver answer 2xx.
     * In the same transaction: e->replay_key is remembered (expired keys are forgotten), and
     * when it was remembered already nothing at all is stored and *event_id is 0 (a replay:
     * acknowledged, acted on once); e->verify_code is queued (verification_add); a row kept
     * "unverified" drops the kept rows past HS_STORE_UNVERIFIED_MAX / _TTL_MS at now_ms. */
    int (*event_accept)(struct hs_store *s, const struct hs_event_row *e, bool schedule,
                        int64_t delay_ms, int64_t now_ms, int64_t *event_id, struct hs_error *err);
    /* Deliveries stored as "unverified" for a webhook id, or all of them with webhook_id 0
     * (the verification race), oldest first. */
    int (*events_unverified)(struct hs_store *s, int64_t webhook_id, struct hs_event_row **out,
                             size_t *n, struct hs_error *err);
    int (*event_set_status)(struct hs_store *s, int64_t event_id, const char *status,
                            struct hs_error *err);
    /* Deletes the kept "unverified" rows received before now_ms - HS_STORE_UNVERIFIED_TTL_MS
     * and the oldest past HS_STORE_UNVERIFIED_MAX; *removed (may be NULL) gets how many. */
    int (*events_unverified_trim)(struct hs_store *s, int64_t now_ms, int64_t *removed,
                                  struct hs_error *err);
    /* Marks every accepted event of (connection, job) received up to the claim as processed. */
    int (*events_processed)(struct hs_store *s, const char *connection_key, int64_t job_id,
                            int64_t up_to_event_id, struct hs_error *err);

    /* CRM notifications. add: in the caller's transaction when there is one. */
    int (*outbox_add)(struct hs_store *s, const char *endpoint, int64_t job_id, const char *payload,
                      const char *idempotency_key, struct hs_error *err);
    /* The next due message whose earlier messages of the same (endpoint, job) are all
     * delivered; HS_ERR_NOT_FOUND when none. */
    int (*outbox_next)(struct hs_store *s, int64_t now_ms, struct hs_outbox_row *out,
                       struct hs_error *err);
    int (*outbox_delivered)(struct hs_store *s, int64_t id, struct hs_error *err);
    int (*outbox_retry)(struct hs_store *s, int64_t id, int64_t next_attempt_ms, const char *error,
                        struct hs_error *err);
    int (*outbox_depth)(struct hs_store *s, int64_t *pending, struct hs_error *err);

    /* Per-connection auto-sync policy: "all" (default), "linked" (only jobs already linked to
     * a CRM record: an external identifier or a selection), "none". */
    int (*policy_get)(struct hs_store *s, const char *connection_key, char **policy,
                      struct hs_error *err);
    int (*policy_put)(struct hs_store *s, const char *connection_key, const char *policy,
                      struct hs_error *err);

    /* ---- the event worker's reads (src/worker/events.c; SQLite: sqlite_worker.c) ---- */
    /* The highest id of the accepted events of (connection, job), 0 when none. The worker reads
     * it before it re-reads the job from Hover, and passes it to events_processed: an event
     * stored later bumped the work item's generation, so the item runs again for it. */
    int (*events_last_accepted)(struct hs_store *s, const char *connection_key, int64_t job_id,
                                int64_t *event_id, struct hs_error *err);
    /* The highest change sequence of the job's synced data (its models' artifacts and
     * measurements), 0 when none is stored: a CRM notification is due when it passes the one
     * last notified (src/notify/outbox.c). Job and model rows are left out: the search and the
     * job view upsert them too, and they alone are no sync. */
    int (*job_synced_seq)(struct hs_store *s, int64_t job_id, int64_t *seq, struct hs_error *err);

    /* ---- the work queue, syncs and their progress, pending polls (sqlite_queue.c) ----
     * Every write below joins the caller's transaction when there is one. */

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
    int (*work_depth)(struct hs_store *s, int64_t *due, int64_t *total, int64_t now_ms,
                      struct hs_error *err);
    /* Frees the items claimed by workers that `dead` says are gone (a process restarted after a
     * kill -9 need not wait for its old leases to end); *released (may be NULL) gets how many.
     * dead is called with the store locked: it must not use the store. */
    int (*work_release_dead)(struct hs_store *s, bool (*dead)(void *ctx, const char *worker),
                             void *ctx, int64_t *released, struct hs_error *err);

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

    /* ---- secrets at rest (store/secrets.h) ---- */
    /* Seals every secret (OAuth tokens, webhook secrets) again under new_key (its text as
     * configured; NULL: stores them in clear), in one transaction; the store then uses that
     * key. *count (may be NULL) gets the number of values rewritten. */
    int (*secrets_rekey)(struct hs_store *s, const char *new_key, int64_t *count,
                         struct hs_error *err);
};

struct hs_store {
    const struct hs_store_ops *ops;
};

/* Opens (creating if needed) a SQLite store at path and applies pending migrations. The file
 * (and its -wal and -shm) is made private to its owner (0600). */
int hs_store_open_sqlite(const char *path, struct hs_store **out, struct hs_error *err);

struct hs_store_options {
    /* HOVERSYNC_ENCRYPTION_KEY as configured (store/secrets.h); NULL or "": secrets in clear. A
     * store whose secrets are sealed under another key, or opened without its key, is refused
     * (HS_ERR_INVALID, with a message that says which). */
    const char *encryption_key;
};
int hs_store_open_sqlite_opts(const char *path, const struct hs_store_options *o,
                              struct hs_store **out, struct hs_error *err);
void hs_store_close(struct hs_store *s);
void hs_selections_free(struct hs_selection *sels, size_t n);

/* Content-addressed artifact files under a data directory (blobs.c). */
struct hs_blob_writer;
/* Starts a new file under <data_dir>/tmp; bytes are hashed as they are written. */
int hs_blob_begin(const char *data_dir, struct hs_blob_writer **out, struct hs_error *err);
int hs_blob_write(struct hs_blob_writer *w, const void *data, size_t len, struct hs_error *err);
/* fsyncs the file, renames it to <data_dir>/blobs/ab/cd/<sha256> (an existing identical file is
 * kept), fsyncs the directory, and gives the hex sha256, the size and the relative path
 * (caller frees). Only after this returns may a row point at the path. */
int hs_blob_commit(struct hs_blob_writer *w, char sha256_hex[65], int64_t *bytes, char **rel_path,
                   struct hs_error *err);
/* Removes the temporary file; safe after commit (then a no-op) and with NULL. */
void hs_blob_abort(struct hs_blob_writer *w);
/* Makes an existing data directory (and its tmp/ and blobs/) private to its owner (0700);
 * directories are created 0700 in the first place. Failures are logged. */
void hs_data_dir_private(const char *data_dir);
/* Removes leftovers of interrupted writes (the files under <data_dir>/tmp). */
int hs_blob_clean_tmp(const char *data_dir, struct hs_error *err);

#endif
