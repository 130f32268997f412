#!/usr/bin/env bash
# A throw-away PostgreSQL 15 cluster for the tests: installs postgresql-15 when it is missing
# (scripts/install-deps.sh --test), runs initdb in a temporary directory as the `postgres` user
# (runuser when run as root: PostgreSQL refuses to run as root), starts it on a free port of
# 127.0.0.1 with its Unix socket in that directory, creates the database `hoversync_test`, then
# runs each program given with HS_TEST_STORE=postgresql, HS_TEST_PG_URL (the database's URL) and
# HS_TEST_PG_RESTART (a command that restarts the server: pg_ctl restart, fast mode), and at the
# end, failure or not, stops the server and removes the directory. The package's own cluster
# (5432) is never used.
# Usage: tests/support/pg_cluster.sh PROGRAM [PROGRAM ...]   (exit status: 1 if any failed)
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=/usr/lib/postgresql/15/bin

if [ ! -x "$bin/initdb" ] || [ ! -f /usr/share/postgresql/15/extension/pg_trgm.control ]; then
    "$root/scripts/install-deps.sh" --test >&2 || { echo "pg_cluster: cannot install postgresql-15" >&2; exit 1; }
fi

dir=$(mktemp -d /tmp/hs-pg-XXXXXX) || exit 1
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$dir"
    as_pg=(runuser -u postgres --)
fi
data="$dir/data"

stop() {
    "${as_pg[@]}" "$bin/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1
    rm -rf "$dir"
}
trap stop EXIT
trap 'exit 1' INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# A test cluster: nothing here must survive a power cut, so no fsync (the store's own commits
# are no less correct for it: durability is PostgreSQL's, and is not what these tests measure).
# HS_TEST_PG_DURABLE=1 keeps fsync on, for benchmarks that compare with SQLite's FULL commits.
durability="-c fsync=off -c full_page_writes=off"
[ -n "${HS_TEST_PG_DURABLE:-}" ] && durability=""
opts="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir $durability \
-c max_connections=200"

if ! "${as_pg[@]}" "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 \
    --locale=C.UTF-8 -N >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    exit 1
fi
if ! "${as_pg[@]}" "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -o "$opts" start >/dev/null; then
    cat "$dir/server.log" >&2
    exit 1
fi
psql=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres)
"${psql[@]}" -d postgres -c "CREATE DATABASE hoversync_test" || exit 1
# In public once, so that the tests' own schemas (search_path = the schema, public) find them.
"${psql[@]}" -d hoversync_test -c "CREATE EXTENSION pg_trgm; CREATE EXTENSION unaccent" || exit 1

cat >"$dir/restart.sh" <<RESTART
#!/bin/sh
exec ${as_pg[*]} "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -m fast -o "$opts" restart >/dev/null
RESTART
chmod 755 "$dir/restart.sh"

export HS_TEST_STORE=postgresql
export HS_TEST_PG_URL="postgresql://postgres@127.0.0.1:$port/hoversync_test"
export HS_TEST_PG_RESTART="$dir/restart.sh"

status=0
for prog in "$@"; do
    echo "== $(basename "$prog") on PostgreSQL"
    "$prog" || status=1
done
exit $status
