/* str.h: checked conversions and small string helpers (no atoi, strcpy and friends here). */
#ifndef HS_CORE_STR_H
#define HS_CORE_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Whole-string integer parse, base 10, range-checked; HS_ERR_PARSE otherwise. */
int hs_parse_i64(const char *s, int64_t *out);
/* Like hs_parse_i64 and then checks min <= v <= max. */
int hs_parse_i64_range(const char *s, int64_t min, int64_t max, int64_t *out);
/* Whole-string finite double. */
int hs_parse_double(const char *s, double *out);
/* Copies src into dst (size n), always terminating; returns HS_ERR_TOOBIG when cut. */
int hs_strlcpy(char *dst, const char *src, size_t n);
bool hs_streq(const char *a, const char *b); /* NULL-safe */
bool hs_starts_with(const char *s, const char *prefix);
/* Case-insensitive ASCII substring search. */
bool hs_contains_ci(const char *haystack, const char *needle);
/* Splits the comma-separated list s in place ("a, b,,c"): each item trimmed of spaces, empty
 * items skipped, appended to items[*n] (pointers into s) while *n < max. HS_ERR_TOOBIG when
 * the list has more items than room (those that fitted are kept). */
int hs_split_list(char *s, const char **items, size_t max, size_t *n);

/* ISO-8601 UTC ("2025-03-16T23:55:50.094Z", fractional part and zone optional, "+00:00" ok)
 * to unix seconds. */
int hs_iso8601_parse(const char *s, int64_t *out);
/* Formats unix seconds (and milliseconds) as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out (>= 25 bytes). */
void hs_iso8601_format(int64_t unix_s, int ms, char *out, size_t n);
/* Accepts "YYYY-MM-DD", an ISO-8601 timestamp or unix seconds. */
int hs_parse_date_arg(const char *s, int64_t *out);

/* Percent-encodes s for a URL query value (RFC 3986 unreserved kept). Caller frees. */
char *hs_url_escape(const char *s);

/* s with the password of every "scheme://user:password@" in it (a URL, or a list of them)
 * replaced by "***", and a user without a password (often a token) by "***" (caller frees). */
char *hs_url_redact(const char *s);

/* Hex of n bytes into out (2n+1 bytes). */
void hs_hex(const unsigned char *in, size_t n, char *out);

/* HTML-escapes & < > " ' (caller frees). */
char *hs_html_escape(const char *s);
/* True if an If-None-Match value names etag (or is "*"); weak prefixes are ignored. */
bool hs_etag_matches(const char *if_none_match, const char *etag);

#endif
