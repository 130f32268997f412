/* cmd_apikeys.c: `hoversync apikeys create|list|revoke`: the named API keys of CRM back-ends
 * (src/server/auth.c), kept in the store as their SHA-256 only. A running service, every
 * instance of it, takes a new key at once and drops a revoked one within a second, without a
 * restart. */
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "core/str.h"
#include "server/server.h"
#include "store/service.h"

static void apikeys_help(void)
{
    puts("Usage: hoversync apikeys create NAME\n"
         "       hoversync apikeys list [--json]\n"
         "       hoversync apikeys revoke NAME\n"
         "\n"
         "API keys of the CRM back-ends that call `hoversync serve` (Authorization: Bearer\n"
         "<key>). Only a key's SHA-256 is stored; a running service honours a new key at once\n"
         "and a revoked one fails within a second, on every instance, without a restart.\n"
         "\n"
         "  create NAME   makes a key named NAME (letters, digits, '-', '_', '.'; at most 64)\n"
         "                and prints it once on stdout: keep it, it cannot be shown again\n"
         "  list          names, when made, when last used (to the minute); never a key.\n"
         "                HOVERSYNC_API_KEY, when set, is listed as 'env' (it is not stored)\n"
         "  revoke NAME   deletes the key: requests with it fail from then on\n"
         "\n"
         "  --json        machine-readable output\n");
}

static json_t *when(int64_t unix_s)
{
    if (unix_s <= 0)
        return json_null();
    char buf[32];
    hs_iso8601_format(unix_s, 0, buf, sizeof buf);
    return json_string(buf);
}

static int do_list(struct cli *c, bool json)
{
    struct hs_api_key *v = NULL;
    size_t n = 0;
    struct hs_error err = {0};
    int rc = c->store->service->api_keys_list(c->store, &v, &n, &err);
    if (rc)
        return cli_report("apikeys list", rc, &err);
    const char *env = hs_config_str(&c->cfg, CFG_API_KEY);
    json_t *arr = json_array();
    if (env && *env)
        json_array_append_new(arr,
                              json_pack("{s:s, s:s, s:n, s:n}", "name", HS_API_KEY_ENV_NAME,
                                        "source", "environment", "created_at", "last_used_at"));
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s, s:s, s:o, s:o}", "name", v[i].name, "source",
                                             "store", "created_at", when(v[i].created_at),
                                             "last_used_at", when(v[i].last_used_at)));
    hs_api_keys_free(v, n);
    if (json) {
        json_t *doc = json_pack("{s:o}", "keys", arr);
        out_print_json(stdout, doc);
        json_decref(doc);
        return EXIT_OK;
    }
    printf("%-24s %-12s %-22s %s\n", "NAME", "SOURCE", "CREATED", "LAST USED");
    size_t i;
    json_t *k;
    json_array_foreach(arr, i, k)
    {
        const char *created = json_string_value(json_object_get(k, "created_at"));
        const char *used = json_string_value(json_object_get(k, "last_used_at"));
        out_cell(stdout, json_string_value(json_object_get(k, "name")), 24);
        printf(" %-12s %-22s %s\n", json_string_value(json_object_get(k, "source")),
               created ? created : "-", used ? used : "never");
    }
    json_decref(arr);
    return EXIT_OK;
}

static int do_create(struct cli *c, const char *name)
{
    char key[HS_API_KEY_LEN + 1];
    struct hs_error err = {0};
    int rc = hs_api_key_create(c->store, name, (int64_t)time(NULL), key, &err);
    if (rc)
        return cli_report("apikeys create", rc, &err);
    /* The key alone on stdout (for a script to capture); the word on stderr. */
    printf("%s\n", key);
    fflush(stdout);
    OPENSSL_cleanse(key, sizeof key);
    fprintf(stderr,
            "hoversync: API key '%s' created; it is shown this once (only its hash is stored)\n",
            name);
    return EXIT_OK;
}

static int do_revoke(struct cli *c, const char *name)
{
    if (strcmp(name, HS_API_KEY_ENV_NAME) == 0) {
        fprintf(stderr, "hoversync: apikeys revoke: 'env' is HOVERSYNC_API_KEY, not stored: "
                        "unset it where the service runs and restart it\n");
        return EXIT_USAGE;
    }
    struct hs_error err = {0};
    int rc = c->store->service->api_key_delete(c->store, name, &err);
    if (rc)
        return cli_report("apikeys revoke", rc, &err);
    printf("API key '%s' revoked\n", name);
    return EXIT_OK;
}

int cmd_apikeys(struct cli *c, int argc, char **argv)
{
    bool json = false;
    const char *args[2] = {NULL, NULL};
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            apikeys_help();
            return EXIT_OK;
        }
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (argv[i][0] != '-' && n < 2)
            args[n++] = argv[i];
        else {
            fprintf(stderr,
                    "hoversync: apikeys: unknown argument '%s' (see hoversync apikeys --help)\n",
                    argv[i]);
            return EXIT_USAGE;
        }
    }
    const char *what = args[0];
    if (what && strcmp(what, "list") == 0 && n == 1)
        return do_list(c, json);
    if (what && strcmp(what, "create") == 0 && n == 2)
        return do_create(c, args[1]);
    if (what && strcmp(what, "revoke") == 0 && n == 2)
        return do_revoke(c, args[1]);
    fprintf(stderr, "hoversync: apikeys: want create NAME, list or revoke NAME (see hoversync "
                    "apikeys --help)\n");
    return EXIT_USAGE;
}
