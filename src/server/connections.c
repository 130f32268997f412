/* connections.c: the state of the service's Hover connections (orgs) as the routes see it:
 * which connection a request uses (the one it names, within the caller's scope, or the caller's
 * first), and which ones Hover refused, so that the API says "reconnect_required" until a call
 * through that connection works again. */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "server/internal.h"
#include "store/service.h"

int hs_connections_read(struct hs_req *q, struct hs_connection_row **rows, size_t *n,
                        struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    struct hs_error err = {0};
    int rc = s->store->service->connections_list(s->store, rows, n, &err);
    if (rc) {
        hs_resp_fail(r, rc, &err, "listing connections");
        return -1;
    }
    return 0;
}

int hs_pick_connection(struct hs_req *q, const char *asked, char **key, struct hs_resp *r)
{
    *key = NULL;
    struct hs_connection_row *rows = NULL;
    size_t n = 0;
    if (hs_connections_read(q, &rows, &n, r) != 0)
        return -1;
    if (asked && *asked) {
        /* Another tenant's connection is as unknown as one that does not exist. */
        for (size_t i = 0; i < n && !*key; i++)
            if (strcmp(rows[i].key, asked) == 0 && hs_req_may_use(q, asked))
                *key = hs_strdup(asked);
        hs_connection_rows_free(rows, n);
        if (!*key) {
            hs_resp_error(r, 404, "not_found",
                          "no connection named %.64s (see "
                          "GET /api/connections)",
                          asked);
            return -1;
        }
        return 0;
    }
    for (size_t i = 0; i < n && !*key; i++)
        if (rows[i].has_token && hs_req_may_use(q, rows[i].key))
            *key = hs_strdup(rows[i].key);
    for (size_t i = 0; i < n && !*key; i++)
        if (hs_req_may_use(q, rows[i].key))
            *key = hs_strdup(rows[i].key);
    hs_connection_rows_free(rows, n);
    return 0;
}

static bool needs_reconnect(int rc)
{
    return rc == HS_ERR_UNAUTHORIZED || rc == HS_ERR_INVALID_GRANT || rc == HS_ERR_NO_CREDENTIALS;
}

void hs_connection_note(struct hs_server *s, const char *key, int rc)
{
    if (!key || (rc != HS_OK && !needs_reconnect(rc)))
        return; /* other failures say nothing about the grant */
    pthread_mutex_lock(&s->cache_lock);
    int at = -1, free_slot = -1;
    for (int i = 0; i < CONN_FLAGS_N; i++) {
        if (s->reconnect[i] && strcmp(s->reconnect[i], key) == 0)
            at = i;
        else if (!s->reconnect[i] && free_slot < 0)
            free_slot = i;
    }
    if (rc == HS_OK && at >= 0) {
        free(s->reconnect[at]);
        s->reconnect[at] = NULL;
    } else if (rc != HS_OK && at < 0 && free_slot >= 0) {
        s->reconnect[free_slot] = hs_strdup(key);
        hs_warn("connection msg=\"Hover refused the grant: reconnect needed\" key=%s code=%s", key,
                hs_err_name(rc));
    }
    pthread_mutex_unlock(&s->cache_lock);
}

bool hs_connection_needs_reconnect(struct hs_server *s, const char *key)
{
    bool yes = false;
    pthread_mutex_lock(&s->cache_lock);
    for (int i = 0; i < CONN_FLAGS_N && !yes; i++)
        yes = s->reconnect[i] && strcmp(s->reconnect[i], key) == 0;
    pthread_mutex_unlock(&s->cache_lock);
    return yes;
}
