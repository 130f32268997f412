/* fake_store.h: an in-memory token store (store/tokens.h) for the client's tests: the client
 * depends on nothing else of the store. It checks the refresh lease protocol (claim, then one
 * finish with the claim's fence, never nested) and can play "another process" that holds the
 * lease and rotates the pair while this one waits. */
#ifndef HS_TESTS_FAKE_STORE_H
#define HS_TESTS_FAKE_STORE_H

#include <stdbool.h>

#include "store/tokens.h"

#define FAKE_STORE_KEYS 8

struct fake_store {
    struct hs_store base; /* its token table only */
    char *keys[FAKE_STORE_KEYS];
    struct hs_token toks[FAKE_STORE_KEYS];
    int n;
    bool held;     /* a claim of ours holds the lease */
    int64_t fence; /* the last claim's */
    int loads, saves, claims, renews, finishes, busy_answers, protocol_errors;
    /* fake_store_rotate_elsewhere: the next claim finds the lease held by another process
     * (HS_ERR_BUSY), which then stores this pair; the claim after gets the lease and that pair. */
    struct hs_token rotate_pair;
    bool rotate_pending;
    int fail_finish; /* token_refresh_finish with a pair fails with this code when non-zero */
    /* token_rejected calls: how many, and the last key and generation. */
    int rejections;
    char *rejected_key;
    int64_t rejected_generation;
};

void fake_store_init(struct fake_store *fs);
void fake_store_cleanup(struct fake_store *fs);
/* The token store handle the client takes. */
struct hs_token_store fake_store_tokens(struct fake_store *fs);
/* Seeds a pair (not counted as a save). */
void fake_store_put(struct fake_store *fs, const char *key, const char *access, const char *refresh,
                    int64_t expires_at);
/* The stored pair of key, or NULL. */
const struct hs_token *fake_store_get(struct fake_store *fs, const char *key);
void fake_store_rotate_elsewhere(struct fake_store *fs, const char *access, const char *refresh,
                                 int64_t expires_at);

#endif
