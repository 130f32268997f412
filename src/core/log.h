/* log.h: one-line key=value logging. The level is checked before arguments are formatted
 * (redis serverLog). Never pass tokens or secrets: use hs_redact() for anything credential-like. */
#ifndef HS_CORE_LOG_H
#define HS_CORE_LOG_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum hs_log_level {
    HS_LOG_DEBUG = 0,
    HS_LOG_INFO = 1,
    HS_LOG_WARN = 2,
    HS_LOG_ERROR = 3,
    HS_LOG_OFF = 4
};

/* How a line is written: `TIME level=L text` (text), or one JSON object per line with `time`,
 * `level`, `msg` and each key=value field of the text as a member of its own (json). Both
 * write the same formatted text: what a caller redacted is redacted in either. */
enum hs_log_format { HS_LOG_TEXT = 0, HS_LOG_JSON = 1 };

extern int hs_log_level;

void hs_log_set_level(int level);
/* Parses "debug|info|warn|error|off"; returns -1 for anything else. */
int hs_log_level_parse(const char *s);
void hs_log_set_format(int format);
/* Parses "text|json"; returns -1 for anything else. */
int hs_log_format_parse(const char *s);
void hs_log_set_file(FILE *f);
void hs_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define hs_log(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) >= hs_log_level)                                                               \
            hs_log_write((level), __VA_ARGS__);                                                    \
    } while (0)

/* A rate limit for lines an outsider can provoke (refused requests): at most `per_second`
 * lines a second pass, across every thread that shares the limiter; the others are counted, and
 * the next line that passes carries " suppressed=N" (how many were held back since the last
 * one), so nothing goes unaccounted for. Declare one per kind of line:
 *   static struct hs_log_limiter refused = HS_LOG_LIMITER_INIT(5);
 *   hs_log_limited(&refused, HS_LOG_WARN, "webhook refused status=%d", 401); */
struct hs_log_limiter {
    pthread_mutex_t lock;
    int per_second;
    int64_t window_ms; /* start of the current one-second window (monotonic ms) */
    int passed;        /* lines passed in it */
    int64_t suppressed;
};
#define HS_LOG_LIMITER_INIT(per_second)                                                            \
    {                                                                                              \
        PTHREAD_MUTEX_INITIALIZER, (per_second), 0, 0, 0                                           \
    }

/* Whether a line may be written at now_ms (monotonic); when it may, *suppressed gets the count
 * held back before it (and the count starts again). hs_log_limit_take reads the clock. */
bool hs_log_limit_take_at(struct hs_log_limiter *l, int64_t now_ms, int64_t *suppressed);
bool hs_log_limit_take(struct hs_log_limiter *l, int64_t *suppressed);
/* Writes one line through the limiter (the level is checked first, as hs_log does). */
void hs_log_limited_write(struct hs_log_limiter *l, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define hs_log_limited(lim, level, ...)                                                            \
    do {                                                                                           \
        if ((level) >= hs_log_level)                                                               \
            hs_log_limited_write((lim), (level), __VA_ARGS__);                                     \
    } while (0)

#define hs_debug(...)     hs_log(HS_LOG_DEBUG, __VA_ARGS__)
#define hs_info(...)      hs_log(HS_LOG_INFO, __VA_ARGS__)
#define hs_warn(...)      hs_log(HS_LOG_WARN, __VA_ARGS__)
#define hs_error_log(...) hs_log(HS_LOG_ERROR, __VA_ARGS__)

#endif
