/* store_test.h: the storage suite's harness. Each concern of the store interface has its own
 * test file (test_tokens.c, test_records.c, ...) written against the interface only; the store
 * under test comes from one factory, setup, which reads HS_TEST_STORE: "sqlite" (the default)
 * gives each test a fresh SQLite file in a temporary directory, "postgresql" a fresh schema in
 * the throw-away cluster of tests/support/pg_cluster.sh. Every concern's file runs unchanged on
 * both. Back-end checks: test_sqlite.c (migrations of old files, the read pool, the transaction
 * helper) and test_pg.c (migrations under the lock, the pool, a server restart). */
#ifndef HS_TESTS_STORE_TEST_H
#define HS_TESTS_STORE_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>

#include "store/records.h"
#include "store/search.h"
#include "store/store.h"
#include "store/tokens.h"
#include "store/webhooks.h"

struct fixture {
    char dir[256];
    char path[600];  /* the store's location, as hs_store_open takes it */
    char schema[64]; /* PostgreSQL: the test's own schema (dropped at teardown) */
    struct hs_store *store;
};

/* The back-end under test (HS_TEST_STORE: "sqlite", the default, or "postgresql"). */
const char *store_test_backend(void);
bool store_test_is_pg(void);
/* PostgreSQL: the cluster's URL (HS_TEST_PG_URL, set by tests/support/pg_cluster.sh), or NULL; a
 * new empty schema (its name into schema) and the URL of a store in it (into url); dropping it. */
const char *store_test_pg_url(void);
int store_test_pg_fresh(char *schema, size_t schema_n, char *url, size_t url_n);
void store_test_pg_drop(const char *schema);
/* Opens another handle on the fixture's store (as another process would); HS_OK or the error,
 * printed. */
int open_store(struct fixture *f, struct hs_store **out);
/* cmocka setup and teardown: a fresh, empty store per test in f->store; removed afterwards. */
int setup(void **state);
int teardown(void **state);
/* Runs one concern's tests (cmocka_run_group_tests_name with the back-end in the name). */
#define STORE_TESTS(group, tests) cmocka_run_group_tests_name(group, tests, NULL, NULL)
#define STORE_TEST(fn)            cmocka_unit_test_setup_teardown(fn, setup, teardown)

/* Peeks at the store's tables through a connection of its own, as a CRM reads them (the tables
 * and columns documented in docs/RECORDS.md and the migrations, in SQL every back-end speaks):
 * for what the interface does not show. sql_int gives the first column of the first row (-999
 * for none). */
int64_t sql_int(struct fixture *f, const char *sql);
void sql_exec(struct fixture *f, const char *sql);
/* The back-end's own consistency check of the store (SQLite: integrity checks of the file and
 * of the search index). */
void store_check_integrity(struct fixture *f);

/* A token pair (borrowed strings) of org 463605. */
struct hs_token pair(const char *access, const char *refresh, int64_t expires);

/* A job like Show Job's example: two models, the second still processing. */
struct test_job {
    struct hs_job job;
    struct hs_model models[2];
};
void make_job(struct test_job *t);
/* A second job, the showcase's 118 Orchard Lane, captured by Jordan Reyes per its raw JSON. */
void make_orchard(struct test_job *t);
void upsert(struct fixture *f, const struct hs_job *j, bool expect_changed);
/* The records feed above since, parsed (caller decrefs). */
json_t *feed(struct fixture *f, int64_t since);
int64_t cursor_of(json_t *doc);
size_t count_of(json_t *doc, const char *key);
int64_t int_at(json_t *doc, const char *arr, size_t i, const char *key);
/* An artifact of model 17338410 (borrowed strings); put_artifact says whether it changed. */
struct hs_artifact_row artifact(const char *kind, const char *sha, const char *etag);
bool put_artifact(struct fixture *f, const struct hs_artifact_row *a);
extern const char SHA_A[], SHA_B[];

/* Job search, page by page. */
struct found {
    struct hs_job_summary *v;
    size_t n;
    int64_t total;
};
struct found search(struct fixture *f, const char *q, const char *state, int64_t page, int64_t per);
void found_free(struct found *r);
/* The ids found by q (page 1, up to 20), or 0 when none; asserts there are at most n_ids. */
size_t ids_of(struct fixture *f, const char *q, int64_t *ids, size_t n_ids);
int64_t only_id(struct fixture *f, const char *q);
size_t count_found(struct fixture *f, const char *q);
/* The jobs q finds within scope (page 1, up to 20; the total must be their number), and the
 * first one's id (0 when none). */
size_t search_count(struct fixture *f, const char *q, const struct hs_scope *scope, int64_t *first);
/* The ids of a page of q (state, scope as given) into ids, asserting the total. */
size_t page_ids(struct fixture *f, const char *q, const char *state, const struct hs_scope *scope,
                int64_t page, int64_t per, int64_t total, int64_t *ids);
/* Asserts that the n ids in got are the ones listed, in that order. */
#define ASSERT_IDS(got, n, ...)                                                                    \
    do {                                                                                           \
        const int64_t want_[] = {__VA_ARGS__};                                                     \
        assert_int_equal((n), sizeof want_ / sizeof want_[0]);                                     \
        for (size_t i_ = 0; i_ < (n); i_++)                                                        \
            assert_int_equal((got)[i_], want_[i_]);                                                \
    } while (0)

/* A connection with a token pair, and a delivery accepted for it (webhook 230293). */
void connect_key(struct fixture *f, const char *key);
int64_t accept_event(struct fixture *f, const char *key, int64_t job_id, const char *status,
                     bool schedule, int64_t now_ms);

#endif
