/* cmd_store_backup.c: `hoversync store backup DIR`, `store restore DIR` and `store prune`
 * (docs/OPERATIONS.md).
 *
 * A backup folder holds hoversync.db (a consistent copy of a live SQLite store: online backup,
 * store/sqlite.h), blobs/ab/cd/<sha256> (the artifact files the copy points at, the data
 * directory's layout) and manifest.json, written last: the format, the copy's SHA-256 and every
 * file's digest and size. The files are copied after the database, so every file the copy
 * points at exists (a file is never modified, and the collector of unreferenced files removes
 * none a row points at). restore checks every digest while it copies into an empty target. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/clock.h"
#include "core/mem.h"
#include "core/str.h"
#include "store/backup_manifest.h"
#include "store/blobs.h"
#include "store/pg.h"
#include "store/service.h"
#include "store/sqlite.h"
#include "worker/retention.h"

#define DB_NAME        HS_BACKUP_DB
#define MANIFEST       HS_BACKUP_MANIFEST
#define PAGES_PER_STEP 256
#define COPY_CHUNK     65536

static const char see_docs[] = "see docs/OPERATIONS.md \"Backup and restore\"";

static int io_error(struct hs_error *err, const char *what, const char *path)
{
    char eb[128];
    return hs_fail(err, HS_ERR_IO, "%s %s: %s", what, path, strerror_r(errno, eb, sizeof eb));
}

/* True when path does not exist or is an empty directory (-1: exists and is something else). */
static int empty_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT ? 1 : -1;
    struct dirent *e;
    int empty = 1;
    while (empty && (e = readdir(d)) != NULL)
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    return empty;
}

/* Streams src into dst (created, refused if it exists, 0600, fsynced; NULL: only read), giving
 * the hex SHA-256 of the bytes and their number. */
static int copy_hashed(const char *src, const char *dst, char hex[65], int64_t *bytes,
                       struct hs_error *err)
{
    int in = open(src, O_RDONLY | O_CLOEXEC), out = -1, rc = HS_OK;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char *buf = hs_malloc(COPY_CHUNK);
    int64_t n = 0;
    if (in < 0) {
        rc = io_error(err, "cannot open", src);
        goto out;
    }
    if (dst && (out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
        rc = io_error(err, "cannot create", dst);
        goto out;
    }
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        rc = hs_fail(err, HS_ERR_INTERNAL, "SHA-256 unavailable");
        goto out;
    }
    ssize_t got;
    while ((got = read(in, buf, COPY_CHUNK)) > 0) {
        EVP_DigestUpdate(md, buf, (size_t)got);
        n += got;
        for (ssize_t off = 0; out >= 0 && off < got;) {
            ssize_t w = write(out, buf + off, (size_t)(got - off));
            if (w < 0) {
                rc = io_error(err, "cannot write", dst);
                goto out;
            }
            off += w;
        }
    }
    if (got < 0) {
        rc = io_error(err, "cannot read", src);
        goto out;
    }
    if (out >= 0 && fsync(out) != 0) {
        rc = io_error(err, "cannot fsync", dst);
        goto out;
    }
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    EVP_DigestFinal_ex(md, d, &dl);
    hs_hex(d, 32, hex);
    *bytes = n;
out:
    if (in >= 0)
        close(in);
    if (out >= 0 && close(out) != 0 && !rc)
        rc = io_error(err, "cannot close", dst);
    if (rc && out >= 0)
        unlink(dst);
    EVP_MD_CTX_free(md);
    free(buf);
    return rc;
}

/* Copies the file at src into data_dir's content-addressed layout (blobs.h), checking that its
 * bytes have the digest sha256. */
static int copy_blob(const char *src, const char *data_dir, const char *sha256, int64_t *bytes,
                     struct hs_error *err)
{
    struct hs_blob_writer *w = NULL;
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return io_error(err, "cannot open", src);
    int rc = hs_blob_begin(data_dir, &w, err);
    unsigned char *buf = hs_malloc(COPY_CHUNK);
    ssize_t got = 0;
    while (!rc && (got = read(in, buf, COPY_CHUNK)) > 0)
        rc = hs_blob_write(w, buf, (size_t)got, err);
    if (!rc && got < 0)
        rc = io_error(err, "cannot read", src);
    close(in);
    free(buf);
    char hex[65];
    char *rel = NULL;
    if (!rc)
        rc = hs_blob_commit(w, hex, bytes, &rel, err);
    if (!rc && strcmp(hex, sha256) != 0)
        rc = hs_fail(err, HS_ERR_IO, "%s does not match its digest (its bytes hash to %s)", src,
                     hex);
    free(rel);
    hs_blob_abort(w);
    return rc;
}

static int write_manifest(const char *dir, json_t *m, struct hs_error *err)
{
    char *tmp = hs_aprintf("%s/" MANIFEST ".tmp", dir);
    char *path = hs_aprintf("%s/" MANIFEST, dir);
    int rc = HS_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    char *text = json_dumps(m, JSON_INDENT(1) | JSON_SORT_KEYS);
    size_t len = text ? strlen(text) : 0;
    if (fd < 0 || !text || write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1 ||
        fsync(fd) != 0)
        rc = io_error(err, "cannot write", tmp);
    if (fd >= 0)
        close(fd);
    if (!rc && rename(tmp, path) != 0)
        rc = io_error(err, "cannot rename into", path);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (!rc && fsync(dfd) != 0)
            rc = io_error(err, "cannot fsync", dir);
        close(dfd);
    }
    free(text);
    free(tmp);
    free(path);
    return rc;
}

struct backup {
    const char *data_dir, *dir;
    json_t *files, *missing;
    int64_t bytes;
    struct hs_error err;
    struct hs_store *store; /* for the hold on the files */
    int64_t fence, renewed_ms;
};

static int64_t wall_ms(void)
{
    return hs_clock_system()->wall_ms(hs_clock_system());
}

/* Takes the hold on the files (worker/retention.h HS_FILES_HOLD) before the database is copied,
 * so that no file the copy points at is collected before it is copied; waits for a collector's
 * pass to end. */
static int hold_files(struct backup *b)
{
    bool said = false;
    for (;;) {
        int64_t now = wall_ms();
        int rc = b->store->service->lease_claim(b->store, HS_FILES_HOLD, now, HS_FILES_HOLD_MS,
                                                &b->fence, &b->err);
        if (rc != HS_ERR_BUSY) {
            b->renewed_ms = now;
            return rc;
        }
        if (!said)
            fprintf(stderr, "hoversync: store backup: waiting for the collector of files\n");
        said = true;
        sleep(1);
    }
}

/* Keeps the hold while files are copied (renewed every third of its length). */
static int hold_renew(struct backup *b)
{
    int64_t now = wall_ms();
    if (now - b->renewed_ms < HS_FILES_HOLD_MS / 3)
        return HS_OK;
    b->renewed_ms = now;
    return b->store->service->lease_renew(b->store, HS_FILES_HOLD, b->fence, now + HS_FILES_HOLD_MS,
                                          &b->err);
}

static int backup_one(void *ctx, const char *sha256, const char *rel, int64_t bytes)
{
    struct backup *b = ctx;
    (void)bytes;
    if (hold_renew(b))
        return -1; /* lost: a collector may run */
    char *src = hs_aprintf("%s/%s", b->data_dir, rel);
    int64_t n = 0;
    struct hs_error e = {0};
    int rc = copy_blob(src, b->dir, sha256, &n, &e);
    free(src);
    if (rc == HS_OK) {
        /* Named by where it now is: its digest's place (blobs.h), whatever the row said. */
        char *at = hs_aprintf("blobs/%.2s/%.2s/%s", sha256, sha256 + 2, sha256);
        json_array_append_new(b->files, json_pack("{s:s, s:s, s:I}", "sha256", sha256, "path", at,
                                                  "bytes", (json_int_t)n));
        free(at);
        b->bytes += n;
        return 0;
    }
    /* A file the store points at but the data directory lacks (or holds damaged): the backup
     * goes on and says so. */
    fprintf(stderr, "hoversync: store backup: %s\n", e.msg);
    json_array_append_new(
        b->missing, json_pack("{s:s, s:s, s:s}", "sha256", sha256, "path", rel, "error", e.msg));
    return 0;
}

static void backup_help(void)
{
    puts("Usage: hoversync store backup DIR\n"
         "\n"
         "Copies the SQLite store (--db) and the artifact files it points at (--data-dir)\n"
         "into DIR (new, or an empty folder) while the service runs: the database by\n"
         "SQLite's online backup, a consistent state of a moment during the copy; then\n"
         "each file it points at by its SHA-256, checked; manifest.json, written last,\n"
         "lists them with their digests. Restore with `hoversync store restore DIR`.\n"
         "Run it with the service's configuration (HOVERSYNC_ENCRYPTION_KEY included):\n"
         "it opens the store to keep the collector of unreferenced files away meanwhile.\n"
         "The OAuth tokens and webhook secrets stay encrypted under\n"
         "HOVERSYNC_ENCRYPTION_KEY: keep the key too, apart from the backup.\n"
         "A PostgreSQL store is backed up with pg_dump or a base backup instead\n"
         "(docs/OPERATIONS.md).");
}

int cmd_store_backup(struct cli *c, int argc, char **argv)
{
    if (argc >= 2 && cli_is_help(argv[1])) {
        backup_help();
        return EXIT_OK;
    }
    if (argc != 2) {
        fprintf(stderr, "hoversync: store backup: one folder expected (see --help)\n");
        return EXIT_USAGE;
    }
    const char *dir = argv[1], *db = hs_config_str(&c->cfg, CFG_DB);
    if (hs_store_is_pg_url(db)) {
        fprintf(stderr,
                "hoversync: store backup: the store is PostgreSQL: back it up with pg_dump or a "
                "base backup, then the data folder (%s)\n",
                see_docs);
        return EXIT_FAIL;
    }
    if (!cli_blobs_local(c)) {
        fprintf(stderr,
                "hoversync: store backup: the artifact files are in object storage (--blobs): "
                "back up the database, then the bucket (%s)\n",
                see_docs);
        return EXIT_FAIL;
    }
    if (access(db, R_OK) != 0) {
        fprintf(stderr, "hoversync: store backup: no store at %s\n", db);
        return EXIT_FAIL;
    }
    if (empty_dir(dir) != 1 || (mkdir(dir, 0700) != 0 && errno != EEXIST)) {
        fprintf(stderr, "hoversync: store backup: %s must be a new or empty folder\n", dir);
        return EXIT_USAGE;
    }
    if (cli_open(c, false) != EXIT_OK)
        return EXIT_FAIL;
    struct backup b = {.data_dir = hs_config_str(&c->cfg, CFG_DATA_DIR),
                       .dir = dir,
                       .files = json_array(),
                       .missing = json_array(),
                       .store = c->store};
    char *copy = hs_aprintf("%s/" DB_NAME, dir), *tmp = hs_aprintf("%s/tmp", dir);
    int64_t pages = 0, db_bytes = 0;
    char db_sha[65];
    int rc = hold_files(&b);
    if (!rc)
        rc = hs_sqlite_backup(db, copy, PAGES_PER_STEP, &pages, &b.err);
    if (!rc)
        rc = hs_sqlite_artifact_files(copy, backup_one, &b, &b.err);
    if (b.fence)
        (void)c->store->service->lease_release(c->store, HS_FILES_HOLD, b.fence, NULL);
    if (!rc)
        rc = copy_hashed(copy, NULL, db_sha, &db_bytes, &b.err);
    (void)rmdir(tmp); /* the writers' temporary folder, empty by now */
    if (!rc) {
        char now[40];
        hs_iso8601_format(time(NULL), 0, now, sizeof now);
        json_t *m = json_pack("{s:s, s:s, s:s, s:s, s:I, s:O, s:O}", "format", HS_BACKUP_FORMAT,
                              "created_at", now, "db", DB_NAME, "db_sha256", db_sha, "db_bytes",
                              (json_int_t)db_bytes, "files", b.files, "missing", b.missing);
        rc = write_manifest(dir, m, &b.err);
        json_decref(m);
    }
    size_t n_missing = json_array_size(b.missing);
    if (!rc)
        printf("backup %s: store %lld bytes, %zu files (%lld bytes)%s\n", dir, (long long)db_bytes,
               json_array_size(b.files), (long long)b.bytes,
               n_missing ? ", some files missing (above)" : "");
    json_decref(b.files);
    json_decref(b.missing);
    free(copy);
    free(tmp);
    if (rc)
        return cli_report("store backup", rc, &b.err);
    return n_missing ? EXIT_FAIL : EXIT_OK;
}

/* The manifest of a backup folder, read whole (within its cap) and checked for its shape. */
static int read_manifest(const char *dir, struct hs_backup_manifest *out, struct hs_error *err)
{
    char *path = hs_aprintf("%s/" MANIFEST, dir);
    struct stat sb;
    char *text = NULL;
    int rc = HS_OK;
    FILE *f = NULL;
    if (stat(path, &sb) != 0) {
        rc = hs_fail(err, HS_ERR_INVALID, "%s has no " MANIFEST ": not a complete backup", dir);
    } else if (sb.st_size > HS_BACKUP_MANIFEST_MAX) {
        rc =
            hs_fail(err, HS_ERR_TOOBIG, "%s is larger than %d bytes", path, HS_BACKUP_MANIFEST_MAX);
    } else if (!(f = fopen(path, "rb"))) {
        rc = io_error(err, "cannot open", path);
    } else {
        text = hs_malloc((size_t)sb.st_size + 1);
        size_t got = fread(text, 1, (size_t)sb.st_size, f);
        if (got != (size_t)sb.st_size)
            rc = io_error(err, "cannot read", path);
        else
            rc = hs_backup_manifest_parse(text, got, out, err);
    }
    if (f)
        fclose(f);
    if (rc == HS_ERR_PARSE) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        rc = hs_fail(err, HS_ERR_PARSE, "%s: %s", path, msg);
    }
    free(text);
    free(path);
    return rc;
}

/* The files of the manifest into data_dir, each checked against its digest. */
static int restore_files(const char *dir, const struct hs_backup_manifest *m, const char *data_dir,
                         int64_t *bytes, struct hs_error *err)
{
    for (size_t i = 0; i < m->n_files; i++) {
        char *src = hs_aprintf("%s/%s", dir, m->files[i].path);
        int64_t n = 0;
        int rc = copy_blob(src, data_dir, m->files[i].sha256, &n, err);
        free(src);
        if (rc)
            return rc;
        *bytes += n;
    }
    return HS_OK;
}

static void restore_help(void)
{
    puts("Usage: hoversync store restore DIR\n"
         "\n"
         "Brings a folder of `hoversync store backup` into the configured --db (which must\n"
         "not exist) and --data-dir (missing or empty), checking the SHA-256 of the\n"
         "database and of every file on the way. Set HOVERSYNC_ENCRYPTION_KEY to the key\n"
         "the backed-up store used: its OAuth tokens and webhook secrets are sealed\n"
         "under it.");
}

int cmd_store_restore(struct cli *c, int argc, char **argv)
{
    if (argc >= 2 && cli_is_help(argv[1])) {
        restore_help();
        return EXIT_OK;
    }
    if (argc != 2) {
        fprintf(stderr, "hoversync: store restore: one folder expected (see --help)\n");
        return EXIT_USAGE;
    }
    const char *dir = argv[1], *db = hs_config_str(&c->cfg, CFG_DB);
    const char *data_dir = hs_config_str(&c->cfg, CFG_DATA_DIR);
    if (hs_store_is_pg_url(db)) {
        fprintf(stderr,
                "hoversync: store restore: a PostgreSQL store is restored with its own "
                "tools (%s)\n",
                see_docs);
        return EXIT_FAIL;
    }
    if (!cli_blobs_local(c)) {
        fprintf(stderr, "hoversync: store restore: restores into the local folder --data-dir, "
                        "not object storage (--blobs)\n");
        return EXIT_USAGE;
    }
    struct stat sb;
    char *wal = hs_aprintf("%s-wal", db);
    bool taken = stat(db, &sb) == 0 || stat(wal, &sb) == 0; /* a WAL left would be replayed */
    free(wal);
    if (taken || empty_dir(data_dir) != 1) {
        fprintf(stderr,
                "hoversync: store restore: the target is not empty: %s must not exist and %s "
                "must be missing or empty\n",
                db, data_dir);
        return EXIT_USAGE;
    }
    struct hs_error err = {0};
    struct hs_backup_manifest m = {0};
    int rc = read_manifest(dir, &m, &err);
    if (rc)
        return cli_report("store restore", rc, &err);
    char *src = hs_aprintf("%s/" DB_NAME, dir);
    char sha[65];
    int64_t db_bytes = 0, bytes = 0;
    /* The database first, checked, then the files: a failure removes the database again, so
     * that no half-restored store looks whole. */
    rc = copy_hashed(src, db, sha, &db_bytes, &err);
    if (!rc && strcmp(sha, m.db_sha256) != 0)
        rc = hs_fail(&err, HS_ERR_IO, "%s does not match its digest in the manifest", src);
    if (!rc)
        rc = restore_files(dir, &m, data_dir, &bytes, &err);
    if (rc && stat(db, &sb) == 0 && unlink(db) == 0)
        fprintf(stderr,
                "hoversync: store restore: %s removed again; empty %s before trying "
                "again\n",
                db, data_dir);
    free(src);
    size_t n_files = m.n_files;
    hs_backup_manifest_clear(&m);
    if (rc)
        return cli_report("store restore", rc, &err);
    printf("restored %s (%lld bytes) and %zu files (%lld bytes) into %s\n", db, (long long)db_bytes,
           n_files, (long long)bytes, data_dir);
    /* Opened once, as the service will: the schema and the key are checked now. */
    if (cli_open(c, false) != EXIT_OK) {
        fprintf(stderr, "hoversync: store restore: the files are in place, but the store does "
                        "not open as configured (above)\n");
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

static void prune_help(void)
{
    puts("Usage: hoversync store prune [--batch N]\n"
         "\n"
         "Runs the retention duty once, now (serve and worker run it every\n"
         "--retention-interval): deletes handled webhook deliveries older than\n"
         "--keep-webhook-events days, sync runs and results older than --keep-sync-runs\n"
         "days (each model's latest result stays), delivered CRM notifications older than\n"
         "--keep-outbox days, expired webhook signatures and connect flows, in\n"
         "transactions of N rows (500), then the artifact files no row points at that were\n"
         "not written or reused for --blob-grace seconds. Prints what it removed.");
}

int cmd_store_prune(struct cli *c, int argc, char **argv)
{
    int64_t batch = HS_RETENTION_BATCH;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        bool bad = false;
        if (cli_is_help(argv[i])) {
            prune_help();
            return EXIT_OK;
        } else if (cli_opt_value(argc, argv, &i, "--batch", &v, &bad)) {
            if (cli_int_arg("--batch", v, 1, 100000, &batch) != 0)
                return EXIT_USAGE;
        } else {
            if (!bad)
                fprintf(stderr, "hoversync: store prune: unknown argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (cli_open(c, false) != EXIT_OK)
        return EXIT_FAIL;
    struct hs_retention_config rc_cfg;
    cli_retention_config(c, &rc_cfg);
    rc_cfg.batch = batch;
    struct hs_retention_report r;
    struct hs_error err = {0};
    int rc = hs_retention_run(c->store, &rc_cfg, wall_ms(), &r, &err);
    for (int k = 0; k < HS_PRUNE_KINDS; k++)
        printf("%-16s %lld rows\n", hs_prune_kind_name(k), (long long)r.removed[k]);
    printf("%-16s %lld (%lld bytes); %lld unreferenced kept within the grace\n", "files",
           (long long)r.files.removed, (long long)r.files.removed_bytes,
           (long long)r.files.kept_fresh);
    printf("%-16s %lld\n", "transactions", (long long)r.batches);
    return rc ? cli_report("store prune", rc, &err) : EXIT_OK;
}
