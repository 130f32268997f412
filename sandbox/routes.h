/* routes.h: the sandbox's routes. sb_route_api, sb_route_storage and sb_route_s3 dispatch a
 * request of the API, storage and S3 listeners; sb_route_admin serves /__sandbox/ and /healthz. The
 * helpers below are shared by the route files (routes_*.c). */
#ifndef HS_SANDBOX_ROUTES_H
#define HS_SANDBOX_ROUTES_H

#include <stdbool.h>
#include <stdint.h>

#include "http.h"
#include "server.h"

void sb_route_api(struct sb_req *q, struct sb_resp *r);
void sb_route_storage(struct sb_req *q, struct sb_resp *r);
void sb_route_admin(struct sb_req *q, struct sb_resp *r);
void sb_route_s3(struct sb_req *q, struct sb_resp *r);

/* routes_s3.c, for server.c. sb_s3_prepare runs before the fault decision: it names the
 * operation, bucket and key in q->log_extra and returns the operation ("PutObject", a static
 * string) that fault rules with op= match. */
const char *sb_s3_prepare(struct sb_req *q);
/* An AWS XML error answer (with x-amz-request-id), for refusals made outside the route:
 * injected faults, bodies over the limit. */
void sb_s3_error(struct sb_req *q, struct sb_resp *r, int status, const char *code,
                 const char *msg);
/* The access key id a request claims (Authorization header or X-Amz-Credential), "" if none. */
void sb_s3_access_key(const struct sb_req *q, char *out, size_t n);
/* The largest request body the S3 listener reads (the capacity, at most 5 GiB). */
size_t sb_s3_body_max(const struct sb_server *s);
/* The raw query with X-Amz-Security-Token's value masked, for the request log. Caller frees. */
char *sb_s3_redact_query(const char *raw);
/* GET /__sandbox/s3: the store's buckets, objects and uploads in progress. */
void sb_admin_s3(struct sb_req *q, struct sb_resp *r);

/* routes_oauth.c */
void sb_oauth_authorize_page(struct sb_req *q, struct sb_resp *r);
void sb_oauth_authorize_decide(struct sb_req *q, struct sb_resp *r);
void sb_oauth_token(struct sb_req *q, struct sb_resp *r);
/* The client id of an HTTP Basic Authorization header, or NULL. */
const char *sb_basic_auth_user(struct sb_req *q);

/* routes_jobs.c; version is 2 or 3 */
void sb_jobs_list(struct sb_req *q, struct sb_resp *r, int version);
void sb_job_show(struct sb_req *q, struct sb_resp *r, int64_t id);

/* routes_artifacts.c */
void sb_artifact(struct sb_req *q, struct sb_resp *r, int64_t model_id, const char *name);
void sb_image(struct sb_req *q, struct sb_resp *r, int64_t image_id);
/* The storage URL of a model's PDF, valid for SB_PRESIGN_TTL_S. Caller frees. */
#define SB_PRESIGN_TTL_S 600
char *sb_presign(struct sb_server *s, const char *path, int64_t expires);
/* Checks a presigned request: 0 ok, else an S3-style error written to r. */
int sb_presign_check(struct sb_req *q, struct sb_resp *r);

/* routes_webhooks.c. rest: the path after "/api/v2/webhooks" (resp. "/__sandbox/jobs"). */
void sb_webhooks_api(struct sb_req *q, struct sb_resp *r, const char *rest);
void sb_test_job(struct sb_req *q, struct sb_resp *r);
void sb_set_test_state(struct sb_req *q, struct sb_resp *r, int64_t job_id);
void sb_admin_webhooks(struct sb_req *q, struct sb_resp *r);
void sb_admin_deliveries(struct sb_req *q, struct sb_resp *r);
void sb_admin_jobs(struct sb_req *q, struct sb_resp *r, const char *rest);

/* Writes 401 and returns false unless the request carries a valid Bearer token. */
bool sb_require_token(struct sb_req *q, struct sb_resp *r);
/* current_user_id / current_user_email: validated when present, required in strict mode.
 * Writes 403 and returns false when refused. */
bool sb_acting_user(struct sb_req *q, struct sb_resp *r);
/* Parses a positive decimal id segment ending at '/', '\0' or `stop`; advances *p. */
bool sb_path_id(const char **p, int64_t *id);
/* Lowercase copy of an ASCII string. Caller frees. */
char *sb_lower(const char *s);
/* Replaces a world string (the world's strings are malloc'd). */
void sb_world_set_str(char **field, const char *value);

#endif
