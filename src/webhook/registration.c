/* registration.c: registering the service's webhook and reading its health (registration.h). */
#include "webhook/registration.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "store/webhooks.h"
#include "webhook/receiver.h"

char *hs_webhook_receiver_url(const char *public_url)
{
    size_t n = strlen(public_url);
    while (n && public_url[n - 1] == '/')
        n--;
    return hs_aprintf("%.*s%s", (int)n, public_url, HS_WEBHOOK_PATH);
}

static int verify_with(struct hs_client *c, const char *code, char **verified_at,
                       struct hs_error *err)
{
    struct hs_hover_webhook w = {0};
    int rc = hs_webhooks_verify(c, code, &w, err);
    if (!rc) {
        *verified_at = w.verified_at;
        w.verified_at = NULL;
    }
    hs_hover_webhook_clear(&w);
    return rc;
}

int hs_webhook_verify_via_client(void *ctx, const char *connection_key, const char *code,
                                 char **verified_at, struct hs_error *err)
{
    (void)connection_key;
    return verify_with(ctx, code, verified_at, err);
}

int hs_webhook_verify_via_provider(void *ctx, const char *connection_key, const char *code,
                                   char **verified_at, struct hs_error *err)
{
    const struct hs_client_provider *p = ctx;
    struct hs_client *c = NULL;
    int rc = p->acquire(p->ctx, connection_key, &c, err);
    if (rc)
        return rc;
    rc = verify_with(c, code, verified_at, err);
    p->release(p->ctx, c);
    return rc;
}

/* The stored webhook of (connection, url), newest first; HS_ERR_NOT_FOUND if none. */
static int find_stored(struct hs_store *store, const char *connection_key, const char *url,
                       struct hs_webhook_row *out, struct hs_error *err)
{
    struct hs_webhook_row *v = NULL;
    size_t n = 0;
    int rc = store->webhooks->webhook_list(store, &v, &n, err);
    if (rc)
        return rc;
    rc = HS_ERR_NOT_FOUND;
    size_t best = n;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].connection_key, connection_key) != 0 || strcmp(v[i].url, url) != 0)
            continue;
        /* A verified one wins; then the newest (the highest id). */
        if (best == n || (v[i].verified_at && !v[best].verified_at) ||
            (!v[i].verified_at == !v[best].verified_at && v[i].id > v[best].id))
            best = i;
    }
    if (best < n) {
        *out = v[best];
        memset(&v[best], 0, sizeof v[best]);
        rc = HS_OK;
    }
    hs_webhook_rows_free(v, n);
    return rc;
}

static int register_new(struct hs_store *store, struct hs_client *c, const char *connection_key,
                        const char *url, struct hs_webhook_row *row, bool *verified,
                        struct hs_error *err)
{
    struct hs_hover_webhook h = {0};
    int rc = hs_webhooks_register(c, url, &h, err);
    if (rc)
        return rc;
    /* The secret is stored before anything else: a delivery that arrives from now on is
     * checked with it, one that arrived before is settled below. */
    struct hs_webhook_row w = {
        .id = h.id,
        .connection_key = (char *)connection_key,
        .url = h.url ? h.url : (char *)url,
        .hmac_secret = h.hmac_secret,
        .verified_at = h.verified_at,
        .last_error = h.last_error,
        .created_at = h.created_at,
    };
    rc = store->webhooks->webhook_put(store, &w, err);
    int64_t id = h.id;
    hs_hover_webhook_clear(&h);
    if (rc)
        return rc;
    hs_info("webhook registered webhook_id=%lld connection=%s", (long long)id, connection_key);
    struct hs_receiver_config rc_cfg = {.store = store};
    struct hs_error e2 = {0};
    int r2 = hs_receiver_complete_unverified(&rc_cfg, id, NULL, &e2);
    if (r2)
        hs_warn("webhook kept deliveries not settled webhook_id=%lld error=%s msg=\"%s\"",
                (long long)id, hs_err_name(r2), e2.msg);
    rc = store->webhooks->webhook_get(store, id, row, err);
    if (!rc)
        *verified = row->verified_at != NULL;
    return rc;
}

int hs_webhook_ensure(struct hs_store *store, struct hs_client *c, const char *connection_key,
                      const char *url, bool force, struct hs_webhook_row *out,
                      enum hs_webhook_outcome *outcome, bool *verified, struct hs_error *err)
{
    struct hs_webhook_row row = {0};
    bool ok = false;
    enum hs_webhook_outcome what = HS_WEBHOOK_REGISTERED;
    int rc = force ? HS_ERR_NOT_FOUND : find_stored(store, connection_key, url, &row, err);
    if (rc == HS_OK && row.verified_at) {
        what = HS_WEBHOOK_ALREADY_VERIFIED;
        ok = true;
    } else if (rc == HS_OK && row.hmac_secret) {
        struct hs_error e2 = {0};
        rc = hs_webhooks_request_verification(c, row.id, &e2);
        if (rc == HS_OK) {
            what = HS_WEBHOOK_CODE_REQUESTED;
            /* A new code: whatever Hover said of the last one no longer holds. */
            (void)store->webhooks->webhook_set_local_error(store, row.id, NULL, NULL);
            free(row.local_error);
            row.local_error = NULL;
            hs_info("webhook new verification code requested webhook_id=%lld connection=%s",
                    (long long)row.id, connection_key);
        } else if (rc == HS_ERR_NOT_FOUND) {
            /* Hover no longer knows it: forget it and register anew. */
            (void)store->webhooks->webhook_delete(store, row.id, NULL);
            hs_webhook_row_clear(&row);
            rc = register_new(store, c, connection_key, url, &row, &ok, err);
        } else if (err) {
            *err = e2;
        }
    } else if (rc == HS_OK || rc == HS_ERR_NOT_FOUND) {
        hs_webhook_row_clear(&row);
        rc = register_new(store, c, connection_key, url, &row, &ok, err);
    }
    if (rc) {
        hs_webhook_row_clear(&row);
        return rc;
    }
    if (outcome)
        *outcome = what;
    if (verified)
        *verified = ok;
    if (out)
        *out = row;
    else
        hs_webhook_row_clear(&row);
    return HS_OK;
}

int hs_webhooks_refresh(struct hs_store *store, struct hs_client *c, const char *connection_key,
                        struct hs_hover_webhook **out, size_t *n, struct hs_error *err)
{
    struct hs_hover_webhook *v = NULL;
    size_t len = 0;
    int rc = hs_webhooks_list(c, &v, &len, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < len; i++) {
        struct hs_webhook_row w = {0};
        if (store->webhooks->webhook_get(store, v[i].id, &w, NULL) != HS_OK)
            continue;
        if (strcmp(w.connection_key, connection_key) == 0) {
            struct hs_webhook_row upd = w;
            upd.hmac_secret = NULL; /* kept as stored */
            upd.verified_at = v[i].verified_at;
            upd.last_error = v[i].last_error;
            struct hs_error e2 = {0};
            if (store->webhooks->webhook_put(store, &upd, &e2) != HS_OK)
                hs_warn("webhook health not stored webhook_id=%lld msg=\"%s\"", (long long)w.id,
                        e2.msg);
        }
        hs_webhook_row_clear(&w);
    }
    *out = v;
    *n = len;
    return HS_OK;
}
