/* json.h: jansson helpers shared by the client, the store and the sandbox. */
#ifndef HS_CORE_JSON_H
#define HS_CORE_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "hoversync.h"

/* Parses len bytes (no NUL needed) with a size cap; JSON_REJECT_DUPLICATES is not set because
 * Hover may repeat keys; the last one wins. HS_ERR_PARSE / HS_ERR_TOOBIG with a message. */
int hs_json_parse(const char *s, size_t len, size_t max, json_t **out, struct hs_error *err);

/* Tolerant getters: a missing key or JSON null gives the default / NULL. */
/* A string field duplicated (numbers are formatted, booleans "true"/"false"); NULL if absent. */
char *hs_json_strdup(const json_t *obj, const char *key);
/* An integer field; accepts integers, integral reals and numeric strings. */
bool hs_json_i64(const json_t *obj, const char *key, int64_t *out);
/* A number field; accepts numbers and numeric strings ("34.87"). */
bool hs_json_double(const json_t *obj, const char *key, double *out);
bool hs_json_bool(const json_t *obj, const char *key, bool dflt);

/* Compact serialisation, caller frees. */
char *hs_json_dump(const json_t *j);

/* A JSON string of s (JSON null for NULL) that never fails: bytes that are not valid UTF-8
 * (request paths, queries, names that came from outside) become '?'. */
json_t *hs_json_text(const char *s);

#endif
