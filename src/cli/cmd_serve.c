/* cmd_serve.c: `hoversync serve`: runs the HTTP service (src/server, docs/API.md) with its Hover
 * client pool, search service and sync queue until SIGINT or SIGTERM. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli/cli.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "hover/pool.h"
#include "search/search.h"
#include "server/server.h"
#include "worker/syncq.h"

#define MAX_ORIGINS 64

static void serve_help(void)
{
    puts("Usage: hoversync serve [--listen HOST:PORT] [--public-url URL] [--allow-origin "
         "ORIGIN]...\n"
         "                       [--demo-crm HOST:PORT] [--port-file PATH] [--metrics-public]\n"
         "\n"
         "Runs the HTTP service of docs/API.md: the modal's search, jobs, syncs with their\n"
         "progress, the records feed, stored files and images, and the connect flow.\n"
         "It prints `hoversync serving URL` on stdout once it listens. SIGINT or SIGTERM drain\n"
         "it: /readyz answers 503 and new requests get 503 at once, requests and syncs in\n"
         "flight get --drain-timeout seconds (20) to end, syncs still running then are handed\n"
         "back to the queue for another process; then it exits 0. A second signal exits at\n"
         "once (status 1), handing the syncs back all the same. /healthz says it is alive.\n"
         "\n"
         "API calls need the API key (Authorization: Bearer KEY): HOVERSYNC_API_KEY, or one\n"
         "generated on first start and printed once on stderr (only its hash is stored).\n"
         "\n"
         "  --listen HOST:PORT      listen address [default: 127.0.0.1:8080; HOVERSYNC_LISTEN]\n"
         "  --public-url URL        how browsers reach the service (behind a proxy, https)\n"
         "                          [default: http://<listen>; HOVERSYNC_PUBLIC_URL]\n"
         "  --allow-origin ORIGIN   a CRM origin that may call the API and frame the modal,\n"
         "                          e.g. https://crm.example.com; repeatable (and\n"
         "                          HOVERSYNC_ALLOW_ORIGINS, comma-separated)\n"
         "  --demo-crm HOST:PORT    also serve web/demo/ there: a CRM page (another origin)\n"
         "                          that opens the modal with a fresh session; for demos only\n"
         "  --port-file PATH        write the port listened on there (for --listen HOST:0)\n"
         "  --metrics-public        serve /metrics to any address, not only loopback\n"
         "  --register-webhooks     register the service's webhook (<public-url>/webhooks/hover)\n"
         "                          at Hover for every connection without a verified one, at\n"
         "                          start and on connect (needs --public-url)\n"
         "  --web-dir DIR           the modal's files [HOVERSYNC_WEB_DIR]\n"
         "  --pending-interval S    the longest wait between two polls of a job waiting for a\n"
         "                          model (\"sync when ready\") where no healthy webhook\n"
         "                          reports it; polls start a minute apart and double\n"
         "                          (0 = never) [default: 900; HOVERSYNC_PENDING_INTERVAL]\n"
         "  --no-workers            do not run the background work here (the work queue: the\n"
         "                          modal's and webhook-driven syncs; reconciliation, the\n"
         "                          pending pass, CRM notifications): `hoversync worker`\n"
         "                          processes on the same store do it (webhook verification\n"
         "                          codes are still sent to Hover from here)\n"
         "  --crm-endpoint URL      notify this CRM URL after each sync that changed something\n"
         "                          (repeatable; and HOVERSYNC_CRM_ENDPOINTS, comma-separated;\n"
         "                          signed with HOVERSYNC_CRM_SECRET; docs/WEBHOOKS.md)\n"
         "  --reconcile-interval S  seconds between reconciliation passes (0 = off) [300]\n"
         "  --header-timeout S      a request's headers must be complete within S seconds,\n"
         "                          however slowly they trickle [10]\n"
         "  --hover-wait S          a route that asks Hover answers 504 after S seconds; the\n"
         "                          request goes on in the background [20]\n"
         "  --caller-rate-limit N   requests a minute per API key or session to routes that ask\n"
         "                          Hover (429 beyond; 0 = no limit) [120]\n"
         "  --max-connections N     open connections at most [1024]\n"
         "\n"
         "Hover: HOVER_CLIENT_ID and HOVER_CLIENT_SECRET (the connect flow and refreshes);\n"
         "HOVER_ACCESS_TOKEN / HOVER_REFRESH_TOKEN seed the --connection credential.\n"
         "HOVERSYNC_ENCRYPTION_KEY encrypts the stored tokens and webhook secrets\n"
         "(docs/SECURITY.md); without it serve says at start that they are stored in clear.\n");
}

/* Writes the port to path atomically (temp file + rename): a reader never sees half of it. */
static int write_port_file(const char *path, int port)
{
    char *tmp = hs_aprintf("%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    int rc = -1;
    if (f) {
        bool ok = fprintf(f, "%d\n", port) > 0;
        ok = fclose(f) == 0 && ok;
        if (ok && rename(tmp, path) == 0)
            rc = 0;
    }
    if (rc)
        (void)unlink(tmp);
    free(tmp);
    return rc;
}

/* Adds the comma-separated origins of list (a copy is kept in *keep). */
static int add_origins(const char *list, const char **origins, size_t *n, char **keep)
{
    *keep = hs_strdup(list);
    return hs_split_list(*keep, origins, MAX_ORIGINS, n) == HS_OK ? 0 : -1;
}

/* What the command line asks for. */
struct serve_opts {
    const char *origins[MAX_ORIGINS];
    size_t n_origins;
    char *env_origins; /* HOVERSYNC_ALLOW_ORIGINS split in place: origins point into it */
    const char *demo, *port_file;
    bool metrics_public, workers, register_webhooks;
};

/* The command line (and HOVERSYNC_ALLOW_ORIGINS) into o, CRM endpoints into w: EXIT_OK,
 * EXIT_USAGE (said on stderr), or -1 after --help. */
static int parse_serve(struct cli *c, int argc, char **argv, struct serve_opts *o,
                       struct cli_workers *w)
{
    const char *v = NULL;
    bool bad = false;
    for (int i = 1; i < argc && !bad; i++) {
        if (cli_is_help(argv[i])) {
            serve_help();
            return -1;
        } else if (cli_opt_value(argc, argv, &i, "--allow-origin", &v, &bad)) {
            if (!bad && o->n_origins == MAX_ORIGINS) {
                fprintf(stderr, "hoversync: serve: at most %d origins\n", MAX_ORIGINS);
                bad = true;
            } else if (!bad) {
                o->origins[o->n_origins++] = v;
            }
        } else if (cli_opt_value(argc, argv, &i, "--demo-crm", &v, &bad)) {
            o->demo = v;
        } else if (cli_opt_value(argc, argv, &i, "--port-file", &v, &bad)) {
            o->port_file = v;
        } else if (strcmp(argv[i], "--metrics-public") == 0) {
            o->metrics_public = true;
        } else if (strcmp(argv[i], "--register-webhooks") == 0) {
            o->register_webhooks = true;
        } else if (strcmp(argv[i], "--no-workers") == 0) {
            o->workers = false;
        } else if (cli_opt_value(argc, argv, &i, "--crm-endpoint", &v, &bad)) {
            if (!bad && cli_workers_add_endpoints(w, v) != 0) {
                fprintf(stderr, "hoversync: serve: at most %d CRM endpoints\n", CLI_MAX_ENDPOINTS);
                bad = true;
            }
        } else {
            fprintf(stderr,
                    "hoversync: serve: unknown argument '%s' (see hoversync serve --help)\n",
                    argv[i]);
            bad = true;
        }
    }
    if (!bad && o->register_webhooks && !hs_config_str(&c->cfg, CFG_PUBLIC_URL)) {
        fprintf(stderr, "hoversync: serve: --register-webhooks needs --public-url (the URL Hover "
                        "delivers to)\n");
        bad = true;
    }
    if (bad)
        return EXIT_USAGE;
    const char *env_list = hs_config_str(&c->cfg, CFG_ALLOW_ORIGINS);
    if (env_list && add_origins(env_list, o->origins, &o->n_origins, &o->env_origins) != 0) {
        fprintf(stderr, "hoversync: serve: at most %d origins\n", MAX_ORIGINS);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* The hash of HOVERSYNC_API_KEY (*from_env), or, when no key is stored either, one generated
 * now and shown this once. */
static int api_key(struct cli *c, unsigned char key_hash[32], bool *from_env)
{
    struct hs_error err = {0};
    char generated[65];
    int r = hs_server_api_key(c->store, hs_config_str(&c->cfg, CFG_API_KEY), key_hash, from_env,
                              generated, &err);
    if (r)
        return cli_report("serve: API key", r, &err);
    if (generated[0]) {
        fprintf(stderr,
                "hoversync: generated an API key named 'default' (shown this once; only its "
                "hash is stored).\n"
                "hoversync: API key: %s\n"
                "hoversync: CRM back-ends send it as 'Authorization: Bearer <key>'; set "
                "HOVERSYNC_API_KEY to choose your own, or make more with 'hoversync apikeys "
                "create NAME'.\n",
                generated);
        fflush(stderr);
        OPENSSL_cleanse(generated, sizeof generated);
    }
    return EXIT_OK;
}

/* What serve runs besides the shared service: the search service, the sync queue, the server. */
struct serve_parts {
    struct hs_search_service *search;
    struct hs_syncq *syncq;
    struct hs_server *srv;
};

/* The syncs a person watches (worker/syncq.h), before the background work: the work queue's
 * threads tell it when they wrote a sync's progress. */
static int start_syncq(struct cli *c, struct cli_service *sv, struct serve_parts *p)
{
    struct hs_error err = {0};
    struct hs_syncq_config qc = {.keep_done_ms = 3600000};
    int r = hs_syncq_new(&qc, c->store, NULL, &p->syncq, &err);
    if (r)
        return cli_report("serve: sync queue", r, &err);
    sv->w.on_sync_progress = hs_syncq_progress_written;
    sv->w.progress_ctx = p->syncq;
    return EXIT_OK;
}

/* Creates the search service, then the server on it and on the rest, and starts it. */
static int start_server(struct cli *c, const struct serve_opts *o, struct cli_service *sv,
                        const unsigned char *key_hash, struct serve_parts *p)
{
    struct hs_error err = {0};
    struct hs_client_provider prov = hs_client_pool_provider(sv->pool);
    int r = hs_search_new(NULL, c->store, prov, NULL, &p->search, &err);
    if (r)
        return cli_report("serve: search service", r, &err);
    struct hs_server_config sc = {
        .listen = hs_config_str(&c->cfg, CFG_LISTEN),
        .public_url = hs_config_str(&c->cfg, CFG_PUBLIC_URL),
        .allow_origins = o->origins,
        .n_allow_origins = o->n_origins,
        .demo_listen = o->demo,
        .web_dir = hs_config_str(&c->cfg, CFG_WEB_DIR),
        .data_dir = hs_config_str(&c->cfg, CFG_DATA_DIR),
        .blobs = c->blobs,
        .hover_url = hs_config_str(&c->cfg, CFG_HOVER_URL),
        .client_id = hs_config_str(&c->cfg, CFG_CLIENT_ID),
        .client_secret = hs_config_str(&c->cfg, CFG_CLIENT_SECRET),
        .api_key_hash = key_hash,
        .metrics_public = o->metrics_public,
        .register_webhooks = o->register_webhooks,
        .hover_wait_ms = hs_config_int(&c->cfg, CFG_HOVER_WAIT) * 1000,
        .header_timeout_ms = hs_config_int(&c->cfg, CFG_HEADER_TIMEOUT) * 1000,
        .max_connections = (unsigned)hs_config_int(&c->cfg, CFG_MAX_CONNECTIONS),
        .caller_rate = (int)hs_config_int(&c->cfg, CFG_CALLER_RATE),
    };
    struct hs_server_deps deps = {.store = c->store,
                                  .pool = sv->pool,
                                  .search = p->search,
                                  .syncq = p->syncq,
                                  .events = sv->w.events,
                                  .duties = sv->w.duties,
                                  .upstream = hs_curl_multi_default(),
                                  .limiter = sv->limiter,
                                  .outbox = sv->w.outbox};
    if ((r = hs_server_new(&sc, &deps, &p->srv, &err)) || (r = hs_server_start(p->srv, &err)))
        return cli_report("serve", r, &err);
    return EXIT_OK;
}

/* Says where the service listens: the port file, then the URLs on stdout. */
static int announce(const struct serve_opts *o, struct hs_server *srv)
{
    if (o->port_file && write_port_file(o->port_file, hs_server_port(srv)) != 0) {
        char eb[128];
        fprintf(stderr, "hoversync: serve: cannot write the port file %s: %s\n", o->port_file,
                strerror_r(errno, eb, sizeof eb));
        return EXIT_FAIL;
    }
    printf("hoversync serving %s\n", hs_server_url(srv));
    if (hs_server_demo_url(srv))
        printf("hoversync demo CRM %s\n", hs_server_demo_url(srv));
    fflush(stdout);
    return EXIT_OK;
}

int cmd_serve(struct cli *c, int argc, char **argv)
{
    struct serve_opts o = {.workers = true};
    struct cli_service sv;
    memset(&sv, 0, sizeof sv);
    struct serve_parts p = {0};
    int rc = parse_serve(c, argc, argv, &o, &sv.w);
    if (rc != EXIT_OK) {
        cli_workers_stop(&sv.w);
        free(o.env_origins);
        return rc < 0 ? EXIT_OK : rc;
    }
    unsigned char key_hash[32];
    bool env_key = false;
    if ((rc = api_key(c, key_hash, &env_key)) != EXIT_OK ||
        (rc = cli_service_start(c, "serve", &sv)) != EXIT_OK ||
        (rc = start_syncq(c, &sv, &p)) != EXIT_OK ||
        (rc = cli_service_background(c, &sv, o.workers)) != EXIT_OK ||
        (rc = start_server(c, &o, &sv, env_key ? key_hash : NULL, &p)) != EXIT_OK ||
        (rc = announce(&o, p.srv)) != EXIT_OK)
        goto out;
    /* Once listening: Hover delivers the verification code to this very service. */
    if (o.register_webhooks)
        (void)hs_server_register_webhooks(p.srv, NULL, NULL); /* failures are logged */
    cli_service_wait(&sv, "serve");
    cli_service_drain(c, &sv, "serve", p.srv);
out:
    /* The server first (it uses the others), then what feeds it, then the pool they share;
     * waiters for the budget leave at once. */
    cli_service_interrupt(&sv);
    hs_server_stop(p.srv);
    hs_server_free(p.srv);
    hs_search_free(p.search);
    cli_service_stop(&sv); /* before the sync queue: the workers tell it of their progress */
    hs_syncq_free(p.syncq);
    free(o.env_origins);
    return rc;
}
