/* fuzz_oauth_token.c: libFuzzer target of the OAuth token endpoint's answers (src/hover/oauth.c):
 * the success body (hs_oauth_token_from_json) and the error body's text (hs_api_error_text, what
 * a refused refresh shows). A pair is accepted only with an access token; expiry arithmetic must
 * not overflow (UBSan), and every string is walked. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hover/api_error.h"
#include "hover/oauth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW_S 1795773821LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    struct hs_token t;
    struct hs_error err;
    memset(&t, 0, sizeof t);
    if (hs_oauth_token_from_json(body, size, NOW_S, &t, &err) == HS_OK) {
        if (!t.access_token || !t.access_token[0])
            abort(); /* a pair without an access token is refused */
        volatile size_t n = strlen(t.access_token) +
                            (t.refresh_token ? strlen(t.refresh_token) : 0) +
                            (t.owner_type ? strlen(t.owner_type) : 0);
        (void)n;
        hs_token_clear(&t);
    } else if (!err.msg[0]) {
        abort();
    }
    char text[200];
    memset(text, 'x', sizeof text);
    (void)hs_api_error_text(body, size, text, sizeof text);
    if (!memchr(text, '\0', sizeof text))
        abort(); /* always terminated within its buffer */
    return 0;
}
