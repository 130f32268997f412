/* lease.c: see lease.h. The held runs are a small array under one mutex; the heartbeat thread
 * renews them with that mutex held, so that hs_run_lease_drop (which takes it) returns only
 * when no renewal of the dropped run is running. The thread is started by the first hold and
 * lives as long as the process; with nothing held it sleeps on a condition variable. */
#include "sync/lease.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"

struct held {
    struct hs_store *store;
    int64_t run_id;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed; /* on CLOCK_MONOTONIC: a wall clock step delays no renewal */
static pthread_once_t changed_once = PTHREAD_ONCE_INIT;
static struct held *runs;
static size_t n_runs, cap_runs;
static bool started;
static _Atomic int64_t lease_ms = HS_RUN_LEASE_DEFAULT_MS;

void hs_run_lease_configure(int64_t ms)
{
    if (ms > 0)
        atomic_store(&lease_ms, ms);
}

int64_t hs_run_lease_ms(void)
{
    return atomic_load(&lease_ms);
}

int64_t hs_run_lease_until(void)
{
    const struct hs_clock *c = hs_clock_system();
    return c->wall_ms(c) + hs_run_lease_ms();
}

static void renew_all(void)
{
    int64_t until = hs_run_lease_until();
    for (size_t i = 0; i < n_runs; i++) {
        struct hs_error err = {0};
        if (runs[i].store->records->run_renew(runs[i].store, runs[i].run_id, until, &err))
            hs_warn("sync=lease run=%lld error=\"%s\"", (long long)runs[i].run_id, err.msg);
    }
}

static void *heartbeat(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    for (;;) {
        while (n_runs == 0)
            pthread_cond_wait(&changed, &lock);
        /* A quarter of the lease: three renewals may fail or be late before a run lapses. */
        int64_t every = hs_run_lease_ms() / 4;
        struct timespec until = hs_deadline_after(CLOCK_MONOTONIC, every > 100 ? every : 100);
        int rc = 0;
        while (n_runs > 0 && rc == 0)
            rc = pthread_cond_timedwait(&changed, &lock, &until);
        if (n_runs > 0)
            renew_all();
    }
    return NULL;
}

static void changed_init(void)
{
    hs_cond_init_monotonic(&changed);
}

void hs_run_lease_hold(struct hs_store *s, int64_t run_id)
{
    if (!s || run_id <= 0)
        return;
    pthread_once(&changed_once, changed_init);
    pthread_mutex_lock(&lock);
    if (!started) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        started = pthread_create(&t, &a, heartbeat, NULL) == 0;
        pthread_attr_destroy(&a);
        if (!started)
            hs_warn("sync=lease msg=\"cannot start the heartbeat: runs of this process may be "
                    "marked interrupted while they run\"");
    }
    if (n_runs == cap_runs) {
        cap_runs = cap_runs ? cap_runs * 2 : 8;
        runs = hs_realloc(runs, cap_runs * sizeof *runs);
    }
    runs[n_runs++] = (struct held){s, run_id};
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

void hs_run_lease_drop(struct hs_store *s, int64_t run_id)
{
    pthread_once(&changed_once, changed_init);
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n_runs; i++) {
        if (runs[i].store == s && runs[i].run_id == run_id) {
            runs[i] = runs[--n_runs];
            break;
        }
    }
    if (n_runs == 0) {
        free(runs);
        runs = NULL;
        cap_runs = 0;
    }
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

int hs_run_lease_sweep(struct hs_store *s, struct hs_run_counts *out, struct hs_error *err)
{
    struct hs_run_counts c = {0};
    const struct hs_clock *clk = hs_clock_system();
    int rc = s->records->runs_interrupt_lapsed(s, clk->wall_ms(clk), &c, err);
    if (rc)
        return rc;
    if (c.marked)
        hs_info("sync=interrupted runs=%lld msg=\"runs whose process stopped renewing their "
                "lease\"",
                (long long)c.marked);
    if (out)
        *out = c;
    return HS_OK;
}
