/* store_test.c: the storage suite's harness (store_test.h): the factory that gives each test a
 * store of the back-end under test, and the helpers the concerns' files share. */
#include "store_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <sqlite3.h>
#include <unistd.h>

#include "core/mem.h"
#include "store/sqlite.h"

const char *store_test_backend(void)
{
    const char *b = getenv("HS_TEST_STORE");
    return b && *b ? b : "sqlite";
}

static bool is_sqlite(void)
{
    return strcmp(store_test_backend(), "sqlite") == 0;
}

bool store_test_is_pg(void)
{
    return strcmp(store_test_backend(), "postgresql") == 0;
}

/* ---- PostgreSQL: the cluster of tests/support/pg_cluster.sh (HS_TEST_PG_URL), a schema per
 * test, so that a test starts from an empty store in milliseconds ---- */

static PGconn *pg_connect(const char *url)
{
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "cannot connect to %s: %s", url, PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* Runs sql on url; the first column of the first row into *v when v (-999 for none). */
static bool pg_sql(const char *url, const char *sql, int64_t *v)
{
    PGconn *c = pg_connect(url);
    if (!c)
        return false;
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "sql: %s", PQresultErrorMessage(r));
    if (ok && v) {
        *v = -999;
        if (st == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) {
            const char *t = PQgetvalue(r, 0, 0);
            *v = strcmp(t, "t") == 0 ? 1 : strcmp(t, "f") == 0 ? 0 : strtoll(t, NULL, 10);
        }
    }
    PQclear(r);
    PQfinish(c);
    return ok;
}

const char *store_test_pg_url(void)
{
    const char *u = getenv("HS_TEST_PG_URL");
    return u && *u ? u : NULL;
}

int store_test_pg_fresh(char *schema, size_t schema_n, char *url, size_t url_n)
{
    static int counter;
    const char *base = store_test_pg_url();
    if (!base) {
        fprintf(stderr,
                "HS_TEST_STORE=postgresql needs HS_TEST_PG_URL (tests/support/pg_cluster.sh)\n");
        return -1;
    }
    (void)snprintf(schema, schema_n, "t_%ld_%d", (long)getpid(), ++counter);
    char sql[200];
    (void)snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s", schema,
                   schema);
    if (!pg_sql(base, sql, NULL))
        return -1;
    (void)snprintf(url, url_n, "%s%coptions=-csearch_path%%3D%s%%2Cpublic", base,
                   strchr(base, '?') ? '&' : '?', schema);
    return 0;
}

void store_test_pg_drop(const char *schema)
{
    char sql[200];
    (void)snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", schema);
    if (store_test_pg_url())
        pg_sql(store_test_pg_url(), sql, NULL);
}

int open_store(struct fixture *f, struct hs_store **out)
{
    struct hs_error err = {0};
    int rc = hs_store_open(f->path, NULL, out, &err);
    if (rc)
        fprintf(stderr, "open failed: %s\n", err.msg);
    return rc;
}

int setup(void **state)
{
    if (!is_sqlite() && !store_test_is_pg()) {
        fprintf(stderr, "HS_TEST_STORE=%s: no such back-end in this build\n", store_test_backend());
        return -1;
    }
    struct fixture *f = hs_calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/hs-store-test-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/store.db", f->dir);
    if (store_test_is_pg() &&
        store_test_pg_fresh(f->schema, sizeof f->schema, f->path, sizeof f->path)) {
        free(f);
        return -1;
    }
    struct hs_error err = {0};
    if (open_store(f, &f->store)) {
        free(f);
        return -1;
    }
    if (hs_store_complete(f->store, &err)) { /* every operation of every concern is there */
        fprintf(stderr, "%s\n", err.msg);
        hs_store_close(f->store);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

int teardown(void **state)
{
    struct fixture *f = *state;
    hs_store_close(f->store);
    if (f->schema[0])
        store_test_pg_drop(f->schema);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

void store_check_integrity(struct fixture *f)
{
    if (store_test_is_pg()) { /* the search's words are every job's, and only theirs */
        assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM jobs j FULL JOIN jobs_search s "
                                    "ON s.job_id = j.id WHERE s.job_id IS NULL OR j.id IS NULL"),
                         0);
        return;
    }
    assert_int_equal(sql_int(f, "SELECT integrity_check = 'ok' FROM pragma_integrity_check"), 1);
    sql_exec(f, "INSERT INTO jobs_fts(jobs_fts) VALUES ('integrity-check');"
                "INSERT INTO jobs_fts_lead(jobs_fts_lead) VALUES ('integrity-check')");
}

struct hs_token pair(const char *access, const char *refresh, int64_t expires)
{
    struct hs_token t = {0};
    t.access_token = (char *)access;
    t.refresh_token = (char *)refresh;
    t.expires_at = expires;
    t.owner_id = 463605;
    t.owner_type = (char *)"orgs";
    return t;
}

/* A second connection on the file, as a CRM would have (store_test.h). */
int64_t sql_int(struct fixture *f, const char *sql)
{
    if (store_test_is_pg()) {
        int64_t pv = -999;
        assert_true(pg_sql(f->path, sql, &pv));
        return pv;
    }
    assert_true(is_sqlite());
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v = -999;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

void sql_exec(struct fixture *f, const char *sql)
{
    if (store_test_is_pg()) {
        assert_true(pg_sql(f->path, sql, NULL));
        return;
    }
    assert_true(is_sqlite());
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fprintf(stderr, "sql: %s\n", msg ? msg : "?");
    sqlite3_free(msg);
    sqlite3_close(db);
    assert_int_equal(rc, SQLITE_OK);
}

void make_job(struct test_job *t)
{
    memset(t, 0, sizeof *t);
    struct hs_model *m = t->models;
    m[0].id = 17338410;
    m[0].name = (char *)"Main House";
    m[0].state = (char *)"complete";
    m[0].deliverable = (char *)"complete";
    m[0].deliverable_id = 3;
    m[0].capture_id = 558711;
    m[0].updated_at = (char *)"2025-03-17T01:00:00.000Z";
    m[1].id = 17338411;
    m[1].name = (char *)"Garage";
    m[1].state = (char *)"processing";
    m[1].deliverable = (char *)"complete";
    m[1].updated_at = (char *)"2025-03-17T01:00:00.000Z";
    struct hs_job *j = &t->job;
    j->id = 15084303;
    j->name = (char *)"Main House";
    j->reconstruction_state = (char *)"completed";
    j->external_identifier = (char *)"8675309";
    j->org_id = 463605;
    j->deliverable_id = 3;
    j->created_at = (char *)"2025-03-16T23:55:50.094Z";
    j->updated_at = (char *)"2025-03-17T01:00:00.000Z";
    j->address.line1 = (char *)"4312 Meadow Drive";
    j->address.line2 = (char *)"";
    j->address.city = (char *)"Santa Maria";
    j->address.region = (char *)"CA";
    j->address.postal_code = (char *)"93455";
    j->address.country = (char *)"US";
    j->address.has_coords = true;
    j->address.latitude = 34.8784998;
    j->address.longitude = -120.4139807;
    j->customer.email = (char *)"owner@example.com";
    j->raw_json = (char *)"{\"id\":15084303}";
    j->models = m;
    j->n_models = 2;
}

json_t *feed(struct fixture *f, int64_t since)
{
    char *s = NULL;
    struct hs_error err = {0};
    int rc = f->store->records->export_since(f->store, since, NULL, &s, &err);
    if (rc)
        fprintf(stderr, "export_since: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    json_error_t je;
    json_t *doc = json_loads(s, 0, &je);
    assert_non_null(doc);
    free(s);
    return doc;
}

int64_t cursor_of(json_t *doc)
{
    return json_integer_value(json_object_get(doc, "cursor"));
}

size_t count_of(json_t *doc, const char *key)
{
    json_t *a = json_object_get(doc, key);
    assert_true(json_is_array(a));
    return json_array_size(a);
}

int64_t int_at(json_t *doc, const char *arr, size_t i, const char *key)
{
    json_t *v = json_object_get(json_array_get(json_object_get(doc, arr), i), key);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

void upsert(struct fixture *f, const struct hs_job *j, bool expect_changed)
{
    bool changed = !expect_changed;
    struct hs_error err = {0};
    int rc = f->store->records->job_upsert(f->store, j, "default", &changed, &err);
    if (rc)
        fprintf(stderr, "job_upsert: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    assert_int_equal(changed, expect_changed);
}

struct hs_artifact_row artifact(const char *kind, const char *sha, const char *etag)
{
    struct hs_artifact_row a = {0};
    a.model_id = 17338410;
    a.kind = (char *)kind;
    a.source_url = (char *)"https://hover.to/api/v3/models/17338410/artifacts/measurements.pdf";
    a.sha256 = (char *)sha;
    a.bytes = 1234;
    a.content_type = (char *)"application/pdf";
    a.path = (char *)"blobs/ab/cd/abcd";
    a.etag = (char *)etag;
    a.fetched_at = (char *)"2025-03-18T00:00:00.000Z";
    return a;
}

bool put_artifact(struct fixture *f, const struct hs_artifact_row *a)
{
    bool changed = false;
    struct hs_error err = {0};
    int rc = f->store->records->artifact_put(f->store, a, &changed, &err);
    if (rc)
        fprintf(stderr, "artifact_put: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    return changed;
}

const char SHA_A[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const char SHA_B[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct found search(struct fixture *f, const char *q, const char *state, int64_t page, int64_t per)
{
    struct found r = {0};
    struct hs_error err = {0};
    int rc = f->store->search->jobs_search(f->store, q, state, page, per, NULL, &r.v, &r.n,
                                           &r.total, &err);
    if (rc)
        fprintf(stderr, "jobs_search(%s): %s\n", q ? q : "(null)", err.msg);
    assert_int_equal(rc, HS_OK);
    assert_true(r.n <= (size_t)per);
    return r;
}

void found_free(struct found *r)
{
    hs_job_summaries_free(r->v, r->n);
    memset(r, 0, sizeof *r);
}

/* The ids found by q (page 1, up to 20), or 0 when none; asserts there are at most n_ids. */
size_t ids_of(struct fixture *f, const char *q, int64_t *ids, size_t n_ids)
{
    struct found r = search(f, q, NULL, 1, 20);
    assert_true(r.n <= n_ids);
    assert_int_equal(r.total, (int64_t)r.n);
    for (size_t i = 0; i < r.n; i++)
        ids[i] = r.v[i].id;
    size_t n = r.n;
    found_free(&r);
    return n;
}

int64_t only_id(struct fixture *f, const char *q)
{
    int64_t ids[20] = {0};
    size_t n = ids_of(f, q, ids, 20);
    if (n != 1)
        fprintf(stderr, "'%s' found %zu jobs, expected 1\n", q, n);
    assert_int_equal(n, 1);
    return ids[0];
}

size_t count_found(struct fixture *f, const char *q)
{
    int64_t ids[20];
    return ids_of(f, q, ids, 20);
}

size_t search_count(struct fixture *f, const char *q, const struct hs_scope *scope, int64_t *first)
{
    struct hs_job_summary *v = NULL;
    size_t n = 0;
    int64_t total = -1;
    assert_int_equal(
        f->store->search->jobs_search(f->store, q, NULL, 1, 20, scope, &v, &n, &total, NULL),
        HS_OK);
    assert_int_equal(total, (int64_t)n);
    *first = n ? v[0].id : 0;
    hs_job_summaries_free(v, n);
    return n;
}

size_t page_ids(struct fixture *f, const char *q, const char *state, const struct hs_scope *scope,
                int64_t page, int64_t per, int64_t total, int64_t *ids)
{
    struct hs_job_summary *v = NULL;
    size_t n = 0;
    int64_t t = -1;
    struct hs_error err = {0};
    assert_int_equal(
        f->store->search->jobs_search(f->store, q, state, page, per, scope, &v, &n, &t, &err),
        HS_OK);
    assert_int_equal(t, total);
    for (size_t i = 0; i < n; i++)
        ids[i] = v[i].id;
    hs_job_summaries_free(v, n);
    return n;
}

/* A second job, the showcase's 118 Orchard Lane, captured by Jordan Reyes per its raw JSON. */
void make_orchard(struct test_job *t)
{
    make_job(t);
    t->job.id = 15084302;
    t->job.name = (char *)"Whitfield Garage Addition";
    t->job.external_identifier = (char *)"CRM-20417";
    t->job.updated_at = (char *)"2025-04-01T00:00:00.000Z";
    t->job.address.line1 = (char *)"118 Orchard Lane";
    t->job.address.city = (char *)"Boise";
    t->job.address.region = (char *)"ID";
    t->job.address.postal_code = (char *)"83702";
    t->job.customer.name = (char *)"Marcus Whitfield";
    t->job.customer.email = (char *)"marcus@example.net";
    t->job.raw_json = (char *)"{\"id\":15084302,\"user\":{\"id\":2190402,\"first_name\":\"Jordan\","
                              "\"last_name\":\"Reyes\",\"email\":"
                              "\"jordan.reyes@summitroofing.example\"}}";
    t->models[0].id = 17338404;
    t->models[1].id = 17338405;
    t->models[1].state = (char *)"failed";
}

void connect_key(struct fixture *f, const char *key)
{
    struct hs_token t = pair("acc", "ref", 100);
    assert_int_equal(f->store->tokens->token_save(f->store, key, &t, NULL), HS_OK);
}

int64_t accept_event(struct fixture *f, const char *key, int64_t job_id, const char *status,
                     bool schedule, int64_t now_ms)
{
    static const char body[] = "{\"event\":\"job-state-changed-v2\",\"job_id\":7,\0\"x\"}";
    struct hs_event_row e = {0};
    e.webhook_id = 230293;
    e.connection_key = (char *)key;
    e.event = (char *)"job-state-changed-v2";
    e.job_id = job_id;
    e.state = (char *)"complete";
    e.body = (char *)body;
    e.body_len = sizeof body - 1;
    e.headers_json = (char *)"{\"Date\":\"x\"}";
    e.status = (char *)status;
    int64_t id = 0;
    struct hs_error err = {0};
    int rc = f->store->webhooks->event_accept(f->store, &e, schedule, 1000, now_ms, &id, &err);
    if (rc)
        fprintf(stderr, "event_accept: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    assert_true(id > 0);
    return id;
}
