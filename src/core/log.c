/* log.c: see log.h. Lines look like `2026-11-27T10:00:00.123Z level=info msg...`, or with
 * --log-format json `{"time":"2026-11-27T10:00:00.123Z","level":"info","msg":...}`. */
#include "log.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/mem.h"

#define LINE_MAX_BYTES 2048
#define KEY_MAX        64

int hs_log_level = HS_LOG_WARN;
static int log_format = HS_LOG_TEXT;
static FILE *log_file;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};
static const char *const format_names[] = {"text", "json"};

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

void hs_log_set_format(int format)
{
    log_format = format == HS_LOG_JSON ? HS_LOG_JSON : HS_LOG_TEXT;
}

int hs_log_format_parse(const char *s)
{
    for (int i = 0; i <= HS_LOG_JSON; i++)
        if (strcmp(s, format_names[i]) == 0)
            return i;
    return -1;
}

/* A JSON string of n bytes of s (hs_json_text: bytes that are not UTF-8 become '?'). */
static json_t *json_text(const char *s, size_t n)
{
    char *copy = hs_strndup(s, n);
    json_t *j = hs_json_text(copy);
    free(copy);
    return j;
}

static bool key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

/* Whether p starts `key=`. */
static bool key_at(const char *p)
{
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_'))
        return false;
    while (key_char(*p))
        p++;
    return *p == '=';
}

/* The closing quote of a quoted value that starts at p (or the end of the text). Values are
 * written unescaped, so a quote inside one is told from the closing one by what follows: the
 * end, or a blank and the next key=; failing that, the first quote before a blank. */
static const char *quote_end(const char *p)
{
    const char *first = NULL;
    for (const char *q = p; *q; q++) {
        if (*q != '"')
            continue;
        if (q[1] == '\0' || (q[1] == ' ' && key_at(q + 2)))
            return q;
        if (q[1] == ' ' && !first)
            first = q;
    }
    return first ? first : p + strlen(p);
}

/* One key=value field of a line at p, as the log macros write them: key=word or
 * key="text with spaces" (see quote_end). Returns
 * the position after it and fills the key (NUL-terminated) and value; NULL when p starts a
 * plain word. */
static const char *field_at(const char *p, char key[KEY_MAX + 1], const char **v, size_t *vlen)
{
    if (!key_at(p))
        return NULL;
    size_t k = strcspn(p, "=");
    if (k >= KEY_MAX)
        return NULL;
    memcpy(key, p, k);
    key[k] = '\0';
    p += k + 1;
    if (*p == '"') {
        const char *q = quote_end(++p);
        *v = p;
        *vlen = (size_t)(q - p);
        return *q ? q + 1 : q;
    }
    *v = p;
    while (*p && *p != ' ')
        p++;
    *vlen = (size_t)(p - *v);
    return p;
}

/* The line as one JSON object: time, level, msg, then each key=value field of text as a member
 * (a field named time or level gets a trailing '_'). msg is the text's plain words, then its
 * msg= field after ": "; the whole text when it has neither. NULL when out of memory. */
static char *json_line(const char *time, const char *level, const char *text)
{
    json_t *o = json_object();
    struct hs_buf words;
    hs_buf_init(&words, LINE_MAX_BYTES * 2);
    json_object_set_new(o, "time", json_string(time));
    json_object_set_new(o, "level", json_string(level));
    json_object_set_new(o, "msg", json_null()); /* its place: filled below */
    const char *msg = NULL, *p = text;
    size_t msg_len = 0;
    while (*p) {
        if (*p == ' ') {
            p++;
            continue;
        }
        char key[KEY_MAX + 2];
        const char *v = NULL;
        size_t vlen = 0;
        const char *next = field_at(p, key, &v, &vlen);
        if (next) {
            if (strcmp(key, "msg") == 0) {
                msg = v;
                msg_len = vlen;
            } else {
                if (strcmp(key, "time") == 0 || strcmp(key, "level") == 0)
                    memcpy(key + strlen(key), "_", 2);
                json_object_set_new(o, key, json_text(v, vlen));
            }
            p = next;
            continue;
        }
        const char *w = p;
        while (*p && *p != ' ')
            p++;
        if (words.len)
            (void)hs_buf_appends(&words, " ");
        (void)hs_buf_append(&words, w, (size_t)(p - w));
    }
    if (msg) {
        if (words.len)
            (void)hs_buf_appends(&words, ": ");
        (void)hs_buf_append(&words, msg, msg_len);
    }
    const char *m = words.len ? hs_buf_str(&words) : text;
    json_object_set_new(o, "msg", json_text(m, strlen(m)));
    hs_buf_free(&words);
    char *out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return out;
}

__attribute__((format(printf, 3, 0))) static void log_vwrite(int level, const char *suffix,
                                                             const char *fmt, va_list ap)
{
    char line[LINE_MAX_BYTES];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    int m = snprintf(line + n, sizeof line - (size_t)n, ".%03dZ", (int)(tv.tv_usec / 1000));
    if (m > 0)
        n += m;
    size_t time_len = (size_t)n;
    const char *name = level_names[level < 0 || level > HS_LOG_OFF ? HS_LOG_ERROR : level];
    m = snprintf(line + n, sizeof line - (size_t)n, " level=%s ", name);
    if (m > 0)
        n += m;
    size_t text_at = (size_t)n;
    (void)vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap); /* long lines are cut */
    if (suffix) {
        size_t len = strlen(line);
        (void)snprintf(line + len, sizeof line - len, "%s", suffix);
    }
    char *json = NULL;
    if (log_format == HS_LOG_JSON) {
        line[time_len] = '\0';
        json = json_line(line, name, line + text_at);
        line[time_len] = ' ';
    }
    pthread_mutex_lock(&log_lock);
    FILE *f = log_file ? log_file : stderr;
    fputs(json ? json : line, f);
    fputc('\n', f);
    fflush(f);
    pthread_mutex_unlock(&log_lock);
    free(json);
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
