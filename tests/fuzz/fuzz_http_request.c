/* fuzz_http_request.c: libFuzzer target of the service's parsers of request bytes
 * (src/server/http.c): the route matcher against every route of the table, the web/ path check,
 * If-None-Match lists, listen addresses, content types by name, HTML escaping, JSON text, URL
 * redaction, and the framing check of a request's headers. The input is split at its first
 * newline: a path (or header value) and a second string; for the framing check the whole input
 * is a header block, one "Name: value" a line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "server/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The header block's framing: a verdict the service can answer, and a length only with a
 * Content-Length. */
static void framing(const char *data, size_t size)
{
    char *block = hs_strndup(data, size);
    struct hs_req_value h[64];
    size_t n = 0;
    char *save = NULL;
    for (char *line = strtok_r(block, "\n", &save); line && n < 64;
         line = strtok_r(NULL, "\n", &save)) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        h[n++] = (struct hs_req_value){MHD_HEADER_KIND, line, colon + 1};
    }
    const char *versions[] = {"HTTP/1.1", "HTTP/1.0", NULL};
    for (size_t v = 0; v < 3; v++) {
        struct hs_framing f;
        hs_http_framing(versions[v], h, n, &f);
        if (f.status != 0 && f.status != 400 && f.status != 501)
            abort();
        if (f.status && !f.msg[0])
            abort();
        if (!f.has_length && f.length)
            abort();
    }
    free(block);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *a = hs_strndup((const char *)data, size); /* stops at a NUL, like a C header value */
    char *nl = strchr(a, '\n');
    const char *b = "";
    if (nl) {
        *nl = '\0';
        b = nl + 1;
    }
    for (size_t i = 0; i < hs_n_routes; i++) {
        char *caps[HS_HTTP_MAX_PARAMS] = {0};
        size_t n = 99;
        bool m = hs_path_match(hs_routes[i].pattern, a, caps, HS_HTTP_MAX_PARAMS, &n);
        if (!m && n != 0)
            abort();
        for (size_t k = 0; k < n; k++) {
            if (!caps[k] || !caps[k][0] || strchr(caps[k], '/'))
                abort(); /* a capture is one non-empty segment */
            free(caps[k]);
        }
        (void)hs_path_match(a, b, NULL, 1, &n);
    }
    if (hs_web_path_ok(a) && (strstr(a, "/.") || strstr(a, "//")))
        abort(); /* never a dot segment or an empty one */
    (void)hs_etag_matches(a, b);
    (void)hs_etag_matches(b, a);
    char host[64];
    int port = -1;
    if (hs_listen_parse(a, host, sizeof host, &port) == 0 && (port < 0 || port > 65535))
        abort();
    (void)hs_content_type_for(a);
    char *esc = hs_html_escape(a);
    if (strpbrk(esc, "<>\"'"))
        abort();
    free(esc);
    json_decref(hs_json_text(a));
    char *red = hs_url_redact(a);
    if (!red)
        abort();
    free(red);
    free(a);
    framing((const char *)data, size);
    return 0;
}
