/* sigv4.h: AWS Signature Version 4 verification for the sandbox's S3 listener.
 *
 * What AWS specifies, step by step (and what the unit tests check against AWS's published
 * vectors):
 *   canonical request = METHOD \n CanonicalURI \n CanonicalQuery \n CanonicalHeaders \n
 *                       SignedHeaders \n PayloadHash
 *     CanonicalURI:     the path percent-decoded, then each byte but the RFC 3986 unreserved ones
 *                       and '/' encoded as %XX (uppercase hex): S3's rule, encoded once and never
 *                       normalised (no dot segments or double slashes removed)
 *     CanonicalQuery:   every name=value pair decoded then encoded like the URI ('/' encoded
 *                       too), sorted by name then value (bytewise), a missing value as "";
 *                       X-Amz-Signature left out of a presigned URL's
 *     CanonicalHeaders: for each signed header, lowercased name ':' its values in arrival order
 *                       joined by ',', each trimmed and with inner runs of spaces made one; '\n'
 *     SignedHeaders:    the lowercased names, sorted, joined by ';'
 *     PayloadHash:      S3: the x-amz-content-sha256 header's value (hex SHA-256 of the body or
 *                       UNSIGNED-PAYLOAD); a presigned URL without that header: UNSIGNED-PAYLOAD
 *   string to sign    = "AWS4-HMAC-SHA256" \n X-Amz-Date \n DATE/REGION/SERVICE/aws4_request \n
 *                       hex(SHA-256(canonical request))
 *   signing key       = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, DATE), REGION), SERVICE),
 *                            "aws4_request")
 *   signature         = hex(HMAC(signing key, string to sign)), compared in constant time.
 *
 * Plus the checks around it: the credential scope (access key, date = X-Amz-Date's, region,
 * service, terminal), 15 minutes of clock skew for the Authorization header form, X-Amz-Expires
 * (1..604800 s) for presigned URLs, "host" signed, every x-amz-* header signed (S3), and the
 * session token when one is configured. Errors carry AWS's codes and HTTP statuses.
 *
 * Pure functions over the request's bytes: no HTTP library, so the unit tests run the vectors
 * through them and a fuzz target feeds them hostile input. */
#ifndef HS_SANDBOX_SIGV4_H
#define HS_SANDBOX_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define SB_SIGV4_MAX_SKEW_S    900    /* AWS: 15 minutes either way */
#define SB_SIGV4_MAX_EXPIRES_S 604800 /* a presigned URL lives at most 7 days */
#define SB_SIGV4_EMPTY_SHA256  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SB_SIGV4_UNSIGNED      "UNSIGNED-PAYLOAD"
#define SB_SIGV4_MAX_PARAMS    256 /* query parameters; more is refused */
#define SB_SIGV4_MAX_SIGNED    64  /* signed headers */

struct sb_sigv4_header {
    const char *name, *value;
};

struct sb_sigv4_request {
    const char *method;
    const char *raw_path;                  /* as on the request line: encoded, no query */
    const char *raw_query;                 /* after '?', "" when none */
    const struct sb_sigv4_header *headers; /* as received, in order, repeats kept */
    size_t n_headers;
    /* The canonical request's last line. NULL: S3's rule (see above); an Authorization header
     * then needs x-amz-content-sha256. The AWS test suite's services hash the body instead. */
    const char *payload_hash;
};

struct sb_sigv4_config {
    const char *access_key, *secret_key;
    const char *session_token; /* NULL: requests must not carry one */
    const char *region, *service;
    bool amz_headers_signed; /* S3: every x-amz-* header present must be signed */
};

struct sb_sigv4_result {
    int status;       /* 0 when verified, else the HTTP status of the error */
    const char *code; /* AWS error code; NULL when verified */
    char message[256];
    bool presigned;           /* query-string authentication */
    bool anonymous;           /* neither an Authorization header nor X-Amz-* parameters */
    char access_key[129];     /* as the request claims it ("" when unknown), for logs */
    char amz_date[17];        /* X-Amz-Date as sent ("" when unusable) */
    char signature[65];       /* as sent (cut at 64 characters) */
    char unsigned_header[64]; /* AccessDenied for an unsigned x-amz-* header: its name */
    int64_t request_time;     /* X-Amz-Date in unix seconds, 0 when unknown */
    int64_t expires_s;        /* presigned: X-Amz-Expires */
    const char *payload_hash; /* what the canonical request used (borrowed from the request) */
    char *canonical_request;  /* built before the comparison; sb_sigv4_result_clear frees */
    char *string_to_sign;
};

/* Verifies rq at unix time now. Returns 0, or -1 with the AWS error in out (which the caller
 * clears either way). */
int sb_sigv4_verify(const struct sb_sigv4_request *rq, const struct sb_sigv4_config *cfg,
                    int64_t now, struct sb_sigv4_result *out);
void sb_sigv4_result_clear(struct sb_sigv4_result *r);

/* The building blocks, exposed for the vectors. Each returns 0, or -1 for input that has no
 * canonical form (a bad percent escape, a NUL byte, too many parameters, too long). */
int sb_sigv4_canonical_uri(const char *raw_path, struct hs_buf *out);
int sb_sigv4_canonical_query(const char *raw_query, bool presigned, struct hs_buf *out);
/* signed_headers: lowercase names separated by ';' (sorted and deduplicated here). */
int sb_sigv4_canonical_request(const struct sb_sigv4_request *rq, const char *signed_headers,
                               const char *payload_hash, bool presigned, struct hs_buf *out);
/* scope: "DATE/REGION/SERVICE/aws4_request". */
void sb_sigv4_string_to_sign(const char *amz_date, const char *scope, const char *canonical,
                             size_t canonical_len, struct hs_buf *out);
/* hex(HMAC(signing key, sts)) into out (65 bytes). */
void sb_sigv4_signature(const char *secret, const char *date8, const char *region,
                        const char *service, const char *sts, size_t sts_len, char out[65]);
/* Appends s[0..n) percent-encoded the AWS way ('/' kept when keep_slash). */
void sb_sigv4_uri_encode(const char *s, size_t n, bool keep_slash, struct hs_buf *out);
/* Percent-decodes s[0..n) (and '+' as a space when plus_space) onto out; -1 on a bad escape or
 * a NUL byte. */
int sb_sigv4_decode(const char *s, size_t n, bool plus_space, struct hs_buf *out);
/* The decoded value of query parameter `name` (case-sensitive; the first one), or NULL. Caller
 * frees. A parameter without '=' has the value "". */
char *sb_sigv4_query_get(const char *raw_query, const char *name);
/* "YYYYMMDDTHHMMSSZ" to unix seconds; -1 when malformed. */
int sb_sigv4_parse_amz_date(const char *s, int64_t *out);

#endif
