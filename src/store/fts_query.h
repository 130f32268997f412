/* fts_query.h: user text to an SQLite FTS5 MATCH expression, safely. Whatever the user types
 * (quotes, stars, parentheses, AND/OR/NOT/NEAR, column filters, invalid UTF-8), the result is a
 * list of quoted prefix terms ("4312"* "meadow"*) or one quoted phrase that FTS5 parses as plain
 * words: no user byte is ever read as query syntax. Fuzzed by tests/fuzz/fuzz_fts_query.c. */
#ifndef HS_STORE_FTS_QUERY_H
#define HS_STORE_FTS_QUERY_H

#include <stdbool.h>
#include <stddef.h>

/* Words beyond this many are ignored (more words only narrow a search); longer words are cut
 * (between two characters) and still match as prefixes. */
#define HS_FTS_MAX_TOKENS    12
#define HS_FTS_MAX_TOKEN_LEN 64
/* The longest expression either builder writes, terminator included. */
#define HS_FTS_QUERY_MAX (HS_FTS_MAX_TOKENS * (HS_FTS_MAX_TOKEN_LEN + 4) + 1)

/* Marks of the index's own tokens (the SQLite schema writes the same characters, as char(57345)
 * and char(57346)): private-use code points, which the builders treat as separators, so that no
 * typed word contains one and none can match such a token or be a prefix of it.
 *   LEAD:   glued to the first word of the street line and of the job's name ("<LEAD>4312"), so
 *           that "begins with" is one term, not a position test over every match;
 *   FILTER: begins the tokens of a job's connection and state. */
#define HS_FTS_LEAD_MARK   "\xee\x80\x81" /* U+E001 */
#define HS_FTS_FILTER_MARK "\xee\x80\x82" /* U+E002 */

/* Splits text into words (runs of ASCII letters and digits and of well-formed non-ASCII
 * characters other than private-use ones; every other ASCII byte separates, as it does for the
 * unicode61 tokenizer, and so do malformed UTF-8 and private-use characters) and writes them to
 * out (size n, at least HS_FTS_QUERY_MAX) as `"word"* "word"*`.
 * Returns the number of words (0 when text has none: out is then ""), or HS_ERR_INVALID when out
 * is too small. text may be NULL. */
int hs_fts_query_build(const char *text, char *out, size_t n);

/* The same words as one phrase at the start of the street line or of the job's name (column
 * search_lead of the SQLite store's jobs_fts_lead): `{search_lead}: "<LEAD>w1 w2 w3"`, and with
 * `*` after it when prefix (the last word then matches as a prefix, the others whole). Returns
 * what hs_fts_query_build returns. */
int hs_fts_lead_build(const char *text, bool prefix, char *out, size_t n);

#endif
