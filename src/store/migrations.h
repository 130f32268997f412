/* migrations.h: the versioned schema. Each migration is applied once, in order, in its own
 * transaction, and recorded in schema_migrations; a database newer than this binary is refused. */
#ifndef HS_STORE_MIGRATIONS_H
#define HS_STORE_MIGRATIONS_H

struct hs_migration {
    int version;
    const char *name;
    const char *sql;
};

extern const struct hs_migration hs_sqlite_migrations[];
extern const int hs_sqlite_migrations_count;

/* PostgreSQL's list (migrations_pg.c): a version number means the same schema in both lists (a
 * baseline at the version SQLite had reached when the back-end came, then both grow together). */
extern const struct hs_migration hs_pg_migrations[];
extern const int hs_pg_migrations_count;

#endif
