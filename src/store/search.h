/* search.h: the local job search (store.h), over the jobs the records hold. */
#ifndef HS_STORE_SEARCH_H
#define HS_STORE_SEARCH_H

#include "store/store.h"

/* A job as a search result lists it (jobs_search). */
struct hs_job_summary {
    int64_t id;
    char *name;
    struct hs_address address; /* no coordinates */
    char *reconstruction_state;
    char *updated_at; /* Hover's updated_at */
    int64_t models_count, complete_models;
};
void hs_job_summaries_free(struct hs_job_summary *v, size_t n);

/* A search with text ranks and counts at most this many matches (jobs_search). */
#define HS_SEARCH_MATCHES_MAX 1000

struct hs_search_ops {
    /* The stored jobs matching q within scope (NULL: every connection), a page of them: every
     * word of q is a prefix of a word of the job's name, address, customer, external id or
     * capturing user ("4312 mea" finds "4312 Meadow Drive"). Ranked in tiers, each newest job
     * (highest Hover id) first:
     *   1. the street line or the name begins with the words of q, each whole ("12" finds
     *      "12 Oak Street", "4312 meadow" "4312 Meadow Drive");
     *   2. ... begins with them, the last as a prefix ("12": "1234 Elm Street");
     *   3. every word is in the street line or the name ("oak": "12 Oak Street");
     *   4. the other matches (city, customer, email, CRM id, capturing user, ...).
     * Only the first HS_SEARCH_MATCHES_MAX jobs of that ranking are listed (later pages are
     * empty), and *total counts the matches up to HS_SEARCH_MATCHES_MAX: a total of that many
     * means "at least". q NULL or blank: every job, most recently updated at Hover first, and
     * *total is exact; q without any searchable word (only punctuation): none. state:
     * "completed", "failed" (the job's reconstruction_state) or NULL. page from 1, per 1..100.
     * *out gets the page (caller frees with hs_job_summaries_free; it may be NULL when *n is 0),
     * *total the number of matches on every page. A read: it runs beside writes, not after
     * them. */
    int (*jobs_search)(struct hs_store *s, const char *q, const char *state, int64_t page,
                       int64_t per, const struct hs_scope *scope, struct hs_job_summary **out,
                       size_t *n, int64_t *total, struct hs_error *err);
};

#endif
