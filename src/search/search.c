/* search.c: the type-ahead search (search.h): the local index first, Hover only when it is worth
 * one of the 120 requests a minute that every user of the integration shares.
 *
 * Decision, in this order, for a query q (normalised: trimmed, spaces collapsed, ASCII lower
 * case) of connection C and state S:
 *   1. the local index answers (jobs_search), always;
 *   2. Hover is not asked when q has fewer than 3 characters, or for pages after the first;
 *   3. an answer of Hover for (C, S, q) younger than cache_ttl_ms is used as is ("cached");
 *   4. a COMPLETE answer (fewer jobs than asked for: Hover had no more) for (C, S or any state,
 *      q') with q' a prefix of q is younger than cache_ttl_ms: every job matching q matches q',
 *      so Hover's matches are all in the index already ("covered"); jobs that Hover matched by
 *      a substring the index cannot match as a word prefix ("14312 Meadowbrook" for "4312 mea")
 *      are taken from that answer, filtered by Hover's rule (substring of name, address or
 *      capturing user);
 *   5. a request of C failed less than error_backoff_ms ago: local answer with that error;
 *   6. the index has min_local_hits matches or more: they are enough ("enough_local");
 *   7. debounce: the request waits until q is debounce_ms old; if a newer query of the same
 *      session comes meanwhile, this one answers locally at once ("debounced"): the user is
 *      still typing (on a clock other than the system's, a test's, the wait checks every
 *      debounce_step_ms);
 *   8. one request (List Jobs, search=q, per=hover_per, through the provider's client); two
 *      sessions asking the same (C, S, q) at once share it. Its jobs are upserted into the store
 *      (so the index learns them) and the local query runs again.
 *
 * Merge: the local ranking (store.h jobs_search: street line or name first, newest first) over
 * the index, which now holds Hover's jobs too, comes first; jobs Hover matched that the index does
 * not (substring matches) follow in Hover's order; no job twice; at most `per`. Local first so that
 * the list does not reorder what the user already saw, and so that one ranking rules the page.
 *
 * A caller that cannot wait (no_wait: an HTTP connection's thread) gets the answers of rules 1
 * to 6 at once; at rule 7 it gets a ticket instead, and the local answer is kept (HELD_MAX) for
 * the run that resumes the query on a thread that may wait.
 *
 * Locking: one mutex over the cache, the sessions, the kept answers and the stats, never held
 * across the store, Hover or a sleep (the debounce waits on a condition variable of it). */
#include "search/search.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "store/records.h"
#include "store/search.h"

#define Q_MAX_BYTES  200  /* longer search texts are refused */
#define SESSIONS_MAX 1024 /* debounce state of this many typists */
#define HAYSTACK_MAX 2048
#define HELD_MAX     256 /* local answers kept for their query's turn on a Hover worker */

struct cached {
    char *conn, *state, *q; /* state NULL: any */
    int64_t at;             /* mono ms of the answer */
    bool complete, inflight;
    json_t *jobs; /* array of job summaries, Hover's order */
    char **hay;   /* per job: lower-case "name | address | capturing user" */
    size_t n;
};

struct session {
    char *key;
    int64_t seq;     /* bumped by each query of the session */
    int64_t last_at; /* mono ms of its latest query */
};

struct conn_error {
    char *conn;
    int64_t until;
    char code[32];
    char message[256];
};

struct answer {
    json_t *results;
    int64_t *ids;
    size_t n, max;
    bool truncated;
};

/* The local answer of a no_wait run whose query needs Hover's turn: the run that resumes it (on
 * a thread that may wait) takes it instead of asking the index again. */
struct held {
    int64_t ticket; /* 0: a free slot */
    char *q, *session;
    int64_t page, per, seq, arrived, total;
    struct answer a;
};

struct hs_search_service {
    struct hs_search_config cfg;
    struct hs_store *store;
    struct hs_client_provider clients;
    const struct hs_clock *clock;

    pthread_mutex_t lock;
    pthread_cond_t filled; /* an inflight answer arrived (or failed) */
    pthread_cond_t newer;  /* a session has a newer query (debounce), on CLOCK_MONOTONIC */
    struct cached *cache;
    size_t n_cache;
    struct session *sessions;
    size_t n_sessions;
    struct conn_error *errors;
    size_t n_errors;
    struct hs_search_stats stats;
    struct held *held; /* HELD_MAX */
    int64_t tickets;   /* the last ticket given */
};

/* ---- small helpers ---- */

static int64_t now_ms(const struct hs_search_service *s)
{
    return s->clock->mono_ms(s->clock);
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Trimmed, runs of white space as one space, ASCII lower case: what the cache and the prefix
 * rule compare, and what Hover is asked (its search ignores case). */
static char *normalise(const char *q)
{
    size_t n = q ? strlen(q) : 0;
    char *out = hs_malloc(n + 1);
    size_t len = 0;
    bool gap = false;
    for (size_t i = 0; i < n; i++) {
        if (is_space(q[i])) {
            gap = len > 0;
            continue;
        }
        if (gap)
            out[len++] = ' ';
        gap = false;
        out[len++] = lower(q[i]);
    }
    out[len] = '\0';
    return out;
}

/* Characters, not bytes: UTF-8 continuation bytes do not count. */
static size_t char_count(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += (*p & 0xC0) != 0x80;
    return n;
}

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

static bool key_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* ---- job summaries as JSON ---- */

static json_t *jstr(const char *s)
{
    json_t *v = s ? json_string(s) : NULL;
    return v ? v : json_null(); /* NULL or not UTF-8 */
}

static json_t *address_json(const struct hs_address *a)
{
    json_t *o = json_object();
    json_object_set_new(o, "line1", jstr(a->line1));
    json_object_set_new(o, "line2", jstr(a->line2));
    json_object_set_new(o, "city", jstr(a->city));
    json_object_set_new(o, "region", jstr(a->region));
    json_object_set_new(o, "postal_code", jstr(a->postal_code));
    json_object_set_new(o, "country", jstr(a->country));
    /* "4312 Meadow Drive, Unit 4, Santa Maria, CA 93455" */
    struct hs_buf b;
    hs_buf_init(&b, 1024);
    const char *parts[] = {a->line1, a->line2, a->city};
    for (size_t i = 0; i < 3; i++)
        if (parts[i] && *parts[i])
            (void)hs_buf_appendf(&b, "%s%s", b.len ? ", " : "", parts[i]);
    const char *region = or_empty(a->region), *zip = or_empty(a->postal_code);
    if (*region || *zip)
        (void)hs_buf_appendf(&b, "%s%s%s%s", b.len ? ", " : "", region, *region && *zip ? " " : "",
                             zip);
    json_object_set_new(o, "full", jstr(hs_buf_str(&b)));
    hs_buf_free(&b);
    return o;
}

static json_t *summary_json(int64_t id, const char *name, const struct hs_address *a,
                            const char *state, const char *updated_at, int64_t models,
                            int64_t complete)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(id));
    json_object_set_new(o, "name", jstr(name));
    json_object_set_new(o, "address", address_json(a));
    json_object_set_new(o, "reconstruction_state", jstr(state));
    json_object_set_new(o, "updated_at", jstr(updated_at));
    json_object_set_new(o, "models_count", json_integer(models));
    json_object_set_new(o, "complete_models", json_integer(complete));
    return o;
}

static json_t *row_json(const struct hs_job_summary *j)
{
    return summary_json(j->id, j->name, &j->address, j->reconstruction_state, j->updated_at,
                        j->models_count, j->complete_models);
}

static json_t *job_json(const struct hs_job *j)
{
    int64_t complete = 0;
    for (size_t i = 0; i < j->n_models; i++)
        complete += hs_model_is_complete(&j->models[i]);
    return summary_json(j->id, j->name, &j->address, j->reconstruction_state, j->updated_at,
                        (int64_t)j->n_models, complete);
}

static int64_t summary_id(const json_t *o)
{
    return (int64_t)json_integer_value(json_object_get(o, "id"));
}

/* What Hover's search looks in (name, address, capturing user's name and email), lower case,
 * so that a refinement of a complete answer is filtered by Hover's own rule. */
static char *haystack(const struct hs_job *j)
{
    struct hs_buf b;
    hs_buf_init(&b, HAYSTACK_MAX);
    const struct hs_address *a = &j->address;
    (void)hs_buf_appendf(&b, "%s | %s | %s | %s | %s | %s", or_empty(j->name), or_empty(a->line1),
                         or_empty(a->line2), or_empty(a->city), or_empty(a->region),
                         or_empty(a->postal_code));
    json_t *raw = NULL;
    if (j->raw_json &&
        hs_json_parse(j->raw_json, strlen(j->raw_json), HS_JSON_MAX_BYTES, &raw, NULL) == HS_OK) {
        const json_t *u = json_object_get(raw, "user");
        static const char *const keys[] = {"first_name", "last_name", "email"};
        for (size_t i = 0; json_is_object(u) && i < 3; i++) {
            const char *v = json_string_value(json_object_get(u, keys[i]));
            if (v)
                (void)hs_buf_appendf(&b, " | %s", v);
        }
        const json_t *caps = json_object_get(raw, "captures");
        for (size_t i = 0; json_is_array(caps) && i < json_array_size(caps); i++) {
            const char *v =
                json_string_value(json_object_get(json_array_get(caps, i), "capture_by"));
            if (v)
                (void)hs_buf_appendf(&b, " | %s", v);
        }
        json_decref(raw);
    }
    char *h = hs_buf_take(&b, NULL);
    for (char *p = h; *p; p++)
        *p = lower(*p);
    return h;
}

/* ---- the cache (caller holds s->lock) ---- */

static void cached_clear(struct cached *c)
{
    free(c->conn);
    free(c->state);
    free(c->q);
    json_decref(c->jobs);
    for (size_t i = 0; i < c->n; i++)
        free(c->hay[i]);
    free(c->hay);
    memset(c, 0, sizeof *c);
}

static void cache_remove(struct hs_search_service *s, size_t i)
{
    cached_clear(&s->cache[i]);
    s->cache[i] = s->cache[--s->n_cache];
}

static bool fresh(const struct hs_search_service *s, const struct cached *c, int64_t now)
{
    return c->inflight || now - c->at < s->cfg.cache_ttl_ms;
}

static struct cached *cache_find(struct hs_search_service *s, const char *conn, const char *state,
                                 const char *q)
{
    for (size_t i = 0; i < s->n_cache; i++) {
        struct cached *c = &s->cache[i];
        if (strcmp(c->conn, conn) == 0 && key_eq(c->state, state) && strcmp(c->q, q) == 0)
            return c;
    }
    return NULL;
}

/* The complete, fresh answer of the longest prefix of q (same state, or any state). */
static struct cached *cache_covering(struct hs_search_service *s, const char *conn,
                                     const char *state, const char *q, int64_t now)
{
    struct cached *best = NULL;
    for (size_t i = 0; i < s->n_cache; i++) {
        struct cached *c = &s->cache[i];
        if (!c->complete || c->inflight || !fresh(s, c, now) || strcmp(c->conn, conn) != 0)
            continue;
        if (c->state && !key_eq(c->state, state))
            continue;
        if (!hs_starts_with(q, c->q))
            continue;
        if (!best || strlen(c->q) > strlen(best->q))
            best = c;
    }
    return best;
}

/* A slot for a new answer: expired answers go first, then the oldest. */
static struct cached *cache_slot(struct hs_search_service *s, int64_t now)
{
    for (size_t i = 0; i < s->n_cache;) {
        if (!fresh(s, &s->cache[i], now))
            cache_remove(s, i);
        else
            i++;
    }
    if (s->n_cache == s->cfg.cache_max) {
        size_t oldest = SIZE_MAX;
        for (size_t i = 0; i < s->n_cache; i++)
            if (!s->cache[i].inflight &&
                (oldest == SIZE_MAX || s->cache[i].at < s->cache[oldest].at))
                oldest = i;
        if (oldest == SIZE_MAX)
            return NULL; /* every slot is a request in flight: do not cache this one */
        cache_remove(s, oldest);
    }
    struct cached *c = &s->cache[s->n_cache++];
    memset(c, 0, sizeof *c);
    return c;
}

/* ---- sessions (debounce) and errors (caller holds s->lock) ---- */

static struct session *session_get(struct hs_search_service *s, const char *key, bool create,
                                   int64_t now)
{
    for (size_t i = 0; i < s->n_sessions; i++)
        if (strcmp(s->sessions[i].key, key) == 0)
            return &s->sessions[i];
    if (!create)
        return NULL;
    if (s->n_sessions == SESSIONS_MAX) { /* forget the typist idle the longest */
        size_t idle = 0;
        for (size_t i = 1; i < s->n_sessions; i++)
            if (s->sessions[i].last_at < s->sessions[idle].last_at)
                idle = i;
        free(s->sessions[idle].key);
        s->sessions[idle] = s->sessions[--s->n_sessions];
    }
    struct session *x = &s->sessions[s->n_sessions++];
    x->key = hs_strdup(key);
    x->seq = 0;
    x->last_at = now;
    return x;
}

static struct conn_error *error_get(struct hs_search_service *s, const char *conn)
{
    for (size_t i = 0; i < s->n_errors; i++)
        if (strcmp(s->errors[i].conn, conn) == 0)
            return &s->errors[i];
    return NULL;
}

static const char *hover_error_code(int rc)
{
    switch (rc) {
    case HS_ERR_INVALID_GRANT:
    case HS_ERR_NO_CREDENTIALS:
    case HS_ERR_UNAUTHORIZED:
        return "reconnect_required";
    case HS_ERR_RATE_LIMITED:
        return "rate_limited";
    case HS_ERR_NETWORK:
    case HS_ERR_TRUNCATED:
    case HS_ERR_SERVER:
        return "upstream_unavailable";
    default:
        return "upstream_error";
    }
}

static void error_remember(struct hs_search_service *s, const char *conn, int rc, const char *msg,
                           int64_t now)
{
    struct conn_error *e = error_get(s, conn);
    if (!e) {
        s->errors = hs_realloc(s->errors, (s->n_errors + 1) * sizeof *s->errors);
        e = &s->errors[s->n_errors++];
        memset(e, 0, sizeof *e);
        e->conn = hs_strdup(conn);
    }
    e->until = now + s->cfg.error_backoff_ms;
    hs_strlcpy(e->code, hover_error_code(rc), sizeof e->code);
    hs_strlcpy(e->message, msg && *msg ? msg : hs_err_name(rc), sizeof e->message);
}

void hs_search_connection_ok(struct hs_search_service *s, const char *conn)
{
    if (!s || !conn)
        return;
    pthread_mutex_lock(&s->lock);
    struct conn_error *e = error_get(s, conn);
    if (e)
        e->until = 0;
    pthread_mutex_unlock(&s->lock);
}

/* ---- life cycle ---- */

int hs_search_new(const struct hs_search_config *cfg, struct hs_store *store,
                  struct hs_client_provider clients, const struct hs_clock *clock,
                  struct hs_search_service **out, struct hs_error *err)
{
    if (!store)
        return hs_fail(err, HS_ERR_INVALID, "search needs a store");
    struct hs_search_config c = cfg ? *cfg : (struct hs_search_config){0};
    if (c.cache_ttl_ms <= 0)
        c.cache_ttl_ms = 60000;
    if (c.debounce_ms == 0)
        c.debounce_ms = 250;
    if (c.debounce_ms < 0)
        c.debounce_ms = 0;
    if (c.min_local_hits <= 0)
        c.min_local_hits = 10;
    if (c.per_default <= 0)
        c.per_default = 20;
    if (c.hover_per <= 0)
        c.hover_per = 100;
    if (c.error_backoff_ms <= 0)
        c.error_backoff_ms = 10000;
    if (c.debounce_step_ms <= 0)
        c.debounce_step_ms = 25;
    if (c.cache_max == 0)
        c.cache_max = 256;
    if (c.per_default > 100 || c.hover_per > 100)
        return hs_fail(err, HS_ERR_INVALID, "per_default and hover_per are at most 100");
    struct hs_search_service *s = hs_calloc(1, sizeof *s);
    s->cfg = c;
    s->store = store;
    s->clients = clients;
    s->clock = clock ? clock : hs_clock_system();
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->filled, NULL);
    hs_cond_init_monotonic(&s->newer);
    s->cache = hs_calloc(c.cache_max, sizeof *s->cache);
    s->sessions = hs_calloc(SESSIONS_MAX, sizeof *s->sessions);
    s->held = hs_calloc(HELD_MAX, sizeof *s->held);
    *out = s;
    return HS_OK;
}

static void held_clear(struct held *h);

void hs_search_free(struct hs_search_service *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_cache; i++)
        cached_clear(&s->cache[i]);
    free(s->cache);
    for (size_t i = 0; i < s->n_sessions; i++)
        free(s->sessions[i].key);
    free(s->sessions);
    for (size_t i = 0; i < s->n_errors; i++)
        free(s->errors[i].conn);
    free(s->errors);
    for (size_t i = 0; i < HELD_MAX; i++)
        held_clear(&s->held[i]);
    free(s->held);
    pthread_cond_destroy(&s->filled);
    pthread_cond_destroy(&s->newer);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void hs_search_get_stats(struct hs_search_service *s, struct hs_search_stats *out)
{
    pthread_mutex_lock(&s->lock);
    *out = s->stats;
    pthread_mutex_unlock(&s->lock);
}

/* ---- Hover ---- */

static int hover_list(struct hs_search_service *s, const char *conn, const struct hs_list_params *p,
                      struct hs_job_page **page, struct hs_error *err)
{
    if (s->cfg.list_jobs)
        return s->cfg.list_jobs(s->cfg.list_jobs_ctx, conn, p, page, err);
    if (!s->clients.acquire)
        return hs_fail(err, HS_ERR_NO_CREDENTIALS, "no Hover connection is configured");
    struct hs_client *c = NULL;
    int rc = s->clients.acquire(s->clients.ctx, conn, &c, err);
    if (rc)
        return rc;
    rc = hs_client_list_jobs(c, p, page, err);
    s->clients.release(s->clients.ctx, c);
    return rc;
}

/* Stores Hover's jobs so that the index knows them from now on. A failure costs only that: the
 * answer is given all the same (from Hover's jobs), and the next search asks again. */
static void index_jobs(struct hs_search_service *s, const char *conn, const struct hs_job_page *pg)
{
    struct hs_store *st = s->store;
    struct hs_error err = {0};
    int rc = st->ops->begin(st, &err);
    for (size_t i = 0; rc == HS_OK && i < pg->n_jobs; i++) {
        struct hs_error jerr = {0};
        /* One bad job (no id) is skipped: the op rolled back its own savepoint. */
        if (st->records->job_upsert(st, &pg->jobs[i], conn, NULL, &jerr))
            hs_debug("search=index job=%lld error=\"%s\"", (long long)pg->jobs[i].id, jerr.msg);
    }
    if (rc == HS_OK)
        rc = st->ops->commit(st, &err);
    if (rc)
        hs_warn("search=index jobs=%zu error=\"%s\"", pg->n_jobs, err.msg);
}

/* ---- one search ---- */

static bool answer_has(const struct answer *a, int64_t id)
{
    for (size_t i = 0; i < a->n; i++)
        if (a->ids[i] == id)
            return true;
    return false;
}

/* Appends (a new reference) unless the job is there already; at most max. */
static void answer_add(struct answer *a, int64_t id, json_t *job)
{
    if (answer_has(a, id)) {
        json_decref(job);
        return;
    }
    if (a->n == a->max) {
        a->truncated = true;
        json_decref(job);
        return;
    }
    a->ids[a->n++] = id;
    json_array_append_new(a->results, job);
}

static int local_search(struct hs_search_service *s, const char *q, const char *state, int64_t page,
                        int64_t per, const struct hs_scope *scope, struct answer *a, int64_t *total,
                        struct hs_error *err)
{
    struct hs_job_summary *v = NULL;
    size_t n = 0;
    int rc =
        s->store->search->jobs_search(s->store, q, state, page, per, scope, &v, &n, total, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++)
        answer_add(a, v[i].id, row_json(&v[i]));
    hs_job_summaries_free(v, n);
    return HS_OK;
}

/* Jobs of a cached answer (copies, taken under s->lock) that match q by Hover's rule and the
 * state filter. */
static json_t *cached_matches(const struct cached *c, const char *q, const char *state)
{
    json_t *out = json_array();
    for (size_t i = 0; i < c->n; i++) {
        json_t *j = json_array_get(c->jobs, i);
        if (q && !strstr(c->hay[i], q))
            continue;
        if (state && !key_eq(json_string_value(json_object_get(j, "reconstruction_state")), state))
            continue;
        json_array_append_new(out, json_deep_copy(j));
    }
    return out;
}

enum hover_outcome {
    HOVER_SHORT,
    HOVER_NOT_FIRST_PAGE,
    HOVER_ENOUGH_LOCAL,
    HOVER_CACHED,
    HOVER_COVERED,
    HOVER_DEBOUNCED,
    HOVER_BACKOFF,
    HOVER_ASKED,
    HOVER_ERROR,
};

static const char *const outcome_names[] = {
    [HOVER_SHORT] = "short",
    [HOVER_NOT_FIRST_PAGE] = "not_first_page",
    [HOVER_ENOUGH_LOCAL] = "enough_local",
    [HOVER_CACHED] = "cached",
    [HOVER_COVERED] = "covered",
    [HOVER_DEBOUNCED] = "debounced",
    [HOVER_BACKOFF] = "backoff",
    [HOVER_ASKED] = "asked",
    [HOVER_ERROR] = "error",
};

struct run {
    struct hs_search_service *s;
    const char *conn, *state, *q, *session;
    int64_t arrived, seq;
    enum hover_outcome outcome;
    json_t *hover_jobs; /* Hover's matches to merge (cached or fresh), or NULL */
    bool hover_more;    /* Hover has more than it gave */
    bool reindexed;     /* the index learned Hover's jobs during this search */
    bool no_wait;       /* the caller cannot wait: Hover's turn is left to another call */
    bool pending;       /* ... and it has come: no answer given */
    char err_code[32], err_msg[256];
};

/* Waits out the debounce; false when a newer query of the session came meanwhile. On the real
 * clock the newer query wakes the wait at once (s->newer), so that a superseded query answers
 * as soon as it is; another clock (a test's) is slept on in steps of debounce_step_ms. */
static bool debounce(struct run *r)
{
    struct hs_search_service *s = r->s;
    int64_t deadline = r->arrived + s->cfg.debounce_ms;
    bool real = s->clock == hs_clock_system();
    pthread_mutex_lock(&s->lock);
    for (;;) {
        struct session *x = session_get(s, r->session, false, 0);
        if (x && x->seq != r->seq)
            break;
        int64_t now = now_ms(s);
        if (now >= deadline) {
            pthread_mutex_unlock(&s->lock);
            return true;
        }
        int64_t step = deadline - now;
        if (real) {
            struct timespec until = hs_deadline_after(CLOCK_MONOTONIC, step);
            (void)pthread_cond_timedwait(&s->newer, &s->lock, &until);
            continue;
        }
        pthread_mutex_unlock(&s->lock);
        s->clock->sleep_ms(s->clock,
                           step < s->cfg.debounce_step_ms ? step : s->cfg.debounce_step_ms);
        pthread_mutex_lock(&s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return false;
}

static void take_error(struct run *r, const struct conn_error *e)
{
    hs_strlcpy(r->err_code, e->code, sizeof r->err_code);
    hs_strlcpy(r->err_msg, e->message, sizeof r->err_msg);
}

/* Asks Hover (or waits for the same request of another session) and fills r. */
static void ask_hover(struct run *r, int64_t per)
{
    struct hs_search_service *s = r->s;
    pthread_mutex_lock(&s->lock);
    struct cached *c;
    /* Another session may have asked the same while this one waited. */
    while ((c = cache_find(s, r->conn, r->state, r->q)) && c->inflight)
        pthread_cond_wait(&s->filled, &s->lock);
    int64_t now = now_ms(s);
    if (c && fresh(s, c, now)) {
        r->outcome = HOVER_CACHED;
        r->hover_jobs = cached_matches(c, NULL, NULL);
        r->hover_more = !c->complete;
        s->stats.cache_hits++;
        pthread_mutex_unlock(&s->lock);
        return;
    }
    struct conn_error *e = error_get(s, r->conn);
    if (e && now < e->until) { /* the request we waited for failed */
        r->outcome = HOVER_BACKOFF;
        take_error(r, e);
        pthread_mutex_unlock(&s->lock);
        return;
    }
    if (c)
        cache_remove(s, (size_t)(c - s->cache));
    c = cache_slot(s, now);
    if (c) {
        c->conn = hs_strdup(r->conn);
        c->state = hs_strdup(r->state);
        c->q = hs_strdup(r->q);
        c->inflight = true;
    }
    s->stats.hover_requests++;
    pthread_mutex_unlock(&s->lock);

    struct hs_list_params p = {
        .search = r->q, .page = 1, .per = per, .archived = -1, .reconstruction_state = r->state};
    struct hs_job_page *pg = NULL;
    struct hs_error err = {0};
    int rc = hover_list(s, r->conn, &p, &pg, &err);
    json_t *jobs = NULL;
    char **hay = NULL;
    if (rc == HS_OK) {
        index_jobs(s, r->conn, pg);
        r->reindexed = true;
        jobs = json_array();
        hay = hs_calloc(pg->n_jobs + 1, sizeof *hay);
        for (size_t i = 0; i < pg->n_jobs; i++) {
            json_array_append_new(jobs, job_json(&pg->jobs[i]));
            hay[i] = haystack(&pg->jobs[i]);
        }
    } else {
        hs_info("search=hover conn=%s error=%s msg=\"%s\"", r->conn, hs_err_name(rc), err.msg);
    }

    pthread_mutex_lock(&s->lock);
    now = now_ms(s);
    c = cache_find(s, r->conn, r->state, r->q);
    if (rc == HS_OK) {
        bool complete = (int64_t)pg->n_jobs < per && !pg->has_more;
        r->outcome = HOVER_ASKED;
        r->hover_jobs = json_deep_copy(jobs);
        r->hover_more = !complete;
        if (c) {
            c->inflight = false;
            c->at = now;
            c->complete = complete;
            c->jobs = jobs;
            c->hay = hay;
            c->n = pg->n_jobs;
            jobs = NULL;
            hay = NULL;
        }
    } else {
        s->stats.hover_errors++;
        r->outcome = HOVER_ERROR;
        error_remember(s, r->conn, rc, err.msg, now);
        take_error(r, error_get(s, r->conn));
        if (c)
            cache_remove(s, (size_t)(c - s->cache));
    }
    pthread_cond_broadcast(&s->filled);
    pthread_mutex_unlock(&s->lock);
    json_decref(jobs);
    for (size_t i = 0; hay && pg && i < pg->n_jobs; i++)
        free(hay[i]);
    free(hay);
    hs_job_page_free(pg);
}

/* Decides about Hover (rules 2 to 8 of the top comment) after the local answer. */
static void consult_hover(struct run *r, int64_t page, int64_t local_total)
{
    struct hs_search_service *s = r->s;
    if (char_count(r->q) < 3) {
        r->outcome = HOVER_SHORT;
        return;
    }
    if (page != 1) {
        r->outcome = HOVER_NOT_FIRST_PAGE;
        return;
    }
    pthread_mutex_lock(&s->lock);
    int64_t now = now_ms(s);
    struct cached *c = cache_find(s, r->conn, r->state, r->q);
    if (c && !c->inflight && fresh(s, c, now)) {
        r->outcome = HOVER_CACHED;
        r->hover_jobs = cached_matches(c, NULL, NULL);
        r->hover_more = !c->complete;
        s->stats.cache_hits++;
        pthread_mutex_unlock(&s->lock);
        return;
    }
    c = cache_covering(s, r->conn, r->state, r->q, now);
    if (c) {
        r->outcome = HOVER_COVERED;
        r->hover_jobs = cached_matches(c, r->q, r->state);
        s->stats.covered++;
        pthread_mutex_unlock(&s->lock);
        return;
    }
    struct conn_error *e = error_get(s, r->conn);
    if (e && now < e->until) {
        r->outcome = HOVER_BACKOFF;
        take_error(r, e);
        pthread_mutex_unlock(&s->lock);
        return;
    }
    pthread_mutex_unlock(&s->lock);
    if (local_total >= s->cfg.min_local_hits) {
        r->outcome = HOVER_ENOUGH_LOCAL;
        return;
    }
    if (r->no_wait) {
        r->pending = true;
        return;
    }
    if (!debounce(r)) {
        r->outcome = HOVER_DEBOUNCED;
        pthread_mutex_lock(&s->lock);
        s->stats.debounced++;
        pthread_mutex_unlock(&s->lock);
        return;
    }
    ask_hover(r, s->cfg.hover_per);
}

/* ---- answers kept for the run that resumes them (caller holds s->lock) ---- */

static void held_clear(struct held *h)
{
    free(h->q);
    free(h->session);
    json_decref(h->a.results);
    free(h->a.ids);
    memset(h, 0, sizeof *h);
}

/* Keeps r's answer (taken from a and r) under a new ticket; the oldest kept answer makes room. */
static int64_t held_put(struct hs_search_service *s, struct run *r, struct answer *a, int64_t page,
                        int64_t per, int64_t total)
{
    struct held *slot = NULL;
    for (size_t i = 0; i < HELD_MAX; i++)
        if (!slot || s->held[i].ticket < slot->ticket)
            slot = &s->held[i];
    held_clear(slot); /* a free slot (0), or the oldest: its run will ask the index again */
    *slot = (struct held){.ticket = ++s->tickets,
                          .q = hs_strdup(r->q),
                          .session = hs_strdup(r->session),
                          .page = page,
                          .per = per,
                          .seq = r->seq,
                          .arrived = r->arrived,
                          .total = total,
                          .a = *a};
    *a = (struct answer){0};
    return slot->ticket;
}

/* Takes the kept answer of ticket into r, a and total, if it is still kept and of the same
 * query. */
static bool held_take(struct hs_search_service *s, int64_t ticket, struct run *r, struct answer *a,
                      int64_t page, int64_t per, int64_t *total)
{
    for (size_t i = 0; ticket > 0 && i < HELD_MAX; i++) {
        struct held *h = &s->held[i];
        if (h->ticket != ticket)
            continue;
        bool same = strcmp(h->q, r->q) == 0 && strcmp(h->session, r->session) == 0 &&
                    h->page == page && h->per == per;
        if (same) {
            r->seq = h->seq;
            r->arrived = h->arrived;
            *total = h->total;
            *a = h->a;
            h->a = (struct answer){0};
        }
        held_clear(h);
        return same;
    }
    return false;
}

/* The answer document (docs/API.md); takes a->results. */
static json_t *answer_doc(const struct run *r, struct answer *a, const char *norm, int64_t page,
                          int64_t per, int64_t total, bool had_local)
{
    bool hover_used = r->outcome == HOVER_ASKED || r->outcome == HOVER_CACHED;
    const char *source = !hover_used ? "local" : had_local ? "local+hover" : "hover";
    json_t *doc = json_object();
    json_object_set_new(doc, "source", json_string(source));
    json_object_set_new(doc, "results", a->results);
    json_object_set_new(doc, "page", json_integer(page));
    json_object_set_new(
        doc, "more",
        json_boolean(total > page * per || a->truncated || (r->hover_more && hover_used)));
    json_object_set_new(doc, "total", json_integer(total));
    /* With text the store counts up to HS_SEARCH_MATCHES_MAX: there may be more. */
    json_object_set_new(doc, "total_exact",
                        json_boolean(!norm[0] || total < HS_SEARCH_MATCHES_MAX));
    json_object_set_new(doc, "hover", json_string(outcome_names[r->outcome]));
    if (r->err_code[0]) {
        json_t *he = json_object();
        json_object_set_new(he, "code", jstr(r->err_code));
        json_object_set_new(he, "message", jstr(r->err_msg));
        json_object_set_new(doc, "hover_error", he);
    }
    a->results = NULL;
    return doc;
}

static int check_query(const struct hs_search_query *q, int64_t per, int64_t page,
                       struct hs_error *err)
{
    if (q->no_wait && !q->pending)
        return hs_fail(err, HS_ERR_INVALID, "a search that cannot wait needs its pending ticket");
    if (per < 1 || per > 100)
        return hs_fail(err, HS_ERR_INVALID, "per must be 1 to 100, not %lld", (long long)per);
    if (page < 1)
        return hs_fail(err, HS_ERR_INVALID, "page must be 1 or more, not %lld", (long long)page);
    if (q->state && *q->state && strcmp(q->state, "completed") != 0 &&
        strcmp(q->state, "failed") != 0)
        return hs_fail(err, HS_ERR_INVALID, "state must be completed or failed");
    if (q->q && strlen(q->q) > Q_MAX_BYTES)
        return hs_fail(err, HS_ERR_INVALID, "search text over %d bytes", Q_MAX_BYTES);
    return HS_OK;
}

int hs_search_run(struct hs_search_service *s, const struct hs_search_query *q, json_t **out,
                  struct hs_error *err)
{
    int64_t per = q->per ? q->per : s->cfg.per_default;
    int64_t page = q->page ? q->page : 1;
    if (q->pending)
        *q->pending = 0;
    int rc = check_query(q, per, page, err);
    if (rc)
        return rc;
    const char *state = q->state && *q->state ? q->state : NULL;
    char *norm = normalise(q->q);
    const char *conn = q->connection_key && *q->connection_key ? q->connection_key : "default";
    struct run r = {.s = s,
                    .conn = conn,
                    .state = state,
                    .q = norm,
                    .session = q->session && *q->session ? q->session : conn,
                    .no_wait = q->no_wait};
    struct answer a = {0};
    int64_t total = 0;

    pthread_mutex_lock(&s->lock);
    bool resumed = held_take(s, q->resume, &r, &a, page, per, &total);
    if (!resumed) {
        /* Register the query first: from now on it supersedes the session's older ones. */
        r.arrived = now_ms(s);
        struct session *x = session_get(s, r.session, true, r.arrived);
        r.seq = ++x->seq;
        x->last_at = r.arrived;
        pthread_cond_broadcast(&s->newer); /* an older query of the session waits no more */
    }
    pthread_mutex_unlock(&s->lock);

    if (!resumed) {
        a = (struct answer){.results = json_array(),
                            .ids = hs_calloc((size_t)per, sizeof(int64_t)),
                            .max = (size_t)per};
        rc = local_search(s, norm, state, page, per, q->scope, &a, &total, err);
        if (rc)
            goto out;
    }
    bool had_local = a.n > 0;

    consult_hover(&r, page, total);
    if (r.pending) {
        /* Hover's turn, where the caller may wait: the run that resumes the query takes this
         * answer (it stays the session's newest query). */
        pthread_mutex_lock(&s->lock);
        *q->pending = held_put(s, &r, &a, page, per, total);
        pthread_mutex_unlock(&s->lock);
        *out = NULL;
        goto out;
    }

    if (r.reindexed) {
        /* The index learned Hover's jobs: one ranking over everything. */
        json_array_clear(a.results);
        a.n = 0;
        a.truncated = false;
        struct hs_error lerr = {0};
        if (local_search(s, norm, state, page, per, q->scope, &a, &total, &lerr))
            hs_warn("search=local-again error=\"%s\"", lerr.msg);
    }
    for (size_t i = 0; r.hover_jobs && i < json_array_size(r.hover_jobs); i++) {
        json_t *j = json_array_get(r.hover_jobs, i);
        answer_add(&a, summary_id(j), json_incref(j));
    }
    *out = answer_doc(&r, &a, norm, page, per, total, had_local);

    pthread_mutex_lock(&s->lock);
    s->stats.queries++;
    if (r.outcome != HOVER_ASKED && r.outcome != HOVER_CACHED)
        s->stats.local_answers++;
    pthread_mutex_unlock(&s->lock);
    hs_debug("search=run conn=%s hover=%s results=%zu", conn, outcome_names[r.outcome], a.n);
out:
    json_decref(a.results);
    json_decref(r.hover_jobs);
    free(a.ids);
    free(norm);
    return rc;
}
