/* world.h: the sandbox's data: orgs, users, jobs, models, captures, images, artifacts, generated
 * deterministically from a seed (gen.c) and changed at run time by the admin routes and, later,
 * test jobs. The HTTP side (server.c and routes) reads it under world->lock.
 *
 * Ownership: every string in the world is its own heap allocation owned by the world. To change
 * one at run time, free() the old value and store an hs_strdup()ed one; sb_world_free() frees
 * whatever is there. Adding jobs (sb_world_add_job) may move jobs[]: do not keep pointers into it
 * across an addition. */
#ifndef HS_SANDBOX_WORLD_H
#define HS_SANDBOX_WORLD_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Fixed ids, whatever the seed: demos and tests rely on them (docs/SANDBOX.md, "Data"). */
#define SB_MAIN_ORG_ID            463605
#define SB_MAIN_ADMIN_USER_ID     2190401 /* Morgan Blake, admin of the main org */
#define SB_SHOWCASE_USER_ID       2190402 /* Jordan Reyes, captures every showcase job */
#define SB_SHOWCASE_FIRST_JOB_ID  15084301
#define SB_N_SHOWCASE             10
#define SB_FIRST_GENERATED_JOB_ID 15100001
#define SB_USERS_PER_ORG          20

struct sb_user {
    int64_t id;
    int64_t org_id;
    char *first_name, *last_name, *email;
};

struct sb_org {
    int64_t id;
    char *name;
    int64_t admin_user_id;
};

struct sb_image {
    int64_t id;
    int64_t model_id;
    char *created_at;
    uint32_t rng_seed; /* the JPEG's pixels derive from it */
};

struct sb_model {
    int64_t id;
    int64_t job_id;
    int64_t capture_id;
    char *name;  /* "House", "Detached Garage", "Shed", "First Floor", ... */
    char *state; /* complete, failed, processing, uploading */
    int deliverable_id;
    char *created_at, *updated_at;
    struct sb_image *images;
    size_t n_images;
    /* Structure figures that measurements derive from (feet, degrees): consistent by design. */
    double footprint_w, footprint_d; /* ft */
    int stories;
    int pitch_rise; /* x/12 */
    int roof_facets;
    int openings;
    int revision;      /* bumped by the admin route: changes artifact bytes and ETags */
    int64_t pdf_bytes; /* size of the generated PDF (padding included); 0 = natural size */
};

struct sb_job {
    int64_t id;
    int64_t org_id;
    int64_t user_id; /* the capturing user */
    char *name;
    char *external_identifier;
    char *reconstruction_state; /* draft, processing, completed, failed */
    char *v2_state;             /* legacy pipeline state */
    int deliverable_id;
    bool archived;
    bool interior;
    int64_t created_at, updated_at, completed_at; /* unix s; completed_at 0 when not */
    char *line1, *line2, *city, *region, *postal_code, *country;
    double lat, lon;
    char *cust_first, *cust_name, *cust_email, *cust_phone;
    struct sb_model *models;
    size_t n_models;
    int64_t capture_id;
    char *capture_uuid;
    char *haystack; /* lowercase "name | address | user name email" for search */
};

/* Where a model or image sits: array positions rather than pointers, so that growing jobs[] does
 * not invalidate the indexes. */
struct sb_model_ref {
    int64_t id;
    uint32_t job, model;
};
struct sb_image_ref {
    int64_t id;
    uint32_t job, model, image;
};

struct sb_world {
    pthread_mutex_t lock;
    struct sb_org *orgs;
    size_t n_orgs;
    struct sb_user *users;
    size_t n_users;
    struct sb_job *jobs; /* sorted by id */
    size_t n_jobs;
    uint64_t seed;
    /* Below: kept by gen.c. */
    size_t cap_jobs;
    struct sb_model_ref *model_index; /* sorted by id */
    size_t n_model_index;
    struct sb_image_ref *image_index; /* sorted by id */
    size_t n_image_index;
    int64_t next_job_id, next_model_id, next_image_id, next_capture_id;
    uint64_t rng_state; /* what run-time additions draw from */
};

/* Generates a world of exactly `n_jobs` jobs from `seed`. The first min(n_jobs, SB_N_SHOWCASE)
 * jobs are the showcase jobs (fixed ids, names and state mixes, whatever the seed) listed in gen.c
 * and docs/SANDBOX.md; the others are generated, with ids from SB_FIRST_GENERATED_JOB_ID up. The
 * orgs and users are the same for every seed. */
struct sb_world *sb_world_generate(uint64_t seed, size_t n_jobs);
void sb_world_free(struct sb_world *w);

struct sb_job *sb_world_job(struct sb_world *w, int64_t id);
struct sb_model *sb_world_model(struct sb_world *w, int64_t id, struct sb_job **job_out);
struct sb_image *sb_world_image(struct sb_world *w, int64_t id, struct sb_model **model_out);
struct sb_user *sb_world_user(struct sb_world *w, int64_t id);
struct sb_user *sb_world_user_by_email(struct sb_world *w, const char *email); /* ignores case */
struct sb_org *sb_world_org(struct sb_world *w, int64_t id);

/* Re-derives a job's reconstruction_state and v2_state from its models' states (no models or all
 * uploading: draft; any processing or uploading: processing; all failed: failed; otherwise
 * completed). When the state changes, updated_at becomes `now` and so does completed_at when the
 * job becomes completed. */
void sb_job_derive_state(struct sb_job *j, int64_t now);
/* Moves a model to `state` at `now` (unix s): a model becoming complete gets its photos (images) if
 * it had none; the job's state is re-derived. */
void sb_world_set_model_state(struct sb_world *w, struct sb_job *j, struct sb_model *m,
                              const char *state, int64_t now);
/* Appends a new job (the next free id, created at `now`) for a user of an org, with `n_models`
 * models in state "uploading" (so a draft) named like a generated job's: "House", "Detached
 * Garage", "Shed"... or floors for deliverable 8. Returns it (valid until the next addition). */
struct sb_job *sb_world_add_job(struct sb_world *w, int64_t org_id, int64_t user_id,
                                int deliverable_id, size_t n_models, int64_t now);
/* Rebuilds the model and image indexes; needed only after models or images were added or removed
 * by hand (the functions above keep them up to date). */
void sb_world_reindex(struct sb_world *w);
/* Rebuilds j->haystack after its name, address or user changed. */
void sb_job_refresh_haystack(const struct sb_world *w, struct sb_job *j);

/* "roof_only", "complete", "total_living_area_plus", "total_living_area", "capture_only",
 * "interior"; NULL for an unknown id. */
const char *sb_deliverable_name(int deliverable_id);

/* JSON views (new references). base_url is the API listener's "http://127.0.0.1:PORT". */
json_t *sb_job_v3_json(const struct sb_world *w, const struct sb_job *j, const char *base_url);
json_t *sb_job_v2_json(const struct sb_world *w, const struct sb_job *j);

/* The "artifacts" object of a model in Show Job: JSON null unless the model is complete, {} for
 * Capture Only (7), else measurement, CAD export (and, for interiors, cad_export_fml) URLs. */
json_t *sb_model_artifacts_json(const struct sb_job *j, const struct sb_model *m,
                                const char *base_url);

/* Measurement JSON versions a deliverable offers (NULL-terminated, static; empty for 7). */
const char *const *sb_measurement_versions(int deliverable_id);
/* The measurements document of `version` for a model, or NULL if the model does not offer it
 * (unknown version, not offered by its deliverable, or the model is not complete). */
json_t *sb_measurements_json(const struct sb_job *j, const struct sb_model *m, const char *version);
/* The same document serialised for an HTTP body (compact, reals printed with 12 significant
 * digits so that 2450.3 is not sent as 2450.3000000000002). Caller frees; NULL as above. */
char *sb_measurements_body(const struct sb_job *j, const struct sb_model *m, const char *version,
                           size_t *len);
/* The interior CAD export (cad_export.fml: floors, walls, rooms as JSON) of a complete
 * deliverable-8 model; NULL otherwise. */
json_t *sb_cad_fml_json(const struct sb_job *j, const struct sb_model *m);
/* Deterministic artifact bytes (caller frees). sb_pdf_bytes gives NULL when the model has no
 * measurements (not complete, or Capture Only); when m->pdf_bytes is larger than the natural size
 * the PDF is padded (with PDF comments) to exactly that many bytes. */
unsigned char *sb_pdf_bytes(const struct sb_job *j, const struct sb_model *m, size_t *len);
/* A baseline JPEG photo (96x64, YCbCr) of a house whose colours and layout derive from
 * img->rng_seed. */
unsigned char *sb_jpeg_bytes(const struct sb_image *img, size_t *len);
/* Strong validator of a byte string: "\"<hex sha256 prefix>\"". */
char *sb_etag(const void *data, size_t len);
/* The object store's validator: "\"<hex MD5>\"", as S3 gives single-part objects. */
char *sb_etag_md5(const void *data, size_t len);

#endif
