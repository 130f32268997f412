/* pg_webhooks.c: webhooks and received events in the PostgreSQL back-end (store/webhooks.h), with
 * the rules of sqlite_webhooks.c. event_accept is durable before it returns (its own
 * transaction, committed with synchronous_commit); concurrent deliveries commit side by side on
 * the pool's connections, and PostgreSQL's own group commit shares their WAL flushes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/str.h"
#include "store/pg_internal.h"
#include "store/secrets.h"
#include "store/webhooks.h"
#include "store/work.h"

#define NOW "clock_timestamp()"

/* ---- webhooks ---- */

#define WEBHOOK_COLS                                                                               \
    "id, connection_key, url, hmac_secret, " HS_PG_ISO("verified_at") ", last_error, " HS_PG_ISO(  \
        "created_at") ", local_error"

static void webhook_secret_place(int64_t id, char *aad, size_t n)
{
    char row[24];
    (void)snprintf(row, sizeof row, "%lld", (long long)id);
    hs_secret_webhook_place(row, aad, n);
}

static int webhook_fill(struct pg_txn *t, const PGresult *r, int i, void *row, struct hs_error *err)
{
    struct hs_webhook_row *w = row;
    w->id = hs_pg_col_int(r, i, 0);
    w->connection_key = hs_pg_col_text(r, i, 1);
    w->url = hs_pg_col_text(r, i, 2);
    w->verified_at = hs_pg_col_text(r, i, 4);
    w->last_error = hs_pg_col_text(r, i, 5);
    w->created_at = hs_pg_col_text(r, i, 6);
    w->local_error = hs_pg_col_text(r, i, 7);
    char aad[64];
    webhook_secret_place(w->id, aad, sizeof aad);
    return hs_pg_unseal(t->s, hs_pg_col_null(r, i, 3) ? NULL : PQgetvalue(r, i, 3), aad,
                        &w->hmac_secret, err);
}

static void webhook_clear(void *row)
{
    hs_webhook_row_clear(row);
}

static int pg_webhook_put(struct hs_store *base, const struct hs_webhook_row *w,
                          struct hs_error *err)
{
    if (!w || w->id <= 0 || !w->connection_key || !w->url)
        return hs_fail(err, HS_ERR_INVALID, "webhook without an id, a connection or a URL");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "webhook_put", err);
    if (rc)
        return rc;
    char aad[64], *sealed = NULL;
    webhook_secret_place(w->id, aad, sizeof aad);
    rc = hs_pg_seal(t.s, w->hmac_secret, aad, &sealed, err);
    if (!rc) {
        struct pg_args a = {0};
        hs_pg_int(&a, w->id);
        hs_pg_text(&a, w->connection_key);
        hs_pg_text(&a, w->url);
        hs_pg_text(&a, sealed);
        hs_pg_text(&a, w->verified_at);
        hs_pg_text(&a, w->last_error);
        hs_pg_text(&a, w->created_at);
        /* A row read back from Hover's list has no secret and may not say verified yet:
         * neither erases what is stored. */
        rc = hs_pg_run(&t,
                       "INSERT INTO webhooks (id, connection_key, url, hmac_secret, verified_at, "
                       "last_error, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, "
                       "COALESCE($7::timestamptz, " NOW "), " NOW ") "
                       "ON CONFLICT (id) DO UPDATE SET connection_key = excluded.connection_key, "
                       "url = excluded.url, hmac_secret = COALESCE(excluded.hmac_secret, "
                       "webhooks.hmac_secret), verified_at = COALESCE(excluded.verified_at, "
                       "webhooks.verified_at), last_error = excluded.last_error, "
                       "updated_at = excluded.updated_at",
                       &a, NULL, "storing webhook", err);
    }
    hs_secret_free(sealed);
    return hs_pg_leave(&t, rc, err);
}

static int pg_webhook_get(struct hs_store *base, int64_t id, struct hs_webhook_row *out,
                          struct hs_error *err)
{
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "webhook_get", err);
    if (rc)
        return rc;
    struct hs_webhook_row w = {0};
    struct pg_args a = {0};
    hs_pg_int(&a, id);
    rc = hs_pg_one(&t, "SELECT " WEBHOOK_COLS " FROM webhooks WHERE id = $1", &a, webhook_fill, &w,
                   "reading webhook", err);
    if (rc == HS_ERR_NOT_FOUND)
        hs_fail(err, HS_ERR_NOT_FOUND, "no webhook %lld", (long long)id);
    rc = hs_pg_leave(&t, rc, err);
    if (rc) {
        hs_webhook_row_clear(&w);
        return rc;
    }
    *out = w;
    return HS_OK;
}

static int pg_webhook_list(struct hs_store *base, struct hs_webhook_row **out, size_t *n,
                           struct hs_error *err)
{
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "webhook_list", err);
    if (rc)
        return rc;
    void *v = NULL;
    size_t len = 0;
    rc = hs_pg_rows(&t, "SELECT " WEBHOOK_COLS " FROM webhooks ORDER BY connection_key, id", NULL,
                    sizeof(struct hs_webhook_row), webhook_fill, webhook_clear, &v, &len,
                    "listing webhooks", err);
    rc = hs_pg_leave(&t, rc, err);
    if (rc) {
        hs_webhook_rows_free(v, len);
        return rc;
    }
    *out = v;
    *n = len;
    return HS_OK;
}

static int pg_webhook_delete(struct hs_store *base, int64_t id, struct hs_error *err)
{
    return hs_pg_change_by_id(base, "DELETE FROM webhooks WHERE id = $1", id, 0, NULL,
                              "deleting webhook", "no webhook %lld", err);
}

static int pg_webhook_set_local_error(struct hs_store *base, int64_t id, const char *error,
                                      struct hs_error *err)
{
    return hs_pg_change_by_id(
        base, "UPDATE webhooks SET local_error = $3, updated_at = " NOW " WHERE id = $1", id, 0,
        error, "storing the webhook's error", "no webhook %lld", err);
}

static int pg_webhook_access_get(struct hs_store *base, const char *access_id, int64_t *webhook_id,
                                 struct hs_error *err)
{
    if (!access_id)
        return hs_fail(err, HS_ERR_INVALID, "no access id");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "webhook_access_get", err);
    if (rc)
        return rc;
    int64_t id = 0;
    struct pg_args a = {0};
    hs_pg_text(&a, access_id);
    rc = hs_pg_int1(&t, "SELECT webhook_id FROM webhook_access_ids WHERE access_id = $1", &a, &id,
                    "reading an access id", err);
    if (!rc && id == 0)
        rc = hs_fail(err, HS_ERR_NOT_FOUND, "access id not known");
    rc = hs_pg_leave(&t, rc, err);
    if (!rc)
        *webhook_id = id;
    return rc;
}

static int pg_webhook_access_put(struct hs_store *base, const char *access_id, int64_t webhook_id,
                                 struct hs_error *err)
{
    if (!access_id || webhook_id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "access id without a webhook");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "webhook_access_put", err);
    if (rc)
        return rc;
    struct pg_args a = {0};
    hs_pg_text(&a, access_id);
    hs_pg_int(&a, webhook_id);
    rc = hs_pg_run(&t,
                   "INSERT INTO webhook_access_ids (access_id, webhook_id, updated_at) "
                   "VALUES ($1, $2, " NOW ") ON CONFLICT (access_id) DO UPDATE SET "
                   "webhook_id = excluded.webhook_id, updated_at = excluded.updated_at",
                   &a, NULL, "storing an access id", err);
    return hs_pg_leave(&t, rc, err);
}

/* ---- replays, kept deliveries, verifications (inside a transaction) ---- */

/* Remembers key until until_ms with the event stored for it, in one statement: a key still
 * remembered (a replay) is left alone, *replay set; an expired one is taken over (the retention
 * duty deletes expired keys, not every delivery). */
static int replay_remember(struct pg_txn *t, const char *key, int64_t until_ms, int64_t event_id,
                           int64_t now_ms, bool *replay, struct hs_error *err)
{
    struct pg_args a = {0};
    hs_pg_text(&a, key);
    hs_pg_int(&a, until_ms);
    hs_pg_int(&a, event_id);
    hs_pg_int(&a, now_ms);
    int64_t changes = 0;
    int rc = hs_pg_run(t,
                       "INSERT INTO webhook_replays (signature, expires_ms, event_id) "
                       "VALUES ($1, $2, $3) ON CONFLICT (signature) DO UPDATE SET "
                       "expires_ms = excluded.expires_ms, event_id = excluded.event_id "
                       "WHERE webhook_replays.expires_ms < $4",
                       &a, &changes, "remembering a signature", err);
    if (!rc)
        *replay = changes == 0;
    return rc;
}

static int unverified_trim(struct pg_txn *t, int64_t now_ms, int64_t *removed, struct hs_error *err)
{
    char cutoff[40];
    int64_t c = now_ms - HS_STORE_UNVERIFIED_TTL_MS;
    hs_iso8601_format(c / 1000, (int)(c % 1000), cutoff, sizeof cutoff);
    struct pg_args a = {0};
    hs_pg_text(&a, cutoff);
    hs_pg_int(&a, HS_STORE_UNVERIFIED_MAX);
    int64_t changes = 0;
    int rc = hs_pg_run(t,
                       "DELETE FROM webhook_events WHERE status = 'unverified' AND (received_at < "
                       "$1::timestamptz OR id IN (SELECT id FROM webhook_events WHERE status = "
                       "'unverified' ORDER BY received_at DESC, id DESC OFFSET $2))",
                       &a, &changes, "dropping kept deliveries", err);
    if (!rc && removed)
        *removed = changes;
    return rc;
}

/* Finished verifications are kept a week for the record, then forgotten. */
#define VERIFICATION_KEEP_MS (7 * 86400 * 1000LL)

static int verification_insert(struct pg_txn *t, int64_t webhook_id, const char *code,
                               int64_t event_id, int64_t now_ms, struct hs_error *err)
{
    if (webhook_id <= 0 || !code || !*code)
        return hs_fail(err, HS_ERR_INVALID, "verification without a webhook or a code");
    struct pg_args a = {0};
    hs_pg_int(&a, now_ms - VERIFICATION_KEEP_MS);
    int rc = hs_pg_run(t,
                       "DELETE FROM webhook_verifications WHERE status <> 'pending' AND "
                       "created_ms < $1",
                       &a, NULL, "queueing a verification", err);
    if (rc)
        return rc;
    struct pg_args b = {0};
    hs_pg_int(&b, webhook_id);
    hs_pg_text(&b, code);
    hs_pg_id(&b, event_id);
    hs_pg_int(&b, now_ms);
    return hs_pg_run(t,
                     "INSERT INTO webhook_verifications (webhook_id, code, event_id, status, "
                     "attempts, next_attempt_ms, created_ms) VALUES ($1, $2, $3, 'pending', 0, "
                     "$4, $4) ON CONFLICT (webhook_id, code) DO NOTHING",
                     &b, NULL, "queueing a verification", err);
}

static int pg_events_unverified_trim(struct hs_store *base, int64_t now_ms, int64_t *removed,
                                     struct hs_error *err)
{
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "events_unverified_trim", err);
    if (rc)
        return rc;
    return hs_pg_leave(&t, unverified_trim(&t, now_ms, removed, err), err);
}

static int pg_verification_add(struct hs_store *base, int64_t webhook_id, const char *code,
                               int64_t event_id, int64_t now_ms, struct hs_error *err)
{
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "verification_add", err);
    if (rc)
        return rc;
    return hs_pg_leave(&t, verification_insert(&t, webhook_id, code, event_id, now_ms, err), err);
}

static int verification_fill(struct pg_txn *t, const PGresult *r, int i, void *row,
                             struct hs_error *err)
{
    (void)t;
    (void)err;
    struct hs_verification *v = row;
    v->id = hs_pg_col_int(r, i, 0);
    v->webhook_id = hs_pg_col_int(r, i, 1);
    v->code = hs_pg_col_text(r, i, 2);
    v->event_id = hs_pg_col_int(r, i, 3);
    v->attempts = hs_pg_col_int(r, i, 4);
    v->created_ms = hs_pg_col_int(r, i, 5);
    return HS_OK;
}

static int pg_verification_claim(struct hs_store *base, int64_t now_ms, int64_t lease_ms,
                                 struct hs_verification *out, struct hs_error *err)
{
    if (lease_ms <= 0)
        return hs_fail(err, HS_ERR_INVALID, "verification claim without a lease");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "verification_claim", err);
    if (rc)
        return rc;
    struct hs_verification v = {0};
    struct pg_args a = {0};
    hs_pg_int(&a, now_ms);
    hs_pg_int(&a, lease_ms);
    /* SKIP LOCKED: verifiers of other processes claiming at once take the next row instead of
     * waiting on this one; the UPDATE checks again that it is still due. */
    rc = hs_pg_one(
        &t,
        "UPDATE webhook_verifications SET next_attempt_ms = $1::bigint + $2 "
        "WHERE status = 'pending' AND next_attempt_ms <= $1 AND id = ("
        "SELECT id FROM webhook_verifications WHERE status = 'pending' AND "
        "next_attempt_ms <= $1 ORDER BY next_attempt_ms, id LIMIT 1 FOR UPDATE SKIP LOCKED) "
        "RETURNING id, webhook_id, code, event_id, attempts, created_ms",
        &a, verification_fill, &v, "claiming a verification", err);
    if (rc == HS_ERR_NOT_FOUND)
        hs_fail(err, HS_ERR_NOT_FOUND, "no verification is due");
    rc = hs_pg_leave(&t, rc, err);
    if (rc) {
        hs_verification_clear(&v);
        return rc;
    }
    *out = v;
    return HS_OK;
}

static int pg_verification_finish(struct hs_store *base, int64_t id, const char *status,
                                  int64_t next_attempt_ms, const char *error, struct hs_error *err)
{
    static const char *const ok[] = {"pending", "verified", "rejected", "failed"};
    bool valid = false;
    for (size_t i = 0; status && i < sizeof ok / sizeof ok[0]; i++)
        valid = valid || strcmp(status, ok[i]) == 0;
    if (!valid)
        return hs_fail(err, HS_ERR_INVALID, "unknown verification status");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "verification_finish", err);
    if (rc)
        return rc;
    struct pg_args a = {0};
    hs_pg_int(&a, id);
    hs_pg_text(&a, status);
    hs_pg_int(&a, next_attempt_ms);
    hs_pg_text(&a, error);
    int64_t changes = 0;
    rc = hs_pg_run(&t,
                   "UPDATE webhook_verifications SET status = $2::text, last_error = $4, "
                   "attempts = attempts + (CASE WHEN $2::text = 'verified' THEN 0 ELSE 1 END), "
                   "next_attempt_ms = $3 WHERE id = $1",
                   &a, &changes, "finishing a verification", err);
    if (!rc && changes == 0)
        rc = hs_fail(err, HS_ERR_NOT_FOUND, "no verification %lld", (long long)id);
    return hs_pg_leave(&t, rc, err);
}

/* ---- events ---- */

static bool event_status_valid(const char *status)
{
    static const char *const names[] = {"accepted", "unverified", "processed", "ignored",
                                        "rejected"};
    for (size_t i = 0; status && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(status, names[i]) == 0)
            return true;
    return false;
}

static int event_insert(struct pg_txn *t, const struct hs_event_row *e, int64_t *id,
                        struct hs_error *err)
{
    struct pg_args a = {0};
    hs_pg_id(&a, e->webhook_id);
    hs_pg_text(&a, e->connection_key);
    hs_pg_text(&a, e->event);
    hs_pg_id(&a, e->job_id);
    hs_pg_id(&a, e->model_id);
    hs_pg_text(&a, e->state);
    hs_pg_bytes(&a, e->body, e->body_len);
    hs_pg_text(&a, e->headers_json);
    hs_pg_text(&a, e->status);
    hs_pg_text(&a, e->received_at);
    return hs_pg_int1(t,
                      "INSERT INTO webhook_events (webhook_id, connection_key, event, job_id, "
                      "model_id, state, body, headers, status, received_at) VALUES ($1, $2, $3, "
                      "$4, $5, $6, $7, $8, $9, COALESCE($10::timestamptz, " NOW ")) RETURNING id",
                      &a, id, "storing event", err);
}

/* The delivery's rows in t (event_accept's contract, store/webhooks.h). The event row goes
 * first so that its replay key is written once, with its id: a replay (rare) answers
 * HS_ERR_CONFLICT, the caller rolls back and reports nothing stored. */
static int accept_rows(struct pg_txn *t, const struct hs_event_row *e, bool schedule,
                       int64_t rerun_ms, int64_t now_ms, int64_t *id, struct hs_error *err)
{
    bool replay = false;
    int rc = HS_OK;
    if (e->webhook_must_exist) {
        struct pg_args w = {0};
        hs_pg_int(&w, e->webhook_id);
        int64_t present = 0;
        rc = hs_pg_int1(t, "SELECT COUNT(*) FROM webhooks WHERE id = $1", &w, &present,
                        "reading webhook", err);
        if (!rc && !present)
            rc = hs_fail(err, HS_ERR_NOT_FOUND, "webhook %lld is gone", (long long)e->webhook_id);
    }
    if (!rc)
        rc = event_insert(t, e, id, err);
    if (!rc && e->replay_key)
        rc = replay_remember(t, e->replay_key, e->replay_until_ms, *id, now_ms, &replay, err);
    if (!rc && replay)
        return HS_ERR_CONFLICT;
    if (!rc && schedule && e->job_id > 0 && e->connection_key) {
        struct pg_args a = {0};
        hs_pg_text(&a, e->connection_key);
        int64_t known = 0;
        rc = hs_pg_int1(t, "SELECT COUNT(*) FROM connections WHERE key = $1", &a, &known,
                        "reading connection", err);
        if (!rc && known)
            rc = hs_pg_work_bump(t,
                                 &(struct hs_work_trigger){.connection_key = e->connection_key,
                                                           .job_id = e->job_id,
                                                           .reason = "webhook",
                                                           .priority = HS_WORK_PRIO_BACKGROUND,
                                                           .now_ms = now_ms,
                                                           .due_ms = now_ms,
                                                           .rerun_ms = rerun_ms},
                                 err);
    }
    if (!rc && e->verify_code)
        rc = verification_insert(t, e->webhook_id, e->verify_code, *id, now_ms, err);
    if (!rc && strcmp(e->status, "unverified") == 0)
        rc = unverified_trim(t, now_ms, NULL, err);
    return rc;
}

static int pg_event_accept(struct hs_store *base, const struct hs_event_row *e, bool schedule,
                           int64_t delay_ms, int64_t now_ms, int64_t *event_id,
                           struct hs_error *err)
{
    if (!e || (!e->body && e->body_len) || e->body_len > INT32_MAX ||
        !event_status_valid(e->status))
        return hs_fail(err, HS_ERR_INVALID, "event without a body or a valid status");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE_ALONE, "event_accept", err);
    if (rc)
        return rc;
    int64_t id = 0;
    rc = accept_rows(&t, e, schedule, delay_ms, now_ms, &id, err);
    if (rc == HS_ERR_CONFLICT) { /* a replay: rolled back, nothing stored, id 0 */
        (void)hs_pg_leave(&t, rc, NULL);
        id = 0;
        rc = HS_OK;
    } else {
        rc = hs_pg_leave(&t, rc, err);
    }
    if (!rc && event_id)
        *event_id = id;
    return rc;
}

static int event_fill(struct pg_txn *t, const PGresult *r, int i, void *row, struct hs_error *err)
{
    (void)t;
    struct hs_event_row *e = row;
    e->id = hs_pg_col_int(r, i, 0);
    e->webhook_id = hs_pg_col_int(r, i, 1);
    e->connection_key = hs_pg_col_text(r, i, 2);
    e->event = hs_pg_col_text(r, i, 3);
    e->job_id = hs_pg_col_int(r, i, 4);
    e->model_id = hs_pg_col_int(r, i, 5);
    e->state = hs_pg_col_text(r, i, 6);
    size_t blen = 0;
    unsigned char *b = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 7), &blen);
    if (!b)
        return hs_fail(err, HS_ERR_DB, "reading event %lld: its body cannot be decoded",
                       (long long)e->id);
    /* NUL-terminated for convenience; body_len is the truth (the body may hold NULs). */
    e->body = hs_malloc(blen + 1);
    if (blen)
        memcpy(e->body, b, blen);
    e->body[blen] = '\0';
    e->body_len = blen;
    PQfreemem(b);
    e->headers_json = hs_pg_col_text(r, i, 8);
    e->received_at = hs_pg_col_text(r, i, 9);
    e->status = hs_pg_col_text(r, i, 10);
    return HS_OK;
}

static void event_clear(void *row)
{
    hs_event_row_clear(row);
}

static int pg_events_unverified(struct hs_store *base, int64_t webhook_id,
                                struct hs_event_row **out, size_t *n, struct hs_error *err)
{
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "events_unverified", err);
    if (rc)
        return rc;
    void *v = NULL;
    size_t len = 0;
    struct pg_args a = {0};
    hs_pg_int(&a, webhook_id);
    rc = hs_pg_rows(&t,
                    "SELECT id, webhook_id, connection_key, event, job_id, model_id, state, body, "
                    "headers, " HS_PG_ISO("received_at") ", status FROM webhook_events "
                                                         "WHERE ($1 = 0 OR webhook_id = $1) AND "
                                                         "status = 'unverified' ORDER BY id",
                    &a, sizeof(struct hs_event_row), event_fill, event_clear, &v, &len,
                    "listing unverified events", err);
    rc = hs_pg_leave(&t, rc, err);
    if (rc) {
        hs_event_rows_free(v, len);
        return rc;
    }
    *out = v;
    *n = len;
    return HS_OK;
}

static int pg_event_set_status(struct hs_store *base, int64_t event_id, const char *status,
                               struct hs_error *err)
{
    if (!event_status_valid(status))
        return hs_fail(err, HS_ERR_INVALID, "unknown event status '%s'",
                       status ? status : "(null)");
    return hs_pg_change_by_id(
        base,
        "UPDATE webhook_events SET status = $3::text, processed_at = CASE WHEN "
        "$3::text = 'processed' THEN " NOW " ELSE processed_at END WHERE id = $1",
        event_id, 0, status, "updating event", "no event %lld", err);
}

static int pg_events_last_accepted(struct hs_store *base, const char *connection_key,
                                   int64_t job_id, int64_t *event_id, struct hs_error *err)
{
    if (!connection_key || job_id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "events_last_accepted needs a connection and a job");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "events_last_accepted", err);
    if (rc)
        return rc;
    struct pg_args a = {0};
    hs_pg_text(&a, connection_key);
    hs_pg_int(&a, job_id);
    rc = hs_pg_int1(&t,
                    "SELECT MAX(id) FROM webhook_events WHERE connection_key = $1 AND "
                    "job_id = $2 AND status = 'accepted'",
                    &a, event_id, "reading the last accepted event", err);
    return hs_pg_leave(&t, rc, err);
}

static int pg_events_processed(struct hs_store *base, const char *connection_key, int64_t job_id,
                               int64_t up_to_event_id, struct hs_error *err)
{
    if (!connection_key)
        return hs_fail(err, HS_ERR_INVALID, "events_processed without a connection");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE, "events_processed", err);
    if (rc)
        return rc;
    struct pg_args a = {0};
    hs_pg_text(&a, connection_key);
    hs_pg_int(&a, job_id);
    hs_pg_int(&a, up_to_event_id);
    rc = hs_pg_run(&t,
                   "UPDATE webhook_events SET status = 'processed', processed_at = " NOW " "
                   "WHERE connection_key = $1 AND job_id = $2 AND status = 'accepted' AND "
                   "id <= $3",
                   &a, NULL, "marking events processed", err);
    return hs_pg_leave(&t, rc, err);
}

const struct hs_webhook_ops hs_pg_webhook_ops = {
    .webhook_put = pg_webhook_put,
    .webhook_get = pg_webhook_get,
    .webhook_list = pg_webhook_list,
    .webhook_delete = pg_webhook_delete,
    .webhook_set_local_error = pg_webhook_set_local_error,
    .webhook_access_get = pg_webhook_access_get,
    .webhook_access_put = pg_webhook_access_put,
    .verification_add = pg_verification_add,
    .verification_claim = pg_verification_claim,
    .verification_finish = pg_verification_finish,
    .event_accept = pg_event_accept,
    .events_unverified = pg_events_unverified,
    .event_set_status = pg_event_set_status,
    .events_unverified_trim = pg_events_unverified_trim,
    .events_last_accepted = pg_events_last_accepted,
    .events_processed = pg_events_processed,
};
