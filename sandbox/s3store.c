/* s3store.c: buckets, objects and multipart uploads in memory or under a directory; see
 * s3store.h. */
#include "s3store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/json.h"
#include "core/mem.h"
#include "core/str.h"

#define HEADER_MAX (8 * 1024) /* an object file's JSON header line */

struct obj {
    char *key;
    struct sb_s3_meta m;
    char *data;      /* memory mode */
    size_t data_off; /* directory mode: where the bytes start in the file */
};

struct bucket {
    char *name;
    int64_t created;
    struct obj *objs; /* sorted by key, bytewise */
    size_t n, cap;
};

struct part {
    int number;
    char *data;
    size_t len;
    unsigned char md5[16];
};

struct upload {
    char id[SB_S3_UPLOAD_ID_SZ];
    char *bucket, *key;
    char content_type[128];
    int64_t created;
    struct part *parts; /* sorted by number */
    size_t n, cap;
    struct upload *next;
};

struct sb_s3store {
    pthread_mutex_t lock;
    struct sb_s3_config cfg;
    char *dir;
    struct bucket *buckets; /* sorted by name */
    size_t n_buckets, cap_buckets;
    struct upload *uploads;
    uint64_t used;
};

/* ---- helpers ---- */

static void md5_of(const void *p, size_t n, unsigned char out[16])
{
    unsigned int len = 0;
    EVP_Digest(p, n, out, &len, EVP_md5(), NULL);
}

static void quoted_hex(const unsigned char md5[16], const char *suffix, char out[64])
{
    char hex[33];
    hs_hex(md5, 16, hex);
    (void)snprintf(out, 64, "\"%s%s\"", hex, suffix);
}

static void fill_detail(struct sb_s3_detail *d, int part, const char *msg)
{
    if (!d)
        return;
    d->part = part;
    (void)hs_strlcpy(d->msg, msg, sizeof d->msg);
}

/* Whether `add` more bytes fit once `freed` bytes are released; fills d when not. */
static bool fits(struct sb_s3store *s, uint64_t add, uint64_t freed, struct sb_s3_detail *d)
{
    uint64_t after = s->used - freed + add;
    if (after <= s->cfg.capacity)
        return true;
    if (d) {
        d->used = s->used;
        d->needed = add;
        (void)snprintf(d->msg, sizeof d->msg,
                       "The sandbox's object store is full: %llu of %llu bytes are used and this "
                       "upload needs %llu (--s3-capacity)",
                       (unsigned long long)s->used, (unsigned long long)s->cfg.capacity,
                       (unsigned long long)add);
    }
    return false;
}

static struct bucket *find_bucket(struct sb_s3store *s, const char *name)
{
    for (size_t i = 0; i < s->n_buckets; i++)
        if (!strcmp(s->buckets[i].name, name))
            return &s->buckets[i];
    return NULL;
}

/* The index of key in b, or -1 with the insertion point in *pos. */
static ssize_t find_obj(const struct bucket *b, const char *key, size_t *pos)
{
    size_t lo = 0, hi = b->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(b->objs[mid].key, key);
        if (c == 0)
            return (ssize_t)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (pos)
        *pos = lo;
    return -1;
}

static char *object_path(const struct sb_s3store *s, const char *bucket, const char *key)
{
    unsigned char md[32];
    unsigned int len = 0;
    char hex[65];
    EVP_Digest(key, strlen(key), md, &len, EVP_sha256(), NULL);
    hs_hex(md, 32, hex);
    return hs_aprintf("%s/%s/%s", s->dir, bucket, hex);
}

static void obj_clear(struct obj *o)
{
    free(o->key);
    free(o->data);
}

/* ---- files ---- */

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes header + data to path through a temporary file, fsynced and renamed, then fsyncs the
 * directory: once this returns 0 the object survives a crash. */
static int write_object_file(const char *path, const char *header, size_t hlen, const char *data,
                             size_t len)
{
    char *tmp = hs_aprintf("%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = -1;
    if (fd >= 0) {
        bool ok = write_all(fd, header, hlen) == 0 && write_all(fd, data, len) == 0;
        ok = fsync(fd) == 0 && ok;
        ok = close(fd) == 0 && ok;
        if (ok && rename(tmp, path) == 0) {
            char *slash = strrchr(tmp, '/');
            *slash = '\0';
            rc = fsync_dir(tmp);
        } else {
            (void)unlink(tmp);
        }
    }
    free(tmp);
    return rc;
}

static char *header_line(const char *key, const struct sb_s3_meta *m, size_t *len)
{
    json_t *j =
        json_pack("{ss ss sI ss sI}", "key", key, "etag", m->etag, "mtime", (json_int_t)m->mtime,
                  "content_type", m->content_type, "size", (json_int_t)m->size);
    char *s = j ? hs_json_dump(j) : NULL;
    json_decref(j);
    if (!s)
        return NULL;
    char *line = hs_aprintf("%s\n", s);
    free(s);
    *len = strlen(line);
    return line;
}

static int read_at(const char *path, uint64_t off, size_t n, char *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, out + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    return got == n ? 0 : -1;
}

/* ---- buckets ---- */

static struct bucket *add_bucket(struct sb_s3store *s, const char *name, int64_t created)
{
    if (s->n_buckets == s->cap_buckets) {
        s->cap_buckets = s->cap_buckets ? s->cap_buckets * 2 : 8;
        s->buckets = hs_realloc(s->buckets, s->cap_buckets * sizeof *s->buckets);
    }
    size_t i = s->n_buckets;
    while (i > 0 && strcmp(s->buckets[i - 1].name, name) > 0) {
        s->buckets[i] = s->buckets[i - 1];
        i--;
    }
    s->buckets[i] = (struct bucket){.name = hs_strdup(name), .created = created};
    s->n_buckets++;
    return &s->buckets[i];
}

int sb_s3store_create_bucket(struct sb_s3store *s, const char *bucket, int64_t now)
{
    int rc = SB_S3_OK;
    pthread_mutex_lock(&s->lock);
    if (find_bucket(s, bucket)) {
        rc = SB_S3_BUCKET_EXISTS;
    } else if (s->dir) {
        char *path = hs_aprintf("%s/%s", s->dir, bucket);
        if ((mkdir(path, 0700) != 0 && errno != EEXIST) || fsync_dir(s->dir) != 0)
            rc = SB_S3_IO;
        free(path);
    }
    if (rc == SB_S3_OK)
        (void)add_bucket(s, bucket, now);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static bool bucket_has_uploads(struct sb_s3store *s, const char *bucket)
{
    for (struct upload *u = s->uploads; u; u = u->next)
        if (!strcmp(u->bucket, bucket))
            return true;
    return false;
}

int sb_s3store_delete_bucket(struct sb_s3store *s, const char *bucket)
{
    int rc = SB_S3_OK;
    pthread_mutex_lock(&s->lock);
    struct bucket *b = find_bucket(s, bucket);
    if (!b) {
        rc = SB_S3_NO_SUCH_BUCKET;
    } else if (b->n > 0 || bucket_has_uploads(s, bucket)) {
        rc = SB_S3_BUCKET_NOT_EMPTY;
    } else {
        if (s->dir) {
            char *path = hs_aprintf("%s/%s", s->dir, bucket);
            if (rmdir(path) != 0 && errno != ENOENT)
                rc = SB_S3_IO;
            free(path);
        }
        if (rc == SB_S3_OK) {
            free(b->name);
            free(b->objs);
            size_t i = (size_t)(b - s->buckets);
            memmove(b, b + 1, (s->n_buckets - i - 1) * sizeof *b);
            s->n_buckets--;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

bool sb_s3store_bucket_exists(struct sb_s3store *s, const char *bucket)
{
    pthread_mutex_lock(&s->lock);
    bool found = find_bucket(s, bucket) != NULL;
    pthread_mutex_unlock(&s->lock);
    return found;
}

json_t *sb_s3store_buckets_json(struct sb_s3store *s)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n_buckets; i++)
        json_array_append_new(arr, json_pack("{ss sI}", "name", s->buckets[i].name, "created",
                                             (json_int_t)s->buckets[i].created));
    pthread_mutex_unlock(&s->lock);
    return json_pack("{so}", "buckets", arr);
}

/* ---- objects ---- */

/* Makes (or replaces) key's object from data, which is taken in memory mode. Lock held, capacity
 * checked by the caller. */
static int store_object(struct sb_s3store *s, struct bucket *b, const char *key, char *data,
                        size_t len, const struct sb_s3_meta *m)
{
    size_t off = 0;
    if (s->dir) {
        size_t hlen = 0;
        char *header = header_line(key, m, &hlen);
        char *path = object_path(s, b->name, key);
        int rc = header ? write_object_file(path, header, hlen, data, len) : -1;
        free(header);
        free(path);
        free(data);
        data = NULL;
        if (rc != 0)
            return SB_S3_IO;
        off = hlen;
    }
    size_t pos = 0;
    ssize_t at = find_obj(b, key, &pos);
    if (at >= 0) {
        struct obj *o = &b->objs[at];
        s->used -= o->m.size;
        free(o->data);
        o->data = data;
        o->m = *m;
        o->data_off = off;
    } else {
        if (b->n == b->cap) {
            b->cap = b->cap ? b->cap * 2 : 16;
            b->objs = hs_realloc(b->objs, b->cap * sizeof *b->objs);
        }
        memmove(&b->objs[pos + 1], &b->objs[pos], (b->n - pos) * sizeof *b->objs);
        b->objs[pos] = (struct obj){hs_strdup(key), *m, data, off};
        b->n++;
    }
    s->used += m->size;
    return SB_S3_OK;
}

static uint64_t current_size(struct bucket *b, const char *key)
{
    ssize_t at = find_obj(b, key, NULL);
    return at >= 0 ? b->objs[at].m.size : 0;
}

static int put_object(struct sb_s3store *s, const char *bucket, const char *key, const char *data,
                      size_t len, const char *content_type, int64_t now, bool if_absent,
                      struct sb_s3_meta *out, struct sb_s3_detail *d)
{
    struct sb_s3_meta m = {.size = len, .mtime = now};
    unsigned char md5[16];
    md5_of(data, len, md5);
    quoted_hex(md5, "", m.etag);
    (void)hs_strlcpy(m.content_type, content_type ? content_type : "binary/octet-stream",
                     sizeof m.content_type);
    int rc;
    pthread_mutex_lock(&s->lock);
    struct bucket *b = find_bucket(s, bucket);
    if (!b) {
        rc = SB_S3_NO_SUCH_BUCKET;
    } else if (if_absent && find_obj(b, key, NULL) >= 0) {
        rc = SB_S3_EXISTS;
    } else if (!fits(s, len, current_size(b, key), d)) {
        rc = SB_S3_FULL;
    } else {
        char *copy = hs_malloc(len ? len : 1);
        memcpy(copy, data, len);
        rc = store_object(s, b, key, copy, len, &m);
    }
    pthread_mutex_unlock(&s->lock);
    if (rc == SB_S3_OK && out)
        *out = m;
    return rc;
}

int sb_s3store_put(struct sb_s3store *s, const char *bucket, const char *key, const char *data,
                   size_t len, const char *content_type, int64_t now, struct sb_s3_meta *out,
                   struct sb_s3_detail *d)
{
    return put_object(s, bucket, key, data, len, content_type, now, false, out, d);
}

int sb_s3store_put_if_absent(struct sb_s3store *s, const char *bucket, const char *key,
                             const char *data, size_t len, const char *content_type, int64_t now,
                             struct sb_s3_meta *out, struct sb_s3_detail *d)
{
    return put_object(s, bucket, key, data, len, content_type, now, true, out, d);
}

int sb_s3store_head(struct sb_s3store *s, const char *bucket, const char *key,
                    struct sb_s3_meta *out)
{
    int rc = SB_S3_OK;
    pthread_mutex_lock(&s->lock);
    struct bucket *b = find_bucket(s, bucket);
    ssize_t at = b ? find_obj(b, key, NULL) : -1;
    if (!b)
        rc = SB_S3_NO_SUCH_BUCKET;
    else if (at < 0)
        rc = SB_S3_NO_SUCH_KEY;
    else
        *out = b->objs[at].m;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int sb_s3store_get(struct sb_s3store *s, const char *bucket, const char *key, uint64_t first,
                   uint64_t len, char **data, size_t *got, struct sb_s3_meta *out)
{
    int rc = SB_S3_OK;
    *data = NULL;
    *got = 0;
    pthread_mutex_lock(&s->lock);
    struct bucket *b = find_bucket(s, bucket);
    ssize_t at = b ? find_obj(b, key, NULL) : -1;
    if (!b) {
        rc = SB_S3_NO_SUCH_BUCKET;
    } else if (at < 0) {
        rc = SB_S3_NO_SUCH_KEY;
    } else {
        const struct obj *o = &b->objs[at];
        *out = o->m;
        uint64_t n = first >= o->m.size ? 0 : o->m.size - first;
        if (n > len)
            n = len;
        char *buf = hs_malloc(n ? (size_t)n : 1);
        if (s->dir) {
            char *path = object_path(s, bucket, key);
            if (read_at(path, o->data_off + first, (size_t)n, buf) != 0)
                rc = SB_S3_IO;
            free(path);
        } else if (n) {
            memcpy(buf, o->data + first, (size_t)n);
        }
        if (rc == SB_S3_OK) {
            *data = buf;
            *got = (size_t)n;
        } else {
            free(buf);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int sb_s3store_delete(struct sb_s3store *s, const char *bucket, const char *key)
{
    int rc = SB_S3_OK;
    pthread_mutex_lock(&s->lock);
    struct bucket *b = find_bucket(s, bucket);
    ssize_t at = b ? find_obj(b, key, NULL) : -1;
    if (!b) {
        rc = SB_S3_NO_SUCH_BUCKET;
    } else if (at >= 0) {
        if (s->dir) {
            char *path = object_path(s, bucket, key);
            char *dir = hs_aprintf("%s/%s", s->dir, bucket);
            if ((unlink(path) != 0 && errno != ENOENT) || fsync_dir(dir) != 0)
                rc = SB_S3_IO;
            free(path);
            free(dir);
        }
        if (rc == SB_S3_OK) {
            s->used -= b->objs[at].m.size;
            obj_clear(&b->objs[at]);
            memmove(&b->objs[at], &b->objs[at + 1], (b->n - (size_t)at - 1) * sizeof *b->objs);
            b->n--;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static bool last_is(const struct sb_s3_list *l, const char *key, size_t n)
{
    if (l->n == 0)
        return false;
    const char *k = l->items[l->n - 1].key;
    return strlen(k) == n && strncmp(k, key, n) == 0;
}

static void list_push(struct sb_s3_list *l, size_t *cap, const char *key, size_t keylen,
                      bool is_prefix, const struct sb_s3_meta *m)
{
    if (l->n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        l->items = hs_realloc(l->items, *cap * sizeof *l->items);
    }
    struct sb_s3_list_item *it = &l->items[l->n++];
    it->key = hs_strndup(key, keylen);
    it->is_prefix = is_prefix;
    if (m)
        it->m = *m;
    else
        memset(&it->m, 0, sizeof it->m);
}

int sb_s3store_list(struct sb_s3store *s, const char *bucket, const struct sb_s3_list_query *q,
                    struct sb_s3_list *out)
{
    memset(out, 0, sizeof *out);
    const char *prefix = q->prefix ? q->prefix : "", *after = q->after ? q->after : "";
    const char *delim = q->delimiter && *q->delimiter ? q->delimiter : NULL;
    size_t plen = strlen(prefix), cap = 0;
    pthread_mutex_lock(&s->lock);
    struct bucket *b = find_bucket(s, bucket);
    if (!b) {
        pthread_mutex_unlock(&s->lock);
        return SB_S3_NO_SUCH_BUCKET;
    }
    /* Start at the first key past `after` and at or past the prefix. */
    size_t i = 0;
    bool use_after = *after && strcmp(after, prefix) >= 0;
    ssize_t at = find_obj(b, use_after ? after : prefix, &i);
    if (at >= 0)
        i = (size_t)at + (use_after ? 1 : 0);
    for (; i < b->n; i++) {
        const struct obj *o = &b->objs[i];
        if (strncmp(o->key, prefix, plen) != 0)
            break; /* sorted: past every key with the prefix */
        const char *cut = delim ? strstr(o->key + plen, delim) : NULL;
        size_t klen = cut ? (size_t)(cut - o->key) + strlen(delim) : strlen(o->key);
        if (cut) {
            /* A common prefix: once, and not again on the page after one that ended on it. */
            int c = strncmp(o->key, after, klen);
            if (last_is(out, o->key, klen) ||
                (*after && (c < 0 || (c == 0 && strlen(after) >= klen))))
                continue;
        }
        if (out->n == q->max_keys) {
            out->truncated = q->max_keys > 0;
            break;
        }
        list_push(out, &cap, o->key, klen, cut != NULL, cut ? NULL : &o->m);
    }
    if (out->truncated && out->n)
        out->next_after = hs_strdup(out->items[out->n - 1].key);
    pthread_mutex_unlock(&s->lock);
    return SB_S3_OK;
}

void sb_s3_list_clear(struct sb_s3_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i].key);
    free(l->items);
    free(l->next_after);
    memset(l, 0, sizeof *l);
}

/* ---- multipart uploads ---- */

static struct upload *find_upload(struct sb_s3store *s, const char *bucket, const char *key,
                                  const char *id, struct upload ***link)
{
    for (struct upload **pp = &s->uploads; *pp; pp = &(*pp)->next) {
        struct upload *u = *pp;
        if (!strcmp(u->id, id) && !strcmp(u->bucket, bucket) && !strcmp(u->key, key)) {
            if (link)
                *link = pp;
            return u;
        }
    }
    return NULL;
}

static void upload_free(struct sb_s3store *s, struct upload *u)
{
    for (size_t i = 0; i < u->n; i++) {
        s->used -= u->parts[i].len;
        free(u->parts[i].data);
    }
    free(u->parts);
    free(u->bucket);
    free(u->key);
    free(u);
}

int sb_s3store_create_upload(struct sb_s3store *s, const char *bucket, const char *key,
                             const char *content_type, int64_t now,
                             char upload_id[SB_S3_UPLOAD_ID_SZ])
{
    unsigned char rnd[16];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        return SB_S3_IO;
    int rc = SB_S3_OK;
    pthread_mutex_lock(&s->lock);
    if (!find_bucket(s, bucket)) {
        rc = SB_S3_NO_SUCH_BUCKET;
    } else {
        struct upload *u = hs_calloc(1, sizeof *u);
        hs_hex(rnd, sizeof rnd, u->id);
        u->bucket = hs_strdup(bucket);
        u->key = hs_strdup(key);
        (void)hs_strlcpy(u->content_type, content_type ? content_type : "binary/octet-stream",
                         sizeof u->content_type);
        u->created = now;
        u->next = s->uploads;
        s->uploads = u;
        memcpy(upload_id, u->id, SB_S3_UPLOAD_ID_SZ);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int sb_s3store_upload_part(struct sb_s3store *s, const char *bucket, const char *key,
                           const char *upload_id, int number, const char *data, size_t len,
                           char etag[64], struct sb_s3_detail *d)
{
    int rc = SB_S3_OK;
    pthread_mutex_lock(&s->lock);
    struct upload *u = find_upload(s, bucket, key, upload_id, NULL);
    size_t i = 0;
    while (u && i < u->n && u->parts[i].number < number)
        i++;
    bool replace = u && i < u->n && u->parts[i].number == number;
    if (!find_bucket(s, bucket)) {
        rc = SB_S3_NO_SUCH_BUCKET;
    } else if (!u) {
        rc = SB_S3_NO_SUCH_UPLOAD;
    } else if (!fits(s, len, replace ? u->parts[i].len : 0, d)) {
        rc = SB_S3_FULL;
    } else {
        if (replace) {
            s->used -= u->parts[i].len;
            free(u->parts[i].data);
        } else {
            if (u->n == u->cap) {
                u->cap = u->cap ? u->cap * 2 : 8;
                u->parts = hs_realloc(u->parts, u->cap * sizeof *u->parts);
            }
            memmove(&u->parts[i + 1], &u->parts[i], (u->n - i) * sizeof *u->parts);
            u->n++;
        }
        struct part *p = &u->parts[i];
        p->number = number;
        p->data = hs_malloc(len ? len : 1);
        memcpy(p->data, data, len);
        p->len = len;
        md5_of(data, len, p->md5);
        s->used += len;
        quoted_hex(p->md5, "", etag);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static const struct part *upload_part(const struct upload *u, int number)
{
    for (size_t i = 0; i < u->n; i++)
        if (u->parts[i].number == number)
            return &u->parts[i];
    return NULL;
}

/* The parts named by the list, in order, checked as S3 checks them (the order, then that each was
 * uploaded with that ETag, then the sizes); NULL when one fails. */
static const struct part **check_parts(const struct sb_s3store *s, const struct upload *u,
                                       const struct sb_s3_part_ref *refs, size_t n, int *rc,
                                       struct sb_s3_detail *d)
{
    const struct part **v = hs_calloc(n, sizeof *v);
    char msg[256];
    for (size_t i = 1; i < n; i++) {
        if (refs[i].number <= refs[i - 1].number) {
            *rc = SB_S3_INVALID_PART_ORDER;
            fill_detail(d, refs[i].number,
                        "The list of parts was not in ascending order. The parts list must be "
                        "specified in order by part number.");
            goto fail;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const struct part *p = upload_part(u, refs[i].number);
        char hex[33];
        if (p)
            hs_hex(p->md5, 16, hex);
        if (!p || strcasecmp(hex, refs[i].etag) != 0) {
            *rc = SB_S3_INVALID_PART;
            (void)snprintf(msg, sizeof msg,
                           "One or more of the specified parts could not be found. The part may "
                           "not have been uploaded, or the specified entity tag may not match the "
                           "part's entity tag. (part %d)",
                           refs[i].number);
            fill_detail(d, refs[i].number, msg);
            goto fail;
        }
        v[i] = p;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        if (v[i]->len < s->cfg.min_part_size) {
            *rc = SB_S3_TOO_SMALL;
            (void)snprintf(msg, sizeof msg,
                           "Your proposed upload is smaller than the minimum allowed size (part "
                           "%d has %zu bytes; every part but the last needs %llu)",
                           refs[i].number, v[i]->len, (unsigned long long)s->cfg.min_part_size);
            fill_detail(d, refs[i].number, msg);
            goto fail;
        }
    }
    return v;
fail:
    free(v);
    return NULL;
}

int sb_s3store_complete(struct sb_s3store *s, const char *bucket, const char *key,
                        const char *upload_id, const struct sb_s3_part_ref *refs, size_t n,
                        int64_t now, struct sb_s3_meta *out, struct sb_s3_detail *d)
{
    int rc = SB_S3_OK;
    pthread_mutex_lock(&s->lock);
    struct upload **link = NULL;
    struct upload *u = find_upload(s, bucket, key, upload_id, &link);
    struct bucket *b = find_bucket(s, bucket);
    const struct part **parts = NULL;
    if (!b) {
        rc = SB_S3_NO_SUCH_BUCKET;
    } else if (!u) {
        rc = SB_S3_NO_SUCH_UPLOAD;
    } else if ((parts = check_parts(s, u, refs, n, &rc, d)) != NULL) {
        uint64_t total = 0;
        for (size_t i = 0; i < n; i++)
            total += parts[i]->len;
        char *data = hs_malloc(total ? (size_t)total : 1);
        unsigned char *md5s = hs_malloc(16 * n);
        size_t off = 0;
        for (size_t i = 0; i < n; i++) {
            memcpy(data + off, parts[i]->data, parts[i]->len);
            off += parts[i]->len;
            memcpy(md5s + 16 * i, parts[i]->md5, 16);
        }
        struct sb_s3_meta m = {.size = total, .mtime = now};
        unsigned char md5[16];
        char suffix[16];
        md5_of(md5s, 16 * n, md5);
        (void)snprintf(suffix, sizeof suffix, "-%zu", n);
        quoted_hex(md5, suffix, m.etag);
        (void)hs_strlcpy(m.content_type, u->content_type, sizeof m.content_type);
        free(md5s);
        /* The object takes the parts' bytes: no more room is needed than the parts hold. */
        rc = store_object(s, b, key, data, (size_t)total, &m);
        if (rc == SB_S3_OK) {
            *link = u->next;
            upload_free(s, u);
            if (out)
                *out = m;
        }
    }
    free(parts);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int sb_s3store_abort(struct sb_s3store *s, const char *bucket, const char *key,
                     const char *upload_id)
{
    int rc = SB_S3_OK;
    pthread_mutex_lock(&s->lock);
    struct upload **link = NULL;
    struct upload *u = find_upload(s, bucket, key, upload_id, &link);
    if (!find_bucket(s, bucket)) {
        rc = SB_S3_NO_SUCH_BUCKET;
    } else if (!u) {
        rc = SB_S3_NO_SUCH_UPLOAD;
    } else {
        *link = u->next;
        upload_free(s, u);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* ---- the admin view ---- */

static json_t *bucket_json(const struct sb_s3store *s, const struct bucket *b)
{
    json_t *objs = json_array(), *ups = json_array();
    for (size_t i = 0; i < b->n; i++) {
        const struct obj *o = &b->objs[i];
        json_array_append_new(objs,
                              json_pack("{ss sI ss sI ss}", "key", o->key, "size",
                                        (json_int_t)o->m.size, "etag", o->m.etag, "mtime",
                                        (json_int_t)o->m.mtime, "content_type", o->m.content_type));
    }
    for (const struct upload *u = s->uploads; u; u = u->next) {
        if (strcmp(u->bucket, b->name) != 0)
            continue;
        json_t *parts = json_array();
        for (size_t i = 0; i < u->n; i++) {
            char etag[64];
            quoted_hex(u->parts[i].md5, "", etag);
            json_array_append_new(parts,
                                  json_pack("{si sI ss}", "part_number", u->parts[i].number, "size",
                                            (json_int_t)u->parts[i].len, "etag", etag));
        }
        json_array_append_new(ups, json_pack("{ss ss sI so}", "upload_id", u->id, "key", u->key,
                                             "created", (json_int_t)u->created, "parts", parts));
    }
    return json_pack("{ss sI so so}", "name", b->name, "created", (json_int_t)b->created, "objects",
                     objs, "uploads", ups);
}

json_t *sb_s3store_json(struct sb_s3store *s)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n_buckets; i++)
        json_array_append_new(arr, bucket_json(s, &s->buckets[i]));
    json_t *o = json_pack("{sI sI sI ss? so}", "capacity", (json_int_t)s->cfg.capacity, "used",
                          (json_int_t)s->used, "min_part_size", (json_int_t)s->cfg.min_part_size,
                          "dir", s->dir, "buckets", arr);
    pthread_mutex_unlock(&s->lock);
    return o;
}

/* ---- start-up: finding a directory's objects again ---- */

static bool hex64(const char *name)
{
    if (strlen(name) != 64)
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* Reads one object file's header; adds the object unless the file is damaged (skipped). */
static void load_object(struct sb_s3store *s, struct bucket *b, const char *path)
{
    char head[HEADER_MAX + 1];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    ssize_t n = fstat(fd, &st) == 0 ? pread(fd, head, HEADER_MAX, 0) : -1;
    close(fd);
    char *nl = n > 0 ? memchr(head, '\n', (size_t)n) : NULL;
    if (!nl)
        return;
    json_t *j = NULL;
    int64_t size = 0, mtime = 0;
    if (hs_json_parse(head, (size_t)(nl - head), HEADER_MAX, &j, NULL) == 0 &&
        json_is_string(json_object_get(j, "key")) && json_is_string(json_object_get(j, "etag")) &&
        hs_json_i64(j, "size", &size) && hs_json_i64(j, "mtime", &mtime) && size >= 0 &&
        (uint64_t)st.st_size == (uint64_t)(nl - head) + 1 + (uint64_t)size) {
        const char *key = json_string_value(json_object_get(j, "key"));
        const char *ct = json_string_value(json_object_get(j, "content_type"));
        char *expected = object_path(s, b->name, key);
        if (!strcmp(expected, path) && find_obj(b, key, NULL) < 0) {
            struct sb_s3_meta m = {.size = (uint64_t)size, .mtime = mtime};
            (void)hs_strlcpy(m.etag, json_string_value(json_object_get(j, "etag")), sizeof m.etag);
            (void)hs_strlcpy(m.content_type, ct ? ct : "binary/octet-stream",
                             sizeof m.content_type);
            size_t pos = 0;
            (void)find_obj(b, key, &pos);
            if (b->n == b->cap) {
                b->cap = b->cap ? b->cap * 2 : 16;
                b->objs = hs_realloc(b->objs, b->cap * sizeof *b->objs);
            }
            memmove(&b->objs[pos + 1], &b->objs[pos], (b->n - pos) * sizeof *b->objs);
            b->objs[pos] = (struct obj){hs_strdup(key), m, NULL, (size_t)(nl - head) + 1};
            b->n++;
            s->used += m.size;
        }
        free(expected);
    }
    json_decref(j);
}

static void load_bucket(struct sb_s3store *s, const char *name, int64_t created)
{
    struct bucket *b = add_bucket(s, name, created);
    char *dirpath = hs_aprintf("%s/%s", s->dir, name);
    DIR *d = opendir(dirpath);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char *path = hs_aprintf("%s/%s", dirpath, e->d_name);
        if (hs_starts_with(e->d_name + (strlen(e->d_name) > 4 ? strlen(e->d_name) - 4 : 0), ".tmp"))
            (void)unlink(path); /* an upload that never finished */
        else if (hex64(e->d_name))
            load_object(s, b, path);
        free(path);
    }
    if (d)
        closedir(d);
    free(dirpath);
}

static int load_dir(struct sb_s3store *s, char *err, size_t errn)
{
    if (mkdir(s->dir, 0700) != 0 && errno != EEXIST) {
        (void)snprintf(err, errn, "cannot create %s", s->dir);
        return -1;
    }
    DIR *d = opendir(s->dir);
    if (!d) {
        (void)snprintf(err, errn, "cannot read %s", s->dir);
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        char *path = hs_aprintf("%s/%s", s->dir, e->d_name);
        if (sb_s3_bucket_name_ok(e->d_name) && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            load_bucket(s, e->d_name, (int64_t)st.st_mtime);
        free(path);
    }
    closedir(d);
    return 0;
}

struct sb_s3store *sb_s3store_new(const struct sb_s3_config *cfg, char *err, size_t errn)
{
    struct sb_s3store *s = hs_calloc(1, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    s->cfg = *cfg;
    if (cfg->dir) {
        s->dir = hs_strdup(cfg->dir);
        size_t n = strlen(s->dir);
        while (n > 1 && s->dir[n - 1] == '/')
            s->dir[--n] = '\0';
        if (load_dir(s, err, errn) != 0) {
            sb_s3store_free(s);
            return NULL;
        }
    }
    s->cfg.dir = s->dir;
    return s;
}

void sb_s3store_free(struct sb_s3store *s)
{
    if (!s)
        return;
    while (s->uploads) {
        struct upload *u = s->uploads;
        s->uploads = u->next;
        upload_free(s, u);
    }
    for (size_t i = 0; i < s->n_buckets; i++) {
        struct bucket *b = &s->buckets[i];
        for (size_t k = 0; k < b->n; k++)
            obj_clear(&b->objs[k]);
        free(b->objs);
        free(b->name);
    }
    free(s->buckets);
    free(s->dir);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
