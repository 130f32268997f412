/* sqlite.h: the SQLite back-end of the store (store.h), the default: one file, WAL, one writer
 * connection and a small pool of read-only connections (store_sqlite.c). hs_store_open picks
 * it for a file path; tests and tools that want SQLite itself call it directly. */
#ifndef HS_STORE_SQLITE_H
#define HS_STORE_SQLITE_H

#include <stdint.h>

#include "store/store.h"

/* Opens (creating if needed) a SQLite store at path and applies pending migrations. The file
 * (and its -wal and -shm) is made private to its owner (0600). o may be NULL. */
int hs_store_open_sqlite(const char *path, const struct hs_store_options *o, struct hs_store **out,
                         struct hs_error *err);

/* A consistent copy of the SQLite store at src_path, taken while other processes write to it
 * (SQLite's online backup API, pages_per_step pages at a time with a short pause between, so
 * that no writer waits on it), into a new file dst_path (0600, fsynced). *pages gets the
 * copy's pages. sqlite_backup.c. */
int hs_sqlite_backup(const char *src_path, const char *dst_path, int pages_per_step, int64_t *pages,
                     struct hs_error *err);
/* Every distinct artifact file a SQLite store file points at (its sha256, path relative to the
 * data directory and size), read-only and without migrating it: fn per file, stopping at a
 * non-zero answer (a negative one is returned). */
int hs_sqlite_artifact_files(const char *path,
                             int (*fn)(void *ctx, const char *sha256, const char *rel_path,
                                       int64_t bytes),
                             void *ctx, struct hs_error *err);

#endif
