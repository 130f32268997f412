/* test_pool.c: the service's client pool (src/hover/pool.c): one client per connection, handed
 * out as clones that threads hold at the same time, one shared limiter, the configured initial
 * pair only for its own connection. No request is sent: creating a client reads the store only
 * (test_oauth.c shows that clones share one refresh). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_store.h"
#include "hover/limiter.h"
#include "hover/pool.h"

struct fixture {
    struct fake_store fs;
    struct hs_client_pool *pool;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    fake_store_init(&f->fs);
    struct hs_client_config cfg = {0};
    hs_client_config_defaults(&cfg);
    cfg.base_url = "http://127.0.0.1:9";
    cfg.client_id = "id";
    cfg.client_secret = "secret";
    cfg.credential_key = "default";
    cfg.initial_access_token = "acc-initial";
    cfg.initial_refresh_token = "ref-initial";
    if (hs_client_pool_new(&cfg, fake_store_tokens(&f->fs), &f->pool, NULL) != HS_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    hs_client_pool_free(f->pool);
    fake_store_cleanup(&f->fs);
    free(f);
    return 0;
}

struct waiter {
    struct hs_client_pool *pool;
    const char *key;
    struct hs_client *got;
    atomic_int done;
};

static void *acquire_thread(void *arg)
{
    struct waiter *w = arg;
    struct hs_client *c = NULL;
    assert_int_equal(hs_client_pool_acquire(w->pool, w->key, &c, NULL), HS_OK);
    w->got = c;
    atomic_store(&w->done, 1);
    hs_client_pool_release(w->pool, c);
    return NULL;
}

static void test_same_key_runs_in_parallel(void **state)
{
    struct fixture *f = *state;
    struct hs_client *c = NULL;
    assert_int_equal(hs_client_pool_acquire(f->pool, "org-1", &c, NULL), HS_OK);
    assert_non_null(c);
    struct waiter w = {.pool = f->pool, .key = "org-1"};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, acquire_thread, &w), 0);
    pthread_join(t, NULL); /* returns while c is still held: no waiting for it */
    assert_int_equal(atomic_load(&w.done), 1);
    assert_ptr_not_equal(w.got, c);   /* a clone of the connection's client */
    assert_int_equal(f->fs.loads, 1); /* one client made for the connection */
    hs_client_pool_release(f->pool, c);
}

static void test_other_keys_do_not_wait(void **state)
{
    struct fixture *f = *state;
    struct hs_client *a = NULL, *b = NULL;
    assert_int_equal(hs_client_pool_acquire(f->pool, "org-1", &a, NULL), HS_OK);
    struct waiter w = {.pool = f->pool, .key = "org-2"};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, acquire_thread, &w), 0);
    pthread_join(t, NULL); /* returns although org-1 is held */
    assert_non_null(w.got);
    assert_ptr_not_equal(w.got, a);
    assert_int_equal(hs_client_pool_acquire(f->pool, "org-2", &b, NULL), HS_OK);
    assert_string_equal(hs_client_credential_key(b), "org-2");
    assert_string_equal(hs_client_credential_key(a), "org-1");
    hs_client_pool_release(f->pool, b);
    hs_client_pool_release(f->pool, a);
}

/* Many threads on two keys, holding clients at the same time: every acquire succeeds and each
 * connection's client is made once. */
struct hammer {
    struct hs_client_pool *pool;
    const char *key;
    atomic_int *holders;
    atomic_int *violations;
};

static void *hammer_thread(void *arg)
{
    struct hammer *h = arg;
    for (int i = 0; i < 200; i++) {
        struct hs_client *c = NULL;
        if (hs_client_pool_acquire(h->pool, h->key, &c, NULL) != HS_OK) {
            atomic_fetch_add(h->violations, 1);
            continue;
        }
        atomic_fetch_add(h->holders, 1);
        if (strcmp(hs_client_credential_key(c), h->key) != 0)
            atomic_fetch_add(h->violations, 1);
        atomic_fetch_sub(h->holders, 1);
        hs_client_pool_release(h->pool, c);
    }
    return NULL;
}

static void test_many_holders(void **state)
{
    struct fixture *f = *state;
    atomic_int holders[2] = {0, 0}, violations = 0;
    struct hammer h[8];
    pthread_t t[8];
    for (int i = 0; i < 8; i++) {
        h[i] = (struct hammer){f->pool, i % 2 ? "org-a" : "org-b", &holders[i % 2], &violations};
        assert_int_equal(pthread_create(&t[i], NULL, hammer_thread, &h[i]), 0);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&violations), 0);
    assert_int_equal(f->fs.loads, 2);
}

static void test_initial_pair_only_for_its_connection(void **state)
{
    struct fixture *f = *state;
    struct hs_client *c = NULL;
    assert_int_equal(hs_client_pool_acquire(f->pool, "default", &c, NULL), HS_OK);
    hs_client_pool_release(f->pool, c);
    const struct hs_token *t = fake_store_get(&f->fs, "default");
    assert_non_null(t);
    assert_string_equal(t->access_token, "acc-initial");
    assert_int_equal(hs_client_pool_acquire(f->pool, "org-471122", &c, NULL), HS_OK);
    hs_client_pool_release(f->pool, c);
    assert_null(fake_store_get(&f->fs, "org-471122"));
    /* NULL or "" means the configured connection. */
    struct hs_client *d = NULL;
    assert_int_equal(hs_client_pool_acquire(f->pool, NULL, &d, NULL), HS_OK);
    struct hs_client *e = NULL;
    assert_int_equal(hs_client_pool_acquire(f->pool, "default", &e, NULL), HS_OK);
    assert_string_equal(hs_client_credential_key(d), "default");
    assert_string_equal(hs_client_credential_key(e), "default");
    hs_client_pool_release(f->pool, d);
    hs_client_pool_release(f->pool, e);
}

static void test_shared_limiter_and_stats(void **state)
{
    struct fixture *f = *state;
    assert_non_null(hs_client_pool_limiter(f->pool));
    struct hs_client_stats st;
    hs_client_pool_get_stats(f->pool, &st);
    assert_int_equal(st.requests, 0);
    assert_int_equal(st.rate_limit_waits, 0);

    /* A limiter given in the template is the one every client uses, and it stays the
     * caller's. */
    struct hs_limiter *l = hs_limiter_new(5, 60000, NULL);
    struct hs_client_config cfg = {0};
    hs_client_config_defaults(&cfg);
    cfg.base_url = "http://127.0.0.1:9";
    cfg.limiter = l;
    struct hs_client_pool *p = NULL;
    assert_int_equal(hs_client_pool_new(&cfg, fake_store_tokens(&f->fs), &p, NULL), HS_OK);
    assert_ptr_equal(hs_client_pool_limiter(p), l);
    struct hs_client_provider prov = hs_client_pool_provider(p);
    struct hs_client *c = NULL;
    assert_int_equal(prov.acquire(prov.ctx, "x", &c, NULL), HS_OK);
    prov.release(prov.ctx, c);
    hs_client_pool_free(p);
    hs_limiter_free(l); /* still valid after the pool is gone */
}

static void test_bad_config(void **state)
{
    (void)state;
    struct hs_client_config cfg = {0};
    struct hs_client_pool *p = NULL;
    struct hs_error err = {0};
    assert_int_equal(hs_client_pool_new(&cfg, (struct hs_token_store){0}, &p, &err),
                     HS_ERR_INVALID);
    assert_null(p);
    hs_client_pool_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_same_key_runs_in_parallel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_keys_do_not_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_holders, setup, teardown),
        cmocka_unit_test_setup_teardown(test_initial_pair_only_for_its_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_limiter_and_stats, setup, teardown),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests_name("hover-pool", tests, NULL, NULL);
}
