/* profile.c: see profile.h. */
#include "sync/profile.h"

#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "store/service.h"

/* The kinds Hover's Show Job offers (hover-api.md 3.4, 3.5), by the names mapping.c gives them.
 * At most 32 (a bit each). */
const char *const hs_profile_kinds[] = {
    "measurements.pdf",
    "measurements.json",
    "measurements.summarized_json",
    "measurements.full_json",
    "measurements.sketch_json",
    "measurements.roof_lines",
    "measurements.paint_measurements",
    "measurements.xlsx",
    "cad_exports.skp",
    "cad_exports.xml",
    "cad_export_fml",
    NULL,
};

static int kind_index(const char *kind)
{
    for (int i = 0; hs_profile_kinds[i]; i++)
        if (strcmp(hs_profile_kinds[i], kind) == 0)
            return i;
    return -1;
}

/* The valid names, kinds of one group folded ("measurements.pdf|json|...") so that the whole
 * list fits an error message. */
static int unknown_name(const char *name, struct hs_error *err)
{
    struct hs_buf b;
    hs_buf_init(&b, 1024);
    hs_buf_appends(&b, "all, default, images:none|first|all");
    size_t plen = 0; /* the previous kind's group prefix, dot included */
    for (int i = 0; hs_profile_kinds[i]; i++) {
        const char *k = hs_profile_kinds[i], *dot = strchr(k, '.');
        size_t len = dot ? (size_t)(dot - k) + 1 : 0;
        if (i > 0 && len && len == plen && strncmp(k, hs_profile_kinds[i - 1], len) == 0)
            hs_buf_appendf(&b, "|%s", k + len);
        else
            hs_buf_appendf(&b, ", %s", k);
        plen = len;
    }
    int rc = hs_fail(err, HS_ERR_INVALID, "unknown artifact name '%.40s' (valid: %s)", name,
                     hs_buf_str(&b));
    hs_buf_free(&b);
    return rc;
}

static int add_name(struct hs_profile *p, const char *name, struct hs_error *err)
{
    int k;
    if (strcmp(name, "all") == 0) {
        p->all = true;
    } else if (strcmp(name, HS_PROFILE_DEFAULT) == 0) {
        p->extracted = true;
        p->kinds |= 1u << kind_index("measurements.pdf");
        if (p->images == HS_IMAGES_NONE)
            p->images = HS_IMAGES_FIRST;
    } else if (strcmp(name, "images:none") == 0) {
        p->images = HS_IMAGES_NONE;
    } else if (strcmp(name, "images:first") == 0) {
        p->images = HS_IMAGES_FIRST;
    } else if (strcmp(name, "images:all") == 0) {
        p->images = HS_IMAGES_ALL;
    } else if ((k = kind_index(name)) >= 0) {
        p->kinds |= 1u << k;
    } else {
        return unknown_name(name, err);
    }
    return HS_OK;
}

int hs_profile_parse(const char *list, struct hs_profile *out, struct hs_error *err)
{
    char *copy = hs_strdup(list ? list : "");
    const char *names[64];
    size_t n = 0;
    struct hs_profile p = {0};
    int rc = hs_split_list(copy, names, sizeof names / sizeof names[0], &n);
    if (rc)
        rc = hs_fail(err, HS_ERR_INVALID, "an artifact profile names at most %zu items",
                     sizeof names / sizeof names[0]);
    else if (n == 0)
        rc = hs_fail(err, HS_ERR_INVALID,
                     "an artifact profile names at least one item (all, default, images:none, "
                     "or artifact kinds)");
    for (size_t i = 0; rc == HS_OK && i < n; i++)
        rc = add_name(&p, names[i], err);
    free(copy);
    if (rc == HS_OK)
        *out = p;
    return rc;
}

/* The same documents the extraction reads (engine.c): "measurements.json" is Hover's plain link
 * to the summarized version. */
static bool is_summarized(const char *kind)
{
    return strcmp(kind, "measurements.json") == 0 || strstr(kind, "summarized") != NULL;
}

const char *hs_profile_extraction_kind(const struct hs_model *m)
{
    static const char *const order[] = {"summarized", "sketch", "full_json"};
    for (size_t o = 0; o < sizeof order / sizeof order[0]; o++)
        for (size_t i = 0; i < m->n_artifacts; i++) {
            const char *k = m->artifacts[i].kind;
            if (!k || !hs_starts_with(k, "measurements."))
                continue;
            if (o == 0 ? is_summarized(k) : strstr(k, order[o]) != NULL)
                return k;
        }
    return NULL;
}

bool hs_profile_wants_artifact(const struct hs_profile *p, const struct hs_model *m,
                               const char *kind)
{
    if (p->all)
        return true;
    int k = kind_index(kind);
    if (k >= 0 && (p->kinds & (1u << k)))
        return true;
    return p->extracted && hs_streq(hs_profile_extraction_kind(m), kind);
}

bool hs_profile_wants_image(const struct hs_profile *p, const struct hs_model *m, size_t i)
{
    if (p->all || p->images == HS_IMAGES_ALL)
        return true;
    if (p->images == HS_IMAGES_NONE)
        return false;
    for (size_t k = 0; k < m->n_images; k++) /* the first one with a URL */
        if (m->images[k].url)
            return k == i;
    return false;
}

char *hs_profile_of(struct hs_store *store, const char *connection_key, const char *dflt)
{
    char *v = NULL;
    struct hs_error err = {0};
    int rc = connection_key
                 ? store->service->connection_artifacts_get(store, connection_key, &v, &err)
                 : HS_ERR_NOT_FOUND;
    if (rc && rc != HS_ERR_NOT_FOUND)
        hs_warn("sync=profile connection=%s error=\"%s\" msg=\"using the installation's "
                "profile\"",
                connection_key, err.msg);
    if (rc == HS_OK && v)
        return v;
    free(v);
    return hs_strdup(dflt ? dflt : HS_PROFILE_DEFAULT);
}
