/* test_verify.c: the format checks of downloaded artifacts (src/sync/verify.c): which format a
 * kind and Content-Type name, and whole versus cut PDF, JPEG and JSON bodies, fed in pieces as a
 * download delivers them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sync/verify.h"

static const char pdf[] = "%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n"
                          "startxref\n0\n%%EOF\n";
static const unsigned char jpeg[] = {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J',  'F',
                                     'I',  'F',  0x00, 0x01, 0x02, 0x03, 0xFF, 0xD9};

/* Feeds body in pieces of `piece` bytes (a download's callbacks) and checks it as format f. */
static int check(enum hs_format f, const void *body, size_t len, size_t piece)
{
    struct hs_body_ends e = {0};
    const unsigned char *p = body;
    for (size_t off = 0; off < len; off += piece)
        hs_body_ends_feed(&e, p + off, len - off < piece ? len - off : piece);
    assert_int_equal(e.bytes, (int64_t)len);
    struct hs_error err = {0};
    int rc = hs_format_check(f, &e, body, len, &err);
    if (rc)
        assert_true(err.msg[0] != '\0');
    return rc;
}

static void test_format_of(void **state)
{
    (void)state;
    assert_int_equal(hs_format_of("measurements.pdf", "application/pdf"), HS_FORMAT_PDF);
    assert_int_equal(hs_format_of("x", "Application/PDF; charset=binary"), HS_FORMAT_PDF);
    assert_int_equal(hs_format_of("image.1", "image/jpeg"), HS_FORMAT_JPEG);
    assert_int_equal(hs_format_of("measurements.json", "application/json; charset=utf-8"),
                     HS_FORMAT_JSON);
    assert_int_equal(hs_format_of("cad_export_fml", "application/vnd.api+json"), HS_FORMAT_JSON);
    /* A generic binary type or none: the kind's name tells. */
    assert_int_equal(hs_format_of("measurements.pdf", "binary/octet-stream"), HS_FORMAT_PDF);
    assert_int_equal(hs_format_of("measurements.pdf", NULL), HS_FORMAT_PDF);
    assert_int_equal(hs_format_of("measurements.full_json", NULL), HS_FORMAT_JSON);
    assert_int_equal(hs_format_of("photo.jpg", "application/octet-stream"), HS_FORMAT_JPEG);
    /* A specific type wins over the name; unknown formats are not checked. */
    assert_int_equal(hs_format_of("image.1", "image/png"), HS_FORMAT_NONE);
    assert_int_equal(hs_format_of("measurements.xlsx", "application/vnd.openxmlformats-"
                                                       "officedocument.spreadsheetml.sheet"),
                     HS_FORMAT_NONE);
    assert_int_equal(hs_format_of("cad_exports.skp", NULL), HS_FORMAT_NONE);
    assert_int_equal(hs_format_of(NULL, NULL), HS_FORMAT_NONE);
    assert_string_equal(hs_format_name(HS_FORMAT_PDF), "PDF");
}

static void test_pdf(void **state)
{
    (void)state;
    size_t n = strlen(pdf);
    for (size_t piece = 1; piece <= n; piece += 7)
        assert_int_equal(check(HS_FORMAT_PDF, pdf, n, piece), HS_OK);
    /* Cut anywhere before the trailer: incomplete. */
    assert_int_equal(check(HS_FORMAT_PDF, pdf, n / 2, 5), HS_ERR_PARSE);
    assert_int_equal(check(HS_FORMAT_PDF, pdf, n - 4, 1), HS_ERR_PARSE);
    assert_int_equal(check(HS_FORMAT_PDF, pdf, 0, 1), HS_ERR_PARSE);
    assert_int_equal(check(HS_FORMAT_PDF, "<html>%%EOF", 11, 3), HS_ERR_PARSE);
    /* %%EOF must be near the end: one far before a long tail does not count. */
    static char big[5000];
    memset(big, ' ', sizeof big);
    memcpy(big, pdf, n);
    assert_int_equal(check(HS_FORMAT_PDF, big, sizeof big, 333), HS_ERR_PARSE);
    memcpy(big + sizeof big - 7, "%%EOF\r\n", 7);
    assert_int_equal(check(HS_FORMAT_PDF, big, sizeof big, 333), HS_OK);
    assert_int_equal(check(HS_FORMAT_PDF, big, sizeof big, sizeof big), HS_OK);
}

static void test_jpeg(void **state)
{
    (void)state;
    assert_int_equal(check(HS_FORMAT_JPEG, jpeg, sizeof jpeg, 1), HS_OK);
    assert_int_equal(check(HS_FORMAT_JPEG, jpeg, sizeof jpeg, 5), HS_OK);
    assert_int_equal(check(HS_FORMAT_JPEG, jpeg, sizeof jpeg - 1, 4), HS_ERR_PARSE);
    assert_int_equal(check(HS_FORMAT_JPEG, jpeg, 8, 4), HS_ERR_PARSE);
    assert_int_equal(check(HS_FORMAT_JPEG, jpeg + 1, sizeof jpeg - 1, 4), HS_ERR_PARSE);
    /* Padding after the end marker is allowed. */
    unsigned char padded[sizeof jpeg + 3];
    memcpy(padded, jpeg, sizeof jpeg);
    memset(padded + sizeof jpeg, 0, 3);
    assert_int_equal(check(HS_FORMAT_JPEG, padded, sizeof padded, 2), HS_OK);
}

static void test_json_and_none(void **state)
{
    (void)state;
    const char *doc = "{\"roof\":{\"area\":{\"total\":2450.3}}}";
    assert_int_equal(check(HS_FORMAT_JSON, doc, strlen(doc), 4), HS_OK);
    assert_int_equal(check(HS_FORMAT_JSON, doc, strlen(doc) / 2, 4), HS_ERR_PARSE);
    assert_int_equal(check(HS_FORMAT_JSON, doc, 0, 1), HS_ERR_PARSE);
    /* Nothing to check for other formats, whatever the bytes. */
    assert_int_equal(check(HS_FORMAT_NONE, "PK\x03", 3, 1), HS_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_of),
        cmocka_unit_test(test_pdf),
        cmocka_unit_test(test_jpeg),
        cmocka_unit_test(test_json_and_none),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
