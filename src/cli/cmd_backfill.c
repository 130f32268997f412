/* cmd_backfill.c: `hoversync backfill`: walks List Jobs by updated_at to index historic jobs
 * (and with --sync, syncs every complete model), checkpointed after every page so that an
 * interrupted run resumes where it stopped and a later run only walks what changed since. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/crashpoint.h"
#include "core/json.h"
#include "core/mem.h"
#include "core/str.h"
#include "store/blobs.h"
#include "store/records.h"
#include "sync/engine.h"

static void backfill_help(void)
{
    puts(
        "Usage: hoversync backfill [--since DATE] [--state completed|failed] [--sync] [--restart]\n"
        "\n"
        "Indexes every job updated since DATE (all jobs without it) into the store, oldest\n"
        "update first, 100 jobs a request. With --sync, every complete model of those jobs is\n"
        "synced too. Progress is checkpointed after every page: an interrupted backfill resumes\n"
        "where it stopped, and running the same backfill later only walks jobs updated since.\n"
        "\n"
        "  --since DATE    YYYY-MM-DD, ISO-8601 or unix seconds\n"
        "  --state STATE   only jobs in this reconstruction state (completed or failed)\n"
        "  --sync          sync every complete model of every job walked\n"
        "  --restart       ignore the checkpoint of a previous run\n");
}

struct progress {
    bool tty;
    int64_t jobs, total, models_synced, models_failed, pages;
};

static void show_progress(const struct progress *p, bool final)
{
    if (p->tty) {
        int width = 30, filled = p->total > 0 ? (int)(p->jobs * width / p->total) : 0;
        if (filled > width)
            filled = width;
        fprintf(stderr, "\r[");
        for (int i = 0; i < width; i++)
            fputc(i < filled ? '#' : ' ', stderr);
        fprintf(stderr, "] %lld/%lld jobs, %lld models synced", (long long)p->jobs,
                (long long)p->total, (long long)p->models_synced);
        if (final)
            fputc('\n', stderr);
    } else {
        fprintf(stderr, "backfill: page %lld, %lld/%lld jobs indexed, %lld models synced\n",
                (long long)p->pages, (long long)p->jobs, (long long)p->total,
                (long long)p->models_synced);
    }
}

int cmd_backfill(struct cli *c, int argc, char **argv)
{
    int64_t since = 0;
    const char *state = NULL, *v = NULL;
    bool do_sync = false, restart = false, bad = false;
    /* Bulk work: background for the request budget (hover/limiter.h). */
    hs_client_set_thread_priority(HS_PRIO_BACKGROUND);
    for (int i = 1; i < argc && !bad; i++) {
        if (cli_is_help(argv[i])) {
            backfill_help();
            return EXIT_OK;
        } else if (strcmp(argv[i], "--sync") == 0) {
            do_sync = true;
        } else if (strcmp(argv[i], "--restart") == 0) {
            restart = true;
        } else if (cli_opt_value(argc, argv, &i, "--since", &v, &bad)) {
            if (!bad && hs_parse_date_arg(v, &since) != 0) {
                fprintf(stderr, "hoversync: --since takes YYYY-MM-DD, ISO-8601 or unix seconds\n");
                bad = true;
            }
        } else if (cli_opt_value(argc, argv, &i, "--state", &v, &bad)) {
            if (!bad && strcmp(v, "completed") != 0 && strcmp(v, "failed") != 0) {
                fprintf(stderr, "hoversync: --state must be completed or failed\n");
                bad = true;
            }
            state = v;
        } else {
            fprintf(stderr, "hoversync: backfill: unknown argument '%s'\n", argv[i]);
            bad = true;
        }
    }
    if (bad)
        return EXIT_USAGE;

    /* One checkpoint per kind of walk: the same arguments resume the same walk. */
    char *ckpt_name =
        hs_aprintf("backfill:%s:since=%lld:state=%s%s", hs_config_str(&c->cfg, CFG_CONNECTION),
                   (long long)since, state ? state : "any", do_sync ? ":sync" : "");
    struct hs_error err = {0};
    int64_t cursor = since;
    char *saved = NULL;
    if (!restart && c->store->records->checkpoint_get(c->store, ckpt_name, &saved, NULL) == HS_OK) {
        json_t *j = NULL;
        int64_t v64;
        if (hs_json_parse(saved, strlen(saved), 4096, &j, NULL) == HS_OK &&
            hs_json_i64(j, "updated_since", &v64) && v64 > cursor) {
            cursor = v64;
            fprintf(stderr, "backfill: resuming from jobs updated since %lld\n", (long long)v64);
        }
        json_decref(j);
        free(saved);
    }

    const char *data_dir = hs_config_str(&c->cfg, CFG_DATA_DIR);
    struct hs_sync_engine e = {.client = c->client,
                               .store = c->store,
                               .data_dir = data_dir,
                               .connection_key = hs_config_str(&c->cfg, CFG_CONNECTION)};
    if (do_sync && (hs_blob_clean_tmp(data_dir, &err)) != HS_OK) {
        free(ckpt_name);
        return cli_report("backfill: cannot use the data directory", err.code, &err);
    }

    struct progress pg = {.tty = isatty(STDERR_FILENO)};
    struct hs_list_params p = {.archived = -1,
                               .per = 100,
                               .page = 1,
                               .sort_by = "updated_at",
                               .sort_order = "ASC",
                               .updated_since = cursor,
                               .reconstruction_state = state};
    int rc = EXIT_OK;
    for (;;) {
        struct hs_job_page *page = NULL;
        int r = hs_client_list_jobs(c->client, &p, &page, &err);
        if (r) {
            rc = cli_report("backfill: listing jobs failed (run it again to resume)", r, &err);
            break;
        }
        if (pg.total == 0)
            pg.total = page->total > 0 ? page->total : (int64_t)page->n_jobs;
        int64_t last_updated = 0;
        for (size_t i = 0; i < page->n_jobs && rc == EXIT_OK; i++) {
            const struct hs_job *job = &page->jobs[i];
            r = c->store->records->job_upsert(c->store, job, e.connection_key, NULL, &err);
            if (r) {
                rc = cli_report("backfill: storing a job failed", r, &err);
                break;
            }
            int64_t t;
            if (job->updated_at && hs_iso8601_parse(job->updated_at, &t) == HS_OK &&
                t > last_updated)
                last_updated = t;
            pg.jobs++;
            bool any_complete = false;
            for (size_t k = 0; k < job->n_models; k++)
                any_complete |= hs_model_is_complete(&job->models[k]);
            if (!do_sync || !any_complete)
                continue;
            struct hs_sync_request rq = {
                .job_id = job->id, .all_complete = true, .trigger = "backfill", .prefetched = job};
            struct hs_sync_report *rep = NULL;
            struct hs_error serr = {0};
            r = hs_sync_job(&e, &rq, &rep, &serr);
            if (r) {
                fprintf(stderr, "%shoversync: backfill: job %lld: %s\n", pg.tty ? "\n" : "",
                        (long long)job->id, serr.msg);
                pg.models_failed++;
                continue;
            }
            for (size_t k = 0; k < rep->n_models; k++) {
                if (rep->models[k].result == HS_RESULT_SYNCED)
                    pg.models_synced++;
                else
                    pg.models_failed++;
            }
            hs_sync_report_free(rep);
        }
        pg.pages++;
        bool more = page->has_more && page->n_jobs > 0;
        int64_t next = page->next_page ? page->next_page : p.page + 1;
        hs_job_page_free(page);
        if (rc != EXIT_OK)
            break;
        if (last_updated > 0) {
            /* Jobs sharing the boundary second are walked again on resume: harmless, a sync is
             * idempotent, and nothing is skipped. */
            char *val = hs_aprintf("{\"updated_since\":%lld,\"jobs\":%lld,\"models_synced\":%lld}",
                                   (long long)last_updated, (long long)pg.jobs,
                                   (long long)pg.models_synced);
            r = c->store->records->checkpoint_put(c->store, ckpt_name, val, &err);
            free(val);
            if (r) {
                rc = cli_report("backfill: saving the checkpoint failed", r, &err);
                break;
            }
        }
        show_progress(&pg, !more);
        hs_crashpoint("backfill_page"); /* tests: killed after a checkpointed page */
        if (!more)
            break;
        p.page = next;
    }
    if (rc == EXIT_OK) {
        printf("backfill: %lld jobs indexed, %lld models synced, %lld models not synced\n",
               (long long)pg.jobs, (long long)pg.models_synced, (long long)pg.models_failed);
        if (pg.models_failed)
            rc = EXIT_FAIL;
    }
    free(ckpt_name);
    return rc;
}
