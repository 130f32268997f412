/* str.c: see str.h. */
#include "str.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hoversync.h"
#include "buf.h"
#include "mem.h"

int hs_parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s || isspace((unsigned char)*s))
        return HS_ERR_PARSE;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return HS_ERR_PARSE;
    *out = (int64_t)v;
    return HS_OK;
}

int hs_parse_i64_range(const char *s, int64_t min, int64_t max, int64_t *out)
{
    int64_t v;
    if (hs_parse_i64(s, &v) != HS_OK || v < min || v > max)
        return HS_ERR_PARSE;
    *out = v;
    return HS_OK;
}

int hs_parse_double(const char *s, double *out)
{
    if (!s || !*s || isspace((unsigned char)*s))
        return HS_ERR_PARSE;
    errno = 0;
    char *end = NULL;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v))
        return HS_ERR_PARSE;
    *out = v;
    return HS_OK;
}

int hs_strlcpy(char *dst, const char *src, size_t n)
{
    if (n == 0)
        return HS_ERR_TOOBIG;
    size_t len = strlen(src);
    if (len >= n) {
        memcpy(dst, src, n - 1);
        dst[n - 1] = '\0';
        return HS_ERR_TOOBIG;
    }
    memcpy(dst, src, len + 1);
    return HS_OK;
}

bool hs_streq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

bool hs_starts_with(const char *s, const char *prefix)
{
    return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

bool hs_contains_ci(const char *haystack, const char *needle)
{
    if (!haystack || !needle)
        return false;
    size_t nl = strlen(needle);
    if (nl == 0)
        return true;
    for (const char *p = haystack; *p; p++)
        if (strncasecmp(p, needle, nl) == 0)
            return true;
    return false;
}

int hs_split_list(char *s, const char **items, size_t max, size_t *n)
{
    char *save = NULL;
    for (char *tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        size_t len = strlen(tok);
        while (len && tok[len - 1] == ' ')
            tok[--len] = '\0';
        if (!len)
            continue;
        if (*n >= max)
            return HS_ERR_TOOBIG;
        items[(*n)++] = tok;
    }
    return HS_OK;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return HS_ERR_PARSE;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return HS_OK;
}

int hs_iso8601_parse(const char *s, int64_t *out)
{
    int y, mo, d, h = 0, mi = 0, sec = 0;
    if (!s || strlen(s) < 10)
        return HS_ERR_PARSE;
    if (digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
        digits(s + 8, 2, &d))
        return HS_ERR_PARSE;
    const char *p = s + 10;
    if (*p == 'T' || *p == ' ') {
        if (strlen(p) < 9 || digits(p + 1, 2, &h) || p[3] != ':' || digits(p + 4, 2, &mi) ||
            p[6] != ':' || digits(p + 7, 2, &sec))
            return HS_ERR_PARSE;
        p += 9;
        if (*p == '.')
            for (p++; isdigit((unsigned char)*p); p++)
                ;
        int off = 0;
        if (*p == 'Z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int oh, om;
            if (strlen(p) < 6 || digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om))
                return HS_ERR_PARSE;
            off = (oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);
            p += 6;
        }
        if (*p)
            return HS_ERR_PARSE;
        if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
            return HS_ERR_PARSE;
        struct tm tm = {0};
        tm.tm_year = y - 1900;
        tm.tm_mon = mo - 1;
        tm.tm_mday = d;
        tm.tm_hour = h;
        tm.tm_min = mi;
        tm.tm_sec = sec;
        *out = (int64_t)timegm(&tm) - off;
        return HS_OK;
    }
    if (*p)
        return HS_ERR_PARSE;
    if (mo < 1 || mo > 12 || d < 1 || d > 31)
        return HS_ERR_PARSE;
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    *out = (int64_t)timegm(&tm);
    return HS_OK;
}

void hs_iso8601_format(int64_t unix_s, int ms, char *out, size_t n)
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    (void)snprintf(out, n, "%s.%03dZ", base, ms < 0 ? 0 : ms % 1000);
}

int hs_parse_date_arg(const char *s, int64_t *out)
{
    if (hs_iso8601_parse(s, out) == HS_OK)
        return HS_OK;
    return hs_parse_i64_range(s, 0, INT64_MAX, out);
}

char *hs_url_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *o = hs_malloc(n * 3 + 1), *q = o;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            *q++ = (char)*p;
        } else {
            *q++ = '%';
            *q++ = hex[*p >> 4];
            *q++ = hex[*p & 15];
        }
    }
    *q = '\0';
    return o;
}

void hs_hex(const unsigned char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

char *hs_html_escape(const char *s)
{
    struct hs_buf b;
    hs_buf_init(&b, 1u << 20);
    for (; s && *s; s++) {
        const char *rep = NULL;
        switch (*s) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        }
        if (rep)
            (void)hs_buf_appends(&b, rep);
        else
            (void)hs_buf_append(&b, s, 1);
    }
    return hs_buf_take(&b, NULL);
}

bool hs_etag_matches(const char *inm, const char *etag)
{
    if (!inm || !etag)
        return false;
    size_t elen = strlen(etag);
    const char *p = inm;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        if (*p == '*')
            return true;
        if (p[0] == 'W' && p[1] == '/')
            p += 2;
        const char *end = p;
        if (*p == '"') {
            end = strchr(p + 1, '"');
            end = end ? end + 1 : p + strlen(p);
        } else {
            while (*end && *end != ',')
                end++;
        }
        if ((size_t)(end - p) == elen && memcmp(p, etag, elen) == 0)
            return true;
        p = end;
    }
    return false;
}

char *hs_url_redact(const char *s)
{
    if (!s)
        return NULL;
    struct hs_buf b;
    hs_buf_init(&b, 4 * strlen(s) + 16); /* each URL grows by "***" at most */
    const char *p = s;
    const char *sep;
    while ((sep = strstr(p, "://"))) {
        const char *auth = sep + 3;
        size_t alen = strcspn(auth, "/?#, ");
        const char *at = NULL;
        for (size_t i = 0; i < alen; i++)
            if (auth[i] == '@')
                at = auth + i; /* the last '@': a password may hold one */
        (void)hs_buf_append(&b, p, (size_t)(auth - p));
        if (at) {
            const char *colon = memchr(auth, ':', (size_t)(at - auth));
            if (colon)
                (void)hs_buf_append(&b, auth, (size_t)(colon + 1 - auth));
            (void)hs_buf_appends(&b, "***");
            p = at;
        } else {
            p = auth;
        }
    }
    (void)hs_buf_appends(&b, p);
    return hs_buf_take(&b, NULL);
}
