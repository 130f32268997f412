/* fake_transport.h: a scripted hs_transport for tests. Each hop (a redirect is a hop) takes the
 * next scripted answer and is recorded, so that a test says what "Hover" answers and then checks
 * exactly which requests the client sent. Redirects run through the real hs_http_follow. */
#ifndef HS_TESTS_FAKE_TRANSPORT_H
#define HS_TESTS_FAKE_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hover/transport.h"

#define FAKE_MAX 64

struct fake_response {
    long status;
    const char *body; /* NULL: empty */
    size_t body_len;  /* 0: strlen(body) */
    const char *etag, *content_type, *location;
    const char *retry_after;          /* seconds as text; NULL: no header */
    const char *content_md5, *digest; /* headers; NULL: absent */
    /* Content-Length: NULL announces the body's length, "none" nothing, else this number. */
    const char *content_length;
    /* A transport error instead of (or, with body set, after part of) an answer. */
    int error;
};

struct fake_request {
    char *method, *url, *body;
    char *bearer; /* what went out as the bearer on this hop; NULL if none */
    char *if_none_match;
    char *accept;
    size_t max_response;
    int64_t timeout_ms;
};

struct fake_transport {
    struct hs_transport base;
    struct fake_response script[FAKE_MAX];
    size_t n_script, next;
    struct fake_request reqs[FAKE_MAX];
    size_t n_reqs;
    /* Called when a request is sent, before its answer is chosen. */
    void (*on_request)(void *ctx, struct fake_transport *ft, const struct fake_request *r);
    void *on_request_ctx;
};

void fake_transport_init(struct fake_transport *ft);
void fake_transport_push(struct fake_transport *ft, struct fake_response r);
/* Shorthand: a status and a body. */
void fake_transport_answer(struct fake_transport *ft, long status, const char *body);
void fake_transport_cleanup(struct fake_transport *ft);

#endif
