/* test_blobstore.c: the blob store's interface (store/blobs.h), the same cases on each back-end:
 * `test_blobstore local` on a temporary folder, `test_blobstore s3` on the sandbox's S3 listener
 * (with a temporary folder for the downloads in progress). Names, contents, deduplication, large
 * files, no leftovers, failed commits that leave nothing to point at, and copies between the
 * back-ends. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "core/mem.h"
#include "core/str.h"
#include "s3_sandbox.h"
#include "store/blobs.h"

static bool on_s3;

struct fixture {
    char dir[64];  /* the data directory */
    char dir2[64]; /* a second local folder, for copies */
    struct s3_sandbox sb;
    struct hs_blobs *b;
};

static struct hs_blobs *open_s3(struct fixture *f, const char *dir, const char *prefix)
{
    char url[96];
    snprintf(url, sizeof url, "s3://%s/%s", S3_SANDBOX_BUCKET, prefix);
    struct hs_blobs_config c = {.data_dir = dir,
                                .url = url,
                                .s3_endpoint = f->sb.endpoint,
                                .access_key = S3_SANDBOX_KEY,
                                .secret_key = S3_SANDBOX_SECRET,
                                .part_size = 4096,
                                .redirect_s = 60,
                                .max_attempts = 3,
                                .retry_base_ms = 10};
    struct hs_blobs *b = NULL;
    struct hs_error err = {0};
    if (hs_blobs_open(&c, &b, &err) != HS_OK)
        fprintf(stderr, "hs_blobs_open: %s\n", err.msg);
    return b;
}

static struct hs_blobs *open_local(const char *dir)
{
    struct hs_blobs_config c = {.data_dir = dir};
    struct hs_blobs *b = NULL;
    return hs_blobs_open(&c, &b, NULL) == HS_OK ? b : NULL;
}

static int setup(void **state)
{
    struct fixture *f = hs_calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/hs-blobstore-XXXXXX");
    snprintf(f->dir2, sizeof f->dir2, "/tmp/hs-blobstore2-XXXXXX");
    if (!mkdtemp(f->dir) || !mkdtemp(f->dir2))
        return -1;
    if (on_s3 && s3_sandbox_start(&f->sb, NULL) != 0)
        return -1;
    f->b = on_s3 ? open_s3(f, f->dir, "fleet") : open_local(f->dir);
    *state = f;
    return f->b ? 0 : -1;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    hs_blobs_free(f->b);
    if (on_s3)
        s3_sandbox_stop(&f->sb);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", f->dir, f->dir2);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

/* Entries of <dir>/tmp (0 when it does not exist). */
static int tmp_entries(const char *dir)
{
    char p[128];
    snprintf(p, sizeof p, "%s/tmp", dir);
    DIR *d = opendir(p);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static char *pattern(size_t n, unsigned seed)
{
    char *b = hs_malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        b[i] = (char)((i * 31 + seed + i / 97) & 0xff);
    return b;
}

static void sha_of(const char *p, size_t n, char hex[65])
{
    unsigned char d[32];
    unsigned int dl = 0;
    EVP_Digest(p, n, d, &dl, EVP_sha256(), NULL);
    hs_hex(d, 32, hex);
}

/* Stores n bytes in chunks of `chunk`; gives the name (caller frees). */
static char *store(const struct hs_blobs *b, const char *bytes, size_t n, size_t chunk,
                   char sha[65])
{
    struct hs_blob_writer *w = NULL;
    struct hs_error err = {0};
    assert_int_equal(hs_blobs_begin(b, &w, &err), HS_OK);
    for (size_t off = 0; off < n; off += chunk)
        assert_int_equal(hs_blob_write(w, bytes + off, n - off < chunk ? n - off : chunk, &err),
                         HS_OK);
    int64_t got = -1;
    char *name = NULL;
    int rc = hs_blob_commit(w, sha, &got, &name, &err);
    if (rc)
        fprintf(stderr, "commit: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    assert_int_equal(got, (int64_t)n);
    hs_blob_abort(w);
    return name;
}

static void assert_stored(const struct hs_blobs *b, const char *name, const char *bytes, size_t n)
{
    int64_t size = -1;
    assert_int_equal(hs_blobs_size(b, name, &size, NULL), HS_OK);
    assert_int_equal(size, (int64_t)n);
    char *all = NULL;
    size_t len = 0;
    assert_int_equal(hs_blobs_read_all(b, name, n + 1, &all, &len, NULL), HS_OK);
    assert_int_equal(len, n);
    assert_memory_equal(all, bytes, n);
    free(all);
}

static void test_names_and_contents(void **state)
{
    struct fixture *f = *state;
    static const char abc[] = "abc";
    char sha[65];
    char *name = store(f->b, abc, 3, 1, sha);
    assert_string_equal(sha, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_string_equal(
        name, "blobs/ba/78/ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_stored(f->b, name, abc, 3);
    char two[2];
    assert_int_equal(hs_blobs_read(f->b, name, 1, two, 2, NULL), HS_OK);
    assert_memory_equal(two, "bc", 2);
    char *all = NULL;
    size_t len;
    struct hs_error err = {0};
    assert_int_equal(hs_blobs_read_all(f->b, name, 2, &all, &len, &err), HS_ERR_TOOBIG);
    assert_int_equal(tmp_entries(f->dir), 0);
    /* The local folder has the file, S3 the object: the other has nothing. */
    char *path = hs_blobs_local_path(f->b, name);
    struct stat st;
    if (on_s3) {
        assert_null(path);
        char p[256];
        snprintf(p, sizeof p, "%s/%s", f->dir, name);
        assert_int_not_equal(stat(p, &st), 0);
    } else {
        assert_int_equal(stat(path, &st), 0);
    }
    free(path);
    int64_t size;
    assert_int_equal(hs_blobs_size(f->b, "blobs/00/00/none", &size, NULL), HS_ERR_NOT_FOUND);
    free(name);
}

static void test_identical_bytes_are_stored_once(void **state)
{
    struct fixture *f = *state;
    char *bytes = pattern(2000, 1);
    char sha1[65], sha2[65];
    char *n1 = store(f->b, bytes, 2000, 500, sha1);
    char *n2 = store(f->b, bytes, 2000, 77, sha2);
    assert_string_equal(n1, n2);
    assert_string_equal(sha1, sha2);
    if (on_s3)
        assert_int_equal(s3_sandbox_count(&f->sb, "PutObject"), 1);
    assert_stored(f->b, n1, bytes, 2000);
    assert_int_equal(tmp_entries(f->dir), 0);
    free(n1);
    free(n2);
    free(bytes);
}

static void test_empty_file(void **state)
{
    struct fixture *f = *state;
    char sha[65];
    char *name = store(f->b, "", 0, 1, sha);
    assert_string_equal(sha, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    int64_t size = -1;
    assert_int_equal(hs_blobs_size(f->b, name, &size, NULL), HS_OK);
    assert_int_equal(size, 0);
    free(name);
}

/* Above the part size (4 KiB here) S3 gets a multipart upload; both read it back whole. */
static void test_large_file(void **state)
{
    struct fixture *f = *state;
    size_t n = 3 * 4096 + 123;
    char *bytes = pattern(n, 7);
    char sha[65], want[65];
    sha_of(bytes, n, want);
    char *name = store(f->b, bytes, n, 1000, sha);
    assert_string_equal(sha, want);
    assert_stored(f->b, name, bytes, n);
    if (on_s3) {
        assert_int_equal(s3_sandbox_count(&f->sb, "UploadPart"), 4);
        assert_int_equal(s3_sandbox_count(&f->sb, "PutObject"), 0);
    }
    assert_int_equal(tmp_entries(f->dir), 0);
    free(name);
    free(bytes);
}

/* A commit that cannot finish gives no name, leaves nothing under the name and, once aborted,
 * no temporary file. Locally: a file stands where the name's directory must go. */
static void test_failed_commit_leaves_nothing(void **state)
{
    struct fixture *f = *state;
    char *bytes = pattern(9000, 3);
    char want[65], name[80];
    sha_of(bytes, 9000, want);
    hs_blob_name(want, name);
    char blobs_dir[128];
    snprintf(blobs_dir, sizeof blobs_dir, "%s/blobs", f->dir);
    if (on_s3) {
        assert_int_equal(
            s3_sandbox_fault(&f->sb, "{\"op\":\"CompleteMultipartUpload\",\"status\":500}"), 0);
    } else {
        assert_int_equal(mkdir(blobs_dir, 0700), 0);
        char in_the_way[160];
        snprintf(in_the_way, sizeof in_the_way, "%s/%.2s", blobs_dir, want);
        FILE *fp = fopen(in_the_way, "w");
        assert_non_null(fp);
        fclose(fp);
    }
    struct hs_blob_writer *w = NULL;
    struct hs_error err = {0};
    assert_int_equal(hs_blobs_begin(f->b, &w, &err), HS_OK);
    assert_int_equal(hs_blob_write(w, bytes, 9000, &err), HS_OK);
    char sha[65] = "";
    int64_t got = -1;
    char *rel = NULL;
    assert_int_not_equal(hs_blob_commit(w, sha, &got, &rel, &err), HS_OK);
    assert_null(rel);
    assert_int_equal(got, -1);
    hs_blob_abort(w);
    int64_t size;
    assert_int_equal(hs_blobs_size(f->b, name, &size, NULL), HS_ERR_NOT_FOUND);
    assert_int_equal(tmp_entries(f->dir), 0);
    if (on_s3)
        assert_int_equal(s3_sandbox_count(&f->sb, "AbortMultipartUpload"), 1);
    free(bytes);
}

struct list {
    const char *const *shas;
    size_t n, at;
};

static int next_sha(void *ctx, char out[65])
{
    struct list *l = ctx;
    if (l->at == l->n)
        return 0;
    memcpy(out, l->shas[l->at++], 65);
    return 1;
}

/* Both ways between this back-end and a local folder: copied once, kept the second time. */
static void test_copy_between_stores(void **state)
{
    struct fixture *f = *state;
    struct hs_blobs *other = open_local(f->dir2);
    char *a = pattern(5000, 11), *b = pattern(10, 12);
    char sa[65], sb[65];
    free(store(f->b, a, 5000, 5000, sa));
    free(store(f->b, b, 10, 10, sb));
    const char *shas[] = {sa, sb};
    struct list l = {shas, 2, 0};
    int64_t copied = -1, kept = -1;
    struct hs_error err = {0};
    assert_int_equal(hs_blobs_copy_all(f->b, other, next_sha, &l, &copied, &kept, &err), HS_OK);
    assert_int_equal(copied, 2);
    assert_int_equal(kept, 0);
    char name[80];
    hs_blob_name(sa, name);
    assert_stored(other, name, a, 5000);
    l.at = 0;
    assert_int_equal(hs_blobs_copy_all(f->b, other, next_sha, &l, &copied, &kept, &err), HS_OK);
    assert_int_equal(copied, 0);
    assert_int_equal(kept, 2);

    /* Back the other way, into a store that lost one. */
    struct hs_blobs *third = on_s3 ? open_s3(f, f->dir, "other") : open_local(f->dir);
    char *c = pattern(300, 13);
    char sc[65];
    char *cname = store(other, c, 300, 300, sc);
    const char *one[] = {sc};
    struct list l2 = {one, 1, 0};
    assert_int_equal(hs_blobs_copy_all(other, third, next_sha, &l2, &copied, &kept, &err), HS_OK);
    assert_int_equal(copied, 1);
    assert_stored(third, cname, c, 300);

    /* A source whose bytes are not those of their name is refused, and nothing is written. */
    char p[256];
    snprintf(p, sizeof p, "%s/%s", f->dir2, cname);
    FILE *fp = fopen(p, "r+");
    assert_non_null(fp);
    fputc('X', fp);
    fclose(fp);
    struct hs_blobs *fourth = on_s3 ? open_s3(f, f->dir, "fourth") : open_local(f->dir2);
    if (!on_s3) { /* copying into the folder itself would keep it: use a fresh one */
        hs_blobs_free(fourth);
        char d3[96];
        snprintf(d3, sizeof d3, "%s/copy", f->dir);
        fourth = open_local(d3);
    }
    l2.at = 0;
    assert_int_equal(hs_blobs_copy_all(other, fourth, next_sha, &l2, &copied, &kept, &err),
                     HS_ERR_IO);
    assert_non_null(strstr(err.msg, "not copied"));
    int64_t size;
    assert_int_equal(hs_blobs_size(fourth, cname, &size, NULL), HS_ERR_NOT_FOUND);
    hs_blobs_free(fourth);
    hs_blobs_free(third);
    hs_blobs_free(other);
    free(cname);
    free(a);
    free(b);
    free(c);
}

static void test_redirects_only_from_s3(void **state)
{
    struct fixture *f = *state;
    char sha[65];
    char *name = store(f->b, "%PDF-1.4 x %%EOF", 16, 16, sha);
    char *url = NULL;
    struct hs_error err = {0};
    if (!on_s3) {
        assert_int_equal(hs_blobs_redirect_seconds(f->b), 0);
        assert_int_equal(hs_blobs_presign(f->b, name, NULL, &url, &err), HS_ERR_INVALID);
        free(name);
        return;
    }
    assert_int_equal(hs_blobs_redirect_seconds(f->b), 60);
    assert_int_equal(hs_blobs_presign(f->b, name, "application/pdf", &url, &err), HS_OK);
    char body[64], ctype[128];
    assert_int_equal(s3_sandbox_http_get(url, body, sizeof body, ctype), 200);
    assert_string_equal(body, "%PDF-1.4 x %%EOF");
    assert_string_equal(ctype, "application/pdf");
    free(url);
    free(name);
}

int main(int argc, char **argv)
{
    if (argc != 2 || (strcmp(argv[1], "local") != 0 && strcmp(argv[1], "s3") != 0)) {
        fprintf(stderr, "usage: test_blobstore local|s3\n");
        return 2;
    }
    on_s3 = strcmp(argv[1], "s3") == 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_names_and_contents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identical_bytes_are_stored_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_commit_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_between_stores, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redirects_only_from_s3, setup, teardown),
    };
    return cmocka_run_group_tests_name(on_s3 ? "blob store on S3" : "blob store on a local folder",
                                       tests, NULL, NULL);
}
