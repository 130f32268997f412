/* plan.h: which models of a job a pass over it syncs, the one rule every work item follows
 * (a modal sync, "sync when ready", a webhook event, reconciliation, backfill) and that
 * `hoversync sync --pending` follows with the policy "none".
 *
 * The connection's auto-sync policy (store policy_get): "all" (default) takes every complete
 * model not synced at its current updated_at; "linked" the same, but only for a job already
 * linked to a CRM record (an external identifier at Hover, or a selection in the store); "none"
 * nothing automatically. Open selections of the job (what a person asked for: selected,
 * pending "sync when ready", or left in error) run whatever the policy, first; a pending one
 * whose model is still working waits (running it would only record "pending" again); one whose
 * model is no longer on the job can never complete, and is closed. */
#ifndef HS_SYNC_PLAN_H
#define HS_SYNC_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "hoversync.h"
#include "store/records.h"

enum hs_autosync { HS_AUTOSYNC_ALL, HS_AUTOSYNC_LINKED, HS_AUTOSYNC_NONE };
/* "all", "linked", "none"; HS_ERR_INVALID otherwise. */
int hs_autosync_parse(const char *s, enum hs_autosync *out);
/* The connection's policy in the store; "all" when none is set, or when it cannot be read or
 * is unknown (logged). */
enum hs_autosync hs_autosync_of(struct hs_store *store, const char *connection_key);

struct hs_sync_plan {
    int64_t *sync; /* the models to sync: open selections first, then the policy's, each
                      group in the job's order */
    size_t n_sync;
    size_t n_selected; /* the first n_selected of sync are open selections */
    int64_t *waiting;  /* open "sync when ready" selections whose model is still working */
    size_t n_waiting;
    int64_t *vanished; /* open selections of models no longer on the job */
    size_t n_vanished;
};

/* The plan for `job` as Hover has it now, given the store's view of its models (job_models_status:
 * sync marks and selections). *out is new; free it with hs_sync_plan_clear. */
void hs_sync_plan_make(enum hs_autosync policy, const struct hs_job *job,
                       const struct hs_model_status *st, size_t n_st, struct hs_sync_plan *out);
void hs_sync_plan_clear(struct hs_sync_plan *p);

/* Closes the plan's vanished selections (failed upstream: "model no longer on the job"), in the
 * caller's transaction when there is one. */
int hs_sync_plan_close_vanished(struct hs_store *store, const char *connection_key, int64_t job_id,
                                const struct hs_sync_plan *p, struct hs_error *err);
#define HS_PLAN_VANISHED_REASON "model no longer on the job"

#endif
