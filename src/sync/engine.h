/* engine.h: the sync engine: pulls the selected models of a job into the store, exactly once.
 *
 * For one job: Show Job (fresh), the job and its models upserted, the selection recorded, then
 * per selected model by its own state (never the job's): complete -> the artifacts and images its
 * artifact profile names stored (content-addressed files first, then the rows; the others
 * recorded as not fetched, with their Hover URL, sync/profile.h), headline measurements
 * extracted; still working or unknown -> pending; failed -> failed upstream, no artifact request.
 * Unchanged models cost nothing beyond the Show Job: a model whose Hover updated_at is the one of
 * its last complete sync, with every file present, is not asked for again; others are asked with
 * If-None-Match so unchanged bytes are not downloaded twice. */
#ifndef HS_SYNC_ENGINE_H
#define HS_SYNC_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "hover/client.h"
#include "hoversync.h"
#include "store/records.h"
#include "sync/profile.h"

enum hs_model_result {
    HS_RESULT_SYNCED,
    HS_RESULT_PENDING,
    HS_RESULT_FAILED_UPSTREAM,
    HS_RESULT_ERROR,
};
const char *hs_model_result_name(enum hs_model_result r);

struct hs_sync_artifact {
    char *kind;
    char sha256[65];
    int64_t bytes;
    char *path; /* relative to the data directory */
    char *content_type;
    bool downloaded; /* false: unchanged (304, or not asked because the model did not change) */
    bool changed;    /* the stored bytes are new */
};

struct hs_sync_model {
    int64_t id;
    char *name;
    char *state; /* Hover's state at sync time */
    enum hs_model_result result;
    char *message; /* why pending / failed / error; NULL when synced */
    struct hs_sync_artifact *artifacts;
    size_t n_artifacts;
    int64_t downloaded, unchanged;
};

struct hs_sync_report {
    int64_t job_id;
    int64_t run_id;
    char *job_name;
    char *reconstruction_state;
    const char *status; /* "synced", "partial" or "failed" (static) */
    struct hs_sync_model *models;
    size_t n_models;
    int64_t hover_requests; /* requests sent for this sync, retries and refreshes included */
};
void hs_sync_report_free(struct hs_sync_report *r);
/* True when every selected model ended synced or pending (exit code 0). */
bool hs_sync_report_ok(const struct hs_sync_report *r);

/* Progress of a sync as it happens, for a live view (the service's GET /api/syncs/{id}). */
enum hs_sync_progress_event {
    HS_PROGRESS_MODEL_STARTED,  /* artifacts_total known (0 for a model that is not complete) */
    HS_PROGRESS_ARTIFACT,       /* one more artifact downloaded, its file in place (its row
                                   commits with the model's result), or found unchanged */
    HS_PROGRESS_MODEL_FINISHED, /* result and message final, and recorded in the store */
    HS_PROGRESS_RUN_STARTED,    /* in_txn only: a model of the run is selected (its
                                   artifacts_total: 0 for a model that is not complete) */
};

struct hs_sync_progress {
    enum hs_sync_progress_event event;
    int64_t job_id, model_id;
    const char *model_name, *model_state;
    int64_t artifacts_done, artifacts_total;
    const struct hs_sync_artifact *artifact; /* ARTIFACT: the one just handled */
    enum hs_model_result result;             /* MODEL_FINISHED */
    const char *message;                     /* MODEL_FINISHED: NULL when synced */
    const struct hs_sync_model *model;       /* MODEL_FINISHED: its report (artifacts, sha256) */
};

struct hs_sync_engine {
    struct hs_client *client;
    struct hs_store *store;
    const char *data_dir; /* artifact files live under it */
    /* Where they are stored; NULL: the local folder data_dir. */
    const struct hs_blobs *blobs;
    const char *connection_key; /* recorded on jobs and selections */
    /* The installation's artifact profile (--artifacts, sync/profile.h), for a connection with
     * none of its own; NULL: "default". */
    const char *artifacts;
    /* Optional: called by the syncing thread at each step, with no store transaction open;
     * the pointers in p are valid during the call only. */
    void (*on_progress)(void *ctx, const struct hs_sync_progress *p);
    void *progress_ctx;
    /* Optional, hs_sync_pending only: false leaves an open selection for another run. NULL:
     * all. */
    bool (*pending_filter)(void *ctx, const struct hs_selection *sel);
    void *pending_filter_ctx;
    /* Optional: called inside each of the engine's write transactions, with the progress it
     * commits: RUN_STARTED per selected model in the one that records the selection and the
     * run, ARTIFACT per downloaded artifact and MODEL_FINISHED in each model's result (the
     * model's artifact rows commit with it, once its files are durable: store/blobs.h); and
     * ARTIFACT (artifact NULL) alone in a lazy transaction (store.h, begin_lazy) as each
     * artifact is done, for a person watching. What
     * it writes commits with them (the work queue's sync progress); non-zero rolls that
     * transaction back and stops the run there: hs_sync_job returns that error, and nothing
     * more of the run commits (the work queue's fence: a worker whose claim lapsed). */
    int (*in_txn)(void *ctx, const struct hs_sync_progress *p, struct hs_error *err);
    void *in_txn_ctx;
    /* true: the run's end (its status in sync_runs) commits lazily (store.h, begin_lazy): the
     * caller commits durably right after it (the work queue settling its item), which makes it
     * durable too; a power cut before that leaves the run to read interrupted, as a crash does. */
    bool run_end_lazy;
    /* Downloads of a model at once, each on its own thread with a clone of client (their
     * requests booked by its limiter like any other); 0 or 1: one at a time, in the calling
     * thread. */
    int download_slots;
    /* The engine's own: requests sent by the download slots' clients in the current run. */
    int64_t slot_requests;
    /* The engine's own: the in_txn error that stopped the current run (0: none). */
    int stopped;
    struct hs_error stopped_err;
    /* The engine's own: the artifact profile of the current run. */
    struct hs_profile profile;
};

struct hs_sync_request {
    int64_t job_id;
    const int64_t *model_ids; /* the selection; with all_complete, ignored */
    size_t n_model_ids;
    bool all_complete;   /* every model of the job whose state is complete */
    const char *trigger; /* "cli", "pending", "backfill", ... (recorded on the run) */
    /* A job just read from Hover (backfill's list page): used instead of a Show Job. */
    const struct hs_job *prefetched;
};

/* Syncs one job. Returns 0 with a report when the sync ran (models may still have failed: see
 * the report); HS_ERR_INVALID (with the id in the message) when a selected model is not on the
 * job; other codes when the job could not be read or stored. */
int hs_sync_job(struct hs_sync_engine *e, const struct hs_sync_request *rq,
                struct hs_sync_report **out, struct hs_error *err);

/* The stored artifact `kind` of model_id, fetched on first use: a row recorded but not fetched
 * (or whose file is missing) is downloaded from its recorded Hover URL now (through the client's
 * budget, in the calling thread's priority class: interactive unless set otherwise), checked
 * (sync/verify.h) and stored; a stored one costs no request. *out gets the row (caller clears
 * it); *downloaded (may be NULL) says whether Hover was asked. HS_ERR_NOT_FOUND when the store
 * has no such artifact recorded (a model not synced, or a kind Hover does not offer). Only
 * e->client, e->store, e->data_dir and e->blobs are used. */
int hs_sync_fetch_artifact(struct hs_sync_engine *e, int64_t model_id, const char *kind,
                           struct hs_artifact_row *out, bool *downloaded, struct hs_error *err);

/* Why a model that is not complete yet waits ("model is processing at Hover; ..."; new). */
char *hs_sync_pending_message(const struct hs_model *m);

/* Runs every open selection (selected, pending, error) again, one sync per job (the plan of
 * sync/plan.h with the policy "none": selections of models no longer on the job are closed).
 * *reports gets one report per job (caller frees each and the array). */
int hs_sync_pending(struct hs_sync_engine *e, struct hs_sync_report ***reports, size_t *n,
                    struct hs_error *err);

#endif
