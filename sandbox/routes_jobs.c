/* routes_jobs.c: GET /api/v3/jobs, GET /api/v2/jobs (the search of Search & Sync) and
 * GET /api/v3/jobs/{id}. Lists come from the sorted index (jobindex.c), so a search over 100,000
 * jobs is one linear scan of one org's range, without sorting. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"
#include "core/str.h"
#include "routes.h"

#define PER_DEFAULT      25
#define PER_MAX          100
#define PAGE_MAX         10000000
#define MAX_DELIVERABLES 32

static void unprocessable(struct sb_resp *r, const char *field, const char *msg)
{
    sb_resp_json(r, 422, json_pack("{s{s[s]}}", "errors", field, msg));
}

struct deliv {
    int64_t ids[MAX_DELIVERABLES];
    size_t n;
    bool bad;
};

static void add_deliverables(void *ctx, const char *value)
{
    struct deliv *d = ctx;
    /* deliverable_ids[]=3 repeated, or deliverable_ids=2,3 */
    char *copy = hs_strdup(value), *next = NULL;
    for (char *part = copy; part; part = next) {
        next = strchr(part, ',');
        if (next)
            *next++ = '\0';
        if (!*part)
            continue;
        int64_t v;
        if (hs_parse_i64_range(part, 1, 1000, &v) != 0 || d->n == MAX_DELIVERABLES)
            d->bad = true;
        else
            d->ids[d->n++] = v;
    }
    free(copy);
}

void sb_jobs_list(struct sb_req *q, struct sb_resp *r, int version)
{
    if (!sb_require_token(q, r) || (version == 3 && !sb_acting_user(q, r)))
        return;
    struct sb_server *s = q->srv;
    struct sb_job_query jq = {.org_id = q->tok.org_id,
                              .sort = SB_SORT_CREATED,
                              .desc = true,
                              .page = 1,
                              .per = PER_DEFAULT};
    const char *v;
    if ((v = sb_arg(q, "page")) && *v && hs_parse_i64(v, &jq.page) != 0) {
        unprocessable(r, "page", "is not a number");
        return;
    }
    if (jq.page < 1)
        jq.page = 1;
    if (jq.page > PAGE_MAX)
        jq.page = PAGE_MAX;
    if ((v = sb_arg(q, "per")) && *v) {
        if (hs_parse_i64(v, &jq.per) != 0) {
            unprocessable(r, "per", "is not a number");
            return;
        }
        if (jq.per < 1) {
            unprocessable(r, "per", "must be greater than 0");
            return;
        }
        if (jq.per > PER_MAX)
            jq.per = PER_MAX;
    }
    if ((v = sb_arg(q, "sort_by")) && *v) {
        if (!strcmp(v, "created_at"))
            jq.sort = SB_SORT_CREATED;
        else if (!strcmp(v, "updated_at"))
            jq.sort = SB_SORT_UPDATED;
        else if (!strcmp(v, "completed_at"))
            jq.sort = SB_SORT_COMPLETED;
        else {
            unprocessable(r, "sort_by", "is not included in the list");
            return;
        }
    }
    if ((v = sb_arg(q, "sort_order")) && *v) {
        if (!strcasecmp(v, "asc"))
            jq.desc = false;
        else if (!strcasecmp(v, "desc"))
            jq.desc = true;
        else {
            unprocessable(r, "sort_order", "is not included in the list");
            return;
        }
    }
    if ((v = sb_arg(q, "archived")) && *v) {
        if (!strcmp(v, "true") || !strcmp(v, "1"))
            jq.archived = true;
        else if (strcmp(v, "false") != 0 && strcmp(v, "0") != 0) {
            unprocessable(r, "archived", "must be true or false");
            return;
        }
    }
    if ((v = sb_arg(q, "updated_since")) && *v) {
        if (hs_parse_date_arg(v, &jq.updated_since) != 0) {
            unprocessable(r, "updated_since", "is not a unix timestamp");
            return;
        }
        jq.has_updated_since = true;
    }
    if ((v = sb_arg(q, "reconstruction_state")) && *v)
        jq.reconstruction_state = v;
    struct deliv d = {.n = 0};
    sb_arg_each(q, "deliverable_ids[]", add_deliverables, &d);
    sb_arg_each(q, "deliverable_ids", add_deliverables, &d);
    if (d.bad) {
        unprocessable(r, "deliverable_ids", "must be deliverable ids");
        return;
    }
    jq.deliverables = d.ids;
    jq.n_deliverables = d.n;
    char *needle = NULL;
    if ((v = sb_arg(q, "search")) && *v) {
        if (strlen(v) < 3) {
            unprocessable(r, "search", "is too short (minimum is 3 characters)");
            return;
        }
        needle = sb_lower(v);
        jq.search_lc = needle;
    }

    size_t idx[PER_MAX], n = 0;
    json_t *results = json_array();
    struct sb_world *w = s->world;
    pthread_mutex_lock(&w->lock);
    size_t total = sb_index_query(s->index, w, &jq, idx, &n);
    for (size_t i = 0; i < n; i++) {
        const struct sb_job *j = &w->jobs[idx[i]];
        json_array_append_new(results, version == 3 ? sb_job_v3_json(w, j, s->api_base)
                                                    : sb_job_v2_json(w, j));
    }
    pthread_mutex_unlock(&w->lock);
    free(needle);

    int64_t total_pages = (int64_t)((total + (size_t)jq.per - 1) / (size_t)jq.per);
    json_t *pg;
    if (version == 3) {
        pg = json_pack("{sI so so sI sI}", "current_page", (json_int_t)jq.page, "next_page",
                       jq.page < total_pages ? json_integer(jq.page + 1) : json_null(), "prev_page",
                       jq.page > 1 ? json_integer(jq.page - 1) : json_null(), "total_pages",
                       (json_int_t)total_pages, "total", (json_int_t)total);
    } else {
        pg = json_pack("{sI sI sI}", "current_page", (json_int_t)jq.page, "total_pages",
                       (json_int_t)total_pages, "total", (json_int_t)total);
    }
    sb_resp_json(r, 200, json_pack("{so so}", "results", results, "pagination", pg));
}

void sb_job_show(struct sb_req *q, struct sb_resp *r, int64_t id)
{
    if (!sb_require_token(q, r) || !sb_acting_user(q, r))
        return;
    struct sb_server *s = q->srv;
    struct sb_world *w = s->world;
    json_t *j = NULL;
    pthread_mutex_lock(&w->lock);
    const struct sb_job *job = sb_world_job(w, id);
    if (job && job->org_id == q->tok.org_id)
        j = sb_job_v3_json(w, job, s->api_base);
    pthread_mutex_unlock(&w->lock);
    if (!j) {
        sb_resp_error(r, 404, "Not found");
        return;
    }
    sb_resp_json(r, 200, j);
}
