/* s3store.h: the S3 listener's buckets, objects and multipart uploads.
 *
 * Objects live in memory (the default) or, with a directory, one file each under DIR/BUCKET/
 * (named by the SHA-256 of the key: a JSON header line, then the bytes), written to a temporary
 * file, fsynced and renamed before the call returns, and found again at the next start. Parts of
 * uploads in progress are held in memory either way. Everything stored (objects and parts) is
 * bounded by a capacity in bytes: an upload that would pass it is refused (SB_S3_FULL) and
 * changes nothing.
 *
 * ETags are S3's: a single-part object's is the hex MD5 of its bytes in quotes, a multipart
 * object's the hex MD5 of its parts' binary MD5s concatenated, "-" and the number of parts.
 * Keys are ordered bytewise (UTF-8 binary order, as S3 lists them). One lock guards it all. */
#ifndef HS_SANDBOX_S3STORE_H
#define HS_SANDBOX_S3STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "s3parse.h"

#define SB_S3_KEY_MAX      1024                        /* bytes, as S3 */
#define SB_S3_SINGLE_MAX   (5ULL * 1024 * 1024 * 1024) /* a single PUT or part, as S3 */
#define SB_S3_MIN_PART     (5ULL * 1024 * 1024)        /* S3's minimum part size but the last */
#define SB_S3_UPLOAD_ID_SZ 33

struct sb_s3_config {
    uint64_t capacity;      /* bytes of objects and parts together */
    uint64_t min_part_size; /* every part of a completed upload but the last */
    const char *dir;        /* NULL: memory only */
};

enum sb_s3_status {
    SB_S3_OK = 0,
    SB_S3_NO_SUCH_BUCKET = -1,
    SB_S3_NO_SUCH_KEY = -2,
    SB_S3_BUCKET_EXISTS = -3,
    SB_S3_BUCKET_NOT_EMPTY = -4,
    SB_S3_FULL = -5,
    SB_S3_NO_SUCH_UPLOAD = -6,
    SB_S3_INVALID_PART = -7,
    SB_S3_INVALID_PART_ORDER = -8,
    SB_S3_TOO_SMALL = -9,
    SB_S3_IO = -10,
    SB_S3_EXISTS = -11, /* sb_s3store_put_if_absent: the key is taken */
};

struct sb_s3_meta {
    uint64_t size;
    char etag[64]; /* with its quotes */
    int64_t mtime; /* unix seconds */
    char content_type[128];
};

struct sb_s3_list_query {
    const char *prefix;    /* "" for all */
    const char *delimiter; /* NULL or "": none */
    const char *after;     /* list keys after this one (StartAfter, marker, continuation) */
    size_t max_keys;
};

struct sb_s3_list_item {
    char *key;      /* a key, or a common prefix */
    bool is_prefix; /* rolled up at the delimiter */
    struct sb_s3_meta m;
};

struct sb_s3_list {
    struct sb_s3_list_item *items;
    size_t n;
    bool truncated;
    char *next_after; /* when truncated: the last key or prefix returned */
};

struct sb_s3store;

/* NULL with a message in err when the directory cannot be used. */
struct sb_s3store *sb_s3store_new(const struct sb_s3_config *cfg, char *err, size_t errn);
void sb_s3store_free(struct sb_s3store *s);

/* Why a call failed, for the error message ("full: 10 of 16 bytes used..."). */
struct sb_s3_detail {
    char msg[256];
    int part;              /* the part number concerned, 0 when none */
    uint64_t used, needed; /* SB_S3_FULL: bytes in use and bytes the call needed */
};

int sb_s3store_create_bucket(struct sb_s3store *s, const char *bucket, int64_t now);
int sb_s3store_delete_bucket(struct sb_s3store *s, const char *bucket);
bool sb_s3store_bucket_exists(struct sb_s3store *s, const char *bucket);
/* {"buckets":[{"name","created"}]} in name order. */
json_t *sb_s3store_buckets_json(struct sb_s3store *s);

int sb_s3store_put(struct sb_s3store *s, const char *bucket, const char *key, const char *data,
                   size_t len, const char *content_type, int64_t now, struct sb_s3_meta *out,
                   struct sb_s3_detail *d);
/* The same, unless the key exists (PUT with If-None-Match: *): then SB_S3_EXISTS. */
int sb_s3store_put_if_absent(struct sb_s3store *s, const char *bucket, const char *key,
                             const char *data, size_t len, const char *content_type, int64_t now,
                             struct sb_s3_meta *out, struct sb_s3_detail *d);
int sb_s3store_head(struct sb_s3store *s, const char *bucket, const char *key,
                    struct sb_s3_meta *out);
/* Bytes [first, first + len) of an object (len clipped to its end) into *data (malloc'd). */
int sb_s3store_get(struct sb_s3store *s, const char *bucket, const char *key, uint64_t first,
                   uint64_t len, char **data, size_t *got, struct sb_s3_meta *out);
/* Deleting a key that does not exist succeeds, as in S3. */
int sb_s3store_delete(struct sb_s3store *s, const char *bucket, const char *key);
int sb_s3store_list(struct sb_s3store *s, const char *bucket, const struct sb_s3_list_query *q,
                    struct sb_s3_list *out);
void sb_s3_list_clear(struct sb_s3_list *l);

int sb_s3store_create_upload(struct sb_s3store *s, const char *bucket, const char *key,
                             const char *content_type, int64_t now,
                             char upload_id[SB_S3_UPLOAD_ID_SZ]);
/* Stores (or replaces) part `number` (1..10000); its ETag (quoted hex MD5) into etag. */
int sb_s3store_upload_part(struct sb_s3store *s, const char *bucket, const char *key,
                           const char *upload_id, int number, const char *data, size_t len,
                           char etag[64], struct sb_s3_detail *d);
/* Checks the list (ascending part numbers, each part uploaded with that ETag, every part but
 * the last at least min_part_size) and makes the object of those parts; the upload ends. */
int sb_s3store_complete(struct sb_s3store *s, const char *bucket, const char *key,
                        const char *upload_id, const struct sb_s3_part_ref *parts, size_t n,
                        int64_t now, struct sb_s3_meta *out, struct sb_s3_detail *d);
int sb_s3store_abort(struct sb_s3store *s, const char *bucket, const char *key,
                     const char *upload_id);

/* The whole store for the admin route: capacity, bytes used, and every bucket with its objects
 * and uploads in progress. */
json_t *sb_s3store_json(struct sb_s3store *s);

#endif
