/* test_search.c: the type-ahead search (src/search) on a real SQLite store in a temporary
 * directory, with a fake Hover behind the list_jobs seam of hs_search_config: it searches a small
 * world by Hover's rule (case-insensitive substring of name, address or capturing user), counts
 * and records its requests, and can fail like Hover does. Time is fake: hs_fake_clock for the
 * single-threaded cases; for the keystroke bursts, where each keystroke is a request on its own
 * thread (as the HTTP service runs them), a virtual clock whose sleepers wake only when the test
 * moves time forward, so the bursts are deterministic and take no real time. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/clock.h"
#include "core/mem.h"
#include "core/str.h"
#include "search/search.h"
#include "store/records.h"
#include "store/search.h"
#include "store/store.h"

/* ---- the fake Hover ---- */

/* Jobs Hover has; none is in the local store at the start. */
static const char *const hover_world[] = {
    "{\"id\":15084301,\"name\":\"Main House\",\"reconstruction_state\":\"completed\","
    "\"updated_at\":\"2025-03-17T01:00:00.000Z\",\"address\":{\"location_line_1\":\"4312 Meadow "
    "Drive\",\"city\":\"Santa Maria\",\"region\":\"CA\",\"postal_code\":\"93455\"},"
    "\"user\":{\"first_name\":\"Jordan\",\"last_name\":\"Reyes\",\"email\":\"jordan.reyes@"
    "summitroofing.example\"},\"models\":[{\"id\":17338401,\"name\":\"House\",\"state\":"
    "\"complete\"},{\"id\":17338402,\"name\":\"Detached Garage\",\"state\":\"processing\"}]}",
    "{\"id\":15084302,\"name\":\"Whitfield Garage Addition\",\"reconstruction_state\":"
    "\"completed\",\"updated_at\":\"2025-03-18T01:00:00.000Z\",\"address\":{\"location_line_1\":"
    "\"118 Orchard Lane\",\"city\":\"Boise\",\"region\":\"ID\",\"postal_code\":\"83702\"},"
    "\"models\":[{\"id\":17338404,\"name\":\"House\",\"state\":\"complete\"}]}",
    /* Matches "4312 mea" by substring only: the index (word prefixes) cannot find it. */
    "{\"id\":15100001,\"name\":\"Nguyen Home\",\"reconstruction_state\":\"failed\","
    "\"updated_at\":\"2025-02-01T00:00:00.000Z\",\"address\":{\"location_line_1\":\"14312 "
    "Meadowbrook Road\",\"city\":\"Austin\",\"region\":\"TX\",\"postal_code\":\"78704\"},"
    "\"models\":[]}",
    "{\"id\":15100002,\"name\":\"Orchard Park Roof\",\"reconstruction_state\":\"completed\","
    "\"updated_at\":\"2025-01-01T00:00:00.000Z\",\"address\":{\"location_line_1\":\"7 Elm "
    "Street\",\"city\":\"Boise\",\"region\":\"ID\",\"postal_code\":\"83702\"},\"models\":[]}",
};
#define N_HOVER (sizeof hover_world / sizeof hover_world[0])

struct fake_hover {
    pthread_mutex_t mu;
    int calls;
    char *queries[64];
    int fail; /* an hs_err to answer with, 0: answer */
};

static bool hover_matches(const struct hs_job *j, const char *q)
{
    const char *fields[] = {j->name,
                            j->address.line1,
                            j->address.line2,
                            j->address.city,
                            j->address.region,
                            j->address.postal_code,
                            NULL,
                            NULL,
                            NULL};
    json_t *raw = json_loads(j->raw_json, 0, NULL);
    json_t *u = json_object_get(raw, "user");
    fields[6] = json_string_value(json_object_get(u, "first_name"));
    fields[7] = json_string_value(json_object_get(u, "last_name"));
    fields[8] = json_string_value(json_object_get(u, "email"));
    bool hit = false;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0] && !hit; i++)
        hit = fields[i] && hs_contains_ci(fields[i], q);
    json_decref(raw);
    return hit;
}

/* List Jobs, answered from hover_world: the first `per` matches, and a next page if more. */
static int fake_list_jobs(void *ctx, const char *connection_key, const struct hs_list_params *p,
                          struct hs_job_page **out, struct hs_error *err)
{
    struct fake_hover *h = ctx;
    assert_non_null(connection_key);
    assert_non_null(p->search);
    assert_true(strlen(p->search) >= 3);
    assert_int_equal(p->page, 1);
    pthread_mutex_lock(&h->mu);
    if (h->calls < 64)
        h->queries[h->calls] = hs_strdup(p->search);
    h->calls++;
    int fail = h->fail;
    pthread_mutex_unlock(&h->mu);
    if (fail)
        return hs_fail(err, fail, "fake Hover: %s", hs_err_name(fail));

    json_t *results = json_array();
    size_t matched = 0;
    for (size_t i = 0; i < N_HOVER; i++) {
        struct hs_job *j = NULL;
        assert_int_equal(hs_job_from_json(hover_world[i], strlen(hover_world[i]), &j, NULL), HS_OK);
        bool st_ok =
            !p->reconstruction_state || hs_streq(j->reconstruction_state, p->reconstruction_state);
        if (st_ok && hover_matches(j, p->search)) {
            if ((int64_t)matched < p->per)
                json_array_append_new(results, json_loads(hover_world[i], 0, NULL));
            matched++;
        }
        hs_job_free(j);
    }
    json_t *doc =
        json_pack("{so,s{sI,s:o}}", "results", results, "pagination", "current_page", (json_int_t)1,
                  "next_page", (int64_t)matched > p->per ? json_integer(2) : json_null());
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    int rc = hs_job_page_from_json(text, strlen(text), out, err);
    free(text);
    return rc;
}

static int hover_calls(struct fake_hover *h)
{
    pthread_mutex_lock(&h->mu);
    int n = h->calls;
    pthread_mutex_unlock(&h->mu);
    return n;
}

static bool hover_was_asked(struct fake_hover *h, const char *q)
{
    bool found = false;
    pthread_mutex_lock(&h->mu);
    for (int i = 0; i < h->calls && i < 64; i++)
        found |= strcmp(h->queries[i], q) == 0;
    pthread_mutex_unlock(&h->mu);
    return found;
}

/* ---- fixture ---- */

struct fixture {
    char dir[256];
    struct hs_store *store;
    struct fake_hover hover;
    struct hs_fake_clock fc;
    struct hs_search_config cfg;
    struct hs_search_service *s;
};

static int setup(void **state)
{
    struct fixture *f = hs_calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/hs-search-test-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    char path[300];
    snprintf(path, sizeof path, "%s/store.db", f->dir);
    struct hs_error err = {0};
    if (hs_store_open(path, NULL, &f->store, &err)) {
        fprintf(stderr, "open: %s\n", err.msg);
        return -1;
    }
    pthread_mutex_init(&f->hover.mu, NULL);
    hs_fake_clock_init(&f->fc, 1742200000000LL);
    f->cfg = (struct hs_search_config){.list_jobs = fake_list_jobs, .list_jobs_ctx = &f->hover};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    hs_search_free(f->s);
    hs_store_close(f->store);
    for (int i = 0; i < f->hover.calls && i < 64; i++)
        free(f->hover.queries[i]);
    pthread_mutex_destroy(&f->hover.mu);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

static void service(struct fixture *f, const struct hs_clock *clock)
{
    struct hs_error err = {0};
    struct hs_client_provider none = {0};
    int rc = hs_search_new(&f->cfg, f->store, none, clock, &f->s, &err);
    if (rc)
        fail_msg("hs_search_new: %s", err.msg);
}

/* A job stored locally (as a sync or an earlier search would have). */
static void store_job(struct fixture *f, int64_t id, const char *name, const char *line1,
                      const char *city, const char *updated_at)
{
    struct hs_job j = {0};
    j.id = id;
    j.name = (char *)name;
    j.reconstruction_state = (char *)"completed";
    j.updated_at = (char *)updated_at;
    j.address.line1 = (char *)line1;
    j.address.city = (char *)city;
    j.raw_json = (char *)"{}";
    struct hs_error err = {0};
    if (f->store->records->job_upsert(f->store, &j, "default", NULL, &err))
        fail_msg("job_upsert: %s", err.msg);
}

static json_t *run_q(struct fixture *f, const char *q, const char *session)
{
    struct hs_search_query sq = {.q = q, .session = session, .connection_key = "org-1"};
    json_t *out = NULL;
    struct hs_error err = {0};
    int rc = hs_search_run(f->s, &sq, &out, &err);
    if (rc)
        fail_msg("hs_search_run(%s): %s", q ? q : "(null)", err.msg);
    return out;
}

static const char *str_of(json_t *doc, const char *key)
{
    const char *v = json_string_value(json_object_get(doc, key));
    assert_non_null(v);
    return v;
}

static size_t n_results(json_t *doc)
{
    json_t *r = json_object_get(doc, "results");
    assert_true(json_is_array(r));
    return json_array_size(r);
}

/* True when the answer lists the job, and no job twice. */
static bool has_job(json_t *doc, int64_t id)
{
    json_t *r = json_object_get(doc, "results");
    size_t seen = 0;
    for (size_t i = 0; i < json_array_size(r); i++) {
        int64_t x = json_integer_value(json_object_get(json_array_get(r, i), "id"));
        seen += x == id;
        for (size_t k = i + 1; k < json_array_size(r); k++)
            assert_int_not_equal(x,
                                 json_integer_value(json_object_get(json_array_get(r, k), "id")));
    }
    return seen == 1;
}

static struct hs_search_stats stats(struct fixture *f)
{
    struct hs_search_stats st;
    hs_search_get_stats(f->s, &st);
    return st;
}

/* ---- single-threaded cases (hs_fake_clock) ---- */

static void test_short_and_empty_queries_answer_locally(void **state)
{
    struct fixture *f = *state;
    service(f, &f->fc.clock);
    store_job(f, 1, "Smith Residence", "43 Oak Street", "Boise", "2025-01-01T00:00:00.000Z");
    store_job(f, 2, "Jones Roof", "9 Pine Road", "Austin", "2025-02-01T00:00:00.000Z");

    json_t *a = run_q(f, "43", "s1");
    assert_string_equal(str_of(a, "source"), "local");
    assert_string_equal(str_of(a, "hover"), "short");
    assert_true(has_job(a, 1));
    assert_int_equal(n_results(a), 1);
    assert_int_equal(json_integer_value(json_object_get(a, "page")), 1);
    assert_false(json_boolean_value(json_object_get(a, "more")));
    json_t *j = json_array_get(json_object_get(a, "results"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "address"), "full")),
                        "43 Oak Street, Boise");
    json_decref(a);

    a = run_q(f, "", "s1"); /* no text: the most recent first */
    assert_string_equal(str_of(a, "source"), "local");
    assert_int_equal(n_results(a), 2);
    assert_int_equal(
        json_integer_value(json_object_get(json_array_get(json_object_get(a, "results"), 0), "id")),
        2);
    json_decref(a);
    a = run_q(f, "  é ", "s1"); /* one character, however many bytes */
    assert_string_equal(str_of(a, "hover"), "short");
    json_decref(a);

    assert_int_equal(hover_calls(&f->hover), 0);
    assert_int_equal(f->fc.slept_total, 0); /* nothing waited either */
    struct hs_search_stats st = stats(f);
    assert_int_equal(st.queries, 3);
    assert_int_equal(st.local_answers, 3);
    assert_int_equal(st.hover_requests, 0);
}

static void test_enough_local_matches_skip_hover(void **state)
{
    struct fixture *f = *state;
    f->cfg.min_local_hits = 3;
    service(f, &f->fc.clock);
    store_job(f, 1, "Meadow One", "1 A St", "X", "2025-01-01T00:00:00.000Z");
    store_job(f, 2, "Meadow Two", "2 A St", "X", "2025-01-02T00:00:00.000Z");
    json_t *a = run_q(f, "meadow", "s1");
    assert_string_equal(str_of(a, "hover"), "asked"); /* 2 < 3: Hover is worth asking */
    assert_string_equal(str_of(a, "source"), "local+hover");
    json_decref(a);
    assert_int_equal(hover_calls(&f->hover), 1);
    store_job(f, 3, "Meadow Three", "3 A St", "X", "2025-01-03T00:00:00.000Z");
    a = run_q(f, "a st", "s1");
    assert_string_equal(str_of(a, "hover"), "enough_local");
    assert_int_equal(json_integer_value(json_object_get(a, "total")), 3);
    json_decref(a);
}

/* A caller that cannot wait (an HTTP connection's thread) gets every answer that needs neither
 * Hover nor the debounce at once; for one that does, a ticket, and the run that resumes it where
 * it may wait goes on from the local answer already made (a job stored in between is not in
 * it: the index was not asked again). A ticket of another query, or one no longer kept, is a
 * full run. */
static void test_no_wait_answers_locally_or_hands_over(void **state)
{
    struct fixture *f = *state;
    f->cfg.min_local_hits = 3;
    f->cfg.debounce_ms = -1;
    service(f, &f->fc.clock);
    store_job(f, 1, "Meadow One", "1 A St", "X", "2025-01-01T00:00:00.000Z");
    store_job(f, 2, "Meadow Two", "2 A St", "X", "2025-01-02T00:00:00.000Z");
    store_job(f, 3, "Meadow Three", "3 A St", "X", "2025-01-03T00:00:00.000Z");
    int64_t ticket = -1;
    struct hs_search_query sq = {
        .q = "meadow", .connection_key = "org-1", .no_wait = true, .pending = &ticket};
    json_t *out = NULL;
    struct hs_error err = {0};
    assert_int_equal(hs_search_run(f->s, &sq, &out, &err), HS_OK);
    assert_int_equal(ticket, 0);
    assert_string_equal(str_of(out, "hover"), "enough_local");
    assert_int_equal(n_results(out), 3);
    json_decref(out);

    sq.q = "1 a st"; /* one match: Hover is worth asking, which the caller cannot wait for */
    out = NULL;
    assert_int_equal(hs_search_run(f->s, &sq, &out, &err), HS_OK);
    assert_true(ticket > 0);
    assert_null(out);
    assert_int_equal(hover_calls(&f->hover), 0);
    store_job(f, 4, "Other", "1 A St", "Y", "2025-01-04T00:00:00.000Z");
    f->hover.fail = HS_ERR_NETWORK; /* Hover asked, nothing learned: the kept answer is given */

    struct hs_search_query later = {.q = "1 a st", .connection_key = "org-1", .resume = ticket};
    assert_int_equal(hs_search_run(f->s, &later, &out, &err), HS_OK);
    assert_string_equal(str_of(out, "hover"), "error");
    assert_int_equal(hover_calls(&f->hover), 1);
    assert_true(has_job(out, 1));
    assert_false(has_job(out, 4)); /* the answer made before job 4 was stored */
    json_decref(out);

    /* The ticket was taken: its second use, and a ticket of another text, are full runs. */
    later.q = "1 A  St";
    assert_int_equal(hs_search_run(f->s, &later, &out, &err), HS_OK);
    assert_string_equal(str_of(out, "hover"), "backoff");
    assert_true(has_job(out, 4));
    json_decref(out);
    hs_search_connection_ok(f->s, "org-1");
    sq.q = "2 a st";
    assert_int_equal(hs_search_run(f->s, &sq, &out, &err), HS_OK);
    assert_true(ticket > 0);
    later.q = "3 a st";
    later.resume = ticket;
    assert_int_equal(hs_search_run(f->s, &later, &out, &err), HS_OK);
    assert_true(has_job(out, 3));
    assert_false(has_job(out, 2));
    json_decref(out);

    sq.pending = NULL; /* no_wait needs somewhere to put its ticket */
    assert_int_equal(hs_search_run(f->s, &sq, &out, &err), HS_ERR_INVALID);
    struct hs_search_stats st = stats(f);
    assert_int_equal(st.queries, 4); /* the handed-over runs counted once, when answered */
}

/* A text search's total is exact up to HS_SEARCH_MATCHES_MAX matches, then "at least". */
static void test_total_is_exact_up_to_the_cap(void **state)
{
    struct fixture *f = *state;
    service(f, &f->fc.clock);
    struct hs_error err = {0};
    assert_int_equal(f->store->ops->begin(f->store, &err), HS_OK);
    char line1[64];
    for (int64_t i = 0; i <= HS_SEARCH_MATCHES_MAX; i++) {
        snprintf(line1, sizeof line1, "%lld Lane Road", (long long)i + 1);
        store_job(f, 1000 + i, "House", line1, "Salem", "2025-01-01T00:00:00.000Z");
    }
    assert_int_equal(f->store->ops->commit(f->store, &err), HS_OK);
    json_t *a = run_q(f, "lane", "s1");
    assert_int_equal(json_integer_value(json_object_get(a, "total")), HS_SEARCH_MATCHES_MAX);
    assert_true(json_is_false(json_object_get(a, "total_exact")));
    assert_true(json_is_true(json_object_get(a, "more")));
    assert_string_equal(str_of(a, "hover"), "enough_local");
    json_decref(a);
    a = run_q(f, "lane road 100", "s1"); /* 100, 1000, 1001 */
    assert_int_equal(json_integer_value(json_object_get(a, "total")), 3);
    assert_true(json_is_true(json_object_get(a, "total_exact")));
    json_decref(a);
    a = run_q(f, "", "s1"); /* the listing counts every job */
    assert_int_equal(json_integer_value(json_object_get(a, "total")), HS_SEARCH_MATCHES_MAX + 1);
    assert_true(json_is_true(json_object_get(a, "total_exact")));
    json_decref(a);
}

static void test_cached_within_ttl_refetched_after(void **state)
{
    struct fixture *f = *state;
    f->cfg.cache_ttl_ms = 60000;
    service(f, &f->fc.clock);
    json_t *a = run_q(f, "Garage", "s1");
    assert_string_equal(str_of(a, "hover"), "asked");
    assert_string_equal(str_of(a, "source"), "hover"); /* nothing was local */
    assert_true(has_job(a, 15084302));
    json_decref(a);
    assert_int_equal(hover_calls(&f->hover), 1);
    assert_true(hover_was_asked(&f->hover, "garage")); /* normalised: Hover ignores case */
    /* The debounce waited on the fake clock, not in real time. */
    assert_int_equal(f->fc.slept_total, 250);

    hs_fake_clock_advance(&f->fc, 30000);
    a = run_q(f, "  GARAGE ", "s2");
    assert_string_equal(str_of(a, "hover"), "cached");
    assert_string_equal(str_of(a, "source"), "local+hover");
    assert_true(has_job(a, 15084302));
    json_decref(a);
    assert_int_equal(hover_calls(&f->hover), 1);
    assert_int_equal(stats(f).cache_hits, 1);

    hs_fake_clock_advance(&f->fc, 30001); /* 60.001 s after the answer: stale */
    a = run_q(f, "garage", "s1");
    assert_string_equal(str_of(a, "hover"), "asked");
    json_decref(a);
    assert_int_equal(hover_calls(&f->hover), 2);
}

static void test_refinement_of_a_complete_answer_costs_nothing(void **state)
{
    struct fixture *f = *state;
    service(f, &f->fc.clock);
    json_t *a = run_q(f, "4312 Mea", "s1");
    assert_string_equal(str_of(a, "hover"), "asked");
    assert_true(has_job(a, 15084301));
    assert_true(has_job(a, 15100001)); /* Hover's substring match "14312 Meadowbrook" */
    assert_int_equal(n_results(a), 2);
    assert_false(json_boolean_value(json_object_get(a, "more")));
    json_decref(a);
    assert_int_equal(hover_calls(&f->hover), 1);

    /* Every refinement is answered from what the complete answer taught the index. */
    static const char *const typed[] = {"4312 Mead", "4312 Meado", "4312 Meadow", "4312 Meadow D",
                                        "4312 meadow drive"};
    for (size_t i = 0; i < sizeof typed / sizeof typed[0]; i++) {
        a = run_q(f, typed[i], "s1");
        assert_string_equal(str_of(a, "hover"), "covered");
        assert_string_equal(str_of(a, "source"), "local");
        assert_true(has_job(a, 15084301));
        /* The substring match stays while it still matches by Hover's rule. */
        assert_int_equal(has_job(a, 15100001), i < 3);
        json_decref(a);
    }
    assert_int_equal(hover_calls(&f->hover), 1);
    assert_int_equal(stats(f).covered, 5);

    /* A shorter query is not a refinement: it needs Hover. */
    a = run_q(f, "4312 Me", "s1");
    assert_string_equal(str_of(a, "hover"), "asked");
    json_decref(a);
    assert_int_equal(hover_calls(&f->hover), 2);
}

static void test_incomplete_answer_is_not_a_cover(void **state)
{
    struct fixture *f = *state;
    f->cfg.hover_per = 1; /* Hover has more than it gives */
    service(f, &f->fc.clock);
    json_t *a = run_q(f, "4312", "s1");
    assert_string_equal(str_of(a, "hover"), "asked");
    assert_int_equal(n_results(a), 1);
    assert_true(json_boolean_value(json_object_get(a, "more")));
    json_decref(a);
    a = run_q(f, "4312 mea", "s1");
    assert_string_equal(str_of(a, "hover"), "asked");
    json_decref(a);
    assert_int_equal(hover_calls(&f->hover), 2);
}

static void test_hover_errors_answer_locally(void **state)
{
    struct fixture *f = *state;
    f->cfg.error_backoff_ms = 10000;
    service(f, &f->fc.clock);
    store_job(f, 1, "Orchard Park", "5 Orchard Park Way", "Boise", "2025-01-01T00:00:00.000Z");

    static const struct {
        int rc;
        const char *code;
    } cases[] = {
        {HS_ERR_INVALID_GRANT, "reconnect_required"}, {HS_ERR_NO_CREDENTIALS, "reconnect_required"},
        {HS_ERR_RATE_LIMITED, "rate_limited"},        {HS_ERR_NETWORK, "upstream_unavailable"},
        {HS_ERR_SERVER, "upstream_unavailable"},      {HS_ERR_FORBIDDEN, "upstream_error"},
    };
    int calls = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        f->hover.fail = cases[i].rc;
        json_t *a = run_q(f, "orchard", "s1");
        calls++;
        assert_string_equal(str_of(a, "source"), "local");
        assert_string_equal(str_of(a, "hover"), "error");
        assert_true(has_job(a, 1)); /* the local answer all the same */
        json_t *he = json_object_get(a, "hover_error");
        assert_string_equal(str_of(he, "code"), cases[i].code);
        assert_non_null(strstr(str_of(he, "message"), hs_err_name(cases[i].rc)));
        json_decref(a);

        /* Within the backoff: no request, the same error. */
        a = run_q(f, "orchard p", "s1");
        assert_string_equal(str_of(a, "hover"), "backoff");
        assert_string_equal(str_of(json_object_get(a, "hover_error"), "code"), cases[i].code);
        json_decref(a);
        assert_int_equal(hover_calls(&f->hover), calls);
        hs_fake_clock_advance(&f->fc, 10001);
    }
    f->hover.fail = 0;
    json_t *a = run_q(f, "orchard", "s1");
    assert_string_equal(str_of(a, "hover"), "asked");
    assert_string_equal(str_of(a, "source"), "local+hover");
    assert_null(json_object_get(a, "hover_error"));
    json_decref(a);
    assert_int_equal(stats(f).hover_errors, 6);
}

static void test_merge_without_duplicates_and_indexing(void **state)
{
    struct fixture *f = *state;
    service(f, &f->fc.clock);
    /* Hover's job 15084302 is already stored (under an older name); 15100002 is Hover-only. */
    store_job(f, 15084302, "Whitfield Orchard", "118 Orchard Lane", "Boise",
              "2024-01-01T00:00:00.000Z");
    store_job(f, 9, "Orchard Hill", "1 Hill Road", "Salem", "2024-06-01T00:00:00.000Z");
    json_t *a = run_q(f, "orchard", "s1");
    assert_string_equal(str_of(a, "source"), "local+hover");
    assert_int_equal(n_results(a), 3);
    assert_true(has_job(a, 15084302)); /* once, though both had it */
    assert_true(has_job(a, 15100002));
    assert_true(has_job(a, 9));
    json_decref(a);

    /* What Hover said is in the index now: Hover's current name, and the Hover-only job. */
    f->hover.fail = HS_ERR_NETWORK; /* a request now would show as an error */
    a = run_q(f, "whitfield garage", "s2");
    assert_true(has_job(a, 15084302));
    json_decref(a);
    struct hs_job_summary *v = NULL;
    size_t n = 0;
    int64_t total = 0;
    assert_int_equal(f->store->search->jobs_search(f->store, "orchard park", NULL, 1, 20, NULL, &v,
                                                   &n, &total, NULL),
                     HS_OK);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].id, 15100002);
    hs_job_summaries_free(v, n);
}

static void test_state_filter_and_bad_arguments(void **state)
{
    struct fixture *f = *state;
    service(f, &f->fc.clock);
    struct hs_search_query sq = {.q = "4312 mea", .state = "failed", .session = "s1"};
    json_t *a = NULL;
    assert_int_equal(hs_search_run(f->s, &sq, &a, NULL), HS_OK);
    assert_int_equal(n_results(a), 1);
    assert_true(has_job(a, 15100001)); /* the failed one only */
    json_decref(a);

    struct hs_error err = {0};
    sq = (struct hs_search_query){.q = "x", .per = 101};
    assert_int_equal(hs_search_run(f->s, &sq, &a, &err), HS_ERR_INVALID);
    sq = (struct hs_search_query){.q = "x", .state = "sideways"};
    assert_int_equal(hs_search_run(f->s, &sq, &a, &err), HS_ERR_INVALID);
    char longq[300];
    memset(longq, 'a', sizeof longq - 1);
    longq[sizeof longq - 1] = '\0';
    sq = (struct hs_search_query){.q = longq};
    assert_int_equal(hs_search_run(f->s, &sq, &a, &err), HS_ERR_INVALID);
    /* Pages after the first come from the index only. */
    sq = (struct hs_search_query){.q = "meadow", .page = 2, .per = 1};
    assert_int_equal(hs_search_run(f->s, &sq, &a, &err), HS_OK);
    assert_string_equal(str_of(a, "hover"), "not_first_page");
    json_decref(a);
}

/* ---- keystroke bursts: one thread per keystroke, on virtual time ---- */

struct sleeper {
    int64_t wake;
    bool woken;
};

struct vclock {
    struct hs_clock clock;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t now;
    int running; /* threads of the test that are neither asleep nor finished */
    struct sleeper *sleepers[128];
    int n_sleepers;
};

static int64_t v_mono(const struct hs_clock *c)
{
    struct vclock *v = c->ctx;
    pthread_mutex_lock(&v->mu);
    int64_t t = v->now;
    pthread_mutex_unlock(&v->mu);
    return t;
}

static void v_sleep(const struct hs_clock *c, int64_t ms)
{
    struct vclock *v = c->ctx;
    pthread_mutex_lock(&v->mu);
    struct sleeper me = {.wake = v->now + ms};
    assert_true(v->n_sleepers < 128);
    v->sleepers[v->n_sleepers++] = &me;
    v->running--;
    pthread_cond_broadcast(&v->cv);
    while (!me.woken)
        pthread_cond_wait(&v->cv, &v->mu);
    pthread_mutex_unlock(&v->mu);
}

static double v_random(const struct hs_clock *c)
{
    (void)c;
    return 0.5;
}

static void vclock_init(struct vclock *v)
{
    memset(v, 0, sizeof *v);
    v->clock = (struct hs_clock){v_mono, v_mono, v_sleep, v_random, v};
    v->now = 5000000;
    pthread_mutex_init(&v->mu, NULL);
    pthread_cond_init(&v->cv, NULL);
}

/* Waits until every thread of the test sleeps or has finished: time can move. */
static void vclock_settle(struct vclock *v)
{
    pthread_mutex_lock(&v->mu);
    while (v->running > 0)
        pthread_cond_wait(&v->cv, &v->mu);
    pthread_mutex_unlock(&v->mu);
}

/* Moves time forward in 5 ms steps, waking the sleepers due (counted as running before they
 * even wake, so that settling waits for them). */
static void vclock_advance(struct vclock *v, int64_t ms)
{
    for (int64_t t = 0; t < ms; t += 5) {
        pthread_mutex_lock(&v->mu);
        v->now += 5;
        for (int i = 0; i < v->n_sleepers;) {
            if (v->sleepers[i]->wake <= v->now) {
                v->sleepers[i]->woken = true;
                v->running++;
                v->sleepers[i] = v->sleepers[--v->n_sleepers];
            } else {
                i++;
            }
        }
        pthread_cond_broadcast(&v->cv);
        pthread_mutex_unlock(&v->mu);
        vclock_settle(v);
    }
}

struct keystroke {
    struct fixture *f;
    struct vclock *v;
    const char *session; /* NULL: "modal-1" */
    char text[64];
    json_t *answer;
    pthread_t th;
};

static void *keystroke_main(void *arg)
{
    struct keystroke *k = arg;
    struct hs_search_query sq = {
        .q = k->text, .session = k->session ? k->session : "modal-1", .connection_key = "org-1"};
    struct hs_error err = {0};
    if (hs_search_run(k->f->s, &sq, &k->answer, &err))
        k->answer = NULL;
    pthread_mutex_lock(&k->v->mu);
    k->v->running--;
    pthread_cond_broadcast(&k->v->cv);
    pthread_mutex_unlock(&k->v->mu);
    return NULL;
}

static void press(struct keystroke *k)
{
    pthread_mutex_lock(&k->v->mu);
    k->v->running++;
    pthread_mutex_unlock(&k->v->mu);
    assert_int_equal(pthread_create(&k->th, NULL, keystroke_main, k), 0);
    vclock_settle(k->v);
}

/* The texts a user's 50 keystrokes produce: "4312 Meadow Drive" typed (17), erased (17), then
 * "Orchard Lane Boi" typed (16). */
static size_t burst_texts(char texts[][64])
{
    static const char first[] = "4312 Meadow Drive", second[] = "Orchard Lane Boi";
    size_t n = 0;
    for (size_t i = 1; i <= strlen(first); i++)
        snprintf(texts[n++], 64, "%.*s", (int)i, first);
    for (size_t i = strlen(first); i-- > 0;)
        snprintf(texts[n++], 64, "%.*s", (int)i, first);
    for (size_t i = 1; i <= strlen(second); i++)
        snprintf(texts[n++], 64, "%.*s", (int)i, second);
    return n;
}

/* Types the burst, 80 ms between keys, pausing `pause_ms` after the texts in `pauses`. */
static void type_burst(struct fixture *f, struct vclock *v, struct keystroke *keys,
                       const char *const *pauses, int64_t pause_ms)
{
    char texts[64][64];
    size_t n = burst_texts(texts);
    assert_int_equal(n, 50);
    for (size_t i = 0; i < n; i++) {
        keys[i] = (struct keystroke){.f = f, .v = v};
        memcpy(keys[i].text, texts[i], sizeof keys[i].text);
        press(&keys[i]);
        bool pause = false;
        for (size_t p = 0; pauses && pauses[p]; p++)
            pause |= strcmp(pauses[p], texts[i]) == 0;
        vclock_advance(v, pause ? pause_ms : 80);
    }
    vclock_advance(v, 1000); /* the user stops typing: the last query is answered */
    for (size_t i = 0; i < n; i++) {
        pthread_join(keys[i].th, NULL);
        assert_non_null(keys[i].answer);
    }
}

static void free_keys(struct keystroke *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(keys[i].answer);
}

static void test_burst_of_50_keystrokes_with_pauses(void **state)
{
    struct fixture *f = *state;
    struct vclock v;
    vclock_init(&v);
    service(f, &v.clock);
    store_job(f, 1, "Smith Residence", "43 Oak Street", "Boise", "2025-01-01T00:00:00.000Z");
    struct keystroke keys[50];
    /* The user hesitates twice (400 ms), as people do while typing an address. */
    static const char *const pauses[] = {"4312 Mead", "Orchard", NULL};
    type_burst(f, &v, keys, pauses, 400);

    int calls = hover_calls(&f->hover);
    fprintf(stderr, "burst with pauses: %d Hover requests for 50 keystrokes\n", calls);
    assert_true(calls >= 1);
    assert_true(calls <= 5);
    assert_true(hover_was_asked(&f->hover, "4312 mead"));
    assert_true(hover_was_asked(&f->hover, "orchard"));
    /* At the pause, Hover's jobs were in the answer; the refinements kept them at no cost. */
    assert_true(has_job(keys[8].answer, 15084301)); /* "4312 Mead" */
    assert_string_equal(str_of(keys[8].answer, "hover"), "asked");
    assert_string_equal(str_of(keys[16].answer, "hover"), "covered"); /* "4312 Meadow Drive" */
    assert_true(has_job(keys[16].answer, 15084301));
    /* The last keystroke, "Orchard Lane Boi": found locally, Hover's job included. */
    assert_true(has_job(keys[49].answer, 15084302));
    assert_string_equal(str_of(keys[49].answer, "source"), "local");
    struct hs_search_stats st = stats(f);
    assert_int_equal(st.queries, 50);
    assert_int_equal(st.hover_requests, calls);
    assert_true(st.debounced >= 10);
    free_keys(keys, 50);
}

static void test_burst_without_pauses_costs_one_request(void **state)
{
    struct fixture *f = *state;
    struct vclock v;
    vclock_init(&v);
    service(f, &v.clock);
    struct keystroke keys[50];
    type_burst(f, &v, keys, NULL, 0);
    assert_int_equal(hover_calls(&f->hover), 1);
    assert_true(hover_was_asked(&f->hover, "orchard lane boi"));
    /* Every earlier query of 3+ characters gave way to the next keystroke. */
    for (size_t i = 0; i < 49; i++) {
        const char *h = str_of(keys[i].answer, "hover");
        assert_true(strcmp(h, "debounced") == 0 || strcmp(h, "short") == 0);
    }
    assert_string_equal(str_of(keys[49].answer, "hover"), "asked");
    free_keys(keys, 50);
}

/* Two users of the same org type the same text 80 ms apart: they do not debounce each other
 * (each is answered with Hover's jobs), and the second is served by the first's request. */
static void test_sessions_debounce_separately_and_share_requests(void **state)
{
    struct fixture *f = *state;
    struct vclock v;
    vclock_init(&v);
    service(f, &v.clock);
    struct keystroke a = {.f = f, .v = &v}, b = {.f = f, .v = &v, .session = "modal-2"};
    snprintf(a.text, sizeof a.text, "Orchard");
    snprintf(b.text, sizeof b.text, "orchard ");
    press(&a);
    vclock_advance(&v, 80);
    press(&b);
    vclock_advance(&v, 1000);
    pthread_join(a.th, NULL);
    pthread_join(b.th, NULL);
    assert_string_equal(str_of(a.answer, "hover"), "asked");
    assert_string_equal(str_of(b.answer, "hover"), "cached");
    assert_true(has_job(a.answer, 15084302));
    assert_true(has_job(b.answer, 15084302));
    assert_int_equal(hover_calls(&f->hover), 1);
    json_decref(a.answer);
    json_decref(b.answer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_short_and_empty_queries_answer_locally, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_enough_local_matches_skip_hover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_wait_answers_locally_or_hands_over, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_total_is_exact_up_to_the_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cached_within_ttl_refetched_after, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refinement_of_a_complete_answer_costs_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_incomplete_answer_is_not_a_cover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hover_errors_answer_locally, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merge_without_duplicates_and_indexing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_state_filter_and_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_burst_of_50_keystrokes_with_pauses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_burst_without_pauses_costs_one_request, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sessions_debounce_separately_and_share_requests, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("search", tests, NULL, NULL);
}
