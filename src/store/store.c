/* store.c: back-end independent parts of the storage interface: opening a store by its
 * location, the check that a back-end implements every operation, and the out-structs' clear
 * functions. */
#include "store/store.h"

#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "store/budget.h"
#include "store/outbox.h"
#include "store/pg.h"
#include "store/policies.h"
#include "store/records.h"
#include "store/retention.h"
#include "store/search.h"
#include "store/secrets.h"
#include "store/service.h"
#include "store/sqlite.h"
#include "store/tokens.h"
#include "store/webhooks.h"
#include "store/work.h"

int hs_store_open(const char *location, const struct hs_store_options *o, struct hs_store **out,
                  struct hs_error *err)
{
    if (!location || !*location)
        return hs_fail(err, HS_ERR_INVALID, "no store location (HOVERSYNC_DB)");
    if (hs_store_is_pg_url(location))
        return hs_store_open_pg(location, o, out, err);
    return hs_store_open_sqlite(location, o, out, err);
}

/* Every member of an ops table but a back-end's name is a function pointer: the table is looked
 * at as an array of them (all function pointers have one size and representation on the
 * platforms we build for, which the static assertions below check for these tables). */
typedef void (*any_fn)(void);

static const char *table_hole(const void *table, size_t size, size_t skip)
{
    if (!table)
        return "missing";
    const unsigned char *p = (const unsigned char *)table + skip;
    for (size_t off = 0; off + sizeof(any_fn) <= size - skip; off += sizeof(any_fn)) {
        any_fn f;
        memcpy(&f, p + off, sizeof f);
        if (!f)
            return "incomplete";
    }
    return NULL;
}

#define FN_TABLE(type) _Static_assert(sizeof(struct type) % sizeof(any_fn) == 0, #type)
FN_TABLE(hs_token_ops);
FN_TABLE(hs_records_ops);
FN_TABLE(hs_search_ops);
FN_TABLE(hs_service_ops);
FN_TABLE(hs_webhook_ops);
FN_TABLE(hs_work_ops);
FN_TABLE(hs_outbox_ops);
FN_TABLE(hs_policy_ops);
FN_TABLE(hs_budget_ops);
FN_TABLE(hs_retention_ops);
_Static_assert(offsetof(struct hs_store_ops, close) == sizeof(any_fn), "name, then functions");

int hs_store_complete(const struct hs_store *s, struct hs_error *err)
{
    const struct {
        const char *name;
        const void *table;
        size_t size, skip;
    } t[] = {
        {"store", s->ops, sizeof *s->ops, offsetof(struct hs_store_ops, close)},
        {"tokens", s->tokens, sizeof *s->tokens, 0},
        {"records", s->records, sizeof *s->records, 0},
        {"search", s->search, sizeof *s->search, 0},
        {"service", s->service, sizeof *s->service, 0},
        {"webhooks", s->webhooks, sizeof *s->webhooks, 0},
        {"work", s->work, sizeof *s->work, 0},
        {"outbox", s->outbox, sizeof *s->outbox, 0},
        {"policies", s->policies, sizeof *s->policies, 0},
        {"budget", s->budget, sizeof *s->budget, 0},
        {"retention", s->retention, sizeof *s->retention, 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        const char *hole = table_hole(t[i].table, t[i].size, t[i].skip);
        if (hole)
            return hs_fail(err, HS_ERR_INTERNAL, "store back-end %s: the %s operations are %s",
                           s->ops && s->ops->name ? s->ops->name : "?", t[i].name, hole);
    }
    return HS_OK;
}

void hs_token_clear(struct hs_token *t)
{
    if (!t)
        return;
    free(t->access_token);
    free(t->refresh_token);
    free(t->owner_type);
    memset(t, 0, sizeof *t);
}

void hs_token_copy(struct hs_token *dst, const struct hs_token *src)
{
    dst->access_token = hs_strdup(src->access_token);
    dst->refresh_token = hs_strdup(src->refresh_token);
    dst->owner_type = hs_strdup(src->owner_type);
    dst->expires_at = src->expires_at;
    dst->owner_id = src->owner_id;
    dst->generation = src->generation;
}

void hs_model_row_clear(struct hs_model_row *m)
{
    if (!m)
        return;
    free(m->name);
    free(m->state);
    free(m->deliverable);
    free(m->updated_at);
    free(m->synced_updated_at);
    memset(m, 0, sizeof *m);
}

void hs_artifact_row_clear(struct hs_artifact_row *a)
{
    if (!a)
        return;
    free(a->kind);
    free(a->source_url);
    free(a->sha256);
    free(a->content_type);
    free(a->path);
    free(a->etag);
    free(a->fetched_at);
    memset(a, 0, sizeof *a);
}

/* The names are stored in the selections table (its CHECK lists them): never rename one. */
static const char *const selection_names[] = {
    [HS_SEL_SELECTED] = "selected", [HS_SEL_SYNCED] = "synced",
    [HS_SEL_PENDING] = "pending",   [HS_SEL_FAILED_UPSTREAM] = "failed_upstream",
    [HS_SEL_ERROR] = "error",
};

const char *hs_selection_status_name(enum hs_selection_status s)
{
    if ((unsigned)s < sizeof selection_names / sizeof selection_names[0])
        return selection_names[s];
    return "unknown";
}

int hs_selection_status_parse(const char *name, enum hs_selection_status *out)
{
    for (size_t i = 0; name && i < sizeof selection_names / sizeof selection_names[0]; i++) {
        if (strcmp(name, selection_names[i]) == 0) {
            *out = (enum hs_selection_status)i;
            return HS_OK;
        }
    }
    return HS_ERR_PARSE;
}

void hs_selection_clear(struct hs_selection *s)
{
    if (!s)
        return;
    free(s->reason);
    free(s->connection_key);
    memset(s, 0, sizeof *s);
}

void hs_selections_free(struct hs_selection *sels, size_t n)
{
    if (!sels)
        return;
    for (size_t i = 0; i < n; i++)
        hs_selection_clear(&sels[i]);
    free(sels);
}

void hs_job_summaries_free(struct hs_job_summary *v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++) {
        struct hs_job_summary *j = &v[i];
        free(j->name);
        free(j->address.line1);
        free(j->address.line2);
        free(j->address.city);
        free(j->address.region);
        free(j->address.postal_code);
        free(j->address.country);
        free(j->reconstruction_state);
        free(j->updated_at);
    }
    free(v);
}

void hs_connect_flow_clear(struct hs_connect_flow *f)
{
    if (!f)
        return;
    free(f->connection);
    free(f->session);
    free(f->key);
    hs_secret_free(f->grant.access_token);
    hs_secret_free(f->grant.refresh_token);
    f->grant.access_token = f->grant.refresh_token = NULL;
    hs_token_clear(&f->grant);
    memset(f, 0, sizeof *f);
}

void hs_image_source_clear(struct hs_image_source *v)
{
    if (!v)
        return;
    free(v->connection_key);
    free(v->url);
    memset(v, 0, sizeof *v);
}

void hs_session_clear(struct hs_session *s)
{
    if (!s)
        return;
    free(s->token_sha256);
    free(s->csrf_token);
    free(s->user);
    for (size_t i = 0; i < s->n_connections; i++)
        free(s->connections[i]);
    free(s->connections);
    memset(s, 0, sizeof *s);
}

bool hs_scope_has(const struct hs_scope *scope, const char *key)
{
    if (!scope)
        return true;
    for (size_t i = 0; key && i < scope->n; i++)
        if (scope->keys[i] && strcmp(scope->keys[i], key) == 0)
            return true;
    return false;
}

void hs_connection_rows_free(struct hs_connection_row *rows, size_t n)
{
    if (!rows)
        return;
    for (size_t i = 0; i < n; i++) {
        free(rows[i].key);
        free(rows[i].owner_type);
        free(rows[i].connected_at);
    }
    free(rows);
}

void hs_connection_deleted_clear(struct hs_connection_deleted *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n_orphans; i++)
        free(d->orphans[i]);
    free(d->orphans);
    memset(d, 0, sizeof *d);
}

void hs_api_keys_free(struct hs_api_key *v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].key_sha256);
    }
    free(v);
}

void hs_model_statuses_free(struct hs_model_status *v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++) {
        free(v[i].synced_updated_at);
        free(v[i].reason);
    }
    free(v);
}

void hs_webhook_row_clear(struct hs_webhook_row *w)
{
    if (!w)
        return;
    free(w->connection_key);
    free(w->url);
    free(w->hmac_secret);
    free(w->verified_at);
    free(w->last_error);
    free(w->created_at);
    free(w->local_error);
    memset(w, 0, sizeof *w);
}

void hs_webhook_rows_free(struct hs_webhook_row *v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        hs_webhook_row_clear(&v[i]);
    free(v);
}

void hs_event_row_clear(struct hs_event_row *e)
{
    if (!e)
        return;
    free(e->connection_key);
    free(e->event);
    free(e->state);
    free(e->body);
    free(e->headers_json);
    free(e->received_at);
    free(e->status);
    memset(e, 0, sizeof *e);
}

void hs_event_rows_free(struct hs_event_row *v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        hs_event_row_clear(&v[i]);
    free(v);
}

void hs_verification_clear(struct hs_verification *v)
{
    if (!v)
        return;
    free(v->code);
    memset(v, 0, sizeof *v);
}

bool hs_webhook_row_healthy(const struct hs_webhook_row *w)
{
    return w->verified_at != NULL && w->last_error == NULL && w->local_error == NULL;
}

void hs_work_item_clear(struct hs_work_item *w)
{
    if (!w)
        return;
    free(w->connection_key);
    free(w->reason);
    free(w->payload);
    free(w->last_error);
    memset(w, 0, sizeof *w);
}

void hs_sync_row_clear(struct hs_sync_row *r)
{
    if (!r)
        return;
    free(r->id);
    free(r->connection_key);
    free(r->status);
    free(r->result);
    free(r->error_code);
    free(r->error_message);
    for (size_t i = 0; i < r->n_models; i++) {
        struct hs_sync_model_row *m = &r->models[i];
        free(m->name);
        free(m->result);
        free(m->message);
        free(m->pdf_sha256);
        free(m->json_sha256);
    }
    free(r->models);
    memset(r, 0, sizeof *r);
}

void hs_pending_jobs_free(struct hs_pending_job *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i].connection_key);
    free(v);
}

void hs_outbox_row_clear(struct hs_outbox_row *o)
{
    if (!o)
        return;
    free(o->endpoint);
    free(o->idempotency_key);
    free(o->payload);
    free(o->last_error);
    memset(o, 0, sizeof *o);
}

const char *hs_prune_kind_name(enum hs_prune_kind kind)
{
    static const char *const names[HS_PRUNE_KINDS] = {
        "webhook_events", "sync_results", "sync_runs", "outbox", "webhook_replays", "connect_flows",
    };
    return kind >= 0 && kind < HS_PRUNE_KINDS ? names[kind] : "?";
}

void hs_table_size_clear(void *row)
{
    free(((struct hs_table_size *)row)->name);
}

void hs_store_size_take(struct hs_store_size *out, struct hs_table_size *v, size_t n, bool keep)
{
    for (size_t i = 0; i < n; i++) {
        if (keep && out->n_top < HS_STORE_TOP_TABLES)
            out->top[out->n_top++] = v[i];
        else
            free(v[i].name);
    }
    free(v);
}

void hs_store_size_clear(struct hs_store_size *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_top; i++)
        free(s->top[i].name);
    memset(s, 0, sizeof *s);
}

void hs_store_close(struct hs_store *s)
{
    if (s)
        s->ops->close(s);
}

void hs_work_wait_idle(int cancel_fd, int64_t timeout_ms)
{
    struct pollfd p = {.fd = cancel_fd, .events = POLLIN};
    int ms = timeout_ms < 0 ? 0 : timeout_ms > INT_MAX ? INT_MAX : (int)timeout_ms;
    (void)poll(&p, 1, ms); /* a negative fd is ignored: a plain sleep (EINTR: a shorter one) */
}
