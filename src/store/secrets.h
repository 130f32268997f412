/* secrets.h: secrets at rest (OAuth tokens, webhook hmac_secrets), sealed by the store itself so
 * that callers only ever see clear values.
 *
 * With a key (HOVERSYNC_ENCRYPTION_KEY: 32 random bytes as 64 hex digits or base64), a value is
 * stored as
 *     hs1:<key id>:<base64 of nonce (12 bytes) | ciphertext | GCM tag (16 bytes)>
 * AES-256-GCM (OpenSSL EVP), a fresh random nonce per value, and the value's place (table,
 * column, row) as associated data, so a sealed value copied to another row does not open. The
 * key id (8 hex digits of a SHA-256 of the key) tells a wrong key from a damaged value. A value
 * without the prefix is clear text: clear and sealed values coexist (a store encrypted later,
 * `hoversync store rotate-key`). Losing the key loses the sealed values: the orgs must be
 * connected again and the webhooks registered again. */
#ifndef HS_STORE_SECRETS_H
#define HS_STORE_SECRETS_H

#include <stdbool.h>

#include "hoversync.h"

#define HS_SECRET_KEY_BYTES 32

struct hs_secret_key {
    unsigned char k[HS_SECRET_KEY_BYTES];
    char id[9]; /* 8 hex digits */
};

/* Parses a key as configured: 64 hex digits, or base64 (standard or URL alphabet, padding
 * optional) of exactly 32 bytes; surrounding blanks are ignored. HS_ERR_INVALID with a message
 * otherwise (the key itself never appears in it). */
int hs_secret_key_parse(const char *text, struct hs_secret_key *out, struct hs_error *err);
/* Wipes a key. */
void hs_secret_key_clear(struct hs_secret_key *k);

/* True for a stored value in the sealed form (by its prefix). */
bool hs_secret_is_sealed(const char *stored);
/* The key id of a sealed value (into id, 9 bytes), false when it is not one. */
bool hs_secret_key_id(const char *stored, char id[9]);

/* Seals clear (may be NULL: *out NULL) under k for the place aad; *out is new. */
int hs_secret_seal(const struct hs_secret_key *k, const char *clear, const char *aad, char **out,
                   struct hs_error *err);
/* The clear value of stored (NULL: *out NULL): a copy of a clear value, or a sealed one opened
 * with k (NULL: no key configured, an error for a sealed value). A wrong key, a damaged value
 * or one moved from its place is HS_ERR_DB with a message that says which. *out is new. */
int hs_secret_open(const struct hs_secret_key *k, const char *stored, const char *aad, char **out,
                   struct hs_error *err);

/* Wipes and frees a string that held a secret. Accepts NULL. */
void hs_secret_free(char *s);

/* The places (associated data) of sealed values, the same in every back-end: a connection's
 * tokens, a webhook's secret (id: the webhook id as text), and the grant of a connect flow
 * waiting for its confirmation (id: the flow's id_sha256). */
void hs_secret_token_places(const char *key, char *access, char *refresh, size_t n);
void hs_secret_webhook_place(const char *id, char *aad, size_t n);
void hs_secret_flow_places(const char *id, char *access, char *refresh, size_t n);

#endif
