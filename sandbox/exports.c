/* exports.c: see exports.h. The figures mirror the ones measurements derive from (footprint,
 * stories, pitch), so every artifact of a model tells the same story. */
#include "exports.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/mem.h"

#define EXPORT_MAX (4u * 1024u * 1024u)
#define STORY_FT   9.0

static double wall_area(const struct sb_model *m)
{
    return 2.0 * (m->footprint_w + m->footprint_d) * STORY_FT * (m->stories > 0 ? m->stories : 1);
}

static double roof_area(const struct sb_model *m)
{
    double slope = sqrt(144.0 + (double)m->pitch_rise * m->pitch_rise) / 12.0;
    return m->footprint_w * m->footprint_d * slope;
}

char *sb_export_xlsx(const struct sb_job *j, const struct sb_model *m, size_t *len)
{
    struct hs_buf b;
    hs_buf_init(&b, EXPORT_MAX);
    (void)hs_buf_appendf(&b,
                         "Hover Sandbox Measurements\r\n"
                         "job_id,%lld\r\nmodel_id,%lld\r\nrevision,%d\r\nname,\"%s\"\r\n"
                         "measurement,value,unit\r\n",
                         (long long)j->id, (long long)m->id, m->revision, m->name ? m->name : "");
    (void)hs_buf_appendf(&b, "footprint_width,%.2f,ft\r\nfootprint_depth,%.2f,ft\r\n",
                         m->footprint_w, m->footprint_d);
    (void)hs_buf_appendf(&b, "stories,%d,\r\nroof_pitch,%d/12,\r\nroof_facets,%d,\r\n", m->stories,
                         m->pitch_rise, m->roof_facets);
    (void)hs_buf_appendf(&b, "openings,%d,\r\nwall_area,%.2f,sqft\r\nroof_area,%.2f,sqft\r\n",
                         m->openings, wall_area(m), roof_area(m));
    return hs_buf_take(&b, len);
}

char *sb_export_skp(const struct sb_job *j, const struct sb_model *m, size_t *len)
{
    struct hs_buf b;
    hs_buf_init(&b, EXPORT_MAX);
    static const unsigned char magic[] = {0xFF, 0xFE, 0xFF, 0x0E, 'S', 0, 'k', 0, 'e', 0,
                                          't',  0,    'c',  0,    'h', 0, 'U', 0, 'p', 0};
    (void)hs_buf_append(&b, magic, sizeof magic);
    (void)hs_buf_appendf(&b, " Hover Sandbox SKP job=%lld model=%lld revision=%d\n",
                         (long long)j->id, (long long)m->id, m->revision);
    /* One vertex record per footprint corner and story: deterministic filler with structure. */
    for (int s = 0; s <= (m->stories > 0 ? m->stories : 1); s++) {
        double z = s * STORY_FT;
        double xs[4] = {0, m->footprint_w, m->footprint_w, 0};
        double ys[4] = {0, 0, m->footprint_d, m->footprint_d};
        for (int c = 0; c < 4; c++)
            (void)hs_buf_appendf(&b, "v %.3f %.3f %.3f\n", xs[c], ys[c], z);
    }
    return hs_buf_take(&b, len);
}

static void xml_text(struct hs_buf *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&':
            (void)hs_buf_appends(b, "&amp;");
            break;
        case '<':
            (void)hs_buf_appends(b, "&lt;");
            break;
        case '>':
            (void)hs_buf_appends(b, "&gt;");
            break;
        case '"':
            (void)hs_buf_appends(b, "&quot;");
            break;
        default:
            (void)hs_buf_append(b, s, 1);
        }
    }
}

char *sb_export_xml(const struct sb_job *j, const struct sb_model *m, size_t *len)
{
    struct hs_buf b;
    hs_buf_init(&b, EXPORT_MAX);
    (void)hs_buf_appendf(&b,
                         "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                         "<model id=\"%lld\" job_id=\"%lld\" revision=\"%d\" name=\"",
                         (long long)m->id, (long long)j->id, m->revision);
    xml_text(&b, m->name);
    (void)hs_buf_appends(&b, "\">\n");
    (void)hs_buf_appendf(&b,
                         "  <footprint width_ft=\"%.2f\" depth_ft=\"%.2f\"/>\n"
                         "  <stories count=\"%d\" height_ft=\"%.1f\"/>\n"
                         "  <roof pitch=\"%d/12\" facets=\"%d\" area_sqft=\"%.2f\"/>\n"
                         "  <walls area_sqft=\"%.2f\" openings=\"%d\"/>\n"
                         "</model>\n",
                         m->footprint_w, m->footprint_d, m->stories, STORY_FT, m->pitch_rise,
                         m->roof_facets, roof_area(m), wall_area(m), m->openings);
    return hs_buf_take(&b, len);
}
