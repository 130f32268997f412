/* test_transport_curl.c: the libcurl transport (src/hover/transport_curl.c) against small HTTP
 * servers on loopback that answer scripted raw responses and record the requests they get:
 * headers captured, redirects followed by hand with the bearer kept on its origin, size caps,
 * short bodies, refused connections and timeouts. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/buf.h"
#include "hover/transport.h"

#define MAX_ROUTES 16
#define MAX_REQS   32

struct route {
    char path[64];
    char *response; /* raw bytes sent as is */
    size_t len;
    bool hang; /* send nothing, keep the connection open until the server stops */
};

struct server {
    int fd;
    int port;
    pthread_t th;
    pthread_mutex_t lock;
    volatile bool stop;
    struct route routes[MAX_ROUTES];
    int n_routes;
    char *reqs[MAX_REQS]; /* raw request heads (and bodies) */
    int n_reqs;
};

static void server_route(struct server *s, const char *path, const char *response)
{
    struct route *r = &s->routes[s->n_routes++];
    snprintf(r->path, sizeof r->path, "%s", path);
    r->response = strdup(response ? response : "");
    r->len = strlen(r->response);
    r->hang = response == NULL;
}

static void serve_one(struct server *s, int c)
{
    char buf[16384];
    size_t len = 0;
    char *end = NULL;
    while (len < sizeof buf - 1) {
        struct pollfd p = {c, POLLIN, 0};
        if (poll(&p, 1, 2000) <= 0)
            return;
        ssize_t n = read(c, buf + len, sizeof buf - 1 - len);
        if (n <= 0)
            return;
        len += (size_t)n;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
        if (!end)
            continue;
        /* and the body, if announced */
        const char *cl = strstr(buf, "Content-Length: ");
        size_t want = (size_t)(end + 4 - buf) + (cl && cl < end ? strtoul(cl + 16, NULL, 10) : 0);
        if (len >= want)
            break;
    }
    pthread_mutex_lock(&s->lock);
    if (s->n_reqs < MAX_REQS)
        s->reqs[s->n_reqs++] = strdup(buf);
    pthread_mutex_unlock(&s->lock);

    char method[16], path[256];
    if (sscanf(buf, "%15s %255s", method, path) != 2)
        return;
    char *q = strchr(path, '?');
    if (q)
        *q = '\0';
    for (int i = 0; i < s->n_routes; i++) {
        struct route *r = &s->routes[i];
        if (strcmp(r->path, path) != 0)
            continue;
        if (r->hang) {
            while (!s->stop)
                usleep(10000);
            return;
        }
        size_t off = 0;
        while (off < r->len) {
            ssize_t n = write(c, r->response + off, r->len - off);
            if (n <= 0)
                return;
            off += (size_t)n;
        }
        return;
    }
    const char *nf = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    (void)!write(c, nf, strlen(nf));
}

static void *server_main(void *arg)
{
    struct server *s = arg;
    while (!s->stop) {
        struct pollfd p = {s->fd, POLLIN, 0};
        if (poll(&p, 1, 20) <= 0)
            continue;
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            continue;
        serve_one(s, c);
        shutdown(c, SHUT_WR);
        close(c);
    }
    return NULL;
}

static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 16), 0);
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    *port = ntohs(a.sin_port);
    return fd;
}

static struct server *server_start(void)
{
    struct server *s = calloc(1, sizeof *s);
    s->fd = listen_any(&s->port);
    pthread_mutex_init(&s->lock, NULL);
    return s;
}

static void server_run(struct server *s)
{
    pthread_create(&s->th, NULL, server_main, s);
}

static void server_stop(struct server *s)
{
    s->stop = true;
    pthread_join(s->th, NULL);
    close(s->fd);
    for (int i = 0; i < s->n_routes; i++)
        free(s->routes[i].response);
    for (int i = 0; i < s->n_reqs; i++)
        free(s->reqs[i]);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static char *url_of(const struct server *s, const char *path)
{
    static char u[8][128];
    static int next;
    char *p = u[next++ % 8];
    snprintf(p, 128, "http://127.0.0.1:%d%s", s->port, path);
    return p;
}

static bool has_header(const char *req, const char *line)
{
    return strstr(req, line) != NULL;
}

static int do_request(struct hs_http_request *rq, struct hs_http_response *rs, struct hs_error *err)
{
    struct hs_transport *t = hs_transport_curl_new();
    assert_non_null(t);
    hs_http_response_init(rs);
    int rc = t->perform(t, rq, rs, err);
    hs_transport_free(t);
    return rc;
}

static void test_get_headers_captured(void **state)
{
    (void)state;
    struct server *s = server_start();
    server_route(s, "/json",
                 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nETag: \"e1\"\r\n"
                 "Content-Length: 9\r\nConnection: close\r\n\r\n{\"id\":1}\n");
    server_run(s);
    const struct hs_http_header h[] = {{"Accept", "application/json"},
                                       {"Authorization", "Basic c2VjcmV0"}};
    struct hs_http_request rq = {.url = url_of(s, "/json?x=1"),
                                 .headers = h,
                                 .n_headers = 2,
                                 .bearer_token = "tok-123",
                                 .if_none_match = "\"e0\""};
    struct hs_http_response rs;
    struct hs_error err = {0};
    assert_int_equal(do_request(&rq, &rs, &err), HS_OK);
    assert_int_equal(rs.status, 200);
    assert_string_equal(hs_buf_str(&rs.body), "{\"id\":1}\n");
    assert_string_equal(rs.etag, "\"e1\"");
    assert_string_equal(rs.content_type, "application/json");
    assert_int_equal(rs.content_length, 9);
    assert_int_equal(rs.body_bytes, 9);
    assert_int_equal(rs.retry_after_s, -1);
    assert_null(rs.location);
    assert_string_equal(rs.final_url, rq.url);
    assert_int_equal(rs.redirects, 0);
    hs_http_response_clear(&rs);
    server_stop(s);
}

static void test_request_headers_sent(void **state)
{
    (void)state;
    struct server *s = server_start();
    server_route(s, "/h", "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
    server_run(s);
    const struct hs_http_header h[] = {{"Accept", "application/json"},
                                       {"authorization", "Basic c2VjcmV0"}};
    struct hs_http_request rq = {.url = url_of(s, "/h"),
                                 .headers = h,
                                 .n_headers = 2,
                                 .bearer_token = "tok-123",
                                 .if_none_match = "\"e0\""};
    struct hs_http_response rs;
    assert_int_equal(do_request(&rq, &rs, NULL), HS_OK);
    assert_int_equal(rs.status, 204);
    hs_http_response_clear(&rs);
    assert_int_equal(s->n_reqs, 1);
    const char *r = s->reqs[0];
    assert_true(has_header(r, "GET /h HTTP/1.1\r\n"));
    assert_true(has_header(r, "Authorization: Bearer tok-123\r\n"));
    assert_false(has_header(r, "Basic")); /* only bearer_token authorises */
    assert_true(has_header(r, "If-None-Match: \"e0\"\r\n"));
    assert_true(has_header(r, "Accept: application/json\r\n"));
    assert_true(has_header(r, "User-Agent: hoversync/"));
    server_stop(s);
}

static void test_redirect_other_origin_drops_bearer(void **state)
{
    (void)state;
    struct server *a = server_start(), *b = server_start();
    char resp[256];
    snprintf(resp, sizeof resp,
             "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:%d/file.pdf?sig=1\r\n"
             "Content-Length: 0\r\nConnection: close\r\n\r\n",
             b->port);
    server_route(a, "/artifact", resp);
    server_route(b, "/file.pdf",
                 "HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\nETag: \"pdf1\"\r\n"
                 "Content-Length: 8\r\nConnection: close\r\n\r\n%PDF-1.4");
    server_run(a);
    server_run(b);
    struct hs_http_request rq = {.url = url_of(a, "/artifact"), .bearer_token = "tok-123"};
    struct hs_http_response rs;
    struct hs_error err = {0};
    assert_int_equal(do_request(&rq, &rs, &err), HS_OK);
    assert_int_equal(rs.status, 200);
    assert_string_equal(hs_buf_str(&rs.body), "%PDF-1.4");
    assert_string_equal(rs.etag, "\"pdf1\"");
    assert_int_equal(rs.redirects, 1);
    assert_string_equal(rs.final_url, url_of(b, "/file.pdf?sig=1"));
    assert_int_equal(a->n_reqs, 1);
    assert_int_equal(b->n_reqs, 1);
    assert_true(has_header(a->reqs[0], "Authorization: Bearer tok-123\r\n"));
    assert_false(has_header(b->reqs[0], "Authorization"));
    hs_http_response_clear(&rs);
    server_stop(a);
    server_stop(b);
}

static void test_redirect_same_origin_keeps_bearer(void **state)
{
    (void)state;
    struct server *s = server_start();
    server_route(s, "/a",
                 "HTTP/1.1 301 Moved\r\nLocation: b/c\r\nContent-Length: 5\r\n"
                 "Connection: close\r\n\r\nmoved");
    server_route(s, "/b/c", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    server_run(s);
    struct hs_http_request rq = {.url = url_of(s, "/a"), .bearer_token = "tok-123"};
    struct hs_http_response rs;
    assert_int_equal(do_request(&rq, &rs, NULL), HS_OK);
    assert_string_equal(hs_buf_str(&rs.body), "ok"); /* not "movedok" */
    assert_int_equal(s->n_reqs, 2);
    assert_true(has_header(s->reqs[1], "GET /b/c HTTP/1.1"));
    assert_true(has_header(s->reqs[1], "Authorization: Bearer tok-123\r\n"));
    hs_http_response_clear(&rs);

    /* Not followed when asked not to. */
    rq.max_redirects = -1;
    assert_int_equal(do_request(&rq, &rs, NULL), HS_OK);
    assert_int_equal(rs.status, 301);
    assert_string_equal(rs.location, "b/c");
    hs_http_response_clear(&rs);
    server_stop(s);
}

static void test_redirect_loop_and_post_303(void **state)
{
    (void)state;
    struct server *s = server_start();
    server_route(s, "/loop",
                 "HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\nConnection: "
                 "close\r\n\r\n");
    server_route(s, "/post",
                 "HTTP/1.1 303 See Other\r\nLocation: /after\r\nContent-Length: 0\r\nConnection: "
                 "close\r\n\r\n");
    server_route(s, "/after",
                 "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\ndone");
    server_run(s);
    struct hs_http_request rq = {.url = url_of(s, "/loop"), .max_redirects = 3};
    struct hs_http_response rs;
    struct hs_error err = {0};
    assert_int_equal(do_request(&rq, &rs, &err), HS_ERR_HTTP);
    assert_non_null(strstr(err.msg, "more than 3 redirects"));
    assert_int_equal(s->n_reqs, 4);
    assert_int_equal(rs.status, 0); /* cleared on failure */

    const struct hs_http_header h[] = {{"Content-Type", "application/json"}};
    struct hs_http_request post = {.method = "POST",
                                   .url = url_of(s, "/post"),
                                   .headers = h,
                                   .n_headers = 1,
                                   .body = "{\"a\":1}",
                                   .body_len = 7};
    assert_int_equal(do_request(&post, &rs, &err), HS_OK);
    assert_string_equal(hs_buf_str(&rs.body), "done");
    assert_true(has_header(s->reqs[4], "POST /post HTTP/1.1"));
    assert_true(has_header(s->reqs[4], "\r\n\r\n{\"a\":1}"));
    assert_true(has_header(s->reqs[5], "GET /after HTTP/1.1"));
    hs_http_response_clear(&rs);
    server_stop(s);
}

static void test_retry_after(void **state)
{
    (void)state;
    struct server *s = server_start();
    server_route(s, "/secs",
                 "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\n"
                 "Content-Length: 0\r\nConnection: close\r\n\r\n");
    char date[64], resp[256];
    time_t t = time(NULL) + 30;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    snprintf(resp, sizeof resp,
             "HTTP/1.1 503 Unavailable\r\nRetry-After: %s\r\nContent-Length: 0\r\n"
             "Connection: close\r\n\r\n",
             date);
    server_route(s, "/date", resp);
    server_run(s);
    struct hs_http_request rq = {.url = url_of(s, "/secs")};
    struct hs_http_response rs;
    assert_int_equal(do_request(&rq, &rs, NULL), HS_OK);
    assert_int_equal(rs.status, 429);
    assert_int_equal(rs.retry_after_s, 7);
    hs_http_response_clear(&rs);
    rq.url = url_of(s, "/date");
    assert_int_equal(do_request(&rq, &rs, NULL), HS_OK);
    assert_int_equal(rs.status, 503);
    assert_true(rs.retry_after_s >= 25 && rs.retry_after_s <= 31);
    hs_http_response_clear(&rs);
    server_stop(s);
}

static void test_size_cap(void **state)
{
    (void)state;
    struct server *s = server_start();
    struct hs_buf big;
    hs_buf_init(&big, 1 << 20);
    hs_buf_appends(&big, "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n");
    for (int i = 0; i < 5000; i++)
        hs_buf_append(&big, "x", 1);
    server_route(s, "/big", hs_buf_str(&big));
    hs_buf_reset(&big);
    hs_buf_appends(&big,
                   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    for (int i = 0; i < 10; i++) {
        hs_buf_appends(&big, "1f4\r\n");
        for (int k = 0; k < 500; k++)
            hs_buf_append(&big, "y", 1);
        hs_buf_appends(&big, "\r\n");
    }
    hs_buf_appends(&big, "0\r\n\r\n");
    server_route(s, "/chunked", hs_buf_str(&big));
    hs_buf_free(&big);
    server_run(s);

    struct hs_http_request rq = {.url = url_of(s, "/big"), .max_response = 1000};
    struct hs_http_response rs;
    struct hs_error err = {0};
    assert_int_equal(do_request(&rq, &rs, &err), HS_ERR_TOOBIG);
    assert_non_null(strstr(err.msg, "1000 byte cap"));
    rq.url = url_of(s, "/chunked");
    assert_int_equal(do_request(&rq, &rs, &err), HS_ERR_TOOBIG);
    rq.max_response = 5000; /* exactly the cap is fine */
    assert_int_equal(do_request(&rq, &rs, &err), HS_OK);
    assert_int_equal(rs.body.len, 5000);
    hs_http_response_clear(&rs);
    server_stop(s);
}

static void test_short_body_truncated(void **state)
{
    (void)state;
    struct server *s = server_start();
    server_route(s, "/short",
                 "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n"
                 "\r\n{\"results\":[{\"id\":1},");
    server_run(s);
    struct hs_http_request rq = {.url = url_of(s, "/short")};
    struct hs_http_response rs;
    struct hs_error err = {0};
    assert_int_equal(do_request(&rq, &rs, &err), HS_ERR_TRUNCATED);
    assert_non_null(strstr(err.msg, "/short"));
    server_stop(s);
}

static void test_refused_and_timeout(void **state)
{
    (void)state;
    int port;
    int fd = listen_any(&port);
    close(fd); /* nothing listens there now */
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x?token=secret", port);
    struct hs_http_request rq = {.url = url};
    struct hs_http_response rs;
    struct hs_error err = {0};
    assert_int_equal(do_request(&rq, &rs, &err), HS_ERR_NETWORK);
    assert_non_null(strstr(err.msg, "cannot connect"));
    assert_non_null(strstr(err.msg, "127.0.0.1"));
    assert_null(strstr(err.msg, "secret")); /* no query strings in messages */

    struct server *s = server_start();
    server_route(s, "/hang", NULL);
    server_run(s);
    rq.url = url_of(s, "/hang");
    rq.timeout_ms = 300;
    assert_int_equal(do_request(&rq, &rs, &err), HS_ERR_NETWORK);
    assert_non_null(strstr(err.msg, "timed out after 300 ms"));
    server_stop(s);

    rq.url = "ftp://127.0.0.1/x";
    rq.timeout_ms = 0;
    assert_int_not_equal(do_request(&rq, &rs, &err), HS_OK);
}

struct sink_state {
    struct hs_buf b;
    int calls;
    int fail_with;
};

static int sink(void *ctx, const char *data, size_t len)
{
    struct sink_state *st = ctx;
    st->calls++;
    if (st->fail_with)
        return st->fail_with;
    return hs_buf_append(&st->b, data, len);
}

static void test_sink(void **state)
{
    (void)state;
    struct server *s = server_start();
    server_route(s, "/ok",
                 "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\n"
                 "hello world");
    server_route(s, "/err",
                 "HTTP/1.1 404 Not Found\r\nContent-Length: 16\r\nConnection: close"
                 "\r\n\r\n{\"error\":\"gone\"}");
    server_run(s);
    struct sink_state st = {.calls = 0};
    hs_buf_init(&st.b, 1024);
    struct hs_http_request rq = {.url = url_of(s, "/ok"), .sink = sink, .sink_ctx = &st};
    struct hs_http_response rs;
    assert_int_equal(do_request(&rq, &rs, NULL), HS_OK);
    assert_string_equal(hs_buf_str(&st.b), "hello world");
    assert_int_equal(rs.body.len, 0);
    assert_int_equal(rs.body_bytes, 11);
    hs_http_response_clear(&rs);

    hs_buf_reset(&st.b);
    st.calls = 0;
    rq.url = url_of(s, "/err");
    assert_int_equal(do_request(&rq, &rs, NULL), HS_OK);
    assert_int_equal(rs.status, 404);
    assert_int_equal(st.calls, 0);
    assert_string_equal(hs_buf_str(&rs.body), "{\"error\":\"gone\"}");
    hs_http_response_clear(&rs);

    /* A failing sink stops the transfer with its own code. */
    rq.url = url_of(s, "/ok");
    st.fail_with = HS_ERR_IO;
    struct hs_error err = {0};
    assert_int_equal(do_request(&rq, &rs, &err), HS_ERR_IO);
    st.fail_with = 1;
    assert_int_equal(do_request(&rq, &rs, &err), HS_ERR_IO);
    hs_buf_free(&st.b);
    server_stop(s);
}

static void test_origin_helpers(void **state)
{
    (void)state;
    assert_true(hs_url_same_origin("https://hover.to/a", "https://HOVER.TO:443/b?c"));
    assert_true(hs_url_same_origin("http://h:80/", "http://h/x"));
    assert_false(hs_url_same_origin("https://hover.to/a", "http://hover.to/a"));
    assert_false(hs_url_same_origin("https://hover.to/a", "https://hover.to:8443/a"));
    assert_false(hs_url_same_origin("https://hover.to/a", "https://sandbox.hover.to/a"));
    assert_false(hs_url_same_origin("https://hover.to.evil.com/", "https://hover.to/"));
    assert_false(hs_url_same_origin("https://user@evil.com/", "https://hover.to/"));
    assert_false(hs_url_same_origin("ftp://hover.to/", "ftp://hover.to/"));
    assert_false(hs_url_same_origin("not a url", "https://hover.to/"));
    assert_false(hs_url_same_origin(NULL, "https://hover.to/"));

    char *u = NULL;
    assert_int_equal(hs_url_resolve("https://h/a/b?q=1", "../c?d=2", &u, NULL), HS_OK);
    assert_string_equal(u, "https://h/c?d=2");
    free(u);
    assert_int_equal(hs_url_resolve("https://h/a/b", "//other.example/x", &u, NULL), HS_OK);
    assert_string_equal(u, "https://other.example/x");
    free(u);
    assert_int_equal(hs_url_resolve("https://h/a", "https://s3.example/x y", &u, NULL), HS_OK);
    free(u);
    assert_int_equal(hs_url_resolve("https://h/a", "javascript:alert(1)", &u, NULL), HS_ERR_HTTP);

    char shown[32];
    hs_url_for_log("https://s3.example/x.pdf?X-Amz-Signature=abc#f", shown, sizeof shown);
    assert_string_equal(shown, "https://s3.example/x.pdf");
    hs_url_for_log("https://a-very-long-host-name.example/path", shown, 10);
    assert_string_equal(shown, "https://a");
}

int main(void)
{
    /* The servers are on loopback: a proxy from the environment must not get in the way. */
    static const char *const proxies[] = {"http_proxy",  "HTTP_PROXY", "https_proxy",
                                          "HTTPS_PROXY", "all_proxy",  "ALL_PROXY"};
    for (size_t i = 0; i < sizeof proxies / sizeof proxies[0]; i++)
        unsetenv(proxies[i]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_headers_captured),
        cmocka_unit_test(test_request_headers_sent),
        cmocka_unit_test(test_redirect_other_origin_drops_bearer),
        cmocka_unit_test(test_redirect_same_origin_keeps_bearer),
        cmocka_unit_test(test_redirect_loop_and_post_303),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_size_cap),
        cmocka_unit_test(test_short_body_truncated),
        cmocka_unit_test(test_refused_and_timeout),
        cmocka_unit_test(test_sink),
        cmocka_unit_test(test_origin_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
