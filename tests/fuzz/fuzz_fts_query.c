/* fuzz_fts_query.c: libFuzzer target of the FTS5 query builder (src/store/fts_query.c), which
 * turns whatever a user types into the search box into MATCH expressions. Checked here: each
 * expression has the promised shape (quoted prefix words, or one phrase after the lead mark;
 * nothing else, and no private-use character, which would let a typed word reach the index's own
 * tokens) and size, and SQLite's FTS5 parser, with the tokenizer, columns and prefix indexes of
 * the real tables (migration 10), accepts it: a syntax error would be a user byte read as query
 * syntax. */
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hoversync.h"
#include "store/fts_query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sqlite3 *db;
static sqlite3_stmt *match;

static void open_db(void)
{
    if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
        sqlite3_exec(db,
                     "CREATE VIRTUAL TABLE t USING fts5(name, address_line1, search_lead, "
                     "search_filter, tokenize='unicode61 remove_diacritics 2', "
                     "prefix='1 2 3 4 5 6 7 8', columnsize=0);"
                     "INSERT INTO t VALUES ('Main House', '4312 Meadow Drive', "
                     "'" HS_FTS_LEAD_MARK "4312 Meadow Drive " HS_FTS_LEAD_MARK "Main House', "
                     "'" HS_FTS_FILTER_MARK "c64 " HS_FTS_FILTER_MARK "s63');"
                     "INSERT INTO t VALUES ('Caf\xc3\xa9 AND Sons', 'NEAR 118 Orchard Lane', "
                     "'" HS_FTS_LEAD_MARK "NEAR 118 Orchard Lane " HS_FTS_LEAD_MARK
                     "Caf\xc3\xa9 AND Sons', '" HS_FTS_FILTER_MARK "c65');"
                     /* Marks only: a typed word that matches this row reached a mark. */
                     "INSERT INTO t(rowid, name, address_line1, search_lead, search_filter) "
                     "VALUES (3, '" HS_FTS_LEAD_MARK HS_FTS_FILTER_MARK
                     "', '" HS_FTS_FILTER_MARK HS_FTS_LEAD_MARK
                     "', '" HS_FTS_LEAD_MARK HS_FTS_LEAD_MARK "', '" HS_FTS_FILTER_MARK "c64');",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "SELECT rowid FROM t WHERE t MATCH ?1 || ' AND {search_filter}: "
                           "\"" HS_FTS_FILTER_MARK "c64\"' ORDER BY rowid DESC",
                           -1, &match, NULL) != SQLITE_OK)
        abort();
}

static bool word_byte(const unsigned char *p)
{
    unsigned char c = *p;
    if (c == 0xEE || (c == 0xEF && p[1] >= 0x80 && p[1] <= 0xA3))
        return false; /* private use (U+E000..U+F8FF): the index's marks */
    return c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* One word of 1..HS_FTS_MAX_TOKEN_LEN word bytes up to the closing quote or the space before the
 * next word; returns the byte after it. */
static const unsigned char *check_word(const unsigned char *p)
{
    size_t wl = 0;
    while (*p && *p != '"' && *p != ' ') {
        if (!word_byte(p))
            abort();
        p++;
        wl++;
    }
    if (wl == 0 || wl > HS_FTS_MAX_TOKEN_LEN)
        abort();
    return p;
}

/* `"w"* "w"*`: n words, one space between. */
static void check_shape(const char *q, int n)
{
    const unsigned char *p = (const unsigned char *)q;
    for (int i = 0; i < n; i++) {
        if (i > 0 && *p++ != ' ')
            abort();
        if (*p++ != '"')
            abort();
        p = check_word(p);
        if (*p++ != '"' || *p++ != '*')
            abort();
    }
    if (*p != '\0')
        abort();
}

/* `{search_lead}: "<mark>w w w"`, then `*` when prefix: n words, one space between. */
static void check_lead_shape(const char *q, int n, bool prefix)
{
    static const char head[] = "{search_lead}: \"" HS_FTS_LEAD_MARK;
    if (n == 0) {
        if (*q)
            abort();
        return;
    }
    if (strncmp(q, head, sizeof head - 1) != 0)
        abort();
    const unsigned char *p = (const unsigned char *)q + sizeof head - 1;
    for (int i = 0; i < n; i++) {
        if (i > 0 && *p++ != ' ')
            abort();
        p = check_word(p);
    }
    if (*p++ != '"' || (prefix && *p++ != '*') || *p != '\0')
        abort();
}

/* Runs q; returns how many rows it matched, *marks whether row 3 (marks only) was one. */
static int check_accepted(const char *q, bool *marks)
{
    sqlite3_reset(match);
    sqlite3_bind_text(match, 1, q, -1, SQLITE_STATIC);
    int rc, rows = 0;
    *marks = false;
    while ((rc = sqlite3_step(match)) == SQLITE_ROW) {
        rows++;
        *marks = *marks || sqlite3_column_int64(match, 0) == 3;
    }
    if (rc != SQLITE_DONE)
        abort(); /* FTS5 refused the expression: the builder let syntax through */
    return rows;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!db)
        open_db();
    /* The user's text as the service gets it: a C string (cut at the first NUL). */
    char *text = malloc(size + 1);
    if (!text)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';

    char q[HS_FTS_QUERY_MAX];
    int n = hs_fts_query_build(text, q, sizeof q);
    if (n < 0 || n > HS_FTS_MAX_TOKENS || strlen(q) >= sizeof q)
        abort();
    check_shape(q, n);
    char small[8];
    if (hs_fts_query_build(text, small, sizeof small) != HS_ERR_INVALID)
        abort();

    char lead[HS_FTS_QUERY_MAX], begins[HS_FTS_QUERY_MAX];
    if (hs_fts_lead_build(text, false, lead, sizeof lead) != n ||
        hs_fts_lead_build(text, true, begins, sizeof begins) != n ||
        hs_fts_lead_build(text, true, small, sizeof small) != HS_ERR_INVALID)
        abort();
    check_lead_shape(lead, n, false);
    check_lead_shape(begins, n, true);

    if (n > 0) {
        bool marks;
        int rows = check_accepted(q, &marks);
        if (marks)
            abort();
        /* A word the tokenizer reads as no token at all (a combining mark, a dash) leaves the
         * lead phrase a bare mark, which matches every row; only when every word is such a word,
         * and then the words match nothing and the search stops there. */
        check_accepted(lead, &marks);
        if (marks && rows > 0)
            abort();
        check_accepted(begins, &marks);
        if (marks && rows > 0)
            abort();
    }
    free(text);
    return 0;
}
