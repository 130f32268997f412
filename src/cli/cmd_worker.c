/* cmd_worker.c: `hoversync worker`: the background work of `hoversync serve` without its HTTP
 * service (docs/WEBHOOKS.md): the event worker's threads, reconciliation and the CRM outbox's
 * deliverer, until SIGINT or SIGTERM. Several worker processes (and services) may share one
 * SQLite file: work items are claimed with leases, the outbox has one deliverer at a time. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/log.h"
#include "hover/limiter.h"
#include "hover/pool.h"

static void worker_help(void)
{
    puts("Usage: hoversync worker [--crm-endpoint URL]... [--reconcile-interval S]\n"
         "                        [--event-workers N] [--pending-interval S]\n"
         "\n"
         "Runs the background work of `hoversync serve` alone (serve runs it too, unless\n"
         "--no-workers): the work queue (the syncs asked for in the modal, the jobs named by\n"
         "webhook events, re-read from Hover and synced by the connection's auto-sync policy),\n"
         "reconciliation (jobs updated since its last pass), the pending pass, CRM endpoints\n"
         "notified after each sync that changed something, and webhook verification codes the\n"
         "service received sent to Hover.\n"
         "SIGINT or SIGTERM stop it after the syncs in flight; an item a killed worker held is\n"
         "taken up again when its lease ends.\n"
         "\n"
         "  --crm-endpoint URL      notify this CRM URL (repeatable; and HOVERSYNC_CRM_ENDPOINTS,\n"
         "                          comma-separated); HOVERSYNC_CRM_SECRET signs the messages\n"
         "  --reconcile-interval S  seconds between reconciliation passes (0 = off) [300]\n"
         "  --event-workers N       work queue threads [2]\n"
         "  --pending-interval S    the longest wait between two polls of a job waiting for a\n"
         "                          model without a healthy webhook (0 = never) [900]\n"
         "  --outbox-retry-base-ms MS  first retry delay of a notification [1000]\n"
         "\n"
         "Requests to Hover take the class of the work: a modal's sync is interactive, the rest\n"
         "background, taking what interactive work leaves of --rate-limit (per process: give each\n"
         "process its share).\n");
}

int cmd_worker(struct cli *c, int argc, char **argv)
{
    struct cli_workers w;
    memset(&w, 0, sizeof w);
    bool bad = false;
    const char *v = NULL;
    for (int i = 1; i < argc && !bad; i++) {
        if (cli_is_help(argv[i])) {
            worker_help();
            return EXIT_OK;
        } else if (cli_opt_value(argc, argv, &i, "--crm-endpoint", &v, &bad)) {
            if (!bad && cli_workers_add_endpoints(&w, v) != 0) {
                fprintf(stderr, "hoversync: worker: at most %d CRM endpoints\n", CLI_MAX_ENDPOINTS);
                bad = true;
            }
        } else {
            fprintf(stderr,
                    "hoversync: worker: unknown argument '%s' (see hoversync worker --help)\n",
                    argv[i]);
            bad = true;
        }
    }
    if (bad) {
        cli_workers_stop(&w);
        return EXIT_USAGE;
    }

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = EXIT_FAIL;
    cli_secrets_notice(c);
    struct hs_error err = {0};
    struct hs_client_pool *pool = NULL;
    struct hs_limiter *limiter = cli_shared_limiter(c);
    struct hs_client_config cc;
    cli_client_config(c, &cc);
    cc.limiter = limiter;
    int r = hs_client_pool_new(&cc, c->store, &pool, &err);
    if (r) {
        rc = cli_report("worker: Hover clients", r, &err);
        goto out;
    }
    if (cc.initial_access_token && *cc.initial_access_token) {
        struct hs_client *cl = NULL;
        if ((r = hs_client_pool_acquire(pool, cc.credential_key, &cl, &err))) {
            rc = cli_report("worker: Hover connection", r, &err);
            goto out;
        }
        hs_client_pool_release(pool, cl);
    }
    if ((rc = cli_workers_outbox(c, &w)) != EXIT_OK)
        goto out;
    if ((rc = cli_workers_start(c, hs_client_pool_provider(pool), &w)) != EXIT_OK)
        goto out;
    if ((rc = cli_workers_verifier(c, hs_client_pool_provider(pool), &w)) != EXIT_OK)
        goto out;
    printf("hoversync worker running\n");
    fflush(stdout);
    int sig = 0;
    while (sigwait(&sigs, &sig) != 0)
        ;
    hs_info("worker msg=\"stopping\" signal=%d", sig);
    rc = EXIT_OK;
out:
    /* Waiters for the budget leave at once; the syncs in flight end first. */
    hs_limiter_shutdown(limiter);
    cli_workers_stop(&w);
    hs_client_pool_free(pool);
    hs_limiter_free(limiter);
    return rc;
}
