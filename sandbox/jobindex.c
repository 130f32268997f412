/* jobindex.c: sorted index arrays over the world's jobs; see jobindex.h.
 *
 * One array of compact rows per sort key holds every job ordered by (org_id, key, id), so an
 * org's jobs are one contiguous range found by binary search and DESC is the same range walked
 * backwards. The rows carry what the filters test (24 bytes each instead of a whole struct
 * sb_job), and every job's search text sits in one contiguous blob of NUL-terminated strings:
 * a search runs strstr() over them in memory order (cache-friendly, and glibc's strstr is
 * vectorised) and marks the matching jobs in a bitmap, then walks the org's range once. One
 * strstr per job rather than one over the whole blob: sanitizer interceptors measure the whole
 * haystack on every call, which made the single-blob search quadratic under ASan. */
#include "jobindex.h"

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

#define STATE_OTHER 255

struct row {
    int64_t updated_at;
    uint32_t job; /* index into w->jobs */
    uint16_t deliverable;
    uint8_t archived;
    uint8_t state; /* index into ix->states, or STATE_OTHER */
};

struct sb_index {
    bool dirty;
    size_t n;         /* number of jobs the arrays were built for */
    const void *base; /* w->jobs when built: a move means a rebuild */
    struct row *by[3];
    char *blob;      /* haystacks in job order, each NUL-terminated */
    size_t *hay_off; /* n + 1 offsets into blob */
    char *states[STATE_OTHER];
    size_t n_states;
};

struct sb_index *sb_index_new(void)
{
    struct sb_index *ix = hs_calloc(1, sizeof *ix);
    ix->dirty = true;
    return ix;
}

static void release(struct sb_index *ix)
{
    for (int k = 0; k < 3; k++) {
        free(ix->by[k]);
        ix->by[k] = NULL;
    }
    free(ix->blob);
    free(ix->hay_off);
    ix->blob = NULL;
    ix->hay_off = NULL;
    for (size_t i = 0; i < ix->n_states; i++)
        free(ix->states[i]);
    ix->n_states = 0;
}

void sb_index_free(struct sb_index *ix)
{
    if (!ix)
        return;
    release(ix);
    free(ix);
}

void sb_index_invalidate(struct sb_index *ix)
{
    ix->dirty = true;
}

static int64_t key_of(const struct sb_job *j, int key)
{
    return key == SB_SORT_CREATED   ? j->created_at
           : key == SB_SORT_UPDATED ? j->updated_at
                                    : j->completed_at;
}

/* The sort works on copies of the keys, not through pointers into 300-byte job structs. */
struct sort_item {
    int64_t org, key, id;
    uint32_t job;
};

static int cmp3(int64_t a, int64_t b)
{
    return (a > b) - (a < b);
}

static int cmp_items(const void *pa, const void *pb)
{
    const struct sort_item *a = pa, *b = pb;
    int r = cmp3(a->org, b->org);
    if (!r)
        r = cmp3(a->key, b->key);
    if (!r)
        r = cmp3(a->id, b->id);
    return r;
}

static uint8_t state_code(struct sb_index *ix, const char *s, bool add)
{
    if (!s)
        return STATE_OTHER;
    for (size_t i = 0; i < ix->n_states; i++)
        if (!strcmp(ix->states[i], s))
            return (uint8_t)i;
    if (!add || ix->n_states == STATE_OTHER)
        return STATE_OTHER;
    ix->states[ix->n_states] = hs_strdup(s);
    return (uint8_t)ix->n_states++;
}

static void rebuild(struct sb_index *ix, struct sb_world *w)
{
    release(ix);
    size_t n = w->n_jobs;
    size_t blob_len = 0;
    for (size_t i = 0; i < n; i++)
        blob_len += (w->jobs[i].haystack ? strlen(w->jobs[i].haystack) : 0) + 1;
    ix->blob = hs_malloc(blob_len + 1);
    ix->hay_off = hs_malloc((n + 1) * sizeof *ix->hay_off);
    size_t off = 0;
    struct row *rows = hs_malloc((n ? n : 1) * sizeof *rows);
    for (size_t i = 0; i < n; i++) {
        const struct sb_job *j = &w->jobs[i];
        size_t hl = j->haystack ? strlen(j->haystack) : 0;
        ix->hay_off[i] = off;
        if (hl)
            memcpy(ix->blob + off, j->haystack, hl);
        off += hl;
        ix->blob[off++] = '\0';
        rows[i] = (struct row){.updated_at = j->updated_at,
                               .job = (uint32_t)i,
                               .deliverable = (uint16_t)j->deliverable_id,
                               .archived = j->archived,
                               .state = state_code(ix, j->reconstruction_state, true)};
    }
    ix->hay_off[n] = off;
    struct sort_item *items = hs_malloc((n ? n : 1) * sizeof *items);
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < n; i++)
            items[i] = (struct sort_item){w->jobs[i].org_id, key_of(&w->jobs[i], k), w->jobs[i].id,
                                          (uint32_t)i};
        qsort(items, n, sizeof *items, cmp_items);
        ix->by[k] = hs_malloc((n ? n : 1) * sizeof(struct row));
        for (size_t i = 0; i < n; i++)
            ix->by[k][i] = rows[items[i].job];
    }
    free(items);
    free(rows);
    ix->n = n;
    ix->base = w->jobs;
    ix->dirty = false;
}

/* First position in arr whose job's org is >= org. */
static size_t lower_org(const struct row *arr, size_t n, const struct sb_job *jobs, int64_t org)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (jobs[arr[mid].job].org_id < org)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Marks in bits every job whose search text holds needle. */
static void search_bits(const struct sb_index *ix, const char *needle, unsigned char *bits)
{
    for (size_t i = 0; i < ix->n; i++)
        if (strstr(ix->blob + ix->hay_off[i], needle))
            bits[i / 8] |= (unsigned char)(1u << (i % 8));
}

size_t sb_index_query(struct sb_index *ix, struct sb_world *w, const struct sb_job_query *q,
                      size_t *out, size_t *n_out)
{
    if (ix->dirty || ix->n != w->n_jobs || ix->base != (const void *)w->jobs)
        rebuild(ix, w);
    *n_out = 0;
    const struct row *arr = ix->by[q->sort];
    size_t lo = lower_org(arr, ix->n, w->jobs, q->org_id);
    size_t hi = q->org_id == INT64_MAX ? ix->n : lower_org(arr, ix->n, w->jobs, q->org_id + 1);
    int state = -1;
    if (q->reconstruction_state) {
        state = state_code(ix, q->reconstruction_state, false);
        if (state == STATE_OTHER)
            return 0; /* no job is in that state */
    }
    unsigned char *bits = NULL;
    if (q->search_lc && *q->search_lc) {
        bits = hs_calloc(ix->n / 8 + 1, 1);
        search_bits(ix, q->search_lc, bits);
    }
    size_t first = (size_t)((q->page - 1) * q->per), last = first + (size_t)q->per;
    size_t total = 0, n = 0;
    for (size_t i = 0; i < hi - lo; i++) {
        const struct row *rw = &arr[q->desc ? hi - 1 - i : lo + i];
        if (rw->archived != q->archived ||
            (q->has_updated_since && rw->updated_at < q->updated_since) ||
            (state >= 0 && rw->state != state) ||
            (bits && !(bits[rw->job / 8] & (1u << (rw->job % 8)))))
            continue;
        if (q->n_deliverables) {
            bool any = false;
            for (size_t d = 0; d < q->n_deliverables && !any; d++)
                any = q->deliverables[d] == rw->deliverable;
            if (!any)
                continue;
        }
        if (total >= first && total < last)
            out[n++] = rw->job;
        total++;
    }
    free(bits);
    *n_out = n;
    return total;
}
