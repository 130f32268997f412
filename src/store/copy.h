/* copy.h: a whole store copied into another (`hoversync store copy`), either back-end to either.
 *
 * Both schemas have the same tables and columns (migrations_pg.c: PostgreSQL's types where SQLite
 * has affinities), so one list of tables and their columns (copy.c) drives the copy: the source
 * reads every table in one snapshot and gives each row, as text, to the target, which inserts it
 * with the same values inside one transaction. Nothing is unsealed: secrets go over as stored,
 * so both stores need the same HOVERSYNC_ENCRYPTION_KEY. The change numbers of the records and
 * the counter of the feed go over as they are, so a follower's cursor stays valid. Derived
 * tables (the search indexes) are rebuilt by the target's own triggers. */
#ifndef HS_STORE_COPY_H
#define HS_STORE_COPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* A column's kind, which says how each back-end reads and writes its value as text. */
enum hs_copy_type {
    HS_COPY_TEXT,  /* text on both */
    HS_COPY_INT,   /* INTEGER / bigint, decimal */
    HS_COPY_REAL,  /* REAL / double precision or numeric, the shortest exact decimal */
    HS_COPY_BOOL,  /* INTEGER 0/1 / boolean, "0" or "1" */
    HS_COPY_TIME,  /* ISO-8601 UTC text with milliseconds / timestamptz */
    HS_COPY_JSON,  /* JSON text / jsonb */
    HS_COPY_BYTES, /* BLOB / bytea, raw bytes */
};

struct hs_copy_column {
    const char *name;
    enum hs_copy_type type;
};

struct hs_copy_table {
    const char *name;
    const struct hs_copy_column *cols;
    size_t n_cols;
    /* PostgreSQL's reading order (SQLite's is the rowid: the order rows were written in, which
     * inserting them in that order on PostgreSQL keeps for its identity columns). */
    const char *pg_order;
    /* PostgreSQL: the identity column whose sequence must go past the copied values, or NULL. */
    const char *identity;
    /* The rows every new store has (written by its migrations or its opening), as a condition
     * of SQL both back-ends speak; NULL when there are none. They do not make a target "not
     * empty". */
    const char *initial;
};

/* The tables, parents before children (foreign keys); a target is cleared in reverse order. */
extern const struct hs_copy_table hs_copy_tables[];
extern const size_t hs_copy_tables_count;

/* One value as text (NUL-terminated, except HS_COPY_BYTES); p NULL: SQL NULL. */
struct hs_copy_value {
    const char *p;
    size_t n;
};

/* Where a back-end's copy_read gives what it reads: table() before the rows of each table, then
 * row() with the table's n_cols values, in its column order. A failure stops the read. */
struct hs_copy_sink {
    int (*table)(void *arg, const struct hs_copy_table *t, struct hs_error *err);
    int (*row)(void *arg, const struct hs_copy_value *v, struct hs_error *err);
    void *arg;
};

/* A back-end's insertion of one table's rows (copy_write_begin .. copy_write_end). */
struct hs_copy_writer;

struct hs_copy_report {
    size_t tables;
    int64_t rows;
    /* Set (whatever the result) when the target was refused as not empty: the first table
     * found holding rows. */
    const char *not_empty;
};

/* Copies every table of `from` into `to`, in one transaction of `to` (all or nothing). A target
 * holding anything but its initial rows is refused (HS_ERR_CONFLICT, naming the table) unless
 * replace, which deletes its rows first (in the same transaction). rep (may be NULL) gets what
 * was copied, or which table made the target not empty. Both stores must be at the same schema
 * version (opening them migrates both to this binary's). The artifact files are not copied: both
 * stores name them by the same paths (blobs/ab/cd/<sha256>) in whichever blob store holds them;
 * hs_blobs_copy_store moves them between blob stores. */
int hs_store_copy(struct hs_store *from, struct hs_store *to, bool replace,
                  struct hs_copy_report *rep, struct hs_error *err);

/* As hs_store_copy, with before_commit (may be NULL) called inside the target's transaction
 * once every row is written and before the commit: its failure rolls the copy back. For what
 * must be in place before the copied rows may point at it (the artifact files, when the target
 * keeps them in another blob store). */
int hs_store_copy_before(struct hs_store *from, struct hs_store *to, bool replace,
                         int (*before_commit)(void *arg, struct hs_error *err), void *arg,
                         struct hs_copy_report *rep, struct hs_error *err);

/* The shortest decimal that reads back as v exactly (for REAL columns); out >= 32 bytes. */
void hs_copy_format_real(double v, char *out, size_t n);

#endif
