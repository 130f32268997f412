/* cmd_webhooks.c: `hoversync webhooks register|list|delete`: the service's webhook at Hover for
 * the --connection org (src/webhook/registration.h). register stores the webhook and its
 * hmac_secret before anything else, then settles the deliveries the running service kept as
 * "unverified" (the verification race), and waits for the webhook to be verified. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "core/mem.h"
#include "hover/webhooks.h"
#include "store/webhooks.h"
#include "webhook/registration.h"

#define WAIT_STEP_MS 100

static void webhooks_help(void)
{
    puts("Usage: hoversync webhooks register [--force] [--wait S] [--json]\n"
         "       hoversync webhooks list [--json]\n"
         "       hoversync webhooks delete ID\n"
         "\n"
         "Hover delivers job events to <public-url>/webhooks/hover, served by `hoversync\n"
         "serve`; one webhook covers the whole org of --connection.\n"
         "\n"
         "  register   registers the webhook (needs --public-url / HOVERSYNC_PUBLIC_URL),\n"
         "             stores its secret, and waits until Hover's verification code went\n"
         "             through the service. A verified webhook for the same URL is kept\n"
         "             (--force registers another one); an unverified one gets a new code.\n"
         "  list       the org's webhooks as Hover shows them: verified_at and last_error\n"
         "             (Hover's record of the service's last failure to receive)\n"
         "  delete ID  deletes the webhook at Hover and here\n"
         "\n"
         "  --wait S   seconds to wait for the verification [default: 10; 0: do not wait]\n"
         "  --force    register even when a verified webhook exists\n"
         "  --json     machine-readable output\n");
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static int do_register(struct cli *c, bool force, int64_t wait_s, bool json)
{
    const char *pub = hs_config_str(&c->cfg, CFG_PUBLIC_URL);
    if (!pub || !*pub) {
        fprintf(stderr, "hoversync: webhooks register: needs --public-url (or "
                        "HOVERSYNC_PUBLIC_URL): Hover delivers to <public-url>/webhooks/hover\n");
        return EXIT_USAGE;
    }
    const char *key = hs_config_str(&c->cfg, CFG_CONNECTION);
    char *url = hs_webhook_receiver_url(pub);
    struct hs_error err = {0};
    struct hs_webhook_row w = {0};
    enum hs_webhook_outcome what = HS_WEBHOOK_REGISTERED;
    bool verified = false;
    int rc = hs_webhook_ensure(c->store, c->client, key, url, force, &w, &what, &verified, &err);
    free(url);
    if (rc)
        return cli_report("webhooks register", rc, &err);
    /* The service stores the code it receives; its verifier (or this loop, whichever claims the
     * code first in the shared store) sends it to Hover. */
    struct hs_verifier *vf = NULL;
    struct hs_verifier_config vc = {.verify = hs_webhook_verify_via_client,
                                    .verify_ctx = c->client};
    if (hs_verifier_new(&vc, c->store, NULL, &vf, &err) != HS_OK)
        vf = NULL;
    char *refused = NULL; /* the webhook's local error: Hover refused its code */
    for (int64_t waited = 0; !verified && !refused && waited < wait_s * 1000;
         waited += WAIT_STEP_MS) {
        bool ran = true;
        while (vf && ran)
            if (hs_verifier_run_once(vf, &ran, &err) != HS_OK)
                break;
        struct hs_webhook_row now = {0};
        if (c->store->webhooks->webhook_get(c->store, w.id, &now, NULL) == HS_OK &&
            now.verified_at) {
            hs_webhook_row_clear(&w);
            w = now;
            verified = true;
            break;
        }
        if (now.local_error)
            refused = hs_strdup(now.local_error);
        hs_webhook_row_clear(&now);
        if (!refused)
            sleep_ms(WAIT_STEP_MS);
    }
    hs_verifier_free(vf);
    const char *outcome = what == HS_WEBHOOK_ALREADY_VERIFIED ? "already_verified"
                          : what == HS_WEBHOOK_CODE_REQUESTED ? "code_requested"
                                                              : "registered";
    if (json) {
        json_t *j =
            json_pack("{s:I,s:s,s:s,s:s,s:o}", "id", (json_int_t)w.id, "connection", key, "url",
                      w.url, "outcome", outcome, "verified_at", str_or_null(w.verified_at));
        out_print_json(stdout, j);
        json_decref(j);
    } else {
        printf("webhook %lld %s for connection %s: %s\n", (long long)w.id,
               what == HS_WEBHOOK_ALREADY_VERIFIED ? "already registered"
               : what == HS_WEBHOOK_CODE_REQUESTED ? "re-sent its verification code"
                                                   : "registered",
               key, w.url);
        if (verified)
            printf("verified at %s\n", w.verified_at);
    }
    int ret = EXIT_OK;
    if (refused) {
        fprintf(stderr, "hoversync: webhooks register: webhook %lld is not verified: %s\n",
                (long long)w.id, refused);
        ret = EXIT_FAIL;
    } else if (!verified && wait_s > 0) {
        fprintf(stderr,
                "hoversync: webhooks register: webhook %lld is not verified after %lld s: is "
                "`hoversync serve` running and reachable at %s? (`hoversync webhooks list` "
                "shows Hover's last_error)\n",
                (long long)w.id, (long long)wait_s, w.url);
        ret = EXIT_FAIL;
    }
    free(refused);
    hs_webhook_row_clear(&w);
    return ret;
}

static int do_list(struct cli *c, bool json)
{
    const char *key = hs_config_str(&c->cfg, CFG_CONNECTION);
    struct hs_hover_webhook *v = NULL;
    size_t n = 0;
    struct hs_error err = {0};
    int rc = hs_webhooks_refresh(c->store, c->client, key, &v, &n, &err);
    if (rc)
        return cli_report("webhooks list", rc, &err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        struct hs_webhook_row w = {0};
        bool stored = c->store->webhooks->webhook_get(c->store, v[i].id, &w, NULL) == HS_OK;
        json_array_append_new(arr, json_pack("{s:I,s:o,s:o,s:o,s:o,s:b,s:b}", "id",
                                             (json_int_t)v[i].id, "url", str_or_null(v[i].url),
                                             "created_at", str_or_null(v[i].created_at),
                                             "verified_at", str_or_null(v[i].verified_at),
                                             "last_error", str_or_null(v[i].last_error), "stored",
                                             stored, "secret_stored", stored && w.hmac_secret));
        hs_webhook_row_clear(&w);
    }
    if (json) {
        json_t *j = json_pack("{s:s,s:o}", "connection", key, "webhooks", arr);
        out_print_json(stdout, j);
        json_decref(j);
    } else {
        printf("%-10s %-26s %-8s %-30s %s\n", "ID", "VERIFIED", "STORED", "LAST ERROR", "URL");
        for (size_t i = 0; i < n; i++) {
            json_t *h = json_array_get(arr, i);
            printf("%-10lld ", (long long)v[i].id);
            out_cell(stdout, v[i].verified_at ? v[i].verified_at : "no", 26);
            printf(" %-8s ",
                   json_is_true(json_object_get(h, "secret_stored"))
                       ? "yes"
                       : (json_is_true(json_object_get(h, "stored")) ? "no secret" : "no"));
            out_cell(stdout, v[i].last_error ? v[i].last_error : "-", 30);
            printf(" %s\n", v[i].url ? v[i].url : "");
        }
        if (n == 0)
            printf("no webhooks for connection %s (hoversync webhooks register)\n", key);
        json_decref(arr);
    }
    hs_hover_webhooks_free(v, n);
    return EXIT_OK;
}

static int do_delete(struct cli *c, int64_t id)
{
    struct hs_error err = {0};
    int rc = hs_webhooks_delete(c->client, id, &err);
    bool gone_at_hover = rc == HS_ERR_NOT_FOUND;
    if (rc && !gone_at_hover)
        return cli_report("webhooks delete", rc, &err);
    rc = c->store->webhooks->webhook_delete(c->store, id, &err);
    if (rc && rc != HS_ERR_NOT_FOUND)
        return cli_report("webhooks delete", rc, &err);
    if (gone_at_hover && rc == HS_ERR_NOT_FOUND) {
        fprintf(stderr, "hoversync: webhooks delete: no webhook %lld, at Hover or here\n",
                (long long)id);
        return EXIT_FAIL;
    }
    printf("webhook %lld deleted%s\n", (long long)id,
           gone_at_hover ? " (Hover no longer knew it)" : "");
    return EXIT_OK;
}

int cmd_webhooks(struct cli *c, int argc, char **argv)
{
    if (argc < 2 || cli_is_help(argv[1])) {
        webhooks_help();
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    const char *sub = argv[1];
    bool json = false, force = false, bad = false;
    int64_t wait_s = 10, id = 0;
    const char *v = NULL;
    for (int i = 2; i < argc && !bad; i++) {
        if (cli_is_help(argv[i])) {
            webhooks_help();
            return EXIT_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(sub, "register") == 0 && strcmp(argv[i], "--force") == 0) {
            force = true;
        } else if (strcmp(sub, "register") == 0 &&
                   cli_opt_value(argc, argv, &i, "--wait", &v, &bad)) {
            bad = bad || cli_int_arg("--wait", v, 0, 3600, &wait_s) != 0;
        } else if (strcmp(sub, "delete") == 0 && id == 0 && argv[i][0] != '-') {
            bad = cli_int_arg("ID", argv[i], 1, INT64_MAX, &id) != 0;
        } else {
            fprintf(stderr, "hoversync: webhooks %s: unknown argument '%s'\n", sub, argv[i]);
            bad = true;
        }
    }
    if (bad)
        return EXIT_USAGE;
    if (strcmp(sub, "register") == 0)
        return do_register(c, force, wait_s, json);
    if (strcmp(sub, "list") == 0)
        return do_list(c, json);
    if (strcmp(sub, "delete") == 0) {
        if (id == 0) {
            fprintf(stderr, "hoversync: webhooks delete: which webhook? (an ID from `hoversync "
                            "webhooks list`)\n");
            return EXIT_USAGE;
        }
        return do_delete(c, id);
    }
    fprintf(stderr, "hoversync: webhooks: unknown subcommand '%s' (register, list, delete)\n", sub);
    return EXIT_USAGE;
}
