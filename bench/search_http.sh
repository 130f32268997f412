#!/usr/bin/env bash
# Requests per second and latency of the modal's search, GET /api/jobs?q=, against a running
# `hoversync serve` whose local index holds 100,000 jobs, measured with wrk on loopback.
# Hover is unreachable on purpose (a closed port): after the first failure the search's error
# backoff keeps Hover out, so the figures are those of the local index path the type-ahead uses.
# Usage: bench/search_http.sh [SECONDS, default 20]   (BUILD=dir, BENCH_DIR=dir to reuse a store)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
secs=${1:-20}
"$root/scripts/install-deps.sh" --bench
build=${BUILD:-build/release}
[ -f "$build/build.ninja" ] || meson setup "$build" -Dbuildtype=release -Dtests=disabled >/dev/null
ninja -C "$build" bench/search_bench src/cli/hoversync >/dev/null
dir=${BENCH_DIR:-/tmp/hs-search-http}
mkdir -p "$dir"
if [ ! -f "$dir/store.db" ]; then
    echo "filling $dir/store.db with 100,000 jobs (about a minute)..."
    "$build/bench/search_bench" --jobs 100000 --queries 200 --db "$dir/store.db" >/dev/null
fi

# Type-ahead queries as users type them: prefixes of street lines, cities and names.
python3 - "$dir/store.db" "$dir/queries.lua" <<'PY'
import random, sqlite3, sys, urllib.parse
con = sqlite3.connect(sys.argv[1])
rows = con.execute("SELECT name, address_line1, city FROM jobs ORDER BY random() LIMIT 400").fetchall()
random.seed(7)
qs = []
for name, line1, city in rows:
    for text in (line1, name, city):
        if text:
            qs.append(text[:random.choice((3, 5, 8, 12, len(text)))])
paths = ["/api/jobs?q=" + urllib.parse.quote(q) for q in qs[:1000]]
with open(sys.argv[2], "w") as f:
    f.write("local paths = {\n" + ",\n".join('"%s"' % p for p in paths) + "}\n")
    f.write('local i = 0\nrequest = function()\n  i = i + 1\n'
            '  return wrk.format("GET", paths[(i % #paths) + 1])\nend\n')
PY

export HOVERSYNC_DB="$dir/store.db" HOVERSYNC_DATA_DIR="$dir/data"
export HOVERSYNC_API_KEY=bench-api-key-0123456789abcdef
export HOVER_BASE_URL=http://127.0.0.1:9 HOVER_ACCESS_TOKEN=unused HOVER_REFRESH_TOKEN=unused
rm -f "$dir/port"
# No per-caller limit: wrk is one caller, and the figures are the index's, not 429s'.
"$build/src/cli/hoversync" serve --listen 127.0.0.1:0 --port-file "$dir/port" \
    --pending-interval 0 --caller-rate-limit 0 >"$dir/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
for _ in $(seq 1 200); do [ -s "$dir/port" ] && break; sleep 0.05; done
port=$(head -n 1 "$dir/port")
url="http://127.0.0.1:$port"
# One request first: it meets the unreachable Hover, and from then on the backoff holds.
curl -s -o /dev/null -H "Authorization: Bearer $HOVERSYNC_API_KEY" "$url/api/jobs?q=meadow"
for conns in 1 16; do
echo "== wrk: 2 threads, $conns connections, ${secs}s, $(grep -c '"/api' "$dir/queries.lua") queries"
wrk -t$(( conns < 2 ? 1 : 2 )) -c$conns -d"${secs}s" --latency -H "Authorization: Bearer $HOVERSYNC_API_KEY" \
    -s "$dir/queries.lua" "$url"
done
