/* config.h: the one configuration table. Each setting has a flag, an environment variable, a
 * default, bounds and help; the table drives parsing of flags, the environment and the
 * configuration file, `--help`, `config show` (secrets redacted) and the documentation (README.md
 * and hoversync(1), whose coverage of the table a test checks). */
#ifndef HS_CLI_CONFIG_H
#define HS_CLI_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum hs_cfg_type { HS_CFG_STRING, HS_CFG_INT, HS_CFG_SECRET };

enum hs_cfg_id {
    CFG_DB,
    CFG_DATA_DIR,
    CFG_BLOBS,
    CFG_S3_ENDPOINT,
    CFG_S3_REGION,
    CFG_S3_PART_SIZE,
    CFG_BLOBS_REDIRECT,
    CFG_AWS_ACCESS_KEY_ID,
    CFG_AWS_SECRET_ACCESS_KEY,
    CFG_AWS_SESSION_TOKEN,
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
    CFG_LOG_FORMAT,
    CFG_LISTEN,
    CFG_PUBLIC_URL,
    CFG_ALLOW_ORIGINS,
    CFG_API_KEY,
    CFG_WEB_DIR,
    CFG_PENDING_INTERVAL,
    CFG_RECONCILE_INTERVAL,
    CFG_EVENT_WORKERS,
    CFG_DOWNLOAD_SLOTS,
    CFG_CRM_ENDPOINTS,
    CFG_CRM_SECRET,
    CFG_OUTBOX_RETRY_BASE,
    CFG_RATE_MARGIN,
    CFG_HEADER_TIMEOUT,
    CFG_HOVER_WAIT,
    CFG_CALLER_RATE,
    CFG_MAX_CONNECTIONS,
    CFG_ENCRYPTION_KEY,
    CFG_NEW_ENCRYPTION_KEY,
    CFG_RUN_LEASE,
    CFG_WORK_LEASE,
    CFG_ARTIFACTS,
    CFG_KEEP_WEBHOOK_EVENTS,
    CFG_KEEP_SYNC_RUNS,
    CFG_KEEP_OUTBOX,
    CFG_BLOB_GRACE,
    CFG_RETENTION_INTERVAL,
    CFG_DRAIN_TIMEOUT,
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

/* Where a value came from, in increasing precedence. */
enum hs_cfg_from { HS_CFG_UNSET, HS_CFG_DEFAULT, HS_CFG_FILE, HS_CFG_ENV, HS_CFG_FLAG };

/* The configuration file's limits: a file larger than this is refused. */
#define HS_CFG_FILE_MAX  (64 * 1024)
#define HS_CFG_NAME_MAX  64
#define HS_CFG_LABEL_MAX 320

struct hs_config {
    const char *value[CFG_COUNT]; /* effective values (borrowed from argv, env, defaults, file) */
    enum hs_cfg_from from[CFG_COUNT];
    int line[CFG_COUNT];        /* HS_CFG_FILE: the line of the file that set it */
    const char *file;           /* the configuration file: --config, HOVERSYNC_CONFIG or default */
    enum hs_cfg_from file_from; /* which of those */
    int file_state;             /* 0: not loaded yet, 1: read, -1: default file absent */
    char *file_text;            /* the file's bytes, which file values point into (owned) */
};

/* Fills defaults, then the environment (HOVERSYNC_CONFIG names the configuration file). */
void hs_config_init(struct hs_config *c);
/* Frees what the configuration file left (values from it are gone afterwards). */
void hs_config_free(struct hs_config *c);
/* If argv[*i] is a global flag ("--db PATH" or "--db=PATH", and "--config PATH"), consumes it
 * (advancing *i past the value) and returns 1; returns 0 if it is not a global flag; -1 with a
 * message on stderr for a missing value. */
int hs_config_take_flag(struct hs_config *c, int argc, char **argv, int *i);
/* Reads the configuration file (--config, HOVERSYNC_CONFIG or the built-in default): its values
 * fill what neither a flag nor the environment set. The default file may be absent; a named one
 * must exist. On a problem prints "hoversync: FILE:LINE: reason" and returns -1. */
int hs_config_load_file(struct hs_config *c);
/* The parser behind hs_config_load_file, on the file's bytes (len of them; path names it in
 * messages). Nothing is applied unless every line is good: one `name = value` per line, blank
 * lines, comments from a '#' at the start or after a blank; names as hs_cfg_name() gives them;
 * no secret, unknown or repeated name, no empty value, no control byte. Fails with
 * HS_ERR_PARSE (err: "PATH:LINE: reason") or HS_ERR_TOOBIG. */
struct hs_error;
int hs_config_parse_file(struct hs_config *c, const char *path, const char *data, size_t len,
                         struct hs_error *err);
/* The option's name in the configuration file: the long flag without its dashes
 * ("rate-limit"); for an option without a flag, its variable without the HOVERSYNC_ or HOVER_
 * prefix, in lower case with dashes ("allow-origins"). */
void hs_cfg_name(const struct hs_cfg_def *d, char *out, size_t n);
/* Checks one value of option id (type, bounds, form); on a problem writes a reason such as
 * "must be a whole number from 0 to 100000, not 'x'" into msg and returns -1. */
int hs_config_check_value(enum hs_cfg_id id, const char *v, char *msg, size_t n);
/* Checks every set value; prints the first problem, naming where the value came from (the
 * flag, the variable or FILE:LINE), and returns -1. */
int hs_config_validate(const struct hs_config *c);
const char *hs_config_str(const struct hs_config *c, enum hs_cfg_id id);
int64_t hs_config_int(const struct hs_config *c, enum hs_cfg_id id);
/* "flag", "env", "file:PATH:LINE", "default" or "unset" into out. */
void hs_config_source(const struct hs_config *c, enum hs_cfg_id id, char *out, size_t n);
void hs_config_print_help(FILE *out);
/* `config show`: the configuration file, then every setting with its file name, variable, value
 * and source; secrets print as "(set, redacted)" / "(unset)". */
void hs_config_show(const struct hs_config *c, FILE *out);

#endif
