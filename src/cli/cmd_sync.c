/* cmd_sync.c: `hoversync sync`: pulls the selected models of a job (or every open selection with
 * --pending) into the store, and prints what happened per model and artifact. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "core/mem.h"
#include "store/blobs.h"
#include "sync/engine.h"

#define MAX_MODELS 256

static void sync_help(void)
{
    puts("Usage: hoversync sync JOB_ID [--model MODEL_ID]... [--all-complete] [--json]\n"
         "       hoversync sync --pending [--json]\n"
         "\n"
         "Reads the job fresh from Hover and stores the selected models: for a complete model\n"
         "its details, every measurements JSON version, the PDF, the exports and the images;\n"
         "a model still processing is kept as pending and synced once complete; a model that\n"
         "failed at Hover is recorded as such, with no artifact request. Syncing again stores\n"
         "nothing twice and downloads only what changed. Every download is checked before it\n"
         "is stored (its length, its digests, its PDF, JPEG or JSON format): a short or\n"
         "damaged one leaves its model in error, and --pending fetches it again.\n"
         "\n"
         "  --model ID       sync this model (repeatable)\n"
         "  --all-complete   sync every model of the job whose state is complete\n"
         "  --pending        run every pending or interrupted selection now\n"
         "  --json           one JSON object per job: job_id, status (synced, partial, failed),\n"
         "                   models[] (id, result, message, artifacts[] (kind, sha256, bytes,\n"
         "                   path)); with --pending an array of them\n"
         "\n"
         "Exit status: 0 when every selected model ended synced or pending, 1 otherwise.\n");
}

static json_t *report_json(const struct hs_sync_report *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "job_id", json_integer(r->job_id));
    json_object_set_new(o, "job_name", r->job_name ? json_string(r->job_name) : json_null());
    json_object_set_new(o, "reconstruction_state",
                        r->reconstruction_state ? json_string(r->reconstruction_state)
                                                : json_null());
    json_object_set_new(o, "status", json_string(r->status));
    json_object_set_new(o, "run_id", json_integer(r->run_id));
    json_object_set_new(o, "hover_requests", json_integer(r->hover_requests));
    json_t *models = json_array();
    for (size_t i = 0; i < r->n_models; i++) {
        const struct hs_sync_model *m = &r->models[i];
        json_t *mo = json_object();
        json_object_set_new(mo, "id", json_integer(m->id));
        json_object_set_new(mo, "name", m->name ? json_string(m->name) : json_null());
        json_object_set_new(mo, "state", m->state ? json_string(m->state) : json_null());
        json_object_set_new(mo, "result", json_string(hs_model_result_name(m->result)));
        json_object_set_new(mo, "message", m->message ? json_string(m->message) : json_null());
        json_object_set_new(mo, "downloaded", json_integer(m->downloaded));
        json_object_set_new(mo, "unchanged", json_integer(m->unchanged));
        json_t *arts = json_array();
        for (size_t k = 0; k < m->n_artifacts; k++) {
            const struct hs_sync_artifact *a = &m->artifacts[k];
            json_t *ao = json_object();
            json_object_set_new(ao, "kind", json_string(a->kind));
            json_object_set_new(ao, "sha256", json_string(a->sha256));
            json_object_set_new(ao, "bytes", json_integer(a->bytes));
            json_object_set_new(ao, "path", a->path ? json_string(a->path) : json_null());
            json_object_set_new(ao, "content_type",
                                a->content_type ? json_string(a->content_type) : json_null());
            json_object_set_new(ao, "downloaded", json_boolean(a->downloaded));
            json_object_set_new(ao, "changed", json_boolean(a->changed));
            json_array_append_new(arts, ao);
        }
        json_object_set_new(mo, "artifacts", arts);
        json_array_append_new(models, mo);
    }
    json_object_set_new(o, "models", models);
    return o;
}

static void report_text(const struct hs_sync_report *r)
{
    printf("Job %lld  %s  (%s): %s\n", (long long)r->job_id, r->job_name ? r->job_name : "",
           r->reconstruction_state ? r->reconstruction_state : "-", r->status);
    for (size_t i = 0; i < r->n_models; i++) {
        const struct hs_sync_model *m = &r->models[i];
        printf("  %-10lld  ", (long long)m->id);
        out_cell(stdout, m->name, 20);
        printf("  %-15s", hs_model_result_name(m->result));
        if (m->result == HS_RESULT_SYNCED)
            printf("  %zu artifacts (%lld downloaded, %lld unchanged)\n", m->n_artifacts,
                   (long long)m->downloaded, (long long)m->unchanged);
        else
            printf("  %s\n", m->message ? m->message : "");
    }
    printf("  %lld request%s to Hover\n", (long long)r->hover_requests,
           r->hover_requests == 1 ? "" : "s");
}

/* The one-line reason on stderr when a sync did not end well. */
static void report_failure(const struct hs_sync_report *r)
{
    if (r->n_models == 0) {
        fprintf(stderr, "hoversync: sync: job %lld has no complete model to sync\n",
                (long long)r->job_id);
        return;
    }
    for (size_t i = 0; i < r->n_models; i++) {
        const struct hs_sync_model *m = &r->models[i];
        if (m->result == HS_RESULT_SYNCED || m->result == HS_RESULT_PENDING)
            continue;
        fprintf(stderr, "hoversync: sync: job %lld model %lld %s: %s\n", (long long)r->job_id,
                (long long)m->id, hs_model_result_name(m->result), m->message ? m->message : "");
        return;
    }
}

/* What the command line asks for. */
struct sync_opts {
    int64_t models[MAX_MODELS];
    size_t nmodels;
    bool json, all, pending;
    int64_t job_id;
};

/* The command line into o: EXIT_OK, EXIT_USAGE (said on stderr), or -1 after --help. */
static int parse_sync(int argc, char **argv, struct sync_opts *o)
{
    bool bad = false;
    const char *job_arg = NULL, *v = NULL;
    for (int i = 1; i < argc && !bad; i++) {
        if (cli_is_help(argv[i])) {
            sync_help();
            return -1;
        } else if (strcmp(argv[i], "--json") == 0) {
            o->json = true;
        } else if (strcmp(argv[i], "--all-complete") == 0) {
            o->all = true;
        } else if (strcmp(argv[i], "--pending") == 0) {
            o->pending = true;
        } else if (cli_opt_value(argc, argv, &i, "--model", &v, &bad)) {
            if (!bad && o->nmodels == MAX_MODELS) {
                fprintf(stderr, "hoversync: at most %d --model options\n", MAX_MODELS);
                bad = true;
            }
            if (!bad)
                bad = cli_int_arg("--model", v, 1, INT64_MAX, &o->models[o->nmodels++]) != 0;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "hoversync: sync: unknown option '%s'\n", argv[i]);
            bad = true;
        } else if (job_arg) {
            fprintf(stderr, "hoversync: sync takes one JOB_ID\n");
            bad = true;
        } else {
            job_arg = argv[i];
        }
    }
    if (bad)
        return EXIT_USAGE;
    if (o->pending && (job_arg || o->nmodels || o->all)) {
        fprintf(stderr, "hoversync: sync --pending takes no JOB_ID, --model or --all-complete\n");
        return EXIT_USAGE;
    }
    if (!o->pending && !job_arg) {
        fprintf(stderr,
                "hoversync: sync needs a JOB_ID (or --pending); see hoversync sync --help\n");
        return EXIT_USAGE;
    }
    if (!o->pending && !o->all && o->nmodels == 0) {
        fprintf(stderr, "hoversync: sync needs --model MODEL_ID or --all-complete\n");
        return EXIT_USAGE;
    }
    if (o->all && o->nmodels) {
        fprintf(stderr, "hoversync: --model and --all-complete exclude each other\n");
        return EXIT_USAGE;
    }
    if (job_arg && cli_int_arg("JOB_ID", job_arg, 1, INT64_MAX, &o->job_id) != 0)
        return EXIT_USAGE;
    return EXIT_OK;
}

/* sync --pending: every pending selection, one report a job. */
static int sync_pending(struct hs_sync_engine *e, bool json)
{
    struct hs_sync_report **reports = NULL;
    size_t n = 0;
    struct hs_error err = {0};
    int rc = hs_sync_pending(e, &reports, &n, &err);
    json_t *arr = json_array();
    bool ok = rc == HS_OK;
    for (size_t i = 0; i < n; i++) {
        if (json)
            json_array_append_new(arr, report_json(reports[i]));
        else
            report_text(reports[i]);
        if (!hs_sync_report_ok(reports[i])) {
            report_failure(reports[i]);
            ok = false;
        }
        hs_sync_report_free(reports[i]);
    }
    free(reports);
    if (json)
        out_print_json(stdout, arr);
    else if (n == 0 && rc == HS_OK)
        puts("No pending selections.");
    json_decref(arr);
    if (rc)
        return cli_report("sync --pending", rc, &err);
    return ok ? EXIT_OK : EXIT_FAIL;
}

/* sync JOB: the models asked for, one report. */
static int sync_one(struct hs_sync_engine *e, const struct sync_opts *o)
{
    struct hs_sync_request rq = {.job_id = o->job_id,
                                 .model_ids = o->models,
                                 .n_model_ids = o->nmodels,
                                 .all_complete = o->all,
                                 .trigger = "cli"};
    struct hs_sync_report *r = NULL;
    struct hs_error err = {0};
    int rc = hs_sync_job(e, &rq, &r, &err);
    if (rc == HS_ERR_NOT_FOUND) {
        fprintf(stderr, "hoversync: job %lld not found (or not visible to this connection)\n",
                (long long)o->job_id);
        return EXIT_FAIL;
    }
    if (rc)
        return cli_report("sync", rc, &err);
    if (o->json) {
        json_t *j = report_json(r);
        out_print_json(stdout, j);
        json_decref(j);
    } else {
        report_text(r);
    }
    bool ok = hs_sync_report_ok(r);
    if (!ok)
        report_failure(r);
    hs_sync_report_free(r);
    return ok ? EXIT_OK : EXIT_FAIL;
}

int cmd_sync(struct cli *c, int argc, char **argv)
{
    struct sync_opts o = {0};
    int rc = parse_sync(argc, argv, &o);
    if (rc != EXIT_OK)
        return rc < 0 ? EXIT_OK : rc;
    const char *data_dir = hs_config_str(&c->cfg, CFG_DATA_DIR);
    struct hs_error err = {0};
    rc = cli_clean_data_dir(c, &err);
    if (rc)
        return cli_report("sync: cannot use the data directory", rc, &err);
    struct hs_sync_engine e = {.client = c->client,
                               .store = c->store,
                               .data_dir = data_dir,
                               .blobs = c->blobs,
                               .connection_key = hs_config_str(&c->cfg, CFG_CONNECTION),
                               .artifacts = hs_config_str(&c->cfg, CFG_ARTIFACTS),
                               .download_slots = (int)hs_config_int(&c->cfg, CFG_DOWNLOAD_SLOTS)};
    return o.pending ? sync_pending(&e, o.json) : sync_one(&e, &o);
}
