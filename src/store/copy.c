/* copy.c: the tables both schemas share, and the copy of a whole store into another through
 * the back-ends' copy operations (store/copy.h). The list follows migrations_pg.c, where each
 * column has its proper type; a column a later migration adds goes here too (the storage suite's
 * test_copy.c checks the list against the schema of each back-end). */
#include "store/copy.h"

#include <stdio.h>
#include <stdlib.h>

#define T HS_COPY_TEXT
#define I HS_COPY_INT
#define R HS_COPY_REAL
#define B HS_COPY_BOOL
#define W HS_COPY_TIME
#define J HS_COPY_JSON
#define X HS_COPY_BYTES

static const struct hs_copy_column connections[] = {
    {"key", T},        {"base_url", T},   {"owner_id", I},  {"owner_type", T},
    {"created_at", W}, {"updated_at", W}, {"artifacts", T},
};
static const struct hs_copy_column oauth_tokens[] = {
    {"connection_key", T}, {"access_token", T}, {"refresh_token", T},
    {"expires_at", I},     {"generation", I},   {"updated_at", W},
};
static const struct hs_copy_column token_rejections[] = {
    {"connection_key", T}, {"generation", I}, {"rejected_at", W}};
static const struct hs_copy_column leases[] = {{"name", T}, {"fence", I}, {"until_ms", I}};
/* Not capture_user: a generated column, computed from raw_json on both. */
static const struct hs_copy_column jobs[] = {
    {"id", I},
    {"connection_key", T},
    {"org_id", I},
    {"name", T},
    {"external_identifier", T},
    {"reconstruction_state", T},
    {"deliverable_id", I},
    {"archived", B},
    {"address_line1", T},
    {"address_line2", T},
    {"city", T},
    {"region", T},
    {"postal_code", T},
    {"country", T},
    {"latitude", R},
    {"longitude", R},
    {"customer_name", T},
    {"customer_first_name", T},
    {"customer_email", T},
    {"customer_phone", T},
    {"hover_created_at", T},
    {"hover_updated_at", T},
    {"hover_completed_at", T},
    {"raw_json", J},
    {"first_seen_at", W},
    {"updated_at", W},
    {"change_seq", I},
    {"disconnected_at", T},
};
static const struct hs_copy_column models[] = {
    {"id", I},         {"job_id", I},           {"name", T},
    {"state", T},      {"deliverable", T},      {"deliverable_id", I},
    {"capture_id", I}, {"hover_updated_at", T}, {"synced_updated_at", T},
    {"updated_at", W}, {"change_seq", I},
};
static const struct hs_copy_column artifacts[] = {
    {"id", I},       {"model_id", I},     {"kind", T},    {"source_url", T}, {"sha256", T},
    {"bytes", I},    {"content_type", T}, {"path", T},    {"etag", T},       {"fetched_at", W},
    {"image_id", I}, {"change_seq", I},   {"fetched", B},
};
static const struct hs_copy_column measurements[] = {
    {"model_id", I},           {"roof_area_sqft", R},   {"roof_facets", I},
    {"predominant_pitch", T},  {"ridges_ft", R},        {"hips_ft", R},
    {"valleys_ft", R},         {"rakes_ft", R},         {"eaves_ft", R},
    {"siding_area_sqft", R},   {"facade_area_sqft", R}, {"openings_count", I},
    {"openings_area_sqft", R}, {"living_area_sqft", R}, {"raw_json", J},
    {"updated_at", W},         {"change_seq", I},
};
static const struct hs_copy_column selections[] = {
    {"job_id", I}, {"model_id", I},   {"connection_key", T}, {"status", T},
    {"reason", T}, {"created_at", W}, {"updated_at", W},
};
static const struct hs_copy_column sync_runs[] = {
    {"id", I},         {"job_id", I},      {"trigger", T},        {"status", T},
    {"started_at", W}, {"finished_at", W}, {"hover_requests", I}, {"lease_until_ms", I},
};
static const struct hs_copy_column sync_results[] = {
    {"run_id", I},  {"model_id", I},          {"result", T},
    {"message", T}, {"artifacts_fetched", I}, {"artifacts_unchanged", I},
    {"at", W},
};
static const struct hs_copy_column checkpoints[] = {{"name", T}, {"value", T}, {"updated_at", W}};
static const struct hs_copy_column counters[] = {{"name", T}, {"value", I}};
static const struct hs_copy_column settings[] = {{"key", T}, {"value", T}, {"updated_at", W}};
static const struct hs_copy_column sessions[] = {
    {"token_sha256", T}, {"csrf_token", T}, {"created_at", I}, {"expires_at", I}, {"user", T},
};
static const struct hs_copy_column session_connections[] = {{"token_sha256", T},
                                                            {"connection_key", T}};
static const struct hs_copy_column webhooks[] = {
    {"id", I},          {"connection_key", T}, {"url", T},
    {"hmac_secret", T}, {"verified_at", W},    {"last_error", T},
    {"created_at", W},  {"updated_at", W},     {"local_error", T},
};
static const struct hs_copy_column webhook_events[] = {
    {"id", I},      {"webhook_id", I}, {"connection_key", T}, {"event", T},
    {"job_id", I},  {"model_id", I},   {"state", T},          {"body", X},
    {"headers", T}, {"status", T},     {"received_at", W},    {"processed_at", W},
};
static const struct hs_copy_column work_items[] = {
    {"id", I},
    {"connection_key", T},
    {"job_id", I},
    {"reason", T},
    {"generation", I},
    {"attempts", I},
    {"not_before_ms", I},
    {"claimed_by", T},
    {"lease_until_ms", I},
    {"last_error", T},
    {"created_at", W},
    {"priority", I},
    {"claims", I},
    {"trigger_ms", I},
    {"payload", T},
    {"payload_ms", I},
};
static const struct hs_copy_column work_turns[] = {{"connection_key", T}, {"last_claim", I}};
static const struct hs_copy_column outbox[] = {
    {"id", I},         {"endpoint", T},        {"job_id", I},
    {"seq_in_job", I}, {"idempotency_key", T}, {"payload", T},
    {"attempts", I},   {"next_attempt_ms", I}, {"delivered_at", W},
    {"last_error", T}, {"created_at", W},
};
static const struct hs_copy_column policies[] = {
    {"connection_key", T}, {"auto_sync", T}, {"updated_at", W}};
static const struct hs_copy_column webhook_replays[] = {
    {"signature", T}, {"event_id", I}, {"expires_ms", I}};
static const struct hs_copy_column webhook_access_ids[] = {
    {"access_id", T}, {"webhook_id", I}, {"updated_at", W}};
static const struct hs_copy_column webhook_verifications[] = {
    {"id", I},       {"webhook_id", I},      {"code", T},       {"event_id", I},   {"status", T},
    {"attempts", I}, {"next_attempt_ms", I}, {"created_ms", I}, {"last_error", T},
};
static const struct hs_copy_column syncs[] = {
    {"id", T},         {"connection_key", T}, {"job_id", I},  {"status", T},     {"result", T},
    {"error_code", T}, {"error_message", T},  {"version", I}, {"created_ms", I}, {"finished_ms", I},
};
static const struct hs_copy_column sync_models[] = {
    {"sync_id", T},         {"model_id", I},   {"position", I},    {"name", T},
    {"when_ready", B},      {"result", T},     {"message", T},     {"artifacts_done", I},
    {"artifacts_total", I}, {"pdf_sha256", T}, {"json_sha256", T},
};
static const struct hs_copy_column pending_polls[] = {
    {"connection_key", T}, {"job_id", I}, {"interval_ms", I}, {"next_poll_ms", I}};
static const struct hs_copy_column budget_bookings[] = {
    {"budget", T}, {"start_ms", I}, {"background", B}};
static const struct hs_copy_column budgets[] = {
    {"budget", T}, {"hold_until_ms", I}, {"next_background_ms", I}, {"turn", I}};
static const struct hs_copy_column budget_waiters[] = {
    {"budget", T}, {"connection_key", T}, {"last_turn", I}, {"waiting_until_ms", I}};
static const struct hs_copy_column connect_flows[] = {
    {"id_sha256", T},  {"stage", T},        {"browser_sha256", T}, {"address", T},
    {"connection", T}, {"session", T},      {"expires_ms", I},     {"connection_key", T},
    {"old_owner", I},  {"access_token", T}, {"refresh_token", T},  {"token_expires_at", I},
    {"owner_id", I},   {"owner_type", T},
};
static const struct hs_copy_column image_sources[] = {
    {"image_id", I}, {"connection_key", T}, {"model_id", I}, {"url", T}, {"seen_ms", I}};
static const struct hs_copy_column caller_rates[] = {{"caller", T}, {"window_ms", I}, {"used", I}};
static const struct hs_copy_column api_keys[] = {
    {"name", T}, {"key_sha256", T}, {"created_at", I}, {"last_used_at", I}};
static const struct hs_copy_column tickets[] = {{"hash", T},       {"purpose", T},
                                                {"target", T},     {"caller", T},
                                                {"created_ms", I}, {"expires_ms", I}};

#define N(a) (sizeof a / sizeof a[0])
#define TABLE(name, order, identity, initial)                                                      \
    {                                                                                              \
#name, name, N(name), order, identity, initial                                             \
    }

const struct hs_copy_table hs_copy_tables[] = {
    TABLE(connections, "key", NULL, NULL),
    TABLE(oauth_tokens, "connection_key", NULL, NULL),
    TABLE(token_rejections, "connection_key", NULL, NULL),
    TABLE(leases, "name", NULL, NULL),
    TABLE(jobs, "id", NULL, NULL),
    TABLE(models, "id", NULL, NULL),
    TABLE(artifacts, "id", "id", NULL),
    TABLE(measurements, "model_id", NULL, NULL),
    TABLE(selections, "job_id, model_id", NULL, NULL),
    TABLE(sync_runs, "id", "id", NULL),
    TABLE(sync_results, "ctid", NULL, NULL),
    TABLE(checkpoints, "name", NULL, NULL),
    /* The feed's counter: every store starts with change_seq at 0. */
    TABLE(counters, "name", NULL, "name = 'change_seq' AND value = 0"),
    /* The name of the key the secrets are sealed under, recorded by opening with a key. */
    TABLE(settings, "key", NULL, "key = 'secrets_key_id'"),
    TABLE(sessions, "token_sha256", NULL, NULL),
    TABLE(session_connections, "position", NULL, NULL),
    TABLE(webhooks, "id", NULL, NULL),
    TABLE(webhook_events, "id", "id", NULL),
    TABLE(work_items, "id", "id", NULL),
    TABLE(work_turns, "connection_key", NULL, NULL),
    TABLE(outbox, "id", "id", NULL),
    TABLE(policies, "connection_key", NULL, NULL),
    TABLE(webhook_replays, "signature", NULL, NULL),
    TABLE(webhook_access_ids, "access_id", NULL, NULL),
    TABLE(webhook_verifications, "id", "id", NULL),
    TABLE(syncs, "id", NULL, NULL),
    TABLE(sync_models, "sync_id, model_id", NULL, NULL),
    TABLE(pending_polls, "connection_key, job_id", NULL, NULL),
    TABLE(budget_bookings, "ctid", NULL, NULL),
    TABLE(budgets, "budget", NULL, NULL),
    TABLE(budget_waiters, "budget, connection_key", NULL, NULL),
    TABLE(connect_flows, "id_sha256", NULL, NULL),
    TABLE(image_sources, "image_id", NULL, NULL),
    TABLE(caller_rates, "caller, window_ms", NULL, NULL),
    TABLE(api_keys, "name", NULL, NULL),
    TABLE(tickets, "hash", NULL, NULL),
};
const size_t hs_copy_tables_count = N(hs_copy_tables);

void hs_copy_format_real(double v, char *out, size_t n)
{
    for (int prec = 15; prec <= 17; prec++) {
        (void)snprintf(out, n, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

/* ---- the copy ---- */

struct copy_run {
    struct hs_store *to;
    struct hs_copy_writer *w;
    struct hs_copy_report rep;
};

static int writer_end(struct copy_run *r, int rc, struct hs_error *err)
{
    if (!r->w)
        return rc;
    struct hs_copy_writer *w = r->w;
    r->w = NULL;
    return r->to->ops->copy_write_end(w, rc, err);
}

static int sink_table(void *arg, const struct hs_copy_table *t, struct hs_error *err)
{
    struct copy_run *r = arg;
    int rc = writer_end(r, HS_OK, err);
    if (!rc)
        rc = r->to->ops->copy_write_begin(r->to, t, &r->w, err);
    if (!rc)
        r->rep.tables++;
    return rc;
}

static int sink_row(void *arg, const struct hs_copy_value *v, struct hs_error *err)
{
    struct copy_run *r = arg;
    r->rep.rows++;
    return r->to->ops->copy_write_row(r->w, v, err);
}

/* Inside the target's transaction: refused when it holds more than its initial rows (unless
 * replace), then emptied, children first. */
static int target_prepare(struct copy_run *r, bool replace, struct hs_error *err)
{
    struct hs_store *to = r->to;
    int rc = HS_OK;
    for (size_t i = 0; i < hs_copy_tables_count && !replace && !rc; i++) {
        int64_t n = 0;
        rc = to->ops->copy_count(to, &hs_copy_tables[i], &n, err);
        if (!rc && n > 0) {
            r->rep.not_empty = hs_copy_tables[i].name;
            rc = hs_fail(err, HS_ERR_CONFLICT, "the target store is not empty (%s: %lld rows)",
                         hs_copy_tables[i].name, (long long)n);
        }
    }
    for (size_t i = hs_copy_tables_count; i-- > 0 && !rc;)
        if (replace || hs_copy_tables[i].initial)
            rc = to->ops->copy_clear(to, &hs_copy_tables[i], err);
    return rc;
}

int hs_store_copy(struct hs_store *from, struct hs_store *to, bool replace,
                  struct hs_copy_report *rep, struct hs_error *err)
{
    return hs_store_copy_before(from, to, replace, NULL, NULL, rep, err);
}

int hs_store_copy_before(struct hs_store *from, struct hs_store *to, bool replace,
                         int (*before_commit)(void *arg, struct hs_error *err), void *arg,
                         struct hs_copy_report *rep, struct hs_error *err)
{
    struct copy_run r = {.to = to};
    int rc = to->ops->begin(to, err);
    if (rc)
        return rc;
    rc = target_prepare(&r, replace, err);
    if (!rc) {
        const struct hs_copy_sink sink = {sink_table, sink_row, &r};
        rc = from->ops->copy_read(from, hs_copy_tables, hs_copy_tables_count, &sink, err);
    }
    rc = writer_end(&r, rc, err);
    if (!rc && before_commit)
        rc = before_commit(arg, err);
    if (rc)
        to->ops->rollback(to);
    else
        rc = to->ops->commit(to, err);
    if (rep)
        *rep = r.rep;
    return rc;
}
