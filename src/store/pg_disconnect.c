/* pg_disconnect.c: connection_delete (store/service.h) in the PostgreSQL back-end: one
 * transaction of the statements of disconnect_sql.h. */
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "store/pg_internal.h"
#include "store/service.h"

#define P1 "$1"
#define P2 "$2"
#define P3 "$3"
#include "store/disconnect_sql.h"

#define WHAT "deleting a connection"

static int run_key(struct pg_txn *t, const char *sql, const char *key, int64_t *changes,
                   struct hs_error *err)
{
    struct pg_args a = {0};
    hs_pg_text(&a, key);
    return hs_pg_run(t, sql, &a, changes, WHAT, err);
}

/* The files of the purged artifacts that no row holds any more, into out. */
static int orphans_keep(struct pg_txn *t, char **shas, size_t n, struct hs_connection_deleted *out,
                        struct hs_error *err)
{
    int rc = HS_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        int64_t held = 0;
        struct pg_args a = {0};
        hs_pg_text(&a, shas[i]);
        rc = hs_pg_int1(t, HS_DC_SHA_HELD_SQL, &a, &held, WHAT, err);
        if (!rc && held == 0) {
            out->orphans = hs_realloc(out->orphans, (out->n_orphans + 1) * sizeof *out->orphans);
            out->orphans[out->n_orphans++] = hs_strdup(shas[i]);
        }
    }
    return rc;
}

static int purge(struct pg_txn *t, const char *key, struct hs_connection_deleted *out,
                 struct hs_error *err)
{
    static const char *const sql[] = HS_DC_PURGE_SQL;
    const size_t n_sql = sizeof sql / sizeof sql[0];
    void *shas = NULL;
    size_t n_shas = 0;
    struct pg_args a = {0};
    hs_pg_text(&a, key);
    int rc = hs_pg_rows(t, HS_DC_SHAS_SQL, &a, sizeof(char *), hs_pg_fill_text, hs_pg_clear_text,
                        &shas, &n_shas, WHAT, err);
    for (size_t i = 0; i < n_sql && !rc; i++) {
        int64_t changes = 0;
        rc = run_key(t, sql[i], key, &changes, err);
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

/* Without purge: the jobs marked under the transaction's change sequence. */
static int mark(struct pg_txn *t, const char *key, const char *now_iso,
                struct hs_connection_deleted *out, struct hs_error *err)
{
    int64_t seq = 0, changes = 0;
    int rc = hs_pg_seq_peek(t, &seq, err);
    if (!rc) {
        struct pg_args a = {0};
        hs_pg_text(&a, key);
        hs_pg_text(&a, now_iso);
        hs_pg_int(&a, seq);
        rc = hs_pg_run(t, HS_DC_MARK_SQL, &a, &changes, WHAT, err);
    }
    out->jobs = changes;
    if (!rc && changes > 0)
        rc = hs_pg_seq_take(t, seq, err);
    return rc;
}

int hs_pg_connection_delete(struct hs_store *base, const char *key, bool purge_records,
                            int64_t now_ms, const char *now_iso, struct hs_connection_deleted *out,
                            struct hs_error *err)
{
    if (!key || !*key || !now_iso)
        return hs_fail(err, HS_ERR_INVALID, "connection_delete without a key or a time");
    static const char *const always[] = HS_DC_ALWAYS_SQL;
    const size_t n_always = sizeof always / sizeof always[0];
    struct hs_connection_deleted d = {0};
    struct pg_txn t;
    int rc = hs_pg_enter(hs_pg_of(base), &t, PG_WRITE_ALONE, "connection_delete", err);
    if (rc)
        return rc;
    int64_t changes = 0, any = 0;
    for (size_t i = 0; i < n_always && !rc; i++) {
        rc = run_key(&t, always[i], key, &changes, err);
        any += changes;
        if (i == 2)
            d.webhooks = changes;
        else if (i == 3)
            d.work_items = changes;
        else if (i == n_always - 1)
            d.existed = changes > 0;
    }
    if (!rc) {
        struct pg_args a = {0};
        hs_pg_text(&a, key);
        hs_pg_int(&a, now_ms);
        rc = hs_pg_run(&t, HS_DC_SYNCS_FAIL_SQL, &a, &changes, WHAT, err);
        d.syncs = changes;
    }
    if (!rc)
        rc = purge_records ? purge(&t, key, &d, err) : mark(&t, key, now_iso, &d, err);
    if (!rc && !d.existed && d.webhooks == 0 && d.jobs == 0 && any == 0)
        rc = hs_fail(err, HS_ERR_NOT_FOUND, "no connection named '%s'", key);
    rc = hs_pg_leave(&t, rc, err);
    if (rc)
        hs_connection_deleted_clear(&d);
    else
        *out = d;
    return rc;
}
