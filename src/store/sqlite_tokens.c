/* sqlite_tokens.c: token pairs and their refresh leases in the SQLite back-end (store/tokens.h).
 *
 * A refresh holds no transaction while it waits for Hover: it holds a row of `leases`
 * (migration 12), named "token_refresh:<connection key>", until its expiry. The claim and the
 * finish are short write transactions like any other, so the store's writes (webhook intake, a
 * sync's commit) go on while /oauth/token is slow. Each claim bumps the row's fence; finish
 * stores the rotated pair only while the fence is still its claim's (the lease helpers of
 * sqlite_service.c, shared with the service's named leases). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_internal.h"
#include "store/tokens.h"

static void lease_name(const char *key, char *out, size_t n)
{
    (void)snprintf(out, n, "token_refresh:%s", key);
}

static int token_fill(struct sq_txn *t, sqlite3_stmt *st, void *row, struct hs_error *err)
{
    struct hs_token *tok = row;
    const char *key = (const char *)sqlite3_column_text(st, 6);
    char aad_a[300], aad_r[300];
    hs_sqlite_token_places(key ? key : "", aad_a, aad_r, sizeof aad_a);
    tok->expires_at = sqlite3_column_int64(st, 2);
    tok->generation = sqlite3_column_int64(st, 3);
    tok->owner_id = sqlite3_column_int64(st, 4);
    tok->owner_type = hs_sqlite_col_text(st, 5);
    int rc = hs_sqlite_unseal(t->s, (const char *)sqlite3_column_text(st, 0), aad_a,
                              &tok->access_token, err);
    if (!rc)
        rc = hs_sqlite_unseal(t->s, (const char *)sqlite3_column_text(st, 1), aad_r,
                              &tok->refresh_token, err);
    return rc;
}

/* The pair of key into *out; HS_ERR_NOT_FOUND (err left alone) when none is stored. */
static int token_read(struct sq_txn *t, const char *key, struct hs_token *out, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    struct hs_token tok = {0};
    int rc = hs_sqlite_prep(
        t, &st,
        "SELECT t.access_token, t.refresh_token, t.expires_at, t.generation, c.owner_id, "
        "c.owner_type, t.connection_key FROM oauth_tokens t JOIN connections c "
        "ON c.key = t.connection_key WHERE t.connection_key = ?1",
        "reading token", err);
    if (rc)
        return rc;
    hs_sqlite_bind_text(st, 1, key);
    rc = hs_sqlite_one(t, st, token_fill, &tok, "reading token", err);
    if (rc)
        hs_token_clear(&tok);
    else
        *out = tok;
    return rc;
}

/* Writes the pair, sealed, inside t's write transaction. */
static int token_write(struct sq_txn *t, const char *key, const struct hs_token *tok,
                       struct hs_error *err)
{
    static const char *const sql[] = {
        "INSERT INTO connections(key, owner_id, owner_type) VALUES (?1, NULLIF(?2, 0), ?3) "
        "ON CONFLICT(key) DO UPDATE SET owner_id = COALESCE(excluded.owner_id, owner_id), "
        "owner_type = COALESCE(excluded.owner_type, owner_type), "
        "updated_at = " HS_SQL_NOW,
        "INSERT INTO oauth_tokens(connection_key, access_token, refresh_token, expires_at) "
        "VALUES (?1, ?4, ?5, ?6) ON CONFLICT(connection_key) DO UPDATE SET "
        "access_token = excluded.access_token, refresh_token = excluded.refresh_token, "
        "expires_at = excluded.expires_at, generation = generation + 1, "
        "updated_at = " HS_SQL_NOW,
    };
    if (!tok->access_token)
        return hs_fail(err, HS_ERR_INVALID, "token pair without an access token");
    char aad_a[300], aad_r[300], *access = NULL, *refresh = NULL;
    hs_sqlite_token_places(key, aad_a, aad_r, sizeof aad_a);
    int rc = hs_sqlite_seal(t->s, tok->access_token, aad_a, &access, err);
    if (!rc)
        rc = hs_sqlite_seal(t->s, tok->refresh_token, aad_r, &refresh, err);
    for (size_t i = 0; !rc && i < sizeof sql / sizeof sql[0]; i++) {
        sqlite3_stmt *st = NULL;
        rc = hs_sqlite_prep(t, &st, sql[i], "saving token", err);
        if (rc)
            break;
        /* A statement without some of the parameters ignores their binding (SQLITE_RANGE). */
        hs_sqlite_bind_text(st, 1, key);
        sqlite3_bind_int64(st, 2, tok->owner_id);
        hs_sqlite_bind_text(st, 3, tok->owner_type);
        hs_sqlite_bind_text(st, 4, access);
        hs_sqlite_bind_text(st, 5, refresh);
        sqlite3_bind_int64(st, 6, tok->expires_at);
        rc = hs_sqlite_run(t, st, NULL, "saving token", err);
    }
    hs_secret_free(access);
    hs_secret_free(refresh);
    return rc;
}

static int sq_token_load(struct hs_store *base, const char *key, struct hs_token *out,
                         struct hs_error *err)
{
    if (!key)
        return hs_fail(err, HS_ERR_INVALID, "token_load without a key");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_READ, "token_load", err);
    if (rc)
        return rc;
    rc = token_read(&t, key, out, err);
    if (rc == HS_ERR_NOT_FOUND)
        hs_fail(err, HS_ERR_NOT_FOUND, "no token stored for connection '%s'", key);
    return hs_sqlite_leave(&t, rc, err);
}

static int sq_token_save(struct hs_store *base, const char *key, const struct hs_token *tok,
                         struct hs_error *err)
{
    if (!key || !tok)
        return hs_fail(err, HS_ERR_INVALID, "token_save without a key or a pair");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE_ALONE, "token_save", err);
    if (rc)
        return rc;
    return hs_sqlite_leave(&t, token_write(&t, key, tok, err), err);
}

static int sq_refresh_claim(struct hs_store *base, const char *key, int64_t now_ms,
                            int64_t lease_ms, int64_t *fence, struct hs_token *current,
                            struct hs_error *err)
{
    if (!key || lease_ms <= 0)
        return hs_fail(err, HS_ERR_INVALID, "refresh claim without a key or a lease");
    char name[300];
    lease_name(key, name, sizeof name);
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE_ALONE, "token_refresh_claim", err);
    if (rc)
        return rc;
    int64_t f = 0;
    struct hs_token cur = {0};
    rc = hs_sqlite_lease_take(&t, name, now_ms, lease_ms, &f, err);
    if (!rc && f == 0)
        rc = hs_fail(err, HS_ERR_BUSY, "another refresh of credential '%s' is in progress", key);
    if (!rc) {
        rc = token_read(&t, key, &cur, err);
        if (rc == HS_ERR_NOT_FOUND)
            rc = HS_OK; /* none stored: the caller refreshes the pair it holds */
    }
    rc = hs_sqlite_leave(&t, rc, err);
    if (rc) {
        hs_token_clear(&cur);
        return rc;
    }
    *fence = f;
    *current = cur;
    return HS_OK;
}

static int sq_refresh_finish(struct hs_store *base, const char *key, int64_t fence,
                             const struct hs_token *rotated, struct hs_error *err)
{
    if (!key)
        return hs_fail(err, HS_ERR_INVALID, "refresh finish without a key");
    char name[300];
    lease_name(key, name, sizeof name);
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE_ALONE, "token_refresh_finish", err);
    if (rc)
        return rc;
    bool moved = false;
    rc = hs_sqlite_lease_move(&t, name, fence, 0, &moved, err);
    if (!rc && !moved)
        rc = hs_fail(err, HS_ERR_CONFLICT,
                     "the refresh lease of credential '%s' is not this refresh's (it lapsed and "
                     "was claimed again, or was finished already)",
                     key);
    if (!rc && rotated)
        rc = token_write(&t, key, rotated, err);
    return hs_sqlite_leave(&t, rc, err);
}

static int sq_refresh_renew(struct hs_store *base, const char *key, int64_t fence, int64_t until_ms,
                            struct hs_error *err)
{
    if (!key)
        return hs_fail(err, HS_ERR_INVALID, "refresh renew without a key");
    char name[300];
    lease_name(key, name, sizeof name);
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE_ALONE, "token_refresh_renew", err);
    if (rc)
        return rc;
    bool moved = false;
    rc = hs_sqlite_lease_move(&t, name, fence, until_ms, &moved, err);
    if (!rc && !moved)
        rc = hs_fail(err, HS_ERR_CONFLICT,
                     "the refresh lease of credential '%s' is not this refresh's any more", key);
    return hs_sqlite_leave(&t, rc, err);
}

static int sq_token_rejected(struct hs_store *base, const char *key, int64_t generation,
                             struct hs_error *err)
{
    if (!key)
        return hs_fail(err, HS_ERR_INVALID, "token_rejected without a key");
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE_ALONE, "token_rejected", err);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = hs_sqlite_prep(&t, &st,
                        "INSERT INTO token_rejections(connection_key, generation, rejected_at) "
                        "SELECT ?1, ?2, " HS_SQL_NOW " WHERE EXISTS (SELECT 1 FROM connections "
                        "WHERE key = ?1) ON CONFLICT(connection_key) DO UPDATE SET "
                        "generation = excluded.generation, rejected_at = excluded.rejected_at",
                        "recording a refused grant", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, key);
        sqlite3_bind_int64(st, 2, generation);
        rc = hs_sqlite_run(&t, st, NULL, "recording a refused grant", err);
    }
    return hs_sqlite_leave(&t, rc, err);
}

const struct hs_token_ops hs_sqlite_token_ops = {
    .token_load = sq_token_load,
    .token_save = sq_token_save,
    .token_refresh_claim = sq_refresh_claim,
    .token_refresh_renew = sq_refresh_renew,
    .token_refresh_finish = sq_refresh_finish,
    .token_rejected = sq_token_rejected,
};
