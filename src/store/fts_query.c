/* fts_query.c: see fts_query.h. Every word is written between double quotes, and a double quote
 * is a separator, so FTS5 sees only string tokens: the operators (AND OR NOT NEAR, + - ^ : * ( )
 * {}) and column filters are stripped by construction, not by a list of forbidden words. */
#include "store/fts_query.h"

#include <stdint.h>
#include <string.h>

#include "hoversync.h"

#define LEAD_PREFIX "{search_lead}: \"" HS_FTS_LEAD_MARK

/* The lead phrase is the longer form: its words, the spaces between them, the column filter, the
 * mark, the quotes and the star. */
_Static_assert(sizeof LEAD_PREFIX - 1 + HS_FTS_MAX_TOKENS * HS_FTS_MAX_TOKEN_LEN +
                       (HS_FTS_MAX_TOKENS - 1) + 2 + 1 <=
                   HS_FTS_QUERY_MAX,
               "HS_FTS_QUERY_MAX holds a lead phrase");

/* The length of the well-formed UTF-8 character at p (shortest form, no surrogates, at most
 * U+10FFFF), 0 when the bytes there are not one; *cp gets its code point. */
static size_t utf8_char(const unsigned char *p, uint32_t *cp)
{
    size_t n = p[0] < 0x80                    ? 1
               : p[0] >= 0xC2 && p[0] <= 0xDF ? 2
               : (p[0] & 0xF0) == 0xE0        ? 3
               : p[0] >= 0xF0 && p[0] <= 0xF4 ? 4
                                              : 0;
    if (n == 0)
        return 0;
    uint32_t c = n == 1 ? p[0] : p[0] & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3F);
    }
    static const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < least[n] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return n;
}

/* The bytes of the word character at p (an ASCII letter or digit, or a well-formed non-ASCII
 * character other than a private-use one, which the index keeps for its marks), 0 when p is at
 * a separator. Malformed UTF-8 separates too: the index holds none, and SQLite's decoder would
 * read some of it as a character the check above did not see (an overlong mark). */
static size_t word_char(const unsigned char *p)
{
    uint32_t c = 0;
    size_t n = utf8_char(p, &c);
    if (n == 1)
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    return n > 1 && !(c >= 0xE000 && c <= 0xF8FF) ? n : 0;
}

/* The next word at or after *p: *start and its length (cut to HS_FTS_MAX_TOKEN_LEN bytes
 * between two characters); false when there is none. */
static bool next_word(const unsigned char **p, const unsigned char **start, size_t *len)
{
    const unsigned char *q = *p;
    while (*q && !word_char(q))
        q++;
    if (!*q) {
        *p = q;
        return false;
    }
    const unsigned char *s = q;
    size_t wl = 0, n;
    bool cut = false;
    while ((n = word_char(q)) > 0) {
        cut = cut || wl + n > HS_FTS_MAX_TOKEN_LEN;
        if (!cut)
            wl += n;
        q += n;
    }
    *p = q;
    *start = s;
    *len = wl;
    return true;
}

/* The words of text, after head: each as `"word"*` when quoted, else as they are; one space
 * between two; then tail. Nothing at all when text has no word. */
static int build(const char *text, const char *head, bool quoted, const char *tail, char *out,
                 size_t n)
{
    if (!out || n < HS_FTS_QUERY_MAX)
        return HS_ERR_INVALID;
    size_t len = strlen(head);
    memcpy(out, head, len);
    int words = 0;
    const unsigned char *p = (const unsigned char *)(text ? text : ""), *start;
    size_t wl;
    while (words < HS_FTS_MAX_TOKENS && next_word(&p, &start, &wl)) {
        if (words > 0)
            out[len++] = ' ';
        if (quoted)
            out[len++] = '"';
        memcpy(out + len, start, wl);
        len += wl;
        if (quoted) {
            out[len++] = '"';
            out[len++] = '*';
        }
        words++;
    }
    if (words == 0)
        len = 0;
    else
        for (const char *t = tail; *t; t++)
            out[len++] = *t;
    out[len] = '\0';
    return words;
}

int hs_fts_query_build(const char *text, char *out, size_t n)
{
    return build(text, "", true, "", out, n);
}

int hs_fts_lead_build(const char *text, bool prefix, char *out, size_t n)
{
    return build(text, LEAD_PREFIX, false, prefix ? "\"*" : "\"", out, n);
}
