/* cmd_status.c: `hoversync status`: the connections, their webhooks with Hover's word on them
 * (verified, last error), and the depth of the background queues; the same document as
 * GET /api/status (src/webhook/health.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "hover/pool.h"
#include "webhook/health.h"

static void status_help(void)
{
    puts("Usage: hoversync status [--offline] [--json]\n"
         "\n"
         "Prints the connected orgs, the service's webhooks with their health as Hover\n"
         "records it (verified_at, last_error: the service's last failure to receive) and\n"
         "as it knows it here (\"error here\": a verification code Hover refused), the\n"
         "work queue (jobs to re-read and sync, and how many are due), the CRM outbox,\n"
         "the open selections and the sync runs (running, or interrupted: their process\n"
         "died). A connection whose refresh token Hover refused shows reconnect_required.\n"
         "Then the store's size with its five largest tables, and the artifact files'\n"
         "count and bytes under --data-dir.\n"
         "Asks Hover for each connection's webhooks (one request each).\n"
         "\n"
         "  --offline   do not ask Hover: the stored values only\n"
         "  --json      the document of GET /api/status\n");
}

static const char *text(json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : dflt;
}

static long long num(json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

/* A size for a person: bytes, kB, MB or GB (powers of 1000), into out. */
static const char *size_text(long long bytes, char *out, size_t n)
{
    static const char *const unit[] = {"kB", "MB", "GB", "TB"};
    double v = (double)bytes;
    int u = -1;
    while (v >= 1000 && u < 3) {
        v /= 1000;
        u++;
    }
    if (u < 0)
        snprintf(out, n, "%lld B", bytes);
    else
        snprintf(out, n, "%.1f %s", v, unit[u]);
    return out;
}

static void print_storage(json_t *st)
{
    char a[32];
    json_t *files = json_object_get(st, "files");
    printf("store        %s, %s\n", text(st, "backend", "?"), size_text(num(st, "bytes"), a, 32));
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(st, "tables"), i, x)
    {
        printf("  %-24s %10s %12lld rows\n", text(x, "name", "?"),
               size_text(num(x, "bytes"), a, 32), num(x, "rows"));
    }
    if (files)
        printf("files        %lld, %s\n", num(files, "count"),
               size_text(num(files, "bytes"), a, 32));
}

static void print_status(json_t *doc)
{
    json_t *conns = json_object_get(doc, "connections");
    json_t *hooks = json_object_get(doc, "webhooks");
    size_t i;
    json_t *x;
    printf("connections (%zu)\n", json_array_size(conns));
    json_array_foreach(conns, i, x)
    {
        printf("  %-20s org %-10lld token %-3s auto-sync %-6s", text(x, "key", "?"),
               num(x, "owner_id"), json_is_true(json_object_get(x, "has_token")) ? "yes" : "no",
               text(x, "auto_sync", "all"));
        if (json_is_true(json_object_get(x, "reconnect_required")))
            printf("  reconnect_required: Hover refused the stored grant, run hoversync "
                   "connect");
        if (json_string_value(json_object_get(x, "hover_error")))
            printf("  Hover: %s", text(x, "hover_error", ""));
        putchar('\n');
    }
    printf("webhooks (%zu)\n", json_array_size(hooks));
    json_array_foreach(hooks, i, x)
    {
        const char *verified = text(x, "verified_at", NULL);
        const char *last = text(x, "last_error", NULL);
        printf("  %-10lld %-20s %-8s ", num(x, "id"), text(x, "connection", "?"),
               json_is_true(json_object_get(x, "healthy")) ? "healthy"
               : verified                                  ? "failing"
                                                           : "unverified");
        printf("verified %-25s", verified ? verified : "no");
        if (last)
            printf(" last error: %s", last);
        if (text(x, "local_error", NULL))
            printf(" error here: %s", text(x, "local_error", ""));
        if (!json_is_true(json_object_get(x, "stored")))
            printf(" (not stored here: registered elsewhere)");
        else if (!json_is_true(json_object_get(x, "secret_stored")))
            printf(" (no secret stored: deliveries cannot be checked)");
        printf("  %s\n", text(x, "url", ""));
    }
    json_t *work = json_object_get(doc, "work");
    json_t *sel = json_object_get(doc, "selections");
    printf("work queue   %lld jobs (%lld due)\n", num(work, "total"), num(work, "due"));
    printf("outbox       %lld pending\n", num(json_object_get(doc, "outbox"), "pending"));
    printf("selections   %lld open (%lld selected, %lld pending, %lld error)\n", num(sel, "open"),
           num(sel, "selected"), num(sel, "pending"), num(sel, "error"));
    json_t *runs = json_object_get(doc, "runs");
    printf("sync runs    %lld running, %lld interrupted (their process died)\n",
           num(runs, "running"), num(runs, "interrupted"));
    print_storage(json_object_get(doc, "storage"));
}

int cmd_status(struct cli *c, int argc, char **argv)
{
    bool json = false, offline = false;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            status_help();
            return EXIT_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--offline") == 0) {
            offline = true;
        } else {
            fprintf(stderr, "hoversync: status: unknown argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    struct hs_error err = {0};
    struct hs_client_pool *pool = NULL;
    struct hs_client_provider prov = {0};
    struct hs_health_source src = {.provider = &prov, .store = c->store};
    if (!offline) {
        struct hs_client_config cc;
        cli_client_config(c, &cc);
        /* status only reads: it never seeds a stored credential with the initial pair. */
        cc.initial_access_token = NULL;
        cc.initial_refresh_token = NULL;
        c->limiter = cli_shared_limiter(c);
        cc.limiter = c->limiter;
        int r = hs_client_pool_new(&cc, hs_store_tokens(c->store), &pool, &err);
        if (r)
            return cli_report("status: Hover clients", r, &err);
        prov = hs_client_pool_provider(pool);
    }
    json_t *doc = NULL;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int rc = hs_health_collect(c->store, now_ms, offline ? NULL : hs_health_list_via_provider, &src,
                               &doc, &err);
    hs_client_pool_free(pool);
    const char *files = cli_blobs_local(c) ? hs_config_str(&c->cfg, CFG_DATA_DIR) : NULL;
    if (!rc && (rc = hs_health_add_storage(doc, c->store, files, &err)))
        json_decref(doc);
    if (rc)
        return cli_report("status", rc, &err);
    if (json)
        out_print_json(stdout, doc);
    else
        print_status(doc);
    json_decref(doc);
    return EXIT_OK;
}
