/* sqlite_search.c: jobs_search of the SQLite back-end, over the FTS5 index of migration 3
 * (jobs_fts, an external-content table kept in step with jobs by triggers).
 *
 * Cost is in the matches, not in the page: every match is scored (bm25) and needs its Hover
 * updated_at (the tie-break) and state (the filter). Those come from the covering index
 * jobs_search_rank, named with INDEXED BY because the planner prefers the rowid lookup into the
 * jobs rows, which carry the job's raw JSON and are ten times slower to read (bench/README.md).
 * Only the page is joined to the job rows and the models counts: the ranked ids are picked in a
 * subquery with LIMIT (SQLite does not flatten it into the join), so a query matching 50,000
 * jobs counts the models of 20. */
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "store/fts_query.h"
#include "store/search.h"
#include "store/sqlite_internal.h"

#define PAGE_MAX 1000000

/* Column weights of bm25(), in the order of jobs_fts's columns: a hit in the name, the street
 * line or the CRM id says more than one in the region or the capturing user. */
#define BM25 "bm25(jobs_fts, 4.0, 4.0, 1.0, 2.0, 1.0, 2.0, 3.0, 2.0, 3.0, 1.0)"

#define SUMMARY_COLS                                                                               \
    "j.id, j.name, j.address_line1, j.address_line2, j.city, j.region, j.postal_code, "            \
    "j.country, j.reconstruction_state, j.hover_updated_at, "                                      \
    "(SELECT COUNT(*) FROM models m WHERE m.job_id = j.id), "                                      \
    "(SELECT COUNT(*) FROM models m WHERE m.job_id = j.id AND m.state = 'complete')"

/* ?1 match expression, ?2 state (NULL: any), ?3 limit, ?4 offset, ?5 the scope (JSON array of
 * connection keys, NULL: every job; the covering index holds connection_key). */
static const char MATCH_PAGE_SQL[] =
    "SELECT " SUMMARY_COLS " FROM (SELECT j.id AS id, " BM25 " AS score, "
    "j.hover_updated_at AS upd FROM jobs_fts JOIN jobs j INDEXED BY jobs_search_rank "
    "ON j.id = jobs_fts.rowid WHERE jobs_fts MATCH ?1 AND (?2 IS NULL OR j.reconstruction_state = "
    "?2) AND " HS_SQL_IN_SCOPE(
        "j.connection_key",
        "5") " "
             "ORDER BY score, upd DESC, id DESC LIMIT ?3 OFFSET ?4) p "
             "JOIN jobs j ON j.id = p.id ORDER BY p.score, p.upd DESC, p.id DESC";
/* One word of one or two letters (the first keystrokes) matches much of the store, and bm25
 * would score every match (150 ms for "s" at 100,000 jobs) to rank what is arbitrary anyway:
 * the newest jobs instead, which FTS5 streams in rowid order and stops after the page (1 ms).
 * From 3 characters on, the ranking matters and the matches are fewer. */
static const char NEWEST_PAGE_SQL[] =
    "SELECT " SUMMARY_COLS " FROM (SELECT jobs_fts.rowid AS id FROM jobs_fts "
    "JOIN jobs j INDEXED BY jobs_search_rank ON j.id = jobs_fts.rowid "
    "WHERE jobs_fts MATCH ?1 AND (?2 IS NULL OR j.reconstruction_state = ?2) "
    "AND " HS_SQL_IN_SCOPE("j.connection_key",
                           "5") " "
                                "ORDER BY jobs_fts.rowid DESC LIMIT ?3 OFFSET ?4) p "
                                "JOIN jobs j ON j.id = p.id ORDER BY p.id DESC";
static const char MATCH_COUNT_SQL[] = "SELECT COUNT(*) FROM jobs_fts WHERE jobs_fts MATCH ?1";
static const char MATCH_COUNT_STATE_SQL[] =
    "SELECT COUNT(*) FROM jobs_fts JOIN jobs j INDEXED BY jobs_search_rank "
    "ON j.id = jobs_fts.rowid WHERE jobs_fts MATCH ?1 AND j.reconstruction_state = ?2";
static const char MATCH_COUNT_SCOPED_SQL[] =
    "SELECT COUNT(*) FROM jobs_fts JOIN jobs j INDEXED BY jobs_search_rank "
    "ON j.id = jobs_fts.rowid WHERE jobs_fts MATCH ?1 AND (?2 IS NULL OR "
    "j.reconstruction_state = ?2) AND " HS_SQL_IN_SCOPE("j.connection_key", "5");

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

static void bind_params(sqlite3_stmt *st, const char *match, const char *state, int64_t limit,
                        int64_t offset, const char *scope)
{
    int n = sqlite3_bind_parameter_count(st);
    if (n >= 1)
        sqlite3_bind_text(st, 1, match, -1, SQLITE_STATIC);
    if (n >= 2)
        sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
    if (n >= 3)
        sqlite3_bind_int64(st, 3, limit);
    if (n >= 4)
        sqlite3_bind_int64(st, 4, offset);
    if (n >= 5)
        sqlite3_bind_text(st, 5, scope, -1, SQLITE_STATIC);
}

static int count_rows(struct sq_txn *s, const char *sql, const char *match, const char *state,
                      const char *scope, int64_t *total, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(s, sql, &st, err);
    if (rc)
        return rc;
    bind_params(st, match, state, 0, 0, scope);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        *total = sqlite3_column_int64(st, 0);
    else
        rc = hs_sqlite_fail(s->db, src, err, "counting search results");
    sqlite3_finalize(st);
    return rc;
}

static int page_rows(struct sq_txn *s, const char *sql, const char *match, const char *state,
                     const char *scope, int64_t per, int64_t offset, struct hs_job_summary **out,
                     size_t *n, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(s, sql, &st, err);
    if (rc)
        return rc;
    bind_params(st, match, state, per, offset, scope);
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
        struct hs_job_summary *j = &v[len++];
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
    sqlite3_finalize(st);
    if (rc) {
        hs_job_summaries_free(v, len);
        return rc;
    }
    *out = v;
    *n = len;
    return HS_OK;
}

/* A match expression of one word (`"word"*`) shorter than 3 characters. */
static bool short_single_word(const char *match)
{
    size_t len = strlen(match);
    if (len < 4 || strchr(match + 1, '"') != match + len - 2)
        return false;
    size_t chars = 0;
    for (size_t i = 1; i < len - 2; i++)
        chars += ((unsigned char)match[i] & 0xC0) != 0x80;
    return chars < 3;
}

static bool blank(const char *q)
{
    for (const char *p = q; p && *p; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '\f' && *p != '\v')
            return false;
    return true;
}

/* The statements for a search: text or none, a state or none, a scope or none. */
static void pick_sql(bool all, const char *match, const char *state, bool scoped,
                     const char **count_sql, const char **page_sql)
{
    if (all && scoped) {
        *count_sql = RECENT_SCOPED_COUNT_SQL;
        *page_sql = RECENT_SCOPED_PAGE_SQL;
    } else if (all) {
        *count_sql = state ? RECENT_STATE_COUNT_SQL : RECENT_COUNT_SQL;
        *page_sql = state ? RECENT_STATE_PAGE_SQL : RECENT_PAGE_SQL;
    } else {
        *count_sql = scoped  ? MATCH_COUNT_SCOPED_SQL
                     : state ? MATCH_COUNT_STATE_SQL
                             : MATCH_COUNT_SQL;
        *page_sql = short_single_word(match) ? NEWEST_PAGE_SQL : MATCH_PAGE_SQL;
    }
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
    if (!all && hs_fts_query_build(q, match, sizeof match) == 0) {
        /* Only punctuation: nothing can match, and FTS5 is not asked. */
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
    const char *count_sql, *page_sql;
    char *in = hs_sqlite_scope_json(scope);
    pick_sql(all, match, state, in != NULL, &count_sql, &page_sql);
    rc = count_rows(&t, count_sql, all ? NULL : match, state, in, &count, err);
    if (!rc && count > (page - 1) * per)
        rc = page_rows(&t, page_sql, all ? NULL : match, state, in, per, (page - 1) * per, &v, &len,
                       err);
    free(in);

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
