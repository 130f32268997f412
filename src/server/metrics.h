/* metrics.h: the service's Prometheus metrics (GET /metrics, text format 0.0.4): HTTP requests by
 * route and status, their latencies, and the counters of the Hover clients, the sync queue and the
 * search service, read when the page is rendered. */
#ifndef HS_SERVER_METRICS_H
#define HS_SERVER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hover/client.h"
#include "hover/limiter.h"
#include "notify/outbox.h"
#include "search/search.h"
#include "webhook/receiver.h"
#include "worker/duties.h"
#include "worker/events.h"
#include "worker/syncq.h"

struct hs_metrics;

/* routes: the route labels (borrowed, must outlive the metrics); observations name a route by
 * its index. */
struct hs_metrics *hs_metrics_new(const char *const *routes, size_t n_routes);
void hs_metrics_free(struct hs_metrics *m);
/* Counts one answered request. Thread-safe. */
void hs_metrics_observe(struct hs_metrics *m, size_t route, int status, double seconds);

/* Counts one webhook delivery by what became of it, and, with seconds >= 0, its intake time
 * (request received to answer queued). Thread-safe. */
void hs_metrics_webhook(struct hs_metrics *m, enum hs_webhook_result result);
void hs_metrics_webhook_intake(struct hs_metrics *m, double seconds);

/* What other parts count, gathered by the caller for one rendering. */
struct hs_metrics_sources {
    struct hs_client_stats hover;
    bool have_syncq;
    struct hs_syncq_stats syncq; /* syncs queued and running, whichever process runs them */
    /* This process's work queue workers and periodic duties (serve without --no-workers). */
    bool have_workers;
    struct hs_events_stats events;
    struct hs_duties_stats duties;
    bool have_search;
    struct hs_search_stats search;
    int64_t oauth_requests; /* token endpoint requests of the connect flow */
    int64_t sse_streams;    /* open progress streams */
    int64_t in_flight;      /* requests being handled */
    /* Routes that wait on Hover: answered in time, answered 504, waiting now. */
    int64_t hover_answered, hover_timed_out, hover_waiting;
    int64_t hover_running;   /* their handlers running now, those answered 504 included */
    int64_t connections;     /* open connections */
    int64_t header_timeouts; /* connections closed because their headers were late */
    int64_t callers_refused; /* 429 answers of the per-caller limit */
    /* Read from the store at scrape time: the installation's view, whichever process runs the
     * work (false when the store did not answer). */
    bool have_queue;
    int64_t work_due, work_total, work_oldest_due_age_ms;
    bool have_backlog;
    int64_t outbox_backlog; /* CRM notifications not delivered yet */
    /* This process's CRM deliverer (have_workers) and its Hover budget. */
    struct hs_outbox_stats outbox;
    bool have_budget;
    struct hs_limiter_stats budget;
};

/* The text page (caller frees). */
char *hs_metrics_render(struct hs_metrics *m, const struct hs_metrics_sources *src);

#endif
