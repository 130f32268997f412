/* test_s3.c: the S3 client (store/s3.c) against the sandbox's S3 listener, which verifies every
 * signature exactly: objects put, read, listed and deleted; multipart uploads above the part
 * size; retries through the listener's faults (5xx, slow, dropped, truncated answers); failures
 * that leave no object; presigned URLs, checked against AWS's published example and accepted by
 * the listener. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "core/mem.h"
#include "core/str.h"
#include "s3_sandbox.h"
#include "store/s3.h"

struct fixture {
    struct s3_sandbox sb;
    struct hs_s3 *s3;
    char path[64];
    int fd;
};

static struct hs_s3 *client(const struct s3_sandbox *sb, const char *token, int attempts)
{
    struct hs_s3_config c = {.endpoint = sb->endpoint,
                             .bucket = S3_SANDBOX_BUCKET,
                             .prefix = "fleet/a",
                             .access_key = S3_SANDBOX_KEY,
                             .secret_key = S3_SANDBOX_SECRET,
                             .session_token = token,
                             .part_size = 1024,
                             .max_attempts = attempts,
                             .retry_base_ms = 10};
    struct hs_s3 *s = NULL;
    struct hs_error err = {0};
    int rc = hs_s3_new(&c, &s, &err);
    if (rc)
        fprintf(stderr, "hs_s3_new: %s\n", err.msg);
    return s;
}

static int setup(void **state)
{
    struct fixture *f = hs_calloc(1, sizeof *f);
    if (s3_sandbox_start(&f->sb, NULL) != 0)
        return -1;
    f->s3 = client(&f->sb, NULL, 4);
    snprintf(f->path, sizeof f->path, "/tmp/hs-s3-test-XXXXXX");
    f->fd = mkstemp(f->path);
    *state = f;
    return f->s3 && f->fd >= 0 ? 0 : -1;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    hs_s3_free(f->s3);
    s3_sandbox_stop(&f->sb);
    close(f->fd);
    unlink(f->path);
    free(f);
    return 0;
}

/* Fills the fixture's file with n bytes of a pattern and gives their hex SHA-256. */
static void fill(struct fixture *f, size_t n, char sha[65])
{
    char *b = hs_malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        b[i] = (char)('a' + (i * 7 + i / 13) % 26);
    assert_int_equal(ftruncate(f->fd, 0), 0);
    assert_int_equal(pwrite(f->fd, b, n, 0), (ssize_t)n);
    unsigned char d[32];
    unsigned int dl = 0;
    EVP_Digest(b, n, d, &dl, EVP_sha256(), NULL);
    hs_hex(d, 32, sha);
    free(b);
}

/* The object's bytes equal the file's. */
static void assert_object_is_file(struct fixture *f, const char *key, size_t n)
{
    int64_t size = -1;
    assert_int_equal(hs_s3_head(f->s3, key, &size, NULL), HS_OK);
    assert_int_equal(size, (int64_t)n);
    char *want = hs_malloc(n + 1), *got = hs_malloc(n + 1);
    assert_int_equal(pread(f->fd, want, n, 0), (ssize_t)n);
    struct hs_error err = {0};
    assert_int_equal(hs_s3_get_range(f->s3, key, 0, n, got, &err), HS_OK);
    assert_memory_equal(want, got, n);
    /* A range in the middle. */
    if (n > 100) {
        assert_int_equal(hs_s3_get_range(f->s3, key, 50, 40, got, NULL), HS_OK);
        assert_memory_equal(want + 50, got, 40);
    }
    free(want);
    free(got);
}

static void test_put_head_get_delete(void **state)
{
    struct fixture *f = *state;
    char sha[65];
    fill(f, 700, sha);
    char *key = hs_s3_key(f->s3, "blobs/x/one");
    assert_string_equal(key, "fleet/a/blobs/x/one");
    struct hs_error err = {0};
    assert_int_equal(hs_s3_put_file(f->s3, key, f->fd, 700, sha, &err), HS_OK);
    assert_object_is_file(f, key, 700);
    assert_int_equal(s3_sandbox_count(&f->sb, "PutObject"), 1);
    assert_int_equal(s3_sandbox_count(&f->sb, "CreateMultipartUpload"), 0);
    assert_int_equal(hs_s3_delete(f->s3, key, NULL), HS_OK);
    int64_t size;
    assert_int_equal(hs_s3_head(f->s3, key, &size, &err), HS_ERR_NOT_FOUND);
    assert_int_equal(hs_s3_delete(f->s3, key, NULL), HS_OK); /* gone already: fine */
    free(key);
}

static void test_empty_object(void **state)
{
    struct fixture *f = *state;
    char sha[65];
    fill(f, 0, sha);
    assert_string_equal(sha, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_int_equal(hs_s3_put_file(f->s3, "empty", f->fd, 0, sha, NULL), HS_OK);
    int64_t size = -1;
    assert_int_equal(hs_s3_head(f->s3, "empty", &size, NULL), HS_OK);
    assert_int_equal(size, 0);
}

static void test_multipart_above_the_part_size(void **state)
{
    struct fixture *f = *state;
    char sha[65];
    fill(f, 5000, sha); /* 1024 * 4 + 904: five parts */
    struct hs_error err = {0};
    assert_int_equal(hs_s3_put_file(f->s3, "big", f->fd, 5000, sha, &err), HS_OK);
    assert_int_equal(s3_sandbox_count(&f->sb, "CreateMultipartUpload"), 1);
    assert_int_equal(s3_sandbox_count(&f->sb, "UploadPart"), 5);
    assert_int_equal(s3_sandbox_count(&f->sb, "CompleteMultipartUpload"), 1);
    assert_int_equal(s3_sandbox_count(&f->sb, "PutObject"), 0);
    assert_object_is_file(f, "big", 5000);
}

static void test_session_token_is_sent_and_signed(void **state)
{
    (void)state;
    struct s3_sandbox sb;
    assert_int_equal(s3_sandbox_start(&sb, "FwoGZXIvYXdzEXAMPLE/token+="), 0);
    struct hs_s3 *with = client(&sb, "FwoGZXIvYXdzEXAMPLE/token+=", 1);
    struct hs_s3 *without = client(&sb, NULL, 1);
    int64_t size;
    struct hs_error err = {0};
    assert_int_equal(hs_s3_head(with, "none", &size, &err), HS_ERR_NOT_FOUND);
    assert_int_equal(hs_s3_head(without, "none", &size, &err), HS_ERR_FORBIDDEN);
    /* A presigned URL carries the token too. */
    char *url = NULL;
    assert_int_equal(hs_s3_presign_get(with, "none", NULL, time(NULL), 60, &url, NULL), HS_OK);
    char body[512];
    assert_int_equal(s3_sandbox_http_get(url, body, sizeof body, NULL), 404);
    assert_non_null(strstr(body, "NoSuchKey"));
    free(url);
    hs_s3_free(with);
    hs_s3_free(without);
    s3_sandbox_stop(&sb);
}

/* Fault rules that match the same request all spend their count on it: one at a time. */
static void one_fault(struct fixture *f, const char *rule)
{
    assert_int_equal(s3_sandbox_fault(&f->sb, NULL), 0);
    assert_int_equal(s3_sandbox_fault(&f->sb, rule), 0);
}

/* 5xx twice, or a dropped connection, on the way in: the upload still lands, whole. */
static void test_upload_retries_through_faults(void **state)
{
    struct fixture *f = *state;
    char sha[65];
    fill(f, 900, sha);
    struct hs_error err = {0};
    one_fault(f, "{\"op\":\"PutObject\",\"status\":503,\"count\":2}");
    assert_int_equal(hs_s3_put_file(f->s3, "retried", f->fd, 900, sha, &err), HS_OK);
    assert_int_equal(s3_sandbox_count(&f->sb, "PutObject"), 3);
    assert_object_is_file(f, "retried", 900);
    one_fault(f, "{\"op\":\"PutObject\",\"drop\":true,\"count\":1}");
    assert_int_equal(hs_s3_put_file(f->s3, "dropped", f->fd, 900, sha, &err), HS_OK);
    assert_int_equal(s3_sandbox_count(&f->sb, "PutObject"), 5);
    assert_object_is_file(f, "dropped", 900);
    /* A confirmation that comes slowly is waited for. */
    one_fault(f, "{\"op\":\"HeadObject\",\"latency_ms\":300,\"count\":1}");
    assert_int_equal(hs_s3_put_file(f->s3, "slow", f->fd, 900, sha, &err), HS_OK);

    fill(f, 3000, sha);
    one_fault(f, "{\"op\":\"UploadPart\",\"status\":500,\"count\":1}");
    assert_int_equal(hs_s3_put_file(f->s3, "retried-big", f->fd, 3000, sha, &err), HS_OK);
    assert_int_equal(s3_sandbox_count(&f->sb, "UploadPart"), 4);
    assert_object_is_file(f, "retried-big", 3000);
    one_fault(f, "{\"op\":\"UploadPart\",\"drop\":true,\"count\":1}");
    assert_int_equal(hs_s3_put_file(f->s3, "dropped-big", f->fd, 3000, sha, &err), HS_OK);
    assert_object_is_file(f, "dropped-big", 3000);
    /* The answer to Complete is lost once: the retry finds the upload gone, the HEAD decides. */
    one_fault(f, "{\"op\":\"CompleteMultipartUpload\",\"truncate\":true,\"count\":1}");
    assert_int_equal(hs_s3_put_file(f->s3, "completed-big", f->fd, 3000, sha, &err), HS_OK);
    assert_object_is_file(f, "completed-big", 3000);
}

/* Short answers (cut connections, and a well-formed answer of half the bytes) are read again. */
static void test_reads_retry_short_answers(void **state)
{
    struct fixture *f = *state;
    char sha[65];
    fill(f, 800, sha);
    assert_int_equal(hs_s3_put_file(f->s3, "read", f->fd, 800, sha, NULL), HS_OK);
    char got[800], want[800];
    assert_int_equal(pread(f->fd, want, 800, 0), 800);
    static const char *const faults[] = {
        "{\"op\":\"GetObject\",\"truncate\":true,\"count\":1}",
        "{\"op\":\"GetObject\",\"malformed\":true,\"count\":1}",
        "{\"op\":\"GetObject\",\"status\":503,\"count\":1}",
        "{\"op\":\"GetObject\",\"drop\":true,\"count\":1}",
        "{\"op\":\"GetObject\",\"latency_ms\":300,\"count\":1}",
    };
    for (size_t i = 0; i < sizeof faults / sizeof *faults; i++) {
        one_fault(f, faults[i]);
        int before = s3_sandbox_count(&f->sb, "GetObject");
        memset(got, 0, sizeof got);
        struct hs_error err = {0};
        assert_int_equal(hs_s3_get_range(f->s3, "read", 0, 800, got, &err), HS_OK);
        assert_memory_equal(got, want, 800);
        /* The slow answer is waited for; the others cost one more request. */
        assert_int_equal(s3_sandbox_count(&f->sb, "GetObject") - before, i == 4 ? 1 : 2);
    }
}

/* A store that keeps failing: the error says so, and no object is left under the name. */
static void test_failed_uploads_leave_no_object(void **state)
{
    struct fixture *f = *state;
    char sha[65];
    fill(f, 600, sha);
    assert_int_equal(s3_sandbox_fault(&f->sb, "{\"op\":\"PutObject\",\"status\":500}"), 0);
    struct hs_error err = {0};
    assert_int_equal(hs_s3_put_file(f->s3, "never", f->fd, 600, sha, &err), HS_ERR_SERVER);
    assert_non_null(strstr(err.msg, "InternalError"));
    assert_int_equal(s3_sandbox_count(&f->sb, "PutObject"), 4); /* every attempt */
    int64_t size;
    assert_int_equal(hs_s3_head(f->s3, "never", &size, NULL), HS_ERR_NOT_FOUND);

    /* Multipart: the upload is aborted, its parts dropped. */
    fill(f, 2500, sha);
    assert_int_equal(s3_sandbox_fault(&f->sb, "{\"op\":\"CompleteMultipartUpload\",\"drop\":true}"),
                     0);
    assert_int_not_equal(hs_s3_put_file(f->s3, "never-big", f->fd, 2500, sha, &err), HS_OK);
    assert_int_equal(s3_sandbox_count(&f->sb, "AbortMultipartUpload"), 1);
    assert_int_equal(hs_s3_head(f->s3, "never-big", &size, NULL), HS_ERR_NOT_FOUND);

    /* A body whose digest is not the one announced is refused, and stored nowhere. */
    assert_int_equal(s3_sandbox_fault(&f->sb, NULL), 0);
    fill(f, 100, sha);
    sha[0] = sha[0] == '0' ? '1' : '0';
    assert_int_equal(hs_s3_put_file(f->s3, "lie", f->fd, 100, sha, &err), HS_ERR_HTTP);
    assert_non_null(strstr(err.msg, "XAmzContentSHA256Mismatch"));
    assert_int_equal(hs_s3_head(f->s3, "lie", &size, NULL), HS_ERR_NOT_FOUND);
}

static void test_wrong_secret_is_refused(void **state)
{
    struct fixture *f = *state;
    struct hs_s3_config c = {.endpoint = f->sb.endpoint,
                             .bucket = S3_SANDBOX_BUCKET,
                             .access_key = S3_SANDBOX_KEY,
                             .secret_key = "not-the-secret",
                             .max_attempts = 3};
    struct hs_s3 *s = NULL;
    assert_int_equal(hs_s3_new(&c, &s, NULL), HS_OK);
    int64_t size;
    struct hs_error err = {0};
    assert_int_equal(hs_s3_head(s, "x", &size, &err), HS_ERR_FORBIDDEN);
    assert_null(strstr(err.msg, "not-the-secret"));
    assert_int_equal(s3_sandbox_count(&f->sb, "HeadObject"), 1); /* not retried */
    hs_s3_free(s);
}

/* AWS's published example of a presigned URL ("Authenticating Requests: Using Query
 * Parameters", Signature Version 4): GET /test.txt of examplebucket, 24 hours. */
static void test_presign_matches_aws_example(void **state)
{
    (void)state;
    struct hs_sigv4_presign p = {.method = "GET",
                                 .host = "examplebucket.s3.amazonaws.com",
                                 .path = "/test.txt",
                                 .region = "us-east-1",
                                 .service = "s3",
                                 .access_key = "AKIAIOSFODNN7EXAMPLE",
                                 .secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                                 .time_s = 1369353600, /* 2013-05-24T00:00:00Z */
                                 .expires_s = 86400};
    char *q = hs_sigv4_presign_query(&p);
    assert_string_equal(
        q, "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2F"
           "us-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&"
           "X-Amz-SignedHeaders=host&X-Amz-Signature="
           "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
    free(q);
}

static void test_presigned_url_is_accepted(void **state)
{
    struct fixture *f = *state;
    char sha[65];
    fill(f, 300, sha);
    char *key = hs_s3_key(f->s3, "blobs/aa/bb/doc");
    assert_int_equal(hs_s3_put_file(f->s3, key, f->fd, 300, sha, NULL), HS_OK);
    char *url = NULL;
    assert_int_equal(hs_s3_presign_get(f->s3, key, "application/pdf", time(NULL), 120, &url, NULL),
                     HS_OK);
    char body[512], ctype[128], want[300];
    assert_int_equal(s3_sandbox_http_get(url, body, sizeof body, ctype), 200);
    assert_int_equal(pread(f->fd, want, 300, 0), 300);
    assert_memory_equal(body, want, 300);
    assert_string_equal(ctype, "application/pdf");
    /* Expired: refused. */
    free(url);
    assert_int_equal(hs_s3_presign_get(f->s3, key, NULL, time(NULL) - 3600, 60, &url, NULL), HS_OK);
    assert_int_equal(s3_sandbox_http_get(url, body, sizeof body, NULL), 403);
    free(url);
    free(key);
}

static void test_bad_configuration_is_refused(void **state)
{
    (void)state;
    struct hs_s3 *s = NULL;
    struct hs_error err = {0};
    struct hs_s3_config c = {.bucket = "Bad_Bucket", .access_key = "a", .secret_key = "b"};
    assert_int_equal(hs_s3_new(&c, &s, &err), HS_ERR_INVALID);
    c.bucket = "good-bucket";
    c.prefix = "a b";
    assert_int_equal(hs_s3_new(&c, &s, &err), HS_ERR_INVALID);
    c.prefix = "ok/prefix";
    c.secret_key = NULL;
    assert_int_equal(hs_s3_new(&c, &s, &err), HS_ERR_NO_CREDENTIALS);
    c.secret_key = "b";
    c.endpoint = "ftp://x";
    assert_int_equal(hs_s3_new(&c, &s, &err), HS_ERR_INVALID);
    char *bucket = NULL, *prefix = NULL;
    assert_int_equal(hs_s3_parse_url("s3://my-bucket/a/b/", &bucket, &prefix, NULL), HS_OK);
    assert_string_equal(bucket, "my-bucket");
    assert_string_equal(prefix, "a/b");
    free(bucket);
    free(prefix);
    assert_int_equal(hs_s3_parse_url("s3://my-bucket", &bucket, &prefix, NULL), HS_OK);
    assert_string_equal(prefix, "");
    free(bucket);
    free(prefix);
    assert_int_equal(hs_s3_parse_url("http://my-bucket/x", &bucket, &prefix, &err), HS_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presign_matches_aws_example),
        cmocka_unit_test(test_bad_configuration_is_refused),
        cmocka_unit_test(test_session_token_is_sent_and_signed),
        cmocka_unit_test_setup_teardown(test_put_head_get_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_object, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multipart_above_the_part_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upload_retries_through_faults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reads_retry_short_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_uploads_leave_no_object, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_secret_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_presigned_url_is_accepted, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
