/* webhook_sign.h: the signature of a webhook delivery, as the `api_auth` gem of a given release
 * signs it (hover-api.md 4.2), in one place. The service verifies deliveries in a module of its
 * own; docs/SANDBOX.md ("Webhooks and test jobs") spells out the same scheme.
 *
 *   Date:          RFC 7231 IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT"
 *   body digest:   Content-MD5 = base64(MD5(raw body))                       (1.x, 2.4)
 *                  X-Authorization-Content-SHA256 = base64(SHA-256(raw body)) (2.5)
 *   canonical:     content_type,digest,request_uri,date                      (1.x)
 *                  POST,content_type,digest,request_uri,date                 (2.4, 2.5)
 *                  (request_uri: the path and query of the webhook URL, "/" when it has none)
 *   Authorization: "<prefix> <access_id>:" + base64(HMAC(key = the hmac_secret string's
 *                  bytes, canonical)), prefix "APIAuth" (HMAC-SHA1) or "APIAuth-HMAC-SHA256" /
 *                  "APIAuth-HMAC-SHA512"
 *
 * The signer variants (sb_signer): "1.x" (Hover's docs: no method, Content-MD5, HMAC-SHA256),
 * "2.4-sha1", "2.4-sha256", "2.5-sha256", "2.5-sha512". The access id: the webhook id, the org id,
 * or a name ("hover-org-<org id>"), none of which the gem constrains.
 * base64 is the standard alphabet with padding. Every function is pure (no state, no locks). */
#ifndef HS_SANDBOX_WEBHOOK_SIGN_H
#define HS_SANDBOX_WEBHOOK_SIGN_H

#include <stddef.h>
#include <stdint.h>

#define SB_WEBHOOK_URI_MAX 2048

enum sb_signer {
    SB_SIGNER_1X = 0,
    SB_SIGNER_24_SHA1,
    SB_SIGNER_24_SHA256,
    SB_SIGNER_25_SHA256,
    SB_SIGNER_25_SHA512,
};
enum sb_access_id {
    SB_ACCESS_WEBHOOK_ID = 0,
    SB_ACCESS_ORG_ID,
    SB_ACCESS_NAME,
};
/* Names as in settings and flags; parse: 0, or -1 for an unknown name. */
const char *sb_signer_name(enum sb_signer s);
int sb_signer_parse(const char *name, enum sb_signer *out);
const char *sb_access_id_name(enum sb_access_id a);
int sb_access_id_parse(const char *name, enum sb_access_id *out);

struct sb_webhook_signed {
    const char *digest_header; /* "Content-MD5" or "X-Authorization-Content-SHA256" */
    char digest[48];           /* its value */
    char date[40];             /* 29 characters */
    char authorization[256];
    char request_uri[SB_WEBHOOK_URI_MAX + 2];
};

/* The path and query of an http(s) URL ("/" when the URL has no path). 0, or -1 when the URL
 * has no "scheme://" or the result does not fit in n. A fragment is not part of it. */
int sb_webhook_request_uri(const char *url, char *out, size_t n);
/* base64(MD5(body)) into out (>= 25 bytes). */
void sb_webhook_content_md5(const void *body, size_t len, char *out, size_t n);
/* RFC 7231 date of unix seconds into out (>= 30 bytes); locale-independent. 0 or -1. */
int sb_webhook_http_date(int64_t unix_s, char *out, size_t n);
/* The canonical string, "POST," first when method. Caller frees. A NULL part counts as "". */
char *sb_webhook_canonical(int method, const char *content_type, const char *digest,
                           const char *request_uri, const char *date);
/* Signs a delivery of body to url at unix_s as `signer` does, for access_id: fills every header
 * value. 0 or -1 (bad URL). */
int sb_webhook_sign(enum sb_signer signer, const char *access_id, const char *secret,
                    const char *url, const char *content_type, const void *body, size_t len,
                    int64_t unix_s, struct sb_webhook_signed *out);

#endif
