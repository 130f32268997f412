/* fuzz_webhook_signature.c: the webhook signature checks on hostile headers and bodies. The
 * input is split on NUL bytes into Authorization, Date, Content-MD5,
 * X-Authorization-Content-SHA256, Content-Type and the method, then the body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "webhook/signature.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    const char *part[6] = {"", "", "", "", "", ""};
    size_t start = 0;
    int k = 0;
    for (size_t i = 0; i <= size && k < 6; i++) {
        if (i == size || copy[i] == '\0') {
            part[k++] = copy + start;
            start = i + 1;
        }
    }
    struct hs_webhook_delivery d = {
        .authorization = part[0],
        .date = part[1],
        .content_md5 = part[2],
        .content_sha256 = part[3],
        .content_type = part[4],
        .method = part[5],
        .request_uri = "/webhooks/hover",
        .body = start <= size ? copy + start : "",
        .body_len = start <= size ? size - start : 0,
    };
    int64_t t;
    hs_http_date_parse(part[1], &t);
    struct hs_apiauth a;
    if (hs_webhook_auth_parse(part[0], &a, NULL) == HS_OK &&
        (strchr(a.access_id, ':') || strlen(a.signature) > HS_APIAUTH_SIG_MAX))
        abort(); /* an access id never holds ':'; the signature fits */
    char uri[64];
    (void)hs_webhook_uri_of_url(part[4], uri, sizeof uri);
    hs_webhook_verify(&d, "c2VjcmV0", 1795773600, HS_WEBHOOK_MAX_SKEW_S, NULL);
    free(copy);
    return 0;
}
