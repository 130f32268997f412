/* routes.c: request dispatch for the API and storage listeners, and helpers shared by the
 * route files. */
#include "routes.h"

#include <ctype.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/str.h"

static bool is_get(const struct sb_req *q)
{
    return !strcmp(q->method, "GET") || !strcmp(q->method, "HEAD");
}

static void method_not_allowed(struct sb_resp *r, const char *allow)
{
    sb_resp_error(r, 405, "Method not allowed");
    sb_resp_header(r, "Allow", allow);
}

bool sb_path_id(const char **p, int64_t *id)
{
    const char *s = *p;
    int64_t v = 0;
    size_t n = 0;
    while (isdigit((unsigned char)s[n])) {
        if (v > (INT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (s[n] - '0');
        n++;
    }
    if (n == 0 || v <= 0)
        return false;
    *p = s + n;
    *id = v;
    return true;
}

char *sb_lower(const char *s)
{
    char *d = hs_strdup(s);
    for (char *p = d; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return d;
}

void sb_world_set_str(char **field, const char *value)
{
    free(*field);
    *field = hs_strdup(value);
}

bool sb_require_token(struct sb_req *q, struct sb_resp *r)
{
    const char *desc = NULL;
    if (!q->has_bearer)
        desc = "Missing access token: send Authorization: Bearer <token>";
    else if (q->tok_state == SB_TOKEN_EXPIRED)
        desc = "The access token expired";
    else if (q->tok_state != SB_TOKEN_OK)
        desc = "The access token is invalid";
    if (!desc)
        return true;
    sb_resp_oauth_error(r, 401, "invalid_token", desc);
    char hdr[160];
    (void)snprintf(hdr, sizeof hdr,
                   "Bearer realm=\"Hover Sandbox\", error=\"invalid_token\", "
                   "error_description=\"%s\"",
                   desc);
    sb_resp_header(r, "WWW-Authenticate", hdr);
    return false;
}

bool sb_acting_user(struct sb_req *q, struct sb_resp *r)
{
    const char *uid = sb_arg(q, "current_user_id");
    const char *email = sb_arg(q, "current_user_email");
    if (uid && !*uid)
        uid = NULL;
    if (email && !*email)
        email = NULL;
    if (!uid && !email) {
        if (!sb_server_strict(q->srv))
            return true;
        sb_resp_error(r, 403, "current_user_id or current_user_email is required");
        return false;
    }
    struct sb_world *w = q->srv->world;
    bool ok = false;
    int64_t id = 0;
    pthread_mutex_lock(&w->lock);
    const struct sb_user *u = NULL;
    if (uid)
        u = hs_parse_i64(uid, &id) == 0 ? sb_world_user(w, id) : NULL;
    else
        u = sb_world_user_by_email(w, email);
    ok = u && u->org_id == q->tok.org_id;
    pthread_mutex_unlock(&w->lock);
    if (!ok)
        sb_resp_error(r, 403,
                      uid ? "current_user_id does not name a user of this organization"
                          : "current_user_email does not name a user of this organization");
    return ok;
}

static void route_api_models(struct sb_req *q, struct sb_resp *r, const char *rest)
{
    int64_t id;
    if (!sb_path_id(&rest, &id) || !hs_starts_with(rest, "/artifacts/") || !rest[11] ||
        strchr(rest + 11, '/')) {
        sb_resp_error(r, 404, "Not found");
        return;
    }
    if (!is_get(q)) {
        method_not_allowed(r, "GET, HEAD");
        return;
    }
    sb_artifact(q, r, id, rest + 11);
}

void sb_route_api(struct sb_req *q, struct sb_resp *r)
{
    const char *p = q->path;
    if (!strcmp(p, "/oauth/authorize")) {
        if (is_get(q))
            sb_oauth_authorize_page(q, r);
        else if (!strcmp(q->method, "POST"))
            sb_oauth_authorize_decide(q, r);
        else
            method_not_allowed(r, "GET, HEAD, POST");
        return;
    }
    if (!strcmp(p, "/oauth/token")) {
        if (!strcmp(q->method, "POST"))
            sb_oauth_token(q, r);
        else
            method_not_allowed(r, "POST");
        return;
    }
    if (!strcmp(p, "/api/v3/jobs/test_job") || !strcmp(p, "/api/v3/jobs/test_job.json")) {
        if (!strcmp(q->method, "POST"))
            sb_test_job(q, r);
        else
            method_not_allowed(r, "POST");
        return;
    }
    if (!strcmp(p, "/api/v2/webhooks") || hs_starts_with(p, "/api/v2/webhooks/") ||
        !strcmp(p, "/api/v2/webhooks.json")) {
        sb_webhooks_api(q, r, p + strlen("/api/v2/webhooks"));
        return;
    }
    int version = 0;
    if (!strcmp(p, "/api/v3/jobs") || !strcmp(p, "/api/v3/jobs.json"))
        version = 3;
    else if (!strcmp(p, "/api/v2/jobs") || !strcmp(p, "/api/v2/jobs.json"))
        version = 2;
    if (version) {
        if (is_get(q))
            sb_jobs_list(q, r, version);
        else
            method_not_allowed(r, "GET, HEAD");
        return;
    }
    int64_t id;
    if (hs_starts_with(p, "/api/v3/jobs/")) {
        const char *rest = p + 13;
        if (sb_path_id(&rest, &id) && (!*rest || !strcmp(rest, ".json"))) {
            if (is_get(q))
                sb_job_show(q, r, id);
            else
                method_not_allowed(r, "GET, HEAD");
            return;
        }
    } else if (hs_starts_with(p, "/api/v2/jobs/")) {
        const char *rest = p + 13;
        if (sb_path_id(&rest, &id) &&
            (!strcmp(rest, "/set_test_state.json") || !strcmp(rest, "/set_test_state"))) {
            if (!strcmp(q->method, "PATCH"))
                sb_set_test_state(q, r, id);
            else
                method_not_allowed(r, "PATCH");
            return;
        }
    } else if (hs_starts_with(p, "/api/v3/models/")) {
        route_api_models(q, r, p + 15);
        return;
    } else if (hs_starts_with(p, "/api/v3/images/")) {
        const char *rest = p + 15;
        if (sb_path_id(&rest, &id) && (!*rest || !strcmp(rest, ".jpg"))) {
            if (is_get(q))
                sb_image(q, r, id);
            else
                method_not_allowed(r, "GET, HEAD");
            return;
        }
    }
    sb_resp_error(r, 404, "Not found");
}
