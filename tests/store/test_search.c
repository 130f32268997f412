/* test_search.c: the storage suite: the local job search (store/search.h), through the store
 * interface only (store_test.h), so that every back-end runs it. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/mem.h"
#include "store/search.h"
#include "store_test.h"

static void test_jobs_search_finds_prefixes_of_every_field(void **state)
{
    struct fixture *f = *state;
    struct test_job a, b;
    make_job(&a);
    make_orchard(&b);
    upsert(f, &a.job, true);
    upsert(f, &b.job, true);

    assert_int_equal(only_id(f, "4312 mea"), 15084303);      /* street, as typed */
    assert_int_equal(only_id(f, "MEADOW"), 15084303);        /* any case */
    assert_int_equal(only_id(f, "santa mar"), 15084303);     /* city */
    assert_int_equal(only_id(f, "9345"), 15084303);          /* postal code */
    assert_int_equal(only_id(f, "8675309"), 15084303);       /* external id */
    assert_int_equal(only_id(f, "owner@exam"), 15084303);    /* customer email */
    assert_int_equal(only_id(f, "whitfield gar"), 15084302); /* name */
    assert_int_equal(only_id(f, "marcus"), 15084302);        /* customer name */
    assert_int_equal(only_id(f, "crm-20417"), 15084302);     /* external id with a dash */
    assert_int_equal(only_id(f, "jordan rey"), 15084302);    /* capturing user, from raw_json */
    assert_int_equal(only_id(f, "summitroofing"), 15084302);
    /* Prefixes of 9 to 12 characters (their own indexes on SQLite), and past them. */
    assert_int_equal(only_id(f, "summitroo"), 15084302);
    assert_int_equal(only_id(f, "summitroofi"), 15084302);
    assert_int_equal(only_id(f, "summitroofin"), 15084302);
    assert_int_equal(count_found(f, "summitrooz"), 0);
    assert_int_equal(count_found(f, "main house"), 1);
    assert_int_equal(count_found(f, "meadow orchard"), 0); /* every word must match */
    assert_int_equal(count_found(f, "eadow"), 0);          /* prefixes, not infixes */
    assert_int_equal(count_found(f, "zzz"), 0);

    struct found r = search(f, "4312 meadow", NULL, 1, 20);
    assert_int_equal(r.n, 1);
    const struct hs_job_summary *j = &r.v[0];
    assert_string_equal(j->name, "Main House");
    assert_string_equal(j->address.line1, "4312 Meadow Drive");
    assert_string_equal(j->address.city, "Santa Maria");
    assert_string_equal(j->address.region, "CA");
    assert_string_equal(j->address.postal_code, "93455");
    assert_string_equal(j->address.country, "US");
    assert_string_equal(j->reconstruction_state, "completed");
    assert_string_equal(j->updated_at, "2025-03-17T01:00:00.000Z");
    assert_int_equal(j->models_count, 2);
    assert_int_equal(j->complete_models, 1);
    found_free(&r);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM jobs WHERE capture_user = "
                                "'Jordan Reyes jordan.reyes@summitroofing.example'"),
                     1);
}

static void test_jobs_search_index_follows_changes(void **state)
{
    struct fixture *f = *state;
    struct test_job a;
    make_job(&a);
    upsert(f, &a.job, true);
    assert_int_equal(only_id(f, "meadow"), 15084303);

    /* Renamed at Hover: the old words leave the index, the new ones enter it. */
    a.job.address.line1 = (char *)"9 Cedar Ridge Court";
    a.job.raw_json =
        (char *)"{\"id\":15084303,\"captures\":[{\"capture_by\":\"pat@crew.example\"}]}";
    upsert(f, &a.job, true);
    assert_int_equal(count_found(f, "meadow"), 0);
    assert_int_equal(only_id(f, "cedar ridge"), 15084303);
    assert_int_equal(only_id(f, "pat@crew"), 15084303); /* capture_by when no user object */
    upsert(f, &a.job, false);                           /* unchanged: index untouched */
    assert_int_equal(only_id(f, "cedar"), 15084303);
    /* A change of a column that is not indexed leaves the index as it is, and consistent. */
    a.job.deliverable_id = 2;
    upsert(f, &a.job, true);
    store_check_integrity(f);
    assert_int_equal(only_id(f, "cedar"), 15084303);
    /* The state and the connection are in the index too (a filter of the search). */
    struct found r = search(f, "cedar", "failed", 1, 20);
    assert_int_equal(r.n, 0);
    found_free(&r);
    a.job.reconstruction_state = (char *)"failed";
    upsert(f, &a.job, true);
    r = search(f, "cedar", "failed", 1, 20);
    assert_int_equal(r.n, 1);
    found_free(&r);
    r = search(f, "cedar", "completed", 1, 20);
    assert_int_equal(r.n, 0);
    found_free(&r);
    const char *keys[] = {"org-b"};
    struct hs_scope b = {keys, 1};
    int64_t first = 0;
    assert_int_equal(search_count(f, "cedar", &b, &first), 0);
    struct hs_error err = {0};
    assert_int_equal(f->store->records->job_upsert(f->store, &a.job, "org-b", NULL, &err), HS_OK);
    assert_int_equal(search_count(f, "cedar", &b, &first), 1);
    store_check_integrity(f);

    /* A deleted row leaves the index (a CRM developer may clean up by hand). */
    sql_exec(f, "DELETE FROM models; DELETE FROM jobs WHERE id = 15084303");
    assert_int_equal(count_found(f, "cedar"), 0);
    assert_int_equal(count_found(f, "9 ced"), 0);
    store_check_integrity(f);
}

static void test_jobs_search_ranks_pages_and_filters(void **state)
{
    struct fixture *f = *state;
    struct test_job t;
    /* Five jobs on Meadow streets, updated one day apart; job 5 has "Meadow" in its name too. */
    static const char *const updated[] = {"2025-01-01T00:00:00.000Z", "2025-01-02T00:00:00.000Z",
                                          "2025-01-03T00:00:00.000Z", "2025-01-04T00:00:00.000Z",
                                          "2025-01-05T00:00:00.000Z"};
    for (int i = 0; i < 5; i++) {
        char line1[64], name[64];
        make_job(&t);
        t.job.id = 100 + i;
        t.job.updated_at = (char *)updated[i];
        snprintf(line1, sizeof line1, "%d Meadow Lane", 10 + i);
        snprintf(name, sizeof name, i == 0 ? "Meadow Farm" : "Job %d", i);
        t.job.name = name;
        t.job.address.line1 = line1;
        t.job.reconstruction_state = (char *)(i % 2 ? "failed" : "completed");
        t.models[0].id = 1000 + 2 * i;
        t.models[1].id = 1001 + 2 * i;
        upsert(f, &t.job, true);
    }
    /* The name that begins with the word ranks first, then the newest. */
    struct found r = search(f, "meadow", NULL, 1, 20);
    assert_int_equal(r.total, 5);
    assert_int_equal(r.n, 5);
    assert_int_equal(r.v[0].id, 100);
    assert_int_equal(r.v[1].id, 104);
    assert_int_equal(r.v[2].id, 103);
    assert_int_equal(r.v[4].id, 101);
    found_free(&r);

    /* Pages of two: 2 + 2 + 1, then an empty page; total on each. */
    int64_t seen[5];
    size_t k = 0;
    for (int64_t page = 1; page <= 4; page++) {
        r = search(f, "meadow lane", NULL, page, 2);
        assert_int_equal(r.total, 5);
        assert_int_equal(r.n, page <= 2 ? 2 : page == 3 ? 1 : 0);
        for (size_t i = 0; i < r.n; i++)
            seen[k++] = r.v[i].id;
        found_free(&r);
    }
    assert_int_equal(k, 5);
    for (size_t i = 0; i < 5; i++)
        for (size_t m = i + 1; m < 5; m++)
            assert_int_not_equal(seen[i], seen[m]);

    r = search(f, "meadow", "failed", 1, 20);
    assert_int_equal(r.total, 2);
    assert_int_equal(r.v[0].id, 103);
    assert_int_equal(r.v[1].id, 101);
    found_free(&r);

    /* One or two letters (first keystrokes) are ranked the same way. */
    r = search(f, "m", NULL, 1, 3);
    assert_int_equal(r.total, 5);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.v[0].id, 100);
    assert_int_equal(r.v[1].id, 104);
    assert_int_equal(r.v[2].id, 103);
    found_free(&r);
    r = search(f, "M", "failed", 2, 1);
    assert_int_equal(r.total, 2);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.v[0].id, 101);
    found_free(&r);
    r = search(f, "me", NULL, 1, 20);
    assert_int_equal(r.v[0].id, 100);
    assert_int_equal(r.v[1].id, 104);
    assert_int_equal(r.v[4].id, 101);
    found_free(&r);
    r = search(f, "mea", NULL, 1, 20);
    assert_int_equal(r.v[0].id, 100);
    found_free(&r);

    /* No text: most recently updated first, with the state filter too. */
    r = search(f, NULL, NULL, 1, 3);
    assert_int_equal(r.total, 5);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.v[0].id, 104);
    assert_int_equal(r.v[2].id, 102);
    found_free(&r);
    r = search(f, "   ", "completed", 1, 20);
    assert_int_equal(r.total, 3);
    assert_int_equal(r.v[0].id, 104);
    found_free(&r);

    struct hs_error err = {0};
    struct hs_job_summary *v = NULL;
    size_t n = 0;
    int64_t total = 0;
    assert_int_equal(
        f->store->search->jobs_search(f->store, "x", NULL, 1, 101, NULL, &v, &n, &total, &err),
        HS_ERR_INVALID);
    assert_int_equal(
        f->store->search->jobs_search(f->store, "x", NULL, 0, 20, NULL, &v, &n, &total, &err),
        HS_ERR_INVALID);
}

/* A job of the ranking tests, stored through connection key. */
static void put_ranked(struct fixture *f, int64_t id, const char *line1, const char *name,
                       const char *city, const char *postal, const char *rstate, const char *key)
{
    struct test_job t;
    make_job(&t);
    t.job.id = id;
    t.job.address.line1 = (char *)line1;
    t.job.name = (char *)name;
    t.job.address.city = (char *)city;
    t.job.address.postal_code = (char *)postal;
    t.job.reconstruction_state = (char *)rstate;
    t.models[0].id = id * 10;
    t.models[1].id = id * 10 + 1;
    struct hs_error err = {0};
    int rc = f->store->records->job_upsert(f->store, &t.job, key, NULL, &err);
    if (rc)
        fprintf(stderr, "job_upsert: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
}

/* Eight jobs, the newest (highest id) last, so that recency alone would list them backwards. */
static void ranked_jobs(struct fixture *f, const char *key_a, const char *key_b)
{
    put_ranked(f, 301, "12 Oak Street", "Harper Roof", "Portland", "97201", "failed", key_a);
    put_ranked(f, 302, "1234 Elm Street", "Garage", "Oakland", "94601", "completed", key_b);
    put_ranked(f, 303, "77 Birch Road", "Oak Ridge Barn", "Salem", "97301", "completed", key_a);
    put_ranked(f, 304, "9 Pine Court", "Unit 12 Storage", "Eugene", "97401", "completed", key_b);
    put_ranked(f, 305, "400 Cedar Avenue", "Back Deck", "Bend", "12001", "completed", key_a);
    put_ranked(f, 306, "55 Maple Way", "Oakley House", "Medford", "97501", "failed", key_b);
    put_ranked(f, 307, "1200 Oakwood Drive", "Shed", "Ashland", "97520", "completed", key_a);
    put_ranked(f, 308, "12 Oakwood Court", "Porch", "Astoria", "97103", "completed", key_b);
}

/* The street line or the name beginning with the words first (whole words before a prefix),
 * then the words anywhere in the street line or the name, then elsewhere; newest first in each,
 * across pages, with a state and within a scope. */
static void test_jobs_search_ranks_street_and_name_first(void **state)
{
    struct fixture *f = *state;
    ranked_jobs(f, "org-a", "org-b");
    int64_t ids[20];
    size_t n = page_ids(f, "12", NULL, NULL, 1, 20, 6, ids);
    /* 12 Oak Street and 12 Oakwood Court; 1200 and 1234; "Unit 12 Storage"; postal code 12001 */
    ASSERT_IDS(ids, n, 308, 301, 307, 302, 304, 305);
    n = page_ids(f, "oak", NULL, NULL, 1, 20, 6, ids);
    /* name "Oak Ridge Barn"; name "Oakley House"; Oakwood, Oakwood, Oak Street; city Oakland */
    ASSERT_IDS(ids, n, 303, 306, 308, 307, 301, 302);
    n = page_ids(f, "12 oak", NULL, NULL, 1, 20, 4, ids);
    /* "12 Oak Street"; "12 Oakwood Court"; "1200 Oakwood Drive"; 1234 Elm Street in Oakland */
    ASSERT_IDS(ids, n, 301, 308, 307, 302);
    n = page_ids(f, "12 Oak Street", NULL, NULL, 1, 20, 2, ids); /* and 1234 Elm Street, Oakland */
    ASSERT_IDS(ids, n, 301, 302);

    /* Pages of two cut across the tiers and keep their order. */
    n = page_ids(f, "oak", NULL, NULL, 1, 2, 6, ids);
    ASSERT_IDS(ids, n, 303, 306);
    n = page_ids(f, "oak", NULL, NULL, 2, 2, 6, ids);
    ASSERT_IDS(ids, n, 308, 307);
    n = page_ids(f, "oak", NULL, NULL, 3, 2, 6, ids);
    ASSERT_IDS(ids, n, 301, 302);
    assert_int_equal(page_ids(f, "oak", NULL, NULL, 4, 2, 6, ids), 0);

    /* A state, a scope, both. */
    n = page_ids(f, "oak", "failed", NULL, 1, 20, 2, ids);
    ASSERT_IDS(ids, n, 306, 301);
    const char *a_keys[] = {"org-a"}, *b_keys[] = {"org-b"}, *ab_keys[] = {"org-b", "org-a"};
    struct hs_scope a = {a_keys, 1}, b = {b_keys, 1}, ab = {ab_keys, 2};
    n = page_ids(f, "oak", NULL, &a, 1, 20, 3, ids);
    ASSERT_IDS(ids, n, 303, 307, 301);
    n = page_ids(f, "12", NULL, &b, 1, 20, 3, ids);
    ASSERT_IDS(ids, n, 308, 302, 304);
    n = page_ids(f, "oak", "failed", &b, 1, 20, 1, ids);
    ASSERT_IDS(ids, n, 306);
    n = page_ids(f, "12", NULL, &ab, 1, 20, 6, ids);
    ASSERT_IDS(ids, n, 308, 301, 307, 302, 304, 305);
}

/* A scope that holds every stored job filters nothing; a job of no connection is in none. */
static void test_jobs_search_scope_of_every_connection(void **state)
{
    struct fixture *f = *state;
    ranked_jobs(f, "org-a", "org-b");
    const char *ab_keys[] = {"org-a", "org-b"}, *abc_keys[] = {"org-c", "org-b", "org-a"};
    struct hs_scope ab = {ab_keys, 2}, abc = {abc_keys, 3};
    int64_t ids[20];
    size_t n = page_ids(f, "oak", NULL, &abc, 1, 20, 6, ids);
    ASSERT_IDS(ids, n, 303, 306, 308, 307, 301, 302);
    n = page_ids(f, "oak", "failed", &ab, 1, 20, 2, ids);
    ASSERT_IDS(ids, n, 306, 301);

    sql_exec(f, "UPDATE jobs SET connection_key = NULL WHERE id = 303");
    n = page_ids(f, "oak", NULL, &abc, 1, 20, 5, ids);
    ASSERT_IDS(ids, n, 306, 308, 307, 301, 302);
    n = page_ids(f, "oak", NULL, NULL, 1, 20, 6, ids);
    ASSERT_IDS(ids, n, 303, 306, 308, 307, 301, 302);
    sql_exec(f, "UPDATE jobs SET connection_key = '' WHERE id = 303"); /* sorts first */
    n = page_ids(f, "oak", NULL, &abc, 1, 20, 5, ids);
    ASSERT_IDS(ids, n, 306, 308, 307, 301, 302);
    sql_exec(f, "UPDATE jobs SET connection_key = 'org-c' WHERE id = 303");
    n = page_ids(f, "oak", NULL, &ab, 1, 20, 5, ids);
    ASSERT_IDS(ids, n, 306, 308, 307, 301, 302);
    n = page_ids(f, "oak", NULL, &abc, 1, 20, 6, ids);
    ASSERT_IDS(ids, n, 303, 306, 308, 307, 301, 302);
}

/* A text search ranks and counts the first HS_SEARCH_MATCHES_MAX matches: the total says "at
 * least" that many, the pages end there; a job of the first tier is found however old. The
 * listing without text counts every job. */
static void test_jobs_search_counts_up_to_a_cap(void **state)
{
    struct fixture *f = *state;
    struct hs_error err = {0};
    assert_int_equal(f->store->ops->begin(f->store, &err), HS_OK);
    put_ranked(f, 500, "1 Hill Road", "Lane Farm", "Salem", "97301", "completed", "default");
    char line1[64];
    for (int64_t i = 0; i < HS_SEARCH_MATCHES_MAX + 5; i++) {
        snprintf(line1, sizeof line1, "%lld Lane Road", (long long)(i + 2));
        put_ranked(f, 1000 + i, line1, "House", "Salem", "97301", "completed", "default");
    }
    assert_int_equal(f->store->ops->commit(f->store, &err), HS_OK);
    const int64_t newest = 1000 + HS_SEARCH_MATCHES_MAX + 4;

    int64_t ids[20];
    size_t n = page_ids(f, "lane", NULL, NULL, 1, 3, HS_SEARCH_MATCHES_MAX, ids);
    ASSERT_IDS(ids, n, 500, newest, newest - 1);
    n = page_ids(f, "lane", NULL, NULL, HS_SEARCH_MATCHES_MAX / 20, 20, HS_SEARCH_MATCHES_MAX, ids);
    assert_int_equal(n, 20);
    assert_int_equal(ids[19], newest - (HS_SEARCH_MATCHES_MAX - 2));
    assert_int_equal(page_ids(f, "lane", NULL, NULL, HS_SEARCH_MATCHES_MAX / 20 + 1, 20,
                              HS_SEARCH_MATCHES_MAX, ids),
                     0);
    n = page_ids(f, "l", NULL, NULL, 1, 2, HS_SEARCH_MATCHES_MAX, ids);
    ASSERT_IDS(ids, n, 500, newest);
    /* Under the cap the total is exact: street numbers 10, 100..109, 1000..1006. */
    n = page_ids(f, "10", NULL, NULL, 1, 3, 18, ids);
    ASSERT_IDS(ids, n, 1008, newest, newest - 1);
    n = page_ids(f, "", NULL, NULL, 1, 1, HS_SEARCH_MATCHES_MAX + 6, ids);
    assert_int_equal(n, 1);
}

/* What a user may type is never FTS5 syntax: quotes, operators, column filters, stars, bytes
 * that are not UTF-8. Each is searched as plain words or finds nothing, without an error. */
static void test_jobs_search_hostile_text_is_plain_words(void **state)
{
    struct fixture *f = *state;
    struct test_job t;
    make_job(&t);
    t.job.name = (char *)"Smith AND Sons NOT Near";
    upsert(f, &t.job, true);
    static const char *const hostile[] = {"\"",
                                          "\"\"",
                                          "*",
                                          "**",
                                          "\"meadow",
                                          "meadow\"*",
                                          "AND",
                                          "OR",
                                          "NOT",
                                          "NEAR(a b)",
                                          "name:meadow",
                                          "{name}: x",
                                          "^meadow",
                                          "-meadow",
                                          "+",
                                          "(",
                                          ")",
                                          "meadow)",
                                          "a OR b",
                                          "\xff\xfe\xfd",
                                          "\xc3",
                                          "caf\xc3\xa9",
                                          "a*b\"c(d)e:f^g",
                                          "meadow\x01\x02",
                                          "'; DROP"};
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        struct found r = search(f, hostile[i], NULL, 1, 20);
        found_free(&r);
    }
    char longq[4000];
    memset(longq, 'a', sizeof longq - 1);
    longq[sizeof longq - 1] = '\0';
    for (size_t i = 0; i < sizeof longq - 1; i += 7)
        longq[i] = ' ';
    struct found r = search(f, longq, NULL, 1, 20);
    found_free(&r);

    assert_int_equal(only_id(f, "and sons"), 15084303); /* operators are words here */
    assert_int_equal(only_id(f, "smith NOT"), 15084303);
    assert_int_equal(only_id(f, "near:smith"), 15084303); /* not a column filter */
    assert_int_equal(count_found(f, "name:meadow"), 0);   /* "name*" is not in the job */
    assert_int_equal(only_id(f, "\"meadow\""), 15084303);
    assert_int_equal(only_id(f, "(4312) meadow*"), 15084303);
    assert_int_equal(count_found(f, "!!! ?? --"), 0); /* no word at all: nothing, not everything */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STORE_TEST(test_jobs_search_finds_prefixes_of_every_field),
        STORE_TEST(test_jobs_search_index_follows_changes),
        STORE_TEST(test_jobs_search_ranks_pages_and_filters),
        STORE_TEST(test_jobs_search_ranks_street_and_name_first),
        STORE_TEST(test_jobs_search_scope_of_every_connection),
        STORE_TEST(test_jobs_search_counts_up_to_a_cap),
        STORE_TEST(test_jobs_search_hostile_text_is_plain_words),
    };
    return STORE_TESTS("store search", tests);
}
