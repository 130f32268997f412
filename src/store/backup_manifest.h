/* backup_manifest.h: the manifest of a backup folder (`hoversync store backup`,
 * docs/OPERATIONS.md): what restore reads from a folder it is given, checked for its shape
 * before anything is copied. */
#ifndef HS_STORE_BACKUP_MANIFEST_H
#define HS_STORE_BACKUP_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "hoversync.h"

#define HS_BACKUP_FORMAT       "hoversync-backup/1"
#define HS_BACKUP_DB           "hoversync.db"
#define HS_BACKUP_MANIFEST     "manifest.json"
#define HS_BACKUP_MANIFEST_MAX (256 * 1024 * 1024)

struct hs_backup_file {
    char sha256[65];
    char path[80]; /* blobs/ab/cd/<sha256>: always the digest's own place */
    int64_t bytes;
};

struct hs_backup_manifest {
    char db_sha256[65];
    int64_t db_bytes;
    struct hs_backup_file *files;
    size_t n_files;
};

/* Parses a manifest of len bytes: {"format":"hoversync-backup/1","db":"hoversync.db",
 * "db_sha256":HEX,"db_bytes":N,"files":[{"sha256":HEX,"path":"blobs/ab/cd/HEX","bytes":N}],
 * ...}. Digests are 64 lower-case hex digits and a file's path is its digest's place in the
 * data folder (no other path is accepted); HS_ERR_PARSE (or HS_ERR_TOOBIG) with a message
 * otherwise. The caller clears *out. */
int hs_backup_manifest_parse(const char *text, size_t len, struct hs_backup_manifest *out,
                             struct hs_error *err);
void hs_backup_manifest_clear(struct hs_backup_manifest *m);

#endif
