/* fuzz_webhook_signature.c: the webhook signature checks on hostile headers and bodies. The
 * input is split on NUL bytes into Authorization, Date, Content-MD5, Content-Type and the body. */
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
    const char *part[5] = {"", "", "", "", ""};
    size_t start = 0;
    int k = 0;
    for (size_t i = 0; i <= size && k < 4; i++) {
        if (i == size || copy[i] == '\0') {
            part[k++] = copy + start;
            start = i + 1;
        }
    }
    struct hs_webhook_delivery d = {
        .authorization = part[0],
        .date = part[1],
        .content_md5 = part[2],
        .content_type = part[3],
        .request_uri = "/webhooks/hover",
        .body = start <= size ? copy + start : "",
        .body_len = start <= size ? size - start : 0,
    };
    int64_t t;
    hs_http_date_parse(part[1], &t);
    hs_webhook_verify(&d, "c2VjcmV0", 1795773600, HS_WEBHOOK_MAX_SKEW_S, NULL);
    free(copy);
    return 0;
}
