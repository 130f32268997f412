/* blobs.c: the content-addressed artifact files under the data directory (see blobs.h).
 *
 * A download streams into <data_dir>/tmp/ while it is hashed, so memory stays flat whatever the
 * size. Only when the bytes are complete and fsynced is the file renamed to
 * blobs/<2 hex>/<2 hex>/<sha256>, and the directory fsynced, so a row that points at a path
 * never points at a partial file, even after a power cut. Identical bytes land on the same name
 * and are stored once.
 *
 * Lifecycle: begin, write..., commit, then hs_blob_abort to free the writer (after a commit it
 * only frees; after a failure it also removes the temporary file). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "store/blobs.h"

struct hs_blob_writer {
    char *data_dir;
    char *tmp_path; /* NULL once renamed or removed */
    int fd;         /* -1 once closed */
    EVP_MD_CTX *md;
    int64_t bytes;
    bool committed;
};

/* The one place errno becomes hs_err here: HS_ERR_IO naming the file. */
static int io_fail(struct hs_error *err, int e, const char *what, const char *path)
{
    char buf[128];
    /* GNU strerror_r (_GNU_SOURCE is set project-wide): returns the message, maybe not buf. */
    const char *msg = strerror_r(e, buf, sizeof buf);
    return hs_fail(err, HS_ERR_IO, "%s %s: %s", what, path, msg);
}

/* Makes a new directory entry durable: fsync of the directory that holds it. */
static int fsync_dir(const char *dir, struct hs_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return io_fail(err, errno, "cannot open directory", dir);
    int rc = HS_OK;
    if (fsync(fd) != 0)
        rc = io_fail(err, errno, "cannot fsync directory", dir);
    close(fd);
    return rc;
}

/* mkdir -p with mode 0700 (the files are the orgs' data: the owner's alone, whatever the umask);
 * each directory it creates is made durable in its parent. */
static int mkdir_p(const char *path, struct hs_error *err)
{
    char *p = hs_strdup(path);
    int rc = HS_OK;
    size_t len = strlen(p);
    for (size_t i = 1; i <= len && !rc; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char saved = p[i];
        p[i] = '\0';
        if (mkdir(p, 0700) == 0) {
            char *slash = strrchr(p, '/');
            if (slash == p) {
                rc = fsync_dir("/", err);
            } else if (slash) {
                *slash = '\0';
                rc = fsync_dir(p, err);
                *slash = '/';
            } else {
                rc = fsync_dir(".", err);
            }
        } else if (errno != EEXIST) {
            rc = io_fail(err, errno, "cannot create directory", p);
        } else {
            struct stat sb;
            if (stat(p, &sb) != 0)
                rc = io_fail(err, errno, "cannot stat", p);
            else if (!S_ISDIR(sb.st_mode))
                rc = io_fail(err, ENOTDIR, "cannot create directory", p);
        }
        p[i] = saved;
    }
    free(p);
    return rc;
}

int hs_blob_begin(const char *data_dir, struct hs_blob_writer **out, struct hs_error *err)
{
    if (!data_dir || !*data_dir)
        return hs_fail(err, HS_ERR_INVALID, "no data directory");
    char *tmp_dir = hs_aprintf("%s/tmp", data_dir);
    char *blob_dir = hs_aprintf("%s/blobs", data_dir);
    char *tmp_path = hs_aprintf("%s/blob-XXXXXX", tmp_dir);
    int rc = mkdir_p(tmp_dir, err);
    if (!rc)
        rc = mkdir_p(blob_dir, err);
    int fd = -1;
    if (!rc) {
        fd = mkstemp(tmp_path);
        if (fd < 0)
            rc = io_fail(err, errno, "cannot create a temporary file in", tmp_dir);
    }
    /* mkstemp makes the file 0600: the owner's alone, like the directories that hold it. */
    free(tmp_dir);
    free(blob_dir);
    if (rc) {
        if (fd >= 0) {
            close(fd);
            unlink(tmp_path);
        }
        free(tmp_path);
        return rc;
    }
    struct hs_blob_writer *w = hs_calloc(1, sizeof *w);
    w->data_dir = hs_strdup(data_dir);
    w->tmp_path = tmp_path;
    w->fd = fd;
    w->md = EVP_MD_CTX_new();
    if (!w->md || EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1) {
        hs_blob_abort(w);
        return hs_fail(err, HS_ERR_INTERNAL, "cannot start a SHA-256 digest");
    }
    *out = w;
    return HS_OK;
}

int hs_blob_write(struct hs_blob_writer *w, const void *data, size_t len, struct hs_error *err)
{
    if (!w || w->fd < 0 || w->committed)
        return hs_fail(err, HS_ERR_INVALID, "write to a closed blob");
    if (EVP_DigestUpdate(w->md, data, len) != 1)
        return hs_fail(err, HS_ERR_INTERNAL, "SHA-256 update failed");
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(w->fd, p, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return io_fail(err, errno, "cannot write", w->tmp_path);
        }
        p += n;
        left -= (size_t)n;
    }
    w->bytes += (int64_t)len;
    return HS_OK;
}

int hs_blob_commit(struct hs_blob_writer *w, char sha256_hex[65], int64_t *bytes, char **rel_path,
                   struct hs_error *err)
{
    if (!w || w->fd < 0 || w->committed)
        return hs_fail(err, HS_ERR_INVALID, "commit of a closed blob");
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_DigestFinal_ex(w->md, md, &md_len) != 1 || md_len != 32)
        return hs_fail(err, HS_ERR_INTERNAL, "SHA-256 final failed");
    char hex[65];
    hs_hex(md, 32, hex);

    /* The bytes must be on disk before any name (and so any row) points at them. */
    int rc = HS_OK;
    if (fsync(w->fd) != 0)
        rc = io_fail(err, errno, "cannot fsync", w->tmp_path);
    if (close(w->fd) != 0 && !rc)
        rc = io_fail(err, errno, "cannot close", w->tmp_path);
    w->fd = -1;
    if (rc)
        return rc;

    char *rel = hs_aprintf("blobs/%.2s/%.2s/%s", hex, hex + 2, hex);
    char *dir = hs_aprintf("%s/blobs/%.2s/%.2s", w->data_dir, hex, hex + 2);
    char *final = hs_aprintf("%s/%s", w->data_dir, rel);
    rc = mkdir_p(dir, err);
    if (!rc) {
        struct stat sb;
        /* Same name, same bytes: keep the stored file. One of another size is damaged (not
         * written by us), so it is replaced. */
        if (stat(final, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size == (off_t)w->bytes) {
            if (unlink(w->tmp_path) != 0)
                rc = io_fail(err, errno, "cannot remove", w->tmp_path);
        } else if (rename(w->tmp_path, final) != 0) {
            rc = io_fail(err, errno, "cannot rename into", final);
        } else {
            rc = fsync_dir(dir, err);
        }
        if (!rc)
            hs_free_ptr(&w->tmp_path);
    }
    free(dir);
    free(final);
    if (rc) {
        free(rel);
        return rc;
    }
    w->committed = true;
    memcpy(sha256_hex, hex, sizeof hex);
    *bytes = w->bytes;
    *rel_path = rel;
    return HS_OK;
}

void hs_blob_abort(struct hs_blob_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    if (w->tmp_path)
        unlink(w->tmp_path);
    EVP_MD_CTX_free(w->md);
    free(w->tmp_path);
    free(w->data_dir);
    free(w);
}

/* Run at start-up, before any writer: it would remove a running writer's file too. */
void hs_data_dir_private(const char *data_dir)
{
    static const char *const sub[] = {"", "/tmp", "/blobs"};
    for (size_t i = 0; data_dir && *data_dir && i < sizeof sub / sizeof sub[0]; i++) {
        char *p = hs_aprintf("%s%s", data_dir, sub[i]);
        struct stat sb;
        if (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode) && (sb.st_mode & 0777) != 0700 &&
            chmod(p, 0700) != 0) {
            char eb[128];
            hs_warn("store msg=\"cannot make the data directory private\" path=%s error=\"%s\"", p,
                    strerror_r(errno, eb, sizeof eb));
        }
        free(p);
    }
}

int hs_blob_clean_tmp(const char *data_dir, struct hs_error *err)
{
    if (!data_dir || !*data_dir)
        return hs_fail(err, HS_ERR_INVALID, "no data directory");
    char *tmp_dir = hs_aprintf("%s/tmp", data_dir);
    int rc = HS_OK;
    DIR *d = opendir(tmp_dir);
    if (!d) {
        if (errno != ENOENT) /* nothing was ever written: nothing to clean */
            rc = io_fail(err, errno, "cannot open directory", tmp_dir);
        free(tmp_dir);
        return rc;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) == 0)
            continue;
        int en = errno;
        /* Gone already (another cleaner), or a directory we did not make: leave it. */
        if (en != ENOENT && en != EISDIR && !rc) {
            char *path = hs_aprintf("%s/%s", tmp_dir, e->d_name);
            rc = io_fail(err, en, "cannot remove", path);
            free(path);
        }
    }
    closedir(d);
    free(tmp_dir);
    return rc;
}
