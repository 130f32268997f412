/* fuzz_s3_request.c: the S3 listener's other parsers of outside bytes (sandbox/s3parse.c): the
 * CompleteMultipartUpload XML body (the whole input), and the Range header, bucket name,
 * x-amz-content-sha256 and Content-MD5 values (the input's first line). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/mem.h"
#include "s3parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sb_s3_part_ref *parts = NULL;
    size_t n = 0;
    char err[160];
    if (sb_s3_parse_complete((const char *)data, size, &parts, &n, err, sizeof err) == 0) {
        if (n == 0 || n > SB_S3_MAX_PARTS)
            abort();
        for (size_t i = 0; i < n; i++)
            if (parts[i].number < 1 || parts[i].number > SB_S3_MAX_PARTS ||
                strlen(parts[i].etag) >= SB_S3_ETAG_MAX)
                abort();
        free(parts);
    } else if (parts || !err[0]) {
        abort();
    }
    char *line = hs_strndup((const char *)data, size);
    line[strcspn(line, "\n")] = '\0';
    static const uint64_t sizes[] = {0, 1, 10, 1000, UINT64_MAX};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        uint64_t first = 7, last = 7;
        int rc = sb_s3_parse_range(line, sizes[i], &first, &last);
        if (rc == 1 && (first > last || last >= sizes[i]))
            abort();
    }
    (void)sb_s3_bucket_name_ok(line);
    (void)sb_s3_content_sha_kind(line);
    (void)sb_s3_op_name_ok(line);
    unsigned char md5[16];
    (void)sb_s3_content_md5(line, md5);
    struct hs_buf b;
    hs_buf_init(&b, 1 << 20);
    sb_s3_xml_escape(&b, line);
    if (strpbrk(hs_buf_str(&b), "<>\"'"))
        abort();
    hs_buf_free(&b);
    free(line);
    return 0;
}
