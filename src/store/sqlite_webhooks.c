/* sqlite_webhooks.c: webhooks and received events in the SQLite back-end (store/webhooks.h; the
 * tables are migrations 5 and 6).
 *
 * Ops run through hs_sqlite_enter like every other. event_accept is the one with a contract of
 * its own: "durable before returning", so it refuses to run inside a caller's transaction (whose
 * commit would come later), and concurrent calls share one transaction and one fsync (group
 * commit, see there). The connection runs with synchronous=FULL, so a COMMIT that returned is on
 * disk; event_accept's batches alone commit without it and fdatasync the log themselves before
 * anyone is answered. An accepted event bumps its job's work item (sqlite_work.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/str.h"
#include "store/sqlite_internal.h"
#include "store/webhooks.h"
#include "store/work.h"

/* ---- webhooks ---- */

#define WEBHOOK_COLS                                                                               \
    "id, connection_key, url, hmac_secret, verified_at, last_error, created_at, local_error"

static void webhook_secret_place(int64_t id, char *aad, size_t n)
{
    char row[24];
    (void)snprintf(row, sizeof row, "%lld", (long long)id);
    hs_sqlite_webhook_secret_place(row, aad, n);
}

/* A row; its secret opened (sealed at rest when the store has a key). */
static int webhook_fill(struct sq_txn *t, sqlite3_stmt *st, void *row, struct hs_error *err)
{
    struct hs_webhook_row *w = row;
    w->id = sqlite3_column_int64(st, 0);
    w->connection_key = hs_sqlite_col_text(st, 1);
    w->url = hs_sqlite_col_text(st, 2);
    w->verified_at = hs_sqlite_col_text(st, 4);
    w->last_error = hs_sqlite_col_text(st, 5);
    w->created_at = hs_sqlite_col_text(st, 6);
    w->local_error = hs_sqlite_col_text(st, 7);
    char aad[64];
    webhook_secret_place(w->id, aad, sizeof aad);
    return hs_sqlite_unseal(t->s, (const char *)sqlite3_column_text(st, 3), aad, &w->hmac_secret,
                            err);
}

static void webhook_clear(void *row)
{
    hs_webhook_row_clear(row);
}

/* Insert or update by id. A row read back from Hover's list has no secret and may not say
 * verified yet: neither erases what is stored. last_error is Hover's latest word. */
static int sq_webhook_put(struct hs_store *base, const struct hs_webhook_row *w,
                          struct hs_error *err)
{
    if (!w || w->id <= 0 || !w->connection_key || !w->url)
        return hs_fail(err, HS_ERR_INVALID, "webhook without an id, a connection or a URL");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "webhook_put", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    char aad[64], *sealed = NULL;
    webhook_secret_place(w->id, aad, sizeof aad);
    rc = hs_sqlite_seal(t.s, w->hmac_secret, aad, &sealed, err);
    if (!rc)
        rc = hs_sqlite_prep(
            &t, &st,
            "INSERT INTO webhooks (id, connection_key, url, hmac_secret, verified_at, "
            "last_error, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
            "COALESCE(?7, " HS_SQL_NOW "), " HS_SQL_NOW ") "
            "ON CONFLICT(id) DO UPDATE SET connection_key = excluded.connection_key, "
            "url = excluded.url, hmac_secret = COALESCE(excluded.hmac_secret, hmac_secret), "
            "verified_at = COALESCE(excluded.verified_at, verified_at), "
            "last_error = excluded.last_error, updated_at = excluded.updated_at",
            "storing webhook", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, w->id);
        hs_sqlite_bind_text(st, 2, w->connection_key);
        hs_sqlite_bind_text(st, 3, w->url);
        hs_sqlite_bind_text(st, 4, sealed);
        hs_sqlite_bind_text(st, 5, w->verified_at);
        hs_sqlite_bind_text(st, 6, w->last_error);
        hs_sqlite_bind_text(st, 7, w->created_at);
        rc = hs_sqlite_run(&t, st, NULL, "storing webhook", err);
    }
    hs_secret_free(sealed);
    return hs_sqlite_leave(&t, rc, err);
}

static int sq_webhook_get(struct hs_store *base, int64_t id, struct hs_webhook_row *out,
                          struct hs_error *err)
{
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ_POINT, "webhook_get", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    struct hs_webhook_row w = {0};
    rc = hs_sqlite_prep_kept(&t, &st, "SELECT " WEBHOOK_COLS " FROM webhooks WHERE id = ?1",
                             "reading webhook", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, id);
        rc = hs_sqlite_one(&t, st, webhook_fill, &w, "reading webhook", err);
        if (rc == HS_ERR_NOT_FOUND)
            hs_fail(err, HS_ERR_NOT_FOUND, "no webhook %lld", (long long)id);
    }
    rc = hs_sqlite_leave(&t, rc, err);
    if (rc) {
        hs_webhook_row_clear(&w);
        return rc;
    }
    *out = w;
    return HS_OK;
}

static int sq_webhook_list(struct hs_store *base, struct hs_webhook_row **out, size_t *n,
                           struct hs_error *err)
{
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "webhook_list", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    void *v = NULL;
    size_t len = 0;
    rc =
        hs_sqlite_prep(&t, &st, "SELECT " WEBHOOK_COLS " FROM webhooks ORDER BY connection_key, id",
                       "listing webhooks", err);
    if (!rc)
        rc = hs_sqlite_rows(&t, st, sizeof(struct hs_webhook_row), webhook_fill, webhook_clear, &v,
                            &len, "listing webhooks", err);
    rc = hs_sqlite_leave(&t, rc, err);
    if (rc) {
        hs_webhook_rows_free(v, len);
        return rc;
    }
    *out = v;
    *n = len;
    return HS_OK;
}

static int sq_webhook_delete(struct hs_store *base, int64_t id, struct hs_error *err)
{
    return hs_sqlite_change_by_id(base, "DELETE FROM webhooks WHERE id = ?1", id, 0, NULL,
                                  "deleting webhook", "no webhook %lld", err);
}

static int sq_webhook_set_local_error(struct hs_store *base, int64_t id, const char *error,
                                      struct hs_error *err)
{
    return hs_sqlite_change_by_id(
        base, "UPDATE webhooks SET local_error = ?3, updated_at = " HS_SQL_NOW " WHERE id = ?1", id,
        0, error, "storing the webhook's error", "no webhook %lld", err);
}

static int sq_webhook_access_get(struct hs_store *base, const char *access_id, int64_t *webhook_id,
                                 struct hs_error *err)
{
    if (!access_id)
        return hs_fail(err, HS_ERR_INVALID, "no access id");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ_POINT, "webhook_access_get", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    int64_t id = 0;
    rc = hs_sqlite_prep_kept(&t, &st,
                             "SELECT webhook_id FROM webhook_access_ids WHERE access_id = ?1",
                             "reading an access id", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, access_id);
        rc = hs_sqlite_int(&t, st, &id, "reading an access id", err);
    }
    if (!rc && id == 0)
        rc = hs_fail(err, HS_ERR_NOT_FOUND, "access id not known");
    rc = hs_sqlite_leave(&t, rc, err);
    if (!rc)
        *webhook_id = id;
    return rc;
}

static int sq_webhook_access_put(struct hs_store *base, const char *access_id, int64_t webhook_id,
                                 struct hs_error *err)
{
    if (!access_id || webhook_id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "access id without a webhook");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "webhook_access_put", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(&t, &st,
                        "INSERT INTO webhook_access_ids (access_id, webhook_id, updated_at) "
                        "VALUES (?1, ?2, " HS_SQL_NOW ") ON CONFLICT(access_id) DO UPDATE SET "
                        "webhook_id = excluded.webhook_id, updated_at = excluded.updated_at",
                        "storing an access id", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, access_id);
        sqlite3_bind_int64(st, 2, webhook_id);
        rc = hs_sqlite_run(&t, st, NULL, "storing an access id", err);
    }
    return hs_sqlite_leave(&t, rc, err);
}

/* ---- replays, kept deliveries, verifications (helpers inside a transaction) ---- */

/* Remembers key until until_ms with the event stored for it, in one statement: a key still
 * remembered (a replay) is left alone, *replay set; an expired one is taken over (the retention
 * duty deletes expired keys, not every delivery). */
static int replay_remember(struct sq_txn *t, const char *key, int64_t until_ms, int64_t event_id,
                           int64_t now_ms, bool *replay, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int changes = 0;
    int rc = hs_sqlite_prep_kept(
        t, &st,
        "INSERT INTO webhook_replays (signature, expires_ms, event_id) VALUES (?1, ?2, ?3) "
        "ON CONFLICT(signature) DO UPDATE SET expires_ms = excluded.expires_ms, "
        "event_id = excluded.event_id WHERE webhook_replays.expires_ms < ?4",
        "remembering a signature", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, key);
        sqlite3_bind_int64(st, 2, until_ms);
        hs_sqlite_bind_id(st, 3, event_id);
        sqlite3_bind_int64(st, 4, now_ms);
        rc = hs_sqlite_run(t, st, &changes, "remembering a signature", err);
    }
    if (!rc)
        *replay = changes == 0;
    return rc;
}

/* Kept deliveries past their age or past the count, oldest first. */
static int unverified_trim(struct sq_txn *t, int64_t now_ms, int64_t *removed, struct hs_error *err)
{
    char cutoff[40];
    int64_t c = now_ms - HS_STORE_UNVERIFIED_TTL_MS;
    hs_iso8601_format(c / 1000, (int)(c % 1000), cutoff, sizeof cutoff);
    sqlite3_stmt *st = NULL;
    int changes = 0;
    int rc = hs_sqlite_prep(
        t, &st,
        "DELETE FROM webhook_events WHERE status = 'unverified' AND (received_at < ?1 OR id IN "
        "(SELECT id FROM webhook_events WHERE status = 'unverified' "
        "ORDER BY received_at DESC, id DESC LIMIT -1 OFFSET ?2))",
        "dropping kept deliveries", err);
    if (rc)
        return rc;
    hs_sqlite_bind_text(st, 1, cutoff);
    sqlite3_bind_int64(st, 2, HS_STORE_UNVERIFIED_MAX);
    rc = hs_sqlite_run(t, st, &changes, "dropping kept deliveries", err);
    if (!rc && removed)
        *removed = changes;
    return rc;
}

/* Finished verifications are kept a week for the record, then forgotten. */
#define VERIFICATION_KEEP_MS (7 * 86400 * 1000LL)

static int verification_insert(struct sq_txn *t, int64_t webhook_id, const char *code,
                               int64_t event_id, int64_t now_ms, struct hs_error *err)
{
    if (webhook_id <= 0 || !code || !*code)
        return hs_fail(err, HS_ERR_INVALID, "verification without a webhook or a code");
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(
        t, &st, "DELETE FROM webhook_verifications WHERE status <> 'pending' AND created_ms < ?1",
        "queueing a verification", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, now_ms - VERIFICATION_KEEP_MS);
        rc = hs_sqlite_run(t, st, NULL, "queueing a verification", err);
    }
    if (!rc)
        rc = hs_sqlite_prep(
            t, &st,
            "INSERT INTO webhook_verifications (webhook_id, code, event_id, status, attempts, "
            "next_attempt_ms, created_ms) VALUES (?1, ?2, ?3, 'pending', 0, ?4, ?4) "
            "ON CONFLICT(webhook_id, code) DO NOTHING",
            "queueing a verification", err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, webhook_id);
    hs_sqlite_bind_text(st, 2, code);
    hs_sqlite_bind_id(st, 3, event_id);
    sqlite3_bind_int64(st, 4, now_ms);
    return hs_sqlite_run(t, st, NULL, "queueing a verification", err);
}

static int sq_events_unverified_trim(struct hs_store *base, int64_t now_ms, int64_t *removed,
                                     struct hs_error *err)
{
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "events_unverified_trim", err);
    if (rc)
        return rc;
    return hs_sqlite_leave(&t, unverified_trim(&t, now_ms, removed, err), err);
}

static int sq_verification_add(struct hs_store *base, int64_t webhook_id, const char *code,
                               int64_t event_id, int64_t now_ms, struct hs_error *err)
{
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "verification_add", err);
    if (rc)
        return rc;
    return hs_sqlite_leave(&t, verification_insert(&t, webhook_id, code, event_id, now_ms, err),
                           err);
}

static int verification_fill(struct sq_txn *t, sqlite3_stmt *st, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    struct hs_verification *v = row;
    v->id = sqlite3_column_int64(st, 0);
    v->webhook_id = sqlite3_column_int64(st, 1);
    v->code = hs_sqlite_col_text(st, 2);
    v->event_id = sqlite3_column_int64(st, 3);
    v->attempts = sqlite3_column_int64(st, 4);
    v->created_ms = sqlite3_column_int64(st, 5);
    return HS_OK;
}

static int sq_verification_claim(struct hs_store *base, int64_t now_ms, int64_t lease_ms,
                                 struct hs_verification *out, struct hs_error *err)
{
    if (lease_ms <= 0)
        return hs_fail(err, HS_ERR_INVALID, "verification claim without a lease");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "verification_claim", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    struct hs_verification v = {0};
    rc = hs_sqlite_prep(
        &t, &st,
        "UPDATE webhook_verifications SET next_attempt_ms = ?1 + ?2 WHERE id = ("
        "SELECT id FROM webhook_verifications WHERE status = 'pending' AND next_attempt_ms <= ?1 "
        "ORDER BY next_attempt_ms, id LIMIT 1) "
        "RETURNING id, webhook_id, code, event_id, attempts, created_ms",
        "claiming a verification", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, now_ms);
        sqlite3_bind_int64(st, 2, lease_ms);
        rc = hs_sqlite_one(&t, st, verification_fill, &v, "claiming a verification", err);
        if (rc == HS_ERR_NOT_FOUND)
            hs_fail(err, HS_ERR_NOT_FOUND, "no verification is due");
    }
    rc = hs_sqlite_leave(&t, rc, err);
    if (rc) {
        hs_verification_clear(&v);
        return rc;
    }
    *out = v;
    return HS_OK;
}

static int sq_verification_finish(struct hs_store *base, int64_t id, const char *status,
                                  int64_t next_attempt_ms, const char *error, struct hs_error *err)
{
    static const char *const ok[] = {"pending", "verified", "rejected", "failed"};
    bool valid = false;
    for (size_t i = 0; status && i < sizeof ok / sizeof ok[0]; i++)
        valid = valid || strcmp(status, ok[i]) == 0;
    if (!valid)
        return hs_fail(err, HS_ERR_INVALID, "unknown verification status");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "verification_finish", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    int changes = 0;
    rc = hs_sqlite_prep(&t, &st,
                        "UPDATE webhook_verifications SET status = ?2, last_error = ?4, "
                        "attempts = attempts + (CASE WHEN ?2 = 'verified' THEN 0 ELSE 1 END), "
                        "next_attempt_ms = ?3 WHERE id = ?1",
                        "finishing a verification", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, id);
        hs_sqlite_bind_text(st, 2, status);
        sqlite3_bind_int64(st, 3, next_attempt_ms);
        hs_sqlite_bind_text(st, 4, error);
        rc = hs_sqlite_run(&t, st, &changes, "finishing a verification", err);
    }
    if (!rc && changes == 0)
        rc = hs_fail(err, HS_ERR_NOT_FOUND, "no verification %lld", (long long)id);
    return hs_sqlite_leave(&t, rc, err);
}

/* ---- events ---- */

static int connection_known(struct sq_txn *t, const char *key, bool *known, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int64_t n = 0;
    int rc = hs_sqlite_prep_kept(t, &st, "SELECT COUNT(*) FROM connections WHERE key = ?1",
                                 "reading connection", err);
    if (rc)
        return rc;
    hs_sqlite_bind_text(st, 1, key);
    rc = hs_sqlite_int(t, st, &n, "reading connection", err);
    if (!rc)
        *known = n > 0;
    return rc;
}

/* HS_ERR_NOT_FOUND when webhook id is gone (event_accept of a known webhook's delivery). */
static int webhook_present(struct sq_txn *t, int64_t id, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int64_t n = 0;
    int rc = hs_sqlite_prep_kept(t, &st, "SELECT COUNT(*) FROM webhooks WHERE id = ?1",
                                 "reading webhook", err);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    rc = hs_sqlite_int(t, st, &n, "reading webhook", err);
    if (!rc && n == 0)
        rc = hs_fail(err, HS_ERR_NOT_FOUND, "webhook %lld is gone", (long long)id);
    return rc;
}

static bool event_status_valid(const char *status)
{
    static const char *const names[] = {"accepted", "unverified", "processed", "ignored",
                                        "rejected"};
    for (size_t i = 0; status && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(status, names[i]) == 0)
            return true;
    return false;
}

/* One event_accept waiting for its group commit. */
struct hs_sqlite_accept {
    const struct hs_event_row *e;
    bool schedule;
    int64_t now_ms;
    int64_t rerun_ms;
    int64_t id;
    int rc;
    struct hs_error err;
    bool done;
    /* Its caller waits here (under gc_lock, `waiting` set) to be told its request is done, or to
     * take a role. */
    pthread_cond_t wake;
    bool waiting;
    struct hs_sqlite_accept *next;
};

static int event_insert(struct sq_txn *t, const struct hs_event_row *e, int64_t *id,
                        struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep_kept(
        t, &st,
        "INSERT INTO webhook_events (webhook_id, connection_key, event, job_id, model_id, "
        "state, body, headers, status, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
        "?9, COALESCE(?10, " HS_SQL_NOW "))",
        "storing event", err);
    if (rc)
        return rc;
    hs_sqlite_bind_id(st, 1, e->webhook_id);
    hs_sqlite_bind_text(st, 2, e->connection_key);
    hs_sqlite_bind_text(st, 3, e->event);
    hs_sqlite_bind_id(st, 4, e->job_id);
    hs_sqlite_bind_id(st, 5, e->model_id);
    hs_sqlite_bind_text(st, 6, e->state);
    /* A zero-length blob, not NULL, for an empty body (body is NOT NULL). */
    sqlite3_bind_blob(st, 7, e->body ? (const void *)e->body : "", (int)e->body_len, SQLITE_STATIC);
    hs_sqlite_bind_text(st, 8, e->headers_json);
    hs_sqlite_bind_text(st, 9, e->status);
    hs_sqlite_bind_text(st, 10, e->received_at);
    rc = hs_sqlite_run(t, st, NULL, "storing event", err);
    if (!rc)
        *id = sqlite3_last_insert_rowid(t->db);
    return rc;
}

/* The event row, its replay key and its work item, under a savepoint of the batch's transaction
 * (a nested hs_sqlite_enter): a failed one leaves nothing and does not fail the others. The row
 * goes first so that its key is written once, with its id; a replay (rare) rolls it back. */
static int accept_one(struct sqlite_store *s, struct hs_sqlite_accept *a)
{
    const struct hs_event_row *e = a->e;
    struct hs_error *err = &a->err;
    struct sq_txn t;
    int rc = hs_sqlite_enter(s, &t, SQ_WRITE, "event_accept", err);
    if (rc)
        return rc;
    bool replay = false;
    if (e->webhook_must_exist)
        rc = webhook_present(&t, e->webhook_id, err);
    if (!rc)
        rc = event_insert(&t, e, &a->id, err);
    if (!rc && e->replay_key)
        rc = replay_remember(&t, e->replay_key, e->replay_until_ms, a->id, a->now_ms, &replay, err);
    if (!rc && replay) { /* nothing stored, id 0 */
        a->id = 0;
        (void)hs_sqlite_leave(&t, HS_ERR_CONFLICT, NULL);
        return HS_OK;
    }
    if (!rc && a->schedule && e->job_id > 0 && e->connection_key) {
        bool known = false;
        rc = connection_known(&t, e->connection_key, &known, err);
        if (!rc && known)
            rc = hs_sqlite_work_bump(&t,
                                     &(struct hs_work_trigger){.connection_key = e->connection_key,
                                                               .job_id = e->job_id,
                                                               .reason = "webhook",
                                                               .priority = HS_WORK_PRIO_BACKGROUND,
                                                               .now_ms = a->now_ms,
                                                               .due_ms = a->now_ms,
                                                               .rerun_ms = a->rerun_ms},
                                     err);
    }
    if (!rc && e->verify_code)
        rc = verification_insert(&t, e->webhook_id, e->verify_code, a->id, a->now_ms, err);
    if (!rc && strcmp(e->status, "unverified") == 0)
        rc = unverified_trim(&t, a->now_ms, NULL, err);
    if (rc)
        a->id = 0;
    return hs_sqlite_leave(&t, rc, err);
}

/* The leader's work: one transaction for the whole batch, committed once; its fsync is the
 * syncer's (batches_sync), while the writer is free for the next batch. */
static void accept_batch(struct sqlite_store *s, struct hs_sqlite_accept *batch)
{
    struct sq_txn t;
    struct hs_error err = {0};
    int rc = hs_sqlite_enter(s, &t, SQ_WRITE_UNSYNCED, "event_accept", &err);
    if (!rc) {
        for (struct hs_sqlite_accept *a = batch; a; a = a->next)
            a->rc = accept_one(s, a);
        rc = hs_sqlite_leave(&t, HS_OK, &err);
    }
    if (rc) { /* BEGIN or COMMIT failed: nothing of the batch is stored */
        for (struct hs_sqlite_accept *a = batch; a; a = a->next) {
            if (!a->rc) {
                a->rc = rc;
                a->err = err;
            }
            a->id = 0;
        }
    }
}

/* The commits of the batches in `list` made durable: one fdatasync of the log for all of them
 * (and for whatever committed before). If it fails, every request of the list fails: its row may
 * be on disk (a retried delivery is then acknowledged as a replay), but nobody was told "stored"
 * before it was. */
static void batches_sync(struct sqlite_store *s, struct hs_sqlite_accept *list)
{
    bool stored = false;
    for (struct hs_sqlite_accept *a = list; a; a = a->next)
        stored = stored || a->rc == HS_OK;
    struct hs_error err = {0};
    int rc = stored ? hs_sqlite_wal_sync(s, &err) : HS_OK;
    for (struct hs_sqlite_accept *a = list; rc && a; a = a->next) {
        if (!a->rc) {
            a->rc = rc;
            a->err = err;
        }
        a->id = 0;
    }
}

/* A role nobody holds while there is work for it goes to one caller that waits for it: one of
 * the queue leads, one of the committed ones syncs. Only that caller is woken, not every waiter
 * (a caller holding a role takes the next one itself when its role ends). */
static void hand_over(struct sqlite_store *s)
{
    struct hs_sqlite_accept *a = NULL;
    for (a = s->gc_leader ? NULL : s->gc_head; a && !a->waiting; a = a->next)
        ;
    if (a)
        pthread_cond_signal(&a->wake);
    for (a = s->gc_syncing ? NULL : s->gc_unsynced; a && !a->waiting; a = a->next)
        ;
    if (a)
        pthread_cond_signal(&a->wake);
}

/* Leader: the queue, committed in one transaction, joins the committed batches waiting for
 * their sync. Called and returns with gc_lock held. */
static void gc_lead(struct sqlite_store *s)
{
    s->gc_leader = true;
    struct hs_sqlite_accept *batch = s->gc_head, *last = batch;
    s->gc_head = s->gc_tail = NULL;
    hand_over(s);
    pthread_mutex_unlock(&s->gc_lock);
    accept_batch(s, batch);
    while (last->next)
        last = last->next;
    pthread_mutex_lock(&s->gc_lock);
    if (s->gc_unsynced_tail)
        s->gc_unsynced_tail->next = batch;
    else
        s->gc_unsynced = batch;
    s->gc_unsynced_tail = last;
    s->gc_leader = false;
}

/* Syncer: every committed batch so far made durable at once, its callers told. Called and
 * returns with gc_lock held. */
static void gc_sync(struct sqlite_store *s)
{
    s->gc_syncing = true;
    struct hs_sqlite_accept *list = s->gc_unsynced;
    s->gc_unsynced = s->gc_unsynced_tail = NULL;
    hand_over(s);
    pthread_mutex_unlock(&s->gc_lock);
    batches_sync(s, list);
    pthread_mutex_lock(&s->gc_lock);
    for (struct hs_sqlite_accept *a = list, *next; a; a = next) {
        next = a->next; /* a may return (and its stack go) once done is set */
        a->done = true;
        pthread_cond_signal(&a->wake);
    }
    s->gc_syncing = false;
}

/* Group commit, in two stages any waiting caller may run. Every caller queues its request; the
 * leader (one at a time) takes the whole queue and commits it in one transaction without waiting
 * for the disk; the syncer (one at a time) makes every batch committed so far durable with one
 * fdatasync and wakes their callers. So while one fsync runs, the next batch is written, and the
 * next fsync covers every batch committed meanwhile: under load one fsync covers many events;
 * alone a request costs what a plain transaction would. A caller returns only once the
 * transaction holding its row has committed and is on disk. A caller done with a role takes the
 * next one its request still waits for, or hands it to one waiting caller (hand_over): each
 * waiter is woken when its request is done or a role is its to take, never by everyone's. */
static int sq_event_accept(struct hs_store *base, const struct hs_event_row *e, bool schedule,
                           int64_t delay_ms, int64_t now_ms, int64_t *event_id,
                           struct hs_error *err)
{
    struct sqlite_store *s = hs_sqlite_of(base);
    if (!e || (!e->body && e->body_len) || e->body_len > INT32_MAX ||
        !event_status_valid(e->status))
        return hs_fail(err, HS_ERR_INVALID, "event without a body or a valid status");
    /* Durable before returning: a caller's open transaction would commit later. */
    if (hs_sqlite_held_by_me(s))
        return hs_fail(err, HS_ERR_INTERNAL, "event_accept called inside a store transaction");
    struct hs_sqlite_accept me = {
        .e = e, .schedule = schedule, .now_ms = now_ms, .rerun_ms = delay_ms};
    pthread_cond_init(&me.wake, NULL);
    bool synced = false;
    pthread_mutex_lock(&s->gc_lock);
    if (s->gc_tail)
        s->gc_tail->next = &me;
    else
        s->gc_head = &me;
    s->gc_tail = &me;
    while (!me.done) {
        if (!s->gc_syncing && s->gc_unsynced) {
            gc_sync(s);
            synced = true;
        } else if (!s->gc_leader && s->gc_head)
            gc_lead(s);
        else {
            me.waiting = true;
            pthread_cond_wait(&me.wake, &s->gc_lock);
            me.waiting = false;
        }
    }
    hand_over(s); /* the roles this caller leaves */
    pthread_mutex_unlock(&s->gc_lock);
    pthread_cond_destroy(&me.wake);
    /* The batches' checkpoint, off the writer and after their callers were told. */
    if (synced)
        hs_sqlite_checkpoint(s);
    if (me.rc) {
        if (err)
            *err = me.err;
        return me.rc;
    }
    if (event_id)
        *event_id = me.id;
    return HS_OK;
}

static int event_fill(struct sq_txn *t, sqlite3_stmt *st, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    struct hs_event_row *e = row;
    e->id = sqlite3_column_int64(st, 0);
    e->webhook_id = sqlite3_column_int64(st, 1);
    e->connection_key = hs_sqlite_col_text(st, 2);
    e->event = hs_sqlite_col_text(st, 3);
    e->job_id = sqlite3_column_int64(st, 4);
    e->model_id = sqlite3_column_int64(st, 5);
    e->state = hs_sqlite_col_text(st, 6);
    const void *b = sqlite3_column_blob(st, 7);
    size_t blen = (size_t)sqlite3_column_bytes(st, 7);
    /* NUL-terminated for convenience; body_len is the truth (the body may hold NULs). */
    e->body = hs_malloc(blen + 1);
    if (blen)
        memcpy(e->body, b, blen);
    e->body[blen] = '\0';
    e->body_len = blen;
    e->headers_json = hs_sqlite_col_text(st, 8);
    e->received_at = hs_sqlite_col_text(st, 9);
    e->status = hs_sqlite_col_text(st, 10);
    return HS_OK;
}

static void event_clear(void *row)
{
    hs_event_row_clear(row);
}

static int sq_events_unverified(struct hs_store *base, int64_t webhook_id,
                                struct hs_event_row **out, size_t *n, struct hs_error *err)
{
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "events_unverified", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    void *v = NULL;
    size_t len = 0;
    rc = hs_sqlite_prep(
        &t, &st,
        "SELECT id, webhook_id, connection_key, event, job_id, model_id, state, body, "
        "headers, received_at, status FROM webhook_events "
        "WHERE (?1 = 0 OR webhook_id = ?1) AND status = 'unverified' ORDER BY id",
        "listing unverified events", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, webhook_id);
        rc = hs_sqlite_rows(&t, st, sizeof(struct hs_event_row), event_fill, event_clear, &v, &len,
                            "listing unverified events", err);
    }
    rc = hs_sqlite_leave(&t, rc, err);
    if (rc) {
        hs_event_rows_free(v, len);
        return rc;
    }
    *out = v;
    *n = len;
    return HS_OK;
}

static int sq_event_set_status(struct hs_store *base, int64_t event_id, const char *status,
                               struct hs_error *err)
{
    if (!event_status_valid(status))
        return hs_fail(err, HS_ERR_INVALID, "unknown event status '%s'",
                       status ? status : "(null)");
    return hs_sqlite_change_by_id(base,
                                  "UPDATE webhook_events SET status = ?3, processed_at = CASE WHEN "
                                  "?3 = 'processed' THEN " HS_SQL_NOW
                                  " ELSE processed_at END WHERE id = ?1",
                                  event_id, 0, status, "updating event", "no event %lld", err);
}

static int sq_events_last_accepted(struct hs_store *base, const char *connection_key,
                                   int64_t job_id, int64_t *event_id, struct hs_error *err)
{
    if (!connection_key || job_id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "events_last_accepted needs a connection and a job");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "events_last_accepted", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(&t, &st,
                        "SELECT MAX(id) FROM webhook_events WHERE connection_key = ?1 AND "
                        "job_id = ?2 AND status = 'accepted'",
                        "reading the last accepted event", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, connection_key);
        sqlite3_bind_int64(st, 2, job_id);
        rc = hs_sqlite_int(&t, st, event_id, "reading the last accepted event", err);
    }
    return hs_sqlite_leave(&t, rc, err);
}

static int sq_events_processed(struct hs_store *base, const char *connection_key, int64_t job_id,
                               int64_t up_to_event_id, struct hs_error *err)
{
    if (!connection_key)
        return hs_fail(err, HS_ERR_INVALID, "events_processed without a connection");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE, "events_processed", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(
        &t, &st,
        "UPDATE webhook_events SET status = 'processed', processed_at = " HS_SQL_NOW " "
        "WHERE connection_key = ?1 AND job_id = ?2 AND status = 'accepted' AND id <= ?3",
        "marking events processed", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, connection_key);
        sqlite3_bind_int64(st, 2, job_id);
        sqlite3_bind_int64(st, 3, up_to_event_id);
        rc = hs_sqlite_run(&t, st, NULL, "marking events processed", err);
    }
    return hs_sqlite_leave(&t, rc, err);
}

const struct hs_webhook_ops hs_sqlite_webhook_ops = {
    .webhook_put = sq_webhook_put,
    .webhook_get = sq_webhook_get,
    .webhook_list = sq_webhook_list,
    .webhook_delete = sq_webhook_delete,
    .webhook_set_local_error = sq_webhook_set_local_error,
    .webhook_access_get = sq_webhook_access_get,
    .webhook_access_put = sq_webhook_access_put,
    .verification_add = sq_verification_add,
    .verification_claim = sq_verification_claim,
    .verification_finish = sq_verification_finish,
    .event_accept = sq_event_accept,
    .events_unverified = sq_events_unverified,
    .event_set_status = sq_event_set_status,
    .events_unverified_trim = sq_events_unverified_trim,
    .events_last_accepted = sq_events_last_accepted,
    .events_processed = sq_events_processed,
};
