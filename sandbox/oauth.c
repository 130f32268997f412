/* oauth.c: codes and tokens; see oauth.h. Tokens sit in two small hash tables (by access and by
 * refresh token); codes in a list pruned as they expire. Nothing is ever persisted. */
#include "oauth.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/str.h"

#define BUCKETS     1024u
#define TOKEN_BYTES 32

struct tok {
    char access[SB_TOKEN_BUF], refresh[SB_TOKEN_BUF];
    char client_id[128];
    int64_t org_id;
    int64_t expires_ms;
    bool refresh_revoked;
    struct tok *next_a, *next_r;
};

struct code {
    char code[SB_TOKEN_BUF];
    char client_id[128];
    char *redirect_uri;
    int64_t org_id;
    int64_t expires_ms;
    bool used;
    struct code *next;
};

struct sb_oauth {
    pthread_mutex_t lock;
    char *client_id, *client_secret;
    int64_t lifetime_s;
    struct tok *by_access[BUCKETS], *by_refresh[BUCKETS];
    struct code *codes;
};

void sb_random_bytes(unsigned char *out, size_t n)
{
    if (RAND_bytes(out, (int)n) == 1)
        return;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    size_t got = 0;
    while (fd >= 0 && got < n) {
        ssize_t r = read(fd, out + got, n - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (fd >= 0)
        close(fd);
    if (got < n) {
        fputs("hover-sandbox: no source of random bytes\n", stderr);
        abort();
    }
}

void sb_random_token(size_t n, char *out, size_t outn)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char raw[64];
    if (n > sizeof raw)
        n = sizeof raw;
    sb_random_bytes(raw, n);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n && o + 1 < outn; i++) {
        acc = (acc << 8) | raw[i];
        bits += 8;
        while (bits >= 6 && o + 1 < outn) {
            out[o++] = b64[(acc >> (bits - 6)) & 63];
            bits -= 6;
        }
    }
    if (bits > 0 && o + 1 < outn)
        out[o++] = b64[(acc << (6 - bits)) & 63];
    out[o] = '\0';
}

static unsigned hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % BUCKETS;
}

struct sb_oauth *sb_oauth_new(const char *client_id, const char *client_secret, int64_t lifetime_s)
{
    struct sb_oauth *o = hs_calloc(1, sizeof *o);
    pthread_mutex_init(&o->lock, NULL);
    o->client_id = hs_strdup(client_id);
    o->client_secret = hs_strdup(client_secret);
    o->lifetime_s = lifetime_s;
    return o;
}

void sb_oauth_free(struct sb_oauth *o)
{
    if (!o)
        return;
    for (unsigned i = 0; i < BUCKETS; i++) {
        struct tok *t = o->by_access[i];
        while (t) {
            struct tok *next = t->next_a;
            free(t);
            t = next;
        }
    }
    struct code *c = o->codes;
    while (c) {
        struct code *next = c->next;
        free(c->redirect_uri);
        free(c);
        c = next;
    }
    free(o->client_id);
    free(o->client_secret);
    pthread_mutex_destroy(&o->lock);
    free(o);
}

void sb_oauth_set_lifetime(struct sb_oauth *o, int64_t lifetime_s)
{
    pthread_mutex_lock(&o->lock);
    o->lifetime_s = lifetime_s;
    pthread_mutex_unlock(&o->lock);
}

int64_t sb_oauth_lifetime(struct sb_oauth *o)
{
    pthread_mutex_lock(&o->lock);
    int64_t s = o->lifetime_s;
    pthread_mutex_unlock(&o->lock);
    return s;
}

const char *sb_oauth_client_id(const struct sb_oauth *o)
{
    return o->client_id;
}

bool sb_oauth_client_known(const struct sb_oauth *o, const char *client_id)
{
    return client_id && strcmp(client_id, o->client_id) == 0;
}

bool sb_oauth_client_auth(const struct sb_oauth *o, const char *client_id, const char *secret)
{
    if (!sb_oauth_client_known(o, client_id) || !secret)
        return false;
    size_t a = strlen(secret), b = strlen(o->client_secret);
    return a == b && CRYPTO_memcmp(secret, o->client_secret, a) == 0;
}

static void prune_codes(struct sb_oauth *o, int64_t now_ms)
{
    struct code **pp = &o->codes;
    while (*pp) {
        struct code *c = *pp;
        if (c->expires_ms <= now_ms) {
            *pp = c->next;
            free(c->redirect_uri);
            free(c);
        } else {
            pp = &c->next;
        }
    }
}

void sb_oauth_new_code(struct sb_oauth *o, const char *client_id, const char *redirect_uri,
                       int64_t org_id, int64_t now_ms, char out[SB_TOKEN_BUF])
{
    struct code *c = hs_calloc(1, sizeof *c);
    sb_random_token(TOKEN_BYTES, c->code, sizeof c->code);
    (void)hs_strlcpy(c->client_id, client_id, sizeof c->client_id);
    c->redirect_uri = hs_strdup(redirect_uri);
    c->org_id = org_id;
    c->expires_ms = now_ms + SB_CODE_LIFETIME_MS;
    memcpy(out, c->code, SB_TOKEN_BUF);
    pthread_mutex_lock(&o->lock);
    prune_codes(o, now_ms);
    c->next = o->codes;
    o->codes = c;
    pthread_mutex_unlock(&o->lock);
}

/* New pair (lock held). */
static void issue(struct sb_oauth *o, const char *client_id, int64_t org_id, int64_t now_ms,
                  struct sb_token_pair *out)
{
    struct tok *t = hs_calloc(1, sizeof *t);
    sb_random_token(TOKEN_BYTES, t->access, sizeof t->access);
    sb_random_token(TOKEN_BYTES, t->refresh, sizeof t->refresh);
    (void)hs_strlcpy(t->client_id, client_id, sizeof t->client_id);
    t->org_id = org_id;
    t->expires_ms = now_ms + o->lifetime_s * 1000;
    unsigned ha = hash(t->access), hr = hash(t->refresh);
    t->next_a = o->by_access[ha];
    o->by_access[ha] = t;
    t->next_r = o->by_refresh[hr];
    o->by_refresh[hr] = t;
    memcpy(out->access, t->access, SB_TOKEN_BUF);
    memcpy(out->refresh, t->refresh, SB_TOKEN_BUF);
    out->expires_in = o->lifetime_s;
    out->created_at = now_ms / 1000;
    out->org_id = org_id;
}

int sb_oauth_redeem_code(struct sb_oauth *o, const char *code, const char *client_id,
                         const char *redirect_uri, int64_t now_ms, struct sb_token_pair *out,
                         const char **why)
{
    int rc = -1;
    pthread_mutex_lock(&o->lock);
    struct code *c = o->codes;
    while (c && strcmp(c->code, code) != 0)
        c = c->next;
    if (!c)
        *why = "The authorization code is invalid";
    else if (c->used)
        *why = "The authorization code was already used";
    else if (c->expires_ms <= now_ms)
        *why = "The authorization code expired";
    else if (strcmp(c->client_id, client_id) != 0)
        *why = "The authorization code was issued to another client";
    else if (strcmp(c->redirect_uri, redirect_uri) != 0)
        *why = "The redirect_uri does not match the one of the authorization request";
    else {
        c->used = true;
        issue(o, client_id, c->org_id, now_ms, out);
        rc = 0;
    }
    pthread_mutex_unlock(&o->lock);
    return rc;
}

int sb_oauth_refresh(struct sb_oauth *o, const char *refresh, const char *client_id, int64_t now_ms,
                     struct sb_token_pair *out, const char **why)
{
    int rc = -1;
    pthread_mutex_lock(&o->lock);
    struct tok *t = o->by_refresh[hash(refresh)];
    while (t && strcmp(t->refresh, refresh) != 0)
        t = t->next_r;
    if (!t)
        *why = "The refresh token is invalid";
    else if (t->refresh_revoked)
        *why = "The refresh token was already used (refresh tokens rotate)";
    else if (strcmp(t->client_id, client_id) != 0)
        *why = "The refresh token was issued to another client";
    else {
        /* The old access token stays valid until it expires; only the refresh token rotates. */
        t->refresh_revoked = true;
        issue(o, client_id, t->org_id, now_ms, out);
        rc = 0;
    }
    pthread_mutex_unlock(&o->lock);
    return rc;
}

void sb_oauth_mint(struct sb_oauth *o, const char *client_id, int64_t org_id, int64_t now_ms,
                   struct sb_token_pair *out)
{
    pthread_mutex_lock(&o->lock);
    issue(o, client_id, org_id, now_ms, out);
    pthread_mutex_unlock(&o->lock);
}

enum sb_token_state sb_oauth_check(struct sb_oauth *o, const char *access, int64_t now_ms,
                                   struct sb_token_info *info)
{
    enum sb_token_state st = SB_TOKEN_UNKNOWN;
    pthread_mutex_lock(&o->lock);
    struct tok *t = o->by_access[hash(access)];
    while (t && strcmp(t->access, access) != 0)
        t = t->next_a;
    if (t) {
        st = t->expires_ms > now_ms ? SB_TOKEN_OK : SB_TOKEN_EXPIRED;
        memcpy(info->client_id, t->client_id, sizeof info->client_id);
        info->org_id = t->org_id;
    }
    pthread_mutex_unlock(&o->lock);
    return st;
}

size_t sb_oauth_expire_all(struct sb_oauth *o, int64_t now_ms)
{
    size_t n = 0;
    pthread_mutex_lock(&o->lock);
    for (unsigned i = 0; i < BUCKETS; i++)
        for (struct tok *t = o->by_access[i]; t; t = t->next_a)
            if (t->expires_ms > now_ms) {
                t->expires_ms = now_ms;
                n++;
            }
    pthread_mutex_unlock(&o->lock);
    return n;
}

json_t *sb_token_pair_json(const struct sb_token_pair *p)
{
    return json_pack("{ss ss sI ss ss sI sI ss}", "access_token", p->access, "token_type", "Bearer",
                     "expires_in", (json_int_t)p->expires_in, "refresh_token", p->refresh, "scope",
                     "all", "created_at", (json_int_t)p->created_at, "owner_id",
                     (json_int_t)p->org_id, "owner_type", "orgs");
}
