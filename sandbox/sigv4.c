/* sigv4.c: AWS Signature Version 4 verification; see sigv4.h. */
#include "sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"
#include "core/str.h"

#define ALGORITHM     "AWS4-HMAC-SHA256"
#define TERMINAL      "aws4_request"
#define CANONICAL_MAX (512u * 1024u) /* a canonical request beyond this is refused */

/* ---- encoding ---- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

void sb_sigv4_uri_encode(const char *s, size_t n, bool keep_slash, struct hs_buf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c) || (keep_slash && c == '/')) {
            (void)hs_buf_append(out, &s[i], 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            (void)hs_buf_append(out, e, 3);
        }
    }
}

int sb_sigv4_decode(const char *s, size_t n, bool plus_space, struct hs_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int h = hexval((unsigned char)s[i + 1]), l = hexval((unsigned char)s[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            c = (char)(h * 16 + l);
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        }
        if (c == '\0')
            return -1;
        if (hs_buf_append(out, &c, 1) != 0)
            return -1;
    }
    return 0;
}

int sb_sigv4_canonical_uri(const char *raw_path, struct hs_buf *out)
{
    struct hs_buf dec;
    hs_buf_init(&dec, CANONICAL_MAX);
    /* An absolute path or nothing: a request target of another form has no canonical URI. */
    int rc = raw_path[0] && raw_path[0] != '/'
                 ? -1
                 : sb_sigv4_decode(raw_path, strlen(raw_path), false, &dec);
    if (rc == 0) {
        if (dec.len == 0)
            (void)hs_buf_append(out, "/", 1);
        else
            sb_sigv4_uri_encode(hs_buf_str(&dec), dec.len, true, out);
    }
    hs_buf_free(&dec);
    return rc;
}

/* ---- query strings ---- */

struct param {
    char *name, *value; /* encoded the canonical way */
};

static int param_cmp(const void *a, const void *b)
{
    const struct param *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

/* Decodes then re-encodes s[0..n) into a fresh string; NULL on a bad escape. */
static char *recode(const char *s, size_t n)
{
    struct hs_buf dec, enc;
    hs_buf_init(&dec, CANONICAL_MAX);
    hs_buf_init(&enc, 3 * CANONICAL_MAX);
    char *res = NULL;
    if (sb_sigv4_decode(s, n, true, &dec) == 0) {
        sb_sigv4_uri_encode(hs_buf_str(&dec), dec.len, false, &enc);
        res = hs_buf_take(&enc, NULL);
    }
    hs_buf_free(&dec);
    hs_buf_free(&enc);
    return res;
}

/* Calls fn for each non-empty name[=value] segment of a raw query; stops at a non-zero answer. */
static int each_param(const char *q,
                      int (*fn)(void *ctx, const char *name, size_t nn, const char *value,
                                size_t vn),
                      void *ctx)
{
    const char *p = q;
    while (*p) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 0) {
            const char *eq = memchr(p, '=', len);
            size_t nn = eq ? (size_t)(eq - p) : len;
            const char *v = eq ? eq + 1 : p + len;
            size_t vn = eq ? len - nn - 1 : 0;
            int rc = fn(ctx, p, nn, v, vn);
            if (rc)
                return rc;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

struct collect {
    struct param *v;
    size_t n;
    bool presigned;
};

static int collect_param(void *ctx, const char *name, size_t nn, const char *value, size_t vn)
{
    struct collect *c = ctx;
    if (c->n >= SB_SIGV4_MAX_PARAMS)
        return -1;
    char *n = recode(name, nn);
    char *v = n ? recode(value, vn) : NULL;
    if (!n || !v) {
        free(n);
        free(v);
        return -1;
    }
    if (c->presigned && !strcmp(n, "X-Amz-Signature")) {
        free(n);
        free(v);
        return 0;
    }
    c->v[c->n].name = n;
    c->v[c->n].value = v;
    c->n++;
    return 0;
}

int sb_sigv4_canonical_query(const char *raw_query, bool presigned, struct hs_buf *out)
{
    struct collect c = {hs_calloc(SB_SIGV4_MAX_PARAMS, sizeof *c.v), 0, presigned};
    int rc = each_param(raw_query ? raw_query : "", collect_param, &c);
    if (rc == 0) {
        qsort(c.v, c.n, sizeof *c.v, param_cmp);
        for (size_t i = 0; i < c.n; i++) {
            if (i)
                (void)hs_buf_append(out, "&", 1);
            (void)hs_buf_appends(out, c.v[i].name);
            (void)hs_buf_append(out, "=", 1);
            (void)hs_buf_appends(out, c.v[i].value);
        }
    }
    for (size_t i = 0; i < c.n; i++) {
        free(c.v[i].name);
        free(c.v[i].value);
    }
    free(c.v);
    return rc ? -1 : 0;
}

struct find {
    const char *name;
    char *value;
};

static int find_param(void *ctx, const char *name, size_t nn, const char *value, size_t vn)
{
    struct find *f = ctx;
    struct hs_buf n;
    hs_buf_init(&n, CANONICAL_MAX);
    bool match = sb_sigv4_decode(name, nn, true, &n) == 0 && !strcmp(hs_buf_str(&n), f->name);
    hs_buf_free(&n);
    if (!match)
        return 0;
    struct hs_buf v;
    hs_buf_init(&v, CANONICAL_MAX);
    if (sb_sigv4_decode(value, vn, true, &v) == 0)
        f->value = hs_buf_take(&v, NULL);
    hs_buf_free(&v);
    return 1; /* the first one decides, even when it does not decode */
}

char *sb_sigv4_query_get(const char *raw_query, const char *name)
{
    struct find f = {name, NULL};
    (void)each_param(raw_query ? raw_query : "", find_param, &f);
    return f.value;
}

/* ---- headers ---- */

/* Appends v trimmed, with each inner run of spaces and tabs made one space (AWS's "Trimall"). */
static void append_trimall(struct hs_buf *out, const char *v)
{
    bool pending = false, any = false;
    for (const char *p = v; *p; p++) {
        if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
            pending = any;
            continue;
        }
        if (pending)
            (void)hs_buf_append(out, " ", 1);
        pending = false;
        any = true;
        (void)hs_buf_append(out, p, 1);
    }
}

static const char *header_get(const struct sb_sigv4_request *rq, const char *name)
{
    for (size_t i = 0; i < rq->n_headers; i++)
        if (!strcasecmp(rq->headers[i].name, name))
            return rq->headers[i].value;
    return NULL;
}

static bool token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c);
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Splits "a;b;c" into sorted, unique lowercase names (pointers into *copy). -1 when empty, a
 * name is empty or not a lowercase token, or there are too many. */
static int split_signed(const char *list, char **copy, char **names, size_t *n)
{
    *copy = hs_strdup(list);
    *n = 0;
    char *p = *copy;
    for (;;) {
        char *end = strchr(p, ';');
        if (end)
            *end = '\0';
        if (!*p || *n == SB_SIGV4_MAX_SIGNED)
            return -1;
        for (char *c = p; *c; c++)
            if (!token_char(*c))
                return -1;
        names[(*n)++] = p;
        if (!end)
            break;
        p = end + 1;
    }
    qsort(names, *n, sizeof *names, str_cmp);
    size_t k = 0;
    for (size_t i = 0; i < *n; i++)
        if (k == 0 || strcmp(names[k - 1], names[i]) != 0)
            names[k++] = names[i];
    *n = k;
    return 0;
}

int sb_sigv4_canonical_request(const struct sb_sigv4_request *rq, const char *signed_headers,
                               const char *payload_hash, bool presigned, struct hs_buf *out)
{
    char *copy = NULL, *names[SB_SIGV4_MAX_SIGNED];
    size_t n = 0;
    int rc = -1;
    if (split_signed(signed_headers, &copy, names, &n) != 0)
        goto out;
    (void)hs_buf_appends(out, rq->method);
    (void)hs_buf_append(out, "\n", 1);
    if (sb_sigv4_canonical_uri(rq->raw_path, out) != 0)
        goto out;
    (void)hs_buf_append(out, "\n", 1);
    if (sb_sigv4_canonical_query(rq->raw_query, presigned, out) != 0)
        goto out;
    (void)hs_buf_append(out, "\n", 1);
    for (size_t i = 0; i < n; i++) {
        (void)hs_buf_appends(out, names[i]);
        (void)hs_buf_append(out, ":", 1);
        bool first = true;
        for (size_t h = 0; h < rq->n_headers; h++) {
            if (strcasecmp(rq->headers[h].name, names[i]) != 0)
                continue;
            if (!first)
                (void)hs_buf_append(out, ",", 1);
            first = false;
            append_trimall(out, rq->headers[h].value);
        }
        (void)hs_buf_append(out, "\n", 1);
    }
    (void)hs_buf_append(out, "\n", 1);
    for (size_t i = 0; i < n; i++) {
        if (i)
            (void)hs_buf_append(out, ";", 1);
        (void)hs_buf_appends(out, names[i]);
    }
    (void)hs_buf_append(out, "\n", 1);
    (void)hs_buf_appends(out, payload_hash);
    /* Appends beyond the cap fail silently above: a request that big has no canonical form. */
    rc = out->len + 1 >= out->max ? -1 : 0;
out:
    free(copy);
    return rc;
}

/* ---- signing ---- */

void sb_sigv4_string_to_sign(const char *amz_date, const char *scope, const char *canonical,
                             size_t canonical_len, struct hs_buf *out)
{
    unsigned char md[32];
    char hex[65];
    unsigned int mdlen = 0;
    EVP_Digest(canonical, canonical_len, md, &mdlen, EVP_sha256(), NULL);
    hs_hex(md, 32, hex);
    (void)hs_buf_appendf(out, "%s\n%s\n%s\n%s", ALGORITHM, amz_date, scope, hex);
}

static void hmac(const void *key, size_t keylen, const char *msg, size_t msglen,
                 unsigned char out[32])
{
    unsigned int n = 0;
    HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, msglen, out, &n);
}

void sb_sigv4_signature(const char *secret, const char *date8, const char *region,
                        const char *service, const char *sts, size_t sts_len, char out[65])
{
    unsigned char k[32], sig[32];
    char *first = hs_aprintf("AWS4%s", secret);
    hmac(first, strlen(first), date8, strlen(date8), k);
    OPENSSL_cleanse(first, strlen(first));
    free(first);
    hmac(k, 32, region, strlen(region), k);
    hmac(k, 32, service, strlen(service), k);
    hmac(k, 32, TERMINAL, strlen(TERMINAL), k);
    hmac(k, 32, sts, sts_len, sig);
    OPENSSL_cleanse(k, sizeof k);
    hs_hex(sig, 32, out);
}

/* ---- dates ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int sb_sigv4_parse_amz_date(const char *s, int64_t *out)
{
    int y, mo, d, h, mi, se;
    if (!s || strlen(s) != 16 || s[8] != 'T' || s[15] != 'Z' || digits(s, 4, &y) ||
        digits(s + 4, 2, &mo) || digits(s + 6, 2, &d) || digits(s + 9, 2, &h) ||
        digits(s + 11, 2, &mi) || digits(s + 13, 2, &se))
        return -1;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || se > 60)
        return -1;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap)
        return -1;
    *out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
    return 0;
}

/* ---- verification ---- */

/* The authentication parts of a request, whichever form carried them (malloc'd). */
struct parsed {
    char *algorithm, *credential, *signed_headers, *signature, *amz_date, *expires, *token;
};

static void parsed_free(struct parsed *p)
{
    free(p->algorithm);
    free(p->credential);
    free(p->signed_headers);
    free(p->signature);
    free(p->amz_date);
    free(p->expires);
    free(p->token);
}

__attribute__((format(printf, 4, 5))) static int fail(struct sb_sigv4_result *r, int status,
                                                      const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
    r->status = status;
    r->code = code;
    return -1;
}

/* A credential or scope error, worded as AWS words it for the form used. */
#define SCOPE_FAIL(r, fmt, ...)                                                                    \
    ((r)->presigned ? fail((r), 400, "AuthorizationQueryParametersError",                          \
                           "Error parsing the X-Amz-Credential parameter; " fmt, __VA_ARGS__)      \
                    : fail((r), 400, "AuthorizationHeaderMalformed",                               \
                           "The authorization header is malformed; " fmt, __VA_ARGS__))

static char *trimmed_dup(const char *s, size_t n)
{
    while (n && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return hs_strndup(s, n);
}

/* "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=..." */
static int parse_authorization(const char *h, struct parsed *p, struct sb_sigv4_result *r)
{
    size_t alg = strlen(ALGORITHM);
    while (*h == ' ' || *h == '\t')
        h++;
    if (strncmp(h, ALGORITHM, alg) != 0 || (h[alg] != ' ' && h[alg] != '\t'))
        return fail(r, 400, "InvalidRequest",
                    "The authorization mechanism you have provided is not supported. Please use "
                    "AWS4-HMAC-SHA256.");
    const char *s = h + alg;
    while (*s) {
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        char *part = trimmed_dup(s, len);
        char *eq = strchr(part, '=');
        char **slot = NULL;
        if (eq) {
            *eq = '\0';
            slot = !strcmp(part, "Credential")      ? &p->credential
                   : !strcmp(part, "SignedHeaders") ? &p->signed_headers
                   : !strcmp(part, "Signature")     ? &p->signature
                                                    : NULL;
        }
        if (!slot || *slot) {
            int rc = fail(r, 400, "AuthorizationHeaderMalformed",
                          "The authorization header is malformed; '%.64s' is not one of "
                          "Credential=, SignedHeaders=, Signature= (each once).",
                          part);
            free(part);
            return rc;
        }
        *slot = hs_strdup(eq + 1);
        free(part);
        if (!end)
            break;
        s = end + 1;
    }
    if (!p->credential || !p->signed_headers || !p->signature)
        return fail(r, 400, "AuthorizationHeaderMalformed",
                    "The authorization header is malformed; it needs Credential, SignedHeaders "
                    "and Signature.");
    return 0;
}

static int parse_presigned(const char *q, struct parsed *p, struct sb_sigv4_result *r)
{
    p->algorithm = sb_sigv4_query_get(q, "X-Amz-Algorithm");
    p->credential = sb_sigv4_query_get(q, "X-Amz-Credential");
    p->amz_date = sb_sigv4_query_get(q, "X-Amz-Date");
    p->expires = sb_sigv4_query_get(q, "X-Amz-Expires");
    p->signed_headers = sb_sigv4_query_get(q, "X-Amz-SignedHeaders");
    p->signature = sb_sigv4_query_get(q, "X-Amz-Signature");
    p->token = sb_sigv4_query_get(q, "X-Amz-Security-Token");
    if (!p->algorithm || !p->credential || !p->amz_date || !p->expires || !p->signed_headers ||
        !p->signature)
        return fail(r, 400, "AuthorizationQueryParametersError",
                    "Query-string authentication version 4 requires the X-Amz-Algorithm, "
                    "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and "
                    "X-Amz-Expires parameters.");
    if (strcmp(p->algorithm, ALGORITHM) != 0)
        return fail(r, 400, "AuthorizationQueryParametersError",
                    "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"");
    int64_t e;
    if (hs_parse_i64(p->expires, &e) != 0)
        return fail(r, 400, "AuthorizationQueryParametersError",
                    "X-Amz-Expires should be a number");
    if (e < 1)
        return fail(r, 400, "AuthorizationQueryParametersError",
                    "X-Amz-Expires must be non-negative and not zero");
    if (e > SB_SIGV4_MAX_EXPIRES_S)
        return fail(r, 400, "AuthorizationQueryParametersError",
                    "X-Amz-Expires must be less than a week (in seconds) that is 604800");
    r->expires_s = e;
    return 0;
}

/* Credential = AKID/DATE/REGION/SERVICE/aws4_request, checked against the configuration and
 * X-Amz-Date. Fills scope ("DATE/REGION/SERVICE/aws4_request"). */
static int check_credential(const struct parsed *p, const struct sb_sigv4_config *cfg,
                            struct sb_sigv4_result *r, char *scope, size_t scopen)
{
    char *copy = hs_strdup(p->credential), *f[5] = {0};
    size_t n = 0;
    for (char *s = copy; n < 5; n++) {
        f[n] = s;
        char *slash = strchr(s, '/');
        if (!slash) {
            n++;
            break;
        }
        *slash = '\0';
        s = slash + 1;
    }
    int rc = -1;
    bool shape = n == 5 && !strchr(f[4], '/');
    for (size_t i = 0; shape && i < 5; i++)
        shape = *f[i] != '\0';
    if (f[0])
        (void)hs_strlcpy(r->access_key, f[0], sizeof r->access_key);
    if (!shape) {
        SCOPE_FAIL(r, "the Credential is mal-formed; expecting \"%s\".",
                   "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request");
    } else if (strcmp(f[0], cfg->access_key) != 0) {
        fail(r, 403, "InvalidAccessKeyId",
             "The AWS Access Key Id you provided does not exist in our records.");
    } else if (strncmp(f[1], r->amz_date, 8) != 0 || strlen(f[1]) != 8) {
        SCOPE_FAIL(r, "%s", "Invalid credential date. Date is not the same as X-Amz-Date.");
    } else if (strcmp(f[2], cfg->region) != 0) {
        SCOPE_FAIL(r, "the region '%.64s' is wrong; expecting '%s'", f[2], cfg->region);
    } else if (strcmp(f[3], cfg->service) != 0) {
        SCOPE_FAIL(r, "incorrect service '%.64s'. This endpoint belongs to '%s'.", f[3],
                   cfg->service);
    } else if (strcmp(f[4], TERMINAL) != 0) {
        SCOPE_FAIL(r, "incorrect terminal '%.64s'. This endpoint uses '%s'.", f[4], TERMINAL);
    } else {
        (void)snprintf(scope, scopen, "%s/%s/%s/%s", f[1], f[2], f[3], f[4]);
        rc = 0;
    }
    free(copy);
    return rc;
}

static int check_time(int64_t now, struct sb_sigv4_result *r)
{
    int64_t t = r->request_time;
    if (!r->presigned) {
        if (t > now + SB_SIGV4_MAX_SKEW_S || t < now - SB_SIGV4_MAX_SKEW_S)
            return fail(r, 403, "RequestTimeTooSkewed",
                        "The difference between the request time and the current time is too "
                        "large.");
        return 0;
    }
    if (t > now + SB_SIGV4_MAX_SKEW_S)
        return fail(r, 403, "AccessDenied", "Request is not yet valid");
    if (now > t + r->expires_s)
        return fail(r, 403, "AccessDenied", "Request has expired");
    return 0;
}

static bool same_secret(const char *a, const char *b)
{
    size_t n = strlen(a);
    return n == strlen(b) && CRYPTO_memcmp(a, b, n) == 0;
}

static bool listed(char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcasecmp(names[i], name))
            return true;
    return false;
}

/* host signed; with S3's rule every x-amz-* header present signed too. */
static int check_signed_headers(const struct sb_sigv4_request *rq, const struct parsed *p,
                                const struct sb_sigv4_config *cfg, struct sb_sigv4_result *r)
{
    char *copy = NULL, *names[SB_SIGV4_MAX_SIGNED];
    size_t n = 0;
    int rc = 0;
    if (split_signed(p->signed_headers, &copy, names, &n) != 0) {
        rc = r->presigned ? fail(r, 400, "AuthorizationQueryParametersError",
                                 "X-Amz-SignedHeaders is malformed: lowercase header names "
                                 "separated by ';'")
                          : fail(r, 400, "AuthorizationHeaderMalformed",
                                 "The authorization header is malformed; SignedHeaders is "
                                 "malformed: lowercase header names separated by ';'");
    } else if (!listed(names, n, "host")) {
        rc = fail(r, 403, "AccessDenied", "The host header must be signed");
    } else if (cfg->amz_headers_signed) {
        for (size_t i = 0; i < rq->n_headers && rc == 0; i++) {
            const char *h = rq->headers[i].name;
            if (!strncasecmp(h, "x-amz-", 6) && !listed(names, n, h)) {
                (void)hs_strlcpy(r->unsigned_header, h, sizeof r->unsigned_header);
                rc = fail(r, 403, "AccessDenied",
                          "There were headers present in the request which were not signed");
            }
        }
    }
    free(copy);
    return rc;
}

static int check_token(const struct parsed *p, const struct sb_sigv4_config *cfg,
                       struct sb_sigv4_result *r)
{
    if (!cfg->session_token && !p->token)
        return 0;
    if (cfg->session_token && p->token && same_secret(cfg->session_token, p->token))
        return 0;
    return fail(r, 403, "InvalidToken", "The provided token is malformed or otherwise invalid.");
}

/* Builds the canonical request and string to sign into r and compares the signatures. */
static int check_signature(const struct sb_sigv4_request *rq, const struct parsed *p,
                           const struct sb_sigv4_config *cfg, const char *scope,
                           struct sb_sigv4_result *r)
{
    struct hs_buf creq, sts;
    hs_buf_init(&creq, CANONICAL_MAX);
    hs_buf_init(&sts, 1024);
    int rc = -1;
    if (sb_sigv4_canonical_request(rq, p->signed_headers, r->payload_hash, r->presigned, &creq) !=
        0) {
        rc = fail(r, 400, "InvalidURI", "Couldn't parse the specified URI.");
        goto out;
    }
    sb_sigv4_string_to_sign(r->amz_date, scope, creq.data, creq.len, &sts);
    char want[65];
    char date8[9];
    memcpy(date8, r->amz_date, 8);
    date8[8] = '\0';
    sb_sigv4_signature(cfg->secret_key, date8, cfg->region, cfg->service, sts.data, sts.len, want);
    r->canonical_request = hs_buf_take(&creq, NULL);
    r->string_to_sign = hs_buf_take(&sts, NULL);
    if (strlen(p->signature) == 64 && CRYPTO_memcmp(want, p->signature, 64) == 0)
        rc = 0;
    else
        rc = fail(r, 403, "SignatureDoesNotMatch",
                  "The request signature we calculated does not match the signature you "
                  "provided. Check your key and signing method.");
out:
    hs_buf_free(&creq);
    hs_buf_free(&sts);
    return rc;
}

/* Finds the form, parses it and fills the fields every later check reads. */
static int parse_request(const struct sb_sigv4_request *rq, struct parsed *p,
                         struct sb_sigv4_result *r)
{
    const char *auth = header_get(rq, "authorization");
    char *alg = sb_sigv4_query_get(rq->raw_query, "X-Amz-Algorithm");
    char *qsig = sb_sigv4_query_get(rq->raw_query, "X-Amz-Signature");
    char *qcred = sb_sigv4_query_get(rq->raw_query, "X-Amz-Credential");
    r->presigned = alg || qsig || qcred;
    free(alg);
    free(qsig);
    free(qcred);
    if (auth && r->presigned)
        return fail(r, 400, "InvalidArgument",
                    "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
                    "Signature query string parameter or the Authorization header should be "
                    "specified");
    if (!auth && !r->presigned) {
        r->anonymous = true;
        return fail(r, 403, "AccessDenied", "Access Denied");
    }
    if (r->presigned ? parse_presigned(rq->raw_query, p, r) : parse_authorization(auth, p, r))
        return -1;
    if (!r->presigned) {
        const char *d = header_get(rq, "x-amz-date");
        const char *t = header_get(rq, "x-amz-security-token");
        p->amz_date = d ? trimmed_dup(d, strlen(d)) : NULL;
        p->token = t ? trimmed_dup(t, strlen(t)) : NULL;
    }
    (void)hs_strlcpy(r->signature, p->signature, sizeof r->signature);
    if (!p->amz_date || sb_sigv4_parse_amz_date(p->amz_date, &r->request_time) != 0) {
        r->request_time = 0;
        return r->presigned ? fail(r, 400, "AuthorizationQueryParametersError",
                                   "X-Amz-Date must be in the ISO8601 Long Format "
                                   "\"yyyyMMdd'T'HHmmss'Z'\"")
                            : fail(r, 403, "AccessDenied",
                                   "AWS authentication requires a valid Date or x-amz-date "
                                   "header");
    }
    (void)hs_strlcpy(r->amz_date, p->amz_date, sizeof r->amz_date);
    return 0;
}

/* The payload hash line: the caller's, else S3's rule. */
static int payload_hash(const struct sb_sigv4_request *rq, struct sb_sigv4_result *r)
{
    r->payload_hash = rq->payload_hash;
    if (!r->payload_hash)
        r->payload_hash = header_get(rq, "x-amz-content-sha256");
    if (!r->payload_hash && r->presigned)
        r->payload_hash = SB_SIGV4_UNSIGNED;
    if (!r->payload_hash)
        return fail(r, 400, "InvalidRequest",
                    "Missing required header for this request: x-amz-content-sha256");
    return 0;
}

int sb_sigv4_verify(const struct sb_sigv4_request *rq, const struct sb_sigv4_config *cfg,
                    int64_t now, struct sb_sigv4_result *out)
{
    struct parsed p = {0};
    char scope[256];
    memset(out, 0, sizeof *out);
    int rc = -1;
    if (parse_request(rq, &p, out) == 0 &&
        check_credential(&p, cfg, out, scope, sizeof scope) == 0 && check_time(now, out) == 0 &&
        check_token(&p, cfg, out) == 0 && check_signed_headers(rq, &p, cfg, out) == 0 &&
        payload_hash(rq, out) == 0 && check_signature(rq, &p, cfg, scope, out) == 0)
        rc = 0;
    parsed_free(&p);
    return rc;
}

void sb_sigv4_result_clear(struct sb_sigv4_result *r)
{
    free(r->canonical_request);
    free(r->string_to_sign);
    r->canonical_request = r->string_to_sign = NULL;
}
