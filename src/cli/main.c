/* main.c: the `hoversync` command line: global options, command dispatch and the exit-code
 * convention (0 ok, 1 failure with a one-line reason on stderr, 2 usage error). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cli/cli.h"
#include "core/log.h"
#include "hover/multi.h"
#include "core/str.h"
#include "store/blobs.h"
#include "sync/lease.h"
#include "sync/profile.h"

struct command {
    const char *name;
    int (*run)(struct cli *c, int argc, char **argv);
    int needs; /* NEEDS_NOTHING, NEEDS_STORE or NEEDS_CLIENT (store and client) */
    const char *summary;
};

enum { NEEDS_NOTHING, NEEDS_STORE, NEEDS_CLIENT };

static const struct command commands[] = {
    {"search", cmd_search, NEEDS_CLIENT, "search Hover jobs by name, address or user"},
    {"show", cmd_show, NEEDS_CLIENT, "show one job with its models and their artifacts"},
    {"sync", cmd_sync, NEEDS_CLIENT, "store the selected models of a job (or --pending ones)"},
    {"export", cmd_export, NEEDS_STORE, "print the records changed since a cursor"},
    {"fetch", cmd_fetch, NEEDS_CLIENT, "store an artifact a sync recorded but did not download"},
    {"backfill", cmd_backfill, NEEDS_CLIENT, "index (and --sync) historic jobs, resumable"},
    {"connect", cmd_connect, NEEDS_CLIENT, "connect a Hover org (OAuth authorization-code flow)"},
    {"serve", cmd_serve, NEEDS_STORE, "run the HTTP service (modal API, connect flow, files)"},
    {"worker", cmd_worker, NEEDS_STORE,
     "run the background work alone: webhook syncs, "
     "reconciliation, CRM notifications"},
    {"webhooks", cmd_webhooks, NEEDS_CLIENT, "register, list or delete the service's webhook"},
    {"status", cmd_status, NEEDS_STORE, "connections, webhook health, work queue and outbox"},
    {"store", cmd_store, NEEDS_NOTHING,
     "rotate-key: seal the stored secrets under a new key; copy: move a whole store; "
     "backup, restore, prune"},
    {"connections", cmd_connections, NEEDS_STORE,
     "list the connected Hover orgs, or delete one (--purge: with its records); set-artifacts: "
     "an org's artifact profile"},
    {"apikeys", cmd_apikeys, NEEDS_STORE, "create, list or revoke the API keys of CRM back-ends"},
    {"config", cmd_config, NEEDS_NOTHING, "print the effective configuration (secrets redacted)"},
};

static void usage(FILE *out)
{
    fputs("Usage: hoversync [GLOBAL OPTIONS] COMMAND [ARGS]\n\n"
          "Brings Hover jobs, models and measurements into a CRM's store.\n\n"
          "Commands:\n",
          out);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fputs("  help CMD     the help of one command (or: hoversync CMD --help)\n"
          "  version      print the version\n\n",
          out);
    hs_config_print_help(out);
    fputs("\nExit status: 0 success, 1 failure (reason on stderr), 2 usage error.\n", out);
}

void cli_client_config(const struct cli *c, struct hs_client_config *cc)
{
    memset(cc, 0, sizeof *cc);
    hs_client_config_defaults(cc);
    cc->base_url = hs_config_str(&c->cfg, CFG_HOVER_URL);
    cc->client_id = hs_config_str(&c->cfg, CFG_CLIENT_ID);
    cc->client_secret = hs_config_str(&c->cfg, CFG_CLIENT_SECRET);
    cc->credential_key = hs_config_str(&c->cfg, CFG_CONNECTION);
    cc->initial_access_token = hs_config_str(&c->cfg, CFG_ACCESS_TOKEN);
    cc->initial_refresh_token = hs_config_str(&c->cfg, CFG_REFRESH_TOKEN);
    cc->as_user_email = hs_config_str(&c->cfg, CFG_AS_USER);
    cc->as_user_id = hs_config_int(&c->cfg, CFG_AS_USER_ID);
    cc->max_attempts = (int)hs_config_int(&c->cfg, CFG_MAX_ATTEMPTS);
    cc->timeout_ms = hs_config_int(&c->cfg, CFG_TIMEOUT) * 1000;
    cc->rate_per_minute = (int)hs_config_int(&c->cfg, CFG_RATE_LIMIT);
}

bool cli_blobs_local(const struct cli *c)
{
    const char *url = hs_config_str(&c->cfg, CFG_BLOBS);
    return !url || !*url;
}

void cli_blobs_config(const struct cli *c, struct hs_blobs_config *bc)
{
    *bc = (struct hs_blobs_config){
        .data_dir = hs_config_str(&c->cfg, CFG_DATA_DIR),
        .url = hs_config_str(&c->cfg, CFG_BLOBS),
        .s3_endpoint = hs_config_str(&c->cfg, CFG_S3_ENDPOINT),
        .s3_region = hs_config_str(&c->cfg, CFG_S3_REGION),
        .access_key = hs_config_str(&c->cfg, CFG_AWS_ACCESS_KEY_ID),
        .secret_key = hs_config_str(&c->cfg, CFG_AWS_SECRET_ACCESS_KEY),
        .session_token = hs_config_str(&c->cfg, CFG_AWS_SESSION_TOKEN),
        .part_size = hs_config_int(&c->cfg, CFG_S3_PART_SIZE),
        .redirect_s = hs_config_int(&c->cfg, CFG_BLOBS_REDIRECT),
        .max_attempts = (int)hs_config_int(&c->cfg, CFG_MAX_ATTEMPTS),
    };
}

int cli_open(struct cli *c, bool with_client)
{
    struct hs_error err = {0};
    struct hs_store_options so = {.encryption_key = hs_config_str(&c->cfg, CFG_ENCRYPTION_KEY),
                                  .unmapped_reads = c->unmapped_reads};
    int rc = hs_store_open(hs_config_str(&c->cfg, CFG_DB), &so, &c->store, &err);
    if (rc)
        return cli_report("cannot open the store", rc, &err);
    /* Runs of processes that died (here or on another machine) stop saying "running". */
    hs_run_lease_configure(hs_config_int(&c->cfg, CFG_RUN_LEASE) * 1000);
    if (hs_run_lease_sweep(c->store, NULL, &err) != HS_OK)
        hs_warn("store msg=\"cannot mark lapsed sync runs interrupted\" error=\"%s\"", err.msg);
    hs_data_dir_private(hs_config_str(&c->cfg, CFG_DATA_DIR));
    struct hs_blobs_config bc;
    cli_blobs_config(c, &bc);
    if ((rc = hs_blobs_open(&bc, &c->blobs, &err)))
        return cli_report("cannot use the blob store", rc, &err);
    if (!with_client)
        return EXIT_OK;
    struct hs_client_config cc;
    cli_client_config(c, &cc);
    c->limiter = cli_shared_limiter(c);
    cc.limiter = c->limiter;
    rc = hs_client_new(&cc, hs_store_tokens(c->store), NULL, NULL, &c->client, &err);
    if (rc)
        return cli_report("cannot start the Hover client", rc, &err);
    return EXIT_OK;
}

int cli_clean_data_dir(struct cli *c, struct hs_error *err)
{
    return hs_blob_clean_tmp(hs_config_str(&c->cfg, CFG_DATA_DIR), err);
}

void cli_secrets_notice(const struct cli *c)
{
    const char *key = hs_config_str(&c->cfg, CFG_ENCRYPTION_KEY);
    if (!key || !*key)
        hs_warn("store msg=\"the OAuth tokens and webhook secrets are stored in clear: set "
                "HOVERSYNC_ENCRYPTION_KEY to encrypt them (docs/SECURITY.md)\" db=%s",
                hs_config_str(&c->cfg, CFG_DB));
}

void cli_close(struct cli *c)
{
    hs_client_free(c->client);
    c->client = NULL;
    hs_limiter_free(c->limiter);
    c->limiter = NULL;
    hs_blobs_free(c->blobs);
    c->blobs = NULL;
    hs_store_close(c->store);
    c->store = NULL;
}

int cli_report(const char *what, int rc, const struct hs_error *err)
{
    const char *reason = err && err->msg[0] ? err->msg : hs_err_name(rc);
    switch (rc) {
    case HS_ERR_NO_CREDENTIALS:
        fprintf(stderr,
                "hoversync: %s: no Hover credentials (%s); set HOVER_ACCESS_TOKEN and "
                "HOVER_REFRESH_TOKEN, with HOVER_CLIENT_ID and HOVER_CLIENT_SECRET\n",
                what, reason);
        break;
    case HS_ERR_INVALID_GRANT:
        fprintf(stderr, "hoversync: %s: Hover refused the stored grant (%s); reconnect the org\n",
                what, reason);
        break;
    default:
        fprintf(stderr, "hoversync: %s: %s\n", what, reason);
    }
    return rc == HS_ERR_INVALID ? EXIT_USAGE : EXIT_FAIL;
}

bool cli_is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

bool cli_opt_value(int argc, char **argv, int *i, const char *name, const char **value, bool *bad)
{
    const char *arg = argv[*i];
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0)
        return false;
    if (arg[n] == '=') {
        *value = arg + n + 1;
        return true;
    }
    if (arg[n] != '\0')
        return false;
    if (*i + 1 >= argc) {
        fprintf(stderr, "hoversync: %s needs a value\n", name);
        *bad = true;
        return true;
    }
    *value = argv[++*i];
    return true;
}

int cli_int_arg(const char *name, const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (hs_parse_i64_range(s, min, max, out) != 0) {
        fprintf(stderr, "hoversync: %s must be a whole number from %lld to %lld, not '%s'\n", name,
                (long long)min, (long long)max, s);
        return -1;
    }
    return 0;
}

int cmd_config(struct cli *c, int argc, char **argv)
{
    if (argc >= 2 && cli_is_help(argv[1])) {
        puts("Usage: hoversync config [show]\n\n"
             "Prints the configuration file read, then every setting: its name in that file,\n"
             "its environment variable, its value and where the value came from (flag, env,\n"
             "file:PATH:LINE, default). Secrets are never printed.");
        return EXIT_OK;
    }
    if (argc > 2 || (argc == 2 && strcmp(argv[1], "show") != 0)) {
        fprintf(stderr, "hoversync: config: unknown argument '%s'\n", argv[1]);
        return EXIT_USAGE;
    }
    hs_config_show(&c->cfg, stdout);
    return EXIT_OK;
}

/* The configuration table knows strings, not profiles: the profile's names are checked here,
 * before any command runs. */
static int check_artifacts(const struct hs_config *cfg)
{
    struct hs_profile p;
    struct hs_error err = {0};
    if (hs_profile_parse(hs_config_str(cfg, CFG_ARTIFACTS), &p, &err) == HS_OK)
        return 0;
    fprintf(stderr, "hoversync: --artifacts: %s\n", err.msg);
    return -1;
}

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    struct cli c = {0};
    hs_config_init(&c.cfg);
    c.stdout_tty = isatty(STDOUT_FILENO);

    /* Global options may stand anywhere; what remains is the command and its arguments. */
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    if (!rest)
        abort();
    int nrest = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            while (i < argc)
                rest[nrest++] = argv[i++];
            break;
        }
        int t = hs_config_take_flag(&c.cfg, argc, argv, &i);
        if (t < 0) {
            free(rest);
            return EXIT_USAGE;
        }
        if (t == 0)
            rest[nrest++] = argv[i];
    }
    int rc = EXIT_USAGE;
    if (nrest == 0 || cli_is_help(rest[0])) {
        usage(nrest == 0 ? stderr : stdout);
        rc = nrest == 0 ? EXIT_USAGE : EXIT_OK;
        goto out;
    }
    if (strcmp(rest[0], "version") == 0 || strcmp(rest[0], "--version") == 0) {
        printf("hoversync %s\n", HOVERSYNC_VERSION);
        rc = EXIT_OK;
        goto out;
    }
    char *help_argv[3];
    if (strcmp(rest[0], "help") == 0) {
        if (nrest < 2) {
            usage(stdout);
            rc = EXIT_OK;
            goto out;
        }
        help_argv[0] = rest[1];
        help_argv[1] = (char *)"--help";
        help_argv[2] = NULL;
        rest = memcpy(rest, help_argv, sizeof help_argv);
        nrest = 2;
    }
    const struct command *cmd = find_command(rest[0]);
    if (!cmd) {
        fprintf(stderr, "hoversync: unknown command '%s' (see hoversync --help)\n", rest[0]);
        goto out;
    }
    if (hs_config_load_file(&c.cfg) != 0 || hs_config_validate(&c.cfg) != 0 ||
        check_artifacts(&c.cfg) != 0)
        goto out;
    hs_log_set_level(hs_log_level_parse(hs_config_str(&c.cfg, CFG_LOG_LEVEL)));
    hs_log_set_format(hs_log_format_parse(hs_config_str(&c.cfg, CFG_LOG_FORMAT)));
    bool wants_help = false;
    for (int i = 1; i < nrest; i++)
        wants_help |= cli_is_help(rest[i]);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    /* Only the service's concurrent searches gain from mapping the store (store.h). */
    c.unmapped_reads = strcmp(cmd->name, "backfill") == 0 || strcmp(cmd->name, "sync") == 0;
    if (cmd->needs != NEEDS_NOTHING && !wants_help &&
        (rc = cli_open(&c, cmd->needs == NEEDS_CLIENT)) != EXIT_OK)
        goto out_curl;
    rc = cmd->run(&c, nrest, rest);
out_curl:
    cli_close(&c);
    hs_curl_multi_default_shutdown();
    curl_global_cleanup();
out:
    hs_config_free(&c.cfg);
    free(rest);
    return rc;
}
