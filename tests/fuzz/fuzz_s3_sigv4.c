/* fuzz_s3_sigv4.c: the S3 listener's Signature Version 4 verifier (sandbox/sigv4.c) on hostile
 * requests. The input is lines: the method, the raw path, the raw query, then one header per
 * line ("Name: value") up to an empty line; what follows is the body. A method ending in '!'
 * (the '!' dropped) is checked as AWS's test suite's service at its time (credential AKIDEXAMPLE,
 * the payload hash the body's SHA-256); otherwise as S3 with the S3 documentation's example
 * credentials at 2013-05-24T00:01:00Z (the payload hash S3's rule). So corpus entries built from
 * the published examples reach the accepting path. */
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/mem.h"
#include "core/str.h"
#include "sigv4.h"

#define MAX_H 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *next_line(char **p)
{
    char *s = *p;
    if (!s)
        return NULL;
    char *nl = strchr(s, '\n');
    if (nl) {
        *nl = '\0';
        if (nl > s && nl[-1] == '\r')
            nl[-1] = '\0';
        *p = nl + 1;
    } else {
        *p = NULL;
    }
    return s;
}

/* Every canonical form is made of unreserved characters, '%XX' (uppercase) and separators. */
static void check_encoded(const char *s, const char *extra)
{
    for (const char *p = s; *p; p++) {
        if (*p == '%') {
            if (!strchr("0123456789ABCDEF", p[1]) || !p[1] || !strchr("0123456789ABCDEF", p[2]) ||
                !p[2])
                abort();
            p += 2;
        } else if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~",
                           *p) &&
                   !strchr(extra, *p)) {
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = hs_strndup((const char *)data, size); /* stops at a NUL, like HTTP values */
    char *p = copy;
    const char *method = next_line(&p), *path = next_line(&p), *query = next_line(&p);
    struct sb_sigv4_header h[MAX_H];
    size_t n = 0;
    char *line;
    while (n < MAX_H && (line = next_line(&p)) != NULL && *line) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t') /* as libmicrohttpd hands values over */
            v++;
        h[n++] = (struct sb_sigv4_header){line, v};
    }
    const char *body = p ? p : "";
    bool suite = method && *method && method[strlen(method) - 1] == '!';
    if (suite)
        ((char *)method)[strlen(method) - 1] = '\0';
    char hash[65];
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(body, strlen(body), md, &mdlen, EVP_sha256(), NULL);
    hs_hex(md, 32, hash);
    struct sb_sigv4_request rq = {method ? method : "", path ? path : "", query ? query : "", h, n,
                                  suite ? hash : NULL};
    struct sb_sigv4_config s3 = {"AKIAIOSFODNN7EXAMPLE",
                                 "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                                 NULL,
                                 "us-east-1",
                                 "s3",
                                 true};
    struct sb_sigv4_config svc = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                  NULL,          "us-east-1",
                                  "service",     false};
    struct sb_sigv4_result r;
    int rc = sb_sigv4_verify(&rq, suite ? &svc : &s3, suite ? 1440938160 : 1369353660, &r);
    if ((rc == 0) != (r.code == NULL) || (rc != 0 && (r.status < 400 || !r.message[0])))
        abort();
    if (rc == 0 && (!r.canonical_request || !r.string_to_sign || !r.payload_hash))
        abort();
    sb_sigv4_result_clear(&r);

    struct hs_buf b;
    hs_buf_init(&b, 1 << 20);
    if (sb_sigv4_canonical_uri(rq.raw_path, &b) == 0) {
        if (b.data && b.data[0] != '/')
            abort();
        check_encoded(hs_buf_str(&b), "/");
    }
    hs_buf_reset(&b);
    if (sb_sigv4_canonical_query(rq.raw_query, n % 2 == 0, &b) == 0)
        check_encoded(hs_buf_str(&b), "=&");
    hs_buf_free(&b);
    int64_t t;
    (void)sb_sigv4_parse_amz_date(rq.raw_path, &t);
    free(sb_sigv4_query_get(rq.raw_query, "X-Amz-Credential"));
    free(copy);
    return 0;
}
