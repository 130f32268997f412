/* faults.c: fault rules; see faults.h. */
#include "faults.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"
#include "core/str.h"
#include "http.h"
#include "s3parse.h"

#define MAX_RULES      256
#define MAX_LATENCY_MS 600000

struct rule_node {
    struct sb_fault_rule r;
    struct rule_node *next;
};

struct sb_faults {
    pthread_mutex_t lock;
    struct rule_node *head, *tail;
    size_t n;
    int64_t next_id;
    uint64_t rng;
};

struct sb_faults *sb_faults_new(uint64_t seed)
{
    struct sb_faults *f = hs_calloc(1, sizeof *f);
    pthread_mutex_init(&f->lock, NULL);
    f->next_id = 1;
    f->rng = seed ^ 0x9e3779b97f4a7c15ULL;
    return f;
}

void sb_fault_rule_clear(struct sb_fault_rule *r)
{
    free(r->path);
    free(r->method);
    free(r->op);
    r->path = r->method = r->op = NULL;
}

static void nodes_free(struct rule_node *n)
{
    while (n) {
        struct rule_node *next = n->next;
        sb_fault_rule_clear(&n->r);
        free(n);
        n = next;
    }
}

void sb_faults_free(struct sb_faults *f)
{
    if (!f)
        return;
    nodes_free(f->head);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

static void rule_defaults(struct sb_fault_rule *r)
{
    memset(r, 0, sizeof *r);
    r->rate = 1.0;
    r->count = -1;
}

/* Checks a parsed rule; on failure frees its strings. */
static int rule_validate(struct sb_fault_rule *r, char *err, size_t errn)
{
    const char *why = NULL;
    if (!r->path && r->op)
        r->path = hs_strdup("/"); /* an operation alone: every path */
    if (!r->path || r->path[0] != '/')
        why = "path must start with '/'";
    else if (r->status != 0 && (r->status < 100 || r->status > 599))
        why = "status must be 100..599";
    else if (r->latency_ms < 0 || r->latency_ms > MAX_LATENCY_MS)
        why = "latency_ms must be 0..600000";
    else if (!(r->rate >= 0.0 && r->rate <= 1.0))
        why = "rate must be 0..1";
    else if (r->count < -1 || r->count == 0)
        why = "count must be -1 (for ever) or positive";
    else if ((r->status != 0) + r->drop + r->truncate + r->malformed > 1)
        why = "a rule has at most one of status, drop, truncate, malformed";
    else if (r->status == 0 && !r->drop && !r->truncate && !r->malformed && r->latency_ms == 0)
        why = "a rule needs latency_ms, status, drop, truncate or malformed";
    else if (r->op && !sb_s3_op_name_ok(r->op))
        why = "op must name an S3 operation (PutObject, GetObject, HeadObject, DeleteObject, "
              "ListObjectsV2, ListObjects, CreateMultipartUpload, UploadPart, "
              "CompleteMultipartUpload, AbortMultipartUpload, ListBuckets, CreateBucket, "
              "HeadBucket, DeleteBucket)";
    if (why) {
        (void)snprintf(err, errn, "%s", why);
        sb_fault_rule_clear(r);
        return -1;
    }
    return 0;
}

static int parse_flag(const char *v, bool *out)
{
    if (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes")) {
        *out = true;
        return 0;
    }
    if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no")) {
        *out = false;
        return 0;
    }
    return -1;
}

int sb_fault_parse_spec(const char *spec, struct sb_fault_rule *out, char *err, size_t errn)
{
    struct sb_fault_rule r;
    rule_defaults(&r);
    char *copy = hs_strdup(spec);
    int rc = -1;
    char *next = NULL;
    for (char *kv = copy; kv; kv = next) {
        next = strchr(kv, ',');
        if (next)
            *next++ = '\0';
        if (*kv == '\0')
            continue;
        char *eq = strchr(kv, '=');
        if (!eq) {
            (void)snprintf(err, errn, "'%s' is not key=value", kv);
            goto fail;
        }
        *eq = '\0';
        const char *k = kv, *v = eq + 1;
        int64_t i;
        bool ok = true;
        if (!strcmp(k, "path")) {
            free(r.path);
            r.path = hs_strdup(v);
        } else if (!strcmp(k, "method")) {
            free(r.method);
            r.method = *v ? hs_strdup(v) : NULL;
        } else if (!strcmp(k, "op")) {
            free(r.op);
            r.op = *v ? hs_strdup(v) : NULL;
        } else if (!strcmp(k, "latency_ms")) {
            ok = hs_parse_i64(v, &i) == 0;
            r.latency_ms = i;
        } else if (!strcmp(k, "status")) {
            ok = hs_parse_i64_range(v, 0, 999, &i) == 0;
            r.status = ok ? (int)i : 0;
        } else if (!strcmp(k, "count")) {
            ok = hs_parse_i64(v, &i) == 0;
            r.count = i;
        } else if (!strcmp(k, "rate")) {
            ok = hs_parse_double(v, &r.rate) == 0;
        } else if (!strcmp(k, "drop")) {
            ok = parse_flag(v, &r.drop) == 0;
        } else if (!strcmp(k, "truncate")) {
            ok = parse_flag(v, &r.truncate) == 0;
        } else if (!strcmp(k, "malformed")) {
            ok = parse_flag(v, &r.malformed) == 0;
        } else {
            (void)snprintf(err, errn, "unknown fault key '%s'", k);
            goto fail;
        }
        if (!ok) {
            (void)snprintf(err, errn, "bad value for %s: '%s'", k, v);
            goto fail;
        }
    }
    free(copy);
    copy = NULL;
    if (rule_validate(&r, err, errn) != 0)
        return -1;
    *out = r;
    return 0;
fail:
    free(copy);
    sb_fault_rule_clear(&r);
    return rc;
}

int sb_fault_from_json(const json_t *obj, struct sb_fault_rule *out, char *err, size_t errn)
{
    struct sb_fault_rule r;
    rule_defaults(&r);
    if (!json_is_object(obj)) {
        (void)snprintf(err, errn, "the body must be a JSON object");
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        bool ok = true;
        if (!strcmp(k, "path")) {
            ok = json_is_string(v);
            if (ok) {
                free(r.path);
                r.path = hs_strdup(json_string_value(v));
            }
        } else if (!strcmp(k, "method") || !strcmp(k, "op")) {
            ok = json_is_string(v) || json_is_null(v);
            char **dst = k[0] == 'm' ? &r.method : &r.op;
            free(*dst);
            *dst =
                json_is_string(v) && json_string_length(v) ? hs_strdup(json_string_value(v)) : NULL;
        } else if (!strcmp(k, "latency_ms") || !strcmp(k, "status") || !strcmp(k, "count")) {
            ok = json_is_integer(v) || json_is_null(v);
            int64_t i = json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
            if (k[0] == 'l')
                r.latency_ms = i;
            else if (k[0] == 's')
                r.status = i < 0 || i > 999 ? -1 : (int)i;
            else
                r.count = json_is_null(v) ? -1 : i;
        } else if (!strcmp(k, "rate")) {
            ok = json_is_number(v);
            if (ok)
                r.rate = json_number_value(v);
        } else if (!strcmp(k, "drop") || !strcmp(k, "truncate") || !strcmp(k, "malformed")) {
            ok = json_is_boolean(v) || json_is_integer(v);
            bool b = json_is_true(v) || (json_is_integer(v) && json_integer_value(v) != 0);
            if (k[0] == 'd')
                r.drop = b;
            else if (k[0] == 't')
                r.truncate = b;
            else
                r.malformed = b;
        } else if (!strcmp(k, "id") || !strcmp(k, "hits")) {
            /* echoes of a listed rule: ignored */
        } else {
            (void)snprintf(err, errn, "unknown fault key '%s'", k);
            sb_fault_rule_clear(&r);
            return -1;
        }
        if (!ok) {
            (void)snprintf(err, errn, "bad value for %s", k);
            sb_fault_rule_clear(&r);
            return -1;
        }
    }
    if (rule_validate(&r, err, errn) != 0)
        return -1;
    *out = r;
    return 0;
}

int64_t sb_faults_add(struct sb_faults *f, struct sb_fault_rule *r)
{
    struct rule_node *n = hs_calloc(1, sizeof *n);
    n->r = *r;
    r->path = r->method = r->op = NULL;
    pthread_mutex_lock(&f->lock);
    if (f->n >= MAX_RULES) { /* the oldest rule makes room */
        struct rule_node *old = f->head;
        f->head = old->next;
        if (!f->head)
            f->tail = NULL;
        old->next = NULL;
        nodes_free(old);
        f->n--;
    }
    n->r.id = f->next_id++;
    n->r.hits = 0;
    if (f->tail)
        f->tail->next = n;
    else
        f->head = n;
    f->tail = n;
    f->n++;
    int64_t id = n->r.id;
    pthread_mutex_unlock(&f->lock);
    return id;
}

void sb_faults_clear(struct sb_faults *f)
{
    pthread_mutex_lock(&f->lock);
    nodes_free(f->head);
    f->head = f->tail = NULL;
    f->n = 0;
    pthread_mutex_unlock(&f->lock);
}

/* Unlinks *pp (lock held). */
static void unlink_node(struct sb_faults *f, struct rule_node **pp, struct rule_node *prev)
{
    struct rule_node *n = *pp;
    *pp = n->next;
    if (f->tail == n)
        f->tail = prev;
    n->next = NULL;
    nodes_free(n);
    f->n--;
}

bool sb_faults_remove(struct sb_faults *f, int64_t id)
{
    bool found = false;
    pthread_mutex_lock(&f->lock);
    struct rule_node *prev = NULL;
    for (struct rule_node **pp = &f->head; *pp; prev = *pp, pp = &(*pp)->next) {
        if ((*pp)->r.id == id) {
            unlink_node(f, pp, prev);
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&f->lock);
    return found;
}

json_t *sb_faults_json(struct sb_faults *f)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&f->lock);
    for (struct rule_node *n = f->head; n; n = n->next) {
        const struct sb_fault_rule *r = &n->r;
        json_array_append_new(
            arr, json_pack("{sI so so so sI si sb sb sb sf sI sI}", "id", (json_int_t)r->id, "path",
                           hs_json_text(r->path), "method", hs_json_text(r->method), "op",
                           hs_json_text(r->op), "latency_ms", (json_int_t)r->latency_ms, "status",
                           r->status, "drop", r->drop, "truncate", r->truncate, "malformed",
                           r->malformed, "rate", r->rate, "count", (json_int_t)r->count, "hits",
                           (json_int_t)r->hits));
    }
    pthread_mutex_unlock(&f->lock);
    return json_pack("{so}", "faults", arr);
}

/* A glob where '*' matches any run of characters; without '*' the pattern is a prefix. */
static bool path_matches(const char *pat, const char *path)
{
    if (!strchr(pat, '*'))
        return hs_starts_with(path, pat);
    const char *star = NULL, *resume = NULL;
    while (*path) {
        if (*pat == '*') {
            star = pat++;
            resume = path;
        } else if (*pat == *path) {
            pat++;
            path++;
        } else if (star) {
            pat = star + 1;
            path = ++resume;
        } else {
            return false;
        }
    }
    while (*pat == '*')
        pat++;
    return *pat == '\0';
}

/* splitmix64: small, seedable, good enough for coin flips. */
static double next01(struct sb_faults *f)
{
    uint64_t z = (f->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0;
}

void sb_faults_decide(struct sb_faults *f, const char *method, const char *path, const char *op,
                      struct sb_fault_decision *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&f->lock);
    struct rule_node *prev = NULL;
    struct rule_node **pp = &f->head;
    while (*pp) {
        struct sb_fault_rule *r = &(*pp)->r;
        bool fire = path_matches(r->path, path) &&
                    (!r->method || strcasecmp(r->method, method) == 0) &&
                    (!r->op || (op && strcasecmp(r->op, op) == 0)) &&
                    (r->rate >= 1.0 || next01(f) < r->rate);
        if (fire) {
            r->hits++;
            out->latency_ms += r->latency_ms;
            if (out->kind == SB_FAULT_NONE) {
                if (r->status) {
                    out->kind = SB_FAULT_STATUS;
                    out->status = r->status;
                } else if (r->drop) {
                    out->kind = SB_FAULT_DROP;
                } else if (r->truncate) {
                    out->kind = SB_FAULT_TRUNCATE;
                } else if (r->malformed) {
                    out->kind = SB_FAULT_MALFORMED;
                }
            }
            if (r->count > 0 && --r->count == 0) {
                unlink_node(f, pp, prev);
                continue;
            }
        }
        prev = *pp;
        pp = &(*pp)->next;
    }
    pthread_mutex_unlock(&f->lock);
    if (out->latency_ms > MAX_LATENCY_MS)
        out->latency_ms = MAX_LATENCY_MS;
}

const char *sb_fault_kind_name(enum sb_fault_kind k)
{
    switch (k) {
    case SB_FAULT_STATUS:
        return "status";
    case SB_FAULT_DROP:
        return "drop";
    case SB_FAULT_TRUNCATE:
        return "truncate";
    case SB_FAULT_MALFORMED:
        return "malformed";
    default:
        return "none";
    }
}
