/* signature.h: verification of Hover's webhook signatures, the one place that knows the scheme:
 * the `api_auth` gem's, in every form a genuine signer of any release produces
 * (hover-api.md 4.2; docs/WEBHOOKS.md "Signatures").
 *
 *   body digest:   Content-MD5 = base64(MD5(raw body))                  (gem 1.x .. 2.4)
 *                  X-Authorization-Content-SHA256 = base64(SHA-256(body)) (gem 2.5 onwards)
 *                  at least one is present; every one present must match the raw body
 *   Date:          an RFC 7231 date, within max_skew_s of now (15 minutes by default)
 *   canonical:     content_type,digest,request_uri,date            (gem 1.x, Hover's docs)
 *                  METHOD,content_type,digest,request_uri,date     (gem 2.0 onwards)
 *                  (a missing value is ""; digest is the value of the digest header the signer
 *                  set; request_uri the path and query the sender signed: those of the
 *                  registered URL)
 *   Authorization: "<prefix> <access_id>:<base64(HMAC-<digest>(secret, canonical))>"
 *                  prefix "APIAuth" (HMAC-SHA1) or "APIAuth-HMAC-<D>" for D in MD5, SHA, SHA1,
 *                  SHA224, SHA256, SHA384, SHA512, case-sensitive as the gem's pattern is; the
 *                  access id is any string without ':'; the signature strict base64.
 *
 * Every canonical form is tried with every digest header present, so a delivery of any release
 * verifies and nothing else does: each try is an HMAC under the secret. The key is the
 * hmac_secret string's bytes as Hover gave them. Signatures are compared in constant time.
 * Everything here is pure: no allocation survives a call, no state. */
#ifndef HS_WEBHOOK_SIGNATURE_H
#define HS_WEBHOOK_SIGNATURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hoversync.h"

#define HS_WEBHOOK_MAX_SKEW_S (15 * 60)
/* An access id longer than this is refused as malformed (ours are short numbers). */
#define HS_APIAUTH_ACCESS_ID_MAX 128
/* base64 of the longest MAC (SHA-512, 64 bytes). */
#define HS_APIAUTH_SIG_MAX 88

/* The HMAC digests a header prefix can name. */
enum hs_apiauth_digest {
    HS_APIAUTH_MD5,
    HS_APIAUTH_SHA1,
    HS_APIAUTH_SHA224,
    HS_APIAUTH_SHA256,
    HS_APIAUTH_SHA384,
    HS_APIAUTH_SHA512,
};

/* An Authorization header, read. */
struct hs_apiauth {
    enum hs_apiauth_digest digest;
    const char *scheme; /* the prefix as sent, for logs: "APIAuth-HMAC-SHA256" */
    char access_id[HS_APIAUTH_ACCESS_ID_MAX + 1];
    char signature[HS_APIAUTH_SIG_MAX + 1];
};

/* The parts of a delivery the signature covers; any may be NULL when the header is absent. */
struct hs_webhook_delivery {
    const char *method; /* the request's method ("POST"); NULL tries only the 1.x form */
    const char *content_type;
    const char *content_md5;
    const char *content_sha256; /* X-Authorization-Content-SHA256 */
    const char *date;
    const char *authorization;
    const char *request_uri; /* path and query the sender signed */
    const char *body;
    size_t body_len;
};

/* Reads "<prefix> <access_id>:<signature>". HS_ERR_PARSE when absent or malformed (an unknown
 * prefix, an empty or over-long access id, a signature that is not strict base64 of the length
 * the digest gives). */
int hs_webhook_auth_parse(const char *authorization, struct hs_apiauth *out, struct hs_error *err);

/* The checks that need no secret, cheapest first. HS_ERR_UNAUTHORIZED with the reason in err:
 * no digest header, a digest that does not match the body, no Date or one further than
 * max_skew_s from now_s. A malformed Date is HS_ERR_PARSE. */
int hs_webhook_check_body(const struct hs_webhook_delivery *d, struct hs_error *err);
int hs_webhook_check_date(const struct hs_webhook_delivery *d, int64_t now_s, int64_t max_skew_s,
                          int64_t *date_s, struct hs_error *err);

/* Whether the signature of a (parsed) is the HMAC under secret of one of the canonical forms,
 * with request_uri as the signed URI. Constant time per comparison. */
bool hs_webhook_signature_matches(const struct hs_webhook_delivery *d, const struct hs_apiauth *a,
                                  const char *secret, const char *request_uri);

/* All of the above with d->request_uri: HS_OK, or HS_ERR_UNAUTHORIZED with the reason in err
 * (unsigned, malformed header, body changed, stale or future Date, wrong signature). */
int hs_webhook_verify(const struct hs_webhook_delivery *d, const char *secret, int64_t now_s,
                      int64_t max_skew_s, struct hs_error *err);

/* RFC 7231 date ("Sun, 06 Nov 1994 08:49:37 GMT"; the obsolete RFC 850 and asctime forms too)
 * to unix seconds. */
int hs_http_date_parse(const char *s, int64_t *out);
/* base64(MD5(body)) into out (>= 25 bytes); base64(SHA-256(body)) into out (>= 45 bytes). */
void hs_webhook_content_md5(const void *body, size_t len, char out[25]);
void hs_webhook_content_sha256(const void *body, size_t len, char out[45]);
/* The canonical string: "METHOD," first when method is not NULL; NULL parts count as "".
 * Into out (n bytes); HS_ERR_TOOBIG when it does not fit. */
int hs_webhook_canonical(const char *method, const char *content_type, const char *digest,
                         const char *request_uri, const char *date, char *out, size_t n);
/* base64(HMAC-<digest>(secret, canonical)) into out (>= HS_APIAUTH_SIG_MAX + 1 bytes). */
void hs_webhook_sign(enum hs_apiauth_digest digest, const char *secret, const char *canonical,
                     char *out);
/* The request_uri a signer takes from a URL, as the gem does: the URL without
 * "http(s)://host[:port]", "/" when nothing is left. Into out (n bytes); HS_ERR_TOOBIG. */
int hs_webhook_uri_of_url(const char *url, char *out, size_t n);

#endif
