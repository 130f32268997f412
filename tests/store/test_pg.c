/* test_pg.c: the PostgreSQL back-end's own checks (store_pg.c), run by tests/support/pg_cluster.sh
 * against a real server: migrations under the advisory lock, a schema newer than the binary,
 * reads beside another thread's open write transaction, and a server restart under an open
 * store. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/migrations.h"
#include "store/records.h"
#include "store/service.h"
#include "store/work.h"
#include "store_test.h"

#define OPENERS 8
/* Operations after a restart: more than the pool has connections, each of them dead. */
#define HS_TEST_PG_ROUNDS 8

struct opener {
    const char *url;
    struct hs_store *store;
    int rc;
};

static void *open_one(void *arg)
{
    struct opener *o = arg;
    struct hs_error err = {0};
    o->rc = hs_store_open(o->url, NULL, &o->store, &err);
    if (o->rc)
        fprintf(stderr, "open: %s\n", err.msg);
    return NULL;
}

/* Instances starting together on an empty database: every one opens, and each migration is
 * applied once. */
static void test_concurrent_opens_migrate_once(void **state)
{
    (void)state;
    char schema[64], url[600];
    assert_int_equal(store_test_pg_fresh(schema, sizeof schema, url, sizeof url), 0);
    struct opener o[OPENERS];
    pthread_t th[OPENERS];
    for (int i = 0; i < OPENERS; i++) {
        o[i] = (struct opener){.url = url};
        assert_int_equal(pthread_create(&th[i], NULL, open_one, &o[i]), 0);
    }
    for (int i = 0; i < OPENERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(o[i].rc, HS_OK);
    }
    struct fixture f = {0};
    snprintf(f.path, sizeof f.path, "%s", url);
    assert_int_equal(sql_int(&f, "SELECT COUNT(*) FROM schema_migrations"), hs_pg_migrations_count);
    assert_int_equal(sql_int(&f, "SELECT COUNT(DISTINCT version) FROM schema_migrations"),
                     hs_pg_migrations_count);
    /* One list of versions: the schema of the latest SQLite migration is PostgreSQL's too. */
    assert_int_equal(sql_int(&f, "SELECT MAX(version) FROM schema_migrations"),
                     hs_sqlite_migrations[hs_sqlite_migrations_count - 1].version);
    for (int i = 0; i < OPENERS; i++)
        hs_store_close(o[i].store);
    store_test_pg_drop(schema);
}

/* A schema from a later release is refused with a message that says so, and left alone. */
static void test_newer_schema_is_refused(void **state)
{
    struct fixture *f = *state;
    sql_exec(f, "INSERT INTO schema_migrations (version, name) VALUES (9999, 'from the future')");
    struct hs_store *other = NULL;
    struct hs_error err = {0};
    assert_int_equal(hs_store_open(f->path, NULL, &other, &err), HS_ERR_DB);
    assert_non_null(strstr(err.msg, "newer than this hoversync"));
    assert_int_equal(sql_int(f, "SELECT MAX(version) FROM schema_migrations"), 9999);
}

/* A store with later migrations but not an earlier one (versions are given out ahead to
 * changes made side by side) gets that one when it opens. */
static void test_missing_earlier_migration_is_applied(void **state)
{
    struct fixture *f = *state;
    sql_exec(f, "DELETE FROM schema_migrations WHERE version = 19");
    assert_true(sql_int(f, "SELECT COUNT(*) FROM schema_migrations WHERE version > 19") > 0);
    struct hs_store *other = NULL;
    struct hs_error err = {0};
    assert_int_equal(hs_store_open(f->path, NULL, &other, &err), HS_OK);
    hs_store_close(other);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM schema_migrations WHERE version = 19"), 1);
}

/* A password never travels in the URL (it would be on a command line, in `ps`): refused before
 * any connection is tried. */
static void test_password_in_url_is_refused(void **state)
{
    (void)state;
    static const char *const urls[] = {
        "postgresql://hover:secret@127.0.0.1:1/db",
        "postgres://127.0.0.1:1/db?sslmode=require&password=secret",
    };
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        struct hs_store *s = NULL;
        struct hs_error err = {0};
        assert_int_equal(hs_store_open(urls[i], NULL, &s, &err), HS_ERR_INVALID);
        assert_non_null(strstr(err.msg, "PGPASSWORD"));
        assert_null(strstr(err.msg, "secret"));
    }
}

/* A thread holding a write transaction open does not hold up another thread's reads: they run
 * on other connections of the pool and see the last commit. */
struct reader {
    struct hs_store *store;
    int rc;
    char *value;
};

static void *read_checkpoint(void *arg)
{
    struct reader *r = arg;
    r->rc = r->store->records->checkpoint_get(r->store, "cursor", &r->value, NULL);
    return NULL;
}

static void test_reads_run_beside_an_open_write(void **state)
{
    struct fixture *f = *state;
    struct hs_store *s = f->store;
    assert_int_equal(s->records->checkpoint_put(s, "cursor", "1", NULL), HS_OK);
    assert_int_equal(s->ops->begin(s, NULL), HS_OK);
    assert_int_equal(s->records->checkpoint_put(s, "cursor", "2", NULL), HS_OK);
    /* The reader must finish while the transaction is still open: joined before the commit. */
    struct reader r = {.store = s};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, read_checkpoint, &r), 0);
    pthread_join(th, NULL);
    assert_int_equal(r.rc, HS_OK);
    assert_string_equal(r.value, "1");
    free(r.value);
    assert_int_equal(s->ops->commit(s, NULL), HS_OK);
    char *v = NULL;
    assert_int_equal(s->records->checkpoint_get(s, "cursor", &v, NULL), HS_OK);
    assert_string_equal(v, "2");
    free(v);
}

/* One thread, two handles of one database (store copy between two PostgreSQL stores, a test's
 * second process): an operation on the second handle inside a transaction of the first runs
 * its own transaction and gives the first one back, whose writes then commit. */
static void test_a_second_handle_inside_a_transaction(void **state)
{
    struct fixture *f = *state;
    struct hs_store *s = f->store, *other = NULL;
    assert_int_equal(hs_store_open(f->path, NULL, &other, NULL), HS_OK);
    assert_int_equal(s->ops->begin(s, NULL), HS_OK);
    assert_int_equal(s->records->checkpoint_put(s, "cursor", "from the first", NULL), HS_OK);
    assert_int_equal(other->records->checkpoint_put(other, "other", "from the second", NULL),
                     HS_OK);
    assert_int_equal(s->records->checkpoint_put(s, "cursor2", "still the first", NULL), HS_OK);
    assert_int_equal(s->ops->commit(s, NULL), HS_OK);
    const char *const names[] = {"cursor", "other", "cursor2"};
    const char *const want[] = {"from the first", "from the second", "still the first"};
    for (int i = 0; i < 3; i++) {
        char *v = NULL;
        assert_int_equal(s->records->checkpoint_get(s, names[i], &v, NULL), HS_OK);
        assert_string_equal(v, want[i]);
        free(v);
    }
    hs_store_close(other);
}

/* PostgreSQL restarted under an open store (every connection of its pool dropped): the next
 * operations reconnect and work, without reopening the store. A transaction open across the
 * restart fails, and nothing of it is stored. */
static void test_store_survives_a_server_restart(void **state)
{
    struct fixture *f = *state;
    struct hs_store *s = f->store;
    const char *restart = getenv("HS_TEST_PG_RESTART");
    assert_non_null(restart);
    assert_int_equal(s->records->checkpoint_put(s, "before", "1", NULL), HS_OK);
    assert_int_equal(s->ops->begin(s, NULL), HS_OK);
    assert_int_equal(s->records->checkpoint_put(s, "in-flight", "1", NULL), HS_OK);
    assert_int_equal(system(restart), 0);
    assert_int_not_equal(s->ops->commit(s, NULL), HS_OK);
    for (int round = 0; round < HS_TEST_PG_ROUNDS; round++) {
        char *v = NULL;
        assert_int_equal(s->records->checkpoint_get(s, "before", &v, NULL), HS_OK);
        assert_string_equal(v, "1");
        free(v);
        assert_int_equal(s->records->checkpoint_put(s, "after", "1", NULL), HS_OK);
    }
    char *v = NULL;
    assert_int_equal(s->records->checkpoint_get(s, "in-flight", &v, NULL), HS_ERR_NOT_FOUND);
}

/* The listening connection of work_wait is lost with a server restart: the wait says so (an
 * error, the workers poll meanwhile), the next one listens again (and says woken: commits may
 * have gone unheard), and a schedule committed after the restart by another handle is heard. */
static void test_work_wait_listens_again_after_a_server_restart(void **state)
{
    struct fixture *f = *state;
    struct hs_store *s = f->store;
    const char *restart = getenv("HS_TEST_PG_RESTART");
    assert_non_null(restart);
    bool woken = false;
    assert_int_equal(s->work->work_wait(s, -1, 0, &woken, NULL), HS_OK);
    assert_true(woken); /* started listening */
    assert_int_equal(system(restart), 0);
    struct hs_error err = {0};
    int rc = HS_OK;
    for (int i = 0; i < 3 && rc == HS_OK; i++) /* until the wait finds the connection gone */
        rc = s->work->work_wait(s, -1, 5000, &woken, &err);
    assert_int_not_equal(rc, HS_OK);
    assert_non_null(strstr(err.msg, "listening for work"));
    assert_int_equal(s->work->work_wait(s, -1, 0, &woken, NULL), HS_OK);
    assert_true(woken); /* listening again */
    struct hs_store *other = NULL;
    assert_int_equal(open_store(f, &other), HS_OK);
    struct hs_work_trigger t = {.connection_key = "org-a",
                                .job_id = 7,
                                .reason = "test",
                                .priority = HS_WORK_PRIO_BACKGROUND,
                                .now_ms = 1000,
                                .due_ms = 1000};
    assert_int_equal(other->work->work_schedule(other, &t, NULL), HS_OK);
    woken = false;
    assert_int_equal(s->work->work_wait(s, -1, 10000, &woken, NULL), HS_OK);
    assert_true(woken);
    hs_store_close(other);
}

int main(void)
{
    if (!store_test_is_pg()) {
        fprintf(stderr, "test_pg: runs on PostgreSQL only (tests/support/pg_cluster.sh)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_opens_migrate_once),
        cmocka_unit_test(test_password_in_url_is_refused),
        STORE_TEST(test_newer_schema_is_refused),
        STORE_TEST(test_missing_earlier_migration_is_applied),
        STORE_TEST(test_reads_run_beside_an_open_write),
        STORE_TEST(test_a_second_handle_inside_a_transaction),
        STORE_TEST(test_store_survives_a_server_restart),
        STORE_TEST(test_work_wait_listens_again_after_a_server_restart),
    };
    return STORE_TESTS("store-pg", tests);
}
