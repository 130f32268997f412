/* test_work.c: the storage suite: the work queue (store/work.h), through the store interface
 * only (store_test.h), so that every back-end runs it: claim order (priority, fairness between
 * connections, oldest due first), how triggers coalesce (an accepted event's too), leases and
 * the fence, the syncs of POST /api/syncs and their progress, and the pending pass's backoff.
 * Times are the callers' (unix ms given to every op): no sleeps. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/str.h"
#include "store/work.h"
#include "store_test.h"

static void schedule(struct fixture *f, const char *conn, int64_t job, int prio, int64_t now,
                     int64_t due)
{
    struct hs_work_trigger t = {.connection_key = conn,
                                .job_id = job,
                                .reason = "test",
                                .priority = prio,
                                .now_ms = now,
                                .due_ms = due,
                                .rerun_ms = 200};
    struct hs_error err = {0};
    assert_int_equal(f->store->work->work_schedule(f->store, &t, &err), HS_OK);
}

static int claim(struct fixture *f, const char *who, int64_t now, struct hs_work_item *w)
{
    memset(w, 0, sizeof *w);
    return f->store->work->work_claim(f->store, who, NULL, now, 30000, w, NULL, NULL);
}

/* The job claimed next at now (0: none), done at once. */
static int64_t claim_done(struct fixture *f, int64_t now, char *conn_out)
{
    struct hs_work_item w;
    if (claim(f, "w", now, &w) == HS_ERR_NOT_FOUND)
        return 0;
    int64_t job = w.job_id;
    if (conn_out)
        snprintf(conn_out, 64, "%s", w.connection_key);
    assert_int_equal(f->store->work->work_done(f->store, &w, now, NULL), HS_OK);
    hs_work_item_clear(&w);
    return job;
}

/* ---- claim order ---- */

/* Interactive before background before bulk, whatever came first; due times hold. */
static void test_claims_go_by_priority_then_due(void **state)
{
    struct fixture *f = *state;
    schedule(f, "org-a", 1, HS_WORK_PRIO_BULK, 1000, 1000);
    schedule(f, "org-a", 2, HS_WORK_PRIO_BACKGROUND, 1000, 1500);
    schedule(f, "org-a", 3, HS_WORK_PRIO_BACKGROUND, 1000, 1200);
    schedule(f, "org-a", 4, HS_WORK_PRIO_INTERACTIVE, 1000, 1300);
    schedule(f, "org-a", 5, HS_WORK_PRIO_INTERACTIVE, 1000, 9000); /* not due yet */
    assert_int_equal(claim_done(f, 2000, NULL), 4);
    assert_int_equal(claim_done(f, 2000, NULL), 3);
    assert_int_equal(claim_done(f, 2000, NULL), 2);
    assert_int_equal(claim_done(f, 2000, NULL), 1);
    /* Nothing due: the next due time is given. */
    struct hs_work_item w;
    int64_t next = -1;
    assert_int_equal(f->store->work->work_claim(f->store, "w", NULL, 2000, 30000, &w, &next, NULL),
                     HS_ERR_NOT_FOUND);
    assert_int_equal(next, 9000);
    assert_int_equal(claim_done(f, 9000, NULL), 5);
    assert_int_equal(f->store->work->work_claim(f->store, "w", NULL, 9000, 30000, &w, &next, NULL),
                     HS_ERR_NOT_FOUND);
    assert_int_equal(next, 0);
}

/* Org A has many due jobs, org B two that came later: B does not wait for all of A's. Within
 * one priority only: an interactive item goes first all the same. */
static void test_claims_take_connections_in_turn(void **state)
{
    struct fixture *f = *state;
    for (int64_t j = 1; j <= 5; j++)
        schedule(f, "org-a", j, HS_WORK_PRIO_BACKGROUND, j, j);
    schedule(f, "org-b", 100, HS_WORK_PRIO_BACKGROUND, 50, 50);
    schedule(f, "org-b", 101, HS_WORK_PRIO_BACKGROUND, 60, 60);
    schedule(f, "org-c", 200, HS_WORK_PRIO_INTERACTIVE, 70, 70);
    const char *want_key[] = {"org-c", "org-a", "org-b", "org-a",
                              "org-b", "org-a", "org-a", "org-a"};
    const int64_t want_job[] = {200, 1, 100, 2, 101, 3, 4, 5};
    for (size_t i = 0; i < sizeof want_job / sizeof want_job[0]; i++) {
        char conn[64];
        assert_int_equal(claim_done(f, 1000, conn), want_job[i]);
        assert_string_equal(conn, want_key[i]);
    }
    assert_int_equal(claim_done(f, 1000, NULL), 0);
    /* A process holding one connection's credential claims that connection's items alone. */
    schedule(f, "org-a", 9, HS_WORK_PRIO_INTERACTIVE, 2000, 2000);
    schedule(f, "org-b", 102, HS_WORK_PRIO_BULK, 2000, 2000);
    struct hs_work_item w;
    int64_t next = -1;
    assert_int_equal(
        f->store->work->work_claim(f->store, "w", "org-b", 2000, 30000, &w, &next, NULL), HS_OK);
    assert_int_equal(w.job_id, 102);
    hs_work_item_clear(&w);
    assert_int_equal(
        f->store->work->work_claim(f->store, "w", "org-b", 2000, 30000, &w, &next, NULL),
        HS_ERR_NOT_FOUND);
    assert_int_equal(next, 32000); /* its own item's lease: org-a's is not its to wait for */
}

/* ---- triggers ---- */

/* An idle item is due at once and later triggers do not postpone it; a trigger while the item
 * runs makes one more pass, due a moment after the newest trigger; an item backing off after a
 * failure keeps its time, unless a person waits. */
static void test_triggers_coalesce(void **state)
{
    struct fixture *f = *state;
    schedule(f, "org-a", 7, HS_WORK_PRIO_BACKGROUND, 1000, 1000);
    schedule(f, "org-a", 7, HS_WORK_PRIO_BACKGROUND, 1100, 1100);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM work_items"), 1);
    assert_int_equal(sql_int(f, "SELECT not_before_ms FROM work_items"), 1000);
    assert_int_equal(sql_int(f, "SELECT generation FROM work_items"), 2);
    assert_int_equal(sql_int(f, "SELECT trigger_ms FROM work_items"), 1100);

    struct hs_work_item w;
    assert_int_equal(claim(f, "w1", 1200, &w), HS_OK);
    assert_int_equal(w.generation, 2);
    assert_int_equal(w.trigger_ms, 1100);
    schedule(f, "org-a", 7, HS_WORK_PRIO_BACKGROUND, 1300, 1300); /* during the run */
    schedule(f, "org-a", 7, HS_WORK_PRIO_BACKGROUND, 1400, 1400);
    assert_int_equal(sql_int(f, "SELECT not_before_ms FROM work_items"), 1600);
    /* done() leaves the newer generation for another pass, when it is due. */
    assert_int_equal(f->store->work->work_done(f->store, &w, 1500, NULL), HS_OK);
    hs_work_item_clear(&w);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM work_items WHERE claimed_by IS NULL AND "
                                "generation = 4"),
                     1);
    assert_int_equal(claim(f, "w1", 1599, &w), HS_ERR_NOT_FOUND);
    assert_int_equal(claim(f, "w1", 1600, &w), HS_OK);
    /* A failure: released for later, attempts + 1, the error kept. */
    assert_int_equal(f->store->work->work_retry(f->store, &w, 1700, 6700, "HTTP 503", NULL), HS_OK);
    hs_work_item_clear(&w);
    assert_int_equal(sql_int(f, "SELECT attempts FROM work_items"), 1);
    schedule(f, "org-a", 7, HS_WORK_PRIO_BACKGROUND, 1800, 1800); /* a webhook: backoff holds */
    assert_int_equal(sql_int(f, "SELECT not_before_ms FROM work_items"), 6700);
    struct hs_work_trigger again = {.connection_key = "org-a",
                                    .job_id = 7,
                                    .reason = "backfill",
                                    .priority = HS_WORK_PRIO_BULK,
                                    .now_ms = 1850,
                                    .due_ms = 1850,
                                    .now = true}; /* asked again: now */
    assert_int_equal(f->store->work->work_schedule(f->store, &again, NULL), HS_OK);
    assert_int_equal(sql_int(f, "SELECT not_before_ms FROM work_items"), 1850);
    schedule(f, "org-a", 7, HS_WORK_PRIO_INTERACTIVE, 1900, 1900); /* a person: now */
    assert_int_equal(sql_int(f, "SELECT not_before_ms FROM work_items"), 1850);
    assert_int_equal(claim(f, "w1", 1900, &w), HS_OK);
    assert_int_equal(w.attempts, 1);
    assert_int_equal(w.priority, HS_WORK_PRIO_INTERACTIVE);
    assert_string_equal(w.last_error, "HTTP 503");
    assert_int_equal(f->store->work->work_done(f->store, &w, 2000, NULL), HS_OK);
    hs_work_item_clear(&w);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM work_items"), 0);
}

/* An event arrives while the job is being synced: done() must not drop it, and the next pass is
 * due the event's delay after it. */
static void test_event_during_a_run_makes_one_more_pass(void **state)
{
    struct fixture *f = *state;
    connect_key(f, "default");
    accept_event(f, "default", 7, "accepted", true, 0);
    struct hs_work_item w;
    assert_int_equal(claim(f, "w1", 1000, &w), HS_OK);
    assert_int_equal(w.generation, 1);
    accept_event(f, "default", 7, "accepted", true, 2000); /* during the sync */
    /* The leased item takes the new not_before (the pass after this one). */
    assert_int_equal(sql_int(f, "SELECT not_before_ms FROM work_items"), 3000);
    assert_int_equal(f->store->work->work_done(f->store, &w, 2500, NULL), HS_OK);
    hs_work_item_clear(&w);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM work_items WHERE claimed_by IS NULL AND "
                                "lease_until_ms IS NULL AND generation = 2"),
                     1);
    assert_int_equal(claim(f, "w1", 3000, &w), HS_OK);
    assert_int_equal(w.generation, 2);
    assert_int_equal(f->store->work->work_done(f->store, &w, 3000, NULL), HS_OK);
    hs_work_item_clear(&w);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM work_items"), 0);
}

/* The payload is the newest trigger's: a later trigger without one drops it. */
static void test_payload_follows_the_newest_trigger(void **state)
{
    struct fixture *f = *state;
    struct hs_work_trigger t = {.connection_key = "org-a",
                                .job_id = 9,
                                .reason = "backfill",
                                .priority = HS_WORK_PRIO_BULK,
                                .now_ms = 5000,
                                .due_ms = 5000,
                                .payload = "{\"id\":9}"};
    assert_int_equal(f->store->work->work_schedule(f->store, &t, NULL), HS_OK);
    struct hs_work_item w = {0};
    assert_int_equal(f->store->work->work_get(f->store, "org-a", 9, &w, NULL), HS_OK);
    assert_string_equal(w.payload, "{\"id\":9}");
    assert_int_equal(w.payload_ms, 5000);
    assert_string_equal(w.reason, "backfill");
    hs_work_item_clear(&w);
    schedule(f, "org-a", 9, HS_WORK_PRIO_BACKGROUND, 6000, 6000);
    assert_int_equal(f->store->work->work_get(f->store, "org-a", 9, &w, NULL), HS_OK);
    assert_null(w.payload);
    assert_int_equal(w.priority, HS_WORK_PRIO_BACKGROUND);
    hs_work_item_clear(&w);
    assert_int_equal(f->store->work->work_get(f->store, "org-b", 9, &w, NULL), HS_ERR_NOT_FOUND);
}

/* ---- leases and the fence ---- */

/* A worker dies holding a claim: the item is claimable again once the lease has run out. */
static void test_lease_expires_after_a_crash(void **state)
{
    struct fixture *f = *state;
    schedule(f, "default", 42, HS_WORK_PRIO_BACKGROUND, 1000, 1000);
    struct hs_work_item w;
    assert_int_equal(claim(f, "dead-worker", 1000, &w), HS_OK);
    hs_work_item_clear(&w);
    assert_int_equal(sql_int(f, "SELECT lease_until_ms FROM work_items"), 31000);
    hs_store_close(f->store);
    assert_int_equal(open_store(f, &f->store), HS_OK);
    assert_int_equal(claim(f, "w2", 30999, &w), HS_ERR_NOT_FOUND);
    int64_t due = -1, total = -1;
    int64_t oldest = -1;
    assert_int_equal(f->store->work->work_depth(f->store, &due, &total, &oldest, 30999, NULL),
                     HS_OK);
    assert_int_equal(due, 0);
    assert_int_equal(total, 1);
    assert_int_equal(oldest, 0); /* leased: not waiting for a worker */
    assert_int_equal(claim(f, "w2", 31000, &w), HS_OK);
    assert_int_equal(w.job_id, 42);
    assert_int_equal(w.claim, 2);
    hs_work_item_clear(&w);
}

/* Every claim gets a new token; a run whose claim lapsed (reclaimed, or its lease just ended)
 * can neither renew, nor finish, nor fail, nor pass the fence of its own writes. */
static void test_a_lapsed_claim_cannot_commit(void **state)
{
    struct fixture *f = *state;
    schedule(f, "org-a", 5, HS_WORK_PRIO_BACKGROUND, 0, 0);
    struct hs_work_item a, b;
    assert_int_equal(claim(f, "late", 1000, &a), HS_OK); /* lease until 31000 */
    assert_int_equal(f->store->work->work_fence(f->store, &a, 30999, NULL), HS_OK);
    assert_int_equal(f->store->work->work_renew(f->store, &a, 20000, 30000, NULL),
                     HS_OK); /* to 50000 */
    assert_int_equal(f->store->work->work_fence(f->store, &a, 49999, NULL), HS_OK);
    /* Paused past its lease, nobody took it yet: refused all the same. */
    assert_int_equal(f->store->work->work_fence(f->store, &a, 50000, NULL), HS_ERR_CONFLICT);
    assert_int_equal(f->store->work->work_renew(f->store, &a, 50000, 30000, NULL), HS_ERR_CONFLICT);
    /* Another worker claims it: a new token. */
    assert_int_equal(claim(f, "other", 50001, &b), HS_OK);
    assert_int_equal(b.claim, a.claim + 1);
    assert_int_equal(f->store->work->work_fence(f->store, &a, 50002, NULL), HS_ERR_CONFLICT);
    assert_int_equal(f->store->work->work_done(f->store, &a, 50002, NULL), HS_ERR_CONFLICT);
    assert_int_equal(f->store->work->work_retry(f->store, &a, 50002, 99999, "late", NULL),
                     HS_ERR_CONFLICT);
    /* The fence inside a transaction rolls the run's write back. */
    assert_int_equal(f->store->ops->begin(f->store, NULL), HS_OK);
    struct hs_selection sel = {.job_id = 5, .model_id = 51, .status = HS_SEL_SYNCED};
    assert_int_equal(f->store->records->selection_put(f->store, &sel, NULL), HS_OK);
    assert_int_equal(f->store->work->work_fence(f->store, &a, 50002, NULL), HS_ERR_CONFLICT);
    f->store->ops->rollback(f->store);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM selections"), 0);
    /* The holder is untouched and finishes. */
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM work_items WHERE claimed_by = 'other'"), 1);
    assert_int_equal(f->store->work->work_done(f->store, &b, 50003, NULL), HS_OK);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM work_items"), 0);
    hs_work_item_clear(&a);
    hs_work_item_clear(&b);
}

/* The depth counts what is due and tells since when the oldest due item waits. */
static void test_depth_tells_the_oldest_due(void **state)
{
    struct fixture *f = *state;
    int64_t due = -1, total = -1, oldest = -1;
    assert_int_equal(f->store->work->work_depth(f->store, &due, &total, &oldest, 1000, NULL),
                     HS_OK);
    assert_int_equal(due + total + oldest, 0);
    schedule(f, "org-a", 1, HS_WORK_PRIO_BACKGROUND, 1000, 1000);
    schedule(f, "org-a", 2, HS_WORK_PRIO_BACKGROUND, 1000, 4000);
    schedule(f, "org-b", 3, HS_WORK_PRIO_BACKGROUND, 1000, 9000); /* not due yet */
    assert_int_equal(f->store->work->work_depth(f->store, &due, &total, &oldest, 5000, NULL),
                     HS_OK);
    assert_int_equal(due, 2);
    assert_int_equal(total, 3);
    assert_int_equal(oldest, 1000);
    struct hs_work_item w;
    assert_int_equal(claim(f, "w", 5000, &w), HS_OK);
    assert_int_equal(w.job_id, 1);
    assert_int_equal(f->store->work->work_depth(f->store, &due, &total, &oldest, 5000, NULL),
                     HS_OK);
    assert_int_equal(due, 1);
    assert_int_equal(oldest, 4000);
    hs_work_item_clear(&w);
}

/* A stopping worker hands its claim back: the item is due at once for another worker, with its
 * attempts as they were, and the first run's later writes are refused. */
static void test_release_hands_the_item_back(void **state)
{
    struct fixture *f = *state;
    schedule(f, "org-a", 7, HS_WORK_PRIO_BACKGROUND, 1000, 1000);
    struct hs_work_item a, b;
    assert_int_equal(claim(f, "stopping", 2000, &a), HS_OK); /* lease until 32000 */
    assert_int_equal(claim(f, "other", 2001, &b), HS_ERR_NOT_FOUND);
    assert_int_equal(f->store->work->work_release(f->store, &a, 2500, NULL), HS_OK);
    /* Not after the lease: at once. */
    assert_int_equal(claim(f, "other", 2501, &b), HS_OK);
    assert_int_equal(b.job_id, 7);
    assert_int_equal(b.attempts, 0);
    assert_int_equal(b.claim, a.claim + 1);
    assert_int_equal(f->store->work->work_done(f->store, &a, 2502, NULL), HS_ERR_CONFLICT);
    assert_int_equal(f->store->work->work_release(f->store, &a, 2502, NULL), HS_ERR_CONFLICT);
    assert_int_equal(f->store->work->work_done(f->store, &b, 2503, NULL), HS_OK);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM work_items"), 0);
    hs_work_item_clear(&a);
    hs_work_item_clear(&b);
}

/* ---- syncs ---- */

static void create_sync(struct fixture *f, const char *id, int64_t job, const int64_t *models,
                        size_t n, int64_t now)
{
    struct hs_sync_model_row m[4] = {0};
    for (size_t i = 0; i < n; i++) {
        m[i].model_id = models[i];
        m[i].when_ready = i == 1;
    }
    struct hs_sync_row r = {.id = (char *)id,
                            .connection_key = (char *)"org-a",
                            .job_id = job,
                            .models = m,
                            .n_models = n};
    struct hs_error err = {0};
    assert_int_equal(f->store->work->sync_create(f->store, &r, now, &err), HS_OK);
}

static struct hs_sync_row get_sync(struct fixture *f, const char *id)
{
    struct hs_sync_row r = {0};
    assert_int_equal(f->store->work->sync_get(f->store, id, &r, NULL), HS_OK);
    return r;
}

static int64_t progress(struct fixture *f, int64_t job, int64_t model, const char *result,
                        int64_t done, int64_t total, const char *pdf)
{
    struct hs_sync_model_row m = {.model_id = model,
                                  .name = (char *)"House",
                                  .result = (char *)result,
                                  .message =
                                      result && strcmp(result, "synced") ? (char *)"why" : NULL,
                                  .artifacts_done = done,
                                  .artifacts_total = total,
                                  .pdf_sha256 = (char *)pdf};
    int64_t changed = -1;
    assert_int_equal(
        f->store->work->sync_progress(f->store, "org-a", job, &m, 100, &changed, NULL, NULL),
        HS_OK);
    return changed;
}

static void test_sync_lifecycle(void **state)
{
    struct fixture *f = *state;
    const int64_t models[] = {601, 602};
    create_sync(f, "s1-a", 501, models, 2, 10);
    struct hs_sync_row r = get_sync(f, "s1-a");
    assert_string_equal(r.status, "queued");
    assert_null(r.result);
    assert_int_equal(r.version, 1);
    assert_int_equal(r.n_models, 2);
    assert_int_equal(r.models[0].model_id, 601);
    assert_false(r.models[0].when_ready);
    assert_true(r.models[1].when_ready);
    hs_sync_row_clear(&r);
    struct hs_sync_row none = {0};
    assert_int_equal(f->store->work->sync_get(f->store, "s9-x", &none, NULL), HS_ERR_NOT_FOUND);
    int64_t q = -1, run = -1;
    assert_int_equal(f->store->work->syncs_count(f->store, &q, &run, NULL), HS_OK);
    assert_int_equal(q, 1);

    /* The job's item claimed: the sync runs. */
    schedule(f, "org-a", 501, HS_WORK_PRIO_INTERACTIVE, 20, 20);
    struct hs_work_item w;
    assert_int_equal(claim(f, "w", 30, &w), HS_OK);
    r = get_sync(f, "s1-a");
    assert_string_equal(r.status, "running");
    assert_int_equal(r.version, 2);
    hs_sync_row_clear(&r);
    assert_int_equal(f->store->work->syncs_count(f->store, &q, &run, NULL), HS_OK);
    assert_int_equal(q, 0);
    assert_int_equal(run, 1);

    /* Progress bumps the version once per real change. */
    assert_int_equal(progress(f, 501, 601, NULL, 0, 2, NULL), 1);
    assert_int_equal(progress(f, 501, 601, NULL, 0, 2, NULL), 0);
    assert_int_equal(progress(f, 501, 601, NULL, 1, 2, "aa"), 1);
    assert_int_equal(progress(f, 501, 999, NULL, 1, 2, NULL), 0); /* not in the sync */
    assert_int_equal(progress(f, 502, 601, NULL, 2, 2, NULL), 0); /* another job */
    r = get_sync(f, "s1-a");
    assert_int_equal(r.version, 4);
    assert_string_equal(r.models[0].name, "House");
    assert_int_equal(r.models[0].artifacts_done, 1);
    assert_int_equal(r.models[0].artifacts_total, 2);
    assert_string_equal(r.models[0].pdf_sha256, "aa");
    hs_sync_row_clear(&r);
    /* Every model with a result: the sync is done, its result by its models'. */
    assert_int_equal(progress(f, 501, 601, "synced", 2, 2, NULL), 1);
    r = get_sync(f, "s1-a");
    assert_string_equal(r.status, "running");
    hs_sync_row_clear(&r);
    assert_int_equal(progress(f, 501, 602, "pending", 0, 0, NULL), 1);
    r = get_sync(f, "s1-a");
    assert_string_equal(r.status, "done");
    assert_string_equal(r.result, "partial");
    assert_int_equal(r.finished_ms, 100);
    assert_string_equal(r.models[1].message, "why");
    int64_t v = r.version;
    hs_sync_row_clear(&r);
    /* A synced model is not touched again; the pending one lands later and the result follows. */
    assert_int_equal(progress(f, 501, 601, "error", 0, 2, NULL), 0);
    assert_int_equal(progress(f, 501, 602, "synced", 3, 3, "bb"), 1);
    r = get_sync(f, "s1-a");
    assert_string_equal(r.result, "synced");
    assert_true(r.version > v);
    assert_null(r.models[1].message);
    hs_sync_row_clear(&r);
    assert_int_equal(f->store->work->work_done(f->store, &w, 200, NULL), HS_OK);
    hs_work_item_clear(&w);

    /* Finished more than an hour ago: deleted by the clean-up. */
    assert_int_equal(f->store->work->syncs_expire(f->store, 100, NULL, NULL), HS_OK);
    r = get_sync(f, "s1-a");
    hs_sync_row_clear(&r);
    int64_t removed = 0;
    assert_int_equal(f->store->work->syncs_expire(f->store, 101, &removed, NULL), HS_OK);
    assert_int_equal(removed, 1);
    assert_int_equal(f->store->work->sync_get(f->store, "s1-a", &none, NULL), HS_ERR_NOT_FOUND);
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM sync_models"), 0);
}

/* The end of a run: its running syncs done, or failed with the error; a sync created during the
 * run stays queued for the next pass. */
static void test_syncs_finish(void **state)
{
    struct fixture *f = *state;
    const int64_t m1[] = {601}, m2[] = {601, 602};
    create_sync(f, "s1-a", 501, m1, 1, 10);
    schedule(f, "org-a", 501, HS_WORK_PRIO_INTERACTIVE, 20, 20);
    struct hs_work_item w;
    assert_int_equal(claim(f, "w", 30, &w), HS_OK);
    create_sync(f, "s2-b", 501, m2, 2, 40);
    int64_t n = -1;
    assert_int_equal(f->store->work->syncs_finish(f->store, "org-a", 501, "reconnect_required",
                                                  "grant refused", 50, &n, NULL),
                     HS_OK);
    assert_int_equal(n, 1);
    struct hs_sync_row r = get_sync(f, "s1-a");
    assert_string_equal(r.status, "failed");
    assert_string_equal(r.result, "failed");
    assert_string_equal(r.error_code, "reconnect_required");
    assert_string_equal(r.error_message, "grant refused");
    assert_null(r.models[0].result);
    assert_string_equal(r.models[0].message, "grant refused");
    hs_sync_row_clear(&r);
    r = get_sync(f, "s2-b");
    assert_string_equal(r.status, "queued");
    hs_sync_row_clear(&r);
    assert_int_equal(f->store->work->work_retry(f->store, &w, 55, 60, "grant refused", NULL),
                     HS_OK);
    hs_work_item_clear(&w);
    /* The next pass: done without error, the result by the models'. */
    assert_int_equal(claim(f, "w", 70, &w), HS_OK);
    hs_work_item_clear(&w);
    /* The model lands in both: the failed sync shows it too (and stays failed). */
    assert_int_equal(progress(f, 501, 601, "synced", 1, 1, NULL), 2);
    r = get_sync(f, "s1-a");
    assert_string_equal(r.status, "failed");
    assert_string_equal(r.models[0].result, "synced");
    hs_sync_row_clear(&r);
    assert_int_equal(f->store->work->syncs_finish(f->store, "org-a", 501, NULL, NULL, 80, &n, NULL),
                     HS_OK);
    assert_int_equal(n, 1);
    r = get_sync(f, "s2-b");
    assert_string_equal(r.status, "done");
    assert_string_equal(r.result, "partial");
    assert_null(r.error_code);
    hs_sync_row_clear(&r);
}

/* ---- the pending pass's polls ---- */

static void open_selection(struct fixture *f, const char *conn, int64_t job, int64_t model,
                           enum hs_selection_status status)
{
    struct hs_selection s = {
        .job_id = job, .model_id = model, .status = status, .connection_key = (char *)conn};
    assert_int_equal(f->store->records->selection_put(f->store, &s, NULL), HS_OK);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Polls at now: the jobs scheduled, as "conn/job" words in order. */
static char *poll(struct fixture *f, int64_t now, const char *skip)
{
    struct hs_pending_job *v = NULL;
    size_t n = 0;
    const char *sk[1] = {skip};
    assert_int_equal(
        f->store->work->pending_poll(f->store, now, 60000, 900000, sk, skip ? 1 : 0, &v, &n, NULL),
        HS_OK);
    char *words[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++)
        words[i] = hs_aprintf("%s/%lld", v[i].connection_key, (long long)v[i].job_id);
    qsort(words, n, sizeof *words, by_name);
    char buf[256] = "";
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", i ? " " : "", words[i]);
        free(words[i]);
    }
    hs_pending_jobs_free(v, n);
    /* The items the polls scheduled are run at once (done), as a worker would. */
    while (claim_done(f, now, NULL))
        ;
    return hs_strdup(buf);
}

#define assert_poll(f, now, skip, want)                                                            \
    do {                                                                                           \
        char *got_ = poll(f, now, skip);                                                           \
        assert_string_equal(got_, want);                                                           \
        free(got_);                                                                                \
    } while (0)

/* A job waiting for a model is polled a minute after it was first seen, then 2, 4, 8 ...
 * minutes apart up to the cap; not while it has a work item; not at all for a connection whose
 * webhook reports its changes; forgotten once nothing of it is open. */
static void test_pending_polls_back_off(void **state)
{
    struct fixture *f = *state;
    const int64_t M = 60000;
    open_selection(f, "org-a", 11, 111, HS_SEL_PENDING);
    open_selection(f, NULL, 12, 121, HS_SEL_ERROR); /* the default connection's */
    open_selection(f, "org-b", 13, 131, HS_SEL_PENDING);
    open_selection(f, "org-a", 14, 141, HS_SEL_SYNCED); /* closed: never polled */
    assert_poll(f, 0, "org-b", "");
    assert_poll(f, M - 1, "org-b", "");
    assert_poll(f, M, "org-b", "default/12 org-a/11");
    assert_poll(f, 2 * M, "org-b", "");
    assert_poll(f, 3 * M, "org-b", "default/12 org-a/11"); /* 2 minutes later */
    assert_poll(f, 7 * M, "org-b", "default/12 org-a/11"); /* 4 */
    assert_int_equal(sql_int(f, "SELECT interval_ms FROM pending_polls WHERE job_id = 11"), 8 * M);
    /* A job with a work item is left to it. */
    schedule(f, "org-a", 11, HS_WORK_PRIO_BACKGROUND, 15 * M, 99 * M);
    assert_poll(f, 15 * M, "org-b", "default/12");
    assert_int_equal(claim_done(f, 99 * M, NULL), 11);
    /* Up to the cap: 16 minutes capped at 15. */
    assert_poll(f, 31 * M, "org-b", "default/12 org-a/11");
    assert_int_equal(sql_int(f, "SELECT interval_ms FROM pending_polls WHERE job_id = 11"), 15 * M);
    /* org-b's webhook stops being healthy: its job is polled from a minute on. */
    assert_poll(f, 40 * M, NULL, "");
    assert_poll(f, 41 * M, NULL, "org-b/13");
    /* Synced: forgotten. */
    open_selection(f, "org-a", 11, 111, HS_SEL_SYNCED);
    assert_poll(f, 100 * M, NULL, "default/12 org-b/13");
    assert_int_equal(sql_int(f, "SELECT COUNT(*) FROM pending_polls WHERE job_id = 11"), 0);
}

/* ---- claimers in several processes ---- */

#define RACE_CLAIMERS 4
#define RACE_ITEMS    60

struct claimer {
    struct hs_store *store; /* a handle of its own, as another process has */
    char name[16];
    int64_t jobs[RACE_ITEMS];
    int n, failures;
};

static void *claim_all(void *arg)
{
    struct claimer *c = arg;
    for (;;) {
        struct hs_work_item w = {0};
        int rc = c->store->work->work_claim(c->store, c->name, NULL, 5000, 30000, &w, NULL, NULL);
        if (rc == HS_ERR_NOT_FOUND)
            break;
        if (rc == HS_OK && c->n < RACE_ITEMS)
            c->jobs[c->n++] = w.job_id;
        if (rc == HS_OK)
            rc = c->store->work->work_done(c->store, &w, 5000, NULL);
        if (rc != HS_OK && rc != HS_ERR_BUSY) /* busy: the file was locked, try again */
            c->failures++;
        hs_work_item_clear(&w);
        if (c->failures > 10)
            break;
    }
    return NULL;
}

/* Workers of several processes claiming at once run every item exactly once. */
static void test_concurrent_claimers_run_each_item_once(void **state)
{
    struct fixture *f = *state;
    for (int64_t j = 1; j <= RACE_ITEMS; j++)
        schedule(f, j % 3 ? "org-a" : "org-b", j, HS_WORK_PRIO_BACKGROUND, 1000, 1000);
    struct claimer c[RACE_CLAIMERS];
    pthread_t th[RACE_CLAIMERS];
    for (int i = 0; i < RACE_CLAIMERS; i++) {
        c[i] = (struct claimer){0};
        snprintf(c[i].name, sizeof c[i].name, "w%d", i);
        assert_int_equal(open_store(f, &c[i].store), HS_OK);
    }
    for (int i = 0; i < RACE_CLAIMERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, claim_all, &c[i]), 0);
    int runs[RACE_ITEMS + 1] = {0};
    for (int i = 0; i < RACE_CLAIMERS; i++) {
        pthread_join(th[i], NULL);
        hs_store_close(c[i].store);
        assert_int_equal(c[i].failures, 0);
        for (int k = 0; k < c[i].n; k++)
            runs[c[i].jobs[k]]++;
    }
    for (int j = 1; j <= RACE_ITEMS; j++)
        if (runs[j] != 1)
            fail_msg("job %d ran %d times", j, runs[j]);
    int64_t due = -1, total = -1;
    assert_int_equal(f->store->work->work_depth(f->store, &due, &total, NULL, 5000, NULL), HS_OK);
    assert_int_equal(total, 0);
}

struct other_claim {
    struct hs_store *store;
    struct hs_work_item w;
    struct hs_error err;
    int rc;
};

static void *claim_in_thread(void *arg)
{
    struct other_claim *oc = arg;
    oc->rc = oc->store->work->work_claim(oc->store, "b", NULL, 2000, 30000, &oc->w, NULL, &oc->err);
    return NULL;
}

/* A claim does not wait behind another process's claim still in its transaction: it takes the
 * next item (PostgreSQL's SKIP LOCKED). The other handle gives up on a row lock after 5 s
 * (lock_timeout), so a claim that queued on the locked row fails here instead of hanging. */
static void test_claim_skips_an_item_locked_by_another_claim(void **state)
{
    struct fixture *f = *state;
    if (!store_test_is_pg())
        skip(); /* SQLite: one writer at a time, a claim in a transaction holds the whole file */
    schedule(f, "org-a", 1, HS_WORK_PRIO_BACKGROUND, 1000, 1000);
    schedule(f, "org-b", 2, HS_WORK_PRIO_BACKGROUND, 1000, 1000);
    struct fixture other = *f;
    int len = snprintf(other.path, sizeof other.path, "%s%%20-clock_timeout%%3D5000", f->path);
    assert_true(len > 0 && (size_t)len < sizeof other.path);
    struct hs_store *b = NULL;
    assert_int_equal(open_store(&other, &b), HS_OK);
    struct hs_work_item wa;
    assert_int_equal(f->store->ops->begin(f->store, NULL), HS_OK);
    assert_int_equal(claim(f, "a", 2000, &wa), HS_OK); /* its row stays locked until commit */
    /* Another thread: a thread holds one transaction at a time, whatever the handle. */
    struct other_claim oc = {.store = b};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, claim_in_thread, &oc), 0);
    pthread_join(th, NULL);
    if (oc.rc)
        fail_msg("the second claim: %s", oc.err.msg);
    struct hs_work_item wb = oc.w;
    assert_int_not_equal(wb.job_id, wa.job_id);
    assert_int_equal(f->store->ops->commit(f->store, NULL), HS_OK);
    int64_t next = -1;
    struct hs_work_item none = {0};
    assert_int_equal(b->work->work_claim(b, "b", NULL, 2000, 30000, &none, &next, NULL),
                     HS_ERR_NOT_FOUND);
    hs_work_item_clear(&wa);
    hs_work_item_clear(&wb);
    hs_store_close(b);
}

/* ---- waking workers ---- */

static bool wait_once(struct hs_store *s, int cancel_fd, int64_t timeout_ms)
{
    bool woken = false;
    struct hs_error err = {0};
    int rc = s->work->work_wait(s, cancel_fd, timeout_ms, &woken, &err);
    if (rc)
        fail_msg("work_wait: %s", err.msg);
    return woken;
}

/* A schedule committed through another handle (another process) wakes a waiter on PostgreSQL;
 * a rolled back one does not. SQLite has no channel between processes: its wait only sleeps.
 * A readable cancel_fd ends a wait, woken or not. */
static void test_work_wait_hears_other_processes_commits(void **state)
{
    struct fixture *f = *state;
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    assert_int_equal(write(pipefd[1], "x", 1), 1);
    struct hs_store *other = NULL;
    assert_int_equal(open_store(f, &other), HS_OK);
    if (store_test_is_pg()) {
        /* The first wait starts listening and says woken: before it, nothing was heard. */
        assert_true(wait_once(f->store, -1, 0));
        assert_false(wait_once(f->store, -1, 300));
        assert_false(wait_once(f->store, pipefd[0], 600000)); /* cancelled, not 10 minutes */
        assert_int_equal(other->ops->begin(other, NULL), HS_OK);
        struct hs_work_trigger t = {.connection_key = "org-a",
                                    .job_id = 7,
                                    .reason = "test",
                                    .priority = HS_WORK_PRIO_BACKGROUND,
                                    .now_ms = 1000,
                                    .due_ms = 1000};
        assert_int_equal(other->work->work_schedule(other, &t, NULL), HS_OK);
        other->ops->rollback(other);
        assert_false(wait_once(f->store, -1, 300));
        assert_int_equal(other->work->work_schedule(other, &t, NULL), HS_OK);
        assert_true(wait_once(f->store, -1, 10000)); /* 10 s: only if it was never heard */
        assert_false(wait_once(f->store, -1, 0));    /* heard once */
    } else {
        assert_false(wait_once(f->store, pipefd[0], 600000)); /* cancelled, not 10 minutes */
        schedule(f, "org-a", 7, HS_WORK_PRIO_BACKGROUND, 1000, 1000);
        assert_false(wait_once(f->store, -1, 50));
    }
    hs_store_close(other);
    close(pipefd[0]);
    close(pipefd[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STORE_TEST(test_claims_go_by_priority_then_due),
        STORE_TEST(test_claims_take_connections_in_turn),
        STORE_TEST(test_triggers_coalesce),
        STORE_TEST(test_event_during_a_run_makes_one_more_pass),
        STORE_TEST(test_payload_follows_the_newest_trigger),
        STORE_TEST(test_lease_expires_after_a_crash),
        STORE_TEST(test_a_lapsed_claim_cannot_commit),
        STORE_TEST(test_depth_tells_the_oldest_due),
        STORE_TEST(test_release_hands_the_item_back),
        STORE_TEST(test_sync_lifecycle),
        STORE_TEST(test_syncs_finish),
        STORE_TEST(test_pending_polls_back_off),
        STORE_TEST(test_concurrent_claimers_run_each_item_once),
        STORE_TEST(test_claim_skips_an_item_locked_by_another_claim),
        STORE_TEST(test_work_wait_hears_other_processes_commits),
    };
    return STORE_TESTS("store work", tests);
}
