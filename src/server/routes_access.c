/* routes_access.c: the routes that give and take back access (docs/API.md "API keys",
 * "Sessions", "Deleting a connection"): the named API keys, revoking a session with the API
 * key, the modal's logout, and deleting a connection (a Hover org). Keys, sessions and
 * connections live in the store, so that what one instance revokes fails at once on every
 * other (keys: within the cache of auth.c, KEYS_CACHE_MS). */
#include <openssl/crypto.h>
#include <string.h>

#include "core/json.h"
#include "core/log.h"
#include "core/str.h"
#include "server/internal.h"
#include "hover/pool.h"
#include "store/service.h"
#include "webhook/disconnect.h"

static json_t *unix_iso(int64_t unix_s)
{
    if (unix_s <= 0)
        return json_null();
    char buf[32];
    hs_iso8601_format(unix_s, 0, buf, sizeof buf);
    return json_string(buf);
}

/* GET /api/apikeys (API key only): names and times, never a key nor its hash. */
void hs_route_apikeys_list(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    struct hs_api_key *v = NULL;
    size_t n = 0;
    struct hs_error err = {0};
    int rc = s->store->service->api_keys_list(s->store, &v, &n, &err);
    if (rc) {
        hs_resp_fail(r, rc, &err, "listing the API keys");
        return;
    }
    json_t *arr = json_array();
    if (s->has_env_key)
        json_array_append_new(arr,
                              json_pack("{s:s, s:s, s:n, s:n}", "name", HS_API_KEY_ENV_NAME,
                                        "source", "environment", "created_at", "last_used_at"));
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr,
                              json_pack("{s:o, s:s, s:o, s:o}", "name", hs_json_text(v[i].name),
                                        "source", "store", "created_at", unix_iso(v[i].created_at),
                                        "last_used_at", unix_iso(v[i].last_used_at)));
    hs_api_keys_free(v, n);
    hs_resp_json(r, 200, json_pack("{s:o}", "keys", arr));
}

/* POST /api/apikeys {"name":...} (API key only): the new key, shown in this answer only. */
void hs_route_apikeys_create(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    json_t *body = NULL;
    if (hs_req_json_object(q, false, &body, r) != 0)
        return;
    const char *name = json_string_value(json_object_get(body, "name"));
    if (!hs_api_key_name_ok(name)) {
        json_decref(body);
        hs_resp_error(r, 400, "bad_request",
                      "name must be 1 to %d letters, digits, '-', '_' or '.', and not '%s'",
                      HS_API_KEY_NAME_MAX, HS_API_KEY_ENV_NAME);
        return;
    }
    char key[HS_API_KEY_LEN + 1];
    struct hs_error err = {0};
    int64_t now = hs_server_wall_s(s);
    int rc = hs_api_key_create(s->store, name, now, key, &err);
    if (rc == HS_ERR_CONFLICT)
        hs_resp_error(r, 409, "conflict", "an API key named '%s' exists already", name);
    else if (rc)
        hs_resp_fail(r, rc, &err, "creating the API key");
    else {
        hs_resp_json(
            r, 201,
            json_pack("{s:s, s:s, s:o}", "name", name, "key", key, "created_at", unix_iso(now)));
        hs_resp_header(r, "Cache-Control", "no-store");
        hs_info("apikey msg=\"created\" name=%s", name);
    }
    OPENSSL_cleanse(key, sizeof key);
    json_decref(body);
}

/* DELETE /api/apikeys/{name} (API key only). */
void hs_route_apikeys_revoke(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    const char *name = q->params[0];
    if (name && strcmp(name, HS_API_KEY_ENV_NAME) == 0) {
        hs_resp_error(r, 409, "conflict",
                      "the key 'env' is HOVERSYNC_API_KEY: unset it and restart the service");
        return;
    }
    struct hs_error err = {0};
    int rc = s->store->service->api_key_delete(s->store, name, &err);
    if (rc) {
        hs_resp_fail(r, rc, &err, "revoking the API key");
        return;
    }
    hs_info("apikey msg=\"revoked\" name=%s", name);
    hs_resp_set(r, 204, NULL, NULL, 0);
}

/* DELETE /api/sessions/{id} (API key only): id is the session's id from POST /api/sessions (the
 * SHA-256 of its token). The next request of that session fails, on any instance. */
void hs_route_sessions_revoke(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    const char *id = q->params[0];
    if (!hs_is_hex(id, 64)) {
        hs_resp_error(r, 404, "not_found", "no such session (an id is 64 hex digits)");
        return;
    }
    struct hs_error err = {0};
    int rc = s->store->service->session_delete(s->store, id, &err);
    if (rc) {
        hs_resp_fail(r, rc, &err, "revoking the session");
        return;
    }
    hs_info("session msg=\"revoked\" by=api_key");
    hs_resp_set(r, 204, NULL, NULL, 0);
}

/* DELETE /api/session: the caller's own session ends (the modal's logout); its cookie, if it
 * came with one, is dropped. */
void hs_route_session_end(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    if (q->auth != HS_AUTH_SESSION) {
        hs_resp_error(r, 400, "bad_request",
                      "the API key has no session to end: DELETE /api/sessions/{id} revokes one");
        return;
    }
    struct hs_error err = {0};
    int rc = s->store->service->session_delete(s->store, q->session.token_sha256, &err);
    if (rc && rc != HS_ERR_NOT_FOUND) {
        hs_resp_fail(r, rc, &err, "ending the session");
        return;
    }
    hs_info("session msg=\"ended\" by=session");
    hs_resp_set(r, 204, NULL, NULL, 0);
    if (hs_req_cookie(q, "hs_session"))
        hs_resp_header(r, "Set-Cookie",
                       s->cookie_secure
                           ? "hs_session=; Path=/; HttpOnly; Max-Age=0; SameSite=None; Secure"
                           : "hs_session=; Path=/; HttpOnly; Max-Age=0; SameSite=Lax");
}

/* DELETE /api/connections/{name}[?purge=true] (API key only): src/webhook/disconnect.h. */
void hs_route_connection_delete(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    const char *name = q->params[0];
    const char *p = hs_req_arg(q, "purge");
    if (p && strcmp(p, "true") != 0 && strcmp(p, "false") != 0) {
        hs_resp_error(r, 400, "bad_request", "purge is true or false");
        return;
    }
    bool purge = p && strcmp(p, "true") == 0;
    struct hs_client *client = NULL;
    struct hs_error err = {0};
    if (hs_client_pool_acquire(s->pool, name, &client, &err) != HS_OK)
        client = NULL; /* said in the answer: nothing could be deregistered */
    struct hs_disconnect_report rep = {0};
    int rc = hs_connection_disconnect(s->store, client, name, purge, s->data_dir,
                                      s->clock->wall_ms(s->clock), &rep, &err);
    if (client)
        hs_client_pool_release(s->pool, client);
    if (rc) {
        hs_resp_fail(r, rc, &err, "deleting the connection");
        return;
    }
    hs_connection_note(s, name, HS_OK); /* a flag of this process, for a name no longer there */
    hs_resp_json(r, 200, hs_disconnect_report_json(name, purge, &rep));
    hs_disconnect_report_clear(&rep);
}
