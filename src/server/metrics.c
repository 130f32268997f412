/* metrics.c: see metrics.h. One mutex guards the counters; a route keeps a short list of the
 * statuses it answered (a handful in practice) and a fixed latency histogram. */
#include "server/metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/mem.h"

#define MAX_STATUSES 24
#define METRICS_MAX  (4u * 1024u * 1024u)

static const double bucket_le[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define N_BUCKETS (sizeof bucket_le / sizeof bucket_le[0])

struct route_stats {
    int status[MAX_STATUSES];
    int64_t count[MAX_STATUSES];
    size_t n_status;
    int64_t other; /* requests whose status did not fit the list */
    int64_t buckets[N_BUCKETS];
    int64_t total;
    double sum;
};

struct hs_metrics {
    pthread_mutex_t lock;
    const char *const *routes;
    size_t n_routes;
    struct route_stats *stats;
    int64_t webhooks[HS_WH_RESULT_COUNT];
    struct route_stats intake; /* its buckets, total and sum only */
};

struct hs_metrics *hs_metrics_new(const char *const *routes, size_t n_routes)
{
    struct hs_metrics *m = hs_calloc(1, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
    m->routes = routes;
    m->n_routes = n_routes;
    m->stats = hs_calloc(n_routes ? n_routes : 1, sizeof *m->stats);
    return m;
}

void hs_metrics_free(struct hs_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->lock);
    free(m->stats);
    free(m);
}

void hs_metrics_observe(struct hs_metrics *m, size_t route, int status, double seconds)
{
    if (!m || route >= m->n_routes)
        return;
    pthread_mutex_lock(&m->lock);
    struct route_stats *r = &m->stats[route];
    size_t i = 0;
    while (i < r->n_status && r->status[i] != status)
        i++;
    if (i == r->n_status && r->n_status < MAX_STATUSES) {
        r->status[i] = status;
        r->count[i] = 0;
        r->n_status++;
    }
    if (i < r->n_status)
        r->count[i]++;
    else
        r->other++;
    for (size_t b = 0; b < N_BUCKETS; b++)
        if (seconds <= bucket_le[b])
            r->buckets[b]++;
    r->total++;
    r->sum += seconds;
    pthread_mutex_unlock(&m->lock);
}

void hs_metrics_webhook(struct hs_metrics *m, enum hs_webhook_result result)
{
    if (!m || result >= HS_WH_RESULT_COUNT)
        return;
    pthread_mutex_lock(&m->lock);
    m->webhooks[result]++;
    pthread_mutex_unlock(&m->lock);
}

void hs_metrics_webhook_intake(struct hs_metrics *m, double seconds)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    for (size_t b = 0; b < N_BUCKETS; b++)
        if (seconds <= bucket_le[b])
            m->intake.buckets[b]++;
    m->intake.total++;
    m->intake.sum += seconds;
    pthread_mutex_unlock(&m->lock);
}

/* Route labels are our own patterns; escape anyway, as the text format requires. */
static void label(struct hs_buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            (void)hs_buf_append(b, "\\", 1);
        if (*v == '\n')
            (void)hs_buf_appends(b, "\\n");
        else
            (void)hs_buf_append(b, v, 1);
    }
}

static void family(struct hs_buf *b, const char *name, const char *type, const char *help)
{
    (void)hs_buf_appendf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(struct hs_buf *b, const char *name, const char *type, const char *help, double v)
{
    family(b, name, type, help);
    (void)hs_buf_appendf(b, "%s %.17g\n", name, v);
}

/* The requests answered, by route and status, and their latencies. */
static void render_http(struct hs_buf *b, struct hs_metrics *m)
{
    pthread_mutex_lock(&m->lock);
    family(b, "hoversync_http_requests_total", "counter",
           "HTTP requests answered by the service, by route and status.");
    for (size_t i = 0; i < m->n_routes; i++) {
        const struct route_stats *r = &m->stats[i];
        for (size_t k = 0; k < r->n_status; k++) {
            (void)hs_buf_appends(b, "hoversync_http_requests_total{route=\"");
            label(b, m->routes[i]);
            (void)hs_buf_appendf(b, "\",status=\"%d\"} %lld\n", r->status[k],
                                 (long long)r->count[k]);
        }
        if (r->other) {
            (void)hs_buf_appends(b, "hoversync_http_requests_total{route=\"");
            label(b, m->routes[i]);
            (void)hs_buf_appendf(b, "\",status=\"other\"} %lld\n", (long long)r->other);
        }
    }
    family(b, "hoversync_http_request_duration_seconds", "histogram",
           "Time from a request's arrival to its answer being queued, by route.");
    for (size_t i = 0; i < m->n_routes; i++) {
        const struct route_stats *r = &m->stats[i];
        if (!r->total)
            continue;
        for (size_t k = 0; k <= N_BUCKETS; k++) {
            (void)hs_buf_appends(b, "hoversync_http_request_duration_seconds_bucket{route=\"");
            label(b, m->routes[i]);
            if (k < N_BUCKETS)
                (void)hs_buf_appendf(b, "\",le=\"%g\"} %lld\n", bucket_le[k],
                                     (long long)r->buckets[k]);
            else
                (void)hs_buf_appendf(b, "\",le=\"+Inf\"} %lld\n", (long long)r->total);
        }
        (void)hs_buf_appends(b, "hoversync_http_request_duration_seconds_sum{route=\"");
        label(b, m->routes[i]);
        (void)hs_buf_appendf(b, "\"} %.9f\n", r->sum);
        (void)hs_buf_appends(b, "hoversync_http_request_duration_seconds_count{route=\"");
        label(b, m->routes[i]);
        (void)hs_buf_appendf(b, "\"} %lld\n", (long long)r->total);
    }
    pthread_mutex_unlock(&m->lock);
}

/* What the service's Hover clients sent and how Hover answered. */
static void render_hover(struct hs_buf *b, const struct hs_metrics_sources *src)
{
    const struct hs_client_stats *h = &src->hover;
    sample(b, "hoversync_hover_requests_total", "counter",
           "HTTP requests sent to Hover's API by the service's clients, retries included.",
           (double)h->requests);
    family(b, "hoversync_hover_responses_total", "counter",
           "Answers of Hover's API to the service's clients, by status class (network: none).");
    for (int k = 0; k < HS_SC_COUNT; k++)
        (void)hs_buf_appendf(b, "hoversync_hover_responses_total{status=\"%s\"} %lld\n",
                             hs_status_class_label(k), (long long)h->by_status[k]);
    sample(b, "hoversync_hover_retries_total", "counter",
           "Requests to Hover retried after a 429, a 5xx or a network error.", (double)h->retries);
    sample(b, "hoversync_hover_token_refreshes_total", "counter",
           "OAuth token refreshes made by the service's clients.", (double)h->refreshes);
    sample(b, "hoversync_hover_rate_limit_waits_total", "counter",
           "Times the client-side limiter made a request to Hover wait.",
           (double)h->rate_limit_waits);
    sample(b, "hoversync_hover_rate_limit_wait_seconds_total", "counter",
           "Seconds requests to Hover waited for the client-side limiter.",
           (double)h->waited_ms / 1000.0);
    sample(b, "hoversync_hover_oauth_requests_total", "counter",
           "Token endpoint requests of the connect flow (code exchanges).",
           (double)src->oauth_requests);
}

static void render_syncq(struct hs_buf *b, const struct hs_syncq_stats *q)
{
    sample(b, "hoversync_sync_queue_depth", "gauge", "Syncs queued and not started yet.",
           (double)q->queued);
    sample(b, "hoversync_syncs_running", "gauge", "Syncs running now.", (double)q->running);
}

/* This process's work queue workers and periodic duties. */
static void render_workers(struct hs_buf *b, const struct hs_metrics_sources *src)
{
    family(b, "hoversync_syncs_total", "counter",
           "Syncs finished by this process's work queue workers, by result.");
    (void)hs_buf_appendf(b, "hoversync_syncs_total{result=\"done\"} %lld\n",
                         (long long)src->events.syncs_done);
    (void)hs_buf_appendf(b, "hoversync_syncs_total{result=\"failed\"} %lld\n",
                         (long long)src->events.syncs_failed);
    sample(b, "hoversync_work_items_claimed_total", "counter",
           "Work items this process's workers claimed.", (double)src->events.claimed);
    sample(b, "hoversync_work_items_retried_total", "counter",
           "Work item runs that failed and were released for a retry.",
           (double)src->events.retried);
    sample(b, "hoversync_sync_pending_runs_total", "counter",
           "Runs of the pending pass (jobs waiting for a model to complete, polled where no "
           "healthy webhook reports it).",
           (double)src->duties.pending_runs);
    sample(b, "hoversync_retention_rows_deleted_total", "counter",
           "Rows the retention duty deleted in this process (old deliveries, runs, results, "
           "delivered notifications, expired signatures and connect flows).",
           (double)src->duties.retention_rows);
    sample(b, "hoversync_retention_files_deleted_total", "counter",
           "Artifact files no row pointed at, deleted by the retention duty in this process.",
           (double)src->duties.retention_files);
}

static void render_search(struct hs_buf *b, const struct hs_search_stats *s)
{
    sample(b, "hoversync_search_queries_total", "counter", "Searches answered.",
           (double)s->queries);
    sample(b, "hoversync_search_local_answers_total", "counter",
           "Searches answered from the local index alone.", (double)s->local_answers);
    sample(b, "hoversync_search_hover_requests_total", "counter",
           "List Jobs requests the search service sent to Hover.", (double)s->hover_requests);
    sample(b, "hoversync_search_cache_hits_total", "counter",
           "Searches answered from cached Hover answers.", (double)s->cache_hits);
    sample(b, "hoversync_search_debounced_total", "counter",
           "Searches that did not ask Hover because a newer query superseded them.",
           (double)s->debounced);
}

/* The guards of the request pipeline: streams, requests in flight, waits on Hover,
 * connections, header deadlines and caller rates. */
static void render_pipeline(struct hs_buf *b, const struct hs_metrics_sources *src)
{
    sample(b, "hoversync_sse_streams", "gauge", "Open progress streams (Server-Sent Events).",
           (double)src->sse_streams);
    sample(b, "hoversync_http_requests_in_flight", "gauge", "Requests being handled now.",
           (double)src->in_flight);
    family(b, "hoversync_hover_waits_total", "counter",
           "Requests of routes that wait on Hover, by how the wait ended: answered in time, or "
           "504 after --hover-wait (the work goes on in the background).");
    (void)hs_buf_appendf(b, "hoversync_hover_waits_total{result=\"answered\"} %lld\n",
                         (long long)src->hover_answered);
    (void)hs_buf_appendf(b, "hoversync_hover_waits_total{result=\"timed_out\"} %lld\n",
                         (long long)src->hover_timed_out);
    sample(b, "hoversync_hover_waiting", "gauge",
           "Requests of routes that wait on Hover, waiting now.", (double)src->hover_waiting);
    sample(b, "hoversync_hover_handlers_running", "gauge",
           "Handlers of routes that wait on Hover running now, those already answered 504 "
           "included.",
           (double)src->hover_running);
    sample(b, "hoversync_http_connections", "gauge", "Open HTTP connections.",
           (double)src->connections);
    sample(b, "hoversync_http_header_timeouts_total", "counter",
           "Connections closed because their request headers were not complete within "
           "--header-timeout.",
           (double)src->header_timeouts);
    sample(b, "hoversync_http_rate_limited_total", "counter",
           "Requests refused with 429 by the per-caller limit (--caller-rate-limit).",
           (double)src->callers_refused);
}

/* The webhook side: deliveries by result and their intake time (this process's). */
static void render_webhooks(struct hs_buf *b, struct hs_metrics *m)
{
    pthread_mutex_lock(&m->lock);
    family(b, "hoversync_webhook_events_total", "counter",
           "Webhook deliveries received by this process, by result (accepted, unknown_event, "
           "verification, duplicate, bad_signature, malformed, too_big, bad_method, "
           "unavailable).");
    for (int k = 0; k < HS_WH_RESULT_COUNT; k++)
        (void)hs_buf_appendf(b, "hoversync_webhook_events_total{result=\"%s\"} %lld\n",
                             hs_webhook_result_label((enum hs_webhook_result)k),
                             (long long)m->webhooks[k]);
    const struct route_stats *r = &m->intake;
    family(b, "hoversync_webhook_intake_duration_seconds", "histogram",
           "Time from a webhook delivery's arrival to its answer (stored before acknowledged).");
    for (size_t k = 0; k < N_BUCKETS; k++)
        (void)hs_buf_appendf(b,
                             "hoversync_webhook_intake_duration_seconds_bucket{le=\"%g\"} %lld\n",
                             bucket_le[k], (long long)r->buckets[k]);
    (void)hs_buf_appendf(b, "hoversync_webhook_intake_duration_seconds_bucket{le=\"+Inf\"} %lld\n",
                         (long long)r->total);
    (void)hs_buf_appendf(b, "hoversync_webhook_intake_duration_seconds_sum %.9f\n", r->sum);
    (void)hs_buf_appendf(b, "hoversync_webhook_intake_duration_seconds_count %lld\n",
                         (long long)r->total);
    pthread_mutex_unlock(&m->lock);
}

/* What the store holds for every process: the work queue and the outbox's backlog. */
static void render_backlog(struct hs_buf *b, const struct hs_metrics_sources *src)
{
    if (src->have_queue) {
        sample(b, "hoversync_work_items_due", "gauge",
               "Work items due and not claimed, read from the store (every process's queue).",
               (double)src->work_due);
        sample(b, "hoversync_work_items", "gauge",
               "Work items in the store, due or not, claimed or not (every process's queue).",
               (double)src->work_total);
        sample(b, "hoversync_work_oldest_due_age_seconds", "gauge",
               "How long the oldest due, unclaimed work item has waited for a worker, read from "
               "the store (0 when none is due).",
               (double)src->work_oldest_due_age_ms / 1000.0);
    }
    if (src->have_backlog)
        sample(b, "hoversync_outbox_backlog_messages", "gauge",
               "CRM notifications not delivered yet, read from the store (every process's).",
               (double)src->outbox_backlog);
}

/* This process's CRM deliveries and its background share of the Hover budget. */
static void render_delivery(struct hs_buf *b, const struct hs_metrics_sources *src)
{
    if (src->have_workers) {
        family(b, "hoversync_outbox_delivery_attempts_total", "counter",
               "Deliveries of CRM notifications this process attempted, by outcome.");
        (void)hs_buf_appendf(b,
                             "hoversync_outbox_delivery_attempts_total{outcome=\"delivered\"} "
                             "%lld\n",
                             (long long)src->outbox.delivered);
        (void)hs_buf_appendf(b,
                             "hoversync_outbox_delivery_attempts_total{outcome=\"failed\"} "
                             "%lld\n",
                             (long long)src->outbox.failed_attempts);
    }
    if (src->have_budget) {
        sample(b, "hoversync_budget_background_requests_total", "counter",
               "Background requests to Hover this process booked from the installation's "
               "budget.",
               (double)src->budget.background_acquired);
        sample(b, "hoversync_budget_background_wait_seconds_total", "counter",
               "Seconds this process's background requests waited for the budget.",
               (double)src->budget.background_waited_ms / 1000.0);
        sample(b, "hoversync_budget_background_waiting", "gauge",
               "Background requests of this process waiting for the budget now.",
               (double)src->budget.background_waiting);
    }
}

char *hs_metrics_render(struct hs_metrics *m, const struct hs_metrics_sources *src)
{
    struct hs_buf b;
    hs_buf_init(&b, METRICS_MAX);
    render_http(&b, m);
    render_hover(&b, src);
    if (src->have_syncq)
        render_syncq(&b, &src->syncq);
    if (src->have_workers)
        render_workers(&b, src);
    if (src->have_search)
        render_search(&b, &src->search);
    render_pipeline(&b, src);
    render_webhooks(&b, m);
    render_backlog(&b, src);
    render_delivery(&b, src);
    return hs_buf_take(&b, NULL);
}
