/* fuzz_webhook_event.c: libFuzzer target of Hover's webhook event JSON, through the receiver's
 * public entry (src/webhook/receiver.h) so that it holds whatever parses the body inside: every
 * input is a delivery body, signed correctly (api_auth 1.x, HMAC-SHA256) for a known webhook, so
 * each one reaches the JSON and the event handling (fuzz_webhook_receiver covers the headers and
 * the other signature forms). In-memory SQLite store, fixed clock. A signed delivery is never
 * refused as unauthenticated, and one acknowledged with 200 was stored first (it has an event
 * id), or is the replay of one that was ("duplicate"). */
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

#define SECRET     "c2VjcmV0LW9mLXRoZS13ZWJob29r"
#define WEBHOOK_ID 230293
#define NOW_S      1795773894LL
#define REOPEN     512 /* a fresh store now and then: accepted events pile up */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct hs_store *store;
static struct hs_fake_clock fclock;
static unsigned runs;
static char date[40];

static void open_store(void)
{
    if (store && ++runs % REOPEN != 0)
        return;
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
    struct hs_webhook_row w = {.id = WEBHOOK_ID,
                               .connection_key = (char *)"org-463605",
                               .url = (char *)"http://127.0.0.1:9/webhooks/hover",
                               .hmac_secret = (char *)SECRET,
                               .verified_at = (char *)"2026-11-27T10:00:00.000Z"};
    if (store->tokens->token_save(store, "org-463605", &t, NULL) != HS_OK ||
        store->webhooks->webhook_put(store, &w, NULL) != HS_OK)
        abort();
    hs_fake_clock_init(&fclock, NOW_S * 1000);
    time_t now = (time_t)NOW_S;
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    open_store();
    const char *body = (const char *)data;
    char md5[25], auth[256], canonical[4096], sig[HS_APIAUTH_SIG_MAX + 1];
    hs_webhook_content_md5(body, size, md5);
    if (hs_webhook_canonical(NULL, "application/json", md5, "/webhooks/hover", date, canonical,
                             sizeof canonical) != HS_OK)
        abort();
    hs_webhook_sign(HS_APIAUTH_SHA256, SECRET, canonical, sig);
    snprintf(auth, sizeof auth, "APIAuth-HMAC-SHA256 %d:%s", WEBHOOK_ID, sig);
    struct hs_webhook_request rq = {.method = "POST",
                                    .request_uri = "/webhooks/hover",
                                    .content_type = "application/json",
                                    .content_md5 = md5,
                                    .date = date,
                                    .authorization = auth,
                                    .body = body,
                                    .body_len = size};
    struct hs_receiver_config cfg = {.store = store, .clock = &fclock.clock, .delay_ms = 1000};
    struct hs_receiver_result res;
    hs_receiver_handle(&cfg, &rq, &res);
    if (res.status != 200 && res.status != 202 && res.status != 400 && res.status != 413 &&
        res.status != 503)
        abort(); /* signed, for a known webhook: never 401 or 405 */
    if (res.status == 200 && res.event_id <= 0 && !strstr(res.body, "\"duplicate\""))
        abort(); /* acknowledged only once stored */
    if (res.body[0] != '{')
        abort();
    return 0;
}
