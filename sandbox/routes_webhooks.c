/* routes_webhooks.c: the webhook endpoints (hover-api.md 4: list, register, verify, delete, resend
 * the code), the test job endpoints (3.6: POST /api/v3/jobs/test_job and PATCH
 * /api/v2/jobs/{id}/set_test_state.json), and their admin routes (/__sandbox/webhooks,
 * /__sandbox/deliveries, /__sandbox/jobs, /__sandbox/jobs/{id}/events). The work is done by
 * webhooks.c and testjobs.c; this file parses and answers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/mem.h"
#include "core/str.h"
#include "routes.h"

#define PER_DEFAULT     25
#define PER_MAX         100
#define CODE_MAX        64
#define ADMIN_EVENTS    16
#define EVENT_NAME_MAX  64
#define TEST_JOB_MODELS 3

/* A job added at run time starts now: its models too (the generator spreads them minutes after
 * the job), so that every later state change moves updated_at forward. */
static void models_created_now(struct sb_job *j, int64_t now_ms)
{
    char iso[40];
    hs_iso8601_format(now_ms / 1000, (int)(now_ms % 1000), iso, sizeof iso);
    for (size_t i = 0; i < j->n_models; i++) {
        sb_world_set_str(&j->models[i].created_at, iso);
        sb_world_set_str(&j->models[i].updated_at, iso);
    }
}

static bool is_get(const struct sb_req *q)
{
    return !strcmp(q->method, "GET") || !strcmp(q->method, "HEAD");
}

static void method_not_allowed(struct sb_resp *r, const char *allow)
{
    sb_resp_error(r, 405, "Method not allowed");
    sb_resp_header(r, "Allow", allow);
}

/* {"errors":{"field":["msg"]}} */
static void field_error(struct sb_resp *r, const char *field, const char *msg)
{
    sb_resp_json(r, 422, json_pack("{s{s[s]}}", "errors", field, msg));
}

/* {"error":{"job":"msg"}}: the test job endpoints' shape (hover-api.md 3.6). */
static void job_error(struct sb_resp *r, const char *msg)
{
    sb_resp_json(r, 422, json_pack("{s{so}}", "error", "job", hs_json_text(msg)));
}

static void bad_body(struct sb_resp *r)
{
    sb_resp_error(r, 400, "malformed JSON");
}

/* ---- /api/v2/webhooks ---- */

static void webhooks_list(struct sb_req *q, struct sb_resp *r)
{
    int64_t page = 1, per = PER_DEFAULT;
    const char *v;
    if ((v = sb_arg(q, "page")) && *v && hs_parse_i64(v, &page) != 0) {
        field_error(r, "page", "is not a number");
        return;
    }
    if ((v = sb_arg(q, "per")) && *v && (hs_parse_i64(v, &per) != 0 || per < 1)) {
        field_error(r, "per", "must be a number greater than 0");
        return;
    }
    if (page < 1)
        page = 1;
    if (page > 1000000)
        page = 1000000;
    if (per > PER_MAX)
        per = PER_MAX;
    json_t *all = sb_webhooks_list(q->srv->hooks, q->tok.org_id);
    int64_t total = (int64_t)json_array_size(all);
    int64_t pages = (total + per - 1) / per;
    json_t *results = json_array();
    for (int64_t i = (page - 1) * per; i < total && i < page * per; i++)
        json_array_append(results, json_array_get(all, (size_t)i));
    json_decref(all);
    json_t *pg = json_pack("{sI so so sI sI}", "current_page", (json_int_t)page, "next_page",
                           page < pages ? json_integer(page + 1) : json_null(), "prev_page",
                           page > 1 ? json_integer(page - 1) : json_null(), "total_pages",
                           (json_int_t)pages, "total", (json_int_t)total);
    sb_resp_json(r, 200, json_pack("{so so}", "results", results, "pagination", pg));
}

/* A string parameter of the registration: {"webhook":{"url":..}}, webhook[url]=.. or url=.. */
static const char *webhook_param(json_t *p, const char *name)
{
    json_t *wh = json_object_get(p, "webhook");
    const char *v = json_is_object(wh) ? json_string_value(json_object_get(wh, name)) : NULL;
    if (!v) {
        char key[48];
        (void)snprintf(key, sizeof key, "webhook[%s]", name);
        v = json_string_value(json_object_get(p, key));
    }
    if (!v)
        v = json_string_value(json_object_get(p, name));
    return v;
}

static void webhooks_register(struct sb_req *q, struct sb_resp *r)
{
    json_t *p;
    if (sb_req_params(q, &p) != 0) {
        bad_body(r);
        return;
    }
    const char *url = webhook_param(p, "url"), *ct = webhook_param(p, "content_type");
    if (!url || !*url) {
        field_error(r, "url", "can't be blank");
        return;
    }
    json_t *out = NULL;
    switch (sb_webhooks_register(q->srv->hooks, q->tok.org_id, url, ct, &out)) {
    case SB_WEBHOOK_OK:
        sb_resp_json(r, 201, out);
        break;
    case SB_WEBHOOK_BAD_CONTENT_TYPE:
        field_error(r, "content_type", "is not included in the list (json)");
        break;
    case SB_WEBHOOK_TOO_MANY:
        field_error(r, "base", "an organization has at most 100 webhooks");
        break;
    default:
        field_error(r, "url",
                    "must be an http(s) URL on 127.0.0.1 or localhost (the sandbox sends "
                    "nowhere else)");
    }
}

void sb_webhooks_api(struct sb_req *q, struct sb_resp *r, const char *rest)
{
    if (!sb_require_token(q, r))
        return;
    struct sb_webhooks *h = q->srv->hooks;
    int64_t org = q->tok.org_id;
    json_t *out = NULL;
    if (!*rest || !strcmp(rest, ".json")) {
        if (is_get(q))
            webhooks_list(q, r);
        else if (!strcmp(q->method, "POST"))
            webhooks_register(q, r);
        else
            method_not_allowed(r, "GET, HEAD, POST");
        return;
    }
    if (rest[0] != '/') {
        sb_resp_error(r, 404, "Not found");
        return;
    }
    const char *seg = rest + 1, *p = seg;
    int64_t id;
    if (sb_path_id(&p, &id) && (!*p || !strcmp(p, ".json"))) {
        if (is_get(q)) {
            if (sb_webhooks_show(h, org, id, &out) == SB_WEBHOOK_OK)
                sb_resp_json(r, 200, out);
            else
                sb_resp_error(r, 404, "Not found");
        } else if (!strcmp(q->method, "DELETE")) {
            if (sb_webhooks_delete(h, org, id) == SB_WEBHOOK_OK)
                sb_resp_set(r, 204, "application/json", NULL, 0);
            else
                sb_resp_error(r, 404, "Not found");
        } else {
            method_not_allowed(r, "GET, HEAD, DELETE");
        }
        return;
    }
    p = seg;
    if (sb_path_id(&p, &id) && !strcmp(p, "/request_verification")) {
        if (strcmp(q->method, "POST") != 0)
            method_not_allowed(r, "POST");
        else if (sb_webhooks_request_verification(h, org, id, &out) == SB_WEBHOOK_OK)
            sb_resp_json(r, 200, out);
        else
            sb_resp_error(r, 404, "Not found");
        return;
    }
    const char *slash = strchr(seg, '/');
    if (slash && slash > seg && (size_t)(slash - seg) <= CODE_MAX && !strcmp(slash, "/verify")) {
        if (strcmp(q->method, "PUT") != 0) {
            method_not_allowed(r, "PUT");
            return;
        }
        char *code = hs_strndup(seg, (size_t)(slash - seg));
        int rc = sb_webhooks_verify(h, org, code, &out);
        free(code);
        if (rc == SB_WEBHOOK_OK)
            sb_resp_json(r, 200, out);
        else
            sb_resp_error(r, 404, "Not found");
        return;
    }
    sb_resp_error(r, 404, "Not found");
}

/* ---- test jobs ---- */

/* A body parameter formatted as a string (numbers and booleans too); NULL when absent. */
static char *param_dup(json_t *p, const char *name)
{
    return hs_json_strdup(p, name);
}

/* The capturing user named by current_user_id / current_user_email, 0 when none is named; false
 * (with a 403 written) when one is named that is not of the token's org. */
static bool named_user(struct sb_req *q, struct sb_resp *r, int64_t *user_id)
{
    const char *uid = sb_arg(q, "current_user_id"), *email = sb_arg(q, "current_user_email");
    *user_id = 0;
    if ((!uid || !*uid) && (!email || !*email))
        return true;
    if (!sb_acting_user(q, r))
        return false;
    struct sb_world *w = q->srv->world;
    pthread_mutex_lock(&w->lock);
    int64_t id = 0;
    const struct sb_user *u = uid && *uid
                                  ? (hs_parse_i64(uid, &id) == 0 ? sb_world_user(w, id) : NULL)
                                  : sb_world_user_by_email(w, email);
    *user_id = u ? u->id : 0;
    pthread_mutex_unlock(&w->lock);
    return true;
}

void sb_test_job(struct sb_req *q, struct sb_resp *r)
{
    if (!sb_require_token(q, r))
        return;
    json_t *p;
    if (sb_req_params(q, &p) != 0) {
        bad_body(r);
        return;
    }
    char *preset = param_dup(p, "job_preset"), *state = param_dup(p, "state"),
         *fmc = param_dup(p, "failed_models_count");
    char msg[192];
    int64_t n_failed = 0, user_id = 0;
    msg[0] = '\0';
    if (preset && strcmp(preset, "multi-structure-exterior") != 0)
        (void)snprintf(msg, sizeof msg,
                       "Invalid job_preset: %.64s. Allowed: multi-structure-exterior", preset);
    else if (state && strcmp(state, "complete") != 0 && strcmp(state, "failed") != 0)
        (void)snprintf(msg, sizeof msg, "Invalid state: %.64s. Allowed: complete, failed", state);
    else if (fmc && hs_parse_i64_range(fmc, 0, 2, &n_failed) != 0)
        (void)snprintf(msg, sizeof msg, "Invalid failed_models_count: %.64s. Allowed: 0, 1, 2",
                       fmc);
    bool all_failed = hs_streq(state, "failed");
    free(preset);
    free(state);
    free(fmc);
    if (msg[0]) {
        job_error(r, msg);
        return;
    }
    if (!named_user(q, r, &user_id))
        return;
    struct sb_server *s = q->srv;
    struct sb_world *w = s->world;
    static const char *const names[TEST_JOB_MODELS] = {"House", "Detached Garage", "Shed"};
    const char *finals[TEST_JOB_MODELS];
    for (size_t i = 0; i < TEST_JOB_MODELS; i++) /* the last n_failed structures fail */
        finals[i] = all_failed || (int64_t)i >= TEST_JOB_MODELS - n_failed ? "failed" : "complete";
    int64_t job_id = 0, now_ms = sb_now_ms();
    pthread_mutex_lock(&w->lock);
    struct sb_job *j =
        sb_world_add_job(w, q->tok.org_id, user_id, 3, TEST_JOB_MODELS, now_ms / 1000);
    if (j && j->n_models == TEST_JOB_MODELS) {
        models_created_now(j, now_ms);
        for (size_t i = 0; i < TEST_JOB_MODELS; i++)
            sb_world_set_str(&j->models[i].name, names[i]);
        char *name = hs_aprintf("Test Job - %s", j->name ? j->name : "Multi-Structure");
        free(j->name);
        j->name = name;
        sb_job_refresh_haystack(w, j);
        job_id = j->id;
    }
    sb_index_invalidate(s->index);
    pthread_mutex_unlock(&w->lock);
    if (!job_id || sb_testjobs_run(s->testjobs, job_id, finals, TEST_JOB_MODELS) != 0) {
        sb_resp_error(r, 500, "cannot create the test job");
        return;
    }
    sb_resp_json(r, 200, json_pack("{sb sI}", "success", 1, "job_id", (json_int_t)job_id));
}

void sb_set_test_state(struct sb_req *q, struct sb_resp *r, int64_t job_id)
{
    if (!sb_require_token(q, r))
        return;
    const char *state = sb_arg(q, "state");
    if (!state)
        state = sb_param_str(q, "state");
    if (!state || (strcmp(state, "complete") != 0 && strcmp(state, "failed") != 0)) {
        char msg[160];
        (void)snprintf(msg, sizeof msg, "Invalid state: %.64s. Allowed: complete, failed",
                       state ? state : "");
        job_error(r, msg);
        return;
    }
    struct sb_server *s = q->srv;
    struct sb_world *w = s->world;
    char v2_state[32] = "";
    size_t n_models = 0;
    pthread_mutex_lock(&w->lock);
    const struct sb_job *j = sb_world_job(w, job_id);
    bool found = j && j->org_id == q->tok.org_id;
    if (found) {
        (void)hs_strlcpy(v2_state, j->v2_state ? j->v2_state : "", sizeof v2_state);
        n_models = j->n_models;
    }
    pthread_mutex_unlock(&w->lock);
    if (!found) {
        sb_resp_error(r, 404, "Not found");
        return;
    }
    if (strcmp(v2_state, "uploading") != 0 || n_models == 0) {
        char msg[160];
        (void)snprintf(msg, sizeof msg, "Job %lld is not uploading (state: %s)", (long long)job_id,
                       n_models ? v2_state : "no models");
        job_error(r, msg);
        return;
    }
    const char *finals[8];
    if (n_models > 8)
        n_models = 8;
    for (size_t i = 0; i < n_models; i++)
        finals[i] = !strcmp(state, "complete") ? "complete" : "failed";
    if (sb_testjobs_run(s->testjobs, job_id, finals, n_models) != 0) {
        job_error(r, "A test reconstruction of this job is already running");
        return;
    }
    sb_resp_json(r, 200, json_pack("{sb sI}", "success", 1, "job_id", (json_int_t)job_id));
}

/* ---- admin ---- */

static bool admin_is(const struct sb_req *q, const char *m)
{
    return !strcmp(q->method, m) || (!strcmp(m, "GET") && !strcmp(q->method, "HEAD"));
}

static json_t *admin_body(struct sb_req *q, struct sb_resp *r)
{
    json_t *p;
    if (sb_req_json(q, &p) != 0) {
        sb_resp_oauth_error(r, 400, "invalid_request", "malformed JSON");
        return NULL;
    }
    return p;
}

void sb_admin_webhooks(struct sb_req *q, struct sb_resp *r)
{
    if (admin_is(q, "GET"))
        sb_resp_json(r, 200, sb_webhooks_admin_json(q->srv->hooks));
    else if (admin_is(q, "DELETE"))
        sb_resp_json(r, 200,
                     json_pack("{sI}", "deleted", (json_int_t)sb_webhooks_clear(q->srv->hooks)));
    else
        method_not_allowed(r, "GET, HEAD, DELETE");
}

void sb_admin_deliveries(struct sb_req *q, struct sb_resp *r)
{
    struct sb_webhooks *h = q->srv->hooks;
    if (admin_is(q, "DELETE")) {
        sb_webhooks_deliveries_clear(h);
        sb_resp_json(r, 200, json_pack("{sb}", "cleared", 1));
        return;
    }
    if (!admin_is(q, "GET")) {
        method_not_allowed(r, "GET, HEAD, DELETE");
        return;
    }
    int64_t since = 0, limit = 0;
    const char *v;
    if (((v = sb_arg(q, "since")) && *v && hs_parse_i64(v, &since) != 0) ||
        ((v = sb_arg(q, "limit")) && *v && hs_parse_i64_range(v, 0, INT64_MAX, &limit) != 0)) {
        sb_resp_error(r, 422, "since and limit must be integers");
        return;
    }
    size_t len;
    char *body = sb_webhooks_deliveries_dump(h, since, (size_t)limit, &len);
    sb_resp_set(r, 200, "application/json", body, len);
}

/* POST /__sandbox/jobs: a job as if created through the API (no webhook fires). */
static void admin_job_create(struct sb_req *q, struct sb_resp *r)
{
    struct sb_server *s = q->srv;
    json_t *b = admin_body(q, r);
    if (!b)
        return;
    int64_t models = 1, org = s->default_org_id, deliverable = 3, user = 0;
    const char *state = "uploading";
    json_t *v;
    bool ok = true;
    if ((v = json_object_get(b, "models")))
        ok = ok && json_is_integer(v) && hs_json_i64(b, "models", &models) && models >= 0 &&
             models <= 4;
    if ((v = json_object_get(b, "org_id")))
        ok = ok && json_is_integer(v) && hs_json_i64(b, "org_id", &org);
    if ((v = json_object_get(b, "deliverable_id")))
        ok = ok && json_is_integer(v) && hs_json_i64(b, "deliverable_id", &deliverable) &&
             deliverable > 0 && deliverable < 100 && sb_deliverable_name((int)deliverable);
    if ((v = json_object_get(b, "user_id")))
        ok = ok && json_is_integer(v) && hs_json_i64(b, "user_id", &user);
    if ((v = json_object_get(b, "state"))) {
        state = json_string_value(v);
        ok = ok && state &&
             (!strcmp(state, "uploading") || !strcmp(state, "processing") ||
              !strcmp(state, "complete") || !strcmp(state, "failed"));
    }
    json_t *ext = json_object_get(b, "external_identifier");
    ok = ok &&
         (!ext || json_is_null(ext) || (json_is_string(ext) && json_string_length(ext) <= 128));
    if (!ok) {
        sb_resp_error(r, 422,
                      "expected {\"models\": 0..4, \"state\": uploading|processing|complete|"
                      "failed, \"org_id\", \"deliverable_id\", \"user_id\": integers, "
                      "\"external_identifier\": string|null}");
        return;
    }
    struct sb_world *w = s->world;
    json_t *out = NULL;
    int64_t now_ms = sb_now_ms(), now = now_ms / 1000;
    pthread_mutex_lock(&w->lock);
    struct sb_job *j = sb_world_add_job(w, org, user, (int)deliverable, (size_t)models, now);
    if (j) {
        if (ext) {
            free(j->external_identifier);
            j->external_identifier = json_is_string(ext) ? hs_strdup(json_string_value(ext)) : NULL;
        }
        if (strcmp(state, "uploading") != 0)
            for (size_t i = 0; i < j->n_models; i++)
                sb_world_set_model_state(w, j, &j->models[i], state, now);
        models_created_now(j, now_ms);
        sb_index_invalidate(s->index);
        out = sb_job_v3_json(w, j, s->api_base);
    }
    pthread_mutex_unlock(&w->lock);
    if (!out)
        sb_resp_error(r, 422, "unknown org, or user_id is not a user of that org");
    else
        sb_resp_json(r, 201, out);
}

struct event_list {
    struct sb_event ev[ADMIN_EVENTS * 8];
    char *strs[ADMIN_EVENTS * 8 + 1]; /* states and the external identifier */
    size_t n, n_strs;
};

static const char *keep(struct event_list *l, const char *s)
{
    char *d = hs_strdup(s);
    l->strs[l->n_strs++] = d;
    return d;
}

/* POST /__sandbox/jobs/{id}/events: fires events about a job now. */
static void admin_job_events(struct sb_req *q, struct sb_resp *r, int64_t id)
{
    struct sb_server *s = q->srv;
    json_t *b = admin_body(q, r);
    if (!b)
        return;
    json_t *names = json_object_get(b, "events"), *st = json_object_get(b, "state");
    bool ok = (!names || (json_is_array(names) && json_array_size(names) >= 1 &&
                          json_array_size(names) <= ADMIN_EVENTS)) &&
              (!st || (json_is_string(st) && json_string_length(st) >= 1 &&
                       json_string_length(st) <= EVENT_NAME_MAX));
    for (size_t i = 0; ok && names && i < json_array_size(names); i++) {
        json_t *n = json_array_get(names, i);
        ok = json_is_string(n) && json_string_length(n) >= 1 &&
             json_string_length(n) <= EVENT_NAME_MAX;
    }
    if (!ok) {
        sb_resp_error(r, 422, "expected {\"events\": [1..16 event names], \"state\": string}");
        return;
    }
    const char *override = st ? json_string_value(st) : NULL;
    struct event_list *l = hs_calloc(1, sizeof *l);
    struct sb_world *w = s->world;
    int64_t org = 0;
    const char *ext = NULL, *err = NULL;
    pthread_mutex_lock(&w->lock);
    const struct sb_job *j = sb_world_job(w, id);
    if (!j) {
        err = "No such job";
    } else {
        org = j->org_id;
        ext = j->external_identifier ? keep(l, j->external_identifier) : NULL;
        size_t n_names = names ? json_array_size(names) : 1;
        for (size_t i = 0; i < n_names && !err; i++) {
            const char *type =
                names ? json_string_value(json_array_get(names, i)) : "job-state-changed-v2";
            bool model_event =
                !strcmp(type, "model-created") || !strcmp(type, "model-state-changed");
            if (model_event) {
                for (size_t m = 0; m < j->n_models && m < 8; m++)
                    l->ev[l->n++] = (struct sb_event){
                        .type = type, /* borrowed from the request body */
                        .job_id = id,
                        .model_id = j->models[m].id,
                        .state = keep(l, override ? override : j->models[m].state)};
                continue;
            }
            const char *state = override ? override : j->reconstruction_state;
            if (!strcmp(type, "job-state-changed-v2") && !override && hs_streq(state, "draft")) {
                err = "draft jobs fire no webhook (hover-api.md 4.1); send a state to force one";
                break;
            }
            bool settled = hs_streq(state, "completed") || hs_streq(state, "failed");
            l->ev[l->n++] = (struct sb_event){.type = type,
                                              .job_id = id,
                                              .state = state ? keep(l, state) : NULL,
                                              .estimated_hours = settled ? 0.0 : 1.39};
        }
    }
    pthread_mutex_unlock(&w->lock);
    if (err) {
        sb_resp_error(r, j ? 422 : 404, err);
    } else {
        for (size_t i = 0; i < l->n; i++)
            l->ev[i].job_external_identifier = ext;
        size_t hooks = sb_webhooks_emit(s->hooks, org, l->ev, l->n);
        sb_resp_json(r, 200,
                     json_pack("{sI sI sI}", "job_id", (json_int_t)id, "events", (json_int_t)l->n,
                               "webhooks", (json_int_t)hooks));
    }
    for (size_t i = 0; i < l->n_strs; i++)
        free(l->strs[i]);
    free(l);
}

void sb_admin_jobs(struct sb_req *q, struct sb_resp *r, const char *rest)
{
    if (!*rest) {
        if (admin_is(q, "POST"))
            admin_job_create(q, r);
        else
            method_not_allowed(r, "POST");
        return;
    }
    int64_t id;
    const char *p = rest + 1;
    if (rest[0] != '/' || !sb_path_id(&p, &id) || strcmp(p, "/events") != 0) {
        sb_resp_error(r, 404, "Not found");
        return;
    }
    if (!admin_is(q, "POST"))
        method_not_allowed(r, "POST");
    else
        admin_job_events(q, r, id);
}
