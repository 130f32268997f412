/* test_sqlite.c: what only the SQLite back-end has: its file and migrations (old files upgraded,
 * migrations applied once), its transaction helper, its read pool, the group commit of webhook
 * intake, and the check that a back-end sets every operation. The concerns themselves are
 * tested through the interface in the other test_*.c files. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/mem.h"
#include "store/migrations.h"
#include "store/service.h"
#include "store/sqlite.h"
#include "store/sqlite_internal.h"
#include "store/webhooks.h"
#include "store/work.h"
#include "store_test.h"

static void test_reopen_does_not_reapply_migrations(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 3; i++) {
        hs_store_close(f->store);
        assert_int_equal(open_store(f, &f->store), HS_OK);
    }
    struct hs_token a = pair("x", "y", 1);
    assert_int_equal(f->store->tokens->token_save(f->store, "k", &a, NULL), HS_OK);
}

static void test_unwritable_path_is_a_clear_error(void **state)
{
    (void)state;
    struct hs_store *s = NULL;
    struct hs_error err = {0};
    assert_int_equal(hs_store_open_sqlite("/nonexistent-dir/x/y.db", NULL, &s, &err), HS_ERR_DB);
    assert_null(s);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/x/y.db"));
}

static int64_t reader_mmap_size(struct hs_store *st)
{
    struct sqlite_store *s = hs_sqlite_of(st);
    char *v = NULL;
    /* a read: it opens a reader */
    assert_int_equal(st->records->checkpoint_get(st, "none", &v, NULL), HS_ERR_NOT_FOUND);
    assert_non_null(s->readers[0].db);
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(s->readers[0].db, "PRAGMA mmap_size", -1, &q, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return n;
}

/* The readers map the file unless the store was opened for a batch command (unmapped_reads). */
static void test_unmapped_reads_do_not_map_the_file(void **state)
{
    struct fixture *f = *state;
    assert_true(reader_mmap_size(f->store) > 0);
    hs_store_close(f->store);
    struct hs_store_options o = {.unmapped_reads = true};
    assert_int_equal(hs_store_open_sqlite(f->path, &o, &f->store, NULL), HS_OK);
    assert_int_equal(reader_mmap_size(f->store), 0);
}

/* Turns the file back into a version-1 database, whatever later migrations created: every view,
 * virtual table and table but those of migration 1 is dropped (views and virtual tables first,
 * their triggers and shadow tables go with them). */
static void back_to_v1(struct fixture *f)
{
    static const char next_sql[] =
        "SELECT type, name FROM sqlite_master WHERE type IN ('view', 'table') "
        "AND name NOT IN ('connections', 'oauth_tokens', 'schema_migrations') "
        "AND name NOT LIKE 'sqlite_%' "
        "ORDER BY type = 'view' DESC, sql LIKE 'CREATE VIRTUAL%' DESC LIMIT 1";
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    for (int guard = 0; guard < 100; guard++) {
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_prepare_v2(db, next_sql, -1, &st, NULL), SQLITE_OK);
        char drop[300] = "";
        if (sqlite3_step(st) == SQLITE_ROW)
            snprintf(drop, sizeof drop, "DROP %s \"%s\"",
                     strcmp((const char *)sqlite3_column_text(st, 0), "view") == 0 ? "VIEW"
                                                                                   : "TABLE",
                     (const char *)sqlite3_column_text(st, 1));
        sqlite3_finalize(st);
        if (!drop[0])
            break;
        assert_int_equal(sqlite3_exec(db, drop, NULL, NULL, NULL), SQLITE_OK);
    }
    /* Migration 17's column on a table of migration 1. */
    assert_int_equal(
        sqlite3_exec(db, "ALTER TABLE connections DROP COLUMN artifacts", NULL, NULL, NULL),
        SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db, "DELETE FROM schema_migrations WHERE version > 1", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
}

static void test_migrations_recorded_once(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < 3; i++) {
        hs_store_close(f->store);
        assert_int_equal(open_store(f, &f->store), HS_OK);
    }
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM schema_migrations"),
                     hs_sqlite_migrations_count);
    assert_int_equal(sql_int(f, "SELECT COUNT(DISTINCT version) FROM schema_migrations"),
                     hs_sqlite_migrations_count);
    assert_int_equal(sql_int(f, "SELECT MAX(version) FROM schema_migrations"),
                     hs_sqlite_migrations[hs_sqlite_migrations_count - 1].version);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM counters WHERE name = 'change_seq'"), 1);
}

/* A database from before the sync records gets them on open, and keeps its tokens. */
static void test_v1_database_is_upgraded(void **state)
{
    struct fixture *f = *state;
    struct hs_token a = pair("acc-v1", "ref-v1", 100);
    assert_int_equal(f->store->tokens->token_save(f->store, "default", &a, NULL), HS_OK);
    hs_store_close(f->store);
    f->store = NULL;
    back_to_v1(f);
    assert_int_equal(sql_int(f, "SELECT MAX(version) FROM schema_migrations"), 1);
    assert_int_equal(open_store(f, &f->store), HS_OK);
    assert_int_equal(sql_int(f, "SELECT MAX(version) FROM schema_migrations"),
                     hs_sqlite_migrations[hs_sqlite_migrations_count - 1].version);
    struct hs_token out = {0};
    assert_int_equal(f->store->tokens->token_load(f->store, "default", &out, NULL), HS_OK);
    assert_string_equal(out.access_token, "acc-v1");
    hs_token_clear(&out);
    struct test_job t;
    make_job(&t);
    upsert(f, &t.job, true);
}

/* Back to the schema before session connections, with a session stored then. */
static void before_session_connections(struct fixture *f, const char *hash)
{
    hs_store_close(f->store);
    f->store = NULL;
    char sql[2048];
    /* Migrations 13 and later undone too: they are applied again after 12. */
    snprintf(
        sql, sizeof sql,
        "DROP TABLE tickets; DROP VIEW images; ALTER TABLE artifacts DROP COLUMN fetched; ALTER "
        "TABLE connections "
        "DROP COLUMN artifacts; "
        "DROP INDEX webhook_events_received; DROP INDEX sync_runs_started; "
        "DROP INDEX sync_results_at; DROP INDEX outbox_delivered; "
        "DROP TABLE api_keys; ALTER TABLE jobs DROP COLUMN disconnected_at; "
        "DROP TABLE budget_bookings; DROP TABLE budgets; DROP TABLE budget_waiters; "
        "DROP TABLE connect_flows; DROP TABLE image_sources; DROP TABLE caller_rates; "
        "DROP TABLE sync_models; DROP TABLE syncs; DROP TABLE pending_polls; "
        "DROP INDEX work_items_due; ALTER TABLE work_items DROP COLUMN priority; "
        "ALTER TABLE work_items DROP COLUMN claims; ALTER TABLE work_items DROP COLUMN trigger_ms; "
        "ALTER TABLE work_items DROP COLUMN payload; ALTER TABLE work_items DROP COLUMN "
        "payload_ms; "
        "CREATE INDEX work_items_due ON work_items(not_before_ms); "
        "DROP TABLE session_connections; DROP TABLE leases; DROP INDEX jobs_connection_updated; "
        "DROP INDEX IF EXISTS jobs_search_rank; CREATE INDEX jobs_search_rank ON jobs(id, "
        "hover_updated_at, reconstruction_state); DROP TABLE token_rejections; "
        "DROP INDEX sync_runs_status; ALTER TABLE sync_runs DROP COLUMN lease_until_ms; "
        "DELETE FROM schema_migrations WHERE version >= 7; "
        "INSERT INTO sessions VALUES ('%s', 'csrf', 1000, 4102444800, NULL);",
        hash);
    sql_exec(f, sql);
    assert_int_equal(open_store(f, &f->store), HS_OK);
}

/* Sessions of before keep working where that is unambiguous (one connection), else they end. */
static void test_sessions_of_before_get_the_only_connection(void **state)
{
    struct fixture *f = *state;
    struct hs_token a = pair("acc", "ref", 0);
    assert_int_equal(f->store->tokens->token_save(f->store, "org-463605", &a, NULL), HS_OK);
    before_session_connections(f, SHA_A);
    struct hs_session out = {0};
    assert_int_equal(f->store->service->session_get(f->store, SHA_A, 2000, &out, NULL), HS_OK);
    assert_int_equal(out.n_connections, 1);
    assert_string_equal(out.connections[0], "org-463605");
    hs_session_clear(&out);

    a.owner_id = 471122;
    assert_int_equal(f->store->tokens->token_save(f->store, "org-471122", &a, NULL), HS_OK);
    before_session_connections(f, SHA_B);
    assert_int_equal(f->store->service->session_get(f->store, SHA_B, 2000, &out, NULL),
                     HS_ERR_NOT_FOUND);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM sessions"), 0);
}

/* A store of before artifact profiles (migration 17) with a connection keeps fetching
 * everything on it; a connection made after the upgrade, and every one of a new store, follows
 * the installation's profile. */
static void test_store_of_before_profiles_keeps_all(void **state)
{
    struct fixture *f = *state;
    struct hs_token a = pair("acc", "ref", 0);
    assert_int_equal(f->store->tokens->token_save(f->store, "org-1", &a, NULL), HS_OK);
    char *list = (char *)"unset";
    assert_int_equal(f->store->service->connection_artifacts_get(f->store, "org-1", &list, NULL),
                     HS_OK);
    assert_null(list);
    hs_store_close(f->store);
    f->store = NULL;
    /* The schema of before (later migrations undone too: they are applied again after 16):
     * the view without the column, then the column gone. */
    sql_exec(f, "DROP TABLE tickets; DROP VIEW images; ALTER TABLE artifacts DROP COLUMN fetched; "
                "ALTER TABLE "
                "connections DROP COLUMN artifacts; CREATE VIEW images AS SELECT image_id, "
                "model_id, sha256, bytes, path, content_type, source_url, fetched_at FROM "
                "artifacts WHERE image_id IS NOT NULL; DELETE FROM schema_migrations WHERE "
                "version >= 17;");
    assert_int_equal(open_store(f, &f->store), HS_OK);
    assert_int_equal(f->store->service->connection_artifacts_get(f->store, "org-1", &list, NULL),
                     HS_OK);
    assert_non_null(list);
    assert_string_equal(list, "all");
    free(list);
    assert_int_equal(f->store->tokens->token_save(f->store, "org-2", &a, NULL), HS_OK);
    assert_int_equal(f->store->service->connection_artifacts_get(f->store, "org-2", &list, NULL),
                     HS_OK);
    assert_null(list);
}

/* The fixture's store closed and back to schema version 1, opened by hand. */
static sqlite3 *by_hand_at_v1(struct fixture *f)
{
    hs_store_close(f->store);
    f->store = NULL;
    back_to_v1(f);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    return db;
}

/* Jobs stored before the index existed are searchable once the migration ran. */
/* The API key generated before keys had names is kept, as "default", with its time. */
static void test_key_of_before_becomes_default(void **state)
{
    struct fixture *f = *state;
    hs_store_close(f->store);
    f->store = NULL;
    char sql[896];
    /* Migrations 16 and later undone too: they are applied again after 15. */
    snprintf(sql, sizeof sql,
             "DROP TABLE tickets; DROP VIEW images; ALTER TABLE artifacts DROP COLUMN fetched; "
             "ALTER TABLE "
             "connections DROP COLUMN artifacts; "
             "DROP INDEX webhook_events_received; DROP INDEX sync_runs_started; "
             "DROP INDEX sync_results_at; DROP INDEX outbox_delivered; "
             "DROP TABLE api_keys; ALTER TABLE jobs DROP COLUMN disconnected_at; "
             "DELETE FROM schema_migrations WHERE version >= 15; "
             "INSERT INTO settings VALUES ('api_key_sha256', '%s', '2026-01-02T03:04:05.000Z');",
             SHA_A);
    sql_exec(f, sql);
    assert_int_equal(open_store(f, &f->store), HS_OK);
    struct hs_api_key *v = NULL;
    size_t n = 0;
    assert_int_equal(f->store->service->api_keys_list(f->store, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].name, "default");
    assert_string_equal(v[0].key_sha256, SHA_A);
    assert_int_equal(v[0].created_at, 1767323045);
    hs_api_keys_free(v, n);
    /* Copied, not moved: the previous release, still running in a rolling upgrade, reads it. */
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM settings WHERE key = 'api_key_sha256'"), 1);
}

static void test_jobs_search_backfills_stored_jobs(void **state)
{
    struct fixture *f = *state;
    /* Version 2 by hand, with a job in it, as an older hoversync left it. */
    sqlite3 *db = by_hand_at_v1(f);
    assert_int_equal(sqlite3_exec(db, hs_sqlite_migrations[1].sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO schema_migrations(version, name) VALUES (2, 'x');"
                                  "INSERT INTO jobs(id, name, address_line1, city, raw_json, "
                                  "first_seen_at, updated_at, change_seq) VALUES (77, 'Old Job', "
                                  "'300 Old Mill Road', 'Lancaster', "
                                  "'{\"user\":{\"email\":\"harold@mill.example\"}}', 'x', 'x', 1)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(open_store(f, &f->store), HS_OK);
    assert_int_equal(only_id(f, "old mill"), 77);
    assert_int_equal(only_id(f, "lancast"), 77);
    assert_int_equal(only_id(f, "harold@mill"), 77);
    store_check_integrity(f);
}

/* A store of before the search tiers (the index of migrations 3 and 7, filled by their triggers)
 * gets the new index, with its jobs in it, when it opens. */
static void test_jobs_search_index_rebuilt_for_stores_of_before(void **state)
{
    struct fixture *f = *state;
    sqlite3 *db = by_hand_at_v1(f);
    for (int i = 0; i < hs_sqlite_migrations_count && hs_sqlite_migrations[i].version < 10; i++) {
        if (hs_sqlite_migrations[i].version == 1)
            continue;
        char rec[128];
        snprintf(rec, sizeof rec, "INSERT INTO schema_migrations(version, name) VALUES (%d, 'x')",
                 hs_sqlite_migrations[i].version);
        assert_int_equal(sqlite3_exec(db, hs_sqlite_migrations[i].sql, NULL, NULL, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, rec, NULL, NULL, NULL), SQLITE_OK);
    }
    assert_int_equal(
        sqlite3_exec(db,
                     "INSERT INTO jobs(id, connection_key, name, address_line1, city, "
                     "reconstruction_state, raw_json, first_seen_at, updated_at, change_seq) "
                     "VALUES (77, 'org-a', 'Mill House', '300 Old Mill Road', 'Lancaster', "
                     "'completed', '{\"user\":{\"email\":\"harold@mill.example\"}}', 'x', 'x', 1),"
                     "(78, 'org-b', 'Barn', '12 Mill Lane', 'Lancaster', 'failed', '{}', 'x', "
                     "'x', 2)",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(open_store(f, &f->store), HS_OK);

    int64_t ids[20];
    size_t n = page_ids(f, "mill", NULL, NULL, 1, 20, 2, ids); /* the name begins with it */
    ASSERT_IDS(ids, n, 77, 78);
    n = page_ids(f, "12 mi", NULL, NULL, 1, 20, 1, ids);
    ASSERT_IDS(ids, n, 78);
    n = page_ids(f, "lanc", "failed", NULL, 1, 20, 1, ids);
    ASSERT_IDS(ids, n, 78);
    const char *keys[] = {"org-a"};
    struct hs_scope a = {keys, 1};
    n = page_ids(f, "lanc", NULL, &a, 1, 20, 1, ids);
    ASSERT_IDS(ids, n, 77);
    assert_int_equal(only_id(f, "harold@mill"), 77);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM sqlite_master WHERE name = "
                                "'jobs_search_rank'"),
                     0);
    store_check_integrity(f);
}

/* A store of before the prefix indexes of 9 to 12 characters (migration 19) gets them when it
 * opens, with its jobs in the index again; a store with later migrations but not this one too
 * (versions are given out ahead, so a store may miss an earlier one). */
static void test_jobs_search_longer_prefixes_for_stores_of_before(void **state)
{
    struct fixture *f = *state;
    struct test_job a;
    make_orchard(&a);
    upsert(f, &a.job, true);
    hs_store_close(f->store);
    f->store = NULL;
    sql_exec(f, "DELETE FROM schema_migrations WHERE version = 19;");
    assert_true(sql_int(f, "SELECT COUNT(*) FROM schema_migrations WHERE version > 19") > 0);
    assert_int_equal(open_store(f, &f->store), HS_OK);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM schema_migrations WHERE version = 19"), 1);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('jobs_fts', "
                                "'jobs_fts_lead') AND sql LIKE "
                                "'%prefix=''1 2 3 4 5 6 7 8 9 10 11 12''%'"),
                     2);
    assert_int_equal(only_id(f, "summitroo"), 15084302); /* 9 characters: a prefix index now */
    assert_int_equal(only_id(f, "whitfield gar"), 15084302);
    store_check_integrity(f);
}

/* The first column of sql's first row, run on the writer connection (inside a transaction of its
 * own). */
static int64_t writer_int(struct fixture *f, const char *sql)
{
    struct sq_txn t;
    sqlite3_stmt *st = NULL;
    int64_t v = -999;
    assert_int_equal(hs_sqlite_enter(hs_sqlite_of(f->store), &t, SQ_WRITE, "test", NULL), HS_OK);
    assert_int_equal(hs_sqlite_prep(&t, &st, sql, "test", NULL), HS_OK);
    assert_int_equal(hs_sqlite_int(&t, st, &v, "test", NULL), HS_OK);
    assert_int_equal(hs_sqlite_leave(&t, HS_OK, NULL), HS_OK);
    return v;
}

/* Concurrent event_accept calls share transactions (group commit): every accepted event is
 * stored with its work item, and one that fails inside a batch fails alone. */
struct accept_worker {
    struct hs_store *store;
    int n, ok, conflicts;
};

static void *accept_worker_main(void *arg)
{
    struct accept_worker *a = arg;
    for (int i = 0; i < a->n; i++) {
        int64_t job = i % 5 == 4 ? 13 : 1 + i % 10; /* job 13 cannot get a work item */
        struct hs_event_row e = {.webhook_id = 230293,
                                 .connection_key = (char *)"default",
                                 .event = (char *)"model-state-changed",
                                 .job_id = job,
                                 .body = (char *)"{}",
                                 .body_len = 2,
                                 .status = (char *)"accepted"};
        int64_t id = 0;
        int rc = a->store->webhooks->event_accept(a->store, &e, true, 0, 1000, &id, NULL);
        if (rc == HS_OK && id > 0)
            a->ok++;
        else if (rc == HS_ERR_CONFLICT && id == 0)
            a->conflicts++;
    }
    return NULL;
}

static void test_event_accept_group_commit(void **state)
{
    struct fixture *f = *state;
    connect_key(f, "default");
    sql_exec(f, "CREATE TRIGGER no_13 BEFORE INSERT ON work_items WHEN new.job_id = 13 "
                "BEGIN SELECT RAISE(ABORT, 'not this one'); END");
    enum { THREADS = 8, EACH = 40 };
    pthread_t t[THREADS];
    struct accept_worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct accept_worker){.store = f->store, .n = EACH};
        assert_int_equal(pthread_create(&t[i], NULL, accept_worker_main, &w[i]), 0);
    }
    int ok = 0, conflicts = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        ok += w[i].ok;
        conflicts += w[i].conflicts;
    }
    assert_int_equal(ok, THREADS * EACH * 4 / 5);
    assert_int_equal(conflicts, THREADS * EACH / 5);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_events"), ok);
    assert_int_equal(sql_int(f, "SELECT COUNT(DISTINCT id) FROM webhook_events"), ok);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_events WHERE job_id = 13"), 0);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM work_items"), 8);
    assert_int_equal(sql_int(f, "SELECT SUM(generation) FROM work_items"), ok);
    /* The batches commit with synchronous=NORMAL and sync the log themselves; every other
     * commit of the writer still waits for the disk. */
    assert_int_equal(writer_int(f, "PRAGMA synchronous"), 2 /* FULL */);
}

/* The intake's batches leave the checkpoint to their syncer, on a connection of its own, once
 * the log passes SQLite's usual 1,000 frames: the log is copied and starts over. */
static void test_intake_log_checkpointed_off_the_writer(void **state)
{
    struct fixture *f = *state;
    struct sqlite_store *s = hs_sqlite_of(f->store);
    static char body[16384];
    memset(body, 'x', sizeof body);
    int n = 0;
    while (!s->ckpt_db && n < 1000) {
        struct hs_event_row e = {.webhook_id = 230293,
                                 .event = (char *)"model-state-changed",
                                 .body = body,
                                 .body_len = sizeof body,
                                 .status = (char *)"ignored"};
        assert_int_equal(f->store->webhooks->event_accept(f->store, &e, false, 0, 1000, NULL, NULL),
                         HS_OK);
        n++;
    }
    assert_non_null(s->ckpt_db);
    assert_true(n > 50); /* not before the log had grown */
    assert_int_equal(atomic_load(&s->wal_frames), 0);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_events"), n);
}

/* ---- the transaction helper (store_sqlite.c) ---- */

static int64_t writer_synchronous(struct sqlite_store *s)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(s->db, "PRAGMA synchronous", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* A lazy transaction commits with synchronous=NORMAL, and the writer is back to FULL (2) once it
 * ends, committed or rolled back: every other commit still waits for the disk. */
static void test_lazy_transaction_leaves_the_writer_full(void **state)
{
    struct fixture *f = *state;
    struct sqlite_store *s = hs_sqlite_of(f->store);
    assert_int_equal(writer_synchronous(s), 2);
    assert_int_equal(f->store->ops->begin_lazy(f->store, NULL), HS_OK);
    assert_int_equal(writer_synchronous(s), 1);
    assert_int_equal(f->store->ops->commit(f->store, NULL), HS_OK);
    assert_int_equal(writer_synchronous(s), 2);
    assert_int_equal(f->store->ops->begin_lazy(f->store, NULL), HS_OK);
    f->store->ops->rollback(f->store);
    assert_int_equal(writer_synchronous(s), 2);
}

/* An op that fails inside the caller's transaction after taking the change sequence gives it
 * back: the savepoint's rollback undoes the counter's update, and the transaction's memory of the
 * sequence must follow, or the next change of the transaction reuses a value the counter no
 * longer holds (two transactions then share a sequence and a feed reader skips rows). */
static void test_failed_op_gives_its_sequence_back(void **state)
{
    struct fixture *f = *state;
    struct sqlite_store *s = hs_sqlite_of(f->store);
    assert_int_equal(f->store->ops->begin(f->store, NULL), HS_OK);
    struct sq_txn t;
    int64_t seq = 0;
    assert_int_equal(hs_sqlite_enter(s, &t, SQ_WRITE, "test", NULL), HS_OK);
    assert_int_equal(hs_sqlite_seq_peek(&t, &seq, NULL), HS_OK);
    assert_int_equal(seq, 1);
    assert_int_equal(hs_sqlite_seq_take(&t, seq, NULL), HS_OK);
    assert_int_equal(hs_sqlite_leave(&t, HS_ERR_DB, NULL), HS_ERR_DB); /* failed after taking */
    struct test_job j;
    make_job(&j);
    upsert(f, &j.job, true);
    assert_int_equal(f->store->ops->commit(f->store, NULL), HS_OK);
    json_t *d = feed(f, 0);
    assert_int_equal(int_at(d, "jobs", 0, "change_seq"), 1);
    assert_int_equal(cursor_of(d), 1); /* the counter holds what the rows carry */
    json_decref(d);
    /* The next transaction takes the next value. */
    j.job.id = 15084304;
    j.models[0].id = 27338410;
    j.models[1].id = 27338411;
    upsert(f, &j.job, true);
    d = feed(f, 1);
    assert_int_equal(count_of(d, "jobs"), 1);
    assert_int_equal(int_at(d, "jobs", 0, "change_seq"), 2);
    json_decref(d);
}

/* A kept statement is prepared once and reset for its next use; a nested use of the same SQL
 * while it is handed out gets a statement of its own, and neither disturbs the other. */
static void test_kept_statements_nest(void **state)
{
    struct fixture *f = *state;
    static const char sql[] = "SELECT ?1";
    struct sqlite_store *s = hs_sqlite_of(f->store);
    struct sq_txn t;
    sqlite3_stmt *a = NULL, *b = NULL, *c = NULL;
    int64_t v = 0;
    assert_int_equal(hs_sqlite_enter(s, &t, SQ_WRITE, "test", NULL), HS_OK);
    int kept = s->kept.n;
    assert_int_equal(hs_sqlite_prep_kept(&t, &a, sql, "test", NULL), HS_OK);
    sqlite3_bind_int64(a, 1, 7);
    assert_int_equal(hs_sqlite_prep_kept(&t, &b, sql, "test", NULL), HS_OK);
    assert_ptr_not_equal(a, b);
    sqlite3_bind_int64(b, 1, 8);
    assert_int_equal(hs_sqlite_int(&t, b, &v, "test", NULL), HS_OK);
    assert_int_equal(v, 8);
    assert_int_equal(hs_sqlite_int(&t, a, &v, "test", NULL), HS_OK);
    assert_int_equal(v, 7);
    /* The next use gets the kept one back, its binding cleared. */
    assert_int_equal(hs_sqlite_prep_kept(&t, &c, sql, "test", NULL), HS_OK);
    assert_ptr_equal(c, a);
    assert_int_equal(hs_sqlite_int(&t, c, &v, "test", NULL), HS_OK);
    assert_int_equal(v, 0);
    assert_int_equal(s->kept.n, kept + 1);
    assert_int_equal(hs_sqlite_leave(&t, HS_OK, NULL), HS_OK);
}

/* ---- the read pool ---- */

/* A thread holding a write transaction open (a sync between begin and commit). */
struct holder {
    struct hs_store *store;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool open, done, released;
};

static void *hold_write(void *arg)
{
    struct holder *h = arg;
    struct test_job j;
    make_job(&j);
    j.job.id = 99;
    j.job.name = (char *)"Uncommitted Meadow";
    j.models[0].id = 990;
    j.models[1].id = 991;
    bool ok = h->store->ops->begin(h->store, NULL) == HS_OK &&
              h->store->records->job_upsert(h->store, &j.job, "default", NULL, NULL) == HS_OK;
    pthread_mutex_lock(&h->lock);
    h->open = ok;
    pthread_cond_broadcast(&h->cond);
    /* Held until the reader is done; a reader that waits for this transaction never is, so a
     * minute later the transaction ends anyway and the test fails instead of hanging. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 60;
    while (!h->done)
        if (pthread_cond_timedwait(&h->cond, &h->lock, &until) != 0)
            break;
    h->released = true;
    pthread_mutex_unlock(&h->lock);
    h->store->ops->rollback(h->store);
    return NULL;
}

/* Searches, the feed and the status reads run while another thread's write transaction is open,
 * and see the last commit (not the open transaction's rows). */
static void test_reads_run_beside_an_open_write(void **state)
{
    struct fixture *f = *state;
    struct test_job j;
    make_job(&j);
    upsert(f, &j.job, true);
    struct hs_webhook_row w = {.id = 230293,
                               .connection_key = (char *)"default",
                               .url = (char *)"https://hs.example/webhooks/hover",
                               .hmac_secret = (char *)"c2VjcmV0"};
    assert_int_equal(f->store->webhooks->webhook_put(f->store, &w, NULL), HS_OK);
    struct holder h = {.store = f->store};
    pthread_mutex_init(&h.lock, NULL);
    pthread_cond_init(&h.cond, NULL);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, hold_write, &h), 0);
    pthread_mutex_lock(&h.lock);
    while (!h.open)
        pthread_cond_wait(&h.cond, &h.lock);
    pthread_mutex_unlock(&h.lock);

    assert_int_equal(only_id(f, "meadow"), 15084303); /* not the uncommitted job 99 */
    json_t *d = feed(f, 0);
    assert_int_equal(count_of(d, "jobs"), 1);
    json_decref(d);
    struct hs_model_row m = {0};
    assert_int_equal(f->store->records->model_get(f->store, 990, &m, NULL), HS_ERR_NOT_FOUND);
    assert_int_equal(f->store->records->model_get(f->store, 17338410, &m, NULL), HS_OK);
    hs_model_row_clear(&m);
    /* The webhook look-up of every delivery, on the point reader. */
    struct hs_webhook_row got = {0};
    assert_int_equal(f->store->webhooks->webhook_get(f->store, 230293, &got, NULL), HS_OK);
    assert_string_equal(got.hmac_secret, "c2VjcmV0");
    hs_webhook_row_clear(&got);

    pthread_mutex_lock(&h.lock);
    bool released = h.released; /* still open while every read above ran */
    h.done = true;
    pthread_cond_broadcast(&h.cond);
    pthread_mutex_unlock(&h.lock);
    pthread_join(th, NULL);
    assert_false(released);
    assert_int_equal(count_found(f, "uncommitted"), 0); /* rolled back */
    pthread_mutex_destroy(&h.lock);
    pthread_cond_destroy(&h.cond);
}

/* Many threads read at once (more than the pool holds), each its own snapshot. */
struct reader {
    struct fixture *f;
    int found;
};

static void *read_main(void *arg)
{
    struct reader *r = arg;
    for (int i = 0; i < 20; i++) {
        struct hs_job_summary *v = NULL;
        size_t n = 0;
        int64_t total = 0;
        if (r->f->store->search->jobs_search(r->f->store, "meadow", NULL, 1, 20, NULL, &v, &n,
                                             &total, NULL) == HS_OK &&
            n == 1)
            r->found++;
        hs_job_summaries_free(v, n);
    }
    return NULL;
}

static void test_more_readers_than_the_pool(void **state)
{
    struct fixture *f = *state;
    struct test_job j;
    make_job(&j);
    upsert(f, &j.job, true);
    enum { THREADS = HS_SQLITE_READERS * 3 };
    pthread_t th[THREADS];
    struct reader r[THREADS];
    for (int i = 0; i < THREADS; i++) {
        r[i] = (struct reader){.f = f};
        assert_int_equal(pthread_create(&th[i], NULL, read_main, &r[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(r[i].found, 20);
    }
    assert_int_equal(sql_int(f, "PRAGMA journal_mode = wal") >= 0, 1);
}

/* ---- every operation of every concern ---- */

static void test_a_table_with_a_hole_is_refused(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(hs_store_complete(f->store, NULL), HS_OK);
    struct hs_records_ops records = *f->store->records;
    records.export_since = NULL;
    struct hs_store copy = *f->store;
    copy.records = &records;
    struct hs_error err = {0};
    assert_int_equal(hs_store_complete(&copy, &err), HS_ERR_INTERNAL);
    assert_non_null(strstr(err.msg, "records"));
    copy = *f->store;
    copy.outbox = NULL;
    assert_int_equal(hs_store_complete(&copy, &err), HS_ERR_INTERNAL);
    assert_non_null(strstr(err.msg, "outbox"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STORE_TEST(test_reopen_does_not_reapply_migrations),
        cmocka_unit_test(test_unwritable_path_is_a_clear_error),
        STORE_TEST(test_migrations_recorded_once),
        STORE_TEST(test_lazy_transaction_leaves_the_writer_full),
        STORE_TEST(test_unmapped_reads_do_not_map_the_file),
        STORE_TEST(test_v1_database_is_upgraded),
        STORE_TEST(test_sessions_of_before_get_the_only_connection),
        STORE_TEST(test_store_of_before_profiles_keeps_all),
        STORE_TEST(test_key_of_before_becomes_default),
        STORE_TEST(test_jobs_search_backfills_stored_jobs),
        STORE_TEST(test_jobs_search_index_rebuilt_for_stores_of_before),
        STORE_TEST(test_jobs_search_longer_prefixes_for_stores_of_before),
        STORE_TEST(test_event_accept_group_commit),
        STORE_TEST(test_intake_log_checkpointed_off_the_writer),
        STORE_TEST(test_failed_op_gives_its_sequence_back),
        STORE_TEST(test_kept_statements_nest),
        STORE_TEST(test_reads_run_beside_an_open_write),
        STORE_TEST(test_more_readers_than_the_pool),
        STORE_TEST(test_a_table_with_a_hole_is_refused),
    };
    return STORE_TESTS("store sqlite", tests);
}
