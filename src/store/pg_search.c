/* pg_search.c: jobs_search of the PostgreSQL back-end (store/search.h), with the words and the
 * ranking of the SQLite search (sqlite_search.c): every word of the query begins a word of the
 * job's searched fields, and the matches rank in tiers, each newest job (highest id) first.
 *
 * jobs_search (migrations_pg.c) holds each job's words the way the SQLite index splits them:
 * lower case, accents removed (unaccent), ASCII punctuation and private-use characters as
 * separators. "A word beginning with w" is LIKE '% w%' over the words (a space before each), which
 * the trigram index answers; the query's words are split by hs_fts_query_build, as for SQLite,
 * and normalized by the same SQL function as the index. The matches are read newest first up to
 * HS_SEARCH_MATCHES_MAX, each with its tier; the page is cut from them in (tier, newest) order.
 */
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/mem.h"
#include "store/fts_query.h"
#include "store/pg_internal.h"
#include "store/search.h"

#define PAGE_MAX 1000000

#define SUMMARY_COLS                                                                               \
    "j.id, j.name, j.address_line1, j.address_line2, j.city, j.region, j.postal_code, "            \
    "j.country, j.reconstruction_state, j.hover_updated_at, "                                      \
    "(SELECT COUNT(*) FROM models m WHERE m.job_id = j.id), "                                      \
    "(SELECT COUNT(*) FROM models m WHERE m.job_id = j.id AND m.state = 'complete')"

/* $1 scope (text[] or NULL), $2 state (or NULL). */
#define FILTER                                                                                     \
    "($1::text[] IS NULL OR j.connection_key = ANY($1::text[])) AND "                              \
    "($2::text IS NULL OR j.reconstruction_state = $2::text)"

static int summary_fill(struct pg_txn *t, const PGresult *r, int i, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    struct hs_job_summary *j = row;
    j->id = hs_pg_col_int(r, i, 0);
    j->name = hs_pg_col_text(r, i, 1);
    j->address.line1 = hs_pg_col_text(r, i, 2);
    j->address.line2 = hs_pg_col_text(r, i, 3);
    j->address.city = hs_pg_col_text(r, i, 4);
    j->address.region = hs_pg_col_text(r, i, 5);
    j->address.postal_code = hs_pg_col_text(r, i, 6);
    j->address.country = hs_pg_col_text(r, i, 7);
    j->reconstruction_state = hs_pg_col_text(r, i, 8);
    j->updated_at = hs_pg_col_text(r, i, 9);
    j->models_count = hs_pg_col_int(r, i, 10);
    j->complete_models = hs_pg_col_int(r, i, 11);
    return HS_OK;
}

static void summary_clear(void *row)
{
    struct hs_job_summary *j = row;
    free(j->name);
    free(j->address.line1);
    free(j->address.line2);
    free(j->address.city);
    free(j->address.region);
    free(j->address.postal_code);
    free(j->address.country);
    free(j->reconstruction_state);
    free(j->updated_at);
}

/* ---- without text: the most recently updated jobs ---- */

static int recent_search(struct pg_txn *t, const char *scope, const char *state, int64_t offset,
                         int64_t per, struct hs_job_summary **out, size_t *n, int64_t *total,
                         struct hs_error *err)
{
    struct pg_args a = {0};
    hs_pg_text(&a, scope);
    hs_pg_text(&a, state);
    int rc = hs_pg_int1(t, "SELECT COUNT(*) FROM jobs j WHERE " FILTER, &a, total,
                        "counting search results", err);
    if (rc || *total <= offset)
        return rc;
    hs_pg_int(&a, per);
    hs_pg_int(&a, offset);
    void *v = NULL;
    rc = hs_pg_rows(t,
                    "SELECT " SUMMARY_COLS " FROM jobs j WHERE " FILTER
                    " ORDER BY j.hover_updated_at DESC NULLS LAST, j.id DESC LIMIT $3 OFFSET $4",
                    &a, sizeof(struct hs_job_summary), summary_fill, summary_clear, &v, n,
                    "searching jobs", err);
    if (!rc)
        *out = v;
    return rc;
}

/* ---- with text: the tiers ---- */

/* The words of hs_fts_query_build's expression ("w1"* "w2"*), joined by spaces, into b. */
static int query_words(const char *match, struct hs_buf *b)
{
    int rc = HS_OK;
    for (const char *p = match; *p && !rc;) {
        const char *open = strchr(p, '"');
        const char *close = open ? strchr(open + 1, '"') : NULL;
        if (!close)
            break;
        if (b->len)
            rc = hs_buf_appends(b, " ");
        if (!rc)
            rc = hs_buf_append(b, open + 1, (size_t)(close - open - 1));
        p = close + 1;
    }
    return rc;
}

/* What a tier asks of a job (beside the filter): every word begins one of its words (MATCH),
 * its street line or name begins with the words, whole (WHOLE) or the last as a prefix (BEGINS),
 * every word begins a word of its street line or name (LEAD). */
enum tier { MATCH, WHOLE, BEGINS, LEAD };

/* The ids of the jobs of tier `tier`, newest first, up to limit, into ids (*n of them). pats:
 * the words' patterns ('% w%'), lead: the phrase's pattern. */
static int tier_ids(struct pg_txn *t, const char *scope, const char *state, enum tier tier,
                    char *const *pats, size_t n_pats, const char *lead, int64_t limit, int64_t *ids,
                    size_t *n, struct hs_error *err)
{
    struct pg_args a = {0};
    hs_pg_text(&a, scope);
    hs_pg_text(&a, state);
    struct hs_buf sql;
    hs_buf_init(&sql, 65536);
    int rc = hs_buf_appends(&sql, "SELECT j.id FROM jobs_search s JOIN jobs j ON j.id = s.job_id "
                                  "WHERE " FILTER);
    if (tier == WHOLE || tier == BEGINS) {
        hs_pg_text(&a, lead);
        rc |= hs_buf_appends(&sql, tier == WHOLE ? " AND ((s.lead_street || ' ') LIKE $3 OR "
                                                   "(s.lead_name || ' ') LIKE $3)"
                                                 : " AND (s.lead_street LIKE $3 OR "
                                                   "s.lead_name LIKE $3)");
    }
    for (size_t i = 0; (tier == MATCH || tier == LEAD) && i < n_pats; i++) {
        hs_pg_text(&a, pats[i]);
        rc |= hs_buf_appendf(&sql,
                             tier == MATCH ? " AND s.words LIKE $%zu"
                                           : " AND (' ' || s.lead_street || ' ' || s.lead_name) "
                                             "LIKE $%zu",
                             i + 3);
    }
    rc |= hs_buf_appendf(&sql, " ORDER BY j.id DESC LIMIT %lld", (long long)limit);
    PGresult *r = NULL;
    if (rc)
        rc = hs_fail(err, HS_ERR_TOOBIG, "search query too long");
    else
        rc = hs_pg_exec(t, hs_buf_str(&sql), &a, &r, "searching jobs", err);
    hs_buf_free(&sql);
    *n = 0;
    for (int i = 0; !rc && i < PQntuples(r) && (int64_t)*n < limit; i++)
        ids[(*n)++] = hs_pg_col_int(r, i, 0);
    PQclear(r);
    return rc;
}

/* The ids of a page being ranked, in order, without repeats. */
struct ranking {
    int64_t *ids;
    size_t n, need;
};

static void ranking_add_all(struct ranking *r, const int64_t *ids, size_t n)
{
    for (size_t i = 0; i < n && r->n < r->need; i++) {
        bool seen = false;
        for (size_t k = 0; k < r->n && !seen; k++)
            seen = r->ids[k] == ids[i];
        if (!seen)
            r->ids[r->n++] = ids[i];
    }
}

/* The words' patterns of nq (normalized, space-separated). Caller frees each and the array. */
static char **word_patterns(const char *nq, size_t *n_out)
{
    size_t n = 0;
    char **v = hs_calloc(HS_PG_MAX_ARGS, sizeof *v);
    char *copy = hs_strdup(nq);
    for (char *w = copy, *next; w && *w; w = next) {
        next = strchr(w, ' ');
        if (next)
            *next++ = '\0';
        if (*w && n < HS_PG_MAX_ARGS - 3)
            v[n++] = hs_aprintf("%% %s%%", w);
    }
    free(copy);
    *n_out = n;
    return v;
}

/* The ranking of sqlite_search.c's rank_page: the newest HS_SEARCH_MATCHES_MAX matches give the
 * total; the tiers (each a subset of the matches) are read up to the end of the page, and the
 * newest matches fill the rest. */
static int rank(struct pg_txn *t, const char *nq, const char *scope, const char *state,
                int64_t offset, int64_t per, struct ranking *r, int64_t *total,
                struct hs_error *err)
{
    size_t n_pats = 0;
    char **pats = word_patterns(nq, &n_pats);
    char *whole = hs_aprintf("%s %%", nq), *begins = hs_aprintf("%s%%", nq);
    int64_t *newest = hs_calloc(HS_SEARCH_MATCHES_MAX, sizeof *newest);
    size_t n_newest = 0;
    int rc = tier_ids(t, scope, state, MATCH, pats, n_pats, NULL, HS_SEARCH_MATCHES_MAX, newest,
                      &n_newest, err);
    *total = (int64_t)n_newest;
    int64_t need = offset + per < *total ? offset + per : *total;
    r->need = need > offset ? (size_t)need : 0;
    r->ids = hs_calloc(r->need + 1, sizeof *r->ids);
    int64_t *ids = hs_calloc(r->need + 1, sizeof *ids),
            *begun = hs_calloc(r->need + 1, sizeof *ids);
    size_t n_ids = 0, n_begun = 0;
    if (!rc && r->need > 0)
        rc = tier_ids(t, scope, state, BEGINS, NULL, 0, begins, need, begun, &n_begun, err);
    if (!rc && n_begun > 0 &&
        !(rc = tier_ids(t, scope, state, WHOLE, NULL, 0, whole, need, ids, &n_ids, err)))
        ranking_add_all(r, ids, n_ids);
    ranking_add_all(r, begun, n_begun);
    if (!rc && r->n < r->need &&
        !(rc = tier_ids(t, scope, state, LEAD, pats, n_pats, NULL, need, ids, &n_ids, err)))
        ranking_add_all(r, ids, n_ids);
    ranking_add_all(r, newest, n_newest);
    for (size_t i = 0; i < n_pats; i++)
        free(pats[i]);
    free(pats);
    free(whole);
    free(begins);
    free(newest);
    free(ids);
    free(begun);
    return rc;
}

/* The summaries of ids, in their order (a job deleted meanwhile is left out). */
static int summaries(struct pg_txn *t, const int64_t *ids, size_t n_ids,
                     struct hs_job_summary **out, size_t *n, struct hs_error *err)
{
    struct hs_job_summary *v = hs_calloc(n_ids ? n_ids : 1, sizeof *v);
    size_t len = 0;
    int rc = HS_OK;
    for (size_t i = 0; i < n_ids && !rc; i++) {
        struct pg_args a = {0};
        hs_pg_int(&a, ids[i]);
        rc = hs_pg_one(t, "SELECT " SUMMARY_COLS " FROM jobs j WHERE j.id = $1", &a, summary_fill,
                       &v[len], "searching jobs", err);
        if (rc == HS_ERR_NOT_FOUND)
            rc = HS_OK;
        else if (!rc)
            len++;
    }
    if (rc) {
        hs_job_summaries_free(v, len);
        return rc;
    }
    *out = v;
    *n = len;
    return HS_OK;
}

static int text_search(struct pg_txn *t, const char *match, const char *scope, const char *state,
                       int64_t offset, int64_t per, struct hs_job_summary **out, size_t *n,
                       int64_t *total, struct hs_error *err)
{
    struct hs_buf words;
    hs_buf_init(&words, HS_FTS_QUERY_MAX);
    char *nq = NULL;
    int rc = query_words(match, &words) ? hs_fail(err, HS_ERR_TOOBIG, "query too long") : HS_OK;
    if (!rc) {
        struct pg_args a = {0};
        hs_pg_text(&a, hs_buf_str(&words));
        rc = hs_pg_one(t, "SELECT hs_search_words($1)", &a, hs_pg_fill_text, &nq, "searching jobs",
                       err);
    }
    hs_buf_free(&words);
    struct ranking r = {0};
    if (!rc && nq && *nq)
        rc = rank(t, nq, scope, state, offset, per, &r, total, err);
    free(nq);
    if (!rc && r.n > (size_t)offset)
        rc = summaries(t, r.ids + offset, r.n - (size_t)offset, out, n, err);
    free(r.ids);
    return rc;
}

static bool blank(const char *q)
{
    for (const char *p = q; p && *p; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '\f' && *p != '\v')
            return false;
    return true;
}

static bool scope_empty(const struct hs_scope *scope)
{
    for (size_t i = 0; scope && i < scope->n; i++)
        if (scope->keys[i])
            return false;
    return scope != NULL;
}

static int pg_jobs_search(struct hs_store *base, const char *q, const char *state, int64_t page,
                          int64_t per, const struct hs_scope *scope, struct hs_job_summary **out,
                          size_t *n, int64_t *total, struct hs_error *err)
{
    if (per < 1 || per > 100)
        return hs_fail(err, HS_ERR_INVALID, "per must be 1 to 100, not %lld", (long long)per);
    if (page < 1 || page > PAGE_MAX)
        return hs_fail(err, HS_ERR_INVALID, "page must be 1 to %d, not %lld", PAGE_MAX,
                       (long long)page);
    if (state && !*state)
        state = NULL;
    char match[HS_FTS_QUERY_MAX];
    bool all = blank(q);
    *out = NULL;
    *n = 0;
    *total = 0;
    if ((!all && hs_fts_query_build(q, match, sizeof match) == 0) || scope_empty(scope))
        return HS_OK; /* only punctuation, or no connection to read: nothing can match */
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "jobs_search", err);
    if (rc)
        return rc;
    char *in = hs_pg_scope_array(scope);
    int64_t offset = (page - 1) * per, count = 0;
    struct hs_job_summary *v = NULL;
    size_t len = 0;
    if (all)
        rc = recent_search(&t, in, state, offset, per, &v, &len, &count, err);
    else
        rc = text_search(&t, match, in, state, offset, per, &v, &len, &count, err);
    free(in);
    rc = hs_pg_leave(&t, rc, err);
    if (rc) {
        hs_job_summaries_free(v, len);
        return rc;
    }
    *out = v;
    *n = len;
    *total = count;
    return HS_OK;
}

const struct hs_search_ops hs_pg_search_ops = {
    .jobs_search = pg_jobs_search,
};
