/* fuzz_backup_manifest.c: libFuzzer target of a backup folder's manifest.json
 * (src/store/backup_manifest.c), what `hoversync store restore` reads from a folder it is given:
 * a manifest is accepted only with well-formed digests, and every file's path is its digest's
 * own place in the data folder (nothing outside it can be named). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/backup_manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_digest(const char *s)
{
    if (strlen(s) != 64 || strspn(s, "0123456789abcdef") != 64)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hs_backup_manifest m;
    struct hs_error err;
    memset(&m, 0, sizeof m);
    memset(&err, 0, sizeof err);
    if (hs_backup_manifest_parse((const char *)data, size, &m, &err) != HS_OK) {
        if (!err.msg[0] || m.files)
            abort(); /* refused with a reason, nothing kept */
        return 0;
    }
    check_digest(m.db_sha256);
    if (m.db_bytes < 0)
        abort();
    for (size_t i = 0; i < m.n_files; i++) {
        const struct hs_backup_file *f = &m.files[i];
        check_digest(f->sha256);
        if (f->bytes < 0 || strncmp(f->path, "blobs/", 6) != 0 || strstr(f->path, "..") ||
            strcmp(f->path + 12, f->sha256) != 0)
            abort();
    }
    hs_backup_manifest_clear(&m);
    return 0;
}
