/* test_service.c: the storage suite: settings, browser sessions, connections, named leases
 * (store/service.h),
 * through the store interface only (store_test.h), so that every back-end runs it. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/mem.h"
#include "store/service.h"
#include "store_test.h"

static void test_settings_roundtrip(void **state)
{
    struct fixture *f = *state;
    char *v = (char *)"untouched";
    struct hs_error err = {0};
    assert_int_equal(f->store->service->setting_get(f->store, "api_key_sha256", &v, &err),
                     HS_ERR_NOT_FOUND);
    assert_string_equal(v, "untouched");
    assert_int_equal(f->store->service->setting_put(f->store, "api_key_sha256", "aa", NULL), HS_OK);
    assert_int_equal(f->store->service->setting_put(f->store, "api_key_sha256", "bb", NULL), HS_OK);
    assert_int_equal(f->store->service->setting_put(f->store, NULL, "bb", &err), HS_ERR_INVALID);
    hs_store_close(f->store);
    assert_int_equal(open_store(f, &f->store), HS_OK);
    assert_int_equal(f->store->service->setting_get(f->store, "api_key_sha256", &v, NULL), HS_OK);
    assert_string_equal(v, "bb");
    free(v);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM settings"), 1);
}

static struct hs_session session(const char *hash, int64_t created, int64_t expires)
{
    struct hs_session s = {0};
    s.token_sha256 = (char *)hash;
    s.csrf_token = (char *)"csrf-1";
    s.created_at = created;
    s.expires_at = expires;
    s.user = (char *)"crm-user-7";
    return s;
}

static void test_sessions_expire_and_are_purged(void **state)
{
    struct fixture *f = *state;
    struct hs_session a = session(SHA_A, 1000, 2000);
    assert_int_equal(f->store->service->session_put(f->store, &a, NULL), HS_OK);
    struct hs_session out = {0};
    assert_int_equal(f->store->service->session_get(f->store, SHA_A, 1999, &out, NULL), HS_OK);
    assert_string_equal(out.token_sha256, SHA_A);
    assert_string_equal(out.csrf_token, "csrf-1");
    assert_string_equal(out.user, "crm-user-7");
    assert_int_equal(out.created_at, 1000);
    assert_int_equal(out.expires_at, 2000);
    hs_session_clear(&out);
    assert_null(out.csrf_token);
    /* Expired at its expiry second, and unknown hashes are not found either. */
    struct hs_error err = {0};
    assert_int_equal(f->store->service->session_get(f->store, SHA_A, 2000, &out, &err),
                     HS_ERR_NOT_FOUND);
    assert_null(out.token_sha256);
    assert_int_equal(f->store->service->session_get(f->store, SHA_B, 1500, &out, NULL),
                     HS_ERR_NOT_FOUND);
    /* No user is fine; a session that has already ended is refused. */
    struct hs_session b = session(SHA_B, 2500, 3000);
    b.user = NULL;
    struct hs_session bad = session(SHA_B, 2500, 2500);
    assert_int_equal(f->store->service->session_put(f->store, &bad, &err), HS_ERR_INVALID);
    /* Storing a session deletes the ones expired by then. */
    assert_int_equal(f->store->service->session_put(f->store, &b, NULL), HS_OK);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM sessions"), 1);
    assert_int_equal(f->store->service->session_get(f->store, SHA_B, 2600, &out, NULL), HS_OK);
    assert_null(out.user);
    hs_session_clear(&out);
    /* Only the hash is stored, never a token. */
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM sessions WHERE length(token_sha256) = 64"),
                     1);
}

/* A session's connections are stored with it, in the order given, and replaced by a put. */
static void test_session_connections_roundtrip(void **state)
{
    struct fixture *f = *state;
    const char *two[] = {"org-471122", "org-463605"};
    struct hs_session a = session(SHA_A, 1000, 2000);
    a.connections = (char **)two;
    a.n_connections = 2;
    assert_int_equal(f->store->service->session_put(f->store, &a, NULL), HS_OK);
    struct hs_session out = {0};
    assert_int_equal(f->store->service->session_get(f->store, SHA_A, 1500, &out, NULL), HS_OK);
    assert_int_equal(out.n_connections, 2);
    assert_string_equal(out.connections[0], "org-471122");
    assert_string_equal(out.connections[1], "org-463605");
    hs_session_clear(&out);
    /* A put replaces them (none is a session that may use no connection yet). */
    a.n_connections = 1;
    assert_int_equal(f->store->service->session_put(f->store, &a, NULL), HS_OK);
    assert_int_equal(f->store->service->session_get(f->store, SHA_A, 1500, &out, NULL), HS_OK);
    assert_int_equal(out.n_connections, 1);
    assert_string_equal(out.connections[0], "org-471122");
    hs_session_clear(&out);
    a.n_connections = 0;
    assert_int_equal(f->store->service->session_put(f->store, &a, NULL), HS_OK);
    assert_int_equal(f->store->service->session_get(f->store, SHA_A, 1500, &out, NULL), HS_OK);
    assert_int_equal(out.n_connections, 0);
    assert_null(out.connections);
    hs_session_clear(&out);
    /* An expired session goes with its connections. */
    a.n_connections = 2;
    assert_int_equal(f->store->service->session_put(f->store, &a, NULL), HS_OK);
    struct hs_session b = session(SHA_B, 2500, 3000);
    assert_int_equal(f->store->service->session_put(f->store, &b, NULL), HS_OK);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM session_connections"), 0);
    struct hs_session bad = session(SHA_B, 2500, 3000);
    const char *null_key[] = {NULL};
    bad.connections = (char **)null_key;
    bad.n_connections = 1;
    struct hs_error err = {0};
    assert_int_equal(f->store->service->session_put(f->store, &bad, &err), HS_ERR_INVALID);
}

static void test_connections_list(void **state)
{
    struct fixture *f = *state;
    struct hs_connection_row *v = (struct hs_connection_row *)1;
    size_t n = 9;
    assert_int_equal(f->store->service->connections_list(f->store, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 0);
    assert_null(v);
    struct hs_token a = pair("acc-a", "ref-a", 0);
    assert_int_equal(f->store->tokens->token_save(f->store, "org-463605", &a, NULL), HS_OK);
    usleep(5000); /* created_at has millisecond resolution */
    a.owner_id = 471122;
    assert_int_equal(f->store->tokens->token_save(f->store, "org-471122", &a, NULL), HS_OK);
    /* A reconnect (or a refresh) keeps the first connection time and the order. */
    usleep(5000);
    a.owner_id = 463605;
    assert_int_equal(f->store->tokens->token_save(f->store, "org-463605", &a, NULL), HS_OK);
    assert_int_equal(f->store->service->connections_list(f->store, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 2);
    assert_string_equal(v[0].key, "org-463605");
    assert_int_equal(v[0].owner_id, 463605);
    assert_string_equal(v[0].owner_type, "orgs");
    assert_true(v[0].has_token);
    assert_non_null(v[0].connected_at);
    assert_int_equal(strlen(v[0].connected_at), 24);
    assert_string_equal(v[1].key, "org-471122");
    assert_int_equal(v[1].owner_id, 471122);
    hs_connection_rows_free(v, n);
    /* A connection whose tokens were removed is listed without a token. */
    sql_exec(f, "DELETE FROM oauth_tokens WHERE connection_key = 'org-471122'");
    assert_int_equal(f->store->service->connections_list(f->store, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 2);
    assert_false(v[1].has_token);
    hs_connection_rows_free(v, n);
}

/* Two claimers of one lease on two handles (as two processes): one wins, the other is refused
 * until the lease lapses, and each claim's fence is greater than the one before; a claim that
 * lapsed and was taken over can neither renew nor release. */
static void test_lease_one_holder_until_it_lapses(void **state)
{
    struct fixture *f = *state;
    struct hs_store *a = f->store, *b = NULL;
    assert_int_equal(open_store(f, &b), HS_OK);
    int64_t fa = 0, fb = 0, fb2 = 0;
    struct hs_error err = {0};
    assert_int_equal(a->service->lease_claim(a, "duty:reconcile", 1000, 5000, &fa, NULL), HS_OK);
    assert_true(fa > 0);
    assert_int_equal(b->service->lease_claim(b, "duty:reconcile", 1001, 5000, &fb, &err),
                     HS_ERR_BUSY);
    assert_int_equal(fb, 0);
    assert_non_null(strstr(err.msg, "duty:reconcile"));
    /* Another name is another lease. */
    assert_int_equal(b->service->lease_claim(b, "duty:pending", 1001, 5000, &fb, NULL), HS_OK);
    /* Still held one millisecond before it ends; taken once it ended, under a greater fence. */
    assert_int_equal(b->service->lease_claim(b, "duty:reconcile", 5999, 5000, &fb, NULL),
                     HS_ERR_BUSY);
    assert_int_equal(b->service->lease_claim(b, "duty:reconcile", 6000, 5000, &fb, NULL), HS_OK);
    assert_true(fb > fa);
    assert_int_equal(a->service->lease_claim(a, "duty:reconcile", 6001, 5000, &fa, NULL),
                     HS_ERR_BUSY);
    /* The first holder's claim is over: its renew and its release are refused. */
    memset(&err, 0, sizeof err);
    assert_int_equal(a->service->lease_renew(a, "duty:reconcile", fa, 99000, &err),
                     HS_ERR_CONFLICT);
    assert_int_equal(a->service->lease_release(a, "duty:reconcile", fa, NULL), HS_ERR_CONFLICT);
    /* The holder renews (lapsed or not, while nobody claimed it again) ... */
    assert_int_equal(b->service->lease_renew(b, "duty:reconcile", fb, 20000, NULL), HS_OK);
    assert_int_equal(a->service->lease_claim(a, "duty:reconcile", 15000, 5000, &fa, NULL),
                     HS_ERR_BUSY);
    /* ... and releases: the next claim takes it at once, under a greater fence still. */
    assert_int_equal(b->service->lease_release(b, "duty:reconcile", fb, NULL), HS_OK);
    assert_int_equal(b->service->lease_release(b, "duty:reconcile", fb, NULL), HS_ERR_CONFLICT);
    assert_int_equal(a->service->lease_claim(a, "duty:reconcile", 15000, 5000, &fb2, NULL), HS_OK);
    assert_true(fb2 > fb);
    /* Kept across a reopen: the lease is the store's, not a handle's. */
    hs_store_close(b);
    assert_int_equal(open_store(f, &b), HS_OK);
    assert_int_equal(b->service->lease_claim(b, "duty:reconcile", 19999, 5000, &fb, NULL),
                     HS_ERR_BUSY);
    hs_store_close(b);
}

/* Claimers in several processes at once, each claiming the lease as often as it can over one
 * stretch of (injected) time: one claim per lease period, whoever makes it, and the fences
 * strictly increase. */
static void test_lease_claims_race_across_processes(void **state)
{
    struct fixture *f = *state;
    enum { PROCS = 3, PERIODS = 20, PERIOD = 1000 };
    int fds[PROCS][2];
    pid_t pids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        assert_int_equal(pipe(fds[p]), 0);
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0) {
            struct hs_store *s = NULL;
            if (open_store(f, &s))
                _exit(3);
            /* Every claimer tries every 100 ms of the stretch, all of them at each instant. */
            for (int64_t now = 0; now < PERIODS * PERIOD; now += 100) {
                int64_t fence = 0;
                int rc = s->service->lease_claim(s, "duty:x", now, PERIOD, &fence, NULL);
                int64_t rec[2] = {now, fence};
                if (rc == HS_OK && write(fds[p][1], rec, sizeof rec) != (ssize_t)sizeof rec)
                    _exit(4);
                if (rc != HS_OK && rc != HS_ERR_BUSY)
                    _exit(5);
            }
            hs_store_close(s);
            _exit(0);
        }
        close(fds[p][1]);
    }
    int64_t won[PERIODS + 1] = {0};
    int64_t fences[PROCS * PERIODS * 10];
    size_t nf = 0;
    for (int p = 0; p < PROCS; p++) {
        int64_t rec[2];
        while (read(fds[p][0], rec, sizeof rec) == (ssize_t)sizeof rec) {
            assert_true(nf < sizeof fences / sizeof fences[0]);
            fences[nf++] = rec[1];
            won[rec[0] / PERIOD]++;
        }
        close(fds[p][0]);
        int status = 0;
        waitpid(pids[p], &status, 0);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    /* Claims land in one period at most once; the fences are distinct (each claim its own). */
    for (int i = 0; i < PERIODS; i++)
        assert_true(won[i] <= 1);
    for (size_t i = 0; i < nf; i++)
        for (size_t j = i + 1; j < nf; j++)
            assert_true(fences[i] != fences[j]);
    assert_true(nf >= 1);
    assert_int_equal(sql_int(f, "SELECT fence FROM leases WHERE name = 'duty:x'"), (int64_t)nf);
}

static void test_lease_refuses_bad_arguments(void **state)
{
    struct fixture *f = *state;
    int64_t fence = 0;
    struct hs_error err = {0};
    assert_int_equal(f->store->service->lease_claim(f->store, NULL, 0, 1000, &fence, &err),
                     HS_ERR_INVALID);
    assert_int_equal(f->store->service->lease_claim(f->store, "x", 0, 0, &fence, &err),
                     HS_ERR_INVALID);
    assert_int_equal(f->store->service->lease_renew(f->store, "never", 1, 10, &err),
                     HS_ERR_CONFLICT);
    /* A lease runs its own transaction: it refuses to join one. */
    assert_int_equal(f->store->ops->begin(f->store, NULL), HS_OK);
    assert_int_not_equal(f->store->service->lease_claim(f->store, "x", 0, 1000, &fence, &err),
                         HS_OK);
    f->store->ops->rollback(f->store);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STORE_TEST(test_settings_roundtrip),
        STORE_TEST(test_sessions_expire_and_are_purged),
        STORE_TEST(test_session_connections_roundtrip),
        STORE_TEST(test_connections_list),
        STORE_TEST(test_lease_one_holder_until_it_lapses),
        STORE_TEST(test_lease_claims_race_across_processes),
        STORE_TEST(test_lease_refuses_bad_arguments),
    };
    return STORE_TESTS("store service", tests);
}
