/* backup_manifest.c: the manifest of a backup folder (backup_manifest.h). */
#include "store/backup_manifest.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/mem.h"

static bool is_digest(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return false;
    return n == 64;
}

static int parse_file(json_t *f, size_t i, struct hs_backup_file *out, struct hs_error *err)
{
    const char *sha = NULL, *path = NULL;
    json_int_t bytes = -1;
    if (json_unpack(f, "{s:s, s:s, s:I}", "sha256", &sha, "path", &path, "bytes", &bytes) != 0 ||
        !is_digest(sha) || bytes < 0)
        return hs_fail(err, HS_ERR_PARSE, "file %zu of the manifest: sha256, path or bytes wrong",
                       i);
    snprintf(out->path, sizeof out->path, "blobs/%.2s/%.2s/%s", sha, sha + 2, sha);
    if (strcmp(path, out->path) != 0)
        return hs_fail(err, HS_ERR_PARSE, "file %zu of the manifest: its path is not %s", i,
                       out->path);
    memcpy(out->sha256, sha, sizeof out->sha256);
    out->bytes = bytes;
    return HS_OK;
}

int hs_backup_manifest_parse(const char *text, size_t len, struct hs_backup_manifest *out,
                             struct hs_error *err)
{
    json_t *m = NULL, *files = NULL;
    struct hs_backup_manifest r = {0};
    int rc = hs_json_parse(text, len, HS_BACKUP_MANIFEST_MAX, &m, err);
    if (rc)
        return rc;
    const char *format = NULL, *db = NULL, *db_sha = NULL;
    json_int_t db_bytes = -1;
    if (json_unpack(m, "{s:s, s:s, s:s, s:I, s:o}", "format", &format, "db", &db, "db_sha256",
                    &db_sha, "db_bytes", &db_bytes, "files", &files) != 0 ||
        strcmp(format, HS_BACKUP_FORMAT) != 0 || strcmp(db, HS_BACKUP_DB) != 0 ||
        !is_digest(db_sha) || db_bytes < 0 || !json_is_array(files)) {
        rc = hs_fail(err, HS_ERR_PARSE, "not a manifest of format " HS_BACKUP_FORMAT);
        goto out;
    }
    memcpy(r.db_sha256, db_sha, sizeof r.db_sha256);
    r.db_bytes = db_bytes;
    r.files = hs_calloc(json_array_size(files) + 1, sizeof *r.files);
    for (size_t i = 0; !rc && i < json_array_size(files); i++)
        if ((rc = parse_file(json_array_get(files, i), i, &r.files[i], err)) == HS_OK)
            r.n_files++;
out:
    json_decref(m);
    if (rc) {
        hs_backup_manifest_clear(&r);
        return rc;
    }
    *out = r;
    return HS_OK;
}

void hs_backup_manifest_clear(struct hs_backup_manifest *m)
{
    if (!m)
        return;
    free(m->files);
    memset(m, 0, sizeof *m);
}
