/* tokens.h: the token store, the one concern the Hover client depends on (store.h). OAuth token
 * pairs per credential (a connected Hover org), and the lease that lets one refresh of a
 * credential run at a time across threads, processes and machines.
 *
 * Refresh tokens rotate: a refresh spends the stored refresh token and gets a new pair, so two
 * refreshers of one credential would invalidate each other, and a rotated pair that is not stored
 * is lost for good. The protocol (src/hover/oauth.c):
 *   1. token_refresh_claim, a short transaction: the credential's refresh lease, free or lapsed,
 *      is taken until now + lease_ms under a new fence number, and the stored pair is read. A
 *      lease held by another claim: HS_ERR_BUSY, and the caller waits and claims again; once it
 *      has the lease it sees the pair the other one stored, and uses that pair if it is not the
 *      stale one (no request at all).
 *   2. the call to Hover's /oauth/token, outside any transaction: the store's writes go on. The
 *      refresher keeps its lease (token_refresh_renew) before each attempt and each wait of the
 *      request's retries, so that a live refresh is never taken over, and a dead one holds the
 *      credential only until its lease lapses.
 *   3. token_refresh_finish, a short transaction: the rotated pair is stored (durably) and the
 *      lease released, only if the lease is still this claim's (its fence); a lease that lapsed
 *      and was claimed again refuses (HS_ERR_CONFLICT) and nothing is stored. */
#ifndef HS_STORE_TOKENS_H
#define HS_STORE_TOKENS_H

#include "store/store.h"

/* An OAuth token pair of one credential (a connected Hover org). */
struct hs_token {
    char *access_token;
    char *refresh_token;
    int64_t expires_at; /* unix seconds; 0 when unknown */
    int64_t owner_id;   /* the org the grant covers; 0 when unknown */
    char *owner_type;
    int64_t generation; /* bumped by every save: a reader can tell that a rotation happened */
};
void hs_token_clear(struct hs_token *t);
void hs_token_copy(struct hs_token *dst, const struct hs_token *src);

struct hs_token_ops {
    /* The token pair of credential `key`; HS_ERR_NOT_FOUND when none is stored. */
    int (*token_load)(struct hs_store *s, const char *key, struct hs_token *out,
                      struct hs_error *err);
    /* Stores a pair (insert or replace), durably, before returning. */
    int (*token_save)(struct hs_store *s, const char *key, const struct hs_token *t,
                      struct hs_error *err);
    /* Step 1 above. now_ms: the caller's wall clock (unix ms). *fence gets the claim's number
     * (for finish); *current the stored pair, or all zero (access_token NULL) when none is
     * stored. HS_ERR_BUSY, and nothing else, while another claim's lease holds. Durable. */
    int (*token_refresh_claim)(struct hs_store *s, const char *key, int64_t now_ms,
                               int64_t lease_ms, int64_t *fence, struct hs_token *current,
                               struct hs_error *err);
    /* Moves the lease of claim `fence` to until_ms (unix ms), lapsed or not; HS_ERR_CONFLICT
     * when another claim took it meanwhile. */
    int (*token_refresh_renew)(struct hs_store *s, const char *key, int64_t fence, int64_t until_ms,
                               struct hs_error *err);
    /* Step 3 above: stores `rotated` (NULL: nothing) and releases the lease of claim `fence`.
     * HS_ERR_CONFLICT when the lease is not that claim's any more (nothing stored). Durable. */
    int (*token_refresh_finish)(struct hs_store *s, const char *key, int64_t fence,
                                const struct hs_token *rotated, struct hs_error *err);
    /* Hover refused the refresh token of key's pair of this generation (invalid_grant): the
     * connection needs a reconnect (hs_connection_row.reconnect_required, store/service.h)
     * until another pair is saved. Durable. */
    int (*token_rejected)(struct hs_store *s, const char *key, int64_t generation,
                          struct hs_error *err);
};

/* The token store as the Hover client holds it: the concern's operations and the store they
 * run on (ops NULL: no store; then the client can neither keep nor refresh a pair). */
struct hs_token_store {
    const struct hs_token_ops *ops;
    struct hs_store *store;
};

static inline struct hs_token_store hs_store_tokens(struct hs_store *s)
{
    struct hs_token_store ts = {s ? s->tokens : NULL, s};
    return ts;
}

#endif
