/* mem.c: allocation wrappers; see mem.h. */
#include "mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    fprintf(stderr, "hoversync: out of memory allocating %zu bytes\n", n);
    abort();
}

void *hs_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *hs_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        oom(count * size);
    return p;
}

void *hs_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *hs_strndup(const char *s, size_t n)
{
    if (!s)
        return NULL;
    char *d = hs_malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *hs_strdup(const char *s)
{
    return s ? hs_strndup(s, strlen(s)) : NULL;
}

void hs_free_ptr(char **p)
{
    free(*p);
    *p = NULL;
}

char *hs_aprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort(); /* only a bad format string gets here */
    char *s = hs_malloc((size_t)n + 1);
    va_start(ap, fmt);
    (void)vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}
