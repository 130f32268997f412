/* oauth.h: Hover OAuth tokens (hover-api.md section 2): the token endpoint, the authorization-
 * code exchange of the connect flow, and the refresh protocol of one credential.
 *
 * Refresh tokens rotate: a refresh returns a new pair and the old refresh token dies. So a refresh
 * holds its credential's refresh lease in the token store (store/tokens.h: one refresh at a time
 * per credential, across processes and machines; others wait and re-read), reads the stored pair
 * when it gets the lease (another process may have rotated it already: then that pair is used and
 * nothing is sent), keeps the lease while the token request and its retries run, and has the store
 * persist the new pair durably, releasing the lease, before anything uses it. No transaction is
 * open meanwhile: the store's other writes go on while /oauth/token is slow.
 * Token values are never logged: hs_token_fingerprint() gives a short non-reversible tag. */
#ifndef HS_HOVER_OAUTH_H
#define HS_HOVER_OAUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "core/clock.h"
#include "hover/retry.h"
#include "hover/transport.h"
#include "hoversync.h"
#include "store/tokens.h"

struct hs_limiter;

/* The integration's OAuth settings and what token requests travel through (borrowed). */
struct hs_oauth_app {
    const char *base_url;
    const char *client_id;
    const char *client_secret;
    struct hs_transport *transport;
    const struct hs_clock *clock;        /* NULL: system clock */
    struct hs_limiter *limiter;          /* NULL: no client-side limit */
    const struct hs_retry_policy *retry; /* NULL: defaults; 429/5xx only (see oauth.c) */
    int64_t timeout_ms;                  /* 0: 60000 */
    int64_t requests;                    /* token requests sent (a counter for stats) */
};

/* Parses a token endpoint answer into out (access_token required; expires_at from created_at, or
 * now_s when absent, plus expires_in; 0 when expires_in is absent). */
int hs_oauth_token_from_json(const char *json, size_t len, int64_t now_s, struct hs_token *out,
                             struct hs_error *err);

/* POST {base}/oauth/token. grant_type "refresh_token" (secret = the refresh token) or
 * "authorization_code" (secret = the code, redirect_uri required). invalid_grant ->
 * HS_ERR_INVALID_GRANT with a message telling the user to reconnect; no client id/secret ->
 * HS_ERR_NO_CREDENTIALS. */
int hs_oauth_token_request(struct hs_oauth_app *app, const char *grant_type, const char *secret,
                           const char *redirect_uri, struct hs_token *out, struct hs_error *err);

/* The connect flow's exchange: a code for a pair, saved in the token store under key before
 * returning. out (may be NULL) receives a copy of the pair. */
int hs_oauth_exchange_code(struct hs_oauth_app *app, struct hs_token_store ts, const char *key,
                           const char *code, const char *redirect_uri, struct hs_token *out,
                           struct hs_error *err);

/* The browser URL of the authorize step: {base}/oauth/authorize?client_id=..&redirect_uri=..
 * &response_type=code&state=.. (caller frees). */
char *hs_oauth_authorize_url(const char *base_url, const char *client_id, const char *redirect_uri,
                             const char *state);

/* The token state of one credential, as a client holds it. */
struct hs_oauth_cred {
    struct hs_token_store ts; /* borrowed; ops NULL: none (then no refresh is possible) */
    char *key;
    struct hs_token tok; /* the pair in use; access_token NULL when none is known */
};

/* Loads the stored pair of key; when none is stored and an initial pair is given, saves it
 * (expires_at 0: valid until a 401). No pair at all is not an error here (requests will say
 * HS_ERR_NO_CREDENTIALS). */
int hs_oauth_cred_init(struct hs_oauth_cred *c, struct hs_token_store ts, const char *key,
                       const char *initial_access, const char *initial_refresh,
                       struct hs_error *err);
void hs_oauth_cred_clear(struct hs_oauth_cred *c);
/* Re-reads the stored pair (used when the client has none in memory). */
int hs_oauth_cred_reload(struct hs_oauth_cred *c, struct hs_error *err);
/* True when the access token is known to expire within skew_s of now_s. */
bool hs_oauth_expiring(const struct hs_oauth_cred *c, int64_t now_s, int64_t skew_s);

/* Replaces the access token `stale` (the one that failed or is about to expire; NULL if none)
 * following the protocol above. *refreshed is set true when this call rotated the pair at
 * Hover, false when another refresher had already stored a different pair. */
int hs_oauth_refresh(struct hs_oauth_app *app, struct hs_oauth_cred *c, const char *stale,
                     bool *refreshed, struct hs_error *err);

/* An 8-hex-digit tag of a token for logs (FNV-1a, not reversible in any useful way). */
void hs_token_fingerprint(const char *token, char out[9]);

#endif
