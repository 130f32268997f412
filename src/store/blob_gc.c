/* blob_gc.c: collecting artifact files no row points at (blob_gc.h).
 *
 * The race to win: a sync writing bytes whose file already exists keeps that file (blobs.c
 * hs_blob_commit) and commits its row a moment later; a collector that found no row for the
 * digest must not remove the file in between. The rules that close it:
 *   1. A sync that reuses an existing file renews its modification time (hs_blob_commit) before
 *      its row commits; a new file is fresh anyway. The collector considers only files not
 *      modified for the grace period (an hour by default, far longer than a file's commit to
 *      its row's).
 *   2. A candidate (old, no row) is first renamed to a tombstone, <digest>.gc, in its directory:
 *      from then on a sync finds no file by its name and writes (renames) its own, so nothing
 *      new can come to depend on the set-aside inode. hs_blob_commit renews with utimensat on
 *      the name: if the rename took the name first, the renewal fails and the sync renames its
 *      own temporary file into place instead.
 *   3. The collector then looks at the tombstone's modification time again (a sync renewed it
 *      between the first look and the rename: still the same inode) and asks the store again
 *      (a row committed in between): either one puts the file back under its name. Only then is
 *      the tombstone removed.
 * A sync's row therefore always finds its file: it renewed the file before the rename (rule 3
 * puts it back), or found the name taken away and wrote its own (rule 2). A pass interrupted
 * between the rename and the removal leaves a tombstone: the next pass puts it back if a row
 * points at its digest and no file has the name, and removes it otherwise. */
#include "store/blob_gc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"

#define TOMBSTONE ".gc"

static int gc_io_fail(struct hs_error *err, int e, const char *what, const char *path)
{
    char buf[128];
    return hs_fail(err, HS_ERR_IO, "%s %s: %s", what, path, strerror_r(e, buf, sizeof buf));
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static bool is_digest(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!is_hex(s[i]))
            return false;
    return len == 64;
}

/* A directory of the layout: blobs/ab/cd. */
static bool is_hex2(const char *s)
{
    return is_hex(s[0]) && is_hex(s[1]) && s[2] == '\0';
}

/* Called for each entry of a leaf directory blobs/ab/cd: dir is its path. */
typedef int (*leaf_fn)(void *ctx, const char *dir, const char *name, struct hs_error *err);

/* Visits every entry of every blobs/ab/cd directory; a missing blobs directory is empty. */
static int walk(const char *data_dir, leaf_fn fn, void *ctx, struct hs_error *err)
{
    char *root = hs_aprintf("%s/blobs", data_dir);
    DIR *top = opendir(root);
    int rc = HS_OK;
    if (!top) {
        if (errno != ENOENT)
            rc = gc_io_fail(err, errno, "cannot open directory", root);
        free(root);
        return rc;
    }
    struct dirent *a;
    while (!rc && (a = readdir(top)) != NULL) {
        if (!is_hex2(a->d_name))
            continue;
        char *mid = hs_aprintf("%s/%s", root, a->d_name);
        DIR *md = opendir(mid);
        struct dirent *b;
        while (md && !rc && (b = readdir(md)) != NULL) {
            if (!is_hex2(b->d_name))
                continue;
            char *leaf = hs_aprintf("%s/%s", mid, b->d_name);
            DIR *ld = opendir(leaf);
            struct dirent *c;
            while (ld && !rc && (c = readdir(ld)) != NULL)
                if (c->d_name[0] != '.')
                    rc = fn(ctx, leaf, c->d_name, err);
            if (ld)
                closedir(ld);
            free(leaf);
        }
        if (md)
            closedir(md);
        free(mid);
    }
    closedir(top);
    free(root);
    return rc;
}

struct gc {
    int64_t old_before_s; /* a file modified before this (unix s) is past the grace */
    hs_blob_referenced_fn ref;
    void *ref_ctx;
    hs_blob_gc_hook_fn hook;
    void *hook_ctx;
    struct hs_blob_gc_stats st;
};

static bool fresh(const struct gc *g, const struct stat *sb)
{
    return sb->st_mtime >= g->old_before_s;
}

/* A tombstone left by an interrupted pass: back under its name when a row points at it and the
 * name is free, else removed. */
static int leftover(struct gc *g, const char *dir, const char *name, struct hs_error *err)
{
    char sha[65];
    memcpy(sha, name, 64);
    sha[64] = '\0';
    bool used = false;
    int rc = g->ref(g->ref_ctx, sha, &used, err);
    if (rc)
        return rc;
    char *tomb = hs_aprintf("%s/%s", dir, name);
    char *path = hs_aprintf("%s/%s", dir, sha);
    struct stat sb;
    if (used && stat(path, &sb) != 0 && rename(tomb, path) == 0) {
        g->st.restored++;
    } else if (unlink(tomb) != 0 && errno != ENOENT) {
        rc = gc_io_fail(err, errno, "cannot remove", tomb);
    }
    free(tomb);
    free(path);
    return rc;
}

/* Rules 2 and 3 of the top of this file for one old, unreferenced file. */
static int set_aside_and_remove(struct gc *g, const char *path, const char *sha, int64_t bytes,
                                struct hs_error *err)
{
    char *tomb = hs_aprintf("%s" TOMBSTONE, path);
    int rc = HS_OK;
    if (rename(path, tomb) != 0) {
        if (errno != ENOENT) /* gone already: another collector */
            rc = gc_io_fail(err, errno, "cannot set aside", path);
        free(tomb);
        return rc;
    }
    if (g->hook)
        g->hook(g->hook_ctx, HS_BLOB_GC_SET_ASIDE, sha);
    struct stat sb;
    bool used = false;
    if (lstat(tomb, &sb) != 0) {
        rc = gc_io_fail(err, errno, "cannot stat", tomb);
    } else if (!fresh(g, &sb)) {
        rc = g->ref(g->ref_ctx, sha, &used, err);
    }
    if (!rc && (used || fresh(g, &sb))) {
        /* In use after all: back under its name (a file a sync put there meanwhile has the same
         * bytes, so replacing it changes nothing). */
        if (rename(tomb, path) != 0)
            rc = gc_io_fail(err, errno, "cannot put back", path);
        else
            g->st.restored++;
    } else if (!rc) {
        if (unlink(tomb) != 0 && errno != ENOENT) {
            rc = gc_io_fail(err, errno, "cannot remove", tomb);
        } else {
            g->st.removed++;
            g->st.removed_bytes += bytes;
        }
    } else if (rename(tomb, path) != 0) {
        /* The store failed: the file goes back; the error is the store's. */
        hs_warn("blobs=gc msg=\"cannot put back a file\" path=%s", path);
    }
    free(tomb);
    return rc;
}

static int gc_one(void *ctx, const char *dir, const char *name, struct hs_error *err)
{
    struct gc *g = ctx;
    size_t len = strlen(name);
    if (len == 64 + strlen(TOMBSTONE) && is_digest(name, 64) && strcmp(name + 64, TOMBSTONE) == 0)
        return leftover(g, dir, name, err);
    if (!is_digest(name, len))
        return HS_OK; /* not ours */
    char *path = hs_aprintf("%s/%s", dir, name);
    struct stat sb;
    int rc = HS_OK;
    if (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        free(path);
        return HS_OK; /* gone meanwhile, or not a file we wrote */
    }
    g->st.files++;
    g->st.bytes += sb.st_size;
    bool used = false;
    rc = g->ref(g->ref_ctx, name, &used, err);
    if (!rc && !used) {
        if (fresh(g, &sb)) {
            g->st.kept_fresh++;
        } else {
            if (g->hook)
                g->hook(g->hook_ctx, HS_BLOB_GC_CHECKED, name);
            rc = set_aside_and_remove(g, path, name, sb.st_size, err);
        }
    }
    free(path);
    return rc;
}

int hs_blob_gc(const char *data_dir, int64_t now_ms, int64_t grace_ms, hs_blob_referenced_fn ref,
               void *ref_ctx, hs_blob_gc_hook_fn hook, void *hook_ctx,
               struct hs_blob_gc_stats *stats, struct hs_error *err)
{
    if (!data_dir || !*data_dir || !ref || grace_ms < 0)
        return hs_fail(err, HS_ERR_INVALID, "the collector needs a data directory and a store");
    struct gc g = {.old_before_s = (now_ms - grace_ms) / 1000,
                   .ref = ref,
                   .ref_ctx = ref_ctx,
                   .hook = hook,
                   .hook_ctx = hook_ctx};
    int rc = walk(data_dir, gc_one, &g, err);
    if (stats)
        *stats = g.st;
    return rc;
}

int hs_blob_collect_one(const char *data_dir, const char *sha256, int64_t now_ms, int64_t grace_ms,
                        hs_blob_referenced_fn ref, void *ref_ctx, bool *removed,
                        struct hs_error *err)
{
    *removed = false;
    if (!data_dir || !*data_dir || !ref || grace_ms < 0 || !sha256 ||
        !is_digest(sha256, strlen(sha256)))
        return hs_fail(err, HS_ERR_INVALID, "the collector needs a data directory and a digest");
    /* One file of a pass, by the pass's own step. */
    struct gc g = {.old_before_s = (now_ms - grace_ms) / 1000, .ref = ref, .ref_ctx = ref_ctx};
    char *dir = hs_aprintf("%s/blobs/%.2s/%.2s", data_dir, sha256, sha256 + 2);
    int rc = gc_one(&g, dir, sha256, err);
    *removed = g.st.removed > 0;
    free(dir);
    return rc;
}

struct usage {
    int64_t files, bytes;
};

static int count_one(void *ctx, const char *dir, const char *name, struct hs_error *err)
{
    (void)err;
    struct usage *u = ctx;
    if (!is_digest(name, strlen(name)))
        return HS_OK;
    char *path = hs_aprintf("%s/%s", dir, name);
    struct stat sb;
    if (lstat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
        u->files++;
        u->bytes += sb.st_size;
    }
    free(path);
    return HS_OK;
}

int hs_blob_usage(const char *data_dir, int64_t *files, int64_t *bytes, struct hs_error *err)
{
    if (!data_dir || !*data_dir)
        return hs_fail(err, HS_ERR_INVALID, "no data directory");
    struct usage u = {0};
    int rc = walk(data_dir, count_one, &u, err);
    if (!rc) {
        *files = u.files;
        *bytes = u.bytes;
    }
    return rc;
}
