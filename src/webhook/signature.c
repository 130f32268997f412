/* signature.c: webhook signature verification; see signature.h for the scheme. OpenSSL 3: the
 * one-shot HMAC() and EVP_Digest (MD5() and HMAC_CTX are deprecated there). */
#include "webhook/signature.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Canonical strings are bounded: a request URI longer than this is refused anyway. */
#define CANONICAL_MAX 8192

/* The prefixes of the gem's header pattern,
 *   /APIAuth(?:-HMAC-(MD5|SHA(?:1|224|256|384|512)?))? ([^:]+):(.+)$/
 * each with the digest its HMAC uses. "SHA" is read as SHA-1: the gem hands the name to
 * OpenSSL::Digest.new; no OpenSSL since 1.1.0 knows "SHA" (it was SHA-0 before, which no current
 * library computes, so no signer today produces a SHA-0 signature), while Java's providers (JRuby)
 * name SHA-1 "SHA". SHA-1 is thus the only reading under which a working signer can send it. */
static const struct {
    const char *prefix; /* with the space that ends it */
    enum hs_apiauth_digest digest;
} schemes[] = {
    {"APIAuth ", HS_APIAUTH_SHA1},
    {"APIAuth-HMAC-MD5 ", HS_APIAUTH_MD5},
    {"APIAuth-HMAC-SHA ", HS_APIAUTH_SHA1},
    {"APIAuth-HMAC-SHA1 ", HS_APIAUTH_SHA1},
    {"APIAuth-HMAC-SHA224 ", HS_APIAUTH_SHA224},
    {"APIAuth-HMAC-SHA256 ", HS_APIAUTH_SHA256},
    {"APIAuth-HMAC-SHA384 ", HS_APIAUTH_SHA384},
    {"APIAuth-HMAC-SHA512 ", HS_APIAUTH_SHA512},
};

static const EVP_MD *md_of(enum hs_apiauth_digest d)
{
    switch (d) {
    case HS_APIAUTH_MD5:
        return EVP_md5();
    case HS_APIAUTH_SHA1:
        return EVP_sha1();
    case HS_APIAUTH_SHA224:
        return EVP_sha224();
    case HS_APIAUTH_SHA256:
        return EVP_sha256();
    case HS_APIAUTH_SHA384:
        return EVP_sha384();
    case HS_APIAUTH_SHA512:
        return EVP_sha512();
    }
    return EVP_sha256();
}

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

void hs_webhook_content_sha256(const void *body, size_t len, char out[45])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(body, len, md, &mdlen, EVP_sha256(), NULL);
    b64(md, sizeof md, out);
}

int hs_webhook_canonical(const char *method, const char *content_type, const char *digest,
                         const char *request_uri, const char *date, char *out, size_t n)
{
    int w = snprintf(out, n, "%s%s%s,%s,%s,%s", method ? method : "", method ? "," : "",
                     content_type ? content_type : "", digest ? digest : "",
                     request_uri ? request_uri : "", date ? date : "");
    return w >= 0 && (size_t)w < n ? HS_OK : HS_ERR_TOOBIG;
}

void hs_webhook_sign(enum hs_apiauth_digest digest, const char *secret, const char *canonical,
                     char *out)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (!HMAC(md_of(digest), secret, (int)strlen(secret), (const unsigned char *)canonical,
              strlen(canonical), mac, &maclen)) {
        out[0] = '\0'; /* no signature can match */
        return;
    }
    b64(mac, maclen, out);
}

int hs_webhook_uri_of_url(const char *url, char *out, size_t n)
{
    /* The gem's parse_uri: uri.gsub(%r{https?://[^,?/]*}, ''), "/" when empty. Only a leading
     * scheme and authority are ours to drop: a registered URL has no other. */
    const char *p = url ? url : "";
    if (strncmp(p, "http://", 7) == 0)
        p += 7 + strcspn(p + 7, ",?/");
    else if (strncmp(p, "https://", 8) == 0)
        p += 8 + strcspn(p + 8, ",?/");
    int w = snprintf(out, n, "%s", *p ? p : "/");
    return w >= 0 && (size_t)w < n ? HS_OK : HS_ERR_TOOBIG;
}

/* Strict base64 (RFC 4648 alphabet, padding exactly where due) of exactly mac_len bytes. */
static bool strict_b64(const char *s, size_t len, size_t mac_len)
{
    size_t want = 4 * ((mac_len + 2) / 3);
    size_t pad = (3 - mac_len % 3) % 3;
    if (len != want)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool alpha = isalnum(c) || c == '+' || c == '/';
        if (i >= len - pad ? c != '=' : !alpha)
            return false;
    }
    return true;
}

int hs_webhook_auth_parse(const char *authorization, struct hs_apiauth *out, struct hs_error *err)
{
    if (!authorization || !*authorization)
        return hs_fail(err, HS_ERR_PARSE, "unsigned delivery: no Authorization header");
    size_t k = 0;
    size_t nschemes = sizeof schemes / sizeof schemes[0];
    while (k < nschemes && strncmp(authorization, schemes[k].prefix, strlen(schemes[k].prefix)))
        k++;
    if (k == nschemes)
        return hs_fail(err, HS_ERR_PARSE, "Authorization is not an APIAuth signature");
    const char *id = authorization + strlen(schemes[k].prefix);
    const char *colon = strchr(id, ':');
    if (!colon || colon == id)
        return hs_fail(err, HS_ERR_PARSE, "malformed APIAuth header: no access id");
    size_t idlen = (size_t)(colon - id);
    if (idlen > HS_APIAUTH_ACCESS_ID_MAX)
        return hs_fail(err, HS_ERR_PARSE, "malformed APIAuth header: access id too long");
    for (size_t i = 0; i < idlen; i++)
        if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f)
            return hs_fail(err, HS_ERR_PARSE, "malformed APIAuth header: control character");
    const char *sig = colon + 1;
    size_t siglen = strlen(sig);
    if (!strict_b64(sig, siglen, (size_t)EVP_MD_get_size(md_of(schemes[k].digest))))
        return hs_fail(err, HS_ERR_PARSE,
                       "malformed APIAuth header: the signature is not "
                       "base64 of an HMAC-%s",
                       EVP_MD_get0_name(md_of(schemes[k].digest)));
    out->digest = schemes[k].digest;
    out->scheme = schemes[k].prefix;
    memcpy(out->access_id, id, idlen);
    out->access_id[idlen] = '\0';
    memcpy(out->signature, sig, siglen + 1);
    return HS_OK;
}

/* Constant-time comparison of two NUL-terminated strings (length leaks, content does not). */
static bool same(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    return la == lb && CRYPTO_memcmp(a, b, la) == 0;
}

static bool present(const char *s)
{
    return s && *s;
}

int hs_webhook_check_body(const struct hs_webhook_delivery *d, struct hs_error *err)
{
    if (!present(d->content_md5) && !present(d->content_sha256))
        return hs_fail(err, HS_ERR_UNAUTHORIZED,
                       "no Content-MD5 or X-Authorization-Content-SHA256 header");
    const char *body = d->body ? d->body : "";
    if (present(d->content_sha256)) {
        char sha[45];
        hs_webhook_content_sha256(body, d->body_len, sha);
        if (!same(sha, d->content_sha256))
            return hs_fail(err, HS_ERR_UNAUTHORIZED,
                           "body does not match X-Authorization-Content-SHA256");
    }
    if (present(d->content_md5)) {
        char md5[25];
        hs_webhook_content_md5(body, d->body_len, md5);
        if (!same(md5, d->content_md5))
            return hs_fail(err, HS_ERR_UNAUTHORIZED, "body does not match Content-MD5");
    }
    return HS_OK;
}

int hs_webhook_check_date(const struct hs_webhook_delivery *d, int64_t now_s, int64_t max_skew_s,
                          int64_t *date_s, struct hs_error *err)
{
    int64_t when;
    if (!present(d->date))
        return hs_fail(err, HS_ERR_UNAUTHORIZED, "no Date header");
    if (hs_http_date_parse(d->date, &when) != HS_OK)
        return hs_fail(err, HS_ERR_PARSE, "malformed Date header");
    if (when < now_s - max_skew_s || when > now_s + max_skew_s)
        return hs_fail(err, HS_ERR_UNAUTHORIZED, "Date is %lld s away from now (limit %lld s)",
                       (long long)(when - now_s), (long long)max_skew_s);
    if (date_s)
        *date_s = when;
    return HS_OK;
}

bool hs_webhook_signature_matches(const struct hs_webhook_delivery *d, const struct hs_apiauth *a,
                                  const char *secret, const char *request_uri)
{
    /* The digest value the signer put in: 2.5 onwards the SHA-256 header, before it MD5. */
    const char *digests[2] = {d->content_sha256, d->content_md5};
    const char *methods[2] = {d->method, NULL}; /* 2.0 onwards first, then 1.x */
    bool ok = false;
    for (int i = 0; i < 2 && !ok; i++) {
        if (!present(digests[i]))
            continue;
        for (int m = 0; m < 2 && !ok; m++) {
            if (m == 0 && !present(methods[0]))
                continue;
            char canonical[CANONICAL_MAX];
            char want[HS_APIAUTH_SIG_MAX + 1];
            if (hs_webhook_canonical(methods[m], d->content_type, digests[i], request_uri, d->date,
                                     canonical, sizeof canonical) != HS_OK)
                return false;
            hs_webhook_sign(a->digest, secret, canonical, want);
            ok = want[0] && same(want, a->signature);
        }
    }
    return ok;
}

int hs_webhook_verify(const struct hs_webhook_delivery *d, const char *secret, int64_t now_s,
                      int64_t max_skew_s, struct hs_error *err)
{
    struct hs_apiauth a;
    struct hs_error e = {0};
    if (hs_webhook_auth_parse(d->authorization, &a, &e) != HS_OK ||
        hs_webhook_check_body(d, &e) != HS_OK ||
        hs_webhook_check_date(d, now_s, max_skew_s, NULL, &e) != HS_OK)
        return hs_fail(err, HS_ERR_UNAUTHORIZED, "%s", e.msg);
    if (!hs_webhook_signature_matches(d, &a, secret, d->request_uri))
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
