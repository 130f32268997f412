/* sqlite.h: the SQLite back-end of the store (store.h), the default: one file, WAL, one writer
 * connection and a small pool of read-only connections (store_sqlite.c). hs_store_open picks
 * it for a file path; tests and tools that want SQLite itself call it directly. */
#ifndef HS_STORE_SQLITE_H
#define HS_STORE_SQLITE_H

#include "store/store.h"

/* Opens (creating if needed) a SQLite store at path and applies pending migrations. The file
 * (and its -wal and -shm) is made private to its owner (0600). o may be NULL. */
int hs_store_open_sqlite(const char *path, const struct hs_store_options *o, struct hs_store **out,
                         struct hs_error *err);

#endif
