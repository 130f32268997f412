/* cmd_store_copy.c: `hoversync store copy --from SOURCE --to TARGET`: a whole store copied into
 * another, SQLite or PostgreSQL either way (store/copy.h), so that an installation that outgrows
 * one machine keeps its history, its connections and its feed's cursor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "core/str.h"
#include "store/copy.h"
#include "store/pg.h"

void cli_store_copy_help(void)
{
    puts("Usage: hoversync store copy --from SOURCE --to TARGET [--replace]\n"
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
         "\n"
         "The copy is one transaction on TARGET: all of it or nothing. The secrets (OAuth\n"
         "tokens, webhook secrets) go over sealed as they are, so SOURCE and TARGET share one\n"
         "HOVERSYNC_ENCRYPTION_KEY: run the copy with the source's key set, and use the same key\n"
         "with TARGET afterwards (a store in clear stays in clear). The artifact files are not\n"
         "copied: they stay in the data directory (--data-dir), which the processes using\n"
         "TARGET keep using. Stop `hoversync serve` and `hoversync worker` on SOURCE first, then\n"
         "start them with --db TARGET. A PostgreSQL password goes in PGPASSWORD or ~/.pgpass,\n"
         "never in the URL.");
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

static int parse_args(int argc, char **argv, const char **from, const char **to, bool *replace)
{
    bool bad = false;
    for (int i = 2; i < argc && !bad; i++) {
        if (cli_opt_value(argc, argv, &i, "--from", from, &bad) ||
            cli_opt_value(argc, argv, &i, "--to", to, &bad))
            continue;
        if (strcmp(argv[i], "--replace") == 0) {
            *replace = true;
            continue;
        }
        fprintf(stderr,
                "hoversync: store copy: unknown argument '%s' (see hoversync store --help)\n",
                argv[i]);
        return EXIT_USAGE;
    }
    if (bad)
        return EXIT_USAGE;
    if (!*from || !**from || !*to || !**to) {
        fprintf(stderr, "hoversync: store copy: --from SOURCE and --to TARGET are both needed\n");
        return EXIT_USAGE;
    }
    if (same_store(*from, *to)) {
        fprintf(stderr, "hoversync: store copy: SOURCE and TARGET are the same store\n");
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

int cmd_store_copy(struct cli *c, int argc, char **argv)
{
    const char *from = NULL, *to = NULL;
    bool replace = false;
    int rc = parse_args(argc, argv, &from, &to, &replace);
    if (rc != EXIT_OK)
        return rc;
    const char *key = hs_config_str(&c->cfg, CFG_ENCRYPTION_KEY);
    struct hs_store_options so = {.encryption_key = key, .must_exist = true};
    struct hs_store_options to_opts = {.encryption_key = key};
    struct hs_store *src = NULL, *dst = NULL;
    struct hs_error err = {0};
    struct hs_copy_report rep = {0};
    char *shown = hs_url_redact(to);
    /* The source first: a missing one leaves the target as it was. */
    if ((rc = hs_store_open(from, &so, &src, &err))) {
        rc = cli_report("store copy: SOURCE", rc, &err);
        goto out;
    }
    if ((rc = hs_store_open(to, &to_opts, &dst, &err))) {
        rc = cli_report("store copy: TARGET", rc, &err);
        goto out;
    }
    if ((rc = hs_store_copy(src, dst, replace, &rep, &err))) {
        if (rep.not_empty)
            fprintf(stderr, "hoversync: store copy: %s; --replace deletes what it holds first\n",
                    err.msg);
        rc = rep.not_empty ? EXIT_FAIL : cli_report("store copy", rc, &err);
        goto out;
    }
    /* The artifact files: both stores name them by the same paths under the one data
     * directory, which the target's processes keep using. Copying them between blob back-ends
     * (when the target keeps its files elsewhere) belongs here, after the rows. */
    printf("copied %lld rows of %zu tables into %s\n", (long long)rep.rows, rep.tables, shown);
    rc = EXIT_OK;
out:
    hs_store_close(dst);
    hs_store_close(src);
    free(shown);
    return rc;
}
