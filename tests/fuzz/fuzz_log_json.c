/* fuzz_log_json.c: libFuzzer target of --log-format json (src/core/log.c), which splits a log
 * line's text into its key=value fields; the values may hold what a client sent. Checked here:
 * whatever the text (quotes, blanks, control bytes, bytes that are not UTF-8, lines cut at the
 * length limit), the output is one line holding one JSON object whose first members are time,
 * level and msg, and whose every member is a string. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';
    char *out = NULL;
    size_t out_len = 0;
    FILE *f = open_memstream(&out, &out_len);
    if (!f)
        abort();
    hs_log_set_level(HS_LOG_DEBUG);
    hs_log_set_format(HS_LOG_JSON);
    hs_log_set_file(f);
    hs_log_write(HS_LOG_WARN, "%s", text);
    hs_log_set_file(NULL);
    fclose(f);
    free(text);
    if (out_len == 0 || out[out_len - 1] != '\n' || memchr(out, '\n', out_len - 1))
        abort(); /* exactly one line */
    json_error_t jerr;
    json_t *o = json_loadb(out, out_len - 1, 0, &jerr);
    if (!json_is_object(o))
        abort();
    const char *first[] = {"time", "level", "msg"};
    size_t i = 0;
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        if (!json_is_string(v) || (i < 3 && strcmp(key, first[i]) != 0))
            abort();
        i++;
    }
    if (i < 3)
        abort();
    json_decref(o);
    free(out);
    return 0;
}
