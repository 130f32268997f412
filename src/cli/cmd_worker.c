/* cmd_worker.c: `hoversync worker`: the background work of `hoversync serve` without its HTTP
 * service (docs/WEBHOOKS.md): the event worker's threads, reconciliation and the CRM outbox's
 * deliverer, until SIGINT or SIGTERM. Several worker processes (and services) may share one
 * SQLite file: work items are claimed with leases, the outbox has one deliverer at a time. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static void worker_help(void)
{
    puts("Usage: hoversync worker [--crm-endpoint URL]... [--reconcile-interval S]\n"
         "                        [--event-workers N] [--pending-interval S]\n"
         "\n"
         "Runs the background work of `hoversync serve` alone (serve runs it too, unless\n"
         "--no-workers): the work queue (the syncs asked for in the modal, the jobs named by\n"
         "webhook events, re-read from Hover and synced by the connection's auto-sync policy),\n"
         "reconciliation (jobs updated since its last pass), the pending pass, CRM endpoints\n"
         "notified after each sync that changed something, webhook verification codes the\n"
         "service received sent to Hover, and the retention duty (--retention-interval: old\n"
         "rows and unreferenced files deleted, docs/OPERATIONS.md).\n"
         "SIGINT or SIGTERM drain it: it claims nothing more, the syncs in flight get\n"
         "--drain-timeout seconds (20) to end, and those still running then are handed back\n"
         "to the queue (another process takes them at once); then it exits 0. A second signal\n"
         "exits at once (status 1). An item a killed worker held is taken up again when its\n"
         "lease ends.\n"
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
         "background, taking what interactive work leaves of --rate-limit, the installation's\n"
         "budget shared with every process using the store.\n");
}

int cmd_worker(struct cli *c, int argc, char **argv)
{
    struct cli_service sv;
    memset(&sv, 0, sizeof sv);
    bool bad = false;
    const char *v = NULL;
    for (int i = 1; i < argc && !bad; i++) {
        if (cli_is_help(argv[i])) {
            worker_help();
            return EXIT_OK;
        } else if (cli_opt_value(argc, argv, &i, "--crm-endpoint", &v, &bad)) {
            if (!bad && cli_workers_add_endpoints(&sv.w, v) != 0) {
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
        cli_workers_stop(&sv.w);
        return EXIT_USAGE;
    }
    int rc = cli_service_start(c, "worker", &sv);
    if (rc == EXIT_OK)
        rc = cli_service_background(c, &sv, true);
    if (rc == EXIT_OK) {
        printf("hoversync worker running\n");
        fflush(stdout);
        cli_service_wait(&sv, "worker");
        cli_service_drain(c, &sv, "worker", NULL);
    }
    cli_service_stop(&sv);
    return rc;
}
