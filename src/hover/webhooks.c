/* webhooks.c: Hover's webhook API (webhooks.h) on top of hs_client_request. */
#include "hover/webhooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/json.h"
#include "core/mem.h"

#define CODE_MAX 128
/* A runaway pagination (a server that always says "next page") stops here. */
#define MAX_PAGES 1000

void hs_hover_webhook_clear(struct hs_hover_webhook *w)
{
    if (!w)
        return;
    free(w->owner_type);
    free(w->url);
    free(w->content_type);
    free(w->created_at);
    free(w->updated_at);
    free(w->verified_at);
    free(w->last_error);
    free(w->hmac_secret);
    memset(w, 0, sizeof *w);
}

void hs_hover_webhooks_free(struct hs_hover_webhook *v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        hs_hover_webhook_clear(&v[i]);
    free(v);
}

static int from_object(const json_t *o, struct hs_hover_webhook *out, struct hs_error *err)
{
    if (!json_is_object(o))
        return hs_fail(err, HS_ERR_PARSE, "webhook: not a JSON object");
    struct hs_hover_webhook w = {0};
    if (!hs_json_i64(o, "id", &w.id) || w.id <= 0)
        return hs_fail(err, HS_ERR_PARSE, "webhook: no positive id");
    (void)hs_json_i64(o, "owner_id", &w.owner_id);
    w.owner_type = hs_json_strdup(o, "owner_type");
    w.url = hs_json_strdup(o, "url");
    w.content_type = hs_json_strdup(o, "content_type");
    w.created_at = hs_json_strdup(o, "created_at");
    w.updated_at = hs_json_strdup(o, "updated_at");
    w.verified_at = hs_json_strdup(o, "verified_at");
    w.last_error = hs_json_strdup(o, "last_error");
    w.hmac_secret = hs_json_strdup(o, "hmac_secret");
    *out = w;
    return HS_OK;
}

int hs_hover_webhook_from_json(const char *json, size_t len, struct hs_hover_webhook *out,
                               struct hs_error *err)
{
    json_t *root = NULL;
    int rc = hs_json_parse(json, len, HS_JSON_MAX_BYTES, &root, err);
    if (rc)
        return rc;
    const json_t *o = root;
    const json_t *inner = json_object_get(root, "webhook");
    if (json_is_object(inner))
        o = inner;
    rc = from_object(o, out, err);
    json_decref(root);
    return rc;
}

int hs_webhooks_list(struct hs_client *c, struct hs_hover_webhook **out, size_t *n,
                     struct hs_error *err)
{
    struct hs_hover_webhook *v = NULL;
    size_t len = 0, cap = 0;
    int rc = HS_OK;
    for (int64_t page = 1; page <= MAX_PAGES && !rc; page++) {
        char path[96];
        (void)snprintf(path, sizeof path, "/api/v2/webhooks?page=%lld&per=100", (long long)page);
        struct hs_fetch_result r = {0};
        rc = hs_client_request(c, "GET", path, NULL, &r, err);
        if (rc)
            break;
        json_t *root = NULL;
        rc = hs_json_parse(r.body, r.body_len, HS_JSON_MAX_BYTES, &root, err);
        hs_fetch_result_clear(&r);
        if (rc)
            break;
        const json_t *results = json_object_get(root, "results");
        if (!json_is_array(results)) {
            json_decref(root);
            rc = hs_fail(err, HS_ERR_PARSE, "GET /api/v2/webhooks: no results array");
            break;
        }
        size_t i;
        const json_t *item;
        json_array_foreach(results, i, item)
        {
            if (len == cap) {
                cap = cap ? cap * 2 : 8;
                v = hs_realloc(v, cap * sizeof *v);
            }
            rc = from_object(item, &v[len], err);
            if (rc)
                break;
            len++;
        }
        int64_t next = 0;
        const json_t *pg = json_object_get(root, "pagination");
        bool more = !rc && json_array_size(results) > 0 && hs_json_i64(pg, "next_page", &next) &&
                    next > page;
        if (!more && !rc && json_array_size(results) > 0 && !json_object_get(pg, "next_page")) {
            /* Without next_page (v2 shape), total_pages tells. */
            int64_t total = 0;
            more = hs_json_i64(pg, "total_pages", &total) && total > page;
        }
        json_decref(root);
        if (!more)
            break;
    }
    if (rc) {
        hs_hover_webhooks_free(v, len);
        return rc;
    }
    *out = v;
    *n = len;
    return HS_OK;
}

int hs_webhooks_register(struct hs_client *c, const char *url, struct hs_hover_webhook *out,
                         struct hs_error *err)
{
    if (!url || !*url)
        return hs_fail(err, HS_ERR_INVALID, "a webhook needs a URL");
    json_t *body = json_pack("{s:{s:s,s:s}}", "webhook", "url", url, "content_type", "json");
    if (!body)
        return hs_fail(err, HS_ERR_INVALID, "webhook URL is not valid UTF-8");
    char *text = hs_json_dump(body);
    json_decref(body);
    struct hs_fetch_result r = {0};
    int rc = hs_client_request(c, "POST", "/api/v2/webhooks", text, &r, err);
    free(text);
    if (!rc) {
        rc = hs_hover_webhook_from_json(r.body, r.body_len, out, err);
        if (!rc && !out->hmac_secret) {
            hs_hover_webhook_clear(out);
            rc = hs_fail(err, HS_ERR_PARSE, "POST /api/v2/webhooks: no hmac_secret in the answer");
        }
    }
    hs_fetch_result_clear(&r);
    return rc;
}

bool hs_webhook_code_valid(const char *code)
{
    size_t n = code ? strlen(code) : 0;
    if (n == 0 || n > CODE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = code[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
        if (!ok)
            return false;
    }
    return true;
}

int hs_webhooks_verify(struct hs_client *c, const char *code, struct hs_hover_webhook *out,
                       struct hs_error *err)
{
    if (!hs_webhook_code_valid(code))
        return hs_fail(err, HS_ERR_INVALID, "verification code is not a plain token");
    char path[64 + CODE_MAX];
    (void)snprintf(path, sizeof path, "/api/v2/webhooks/%s/verify", code);
    struct hs_fetch_result r = {0};
    int rc = hs_client_request(c, "PUT", path, NULL, &r, err);
    if (!rc && out)
        rc = hs_hover_webhook_from_json(r.body, r.body_len, out, err);
    hs_fetch_result_clear(&r);
    return rc;
}

int hs_webhooks_delete(struct hs_client *c, int64_t id, struct hs_error *err)
{
    if (id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "webhook ids are positive integers");
    char path[64];
    (void)snprintf(path, sizeof path, "/api/v2/webhooks/%lld", (long long)id);
    struct hs_fetch_result r = {0};
    int rc = hs_client_request(c, "DELETE", path, NULL, &r, err);
    hs_fetch_result_clear(&r);
    return rc;
}

int hs_webhooks_request_verification(struct hs_client *c, int64_t id, struct hs_error *err)
{
    if (id <= 0)
        return hs_fail(err, HS_ERR_INVALID, "webhook ids are positive integers");
    char path[80];
    (void)snprintf(path, sizeof path, "/api/v2/webhooks/%lld/request_verification", (long long)id);
    struct hs_fetch_result r = {0};
    int rc = hs_client_request(c, "POST", path, NULL, &r, err);
    hs_fetch_result_clear(&r);
    return rc;
}
