/* cmd_connect.c: `hoversync connect`: connects a Hover org through OAuth's authorization-code
 * flow from the command line, the way CLI tools do it: a one-shot listener on 127.0.0.1 receives
 * Hover's redirect, `state` is checked, the code is exchanged and the org's token pair stored
 * under the connection's name. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "core/buf.h"
#include "core/mem.h"
#include "core/str.h"
#include "hover/oauth.h"

struct callback_state {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    const char *expected_state;
    char *code;  /* set once a valid callback arrived */
    char *error; /* Hover's error=..., or our reason */
    bool done;
    bool answered; /* the response to the deciding callback has been sent */
    struct MHD_Connection *deciding;
};

static const char page_ok[] =
    "<!doctype html><html><head><meta charset=\"utf-8\"><title>hoversync connected</title></head>"
    "<body><h1>Hover is connected</h1><p>You can close this tab and return to the terminal.</p>"
    "</body></html>";
static const char page_bad[] =
    "<!doctype html><html><head><meta charset=\"utf-8\"><title>hoversync</title></head>"
    "<body><h1>Not connected</h1><p>The answer from Hover was refused; see the terminal.</p>"
    "</body></html>";

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *html)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(html), (void *)html, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "text/html; charset=utf-8");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_size, void **req)
{
    (void)version;
    (void)data;
    (void)data_size;
    struct callback_state *cs = cls;
    if (*req == NULL) { /* first call: accept, answer on the next one */
        *req = cs;
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 || strcmp(url, "/oauth/callback") != 0)
        return reply(conn, MHD_HTTP_NOT_FOUND, page_bad);
    const char *state = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "state");
    const char *code = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "code");
    const char *error = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "error");
    size_t want = strlen(cs->expected_state);
    bool state_ok =
        state && strlen(state) == want && CRYPTO_memcmp(state, cs->expected_state, want) == 0;
    pthread_mutex_lock(&cs->lock);
    bool ok = false;
    if (cs->done) {
        /* A second callback (a reload): the first one decided. */
    } else if (!state_ok) {
        /* A redirect without our state is not an answer to our request: ignore it and keep
         * waiting, so that a forged link cannot end the flow. */
    } else if (error) {
        cs->error = hs_aprintf("Hover answered %s", error);
        cs->done = true;
    } else if (!code || !*code) {
        cs->error = hs_strdup("Hover's redirect carried no code");
        cs->done = true;
    } else {
        cs->code = hs_strdup(code);
        cs->done = ok = true;
    }
    if (cs->done && !cs->deciding)
        cs->deciding = conn;
    pthread_cond_broadcast(&cs->cond);
    pthread_mutex_unlock(&cs->lock);
    return reply(conn, ok ? MHD_HTTP_OK : MHD_HTTP_BAD_REQUEST, ok ? page_ok : page_bad);
}

/* The browser must get its page before the listener stops: the flow ends when the response to
 * the deciding callback has gone out, not when it was decided. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **req,
                         enum MHD_RequestTerminationCode toe)
{
    (void)req;
    (void)toe;
    struct callback_state *cs = cls;
    pthread_mutex_lock(&cs->lock);
    if (cs->deciding == conn) {
        cs->answered = true;
        pthread_cond_broadcast(&cs->cond);
    }
    pthread_mutex_unlock(&cs->lock);
}

static void connect_help(void)
{
    puts("Usage: hoversync connect [--port N] [--timeout S]\n"
         "\n"
         "Connects a Hover org: prints the URL of Hover's authorization page, waits for the\n"
         "browser to come back to http://127.0.0.1:PORT/oauth/callback (a listener on this\n"
         "machine only), checks `state`, exchanges the code and stores the org's tokens under\n"
         "the connection name (--connection, default `default`). Reconnecting replaces them.\n"
         "\n"
         "The authorization URL is the first line on stdout; progress goes to stderr.\n"
         "Needs HOVER_CLIENT_ID and HOVER_CLIENT_SECRET; the redirect URI registered with Hover\n"
         "must be http://127.0.0.1:PORT/oauth/callback.\n"
         "\n"
         "  --port N      port of the callback listener [default: any free port]\n"
         "  --timeout S   give up after S seconds [default: 300]\n");
}

/* The callback listener on 127.0.0.1:port (0: any free port); NULL when it cannot listen. */
static struct MHD_Daemon *listen_callback(struct callback_state *cs, int64_t port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                            on_request, cs, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                            MHD_OPTION_CONNECTION_LIMIT, 8u, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, cs, MHD_OPTION_END);
}

/* Hover's authorization page for this client, redirect URI and state (caller frees). */
static char *authorize_url(struct cli *c, const char *redirect, const char *state)
{
    char *e_client = hs_url_escape(hs_config_str(&c->cfg, CFG_CLIENT_ID));
    char *e_redirect = hs_url_escape(redirect);
    const char *base = hs_config_str(&c->cfg, CFG_HOVER_URL);
    size_t bl = strlen(base);
    char *url = hs_aprintf(
        "%.*s/oauth/authorize?client_id=%s&redirect_uri=%s&response_type=code&state=%s",
        (int)(bl && base[bl - 1] == '/' ? bl - 1 : bl), base, e_client, e_redirect, state);
    free(e_client);
    free(e_redirect);
    return url;
}

/* Waits until the browser came back and got its answer page, or timeout_s passed; then stops
 * the listener. True when the callback came. */
static bool wait_callback(struct callback_state *cs, struct MHD_Daemon *d, int64_t timeout_s)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_s;
    pthread_mutex_lock(&cs->lock);
    while (!cs->done || !cs->answered)
        if (pthread_cond_timedwait(&cs->cond, &cs->lock, &deadline) != 0)
            break;
    bool done = cs->done;
    pthread_mutex_unlock(&cs->lock);
    MHD_stop_daemon(d);
    return done;
}

int cmd_connect(struct cli *c, int argc, char **argv)
{
    int64_t port = 0, timeout_s = 300;
    const char *v = NULL;
    bool bad = false;
    for (int i = 1; i < argc && !bad; i++) {
        if (cli_is_help(argv[i])) {
            connect_help();
            return EXIT_OK;
        } else if (cli_opt_value(argc, argv, &i, "--port", &v, &bad)) {
            bad = bad || cli_int_arg("--port", v, 0, 65535, &port) != 0;
        } else if (cli_opt_value(argc, argv, &i, "--timeout", &v, &bad)) {
            bad = bad || cli_int_arg("--timeout", v, 1, 86400, &timeout_s) != 0;
        } else {
            fprintf(stderr, "hoversync: connect: unknown argument '%s'\n", argv[i]);
            bad = true;
        }
    }
    if (bad)
        return EXIT_USAGE;
    if (!hs_config_str(&c->cfg, CFG_CLIENT_ID) || !hs_config_str(&c->cfg, CFG_CLIENT_SECRET)) {
        fprintf(stderr, "hoversync: connect needs HOVER_CLIENT_ID and HOVER_CLIENT_SECRET\n");
        return EXIT_FAIL;
    }

    unsigned char rnd[16];
    char state[33];
    if (RAND_bytes(rnd, sizeof rnd) != 1) {
        fprintf(stderr, "hoversync: connect: no randomness for the OAuth state\n");
        return EXIT_FAIL;
    }
    hs_hex(rnd, sizeof rnd, state);

    struct callback_state cs = {.expected_state = state};
    pthread_mutex_init(&cs.lock, NULL);
    pthread_cond_init(&cs.cond, NULL);
    struct MHD_Daemon *d = listen_callback(&cs, port);
    int rc = EXIT_FAIL;
    char *redirect = NULL, *url = NULL;
    if (!d) {
        fprintf(stderr, "hoversync: connect: cannot listen on 127.0.0.1:%lld\n", (long long)port);
        goto out;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    redirect = hs_aprintf("http://127.0.0.1:%u/oauth/callback", (unsigned)info->port);
    url = authorize_url(c, redirect, state);
    printf("%s\n", url);
    fflush(stdout);
    fprintf(stderr,
            "Open the URL above in a browser and allow access; waiting for Hover's "
            "redirect to %s ...\n",
            redirect);

    if (!wait_callback(&cs, d, timeout_s)) {
        fprintf(stderr, "hoversync: connect: no answer from the browser in %lld s\n",
                (long long)timeout_s);
        goto out;
    }
    if (cs.error) {
        fprintf(stderr, "hoversync: connect: %s\n", cs.error);
        goto out;
    }
    struct hs_token tok = {0};
    struct hs_error err = {0};
    int r = hs_client_exchange_code(c->client, cs.code, redirect, &tok, &err);
    if (r) {
        rc = cli_report("connect: the code exchange failed", r, &err);
        goto out;
    }
    fprintf(stderr, "Connected Hover org %lld as connection '%s'.\n", (long long)tok.owner_id,
            hs_config_str(&c->cfg, CFG_CONNECTION));
    hs_token_clear(&tok);
    rc = EXIT_OK;
out:
    free(url);
    free(redirect);
    free(cs.code);
    free(cs.error);
    pthread_cond_destroy(&cs.cond);
    pthread_mutex_destroy(&cs.lock);
    return rc;
}
