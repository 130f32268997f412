/* fuzz_config_file.c: libFuzzer target of the configuration file's parser
 * (src/cli/config_file.c). Checked here: an accepted file sets only non-secret options, each to
 * a non-empty value without surrounding blanks or control bytes that passes the option's own
 * checks, with its line; a refused file says where and changes nothing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/config.h"
#include "hoversync.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_accepted(const struct hs_config *c, size_t size)
{
    for (int k = 0; k < CFG_COUNT; k++) {
        if (c->from[k] != HS_CFG_FILE)
            continue;
        const char *v = c->value[k];
        size_t len = strlen(v);
        char msg[HS_CFG_LABEL_MAX];
        if (hs_cfg_defs[k].type == HS_CFG_SECRET || len == 0 || len > size || c->line[k] < 1)
            abort();
        if (v[0] == ' ' || v[0] == '\t' || v[len - 1] == ' ' || v[len - 1] == '\t')
            abort();
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)v[i] < 0x20 && v[i] != '\t')
                abort();
        if (hs_config_check_value(k, v, msg, sizeof msg) != 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hs_config c;
    hs_config_init(&c);
    struct hs_error err = {0};
    int rc = hs_config_parse_file(&c, "fuzz.conf", (const char *)data, size, &err);
    if (rc == HS_OK) {
        check_accepted(&c, size);
    } else {
        if (strncmp(err.msg, "fuzz.conf:", 10) != 0 || c.file_text)
            abort();
        for (int k = 0; k < CFG_COUNT; k++)
            if (c.from[k] == HS_CFG_FILE)
                abort(); /* a refused file applied something */
    }
    hs_config_free(&c);
    return 0;
}
