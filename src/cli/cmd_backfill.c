/* cmd_backfill.c: `hoversync backfill`: walks List Jobs by updated_at to index historic jobs
 * (and with --sync, syncs every complete model), checkpointed after every page so that an
 * interrupted run resumes where it stopped and a later run only walks what changed since.
 *
 * Nothing that failed is walked past for good: models whose sync ended in error keep an open
 * selection, and the next backfill --sync retries them first; a job whose sync could not even
 * start holds the checkpoint back, so the next run walks it again. Hover lists archived jobs
 * only when asked (archived=true lists those alone), so --archived makes a second walk. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/crashpoint.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/str.h"
#include "store/records.h"
#include "sync/engine.h"

#define FAILURES_SHOWN 20

static void backfill_help(void)
{
    puts("Usage: hoversync backfill [--since DATE] [--state completed|failed] [--sync]\n"
         "                          [--archived] [--restart]\n"
         "\n"
         "Indexes every job updated since DATE (all jobs without it) into the store, oldest\n"
         "update first, 100 jobs a request; archived jobs too with --archived. With --sync,\n"
         "every complete model of those jobs is synced too. Progress is checkpointed after\n"
         "every page: an interrupted backfill resumes where it stopped, and running the same\n"
         "backfill later only walks jobs updated since. Models that could not be synced are\n"
         "named at the end; running the same backfill again retries them first.\n"
         "\n"
         "  --since DATE    YYYY-MM-DD, ISO-8601 or unix seconds\n"
         "  --state STATE   only jobs in this reconstruction state (completed or failed)\n"
         "  --sync          sync every complete model of every job walked\n"
         "  --archived      walk the archived jobs as well (Hover lists them apart)\n"
         "  --restart       ignore the checkpoint of a previous run\n"
         "\n"
         "Exit status: 0 when every job was indexed and every model synced, 1 otherwise.\n");
}

struct failure {
    int64_t job_id, model_id; /* model_id 0: the job's sync did not start */
    char *why;
};

struct progress {
    bool tty;
    int64_t jobs, total, models_synced, models_failed, pages;
    int64_t waiting_ms; /* a wait on Hover's rate limit under way, shown in the bar */
    struct failure *failed;
    size_t n_failed, cap_failed;
};

static void show_progress(const struct progress *p, bool final)
{
    char wait[64] = "";
    if (p->waiting_ms > 0)
        snprintf(wait, sizeof wait, ", waiting %lld s for Hover's rate limit",
                 (long long)((p->waiting_ms + 999) / 1000));
    if (p->tty) {
        int width = 30, filled = p->total > 0 ? (int)(p->jobs * width / p->total) : 0;
        if (filled > width)
            filled = width;
        fprintf(stderr, "\r\033[K[");
        for (int i = 0; i < width; i++)
            fputc(i < filled ? '#' : ' ', stderr);
        fprintf(stderr, "] %lld/%lld jobs, %lld models synced%s", (long long)p->jobs,
                (long long)p->total, (long long)p->models_synced, wait);
        if (final)
            fputc('\n', stderr);
    } else {
        fprintf(stderr, "backfill: page %lld, %lld/%lld jobs indexed, %lld models synced%s\n",
                (long long)p->pages, (long long)p->jobs, (long long)p->total,
                (long long)p->models_synced, wait);
    }
    fflush(stderr);
}

/* The client's hook: a wait on Hover's rate limit is a log line and shows in the bar. */
static void on_wait(void *ctx, const struct hs_client_wait *w)
{
    struct progress *p = ctx;
    if (p->tty)
        fputs("\r\033[K", stderr); /* the log line starts on a clean line */
    hs_client_log_wait(w);
    p->waiting_ms = w->wait_ms;
    show_progress(p, false);
    p->waiting_ms = 0;
}

static void add_failure(struct progress *p, int64_t job_id, int64_t model_id, const char *why)
{
    if (p->n_failed == p->cap_failed) {
        p->cap_failed = p->cap_failed ? p->cap_failed * 2 : 16;
        p->failed = hs_realloc(p->failed, p->cap_failed * sizeof *p->failed);
    }
    p->failed[p->n_failed++] =
        (struct failure){.job_id = job_id, .model_id = model_id, .why = hs_strdup(why)};
    p->models_failed++;
}

static void count_report(struct progress *p, const struct hs_sync_report *rep)
{
    for (size_t k = 0; k < rep->n_models; k++) {
        const struct hs_sync_model *m = &rep->models[k];
        if (m->result == HS_RESULT_SYNCED)
            p->models_synced++;
        else if (m->result != HS_RESULT_PENDING)
            add_failure(p, rep->job_id, m->id,
                        m->message ? m->message : hs_model_result_name(m->result));
    }
}

struct walk {
    struct cli *c;
    struct hs_sync_engine e;
    int64_t since;
    const char *state;
    bool do_sync, restart;
    struct progress pg;
};

/* Selections of this connection left in error (by an earlier backfill, or any sync). */
static bool error_selection(void *ctx, const struct hs_selection *sel)
{
    const struct walk *w = ctx;
    return sel->status == HS_SEL_ERROR && hs_streq(sel->connection_key, w->e.connection_key);
}

/* A rerun retries what an earlier run left in error before it walks on. */
static void retry_errors(struct walk *w)
{
    w->e.pending_filter = error_selection;
    w->e.pending_filter_ctx = w;
    struct hs_sync_report **reps = NULL;
    size_t n = 0;
    struct hs_error err = {0};
    int rc = hs_sync_pending(&w->e, &reps, &n, &err);
    w->e.pending_filter = NULL;
    if (n)
        fprintf(stderr, "backfill: retried %zu job%s left in error by an earlier run\n", n,
                n == 1 ? "" : "s");
    for (size_t i = 0; i < n; i++) {
        count_report(&w->pg, reps[i]);
        hs_sync_report_free(reps[i]);
    }
    free(reps);
    if (rc)
        fprintf(stderr, "hoversync: backfill: retrying models left in error: %s\n", err.msg);
}

/* Syncs the complete models of one listed job; false when its sync did not even start. */
static bool sync_listed(struct walk *w, const struct hs_job *job)
{
    struct hs_sync_request rq = {
        .job_id = job->id, .all_complete = true, .trigger = "backfill", .prefetched = job};
    struct hs_sync_report *rep = NULL;
    struct hs_error serr = {0};
    if (hs_sync_job(&w->e, &rq, &rep, &serr) != HS_OK) {
        fprintf(stderr, "%shoversync: backfill: job %lld: %s\n", w->pg.tty ? "\n" : "",
                (long long)job->id, serr.msg);
        add_failure(&w->pg, job->id, 0, serr.msg);
        return false;
    }
    count_report(&w->pg, rep);
    hs_sync_report_free(rep);
    return true;
}

/* Stores (and syncs) one page; *last gets the newest updated_at walked, *held the oldest of a
 * job whose sync did not start (0 if none). Exit code style. */
static int walk_page(struct walk *w, const struct hs_job_page *page, int64_t *last, int64_t *held)
{
    struct hs_store *st = w->c->store;
    for (size_t i = 0; i < page->n_jobs; i++) {
        const struct hs_job *job = &page->jobs[i];
        struct hs_error err = {0};
        int r = st->records->job_upsert(st, job, w->e.connection_key, NULL, &err);
        if (r)
            return cli_report("backfill: storing a job failed", r, &err);
        int64_t t = 0;
        if (job->updated_at && hs_iso8601_parse(job->updated_at, &t) == HS_OK && t > *last)
            *last = t;
        w->pg.jobs++;
        bool any_complete = false;
        for (size_t k = 0; k < job->n_models; k++)
            any_complete |= hs_model_is_complete(&job->models[k]);
        if (w->do_sync && any_complete && !sync_listed(w, job) && t > 0 && (!*held || t < *held))
            *held = t;
    }
    return EXIT_OK;
}

static int save_checkpoint(struct walk *w, const char *name, int64_t updated_since)
{
    /* Jobs sharing the boundary second are walked again on resume: harmless, a sync is
     * idempotent, and nothing is skipped. */
    char *val =
        hs_aprintf("{\"updated_since\":%lld,\"jobs\":%lld,\"models_synced\":%lld}",
                   (long long)updated_since, (long long)w->pg.jobs, (long long)w->pg.models_synced);
    struct hs_error err = {0};
    int r = w->c->store->records->checkpoint_put(w->c->store, name, val, &err);
    free(val);
    return r ? cli_report("backfill: saving the checkpoint failed", r, &err) : EXIT_OK;
}

/* One walk of List Jobs (archived jobs, or the others) from its checkpoint; last: no walk
 * follows (the bar's line ends). */
static int walk_list(struct walk *w, bool archived, bool last_walk)
{
    struct cli *c = w->c;
    /* One checkpoint per kind of walk: the same arguments resume the same walk. */
    char *ckpt =
        hs_aprintf("backfill:%s:since=%lld:state=%s%s%s", hs_config_str(&c->cfg, CFG_CONNECTION),
                   (long long)w->since, w->state ? w->state : "any", w->do_sync ? ":sync" : "",
                   archived ? ":archived" : "");
    int64_t cursor = w->since;
    char *saved = NULL;
    if (!w->restart && c->store->records->checkpoint_get(c->store, ckpt, &saved, NULL) == HS_OK) {
        json_t *j = NULL;
        int64_t v64;
        if (hs_json_parse(saved, strlen(saved), 4096, &j, NULL) == HS_OK &&
            hs_json_i64(j, "updated_since", &v64) && v64 > cursor) {
            cursor = v64;
            fprintf(stderr, "backfill: resuming %sfrom jobs updated since %lld\n",
                    archived ? "the archived jobs " : "", (long long)v64);
        }
        json_decref(j);
        free(saved);
    }
    struct hs_list_params p = {.archived = archived ? 1 : -1,
                               .per = 100,
                               .page = 1,
                               .sort_by = "updated_at",
                               .sort_order = "ASC",
                               .updated_since = cursor,
                               .reconstruction_state = w->state};
    int rc = EXIT_OK;
    int64_t held = 0, total = 0;
    for (;;) {
        struct hs_job_page *page = NULL;
        struct hs_error err = {0};
        int r = hs_client_list_jobs(c->client, &p, &page, &err);
        if (r) {
            rc = cli_report("backfill: listing jobs failed (run it again to resume)", r, &err);
            break;
        }
        if (p.page == 1) {
            total = page->total > 0 ? page->total : (int64_t)page->n_jobs;
            w->pg.total += total;
        }
        int64_t last = 0;
        rc = walk_page(w, page, &last, &held);
        w->pg.pages++;
        bool more = page->has_more && page->n_jobs > 0;
        int64_t next = page->next_page ? page->next_page : p.page + 1;
        hs_job_page_free(page);
        if (rc != EXIT_OK)
            break;
        /* Never past a job whose sync did not start: the next run walks it again. */
        int64_t upto = held && held < last ? held : last;
        if (upto > 0 && (rc = save_checkpoint(w, ckpt, upto)) != EXIT_OK)
            break;
        show_progress(&w->pg, !more && last_walk);
        hs_crashpoint("backfill_page"); /* tests: killed after a checkpointed page */
        if (!more)
            break;
        p.page = next;
    }
    free(ckpt);
    return rc;
}

/* The closing lines: what was done, which models failed and what to run next. */
static int report(const struct walk *w, char **argv, int argc)
{
    const struct progress *p = &w->pg;
    printf("backfill: %lld jobs indexed, %lld models synced, %lld models not synced\n",
           (long long)p->jobs, (long long)p->models_synced, (long long)p->models_failed);
    if (p->n_failed == 0)
        return EXIT_OK;
    for (size_t i = 0; i < p->n_failed && i < FAILURES_SHOWN; i++) {
        const struct failure *f = &p->failed[i];
        if (f->model_id)
            printf("  job %lld model %lld: %s\n", (long long)f->job_id, (long long)f->model_id,
                   f->why);
        else
            printf("  job %lld: %s\n", (long long)f->job_id, f->why);
    }
    if (p->n_failed > FAILURES_SHOWN)
        printf("  ... and %zu more (sync_results in the store lists them all)\n",
               p->n_failed - FAILURES_SHOWN);
    printf("Next: run the same backfill again to retry them first:\n  hoversync");
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--restart") != 0)
            printf(" %s", argv[i]);
    printf("\n(or hoversync sync --pending, which retries every open selection)\n");
    return EXIT_FAIL;
}

int cmd_backfill(struct cli *c, int argc, char **argv)
{
    struct walk w = {.c = c};
    const char *v = NULL;
    bool archived = false, bad = false;
    /* Bulk work: background for the request budget (hover/limiter.h). */
    hs_client_set_thread_priority(HS_PRIO_BACKGROUND);
    for (int i = 1; i < argc && !bad; i++) {
        if (cli_is_help(argv[i])) {
            backfill_help();
            return EXIT_OK;
        } else if (strcmp(argv[i], "--sync") == 0) {
            w.do_sync = true;
        } else if (strcmp(argv[i], "--restart") == 0) {
            w.restart = true;
        } else if (strcmp(argv[i], "--archived") == 0) {
            archived = true;
        } else if (cli_opt_value(argc, argv, &i, "--since", &v, &bad)) {
            if (!bad && hs_parse_date_arg(v, &w.since) != 0) {
                fprintf(stderr, "hoversync: --since takes YYYY-MM-DD, ISO-8601 or unix seconds\n");
                bad = true;
            }
        } else if (cli_opt_value(argc, argv, &i, "--state", &v, &bad)) {
            if (!bad && strcmp(v, "completed") != 0 && strcmp(v, "failed") != 0) {
                fprintf(stderr, "hoversync: --state must be completed or failed\n");
                bad = true;
            }
            w.state = v;
        } else {
            fprintf(stderr, "hoversync: backfill: unknown argument '%s'\n", argv[i]);
            bad = true;
        }
    }
    if (bad)
        return EXIT_USAGE;

    w.e = (struct hs_sync_engine){.client = c->client,
                                  .store = c->store,
                                  .data_dir = hs_config_str(&c->cfg, CFG_DATA_DIR),
                                  .connection_key = hs_config_str(&c->cfg, CFG_CONNECTION)};
    struct hs_error err = {0};
    if (w.do_sync && cli_clean_data_dir(c, &err) != HS_OK)
        return cli_report("backfill: cannot use the data directory", err.code, &err);
    w.pg.tty = isatty(STDERR_FILENO);
    hs_client_set_wait_hook(c->client, on_wait, &w.pg);

    if (w.do_sync)
        retry_errors(&w);
    int rc = walk_list(&w, false, !archived);
    if (rc == EXIT_OK && archived)
        rc = walk_list(&w, true, true);
    if (rc == EXIT_OK)
        rc = report(&w, argv, argc);
    hs_client_set_wait_hook(c->client, NULL, NULL);
    for (size_t i = 0; i < w.pg.n_failed; i++)
        free(w.pg.failed[i].why);
    free(w.pg.failed);
    return rc;
}
