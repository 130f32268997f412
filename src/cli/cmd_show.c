/* cmd_show.c: `hoversync show JOB_ID`: Show Job, with each model's state and, for complete
 * models only, the artifacts it offers. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "core/log.h"
#include "core/str.h"
#include "store/records.h"

static void show_help(void)
{
    puts("Usage: hoversync show JOB_ID [--json]\n"
         "\n"
         "Shows a Hover job (fresh from Hover): address, customer, states, and each model\n"
         "(structure or level) with its state and deliverable; for complete models, the\n"
         "artifacts it offers (measurements JSON versions, PDF, exports, images). The job\n"
         "and its models' states are stored as read (the records feed shows what changed).\n"
         "\n"
         "  --json   one JSON object: id, name, reconstruction_state, address, customer,\n"
         "           models[] (id, name, state, deliverable, artifacts[] (kind, url), images[])\n");
}

static void line(const char *label, const char *value)
{
    if (value && *value)
        printf("  %-10s %s\n", label, value);
}

static void print_job(const struct hs_job *j)
{
    printf("Job %lld  %s\n", (long long)j->id, j->name ? j->name : "(no name)");
    line("State:", j->reconstruction_state);
    char *addr = out_address_line(&j->address);
    line("Address:", addr);
    free(addr);
    if (j->address.has_coords)
        printf("  %-10s %.7f, %.7f\n", "Location:", j->address.latitude, j->address.longitude);
    const struct hs_customer *cu = &j->customer;
    const char *who = cu->name ? cu->name : cu->first_name;
    if (who && cu->email)
        printf("  %-10s %s <%s>\n", "Customer:", who, cu->email);
    else
        line("Customer:", who ? who : cu->email);
    line("Phone:", cu->phone);
    line("External:", j->external_identifier);
    line("Created:", j->created_at);
    line("Updated:", j->updated_at);
    if (j->archived)
        line("Archived:", "yes");
    printf("\nModels (%zu):\n", j->n_models);
    if (j->n_models == 0)
        puts("  none yet");
    for (size_t i = 0; i < j->n_models; i++) {
        const struct hs_model *m = &j->models[i];
        printf("  %-10lld  ", (long long)m->id);
        out_cell(stdout, m->name, 20);
        fputs("  ", stdout);
        out_cell(stdout, m->state, 10);
        printf("  %s\n", m->deliverable ? m->deliverable : "-");
        if (!hs_model_is_complete(m)) {
            printf("      no artifacts: the model is %s\n", m->state ? m->state : "in no state");
            continue;
        }
        if (m->n_artifacts == 0)
            puts("      no artifacts offered");
        for (size_t k = 0; k < m->n_artifacts; k++)
            printf("      %-32s %s\n", m->artifacts[k].kind, m->artifacts[k].url);
        if (m->n_images)
            printf("      %zu image%s\n", m->n_images, m->n_images == 1 ? "" : "s");
    }
}

int cmd_show(struct cli *c, int argc, char **argv)
{
    bool json = false;
    const char *id_arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            show_help();
            return EXIT_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "hoversync: show: unknown option '%s'\n", argv[i]);
            return EXIT_USAGE;
        } else if (id_arg) {
            fprintf(stderr, "hoversync: show takes one JOB_ID\n");
            return EXIT_USAGE;
        } else {
            id_arg = argv[i];
        }
    }
    int64_t id;
    if (!id_arg) {
        fprintf(stderr, "hoversync: show needs a JOB_ID (see hoversync show --help)\n");
        return EXIT_USAGE;
    }
    if (cli_int_arg("JOB_ID", id_arg, 1, INT64_MAX, &id) != 0)
        return EXIT_USAGE;
    struct hs_job *job = NULL;
    struct hs_error err = {0};
    int rc = hs_client_show_job(c->client, id, &job, &err);
    if (rc == HS_ERR_NOT_FOUND) {
        fprintf(stderr, "hoversync: job %lld not found (or not visible to this connection)\n",
                (long long)id);
        return EXIT_FAIL;
    }
    if (rc)
        return cli_report("show failed", rc, &err);
    /* Every read of a job updates the store (and so the records feed): states move at Hover. */
    struct hs_error uerr = {0};
    if (c->store->records->job_upsert(c->store, job, hs_config_str(&c->cfg, CFG_CONNECTION), NULL,
                                      &uerr) != HS_OK)
        hs_warn("show msg=\"cannot store the job\" job=%lld error=\"%s\"", (long long)id, uerr.msg);
    if (json) {
        json_t *o = out_job_json(job);
        out_print_json(stdout, o);
        json_decref(o);
    } else {
        print_job(job);
    }
    hs_job_free(job);
    return EXIT_OK;
}
