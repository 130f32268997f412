/* pg.h: the PostgreSQL back-end of the store (store.h), through libpq: a pool of connections per
 * process, migrations under an advisory lock (store_pg.c). hs_store_open picks it for a
 * postgresql:// (or postgres://) URL; the password comes from libpq's own PGPASSWORD, PGPASSFILE
 * (~/.pgpass) or service file, never from the URL on a command line. */
#ifndef HS_STORE_PG_H
#define HS_STORE_PG_H

#include "store/store.h"

/* True when location is a PostgreSQL URL rather than a SQLite path. */
bool hs_store_is_pg_url(const char *location);

/* Connects to url (a libpq connection URI), applies pending migrations and checks the secrets'
 * key. o may be NULL. A URL holding a password is refused (HS_ERR_INVALID). */
int hs_store_open_pg(const char *url, const struct hs_store_options *o, struct hs_store **out,
                     struct hs_error *err);

#endif
