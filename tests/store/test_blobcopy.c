/* test_blobcopy.c: copying the blobs a store's artifact rows point at from one blob store to
 * another (hs_blobs_copy_store, store/blobs.h), on each back-end of the storage suite: every
 * referenced digest once, however many rows share it; unreferenced files stay behind; a second
 * copy keeps what is there; a referenced blob missing at the source stops the copy saying so. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "core/mem.h"
#include "core/str.h"
#include "store/blobs.h"
#include "store_test.h"

struct stored {
    char sha[65];
    char *name;
};

static struct stored store_bytes(const struct hs_blobs *b, const char *bytes)
{
    struct stored s = {0};
    struct hs_blob_writer *w = NULL;
    int64_t n = 0;
    assert_int_equal(hs_blobs_begin(b, &w, NULL), HS_OK);
    assert_int_equal(hs_blob_write(w, bytes, strlen(bytes), NULL), HS_OK);
    assert_int_equal(hs_blob_commit(w, s.sha, &n, &s.name, NULL), HS_OK);
    hs_blob_abort(w);
    return s;
}

static void put_row(struct fixture *f, const char *kind, const struct stored *s)
{
    struct hs_artifact_row a = artifact(kind, s->sha, NULL);
    a.path = s->name;
    (void)put_artifact(f, &a);
}

static void test_copies_the_referenced_blobs_once(void **state)
{
    struct fixture *f = *state;
    struct test_job t;
    make_job(&t);
    upsert(f, &t.job, true);
    char src_dir[300], dst_dir[300];
    snprintf(src_dir, sizeof src_dir, "%s/src", f->dir);
    snprintf(dst_dir, sizeof dst_dir, "%s/dst", f->dir);
    struct hs_blobs src, dst;
    hs_blobs_local(&src, src_dir);
    hs_blobs_local(&dst, dst_dir);
    struct stored pdf = store_bytes(&src, "%PDF-1.4 a %%EOF");
    struct stored json = store_bytes(&src, "{\"summary\":{}}");
    struct stored orphan = store_bytes(&src, "no row points here");
    put_row(f, "measurements.pdf", &pdf);
    put_row(f, "measurements.json", &json);
    put_row(f, "copy-of-the-pdf", &pdf); /* two rows, one blob */

    int64_t copied = -1, kept = -1;
    struct hs_error err = {0};
    assert_int_equal(hs_blobs_copy_store(f->store, &src, &dst, &copied, &kept, &err), HS_OK);
    assert_int_equal(copied, 2);
    assert_int_equal(kept, 0);
    int64_t size = 0;
    assert_int_equal(hs_blobs_size(&dst, pdf.name, &size, NULL), HS_OK);
    assert_int_equal(size, 16);
    char *doc = NULL;
    size_t len = 0;
    assert_int_equal(hs_blobs_read_all(&dst, json.name, 100, &doc, &len, NULL), HS_OK);
    assert_string_equal(doc, "{\"summary\":{}}");
    free(doc);
    assert_int_equal(hs_blobs_size(&dst, orphan.name, &size, NULL), HS_ERR_NOT_FOUND);

    assert_int_equal(hs_blobs_copy_store(f->store, &src, &dst, &copied, &kept, &err), HS_OK);
    assert_int_equal(copied, 0);
    assert_int_equal(kept, 2);

    /* The other way: a row whose blob the source lacks. */
    assert_int_equal(hs_blobs_copy_store(f->store, &dst, &src, &copied, &kept, &err), HS_OK);
    char path[400];
    snprintf(path, sizeof path, "%s/%s", dst_dir, json.name);
    assert_int_equal(remove(path), 0);
    char other[300];
    snprintf(other, sizeof other, "%s/other", f->dir);
    struct hs_blobs third;
    hs_blobs_local(&third, other);
    assert_int_equal(hs_blobs_copy_store(f->store, &dst, &third, &copied, &kept, &err),
                     HS_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, json.sha));
    free(pdf.name);
    free(json.name);
    free(orphan.name);
}

static void test_an_empty_store_copies_nothing(void **state)
{
    struct fixture *f = *state;
    struct hs_blobs a, b;
    hs_blobs_local(&a, f->dir);
    hs_blobs_local(&b, f->dir);
    int64_t copied = -1, kept = -1;
    assert_int_equal(hs_blobs_copy_store(f->store, &a, &b, &copied, &kept, NULL), HS_OK);
    assert_int_equal(copied, 0);
    assert_int_equal(kept, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STORE_TEST(test_copies_the_referenced_blobs_once),
        STORE_TEST(test_an_empty_store_copies_nothing),
    };
    return STORE_TESTS("blob copies", tests);
}
