/* test_multi.c: the shared libcurl multi loop (src/hover/multi.c) under the curl transport,
 * against a keep-alive HTTP server on loopback that serves each connection on its own thread:
 * one transport used by two threads at once (a slow answer does not hold up a quick one),
 * connections reused across requests, and a stop that ends a transfer in flight at once. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "hover/multi.h"
#include "hover/transport.h"

#define MAX_CONNS 16

struct server {
    int fd, port;
    pthread_t th;
    pthread_t conn_th[MAX_CONNS];
    int conn_fd[MAX_CONNS];
    atomic_int n_conns;  /* connections accepted */
    atomic_int requests; /* requests answered */
    atomic_bool release; /* /slow answers once set */
    atomic_bool stop;
};

struct conn_arg {
    struct server *s;
    int fd;
};

static void *conn_main(void *arg)
{
    struct conn_arg *ca = arg;
    struct server *s = ca->s;
    int c = ca->fd;
    free(ca);
    char buf[8192];
    size_t len = 0;
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {c, POLLIN, 0};
        if (poll(&p, 1, 20) <= 0)
            continue;
        ssize_t n = read(c, buf + len, sizeof buf - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (!end)
            continue;
        bool slow = strncmp(buf, "GET /slow ", 10) == 0;
        bool hang = strncmp(buf, "GET /hang ", 10) == 0;
        size_t used = (size_t)(end + 4 - buf);
        memmove(buf, buf + used, len - used);
        len -= used;
        while ((slow && !atomic_load(&s->release)) || hang) {
            if (atomic_load(&s->stop))
                goto out;
            usleep(5000);
        }
        const char *ans = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        if (write(c, ans, strlen(ans)) < 0)
            break;
        atomic_fetch_add(&s->requests, 1);
    }
out:
    return NULL;
}

static void *accept_main(void *arg)
{
    struct server *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {s->fd, POLLIN, 0};
        if (poll(&p, 1, 20) <= 0)
            continue;
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            continue;
        int i = atomic_fetch_add(&s->n_conns, 1);
        if (i >= MAX_CONNS) {
            close(c);
            continue;
        }
        struct conn_arg *ca = malloc(sizeof *ca);
        ca->s = s;
        ca->fd = c;
        s->conn_fd[i] = c;
        pthread_create(&s->conn_th[i], NULL, conn_main, ca);
    }
    return NULL;
}

static struct server *server_start(void)
{
    struct server *s = calloc(1, sizeof *s);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->fd, 16), 0);
    socklen_t al = sizeof a;
    getsockname(s->fd, (struct sockaddr *)&a, &al);
    s->port = ntohs(a.sin_port);
    pthread_create(&s->th, NULL, accept_main, s);
    return s;
}

static void server_stop(struct server *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->th, NULL);
    int n = atomic_load(&s->n_conns);
    for (int i = 0; i < n && i < MAX_CONNS; i++) {
        pthread_join(s->conn_th[i], NULL);
        close(s->conn_fd[i]);
    }
    close(s->fd);
    free(s);
}

struct call {
    struct hs_transport *t;
    char url[96];
    int rc;
    long status;
    atomic_bool done;
};

static void *call_main(void *arg)
{
    struct call *k = arg;
    struct hs_http_request rq = {.url = k->url, .timeout_ms = 20000};
    struct hs_http_response rs;
    hs_http_response_init(&rs);
    k->rc = k->t->perform(k->t, &rq, &rs, NULL);
    k->status = rs.status;
    hs_http_response_clear(&rs);
    atomic_store(&k->done, true);
    return NULL;
}

static void test_slow_answer_holds_up_nothing(void **state)
{
    (void)state;
    struct server *s = server_start();
    struct hs_transport *t = hs_transport_curl_new();
    assert_non_null(t);
    struct call slow = {.t = t}, quick = {.t = t};
    snprintf(slow.url, sizeof slow.url, "http://127.0.0.1:%d/slow", s->port);
    snprintf(quick.url, sizeof quick.url, "http://127.0.0.1:%d/quick", s->port);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, call_main, &slow), 0);
    call_main(&quick); /* the same transport, meanwhile, on this thread */
    assert_int_equal(quick.rc, HS_OK);
    assert_int_equal(quick.status, 200);
    assert_false(atomic_load(&slow.done)); /* the slow one is still waiting for its answer */
    atomic_store(&s->release, true);
    pthread_join(th, NULL);
    assert_int_equal(slow.rc, HS_OK);
    assert_int_equal(slow.status, 200);
    hs_transport_free(t);
    server_stop(s);
}

static void test_connections_reused(void **state)
{
    (void)state;
    struct server *s = server_start();
    atomic_store(&s->release, true);
    struct hs_transport *t = hs_transport_curl_new();
    struct hs_transport *t2 = hs_transport_curl_new();
    for (int i = 0; i < 4; i++) {
        struct call k = {.t = i % 2 ? t2 : t};
        snprintf(k.url, sizeof k.url, "http://127.0.0.1:%d/quick", s->port);
        call_main(&k);
        assert_int_equal(k.rc, HS_OK);
    }
    assert_int_equal(atomic_load(&s->requests), 4);
    assert_int_equal(atomic_load(&s->n_conns), 1); /* one connection, kept alive by the loop */
    hs_transport_free(t);
    hs_transport_free(t2);
    server_stop(s);
}

struct raw_call {
    struct hs_curl_multi *m;
    CURL *easy;
    CURLcode rc;
    int stopped;
};

static void *raw_main(void *arg)
{
    struct raw_call *r = arg;
    r->rc = hs_curl_multi_perform(r->m, r->easy, 60000, &r->stopped);
    return NULL;
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

static void test_stop_ends_transfers_in_flight(void **state)
{
    (void)state;
    struct server *s = server_start();
    struct hs_curl_multi *m = hs_curl_multi_new();
    assert_non_null(m);
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hang", s->port);
    struct raw_call r = {.m = m, .easy = curl_easy_init()};
    curl_easy_setopt(r.easy, CURLOPT_URL, url);
    curl_easy_setopt(r.easy, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(r.easy, CURLOPT_WRITEFUNCTION, discard);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, raw_main, &r), 0);
    while (atomic_load(&s->n_conns) == 0) /* the request reached the server */
        usleep(1000);
    hs_curl_multi_stop(m);
    pthread_join(th, NULL); /* long before the 60 s timeout */
    assert_int_equal(r.stopped, 1);
    assert_int_equal(r.rc, CURLE_ABORTED_BY_CALLBACK);
    /* Refused from now on. */
    int stopped = 0;
    assert_int_equal(hs_curl_multi_perform(m, r.easy, 1000, &stopped), CURLE_ABORTED_BY_CALLBACK);
    assert_int_equal(stopped, 1);
    curl_easy_cleanup(r.easy);
    hs_curl_multi_free(m);
    server_stop(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_answer_holds_up_nothing),
        cmocka_unit_test(test_connections_reused),
        cmocka_unit_test(test_stop_ends_transfers_in_flight),
    };
    int rc = cmocka_run_group_tests_name("hover-multi", tests, NULL, NULL);
    hs_curl_multi_default_shutdown();
    return rc;
}
