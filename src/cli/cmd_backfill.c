/* cmd_backfill.c: `hoversync backfill`: walks List Jobs by updated_at to index historic jobs
 * (and with --sync, syncs every complete model), checkpointed after every page so that an
 * interrupted run resumes where it stopped and a later run only walks what changed since.
 *
 * --sync goes through the work queue (worker/bulk.h): each listed job is queued, in one
 * transaction with its complete models selected, at bulk priority with the job as listed (no
 * Show Job), before the page's checkpoint; work queue threads of this process (this
 * connection's items only, through clones of the command's client: one budget) run the items
 * while the walk goes on, a `serve` on the same store may take some, and the command waits for
 * every job it queued to settle. A killed backfill loses nothing it queued.
 *
 * Nothing that failed is walked past for good: models whose sync ended in error keep an open
 * selection and their item is retried by the queue; the next backfill --sync retries them
 * first, at once; a job that could not be queued holds the checkpoint back, so the next run
 * walks it again. Hover lists archived jobs only when asked (archived=true lists those alone),
 * so --archived makes a second walk. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/crashpoint.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/str.h"
#include "store/records.h"
#include "store/work.h"
#include "webhook/health.h"
#include "worker/bulk.h"

#define FAILURES_SHOWN 20

static void backfill_help(void)
{
    puts("Usage: hoversync backfill [--since DATE] [--state completed|failed] [--sync]\n"
         "                          [--archived] [--restart]\n"
         "\n"
         "Indexes every job updated since DATE (all jobs without it) into the store, oldest\n"
         "update first, 100 jobs a request; archived jobs too with --archived. With --sync,\n"
         "every complete model of those jobs is synced too, through the work queue: this\n"
         "process runs --event-workers threads for it (a `serve` or `worker` on the same store\n"
         "may take some of the jobs), and waits until every job it queued is done. Progress is\n"
         "checkpointed after every page: an interrupted backfill resumes where it stopped\n"
         "(what it queued stays queued), and running the same backfill later only walks jobs\n"
         "updated since. Models that could not be synced are named at the end; running the\n"
         "same backfill again retries them first.\n"
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
    pthread_mutex_t lock; /* the bar and the failures (the walk, and the queue's threads) */
    bool tty;
    int64_t jobs, total, models_synced, models_failed, pages;
    int64_t waiting_ms; /* a wait on Hover's rate limit under way, shown in the bar */
    char budget[160];   /* the budget's figures (refresh_budget), shown in the bar */
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
        fprintf(stderr, "] %lld/%lld jobs, %lld models synced%s%s", (long long)p->jobs,
                (long long)p->total, (long long)p->models_synced, wait, p->budget);
        if (final)
            fputc('\n', stderr);
    } else {
        fprintf(stderr, "backfill: page %lld, %lld/%lld jobs indexed, %lld models synced%s%s\n",
                (long long)p->pages, (long long)p->jobs, (long long)p->total,
                (long long)p->models_synced, wait, p->budget);
    }
    fflush(stderr);
}

/* The bar, drawn by the walk's thread. */
static void draw(struct progress *p, bool final)
{
    pthread_mutex_lock(&p->lock);
    show_progress(p, final);
    pthread_mutex_unlock(&p->lock);
}

/* The clients' hook (the walk's and the queue threads'): a wait on Hover's rate limit is a log
 * line and shows in the bar. */
static void on_wait(void *ctx, const struct hs_client_wait *w)
{
    struct progress *p = ctx;
    pthread_mutex_lock(&p->lock);
    if (p->tty)
        fputs("\r\033[K", stderr); /* the log line starts on a clean line */
    hs_client_log_wait(w);
    p->waiting_ms = w->wait_ms;
    show_progress(p, false);
    p->waiting_ms = 0;
    pthread_mutex_unlock(&p->lock);
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

struct walk {
    struct cli *c;
    const char *conn;
    int64_t since;
    const char *state;
    bool do_sync, restart;
    struct progress pg;
    /* --sync: the queue's threads of this process, and the jobs queued */
    struct cli_workers cw; /* the outbox the threads' syncs notify through */
    struct hs_events *events;
    struct hs_bulk *bulk;
    int64_t synced_before; /* models synced by the retries, before the walk's bulk */
};

/* The threads' Hover clients: clones of the command's, for its connection only. */
static int clone_acquire(void *ctx, const char *key, struct hs_client **out, struct hs_error *err)
{
    struct walk *w = ctx;
    if (!hs_streq(key, w->conn))
        return hs_fail(err, HS_ERR_NO_CREDENTIALS, "backfill holds the connection %s only",
                       w->conn);
    int rc = hs_client_clone(w->c->client, out);
    if (rc)
        return hs_fail(err, rc, "cannot clone the Hover client");
    hs_client_set_wait_hook(*out, on_wait, &w->pg); /* a clone does not inherit it */
    return HS_OK;
}

static void clone_release(void *ctx, struct hs_client *c)
{
    (void)ctx;
    hs_client_free(c);
}

/* The work queue's threads of this process: this connection's items, bulk or not. */
static int start_queue(struct walk *w)
{
    struct cli *c = w->c;
    struct hs_error err = {0};
    int rc = cli_workers_outbox(c, &w->cw);
    if (rc != EXIT_OK)
        return rc;
    struct hs_events_config ec = {.data_dir = hs_config_str(&c->cfg, CFG_DATA_DIR),
                                  .artifacts = hs_config_str(&c->cfg, CFG_ARTIFACTS),
                                  .blobs = c->blobs,
                                  .threads = (int)hs_config_int(&c->cfg, CFG_EVENT_WORKERS),
                                  .download_slots = (int)hs_config_int(&c->cfg, CFG_DOWNLOAD_SLOTS),
                                  .only_connection = w->conn};
    struct hs_client_provider cp = {clone_acquire, clone_release, w};
    int r = hs_events_new(&ec, c->store, cp, w->cw.outbox, NULL, &w->events, &err);
    if (r == HS_OK)
        r = hs_events_start(w->events, &err);
    if (r == HS_OK)
        r = hs_bulk_new(c->store, NULL, &w->bulk, &err);
    return r ? cli_report("backfill: the work queue", r, &err) : EXIT_OK;
}

static void stop_queue(struct walk *w)
{
    hs_events_free(w->events); /* the items under way end first */
    w->events = NULL;
    hs_bulk_free(w->bulk);
    w->bulk = NULL;
    cli_workers_stop(&w->cw);
}

static void note_failure(void *ctx, int64_t job_id, int64_t model_id, const char *why)
{
    add_failure(ctx, job_id, model_id, why);
}

/* Waits until every job queued so far has settled (the bar moving as models land); then their
 * failures are the progress's, and a new bulk takes the next jobs. */
/* The budget in the bar, as `hoversync status` shows it: the requests of the last minute, the
 * jobs queued and the time to drain them at that pace. Left as it was when the store cannot say. */
static void refresh_budget(struct walk *w)
{
    struct cli *c = w->c;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, due = 0, queued = 0;
    const char *name = hs_config_str(&c->cfg, CFG_CLIENT_ID);
    json_t *b = NULL;
    if (c->store->work->work_depth(c->store, &due, &queued, NULL, now_ms, NULL) != HS_OK ||
        hs_health_budget(c->store, name ? name : "", hs_config_int(&c->cfg, CFG_RATE_LIMIT), now_ms,
                         queued, &b, NULL) != HS_OK)
        return;
    json_t *drain = json_object_get(b, "drain_seconds");
    char eta[48] = "";
    if (json_is_integer(drain) && json_integer_value(drain) > 0)
        snprintf(eta, sizeof eta, ", drained in ~%lld min",
                 (long long)(json_integer_value(drain) + 59) / 60);
    pthread_mutex_lock(&w->pg.lock);
    snprintf(w->pg.budget, sizeof w->pg.budget,
             "; budget %lld/%lld a minute (%lld background), %lld jobs queued%s",
             (long long)(json_integer_value(json_object_get(b, "interactive_last_minute")) +
                         json_integer_value(json_object_get(b, "background_last_minute"))),
             (long long)json_integer_value(json_object_get(b, "limit")),
             (long long)json_integer_value(json_object_get(b, "background_last_minute")),
             (long long)queued, eta);
    pthread_mutex_unlock(&w->pg.lock);
    json_decref(b);
}

static int drain(struct walk *w)
{
    for (;;) {
        bool all = false;
        struct hs_bulk_counts bc;
        struct hs_error err = {0};
        int rc = hs_bulk_poll(w->bulk, &all, &bc, &err);
        if (rc)
            return cli_report("backfill: reading the work queue", rc, &err);
        pthread_mutex_lock(&w->pg.lock);
        w->pg.models_synced = w->synced_before + bc.synced;
        if (all)
            hs_bulk_failures(w->bulk, note_failure, &w->pg);
        pthread_mutex_unlock(&w->pg.lock);
        if (all) {
            w->synced_before += bc.synced;
            hs_bulk_free(w->bulk);
            return hs_bulk_new(w->c->store, NULL, &w->bulk, &err) ? EXIT_FAIL : EXIT_OK;
        }
        refresh_budget(w);
        draw(&w->pg, false);
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* A rerun retries, first and at once, what an earlier run left in error (selections of this
 * connection; their items are backing off in the queue). */
static int retry_errors(struct walk *w)
{
    struct hs_selection *sels = NULL;
    size_t ns = 0, jobs = 0;
    struct hs_error err = {0};
    int rc = w->c->store->records->selections_open(w->c->store, &sels, &ns, &err);
    if (rc)
        return cli_report("backfill: reading the selections", rc, &err);
    int64_t *ids = hs_calloc(ns + 1, sizeof *ids);
    bool *done = hs_calloc(ns + 1, sizeof *done);
    for (size_t i = 0; rc == HS_OK && i < ns; i++) {
        if (done[i] || sels[i].status != HS_SEL_ERROR || !hs_streq(sels[i].connection_key, w->conn))
            continue;
        size_t n = 0;
        for (size_t k = i; k < ns; k++)
            if (!done[k] && sels[k].job_id == sels[i].job_id && sels[k].status == HS_SEL_ERROR &&
                hs_streq(sels[k].connection_key, w->conn)) {
                ids[n++] = sels[k].model_id;
                done[k] = true;
            }
        rc = hs_bulk_retry(w->bulk, w->conn, sels[i].job_id, ids, n, &err);
        jobs++;
    }
    free(ids);
    free(done);
    hs_selections_free(sels, ns);
    if (rc)
        return cli_report("backfill: retrying the jobs left in error", rc, &err);
    if (!jobs)
        return EXIT_OK;
    hs_events_wake(w->events);
    if ((rc = drain(w)) != EXIT_OK)
        return rc;
    fprintf(stderr, "backfill: retried %zu job%s left in error by an earlier run\n", jobs,
            jobs == 1 ? "" : "s");
    return EXIT_OK;
}

/* Queues the complete models of one listed job; false when it could not be queued. */
static bool queue_listed(struct walk *w, const struct hs_job *job)
{
    struct hs_error err = {0};
    if (hs_bulk_add(w->bulk, w->conn, job, NULL, &err) != HS_OK) {
        fprintf(stderr, "%shoversync: backfill: job %lld: %s\n", w->pg.tty ? "\n" : "",
                (long long)job->id, err.msg);
        pthread_mutex_lock(&w->pg.lock);
        add_failure(&w->pg, job->id, 0, err.msg);
        pthread_mutex_unlock(&w->pg.lock);
        return false;
    }
    return true;
}

/* Stores (and queues) one page; *last gets the newest updated_at walked, *held the oldest of a
 * job that could not be queued (0 if none). Exit code style. */
static int walk_page(struct walk *w, const struct hs_job_page *page, int64_t *last, int64_t *held)
{
    struct hs_store *st = w->c->store;
    for (size_t i = 0; i < page->n_jobs; i++) {
        const struct hs_job *job = &page->jobs[i];
        struct hs_error err = {0};
        int r = st->records->job_upsert(st, job, w->conn, NULL, &err);
        if (r)
            return cli_report("backfill: storing a job failed", r, &err);
        int64_t t = 0;
        if (job->updated_at && hs_iso8601_parse(job->updated_at, &t) == HS_OK && t > *last)
            *last = t;
        w->pg.jobs++;
        if (w->do_sync && !queue_listed(w, job) && t > 0 && (!*held || t < *held))
            *held = t;
    }
    if (w->do_sync) {
        hs_events_wake(w->events);
        struct hs_bulk_counts bc;
        if (hs_bulk_poll(w->bulk, NULL, &bc, NULL) == HS_OK) {
            pthread_mutex_lock(&w->pg.lock);
            w->pg.models_synced = w->synced_before + bc.synced;
            pthread_mutex_unlock(&w->pg.lock);
        }
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
        if (w->do_sync)
            refresh_budget(w);
        draw(&w->pg, !more && last_walk && !w->do_sync);
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
    printf("\n(or leave them to `hoversync serve` or `hoversync worker`: their work queue retries\n"
           "them; hoversync sync --pending retries every open selection now)\n");
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

    w.conn = hs_config_str(&c->cfg, CFG_CONNECTION);
    struct hs_error err = {0};
    if (w.do_sync && cli_clean_data_dir(c, &err) != HS_OK)
        return cli_report("backfill: cannot use the data directory", err.code, &err);
    w.pg.tty = isatty(STDERR_FILENO);
    pthread_mutex_init(&w.pg.lock, NULL);
    hs_client_set_wait_hook(c->client, on_wait, &w.pg);

    int rc = w.do_sync ? start_queue(&w) : EXIT_OK;
    if (rc == EXIT_OK && w.do_sync)
        rc = retry_errors(&w);
    if (rc == EXIT_OK)
        rc = walk_list(&w, false, !archived);
    if (rc == EXIT_OK && archived)
        rc = walk_list(&w, true, true);
    if (rc == EXIT_OK && w.do_sync && (rc = drain(&w)) == EXIT_OK)
        draw(&w.pg, true);
    if (w.do_sync)
        stop_queue(&w);
    hs_client_set_wait_hook(c->client, NULL, NULL);
    if (rc == EXIT_OK)
        rc = report(&w, argv, argc);
    for (size_t i = 0; i < w.pg.n_failed; i++)
        free(w.pg.failed[i].why);
    free(w.pg.failed);
    pthread_mutex_destroy(&w.pg.lock);
    return rc;
}
