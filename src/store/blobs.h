/* blobs.h: content-addressed artifact files (blobs.c). The records (store/records.h) point at
 * them by a relative name, blobs/ab/cd/<sha256>, the same whichever back-end holds the bytes:
 *   the local folder  <data_dir>/blobs/ab/cd/<sha256> (the default);
 *   S3                the object PREFIX/blobs/ab/cd/<sha256> of a bucket (store/s3.h), for
 *                     instances on several machines that share the files.
 * Writes always stream into <data_dir>/tmp first, where the bytes are hashed and checked; the
 * commit then renames the file into place or uploads it, and only once it returned may a row
 * point at the name. */
#ifndef HS_STORE_BLOBS_H
#define HS_STORE_BLOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hoversync.h"

/* A blob store: the local folder or S3. Made by hs_blobs_open (freed by hs_blobs_free) or, for
 * the local folder without an allocation, by hs_blobs_local; the fields are blobs.c's. */
struct hs_blob_backend;
struct hs_s3;
struct hs_blobs {
    const struct hs_blob_backend *be;
    const char *data_dir; /* the local folder; the staging area (tmp/) of every back-end */
    char *own_data_dir;
    struct hs_s3 *s3;
    char *location; /* for messages: the folder or s3://bucket/prefix */
    int64_t redirect_s;
};

struct hs_blobs_config {
    const char *data_dir;      /* required */
    const char *url;           /* NULL or "": the local folder; "s3://BUCKET/PREFIX": S3 */
    const char *s3_endpoint;   /* NULL: AWS's endpoint of the region */
    const char *s3_region;     /* NULL: us-east-1 */
    const char *access_key;    /* AWS_ACCESS_KEY_ID */
    const char *secret_key;    /* AWS_SECRET_ACCESS_KEY */
    const char *session_token; /* AWS_SESSION_TOKEN, may be NULL */
    int64_t part_size;         /* S3: multipart above this; 0: 8 MiB */
    int64_t redirect_s;        /* S3: files are served by a redirect to a URL presigned for this
                                * many seconds; 0: streamed through the service */
    int max_attempts;          /* S3: per request; 0: 5 */
    int64_t retry_base_ms;     /* S3: first retry delay; 0: 200 */
};

/* Checks c and makes the blob store (S3: no request is sent yet). HS_ERR_INVALID or
 * HS_ERR_NO_CREDENTIALS saying what is wrong. */
int hs_blobs_open(const struct hs_blobs_config *c, struct hs_blobs **out, struct hs_error *err);
void hs_blobs_free(struct hs_blobs *b);
/* Fills *b as the local folder data_dir (borrowed); nothing to free. */
void hs_blobs_local(struct hs_blobs *b, const char *data_dir);
/* The name of the file of a digest: blobs/ab/cd/<sha256>. */
void hs_blob_name(const char sha256_hex[65], char out[80]);

/* The stored size of name; HS_ERR_NOT_FOUND when it is not there. */
int hs_blobs_size(const struct hs_blobs *b, const char *name, int64_t *size, struct hs_error *err);
/* Reads exactly len bytes of name from offset off into buf. */
int hs_blobs_read(const struct hs_blobs *b, const char *name, int64_t off, char *buf, size_t len,
                  struct hs_error *err);
/* The whole of name (NUL-terminated, caller frees); HS_ERR_TOOBIG over max bytes. */
int hs_blobs_read_all(const struct hs_blobs *b, const char *name, size_t max, char **out,
                      size_t *len, struct hs_error *err);
/* Whether b is the local folder. */
bool hs_blobs_is_local(const struct hs_blobs *b);
/* The local folder's path of name (caller frees); NULL for other back-ends. */
char *hs_blobs_local_path(const struct hs_blobs *b, const char *name);
/* Seconds a redirect to a presigned URL is valid; 0: files are streamed (always, locally). */
int64_t hs_blobs_redirect_seconds(const struct hs_blobs *b);
/* A presigned URL of name answered with content_type (caller frees); HS_ERR_INVALID where
 * there are no redirects. */
int hs_blobs_presign(const struct hs_blobs *b, const char *name, const char *content_type,
                     char **url, struct hs_error *err);

/* Copies the blob of each digest that next() gives (1 with a digest, 0 at the end, negative to
 * stop with that error) from one store to another: one already there with its size is kept;
 * every copy is hashed on its way and must come out under its own digest. copied and kept
 * (may be NULL) count what was done. For moving blobs between back-ends. */
int hs_blobs_copy_all(const struct hs_blobs *from, const struct hs_blobs *to,
                      int (*next)(void *ctx, char sha256_hex[65]), void *ctx, int64_t *copied,
                      int64_t *kept, struct hs_error *err);

/* Copies, as hs_blobs_copy_all, every blob that an artifact row of the store points at (each
 * digest once, whatever the number of rows). The digests are listed first, then copied outside
 * any transaction of the store. */
struct hs_store;
int hs_blobs_copy_store(struct hs_store *store, const struct hs_blobs *from,
                        const struct hs_blobs *to, int64_t *copied, int64_t *kept,
                        struct hs_error *err);

struct hs_blob_writer;
/* Starts a file of the store b under <data_dir>/tmp; bytes are hashed as they are written. */
int hs_blobs_begin(const struct hs_blobs *b, struct hs_blob_writer **out, struct hs_error *err);
/* Starts a new file under <data_dir>/tmp; bytes are hashed as they are written. */
int hs_blob_begin(const char *data_dir, struct hs_blob_writer **out, struct hs_error *err);
int hs_blob_write(struct hs_blob_writer *w, const void *data, size_t len, struct hs_error *err);
/* The bytes written so far (NUL-terminated copy, caller frees); HS_ERR_TOOBIG over max. For
 * checks that need the whole body before it is committed. */
int hs_blob_read(struct hs_blob_writer *w, size_t max, char **out, size_t *len,
                 struct hs_error *err);
/* Local folder: fsyncs the file, renames it to <data_dir>/blobs/ab/cd/<sha256> (an existing
 * identical file is kept), fsyncs the directory. S3: uploads it (an object already there with
 * its size is kept), confirms the object's size, removes the temporary file. Then gives the hex
 * sha256, the size and the name (caller frees). Only after this returns may a row point at the
 * name; after a failure nothing does. */
int hs_blob_commit(struct hs_blob_writer *w, char sha256_hex[65], int64_t *bytes, char **rel_path,
                   struct hs_error *err);
/* A batch of commits whose new names become durable together: hs_blob_commit_in fsyncs each
 * file once and puts it in place (or uploads it), and hs_blob_batch_sync then fsyncs each
 * directory that gained an entry once, however many files it gained. Only after
 * hs_blob_batch_sync returned may a row point at a name committed in the batch; a crash before
 * leaves at most files no row points at (the collector of blob_gc.h removes them). Writers of
 * several threads may commit into one batch. */
struct hs_blob_batch;
struct hs_blob_batch *hs_blob_batch_new(void);
/* As hs_blob_commit, but the directories are synced by hs_blob_batch_sync. */
int hs_blob_commit_in(struct hs_blob_writer *w, struct hs_blob_batch *batch, char sha256_hex[65],
                      int64_t *bytes, char **rel_path, struct hs_error *err);
int hs_blob_batch_sync(struct hs_blob_batch *batch, struct hs_error *err);
/* Frees the batch (NULL is fine); names not synced yet stay as they are. */
void hs_blob_batch_free(struct hs_blob_batch *batch);
/* Removes the temporary file; safe after commit (then a no-op) and with NULL. */
void hs_blob_abort(struct hs_blob_writer *w);
/* Makes an existing data directory (and its tmp/ and blobs/) private to its owner (0700);
 * directories are created 0700 in the first place. Failures are logged. */
void hs_data_dir_private(const char *data_dir);
/* Removes leftovers of interrupted writes (the files under <data_dir>/tmp that no writer
 * holds: each writer keeps its temporary file locked until it is renamed). Safe while other
 * processes write into the same data directory. */
int hs_blob_clean_tmp(const char *data_dir, struct hs_error *err);

#endif
