/* disconnect_sql.h: the statements of connection_delete (service.h), shared by the back-ends:
 * each defines P1 .. P3 as its placeholders ("?1" or "$1") before including this. P1 is the
 * connection key in every statement; the arrays are by the parameters they take. The tables
 * are those of the migrations (the same names and columns on both back-ends). */
#ifndef HS_STORE_DISCONNECT_SQL_H
#define HS_STORE_DISCONNECT_SQL_H

/* The connection's jobs. */
#define HS_DC_JOBS   "(SELECT id FROM jobs WHERE connection_key = " P1 ")"
#define HS_DC_MODELS "(SELECT id FROM models WHERE job_id IN " HS_DC_JOBS ")"
#define HS_DC_HOOKS  "(SELECT id FROM webhooks WHERE connection_key = " P1 ")"

/* What no purge keeps: credentials, webhooks, queued work, flows, scopes. P1 only. The
 * connection's own row last: its count says whether it existed. */
#define HS_DC_ALWAYS_SQL                                                                           \
    {                                                                                              \
        "DELETE FROM webhook_access_ids WHERE webhook_id IN " HS_DC_HOOKS,                         \
            "DELETE FROM webhook_verifications WHERE webhook_id IN " HS_DC_HOOKS,                  \
            "DELETE FROM webhooks WHERE connection_key = " P1,                                     \
            "DELETE FROM work_items WHERE connection_key = " P1,                                   \
            "DELETE FROM work_turns WHERE connection_key = " P1,                                   \
            "DELETE FROM pending_polls WHERE connection_key = " P1,                                \
            "DELETE FROM selections WHERE status IN ('selected', 'pending', 'error') AND "         \
            "(connection_key = " P1 " OR job_id IN " HS_DC_JOBS ")",                               \
            "UPDATE webhook_events SET status = 'ignored' WHERE connection_key = " P1              \
            " AND status = 'accepted'",                                                            \
            "DELETE FROM connect_flows WHERE connection_key = " P1 " OR connection = " P1,         \
            "DELETE FROM image_sources WHERE connection_key = " P1,                                \
            "DELETE FROM session_connections WHERE connection_key = " P1,                          \
            "DELETE FROM policies WHERE connection_key = " P1,                                     \
            "DELETE FROM checkpoints WHERE name = 'reconcile:' || " P1,                            \
            "DELETE FROM leases WHERE name = 'token_refresh:' || " P1,                             \
            "DELETE FROM token_rejections WHERE connection_key = " P1,                             \
            "DELETE FROM oauth_tokens WHERE connection_key = " P1,                                 \
            "DELETE FROM connections WHERE key = " P1,                                             \
    }

/* The syncs of POST /api/syncs still queued or running end failed, so that whoever follows
 * one learns why. P1, P2 (unix ms). */
#define HS_DC_SYNCS_FAIL_SQL                                                                       \
    "UPDATE syncs SET status = 'failed', result = 'failed', error_code = 'disconnected', "         \
    "error_message = 'the Hover connection was deleted', finished_ms = " P2 ", "                   \
    "version = version + 1 WHERE connection_key = " P1 " AND status IN ('queued', 'running')"

/* Without purge: the jobs stay, marked in the records feed. P1, P2 (ISO-8601), P3 (the
 * transaction's change sequence). */
#define HS_DC_MARK_SQL                                                                             \
    "UPDATE jobs SET disconnected_at = " P2 ", change_seq = " P3 " WHERE connection_key = " P1     \
    " AND disconnected_at IS NULL"

/* The files the connection's artifacts hold (before the purge). P1. */
#define HS_DC_SHAS_SQL "SELECT DISTINCT sha256 FROM artifacts WHERE model_id IN " HS_DC_MODELS

/* A file still held by another row (after the purge). P1 is the sha256 here. */
#define HS_DC_SHA_HELD_SQL "SELECT COUNT(*) FROM artifacts WHERE sha256 = " P1

/* The purge, children first. P1 only. The jobs last: the count of the purged ones. */
#define HS_DC_PURGE_SQL                                                                            \
    {                                                                                              \
        "DELETE FROM artifacts WHERE model_id IN " HS_DC_MODELS,                                   \
            "DELETE FROM measurements WHERE model_id IN " HS_DC_MODELS,                            \
            "DELETE FROM sync_results WHERE run_id IN (SELECT id FROM sync_runs WHERE job_id "     \
            "IN " HS_DC_JOBS ")",                                                                  \
            "DELETE FROM sync_runs WHERE job_id IN " HS_DC_JOBS,                                   \
            "DELETE FROM selections WHERE connection_key = " P1 " OR job_id IN " HS_DC_JOBS,       \
            "DELETE FROM sync_models WHERE sync_id IN (SELECT id FROM syncs WHERE "                \
            "connection_key = " P1 " OR job_id IN " HS_DC_JOBS ")",                                \
            "DELETE FROM syncs WHERE connection_key = " P1 " OR job_id IN " HS_DC_JOBS,            \
            "DELETE FROM outbox WHERE job_id IN " HS_DC_JOBS,                                      \
            "DELETE FROM webhook_events WHERE connection_key = " P1,                               \
            "DELETE FROM models WHERE job_id IN " HS_DC_JOBS,                                      \
            "DELETE FROM jobs WHERE connection_key = " P1,                                         \
    }

#endif
