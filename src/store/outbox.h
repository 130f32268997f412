/* outbox.h: CRM notifications (store.h; docs/WEBHOOKS.md), kept until the endpoint acknowledges
 * them, delivered in order per (endpoint, job). */
#ifndef HS_STORE_OUTBOX_H
#define HS_STORE_OUTBOX_H

#include "store/store.h"

/* A notification for a CRM endpoint, kept until the endpoint acknowledges it. */
struct hs_outbox_row {
    int64_t id;
    char *endpoint;
    int64_t job_id;
    int64_t seq_in_job; /* delivered in this order per (endpoint, job) */
    char *idempotency_key;
    char *payload; /* JSON */
    int64_t attempts;
    int64_t next_attempt_ms;
    char *last_error;
};
void hs_outbox_row_clear(struct hs_outbox_row *o);

struct hs_outbox_ops {
    /* add: in the caller's transaction when there is one (the change it tells of commits with
     * it). The same idempotency key is the same message: adding it again does nothing. */
    int (*outbox_add)(struct hs_store *s, const char *endpoint, int64_t job_id, const char *payload,
                      const char *idempotency_key, struct hs_error *err);
    /* The next due message whose earlier messages of the same (endpoint, job) are all
     * delivered; HS_ERR_NOT_FOUND when none. */
    int (*outbox_next)(struct hs_store *s, int64_t now_ms, struct hs_outbox_row *out,
                       struct hs_error *err);
    int (*outbox_delivered)(struct hs_store *s, int64_t id, struct hs_error *err);
    int (*outbox_retry)(struct hs_store *s, int64_t id, int64_t next_attempt_ms, const char *error,
                        struct hs_error *err);
    int (*outbox_depth)(struct hs_store *s, int64_t *pending, struct hs_error *err);
};

#endif
