/* pg_secrets.c: secrets at rest in the PostgreSQL back-end (secrets.h): the encryption key
 * checked against the one recorded in settings ("secrets_key_id", as in SQLite), and
 * `hoversync store rotate-key`. The database's own access control and TLS (sslmode in the URL)
 * protect the rest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "store/pg_internal.h"

#define KEY_ID_SETTING "secrets_key_id"

int hs_pg_seal(struct pg_store *s, const char *clear, const char *aad, char **out,
               struct hs_error *err)
{
    if (!s->key) {
        *out = clear ? hs_strdup(clear) : NULL;
        return HS_OK;
    }
    return hs_secret_seal(s->key, clear, aad, out, err);
}

int hs_pg_unseal(struct pg_store *s, const char *stored, const char *aad, char **out,
                 struct hs_error *err)
{
    return hs_secret_open(s->key, stored, aad, out, err);
}

static int record_key(struct pg_txn *t, const char *id, struct hs_error *err)
{
    if (!id)
        return hs_pg_run(t, "DELETE FROM settings WHERE key = '" KEY_ID_SETTING "'", NULL, NULL,
                         "recording the key id", err);
    struct pg_args a = {0};
    hs_pg_text(&a, id);
    return hs_pg_run(t,
                     "INSERT INTO settings (key, value, updated_at) VALUES ('" KEY_ID_SETTING
                     "', $1, clock_timestamp()) ON CONFLICT (key) DO UPDATE SET "
                     "value = excluded.value, updated_at = excluded.updated_at",
                     &a, NULL, "recording the key id", err);
}

int hs_pg_key_check(struct pg_store *s, const struct hs_secret_key *key, struct hs_error *err)
{
    struct pg_txn t;
    int rc = hs_pg_enter(s, &t, PG_WRITE_ALONE, "opening the store", err);
    if (rc)
        return rc;
    char *id = NULL;
    rc = hs_pg_one(&t, "SELECT value FROM settings WHERE key = '" KEY_ID_SETTING "' FOR UPDATE",
                   NULL, hs_pg_fill_text, &id, "reading the key id", err);
    if (rc == HS_ERR_NOT_FOUND)
        rc = HS_OK;
    if (!rc && id && !key)
        rc = hs_fail(err, HS_ERR_INVALID,
                     "the store's secrets are encrypted (key %s): set HOVERSYNC_ENCRYPTION_KEY "
                     "to the key they were encrypted with",
                     id);
    else if (!rc && id && strcmp(id, key->id) != 0)
        rc = hs_fail(err, HS_ERR_INVALID,
                     "wrong HOVERSYNC_ENCRYPTION_KEY: the store's secrets are encrypted under key "
                     "%s, this is key %s (hoversync store rotate-key changes the key)",
                     id, key->id);
    else if (!rc && !id && key)
        rc = record_key(&t, key->id, err);
    free(id);
    return hs_pg_leave(&t, rc, err);
}

/* ---- rotate-key ---- */

/* One stored secret: its row, place and column, opened. */
struct secret {
    char *row, *clear;
    int kind; /* 0 access token, 1 refresh token, 2 webhook secret */
};

static int secret_fill(struct pg_txn *t, const PGresult *r, int i, void *out, struct hs_error *err)
{
    struct secret *x = out;
    char aad_a[300], aad_r[300];
    x->row = hs_pg_col_text(r, i, 0);
    x->kind = (int)hs_pg_col_int(r, i, 2);
    if (x->kind == 2)
        hs_secret_webhook_place(x->row, aad_a, sizeof aad_a);
    else
        hs_secret_token_places(x->row, aad_a, aad_r, sizeof aad_a);
    return hs_pg_unseal(t->s, PQgetvalue(r, i, 1), x->kind == 1 ? aad_r : aad_a, &x->clear, err);
}

static void secret_clear(void *p)
{
    struct secret *x = p;
    free(x->row);
    hs_secret_free(x->clear);
}

static const char *const WRITE_SQL[] = {
    "UPDATE oauth_tokens SET access_token = $2 WHERE connection_key = $1",
    "UPDATE oauth_tokens SET refresh_token = $2 WHERE connection_key = $1",
    "UPDATE webhooks SET hmac_secret = $2 WHERE id = $1::bigint",
};

/* Every secret read under the current key and written back sealed under next, in t. */
static int reseal_all(struct pg_txn *t, const struct hs_secret_key *next, int64_t *count,
                      struct hs_error *err)
{
    void *v = NULL;
    size_t n = 0;
    int rc = hs_pg_rows(t,
                        "SELECT connection_key, access_token, 0 FROM oauth_tokens UNION ALL "
                        "SELECT connection_key, refresh_token, 1 FROM oauth_tokens "
                        "WHERE refresh_token IS NOT NULL UNION ALL "
                        "SELECT id::text, hmac_secret, 2 FROM webhooks "
                        "WHERE hmac_secret IS NOT NULL",
                        NULL, sizeof(struct secret), secret_fill, secret_clear, &v, &n,
                        "reading secrets", err);
    struct secret *all = v;
    for (size_t i = 0; !rc && i < n; i++) {
        char aad_a[300], aad_r[300], *sealed = NULL;
        if (all[i].kind == 2)
            hs_secret_webhook_place(all[i].row, aad_a, sizeof aad_a);
        else
            hs_secret_token_places(all[i].row, aad_a, aad_r, sizeof aad_a);
        const char *aad = all[i].kind == 1 ? aad_r : aad_a;
        if (next)
            rc = hs_secret_seal(next, all[i].clear, aad, &sealed, err);
        else
            sealed = all[i].clear ? hs_strdup(all[i].clear) : NULL;
        struct pg_args a = {0};
        hs_pg_text(&a, all[i].row);
        hs_pg_text(&a, sealed);
        if (!rc)
            rc = hs_pg_run(t, WRITE_SQL[all[i].kind], &a, NULL, "storing secrets", err);
        hs_secret_free(sealed);
    }
    /* A re-point waiting for its confirmation (ten minutes at most) holds a grant sealed under
     * the old key: it is dropped, and its user connects again. */
    if (!rc)
        rc = hs_pg_run(t, "DELETE FROM connect_flows WHERE stage = 'confirm'", NULL, NULL,
                       "dropping connect flows", err);
    if (!rc)
        rc = record_key(t, next ? next->id : NULL, err);
    if (!rc)
        *count = (int64_t)n;
    for (size_t i = 0; i < n; i++)
        secret_clear(&all[i]);
    free(all);
    return rc;
}

int hs_pg_secrets_rekey(struct hs_store *base, const char *new_key, int64_t *count,
                        struct hs_error *err)
{
    struct pg_store *s = hs_pg_of(base);
    struct hs_secret_key *next = NULL;
    if (new_key) {
        next = hs_calloc(1, sizeof *next);
        int rc = hs_secret_key_parse(new_key, next, err);
        if (rc) {
            free(next);
            return rc;
        }
    }
    int64_t n = 0;
    struct pg_txn t;
    /* Operations hold key_lock shared for their whole transaction: with it held exclusively
     * from before the reads to after the swap, no operation of this process sees a value
     * sealed under a key it does not hold. */
    int rc = hs_pg_key_exclusive(s, true);
    if (rc) {
        hs_secret_key_clear(next);
        free(next);
        return hs_fail(err, rc, "secrets_rekey called inside a store transaction");
    }
    rc = hs_pg_enter(s, &t, PG_WRITE_ALONE, "secrets_rekey", err);
    if (!rc) {
        rc = reseal_all(&t, next, &n, err);
        rc = hs_pg_leave(&t, rc, err);
    }
    if (!rc) {
        struct hs_secret_key *old = s->key;
        s->key = next;
        next = old; /* freed below */
    }
    hs_pg_key_exclusive(s, false);
    if (!rc && count)
        *count = n;
    hs_secret_key_clear(next);
    free(next);
    return rc;
}
