/* fuzz_measurements.c: libFuzzer target of the measurements parser (src/sync/measurements.c), the
 * headline figures out of Hover's measurement documents. Input: the summarized_json document,
 * then optionally a NUL byte and a sketch_json document. Every extracted string is walked, so that
 * ASan/UBSan see what the parser wrote; figures must be NaN or finite, counts -1 or more. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sync/measurements.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_figure(double v)
{
    if (!isnan(v) && !isfinite(v))
        abort(); /* JSON has no infinities: one here came from a conversion */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *doc = (const char *)data;
    const char *nul = memchr(data, '\0', size);
    size_t len = nul ? (size_t)(nul - doc) : size;
    const char *sketch = nul ? nul + 1 : NULL;
    size_t sketch_len = nul ? size - len - 1 : 0;
    struct hs_measurements m;
    struct hs_error err;
    memset(&m, 0xA5, sizeof m); /* written only on success */
    if (hs_measurements_extract(7, doc, len, sketch, sketch_len, &m, &err) != HS_OK) {
        if (!err.msg[0])
            abort(); /* a failure says why */
        return 0;
    }
    if (m.model_id != 7 || m.raw_json != doc || m.roof_facets < -1 || m.openings_count < -1)
        abort();
    const double figures[] = {m.roof_area_sqft,   m.ridges_ft,        m.hips_ft,
                              m.valleys_ft,       m.rakes_ft,         m.eaves_ft,
                              m.siding_area_sqft, m.facade_area_sqft, m.openings_area_sqft,
                              m.living_area_sqft};
    for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++)
        check_figure(figures[i]);
    volatile size_t sink = m.predominant_pitch ? strlen(m.predominant_pitch) : 0;
    (void)sink;
    hs_measurements_clear(&m);
    return 0;
}
