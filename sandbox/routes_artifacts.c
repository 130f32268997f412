/* routes_artifacts.c: a model's artifacts (measurements JSON/PDF/XLSX, CAD exports, interior
 * floor plan) and images. They exist only for models whose state is "complete" and only for the
 * token's org; every body carries a strong ETag and honours If-None-Match. The PDF answers with a
 * redirect to a presigned URL on the storage listener, as Hover's storage host would. */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/mem.h"
#include "exports.h"
#include "routes.h"

#define CT_JSON "application/json"
#define CT_XLSX "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#define CT_SKP  "application/vnd.sketchup.skp"
#define CT_XML  "application/xml"
#define CT_JPEG "image/jpeg"

static bool offers(const char *const *versions, const char *v)
{
    for (; versions && *versions; versions++)
        if (!strcmp(*versions, v))
            return true;
    return false;
}

static void not_available(struct sb_resp *r, const char *why)
{
    char msg[192];
    (void)snprintf(msg, sizeof msg, "Artifact not available: %s", why);
    sb_resp_error(r, 404, msg);
}

/* Runs with the world locked; writes the answer to r. */
static void artifact_locked(struct sb_req *q, struct sb_resp *r, const struct sb_job *j,
                            const struct sb_model *m, const char *name)
{
    const char *const *versions = sb_measurement_versions(m->deliverable_id);
    bool measured = versions && versions[0];
    bool interior = j->interior || m->deliverable_id == 8;
    size_t len = 0;
    char *body = NULL;

    if (!strcmp(name, "measurements.json")) {
        if (!measured) {
            not_available(r, "this deliverable has no measurements");
            return;
        }
        const char *v = sb_arg(q, "version");
        if (!v || !*v)
            v = offers(versions, "summarized_json") ? "summarized_json" : versions[0];
        body = offers(versions, v) ? sb_measurements_body(j, m, v, &len) : NULL;
        if (!body) {
            char msg[256];
            int n = snprintf(msg, sizeof msg, "is not offered for this deliverable; offered:");
            for (const char *const *p = versions; *p && n > 0 && (size_t)n < sizeof msg; p++)
                n += snprintf(msg + n, sizeof msg - (size_t)n, " %s", *p);
            sb_resp_json(r, 422, json_pack("{s{s[s]}}", "errors", "version", msg));
            return;
        }
        sb_resp_entity(r, q, CT_JSON, body, len);
    } else if (!strcmp(name, "measurements.pdf")) {
        if (!measured) {
            not_available(r, "this deliverable has no measurements");
            return;
        }
        char path[96];
        (void)snprintf(path, sizeof path, "/storage/pdf/%lld-r%d.pdf", (long long)m->id,
                       m->revision);
        char *url = sb_presign(q->srv, path, sb_now_ms() / 1000 + SB_PRESIGN_TTL_S);
        sb_resp_header(r, MHD_HTTP_HEADER_LOCATION, url);
        sb_resp_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        free(url);
        sb_resp_set(r, 302, CT_JSON, NULL, 0);
    } else if (!strcmp(name, "measurements.xlsx")) {
        if (!measured) {
            not_available(r, "this deliverable has no measurements");
            return;
        }
        body = sb_export_xlsx(j, m, &len);
        sb_resp_entity(r, q, CT_XLSX, body, len);
    } else if (!strcmp(name, "cad_exports.skp") || !strcmp(name, "cad_export.skp") ||
               !strcmp(name, "cad_exports.xml") || !strcmp(name, "cad_export.xml")) {
        if (!measured) {
            not_available(r, "this deliverable has no CAD exports");
            return;
        }
        bool skp = strstr(name, ".skp") != NULL;
        body = skp ? sb_export_skp(j, m, &len) : sb_export_xml(j, m, &len);
        sb_resp_entity(r, q, skp ? CT_SKP : CT_XML, body, len);
    } else if (!strcmp(name, "cad_export.fml")) {
        if (!interior) {
            not_available(r, "cad_export.fml exists for interior models only");
            return;
        }
        json_t *doc = sb_cad_fml_json(j, m);
        if (!doc) {
            not_available(r, "cad_export.fml exists for interior models only");
            return;
        }
        body = hs_json_dump(doc);
        json_decref(doc);
        sb_resp_entity(r, q, CT_JSON, body, strlen(body));
    } else {
        sb_resp_error(r, 404, "Not found");
    }
}

void sb_artifact(struct sb_req *q, struct sb_resp *r, int64_t model_id, const char *name)
{
    if (!sb_require_token(q, r) || !sb_acting_user(q, r))
        return;
    struct sb_world *w = q->srv->world;
    pthread_mutex_lock(&w->lock);
    struct sb_job *j = NULL;
    const struct sb_model *m = sb_world_model(w, model_id, &j);
    if (!m || !j || j->org_id != q->tok.org_id) {
        sb_resp_error(r, 404, "Not found");
    } else if (!m->state || strcmp(m->state, "complete") != 0) {
        char why[96];
        (void)snprintf(why, sizeof why, "model state is %s", m->state ? m->state : "unknown");
        not_available(r, why);
    } else {
        artifact_locked(q, r, j, m, name);
    }
    pthread_mutex_unlock(&w->lock);
}

void sb_image(struct sb_req *q, struct sb_resp *r, int64_t image_id)
{
    if (!sb_require_token(q, r) || !sb_acting_user(q, r))
        return;
    struct sb_world *w = q->srv->world;
    unsigned char *bytes = NULL;
    size_t len = 0;
    pthread_mutex_lock(&w->lock);
    struct sb_model *m = NULL;
    struct sb_job *j = NULL;
    const struct sb_image *img = sb_world_image(w, image_id, &m);
    if (img && m)
        (void)sb_world_model(w, m->id, &j);
    if (!img || !m || !j || j->org_id != q->tok.org_id) {
        sb_resp_error(r, 404, "Not found");
    } else if (!m->state || strcmp(m->state, "complete") != 0) {
        char why[96];
        (void)snprintf(why, sizeof why, "model state is %s", m->state ? m->state : "unknown");
        not_available(r, why);
    } else {
        bytes = sb_jpeg_bytes(img, &len);
    }
    pthread_mutex_unlock(&w->lock);
    if (bytes)
        sb_resp_entity(r, q, CT_JPEG, (char *)bytes, len);
}
