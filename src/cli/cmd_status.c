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
         "Each connection shows its artifact profile (connections set-artifacts, else "
         "--artifacts).\n"
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

/* The budget as a person plans with it: what the last minute used, what is queued, how long it
 * takes at this pace. */
static void print_budget(json_t *b)
{
    long long limit = num(b, "limit");
    printf("budget       %lld of %lld requests used in the last minute (%lld interactive, "
           "%lld background)\n",
           num(b, "interactive_last_minute") + num(b, "background_last_minute"), limit,
           num(b, "interactive_last_minute"), num(b, "background_last_minute"));
    json_t *per = json_object_get(b, "requests_per_job");
    json_t *drain = json_object_get(b, "drain_seconds");
    printf("             %lld jobs queued", num(b, "queued_jobs"));
    if (json_is_number(per))
        printf(", %.1f requests a job", json_number_value(per));
    if (json_is_integer(drain) && json_integer_value(drain) == 0)
        printf(": nothing to drain\n");
    else if (json_is_integer(drain))
        printf(": drained in about %lld min %02lld s at the current rate\n",
               (long long)json_integer_value(drain) / 60,
               (long long)json_integer_value(drain) % 60);
    else
        printf(": no background work in the last minute to drain it at\n");
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

static void print_status(json_t *doc, const char *artifacts)
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
        if (text(x, "artifacts", NULL))
            printf(" artifacts %s", text(x, "artifacts", ""));
        else
            printf(" artifacts %s (--artifacts)", artifacts);
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
    print_budget(json_object_get(doc, "budget"));
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
    json_t *budget = NULL;
    const char *files = cli_blobs_local(c) ? hs_config_str(&c->cfg, CFG_DATA_DIR) : NULL;
    if (rc == HS_OK)
        rc = hs_health_add_storage(doc, c->store, files, &err);
    if (rc == HS_OK)
        rc = hs_health_budget(
            c->store,
            hs_config_str(&c->cfg, CFG_CLIENT_ID) ? hs_config_str(&c->cfg, CFG_CLIENT_ID) : "",
            hs_config_int(&c->cfg, CFG_RATE_LIMIT), now_ms,
            json_integer_value(json_object_get(json_object_get(doc, "work"), "total")), &budget,
            &err);
    if (rc) {
        json_decref(doc);
        return cli_report("status", rc, &err);
    }
    json_object_set_new(doc, "budget", budget);
    if (json)
        out_print_json(stdout, doc);
    else
        print_status(doc, hs_config_str(&c->cfg, CFG_ARTIFACTS));
    json_decref(doc);
    return EXIT_OK;
}
