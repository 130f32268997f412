/* buf.h: a growable byte buffer with a hard maximum size (curl's dynbuf). Always NUL-terminated. */
#ifndef HS_CORE_BUF_H
#define HS_CORE_BUF_H

#include <stddef.h>

struct hs_buf {
    char *data; /* NULL until the first append */
    size_t len;
    size_t cap;
    size_t
        max; /* appends that would pass this fail with HS_ERR_TOOBIG and leave the buffer as is */
};

void hs_buf_init(struct hs_buf *b, size_t max);
int hs_buf_append(struct hs_buf *b, const void *p, size_t n);
int hs_buf_appends(struct hs_buf *b, const char *s);
int hs_buf_appendf(struct hs_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The contents as a C string ("" when empty); valid until the next append or free. */
const char *hs_buf_str(const struct hs_buf *b);
void hs_buf_reset(struct hs_buf *b);
void hs_buf_free(struct hs_buf *b);
/* Hands the allocation to the caller (never NULL) and resets the buffer. */
char *hs_buf_take(struct hs_buf *b, size_t *len);

#endif
