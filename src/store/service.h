/* service.h: the service's own tables (store.h): small named settings, browser sessions, the
 * list of connected Hover orgs, and named leases (one holder at a time across processes and
 * machines: the periodic duties of src/worker). Writes here are durable before they return, so they
 * refuse to run inside a transaction. */
#ifndef HS_STORE_SERVICE_H
#define HS_STORE_SERVICE_H

#include "store/store.h"

/* A browser session: the token itself is never stored, only its SHA-256. */
struct hs_session {
    char *token_sha256; /* hex */
    char *csrf_token;   /* sent back by the page in X-CSRF-Token on state-changing calls */
    int64_t created_at, expires_at; /* unix seconds */
    char *user;                     /* the CRM's user id, or NULL */
    /* The connections (Hover orgs) the session may use, by key; it sees nothing of the others.
     * Stored with the session (session_put replaces them). */
    char **connections;
    size_t n_connections;
};
void hs_session_clear(struct hs_session *s);

/* A connected Hover org (a stored credential). */
struct hs_connection_row {
    char *key;               /* "org-463605", "default", or a name given at connect time */
    int64_t owner_id;        /* the org; 0 when unknown */
    char *owner_type;        /* "orgs", or NULL */
    char *connected_at;      /* ISO-8601: when it was first connected */
    bool has_token;          /* a token pair is stored */
    bool reconnect_required; /* Hover refused the stored pair's refresh token (token_rejected) */
};
void hs_connection_rows_free(struct hs_connection_row *rows, size_t n);

struct hs_service_ops {
    /* Small named settings (the API key's hash, ...). get: HS_ERR_NOT_FOUND when unset. */
    int (*setting_get)(struct hs_store *s, const char *key, char **value, struct hs_error *err);
    int (*setting_put)(struct hs_store *s, const char *key, const char *value,
                       struct hs_error *err);
    /* Stores a session (by token_sha256) and deletes every session expired at its created_at. */
    int (*session_put)(struct hs_store *s, const struct hs_session *ss, struct hs_error *err);
    /* The session whose token hashes to token_sha256, if it has not expired at now_s;
     * HS_ERR_NOT_FOUND otherwise. */
    int (*session_get)(struct hs_store *s, const char *token_sha256, int64_t now_s,
                       struct hs_session *out, struct hs_error *err);
    /* Every stored connection, first connected first (caller frees with
     * hs_connection_rows_free; *out may be NULL when *n is 0). */
    int (*connections_list)(struct hs_store *s, struct hs_connection_row **out, size_t *n,
                            struct hs_error *err);
    /* Named leases. lease_claim: the lease `name`, free or lapsed at now_ms (the caller's wall
     * clock, unix ms; clocks of machines sharing a store must agree well within a lease), is
     * taken until now_ms + lease_ms under a new fence (*fence), greater than every earlier
     * claim's of that name. HS_ERR_BUSY, and nothing else, while another claim's lease holds.
     * A lease that is never released holds until it lapses: a duty claims its lease for its
     * interval, so that it runs once per interval whichever process runs it. */
    int (*lease_claim)(struct hs_store *s, const char *name, int64_t now_ms, int64_t lease_ms,
                       int64_t *fence, struct hs_error *err);
    /* Moves the lease of claim `fence` to until_ms (unix ms), lapsed or not; HS_ERR_CONFLICT
     * when it was released or another claim took it meanwhile. */
    int (*lease_renew)(struct hs_store *s, const char *name, int64_t fence, int64_t until_ms,
                       struct hs_error *err);
    /* Releases the lease of claim `fence`: the next claim takes it at once. HS_ERR_CONFLICT as
     * lease_renew. */
    int (*lease_release)(struct hs_store *s, const char *name, int64_t fence, struct hs_error *err);
};

#endif
