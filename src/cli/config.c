/* config.c: the configuration table and its parsing; see config.h. */
#include "cli/config.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/str.h"

/* The modal's files: the source tree's web/ (set by the build), unless configured. */
#ifndef HOVERSYNC_WEB_DIR
#define HOVERSYNC_WEB_DIR "web"
#endif

const struct hs_cfg_def hs_cfg_defs[CFG_COUNT] = {
    {CFG_DB, "--db", "HOVERSYNC_DB", HS_CFG_STRING, "./hoversync.db", 0, 0,
     "SQLite database file (created if missing)"},
    {CFG_DATA_DIR, "--data-dir", "HOVERSYNC_DATA_DIR", HS_CFG_STRING, "./hoversync-data", 0, 0,
     "directory of the stored artifact files (content-addressed by sha256)"},
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
     "requests per minute this process may send to Hover (0 = no client-side limit)"},
    {CFG_MAX_ATTEMPTS, "--max-attempts", "HOVERSYNC_MAX_ATTEMPTS", HS_CFG_INT, "5", 1, 20,
     "attempts per request on 429, 5xx and connection errors"},
    {CFG_TIMEOUT, "--timeout", "HOVERSYNC_TIMEOUT", HS_CFG_INT, "60", 1, 600,
     "seconds before one HTTP request to Hover is abandoned"},
    {CFG_LOG_LEVEL, "--log-level", "HOVERSYNC_LOG_LEVEL", HS_CFG_STRING, "warn", 0, 0,
     "debug, info, warn, error or off (logs go to stderr)"},
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
    {CFG_PENDING_INTERVAL, "--pending-interval", "HOVERSYNC_PENDING_INTERVAL", HS_CFG_INT, "30", 0,
     86400, "seconds between two runs of the pending selections by the service (0 = never)"},
    {CFG_RECONCILE_INTERVAL, "--reconcile-interval", "HOVERSYNC_RECONCILE_INTERVAL", HS_CFG_INT,
     "300", 0, 86400,
     "serve, worker: seconds between two reconciliation passes (List Jobs updated since the "
     "last one, for webhook events that never arrived; 0 = off)"},
    {CFG_EVENT_WORKERS, "--event-workers", "HOVERSYNC_EVENT_WORKERS", HS_CFG_INT, "2", 1, 64,
     "serve, worker: threads syncing the jobs that webhook events and reconciliation name"},
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
     "serve, worker: the budget's window is a minute plus this, so that requests reaching Hover "
     "late still fit its 60 s window"},
    {CFG_RUN_LEASE, "--run-lease", "HOVERSYNC_RUN_LEASE", HS_CFG_INT, "60", 2, 3600,
     "seconds of a sync run's lease: its process renews it while the run goes on, and a run "
     "whose lease lapsed (its process died) shows as interrupted; keep it well above the clock "
     "difference between machines sharing the store"},
};

void hs_config_init(struct hs_config *c)
{
    for (int i = 0; i < CFG_COUNT; i++) {
        const struct hs_cfg_def *d = &hs_cfg_defs[i];
        c->value[i] = d->dflt;
        c->source[i] = d->dflt ? "default" : "unset";
        const char *e = d->env ? getenv(d->env) : NULL;
        if (e && *e) {
            c->value[i] = e;
            c->source[i] = "env";
        }
    }
}

int hs_config_take_flag(struct hs_config *c, int argc, char **argv, int *i)
{
    const char *arg = argv[*i];
    for (int k = 0; k < CFG_COUNT; k++) {
        const char *flag = hs_cfg_defs[k].flag;
        if (!flag)
            continue;
        size_t fl = strlen(flag);
        if (strncmp(arg, flag, fl) != 0)
            continue;
        if (arg[fl] == '=') {
            c->value[k] = arg + fl + 1;
        } else if (arg[fl] == '\0') {
            if (*i + 1 >= argc) {
                fprintf(stderr, "hoversync: %s needs a value\n", flag);
                return -1;
            }
            c->value[k] = argv[++*i];
        } else {
            continue;
        }
        c->source[k] = "flag";
        return 1;
    }
    return 0;
}

int hs_config_validate(const struct hs_config *c)
{
    for (int k = 0; k < CFG_COUNT; k++) {
        const struct hs_cfg_def *d = &hs_cfg_defs[k];
        const char *v = c->value[k];
        const char *name = d->flag ? d->flag : d->env;
        if (!v)
            continue;
        int64_t n;
        if (d->type == HS_CFG_INT && hs_parse_i64_range(v, d->min, d->max, &n) != 0) {
            fprintf(stderr, "hoversync: %s must be a whole number from %lld to %lld, not '%s'\n",
                    name, (long long)d->min, (long long)d->max, v);
            return -1;
        }
    }
    const char *url = c->value[CFG_HOVER_URL];
    if (!hs_starts_with(url, "https://") && !hs_starts_with(url, "http://")) {
        fprintf(stderr, "hoversync: --hover-url must start with http:// or https://, not '%s'\n",
                url);
        return -1;
    }
    const char *pub = c->value[CFG_PUBLIC_URL];
    if (pub && !hs_starts_with(pub, "https://") && !hs_starts_with(pub, "http://")) {
        fprintf(stderr, "hoversync: --public-url must start with http:// or https://, not '%s'\n",
                pub);
        return -1;
    }
    if (hs_log_level_parse(c->value[CFG_LOG_LEVEL]) < 0) {
        fprintf(stderr, "hoversync: --log-level must be debug, info, warn, error or off\n");
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

void hs_config_print_help(FILE *out)
{
    fputs("Global options (each also an environment variable):\n", out);
    for (int k = 0; k < CFG_COUNT; k++) {
        const struct hs_cfg_def *d = &hs_cfg_defs[k];
        char left[64];
        if (d->flag)
            snprintf(left, sizeof left, "%s %s", d->flag, d->type == HS_CFG_INT ? "N" : "VALUE");
        else
            snprintf(left, sizeof left, "(env only)");
        fprintf(out, "  %-22s %-26s %s", left, d->env, d->help);
        if (d->dflt)
            fprintf(out, " [default: %s]", d->dflt);
        fputc('\n', out);
    }
}

void hs_config_show(const struct hs_config *c, FILE *out)
{
    for (int k = 0; k < CFG_COUNT; k++) {
        const struct hs_cfg_def *d = &hs_cfg_defs[k];
        const char *v = c->value[k];
        if (d->type == HS_CFG_SECRET)
            v = v ? "(set, redacted)" : "(unset)";
        else if (!v)
            v = "(unset)";
        fprintf(out, "%-26s %-30s source=%s\n", d->env, v, c->source[k]);
    }
}
