/* test_store.c: the storage suite. Every back-end runs the same cases through the hs_store
 * interface; the SQLite back-end runs them on a real file in a temporary directory. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/mem.h"
#include "store/store.h"

struct fixture {
    char dir[256];
    char path[300];
    struct hs_store *store;
};

static int open_store(struct fixture *f, struct hs_store **out)
{
    struct hs_error err = {0};
    int rc = hs_store_open_sqlite(f->path, out, &err);
    if (rc)
        fprintf(stderr, "open failed: %s\n", err.msg);
    return rc;
}

static int setup(void **state)
{
    struct fixture *f = hs_calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/hs-store-test-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof f->path, "%s/store.db", f->dir);
    if (open_store(f, &f->store))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    hs_store_close(f->store);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

static struct hs_token pair(const char *access, const char *refresh, int64_t expires)
{
    struct hs_token t = {0};
    t.access_token = (char *)access;
    t.refresh_token = (char *)refresh;
    t.expires_at = expires;
    t.owner_id = 463605;
    t.owner_type = (char *)"orgs";
    return t;
}

static void test_missing_token_is_not_found(void **state)
{
    struct fixture *f = *state;
    struct hs_token t = {0};
    struct hs_error err = {0};
    assert_int_equal(f->store->ops->token_load(f->store, "default", &t, &err), HS_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "default"));
    assert_null(t.access_token);
}

static void test_save_load_roundtrip_survives_reopen(void **state)
{
    struct fixture *f = *state;
    struct hs_token in = pair("acc-1", "ref-1", 1800000000);
    assert_int_equal(f->store->ops->token_save(f->store, "org-1", &in, NULL), HS_OK);
    hs_store_close(f->store);
    assert_int_equal(open_store(f, &f->store), HS_OK);

    struct hs_token out = {0};
    assert_int_equal(f->store->ops->token_load(f->store, "org-1", &out, NULL), HS_OK);
    assert_string_equal(out.access_token, "acc-1");
    assert_string_equal(out.refresh_token, "ref-1");
    assert_int_equal(out.expires_at, 1800000000);
    assert_int_equal(out.owner_id, 463605);
    assert_string_equal(out.owner_type, "orgs");
    assert_int_equal(out.generation, 1);
    hs_token_clear(&out);
}

static void test_save_replaces_and_bumps_generation(void **state)
{
    struct fixture *f = *state;
    struct hs_token a = pair("acc-1", "ref-1", 100), b = pair("acc-2", "ref-2", 200);
    assert_int_equal(f->store->ops->token_save(f->store, "k", &a, NULL), HS_OK);
    assert_int_equal(f->store->ops->token_save(f->store, "k", &b, NULL), HS_OK);
    struct hs_token out = {0};
    assert_int_equal(f->store->ops->token_load(f->store, "k", &out, NULL), HS_OK);
    assert_string_equal(out.access_token, "acc-2");
    assert_int_equal(out.generation, 2);
    hs_token_clear(&out);
}

static void test_refresh_end_null_stores_nothing(void **state)
{
    struct fixture *f = *state;
    struct hs_token a = pair("acc-1", "ref-1", 100);
    assert_int_equal(f->store->ops->token_save(f->store, "k", &a, NULL), HS_OK);
    struct hs_token cur = {0};
    assert_int_equal(f->store->ops->token_refresh_begin(f->store, "k", &cur, NULL), HS_OK);
    assert_string_equal(cur.refresh_token, "ref-1");
    assert_int_equal(f->store->ops->token_refresh_end(f->store, "k", NULL, NULL), HS_OK);
    hs_token_clear(&cur);
    struct hs_token out = {0};
    assert_int_equal(f->store->ops->token_load(f->store, "k", &out, NULL), HS_OK);
    assert_string_equal(out.access_token, "acc-1");
    assert_int_equal(out.generation, 1);
    hs_token_clear(&out);
}

static void test_refresh_without_stored_pair(void **state)
{
    struct fixture *f = *state;
    struct hs_token cur = {0};
    assert_int_equal(f->store->ops->token_refresh_begin(f->store, "new", &cur, NULL),
                     HS_ERR_NOT_FOUND);
    struct hs_token r = pair("acc-9", "ref-9", 9);
    assert_int_equal(f->store->ops->token_refresh_end(f->store, "new", &r, NULL), HS_OK);
    struct hs_token out = {0};
    assert_int_equal(f->store->ops->token_load(f->store, "new", &out, NULL), HS_OK);
    assert_string_equal(out.refresh_token, "ref-9");
    hs_token_clear(&out);
}

static void test_refresh_end_without_begin_is_an_error(void **state)
{
    struct fixture *f = *state;
    struct hs_token r = pair("a", "b", 1);
    assert_int_equal(f->store->ops->token_refresh_end(f->store, "k", &r, NULL), HS_ERR_INTERNAL);
}

/* A refresh in another process holds the credential: ours must wait for it and then read the
 * pair it rotated, never the stale one (two refreshers would invalidate each other). */
struct waiter {
    const char *path;
    struct hs_token seen;
    int rc;
    volatile int done;
};

static void *wait_for_refresh(void *arg)
{
    struct waiter *w = arg;
    struct hs_store *s = NULL;
    w->rc = hs_store_open_sqlite(w->path, &s, NULL);
    if (w->rc == HS_OK) {
        w->rc = s->ops->token_refresh_begin(s, "k", &w->seen, NULL);
        if (w->rc == HS_OK)
            s->ops->token_refresh_end(s, "k", NULL, NULL);
        hs_store_close(s);
    }
    w->done = 1;
    return NULL;
}

static void test_refresh_is_exclusive_across_processes(void **state)
{
    struct fixture *f = *state;
    struct hs_token a = pair("acc-old", "ref-old", 100);
    assert_int_equal(f->store->ops->token_save(f->store, "k", &a, NULL), HS_OK);

    int to_parent[2], to_child[2];
    assert_int_equal(pipe(to_parent), 0);
    assert_int_equal(pipe(to_child), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct hs_store *s = NULL;
        struct hs_token cur = {0};
        char c = 'x';
        if (hs_store_open_sqlite(f->path, &s, NULL) ||
            s->ops->token_refresh_begin(s, "k", &cur, NULL))
            _exit(3);
        if (write(to_parent[1], "L", 1) != 1 || read(to_child[0], &c, 1) != 1)
            _exit(4);
        struct hs_token r = pair("acc-new", "ref-new", 200);
        int rc = s->ops->token_refresh_end(s, "k", &r, NULL);
        hs_store_close(s);
        _exit(rc ? 5 : 0);
    }
    char c;
    assert_int_equal(read(to_parent[0], &c, 1), 1); /* the child holds the credential */

    struct waiter w = {.path = f->path};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, wait_for_refresh, &w), 0);
    usleep(300 * 1000);
    assert_int_equal(w.done, 0); /* still waiting for the other process */
    assert_int_equal(write(to_child[1], "G", 1), 1);
    pthread_join(th, NULL);
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(w.rc, HS_OK);
    assert_string_equal(w.seen.access_token, "acc-new");
    assert_string_equal(w.seen.refresh_token, "ref-new");
    assert_int_equal(w.seen.generation, 2);
    hs_token_clear(&w.seen);
}

static void test_reopen_does_not_reapply_migrations(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 3; i++) {
        hs_store_close(f->store);
        assert_int_equal(open_store(f, &f->store), HS_OK);
    }
    struct hs_token a = pair("x", "y", 1);
    assert_int_equal(f->store->ops->token_save(f->store, "k", &a, NULL), HS_OK);
}

static void test_unwritable_path_is_a_clear_error(void **state)
{
    (void)state;
    struct hs_store *s = NULL;
    struct hs_error err = {0};
    assert_int_equal(hs_store_open_sqlite("/nonexistent-dir/x/y.db", &s, &err), HS_ERR_DB);
    assert_null(s);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/x/y.db"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_missing_token_is_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_load_roundtrip_survives_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_replaces_and_bumps_generation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_end_null_stores_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_without_stored_pair, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_end_without_begin_is_an_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refresh_is_exclusive_across_processes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reopen_does_not_reapply_migrations, setup, teardown),
        cmocka_unit_test(test_unwritable_path_is_a_clear_error),
    };
    return cmocka_run_group_tests_name("store-sqlite", tests, NULL, NULL);
}
