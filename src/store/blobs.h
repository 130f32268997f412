/* blobs.h: content-addressed artifact files under a data directory (blobs.c). The records
 * (store/records.h) point at them by relative path; every back-end shares this layout. */
#ifndef HS_STORE_BLOBS_H
#define HS_STORE_BLOBS_H

#include <stddef.h>
#include <stdint.h>

#include "hoversync.h"

struct hs_blob_writer;
/* Starts a new file under <data_dir>/tmp; bytes are hashed as they are written. */
int hs_blob_begin(const char *data_dir, struct hs_blob_writer **out, struct hs_error *err);
int hs_blob_write(struct hs_blob_writer *w, const void *data, size_t len, struct hs_error *err);
/* The bytes written so far (NUL-terminated copy, caller frees); HS_ERR_TOOBIG over max. For
 * checks that need the whole body before it is committed. */
int hs_blob_read(struct hs_blob_writer *w, size_t max, char **out, size_t *len,
                 struct hs_error *err);
/* fsyncs the file, renames it to <data_dir>/blobs/ab/cd/<sha256> (an existing identical file is
 * kept), fsyncs the directory, and gives the hex sha256, the size and the relative path
 * (caller frees). Only after this returns may a row point at the path. */
int hs_blob_commit(struct hs_blob_writer *w, char sha256_hex[65], int64_t *bytes, char **rel_path,
                   struct hs_error *err);
/* Removes the temporary file; safe after commit (then a no-op) and with NULL. */
void hs_blob_abort(struct hs_blob_writer *w);
/* Removes the file of sha256_hex (64 hex digits) under <data_dir>/blobs, once no row points at
 * it; HS_ERR_NOT_FOUND when there was none, HS_ERR_INVALID for anything but a digest. */
int hs_blob_remove(const char *data_dir, const char *sha256_hex, struct hs_error *err);
/* Makes an existing data directory (and its tmp/ and blobs/) private to its owner (0700);
 * directories are created 0700 in the first place. Failures are logged. */
void hs_data_dir_private(const char *data_dir);
/* Removes leftovers of interrupted writes (the files under <data_dir>/tmp that no writer
 * holds: each writer keeps its temporary file locked until it is renamed). Safe while other
 * processes write into the same data directory. */
int hs_blob_clean_tmp(const char *data_dir, struct hs_error *err);

#endif
