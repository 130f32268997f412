/* cmd_fetch.c: `hoversync fetch MODEL_ID KIND`: an artifact a sync recorded but did not download
 * (outside its artifact profile, sync/profile.h) fetched now, checked and stored, as
 * GET /files/models/{id}/{kind} does; and `hoversync connections set-artifacts`, the artifact
 * profile stored on a connection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "store/records.h"
#include "store/service.h"
#include "sync/engine.h"
#include "sync/profile.h"

static void fetch_help(void)
{
    puts("Usage: hoversync fetch MODEL_ID KIND\n"
         "\n"
         "Stores the artifact KIND of a synced model (measurements.xlsx, cad_exports.skp,\n"
         "image.<id>, ...: the kinds `hoversync export` lists) and prints where it is. One that\n"
         "its sync recorded but did not download (outside the connection's artifact profile,\n"
         "--artifacts) is downloaded from Hover now, as a person waits (ahead of background\n"
         "work in the request budget), and checked before it is stored; one already stored\n"
         "costs no request.");
}

int cmd_fetch(struct cli *c, int argc, char **argv)
{
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fetch_help();
            return EXIT_OK;
        }
        if (argv[i][0] == '-' || npos == 2) {
            fprintf(stderr,
                    "hoversync: fetch: unknown argument '%s' (see hoversync fetch --help)\n",
                    argv[i]);
            return EXIT_USAGE;
        }
        pos[npos++] = argv[i];
    }
    int64_t model_id = 0;
    if (npos != 2) {
        fprintf(stderr, "hoversync: fetch: MODEL_ID and KIND expected (see hoversync fetch "
                        "--help)\n");
        return EXIT_USAGE;
    }
    if (cli_int_arg("MODEL_ID", pos[0], 1, INT64_MAX, &model_id) != 0)
        return EXIT_USAGE;
    struct hs_sync_engine e = {.client = c->client,
                               .store = c->store,
                               .data_dir = hs_config_str(&c->cfg, CFG_DATA_DIR),
                               .blobs = c->blobs,
                               .connection_key = hs_config_str(&c->cfg, CFG_CONNECTION)};
    struct hs_artifact_row row = {0};
    struct hs_error err = {0};
    bool downloaded = false;
    int rc = hs_sync_fetch_artifact(&e, model_id, pos[1], &row, &downloaded, &err);
    if (rc)
        return cli_report("fetch", rc, &err);
    printf("model %lld %s: %s, %lld bytes, sha256 %s\n%s/%s\n", (long long)model_id, row.kind,
           downloaded ? "fetched from Hover" : "already stored", (long long)row.bytes, row.sha256,
           e.data_dir, row.path);
    hs_artifact_row_clear(&row);
    return EXIT_OK;
}

void cli_connections_set_artifacts_help(void)
{
    puts("\n"
         "Usage: hoversync connections set-artifacts NAME (LIST | --clear)\n"
         "\n"
         "Stores the artifact profile of a connection: which artifacts its syncs download; the\n"
         "others are recorded with their Hover URL and fetched on first use (GET\n"
         "/files/models/{id}/{kind}, hoversync fetch). LIST is a comma list of artifact kinds\n"
         "(measurements.pdf, measurements.json, measurements.full_json, measurements.xlsx,\n"
         "cad_exports.skp, ...), images:none, images:first or images:all, default (the PDF, the\n"
         "measurements JSON the measurement columns come from, the first image) or all.\n"
         "--clear removes it: the connection follows --artifacts. A store created before\n"
         "profiles existed has `all` on each of its connections.");
}

int cli_connections_set_artifacts(struct cli *c, int argc, char **argv)
{
    for (int i = 2; i < argc; i++)
        if (cli_is_help(argv[i])) {
            cli_connections_set_artifacts_help();
            return EXIT_OK;
        }
    if (argc != 4) {
        fprintf(stderr, "hoversync: connections set-artifacts: NAME and LIST (or --clear) "
                        "expected (see hoversync connections --help)\n");
        return EXIT_USAGE;
    }
    const char *name = argv[2], *list = argv[3];
    bool clear = strcmp(list, "--clear") == 0;
    struct hs_profile p;
    struct hs_error err = {0};
    if (!clear && hs_profile_parse(list, &p, &err) != HS_OK)
        return cli_report("connections set-artifacts", HS_ERR_INVALID, &err);
    int rc = c->store->service->connection_artifacts_put(c->store, name, clear ? NULL : list, &err);
    if (rc)
        return cli_report("connections set-artifacts", rc, &err);
    if (clear)
        printf("connection %s: artifact profile removed; it follows --artifacts (%s)\n", name,
               hs_config_str(&c->cfg, CFG_ARTIFACTS));
    else
        printf("connection %s: artifact profile %s\n", name, list);
    return EXIT_OK;
}
