/* pool.c: the service's Hover clients, one per connection key (pool.h).
 *
 * A mutex guards the map. Each entry holds the connection's client, created on first use outside
 * the map lock (hs_client_new reads the token store) behind a placeholder entry, so that a second
 * thread asking for the same key waits for it instead of creating a twin. An acquire hands out a
 * clone of it (hs_client_clone: the same token pair, counters of its own), so the requests of one
 * connection run in parallel; a release adds the clone's counters to the entry's. Every client
 * borrows the pool's one limiter. */
#include "hover/pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/str.h"
#include "hover/limiter.h"

struct entry {
    char *key;
    struct hs_client *client;     /* the original of the clones; NULL while being created */
    pthread_cond_t cond;          /* signalled when the creation ends */
    struct hs_client_stats stats; /* of the clones released */
    struct entry *next;
};

struct hs_client_pool {
    pthread_mutex_t lock;
    struct entry *entries;
    struct hs_token_store tokens;
    struct hs_limiter *limiter;
    /* The template: strings are copies owned by the pool. */
    struct hs_client_config cfg;
    char *base_url, *client_id, *client_secret, *template_key;
    char *initial_access, *initial_refresh, *as_user_email;
};

int hs_client_pool_new(const struct hs_client_config *cfg, struct hs_token_store tokens,
                       struct hs_client_pool **out, struct hs_error *err)
{
    if (!cfg || !cfg->base_url || !*cfg->base_url)
        return hs_fail(err, HS_ERR_INVALID, "a client pool needs the Hover base URL");
    struct hs_client_pool *p = hs_calloc(1, sizeof *p);
    pthread_mutex_init(&p->lock, NULL);
    p->tokens = tokens;
    p->cfg = *cfg;
    p->base_url = hs_strdup(cfg->base_url);
    p->client_id = hs_strdup(cfg->client_id);
    p->client_secret = hs_strdup(cfg->client_secret);
    p->template_key = hs_strdup(cfg->credential_key ? cfg->credential_key : "default");
    p->initial_access = hs_strdup(cfg->initial_access_token);
    p->initial_refresh = hs_strdup(cfg->initial_refresh_token);
    p->as_user_email = hs_strdup(cfg->as_user_email);
    p->cfg.base_url = p->base_url;
    p->cfg.client_id = p->client_id;
    p->cfg.client_secret = p->client_secret;
    p->cfg.as_user_email = p->as_user_email;
    p->cfg.credential_key = NULL;
    p->cfg.initial_access_token = NULL;
    p->cfg.initial_refresh_token = NULL;
    /* One budget for the whole integration: Hover counts every request of the OAuth client. */
    if (cfg->limiter) {
        p->limiter = NULL; /* borrowed: the caller's */
        p->cfg.limiter = cfg->limiter;
    } else {
        p->limiter = hs_limiter_new(cfg->rate_per_minute, 60000, hs_clock_system());
        p->cfg.limiter = p->limiter;
    }
    *out = p;
    return HS_OK;
}

void hs_client_pool_free(struct hs_client_pool *p)
{
    if (!p)
        return;
    struct entry *e = p->entries;
    while (e) {
        struct entry *next = e->next;
        hs_client_free(e->client);
        pthread_cond_destroy(&e->cond);
        free(e->key);
        free(e);
        e = next;
    }
    hs_limiter_free(p->limiter);
    pthread_mutex_destroy(&p->lock);
    free(p->base_url);
    free(p->client_id);
    free(p->client_secret);
    free(p->template_key);
    if (p->initial_access)
        memset(p->initial_access, 0, strlen(p->initial_access));
    if (p->initial_refresh)
        memset(p->initial_refresh, 0, strlen(p->initial_refresh));
    free(p->initial_access);
    free(p->initial_refresh);
    free(p->as_user_email);
    free(p);
}

static struct entry *find(struct hs_client_pool *p, const char *key)
{
    for (struct entry *e = p->entries; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

int hs_client_pool_acquire(struct hs_client_pool *p, const char *key, struct hs_client **out,
                           struct hs_error *err)
{
    if (!key || !*key)
        key = p->template_key;
    pthread_mutex_lock(&p->lock);
    struct entry *e = find(p, key);
    /* A creation that fails removes the entry: look it up again after each wait. */
    while (e && !e->client) {
        pthread_cond_wait(&e->cond, &p->lock);
        e = find(p, key);
    }
    if (e) {
        int rc = hs_client_clone(e->client, out);
        pthread_mutex_unlock(&p->lock);
        return rc;
    }
    e = hs_calloc(1, sizeof *e);
    e->key = hs_strdup(key);
    pthread_cond_init(&e->cond, NULL);
    e->next = p->entries;
    p->entries = e;
    pthread_mutex_unlock(&p->lock);

    struct hs_client_config cc = p->cfg;
    cc.credential_key = e->key;
    /* The configured initial pair belongs to the configured connection only: another org must
     * never be seeded with it. */
    if (strcmp(e->key, p->template_key) == 0) {
        cc.initial_access_token = p->initial_access;
        cc.initial_refresh_token = p->initial_refresh;
    }
    struct hs_client *c = NULL;
    int rc = hs_client_new(&cc, p->tokens, NULL, NULL, &c, err);

    pthread_mutex_lock(&p->lock);
    if (rc != HS_OK) {
        struct entry **pp = &p->entries;
        while (*pp != e)
            pp = &(*pp)->next;
        *pp = e->next;
        /* Waiters wake, find no entry, and try to create it themselves. */
        pthread_cond_broadcast(&e->cond);
        pthread_mutex_unlock(&p->lock);
        /* Woken waiters look the key up again and never touch e; destroying a condition
         * variable nobody is blocked on is safe (outside the lock: they need it to return). */
        free(e->key);
        pthread_cond_destroy(&e->cond);
        free(e);
        return rc;
    }
    e->client = c;
    pthread_cond_broadcast(&e->cond);
    rc = hs_client_clone(c, out);
    pthread_mutex_unlock(&p->lock);
    return rc;
}

void hs_client_pool_release(struct hs_client_pool *p, struct hs_client *c)
{
    if (!p || !c)
        return;
    struct hs_client_stats st;
    hs_client_get_stats(c, &st);
    const char *key = hs_client_credential_key(c);
    pthread_mutex_lock(&p->lock);
    struct entry *e = find(p, key);
    if (e) {
        e->stats.requests += st.requests;
        for (int k = 0; k < HS_SC_COUNT; k++)
            e->stats.by_status[k] += st.by_status[k];
        e->stats.retries += st.retries;
        e->stats.refreshes += st.refreshes;
        e->stats.rate_limit_waits += st.rate_limit_waits;
        e->stats.waited_ms += st.waited_ms;
    }
    pthread_mutex_unlock(&p->lock);
    hs_client_free(c);
}

void hs_client_pool_get_stats(struct hs_client_pool *p, struct hs_client_stats *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&p->lock);
    for (struct entry *e = p->entries; e; e = e->next) {
        out->requests += e->stats.requests;
        for (int k = 0; k < HS_SC_COUNT; k++)
            out->by_status[k] += e->stats.by_status[k];
        out->retries += e->stats.retries;
        out->refreshes += e->stats.refreshes;
        out->rate_limit_waits += e->stats.rate_limit_waits;
        out->waited_ms += e->stats.waited_ms;
    }
    pthread_mutex_unlock(&p->lock);
}

struct hs_limiter *hs_client_pool_limiter(struct hs_client_pool *p)
{
    return p->cfg.limiter;
}

static int provider_acquire(void *ctx, const char *key, struct hs_client **out,
                            struct hs_error *err)
{
    return hs_client_pool_acquire(ctx, key, out, err);
}

static void provider_release(void *ctx, struct hs_client *c)
{
    hs_client_pool_release(ctx, c);
}

struct hs_client_provider hs_client_pool_provider(struct hs_client_pool *p)
{
    struct hs_client_provider prov = {
        .acquire = provider_acquire,
        .release = provider_release,
        .ctx = p,
    };
    return prov;
}
