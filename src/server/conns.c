/* conns.c: the service's own record of its open connections, for the header deadline.
 *
 * libmicrohttpd 0.9.75 has only an idle timeout, reset by every byte: a client that sends a
 * header line every few seconds holds its connection (and a slot of the connection limit) for
 * as long as it likes. So each connection is noted when it opens (MHD_OPTION_NOTIFY_CONNECTION)
 * with a deadline for its request's headers; the access handler's first call (headers complete)
 * clears it; the end of a request sets the next one (the keep-alive idle time plus the header
 * time, as the first byte of the next request cannot be seen). The server's timer thread calls
 * hs_conns_reap, which shuts down the socket of every connection past its deadline: libmicrohttpd
 * then reads the end of the stream and closes the connection itself.
 *
 * When the connections fill three quarters of the limit, any connection that has been waiting
 * for its headers for more than a second goes first: a flood cannot keep new clients out for
 * the whole deadline.
 *
 * libmicrohttpd calls the CLOSED notification before it closes the socket, and the entry leaves
 * the table there under the table's lock: a socket is only shut down while it is still the
 * connection's. */
#include <stdlib.h>
#include <sys/socket.h>

#include "core/log.h"
#include "core/mem.h"
#include "server/internal.h"

#define PRESSURE_MS 1000

struct conn_entry {
    struct hs_conns *t;
    int fd;
    int64_t since_ms;    /* when the header clock started */
    int64_t deadline_ms; /* 0: headers complete, the request is being handled */
    struct conn_entry *prev, *next;
};

struct hs_conns {
    pthread_mutex_t lock;
    const struct hs_clock *clock;
    int64_t header_ms, idle_ms;
    size_t limit, n;
    struct conn_entry *head;
    int64_t reaped;
};

struct hs_conns *hs_conns_new(const struct hs_clock *clock, int64_t header_ms, int64_t idle_ms,
                              size_t limit)
{
    struct hs_conns *t = hs_calloc(1, sizeof *t);
    pthread_mutex_init(&t->lock, NULL);
    t->clock = clock;
    t->header_ms = header_ms;
    t->idle_ms = idle_ms;
    t->limit = limit;
    return t;
}

void hs_conns_free(struct hs_conns *t)
{
    if (!t)
        return;
    /* libmicrohttpd has closed every connection by now; anything left is only memory. */
    while (t->head) {
        struct conn_entry *e = t->head;
        t->head = e->next;
        free(e);
    }
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static int64_t now_ms(const struct hs_conns *t)
{
    return t->clock->mono_ms(t->clock);
}

void hs_conns_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                     enum MHD_ConnectionNotificationCode code)
{
    struct hs_conns *t = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct conn_entry *e = hs_calloc(1, sizeof *e);
        e->t = t;
        e->fd = ci ? ci->connect_fd : -1;
        pthread_mutex_lock(&t->lock);
        e->since_ms = now_ms(t);
        e->deadline_ms = e->since_ms + t->header_ms;
        e->next = t->head;
        if (t->head)
            t->head->prev = e;
        t->head = e;
        t->n++;
        pthread_mutex_unlock(&t->lock);
        *socket_context = e;
        return;
    }
    struct conn_entry *e = *socket_context;
    if (!e)
        return;
    pthread_mutex_lock(&t->lock);
    if (e->prev)
        e->prev->next = e->next;
    else
        t->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    t->n--;
    pthread_mutex_unlock(&t->lock);
    *socket_context = NULL;
    free(e);
}

static struct conn_entry *entry_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

void hs_conns_headers_done(struct MHD_Connection *conn)
{
    struct conn_entry *e = entry_of(conn);
    if (!e)
        return;
    pthread_mutex_lock(&e->t->lock);
    e->deadline_ms = 0;
    pthread_mutex_unlock(&e->t->lock);
}

void hs_conns_request_done(struct MHD_Connection *conn)
{
    struct conn_entry *e = entry_of(conn);
    if (!e)
        return;
    struct hs_conns *t = e->t;
    pthread_mutex_lock(&t->lock);
    e->since_ms = now_ms(t);
    e->deadline_ms = e->since_ms + t->idle_ms + t->header_ms;
    pthread_mutex_unlock(&t->lock);
}

size_t hs_conns_reap(struct hs_conns *t)
{
    size_t shut = 0;
    pthread_mutex_lock(&t->lock);
    int64_t now = now_ms(t);
    bool pressure = t->n * 4 > t->limit * 3;
    for (struct conn_entry *e = t->head; e; e = e->next) {
        if (!e->deadline_ms || e->fd < 0)
            continue;
        if (now < e->deadline_ms && !(pressure && now - e->since_ms > PRESSURE_MS))
            continue;
        (void)shutdown(e->fd, SHUT_RDWR);
        e->deadline_ms = 0; /* once: libmicrohttpd closes it now */
        shut++;
    }
    t->reaped += (int64_t)shut;
    size_t n = t->n;
    pthread_mutex_unlock(&t->lock);
    if (shut)
        hs_info("http msg=\"closed connections whose headers were late\" closed=%zu open=%zu "
                "pressure=%d",
                shut, n, pressure);
    return shut;
}

void hs_conns_counts(struct hs_conns *t, int64_t *open, int64_t *reaped)
{
    pthread_mutex_lock(&t->lock);
    *open = (int64_t)t->n;
    *reaped = t->reaped;
    pthread_mutex_unlock(&t->lock);
}
