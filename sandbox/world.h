/* world.h: the sandbox's data: orgs, users, jobs, models, captures, images, artifacts, generated
 * deterministically from a seed (gen.c) and changed at run time by the admin routes and, later,
 * test jobs. The HTTP side (server.c and routes) reads it under world->lock. */
#ifndef HS_SANDBOX_WORLD_H
#define HS_SANDBOX_WORLD_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
    char *name;   /* "House", "Detached Garage", "Shed", "First Floor", ... */
    char *state;  /* complete, failed, processing, uploading */
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
    int revision;       /* bumped by the admin route: changes artifact bytes and ETags */
    int64_t pdf_bytes;  /* size of the generated PDF (padding included); 0 = natural size */
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

struct sb_world {
    pthread_mutex_t lock;
    struct sb_org *orgs;
    size_t n_orgs;
    struct sb_user *users;
    size_t n_users;
    struct sb_job *jobs; /* sorted by id */
    size_t n_jobs;
    uint64_t seed;
};

/* Generates `n_jobs` jobs from `seed`. The first jobs are the showcase jobs (fixed ids, names and
 * state mixes, whatever the seed) listed in gen.c and docs/SANDBOX.md. */
struct sb_world *sb_world_generate(uint64_t seed, size_t n_jobs);
void sb_world_free(struct sb_world *w);

struct sb_job *sb_world_job(struct sb_world *w, int64_t id);
struct sb_model *sb_world_model(struct sb_world *w, int64_t id, struct sb_job **job_out);
struct sb_image *sb_world_image(struct sb_world *w, int64_t id, struct sb_model **model_out);
struct sb_user *sb_world_user(struct sb_world *w, int64_t id);
struct sb_user *sb_world_user_by_email(struct sb_world *w, const char *email);

/* JSON views (new references). base_url is the API listener's "http://127.0.0.1:PORT". */
json_t *sb_job_v3_json(const struct sb_world *w, const struct sb_job *j, const char *base_url);
json_t *sb_job_v2_json(const struct sb_world *w, const struct sb_job *j);

/* Measurement JSON versions a deliverable offers (NULL-terminated, static). */
const char *const *sb_measurement_versions(int deliverable_id);
/* The measurements document of `version` for a model, or NULL if the model does not offer it. */
json_t *sb_measurements_json(const struct sb_job *j, const struct sb_model *m, const char *version);
/* Deterministic artifact bytes (caller frees). */
unsigned char *sb_pdf_bytes(const struct sb_job *j, const struct sb_model *m, size_t *len);
unsigned char *sb_jpeg_bytes(const struct sb_image *img, size_t *len);
/* Strong validator of a byte string: "\"<hex sha256 prefix>\"". */
char *sb_etag(const void *data, size_t len);

#endif
