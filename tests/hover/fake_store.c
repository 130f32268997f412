/* fake_store.c: see fake_store.h. */
#include "fake_store.h"

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/str.h"

static int find(struct fake_store *fs, const char *key)
{
    for (int i = 0; i < fs->n; i++)
        if (hs_streq(fs->keys[i], key))
            return i;
    return -1;
}

static void put(struct fake_store *fs, const char *key, const struct hs_token *t)
{
    int i = find(fs, key);
    int64_t gen = 0;
    if (i < 0) {
        if (fs->n == FAKE_STORE_KEYS)
            abort();
        i = fs->n++;
        fs->keys[i] = hs_strdup(key);
    } else {
        gen = fs->toks[i].generation;
        hs_token_clear(&fs->toks[i]);
    }
    hs_token_copy(&fs->toks[i], t);
    fs->toks[i].generation = gen + 1;
}

static int fs_load(struct hs_store *s, const char *key, struct hs_token *out, struct hs_error *err)
{
    struct fake_store *fs = (struct fake_store *)s;
    fs->loads++;
    int i = find(fs, key);
    if (i < 0)
        return hs_fail(err, HS_ERR_NOT_FOUND, "no token for %s", key);
    hs_token_copy(out, &fs->toks[i]);
    return HS_OK;
}

static int fs_save(struct hs_store *s, const char *key, const struct hs_token *t,
                   struct hs_error *err)
{
    (void)err;
    struct fake_store *fs = (struct fake_store *)s;
    fs->saves++;
    put(fs, key, t);
    return HS_OK;
}

static int fs_claim(struct hs_store *s, const char *key, int64_t now_ms, int64_t lease_ms,
                    int64_t *fence, struct hs_token *current, struct hs_error *err)
{
    struct fake_store *fs = (struct fake_store *)s;
    fs->claims++;
    if (fs->held)
        fs->protocol_errors++; /* a second claim of ours while holding the lease */
    if (now_ms <= 0 || lease_ms <= 0)
        fs->protocol_errors++;
    if (fs->rotate_pending) {
        /* Another process holds the lease, and stores its rotated pair meanwhile. */
        put(fs, key, &fs->rotate_pair);
        hs_token_clear(&fs->rotate_pair);
        fs->rotate_pending = false;
        fs->busy_answers++;
        return hs_fail(err, HS_ERR_BUSY, "another refresh of %s is in progress", key);
    }
    fs->held = true;
    *fence = ++fs->fence;
    memset(current, 0, sizeof *current);
    int i = find(fs, key);
    if (i >= 0)
        hs_token_copy(current, &fs->toks[i]);
    return HS_OK;
}

static int fs_renew(struct hs_store *s, const char *key, int64_t fence, int64_t until_ms,
                    struct hs_error *err)
{
    (void)key;
    (void)until_ms;
    struct fake_store *fs = (struct fake_store *)s;
    fs->renews++;
    if (!fs->held || fence != fs->fence) {
        fs->protocol_errors++;
        return hs_fail(err, HS_ERR_CONFLICT, "fake store: not this claim's lease");
    }
    return HS_OK;
}

static int fs_finish(struct hs_store *s, const char *key, int64_t fence,
                     const struct hs_token *rotated, struct hs_error *err)
{
    struct fake_store *fs = (struct fake_store *)s;
    fs->finishes++;
    if (!fs->held || fence != fs->fence) {
        fs->protocol_errors++;
        return hs_fail(err, HS_ERR_CONFLICT, "fake store: not this claim's lease");
    }
    fs->held = false;
    if (rotated) {
        if (fs->fail_finish)
            return hs_fail(err, fs->fail_finish, "fake store: cannot save");
        fs->saves++;
        put(fs, key, rotated);
    }
    return HS_OK;
}

static int fs_rejected(struct hs_store *s, const char *key, int64_t generation,
                       struct hs_error *err)
{
    (void)err;
    struct fake_store *fs = (struct fake_store *)s;
    if (fs->held)
        fs->protocol_errors++; /* recorded only once the refresh lease is released */
    fs->rejections++;
    fs->rejected_generation = generation;
    free(fs->rejected_key);
    fs->rejected_key = hs_strdup(key);
    return HS_OK;
}

static const struct hs_token_ops fake_ops = {
    .token_load = fs_load,
    .token_save = fs_save,
    .token_refresh_claim = fs_claim,
    .token_refresh_renew = fs_renew,
    .token_refresh_finish = fs_finish,
    .token_rejected = fs_rejected,
};

void fake_store_init(struct fake_store *fs)
{
    memset(fs, 0, sizeof *fs);
    fs->base.tokens = &fake_ops;
}

struct hs_token_store fake_store_tokens(struct fake_store *fs)
{
    return hs_store_tokens(&fs->base);
}

void fake_store_cleanup(struct fake_store *fs)
{
    free(fs->rejected_key);
    fs->rejected_key = NULL;
    for (int i = 0; i < fs->n; i++) {
        free(fs->keys[i]);
        hs_token_clear(&fs->toks[i]);
    }
    hs_token_clear(&fs->rotate_pair);
    fs->n = 0;
}

void fake_store_put(struct fake_store *fs, const char *key, const char *access, const char *refresh,
                    int64_t expires_at)
{
    struct hs_token t = {.access_token = (char *)access,
                         .refresh_token = (char *)refresh,
                         .expires_at = expires_at,
                         .owner_id = 463605,
                         .owner_type = (char *)"orgs"};
    put(fs, key, &t);
}

const struct hs_token *fake_store_get(struct fake_store *fs, const char *key)
{
    int i = find(fs, key);
    return i < 0 ? NULL : &fs->toks[i];
}

void fake_store_rotate_elsewhere(struct fake_store *fs, const char *access, const char *refresh,
                                 int64_t expires_at)
{
    hs_token_clear(&fs->rotate_pair);
    struct hs_token t = {.access_token = (char *)access,
                         .refresh_token = (char *)refresh,
                         .expires_at = expires_at,
                         .owner_type = (char *)"orgs"};
    hs_token_copy(&fs->rotate_pair, &t);
    fs->rotate_pending = true;
}
