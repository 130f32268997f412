/* faults.h: fault injection rules for the sandbox's routes (latency, error statuses, dropped
 * connections, truncated and malformed bodies), from --fault specs and the admin route. A rule
 * matches by path and method, and on the S3 listener by operation too. */
#ifndef HS_SANDBOX_FAULTS_H
#define HS_SANDBOX_FAULTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sb_fault_kind {
    SB_FAULT_NONE = 0,
    SB_FAULT_STATUS,
    SB_FAULT_DROP,
    SB_FAULT_TRUNCATE,
    SB_FAULT_MALFORMED,
};

struct sb_fault_rule {
    int64_t id;
    char *path;   /* a glob with '*' (matches any characters, '/' too), else a path prefix */
    char *method; /* NULL: any method */
    char *op;     /* NULL: any request; else an S3 operation ("UploadPart"): the S3 listener only */
    int64_t latency_ms;
    int status; /* 0: none */
    bool drop, truncate, malformed;
    double rate;   /* probability in [0, 1] that a matching request is hit */
    int64_t count; /* requests still to hit; -1 for ever */
    int64_t hits;
};

/* What happens to one request. */
struct sb_fault_decision {
    int64_t latency_ms;
    enum sb_fault_kind kind;
    int status; /* for SB_FAULT_STATUS */
};

struct sb_faults;

/* The random draws for `rate` come from a generator seeded with `seed`, so runs repeat. */
struct sb_faults *sb_faults_new(uint64_t seed);
void sb_faults_free(struct sb_faults *f);

/* Parses "path=/api/v3/jobs*,status=503,count=2" into *out (strings owned by *out).
 * Returns 0, or -1 with a message in err. */
int sb_fault_parse_spec(const char *spec, struct sb_fault_rule *out, char *err, size_t errn);
/* The same from the admin route's JSON object. */
int sb_fault_from_json(const json_t *obj, struct sb_fault_rule *out, char *err, size_t errn);
void sb_fault_rule_clear(struct sb_fault_rule *r);

/* Adds a rule (takes its strings) and returns its id. */
int64_t sb_faults_add(struct sb_faults *f, struct sb_fault_rule *r);
void sb_faults_clear(struct sb_faults *f);
bool sb_faults_remove(struct sb_faults *f, int64_t id);
json_t *sb_faults_json(struct sb_faults *f);

/* Decides what happens to a request (op: its S3 operation, NULL on the other listeners): every
 * matching rule that fires (rate draw) spends one of
 * its count (rules reaching 0 disappear); latencies add up and the first firing rule with an
 * action (status, drop, truncate, malformed) sets the action. */
void sb_faults_decide(struct sb_faults *f, const char *method, const char *path, const char *op,
                      struct sb_fault_decision *out);

const char *sb_fault_kind_name(enum sb_fault_kind k);

#endif
