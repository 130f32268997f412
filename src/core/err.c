/* err.c: names of the project's error codes and the hs_fail() helper. */
#include <stdarg.h>
#include <stdio.h>

#include "hoversync.h"

const char *hs_err_name(int code)
{
    switch (code) {
    case HS_OK:
        return "ok";
    case HS_ERR_INVALID:
        return "invalid";
    case HS_ERR_PARSE:
        return "parse";
    case HS_ERR_TOOBIG:
        return "too_big";
    case HS_ERR_IO:
        return "io";
    case HS_ERR_NETWORK:
        return "network";
    case HS_ERR_TRUNCATED:
        return "truncated";
    case HS_ERR_HTTP:
        return "http";
    case HS_ERR_NOT_FOUND:
        return "not_found";
    case HS_ERR_UNAUTHORIZED:
        return "unauthorized";
    case HS_ERR_FORBIDDEN:
        return "forbidden";
    case HS_ERR_RATE_LIMITED:
        return "rate_limited";
    case HS_ERR_SERVER:
        return "server_error";
    case HS_ERR_NO_CREDENTIALS:
        return "no_credentials";
    case HS_ERR_INVALID_GRANT:
        return "invalid_grant";
    case HS_ERR_DB:
        return "db";
    case HS_ERR_BUSY:
        return "busy";
    case HS_ERR_CONFLICT:
        return "conflict";
    case HS_ERR_UNPROCESSABLE:
        return "unprocessable";
    case HS_ERR_INTERNAL:
        return "internal";
    }
    return "unknown";
}

int hs_fail(struct hs_error *err, hs_err code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        /* Truncation of a message is acceptable: it is for humans. */
        (void)vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}
