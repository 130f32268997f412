/* log.h: one-line key=value logging. The level is checked before arguments are formatted
 * (redis serverLog). Never pass tokens or secrets: use hs_redact() for anything credential-like. */
#ifndef HS_CORE_LOG_H
#define HS_CORE_LOG_H

#include <stdio.h>

enum hs_log_level {
    HS_LOG_DEBUG = 0,
    HS_LOG_INFO = 1,
    HS_LOG_WARN = 2,
    HS_LOG_ERROR = 3,
    HS_LOG_OFF = 4
};

extern int hs_log_level;

void hs_log_set_level(int level);
/* Parses "debug|info|warn|error|off"; returns -1 for anything else. */
int hs_log_level_parse(const char *s);
void hs_log_set_file(FILE *f);
void hs_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define hs_log(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) >= hs_log_level)                                                               \
            hs_log_write((level), __VA_ARGS__);                                                    \
    } while (0)

#define hs_debug(...)     hs_log(HS_LOG_DEBUG, __VA_ARGS__)
#define hs_info(...)      hs_log(HS_LOG_INFO, __VA_ARGS__)
#define hs_warn(...)      hs_log(HS_LOG_WARN, __VA_ARGS__)
#define hs_error_log(...) hs_log(HS_LOG_ERROR, __VA_ARGS__)

#endif
