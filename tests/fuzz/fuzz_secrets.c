/* fuzz_secrets.c: libFuzzer target of the parsers of secrets at rest (src/store/secrets.c): the
 * configured key (hex or base64), and a stored value (clear, or sealed: prefix, key id, base64,
 * nonce, tag) opened with no key, with the right key and with another. The input is split at its
 * first newline: the value's place (associated data), then the stored value. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "store/secrets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *a = hs_strndup((const char *)data, size);
    struct hs_secret_key k, other;
    if (hs_secret_key_parse(a, &k, NULL) == HS_OK && strlen(k.id) != 8)
        abort();
    char *nl = strchr(a, '\n');
    const char *stored = "";
    if (nl) {
        *nl = '\0';
        stored = nl + 1;
    }
    if (hs_secret_key_parse("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", &k,
                            NULL) != HS_OK ||
        hs_secret_key_parse("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=", &other, NULL) != HS_OK)
        abort();
    const struct hs_secret_key *keys[] = {NULL, &k, &other};
    for (size_t i = 0; i < 3; i++) {
        char *out = NULL;
        int rc = hs_secret_open(keys[i], stored, a, &out, NULL);
        if (rc == HS_OK && !hs_secret_is_sealed(stored) && strcmp(out, stored) != 0)
            abort(); /* clear values pass as they are */
        if (rc != HS_OK && out)
            abort();
        free(out);
    }
    /* what is sealed opens, in its place only */
    char *sealed = NULL, *back = NULL;
    if (strlen(stored) <= 4096 &&
        (hs_secret_seal(&k, stored, a, &sealed, NULL) != HS_OK ||
         hs_secret_open(&k, sealed, a, &back, NULL) != HS_OK || strcmp(back, stored) != 0))
        abort();
    free(sealed);
    free(back);
    free(a);
    return 0;
}
