/* search_bench.c: local search latency over a realistic index. Fills a SQLite store (a file in
 * a temporary directory, the service's own schema and settings) with the sandbox's generated
 * jobs (sb_world_generate, as Show Job renders them, mapped by hs_job_from_json and stored with
 * job_upsert, so the FTS5 index is built by the real triggers), then times type-ahead queries:
 * prefixes of the street lines, names, cities, customers and CRM ids of jobs picked across the
 * world, as a user types them (1, 2, 3, 4, 6, 8, 12 characters and the whole text).
 *
 * Prints the time to open the store (with --db, an older store's migrations), the fill time, the
 * file size, and p50/p90/p99/max latency of each pass, by the length of the text typed (1-2,
 * 3-5, 6+ characters) and all together:
 *   store:  jobs_search (the FTS5 queries, the ranking, one page of 20 with model counts);
 *   scoped: the same queries within one connection (a browser session's scope; the jobs are
 *           spread over --tenants connections);
 *   search: hs_search_run, the service's path (the same plus the JSON answer), Hover never
 *           asked (its seam answers "not connected" and the error backoff keeps it out);
 * and of recent: jobs_search without text (the modal's first screen).
 * Each pass also prints the p50/p99 of the CPU time its queries took (on a loaded machine the
 * latency's tail is mostly the wait for a core), and with --slowest N the N queries that took
 * the most CPU time.
 * Usage: search_bench [--jobs N] [--queries N] [--seed N] [--tenants N] [--db PATH] [--keep]
 *                     [--slowest N]
 * With --db, an existing file with at least N jobs is reused (no fill). See bench/README.md. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "core/mem.h"
#include "core/str.h"
#include "search/search.h"
#include "store/records.h"
#include "store/search.h"
#include "store/store.h"
#include "world.h"

#define PER 20

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* CPU time of this thread: with now_ms, tells the query's own cost from the time it waited for a
 * core on a loaded machine. */
static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static size_t show_slowest; /* --slowest N: the N costliest queries of each pass */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *sorted, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

static void report(const char *what, double *v, size_t n, double total_ms)
{
    qsort(v, n, sizeof *v, cmp_double);
    printf("%-13s %6zu queries  p50 %7.3f ms  p90 %7.3f ms  p99 %7.3f ms  max %7.3f ms", what, n,
           pct(v, n, 0.50), pct(v, n, 0.90), pct(v, n, 0.99), v[n - 1]);
    if (total_ms > 0)
        printf("  (%.0f queries/s, one thread)", 1000.0 * (double)n / total_ms);
    printf("\n");
}

/* The n queries of a pass that took the most CPU time (the code's cost; the longest latencies
 * of a loaded machine are mostly waits for a core), with their latency. */
static void report_slowest(const char *pass, char **queries, const double *lat, const double *cpu,
                           size_t nq, size_t n)
{
    bool *shown = hs_calloc(nq, sizeof *shown);
    for (size_t k = 0; k < n && k < nq; k++) {
        size_t worst = SIZE_MAX;
        for (size_t i = 0; i < nq; i++)
            if (!shown[i] && (worst == SIZE_MAX || cpu[i] > cpu[worst]))
                worst = i;
        shown[worst] = true;
        printf("        costliest %s: cpu %7.3f ms (latency %7.3f ms) '%s'\n", pass, cpu[worst],
               lat[worst], queries[worst]);
    }
    free(shown);
}

/* A pass over the queries (lat[i]: the latency of queries[i], cpu[i] its thread's CPU time): by
 * the length of the text typed (first keystrokes, a word begun, more), then all; then the CPU
 * time of all (what the query cost, without the waits for a core of a loaded machine). */
static void report_pass(const char *pass, char **queries, double *lat, double *cpu, size_t nq,
                        double total_ms)
{
    if (show_slowest)
        report_slowest(pass, queries, lat, cpu, nq, show_slowest);
    static const struct {
        const char *name;
        size_t min, max;
    } classes[] = {{"1-2 ch", 1, 2}, {"3-5 ch", 3, 5}, {"6+ ch", 6, 1000}};
    double *part = hs_calloc(nq, sizeof *part);
    char name[32];
    for (size_t c = 0; c < sizeof classes / sizeof classes[0]; c++) {
        size_t k = 0;
        for (size_t i = 0; i < nq; i++)
            if (strlen(queries[i]) >= classes[c].min && strlen(queries[i]) <= classes[c].max)
                part[k++] = lat[i];
        snprintf(name, sizeof name, "%s %s", pass, classes[c].name);
        if (k)
            report(name, part, k, 0);
    }
    free(part);
    snprintf(name, sizeof name, "%s all", pass);
    report(name, lat, nq, total_ms);
    snprintf(name, sizeof name, "%s cpu", pass);
    report(name, cpu, nq, 0);
}

/* The connection of job i: "default", or one of n tenants in turn. */
static void tenant_key(size_t i, int64_t tenants, char out[32])
{
    if (tenants <= 1)
        hs_strlcpy(out, "default", 32);
    else
        snprintf(out, 32, "tenant-%lld", (long long)(i % (size_t)tenants));
}

static int fill(struct hs_store *st, int64_t n_jobs, int64_t tenants, uint64_t seed,
                struct sb_world **out)
{
    double t0 = now_ms();
    struct sb_world *w = sb_world_generate(seed, (size_t)n_jobs);
    double t1 = now_ms();
    struct hs_error err = {0};
    int rc = HS_OK;
    for (size_t i = 0; i < w->n_jobs && rc == HS_OK; i++) {
        if (i % 1000 == 0 && (rc = st->ops->begin(st, &err)))
            break;
        json_t *j = sb_job_v3_json(w, &w->jobs[i], "http://127.0.0.1:1");
        char *text = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        struct hs_job *job = NULL;
        rc = hs_job_from_json(text, strlen(text), &job, &err);
        free(text);
        char key[32];
        tenant_key(i, tenants, key);
        if (rc == HS_OK)
            rc = st->records->job_upsert(st, job, key, NULL, &err);
        hs_job_free(job);
        if (rc == HS_OK && (i % 1000 == 999 || i + 1 == w->n_jobs))
            rc = st->ops->commit(st, &err);
    }
    if (rc) {
        st->ops->rollback(st);
        fprintf(stderr, "search_bench: filling the store: %s\n", err.msg);
        sb_world_free(w);
        return rc;
    }
    printf("filled  %zu jobs: world generated in %.1f s, stored and indexed in %.1f s "
           "(%.0f jobs/s)\n",
           w->n_jobs, (t1 - t0) / 1e3, (now_ms() - t1) / 1e3,
           (double)w->n_jobs * 1e3 / (now_ms() - t1));
    *out = w;
    return HS_OK;
}

/* The texts a user types while looking for jobs of the world: prefixes of what they know. */
static char **make_queries(const struct sb_world *w, size_t want, size_t *n_out)
{
    static const size_t lens[] = {1, 2, 3, 4, 6, 8, 12, 64};
    char **q = hs_calloc(want + 8, sizeof *q);
    size_t n = 0;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    while (n < want) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        const struct sb_job *j = &w->jobs[(x >> 33) % w->n_jobs];
        const char *field;
        switch ((x >> 20) % 6) {
        case 0:
        case 1:
            field = j->line1; /* addresses are what people type most */
            break;
        case 2:
            field = j->name;
            break;
        case 3:
            field = j->city;
            break;
        case 4:
            field = j->cust_name;
            break;
        default:
            field = j->external_identifier;
            break;
        }
        if (!field || strlen(field) < 3)
            continue;
        for (size_t k = 0; k < sizeof lens / sizeof lens[0] && n < want; k++) {
            size_t l = strlen(field) < lens[k] ? strlen(field) : lens[k];
            q[n++] = hs_strndup(field, l);
            if (l == strlen(field))
                break;
        }
    }
    *n_out = n;
    return q;
}

static int no_hover(void *ctx, const char *key, const struct hs_list_params *p,
                    struct hs_job_page **out, struct hs_error *err)
{
    (void)ctx;
    (void)key;
    (void)p;
    (void)out;
    return hs_fail(err, HS_ERR_NO_CREDENTIALS, "benchmark: no Hover");
}

static int64_t arg_i64(const char *name, const char *v, int64_t min, int64_t max)
{
    int64_t n;
    if (!v || hs_parse_i64_range(v, min, max, &n) != HS_OK) {
        fprintf(stderr, "search_bench: %s takes a number from %lld to %lld\n", name, (long long)min,
                (long long)max);
        exit(2);
    }
    return n;
}

/* Times every query through jobs_search within scope (NULL: every connection) into lat;
 * returns the wall time in ms, or -1 on an error. */
static double time_store(struct hs_store *st, char **queries, size_t nq,
                         const struct hs_scope *scope, double *lat, double *cpu, int64_t *found,
                         int64_t *empty)
{
    struct hs_error err = {0};
    double t0 = now_ms();
    for (size_t i = 0; i < nq; i++) {
        struct hs_job_summary *v = NULL;
        size_t n = 0;
        int64_t total = 0;
        double a = now_ms(), c = cpu_ms();
        if (st->search->jobs_search(st, queries[i], NULL, 1, PER, scope, &v, &n, &total, &err)) {
            fprintf(stderr, "search_bench: '%s': %s\n", queries[i], err.msg);
            return -1;
        }
        lat[i] = now_ms() - a;
        cpu[i] = cpu_ms() - c;
        hs_job_summaries_free(v, n);
        *found += total;
        *empty += total == 0;
    }
    return now_ms() - t0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress shows when redirected too */
    int64_t n_jobs = 100000, n_queries = 5000, seed = 42, tenants = 1;
    const char *db = NULL;
    bool keep = false;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--jobs") == 0) {
            n_jobs = arg_i64("--jobs", v, 1, 10000000);
            i++;
        } else if (strcmp(argv[i], "--queries") == 0) {
            n_queries = arg_i64("--queries", v, 1, 10000000);
            i++;
        } else if (strcmp(argv[i], "--seed") == 0) {
            seed = arg_i64("--seed", v, 0, INT64_MAX);
            i++;
        } else if (strcmp(argv[i], "--tenants") == 0) {
            tenants = arg_i64("--tenants", v, 1, 1000);
            i++;
        } else if (strcmp(argv[i], "--db") == 0 && v) {
            db = v;
            i++;
        } else if (strcmp(argv[i], "--slowest") == 0) {
            show_slowest = (size_t)arg_i64("--slowest", v, 0, 1000);
            i++;
        } else if (strcmp(argv[i], "--keep") == 0) {
            keep = true;
        } else {
            fprintf(stderr, "usage: search_bench [--jobs N] [--queries N] [--seed N] "
                            "[--tenants N] [--db PATH] [--keep] [--slowest N]\n");
            return 2;
        }
    }

    char dir[64] = "";
    char path[512];
    if (db) {
        hs_strlcpy(path, db, sizeof path);
    } else {
        hs_strlcpy(dir, "/tmp/hs-search-bench-XXXXXX", sizeof dir);
        if (!mkdtemp(dir)) {
            perror("search_bench: mkdtemp");
            return 1;
        }
        snprintf(path, sizeof path, "%s/store.db", dir);
    }
    struct hs_store *st = NULL;
    struct hs_error err = {0};
    double t_open = now_ms();
    if (hs_store_open(path, NULL, &st, &err)) {
        fprintf(stderr, "search_bench: %s\n", err.msg);
        return 1;
    }
    /* A store of an older schema is migrated here: the time of its migrations. */
    printf("opened  %s in %.2f s\n", path, (now_ms() - t_open) / 1e3);
    struct hs_job_summary *v = NULL;
    size_t n = 0;
    int64_t have = 0;
    if (st->search->jobs_search(st, NULL, NULL, 1, 1, NULL, &v, &n, &have, &err)) {
        fprintf(stderr, "search_bench: %s\n", err.msg);
        return 1;
    }
    hs_job_summaries_free(v, n);
    struct sb_world *w = NULL;
    if (have >= n_jobs) {
        printf("reusing %s: %lld jobs\n", path, (long long)have);
        w = sb_world_generate((uint64_t)seed, (size_t)n_jobs); /* for the query texts */
    } else if (fill(st, n_jobs, tenants, (uint64_t)seed, &w)) {
        return 1;
    }
    struct stat sbuf;
    if (stat(path, &sbuf) == 0)
        printf("store   %s: %.1f MiB\n", path, (double)sbuf.st_size / (1024.0 * 1024.0));

    size_t nq = 0;
    char **queries = make_queries(w, (size_t)n_queries, &nq);
    double *lat = hs_calloc(nq, sizeof *lat), *cpu = hs_calloc(nq, sizeof *cpu);

    /* Warm-up: the page cache and SQLite's, as a running service has them. */
    for (size_t i = 0; i < nq && i < 200; i++) {
        int64_t total;
        if (st->search->jobs_search(st, queries[i], NULL, 1, PER, NULL, &v, &n, &total, &err) ==
            HS_OK)
            hs_job_summaries_free(v, n);
    }

    int64_t found = 0, empty = 0;
    double store_ms = time_store(st, queries, nq, NULL, lat, cpu, &found, &empty);
    if (store_ms < 0)
        return 1;
    report_pass("store", queries, lat, cpu, nq, store_ms);
    printf("        matches per query (as counted): mean %.0f; %lld of %zu queries found nothing\n",
           (double)found / (double)nq, (long long)empty, nq);
    /* A browser session's search: the jobs of its connection only. */
    char first[32];
    tenant_key(0, tenants, first);
    const char *keys[] = {first};
    struct hs_scope scope = {keys, 1};
    found = empty = 0;
    double scoped_ms = time_store(st, queries, nq, &scope, lat, cpu, &found, &empty);
    if (scoped_ms < 0)
        return 1;
    report_pass("scoped", queries, lat, cpu, nq, scoped_ms);
    printf("        within %s of %lld connection(s): mean %.0f matches per query\n", first,
           (long long)tenants, (double)found / (double)nq);

    struct hs_search_config cfg = {
        .debounce_ms = -1, .list_jobs = no_hover, .error_backoff_ms = INT64_MAX / 4};
    struct hs_search_service *svc = NULL;
    struct hs_client_provider none = {0};
    if (hs_search_new(&cfg, st, none, NULL, &svc, &err)) {
        fprintf(stderr, "search_bench: %s\n", err.msg);
        return 1;
    }
    double t0 = now_ms();
    for (size_t i = 0; i < nq; i++) {
        struct hs_search_query sq = {.q = queries[i], .session = "bench"};
        json_t *out = NULL;
        double a = now_ms(), c = cpu_ms();
        if (hs_search_run(svc, &sq, &out, &err)) {
            fprintf(stderr, "search_bench: '%s': %s\n", queries[i], err.msg);
            return 1;
        }
        char *body = json_dumps(out, JSON_COMPACT); /* what the HTTP answer costs too */
        lat[i] = now_ms() - a;
        cpu[i] = cpu_ms() - c;
        free(body);
        json_decref(out);
    }
    report_pass("search", queries, lat, cpu, nq, now_ms() - t0);
    struct hs_search_stats ss;
    hs_search_get_stats(svc, &ss);
    printf("        Hover requests: %lld (the seam refuses; then the backoff keeps Hover out)\n",
           (long long)ss.hover_requests);
    hs_search_free(svc);

    size_t nr = nq < 500 ? nq : 500;
    static const char *const states[] = {NULL, "completed", "failed"};
    t0 = now_ms();
    for (size_t i = 0; i < nr; i++) {
        int64_t total;
        double a = now_ms();
        if (st->search->jobs_search(st, NULL, states[i % 3], 1 + (int64_t)(i % 5), PER, NULL, &v,
                                    &n, &total, &err)) {
            fprintf(stderr, "search_bench: recent: %s\n", err.msg);
            return 1;
        }
        lat[i] = now_ms() - a;
        hs_job_summaries_free(v, n);
    }
    report("recent", lat, nr, now_ms() - t0);

    for (size_t i = 0; i < nq; i++)
        free(queries[i]);
    free(queries);
    free(lat);
    free(cpu);
    sb_world_free(w);
    hs_store_close(st);
    if (dir[0] && !keep) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "search_bench: could not remove %s\n", dir);
    } else if (dir[0]) {
        printf("kept    %s\n", path);
    }
    return 0;
}
