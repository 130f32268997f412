/* routes_storage.c: the storage listener, a stand-in for the presigned object store that Hover's
 * PDF links redirect to. Like S3 it authenticates by the URL's signature only and rejects any
 * request that also carries an Authorization header (400), which lets tests prove that a client
 * does not forward its Bearer token to another host. Errors are S3-style XML. */
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/str.h"
#include "routes.h"

static void sign(const struct sb_server *s, const char *path, int64_t expires, char out[2 * 32 + 1])
{
    char msg[512];
    int n = snprintf(msg, sizeof msg, "%s\n%lld", path, (long long)expires);
    if (n < 0 || (size_t)n >= sizeof msg)
        n = 0; /* over-long paths get a signature nobody can match */
    unsigned char mac[32];
    unsigned int maclen = 0;
    HMAC(EVP_sha256(), s->presign_key, (int)sizeof s->presign_key, (const unsigned char *)msg,
         (size_t)n, mac, &maclen);
    hs_hex(mac, 32, out);
}

char *sb_presign(struct sb_server *s, const char *path, int64_t expires)
{
    char sig[65];
    sign(s, path, expires, sig);
    return hs_aprintf("%s%s?expires=%lld&signature=%s", s->storage_base, path, (long long)expires,
                      sig);
}

static void s3_error(struct sb_resp *r, int status, const char *code, const char *msg)
{
    char *body = hs_aprintf("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                            "<Error><Code>%s</Code><Message>%s</Message></Error>\n",
                            code, msg);
    sb_resp_set(r, status, "application/xml", body, strlen(body));
}

int sb_presign_check(struct sb_req *q, struct sb_resp *r)
{
    const char *exp = sb_arg(q, "expires"), *sig = sb_arg(q, "signature");
    int64_t expires;
    if (!exp || !sig) {
        s3_error(r, 403, "AccessDenied",
                 "Query-string authentication requires the signature and expires parameters");
        return -1;
    }
    char want[65];
    if (hs_parse_i64(exp, &expires) != 0 || strlen(sig) != 64) {
        s3_error(r, 403, "SignatureDoesNotMatch", "The request signature does not match");
        return -1;
    }
    sign(q->srv, q->path, expires, want);
    if (CRYPTO_memcmp(want, sig, 64) != 0) {
        s3_error(r, 403, "SignatureDoesNotMatch", "The request signature does not match");
        return -1;
    }
    if (expires < sb_now_ms() / 1000) {
        s3_error(r, 403, "AccessDenied", "Request has expired");
        return -1;
    }
    return 0;
}

void sb_route_storage(struct sb_req *q, struct sb_resp *r)
{
    if (!strcmp(q->path, "/healthz")) {
        sb_resp_text(r, 200, "text/plain", "ok\n");
        return;
    }
    if (q->has_auth) {
        s3_error(r, 400, "InvalidArgument",
                 "Only one auth mechanism allowed; only the signature query parameters or the "
                 "Authorization header should be specified");
        return;
    }
    if (!hs_starts_with(q->path, "/storage/")) {
        s3_error(r, 404, "NoSuchKey", "The specified key does not exist.");
        return;
    }
    if (strcmp(q->method, "GET") != 0 && strcmp(q->method, "HEAD") != 0) {
        s3_error(r, 405, "MethodNotAllowed", "The specified method is not allowed");
        sb_resp_header(r, "Allow", "GET, HEAD");
        return;
    }
    if (sb_presign_check(q, r) != 0)
        return;
    long long id = 0;
    int rev = 0, used = 0;
    if (sscanf(q->path, "/storage/pdf/%lld-r%d.pdf%n", &id, &rev, &used) != 2 ||
        q->path[used] != '\0') {
        s3_error(r, 404, "NoSuchKey", "The specified key does not exist.");
        return;
    }
    struct sb_world *w = q->srv->world;
    unsigned char *pdf = NULL;
    size_t len = 0;
    pthread_mutex_lock(&w->lock);
    struct sb_job *j = NULL;
    const struct sb_model *m = sb_world_model(w, (int64_t)id, &j);
    if (m && j && m->revision == rev)
        pdf = sb_pdf_bytes(j, m, &len);
    pthread_mutex_unlock(&w->lock);
    if (!pdf) {
        s3_error(r, 404, "NoSuchKey", "The specified key does not exist.");
        return;
    }
    sb_resp_object(r, q, "application/pdf", (char *)pdf, len);
}
