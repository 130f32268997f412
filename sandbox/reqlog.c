/* reqlog.c: request log ring and file; see reqlog.h. Entries are kept already serialised: the
 * admin route only concatenates them. */
#include "reqlog.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/mem.h"
#include "http.h"

/* A dump is capped so that a runaway log cannot take the process down. */
#define DUMP_MAX (512u * 1024u * 1024u)

struct sb_reqlog {
    pthread_mutex_t lock;
    FILE *file;
    char **ring;
    int64_t *seqs;
    size_t cap, head, used; /* head: oldest entry */
    int64_t last_seq;
};

struct sb_reqlog *sb_reqlog_new(const char *path, size_t ring_cap)
{
    FILE *f = NULL;
    if (path) {
        f = fopen(path, "a");
        if (!f)
            return NULL;
    }
    struct sb_reqlog *l = hs_calloc(1, sizeof *l);
    pthread_mutex_init(&l->lock, NULL);
    l->file = f;
    l->cap = ring_cap ? ring_cap : 1;
    l->ring = hs_calloc(l->cap, sizeof *l->ring);
    l->seqs = hs_calloc(l->cap, sizeof *l->seqs);
    return l;
}

static void ring_clear(struct sb_reqlog *l)
{
    for (size_t i = 0; i < l->used; i++) {
        size_t k = (l->head + i) % l->cap;
        free(l->ring[k]);
        l->ring[k] = NULL;
    }
    l->head = l->used = 0;
}

void sb_reqlog_free(struct sb_reqlog *l)
{
    if (!l)
        return;
    ring_clear(l);
    if (l->file)
        fclose(l->file);
    free(l->ring);
    free(l->seqs);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

int64_t sb_reqlog_add(struct sb_reqlog *l, const struct sb_reqlog_entry *e, int64_t ts_ms)
{
    /* Paths, queries and client ids come from the network: hs_json_text never fails on them. */
    json_t *o = json_pack(
        "{sI sI ss so so so si sb so sI ss sb}", "seq", (json_int_t)0, "ts_ms", (json_int_t)ts_ms,
        "listener", e->listener, "method", hs_json_text(e->method ? e->method : ""), "path",
        hs_json_text(e->path ? e->path : ""), "query", hs_json_text(e->query ? e->query : ""),
        "status", e->status, "auth", e->auth, "client_id", hs_json_text(e->client_id), "bytes",
        (json_int_t)e->bytes, "fault", e->fault ? e->fault : "none", "if_none_match",
        e->if_none_match);
    if (e->extra)
        (void)json_object_update(o, e->extra);
    pthread_mutex_lock(&l->lock);
    int64_t seq = ++l->last_seq;
    json_object_set_new(o, "seq", json_integer(seq));
    char *line = hs_json_dump(o);
    if (l->file) {
        fputs(line, l->file);
        fputc('\n', l->file);
        fflush(l->file);
    }
    size_t slot;
    if (l->used == l->cap) {
        slot = l->head;
        free(l->ring[slot]);
        l->head = (l->head + 1) % l->cap;
    } else {
        slot = (l->head + l->used) % l->cap;
        l->used++;
    }
    l->ring[slot] = line;
    l->seqs[slot] = seq;
    pthread_mutex_unlock(&l->lock);
    json_decref(o);
    return seq;
}

char *sb_reqlog_dump(struct sb_reqlog *l, int64_t since, size_t limit, size_t *len)
{
    return sb_reqlog_dump_named(l, "requests", since, limit, len);
}

char *sb_reqlog_dump_named(struct sb_reqlog *l, const char *key, int64_t since, size_t limit,
                           size_t *len)
{
    struct hs_buf b;
    hs_buf_init(&b, DUMP_MAX);
    (void)hs_buf_appendf(&b, "{\"%s\":[", key);
    pthread_mutex_lock(&l->lock);
    /* Entries are in seq order: skip to the first one after `since` by binary search. */
    size_t lo = 0, hi = l->used;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->seqs[(l->head + mid) % l->cap] <= since)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t n = 0;
    for (size_t i = lo; i < l->used && (limit == 0 || n < limit); i++, n++) {
        size_t k = (l->head + i) % l->cap;
        size_t need = strlen(l->ring[k]) + 1;
        if (b.len + need > DUMP_MAX)
            break; /* over the cap: the caller pages with since= */
        if (n)
            (void)hs_buf_append(&b, ",", 1);
        (void)hs_buf_appends(&b, l->ring[k]);
    }
    int64_t last = l->last_seq;
    pthread_mutex_unlock(&l->lock);
    /* The closing part always fits: the cap leaves room beyond any entry boundary. */
    b.max += 64;
    (void)hs_buf_appendf(&b, "],\"last_seq\":%lld}", (long long)last);
    return hs_buf_take(&b, len);
}

void sb_reqlog_clear(struct sb_reqlog *l)
{
    pthread_mutex_lock(&l->lock);
    ring_clear(l);
    pthread_mutex_unlock(&l->lock);
}
