/* config.h: the one configuration table. Each setting has a flag, an environment variable, a
 * default, bounds and help; the table drives parsing, `--help`, `config show` (secrets redacted)
 * and docs/CONFIG.md. */
#ifndef HS_CLI_CONFIG_H
#define HS_CLI_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum hs_cfg_type { HS_CFG_STRING, HS_CFG_INT, HS_CFG_SECRET };

enum hs_cfg_id {
    CFG_DB,
    CFG_DATA_DIR,
    CFG_HOVER_URL,
    CFG_CLIENT_ID,
    CFG_CLIENT_SECRET,
    CFG_ACCESS_TOKEN,
    CFG_REFRESH_TOKEN,
    CFG_AS_USER,
    CFG_AS_USER_ID,
    CFG_CONNECTION,
    CFG_RATE_LIMIT,
    CFG_MAX_ATTEMPTS,
    CFG_TIMEOUT,
    CFG_LOG_LEVEL,
    CFG_LISTEN,
    CFG_PUBLIC_URL,
    CFG_ALLOW_ORIGINS,
    CFG_API_KEY,
    CFG_WEB_DIR,
    CFG_PENDING_INTERVAL,
    CFG_RECONCILE_INTERVAL,
    CFG_EVENT_WORKERS,
    CFG_CRM_ENDPOINTS,
    CFG_CRM_SECRET,
    CFG_OUTBOX_RETRY_BASE,
    CFG_RATE_MARGIN,
    CFG_RUN_LEASE,
    CFG_COUNT
};

struct hs_cfg_def {
    enum hs_cfg_id id;
    const char *flag; /* NULL: environment only (secrets stay out of `ps`) */
    const char *env;
    enum hs_cfg_type type;
    const char *dflt; /* NULL: unset */
    int64_t min, max;
    const char *help;
};

extern const struct hs_cfg_def hs_cfg_defs[CFG_COUNT];

struct hs_config {
    const char *value[CFG_COUNT];  /* effective values (borrowed from argv/env/defaults) */
    const char *source[CFG_COUNT]; /* "default", "env", "flag" */
};

/* Fills defaults, then the environment. */
void hs_config_init(struct hs_config *c);
/* If argv[*i] is a global flag ("--db PATH" or "--db=PATH"), consumes it (advancing *i past the
 * value) and returns 1; returns 0 if it is not a global flag; -1 with a message on stderr for a
 * missing value. */
int hs_config_take_flag(struct hs_config *c, int argc, char **argv, int *i);
/* Checks types and bounds of every set value; prints the first problem and returns -1. */
int hs_config_validate(const struct hs_config *c);
const char *hs_config_str(const struct hs_config *c, enum hs_cfg_id id);
int64_t hs_config_int(const struct hs_config *c, enum hs_cfg_id id);
void hs_config_print_help(FILE *out);
/* `config show`: every setting with its source; secrets print as "(set)" / "(unset)". */
void hs_config_show(const struct hs_config *c, FILE *out);

#endif
