/* test_s3store.c: the S3 listener's object store (ETags, capacity, listing, multipart checks,
 * the directory form surviving a restart) and its parsers (CompleteMultipartUpload XML, Range,
 * bucket names, payload hash values, Content-MD5).
 *
 * Expected digests were computed with Python's hashlib, independently of this code:
 *   md5(b"hello").hexdigest()                                  5d41402abc4b2a76b9719d911017c592
 *   base64(md5(b"hello").digest())                             XUFAKrxLKna5cZ2REBfFkg==
 *   md5(md5(b"aaaa").digest() + md5(b"b").digest()).hexdigest() + "-2"
 *                                                              1c0de90ae8f336732437c692476f5803-2
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/mem.h"
#include "s3parse.h"
#include "s3store.h"

#define NOW 1795773600

static struct sb_s3store *mem_store(uint64_t capacity, uint64_t min_part)
{
    struct sb_s3_config cfg = {capacity, min_part, NULL};
    char err[128];
    struct sb_s3store *s = sb_s3store_new(&cfg, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(sb_s3store_create_bucket(s, "bkt", NOW), SB_S3_OK);
    return s;
}

static char *get_all(struct sb_s3store *s, const char *key, size_t *len)
{
    char *data = NULL;
    struct sb_s3_meta m;
    assert_int_equal(sb_s3store_get(s, "bkt", key, 0, UINT64_MAX, &data, len, &m), SB_S3_OK);
    return data;
}

static void test_objects(void **state)
{
    (void)state;
    struct sb_s3store *s = mem_store(1 << 20, 4);
    struct sb_s3_meta m;
    assert_int_equal(
        sb_s3store_put(s, "bkt", "dir/hello.txt", "hello", 5, "text/plain", NOW, &m, NULL),
        SB_S3_OK);
    assert_string_equal(m.etag, "\"5d41402abc4b2a76b9719d911017c592\"");
    assert_int_equal(m.size, 5);
    assert_int_equal(sb_s3store_head(s, "bkt", "dir/hello.txt", &m), SB_S3_OK);
    assert_string_equal(m.content_type, "text/plain");
    assert_int_equal(m.mtime, NOW);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(sb_s3store_get(s, "bkt", "dir/hello.txt", 1, 3, &data, &len, &m), SB_S3_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(data, "ell", 3);
    free(data);
    assert_int_equal(sb_s3store_head(s, "bkt", "nope", &m), SB_S3_NO_SUCH_KEY);
    assert_int_equal(sb_s3store_head(s, "other", "dir/hello.txt", &m), SB_S3_NO_SUCH_BUCKET);
    assert_int_equal(sb_s3store_put(s, "other", "k", "x", 1, NULL, NOW, &m, NULL),
                     SB_S3_NO_SUCH_BUCKET);
    assert_int_equal(sb_s3store_create_bucket(s, "bkt", NOW), SB_S3_BUCKET_EXISTS);
    assert_int_equal(sb_s3store_delete_bucket(s, "bkt"), SB_S3_BUCKET_NOT_EMPTY);
    /* An empty object, and deleting what is not there. */
    assert_int_equal(sb_s3store_put(s, "bkt", "empty", "", 0, NULL, NOW, &m, NULL), SB_S3_OK);
    assert_string_equal(m.etag, "\"d41d8cd98f00b204e9800998ecf8427e\"");
    assert_string_equal(m.content_type, "binary/octet-stream");
    assert_int_equal(sb_s3store_delete(s, "bkt", "never"), SB_S3_OK);
    assert_int_equal(sb_s3store_delete(s, "bkt", "empty"), SB_S3_OK);
    assert_int_equal(sb_s3store_delete(s, "bkt", "dir/hello.txt"), SB_S3_OK);
    assert_int_equal(sb_s3store_delete_bucket(s, "bkt"), SB_S3_OK);
    assert_false(sb_s3store_bucket_exists(s, "bkt"));
    sb_s3store_free(s);
}

static void test_capacity(void **state)
{
    (void)state;
    struct sb_s3store *s = mem_store(10, 1);
    struct sb_s3_meta m;
    struct sb_s3_detail d = {0};
    assert_int_equal(sb_s3store_put(s, "bkt", "a", "123456", 6, NULL, NOW, &m, &d), SB_S3_OK);
    assert_int_equal(sb_s3store_put(s, "bkt", "b", "12345", 5, NULL, NOW, &m, &d), SB_S3_FULL);
    assert_non_null(strstr(d.msg, "6 of 10 bytes"));
    assert_int_equal(d.needed, 5);
    /* Refused means unchanged. */
    assert_int_equal(sb_s3store_head(s, "bkt", "b", &m), SB_S3_NO_SUCH_KEY);
    /* Replacing an object frees its old bytes first. */
    assert_int_equal(sb_s3store_put(s, "bkt", "a", "123456789", 9, NULL, NOW, &m, &d), SB_S3_OK);
    /* Parts count too. */
    char id[SB_S3_UPLOAD_ID_SZ], etag[64];
    assert_int_equal(sb_s3store_create_upload(s, "bkt", "big", NULL, NOW, id), SB_S3_OK);
    assert_int_equal(sb_s3store_upload_part(s, "bkt", "big", id, 1, "xx", 2, etag, &d), SB_S3_FULL);
    assert_int_equal(sb_s3store_upload_part(s, "bkt", "big", id, 1, "x", 1, etag, &d), SB_S3_OK);
    assert_int_equal(sb_s3store_delete(s, "bkt", "a"), SB_S3_OK);
    assert_int_equal(sb_s3store_upload_part(s, "bkt", "big", id, 2, "123456789", 9, etag, &d),
                     SB_S3_OK);
    json_t *j = sb_s3store_json(s);
    assert_int_equal(json_integer_value(json_object_get(j, "used")), 10);
    json_decref(j);
    assert_int_equal(sb_s3store_abort(s, "bkt", "big", id), SB_S3_OK);
    j = sb_s3store_json(s);
    assert_int_equal(json_integer_value(json_object_get(j, "used")), 0);
    json_decref(j);
    sb_s3store_free(s);
}

static void test_multipart(void **state)
{
    (void)state;
    struct sb_s3store *s = mem_store(1 << 20, 4);
    char id[SB_S3_UPLOAD_ID_SZ], e1[64], e2[64], e3[64];
    struct sb_s3_detail d = {0};
    struct sb_s3_meta m;
    assert_int_equal(sb_s3store_create_upload(s, "bkt", "obj", "application/pdf", NOW, id),
                     SB_S3_OK);
    assert_int_equal(strlen(id), 32);
    assert_int_equal(sb_s3store_upload_part(s, "bkt", "obj", id, 2, "b", 1, e2, &d), SB_S3_OK);
    assert_int_equal(sb_s3store_upload_part(s, "bkt", "obj", id, 1, "zzzz", 4, e1, &d), SB_S3_OK);
    /* A part sent again replaces the first copy. */
    assert_int_equal(sb_s3store_upload_part(s, "bkt", "obj", id, 1, "aaaa", 4, e1, &d), SB_S3_OK);
    assert_int_equal(sb_s3store_upload_part(s, "bkt", "obj", id, 3, "cc", 2, e3, &d), SB_S3_OK);
    assert_int_equal(sb_s3store_upload_part(s, "bkt", "obj", "nope", 1, "a", 1, e3, &d),
                     SB_S3_NO_SUCH_UPLOAD);
    assert_int_equal(sb_s3store_upload_part(s, "bkt", "other", id, 1, "a", 1, e3, &d),
                     SB_S3_NO_SUCH_UPLOAD);

    struct sb_s3_part_ref refs[2] = {{1, ""}, {2, ""}};
    memcpy(refs[0].etag, e1 + 1, 32); /* without the quotes, as the parser gives them */
    memcpy(refs[1].etag, e2 + 1, 32);
    struct sb_s3_part_ref swapped[2] = {refs[1], refs[0]};
    assert_int_equal(sb_s3store_complete(s, "bkt", "obj", id, swapped, 2, NOW, &m, &d),
                     SB_S3_INVALID_PART_ORDER);
    struct sb_s3_part_ref wrong[2] = {refs[0], refs[1]};
    wrong[1].etag[0] = wrong[1].etag[0] == 'a' ? 'b' : 'a';
    assert_int_equal(sb_s3store_complete(s, "bkt", "obj", id, wrong, 2, NOW, &m, &d),
                     SB_S3_INVALID_PART);
    assert_int_equal(d.part, 2);
    struct sb_s3_part_ref missing[2] = {refs[0], {7, ""}};
    memcpy(missing[1].etag, refs[1].etag, sizeof refs[1].etag);
    assert_int_equal(sb_s3store_complete(s, "bkt", "obj", id, missing, 2, NOW, &m, &d),
                     SB_S3_INVALID_PART);
    /* Part 2 (1 byte) is not the last here: too small. */
    struct sb_s3_part_ref three[3] = {refs[0], refs[1], {3, ""}};
    memcpy(three[2].etag, e3 + 1, 32);
    assert_int_equal(sb_s3store_complete(s, "bkt", "obj", id, three, 3, NOW, &m, &d),
                     SB_S3_TOO_SMALL);
    assert_int_equal(d.part, 2);
    assert_non_null(strstr(d.msg, "needs 4"));
    /* Failures changed nothing: the right list completes, part 3 is dropped. */
    assert_int_equal(sb_s3store_complete(s, "bkt", "obj", id, refs, 2, NOW, &m, &d), SB_S3_OK);
    assert_string_equal(m.etag, "\"1c0de90ae8f336732437c692476f5803-2\"");
    assert_int_equal(m.size, 5);
    size_t len;
    char *data = get_all(s, "obj", &len);
    assert_int_equal(len, 5);
    assert_memory_equal(data, "aaaab", 5);
    free(data);
    assert_int_equal(sb_s3store_head(s, "bkt", "obj", &m), SB_S3_OK);
    assert_string_equal(m.content_type, "application/pdf");
    assert_int_equal(sb_s3store_abort(s, "bkt", "obj", id), SB_S3_NO_SUCH_UPLOAD);
    json_t *j = sb_s3store_json(s);
    assert_int_equal(json_integer_value(json_object_get(j, "used")), 5);
    json_decref(j);
    sb_s3store_free(s);
}

static void expect_list(struct sb_s3store *s, const char *prefix, const char *delim,
                        const char *after, size_t max, const char *want, bool truncated)
{
    struct sb_s3_list_query q = {prefix, delim, after, max};
    struct sb_s3_list l;
    assert_int_equal(sb_s3store_list(s, "bkt", &q, &l), SB_S3_OK);
    struct hs_buf got;
    hs_buf_init(&got, 4096);
    for (size_t i = 0; i < l.n; i++)
        (void)hs_buf_appendf(&got, "%s%s%s", i ? "," : "", l.items[i].key,
                             l.items[i].is_prefix ? "*" : "");
    print_message("prefix=%s delim=%s after=%s max=%zu: %s\n", prefix, delim ? delim : "",
                  after ? after : "", max, hs_buf_str(&got));
    assert_string_equal(hs_buf_str(&got), want);
    hs_buf_free(&got);
    assert_int_equal(l.truncated, truncated);
    if (truncated)
        assert_string_equal(l.next_after, l.items[l.n - 1].key);
    sb_s3_list_clear(&l);
}

static void test_list(void **state)
{
    (void)state;
    struct sb_s3store *s = mem_store(1 << 20, 4);
    const char *keys[] = {"c/d", "a/c", "b", "a/b", "a", "a/b/x", "ab"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        assert_int_equal(sb_s3store_put(s, "bkt", keys[i], "x", 1, NULL, NOW, NULL, NULL),
                         SB_S3_OK);
    expect_list(s, "", NULL, NULL, 1000, "a,a/b,a/b/x,a/c,ab,b,c/d", false);
    expect_list(s, "a/", NULL, NULL, 1000, "a/b,a/b/x,a/c", false);
    expect_list(s, "a/b", NULL, NULL, 1000, "a/b,a/b/x", false);
    expect_list(s, "zz", NULL, NULL, 1000, "", false);
    expect_list(s, "", NULL, NULL, 3, "a,a/b,a/b/x", true);
    expect_list(s, "", NULL, "a/b/x", 3, "a/c,ab,b", true);
    expect_list(s, "", NULL, "b", 3, "c/d", false);
    expect_list(s, "", "/", NULL, 1000, "a,a/*,ab,b,c/*", false);
    expect_list(s, "", "/", NULL, 2, "a,a/*", true);
    expect_list(s, "", "/", "a/", 2, "ab,b", true);
    expect_list(s, "a/", "/", NULL, 1000, "a/b,a/b/*,a/c", false);
    expect_list(s, "a", NULL, "a/b", 1000, "a/b/x,a/c,ab", false);
    expect_list(s, "", NULL, NULL, 0, "", false);
    sb_s3store_free(s);
}

static void test_directory(void **state)
{
    (void)state;
    char dir[] = "/tmp/hs-s3store-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[128];
    (void)snprintf(sub, sizeof sub, "%s/store", dir);
    struct sb_s3_config cfg = {1 << 20, 4, sub};
    char err[128];
    struct sb_s3store *s = sb_s3store_new(&cfg, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(sb_s3store_create_bucket(s, "bkt", NOW), SB_S3_OK);
    struct sb_s3_meta m;
    assert_int_equal(sb_s3store_put(s, "bkt", "k/1", "hello", 5, "text/plain", NOW, &m, NULL),
                     SB_S3_OK);
    assert_int_equal(sb_s3store_put(s, "bkt", "k/2", "gone", 4, NULL, NOW, &m, NULL), SB_S3_OK);
    assert_int_equal(sb_s3store_delete(s, "bkt", "k/2"), SB_S3_OK);
    char id[SB_S3_UPLOAD_ID_SZ], e1[64], e2[64];
    assert_int_equal(sb_s3store_create_upload(s, "bkt", "mp", NULL, NOW, id), SB_S3_OK);
    assert_int_equal(sb_s3store_upload_part(s, "bkt", "mp", id, 1, "aaaa", 4, e1, NULL), SB_S3_OK);
    assert_int_equal(sb_s3store_upload_part(s, "bkt", "mp", id, 2, "b", 1, e2, NULL), SB_S3_OK);
    struct sb_s3_part_ref refs[2] = {{1, ""}, {2, ""}};
    memcpy(refs[0].etag, e1 + 1, 32);
    memcpy(refs[1].etag, e2 + 1, 32);
    assert_int_equal(sb_s3store_complete(s, "bkt", "mp", id, refs, 2, NOW, &m, NULL), SB_S3_OK);
    assert_int_equal(sb_s3store_create_bucket(s, "empty-bucket", NOW), SB_S3_OK);
    sb_s3store_free(s);

    /* Debris a crash could leave: a temporary file and a cut object file. */
    char path[256];
    (void)snprintf(path, sizeof path, "%s/bkt/%064d.tmp", sub, 0);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("half", f);
    fclose(f);
    (void)snprintf(path, sizeof path, "%s/bkt/%064d", sub, 1);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"key\":\"cut\",\"etag\":\"\\\"x\\\"\",\"mtime\":1,\"content_type\":\"a\",\"size\":9}"
          "\nab",
          f);
    fclose(f);

    s = sb_s3store_new(&cfg, err, sizeof err);
    assert_non_null(s);
    assert_true(sb_s3store_bucket_exists(s, "empty-bucket"));
    assert_int_equal(sb_s3store_head(s, "bkt", "k/1", &m), SB_S3_OK);
    assert_string_equal(m.etag, "\"5d41402abc4b2a76b9719d911017c592\"");
    assert_string_equal(m.content_type, "text/plain");
    assert_int_equal(sb_s3store_head(s, "bkt", "k/2", &m), SB_S3_NO_SUCH_KEY);
    assert_int_equal(sb_s3store_head(s, "bkt", "cut", &m), SB_S3_NO_SUCH_KEY);
    size_t len;
    char *data = NULL;
    assert_int_equal(sb_s3store_get(s, "bkt", "mp", 2, 10, &data, &len, &m), SB_S3_OK);
    assert_string_equal(m.etag, "\"1c0de90ae8f336732437c692476f5803-2\"");
    assert_int_equal(len, 3);
    assert_memory_equal(data, "aab", 3);
    free(data);
    (void)snprintf(path, sizeof path, "%s/bkt/%064d.tmp", sub, 0);
    assert_int_equal(access(path, F_OK), -1);
    json_t *j = sb_s3store_json(s);
    assert_int_equal(json_integer_value(json_object_get(j, "used")), 10);
    json_decref(j);
    sb_s3store_free(s);
    char cmd[300];
    (void)snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_parse_complete(void **state)
{
    (void)state;
    struct sb_s3_part_ref *p = NULL;
    size_t n = 0;
    char err[128];
    const char *ok =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n"
        "  <!-- a comment -->\n"
        "  <Part><PartNumber>1</PartNumber><ETag>\"a54357aff0632cce46d942af68356b38\"</ETag></Part>"
        "  <Part>\n    <ETag>&quot;0c78aef83f66abc1fa1e8477f296d394&quot;</ETag>\n"
        "    <ChecksumCRC32>abc=</ChecksumCRC32><PartNumber> 2 </PartNumber>\n  </Part>\n"
        "  <Part><PartNumber>10000</PartNumber><ETag>&#34;x&#x22;</ETag><Empty/></Part>\n"
        "</CompleteMultipartUpload>\n";
    assert_int_equal(sb_s3_parse_complete(ok, strlen(ok), &p, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(p[0].number, 1);
    assert_string_equal(p[0].etag, "a54357aff0632cce46d942af68356b38");
    assert_int_equal(p[1].number, 2);
    assert_string_equal(p[1].etag, "0c78aef83f66abc1fa1e8477f296d394");
    assert_int_equal(p[2].number, 10000);
    assert_string_equal(p[2].etag, "x");
    free(p);
    const char *bad[] = {
        "",
        "<CompleteMultipartUpload/>",
        "<CompleteMultipartUpload></CompleteMultipartUpload>",
        "<Other><Part><PartNumber>1</PartNumber><ETag>a</ETag></Part></Other>",
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part>"
        "</CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><ETag>a</ETag></Part></CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>0</PartNumber><ETag>a</ETag></Part>"
        "</CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>10001</PartNumber><ETag>a</ETag></Part>"
        "</CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>1x</PartNumber><ETag>a</ETag></Part>"
        "</CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>a</Etag></Part>"
        "</CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>a</ETag></Part>",
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>a</ETag></Part>"
        "</CompleteMultipartUpload>trailing",
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&bogus;</ETag></Part>"
        "</CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag><b>a</b></ETag></Part>"
        "</CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><PartNumber>2</PartNumber>"
        "<ETag>a</ETag></Part></CompleteMultipartUpload>",
        "<!-- never closed",
        "<CompleteMultipartUpload",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        p = NULL;
        print_message("bad %zu\n", i);
        assert_int_equal(sb_s3_parse_complete(bad[i], strlen(bad[i]), &p, &n, err, sizeof err), -1);
        assert_null(p);
        assert_true(err[0] != '\0');
    }
}

static void test_parse_headers(void **state)
{
    (void)state;
    struct {
        const char *h;
        uint64_t size;
        int rc;
        uint64_t first, last;
    } ranges[] = {
        {"bytes=0-9", 100, 1, 0, 9},
        {"bytes=90-", 100, 1, 90, 99},
        {"bytes=-10", 100, 1, 90, 99},
        {"bytes=-1000", 100, 1, 0, 99},
        {"bytes=50-1000", 100, 1, 50, 99},
        {"bytes=99-99", 100, 1, 99, 99},
        {"bytes=100-", 100, -1, 0, 0},
        {"bytes=-0", 100, -1, 0, 0},
        {"bytes=0-0", 0, -1, 0, 0},
        {"bytes=5-1", 100, 0, 0, 0},
        {"bytes=0-1,5-6", 100, 0, 0, 0},
        {"items=0-1", 100, 0, 0, 0},
        {"bytes=a-b", 100, 0, 0, 0},
        {"bytes=", 100, 0, 0, 0},
        {NULL, 100, 0, 0, 0},
        {"bytes=99999999999999999999-", 100, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof *ranges; i++) {
        uint64_t a = 0, b = 0;
        print_message("range %s\n", ranges[i].h ? ranges[i].h : "(none)");
        assert_int_equal(sb_s3_parse_range(ranges[i].h, ranges[i].size, &a, &b), ranges[i].rc);
        if (ranges[i].rc == 1) {
            assert_int_equal(a, ranges[i].first);
            assert_int_equal(b, ranges[i].last);
        }
    }
    const char *good[] = {"abc", "my-bucket.v2", "0bucket9", "a.b-c"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_true(sb_s3_bucket_name_ok(good[i]));
    const char *badb[] = {"ab", "-abc", "abc-", "a..b", "ABC", "a_b", "192.168.5.4", "a/b", ""};
    for (size_t i = 0; i < sizeof badb / sizeof *badb; i++)
        assert_false(sb_s3_bucket_name_ok(badb[i]));
    assert_int_equal(sb_s3_content_sha_kind("UNSIGNED-PAYLOAD"), SB_S3_SHA_UNSIGNED);
    assert_int_equal(sb_s3_content_sha_kind("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
                     SB_S3_SHA_STREAMING);
    assert_int_equal(
        sb_s3_content_sha_kind("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        SB_S3_SHA_HEX);
    assert_int_equal(sb_s3_content_sha_kind("e3b0c4"), SB_S3_SHA_INVALID);
    assert_int_equal(
        sb_s3_content_sha_kind("g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        SB_S3_SHA_INVALID);
    unsigned char md5[16];
    assert_int_equal(sb_s3_content_md5("XUFAKrxLKna5cZ2REBfFkg==", md5), 0);
    assert_memory_equal(md5, "\x5d\x41\x40\x2a\xbc\x4b\x2a\x76\xb9\x71\x9d\x91\x10\x17\xc5\x92",
                        16);
    assert_int_equal(sb_s3_content_md5("XUFAKrxLKna5cZ2REBfFkg=", md5), -1);
    assert_int_equal(sb_s3_content_md5("XUFAKrxLKna5cZ2REBf*kg==", md5), -1);
    assert_int_equal(sb_s3_content_md5("5d41402abc4b2a76b9719d911017c592", md5), -1);
    struct hs_buf b;
    hs_buf_init(&b, 1024);
    sb_s3_xml_escape(&b, "a<b>&\"c'");
    assert_string_equal(hs_buf_str(&b), "a&lt;b&gt;&amp;&quot;c&apos;");
    hs_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_objects),       cmocka_unit_test(test_capacity),
        cmocka_unit_test(test_multipart),     cmocka_unit_test(test_list),
        cmocka_unit_test(test_directory),     cmocka_unit_test(test_parse_complete),
        cmocka_unit_test(test_parse_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
