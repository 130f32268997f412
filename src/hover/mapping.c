/* mapping.c: Hover's job JSON (v3 Show Job / List Jobs, and the flat v2 shape) into the structs of
 * hoversync.h. Tolerant by design (hover-api.md 3.4): any field may be null or missing, ids may
 * come as numbers or numeric strings, unknown fields and states are kept (raw_json, strings).
 * Only a document that is not JSON, or whose top level or `results` has the wrong type, fails. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/str.h"
#include "hoversync.h"

/* Artifact paths deeper or longer than this are not followed: no real payload nests like that,
 * and it keeps the walk's recursion and key sizes bounded whatever the input. */
#define ARTIFACT_MAX_DEPTH 32
#define ARTIFACT_MAX_PATH  1024

/* The first of keys whose value maps to a string (strings, numbers, booleans); NULL if none. */
static char *str_any(const json_t *o, const char *const *keys)
{
    for (; *keys; keys++) {
        char *s = hs_json_strdup(o, *keys);
        if (s)
            return s;
    }
    return NULL;
}

static char *str_of(const json_t *o, const char *key)
{
    return hs_json_strdup(o, key);
}

static int64_t i64_of(const json_t *o, const char *key)
{
    int64_t v = 0;
    return hs_json_i64(o, key, &v) ? v : 0;
}

static bool double_any(const json_t *o, const char *const *keys, double *out)
{
    for (; *keys; keys++)
        if (hs_json_double(o, *keys, out))
            return true;
    return false;
}

/* Deliverable names whose id is documented (hover-api.md 3.2). */
static int64_t deliverable_id_of_name(const char *name)
{
    static const struct {
        const char *name;
        int64_t id;
    } known[] = {{"roof_only", 2}, {"complete", 3}, {"capture_only", 7}, {"interior", 8}};
    for (size_t i = 0; name && i < sizeof known / sizeof known[0]; i++)
        if (strcasecmp(name, known[i].name) == 0)
            return known[i].id;
    return 0;
}

/* `deliverable` may be a name, a number, or an object {id, name}; `deliverable_id` a number. */
static void map_deliverable(const json_t *o, char **name, int64_t *id)
{
    const json_t *d = json_object_get(o, "deliverable");
    int64_t v = 0;
    if (json_is_string(d)) {
        *name = str_of(o, "deliverable");
    } else if (json_is_number(d)) {
        *id = i64_of(o, "deliverable");
    } else if (json_is_object(d)) {
        *name = str_any(d, (const char *const[]){"name", "key", NULL});
        if (hs_json_i64(d, "id", &v))
            *id = v;
    }
    if (hs_json_i64(o, "deliverable_id", &v))
        *id = v;
    if (*id == 0 && *name) {
        /* A numeric string is an id, a known name gives its id. */
        if (hs_parse_i64(*name, &v) == HS_OK)
            *id = v;
        else
            *id = deliverable_id_of_name(*name);
    }
}

struct art_list {
    struct hs_artifact_ref *v;
    size_t n, cap;
};

static bool is_http_url(const char *s)
{
    return strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0;
}

static void art_push(struct art_list *l, const char *kind, const char *url, size_t url_len)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->v = hs_realloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n].kind = hs_strdup(kind);
    l->v[l->n].url = hs_strndup(url, url_len);
    l->n++;
}

/* Collects every http(s) string under v, keyed by its dotted path ("measurements.pdf",
 * "images.0"). path holds the key of v; it is restored before returning. */
static void walk_artifacts(const json_t *v, struct hs_buf *path, struct art_list *out, int depth)
{
    if (depth > ARTIFACT_MAX_DEPTH)
        return;
    size_t mark = path->len;
    if (json_is_string(v)) {
        if (is_http_url(json_string_value(v)))
            art_push(out, path->len ? hs_buf_str(path) : "url", json_string_value(v),
                     json_string_length(v));
    } else if (json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach((json_t *)v, k, e)
        {
            if ((mark == 0 || hs_buf_append(path, ".", 1) == HS_OK) &&
                hs_buf_appends(path, k) == HS_OK)
                walk_artifacts(e, path, out, depth + 1);
            path->len = mark;
            if (path->data)
                path->data[mark] = '\0';
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (hs_buf_appendf(path, mark ? ".%zu" : "%zu", i) == HS_OK)
                walk_artifacts(e, path, out, depth + 1);
            path->len = mark;
            if (path->data)
                path->data[mark] = '\0';
        }
    }
}

static void map_image(const json_t *o, struct hs_image *im)
{
    if (json_is_string(o)) { /* a bare URL */
        im->url = hs_strndup(json_string_value(o), json_string_length(o));
        return;
    }
    im->id = i64_of(o, "id");
    im->url = str_any(o, (const char *const[]){"url", "image_url", "href", NULL});
    im->created_at = str_of(o, "created_at");
}

static void map_model(const json_t *o, struct hs_model *m)
{
    m->id = i64_of(o, "id");
    m->name = str_of(o, "name");
    m->state = str_of(o, "state");
    map_deliverable(o, &m->deliverable, &m->deliverable_id);
    m->capture_id = i64_of(o, "capture_id");
    m->created_at = str_of(o, "created_at");
    m->updated_at = str_of(o, "updated_at");

    const json_t *arts = json_object_get(o, "artifacts");
    if (arts && !json_is_null(arts)) {
        struct art_list l = {0};
        struct hs_buf path;
        hs_buf_init(&path, ARTIFACT_MAX_PATH);
        walk_artifacts(arts, &path, &l, 0);
        hs_buf_free(&path);
        m->artifacts = l.v;
        m->n_artifacts = l.n;
    }

    const json_t *imgs = json_object_get(o, "images");
    if (json_is_array(imgs) && json_array_size(imgs)) {
        m->images = hs_calloc(json_array_size(imgs), sizeof *m->images);
        size_t i;
        json_t *e;
        json_array_foreach(imgs, i, e)
        {
            if (json_is_object(e) || json_is_string(e))
                map_image(e, &m->images[m->n_images++]);
        }
    }
}

static void map_capture(const json_t *o, struct hs_capture *c)
{
    c->id = i64_of(o, "id");
    c->client_identifier = str_of(o, "client_identifier");
    c->name = str_of(o, "name");
    c->state = str_of(o, "state");
    c->capture_by = str_of(o, "capture_by");
    c->type = str_of(o, "type");
    const json_t *d = json_object_get(o, "deliverable");
    c->deliverable = json_is_object(d) ? str_any(d, (const char *const[]){"name", "id", NULL})
                                       : str_of(o, "deliverable");
    c->created_at = str_of(o, "created_at");
    c->updated_at = str_of(o, "updated_at");
}

/* An address field from the v3 `address` object, else from the flat v2 `location_*` fields. */
static char *addr_field(const json_t *a, const char *const *nested, const json_t *job,
                        const char *const *flat)
{
    char *s = json_is_object(a) ? str_any(a, nested) : NULL;
    return s ? s : str_any(job, flat);
}

static void map_address(const json_t *job, struct hs_address *ad)
{
    const json_t *a = json_object_get(job, "address");
    if (json_is_string(a)) /* a one-line address */
        ad->line1 = str_of(job, "address");
    if (!ad->line1)
        ad->line1 = addr_field(a, (const char *const[]){"location_line_1", "line_1", "line1", NULL},
                               job, (const char *const[]){"location_line_1", NULL});
    ad->line2 = addr_field(a, (const char *const[]){"location_line_2", "line_2", "line2", NULL},
                           job, (const char *const[]){"location_line_2", NULL});
    ad->city = addr_field(a, (const char *const[]){"city", "location_city", NULL}, job,
                          (const char *const[]){"location_city", NULL});
    ad->region = addr_field(a, (const char *const[]){"region", "location_region", NULL}, job,
                            (const char *const[]){"location_region", NULL});
    ad->postal_code =
        addr_field(a, (const char *const[]){"postal_code", "location_postal_code", NULL}, job,
                   (const char *const[]){"location_postal_code", NULL});
    ad->country = addr_field(a, (const char *const[]){"country", "location_country", NULL}, job,
                             (const char *const[]){"location_country", NULL});

    static const char *const lat_nested[] = {"latitude", "lat", "location_lat", NULL};
    static const char *const lon_nested[] = {"longitude", "lon", "lng", "location_lon", NULL};
    static const char *const lat_flat[] = {"location_lat", "location_latitude", "latitude", NULL};
    static const char *const lon_flat[] = {"location_lon", "location_lng", "location_longitude",
                                           "longitude", NULL};
    double lat, lon;
    bool have_lat =
        (json_is_object(a) && double_any(a, lat_nested, &lat)) || double_any(job, lat_flat, &lat);
    bool have_lon =
        (json_is_object(a) && double_any(a, lon_nested, &lon)) || double_any(job, lon_flat, &lon);
    if (have_lat && have_lon && fabs(lat) <= 90.0 && fabs(lon) <= 180.0) {
        ad->has_coords = true;
        ad->latitude = lat;
        ad->longitude = lon;
    }
}

static void map_customer(const json_t *job, struct hs_customer *cu)
{
    const json_t *c = json_object_get(job, "customer");
    if (json_is_object(c)) {
        cu->first_name = str_of(c, "first_name");
        cu->name = str_of(c, "name");
        cu->email = str_of(c, "email");
        cu->phone = str_of(c, "phone");
    }
    if (!cu->first_name)
        cu->first_name = str_of(job, "customer_first_name");
    if (!cu->name)
        cu->name = str_of(job, "customer_name");
    if (!cu->email)
        cu->email = str_of(job, "customer_email");
    if (!cu->phone)
        cu->phone = str_of(job, "customer_phone");
}

static void map_job(const json_t *o, struct hs_job *j)
{
    j->id = i64_of(o, "id");
    j->name = str_of(o, "name");
    j->reconstruction_state =
        str_any(o, (const char *const[]){"reconstruction_state", "state", NULL});
    j->external_identifier = str_of(o, "external_identifier");
    const json_t *org = json_object_get(o, "org");
    if (!hs_json_i64(org, "id", &j->org_id))
        j->org_id = i64_of(o, "org_id");
    char *dname = NULL;
    map_deliverable(o, &dname, &j->deliverable_id);
    free(dname);
    j->archived = hs_json_bool(o, "archived", false);
    j->created_at = str_of(o, "created_at");
    j->updated_at = str_of(o, "updated_at");
    j->completed_at = str_of(o, "completed_at");
    map_address(o, &j->address);
    map_customer(o, &j->customer);

    const json_t *caps = json_object_get(o, "captures");
    if (json_is_array(caps) && json_array_size(caps)) {
        j->captures = hs_calloc(json_array_size(caps), sizeof *j->captures);
        size_t i;
        json_t *e;
        json_array_foreach(caps, i, e)
        {
            if (json_is_object(e))
                map_capture(e, &j->captures[j->n_captures++]);
        }
    }
    const json_t *models = json_object_get(o, "models");
    if (json_is_array(models) && json_array_size(models)) {
        j->models = hs_calloc(json_array_size(models), sizeof *j->models);
        size_t i;
        json_t *e;
        json_array_foreach(models, i, e)
        {
            if (json_is_object(e))
                map_model(e, &j->models[j->n_models++]);
        }
    }
    j->raw_json = hs_json_dump(o);
}

static void job_clear(struct hs_job *j)
{
    free(j->name);
    free(j->reconstruction_state);
    free(j->external_identifier);
    free(j->created_at);
    free(j->updated_at);
    free(j->completed_at);
    free(j->address.line1);
    free(j->address.line2);
    free(j->address.city);
    free(j->address.region);
    free(j->address.postal_code);
    free(j->address.country);
    free(j->customer.first_name);
    free(j->customer.name);
    free(j->customer.email);
    free(j->customer.phone);
    for (size_t i = 0; i < j->n_captures; i++) {
        struct hs_capture *c = &j->captures[i];
        free(c->client_identifier);
        free(c->name);
        free(c->state);
        free(c->capture_by);
        free(c->type);
        free(c->deliverable);
        free(c->created_at);
        free(c->updated_at);
    }
    free(j->captures);
    for (size_t i = 0; i < j->n_models; i++) {
        struct hs_model *m = &j->models[i];
        free(m->name);
        free(m->state);
        free(m->deliverable);
        free(m->created_at);
        free(m->updated_at);
        for (size_t k = 0; k < m->n_artifacts; k++) {
            free(m->artifacts[k].kind);
            free(m->artifacts[k].url);
        }
        free(m->artifacts);
        for (size_t k = 0; k < m->n_images; k++) {
            free(m->images[k].url);
            free(m->images[k].created_at);
        }
        free(m->images);
    }
    free(j->models);
    free(j->raw_json);
}

void hs_job_free(struct hs_job *job)
{
    if (!job)
        return;
    job_clear(job);
    free(job);
}

void hs_job_page_free(struct hs_job_page *page)
{
    if (!page)
        return;
    for (size_t i = 0; i < page->n_jobs; i++)
        job_clear(&page->jobs[i]);
    free(page->jobs);
    free(page);
}

bool hs_model_is_complete(const struct hs_model *m)
{
    return m && hs_streq(m->state, "complete");
}

int hs_job_from_json(const char *json, size_t len, struct hs_job **out, struct hs_error *err)
{
    json_t *root = NULL;
    int rc = hs_json_parse(json, len, HS_JSON_MAX_BYTES, &root, err);
    if (rc != HS_OK)
        return rc;
    const json_t *o = root;
    /* Some endpoints wrap the job: {"job": {...}}. */
    const json_t *wrapped = json_is_object(root) ? json_object_get(root, "job") : NULL;
    if (json_is_object(wrapped) && !json_object_get(root, "id"))
        o = wrapped;
    if (!json_is_object(o)) {
        rc = hs_fail(err, HS_ERR_PARSE, "a job must be a JSON object");
        goto out;
    }
    struct hs_job *j = hs_calloc(1, sizeof *j);
    map_job(o, j);
    *out = j;
out:
    json_decref(root);
    return rc;
}

/* The pagination rule of hover-api.md 3.3: stop when next_page is null, or current_page >=
 * total_pages, or results is empty, whichever the response offers. */
static void map_pagination(const json_t *root, size_t n_results, struct hs_job_page *p)
{
    const json_t *pg = json_object_get(root, "pagination");
    if (!json_is_object(pg))
        pg = json_object_get(root, "meta");
    if (!json_is_object(pg))
        pg = root; /* some shapes put the counters at the top level */

    p->current_page = i64_of(pg, "current_page");
    p->total_pages = i64_of(pg, "total_pages");
    if (!hs_json_i64(pg, "total", &p->total))
        p->total = -1;
    p->has_more = n_results > 0;

    const json_t *np = json_object_get(pg, "next_page");
    if (np) {
        int64_t next = 0;
        if (hs_json_i64(pg, "next_page", &next) && next > 0 &&
            (p->current_page == 0 || next > p->current_page))
            p->next_page = next;
        else
            p->has_more = false; /* null, or a next page that would not move forward */
    }
    if (p->current_page > 0 && p->total_pages > 0 && p->current_page >= p->total_pages)
        p->has_more = false;
    if (!p->has_more)
        p->next_page = 0;
}

int hs_job_page_from_json(const char *json, size_t len, struct hs_job_page **out,
                          struct hs_error *err)
{
    json_t *root = NULL;
    int rc = hs_json_parse(json, len, HS_JSON_MAX_BYTES, &root, err);
    if (rc != HS_OK)
        return rc;
    if (!json_is_object(root)) {
        rc = hs_fail(err, HS_ERR_PARSE, "a job list must be a JSON object");
        goto out;
    }
    const json_t *results = json_object_get(root, "results");
    if (!results)
        results = json_object_get(root, "jobs");
    if (!results) {
        rc = hs_fail(err, HS_ERR_PARSE, "job list without a `results` array");
        goto out;
    }
    if (!json_is_array(results) && !json_is_null(results)) {
        rc = hs_fail(err, HS_ERR_PARSE, "`results` of a job list is not an array");
        goto out;
    }
    size_t n = json_is_array(results) ? json_array_size(results) : 0;
    struct hs_job_page *p = hs_calloc(1, sizeof *p);
    if (n)
        p->jobs = hs_calloc(n, sizeof *p->jobs);
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(results, i);
        if (json_is_object(e))
            map_job(e, &p->jobs[p->n_jobs++]);
    }
    map_pagination(root, n, p);
    *out = p;
out:
    json_decref(root);
    return rc;
}
