/* fake_store.h: an in-memory hs_store with the token operations only, for the client's tests. It
 * checks the refresh lock protocol (begin/end paired, never nested) and can play "another
 * process" that rotates the pair while this one waits for the lock. */
#ifndef HS_TESTS_FAKE_STORE_H
#define HS_TESTS_FAKE_STORE_H

#include <stdbool.h>

#include "store/store.h"

#define FAKE_STORE_KEYS 8

struct fake_store {
    struct hs_store base;
    char *keys[FAKE_STORE_KEYS];
    struct hs_token toks[FAKE_STORE_KEYS];
    int n;
    bool locked;
    int loads, saves, begins, ends, protocol_errors;
    /* When set, token_refresh_begin stores this pair (as another process would) after taking
     * the lock and before re-reading; then it is cleared. */
    struct hs_token rotate_on_begin;
    bool rotate_pending;
    int fail_end; /* token_refresh_end with a pair fails with this code when non-zero */
    /* token_rejected calls: how many, and the last key and generation. */
    int rejections;
    char *rejected_key;
    int64_t rejected_generation;
};

void fake_store_init(struct fake_store *fs);
void fake_store_cleanup(struct fake_store *fs);
/* Seeds a pair (not counted as a save). */
void fake_store_put(struct fake_store *fs, const char *key, const char *access, const char *refresh,
                    int64_t expires_at);
/* The stored pair of key, or NULL. */
const struct hs_token *fake_store_get(struct fake_store *fs, const char *key);
void fake_store_rotate_on_begin(struct fake_store *fs, const char *access, const char *refresh,
                                int64_t expires_at);

#endif
