/* testjobs.c: reconstruction timelines; see testjobs.h.
 *
 * A timeline of length T for a job with n models, in fractions of T:
 *   0.05  model-created for each model (state uploading)
 *   0.15  every uploading model goes processing (the job becomes processing; no event)
 *   0.30 + 0.60 * (i + 1) / n   model i reaches its final state: model-state-changed
 *   1.00  job-state-changed-v2 with the job's derived state (completed or failed)
 * Each change goes through sb_world_set_model_state (photos on completion, the job's state and
 * updated_at follow) under the world lock, with sb_index_invalidate; the events are emitted after
 * the lock is released. Steps sit in one list ordered by (due, order). */
#include "testjobs.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "core/clock.h"
#include "core/mem.h"
#include "core/str.h"
#include "http.h"
#include "routes.h"
#include "server.h"
#include "webhooks.h"

#define MAX_EVENTS 8

enum step_kind { ST_CREATED, ST_PROCESSING, ST_MODEL_DONE, ST_JOB_DONE };

struct step {
    int64_t job_id;
    enum step_kind kind;
    size_t model;
    const char *state; /* static */
    int64_t due;       /* monotonic */
    uint64_t order;
    struct step *next;
};

struct sb_testjobs {
    struct sb_server *s;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    int64_t duration_ms;
    struct step *steps;
    int64_t *running;
    size_t n_running, cap_running;
    uint64_t next_order;
    bool stopping, started;
    pthread_t thread;
};

static int64_t mono_ms(void)
{
    const struct hs_clock *c = hs_clock_system();
    return c->mono_ms(c);
}

static void add_step(struct sb_testjobs *t, int64_t job_id, enum step_kind kind, size_t model,
                     const char *state, int64_t due)
{
    struct step *st = hs_calloc(1, sizeof *st);
    st->job_id = job_id;
    st->kind = kind;
    st->model = model;
    st->state = state;
    st->due = due;
    st->order = ++t->next_order;
    struct step **pp = &t->steps;
    while (*pp && ((*pp)->due < due || ((*pp)->due == due && (*pp)->order < st->order)))
        pp = &(*pp)->next;
    st->next = *pp;
    *pp = st;
}

static ssize_t running_pos(const struct sb_testjobs *t, int64_t job_id)
{
    for (size_t i = 0; i < t->n_running; i++)
        if (t->running[i] == job_id)
            return (ssize_t)i;
    return -1;
}

struct sb_testjobs *sb_testjobs_new(struct sb_server *s, int64_t duration_ms)
{
    struct sb_testjobs *t = hs_calloc(1, sizeof *t);
    t->s = s;
    t->duration_ms = duration_ms;
    pthread_mutex_init(&t->lock, NULL);
    hs_cond_init_monotonic(&t->cond);
    return t;
}

int64_t sb_testjobs_duration_ms(struct sb_testjobs *t)
{
    pthread_mutex_lock(&t->lock);
    int64_t v = t->duration_ms;
    pthread_mutex_unlock(&t->lock);
    return v;
}

void sb_testjobs_set_duration_ms(struct sb_testjobs *t, int64_t ms)
{
    pthread_mutex_lock(&t->lock);
    t->duration_ms = ms;
    pthread_mutex_unlock(&t->lock);
}

int sb_testjobs_run(struct sb_testjobs *t, int64_t job_id, const char *const *final_states,
                    size_t n_models)
{
    pthread_mutex_lock(&t->lock);
    if (running_pos(t, job_id) >= 0) {
        pthread_mutex_unlock(&t->lock);
        return -1;
    }
    if (t->n_running == t->cap_running) {
        t->cap_running = t->cap_running ? t->cap_running * 2 : 16;
        t->running = hs_realloc(t->running, t->cap_running * sizeof *t->running);
    }
    t->running[t->n_running++] = job_id;
    int64_t now = mono_ms(), d = t->duration_ms;
    add_step(t, job_id, ST_CREATED, 0, NULL, now + d * 5 / 100);
    add_step(t, job_id, ST_PROCESSING, 0, NULL, now + d * 15 / 100);
    for (size_t i = 0; i < n_models; i++)
        add_step(t, job_id, ST_MODEL_DONE, i, final_states[i],
                 now + d * 30 / 100 + d * 60 * (int64_t)(i + 1) / (100 * (int64_t)n_models));
    add_step(t, job_id, ST_JOB_DONE, 0, NULL, now + d);
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
    return 0;
}

bool sb_testjobs_running(struct sb_testjobs *t, int64_t job_id)
{
    pthread_mutex_lock(&t->lock);
    bool r = running_pos(t, job_id) >= 0;
    pthread_mutex_unlock(&t->lock);
    return r;
}

/* Runs one step: the world change under its lock, then the events. */
static void apply(struct sb_testjobs *t, const struct step *st)
{
    struct sb_server *s = t->s;
    struct sb_world *w = s->world;
    struct sb_event ev[MAX_EVENTS];
    char *states[MAX_EVENTS] = {0};
    size_t n = 0;
    char *ext = NULL;
    int64_t org = 0;
    int64_t now_ms = sb_now_ms(), now = now_ms / 1000;
    char iso[40]; /* with milliseconds: a 1-second timeline still moves updated_at forward */
    hs_iso8601_format(now, (int)(now_ms % 1000), iso, sizeof iso);
    pthread_mutex_lock(&w->lock);
    struct sb_job *j = sb_world_job(w, st->job_id);
    if (j) {
        org = j->org_id;
        ext = hs_strdup(j->external_identifier);
        switch (st->kind) {
        case ST_CREATED:
            for (size_t i = 0; i < j->n_models && n < MAX_EVENTS; i++, n++) {
                states[n] = hs_strdup(j->models[i].state);
                ev[n] = (struct sb_event){.type = "model-created",
                                          .job_id = j->id,
                                          .model_id = j->models[i].id,
                                          .state = states[n]};
            }
            break;
        case ST_PROCESSING:
            for (size_t i = 0; i < j->n_models; i++)
                if (hs_streq(j->models[i].state, "uploading")) {
                    sb_world_set_model_state(w, j, &j->models[i], "processing", now);
                    sb_world_set_str(&j->models[i].updated_at, iso);
                }
            sb_index_invalidate(s->index);
            break;
        case ST_MODEL_DONE:
            if (st->model < j->n_models) {
                struct sb_model *m = &j->models[st->model];
                sb_world_set_model_state(w, j, m, st->state, now);
                sb_world_set_str(&m->updated_at, iso);
                sb_index_invalidate(s->index);
                states[n] = hs_strdup(st->state);
                ev[n++] = (struct sb_event){.type = "model-state-changed",
                                            .job_id = j->id,
                                            .model_id = m->id,
                                            .state = states[n - 1]};
            }
            break;
        case ST_JOB_DONE:
            /* Drafts fire nothing (hover-api.md 4.1). */
            if (!hs_streq(j->reconstruction_state, "draft")) {
                bool settled = hs_streq(j->reconstruction_state, "completed") ||
                               hs_streq(j->reconstruction_state, "failed");
                states[n] = hs_strdup(j->reconstruction_state);
                ev[n++] = (struct sb_event){.type = "job-state-changed-v2",
                                            .job_id = j->id,
                                            .state = states[n - 1],
                                            .estimated_hours = settled ? 0.0 : 1.39};
            }
            break;
        }
    }
    pthread_mutex_unlock(&w->lock);
    for (size_t i = 0; i < n; i++)
        ev[i].job_external_identifier = ext;
    if (n)
        (void)sb_webhooks_emit(s->hooks, org, ev, n);
    for (size_t i = 0; i < n; i++)
        free(states[i]);
    free(ext);
}

static void *sim_main(void *arg)
{
    struct sb_testjobs *t = arg;
    pthread_mutex_lock(&t->lock);
    while (!t->stopping) {
        struct step *st = t->steps;
        int64_t now = mono_ms();
        if (st && st->due <= now) {
            t->steps = st->next;
            pthread_mutex_unlock(&t->lock);
            apply(t, st);
            pthread_mutex_lock(&t->lock);
            if (st->kind == ST_JOB_DONE) {
                ssize_t pos = running_pos(t, st->job_id);
                if (pos >= 0)
                    t->running[pos] = t->running[--t->n_running];
            }
            free(st);
            continue;
        }
        if (!st) {
            pthread_cond_wait(&t->cond, &t->lock);
        } else {
            struct timespec ts = {.tv_sec = (time_t)(st->due / 1000),
                                  .tv_nsec = (long)(st->due % 1000) * 1000000L};
            (void)pthread_cond_timedwait(&t->cond, &t->lock, &ts);
        }
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

int sb_testjobs_start(struct sb_testjobs *t, char *err, size_t errn)
{
    if (pthread_create(&t->thread, NULL, sim_main, t) != 0) {
        (void)snprintf(err, errn, "cannot start the test job thread");
        return -1;
    }
    t->started = true;
    return 0;
}

void sb_testjobs_stop(struct sb_testjobs *t)
{
    if (!t || !t->started)
        return;
    pthread_mutex_lock(&t->lock);
    t->stopping = true;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
    pthread_join(t->thread, NULL);
    t->started = false;
}

void sb_testjobs_free(struct sb_testjobs *t)
{
    if (!t)
        return;
    sb_testjobs_stop(t);
    while (t->steps) {
        struct step *st = t->steps;
        t->steps = st->next;
        free(st);
    }
    free(t->running);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->lock);
    free(t);
}
