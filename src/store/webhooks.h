/* webhooks.h: webhooks and received events (store.h; docs/WEBHOOKS.md): the webhooks registered
 * at Hover, the access ids their signatures use, verification codes to send back, and every
 * delivery stored raw before it is acknowledged. */
#ifndef HS_STORE_WEBHOOKS_H
#define HS_STORE_WEBHOOKS_H

#include "store/store.h"

/* A webhook registered at Hover for one connection (org). */
struct hs_webhook_row {
    int64_t id; /* Hover's webhook id */
    char *connection_key;
    char *url;
    char *hmac_secret; /* a secret: never logged */
    char *verified_at; /* NULL until verified */
    char *last_error;  /* Hover's last_error as last read */
    char *created_at;
    char *local_error; /* our own failure with it (a verification code Hover refused for good);
                          webhook_put leaves it alone: webhook_set_local_error writes it */
};
void hs_webhook_row_clear(struct hs_webhook_row *w);
/* Frees an array of rows (webhook_list); NULL is fine. */
void hs_webhook_rows_free(struct hs_webhook_row *v, size_t n);
/* Healthy, as `hoversync status` says: verified, no error from Hover (last_error as last read)
 * and none of ours (local_error). Hover then delivers the connection's events. */
bool hs_webhook_row_healthy(const struct hs_webhook_row *w);

/* A delivery as received, stored raw before it is acknowledged. */
struct hs_event_row {
    int64_t id;
    int64_t webhook_id;
    char *connection_key; /* NULL when the webhook is not known yet (verification race) */
    char *event;          /* "job-state-changed-v2", "model-state-changed", unknown ones too */
    int64_t job_id;       /* 0 when the event names none */
    int64_t model_id;
    char *state;
    char *body; /* raw bytes as received (may hold NULs: use body_len) */
    size_t body_len;
    char *headers_json; /* the signed headers, for audit and late verification */
    char *received_at;
    char *status; /* "accepted", "unverified" (signature not checkable yet), "processed",
                     "ignored" (unknown type, or nothing to do), "rejected" */
    /* event_accept's inputs only (borrowed; reads leave them NULL): */
    const char *replay_key;  /* remembered until replay_until_ms; already remembered: a replay,
                                nothing is stored (see event_accept) */
    int64_t replay_until_ms; /* unix ms */
    const char *verify_code; /* queued for webhook_id in the same transaction (once per code) */
    bool webhook_must_exist; /* refused (HS_ERR_NOT_FOUND) if webhook_id's row is gone */
};
void hs_event_row_clear(struct hs_event_row *e);
/* Frees an array of rows (events_unverified); NULL is fine. */
void hs_event_rows_free(struct hs_event_row *v, size_t n);

/* Deliveries kept "unverified" (no known secret verifies them yet: the verification race) are
 * bounded whoever sends them: at most this many in all (the oldest go first), none older than
 * this. event_accept enforces both when it keeps one; events_unverified_trim on its own. */
#define HS_STORE_UNVERIFIED_MAX    1000
#define HS_STORE_UNVERIFIED_TTL_MS (15 * 60 * 1000LL)

/* A verification code to send to Hover (PUT /api/v2/webhooks/{code}/verify), claimed by
 * background work. */
struct hs_verification {
    int64_t id;
    int64_t webhook_id;
    char *code;
    int64_t event_id; /* the delivery that carried it, 0 when unknown */
    int64_t attempts; /* failed calls so far */
    int64_t created_ms;
};
void hs_verification_clear(struct hs_verification *v);

struct hs_webhook_ops {
    int (*webhook_put)(struct hs_store *s, const struct hs_webhook_row *w, struct hs_error *err);
    int (*webhook_get)(struct hs_store *s, int64_t id, struct hs_webhook_row *out,
                       struct hs_error *err); /* HS_ERR_NOT_FOUND */
    int (*webhook_list)(struct hs_store *s, struct hs_webhook_row **out, size_t *n,
                        struct hs_error *err);
    int (*webhook_delete)(struct hs_store *s, int64_t id, struct hs_error *err);
    /* Our own error with a webhook (NULL clears it); HS_ERR_NOT_FOUND for an unknown id. */
    int (*webhook_set_local_error)(struct hs_store *s, int64_t id, const char *error,
                                   struct hs_error *err);
    /* The webhook whose secret last verified a delivery of this access id (an Authorization
     * id that is not a webhook id); HS_ERR_NOT_FOUND when none. put: insert or replace. */
    int (*webhook_access_get)(struct hs_store *s, const char *access_id, int64_t *webhook_id,
                              struct hs_error *err);
    int (*webhook_access_put)(struct hs_store *s, const char *access_id, int64_t webhook_id,
                              struct hs_error *err);

    /* Verification codes to send to Hover. add: queued, due now, unless (webhook, code) was
     * queued before (then nothing: a code goes to Hover once). claim: the oldest due pending one,
     * leased until now + lease_ms (pushed back, so that another process does not take it);
     * HS_ERR_NOT_FOUND when none is due. finish: status "verified", "rejected" (for good),
     * "failed" (given up) or "pending" again with attempts + 1, due at next_attempt_ms. */
    int (*verification_add)(struct hs_store *s, int64_t webhook_id, const char *code,
                            int64_t event_id, int64_t now_ms, struct hs_error *err);
    int (*verification_claim)(struct hs_store *s, int64_t now_ms, int64_t lease_ms,
                              struct hs_verification *out, struct hs_error *err);
    int (*verification_finish)(struct hs_store *s, int64_t id, const char *status,
                               int64_t next_attempt_ms, const char *error, struct hs_error *err);

    /* Stores a received delivery and, when schedule is true and it names a job of a known
     * connection, inserts or bumps the job's work item (store/work.h work_schedule: due at
     * once, or delay_ms after now when the item is being run), in ONE transaction, durably,
     * before returning: only then may the receiver answer 2xx. In the same transaction:
     * e->replay_key is remembered (expired keys are forgotten), and when it was remembered already
     * nothing at all is stored and *event_id is 0 (a replay: acknowledged, acted on once);
     * e->verify_code is queued (verification_add); a row kept "unverified" drops the kept rows past
     * HS_STORE_UNVERIFIED_MAX / _TTL_MS at now_ms. With e->webhook_must_exist, a
     * delivery whose webhook row is gone, deleted meanwhile by any process, is refused with
     * HS_ERR_NOT_FOUND and nothing is stored (the receiver verifies with a kept copy of the
     * webhook). Refused inside a transaction (store.h). */
    int (*event_accept)(struct hs_store *s, const struct hs_event_row *e, bool schedule,
                        int64_t delay_ms, int64_t now_ms, int64_t *event_id, struct hs_error *err);
    /* Deliveries stored as "unverified" for a webhook id, or all of them with webhook_id 0
     * (the verification race), oldest first. */
    int (*events_unverified)(struct hs_store *s, int64_t webhook_id, struct hs_event_row **out,
                             size_t *n, struct hs_error *err);
    int (*event_set_status)(struct hs_store *s, int64_t event_id, const char *status,
                            struct hs_error *err);
    /* Deletes the kept "unverified" rows received before now_ms - HS_STORE_UNVERIFIED_TTL_MS
     * and the oldest past HS_STORE_UNVERIFIED_MAX; *removed (may be NULL) gets how many. */
    int (*events_unverified_trim)(struct hs_store *s, int64_t now_ms, int64_t *removed,
                                  struct hs_error *err);
    /* The highest id of the accepted events of (connection, job), 0 when none. The event
     * worker reads it before it re-reads the job from Hover, and passes it to events_processed:
     * an event stored later bumped the work item's generation, so the item runs again for it. */
    int (*events_last_accepted)(struct hs_store *s, const char *connection_key, int64_t job_id,
                                int64_t *event_id, struct hs_error *err);
    /* Marks every accepted event of (connection, job) received up to the claim as processed. */
    int (*events_processed)(struct hs_store *s, const char *connection_key, int64_t job_id,
                            int64_t up_to_event_id, struct hs_error *err);
};

#endif
