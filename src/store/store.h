/* store.h: the storage interface. The engine and the client see only this struct of function
 * pointers; SQLite (store_sqlite.c) is the default back-end and every back-end passes the same
 * test suite (tests/store). Strings returned in out-structs are owned by the caller. */
#ifndef HS_STORE_STORE_H
#define HS_STORE_STORE_H

#include <stdint.h>

#include "hoversync.h"

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

struct hs_store;

struct hs_store_ops {
    const char *name;
    void (*close)(struct hs_store *s);

    /* The token pair of credential `key`; HS_ERR_NOT_FOUND when none is stored. */
    int (*token_load)(struct hs_store *s, const char *key, struct hs_token *out,
                      struct hs_error *err);
    /* Stores a pair (insert or replace), durably, before returning. */
    int (*token_save)(struct hs_store *s, const char *key, const struct hs_token *t,
                      struct hs_error *err);
    /* A refresh of one credential runs between begin and end, and no other refresh of it (in
     * this process or another) can run at the same time: begin waits for an exclusive lock and
     * then re-reads the current pair into *current (HS_ERR_NOT_FOUND if none), so that a caller
     * that waited sees the pair another refresher just stored. end stores `rotated` (durably)
     * and releases the lock; with rotated == NULL it releases the lock and stores nothing. */
    int (*token_refresh_begin)(struct hs_store *s, const char *key, struct hs_token *current,
                               struct hs_error *err);
    int (*token_refresh_end)(struct hs_store *s, const char *key, const struct hs_token *rotated,
                             struct hs_error *err);
};

struct hs_store {
    const struct hs_store_ops *ops;
};

/* Opens (creating if needed) a SQLite store at path and applies pending migrations. */
int hs_store_open_sqlite(const char *path, struct hs_store **out, struct hs_error *err);
void hs_store_close(struct hs_store *s);

#endif
