/* measurements.h: the headline figures a CRM shows (roof area, facets, pitch, siding, openings,
 * living area), extracted from Hover's measurement JSON into columns beside the raw document. */
#ifndef HS_SYNC_MEASUREMENTS_H
#define HS_SYNC_MEASUREMENTS_H

#include <stddef.h>

#include "hoversync.h"
#include "store/records.h"

/* Fills out from a summarized_json document (and, when given, a sketch_json one for the living
 * area). Figures absent from the documents are NaN / -1. out->raw_json points into `summarized`
 * (borrowed). HS_ERR_PARSE when the summarized document is not a JSON object. */
int hs_measurements_extract(int64_t model_id, const char *summarized, size_t len,
                            const char *sketch, size_t sketch_len, struct hs_measurements *out,
                            struct hs_error *err);
/* Frees what extract allocated (the pitch string). */
void hs_measurements_clear(struct hs_measurements *m);

#endif
