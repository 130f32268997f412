/* signature.h: verification of Hover's webhook signatures (hover-api.md 4.2), the one place
 * that knows the scheme, so that it can change when Hover's exact header is confirmed.
 *
 *   Content-MD5:   base64(MD5(raw body)), must match the body
 *   Date:          an RFC 7231 date, within max_skew_s of now (15 minutes by default)
 *   canonical:     content_type + "," + content_md5 + "," + request_uri + "," + date
 *                  (a missing Content-Type or Content-MD5 is "")
 *   Authorization: "APIAuth-HMAC-SHA256 <webhook_id>:<base64(HMAC-SHA256(secret, canonical))>"
 *                  ("APIAuth <id>:<sig>" is the same with HMAC-SHA1)
 *
 * The key is the hmac_secret string's bytes as Hover gave them. Signatures are compared in
 * constant time. Everything here is pure: no allocation survives a call, no state. */
#ifndef HS_WEBHOOK_SIGNATURE_H
#define HS_WEBHOOK_SIGNATURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hoversync.h"

#define HS_WEBHOOK_MAX_SKEW_S (15 * 60)

/* The parts of a delivery the signature covers; any may be NULL when the header is absent. */
struct hs_webhook_delivery {
    const char *content_type;
    const char *content_md5;
    const char *date;
    const char *authorization;
    const char *request_uri; /* path and query as received */
    const char *body;
    size_t body_len;
};

/* Reads "APIAuth-HMAC-SHA256 <id>:<sig>" (or "APIAuth <id>:<sig>"): the webhook id tells which
 * secret to use. HS_ERR_PARSE when the header is absent or malformed. */
int hs_webhook_auth_parse(const char *authorization, int64_t *webhook_id, bool *sha1,
                          struct hs_error *err);

/* Checks a delivery against a secret at time now_s. HS_OK, or HS_ERR_UNAUTHORIZED with the
 * reason in err (unsigned, body does not match Content-MD5, stale or future Date, wrong
 * signature). */
int hs_webhook_verify(const struct hs_webhook_delivery *d, const char *secret, int64_t now_s,
                      int64_t max_skew_s, struct hs_error *err);

/* RFC 7231 date ("Sun, 06 Nov 1994 08:49:37 GMT"; the obsolete RFC 850 and asctime forms too)
 * to unix seconds. */
int hs_http_date_parse(const char *s, int64_t *out);
/* base64(MD5(body)) into out (>= 25 bytes). */
void hs_webhook_content_md5(const void *body, size_t len, char out[25]);
/* base64(HMAC(secret, canonical)) into out (>= 45 bytes). */
void hs_webhook_sign(const char *secret, bool sha1, const char *content_type,
                     const char *content_md5, const char *request_uri, const char *date,
                     char out[45]);

#endif
