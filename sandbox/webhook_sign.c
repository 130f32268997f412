/* webhook_sign.c: webhook delivery signatures; see webhook_sign.h. OpenSSL 3: the one-shot
 * HMAC() and EVP_Digest (MD5() and HMAC_CTX are deprecated there). */
#include "webhook_sign.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/mem.h"
#include "core/str.h"

/* Standard base64 with padding; out needs 4 * ceil(len / 3) + 1 bytes. */
static int b64(const unsigned char *in, size_t len, char *out, size_t n)
{
    if (len > 1024 || n < 4 * ((len + 2) / 3) + 1)
        return -1;
    (void)EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    return 0;
}

int sb_webhook_request_uri(const char *url, char *out, size_t n)
{
    const char *p = url ? strstr(url, "://") : NULL;
    if (!p || n == 0)
        return -1;
    p += 3;
    p += strcspn(p, "/?#"); /* past the authority */
    size_t len = strcspn(p, "#");
    bool slash = *p != '/';
    if (len + (slash ? 1 : 0) + 1 > n)
        return -1;
    size_t o = 0;
    if (slash)
        out[o++] = '/';
    memcpy(out + o, p, len);
    out[o + len] = '\0';
    return 0;
}

void sb_webhook_content_md5(const void *body, size_t len, char *out, size_t n)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(body ? body : "", len, md, &mdlen, EVP_md5(), NULL) != 1 ||
        b64(md, mdlen, out, n) != 0) {
        if (n)
            out[0] = '\0';
    }
}

int sb_webhook_http_date(int64_t unix_s, char *out, size_t n)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)unix_s;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 || tm.tm_mon > 11)
        return -1;
    int w = snprintf(out, n, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
                     months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return w > 0 && (size_t)w < n ? 0 : -1;
}

static const char *const signer_names[] = {"1.x", "2.4-sha1", "2.4-sha256", "2.5-sha256",
                                           "2.5-sha512"};
static const char *const access_names[] = {"webhook-id", "org-id", "name"};

const char *sb_signer_name(enum sb_signer s)
{
    return (unsigned)s < 5 ? signer_names[s] : "?";
}

int sb_signer_parse(const char *name, enum sb_signer *out)
{
    for (int i = 0; name && i < 5; i++)
        if (strcmp(name, signer_names[i]) == 0) {
            *out = (enum sb_signer)i;
            return 0;
        }
    return -1;
}

const char *sb_access_id_name(enum sb_access_id a)
{
    return (unsigned)a < 3 ? access_names[a] : "?";
}

int sb_access_id_parse(const char *name, enum sb_access_id *out)
{
    for (int i = 0; name && i < 3; i++)
        if (strcmp(name, access_names[i]) == 0) {
            *out = (enum sb_access_id)i;
            return 0;
        }
    return -1;
}

char *sb_webhook_canonical(int method, const char *content_type, const char *digest,
                           const char *request_uri, const char *date)
{
    return hs_aprintf("%s%s,%s,%s,%s", method ? "POST," : "", content_type ? content_type : "",
                      digest ? digest : "", request_uri ? request_uri : "", date ? date : "");
}

int sb_webhook_sign(enum sb_signer signer, const char *access_id, const char *secret,
                    const char *url, const char *content_type, const void *body, size_t len,
                    int64_t unix_s, struct sb_webhook_signed *out)
{
    if (!secret || !access_id ||
        sb_webhook_request_uri(url, out->request_uri, sizeof out->request_uri) != 0 ||
        sb_webhook_http_date(unix_s, out->date, sizeof out->date) != 0)
        return -1;
    bool v25 = signer == SB_SIGNER_25_SHA256 || signer == SB_SIGNER_25_SHA512;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    out->digest_header = v25 ? "X-Authorization-Content-SHA256" : "Content-MD5";
    if (EVP_Digest(body ? body : "", len, md, &mdlen, v25 ? EVP_sha256() : EVP_md5(), NULL) != 1 ||
        b64(md, mdlen, out->digest, sizeof out->digest) != 0)
        return -1;
    const EVP_MD *hmac = signer == SB_SIGNER_24_SHA1     ? EVP_sha1()
                         : signer == SB_SIGNER_25_SHA512 ? EVP_sha512()
                                                         : EVP_sha256();
    const char *prefix = signer == SB_SIGNER_24_SHA1     ? "APIAuth"
                         : signer == SB_SIGNER_25_SHA512 ? "APIAuth-HMAC-SHA512"
                                                         : "APIAuth-HMAC-SHA256";
    char *canonical = sb_webhook_canonical(signer != SB_SIGNER_1X, content_type, out->digest,
                                           out->request_uri, out->date);
    char sig[100];
    bool ok = HMAC(hmac, secret, (int)strlen(secret), (const unsigned char *)canonical,
                   strlen(canonical), md, &mdlen) != NULL &&
              b64(md, mdlen, sig, sizeof sig) == 0;
    free(canonical);
    if (!ok)
        return -1;
    int w =
        snprintf(out->authorization, sizeof out->authorization, "%s %s:%s", prefix, access_id, sig);
    return w > 0 && (size_t)w < sizeof out->authorization ? 0 : -1;
}
