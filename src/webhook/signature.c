/* signature.c: webhook signature verification; see signature.h for the scheme. */
#include "webhook/signature.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/buf.h"
#include "core/str.h"

/* Canonical strings are bounded: a request URI longer than this is refused anyway. */
#define CANONICAL_MAX 8192

static void b64(const unsigned char *in, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

void hs_webhook_content_md5(const void *body, size_t len, char out[25])
{
    unsigned char md[16];
    unsigned int mdlen = 0;
    EVP_Digest(body, len, md, &mdlen, EVP_md5(), NULL);
    b64(md, sizeof md, out);
}

void hs_webhook_sign(const char *secret, bool sha1, const char *content_type,
                     const char *content_md5, const char *request_uri, const char *date,
                     char out[45])
{
    struct hs_buf c;
    hs_buf_init(&c, CANONICAL_MAX);
    if (hs_buf_appendf(&c, "%s,%s,%s,%s", content_type ? content_type : "",
                       content_md5 ? content_md5 : "", request_uri ? request_uri : "",
                       date ? date : "") != HS_OK) {
        out[0] = '\0'; /* over the bound: no signature can match */
        hs_buf_free(&c);
        return;
    }
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    HMAC(sha1 ? EVP_sha1() : EVP_sha256(), secret, (int)strlen(secret),
         (const unsigned char *)hs_buf_str(&c), c.len, mac, &maclen);
    b64(mac, maclen, out);
    hs_buf_free(&c);
}

int hs_webhook_auth_parse(const char *authorization, int64_t *webhook_id, bool *sha1,
                          struct hs_error *err)
{
    if (!authorization || !*authorization)
        return hs_fail(err, HS_ERR_PARSE, "unsigned delivery: no Authorization header");
    const char *p = authorization;
    bool is_sha1;
    if (strncmp(p, "APIAuth-HMAC-SHA256 ", 20) == 0) {
        p += 20;
        is_sha1 = false;
    } else if (strncmp(p, "APIAuth ", 8) == 0) {
        p += 8;
        is_sha1 = true;
    } else {
        return hs_fail(err, HS_ERR_PARSE, "Authorization is not an APIAuth signature");
    }
    const char *colon = strchr(p, ':');
    if (!colon || colon == p || colon - p > 20 || !colon[1])
        return hs_fail(err, HS_ERR_PARSE, "malformed APIAuth header");
    char id[24];
    memcpy(id, p, (size_t)(colon - p));
    id[colon - p] = '\0';
    int64_t v;
    if (hs_parse_i64_range(id, 1, INT64_MAX, &v) != HS_OK)
        return hs_fail(err, HS_ERR_PARSE, "malformed webhook id in APIAuth header");
    *webhook_id = v;
    *sha1 = is_sha1;
    return HS_OK;
}

/* Constant-time comparison of two NUL-terminated strings (length leaks, content does not). */
static bool same(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    return la == lb && CRYPTO_memcmp(a, b, la) == 0;
}

int hs_webhook_verify(const struct hs_webhook_delivery *d, const char *secret, int64_t now_s,
                      int64_t max_skew_s, struct hs_error *err)
{
    int64_t id;
    bool sha1;
    struct hs_error perr = {0};
    if (hs_webhook_auth_parse(d->authorization, &id, &sha1, &perr) != HS_OK)
        return hs_fail(err, HS_ERR_UNAUTHORIZED, "%s", perr.msg);
    if (!d->content_md5 || !*d->content_md5)
        return hs_fail(err, HS_ERR_UNAUTHORIZED, "no Content-MD5 header");
    char md5[25];
    hs_webhook_content_md5(d->body ? d->body : "", d->body_len, md5);
    if (!same(md5, d->content_md5))
        return hs_fail(err, HS_ERR_UNAUTHORIZED, "body does not match Content-MD5");
    int64_t when;
    if (!d->date || hs_http_date_parse(d->date, &when) != HS_OK)
        return hs_fail(err, HS_ERR_UNAUTHORIZED, "no valid Date header");
    if (when < now_s - max_skew_s || when > now_s + max_skew_s)
        return hs_fail(err, HS_ERR_UNAUTHORIZED, "Date is %lld s away from now (limit %lld s)",
                       (long long)(when - now_s), (long long)max_skew_s);
    char want[45];
    hs_webhook_sign(secret, sha1, d->content_type, d->content_md5, d->request_uri, d->date, want);
    const char *got = strchr(d->authorization, ':') + 1;
    if (!want[0] || !same(want, got))
        return hs_fail(err, HS_ERR_UNAUTHORIZED, "signature does not match");
    return HS_OK;
}

static int month_of(const char *s)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    for (int i = 0; i < 12; i++)
        if (strncmp(s, months + 3 * i, 3) == 0)
            return i;
    return -1;
}

static bool digits_n(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* "08:49:37" */
static bool clock_of(const char *s, int *h, int *m, int *sec)
{
    return digits_n(s, 2, h) && s[2] == ':' && digits_n(s + 3, 2, m) && s[5] == ':' &&
           digits_n(s + 6, 2, sec) && *h < 24 && *m < 60 && *sec <= 60;
}

int hs_http_date_parse(const char *s, int64_t *out)
{
    struct tm tm = {0};
    int d, y, h, mi, se, mo;
    const char *comma = strchr(s, ',');
    size_t len = strlen(s);
    if (comma && comma - s == 3 && len == 29) {
        /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
        const char *p = s + 5;
        if (!digits_n(p, 2, &d) || p[2] != ' ' || (mo = month_of(p + 3)) < 0 || p[6] != ' ' ||
            !digits_n(p + 7, 4, &y) || p[11] != ' ' || !clock_of(p + 12, &h, &mi, &se) ||
            strcmp(p + 20, " GMT") != 0)
            return HS_ERR_PARSE;
    } else if (comma && comma - s >= 6 && comma - s <= 9) {
        /* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" */
        const char *p = comma + 2;
        if (comma[1] != ' ' || strlen(p) != 22 || !digits_n(p, 2, &d) || p[2] != '-' ||
            (mo = month_of(p + 3)) < 0 || p[6] != '-' || !digits_n(p + 7, 2, &y) || p[9] != ' ' ||
            !clock_of(p + 10, &h, &mi, &se) || strcmp(p + 18, " GMT") != 0)
            return HS_ERR_PARSE;
        y += y < 70 ? 2000 : 1900;
    } else if (!comma && len == 24) {
        /* asctime: "Sun Nov  6 08:49:37 1994" */
        if (s[3] != ' ' || (mo = month_of(s + 4)) < 0 || s[7] != ' ')
            return HS_ERR_PARSE;
        char dd[3] = {s[8] == ' ' ? '0' : s[8], s[9], 0};
        if (!digits_n(dd, 2, &d) || s[10] != ' ' || !clock_of(s + 11, &h, &mi, &se) ||
            s[19] != ' ' || !digits_n(s + 20, 4, &y))
            return HS_ERR_PARSE;
    } else {
        return HS_ERR_PARSE;
    }
    if (d < 1 || d > 31 || y < 1970)
        return HS_ERR_PARSE;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    *out = (int64_t)timegm(&tm);
    return HS_OK;
}
