/* artifacts.c: what a complete model offers for download in the sandbox: the artifact URLs of Show
 * Job, the measurement JSON documents (summarized_json, full_json, sketch_json, roof_lines,
 * paint_measurements, the interior cad_export.fml), the measurement PDF and the ETags of all of
 * them. Every figure derives from the model's structure figures (footprint, stories, pitch, facets,
 * openings, revision) through one computation (compute_figs), so that the documents and the PDF
 * agree with each other and totals equal the sums of their parts. Photos are in jpeg.c. */
#include "world.h"

#include <math.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/mem.h"
#include "core/str.h"
#include "names.h"
#include "rng.h"

#define MAX_OPENINGS 96
#define MAX_LINES    64
#define MAX_ROOMS    12
#define MAX_FACETS   32
#define OVERHANG_FT  1.0

/* ---- versions and URLs ---- */

static const char *const v_roof_only[] = {"summarized_json", "full_json", "roof_lines", NULL};
static const char *const v_complete[] = {"summarized_json", "full_json", "roof_lines",
                                         "paint_measurements", NULL};
static const char *const v_tla[] = {"sketch_json", NULL};
static const char *const v_interior[] = {"full_json", NULL};
static const char *const v_none[] = {NULL};

const char *const *sb_measurement_versions(int deliverable_id)
{
    switch (deliverable_id) {
    case 2:
        return v_roof_only;
    case 3:
        return v_complete;
    case 5:
    case 6:
        return v_tla;
    case 8:
        return v_interior;
    default:
        return v_none;
    }
}

static bool offers(int deliverable_id, const char *version)
{
    for (const char *const *v = sb_measurement_versions(deliverable_id); *v; v++)
        if (strcmp(*v, version) == 0)
            return true;
    return false;
}

static bool is_complete(const struct sb_model *m)
{
    return hs_streq(m->state, "complete");
}

static void set_url(json_t *o, const char *key, const char *base, int64_t model_id,
                    const char *tail)
{
    char *url = hs_aprintf("%s/api/v3/models/%lld/artifacts/%s", base, (long long)model_id, tail);
    json_object_set_new(o, key, json_string(url));
    free(url);
}

json_t *sb_model_artifacts_json(const struct sb_job *j, const struct sb_model *m,
                                const char *base_url)
{
    (void)j;
    if (!is_complete(m))
        return json_null();
    const char *const *versions = sb_measurement_versions(m->deliverable_id);
    json_t *a = json_object();
    if (!versions[0])
        return a; /* Capture Only: a 3D model, nothing to download */
    json_t *meas = json_object();
    set_url(meas, "pdf", base_url, m->id, "measurements.pdf");
    for (const char *const *v = versions; *v; v++) {
        char *tail = hs_aprintf("measurements.json?version=%s", *v);
        /* summarized_json is the plain "json" link, as in Hover's own Show Job. */
        set_url(meas, strcmp(*v, "summarized_json") == 0 ? "json" : *v, base_url, m->id, tail);
        free(tail);
    }
    set_url(meas, "xlsx", base_url, m->id, "measurements.xlsx");
    json_object_set_new(a, "measurements", meas);
    json_t *cad = json_object();
    set_url(cad, "skp", base_url, m->id, "cad_export.skp");
    set_url(cad, "xml", base_url, m->id, "cad_export.xml");
    json_object_set_new(a, "cad_exports", cad);
    if (m->deliverable_id == 8)
        set_url(a, "cad_export_fml", base_url, m->id, "cad_export.fml");
    return a;
}

/* ---- the figures ---- */

enum side { FRONT, BACK, LEFT, RIGHT };
static const char *const side_names[] = {"front", "back", "left", "right"};

struct opening {
    char kind; /* 'w' window, 'd' door, 'g' garage door */
    double width, height;
    enum side side;
};

struct line {
    const char *type; /* ridge, hip, valley, rake, eave, flashing, step_flashing */
    double length;
};

struct pitch_part {
    int rise;
    double area;
};

struct room {
    const char *name;
    double area, width, length;
    bool living;
};

struct figs {
    bool interior, has_roof, is_house;
    double w, d; /* footprint after the revision, ft */
    int stories;
    double story_h, fp_area, perimeter;
    /* roof */
    double plan_area, roof_area;
    int rise, facets;
    size_t n_pitch;
    struct pitch_part pitch[3];
    size_t n_lines;
    struct line lines[MAX_LINES];
    double ridge, hip, valley, rake, eave, flashing, step_flashing;
    int n_ridge, n_hip, n_valley, n_rake, n_eave;
    size_t n_facets;
    double facet_area[MAX_FACETS];
    int facet_rise[MAX_FACETS];
    /* walls */
    double side_w[4], side_h[4], side_gross[4], side_open[4], side_net[4], side_masonry[4];
    double wall_gross, open_area, wall_net, masonry, siding;
    size_t n_open;
    struct opening open[MAX_OPENINGS];
    int windows, doors, garage_doors;
    double window_area, door_area, garage_area;
    double trim_tops, trim_sills, trim_sides;
    int out_corners, in_corners;
    double out_corner_len, in_corner_len;
    double soffit_area;
    int downspouts, shutters, roof_vents;
    /* interior */
    double ceiling_h;
};

static double r2(double x)
{
    return round(x * 100.0) / 100.0;
}

static double pitch_factor(int rise)
{
    return sqrt((double)rise * rise + 144.0) / 12.0;
}

static void add_line(struct figs *f, const char *type, double len)
{
    if (f->n_lines < MAX_LINES && len > 0)
        f->lines[f->n_lines++] = (struct line){type, r2(len)};
}

static bool name_has(const char *name, const char *part)
{
    return name && strstr(name, part) != NULL;
}

static double story_height(const struct sb_model *m, bool interior)
{
    if (interior)
        return name_has(m->name, "Basement") ? 8.0 : name_has(m->name, "First") ? 9.0 : 8.0;
    if (name_has(m->name, "Shed"))
        return 8.0;
    if (name_has(m->name, "House"))
        return 9.0;
    return 10.0; /* garages, workshops, barns: taller walls */
}

static void roof_figures(struct figs *f, struct sb_rng *r, const struct sb_model *m)
{
    double rw = f->w + 2 * OVERHANG_FT, rd = f->d + 2 * OVERHANG_FT;
    f->plan_area = rw * rd;
    f->rise = m->pitch_rise > 0 ? m->pitch_rise : 4;
    f->facets = m->roof_facets > 0 ? m->roof_facets : 2;
    double pf = pitch_factor(f->rise);

    /* Pitch breakdown: one pitch for simple roofs; complex roofs add a flatter porch roof and,
     * past 8 facets, steeper dormers. Areas are rounded per part and the total is their sum. */
    double share0 = f->facets <= 4 ? 1.0 : 0.72 + 0.2 * sb_rng_unit(r);
    f->pitch[0] = (struct pitch_part){f->rise, share0};
    f->n_pitch = 1;
    if (f->facets > 4) {
        int porch = f->rise - 3 < 2 ? 2 : f->rise - 3;
        if (f->facets >= 9) {
            double s1 = (1 - share0) * sb_rng_uniform(r, 0.5, 0.8);
            f->pitch[1] = (struct pitch_part){porch, s1};
            f->pitch[2] = (struct pitch_part){f->rise + 2, 1 - share0 - s1};
            f->n_pitch = 3;
        } else {
            f->pitch[1] = (struct pitch_part){porch, 1 - share0};
            f->n_pitch = 2;
        }
    }
    f->roof_area = 0;
    for (size_t i = 0; i < f->n_pitch; i++) {
        f->pitch[i].area = r2(f->plan_area * f->pitch[i].area * pitch_factor(f->pitch[i].rise));
        f->roof_area += f->pitch[i].area;
    }
    f->roof_area = r2(f->roof_area);

    /* Facets: each pitch part split over its share of the facets. */
    size_t nf = (size_t)f->facets < MAX_FACETS ? (size_t)f->facets : MAX_FACETS;
    size_t per[3] = {nf, 0, 0};
    if (f->n_pitch > 1) {
        per[1] = nf / 4 ? nf / 4 : 1;
        per[2] = f->n_pitch > 2 ? (nf / 6 ? nf / 6 : 1) : 0;
        per[0] = nf - per[1] - per[2];
    }
    f->n_facets = 0;
    for (size_t p = 0; p < f->n_pitch; p++) {
        double left = f->pitch[p].area, wsum = 0, wts[MAX_FACETS];
        for (size_t k = 0; k < per[p]; k++)
            wsum += wts[k] = sb_rng_uniform(r, 0.5, 1.5);
        for (size_t k = 0; k < per[p]; k++) {
            double a = k + 1 == per[p] ? r2(left) : r2(f->pitch[p].area * wts[k] / wsum);
            left -= a;
            f->facet_rise[f->n_facets] = f->pitch[p].rise;
            f->facet_area[f->n_facets++] = a;
        }
    }

    /* Lines of the main roof over the footprint with its overhang (rw >= rd). */
    if (f->facets == 1) { /* shed roof: one slope, a wall flashing along the high side */
        add_line(f, "rake", rd * pf);
        add_line(f, "rake", rd * pf);
        add_line(f, "eave", rw);
        add_line(f, "flashing", rw);
    } else if (f->facets < 4) { /* gable */
        add_line(f, "ridge", rw);
        for (int k = 0; k < 4; k++)
            add_line(f, "rake", rd / 2 * pf);
        add_line(f, "eave", rw);
        add_line(f, "eave", rw);
    } else { /* hip, plus cross gables and dormers for the facets past four */
        add_line(f, "ridge", rw - rd);
        double run = rd / 2;
        double hip = sqrt(2 * run * run + pow(run * f->rise / 12.0, 2));
        for (int k = 0; k < 4; k++)
            add_line(f, "hip", hip);
        add_line(f, "eave", rw);
        add_line(f, "eave", rw);
        add_line(f, "eave", rd);
        add_line(f, "eave", rd);
        int extra = f->facets - 4;
        for (int k = 0; k + 1 < extra; k += 2) {
            double c = rd * sb_rng_uniform(r, 0.3, 0.45), cr = c / 2;
            add_line(f, "ridge", c * 0.9);
            double valley = sqrt(2 * cr * cr + pow(cr * f->rise / 12.0, 2));
            add_line(f, "valley", valley);
            add_line(f, "valley", valley);
            add_line(f, "rake", cr * pf);
            add_line(f, "rake", cr * pf);
            if (f->stories > 1)
                add_line(f, "step_flashing", f->story_h * 0.8);
        }
        if (extra % 2) { /* a shed dormer: apron flashing below, step flashing on its sides */
            double c = rd * sb_rng_uniform(r, 0.2, 0.3);
            add_line(f, "flashing", c);
            add_line(f, "step_flashing", c * 0.5);
            add_line(f, "step_flashing", c * 0.5);
        }
    }
    if (f->is_house && sb_rng_chance(r, 0.35))
        add_line(f, "flashing", 12.0); /* around a chimney */

    for (size_t i = 0; i < f->n_lines; i++) {
        const struct line *l = &f->lines[i];
        if (strcmp(l->type, "ridge") == 0) {
            f->ridge += l->length;
            f->n_ridge++;
        } else if (strcmp(l->type, "hip") == 0) {
            f->hip += l->length;
            f->n_hip++;
        } else if (strcmp(l->type, "valley") == 0) {
            f->valley += l->length;
            f->n_valley++;
        } else if (strcmp(l->type, "rake") == 0) {
            f->rake += l->length;
            f->n_rake++;
        } else if (strcmp(l->type, "eave") == 0) {
            f->eave += l->length;
            f->n_eave++;
        } else if (strcmp(l->type, "flashing") == 0) {
            f->flashing += l->length;
        } else {
            f->step_flashing += l->length;
        }
    }
    f->ridge = r2(f->ridge);
    f->hip = r2(f->hip);
    f->valley = r2(f->valley);
    f->rake = r2(f->rake);
    f->eave = r2(f->eave);
    f->flashing = r2(f->flashing);
    f->step_flashing = r2(f->step_flashing);
    f->soffit_area = r2(f->plan_area - f->fp_area);
    f->downspouts = (int)ceil(f->eave / 35.0);
    if (f->downspouts < 2)
        f->downspouts = 2;
    f->roof_vents = (int)ceil(f->roof_area / 300.0);
}

static void add_opening(struct figs *f, char kind, double w, double h, enum side s)
{
    if (f->n_open < MAX_OPENINGS)
        f->open[f->n_open++] = (struct opening){kind, w, h, s};
}

static void wall_figures(struct figs *f, struct sb_rng *r, const struct sb_model *m)
{
    static const double win_sizes[][2] = {{3, 5}, {3, 4}, {2.5, 4}, {4, 5}, {6, 5}, {2, 3}};
    double h = f->story_h * f->stories;
    f->side_w[FRONT] = f->side_w[BACK] = f->w;
    f->side_w[LEFT] = f->side_w[RIGHT] = f->d;
    for (int s = 0; s < 4; s++) {
        f->side_h[s] = h;
        f->side_gross[s] = f->side_w[s] * h;
    }
    if (f->has_roof) {
        /* Wall above the eaves: gable triangles at the ends of a gable roof, the trapezoid ends
         * of a shed roof, the fronts of cross gables. */
        double rise_ft = f->d / 2 * f->rise / 12.0;
        if (f->facets == 1) {
            double tri = f->d * (f->d * f->rise / 12.0) / 2;
            f->side_gross[LEFT] += tri;
            f->side_gross[RIGHT] += tri;
        } else if (f->facets < 4) {
            f->side_gross[LEFT] += f->d / 2 * rise_ft;
            f->side_gross[RIGHT] += f->d / 2 * rise_ft;
        }
        for (int k = 0, pairs = (f->facets - 4) / 2; k < pairs; k++) {
            double c = f->d * 0.35, tri = (c / 2) * (c / 2) * f->rise / 12.0;
            f->side_gross[k % 2 ? BACK : FRONT] += tri;
        }
    }
    for (int s = 0; s < 4; s++)
        f->side_gross[s] = r2(f->side_gross[s]);

    int n = m->openings;
    if (f->interior) {
        /* Exterior doors only on the entry level; other levels have windows only. */
        if (name_has(m->name, "First")) {
            add_opening(f, 'd', 3, 6.67, FRONT);
            add_opening(f, 'd', 6, 6.67, BACK);
            n -= 2;
        }
    } else if (name_has(m->name, "Garage") || name_has(m->name, "Carport")) {
        int gd = f->w >= 24 ? 2 : 1;
        for (int k = 0; k < gd; k++)
            add_opening(f, 'g', gd == 2 ? 9 : 16, 7, FRONT);
        add_opening(f, 'd', 3, 6.67, LEFT);
        n -= gd + 1;
    } else if (name_has(m->name, "Shed") || name_has(m->name, "Barn")) {
        add_opening(f, 'd', 5, 6.5, FRONT);
        n -= 1;
    } else {
        add_opening(f, 'd', 3, 6.67, FRONT);
        add_opening(f, 'd', 6, 6.67, BACK); /* patio slider */
        n -= 2;
        if (n > 23) {
            add_opening(f, 'd', 3, 6.67, LEFT);
            n -= 1;
        }
        if (f->is_house && f->w > 50 && sb_rng_chance(r, 0.4)) /* attached garage */
            add_opening(f, 'g', 16, 7, FRONT);
    }
    for (int k = 0; k < n; k++) {
        const double *sz = win_sizes[sb_rng_below(r, 6)];
        double u = sb_rng_unit(r);
        enum side s = u < 0.35 ? FRONT : u < 0.65 ? BACK : u < 0.825 ? LEFT : RIGHT;
        add_opening(f, 'w', sz[0], sz[1], s);
    }
    /* A side may not be more than half opening: move windows that do not fit to the back. */
    for (size_t i = 0; i < f->n_open; i++) {
        struct opening *o = &f->open[i];
        double a = o->width * o->height;
        if (f->side_open[o->side] + a > f->side_gross[o->side] * 0.5 && o->kind == 'w') {
            int best = BACK;
            for (int s = 0; s < 4; s++)
                if (f->side_gross[s] * 0.5 - f->side_open[s] >
                    f->side_gross[best] * 0.5 - f->side_open[best])
                    best = s;
            o->side = (enum side)best;
        }
        f->side_open[o->side] += a;
        if (o->kind == 'w') {
            f->windows++;
            f->window_area += a;
            f->trim_sills += o->width;
        } else if (o->kind == 'd') {
            f->doors++;
            f->door_area += a;
        } else {
            f->garage_doors++;
            f->garage_area += a;
        }
        f->trim_tops += o->width;
        f->trim_sides += 2 * o->height;
    }
    bool stone = f->is_house && sb_rng_chance(r, 0.3);
    double stone_share = stone ? sb_rng_uniform(r, 0.15, 0.4) : 0;
    for (int s = 0; s < 4; s++) {
        f->side_open[s] = r2(f->side_open[s]);
        f->side_net[s] = r2(f->side_gross[s] - f->side_open[s]);
        f->side_masonry[s] = s == FRONT ? r2(f->side_net[s] * stone_share) : 0;
        f->wall_gross += f->side_gross[s];
        f->open_area += f->side_open[s];
        f->wall_net += f->side_net[s];
        f->masonry += f->side_masonry[s];
    }
    f->wall_gross = r2(f->wall_gross);
    f->open_area = r2(f->open_area);
    f->wall_net = r2(f->wall_net);
    f->masonry = r2(f->masonry);
    f->siding = r2(f->wall_net - f->masonry);
    f->window_area = r2(f->window_area);
    f->door_area = r2(f->door_area);
    f->garage_area = r2(f->garage_area);
    f->trim_tops = r2(f->trim_tops);
    f->trim_sills = r2(f->trim_sills);
    f->trim_sides = r2(f->trim_sides);
    int pairs = f->has_roof && f->facets > 4 ? (f->facets - 4) / 2 : 0;
    f->out_corners = 4 + 2 * pairs;
    f->in_corners = 2 * pairs;
    f->out_corner_len = r2(f->out_corners * h);
    f->in_corner_len = r2(f->in_corners * h);
    f->shutters = f->is_house && sb_rng_chance(r, 0.4) ? 2 * (f->windows * 35 / 100) : 0;
}

static void compute_figs(const struct sb_model *m, struct figs *f)
{
    memset(f, 0, sizeof *f);
    /* Details (window sizes, facet split...) depend on the model id only, so that they survive
     * any change elsewhere in the world; the revision scales the footprint slightly, as a
     * re-measurement would. */
    struct sb_rng r;
    sb_rng_init(&r, sb_mix64((uint64_t)m->id ^ 0x6D656173ull));
    f->interior = m->deliverable_id == 8;
    f->is_house = !f->interior && name_has(m->name, "House");
    f->w = r2(m->footprint_w * (1 + 0.0035 * m->revision));
    f->d = r2(m->footprint_d * (1 + 0.0025 * m->revision));
    f->stories = m->stories > 0 ? m->stories : 1;
    f->story_h = story_height(m, f->interior);
    f->fp_area = r2(f->w * f->d);
    f->perimeter = r2(2 * (f->w + f->d));
    f->has_roof = !f->interior;
    if (f->has_roof)
        roof_figures(f, &r, m);
    if (f->interior)
        f->ceiling_h = f->story_h;
    wall_figures(f, &r, m);
}

/* Splits `total` over the first n rooms of `defs` in proportion to their weights (give or take a
 * quarter); the last room takes the rounding remainder so that the areas add up to the total. */
static size_t split_rooms(struct sb_rng *r, double total, const struct sb_room_def *defs,
                          size_t n_defs, size_t n, bool living, struct room *out)
{
    if (n > n_defs)
        n = n_defs;
    if (n > MAX_ROOMS)
        n = MAX_ROOMS;
    double wts[MAX_ROOMS], wsum = 0, left = total;
    for (size_t i = 0; i < n; i++)
        wsum += wts[i] = defs[i].weight * sb_rng_uniform(r, 0.75, 1.25);
    for (size_t i = 0; i < n; i++) {
        double a = i + 1 == n ? r2(left) : r2(total * wts[i] / wsum);
        left -= a;
        double aspect = sb_rng_uniform(r, 1.0, 1.6);
        double wd = a > 0 ? round(sqrt(a / aspect) * 10.0) / 10.0 : 0;
        out[i] = (struct room){defs[i].name, a, wd, wd > 0 ? r2(a / wd) : 0, living};
    }
    return n;
}

/* The rooms of one level of a house (sketches) or of an interior model. */
static size_t level_rooms(struct sb_rng *r, const char *level, double area, struct room *out)
{
    /* About one room per 220 sq ft, as in a typical American house. */
    int n = (int)(area / 220.0) + sb_rng_range(r, -1, 1);
    size_t rooms = (size_t)(n < 3 ? 3 : n);
    if (name_has(level, "Basement"))
        return split_rooms(r, area, sb_rooms_basement, sb_n_rooms_basement, rooms, true, out);
    if (name_has(level, "First"))
        return split_rooms(r, area, sb_rooms_main, sb_n_rooms_main, rooms, true, out);
    return split_rooms(r, area, sb_rooms_upper, sb_n_rooms_upper, rooms, true, out);
}

/* ---- documents ---- */

static json_t *num(double v)
{
    return json_real(r2(v));
}

static json_t *len_count(double len, int count)
{
    return json_pack("{s:o,s:i}", "length", num(len), "count", count);
}

static json_t *count_area(int count, double area)
{
    return json_pack("{s:i,s:o}", "count", count, "area", num(area));
}

static void pitch_str(int rise, char *out, size_t n)
{
    (void)snprintf(out, n, "%d/12", rise);
}

static json_t *header(const struct sb_job *j, const struct sb_model *m, const char *version)
{
    return json_pack("{s:s,s:I,s:I,s:o,s:i,s:i,s:o,s:o,s:{s:s,s:s}}", "version", version, "job_id",
                     (json_int_t)j->id, "model_id", (json_int_t)m->id, "model_name",
                     m->name ? json_string(m->name) : json_null(), "revision", m->revision,
                     "deliverable_id", m->deliverable_id, "deliverable",
                     json_string(sb_deliverable_name(m->deliverable_id)
                                     ? sb_deliverable_name(m->deliverable_id)
                                     : "unknown"),
                     "generated_at", m->updated_at ? json_string(m->updated_at) : json_null(),
                     "units", "length", "ft", "area", "sq_ft");
}

static json_t *roof_json(const struct figs *f)
{
    char p[16];
    json_t *breakdown = json_array();
    for (size_t i = 0; i < f->n_pitch; i++) {
        pitch_str(f->pitch[i].rise, p, sizeof p);
        json_array_append_new(
            breakdown,
            json_pack("{s:s,s:o,s:o}", "pitch", p, "area", num(f->pitch[i].area), "percentage",
                      json_real(round(f->pitch[i].area / f->roof_area * 1000) / 10)));
    }
    pitch_str(f->pitch[0].rise, p, sizeof p);
    double a = f->roof_area;
    return json_pack("{s:{s:o,s:o,s:{s:o,s:o,s:o,s:o}},s:{s:i},s:{s:s,s:o},s:o,s:o,s:o,s:o,s:o,"
                     "s:{s:o,s:{s:o}},s:{s:o},s:{s:o}}",
                     "area", "total", num(a), "squares", num(a / 100), "waste", "zero", num(a),
                     "plus_10", num(a * 1.10), "plus_15", num(a * 1.15), "plus_20", num(a * 1.20),
                     "facets", "total", f->facets, "pitch", "predominant", p, "breakdown",
                     breakdown, "ridges", len_count(f->ridge, f->n_ridge), "hips",
                     len_count(f->hip, f->n_hip), "valleys", len_count(f->valley, f->n_valley),
                     "rakes", len_count(f->rake, f->n_rake), "eaves", len_count(f->eave, f->n_eave),
                     "flashing", "length", num(f->flashing), "step_flashing", "length",
                     num(f->step_flashing), "drip_edge", "length", num(f->eave + f->rake),
                     "starter", "length", num(f->eave + f->rake));
}

static json_t *roofline_json(const struct figs *f)
{
    return json_pack("{s:{s:o},s:{s:o},s:{s:o}}", "eaves_fascia", "length", num(f->eave),
                     "rakes_fascia", "length", num(f->rake), "soffit", "area", num(f->soffit_area));
}

static json_t *accessories_json(const struct figs *f)
{
    return json_pack("{s:{s:o},s:{s:i},s:{s:i},s:{s:i}}", "gutters", "length", num(f->eave),
                     "downspouts", "count", f->downspouts, "shutters", "count", f->shutters,
                     "roof_vents", "count", f->roof_vents);
}

static json_t *facades_json(const struct figs *f)
{
    double s = f->siding;
    return json_pack("{s:o,s:{s:o,s:{s:o,s:o,s:o}},s:{s:o},s:o}", "total_area", num(f->wall_gross),
                     "siding", "area", num(s), "waste", "zero", num(s), "plus_10", num(s * 1.10),
                     "plus_18", num(s * 1.18), "masonry", "area", num(f->masonry), "openings_area",
                     num(f->open_area));
}

static json_t *openings_json(const struct figs *f)
{
    return json_pack("{s:i,s:o,s:o,s:o,s:o}", "count", f->windows + f->doors + f->garage_doors,
                     "area", num(f->open_area), "windows", count_area(f->windows, f->window_area),
                     "doors", count_area(f->doors, f->door_area), "garage_doors",
                     count_area(f->garage_doors, f->garage_area));
}

static json_t *trim_json(const struct figs *f)
{
    return json_pack("{s:{s:o,s:o,s:o,s:o}}", "openings", "tops", num(f->trim_tops), "sills",
                     num(f->trim_sills), "sides", num(f->trim_sides), "total",
                     num(f->trim_tops + f->trim_sills + f->trim_sides));
}

static json_t *corners_json(const struct figs *f)
{
    return json_pack("{s:o,s:o}", "outside", len_count(f->out_corner_len, f->out_corners), "inside",
                     len_count(f->in_corner_len, f->in_corners));
}

static void add_exterior_summary(json_t *doc, const struct figs *f, int deliverable_id)
{
    json_object_set_new(doc, "roof", roof_json(f));
    json_object_set_new(doc, "roofline", roofline_json(f));
    if (deliverable_id != 2) { /* Roof Only reports no walls */
        json_object_set_new(doc, "facades", facades_json(f));
        json_object_set_new(doc, "openings", openings_json(f));
        json_object_set_new(doc, "trim", trim_json(f));
        json_object_set_new(doc, "corners", corners_json(f));
    }
    json_object_set_new(doc, "accessories", accessories_json(f));
}

static json_t *footprint_json(const struct figs *f)
{
    return json_pack("{s:o,s:o,s:o,s:o,s:i,s:o}", "width", num(f->w), "depth", num(f->d), "area",
                     num(f->fp_area), "perimeter", num(f->perimeter), "stories", f->stories,
                     "story_height", num(f->story_h));
}

static json_t *opening_json(const struct opening *o, int idx)
{
    char id[32];
    (void)snprintf(id, sizeof id, "%c-%d", o->kind == 'w' ? 'W' : o->kind == 'd' ? 'D' : 'G', idx);
    return json_pack("{s:s,s:s,s:o,s:o,s:o}", "id", id, "type",
                     o->kind == 'w'   ? "window"
                     : o->kind == 'd' ? "door"
                                      : "garage_door",
                     "width", num(o->width), "height", num(o->height), "area",
                     num(o->width * o->height));
}

static json_t *elevations_json(const struct figs *f)
{
    json_t *arr = json_array();
    int facade_no = 1;
    for (int s = 0; s < 4; s++) {
        json_t *facades = json_array(), *opens = json_array();
        double siding = r2(f->side_net[s] - f->side_masonry[s]);
        char id[32];
        (void)snprintf(id, sizeof id, "SI-%d", facade_no++);
        json_array_append_new(facades, json_pack("{s:s,s:s,s:o}", "id", id, "material", "siding",
                                                 "area", num(siding)));
        if (f->side_masonry[s] > 0) {
            (void)snprintf(id, sizeof id, "MA-%d", facade_no++);
            json_array_append_new(facades, json_pack("{s:s,s:s,s:o}", "id", id, "material",
                                                     "masonry", "area", num(f->side_masonry[s])));
        }
        for (size_t i = 0; i < f->n_open; i++)
            if (f->open[i].side == (enum side)s)
                json_array_append_new(opens, opening_json(&f->open[i], (int)i + 1));
        json_array_append_new(
            arr, json_pack("{s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "side", side_names[s], "width",
                           num(f->side_w[s]), "height", num(f->side_h[s]), "gross_area",
                           num(f->side_gross[s]), "openings_area", num(f->side_open[s]), "net_area",
                           num(f->side_net[s]), "facades", facades, "openings", opens));
    }
    return arr;
}

static json_t *roof_facets_json(const struct figs *f)
{
    json_t *arr = json_array();
    char id[32], p[16];
    for (size_t i = 0; i < f->n_facets; i++) {
        (void)snprintf(id, sizeof id, "RF-%zu", i + 1);
        pitch_str(f->facet_rise[i], p, sizeof p);
        json_array_append_new(
            arr, json_pack("{s:s,s:s,s:o}", "id", id, "pitch", p, "area", num(f->facet_area[i])));
    }
    return arr;
}

static json_t *rooms_json(const struct room *rooms, size_t n, bool with_living)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *o =
            json_pack("{s:s,s:o,s:o,s:o}", "name", rooms[i].name, "area", num(rooms[i].area),
                      "width", num(rooms[i].width), "length", num(rooms[i].length));
        if (with_living)
            json_object_set_new(o, "living", json_boolean(rooms[i].living));
        json_array_append_new(arr, o);
    }
    return arr;
}

static json_t *interior_full(json_t *doc, const struct sb_model *m, const struct figs *f)
{
    struct sb_rng r;
    sb_rng_init(&r, sb_mix64((uint64_t)m->id ^ 0x726F6F6Dull));
    struct room rooms[MAX_ROOMS];
    size_t n = level_rooms(&r, m->name, f->fp_area, rooms);
    json_t *list = json_array();
    for (size_t i = 0; i < f->n_open; i++)
        json_array_append_new(list, opening_json(&f->open[i], (int)i + 1));
    json_object_set_new(doc, "level", json_string(m->name ? m->name : ""));
    json_object_set_new(doc, "footprint", footprint_json(f));
    json_object_set_new(
        doc, "floor",
        json_pack("{s:o,s:o}", "area", num(f->fp_area), "perimeter", num(f->perimeter)));
    json_object_set_new(
        doc, "ceiling",
        json_pack("{s:o,s:o}", "height", num(f->ceiling_h), "area", num(f->fp_area)));
    json_object_set_new(doc, "walls",
                        json_pack("{s:o,s:o,s:o}", "length", num(f->perimeter), "gross_area",
                                  num(f->wall_gross), "net_area", num(f->wall_net)));
    json_t *op = openings_json(f);
    json_object_set_new(op, "list", list);
    json_object_set_new(doc, "openings", op);
    json_object_set_new(doc, "rooms", rooms_json(rooms, n, false));
    return doc;
}

static json_t *sketch(json_t *doc, const struct sb_model *m, const struct figs *f)
{
    static const char *const floor_names[] = {"First Floor", "Second Floor", "Third Floor"};
    struct sb_rng r;
    sb_rng_init(&r, sb_mix64((uint64_t)m->id ^ 0x736B6574ull));
    json_t *floors = json_array();
    double living = 0, total = 0;
    bool dwelling = name_has(m->name, "House");
    int n_floors = dwelling ? (f->stories < 3 ? f->stories : 3) : 1;
    for (int k = 0; k < n_floors; k++) {
        struct room rooms[MAX_ROOMS];
        size_t n;
        if (dwelling) {
            n = level_rooms(&r, floor_names[k], f->fp_area, rooms);
        } else {
            /* Garages and sheds are sketched but are not living area. */
            rooms[0] =
                (struct room){m->name ? m->name : "Structure", f->fp_area, f->w, f->d, false};
            n = 1;
        }
        double floor_area = 0;
        for (size_t i = 0; i < n; i++) {
            floor_area += rooms[i].area;
            if (rooms[i].living)
                living += rooms[i].area;
        }
        total += floor_area;
        json_array_append_new(floors,
                              json_pack("{s:s,s:o,s:o}", "name", floor_names[k], "area",
                                        num(floor_area), "rooms", rooms_json(rooms, n, true)));
    }
    json_object_set_new(doc, "footprint", footprint_json(f));
    json_object_set_new(doc, "total_living_area", num(living));
    json_object_set_new(doc, "total_area", num(total));
    json_object_set_new(doc, "floors", floors);
    if (m->deliverable_id == 5) { /* the "plus": a roof summary */
        char p[16];
        pitch_str(f->pitch[0].rise, p, sizeof p);
        json_object_set_new(doc, "roof",
                            json_pack("{s:{s:o},s:{s:i},s:{s:s}}", "area", "total",
                                      num(f->roof_area), "facets", "total", f->facets, "pitch",
                                      "predominant", p));
    }
    return doc;
}

static json_t *roof_lines(json_t *doc, const struct figs *f)
{
    char p[16];
    pitch_str(f->pitch[0].rise, p, sizeof p);
    json_t *lines = json_array();
    for (size_t i = 0; i < f->n_lines; i++) {
        char id[32];
        (void)snprintf(id, sizeof id, "L-%zu", i + 1);
        json_array_append_new(lines, json_pack("{s:s,s:s,s:o}", "id", id, "type", f->lines[i].type,
                                               "length", num(f->lines[i].length)));
    }
    json_object_set_new(doc, "pitch", json_pack("{s:s}", "predominant", p));
    json_object_set_new(doc, "lines", lines);
    json_object_set_new(doc, "totals",
                        json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "ridge", num(f->ridge), "hip",
                                  num(f->hip), "valley", num(f->valley), "rake", num(f->rake),
                                  "eave", num(f->eave), "flashing", num(f->flashing),
                                  "step_flashing", num(f->step_flashing)));
    return doc;
}

static json_t *paint(json_t *doc, const struct figs *f)
{
    const double coverage = 350.0; /* sq ft per gallon and coat */
    double trim_len = f->trim_tops + f->trim_sills + f->trim_sides + f->out_corner_len +
                      f->in_corner_len + f->eave + f->rake;
    double trim_area = trim_len * 0.5; /* 6-inch boards */
    json_object_set_new(doc, "body",
                        json_pack("{s:o,s:o,s:o}", "siding_area", num(f->siding), "masonry_area",
                                  num(f->masonry), "paintable_area", num(f->siding)));
    json_object_set_new(doc, "trim",
                        json_pack("{s:o,s:o}", "length", num(trim_len), "area", num(trim_area)));
    json_object_set_new(doc, "soffit", json_pack("{s:o}", "area", num(f->soffit_area)));
    json_object_set_new(doc, "fascia", json_pack("{s:o}", "length", num(f->eave + f->rake)));
    json_object_set_new(doc, "doors", count_area(f->doors, f->door_area));
    json_object_set_new(doc, "garage_doors", count_area(f->garage_doors, f->garage_area));
    json_object_set_new(doc, "shutters", json_pack("{s:i}", "count", f->shutters));
    json_object_set_new(
        doc, "estimate",
        json_pack("{s:i,s:o,s:o,s:o}", "coats", 2, "coverage_sq_ft_per_gallon", num(coverage),
                  "body_gallons", json_real(ceil(f->siding * 2 / coverage * 10) / 10),
                  "trim_gallons",
                  json_real(ceil((trim_area + f->soffit_area) * 2 / coverage * 10) / 10)));
    return doc;
}

json_t *sb_measurements_json(const struct sb_job *j, const struct sb_model *m, const char *version)
{
    if (!version || !is_complete(m) || !offers(m->deliverable_id, version))
        return NULL;
    struct figs f;
    compute_figs(m, &f);
    json_t *doc = header(j, m, version);
    if (strcmp(version, "summarized_json") == 0) {
        add_exterior_summary(doc, &f, m->deliverable_id);
    } else if (strcmp(version, "full_json") == 0) {
        if (f.interior)
            return interior_full(doc, m, &f);
        add_exterior_summary(doc, &f, m->deliverable_id);
        json_object_set_new(doc, "footprint", footprint_json(&f));
        json_object_set_new(doc, "roof_facets", roof_facets_json(&f));
        if (m->deliverable_id != 2)
            json_object_set_new(doc, "elevations", elevations_json(&f));
    } else if (strcmp(version, "sketch_json") == 0) {
        sketch(doc, m, &f);
    } else if (strcmp(version, "roof_lines") == 0) {
        roof_lines(doc, &f);
    } else if (strcmp(version, "paint_measurements") == 0) {
        paint(doc, &f);
    }
    return doc;
}

static char *dump_body(const json_t *doc, size_t *len)
{
    char *s = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(12));
    if (!s)
        abort(); /* jansson fails here only when out of memory */
    char *d = hs_strdup(s);
    free(s);
    if (len)
        *len = strlen(d);
    return d;
}

char *sb_measurements_body(const struct sb_job *j, const struct sb_model *m, const char *version,
                           size_t *len)
{
    json_t *doc = sb_measurements_json(j, m, version);
    if (!doc)
        return NULL;
    char *body = dump_body(doc, len);
    json_decref(doc);
    return body;
}

json_t *sb_cad_fml_json(const struct sb_job *j, const struct sb_model *m)
{
    if (m->deliverable_id != 8 || !is_complete(m))
        return NULL;
    struct figs f;
    compute_figs(m, &f);
    struct sb_rng r;
    sb_rng_init(&r, sb_mix64((uint64_t)m->id ^ 0x726F6F6Dull));
    struct room rooms[MAX_ROOMS];
    size_t n = level_rooms(&r, m->name, f.fp_area, rooms);
    /* The outer walls as a closed rectangle, corner to corner, in feet from the front-left. */
    const double pts[5][2] = {{0, 0}, {f.w, 0}, {f.w, f.d}, {0, f.d}, {0, 0}};
    json_t *walls = json_array();
    for (int k = 0; k < 4; k++)
        json_array_append_new(walls,
                              json_pack("{s:[o,o],s:[o,o],s:o,s:o}", "a", num(pts[k][0]),
                                        num(pts[k][1]), "b", num(pts[k + 1][0]), num(pts[k + 1][1]),
                                        "thickness", num(0.5), "height", num(f.ceiling_h)));
    json_t *doc = header(j, m, "cad_export_fml");
    json_object_set_new(doc, "floors",
                        json_pack("[{s:s,s:o,s:o,s:o,s:o}]", "name", m->name ? m->name : "",
                                  "height", num(f.ceiling_h), "area", num(f.fp_area), "walls",
                                  walls, "rooms", rooms_json(rooms, n, false)));
    return doc;
}

/* ---- PDF ---- */

/* Appends s as a PDF literal string: parentheses and backslashes escaped, anything outside
 * printable ASCII replaced (the standard 14 fonts have no encoding for it here). */
static void pdf_text(struct hs_buf *b, const char *s)
{
    (void)hs_buf_appends(b, "(");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char c = (char)*p;
        if (c == '(' || c == ')' || c == '\\')
            (void)hs_buf_append(b, "\\", 1);
        if (*p < 0x20 || *p > 0x7E)
            c = '?';
        (void)hs_buf_append(b, &c, 1);
    }
    (void)hs_buf_appends(b, ")");
}

static void pdf_line(struct hs_buf *b, const char *font, int size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void pdf_line(struct hs_buf *b, const char *font, int size, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    (void)hs_buf_appendf(b, "/%s %d Tf T* ", font, size);
    pdf_text(b, text);
    (void)hs_buf_appends(b, " Tj\n");
}

static void pdf_content(struct hs_buf *c, const struct sb_job *j, const struct sb_model *m,
                        const struct figs *f)
{
    char p[16];
    pitch_str(f->rise, p, sizeof p);
    (void)hs_buf_appends(c, "0.2 0.35 0.6 rg 0 742 612 50 re f\n");
    (void)hs_buf_appends(c, "BT 1 1 1 rg /F2 20 Tf 54 760 Td ");
    pdf_text(c, "Measurement Summary");
    (void)hs_buf_appends(c, " Tj ET\n0 0 0 rg\nBT 18 TL 54 718 Td\n");
    pdf_line(c, "F2", 13, "%s", j->name ? j->name : "");
    pdf_line(c, "F1", 11, "%s%s%s, %s, %s %s", j->line1 ? j->line1 : "",
             j->line2 && *j->line2 ? " " : "", j->line2 ? j->line2 : "", j->city ? j->city : "",
             j->region ? j->region : "", j->postal_code ? j->postal_code : "");
    pdf_line(c, "F1", 11, "Job %lld  |  Structure: %s (model %lld)  |  Deliverable: %s",
             (long long)j->id, m->name ? m->name : "", (long long)m->id,
             sb_deliverable_name(m->deliverable_id) ? sb_deliverable_name(m->deliverable_id) : "");
    pdf_line(c, "F1", 11, "Revision %d  |  Measured %s", m->revision,
             m->updated_at ? m->updated_at : "");
    pdf_line(c, "F1", 11, " ");
    pdf_line(c, "F2", 12, "Footprint");
    pdf_line(c, "F1", 11, "%.2f ft x %.2f ft = %.2f sq ft, %d %s", f->w, f->d, f->fp_area,
             f->stories, f->stories == 1 ? "story" : "stories");
    if (f->interior) {
        pdf_line(c, "F2", 12, "Level: %s", m->name ? m->name : "");
        pdf_line(c, "F1", 11, "Floor area: %.2f sq ft  |  Ceiling height: %.2f ft", f->fp_area,
                 f->ceiling_h);
        pdf_line(c, "F1", 11, "Wall area: %.2f sq ft net (%.2f gross)", f->wall_net, f->wall_gross);
        pdf_line(c, "F1", 11, "Openings: %d windows (%.2f sq ft), %d doors (%.2f sq ft)",
                 f->windows, f->window_area, f->doors, f->door_area);
    } else if (m->deliverable_id == 5 || m->deliverable_id == 6) {
        /* The figure the sketch_json document carries, taken from it so that both always agree. */
        json_t *doc = json_object();
        sketch(doc, m, f);
        pdf_line(c, "F2", 12, "Living area");
        pdf_line(c, "F1", 11, "Total living area: %.2f sq ft  |  Sketched area: %.2f sq ft",
                 json_real_value(json_object_get(doc, "total_living_area")),
                 json_real_value(json_object_get(doc, "total_area")));
        pdf_line(c, "F1", 11, "Floors: %zu", json_array_size(json_object_get(doc, "floors")));
        json_decref(doc);
        if (m->deliverable_id == 5) {
            pdf_line(c, "F2", 12, "Roof");
            pdf_line(c, "F1", 11, "Roof area: %.2f sq ft  |  Facets: %d  |  Predominant pitch: %s",
                     f->roof_area, f->facets, p);
        }
    } else {
        pdf_line(c, "F2", 12, "Roof");
        pdf_line(c, "F1", 11, "Roof area: %.2f sq ft (%.2f squares)  |  Facets: %d", f->roof_area,
                 f->roof_area / 100, f->facets);
        pdf_line(c, "F1", 11, "Predominant pitch: %s", p);
        for (size_t i = 0; i < f->n_pitch; i++) {
            pitch_str(f->pitch[i].rise, p, sizeof p);
            pdf_line(c, "F1", 11, "    %s: %.2f sq ft", p, f->pitch[i].area);
        }
        pdf_line(c, "F1", 11, "Ridges %.2f ft  |  Hips %.2f ft  |  Valleys %.2f ft", f->ridge,
                 f->hip, f->valley);
        pdf_line(c, "F1", 11, "Rakes %.2f ft  |  Eaves %.2f ft  |  Flashing %.2f ft", f->rake,
                 f->eave, f->flashing + f->step_flashing);
        if (m->deliverable_id == 3) {
            pdf_line(c, "F2", 12, "Walls");
            pdf_line(c, "F1", 11, "Siding: %.2f sq ft  |  +10%%: %.2f  |  +18%%: %.2f", f->siding,
                     f->siding * 1.10, f->siding * 1.18);
            pdf_line(c, "F1", 11, "Masonry: %.2f sq ft  |  Openings: %d (%.2f sq ft)", f->masonry,
                     f->windows + f->doors + f->garage_doors, f->open_area);
        }
    }
    pdf_line(c, "F1", 11, " ");
    pdf_line(c, "F1", 9, "Generated by hover-sandbox from emulated data: not a real measurement.");
    (void)hs_buf_appends(c, "ET\n");
}

/* Decimal digits of v >= 0. */
static int digits(size_t v)
{
    int n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

/* The tail after the objects: xref table, trailer (with `extra` filler spaces, which the padding
 * arithmetic uses) and startxref. */
static void pdf_tail(struct hs_buf *b, const size_t *offsets, size_t n_obj, size_t startxref,
                     int extra)
{
    (void)hs_buf_appendf(b, "xref\n0 %zu\n0000000000 65535 f \n", n_obj + 1);
    for (size_t i = 0; i < n_obj; i++)
        (void)hs_buf_appendf(b, "%010zu 00000 n \n", offsets[i]);
    (void)hs_buf_appendf(
        b, "trailer\n<< /Size %zu /Root 1 0 R /Info 7 0 R%s >>\nstartxref\n%zu\n%%%%EOF\n",
        n_obj + 1, extra ? " " : "", startxref);
}

/* Padding that makes the file exactly `target` bytes: body + pad + tail, where the tail without
 * startxref's digits is `fixed` bytes and startxref (= body + pad) has k digits, k unknown until
 * pad is. Each k is tried, with one optional filler space for the digit-count boundaries where no
 * k fits (e.g. 99999 versus 100000). */
static bool pdf_pad_for(size_t target, size_t body, size_t fixed, size_t *pad, int *extra)
{
    for (int e = 0; e <= 1; e++) {
        for (int k = 1; k <= 20; k++) {
            if (target < fixed + (size_t)k + (size_t)e + body)
                continue;
            size_t s = target - fixed - (size_t)k - (size_t)e;
            if (digits(s) == k) {
                *pad = s - body;
                *extra = e;
                return true;
            }
        }
    }
    return false;
}

unsigned char *sb_pdf_bytes(const struct sb_job *j, const struct sb_model *m, size_t *len)
{
    if (!is_complete(m) || !sb_measurement_versions(m->deliverable_id)[0])
        return NULL;
    struct figs f;
    compute_figs(m, &f);
    struct hs_buf content, b, tail;
    hs_buf_init(&content, 1u << 20);
    hs_buf_init(&b, 1u << 21);
    hs_buf_init(&tail, 1u << 16);
    pdf_content(&content, j, m, &f);

    size_t off[7];
    /* The binary comment tells transfer tools the file is binary (PDF 1.7, 7.5.2). */
    (void)hs_buf_appends(&b, "%PDF-1.4\n%\xE2\xE3\xCF\xD3\n");
    off[0] = b.len;
    (void)hs_buf_appends(&b, "1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n");
    off[1] = b.len;
    (void)hs_buf_appends(&b, "2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n");
    off[2] = b.len;
    (void)hs_buf_appends(&b, "3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                             "/Resources << /Font << /F1 4 0 R /F2 5 0 R >> >> "
                             "/Contents 6 0 R >>\nendobj\n");
    off[3] = b.len;
    (void)hs_buf_appends(&b, "4 0 obj\n<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
                             "/Encoding /WinAnsiEncoding >>\nendobj\n");
    off[4] = b.len;
    (void)hs_buf_appends(&b, "5 0 obj\n<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold "
                             "/Encoding /WinAnsiEncoding >>\nendobj\n");
    off[5] = b.len;
    (void)hs_buf_appendf(&b, "6 0 obj\n<< /Length %zu >>\nstream\n", content.len);
    (void)hs_buf_append(&b, content.data, content.len);
    (void)hs_buf_appends(&b, "\nendstream\nendobj\n");
    off[6] = b.len;
    (void)hs_buf_appends(&b, "7 0 obj\n<< /Title ");
    char title[256];
    (void)snprintf(title, sizeof title, "Measurements: %s - %s", j->name ? j->name : "",
                   m->name ? m->name : "");
    pdf_text(&b, title);
    (void)hs_buf_appends(&b, " /Producer (hover-sandbox) >>\nendobj\n");
    hs_buf_free(&content);

    /* Padding sits between the objects and the xref table, so object offsets do not move; only
     * startxref does, and its digit count feeds back into the length: try each digit count (and
     * one optional filler space) until the total is exact. */
    size_t body = b.len, pad = 0;
    int extra = 0;
    pdf_tail(&tail, off, 7, body, 0);
    size_t natural = body + tail.len;
    size_t target = m->pdf_bytes > 0 ? (size_t)m->pdf_bytes : 0;
    if (target > natural &&
        pdf_pad_for(target, body, tail.len - (size_t)digits(body), &pad, &extra)) {
        hs_buf_reset(&tail);
        pdf_tail(&tail, off, 7, body + pad, extra);
    }

    size_t total = body + pad + tail.len;
    unsigned char *out = hs_malloc(total);
    memcpy(out, b.data, body);
    unsigned char *p = out + body;
    /* Comment lines of at most 80 bytes; a single leftover byte is a newline (whitespace). */
    static const char filler[] = "hover-sandbox padding: this comment keeps the file at the size "
                                 "that was asked for.............";
    _Static_assert(sizeof filler - 1 >= 78, "a padding line holds up to 78 filler bytes");
    size_t left = pad;
    while (left > 0) {
        if (left == 1) {
            *p++ = '\n';
            left--;
            continue;
        }
        size_t line = left < 80 ? left : 80;
        if (left - line == 1)
            line--; /* never leave a lone byte behind a full line; the next line takes two */
        p[0] = '%';
        memcpy(p + 1, filler, line - 2);
        p[line - 1] = '\n';
        p += line;
        left -= line;
    }
    memcpy(p, tail.data, tail.len);
    hs_buf_free(&b);
    hs_buf_free(&tail);
    *len = total;
    return out;
}

/* ---- ETag ---- */

char *sb_etag(const void *data, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL) != 1 || md_len < 16)
        abort(); /* SHA-256 from the default provider does not fail on a memory buffer */
    char hex[33];
    hs_hex(md, 16, hex);
    return hs_aprintf("\"%s\"", hex);
}

char *sb_etag_md5(const void *data, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(data, len, md, &md_len, EVP_md5(), NULL) != 1 || md_len != 16)
        abort(); /* as above */
    char hex[33];
    hs_hex(md, 16, hex);
    return hs_aprintf("\"%s\"", hex);
}
