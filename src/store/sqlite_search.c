/* sqlite_search.c: jobs_search of the SQLite back-end, over the FTS5 tables of migration 10
 * (jobs_fts: every indexed field; jobs_fts_lead: the street line and the name, and search_lead,
 * where the first word of each is marked), kept in step with jobs by triggers.
 *
 * The cost is the page, not the matches. The ranking is tiers (store/search.h), each newest job
 * first, and FTS5 streams matches in rowid order (minus the Hover id) and stops at a LIMIT: a
 * first keystroke that matches 86,000 jobs reads HS_SEARCH_MATCHES_MAX of them, and of each tier
 * what the page needs. For a page:
 *   1. the matches in jobs_fts, newest first, up to HS_SEARCH_MATCHES_MAX: the total, and the
 *      last tier;
 *   2. the tiers of jobs_fts_lead (begins with the words, whole; begins with them; has them),
 *      each up to the end of the page, skipping the jobs an earlier tier listed. Each tier is a
 *      subset of the next and of (1), so a tier that does not fill the page has been read whole,
 *      and the next needs no more rows than the page either;
 *   3. the rest of the page from (1);
 *   4. the page's jobs, each by id, with their models counts.
 * Scores (bm25) are not computed: they need every match, and were 20 ms for the 8,000 matches of
 * "san" at 100,000 jobs. A scope and a state are tokens of the index (search_filter), so a
 * session's search filters in FTS5 too; a scope that holds every stored job is no filter. */
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/mem.h"
#include "core/str.h"
#include "store/fts_query.h"
#include "store/search.h"
#include "store/sqlite_internal.h"

#define PAGE_MAX   1000000
#define FILTER_MAX (256 * 1024) /* the scope's keys, as index tokens */

#define SUMMARY_COLS                                                                               \
    "j.id, j.name, j.address_line1, j.address_line2, j.city, j.region, j.postal_code, "            \
    "j.country, j.reconstruction_state, j.hover_updated_at, "                                      \
    "(SELECT COUNT(*) FROM models m WHERE m.job_id = j.id), "                                      \
    "(SELECT COUNT(*) FROM models m WHERE m.job_id = j.id AND m.state = 'complete')"

/* ?1 match expression, ?2 how many. The rowid of both tables is minus the job id: ascending,
 * the newest job first (FTS5 reads forwards faster than backwards). */
static const char MATCH_SQL[] =
    "SELECT -rowid FROM jobs_fts WHERE jobs_fts MATCH ?1 ORDER BY rowid LIMIT ?2";
static const char LEAD_SQL[] =
    "SELECT -rowid FROM jobs_fts_lead WHERE jobs_fts_lead MATCH ?1 ORDER BY rowid LIMIT ?2";
static const char SUMMARY_SQL[] = "SELECT " SUMMARY_COLS " FROM jobs j WHERE j.id = ?1";
/* The smallest and largest connection keys, and whether a job has none; the smallest after ?1
 * (one index seek each). */
static const char KEYS_SQL[] =
    "SELECT (SELECT MIN(connection_key) FROM jobs), (SELECT MAX(connection_key) FROM jobs), "
    "EXISTS (SELECT 1 FROM jobs WHERE connection_key IS NULL)";
static const char NEXT_KEY_SQL[] = "SELECT MIN(connection_key) FROM jobs WHERE connection_key > ?1";

/* Without text: two statements each, so that each uses its index (jobs_hover_updated_at, or
 * jobs_state_updated); "?2 IS NULL OR ..." would scan every row. */
static const char RECENT_PAGE_SQL[] =
    "SELECT " SUMMARY_COLS " FROM (SELECT id, hover_updated_at AS upd FROM jobs "
    "ORDER BY upd DESC, id DESC LIMIT ?3 OFFSET ?4) p "
    "JOIN jobs j ON j.id = p.id ORDER BY p.upd DESC, p.id DESC";
static const char RECENT_COUNT_SQL[] = "SELECT COUNT(*) FROM jobs";
static const char RECENT_STATE_PAGE_SQL[] =
    "SELECT " SUMMARY_COLS " FROM (SELECT id, hover_updated_at AS upd FROM jobs "
    "WHERE reconstruction_state = ?2 ORDER BY upd DESC, id DESC LIMIT ?3 OFFSET ?4) p "
    "JOIN jobs j ON j.id = p.id ORDER BY p.upd DESC, p.id DESC";
static const char RECENT_STATE_COUNT_SQL[] =
    "SELECT COUNT(*) FROM jobs WHERE reconstruction_state = ?2";
/* Within a scope: the scope's jobs through jobs_connection_updated, then sorted. */
static const char RECENT_SCOPED_PAGE_SQL[] =
    "SELECT " SUMMARY_COLS " FROM (SELECT id, hover_updated_at AS upd FROM jobs "
    "WHERE connection_key IN (SELECT value FROM json_each(?5)) AND (?2 IS NULL OR "
    "reconstruction_state = ?2) ORDER BY upd DESC, id DESC LIMIT ?3 OFFSET ?4) p "
    "JOIN jobs j ON j.id = p.id ORDER BY p.upd DESC, p.id DESC";
static const char RECENT_SCOPED_COUNT_SQL[] =
    "SELECT COUNT(*) FROM jobs WHERE connection_key IN (SELECT value FROM json_each(?5)) "
    "AND (?2 IS NULL OR reconstruction_state = ?2)";

static int prepare(struct sq_txn *t, const char *sql, sqlite3_stmt **st, struct hs_error *err)
{
    return hs_sqlite_prep(t, st, sql, "searching jobs", err);
}

/* ---- without text: the most recently updated jobs ---- */

static void bind_params(sqlite3_stmt *st, const char *state, int64_t limit, int64_t offset,
                        const char *scope)
{
    int n = sqlite3_bind_parameter_count(st);
    if (n >= 2)
        sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
    if (n >= 3)
        sqlite3_bind_int64(st, 3, limit);
    if (n >= 4)
        sqlite3_bind_int64(st, 4, offset);
    if (n >= 5)
        sqlite3_bind_text(st, 5, scope, -1, SQLITE_STATIC);
}

static int count_rows(struct sq_txn *s, const char *sql, const char *state, const char *scope,
                      int64_t *total, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(s, sql, &st, err);
    if (rc)
        return rc;
    bind_params(st, state, 0, 0, scope);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        *total = sqlite3_column_int64(st, 0);
    else
        rc = hs_sqlite_fail(s->db, src, err, "counting search results");
    sqlite3_finalize(st);
    return rc;
}

/* The summary of the row st is on (SUMMARY_COLS). */
static void read_summary(sqlite3_stmt *st, struct hs_job_summary *j)
{
    j->id = sqlite3_column_int64(st, 0);
    j->name = hs_sqlite_col_text(st, 1);
    j->address.line1 = hs_sqlite_col_text(st, 2);
    j->address.line2 = hs_sqlite_col_text(st, 3);
    j->address.city = hs_sqlite_col_text(st, 4);
    j->address.region = hs_sqlite_col_text(st, 5);
    j->address.postal_code = hs_sqlite_col_text(st, 6);
    j->address.country = hs_sqlite_col_text(st, 7);
    j->reconstruction_state = hs_sqlite_col_text(st, 8);
    j->updated_at = hs_sqlite_col_text(st, 9);
    j->models_count = sqlite3_column_int64(st, 10);
    j->complete_models = sqlite3_column_int64(st, 11);
}

static int page_rows(struct sq_txn *s, const char *sql, const char *state, const char *scope,
                     int64_t per, int64_t offset, struct hs_job_summary **out, size_t *n,
                     struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(s, sql, &st, err);
    if (rc)
        return rc;
    bind_params(st, state, per, offset, scope);
    struct hs_job_summary *v = hs_calloc((size_t)per, sizeof *v);
    size_t len = 0;
    for (;;) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = hs_sqlite_fail(s->db, src, err, "searching jobs");
            break;
        }
        if (len == (size_t)per)
            break; /* cannot happen: LIMIT per */
        read_summary(st, &v[len++]);
    }
    sqlite3_finalize(st);
    if (rc) {
        hs_job_summaries_free(v, len);
        return rc;
    }
    *out = v;
    *n = len;
    return HS_OK;
}

/* The statements for a search without text: a state or none, a scope or none. */
static void pick_sql(const char *state, bool scoped, const char **count_sql, const char **page_sql)
{
    if (scoped) {
        *count_sql = RECENT_SCOPED_COUNT_SQL;
        *page_sql = RECENT_SCOPED_PAGE_SQL;
    } else {
        *count_sql = state ? RECENT_STATE_COUNT_SQL : RECENT_COUNT_SQL;
        *page_sql = state ? RECENT_STATE_PAGE_SQL : RECENT_PAGE_SQL;
    }
}

static int recent_search(struct sq_txn *s, const char *state, const struct hs_scope *scope,
                         int64_t offset, int64_t per, struct hs_job_summary **out, size_t *n,
                         int64_t *total, struct hs_error *err)
{
    const char *count_sql, *page_sql;
    char *in = hs_sqlite_scope_json(scope);
    pick_sql(state, in != NULL, &count_sql, &page_sql);
    int rc = count_rows(s, count_sql, state, in, total, err);
    if (!rc && *total > offset)
        rc = page_rows(s, page_sql, state, in, per, offset, out, n, err);
    free(in);
    return rc;
}

/* ---- with text: the tiers ---- */

/* The job ids of a page being ranked, in order, and a set of them (open addressing). */
struct ranking {
    int64_t *ids;
    size_t n, need;
    int64_t *slot;
    bool *used;
    size_t mask;
};

static void ranking_init(struct ranking *r, size_t need)
{
    size_t cap = 16;
    while (cap < 2 * need + 2)
        cap *= 2;
    r->ids = hs_calloc(need ? need : 1, sizeof *r->ids);
    r->n = 0;
    r->need = need;
    r->slot = hs_calloc(cap, sizeof *r->slot);
    r->used = hs_calloc(cap, sizeof *r->used);
    r->mask = cap - 1;
}

static void ranking_free(struct ranking *r)
{
    free(r->ids);
    free(r->slot);
    free(r->used);
}

/* Lists id after those already listed, unless it is one of them. */
static void ranking_add(struct ranking *r, int64_t id)
{
    size_t h = (size_t)(((uint64_t)id * 0x9E3779B97F4A7C15ull) >> 32) & r->mask;
    while (r->used[h]) {
        if (r->slot[h] == id)
            return;
        h = (h + 1) & r->mask;
    }
    r->used[h] = true;
    r->slot[h] = id;
    r->ids[r->n++] = id;
}

/* The ids st (a MATCH_SQL or LEAD_SQL) lists for expression expr, newest first, up to limit
 * (ids has room for that many). */
static int read_ids(struct sq_txn *s, sqlite3_stmt *st, const char *expr, int64_t limit,
                    int64_t *ids, size_t *n, struct hs_error *err)
{
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, expr, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, limit);
    *n = 0;
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW && *n < (size_t)limit)
        ids[(*n)++] = sqlite3_column_int64(st, 0);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        return hs_sqlite_fail(s->db, src, err, "searching jobs");
    return HS_OK;
}

static void ranking_add_all(struct ranking *r, const int64_t *ids, size_t n)
{
    for (size_t i = 0; i < n && r->n < r->need; i++)
        ranking_add(r, ids[i]);
}

/* A token of search_filter: the mark, kind ('c' connection, 's' state) and the hex of v. */
static int filter_token(struct hs_buf *b, char kind, const char *v)
{
    int rc = hs_buf_appends(b, "\"" HS_FTS_FILTER_MARK);
    if (!rc)
        rc = hs_buf_append(b, &kind, 1);
    char hex[2 * 64 + 1];
    for (size_t len = strlen(v), i = 0; i < len && !rc; i += 64) {
        size_t chunk = len - i < 64 ? len - i : 64;
        hs_hex((const unsigned char *)v + i, chunk, hex);
        rc = hs_buf_append(b, hex, 2 * chunk);
    }
    if (!rc)
        rc = hs_buf_appends(b, "\"");
    return rc;
}

/* " AND {search_filter}: (<key> OR <key> ...)" for the scope (NULL: none), and
 * " AND {search_filter}: <state>" for the state (NULL: none). */
static int filter_expr(const struct hs_scope *scope, const char *state, struct hs_buf *b)
{
    int rc = HS_OK;
    size_t had = 0;
    for (size_t i = 0; scope && i < scope->n && !rc; i++) {
        if (!scope->keys[i])
            continue;
        rc = hs_buf_appends(b, had++ ? " OR " : " AND {search_filter}: (");
        if (!rc)
            rc = filter_token(b, 'c', scope->keys[i]);
    }
    if (!rc && had)
        rc = hs_buf_appends(b, ")");
    if (!rc && state) {
        rc = hs_buf_appends(b, " AND {search_filter}: ");
        if (!rc)
            rc = filter_token(b, 's', state);
    }
    return rc;
}

/* Whether scope lets every stored job be read, so that it filters nothing (it would still cost
 * FTS5 a walk through the connection's postings in every tier). The smallest and the largest
 * stored connection key answer it for a store of one connection, or a scope of one; else one
 * index seek per stored connection (jobs_connection_updated), up to the first outside the
 * scope. A key that is not text (written by hand) counts as outside: the filter decides. */
static int scope_holds_all(struct sq_txn *s, const struct hs_scope *scope, bool *all,
                           struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep_kept(s, &st, KEYS_SQL, "searching jobs", err);
    if (rc)
        return rc;
    int src = sqlite3_step(st);
    if (src != SQLITE_ROW) {
        rc = hs_sqlite_fail(s->db, src, err, "searching jobs");
        hs_sqlite_unprep(s, st);
        return rc;
    }
    bool holds = sqlite3_column_int(st, 2) == 0;
    bool walk = false;
    for (int i = 0; holds && i < 2; i++) {
        int type = sqlite3_column_type(st, i);
        holds =
            type == SQLITE_NULL ||
            (type == SQLITE_TEXT && hs_scope_has(scope, (const char *)sqlite3_column_text(st, i)));
    }
    char *key = NULL;
    if (holds && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        key = hs_sqlite_col_text(st, 0);
        char *last = hs_sqlite_col_text(st, 1);
        walk = strcmp(key, last) != 0;
        free(last);
    }
    hs_sqlite_unprep(s, st);
    st = NULL;
    if (walk)
        rc = hs_sqlite_prep_kept(s, &st, NEXT_KEY_SQL, "searching jobs", err);
    /* Each key seen is one of the scope's, and the next is larger: at most n rounds. */
    for (size_t round = 0; !rc && walk && holds && round < scope->n; round++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
        if ((src = sqlite3_step(st)) != SQLITE_ROW) {
            rc = hs_sqlite_fail(s->db, src, err, "searching jobs");
            break;
        }
        int type = sqlite3_column_type(st, 0);
        if (type == SQLITE_NULL)
            break; /* past the largest */
        free(key);
        key = hs_sqlite_col_text(st, 0);
        holds = type == SQLITE_TEXT && hs_scope_has(scope, key);
    }
    hs_sqlite_unprep(s, st);
    free(key);
    if (!rc)
        *all = holds;
    return rc;
}

/* The ids of the page at offset (top comment), and the total. match: the words as
 * hs_fts_query_build wrote them; filter: filter_expr's. */
static int rank_page(struct sq_txn *s, const char *q, const char *match, const char *filter,
                     int64_t offset, int64_t per, struct ranking *r, int64_t *total,
                     struct hs_error *err)
{
    char exact[HS_FTS_QUERY_MAX], begins[HS_FTS_QUERY_MAX];
    hs_fts_lead_build(q, false, exact, sizeof exact);
    hs_fts_lead_build(q, true, begins, sizeof begins);
    const char *tiers[] = {exact, begins, match};
    char *expr[3];
    for (size_t i = 0; i < 3; i++)
        expr[i] = hs_aprintf("(%s)%s", tiers[i], filter);

    sqlite3_stmt *all = NULL, *lead = NULL;
    int64_t *newest = hs_calloc(HS_SEARCH_MATCHES_MAX, sizeof *newest);
    size_t n_newest = 0;
    int rc = hs_sqlite_prep_kept(s, &all, MATCH_SQL, "searching jobs", err);
    if (!rc)
        rc = read_ids(s, all, expr[2], HS_SEARCH_MATCHES_MAX, newest, &n_newest, err);
    *total = (int64_t)n_newest;
    int64_t need = offset + per < *total ? offset + per : *total;
    ranking_init(r, need > offset ? (size_t)need : 0);
    /* "Begins with the words" holds "begins with them, whole": it is read first, and when it is
     * empty so is the other, one query fewer (most texts begin no street line or name). */
    int64_t *begun = hs_calloc(r->need + 1, sizeof *begun),
            *ids = hs_calloc(r->need + 1, sizeof *ids);
    size_t n_begun = 0, n_ids = 0;
    if (!rc && r->need > 0 &&
        !(rc = hs_sqlite_prep_kept(s, &lead, LEAD_SQL, "searching jobs", err)))
        rc = read_ids(s, lead, expr[1], need, begun, &n_begun, err);
    if (!rc && n_begun > 0 && !(rc = read_ids(s, lead, expr[0], need, ids, &n_ids, err)))
        ranking_add_all(r, ids, n_ids);
    ranking_add_all(r, begun, n_begun);
    if (!rc && r->n < r->need && !(rc = read_ids(s, lead, expr[2], need, ids, &n_ids, err)))
        ranking_add_all(r, ids, n_ids);
    ranking_add_all(r, newest, n_newest);
    hs_sqlite_unprep(s, all);
    hs_sqlite_unprep(s, lead);
    free(ids);
    free(begun);
    free(newest);
    for (size_t i = 0; i < 3; i++)
        free(expr[i]);
    return rc;
}

/* The summaries of ids, in their order (a job deleted meanwhile is left out). */
static int summaries(struct sq_txn *s, const int64_t *ids, size_t n_ids,
                     struct hs_job_summary **out, size_t *n, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep_kept(s, &st, SUMMARY_SQL, "searching jobs", err);
    if (rc)
        return rc;
    struct hs_job_summary *v = hs_calloc(n_ids ? n_ids : 1, sizeof *v);
    size_t len = 0;
    for (size_t i = 0; i < n_ids && !rc; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, ids[i]);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW)
            read_summary(st, &v[len++]);
        else if (src != SQLITE_DONE)
            rc = hs_sqlite_fail(s->db, src, err, "searching jobs");
    }
    hs_sqlite_unprep(s, st);
    if (rc) {
        hs_job_summaries_free(v, len);
        return rc;
    }
    *out = v;
    *n = len;
    return HS_OK;
}

static int text_search(struct sq_txn *s, const char *q, const char *match, const char *state,
                       const struct hs_scope *scope, int64_t offset, int64_t per,
                       struct hs_job_summary **out, size_t *n, int64_t *total, struct hs_error *err)
{
    bool everything = false;
    int rc = scope ? scope_holds_all(s, scope, &everything, err) : HS_OK;
    if (rc)
        return rc;
    struct hs_buf filter;
    hs_buf_init(&filter, FILTER_MAX);
    if (filter_expr(everything ? NULL : scope, state, &filter)) {
        hs_buf_free(&filter);
        return hs_fail(err, HS_ERR_TOOBIG, "search scope of %zu connections is too large",
                       scope ? scope->n : 0);
    }
    struct ranking r = {0};
    rc = rank_page(s, q, match, hs_buf_str(&filter), offset, per, &r, total, err);
    if (!rc && r.n > (size_t)offset)
        rc = summaries(s, r.ids + offset, r.n - (size_t)offset, out, n, err);
    ranking_free(&r);
    hs_buf_free(&filter);
    return rc;
}

static bool blank(const char *q)
{
    for (const char *p = q; p && *p; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '\f' && *p != '\v')
            return false;
    return true;
}

/* Whether scope lets no connection at all be read. */
static bool scope_empty(const struct hs_scope *scope)
{
    for (size_t i = 0; scope && i < scope->n; i++)
        if (scope->keys[i])
            return false;
    return scope != NULL;
}

static int sq_jobs_search(struct hs_store *base, const char *q, const char *state, int64_t page,
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
    if ((!all && hs_fts_query_build(q, match, sizeof match) == 0) || scope_empty(scope)) {
        /* Only punctuation, or no connection to read: nothing can match, FTS5 is not asked. */
        *out = NULL;
        *n = 0;
        *total = 0;
        return HS_OK;
    }

    /* A read: a reader of the pool, or inside the caller's transaction if this thread has one
     * (it sees that transaction's writes). */
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "jobs_search", err);
    if (rc)
        return rc;

    int64_t count = 0;
    struct hs_job_summary *v = NULL;
    size_t len = 0;
    int64_t offset = (page - 1) * per;
    if (all)
        rc = recent_search(&t, state, scope, offset, per, &v, &len, &count, err);
    else
        rc = text_search(&t, q, match, state, scope, offset, per, &v, &len, &count, err);

    rc = hs_sqlite_leave(&t, rc, err);
    if (rc) {
        hs_job_summaries_free(v, len);
        return rc;
    }
    *out = v;
    *n = len;
    *total = count;
    return HS_OK;
}

const struct hs_search_ops hs_sqlite_search_ops = {
    .jobs_search = sq_jobs_search,
};
