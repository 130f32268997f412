/* migrations_sqlite.c: the SQLite schema, one migration per step. Never edit a released
 * migration: add a new one. Tables are meant to be read by CRM developers directly. */
#include "store/migrations.h"

const struct hs_migration hs_sqlite_migrations[] = {
    {1, "connections and tokens",
     "CREATE TABLE connections (\n"
     "  key TEXT PRIMARY KEY,            -- credential key: 'default' or 'org-<id>'\n"
     "  base_url TEXT,\n"
     "  owner_id INTEGER,                -- the Hover org the grant covers\n"
     "  owner_type TEXT,\n"
     "  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),\n"
     "  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))\n"
     ");\n"
     "CREATE TABLE oauth_tokens (\n"
     "  connection_key TEXT PRIMARY KEY REFERENCES connections(key) ON DELETE CASCADE,\n"
     "  access_token TEXT NOT NULL,\n"
     "  refresh_token TEXT,\n"
     "  expires_at INTEGER NOT NULL DEFAULT 0, -- unix seconds, 0 = unknown\n"
     "  generation INTEGER NOT NULL DEFAULT 1, -- bumped by every rotation\n"
     "  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))\n"
     ");\n"},
};

const int hs_sqlite_migrations_count =
    (int)(sizeof hs_sqlite_migrations / sizeof hs_sqlite_migrations[0]);
