/* routes_web.c: what browsers load: the modal page and its files (web/), the connect flow
 * (GET /connect, GET /oauth/callback: Hover's OAuth authorization-code grant), and the demo CRM
 * listener (web/demo/, another origin that mints a modal session like a CRM back-end would). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
#include "store/service.h"
#include "store/tokens.h"

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

/* GET /openapi.yaml: the API's contract, public like the rest of the documentation. Installed
 * beside the modal's files; where the web directory is the source tree's web/ (a build run
 * before any install), it is docs/openapi.yaml beside it. */
void hs_route_openapi(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    if (serve_web_file(s, s->web_dir, "/openapi.yaml", r) ||
        serve_web_file(s, s->web_dir, "/../docs/openapi.yaml", r))
        return;
    hs_resp_error(r, 404, "not_found", "the API's description is not installed (see --web-dir)");
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
            hs_resp_html_message(r, 401, "Session expired",
                                 "This modal session is unknown or has expired. Open the modal "
                                 "again from your CRM.");
            return;
        }
        if (rc) {
            hs_warn("modal msg=\"session lookup failed\" detail=\"%s\"", err.msg);
            hs_resp_html_message(r, 500, "Error", "The session could not be checked.");
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
        hs_resp_html_message(r, 404, "Not installed",
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
    hs_resp_html(r, 200, html);
}

/* ---- the demo CRM (its own listener, its own origin) ---- */

/* The demo's session: of connection `only` when given (HS_ERR_NOT_FOUND if there is none of
 * that name), else of every connection. */
static int demo_session(struct hs_server *s, const char *only, char token[65],
                        struct hs_session *ss, struct hs_error *err)
{
    struct hs_connection_row *rows = NULL;
    size_t n = 0, k = 0;
    int rc = s->store->service->connections_list(s->store, &rows, &n, err);
    if (rc)
        return rc;
    const char **keys = hs_calloc(n + 1, sizeof *keys);
    for (size_t i = 0; i < n; i++)
        if (!only || !*only || strcmp(rows[i].key, only) == 0)
            keys[k++] = rows[i].key;
    if (only && *only && k == 0)
        rc = hs_fail(err, HS_ERR_NOT_FOUND, "No connection is named %.64s.", only);
    else
        rc = hs_session_create(s, "demo-crm", keys, k, token, ss, err);
    free(keys);
    hs_connection_rows_free(rows, n);
    return rc;
}

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
            hs_resp_html_message(r, 404, "Not installed", "web/demo/crm.html is missing.");
            return;
        }
        /* What a CRM's back-end does before it opens the modal: mint a session for its user,
         * with the connection of this CRM tenant (?connection=), or every one for the demo. */
        char token[65];
        struct hs_session ss = {0};
        struct hs_error err = {0};
        int rc = demo_session(s, hs_req_arg(q, "connection"), token, &ss, &err);
        if (rc) {
            free(html);
            if (rc == HS_ERR_NOT_FOUND) {
                hs_resp_html_message(r, 404, "Unknown connection", err.msg);
                return;
            }
            hs_warn("demo msg=\"cannot create a session\" detail=\"%s\"", err.msg);
            hs_resp_html_message(r, 500, "Error", "The demo could not create a session.");
            return;
        }
        html = replace_all(html, "__HOVERSYNC_SESSION__", token);
        html = replace_all(html, "__HOVERSYNC_CSRF__", ss.csrf_token);
        html = replace_all(html, "__HOVERSYNC_URL__", s->public_url);
        hs_session_clear(&ss);
        OPENSSL_cleanse(token, sizeof token);
        hs_resp_html(r, 200, html);
        return;
    }
    bool ok = hs_web_path_ok(path) && serve_web_file(s, dir, path, r);
    free(dir);
    if (!ok)
        hs_resp_error(r, 404, "not_found", "no such file: %.200s", path);
}

/* ---- the connect flow ----
 * GET /connect (API key, session, or a connect ticket in a new tab) sets the hs_flow cookie on
 * this top-level page and keeps the flow in the store (the hashes of its state and of the
 * cookie, the client address: store/service.h) until Hover sends the browser back to
 * /oauth/callback, which must carry both the state and the cookie: a callback in another browser
 * is refused. The callback may reach any instance of the service. A state works once. Flows are
 * bounded per browser (its oldest is replaced) and per address (refused beyond), and never
 * evicted by others: when every slot is live, new flows wait. A grant for another org than the one
 * a connection is bound to re-points it only with the API key, or after the user confirms on a page
 * of the service (POST /connect/confirm, bound to the same cookie); it is logged. */

#define FLOW_COOKIE "hs_flow"

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

/* The browser's flow cookie as its hex SHA-256; false when it has none (or not one of ours). */
static bool flow_browser(const struct hs_req *q, char out[65])
{
    const char *c = hs_req_cookie(q, FLOW_COOKIE);
    if (!hs_is_hex(c, 64))
        return false;
    hs_sha256_hex(c, out);
    return true;
}

static const struct hs_flow_limits flow_limits = {
    .per_browser = FLOWS_PER_BROWSER, .per_address = FLOWS_PER_ADDRESS, .total = OAUTH_STATES_N};

static int64_t wall_ms(const struct hs_server *s)
{
    return s->clock->wall_ms(s->clock);
}

static void client_address(const struct hs_req *q, char *out, size_t n)
{
    (void)hs_strlcpy(out, "-", n);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(q->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (sa && sa->sa_family == AF_INET)
        (void)inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                        (socklen_t)n);
    else if (sa && sa->sa_family == AF_INET6)
        (void)inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                        (socklen_t)n);
}

int hs_connect_allowed(struct hs_req *q, const char *name, struct hs_resp *r)
{
    if (!name || !*name)
        return 0;
    if (!name_ok(name)) {
        hs_resp_error(r, 400, "bad_request",
                      "connection names are 1 to %d letters, digits, '.', '_' or '-'",
                      NAME_MAX_LEN);
        return -1;
    }
    if (hs_req_may_use(q, name))
        return 0;
    /* A session may create a connection, not take over another tenant's. */
    struct hs_connection_row *rows = NULL;
    size_t n = 0;
    if (hs_connections_read(q, &rows, &n, r) != 0)
        return -1;
    bool taken = false;
    for (size_t i = 0; i < n && !taken; i++)
        taken = strcmp(rows[i].key, name) == 0;
    hs_connection_rows_free(rows, n);
    if (taken) {
        hs_resp_error(r, 404, "not_found", "no connection named %.64s", name);
        return -1;
    }
    return 0;
}

static void set_flow_cookie(const struct hs_server *s, struct hs_resp *r, const char *value)
{
    /* Lax: sent on the top-level redirect back from Hover, never on a cross-site subrequest or
     * a cross-site POST (so the confirmation cannot be forged from another site). */
    char *c = hs_aprintf("%s=%s; Path=/; HttpOnly; Max-Age=%d; SameSite=Lax%s", FLOW_COOKIE, value,
                         OAUTH_STATE_MS / 1000, s->cookie_secure ? "; Secure" : "");
    hs_resp_header(r, "Set-Cookie", c);
    free(c);
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
    if (hs_connect_allowed(q, name, r) != 0)
        return;
    char state[33], cookie[65];
    const char *have = hs_req_cookie(q, FLOW_COOKIE);
    if (hs_is_hex(have, 64))
        (void)hs_strlcpy(cookie, have, sizeof cookie);
    if ((!hs_is_hex(have, 64) && hs_random_hex(32, cookie) != HS_OK) ||
        hs_random_hex(16, state) != HS_OK) {
        hs_resp_error(r, 500, "internal", "no randomness for the OAuth state");
        return;
    }
    struct hs_connect_flow fl = {0};
    hs_sha256_hex(state, fl.id_sha256);
    hs_sha256_hex(cookie, fl.browser_sha256);
    client_address(q, fl.address, sizeof fl.address);
    fl.connection = name && *name ? (char *)name : NULL;
    fl.session = q->auth == HS_AUTH_SESSION ? q->session.token_sha256 : NULL;
    fl.expires_ms = wall_ms(s) + OAUTH_STATE_MS;
    struct hs_error err = {0};
    int rc = s->store->service->flow_put(s->store, &fl, &flow_limits, wall_ms(s), &err);
    if (rc == HS_ERR_RATE_LIMITED || rc == HS_ERR_BUSY) {
        bool per_address = rc == HS_ERR_RATE_LIMITED;
        hs_warn("connect msg=\"flow refused\" reason=%s address=%s",
                per_address ? "too_many_from_address" : "all_slots_live", fl.address);
        hs_resp_error(r, per_address ? 429 : 503, per_address ? "rate_limited" : "internal",
                      "too many connect flows are pending%s; try again in a few minutes",
                      per_address ? " from this address" : "");
        hs_resp_header(r, "Retry-After", "60");
        return;
    }
    if (rc) {
        hs_resp_fail(r, rc, &err, "storing the connect flow");
        return;
    }
    char *ru = redirect_uri(s);
    char *url = hs_oauth_authorize_url(s->hover_url, s->client_id, ru, state);
    hs_resp_html_message(r, 302, "Connecting to Hover", "Redirecting to Hover...");
    hs_resp_header(r, "Location", url);
    set_flow_cookie(s, r, cookie);
    hs_info("connect msg=\"started\" connection=%s by=%s", name && *name ? name : "(org id)",
            q->auth == HS_AUTH_SESSION ? "session" : "api_key");
    OPENSSL_cleanse(cookie, sizeof cookie);
    free(url);
    free(ru);
}

/* The flow of `token` (a state, or a confirmation token when confirm) begun in this browser,
 * taken from the store (single use, whichever instance began it): true and *out filled. The
 * store is searched by the token's SHA-256, so its look-up reveals nothing of stored tokens. */
static bool take_flow(struct hs_server *s, const struct hs_req *q, const char *token, bool confirm,
                      struct hs_connect_flow *out)
{
    char browser[65], id[65];
    memset(out, 0, sizeof *out);
    if (!token || !hs_is_hex(token, confirm ? 64 : 32) || !flow_browser(q, browser))
        return false;
    hs_sha256_hex(token, id);
    struct hs_error err = {0};
    int rc = s->store->service->flow_take(s->store, id, browser, confirm, wall_ms(s), out, &err);
    if (rc && rc != HS_ERR_NOT_FOUND)
        hs_warn("connect msg=\"cannot read the connect flow\" detail=\"%s\"", err.msg);
    return rc == HS_OK;
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

/* The page that asks before a connection is re-pointed to another org. */
static char *confirm_page(const char *key, int64_t old_owner, int64_t new_owner,
                          const char *confirm)
{
    char *k = hs_html_escape(key);
    char old[40] = "an unknown org";
    if (old_owner > 0)
        (void)snprintf(old, sizeof old, "Hover org %lld", (long long)old_owner);
    char *html = hs_aprintf(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>Connect another Hover org?</title></head><body>"
        "<h1>Connect another Hover org?</h1>"
        "<p>The connection <code>%s</code> is linked to %s. You signed in to Hover org %lld.</p>"
        "<p>Linking it to Hover org %lld shows that org's jobs to everyone who uses "
        "<code>%s</code>.</p>"
        "<form method=\"post\" action=\"/connect/confirm?confirm=%s&amp;decision=repoint\">"
        "<button type=\"submit\" id=\"repoint\">Link %s to Hover org %lld</button></form>"
        "<form method=\"post\" action=\"/connect/confirm?confirm=%s&amp;decision=cancel\">"
        "<button type=\"submit\" id=\"cancel\">Cancel: keep it as it is</button></form>"
        "</body></html>",
        k, old, (long long)new_owner, (long long)new_owner, k, confirm, k, (long long)new_owner,
        confirm);
    free(k);
    return html;
}

/* Adds `key` to the connections of the session that started the flow: it connected that org,
 * so it may use it. A failure only means the session does not see the new connection. */
static void session_gains(struct hs_server *s, const char *session, const char *key)
{
    struct hs_session ss = {0};
    struct hs_error err = {0};
    if (!session || s->store->service->session_get(s->store, session, hs_server_wall_s(s), &ss,
                                                   &err) != HS_OK) {
        hs_session_clear(&ss);
        return;
    }
    bool has = false;
    for (size_t i = 0; i < ss.n_connections && !has; i++)
        has = strcmp(ss.connections[i], key) == 0;
    if (!has) {
        ss.connections =
            hs_realloc(ss.connections, (ss.n_connections + 1) * sizeof *ss.connections);
        ss.connections[ss.n_connections++] = hs_strdup(key);
        if (s->store->service->session_put(s->store, &ss, &err) != HS_OK)
            hs_warn("connect msg=\"cannot add the connection to the session\" detail=\"%s\"",
                    err.msg);
    }
    hs_session_clear(&ss);
}

/* Stores the grant under key and answers the "connected" page. */
static void connect_finish(struct hs_server *s, struct hs_resp *r, const char *key,
                           const struct hs_token *tok, const char *session)
{
    struct hs_error err = {0};
    if (s->store->tokens->token_save(s->store, key, tok, &err) != HS_OK) {
        hs_warn("connect msg=\"cannot store the tokens\" detail=\"%s\"", err.msg);
        hs_resp_html_message(r, 500, "Not connected", "The tokens could not be stored.");
        return;
    }
    hs_connection_note(s, key, HS_OK);
    hs_search_connection_ok(s->search, key);
    if (s->register_webhooks)
        (void)hs_server_register_webhooks(s, key, NULL); /* logged; the page says connected */
    char fp[9];
    hs_token_fingerprint(tok->access_token, fp);
    hs_info("connect msg=\"connected\" connection=%s owner_id=%lld token=%s", key,
            (long long)tok->owner_id, fp);
    session_gains(s, session, key);
    /* The browser that connected the org gets a session of that connection, for the service's
     * own pages (a top-level page: its cookie is first-party). */
    char token[65];
    char *user = hs_aprintf("connect:%s", key);
    int rc = hs_session_create(s, user, &key, 1, token, NULL, &err);
    free(user);
    char *html = connected_page(s, key, tok->owner_id);
    hs_resp_html(r, 200, html);
    if (rc == HS_OK)
        hs_session_set_cookie(s, r, token);
    else
        hs_warn("connect msg=\"no session for the browser\" detail=\"%s\"", err.msg);
    OPENSSL_cleanse(token, sizeof token);
}

/* The org key is bound to now (0: unknown), and whether it exists. */
static int connection_owner(struct hs_server *s, const char *key, int64_t *owner, bool *exists,
                            struct hs_error *err)
{
    struct hs_connection_row *rows = NULL;
    size_t n = 0;
    *owner = 0;
    *exists = false;
    int rc = s->store->service->connections_list(s->store, &rows, &n, err);
    for (size_t i = 0; !rc && i < n && !*exists; i++) {
        if (strcmp(rows[i].key, key) == 0) {
            *exists = true;
            *owner = rows[i].owner_id;
        }
    }
    hs_connection_rows_free(rows, n);
    return rc;
}

/* Parks a grant that would re-point `key` until the user confirms; answers the question. */
static void ask_confirmation(struct hs_server *s, struct hs_resp *r,
                             const struct hs_connect_flow *flow, const char *key,
                             const struct hs_token *tok, int64_t old_owner)
{
    char confirm[65];
    if (hs_random_hex(32, confirm) != HS_OK) {
        hs_resp_html_message(r, 500, "Not connected", "No randomness for the confirmation.");
        return;
    }
    struct hs_connect_flow st = {0};
    hs_sha256_hex(confirm, st.id_sha256);
    memcpy(st.browser_sha256, flow->browser_sha256, sizeof st.browser_sha256);
    memcpy(st.address, flow->address, sizeof st.address);
    st.session = flow->session;
    st.confirm = true;
    st.key = (char *)key;
    st.grant = *tok;
    st.old_owner = old_owner;
    st.expires_ms = wall_ms(s) + OAUTH_STATE_MS;
    struct hs_error err = {0};
    /* The browser's authorize flow was just taken: its confirmation takes that place. */
    if (s->store->service->flow_put(s->store, &st, &flow_limits, wall_ms(s), &err) != HS_OK) {
        hs_warn("connect msg=\"cannot keep the re-point for confirmation\" detail=\"%s\"", err.msg);
        hs_resp_html_message(r, 503, "Not connected",
                             "Too many connect flows are pending. Try again in a few minutes.");
        OPENSSL_cleanse(confirm, sizeof confirm);
        return;
    }
    hs_info("connect msg=\"re-point needs confirmation\" connection=%s old_owner_id=%lld "
            "owner_id=%lld",
            key, (long long)old_owner, (long long)tok->owner_id);
    hs_resp_html(r, 200, confirm_page(key, old_owner, tok->owner_id, confirm));
    OPENSSL_cleanse(confirm, sizeof confirm);
}

/* Exchanges the callback's code for the grant; 0, or -1 with the page in r. */
static int exchange_code(struct hs_server *s, const char *code, struct hs_token *tok,
                         struct hs_resp *r)
{
    char *ru = redirect_uri(s);
    struct hs_transport *t = hs_transport_curl_new();
    if (!t) {
        free(ru);
        hs_resp_html_message(r, 500, "Not connected", "The HTTP client could not start.");
        return -1;
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
    int rc = hs_oauth_token_request(&app, "authorization_code", code, ru, tok, &err);
    atomic_fetch_add(&s->oauth_requests, app.requests);
    hs_transport_free(t);
    free(ru);
    if (rc) {
        hs_warn("connect msg=\"code exchange failed\" code=%s detail=\"%s\"", hs_err_name(rc),
                err.msg);
        hs_resp_html_message(r, 400, "Not connected", err.msg[0] ? err.msg : hs_err_name(rc));
        return -1;
    }
    return 0;
}

/* GET /oauth/callback?code=&state= (or ?error=&state=) */
void hs_route_oauth_callback(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    struct hs_connect_flow flow;
    struct hs_token tok = {0};
    char *key = NULL;
    if (!take_flow(s, q, hs_req_arg(q, "state"), false, &flow)) {
        hs_resp_html_message(r, 400, "Not connected",
                             "This sign-in answer does not belong to a connect flow started in "
                             "this browser, or it expired. Start again from the modal.");
        return;
    }
    const char *error = hs_req_arg(q, "error");
    const char *code = hs_req_arg(q, "code");
    if (error || !code || !*code) {
        char msg[200];
        (void)snprintf(msg, sizeof msg, "Hover did not grant access (%.64s).",
                       error ? error : "no code in the answer");
        hs_resp_html_message(r, 400, "Not connected", msg);
        goto out;
    }
    if (exchange_code(s, code, &tok, r) != 0)
        goto out;
    key = flow.connection    ? hs_strdup(flow.connection)
          : tok.owner_id > 0 ? hs_aprintf("org-%lld", (long long)tok.owner_id)
                             : hs_strdup("default");
    int64_t old_owner = 0;
    bool exists = false;
    struct hs_error err = {0};
    if (connection_owner(s, key, &old_owner, &exists, &err) != HS_OK) {
        hs_resp_html_message(r, 500, "Not connected", "The connections could not be read.");
        goto out;
    }
    /* Re-pointing: the grant is for another org than the one stored (a pair seeded without
     * its org, owner unknown, learns it here). */
    bool repoint = exists && old_owner > 0 && tok.owner_id > 0 && old_owner != tok.owner_id;
    if (repoint && flow.session) {
        ask_confirmation(s, r, &flow, key, &tok, old_owner);
        goto out;
    }
    if (repoint)
        hs_warn("connect msg=\"connection re-pointed to another org\" connection=%s "
                "old_owner_id=%lld owner_id=%lld by=api_key",
                key, (long long)old_owner, (long long)tok.owner_id);
    connect_finish(s, r, key, &tok, flow.session);
out:
    if (tok.access_token)
        OPENSSL_cleanse(tok.access_token, strlen(tok.access_token));
    if (tok.refresh_token)
        OPENSSL_cleanse(tok.refresh_token, strlen(tok.refresh_token));
    hs_token_clear(&tok);
    hs_connect_flow_clear(&flow);
    free(key);
}

/* POST /connect/confirm?confirm=T&decision=repoint|cancel: the answer to the confirmation page,
 * from this browser (its flow cookie: SameSite=Lax, so not from a form of another site) and
 * from a page of the service. */
void hs_route_connect_confirm(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    const char *confirm = hs_req_arg(q, "confirm");
    const char *decision = hs_req_arg(q, "decision");
    if (q->origin && !hs_origin_own(s, q->origin)) {
        hs_resp_html_message(r, 403, "Not connected",
                             "The confirmation must come from this service's own page.");
        return;
    }
    struct hs_connect_flow flow;
    if (!take_flow(s, q, confirm, true, &flow)) {
        hs_resp_html_message(r, 400, "Not connected",
                             "This confirmation does not belong to a connect flow of this "
                             "browser, or it expired. Start again from the modal.");
        return;
    }
    if (!decision || strcmp(decision, "repoint") != 0) {
        hs_info("connect msg=\"re-point cancelled\" connection=%s", flow.key);
        hs_resp_html_message(r, 200, "Not connected",
                             "Nothing was changed. You can close this window.");
    } else {
        hs_warn("connect msg=\"connection re-pointed to another org\" connection=%s "
                "old_owner_id=%lld owner_id=%lld by=session_confirmed",
                flow.key, (long long)flow.old_owner, (long long)flow.grant.owner_id);
        connect_finish(s, r, flow.key, &flow.grant, flow.session);
    }
    hs_connect_flow_clear(&flow);
}
