/* sqlite_secrets.c: secrets at rest in the SQLite back-end (secrets.h): the store file private to
 * its owner, the encryption key checked against the store's, and `hoversync store rotate-key`.
 *
 * The settings row "secrets_key_id" names the key the store's secrets are sealed under; it is
 * written the first time a store is opened with a key, so a later open with another key, or
 * with none, is refused at once with a clear message instead of failing on the first token. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "store/sqlite_internal.h"

#define KEY_ID_SETTING "secrets_key_id"

void hs_sqlite_token_places(const char *key, char *access, char *refresh, size_t n)
{
    hs_secret_token_places(key, access, refresh, n);
}

void hs_sqlite_webhook_secret_place(const char *id, char *aad, size_t n)
{
    hs_secret_webhook_place(id, aad, n);
}

/* Owner read/write only, whatever the umask: the file holds the OAuth tokens, the webhook
 * secrets and every signed delivery. */
static void tighten(const char *path, int fd)
{
    struct stat st;
    int rc = fd >= 0 ? fstat(fd, &st) : stat(path, &st);
    if (rc != 0 || (st.st_mode & 0777) == 0600)
        return;
    if ((fd >= 0 ? fchmod(fd, 0600) : chmod(path, 0600)) != 0) {
        char eb[128];
        hs_warn("store msg=\"cannot make the store file private\" path=%s error=\"%s\"", path,
                strerror_r(errno, eb, sizeof eb));
    }
}

void hs_sqlite_make_private(const char *path)
{
    if (!path || !*path || strcmp(path, ":memory:") == 0 || strncmp(path, "file:", 5) == 0)
        return;
    /* Created here, private, before SQLite creates it with 0644 less the umask; SQLite gives the
     * -wal and -shm files it creates the mode of the database file. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return; /* SQLite reports why it cannot open it */
    tighten(path, fd);
    close(fd);
    static const char *const sfx[] = {"-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
        char *p = hs_aprintf("%s%s", path, sfx[i]);
        if (access(p, F_OK) == 0)
            tighten(p, -1);
        free(p);
    }
}

/* The key id recorded in the store (*id empty when none). */
static int recorded_key(struct sq_txn *t, char id[9], struct hs_error *err)
{
    id[0] = '\0';
    sqlite3_stmt *st = NULL;
    char *v = NULL;
    int rc = hs_sqlite_prep(t, &st, "SELECT value FROM settings WHERE key = '" KEY_ID_SETTING "'",
                            "reading the key id", err);
    if (!rc)
        rc = hs_sqlite_one(t, st, hs_sqlite_fill_text, &v, "reading the key id", err);
    if (rc == HS_ERR_NOT_FOUND)
        rc = HS_OK;
    if (!rc)
        (void)snprintf(id, 9, "%s", v ? v : "");
    free(v);
    return rc;
}

static int record_key(struct sq_txn *t, const char *id, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc =
        hs_sqlite_prep(t, &st,
                       id ? "INSERT INTO settings (key, value, updated_at) VALUES ('" KEY_ID_SETTING
                            "', ?1, " HS_SQL_NOW ") ON CONFLICT(key) DO UPDATE SET "
                            "value = excluded.value, updated_at = excluded.updated_at"
                          : "DELETE FROM settings WHERE key = '" KEY_ID_SETTING "'",
                       "recording the key id", err);
    if (rc)
        return rc;
    if (id)
        hs_sqlite_bind_text(st, 1, id);
    return hs_sqlite_run(t, st, NULL, "recording the key id", err);
}

int hs_sqlite_key_check(struct sqlite_store *s, const struct hs_secret_key *key,
                        struct hs_error *err)
{
    char id[9];
    struct sq_txn t;
    int rc = hs_sqlite_enter(s, &t, SQ_WRITE_ALONE, "opening the store", err);
    if (rc)
        return rc;
    rc = recorded_key(&t, id, err);
    if (!rc && id[0] && !key)
        rc = hs_fail(err, HS_ERR_INVALID,
                     "the store's secrets are encrypted (key %s): set HOVERSYNC_ENCRYPTION_KEY "
                     "to the key they were encrypted with",
                     id);
    else if (!rc && id[0] && strcmp(id, key->id) != 0)
        rc = hs_fail(err, HS_ERR_INVALID,
                     "wrong HOVERSYNC_ENCRYPTION_KEY: the store's secrets are encrypted under key "
                     "%s, this is key %s (hoversync store rotate-key changes the key)",
                     id, key->id);
    else if (!rc && !id[0] && key)
        rc = record_key(&t, key->id, err);
    return hs_sqlite_leave(&t, rc, err);
}

/* ---- rotate-key ---- */

struct secret_row {
    char *row;   /* connection key or webhook id */
    char *a, *b; /* clear values (b: the refresh token; NULL for webhooks) */
};

static void secret_row_clear(void *p)
{
    struct secret_row *r = p;
    free(r->row);
    hs_secret_free(r->a);
    hs_secret_free(r->b);
}

static void rows_free(struct secret_row *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        secret_row_clear(&v[i]);
    free(v);
}

/* The places (associated data) of a row's values. */
static void places(const char *row, bool tokens, char *aad_a, char *aad_b, size_t n)
{
    if (tokens)
        hs_sqlite_token_places(row, aad_a, aad_b, n);
    else
        hs_sqlite_webhook_secret_place(row, aad_a, n);
}

/* A row (row, secret[, secret]) with its values opened under the store's key. */
static int secret_fill(struct sq_txn *t, sqlite3_stmt *st, void *p, struct hs_error *err,
                       bool tokens)
{
    struct secret_row *r = p;
    char aad_a[300], aad_b[300];
    r->row = hs_sqlite_col_text(st, 0);
    places(r->row ? r->row : "", tokens, aad_a, aad_b, sizeof aad_a);
    int rc = hs_sqlite_unseal(t->s, (const char *)sqlite3_column_text(st, 1), aad_a, &r->a, err);
    if (!rc && tokens)
        rc = hs_sqlite_unseal(t->s, (const char *)sqlite3_column_text(st, 2), aad_b, &r->b, err);
    return rc;
}

static int token_fill(struct sq_txn *t, sqlite3_stmt *st, void *p, struct hs_error *err)
{
    return secret_fill(t, st, p, err, true);
}

static int hook_fill(struct sq_txn *t, sqlite3_stmt *st, void *p, struct hs_error *err)
{
    return secret_fill(t, st, p, err, false);
}

static int read_rows(struct sq_txn *t, const char *sql, bool tokens, struct secret_row **out,
                     size_t *n, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    void *v = NULL;
    int rc = hs_sqlite_prep(t, &st, sql, "reading secrets", err);
    if (!rc)
        rc = hs_sqlite_rows(t, st, sizeof(struct secret_row), tokens ? token_fill : hook_fill,
                            secret_row_clear, &v, n, "reading secrets", err);
    if (!rc)
        *out = v;
    return rc;
}

/* Seals a clear value under key (NULL: kept clear). */
static int seal_under(const struct hs_secret_key *key, const char *clear, const char *aad,
                      char **out, struct hs_error *err)
{
    if (!key) {
        *out = clear ? hs_strdup(clear) : NULL;
        return HS_OK;
    }
    return hs_secret_seal(key, clear, aad, out, err);
}

/* Writes the rows back sealed under next. */
static int write_rows(struct sq_txn *t, const char *sql, bool tokens, const struct secret_row *v,
                      size_t n, const struct hs_secret_key *next, struct hs_error *err)
{
    int rc = HS_OK;
    for (size_t i = 0; !rc && i < n; i++) {
        char aad_a[300], aad_b[300], *a = NULL, *b = NULL;
        places(v[i].row, tokens, aad_a, aad_b, sizeof aad_a);
        rc = seal_under(next, v[i].a, aad_a, &a, err);
        if (!rc && tokens)
            rc = seal_under(next, v[i].b, aad_b, &b, err);
        sqlite3_stmt *st = NULL;
        if (!rc)
            rc = hs_sqlite_prep(t, &st, sql, "storing secrets", err);
        if (!rc) {
            hs_sqlite_bind_text(st, 1, v[i].row);
            hs_sqlite_bind_text(st, 2, a);
            if (tokens)
                hs_sqlite_bind_text(st, 3, b);
            rc = hs_sqlite_run(t, st, NULL, "storing secrets", err);
        }
        hs_secret_free(a);
        hs_secret_free(b);
    }
    return rc;
}

/* Reads every secret under the current key and writes it back sealed under next, in t. */
static int reseal_all(struct sq_txn *t, const struct hs_secret_key *next, int64_t *count,
                      struct hs_error *err)
{
    struct secret_row *toks = NULL, *hooks = NULL;
    size_t nt = 0, nh = 0;
    int rc = read_rows(t, "SELECT connection_key, access_token, refresh_token FROM oauth_tokens",
                       true, &toks, &nt, err);
    if (!rc)
        rc = read_rows(t,
                       "SELECT CAST(id AS TEXT), hmac_secret FROM webhooks "
                       "WHERE hmac_secret IS NOT NULL",
                       false, &hooks, &nh, err);
    if (!rc)
        rc = write_rows(t,
                        "UPDATE oauth_tokens SET access_token = ?2, refresh_token = ?3 "
                        "WHERE connection_key = ?1",
                        true, toks, nt, next, err);
    if (!rc)
        rc = write_rows(t, "UPDATE webhooks SET hmac_secret = ?2 WHERE id = CAST(?1 AS INTEGER)",
                        false, hooks, nh, next, err);
    /* A re-point waiting for its confirmation (ten minutes at most) holds a grant sealed under
     * the old key: it is dropped, and its user connects again. */
    if (!rc)
        rc = hs_sqlite_exec(t->db, "DELETE FROM connect_flows WHERE stage = 'confirm'", err);
    if (!rc)
        rc = record_key(t, next ? next->id : NULL, err);
    if (!rc) {
        *count = (int64_t)nh;
        for (size_t i = 0; i < nt; i++)
            *count += (toks[i].a != NULL) + (toks[i].b != NULL);
    }
    rows_free(toks, nt);
    rows_free(hooks, nh);
    return rc;
}

int hs_sqlite_secrets_rekey(struct hs_store *base, const char *new_key, int64_t *count,
                            struct hs_error *err)
{
    struct sqlite_store *s = hs_sqlite_of(base);
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
    struct sq_txn t;
    int rc = hs_sqlite_enter(s, &t, SQ_WRITE_ALONE, "secrets_rekey", err);
    if (!rc) {
        rc = reseal_all(&t, next, &n, err);
        /* No read of this process runs between the commit and the key's swap: each read holds
         * key_lock shared, so it unseals what it reads with the key that sealed it. */
        pthread_rwlock_wrlock(&s->key_lock);
        rc = hs_sqlite_leave(&t, rc, err);
        if (!rc) {
            struct hs_secret_key *old = s->key;
            s->key = next;
            next = old; /* freed below */
        }
        pthread_rwlock_unlock(&s->key_lock);
    }
    if (!rc && count)
        *count = n;
    hs_secret_key_clear(next);
    free(next);
    return rc;
}
