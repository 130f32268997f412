/* test_copy.c: the storage suite: a whole store copied into another (store/copy.h, the copy_*
 * operations of store.h), through the store interface only (store_test.h), so that every back-end
 * runs it. On PostgreSQL the copies also go through a SQLite file and back. The list of tables
 * and columns copied is checked against the schema. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/mem.h"
#include "store/copy.h"
#include "store/outbox.h"
#include "store/service.h"
#include "store/sqlite.h"
#include "store/work.h"
#include "store_test.h"

/* Another empty store: of the back-end under test, or a SQLite file when sqlite is set. */
static void other_store(struct fixture *f, struct fixture *g, bool sqlite)
{
    static int n;
    memset(g, 0, sizeof *g);
    (void)snprintf(g->dir, sizeof g->dir, "%s", f->dir);
    if (store_test_is_pg() && !sqlite)
        assert_int_equal(store_test_pg_fresh(g->schema, sizeof g->schema, g->path, sizeof g->path),
                         0);
    else
        (void)snprintf(g->path, sizeof g->path, "%s/copy-%d.db", f->dir, ++n);
    assert_int_equal(open_store(g, &g->store), HS_OK);
}

static void other_free(struct fixture *g)
{
    hs_store_close(g->store);
    if (g->schema[0])
        store_test_pg_drop(g->schema);
}

/* Records with a job, its models and an artifact; a token pair; a delivery with a NUL in its
 * body that scheduled work; two CRM notifications. */
static void populate(struct fixture *f)
{
    connect_key(f, "org-463605");
    struct test_job tj;
    make_job(&tj);
    upsert(f, &tj.job, true);
    struct hs_artifact_row a = artifact("measurements.pdf", SHA_A, "\"e1\"");
    assert_true(put_artifact(f, &a));
    accept_event(f, "org-463605", 15084303, "accepted", true, 1000);
    const char *ep = "http://127.0.0.1:9/crm";
    assert_int_equal(f->store->outbox->outbox_add(f->store, ep, 15084303, "{\"n\":1}", "k1", NULL),
                     HS_OK);
    assert_int_equal(f->store->outbox->outbox_add(f->store, ep, 15084303, "{\"n\":2}", "k2", NULL),
                     HS_OK);
    assert_int_equal(f->store->service->api_key_put(f->store, "crm-west", SHA_B, 1000, NULL),
                     HS_OK);
}

static int copy(struct fixture *from, struct fixture *to, bool replace, struct hs_copy_report *r)
{
    struct hs_error err = {0};
    int rc = hs_store_copy(from->store, to->store, replace, r, &err);
    if (rc)
        fprintf(stderr, "copy: %s\n", err.msg);
    return rc;
}

static char *feed_text(struct fixture *f, int64_t since)
{
    json_t *doc = feed(f, since);
    char *s = json_dumps(doc, JSON_SORT_KEYS);
    json_decref(doc);
    return s;
}

static void assert_same_feed(struct fixture *a, struct fixture *b)
{
    char *x = feed_text(a, 0), *y = feed_text(b, 0);
    assert_string_equal(x, y);
    free(x);
    free(y);
}

/* The first due notification: its id, job and sequence. */
static int64_t first_outbox(struct fixture *f, int64_t *job, int64_t *seq)
{
    struct hs_outbox_row o = {0};
    assert_int_equal(f->store->outbox->outbox_next(f->store, INT64_MAX / 2, &o, NULL), HS_OK);
    int64_t id = o.id;
    *job = o.job_id;
    *seq = o.seq_in_job;
    hs_outbox_row_clear(&o);
    return id;
}

static void test_copy_carries_everything_and_the_feed_goes_on(void **state)
{
    struct fixture *f = *state, g;
    populate(f);
    json_t *doc = feed(f, 0);
    int64_t cursor = cursor_of(doc);
    json_decref(doc);
    other_store(f, &g, false);
    struct hs_copy_report rep = {0};
    assert_int_equal(copy(f, &g, false, &rep), HS_OK);
    assert_int_equal(rep.tables, hs_copy_tables_count);
    assert_true(rep.rows >= 8);
    assert_same_feed(f, &g);

    /* The tokens, the queued work and the notifications are the target's now. */
    struct hs_token t = {0};
    assert_int_equal(g.store->tokens->token_load(g.store, "org-463605", &t, NULL), HS_OK);
    assert_string_equal(t.access_token, "acc");
    assert_string_equal(t.refresh_token, "ref");
    hs_token_clear(&t);
    struct hs_api_key *keys = NULL;
    size_t n_keys = 0;
    assert_int_equal(g.store->service->api_keys_list(g.store, &keys, &n_keys, NULL), HS_OK);
    assert_int_equal(n_keys, 1);
    assert_string_equal(keys[0].key_sha256, SHA_B);
    hs_api_keys_free(keys, n_keys);
    int64_t j1, s1, j2, s2;
    assert_int_equal(first_outbox(&g, &j2, &s2), first_outbox(f, &j1, &s1));
    assert_int_equal(j1, j2);
    assert_int_equal(s1, s2);
    int64_t due = 0, total = 0;
    assert_int_equal(g.store->work->work_depth(g.store, &due, &total, NULL, INT64_MAX / 2, NULL),
                     HS_OK);
    assert_int_equal(total, 1);

    /* The feed goes on from the copied cursor: a change on the target comes after it, under
     * an id of its own. */
    assert_true(put_artifact(&g, &(struct hs_artifact_row){
                                     .model_id = 17338410,
                                     .kind = (char *)"measurements.json",
                                     .sha256 = (char *)SHA_B,
                                     .bytes = 2,
                                     .path = (char *)"blobs/e3/b0/e3b0",
                                 }));
    json_t *after = feed(&g, cursor);
    assert_int_equal(cursor_of(after), cursor + 1);
    assert_int_equal(count_of(after, "artifacts"), 1);
    assert_int_equal(count_of(after, "jobs"), 0);
    assert_int_equal(sql_int(&g, "SELECT COUNT(DISTINCT id) FROM artifacts"), 2);
    json_decref(after);

    /* A target that holds anything is refused, and left as it was; --replace replaces it. */
    char *before = feed_text(&g, 0);
    assert_int_equal(copy(f, &g, false, NULL), HS_ERR_CONFLICT);
    char *now = feed_text(&g, 0);
    assert_string_equal(before, now);
    free(before);
    free(now);
    assert_int_equal(copy(f, &g, true, NULL), HS_OK);
    assert_same_feed(f, &g);
    other_free(&g);
}

/* Through a SQLite file and back into the back-end under test (from PostgreSQL: to the other
 * back-end and back): the same feed, byte for byte, and the same raw bodies. */
static void test_copy_through_the_other_back_end(void **state)
{
    struct fixture *f = *state, mid, back;
    populate(f);
    other_store(f, &mid, true);
    assert_int_equal(copy(f, &mid, false, NULL), HS_OK);
    other_store(f, &back, false);
    assert_int_equal(copy(&mid, &back, false, NULL), HS_OK);
    assert_same_feed(f, &mid);
    assert_same_feed(f, &back);
    int64_t body = sql_int(&back, "SELECT length(body) FROM webhook_events");
    assert_int_equal(body, sql_int(f, "SELECT length(body) FROM webhook_events"));
    store_check_integrity(&back);
    other_free(&back);
    other_free(&mid);
}

/* A copy that fails half-way leaves the target as it was: one transaction. */
static void test_copy_is_all_or_nothing(void **state)
{
    struct fixture *f = *state, g;
    populate(f);
    other_store(f, &g, false);
    /* outbox comes late in the list: the tables before it are written when it fails. */
    sql_exec(&g, store_test_is_pg()
                     ? "ALTER TABLE outbox ADD CONSTRAINT refuse CHECK (job_id < 0) NOT VALID"
                     : "CREATE TRIGGER refuse BEFORE INSERT ON outbox "
                       "BEGIN SELECT RAISE(ABORT, 'refused'); END");
    assert_int_not_equal(copy(f, &g, false, NULL), HS_OK);
    json_t *doc = feed(&g, 0);
    assert_int_equal(cursor_of(doc), 0);
    assert_int_equal(count_of(doc, "jobs"), 0);
    json_decref(doc);
    struct hs_token t = {0};
    assert_int_equal(g.store->tokens->token_load(g.store, "org-463605", &t, NULL),
                     HS_ERR_NOT_FOUND);
    sql_exec(&g, store_test_is_pg() ? "ALTER TABLE outbox DROP CONSTRAINT refuse"
                                    : "DROP TRIGGER refuse");
    assert_int_equal(copy(f, &g, false, NULL), HS_OK);
    assert_same_feed(f, &g);
    other_free(&g);
}

/* A source must exist: opening one that does not is refused, and creates nothing. */
static void test_open_must_exist_creates_nothing(void **state)
{
    struct fixture *f = *state, g = {0};
    struct hs_store_options o = {.must_exist = true};
    struct hs_store *s = NULL;
    struct hs_error err = {0};
    if (store_test_is_pg()) {
        assert_int_equal(store_test_pg_fresh(g.schema, sizeof g.schema, g.path, sizeof g.path), 0);
        assert_int_equal(hs_store_open(g.path, &o, &s, &err), HS_ERR_NOT_FOUND);
        assert_int_equal(sql_int(&g, "SELECT COUNT(*) FROM information_schema.tables WHERE "
                                     "table_schema = current_schema()"),
                         0);
        store_test_pg_drop(g.schema);
    } else {
        (void)snprintf(g.path, sizeof g.path, "%s/none.db", f->dir);
        assert_int_equal(hs_store_open(g.path, &o, &s, &err), HS_ERR_NOT_FOUND);
        assert_int_equal(access(g.path, F_OK), -1);
    }
    assert_non_null(strstr(err.msg, store_test_is_pg() ? "no hoversync store" : "no store at"));
    /* The fixture's own store exists: opened so, it opens. */
    assert_int_equal(hs_store_open(f->path, &o, &s, &err), HS_OK);
    hs_store_close(s);
}

/* The list of tables and columns is the schema's: every column of every table is copied (but
 * those each back-end derives itself: the search indexes, generated columns, PostgreSQL's order
 * of a session's connections), so a migration that adds one without listing it fails here. */
static void test_copy_list_is_the_schema(void **state)
{
    struct fixture *f = *state;
    struct hs_buf b;
    hs_buf_init(&b, (size_t)1 << 20);
    int64_t listed = 0;
    int rc = hs_buf_appends(&b, "WITH v(t, c) AS (VALUES ");
    for (size_t i = 0; i < hs_copy_tables_count && !rc; i++)
        for (size_t j = 0; j < hs_copy_tables[i].n_cols && !rc; j++, listed++)
            rc = hs_buf_appendf(&b, "%s('%s', '%s')", listed ? ", " : "", hs_copy_tables[i].name,
                                hs_copy_tables[i].cols[j].name);
    assert_int_equal(rc, HS_OK);
    const char *schema =
        store_test_is_pg()
            ? "SELECT table_name AS t, column_name AS c FROM information_schema.columns "
              "WHERE table_schema = current_schema() AND is_generated = 'NEVER' "
              "AND table_name IN (SELECT table_name FROM information_schema.tables WHERE "
              "table_schema = current_schema() AND table_type = 'BASE TABLE') "
              "AND table_name NOT IN ('schema_migrations', 'jobs_search') "
              "AND NOT (table_name = 'session_connections' AND column_name = 'position')"
            : "SELECT m.name AS t, x.name AS c FROM sqlite_master m, pragma_table_xinfo(m.name) x "
              "WHERE m.type = 'table' AND x.hidden = 0 AND m.name NOT LIKE 'jobs_fts%' "
              "AND m.name NOT LIKE 'sqlite_%' AND m.name <> 'schema_migrations'";
    assert_int_equal(hs_buf_appendf(&b, "), s AS (%s) ", schema), HS_OK);
    char *with = hs_buf_take(&b, NULL);
    char *sql = hs_aprintf("%s SELECT COUNT(*) FROM v JOIN s ON s.t = v.t AND s.c = v.c", with);
    assert_int_equal(sql_int(f, sql), listed); /* every listed column exists */
    free(sql);
    sql = hs_aprintf("%s SELECT COUNT(*) FROM s", with);
    assert_int_equal(sql_int(f, sql), listed); /* and no other */
    free(sql);
    free(with);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STORE_TEST(test_copy_carries_everything_and_the_feed_goes_on),
        STORE_TEST(test_copy_through_the_other_back_end),
        STORE_TEST(test_copy_is_all_or_nothing),
        STORE_TEST(test_open_must_exist_creates_nothing),
        STORE_TEST(test_copy_list_is_the_schema),
    };
    return STORE_TESTS("store copy", tests);
}
