/* pg_tokens.c: token pairs and their refresh leases in the PostgreSQL back-end (store/tokens.h),
 * with the protocol of sqlite_tokens.c: a refresh holds a row of `leases` named
 * "token_refresh:<connection key>" until its expiry, never a transaction; the claim and the
 * finish are short transactions, and each claim bumps the row's fence. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg_internal.h"
#include "store/secrets.h"
#include "store/tokens.h"

#define NOW "clock_timestamp()"

static void lease_name(const char *key, char *out, size_t n)
{
    (void)snprintf(out, n, "token_refresh:%s", key);
}

static int token_fill(struct pg_txn *t, const PGresult *r, int i, void *row, struct hs_error *err)
{
    struct hs_token *tok = row;
    const char *key = PQgetvalue(r, i, 6);
    char aad_a[300], aad_r[300];
    hs_secret_token_places(key, aad_a, aad_r, sizeof aad_a);
    tok->expires_at = hs_pg_col_int(r, i, 2);
    tok->generation = hs_pg_col_int(r, i, 3);
    tok->owner_id = hs_pg_col_int(r, i, 4);
    tok->owner_type = hs_pg_col_text(r, i, 5);
    int rc = hs_pg_unseal(t->s, hs_pg_col_null(r, i, 0) ? NULL : PQgetvalue(r, i, 0), aad_a,
                          &tok->access_token, err);
    if (!rc)
        rc = hs_pg_unseal(t->s, hs_pg_col_null(r, i, 1) ? NULL : PQgetvalue(r, i, 1), aad_r,
                          &tok->refresh_token, err);
    return rc;
}

/* The pair of key into *out; HS_ERR_NOT_FOUND (err left alone) when none is stored. */
static int token_read(struct pg_txn *t, const char *key, struct hs_token *out, struct hs_error *err)
{
    struct hs_token tok = {0};
    struct pg_args a = {0};
    hs_pg_text(&a, key);
    int rc = hs_pg_one(t,
                       "SELECT t.access_token, t.refresh_token, t.expires_at, t.generation, "
                       "c.owner_id, c.owner_type, t.connection_key FROM oauth_tokens t "
                       "JOIN connections c ON c.key = t.connection_key "
                       "WHERE t.connection_key = $1",
                       &a, token_fill, &tok, "reading token", err);
    if (rc)
        hs_token_clear(&tok);
    else
        *out = tok;
    return rc;
}

/* Writes the pair, sealed, inside t's write transaction. */
static int token_write(struct pg_txn *t, const char *key, const struct hs_token *tok,
                       struct hs_error *err)
{
    if (!tok->access_token)
        return hs_fail(err, HS_ERR_INVALID, "token pair without an access token");
    char aad_a[300], aad_r[300], *access = NULL, *refresh = NULL;
    hs_secret_token_places(key, aad_a, aad_r, sizeof aad_a);
    int rc = hs_pg_seal(t->s, tok->access_token, aad_a, &access, err);
    if (!rc)
        rc = hs_pg_seal(t->s, tok->refresh_token, aad_r, &refresh, err);
    if (!rc) {
        struct pg_args a = {0};
        hs_pg_text(&a, key);
        hs_pg_id(&a, tok->owner_id);
        hs_pg_text(&a, tok->owner_type);
        rc = hs_pg_run(t,
                       "INSERT INTO connections (key, owner_id, owner_type) VALUES ($1, $2, $3) "
                       "ON CONFLICT (key) DO UPDATE SET owner_id = COALESCE(excluded.owner_id, "
                       "connections.owner_id), owner_type = COALESCE(excluded.owner_type, "
                       "connections.owner_type), updated_at = " NOW,
                       &a, NULL, "saving token", err);
    }
    if (!rc) {
        struct pg_args a = {0};
        hs_pg_text(&a, key);
        hs_pg_text(&a, access);
        hs_pg_text(&a, refresh);
        hs_pg_int(&a, tok->expires_at);
        rc = hs_pg_run(t,
                       "INSERT INTO oauth_tokens (connection_key, access_token, refresh_token, "
                       "expires_at) VALUES ($1, $2, $3, $4) ON CONFLICT (connection_key) DO "
                       "UPDATE SET access_token = excluded.access_token, refresh_token = "
                       "excluded.refresh_token, expires_at = excluded.expires_at, "
                       "generation = oauth_tokens.generation + 1, updated_at = " NOW,
                       &a, NULL, "saving token", err);
    }
    hs_secret_free(access);
    hs_secret_free(refresh);
    return rc;
}

static int pg_token_load(struct hs_store *base, const char *key, struct hs_token *out,
                         struct hs_error *err)
{
    if (!key)
        return hs_fail(err, HS_ERR_INVALID, "token_load without a key");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_READ, "token_load", err);
    if (rc)
        return rc;
    rc = token_read(&t, key, out, err);
    if (rc == HS_ERR_NOT_FOUND)
        hs_fail(err, HS_ERR_NOT_FOUND, "no token stored for connection '%s'", key);
    return hs_pg_leave(&t, rc, err);
}

static int pg_token_save(struct hs_store *base, const char *key, const struct hs_token *tok,
                         struct hs_error *err)
{
    if (!key || !tok)
        return hs_fail(err, HS_ERR_INVALID, "token_save without a key or a pair");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE_ALONE, "token_save", err);
    if (rc)
        return rc;
    return hs_pg_leave(&t, token_write(&t, key, tok, err), err);
}

static int pg_refresh_claim(struct hs_store *base, const char *key, int64_t now_ms,
                            int64_t lease_ms, int64_t *fence, struct hs_token *current,
                            struct hs_error *err)
{
    if (!key || lease_ms <= 0)
        return hs_fail(err, HS_ERR_INVALID, "refresh claim without a key or a lease");
    char name[300];
    lease_name(key, name, sizeof name);
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE_ALONE, "token_refresh_claim", err);
    if (rc)
        return rc;
    int64_t f = 0;
    struct hs_token cur = {0};
    rc = hs_pg_lease_take(&t, name, now_ms, lease_ms, &f, err);
    if (!rc && f == 0)
        rc = hs_fail(err, HS_ERR_BUSY, "another refresh of credential '%s' is in progress", key);
    if (!rc) {
        rc = token_read(&t, key, &cur, err);
        if (rc == HS_ERR_NOT_FOUND)
            rc = HS_OK; /* none stored: the caller refreshes the pair it holds */
    }
    rc = hs_pg_leave(&t, rc, err);
    if (rc) {
        hs_token_clear(&cur);
        return rc;
    }
    *fence = f;
    *current = cur;
    return HS_OK;
}

/* The lease of claim `fence` moved to until_ms (0: released) in t; HS_ERR_CONFLICT when it is
 * not that claim's any more. */
static int lease_move(struct pg_txn *t, const char *key, int64_t fence, int64_t until_ms,
                      struct hs_error *err)
{
    char name[300];
    lease_name(key, name, sizeof name);
    bool moved = false;
    int rc = hs_pg_lease_move(t, name, fence, until_ms, &moved, err);
    if (!rc && !moved)
        rc = hs_fail(err, HS_ERR_CONFLICT,
                     "the refresh lease of credential '%s' is not this refresh's any more (it "
                     "lapsed and was claimed again, or was finished already)",
                     key);
    return rc;
}

static int pg_refresh_finish(struct hs_store *base, const char *key, int64_t fence,
                             const struct hs_token *rotated, struct hs_error *err)
{
    if (!key)
        return hs_fail(err, HS_ERR_INVALID, "refresh finish without a key");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE_ALONE, "token_refresh_finish", err);
    if (rc)
        return rc;
    rc = lease_move(&t, key, fence, 0, err);
    if (!rc && rotated)
        rc = token_write(&t, key, rotated, err);
    return hs_pg_leave(&t, rc, err);
}

static int pg_refresh_renew(struct hs_store *base, const char *key, int64_t fence, int64_t until_ms,
                            struct hs_error *err)
{
    if (!key)
        return hs_fail(err, HS_ERR_INVALID, "refresh renew without a key");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE_ALONE, "token_refresh_renew", err);
    if (rc)
        return rc;
    return hs_pg_leave(&t, lease_move(&t, key, fence, until_ms, err), err);
}

static int pg_token_rejected(struct hs_store *base, const char *key, int64_t generation,
                             struct hs_error *err)
{
    if (!key)
        return hs_fail(err, HS_ERR_INVALID, "token_rejected without a key");
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE_ALONE, "token_rejected", err);
    if (rc)
        return rc;
    struct pg_args a = {0};
    hs_pg_text(&a, key);
    hs_pg_int(&a, generation);
    rc = hs_pg_run(&t,
                   "INSERT INTO token_rejections (connection_key, generation, rejected_at) "
                   "SELECT $1, $2, " NOW " WHERE EXISTS (SELECT 1 FROM connections "
                   "WHERE key = $1) ON CONFLICT (connection_key) DO UPDATE SET "
                   "generation = excluded.generation, rejected_at = excluded.rejected_at",
                   &a, NULL, "recording a refused grant", err);
    return hs_pg_leave(&t, rc, err);
}

const struct hs_token_ops hs_pg_token_ops = {
    .token_load = pg_token_load,
    .token_save = pg_token_save,
    .token_refresh_claim = pg_refresh_claim,
    .token_refresh_renew = pg_refresh_renew,
    .token_refresh_finish = pg_refresh_finish,
    .token_rejected = pg_token_rejected,
};
