/*
 * hoversync.h: the public interface of libhoversync.
 *
 * The library talks to Hover's REST API (or the bundled sandbox), maps its JSON into the
 * structs below and keeps OAuth tokens in a store. Everything fallible returns 0 (HS_OK) or a
 * negative hs_err; out-parameters are written only on success. Every struct returned through an
 * out-parameter is owned by the caller and released with its *_free function (which accepts NULL).
 */
#ifndef HOVERSYNC_H
#define HOVERSYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors: the one error enum of the project ---- */
typedef enum hs_err {
    HS_OK = 0,
    HS_ERR_INVALID = -1,         /* bad argument or usage */
    HS_ERR_PARSE = -2,           /* malformed input (JSON, headers, numbers) */
    HS_ERR_TOOBIG = -3,          /* input over its size cap */
    HS_ERR_IO = -4,              /* local file or system error */
    HS_ERR_NETWORK = -5,         /* connection refused/reset, DNS, timeout */
    HS_ERR_TRUNCATED = -6,       /* response body shorter than announced */
    HS_ERR_HTTP = -7,            /* an HTTP status we have no better code for */
    HS_ERR_NOT_FOUND = -8,       /* 404 */
    HS_ERR_UNAUTHORIZED = -9,    /* 401 after a refresh */
    HS_ERR_FORBIDDEN = -10,      /* 403 */
    HS_ERR_RATE_LIMITED = -11,   /* 429 after every retry */
    HS_ERR_SERVER = -12,         /* 5xx after every retry */
    HS_ERR_NO_CREDENTIALS = -13, /* no token pair, no client id/secret */
    HS_ERR_INVALID_GRANT = -14,  /* refresh token or code rejected */
    HS_ERR_DB = -15,             /* storage back-end error */
    HS_ERR_BUSY = -16,           /* storage locked, try later */
    HS_ERR_CONFLICT = -17,       /* state changed under us */
    HS_ERR_UNPROCESSABLE = -18,  /* 422 */
    HS_ERR_INTERNAL = -19,       /* a bug: should not happen */
} hs_err;

/* Details for a failure: filled by lower layers, logged or printed only by the top. */
struct hs_error {
    hs_err code;
    int http_status; /* 0 when not an HTTP answer */
    char msg[256];
};

/* Short, stable name of a code ("not_found"). Never NULL. */
const char *hs_err_name(int code);
/* Fills err (if not NULL) and returns code, so that callers write `return hs_fail(err, ...)`. */
int hs_fail(struct hs_error *err, hs_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- Hover's data, as the client maps it ---- */
struct hs_address {
    char *line1, *line2, *city, *region, *postal_code, *country;
    bool has_coords;
    double latitude, longitude; /* Hover sends strings; numbers are accepted too */
};

struct hs_customer {
    char *first_name, *name, *email, *phone;
};

/* One downloadable thing a model offers, found by walking `artifacts` recursively.
 * kind is the JSON path of the URL ("measurements.pdf", "cad_exports.skp"). */
struct hs_artifact_ref {
    char *kind;
    char *url;
};

struct hs_image {
    int64_t id;
    char *url;
    char *created_at;
};

struct hs_capture {
    int64_t id;
    char *client_identifier, *name, *state, *capture_by, *type, *deliverable;
    char *created_at, *updated_at;
};

struct hs_model {
    int64_t id;
    char *name;
    char *state;            /* kept as sent; anything but "complete" is not complete */
    char *deliverable;      /* "complete", "roof_only", ...; may be NULL */
    int64_t deliverable_id; /* 0 when not sent */
    int64_t capture_id;
    char *created_at, *updated_at;
    struct hs_artifact_ref *artifacts;
    size_t n_artifacts;
    struct hs_image *images;
    size_t n_images;
};

struct hs_job {
    int64_t id;
    char *name;
    char *reconstruction_state; /* v3; for a v2 job its `state` */
    char *external_identifier;
    int64_t org_id;
    int64_t deliverable_id;
    bool archived;
    char *created_at, *updated_at, *completed_at;
    struct hs_address address;
    struct hs_customer customer;
    struct hs_capture *captures;
    size_t n_captures;
    struct hs_model *models;
    size_t n_models;
    char *raw_json; /* the job object as received, compact: unknown fields are kept here */
};

struct hs_job_page {
    struct hs_job *jobs;
    size_t n_jobs;
    int64_t current_page;
    int64_t next_page;   /* 0 when the response says there is none or does not say */
    int64_t total_pages; /* 0 when unknown */
    int64_t total;       /* -1 when unknown */
    bool has_more;       /* the pagination rule of the reference, applied */
};

/* True when a model's artifacts may be fetched: its state is exactly "complete". */
bool hs_model_is_complete(const struct hs_model *m);

/* JSON mapping. Tolerant: nulls, missing fields, numbers as strings and unknown fields are fine;
 * a document that is not JSON, or whose top level has the wrong type, is HS_ERR_PARSE.
 * Inputs larger than HS_JSON_MAX_BYTES are HS_ERR_TOOBIG. */
#define HS_JSON_MAX_BYTES (32u * 1024u * 1024u)
int hs_job_from_json(const char *json, size_t len, struct hs_job **out, struct hs_error *err);
int hs_job_page_from_json(const char *json, size_t len, struct hs_job_page **out,
                          struct hs_error *err);
void hs_job_free(struct hs_job *job);
void hs_job_page_free(struct hs_job_page *page);

#ifdef __cplusplus
}
#endif
#endif
