/* routes_s3.c: the S3 listener. Path-style requests (/BUCKET/KEY) are authenticated with AWS
 * Signature Version 4 (sigv4.c) against the credentials given on the command line, their body
 * checked against x-amz-content-sha256 and Content-MD5, and served from the object store
 * (s3store.c) with AWS's XML answers and error codes. docs/SANDBOX.md, "S3 listener", lists the
 * operations and what each refuses. */
#include <microhttpd.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/mem.h"
#include "core/str.h"
#include "routes.h"
#include "s3parse.h"
#include "s3store.h"
#include "sigv4.h"
#include "webhook_sign.h"

#define XML_HEAD    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
#define XMLNS       " xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\""
#define MAX_HEADERS 128
#define LIST_MAX    1000
#define XML_MAX     (64u * 1024u * 1024u)

enum op {
    OP_BAD_PATH,
    OP_LIST_BUCKETS,
    OP_CREATE_BUCKET,
    OP_HEAD_BUCKET,
    OP_DELETE_BUCKET,
    OP_LIST_V2,
    OP_LIST_V1,
    OP_PUT,
    OP_GET,
    OP_HEAD,
    OP_DELETE,
    OP_CREATE_MPU,
    OP_UPLOAD_PART,
    OP_COMPLETE_MPU,
    OP_ABORT_MPU,
    OP_NOT_IMPLEMENTED,
    OP_BAD_METHOD,
};

static const char *const OP_NAMES[] = {"InvalidURI",
                                       "ListBuckets",
                                       "CreateBucket",
                                       "HeadBucket",
                                       "DeleteBucket",
                                       "ListObjectsV2",
                                       "ListObjects",
                                       "PutObject",
                                       "GetObject",
                                       "HeadObject",
                                       "DeleteObject",
                                       "CreateMultipartUpload",
                                       "UploadPart",
                                       "CompleteMultipartUpload",
                                       "AbortMultipartUpload",
                                       "NotImplemented",
                                       "MethodNotAllowed"};

/* Query parameters naming S3 features the sandbox does not have. */
static const char *const UNSUPPORTED[] = {"acl",
                                          "tagging",
                                          "versioning",
                                          "lifecycle",
                                          "policy",
                                          "cors",
                                          "website",
                                          "location",
                                          "retention",
                                          "legal-hold",
                                          "torrent",
                                          "restore",
                                          "select",
                                          "attributes",
                                          "versionId",
                                          "versions",
                                          "delete",
                                          "encryption",
                                          "logging",
                                          "notification",
                                          "replication",
                                          "requestPayment",
                                          "accelerate",
                                          "analytics",
                                          "inventory",
                                          "metrics",
                                          "ownershipControls",
                                          "publicAccessBlock",
                                          "object-lock",
                                          "intelligent-tiering"};

/* The decoded path: /BUCKET/KEY. */
struct target {
    char *bucket; /* NULL for "/" */
    char *key;    /* NULL when the path names a bucket only */
    bool bad;     /* the path does not decode */
};

static void parse_target(const char *raw_path, struct target *t)
{
    struct hs_buf b;
    hs_buf_init(&b, 64 * 1024);
    memset(t, 0, sizeof *t);
    if (!raw_path || raw_path[0] != '/' ||
        sb_sigv4_decode(raw_path + 1, strlen(raw_path + 1), false, &b) != 0) {
        t->bad = true;
    } else if (b.len > 0) {
        const char *p = hs_buf_str(&b), *slash = strchr(p, '/');
        t->bucket = slash ? hs_strndup(p, (size_t)(slash - p)) : hs_strdup(p);
        t->key = slash && slash[1] ? hs_strdup(slash + 1) : NULL;
    }
    hs_buf_free(&b);
}

static void target_clear(struct target *t)
{
    free(t->bucket);
    free(t->key);
}

static bool has_param(const struct sb_req *q, const char *name)
{
    char *v = sb_sigv4_query_get(q->query, name);
    bool found = v != NULL;
    free(v);
    return found;
}

static enum op classify_bucket(const struct sb_req *q, const char **name)
{
    const char *m = q->method;
    if (!strcmp(m, "PUT"))
        return OP_CREATE_BUCKET;
    if (!strcmp(m, "HEAD"))
        return OP_HEAD_BUCKET;
    if (!strcmp(m, "DELETE"))
        return OP_DELETE_BUCKET;
    if (!strcmp(m, "GET")) {
        char *lt = sb_sigv4_query_get(q->query, "list-type");
        enum op op = !lt ? OP_LIST_V1 : !strcmp(lt, "2") ? OP_LIST_V2 : OP_NOT_IMPLEMENTED;
        free(lt);
        if (has_param(q, "uploads")) {
            *name = "ListMultipartUploads";
            return OP_NOT_IMPLEMENTED;
        }
        return op;
    }
    return !strcmp(m, "POST") ? OP_NOT_IMPLEMENTED : OP_BAD_METHOD;
}

static enum op classify_object(const struct sb_req *q, const char **name)
{
    const char *m = q->method;
    bool upload = has_param(q, "uploadId");
    if (!strcmp(m, "PUT")) {
        if (sb_header(q, "x-amz-copy-source")) {
            *name = "CopyObject";
            return OP_NOT_IMPLEMENTED;
        }
        return upload || has_param(q, "partNumber") ? OP_UPLOAD_PART : OP_PUT;
    }
    if (!strcmp(m, "GET")) {
        if (upload) {
            *name = "ListParts";
            return OP_NOT_IMPLEMENTED;
        }
        return OP_GET;
    }
    if (!strcmp(m, "HEAD"))
        return OP_HEAD;
    if (!strcmp(m, "DELETE"))
        return upload ? OP_ABORT_MPU : OP_DELETE;
    if (!strcmp(m, "POST"))
        return has_param(q, "uploads") ? OP_CREATE_MPU
               : upload                ? OP_COMPLETE_MPU
                                       : OP_NOT_IMPLEMENTED;
    return OP_BAD_METHOD;
}

/* The operation a request asks for; *name is what logs and fault rules call it. */
static enum op classify(const struct sb_req *q, const struct target *t, const char **name)
{
    enum op op;
    *name = NULL;
    if (t->bad) {
        op = OP_BAD_PATH;
    } else if (!t->bucket) {
        op = !strcmp(q->method, "GET") || !strcmp(q->method, "HEAD") ? OP_LIST_BUCKETS
                                                                     : OP_BAD_METHOD;
    } else {
        op = OP_NOT_IMPLEMENTED;
        for (size_t i = 0; i < sizeof UNSUPPORTED / sizeof *UNSUPPORTED; i++)
            if (has_param(q, UNSUPPORTED[i]))
                goto out;
        op = t->key ? classify_object(q, name) : classify_bucket(q, name);
    }
out:
    if (!*name)
        *name = OP_NAMES[op];
    return op;
}

/* ---- answers ---- */

static const char *request_id(const struct sb_req *q)
{
    const char *id = json_string_value(json_object_get(q->log_extra, "request_id"));
    return id ? id : "0000000000000000";
}

static void xml_elem(struct hs_buf *b, const char *name, const char *value)
{
    (void)hs_buf_appendf(b, "<%s>", name);
    sb_s3_xml_escape(b, value ? value : "");
    (void)hs_buf_appendf(b, "</%s>", name);
}

static void xml_elem_u64(struct hs_buf *b, const char *name, uint64_t v)
{
    (void)hs_buf_appendf(b, "<%s>%llu</%s>", name, (unsigned long long)v, name);
}

static void iso_time(int64_t unix_s, char out[40])
{
    hs_iso8601_format(unix_s, 0, out, 40);
}

/* An answer whose body is the XML in b (taken). */
static void xml_answer(struct sb_req *q, struct sb_resp *r, int status, struct hs_buf *b)
{
    size_t len;
    char *body = hs_buf_take(b, &len);
    sb_resp_set(r, status, "application/xml", body, len);
    sb_resp_header(r, "x-amz-request-id", request_id(q));
}

static void empty_answer(struct sb_req *q, struct sb_resp *r, int status)
{
    sb_resp_set(r, status, "application/xml", NULL, 0);
    sb_resp_header(r, "x-amz-request-id", request_id(q));
}

/* <Error> with the extra elements in `extra` (XML, may be NULL). */
static void error_x(struct sb_req *q, struct sb_resp *r, int status, const char *code,
                    const char *msg, const char *extra)
{
    struct hs_buf b;
    hs_buf_init(&b, XML_MAX);
    (void)hs_buf_appends(&b, XML_HEAD "<Error>");
    xml_elem(&b, "Code", code);
    xml_elem(&b, "Message", msg);
    if (extra)
        (void)hs_buf_appends(&b, extra);
    xml_elem(&b, "Resource", q->path);
    xml_elem(&b, "RequestId", request_id(q));
    (void)hs_buf_appends(&b, "</Error>\n");
    xml_answer(q, r, status, &b);
    if (q->log_extra)
        (void)json_object_set_new(q->log_extra, "s3_error", json_string(code));
}

void sb_s3_error(struct sb_req *q, struct sb_resp *r, int status, const char *code, const char *msg)
{
    error_x(q, r, status, code, msg, NULL);
}

/* An error naming one more element (<BucketName>, <Key>, <UploadId>...). */
static void error_1(struct sb_req *q, struct sb_resp *r, int status, const char *code,
                    const char *msg, const char *elem, const char *value)
{
    struct hs_buf x;
    hs_buf_init(&x, XML_MAX);
    xml_elem(&x, elem, value);
    error_x(q, r, status, code, msg, hs_buf_str(&x));
    hs_buf_free(&x);
}

static void store_error(struct sb_req *q, struct sb_resp *r, const struct target *t, int rc,
                        const struct sb_s3_detail *d, const char *upload_id)
{
    struct hs_buf x;
    hs_buf_init(&x, XML_MAX);
    switch (rc) {
    case SB_S3_NO_SUCH_BUCKET:
        error_1(q, r, 404, "NoSuchBucket", "The specified bucket does not exist", "BucketName",
                t->bucket);
        break;
    case SB_S3_NO_SUCH_KEY:
        error_1(q, r, 404, "NoSuchKey", "The specified key does not exist.", "Key", t->key);
        break;
    case SB_S3_BUCKET_EXISTS:
        error_1(q, r, 409, "BucketAlreadyOwnedByYou",
                "Your previous request to create the named bucket succeeded and you already own "
                "it.",
                "BucketName", t->bucket);
        break;
    case SB_S3_BUCKET_NOT_EMPTY:
        error_1(q, r, 409, "BucketNotEmpty", "The bucket you tried to delete is not empty",
                "BucketName", t->bucket);
        break;
    case SB_S3_FULL:
        (void)hs_buf_appendf(&x, "<UsedBytes>%llu</UsedBytes><NeededBytes>%llu</NeededBytes>",
                             (unsigned long long)d->used, (unsigned long long)d->needed);
        error_x(q, r, 507, "SandboxStorageFull", d->msg, hs_buf_str(&x));
        break;
    case SB_S3_NO_SUCH_UPLOAD:
        error_1(q, r, 404, "NoSuchUpload",
                "The specified upload does not exist. The upload ID may be invalid, or the upload "
                "may have been aborted or completed.",
                "UploadId", upload_id);
        break;
    case SB_S3_INVALID_PART:
    case SB_S3_INVALID_PART_ORDER:
    case SB_S3_TOO_SMALL:
        xml_elem(&x, "UploadId", upload_id);
        (void)hs_buf_appendf(&x, "<PartNumber>%d</PartNumber>", d->part);
        error_x(q, r, 400,
                rc == SB_S3_INVALID_PART         ? "InvalidPart"
                : rc == SB_S3_INVALID_PART_ORDER ? "InvalidPartOrder"
                                                 : "EntityTooSmall",
                d->msg, hs_buf_str(&x));
        break;
    case SB_S3_EXISTS:
        error_1(q, r, 412, "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold", "Condition",
                "If-None-Match");
        break;
    default:
        sb_s3_error(q, r, 500, "InternalError",
                    "We encountered an internal error. Please try "
                    "again.");
    }
    hs_buf_free(&x);
}

/* ---- authentication and payload ---- */

struct hlist {
    struct sb_sigv4_header v[MAX_HEADERS];
    size_t n;
    bool over;
};

static enum MHD_Result add_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    (void)kind;
    struct hlist *h = cls;
    if (h->n == MAX_HEADERS) {
        h->over = true;
        return MHD_NO;
    }
    h->v[h->n++] = (struct sb_sigv4_header){key ? key : "", value ? value : ""};
    return MHD_YES;
}

/* The extra elements AWS puts in an authentication error. */
static void auth_error(struct sb_req *q, struct sb_resp *r, const struct sb_sigv4_result *a,
                       int64_t now)
{
    struct hs_buf x;
    hs_buf_init(&x, XML_MAX);
    char iso[40];
    iso_time(now, iso);
    const char *c = a->code;
    if (!strcmp(c, "SignatureDoesNotMatch")) {
        xml_elem(&x, "AWSAccessKeyId", a->access_key);
        xml_elem(&x, "StringToSign", a->string_to_sign);
        xml_elem(&x, "SignatureProvided", a->signature);
        xml_elem(&x, "CanonicalRequest", a->canonical_request);
    } else if (!strcmp(c, "RequestTimeTooSkewed")) {
        xml_elem(&x, "RequestTime", a->amz_date);
        xml_elem(&x, "ServerTime", iso);
        xml_elem_u64(&x, "MaxAllowedSkewMilliseconds", SB_SIGV4_MAX_SKEW_S * 1000);
    } else if (!strcmp(c, "AccessDenied") && a->presigned && a->expires_s && a->request_time) {
        char exp[40];
        iso_time(a->request_time + a->expires_s, exp);
        xml_elem_u64(&x, "X-Amz-Expires", (uint64_t)a->expires_s);
        xml_elem(&x, "Expires", exp);
        xml_elem(&x, "ServerTime", iso);
    } else if (!strcmp(c, "AccessDenied") && a->unsigned_header[0]) {
        xml_elem(&x, "HeadersNotSigned", a->unsigned_header);
    } else if (!strcmp(c, "InvalidAccessKeyId")) {
        xml_elem(&x, "AWSAccessKeyId", a->access_key);
    } else if (strstr(a->message, "region")) {
        xml_elem(&x, "Region", q->srv->cfg.s3.region);
    }
    error_x(q, r, a->status, c, a->message, hs_buf_str(&x));
    hs_buf_free(&x);
}

static int authenticate(struct sb_req *q, struct sb_resp *r, struct sb_sigv4_result *a)
{
    struct hlist *h = hs_calloc(1, sizeof *h);
    const struct sb_s3_settings *c = &q->srv->cfg.s3;
    int64_t now = sb_now_ms() / 1000;
    int rc = -1;
    memset(a, 0, sizeof *a);
    (void)MHD_get_connection_values(q->conn, MHD_HEADER_KIND, add_header, h);
    if (h->over) {
        sb_s3_error(q, r, 400, "RequestHeaderSectionTooLarge",
                    "Your request header section exceeds the maximum allowed size.");
        goto out;
    }
    struct sb_sigv4_config cfg = {c->access_key, c->secret_key, c->session_token,
                                  c->region,     "s3",          true};
    struct sb_sigv4_request rq = {q->method, q->raw_path, q->query, h->v, h->n, NULL};
    rc = sb_sigv4_verify(&rq, &cfg, now, a);
    (void)json_object_set_new(q->log_extra, "auth_type",
                              json_string(a->anonymous   ? "none"
                                          : a->presigned ? "presigned"
                                                         : "header"));
    if (rc != 0)
        auth_error(q, r, a, now);
out:
    free(h);
    return rc;
}

/* x-amz-content-sha256 (as signed) and Content-MD5 against the body received. */
static int check_payload(struct sb_req *q, struct sb_resp *r, const char *claimed)
{
    unsigned char md[32], md5[16], want5[16];
    unsigned int mdlen = 0;
    char hex[65];
    switch (sb_s3_content_sha_kind(claimed)) {
    case SB_S3_SHA_INVALID:
        sb_s3_error(q, r, 400, "InvalidArgument",
                    "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, "
                    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, or a valid sha256 value.");
        return -1;
    case SB_S3_SHA_STREAMING:
        sb_s3_error(q, r, 501, "NotImplemented",
                    "aws-chunked bodies (x-amz-content-sha256: STREAMING-...) are not supported "
                    "by the sandbox: send the body's SHA-256 or UNSIGNED-PAYLOAD");
        return -1;
    case SB_S3_SHA_HEX:
        EVP_Digest(q->body, q->body_len, md, &mdlen, EVP_sha256(), NULL);
        hs_hex(md, 32, hex);
        if (strcasecmp(hex, claimed) != 0) {
            struct hs_buf x;
            hs_buf_init(&x, 1024);
            xml_elem(&x, "ClientComputedContentSHA256", claimed);
            xml_elem(&x, "S3ComputedContentSHA256", hex);
            error_x(q, r, 400, "XAmzContentSHA256Mismatch",
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                    hs_buf_str(&x));
            hs_buf_free(&x);
            return -1;
        }
        break;
    case SB_S3_SHA_UNSIGNED:
        break;
    }
    const char *cmd5 = sb_header(q, "Content-MD5");
    if (!cmd5)
        return 0;
    if (sb_s3_content_md5(cmd5, want5) != 0) {
        sb_s3_error(q, r, 400, "InvalidDigest", "The Content-MD5 you specified was not valid.");
        return -1;
    }
    EVP_Digest(q->body, q->body_len, md5, &mdlen, EVP_md5(), NULL);
    if (memcmp(md5, want5, 16) != 0) {
        sb_s3_error(q, r, 400, "BadDigest",
                    "The Content-MD5 you specified did not match what we received.");
        return -1;
    }
    return 0;
}

/* ---- buckets ---- */

static void list_buckets(struct sb_req *q, struct sb_resp *r)
{
    json_t *j = sb_s3store_buckets_json(q->srv->s3), *v;
    size_t i;
    struct hs_buf b;
    hs_buf_init(&b, XML_MAX);
    (void)hs_buf_appends(&b, XML_HEAD "<ListAllMyBucketsResult" XMLNS ">"
                                      "<Owner><ID>sandbox</ID><DisplayName>sandbox</DisplayName>"
                                      "</Owner><Buckets>");
    json_array_foreach(json_object_get(j, "buckets"), i, v)
    {
        char iso[40];
        iso_time((int64_t)json_integer_value(json_object_get(v, "created")), iso);
        (void)hs_buf_appends(&b, "<Bucket>");
        xml_elem(&b, "Name", json_string_value(json_object_get(v, "name")));
        xml_elem(&b, "CreationDate", iso);
        (void)hs_buf_appends(&b, "</Bucket>");
    }
    (void)hs_buf_appends(&b, "</Buckets></ListAllMyBucketsResult>\n");
    json_decref(j);
    xml_answer(q, r, 200, &b);
}

static void bucket_op(struct sb_req *q, struct sb_resp *r, const struct target *t, enum op op)
{
    struct sb_s3store *s = q->srv->s3;
    int rc = SB_S3_OK;
    if (op == OP_CREATE_BUCKET) {
        if (!sb_s3_bucket_name_ok(t->bucket)) {
            error_1(q, r, 400, "InvalidBucketName", "The specified bucket is not valid.",
                    "BucketName", t->bucket);
            return;
        }
        rc = sb_s3store_create_bucket(s, t->bucket, sb_now_ms() / 1000);
    } else if (op == OP_DELETE_BUCKET) {
        rc = sb_s3store_delete_bucket(s, t->bucket);
    } else if (!sb_s3store_bucket_exists(s, t->bucket)) {
        rc = SB_S3_NO_SUCH_BUCKET;
    }
    if (rc != SB_S3_OK) {
        store_error(q, r, t, rc, NULL, NULL);
        return;
    }
    empty_answer(q, r, op == OP_DELETE_BUCKET ? 204 : 200);
    if (op == OP_CREATE_BUCKET) {
        char *loc = hs_aprintf("/%s", t->bucket);
        sb_resp_header(r, "Location", loc);
        free(loc);
    }
    if (op == OP_HEAD_BUCKET)
        sb_resp_header(r, "x-amz-bucket-region", q->srv->cfg.s3.region);
}

/* ---- listing ---- */

/* A listed name as the response spells it: raw, or URL-encoded with encoding-type=url. */
static void list_elem(struct hs_buf *b, const char *name, const char *value, bool url)
{
    if (!url) {
        xml_elem(b, name, value);
        return;
    }
    struct hs_buf e;
    hs_buf_init(&e, XML_MAX);
    sb_sigv4_uri_encode(value, strlen(value), true, &e);
    xml_elem(b, name, hs_buf_str(&e));
    hs_buf_free(&e);
}

struct list_args {
    char *prefix, *delimiter, *max_keys, *encoding, *token, *start_after, *marker;
    size_t max;
    bool url;
    char *after; /* where the listing starts (decoded token, StartAfter or marker) */
};

static void list_args_clear(struct list_args *a)
{
    free(a->prefix);
    free(a->delimiter);
    free(a->max_keys);
    free(a->encoding);
    free(a->token);
    free(a->start_after);
    free(a->marker);
    free(a->after);
}

/* A continuation token is the hex of the last name returned. */
static char *token_decode(const char *tok)
{
    size_t n = strlen(tok);
    if (n == 0 || n % 2 || n > 2 * SB_S3_KEY_MAX + 2)
        return NULL;
    char *out = hs_malloc(n / 2 + 1);
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v = 0;
        if (sscanf(tok + 2 * i, "%2x", &v) != 1 || v == 0 ||
            !strchr("0123456789abcdef", tok[2 * i]) ||
            !strchr("0123456789abcdef", tok[2 * i + 1])) {
            free(out);
            return NULL;
        }
        out[i] = (char)v;
    }
    out[n / 2] = '\0';
    return out;
}

static int list_parse(struct sb_req *q, struct sb_resp *r, bool v2, struct list_args *a)
{
    const char *qs = q->query;
    a->prefix = sb_sigv4_query_get(qs, "prefix");
    a->delimiter = sb_sigv4_query_get(qs, "delimiter");
    a->max_keys = sb_sigv4_query_get(qs, "max-keys");
    a->encoding = sb_sigv4_query_get(qs, "encoding-type");
    a->token = v2 ? sb_sigv4_query_get(qs, "continuation-token") : NULL;
    a->start_after = v2 ? sb_sigv4_query_get(qs, "start-after") : NULL;
    a->marker = v2 ? NULL : sb_sigv4_query_get(qs, "marker");
    int64_t max = LIST_MAX;
    if (a->max_keys && hs_parse_i64_range(a->max_keys, 0, INT32_MAX, &max) != 0) {
        error_1(q, r, 400, "InvalidArgument",
                "Provided max-keys not an integer or within integer range", "ArgumentName",
                "max-keys");
        return -1;
    }
    a->max = max > LIST_MAX ? LIST_MAX : (size_t)max;
    if (a->encoding && strcmp(a->encoding, "url") != 0) {
        error_1(q, r, 400, "InvalidArgument", "Invalid Encoding Method specified in Request",
                "ArgumentName", "encoding-type");
        return -1;
    }
    a->url = a->encoding != NULL;
    if (a->token && !(a->after = token_decode(a->token))) {
        error_1(q, r, 400, "InvalidArgument", "The continuation token provided is incorrect",
                "ArgumentName", "continuation-token");
        return -1;
    }
    if (!a->after)
        a->after = hs_strdup(a->start_after ? a->start_after : a->marker ? a->marker : "");
    return 0;
}

/* The <ListBucketResult> head: V2 and V1 name their paging fields differently. */
static void list_head(struct hs_buf *b, const struct target *t, const struct list_args *a,
                      const struct sb_s3_list *l, bool v2)
{
    (void)hs_buf_appends(b, XML_HEAD "<ListBucketResult" XMLNS ">");
    xml_elem(b, "Name", t->bucket);
    list_elem(b, "Prefix", a->prefix ? a->prefix : "", a->url);
    if (a->delimiter)
        list_elem(b, "Delimiter", a->delimiter, a->url);
    xml_elem_u64(b, "MaxKeys", a->max);
    if (a->url)
        xml_elem(b, "EncodingType", "url");
    (void)hs_buf_appendf(b, "<IsTruncated>%s</IsTruncated>", l->truncated ? "true" : "false");
    if (v2) {
        xml_elem_u64(b, "KeyCount", l->n);
        if (a->token)
            xml_elem(b, "ContinuationToken", a->token);
        if (a->start_after)
            list_elem(b, "StartAfter", a->start_after, a->url);
        if (l->truncated) {
            size_t n = strlen(l->next_after);
            char *hex = hs_malloc(2 * n + 1);
            hs_hex((const unsigned char *)l->next_after, n, hex);
            xml_elem(b, "NextContinuationToken", hex);
            free(hex);
        }
    } else {
        list_elem(b, "Marker", a->marker ? a->marker : "", a->url);
        if (l->truncated)
            list_elem(b, "NextMarker", l->next_after, a->url);
    }
}

static void list_objects(struct sb_req *q, struct sb_resp *r, const struct target *t, bool v2)
{
    struct list_args a = {0};
    struct sb_s3_list l = {0};
    if (list_parse(q, r, v2, &a) != 0)
        goto out;
    struct sb_s3_list_query lq = {a.prefix, a.delimiter, a.after, a.max};
    int rc = sb_s3store_list(q->srv->s3, t->bucket, &lq, &l);
    if (rc != SB_S3_OK) {
        store_error(q, r, t, rc, NULL, NULL);
        goto out;
    }
    struct hs_buf b;
    hs_buf_init(&b, XML_MAX);
    list_head(&b, t, &a, &l, v2);
    for (size_t i = 0; i < l.n; i++) {
        const struct sb_s3_list_item *it = &l.items[i];
        if (it->is_prefix)
            continue;
        char iso[40];
        iso_time(it->m.mtime, iso);
        (void)hs_buf_appends(&b, "<Contents>");
        list_elem(&b, "Key", it->key, a.url);
        xml_elem(&b, "LastModified", iso);
        xml_elem(&b, "ETag", it->m.etag);
        xml_elem_u64(&b, "Size", it->m.size);
        (void)hs_buf_appends(&b, "<StorageClass>STANDARD</StorageClass></Contents>");
    }
    for (size_t i = 0; i < l.n; i++) {
        if (!l.items[i].is_prefix)
            continue;
        (void)hs_buf_appends(&b, "<CommonPrefixes>");
        list_elem(&b, "Prefix", l.items[i].key, a.url);
        (void)hs_buf_appends(&b, "</CommonPrefixes>");
    }
    (void)hs_buf_appends(&b, "</ListBucketResult>\n");
    xml_answer(q, r, 200, &b);
out:
    sb_s3_list_clear(&l);
    list_args_clear(&a);
}

/* ---- objects ---- */

static bool key_ok(struct sb_req *q, struct sb_resp *r, const struct target *t)
{
    if (strlen(t->key) <= SB_S3_KEY_MAX)
        return true;
    error_1(q, r, 400, "KeyTooLongError", "Your key is too long", "Key", t->key);
    return false;
}

static void put_object(struct sb_req *q, struct sb_resp *r, const struct target *t)
{
    if (!key_ok(q, r, t))
        return;
    const char *inm = sb_header(q, "If-None-Match");
    if (inm && strcmp(inm, "*") != 0) {
        sb_s3_error(q, r, 501, "NotImplemented",
                    "A header you provided implies functionality that is not implemented "
                    "(If-None-Match takes * only on PUT)");
        return;
    }
    struct sb_s3_meta m;
    struct sb_s3_detail d = {0};
    const char *ct = sb_header(q, "Content-Type");
    int64_t now = sb_now_ms() / 1000;
    int rc =
        inm ? sb_s3store_put_if_absent(q->srv->s3, t->bucket, t->key, q->body, q->body_len, ct, now,
                                       &m, &d)
            : sb_s3store_put(q->srv->s3, t->bucket, t->key, q->body, q->body_len, ct, now, &m, &d);
    if (rc != SB_S3_OK) {
        store_error(q, r, t, rc, &d, NULL);
        return;
    }
    empty_answer(q, r, 200);
    sb_resp_header(r, "ETag", m.etag);
}

/* ETag, Last-Modified, Content-Type and the response-* overrides a signed request may ask. */
static void object_headers(struct sb_req *q, struct sb_resp *r, const struct sb_s3_meta *m)
{
    char date[40];
    sb_resp_header(r, "ETag", m->etag);
    if (sb_webhook_http_date(m->mtime, date, sizeof date) == 0)
        sb_resp_header(r, "Last-Modified", date);
    sb_resp_header(r, "Accept-Ranges", "bytes");
    char *ct = sb_sigv4_query_get(q->query, "response-content-type");
    sb_resp_header(r, "Content-Type", ct ? ct : m->content_type);
    free(ct);
    static const char *const over[][2] = {
        {"response-content-disposition", "Content-Disposition"},
        {"response-cache-control", "Cache-Control"},
    };
    for (size_t i = 0; i < sizeof over / sizeof *over; i++) {
        char *v = sb_sigv4_query_get(q->query, over[i][0]);
        if (v)
            sb_resp_header(r, over[i][1], v);
        free(v);
    }
}

static void get_object(struct sb_req *q, struct sb_resp *r, const struct target *t, bool head)
{
    struct sb_s3store *s = q->srv->s3;
    struct sb_s3_meta m;
    int rc = sb_s3store_head(s, t->bucket, t->key, &m);
    if (rc != SB_S3_OK) {
        store_error(q, r, t, rc, NULL, NULL);
        return;
    }
    const char *range = sb_header(q, "Range");
    uint64_t first = 0, last = m.size ? m.size - 1 : 0;
    int rr = sb_s3_parse_range(range, m.size, &first, &last);
    if (rr < 0) {
        struct hs_buf x;
        hs_buf_init(&x, 1024);
        xml_elem(&x, "RangeRequested", range);
        xml_elem_u64(&x, "ActualObjectSize", m.size);
        error_x(q, r, 416, "InvalidRange", "The requested range is not satisfiable",
                hs_buf_str(&x));
        hs_buf_free(&x);
        char cr[64];
        (void)snprintf(cr, sizeof cr, "bytes */%llu", (unsigned long long)m.size);
        sb_resp_header(r, "Content-Range", cr);
        return;
    }
    uint64_t len = m.size ? last - first + 1 : 0;
    char *data = NULL;
    size_t got = 0;
    if (!head) {
        rc = sb_s3store_get(s, t->bucket, t->key, first, len, &data, &got, &m);
        if (rc != SB_S3_OK) {
            store_error(q, r, t, rc, NULL, NULL);
            return;
        }
        len = got; /* the object may have been replaced meanwhile */
    }
    sb_resp_set(r, rr == 1 ? 206 : 200, NULL, data, got);
    r->head_len = head ? (size_t)len : 0;
    sb_resp_header(r, "x-amz-request-id", request_id(q));
    object_headers(q, r, &m);
    if (rr == 1) {
        char cr[96];
        (void)snprintf(cr, sizeof cr, "bytes %llu-%llu/%llu", (unsigned long long)first,
                       (unsigned long long)(first + (len ? len - 1 : 0)),
                       (unsigned long long)m.size);
        sb_resp_header(r, "Content-Range", cr);
    }
}

static void delete_object(struct sb_req *q, struct sb_resp *r, const struct target *t)
{
    int rc = sb_s3store_delete(q->srv->s3, t->bucket, t->key);
    if (rc != SB_S3_OK)
        store_error(q, r, t, rc, NULL, NULL);
    else
        empty_answer(q, r, 204);
}

/* ---- multipart uploads ---- */

static void create_upload(struct sb_req *q, struct sb_resp *r, const struct target *t)
{
    if (!key_ok(q, r, t))
        return;
    char id[SB_S3_UPLOAD_ID_SZ];
    int rc = sb_s3store_create_upload(q->srv->s3, t->bucket, t->key, sb_header(q, "Content-Type"),
                                      sb_now_ms() / 1000, id);
    if (rc != SB_S3_OK) {
        store_error(q, r, t, rc, NULL, NULL);
        return;
    }
    struct hs_buf b;
    hs_buf_init(&b, XML_MAX);
    (void)hs_buf_appends(&b, XML_HEAD "<InitiateMultipartUploadResult" XMLNS ">");
    xml_elem(&b, "Bucket", t->bucket);
    xml_elem(&b, "Key", t->key);
    xml_elem(&b, "UploadId", id);
    (void)hs_buf_appends(&b, "</InitiateMultipartUploadResult>\n");
    xml_answer(q, r, 200, &b);
}

static void upload_part(struct sb_req *q, struct sb_resp *r, const struct target *t)
{
    char *num = sb_sigv4_query_get(q->query, "partNumber");
    char *id = sb_sigv4_query_get(q->query, "uploadId");
    int64_t n = 0;
    if (!num || hs_parse_i64_range(num, 1, SB_S3_MAX_PARTS, &n) != 0) {
        struct hs_buf x;
        hs_buf_init(&x, 1024);
        xml_elem(&x, "ArgumentName", "partNumber");
        xml_elem(&x, "ArgumentValue", num);
        error_x(q, r, 400, "InvalidArgument",
                "Part number must be an integer between 1 and 10000, inclusive", hs_buf_str(&x));
        hs_buf_free(&x);
    } else if (!id) {
        error_1(q, r, 400, "InvalidArgument", "This operation needs an uploadId", "ArgumentName",
                "uploadId");
    } else {
        char etag[64];
        struct sb_s3_detail d = {0};
        int rc = sb_s3store_upload_part(q->srv->s3, t->bucket, t->key, id, (int)n, q->body,
                                        q->body_len, etag, &d);
        if (rc != SB_S3_OK) {
            store_error(q, r, t, rc, &d, id);
        } else {
            empty_answer(q, r, 200);
            sb_resp_header(r, "ETag", etag);
        }
    }
    free(num);
    free(id);
}

static void complete_upload(struct sb_req *q, struct sb_resp *r, const struct target *t)
{
    char *id = sb_sigv4_query_get(q->query, "uploadId");
    struct sb_s3_part_ref *parts = NULL;
    size_t n = 0;
    char why[160];
    if (sb_s3_parse_complete(q->body, q->body_len, &parts, &n, why, sizeof why) != 0) {
        char *msg = hs_aprintf("The XML you provided was not well-formed or did not validate "
                               "against our published schema (%s)",
                               why);
        sb_s3_error(q, r, 400, "MalformedXML", msg);
        free(msg);
        free(id);
        return;
    }
    struct sb_s3_meta m;
    struct sb_s3_detail d = {0};
    int rc = sb_s3store_complete(q->srv->s3, t->bucket, t->key, id, parts, n, sb_now_ms() / 1000,
                                 &m, &d);
    if (rc != SB_S3_OK) {
        store_error(q, r, t, rc, &d, id);
    } else {
        struct hs_buf loc, b;
        hs_buf_init(&loc, XML_MAX);
        hs_buf_init(&b, XML_MAX);
        (void)hs_buf_appendf(&loc, "%s/%s/", q->srv->s3_base, t->bucket);
        sb_sigv4_uri_encode(t->key, strlen(t->key), true, &loc);
        (void)hs_buf_appends(&b, XML_HEAD "<CompleteMultipartUploadResult" XMLNS ">");
        xml_elem(&b, "Location", hs_buf_str(&loc));
        xml_elem(&b, "Bucket", t->bucket);
        xml_elem(&b, "Key", t->key);
        xml_elem(&b, "ETag", m.etag);
        (void)hs_buf_appends(&b, "</CompleteMultipartUploadResult>\n");
        xml_answer(q, r, 200, &b);
        hs_buf_free(&loc);
    }
    free(parts);
    free(id);
}

static void abort_upload(struct sb_req *q, struct sb_resp *r, const struct target *t)
{
    char *id = sb_sigv4_query_get(q->query, "uploadId");
    int rc = sb_s3store_abort(q->srv->s3, t->bucket, t->key, id);
    if (rc != SB_S3_OK)
        store_error(q, r, t, rc, NULL, id);
    else
        empty_answer(q, r, 204);
    free(id);
}

/* ---- dispatch ---- */

static void dispatch(struct sb_req *q, struct sb_resp *r, const struct target *t, enum op op)
{
    /* S3 stores a body whose length it is told beforehand: chunked uploads need aws-chunked. */
    if ((op == OP_PUT || op == OP_UPLOAD_PART) && !sb_header(q, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
        sb_s3_error(q, r, 411, "MissingContentLength",
                    "You must provide the Content-Length HTTP header.");
        return;
    }
    switch (op) {
    case OP_LIST_BUCKETS:
        list_buckets(q, r);
        break;
    case OP_CREATE_BUCKET:
    case OP_HEAD_BUCKET:
    case OP_DELETE_BUCKET:
        bucket_op(q, r, t, op);
        break;
    case OP_LIST_V2:
    case OP_LIST_V1:
        list_objects(q, r, t, op == OP_LIST_V2);
        break;
    case OP_PUT:
        put_object(q, r, t);
        break;
    case OP_GET:
    case OP_HEAD:
        get_object(q, r, t, op == OP_HEAD);
        break;
    case OP_DELETE:
        delete_object(q, r, t);
        break;
    case OP_CREATE_MPU:
        create_upload(q, r, t);
        break;
    case OP_UPLOAD_PART:
        upload_part(q, r, t);
        break;
    case OP_COMPLETE_MPU:
        complete_upload(q, r, t);
        break;
    case OP_ABORT_MPU:
        abort_upload(q, r, t);
        break;
    case OP_BAD_METHOD:
        sb_s3_error(q, r, 405, "MethodNotAllowed",
                    "The specified method is not allowed against this resource.");
        break;
    default:
        sb_s3_error(q, r, 501, "NotImplemented",
                    "A header or query you provided implies functionality that is not "
                    "implemented");
    }
}

void sb_route_s3(struct sb_req *q, struct sb_resp *r)
{
    struct target t;
    const char *name;
    struct sb_sigv4_result a;
    memset(&a, 0, sizeof a);
    parse_target(q->raw_path, &t);
    enum op op = classify(q, &t, &name);
    if (op == OP_BAD_PATH)
        sb_s3_error(q, r, 400, "InvalidURI", "Couldn't parse the specified URI.");
    else if (authenticate(q, r, &a) == 0 && check_payload(q, r, a.payload_hash) == 0)
        dispatch(q, r, &t, op);
    sb_sigv4_result_clear(&a);
    target_clear(&t);
}

/* ---- for server.c and the admin routes ---- */

const char *sb_s3_prepare(struct sb_req *q)
{
    struct target t;
    const char *name;
    unsigned char rnd[8];
    char id[17];
    parse_target(q->raw_path, &t);
    (void)classify(q, &t, &name);
    sb_random_bytes(rnd, sizeof rnd);
    hs_hex(rnd, sizeof rnd, id);
    for (char *p = id; *p; p++)
        *p = (char)(*p >= 'a' ? *p - 'a' + 'A' : *p);
    json_decref(q->log_extra);
    q->log_extra = json_pack("{ss so so ss ss sI}", "op", name, "bucket", hs_json_text(t.bucket),
                             "key", hs_json_text(t.key), "auth_type", "none", "request_id", id,
                             "request_bytes", (json_int_t)q->body_len);
    (void)json_object_set_new(q->log_extra, "s3_error", json_null());
    target_clear(&t);
    return name;
}

void sb_s3_access_key(const struct sb_req *q, char *out, size_t n)
{
    const char *auth = sb_header(q, MHD_HTTP_HEADER_AUTHORIZATION);
    char *cred = NULL;
    const char *c = auth ? strstr(auth, "Credential=") : NULL;
    if (c)
        cred = hs_strdup(c + strlen("Credential="));
    else
        cred = sb_sigv4_query_get(q->query, "X-Amz-Credential");
    out[0] = '\0';
    if (cred) {
        cred[strcspn(cred, "/, ")] = '\0';
        (void)hs_strlcpy(out, cred, n);
    }
    free(cred);
}

size_t sb_s3_body_max(const struct sb_server *s)
{
    uint64_t max = s->cfg.s3.store.capacity;
    if (max > SB_S3_SINGLE_MAX)
        max = SB_S3_SINGLE_MAX;
    return max > SIZE_MAX - 1 ? SIZE_MAX - 1 : (size_t)max;
}

char *sb_s3_redact_query(const char *raw)
{
    static const char token[] = "X-Amz-Security-Token=";
    struct hs_buf b;
    hs_buf_init(&b, 4 * strlen(raw) + 64);
    const char *p = raw;
    while (*p) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len >= sizeof token - 1 && !strncmp(p, token, sizeof token - 1))
            (void)hs_buf_appends(&b, "X-Amz-Security-Token=REDACTED");
        else
            (void)hs_buf_append(&b, p, len);
        if (!end)
            break;
        (void)hs_buf_append(&b, "&", 1);
        p = end + 1;
    }
    return hs_buf_take(&b, NULL);
}

void sb_admin_s3(struct sb_req *q, struct sb_resp *r)
{
    struct sb_server *s = q->srv;
    if (strcmp(q->method, "GET") != 0 && strcmp(q->method, "HEAD") != 0) {
        sb_resp_error(r, 405, "Method not allowed");
        sb_resp_header(r, "Allow", "GET, HEAD");
        return;
    }
    if (!s->s3) {
        sb_resp_error(r, 404, "The S3 listener is off (start the sandbox with --s3-listen)");
        return;
    }
    json_t *j = sb_s3store_json(s->s3);
    (void)json_object_set_new(j, "url", json_string(s->s3_base));
    (void)json_object_set_new(j, "region", json_string(s->cfg.s3.region));
    (void)json_object_set_new(j, "access_key", json_string(s->cfg.s3.access_key));
    sb_resp_json(r, 200, j);
}
