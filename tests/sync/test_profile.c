/* test_profile.c: the artifact profile (src/sync/profile.c): its names parsed and refused with
 * the valid ones, and which artifacts and images of a model each profile downloads; the
 * measurements JSON of "default" follows the model's deliverable as the extraction does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/mem.h"
#include "sync/profile.h"

/* A model with these artifact kinds and n_images images (the first without a URL when
 * first_without_url). */
static struct hs_model *model_of(const char *const *kinds, size_t n_images, bool first_without_url)
{
    struct hs_model *m = hs_calloc(1, sizeof *m);
    m->id = 17338410;
    size_t n = 0;
    while (kinds[n])
        n++;
    m->artifacts = hs_calloc(n + 1, sizeof *m->artifacts);
    for (size_t i = 0; i < n; i++) {
        m->artifacts[i].kind = hs_strdup(kinds[i]);
        m->artifacts[i].url = hs_strdup("https://hover.to/x");
    }
    m->n_artifacts = n;
    m->images = hs_calloc(n_images + 1, sizeof *m->images);
    for (size_t i = 0; i < n_images; i++) {
        m->images[i].id = 100 + (int64_t)i;
        m->images[i].url = i == 0 && first_without_url ? NULL : hs_strdup("https://hover.to/i");
    }
    m->n_images = n_images;
    return m;
}

static void model_free(struct hs_model *m)
{
    for (size_t i = 0; i < m->n_artifacts; i++) {
        free(m->artifacts[i].kind);
        free(m->artifacts[i].url);
    }
    for (size_t i = 0; i < m->n_images; i++)
        free(m->images[i].url);
    free(m->artifacts);
    free(m->images);
    free(m);
}

/* The kinds p downloads of m, then the indexes of the images: "a,b|0,1". */
static char *wanted(const char *list, const struct hs_model *m)
{
    struct hs_profile p;
    struct hs_error err = {0};
    if (hs_profile_parse(list, &p, &err) != HS_OK)
        fail_msg("%s: %s", list, err.msg);
    char buf[1024] = "";
    size_t len = 0;
    for (size_t i = 0; i < m->n_artifacts; i++)
        if (hs_profile_wants_artifact(&p, m, m->artifacts[i].kind))
            len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", len ? "," : "",
                                    m->artifacts[i].kind);
    len += (size_t)snprintf(buf + len, sizeof buf - len, "|");
    bool first = true;
    for (size_t i = 0; i < m->n_images; i++)
        if (hs_profile_wants_image(&p, m, i)) {
            len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%zu", first ? "" : ",", i);
            first = false;
        }
    return hs_strdup(buf);
}

#define ASSERT_WANTED(list, m, expect)                                                             \
    do {                                                                                           \
        char *got_ = wanted(list, m);                                                              \
        assert_string_equal(got_, expect);                                                         \
        free(got_);                                                                                \
    } while (0)

static const char *const complete_kinds[] = {
    "measurements.pdf",
    "measurements.json",
    "measurements.full_json",
    "measurements.roof_lines",
    "measurements.paint_measurements",
    "measurements.xlsx",
    "cad_exports.skp",
    "cad_exports.xml",
    NULL,
};

static void test_default_is_what_a_crm_record_shows(void **state)
{
    (void)state;
    /* Roof and complete deliverables: the summarized JSON ("json" in Show Job). */
    struct hs_model *m = model_of(complete_kinds, 3, false);
    ASSERT_WANTED("default", m, "measurements.pdf,measurements.json|0");
    ASSERT_WANTED("all", m,
                  "measurements.pdf,measurements.json,measurements.full_json,"
                  "measurements.roof_lines,measurements.paint_measurements,measurements.xlsx,"
                  "cad_exports.skp,cad_exports.xml|0,1,2");
    model_free(m);
    /* Total living area (5, 6): the sketch JSON. */
    static const char *const tla[] = {"measurements.pdf", "measurements.sketch_json",
                                      "measurements.xlsx", "cad_exports.skp", NULL};
    m = model_of(tla, 1, false);
    ASSERT_WANTED("default", m, "measurements.pdf,measurements.sketch_json|0");
    model_free(m);
    /* Interior (8): the full JSON. */
    static const char *const interior[] = {"measurements.pdf", "measurements.full_json",
                                           "measurements.xlsx", "cad_export_fml", NULL};
    m = model_of(interior, 2, false);
    ASSERT_WANTED("default", m, "measurements.pdf,measurements.full_json|0");
    model_free(m);
    /* A summarized version named as such counts as the summary. */
    static const char *const named[] = {"measurements.full_json", "measurements.summarized_json",
                                        NULL};
    m = model_of(named, 0, false);
    ASSERT_WANTED("default", m, "measurements.summarized_json|");
    model_free(m);
}

static void test_lists_combine(void **state)
{
    (void)state;
    struct hs_model *m = model_of(complete_kinds, 3, true);
    /* The first image with a URL is the first image. */
    ASSERT_WANTED("default", m, "measurements.pdf,measurements.json|1");
    ASSERT_WANTED("default, measurements.xlsx ,images:none", m,
                  "measurements.pdf,measurements.json,measurements.xlsx|");
    ASSERT_WANTED("cad_exports.skp,images:all", m, "cad_exports.skp|0,1,2");
    ASSERT_WANTED("images:first", m, "|1");
    ASSERT_WANTED("measurements.full_json", m, "measurements.full_json|");
    ASSERT_WANTED("images:none,all", m,
                  "measurements.pdf,measurements.json,measurements.full_json,"
                  "measurements.roof_lines,measurements.paint_measurements,measurements.xlsx,"
                  "cad_exports.skp,cad_exports.xml|0,1,2");
    model_free(m);
    /* A kind Hover offers that no profile names goes with "all" only. */
    static const char *const odd[] = {"measurements.pdf", "exports.esx", NULL};
    m = model_of(odd, 0, false);
    ASSERT_WANTED("default", m, "measurements.pdf|");
    ASSERT_WANTED("all", m, "measurements.pdf,exports.esx|");
    model_free(m);
}

static void test_unknown_names_are_refused_with_the_valid_ones(void **state)
{
    (void)state;
    struct hs_profile p = {.all = true};
    struct hs_error err = {0};
    assert_int_equal(hs_profile_parse("default,measurements.pfd", &p, &err), HS_ERR_INVALID);
    assert_non_null(strstr(err.msg, "'measurements.pfd'"));
    assert_non_null(strstr(err.msg, "images:none|first|all"));
    assert_non_null(strstr(err.msg, "measurements.pdf|json|"));
    assert_non_null(strstr(err.msg, "cad_exports.skp|xml"));
    assert_non_null(strstr(err.msg, "cad_export_fml)"));
    assert_true(p.all); /* untouched on failure */
    memset(&err, 0, sizeof err);
    assert_int_equal(hs_profile_parse("images:some", &p, &err), HS_ERR_INVALID);
    assert_int_equal(hs_profile_parse("", &p, &err), HS_ERR_INVALID);
    assert_int_equal(hs_profile_parse(" , ", &p, &err), HS_ERR_INVALID);
    assert_int_equal(hs_profile_parse(NULL, &p, &err), HS_ERR_INVALID);
    assert_int_equal(hs_profile_parse("ALL", &p, &err), HS_ERR_INVALID);
    /* Every kind the table lists parses. */
    for (int i = 0; hs_profile_kinds[i]; i++)
        assert_int_equal(hs_profile_parse(hs_profile_kinds[i], &p, NULL), HS_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_is_what_a_crm_record_shows),
        cmocka_unit_test(test_lists_combine),
        cmocka_unit_test(test_unknown_names_are_refused_with_the_valid_ones),
    };
    return cmocka_run_group_tests_name("sync profile", tests, NULL, NULL);
}
