/* mem.h: allocation wrappers that abort on out-of-memory, so no caller has an untested OOM path. */
#ifndef HS_CORE_MEM_H
#define HS_CORE_MEM_H

#include <stddef.h>

void *hs_malloc(size_t n);
void *hs_calloc(size_t count, size_t size);
void *hs_realloc(void *p, size_t n);
/* Duplicates s; NULL in, NULL out. */
char *hs_strdup(const char *s);
char *hs_strndup(const char *s, size_t n);
/* Frees *p and sets it to NULL. */
void hs_free_ptr(char **p);
/* A printf into a fresh allocation. */
char *hs_aprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
