/* fts_query.c: see fts_query.h. Every word is written between double quotes, and a double quote
 * is a separator, so FTS5 sees only string tokens: the operators (AND OR NOT NEAR, + - ^ : * ( )
 * {}) and column filters are stripped by construction, not by a list of forbidden words. */
#include "store/fts_query.h"

#include <stdbool.h>

#include "hoversync.h"

static bool word_byte(unsigned char c)
{
    return c >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

int hs_fts_query_build(const char *text, char *out, size_t n)
{
    if (!out || n < HS_FTS_QUERY_MAX)
        return HS_ERR_INVALID;
    size_t len = 0;
    int words = 0;
    const unsigned char *p = (const unsigned char *)(text ? text : "");
    while (*p && words < HS_FTS_MAX_TOKENS) {
        while (*p && !word_byte(*p))
            p++;
        if (!*p)
            break;
        const unsigned char *start = p;
        while (*p && word_byte(*p))
            p++;
        size_t wl = (size_t)(p - start);
        if (wl > HS_FTS_MAX_TOKEN_LEN) {
            wl = HS_FTS_MAX_TOKEN_LEN;
            /* Do not cut a UTF-8 sequence: drop its leading byte and continuation bytes. */
            while (wl > 0 && (start[wl] & 0xC0) == 0x80)
                wl--;
            if (wl == 0)
                continue; /* one giant malformed sequence: nothing searchable */
        }
        if (words > 0)
            out[len++] = ' ';
        out[len++] = '"';
        for (size_t i = 0; i < wl; i++)
            out[len++] = (char)start[i];
        out[len++] = '"';
        out[len++] = '*';
        words++;
    }
    out[len] = '\0';
    return words;
}
