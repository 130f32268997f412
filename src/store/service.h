/* service.h: the service's own tables (store.h): small named settings, browser sessions, and
 * the list of connected Hover orgs. Writes here are durable before they return, so they refuse
 * to run inside a transaction. */
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
};

#endif
