/* jobindex.h: the job list's index. Listing and searching 100,000 jobs must take milliseconds, so
 * the jobs are sorted once per sort key (by org, key, id) and the order is rebuilt only after a
 * change (sb_index_invalidate) or when the number of jobs changes. All calls need world->lock. */
#ifndef HS_SANDBOX_JOBINDEX_H
#define HS_SANDBOX_JOBINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "world.h"

enum sb_sort_key { SB_SORT_CREATED = 0, SB_SORT_UPDATED = 1, SB_SORT_COMPLETED = 2 };

struct sb_job_query {
    int64_t org_id;
    const char *search_lc; /* lowercase needle, NULL: no search */
    bool archived;         /* true: archived jobs only; false: non-archived only */
    bool has_updated_since;
    int64_t updated_since;
    const char *reconstruction_state; /* NULL: any */
    const int64_t *deliverables;      /* NULL/0: any */
    size_t n_deliverables;
    enum sb_sort_key sort;
    bool desc;
    int64_t page, per; /* page >= 1, 1 <= per */
};

struct sb_index;

struct sb_index *sb_index_new(void);
void sb_index_free(struct sb_index *ix);
/* Call after changing any job's timestamps, org or archived flag. */
void sb_index_invalidate(struct sb_index *ix);
/* Runs q: writes the indexes into w->jobs of the requested page (at most q->per) to out and
 * their number to *n_out; returns the total number of matching jobs. */
size_t sb_index_query(struct sb_index *ix, struct sb_world *w, const struct sb_job_query *q,
                      size_t *out, size_t *n_out);

#endif
