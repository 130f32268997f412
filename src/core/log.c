/* log.c: see log.h. Lines look like `2026-11-27T10:00:00.123Z level=info msg...`. */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

int hs_log_level = HS_LOG_WARN;
static FILE *log_file;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void hs_log_set_level(int level)
{
    hs_log_level = level;
}

int hs_log_level_parse(const char *s)
{
    for (int i = 0; i <= HS_LOG_OFF; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

void hs_log_set_file(FILE *f)
{
    log_file = f;
}

__attribute__((format(printf, 3, 0))) static void log_vwrite(int level, const char *suffix,
                                                             const char *fmt, va_list ap)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    int m =
        snprintf(line + n, sizeof line - (size_t)n, ".%03dZ level=%s ", (int)(tv.tv_usec / 1000),
                 level_names[level < 0 || level > HS_LOG_OFF ? HS_LOG_ERROR : level]);
    if (m > 0)
        n += m;
    (void)vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap); /* long lines are cut */
    pthread_mutex_lock(&log_lock);
    FILE *f = log_file ? log_file : stderr;
    fputs(line, f);
    if (suffix)
        fputs(suffix, f);
    fputc('\n', f);
    fflush(f);
    pthread_mutex_unlock(&log_lock);
}

void hs_log_write(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, NULL, fmt, ap);
    va_end(ap);
}

bool hs_log_limit_take_at(struct hs_log_limiter *l, int64_t now_ms, int64_t *suppressed)
{
    pthread_mutex_lock(&l->lock);
    if (l->window_ms == 0 || now_ms - l->window_ms >= 1000 || now_ms < l->window_ms) {
        l->window_ms = now_ms;
        l->passed = 0;
    }
    bool pass = l->passed < l->per_second;
    if (pass) {
        l->passed++;
        *suppressed = l->suppressed;
        l->suppressed = 0;
    } else {
        l->suppressed++;
    }
    pthread_mutex_unlock(&l->lock);
    return pass;
}

bool hs_log_limit_take(struct hs_log_limiter *l, int64_t *suppressed)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    /* +1: 0 means "no window yet" */
    int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + 1;
    return hs_log_limit_take_at(l, now_ms, suppressed);
}

void hs_log_limited_write(struct hs_log_limiter *l, int level, const char *fmt, ...)
{
    int64_t suppressed = 0;
    if (!hs_log_limit_take(l, &suppressed))
        return;
    char suffix[48] = "";
    if (suppressed > 0)
        (void)snprintf(suffix, sizeof suffix, " suppressed=%lld", (long long)suppressed);
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, suffix[0] ? suffix : NULL, fmt, ap);
    va_end(ap);
}
