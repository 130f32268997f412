/* oauth.h: the sandbox's OAuth 2.0 authorization server state: the registered client,
 * authorization codes (single use, 10 minutes) and token pairs (access tokens expire, refresh
 * tokens rotate). Thread-safe. Times are wall-clock unix milliseconds passed by the caller. */
#ifndef HS_SANDBOX_OAUTH_H
#define HS_SANDBOX_OAUTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SB_TOKEN_BUF        48 /* 43 base64url characters of 32 random bytes, NUL, slack */
#define SB_CODE_LIFETIME_MS (10 * 60 * 1000)

struct sb_token_pair {
    char access[SB_TOKEN_BUF];
    char refresh[SB_TOKEN_BUF];
    int64_t expires_in; /* seconds */
    int64_t created_at; /* unix seconds */
    int64_t org_id;
};

enum sb_token_state { SB_TOKEN_OK, SB_TOKEN_UNKNOWN, SB_TOKEN_EXPIRED };

struct sb_token_info {
    char client_id[128];
    int64_t org_id;
};

struct sb_oauth;

struct sb_oauth *sb_oauth_new(const char *client_id, const char *client_secret, int64_t lifetime_s);
void sb_oauth_free(struct sb_oauth *o);
void sb_oauth_set_lifetime(struct sb_oauth *o, int64_t lifetime_s);
int64_t sb_oauth_lifetime(struct sb_oauth *o);
/* The registered client's id (static for the object's life). */
const char *sb_oauth_client_id(const struct sb_oauth *o);
bool sb_oauth_client_known(const struct sb_oauth *o, const char *client_id);
/* Constant-time check of the client's secret. */
bool sb_oauth_client_auth(const struct sb_oauth *o, const char *client_id, const char *secret);

/* A fresh authorization code bound to client, redirect URI and org. */
void sb_oauth_new_code(struct sb_oauth *o, const char *client_id, const char *redirect_uri,
                       int64_t org_id, int64_t now_ms, char out[SB_TOKEN_BUF]);
/* Redeems a code (once). Returns 0 and a new pair, or -1 with a reason for invalid_grant. */
int sb_oauth_redeem_code(struct sb_oauth *o, const char *code, const char *client_id,
                         const char *redirect_uri, int64_t now_ms, struct sb_token_pair *out,
                         const char **why);
/* Exchanges a refresh token (once: it is revoked) for a new pair. Same returns. */
int sb_oauth_refresh(struct sb_oauth *o, const char *refresh, const char *client_id, int64_t now_ms,
                     struct sb_token_pair *out, const char **why);
/* A pair without the browser step (admin route). */
void sb_oauth_mint(struct sb_oauth *o, const char *client_id, int64_t org_id, int64_t now_ms,
                   struct sb_token_pair *out);
/* Looks an access token up; *info is filled for OK and EXPIRED. */
enum sb_token_state sb_oauth_check(struct sb_oauth *o, const char *access, int64_t now_ms,
                                   struct sb_token_info *info);
/* Makes every access token expired; returns how many were live. */
size_t sb_oauth_expire_all(struct sb_oauth *o, int64_t now_ms);

/* The token endpoint's response object. */
json_t *sb_token_pair_json(const struct sb_token_pair *p);

/* n random bytes as base64url without padding into out (size >= 4n/3 + 2). */
void sb_random_token(size_t n, char *out, size_t outn);
void sb_random_bytes(unsigned char *out, size_t n);

#endif
