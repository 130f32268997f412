/* testjobs.h: simulated reconstructions of test jobs (hover-api.md 3.6). A timeline moves a job's
 * models from uploading to processing and then, one by one, to their final state, and fires the
 * webhooks on the way (model-created per model, model-state-changed per finished model, then
 * job-state-changed-v2). Its length is the reconstruction time (--reconstruction-seconds, 60 s by
 * default, down to a fraction of a second for tests). One thread runs every timeline. */
#ifndef HS_SANDBOX_TESTJOBS_H
#define HS_SANDBOX_TESTJOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SB_RECONSTRUCTION_MS_MIN 50
#define SB_RECONSTRUCTION_MS_MAX (24LL * 3600 * 1000)

struct sb_server;
struct sb_testjobs;

struct sb_testjobs *sb_testjobs_new(struct sb_server *s, int64_t duration_ms);
int sb_testjobs_start(struct sb_testjobs *t, char *err, size_t errn);
/* Stops the thread; timelines not finished are abandoned. Safe to call twice. */
void sb_testjobs_stop(struct sb_testjobs *t);
void sb_testjobs_free(struct sb_testjobs *t);

int64_t sb_testjobs_duration_ms(struct sb_testjobs *t);
/* Applies to timelines started from then on. */
void sb_testjobs_set_duration_ms(struct sb_testjobs *t, int64_t ms);

/* Starts the timeline of a job: its i-th model ends in final_states[i] ("complete" or "failed";
 * static strings). 0, or -1 when a timeline of that job is already running. */
int sb_testjobs_run(struct sb_testjobs *t, int64_t job_id, const char *const *final_states,
                    size_t n_models);
bool sb_testjobs_running(struct sb_testjobs *t, int64_t job_id);

#endif
