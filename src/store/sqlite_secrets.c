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
    (void)snprintf(access, n, "oauth_tokens.access_token:%s", key);
    (void)snprintf(refresh, n, "oauth_tokens.refresh_token:%s", key);
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

/* The key id recorded in the store (*id empty when none). Under s->lock. */
static int recorded_key(struct sqlite_store *s, char id[9], struct hs_error *err)
{
    id[0] = '\0';
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(s, &st, "SELECT value FROM settings WHERE key = '" KEY_ID_SETTING "'",
                            "reading the key id", err);
    if (rc)
        return rc;
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(st, 0);
        (void)snprintf(id, 9, "%s", v ? (const char *)v : "");
    } else if (src != SQLITE_DONE) {
        rc = hs_sqlite_fail(s, src, err, "reading the key id");
    }
    sqlite3_finalize(st);
    return rc;
}

static int record_key(struct sqlite_store *s, const char *id, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc =
        hs_sqlite_prep(s, &st,
                       id ? "INSERT INTO settings (key, value, updated_at) VALUES ('" KEY_ID_SETTING
                            "', ?1, " HS_SQL_NOW ") ON CONFLICT(key) DO UPDATE SET "
                            "value = excluded.value, updated_at = excluded.updated_at"
                          : "DELETE FROM settings WHERE key = '" KEY_ID_SETTING "'",
                       "recording the key id", err);
    if (rc)
        return rc;
    if (id)
        hs_sqlite_bind_text(st, 1, id);
    return hs_sqlite_run(s, st, NULL, "recording the key id", err);
}

int hs_sqlite_key_check(struct sqlite_store *s, const struct hs_secret_key *key,
                        struct hs_error *err)
{
    char id[9];
    hs_sqlite_lock(s);
    int rc = recorded_key(s, id, err);
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
        rc = record_key(s, key->id, err);
    hs_sqlite_unlock(s);
    return rc;
}

/* ---- rotate-key ---- */

struct secret_row {
    char *row;   /* connection key or webhook id */
    char *a, *b; /* clear values (b: the refresh token; NULL for webhooks) */
};

static void rows_free(struct secret_row *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].row);
        hs_secret_free(v[i].a);
        hs_secret_free(v[i].b);
    }
    free(v);
}

/* Every row of sql (row, secret[, secret]) with its values opened under s->key. */
static int read_rows(struct sqlite_store *s, const char *sql, bool tokens, struct secret_row **out,
                     size_t *n, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    struct secret_row *v = NULL;
    size_t len = 0;
    int rc = hs_sqlite_prep(s, &st, sql, "reading secrets", err);
    while (!rc) {
        int src = sqlite3_step(st);
        if (src == SQLITE_DONE)
            break;
        if (src != SQLITE_ROW) {
            rc = hs_sqlite_fail(s, src, err, "reading secrets");
            break;
        }
        v = hs_realloc(v, (len + 1) * sizeof *v);
        struct secret_row *r = &v[len++];
        memset(r, 0, sizeof *r);
        r->row = hs_sqlite_col_text(st, 0);
        char aad_a[300], aad_b[300];
        if (tokens)
            hs_sqlite_token_places(r->row, aad_a, aad_b, sizeof aad_a);
        else
            (void)snprintf(aad_a, sizeof aad_a, "webhooks.hmac_secret:%s", r->row);
        rc = hs_sqlite_unseal(s, (const char *)sqlite3_column_text(st, 1), aad_a, &r->a, err);
        if (!rc && tokens)
            rc = hs_sqlite_unseal(s, (const char *)sqlite3_column_text(st, 2), aad_b, &r->b, err);
    }
    sqlite3_finalize(st);
    if (rc) {
        rows_free(v, len);
        return rc;
    }
    *out = v;
    *n = len;
    return HS_OK;
}

/* Writes the rows back sealed under s->key (already the new one). */
static int write_rows(struct sqlite_store *s, const char *sql, bool tokens,
                      const struct secret_row *v, size_t n, struct hs_error *err)
{
    int rc = HS_OK;
    for (size_t i = 0; !rc && i < n; i++) {
        char aad_a[300], aad_b[300], *a = NULL, *b = NULL;
        if (tokens)
            hs_sqlite_token_places(v[i].row, aad_a, aad_b, sizeof aad_a);
        else
            (void)snprintf(aad_a, sizeof aad_a, "webhooks.hmac_secret:%s", v[i].row);
        rc = hs_sqlite_seal(s, v[i].a, aad_a, &a, err);
        if (!rc && tokens)
            rc = hs_sqlite_seal(s, v[i].b, aad_b, &b, err);
        sqlite3_stmt *st = NULL;
        if (!rc)
            rc = hs_sqlite_prep(s, &st, sql, "storing secrets", err);
        if (!rc) {
            hs_sqlite_bind_text(st, 1, v[i].row);
            hs_sqlite_bind_text(st, 2, a);
            if (tokens)
                hs_sqlite_bind_text(st, 3, b);
            rc = hs_sqlite_run(s, st, NULL, "storing secrets", err);
        }
        hs_secret_free(a);
        hs_secret_free(b);
    }
    return rc;
}

int hs_sqlite_secrets_rekey(struct hs_store *base, const char *new_key, int64_t *count,
                            struct hs_error *err)
{
    struct sqlite_store *s = (struct sqlite_store *)base;
    struct hs_secret_key *next = NULL;
    if (new_key) {
        next = hs_calloc(1, sizeof *next);
        int rc = hs_secret_key_parse(new_key, next, err);
        if (rc) {
            free(next);
            return rc;
        }
    }
    struct secret_row *toks = NULL, *hooks = NULL;
    size_t nt = 0, nh = 0;
    struct hs_secret_key *old = s->key;
    hs_sqlite_lock(s);
    int rc = hs_sqlite_exec(s, "BEGIN IMMEDIATE", err);
    if (rc)
        goto out_unlock;
    rc = read_rows(s, "SELECT connection_key, access_token, refresh_token FROM oauth_tokens", true,
                   &toks, &nt, err);
    if (!rc)
        rc = read_rows(s,
                       "SELECT CAST(id AS TEXT), hmac_secret FROM webhooks "
                       "WHERE hmac_secret IS NOT NULL",
                       false, &hooks, &nh, err);
    s->key = next; /* sealing from here on */
    if (!rc)
        rc = write_rows(s,
                        "UPDATE oauth_tokens SET access_token = ?2, refresh_token = ?3 "
                        "WHERE connection_key = ?1",
                        true, toks, nt, err);
    if (!rc)
        rc = write_rows(s, "UPDATE webhooks SET hmac_secret = ?2 WHERE id = CAST(?1 AS INTEGER)",
                        false, hooks, nh, err);
    if (!rc)
        rc = record_key(s, next ? next->id : NULL, err);
    if (!rc)
        rc = hs_sqlite_exec(s, "COMMIT", err);
    if (rc) {
        hs_sqlite_exec(s, "ROLLBACK", NULL);
        s->key = old;
        goto out_unlock;
    }
    s->key = next;
    next = old; /* freed below */
    if (count) {
        *count = (int64_t)nh;
        for (size_t i = 0; i < nt; i++)
            *count += (toks[i].a != NULL) + (toks[i].b != NULL);
    }
out_unlock:
    hs_sqlite_unlock(s);
    rows_free(toks, nt);
    rows_free(hooks, nh);
    hs_secret_key_clear(next);
    free(next);
    return rc;
}
