/* verify.h: the format checks of a downloaded artifact, run before it is stored. A body that a
 * server ended early but sent as complete (a short answer with a matching Content-Length, and
 * no digest to compare) still breaks its format's framing:
 *   PDF   "%PDF-" at the start, "%%EOF" within the last 1024 bytes (where readers look for it);
 *   JPEG  the start-of-image marker FF D8 FF first, the end-of-image marker FF D9 last;
 *   JSON  the document parses.
 * Other formats (spreadsheets, CAD exports) are checked only against the answer's length and
 * digests (hover/client.h). */
#ifndef HS_SYNC_VERIFY_H
#define HS_SYNC_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "hoversync.h"

enum hs_format { HS_FORMAT_NONE, HS_FORMAT_PDF, HS_FORMAT_JPEG, HS_FORMAT_JSON };

/* The format of an artifact: from its Content-Type when that names one, else (no type, or a
 * generic binary one) from its kind's name ("measurements.pdf", "...json"). */
enum hs_format hs_format_of(const char *kind, const char *content_type);
const char *hs_format_name(enum hs_format f);

#define HS_BODY_TAIL 1024

/* The first and last bytes of a body, kept as it streams by. Zero-initialise; reset = zero. */
struct hs_body_ends {
    unsigned char head[8];
    size_t head_len;
    unsigned char tail[HS_BODY_TAIL];
    size_t tail_len;
    int64_t bytes;
};
void hs_body_ends_feed(struct hs_body_ends *e, const void *data, size_t len);

/* Checks a body of format f: PDF and JPEG by its ends, JSON by parsing doc (the whole body,
 * doc_len bytes). HS_ERR_PARSE with what is wrong; HS_OK for HS_FORMAT_NONE. */
int hs_format_check(enum hs_format f, const struct hs_body_ends *e, const char *doc, size_t doc_len,
                    struct hs_error *err);

#endif
