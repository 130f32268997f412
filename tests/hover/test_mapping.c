/* test_mapping.c: Hover job JSON into hs_job / hs_job_page (src/hover/mapping.c). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/mem.h"
#include "hoversync.h"

/* cmocka 1.1.5 (Debian 12) has no assert_double_equal. */
#define assert_near(a, b, eps) assert_true(fabs((double)(a) - (double)(b)) <= (eps))

/* hover-api.md 3.4, verbatim (placeholders included). */
static const char sample_job[] =
    "{ \"id\": 15084303, \"name\": \"Main House\", \"reconstruction_state\": \"completed\",\n"
    "  \"external_identifier\": \"8675309\", \"org\": {\"id\": 463605},\n"
    "  \"address\": {\"location_line_1\": \"4312 Meadow Drive\", \"location_line_2\": \"\", "
    "\"city\": \"Santa Maria\",\n"
    "              \"region\": \"CA\", \"postal_code\": \"93455\", \"country\": \"US\",\n"
    "              \"latitude\": \"34.8784998\", \"longitude\": \"-120.4139807\"},\n"
    "  \"customer\": {\"first_name\": null, \"name\": null, \"email\": null, \"phone\": null},\n"
    "  \"captures\": [{\"id\": 558711, \"client_identifier\": \"<uuid>\", \"name\": null, "
    "\"state\": \"completed\",\n"
    "                \"capture_by\": \"<email>\", \"type\": \"sparse_exterior\", "
    "\"deliverable\": \"complete\",\n"
    "                \"created_at\": \"2025-03-16T23:55:50.094Z\", \"updated_at\": \"...\"}],\n"
    "  \"models\": [{\"id\": 17338410, \"name\": \"Garage\", \"state\": \"complete\", "
    "\"deliverable\": \"complete\",\n"
    "              \"capture_id\": 558714, \"created_at\": \"...\", \"updated_at\": \"...\",\n"
    "              \"artifacts\": {\"measurements\": {\"pdf\": \"<url>\", \"json\": \"<url>\", "
    "\"xlsx\": \"<url>\"},\n"
    "                            \"cad_exports\": {\"skp\": \"<url>\", \"xml\": \"<url>\"}},\n"
    "              \"images\": [{\"id\": 166283885, \"url\": \"<url>\", \"created_at\": "
    "\"...\"}]}] }\n";

/* The sample with real URLs in place of the placeholders. */
static char *sample_with_urls(void)
{
    struct hs_buf b;
    hs_buf_init(&b, 1 << 20);
    const char *p = sample_job;
    int n = 0;
    const char *hit;
    while ((hit = strstr(p, "<url>")) != NULL) {
        hs_buf_append(&b, p, (size_t)(hit - p));
        hs_buf_appendf(&b, "https://hover.to/api/v3/files/%d", n++);
        p = hit + 5;
    }
    hs_buf_appends(&b, p);
    return hs_buf_take(&b, NULL);
}

static struct hs_job *job_ok(const char *json)
{
    struct hs_job *j = NULL;
    struct hs_error err = {0};
    int rc = hs_job_from_json(json, strlen(json), &j, &err);
    if (rc != HS_OK)
        fprintf(stderr, "hs_job_from_json: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    assert_non_null(j);
    return j;
}

static struct hs_job_page *page_ok(const char *json)
{
    struct hs_job_page *p = NULL;
    struct hs_error err = {0};
    int rc = hs_job_page_from_json(json, strlen(json), &p, &err);
    if (rc != HS_OK)
        fprintf(stderr, "hs_job_page_from_json: %s\n", err.msg);
    assert_int_equal(rc, HS_OK);
    assert_non_null(p);
    return p;
}

static const struct hs_artifact_ref *find_artifact(const struct hs_model *m, const char *kind)
{
    for (size_t i = 0; i < m->n_artifacts; i++)
        if (strcmp(m->artifacts[i].kind, kind) == 0)
            return &m->artifacts[i];
    return NULL;
}

static void test_sample_job_verbatim(void **state)
{
    (void)state;
    struct hs_job *j = job_ok(sample_job);
    assert_int_equal(j->id, 15084303);
    assert_string_equal(j->name, "Main House");
    assert_string_equal(j->reconstruction_state, "completed");
    assert_string_equal(j->external_identifier, "8675309");
    assert_int_equal(j->org_id, 463605);
    assert_string_equal(j->address.line1, "4312 Meadow Drive");
    assert_string_equal(j->address.line2, "");
    assert_string_equal(j->address.city, "Santa Maria");
    assert_string_equal(j->address.region, "CA");
    assert_string_equal(j->address.postal_code, "93455");
    assert_string_equal(j->address.country, "US");
    assert_true(j->address.has_coords);
    assert_near(j->address.latitude, 34.8784998, 1e-9);
    assert_near(j->address.longitude, -120.4139807, 1e-9);
    assert_null(j->customer.first_name);
    assert_null(j->customer.name);
    assert_null(j->customer.email);
    assert_null(j->customer.phone);

    assert_int_equal(j->n_captures, 1);
    assert_int_equal(j->captures[0].id, 558711);
    assert_string_equal(j->captures[0].client_identifier, "<uuid>");
    assert_null(j->captures[0].name);
    assert_string_equal(j->captures[0].state, "completed");
    assert_string_equal(j->captures[0].capture_by, "<email>");
    assert_string_equal(j->captures[0].type, "sparse_exterior");
    assert_string_equal(j->captures[0].deliverable, "complete");
    assert_string_equal(j->captures[0].created_at, "2025-03-16T23:55:50.094Z");

    assert_int_equal(j->n_models, 1);
    const struct hs_model *m = &j->models[0];
    assert_int_equal(m->id, 17338410);
    assert_string_equal(m->name, "Garage");
    assert_string_equal(m->state, "complete");
    assert_true(hs_model_is_complete(m));
    assert_string_equal(m->deliverable, "complete");
    assert_int_equal(m->deliverable_id, 3);
    assert_int_equal(m->capture_id, 558714);
    /* "<url>" placeholders are not URLs: nothing to download. */
    assert_int_equal(m->n_artifacts, 0);
    assert_int_equal(m->n_images, 1);
    assert_int_equal(m->images[0].id, 166283885);
    assert_string_equal(m->images[0].url, "<url>");
    assert_non_null(j->raw_json);
    assert_null(strchr(j->raw_json, '\n')); /* compact */
    assert_non_null(strstr(j->raw_json, "\"external_identifier\":\"8675309\""));
    hs_job_free(j);
}

static void test_sample_job_artifacts(void **state)
{
    (void)state;
    char *json = sample_with_urls();
    struct hs_job *j = job_ok(json);
    const struct hs_model *m = &j->models[0];
    assert_int_equal(m->n_artifacts, 5);
    static const char *const kinds[] = {"measurements.pdf", "measurements.json",
                                        "measurements.xlsx", "cad_exports.skp", "cad_exports.xml"};
    for (int i = 0; i < 5; i++) {
        const struct hs_artifact_ref *a = find_artifact(m, kinds[i]);
        assert_non_null(a);
        assert_true(strncmp(a->url, "https://hover.to/api/v3/files/", 30) == 0);
    }
    assert_string_equal(find_artifact(m, "measurements.pdf")->url,
                        "https://hover.to/api/v3/files/0");
    assert_string_equal(m->images[0].url, "https://hover.to/api/v3/files/5");
    hs_job_free(j);
    free(json);
}

static void test_nulls_everywhere(void **state)
{
    (void)state;
    const char *json =
        "{\"id\":null,\"name\":null,\"reconstruction_state\":null,\"external_identifier\":null,"
        "\"org\":null,\"address\":null,\"customer\":null,\"captures\":null,\"models\":null,"
        "\"archived\":null,\"created_at\":null,\"deliverable_id\":null}";
    struct hs_job *j = job_ok(json);
    assert_int_equal(j->id, 0);
    assert_null(j->name);
    assert_null(j->reconstruction_state);
    assert_int_equal(j->org_id, 0);
    assert_false(j->address.has_coords);
    assert_null(j->address.line1);
    assert_int_equal(j->n_models, 0);
    assert_int_equal(j->n_captures, 0);
    assert_false(j->archived);
    hs_job_free(j);

    json = "{\"id\":1,\"models\":[null,{\"id\":null,\"state\":null,\"artifacts\":null,"
           "\"images\":[null,{\"id\":null,\"url\":null}],\"deliverable\":null}],"
           "\"captures\":[null,{}],\"address\":{\"latitude\":null,\"longitude\":\"1.5\"}}";
    j = job_ok(json);
    assert_int_equal(j->n_models, 1);
    assert_int_equal(j->models[0].id, 0);
    assert_null(j->models[0].state);
    assert_false(hs_model_is_complete(&j->models[0]));
    assert_int_equal(j->models[0].n_artifacts, 0);
    assert_int_equal(j->models[0].n_images, 1);
    assert_null(j->models[0].images[0].url);
    assert_int_equal(j->n_captures, 1);
    assert_false(j->address.has_coords);
    hs_job_free(j);

    /* An empty object is a job with nothing known. */
    j = job_ok("{}");
    assert_int_equal(j->id, 0);
    assert_string_equal(j->raw_json, "{}");
    hs_job_free(j);
    assert_false(hs_model_is_complete(NULL));
}

static void test_ids_as_strings_and_64bit(void **state)
{
    (void)state;
    const char *json = "{\"id\":\"9007199254740993\",\"org\":{\"id\":\"463605\"},"
                       "\"models\":[{\"id\":9223372036854775807,\"capture_id\":\"558714\","
                       "\"deliverable_id\":\"2\",\"images\":[{\"id\":\"166283885\"}]}],"
                       "\"captures\":[{\"id\":\"-5\"}]}";
    struct hs_job *j = job_ok(json);
    assert_int_equal(j->id, 9007199254740993LL); /* 2^53 + 1: a double would lose it */
    assert_int_equal(j->org_id, 463605);
    assert_int_equal(j->models[0].id, INT64_MAX);
    assert_int_equal(j->models[0].capture_id, 558714);
    assert_int_equal(j->models[0].deliverable_id, 2);
    assert_null(j->models[0].deliverable);
    assert_int_equal(j->models[0].images[0].id, 166283885);
    assert_int_equal(j->captures[0].id, -5);
    hs_job_free(j);

    /* Not a number: 0, no failure. */
    j = job_ok("{\"id\":\"12abc\",\"org_id\":77}");
    assert_int_equal(j->id, 0);
    assert_int_equal(j->org_id, 77);
    hs_job_free(j);
}

static void test_lat_lon_forms(void **state)
{
    (void)state;
    struct hs_job *j = job_ok("{\"address\":{\"latitude\":34.5,\"longitude\":-120.25}}");
    assert_true(j->address.has_coords);
    assert_near(j->address.latitude, 34.5, 1e-12);
    assert_near(j->address.longitude, -120.25, 1e-12);
    hs_job_free(j);

    j = job_ok("{\"address\":{\"latitude\":\"34.5\",\"longitude\":-120}}");
    assert_true(j->address.has_coords);
    assert_near(j->address.longitude, -120.0, 1e-12);
    hs_job_free(j);

    /* Unusable values: no coordinates rather than zeros. */
    j = job_ok("{\"address\":{\"latitude\":\"\",\"longitude\":\"-120\"}}");
    assert_false(j->address.has_coords);
    hs_job_free(j);
    j = job_ok("{\"address\":{\"latitude\":\"north\",\"longitude\":\"-120\"}}");
    assert_false(j->address.has_coords);
    hs_job_free(j);
    j = job_ok("{\"address\":{\"latitude\":\"95\",\"longitude\":\"10\"}}");
    assert_false(j->address.has_coords);
    hs_job_free(j);
}

static void test_unknown_fields_and_states_kept(void **state)
{
    (void)state;
    const char *json = "{\"id\":5,\"reconstruction_state\":\"reticulating\",\"shiny_new\":"
                       "{\"a\":[1,2,3]},\"models\":[{\"id\":6,\"state\":\"reticulating_splines\","
                       "\"future\":true}]}";
    struct hs_job *j = job_ok(json);
    assert_string_equal(j->reconstruction_state, "reticulating");
    assert_string_equal(j->models[0].state, "reticulating_splines");
    assert_false(hs_model_is_complete(&j->models[0]));
    assert_non_null(strstr(j->raw_json, "\"shiny_new\":{\"a\":[1,2,3]}"));
    assert_non_null(strstr(j->raw_json, "\"future\":true"));
    hs_job_free(j);

    /* "completed" is the job's word; a model must say exactly "complete". */
    j = job_ok("{\"models\":[{\"state\":\"completed\"},{\"state\":\"Complete\"},"
               "{\"state\":\"complete\"}]}");
    assert_false(hs_model_is_complete(&j->models[0]));
    assert_false(hs_model_is_complete(&j->models[1]));
    assert_true(hs_model_is_complete(&j->models[2]));
    hs_job_free(j);
}

static void test_artifacts_recursive(void **state)
{
    (void)state;
    const char *json =
        "{\"models\":[{\"id\":1,\"state\":\"complete\",\"artifacts\":{"
        "\"measurements\":{\"pdf\":\"https://h/x.pdf\",\"versions\":{\"full_json\":"
        "\"https://h/full\",\"summarized_json\":{\"url\":\"HTTP://H/SUM\"}}},"
        "\"note\":\"not a url\",\"count\":4,\"flag\":true,\"ftp\":\"ftp://h/file\","
        "\"empty\":{},\"relative\":\"/api/v3/x\",\"nothing\":null,"
        "\"images\":[\"http://h/0.jpg\",{\"big\":\"https://h/1.jpg\"},[\"https://h/2.jpg\"]],"
        "\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":\"https://h/deep\"}}}}}}}]}";
    struct hs_job *j = job_ok(json);
    const struct hs_model *m = &j->models[0];
    assert_int_equal(m->n_artifacts, 7);
    assert_string_equal(find_artifact(m, "measurements.pdf")->url, "https://h/x.pdf");
    assert_string_equal(find_artifact(m, "measurements.versions.full_json")->url, "https://h/full");
    assert_string_equal(find_artifact(m, "measurements.versions.summarized_json.url")->url,
                        "HTTP://H/SUM");
    assert_string_equal(find_artifact(m, "images.0")->url, "http://h/0.jpg");
    assert_string_equal(find_artifact(m, "images.1.big")->url, "https://h/1.jpg");
    assert_string_equal(find_artifact(m, "images.2.0")->url, "https://h/2.jpg");
    assert_string_equal(find_artifact(m, "a.b.c.d.e.f")->url, "https://h/deep");
    assert_null(find_artifact(m, "note"));
    assert_null(find_artifact(m, "ftp"));
    assert_null(find_artifact(m, "relative"));
    /* Document order is kept: the first key comes first. */
    assert_string_equal(m->artifacts[0].kind, "measurements.pdf");
    hs_job_free(j);

    /* artifacts as a bare array or string */
    j = job_ok("{\"models\":[{\"artifacts\":[\"https://h/a\",\"x\"]},{\"artifacts\":"
               "\"https://h/b\"}]}");
    assert_int_equal(j->models[0].n_artifacts, 1);
    assert_string_equal(j->models[0].artifacts[0].kind, "0");
    assert_int_equal(j->models[1].n_artifacts, 1);
    assert_string_equal(j->models[1].artifacts[0].kind, "url");
    hs_job_free(j);
}

static void test_artifacts_too_deep_ignored(void **state)
{
    (void)state;
    struct hs_buf b;
    hs_buf_init(&b, 1 << 20);
    hs_buf_appends(&b, "{\"models\":[{\"artifacts\":");
    for (int i = 0; i < 200; i++)
        hs_buf_appends(&b, "{\"k\":");
    hs_buf_appends(&b, "\"https://h/too-deep\"");
    for (int i = 0; i < 200; i++)
        hs_buf_appends(&b, "}");
    hs_buf_appends(&b, "}]}");
    struct hs_job *j = job_ok(hs_buf_str(&b));
    assert_int_equal(j->models[0].n_artifacts, 0);
    hs_job_free(j);
    hs_buf_free(&b);
}

static void test_deliverable_forms(void **state)
{
    (void)state;
    struct hs_job *j =
        job_ok("{\"deliverable_id\":3,\"models\":[{\"deliverable\":\"roof_only\"},"
               "{\"deliverable\":7},{\"deliverable\":{\"id\":8,\"name\":\"interior\"}},"
               "{\"deliverable\":\"total_living_area\",\"deliverable_id\":6}]}");
    assert_int_equal(j->deliverable_id, 3);
    assert_string_equal(j->models[0].deliverable, "roof_only");
    assert_int_equal(j->models[0].deliverable_id, 2);
    assert_null(j->models[1].deliverable);
    assert_int_equal(j->models[1].deliverable_id, 7);
    assert_string_equal(j->models[2].deliverable, "interior");
    assert_int_equal(j->models[2].deliverable_id, 8);
    assert_string_equal(j->models[3].deliverable, "total_living_area");
    assert_int_equal(j->models[3].deliverable_id, 6);
    hs_job_free(j);
}

static void test_v2_list_total_pages(void **state)
{
    (void)state;
    const char *json =
        "{\"pagination\":{\"current_page\":1,\"total_pages\":3,\"total\":60},\"results\":["
        "{\"id\":11,\"name\":\"Old\",\"state\":\"complete\",\"location_line_1\":\"1 Elm St\","
        "\"location_line_2\":null,\"location_city\":\"Springfield\",\"location_region\":\"IL\","
        "\"location_postal_code\":\"62701\",\"location_country\":\"US\","
        "\"location_lat\":\"39.78\",\"location_lon\":\"-89.65\",\"customer_name\":\"Pat\","
        "\"deliverable_id\":3,\"archived\":false}]}";
    struct hs_job_page *p = page_ok(json);
    assert_int_equal(p->n_jobs, 1);
    assert_int_equal(p->current_page, 1);
    assert_int_equal(p->total_pages, 3);
    assert_int_equal(p->total, 60);
    assert_int_equal(p->next_page, 0); /* not said */
    assert_true(p->has_more);
    const struct hs_job *j = &p->jobs[0];
    assert_int_equal(j->id, 11);
    assert_string_equal(j->reconstruction_state, "complete"); /* from v2 `state` */
    assert_string_equal(j->address.line1, "1 Elm St");
    assert_null(j->address.line2);
    assert_string_equal(j->address.city, "Springfield");
    assert_string_equal(j->address.region, "IL");
    assert_string_equal(j->address.postal_code, "62701");
    assert_string_equal(j->address.country, "US");
    assert_true(j->address.has_coords);
    assert_near(j->address.latitude, 39.78, 1e-9);
    assert_string_equal(j->customer.name, "Pat");
    assert_int_equal(j->deliverable_id, 3);
    assert_non_null(strstr(j->raw_json, "\"location_city\":\"Springfield\""));
    hs_job_page_free(p);

    p = page_ok("{\"pagination\":{\"current_page\":3,\"total_pages\":3,\"total\":60},"
                "\"results\":[{\"id\":1}]}");
    assert_false(p->has_more);
    hs_job_page_free(p);

    /* v3 wins over v2 when both are there */
    p = page_ok("{\"results\":[{\"reconstruction_state\":\"failed\",\"state\":\"complete\"}],"
                "\"pagination\":{\"current_page\":\"2\",\"total_pages\":\"5\"}}");
    assert_string_equal(p->jobs[0].reconstruction_state, "failed");
    assert_int_equal(p->current_page, 2);
    assert_true(p->has_more);
    hs_job_page_free(p);
}

static void test_v3_next_page(void **state)
{
    (void)state;
    struct hs_job_page *p =
        page_ok("{\"results\":[{\"id\":1},{\"id\":2}],\"pagination\":{\"current_page\":1,"
                "\"next_page\":2}}");
    assert_int_equal(p->n_jobs, 2);
    assert_true(p->has_more);
    assert_int_equal(p->next_page, 2);
    assert_int_equal(p->total, -1);
    hs_job_page_free(p);

    p = page_ok("{\"results\":[{\"id\":1}],\"pagination\":{\"current_page\":4,"
                "\"next_page\":null,\"total_pages\":9}}");
    assert_false(p->has_more); /* next_page null wins */
    assert_int_equal(p->next_page, 0);
    hs_job_page_free(p);

    /* A next page that does not move forward would loop: stop. */
    p = page_ok("{\"results\":[{\"id\":1}],\"pagination\":{\"current_page\":4,"
                "\"next_page\":4}}");
    assert_false(p->has_more);
    hs_job_page_free(p);

    /* No pagination at all: only an empty page stops. */
    p = page_ok("{\"results\":[{\"id\":1}]}");
    assert_true(p->has_more);
    hs_job_page_free(p);
}

static void test_empty_results(void **state)
{
    (void)state;
    struct hs_job_page *p =
        page_ok("{\"results\":[],\"pagination\":{\"current_page\":1,\"next_page\":2}}");
    assert_int_equal(p->n_jobs, 0);
    assert_false(p->has_more);
    hs_job_page_free(p);
    p = page_ok("{\"results\":null}");
    assert_int_equal(p->n_jobs, 0);
    assert_false(p->has_more);
    hs_job_page_free(p);
}

static void expect_job_error(const char *json, size_t len, int code)
{
    struct hs_job *j = (struct hs_job *)0x1;
    struct hs_error err = {0};
    assert_int_equal(hs_job_from_json(json, len, &j, &err), code);
    assert_ptr_equal(j, (struct hs_job *)0x1); /* untouched */
    assert_int_equal(err.code, code);
    assert_true(err.msg[0] != '\0');
}

static void expect_page_error(const char *json, size_t len, int code)
{
    struct hs_job_page *p = (struct hs_job_page *)0x1;
    struct hs_error err = {0};
    assert_int_equal(hs_job_page_from_json(json, len, &p, &err), code);
    assert_ptr_equal(p, (struct hs_job_page *)0x1);
    assert_int_equal(err.code, code);
}

static void test_parse_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",        "{",  "{\"id\":}", "not json", "{\"id\":1,}", "[{\"id\":1}]",
        "\"job\"", "42", "null",      "true"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        expect_job_error(bad[i], strlen(bad[i]), HS_ERR_PARSE);
        expect_page_error(bad[i], strlen(bad[i]), HS_ERR_PARSE);
    }
    /* truncated sample */
    expect_job_error(sample_job, sizeof sample_job / 2, HS_ERR_PARSE);
    expect_job_error(sample_job, strlen(sample_job) - 3, HS_ERR_PARSE);
    expect_page_error("{\"results\":[{\"id\":1}", 20, HS_ERR_PARSE);
    /* results of the wrong type, or missing */
    expect_page_error("{\"results\":{\"id\":1}}", 20, HS_ERR_PARSE);
    expect_page_error("{\"results\":\"none\"}", 18, HS_ERR_PARSE);
    expect_page_error("{\"pagination\":{}}", 17, HS_ERR_PARSE);
    /* trailing garbage */
    expect_job_error("{\"id\":1} x", 10, HS_ERR_PARSE);
}

static void test_over_cap(void **state)
{
    (void)state;
    size_t n = (size_t)HS_JSON_MAX_BYTES + 1;
    char *big = hs_malloc(n);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    expect_job_error(big, n, HS_ERR_TOOBIG);
    expect_page_error(big, n, HS_ERR_TOOBIG);
    free(big);
}

static void test_thousand_models(void **state)
{
    (void)state;
    struct hs_buf b;
    hs_buf_init(&b, 8 << 20);
    hs_buf_appends(&b, "{\"id\":1,\"models\":[");
    for (int i = 0; i < 1000; i++)
        hs_buf_appendf(&b,
                       "%s{\"id\":%d,\"name\":\"Level %d\",\"state\":\"%s\",\"artifacts\":"
                       "{\"measurements\":{\"pdf\":\"https://h/m/%d.pdf\"}},\"images\":"
                       "[{\"id\":%d,\"url\":\"https://h/i/%d.jpg\"}]}",
                       i ? "," : "", 1000 + i, i, i % 3 ? "complete" : "failed", i, i, i);
    hs_buf_appends(&b, "]}");
    struct hs_job *j = job_ok(hs_buf_str(&b));
    assert_int_equal(j->n_models, 1000);
    size_t complete = 0;
    for (size_t i = 0; i < j->n_models; i++) {
        assert_int_equal(j->models[i].id, 1000 + (int64_t)i);
        assert_int_equal(j->models[i].n_artifacts, 1);
        assert_int_equal(j->models[i].n_images, 1);
        complete += hs_model_is_complete(&j->models[i]);
    }
    assert_int_equal(complete, 666);
    assert_string_equal(j->models[999].artifacts[0].url, "https://h/m/999.pdf");
    hs_job_free(j);
    hs_buf_free(&b);
    hs_job_free(NULL);
    hs_job_page_free(NULL);
}

static void test_wrapped_job(void **state)
{
    (void)state;
    struct hs_job *j = job_ok("{\"job\":{\"id\":42,\"name\":\"W\"}}");
    assert_int_equal(j->id, 42);
    assert_string_equal(j->name, "W");
    hs_job_free(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_job_verbatim),
        cmocka_unit_test(test_sample_job_artifacts),
        cmocka_unit_test(test_nulls_everywhere),
        cmocka_unit_test(test_ids_as_strings_and_64bit),
        cmocka_unit_test(test_lat_lon_forms),
        cmocka_unit_test(test_unknown_fields_and_states_kept),
        cmocka_unit_test(test_artifacts_recursive),
        cmocka_unit_test(test_artifacts_too_deep_ignored),
        cmocka_unit_test(test_deliverable_forms),
        cmocka_unit_test(test_v2_list_total_pages),
        cmocka_unit_test(test_v3_next_page),
        cmocka_unit_test(test_empty_results),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_over_cap),
        cmocka_unit_test(test_thousand_models),
        cmocka_unit_test(test_wrapped_job),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
