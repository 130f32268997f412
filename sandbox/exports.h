/* exports.h: the sandbox's secondary artifacts (spreadsheet and CAD exports),
 * derived deterministically from a model's structure figures so that their bytes and ETags change
 * only when the model's revision does. Buffers are owned by the caller. */
#ifndef HS_SANDBOX_EXPORTS_H
#define HS_SANDBOX_EXPORTS_H

#include <stddef.h>

#include "world.h"

/* measurements.xlsx: a CSV-style sheet (not a real OOXML zip; the sandbox does not parse it). */
char *sb_export_xlsx(const struct sb_job *j, const struct sb_model *m, size_t *len);
/* cad_exports.skp: a small binary-looking blob with a recognisable header. */
char *sb_export_skp(const struct sb_job *j, const struct sb_model *m, size_t *len);
/* cad_exports.xml: an XML description of the structure. */
char *sb_export_xml(const struct sb_job *j, const struct sb_model *m, size_t *len);

#endif
