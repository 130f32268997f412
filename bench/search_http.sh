#!/usr/bin/env bash
# Requests per second and latency of the modal's search, GET /api/jobs?q=, against a running
# `hoversync serve` whose local index holds 100,000 jobs, measured with wrk on loopback.
# Hover is unreachable on purpose (a closed port): after the first failure the search's error
# backoff keeps Hover out, so the figures are those of the local index path the type-ahead uses.
# No query is sent twice in a run (an answer cache would not help): each wrk thread walks its own
# share of a list of distinct type-ahead texts, and the two runs (1, then 16 connections) use
# separate parts of it.
# Usage: bench/search_http.sh [SECONDS, default 20]
#   BUILD=dir (default build/release), BENCH_DIR=dir (default /tmp/hs-search-http: the store,
#   filled once, and the query list), CONNS="1 16", PERF=1 (a perf profile of serve during the
#   last run, its top symbols printed; perf comes with scripts/install-deps.sh --bench).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
secs=${1:-20}
"$root/scripts/install-deps.sh" --bench
build=${BUILD:-build/release}
[ -f "$build/build.ninja" ] || meson setup "$build" -Dbuildtype=release -Dtests=disabled >/dev/null
ninja -C "$build" bench/search_bench src/cli/hoversync >/dev/null
dir=${BENCH_DIR:-/tmp/hs-search-http}
conns_list=${CONNS:-1 16}
mkdir -p "$dir"
if [ ! -f "$dir/store.db" ]; then
    echo "filling $dir/store.db with 100,000 jobs (about a minute)..."
    "$build/bench/search_bench" --jobs 100000 --queries 200 --db "$dir/store.db" >/dev/null
fi

# Type-ahead texts as users type them: prefixes (1 to 12 characters) and whole values of street
# lines, job names, cities, customer names and CRM ids, distinct once normalised as the search
# normalises them (case, runs of spaces), in a random order; one list per run.
runs=$(wc -w <<<"$conns_list")
python3 - "$dir/store.db" "$dir" "$runs" <<'PY'
import random, sqlite3, sys, urllib.parse
db, out, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
con = sqlite3.connect(db)
rows = con.execute("SELECT address_line1, name, city, customer_name, external_identifier "
                   "FROM jobs ORDER BY id").fetchall()
rng = random.Random(7)
lens = (1, 2, 3, 4, 5, 6, 8, 10, 12, None)
seen, qs = set(), []
for row in rows:
    for text in row:
        if not text:
            continue
        for n in lens:
            q = text[:n] if n else text
            norm = " ".join(q.split()).lower()
            if norm and norm not in seen:
                seen.add(norm)
                qs.append(q)
rng.shuffle(qs)
share = len(qs) // runs
for r in range(runs):
    part = qs[r * share:(r + 1) * share]
    with open("%s/queries-%d.txt" % (out, r), "w") as f:
        for q in part:
            f.write("/api/jobs?q=" + urllib.parse.quote(q) + "\n")
    mix = [sum(1 for q in part if lo <= len(q) <= hi) for lo, hi in ((1, 2), (3, 5), (6, 10**6))]
    print("run %d: %d distinct queries (1-2 characters %d, 3-5 %d, 6+ %d)" % (r + 1, len(part), *mix))
PY

cat >"$dir/distinct.lua" <<'LUA'
-- Each thread sends the queries id, id + threads, id + 2 * threads, ... of the list: no query
-- twice in the run while the list lasts; done() says how many were sent and repeated.
local threads, count = {}, 0
function setup(thread)
  count = count + 1
  thread:set("id", count)
  table.insert(threads, thread)
end
function init(args)
  paths = {}
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  listed, step, used, repeated = #paths, tonumber(args[2]), 0, 0
end
function request()
  local k = id + used * step
  used = used + 1
  if k > listed then
    repeated = repeated + 1
    k = (k - 1) % listed + 1
  end
  return wrk.format("GET", paths[k])
end
function done(summary, latency, requests)
  local sent, rep, listed = 0, 0, 0
  for _, t in ipairs(threads) do
    sent = sent + t:get("used")
    rep = rep + t:get("repeated")
    listed = t:get("listed")
  end
  io.write(string.format("distinct queries: %d sent of %d listed, %d repeated\n", sent, listed, rep))
end
LUA

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
# serve's CPU time (user + system) in ms.
serve_cpu_ms() {
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%d\n", ($14 + $15) * 1000 / hz }' "/proc/$pid/stat"
}
# One request first: it meets the unreachable Hover, and from then on the backoff holds.
curl -s -o /dev/null -H "Authorization: Bearer $HOVERSYNC_API_KEY" "$url/api/jobs?q=meadow"
src=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["directories"]["source"])' \
    "$build/meson-info/meson-info.json" 2>/dev/null || echo "$root")
echo "build $build (source $src, $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo "not a git checkout")), store $dir/store.db"
run=0
for conns in $conns_list; do
    threads=$((conns < 2 ? 1 : 2))
    echo "== wrk: $threads thread(s), $conns connection(s), ${secs}s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
    perf_pid=
    if [ "${PERF:-0}" = 1 ] && [ "$run" = $(($(wc -w <<<"$conns_list") - 1)) ] && command -v perf >/dev/null; then
        perf record -F 999 -g -p "$pid" -o "$dir/perf.data" -- sleep "$secs" >/dev/null 2>&1 &
        perf_pid=$!
    fi
    cpu0=$(serve_cpu_ms)
    wrk -t$threads -c"$conns" -d"${secs}s" --latency -H "Authorization: Bearer $HOVERSYNC_API_KEY" \
        -s "$dir/distinct.lua" "$url" -- "$dir/queries-$run.txt" "$threads" | tee "$dir/wrk.out"
    cpu1=$(serve_cpu_ms)
    n=$(awk '/requests in/ {print $1}' "$dir/wrk.out")
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
    # What each answer cost serve, whatever else ran on the machine.
    awk -v c=$((cpu1 - cpu0)) -v n="$n" 'BEGIN { if (n > 0) printf "serve CPU time: %.3f ms per request (%d ms for %d)\n", c / n, c, n }'
    if [ -n "$perf_pid" ]; then
        wait "$perf_pid" || true
        perf report -i "$dir/perf.data" --no-children --percent-limit 1.5 --stdio 2>/dev/null |
            grep -E '^ +[0-9.]+%' | head -n 30 || true
    fi
    run=$((run + 1))
done
