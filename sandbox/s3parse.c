/* s3parse.c: parsers of the S3 listener's request bodies and headers; see s3parse.h. */
#include "s3parse.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"
#include "core/str.h"

#define NAME_MAX_LEN 64
#define TEXT_MAX     1024

/* ---- CompleteMultipartUpload ---- */

struct xcur {
    const char *start, *p, *end;
    char *err;
    size_t errn;
};

static int xfail(struct xcur *c, const char *why)
{
    (void)snprintf(c->err, c->errn, "%s (at byte %zu)", why, (size_t)(c->p - c->start));
    return -1;
}

static bool at(const struct xcur *c, const char *s)
{
    size_t n = strlen(s);
    return (size_t)(c->end - c->p) >= n && memcmp(c->p, s, n) == 0;
}

static bool xspace(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* Skips to just after `stop`; -1 if it never comes. */
static int skip_past(struct xcur *c, const char *stop)
{
    size_t n = strlen(stop);
    for (const char *q = c->p; (size_t)(c->end - q) >= n; q++) {
        if (memcmp(q, stop, n) == 0) {
            c->p = q + n;
            return 0;
        }
    }
    return xfail(c, "unterminated declaration or comment");
}

/* Whitespace, XML declarations and comments. */
static int skip_misc(struct xcur *c)
{
    for (;;) {
        while (c->p < c->end && xspace(*c->p))
            c->p++;
        if (at(c, "<?")) {
            if (skip_past(c, "?>") != 0)
                return -1;
        } else if (at(c, "<!--")) {
            if (skip_past(c, "-->") != 0)
                return -1;
        } else {
            return 0;
        }
    }
}

static bool name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '_' || ch == '.' || ch == ':';
}

/* "<Name attr='...'>" or "<Name/>"; the name without a namespace prefix into name. */
static int open_tag(struct xcur *c, char name[NAME_MAX_LEN], bool *empty)
{
    if (c->p >= c->end || *c->p != '<' || at(c, "</"))
        return xfail(c, "expected an element");
    c->p++;
    const char *start = c->p;
    while (c->p < c->end && name_char(*c->p))
        c->p++;
    size_t n = (size_t)(c->p - start);
    if (n == 0 || n >= NAME_MAX_LEN)
        return xfail(c, "bad element name");
    const char *colon = memchr(start, ':', n);
    if (colon) {
        n -= (size_t)(colon + 1 - start);
        start = colon + 1;
    }
    memcpy(name, start, n);
    name[n] = '\0';
    char quote = 0;
    for (; c->p < c->end; c->p++) {
        char ch = *c->p;
        if (quote) {
            quote = ch == quote ? 0 : quote;
        } else if (ch == '"' || ch == '\'') {
            quote = ch;
        } else if (ch == '<') {
            break;
        } else if (ch == '>') {
            *empty = c->p[-1] == '/';
            c->p++;
            return 0;
        }
    }
    return xfail(c, "unterminated start tag");
}

static int close_tag(struct xcur *c, const char *name)
{
    if (!at(c, "</"))
        return xfail(c, "expected an end tag");
    c->p += 2;
    const char *start = c->p;
    while (c->p < c->end && name_char(*c->p))
        c->p++;
    const char *local = start;
    for (const char *q = start; q < c->p; q++)
        if (*q == ':')
            local = q + 1;
    size_t n = (size_t)(c->p - local);
    if (n != strlen(name) || memcmp(local, name, n) != 0)
        return xfail(c, "mismatched end tag");
    while (c->p < c->end && xspace(*c->p))
        c->p++;
    if (c->p >= c->end || *c->p != '>')
        return xfail(c, "unterminated end tag");
    c->p++;
    return 0;
}

static int entity(struct xcur *c, struct hs_buf *out)
{
    static const char *const names[][2] = {
        {"&quot;", "\""}, {"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&apos;", "'"}};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        if (at(c, names[i][0])) {
            c->p += strlen(names[i][0]);
            return hs_buf_appends(out, names[i][1]);
        }
    }
    if (!at(c, "&#"))
        return xfail(c, "unknown entity");
    c->p += 2;
    int base = 10;
    if (c->p < c->end && (*c->p == 'x' || *c->p == 'X')) {
        base = 16;
        c->p++;
    }
    long v = 0;
    int digits = 0;
    for (; c->p < c->end && *c->p != ';' && digits < 6; c->p++, digits++) {
        char ch = *c->p;
        int d = ch >= '0' && ch <= '9'                 ? ch - '0'
                : base == 16 && ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                : base == 16 && ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                                       : -1;
        if (d < 0)
            return xfail(c, "bad character reference");
        v = v * base + d;
    }
    /* Part numbers and ETags are ASCII: references beyond it are not worth decoding. */
    if (digits == 0 || c->p >= c->end || *c->p != ';' || v < 1 || v > 127)
        return xfail(c, "bad character reference");
    c->p++;
    char ch = (char)v;
    return hs_buf_append(out, &ch, 1);
}

/* Character data up to the next '<', entities decoded. */
static int text(struct xcur *c, struct hs_buf *out)
{
    while (c->p < c->end && *c->p != '<') {
        int rc = *c->p == '&' ? entity(c, out) : hs_buf_append(out, c->p++, 1);
        if (rc != 0)
            return rc < 0 && c->err[0] ? -1 : xfail(c, "text too long");
    }
    return 0;
}

static char *trim(char *s)
{
    while (xspace(*s))
        s++;
    size_t n = strlen(s);
    while (n && xspace(s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* One <Part>...</Part> (its start tag already read). */
static int part(struct xcur *c, struct sb_s3_part_ref *out)
{
    char name[NAME_MAX_LEN];
    bool empty, have_etag = false;
    out->number = 0;
    out->etag[0] = '\0';
    for (;;) {
        if (skip_misc(c) != 0)
            return -1;
        if (at(c, "</"))
            break;
        if (open_tag(c, name, &empty) != 0)
            return -1;
        if (empty)
            continue;
        struct hs_buf t;
        hs_buf_init(&t, TEXT_MAX);
        int rc = text(c, &t);
        if (rc == 0)
            rc = close_tag(c, name);
        char *v = trim((char *)hs_buf_str(&t));
        int64_t num;
        if (rc == 0 && !strcmp(name, "PartNumber")) {
            if (out->number || hs_parse_i64_range(v, 1, SB_S3_MAX_PARTS, &num) != 0)
                rc = xfail(c, "PartNumber must be 1..10000, once per Part");
            else
                out->number = (int)num;
        } else if (rc == 0 && !strcmp(name, "ETag")) {
            size_t n = strlen(v);
            if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
                v[n - 1] = '\0';
                v++;
            }
            if (have_etag || hs_strlcpy(out->etag, v, sizeof out->etag) != 0)
                rc = xfail(c, "ETag too long or repeated");
            have_etag = true;
        }
        hs_buf_free(&t);
        if (rc != 0)
            return -1;
    }
    if (close_tag(c, "Part") != 0)
        return -1;
    if (!out->number || !have_etag)
        return xfail(c, "each Part needs a PartNumber and an ETag");
    return 0;
}

int sb_s3_parse_complete(const char *body, size_t len, struct sb_s3_part_ref **parts, size_t *n,
                         char *err, size_t errn)
{
    struct xcur c = {body, body, body + len, err, errn};
    struct sb_s3_part_ref *v = NULL;
    size_t count = 0, cap = 0;
    char name[NAME_MAX_LEN];
    bool empty = false;
    err[0] = '\0';
    if (skip_misc(&c) != 0 || open_tag(&c, name, &empty) != 0)
        goto fail;
    if (strcmp(name, "CompleteMultipartUpload") != 0) {
        xfail(&c, "the root element must be CompleteMultipartUpload");
        goto fail;
    }
    while (!empty) {
        if (skip_misc(&c) != 0)
            goto fail;
        if (at(&c, "</")) {
            if (close_tag(&c, "CompleteMultipartUpload") != 0)
                goto fail;
            break;
        }
        bool part_empty;
        if (open_tag(&c, name, &part_empty) != 0)
            goto fail;
        if (strcmp(name, "Part") != 0 || part_empty) {
            xfail(&c, "CompleteMultipartUpload holds Part elements only");
            goto fail;
        }
        if (count == SB_S3_MAX_PARTS) {
            xfail(&c, "more than 10000 parts");
            goto fail;
        }
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            v = hs_realloc(v, cap * sizeof *v);
        }
        if (part(&c, &v[count]) != 0)
            goto fail;
        count++;
    }
    if (skip_misc(&c) != 0 || c.p != c.end) {
        if (!err[0])
            xfail(&c, "content after the root element");
        goto fail;
    }
    if (count == 0) {
        xfail(&c, "no Part");
        goto fail;
    }
    *parts = v;
    *n = count;
    return 0;
fail:
    free(v);
    return -1;
}

/* ---- headers ---- */

/* Decimal digits s[0..n) into *out; -1 when empty, not digits or too large. */
static int decimal(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 19)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

int sb_s3_parse_range(const char *h, uint64_t size, uint64_t *first, uint64_t *last)
{
    if (!h)
        return 0;
    while (*h == ' ' || *h == '\t')
        h++;
    if (strncmp(h, "bytes=", 6) != 0 || strchr(h, ','))
        return 0;
    const char *s = h + 6;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    const char *dash = memchr(s, '-', n);
    if (!dash)
        return 0;
    uint64_t a = 0, b = 0;
    size_t an = (size_t)(dash - s), bn = n - an - 1;
    if (an == 0) { /* the last b bytes */
        if (decimal(dash + 1, bn, &b) != 0)
            return 0;
        if (b == 0 || size == 0)
            return -1;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 1;
    }
    if (decimal(s, an, &a) != 0 || (bn && decimal(dash + 1, bn, &b) != 0) || (bn && b < a))
        return 0;
    if (a >= size)
        return -1;
    *first = a;
    *last = bn && b < size - 1 ? b : size - 1;
    return 1;
}

bool sb_s3_bucket_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n < 3 || n > 63)
        return false;
    bool all_digits_dots = true;
    int dots = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
        if (!alnum && ch != '.' && ch != '-')
            return false;
        if ((i == 0 || i == n - 1) && !alnum)
            return false;
        if (ch == '.' && name[i + 1] == '.')
            return false;
        dots += ch == '.';
        all_digits_dots = all_digits_dots && (ch == '.' || (ch >= '0' && ch <= '9'));
    }
    return !(all_digits_dots && dots == 3);
}

enum sb_s3_sha_kind sb_s3_content_sha_kind(const char *v)
{
    if (!strcmp(v, "UNSIGNED-PAYLOAD"))
        return SB_S3_SHA_UNSIGNED;
    if (hs_starts_with(v, "STREAMING-"))
        return SB_S3_SHA_STREAMING;
    if (strlen(v) != 64)
        return SB_S3_SHA_INVALID;
    for (const char *p = v; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F')))
            return SB_S3_SHA_INVALID;
    return SB_S3_SHA_HEX;
}

int sb_s3_content_md5(const char *b64, unsigned char out[16])
{
    unsigned char raw[24];
    if (strlen(b64) != 24 || strcmp(b64 + 22, "==") != 0)
        return -1;
    if (EVP_DecodeBlock(raw, (const unsigned char *)b64, 24) != 18)
        return -1;
    memcpy(out, raw, 16);
    return 0;
}

bool sb_s3_op_name_ok(const char *name)
{
    static const char *const ops[] = {"ListBuckets",
                                      "CreateBucket",
                                      "HeadBucket",
                                      "DeleteBucket",
                                      "ListObjectsV2",
                                      "ListObjects",
                                      "PutObject",
                                      "GetObject",
                                      "HeadObject",
                                      "DeleteObject",
                                      "CreateMultipartUpload",
                                      "UploadPart",
                                      "CompleteMultipartUpload",
                                      "AbortMultipartUpload"};
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
        if (!strcasecmp(ops[i], name))
            return true;
    return false;
}

void sb_s3_xml_escape(struct hs_buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            (void)hs_buf_appends(b, "&amp;");
            break;
        case '<':
            (void)hs_buf_appends(b, "&lt;");
            break;
        case '>':
            (void)hs_buf_appends(b, "&gt;");
            break;
        case '"':
            (void)hs_buf_appends(b, "&quot;");
            break;
        case '\'':
            (void)hs_buf_appends(b, "&apos;");
            break;
        default:
            (void)hs_buf_append(b, s, 1);
        }
    }
}
