/* multi.c: the shared libcurl multi loop (multi.h).
 *
 * A multi handle may only be touched by one thread: the loop's. Submitters put a transfer on the
 * pending list under the lock and wake the loop (curl_multi_wakeup is the one call that is safe
 * from any thread); the loop adds it, drives every transfer with curl_multi_perform, and hands
 * each finished one back through its own condition variable. A transfer lives on its
 * submitter's stack, which is safe because the submitter does not return before the loop has
 * marked it done and removed its handle. */
#include "hover/multi.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"

#define CONNECTION_CACHE 32
#define POLL_MS          1000

struct xfer {
    CURL *easy;
    CURLcode result;
    bool done;
    bool cancel;  /* the submitter gave up waiting: remove it */
    bool stopped; /* ended by hs_curl_multi_stop */
    pthread_cond_t cond;
    struct xfer *next;
};

struct hs_curl_multi {
    pthread_mutex_t lock;
    CURLM *multi;
    pthread_t thread;
    bool started;
    bool stopping;        /* no new transfers; those in flight end as stopped */
    bool quit;            /* the thread leaves once nothing is in flight */
    struct xfer *pending; /* submitted, not yet in the multi handle */
    struct xfer *active;  /* in the multi handle */
};

/* Under m->lock. */
static void finish(struct xfer *x, CURLcode rc, bool stopped)
{
    x->result = rc;
    x->stopped = stopped;
    x->done = true;
    pthread_cond_signal(&x->cond);
}

static void unlink_active(struct hs_curl_multi *m, struct xfer *x)
{
    for (struct xfer **pp = &m->active; *pp; pp = &(*pp)->next) {
        if (*pp == x) {
            *pp = x->next;
            return;
        }
    }
}

/* Adds what was submitted, removes what was cancelled or stopped. Under m->lock; true when the
 * thread should leave. */
static bool sync_lists(struct hs_curl_multi *m)
{
    while (m->pending) {
        struct xfer *x = m->pending;
        m->pending = x->next;
        if (m->stopping || x->cancel) {
            finish(x, m->stopping ? CURLE_ABORTED_BY_CALLBACK : CURLE_OPERATION_TIMEDOUT,
                   m->stopping);
            continue;
        }
        CURLMcode mc = curl_multi_add_handle(m->multi, x->easy);
        if (mc != CURLM_OK) {
            hs_warn("curl msg=\"cannot add a transfer to the multi handle\" error=\"%s\"",
                    curl_multi_strerror(mc));
            finish(x, CURLE_FAILED_INIT, false);
            continue;
        }
        x->next = m->active;
        m->active = x;
    }
    struct xfer **pp = &m->active;
    while (*pp) {
        struct xfer *x = *pp;
        if (!x->cancel && !m->stopping) {
            pp = &x->next;
            continue;
        }
        *pp = x->next;
        curl_multi_remove_handle(m->multi, x->easy);
        finish(x, x->cancel ? CURLE_OPERATION_TIMEDOUT : CURLE_ABORTED_BY_CALLBACK, !x->cancel);
    }
    return m->quit && !m->active && !m->pending;
}

static void *loop_main(void *arg)
{
    struct hs_curl_multi *m = arg;
    for (;;) {
        pthread_mutex_lock(&m->lock);
        bool leave = sync_lists(m);
        pthread_mutex_unlock(&m->lock);
        if (leave)
            break;
        int running = 0;
        (void)curl_multi_perform(m->multi, &running);
        CURLMsg *msg;
        int left = 0;
        while ((msg = curl_multi_info_read(m->multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            CURL *easy = msg->easy_handle;
            CURLcode rc = msg->data.result; /* msg dies with the removal below */
            struct xfer *x = NULL;
            curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
            curl_multi_remove_handle(m->multi, easy);
            pthread_mutex_lock(&m->lock);
            unlink_active(m, x);
            finish(x, rc, false);
            pthread_mutex_unlock(&m->lock);
        }
        (void)curl_multi_poll(m->multi, NULL, 0, POLL_MS, NULL);
    }
    return NULL;
}

struct hs_curl_multi *hs_curl_multi_new(void)
{
    CURLM *multi = curl_multi_init();
    if (!multi)
        return NULL;
    struct hs_curl_multi *m = hs_calloc(1, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
    m->multi = multi;
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)CONNECTION_CACHE);
    return m;
}

void hs_curl_multi_stop(struct hs_curl_multi *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->stopping = true;
    /* Transfers submitted before the thread ever ran. */
    if (!m->started) {
        while (m->pending) {
            struct xfer *x = m->pending;
            m->pending = x->next;
            finish(x, CURLE_ABORTED_BY_CALLBACK, true);
        }
    }
    pthread_mutex_unlock(&m->lock);
    curl_multi_wakeup(m->multi);
}

void hs_curl_multi_free(struct hs_curl_multi *m)
{
    if (!m)
        return;
    hs_curl_multi_stop(m);
    pthread_mutex_lock(&m->lock);
    m->quit = true;
    bool started = m->started;
    pthread_mutex_unlock(&m->lock);
    curl_multi_wakeup(m->multi);
    if (started)
        pthread_join(m->thread, NULL);
    curl_multi_cleanup(m->multi);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

CURLcode hs_curl_multi_perform(struct hs_curl_multi *m, CURL *easy, int64_t wait_ms, int *stopped)
{
    *stopped = 0;
    struct xfer x = {.easy = easy};
    hs_cond_init_monotonic(&x.cond);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, (char *)&x);

    pthread_mutex_lock(&m->lock);
    if (m->stopping) {
        pthread_mutex_unlock(&m->lock);
        pthread_cond_destroy(&x.cond);
        *stopped = 1;
        return CURLE_ABORTED_BY_CALLBACK;
    }
    if (!m->started) {
        if (pthread_create(&m->thread, NULL, loop_main, m) != 0) {
            pthread_mutex_unlock(&m->lock);
            pthread_cond_destroy(&x.cond);
            return CURLE_FAILED_INIT;
        }
        m->started = true;
    }
    x.next = m->pending;
    m->pending = &x;
    pthread_mutex_unlock(&m->lock);
    curl_multi_wakeup(m->multi);

    struct timespec deadline = hs_deadline_after(CLOCK_MONOTONIC, wait_ms > 0 ? wait_ms : 60000);
    pthread_mutex_lock(&m->lock);
    while (!x.done) {
        if (x.cancel) {
            pthread_cond_wait(&x.cond, &m->lock);
        } else if (pthread_cond_timedwait(&x.cond, &m->lock, &deadline) == ETIMEDOUT && !x.done) {
            /* curl's own timeout should have ended it: take it out ourselves. */
            x.cancel = true;
            curl_multi_wakeup(m->multi);
        }
    }
    pthread_mutex_unlock(&m->lock);
    pthread_cond_destroy(&x.cond);
    *stopped = x.stopped;
    return x.result;
}

/* ---- the process's loop ---- */

static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hs_curl_multi *default_loop;
static bool default_shut;

struct hs_curl_multi *hs_curl_multi_default(void)
{
    pthread_mutex_lock(&default_lock);
    if (!default_loop && !default_shut)
        default_loop = hs_curl_multi_new();
    struct hs_curl_multi *m = default_loop;
    pthread_mutex_unlock(&default_lock);
    return m;
}

void hs_curl_multi_default_shutdown(void)
{
    pthread_mutex_lock(&default_lock);
    struct hs_curl_multi *m = default_loop;
    default_loop = NULL;
    default_shut = true;
    pthread_mutex_unlock(&default_lock);
    hs_curl_multi_free(m);
}
