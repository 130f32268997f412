/* fuzz_fts_query.c: libFuzzer target of the FTS5 query builder (src/store/fts_query.c), which
 * turns whatever a user types into the search box into a MATCH expression. Checked here: the
 * expression has the promised shape (quoted prefix words, nothing else) and size, and SQLite's
 * FTS5 parser, with the tokenizer and prefix indexes of the real table (migration 3), accepts it:
 * a syntax error would be a user byte read as query syntax. */
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
                     "CREATE VIRTUAL TABLE t USING fts5(name, line1, "
                     "tokenize='unicode61 remove_diacritics 2', prefix='1 2 3 4');"
                     "INSERT INTO t VALUES ('Main House', '4312 Meadow Drive');"
                     "INSERT INTO t VALUES ('Caf\xc3\xa9 AND Sons', 'NEAR 118 Orchard Lane');",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT rowid FROM t WHERE t MATCH ?1 ORDER BY bm25(t)", -1, &match,
                           NULL) != SQLITE_OK)
        abort();
}

static bool word_byte(unsigned char c)
{
    return c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* `"w"* "w"*`: n words of 1..HS_FTS_MAX_TOKEN_LEN word bytes, one space between. */
static void check_shape(const char *q, int n)
{
    const unsigned char *p = (const unsigned char *)q;
    for (int i = 0; i < n; i++) {
        if (i > 0 && *p++ != ' ')
            abort();
        if (*p++ != '"')
            abort();
        size_t wl = 0;
        while (*p && *p != '"') {
            if (!word_byte(*p))
                abort();
            p++;
            wl++;
        }
        if (wl == 0 || wl > HS_FTS_MAX_TOKEN_LEN || *p++ != '"' || *p++ != '*')
            abort();
    }
    if (*p != '\0')
        abort();
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

    if (n > 0) {
        sqlite3_reset(match);
        sqlite3_bind_text(match, 1, q, -1, SQLITE_STATIC);
        int rc;
        while ((rc = sqlite3_step(match)) == SQLITE_ROW)
            ;
        if (rc != SQLITE_DONE)
            abort(); /* FTS5 refused the expression: the builder let syntax through */
    }
    free(text);
    return 0;
}
