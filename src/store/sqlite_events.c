/* sqlite_events.c: webhooks, received events, the CRM outbox and the auto-sync policies of the
 * SQLite back-end (store.h, "webhooks, events, work items, outbox, policies"; the tables are
 * migration 5). An accepted event bumps its job's work item (sqlite_queue.c).
 *
 * Transactions work as in sqlite_records.c: an op called outside begin/commit runs in its own
 * BEGIN IMMEDIATE transaction under the store lock; inside the caller's transaction it runs under
 * a savepoint (outbox_add is meant to join the worker's sync transaction). event_accept is the
 * exception: its contract is "durable before returning", so it refuses to run inside a caller's
 * transaction (whose commit would come later), and concurrent calls share one transaction and
 * one fsync (group commit, see there). The connection runs with synchronous=FULL, so a COMMIT
 * that returned is on disk. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/str.h"
#include "store/sqlite_internal.h"

static struct sqlite_store *sq(struct hs_store *base)
{
    return (struct sqlite_store *)base;
}

/* ---- transactions (as in sqlite_records.c) ---- */

struct ev_op {
    bool own;
    bool write;
};

static int ev_enter(struct sqlite_store *s, struct ev_op *op, bool write, struct hs_error *err)
{
    op->write = write;
    op->own = false;
    if (hs_sqlite_held_by_me(s)) {
        if (s->txn != SQ_TXN_USER && s->txn != SQ_TXN_OP)
            return hs_fail(err, HS_ERR_INTERNAL, "store op used inside a token refresh");
        return write ? hs_sqlite_exec(s, "SAVEPOINT hs_ev", err) : HS_OK;
    }
    hs_sqlite_lock(s);
    int rc = hs_sqlite_exec(s, write ? "BEGIN IMMEDIATE" : "BEGIN", err);
    if (rc) {
        hs_sqlite_unlock(s);
        return rc;
    }
    s->txn = SQ_TXN_OP;
    s->txn_seq = 0;
    op->own = true;
    return HS_OK;
}

static int ev_leave(struct sqlite_store *s, struct ev_op *op, int rc, struct hs_error *err)
{
    if (!op->own) {
        if (!op->write)
            return rc;
        if (rc)
            hs_sqlite_exec(s, "ROLLBACK TO hs_ev", NULL);
        int r2 = hs_sqlite_exec(s, "RELEASE hs_ev", rc ? NULL : err);
        return rc ? rc : r2;
    }
    if (!rc)
        rc = hs_sqlite_exec(s, "COMMIT", err);
    if (rc)
        hs_sqlite_exec(s, "ROLLBACK", NULL);
    s->txn = SQ_TXN_NONE;
    s->txn_seq = 0;
    hs_sqlite_unlock(s);
    return rc;
}

/* For the other sqlite_*.c files (sqlite_queue.c). */
int hs_sqlite_op_enter(struct sqlite_store *s, struct hs_sqlite_op *op, bool write,
                       struct hs_error *err)
{
    struct ev_op e;
    int rc = ev_enter(s, &e, write, err);
    *op = (struct hs_sqlite_op){.own = e.own, .write = e.write};
    return rc;
}

int hs_sqlite_op_leave(struct sqlite_store *s, struct hs_sqlite_op *op, int rc,
                       struct hs_error *err)
{
    struct ev_op e = {.own = op->own, .write = op->write};
    return ev_leave(s, &e, rc, err);
}

/* ---- statements ---- */

/* One-statement read of a single integer (COUNT(*) and the like). */
static int read_int(struct sqlite_store *s, sqlite3_stmt *st, int64_t *out, const char *what,
                    struct hs_error *err)
{
    int rc = sqlite3_step(st);
    int ret = HS_OK;
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else
        ret = hs_sqlite_fail(s, rc, err, what);
    sqlite3_finalize(st);
    return ret;
}

/* ---- webhooks ---- */

#define WEBHOOK_COLS                                                                               \
    "id, connection_key, url, hmac_secret, verified_at, last_error, created_at, local_error"

static void webhook_secret_place(int64_t id, char *aad, size_t n)
{
    (void)snprintf(aad, n, "webhooks.hmac_secret:%lld", (long long)id);
}

/* A row; its secret opened (sealed at rest when the store has a key). */
static int webhook_read(struct sqlite_store *s, sqlite3_stmt *st, struct hs_webhook_row *w,
                        struct hs_error *err)
{
    w->id = sqlite3_column_int64(st, 0);
    w->connection_key = hs_sqlite_col_text(st, 1);
    w->url = hs_sqlite_col_text(st, 2);
    w->verified_at = hs_sqlite_col_text(st, 4);
    w->last_error = hs_sqlite_col_text(st, 5);
    w->created_at = hs_sqlite_col_text(st, 6);
    w->local_error = hs_sqlite_col_text(st, 7);
    char aad[64];
    webhook_secret_place(w->id, aad, sizeof aad);
    return hs_sqlite_unseal(s, (const char *)sqlite3_column_text(st, 3), aad, &w->hmac_secret, err);
}

/* Insert or update by id. A row read back from Hover's list has no secret and may not say
 * verified yet: neither erases what is stored. last_error is Hover's latest word. */
int hs_sqlite_webhook_put(struct hs_store *base, const struct hs_webhook_row *w,
                          struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (!w || w->id <= 0 || !w->connection_key || !w->url)
        return hs_fail(err, HS_ERR_INVALID, "webhook without an id, a connection or a URL");
    struct ev_op op;
    int rc = ev_enter(s, &op, true, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    char aad[64], *sealed = NULL;
    webhook_secret_place(w->id, aad, sizeof aad);
    rc = hs_sqlite_seal(s, w->hmac_secret, aad, &sealed, err);
    if (!rc)
        rc = hs_sqlite_prep(
            s, &st,
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
        rc = hs_sqlite_run(s, st, NULL, "storing webhook", err);
    }
    hs_secret_free(sealed);
    return ev_leave(s, &op, rc, err);
}

int hs_sqlite_webhook_get(struct hs_store *base, int64_t id, struct hs_webhook_row *out,
                          struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    struct ev_op op;
    int rc = ev_enter(s, &op, false, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    struct hs_webhook_row w = {0};
    rc = hs_sqlite_prep(s, &st, "SELECT " WEBHOOK_COLS " FROM webhooks WHERE id = ?1",
                        "reading webhook", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, id);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW)
            rc = webhook_read(s, st, &w, err);
        else if (src == SQLITE_DONE)
            rc = hs_fail(err, HS_ERR_NOT_FOUND, "no webhook %lld", (long long)id);
        else
            rc = hs_sqlite_fail(s, src, err, "reading webhook");
        sqlite3_finalize(st);
    }
    rc = ev_leave(s, &op, rc, err);
    if (rc) {
        hs_webhook_row_clear(&w);
        return rc;
    }
    *out = w;
    return HS_OK;
}

int hs_sqlite_webhook_list(struct hs_store *base, struct hs_webhook_row **out, size_t *n,
                           struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    struct ev_op op;
    int rc = ev_enter(s, &op, false, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    struct hs_webhook_row *v = NULL;
    size_t len = 0, cap = 0;
    rc = hs_sqlite_prep(s, &st, "SELECT " WEBHOOK_COLS " FROM webhooks ORDER BY connection_key, id",
                        "listing webhooks", err);
    while (!rc) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = hs_sqlite_fail(s, src, err, "listing webhooks");
            break;
        }
        if (len == cap) {
            cap = cap ? cap * 2 : 4;
            v = hs_realloc(v, cap * sizeof *v);
        }
        memset(&v[len], 0, sizeof v[len]);
        rc = webhook_read(s, st, &v[len++], err);
    }
    sqlite3_finalize(st);
    rc = ev_leave(s, &op, rc, err);
    if (rc) {
        hs_webhook_rows_free(v, len);
        return rc;
    }
    *out = v;
    *n = len;
    return HS_OK;
}

int hs_sqlite_webhook_delete(struct hs_store *base, int64_t id, struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    struct ev_op op;
    int rc = ev_enter(s, &op, true, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    int changes = 0;
    rc = hs_sqlite_prep(s, &st, "DELETE FROM webhooks WHERE id = ?1", "deleting webhook", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, id);
        rc = hs_sqlite_run(s, st, &changes, "deleting webhook", err);
    }
    if (!rc && changes == 0)
        rc = hs_fail(err, HS_ERR_NOT_FOUND, "no webhook %lld", (long long)id);
    return ev_leave(s, &op, rc, err);
}

/* ---- events ---- */

static int connection_known(struct sqlite_store *s, const char *key, bool *known,
                            struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int64_t n = 0;
    int rc = hs_sqlite_prep(s, &st, "SELECT COUNT(*) FROM connections WHERE key = ?1",
                            "reading connection", err);
    if (rc)
        return rc;
    hs_sqlite_bind_text(st, 1, key);
    rc = read_int(s, st, &n, "reading connection", err);
    if (!rc)
        *known = n > 0;
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
    struct hs_sqlite_accept *next;
};

/* ---- replays, kept deliveries, verifications (helpers inside a transaction) ---- */

/* Remembers key until until_ms (forgetting the expired ones); *replay when it was remembered. */
static int replay_remember(struct sqlite_store *s, const char *key, int64_t until_ms,
                           int64_t now_ms, bool *replay, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(s, &st, "DELETE FROM webhook_replays WHERE expires_ms < ?1",
                            "forgetting old signatures", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, now_ms);
        rc = hs_sqlite_run(s, st, NULL, "forgetting old signatures", err);
    }
    int changes = 0;
    if (!rc)
        rc = hs_sqlite_prep(s, &st,
                            "INSERT INTO webhook_replays (signature, expires_ms) VALUES (?1, ?2) "
                            "ON CONFLICT(signature) DO NOTHING",
                            "remembering a signature", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, key);
        sqlite3_bind_int64(st, 2, until_ms);
        rc = hs_sqlite_run(s, st, &changes, "remembering a signature", err);
    }
    if (!rc)
        *replay = changes == 0;
    return rc;
}

static int replay_link(struct sqlite_store *s, const char *key, int64_t event_id,
                       struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(s, &st, "UPDATE webhook_replays SET event_id = ?2 WHERE signature = ?1",
                            "remembering a signature", err);
    if (rc)
        return rc;
    hs_sqlite_bind_text(st, 1, key);
    sqlite3_bind_int64(st, 2, event_id);
    return hs_sqlite_run(s, st, NULL, "remembering a signature", err);
}

/* Kept deliveries past their age or past the count, oldest first. */
static int unverified_trim(struct sqlite_store *s, int64_t now_ms, int64_t *removed,
                           struct hs_error *err)
{
    char cutoff[40];
    int64_t c = now_ms - HS_STORE_UNVERIFIED_TTL_MS;
    hs_iso8601_format(c / 1000, (int)(c % 1000), cutoff, sizeof cutoff);
    sqlite3_stmt *st = NULL;
    int changes = 0;
    int rc = hs_sqlite_prep(
        s, &st,
        "DELETE FROM webhook_events WHERE status = 'unverified' AND (received_at < ?1 OR id IN "
        "(SELECT id FROM webhook_events WHERE status = 'unverified' "
        "ORDER BY received_at DESC, id DESC LIMIT -1 OFFSET ?2))",
        "dropping kept deliveries", err);
    if (rc)
        return rc;
    hs_sqlite_bind_text(st, 1, cutoff);
    sqlite3_bind_int64(st, 2, HS_STORE_UNVERIFIED_MAX);
    rc = hs_sqlite_run(s, st, &changes, "dropping kept deliveries", err);
    if (!rc && removed)
        *removed = changes;
    return rc;
}

/* Finished verifications are kept a week for the record, then forgotten. */
#define VERIFICATION_KEEP_MS (7 * 86400 * 1000LL)

static int verification_insert(struct sqlite_store *s, int64_t webhook_id, const char *code,
                               int64_t event_id, int64_t now_ms, struct hs_error *err)
{
    if (webhook_id <= 0 || !code || !*code)
        return hs_fail(err, HS_ERR_INVALID, "verification without a webhook or a code");
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(
        s, &st, "DELETE FROM webhook_verifications WHERE status <> 'pending' AND created_ms < ?1",
        "queueing a verification", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, now_ms - VERIFICATION_KEEP_MS);
        rc = hs_sqlite_run(s, st, NULL, "queueing a verification", err);
    }
    if (!rc)
        rc = hs_sqlite_prep(
            s, &st,
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
    return hs_sqlite_run(s, st, NULL, "queueing a verification", err);
}

/* The event row and its work item, under a savepoint of the batch's transaction: a failed one
 * leaves nothing and does not fail the others. */
static int accept_one(struct sqlite_store *s, struct hs_sqlite_accept *a)
{
    const struct hs_event_row *e = a->e;
    struct hs_error *err = &a->err;
    int rc = hs_sqlite_exec(s, "SAVEPOINT hs_accept", err);
    if (rc)
        return rc;
    bool replay = false;
    if (e->replay_key)
        rc = replay_remember(s, e->replay_key, e->replay_until_ms, a->now_ms, &replay, err);
    if (rc || replay) { /* a replay: nothing stored, id 0 */
        if (rc)
            hs_sqlite_exec(s, "ROLLBACK TO hs_accept", NULL);
        int r0 = hs_sqlite_exec(s, "RELEASE hs_accept", rc ? NULL : err);
        return rc ? rc : r0;
    }
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(
        s, &st,
        "INSERT INTO webhook_events (webhook_id, connection_key, event, job_id, model_id, "
        "state, body, headers, status, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
        "?9, COALESCE(?10, " HS_SQL_NOW "))",
        "storing event", err);
    if (!rc) {
        hs_sqlite_bind_id(st, 1, e->webhook_id);
        hs_sqlite_bind_text(st, 2, e->connection_key);
        hs_sqlite_bind_text(st, 3, e->event);
        hs_sqlite_bind_id(st, 4, e->job_id);
        hs_sqlite_bind_id(st, 5, e->model_id);
        hs_sqlite_bind_text(st, 6, e->state);
        /* A zero-length blob, not NULL, for an empty body (body is NOT NULL). */
        sqlite3_bind_blob(st, 7, e->body ? (const void *)e->body : "", (int)e->body_len,
                          SQLITE_STATIC);
        hs_sqlite_bind_text(st, 8, e->headers_json);
        hs_sqlite_bind_text(st, 9, e->status);
        hs_sqlite_bind_text(st, 10, e->received_at);
        rc = hs_sqlite_run(s, st, NULL, "storing event", err);
        if (!rc)
            a->id = sqlite3_last_insert_rowid(s->db);
    }
    if (!rc && a->schedule && e->job_id > 0 && e->connection_key) {
        bool known = false;
        rc = connection_known(s, e->connection_key, &known, err);
        if (!rc && known)
            rc = hs_sqlite_work_bump(s,
                                     &(struct hs_work_trigger){.connection_key = e->connection_key,
                                                               .job_id = e->job_id,
                                                               .reason = "webhook",
                                                               .priority = HS_WORK_PRIO_BACKGROUND,
                                                               .now_ms = a->now_ms,
                                                               .due_ms = a->now_ms,
                                                               .rerun_ms = a->rerun_ms},
                                     err);
    }
    if (!rc && e->replay_key)
        rc = replay_link(s, e->replay_key, a->id, err);
    if (!rc && e->verify_code)
        rc = verification_insert(s, e->webhook_id, e->verify_code, a->id, a->now_ms, err);
    if (!rc && strcmp(e->status, "unverified") == 0)
        rc = unverified_trim(s, a->now_ms, NULL, err);
    if (rc)
        hs_sqlite_exec(s, "ROLLBACK TO hs_accept", NULL);
    int r2 = hs_sqlite_exec(s, "RELEASE hs_accept", rc ? NULL : err);
    return rc ? rc : r2;
}

/* The leader's work: one transaction for the whole batch, committed (fsynced) once. */
static void accept_batch(struct sqlite_store *s, struct hs_sqlite_accept *batch)
{
    struct ev_op op;
    struct hs_error err = {0};
    int rc = ev_enter(s, &op, true, &err);
    if (!rc) {
        for (struct hs_sqlite_accept *a = batch; a; a = a->next)
            a->rc = accept_one(s, a);
        rc = ev_leave(s, &op, HS_OK, &err);
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

/* Group commit: every caller queues its request; whoever finds no leader becomes it, takes the
 * whole queue (its own request included) and commits it in one transaction, then wakes the
 * others. While a batch commits, new requests queue up for the next one, so under load one fsync
 * covers many events, and alone a request costs what a plain transaction would. A caller
 * returns only once the transaction holding its row has committed. */
int hs_sqlite_event_accept(struct hs_store *base, const struct hs_event_row *e, bool schedule,
                           int64_t delay_ms, int64_t now_ms, int64_t *event_id,
                           struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (!e || (!e->body && e->body_len) || e->body_len > INT32_MAX ||
        !event_status_valid(e->status))
        return hs_fail(err, HS_ERR_INVALID, "event without a body or a valid status");
    /* Durable before returning: a caller's open transaction would commit later. */
    if (hs_sqlite_held_by_me(s))
        return hs_fail(err, HS_ERR_INTERNAL, "event_accept called inside a store transaction");
    struct hs_sqlite_accept me = {
        .e = e, .schedule = schedule, .now_ms = now_ms, .rerun_ms = delay_ms};
    pthread_mutex_lock(&s->gc_lock);
    if (s->gc_tail)
        s->gc_tail->next = &me;
    else
        s->gc_head = &me;
    s->gc_tail = &me;
    while (!me.done) {
        if (s->gc_leader) {
            pthread_cond_wait(&s->gc_done, &s->gc_lock);
            continue;
        }
        s->gc_leader = true;
        struct hs_sqlite_accept *batch = s->gc_head;
        s->gc_head = s->gc_tail = NULL;
        pthread_mutex_unlock(&s->gc_lock);
        accept_batch(s, batch);
        pthread_mutex_lock(&s->gc_lock);
        for (struct hs_sqlite_accept *a = batch, *next; a; a = next) {
            next = a->next; /* a may return (and its stack go) once done is set */
            a->done = true;
        }
        s->gc_leader = false;
        pthread_cond_broadcast(&s->gc_done);
    }
    pthread_mutex_unlock(&s->gc_lock);
    if (me.rc) {
        if (err)
            *err = me.err;
        return me.rc;
    }
    if (event_id)
        *event_id = me.id;
    return HS_OK;
}

int hs_sqlite_events_unverified(struct hs_store *base, int64_t webhook_id,
                                struct hs_event_row **out, size_t *n, struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    struct ev_op op;
    int rc = ev_enter(s, &op, false, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    struct hs_event_row *v = NULL;
    size_t len = 0, cap = 0;
    rc = hs_sqlite_prep(
        s, &st,
        "SELECT id, webhook_id, connection_key, event, job_id, model_id, state, body, "
        "headers, received_at, status FROM webhook_events "
        "WHERE (?1 = 0 OR webhook_id = ?1) AND status = 'unverified' ORDER BY id",
        "listing unverified events", err);
    if (!rc)
        sqlite3_bind_int64(st, 1, webhook_id);
    while (!rc) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = hs_sqlite_fail(s, src, err, "listing unverified events");
            break;
        }
        if (len == cap) {
            cap = cap ? cap * 2 : 4;
            v = hs_realloc(v, cap * sizeof *v);
        }
        struct hs_event_row *e = &v[len++];
        memset(e, 0, sizeof *e);
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
    }
    sqlite3_finalize(st);
    rc = ev_leave(s, &op, rc, err);
    if (rc) {
        hs_event_rows_free(v, len);
        return rc;
    }
    *out = v;
    *n = len;
    return HS_OK;
}

int hs_sqlite_event_set_status(struct hs_store *base, int64_t event_id, const char *status,
                               struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (!event_status_valid(status))
        return hs_fail(err, HS_ERR_INVALID, "unknown event status '%s'",
                       status ? status : "(null)");
    struct ev_op op;
    int rc = ev_enter(s, &op, true, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    int changes = 0;
    rc = hs_sqlite_prep(
        s, &st,
        "UPDATE webhook_events SET status = ?2, processed_at = CASE WHEN ?2 = 'processed' "
        "THEN " HS_SQL_NOW " ELSE processed_at END WHERE id = ?1",
        "updating event", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, event_id);
        hs_sqlite_bind_text(st, 2, status);
        rc = hs_sqlite_run(s, st, &changes, "updating event", err);
    }
    if (!rc && changes == 0)
        rc = hs_fail(err, HS_ERR_NOT_FOUND, "no event %lld", (long long)event_id);
    return ev_leave(s, &op, rc, err);
}

int hs_sqlite_events_processed(struct hs_store *base, const char *connection_key, int64_t job_id,
                               int64_t up_to_event_id, struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (!connection_key)
        return hs_fail(err, HS_ERR_INVALID, "events_processed without a connection");
    struct ev_op op;
    int rc = ev_enter(s, &op, true, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(
        s, &st,
        "UPDATE webhook_events SET status = 'processed', processed_at = " HS_SQL_NOW " "
        "WHERE connection_key = ?1 AND job_id = ?2 AND status = 'accepted' AND id <= ?3",
        "marking events processed", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, connection_key);
        sqlite3_bind_int64(st, 2, job_id);
        sqlite3_bind_int64(st, 3, up_to_event_id);
        rc = hs_sqlite_run(s, st, NULL, "marking events processed", err);
    }
    return ev_leave(s, &op, rc, err);
}

/* ---- outbox ---- */

int hs_sqlite_outbox_add(struct hs_store *base, const char *endpoint, int64_t job_id,
                         const char *payload, const char *idempotency_key, struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (!endpoint || !payload || !idempotency_key)
        return hs_fail(err, HS_ERR_INVALID,
                       "outbox message without an endpoint, a payload or an idempotency key");
    struct ev_op op;
    int rc = ev_enter(s, &op, true, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    /* The same idempotency key is the same message: adding it again is a no-op. */
    rc = hs_sqlite_prep(
        s, &st,
        "INSERT INTO outbox (endpoint, job_id, seq_in_job, idempotency_key, payload, "
        "attempts, next_attempt_ms, created_at) VALUES (?1, ?2, "
        "(SELECT COALESCE(MAX(seq_in_job), 0) + 1 FROM outbox WHERE endpoint = ?1 AND "
        "job_id = ?2), ?3, ?4, 0, 0, " HS_SQL_NOW ") "
        "ON CONFLICT(idempotency_key) DO NOTHING",
        "adding outbox message", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, endpoint);
        sqlite3_bind_int64(st, 2, job_id > 0 ? job_id : 0);
        hs_sqlite_bind_text(st, 3, idempotency_key);
        hs_sqlite_bind_text(st, 4, payload);
        rc = hs_sqlite_run(s, st, NULL, "adding outbox message", err);
    }
    return ev_leave(s, &op, rc, err);
}

int hs_sqlite_outbox_next(struct hs_store *base, int64_t now_ms, struct hs_outbox_row *out,
                          struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    struct ev_op op;
    int rc = ev_enter(s, &op, false, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    struct hs_outbox_row o = {0};
    rc = hs_sqlite_prep(
        s, &st,
        "SELECT o.id, o.endpoint, o.job_id, o.seq_in_job, o.idempotency_key, o.payload, "
        "o.attempts, o.next_attempt_ms, o.last_error FROM outbox o "
        "WHERE o.delivered_at IS NULL AND o.next_attempt_ms <= ?1 AND NOT EXISTS ("
        "SELECT 1 FROM outbox p WHERE p.endpoint = o.endpoint AND p.job_id = o.job_id "
        "AND p.seq_in_job < o.seq_in_job AND p.delivered_at IS NULL) "
        "ORDER BY o.next_attempt_ms, o.id LIMIT 1",
        "reading outbox", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, now_ms);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            o.id = sqlite3_column_int64(st, 0);
            o.endpoint = hs_sqlite_col_text(st, 1);
            o.job_id = sqlite3_column_int64(st, 2);
            o.seq_in_job = sqlite3_column_int64(st, 3);
            o.idempotency_key = hs_sqlite_col_text(st, 4);
            o.payload = hs_sqlite_col_text(st, 5);
            o.attempts = sqlite3_column_int64(st, 6);
            o.next_attempt_ms = sqlite3_column_int64(st, 7);
            o.last_error = hs_sqlite_col_text(st, 8);
        } else if (src == SQLITE_DONE) {
            rc = hs_fail(err, HS_ERR_NOT_FOUND, "no outbox message is due");
        } else {
            rc = hs_sqlite_fail(s, src, err, "reading outbox");
        }
        sqlite3_finalize(st);
    }
    rc = ev_leave(s, &op, rc, err);
    if (rc) {
        hs_outbox_row_clear(&o);
        return rc;
    }
    *out = o;
    return HS_OK;
}

/* One UPDATE of a message by id (?1), with ?2 and ?3 when the statement has them (binding a
 * parameter a statement lacks is a harmless SQLITE_RANGE). HS_ERR_NOT_FOUND if nothing changed. */
static int outbox_update(struct sqlite_store *s, const char *sql, int64_t id, int64_t num,
                         const char *text, const char *what, struct hs_error *err)
{
    struct ev_op op;
    int rc = ev_enter(s, &op, true, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    int changes = 0;
    rc = hs_sqlite_prep(s, &st, sql, what, err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, num);
        hs_sqlite_bind_text(st, 3, text);
        rc = hs_sqlite_run(s, st, &changes, what, err);
    }
    if (!rc && changes == 0)
        rc = hs_fail(err, HS_ERR_NOT_FOUND, "no outbox message %lld", (long long)id);
    return ev_leave(s, &op, rc, err);
}

int hs_sqlite_outbox_delivered(struct hs_store *base, int64_t id, struct hs_error *err)
{
    return outbox_update(sq(base),
                         "UPDATE outbox SET delivered_at = COALESCE(delivered_at, " HS_SQL_NOW
                         "), last_error = NULL WHERE id = ?1",
                         id, 0, NULL, "marking outbox message delivered", err);
}

int hs_sqlite_outbox_retry(struct hs_store *base, int64_t id, int64_t next_attempt_ms,
                           const char *error, struct hs_error *err)
{
    return outbox_update(sq(base),
                         "UPDATE outbox SET attempts = attempts + 1, next_attempt_ms = ?2, "
                         "last_error = ?3 WHERE id = ?1 AND delivered_at IS NULL",
                         id, next_attempt_ms, error, "retrying outbox message", err);
}

int hs_sqlite_outbox_depth(struct hs_store *base, int64_t *pending, struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    struct ev_op op;
    int rc = ev_enter(s, &op, false, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    int64_t n = 0;
    rc = hs_sqlite_prep(s, &st, "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL",
                        "counting outbox", err);
    if (!rc)
        rc = read_int(s, st, &n, "counting outbox", err);
    rc = ev_leave(s, &op, rc, err);
    if (!rc && pending)
        *pending = n;
    return rc;
}

/* ---- policies ---- */

static bool policy_valid(const char *p)
{
    return p && (strcmp(p, "all") == 0 || strcmp(p, "linked") == 0 || strcmp(p, "none") == 0);
}

int hs_sqlite_policy_get(struct hs_store *base, const char *connection_key, char **policy,
                         struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (!connection_key)
        return hs_fail(err, HS_ERR_INVALID, "policy without a connection");
    struct ev_op op;
    int rc = ev_enter(s, &op, false, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    char *v = NULL;
    rc = hs_sqlite_prep(s, &st, "SELECT auto_sync FROM policies WHERE connection_key = ?1",
                        "reading policy", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, connection_key);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW)
            v = hs_sqlite_col_text(st, 0);
        else if (src != SQLITE_DONE)
            rc = hs_sqlite_fail(s, src, err, "reading policy");
        sqlite3_finalize(st);
    }
    rc = ev_leave(s, &op, rc, err);
    if (rc) {
        free(v);
        return rc;
    }
    *policy = v ? v : hs_strdup("all");
    return HS_OK;
}

int hs_sqlite_policy_put(struct hs_store *base, const char *connection_key, const char *policy,
                         struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (!connection_key || !policy_valid(policy))
        return hs_fail(err, HS_ERR_INVALID, "policy must be all, linked or none");
    struct ev_op op;
    int rc = ev_enter(s, &op, true, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(
        s, &st,
        "INSERT INTO policies (connection_key, auto_sync, updated_at) VALUES (?1, ?2, " HS_SQL_NOW
        ") ON CONFLICT(connection_key) DO UPDATE SET "
        "auto_sync = excluded.auto_sync, updated_at = excluded.updated_at",
        "storing policy", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, connection_key);
        hs_sqlite_bind_text(st, 2, policy);
        rc = hs_sqlite_run(s, st, NULL, "storing policy", err);
    }
    return ev_leave(s, &op, rc, err);
}

/* ---- webhook signatures: local errors, access ids, kept deliveries, verifications ---- */

int hs_sqlite_webhook_set_local_error(struct hs_store *base, int64_t id, const char *error,
                                      struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    struct ev_op op;
    int rc = ev_enter(s, &op, true, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    int changes = 0;
    rc = hs_sqlite_prep(
        s, &st, "UPDATE webhooks SET local_error = ?2, updated_at = " HS_SQL_NOW " WHERE id = ?1",
        "storing the webhook's error", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, id);
        hs_sqlite_bind_text(st, 2, error);
        rc = hs_sqlite_run(s, st, &changes, "storing the webhook's error", err);
    }
    if (!rc && changes == 0)
        rc = hs_fail(err, HS_ERR_NOT_FOUND, "no webhook %lld", (long long)id);
    return ev_leave(s, &op, rc, err);
}

int hs_sqlite_webhook_access_get(struct hs_store *base, const char *access_id, int64_t *webhook_id,
                                 struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (!access_id)
        return hs_fail(err, HS_ERR_INVALID, "no access id");
    struct ev_op op;
    int rc = ev_enter(s, &op, false, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    int64_t id = 0;
    rc = hs_sqlite_prep(s, &st, "SELECT webhook_id FROM webhook_access_ids WHERE access_id = ?1",
                        "reading an access id", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, access_id);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW)
            id = sqlite3_column_int64(st, 0);
        else if (src == SQLITE_DONE)
            rc = HS_ERR_NOT_FOUND;
        else
            rc = hs_sqlite_fail(s, src, err, "reading an access id");
        sqlite3_finalize(st);
    }
    if (rc == HS_ERR_NOT_FOUND)
        hs_fail(err, HS_ERR_NOT_FOUND, "access id not known");
    rc = ev_leave(s, &op, rc, err);
    if (!rc)
        *webhook_id = id;
    return rc;
}

int hs_sqlite_webhook_access_put(struct hs_store *base, const char *access_id, int64_t webhook_id,
                                 struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (!access_id || webhook_id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "access id without a webhook");
    struct ev_op op;
    int rc = ev_enter(s, &op, true, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(s, &st,
                        "INSERT INTO webhook_access_ids (access_id, webhook_id, updated_at) "
                        "VALUES (?1, ?2, " HS_SQL_NOW ") ON CONFLICT(access_id) DO UPDATE SET "
                        "webhook_id = excluded.webhook_id, updated_at = excluded.updated_at",
                        "storing an access id", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, access_id);
        sqlite3_bind_int64(st, 2, webhook_id);
        rc = hs_sqlite_run(s, st, NULL, "storing an access id", err);
    }
    return ev_leave(s, &op, rc, err);
}

int hs_sqlite_events_unverified_trim(struct hs_store *base, int64_t now_ms, int64_t *removed,
                                     struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    struct ev_op op;
    int rc = ev_enter(s, &op, true, err);
    if (rc)
        return rc;
    rc = unverified_trim(s, now_ms, removed, err);
    return ev_leave(s, &op, rc, err);
}

int hs_sqlite_verification_add(struct hs_store *base, int64_t webhook_id, const char *code,
                               int64_t event_id, int64_t now_ms, struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    struct ev_op op;
    int rc = ev_enter(s, &op, true, err);
    if (rc)
        return rc;
    rc = verification_insert(s, webhook_id, code, event_id, now_ms, err);
    return ev_leave(s, &op, rc, err);
}

int hs_sqlite_verification_claim(struct hs_store *base, int64_t now_ms, int64_t lease_ms,
                                 struct hs_verification *out, struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    if (lease_ms <= 0)
        return hs_fail(err, HS_ERR_INVALID, "verification claim without a lease");
    struct ev_op op;
    int rc = ev_enter(s, &op, true, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    struct hs_verification v = {0};
    rc = hs_sqlite_prep(
        s, &st,
        "UPDATE webhook_verifications SET next_attempt_ms = ?1 + ?2 WHERE id = ("
        "SELECT id FROM webhook_verifications WHERE status = 'pending' AND next_attempt_ms <= ?1 "
        "ORDER BY next_attempt_ms, id LIMIT 1) "
        "RETURNING id, webhook_id, code, event_id, attempts, created_ms",
        "claiming a verification", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, now_ms);
        sqlite3_bind_int64(st, 2, lease_ms);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            v.id = sqlite3_column_int64(st, 0);
            v.webhook_id = sqlite3_column_int64(st, 1);
            v.code = hs_sqlite_col_text(st, 2);
            v.event_id = sqlite3_column_int64(st, 3);
            v.attempts = sqlite3_column_int64(st, 4);
            v.created_ms = sqlite3_column_int64(st, 5);
            src = sqlite3_step(st);
        } else if (src == SQLITE_DONE) {
            rc = HS_ERR_NOT_FOUND;
        }
        if (!rc && src != SQLITE_DONE)
            rc = hs_sqlite_fail(s, src, err, "claiming a verification");
        sqlite3_finalize(st);
    }
    if (rc == HS_ERR_NOT_FOUND)
        hs_fail(err, HS_ERR_NOT_FOUND, "no verification is due");
    rc = ev_leave(s, &op, rc, err);
    if (rc) {
        hs_verification_clear(&v);
        return rc;
    }
    *out = v;
    return HS_OK;
}

int hs_sqlite_verification_finish(struct hs_store *base, int64_t id, const char *status,
                                  int64_t next_attempt_ms, const char *error, struct hs_error *err)
{
    struct sqlite_store *s = sq(base);
    static const char *const ok[] = {"pending", "verified", "rejected", "failed"};
    bool valid = false;
    for (size_t i = 0; status && i < sizeof ok / sizeof ok[0]; i++)
        valid = valid || strcmp(status, ok[i]) == 0;
    if (!valid)
        return hs_fail(err, HS_ERR_INVALID, "unknown verification status");
    struct ev_op op;
    int rc = ev_enter(s, &op, true, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    int changes = 0;
    rc = hs_sqlite_prep(s, &st,
                        "UPDATE webhook_verifications SET status = ?2, last_error = ?4, "
                        "attempts = attempts + (CASE WHEN ?2 = 'verified' THEN 0 ELSE 1 END), "
                        "next_attempt_ms = ?3 WHERE id = ?1",
                        "finishing a verification", err);
    if (!rc) {
        sqlite3_bind_int64(st, 1, id);
        hs_sqlite_bind_text(st, 2, status);
        sqlite3_bind_int64(st, 3, next_attempt_ms);
        hs_sqlite_bind_text(st, 4, error);
        rc = hs_sqlite_run(s, st, &changes, "finishing a verification", err);
    }
    if (!rc && changes == 0)
        rc = hs_fail(err, HS_ERR_NOT_FOUND, "no verification %lld", (long long)id);
    return ev_leave(s, &op, rc, err);
}
