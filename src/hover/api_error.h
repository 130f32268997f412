/* api_error.h: Hover's HTTP answers as hs_err codes and messages. The one place where an HTTP
 * status becomes an error code (curl's codes are mapped in transport_curl.c). */
#ifndef HS_HOVER_API_ERROR_H
#define HS_HOVER_API_ERROR_H

#include <stdbool.h>
#include <stddef.h>

#include "hoversync.h"

/* The code for a status: 2xx and 304 are HS_OK; 401 UNAUTHORIZED, 403 FORBIDDEN, 404 NOT_FOUND,
 * 422 UNPROCESSABLE, 429 RATE_LIMITED, 5xx SERVER, anything else HS_ERR_HTTP. */
int hs_http_status_code(long status);

/* A readable message from an error body: {"error":"..."} (with error_description),
 * {"error":{"field":"msg"}}, {"errors":{...}} or {"errors":[...]}, {"message":"..."}, or a
 * short plain-text body. Control characters are replaced; out is always terminated. Returns false
 * (and out = "") when the body says nothing useful. */
bool hs_api_error_text(const char *body, size_t len, char *out, size_t n);

/* Fills err with "<what>: HTTP <status>[: <text>]" and http_status, and returns
 * hs_http_status_code(status) (HS_ERR_HTTP for a status that is not an error). */
int hs_api_fail(long status, const char *body, size_t len, const char *what, struct hs_error *err);

#endif
