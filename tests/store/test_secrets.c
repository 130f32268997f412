/* test_secrets.c: secrets at rest (src/store/secrets.c, sqlite_secrets.c): the key's forms, the
 * sealed form and what breaks it, OAuth tokens and webhook secrets sealed in the SQLite file
 * (the raw bytes hold no clear value), a wrong or missing key refused at open, rotate-key round
 * trips (clear -> key -> other key -> clear), and the modes of the store's files. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "core/mem.h"
#include "store/blobs.h"
#include "store/secrets.h"
#include "store/store.h"
#include "store/tokens.h"
#include "store/webhooks.h"

#define KEY_A_HEX "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY_A_B64 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define KEY_B_B64 "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqo"
#define ACCESS    "access-7f3a9c51-clear"
#define REFRESH   "refresh-41d2e8b0-clear"
#define HMAC      "aG1hYy1zZWNyZXQtOTk2Ni1jbGVhcg=="

struct fixture {
    char dir[256];
    char path[300];
};

static int setup(void **state)
{
    struct fixture *f = hs_calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/hs-secrets-test-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof f->path, "%s/store.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

static struct hs_store *open_with(struct fixture *f, const char *key)
{
    struct hs_store *s = NULL;
    struct hs_store_options o = {.encryption_key = key};
    struct hs_error err = {0};
    if (hs_store_open(f->path, &o, &s, &err) != HS_OK)
        fail_msg("open: %s", err.msg);
    return s;
}

static int open_fails(struct fixture *f, const char *key, struct hs_error *err)
{
    struct hs_store *s = NULL;
    struct hs_store_options o = {.encryption_key = key};
    int rc = hs_store_open(f->path, &o, &s, err);
    assert_null(s);
    return rc;
}

static void put_secrets(struct hs_store *s)
{
    struct hs_token t = {.access_token = ACCESS, .refresh_token = REFRESH, .expires_at = 9};
    assert_int_equal(s->tokens->token_save(s, "org-1", &t, NULL), HS_OK);
    struct hs_webhook_row w = {.id = 230293,
                               .connection_key = "org-1",
                               .url = "http://127.0.0.1:1/webhooks/hover",
                               .hmac_secret = HMAC};
    assert_int_equal(s->webhooks->webhook_put(s, &w, NULL), HS_OK);
}

static void assert_secrets(struct hs_store *s)
{
    struct hs_token t = {0};
    assert_int_equal(s->tokens->token_load(s, "org-1", &t, NULL), HS_OK);
    assert_string_equal(t.access_token, ACCESS);
    assert_string_equal(t.refresh_token, REFRESH);
    hs_token_clear(&t);
    struct hs_webhook_row w = {0};
    assert_int_equal(s->webhooks->webhook_get(s, 230293, &w, NULL), HS_OK);
    assert_string_equal(w.hmac_secret, HMAC);
    hs_webhook_row_clear(&w);
    struct hs_webhook_row *v = NULL;
    size_t n = 0;
    assert_int_equal(s->webhooks->webhook_list(s, &v, &n, NULL), HS_OK);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].hmac_secret, HMAC);
    hs_webhook_rows_free(v, n);
}

/* The stored (raw) value of a column, read as any SQLite tool would. */
static char *raw_value(struct fixture *f, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char *v = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        v = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* True when the bytes of the store's files (database, WAL) contain s. */
static bool file_contains(struct fixture *f, const char *s)
{
    const char *sfx[] = {"", "-wal"};
    bool found = false;
    for (size_t i = 0; i < 2 && !found; i++) {
        char p[320];
        snprintf(p, sizeof p, "%s%s", f->path, sfx[i]);
        FILE *fp = fopen(p, "rb");
        if (!fp)
            continue;
        fseek(fp, 0, SEEK_END);
        long n = ftell(fp);
        fseek(fp, 0, SEEK_SET);
        char *buf = malloc((size_t)n + 1);
        size_t got = fread(buf, 1, (size_t)n, fp);
        fclose(fp);
        found = memmem(buf, got, s, strlen(s)) != NULL;
        free(buf);
    }
    return found;
}

static void assert_sealed_at_rest(struct fixture *f, bool sealed)
{
    const char *sql[] = {"SELECT access_token FROM oauth_tokens",
                         "SELECT refresh_token FROM oauth_tokens",
                         "SELECT hmac_secret FROM webhooks"};
    const char *clear[] = {ACCESS, REFRESH, HMAC};
    for (size_t i = 0; i < 3; i++) {
        char *v = raw_value(f, sql[i]);
        assert_non_null(v);
        if (sealed) {
            assert_true(strncmp(v, "hs1:", 4) == 0);
            assert_null(strstr(v, clear[i]));
        } else {
            assert_string_equal(v, clear[i]);
        }
        free(v);
    }
    if (sealed) {
        assert_false(file_contains(f, ACCESS));
        assert_false(file_contains(f, REFRESH));
        assert_false(file_contains(f, HMAC));
    }
}

static void test_key_forms(void **state)
{
    (void)state;
    struct hs_secret_key a, b, c;
    assert_int_equal(hs_secret_key_parse(KEY_A_HEX, &a, NULL), HS_OK);
    assert_int_equal(hs_secret_key_parse(" " KEY_A_B64 "\n", &b, NULL), HS_OK);
    assert_memory_equal(a.k, b.k, sizeof a.k);
    assert_string_equal(a.id, b.id);
    assert_int_equal(strlen(a.id), 8);
    /* URL alphabet, no padding */
    assert_int_equal(hs_secret_key_parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", &c, NULL),
                     HS_OK);
    assert_string_equal(a.id, c.id);
    struct hs_error err = {0};
    const char *bad[] = {"",
                         "short",
                         KEY_A_HEX "00",
                         "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==",
                         "0000000000000000000000000000000000000000000000000000000000000000",
                         "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(hs_secret_key_parse(bad[i], &c, &err), HS_ERR_INVALID);
        assert_non_null(strstr(err.msg, "HOVERSYNC_ENCRYPTION_KEY"));
        if (strlen(bad[i]) > 4)
            assert_null(strstr(err.msg, bad[i])); /* the key never shows */
    }
}

static void test_sealed_form(void **state)
{
    (void)state;
    struct hs_secret_key a, b;
    assert_int_equal(hs_secret_key_parse(KEY_A_B64, &a, NULL), HS_OK);
    assert_int_equal(hs_secret_key_parse(KEY_B_B64, &b, NULL), HS_OK);
    char *s1 = NULL, *s2 = NULL, *out = NULL;
    assert_int_equal(hs_secret_seal(&a, "tok", "t.c:1", &s1, NULL), HS_OK);
    assert_int_equal(hs_secret_seal(&a, "tok", "t.c:1", &s2, NULL), HS_OK);
    assert_true(hs_secret_is_sealed(s1));
    assert_string_not_equal(s1, s2); /* a fresh nonce each time */
    char id[9];
    assert_true(hs_secret_key_id(s1, id));
    assert_string_equal(id, a.id);
    assert_int_equal(hs_secret_open(&a, s1, "t.c:1", &out, NULL), HS_OK);
    assert_string_equal(out, "tok");
    free(out);
    struct hs_error err = {0};
    /* moved to another place */
    assert_int_equal(hs_secret_open(&a, s1, "t.c:2", &out, &err), HS_ERR_DB);
    assert_non_null(strstr(err.msg, "moved"));
    /* another key */
    assert_int_equal(hs_secret_open(&b, s1, "t.c:1", &out, &err), HS_ERR_DB);
    assert_non_null(strstr(err.msg, "wrong key"));
    /* no key */
    assert_int_equal(hs_secret_open(NULL, s1, "t.c:1", &out, &err), HS_ERR_DB);
    assert_non_null(strstr(err.msg, "HOVERSYNC_ENCRYPTION_KEY"));
    /* a damaged byte */
    s1[strlen(s1) - 6] = s1[strlen(s1) - 6] == 'A' ? 'B' : 'A';
    assert_int_equal(hs_secret_open(&a, s1, "t.c:1", &out, &err), HS_ERR_DB);
    assert_int_equal(hs_secret_open(&a, "hs1:zz", "t.c:1", &out, &err), HS_ERR_DB);
    /* clear values pass as they are */
    assert_int_equal(hs_secret_open(&a, "plain", "t.c:1", &out, NULL), HS_OK);
    assert_string_equal(out, "plain");
    free(out);
    assert_int_equal(hs_secret_open(NULL, NULL, "t.c:1", &out, NULL), HS_OK);
    assert_null(out);
    free(s1);
    free(s2);
}

static void test_tokens_and_webhook_secrets_sealed(void **state)
{
    struct fixture *f = *state;
    struct hs_store *s = open_with(f, KEY_A_B64);
    put_secrets(s);
    assert_secrets(s);
    assert_sealed_at_rest(f, true);
    hs_store_close(s);
    /* reopened with the key: the same clear values */
    s = open_with(f, KEY_A_HEX);
    assert_secrets(s);
    hs_store_close(s);
}

static void test_wrong_or_missing_key_refused(void **state)
{
    struct fixture *f = *state;
    struct hs_store *s = open_with(f, KEY_A_B64);
    put_secrets(s);
    hs_store_close(s);
    struct hs_error err = {0};
    assert_int_equal(open_fails(f, KEY_B_B64, &err), HS_ERR_INVALID);
    assert_non_null(strstr(err.msg, "wrong HOVERSYNC_ENCRYPTION_KEY"));
    assert_int_equal(open_fails(f, NULL, &err), HS_ERR_INVALID);
    assert_non_null(strstr(err.msg, "set HOVERSYNC_ENCRYPTION_KEY"));
    assert_int_equal(open_fails(f, "not a key", &err), HS_ERR_INVALID);
}

static void test_rotate_key_round_trip(void **state)
{
    struct fixture *f = *state;
    struct hs_store *s = open_with(f, NULL);
    put_secrets(s);
    assert_sealed_at_rest(f, false);
    int64_t n = 0;
    /* a clear store encrypted */
    assert_int_equal(s->ops->secrets_rekey(s, KEY_A_B64, &n, NULL), HS_OK);
    assert_int_equal(n, 3);
    assert_secrets(s);
    hs_store_close(s);
    assert_sealed_at_rest(f, true);
    /* to another key */
    s = open_with(f, KEY_A_B64);
    assert_int_equal(s->ops->secrets_rekey(s, KEY_B_B64, &n, NULL), HS_OK);
    assert_secrets(s);
    hs_store_close(s);
    struct hs_error err = {0};
    assert_int_equal(open_fails(f, KEY_A_B64, &err), HS_ERR_INVALID);
    s = open_with(f, KEY_B_B64);
    assert_secrets(s);
    char *v = raw_value(f, "SELECT access_token FROM oauth_tokens");
    struct hs_secret_key b;
    assert_int_equal(hs_secret_key_parse(KEY_B_B64, &b, NULL), HS_OK);
    char id[9];
    assert_true(hs_secret_key_id(v, id));
    assert_string_equal(id, b.id);
    free(v);
    /* a bad new key changes nothing */
    assert_int_equal(s->ops->secrets_rekey(s, "nope", &n, &err), HS_ERR_INVALID);
    assert_secrets(s);
    /* back to clear */
    assert_int_equal(s->ops->secrets_rekey(s, NULL, &n, NULL), HS_OK);
    hs_store_close(s);
    assert_sealed_at_rest(f, false);
    s = open_with(f, NULL);
    assert_secrets(s);
    hs_store_close(s);
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 0777;
}

static void test_store_files_private(void **state)
{
    struct fixture *f = *state;
    mode_t old = umask(0); /* whatever the umask */
    struct hs_store *s = open_with(f, NULL);
    put_secrets(s);
    char p[320];
    assert_int_equal(mode_of(f->path), 0600);
    snprintf(p, sizeof p, "%s-wal", f->path);
    assert_int_equal(mode_of(p), 0600);
    snprintf(p, sizeof p, "%s-shm", f->path);
    assert_int_equal(mode_of(p), 0600);
    hs_store_close(s);
    /* an existing store made readable by others is tightened when it is opened */
    assert_int_equal(chmod(f->path, 0644), 0);
    s = open_with(f, NULL);
    assert_int_equal(mode_of(f->path), 0600);
    hs_store_close(s);
    /* and so is a data directory */
    snprintf(p, sizeof p, "%s/data", f->dir);
    assert_int_equal(mkdir(p, 0755), 0);
    char sub[340];
    snprintf(sub, sizeof sub, "%s/blobs", p);
    assert_int_equal(mkdir(sub, 0755), 0);
    hs_data_dir_private(p);
    assert_int_equal(mode_of(p), 0700);
    assert_int_equal(mode_of(sub), 0700);
    umask(old);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_forms),
        cmocka_unit_test(test_sealed_form),
        cmocka_unit_test_setup_teardown(test_tokens_and_webhook_secrets_sealed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_or_missing_key_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotate_key_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_files_private, setup, teardown),
    };
    return cmocka_run_group_tests_name("store-secrets", tests, NULL, NULL);
}
