/* routes_oauth.c: the OAuth 2.0 authorization-code flow of the sandbox: the consent page
 * (GET /oauth/authorize), the user's decision (POST /oauth/authorize) and the token endpoint
 * (POST /oauth/token, JSON or form bodies, authorization_code and refresh_token grants). */
#include <microhttpd.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/mem.h"
#include "core/str.h"
#include "routes.h"

#define PAGE_MAX      (1024u * 1024u)
#define PAGE_ORGS_MAX 200

const char *sb_basic_auth_user(struct sb_req *q)
{
    if (q->basic_parsed)
        return q->basic_parsed > 0 ? q->basic_user : NULL;
    q->basic_parsed = -1;
    const char *h = sb_header(q, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Basic ", 6) != 0)
        return NULL;
    h += 6;
    while (*h == ' ')
        h++;
    size_t n = strlen(h);
    if (n == 0 || n % 4 != 0 || n > 512)
        return NULL;
    unsigned char dec[400];
    int len = EVP_DecodeBlock(dec, (const unsigned char *)h, (int)n);
    if (len < 0)
        return NULL;
    /* EVP_DecodeBlock counts the padding as zero bytes. */
    if (n >= 1 && h[n - 1] == '=')
        len--;
    if (n >= 2 && h[n - 2] == '=')
        len--;
    dec[len] = '\0';
    char *colon = memchr(dec, ':', (size_t)len);
    if (!colon)
        return NULL;
    *colon = '\0';
    if (hs_strlcpy(q->basic_user, (char *)dec, sizeof q->basic_user) != 0 ||
        hs_strlcpy(q->basic_secret, colon + 1, sizeof q->basic_secret) != 0)
        return NULL;
    q->basic_parsed = 1;
    return q->basic_user;
}

/* A parameter from the form body, else from the query string. */
static const char *param(struct sb_req *q, const char *name)
{
    const char *v = NULL;
    if (!strcmp(q->method, "POST"))
        v = sb_param_str(q, name);
    return v ? v : sb_arg(q, name);
}

/* The redirect URI must be a registered prefix (--redirect-uri) or, by default, a loopback URL. */
static bool redirect_ok(const struct sb_server *s, const char *uri)
{
    if (!uri || !*uri)
        return false;
    for (const unsigned char *p = (const unsigned char *)uri; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f || *p == '#')
            return false; /* no fragment, nothing that could split the Location header */
    if (s->cfg.redirect_uri)
        return hs_starts_with(uri, s->cfg.redirect_uri);
    static const char *const loopback[] = {"http://127.0.0.1", "http://localhost", "http://[::1]"};
    for (size_t i = 0; i < sizeof loopback / sizeof *loopback; i++) {
        size_t n = strlen(loopback[i]);
        if (strncasecmp(uri, loopback[i], n) == 0 &&
            (uri[n] == '\0' || uri[n] == ':' || uri[n] == '/' || uri[n] == '?'))
            return true;
    }
    return false;
}

static const char PAGE_HEAD[] =
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>%s - Hover Sandbox</title>\n<style>\n"
    "body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0;color:#1d2330}\n"
    "main{max-width:32rem;margin:4rem auto;background:#fff;border-radius:8px;padding:2rem;"
    "box-shadow:0 1px 4px rgba(0,0,0,.12)}\n"
    "h1{font-size:1.35rem;margin-top:0}label{display:block;margin:1rem 0 .3rem;font-weight:600}\n"
    "select{width:100%%;padding:.4rem}.actions{margin-top:1.5rem;display:flex;gap:.75rem}\n"
    "button{padding:.6rem 1.4rem;border-radius:4px;border:1px solid #888;font-size:1rem;"
    "cursor:pointer}\n#allow{background:#1f6feb;border-color:#1f6feb;color:#fff}\n"
    "code{word-break:break-all}.note{color:#555;font-size:.9rem}\n"
    "</style>\n</head>\n<body>\n<main>\n";

static const char PAGE_TAIL[] = "</main>\n</body>\n</html>\n";

static void html_error(struct sb_resp *r, int status, const char *title, const char *detail)
{
    struct hs_buf b;
    hs_buf_init(&b, PAGE_MAX);
    char *t = hs_html_escape(title), *d = hs_html_escape(detail);
    (void)hs_buf_appendf(&b, PAGE_HEAD, t);
    (void)hs_buf_appendf(&b, "<h1 id=\"error\">%s</h1>\n<p>%s</p>\n", t, d);
    (void)hs_buf_appends(&b, PAGE_TAIL);
    free(t);
    free(d);
    size_t len;
    char *body = hs_buf_take(&b, &len);
    sb_resp_set(r, status, "text/html; charset=utf-8", body, len);
}

static void hidden(struct hs_buf *b, const char *name, const char *value)
{
    char *v = hs_html_escape(value ? value : "");
    (void)hs_buf_appendf(b, "<input type=\"hidden\" name=\"%s\" value=\"%s\">\n", name, v);
    free(v);
}

/* Redirects to uri with extra query parameters (already encoded). */
static void redirect(struct sb_resp *r, const char *uri, const char *params, const char *state)
{
    struct hs_buf b;
    hs_buf_init(&b, 16384);
    (void)hs_buf_appends(&b, uri);
    (void)hs_buf_appends(&b, strchr(uri, '?') ? "&" : "?");
    (void)hs_buf_appends(&b, params);
    if (state) {
        char *e = hs_url_escape(state);
        (void)hs_buf_appendf(&b, "&state=%s", e);
        free(e);
    }
    sb_resp_header(r, MHD_HTTP_HEADER_LOCATION, hs_buf_str(&b));
    sb_resp_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    hs_buf_free(&b);
    sb_resp_set(r, 302, "text/html; charset=utf-8", NULL, 0);
}

/* Common checks of both authorize steps. Returns false after writing the answer. */
static bool authorize_checks(struct sb_req *q, struct sb_resp *r, const char **client_id,
                             const char **redirect_uri, const char **state)
{
    struct sb_server *s = q->srv;
    *client_id = param(q, "client_id");
    *redirect_uri = param(q, "redirect_uri");
    *state = param(q, "state");
    if (!*client_id || !sb_oauth_client_known(s->oauth, *client_id)) {
        html_error(r, 400, "Unknown client",
                   "The client_id of this authorization request is not a registered application.");
        return false;
    }
    if (!redirect_ok(s, *redirect_uri)) {
        html_error(r, 400, "Invalid redirect URI",
                   "The redirect_uri is missing or not registered for this application.");
        return false;
    }
    const char *rt = param(q, "response_type");
    if (!rt || strcmp(rt, "code") != 0) {
        redirect(r, *redirect_uri, "error=unsupported_response_type", *state);
        return false;
    }
    return true;
}

void sb_oauth_authorize_page(struct sb_req *q, struct sb_resp *r)
{
    const char *client_id, *redirect_uri, *state;
    if (!authorize_checks(q, r, &client_id, &redirect_uri, &state))
        return;
    struct sb_server *s = q->srv;
    struct sb_world *w = s->world;
    struct hs_buf b;
    hs_buf_init(&b, PAGE_MAX);
    char *app = hs_html_escape(client_id), *ru = hs_html_escape(redirect_uri);
    pthread_mutex_lock(&w->lock);
    const struct sb_org *def = sb_world_org(w, s->default_org_id);
    char *org = hs_html_escape(def && def->name ? def->name : "your organization");
    char title[256];
    (void)snprintf(title, sizeof title, "Authorize %s", app);
    (void)hs_buf_appendf(&b, PAGE_HEAD, title);
    (void)hs_buf_appendf(&b, "<h1 id=\"prompt\">Authorize %s to access %s?</h1>\n", app, org);
    (void)hs_buf_appendf(&b,
                         "<p><strong>%s</strong> will be able to read the jobs, measurements, "
                         "3D models and photos of the organization you choose.</p>\n"
                         "<p class=\"note\">You will be sent back to <code>%s</code>.</p>\n",
                         app, ru);
    (void)hs_buf_appends(&b, "<form method=\"post\" action=\"/oauth/authorize\">\n");
    hidden(&b, "client_id", client_id);
    hidden(&b, "redirect_uri", redirect_uri);
    hidden(&b, "response_type", "code");
    if (state)
        hidden(&b, "state", state);
    (void)hs_buf_appends(&b, "<label for=\"org_id\">Organization</label>\n"
                             "<select id=\"org_id\" name=\"org_id\">\n");
    for (size_t i = 0; i < w->n_orgs && i < PAGE_ORGS_MAX; i++) {
        char *name = hs_html_escape(w->orgs[i].name ? w->orgs[i].name : "");
        (void)hs_buf_appendf(
            &b, "<option value=\"%lld\"%s>%s (%lld)</option>\n", (long long)w->orgs[i].id,
            w->orgs[i].id == s->default_org_id ? " selected" : "", name, (long long)w->orgs[i].id);
        free(name);
    }
    pthread_mutex_unlock(&w->lock);
    (void)hs_buf_appends(&b, "</select>\n<div class=\"actions\">\n"
                             "<button type=\"submit\" id=\"allow\" name=\"decision\" "
                             "value=\"allow\">Allow</button>\n"
                             "<button type=\"submit\" id=\"deny\" name=\"decision\" "
                             "value=\"deny\">Deny</button>\n</div>\n</form>\n");
    (void)hs_buf_appends(&b, PAGE_TAIL);
    free(app);
    free(ru);
    free(org);
    size_t len;
    char *body = hs_buf_take(&b, &len);
    sb_resp_set(r, 200, "text/html; charset=utf-8", body, len);
    sb_resp_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
}

void sb_oauth_authorize_decide(struct sb_req *q, struct sb_resp *r)
{
    json_t *p;
    if (sb_req_params(q, &p) != 0) {
        html_error(r, 400, "Bad request", "The form could not be read.");
        return;
    }
    const char *client_id, *redirect_uri, *state;
    if (!authorize_checks(q, r, &client_id, &redirect_uri, &state))
        return;
    struct sb_server *s = q->srv;
    const char *decision = param(q, "decision");
    if (decision && strcmp(decision, "allow") != 0) {
        redirect(r, redirect_uri, "error=access_denied", state);
        return;
    }
    int64_t org_id = s->default_org_id;
    const char *org = param(q, "org_id");
    if (org && *org && hs_parse_i64(org, &org_id) != 0) {
        html_error(r, 400, "Unknown organization", "org_id is not a number.");
        return;
    }
    pthread_mutex_lock(&s->world->lock);
    bool known = sb_world_org(s->world, org_id) != NULL;
    pthread_mutex_unlock(&s->world->lock);
    if (!known) {
        html_error(r, 400, "Unknown organization", "There is no organization with that id.");
        return;
    }
    char code[SB_TOKEN_BUF], params[SB_TOKEN_BUF + 8];
    sb_oauth_new_code(s->oauth, client_id, redirect_uri, org_id, sb_now_ms(), code);
    (void)snprintf(params, sizeof params, "code=%s", code);
    redirect(r, redirect_uri, params, state);
}

static void no_store(struct sb_resp *r)
{
    sb_resp_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    sb_resp_header(r, MHD_HTTP_HEADER_PRAGMA, "no-cache");
}

static void missing(struct sb_resp *r, const char *name)
{
    char msg[128];
    (void)snprintf(msg, sizeof msg, "Missing required parameter: %s", name);
    sb_resp_oauth_error(r, 400, "invalid_request", msg);
    no_store(r);
}

void sb_oauth_token(struct sb_req *q, struct sb_resp *r)
{
    struct sb_server *s = q->srv;
    json_t *p;
    if (sb_req_params(q, &p) != 0) {
        sb_resp_oauth_error(r, 400, "invalid_request", "malformed JSON");
        no_store(r);
        return;
    }
    const char *grant = sb_param_str(q, "grant_type");
    const char *client_id = sb_param_str(q, "client_id");
    const char *secret = sb_param_str(q, "client_secret");
    if ((!client_id || !secret) && sb_basic_auth_user(q)) {
        client_id = q->basic_user;
        secret = q->basic_secret;
    }
    if (!grant || !*grant) {
        missing(r, "grant_type");
        return;
    }
    bool by_code = !strcmp(grant, "authorization_code");
    if (!by_code && strcmp(grant, "refresh_token") != 0) {
        sb_resp_oauth_error(r, 400, "unsupported_grant_type",
                            "grant_type must be authorization_code or refresh_token");
        no_store(r);
        return;
    }
    const char *code = sb_param_str(q, "code");
    const char *redirect_uri = sb_param_str(q, "redirect_uri");
    const char *refresh = sb_param_str(q, "refresh_token");
    if (by_code && (!code || !*code)) {
        missing(r, "code");
        return;
    }
    if (by_code && (!redirect_uri || !*redirect_uri)) {
        missing(r, "redirect_uri");
        return;
    }
    if (!by_code && (!refresh || !*refresh)) {
        missing(r, "refresh_token");
        return;
    }
    if (!sb_oauth_client_auth(s->oauth, client_id, secret)) {
        sb_resp_oauth_error(r, 401, "invalid_client",
                            !client_id || !secret
                                ? "Client authentication failed: client_id and client_secret "
                                  "are required"
                                : "Client authentication failed: unknown client or wrong secret");
        no_store(r);
        return;
    }
    struct sb_token_pair pair;
    const char *why = NULL;
    int rc = by_code ? sb_oauth_redeem_code(s->oauth, code, client_id, redirect_uri, sb_now_ms(),
                                            &pair, &why)
                     : sb_oauth_refresh(s->oauth, refresh, client_id, sb_now_ms(), &pair, &why);
    if (rc != 0) {
        sb_resp_oauth_error(r, 400, "invalid_grant", why);
        no_store(r);
        return;
    }
    sb_resp_json(r, 200, sb_token_pair_json(&pair));
    no_store(r);
}
