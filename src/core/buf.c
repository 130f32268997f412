/* buf.c: bounded growable buffer; see buf.h. */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hoversync.h"
#include "mem.h"

void hs_buf_init(struct hs_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

int hs_buf_append(struct hs_buf *b, const void *p, size_t n)
{
    if (n > b->max || b->len > b->max - n)
        return HS_ERR_TOOBIG;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        if (cap > b->max + 1)
            cap = b->max + 1;
        b->data = hs_realloc(b->data, cap);
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return HS_OK;
}

int hs_buf_appends(struct hs_buf *b, const char *s)
{
    return hs_buf_append(b, s, strlen(s));
}

int hs_buf_appendf(struct hs_buf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return HS_ERR_INVALID;
    if ((size_t)n < sizeof small)
        return hs_buf_append(b, small, (size_t)n);
    char *big = hs_malloc((size_t)n + 1);
    va_start(ap, fmt);
    (void)vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = hs_buf_append(b, big, (size_t)n);
    free(big);
    return rc;
}

const char *hs_buf_str(const struct hs_buf *b)
{
    return b->data ? b->data : "";
}

void hs_buf_reset(struct hs_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void hs_buf_free(struct hs_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *hs_buf_take(struct hs_buf *b, size_t *len)
{
    char *p = b->data ? b->data : hs_strdup("");
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
