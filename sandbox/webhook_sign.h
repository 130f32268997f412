/* webhook_sign.h: the signature of a webhook delivery (hover-api.md 4.2), in one place so that the
 * scheme can change when Hover's exact header is confirmed. The service verifies deliveries in a
 * module of its own; docs/SANDBOX.md ("Webhooks and test jobs") spells out the same scheme.
 *
 *   Content-MD5:   base64(MD5(raw body))
 *   Date:          RFC 7231 IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT"
 *   canonical:     content_type + "," + content_md5 + "," + request_uri + "," + date
 *                  (request_uri: the path and query of the webhook URL, "/" when it has none)
 *   Authorization: "APIAuth-HMAC-SHA256 " + webhook_id + ":" +
 *                  base64(HMAC-SHA256(key = the hmac_secret string's bytes, canonical))
 *
 * base64 is the standard alphabet with padding. Every function is pure (no state, no locks). */
#ifndef HS_SANDBOX_WEBHOOK_SIGN_H
#define HS_SANDBOX_WEBHOOK_SIGN_H

#include <stddef.h>
#include <stdint.h>

#define SB_WEBHOOK_AUTH_SCHEME "APIAuth-HMAC-SHA256"
#define SB_WEBHOOK_URI_MAX     2048

struct sb_webhook_signed {
    char content_md5[32]; /* 24 base64 characters */
    char date[40];        /* 29 characters */
    char authorization[128];
    char request_uri[SB_WEBHOOK_URI_MAX + 2];
};

/* The path and query of an http(s) URL ("/" when the URL has no path). 0, or -1 when the URL
 * has no "scheme://" or the result does not fit in n. A fragment is not part of it. */
int sb_webhook_request_uri(const char *url, char *out, size_t n);
/* base64(MD5(body)) into out (>= 25 bytes). */
void sb_webhook_content_md5(const void *body, size_t len, char *out, size_t n);
/* RFC 7231 date of unix seconds into out (>= 30 bytes); locale-independent. 0 or -1. */
int sb_webhook_http_date(int64_t unix_s, char *out, size_t n);
/* The canonical string. Caller frees. A NULL part counts as "". */
char *sb_webhook_canonical(const char *content_type, const char *content_md5,
                           const char *request_uri, const char *date);
/* base64(HMAC-SHA256(secret bytes, canonical)) into out (>= 45 bytes). 0 or -1. */
int sb_webhook_signature(const char *secret, const char *canonical, char *out, size_t n);
/* Signs a delivery of body to url at unix_s: fills every header value. 0 or -1 (bad URL). */
int sb_webhook_sign(int64_t webhook_id, const char *secret, const char *url,
                    const char *content_type, const void *body, size_t len, int64_t unix_s,
                    struct sb_webhook_signed *out);

#endif
