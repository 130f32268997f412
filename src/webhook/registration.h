/* registration.h: the service's webhook at Hover, per connection: registering it (the row and
 * its hmac_secret stored before anything else, then the deliveries kept "unverified" settled:
 * their codes queued for the verifier, so the verification race completes in either order),
 * reading its health back from Hover, and the verify-endpoint callbacks the verifier takes. Used by
 * `hoversync webhooks` and by `hoversync serve --register-webhooks`. */
#ifndef HS_WEBHOOK_REGISTRATION_H
#define HS_WEBHOOK_REGISTRATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hover/client.h"
#include "hover/pool.h"
#include "hover/webhooks.h"
#include "hoversync.h"
#include "store/webhooks.h"
#include "webhook/verifier.h"

/* The path Hover delivers to, under the service's public URL. */
#define HS_WEBHOOK_PATH "/webhooks/hover"

/* <public_url>/webhooks/hover (trailing slashes of public_url dropped); caller frees. */
char *hs_webhook_receiver_url(const char *public_url);

/* hs_webhook_verify_fn (verifier.h) with ctx = a struct hs_client * (the CLI's one client). */
int hs_webhook_verify_via_client(void *ctx, const char *connection_key, const char *code,
                                 char **verified_at, struct hs_error *err);
/* hs_webhook_verify_fn with ctx = a struct hs_client_provider * (the service's pool). */
int hs_webhook_verify_via_provider(void *ctx, const char *connection_key, const char *code,
                                   char **verified_at, struct hs_error *err);

enum hs_webhook_outcome {
    HS_WEBHOOK_ALREADY_VERIFIED, /* a verified webhook for this URL was stored: nothing sent */
    HS_WEBHOOK_REGISTERED,       /* a new registration */
    HS_WEBHOOK_CODE_REQUESTED,   /* a stored, unverified one: Hover sends a new code */
};

/* Makes sure connection_key has a webhook to url through client c. Unless force: a stored
 * verified one for url is kept as is, a stored unverified one (with its secret) gets a new code
 * (request_verification; registered anew if Hover no longer knows it). Otherwise registers:
 * the row, secret included, is stored before anything else, then the "unverified" deliveries
 * its secret verifies are settled (their codes queued for the verifier). out (may be NULL)
 * gets the stored row (hs_webhook_row_clear), *verified whether it is verified now. */
int hs_webhook_ensure(struct hs_store *store, struct hs_client *c, const char *connection_key,
                      const char *url, bool force, struct hs_webhook_row *out,
                      enum hs_webhook_outcome *outcome, bool *verified, struct hs_error *err);

/* Hover's list of the connection's webhooks; the stored ones among them get Hover's verified_at
 * and last_error (the health signal). *out: Hover's list (hs_hover_webhooks_free). */
int hs_webhooks_refresh(struct hs_store *store, struct hs_client *c, const char *connection_key,
                        struct hs_hover_webhook **out, size_t *n, struct hs_error *err);

#endif
