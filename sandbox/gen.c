/* gen.c: the sandbox's world. A deterministic generator of orgs, users and jobs (the showcase jobs
 * at fixed ids first, then generated ones), the lookups the HTTP routes use, the rules that tie a
 * job's state to its models' states, and the JSON views of a job (Show Job v3, the flat v2 list).
 * Measurement figures and artifact bytes are in artifacts.c and jpeg.c. */
#include "world.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/mem.h"
#include "core/str.h"
#include "hoversync.h"
#include "names.h"
#include "rng.h"

/* The time span generated jobs are spread over. */
#define T_START 1672531200 /* 2023-01-01T00:00:00Z */
#define T_END   1793491200 /* 2026-11-01T00:00:00Z */

/* Id ranges: showcase objects first, generated ones well above them, so that a showcase id never
 * collides with a generated one whatever n_jobs is. */
#define SHOWCASE_FIRST_MODEL_ID   17338401
#define SHOWCASE_FIRST_IMAGE_ID   166283801
#define SHOWCASE_FIRST_CAPTURE_ID 558701
#define GEN_FIRST_MODEL_ID        17400001
#define GEN_FIRST_IMAGE_ID        166400001
#define GEN_FIRST_CAPTURE_ID      560001

/* Orgs and users do not depend on the world seed: a demo can always act as the same person. */
#define PEOPLE_SEED 0x5EEDC0FFEE463605ull
/* Showcase structure figures and photos derive from this and the model id only. */
#define SHOWCASE_SEED 0x15084301AB5EEDull

struct org_def {
    int64_t id;
    const char *name, *domain;
    int64_t first_user_id;
    const char *admin_first, *admin_last;
};

static const struct org_def org_defs[] = {
    {SB_MAIN_ORG_ID, "Summit Roofing & Exteriors", "summitroofing.example", SB_MAIN_ADMIN_USER_ID,
     "Morgan", "Blake"},
    {471122, "Coastal Home Solutions", "coastalhome.example", 2190421, "Priya", "Raman"},
    {488310, "Prairie Siding Co.", "prairiesiding.example", 2190441, "Walt", "Jensen"},
};
#define N_ORGS (sizeof org_defs / sizeof org_defs[0])

struct showcase_model {
    const char *name, *state;
};

struct showcase_job {
    const char *name, *line1, *city, *region, *zip, *lat, *lon;
    int deliverable_id;
    bool archived;
    const char *external_identifier;
    const char *cust_first, *cust_last, *cust_email, *cust_phone;
    const char *created_at; /* ISO-8601 */
    int hours_to_finish;
    size_t n_models;
    struct showcase_model models[4];
};

/* The showcase jobs, ids SB_SHOWCASE_FIRST_JOB_ID + index. docs/SANDBOX.md lists them and tests
 * search them by these exact names and addresses: change both together. */
static const struct showcase_job showcase[SB_N_SHOWCASE] = {
    {"Main House",
     "4312 Meadow Drive",
     "Santa Maria",
     "CA",
     "93455",
     "34.8784998",
     "-120.4139807",
     3,
     false,
     "8675309",
     "Dana",
     "Whitfield",
     "dana.whitfield@example.com",
     "(805) 555-0142",
     "2025-03-16T23:55:50Z",
     20,
     3,
     {{"House", "complete"}, {"Detached Garage", "complete"}, {"Shed", "complete"}}},
    {"Whitfield Garage Addition",
     "118 Orchard Lane",
     "Boise",
     "ID",
     "83702",
     "43.6187102",
     "-116.2146068",
     3,
     false,
     "8675310",
     "Marcus",
     "Whitfield",
     "mwhitfield@example.net",
     "(208) 555-0117",
     "2025-04-02T16:12:07Z",
     26,
     3,
     {{"House", "complete"}, {"Detached Garage", "failed"}, {"Shed", "complete"}}},
    {"Harbor View Remodel",
     "77 Harbor View Road",
     "Portland",
     "ME",
     "04101",
     "43.6567011",
     "-70.2480559",
     3,
     false,
     NULL,
     "Grace",
     "Holloway",
     "grace.holloway@example.org",
     "(207) 555-0163",
     "2025-05-20T13:40:31Z",
     0,
     2,
     {{"House", "complete"}, {"Garage", "processing"}}},
    {"Cedar Ridge Estate",
     "9 Cedar Ridge Court",
     "Asheville",
     "NC",
     "28801",
     "35.6009452",
     "-82.5540161",
     3,
     false,
     "CRM-20417",
     "Thomas",
     "Brennan",
     "tbrennan@example.com",
     "(828) 555-0188",
     "2025-01-28T19:03:44Z",
     31,
     2,
     {{"House", "failed"}, {"Detached Garage", "failed"}}},
    {"Lakeside Interior",
     "2200 Lakeside Avenue",
     "Madison",
     "WI",
     "53703",
     "43.0824106",
     "-89.3703851",
     8,
     false,
     "8675311",
     "Priya",
     "Natarajan",
     "priya.natarajan@example.com",
     "(608) 555-0129",
     "2025-02-11T15:27:18Z",
     18,
     3,
     {{"First Floor", "complete"}, {"Second Floor", "complete"}, {"Basement", "complete"}}},
    {"Pine Street Draft",
     "45 Pine Street",
     "Burlington",
     "VT",
     "05401",
     "44.4772543",
     "-73.2139421",
     3,
     false,
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     "2025-06-03T10:05:59Z",
     0,
     0,
     {{0}}},
    {"Old Mill Road (archived)",
     "300 Old Mill Road",
     "Lancaster",
     "PA",
     "17602",
     "40.0285694",
     "-76.2789126",
     2,
     true,
     "7730012",
     "Harold",
     "Yoder",
     "harold.yoder@example.net",
     "(717) 555-0104",
     "2024-08-19T12:44:02Z",
     9,
     1,
     {{"House", "complete"}}},
    {"Sunset Boulevard Roof",
     "1550 Sunset Boulevard",
     "Phoenix",
     "AZ",
     "85004",
     "33.4539872",
     "-112.0687215",
     2,
     false,
     NULL,
     "Luis",
     "Herrera",
     "luis.herrera@example.com",
     "(602) 555-0151",
     "2024-11-05T17:31:26Z",
     7,
     1,
     {{"House", "complete"}}},
    {"Maple Court Capture",
     "12 Maple Court",
     "Columbus",
     "OH",
     "43215",
     "39.9658371",
     "-83.0071542",
     7,
     false,
     "8675312",
     "Erin",
     "Kowalski",
     "erin.kowalski@example.org",
     "(614) 555-0136",
     "2024-12-09T14:18:53Z",
     4,
     1,
     {{"House", "complete"}}},
    {"Riverside TLA",
     "880 Riverside Drive",
     "Austin",
     "TX",
     "78704",
     "30.2561277",
     "-97.7579435",
     6,
     false,
     NULL,
     "Sam",
     "Okafor",
     "sam.okafor@example.com",
     "(512) 555-0172",
     "2025-02-24T21:09:37Z",
     12,
     1,
     {{"House", "complete"}}},
};

const char *sb_deliverable_name(int deliverable_id)
{
    switch (deliverable_id) {
    case 2:
        return "roof_only";
    case 3:
        return "complete";
    case 5:
        return "total_living_area_plus";
    case 6:
        return "total_living_area";
    case 7:
        return "capture_only";
    case 8:
        return "interior";
    default:
        return NULL;
    }
}

/* ---- small helpers ---- */

static char *lower_dup(const char *s)
{
    char *d = hs_strdup(s);
    for (char *p = d; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return d;
}

static char *iso_dup(int64_t unix_s, int ms)
{
    char buf[40];
    hs_iso8601_format(unix_s, ms, buf, sizeof buf);
    return hs_strdup(buf);
}

/* Milliseconds for a job timestamp: a fixed function of the id and the field, so that every
 * rendering of the same job agrees. */
static int job_ms(int64_t id, int field)
{
    return (int)(sb_mix64((uint64_t)id * 4u + (uint64_t)field) % 1000u);
}

static void set_str(char **p, const char *v)
{
    if (hs_streq(*p, v))
        return;
    free(*p);
    *p = hs_strdup(v);
}

static const char *pick(struct sb_rng *r, const char *const *list, size_t n)
{
    return list[sb_rng_below(r, (uint32_t)n)];
}

static void make_uuid(struct sb_rng *r, char *out, size_t n)
{
    uint64_t a = sb_rng_next(r), b = sb_rng_next(r);
    (void)snprintf(out, n, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32),
                   (unsigned)((a >> 16) & 0xFFFF), (unsigned)(a & 0xFFF),
                   (unsigned)(0x8000 | ((b >> 48) & 0x3FFF)),
                   (unsigned long long)(b & 0xFFFFFFFFFFFFull));
}

/* ---- orgs and users ---- */

static bool email_taken(const struct sb_world *w, const char *email)
{
    for (size_t i = 0; i < w->n_users; i++)
        if (strcasecmp(w->users[i].email, email) == 0)
            return true;
    return false;
}

static void add_user(struct sb_world *w, int64_t id, int64_t org_id, const char *first,
                     const char *last, const char *domain)
{
    struct sb_user *u = &w->users[w->n_users++];
    u->id = id;
    u->org_id = org_id;
    u->first_name = hs_strdup(first);
    u->last_name = hs_strdup(last);
    char *email = hs_aprintf("%s.%s@%s", first, last, domain);
    u->email = lower_dup(email);
    free(email);
}

static void gen_people(struct sb_world *w)
{
    struct sb_rng r;
    sb_rng_init(&r, PEOPLE_SEED);
    w->n_orgs = N_ORGS;
    w->orgs = hs_calloc(N_ORGS, sizeof *w->orgs);
    w->users = hs_calloc(N_ORGS * SB_USERS_PER_ORG, sizeof *w->users);
    for (size_t o = 0; o < N_ORGS; o++) {
        const struct org_def *d = &org_defs[o];
        w->orgs[o].id = d->id;
        w->orgs[o].name = hs_strdup(d->name);
        w->orgs[o].admin_user_id = d->first_user_id;
        add_user(w, d->first_user_id, d->id, d->admin_first, d->admin_last, d->domain);
        int64_t next = d->first_user_id + 1;
        if (d->id == SB_MAIN_ORG_ID)
            add_user(w, next++, d->id, "Jordan", "Reyes", d->domain);
        while (next < d->first_user_id + SB_USERS_PER_ORG) {
            const char *first = pick(&r, sb_first_names, sb_n_first_names);
            const char *last = pick(&r, sb_last_names, sb_n_last_names);
            char *email = hs_aprintf("%s.%s@%s", first, last, d->domain);
            bool taken = email_taken(w, email);
            free(email);
            if (!taken)
                add_user(w, next++, d->id, first, last, d->domain);
        }
    }
}

struct sb_user *sb_world_user(struct sb_world *w, int64_t id)
{
    for (size_t i = 0; i < w->n_users; i++)
        if (w->users[i].id == id)
            return &w->users[i];
    return NULL;
}

struct sb_user *sb_world_user_by_email(struct sb_world *w, const char *email)
{
    if (!email)
        return NULL;
    for (size_t i = 0; i < w->n_users; i++)
        if (strcasecmp(w->users[i].email, email) == 0)
            return &w->users[i];
    return NULL;
}

struct sb_org *sb_world_org(struct sb_world *w, int64_t id)
{
    for (size_t i = 0; i < w->n_orgs; i++)
        if (w->orgs[i].id == id)
            return &w->orgs[i];
    return NULL;
}

static const struct sb_user *user_const(const struct sb_world *w, int64_t id)
{
    for (size_t i = 0; i < w->n_users; i++)
        if (w->users[i].id == id)
            return &w->users[i];
    return NULL;
}

/* A capturing user of an org: a few people capture most jobs, as in a real roofing company. */
static int64_t pick_user(const struct sb_world *w, struct sb_rng *r, int64_t org_id)
{
    size_t first = 0, n = 0;
    for (size_t i = 0; i < w->n_users; i++) {
        if (w->users[i].org_id != org_id)
            continue;
        if (n == 0)
            first = i;
        n++;
    }
    if (n == 0)
        return 0;
    double u = sb_rng_unit(r);
    size_t k = (size_t)(u * u * (double)n);
    return w->users[first + (k < n ? k : n - 1)].id;
}

/* ---- state rules ---- */

static void derive_states(struct sb_job *j)
{
    size_t complete = 0, failed = 0, processing = 0, uploading = 0;
    for (size_t i = 0; i < j->n_models; i++) {
        const char *s = j->models[i].state;
        if (hs_streq(s, "complete"))
            complete++;
        else if (hs_streq(s, "failed"))
            failed++;
        else if (hs_streq(s, "processing"))
            processing++;
        else if (hs_streq(s, "uploading"))
            uploading++;
    }
    const char *rs, *v2;
    if (j->n_models == 0 || uploading == j->n_models) {
        rs = "draft";
        v2 = "uploading";
    } else if (processing > 0) {
        rs = "processing";
        v2 = "processing";
    } else if (uploading > 0) {
        rs = "processing";
        v2 = "processing_upload";
    } else if (failed == j->n_models) {
        rs = "failed";
        v2 = "failed";
    } else if (complete > 0 && complete + failed == j->n_models) {
        rs = "completed";
        v2 = "complete";
    } else {
        /* A model in a state we do not know: not finished as far as anyone can tell. */
        rs = "processing";
        v2 = "processing";
    }
    set_str(&j->reconstruction_state, rs);
    set_str(&j->v2_state, v2);
}

void sb_job_derive_state(struct sb_job *j, int64_t now)
{
    char *before = hs_strdup(j->reconstruction_state);
    derive_states(j);
    if (!hs_streq(before, j->reconstruction_state)) {
        if (now > j->updated_at)
            j->updated_at = now;
        if (hs_streq(j->reconstruction_state, "completed"))
            j->completed_at = now;
    }
    free(before);
}

/* ---- indexes ---- */

static int cmp_model_ref(const void *a, const void *b)
{
    int64_t x = ((const struct sb_model_ref *)a)->id, y = ((const struct sb_model_ref *)b)->id;
    return (x > y) - (x < y);
}

static int cmp_image_ref(const void *a, const void *b)
{
    int64_t x = ((const struct sb_image_ref *)a)->id, y = ((const struct sb_image_ref *)b)->id;
    return (x > y) - (x < y);
}

void sb_world_reindex(struct sb_world *w)
{
    size_t nm = 0, ni = 0;
    for (size_t j = 0; j < w->n_jobs; j++) {
        nm += w->jobs[j].n_models;
        for (size_t m = 0; m < w->jobs[j].n_models; m++)
            ni += w->jobs[j].models[m].n_images;
    }
    free(w->model_index);
    free(w->image_index);
    w->model_index = hs_malloc(nm * sizeof *w->model_index);
    w->image_index = hs_malloc(ni * sizeof *w->image_index);
    bool m_sorted = true, i_sorted = true;
    size_t km = 0, ki = 0;
    for (size_t j = 0; j < w->n_jobs; j++) {
        const struct sb_job *job = &w->jobs[j];
        for (size_t m = 0; m < job->n_models; m++) {
            const struct sb_model *mod = &job->models[m];
            if (km > 0 && w->model_index[km - 1].id >= mod->id)
                m_sorted = false;
            w->model_index[km++] = (struct sb_model_ref){mod->id, (uint32_t)j, (uint32_t)m};
            for (size_t i = 0; i < mod->n_images; i++) {
                if (ki > 0 && w->image_index[ki - 1].id >= mod->images[i].id)
                    i_sorted = false;
                w->image_index[ki++] =
                    (struct sb_image_ref){mod->images[i].id, (uint32_t)j, (uint32_t)m, (uint32_t)i};
            }
        }
    }
    /* Generation hands out ids in array order, so the sorts only run after hand edits. */
    if (!m_sorted)
        qsort(w->model_index, nm, sizeof *w->model_index, cmp_model_ref);
    if (!i_sorted)
        qsort(w->image_index, ni, sizeof *w->image_index, cmp_image_ref);
    w->n_model_index = nm;
    w->n_image_index = ni;
}

/* Appends the entries of models[first_model..] of job position jpos, or reindexes when their ids
 * would not keep the index sorted. */
static void index_add_models(struct sb_world *w, size_t jpos, size_t first_model)
{
    const struct sb_job *job = &w->jobs[jpos];
    for (size_t m = first_model; m < job->n_models; m++) {
        const struct sb_model *mod = &job->models[m];
        if (w->n_model_index > 0 && w->model_index[w->n_model_index - 1].id >= mod->id) {
            sb_world_reindex(w);
            return;
        }
        w->model_index =
            hs_realloc(w->model_index, (w->n_model_index + 1) * sizeof *w->model_index);
        w->model_index[w->n_model_index++] =
            (struct sb_model_ref){mod->id, (uint32_t)jpos, (uint32_t)m};
    }
}

static void index_add_images(struct sb_world *w, size_t jpos, size_t mpos, size_t first_image)
{
    const struct sb_model *mod = &w->jobs[jpos].models[mpos];
    for (size_t i = first_image; i < mod->n_images; i++) {
        if (w->n_image_index > 0 && w->image_index[w->n_image_index - 1].id >= mod->images[i].id) {
            sb_world_reindex(w);
            return;
        }
        w->image_index =
            hs_realloc(w->image_index, (w->n_image_index + 1) * sizeof *w->image_index);
        w->image_index[w->n_image_index++] =
            (struct sb_image_ref){mod->images[i].id, (uint32_t)jpos, (uint32_t)mpos, (uint32_t)i};
    }
}

struct sb_job *sb_world_job(struct sb_world *w, int64_t id)
{
    size_t lo = 0, hi = w->n_jobs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (w->jobs[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < w->n_jobs && w->jobs[lo].id == id ? &w->jobs[lo] : NULL;
}

/* Positions from an index entry, checked: a stale index (hand edits without sb_world_reindex)
 * must give "not found", never a wrong object or an out-of-bounds read. */
static struct sb_model *model_at(struct sb_world *w, uint32_t jpos, uint32_t mpos, int64_t id)
{
    if (jpos >= w->n_jobs || mpos >= w->jobs[jpos].n_models)
        return NULL;
    struct sb_model *m = &w->jobs[jpos].models[mpos];
    return m->id == id ? m : NULL;
}

struct sb_model *sb_world_model(struct sb_world *w, int64_t id, struct sb_job **job_out)
{
    size_t lo = 0, hi = w->n_model_index;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (w->model_index[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo >= w->n_model_index || w->model_index[lo].id != id)
        return NULL;
    const struct sb_model_ref *ref = &w->model_index[lo];
    struct sb_model *m = model_at(w, ref->job, ref->model, id);
    if (m && job_out)
        *job_out = &w->jobs[ref->job];
    return m;
}

struct sb_image *sb_world_image(struct sb_world *w, int64_t id, struct sb_model **model_out)
{
    size_t lo = 0, hi = w->n_image_index;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (w->image_index[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo >= w->n_image_index || w->image_index[lo].id != id)
        return NULL;
    const struct sb_image_ref *ref = &w->image_index[lo];
    if (ref->job >= w->n_jobs || ref->model >= w->jobs[ref->job].n_models)
        return NULL;
    struct sb_model *m = &w->jobs[ref->job].models[ref->model];
    if (ref->image >= m->n_images || m->images[ref->image].id != id)
        return NULL;
    if (model_out)
        *model_out = m;
    return &m->images[ref->image];
}

/* ---- building jobs ---- */

enum skind { K_HOUSE, K_GARAGE, K_SHED, K_OUTBUILDING, K_FLOOR, K_BASEMENT };

static enum skind structure_kind(const char *name, bool interior)
{
    if (interior)
        return hs_streq(name, "Basement") ? K_BASEMENT : K_FLOOR;
    if (hs_streq(name, "House") || hs_streq(name, "Guest House"))
        return K_HOUSE;
    if (strstr(name, "Garage") || hs_streq(name, "Carport"))
        return K_GARAGE;
    if (hs_streq(name, "Shed"))
        return K_SHED;
    return K_OUTBUILDING;
}

static double round1(double x)
{
    return (double)(int64_t)(x * 10.0 + 0.5) / 10.0;
}

/* The structure figures measurements derive from. Interior levels of one job share a footprint
 * (base_w x base_d), as floors of one building do. */
static void model_figures(struct sb_model *m, struct sb_rng *r, enum skind kind, double base_w,
                          double base_d)
{
    double w, d;
    switch (kind) {
    case K_HOUSE:
        w = sb_rng_uniform(r, 28, 60);
        d = sb_rng_uniform(r, 24, 40);
        m->stories = sb_rng_chance(r, 0.05) ? 3 : sb_rng_chance(r, 0.55) ? 2 : 1;
        /* Most American roofs sit between 4/12 and 8/12; 6/12 is the single most common. */
        m->pitch_rise =
            sb_rng_chance(r, 0.3) ? 6 : sb_rng_range(r, 4, sb_rng_chance(r, 0.8) ? 8 : 12);
        m->roof_facets = sb_rng_chance(r, 0.2)   ? 2
                         : sb_rng_chance(r, 0.3) ? 4
                                                 : sb_rng_range(r, 5, 24);
        m->openings = sb_rng_range(r, 10, 22) * m->stories / 2 + sb_rng_range(r, 4, 12);
        break;
    case K_GARAGE:
        w = sb_rng_uniform(r, 20, 32);
        d = sb_rng_uniform(r, 20, 26);
        m->stories = 1;
        m->pitch_rise = sb_rng_range(r, 4, 8);
        m->roof_facets = sb_rng_chance(r, 0.7) ? 2 : 4;
        m->openings = sb_rng_range(r, 2, 5);
        break;
    case K_SHED:
        w = sb_rng_uniform(r, 8, 16);
        d = sb_rng_uniform(r, 8, 12);
        m->stories = 1;
        m->pitch_rise = sb_rng_range(r, 3, 6);
        m->roof_facets = sb_rng_chance(r, 0.4) ? 1 : 2;
        m->openings = sb_rng_range(r, 1, 3);
        break;
    case K_OUTBUILDING:
        w = sb_rng_uniform(r, 16, 40);
        d = sb_rng_uniform(r, 14, 30);
        m->stories = sb_rng_chance(r, 0.15) ? 2 : 1;
        m->pitch_rise = sb_rng_range(r, 4, 10);
        m->roof_facets = sb_rng_chance(r, 0.6) ? 2 : sb_rng_chance(r, 0.7) ? 4 : 6;
        m->openings = sb_rng_range(r, 3, 10);
        break;
    case K_FLOOR:
    case K_BASEMENT:
    default:
        w = base_w;
        d = base_d;
        m->stories = 1;
        m->pitch_rise = 0;
        m->roof_facets = 0;
        m->openings = kind == K_BASEMENT ? sb_rng_range(r, 3, 7) : sb_rng_range(r, 10, 20);
        break;
    }
    if (w < d) {
        double t = w;
        w = d;
        d = t;
    }
    m->footprint_w = round1(w);
    m->footprint_d = round1(d);
    m->revision = 0;
    m->pdf_bytes = 0;
}

/* Photos of a model, taken a few seconds apart after `t0`. */
static void model_add_images(struct sb_world *w, struct sb_model *m, struct sb_rng *r, size_t n,
                             int64_t t0)
{
    if (n == 0)
        return;
    m->images = hs_realloc(m->images, (m->n_images + n) * sizeof *m->images);
    int64_t t = t0;
    for (size_t i = 0; i < n; i++) {
        struct sb_image *img = &m->images[m->n_images++];
        t += sb_rng_range(r, 4, 90);
        img->id = w->next_image_id++;
        img->model_id = m->id;
        img->created_at = iso_dup(t, (int)sb_rng_below(r, 1000));
        img->rng_seed = (uint32_t)sb_rng_next(r);
    }
}

static size_t images_for_state(struct sb_rng *r, const char *state)
{
    if (hs_streq(state, "complete"))
        return (size_t)sb_rng_range(r, 2, 4);
    if (hs_streq(state, "processing"))
        return (size_t)sb_rng_range(r, 0, 2);
    if (hs_streq(state, "failed"))
        return (size_t)sb_rng_range(r, 0, 1);
    return 0;
}

/* Models with their timestamps: created shortly after the job, finished (complete or failed)
 * around `finish_at`, still working models touched a little after creation. Returns when the last
 * model finished (0 if none did). */
static int64_t job_add_models(struct sb_world *w, struct sb_job *j, struct sb_rng *figs,
                              struct sb_rng *r, size_t n, const char *const *names,
                              const char *const *states, int64_t finish_at)
{
    int64_t last_finish = 0;
    j->models = hs_calloc(n ? n : 1, sizeof *j->models);
    j->n_models = n;
    double base_w = round1(sb_rng_uniform(figs, 30, 60)),
           base_d = round1(sb_rng_uniform(figs, 24, 44));
    for (size_t i = 0; i < n; i++) {
        struct sb_model *m = &j->models[i];
        m->id = w->next_model_id++;
        m->job_id = j->id;
        m->capture_id = j->capture_id;
        m->name = hs_strdup(names[i]);
        m->state = hs_strdup(states[i]);
        m->deliverable_id = j->deliverable_id;
        int64_t created = j->created_at + 20 + (int64_t)sb_rng_below(r, 400);
        int64_t updated;
        if (hs_streq(states[i], "complete") || hs_streq(states[i], "failed")) {
            updated = finish_at + (int64_t)sb_rng_below(r, 1800);
            if (updated > last_finish)
                last_finish = updated;
        } else if (hs_streq(states[i], "processing"))
            updated = created + 300 + (int64_t)sb_rng_below(r, 7200);
        else
            updated = created + (int64_t)sb_rng_below(r, 600);
        if (updated < created)
            updated = created;
        m->created_at = iso_dup(created, (int)sb_rng_below(r, 1000));
        m->updated_at = iso_dup(updated, (int)sb_rng_below(r, 1000));
        model_figures(m, figs, structure_kind(names[i], j->interior), base_w, base_d);
        model_add_images(w, m, r, images_for_state(r, states[i]), created);
        if (updated > j->updated_at)
            j->updated_at = updated;
    }
    return last_finish;
}

static void job_set_address(struct sb_job *j, const char *line1, const char *line2,
                            const char *city, const char *region, const char *zip, double lat,
                            double lon)
{
    j->line1 = hs_strdup(line1);
    j->line2 = hs_strdup(line2);
    j->city = hs_strdup(city);
    j->region = hs_strdup(region);
    j->postal_code = hs_strdup(zip);
    j->country = hs_strdup("US");
    j->lat = lat;
    j->lon = lon;
}

void sb_job_refresh_haystack(const struct sb_world *w, struct sb_job *j)
{
    const struct sb_user *u = user_const(w, j->user_id);
    bool l2 = j->line2 && *j->line2;
    char *h = hs_aprintf("%s | %s%s%s, %s, %s %s | %s %s %s", j->name ? j->name : "",
                         j->line1 ? j->line1 : "", l2 ? " " : "", l2 ? j->line2 : "",
                         j->city ? j->city : "", j->region ? j->region : "",
                         j->postal_code ? j->postal_code : "", u ? u->first_name : "",
                         u ? u->last_name : "", u ? u->email : "");
    free(j->haystack);
    j->haystack = lower_dup(h);
    free(h);
}

static void job_set_capture(struct sb_world *w, struct sb_job *j, struct sb_rng *r)
{
    char uuid[40];
    j->capture_id = w->next_capture_id++;
    make_uuid(r, uuid, sizeof uuid);
    j->capture_uuid = hs_strdup(uuid);
}

/* Address, customer, name and CRM id of a generated job. */
static void gen_identity(struct sb_job *j, struct sb_rng *r)
{
    const struct sb_city *c = &sb_cities[sb_rng_below(r, (uint32_t)sb_n_cities)];
    int number;
    double u = sb_rng_unit(r);
    if (u < 0.15)
        number = sb_rng_range(r, 1, 99);
    else if (u < 0.55)
        number = sb_rng_range(r, 100, 999);
    else if (u < 0.95)
        number = sb_rng_range(r, 1000, 9999);
    else
        number = sb_rng_range(r, 10000, 29999);
    const char *street = pick(r, sb_street_names, sb_n_street_names);
    const char *suffix = pick(r, sb_street_suffixes, sb_n_street_suffixes);
    char line1[96], line2[24] = "", zip[8];
    (void)snprintf(line1, sizeof line1, "%d %s %s", number, street, suffix);
    if (sb_rng_chance(r, 0.06)) {
        if (sb_rng_chance(r, 0.5))
            (void)snprintf(line2, sizeof line2, "Unit %d", sb_rng_range(r, 1, 24));
        else
            (void)snprintf(line2, sizeof line2, "Apt %d%c", sb_rng_range(r, 1, 4),
                           'A' + sb_rng_range(r, 0, 3));
    }
    (void)snprintf(zip, sizeof zip, "%05d", sb_rng_range(r, c->zip_lo, c->zip_hi));
    double lat = c->lat + sb_rng_uniform(r, -0.06, 0.06);
    double lon = c->lon + sb_rng_uniform(r, -0.08, 0.08);
    job_set_address(j, line1, line2, c->city, c->region, zip, lat, lon);

    const char *first = pick(r, sb_first_names, sb_n_first_names);
    const char *last = pick(r, sb_last_names, sb_n_last_names);
    if (sb_rng_chance(r, 0.85)) {
        const char *dom = pick(r, sb_mail_domains, sb_n_mail_domains);
        char *email;
        switch (sb_rng_below(r, 3)) {
        case 0:
            email = hs_aprintf("%s.%s@%s", first, last, dom);
            break;
        case 1:
            email = hs_aprintf("%c%s@%s", first[0], last, dom);
            break;
        default:
            email = hs_aprintf("%s%s%02d@%s", first, last, sb_rng_range(r, 1, 99), dom);
            break;
        }
        j->cust_first = hs_strdup(first);
        j->cust_name = hs_aprintf("%s %s", first, last);
        j->cust_email = lower_dup(email);
        free(email);
        /* 555-0100..0199 is the range reserved for fiction. */
        j->cust_phone = hs_aprintf("(%03d) 555-01%02d", c->area_code, sb_rng_range(r, 0, 99));
    }

    switch (sb_rng_below(r, 10)) {
    case 0:
    case 1:
    case 2:
        j->name = j->interior ? hs_aprintf("%s Interior", last) : hs_aprintf("%s Residence", last);
        break;
    case 3:
    case 4:
        j->name = hs_strdup(line1);
        break;
    case 5:
    case 6:
        j->name = j->interior
                      ? hs_aprintf("%s - Basement Finish", last)
                      : hs_aprintf("%s - %s", last, pick(r, sb_project_kinds, sb_n_project_kinds));
        break;
    case 7:
        j->name = hs_aprintf("%s %s", first, last);
        break;
    case 8:
        j->name = j->interior ? hs_aprintf("%s Remodel", last) : hs_aprintf("%s Home", last);
        break;
    default:
        j->name = hs_aprintf("%s %s Project", street, suffix);
        break;
    }

    if (sb_rng_chance(r, 0.4)) {
        if (sb_rng_chance(r, 0.8))
            j->external_identifier = hs_aprintf("%d", sb_rng_range(r, 1000000, 9999999));
        else
            j->external_identifier = hs_aprintf("JOB-%05d", sb_rng_range(r, 1, 99999));
    }
}

static int pick_deliverable(struct sb_rng *r)
{
    double u = sb_rng_unit(r);
    if (u < 0.45)
        return 3;
    if (u < 0.69)
        return 2;
    if (u < 0.76)
        return 5;
    if (u < 0.84)
        return 6;
    if (u < 0.90)
        return 7;
    return 8;
}

/* Model names of a job: exteriors start with the house, then distinct outbuildings; interiors are
 * one model per level. */
static size_t model_names(struct sb_rng *r, bool interior, size_t n, const char **names)
{
    if (interior) {
        static const char *const levels[] = {"First Floor", "Second Floor", "Third Floor"};
        size_t k = 0;
        for (; k < n && k < 3; k++)
            names[k] = levels[k];
        if (k < n)
            names[k++] = "Basement";
        return k;
    }
    names[0] = "House";
    size_t k = 1;
    while (k < n) {
        const char *s = pick(r, sb_structures, sb_n_structures);
        bool dup = false;
        for (size_t i = 0; i < k; i++)
            dup = dup || hs_streq(names[i], s);
        if (!dup)
            names[k++] = s;
    }
    return k;
}

static size_t pick_model_count(struct sb_rng *r, bool interior)
{
    double u = sb_rng_unit(r);
    if (interior) {
        size_t levels = u < 0.35 ? 1 : u < 0.8 ? 2 : 3;
        return levels + (sb_rng_chance(r, 0.3) ? 1 : 0);
    }
    return u < 0.48 ? 1 : u < 0.78 ? 2 : u < 0.93 ? 3 : 4;
}

enum mix { MIX_COMPLETE, MIX_PARTIAL, MIX_FAILED, MIX_PROCESSING, MIX_DRAFT };

/* Recent jobs are the ones still in flight; old ones are mostly finished. */
static enum mix pick_mix(struct sb_rng *r, double frac)
{
    bool recent = frac > 0.97;
    double u = sb_rng_unit(r);
    double draft = recent ? 0.10 : 0.05, proc = recent ? 0.40 : 0.015, failed = 0.05,
           partial = 0.09;
    if (u < draft)
        return MIX_DRAFT;
    if ((u -= draft) < proc)
        return MIX_PROCESSING;
    if ((u -= proc) < failed)
        return MIX_FAILED;
    if ((u -= failed) < partial)
        return MIX_PARTIAL;
    return MIX_COMPLETE;
}

static void gen_job(struct sb_world *w, struct sb_job *j, struct sb_rng *r, int64_t id,
                    int64_t created, double frac)
{
    memset(j, 0, sizeof *j);
    j->id = id;
    double u = sb_rng_unit(r);
    j->org_id = org_defs[u < 0.7 ? 0 : u < 0.9 ? 1 : 2].id;
    j->user_id = pick_user(w, r, j->org_id);
    j->deliverable_id = pick_deliverable(r);
    j->interior = j->deliverable_id == 8;
    j->archived = sb_rng_chance(r, 0.06);
    j->created_at = created;
    j->updated_at = created;
    gen_identity(j, r);

    enum mix mix = pick_mix(r, frac);
    size_t n = mix == MIX_DRAFT && sb_rng_chance(r, 0.5) ? 0 : pick_model_count(r, j->interior);
    if (mix == MIX_PARTIAL && n < 2)
        n = 2;
    const char *names[8];
    const char *states[8];
    n = model_names(r, j->interior, n, names);
    for (size_t i = 0; i < n; i++) {
        switch (mix) {
        case MIX_COMPLETE:
            states[i] = "complete";
            break;
        case MIX_FAILED:
            states[i] = "failed";
            break;
        case MIX_DRAFT:
            states[i] = "uploading";
            break;
        case MIX_PARTIAL:
            states[i] = "complete";
            break;
        case MIX_PROCESSING:
        default: {
            double v = sb_rng_unit(r);
            states[i] = v < 0.3 ? "complete" : v < 0.8 ? "processing" : "uploading";
            break;
        }
        }
    }
    if (mix == MIX_PARTIAL) {
        /* Fail k of the n models (1 <= k < n), chosen by a partial Fisher-Yates shuffle. */
        size_t order[8];
        for (size_t i = 0; i < n; i++)
            order[i] = i;
        size_t k = 1 + sb_rng_below(r, (uint32_t)(n - 1));
        for (size_t i = 0; i < k; i++) {
            size_t pos = i + sb_rng_below(r, (uint32_t)(n - i));
            size_t t = order[i];
            order[i] = order[pos];
            order[pos] = t;
            states[order[i]] = "failed";
        }
    }
    if (mix == MIX_PROCESSING)
        states[sb_rng_below(r, (uint32_t)n)] = "processing";

    if (n > 0)
        job_set_capture(w, j, r);
    int64_t finish = created + 3600 * sb_rng_range(r, 2, 36) + (int64_t)sb_rng_below(r, 3600);
    int64_t done = job_add_models(w, j, r, r, n, names, states, finish);
    derive_states(j);
    if (hs_streq(j->reconstruction_state, "completed"))
        j->completed_at = done;
    /* Some finished jobs are edited later (renamed, CRM id added): updated_at moves on. */
    if ((hs_streq(j->reconstruction_state, "completed") ||
         hs_streq(j->reconstruction_state, "failed")) &&
        sb_rng_chance(r, 0.12)) {
        j->updated_at += 86400 * sb_rng_range(r, 1, 120);
        if (j->updated_at > T_END)
            j->updated_at = T_END;
    }
    sb_job_refresh_haystack(w, j);
}

static void showcase_job(struct sb_world *w, struct sb_job *j, size_t idx)
{
    const struct showcase_job *s = &showcase[idx];
    memset(j, 0, sizeof *j);
    j->id = SB_SHOWCASE_FIRST_JOB_ID + (int64_t)idx;
    j->org_id = SB_MAIN_ORG_ID;
    j->user_id = SB_SHOWCASE_USER_ID;
    j->name = hs_strdup(s->name);
    j->external_identifier = hs_strdup(s->external_identifier);
    j->deliverable_id = s->deliverable_id;
    j->interior = s->deliverable_id == 8;
    j->archived = s->archived;
    int64_t created = 0;
    (void)hs_iso8601_parse(s->created_at, &created);
    j->created_at = created;
    j->updated_at = created;
    double lat = 0, lon = 0;
    (void)hs_parse_double(s->lat, &lat);
    (void)hs_parse_double(s->lon, &lon);
    job_set_address(j, s->line1, "", s->city, s->region, s->zip, lat, lon);
    if (s->cust_first) {
        j->cust_first = hs_strdup(s->cust_first);
        j->cust_name = hs_aprintf("%s %s", s->cust_first, s->cust_last);
        j->cust_email = hs_strdup(s->cust_email);
        j->cust_phone = hs_strdup(s->cust_phone);
    }
    /* The showcase draws from its own streams, so that it is the same whatever the seed. */
    struct sb_rng r;
    sb_rng_init(&r, SHOWCASE_SEED ^ sb_mix64((uint64_t)j->id));
    const char *names[4], *states[4];
    for (size_t i = 0; i < s->n_models; i++) {
        names[i] = s->models[i].name;
        states[i] = s->models[i].state;
    }
    if (s->n_models > 0) {
        char uuid[40];
        j->capture_id = SHOWCASE_FIRST_CAPTURE_ID + (int64_t)idx;
        make_uuid(&r, uuid, sizeof uuid);
        j->capture_uuid = hs_strdup(uuid);
    }
    int64_t finish = created + 3600 * (int64_t)s->hours_to_finish + 1234;
    int64_t done = job_add_models(w, j, &r, &r, s->n_models, names, states, finish);
    derive_states(j);
    if (hs_streq(j->reconstruction_state, "completed"))
        j->completed_at = done;
    sb_job_refresh_haystack(w, j);
}

static void world_init(struct sb_world *w, uint64_t seed)
{
    pthread_mutex_init(&w->lock, NULL);
    w->seed = seed;
    w->next_job_id = SB_FIRST_GENERATED_JOB_ID;
    w->next_model_id = SHOWCASE_FIRST_MODEL_ID;
    w->next_image_id = SHOWCASE_FIRST_IMAGE_ID;
    w->next_capture_id = GEN_FIRST_CAPTURE_ID;
    gen_people(w);
}

struct sb_world *sb_world_generate(uint64_t seed, size_t n_jobs)
{
    struct sb_world *w = hs_calloc(1, sizeof *w);
    world_init(w, seed);
    w->cap_jobs = n_jobs ? n_jobs : 1;
    w->jobs = hs_calloc(w->cap_jobs, sizeof *w->jobs);

    size_t n_show = n_jobs < SB_N_SHOWCASE ? n_jobs : SB_N_SHOWCASE;
    for (size_t i = 0; i < n_show; i++)
        showcase_job(w, &w->jobs[w->n_jobs++], i);

    w->next_model_id = GEN_FIRST_MODEL_ID;
    w->next_image_id = GEN_FIRST_IMAGE_ID;
    struct sb_rng r;
    sb_rng_init(&r, sb_mix64(seed));
    size_t n_gen = n_jobs - n_show;
    /* Jobs are spread evenly over the span (ids grow with time, as Hover's do) with jitter; the
     * last month is kept free so that finishing and later edits stay inside the span. */
    const double span = (double)(T_END - T_START - 30 * 86400);
    int64_t id = SB_FIRST_GENERATED_JOB_ID;
    for (size_t i = 0; i < n_gen; i++) {
        double frac = ((double)i + sb_rng_unit(&r)) / (double)n_gen;
        int64_t created = T_START + (int64_t)(frac * span);
        gen_job(w, &w->jobs[w->n_jobs++], &r, id, created, frac);
        /* Other customers' jobs take ids in between. */
        id += 1 + (int64_t)sb_rng_below(&r, 3);
    }
    w->next_job_id = id;
    w->rng_state = sb_rng_next(&r);
    sb_world_reindex(w);
    return w;
}

void sb_world_set_model_state(struct sb_world *w, struct sb_job *j, struct sb_model *m,
                              const char *state, int64_t now)
{
    set_str(&m->state, state);
    free(m->updated_at);
    m->updated_at = iso_dup(now, 0);
    if (hs_streq(state, "complete") && m->n_images == 0) {
        struct sb_rng r;
        sb_rng_init(&r, w->rng_state ^ sb_mix64((uint64_t)m->id));
        w->rng_state = sb_rng_next(&r);
        size_t first = m->n_images;
        model_add_images(w, m, &r, 3, now - 60);
        size_t jpos = (size_t)(j - w->jobs), mpos = (size_t)(m - j->models);
        if (jpos < w->n_jobs && mpos < j->n_models)
            index_add_images(w, jpos, mpos, first);
        else
            sb_world_reindex(w);
    }
    if (now > j->updated_at)
        j->updated_at = now;
    sb_job_derive_state(j, now);
}

struct sb_job *sb_world_add_job(struct sb_world *w, int64_t org_id, int64_t user_id,
                                int deliverable_id, size_t n_models, int64_t now)
{
    if (!sb_world_org(w, org_id) || !sb_deliverable_name(deliverable_id) || n_models > 4)
        return NULL;
    struct sb_rng r;
    sb_rng_init(&r, w->rng_state);
    w->rng_state = sb_rng_next(&r) ^ 0xA5A5A5A5ull;
    if (user_id == 0)
        user_id = pick_user(w, &r, org_id);
    const struct sb_user *u = user_const(w, user_id);
    if (!u || u->org_id != org_id)
        return NULL;
    if (w->n_jobs == w->cap_jobs) {
        w->cap_jobs = w->cap_jobs * 2 + 16;
        w->jobs = hs_realloc(w->jobs, w->cap_jobs * sizeof *w->jobs);
    }
    int64_t id = w->next_job_id++;
    if (w->n_jobs > 0 && id <= w->jobs[w->n_jobs - 1].id)
        id = w->jobs[w->n_jobs - 1].id + 1;
    w->next_job_id = id + 1;
    struct sb_job *j = &w->jobs[w->n_jobs];
    memset(j, 0, sizeof *j);
    j->id = id;
    j->org_id = org_id;
    j->user_id = user_id;
    j->deliverable_id = deliverable_id;
    j->interior = deliverable_id == 8;
    j->created_at = now;
    j->updated_at = now;
    gen_identity(j, &r);
    const char *names[8], *states[8];
    n_models = model_names(&r, j->interior, n_models, names);
    for (size_t i = 0; i < n_models; i++)
        states[i] = "uploading";
    if (n_models > 0)
        job_set_capture(w, j, &r);
    (void)job_add_models(w, j, &r, &r, n_models, names, states, now);
    derive_states(j);
    sb_job_refresh_haystack(w, j);
    w->n_jobs++;
    index_add_models(w, w->n_jobs - 1, 0);
    return j;
}

static void free_job(struct sb_job *j)
{
    for (size_t m = 0; m < j->n_models; m++) {
        struct sb_model *mod = &j->models[m];
        for (size_t i = 0; i < mod->n_images; i++)
            free(mod->images[i].created_at);
        free(mod->images);
        free(mod->name);
        free(mod->state);
        free(mod->created_at);
        free(mod->updated_at);
    }
    free(j->models);
    char **strs[] = {&j->name,
                     &j->external_identifier,
                     &j->reconstruction_state,
                     &j->v2_state,
                     &j->line1,
                     &j->line2,
                     &j->city,
                     &j->region,
                     &j->postal_code,
                     &j->country,
                     &j->cust_first,
                     &j->cust_name,
                     &j->cust_email,
                     &j->cust_phone,
                     &j->capture_uuid,
                     &j->haystack};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        hs_free_ptr(strs[i]);
}

void sb_world_free(struct sb_world *w)
{
    if (!w)
        return;
    for (size_t j = 0; j < w->n_jobs; j++)
        free_job(&w->jobs[j]);
    free(w->jobs);
    for (size_t i = 0; i < w->n_users; i++) {
        free(w->users[i].first_name);
        free(w->users[i].last_name);
        free(w->users[i].email);
    }
    free(w->users);
    for (size_t i = 0; i < w->n_orgs; i++)
        free(w->orgs[i].name);
    free(w->orgs);
    free(w->model_index);
    free(w->image_index);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

/* ---- JSON views ---- */

static json_t *jstr(const char *s)
{
    json_t *v = s ? json_string(s) : NULL;
    return v ? v : json_null(); /* NULL in, or bytes that are not UTF-8 */
}

static json_t *jtime(int64_t unix_s, int ms)
{
    if (unix_s <= 0)
        return json_null();
    char buf[40];
    hs_iso8601_format(unix_s, ms, buf, sizeof buf);
    return json_string(buf);
}

static json_t *jcoord(double v)
{
    char buf[32];
    (void)snprintf(buf, sizeof buf, "%.7f", v);
    return json_string(buf);
}

static const char *capture_state(const struct sb_job *j)
{
    return hs_streq(j->reconstruction_state, "draft") ? "uploading" : "completed";
}

json_t *sb_job_v3_json(const struct sb_world *w, const struct sb_job *j, const char *base_url)
{
    json_t *o = json_object();
    const struct sb_user *u = user_const(w, j->user_id);
    const char *dname = sb_deliverable_name(j->deliverable_id);
    json_object_set_new(o, "id", json_integer(j->id));
    json_object_set_new(o, "name", jstr(j->name));
    json_object_set_new(o, "reconstruction_state", jstr(j->reconstruction_state));
    json_object_set_new(o, "external_identifier", jstr(j->external_identifier));
    json_object_set_new(o, "org", json_pack("{sI}", "id", (json_int_t)j->org_id));
    json_object_set_new(o, "deliverable_id", json_integer(j->deliverable_id));
    json_object_set_new(o, "archived", json_boolean(j->archived));
    json_object_set_new(o, "created_at", jtime(j->created_at, job_ms(j->id, 0)));
    json_object_set_new(o, "updated_at", jtime(j->updated_at, job_ms(j->id, 1)));
    json_object_set_new(o, "completed_at", jtime(j->completed_at, job_ms(j->id, 2)));

    json_t *addr = json_object();
    json_object_set_new(addr, "location_line_1", jstr(j->line1));
    json_object_set_new(addr, "location_line_2", jstr(j->line2));
    json_object_set_new(addr, "city", jstr(j->city));
    json_object_set_new(addr, "region", jstr(j->region));
    json_object_set_new(addr, "postal_code", jstr(j->postal_code));
    json_object_set_new(addr, "country", jstr(j->country));
    json_object_set_new(addr, "latitude", jcoord(j->lat));
    json_object_set_new(addr, "longitude", jcoord(j->lon));
    json_object_set_new(o, "address", addr);

    json_t *cust = json_object();
    json_object_set_new(cust, "first_name", jstr(j->cust_first));
    json_object_set_new(cust, "name", jstr(j->cust_name));
    json_object_set_new(cust, "email", jstr(j->cust_email));
    json_object_set_new(cust, "phone", jstr(j->cust_phone));
    json_object_set_new(o, "customer", cust);

    if (u) {
        json_t *uo = json_object();
        json_object_set_new(uo, "id", json_integer(u->id));
        json_object_set_new(uo, "email", jstr(u->email));
        json_object_set_new(uo, "first_name", jstr(u->first_name));
        json_object_set_new(uo, "last_name", jstr(u->last_name));
        json_object_set_new(o, "user", uo);
    } else {
        json_object_set_new(o, "user", json_null());
    }

    json_t *caps = json_array();
    if (j->capture_id) {
        json_t *c = json_object();
        json_object_set_new(c, "id", json_integer(j->capture_id));
        json_object_set_new(c, "client_identifier", jstr(j->capture_uuid));
        json_object_set_new(c, "name", json_null());
        json_object_set_new(c, "state", json_string(capture_state(j)));
        json_object_set_new(c, "capture_by", jstr(u ? u->email : NULL));
        json_object_set_new(c, "type",
                            json_string(j->interior ? "dense_interior" : "sparse_exterior"));
        json_object_set_new(c, "deliverable", jstr(dname));
        json_object_set_new(c, "created_at", jtime(j->created_at, job_ms(j->id, 0)));
        json_object_set_new(c, "updated_at",
                            j->n_models > 0 ? jstr(j->models[0].created_at)
                                            : jtime(j->created_at, job_ms(j->id, 0)));
        json_array_append_new(caps, c);
    }
    json_object_set_new(o, "captures", caps);

    json_t *models = json_array();
    for (size_t i = 0; i < j->n_models; i++) {
        const struct sb_model *m = &j->models[i];
        json_t *mo = json_object();
        json_object_set_new(mo, "id", json_integer(m->id));
        json_object_set_new(mo, "name", jstr(m->name));
        json_object_set_new(mo, "state", jstr(m->state));
        json_object_set_new(mo, "deliverable", jstr(sb_deliverable_name(m->deliverable_id)));
        json_object_set_new(mo, "deliverable_id", json_integer(m->deliverable_id));
        json_object_set_new(mo, "capture_id",
                            m->capture_id ? json_integer(m->capture_id) : json_null());
        json_object_set_new(mo, "created_at", jstr(m->created_at));
        json_object_set_new(mo, "updated_at", jstr(m->updated_at));
        json_object_set_new(mo, "artifacts", sb_model_artifacts_json(j, m, base_url));
        json_t *imgs = json_array();
        for (size_t k = 0; k < m->n_images; k++) {
            const struct sb_image *img = &m->images[k];
            char *url = hs_aprintf("%s/api/v3/images/%lld", base_url, (long long)img->id);
            json_array_append_new(imgs, json_pack("{sI,ss,s:o}", "id", (json_int_t)img->id, "url",
                                                  url, "created_at", jstr(img->created_at)));
            free(url);
        }
        json_object_set_new(mo, "images", imgs);
        json_array_append_new(models, mo);
    }
    json_object_set_new(o, "models", models);
    return o;
}

json_t *sb_job_v2_json(const struct sb_world *w, const struct sb_job *j)
{
    (void)w;
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(j->id));
    json_object_set_new(o, "name", jstr(j->name));
    json_object_set_new(o, "state", jstr(j->v2_state));
    json_object_set_new(o, "location_line_1", jstr(j->line1));
    json_object_set_new(o, "location_line_2", jstr(j->line2));
    json_object_set_new(o, "location_city", jstr(j->city));
    json_object_set_new(o, "location_region", jstr(j->region));
    json_object_set_new(o, "location_postal_code", jstr(j->postal_code));
    json_object_set_new(o, "location_country", jstr(j->country));
    json_object_set_new(o, "location_lat", jcoord(j->lat));
    json_object_set_new(o, "location_lon", jcoord(j->lon));
    json_object_set_new(o, "deliverable_id", json_integer(j->deliverable_id));
    json_object_set_new(o, "created_at", jtime(j->created_at, job_ms(j->id, 0)));
    json_object_set_new(o, "updated_at", jtime(j->updated_at, job_ms(j->id, 1)));
    json_object_set_new(o, "archived", json_boolean(j->archived));
    json_object_set_new(o, "external_identifier", jstr(j->external_identifier));
    return o;
}
