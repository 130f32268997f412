/* verify.c: see verify.h. */
#include "sync/verify.h"

#include <string.h>
#include <strings.h>

#include "core/json.h"

static bool type_is(const char *ct, size_t n, const char *want)
{
    return n == strlen(want) && strncasecmp(ct, want, n) == 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

enum hs_format hs_format_of(const char *kind, const char *content_type)
{
    if (content_type) {
        const char *ct = content_type + strspn(content_type, " \t");
        size_t n = strcspn(ct, "; \t");
        if (type_is(ct, n, "application/pdf"))
            return HS_FORMAT_PDF;
        if (type_is(ct, n, "image/jpeg") || type_is(ct, n, "image/jpg") ||
            type_is(ct, n, "image/pjpeg"))
            return HS_FORMAT_JPEG;
        if (type_is(ct, n, "application/json") ||
            (n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0))
            return HS_FORMAT_JSON;
        /* Storage hosts label many objects as generic binary: then the kind tells. */
        if (n > 0 && !type_is(ct, n, "application/octet-stream") &&
            !type_is(ct, n, "binary/octet-stream"))
            return HS_FORMAT_NONE;
    }
    if (!kind)
        return HS_FORMAT_NONE;
    if (ends_with(kind, ".pdf"))
        return HS_FORMAT_PDF;
    if (ends_with(kind, ".jpg") || ends_with(kind, ".jpeg"))
        return HS_FORMAT_JPEG;
    if (ends_with(kind, "json"))
        return HS_FORMAT_JSON;
    return HS_FORMAT_NONE;
}

const char *hs_format_name(enum hs_format f)
{
    switch (f) {
    case HS_FORMAT_PDF:
        return "PDF";
    case HS_FORMAT_JPEG:
        return "JPEG";
    case HS_FORMAT_JSON:
        return "JSON";
    case HS_FORMAT_NONE:
        break;
    }
    return "unchecked";
}

void hs_body_ends_feed(struct hs_body_ends *e, const void *data, size_t len)
{
    const unsigned char *p = data;
    e->bytes += (int64_t)len;
    if (e->head_len < sizeof e->head) {
        size_t k = sizeof e->head - e->head_len;
        if (k > len)
            k = len;
        memcpy(e->head + e->head_len, p, k);
        e->head_len += k;
    }
    if (len >= HS_BODY_TAIL) {
        memcpy(e->tail, p + len - HS_BODY_TAIL, HS_BODY_TAIL);
        e->tail_len = HS_BODY_TAIL;
        return;
    }
    size_t keep = e->tail_len + len > HS_BODY_TAIL ? HS_BODY_TAIL - len : e->tail_len;
    memmove(e->tail, e->tail + (e->tail_len - keep), keep);
    memcpy(e->tail + keep, p, len);
    e->tail_len = keep + len;
}

static bool tail_has(const struct hs_body_ends *e, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= e->tail_len; i++)
        if (memcmp(e->tail + i, needle, n) == 0)
            return true;
    return false;
}

/* The end-of-image marker, allowing the NUL or blank padding some writers leave after it. */
static bool jpeg_ends(const struct hs_body_ends *e)
{
    size_t n = e->tail_len;
    while (n > 0 && (e->tail[n - 1] == 0 || e->tail[n - 1] == '\n' || e->tail[n - 1] == '\r' ||
                     e->tail[n - 1] == ' '))
        n--;
    return n >= 2 && e->tail[n - 2] == 0xFF && e->tail[n - 1] == 0xD9;
}

int hs_format_check(enum hs_format f, const struct hs_body_ends *e, const char *doc, size_t doc_len,
                    struct hs_error *err)
{
    long long bytes = (long long)e->bytes;
    switch (f) {
    case HS_FORMAT_PDF:
        if (e->head_len < 5 || memcmp(e->head, "%PDF-", 5) != 0)
            return hs_fail(err, HS_ERR_PARSE, "not a PDF (no %%PDF- header; %lld bytes)", bytes);
        if (!tail_has(e, "%%EOF"))
            return hs_fail(err, HS_ERR_PARSE,
                           "incomplete PDF: no %%%%EOF in its last %d bytes (%lld bytes received)",
                           HS_BODY_TAIL, bytes);
        return HS_OK;
    case HS_FORMAT_JPEG:
        if (e->head_len < 3 || e->head[0] != 0xFF || e->head[1] != 0xD8 || e->head[2] != 0xFF)
            return hs_fail(err, HS_ERR_PARSE, "not a JPEG (no start-of-image marker; %lld bytes)",
                           bytes);
        if (!jpeg_ends(e))
            return hs_fail(err, HS_ERR_PARSE,
                           "incomplete JPEG: no end-of-image marker (%lld bytes received)", bytes);
        return HS_OK;
    case HS_FORMAT_JSON: {
        json_t *j = NULL;
        struct hs_error perr = {0};
        int rc = hs_json_parse(doc ? doc : "", doc ? doc_len : 0, HS_JSON_MAX_BYTES, &j, &perr);
        json_decref(j);
        if (rc)
            return hs_fail(err, HS_ERR_PARSE, "JSON that does not parse (%lld bytes): %s", bytes,
                           perr.msg);
        return HS_OK;
    }
    case HS_FORMAT_NONE:
        break;
    }
    return HS_OK;
}
