/* test_world.c: the sandbox's generated world (sandbox/gen.c), its measurement documents and
 * artifact bytes (sandbox/artifacts.c, sandbox/jpeg.c): determinism, the showcase jobs, the state
 * and deliverable mix, the Show Job shapes, consistency of the figures, and valid PDF/JPEG bytes.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/json.h"
#include "core/mem.h"
#include "core/str.h"
#include "hoversync.h"
#include "world.h"

#define assert_near(a, b, eps) assert_true(fabs((double)(a) - (double)(b)) <= (eps))

#define BASE   "http://127.0.0.1:8080"
#define N_JOBS 2000

static struct sb_world *world; /* seed 42, N_JOBS jobs: shared by the read-only tests */

static int setup(void **state)
{
    (void)state;
    world = sb_world_generate(42, N_JOBS);
    return world ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    sb_world_free(world);
    return 0;
}

/* ---- helpers ---- */

/* Dotted path into a JSON object ("roof.area.total"). */
static json_t *jget(json_t *j, const char *path)
{
    const char *p = path;
    while (j && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        char key[64];
        assert_true(n < sizeof key);
        memcpy(key, p, n);
        key[n] = '\0';
        j = json_object_get(j, key);
        p += n + (dot ? 1 : 0);
    }
    return j;
}

static double jnum(json_t *j, const char *path)
{
    json_t *v = jget(j, path);
    assert_true(json_is_number(v));
    return json_number_value(v);
}

static char *v3_dump(struct sb_world *w, const struct sb_job *j)
{
    json_t *o = sb_job_v3_json(w, j, BASE);
    char *s = hs_json_dump(o);
    json_decref(o);
    return s;
}

static char *v2_dump(struct sb_world *w, const struct sb_job *j)
{
    json_t *o = sb_job_v2_json(w, j);
    char *s = hs_json_dump(o);
    json_decref(o);
    return s;
}

static bool is_iso_ms(const char *s)
{
    /* "2025-03-16T23:55:50.094Z" */
    if (!s || strlen(s) != 24 || s[4] != '-' || s[10] != 'T' || s[19] != '.' || s[23] != 'Z')
        return false;
    int64_t t;
    return hs_iso8601_parse(s, &t) == HS_OK;
}

static int64_t iso(const char *s)
{
    int64_t t = 0;
    assert_int_equal(hs_iso8601_parse(s, &t), HS_OK);
    return t;
}

static bool model_has_state(const struct sb_job *j, const char *state)
{
    for (size_t i = 0; i < j->n_models; i++)
        if (hs_streq(j->models[i].state, state))
            return true;
    return false;
}

static size_t count_state(const struct sb_job *j, const char *state)
{
    size_t n = 0;
    for (size_t i = 0; i < j->n_models; i++)
        n += hs_streq(j->models[i].state, state);
    return n;
}

/* ---- determinism ---- */

static void test_same_seed_same_world(void **state)
{
    (void)state;
    struct sb_world *a = sb_world_generate(7, 3000), *b = sb_world_generate(7, 3000);
    assert_int_equal(a->n_jobs, 3000);
    assert_int_equal(b->n_jobs, 3000);
    for (size_t i = 0; i < a->n_jobs; i += 37) {
        char *x = v3_dump(a, &a->jobs[i]), *y = v3_dump(b, &b->jobs[i]);
        assert_string_equal(x, y);
        free(x);
        free(y);
        x = v2_dump(a, &a->jobs[i]);
        y = v2_dump(b, &b->jobs[i]);
        assert_string_equal(x, y);
        free(x);
        free(y);
        const struct sb_job *ja = &a->jobs[i], *jb = &b->jobs[i];
        for (size_t m = 0; m < ja->n_models; m++) {
            const char *const *v = sb_measurement_versions(ja->models[m].deliverable_id);
            if (!v[0])
                continue;
            char *p = sb_measurements_body(ja, &ja->models[m], v[0], NULL);
            char *q = sb_measurements_body(jb, &jb->models[m], v[0], NULL);
            assert_string_equal(p ? p : "-", q ? q : "-");
            free(p);
            free(q);
        }
    }
    sb_world_free(a);
    sb_world_free(b);
}

static void test_other_seed_changes_generated_not_showcase(void **state)
{
    (void)state;
    struct sb_world *a = sb_world_generate(1, 500), *b = sb_world_generate(2, 500);
    for (size_t i = 0; i < SB_N_SHOWCASE; i++) {
        char *x = v3_dump(a, &a->jobs[i]), *y = v3_dump(b, &b->jobs[i]);
        assert_string_equal(x, y);
        free(x);
        free(y);
        for (size_t m = 0; m < a->jobs[i].n_models; m++) {
            char *p = sb_measurements_body(&a->jobs[i], &a->jobs[i].models[m], "full_json", NULL);
            char *q = sb_measurements_body(&b->jobs[i], &b->jobs[i].models[m], "full_json", NULL);
            assert_string_equal(p ? p : "-", q ? q : "-");
            free(p);
            free(q);
        }
    }
    size_t differ = 0, compared = 0;
    for (size_t i = SB_N_SHOWCASE; i < 500; i += 7) {
        char *x = v3_dump(a, &a->jobs[i]), *y = v3_dump(b, &b->jobs[i]);
        differ += strcmp(x, y) != 0;
        compared++;
        free(x);
        free(y);
    }
    assert_int_equal(differ, compared);
    assert_int_equal(a->jobs[SB_N_SHOWCASE].id, SB_FIRST_GENERATED_JOB_ID);
    sb_world_free(a);
    sb_world_free(b);
}

/* ---- showcase ---- */

struct want {
    int64_t id;
    const char *name, *line1, *city, *region, *zip, *state;
    int deliverable;
    bool archived;
    const char *ext;
    const char *models[4];
    const char *states[4];
};

static const struct want showcase[] = {
    {15084301,
     "Main House",
     "4312 Meadow Drive",
     "Santa Maria",
     "CA",
     "93455",
     "completed",
     3,
     false,
     "8675309",
     {"House", "Detached Garage", "Shed"},
     {"complete", "complete", "complete"}},
    {15084302,
     "Whitfield Garage Addition",
     "118 Orchard Lane",
     "Boise",
     "ID",
     "83702",
     "completed",
     3,
     false,
     "8675310",
     {"House", "Detached Garage", "Shed"},
     {"complete", "failed", "complete"}},
    {15084303,
     "Harbor View Remodel",
     "77 Harbor View Road",
     "Portland",
     "ME",
     "04101",
     "processing",
     3,
     false,
     NULL,
     {"House", "Garage"},
     {"complete", "processing"}},
    {15084304,
     "Cedar Ridge Estate",
     "9 Cedar Ridge Court",
     "Asheville",
     "NC",
     "28801",
     "failed",
     3,
     false,
     "CRM-20417",
     {"House", "Detached Garage"},
     {"failed", "failed"}},
    {15084305,
     "Lakeside Interior",
     "2200 Lakeside Avenue",
     "Madison",
     "WI",
     "53703",
     "completed",
     8,
     false,
     "8675311",
     {"First Floor", "Second Floor", "Basement"},
     {"complete", "complete", "complete"}},
    {15084306,
     "Pine Street Draft",
     "45 Pine Street",
     "Burlington",
     "VT",
     "05401",
     "draft",
     3,
     false,
     NULL,
     {NULL},
     {NULL}},
    {15084307,
     "Old Mill Road (archived)",
     "300 Old Mill Road",
     "Lancaster",
     "PA",
     "17602",
     "completed",
     2,
     true,
     "7730012",
     {"House"},
     {"complete"}},
    {15084308,
     "Sunset Boulevard Roof",
     "1550 Sunset Boulevard",
     "Phoenix",
     "AZ",
     "85004",
     "completed",
     2,
     false,
     NULL,
     {"House"},
     {"complete"}},
    {15084309,
     "Maple Court Capture",
     "12 Maple Court",
     "Columbus",
     "OH",
     "43215",
     "completed",
     7,
     false,
     "8675312",
     {"House"},
     {"complete"}},
    {15084310,
     "Riverside TLA",
     "880 Riverside Drive",
     "Austin",
     "TX",
     "78704",
     "completed",
     6,
     false,
     NULL,
     {"House"},
     {"complete"}},
};

static void test_showcase_jobs(void **state)
{
    (void)state;
    int64_t last_model = 0;
    for (size_t i = 0; i < sizeof showcase / sizeof showcase[0]; i++) {
        const struct want *w = &showcase[i];
        struct sb_job *j = sb_world_job(world, w->id);
        assert_non_null(j);
        assert_ptr_equal(j, &world->jobs[i]);
        json_t *o = sb_job_v3_json(world, j, BASE);
        assert_string_equal(json_string_value(jget(o, "name")), w->name);
        assert_string_equal(json_string_value(jget(o, "address.location_line_1")), w->line1);
        assert_string_equal(json_string_value(jget(o, "address.city")), w->city);
        assert_string_equal(json_string_value(jget(o, "address.region")), w->region);
        assert_string_equal(json_string_value(jget(o, "address.postal_code")), w->zip);
        assert_string_equal(json_string_value(jget(o, "reconstruction_state")), w->state);
        assert_int_equal(json_integer_value(jget(o, "deliverable_id")), w->deliverable);
        assert_int_equal(json_integer_value(jget(o, "org.id")), SB_MAIN_ORG_ID);
        assert_true(json_is_true(jget(o, "archived")) == w->archived);
        if (w->ext)
            assert_string_equal(json_string_value(jget(o, "external_identifier")), w->ext);
        else
            assert_true(json_is_null(jget(o, "external_identifier")));
        assert_string_equal(json_string_value(jget(o, "user.email")),
                            "jordan.reyes@summitroofing.example");
        assert_string_equal(json_string_value(jget(o, "user.first_name")), "Jordan");
        json_t *models = jget(o, "models");
        size_t n = 0;
        while (n < 4 && w->models[n])
            n++;
        assert_int_equal(json_array_size(models), n);
        for (size_t k = 0; k < n; k++) {
            json_t *m = json_array_get(models, k);
            assert_string_equal(json_string_value(jget(m, "name")), w->models[k]);
            assert_string_equal(json_string_value(jget(m, "state")), w->states[k]);
            int64_t id = json_integer_value(jget(m, "id"));
            assert_true(id >= 17338401 && id < 17400000 && id > last_model);
            last_model = id;
            json_t *imgs = jget(m, "images");
            if (hs_streq(w->states[k], "complete")) {
                assert_in_range(json_array_size(imgs), 2, 4);
                for (size_t g = 0; g < json_array_size(imgs); g++)
                    assert_in_range(json_integer_value(jget(json_array_get(imgs, g), "id")),
                                    166283801, 166399999);
            }
        }
        json_t *caps = jget(o, "captures");
        if (n > 0) {
            assert_int_equal(json_array_size(caps), 1);
            assert_in_range(json_integer_value(jget(json_array_get(caps, 0), "id")), 558701,
                            558799);
            assert_string_equal(json_string_value(jget(json_array_get(caps, 0), "type")),
                                w->deliverable == 8 ? "dense_interior" : "sparse_exterior");
        } else {
            assert_int_equal(json_array_size(caps), 0);
        }
        json_decref(o);
    }
    json_t *o = sb_job_v3_json(world, sb_world_job(world, 15084301), BASE);
    assert_string_equal(json_string_value(jget(o, "address.latitude")), "34.8784998");
    assert_string_equal(json_string_value(jget(o, "address.longitude")), "-120.4139807");
    assert_string_equal(json_string_value(jget(o, "customer.name")), "Dana Whitfield");
    assert_string_equal(json_string_value(jget(o, "customer.first_name")), "Dana");
    json_decref(o);
}

static void test_small_worlds_hold_showcase_prefix(void **state)
{
    (void)state;
    struct sb_world *w = sb_world_generate(99, 4);
    assert_int_equal(w->n_jobs, 4);
    assert_int_equal(w->jobs[3].id, 15084304);
    assert_null(sb_world_job(w, 15084305));
    sb_world_free(w);
    w = sb_world_generate(99, 0);
    assert_int_equal(w->n_jobs, 0);
    assert_null(sb_world_job(w, 15084301));
    assert_null(sb_world_model(w, 17338401, NULL));
    assert_int_equal(w->n_users, 3 * SB_USERS_PER_ORG);
    sb_world_free(w);
}

/* ---- people ---- */

static void test_orgs_and_users(void **state)
{
    (void)state;
    assert_int_equal(world->n_orgs, 3);
    struct sb_org *main_org = sb_world_org(world, SB_MAIN_ORG_ID);
    assert_non_null(main_org);
    assert_string_equal(main_org->name, "Summit Roofing & Exteriors");
    assert_int_equal(main_org->admin_user_id, SB_MAIN_ADMIN_USER_ID);
    struct sb_user *jr = sb_world_user(world, SB_SHOWCASE_USER_ID);
    assert_non_null(jr);
    assert_string_equal(jr->first_name, "Jordan");
    assert_string_equal(jr->last_name, "Reyes");
    assert_int_equal(jr->org_id, SB_MAIN_ORG_ID);
    assert_ptr_equal(sb_world_user_by_email(world, "Jordan.Reyes@SummitRoofing.example"), jr);
    assert_null(sb_world_user_by_email(world, "nobody@example.com"));
    for (size_t o = 0; o < world->n_orgs; o++) {
        struct sb_user *admin = sb_world_user(world, world->orgs[o].admin_user_id);
        assert_non_null(admin);
        assert_int_equal(admin->org_id, world->orgs[o].id);
        size_t n = 0;
        for (size_t u = 0; u < world->n_users; u++)
            n += world->users[u].org_id == world->orgs[o].id;
        assert_int_equal(n, SB_USERS_PER_ORG);
    }
    for (size_t a = 0; a < world->n_users; a++)
        for (size_t b = a + 1; b < world->n_users; b++)
            assert_string_not_equal(world->users[a].email, world->users[b].email);
    /* Users do not depend on the seed: a demo logs in as the same people. */
    struct sb_world *other = sb_world_generate(12345, 20);
    for (size_t u = 0; u < world->n_users; u++)
        assert_string_equal(other->users[u].email, world->users[u].email);
    sb_world_free(other);
}

/* ---- the mix ---- */

static void test_every_state_mix_and_deliverable(void **state)
{
    (void)state;
    bool deliv[9] = {false};
    size_t all_complete = 0, partial = 0, failed = 0, processing = 0, draft_empty = 0,
           draft_uploading = 0, archived = 0, multi = 0, interior_basement = 0, orgs[3] = {0};
    for (size_t i = 0; i < world->n_jobs; i++) {
        const struct sb_job *j = &world->jobs[i];
        if (i > 0)
            assert_true(j->id > world->jobs[i - 1].id);
        assert_non_null(sb_deliverable_name(j->deliverable_id));
        deliv[j->deliverable_id] = true;
        const char *rs = j->reconstruction_state, *v2 = j->v2_state;
        size_t c = count_state(j, "complete"), f = count_state(j, "failed");
        if (hs_streq(rs, "completed")) {
            assert_string_equal(v2, "complete");
            assert_true(c > 0 && c + f == j->n_models);
            assert_true(j->completed_at >= j->created_at);
            if (f == 0)
                all_complete++;
            else
                partial++;
        } else if (hs_streq(rs, "failed")) {
            assert_string_equal(v2, "failed");
            assert_true(j->n_models > 0 && f == j->n_models);
            failed++;
        } else if (hs_streq(rs, "processing")) {
            assert_true(hs_streq(v2, "processing") || hs_streq(v2, "processing_upload"));
            assert_true(model_has_state(j, "processing") || model_has_state(j, "uploading"));
            processing++;
        } else {
            assert_string_equal(rs, "draft");
            assert_string_equal(v2, "uploading");
            assert_int_equal(count_state(j, "uploading"), j->n_models);
            if (j->n_models == 0)
                draft_empty++;
            else
                draft_uploading++;
        }
        if (!hs_streq(rs, "completed"))
            assert_int_equal(j->completed_at, 0);
        archived += j->archived;
        multi += j->n_models >= 3 && !j->interior;
        if (j->interior)
            for (size_t m = 0; m < j->n_models; m++)
                interior_basement += hs_streq(j->models[m].name, "Basement");
        for (size_t m = 0; m < j->n_models; m++)
            assert_int_equal(j->models[m].deliverable_id, j->deliverable_id);
        assert_true(j->created_at >= 1672531200 && j->created_at < 1793491200);
        assert_true(j->updated_at >= j->created_at && j->updated_at <= 1793491200);
        for (size_t o = 0; o < 3; o++)
            orgs[o] += j->org_id == world->orgs[o].id;
    }
    for (int d = 2; d <= 8; d++)
        if (d != 4)
            assert_true(deliv[d]);
    assert_true(all_complete > world->n_jobs / 2); /* the majority */
    assert_true(partial > 10);
    assert_true(failed > 10);
    assert_true(processing > 5);
    assert_true(draft_empty > 5);
    assert_true(draft_uploading > 5);
    assert_true(archived > 10);
    assert_true(multi > 10);
    assert_true(interior_basement > 0);
    assert_true(orgs[0] > orgs[1] && orgs[1] > orgs[2] && orgs[2] > 0);
}

static void test_v3_and_v2_shapes(void **state)
{
    (void)state;
    for (size_t i = 0; i < world->n_jobs; i += 13) {
        const struct sb_job *j = &world->jobs[i];
        json_t *o = sb_job_v3_json(world, j, BASE);
        assert_int_equal(json_integer_value(jget(o, "id")), j->id);
        double lat, lon;
        assert_true(json_is_string(jget(o, "address.latitude")));
        assert_true(json_is_string(jget(o, "address.longitude")));
        assert_int_equal(hs_parse_double(json_string_value(jget(o, "address.latitude")), &lat),
                         HS_OK);
        assert_int_equal(hs_parse_double(json_string_value(jget(o, "address.longitude")), &lon),
                         HS_OK);
        /* A US address: the coordinates fall inside the lower 48. */
        assert_true(lat > 24 && lat < 50 && lon > -125 && lon < -66);
        assert_int_equal(strlen(json_string_value(jget(o, "address.postal_code"))), 5);
        assert_true(is_iso_ms(json_string_value(jget(o, "created_at"))));
        assert_true(is_iso_ms(json_string_value(jget(o, "updated_at"))));
        assert_true(iso(json_string_value(jget(o, "updated_at"))) >=
                    iso(json_string_value(jget(o, "created_at"))));
        if (j->completed_at)
            assert_true(is_iso_ms(json_string_value(jget(o, "completed_at"))));
        else
            assert_true(json_is_null(jget(o, "completed_at")));
        json_t *models = jget(o, "models");
        for (size_t k = 0; k < json_array_size(models); k++) {
            json_t *m = json_array_get(models, k);
            assert_string_equal(json_string_value(jget(m, "deliverable")),
                                sb_deliverable_name(j->deliverable_id));
            assert_int_equal(json_integer_value(jget(m, "deliverable_id")), j->deliverable_id);
            assert_int_equal(json_integer_value(jget(m, "capture_id")), j->capture_id);
            assert_true(is_iso_ms(json_string_value(jget(m, "created_at"))));
            assert_true(iso(json_string_value(jget(m, "updated_at"))) >=
                        iso(json_string_value(jget(m, "created_at"))));
            json_t *imgs = jget(m, "images");
            for (size_t g = 0; g < json_array_size(imgs); g++) {
                json_t *img = json_array_get(imgs, g);
                char want[96];
                snprintf(want, sizeof want, BASE "/api/v3/images/%lld",
                         (long long)json_integer_value(jget(img, "id")));
                assert_string_equal(json_string_value(jget(img, "url")), want);
            }
        }
        json_decref(o);

        o = sb_job_v2_json(world, j);
        static const char *const keys[] = {"id",
                                           "name",
                                           "state",
                                           "location_line_1",
                                           "location_line_2",
                                           "location_city",
                                           "location_region",
                                           "location_postal_code",
                                           "location_country",
                                           "location_lat",
                                           "location_lon",
                                           "deliverable_id",
                                           "created_at",
                                           "updated_at",
                                           "archived",
                                           "external_identifier"};
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            assert_non_null(json_object_get(o, keys[k]));
        assert_true(json_is_string(json_object_get(o, "location_lat")));
        assert_string_equal(json_string_value(json_object_get(o, "state")), j->v2_state);
        json_decref(o);
    }
}

/* ---- artifacts ---- */

static void test_artifacts_only_on_complete_models(void **state)
{
    (void)state;
    size_t complete = 0, capture_only = 0, interior = 0;
    for (size_t i = 0; i < world->n_jobs; i++) {
        const struct sb_job *j = &world->jobs[i];
        json_t *o = sb_job_v3_json(world, j, BASE);
        json_t *models = jget(o, "models");
        for (size_t k = 0; k < j->n_models; k++) {
            const struct sb_model *m = &j->models[k];
            json_t *a = jget(json_array_get(models, k), "artifacts");
            const char *const *versions = sb_measurement_versions(m->deliverable_id);
            if (!hs_streq(m->state, "complete")) {
                assert_true(a == NULL || json_is_null(a) || json_object_size(a) == 0);
                for (const char *const *v = versions; *v; v++)
                    assert_null(sb_measurements_json(j, m, *v));
                size_t len;
                assert_null(sb_pdf_bytes(j, m, &len));
                continue;
            }
            complete++;
            if (m->deliverable_id == 7) {
                capture_only++;
                assert_true(json_is_object(a));
                assert_null(json_object_get(a, "measurements"));
                assert_null(versions[0]);
                assert_null(sb_measurements_json(j, m, "summarized_json"));
                assert_null(sb_measurements_json(j, m, "full_json"));
                size_t len;
                assert_null(sb_pdf_bytes(j, m, &len));
                continue;
            }
            char want[160];
            snprintf(want, sizeof want, BASE "/api/v3/models/%lld/artifacts/measurements.pdf",
                     (long long)m->id);
            assert_string_equal(json_string_value(jget(a, "measurements.pdf")), want);
            snprintf(want, sizeof want, BASE "/api/v3/models/%lld/artifacts/measurements.xlsx",
                     (long long)m->id);
            assert_string_equal(json_string_value(jget(a, "measurements.xlsx")), want);
            assert_true(json_is_string(jget(a, "cad_exports.skp")));
            assert_true(json_is_string(jget(a, "cad_exports.xml")));
            size_t n_versions = 0;
            for (const char *const *v = versions; *v; v++, n_versions++) {
                const char *key = strcmp(*v, "summarized_json") == 0 ? "json" : *v;
                snprintf(want, sizeof want,
                         BASE "/api/v3/models/%lld/artifacts/measurements.json?version=%s",
                         (long long)m->id, *v);
                assert_string_equal(
                    json_string_value(jget(json_object_get(a, "measurements"), key)), want);
                json_t *doc = sb_measurements_json(j, m, *v);
                assert_non_null(doc);
                json_decref(doc);
            }
            /* pdf + xlsx + one link per offered version, nothing else. */
            assert_int_equal(json_object_size(json_object_get(a, "measurements")), 2 + n_versions);
            if (m->deliverable_id == 8) {
                interior++;
                snprintf(want, sizeof want, BASE "/api/v3/models/%lld/artifacts/cad_export.fml",
                         (long long)m->id);
                assert_string_equal(json_string_value(jget(a, "cad_export_fml")), want);
                json_t *fml = sb_cad_fml_json(j, m);
                assert_non_null(fml);
                json_decref(fml);
            } else {
                assert_null(json_object_get(a, "cad_export_fml"));
                assert_null(sb_cad_fml_json(j, m));
            }
        }
        json_decref(o);
    }
    assert_true(complete > 1000 && capture_only > 10 && interior > 10);
}

static void test_versions_per_deliverable(void **state)
{
    (void)state;
    static const struct {
        int d;
        const char *v[5];
    } want[] = {
        {2, {"summarized_json", "full_json", "roof_lines"}},
        {3, {"summarized_json", "full_json", "roof_lines", "paint_measurements"}},
        {5, {"sketch_json"}},
        {6, {"sketch_json"}},
        {7, {NULL}},
        {8, {"full_json"}},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *const *got = sb_measurement_versions(want[i].d);
        size_t k = 0;
        for (; want[i].v[k]; k++)
            assert_string_equal(got[k], want[i].v[k]);
        assert_null(got[k]);
    }
    /* A version the deliverable does not offer is refused, even for a complete model. */
    struct sb_job *j = sb_world_job(world, 15084308); /* roof only */
    assert_null(sb_measurements_json(j, &j->models[0], "paint_measurements"));
    assert_null(sb_measurements_json(j, &j->models[0], "sketch_json"));
    assert_null(sb_measurements_json(j, &j->models[0], "bogus"));
    assert_null(sb_measurements_json(j, &j->models[0], NULL));
    json_t *doc = sb_measurements_json(j, &j->models[0], "summarized_json");
    assert_non_null(jget(doc, "roof.area.total"));
    assert_null(jget(doc, "facades")); /* Roof Only measures no walls */
    json_decref(doc);
}

/* ---- measurements ---- */

static void check_header(json_t *doc, const struct sb_job *j, const struct sb_model *m,
                         const char *version)
{
    assert_string_equal(json_string_value(jget(doc, "version")), version);
    assert_int_equal(json_integer_value(jget(doc, "job_id")), j->id);
    assert_int_equal(json_integer_value(jget(doc, "model_id")), m->id);
    assert_string_equal(json_string_value(jget(doc, "model_name")), m->name);
    assert_int_equal(json_integer_value(jget(doc, "revision")), m->revision);
}

static double sum_key(json_t *arr, const char *key)
{
    double s = 0;
    for (size_t i = 0; i < json_array_size(arr); i++)
        s += json_number_value(json_object_get(json_array_get(arr, i), key));
    return s;
}

static void check_exterior(const struct sb_job *j, const struct sb_model *m)
{
    json_t *s = sb_measurements_json(j, m, "summarized_json");
    json_t *f = sb_measurements_json(j, m, "full_json");
    json_t *rl = sb_measurements_json(j, m, "roof_lines");
    check_header(s, j, m, "summarized_json");
    check_header(f, j, m, "full_json");
    check_header(rl, j, m, "roof_lines");

    double roof = jnum(s, "roof.area.total");
    assert_true(roof > 50 && roof < 20000);
    assert_near(sum_key(jget(s, "roof.pitch.breakdown"), "area"), roof, 0.011);
    assert_near(sum_key(jget(s, "roof.pitch.breakdown"), "percentage"), 100, 0.21);
    assert_near(sum_key(jget(f, "roof_facets"), "area"), roof, 0.011);
    assert_int_equal(json_array_size(jget(f, "roof_facets")), jnum(s, "roof.facets.total"));
    const char *pitch = json_string_value(jget(s, "roof.pitch.predominant"));
    int rise = 0;
    assert_int_equal(sscanf(pitch, "%d/12", &rise), 1);
    assert_in_range(rise, 1, 14);
    assert_string_equal(
        json_string_value(jget(json_array_get(jget(s, "roof.pitch.breakdown"), 0), "pitch")),
        pitch);
    /* Roof area is the plan area (footprint plus overhang) times the pitch factor: never less
     * than the footprint. */
    assert_true(roof > jnum(f, "footprint.area"));
    /* The line list and the summary agree. */
    static const char *const kinds[][2] = {{"ridge", "roof.ridges.length"},
                                           {"hip", "roof.hips.length"},
                                           {"valley", "roof.valleys.length"},
                                           {"rake", "roof.rakes.length"},
                                           {"eave", "roof.eaves.length"}};
    json_t *lines = jget(rl, "lines");
    for (size_t k = 0; k < 5; k++) {
        double sum = 0;
        for (size_t i = 0; i < json_array_size(lines); i++) {
            json_t *l = json_array_get(lines, i);
            if (hs_streq(json_string_value(jget(l, "type")), kinds[k][0]))
                sum += jnum(l, "length");
        }
        assert_near(sum, jnum(s, kinds[k][1]), 0.011);
    }
    assert_true(jnum(s, "roof.eaves.length") > 0);

    if (m->deliverable_id == 3) {
        double siding = jnum(s, "facades.siding.area");
        assert_true(siding > 0);
        assert_near(jnum(s, "facades.siding.waste.plus_10"), siding * 1.10, 0.011);
        assert_near(jnum(s, "facades.siding.waste.plus_18"), siding * 1.18, 0.011);
        assert_near(siding + jnum(s, "facades.masonry.area") + jnum(s, "openings.area"),
                    jnum(s, "facades.total_area"), 0.02);
        json_t *elev = jget(f, "elevations");
        assert_int_equal(json_array_size(elev), 4);
        assert_near(sum_key(elev, "gross_area"), jnum(s, "facades.total_area"), 0.02);
        assert_near(sum_key(elev, "openings_area"), jnum(s, "openings.area"), 0.02);
        size_t n_open = 0, n_windows = 0;
        double facade_siding = 0;
        for (size_t e = 0; e < 4; e++) {
            json_t *side = json_array_get(elev, e);
            json_t *ops = jget(side, "openings");
            n_open += json_array_size(ops);
            for (size_t i = 0; i < json_array_size(ops); i++)
                n_windows +=
                    hs_streq(json_string_value(jget(json_array_get(ops, i), "type")), "window");
            assert_near(sum_key(ops, "area"), jnum(side, "openings_area"), 0.02);
            json_t *fac = jget(side, "facades");
            assert_near(sum_key(fac, "area"), jnum(side, "net_area"), 0.02);
            for (size_t i = 0; i < json_array_size(fac); i++)
                if (hs_streq(json_string_value(jget(json_array_get(fac, i), "material")), "siding"))
                    facade_siding += jnum(json_array_get(fac, i), "area");
        }
        assert_near(facade_siding, siding, 0.05);
        assert_int_equal(n_open, jnum(s, "openings.count"));
        assert_int_equal(n_windows, jnum(s, "openings.windows.count"));
        assert_near(jnum(s, "openings.windows.area") + jnum(s, "openings.doors.area") +
                        jnum(s, "openings.garage_doors.area"),
                    jnum(s, "openings.area"), 0.02);
        json_t *p = sb_measurements_json(j, m, "paint_measurements");
        check_header(p, j, m, "paint_measurements");
        assert_near(jnum(p, "body.siding_area"), siding, 0.001);
        json_decref(p);
    } else {
        assert_null(jget(s, "facades"));
        assert_null(jget(f, "elevations"));
    }
    json_decref(s);
    json_decref(f);
    json_decref(rl);
}

static void check_sketch(const struct sb_job *j, const struct sb_model *m)
{
    json_t *d = sb_measurements_json(j, m, "sketch_json");
    check_header(d, j, m, "sketch_json");
    double living = 0, total = 0;
    json_t *floors = jget(d, "floors");
    assert_true(json_array_size(floors) >= 1);
    for (size_t k = 0; k < json_array_size(floors); k++) {
        json_t *fl = json_array_get(floors, k), *rooms = jget(fl, "rooms");
        assert_near(sum_key(rooms, "area"), jnum(fl, "area"), 0.011);
        for (size_t i = 0; i < json_array_size(rooms); i++) {
            json_t *r = json_array_get(rooms, i);
            assert_true(jnum(r, "area") > 0);
            if (json_is_true(jget(r, "living")))
                living += jnum(r, "area");
            total += jnum(r, "area");
        }
    }
    assert_near(living, jnum(d, "total_living_area"), 0.011);
    assert_near(total, jnum(d, "total_area"), 0.011);
    if (hs_streq(m->name, "House"))
        assert_true(jnum(d, "total_living_area") > 300);
    assert_true((jget(d, "roof") != NULL) == (m->deliverable_id == 5));
    json_decref(d);
}

static void check_interior(const struct sb_job *j, const struct sb_model *m)
{
    json_t *d = sb_measurements_json(j, m, "full_json");
    check_header(d, j, m, "full_json");
    assert_near(sum_key(jget(d, "rooms"), "area"), jnum(d, "floor.area"), 0.011);
    assert_int_equal(json_array_size(jget(d, "openings.list")), jnum(d, "openings.count"));
    assert_null(jget(d, "roof"));
    assert_string_equal(json_string_value(jget(d, "level")), m->name);
    json_decref(d);
}

static void test_measurements_consistent(void **state)
{
    (void)state;
    size_t checked[9] = {0};
    for (size_t i = 0; i < world->n_jobs; i++) {
        const struct sb_job *j = &world->jobs[i];
        for (size_t k = 0; k < j->n_models; k++) {
            const struct sb_model *m = &j->models[k];
            if (!hs_streq(m->state, "complete"))
                continue;
            switch (m->deliverable_id) {
            case 2:
            case 3:
                check_exterior(j, m);
                break;
            case 5:
            case 6:
                check_sketch(j, m);
                break;
            case 8:
                check_interior(j, m);
                break;
            default:
                continue;
            }
            checked[m->deliverable_id]++;
        }
    }
    assert_true(checked[2] > 20 && checked[3] > 20 && checked[5] > 5 && checked[6] > 5 &&
                checked[8] > 5);
}

static void test_measurement_body_is_clean_json(void **state)
{
    (void)state;
    struct sb_job *j = sb_world_job(world, 15084301);
    size_t len = 0;
    char *body = sb_measurements_body(j, &j->models[0], "full_json", &len);
    assert_non_null(body);
    assert_int_equal(len, strlen(body));
    /* Reals go out as written (2450.3), not as their binary neighbours (2450.3000000000002). */
    assert_null(strstr(body, "0000000"));
    assert_null(strstr(body, "9999999"));
    json_t *doc = sb_measurements_json(j, &j->models[0], "full_json");
    json_error_t e;
    json_t *back = json_loadb(body, len, 0, &e);
    assert_non_null(back);
    assert_near(jnum(back, "roof.area.total"), jnum(doc, "roof.area.total"), 1e-9);
    json_decref(back);
    json_decref(doc);
    free(body);
    assert_null(sb_measurements_body(j, &j->models[0], "sketch_json", &len));
}

static void test_revision_changes_figures_and_etags(void **state)
{
    (void)state;
    struct sb_world *w = sb_world_generate(5, 20);
    struct sb_job *j = sb_world_job(w, 15084301);
    struct sb_model *m = &j->models[0];
    size_t l1, l2;
    char *b1 = sb_measurements_body(j, m, "summarized_json", &l1);
    unsigned char *p1 = sb_pdf_bytes(j, m, &l1);
    json_t *d1 = sb_measurements_json(j, m, "summarized_json");
    char *e_body1 = sb_etag(b1, strlen(b1)), *e_pdf1 = sb_etag(p1, l1);

    m->revision++;
    char *b2 = sb_measurements_body(j, m, "summarized_json", &l2);
    unsigned char *p2 = sb_pdf_bytes(j, m, &l2);
    json_t *d2 = sb_measurements_json(j, m, "summarized_json");
    char *e_body2 = sb_etag(b2, strlen(b2)), *e_pdf2 = sb_etag(p2, l2);

    assert_string_not_equal(e_body1, e_body2);
    assert_string_not_equal(e_pdf1, e_pdf2);
    assert_int_equal(json_integer_value(jget(d2, "revision")), 1);
    double a1 = jnum(d1, "roof.area.total"), a2 = jnum(d2, "roof.area.total");
    assert_true(a2 != a1 && fabs(a2 - a1) / a1 < 0.02); /* slightly, not wildly */

    /* The same bytes always give the same validator. */
    char *again = sb_etag(b2, strlen(b2));
    assert_string_equal(again, e_body2);
    assert_int_equal(strlen(e_body1), 34);
    assert_true(e_body1[0] == '"' && e_body1[33] == '"');
    for (int i = 1; i < 33; i++)
        assert_non_null(strchr("0123456789abcdef", e_body1[i]));
    /* sha256("") starts e3b0c442 98fc1c14 9afbf4c8 996fb924. */
    char *empty = sb_etag("", 0);
    assert_string_equal(empty, "\"e3b0c44298fc1c149afbf4c8996fb924\"");

    free(empty);
    free(again);
    free(b1);
    free(b2);
    free(p1);
    free(p2);
    free(e_body1);
    free(e_body2);
    free(e_pdf1);
    free(e_pdf2);
    json_decref(d1);
    json_decref(d2);
    sb_world_free(w);
}

/* ---- PDF ---- */

static bool has_bytes(const unsigned char *p, size_t len, const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(p + i, s, n) == 0)
            return true;
    return false;
}

/* Checks the structure a PDF reader relies on: header, trailer, startxref pointing at the xref
 * table, and every xref entry pointing at its "N 0 obj". */
static void check_pdf(const unsigned char *p, size_t len)
{
    assert_true(len > 200);
    assert_memory_equal(p, "%PDF-", 5);
    assert_memory_equal(p + len - 6, "%%EOF\n", 6);
    const char *sx = NULL;
    for (size_t i = len - 16; i > len - 64; i--)
        if (memcmp(p + i, "startxref\n", 10) == 0) {
            sx = (const char *)p + i + 10;
            break;
        }
    assert_non_null(sx);
    size_t xref = strtoul(sx, NULL, 10);
    assert_true(xref < len);
    assert_memory_equal(p + xref, "xref\n0 ", 7);
    const char *q = (const char *)p + xref + 5;
    unsigned first, count;
    assert_int_equal(sscanf(q, "%u %u", &first, &count), 2);
    q = strchr(q, '\n') + 1;
    for (unsigned i = 0; i < count; i++, q += 20) {
        assert_true(q[18] == '\r' || q[18] == ' ');
        assert_int_equal(q[19], '\n');
        if (i == 0)
            continue;
        size_t off = strtoul(q, NULL, 10);
        char want[32];
        snprintf(want, sizeof want, "%u 0 obj", i);
        assert_memory_equal(p + off, want, strlen(want));
    }
    assert_true(has_bytes(p, len, "/Root 1 0 R"));
}

static void test_pdf_valid_and_informative(void **state)
{
    (void)state;
    struct sb_job *j = sb_world_job(world, 15084301);
    size_t len;
    unsigned char *p = sb_pdf_bytes(j, &j->models[0], &len);
    check_pdf(p, len);
    assert_true(has_bytes(p, len, "(Main House)"));
    assert_true(has_bytes(p, len, "4312 Meadow Drive, Santa Maria, CA 93455"));
    json_t *d = sb_measurements_json(j, &j->models[0], "summarized_json");
    char area[64];
    snprintf(area, sizeof area, "Roof area: %.2f sq ft", jnum(d, "roof.area.total"));
    assert_true(has_bytes(p, len, area));
    json_decref(d);
    unsigned char *again = sb_pdf_bytes(j, &j->models[0], &len);
    assert_memory_equal(p, again, len);
    free(again);
    free(p);

    /* Every kind of measured model gets a valid PDF. */
    const int64_t ids[] = {15084305, 15084307, 15084308, 15084310};
    for (size_t i = 0; i < 4; i++) {
        struct sb_job *k = sb_world_job(world, ids[i]);
        p = sb_pdf_bytes(k, &k->models[0], &len);
        check_pdf(p, len);
        free(p);
    }
    struct sb_job *capture_only = sb_world_job(world, 15084309);
    assert_null(sb_pdf_bytes(capture_only, &capture_only->models[0], &len));
}

static void test_pdf_padding_exact_length(void **state)
{
    (void)state;
    struct sb_world *w = sb_world_generate(5, 20);
    struct sb_job *j = sb_world_job(w, 15084302);
    struct sb_model *m = &j->models[0];
    size_t natural;
    unsigned char *p = sb_pdf_bytes(j, m, &natural);
    free(p);
    /* A size smaller than the natural one changes nothing. */
    m->pdf_bytes = 10;
    size_t len;
    p = sb_pdf_bytes(j, m, &len);
    assert_int_equal(len, natural);
    free(p);
    /* Around the natural size and across the digit-count boundaries of startxref. */
    size_t targets[64], n = 0;
    for (size_t d = 1; d <= 90; d += 1 + d / 4)
        targets[n++] = natural + d;
    targets[n++] = 100000;
    targets[n++] = 1000000;
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < 2; k++) {
            m->pdf_bytes = (int64_t)targets[i];
            p = sb_pdf_bytes(j, m, &len);
            assert_int_equal(len, targets[i]);
            check_pdf(p, len);
            free(p);
            targets[i] += 1;
        }
    }
    /* startxref (the size minus the few hundred bytes of the xref table and trailer) gains a
     * digit inside these bands: every size must still come out exact. */
    const size_t bands[] = {10100, 100100};
    for (size_t b = 0; b < 2; b++) {
        for (size_t t = bands[b]; t < bands[b] + 400; t++) {
            m->pdf_bytes = (int64_t)t;
            p = sb_pdf_bytes(j, m, &len);
            assert_int_equal(len, t);
            check_pdf(p, len);
            free(p);
        }
    }
    m->pdf_bytes = 50ll * 1024 * 1024;
    p = sb_pdf_bytes(j, m, &len);
    assert_int_equal(len, 50u * 1024 * 1024);
    check_pdf(p, len);
    free(p);
    sb_world_free(w);
}

/* ---- JPEG ---- */

/* Walks the JPEG structure: SOI, marker segments up to SOS (with a baseline SOF0 of 96x64 and 3
 * components), entropy-coded data where 0xFF is only ever stuffed (FF 00), then EOI. */
static void check_jpeg(const unsigned char *p, size_t len)
{
    assert_true(len > 300);
    assert_true(p[0] == 0xFF && p[1] == 0xD8);
    assert_true(p[len - 2] == 0xFF && p[len - 1] == 0xD9);
    size_t i = 2;
    bool sof = false, sos = false;
    while (i + 4 <= len) {
        assert_int_equal(p[i], 0xFF);
        unsigned marker = p[i + 1], seg = (unsigned)p[i + 2] << 8 | p[i + 3];
        if (marker == 0xC0) {
            sof = true;
            assert_int_equal(p[i + 4], 8);
            assert_int_equal((p[i + 5] << 8) | p[i + 6], 64);
            assert_int_equal((p[i + 7] << 8) | p[i + 8], 96);
            assert_int_equal(p[i + 9], 3);
        }
        i += 2 + seg;
        if (marker == 0xDA) {
            sos = true;
            break;
        }
    }
    assert_true(sof && sos);
    for (; i < len - 2; i++)
        if (p[i] == 0xFF)
            assert_int_equal(p[++i], 0x00);
    assert_int_equal(i, len - 2);
}

static void test_jpeg_valid_and_seeded(void **state)
{
    (void)state;
    struct sb_job *j = sb_world_job(world, 15084301);
    struct sb_image *a = &j->models[0].images[0], *b = &j->models[0].images[1];
    size_t la, lb, la2;
    unsigned char *pa = sb_jpeg_bytes(a, &la), *pb = sb_jpeg_bytes(b, &lb);
    unsigned char *pa2 = sb_jpeg_bytes(a, &la2);
    check_jpeg(pa, la);
    check_jpeg(pb, lb);
    assert_int_equal(la, la2);
    assert_memory_equal(pa, pa2, la);
    assert_true(la != lb || memcmp(pa, pb, la) != 0);
    free(pa);
    free(pb);
    free(pa2);
    for (uint32_t seed = 0; seed < 200; seed++) {
        struct sb_image img = {
            .id = 1, .model_id = 1, .created_at = NULL, .rng_seed = seed * 2654435761u};
        size_t len;
        unsigned char *p = sb_jpeg_bytes(&img, &len);
        check_jpeg(p, len);
        free(p);
    }
}

/* ---- lookups and search ---- */

static void test_lookups(void **state)
{
    (void)state;
    for (size_t i = 0; i < world->n_jobs; i += 11) {
        struct sb_job *j = &world->jobs[i];
        assert_ptr_equal(sb_world_job(world, j->id), j);
        for (size_t k = 0; k < j->n_models; k++) {
            struct sb_job *owner = NULL;
            assert_ptr_equal(sb_world_model(world, j->models[k].id, &owner), &j->models[k]);
            assert_ptr_equal(owner, j);
            for (size_t g = 0; g < j->models[k].n_images; g++) {
                struct sb_model *mo = NULL;
                struct sb_image *img = sb_world_image(world, j->models[k].images[g].id, &mo);
                assert_ptr_equal(img, &j->models[k].images[g]);
                assert_ptr_equal(mo, &j->models[k]);
                assert_int_equal(img->model_id, j->models[k].id);
            }
        }
    }
    assert_null(sb_world_job(world, 1));
    assert_null(sb_world_job(world, 15084300));
    assert_null(sb_world_job(world, world->jobs[world->n_jobs - 1].id + 1));
    assert_null(sb_world_model(world, 17338400, NULL));
    assert_null(sb_world_image(world, 166283800, NULL));
    assert_null(sb_world_user(world, 42));
}

static void test_haystack_search(void **state)
{
    (void)state;
    struct sb_job *j = sb_world_job(world, 15084301);
    static const char *const needles[] = {"main house",   "4312 meadow drive",
                                          "santa maria",  "93455",
                                          "jordan reyes", "jordan.reyes@summitroofing.example"};
    for (size_t i = 0; i < sizeof needles / sizeof needles[0]; i++)
        assert_non_null(strstr(j->haystack, needles[i]));
    for (const char *c = j->haystack; *c; c++)
        assert_false(*c >= 'A' && *c <= 'Z');
    /* A case-insensitive search as the list route does it finds the showcase job. */
    size_t hits = 0;
    bool lakeside = false;
    for (size_t i = 0; i < world->n_jobs; i++)
        if (hs_contains_ci(world->jobs[i].haystack, "LAKESIDE AVENUE")) {
            hits++;
            lakeside = lakeside || world->jobs[i].id == 15084305;
        }
    assert_true(lakeside && hits < world->n_jobs / 10);
    /* Every job of the showcase user is found by the user's name. */
    for (size_t i = 0; i < world->n_jobs; i++)
        if (world->jobs[i].user_id == SB_SHOWCASE_USER_ID)
            assert_non_null(strstr(world->jobs[i].haystack, "jordan reyes"));
}

static void test_hundred_thousand_jobs(void **state)
{
    (void)state;
    struct sb_world *w = sb_world_generate(2024, 100000);
    assert_int_equal(w->n_jobs, 100000);
    struct sb_job *last = &w->jobs[w->n_jobs - 1];
    assert_true(last->id > SB_FIRST_GENERATED_JOB_ID + 99990);
    assert_ptr_equal(sb_world_job(w, last->id), last);
    assert_ptr_equal(sb_world_job(w, w->jobs[50000].id), &w->jobs[50000]);
    /* The last model and image of the world are found too. */
    struct sb_job *with_models = last;
    while (with_models->n_models == 0)
        with_models--;
    struct sb_model *lm = &with_models->models[with_models->n_models - 1];
    struct sb_job *owner = NULL;
    assert_ptr_equal(sb_world_model(w, lm->id, &owner), lm);
    assert_ptr_equal(owner, with_models);
    const struct sb_image_ref *ref = &w->image_index[w->n_image_index - 1];
    struct sb_model *mo = NULL;
    struct sb_image *img = sb_world_image(w, ref->id, &mo);
    assert_non_null(img);
    assert_int_equal(img->id, ref->id);
    assert_int_equal(mo->id, img->model_id);
    sb_world_free(w);
}

/* ---- run-time changes ---- */

static void test_add_job_and_finish_models(void **state)
{
    (void)state;
    struct sb_world *w = sb_world_generate(3, 50);
    int64_t before_last = w->jobs[w->n_jobs - 1].id;
    assert_null(sb_world_add_job(w, 1, 0, 3, 3, 1790000000));                    /* unknown org */
    assert_null(sb_world_add_job(w, SB_MAIN_ORG_ID, 2190421, 3, 3, 1790000000)); /* other org */
    assert_null(sb_world_add_job(w, SB_MAIN_ORG_ID, 0, 4, 3, 1790000000)); /* no deliverable 4 */
    struct sb_job *j = sb_world_add_job(w, SB_MAIN_ORG_ID, SB_SHOWCASE_USER_ID, 3, 3, 1790000000);
    assert_non_null(j);
    assert_true(j->id > before_last);
    assert_string_equal(j->reconstruction_state, "draft");
    assert_int_equal(j->n_models, 3);
    assert_string_equal(j->models[0].name, "House");
    int64_t job_id = j->id, model_ids[3];
    for (size_t k = 0; k < 3; k++) {
        assert_string_equal(j->models[k].state, "uploading");
        model_ids[k] = j->models[k].id;
        struct sb_job *owner = NULL;
        assert_ptr_equal(sb_world_model(w, model_ids[k], &owner), &j->models[k]);
    }
    json_t *o = sb_job_v3_json(w, j, BASE);
    assert_true(json_is_null(jget(json_array_get(jget(o, "models"), 0), "artifacts")));
    json_decref(o);

    sb_world_set_model_state(w, j, &j->models[0], "processing", 1790000100);
    assert_string_equal(j->reconstruction_state, "processing");
    sb_world_set_model_state(w, j, &j->models[0], "complete", 1790000200);
    sb_world_set_model_state(w, j, &j->models[1], "failed", 1790000300);
    assert_string_equal(j->reconstruction_state, "processing"); /* the third is still uploading */
    sb_world_set_model_state(w, j, &j->models[2], "complete", 1790000400);
    assert_string_equal(j->reconstruction_state, "completed");
    assert_string_equal(j->v2_state, "complete");
    assert_int_equal(j->completed_at, 1790000400);
    assert_true(j->updated_at >= 1790000400);
    /* Completed models got photos, reachable by id. */
    assert_true(j->models[0].n_images > 0);
    struct sb_model *mo = NULL;
    assert_ptr_equal(sb_world_image(w, j->models[0].images[0].id, &mo), &j->models[0].images[0]);
    assert_ptr_equal(mo, &j->models[0]);

    /* More additions move jobs[]; lookups by id still work. */
    for (int i = 0; i < 40; i++)
        assert_non_null(sb_world_add_job(w, 471122, 0, 8, 2, 1790001000 + i));
    j = sb_world_job(w, job_id);
    assert_non_null(j);
    assert_ptr_equal(sb_world_model(w, model_ids[2], NULL), &j->models[2]);
    assert_string_equal(w->jobs[w->n_jobs - 1].models[0].name, "First Floor");

    /* The rules on their own: every model failed makes the job failed. */
    sb_world_set_model_state(w, j, &j->models[0], "failed", 1790002000);
    sb_world_set_model_state(w, j, &j->models[2], "failed", 1790002001);
    assert_string_equal(j->reconstruction_state, "failed");
    assert_string_equal(j->v2_state, "failed");
    sb_world_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_seed_same_world),
        cmocka_unit_test(test_other_seed_changes_generated_not_showcase),
        cmocka_unit_test(test_showcase_jobs),
        cmocka_unit_test(test_small_worlds_hold_showcase_prefix),
        cmocka_unit_test(test_orgs_and_users),
        cmocka_unit_test(test_every_state_mix_and_deliverable),
        cmocka_unit_test(test_v3_and_v2_shapes),
        cmocka_unit_test(test_artifacts_only_on_complete_models),
        cmocka_unit_test(test_versions_per_deliverable),
        cmocka_unit_test(test_measurements_consistent),
        cmocka_unit_test(test_measurement_body_is_clean_json),
        cmocka_unit_test(test_revision_changes_figures_and_etags),
        cmocka_unit_test(test_pdf_valid_and_informative),
        cmocka_unit_test(test_pdf_padding_exact_length),
        cmocka_unit_test(test_jpeg_valid_and_seeded),
        cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_haystack_search),
        cmocka_unit_test(test_hundred_thousand_jobs),
        cmocka_unit_test(test_add_job_and_finish_models),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
