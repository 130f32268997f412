/* http.c: request/response helpers; see http.h. */
#include "http.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/mem.h"
#include "world.h"

void sb_resp_init(struct sb_resp *r)
{
    memset(r, 0, sizeof *r);
    r->status = 500;
    r->ctype = "application/json";
}

void sb_resp_clear(struct sb_resp *r)
{
    free(r->body);
    for (int i = 0; i < r->n_headers; i++) {
        free(r->hname[i]);
        free(r->hvalue[i]);
    }
    sb_resp_init(r);
}

void sb_resp_set(struct sb_resp *r, int status, const char *ctype, char *body, size_t len)
{
    free(r->body);
    r->status = status;
    r->ctype = ctype;
    r->body = body;
    r->len = body ? len : 0;
}

void sb_resp_text(struct sb_resp *r, int status, const char *ctype, const char *text)
{
    sb_resp_set(r, status, ctype, hs_strdup(text), strlen(text));
}

void sb_resp_json(struct sb_resp *r, int status, json_t *j)
{
    if (!j) { /* a json_pack that failed: a bug, but not one worth a crash */
        sb_resp_text(r, 500, "application/json", "{\"error\":\"Internal error\"}");
        return;
    }
    char *s = hs_json_dump(j);
    json_decref(j);
    sb_resp_set(r, status, "application/json", s, strlen(s));
}

void sb_resp_error(struct sb_resp *r, int status, const char *msg)
{
    sb_resp_json(r, status, json_pack("{so}", "error", hs_json_text(msg)));
}

void sb_resp_oauth_error(struct sb_resp *r, int status, const char *code, const char *desc)
{
    sb_resp_json(r, status,
                 json_pack("{ss so}", "error", code, "error_description", hs_json_text(desc)));
}

void sb_resp_header(struct sb_resp *r, const char *name, const char *value)
{
    for (int i = 0; i < r->n_headers; i++) {
        if (strcasecmp(r->hname[i], name) == 0) {
            free(r->hvalue[i]);
            r->hvalue[i] = hs_strdup(value);
            return;
        }
    }
    if (r->n_headers == SB_MAX_HEADERS)
        abort(); /* a bug in a route: the table is sized for the routes we have */
    r->hname[r->n_headers] = hs_strdup(name);
    r->hvalue[r->n_headers] = hs_strdup(value);
    r->n_headers++;
}

static void entity(struct sb_resp *r, const struct sb_req *q, const char *ctype, char *body,
                   size_t len, char *etag)
{
    sb_resp_header(r, "ETag", etag);
    if (hs_etag_matches(sb_header(q, MHD_HTTP_HEADER_IF_NONE_MATCH), etag)) {
        free(body);
        sb_resp_set(r, 304, ctype, NULL, 0);
    } else {
        sb_resp_set(r, 200, ctype, body, len);
    }
    free(etag);
}

void sb_resp_entity(struct sb_resp *r, const struct sb_req *q, const char *ctype, char *body,
                    size_t len)
{
    entity(r, q, ctype, body, len, sb_etag(body, len));
}

void sb_resp_object(struct sb_resp *r, const struct sb_req *q, const char *ctype, char *body,
                    size_t len)
{
    entity(r, q, ctype, body, len, sb_etag_md5(body, len));
}

const char *sb_arg(const struct sb_req *q, const char *name)
{
    return MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, name);
}

struct each_ctx {
    const char *name;
    void (*fn)(void *ctx, const char *value);
    void *ctx;
    size_t n;
};

static enum MHD_Result each_cb(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
    (void)kind;
    struct each_ctx *e = cls;
    if (key && strcmp(key, e->name) == 0 && value) {
        e->fn(e->ctx, value);
        e->n++;
    }
    return MHD_YES;
}

size_t sb_arg_each(const struct sb_req *q, const char *name,
                   void (*fn)(void *ctx, const char *value), void *ctx)
{
    struct each_ctx e = {name, fn, ctx, 0};
    MHD_get_connection_values(q->conn, MHD_GET_ARGUMENT_KIND, each_cb, &e);
    return e.n;
}

const char *sb_header(const struct sb_req *q, const char *name)
{
    return MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, name);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t sb_url_decode(char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '+') {
            s[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0 &&
                   (lo = hexval(s[i + 2])) >= 0) {
            s[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            s[o++] = s[i];
        }
    }
    s[o] = '\0';
    return o;
}

json_t *sb_form_parse(const char *body, size_t len)
{
    json_t *obj = json_object();
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && body[end] != '&')
            end++;
        if (end > i) {
            size_t eq = i;
            while (eq < end && body[eq] != '=')
                eq++;
            char *k = hs_strndup(body + i, eq - i);
            char *v = eq < end ? hs_strndup(body + eq + 1, end - eq - 1) : hs_strdup("");
            size_t kl = sb_url_decode(k, strlen(k));
            size_t vl = sb_url_decode(v, strlen(v));
            if (kl > 0)
                json_object_set_new(obj, k, json_stringn_nocheck(v, vl));
            free(k);
            free(v);
        }
        i = end + 1;
    }
    return obj;
}

static int parse_body(struct sb_req *q, json_t **out, bool force_json)
{
    if (q->params || q->params_rc) {
        *out = q->params;
        return q->params_rc;
    }
    const char *ct = force_json ? "application/json" : sb_header(q, MHD_HTTP_HEADER_CONTENT_TYPE);
    size_t i = 0;
    while (i < q->body_len &&
           (q->body[i] == ' ' || q->body[i] == '\n' || q->body[i] == '\r' || q->body[i] == '\t'))
        i++;
    bool json =
        ct ? strncasecmp(ct, "application/json", 16) == 0 : (i < q->body_len && q->body[i] == '{');
    bool form = ct && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0;
    if (i == q->body_len) {
        q->params = json_object();
    } else if (json || !form) {
        json_t *j = NULL;
        if (hs_json_parse(q->body, q->body_len, SB_BODY_MAX, &j, NULL) != 0 || !json_is_object(j)) {
            json_decref(j);
            q->params_rc = -1;
            *out = NULL;
            return -1;
        }
        q->params = j;
    } else {
        q->params = sb_form_parse(q->body, q->body_len);
    }
    *out = q->params;
    return 0;
}

int sb_req_params(struct sb_req *q, json_t **out)
{
    return parse_body(q, out, false);
}

int sb_req_json(struct sb_req *q, json_t **out)
{
    return parse_body(q, out, true);
}

const char *sb_param_str(struct sb_req *q, const char *name)
{
    json_t *p;
    if (sb_req_params(q, &p) != 0)
        return NULL;
    json_t *v = json_object_get(p, name);
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v) || json_is_real(v)) {
        /* Keep the formatted copy alive with the request: store it back as a string. */
        char *s = hs_json_strdup(p, name);
        json_object_set_new(p, name, json_string(s));
        free(s);
        return json_string_value(json_object_get(p, name));
    }
    return NULL;
}

int64_t sb_now_ms(void)
{
    const struct hs_clock *c = hs_clock_system();
    return c->wall_ms(c);
}

const char *sb_errstr(int e, char *buf, size_t n)
{
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
    return strerror_r(e, buf, n);
#else
    if (strerror_r(e, buf, n) != 0)
        (void)snprintf(buf, n, "error %d", e);
    return buf;
#endif
}
