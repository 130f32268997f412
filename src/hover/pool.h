/* pool.h: one Hover client per connected org (connection key), shared by the threads of the
 * service. Acquire hands each thread its own clone of the connection's client (one token pair,
 * refreshed once for all), so requests of one connection run in parallel; release frees it.
 * Every client of a pool shares one request limiter, so the whole process stays under the
 * integration's budget (120 requests a minute by default) whatever org the work is for. */
#ifndef HS_HOVER_POOL_H
#define HS_HOVER_POOL_H

#include "hover/client.h"

struct hs_client_pool;

/* cfg is the template of every client (credential_key is replaced per connection); the pool
 * copies what it needs. The token store (hs_store_tokens(st)) must outlive the pool. */
int hs_client_pool_new(const struct hs_client_config *cfg, struct hs_token_store tokens,
                       struct hs_client_pool **out, struct hs_error *err);
void hs_client_pool_free(struct hs_client_pool *p);
/* A client of connection `key` for the calling thread (the connection's client is created on
 * first use), until release. */
int hs_client_pool_acquire(struct hs_client_pool *p, const char *key, struct hs_client **out,
                           struct hs_error *err);
void hs_client_pool_release(struct hs_client_pool *p, struct hs_client *c);

/* The counters of every client of the pool, summed (those of the clients released: a client in
 * use by another thread is never read). */
void hs_client_pool_get_stats(struct hs_client_pool *p, struct hs_client_stats *out);
/* The limiter every client of the pool shares (borrowed): other requests to Hover, like the
 * connect flow's code exchange, go through it too. */
struct hs_limiter *hs_client_pool_limiter(struct hs_client_pool *p);

/* The interface the search service and the sync queue take, so they are tested with fakes. */
struct hs_client_provider {
    int (*acquire)(void *ctx, const char *key, struct hs_client **out, struct hs_error *err);
    void (*release)(void *ctx, struct hs_client *c);
    void *ctx;
};
/* A provider backed by a pool. */
struct hs_client_provider hs_client_pool_provider(struct hs_client_pool *p);

#endif
