/* routes_web.c: what browsers load: the modal page and its files (web/), the connect flow
 * (GET /connect, GET /oauth/callback: Hover's OAuth authorization-code grant), and the demo CRM
 * listener (web/demo/, another origin that mints a modal session like a CRM back-end would). */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "hover/oauth.h"
#include "hover/transport.h"
#include "server/internal.h"

#define NAME_MAX_LEN 64

/* ---- files of web/ ---- */

/* Opens dir + rel (rel starts with '/') as a regular file; -1 if there is none. */
static int open_web_file(const char *dir, const char *rel, struct stat *st)
{
    char *path = hs_aprintf("%s%s", dir, rel);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    free(path);
    if (fd < 0)
        return -1;
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool serve_web_file(struct hs_server *s, const char *dir, const char *rel, struct hs_resp *r)
{
    struct stat st;
    int fd = open_web_file(dir, rel, &st);
    if (fd < 0)
        return false;
    const char *ctype = hs_content_type_for(rel);
    hs_resp_set(r, 200, ctype, NULL, 0);
    r->fd = fd;
    r->fd_size = (uint64_t)st.st_size;
    /* The files change with deployments: revalidate, and never cache HTML pages. */
    hs_resp_header(r, "Cache-Control",
                   strncmp(ctype, "text/html", 9) == 0 ? "no-store" : "no-cache");
    (void)s;
    return true;
}

/* Reads a whole (small) file of web/; NULL when missing or too big. */
static char *read_web_file(const char *dir, const char *rel)
{
    struct stat st;
    int fd = open_web_file(dir, rel, &st);
    if (fd < 0)
        return NULL;
    struct hs_buf b;
    hs_buf_init(&b, HTML_MAX);
    char chunk[16384];
    ssize_t got;
    int rc = HS_OK;
    while (rc == HS_OK && (got = read(fd, chunk, sizeof chunk)) > 0)
        rc = hs_buf_append(&b, chunk, (size_t)got);
    close(fd);
    if (rc != HS_OK || got < 0) {
        hs_buf_free(&b);
        return NULL;
    }
    return hs_buf_take(&b, NULL);
}

/* Replaces every occurrence of needle; takes text, returns a new string. */
static char *replace_all(char *text, const char *needle, const char *value)
{
    struct hs_buf b;
    hs_buf_init(&b, HTML_MAX * 2);
    size_t nl = strlen(needle);
    const char *p = text, *hit;
    while ((hit = strstr(p, needle)) != NULL) {
        (void)hs_buf_append(&b, p, (size_t)(hit - p));
        (void)hs_buf_appends(&b, value);
        p = hit + nl;
    }
    (void)hs_buf_appends(&b, p);
    free(text);
    return hs_buf_take(&b, NULL);
}

bool hs_route_static(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    const char *path = strcmp(q->path, "/") == 0 ? "/index.html" : q->path;
    /* The demo CRM's files belong to its own origin (--demo-crm). */
    if (!hs_web_path_ok(path) || hs_starts_with(path, "/demo/"))
        return false;
    return serve_web_file(s, s->web_dir, path, r);
}

/* ---- the modal ---- */

/* GET /modal[?session=TOKEN]: the page, with the hs_session cookie set from a session token (a
 * CRM back-end minted it with POST /api/sessions) and the session's csrf token in a meta tag. */
void hs_route_modal(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    const char *token = hs_req_arg(q, "session");
    const char *cookie = hs_req_cookie(q, "hs_session");
    struct hs_session ss = {0};
    struct hs_error err = {0};
    bool have = false;
    if (token && *token) {
        int rc = hs_session_lookup(s, token, &ss, &err);
        if (rc == HS_ERR_NOT_FOUND) {
            hs_resp_html_message(s, r, 401, "Session expired",
                                 "This modal session is unknown or has expired. Open the modal "
                                 "again from your CRM.");
            return;
        }
        if (rc) {
            hs_warn("modal msg=\"session lookup failed\" detail=\"%s\"", err.msg);
            hs_resp_html_message(s, r, 500, "Error", "The session could not be checked.");
            return;
        }
        hs_session_set_cookie(s, r, token);
        have = true;
    } else if (cookie && hs_session_lookup(s, cookie, &ss, NULL) == HS_OK) {
        have = true;
    }
    char *html = read_web_file(s->web_dir, "/modal.html");
    if (!html) {
        hs_session_clear(&ss);
        hs_resp_html_message(s, r, 404, "Not installed",
                             "The modal's files are missing (see --web-dir).");
        return;
    }
    const char *csrf = have ? ss.csrf_token : "";
    char *meta = hs_aprintf("<head>\n<meta name=\"hoversync-csrf\" content=\"%s\">", csrf);
    if (have && strstr(html, "<head>"))
        html = replace_all(html, "<head>", meta);
    free(meta);
    html = replace_all(html, "__HOVERSYNC_CSRF__", csrf);
    html = replace_all(html, "__HOVERSYNC_URL__", s->public_url);
    html = replace_all(html, "__HOVERSYNC_SESSION__", "");
    hs_session_clear(&ss);
    /* A stored response or a copy could replay the session: every modal answer is private. */
    hs_resp_html(s, r, 200, html);
}

/* ---- the demo CRM (its own listener, its own origin) ---- */

void hs_route_demo(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    if (strcmp(q->method, "GET") != 0 && strcmp(q->method, "HEAD") != 0) {
        hs_resp_error(r, 405, "method_not_allowed", "the demo CRM serves GET only");
        hs_resp_header(r, "Allow", "GET, HEAD");
        return;
    }
    char *dir = hs_aprintf("%s/demo", s->web_dir);
    const char *path = q->path;
    if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0 ||
        strcmp(path, "/crm.html") == 0) {
        char *html = read_web_file(dir, "/crm.html");
        free(dir);
        if (!html) {
            hs_resp_html_message(s, r, 404, "Not installed", "web/demo/crm.html is missing.");
            return;
        }
        /* What a CRM's back-end does before it opens the modal: mint a session for its user. */
        char token[65];
        struct hs_session ss = {0};
        struct hs_error err = {0};
        int rc = hs_session_create(s, "demo-crm", token, &ss, &err);
        if (rc) {
            free(html);
            hs_warn("demo msg=\"cannot create a session\" detail=\"%s\"", err.msg);
            hs_resp_html_message(s, r, 500, "Error", "The demo could not create a session.");
            return;
        }
        html = replace_all(html, "__HOVERSYNC_SESSION__", token);
        html = replace_all(html, "__HOVERSYNC_CSRF__", ss.csrf_token);
        html = replace_all(html, "__HOVERSYNC_URL__", s->public_url);
        hs_session_clear(&ss);
        OPENSSL_cleanse(token, sizeof token);
        hs_resp_html(s, r, 200, html);
        return;
    }
    bool ok = hs_web_path_ok(path) && serve_web_file(s, dir, path, r);
    free(dir);
    if (!ok)
        hs_resp_error(r, 404, "not_found", "no such file: %.200s", path);
}

/* ---- the connect flow ---- */

static bool name_ok(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= 'A' && n[i] <= 'Z') ||
              (n[i] >= '0' && n[i] <= '9') || n[i] == '-' || n[i] == '_' || n[i] == '.'))
            return false;
    return true;
}

static char *redirect_uri(const struct hs_server *s)
{
    return hs_aprintf("%s/oauth/callback", s->public_url);
}

/* GET /connect[?connection=NAME]: to Hover's authorize page, with a fresh `state`. */
void hs_route_connect(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    if (!s->client_id || !s->client_secret) {
        hs_resp_error(r, 503, "internal",
                      "connecting needs the integration's OAuth client: set HOVER_CLIENT_ID and "
                      "HOVER_CLIENT_SECRET");
        return;
    }
    const char *name = hs_req_arg(q, "connection");
    if (name && *name && !name_ok(name)) {
        hs_resp_error(r, 400, "bad_request",
                      "connection names are 1 to %d letters, digits, '.', '_' or '-'",
                      NAME_MAX_LEN);
        return;
    }
    char state[33];
    if (hs_random_hex(16, state) != HS_OK) {
        hs_resp_error(r, 500, "internal", "no randomness for the OAuth state");
        return;
    }
    pthread_mutex_lock(&s->cache_lock);
    struct oauth_state *st = &s->states[s->states_next++ % OAUTH_STATES_N];
    free(st->connection);
    memcpy(st->state, state, sizeof st->state);
    st->connection = name && *name ? hs_strdup(name) : NULL;
    st->expires_ms = hs_server_mono_ms(s) + OAUTH_STATE_MS;
    pthread_mutex_unlock(&s->cache_lock);
    char *ru = redirect_uri(s);
    char *url = hs_oauth_authorize_url(s->hover_url, s->client_id, ru, state);
    hs_resp_html_message(s, r, 302, "Connecting to Hover", "Redirecting to Hover...");
    hs_resp_header(r, "Location", url);
    hs_info("connect msg=\"started\" connection=%s", name && *name ? name : "(org id)");
    free(url);
    free(ru);
}

/* Takes the flow of `state` (single use): true and its connection name (may be NULL). Every
 * stored state is compared, in constant time. */
static bool take_state(struct hs_server *s, const char *state, char **connection)
{
    bool found = false;
    *connection = NULL;
    if (!state || strlen(state) != 32)
        return false;
    int64_t now = hs_server_mono_ms(s);
    pthread_mutex_lock(&s->cache_lock);
    for (size_t i = 0; i < OAUTH_STATES_N; i++) {
        struct oauth_state *st = &s->states[i];
        bool eq = CRYPTO_memcmp(st->state, state, 32) == 0;
        if (eq && st->state[0] && !found && st->expires_ms > now) {
            found = true;
            *connection = st->connection;
            st->connection = NULL;
            memset(st->state, 0, sizeof st->state);
        }
    }
    pthread_mutex_unlock(&s->cache_lock);
    return found;
}

static char *connected_page(const struct hs_server *s, const char *key, int64_t owner_id)
{
    json_t *msg = json_pack("{s:s, s:s, s:o}", "type", "hoversync:connected", "connection", key,
                            "owner_id", owner_id > 0 ? json_integer(owner_id) : json_null());
    json_t *targets = json_array();
    json_array_append_new(targets, json_string(s->public_origin));
    for (size_t i = 0; i < s->n_origins; i++)
        json_array_append_new(targets, json_string(s->origins[i]));
    /* JSON_ESCAPE_SLASH: "</script>" cannot appear in the inline script. */
    char *m = json_dumps(msg, JSON_COMPACT | JSON_ESCAPE_SLASH);
    char *t = json_dumps(targets, JSON_COMPACT | JSON_ESCAPE_SLASH);
    json_decref(msg);
    json_decref(targets);
    char org[32] = "";
    if (owner_id > 0)
        (void)snprintf(org, sizeof org, " %lld", (long long)owner_id);
    char *k = hs_html_escape(key);
    char *html = hs_aprintf(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>Hover connected</title></head><body>"
        "<h1>Connected Hover org%s</h1><p>The connection <code>%s</code> is ready. You can close "
        "this window.</p><script>(function(){var m=%s,t=%s;"
        "if(window.opener){t.forEach(function(o){try{window.opener.postMessage(m,o);}"
        "catch(e){}});}}());</script></body></html>",
        org, k, m ? m : "null", t ? t : "[]");
    free(k);
    free(m);
    free(t);
    return html;
}

/* GET /oauth/callback?code=&state= (or ?error=&state=) */
void hs_route_oauth_callback(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    char *name = NULL, *ru = NULL, *key = NULL;
    struct hs_token tok = {0};
    if (!take_state(s, hs_req_arg(q, "state"), &name)) {
        hs_resp_html_message(s, r, 400, "Not connected",
                             "This sign-in answer does not belong to a connect flow of this "
                             "service, or it expired. Start again from the modal.");
        return;
    }
    const char *error = hs_req_arg(q, "error");
    const char *code = hs_req_arg(q, "code");
    if (error || !code || !*code) {
        char msg[200];
        (void)snprintf(msg, sizeof msg, "Hover did not grant access (%.64s).",
                       error ? error : "no code in the answer");
        hs_resp_html_message(s, r, 400, "Not connected", msg);
        goto out;
    }
    ru = redirect_uri(s);
    struct hs_transport *t = hs_transport_curl_new();
    if (!t) {
        hs_resp_html_message(s, r, 500, "Not connected", "The HTTP client could not start.");
        goto out;
    }
    struct hs_oauth_app app = {
        .base_url = s->hover_url,
        .client_id = s->client_id,
        .client_secret = s->client_secret,
        .transport = t,
        .clock = s->clock,
        .limiter = hs_client_pool_limiter(s->pool),
        .timeout_ms = 30000,
    };
    struct hs_error err = {0};
    int rc = hs_oauth_token_request(&app, "authorization_code", code, ru, &tok, &err);
    atomic_fetch_add(&s->oauth_requests, app.requests);
    hs_transport_free(t);
    if (rc) {
        hs_warn("connect msg=\"code exchange failed\" code=%s detail=\"%s\"", hs_err_name(rc),
                err.msg);
        hs_resp_html_message(s, r, 400, "Not connected", err.msg[0] ? err.msg : hs_err_name(rc));
        goto out;
    }
    key = name               ? hs_strdup(name)
          : tok.owner_id > 0 ? hs_aprintf("org-%lld", (long long)tok.owner_id)
                             : hs_strdup("default");
    if ((rc = s->store->ops->token_save(s->store, key, &tok, &err)) != HS_OK) {
        hs_warn("connect msg=\"cannot store the tokens\" detail=\"%s\"", err.msg);
        hs_resp_html_message(s, r, 500, "Not connected", "The tokens could not be stored.");
        goto out;
    }
    hs_connection_note(s, key, HS_OK);
    if (s->register_webhooks)
        (void)hs_server_register_webhooks(s, key, NULL); /* logged; the page says connected */
    char fp[9];
    hs_token_fingerprint(tok.access_token, fp);
    hs_info("connect msg=\"connected\" connection=%s owner_id=%lld token=%s", key,
            (long long)tok.owner_id, fp);
    /* The browser that connected the org gets a session, as the modal would. */
    char token[65];
    char *user = hs_aprintf("connect:%s", key);
    rc = hs_session_create(s, user, token, NULL, &err);
    free(user);
    char *html = connected_page(s, key, tok.owner_id);
    hs_resp_html(s, r, 200, html);
    if (rc == HS_OK)
        hs_session_set_cookie(s, r, token);
    else
        hs_warn("connect msg=\"no session for the browser\" detail=\"%s\"", err.msg);
    OPENSSL_cleanse(token, sizeof token);
out:
    if (tok.access_token)
        OPENSSL_cleanse(tok.access_token, strlen(tok.access_token));
    if (tok.refresh_token)
        OPENSSL_cleanse(tok.refresh_token, strlen(tok.refresh_token));
    hs_token_clear(&tok);
    free(name);
    free(ru);
    free(key);
}
