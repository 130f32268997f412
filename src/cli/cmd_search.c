/* cmd_search.c: `hoversync search`: List Jobs with filters, as a table or a JSON array. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "core/str.h"

/* --all stops here: a search that matches more is better narrowed than walked. */
#define MAX_PAGES        1000
#define MAX_DELIVERABLES 16

static void search_help(void)
{
    puts("Usage: hoversync search [TEXT] [OPTIONS]\n"
         "\n"
         "Searches Hover jobs whose name, address or capturing user contains TEXT (at least 3\n"
         "characters); without TEXT lists the most recent jobs.\n"
         "\n"
         "Options:\n"
         "  --state completed|failed  only jobs in this reconstruction state\n"
         "  --per N                   jobs per page, 1 to 100 [default: 25]\n"
         "  --page N                  which page, from 1 [default: 1]\n"
         "  --all                     every page (100 jobs a request)\n"
         "  --archived                archived jobs only\n"
         "  --updated-since DATE      jobs updated since DATE (YYYY-MM-DD, ISO-8601 or unix s)\n"
         "  --deliverable ID          only this deliverable (2 roof only, 3 complete, 5, 6, 7,\n"
         "                            8 interior); repeatable\n"
         "  --sort FIELD              created_at, updated_at or completed_at\n"
         "  --order asc|desc          [default: desc]\n"
         "  --json                    a JSON array of jobs (id, name, address, "
         "reconstruction_state,\n"
         "                            models[] with id, name, state, ...)\n");
}

static int count_complete(const struct hs_job *j)
{
    int n = 0;
    for (size_t i = 0; i < j->n_models; i++)
        n += hs_model_is_complete(&j->models[i]);
    return n;
}

static void print_header(void)
{
    printf("%-10s  ", "ID");
    out_cell(stdout, "NAME", 28);
    fputs("  ", stdout);
    out_cell(stdout, "ADDRESS", 44);
    printf("  %-10s  %-15s  %s\n", "STATE", "MODELS", "UPDATED");
}

static void print_row(const struct hs_job *j)
{
    char *addr = out_address_line(&j->address);
    char models[32];
    snprintf(models, sizeof models, "%zu (%d complete)", j->n_models, count_complete(j));
    char updated[11] = "-";
    if (j->updated_at && strlen(j->updated_at) >= 10) {
        memcpy(updated, j->updated_at, 10);
        updated[10] = '\0';
    }
    printf("%-10lld  ", (long long)j->id);
    out_cell(stdout, j->name, 28);
    fputs("  ", stdout);
    out_cell(stdout, addr, 44);
    fputs("  ", stdout);
    out_cell(stdout, j->reconstruction_state, 10);
    printf("  %-15s  %s\n", models, updated);
    free(addr);
}

/* What the command line asks for. */
struct search_opts {
    struct hs_list_params p;
    int64_t deliverables[MAX_DELIVERABLES];
    bool json, all, page_set;
};

/* The option that takes a value at argv[*i], if it is one: *bad when its value is not valid. */
static bool parse_value_option(int argc, char **argv, int *i, struct search_opts *o, bool *bad)
{
    struct hs_list_params *p = &o->p;
    const char *v = NULL;
    int64_t n;
    if (cli_opt_value(argc, argv, i, "--state", &v, bad)) {
        if (!*bad && strcmp(v, "completed") != 0 && strcmp(v, "failed") != 0) {
            fprintf(stderr, "hoversync: --state must be completed or failed, not '%s'\n", v);
            *bad = true;
        }
        p->reconstruction_state = v;
    } else if (cli_opt_value(argc, argv, i, "--per", &v, bad)) {
        *bad = *bad || cli_int_arg("--per", v, 1, 100, &p->per) != 0;
    } else if (cli_opt_value(argc, argv, i, "--page", &v, bad)) {
        *bad = *bad || cli_int_arg("--page", v, 1, INT32_MAX, &p->page) != 0;
        o->page_set = true;
    } else if (cli_opt_value(argc, argv, i, "--updated-since", &v, bad)) {
        if (!*bad && hs_parse_date_arg(v, &p->updated_since) != 0) {
            fprintf(stderr,
                    "hoversync: --updated-since takes YYYY-MM-DD, an ISO-8601 time "
                    "or unix seconds, not '%s'\n",
                    v);
            *bad = true;
        }
    } else if (cli_opt_value(argc, argv, i, "--deliverable", &v, bad)) {
        if (!*bad && p->n_deliverable_ids == MAX_DELIVERABLES) {
            fprintf(stderr, "hoversync: at most %d --deliverable options\n", MAX_DELIVERABLES);
            *bad = true;
        }
        if (!*bad && cli_int_arg("--deliverable", v, 1, 1000, &n) == 0)
            o->deliverables[p->n_deliverable_ids++] = n;
        else
            *bad = true;
    } else if (cli_opt_value(argc, argv, i, "--sort", &v, bad)) {
        if (!*bad && strcmp(v, "created_at") && strcmp(v, "updated_at") &&
            strcmp(v, "completed_at")) {
            fprintf(stderr, "hoversync: --sort must be created_at, updated_at or "
                            "completed_at\n");
            *bad = true;
        }
        p->sort_by = v;
    } else if (cli_opt_value(argc, argv, i, "--order", &v, bad)) {
        if (!*bad && strcasecmp(v, "asc") && strcasecmp(v, "desc")) {
            fprintf(stderr, "hoversync: --order must be asc or desc\n");
            *bad = true;
        }
        p->sort_order = strcasecmp(v, "asc") == 0 ? "ASC" : "DESC";
    } else {
        return false;
    }
    return true;
}

/* The command line into o: EXIT_OK, EXIT_USAGE (said on stderr), or -1 after --help. */
static int parse_search(int argc, char **argv, struct search_opts *o)
{
    struct hs_list_params *p = &o->p;
    bool bad = false;
    for (int i = 1; i < argc && !bad; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            search_help();
            return -1;
        } else if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--all") == 0) {
            o->all = true;
        } else if (strcmp(a, "--archived") == 0) {
            p->archived = 1;
        } else if (parse_value_option(argc, argv, &i, o, &bad)) {
            /* taken, with its value */
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr,
                    "hoversync: search: unknown option '%s' (see hoversync search --help)\n", a);
            bad = true;
        } else if (p->search) {
            fprintf(stderr, "hoversync: search takes one TEXT; quote it: \"%s %s\"\n", p->search,
                    a);
            bad = true;
        } else {
            p->search = a;
        }
    }
    if (bad)
        return EXIT_USAGE;
    if (p->search && strlen(p->search) < 3) {
        fprintf(stderr, "hoversync: search text must be at least 3 characters, not '%s'\n",
                p->search);
        return EXIT_USAGE;
    }
    if (o->all && o->page_set) {
        fprintf(stderr, "hoversync: --page and --all exclude each other\n");
        return EXIT_USAGE;
    }
    p->deliverable_ids = o->deliverables;
    if (o->all && !p->per)
        p->per = 100;
    if (!p->page)
        p->page = 1;
    return EXIT_OK;
}

/* What the pages listed so far add up to. */
struct search_result {
    json_t *arr; /* --json: the jobs */
    size_t shown;
    int pages;
    struct hs_job_page *last;
};

/* Lists one page, or every page with --all (up to MAX_PAGES): rows printed as they come, or
 * added to res->arr. Exit code style. */
static int list_pages(struct cli *c, struct search_opts *o, struct search_result *res)
{
    for (;;) {
        struct hs_job_page *pg = NULL;
        struct hs_error err = {0};
        int r = hs_client_list_jobs(c->client, &o->p, &pg, &err);
        if (r)
            return cli_report("search failed", r, &err);
        if (!o->json && res->pages == 0 && (pg->n_jobs > 0 || !o->all))
            print_header();
        for (size_t i = 0; i < pg->n_jobs; i++) {
            if (o->json)
                json_array_append_new(res->arr, out_job_json(&pg->jobs[i]));
            else
                print_row(&pg->jobs[i]);
        }
        res->shown += pg->n_jobs;
        res->pages++;
        hs_job_page_free(res->last);
        res->last = pg;
        if (!o->all || !pg->has_more || res->pages >= MAX_PAGES)
            return EXIT_OK;
        o->p.page = pg->next_page ? pg->next_page : o->p.page + 1;
    }
}

/* The JSON array, or the line under the table: how many, which page, what comes next. */
static void print_summary(const struct search_opts *o, const struct search_result *res)
{
    const struct hs_job_page *last = res->last;
    if (o->json) {
        out_print_json(stdout, res->arr);
    } else if (res->shown == 0) {
        puts("No jobs found.");
    } else if (last) {
        if (o->all)
            printf("%zu jobs\n", res->shown);
        else if (last->total_pages > 0)
            printf("page %lld of %lld, %lld jobs%s\n", (long long)last->current_page,
                   (long long)last->total_pages, (long long)last->total,
                   last->has_more ? " (next: --page N or --all)" : "");
    }
    if (o->all && last && last->has_more)
        fprintf(stderr, "hoversync: stopped after %d pages; narrow the search\n", MAX_PAGES);
}

int cmd_search(struct cli *c, int argc, char **argv)
{
    struct search_opts o = {.p = {.archived = -1}};
    int rc = parse_search(argc, argv, &o);
    if (rc != EXIT_OK)
        return rc < 0 ? EXIT_OK : rc;
    struct search_result res = {.arr = o.json ? json_array() : NULL};
    rc = list_pages(c, &o, &res);
    if (rc == EXIT_OK)
        print_summary(&o, &res);
    hs_job_page_free(res.last);
    json_decref(res.arr);
    return rc;
}
