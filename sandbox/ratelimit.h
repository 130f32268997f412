/* ratelimit.h: the sandbox's request budget per OAuth client (or per IP when a request carries no
 * valid token), as Hover enforces it: a sliding window of `limit` requests per `window_ms`. */
#ifndef HS_SANDBOX_RATELIMIT_H
#define HS_SANDBOX_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

/* Bounds of the limit: the window keeps one timestamp per allowed request and key. */
#define SB_RATELIMIT_MAX 1000000

struct sb_ratelimit;

/* limit 0 turns limiting off. Thread-safe. */
struct sb_ratelimit *sb_ratelimit_new(int64_t limit, int64_t window_ms);
void sb_ratelimit_free(struct sb_ratelimit *rl);
/* Changes the settings and forgets every key's history. */
void sb_ratelimit_configure(struct sb_ratelimit *rl, int64_t limit, int64_t window_ms);
void sb_ratelimit_settings(struct sb_ratelimit *rl, int64_t *limit, int64_t *window_ms);
/* Counts one request of `key` at monotonic time now_ms. Returns true when it is within budget;
 * otherwise false (the request is not counted) and *retry_after_s (>= 1) says when the oldest
 * counted request leaves the window. */
bool sb_ratelimit_hit(struct sb_ratelimit *rl, const char *key, int64_t now_ms,
                      int64_t *retry_after_s);

#endif
