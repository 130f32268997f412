/* test_service.c: the storage suite: settings, browser sessions, connections, named leases, and the
 * state the service's instances share: connect flows, image sources, callers' counts
 * (store/service.h), through the store interface only (store_test.h), so that every back-end runs
 * it. */
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

/* ---- what the service's instances share ---- */

#define NOW 1700000000000LL

static const struct hs_flow_limits LIMITS = {.per_browser = 2, .per_address = 3, .total = 4};

/* A flow of browser b (one hex digit repeated) from address addr, id i repeated. */
static struct hs_connect_flow flow(char i, char b, const char *addr, int64_t expires)
{
    struct hs_connect_flow fl = {0};
    memset(fl.id_sha256, i, 64);
    memset(fl.browser_sha256, b, 64);
    snprintf(fl.address, sizeof fl.address, "%s", addr);
    fl.connection = (char *)"org-1";
    fl.expires_ms = expires;
    return fl;
}

static int take(struct hs_store *s, char i, char b, bool confirm, int64_t now,
                struct hs_connect_flow *out)
{
    char id[65], br[65];
    memset(id, i, 64);
    id[64] = 0;
    memset(br, b, 64);
    br[64] = 0;
    return s->service->flow_take(s, id, br, confirm, now, out, NULL);
}

/* A flow started through one process is completed through another, once, and only by the
 * browser that started it. */
static void test_connect_flow_single_use_across_processes(void **state)
{
    struct fixture *f = *state;
    struct hs_store *other = NULL;
    assert_int_equal(open_store(f, &other), HS_OK);
    struct hs_connect_flow fl = flow('a', '1', "10.0.0.1", NOW + 600000);
    fl.session = (char *)"sess-hash";
    assert_int_equal(f->store->service->flow_put(f->store, &fl, &LIMITS, NOW, NULL), HS_OK);
    struct hs_connect_flow got = {0};
    assert_int_equal(take(other, 'a', '2', false, NOW + 1, &got), HS_ERR_NOT_FOUND); /* another
                                                                                        browser */
    assert_int_equal(take(other, 'a', '1', true, NOW + 1, &got), HS_ERR_NOT_FOUND);  /* stage */
    assert_int_equal(take(other, 'a', '1', false, NOW + 1, &got), HS_OK);
    assert_string_equal(got.connection, "org-1");
    assert_string_equal(got.session, "sess-hash");
    assert_string_equal(got.address, "10.0.0.1");
    assert_false(got.confirm);
    hs_connect_flow_clear(&got);
    assert_int_equal(take(f->store, 'a', '1', false, NOW + 2, &got), HS_ERR_NOT_FOUND);
    /* Expired: refused. */
    fl = flow('b', '1', "10.0.0.1", NOW + 10);
    assert_int_equal(f->store->service->flow_put(f->store, &fl, &LIMITS, NOW, NULL), HS_OK);
    assert_int_equal(take(other, 'b', '1', false, NOW + 10, &got), HS_ERR_NOT_FOUND);
    hs_store_close(other);
}

/* Bounded: a browser's oldest flow gives way to its new one; an address beyond its share is
 * refused; when every slot is pending, new flows are refused, never someone else's evicted. */
static void test_connect_flows_are_bounded(void **state)
{
    struct fixture *f = *state;
    const struct hs_service_ops *o = f->store->service;
    struct hs_connect_flow fl = flow('a', '1', "10.0.0.1", NOW + 1000);
    assert_int_equal(o->flow_put(f->store, &fl, &LIMITS, NOW, NULL), HS_OK);
    fl = flow('b', '1', "10.0.0.1", NOW + 2000);
    assert_int_equal(o->flow_put(f->store, &fl, &LIMITS, NOW, NULL), HS_OK);
    fl = flow('c', '1', "10.0.0.1", NOW + 3000); /* the browser's third: 'a' goes */
    assert_int_equal(o->flow_put(f->store, &fl, &LIMITS, NOW, NULL), HS_OK);
    struct hs_connect_flow got = {0};
    assert_int_equal(take(f->store, 'a', '1', false, NOW, &got), HS_ERR_NOT_FOUND);
    fl = flow('d', '2', "10.0.0.1", NOW + 3000); /* the address's third */
    assert_int_equal(o->flow_put(f->store, &fl, &LIMITS, NOW, NULL), HS_OK);
    fl = flow('e', '3', "10.0.0.1", NOW + 3000); /* its fourth: refused */
    assert_int_equal(o->flow_put(f->store, &fl, &LIMITS, NOW, NULL), HS_ERR_RATE_LIMITED);
    fl = flow('f', '4', "10.0.0.2", NOW + 3000); /* the fourth in all */
    assert_int_equal(o->flow_put(f->store, &fl, &LIMITS, NOW, NULL), HS_OK);
    fl = flow('g', '5', "10.0.0.3", NOW + 3000);
    assert_int_equal(o->flow_put(f->store, &fl, &LIMITS, NOW, NULL), HS_ERR_BUSY);
    /* Once the first expires, there is room again. */
    assert_int_equal(o->flow_put(f->store, &fl, &LIMITS, NOW + 2000, NULL), HS_OK);
    assert_int_equal(take(f->store, 'c', '1', false, NOW + 2000, &got), HS_OK);
    hs_connect_flow_clear(&got);
}

/* A re-point waiting for its confirmation keeps the grant, for whichever process the answer
 * reaches. */
static void test_connect_flow_keeps_the_grant_until_confirmed(void **state)
{
    struct fixture *f = *state;
    struct hs_store *other = NULL;
    assert_int_equal(open_store(f, &other), HS_OK);
    struct hs_connect_flow fl = flow('c', '1', "10.0.0.1", NOW + 600000);
    fl.connection = NULL;
    fl.confirm = true;
    fl.key = (char *)"sales";
    fl.old_owner = 463605;
    fl.grant = pair("acc-new", "ref-new", 1800000000);
    fl.grant.owner_id = 471122;
    assert_int_equal(f->store->service->flow_put(f->store, &fl, &LIMITS, NOW, NULL), HS_OK);
    struct hs_connect_flow got = {0};
    assert_int_equal(take(other, 'c', '1', false, NOW, &got), HS_ERR_NOT_FOUND);
    assert_int_equal(take(other, 'c', '1', true, NOW, &got), HS_OK);
    assert_true(got.confirm);
    assert_string_equal(got.key, "sales");
    assert_int_equal(got.old_owner, 463605);
    assert_string_equal(got.grant.access_token, "acc-new");
    assert_string_equal(got.grant.refresh_token, "ref-new");
    assert_int_equal(got.grant.owner_id, 471122);
    assert_string_equal(got.grant.owner_type, "orgs");
    assert_null(got.connection);
    hs_connect_flow_clear(&got);
    hs_store_close(other);
}

/* rotate-key: a re-point waiting for its confirmation holds a grant sealed under the old key, so
 * it is dropped (its user connects again); a flow that holds no grant stays. */
static void test_rotate_key_drops_pending_repoints(void **state)
{
    struct fixture *f = *state;
    struct hs_connect_flow fl = flow('c', '1', "10.0.0.1", NOW + 600000);
    fl.confirm = true;
    fl.key = (char *)"sales";
    fl.grant = pair("acc-new", "ref-new", 1800000000);
    assert_int_equal(f->store->service->flow_put(f->store, &fl, &LIMITS, NOW, NULL), HS_OK);
    fl = flow('a', '2', "10.0.0.1", NOW + 600000);
    assert_int_equal(f->store->service->flow_put(f->store, &fl, &LIMITS, NOW, NULL), HS_OK);
    int64_t n = 0;
    assert_int_equal(f->store->ops->secrets_rekey(
                         f->store, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", &n, NULL),
                     HS_OK);
    struct hs_connect_flow got = {0};
    assert_int_equal(take(f->store, 'c', '1', true, NOW + 1, &got), HS_ERR_NOT_FOUND);
    assert_int_equal(take(f->store, 'a', '2', false, NOW + 1, &got), HS_OK);
    hs_connect_flow_clear(&got);
}

/* A job shown by one instance: its images can be fetched through another, within scope. */
static void test_image_sources_shared_and_scoped(void **state)
{
    struct fixture *f = *state;
    struct hs_store *other = NULL;
    assert_int_equal(open_store(f, &other), HS_OK);
    struct hs_image_source v[2] = {
        {.image_id = 91, .model_id = 7, .connection_key = (char *)"org-a", .url = (char *)"u1"},
        {.image_id = 92, .model_id = 7, .connection_key = (char *)"org-a", .url = (char *)"u2"},
    };
    assert_int_equal(f->store->service->image_sources_put(f->store, v, 2, NOW, NULL), HS_OK);
    v[1].url = (char *)"u2-again";
    assert_int_equal(f->store->service->image_sources_put(f->store, &v[1], 1, NOW + 1, NULL),
                     HS_OK);
    struct hs_image_source got = {0};
    const char *a[] = {"org-a"}, *b[] = {"org-b"};
    struct hs_scope in = {a, 1}, out = {b, 1};
    assert_int_equal(other->service->image_source_get(other, 92, &out, &got, NULL),
                     HS_ERR_NOT_FOUND);
    assert_int_equal(other->service->image_source_get(other, 93, NULL, &got, NULL),
                     HS_ERR_NOT_FOUND);
    assert_int_equal(other->service->image_source_get(other, 92, &in, &got, NULL), HS_OK);
    assert_int_equal(got.model_id, 7);
    assert_string_equal(got.connection_key, "org-a");
    assert_string_equal(got.url, "u2-again");
    hs_image_source_clear(&got);
    assert_int_equal(other->service->image_source_get(other, 91, NULL, &got, NULL), HS_OK);
    assert_string_equal(got.url, "u1");
    hs_image_source_clear(&got);
    hs_store_close(other);
}

/* A caller's requests a minute are counted across processes; a new minute starts afresh. */
static void test_caller_rate_counted_across_processes(void **state)
{
    struct fixture *f = *state;
    struct hs_store *other = NULL;
    assert_int_equal(open_store(f, &other), HS_OK);
    int got = -1;
    assert_int_equal(f->store->service->caller_rate_take(f->store, "key", NOW, 5, 3, &got, NULL),
                     HS_OK);
    assert_int_equal(got, 3);
    assert_int_equal(other->service->caller_rate_take(other, "key", NOW, 5, 3, &got, NULL), HS_OK);
    assert_int_equal(got, 2);
    assert_int_equal(other->service->caller_rate_take(other, "key", NOW, 5, 1, &got, NULL), HS_OK);
    assert_int_equal(got, 0);
    /* Another caller has its own count. */
    assert_int_equal(other->service->caller_rate_take(other, "session:x", NOW, 5, 1, &got, NULL),
                     HS_OK);
    assert_int_equal(got, 1);
    /* The next minute: afresh, and the old minute's rows are gone (the table stays small). */
    assert_int_equal(
        f->store->service->caller_rate_take(f->store, "key", NOW + 60000, 5, 5, &got, NULL), HS_OK);
    assert_int_equal(got, 5);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM caller_rates"), 1);
    hs_store_close(other);
}

/* One process of the race below: its own handle; takes the flow 'r' of browser '1' once, then
 * one request of caller "key" at a time, ten times. */
struct taker {
    struct hs_store *store;
    int flows, granted, failed;
};

static void *take_main(void *arg)
{
    struct taker *k = arg;
    struct hs_connect_flow got = {0};
    int rc = take(k->store, 'r', '1', false, NOW + 1, &got);
    if (rc == HS_OK)
        k->flows++;
    else if (rc != HS_ERR_NOT_FOUND)
        k->failed++;
    hs_connect_flow_clear(&got);
    for (int i = 0; i < 10; i++) {
        int g = 0;
        if (k->store->service->caller_rate_take(k->store, "key", NOW, 25, 1, &g, NULL) != HS_OK)
            k->failed++;
        k->granted += g;
    }
    return NULL;
}

/* Four processes at once: a flow is taken by one of them, and a caller's minute gives out its
 * limit and no more, however their requests interleave. */
static void test_shared_state_taken_once_under_concurrency(void **state)
{
    struct fixture *f = *state;
    enum { P = 4 };
    struct hs_connect_flow fl = flow('r', '1', "10.0.0.1", NOW + 600000);
    assert_int_equal(f->store->service->flow_put(f->store, &fl, &LIMITS, NOW, NULL), HS_OK);
    struct taker k[P] = {0};
    pthread_t th[P];
    for (int i = 0; i < P; i++)
        assert_int_equal(open_store(f, &k[i].store), HS_OK);
    for (int i = 0; i < P; i++)
        assert_int_equal(pthread_create(&th[i], NULL, take_main, &k[i]), 0);
    int flows = 0, granted = 0;
    for (int i = 0; i < P; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(k[i].failed, 0);
        flows += k[i].flows;
        granted += k[i].granted;
        hs_store_close(k[i].store);
    }
    assert_int_equal(flows, 1);
    assert_int_equal(granted, 25);
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

/* Readiness reads the schema version: current once opened, behind when a migration is missing
 * (a store an older binary left, as a probe would see it before the migrations ran). */
static void test_schema_status_tells_current_or_behind(void **state)
{
    struct fixture *f = *state;
    int have = -1, want = -1;
    assert_int_equal(f->store->service->schema_status(f->store, &have, &want, NULL), HS_OK);
    assert_true(want > 0);
    assert_int_equal(have, want);
    sql_exec(f, "DELETE FROM schema_migrations WHERE version = (SELECT MAX(version) FROM "
                "schema_migrations)");
    assert_int_equal(f->store->service->schema_status(f->store, &have, &want, NULL), HS_OK);
    assert_true(have < want);
}

static void test_session_revoked_at_once(void **state)
{
    struct fixture *f = *state;
    const char *two[] = {"org-471122", "org-463605"};
    struct hs_session a = session(SHA_A, 1000, 2000);
    a.connections = (char **)two;
    a.n_connections = 2;
    struct hs_session b = session(SHA_B, 1000, 2000);
    assert_int_equal(f->store->service->session_put(f->store, &a, NULL), HS_OK);
    assert_int_equal(f->store->service->session_put(f->store, &b, NULL), HS_OK);
    /* Another handle (another process) no longer finds it once deleted; the other stays. */
    struct hs_store *other = NULL;
    assert_int_equal(open_store(f, &other), HS_OK);
    assert_int_equal(f->store->service->session_delete(f->store, SHA_A, NULL), HS_OK);
    struct hs_session out = {0};
    struct hs_error err = {0};
    assert_int_equal(other->service->session_get(other, SHA_A, 1500, &out, &err), HS_ERR_NOT_FOUND);
    assert_int_equal(other->service->session_get(other, SHA_B, 1500, &out, NULL), HS_OK);
    hs_session_clear(&out);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM session_connections"), 0);
    /* Deleting it again, or a hash never stored, is not found. */
    assert_int_equal(other->service->session_delete(other, SHA_A, &err), HS_ERR_NOT_FOUND);
    assert_int_equal(f->store->service->session_delete(f->store, NULL, &err), HS_ERR_INVALID);
    hs_store_close(other);
}

static void test_api_keys_named_and_revoked(void **state)
{
    struct fixture *f = *state;
    struct hs_service_ops const *sv = f->store->service;
    struct hs_api_key *v = NULL;
    size_t n = 7;
    assert_int_equal(sv->api_keys_list(f->store, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 0);
    hs_api_keys_free(v, n);
    assert_int_equal(sv->api_key_put(f->store, "zeta-crm", SHA_B, 1000, NULL), HS_OK);
    assert_int_equal(sv->api_key_put(f->store, "acme-crm", SHA_A, 2000, NULL), HS_OK);
    /* A name or a key is taken once. */
    struct hs_error err = {0};
    assert_int_equal(sv->api_key_put(f->store, "acme-crm", SHA_B, 3000, &err), HS_ERR_CONFLICT);
    assert_int_equal(sv->api_key_put(f->store, "other", SHA_A, 3000, &err), HS_ERR_CONFLICT);
    assert_int_equal(sv->api_key_put(f->store, "", SHA_A, 3000, &err), HS_ERR_INVALID);
    /* Another handle sees them, by name, never used yet. */
    struct hs_store *other = NULL;
    assert_int_equal(open_store(f, &other), HS_OK);
    assert_int_equal(other->service->api_keys_list(other, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 2);
    assert_string_equal(v[0].name, "acme-crm");
    assert_string_equal(v[0].key_sha256, SHA_A);
    assert_int_equal(v[0].created_at, 2000);
    assert_int_equal(v[0].last_used_at, 0);
    assert_string_equal(v[1].name, "zeta-crm");
    hs_api_keys_free(v, n);
    /* A use is noted to the minute: a second use within it writes nothing. */
    assert_int_equal(other->service->api_key_used(other, "acme-crm", 5000, NULL), HS_OK);
    assert_int_equal(other->service->api_key_used(other, "acme-crm", 5030, NULL), HS_OK);
    assert_int_equal(sql_int(f, "SELECT last_used_at FROM api_keys WHERE name = 'acme-crm'"), 5000);
    assert_int_equal(other->service->api_key_used(other, "acme-crm", 5060, NULL), HS_OK);
    assert_int_equal(sql_int(f, "SELECT last_used_at FROM api_keys WHERE name = 'acme-crm'"), 5060);
    /* Revoked: gone for every handle; revoking again is not found. */
    assert_int_equal(sv->api_key_delete(f->store, "acme-crm", NULL), HS_OK);
    assert_int_equal(other->service->api_keys_list(other, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].name, "zeta-crm");
    hs_api_keys_free(v, n);
    assert_int_equal(other->service->api_key_delete(other, "acme-crm", &err), HS_ERR_NOT_FOUND);
    /* Only hashes are stored. */
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM api_keys WHERE length(key_sha256) = 64"), 1);
    hs_store_close(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STORE_TEST(test_settings_roundtrip),
        STORE_TEST(test_sessions_expire_and_are_purged),
        STORE_TEST(test_session_connections_roundtrip),
        STORE_TEST(test_connections_list),
        STORE_TEST(test_connect_flow_single_use_across_processes),
        STORE_TEST(test_connect_flows_are_bounded),
        STORE_TEST(test_connect_flow_keeps_the_grant_until_confirmed),
        STORE_TEST(test_rotate_key_drops_pending_repoints),
        STORE_TEST(test_image_sources_shared_and_scoped),
        STORE_TEST(test_caller_rate_counted_across_processes),
        STORE_TEST(test_shared_state_taken_once_under_concurrency),
        STORE_TEST(test_lease_one_holder_until_it_lapses),
        STORE_TEST(test_lease_claims_race_across_processes),
        STORE_TEST(test_lease_refuses_bad_arguments),
        STORE_TEST(test_schema_status_tells_current_or_behind),
        STORE_TEST(test_session_revoked_at_once),
        STORE_TEST(test_api_keys_named_and_revoked),
    };
    return STORE_TESTS("store service", tests);
}
