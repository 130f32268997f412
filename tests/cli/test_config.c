/* test_config.c: the configuration: names in the file, the file's parser (what it accepts, what
 * it refuses and that a refused file changes nothing), the precedence flag > environment > file >
 * default, `config show`'s sources and redaction, and that README.md and hoversync(1) name every
 * option of the table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli/config.h"
#include "core/mem.h"
#include "hoversync.h"

/* The environment variables of the table, cleared so that the caller's do not leak in. */
static void clear_env(void)
{
    for (int k = 0; k < CFG_COUNT; k++)
        unsetenv(hs_cfg_defs[k].env);
    unsetenv("HOVERSYNC_CONFIG");
}

static int parse(struct hs_config *c, const char *text, struct hs_error *err)
{
    return hs_config_parse_file(c, "/etc/hoversync/test.conf", text, strlen(text), err);
}

static void assert_refused(const char *text, const char *why)
{
    struct hs_config c;
    struct hs_error err = {0};
    clear_env();
    hs_config_init(&c);
    struct hs_config before = c;
    assert_int_not_equal(parse(&c, text, &err), HS_OK);
    if (!strstr(err.msg, why))
        fail_msg("refusal of [%s] says [%s], not [%s]", text, err.msg, why);
    /* Nothing of a refused file is applied. */
    assert_memory_equal(c.value, before.value, sizeof c.value);
    assert_memory_equal(c.from, before.from, sizeof c.from);
    assert_null(c.file_text);
    hs_config_free(&c);
}

static void test_names(void **state)
{
    (void)state;
    char name[HS_CFG_NAME_MAX], other[HS_CFG_NAME_MAX];
    hs_cfg_name(&hs_cfg_defs[CFG_RATE_LIMIT], name, sizeof name);
    assert_string_equal(name, "rate-limit");
    hs_cfg_name(&hs_cfg_defs[CFG_ALLOW_ORIGINS], name, sizeof name);
    assert_string_equal(name, "allow-origins");
    hs_cfg_name(&hs_cfg_defs[CFG_CLIENT_SECRET], name, sizeof name);
    assert_string_equal(name, "client-secret");
    hs_cfg_name(&hs_cfg_defs[CFG_OUTBOX_RETRY_BASE], name, sizeof name);
    assert_string_equal(name, "outbox-retry-base-ms");
    /* Every option has a distinct name of lower case, digits and dashes. */
    for (int k = 0; k < CFG_COUNT; k++) {
        hs_cfg_name(&hs_cfg_defs[k], name, sizeof name);
        assert_true(name[0] != '\0');
        assert_int_equal(strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-"), strlen(name));
        if (hs_cfg_defs[k].flag)
            assert_string_equal(hs_cfg_defs[k].flag + 2, name);
        for (int j = 0; j < k; j++) {
            hs_cfg_name(&hs_cfg_defs[j], other, sizeof other);
            if (strcmp(name, other) == 0)
                fail_msg("two options are called %s", name);
        }
    }
}

static void test_file_values(void **state)
{
    (void)state;
    clear_env();
    struct hs_config c;
    hs_config_init(&c);
    struct hs_error err = {0};
    const char *text = "# hoversync\n"
                       "\n"
                       "rate-limit = 60\n"
                       "   timeout=30   # seconds\n"
                       "\tlisten\t=\t0.0.0.0:8080\r\n"
                       "public-url = https://sync.example.com/#top\n"
                       "allow-origins = https://a.example, https://b.example # two CRMs\n"
                       "db = /var/lib/hoversync/my#1.db";
    assert_int_equal(parse(&c, text, &err), HS_OK);
    assert_int_equal(hs_config_int(&c, CFG_RATE_LIMIT), 60);
    assert_int_equal(c.from[CFG_RATE_LIMIT], HS_CFG_FILE);
    assert_int_equal(c.line[CFG_RATE_LIMIT], 3);
    assert_int_equal(hs_config_int(&c, CFG_TIMEOUT), 30);
    assert_int_equal(c.line[CFG_TIMEOUT], 4);
    assert_string_equal(hs_config_str(&c, CFG_LISTEN), "0.0.0.0:8080");
    /* A '#' within a value (not after a blank) is part of it. */
    assert_string_equal(hs_config_str(&c, CFG_PUBLIC_URL), "https://sync.example.com/#top");
    assert_string_equal(hs_config_str(&c, CFG_ALLOW_ORIGINS),
                        "https://a.example, https://b.example");
    assert_string_equal(hs_config_str(&c, CFG_DB), "/var/lib/hoversync/my#1.db");
    assert_int_equal(c.line[CFG_DB], 8);
    /* What the file does not name keeps its default. */
    assert_int_equal(c.from[CFG_MAX_ATTEMPTS], HS_CFG_DEFAULT);
    assert_int_equal(hs_config_int(&c, CFG_MAX_ATTEMPTS), 5);
    char src[HS_CFG_LABEL_MAX];
    hs_config_source(&c, CFG_RATE_LIMIT, src, sizeof src);
    assert_string_equal(src, "file:/etc/hoversync/test.conf:3");
    hs_config_source(&c, CFG_MAX_ATTEMPTS, src, sizeof src);
    assert_string_equal(src, "default");
    assert_int_equal(hs_config_validate(&c), 0);
    hs_config_free(&c);
    assert_null(c.value[CFG_RATE_LIMIT]); /* nothing points into the freed file */

    /* An empty file and a file of comments are fine. */
    hs_config_init(&c);
    assert_int_equal(parse(&c, "", &err), HS_OK);
    hs_config_free(&c);
    hs_config_init(&c);
    assert_int_equal(parse(&c, "# nothing\n\n   # here\n", &err), HS_OK);
    assert_int_equal(c.from[CFG_RATE_LIMIT], HS_CFG_DEFAULT);
    hs_config_free(&c);
}

static void test_refusals(void **state)
{
    (void)state;
    assert_refused("rate-limit = 60\nclient-secret = s3cr3t\n",
                   "test.conf:2: client-secret is a secret");
    assert_refused("api-key = k\n", "HOVERSYNC_API_KEY");
    assert_refused("access-token = t\n", "environment only");
    assert_refused("refresh-token = t\n", "secret");
    assert_refused("crm-secret = t\n", "HOVERSYNC_CRM_SECRET");
    assert_refused("rate-limt = 60\n", "test.conf:1: unknown option 'rate-limt'");
    assert_refused("\n\nrate-limit 60\n", "test.conf:3: expected 'name = value'");
    assert_refused("--rate-limit = 60\n", "expected 'name = value'");
    assert_refused("RATE_LIMIT = 60\n", "expected 'name = value'");
    assert_refused("= 60\n", "expected 'name = value'");
    assert_refused("rate-limit = 60\nrate-limit = 70\n", "rate-limit is set twice (lines 1 and 2)");
    assert_refused("rate-limit =\n", "rate-limit has no value");
    assert_refused("rate-limit =   # later\n", "has no value");
    assert_refused("db = \"/var/lib/x.db\"\n", "without quotes");
    assert_refused("rate-limit = sixty\n", "test.conf:1: rate-limit must be a whole number");
    assert_refused("rate-limit = 100001\n", "from 0 to 100000");
    assert_refused("hover-url = ftp://hover.to\n", "hover-url must start with http://");
    assert_refused("log-level = loud\n", "log-level must be debug");
    assert_refused("db = a\x01"
                   "b\n",
                   "control character (byte 0x01)");
    assert_refused("db = a\x7f\n", "control character (byte 0x7f)");
    char with_nul[] = "rate-limit = 60\ndb = x\0y\n";
    struct hs_config c;
    struct hs_error err = {0};
    clear_env();
    hs_config_init(&c);
    assert_int_equal(hs_config_parse_file(&c, "f", with_nul, sizeof with_nul - 1, &err),
                     HS_ERR_PARSE);
    assert_non_null(strstr(err.msg, "f:2: control character (byte 0x00)"));
    assert_int_equal(c.from[CFG_RATE_LIMIT], HS_CFG_DEFAULT);
    hs_config_free(&c);

    size_t big = HS_CFG_FILE_MAX + 1;
    char *huge = hs_malloc(big);
    memset(huge, '#', big);
    hs_config_init(&c);
    assert_int_equal(hs_config_parse_file(&c, "f", huge, big, &err), HS_ERR_TOOBIG);
    assert_int_equal(hs_config_parse_file(&c, "f", huge, big - 1, &err), HS_OK);
    free(huge);
    hs_config_free(&c);
}

static void test_precedence(void **state)
{
    (void)state;
    clear_env();
    setenv("HOVERSYNC_TIMEOUT", "20", 1);
    setenv("HOVERSYNC_LOG_LEVEL", "info", 1);
    struct hs_config c;
    hs_config_init(&c);
    char *argv[] = {(char *)"hoversync",         (char *)"--rate-limit", (char *)"10",
                    (char *)"--log-level=error", (char *)"search",       NULL};
    int argc = 5;
    for (int i = 1; i < argc; i++)
        (void)hs_config_take_flag(&c, argc, argv, &i);
    struct hs_error err = {0};
    assert_int_equal(
        parse(&c, "rate-limit = 60\ntimeout = 30\nlog-level = debug\nmax-attempts = 7\n", &err),
        HS_OK);
    assert_int_equal(hs_config_int(&c, CFG_RATE_LIMIT), 10); /* flag over file */
    assert_int_equal(c.from[CFG_RATE_LIMIT], HS_CFG_FLAG);
    assert_string_equal(hs_config_str(&c, CFG_LOG_LEVEL), "error"); /* flag over env and file */
    assert_int_equal(hs_config_int(&c, CFG_TIMEOUT), 20);           /* env over file */
    assert_int_equal(c.from[CFG_TIMEOUT], HS_CFG_ENV);
    assert_int_equal(hs_config_int(&c, CFG_MAX_ATTEMPTS), 7); /* file over default */
    assert_int_equal(c.from[CFG_MAX_ATTEMPTS], HS_CFG_FILE);
    assert_int_equal(hs_config_int(&c, CFG_PENDING_INTERVAL), 900); /* default */
    /* A second file is not merged into the first. */
    assert_int_equal(parse(&c, "timeout = 5\n", &err), HS_ERR_INVALID);
    hs_config_free(&c);
    clear_env();
}

static void test_which_file(void **state)
{
    (void)state;
    clear_env();
    struct hs_config c;
    hs_config_init(&c);
    assert_int_equal(c.file_from, HS_CFG_DEFAULT);
    assert_non_null(strstr(c.file, "hoversync/hoversync.conf"));
    setenv("HOVERSYNC_CONFIG", "/env.conf", 1);
    hs_config_init(&c);
    assert_string_equal(c.file, "/env.conf");
    assert_int_equal(c.file_from, HS_CFG_ENV);
    char *argv[] = {(char *)"hoversync", (char *)"--config", (char *)"/flag.conf", NULL};
    int i = 1;
    assert_int_equal(hs_config_take_flag(&c, 3, argv, &i), 1);
    assert_int_equal(i, 2);
    assert_string_equal(c.file, "/flag.conf");
    assert_int_equal(c.file_from, HS_CFG_FLAG);
    char *bare[] = {(char *)"hoversync", (char *)"--config", NULL};
    i = 1;
    assert_int_equal(hs_config_take_flag(&c, 2, bare, &i), -1);
    clear_env();

    /* The default file may be missing; a file named by a flag or the environment may not. */
    char dir[] = "/tmp/hs-config-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *missing = hs_aprintf("%s/missing.conf", dir);
    hs_config_init(&c);
    c.file = missing;
    assert_int_equal(hs_config_load_file(&c), 0);
    assert_int_equal(c.file_state, -1);
    c.file_from = HS_CFG_FLAG;
    assert_int_equal(hs_config_load_file(&c), -1);
    c.file_from = HS_CFG_ENV;
    assert_int_equal(hs_config_load_file(&c), -1);
    /* A present default file is read; a bad one is an error even as the default. */
    char *path = hs_aprintf("%s/hoversync.conf", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("event-workers = 4\n", f);
    fclose(f);
    hs_config_init(&c);
    c.file = path;
    assert_int_equal(hs_config_load_file(&c), 0);
    assert_int_equal(c.file_state, 1);
    assert_int_equal(hs_config_int(&c, CFG_EVENT_WORKERS), 4);
    hs_config_free(&c);
    f = fopen(path, "w");
    fputs("event-workers = 400\n", f);
    fclose(f);
    hs_config_init(&c);
    c.file = path;
    assert_int_equal(hs_config_load_file(&c), -1);
    hs_config_free(&c);
    /* A directory is not a file. */
    hs_config_init(&c);
    c.file = dir;
    assert_int_equal(hs_config_load_file(&c), -1);
    unlink(path);
    rmdir(dir);
    free(path);
    free(missing);
}

static void test_show(void **state)
{
    (void)state;
    clear_env();
    setenv("HOVER_CLIENT_SECRET", "very-secret-value", 1);
    setenv("HOVERSYNC_LISTEN", "127.0.0.1:9999", 1);
    struct hs_config c;
    hs_config_init(&c);
    struct hs_error err = {0};
    assert_int_equal(parse(&c, "\nrate-limit = 42\n", &err), HS_OK);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    hs_config_show(&c, f);
    fclose(f);
    assert_null(strstr(out, "very-secret-value"));
    assert_non_null(strstr(out, "(set, redacted)"));
    assert_non_null(strstr(out, "source=file:/etc/hoversync/test.conf:2"));
    assert_non_null(strstr(out, "127.0.0.1:9999"));
    assert_non_null(strstr(out, "source=env"));
    assert_non_null(strstr(out, "source=default"));
    assert_non_null(strstr(out, "rate-limit "));
    free(out);
    hs_config_free(&c);
    clear_env();
}

/* The document at SOURCE_ROOT/rel with roff's escaped dashes ("\-") as plain dashes. */
static char *read_doc(const char *rel)
{
    const char *root = getenv("SOURCE_ROOT");
    char *path = hs_aprintf("%s/%s", root ? root : ".", rel);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    char *text = hs_malloc(1 << 20);
    size_t n = fread(text, 1, (1 << 20) - 1, f);
    fclose(f);
    free(path);
    size_t w = 0;
    for (size_t r = 0; r < n; r++) {
        if (text[r] == '\\' && r + 1 < n && text[r + 1] == '-')
            continue;
        text[w++] = text[r];
    }
    text[w] = '\0';
    return text;
}

/* Every option of the table in a document: its flag, its variable, its name in the file. */
static void assert_doc_names_every_option(const char *rel, bool file_names)
{
    char *doc = read_doc(rel);
    for (int k = 0; k < CFG_COUNT; k++) {
        const struct hs_cfg_def *d = &hs_cfg_defs[k];
        char name[HS_CFG_NAME_MAX];
        hs_cfg_name(d, name, sizeof name);
        if (d->flag && !strstr(doc, d->flag))
            fail_msg("%s does not name the option %s", rel, d->flag);
        if (!strstr(doc, d->env))
            fail_msg("%s does not name the variable %s", rel, d->env);
        if (file_names && d->type != HS_CFG_SECRET && !strstr(doc, name))
            fail_msg("%s does not name the file option %s", rel, name);
    }
    if (!strstr(doc, "--config") || !strstr(doc, "HOVERSYNC_CONFIG"))
        fail_msg("%s does not name --config and HOVERSYNC_CONFIG", rel);
    free(doc);
}

static void test_docs_name_every_option(void **state)
{
    (void)state;
    assert_doc_names_every_option("man/hoversync.1", true);
    assert_doc_names_every_option("README.md", true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_file_values),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_which_file),
        cmocka_unit_test(test_show),
        cmocka_unit_test(test_docs_name_every_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
