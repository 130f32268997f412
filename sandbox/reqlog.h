/* reqlog.h: the sandbox's request log: one JSON line per request on either listener, appended to
 * a file (flushed per line) and kept in a bounded in-memory ring for GET /__sandbox/requests, so
 * tests can assert exactly which requests a client sent. */
#ifndef HS_SANDBOX_REQLOG_H
#define HS_SANDBOX_REQLOG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SB_REQLOG_RING 100000

struct sb_reqlog_entry {
    const char *listener; /* "api", "storage" or "webhook" (an outgoing delivery attempt) */
    const char *method, *path, *query;
    int status;            /* 0 when the connection was dropped */
    bool auth;             /* an Authorization header was present */
    const char *client_id; /* NULL: unknown */
    size_t bytes;          /* body bytes sent */
    const char *fault;     /* none, status, drop, truncate, malformed, latency */
    bool if_none_match;
    json_t *extra; /* borrowed, may be NULL: keys appended after the ones above (webhooks) */
};

struct sb_reqlog;

/* path may be NULL (memory only). Returns NULL if the file cannot be opened. */
struct sb_reqlog *sb_reqlog_new(const char *path, size_t ring_cap);
void sb_reqlog_free(struct sb_reqlog *l);
/* Records a request and returns its sequence number (from 1, never reused, even after a clear). */
int64_t sb_reqlog_add(struct sb_reqlog *l, const struct sb_reqlog_entry *e, int64_t ts_ms);
/* {"requests":[entries with seq > since, oldest first, at most `limit` (0: all)],"last_seq":N}.
 * Caller frees. */
char *sb_reqlog_dump(struct sb_reqlog *l, int64_t since, size_t limit, size_t *len);
/* The same with another name for the array ("deliveries"). */
char *sb_reqlog_dump_named(struct sb_reqlog *l, const char *key, int64_t since, size_t limit,
                           size_t *len);
/* Forgets the in-memory entries (the file is kept). */
void sb_reqlog_clear(struct sb_reqlog *l);

#endif
