/* search.h: the modal's type-ahead search. Hover allows 120 requests a minute for every user
 * together, so a keystroke must not cost one: every job the service has seen (searches, shows,
 * backfill, syncs) is in a local full-text index (SQLite FTS5 over the jobs table) that answers at
 * once; Hover is asked only for queries the index cannot answer well (at least 3 characters,
 * debounced, cached for a short time, and never for a refinement of a query whose complete
 * answer is already known), and its answers are merged in and indexed. */
#ifndef HS_SEARCH_SEARCH_H
#define HS_SEARCH_SEARCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/clock.h"
#include "hover/pool.h"
#include "hoversync.h"
#include "store/store.h"

/* Zero fields take their default. */
struct hs_search_config {
    int64_t cache_ttl_ms;   /* Hover answers reused this long; default 60000 */
    int64_t debounce_ms;    /* a query must be this old (no newer query extending it) before
                               Hover is asked; default 250; negative: no debounce */
    int64_t min_local_hits; /* fewer local results than this makes Hover worth asking; default 10 */
    int64_t per_default;    /* default 20, at most 100 */
    /* Extensions. */
    int64_t hover_per;        /* jobs asked of Hover per search (one request either way); an
                                 answer with fewer is Hover's complete answer; default 100 */
    int64_t error_backoff_ms; /* after a failed Hover request, the connection's searches answer
                                 locally (with the error) for this long; default 10000 */
    int64_t debounce_step_ms; /* on a clock other than the system's, the debounce wait checks
                                 for a newer query this often; 25 */
    size_t cache_max;         /* Hover answers kept; default 256 */
    /* Test seam: when set, Hover's List Jobs is this function instead of the provider's client
     * (acquire, hs_client_list_jobs, release). Called without any lock held, from the thread of
     * the search. */
    int (*list_jobs)(void *ctx, const char *connection_key, const struct hs_list_params *p,
                     struct hs_job_page **out, struct hs_error *err);
    void *list_jobs_ctx;
};

struct hs_search_query {
    const char *q;     /* NULL or "" lists the most recently updated jobs */
    const char *state; /* "completed", "failed" or NULL */
    int64_t page;      /* from 1 */
    int64_t per;       /* 0: default */
    const char *connection_key;
    /* Extension: who is typing (the browser session). Debouncing is per session: a query is
     * superseded only by a newer query of the same session. NULL: connection_key. */
    const char *session;
    /* Extension: the local index answers with jobs of these connections only (a browser
     * session's, docs/API.md "Tenants"); NULL: every stored job. */
    const struct hs_scope *scope;
    /* Extension: the caller cannot wait (an HTTP connection's own thread). When the answer
     * would need Hover (rules 7 and 8 of search.c: a debounce, then a request), hs_search_run
     * gives no answer (*out NULL) and sets *pending to a ticket instead: the caller runs the
     * query again where it may wait, with resume set to that ticket, and that run takes the
     * local answer of this one (the index is not asked twice). Every other answer (the local
     * index, a cached or covering answer of Hover, the error backoff) is given as usual. */
    bool no_wait;
    int64_t *pending; /* needed with no_wait: 0, or the ticket */
    int64_t resume;   /* 0, or a ticket of *pending (a ticket no longer kept: a full run) */
};

struct hs_search_service;

int hs_search_new(const struct hs_search_config *cfg, struct hs_store *store,
                  struct hs_client_provider clients, const struct hs_clock *clock,
                  struct hs_search_service **out, struct hs_error *err);
void hs_search_free(struct hs_search_service *s);

/* Answers a query: {"source":"local"|"hover"|"local+hover","results":[job summary...],
 * "page":N,"more":bool} (docs/API.md). Hover failures (rate limited, unreachable, revoked) do
 * not fail the search when the index has an answer: the answer says "hover_error" then.
 *
 * Also in the answer: "total" (matches in the local index) and "hover", what was done about
 * Hover: "asked" (a request was made), "cached" (its answer for q, younger than cache_ttl_ms),
 * "covered" (its complete answer for a prefix of q is indexed: nothing to ask), "short" (fewer
 * than 3 characters), "enough_local" (min_local_hits local matches), "not_first_page",
 * "debounced" (a newer query of the session came within debounce_ms), "error" (the request
 * failed now) or "backoff" (it failed less than error_backoff_ms ago). With "error" and
 * "backoff": "hover_error":{"code","message"}, code reconnect_required (the org must be
 * connected again), rate_limited, upstream_unavailable or upstream_error.
 * Errors: HS_ERR_INVALID (per, page, state or an over-long q), storage errors. */
int hs_search_run(struct hs_search_service *s, const struct hs_search_query *q, json_t **out,
                  struct hs_error *err);

/* Extension: the connection's grant works again (it was just connected anew): its searches
 * ask Hover again at once instead of answering with the failure of before. */
void hs_search_connection_ok(struct hs_search_service *s, const char *conn);

struct hs_search_stats {
    int64_t queries, local_answers, hover_requests, cache_hits, debounced;
    int64_t covered, hover_errors; /* extensions */
};
void hs_search_get_stats(struct hs_search_service *s, struct hs_search_stats *out);

#endif
