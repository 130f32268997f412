/* metrics.h: the service's Prometheus metrics (GET /metrics, text format 0.0.4): HTTP requests by
 * route and status, their latencies, and the counters of the Hover clients, the sync queue and the
 * search service, read when the page is rendered. */
#ifndef HS_SERVER_METRICS_H
#define HS_SERVER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hover/client.h"
#include "search/search.h"
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
};

/* The text page (caller frees). */
char *hs_metrics_render(struct hs_metrics *m, const struct hs_metrics_sources *src);

#endif
