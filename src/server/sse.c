/* sse.c: GET /api/syncs/{id}/events, a sync's progress as Server-Sent Events.
 *
 * The stream is a libmicrohttpd content reader. When the sync has changed it writes
 * `event: progress` with the same object as GET /api/syncs/{id}, and `event: done` once the sync
 * is over (then the stream ends); a comment line keeps idle streams alive through proxies. When
 * there is nothing to say the reader does not block a libmicrohttpd thread: it suspends its
 * connection ("parks" it) and returns 0; one watcher thread resumes the parked streams whose
 * sync changed or whose keep-alive is due. The syncs live in the store, and the process writing
 * a sync's progress may be another one: the watcher reads the parked streams' versions at once
 * when this process's workers wrote some progress (the sync queue's listener), and every
 * POLL_MS otherwise. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "server/internal.h"

#define KEEPALIVE_MS 15000
#define WATCH_MS     100
#define POLL_MS      250
#define STREAM_BUF   (2u * 1024u * 1024u)

struct sse_stream {
    struct hs_server *srv;
    struct MHD_Connection *conn;
    char id[40];
    int64_t version; /* last version sent; -1 before the first event */
    struct hs_buf out;
    size_t pos;
    bool ended;
    int64_t last_emit_ms;
    /* parking, under the hub's lock */
    int64_t wake_at_ms;
    struct sse_stream *next;
};

struct sse_hub {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct sse_stream *parked;
    bool stopping;
    bool dirty;           /* this process's workers wrote progress since the last look */
    int64_t last_poll_ms; /* the last look at the store */
    atomic_bool started;  /* the watcher runs (read by request threads) */
    pthread_t watcher;
    atomic_llong streams;
};

/* The sync queue's listener: called by a worker thread, under the queue's lock. */
static void local_progress(void *ctx)
{
    struct sse_hub *h = ctx;
    pthread_mutex_lock(&h->lock);
    h->dirty = true;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

static void *watcher_main(void *arg)
{
    struct hs_server *s = arg;
    struct sse_hub *h = s->sse;
    pthread_mutex_lock(&h->lock);
    while (!h->stopping) {
        int64_t now = hs_server_mono_ms(s);
        bool look = h->dirty || now - h->last_poll_ms >= POLL_MS;
        if (look) {
            h->dirty = false;
            h->last_poll_ms = now;
        }
        struct sse_stream **pp = &h->parked;
        while (*pp) {
            struct sse_stream *e = *pp;
            int64_t v = e->version;
            if (look && hs_syncq_version(s->syncq, e->id, &v, NULL) != HS_OK)
                v = -2; /* gone: the stream says so and ends */
            if (v != e->version || now >= e->wake_at_ms) {
                *pp = e->next;
                e->next = NULL;
                MHD_resume_connection(e->conn);
            } else {
                pp = &e->next;
            }
        }
        if (h->dirty)
            continue;
        struct timespec ts = hs_deadline_after(CLOCK_MONOTONIC, WATCH_MS);
        (void)pthread_cond_timedwait(&h->cond, &h->lock, &ts);
    }
    /* Stopping: every parked connection must be resumed before libmicrohttpd stops. */
    while (h->parked) {
        struct sse_stream *e = h->parked;
        h->parked = e->next;
        e->next = NULL;
        MHD_resume_connection(e->conn);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

int hs_sse_start(struct hs_server *s, struct hs_error *err)
{
    struct sse_hub *h = hs_calloc(1, sizeof *h);
    pthread_mutex_init(&h->lock, NULL);
    hs_cond_init_monotonic(&h->cond);
    atomic_init(&h->streams, 0);
    atomic_init(&h->started, false);
    s->sse = h;
    if (!s->syncq)
        return HS_OK; /* no queue, no streams */
    if (pthread_create(&h->watcher, NULL, watcher_main, s) != 0)
        return hs_fail(err, HS_ERR_INTERNAL, "cannot start the progress stream watcher");
    atomic_store(&h->started, true);
    hs_syncq_set_listener(s->syncq, local_progress, h);
    return HS_OK;
}

void hs_sse_stop(struct hs_server *s)
{
    struct sse_hub *h = s->sse;
    if (!h)
        return;
    if (s->syncq)
        hs_syncq_set_listener(s->syncq, NULL, NULL); /* no call under way once it returns */
    pthread_mutex_lock(&h->lock);
    h->stopping = true;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
    if (atomic_exchange(&h->started, false))
        pthread_join(h->watcher, NULL);
}

void hs_sse_free(struct hs_server *s)
{
    struct sse_hub *h = s->sse;
    if (!h)
        return;
    hs_sse_stop(s);
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->cond);
    free(h);
    s->sse = NULL;
}

int64_t hs_sse_count(struct hs_server *s)
{
    return s->sse ? atomic_load(&s->sse->streams) : 0;
}

/* Suspends the stream's connection until its sync changes or its keep-alive is due; false when
 * the service is stopping (the stream should end). */
static bool park(struct sse_stream *e)
{
    struct sse_hub *h = e->srv->sse;
    pthread_mutex_lock(&h->lock);
    if (h->stopping || !atomic_load(&h->started)) {
        pthread_mutex_unlock(&h->lock);
        return false;
    }
    e->wake_at_ms = e->last_emit_ms + KEEPALIVE_MS;
    MHD_suspend_connection(e->conn);
    e->next = h->parked;
    h->parked = e;
    pthread_mutex_unlock(&h->lock);
    return true;
}

static bool is_final(const json_t *st)
{
    const char *status = json_string_value(json_object_get(st, "status"));
    return status && (strcmp(status, "done") == 0 || strcmp(status, "failed") == 0);
}

/* Appends what there is to say now; false when nothing. */
static bool fill(struct sse_stream *e)
{
    struct hs_server *s = e->srv;
    json_t *st = NULL;
    int64_t v = 0;
    int64_t now = hs_server_mono_ms(s);
    if (hs_syncq_get(s->syncq, e->id, &st, &v, NULL) != HS_OK) {
        /* Forgotten (finished long ago): nothing more will come. */
        e->ended = true;
        return true;
    }
    bool said = false;
    if (v != e->version) {
        e->version = v;
        char *text = hs_json_dump(st);
        int rc = hs_buf_appendf(&e->out, "event: progress\ndata: %s\n\n", text);
        if (rc == HS_OK && is_final(st)) {
            rc = hs_buf_appendf(&e->out, "event: done\ndata: %s\n\n", text);
            e->ended = true;
        }
        if (rc != HS_OK)
            e->ended = true; /* an absurdly large state: end rather than send half */
        free(text);
        said = true;
    } else if (now - e->last_emit_ms >= KEEPALIVE_MS) {
        (void)hs_buf_appends(&e->out, ": keep-alive\n\n");
        said = true;
    }
    json_decref(st);
    if (said)
        e->last_emit_ms = now;
    return said;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct sse_stream *e = cls;
    for (;;) {
        if (e->pos < e->out.len) {
            size_t n = e->out.len - e->pos;
            if (n > max)
                n = max;
            memcpy(buf, e->out.data + e->pos, n);
            e->pos += n;
            if (e->pos == e->out.len) {
                hs_buf_reset(&e->out);
                e->pos = 0;
            }
            return (ssize_t)n;
        }
        if (e->ended)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (fill(e))
            continue;
        if (!park(e)) {
            e->ended = true;
            continue;
        }
        return 0; /* parked: called again once resumed */
    }
}

static void sse_free(void *cls)
{
    struct sse_stream *e = cls;
    /* Never parked here: a parked stream's connection is suspended, so it is not being closed. */
    atomic_fetch_sub(&e->srv->sse->streams, 1);
    hs_buf_free(&e->out);
    free(e);
}

static bool sync_id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= 40)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'z') ||
              (id[i] >= 'A' && id[i] <= 'Z') || id[i] == '-' || id[i] == '_'))
            return false;
    return true;
}

int hs_sync_state(struct hs_req *q, const char *id, json_t **st, int64_t *version,
                  struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    if (!s->syncq) {
        hs_resp_error(r, 503, "internal", "the sync queue is not running");
        return -1;
    }
    if (!sync_id_ok(id)) {
        hs_resp_error(r, 404, "not_found", "no sync %.60s", id);
        return -1;
    }
    json_t *doc = NULL;
    struct hs_error err = {0};
    int rc = hs_syncq_get(s->syncq, id, &doc, version, &err);
    /* Another tenant's sync is as unknown as one that never was. */
    if (rc == HS_ERR_NOT_FOUND ||
        (rc == HS_OK &&
         !hs_req_may_use(q, json_string_value(json_object_get(doc, "connection"))))) {
        json_decref(doc);
        hs_resp_error(r, 404, "not_found", "no sync %s (unknown, or finished too long ago)", id);
        return -1;
    }
    if (rc) {
        hs_resp_fail(r, rc, &err, "reading the sync");
        return -1;
    }
    *st = doc;
    return 0;
}

/* GET /api/syncs/{id} */
void hs_route_sync_get(struct hs_req *q, struct hs_resp *r)
{
    json_t *st = NULL;
    int64_t v = 0;
    if (hs_sync_state(q, q->params[0], &st, &v, r) == 0)
        hs_resp_json(r, 200, st);
}

/* GET /api/syncs/{id}/events (a ticket may stand for the caller: an EventSource sends no
 * header) */
void hs_route_sync_events(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    if (!s->syncq || !s->sse || !atomic_load(&s->sse->started)) {
        hs_resp_error(r, 503, "internal", "the sync queue is not running");
        return;
    }
    const char *id = q->params[0];
    json_t *st = NULL;
    int64_t v = 0;
    if (hs_sync_state(q, id, &st, &v, r) != 0)
        return;
    json_decref(st);
    struct sse_stream *e = hs_calloc(1, sizeof *e);
    e->srv = s;
    e->conn = q->conn;
    memcpy(e->id, id, strlen(id) + 1);
    e->version = -1;
    e->last_emit_ms = hs_server_mono_ms(s);
    hs_buf_init(&e->out, STREAM_BUF);
    /* How long a browser's EventSource waits before reconnecting after a drop. */
    (void)hs_buf_appends(&e->out, "retry: 3000\n\n");
    atomic_fetch_add(&s->sse->streams, 1);
    hs_resp_set(r, 200, "text/event-stream; charset=utf-8", NULL, 0);
    hs_resp_header(r, "Cache-Control", "no-store");
    hs_resp_header(r, "X-Accel-Buffering", "no");
    r->reader = sse_read;
    r->reader_cls = e;
    r->reader_free = sse_free;
}
