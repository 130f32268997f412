/* test_outbox_fleet.c: CRM notifications delivered by several processes sharing one store (the
 * store of the storage suite's harness, tests/store/store_test.h: SQLite by default, PostgreSQL
 * under tests/support/pg_cluster.sh): two deliverers started at once, each on a handle of its
 * own as two processes have, deliver every message exactly once and in order per (endpoint,
 * job); a deliverer killed (kill -9) in the middle of a POST loses nothing: a restart on the same
 * host takes its lease over at once and delivers the rest, the interrupted message included. */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/mem.h"
#include "notify/outbox.h"
#include "store/outbox.h"
#include "../store/store_test.h"

#define EP1    "http://crm.test/hook"
#define EP2    "http://crm2.test/notify"
#define JOBS   4
#define PER    5 /* messages per (endpoint, job) */
#define TOTAL  (2 * JOBS * PER)
#define LOGMAX (4 * TOTAL)
#define ROUNDS 10

/* ---- every POST of every deliverer of this process, in the order they were made ---- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct logged {
    char url[64], idem[64];
    int who;
} posts[LOGMAX];
static int n_posts;

struct rec {
    struct hs_transport base;
    int who;
    int block_fd; /* >= 0: tell this pipe, then hang in the POST (a process to kill) */
};

static char *header(const struct hs_http_request *rq, const char *name)
{
    for (size_t i = 0; i < rq->n_headers; i++)
        if (strcmp(rq->headers[i].name, name) == 0)
            return (char *)rq->headers[i].value;
    return (char *)"";
}

static int rec_perform(struct hs_transport *t, const struct hs_http_request *rq,
                       struct hs_http_response *rs, struct hs_error *err)
{
    (void)err;
    struct rec *r = (struct rec *)t;
    if (r->block_fd >= 0) {
        if (write(r->block_fd, "x", 1) != 1)
            _exit(3);
        for (;;)
            pause();
    }
    pthread_mutex_lock(&log_lock);
    if (n_posts < LOGMAX) {
        struct logged *p = &posts[n_posts++];
        snprintf(p->url, sizeof p->url, "%s", rq->url);
        snprintf(p->idem, sizeof p->idem, "%s", header(rq, "Idempotency-Key"));
        p->who = r->who;
    }
    pthread_mutex_unlock(&log_lock);
    /* The network's time: the other deliverer gets every chance to overlap. */
    struct timespec ts = {0, 2 * 1000 * 1000};
    nanosleep(&ts, NULL);
    hs_http_response_clear(rs);
    rs->status = 200;
    return HS_OK;
}

static void rec_destroy(struct hs_transport *t)
{
    (void)t;
}

/* A deliverer of s posting through r, not started yet. */
static struct hs_outbox *deliverer(struct hs_store *s, struct rec *r, const struct hs_clock *clock)
{
    r->base.perform = rec_perform;
    r->base.destroy = rec_destroy;
    const char *eps[] = {EP1, EP2};
    struct hs_outbox_config oc = {
        .endpoints = eps, .n_endpoints = 2, .secret = "shh-secret", .idle_ms = 20};
    struct hs_outbox *o = NULL;
    struct hs_error err = {0};
    if (hs_outbox_new(&oc, s, clock, &r->base, &o, &err))
        fail_msg("outbox: %s", err.msg);
    return o;
}

static void start(struct hs_outbox *o)
{
    struct hs_error err = {0};
    if (hs_outbox_start(o, &err))
        fail_msg("outbox: %s", err.msg);
}

/* The messages: PER per (endpoint, job), keyed "<endpoint n>-<job>-<k>" (and the round's
 * number when round > 0: each round's messages are new ones). */
static void add_messages(struct fixture *f, int round)
{
    for (int e = 0; e < 2; e++)
        for (int j = 1; j <= JOBS; j++)
            for (int k = 1; k <= PER; k++) {
                char key[64], body[64];
                snprintf(key, sizeof key, "%d-%d-%d-%d", e + 1, j, k, round);
                snprintf(body, sizeof body, "{\"job\":%d,\"k\":%d}", j, k);
                assert_int_equal(
                    f->store->outbox->outbox_add(f->store, e ? EP2 : EP1, j, body, key, NULL),
                    HS_OK);
            }
}

static void wait_delivered(struct fixture *f)
{
    for (int i = 0; i < 3000; i++) { /* at most a minute: then the check below says what is left */
        int64_t n = -1;
        assert_int_equal(f->store->outbox->outbox_depth(f->store, &n, NULL), HS_OK);
        if (n == 0)
            return;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fail_msg("messages left undelivered");
}

/* Every message posted exactly once, and per (endpoint, job) in order. */
static void check_posts(void)
{
    int seen[2][JOBS + 1][PER + 1] = {{{0}}}, last[2][JOBS + 1] = {{0}}, repeats = 0;
    for (int i = 0; i < n_posts; i++) {
        int e = 0, j = 0, k = 0;
        assert_true(sscanf(posts[i].idem, "%d-%d-%d", &e, &j, &k) == 3);
        assert_string_equal(posts[i].url, e == 1 ? EP1 : EP2);
        if (seen[e - 1][j][k]++)
            repeats++;
        else if (k != last[e - 1][j] + 1)
            fail_msg("%s posted after message %d of its job", posts[i].idem, last[e - 1][j]);
        else
            last[e - 1][j] = k;
    }
    for (int e = 0; e < 2; e++)
        for (int j = 1; j <= JOBS; j++)
            assert_int_equal(last[e][j], PER);
    assert_int_equal(repeats, 0);
}

static void reset_log(void)
{
    pthread_mutex_lock(&log_lock);
    n_posts = 0;
    pthread_mutex_unlock(&log_lock);
}

/* Two processes' deliverers start at once on one store, round after round (each stops, giving
 * the lease back, at the end of its round): one of them delivers at a time, every message once,
 * in order per (endpoint, job). */
static void test_two_deliverers_deliver_each_message_once_in_order(void **state)
{
    struct fixture *f = *state;
    struct hs_store *other = NULL;
    assert_int_equal(open_store(f, &other), HS_OK);
    for (int round = 1; round <= ROUNDS; round++) {
        reset_log();
        add_messages(f, round);
        struct rec ra = {.who = 1, .block_fd = -1}, rb = {.who = 2, .block_fd = -1};
        struct hs_outbox *a = deliverer(f->store, &ra, NULL);
        struct hs_outbox *b = deliverer(other, &rb, NULL);
        start(a); /* back to back: their first claims of the lease race */
        start(b);
        wait_delivered(f);
        hs_outbox_free(a);
        hs_outbox_free(b);
        assert_int_equal(n_posts, TOTAL);
        check_posts();
    }
    hs_store_close(other);
}

/* A deliverer killed in the middle of a POST: its restart on this host releases the dead
 * process's lease at once (its clock here never moves, so the lease could not lapse) and
 * delivers every message, the interrupted one again. */
static void test_a_killed_deliverer_loses_nothing(void **state)
{
    struct fixture *f = *state;
    reset_log();
    add_messages(f, 0);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* the process to kill: its own store handle, hangs in its first POST */
        struct hs_store *s = NULL;
        if (open_store(f, &s))
            _exit(2);
        struct rec r = {.who = 9, .block_fd = fds[1]};
        start(deliverer(s, &r, NULL));
        for (;;)
            pause();
    }
    struct pollfd p = {.fd = fds[0], .events = POLLIN};
    assert_int_equal(poll(&p, 1, 60000), 1);
    kill(pid, SIGKILL);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    struct hs_fake_clock fc;
    hs_fake_clock_init(&fc, hs_clock_system()->wall_ms(hs_clock_system()));
    struct rec r = {.who = 1, .block_fd = -1};
    struct hs_outbox *o = deliverer(f->store, &r, &fc.clock);
    start(o);
    wait_delivered(f);
    hs_outbox_free(o);
    close(fds[0]);
    close(fds[1]);
    assert_int_equal(n_posts, TOTAL); /* the killed one's POST never reached the log */
    check_posts();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STORE_TEST(test_two_deliverers_deliver_each_message_once_in_order),
        STORE_TEST(test_a_killed_deliverer_loses_nothing),
    };
    return STORE_TESTS("outbox fleet", tests);
}
