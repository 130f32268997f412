/* s3parse.h: the small parsers of the S3 listener's outside bytes besides SigV4 (sigv4.h): the
 * CompleteMultipartUpload XML body, the Range header, bucket names, the x-amz-content-sha256 and
 * Content-MD5 values; and XML escaping for the answers. No HTTP library: the fuzz target feeds
 * them hostile input. */
#ifndef HS_SANDBOX_S3PARSE_H
#define HS_SANDBOX_S3PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define SB_S3_MAX_PARTS 10000 /* part numbers are 1..10000, as S3's */
#define SB_S3_ETAG_MAX  72

/* One <Part> of a CompleteMultipartUpload body. */
struct sb_s3_part_ref {
    int number;
    char etag[SB_S3_ETAG_MAX]; /* without surrounding quotes */
};

/* Parses <CompleteMultipartUpload><Part><PartNumber>N</PartNumber><ETag>"..."</ETag></Part>...
 * (an XML declaration, comments, attributes on the root and other elements inside a Part such
 * as checksums are allowed). *parts is malloc'd, in document order. Returns 0, or -1 with a
 * reason in err (the caller answers MalformedXML). */
int sb_s3_parse_complete(const char *body, size_t len, struct sb_s3_part_ref **parts, size_t *n,
                         char *err, size_t errn);

/* A Range header against an object of `size` bytes: 1 and the inclusive [*first, *last] for one
 * satisfiable byte range; 0 when the header is to be ignored as S3 does (absent, not "bytes=",
 * several ranges, malformed); -1 when unsatisfiable (416 InvalidRange). */
int sb_s3_parse_range(const char *h, uint64_t size, uint64_t *first, uint64_t *last);

/* S3's bucket naming rules: 3..63 of [a-z0-9.-], starting and ending with a letter or digit, no
 * "..", not shaped like an IPv4 address. */
bool sb_s3_bucket_name_ok(const char *name);

enum sb_s3_sha_kind {
    SB_S3_SHA_HEX,       /* 64 hex digits: the body's SHA-256 */
    SB_S3_SHA_UNSIGNED,  /* UNSIGNED-PAYLOAD */
    SB_S3_SHA_STREAMING, /* STREAMING-*: aws-chunked bodies */
    SB_S3_SHA_INVALID,
};
enum sb_s3_sha_kind sb_s3_content_sha_kind(const char *v);

/* Content-MD5 (base64 of 16 bytes) into out; -1 when it is not that. */
int sb_s3_content_md5(const char *b64, unsigned char out[16]);

/* Whether name is one of the S3 operations the listener serves (fault rules' op=), any case. */
bool sb_s3_op_name_ok(const char *name);

/* Appends s with & < > " ' escaped. */
void sb_s3_xml_escape(struct hs_buf *b, const char *s);

#endif
