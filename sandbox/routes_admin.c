/* routes_admin.c: the sandbox-only control routes under /__sandbox/ (request log, fault rules,
 * tokens without a browser, model changes, runtime settings) and /healthz. They need no OAuth,
 * are not rate limited, take no faults and are not logged, so they never disturb what a test
 * counts. */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/mem.h"
#include "core/str.h"
#include "routes.h"

#define PDF_BYTES_MAX (256LL * 1024 * 1024)
#define STATE_MAX     64

static bool is(const struct sb_req *q, const char *m)
{
    return !strcmp(q->method, m) || (!strcmp(m, "GET") && !strcmp(q->method, "HEAD"));
}

static void method_not_allowed(struct sb_resp *r, const char *allow)
{
    sb_resp_error(r, 405, "Method not allowed");
    sb_resp_header(r, "Allow", allow);
}

/* The JSON body as an object, or a 400 written to r. */
static json_t *body_object(struct sb_req *q, struct sb_resp *r)
{
    json_t *p;
    if (sb_req_json(q, &p) != 0) {
        sb_resp_oauth_error(r, 400, "invalid_request", "malformed JSON");
        return NULL;
    }
    return p;
}

static void requests_route(struct sb_req *q, struct sb_resp *r)
{
    struct sb_server *s = q->srv;
    if (is(q, "DELETE")) {
        sb_reqlog_clear(s->log);
        sb_resp_json(r, 200, json_pack("{sb}", "cleared", 1));
        return;
    }
    if (!is(q, "GET")) {
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
    char *body = sb_reqlog_dump(s->log, since, (size_t)limit, &len);
    sb_resp_set(r, 200, "application/json", body, len);
}

static void faults_route(struct sb_req *q, struct sb_resp *r, const char *rest)
{
    struct sb_server *s = q->srv;
    if (*rest) { /* /__sandbox/faults/{id} */
        int64_t id;
        const char *p = rest + 1;
        if (rest[0] != '/' || !sb_path_id(&p, &id) || *p) {
            sb_resp_error(r, 404, "Not found");
        } else if (!is(q, "DELETE")) {
            method_not_allowed(r, "DELETE");
        } else if (!sb_faults_remove(s->faults, id)) {
            sb_resp_error(r, 404, "No such fault rule");
        } else {
            sb_resp_json(r, 200, json_pack("{sI}", "deleted", (json_int_t)id));
        }
        return;
    }
    if (is(q, "GET")) {
        sb_resp_json(r, 200, sb_faults_json(s->faults));
    } else if (is(q, "DELETE")) {
        sb_faults_clear(s->faults);
        sb_resp_json(r, 200, json_pack("{sb}", "cleared", 1));
    } else if (is(q, "POST")) {
        json_t *b = body_object(q, r);
        if (!b)
            return;
        struct sb_fault_rule rule;
        char err[160];
        if (sb_fault_from_json(b, &rule, err, sizeof err) != 0) {
            sb_resp_error(r, 422, err);
            return;
        }
        int64_t id = sb_faults_add(s->faults, &rule);
        sb_resp_json(r, 201, json_pack("{sI}", "id", (json_int_t)id));
    } else {
        method_not_allowed(r, "GET, HEAD, POST, DELETE");
    }
}

static bool org_exists(struct sb_world *w, int64_t id)
{
    pthread_mutex_lock(&w->lock);
    bool found = sb_world_org(w, id) != NULL;
    pthread_mutex_unlock(&w->lock);
    return found;
}

static void tokens_route(struct sb_req *q, struct sb_resp *r, const char *rest)
{
    struct sb_server *s = q->srv;
    if (!strcmp(rest, "/expire")) {
        if (!is(q, "POST")) {
            method_not_allowed(r, "POST");
            return;
        }
        size_t n = sb_oauth_expire_all(s->oauth, sb_now_ms());
        sb_resp_json(r, 200, json_pack("{sI}", "expired", (json_int_t)n));
        return;
    }
    if (*rest) {
        sb_resp_error(r, 404, "Not found");
        return;
    }
    if (!is(q, "POST")) {
        method_not_allowed(r, "POST");
        return;
    }
    json_t *b = body_object(q, r);
    if (!b)
        return;
    int64_t org = s->default_org_id;
    json_t *o = json_object_get(b, "org_id");
    if (o && !json_is_null(o) && !hs_json_i64(b, "org_id", &org)) {
        sb_resp_error(r, 422, "org_id must be an integer");
        return;
    }
    if (!org_exists(s->world, org)) {
        sb_resp_error(r, 404, "Unknown org");
        return;
    }
    json_t *c = json_object_get(b, "client_id");
    if (c && !json_is_string(c)) {
        sb_resp_error(r, 422, "client_id must be a string");
        return;
    }
    const char *client =
        c && json_string_length(c) ? json_string_value(c) : sb_oauth_client_id(s->oauth);
    struct sb_token_pair pair;
    sb_oauth_mint(s->oauth, client, org, sb_now_ms(), &pair);
    sb_resp_json(r, 200, sb_token_pair_json(&pair));
}

static void model_route(struct sb_req *q, struct sb_resp *r, const char *rest)
{
    struct sb_server *s = q->srv;
    int64_t id;
    const char *p = rest;
    if (*p != '/' || (p++, !sb_path_id(&p, &id)) || *p) {
        sb_resp_error(r, 404, "Not found");
        return;
    }
    if (!is(q, "POST")) {
        method_not_allowed(r, "POST");
        return;
    }
    json_t *b = body_object(q, r);
    if (!b)
        return;
    json_t *st = json_object_get(b, "state"), *bump = json_object_get(b, "bump_revision"),
           *pdf = json_object_get(b, "pdf_bytes");
    if ((st && (!json_is_string(st) || json_string_length(st) == 0 ||
                json_string_length(st) > STATE_MAX)) ||
        (bump && !json_is_boolean(bump)) ||
        (pdf && (!json_is_integer(pdf) || json_integer_value(pdf) < 0 ||
                 json_integer_value(pdf) > PDF_BYTES_MAX))) {
        sb_resp_error(r, 422,
                      "expected {\"state\": string, \"bump_revision\": bool, \"pdf_bytes\": "
                      "0..268435456}");
        return;
    }
    if (!st && !bump && !pdf) {
        sb_resp_error(r, 422, "nothing to change: send state, bump_revision or pdf_bytes");
        return;
    }
    struct sb_world *w = s->world;
    int64_t now_ms = sb_now_ms();
    char iso[40];
    hs_iso8601_format(now_ms / 1000, (int)(now_ms % 1000), iso, sizeof iso);
    json_t *out = NULL;
    pthread_mutex_lock(&w->lock);
    struct sb_job *j = NULL;
    struct sb_model *m = sb_world_model(w, id, &j);
    if (m && j) {
        if (json_is_true(bump))
            m->revision++;
        if (pdf)
            m->pdf_bytes = (int64_t)json_integer_value(pdf);
        sb_world_set_str(&m->updated_at, iso);
        j->updated_at = now_ms / 1000;
        /* The generator's rules: photos appear on completion, the job's state follows its
         * models (reference 3.1). */
        if (st)
            sb_world_set_model_state(w, j, m, json_string_value(st), now_ms / 1000);
        sb_index_invalidate(s->index);
        out = sb_job_v3_json(w, j, s->api_base);
    }
    pthread_mutex_unlock(&w->lock);
    if (!out)
        sb_resp_error(r, 404, "No such model");
    else
        sb_resp_json(r, 200, out);
}

static json_t *config_json(struct sb_server *s)
{
    int64_t limit, window;
    sb_ratelimit_settings(s->rl, &limit, &window);
    pthread_mutex_lock(&s->world->lock);
    size_t n_jobs = s->world->n_jobs;
    pthread_mutex_unlock(&s->world->lock);
    struct sb_webhook_settings wh;
    sb_webhooks_get_settings(s->hooks, &wh);
    json_t *o =
        json_pack("{sI sI sb sI so so sI sI so so so sI}", "rate_limit", (json_int_t)limit,
                  "rate_window_ms", (json_int_t)window, "strict", sb_server_strict(s),
                  "token_lifetime", (json_int_t)sb_oauth_lifetime(s->oauth), "client_id",
                  hs_json_text(sb_oauth_client_id(s->oauth)), "redirect_uri",
                  hs_json_text(s->cfg.redirect_uri), "seed", (json_int_t)s->cfg.seed, "jobs",
                  (json_int_t)n_jobs, "api", hs_json_text(s->api_base), "storage",
                  hs_json_text(s->storage_base), "request_log", hs_json_text(s->cfg.request_log),
                  "default_org_id", (json_int_t)s->default_org_id);
    json_t *more = json_pack(
        "{sf sI sf sf sb sb sb}", "reconstruction_seconds",
        (double)sb_testjobs_duration_ms(s->testjobs) / 1000.0, "webhook_retry_base_ms",
        (json_int_t)wh.retry_base_ms, "webhook_duplicate_rate", wh.duplicate_rate,
        "webhook_drop_rate", wh.drop_rate, "webhook_reorder", wh.reorder, "webhook_unknown_events",
        wh.unknown_events, "verification_before_response", wh.verification_before_response);
    (void)json_object_set_new(more, "webhook_signer", json_string(sb_signer_name(wh.signer)));
    (void)json_object_set_new(more, "webhook_access_id",
                              json_string(sb_access_id_name(wh.access_id)));
    (void)json_object_set_new(more, "s3", s->s3 ? json_string(s->s3_base) : json_null());
    (void)json_object_update(o, more);
    json_decref(more);
    return o;
}

static bool is_rate(json_t *v)
{
    return json_is_number(v) && json_number_value(v) >= 0 && json_number_value(v) <= 1;
}

static void config_route(struct sb_req *q, struct sb_resp *r)
{
    struct sb_server *s = q->srv;
    if (is(q, "GET")) {
        sb_resp_json(r, 200, config_json(s));
        return;
    }
    if (!is(q, "POST")) {
        method_not_allowed(r, "GET, HEAD, POST");
        return;
    }
    json_t *b = body_object(q, r);
    if (!b)
        return;
    int64_t limit, window, lifetime = 0;
    sb_ratelimit_settings(s->rl, &limit, &window);
    bool rl_changed = false, strict = sb_server_strict(s);
    struct sb_webhook_settings wh;
    sb_webhooks_get_settings(s->hooks, &wh);
    int64_t recon_ms = 0;
    const char *k;
    json_t *v;
    json_object_foreach(b, k, v)
    {
        bool ok = true;
        if (!strcmp(k, "rate_limit")) {
            ok = json_is_integer(v) && json_integer_value(v) >= 0 &&
                 json_integer_value(v) <= SB_RATELIMIT_MAX;
            limit = ok ? (int64_t)json_integer_value(v) : limit;
            rl_changed = true;
        } else if (!strcmp(k, "rate_window_ms")) {
            ok = json_is_integer(v) && json_integer_value(v) >= 1 &&
                 json_integer_value(v) <= 86400000;
            window = ok ? (int64_t)json_integer_value(v) : window;
            rl_changed = true;
        } else if (!strcmp(k, "strict")) {
            ok = json_is_boolean(v);
            strict = json_is_true(v);
        } else if (!strcmp(k, "token_lifetime")) {
            ok = json_is_integer(v) && json_integer_value(v) >= 1 &&
                 json_integer_value(v) <= 315360000;
            lifetime = ok ? (int64_t)json_integer_value(v) : 0;
        } else if (!strcmp(k, "reconstruction_seconds")) {
            double sec = json_is_number(v) ? json_number_value(v) : -1;
            ok = sec * 1000 >= SB_RECONSTRUCTION_MS_MIN &&
                 sec * 1000 <= (double)SB_RECONSTRUCTION_MS_MAX;
            recon_ms = ok ? (int64_t)(sec * 1000 + 0.5) : 0;
        } else if (!strcmp(k, "webhook_retry_base_ms")) {
            ok = json_is_integer(v) && json_integer_value(v) >= 1 &&
                 json_integer_value(v) <= SB_WEBHOOK_RETRY_BASE_MAX;
            wh.retry_base_ms = ok ? (int64_t)json_integer_value(v) : wh.retry_base_ms;
        } else if (!strcmp(k, "webhook_duplicate_rate") || !strcmp(k, "webhook_drop_rate")) {
            ok = is_rate(v);
            if (ok && !strcmp(k, "webhook_duplicate_rate"))
                wh.duplicate_rate = json_number_value(v);
            else if (ok)
                wh.drop_rate = json_number_value(v);
        } else if (!strcmp(k, "webhook_reorder") || !strcmp(k, "webhook_unknown_events") ||
                   !strcmp(k, "verification_before_response")) {
            ok = json_is_boolean(v);
            bool *dst = !strcmp(k, "webhook_reorder")          ? &wh.reorder
                        : !strcmp(k, "webhook_unknown_events") ? &wh.unknown_events
                                                               : &wh.verification_before_response;
            *dst = ok ? json_is_true(v) : *dst;
        } else if (!strcmp(k, "webhook_signer")) {
            ok = sb_signer_parse(json_string_value(v), &wh.signer) == 0;
        } else if (!strcmp(k, "webhook_access_id")) {
            ok = sb_access_id_parse(json_string_value(v), &wh.access_id) == 0;
        } else {
            char msg[160];
            (void)snprintf(msg, sizeof msg, "unknown setting '%.64s'", k);
            sb_resp_error(r, 422, msg);
            return;
        }
        if (!ok) {
            char msg[160];
            (void)snprintf(msg, sizeof msg, "bad value for %.64s", k);
            sb_resp_error(r, 422, msg);
            return;
        }
    }
    if (rl_changed)
        sb_ratelimit_configure(s->rl, limit, window);
    sb_server_set_strict(s, strict);
    if (lifetime)
        sb_oauth_set_lifetime(s->oauth, lifetime);
    sb_webhooks_set_settings(s->hooks, &wh);
    if (recon_ms)
        sb_testjobs_set_duration_ms(s->testjobs, recon_ms);
    sb_resp_json(r, 200, config_json(s));
}

static void orgs_route(struct sb_req *q, struct sb_resp *r)
{
    if (!is(q, "GET")) {
        method_not_allowed(r, "GET, HEAD");
        return;
    }
    struct sb_world *w = q->srv->world;
    json_t *arr = json_array();
    pthread_mutex_lock(&w->lock);
    for (size_t i = 0; i < w->n_orgs; i++) {
        const struct sb_org *o = &w->orgs[i];
        const struct sb_user *admin = sb_world_user(w, o->admin_user_id);
        json_t *users = json_array();
        for (size_t k = 0; k < w->n_users; k++) {
            const struct sb_user *u = &w->users[k];
            if (u->org_id == o->id)
                json_array_append_new(users, json_pack("{sI ss? ss? ss?}", "id", (json_int_t)u->id,
                                                       "email", u->email, "first_name",
                                                       u->first_name, "last_name", u->last_name));
        }
        json_array_append_new(arr, json_pack("{sI ss? sI ss? so}", "id", (json_int_t)o->id, "name",
                                             o->name, "admin_user_id", (json_int_t)o->admin_user_id,
                                             "admin_email", admin ? admin->email : NULL, "users",
                                             users));
    }
    pthread_mutex_unlock(&w->lock);
    sb_resp_json(r, 200, json_pack("{so}", "orgs", arr));
}

void sb_route_admin(struct sb_req *q, struct sb_resp *r)
{
    const char *p = q->path;
    if (!strcmp(p, "/healthz")) {
        sb_resp_text(r, 200, "text/plain", "ok\n");
        return;
    }
    if (!strcmp(p, "/__sandbox/requests"))
        requests_route(q, r);
    else if (!strcmp(p, "/__sandbox/faults") || hs_starts_with(p, "/__sandbox/faults/"))
        faults_route(q, r, p + strlen("/__sandbox/faults"));
    else if (!strcmp(p, "/__sandbox/tokens") || hs_starts_with(p, "/__sandbox/tokens/"))
        tokens_route(q, r, p + strlen("/__sandbox/tokens"));
    else if (hs_starts_with(p, "/__sandbox/models/"))
        model_route(q, r, p + strlen("/__sandbox/models"));
    else if (!strcmp(p, "/__sandbox/config"))
        config_route(q, r);
    else if (!strcmp(p, "/__sandbox/orgs"))
        orgs_route(q, r);
    else if (!strcmp(p, "/__sandbox/webhooks"))
        sb_admin_webhooks(q, r);
    else if (!strcmp(p, "/__sandbox/deliveries"))
        sb_admin_deliveries(q, r);
    else if (!strcmp(p, "/__sandbox/s3"))
        sb_admin_s3(q, r);
    else if (!strcmp(p, "/__sandbox/jobs") || hs_starts_with(p, "/__sandbox/jobs/"))
        sb_admin_jobs(q, r, p + strlen("/__sandbox/jobs"));
    else
        sb_resp_error(r, 404, "Not found");
}
