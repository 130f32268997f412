/* service.h: the service's own tables (store.h): small named settings, browser sessions, the
 * list of connected Hover orgs, named leases (one holder at a time across processes and
 * machines: the periodic duties of src/worker), and what any instance of the service may
 * need to answer a request another one began: pending connect flows, where images are
 * fetched, callers' request counts. Writes of settings, sessions, flows and leases are
 * durable before they return, so they refuse to run inside a transaction. */
#ifndef HS_STORE_SERVICE_H
#define HS_STORE_SERVICE_H

#include "store/store.h"
#include "store/tokens.h"

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

/* A named API key (hoversync apikeys): only the key's SHA-256 is stored. */
struct hs_api_key {
    char *name;
    char *key_sha256;     /* hex */
    int64_t created_at;   /* unix seconds */
    int64_t last_used_at; /* unix seconds, to the minute; 0: never used */
};
void hs_api_keys_free(struct hs_api_key *v, size_t n);

/* A pending connect flow (GET /connect to GET /oauth/callback; then, when the grant would
 * re-point a connection to another org, until the user confirms). Only hashes of its secrets
 * are kept: the state (or the confirmation token) and the browser's flow cookie. */
struct hs_connect_flow {
    char id_sha256[65];      /* hex SHA-256 of the state (authorize) or the confirmation token */
    char browser_sha256[65]; /* hex SHA-256 of the browser's flow cookie */
    char address[48];        /* the client address that started it */
    char *connection;        /* authorize: the connection name asked for; NULL: org-<owner> */
    char *session;           /* the starting session's token_sha256; NULL: the API key */
    int64_t expires_ms;      /* unix ms */
    bool confirm;            /* waiting for the confirmation of a re-point */
    char *key;               /* confirm: the connection to re-point */
    struct hs_token grant;   /* confirm: the grant (sealed at rest like the stored pairs) */
    int64_t old_owner;       /* confirm: the org the connection is bound to now */
};
/* Frees and wipes (the grant's tokens are cleansed). */
void hs_connect_flow_clear(struct hs_connect_flow *f);

/* How many flows may be pending: per browser (its oldest is replaced beyond), per client
 * address (refused beyond), and in all (refused beyond: pending flows are never evicted by
 * others). */
struct hs_flow_limits {
    int per_browser, per_address, total;
};

/* Where GET /api/images/{id} fetches an image that is not stored yet: the Show Job that listed
 * it. The strings are owned by the one who filled it. */
struct hs_image_source {
    int64_t image_id, model_id;
    char *connection_key;
    char *url;
};
void hs_image_source_clear(struct hs_image_source *v);

/* Image sources kept at most (the least recently listed go first). */
#define HS_IMAGE_SOURCES_MAX 100000

/* What connection_delete did. */
struct hs_connection_deleted {
    bool existed;       /* the connection's row (its token pair) was there */
    int64_t webhooks;   /* its webhooks' rows deleted (deregister them at Hover first) */
    int64_t work_items; /* its queued work items dropped */
    int64_t syncs;      /* its syncs of POST /api/syncs ended (queued or running) */
    int64_t jobs;       /* its jobs purged, or marked disconnected */
    /* purge: the sha256 (hex) of the files that no row holds any more, for the caller to remove
     * (hs_connection_deleted_clear frees them). */
    char **orphans;
    size_t n_orphans;
};
void hs_connection_deleted_clear(struct hs_connection_deleted *d);

struct hs_service_ops {
    /* Small named settings. get: HS_ERR_NOT_FOUND when unset. */
    int (*setting_get)(struct hs_store *s, const char *key, char **value, struct hs_error *err);
    int (*setting_put)(struct hs_store *s, const char *key, const char *value,
                       struct hs_error *err);
    /* Stores a session (by token_sha256) and deletes every session expired at its created_at. */
    int (*session_put)(struct hs_store *s, const struct hs_session *ss, struct hs_error *err);
    /* The session whose token hashes to token_sha256, if it has not expired at now_s;
     * HS_ERR_NOT_FOUND otherwise. */
    int (*session_get)(struct hs_store *s, const char *token_sha256, int64_t now_s,
                       struct hs_session *out, struct hs_error *err);
    /* Deletes the session whose token hashes to token_sha256 (a revoked session fails at once
     * in every process: sessions are read from the store on each request); HS_ERR_NOT_FOUND
     * when there is none (or it expired). */
    int (*session_delete)(struct hs_store *s, const char *token_sha256, struct hs_error *err);
    /* Every stored connection, first connected first (caller frees with
     * hs_connection_rows_free; *out may be NULL when *n is 0). */
    int (*connections_list)(struct hs_store *s, struct hs_connection_row **out, size_t *n,
                            struct hs_error *err);

    /* Stores a pending flow (durable before it returns): expired flows are forgotten first;
     * then the browser's oldest one is replaced when it has lim->per_browser of them;
     * HS_ERR_RATE_LIMITED when the address has lim->per_address, HS_ERR_BUSY when lim->total are
     * pending. */
    int (*flow_put)(struct hs_store *s, const struct hs_connect_flow *f,
                    const struct hs_flow_limits *lim, int64_t now_ms, struct hs_error *err);
    /* Takes the flow of id_sha256 at its stage (confirm or not) begun in browser_sha256 and not
     * expired at now_ms: deleted as it is returned, so that it works once, in whichever process.
     * HS_ERR_NOT_FOUND otherwise (a flow asked for by another browser stays). */
    int (*flow_take)(struct hs_store *s, const char *id_sha256, const char *browser_sha256,
                     bool confirm, int64_t now_ms, struct hs_connect_flow *out,
                     struct hs_error *err);

    /* Remembers the n image sources (a Show Job's images) as seen at now_ms, in one
     * transaction; beyond HS_IMAGE_SOURCES_MAX the least recently seen are forgotten. */
    int (*image_sources_put)(struct hs_store *s, const struct hs_image_source *v, size_t n,
                             int64_t now_ms, struct hs_error *err);
    /* The source of image_id, if a job of a connection in scope listed it; HS_ERR_NOT_FOUND
     * otherwise. */
    int (*image_source_get)(struct hs_store *s, int64_t image_id, const struct hs_scope *scope,
                            struct hs_image_source *out, struct hs_error *err);

    /* Takes up to `want` of the `limit` requests `caller` may make in the window that began at
     * window_ms (unix ms; the counts of earlier windows are forgotten): *granted gets how many
     * (0: none left in this window). */
    int (*caller_rate_take)(struct hs_store *s, const char *caller, int64_t window_ms, int limit,
                            int want, int *granted, struct hs_error *err);
    /* Deletes the connection `key` in one transaction: its token pair, its webhooks' rows (and
     * their access ids and pending verifications), its queued work (work items, pending polls,
     * open selections; syncs queued or running end failed, error_code "disconnected"), its
     * pending connect flows, image sources, sessions' scope, auto-sync policy, reconciliation
     * checkpoint and refresh lease. Its accepted deliveries turn "ignored". Without purge its
     * jobs and their records stay, each marked with disconnected_at = now_iso under a new
     * change sequence (the records feed shows them); with purge they go with their models,
     * artifacts, measurements, selections, sync runs and results, syncs, outbox messages and
     * webhook deliveries, and out->orphans lists the files no other row holds. now_ms: unix ms.
     * HS_ERR_NOT_FOUND (and nothing done) when nothing of that name exists. */
    int (*connection_delete)(struct hs_store *s, const char *key, bool purge, int64_t now_ms,
                             const char *now_iso, struct hs_connection_deleted *out,
                             struct hs_error *err);
    /* Named API keys. api_key_put stores a new one (name and the hex SHA-256 of the key, at
     * created_at); HS_ERR_CONFLICT when the name or the key is taken. api_keys_list: every key,
     * by name (caller frees with hs_api_keys_free; *out may be NULL when *n is 0).
     * api_key_delete: HS_ERR_NOT_FOUND when no key has the name. api_key_used records a use at
     * at_s (unix seconds) unless one within the minute before is recorded already. */
    int (*api_key_put)(struct hs_store *s, const char *name, const char *key_sha256,
                       int64_t created_at, struct hs_error *err);
    int (*api_keys_list)(struct hs_store *s, struct hs_api_key **out, size_t *n,
                         struct hs_error *err);
    int (*api_key_delete)(struct hs_store *s, const char *name, struct hs_error *err);
    int (*api_key_used)(struct hs_store *s, const char *name, int64_t at_s, struct hs_error *err);
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

    /* A cheap read for readiness probes: *have gets the schema version the store is at (its
     * latest applied migration), *want the latest this binary knows. Fails when the store
     * cannot be reached. */
    int (*schema_status)(struct hs_store *s, int *have, int *want, struct hs_error *err);
};

#endif
