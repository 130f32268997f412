/* plan.c: see plan.h. */
#include "sync/plan.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "store/policies.h"

int hs_autosync_parse(const char *s, enum hs_autosync *out)
{
    if (hs_streq(s, "all"))
        *out = HS_AUTOSYNC_ALL;
    else if (hs_streq(s, "linked"))
        *out = HS_AUTOSYNC_LINKED;
    else if (hs_streq(s, "none"))
        *out = HS_AUTOSYNC_NONE;
    else
        return HS_ERR_INVALID;
    return HS_OK;
}

enum hs_autosync hs_autosync_of(struct hs_store *store, const char *connection_key)
{
    enum hs_autosync p = HS_AUTOSYNC_ALL;
    char *v = NULL;
    struct hs_error err = {0};
    if (store->policies->policy_get(store, connection_key, &v, &err) == HS_OK) {
        if (hs_autosync_parse(v, &p) != HS_OK) {
            hs_warn("plan=policy conn=%s policy=\"%s\" msg=\"unknown policy: syncing all\"",
                    connection_key, v);
            p = HS_AUTOSYNC_ALL;
        }
    } else if (err.code != HS_ERR_NOT_FOUND) {
        hs_warn("plan=policy conn=%s error=\"%s\"", connection_key, err.msg);
    }
    free(v);
    return p;
}

static const struct hs_model_status *status_of(const struct hs_model_status *st, size_t n,
                                               int64_t model_id)
{
    for (size_t i = 0; i < n; i++)
        if (st[i].model_id == model_id)
            return &st[i];
    return NULL;
}

static bool selection_open(const struct hs_model_status *s)
{
    return s && s->has_selection &&
           (s->selection == HS_SEL_SELECTED || s->selection == HS_SEL_PENDING ||
            s->selection == HS_SEL_ERROR);
}

static bool on_job(const struct hs_job *job, int64_t model_id)
{
    for (size_t k = 0; k < job->n_models; k++)
        if (job->models[k].id == model_id)
            return true;
    return false;
}

/* Not yet synced at this updated_at (a model without updated_at: always). */
static bool needs_sync(const struct hs_model *m, const struct hs_model_status *s)
{
    return !s || !s->synced_updated_at || !m->updated_at ||
           strcmp(s->synced_updated_at, m->updated_at) != 0;
}

void hs_sync_plan_make(enum hs_autosync policy, const struct hs_job *job,
                       const struct hs_model_status *st, size_t n_st, struct hs_sync_plan *out)
{
    memset(out, 0, sizeof *out);
    out->sync = hs_calloc(job->n_models + 1, sizeof *out->sync);
    out->waiting = hs_calloc(job->n_models + 1, sizeof *out->waiting);
    out->vanished = hs_calloc(n_st + 1, sizeof *out->vanished);
    bool linked = job->external_identifier && *job->external_identifier;
    for (size_t i = 0; i < n_st && !linked; i++)
        linked = st[i].has_selection;
    bool automatic = policy == HS_AUTOSYNC_ALL || (policy == HS_AUTOSYNC_LINKED && linked);
    bool *taken = hs_calloc(job->n_models + 1, sizeof *taken);
    /* What a person asked for first, then what the policy adds. */
    for (size_t i = 0; i < job->n_models; i++) {
        const struct hs_model *m = &job->models[i];
        const struct hs_model_status *s = status_of(st, n_st, m->id);
        if (!selection_open(s))
            continue;
        if (hs_model_is_complete(m) || hs_streq(m->state, "failed") ||
            s->selection != HS_SEL_PENDING) {
            out->sync[out->n_sync++] = m->id;
            taken[i] = true;
        } else {
            out->waiting[out->n_waiting++] = m->id;
        }
    }
    out->n_selected = out->n_sync;
    for (size_t i = 0; automatic && i < job->n_models; i++) {
        const struct hs_model *m = &job->models[i];
        if (!taken[i] && hs_model_is_complete(m) && needs_sync(m, status_of(st, n_st, m->id)))
            out->sync[out->n_sync++] = m->id;
    }
    for (size_t i = 0; i < n_st; i++)
        if (selection_open(&st[i]) && !on_job(job, st[i].model_id))
            out->vanished[out->n_vanished++] = st[i].model_id;
    free(taken);
}

void hs_sync_plan_clear(struct hs_sync_plan *p)
{
    if (!p)
        return;
    free(p->sync);
    free(p->waiting);
    free(p->vanished);
    memset(p, 0, sizeof *p);
}

int hs_sync_plan_close_vanished(struct hs_store *store, const char *connection_key, int64_t job_id,
                                const struct hs_sync_plan *p, struct hs_error *err)
{
    for (size_t i = 0; i < p->n_vanished; i++) {
        struct hs_selection s = {.job_id = job_id,
                                 .model_id = p->vanished[i],
                                 .status = HS_SEL_FAILED_UPSTREAM,
                                 .reason = (char *)HS_PLAN_VANISHED_REASON,
                                 .connection_key = (char *)connection_key};
        int rc = store->records->selection_put(store, &s, err);
        if (rc)
            return rc;
    }
    return HS_OK;
}
