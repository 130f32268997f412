/* test_measurements.c: the headline figures a CRM shows, read out of Hover's summarized_json and
 * sketch_json (sync/measurements.h): the shapes each figure is found in, numbers sent as strings,
 * what is absent or unusable (NULL in the store, never a failure), and documents that are not
 * measurements at all. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sync/measurements.h"

#define MODEL 17338401

static int extract(const char *summarized, const char *sketch, struct hs_measurements *m,
                   struct hs_error *err)
{
    return hs_measurements_extract(MODEL, summarized, strlen(summarized), sketch,
                                   sketch ? strlen(sketch) : 0, m, err);
}

static void assert_near(double got, double want)
{
    if (!(fabs(got - want) < 1e-9)) {
        fail_msg("got %.17g, want %.17g", got, want);
    }
}

/* A complete exterior model, as Hover nests its summary: every figure lands in its column. */
static void test_complete_exterior(void **state)
{
    (void)state;
    const char *doc = "{\"roof\":{\"area\":{\"total\":2450.5},\"facets\":{\"total\":14},"
                      "\"pitch\":{\"predominant\":\"8/12\"},\"ridges\":{\"length\":62.25},"
                      "\"hips\":{\"length\":18},\"valleys\":{\"length\":12.5},"
                      "\"rakes\":{\"length\":80},\"eaves\":{\"length\":110.75}},"
                      "\"facades\":{\"siding\":{\"area\":1820.4},\"area\":{\"total\":2300}},"
                      "\"openings\":{\"count\":23,\"area\":{\"total\":410.2}}}";
    const char *sketch = "{\"total_living_area\":2210.6,\"floors\":[]}";
    struct hs_measurements m;
    assert_int_equal(extract(doc, sketch, &m, NULL), HS_OK);
    assert_int_equal(m.model_id, MODEL);
    assert_near(m.roof_area_sqft, 2450.5);
    assert_int_equal(m.roof_facets, 14);
    assert_string_equal(m.predominant_pitch, "8/12");
    assert_near(m.ridges_ft, 62.25);
    assert_near(m.hips_ft, 18);
    assert_near(m.valleys_ft, 12.5);
    assert_near(m.rakes_ft, 80);
    assert_near(m.eaves_ft, 110.75);
    assert_near(m.siding_area_sqft, 1820.4);
    assert_near(m.facade_area_sqft, 2300);
    assert_int_equal(m.openings_count, 23);
    assert_near(m.openings_area_sqft, 410.2);
    assert_near(m.living_area_sqft, 2210.6);
    /* The raw document is kept as sent, beside the columns. */
    assert_ptr_equal(m.raw_json, doc);
    hs_measurements_clear(&m);
    assert_null(m.predominant_pitch);
}

/* The flatter shapes are read too, numbers may come as strings, and a count is rounded. */
static void test_other_shapes(void **state)
{
    (void)state;
    const char *doc = "{\"roof\":{\"area\":\"1980.25\",\"facet_count\":\"11.6\","
                      "\"predominant_pitch\":\"6/12\",\"ridges\":{\"total\":40},\"eaves\":95},"
                      "\"areas\":{\"siding\":\"1500\",\"facades\":1750.5},"
                      "\"openings\":{\"total\":17,\"total_area\":\"300.5\"}}";
    struct hs_measurements m;
    assert_int_equal(extract(doc, NULL, &m, NULL), HS_OK);
    assert_near(m.roof_area_sqft, 1980.25);
    assert_int_equal(m.roof_facets, 12);
    assert_string_equal(m.predominant_pitch, "6/12");
    assert_near(m.ridges_ft, 40);
    assert_near(m.eaves_ft, 95);
    assert_near(m.siding_area_sqft, 1500);
    assert_near(m.facade_area_sqft, 1750.5);
    assert_int_equal(m.openings_count, 17);
    assert_near(m.openings_area_sqft, 300.5);
    hs_measurements_clear(&m);

    /* A summary block under "summary", and the sketch's living area nested. */
    doc = "{\"summary\":{\"roof_area\":999}}";
    assert_int_equal(extract(doc, "{\"living_area\":{\"total\":\"1204\"}}", &m, NULL), HS_OK);
    assert_near(m.roof_area_sqft, 999);
    assert_near(m.living_area_sqft, 1204);
    hs_measurements_clear(&m);
}

/* When a figure is in two shapes, the first of its paths wins (the nested, documented one). */
static void test_first_path_wins(void **state)
{
    (void)state;
    const char *doc = "{\"roof\":{\"area\":{\"total\":100},\"total_area\":200},"
                      "\"openings\":{\"count\":3,\"total\":9}}";
    struct hs_measurements m;
    assert_int_equal(extract(doc, NULL, &m, NULL), HS_OK);
    assert_near(m.roof_area_sqft, 100);
    assert_int_equal(m.openings_count, 3);
    hs_measurements_clear(&m);
}

/* A Roof Only model has no walls: those figures are absent (NaN, -1, NULL), not zero, and the
 * document is still accepted. So is an empty object. */
static void test_absent_figures(void **state)
{
    (void)state;
    const char *doc = "{\"roof\":{\"area\":{\"total\":1200},\"facets\":{\"total\":6}},"
                      "\"accessories\":{}}";
    struct hs_measurements m;
    assert_int_equal(extract(doc, NULL, &m, NULL), HS_OK);
    assert_near(m.roof_area_sqft, 1200);
    assert_int_equal(m.roof_facets, 6);
    assert_null(m.predominant_pitch);
    assert_true(isnan(m.siding_area_sqft));
    assert_true(isnan(m.facade_area_sqft));
    assert_true(isnan(m.openings_area_sqft));
    assert_int_equal(m.openings_count, -1);
    assert_true(isnan(m.living_area_sqft));
    hs_measurements_clear(&m);

    assert_int_equal(extract("{}", NULL, &m, NULL), HS_OK);
    assert_true(isnan(m.roof_area_sqft));
    assert_true(isnan(m.ridges_ft) && isnan(m.hips_ft) && isnan(m.valleys_ft));
    assert_true(isnan(m.rakes_ft) && isnan(m.eaves_ft));
    assert_int_equal(m.roof_facets, -1);
    hs_measurements_clear(&m);
}

/* Values that are not figures are left out rather than guessed: text that is not a whole number
 * string, booleans, objects where a number belongs, a pitch that is not a string, negative
 * counts. */
static void test_unusable_values(void **state)
{
    (void)state;
    const char *doc = "{\"roof\":{\"area\":{\"total\":\"n/a\"},\"facets\":{\"total\":-3},"
                      "\"pitch\":{\"predominant\":8},\"ridges\":{\"length\":\"12ft\"},"
                      "\"hips\":{\"length\":true},\"valleys\":{\"length\":\"\"},"
                      "\"rakes\":{\"length\":{\"left\":1}},\"eaves\":{\"length\":null}},"
                      "\"openings\":{\"count\":-0.6}}";
    struct hs_measurements m;
    assert_int_equal(extract(doc, NULL, &m, NULL), HS_OK);
    assert_true(isnan(m.roof_area_sqft));
    assert_int_equal(m.roof_facets, -1);
    assert_null(m.predominant_pitch);
    assert_true(isnan(m.ridges_ft));
    assert_true(isnan(m.hips_ft));
    assert_true(isnan(m.valleys_ft));
    assert_true(isnan(m.rakes_ft));
    assert_true(isnan(m.eaves_ft));
    assert_int_equal(m.openings_count, -1);
    hs_measurements_clear(&m);

    /* Paths that run into an array or a string instead of an object. */
    assert_int_equal(extract("{\"roof\":[1,2],\"openings\":\"many\"}", NULL, &m, NULL), HS_OK);
    assert_true(isnan(m.roof_area_sqft));
    assert_int_equal(m.openings_count, -1);
    hs_measurements_clear(&m);
}

/* A summarized document that is not a JSON object is refused (HS_ERR_PARSE, said so); a sketch
 * that does not parse only loses the living area. */
static void test_not_measurements(void **state)
{
    (void)state;
    struct hs_measurements m;
    memset(&m, 0x5a, sizeof m);
    struct hs_measurements before = m;
    struct hs_error err = {0};
    assert_int_equal(extract("[1,2,3]", NULL, &m, &err), HS_ERR_PARSE);
    assert_non_null(strstr(err.msg, "not a JSON object"));
    assert_memory_equal(&m, &before, sizeof m); /* nothing written on failure */
    err = (struct hs_error){0};
    assert_int_equal(extract("{\"roof\":", NULL, &m, &err), HS_ERR_PARSE);
    assert_true(err.msg[0] != '\0');
    assert_int_equal(extract("\"text\"", NULL, &m, NULL), HS_ERR_PARSE);

    assert_int_equal(extract("{\"roof\":{\"area\":50}}", "{\"total_living_area\":", &m, NULL),
                     HS_OK);
    assert_near(m.roof_area_sqft, 50);
    assert_true(isnan(m.living_area_sqft));
    hs_measurements_clear(&m);
    /* An empty sketch is no sketch. */
    assert_int_equal(hs_measurements_extract(MODEL, "{}", 2, "", 0, &m, NULL), HS_OK);
    assert_true(isnan(m.living_area_sqft));
    hs_measurements_clear(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_complete_exterior), cmocka_unit_test(test_other_shapes),
        cmocka_unit_test(test_first_path_wins),   cmocka_unit_test(test_absent_figures),
        cmocka_unit_test(test_unusable_values),   cmocka_unit_test(test_not_measurements),
    };
    return cmocka_run_group_tests_name("sync-measurements", tests, NULL, NULL);
}
