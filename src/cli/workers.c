/* workers.c: the background work that `hoversync serve` runs by default and `hoversync worker`
 * runs on its own (docs/WEBHOOKS.md): the CRM outbox (queueing, and its deliverer), the event
 * worker's threads, reconciliation and the webhook verifier, configured from the one
 * configuration table; and the start and stop the two commands share around it (signals, the
 * request budget, the Hover clients). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "core/clock.h"
#include "hover/limiter.h"
#include "hover/multi.h"
#include "server/server.h"
#include "webhook/registration.h"
#include "webhook/verifier.h"

int cli_workers_add_endpoints(struct cli_workers *w, const char *list)
{
    if (!list)
        return 0;
    char *copy = hs_strdup(list);
    w->keep = hs_realloc(w->keep, (w->n_keep + 1) * sizeof *w->keep);
    w->keep[w->n_keep++] = copy;
    return hs_split_list(copy, w->endpoints, CLI_MAX_ENDPOINTS, &w->n_endpoints) == HS_OK ? 0 : -1;
}

int cli_workers_outbox(struct cli *c, struct cli_workers *w)
{
    struct hs_error err = {0};
    if (cli_workers_add_endpoints(w, hs_config_str(&c->cfg, CFG_CRM_ENDPOINTS)) != 0) {
        fprintf(stderr, "hoversync: at most %d CRM endpoints\n", CLI_MAX_ENDPOINTS);
        return EXIT_USAGE;
    }
    struct hs_outbox_config oc = {
        .endpoints = w->endpoints,
        .n_endpoints = w->n_endpoints,
        .secret = hs_config_str(&c->cfg, CFG_CRM_SECRET),
        .retry_base_ms = hs_config_int(&c->cfg, CFG_OUTBOX_RETRY_BASE),
    };
    int r = hs_outbox_new(&oc, c->store, NULL, NULL, &w->outbox, &err);
    if (r)
        return cli_report("CRM notifications", r, &err);
    return EXIT_OK;
}

void cli_retention_config(const struct cli *c, struct hs_retention_config *rc)
{
    const int64_t day_ms = 86400 * 1000LL;
    *rc = (struct hs_retention_config){
        .keep_events_ms = hs_config_int(&c->cfg, CFG_KEEP_WEBHOOK_EVENTS) * day_ms,
        .keep_runs_ms = hs_config_int(&c->cfg, CFG_KEEP_SYNC_RUNS) * day_ms,
        .keep_outbox_ms = hs_config_int(&c->cfg, CFG_KEEP_OUTBOX) * day_ms,
        .blob_grace_ms = hs_config_int(&c->cfg, CFG_BLOB_GRACE) * 1000,
        .data_dir = cli_blobs_local(c) ? hs_config_str(&c->cfg, CFG_DATA_DIR) : NULL,
    };
}

int cli_workers_start(struct cli *c, struct hs_client_provider clients, struct cli_workers *w)
{
    struct hs_error err = {0};
    struct hs_events_config ec = {
        .data_dir = hs_config_str(&c->cfg, CFG_DATA_DIR),
        .artifacts = hs_config_str(&c->cfg, CFG_ARTIFACTS),
        .blobs = c->blobs,
        .threads = (int)hs_config_int(&c->cfg, CFG_EVENT_WORKERS),
        .download_slots = (int)hs_config_int(&c->cfg, CFG_DOWNLOAD_SLOTS),
        .lease_ms = hs_config_int(&c->cfg, CFG_WORK_LEASE) * 1000,
        .on_sync_progress = w->on_sync_progress,
        .progress_ctx = w->progress_ctx,
    };
    int r = hs_events_new(&ec, c->store, clients, w->outbox, NULL, &w->events, &err);
    if (r == HS_OK)
        r = hs_events_start(w->events, &err);
    if (r)
        return cli_report("work queue", r, &err);
    struct hs_duties_config dc = {
        .pending_cap_ms = hs_config_int(&c->cfg, CFG_PENDING_INTERVAL) * 1000,
        .events = w->events,
        .retention_interval_ms = hs_config_int(&c->cfg, CFG_RETENTION_INTERVAL) * 1000,
    };
    cli_retention_config(c, &dc.retention);
    r = hs_duties_new(&dc, c->store, NULL, &w->duties, &err);
    if (r == HS_OK)
        r = hs_duties_start(w->duties, &err);
    if (r)
        return cli_report("periodic duties", r, &err);
    struct hs_reconcile_config rc = {
        .interval_ms = hs_config_int(&c->cfg, CFG_RECONCILE_INTERVAL) * 1000,
    };
    r = hs_reconcile_new(&rc, c->store, clients, w->events, NULL, &w->reconcile, &err);
    if (r == HS_OK)
        r = hs_reconcile_start(w->reconcile, &err);
    if (r)
        return cli_report("reconciliation", r, &err);
    if ((r = hs_outbox_start(w->outbox, &err)))
        return cli_report("CRM notifications", r, &err);
    hs_info("workers=started threads=%d reconcile_interval_s=%lld pending_interval_s=%lld "
            "crm_endpoints=%zu",
            ec.threads, (long long)(rc.interval_ms / 1000), (long long)(dc.pending_cap_ms / 1000),
            w->n_endpoints);
    return EXIT_OK;
}

int cli_workers_verifier(struct cli *c, struct hs_client_provider clients, struct cli_workers *w)
{
    struct hs_error err = {0};
    w->clients = clients;
    struct hs_verifier_config vc = {.verify = hs_webhook_verify_via_provider,
                                    .verify_ctx = &w->clients};
    int r = hs_verifier_new(&vc, c->store, NULL, &w->verifier, &err);
    if (r == HS_OK)
        r = hs_verifier_start(w->verifier, &err);
    if (r)
        return cli_report("webhook verifier", r, &err);
    return EXIT_OK;
}

void cli_workers_stop(struct cli_workers *w)
{
    /* Producers first (they queue work and notifications), then what they feed. */
    hs_reconcile_free(w->reconcile);
    w->reconcile = NULL;
    hs_duties_free(w->duties);
    w->duties = NULL;
    hs_verifier_free(w->verifier);
    w->verifier = NULL;
    hs_events_free(w->events);
    w->events = NULL;
    hs_outbox_free(w->outbox);
    w->outbox = NULL;
    for (size_t i = 0; i < w->n_keep; i++)
        free(w->keep[i]);
    free(w->keep);
    w->keep = NULL;
    w->n_keep = 0;
    w->n_endpoints = 0;
}

struct hs_limiter *cli_shared_limiter(struct cli *c)
{
    int rate = (int)hs_config_int(&c->cfg, CFG_RATE_LIMIT);
    int64_t margin = hs_config_int(&c->cfg, CFG_RATE_MARGIN);
    return hs_limiter_new_shared(rate, 60000 + margin, NULL, c->store,
                                 hs_config_str(&c->cfg, CFG_CLIENT_ID));
}

int cli_service_start(struct cli *c, const char *what, struct cli_service *sv)
{
    sigemptyset(&sv->sigs);
    sigaddset(&sv->sigs, SIGINT);
    sigaddset(&sv->sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sv->sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    cli_secrets_notice(c);

    struct hs_error err = {0};
    char msg[64];
    sv->limiter = cli_shared_limiter(c);
    struct hs_client_config cc;
    cli_client_config(c, &cc);
    cc.limiter = sv->limiter;
    int r = hs_client_pool_new(&cc, hs_store_tokens(c->store), &sv->pool, &err);
    if (r) {
        (void)snprintf(msg, sizeof msg, "%s: Hover clients", what);
        return cli_report(msg, r, &err);
    }
    if (cc.initial_access_token && *cc.initial_access_token) {
        struct hs_client *cl = NULL;
        if ((r = hs_client_pool_acquire(sv->pool, cc.credential_key, &cl, &err))) {
            (void)snprintf(msg, sizeof msg, "%s: Hover connection", what);
            return cli_report(msg, r, &err);
        }
        hs_client_pool_release(sv->pool, cl);
    }
    if ((r = cli_clean_data_dir(c, &err)) != HS_OK) {
        (void)snprintf(msg, sizeof msg, "%s: cannot use the data directory", what);
        return cli_report(msg, r, &err);
    }
    return cli_workers_outbox(c, &sv->w);
}

int cli_service_background(struct cli *c, struct cli_service *sv, bool workers)
{
    struct hs_client_provider prov = hs_client_pool_provider(sv->pool);
    int rc = EXIT_OK;
    if (workers && (rc = cli_workers_start(c, prov, &sv->w)) != EXIT_OK)
        return rc;
    return cli_workers_verifier(c, prov, &sv->w);
}

void cli_service_wait(struct cli_service *sv, const char *what)
{
    int sig = 0;
    while (sigwait(&sv->sigs, &sig) != 0)
        ;
    hs_info("%s msg=\"stopping\" signal=%d", what, sig);
}

#define DRAIN_LOOK_MS 100

void cli_service_drain(struct cli *c, struct cli_service *sv, const char *what,
                       struct hs_server *srv)
{
    const struct hs_clock *clock = hs_clock_system();
    int64_t timeout_ms = hs_config_int(&c->cfg, CFG_DRAIN_TIMEOUT) * 1000;
    int64_t start = clock->mono_ms(clock);
    hs_server_drain(srv);
    hs_events_drain(sv->w.events);
    bool forced = false;
    int64_t busy = 0, syncs = 0;
    for (;;) {
        syncs = hs_events_running(sv->w.events);
        busy = hs_server_busy(srv) + syncs;
        int64_t left = start + timeout_ms - clock->mono_ms(clock);
        if (busy == 0 || left <= 0)
            break;
        int64_t nap = left < DRAIN_LOOK_MS ? left : DRAIN_LOOK_MS;
        struct timespec ts = {(time_t)(nap / 1000), (long)(nap % 1000) * 1000000L};
        int sig = sigtimedwait(&sv->sigs, NULL, &ts);
        if (sig > 0) {
            hs_warn("%s msg=\"second signal: stopping now\" signal=%d", what, sig);
            forced = true;
            break;
        }
    }
    /* What still runs goes back to the queue for another process, and its transfers end: its
     * late writes are fenced out. */
    int64_t handed = hs_events_hand_back(sv->w.events);
    hs_curl_multi_stop(hs_curl_multi_default());
    hs_info("%s msg=\"drained\" ms=%lld busy=%lld handed_back=%lld", what,
            (long long)(clock->mono_ms(clock) - start), (long long)busy, (long long)handed);
    if (forced) {
        /* Threads may be anywhere: leave without joining them. */
        fflush(NULL);
        _exit(EXIT_FAIL);
    }
}

void cli_service_interrupt(struct cli_service *sv)
{
    hs_limiter_shutdown(sv->limiter);
}

void cli_service_stop(struct cli_service *sv)
{
    cli_service_interrupt(sv);
    cli_workers_stop(&sv->w);
    hs_client_pool_free(sv->pool);
    sv->pool = NULL;
    hs_limiter_free(sv->limiter);
    sv->limiter = NULL;
}
