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

#endif
