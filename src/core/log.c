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

void hs_log_write(int level, const char *fmt, ...)
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
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap); /* long lines are cut */
    va_end(ap);
    pthread_mutex_lock(&log_lock);
    FILE *f = log_file ? log_file : stderr;
    fputs(line, f);
    fputc('\n', f);
    fflush(f);
    pthread_mutex_unlock(&log_lock);
}
