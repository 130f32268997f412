/* webhooks.h: Hover's webhook API (hover-api.md 4) through the client: list, register, verify,
 * delete, request a new verification code. One registration covers an org (the client's
 * connection). The receiving side is src/webhook/receiver.h. */
#ifndef HS_HOVER_WEBHOOKS_H
#define HS_HOVER_WEBHOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hover/client.h"
#include "hoversync.h"

/* A webhook as Hover shows it. Strings may be NULL (absent or null). */
struct hs_hover_webhook {
    int64_t id;
    int64_t owner_id;
    char *owner_type;
    char *url;
    char *content_type;
    char *created_at;
    char *updated_at;
    char *verified_at; /* NULL until verified */
    char *last_error;  /* the receiver's last failure as Hover saw it; NULL when healthy */
    char *hmac_secret; /* only in the registration's answer: a secret, never logged */
};
void hs_hover_webhook_clear(struct hs_hover_webhook *w);
void hs_hover_webhooks_free(struct hs_hover_webhook *v, size_t n);

/* One webhook object out of JSON (also the {"webhook":{...}} wrapping); HS_ERR_PARSE without a
 * positive id. */
int hs_hover_webhook_from_json(const char *json, size_t len, struct hs_hover_webhook *out,
                               struct hs_error *err);

/* Every webhook of the org, all pages of GET /api/v2/webhooks (by id). *out may be NULL when *n
 * is 0; free with hs_hover_webhooks_free. */
int hs_webhooks_list(struct hs_client *c, struct hs_hover_webhook **out, size_t *n,
                     struct hs_error *err);
/* POST /api/v2/webhooks {"webhook":{"url":url,"content_type":"json"}}: the new webhook, with
 * its hmac_secret (store it before anything else). Not retried after a failure that may have
 * reached Hover (a retry could register twice). */
int hs_webhooks_register(struct hs_client *c, const char *url, struct hs_hover_webhook *out,
                         struct hs_error *err);
/* PUT /api/v2/webhooks/{code}/verify; out (may be NULL) gets the webhook with verified_at.
 * code comes from a delivery's body: anything but letters, digits, '-' and '_' (at most 128) is
 * refused (HS_ERR_INVALID) without a request. */
int hs_webhooks_verify(struct hs_client *c, const char *code, struct hs_hover_webhook *out,
                       struct hs_error *err);
/* DELETE /api/v2/webhooks/{id}. */
int hs_webhooks_delete(struct hs_client *c, int64_t id, struct hs_error *err);
/* POST /api/v2/webhooks/{id}/request_verification: Hover sends a new code. */
int hs_webhooks_request_verification(struct hs_client *c, int64_t id, struct hs_error *err);

/* Whether a verification code is safe to put in a path (see hs_webhooks_verify). */
bool hs_webhook_code_valid(const char *code);

#endif
