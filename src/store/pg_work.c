/* pg_work.c: the work queue, the syncs of POST /api/syncs with their progress, and the pending
 * pass's polls, in the PostgreSQL back-end (store/work.h), with the rules of sqlite_work.c.
 *
 * Every op runs through hs_pg_enter: in a transaction of its own, or joining the calling
 * thread's. The fence: each claim bumps the item's claim counter and the claim's token is its
 * value; a write of the run checks, in its own transaction, that the counter is still the token
 * and the lease has not ended. The check reads the item FOR SHARE, and a claim picks its row
 * FOR UPDATE SKIP LOCKED, so a claim by another process passes the item by until the checked
 * write commits (and claims it at a later look, bumping the counter), never slips between the
 * check and the write. A claim re-checks that the item is still due when it updates it, so two
 * processes claiming at once never both get it. Writes that make work due NOTIFY the channel
 * hoversync_work in their transaction, and work_wait LISTENs on it. */
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg_internal.h"
#include "store/work.h"

/* ---- work items ---- */

#define ITEM_COLS                                                                                  \
    "id, connection_key, job_id, reason, priority, generation, attempts, not_before_ms, claims, "  \
    "lease_until_ms, trigger_ms, payload, payload_ms, last_error"

static int item_fill(struct pg_txn *t, const PGresult *r, int i, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    struct hs_work_item *w = row;
    w->id = hs_pg_col_int(r, i, 0);
    w->connection_key = hs_pg_col_text(r, i, 1);
    w->job_id = hs_pg_col_int(r, i, 2);
    w->reason = hs_pg_col_text(r, i, 3);
    w->priority = (int)hs_pg_col_int(r, i, 4);
    w->generation = hs_pg_col_int(r, i, 5);
    w->attempts = hs_pg_col_int(r, i, 6);
    w->not_before_ms = hs_pg_col_int(r, i, 7);
    w->claim = hs_pg_col_int(r, i, 8);
    w->lease_until_ms = hs_pg_col_int(r, i, 9);
    w->trigger_ms = hs_pg_col_int(r, i, 10);
    w->payload = hs_pg_col_text(r, i, 11);
    w->payload_ms = hs_pg_col_int(r, i, 12);
    w->last_error = hs_pg_col_text(r, i, 13);
    return HS_OK;
}

/* ---- waking workers: NOTIFY in the writer's transaction, LISTEN in one thread ---- */

#define WORK_CHANNEL "hoversync_work"

/* Inside t: every process listening hears of it when t commits. PostgreSQL sends notifications
 * on commit only (none for a rollback, nor for a savepoint rolled back), and folds a
 * transaction's identical ones into one, so a pass that schedules a hundred items wakes once. */
static int notify_work(struct pg_txn *t, struct hs_error *err)
{
    return hs_pg_run(t, "SELECT pg_notify('" WORK_CHANNEL "', '')", NULL, NULL, "waking workers",
                     err);
}

/* Opens s->listen and LISTENs on it (under listen_lock). */
static int listen_open(struct pg_store *s, struct hs_error *err)
{
    int rc = hs_pg_connect(s, &s->listen, err);
    if (rc)
        return rc;
    PGresult *r = PQexec(s->listen, "LISTEN " WORK_CHANNEL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        rc = hs_pg_fail(s->listen, r, err, "listening for work");
        PQfinish(s->listen);
        s->listen = NULL;
    }
    PQclear(r);
    return rc;
}

/* Frees the notifications read so far; whether there was one. */
static bool drain_notifies(PGconn *c)
{
    bool any = false;
    PGnotify *n;
    while ((n = PQnotifies(c)) != NULL) {
        any = true;
        PQfreemem(n);
    }
    return any;
}

static int pg_work_wait(struct hs_store *base, int cancel_fd, int64_t timeout_ms, bool *woken,
                        struct hs_error *err)
{
    struct pg_store *s = hs_pg_of(base);
    *woken = false;
    if (pthread_mutex_trylock(&s->listen_lock) != 0) { /* another thread listens */
        hs_work_wait_idle(cancel_fd, timeout_ms);
        return HS_OK;
    }
    int rc = HS_OK;
    if (!s->listen) { /* nobody listened until now: what committed meanwhile was not heard */
        rc = listen_open(s, err);
        *woken = rc == HS_OK;
        goto out;
    }
    if ((*woken = drain_notifies(s->listen)))
        goto out;
    struct pollfd p[2] = {{.fd = PQsocket(s->listen), .events = POLLIN},
                          {.fd = cancel_fd, .events = POLLIN}};
    int ms = timeout_ms < 0 ? 0 : timeout_ms > INT_MAX ? INT_MAX : (int)timeout_ms;
    if (poll(p, 2, ms) <= 0 || !(p[0].revents & (POLLIN | POLLERR | POLLHUP)))
        goto out; /* timed out, cancelled or interrupted */
    if (!PQconsumeInput(s->listen) || PQstatus(s->listen) != CONNECTION_OK) {
        rc = hs_pg_fail(s->listen, NULL, err, "listening for work: the connection was lost");
        PQfinish(s->listen);
        s->listen = NULL;
        goto out;
    }
    *woken = drain_notifies(s->listen);
out:
    pthread_mutex_unlock(&s->listen_lock);
    return rc;
}

/* ---- scheduling and claiming ---- */

int hs_pg_work_bump(struct pg_txn *t, const struct hs_work_trigger *tr, struct hs_error *err)
{
    /* text, bigint, text, int, bigint x3, text, int, boolean */
    struct pg_args a = {.type = {25, 20, 25, 23, 20, 20, 20, 25, 23, 16}};
    hs_pg_text(&a, tr->connection_key);
    hs_pg_int(&a, tr->job_id);
    hs_pg_text(&a, tr->reason);
    hs_pg_int(&a, tr->priority);
    hs_pg_int(&a, tr->now_ms);
    hs_pg_int(&a, tr->due_ms);
    hs_pg_int(&a, tr->rerun_ms > 0 ? tr->rerun_ms : 0);
    hs_pg_text(&a, tr->payload);
    hs_pg_int(&a, HS_WORK_PRIO_INTERACTIVE);
    hs_pg_bool(&a, tr->now);
    /* The payload is the newest trigger's: a later trigger without one means the job may have
     * changed since it was listed. An item being run makes one more pass after rerun_ms; one
     * backing off after a failure keeps its time unless the trigger is interactive or now. */
    int rc = hs_pg_run(
        t,
        "INSERT INTO work_items (connection_key, job_id, reason, priority, generation, attempts, "
        "not_before_ms, trigger_ms, payload, payload_ms, created_at) VALUES ($1, $2, $3, $4, 1, "
        "0, $6, $5, $8, CASE WHEN $8::text IS NULL THEN NULL ELSE $5::bigint END, "
        "clock_timestamp()) ON CONFLICT (connection_key, job_id) DO UPDATE SET "
        "generation = work_items.generation + 1, reason = excluded.reason, "
        "priority = GREATEST(work_items.priority, excluded.priority), "
        "trigger_ms = excluded.trigger_ms, payload = excluded.payload, "
        "payload_ms = excluded.payload_ms, not_before_ms = CASE WHEN "
        "work_items.claimed_by IS NOT NULL AND work_items.lease_until_ms > $5::bigint "
        "THEN $5::bigint + $7::bigint WHEN work_items.attempts > 0 AND excluded.priority < "
        "$9::int AND NOT $10::boolean THEN work_items.not_before_ms "
        "ELSE LEAST(work_items.not_before_ms, excluded.not_before_ms) END",
        &a, NULL, "scheduling work", err);
    return rc ? rc : notify_work(t, err);
}

static int pg_work_schedule(struct hs_store *base, const struct hs_work_trigger *tr,
                            struct hs_error *err)
{
    if (!tr || !tr->connection_key || tr->job_id <= 0 || !tr->reason)
        return hs_fail(err, HS_ERR_INVALID, "work item without a connection, a job or a reason");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "work_schedule", err);
    if (rc)
        return rc;
    rc = hs_pg_work_bump(&t, tr, err);
    return hs_pg_leave(&t, rc, err);
}

/* Due: not_before passed and no live lease ($1 now). */
#define WORK_DUE(p)                                                                                \
    p "not_before_ms <= $1 AND (" p "lease_until_ms IS NULL OR " p "lease_until_ms <= $1)"

/* The claim's row: highest priority, then the connection whose last claim is the oldest, then
 * the oldest due ($4: only that connection's, or NULL). The subselect locks the row it picks and
 * skips rows other claimers hold (SKIP LOCKED), so processes claiming at once each take the
 * next free item instead of queueing on the same row; the UPDATE checks again that the row is
 * still due (a claim that committed in between has leased it). */
static int claim_row(struct pg_txn *t, const char *worker, const char *only, int64_t now_ms,
                     int64_t lease_ms, struct hs_work_item *w, struct hs_error *err)
{
    struct pg_args a = {0};
    hs_pg_int(&a, now_ms);
    hs_pg_text(&a, worker);
    hs_pg_int(&a, lease_ms);
    hs_pg_text(&a, only);
    int rc = hs_pg_one(
        t,
        "UPDATE work_items SET claimed_by = $2, lease_until_ms = $1::bigint + $3, "
        "claims = claims + 1 WHERE " WORK_DUE(
            "") " AND id = (SELECT i.id FROM work_items i "
                "LEFT JOIN work_turns t ON t.connection_key = i.connection_key WHERE " WORK_DUE(
                    "i.") " "
                          "AND ($4::text IS NULL OR i.connection_key = $4::text) ORDER BY "
                          "i.priority DESC, "
                          "COALESCE(t.last_claim, 0), i.not_before_ms, i.id LIMIT 1 "
                          "FOR UPDATE OF i SKIP LOCKED) "
                          "RETURNING " ITEM_COLS,
        &a, item_fill, w, "claiming work", err);
    if (rc == HS_ERR_NOT_FOUND)
        hs_fail(err, HS_ERR_NOT_FOUND, "no work item is due");
    return rc;
}

static int next_due(struct pg_txn *t, const char *only, int64_t now_ms, int64_t *out,
                    struct hs_error *err)
{
    struct pg_args a = {0};
    hs_pg_int(&a, now_ms);
    hs_pg_text(&a, only);
    return hs_pg_int1(t,
                      "SELECT MIN(GREATEST(not_before_ms, COALESCE(lease_until_ms, 0))) FROM "
                      "work_items WHERE NOT (" WORK_DUE("") ") AND ($2::text IS NULL OR "
                                                            "connection_key = $2::text)",
                      &a, out, "reading the next due work", err);
}

/* The claim's other writes: the connection's turn, and the job's queued syncs now running. */
static int claim_after(struct pg_txn *t, const struct hs_work_item *w, struct hs_error *err)
{
    struct pg_args a = {0};
    hs_pg_text(&a, w->connection_key);
    int rc = hs_pg_run(t,
                       "INSERT INTO work_turns (connection_key, last_claim) VALUES ($1, "
                       "(SELECT COALESCE(MAX(last_claim), 0) + 1 FROM work_turns)) "
                       "ON CONFLICT (connection_key) DO UPDATE SET last_claim = "
                       "excluded.last_claim",
                       &a, NULL, "claiming work", err);
    if (!rc) {
        hs_pg_int(&a, w->job_id);
        rc = hs_pg_run(t,
                       "UPDATE syncs SET status = 'running', version = version + 1 WHERE "
                       "connection_key = $1 AND job_id = $2 AND status = 'queued'",
                       &a, NULL, "starting syncs", err);
    }
    return rc;
}

static int pg_work_claim(struct hs_store *base, const char *worker, const char *only_connection,
                         int64_t now_ms, int64_t lease_ms, struct hs_work_item *out,
                         int64_t *next_due_ms, struct hs_error *err)
{
    if (!worker || lease_ms <= 0)
        return hs_fail(err, HS_ERR_INVALID, "work claim without a worker name or a lease");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "work_claim", err);
    if (rc)
        return rc;
    struct hs_work_item w = {0};
    int64_t next = 0;
    rc = claim_row(&t, worker, only_connection, now_ms, lease_ms, &w, err);
    if (rc == HS_ERR_NOT_FOUND) {
        struct hs_error nerr = {0};
        if (next_due(&t, only_connection, now_ms, &next, &nerr) != HS_OK)
            next = 0;
    } else if (!rc) {
        rc = claim_after(&t, &w, err);
    }
    rc = hs_pg_leave(&t, rc, err);
    if (rc) {
        hs_work_item_clear(&w);
        if (rc == HS_ERR_NOT_FOUND && next_due_ms)
            *next_due_ms = next;
        return rc;
    }
    *out = w;
    return HS_OK;
}

static int fence_check(struct pg_txn *t, const struct hs_work_item *w, int64_t now_ms,
                       struct hs_error *err)
{
    struct pg_args a = {0};
    hs_pg_int(&a, w->id);
    hs_pg_int(&a, w->claim);
    hs_pg_int(&a, now_ms);
    int64_t holds = 0;
    /* FOR SHARE only where the transaction may write (a read-only one cannot lock rows). */
    int rc = hs_pg_int1(t,
                        t->write ? "SELECT COUNT(*) FROM (SELECT 1 FROM work_items WHERE id = $1 "
                                   "AND claims = $2 AND claimed_by IS NOT NULL AND "
                                   "lease_until_ms > $3 FOR SHARE) x"
                                 : "SELECT COUNT(*) FROM work_items WHERE id = $1 AND claims = $2 "
                                   "AND claimed_by IS NOT NULL AND lease_until_ms > $3",
                        &a, &holds, "checking the work item's claim", err);
    if (!rc && !holds)
        rc = hs_fail(err, HS_ERR_CONFLICT,
                     "the claim of the work item of job %lld lapsed (its lease ended, or it was "
                     "claimed again): this run commits nothing more",
                     (long long)w->job_id);
    return rc;
}

static int pg_work_fence(struct hs_store *base, const struct hs_work_item *w, int64_t now_ms,
                         struct hs_error *err)
{
    if (!w || w->id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "work_fence without an item");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "work_fence", err);
    if (rc)
        return rc;
    rc = fence_check(&t, w, now_ms, err);
    return hs_pg_leave(&t, rc, err);
}

/* The write transaction of a run's own op on its item, with the claim checked in it. */
static int fenced_enter(struct hs_store *base, struct pg_txn *t, const struct hs_work_item *w,
                        int64_t now_ms, const char *what, struct hs_error *err)
{
    if (!w || w->id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "%s without an item", what);
    int rc = hs_pg_enter(hs_pg_of(base), t, PG_WRITE, what, err);
    if (rc)
        return rc;
    rc = fence_check(t, w, now_ms, err);
    if (rc)
        hs_pg_leave(t, rc, NULL);
    return rc;
}

/* Runs sql with $1 the item's id, $2 and $3 bigints and $4 text (typed, so that a statement may
 * leave some out); *changes (may be NULL) gets the rows changed. */
static int item_exec(struct pg_txn *t, const char *sql, int64_t id, int64_t a2, int64_t a3,
                     const char *text, int64_t *changes, const char *what, struct hs_error *err)
{
    struct pg_args a = {.type = {20, 20, 20, 25}};
    hs_pg_int(&a, id);
    hs_pg_int(&a, a2);
    hs_pg_int(&a, a3);
    hs_pg_text(&a, text);
    return hs_pg_run(t, sql, &a, changes, what, err);
}

static int pg_work_renew(struct hs_store *base, const struct hs_work_item *w, int64_t now_ms,
                         int64_t lease_ms, struct hs_error *err)
{
    if (lease_ms <= 0)
        return hs_fail(err, HS_ERR_INVALID, "work_renew without a lease");
    struct pg_txn t;
    int rc = fenced_enter(base, &t, w, now_ms, "work_renew", err);
    if (rc)
        return rc;
    rc = item_exec(&t, "UPDATE work_items SET lease_until_ms = $2 WHERE id = $1", w->id,
                   now_ms + lease_ms, 0, NULL, NULL, "renewing a lease", err);
    return hs_pg_leave(&t, rc, err);
}

static int pg_work_done(struct hs_store *base, const struct hs_work_item *w, int64_t now_ms,
                        struct hs_error *err)
{
    struct pg_txn t;
    int rc = fenced_enter(base, &t, w, now_ms, "work_done", err);
    if (rc)
        return rc;
    int64_t changes = 0;
    rc = item_exec(&t, "DELETE FROM work_items WHERE id = $1 AND generation = $2", w->id,
                   w->generation, 0, NULL, &changes, "finishing work", err);
    if (!rc && changes == 0) { /* a newer trigger came in while it ran: another pass when due */
        rc = item_exec(&t,
                       "UPDATE work_items SET claimed_by = NULL, lease_until_ms = NULL, "
                       "attempts = 0, last_error = NULL WHERE id = $1",
                       w->id, 0, 0, NULL, NULL, "finishing work", err);
        if (!rc)
            rc = notify_work(&t, err);
    }
    return hs_pg_leave(&t, rc, err);
}

static int pg_work_retry(struct hs_store *base, const struct hs_work_item *w, int64_t now_ms,
                         int64_t not_before_ms, const char *error, struct hs_error *err)
{
    struct pg_txn t;
    int rc = fenced_enter(base, &t, w, now_ms, "work_retry", err);
    if (rc)
        return rc;
    rc = item_exec(&t,
                   "UPDATE work_items SET claimed_by = NULL, lease_until_ms = NULL, "
                   "attempts = attempts + 1, not_before_ms = $2, last_error = $4, "
                   "priority = GREATEST(priority, $3) WHERE id = $1",
                   w->id, not_before_ms, w->priority, error, NULL, "retrying work", err);
    if (!rc)
        rc = notify_work(&t, err);
    return hs_pg_leave(&t, rc, err);
}

static int pg_work_release(struct hs_store *base, const struct hs_work_item *w, int64_t now_ms,
                           struct hs_error *err)
{
    struct pg_txn t;
    int rc = fenced_enter(base, &t, w, now_ms, "work_release", err);
    if (rc)
        return rc;
    rc = item_exec(&t,
                   "UPDATE work_items SET claimed_by = NULL, lease_until_ms = NULL, "
                   "not_before_ms = LEAST(not_before_ms, $2) WHERE id = $1",
                   w->id, now_ms, 0, NULL, NULL, "handing back work", err);
    if (!rc) /* due at once: another process's workers take it */
        rc = notify_work(&t, err);
    return hs_pg_leave(&t, rc, err);
}

static int pg_work_get(struct hs_store *base, const char *connection_key, int64_t job_id,
                       struct hs_work_item *out, struct hs_error *err)
{
    if (!connection_key || job_id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "work_get needs a connection and a job");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "work_get", err);
    if (rc)
        return rc;
    struct hs_work_item w = {0};
    struct pg_args a = {0};
    hs_pg_text(&a, connection_key);
    hs_pg_int(&a, job_id);
    rc = hs_pg_one(&t,
                   "SELECT " ITEM_COLS " FROM work_items WHERE connection_key = $1 AND job_id = $2",
                   &a, item_fill, &w, "reading a work item", err);
    if (rc == HS_ERR_NOT_FOUND)
        hs_fail(err, HS_ERR_NOT_FOUND, "no work item for job %lld", (long long)job_id);
    rc = hs_pg_leave(&t, rc, err);
    if (rc) {
        hs_work_item_clear(&w);
        return rc;
    }
    *out = w;
    return HS_OK;
}

static int pg_work_depth(struct hs_store *base, int64_t *due, int64_t *total,
                         int64_t *oldest_due_ms, int64_t now_ms, struct hs_error *err)
{
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "work_depth", err);
    if (rc)
        return rc;
    int64_t d = 0, n = 0, oldest = 0;
    struct pg_args a = {0};
    hs_pg_int(&a, now_ms);
    rc = hs_pg_int1(&t, "SELECT COUNT(*) FROM work_items WHERE " WORK_DUE(""), &a, &d,
                    "counting work", err);
    if (!rc)
        rc = hs_pg_int1(
            &t, "SELECT COALESCE(MIN(not_before_ms), 0) FROM work_items WHERE " WORK_DUE(""), &a,
            &oldest, "counting work", err);
    if (!rc)
        rc = hs_pg_int1(&t, "SELECT COUNT(*) FROM work_items", NULL, &n, "counting work", err);
    rc = hs_pg_leave(&t, rc, err);
    if (rc)
        return rc;
    if (due)
        *due = d;
    if (total)
        *total = n;
    if (oldest_due_ms)
        *oldest_due_ms = oldest;
    return HS_OK;
}

static int pg_work_release_dead(struct hs_store *base, bool (*dead)(void *ctx, const char *worker),
                                void *ctx, int64_t *released, struct hs_error *err)
{
    if (!dead)
        return hs_fail(err, HS_ERR_INVALID, "work_release_dead needs a test");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE_ALONE, "work_release_dead", err);
    if (rc)
        return rc;
    void *v = NULL;
    size_t n = 0;
    int64_t total = 0;
    rc = hs_pg_rows(&t, "SELECT DISTINCT claimed_by FROM work_items WHERE claimed_by IS NOT NULL",
                    NULL, sizeof(char *), hs_pg_fill_text, hs_pg_clear_text, &v, &n,
                    "releasing dead workers' claims", err);
    char **who = v;
    for (size_t i = 0; !rc && i < n; i++) {
        if (!who[i] || !dead(ctx, who[i]))
            continue;
        struct pg_args a = {0};
        hs_pg_text(&a, who[i]);
        int64_t changes = 0;
        rc = hs_pg_run(&t,
                       "UPDATE work_items SET claimed_by = NULL, lease_until_ms = NULL "
                       "WHERE claimed_by = $1",
                       &a, &changes, "releasing dead workers' claims", err);
        total += changes;
    }
    if (!rc && total)
        rc = notify_work(&t, err);
    for (size_t i = 0; i < n; i++)
        free(who[i]);
    free(who);
    rc = hs_pg_leave(&t, rc, err);
    if (!rc && released)
        *released = total;
    return rc;
}

/* ---- syncs and their progress ---- */

/* A sync's result by its models': synced when every model is, failed when none got anywhere (no
 * result counts as nowhere), partial otherwise. Correlated on syncs.id. */
#define SYNC_RESULT                                                                                \
    "(SELECT CASE WHEN COUNT(*) > 0 AND COUNT(*) = SUM((m.result = 'synced')::int) THEN "          \
    "'synced' WHEN COUNT(*) = SUM(COALESCE(m.result IN ('failed_upstream', 'error'), true)::int) " \
    "THEN 'failed' ELSE 'partial' END FROM sync_models m WHERE m.sync_id = syncs.id)"

/* The job's syncs (connection $1, job $2). */
#define JOB_SYNCS "connection_key = $1 AND job_id = $2"

static int pg_sync_create(struct hs_store *base, const struct hs_sync_row *r, int64_t now_ms,
                          struct hs_error *err)
{
    if (!r || !r->id || !*r->id || !r->connection_key || r->job_id <= 0 || r->n_models == 0)
        return hs_fail(err, HS_ERR_INVALID, "a sync needs an id, a connection, a job and models");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "sync_create", err);
    if (rc)
        return rc;
    struct pg_args a = {0};
    hs_pg_text(&a, r->id);
    hs_pg_text(&a, r->connection_key);
    hs_pg_int(&a, r->job_id);
    hs_pg_int(&a, now_ms);
    rc = hs_pg_run(&t,
                   "INSERT INTO syncs (id, connection_key, job_id, status, version, created_ms) "
                   "VALUES ($1, $2, $3, 'queued', 1, $4)",
                   &a, NULL, "storing the sync", err);
    for (size_t i = 0; !rc && i < r->n_models; i++) {
        struct pg_args m = {0};
        hs_pg_text(&m, r->id);
        hs_pg_int(&m, r->models[i].model_id);
        hs_pg_int(&m, (int64_t)i);
        hs_pg_text(&m, r->models[i].name);
        hs_pg_bool(&m, r->models[i].when_ready);
        rc = hs_pg_run(&t,
                       "INSERT INTO sync_models (sync_id, model_id, position, name, when_ready) "
                       "VALUES ($1, $2, $3, $4, $5)",
                       &m, NULL, "storing the sync's models", err);
    }
    return hs_pg_leave(&t, rc, err);
}

static int sync_fill(struct pg_txn *t, const PGresult *res, int i, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    struct hs_sync_row *r = row;
    r->id = hs_pg_col_text(res, i, 0);
    r->connection_key = hs_pg_col_text(res, i, 1);
    r->job_id = hs_pg_col_int(res, i, 2);
    r->status = hs_pg_col_text(res, i, 3);
    r->result = hs_pg_col_text(res, i, 4);
    r->error_code = hs_pg_col_text(res, i, 5);
    r->error_message = hs_pg_col_text(res, i, 6);
    r->version = hs_pg_col_int(res, i, 7);
    r->created_ms = hs_pg_col_int(res, i, 8);
    r->finished_ms = hs_pg_col_int(res, i, 9);
    return HS_OK;
}

static int sync_model_fill(struct pg_txn *t, const PGresult *r, int i, void *row,
                           struct hs_error *err)
{
    (void)t;
    (void)err;
    *(struct hs_sync_model_row *)row = (struct hs_sync_model_row){
        .model_id = hs_pg_col_int(r, i, 0),
        .name = hs_pg_col_text(r, i, 1),
        .when_ready = hs_pg_col_int(r, i, 2) != 0,
        .result = hs_pg_col_text(r, i, 3),
        .message = hs_pg_col_text(r, i, 4),
        .artifacts_done = hs_pg_col_int(r, i, 5),
        .artifacts_total = hs_pg_col_int(r, i, 6),
        .pdf_sha256 = hs_pg_col_text(r, i, 7),
        .json_sha256 = hs_pg_col_text(r, i, 8),
    };
    return HS_OK;
}

static void sync_model_clear(void *row)
{
    struct hs_sync_model_row *m = row;
    free(m->name);
    free(m->result);
    free(m->message);
    free(m->pdf_sha256);
    free(m->json_sha256);
}

static int pg_sync_get(struct hs_store *base, const char *id, struct hs_sync_row *out,
                       struct hs_error *err)
{
    if (!id)
        return hs_fail(err, HS_ERR_INVALID, "sync_get without an id");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "sync_get", err);
    if (rc)
        return rc;
    struct hs_sync_row r = {0};
    struct pg_args a = {0};
    hs_pg_text(&a, id);
    rc = hs_pg_one(&t,
                   "SELECT id, connection_key, job_id, status, result, error_code, "
                   "error_message, version, created_ms, finished_ms FROM syncs WHERE id = $1",
                   &a, sync_fill, &r, "reading the sync", err);
    if (rc == HS_ERR_NOT_FOUND)
        hs_fail(err, HS_ERR_NOT_FOUND, "no sync %s", id);
    void *v = NULL;
    if (!rc)
        rc = hs_pg_rows(&t,
                        "SELECT model_id, name, when_ready, result, message, artifacts_done, "
                        "artifacts_total, pdf_sha256, json_sha256 FROM sync_models WHERE "
                        "sync_id = $1 ORDER BY position",
                        &a, sizeof *r.models, sync_model_fill, sync_model_clear, &v, &r.n_models,
                        "reading the sync's models", err);
    if (!rc)
        r.models = v;
    rc = hs_pg_leave(&t, rc, err);
    if (rc) {
        hs_sync_row_clear(&r);
        return rc;
    }
    *out = r;
    return HS_OK;
}

static int pg_sync_version(struct hs_store *base, const char *id, int64_t *version,
                           struct hs_error *err)
{
    if (!id)
        return hs_fail(err, HS_ERR_INVALID, "sync_version without an id");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "sync_version", err);
    if (rc)
        return rc;
    int64_t v = 0;
    struct pg_args a = {0};
    hs_pg_text(&a, id);
    rc = hs_pg_int1(&t, "SELECT version FROM syncs WHERE id = $1", &a, &v, "reading the sync", err);
    if (!rc && v == 0) /* versions start at 1 */
        rc = hs_fail(err, HS_ERR_NOT_FOUND, "no sync %s", id);
    rc = hs_pg_leave(&t, rc, err);
    if (!rc)
        *version = v;
    return rc;
}

/* The model's row in each of the job's syncs that has not seen it synced, where a value really
 * changes; the ids of the syncs changed into *ids (a text[] literal, caller frees; NULL when
 * none changed). $1 connection, $2 job, $3 model, $4 name, $5 result, $6 message, $7 done,
 * $8 total, $9 pdf, $10 json. */
#define NEW_RESULT  "COALESCE($5::text, result)"
#define NEW_MESSAGE "CASE WHEN $5::text IS NOT NULL THEN $6::text ELSE message END"
#define NEW_DONE    "CASE WHEN $7::bigint >= 0 THEN $7::bigint ELSE artifacts_done END"
#define NEW_TOTAL   "CASE WHEN $8::bigint >= 0 THEN $8::bigint ELSE artifacts_total END"
static int progress_models(struct pg_txn *t, const char *conn, int64_t job_id,
                           const struct hs_sync_model_row *m, char **ids, struct hs_error *err)
{
    struct pg_args a = {0};
    hs_pg_text(&a, conn);
    hs_pg_int(&a, job_id);
    hs_pg_int(&a, m->model_id);
    hs_pg_text(&a, m->name);
    hs_pg_text(&a, m->result);
    hs_pg_text(&a, m->message);
    hs_pg_int(&a, m->artifacts_done);
    hs_pg_int(&a, m->artifacts_total);
    hs_pg_text(&a, m->pdf_sha256);
    hs_pg_text(&a, m->json_sha256);
    void *v = NULL;
    size_t n = 0;
    int rc = hs_pg_rows(
        t,
        "UPDATE sync_models SET name = COALESCE(name, $4::text), result = " NEW_RESULT ", "
        "message = " NEW_MESSAGE ", artifacts_done = " NEW_DONE ", artifacts_total = " NEW_TOTAL
        ", pdf_sha256 = COALESCE($9::text, pdf_sha256), json_sha256 = COALESCE($10::text, "
        "json_sha256) WHERE model_id = $3 AND COALESCE(result, '') <> 'synced' AND sync_id IN "
        "(SELECT id FROM syncs WHERE " JOB_SYNCS ") AND (name IS NULL AND $4::text IS NOT NULL "
        "OR result IS DISTINCT FROM " NEW_RESULT " OR message IS DISTINCT FROM " NEW_MESSAGE
        " OR artifacts_done IS DISTINCT FROM " NEW_DONE
        " OR artifacts_total IS DISTINCT FROM " NEW_TOTAL
        " OR pdf_sha256 IS DISTINCT FROM COALESCE($9::text, pdf_sha256) OR "
        "json_sha256 IS DISTINCT FROM COALESCE($10::text, json_sha256)) RETURNING sync_id",
        &a, sizeof(char *), hs_pg_fill_text, hs_pg_clear_text, &v, &n,
        "recording a sync's progress", err);
    if (rc)
        return rc;
    char **changed = v;
    struct hs_scope list = {(const char *const *)changed, n};
    *ids = n ? hs_pg_scope_array(&list) : NULL;
    for (size_t i = 0; i < n; i++)
        free(changed[i]);
    free(changed);
    return HS_OK;
}

/* Runs sql with $1 connection, $2 job, $3 now_ms, $4 and $5 text (typed: sql may leave some
 * out); *changes (may be NULL) gets the rows changed. */
static int job_syncs_exec(struct pg_txn *t, const char *sql, const char *conn, int64_t job_id,
                          int64_t now_ms, const char *text, const char *text2, int64_t *changes,
                          struct hs_error *err)
{
    struct pg_args a = {.type = {25, 20, 20, 25, 25}};
    hs_pg_text(&a, conn);
    hs_pg_int(&a, job_id);
    hs_pg_int(&a, now_ms);
    hs_pg_text(&a, text);
    hs_pg_text(&a, text2);
    return hs_pg_run(t, sql, &a, changes, "updating syncs", err);
}

static int pg_sync_progress(struct hs_store *base, const char *connection_key, int64_t job_id,
                            const struct hs_sync_model_row *m, int64_t now_ms, int64_t *changed,
                            int64_t *finished, struct hs_error *err)
{
    if (!connection_key || job_id <= 0 || !m || m->model_id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "sync_progress needs a connection, a job and a model");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "sync_progress", err);
    if (rc)
        return rc;
    char *ids = NULL;
    int64_t n = 0, settled = 0;
    rc = progress_models(&t, connection_key, job_id, m, &ids, err);
    if (!rc && ids) /* $4: the changed ids. A finished sync's result follows its models. */
        rc = job_syncs_exec(&t,
                            "UPDATE syncs SET version = version + 1, result = CASE WHEN status = "
                            "'done' THEN " SYNC_RESULT " ELSE result END WHERE " JOB_SYNCS
                            " AND id = ANY($4::text[])",
                            connection_key, job_id, now_ms, ids, NULL, &n, err);
    if (!rc && ids) /* a running sync whose models all have a result is over */
        rc = job_syncs_exec(&t,
                            "UPDATE syncs SET status = 'done', result = " SYNC_RESULT
                            ", finished_ms = $3, version = version + 1 WHERE " JOB_SYNCS
                            " AND status = 'running' AND NOT EXISTS (SELECT 1 "
                            "FROM sync_models m WHERE m.sync_id = syncs.id AND m.result IS NULL)",
                            connection_key, job_id, now_ms, NULL, NULL, &settled, err);
    free(ids);
    rc = hs_pg_leave(&t, rc, err);
    if (!rc && changed)
        *changed = n;
    if (!rc && finished)
        *finished = settled;
    return rc;
}

static int pg_syncs_finish(struct hs_store *base, const char *connection_key, int64_t job_id,
                           const char *error_code, const char *error_message, int64_t now_ms,
                           int64_t *finished, struct hs_error *err)
{
    if (!connection_key || job_id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "syncs_finish needs a connection and a job");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "syncs_finish", err);
    if (rc)
        return rc;
    int64_t n = 0;
    const char *why = error_message ? error_message : error_code;
    if (error_code) {
        /* The models that got nowhere say why. */
        rc = job_syncs_exec(&t,
                            "UPDATE sync_models SET message = $4 WHERE result IS NULL AND "
                            "sync_id IN (SELECT id FROM syncs WHERE " JOB_SYNCS
                            " AND status = 'running')",
                            connection_key, job_id, now_ms, why, NULL, NULL, err);
        if (!rc)
            rc = job_syncs_exec(&t,
                                "UPDATE syncs SET status = 'failed', result = 'failed', "
                                "error_code = $4, error_message = $5, finished_ms = $3, "
                                "version = version + 1 WHERE " JOB_SYNCS " AND status = 'running'",
                                connection_key, job_id, now_ms, error_code, why, &n, err);
    } else {
        rc = job_syncs_exec(&t,
                            "UPDATE syncs SET status = 'done', result = " SYNC_RESULT
                            ", finished_ms = $3, version = version + 1 WHERE " JOB_SYNCS
                            " AND status = 'running'",
                            connection_key, job_id, now_ms, NULL, NULL, &n, err);
    }
    rc = hs_pg_leave(&t, rc, err);
    if (!rc && finished)
        *finished = n;
    return rc;
}

static int pg_syncs_expire(struct hs_store *base, int64_t before_ms, int64_t *removed,
                           struct hs_error *err)
{
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "syncs_expire", err);
    if (rc)
        return rc;
    int64_t n = 0;
    /* sync_models go with their sync (ON DELETE CASCADE). */
    rc = item_exec(&t, "DELETE FROM syncs WHERE finished_ms IS NOT NULL AND finished_ms < $1",
                   before_ms, 0, 0, NULL, &n, "deleting old syncs", err);
    rc = hs_pg_leave(&t, rc, err);
    if (!rc && removed)
        *removed = n;
    return rc;
}

static int pg_syncs_count(struct hs_store *base, int64_t *queued, int64_t *running,
                          struct hs_error *err)
{
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "syncs_count", err);
    if (rc)
        return rc;
    int64_t q = 0, r = 0;
    rc = hs_pg_int1(&t, "SELECT COUNT(*) FROM syncs WHERE status = 'queued'", NULL, &q,
                    "counting syncs", err);
    if (!rc)
        rc = hs_pg_int1(&t, "SELECT COUNT(*) FROM syncs WHERE status = 'running'", NULL, &r,
                        "counting syncs", err);
    rc = hs_pg_leave(&t, rc, err);
    if (rc)
        return rc;
    if (queued)
        *queued = q;
    if (running)
        *running = r;
    return HS_OK;
}

/* ---- the pending pass's polls ---- */

/* The jobs with open selections, by connection (a selection without one is the default's). */
#define OPEN_JOBS                                                                                  \
    "SELECT DISTINCT COALESCE(NULLIF(connection_key, ''), 'default') AS conn, job_id FROM "        \
    "selections WHERE status IN ('selected', 'pending', 'error')"
#define NO_ITEM(p)                                                                                 \
    "NOT EXISTS (SELECT 1 FROM work_items w WHERE w.connection_key = " p ".conn AND w.job_id = " p \
    ".job_id)"

/* Runs sql with $1 now_ms, $2 first_ms, $3 the skipped connections (text[]), typed. */
static int polls_exec(struct pg_txn *t, const char *sql, int64_t now_ms, int64_t first_ms,
                      const char *skip, struct hs_error *err)
{
    struct pg_args a = {.type = {20, 20, 1009}}; /* bigint, bigint, text[] */
    hs_pg_int(&a, now_ms);
    hs_pg_int(&a, first_ms);
    hs_pg_text(&a, skip);
    return hs_pg_run(t, sql, &a, NULL, "updating pending polls", err);
}

/* Forgets the polls of jobs without open selections and of skipped connections, and starts
 * polling the jobs with open selections and no work item. */
static int polls_refresh(struct pg_txn *t, int64_t now_ms, int64_t first_ms, const char *skip,
                         struct hs_error *err)
{
    int rc = polls_exec(t,
                        "DELETE FROM pending_polls WHERE (connection_key = ANY($3) OR NOT EXISTS ("
                        "SELECT 1 FROM (" OPEN_JOBS ") o WHERE o.conn = "
                        "pending_polls.connection_key AND o.job_id = pending_polls.job_id))",
                        now_ms, first_ms, skip, err);
    if (!rc)
        rc = polls_exec(
            t,
            "INSERT INTO pending_polls (connection_key, job_id, interval_ms, "
            "next_poll_ms) SELECT o.conn, o.job_id, $2, $1 + $2 FROM (" OPEN_JOBS
            ") o WHERE NOT (o.conn = ANY($3)) AND " NO_ITEM("o") " "
                                                                 "ON CONFLICT DO NOTHING",
            now_ms, first_ms, skip, err);
    return rc;
}

static int pending_fill(struct pg_txn *t, const PGresult *r, int i, void *row, struct hs_error *err)
{
    (void)t;
    (void)err;
    *(struct hs_pending_job *)row =
        (struct hs_pending_job){.connection_key = hs_pg_col_text(r, i, 0),
                                .job_id = hs_pg_col_int(r, i, 1),
                                .interval_ms = hs_pg_col_int(r, i, 2)};
    return HS_OK;
}

static void pending_clear(void *row)
{
    free(((struct hs_pending_job *)row)->connection_key);
}

static int pg_pending_poll(struct hs_store *base, int64_t now_ms, int64_t first_ms, int64_t cap_ms,
                           const char *const *skip, size_t n_skip, struct hs_pending_job **out,
                           size_t *n, struct hs_error *err)
{
    if (cap_ms <= 0 || first_ms <= 0)
        return hs_fail(err, HS_ERR_INVALID, "pending_poll needs a first interval and a cap");
    if (first_ms > cap_ms)
        first_ms = cap_ms;
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "pending_poll", err);
    if (rc)
        return rc;
    struct hs_scope list = {skip, n_skip};
    char *skipped = hs_pg_scope_array(&list);
    void *v = NULL;
    size_t nv = 0;
    rc = polls_refresh(&t, now_ms, first_ms, skipped, err);
    if (!rc) {
        struct pg_args a = {0};
        hs_pg_int(&a, now_ms);
        hs_pg_int(&a, cap_ms);
        /* The polls due now whose job has no work item, their interval doubled (capped). */
        rc = hs_pg_rows(&t,
                        "UPDATE pending_polls SET interval_ms = LEAST(interval_ms * 2, $2), "
                        "next_poll_ms = $1 + LEAST(interval_ms * 2, $2) WHERE next_poll_ms <= $1 "
                        "AND NOT EXISTS (SELECT 1 FROM work_items w WHERE w.connection_key = "
                        "pending_polls.connection_key AND w.job_id = pending_polls.job_id) "
                        "RETURNING connection_key, job_id, interval_ms",
                        &a, sizeof **out, pending_fill, pending_clear, &v, &nv,
                        "reading due pending polls", err);
    }
    struct hs_pending_job *due = v;
    for (size_t i = 0; !rc && i < nv; i++) {
        struct hs_work_trigger tr = {.connection_key = due[i].connection_key,
                                     .job_id = due[i].job_id,
                                     .reason = "pending",
                                     .priority = HS_WORK_PRIO_BACKGROUND,
                                     .now_ms = now_ms,
                                     .due_ms = now_ms};
        rc = hs_pg_work_bump(&t, &tr, err);
    }
    rc = hs_pg_leave(&t, rc, err);
    free(skipped);
    if (rc) {
        hs_pending_jobs_free(due, nv);
        return rc;
    }
    *out = due;
    *n = nv;
    return HS_OK;
}

const struct hs_work_ops hs_pg_work_ops = {
    .work_schedule = pg_work_schedule,
    .work_claim = pg_work_claim,
    .work_fence = pg_work_fence,
    .work_renew = pg_work_renew,
    .work_done = pg_work_done,
    .work_retry = pg_work_retry,
    .work_get = pg_work_get,
    .work_depth = pg_work_depth,
    .work_release = pg_work_release,
    .work_release_dead = pg_work_release_dead,
    .work_wait = pg_work_wait,
    .sync_create = pg_sync_create,
    .sync_get = pg_sync_get,
    .sync_version = pg_sync_version,
    .sync_progress = pg_sync_progress,
    .syncs_finish = pg_syncs_finish,
    .syncs_expire = pg_syncs_expire,
    .syncs_count = pg_syncs_count,
    .pending_poll = pg_pending_poll,
};
