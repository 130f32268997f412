/* cmd_export.c: `hoversync export`: the records feed. Every job, model and artifact synced or
 * changed since a cursor, and the new cursor (a change sequence, not a time). */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "core/json.h"
#include "store/records.h"

static void export_help(void)
{
    puts("Usage: hoversync export [--since CURSOR] [--json]\n"
         "\n"
         "Prints every job, model and artifact stored or changed since CURSOR (everything\n"
         "without --since) and the cursor to pass next time. The cursor is a change sequence\n"
         "of the store, not a timestamp: no change is skipped or repeated. See docs/RECORDS.md.\n"
         "\n"
         "  --since CURSOR   the cursor of the previous export [default: 0]\n"
         "  --json           {\"cursor\":N,\"jobs\":[..],\"models\":[..],\"artifacts\":[..]}\n");
}

int cmd_export(struct cli *c, int argc, char **argv)
{
    int64_t since = 0;
    bool json = false, bad = false;
    const char *v = NULL;
    for (int i = 1; i < argc && !bad; i++) {
        if (cli_is_help(argv[i])) {
            export_help();
            return EXIT_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (cli_opt_value(argc, argv, &i, "--since", &v, &bad)) {
            bad = bad || cli_int_arg("--since", v, 0, INT64_MAX, &since) != 0;
        } else {
            fprintf(stderr, "hoversync: export: unknown argument '%s'\n", argv[i]);
            bad = true;
        }
    }
    if (bad)
        return EXIT_USAGE;
    char *doc = NULL;
    struct hs_error err = {0};
    int rc = c->store->records->export_since(c->store, since, NULL, &doc, &err);
    if (rc)
        return cli_report("export", rc, &err);
    json_t *j = NULL;
    rc = hs_json_parse(doc, strlen(doc), SIZE_MAX, &j, &err);
    free(doc);
    if (rc)
        return cli_report("export", HS_ERR_INTERNAL, &err);
    if (json) {
        out_print_json(stdout, j);
    } else {
        printf("%zu jobs, %zu models, %zu artifacts changed since %lld\ncursor %lld\n",
               json_array_size(json_object_get(j, "jobs")),
               json_array_size(json_object_get(j, "models")),
               json_array_size(json_object_get(j, "artifacts")), (long long)since,
               (long long)json_integer_value(json_object_get(j, "cursor")));
    }
    json_decref(j);
    return EXIT_OK;
}
