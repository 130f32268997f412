/* test_retention.c: the storage suite: pruning old rows in batches and what is kept whatever
 * its age, the artifact files' references and the collector of unreferenced files racing a sync
 * that writes the same bytes, and the store's sizes (store/retention.h, store/blob_gc.h),
 * through the store interface only (store_test.h), so that every back-end runs it. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/blob_gc.h"
#include "store/blobs.h"
#include "store/outbox.h"
#include "store/retention.h"
#include "store_test.h"

#define DAY_MS (86400 * 1000LL)
#define OLD    "'2020-01-01T00:00:00.000Z'"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t prune(struct fixture *f, enum hs_prune_kind kind, int64_t before_ms, int64_t limit)
{
    int64_t n = -1;
    struct hs_error err = {0};
    int rc = f->store->retention->prune(f->store, kind, before_ms, limit, &n, &err);
    if (rc)
        fprintf(stderr, "prune %s: %s\n", hs_prune_kind_name(kind), err.msg);
    assert_int_equal(rc, HS_OK);
    return n;
}

/* Handled deliveries older than the cutoff go, in batches of the limit, oldest first; one
 * still waiting for its work (accepted) and recent ones stay. */
static void test_prune_webhook_events(void **state)
{
    struct fixture *f = *state;
    connect_key(f, "org-1");
    int64_t ids[6];
    for (int i = 0; i < 6; i++)
        ids[i] = accept_event(f, "org-1", 100 + i, "accepted", false, now_ms());
    char sql[300];
    /* 0..3 handled long ago, 4 accepted long ago (its work not done), 5 handled today. */
    snprintf(sql, sizeof sql,
             "UPDATE webhook_events SET status = CASE WHEN id = %lld THEN 'ignored' "
             "ELSE 'processed' END, received_at = " OLD " WHERE id <= %lld",
             (long long)ids[1], (long long)ids[3]);
    sql_exec(f, sql);
    snprintf(sql, sizeof sql, "UPDATE webhook_events SET received_at = " OLD " WHERE id = %lld",
             (long long)ids[4]);
    sql_exec(f, sql);
    snprintf(sql, sizeof sql, "UPDATE webhook_events SET status = 'processed' WHERE id = %lld",
             (long long)ids[5]);
    sql_exec(f, sql);

    int64_t before = now_ms() - 30 * DAY_MS;
    assert_int_equal(prune(f, HS_PRUNE_WEBHOOK_EVENTS, before, 3), 3);
    assert_int_equal(prune(f, HS_PRUNE_WEBHOOK_EVENTS, before, 3), 1);
    assert_int_equal(prune(f, HS_PRUNE_WEBHOOK_EVENTS, before, 3), 0);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_events"), 2);
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM webhook_events WHERE id IN (%lld, %lld)",
             (long long)ids[4], (long long)ids[5]);
    assert_int_equal(sql_int(f, sql), 2);
}

static int64_t run_with(struct fixture *f, const int64_t *models, size_t n, bool end)
{
    int64_t run = 0;
    assert_int_equal(f->store->records->run_begin(f->store, 15084303, "cli", &run, NULL), HS_OK);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(f->store->records->run_model_result(f->store, run, models[i], "synced",
                                                             NULL, 1, 0, NULL),
                         HS_OK);
    if (end)
        assert_int_equal(f->store->records->run_end(f->store, run, "done", 2, NULL), HS_OK);
    return run;
}

/* Old results go but each model's latest, whatever its age; then the finished runs left
 * without a result; a running run stays. */
static void test_prune_sync_runs_keep_latest_result(void **state)
{
    struct fixture *f = *state;
    struct test_job tj;
    make_job(&tj);
    upsert(f, &tj.job, true);
    const int64_t both[] = {17338410, 17338411}, first[] = {17338410};
    int64_t r1 = run_with(f, both, 2, true);
    int64_t r2 = run_with(f, first, 1, true);
    int64_t r3 = run_with(f, first, 1, true);
    int64_t r4 = run_with(f, NULL, 0, false); /* still running */
    sql_exec(f, "UPDATE sync_results SET at = " OLD);
    sql_exec(f, "UPDATE sync_runs SET started_at = " OLD);

    int64_t before = now_ms() - 90 * DAY_MS;
    /* Model 17338410's results of r1 and r2 are not its latest (r3's); 17338411's only one is. */
    assert_int_equal(prune(f, HS_PRUNE_SYNC_RESULTS, before, 1), 1);
    assert_int_equal(prune(f, HS_PRUNE_SYNC_RESULTS, before, 500), 1);
    assert_int_equal(prune(f, HS_PRUNE_SYNC_RESULTS, before, 500), 0);
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM sync_results WHERE (run_id = %lld AND model_id = 17338411) OR "
             "(run_id = %lld AND model_id = 17338410)",
             (long long)r1, (long long)r3);
    assert_int_equal(sql_int(f, sql), 2);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM sync_results"), 2);
    /* r2 has no result left: it goes; r1 and r3 hold a latest result, r4 runs. */
    assert_int_equal(prune(f, HS_PRUNE_SYNC_RUNS, before, 500), 1);
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM sync_runs WHERE id IN (%lld, %lld, %lld)",
             (long long)r1, (long long)r3, (long long)r4);
    assert_int_equal(sql_int(f, sql), 3);
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM sync_runs WHERE id = %lld", (long long)r2);
    assert_int_equal(sql_int(f, sql), 0);
    /* Recent rows are not touched by a cutoff before them. */
    assert_int_equal(prune(f, HS_PRUNE_SYNC_RUNS, 1000, 500), 0);
}

/* Delivered messages go but the newest of each (endpoint, job), so that the next one's
 * seq_in_job still follows; undelivered ones stay whatever their age. */
static void test_prune_outbox_keeps_order(void **state)
{
    struct fixture *f = *state;
    const char *ep = "http://127.0.0.1:9/crm";
    const struct hs_outbox_ops *o = f->store->outbox;
    assert_int_equal(o->outbox_add(f->store, ep, 7, "{}", "k1", NULL), HS_OK);
    assert_int_equal(o->outbox_add(f->store, ep, 7, "{}", "k2", NULL), HS_OK);
    assert_int_equal(o->outbox_add(f->store, ep, 7, "{}", "k3", NULL), HS_OK);
    assert_int_equal(o->outbox_add(f->store, ep, 8, "{}", "k4", NULL), HS_OK);
    sql_exec(f, "UPDATE outbox SET delivered_at = " OLD " WHERE job_id = 7");
    sql_exec(f, "UPDATE outbox SET created_at = " OLD);

    int64_t before = now_ms() - 7 * DAY_MS;
    assert_int_equal(prune(f, HS_PRUNE_OUTBOX, before, 500), 2);
    assert_int_equal(prune(f, HS_PRUNE_OUTBOX, before, 500), 0);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM outbox WHERE idempotency_key IN "
                                "('k3', 'k4')"),
                     2);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM outbox"), 2);
    assert_int_equal(o->outbox_add(f->store, ep, 7, "{}", "k5", NULL), HS_OK);
    assert_int_equal(sql_int(f, "SELECT seq_in_job FROM outbox WHERE idempotency_key = 'k5'"), 4);
    int64_t pending = 0;
    assert_int_equal(o->outbox_depth(f->store, &pending, NULL), HS_OK);
    assert_int_equal(pending, 2);
}

/* Signatures past their window and connect flows past their expiry go at their own dates. */
static void test_prune_replays_and_flows(void **state)
{
    struct fixture *f = *state;
    sql_exec(f, "INSERT INTO webhook_replays (signature, expires_ms) VALUES ('1:a', 1000), "
                "('1:b', 2000), ('1:c', 9000)");
    sql_exec(f, "INSERT INTO connect_flows (id_sha256, stage, browser_sha256, address, "
                "expires_ms) VALUES ('f1', 'authorize', 'b', '127.0.0.1', 1500), "
                "('f2', 'authorize', 'b', '127.0.0.1', 5000)");
    assert_int_equal(prune(f, HS_PRUNE_REPLAYS, 3000, 500), 2);
    assert_int_equal(prune(f, HS_PRUNE_CONNECT_FLOWS, 3000, 500), 1);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_replays WHERE signature = '1:c'"), 1);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM connect_flows WHERE id_sha256 = 'f2'"), 1);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM webhook_replays"), 1);
}

static bool referenced(struct fixture *f, const char *sha)
{
    bool used = true;
    assert_int_equal(f->store->retention->blob_referenced(f->store, sha, &used, NULL), HS_OK);
    return used;
}

static void test_blob_referenced(void **state)
{
    struct fixture *f = *state;
    struct test_job tj;
    make_job(&tj);
    upsert(f, &tj.job, true);
    assert_false(referenced(f, SHA_A));
    struct hs_artifact_row a = artifact("measurements.pdf", SHA_A, NULL);
    put_artifact(f, &a);
    assert_true(referenced(f, SHA_A));
    assert_false(referenced(f, SHA_B));
    /* A new version replaces the row: the old bytes are no longer pointed at. */
    a.sha256 = (char *)SHA_B;
    put_artifact(f, &a);
    assert_false(referenced(f, SHA_A));
    assert_true(referenced(f, SHA_B));
}

/* ---- the collector of files, against this store ---- */

static int ref_cb(void *ctx, const char *sha, bool *used, struct hs_error *err)
{
    struct fixture *f = ctx;
    return f->store->retention->blob_referenced(f->store, sha, used, err);
}

/* Writes bytes as a sync does; the digest into sha, the relative path into rel. */
static void write_blob(const char *dir, const char *bytes, char sha[65], char rel[128])
{
    struct hs_blob_writer *w = NULL;
    assert_int_equal(hs_blob_begin(dir, &w, NULL), HS_OK);
    assert_int_equal(hs_blob_write(w, bytes, strlen(bytes), NULL), HS_OK);
    int64_t n = 0;
    char *p = NULL;
    assert_int_equal(hs_blob_commit(w, sha, &n, &p, NULL), HS_OK);
    snprintf(rel, 128, "%s", p);
    free(p);
    hs_blob_abort(w);
}

static void age(const char *dir, const char *rel, int64_t seconds)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    struct timespec t[2];
    clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec -= seconds;
    t[1] = t[0];
    assert_int_equal(utimensat(AT_FDCWD, path, t, 0), 0);
}

static bool exists(const char *dir, const char *rel)
{
    char path[1200];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    return stat(path, &sb) == 0;
}

static void point_at(struct fixture *f, const char *sha, const char *rel)
{
    struct hs_artifact_row a = artifact("measurements.pdf", sha, NULL);
    a.path = (char *)rel;
    put_artifact(f, &a);
}

static struct hs_blob_gc_stats gc(struct fixture *f, const char *dir, hs_blob_gc_hook_fn hook,
                                  void *ctx)
{
    struct hs_blob_gc_stats st;
    struct hs_error err = {0};
    int rc = hs_blob_gc(dir, now_ms(), 3600 * 1000, ref_cb, f, hook, ctx, &st, &err);
    if (rc)
        fprintf(stderr, "gc: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    return st;
}

/* An old orphan goes; an old file a row points at and a recent orphan stay. */
static void test_gc_orphans_after_grace(void **state)
{
    struct fixture *f = *state;
    struct test_job tj;
    make_job(&tj);
    upsert(f, &tj.job, true);
    char dir[300], sha_old[65], sha_used[65], sha_new[65], rel_old[128], rel_used[128],
        rel_new[128];
    snprintf(dir, sizeof dir, "%s/data", f->dir);
    write_blob(dir, "%PDF- replaced version", sha_old, rel_old);
    write_blob(dir, "%PDF- current version", sha_used, rel_used);
    write_blob(dir, "%PDF- a crash's orphan, just written", sha_new, rel_new);
    point_at(f, sha_used, rel_used);
    age(dir, rel_old, 7200);
    age(dir, rel_used, 7200);

    int64_t files = 0, bytes = 0;
    assert_int_equal(hs_blob_usage(dir, &files, &bytes, NULL), HS_OK);
    assert_int_equal(files, 3);
    struct hs_blob_gc_stats st = gc(f, dir, NULL, NULL);
    assert_int_equal(st.files, 3);
    assert_int_equal(st.removed, 1);
    assert_int_equal(st.kept_fresh, 1);
    assert_false(exists(dir, rel_old));
    assert_true(exists(dir, rel_used));
    assert_true(exists(dir, rel_new));
    assert_int_equal(hs_blob_usage(dir, &files, &bytes, NULL), HS_OK);
    assert_int_equal(files, 2);
}

struct race {
    struct fixture *f;
    const char *dir, *bytes;
    enum hs_blob_gc_stage at;
    bool with_row; /* the sync's row commits too (else only its file: the row comes after) */
    int fired;
};

/* A sync writing the same bytes while the collector handles the file: its file commit (which
 * finds the file and renews it, or finds the name gone and puts its own) and maybe its row. */
static void racing_sync(void *ctx, enum hs_blob_gc_stage stage, const char *sha)
{
    struct race *r = ctx;
    if (stage != r->at)
        return;
    char got[65], rel[128];
    write_blob(r->dir, r->bytes, got, rel);
    assert_string_equal(got, sha);
    if (r->with_row)
        point_at(r->f, got, rel);
    r->fired++;
}

static void race_at(struct fixture *f, enum hs_blob_gc_stage at, bool with_row)
{
    struct test_job tj;
    make_job(&tj);
    upsert(f, &tj.job, true);
    char dir[300], sha[65], rel[128];
    snprintf(dir, sizeof dir, "%s/data-%d-%d", f->dir, (int)at, (int)with_row);
    struct race r = {
        .f = f, .dir = dir, .bytes = "%PDF- the same bytes again", .at = at, .with_row = with_row};
    write_blob(dir, r.bytes, sha, rel);
    age(dir, rel, 7200);
    struct hs_blob_gc_stats st = gc(f, dir, racing_sync, &r);
    assert_int_equal(r.fired, 1);
    /* Whatever the moment, the file the sync wrote (and points at, or will) is there. */
    assert_true(exists(dir, rel));
    assert_int_equal(st.removed + st.restored, 1);
    if (with_row) {
        assert_true(referenced(f, sha));
        /* A later pass keeps it: a row points at it. */
        age(dir, rel, 7200);
        st = gc(f, dir, NULL, NULL);
        assert_int_equal(st.removed, 0);
        assert_true(exists(dir, rel));
    }
}

/* The sync renews the file after the collector found no row, before it set the file aside:
 * the renewed date puts it back. */
static void test_gc_race_renewed_before_set_aside(void **state)
{
    race_at(*state, HS_BLOB_GC_CHECKED, false);
}

/* The sync's file and row commit after the collector set the file aside: the sync wrote its
 * own file under the name, and the collector, asking again, puts the set-aside one back. */
static void test_gc_race_row_after_set_aside(void **state)
{
    race_at(*state, HS_BLOB_GC_SET_ASIDE, true);
}

/* Only the sync's file lands while the collector holds the old one aside (its row comes
 * later): the tombstone goes, the sync's own file stays for its row. */
static void test_gc_race_file_after_set_aside(void **state)
{
    race_at(*state, HS_BLOB_GC_SET_ASIDE, false);
}

/* A pass interrupted between setting aside and removing: the next one puts back a tombstone a
 * row points at and removes the others. */
static void test_gc_leftover_tombstones(void **state)
{
    struct fixture *f = *state;
    struct test_job tj;
    make_job(&tj);
    upsert(f, &tj.job, true);
    char dir[300], sha1[65], sha2[65], rel1[128], rel2[128], from[800], to[800];
    snprintf(dir, sizeof dir, "%s/data", f->dir);
    write_blob(dir, "%PDF- pointed at", sha1, rel1);
    write_blob(dir, "%PDF- nobody's", sha2, rel2);
    point_at(f, sha1, rel1);
    const char *rels[] = {rel1, rel2};
    for (int i = 0; i < 2; i++) {
        snprintf(from, sizeof from, "%s/%s", dir, rels[i]);
        snprintf(to, sizeof to, "%s/%s.gc", dir, rels[i]);
        assert_int_equal(rename(from, to), 0);
    }
    struct hs_blob_gc_stats st = gc(f, dir, NULL, NULL);
    assert_int_equal(st.restored, 1);
    assert_true(exists(dir, rel1));
    assert_false(exists(dir, rel2));
    snprintf(to, sizeof to, "%s.gc", rel2);
    assert_false(exists(dir, to));
}

/* The store's size and its largest tables, with their rows. */
static void test_store_size(void **state)
{
    struct fixture *f = *state;
    connect_key(f, "org-1");
    for (int i = 0; i < 200; i++)
        accept_event(f, "org-1", 100 + i, "accepted", false, now_ms());
    /* Raw bodies of a few kilobytes, as Hover's deliveries are. */
    /* Raw bodies of a few kilobytes, as Hover's deliveries are, and random: PostgreSQL would
     * compress a repeated byte to nothing. */
    sql_exec(f, store_test_is_pg()
                    ? "UPDATE webhook_events SET body = (SELECT decode(string_agg(md5(random()::"
                      "text || g::text), ''), 'hex') FROM generate_series(1, 250) g)"
                    : "UPDATE webhook_events SET body = randomblob(4000)");
    struct hs_store_size sz = {0};
    struct hs_error err = {0};
    int rc = f->store->retention->size(f->store, &sz, &err);
    if (rc)
        fprintf(stderr, "size: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    assert_true(sz.bytes > 200 * 4000);
    assert_int_equal(sz.n_top, HS_STORE_TOP_TABLES);
    assert_string_equal(sz.top[0].name, "webhook_events");
    assert_int_equal(sz.top[0].rows, 200);
    assert_true(sz.top[0].bytes > 200 * 4000);
    for (size_t i = 1; i < sz.n_top; i++)
        assert_true(sz.top[i].bytes <= sz.top[i - 1].bytes);
    hs_store_size_clear(&sz);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STORE_TEST(test_prune_webhook_events),
        STORE_TEST(test_prune_sync_runs_keep_latest_result),
        STORE_TEST(test_prune_outbox_keeps_order),
        STORE_TEST(test_prune_replays_and_flows),
        STORE_TEST(test_blob_referenced),
        STORE_TEST(test_gc_orphans_after_grace),
        STORE_TEST(test_gc_race_renewed_before_set_aside),
        STORE_TEST(test_gc_race_row_after_set_aside),
        STORE_TEST(test_gc_race_file_after_set_aside),
        STORE_TEST(test_gc_leftover_tombstones),
        STORE_TEST(test_store_size),
    };
    return STORE_TESTS("retention", tests);
}
