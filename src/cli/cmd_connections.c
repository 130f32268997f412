/* cmd_connections.c: `hoversync connections list|delete`: the connected Hover orgs, and
 * deleting one (src/webhook/disconnect.h): its webhooks deregistered at Hover, its token pair,
 * queued work and connect flows dropped, its records kept (marked disconnected in the records
 * feed) or, with --purge, removed with the files only they held. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "core/clock.h"
#include "store/service.h"
#include "webhook/disconnect.h"

static void connections_help(void)
{
    puts("Usage: hoversync connections list [--json]\n"
         "       hoversync connections delete NAME [--purge] [--json]\n"
         "\n"
         "The Hover orgs this installation is connected to (`hoversync connect`, or the modal's\n"
         "connect flow), by name.\n"
         "\n"
         "  list          name, org, when connected, and whether a token pair is stored\n"
         "  delete NAME   disconnects the org: deregisters its webhooks at Hover (if Hover\n"
         "                cannot be reached, the rest goes on and the webhooks left there are\n"
         "                named), deletes its token pair, drops its queued work (work items,\n"
         "                pending syncs, polls, reconciliation) and its connect flows. Its jobs\n"
         "                and their records stay, marked disconnected in the records feed\n"
         "                (`export --since`: disconnected_at). Deliveries of its webhooks that\n"
         "                still arrive are refused as unknown and not stored.\n"
         "  --purge       also removes its jobs, models, measurements, artifacts, images,\n"
         "                selections, sync runs and results, outbox messages and webhook\n"
         "                deliveries, and the files only it held (a file another connection's\n"
         "                record holds by the same content stays)\n"
         "  --json        machine-readable output\n");
}

static int do_list(struct cli *c, bool json)
{
    struct hs_connection_row *v = NULL;
    size_t n = 0;
    struct hs_error err = {0};
    int rc = c->store->service->connections_list(c->store, &v, &n, &err);
    if (rc)
        return cli_report("connections list", rc, &err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            arr,
            json_pack("{s:s, s:o, s:o, s:b, s:b}", "name", v[i].key, "owner_id",
                      v[i].owner_id > 0 ? json_integer(v[i].owner_id) : json_null(), "connected_at",
                      v[i].connected_at ? json_string(v[i].connected_at) : json_null(), "has_token",
                      v[i].has_token, "reconnect_required", v[i].reconnect_required));
    hs_connection_rows_free(v, n);
    if (json) {
        json_t *doc = json_pack("{s:o}", "connections", arr);
        out_print_json(stdout, doc);
        json_decref(doc);
        return EXIT_OK;
    }
    if (json_array_size(arr) == 0)
        puts("no connections (hoversync connect)");
    else
        printf("%-24s %-10s %-26s %s\n", "NAME", "ORG", "CONNECTED", "STATE");
    size_t i;
    json_t *k;
    json_array_foreach(arr, i, k)
    {
        json_t *org = json_object_get(k, "owner_id");
        const char *at = json_string_value(json_object_get(k, "connected_at"));
        out_cell(stdout, json_string_value(json_object_get(k, "name")), 24);
        printf(" %-10lld %-26s %s\n", (long long)json_integer_value(org), at ? at : "-",
               !json_is_true(json_object_get(k, "has_token"))           ? "no token"
               : json_is_true(json_object_get(k, "reconnect_required")) ? "reconnect required"
                                                                        : "connected");
    }
    json_decref(arr);
    return EXIT_OK;
}

static void print_report(const char *name, bool purge, const struct hs_disconnect_report *r,
                         bool json)
{
    /* What Hover still has goes to stderr in either form: someone must act on it. */
    for (size_t i = 0; i < r->n_kept_at_hover; i++)
        fprintf(stderr,
                "hoversync: connections delete: webhook %lld could not be deregistered at Hover "
                "(%s): delete it there (Hover's webhook settings, or `hoversync webhooks delete "
                "%lld` with a connection of that org)\n",
                (long long)r->kept_at_hover[i], r->hover_error, (long long)r->kept_at_hover[i]);
    if (!json) {
        printf("connection %s deleted: %lld webhook(s) deregistered at Hover, %lld work item(s) "
               "dropped, %lld job(s) %s",
               name, (long long)r->deregistered, (long long)r->store.work_items,
               (long long)r->store.jobs, purge ? "purged" : "kept, marked disconnected");
        if (purge)
            printf(", %lld file(s) removed", (long long)r->files_removed);
        printf("\n");
        return;
    }
    json_t *doc = hs_disconnect_report_json(name, purge, r);
    out_print_json(stdout, doc);
    json_decref(doc);
}

static int do_delete(struct cli *c, const char *name, bool purge, bool json)
{
    /* A client of that connection only: its own stored pair, never the environment's. */
    struct hs_client_config cc;
    cli_client_config(c, &cc);
    cc.credential_key = name;
    cc.initial_access_token = NULL;
    cc.initial_refresh_token = NULL;
    c->limiter = cli_shared_limiter(c);
    cc.limiter = c->limiter;
    struct hs_client *client = NULL;
    struct hs_error err = {0};
    if (hs_client_new(&cc, hs_store_tokens(c->store), NULL, NULL, &client, &err) != HS_OK)
        client = NULL; /* said in the report: nothing could be deregistered */
    const struct hs_clock *clk = hs_clock_system();
    struct hs_disconnect_report r = {0};
    int rc =
        hs_connection_disconnect(c->store, client, name, purge,
                                 hs_config_str(&c->cfg, CFG_DATA_DIR), clk->wall_ms(clk), &r, &err);
    hs_client_free(client);
    if (rc)
        return cli_report("connections delete", rc, &err);
    print_report(name, purge, &r, json);
    hs_disconnect_report_clear(&r);
    return EXIT_OK;
}

int cmd_connections(struct cli *c, int argc, char **argv)
{
    bool json = false, purge = false;
    const char *args[2] = {NULL, NULL};
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            connections_help();
            return EXIT_OK;
        }
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "--purge") == 0)
            purge = true;
        else if (argv[i][0] != '-' && n < 2)
            args[n++] = argv[i];
        else {
            fprintf(stderr,
                    "hoversync: connections: unknown argument '%s' (see hoversync connections "
                    "--help)\n",
                    argv[i]);
            return EXIT_USAGE;
        }
    }
    if (args[0] && strcmp(args[0], "list") == 0 && n == 1 && !purge)
        return do_list(c, json);
    if (args[0] && strcmp(args[0], "delete") == 0 && n == 2)
        return do_delete(c, args[1], purge, json);
    fprintf(stderr, "hoversync: connections: want list, or delete NAME [--purge] (see hoversync "
                    "connections --help)\n");
    return EXIT_USAGE;
}
