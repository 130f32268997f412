/* fuzz_json_mapping.c: libFuzzer target of the Hover JSON mapping (src/hover/mapping.c): the same
 * bytes go through the job and the job-list mappers, and everything mapped is walked and freed,
 * so that ASan/UBSan see every field the mappers wrote. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hoversync.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Touches every string so that a dangling or unterminated one trips the sanitizers. */
static size_t touch(const char *s)
{
    return s ? strlen(s) : 0;
}

static size_t walk_job(const struct hs_job *j)
{
    size_t n = touch(j->name) + touch(j->reconstruction_state) + touch(j->raw_json) +
               touch(j->address.line1) + touch(j->address.city) + touch(j->customer.email);
    for (size_t i = 0; i < j->n_captures; i++)
        n += touch(j->captures[i].state) + touch(j->captures[i].deliverable);
    for (size_t i = 0; i < j->n_models; i++) {
        const struct hs_model *m = &j->models[i];
        n += touch(m->state) + touch(m->deliverable) + (size_t)hs_model_is_complete(m);
        for (size_t k = 0; k < m->n_artifacts; k++)
            n += touch(m->artifacts[k].kind) + touch(m->artifacts[k].url);
        for (size_t k = 0; k < m->n_images; k++)
            n += touch(m->images[k].url);
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    volatile size_t sink = 0;
    struct hs_job *job = NULL;
    if (hs_job_from_json((const char *)data, size, &job, NULL) == HS_OK) {
        sink += walk_job(job);
        hs_job_free(job);
    }
    struct hs_job_page *page = NULL;
    struct hs_error err;
    if (hs_job_page_from_json((const char *)data, size, &page, &err) == HS_OK) {
        for (size_t i = 0; i < page->n_jobs; i++)
            sink += walk_job(&page->jobs[i]);
        sink += (size_t)page->has_more;
        hs_job_page_free(page);
    } else {
        sink += strlen(err.msg);
    }
    (void)sink;
    return 0;
}
