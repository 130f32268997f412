/* test_tokens.c: the storage suite: OAuth token pairs and their refresh lease (store/tokens.h),
 * through the store interface only (store_test.h), so that every back-end runs it. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/mem.h"
#include "store/service.h"
#include "store/tokens.h"
#include "store/webhooks.h"
#include "store_test.h"

static void test_missing_token_is_not_found(void **state)
{
    struct fixture *f = *state;
    struct hs_token t = {0};
    struct hs_error err = {0};
    assert_int_equal(f->store->tokens->token_load(f->store, "default", &t, &err), HS_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "default"));
    assert_null(t.access_token);
}

static void test_save_load_roundtrip_survives_reopen(void **state)
{
    struct fixture *f = *state;
    struct hs_token in = pair("acc-1", "ref-1", 1800000000);
    assert_int_equal(f->store->tokens->token_save(f->store, "org-1", &in, NULL), HS_OK);
    hs_store_close(f->store);
    assert_int_equal(open_store(f, &f->store), HS_OK);

    struct hs_token out = {0};
    assert_int_equal(f->store->tokens->token_load(f->store, "org-1", &out, NULL), HS_OK);
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
    assert_int_equal(f->store->tokens->token_save(f->store, "k", &a, NULL), HS_OK);
    assert_int_equal(f->store->tokens->token_save(f->store, "k", &b, NULL), HS_OK);
    struct hs_token out = {0};
    assert_int_equal(f->store->tokens->token_load(f->store, "k", &out, NULL), HS_OK);
    assert_string_equal(out.access_token, "acc-2");
    assert_int_equal(out.generation, 2);
    hs_token_clear(&out);
}

/* The lease of a refresh of credential k, claimed through st at now_ms for lease_ms. */
static int64_t claim(struct hs_store *st, const char *k, int64_t now_ms, int64_t lease_ms,
                     struct hs_token *cur)
{
    int64_t fence = 0;
    struct hs_error err = {0};
    int rc = st->tokens->token_refresh_claim(st, k, now_ms, lease_ms, &fence, cur, &err);
    if (rc)
        fprintf(stderr, "token_refresh_claim: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    assert_true(fence > 0);
    return fence;
}

static void test_refresh_finish_without_a_pair_stores_nothing(void **state)
{
    struct fixture *f = *state;
    struct hs_token a = pair("acc-1", "ref-1", 100);
    assert_int_equal(f->store->tokens->token_save(f->store, "k", &a, NULL), HS_OK);
    struct hs_token cur = {0};
    int64_t fence = claim(f->store, "k", 1000, 60000, &cur);
    assert_string_equal(cur.refresh_token, "ref-1");
    assert_int_equal(cur.generation, 1);
    hs_token_clear(&cur);
    assert_int_equal(f->store->tokens->token_refresh_finish(f->store, "k", fence, NULL, NULL),
                     HS_OK);
    struct hs_token out = {0};
    assert_int_equal(f->store->tokens->token_load(f->store, "k", &out, NULL), HS_OK);
    assert_string_equal(out.access_token, "acc-1");
    assert_int_equal(out.generation, 1);
    hs_token_clear(&out);
    /* Released: the next refresh claims it at once, under a new fence. */
    assert_true(claim(f->store, "k", 1001, 60000, &cur) > fence);
    hs_token_clear(&cur);
}

static void test_refresh_without_stored_pair(void **state)
{
    struct fixture *f = *state;
    struct hs_token cur = {.access_token = (char *)"not touched"};
    int64_t fence = claim(f->store, "new", 1000, 60000, &cur);
    assert_null(cur.access_token); /* none stored: the caller refreshes the pair it holds */
    struct hs_token r = pair("acc-9", "ref-9", 9);
    assert_int_equal(f->store->tokens->token_refresh_finish(f->store, "new", fence, &r, NULL),
                     HS_OK);
    struct hs_token out = {0};
    assert_int_equal(f->store->tokens->token_load(f->store, "new", &out, NULL), HS_OK);
    assert_string_equal(out.refresh_token, "ref-9");
    hs_token_clear(&out);
}

/* A finish that is not the live claim's stores nothing: never claimed, or finished already. */
static void test_refresh_finish_without_a_claim_is_refused(void **state)
{
    struct fixture *f = *state;
    struct hs_token r = pair("a", "b", 1);
    struct hs_error err = {0};
    assert_int_equal(f->store->tokens->token_refresh_finish(f->store, "k", 1, &r, &err),
                     HS_ERR_CONFLICT);
    struct hs_token out = {0};
    assert_int_equal(f->store->tokens->token_load(f->store, "k", &out, NULL), HS_ERR_NOT_FOUND);
    struct hs_token cur = {0};
    int64_t fence = claim(f->store, "k", 1000, 60000, &cur);
    assert_int_equal(f->store->tokens->token_refresh_finish(f->store, "k", fence, &r, NULL), HS_OK);
    assert_int_equal(f->store->tokens->token_refresh_finish(f->store, "k", fence, &r, NULL),
                     HS_ERR_CONFLICT);
    assert_int_equal(f->store->tokens->token_refresh_renew(f->store, "k", fence, 99999, NULL),
                     HS_ERR_CONFLICT);
    assert_int_equal(f->store->tokens->token_load(f->store, "k", &out, NULL), HS_OK);
    assert_int_equal(out.generation, 1); /* stored once */
    hs_token_clear(&out);
}

/* A refresh in another process holds the credential: ours is told so, and once the other one
 * stored its rotated pair, ours gets the lease and reads that pair, never the stale one (two
 * refreshers would invalidate each other). */
static void test_refresh_is_exclusive_across_processes(void **state)
{
    struct fixture *f = *state;
    struct hs_token a = pair("acc-old", "ref-old", 100);
    assert_int_equal(f->store->tokens->token_save(f->store, "k", &a, NULL), HS_OK);

    int to_parent[2], to_child[2];
    assert_int_equal(pipe(to_parent), 0);
    assert_int_equal(pipe(to_child), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct hs_store *s = NULL;
        struct hs_token cur = {0};
        int64_t fence = 0;
        char c = 'x';
        if (open_store(f, &s) ||
            s->tokens->token_refresh_claim(s, "k", 1000, 60000, &fence, &cur, NULL))
            _exit(3);
        if (write(to_parent[1], "L", 1) != 1 || read(to_child[0], &c, 1) != 1)
            _exit(4);
        struct hs_token r = pair("acc-new", "ref-new", 200);
        int rc = s->tokens->token_refresh_finish(s, "k", fence, &r, NULL);
        hs_store_close(s);
        _exit(rc ? 5 : 0);
    }
    char c;
    assert_int_equal(read(to_parent[0], &c, 1), 1); /* the child holds the credential */

    struct hs_store *mine = NULL;
    assert_int_equal(open_store(f, &mine), HS_OK);
    struct hs_token seen = {0};
    int64_t fence = 0;
    struct hs_error err = {0};
    assert_int_equal(mine->tokens->token_refresh_claim(mine, "k", 2000, 60000, &fence, &seen, &err),
                     HS_ERR_BUSY);
    assert_null(seen.access_token);
    assert_int_equal(write(to_child[1], "G", 1), 1);
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    fence = claim(mine, "k", 3000, 60000, &seen);
    assert_string_equal(seen.access_token, "acc-new");
    assert_string_equal(seen.refresh_token, "ref-new");
    assert_int_equal(seen.generation, 2);
    hs_token_clear(&seen);
    assert_int_equal(mine->tokens->token_refresh_finish(mine, "k", fence, NULL, NULL), HS_OK);
    hs_store_close(mine);
}

/* A refresher that died (or stalled) holds the credential only until its lease lapses; then
 * another takes it, and the late one can neither keep it nor store a pair. */
static void test_lapsed_refresh_is_taken_over_and_fenced(void **state)
{
    struct fixture *f = *state;
    struct hs_token a = pair("acc-1", "ref-1", 100);
    assert_int_equal(f->store->tokens->token_save(f->store, "k", &a, NULL), HS_OK);
    struct hs_token cur = {0};
    int64_t late = claim(f->store, "k", 1000, 5000, &cur);
    hs_token_clear(&cur);
    int64_t fence = 0;
    assert_int_equal(
        f->store->tokens->token_refresh_claim(f->store, "k", 5999, 5000, &fence, &cur, NULL),
        HS_ERR_BUSY);
    int64_t next = claim(f->store, "k", 6000, 5000, &cur);
    assert_true(next > late);
    assert_string_equal(cur.access_token, "acc-1");
    hs_token_clear(&cur);
    struct hs_token stale = pair("acc-late", "ref-late", 300);
    assert_int_equal(f->store->tokens->token_refresh_renew(f->store, "k", late, 90000, NULL),
                     HS_ERR_CONFLICT);
    assert_int_equal(f->store->tokens->token_refresh_finish(f->store, "k", late, &stale, NULL),
                     HS_ERR_CONFLICT);
    struct hs_token fresh = pair("acc-2", "ref-2", 200);
    assert_int_equal(f->store->tokens->token_refresh_finish(f->store, "k", next, &fresh, NULL),
                     HS_OK);
    struct hs_token out = {0};
    assert_int_equal(f->store->tokens->token_load(f->store, "k", &out, NULL), HS_OK);
    assert_string_equal(out.access_token, "acc-2");
    assert_int_equal(out.generation, 2);
    hs_token_clear(&out);
}

/* A live refresh renews its lease while its request retries: nobody takes it meanwhile. */
static void test_renewed_refresh_is_kept(void **state)
{
    struct fixture *f = *state;
    struct hs_token cur = {0};
    int64_t fence = claim(f->store, "k", 1000, 5000, &cur);
    assert_int_equal(f->store->tokens->token_refresh_renew(f->store, "k", fence, 20000, NULL),
                     HS_OK);
    int64_t other = 0;
    assert_int_equal(
        f->store->tokens->token_refresh_claim(f->store, "k", 19999, 5000, &other, &cur, NULL),
        HS_ERR_BUSY);
    /* Another credential's refresh is not held up by this one. */
    int64_t k2 = claim(f->store, "k2", 1000, 5000, &cur);
    assert_int_equal(f->store->tokens->token_refresh_finish(f->store, "k2", k2, NULL, NULL), HS_OK);
    assert_int_equal(f->store->tokens->token_refresh_finish(f->store, "k", fence, NULL, NULL),
                     HS_OK);
}

/* A write of another thread (as the webhook intake would do) while a refresh is in flight. */
struct intake {
    struct hs_store *store;
    int64_t id;
    int rc;
};

static void *intake_main(void *arg)
{
    struct intake *in = arg;
    struct hs_event_row e = {.webhook_id = 230293,
                             .connection_key = (char *)"org-1",
                             .event = (char *)"job-state-changed-v2",
                             .job_id = 77,
                             .body = (char *)"{}",
                             .body_len = 2,
                             .status = (char *)"accepted"};
    in->rc = in->store->webhooks->event_accept(in->store, &e, true, 0, 1000, &in->id, NULL);
    return NULL;
}

/* The store's writes do not wait for a refresh: its lease is a row, not an open transaction, so
 * webhook intake, another credential's save and a sync's write go on while /oauth/token is slow
 * (on this thread, which holds the lease, and on another). */
static void test_writes_go_on_while_a_refresh_is_in_flight(void **state)
{
    struct fixture *f = *state;
    connect_key(f, "org-1");
    struct hs_token cur = {0};
    int64_t fence = claim(f->store, "org-1", 1000, 60000, &cur);
    hs_token_clear(&cur);

    struct intake mine = {.store = f->store};
    intake_main(&mine);
    assert_int_equal(mine.rc, HS_OK);
    assert_true(mine.id > 0);
    struct intake other = {.store = f->store};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, intake_main, &other), 0);
    pthread_join(th, NULL);
    assert_int_equal(other.rc, HS_OK);
    assert_true(other.id > mine.id);
    struct hs_token b = pair("acc-b", "ref-b", 100);
    assert_int_equal(f->store->tokens->token_save(f->store, "org-2", &b, NULL), HS_OK);
    struct test_job t;
    make_job(&t);
    upsert(f, &t.job, true);

    struct hs_token fresh = pair("acc-2", "ref-2", 200);
    assert_int_equal(f->store->tokens->token_refresh_finish(f->store, "org-1", fence, &fresh, NULL),
                     HS_OK);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_events"), 2);
}

/* A refused refresh token makes the connection need a reconnect until a new pair is saved. */
static void test_rejected_grant_until_reconnected(void **state)
{
    struct fixture *f = *state;
    const struct hs_token_ops *ops = f->store->tokens;
    struct hs_token a = pair("acc-a", "ref-a", 0);
    assert_int_equal(ops->token_save(f->store, "org-463605", &a, NULL), HS_OK);
    struct hs_token cur = {0};
    assert_int_equal(ops->token_load(f->store, "org-463605", &cur, NULL), HS_OK);
    assert_int_equal(ops->token_rejected(f->store, "org-463605", cur.generation, NULL), HS_OK);
    assert_int_equal(ops->token_rejected(f->store, "org-nobody", 1, NULL), HS_OK); /* ignored */
    struct hs_connection_row *v = NULL;
    size_t n = 0;
    assert_int_equal(f->store->service->connections_list(f->store, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 1);
    assert_true(v[0].reconnect_required);
    hs_connection_rows_free(v, n);
    /* Connected again: a new pair, a new generation. */
    assert_int_equal(ops->token_save(f->store, "org-463605", &a, NULL), HS_OK);
    assert_int_equal(f->store->service->connections_list(f->store, &v, &n, NULL), HS_OK);
    assert_false(v[0].reconnect_required);
    hs_connection_rows_free(v, n);
    hs_token_clear(&cur);
}

static void test_token_op_inside_transaction_is_refused(void **state)
{
    struct fixture *f = *state;
    const struct hs_store_ops *ops = f->store->ops;
    assert_int_equal(ops->begin(f->store, NULL), HS_OK);
    struct hs_token a = pair("x", "y", 1);
    struct hs_error err = {0};
    assert_int_equal(f->store->tokens->token_save(f->store, "k", &a, &err), HS_ERR_INTERNAL);
    assert_int_equal(ops->begin(f->store, NULL), HS_ERR_INTERNAL);
    int64_t fence = 0;
    struct hs_token cur = {0};
    assert_int_equal(
        f->store->tokens->token_refresh_claim(f->store, "k", 1000, 60000, &fence, &cur, NULL),
        HS_ERR_INTERNAL);
    ops->rollback(f->store);
    assert_int_equal(f->store->tokens->token_save(f->store, "k", &a, NULL), HS_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STORE_TEST(test_missing_token_is_not_found),
        STORE_TEST(test_save_load_roundtrip_survives_reopen),
        STORE_TEST(test_save_replaces_and_bumps_generation),
        STORE_TEST(test_refresh_finish_without_a_pair_stores_nothing),
        STORE_TEST(test_refresh_without_stored_pair),
        STORE_TEST(test_refresh_finish_without_a_claim_is_refused),
        STORE_TEST(test_refresh_is_exclusive_across_processes),
        STORE_TEST(test_lapsed_refresh_is_taken_over_and_fenced),
        STORE_TEST(test_renewed_refresh_is_kept),
        STORE_TEST(test_writes_go_on_while_a_refresh_is_in_flight),
        STORE_TEST(test_rejected_grant_until_reconnected),
        STORE_TEST(test_token_op_inside_transaction_is_refused),
    };
    return STORE_TESTS("store tokens", tests);
}
