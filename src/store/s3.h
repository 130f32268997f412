/* s3.h: a small client of S3-compatible object storage (s3.c), enough for the blob store
 * (store/blobs.h): put a file (one request, or a multipart upload above a threshold), head, read a
 * byte range, delete, and presigned GET URLs.
 *
 * Requests are signed with AWS Signature Version 4 by libcurl (CURLOPT_AWS_SIGV4), path-style
 * (ENDPOINT/BUCKET/KEY), with the payload's SHA-256 in x-amz-content-sha256 and the session token
 * (when there is one) in x-amz-security-token. Every request is retried with backoff on 5xx, 429,
 * dropped connections and short answers; an upload restarts from the file each time, so nothing
 * is ever held whole in memory. The credentials are never logged. */
#ifndef HS_STORE_S3_H
#define HS_STORE_S3_H

#include <stddef.h>
#include <stdint.h>

#include "hoversync.h"

struct hs_s3_config {
    const char *endpoint; /* "http://127.0.0.1:9000"; NULL: https://s3.REGION.amazonaws.com */
    const char *region;   /* NULL: us-east-1 */
    const char *bucket;
    const char *prefix; /* key prefix without slashes at its ends; NULL or "": none */
    const char *access_key, *secret_key;
    const char *session_token; /* NULL: none */
    int64_t part_size;         /* multipart above this many bytes, parts of this size; 0: 8 MiB */
    int max_attempts;          /* per request; 0: 5 */
    int64_t retry_base_ms;     /* the first retry's delay, doubled per failure; 0: 200 */
    int64_t timeout_ms;        /* one request; 0: 120 s */
};

#define HS_S3_PART_MIN     1024
#define HS_S3_PART_DEFAULT (8 * 1024 * 1024)

struct hs_s3;

/* Checks cfg (a bucket name S3 accepts, a prefix of A-Z a-z 0-9 . _ - ~ and inner '/', an
 * endpoint URL, both keys) and makes a client; the strings are copied. HS_ERR_INVALID saying
 * what is wrong. */
int hs_s3_new(const struct hs_s3_config *cfg, struct hs_s3 **out, struct hs_error *err);
void hs_s3_free(struct hs_s3 *s);

/* Parses "s3://bucket/prefix" (the prefix may be empty) into *bucket and *prefix (caller frees).
 * HS_ERR_INVALID when it is not such a URL. */
int hs_s3_parse_url(const char *url, char **bucket, char **prefix, struct hs_error *err);

/* The object key of name (prefix/name), caller frees. */
char *hs_s3_key(const struct hs_s3 *s, const char *name);

/* Uploads size bytes of fd (read with pread from offset 0; the file is not moved) as key, whose
 * hex SHA-256 is sha256_hex. Above the part size: a multipart upload, aborted on failure. Returns
 * once S3 has confirmed the object. */
int hs_s3_put_file(struct hs_s3 *s, const char *key, int fd, int64_t size,
                   const char sha256_hex[65], struct hs_error *err);
/* The object's size; HS_ERR_NOT_FOUND when there is none. */
int hs_s3_head(struct hs_s3 *s, const char *key, int64_t *size, struct hs_error *err);
/* Reads exactly len bytes of key from offset off into buf (the caller knows the size: a shorter
 * answer is retried, then HS_ERR_TRUNCATED). */
int hs_s3_get_range(struct hs_s3 *s, const char *key, int64_t off, size_t len, char *buf,
                    struct hs_error *err);
/* Deletes key (no error when it does not exist). */
int hs_s3_delete(struct hs_s3 *s, const char *key, struct hs_error *err);
/* A presigned GET URL of key valid for expires_s seconds from now_s (unix seconds); with
 * content_type, S3 answers with that Content-Type (response-content-type). Caller frees. */
int hs_s3_presign_get(const struct hs_s3 *s, const char *key, const char *content_type,
                      int64_t now_s, int64_t expires_s, char **url, struct hs_error *err);

/* The text between the first <tag> and the </tag> after it in len bytes of an XML answer of S3
 * (caller frees); NULL when there is none. Entities are left as they are: the values read this
 * way (UploadId, Code, Message) are used as sent or only shown. */
char *hs_s3_xml_text(const char *xml, size_t len, const char *tag);

/* AWS Signature Version 4 for a query string (a presigned URL), on its own so that it can be
 * checked against AWS's published example: the query string (without '?') for a request of
 * method on host (as sent in Host) and path (already encoded, S3-style), signing only host, with
 * an unsigned payload. extra_query (may be NULL) holds further parameters, already encoded and in
 * sorted order, that all sort after the X-Amz-* ones. */
struct hs_sigv4_presign {
    const char *method, *host, *path, *extra_query;
    const char *region, *service;
    const char *access_key, *secret_key, *session_token;
    int64_t time_s; /* the signature's time (unix seconds) */
    int64_t expires_s;
};
char *hs_sigv4_presign_query(const struct hs_sigv4_presign *p);

#endif
