/* measurements.c: headline figures from Hover's measurement JSON; see measurements.h.
 *
 * The layout of summarized_json is not documented field by field, so each figure is looked up
 * along a few plausible paths, first match wins, and a missing figure is NULL rather than an
 * error: the raw document is always stored beside the columns. */
#include "sync/measurements.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/mem.h"

/* Follows a dotted path ("roof.area.total") through objects. */
static const json_t *at(const json_t *root, const char *path)
{
    char key[64];
    const json_t *cur = root;
    const char *p = path;
    while (cur && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof key)
            return NULL;
        memcpy(key, p, n);
        key[n] = '\0';
        cur = json_is_object(cur) ? json_object_get(cur, key) : NULL;
        p = dot ? dot + 1 : p + n;
    }
    return cur;
}

static double number_at(const json_t *root, const char *const *paths)
{
    for (; *paths; paths++) {
        const json_t *v = at(root, *paths);
        if (json_is_number(v))
            return json_number_value(v);
        if (json_is_string(v)) {
            char *end = NULL;
            double d = strtod(json_string_value(v), &end);
            if (end && *end == '\0' && end != json_string_value(v) && isfinite(d))
                return d;
        }
    }
    return NAN;
}

/* A count, or -1: absent, negative, or too large for an integer (llround of such a double has
 * no defined result; below 2^53 every integer is exact). */
static int64_t count_at(const json_t *root, const char *const *paths)
{
    double d = number_at(root, paths);
    return isfinite(d) && d >= 0 && d < 9.0e15 ? (int64_t)llround(d) : -1;
}

static char *string_at(const json_t *root, const char *const *paths)
{
    for (; *paths; paths++) {
        const json_t *v = at(root, *paths);
        if (json_is_string(v))
            return hs_strdup(json_string_value(v));
    }
    return NULL;
}

#define PATHS(...) ((const char *const[]){__VA_ARGS__, NULL})

int hs_measurements_extract(int64_t model_id, const char *summarized, size_t len,
                            const char *sketch, size_t sketch_len, struct hs_measurements *out,
                            struct hs_error *err)
{
    json_t *s = NULL;
    int rc = hs_json_parse(summarized, len, HS_JSON_MAX_BYTES, &s, err);
    if (rc)
        return rc;
    if (!json_is_object(s)) {
        json_decref(s);
        return hs_fail(err, HS_ERR_PARSE, "summarized measurements are not a JSON object");
    }
    struct hs_measurements m = {.model_id = model_id, .raw_json = summarized};
    m.roof_area_sqft =
        number_at(s, PATHS("roof.area.total", "roof.area", "roof.total_area", "summary.roof_area"));
    m.roof_facets = count_at(
        s, PATHS("roof.facets.total", "roof.facets.count", "roof.facets", "roof.facet_count"));
    m.predominant_pitch =
        string_at(s, PATHS("roof.pitch.predominant", "roof.predominant_pitch", "roof.pitch"));
    m.ridges_ft = number_at(s, PATHS("roof.ridges.length", "roof.ridges.total", "roof.ridges"));
    m.hips_ft = number_at(s, PATHS("roof.hips.length", "roof.hips.total", "roof.hips"));
    m.valleys_ft = number_at(s, PATHS("roof.valleys.length", "roof.valleys.total", "roof.valleys"));
    m.rakes_ft = number_at(s, PATHS("roof.rakes.length", "roof.rakes.total", "roof.rakes"));
    m.eaves_ft = number_at(s, PATHS("roof.eaves.length", "roof.eaves.total", "roof.eaves"));
    m.siding_area_sqft = number_at(
        s, PATHS("facades.siding.area", "facades.siding.total", "areas.siding", "siding.area"));
    m.facade_area_sqft = number_at(
        s, PATHS("facades.area.total", "facades.total_area", "facades.area", "areas.facades"));
    m.openings_count = count_at(s, PATHS("openings.count", "openings.total", "openings.quantity"));
    m.openings_area_sqft =
        number_at(s, PATHS("openings.area.total", "openings.area", "openings.total_area"));
    m.living_area_sqft = NAN;
    json_decref(s);
    if (sketch && sketch_len) {
        json_t *k = NULL;
        if (hs_json_parse(sketch, sketch_len, HS_JSON_MAX_BYTES, &k, NULL) == HS_OK) {
            m.living_area_sqft = number_at(k, PATHS("total_living_area", "living_area.total",
                                                    "total_area", "summary.total_living_area"));
            json_decref(k);
        }
    }
    *out = m;
    return HS_OK;
}

void hs_measurements_clear(struct hs_measurements *m)
{
    free(m->predominant_pitch);
    m->predominant_pitch = NULL;
}
