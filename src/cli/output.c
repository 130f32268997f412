/* output.c: terminal tables and the JSON shapes of the command line; see output.h. */
#include "cli/output.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/mem.h"

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *address_json(const struct hs_address *a)
{
    json_t *o = json_object();
    json_object_set_new(o, "line1", str_or_null(a->line1));
    json_object_set_new(o, "line2", str_or_null(a->line2));
    json_object_set_new(o, "city", str_or_null(a->city));
    json_object_set_new(o, "region", str_or_null(a->region));
    json_object_set_new(o, "postal_code", str_or_null(a->postal_code));
    json_object_set_new(o, "country", str_or_null(a->country));
    json_object_set_new(o, "latitude", a->has_coords ? json_real(a->latitude) : json_null());
    json_object_set_new(o, "longitude", a->has_coords ? json_real(a->longitude) : json_null());
    char *line = out_address_line(a);
    json_object_set_new(o, "full", json_string(line));
    free(line);
    return o;
}

static json_t *model_json(const struct hs_model *m)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(m->id));
    json_object_set_new(o, "name", str_or_null(m->name));
    json_object_set_new(o, "state", str_or_null(m->state));
    json_object_set_new(o, "complete", json_boolean(hs_model_is_complete(m)));
    json_object_set_new(o, "deliverable", str_or_null(m->deliverable));
    json_object_set_new(o, "deliverable_id",
                        m->deliverable_id ? json_integer(m->deliverable_id) : json_null());
    json_object_set_new(o, "capture_id", m->capture_id ? json_integer(m->capture_id) : json_null());
    json_object_set_new(o, "updated_at", str_or_null(m->updated_at));
    json_t *arts = json_array();
    /* Artifacts of a model that is not complete must not be fetched: do not offer them. */
    for (size_t i = 0; hs_model_is_complete(m) && i < m->n_artifacts; i++) {
        json_t *a = json_object();
        json_object_set_new(a, "kind", json_string(m->artifacts[i].kind));
        json_object_set_new(a, "url", json_string(m->artifacts[i].url));
        json_array_append_new(arts, a);
    }
    json_object_set_new(o, "artifacts", arts);
    json_t *imgs = json_array();
    for (size_t i = 0; i < m->n_images; i++) {
        json_t *a = json_object();
        json_object_set_new(a, "id", json_integer(m->images[i].id));
        json_object_set_new(a, "url", str_or_null(m->images[i].url));
        json_array_append_new(imgs, a);
    }
    json_object_set_new(o, "images", imgs);
    return o;
}

json_t *out_job_json(const struct hs_job *j)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(j->id));
    json_object_set_new(o, "name", str_or_null(j->name));
    json_object_set_new(o, "reconstruction_state", str_or_null(j->reconstruction_state));
    json_object_set_new(o, "external_identifier", str_or_null(j->external_identifier));
    json_object_set_new(o, "org_id", j->org_id ? json_integer(j->org_id) : json_null());
    json_object_set_new(o, "archived", json_boolean(j->archived));
    json_object_set_new(o, "created_at", str_or_null(j->created_at));
    json_object_set_new(o, "updated_at", str_or_null(j->updated_at));
    json_object_set_new(o, "completed_at", str_or_null(j->completed_at));
    json_object_set_new(o, "address", address_json(&j->address));
    json_t *cu = json_object();
    json_object_set_new(cu, "first_name", str_or_null(j->customer.first_name));
    json_object_set_new(cu, "name", str_or_null(j->customer.name));
    json_object_set_new(cu, "email", str_or_null(j->customer.email));
    json_object_set_new(cu, "phone", str_or_null(j->customer.phone));
    json_object_set_new(o, "customer", cu);
    json_t *models = json_array();
    for (size_t i = 0; i < j->n_models; i++)
        json_array_append_new(models, model_json(&j->models[i]));
    json_object_set_new(o, "models", models);
    return o;
}

char *out_address_line(const struct hs_address *a)
{
    struct hs_buf b;
    hs_buf_init(&b, 4096);
    const char *parts[] = {a->line1, a->line2, a->city};
    for (size_t i = 0; i < 3; i++) {
        if (!parts[i] || !*parts[i])
            continue;
        if (b.len)
            hs_buf_appends(&b, ", ");
        hs_buf_appends(&b, parts[i]);
    }
    if (a->region && *a->region)
        hs_buf_appendf(&b, "%s%s", b.len ? ", " : "", a->region);
    if (a->postal_code && *a->postal_code)
        hs_buf_appendf(&b, "%s%s", b.len ? " " : "", a->postal_code);
    return hs_buf_take(&b, NULL);
}

void out_print_json(FILE *f, json_t *j)
{
    json_dumpf(j, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', f);
}

/* Length in bytes of the UTF-8 sequence that starts with c (1 for stray bytes). */
static size_t seq_len(unsigned char c)
{
    if (c >= 0xF0 && c < 0xF8)
        return 4;
    if (c >= 0xE0)
        return c < 0xF0 ? 3 : 1;
    if (c >= 0xC0)
        return 2;
    return 1;
}

void out_cell(FILE *f, const char *s, int width)
{
    if (!s)
        s = "-";
    int cells = 0;
    size_t total = strlen(s);
    for (size_t i = 0; i < total; i += seq_len((unsigned char)s[i]))
        cells++;
    if (cells <= width) {
        fputs(s, f);
        for (int k = cells; k < width; k++)
            fputc(' ', f);
        return;
    }
    size_t i = 0;
    for (int k = 0; k < width - 1 && i < total; k++) {
        size_t n = seq_len((unsigned char)s[i]);
        if (i + n > total)
            break;
        fwrite(s + i, 1, n, f);
        i += n;
    }
    fputs("\xe2\x80\xa6", f); /* … */
}
