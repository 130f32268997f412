/* records.h: the sync records and the records feed (store.h; docs/ARCHITECTURE.md "Sync",
 * docs/RECORDS.md): jobs, models, artifacts, measurements, selections, sync runs, named
 * checkpoints.
 *
 * Every row that the sync engine writes carries a change sequence: a store-wide counter bumped in
 * the transaction that really changed the row (an unchanged upsert leaves it as it was). The
 * records feed returns rows whose sequence is above a cursor. A write outside a transaction
 * (store.h begin) runs in one of its own. */
#ifndef HS_STORE_RECORDS_H
#define HS_STORE_RECORDS_H

#include "store/store.h"

/* What the store remembers of a model between syncs. */
struct hs_model_row {
    int64_t id, job_id;
    char *name, *state, *deliverable;
    char *updated_at;        /* Hover's updated_at as last seen */
    char *synced_updated_at; /* Hover's updated_at when its artifacts were last all stored; NULL
                                if never fully synced */
    int64_t change_seq;
    char *connection_key; /* model_get: its job's connection (jobs.connection_key), or NULL */
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
    /* Recorded with its Hover URL but not downloaded (not in the sync's artifact profile,
     * sync/profile.h): sha256 and path are "" and bytes 0 until its first use fetches it. */
    bool not_fetched;
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
void hs_selections_free(struct hs_selection *sels, size_t n);

/* What the store knows of one model of a job: synced or not, and its selection. */
struct hs_model_status {
    int64_t model_id;
    char *synced_updated_at; /* Hover's updated_at at the last complete sync; NULL: never */
    bool has_selection;
    enum hs_selection_status selection; /* valid when has_selection */
    char *reason;                       /* the selection's reason, or NULL */
};
void hs_model_statuses_free(struct hs_model_status *v, size_t n);

/* Sync runs by state (runs_interrupt_lapsed). */
struct hs_run_counts {
    int64_t marked;      /* runs this call found lapsed and marked interrupted */
    int64_t running;     /* runs still running (their lease holds) */
    int64_t interrupted; /* every interrupted run, the ones just marked included */
};

struct hs_records_ops {
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
    /* Per model of the job (stored models, and selections of models not stored yet), ordered by
     * model id: its sync mark and selection (caller frees with hs_model_statuses_free). */
    int (*job_models_status)(struct hs_store *s, int64_t job_id, struct hs_model_status **out,
                             size_t *n, struct hs_error *err);
    /* The highest change sequence of the job's synced data (its models' artifacts and
     * measurements), 0 when none is stored: a CRM notification is due when it passes the one
     * last notified (src/notify/outbox.c). Job and model rows are left out: the search and the
     * job view upsert them too, and they alone are no sync. */
    int (*job_synced_seq)(struct hs_store *s, int64_t job_id, int64_t *seq, struct hs_error *err);

    int (*artifact_get)(struct hs_store *s, int64_t model_id, const char *kind,
                        struct hs_artifact_row *out, struct hs_error *err); /* NOT_FOUND */
    /* Insert or update by (model_id, kind); *changed when the bytes (sha256) changed (a new etag
     * or URL for the same bytes is stored, but keeps the row's change sequence). A not_fetched
     * row (only kind, source_url and image_id are read) is inserted when none exists; over a
     * not-fetched row it updates the URL alone (no change); a fetched row is left as it is. */
    int (*artifact_put)(struct hs_store *s, const struct hs_artifact_row *a, bool *changed,
                        struct hs_error *err);
    /* Every artifact row (for tests and the orphan check): callback per row; stop on non-zero
     * (a negative answer is returned as the error). */
    int (*artifact_each)(struct hs_store *s, int (*fn)(void *ctx, const struct hs_artifact_row *a),
                         void *ctx, struct hs_error *err);
    /* An artifact row holding these bytes (hex sha256), of a job in scope (NULL: any);
     * HS_ERR_NOT_FOUND if none. */
    int (*artifact_by_sha)(struct hs_store *s, const char *sha256, const struct hs_scope *scope,
                           struct hs_artifact_row *out, struct hs_error *err);
    /* The stored image with this Hover image id (kind "image.<id>"), of a job in scope (NULL:
     * any); HS_ERR_NOT_FOUND if none. */
    int (*artifact_by_image)(struct hs_store *s, int64_t image_id, const struct hs_scope *scope,
                             struct hs_artifact_row *out, struct hs_error *err);

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
    /* A run holds a lease (unix ms) that its process renews while it runs; run_renew extends
     * it. runs_interrupt_lapsed marks every "running" run whose lease ended before now_ms (or
     * that has none) "interrupted", and counts (out may be NULL). The lease time is written by
     * the run's process and read by any other, on any machine: no PID is involved. */
    int (*run_renew)(struct hs_store *s, int64_t run_id, int64_t lease_until_ms,
                     struct hs_error *err);
    int (*runs_interrupt_lapsed)(struct hs_store *s, int64_t now_ms, struct hs_run_counts *out,
                                 struct hs_error *err);

    /* The records feed: every job, model and artifact in scope (NULL: all) whose change
     * sequence is above `since`, as {"cursor":N,"jobs":[...],"models":[...],"artifacts":[...]}
     * (see docs/RECORDS.md); *out is a new JSON string the caller frees. */
    int (*export_since)(struct hs_store *s, int64_t since, const struct hs_scope *scope, char **out,
                        struct hs_error *err);

    /* Named checkpoints (backfill progress, reconciliation, notifications). get:
     * HS_ERR_NOT_FOUND when unset. */
    int (*checkpoint_get)(struct hs_store *s, const char *name, char **value, struct hs_error *err);
    int (*checkpoint_put)(struct hs_store *s, const char *name, const char *value,
                          struct hs_error *err);
};

#endif
