/* api_error.c: see api_error.h. Hover's error bodies are not standardised, so the message is
 * assembled from whichever of the known shapes the body has. */
#include "hover/api_error.h"

#include <string.h>

#include "core/buf.h"
#include "core/json.h"

#define ERROR_BODY_MAX (64u * 1024u)

int hs_http_status_code(long status)
{
    if ((status >= 200 && status <= 299) || status == 304)
        return HS_OK;
    switch (status) {
    case 401:
        return HS_ERR_UNAUTHORIZED;
    case 403:
        return HS_ERR_FORBIDDEN;
    case 404:
        return HS_ERR_NOT_FOUND;
    case 422:
        return HS_ERR_UNPROCESSABLE;
    case 429:
        return HS_ERR_RATE_LIMITED;
    default:
        return status >= 500 && status <= 599 ? HS_ERR_SERVER : HS_ERR_HTTP;
    }
}

/* Appends a readable rendering of v: strings as is, arrays joined with ", ", objects as
 * "key: value" joined with "; ". Depth-limited: error bodies are small and flat. */
static void render(struct hs_buf *b, const json_t *v, int depth)
{
    if (depth > 4)
        return;
    if (json_is_string(v)) {
        (void)hs_buf_append(b, json_string_value(v), json_string_length(v));
    } else if (json_is_number(v)) {
        (void)hs_buf_appendf(b, "%g", json_number_value(v));
    } else if (json_is_array(v)) {
        size_t i;
        const json_t *e;
        json_array_foreach(v, i, e)
        {
            if (i)
                (void)hs_buf_appends(b, ", ");
            render(b, e, depth + 1);
        }
    } else if (json_is_object(v)) {
        const char *k;
        const json_t *e;
        bool first = true;
        json_object_foreach((json_t *)v, k, e)
        {
            if (!first)
                (void)hs_buf_appends(b, "; ");
            first = false;
            (void)hs_buf_appendf(b, "%s: ", k);
            render(b, e, depth + 1);
        }
    }
}

static void copy_clean(const char *s, size_t len, char *out, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < len && j + 1 < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        out[j++] = (ch < 0x20 || ch == 0x7f) ? ' ' : (char)ch;
    }
    out[j] = '\0';
    while (j > 0 && out[j - 1] == ' ')
        out[--j] = '\0';
}

bool hs_api_error_text(const char *body, size_t len, char *out, size_t n)
{
    if (n == 0)
        return false;
    out[0] = '\0';
    if (!body || len == 0)
        return false;
    struct hs_buf b;
    hs_buf_init(&b, 4096);
    json_t *j = NULL;
    if (len <= ERROR_BODY_MAX && hs_json_parse(body, len, ERROR_BODY_MAX, &j, NULL) == HS_OK) {
        const json_t *e = json_is_object(j) ? json_object_get(j, "error") : NULL;
        const json_t *es = json_is_object(j) ? json_object_get(j, "errors") : NULL;
        const json_t *m = json_is_object(j) ? json_object_get(j, "message") : NULL;
        const json_t *d = json_is_object(j) ? json_object_get(j, "error_description") : NULL;
        if (e && !json_is_null(e))
            render(&b, e, 0);
        if (json_is_string(d)) {
            if (b.len)
                (void)hs_buf_appends(&b, ": ");
            render(&b, d, 0);
        }
        if (es && !json_is_null(es)) {
            if (b.len)
                (void)hs_buf_appends(&b, "; ");
            render(&b, es, 0);
        }
        if (b.len == 0 && json_is_string(m))
            render(&b, m, 0);
        json_decref(j);
    } else {
        /* Plain text is shown when it is short and looks like a sentence, not a page. */
        size_t line = 0;
        while (line < len && body[line] != '\r' && body[line] != '\n')
            line++;
        if (line > 0 && line <= 200 && memchr(body, '<', line) == NULL)
            (void)hs_buf_append(&b, body, line);
    }
    copy_clean(hs_buf_str(&b), b.len, out, n);
    hs_buf_free(&b);
    return out[0] != '\0';
}

int hs_api_fail(long status, const char *body, size_t len, const char *what, struct hs_error *err)
{
    int code = hs_http_status_code(status);
    if (code == HS_OK)
        code = HS_ERR_HTTP;
    if (!err)
        return code;
    char text[200];
    if (hs_api_error_text(body, len, text, sizeof text))
        hs_fail(err, code, "%s: HTTP %ld: %s", what, status, text);
    else
        hs_fail(err, code, "%s: HTTP %ld", what, status);
    err->http_status = (int)status;
    return code;
}
