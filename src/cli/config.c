/* config.c: the configuration table and its parsing (flags, environment, help, `config show`);
 * the configuration file's parser is config_file.c. See config.h. */
#include "cli/config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/str.h"

/* The modal's files, installed under the data directory (set by the build). */
#ifndef HOVERSYNC_WEB_DIR
#define HOVERSYNC_WEB_DIR "/usr/local/share/hoversync/web"
#endif
/* The configuration file read when neither --config nor HOVERSYNC_CONFIG names one. */
#ifndef HOVERSYNC_CONFIG_FILE
#define HOVERSYNC_CONFIG_FILE "/etc/hoversync/hoversync.conf"
#endif

const struct hs_cfg_def hs_cfg_defs[CFG_COUNT] = {
    {CFG_DB, "--db", "HOVERSYNC_DB", HS_CFG_STRING, "./hoversync.db", 0, 0,
     "the store: a SQLite database file (created if missing), or a postgresql:// URL (the "
     "password from PGPASSWORD or ~/.pgpass, never in the URL)"},
    {CFG_DATA_DIR, "--data-dir", "HOVERSYNC_DATA_DIR", HS_CFG_STRING, "./hoversync-data", 0, 0,
     "directory of the stored artifact files (content-addressed by sha256); with --blobs "
     "s3://, only their temporary files while they download"},
    {CFG_BLOBS, "--blobs", "HOVERSYNC_BLOBS", HS_CFG_STRING, NULL, 0, 0,
     "where artifact files are stored: unset for the data directory, or s3://BUCKET/PREFIX "
     "for S3-compatible object storage shared by instances on several machines "
     "(docs/OBJECT-STORAGE.md)"},
    {CFG_S3_ENDPOINT, "--s3-endpoint", "HOVERSYNC_S3_ENDPOINT", HS_CFG_STRING, NULL, 0, 0,
     "the object storage's URL for services other than AWS (path-style addressing) [default: "
     "https://s3.REGION.amazonaws.com]"},
    {CFG_S3_REGION, "--s3-region", "HOVERSYNC_S3_REGION", HS_CFG_STRING, "us-east-1", 0, 0,
     "the object storage's region (part of every request's signature)"},
    {CFG_S3_PART_SIZE, "--s3-part-size", "HOVERSYNC_S3_PART_SIZE", HS_CFG_INT, "8388608", 1024,
     INT64_C(5368709120),
     "bytes above which a file is uploaded in parts (multipart upload), and the size of each "
     "part; S3 wants parts of 5 MiB at least"},
    {CFG_BLOBS_REDIRECT, "--blobs-redirect", "HOVERSYNC_BLOBS_REDIRECT", HS_CFG_INT, "0", 0, 604800,
     "serve, with --blobs s3://: /files answers with a redirect to a presigned URL of the object "
     "valid this many seconds, instead of streaming it through the service (0 = stream)"},
    {CFG_AWS_ACCESS_KEY_ID, NULL, "AWS_ACCESS_KEY_ID", HS_CFG_SECRET, NULL, 0, 0,
     "the object storage's access key id (environment only)"},
    {CFG_AWS_SECRET_ACCESS_KEY, NULL, "AWS_SECRET_ACCESS_KEY", HS_CFG_SECRET, NULL, 0, 0,
     "the object storage's secret access key (environment only)"},
    {CFG_AWS_SESSION_TOKEN, NULL, "AWS_SESSION_TOKEN", HS_CFG_SECRET, NULL, 0, 0,
     "the object storage's session token, for temporary credentials (environment only)"},
    {CFG_HOVER_URL, "--hover-url", "HOVER_BASE_URL", HS_CFG_STRING, "https://hover.to", 0, 0,
     "base URL of Hover's API (the sandbox's URL in demos and tests)"},
    {CFG_CLIENT_ID, "--client-id", "HOVER_CLIENT_ID", HS_CFG_STRING, NULL, 0, 0,
     "OAuth client id of this integration (needed to refresh tokens)"},
    {CFG_CLIENT_SECRET, NULL, "HOVER_CLIENT_SECRET", HS_CFG_SECRET, NULL, 0, 0,
     "OAuth client secret (environment only)"},
    {CFG_ACCESS_TOKEN, NULL, "HOVER_ACCESS_TOKEN", HS_CFG_SECRET, NULL, 0, 0,
     "initial access token; once stored, the stored (rotated) pair wins (environment only)"},
    {CFG_REFRESH_TOKEN, NULL, "HOVER_REFRESH_TOKEN", HS_CFG_SECRET, NULL, 0, 0,
     "initial refresh token (environment only)"},
    {CFG_AS_USER, "--as-user", "HOVER_CURRENT_USER_EMAIL", HS_CFG_STRING, NULL, 0, 0,
     "act as this org user: adds current_user_email to job and artifact requests"},
    {CFG_AS_USER_ID, "--as-user-id", "HOVER_CURRENT_USER_ID", HS_CFG_INT, NULL, 1, INT64_MAX,
     "act as this org user id: adds current_user_id to job and artifact requests"},
    {CFG_CONNECTION, "--connection", "HOVERSYNC_CONNECTION", HS_CFG_STRING, "default", 0, 0,
     "name of the stored Hover connection (token pair) to use"},
    {CFG_RATE_LIMIT, "--rate-limit", "HOVERSYNC_RATE_LIMIT", HS_CFG_INT, "120", 0, 100000,
     "requests a minute the installation sends to Hover: every process using the store "
     "together, not each (0 = no client-side limit)"},
    {CFG_MAX_ATTEMPTS, "--max-attempts", "HOVERSYNC_MAX_ATTEMPTS", HS_CFG_INT, "5", 1, 20,
     "attempts per request on 429, 5xx and connection errors"},
    {CFG_TIMEOUT, "--timeout", "HOVERSYNC_TIMEOUT", HS_CFG_INT, "60", 1, 600,
     "seconds before one HTTP request to Hover is abandoned"},
    {CFG_LOG_LEVEL, "--log-level", "HOVERSYNC_LOG_LEVEL", HS_CFG_STRING, "warn", 0, 0,
     "debug, info, warn, error or off (logs go to stderr)"},
    {CFG_LOG_FORMAT, "--log-format", "HOVERSYNC_LOG_FORMAT", HS_CFG_STRING, "text", 0, 0,
     "text (one key=value line per event) or json (one JSON object per line: time, level, msg "
     "and each field)"},
    {CFG_LISTEN, "--listen", "HOVERSYNC_LISTEN", HS_CFG_STRING, "127.0.0.1:8080", 0, 0,
     "serve: HOST:PORT the HTTP service listens on (port 0: any free port)"},
    {CFG_PUBLIC_URL, "--public-url", "HOVERSYNC_PUBLIC_URL", HS_CFG_STRING, NULL, 0, 0,
     "serve: the URL browsers reach the service by [default: http://<listen>]"},
    {CFG_ALLOW_ORIGINS, NULL, "HOVERSYNC_ALLOW_ORIGINS", HS_CFG_STRING, NULL, 0, 0,
     "serve: comma-separated CRM origins that may call the API and frame the modal (more with "
     "serve --allow-origin)"},
    {CFG_API_KEY, NULL, "HOVERSYNC_API_KEY", HS_CFG_SECRET, NULL, 0, 0,
     "serve: the API key CRM back-ends send as 'Authorization: Bearer'; unset: generated on "
     "first start, printed once (environment only)"},
    {CFG_WEB_DIR, "--web-dir", "HOVERSYNC_WEB_DIR", HS_CFG_STRING, HOVERSYNC_WEB_DIR, 0, 0,
     "serve: directory of the modal's files (web/)"},
    {CFG_PENDING_INTERVAL, "--pending-interval", "HOVERSYNC_PENDING_INTERVAL", HS_CFG_INT, "900", 0,
     86400,
     "serve, worker: the longest wait, in seconds, between two polls of a job waiting for a "
     "model to complete where no healthy webhook reports it (polls start a minute apart and "
     "double; 0 = never)"},
    {CFG_RECONCILE_INTERVAL, "--reconcile-interval", "HOVERSYNC_RECONCILE_INTERVAL", HS_CFG_INT,
     "300", 0, 86400,
     "serve, worker: seconds between two reconciliation passes (List Jobs updated since the "
     "last one, for webhook events that never arrived; 0 = off)"},
    {CFG_EVENT_WORKERS, "--event-workers", "HOVERSYNC_EVENT_WORKERS", HS_CFG_INT, "2", 1, 64,
     "serve, worker: threads running the work queue (the modal's syncs, webhook events, "
     "reconciliation, the pending pass)"},
    {CFG_DOWNLOAD_SLOTS, "--download-slots", "HOVERSYNC_DOWNLOAD_SLOTS", HS_CFG_INT, "4", 1, 16,
     "sync, backfill, serve, worker: artifacts of a model downloaded at once by each sync, over "
     "the same keep-alive connections (every request still counts against the budget)"},
    {CFG_CRM_ENDPOINTS, NULL, "HOVERSYNC_CRM_ENDPOINTS", HS_CFG_STRING, NULL, 0, 0,
     "serve, worker: comma-separated CRM URLs notified after each sync that changed something "
     "(more with --crm-endpoint)"},
    {CFG_CRM_SECRET, NULL, "HOVERSYNC_CRM_SECRET", HS_CFG_SECRET, NULL, 0, 0,
     "serve, worker: the key of the notifications' HMAC-SHA256 signature (environment only)"},
    {CFG_OUTBOX_RETRY_BASE, "--outbox-retry-base-ms", "HOVERSYNC_OUTBOX_RETRY_BASE_MS", HS_CFG_INT,
     "1000", 1, 600000,
     "serve, worker: first retry delay of a CRM notification, doubled per attempt up to 5 "
     "minutes"},
    {CFG_RATE_MARGIN, "--rate-margin-ms", "HOVERSYNC_RATE_MARGIN_MS", HS_CFG_INT, "1000", 0, 30000,
     "the budget's window is a minute plus this, so that requests reaching Hover late still fit "
     "its 60 s window"},
    {CFG_HEADER_TIMEOUT, "--header-timeout", "HOVERSYNC_HEADER_TIMEOUT", HS_CFG_INT, "10", 1, 300,
     "serve: seconds a request may take to send its headers, however slowly they trickle; then "
     "the connection is closed"},
    {CFG_HOVER_WAIT, "--hover-wait", "HOVERSYNC_HOVER_WAIT", HS_CFG_INT, "20", 1, 600,
     "serve: seconds a route that asks Hover waits for it before answering 504 (the request goes "
     "on in the background)"},
    {CFG_CALLER_RATE, "--caller-rate-limit", "HOVERSYNC_CALLER_RATE_LIMIT", HS_CFG_INT, "120", 0,
     100000,
     "serve: requests a minute that one API key or one session may make to routes that ask "
     "Hover, a minute's worth at once (429 beyond; 0 = no limit)"},
    {CFG_MAX_CONNECTIONS, "--max-connections", "HOVERSYNC_MAX_CONNECTIONS", HS_CFG_INT, "1024", 16,
     65536, "serve: open HTTP connections at most (the open files limit is raised to fit)"},
    {CFG_ENCRYPTION_KEY, NULL, "HOVERSYNC_ENCRYPTION_KEY", HS_CFG_SECRET, NULL, 0, 0,
     "256-bit key (64 hex digits or base64) that encrypts the OAuth tokens and webhook secrets "
     "in the store (AES-256-GCM); without it they are stored in clear (environment only)"},
    {CFG_NEW_ENCRYPTION_KEY, NULL, "HOVERSYNC_NEW_ENCRYPTION_KEY", HS_CFG_SECRET, NULL, 0, 0,
     "store rotate-key: the key every secret is re-encrypted under (environment only)"},
    {CFG_RUN_LEASE, "--run-lease", "HOVERSYNC_RUN_LEASE", HS_CFG_INT, "60", 2, 3600,
     "seconds of a sync run's lease: its process renews it while the run goes on, and a run "
     "whose lease lapsed (its process died) shows as interrupted; keep it well above the clock "
     "difference between machines sharing the store"},
    {CFG_WORK_LEASE, "--work-lease", "HOVERSYNC_WORK_LEASE", HS_CFG_INT, "30", 2, 3600,
     "serve, worker: seconds of a work item's lease: its process renews it every third while it "
     "syncs the job; once it lapsed (the process died, paused or cut off) another process takes "
     "the item over and the late one's writes are refused"},
    {CFG_ARTIFACTS, "--artifacts", "HOVERSYNC_ARTIFACTS", HS_CFG_STRING, "default", 0, 0,
     "artifact profile of syncs for connections without their own (connections set-artifacts): a "
     "comma list of artifact kinds (measurements.pdf, measurements.json, cad_exports.skp, ...), "
     "images:none|first|all, default (the PDF, the measurements JSON the columns come from, the "
     "first image) or all; the rest is recorded and fetched on first use"},
    {CFG_KEEP_WEBHOOK_EVENTS, "--keep-webhook-events", "HOVERSYNC_KEEP_WEBHOOK_EVENTS", HS_CFG_INT,
     "30", 0, 36500,
     "days a handled webhook delivery (its raw body) is kept, then deleted by the retention duty "
     "(0 = for ever)"},
    {CFG_KEEP_SYNC_RUNS, "--keep-sync-runs", "HOVERSYNC_KEEP_SYNC_RUNS", HS_CFG_INT, "90", 0, 36500,
     "days sync runs and their per-model results are kept (each model's latest result stays; "
     "0 = for ever)"},
    {CFG_KEEP_OUTBOX, "--keep-outbox", "HOVERSYNC_KEEP_OUTBOX", HS_CFG_INT, "7", 0, 36500,
     "days a delivered CRM notification is kept (0 = for ever)"},
    {CFG_BLOB_GRACE, "--blob-grace", "HOVERSYNC_BLOB_GRACE", HS_CFG_INT, "3600", 60, 2592000,
     "seconds an artifact file no row points at (a replaced version, a crash's orphan) is kept "
     "before the retention duty deletes it"},
    {CFG_RETENTION_INTERVAL, "--retention-interval", "HOVERSYNC_RETENTION_INTERVAL", HS_CFG_INT,
     "3600", 0, 86400,
     "serve, worker: seconds between two passes of the retention duty, once across the "
     "installation (0 = never; `hoversync store prune` runs one at once)"},
    {CFG_DRAIN_TIMEOUT, "--drain-timeout", "HOVERSYNC_DRAIN_TIMEOUT", HS_CFG_INT, "20", 0, 3600,
     "serve, worker: seconds SIGTERM waits for requests and syncs in flight to finish; then the "
     "syncs still running are handed back to the queue for another process, and it exits"},
};

/* The web directory's default: the installed files; a binary built with the source tree's
 * web/ as fallback (meson option source_web_fallback, on for development builds) and run before
 * any install uses that, so that it works from the build tree. */
static const char *default_web_dir(void)
{
#ifdef HOVERSYNC_SOURCE_WEB_DIR
    if (access(HOVERSYNC_WEB_DIR "/modal.html", R_OK) != 0 &&
        access(HOVERSYNC_SOURCE_WEB_DIR "/modal.html", R_OK) == 0)
        return HOVERSYNC_SOURCE_WEB_DIR;
#endif
    return HOVERSYNC_WEB_DIR;
}

void hs_config_init(struct hs_config *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < CFG_COUNT; i++) {
        const struct hs_cfg_def *d = &hs_cfg_defs[i];
        c->value[i] = i == CFG_WEB_DIR ? default_web_dir() : d->dflt;
        c->from[i] = c->value[i] ? HS_CFG_DEFAULT : HS_CFG_UNSET;
        const char *e = d->env ? getenv(d->env) : NULL;
        if (e && *e) {
            c->value[i] = e;
            c->from[i] = HS_CFG_ENV;
        }
    }
    const char *file = getenv("HOVERSYNC_CONFIG");
    c->file = file && *file ? file : HOVERSYNC_CONFIG_FILE;
    c->file_from = file && *file ? HS_CFG_ENV : HS_CFG_DEFAULT;
}

void hs_config_free(struct hs_config *c)
{
    for (int k = 0; k < CFG_COUNT; k++)
        if (c->from[k] == HS_CFG_FILE) {
            c->value[k] = NULL;
            c->from[k] = HS_CFG_UNSET;
        }
    free(c->file_text);
    c->file_text = NULL;
}

/* "--flag VALUE" or "--flag=VALUE": 1 and *value set, 0 if argv[*i] is another argument, -1
 * (with a message) for a missing value. */
static int take_value(int argc, char **argv, int *i, const char *flag, const char **value)
{
    const char *arg = argv[*i];
    size_t fl = strlen(flag);
    if (strncmp(arg, flag, fl) != 0)
        return 0;
    if (arg[fl] == '=') {
        *value = arg + fl + 1;
        return 1;
    }
    if (arg[fl] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "hoversync: %s needs a value\n", flag);
        return -1;
    }
    *value = argv[++*i];
    return 1;
}

int hs_config_take_flag(struct hs_config *c, int argc, char **argv, int *i)
{
    const char *v = NULL;
    int t = take_value(argc, argv, i, "--config", &v);
    if (t == 1) {
        c->file = v;
        c->file_from = HS_CFG_FLAG;
    }
    for (int k = 0; k < CFG_COUNT && t == 0; k++) {
        if (hs_cfg_defs[k].flag && (t = take_value(argc, argv, i, hs_cfg_defs[k].flag, &v)) == 1) {
            c->value[k] = v;
            c->from[k] = HS_CFG_FLAG;
        }
    }
    return t;
}

void hs_cfg_name(const struct hs_cfg_def *d, char *out, size_t n)
{
    const char *src = d->flag ? d->flag + 2 : d->env;
    if (!d->flag && hs_starts_with(src, "HOVERSYNC_"))
        src += strlen("HOVERSYNC_");
    else if (!d->flag && hs_starts_with(src, "HOVER_"))
        src += strlen("HOVER_");
    size_t i = 0;
    for (; src[i] && i + 1 < n; i++) {
        char ch = src[i];
        out[i] = ch == '_' ? '-' : (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
    }
    if (n)
        out[i] = '\0';
}

int hs_config_check_value(enum hs_cfg_id id, const char *v, char *msg, size_t n)
{
    const struct hs_cfg_def *d = &hs_cfg_defs[id];
    int64_t num;
    if (d->type == HS_CFG_INT && hs_parse_i64_range(v, d->min, d->max, &num) != 0) {
        snprintf(msg, n, "must be a whole number from %lld to %lld, not '%s'", (long long)d->min,
                 (long long)d->max, v);
        return -1;
    }
    if (id == CFG_BLOBS && !hs_starts_with(v, "s3://")) {
        snprintf(msg, n, "must be an s3://BUCKET/PREFIX URL, not '%s'", v);
        return -1;
    }
    if ((id == CFG_HOVER_URL || id == CFG_PUBLIC_URL || id == CFG_S3_ENDPOINT) &&
        !hs_starts_with(v, "https://") && !hs_starts_with(v, "http://")) {
        snprintf(msg, n, "must start with http:// or https://, not '%s'", v);
        return -1;
    }
    if (id == CFG_LOG_LEVEL && hs_log_level_parse(v) < 0) {
        snprintf(msg, n, "must be debug, info, warn, error or off, not '%s'", v);
        return -1;
    }
    if (id == CFG_LOG_FORMAT && hs_log_format_parse(v) < 0) {
        snprintf(msg, n, "must be text or json, not '%s'", v);
        return -1;
    }
    return 0;
}

/* Where a value came from, as a user finds it: the flag, the variable or "FILE:LINE: name". */
static void value_label(const struct hs_config *c, int k, char *out, size_t n)
{
    const struct hs_cfg_def *d = &hs_cfg_defs[k];
    char name[HS_CFG_NAME_MAX];
    switch (c->from[k]) {
    case HS_CFG_FILE:
        hs_cfg_name(d, name, sizeof name);
        snprintf(out, n, "%s:%d: %s", c->file, c->line[k], name);
        break;
    case HS_CFG_ENV:
        snprintf(out, n, "%s", d->env);
        break;
    default:
        snprintf(out, n, "%s", d->flag ? d->flag : d->env);
    }
}

int hs_config_validate(const struct hs_config *c)
{
    for (int k = 0; k < CFG_COUNT; k++) {
        char msg[HS_CFG_LABEL_MAX], label[HS_CFG_LABEL_MAX];
        if (!c->value[k] || hs_config_check_value(k, c->value[k], msg, sizeof msg) == 0)
            continue;
        value_label(c, k, label, sizeof label);
        fprintf(stderr, "hoversync: %s %s\n", label, msg);
        return -1;
    }
    return 0;
}

const char *hs_config_str(const struct hs_config *c, enum hs_cfg_id id)
{
    return c->value[id];
}

int64_t hs_config_int(const struct hs_config *c, enum hs_cfg_id id)
{
    int64_t n = 0;
    if (!c->value[id] || hs_parse_i64(c->value[id], &n) != 0)
        return 0;
    return n;
}

static const char *from_name(enum hs_cfg_from f)
{
    static const char *const names[] = {"unset", "default", "file", "env", "flag"};
    return names[f];
}

void hs_config_source(const struct hs_config *c, enum hs_cfg_id id, char *out, size_t n)
{
    if (c->from[id] == HS_CFG_FILE)
        snprintf(out, n, "file:%s:%d", c->file, c->line[id]);
    else
        snprintf(out, n, "%s", from_name(c->from[id]));
}

void hs_config_print_help(FILE *out)
{
    fputs("Global options (each also an environment variable and, secrets excepted, a\n"
          "`name = value` line of the configuration file; precedence: flag, environment, file,\n"
          "default):\n",
          out);
    fprintf(out, "  %-24s %-30s %s [default: %s]\n", "--config PATH", "HOVERSYNC_CONFIG",
            "the configuration file (a missing default file is fine)", HOVERSYNC_CONFIG_FILE);
    for (int k = 0; k < CFG_COUNT; k++) {
        const struct hs_cfg_def *d = &hs_cfg_defs[k];
        char left[HS_CFG_NAME_MAX + 16], name[HS_CFG_NAME_MAX];
        hs_cfg_name(d, name, sizeof name);
        if (d->flag)
            snprintf(left, sizeof left, "%s %s", d->flag, d->type == HS_CFG_INT ? "N" : "VALUE");
        else if (d->type == HS_CFG_SECRET)
            snprintf(left, sizeof left, "(env only)");
        else
            snprintf(left, sizeof left, "(file) %s", name);
        fprintf(out, "  %-24s %-30s %s", left, d->env, d->help);
        if (d->dflt)
            fprintf(out, " [default: %s]", d->dflt);
        fputc('\n', out);
    }
}

void hs_config_show(const struct hs_config *c, FILE *out)
{
    fprintf(out, "%-22s %-30s %-30s source=%s%s\n", "config", "HOVERSYNC_CONFIG", c->file,
            from_name(c->file_from), c->file_state < 0 ? " (not found: built-in defaults)" : "");
    for (int k = 0; k < CFG_COUNT; k++) {
        const struct hs_cfg_def *d = &hs_cfg_defs[k];
        const char *v = c->value[k];
        char name[HS_CFG_NAME_MAX], src[HS_CFG_LABEL_MAX];
        char *shown = NULL;
        if (d->type == HS_CFG_SECRET)
            v = v ? "(set, redacted)" : "(unset)";
        else if (!v)
            v = "(unset)";
        else /* a URL may carry a password: https://user:***@host */
            v = shown = hs_url_redact(v);
        hs_cfg_name(d, name, sizeof name);
        hs_config_source(c, k, src, sizeof src);
        fprintf(out, "%-22s %-30s %-30s source=%s\n", name, d->env, v, src);
        free(shown);
    }
}
