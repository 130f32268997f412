/* fuzz_s3_answer.c: libFuzzer target of what the S3 client reads in the storage's answers
 * (src/store/s3.c): the text of the XML elements it uses (UploadId of a new multipart upload, the
 * Code and Message of an error). A value found lies within the input, and nothing reads past it
 * (the input is not NUL-terminated: ASan sees an overread). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/s3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const tags[] = {"UploadId", "Code", "Message", "Error", ""};
    char *copy = malloc(size ? size : 1); /* exactly size bytes: no terminator to lean on */
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    for (size_t i = 0; i < sizeof tags / sizeof *tags; i++) {
        char *v = hs_s3_xml_text(copy, size, tags[i]);
        if (v && strlen(v) + 2 * strlen(tags[i]) + 5 > size)
            abort(); /* longer than what it was found in */
        free(v);
    }
    free(copy);
    return 0;
}
