/* server.c: libmicrohttpd plumbing for the sandbox; see server.h.
 *
 * Request life cycle (one struct sb_ctx per request, created by the URI log callback so that the
 * raw query string is kept for the request log):
 *  1. first access-handler call: accept only (queuing a response on the first call makes
 *     libmicrohttpd drop keep-alive);
 *  2. body chunks: collected up to SB_BODY_MAX;
 *  3. last call: admin routes answer at once; other requests are authenticated, rate limited and
 *     given their fault decision; an injected latency suspends the connection (a waker thread
 *     resumes it), so a slow route never blocks the daemon's threads;
 *  4. the route runs, the fault (if any) is applied to its response, the request is logged. */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "http.h"
#include "routes.h"

#define API_THREADS          4
#define STORAGE_THREADS      2
#define S3_THREADS           4
#define CONNECTION_LIMIT     512
#define CONNECTION_TIMEOUT_S 60

enum phase { PH_NEW, PH_BODY, PH_DELAYED, PH_DONE };

struct listener {
    struct sb_server *srv;
    enum sb_listener kind;
};

struct delay {
    struct MHD_Connection *conn;
    int64_t due_ms; /* monotonic */
    struct delay *next;
};

struct sb_daemons {
    struct listener api_l, storage_l, s3_l;
    struct MHD_Daemon *api, *storage, *s3;
    /* delayed (suspended) connections and the thread that resumes them */
    pthread_mutex_t dlock;
    pthread_cond_t dcond;
    struct delay *delays;
    bool stopping, waker_started;
    pthread_t waker;
};

struct sb_ctx {
    struct listener *l;
    enum phase phase;
    char *raw_path, *raw_query;
    struct hs_buf body;
    bool too_big;
    struct sb_req req;
    struct sb_fault_decision fd;
    char client_id[128]; /* for the request log; "" when unknown */
};

static int64_t mono_ms(void)
{
    const struct hs_clock *c = hs_clock_system();
    return c->mono_ms(c);
}

bool sb_server_strict(struct sb_server *s)
{
    pthread_mutex_lock(&s->cfg_lock);
    bool v = s->strict;
    pthread_mutex_unlock(&s->cfg_lock);
    return v;
}

void sb_server_set_strict(struct sb_server *s, bool strict)
{
    pthread_mutex_lock(&s->cfg_lock);
    s->strict = strict;
    pthread_mutex_unlock(&s->cfg_lock);
}

/* ---- delayed requests ---- */

static void *waker_main(void *arg)
{
    struct sb_daemons *d = arg;
    pthread_mutex_lock(&d->dlock);
    while (!d->stopping) {
        if (!d->delays) {
            pthread_cond_wait(&d->dcond, &d->dlock);
            continue;
        }
        int64_t now = mono_ms(), next_due = INT64_MAX;
        struct delay **pp = &d->delays;
        while (*pp) {
            struct delay *x = *pp;
            if (x->due_ms <= now) {
                *pp = x->next;
                MHD_resume_connection(x->conn);
                free(x);
            } else {
                if (x->due_ms < next_due)
                    next_due = x->due_ms;
                pp = &x->next;
            }
        }
        if (next_due != INT64_MAX) {
            struct timespec ts = {.tv_sec = (time_t)(next_due / 1000),
                                  .tv_nsec = (long)(next_due % 1000) * 1000000L};
            (void)pthread_cond_timedwait(&d->dcond, &d->dlock, &ts);
        }
    }
    /* Shutting down: every suspended connection must be resumed before MHD_stop_daemon. */
    while (d->delays) {
        struct delay *x = d->delays;
        d->delays = x->next;
        MHD_resume_connection(x->conn);
        free(x);
    }
    pthread_mutex_unlock(&d->dlock);
    return NULL;
}

/* Suspends conn for ms; false when the server is stopping (the caller goes on at once). */
static bool delay_conn(struct sb_daemons *d, struct MHD_Connection *conn, int64_t ms)
{
    pthread_mutex_lock(&d->dlock);
    if (d->stopping) {
        pthread_mutex_unlock(&d->dlock);
        return false;
    }
    MHD_suspend_connection(conn);
    struct delay *x = hs_calloc(1, sizeof *x);
    x->conn = conn;
    x->due_ms = mono_ms() + ms;
    x->next = d->delays;
    d->delays = x;
    pthread_cond_signal(&d->dcond);
    pthread_mutex_unlock(&d->dlock);
    return true;
}

/* ---- per-request context ---- */

/* The S3 listener takes objects; the others small JSON and form bodies. */
static size_t body_max(const struct listener *l)
{
    return l->kind == SB_LISTENER_S3 ? sb_s3_body_max(l->srv) : SB_BODY_MAX;
}

static struct sb_ctx *ctx_new(struct listener *l, const char *uri)
{
    struct sb_ctx *c = hs_calloc(1, sizeof *c);
    c->l = l;
    const char *q = uri ? strchr(uri, '?') : NULL;
    c->raw_query = hs_strdup(q ? q + 1 : "");
    c->raw_path = uri ? hs_strndup(uri, q ? (size_t)(q - uri) : strlen(uri)) : NULL;
    hs_buf_init(&c->body, body_max(l));
    return c;
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)conn;
    return ctx_new(cls, uri);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    struct sb_ctx *c = *con_cls;
    if (!c)
        return;
    json_decref(c->req.params);
    json_decref(c->req.log_extra);
    hs_buf_free(&c->body);
    free(c->raw_path);
    free(c->raw_query);
    free(c);
    *con_cls = NULL;
}

/* ---- responses ---- */

struct trunc {
    char *body;
    size_t cut;
};

static ssize_t trunc_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct trunc *t = cls;
    if (pos >= t->cut)
        return MHD_CONTENT_READER_END_WITH_ERROR; /* closes the connection mid-body */
    size_t n = t->cut - (size_t)pos;
    if (n > max)
        n = max;
    memcpy(buf, t->body + pos, n);
    return (ssize_t)n;
}

/* HEAD answers announce a length and send nothing; libmicrohttpd never asks for the bytes. */
static ssize_t no_body_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls;
    (void)pos;
    (void)buf;
    (void)max;
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

static void trunc_free(void *cls)
{
    struct trunc *t = cls;
    free(t->body);
    free(t);
}

/* Queues r (taking its body) with the fault's damage applied; *sent is the body bytes sent. */
static enum MHD_Result send_resp(struct MHD_Connection *conn, struct sb_resp *r,
                                 enum sb_fault_kind kind, size_t *sent)
{
    struct MHD_Response *mr;
    char *body = r->body;
    size_t len = r->len;
    r->body = NULL;
    r->len = 0;
    if (kind == SB_FAULT_TRUNCATE) {
        /* Announce the whole length, send half, then close. An empty body still announces some. */
        struct trunc *t = hs_calloc(1, sizeof *t);
        t->body = body ? body : hs_strdup("");
        t->cut = len / 2;
        size_t announced = len >= 2 ? len : len + 16;
        mr = MHD_create_response_from_callback(announced, 16 * 1024, trunc_reader, t, trunc_free);
        *sent = t->cut;
    } else if (kind == SB_FAULT_MALFORMED) {
        /* A body cut in the middle, with a Content-Length that matches what is sent. */
        if (len < 2) {
            free(body);
            body = hs_strdup("{\"results\":[{\"id\":");
            len = strlen(body) * 2;
        }
        mr = MHD_create_response_from_buffer(len / 2, body, MHD_RESPMEM_MUST_FREE);
        *sent = len / 2;
    } else if (!body && r->head_len > 0) {
        /* HEAD: the length of the body a GET would send, and no body. */
        mr = MHD_create_response_from_callback(r->head_len, 16 * 1024, no_body_reader, NULL, NULL);
        *sent = 0;
    } else if (r->status == 304) {
        /* No body. libmicrohttpd 0.9.75 adds "Content-Length: 0" here (RFC 9110 wants the 200's
         * length or none); every other way to avoid it makes it send two lengths or chunking. */
        free(body);
        mr = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        *sent = 0;
    } else if (body) {
        mr = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
        *sent = len;
    } else {
        mr = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        *sent = 0;
    }
    if (!mr)
        return MHD_NO;
    if (r->ctype && r->status != 304 &&
        (*sent > 0 || kind == SB_FAULT_TRUNCATE || r->status >= 400))
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, r->ctype);
    for (int i = 0; i < r->n_headers; i++)
        MHD_add_response_header(mr, r->hname[i], r->hvalue[i]);
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)r->status, mr);
    MHD_destroy_response(mr);
    return ok;
}

static void log_request(struct sb_ctx *c, int status, size_t bytes)
{
    struct sb_server *s = c->l->srv;
    const struct sb_req *q = &c->req;
    const char *fault = c->fd.kind != SB_FAULT_NONE ? sb_fault_kind_name(c->fd.kind)
                        : c->fd.latency_ms > 0      ? "latency"
                                                    : "none";
    static const char *const names[] = {"api", "storage", "s3"};
    /* A presigned S3 URL may carry a session token: never written to the log. */
    char *query = c->l->kind == SB_LISTENER_S3 ? sb_s3_redact_query(c->raw_query) : NULL;
    struct sb_reqlog_entry e = {
        .listener = names[c->l->kind],
        .method = q->method,
        .path = q->path,
        .query = query ? query : c->raw_query,
        .status = status,
        .auth = q->has_auth,
        .client_id = c->client_id[0] ? c->client_id : NULL,
        .bytes = bytes,
        .fault = fault,
        .if_none_match = sb_header(q, MHD_HTTP_HEADER_IF_NONE_MATCH) != NULL,
        .extra = q->log_extra,
    };
    int64_t seq = sb_reqlog_add(s->log, &e, sb_now_ms());
    free(query);
    hs_debug("request seq=%lld listener=%s method=%s path=%s status=%d fault=%s", (long long)seq,
             e.listener, e.method, e.path, status, fault);
}

/* ---- request handling ---- */

static void fill_req(struct sb_ctx *c, struct MHD_Connection *conn, const char *url,
                     const char *method)
{
    struct sb_req *q = &c->req;
    q->srv = c->l->srv;
    q->conn = conn;
    q->listener = c->l->kind;
    q->method = method;
    q->path = url;
    q->raw_path = c->raw_path ? c->raw_path : url;
    q->query = c->raw_query;
    q->body = hs_buf_str(&c->body);
    q->body_len = c->body.len;
}

static bool is_admin_path(const char *path)
{
    return strcmp(path, "/healthz") == 0 || strcmp(path, "/__sandbox") == 0 ||
           hs_starts_with(path, "/__sandbox/");
}

/* Finds who the request is from: the token's client, or the client named by an OAuth request. */
static void identify(struct sb_ctx *c)
{
    struct sb_req *q = &c->req;
    struct sb_server *s = c->l->srv;
    const char *auth = sb_header(q, MHD_HTTP_HEADER_AUTHORIZATION);
    q->has_auth = auth != NULL;
    q->tok_state = SB_TOKEN_UNKNOWN;
    if (c->l->kind == SB_LISTENER_S3)
        sb_s3_access_key(q, c->client_id, sizeof c->client_id);
    if (c->l->kind != SB_LISTENER_API)
        return;
    if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
        const char *t = auth + 7;
        while (*t == ' ')
            t++;
        q->has_bearer = true;
        q->tok_state = sb_oauth_check(s->oauth, t, sb_now_ms(), &q->tok);
        if (q->tok_state != SB_TOKEN_UNKNOWN)
            (void)hs_strlcpy(c->client_id, q->tok.client_id, sizeof c->client_id);
    }
    if (!c->client_id[0] && hs_starts_with(q->path, "/oauth/")) {
        const char *id = sb_arg(q, "client_id");
        if (!id && strcmp(q->method, "POST") == 0)
            id = sb_param_str(q, "client_id");
        if (!id)
            id = sb_basic_auth_user(q);
        if (id)
            (void)hs_strlcpy(c->client_id, id, sizeof c->client_id);
    }
}

static enum MHD_Result finish(struct sb_ctx *c)
{
    struct sb_req *q = &c->req;
    c->phase = PH_DONE;
    if (c->fd.kind == SB_FAULT_DROP) {
        log_request(c, 0, 0);
        return MHD_NO; /* libmicrohttpd closes the connection without a response */
    }
    struct sb_resp r;
    sb_resp_init(&r);
    if (c->fd.kind == SB_FAULT_STATUS) {
        char msg[96];
        (void)snprintf(msg, sizeof msg, "Sandbox fault: injected HTTP %d", c->fd.status);
        if (c->l->kind == SB_LISTENER_S3)
            sb_s3_error(q, &r, c->fd.status,
                        c->fd.status == 503   ? "SlowDown"
                        : c->fd.status == 500 ? "InternalError"
                                              : "SandboxFault",
                        msg);
        else
            sb_resp_error(&r, c->fd.status, msg);
        if (c->fd.status == 429 || c->fd.status == 503)
            sb_resp_header(&r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    } else if (c->l->kind == SB_LISTENER_API) {
        sb_route_api(q, &r);
    } else if (c->l->kind == SB_LISTENER_S3) {
        sb_route_s3(q, &r);
    } else {
        sb_route_storage(q, &r);
    }
    size_t sent = 0;
    int status = r.status;
    enum MHD_Result ok = send_resp(q->conn, &r, c->fd.kind, &sent);
    log_request(c, status, sent);
    sb_resp_clear(&r);
    return ok;
}

static enum MHD_Result begin(struct sb_ctx *c)
{
    struct sb_req *q = &c->req;
    struct sb_server *s = c->l->srv;
    struct sb_resp r;
    size_t sent = 0;
    if (c->l->kind == SB_LISTENER_API && is_admin_path(q->path)) {
        /* Admin routes: no OAuth, no rate limit, no faults, not logged. */
        c->phase = PH_DONE;
        sb_resp_init(&r);
        if (c->too_big)
            sb_resp_error(&r, 413, "Request body too large");
        else
            sb_route_admin(q, &r);
        enum MHD_Result ok = send_resp(q->conn, &r, SB_FAULT_NONE, &sent);
        sb_resp_clear(&r);
        return ok;
    }
    identify(c);
    const char *op = c->l->kind == SB_LISTENER_S3 ? sb_s3_prepare(q) : NULL;
    if (c->l->kind == SB_LISTENER_API) {
        char key[192];
        if (q->tok_state == SB_TOKEN_OK ||
            (c->client_id[0] && !q->has_bearer && sb_oauth_client_known(s->oauth, c->client_id))) {
            (void)snprintf(key, sizeof key, "client:%s", c->client_id);
        } else {
            char ip[INET6_ADDRSTRLEN] = "?";
            const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(q->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
            if (ci && ci->client_addr) {
                const struct sockaddr *sa = ci->client_addr;
                if (sa->sa_family == AF_INET)
                    inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
                              ip, sizeof ip);
                else if (sa->sa_family == AF_INET6)
                    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
                              ip, sizeof ip);
            }
            (void)snprintf(key, sizeof key, "ip:%s", ip);
        }
        int64_t retry = 0;
        if (!sb_ratelimit_hit(s->rl, key, mono_ms(), &retry)) {
            c->phase = PH_DONE;
            sb_resp_init(&r);
            sb_resp_error(&r, 429, "Rate limit exceeded");
            char ra[32];
            (void)snprintf(ra, sizeof ra, "%lld", (long long)retry);
            sb_resp_header(&r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
            enum MHD_Result ok = send_resp(q->conn, &r, SB_FAULT_NONE, &sent);
            log_request(c, 429, sent);
            sb_resp_clear(&r);
            return ok;
        }
    }
    if (c->too_big) {
        c->phase = PH_DONE;
        sb_resp_init(&r);
        if (c->l->kind == SB_LISTENER_S3)
            sb_s3_error(q, &r, 400, "EntityTooLarge",
                        "Your proposed upload exceeds the maximum allowed size");
        else
            sb_resp_error(&r, 413, "Request body too large");
        enum MHD_Result ok = send_resp(q->conn, &r, SB_FAULT_NONE, &sent);
        log_request(c, 413, sent);
        sb_resp_clear(&r);
        return ok;
    }
    sb_faults_decide(s->faults, q->method, q->path, op, &c->fd);
    if (c->fd.latency_ms > 0) {
        c->phase = PH_DELAYED;
        if (delay_conn(s->d, q->conn, c->fd.latency_ms))
            return MHD_YES;
    }
    return finish(c);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct sb_ctx *c = *con_cls;
    if (!c) {
        c = ctx_new(cls, NULL);
        *con_cls = c;
    }
    fill_req(c, conn, url, method);
    switch (c->phase) {
    case PH_NEW: {
        c->phase = PH_BODY;
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        int64_t n;
        if (cl && hs_parse_i64(cl, &n) == 0 && (uint64_t)n > (uint64_t)body_max(c->l))
            c->too_big = true;
        return MHD_YES; /* accept; answer on a later call (keep-alive) */
    }
    case PH_BODY:
        if (*upload_data_size) {
            if (!c->too_big && hs_buf_append(&c->body, upload_data, *upload_data_size) != 0)
                c->too_big = true;
            *upload_data_size = 0;
            return MHD_YES;
        }
        fill_req(c, conn, url, method);
        return begin(c);
    case PH_DELAYED:
        return finish(c);
    case PH_DONE:
    default:
        *upload_data_size = 0;
        return MHD_YES;
    }
}

/* ---- listeners ---- */

/* Splits "HOST:PORT", "[V6]:PORT", ":PORT" or "PORT". */
static int split_hostport(const char *spec, char *host, size_t hn, char *port, size_t pn)
{
    const char *colon;
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (!close || (close[1] != ':' && close[1] != '\0'))
            return -1;
        if ((size_t)(close - spec - 1) >= hn)
            return -1;
        memcpy(host, spec + 1, (size_t)(close - spec - 1));
        host[close - spec - 1] = '\0';
        return hs_strlcpy(port, close[1] ? close + 2 : "0", pn) == 0 ? 0 : -1;
    }
    colon = strrchr(spec, ':');
    if (!colon) {
        if (hs_strlcpy(host, "127.0.0.1", hn) != 0)
            return -1;
        return hs_strlcpy(port, spec, pn) == 0 ? 0 : -1;
    }
    if ((size_t)(colon - spec) >= hn)
        return -1;
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    if (!host[0] && hs_strlcpy(host, "127.0.0.1", hn) != 0)
        return -1;
    return hs_strlcpy(port, colon + 1, pn) == 0 ? 0 : -1;
}

bool sb_listen_spec_ok(const char *spec)
{
    char host[256], port[16];
    int64_t pnum;
    return split_hostport(spec, host, sizeof host, port, sizeof port) == 0 &&
           hs_parse_i64_range(port, 0, 65535, &pnum) == 0;
}

/* Binds a listening socket; fills the port actually bound and the base URL. */
static int bind_listener(const char *spec, int *fd_out, int *port_out, bool *v6, char *base,
                         size_t basen, char *err, size_t errn)
{
    char host[256], port[16];
    int64_t pnum;
    if (split_hostport(spec, host, sizeof host, port, sizeof port) != 0 ||
        hs_parse_i64_range(port, 0, 65535, &pnum) != 0) {
        (void)snprintf(err, errn, "bad listen address '%s' (want HOST:PORT)", spec);
        return -1;
    }
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) {
        (void)snprintf(err, errn, "cannot resolve '%s': %s", host, gai_strerror(gai));
        return -1;
    }
    int fd = -1, e = 0;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int one = 1;
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 128) == 0) {
            *v6 = a->ai_family == AF_INET6;
            break;
        }
        e = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        char eb[128] = "";
        (void)snprintf(err, errn, "cannot listen on %s: %s", spec, sb_errstr(e, eb, sizeof eb));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int bound = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)(void *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)(void *)&ss)->sin_port);
    /* URLs handed to clients name a host they can reach. */
    const char *h = host;
    if (!strcmp(host, "0.0.0.0") || !strcmp(host, "*"))
        h = "127.0.0.1";
    else if (!strcmp(host, "::"))
        h = "::1";
    int n = strchr(h, ':') ? snprintf(base, basen, "http://[%s]:%d", h, bound)
                           : snprintf(base, basen, "http://%s:%d", h, bound);
    if (n < 0 || (size_t)n >= basen) {
        close(fd);
        (void)snprintf(err, errn, "listen host name too long");
        return -1;
    }
    *fd_out = fd;
    *port_out = bound;
    return 0;
}

static struct MHD_Daemon *start_daemon(struct listener *l, int fd, bool v6, unsigned threads)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
    if (v6)
        flags |= MHD_USE_IPv6;
    if (hs_log_level <= HS_LOG_DEBUG)
        flags |= MHD_USE_ERROR_LOG;
    return MHD_start_daemon(flags, 0, NULL, NULL, on_request, l, MHD_OPTION_LISTEN_SOCKET, fd,
                            MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)CONNECTION_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                            (size_t)(64 * 1024), MHD_OPTION_URI_LOG_CALLBACK, on_uri, l,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
}

static int64_t find_default_org(struct sb_world *w)
{
    if (sb_world_org(w, SB_MAIN_ORG_ID))
        return SB_MAIN_ORG_ID;
    return w->n_orgs ? w->orgs[0].id : SB_MAIN_ORG_ID;
}

/* The S3 listener's store, with the buckets the command line names. */
static struct sb_s3store *s3_store_new(const struct sb_config *cfg, char *err, size_t errn)
{
    char why[200];
    struct sb_s3store *st = sb_s3store_new(&cfg->s3.store, why, sizeof why);
    if (!st) {
        (void)snprintf(err, errn, "S3 store: %s", why);
        return NULL;
    }
    int64_t now = sb_now_ms() / 1000;
    for (size_t i = 0; i < cfg->s3.n_buckets; i++) {
        int rc = sb_s3store_create_bucket(st, cfg->s3.buckets[i], now);
        if (rc != SB_S3_OK && rc != SB_S3_BUCKET_EXISTS) {
            (void)snprintf(err, errn, "cannot create the bucket %s", cfg->s3.buckets[i]);
            sb_s3store_free(st);
            return NULL;
        }
    }
    return st;
}

struct sb_server *sb_server_new(const struct sb_config *cfg, char *err, size_t errn)
{
    struct sb_server *s = hs_calloc(1, sizeof *s);
    s->cfg = *cfg;
    pthread_mutex_init(&s->cfg_lock, NULL);
    s->strict = cfg->strict;
    s->log = sb_reqlog_new(cfg->request_log, SB_REQLOG_RING);
    if (!s->log) {
        char eb[128] = "";
        int e = errno;
        (void)snprintf(err, errn, "cannot open request log %s: %s", cfg->request_log,
                       sb_errstr(e, eb, sizeof eb));
        pthread_mutex_destroy(&s->cfg_lock);
        free(s);
        return NULL;
    }
    s->world = sb_world_generate(cfg->seed, cfg->jobs);
    if (!s->world) {
        (void)snprintf(err, errn, "cannot generate the world");
        sb_reqlog_free(s->log);
        pthread_mutex_destroy(&s->cfg_lock);
        free(s);
        return NULL;
    }
    s->default_org_id = find_default_org(s->world);
    s->index = sb_index_new();
    s->oauth = sb_oauth_new(cfg->client_id, cfg->client_secret, cfg->token_lifetime_s);
    s->rl = sb_ratelimit_new(cfg->rate_limit, cfg->rate_window_ms);
    s->faults = sb_faults_new(cfg->seed);
    s->hooks = sb_webhooks_new(s->log, cfg->seed, &cfg->webhooks);
    if (!s->hooks) {
        (void)snprintf(err, errn, "cannot initialise libcurl");
        sb_faults_free(s->faults);
        sb_ratelimit_free(s->rl);
        sb_oauth_free(s->oauth);
        sb_index_free(s->index);
        sb_world_free(s->world);
        sb_reqlog_free(s->log);
        pthread_mutex_destroy(&s->cfg_lock);
        free(s);
        return NULL;
    }
    s->testjobs = sb_testjobs_new(s, cfg->reconstruction_ms);
    if (cfg->s3.listen && !(s->s3 = s3_store_new(cfg, err, errn))) {
        sb_server_free(s);
        return NULL;
    }
    sb_random_bytes(s->presign_key, sizeof s->presign_key);
    s->d = hs_calloc(1, sizeof *s->d);
    pthread_mutex_init(&s->d->dlock, NULL);
    hs_cond_init_monotonic(&s->d->dcond);
    /* Build the list index now rather than in the first request. */
    pthread_mutex_lock(&s->world->lock);
    size_t none, n_out;
    struct sb_job_query q = {.org_id = s->default_org_id, .page = 1, .per = 1};
    (void)sb_index_query(s->index, s->world, &q, &none, &n_out);
    pthread_mutex_unlock(&s->world->lock);
    return s;
}

/* Binds and starts the S3 listener when one is configured. */
static int start_s3(struct sb_server *s, char *err, size_t errn)
{
    struct sb_daemons *d = s->d;
    int fd = -1;
    bool v6 = false;
    if (!s->s3)
        return 0;
    if (bind_listener(s->cfg.s3.listen, &fd, &s->s3_port, &v6, s->s3_base, sizeof s->s3_base, err,
                      errn) != 0)
        return -1;
    d->s3_l = (struct listener){s, SB_LISTENER_S3};
    d->s3 = start_daemon(&d->s3_l, fd, v6, S3_THREADS);
    if (!d->s3) {
        close(fd);
        (void)snprintf(err, errn, "cannot start the S3 listener");
        return -1;
    }
    return 0;
}

int sb_server_start(struct sb_server *s, char *err, size_t errn)
{
    struct sb_daemons *d = s->d;
    int afd = -1, sfd = -1;
    bool av6 = false, sv6 = false;
    if (bind_listener(s->cfg.listen, &afd, &s->api_port, &av6, s->api_base, sizeof s->api_base, err,
                      errn) != 0)
        return -1;
    if (bind_listener(s->cfg.storage_listen, &sfd, &s->storage_port, &sv6, s->storage_base,
                      sizeof s->storage_base, err, errn) != 0) {
        close(afd);
        return -1;
    }
    if (pthread_create(&d->waker, NULL, waker_main, d) != 0) {
        close(afd);
        close(sfd);
        (void)snprintf(err, errn, "cannot start a thread");
        return -1;
    }
    d->waker_started = true;
    if (sb_webhooks_start(s->hooks, err, errn) != 0 ||
        sb_testjobs_start(s->testjobs, err, errn) != 0) {
        close(afd);
        close(sfd);
        return -1;
    }
    d->api_l = (struct listener){s, SB_LISTENER_API};
    d->storage_l = (struct listener){s, SB_LISTENER_STORAGE};
    d->api = start_daemon(&d->api_l, afd, av6, API_THREADS);
    if (!d->api) {
        close(afd);
        close(sfd);
        (void)snprintf(err, errn, "cannot start the API listener");
        return -1;
    }
    d->storage = start_daemon(&d->storage_l, sfd, sv6, STORAGE_THREADS);
    if (!d->storage) {
        close(sfd);
        (void)snprintf(err, errn, "cannot start the storage listener");
        return -1;
    }
    return start_s3(s, err, errn);
}

void sb_server_stop(struct sb_server *s)
{
    struct sb_daemons *d = s->d;
    if (!d)
        return;
    /* Timelines first (they emit events), then deliveries (transfers in flight are aborted, so a
     * registration waiting for its verification delivery returns), then the listeners. */
    sb_testjobs_stop(s->testjobs);
    sb_webhooks_stop(s->hooks);
    if (d->waker_started) {
        pthread_mutex_lock(&d->dlock);
        d->stopping = true;
        pthread_cond_signal(&d->dcond);
        pthread_mutex_unlock(&d->dlock);
        pthread_join(d->waker, NULL);
        d->waker_started = false;
    }
    if (d->api)
        MHD_stop_daemon(d->api);
    if (d->storage)
        MHD_stop_daemon(d->storage);
    if (d->s3)
        MHD_stop_daemon(d->s3);
    d->api = d->storage = d->s3 = NULL;
}

void sb_server_free(struct sb_server *s)
{
    if (!s)
        return;
    sb_server_stop(s);
    if (s->d) {
        pthread_mutex_destroy(&s->d->dlock);
        pthread_cond_destroy(&s->d->dcond);
        free(s->d);
    }
    sb_s3store_free(s->s3);
    sb_testjobs_free(s->testjobs);
    sb_webhooks_free(s->hooks);
    sb_index_free(s->index);
    sb_world_free(s->world);
    sb_oauth_free(s->oauth);
    sb_ratelimit_free(s->rl);
    sb_faults_free(s->faults);
    sb_reqlog_free(s->log);
    pthread_mutex_destroy(&s->cfg_lock);
    free(s);
}
