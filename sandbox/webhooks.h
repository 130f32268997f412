/* webhooks.h: the sandbox's webhooks (hover-api.md 4): registrations per org with their
 * verification handshake, and a delivery queue served by a small pool of threads that POST signed
 * events (webhook_sign.h) with libcurl, retry failures with exponential backoff, keep last_error
 * up to date, and apply the chaos switches (duplicates, reordering, drops, unknown events). Every
 * delivery attempt is written to the request log (listener "webhook") and to a delivery log of its
 * own. Thread-safe; never holds its lock during network I/O. */
#ifndef HS_SANDBOX_WEBHOOKS_H
#define HS_SANDBOX_WEBHOOKS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "reqlog.h"
#include "webhook_sign.h"

#define SB_WEBHOOK_MAX_ATTEMPTS    25
#define SB_WEBHOOK_RETRY_CAP_MS    (3600LL * 1000)
#define SB_WEBHOOK_TIMEOUT_MS      10000
#define SB_WEBHOOK_RETRY_BASE_MAX  3600000
#define SB_WEBHOOKS_PER_ORG        100
#define SB_WEBHOOK_DELIVERY_RING   20000
#define SB_WEBHOOK_VERIFICATION_EV "webhook-verification-code"

struct sb_webhook_settings {
    int64_t retry_base_ms; /* backoff base: retry n waits base * 2^(n-1), capped at 1 h */
    double duplicate_rate; /* 0..1: chance that an event delivery is sent twice (or more) */
    double drop_rate;      /* 0..1: chance that an event delivery is never sent */
    bool reorder;          /* hold a few deliveries and send them shuffled */
    bool unknown_events;   /* interleave events of types receivers do not know */
    bool verification_before_response; /* registration: deliver the code before answering */
    enum sb_signer signer;             /* which api_auth release's form signs deliveries */
    enum sb_access_id access_id;       /* what the Authorization header names */
};

/* An event for the webhooks of an org. Strings are borrowed. */
struct sb_event {
    const char *type; /* job-state-changed-v2, model-created, model-state-changed, or any */
    int64_t job_id;
    int64_t model_id; /* 0: none (job events) */
    const char *state;
    const char *job_external_identifier; /* NULL: JSON null */
    double estimated_hours;              /* job-state-changed-v2 only */
};

enum sb_webhook_rc {
    SB_WEBHOOK_OK = 0,
    SB_WEBHOOK_NOT_FOUND = -1,
    SB_WEBHOOK_BAD_URL = -2,
    SB_WEBHOOK_BAD_CONTENT_TYPE = -3,
    SB_WEBHOOK_TOO_MANY = -4,
};

struct sb_webhooks;

/* log: the request log (borrowed); seed: the chaos generator's seed. */
struct sb_webhooks *sb_webhooks_new(struct sb_reqlog *log, uint64_t seed,
                                    const struct sb_webhook_settings *st);
/* Starts the delivery threads. 0, or -1 with a message. */
int sb_webhooks_start(struct sb_webhooks *h, char *err, size_t errn);
/* Stops the threads; transfers in flight are aborted, pending deliveries are kept (and freed by
 * sb_webhooks_free). Safe to call twice. */
void sb_webhooks_stop(struct sb_webhooks *h);
void sb_webhooks_free(struct sb_webhooks *h);

void sb_webhooks_get_settings(struct sb_webhooks *h, struct sb_webhook_settings *out);
void sb_webhooks_set_settings(struct sb_webhooks *h, const struct sb_webhook_settings *st);

/* True if url is an http(s) URL on 127.0.0.1, localhost or [::1] (the sandbox sends nowhere else),
 * without user info or fragment, at most SB_WEBHOOK_URI_MAX bytes. */
bool sb_webhook_url_ok(const char *url);

/* POST /api/v2/webhooks: registers url for org and sends the verification code (before returning
 * when verification_before_response is on). *out: the webhook with its hmac_secret (new ref). */
int sb_webhooks_register(struct sb_webhooks *h, int64_t org_id, const char *url,
                         const char *content_type, json_t **out);
/* Every (not deleted) webhook of org, by id, without secrets. New reference. */
json_t *sb_webhooks_list(struct sb_webhooks *h, int64_t org_id);
/* One webhook of org without its secret. */
int sb_webhooks_show(struct sb_webhooks *h, int64_t org_id, int64_t id, json_t **out);
/* PUT /api/v2/webhooks/{code}/verify. Verifying twice with the current code is fine. */
int sb_webhooks_verify(struct sb_webhooks *h, int64_t org_id, const char *code, json_t **out);
/* DELETE /api/v2/webhooks/{id}: pending deliveries are cancelled, retries stop. */
int sb_webhooks_delete(struct sb_webhooks *h, int64_t org_id, int64_t id);
/* POST /api/v2/webhooks/{id}/request_verification: a new code (the old one stops working),
 * delivered like the first. */
int sb_webhooks_request_verification(struct sb_webhooks *h, int64_t org_id, int64_t id,
                                     json_t **out);
/* Deletes every webhook of every org (admin). Returns how many. */
size_t sb_webhooks_clear(struct sb_webhooks *h);

/* Sends events (in this order) to every verified webhook of org, through the chaos switches;
 * unverified webhooks get none (logged as "unverified"). Returns the number of webhooks of the org
 * that the events were for (verified or not). */
size_t sb_webhooks_emit(struct sb_webhooks *h, int64_t org_id, const struct sb_event *ev, size_t n);

/* GET /__sandbox/webhooks: {"webhooks":[...with counters and pending queue depth...]}. */
json_t *sb_webhooks_admin_json(struct sb_webhooks *h);
/* GET /__sandbox/deliveries: {"deliveries":[...],"last_seq":N}. Caller frees. */
char *sb_webhooks_deliveries_dump(struct sb_webhooks *h, int64_t since, size_t limit, size_t *len);
void sb_webhooks_deliveries_clear(struct sb_webhooks *h);

#endif
