/* fts_query.h: user text to an SQLite FTS5 MATCH expression, safely. Whatever the user types
 * (quotes, stars, parentheses, AND/OR/NOT/NEAR, column filters, invalid UTF-8), the result is a
 * list of quoted prefix terms ("4312"* "meadow"*) that FTS5 parses as plain words: no user byte
 * is ever read as query syntax. Fuzzed by tests/fuzz/fuzz_fts_query.c. */
#ifndef HS_STORE_FTS_QUERY_H
#define HS_STORE_FTS_QUERY_H

#include <stddef.h>

/* Words beyond this many are ignored (more words only narrow a search); longer words are cut
 * (at a UTF-8 boundary) and still match as prefixes. */
#define HS_FTS_MAX_TOKENS    12
#define HS_FTS_MAX_TOKEN_LEN 64
/* The longest expression hs_fts_query_build writes, terminator included. */
#define HS_FTS_QUERY_MAX (HS_FTS_MAX_TOKENS * (HS_FTS_MAX_TOKEN_LEN + 4) + 1)

/* Splits text into words (runs of ASCII letters and digits and of non-ASCII bytes; every other
 * ASCII byte separates, as it does for the unicode61 tokenizer) and writes them to out (size n,
 * at least HS_FTS_QUERY_MAX) as `"word"* "word"*`. Returns the number of words (0 when text has
 * none: out is then ""), or HS_ERR_INVALID when out is too small. text may be NULL. */
int hs_fts_query_build(const char *text, char *out, size_t n);

#endif
