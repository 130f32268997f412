/* cli.h: what the command implementations share: parsed configuration, the open store and the
 * client, option parsing helpers and the exit-code convention (0 ok, 1 failure, 2 usage). */
#ifndef HS_CLI_CLI_H
#define HS_CLI_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "cli/config.h"
#include "hover/client.h"
#include "hover/pool.h"
#include "notify/outbox.h"
#include "store/store.h"
#include "worker/duties.h"
#include "worker/events.h"
#include "worker/reconcile.h"

struct hs_server;

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

struct cli {
    struct hs_config cfg;
    struct hs_store *store;
    struct hs_client *client;
    struct hs_limiter *limiter; /* the client's budget (cli_shared_limiter) */
    struct hs_blobs *blobs;     /* the artifact files: the data directory or S3 (cli_open) */
    bool stdout_tty;
    bool unmapped_reads; /* a batch command: the store's readers do not map the file */
};

/* The Hover client's settings from the configuration table (defaults for the rest); the
 * strings are borrowed from the configuration. */
void cli_client_config(const struct cli *c, struct hs_client_config *cc);
/* The blob store's settings from the configuration table (strings borrowed from it). */
struct hs_blobs_config;
void cli_blobs_config(const struct cli *c, struct hs_blobs_config *bc);
/* Whether the artifact files are in the local folder --data-dir (no --blobs): what the
 * collector of files, the status's files total and store backup/restore handle. */
bool cli_blobs_local(const struct cli *c);
/* Opens the store and (with_client) creates the client from the configuration; on failure
 * prints the reason and returns EXIT_FAIL. */
int cli_open(struct cli *c, bool with_client);
void cli_close(struct cli *c);
/* Removes the leftovers of interrupted downloads from the data directory's tmp/ (the files no
 * live writer holds, whichever process or machine it runs on: store/blobs.c). Every command
 * that downloads calls it at its start. */
int cli_clean_data_dir(struct cli *c, struct hs_error *err);
/* Says (once, at the start of serve and worker) that secrets are stored in clear, when no
 * HOVERSYNC_ENCRYPTION_KEY is set. */
void cli_secrets_notice(const struct cli *c);
/* Prints "hoversync: <what>: <reason>" for a failed call and returns EXIT_FAIL (or EXIT_USAGE
 * for HS_ERR_INVALID). */
int cli_report(const char *what, int rc, const struct hs_error *err);

/* Option helpers for commands: true when argv[*i] is `name` (taking the next argument as the
 * value) or `name=value`; sets *value. Prints a usage error and sets *bad on a missing value. */
bool cli_opt_value(int argc, char **argv, int *i, const char *name, const char **value, bool *bad);
/* Parses a bounded integer for option `name`; prints a usage error and returns -1 if not. */
int cli_int_arg(const char *name, const char *s, int64_t min, int64_t max, int64_t *out);
/* True for "-h" and "--help". */
bool cli_is_help(const char *arg);

int cmd_search(struct cli *c, int argc, char **argv);
int cmd_show(struct cli *c, int argc, char **argv);
int cmd_config(struct cli *c, int argc, char **argv);
int cmd_connect(struct cli *c, int argc, char **argv);
int cmd_sync(struct cli *c, int argc, char **argv);
int cmd_export(struct cli *c, int argc, char **argv);
int cmd_backfill(struct cli *c, int argc, char **argv);
int cmd_serve(struct cli *c, int argc, char **argv);
int cmd_webhooks(struct cli *c, int argc, char **argv);
int cmd_status(struct cli *c, int argc, char **argv);
int cmd_worker(struct cli *c, int argc, char **argv);
int cmd_store(struct cli *c, int argc, char **argv);
/* cmd_store_backup.c: `store backup DIR`, `store restore DIR` (the store is not opened before:
 * a restore's target must not exist), `store prune`. */
int cmd_store_backup(struct cli *c, int argc, char **argv);
int cmd_store_restore(struct cli *c, int argc, char **argv);
int cmd_store_prune(struct cli *c, int argc, char **argv);
int cmd_apikeys(struct cli *c, int argc, char **argv);
int cmd_connections(struct cli *c, int argc, char **argv);
/* store copy (cmd_store_copy.c): its run and its help. */
int cmd_store_copy(struct cli *c, int argc, char **argv);
void cli_store_copy_help(void);
/* `connections set-artifacts` (cmd_fetch.c). */
int cli_connections_set_artifacts(struct cli *c, int argc, char **argv);
void cli_connections_set_artifacts_help(void);
int cmd_fetch(struct cli *c, int argc, char **argv);

/* ---- background work shared by serve and worker (workers.c) ---- */
#define CLI_MAX_ENDPOINTS 16
struct cli_workers {
    const char *endpoints[CLI_MAX_ENDPOINTS]; /* --crm-endpoint flags, then the environment's */
    size_t n_endpoints;
    char **keep; /* copies the endpoints point into */
    size_t n_keep;
    struct hs_outbox *outbox;
    struct hs_events *events;
    struct hs_reconcile *reconcile;
    struct hs_duties *duties;
    /* Told when the work queue's threads wrote a sync's progress (serve: its sync queue). */
    void (*on_sync_progress)(void *ctx);
    void *progress_ctx;
    struct hs_client_provider clients; /* the verifier's way to Hover */
    struct hs_verifier *verifier;      /* webhook verification codes (webhook/verifier.h) */
};
/* Adds the comma-separated URLs of list; -1 when over CLI_MAX_ENDPOINTS. */
int cli_workers_add_endpoints(struct cli_workers *w, const char *list);
/* Creates the outbox (queueing; its deliverer starts with cli_workers_start) from the endpoints
 * given so far and HOVERSYNC_CRM_ENDPOINTS / HOVERSYNC_CRM_SECRET. Exit code style. */
int cli_workers_outbox(struct cli *c, struct cli_workers *w);
/* Starts the work queue's threads, reconciliation, the periodic duties and the outbox's
 * deliverer. Exit code style. */
int cli_workers_start(struct cli *c, struct hs_client_provider clients, struct cli_workers *w);
/* The retention duty's settings from the configuration table (the strings borrowed). */
void cli_retention_config(const struct cli *c, struct hs_retention_config *rc);
/* Starts the webhook verifier (webhook/verifier.h): serve runs it even with --no-workers, since
 * it completes the intake; a worker process runs one too (they share the queue in the store). */
int cli_workers_verifier(struct cli *c, struct hs_client_provider clients, struct cli_workers *w);
void cli_workers_stop(struct cli_workers *w);
/* The installation's one request budget (--rate-limit per minute plus --rate-margin-ms), booked
 * in the store with every other process using it (store/budget.h), under the client id. */
struct hs_limiter *cli_shared_limiter(struct cli *c);

/* ---- the start and stop that serve and worker share (workers.c) ---- */
struct cli_service {
    sigset_t sigs;               /* SIGINT and SIGTERM, taken by cli_service_wait */
    struct hs_limiter *limiter;  /* the one budget of what this process sends to Hover */
    struct hs_client_pool *pool; /* the Hover clients, one per connection */
    struct cli_workers w;        /* the background work (endpoints added before the start) */
};
/* Blocks SIGINT and SIGTERM in this thread and every thread started later (no signal reaches
 * a worker in the middle of a request), says whether secrets are sealed, creates the budget,
 * the pool of Hover clients (the configured token pair stored now, so that its connection is
 * listed from the start), removes the leftovers of interrupted downloads (cli_clean_data_dir)
 * and creates the CRM outbox (syncs queue notifications whether or not this process delivers
 * them). what names the command in messages. Exit code style; on failure cli_service_stop
 * still frees what was made. */
int cli_service_start(struct cli *c, const char *what, struct cli_service *sv);
/* Starts the background work (workers: the work queue's threads, reconciliation, the periodic
 * duties, the outbox's deliverer) and the webhook verifier, which runs in any case. Exit code
 * style. */
int cli_service_background(struct cli *c, struct cli_service *sv, bool workers);
/* Waits for SIGINT or SIGTERM. */
void cli_service_wait(struct cli_service *sv, const char *what);
/* The graceful stop, once the first signal came: srv (may be NULL) drains (/readyz 503, new
 * requests 503), no new work item is claimed, and the requests and syncs in flight get up to
 * --drain-timeout to finish; the syncs still running then are handed back to the queue (their
 * leases released, so that another process takes them at once) and the transfers to Hover are
 * cut. A second SIGINT or SIGTERM ends the wait: the syncs are handed back all the same and
 * the process exits at once, with status 1 (what the store holds is durable already). */
void cli_service_drain(struct cli *c, struct cli_service *sv, const char *what,
                       struct hs_server *srv);
/* Lets waiters for the budget leave at once (their syncs end as failures, retried later), so
 * stopping never waits for the budget's window. Repeatable. */
void cli_service_interrupt(struct cli_service *sv);
/* Stops the background work (the syncs in flight end first), then frees the clients and the
 * budget. */
void cli_service_stop(struct cli_service *sv);

#endif
