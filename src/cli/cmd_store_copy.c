/* cmd_store_copy.c: `hoversync store copy --from SOURCE --to TARGET`: a whole store copied into
 * another, SQLite or PostgreSQL either way (store/copy.h), so that an installation that outgrows
 * one machine keeps its history, its connections and its feed's cursor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "core/mem.h"
#include "core/str.h"
#include "store/blobs.h"
#include "store/copy.h"
#include "store/pg.h"

void cli_store_copy_help(void)
{
    puts("Usage: hoversync store copy --from SOURCE --to TARGET [--replace]\n"
         "                            [--from-blobs DIR|s3://BUCKET/PREFIX]\n"
         "                            [--to-blobs DIR|s3://BUCKET/PREFIX]\n"
         "\n"
         "Copies a whole store into another. SOURCE and TARGET are each a SQLite file or a\n"
         "postgresql:// URL, in either direction (SQLite to SQLite too). Everything goes over:\n"
         "the connections and their tokens, the records (jobs, models, artifacts, images,\n"
         "measurements, selections, sync runs and results) with their change numbers and the\n"
         "records feed's counter (a follower's `export --since CURSOR` goes on against the\n"
         "target, nothing missed or repeated), webhooks with their access ids, deliveries and\n"
         "replay memory, the work queue, the outbox, syncs, leases, the request budget's state,\n"
         "the settings (the API key's hash) and browser sessions.\n"
         "\n"
         "  --from SOURCE  the store to copy; it must exist, and is only read\n"
         "  --to TARGET    the store to fill: a SQLite file (created when missing) or an\n"
         "                 empty PostgreSQL database (its schema is made first)\n"
         "  --replace      delete what TARGET holds first; without it a TARGET that holds\n"
         "                 anything is refused\n"
         "  --from-blobs DIR|s3://BUCKET/PREFIX\n"
         "                 where SOURCE's artifact files are: a data directory or object\n"
         "                 storage (default: the configured --blobs, else --data-dir)\n"
         "  --to-blobs DIR|s3://BUCKET/PREFIX\n"
         "                 where TARGET's processes will find them (same default)\n"
         "\n"
         "The copy is one transaction on TARGET: all of it or nothing. The secrets (OAuth\n"
         "tokens, webhook secrets) go over sealed as they are, so SOURCE and TARGET share one\n"
         "HOVERSYNC_ENCRYPTION_KEY: run the copy with the source's key set, and use the same key\n"
         "with TARGET afterwards (a store in clear stays in clear).\n"
         "\n"
         "The artifact files: when --from-blobs and --to-blobs name the same place (as they do\n"
         "by default) they stay where they are. Otherwise every file an artifact row of SOURCE\n"
         "points at is copied there first, each checked against its SHA-256 on the way (one\n"
         "already there with its size is kept), and TARGET's rows commit only once all of them\n"
         "are in place: a file missing from --from-blobs, or one that cannot be stored, stops\n"
         "the copy and TARGET gets no rows. Both sides use the configured --s3-endpoint,\n"
         "--s3-region and AWS credentials; files bound for object storage pass through\n"
         "--data-dir/tmp. Stop `hoversync serve` and `hoversync worker` on SOURCE first, then\n"
         "start them with --db TARGET (and --blobs or --data-dir as --to-blobs). A PostgreSQL\n"
         "password goes in PGPASSWORD or ~/.pgpass, never in the URL.");
}

/* True when a and b name one store: the same text, or one SQLite file under two paths. */
static bool same_store(const char *a, const char *b)
{
    if (strcmp(a, b) == 0)
        return true;
    struct stat sa, sb;
    if (hs_store_is_pg_url(a) || hs_store_is_pg_url(b) || stat(a, &sa) != 0 || stat(b, &sb) != 0)
        return false;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

struct copy_args {
    const char *from, *to;
    const char *from_blobs, *to_blobs; /* NULL: the configured blob store */
    bool replace;
};

static int parse_args(int argc, char **argv, struct copy_args *a)
{
    bool bad = false;
    for (int i = 2; i < argc && !bad; i++) {
        if (cli_opt_value(argc, argv, &i, "--from", &a->from, &bad) ||
            cli_opt_value(argc, argv, &i, "--to", &a->to, &bad) ||
            cli_opt_value(argc, argv, &i, "--from-blobs", &a->from_blobs, &bad) ||
            cli_opt_value(argc, argv, &i, "--to-blobs", &a->to_blobs, &bad))
            continue;
        if (strcmp(argv[i], "--replace") == 0) {
            a->replace = true;
            continue;
        }
        fprintf(stderr,
                "hoversync: store copy: unknown argument '%s' (see hoversync store --help)\n",
                argv[i]);
        return EXIT_USAGE;
    }
    if (bad)
        return EXIT_USAGE;
    if (!a->from || !*a->from || !a->to || !*a->to) {
        fprintf(stderr, "hoversync: store copy: --from SOURCE and --to TARGET are both needed\n");
        return EXIT_USAGE;
    }
    if (same_store(a->from, a->to)) {
        fprintf(stderr, "hoversync: store copy: SOURCE and TARGET are the same store\n");
        return EXIT_USAGE;
    }
    if ((a->from_blobs && !*a->from_blobs) || (a->to_blobs && !*a->to_blobs)) {
        fprintf(stderr, "hoversync: store copy: --from-blobs and --to-blobs need a folder or "
                        "an s3:// URL\n");
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* The blob store `where` names (a folder or s3://...; NULL: the configured one). A source
 * folder named on the command line must exist: a mistyped path would otherwise read as a store
 * without files. */
static int open_blobs(struct cli *c, const char *what, const char *where, bool must_exist,
                      struct hs_blobs **out)
{
    struct hs_blobs_config bc;
    cli_blobs_config(c, &bc);
    if (where && strncmp(where, "s3://", 5) == 0) {
        bc.url = where;
    } else if (where) {
        bc.url = NULL;
        bc.data_dir = where;
    }
    struct stat st;
    if (where && must_exist && (!bc.url || !*bc.url) &&
        (stat(bc.data_dir, &st) != 0 || !S_ISDIR(st.st_mode))) {
        fprintf(stderr, "hoversync: %s: no folder %s\n", what, bc.data_dir);
        return EXIT_USAGE;
    }
    struct hs_error err = {0};
    int rc = hs_blobs_open(&bc, out, &err);
    return rc ? cli_report(what, rc, &err) : EXIT_OK;
}

/* Whether two blob stores are one place: the same object storage URL (both use the one
 * configured endpoint), or one folder under two paths. */
static bool same_blobs(const struct hs_blobs *a, const struct hs_blobs *b)
{
    if (hs_blobs_is_local(a) != hs_blobs_is_local(b))
        return false;
    if (!hs_blobs_is_local(a))
        return strcmp(a->location, b->location) == 0;
    if (strcmp(a->data_dir, b->data_dir) == 0)
        return true;
    struct stat sa, sb;
    if (stat(a->data_dir, &sa) != 0 || stat(b->data_dir, &sb) != 0)
        return false;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* What the copy's hook needs: every file SOURCE's artifact rows point at, copied (and checked
 * by digest) from one blob store to the other before TARGET's transaction commits. */
struct blob_move {
    struct hs_store *src;
    const struct hs_blobs *from, *to;
    int64_t copied, kept;
};

static int move_blobs(void *arg, struct hs_error *err)
{
    struct blob_move *m = arg;
    int rc = hs_blobs_copy_store(m->src, m->from, m->to, &m->copied, &m->kept, err);
    if (rc == HS_ERR_NOT_FOUND) {
        char *why = hs_strdup(err->msg);
        rc = hs_fail(err, rc,
                     "the artifact files: %s lacks a file an artifact row of SOURCE points at "
                     "(%s); check --from-blobs",
                     m->from->location, why);
        free(why);
    }
    return rc;
}

int cmd_store_copy(struct cli *c, int argc, char **argv)
{
    struct copy_args a = {0};
    int rc = parse_args(argc, argv, &a);
    if (rc != EXIT_OK)
        return rc;
    const char *key = hs_config_str(&c->cfg, CFG_ENCRYPTION_KEY);
    struct hs_store_options so = {.encryption_key = key, .must_exist = true};
    struct hs_store_options to_opts = {.encryption_key = key};
    struct hs_store *src = NULL, *dst = NULL;
    struct hs_blobs *from_blobs = NULL, *to_blobs = NULL;
    struct hs_error err = {0};
    struct hs_copy_report rep = {0};
    char *shown = hs_url_redact(a.to);
    if ((rc = open_blobs(c, "store copy: --from-blobs", a.from_blobs, true, &from_blobs)) ||
        (rc = open_blobs(c, "store copy: --to-blobs", a.to_blobs, false, &to_blobs)))
        goto out;
    /* The source first: a missing one leaves the target as it was. */
    if ((rc = hs_store_open(a.from, &so, &src, &err))) {
        rc = cli_report("store copy: SOURCE", rc, &err);
        goto out;
    }
    if ((rc = hs_store_open(a.to, &to_opts, &dst, &err))) {
        rc = cli_report("store copy: TARGET", rc, &err);
        goto out;
    }
    /* One blob store on both sides: the files stay where they are. Otherwise they are copied
     * inside the target's transaction, after its rows are written and before they commit, so
     * that no committed row points at a file the target's processes cannot find. */
    bool move = !same_blobs(from_blobs, to_blobs);
    struct blob_move m = {.src = src, .from = from_blobs, .to = to_blobs};
    if ((rc =
             hs_store_copy_before(src, dst, a.replace, move ? move_blobs : NULL, &m, &rep, &err))) {
        if (rep.not_empty)
            fprintf(stderr, "hoversync: store copy: %s; --replace deletes what it holds first\n",
                    err.msg);
        rc = rep.not_empty ? EXIT_FAIL : cli_report("store copy", rc, &err);
        goto out;
    }
    printf("copied %lld rows of %zu tables into %s\n", (long long)rep.rows, rep.tables, shown);
    if (move)
        printf("copied %lld artifact files from %s to %s (%lld already there)\n",
               (long long)m.copied, from_blobs->location, to_blobs->location, (long long)m.kept);
    rc = EXIT_OK;
out:
    hs_store_close(dst);
    hs_store_close(src);
    hs_blobs_free(to_blobs);
    hs_blobs_free(from_blobs);
    free(shown);
    return rc;
}
