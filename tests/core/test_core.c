/* test_core.c: bounded buffers, checked parsing, dates, URL escaping, the fake clock and the
 * log's two formats. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"

static void test_buf_cap_is_hard(void **state)
{
    (void)state;
    struct hs_buf b;
    hs_buf_init(&b, 10);
    assert_int_equal(hs_buf_appends(&b, "12345"), HS_OK);
    assert_int_equal(hs_buf_appends(&b, "67890"), HS_OK);
    assert_int_equal(hs_buf_appends(&b, "x"), HS_ERR_TOOBIG);
    assert_int_equal(b.len, 10);
    assert_string_equal(hs_buf_str(&b), "1234567890");
    assert_int_equal(hs_buf_append(&b, "", SIZE_MAX), HS_ERR_TOOBIG);
    hs_buf_free(&b);
}

static void test_buf_appendf_long(void **state)
{
    (void)state;
    struct hs_buf b;
    hs_buf_init(&b, 1 << 20);
    char big[2000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(hs_buf_appendf(&b, "<%s>", big), HS_OK);
    assert_int_equal(b.len, 2001);
    size_t n = 0;
    char *s = hs_buf_take(&b, &n);
    assert_int_equal(n, 2001);
    assert_int_equal(s[0], '<');
    free(s);
    assert_null(b.data);
}

static void test_parse_i64(void **state)
{
    (void)state;
    int64_t v = 0;
    assert_int_equal(hs_parse_i64("9007199254740993", &v), HS_OK);
    assert_true(v == 9007199254740993LL);
    assert_int_equal(hs_parse_i64("-5", &v), HS_OK);
    assert_true(v == -5);
    assert_int_equal(hs_parse_i64("12x", &v), HS_ERR_PARSE);
    assert_int_equal(hs_parse_i64("", &v), HS_ERR_PARSE);
    assert_int_equal(hs_parse_i64(" 1", &v), HS_ERR_PARSE);
    assert_int_equal(hs_parse_i64("99999999999999999999", &v), HS_ERR_PARSE);
    assert_int_equal(hs_parse_i64_range("101", 1, 100, &v), HS_ERR_PARSE);
    assert_int_equal(hs_parse_i64_range("100", 1, 100, &v), HS_OK);
}

static void test_iso8601(void **state)
{
    (void)state;
    int64_t t = 0;
    assert_int_equal(hs_iso8601_parse("2025-03-16T23:55:50.094Z", &t), HS_OK);
    assert_true(t == 1742169350);
    assert_int_equal(hs_iso8601_parse("2025-03-17T01:55:50+02:00", &t), HS_OK);
    assert_true(t == 1742169350);
    assert_int_equal(hs_iso8601_parse("2024-01-01", &t), HS_OK);
    assert_true(t == 1704067200);
    assert_int_equal(hs_iso8601_parse("2024-13-01", &t), HS_ERR_PARSE);
    assert_int_equal(hs_iso8601_parse("yesterday", &t), HS_ERR_PARSE);
    char out[40];
    hs_iso8601_format(1742169350, 94, out, sizeof out);
    assert_string_equal(out, "2025-03-16T23:55:50.094Z");
    assert_int_equal(hs_parse_date_arg("1700000000", &t), HS_OK);
    assert_true(t == 1700000000);
}

static void test_url_escape(void **state)
{
    (void)state;
    char *s = hs_url_escape("4312 Meadow Dr & co/é");
    assert_string_equal(s, "4312%20Meadow%20Dr%20%26%20co%2F%C3%A9");
    free(s);
}

static void test_url_redact(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"https://user:pa55@host.example/x?y=1", "https://user:***@host.example/x?y=1"},
        {"https://tok3n@host.example", "https://***@host.example"},
        {"https://host.example/a@b", "https://host.example/a@b"}, /* '@' in the path only */
        {"http://a:b@c:1/p, https://d:e@f", "http://a:***@c:1/p, https://d:***@f"},
        {"https://u:p@ss:w@rd@h/", "https://u:***@h/"},
        {"./hoversync.db", "./hoversync.db"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *r = hs_url_redact(cases[i][0]);
        assert_string_equal(r, cases[i][1]);
        free(r);
    }
    assert_null(hs_url_redact(NULL));
}

static void test_json_tolerant_getters(void **state)
{
    (void)state;
    json_t *j = NULL;
    const char *doc = "{\"a\":\"17\",\"b\":17.0,\"c\":null,\"d\":\"34.87\",\"e\":\"x\","
                      "\"f\":9007199254740993}";
    assert_int_equal(hs_json_parse(doc, strlen(doc), 1024, &j, NULL), HS_OK);
    int64_t v = 0;
    double d = 0;
    assert_true(hs_json_i64(j, "a", &v) && v == 17);
    assert_true(hs_json_i64(j, "b", &v) && v == 17);
    assert_false(hs_json_i64(j, "c", &v));
    assert_false(hs_json_i64(j, "e", &v));
    assert_true(hs_json_i64(j, "f", &v) && v == 9007199254740993LL);
    assert_true(hs_json_double(j, "d", &d) && d > 34.86 && d < 34.88);
    assert_null(hs_json_strdup(j, "c"));
    char *s = hs_json_strdup(j, "f");
    assert_string_equal(s, "9007199254740993");
    free(s);
    json_decref(j);
    struct hs_error err = {0};
    assert_int_equal(hs_json_parse("{\"a\":", 5, 1024, &j, &err), HS_ERR_PARSE);
    assert_non_null(strstr(err.msg, "malformed JSON"));
    assert_int_equal(hs_json_parse(doc, strlen(doc), 10, &j, &err), HS_ERR_TOOBIG);
}

/* Outside bytes that are not UTF-8 still make a JSON string (a bad byte shows as '?'): an
 * error answer that quotes them is never lost to a failed json_string. */
static void test_json_text(void **state)
{
    (void)state;
    json_t *j = hs_json_text("caf\xc3\xa9");
    assert_string_equal(json_string_value(j), "caf\xc3\xa9");
    json_decref(j);
    j = hs_json_text("/a\xff-\xfe/b");
    assert_non_null(j);
    assert_string_equal(json_string_value(j), "/a?-?/b");
    json_decref(j);
    j = hs_json_text(NULL);
    assert_true(json_is_null(j));
}

/* Comma lists of the configuration (origins, CRM endpoints): trimmed, empty items skipped, and a
 * list longer than the room is refused rather than cut silently. */
static void test_split_list(void **state)
{
    (void)state;
    char a[] = " https://a.example , ,https://b.example,, https://c.example ";
    const char *items[4] = {"first"};
    size_t n = 1;
    assert_int_equal(hs_split_list(a, items, 4, &n), HS_OK);
    assert_int_equal(n, 4);
    assert_string_equal(items[0], "first");
    assert_string_equal(items[1], "https://a.example");
    assert_string_equal(items[2], "https://b.example");
    assert_string_equal(items[3], "https://c.example");
    char b[] = "x,y,z";
    n = 0;
    assert_int_equal(hs_split_list(b, items, 2, &n), HS_ERR_TOOBIG);
    assert_int_equal(n, 2);
    assert_string_equal(items[1], "y");
    char c[] = " , ,";
    n = 0;
    assert_int_equal(hs_split_list(c, items, 2, &n), HS_OK);
    assert_int_equal(n, 0);
}

/* A condition variable from hs_cond_init_monotonic takes its deadlines on CLOCK_MONOTONIC: a
 * wait until "now + 100 ms" on that clock lasts until then (one on the default, wall clock
 * would take that moment as decades past and return at once). */
static void test_cond_monotonic(void **state)
{
    (void)state;
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c;
    hs_cond_init_monotonic(&c);
    struct timespec now, until = hs_deadline_after(CLOCK_MONOTONIC, 100);
    pthread_mutex_lock(&m);
    int rc;
    do
        rc = pthread_cond_timedwait(&c, &m, &until);
    while (rc == 0); /* a spurious wake-up */
    pthread_mutex_unlock(&m);
    assert_int_equal(rc, ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &now);
    assert_true(now.tv_sec > until.tv_sec ||
                (now.tv_sec == until.tv_sec && now.tv_nsec >= until.tv_nsec));
    pthread_cond_destroy(&c);
}

/* A deadline is later than the moment it was asked by the milliseconds asked (whole seconds
 * carried), with its nanoseconds in range, as pthread_cond_timedwait requires (EINVAL else). */
static void test_deadline_after(void **state)
{
    (void)state;
    int64_t asks[] = {0, 1, 999, 1000, 1999, 61001};
    for (size_t i = 0; i < sizeof asks / sizeof *asks; i++) {
        struct timespec before;
        clock_gettime(CLOCK_MONOTONIC, &before);
        struct timespec d = hs_deadline_after(CLOCK_MONOTONIC, asks[i]);
        assert_true(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
        int64_t gap_ns =
            (int64_t)(d.tv_sec - before.tv_sec) * 1000000000LL + (d.tv_nsec - before.tv_nsec);
        assert_true(gap_ns >= asks[i] * 1000000LL);
    }
}

static void test_fake_clock(void **state)
{
    (void)state;
    struct hs_fake_clock fc;
    hs_fake_clock_init(&fc, 1700000000000);
    const struct hs_clock *c = &fc.clock;
    int64_t m0 = c->mono_ms(c);
    c->sleep_ms(c, 1500);
    assert_true(c->mono_ms(c) - m0 == 1500);
    assert_true(c->wall_ms(c) == 1700000001500);
    assert_int_equal(fc.sleeps, 1);
    fc.random = 0.25;
    assert_true(c->random01(c) == 0.25);
    const struct hs_clock *sys = hs_clock_system();
    double r = sys->random01(sys);
    assert_true(r >= 0.0 && r < 1.0);
}

/* The log rate limit: at most per_second lines pass in a second; the next one that passes carries
 * the count held back, so lines written + suppressed counts = lines asked for. */
static void test_log_limiter(void **state)
{
    (void)state;
    struct hs_log_limiter l = HS_LOG_LIMITER_INIT(3);
    int64_t sup = -1, passed = 0, counted = 0;
    for (int i = 0; i < 100; i++) {
        if (hs_log_limit_take_at(&l, 1000 + i, &sup)) {
            passed++;
            counted += sup;
        }
    }
    assert_int_equal(passed, 3);
    assert_int_equal(counted, 0);
    /* A second later: passes again, with the 97 held back. */
    assert_true(hs_log_limit_take_at(&l, 2000, &sup));
    assert_int_equal(sup, 97);
    assert_true(hs_log_limit_take_at(&l, 2001, &sup));
    assert_int_equal(sup, 0);
    /* A clock that went back starts a new window rather than blocking. */
    assert_true(hs_log_limit_take_at(&l, 1500, &sup));
}

/* Writes one line with the format given and returns it (without its newline); caller frees. */
static char *log_one(int format, const char *url, const char *detail)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    hs_log_set_file(f);
    hs_log_set_format(format);
    hs_info("connect msg=\"started\" connection=%s url=%s detail=\"%s\" time=5", "org-1", url,
            detail);
    hs_log_set_file(NULL);
    hs_log_set_format(HS_LOG_TEXT);
    char *line = hs_calloc(1, 65536);
    rewind(f);
    assert_non_null(fgets(line, 65536, f));
    assert_null(fgets(line + strlen(line) + 1, 100, f)); /* one line */
    fclose(f);
    size_t n = strlen(line);
    assert_true(n > 0 && line[n - 1] == '\n');
    line[n - 1] = '\0';
    return line;
}

/* --log-format json: one JSON object per line with time (RFC 3339 UTC, milliseconds), level,
 * msg and each key=value field; what text mode redacted is redacted the same; quotes,
 * backslashes, control bytes and bytes that are not UTF-8 still give valid JSON. */
static void test_log_json(void **state)
{
    (void)state;
    assert_int_equal(hs_log_format_parse("text"), HS_LOG_TEXT);
    assert_int_equal(hs_log_format_parse("json"), HS_LOG_JSON);
    assert_int_equal(hs_log_format_parse("JSON"), -1);
    int saved = hs_log_level;
    hs_log_set_level(HS_LOG_INFO);
    char *url = hs_url_redact("https://user:hunter2@crm.example/hook");
    const char *detail = "said \"no\" \\ then\ttab\x01 and \xff\xfe";

    char *text = log_one(HS_LOG_TEXT, url, detail);
    assert_non_null(strstr(text, " level=info connect msg=\"started\" connection=org-1 url="
                                 "https://user:***@crm.example/hook detail="));
    assert_null(strstr(text, "hunter2"));

    char *line = log_one(HS_LOG_JSON, url, detail);
    assert_null(strstr(line, "hunter2"));
    json_error_t jerr;
    json_t *o = json_loads(line, 0, &jerr);
    assert_non_null(o);
    const char *t = json_string_value(json_object_get(o, "time"));
    assert_non_null(t);
    assert_int_equal(strlen(t), 24); /* 2026-11-27T10:00:00.123Z */
    assert_true(t[4] == '-' && t[10] == 'T' && t[19] == '.' && t[23] == 'Z');
    assert_string_equal(json_string_value(json_object_get(o, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(o, "msg")), "connect: started");
    assert_string_equal(json_string_value(json_object_get(o, "connection")), "org-1");
    assert_string_equal(json_string_value(json_object_get(o, "url")),
                        "https://user:***@crm.example/hook");
    /* Not UTF-8: those bytes become '?'; the rest is kept, escaped by the JSON. */
    assert_string_equal(json_string_value(json_object_get(o, "detail")),
                        "said \"no\" \\ then\ttab\x01 and ??");
    assert_string_equal(json_string_value(json_object_get(o, "time_")), "5");
    assert_int_equal(json_object_size(o), 7);
    json_decref(o);

    /* A line without fields: its text is the message. */
    FILE *f = tmpfile();
    hs_log_set_file(f);
    hs_log_set_format(HS_LOG_JSON);
    hs_warn("%s", "plain words only");
    static struct hs_log_limiter lim = HS_LOG_LIMITER_INIT(1);
    hs_log_limited(&lim, HS_LOG_WARN, "refused status=%d", 401);
    hs_log_limited(&lim, HS_LOG_WARN, "refused status=%d", 401); /* held back */
    hs_log_set_file(NULL);
    hs_log_set_format(HS_LOG_TEXT);
    rewind(f);
    char buf[4096];
    assert_non_null(fgets(buf, sizeof buf, f));
    o = json_loads(buf, 0, &jerr);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "msg")), "plain words only");
    assert_string_equal(json_string_value(json_object_get(o, "level")), "warn");
    json_decref(o);
    assert_non_null(fgets(buf, sizeof buf, f));
    o = json_loads(buf, 0, &jerr);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "msg")), "refused");
    assert_string_equal(json_string_value(json_object_get(o, "status")), "401");
    json_decref(o);
    fclose(f);

    free(text);
    free(line);
    free(url);
    hs_log_set_level(saved);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_limiter),      cmocka_unit_test(test_buf_cap_is_hard),
        cmocka_unit_test(test_buf_appendf_long), cmocka_unit_test(test_parse_i64),
        cmocka_unit_test(test_iso8601),          cmocka_unit_test(test_url_escape),
        cmocka_unit_test(test_url_redact),       cmocka_unit_test(test_json_tolerant_getters),
        cmocka_unit_test(test_fake_clock),       cmocka_unit_test(test_json_text),
        cmocka_unit_test(test_split_list),       cmocka_unit_test(test_cond_monotonic),
        cmocka_unit_test(test_deadline_after),   cmocka_unit_test(test_log_json),
    };
    return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
