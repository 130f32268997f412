/* blobstream.c: a stored file of object storage streamed to a client (GET /files/{sha256},
 * /api/images/{id}; see hs_resp_stored_file).
 *
 * The answer is a libmicrohttpd content reader over ranges of STREAM_CHUNK bytes: each range is
 * one request to the storage, checked for its length and retried on its own, so memory stays at
 * two ranges per stream whatever the file's size. A range is never fetched on a libmicrohttpd
 * thread: the reader suspends its connection ("parks" it, as sse.c does) and queues the stream;
 * one of FETCHERS threads fetches the range into the stream's spare buffer and resumes the
 * connection, whose reader is then called again at the same position. A slow storage so holds
 * up its own downloads, not the service's other requests.
 *
 * Ownership: a stream is referenced by its response (until libmicrohttpd frees it) and, while a
 * range is queued or fetched, by the fetchers; the last to let go frees it. While parked, the
 * connection is suspended, so nothing but its fetcher touches the stream's buffers. Stopping
 * resumes every parked connection (libmicrohttpd requires it before it stops) with the stream
 * marked failed; a fetch under way then only drops its result. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "server/internal.h"

#define STREAM_CHUNK (1024 * 1024)
#define FETCHERS     4

struct blob_stream {
    struct blob_hub *hub;
    struct MHD_Connection *conn;
    const struct hs_blobs *b;
    char *name;
    char sha256[65];
    int64_t size;
    char *buf; /* served: bytes [at, at + len) of the file */
    int64_t at;
    size_t len;
    char *spare; /* fetched into, then swapped with buf */
    int64_t want;
    /* under the hub's lock */
    int refs;
    bool failed;
    bool dropped;             /* stopping resumed the connection during its fetch */
    struct blob_stream *next; /* in the queue or the list of fetches under way */
};

struct blob_hub {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct blob_stream *queue, **queue_end; /* ranges to fetch, oldest first */
    struct blob_stream *fetching;           /* ranges being fetched */
    bool stopping;
    pthread_t threads[FETCHERS];
    int started;
};

static void stream_free(struct blob_stream *st)
{
    free(st->name);
    free(st->buf);
    free(st->spare);
    free(st);
}

/* Drops a reference, under the hub's lock. */
static void stream_unref(struct blob_stream *st)
{
    if (--st->refs == 0)
        stream_free(st);
}

static void unlink_fetching(struct blob_hub *h, struct blob_stream *st)
{
    for (struct blob_stream **pp = &h->fetching; *pp; pp = &(*pp)->next)
        if (*pp == st) {
            *pp = st->next;
            break;
        }
    st->next = NULL;
}

static void *fetcher_main(void *arg)
{
    struct blob_hub *h = arg;
    pthread_mutex_lock(&h->lock);
    for (;;) {
        while (!h->queue && !h->stopping)
            pthread_cond_wait(&h->cond, &h->lock);
        if (!h->queue)
            break;
        struct blob_stream *st = h->queue;
        h->queue = st->next;
        if (!h->queue)
            h->queue_end = &h->queue;
        st->next = h->fetching;
        h->fetching = st;
        pthread_mutex_unlock(&h->lock);

        int64_t left = st->size - st->want;
        size_t n = left < STREAM_CHUNK ? (size_t)left : STREAM_CHUNK;
        struct hs_error err = {0};
        int rc = hs_blobs_read(st->b, st->name, st->want, st->spare, n, &err);
        if (rc)
            /* The status went out already: closing the connection before the announced
             * Content-Length is all that tells the client. */
            hs_warn("http msg=\"stored file stream failed\" sha256=%s at=%lld error=\"%s\"",
                    st->sha256, (long long)st->want, err.msg);

        pthread_mutex_lock(&h->lock);
        unlink_fetching(h, st);
        if (!st->dropped) {
            if (rc) {
                st->failed = true;
            } else {
                char *t = st->buf;
                st->buf = st->spare;
                st->spare = t;
                st->at = st->want;
                st->len = n;
            }
            MHD_resume_connection(st->conn);
        }
        stream_unref(st);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

int hs_blobstream_start(struct hs_server *s, struct hs_error *err)
{
    if (hs_blobs_is_local(s->blobs))
        return HS_OK; /* local files go out by the kernel (sendfile) */
    struct blob_hub *h = hs_calloc(1, sizeof *h);
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->cond, NULL);
    h->queue_end = &h->queue;
    s->blobhub = h;
    for (; h->started < FETCHERS; h->started++)
        if (pthread_create(&h->threads[h->started], NULL, fetcher_main, h) != 0)
            return hs_fail(err, HS_ERR_INTERNAL, "cannot start the file stream threads");
    return HS_OK;
}

void hs_blobstream_stop(struct hs_server *s)
{
    struct blob_hub *h = s->blobhub;
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    h->stopping = true;
    while (h->queue) {
        struct blob_stream *st = h->queue;
        h->queue = st->next;
        st->next = NULL;
        st->failed = true;
        MHD_resume_connection(st->conn);
        stream_unref(st);
    }
    h->queue_end = &h->queue;
    for (struct blob_stream *st = h->fetching; st; st = st->next) {
        st->failed = true;
        st->dropped = true;
        MHD_resume_connection(st->conn);
    }
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

void hs_blobstream_free(struct hs_server *s)
{
    struct blob_hub *h = s->blobhub;
    if (!h)
        return;
    hs_blobstream_stop(s);
    /* A fetch under way ends with its request (bounded by the storage client's timeout). */
    for (int i = 0; i < h->started; i++)
        pthread_join(h->threads[i], NULL);
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->cond);
    free(h);
    s->blobhub = NULL;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    struct blob_stream *st = cls;
    struct blob_hub *h = st->hub;
    pthread_mutex_lock(&h->lock);
    bool failed = st->failed;
    pthread_mutex_unlock(&h->lock);
    if (failed)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if ((int64_t)pos >= st->size)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if ((int64_t)pos >= st->at && (int64_t)pos < st->at + (int64_t)st->len) {
        size_t off = (size_t)((int64_t)pos - st->at);
        size_t n = st->len - off < max ? st->len - off : max;
        memcpy(out, st->buf + off, n);
        return (ssize_t)n;
    }
    pthread_mutex_lock(&h->lock);
    if (h->stopping) {
        st->failed = true;
        pthread_mutex_unlock(&h->lock);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    st->want = (int64_t)pos;
    st->refs++;
    st->next = NULL;
    MHD_suspend_connection(st->conn);
    *h->queue_end = st;
    h->queue_end = &st->next;
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->lock);
    return 0; /* parked: called again at pos once resumed */
}

static void stream_bind(void *cls, struct MHD_Connection *conn)
{
    struct blob_stream *st = cls;
    st->conn = conn;
}

static void stream_release(void *cls)
{
    struct blob_stream *st = cls;
    struct blob_hub *h = st->hub;
    pthread_mutex_lock(&h->lock);
    stream_unref(st);
    pthread_mutex_unlock(&h->lock);
}

int hs_blobstream_response(const struct hs_req *q, struct hs_resp *r, const struct hs_blobs *b,
                           const struct hs_artifact_row *a, int64_t size)
{
    struct blob_hub *h = q->srv ? q->srv->blobhub : NULL;
    if (!h)
        return -1;
    struct blob_stream *st = hs_calloc(1, sizeof *st);
    st->hub = h;
    st->b = b;
    st->name = hs_strdup(a->path);
    hs_strlcpy(st->sha256, a->sha256 ? a->sha256 : "", sizeof st->sha256);
    st->size = size;
    st->buf = hs_malloc(STREAM_CHUNK);
    st->spare = hs_malloc(STREAM_CHUNK);
    st->refs = 1;
    r->reader = stream_read;
    r->reader_cls = st;
    r->reader_free = stream_release;
    r->reader_bind = stream_bind;
    r->reader_size = (uint64_t)size;
    r->reader_block = 64 * 1024;
    return 0;
}
