/* client.h: the Hover API client. One hs_client per credential (connected org); safe to use from
 * one thread at a time per client, while token refreshes are serialised across clients and
 * processes through the store. */
#ifndef HS_HOVER_CLIENT_H
#define HS_HOVER_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/clock.h"
#include "hoversync.h"
#include "hover/transport.h"
#include "store/store.h"

struct hs_client_config {
    const char *base_url;       /* "https://hover.to"; no trailing slash needed */
    const char *client_id;      /* needed for refreshes */
    const char *client_secret;
    const char *credential_key; /* key of the token pair in the store; "default" if NULL */
    /* Initial pair, used only when the store holds none for credential_key: then it is saved. */
    const char *initial_access_token;
    const char *initial_refresh_token;
    const char *as_user_email; /* adds current_user_email=.. to v3 job and artifact requests */
    int64_t as_user_id;        /* adds current_user_id=.. (0: not set) */
    int max_attempts;          /* per request, including the first; default 5 */
    int64_t backoff_base_ms;   /* default 500 */
    int64_t backoff_max_ms;    /* default 30000 */
    int64_t timeout_ms;        /* per HTTP request; default 60000 */
    size_t max_response_bytes; /* hard cap on a JSON response; default 32 MiB */
    int rate_per_minute;       /* client-side limiter budget; default 120, 0 = unlimited */
    int64_t refresh_skew_s;    /* refresh when the token expires within this; default 300 */
};

/* Parameters of List Jobs (GET /api/v3/jobs). Unset fields are not sent. */
struct hs_list_params {
    const char *search; /* at least 3 characters when set */
    int64_t page;       /* from 1; 0 = not sent */
    int64_t per;        /* 1..100; 0 = not sent */
    const char *sort_by;
    const char *sort_order;
    int archived;         /* -1 not sent, 0 false, 1 true */
    int64_t updated_since; /* unix s; 0 = not sent */
    const char *reconstruction_state;
    const int64_t *deliverable_ids;
    size_t n_deliverable_ids;
};

struct hs_client;

/* The client borrows store, clock and transport: they must outlive it. transport may be NULL
 * for the default libcurl transport (owned by the client); clock NULL for the system clock. */
int hs_client_new(const struct hs_client_config *cfg, struct hs_store *store,
                  const struct hs_clock *clock, struct hs_transport *transport,
                  struct hs_client **out, struct hs_error *err);
void hs_client_free(struct hs_client *c);

int hs_client_list_jobs(struct hs_client *c, const struct hs_list_params *p,
                        struct hs_job_page **out, struct hs_error *err);
int hs_client_show_job(struct hs_client *c, int64_t job_id, struct hs_job **out,
                       struct hs_error *err);

/* Counters for status output and tests. */
struct hs_client_stats {
    int64_t requests;      /* HTTP requests sent, retries included */
    int64_t retries;
    int64_t refreshes;
    int64_t rate_limit_waits; /* times the client-side limiter made us wait */
    int64_t waited_ms;
};
void hs_client_get_stats(const struct hs_client *c, struct hs_client_stats *out);

#endif
