/* main.c: hover-sandbox, an emulator of Hover's REST API (OAuth, jobs, artifacts, limits) for
 * demos and tests, with fault injection, a request log and, when asked for, an S3-compatible
 * object store. Parses the command line, generates the world, starts the listeners, prints one
 * "ready" line and serves until SIGINT/SIGTERM. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "http.h"
#include "server.h"

#define EXIT_USAGE   2
#define MAX_JOBS     5000000
#define MAX_BUCKETS  64
#define S3_CAPACITY  (256ULL * 1024 * 1024)
#define S3_CAP_LIMIT (1ULL << 40)

static const char USAGE[] =
    "Usage: hover-sandbox [options]\n"
    "An emulator of Hover's API (hover.to) for demos and tests: OAuth 2.0, jobs, artifacts,\n"
    "rate limits, plus fault injection and a request log.\n"
    "\n"
    "Listeners:\n"
    "  --listen HOST:PORT          API listener (default 127.0.0.1:0, any free port)\n"
    "  --storage-listen HOST:PORT  presigned storage listener (default 127.0.0.1:0)\n"
    "  --s3-listen HOST:PORT       an S3-compatible listener (off unless given; port 0: any)\n"
    "  --port-file PATH            write \"API_PORT\\nSTORAGE_PORT\\n\" there (atomically) once\n"
    "                              the listeners are up, then S3_PORT with --s3-listen\n"
    "Data:\n"
    "  --seed N                    world generator seed (default 42)\n"
    "  --jobs N                    number of jobs to generate (default 500)\n"
    "Behaviour:\n"
    "  --strict                    v3 job, list, artifact and image requests need\n"
    "                              current_user_id or current_user_email\n"
    "  --rate-limit N              requests per window per OAuth client (default 120, 0 = off)\n"
    "  --rate-window-ms MS         rate limit window (default 60000)\n"
    "  --token-lifetime S          access token lifetime in seconds (default 7200)\n"
    "  --client-id ID              OAuth client id (default sandbox-client)\n"
    "  --client-secret S           OAuth client secret (default sandbox-secret)\n"
    "  --redirect-uri URI          allowed redirect URI prefix (default: any http://127.0.0.1,\n"
    "                              http://localhost or http://[::1] URL)\n"
    "  --fault SPEC                inject faults; repeatable. SPEC is comma-separated\n"
    "                              key=value: path=GLOB-OR-PREFIX (required), method=M,\n"
    "                              latency_ms=N, status=CODE, drop=1, truncate=1, malformed=1,\n"
    "                              count=N (-1 = for ever, the default), rate=0..1 (default 1)\n"
    "                              e.g. --fault 'path=/api/v3/jobs*,status=503,count=2'\n"
    "Webhooks and test jobs:\n"
    "  --reconstruction-seconds S  a test job's simulated reconstruction (default 60; "
    "0.05..86400)\n"
    "  --webhook-retry-base-ms MS  first retry delay of a failed delivery, doubled per attempt\n"
    "                              (default 1000; 25 attempts at most, delays capped at 1 h)\n"
    "  --webhook-duplicate-rate P  chance 0..1 that an event is delivered twice or more\n"
    "  --webhook-drop-rate P       chance 0..1 that an event is never delivered\n"
    "  --webhook-reorder           hold a few deliveries and send them shuffled\n"
    "  --webhook-unknown-events    interleave events of types a receiver does not know\n"
    "  --verification-before-response\n"
    "                              deliver a new webhook's verification code before answering\n"
    "                              the registration\n"
    "  --webhook-signer FORM       sign deliveries as this api_auth release does: 1.x (no\n"
    "                              method, Content-MD5, HMAC-SHA256; the default), 2.4-sha1,\n"
    "                              2.4-sha256 (method first, Content-MD5), 2.5-sha256,\n"
    "                              2.5-sha512 (method first, X-Authorization-Content-SHA256)\n"
    "  --webhook-access-id FORM    the id the Authorization header names: webhook-id (the\n"
    "                              default), org-id, name (hover-org-<org id>)\n"
    "S3 listener (with --s3-listen; path-style, AWS Signature Version 4):\n"
    "  --s3-access-key ID          access key id (default AKIAIOSFODNN7EXAMPLE)\n"
    "  --s3-secret-key S           secret access key (default AWS's documentation example,\n"
    "                              wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY)\n"
    "  --s3-session-token T        requests must carry this X-Amz-Security-Token\n"
    "  --s3-region R               the region requests are signed for (default us-east-1)\n"
    "  --s3-bucket NAME            create this bucket at start; repeatable\n"
    "  --s3-capacity BYTES         bytes of objects and parts stored at most (default 256M;\n"
    "                              suffixes K, M, G)\n"
    "  --s3-min-part-size BYTES    smallest part but the last of a multipart upload\n"
    "                              (default 5M, as S3)\n"
    "  --s3-dir DIR                keep objects in files under DIR (default: in memory)\n"
    "Logging:\n"
    "  --request-log PATH          append one JSON line per request to PATH\n"
    "  --log-level L               debug, info, warn, error or off (default info)\n"
    "  --quiet                     only errors on stderr\n"
    "  -h, --help                  this help\n"
    "\n"
    "On start it prints one line to stdout:\n"
    "  hover-sandbox ready api=http://127.0.0.1:PORT storage=http://127.0.0.1:PORT2 jobs=N\n"
    "(with --s3-listen, s3=http://127.0.0.1:PORT3 before jobs=N).\n"
    "Admin routes (no OAuth, not logged): /__sandbox/requests, /__sandbox/faults,\n"
    "/__sandbox/tokens, /__sandbox/tokens/expire, /__sandbox/models/{id}, /__sandbox/config,\n"
    "/__sandbox/orgs, /__sandbox/webhooks, /__sandbox/deliveries, /__sandbox/jobs,\n"
    "/__sandbox/jobs/{id}/events, /__sandbox/s3, /healthz. See docs/SANDBOX.md.\n";

enum {
    OPT_LISTEN = 256,
    OPT_STORAGE,
    OPT_PORT_FILE,
    OPT_SEED,
    OPT_JOBS,
    OPT_STRICT,
    OPT_RATE,
    OPT_WINDOW,
    OPT_LIFETIME,
    OPT_REQLOG,
    OPT_CLIENT_ID,
    OPT_CLIENT_SECRET,
    OPT_REDIRECT,
    OPT_FAULT,
    OPT_LOG_LEVEL,
    OPT_QUIET,
    OPT_RECON,
    OPT_RETRY_BASE,
    OPT_DUP_RATE,
    OPT_DROP_RATE,
    OPT_REORDER,
    OPT_UNKNOWN,
    OPT_VERIFY_FIRST,
    OPT_SIGNER,
    OPT_ACCESS_ID,
    OPT_S3_LISTEN,
    OPT_S3_ACCESS,
    OPT_S3_SECRET,
    OPT_S3_TOKEN,
    OPT_S3_REGION,
    OPT_S3_BUCKET,
    OPT_S3_CAPACITY,
    OPT_S3_MIN_PART,
    OPT_S3_DIR,
};

static const struct option OPTIONS[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"storage-listen", required_argument, NULL, OPT_STORAGE},
    {"port-file", required_argument, NULL, OPT_PORT_FILE},
    {"seed", required_argument, NULL, OPT_SEED},
    {"jobs", required_argument, NULL, OPT_JOBS},
    {"strict", no_argument, NULL, OPT_STRICT},
    {"rate-limit", required_argument, NULL, OPT_RATE},
    {"rate-window-ms", required_argument, NULL, OPT_WINDOW},
    {"token-lifetime", required_argument, NULL, OPT_LIFETIME},
    {"request-log", required_argument, NULL, OPT_REQLOG},
    {"client-id", required_argument, NULL, OPT_CLIENT_ID},
    {"client-secret", required_argument, NULL, OPT_CLIENT_SECRET},
    {"redirect-uri", required_argument, NULL, OPT_REDIRECT},
    {"fault", required_argument, NULL, OPT_FAULT},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"reconstruction-seconds", required_argument, NULL, OPT_RECON},
    {"webhook-retry-base-ms", required_argument, NULL, OPT_RETRY_BASE},
    {"webhook-duplicate-rate", required_argument, NULL, OPT_DUP_RATE},
    {"webhook-drop-rate", required_argument, NULL, OPT_DROP_RATE},
    {"webhook-reorder", no_argument, NULL, OPT_REORDER},
    {"webhook-unknown-events", no_argument, NULL, OPT_UNKNOWN},
    {"verification-before-response", no_argument, NULL, OPT_VERIFY_FIRST},
    {"webhook-signer", required_argument, NULL, OPT_SIGNER},
    {"webhook-access-id", required_argument, NULL, OPT_ACCESS_ID},
    {"s3-listen", required_argument, NULL, OPT_S3_LISTEN},
    {"s3-access-key", required_argument, NULL, OPT_S3_ACCESS},
    {"s3-secret-key", required_argument, NULL, OPT_S3_SECRET},
    {"s3-session-token", required_argument, NULL, OPT_S3_TOKEN},
    {"s3-region", required_argument, NULL, OPT_S3_REGION},
    {"s3-bucket", required_argument, NULL, OPT_S3_BUCKET},
    {"s3-capacity", required_argument, NULL, OPT_S3_CAPACITY},
    {"s3-min-part-size", required_argument, NULL, OPT_S3_MIN_PART},
    {"s3-dir", required_argument, NULL, OPT_S3_DIR},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int usage_error(const char *fmt, const char *arg)
{
    fputs("hover-sandbox: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\nTry 'hover-sandbox --help'.\n", stderr);
    return EXIT_USAGE;
}

/* "5242880", "5M", "256MiB", "1G" (binary multiples) into bytes, 1..S3_CAP_LIMIT. */
static int parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *suffix;
        uint64_t mult;
    } units[] = {{"", 1},
                 {"K", 1ULL << 10},
                 {"KiB", 1ULL << 10},
                 {"M", 1ULL << 20},
                 {"MiB", 1ULL << 20},
                 {"G", 1ULL << 30},
                 {"GiB", 1ULL << 30}};
    size_t digits = strspn(s, "0123456789");
    char num[24];
    int64_t v;
    if (digits == 0 || digits >= sizeof num)
        return -1;
    memcpy(num, s, digits);
    num[digits] = '\0';
    if (hs_parse_i64_range(num, 1, (int64_t)S3_CAP_LIMIT, &v) != 0)
        return -1;
    for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
        if (!strcmp(s + digits, units[i].suffix)) {
            if ((uint64_t)v > S3_CAP_LIMIT / units[i].mult)
                return -1;
            *out = (uint64_t)v * units[i].mult;
            return 0;
        }
    }
    return -1;
}

/* Options of the S3 listener; 1 when opt is not one of them, else 0 or an exit status. */
static int s3_option(int opt, const char *arg, struct sb_s3_settings *s3, const char **buckets)
{
    switch (opt) {
    case OPT_S3_LISTEN:
        if (!sb_listen_spec_ok(arg))
            return usage_error("a listen address is HOST:PORT (port 0..65535), not '%s'", arg);
        s3->listen = arg;
        return 0;
    case OPT_S3_ACCESS:
        if (!*arg || strlen(arg) > 128 || strpbrk(arg, "/, \t"))
            return usage_error("--s3-access-key wants 1..128 characters without '/', ',' or "
                               "spaces, not '%s'",
                               arg);
        s3->access_key = arg;
        return 0;
    case OPT_S3_SECRET:
    case OPT_S3_TOKEN:
        if (!*arg)
            return usage_error("%s must not be empty",
                               opt == OPT_S3_SECRET ? "--s3-secret-key" : "--s3-session-token");
        *(opt == OPT_S3_SECRET ? &s3->secret_key : &s3->session_token) = arg;
        return 0;
    case OPT_S3_REGION:
        if (!*arg || strlen(arg) > 64 || strpbrk(arg, "/ "))
            return usage_error("--s3-region wants a region name such as us-east-1, not '%s'", arg);
        s3->region = arg;
        return 0;
    case OPT_S3_BUCKET:
        if (!sb_s3_bucket_name_ok(arg))
            return usage_error("--s3-bucket: '%s' is not a valid bucket name (3..63 of a-z, 0-9, "
                               "'.', '-')",
                               arg);
        if (s3->n_buckets == MAX_BUCKETS)
            return usage_error("--s3-bucket: at most 64%s", "");
        buckets[s3->n_buckets++] = arg;
        return 0;
    case OPT_S3_CAPACITY:
    case OPT_S3_MIN_PART:
        if (parse_size(arg, opt == OPT_S3_CAPACITY ? &s3->store.capacity
                                                   : &s3->store.min_part_size) != 0)
            return usage_error("a size is a number of bytes with an optional K, M or G (up to "
                               "1T), not '%s'",
                               arg);
        return 0;
    case OPT_S3_DIR:
        s3->store.dir = arg;
        return 0;
    default:
        return 1;
    }
}

static int write_port_file(const char *path, int api, int storage, int s3)
{
    char *tmp = hs_aprintf("%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    int rc = -1;
    if (f) {
        bool ok = fprintf(f, "%d\n%d\n", api, storage) > 0;
        if (s3)
            ok = fprintf(f, "%d\n", s3) > 0 && ok;
        ok = fflush(f) == 0 && ok;
        ok = fsync(fileno(f)) == 0 && ok;
        ok = fclose(f) == 0 && ok;
        if (ok && rename(tmp, path) == 0)
            rc = 0;
        else
            (void)unlink(tmp);
    }
    free(tmp);
    return rc;
}

int main(int argc, char **argv)
{
    struct sb_config cfg = {
        .listen = "127.0.0.1:0",
        .storage_listen = "127.0.0.1:0",
        .client_id = "sandbox-client",
        .client_secret = "sandbox-secret",
        .seed = 42,
        .jobs = 500,
        .rate_limit = 120,
        .rate_window_ms = 60000,
        .token_lifetime_s = 7200,
        .reconstruction_ms = 60000,
        .webhooks = {.retry_base_ms = 1000},
        .s3 = {.access_key = "AKIAIOSFODNN7EXAMPLE",
               .secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
               .region = "us-east-1",
               .store = {.capacity = S3_CAPACITY, .min_part_size = SB_S3_MIN_PART}},
    };
    const char *buckets[MAX_BUCKETS];
    bool s3_opts = false;
    const char *port_file = NULL;
    int level = HS_LOG_INFO;
    bool quiet = false;
    struct sb_fault_rule *rules = NULL;
    size_t n_rules = 0;
    int64_t v;
    double dv;
    int opt, rc = 1;
    char err[256];

    while ((opt = getopt_long(argc, argv, "h", OPTIONS, NULL)) != -1) {
        int s3rc = s3_option(opt, optarg, &cfg.s3, buckets);
        if (s3rc != 1) {
            if (s3rc != 0)
                return s3rc;
            s3_opts = s3_opts || opt != OPT_S3_LISTEN;
            continue;
        }
        switch (opt) {
        case OPT_LISTEN:
        case OPT_STORAGE:
            if (!sb_listen_spec_ok(optarg))
                return usage_error("a listen address is HOST:PORT (port 0..65535), not '%s'",
                                   optarg);
            if (opt == OPT_LISTEN)
                cfg.listen = optarg;
            else
                cfg.storage_listen = optarg;
            break;
        case OPT_PORT_FILE:
            port_file = optarg;
            break;
        case OPT_SEED:
            if (hs_parse_i64_range(optarg, 0, INT64_MAX, &v) != 0)
                return usage_error("--seed wants a non-negative integer, not '%s'", optarg);
            cfg.seed = (uint64_t)v;
            break;
        case OPT_JOBS:
            if (hs_parse_i64_range(optarg, 0, MAX_JOBS, &v) != 0)
                return usage_error("--jobs wants 0..5000000, not '%s'", optarg);
            cfg.jobs = (size_t)v;
            break;
        case OPT_STRICT:
            cfg.strict = true;
            break;
        case OPT_RATE:
            if (hs_parse_i64_range(optarg, 0, SB_RATELIMIT_MAX, &v) != 0)
                return usage_error("--rate-limit wants 0..1000000, not '%s'", optarg);
            cfg.rate_limit = v;
            break;
        case OPT_WINDOW:
            if (hs_parse_i64_range(optarg, 1, 86400000, &v) != 0)
                return usage_error("--rate-window-ms wants 1..86400000, not '%s'", optarg);
            cfg.rate_window_ms = v;
            break;
        case OPT_LIFETIME:
            if (hs_parse_i64_range(optarg, 1, 315360000, &v) != 0)
                return usage_error("--token-lifetime wants seconds (>= 1), not '%s'", optarg);
            cfg.token_lifetime_s = v;
            break;
        case OPT_REQLOG:
            cfg.request_log = optarg;
            break;
        case OPT_CLIENT_ID:
            if (!*optarg || strlen(optarg) >= 128)
                return usage_error("--client-id wants 1..127 characters%s", "");
            cfg.client_id = optarg;
            break;
        case OPT_CLIENT_SECRET:
            if (!*optarg)
                return usage_error("--client-secret must not be empty%s", "");
            cfg.client_secret = optarg;
            break;
        case OPT_REDIRECT:
            cfg.redirect_uri = optarg;
            break;
        case OPT_FAULT: {
            struct sb_fault_rule r;
            if (sb_fault_parse_spec(optarg, &r, err, sizeof err) != 0) {
                fprintf(stderr, "hover-sandbox: --fault '%s': %s\n", optarg, err);
                for (size_t i = 0; i < n_rules; i++)
                    sb_fault_rule_clear(&rules[i]);
                free(rules);
                return EXIT_USAGE;
            }
            rules = hs_realloc(rules, (n_rules + 1) * sizeof *rules);
            rules[n_rules++] = r;
            break;
        }
        case OPT_LOG_LEVEL:
            level = hs_log_level_parse(optarg);
            if (level < 0)
                return usage_error("--log-level wants debug, info, warn, error or off, not '%s'",
                                   optarg);
            break;
        case OPT_QUIET:
            quiet = true;
            break;
        case OPT_RECON:
            if (hs_parse_double(optarg, &dv) != 0 || dv * 1000 < SB_RECONSTRUCTION_MS_MIN ||
                dv * 1000 > (double)SB_RECONSTRUCTION_MS_MAX)
                return usage_error("--reconstruction-seconds wants 0.05..86400, not '%s'", optarg);
            cfg.reconstruction_ms = (int64_t)(dv * 1000 + 0.5);
            break;
        case OPT_RETRY_BASE:
            if (hs_parse_i64_range(optarg, 1, SB_WEBHOOK_RETRY_BASE_MAX, &v) != 0)
                return usage_error("--webhook-retry-base-ms wants 1..3600000, not '%s'", optarg);
            cfg.webhooks.retry_base_ms = v;
            break;
        case OPT_DUP_RATE:
        case OPT_DROP_RATE:
            if (hs_parse_double(optarg, &dv) != 0 || dv < 0 || dv > 1)
                return usage_error("a webhook chaos rate is 0..1, not '%s'", optarg);
            if (opt == OPT_DUP_RATE)
                cfg.webhooks.duplicate_rate = dv;
            else
                cfg.webhooks.drop_rate = dv;
            break;
        case OPT_REORDER:
            cfg.webhooks.reorder = true;
            break;
        case OPT_UNKNOWN:
            cfg.webhooks.unknown_events = true;
            break;
        case OPT_VERIFY_FIRST:
            cfg.webhooks.verification_before_response = true;
            break;
        case OPT_SIGNER:
            if (sb_signer_parse(optarg, &cfg.webhooks.signer) != 0)
                return usage_error("--webhook-signer wants 1.x, 2.4-sha1, 2.4-sha256, 2.5-sha256 "
                                   "or 2.5-sha512, not '%s'",
                                   optarg);
            break;
        case OPT_ACCESS_ID:
            if (sb_access_id_parse(optarg, &cfg.webhooks.access_id) != 0)
                return usage_error("--webhook-access-id wants webhook-id, org-id or name, not '%s'",
                                   optarg);
            break;
        case 'h':
            fputs(USAGE, stdout);
            return 0;
        default:
            fputs("Try 'hover-sandbox --help'.\n", stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (s3_opts && !cfg.s3.listen)
        return usage_error("the --s3-* options need --s3-listen%s", "");
    cfg.s3.buckets = buckets;
    hs_log_set_level(quiet && level < HS_LOG_ERROR ? HS_LOG_ERROR : level);

    /* Signals are taken by sigwait in this thread only: block them before any thread starts. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct sb_server *s = sb_server_new(&cfg, err, sizeof err);
    if (!s) {
        hs_error_log("msg=\"cannot start\" error=\"%s\"", err);
        goto out;
    }
    for (size_t i = 0; i < n_rules; i++)
        (void)sb_faults_add(s->faults, &rules[i]);
    if (sb_server_start(s, err, sizeof err) != 0) {
        hs_error_log("msg=\"cannot start\" error=\"%s\"", err);
        goto out;
    }
    if (port_file && write_port_file(port_file, s->api_port, s->storage_port, s->s3_port) != 0) {
        char eb[128];
        hs_error_log("msg=\"cannot write the port file\" path=%s error=\"%s\"", port_file,
                     sb_errstr(errno, eb, sizeof eb));
        goto out;
    }
    printf("hover-sandbox ready api=%s storage=%s%s%s jobs=%zu\n", s->api_base, s->storage_base,
           s->s3 ? " s3=" : "", s->s3 ? s->s3_base : "", s->world->n_jobs);
    fflush(stdout);
    if (s->s3)
        hs_info("msg=\"s3 listener\" url=%s region=%s access_key=%s capacity=%llu "
                "min_part_size=%llu dir=%s buckets=%zu",
                s->s3_base, cfg.s3.region, cfg.s3.access_key,
                (unsigned long long)cfg.s3.store.capacity,
                (unsigned long long)cfg.s3.store.min_part_size,
                cfg.s3.store.dir ? cfg.s3.store.dir : "(memory)", cfg.s3.n_buckets);
    hs_info("msg=ready api=%s storage=%s jobs=%zu seed=%llu strict=%d rate_limit=%lld "
            "rate_window_ms=%lld faults=%zu",
            s->api_base, s->storage_base, s->world->n_jobs, (unsigned long long)cfg.seed,
            cfg.strict, (long long)cfg.rate_limit, (long long)cfg.rate_window_ms, n_rules);

    int sig = 0;
    while (sigwait(&sigs, &sig) != 0)
        ;
    hs_info("msg=stopping signal=%d", sig);
    rc = 0;
out:
    sb_server_free(s);
    for (size_t i = 0; i < n_rules; i++)
        sb_fault_rule_clear(&rules[i]);
    free(rules);
    return rc;
}
