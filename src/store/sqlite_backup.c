/* sqlite_backup.c: a consistent copy of a live SQLite store, and the artifact files a store
 * file points at (store/sqlite.h; `hoversync store backup`, docs/OPERATIONS.md).
 *
 * The copy is SQLite's online backup: pages are read from a connection of its own, a batch at a
 * time. In WAL mode a reader never blocks a writer, so the service goes on writing meanwhile;
 * a write by another connection between two batches makes SQLite start the copy again (the copy
 * is then of a later state, still consistent). A store written to continuously could restart
 * it for ever, so after a few restarts the rest is copied in one step: one read snapshot, which
 * blocks no writer either (only the WAL's checkpoint waits for it to end). */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/sqlite.h"

#define RESTARTS_BEFORE_ONE_STEP 3
#define PAUSE_MS                 5
#define BUSY_MS                  5000

static int fail_db(sqlite3 *db, int rc, struct hs_error *err, const char *what, const char *path)
{
    return hs_fail(err, rc == SQLITE_NOMEM ? HS_ERR_INTERNAL : HS_ERR_IO, "%s %s: %s", what, path,
                   db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

/* Creates dst_path (refused if it exists) private to its owner, and opens it. */
static int open_new(const char *dst_path, sqlite3 **dst, struct hs_error *err)
{
    int fd = open(dst_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        char eb[128];
        return hs_fail(err, errno == EEXIST ? HS_ERR_INVALID : HS_ERR_IO, "cannot create %s: %s",
                       dst_path, strerror_r(errno, eb, sizeof eb));
    }
    close(fd);
    int rc = sqlite3_open_v2(dst_path, dst, SQLITE_OPEN_READWRITE, NULL);
    if (rc != SQLITE_OK)
        return fail_db(*dst, rc, err, "cannot open", dst_path);
    return HS_OK;
}

static int copy_pages(sqlite3 *src, sqlite3 *dst, int pages_per_step, int64_t *pages,
                      struct hs_error *err)
{
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    if (!b)
        return fail_db(dst, sqlite3_errcode(dst), err, "cannot start the backup of", "the store");
    int step = pages_per_step > 0 ? pages_per_step : 256;
    int restarts = 0, last_remaining = -1, rc;
    for (;;) {
        rc = sqlite3_backup_step(b, step);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_OK && rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
            break;
        int remaining = sqlite3_backup_remaining(b);
        if (last_remaining >= 0 && remaining > last_remaining &&
            ++restarts >= RESTARTS_BEFORE_ONE_STEP)
            step = -1;
        last_remaining = remaining;
        sqlite3_sleep(PAUSE_MS);
    }
    *pages = sqlite3_backup_pagecount(b);
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE)
        return fail_db(dst, rc, err, "backup failed into", "the copy");
    return HS_OK;
}

int hs_sqlite_backup(const char *src_path, const char *dst_path, int pages_per_step, int64_t *pages,
                     struct hs_error *err)
{
    if (!src_path || !dst_path)
        return hs_fail(err, HS_ERR_INVALID, "backup without a store or a target");
    sqlite3 *src = NULL, *dst = NULL;
    int rc = sqlite3_open_v2(src_path, &src, SQLITE_OPEN_READWRITE, NULL);
    if (rc != SQLITE_OK) {
        rc = fail_db(src, rc, err, "cannot open", src_path);
        goto out;
    }
    sqlite3_busy_timeout(src, BUSY_MS);
    if ((rc = open_new(dst_path, &dst, err)))
        goto out;
    int64_t n = 0;
    if ((rc = copy_pages(src, dst, pages_per_step, &n, err)))
        goto out;
    /* One self-contained file (no -wal beside it); a store that opens it turns WAL on again. */
    if (sqlite3_exec(dst, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL) != SQLITE_OK) {
        rc = fail_db(dst, sqlite3_errcode(dst), err, "cannot finish", dst_path);
        goto out;
    }
    rc = sqlite3_close(dst);
    dst = NULL;
    if (rc != SQLITE_OK) {
        rc = fail_db(NULL, rc, err, "cannot close", dst_path);
        goto out;
    }
    int fd = open(dst_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        char eb[128];
        rc = hs_fail(err, HS_ERR_IO, "cannot fsync %s: %s", dst_path,
                     strerror_r(errno, eb, sizeof eb));
    }
    if (fd >= 0)
        close(fd);
    if (!rc && pages)
        *pages = n;
out:
    sqlite3_close(dst);
    sqlite3_close(src);
    return rc;
}

int hs_sqlite_artifact_files(const char *path,
                             int (*fn)(void *ctx, const char *sha256, const char *rel_path,
                                       int64_t bytes),
                             void *ctx, struct hs_error *err)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db,
                                "SELECT sha256, path, MAX(bytes) FROM artifacts "
                                "GROUP BY sha256, path ORDER BY sha256, path",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) {
        rc = fail_db(db, rc, err, "cannot read the artifacts of", path);
        goto out;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *sha = (const char *)sqlite3_column_text(st, 0);
        const char *rel = (const char *)sqlite3_column_text(st, 1);
        int r = fn(ctx, sha ? sha : "", rel ? rel : "", sqlite3_column_int64(st, 2));
        if (r) {
            rc = r < 0 ? r : HS_OK;
            goto out;
        }
    }
    rc = rc == SQLITE_DONE ? HS_OK : fail_db(db, rc, err, "cannot read the artifacts of", path);
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}
