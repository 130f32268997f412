/* sqlite_disconnect.c: connection_delete (store/service.h) in the SQLite back-end: one write
 * transaction of the statements of disconnect_sql.h. */
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "store/service.h"
#include "store/sqlite_internal.h"

#define P1 "?1"
#define P2 "?2"
#define P3 "?3"
#include "store/disconnect_sql.h"

/* Runs sql with the key as ?1 (and ?2, ?3 when given); *changes gets the rows changed. */
static int run_key(struct sq_txn *t, const char *sql, const char *key, const char *text2,
                   int64_t int2, int64_t int3, int *changes, struct hs_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = hs_sqlite_prep(t, &st, sql, "deleting a connection", err);
    if (rc)
        return rc;
    /* A statement without ?2 or ?3 ignores their binding (SQLITE_RANGE). */
    hs_sqlite_bind_text(st, 1, key);
    if (text2)
        hs_sqlite_bind_text(st, 2, text2);
    else
        sqlite3_bind_int64(st, 2, int2);
    sqlite3_bind_int64(st, 3, int3);
    return hs_sqlite_run(t, st, changes, "deleting a connection", err);
}

/* The files of the purged artifacts that no row holds any more, into out. */
static int orphans_keep(struct sq_txn *t, char **shas, size_t n, struct hs_connection_deleted *out,
                        struct hs_error *err)
{
    int rc = HS_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        sqlite3_stmt *st = NULL;
        int64_t held = 0;
        rc = hs_sqlite_prep(t, &st, HS_DC_SHA_HELD_SQL, "deleting a connection", err);
        if (!rc) {
            hs_sqlite_bind_text(st, 1, shas[i]);
            rc = hs_sqlite_int(t, st, &held, "deleting a connection", err);
        }
        if (!rc && held == 0) {
            out->orphans = hs_realloc(out->orphans, (out->n_orphans + 1) * sizeof *out->orphans);
            out->orphans[out->n_orphans++] = hs_strdup(shas[i]);
        }
    }
    return rc;
}

static int purge(struct sq_txn *t, const char *key, struct hs_connection_deleted *out,
                 struct hs_error *err)
{
    static const char *const sql[] = HS_DC_PURGE_SQL;
    const size_t n_sql = sizeof sql / sizeof sql[0];
    sqlite3_stmt *st = NULL;
    void *shas = NULL;
    size_t n_shas = 0;
    int rc = hs_sqlite_prep(t, &st, HS_DC_SHAS_SQL, "deleting a connection", err);
    if (!rc) {
        hs_sqlite_bind_text(st, 1, key);
        rc = hs_sqlite_rows(t, st, sizeof(char *), hs_sqlite_fill_text, hs_sqlite_clear_text, &shas,
                            &n_shas, "deleting a connection", err);
    }
    for (size_t i = 0; i < n_sql && !rc; i++) {
        int changes = 0;
        rc = run_key(t, sql[i], key, NULL, 0, 0, &changes, err);
        if (i == n_sql - 1)
            out->jobs = changes;
    }
    if (!rc)
        rc = orphans_keep(t, shas, n_shas, out, err);
    for (size_t i = 0; i < n_shas; i++)
        free(((char **)shas)[i]);
    free(shas);
    return rc;
}

int hs_sqlite_connection_delete(struct hs_store *base, const char *key, bool purge_records,
                                int64_t now_ms, const char *now_iso,
                                struct hs_connection_deleted *out, struct hs_error *err)
{
    if (!key || !*key || !now_iso)
        return hs_fail(err, HS_ERR_INVALID, "connection_delete without a key or a time");
    static const char *const always[] = HS_DC_ALWAYS_SQL;
    const size_t n_always = sizeof always / sizeof always[0];
    struct hs_connection_deleted d = {0};
    struct sq_txn t;
    int rc = hs_sqlite_enter(hs_sqlite_of(base), &t, SQ_WRITE_ALONE, "connection_delete", err);
    if (rc)
        return rc;
    int changes = 0, any = 0;
    for (size_t i = 0; i < n_always && !rc; i++) {
        rc = run_key(&t, always[i], key, NULL, 0, 0, &changes, err);
        any += changes;
        if (i == 2)
            d.webhooks = changes;
        else if (i == 3)
            d.work_items = changes;
        else if (i == n_always - 1)
            d.existed = changes > 0;
    }
    if (!rc)
        rc = run_key(&t, HS_DC_SYNCS_FAIL_SQL, key, NULL, now_ms, 0, &changes, err);
    d.syncs = changes;
    if (!rc && purge_records) {
        rc = purge(&t, key, &d, err);
    } else if (!rc) {
        int64_t seq = 0;
        rc = hs_sqlite_seq_peek(&t, &seq, err);
        if (!rc)
            rc = run_key(&t, HS_DC_MARK_SQL, key, now_iso, 0, seq, &changes, err);
        d.jobs = changes;
        if (!rc && changes > 0)
            rc = hs_sqlite_seq_take(&t, seq, err);
    }
    if (!rc && !d.existed && d.webhooks == 0 && d.jobs == 0 && any == 0)
        rc = hs_fail(err, HS_ERR_NOT_FOUND, "no connection named '%s'", key);
    rc = hs_sqlite_leave(&t, rc, err);
    if (rc)
        hs_connection_deleted_clear(&d);
    else
        *out = d;
    return rc;
}
