/* fuzz_webhook_receiver.c: the whole webhook receiver (src/webhook/receiver.h) on hostile
 * headers and bodies, with an in-memory SQLite store and a fixed clock.
 *
 * Input: one flags byte, then Authorization, Date, Content-MD5, X-Authorization-Content-SHA256
 * and Content-Type separated by NUL bytes, then the body (the rest, NULs included). Flags: bit 0
 * replaces the signed headers by a valid signature of the body (so that the fuzzer reaches the
 * JSON, replay and event paths) in the form bits 3-4 choose (1.x, 2.4, 2.5, 2.5 with an access
 * id that is no webhook id), bit 1 stores the webhook (else the unknown-webhook path runs), bit 2
 * says the HTTP layer cut the body at its cap. The verifier then handles what was queued. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "store/store.h"
#include "store/tokens.h"
#include "store/webhooks.h"
#include "webhook/receiver.h"
#include "webhook/signature.h"
#include "webhook/verifier.h"

#define SECRET     "c2VjcmV0LW9mLXRoZS13ZWJob29r"
#define WEBHOOK_ID 230293
#define NOW_S      1795773894LL
#define REOPEN     256 /* a fresh store now and then: accepted events pile up */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct hs_store *store;
static struct hs_verifier *verifier;
static struct hs_fake_clock fclock;
static unsigned runs;

static int fake_verify(void *ctx, const char *connection_key, const char *code, char **verified_at,
                       struct hs_error *err)
{
    (void)ctx;
    (void)connection_key;
    (void)err;
    if (!code || !*code)
        abort(); /* the receiver never calls it without a code */
    *verified_at = hs_strdup("2026-11-27T10:39:31.000Z");
    return HS_OK;
}

static void open_store(void)
{
    if (store && ++runs % REOPEN != 0)
        return;
    hs_verifier_free(verifier);
    verifier = NULL;
    hs_store_close(store);
    store = NULL;
    hs_log_set_level(HS_LOG_OFF);
    if (hs_store_open(":memory:", NULL, &store, NULL) != HS_OK)
        abort();
    struct hs_token t = {.access_token = (char *)"a",
                         .refresh_token = (char *)"r",
                         .expires_at = 1,
                         .owner_id = 463605,
                         .owner_type = (char *)"orgs"};
    if (store->tokens->token_save(store, "org-463605", &t, NULL) != HS_OK)
        abort();
    hs_fake_clock_init(&fclock, NOW_S * 1000);
    struct hs_verifier_config vc = {.verify = fake_verify};
    if (hs_verifier_new(&vc, store, &fclock.clock, &verifier, NULL) != HS_OK)
        abort();
}

/* Signs body as the form `form` (0..3) would, into the request's headers. */
static void sign_form(unsigned form, struct hs_webhook_request *rq, const char *body,
                      size_t body_len, char md5[25], char sha[45], char date[40], char auth[256])
{
    time_t t = (time_t)NOW_S;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, 40, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    hs_webhook_content_md5(body, body_len, md5);
    hs_webhook_content_sha256(body, body_len, sha);
    char canonical[4096], sig[HS_APIAUTH_SIG_MAX + 1];
    const char *digest = form >= 2 ? sha : md5;
    if (hs_webhook_canonical(form ? "POST" : NULL, rq->content_type, digest, rq->request_uri, date,
                             canonical, sizeof canonical) != HS_OK)
        canonical[0] = '\0';
    static const enum hs_apiauth_digest d[] = {HS_APIAUTH_SHA256, HS_APIAUTH_SHA1,
                                               HS_APIAUTH_SHA512, HS_APIAUTH_SHA256};
    static const char *const prefix[] = {"APIAuth-HMAC-SHA256", "APIAuth", "APIAuth-HMAC-SHA512",
                                         "APIAuth-HMAC-SHA256"};
    hs_webhook_sign(d[form], SECRET, canonical, sig);
    snprintf(auth, 256, "%s %s:%s", prefix[form], form == 3 ? "hover" : "230293", sig);
    rq->authorization = auth;
    rq->date = date;
    rq->content_md5 = form >= 2 ? NULL : md5;
    rq->content_sha256 = form >= 2 ? sha : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    open_store();
    unsigned flags = data[0];
    data++;
    size--;
    char *copy = malloc(size + 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    const char *part[5] = {"", "", "", "", ""};
    size_t start = 0;
    int k = 0;
    for (size_t i = 0; i <= size && k < 5; i++) {
        if (i == size || copy[i] == '\0') {
            part[k++] = copy + start;
            start = i + 1;
        }
    }
    const char *body = start <= size ? copy + start : "";
    size_t body_len = start <= size ? size - start : 0;

    struct hs_webhook_row w = {.id = WEBHOOK_ID,
                               .connection_key = (char *)"org-463605",
                               .url = (char *)"http://127.0.0.1:9/webhooks/hover",
                               .hmac_secret = (char *)SECRET};
    if (flags & 2)
        (void)store->webhooks->webhook_put(store, &w, NULL);
    else
        (void)store->webhooks->webhook_delete(store, WEBHOOK_ID, NULL);

    char md5[25], sha[45], date[40], auth[256];
    struct hs_webhook_request rq = {
        .method = "POST",
        .request_uri = "/webhooks/hover",
        .authorization = part[0],
        .date = part[1],
        .content_md5 = part[2],
        .content_sha256 = part[3],
        .content_type = part[4],
        .body = body,
        .body_len = body_len,
        .body_too_big = (flags & 4) != 0,
    };
    if (flags & 1)
        sign_form((flags >> 3) & 3, &rq, body, body_len, md5, sha, date, auth);
    struct hs_receiver_config cfg = {.store = store, .clock = &fclock.clock, .delay_ms = 1000};
    struct hs_receiver_result res;
    hs_receiver_handle(&cfg, &rq, &res);
    /* Every outcome is one of the documented statuses with a JSON object for a body. */
    if (res.status != 200 && res.status != 202 && res.status != 400 && res.status != 401 &&
        res.status != 405 && res.status != 413 && res.status != 503)
        abort();
    if (res.body[0] != '{')
        abort();
    /* A refused delivery was given no event id. */
    if (res.status >= 400 && res.status != 503 && res.event_id != 0)
        abort();
    if (!(flags & 2) && store->webhooks->webhook_put(store, &w, NULL) == HS_OK)
        (void)hs_receiver_complete_unverified(&cfg, WEBHOOK_ID, NULL, NULL);
    bool ran = true;
    while (ran)
        if (hs_verifier_run_once(verifier, &ran, NULL) != HS_OK)
            break;
    free(copy);
    return 0;
}
