/* test_blobs.c: the content-addressed artifact files (store/blobs.c) on a real temporary
 * directory: names, contents, deduplication, no leftovers, large files and clear errors. */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "core/mem.h"
#include "core/str.h"
#include "store/blobs.h"

static const char SHA_ABC[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
static const char SHA_EMPTY[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct fixture {
    char dir[256];
};

static int setup(void **state)
{
    struct fixture *f = hs_calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/hs-blob-test-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

/* Entries of a directory other than . and ..; -1 when it cannot be opened. */
static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static int tmp_entries(struct fixture *f)
{
    char p[300];
    snprintf(p, sizeof p, "%s/tmp", f->dir);
    return entries(p);
}

/* Reads a whole (small) file into a new NUL-terminated string. */
static char *slurp(const char *dir, const char *rel, size_t *len)
{
    char p[400];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    FILE *fp = fopen(p, "rb");
    if (!fp)
        return NULL;
    char *buf = hs_malloc(4096);
    *len = fread(buf, 1, 4095, fp);
    buf[*len] = '\0';
    fclose(fp);
    return buf;
}

struct stored {
    char sha[65];
    int64_t bytes;
    char *path;
};

static void store_chunks(struct fixture *f, const char *const *chunks, size_t n, struct stored *out)
{
    struct hs_blob_writer *w = NULL;
    struct hs_error err = {0};
    int rc = hs_blob_begin(f->dir, &w, &err);
    if (rc)
        fprintf(stderr, "hs_blob_begin: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(hs_blob_write(w, chunks[i], strlen(chunks[i]), NULL), HS_OK);
    assert_int_equal(hs_blob_commit(w, out->sha, &out->bytes, &out->path, &err), HS_OK);
    hs_blob_abort(w); /* after a commit: only frees */
}

static void test_chunks_hash_to_the_sha_of_the_whole(void **state)
{
    struct fixture *f = *state;
    const char *chunks[] = {"a", "b", "c"};
    struct stored s = {0};
    store_chunks(f, chunks, 3, &s);
    assert_string_equal(s.sha, SHA_ABC);
    assert_int_equal(s.bytes, 3);
    assert_string_equal(s.path, "blobs/ba/78/"
                                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    size_t len = 0;
    char *data = slurp(f->dir, s.path, &len);
    assert_non_null(data);
    assert_int_equal(len, 3);
    assert_string_equal(data, "abc");
    free(data);
    assert_int_equal(tmp_entries(f), 0);

    /* The orgs' data: the owner's alone, the file and every directory above it in the data
     * directory, whatever the umask. */
    char p[400];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", f->dir, s.path);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    for (char *slash = strrchr(p, '/'); slash && slash > p + strlen(f->dir);
         slash = strrchr(p, '/')) {
        *slash = '\0';
        assert_int_equal(stat(p, &sb), 0);
        assert_int_equal(sb.st_mode & 0777, 0700);
    }
    free(s.path);
}

static void test_identical_bytes_are_stored_once(void **state)
{
    struct fixture *f = *state;
    const char *one[] = {"abc"};
    const char *three[] = {"ab", "", "c"};
    struct stored a = {0}, b = {0};
    store_chunks(f, one, 1, &a);
    store_chunks(f, three, 3, &b);
    assert_string_equal(a.path, b.path);
    assert_string_equal(a.sha, b.sha);
    char p[300];
    snprintf(p, sizeof p, "%s/blobs/ba/78", f->dir);
    assert_int_equal(entries(p), 1);
    assert_int_equal(tmp_entries(f), 0);
    free(a.path);
    free(b.path);
}

/* A batch: each file is in place as its commit returns, from several threads at once, and the
 * batch's sync (a fsync of each folder, or with many folders one syncfs) then succeeds; files
 * of identical bytes land on one name. */
struct batch_writer {
    struct fixture *f;
    struct hs_blob_batch *batch;
    int first, n;
    char *paths[8];
};

static void *write_in_batch(void *arg)
{
    struct batch_writer *bw = arg;
    for (int i = 0; i < bw->n; i++) {
        struct hs_blob_writer *w = NULL;
        char body[32], sha[65];
        int64_t bytes = 0;
        int len = snprintf(body, sizeof body, "file %d", (bw->first + i) % 10);
        if (hs_blob_begin(bw->f->dir, &w, NULL) != HS_OK ||
            hs_blob_write(w, body, (size_t)len, NULL) != HS_OK ||
            hs_blob_commit_in(w, bw->batch, sha, &bytes, &bw->paths[i], NULL) != HS_OK)
            bw->paths[i] = NULL;
        hs_blob_abort(w);
    }
    return NULL;
}

static void test_batch_commits_from_several_threads(void **state)
{
    struct fixture *f = *state;
    for (int many = 0; many < 2; many++) {
        struct hs_blob_batch *batch = hs_blob_batch_new();
        struct batch_writer bw[3];
        pthread_t th[3];
        for (int t = 0; t < 3; t++) {
            bw[t] =
                (struct batch_writer){.f = f, .batch = batch, .first = t * 4, .n = many ? 4 : 1};
            assert_int_equal(pthread_create(&th[t], NULL, write_in_batch, &bw[t]), 0);
        }
        for (int t = 0; t < 3; t++)
            assert_int_equal(pthread_join(th[t], NULL), 0);
        for (int t = 0; t < 3; t++)
            for (int i = 0; i < bw[t].n; i++) {
                assert_non_null(bw[t].paths[i]);
                size_t len = 0;
                char *data = slurp(f->dir, bw[t].paths[i], &len);
                assert_non_null(data);
                assert_int_equal(strncmp(data, "file ", 5), 0);
                free(data);
                free(bw[t].paths[i]);
            }
        assert_int_equal(hs_blob_batch_sync(batch, NULL), HS_OK);
        hs_blob_batch_free(batch);
    }
    assert_int_equal(tmp_entries(f), 0);
    hs_blob_batch_free(NULL);
}

static void test_empty_file(void **state)
{
    struct fixture *f = *state;
    struct stored s = {0};
    store_chunks(f, NULL, 0, &s);
    assert_string_equal(s.sha, SHA_EMPTY);
    assert_int_equal(s.bytes, 0);
    free(s.path);
}

static void test_abort_leaves_no_temporary_file(void **state)
{
    struct fixture *f = *state;
    struct hs_blob_writer *w = NULL;
    assert_int_equal(hs_blob_begin(f->dir, &w, NULL), HS_OK);
    assert_int_equal(hs_blob_write(w, "partial", 7, NULL), HS_OK);
    assert_int_equal(tmp_entries(f), 1);
    hs_blob_abort(w);
    assert_int_equal(tmp_entries(f), 0);
    char p[300];
    snprintf(p, sizeof p, "%s/blobs", f->dir);
    assert_int_equal(entries(p), 0);
    hs_blob_abort(NULL);
}

/* The data directory is shared: a cleaner (any process's start) removes what killed writers
 * left, and never the file of a writer at work, which then commits as usual. */
static void test_clean_tmp_spares_live_writers(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(hs_blob_clean_tmp(f->dir, NULL), HS_OK); /* nothing written yet */
    struct hs_blob_writer *live = NULL;
    assert_int_equal(hs_blob_begin(f->dir, &live, NULL), HS_OK);
    assert_int_equal(hs_blob_write(live, "live bytes", 10, NULL), HS_OK);
    /* A writer killed mid-file: its process ends without finishing or removing it. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct hs_blob_writer *w = NULL;
        if (hs_blob_begin(f->dir, &w, NULL) != HS_OK || hs_blob_write(w, "x", 1, NULL) != HS_OK)
            _exit(1);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(tmp_entries(f), 2);

    assert_int_equal(hs_blob_clean_tmp(f->dir, NULL), HS_OK);
    assert_int_equal(tmp_entries(f), 1); /* the killed writer's file only */
    char sha[65];
    int64_t bytes = 0;
    char *path = NULL;
    struct hs_error err = {0};
    assert_int_equal(hs_blob_commit(live, sha, &bytes, &path, &err), HS_OK);
    assert_int_equal(bytes, 10);
    free(path);
    hs_blob_abort(live);
    assert_int_equal(tmp_entries(f), 0);
}

static void test_large_file_in_chunks(void **state)
{
    struct fixture *f = *state;
    enum { CHUNK = 64 * 1024, TOTAL = 20 * 1024 * 1024 };
    unsigned char *chunk = hs_malloc(CHUNK);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_non_null(md);
    assert_int_equal(EVP_DigestInit_ex(md, EVP_sha256(), NULL), 1);
    struct hs_blob_writer *w = NULL;
    assert_int_equal(hs_blob_begin(f->dir, &w, NULL), HS_OK);
    for (size_t off = 0; off < TOTAL; off += CHUNK) {
        for (size_t i = 0; i < CHUNK; i++)
            chunk[i] = (unsigned char)((off + i) * 2654435761u >> 13);
        assert_int_equal(EVP_DigestUpdate(md, chunk, CHUNK), 1);
        assert_int_equal(hs_blob_write(w, chunk, CHUNK, NULL), HS_OK);
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    assert_int_equal(EVP_DigestFinal_ex(md, digest, &dlen), 1);
    EVP_MD_CTX_free(md);
    char want[65];
    hs_hex(digest, dlen, want);

    char sha[65];
    int64_t bytes = 0;
    char *path = NULL;
    assert_int_equal(hs_blob_commit(w, sha, &bytes, &path, NULL), HS_OK);
    hs_blob_abort(w);
    assert_string_equal(sha, want);
    assert_int_equal(bytes, TOTAL);
    char p[400];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", f->dir, path);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_size, TOTAL);
    assert_int_equal(tmp_entries(f), 0);
    free(path);
    free(chunk);
}

static void test_unusable_data_dir_is_an_io_error_naming_it(void **state)
{
    struct fixture *f = *state;
    /* A file where the data directory should be: fails even for root, unlike permissions. */
    char dd[300];
    snprintf(dd, sizeof dd, "%s/not-a-dir", f->dir);
    FILE *fp = fopen(dd, "w");
    assert_non_null(fp);
    fclose(fp);
    struct hs_blob_writer *w = NULL;
    struct hs_error err = {0};
    assert_int_equal(hs_blob_begin(dd, &w, &err), HS_ERR_IO);
    assert_null(w);
    assert_non_null(strstr(err.msg, dd));
    assert_int_equal(err.code, HS_ERR_IO);
    memset(&err, 0, sizeof err);
    assert_int_equal(hs_blob_clean_tmp(dd, &err), HS_ERR_IO);
    assert_non_null(strstr(err.msg, dd));
}

static void test_misuse_is_refused(void **state)
{
    struct fixture *f = *state;
    struct hs_blob_writer *w = NULL;
    assert_int_equal(hs_blob_begin(f->dir, &w, NULL), HS_OK);
    char sha[65];
    int64_t bytes = 0;
    char *path = NULL;
    assert_int_equal(hs_blob_commit(w, sha, &bytes, &path, NULL), HS_OK);
    assert_int_equal(hs_blob_write(w, "x", 1, NULL), HS_ERR_INVALID);
    char *again = NULL;
    assert_int_equal(hs_blob_commit(w, sha, &bytes, &again, NULL), HS_ERR_INVALID);
    assert_null(again);
    hs_blob_abort(w);
    /* The committed file stays. */
    size_t len = 99;
    char *data = slurp(f->dir, path, &len);
    assert_non_null(data);
    assert_int_equal(len, 0);
    free(data);
    free(path);
    assert_int_equal(hs_blob_begin("", &w, NULL), HS_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chunks_hash_to_the_sha_of_the_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identical_bytes_are_stored_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_commits_from_several_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_leaves_no_temporary_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clean_tmp_spares_live_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_file_in_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unusable_data_dir_is_an_io_error_naming_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_misuse_is_refused, setup, teardown),
    };
    return cmocka_run_group_tests_name("store-blobs", tests, NULL, NULL);
}
