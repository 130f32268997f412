/* json.c: see json.h. */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "mem.h"
#include "str.h"

int hs_json_parse(const char *s, size_t len, size_t max, json_t **out, struct hs_error *err)
{
    if (len > max)
        return hs_fail(err, HS_ERR_TOOBIG, "JSON document of %zu bytes is over the %zu byte cap",
                       len, max);
    json_error_t je;
    json_t *j = json_loadb(s, len, JSON_ALLOW_NUL, &je);
    if (!j)
        return hs_fail(err, HS_ERR_PARSE, "malformed JSON at line %d column %d: %s", je.line,
                       je.column, je.text);
    *out = j;
    return HS_OK;
}

char *hs_json_strdup(const json_t *obj, const char *key)
{
    const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    if (json_is_string(v))
        return hs_strndup(json_string_value(v), json_string_length(v));
    if (json_is_integer(v))
        return hs_aprintf("%lld", (long long)json_integer_value(v));
    if (json_is_real(v))
        return hs_aprintf("%.17g", json_real_value(v));
    if (json_is_boolean(v))
        return hs_strdup(json_is_true(v) ? "true" : "false");
    return NULL;
}

bool hs_json_i64(const json_t *obj, const char *key, int64_t *out)
{
    const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (isfinite(d) && d == floor(d) && fabs(d) < 9.0e15) {
            *out = (int64_t)d;
            return true;
        }
        return false;
    }
    if (json_is_string(v))
        return hs_parse_i64(json_string_value(v), out) == HS_OK;
    return false;
}

bool hs_json_double(const json_t *obj, const char *key, double *out)
{
    const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return true;
    }
    if (json_is_string(v))
        return hs_parse_double(json_string_value(v), out) == HS_OK;
    return false;
}

bool hs_json_bool(const json_t *obj, const char *key, bool dflt)
{
    const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    if (json_is_boolean(v))
        return json_is_true(v);
    if (json_is_string(v)) {
        if (hs_streq(json_string_value(v), "true"))
            return true;
        if (hs_streq(json_string_value(v), "false"))
            return false;
    }
    return dflt;
}

char *hs_json_dump(const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s)
        abort(); /* jansson only fails here on OOM */
    char *d = hs_strdup(s);
    free(s);
    return d;
}

json_t *hs_json_text(const char *s)
{
    if (!s)
        return json_null();
    json_t *j = json_string(s);
    if (j)
        return j;
    char *copy = hs_strdup(s);
    for (unsigned char *p = (unsigned char *)copy; *p; p++)
        if (*p >= 0x80)
            *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}
