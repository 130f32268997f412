/* blobs.c: the content-addressed artifact files under the data directory (see blobs.h).
 *
 * A download streams into <data_dir>/tmp/ while it is hashed, so memory stays flat whatever the
 * size. Only when the bytes are complete and fsynced is the file renamed to
 * blobs/<2 hex>/<2 hex>/<sha256>, and the directory fsynced, so a row that points at a path
 * never points at a partial file, even after a power cut. Identical bytes land on the same name
 * and are stored once.
 *
 * Lifecycle: begin, write..., commit, then hs_blob_abort to free the writer (after a commit it
 * only frees; after a failure it also removes the temporary file). A sync commits a model's files
 * in a batch (hs_blob_commit_in): each file is fsynced and renamed as it completes, and the
 * directories that gained entries are fsynced once each at the end, before any row points at
 * them (hs_blob_batch_sync).
 *
 * The data directory may be shared by several processes (serve, workers, CLI runs, on one
 * machine or several): each writer holds an exclusive flock on its temporary file from its
 * creation until it is renamed, and the cleaner removes only files whose lock it can take at
 * once, so it never removes a live writer's file, whoever started it. The kernel drops the
 * lock of a killed process, so its leftovers become removable.
 *
 * With S3 (store/s3.h) the temporary file is the same; the commit uploads it instead of renaming
 * it, and returns only once S3 shows the whole object: the row that follows never points at a
 * missing or partial object. Reads go by byte ranges, so serving a large object never holds it
 * whole either. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "store/blobs.h"
#include "store/records.h"
#include "store/s3.h"
#include "store/store.h"

/* What differs between the back-ends; the writer and its temporary file are common. */
struct hs_blob_backend {
    int (*size)(const struct hs_blobs *b, const char *name, int64_t *size, struct hs_error *err);
    int (*read)(const struct hs_blobs *b, const char *name, int64_t off, char *buf, size_t len,
                struct hs_error *err);
    /* Puts the writer's complete, hashed temporary file in place as name (in dir, locally);
     * the directories that gained an entry are noted in batch, to be synced by its owner. */
    int (*commit)(struct hs_blob_writer *w, const char *hex, const char *name,
                  struct hs_blob_batch *batch, struct hs_error *err);
};

/* The directories that gained an entry since the batch began, each once; the writers of one
 * batch may commit from several threads. */
struct hs_blob_batch {
    pthread_mutex_t lock;
    char **dirs;
    size_t n, cap;
};

struct hs_blob_writer {
    const struct hs_blobs *blobs; /* NULL: the local folder data_dir */
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

static void batch_note(struct hs_blob_batch *b, const char *dir)
{
    pthread_mutex_lock(&b->lock);
    bool seen = false;
    for (size_t i = 0; i < b->n && !seen; i++)
        seen = strcmp(b->dirs[i], dir) == 0;
    if (!seen && b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 16;
        b->dirs = hs_realloc(b->dirs, b->cap * sizeof *b->dirs);
    }
    if (!seen)
        b->dirs[b->n++] = hs_strdup(dir);
    pthread_mutex_unlock(&b->lock);
}

/* The parent directory's entry of p made durable: at once, or noted in batch. */
static int sync_parent(const char *p, struct hs_blob_batch *batch, struct hs_error *err)
{
    char *dir = hs_strdup(p);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        hs_strlcpy(dir, ".", strlen(dir) + 1);
    int rc = HS_OK;
    if (batch)
        batch_note(batch, dir);
    else
        rc = fsync_dir(dir, err);
    free(dir);
    return rc;
}

/* mkdir -p with mode 0700 (the files are the orgs' data: the owner's alone, whatever the umask);
 * each directory it creates is made durable in its parent, at once or with the batch (NULL: at
 * once). */
static int mkdir_p_in(const char *path, struct hs_blob_batch *batch, struct hs_error *err)
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
            rc = sync_parent(p, batch, err);
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

static int mkdir_p(const char *path, struct hs_error *err)
{
    return mkdir_p_in(path, NULL, err);
}

/* mkstemp, then the file's lock. A cleaner may have locked and removed the new file in the
 * moment between the two (it looked unused): then the file we hold is unlinked, so we start
 * over with a new name. */
static int create_locked(const char *tmp_dir, char *tmp_path, int *out, struct hs_error *err)
{
    size_t tl = strlen(tmp_path);
    for (int tries = 0; tries < 16; tries++) {
        memcpy(tmp_path + tl - 6, "XXXXXX", 6);
        int fd = mkstemp(tmp_path);
        if (fd < 0)
            return io_fail(err, errno, "cannot create a temporary file in", tmp_dir);
        struct stat st;
        int rc = HS_OK;
        while (flock(fd, LOCK_EX) != 0 && rc == HS_OK)
            if (errno != EINTR)
                rc = io_fail(err, errno, "cannot lock", tmp_path);
        if (rc == HS_OK && fstat(fd, &st) != 0)
            rc = io_fail(err, errno, "cannot stat", tmp_path);
        if (rc == HS_OK && st.st_nlink > 0) {
            *out = fd;
            return HS_OK;
        }
        close(fd);
        if (rc)
            return rc;
    }
    return hs_fail(err, HS_ERR_IO, "cannot keep a temporary file in %s: removed as soon as made",
                   tmp_dir);
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
    if (!rc)
        rc = create_locked(tmp_dir, tmp_path, &fd, err);
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

int hs_blob_read(struct hs_blob_writer *w, size_t max, char **out, size_t *len,
                 struct hs_error *err)
{
    if (!w || w->fd < 0 || w->committed)
        return hs_fail(err, HS_ERR_INVALID, "read of a closed blob");
    if (w->bytes < 0 || (uint64_t)w->bytes > max)
        return hs_fail(err, HS_ERR_TOOBIG, "%lld bytes, over the %zu byte cap", (long long)w->bytes,
                       max);
    size_t n = (size_t)w->bytes;
    char *buf = hs_malloc(n + 1);
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(w->fd, buf + got, n - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = r < 0 ? errno : EIO;
            free(buf);
            return io_fail(err, e, "cannot read back", w->tmp_path);
        }
        got += (size_t)r;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return HS_OK;
}

/* The local folder: the bytes must be on disk before any name (and so any row) points at them.
 * The file stays open, and so locked, until it has its final name: a cleaner must not take it. */
static int local_commit(struct hs_blob_writer *w, const char *hex, const char *rel,
                        struct hs_blob_batch *batch, struct hs_error *err)
{
    if (fsync(w->fd) != 0)
        return io_fail(err, errno, "cannot fsync", w->tmp_path);
    char *dir = hs_aprintf("%s/blobs/%.2s/%.2s", w->data_dir, hex, hex + 2);
    char *final = hs_aprintf("%s/%s", w->data_dir, rel);
    int rc = mkdir_p_in(dir, batch, err);
    if (!rc) {
        struct stat sb;
        /* Same name, same bytes: keep the stored file, its date renewed so that the collector
         * of unreferenced files (blob_gc.c) leaves it be until our row commits. If the
         * collector took the name away first, the renewal fails and our file takes its place.
         * One of another size is damaged (not written by us), so it is replaced. */
        if (stat(final, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size == (off_t)w->bytes &&
            utimensat(AT_FDCWD, final, NULL, 0) == 0) {
            if (unlink(w->tmp_path) != 0)
                rc = io_fail(err, errno, "cannot remove", w->tmp_path);
        } else if (rename(w->tmp_path, final) != 0) {
            rc = io_fail(err, errno, "cannot rename into", final);
        } else {
            batch_note(batch, dir);
        }
        if (!rc)
            hs_free_ptr(&w->tmp_path);
    }
    free(dir);
    free(final);
    return rc;
}

/* S3: an object of that name and size holds these bytes already (the name is their digest). */
static int s3_commit(struct hs_blob_writer *w, const char *hex, const char *rel,
                     struct hs_blob_batch *batch, struct hs_error *err)
{
    (void)batch; /* the object is whole in S3 once the upload is confirmed */
    struct hs_s3 *s3 = w->blobs->s3;
    char *key = hs_s3_key(s3, rel);
    int64_t have = -1;
    struct hs_error herr = {0};
    int rc = hs_s3_head(s3, key, &have, &herr);
    if (rc == HS_OK && have == w->bytes) {
        hs_debug("blobs=s3 key=%s msg=\"already stored\"", key);
    } else if (rc == HS_OK || rc == HS_ERR_NOT_FOUND) {
        rc = hs_s3_put_file(s3, key, w->fd, w->bytes, hex, err);
    } else if (err) {
        *err = herr;
    }
    if (!rc) {
        if (unlink(w->tmp_path) != 0)
            hs_warn("blobs=s3 msg=\"cannot remove the uploaded temporary file\" path=%s",
                    w->tmp_path);
        hs_free_ptr(&w->tmp_path);
    }
    free(key);
    return rc;
}

struct hs_blob_batch *hs_blob_batch_new(void)
{
    struct hs_blob_batch *b = hs_calloc(1, sizeof *b);
    pthread_mutex_init(&b->lock, NULL);
    return b;
}

/* Past this many folders in a batch, one syncfs of their filesystem replaces their fsyncs: each
 * fsync of a folder is a journal commit of its own, and the two-level fan-out gives nearly every
 * file a folder of its own (and a new store a new folder whose parent needs one too). The files
 * themselves were fsynced before their rename, so what syncfs adds is the folders' entries (and
 * whatever else of that filesystem was waiting to be written). */
#define BATCH_SYNCFS_DIRS 4

/* The folders' filesystem made durable in one call, when they all are on one filesystem; false
 * when they are not (then each is fsynced). */
static bool batch_syncfs(const struct hs_blob_batch *batch, int *rc, struct hs_error *err)
{
    struct stat first, sb;
    if (stat(batch->dirs[0], &first) != 0)
        return false;
    for (size_t i = 1; i < batch->n; i++)
        if (stat(batch->dirs[i], &sb) != 0 || sb.st_dev != first.st_dev)
            return false;
    int fd = open(batch->dirs[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return false;
    *rc = HS_OK;
    if (syncfs(fd) != 0)
        *rc = io_fail(err, errno, "cannot sync the filesystem of", batch->dirs[0]);
    close(fd);
    return true;
}

int hs_blob_batch_sync(struct hs_blob_batch *batch, struct hs_error *err)
{
    int rc = HS_OK;
    if (batch && batch->n > BATCH_SYNCFS_DIRS && batch_syncfs(batch, &rc, err))
        return rc;
    for (size_t i = 0; batch && i < batch->n && rc == HS_OK; i++)
        rc = fsync_dir(batch->dirs[i], err);
    return rc;
}

void hs_blob_batch_free(struct hs_blob_batch *batch)
{
    if (!batch)
        return;
    for (size_t i = 0; i < batch->n; i++)
        free(batch->dirs[i]);
    free(batch->dirs);
    pthread_mutex_destroy(&batch->lock);
    free(batch);
}

/* A commit on its own: a batch of one, synced before it returns. */
int hs_blob_commit(struct hs_blob_writer *w, char sha256_hex[65], int64_t *bytes, char **rel_path,
                   struct hs_error *err)
{
    struct hs_blob_batch *batch = hs_blob_batch_new();
    int rc = hs_blob_commit_in(w, batch, sha256_hex, bytes, rel_path, err);
    if (rc == HS_OK && (rc = hs_blob_batch_sync(batch, err)) != HS_OK)
        hs_free_ptr(rel_path);
    hs_blob_batch_free(batch);
    return rc;
}

int hs_blob_commit_in(struct hs_blob_writer *w, struct hs_blob_batch *batch, char sha256_hex[65],
                      int64_t *bytes, char **rel_path, struct hs_error *err)
{
    if (!w || w->fd < 0 || w->committed)
        return hs_fail(err, HS_ERR_INVALID, "commit of a closed blob");
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_DigestFinal_ex(w->md, md, &md_len) != 1 || md_len != 32)
        return hs_fail(err, HS_ERR_INTERNAL, "SHA-256 final failed");
    char hex[65];
    hs_hex(md, 32, hex);
    char rel[80];
    hs_blob_name(hex, rel);
    const struct hs_blobs *b = w->blobs;
    int rc = b ? b->be->commit(w, hex, rel, batch, err) : local_commit(w, hex, rel, batch, err);
    if (close(w->fd) != 0 && !rc)
        rc = io_fail(err, errno, "cannot close", w->tmp_path ? w->tmp_path : rel);
    w->fd = -1;
    if (rc)
        return rc;
    w->committed = true;
    memcpy(sha256_hex, hex, sizeof hex);
    *bytes = w->bytes;
    *rel_path = hs_strdup(rel);
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

/* Makes an existing data directory (and its tmp/ and blobs/) private to its owner (0700). */
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

/* Removes one entry of the temporary directory if no live writer holds it (its lock is free)
 * and it is still the file we locked; 1 when removed, 0 when left, negative on an error. */
static int remove_if_stale(int dfd, const char *name)
{
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return errno == ENOENT || errno == ELOOP ? 0 : -errno;
    int rc = 0;
    struct stat held, now;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK || errno == EINTR ? 0 : -errno; /* a writer has it */
    } else if (fstat(fd, &held) != 0) {
        rc = -errno;
    } else if (!S_ISREG(held.st_mode) || fstatat(dfd, name, &now, AT_SYMLINK_NOFOLLOW) != 0 ||
               now.st_dev != held.st_dev || now.st_ino != held.st_ino) {
        rc = 0; /* not a file we made, or replaced under us: leave it */
    } else if (unlinkat(dfd, name, 0) == 0) {
        rc = 1;
    } else {
        rc = errno == ENOENT ? 0 : -errno;
    }
    close(fd); /* unlocks */
    return rc;
}

/* Safe at any time, beside running writers of any process: see the top of this file. */
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
    int removed = 0;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        int r = remove_if_stale(dirfd(d), e->d_name);
        if (r > 0) {
            removed++;
        } else if (r < 0 && !rc) {
            char *path = hs_aprintf("%s/%s", tmp_dir, e->d_name);
            rc = io_fail(err, -r, "cannot remove", path);
            free(path);
        }
    }
    closedir(d);
    if (removed)
        hs_info("blobs=clean dir=%s removed=%d msg=\"leftovers of interrupted downloads\"", tmp_dir,
                removed);
    free(tmp_dir);
    return rc;
}

/* ---- the blob store: back-ends ---- */

void hs_blob_name(const char sha256_hex[65], char out[80])
{
    (void)snprintf(out, 80, "blobs/%.2s/%.2s/%.64s", sha256_hex, sha256_hex + 2, sha256_hex);
}

static int local_size(const struct hs_blobs *b, const char *name, int64_t *size,
                      struct hs_error *err)
{
    char *path = hs_aprintf("%s/%s", b->data_dir, name);
    struct stat st;
    int rc = HS_OK;
    if (stat(path, &st) != 0)
        rc = errno == ENOENT || errno == ENOTDIR
                 ? hs_fail(err, HS_ERR_NOT_FOUND, "no file %s", path)
                 : io_fail(err, errno, "cannot stat", path);
    else if (!S_ISREG(st.st_mode))
        rc = hs_fail(err, HS_ERR_NOT_FOUND, "%s is not a regular file", path);
    else
        *size = (int64_t)st.st_size;
    free(path);
    return rc;
}

static int local_read(const struct hs_blobs *b, const char *name, int64_t off, char *buf,
                      size_t len, struct hs_error *err)
{
    char *path = hs_aprintf("%s/%s", b->data_dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    int rc = fd < 0 ? io_fail(err, errno, "cannot open", path) : HS_OK;
    for (size_t got = 0; !rc && got < len;) {
        ssize_t r = pread(fd, buf + got, len - got, (off_t)(off + (int64_t)got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            rc = io_fail(err, errno, "cannot read", path);
        else if (r == 0)
            rc = hs_fail(err, HS_ERR_TRUNCATED, "%s ends before byte %lld", path,
                         (long long)(off + (int64_t)len));
        else
            got += (size_t)r;
    }
    if (fd >= 0)
        close(fd);
    free(path);
    return rc;
}

static int s3_size(const struct hs_blobs *b, const char *name, int64_t *size, struct hs_error *err)
{
    char *key = hs_s3_key(b->s3, name);
    int rc = hs_s3_head(b->s3, key, size, err);
    free(key);
    return rc;
}

static int s3_read(const struct hs_blobs *b, const char *name, int64_t off, char *buf, size_t len,
                   struct hs_error *err)
{
    char *key = hs_s3_key(b->s3, name);
    int rc = hs_s3_get_range(b->s3, key, off, len, buf, err);
    free(key);
    return rc;
}

static const struct hs_blob_backend local_backend = {local_size, local_read, local_commit};
static const struct hs_blob_backend s3_backend = {s3_size, s3_read, s3_commit};

void hs_blobs_local(struct hs_blobs *b, const char *data_dir)
{
    memset(b, 0, sizeof *b);
    b->be = &local_backend;
    b->data_dir = data_dir;
}

int hs_blobs_open(const struct hs_blobs_config *c, struct hs_blobs **out, struct hs_error *err)
{
    if (!c->data_dir || !*c->data_dir)
        return hs_fail(err, HS_ERR_INVALID, "no data directory");
    struct hs_blobs *b = hs_calloc(1, sizeof *b);
    b->own_data_dir = hs_strdup(c->data_dir);
    b->data_dir = b->own_data_dir;
    b->be = &local_backend;
    if (!c->url || !*c->url) {
        b->location = hs_strdup(c->data_dir);
        *out = b;
        return HS_OK;
    }
    char *bucket = NULL, *prefix = NULL;
    int rc = hs_s3_parse_url(c->url, &bucket, &prefix, err);
    if (!rc) {
        struct hs_s3_config sc = {
            .endpoint = c->s3_endpoint,
            .region = c->s3_region,
            .bucket = bucket,
            .prefix = prefix,
            .access_key = c->access_key,
            .secret_key = c->secret_key,
            .session_token = c->session_token,
            .part_size = c->part_size,
            .max_attempts = c->max_attempts,
            .retry_base_ms = c->retry_base_ms,
        };
        rc = hs_s3_new(&sc, &b->s3, err);
    }
    free(bucket);
    free(prefix);
    if (rc) {
        hs_blobs_free(b);
        return rc;
    }
    b->be = &s3_backend;
    b->location = hs_strdup(c->url);
    b->redirect_s = c->redirect_s;
    *out = b;
    return HS_OK;
}

void hs_blobs_free(struct hs_blobs *b)
{
    if (!b)
        return;
    hs_s3_free(b->s3);
    free(b->own_data_dir);
    free(b->location);
    free(b);
}

int hs_blobs_begin(const struct hs_blobs *b, struct hs_blob_writer **out, struct hs_error *err)
{
    struct hs_blob_writer *w = NULL;
    int rc = hs_blob_begin(b->data_dir, &w, err);
    if (rc)
        return rc;
    w->blobs = b;
    *out = w;
    return HS_OK;
}

int hs_blobs_size(const struct hs_blobs *b, const char *name, int64_t *size, struct hs_error *err)
{
    if (!name || !*name)
        return hs_fail(err, HS_ERR_NOT_FOUND, "no file name");
    return b->be->size(b, name, size, err);
}

int hs_blobs_read(const struct hs_blobs *b, const char *name, int64_t off, char *buf, size_t len,
                  struct hs_error *err)
{
    return len ? b->be->read(b, name, off, buf, len, err) : HS_OK;
}

int hs_blobs_read_all(const struct hs_blobs *b, const char *name, size_t max, char **out,
                      size_t *len, struct hs_error *err)
{
    int64_t size = 0;
    int rc = hs_blobs_size(b, name, &size, err);
    if (rc)
        return rc;
    if ((uint64_t)size > max)
        return hs_fail(err, HS_ERR_TOOBIG, "%s: %lld bytes, over the %zu byte cap", name,
                       (long long)size, max);
    char *buf = hs_malloc((size_t)size + 1);
    if ((rc = hs_blobs_read(b, name, 0, buf, (size_t)size, err))) {
        free(buf);
        return rc;
    }
    buf[size] = '\0';
    *out = buf;
    *len = (size_t)size;
    return HS_OK;
}

bool hs_blobs_is_local(const struct hs_blobs *b)
{
    return !b->s3;
}

char *hs_blobs_local_path(const struct hs_blobs *b, const char *name)
{
    return b->s3 ? NULL : hs_aprintf("%s/%s", b->data_dir, name);
}

int64_t hs_blobs_redirect_seconds(const struct hs_blobs *b)
{
    return b->s3 ? b->redirect_s : 0;
}

int hs_blobs_presign(const struct hs_blobs *b, const char *name, const char *content_type,
                     char **url, struct hs_error *err)
{
    if (!b->s3 || b->redirect_s <= 0)
        return hs_fail(err, HS_ERR_INVALID, "files of %s are not served by redirects",
                       b->location ? b->location : b->data_dir);
    char *key = hs_s3_key(b->s3, name);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int rc =
        hs_s3_presign_get(b->s3, key, content_type, (int64_t)now.tv_sec, b->redirect_s, url, err);
    free(key);
    return rc;
}

/* ---- copies between stores ---- */

#define COPY_CHUNK (1024 * 1024)

/* One blob: streamed from `from` through a writer of `to`, which hashes it on the way. */
static int copy_one(const struct hs_blobs *from, const struct hs_blobs *to, const char *sha,
                    bool *copied, struct hs_error *err)
{
    char name[80];
    hs_blob_name(sha, name);
    int64_t size = 0, there = -1;
    int rc = hs_blobs_size(from, name, &size, err);
    if (rc)
        return rc;
    struct hs_error e2 = {0};
    if (hs_blobs_size(to, name, &there, &e2) == HS_OK && there == size) {
        *copied = false;
        return HS_OK;
    }
    struct hs_blob_writer *w = NULL;
    char *chunk = hs_malloc(COPY_CHUNK);
    rc = hs_blobs_begin(to, &w, err);
    for (int64_t off = 0; !rc && off < size; off += COPY_CHUNK) {
        size_t n = size - off < COPY_CHUNK ? (size_t)(size - off) : COPY_CHUNK;
        rc = hs_blobs_read(from, name, off, chunk, n, err);
        if (!rc)
            rc = hs_blob_write(w, chunk, n, err);
    }
    char got[65];
    int64_t bytes = 0;
    char *rel = NULL;
    /* The digest is checked before the commit could put damaged bytes under this name. */
    if (!rc && w) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int ml = 0;
        EVP_MD_CTX *c = EVP_MD_CTX_new();
        if (!c || EVP_MD_CTX_copy_ex(c, w->md) != 1 || EVP_DigestFinal_ex(c, md, &ml) != 1)
            rc = hs_fail(err, HS_ERR_INTERNAL, "SHA-256 failed");
        EVP_MD_CTX_free(c);
        hs_hex(md, 32, got);
        if (!rc && strcmp(got, sha) != 0)
            rc = hs_fail(err, HS_ERR_IO, "%s holds bytes of digest %s: not copied", name, got);
    }
    if (!rc)
        rc = hs_blob_commit(w, got, &bytes, &rel, err);
    free(rel);
    free(chunk);
    hs_blob_abort(w);
    if (!rc)
        *copied = true;
    return rc;
}

int hs_blobs_copy_all(const struct hs_blobs *from, const struct hs_blobs *to,
                      int (*next)(void *ctx, char sha256_hex[65]), void *ctx, int64_t *copied,
                      int64_t *kept, struct hs_error *err)
{
    int64_t nc = 0, nk = 0;
    int rc = HS_OK;
    char sha[65];
    int more;
    while (!rc && (more = next(ctx, sha)) != 0) {
        if (more < 0) {
            rc = hs_fail(err, more, "the list of digests failed");
            break;
        }
        sha[64] = '\0';
        bool did = false;
        rc = copy_one(from, to, sha, &did, err);
        if (!rc)
            did ? nc++ : nk++;
    }
    if (copied)
        *copied = nc;
    if (kept)
        *kept = nk;
    if (!rc)
        hs_info("blobs=copy from=%s to=%s copied=%lld kept=%lld",
                from->location ? from->location : from->data_dir,
                to->location ? to->location : to->data_dir, (long long)nc, (long long)nk);
    return rc;
}

/* The distinct digests of the store's artifact rows. */
struct digests {
    char (*v)[65];
    size_t n, cap, at;
};

static int collect_digest(void *ctx, const struct hs_artifact_row *a)
{
    struct digests *d = ctx;
    if (!a->sha256 || strlen(a->sha256) != 64 || strspn(a->sha256, "0123456789abcdef") != 64)
        return 0; /* not a name of ours: nothing stored under it */
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 256;
        d->v = hs_realloc(d->v, d->cap * sizeof *d->v);
    }
    memcpy(d->v[d->n++], a->sha256, 65);
    return 0;
}

static int cmp_digest(const void *a, const void *b)
{
    return memcmp(a, b, 64);
}

static int next_digest(void *ctx, char out[65])
{
    struct digests *d = ctx;
    while (d->at < d->n && d->at > 0 && memcmp(d->v[d->at], d->v[d->at - 1], 64) == 0)
        d->at++; /* sorted: each digest once */
    if (d->at == d->n)
        return 0;
    memcpy(out, d->v[d->at++], 65);
    return 1;
}

int hs_blobs_copy_store(struct hs_store *store, const struct hs_blobs *from,
                        const struct hs_blobs *to, int64_t *copied, int64_t *kept,
                        struct hs_error *err)
{
    struct digests d = {0};
    int rc = store->records->artifact_each(store, collect_digest, &d, err);
    if (!rc) {
        if (d.n)
            qsort(d.v, d.n, sizeof *d.v, cmp_digest);
        rc = hs_blobs_copy_all(from, to, next_digest, &d, copied, kept, err);
    }
    free(d.v);
    return rc;
}
