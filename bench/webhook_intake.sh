#!/usr/bin/env bash
# Webhook intake throughput: verified, durably stored events per second and the acknowledgement
# latency of POST /webhooks/hover on a running `hoversync serve`, measured with wrk on loopback.
#
# Right before each run, 20,000 distinct deliveries per second of the run are signed like
# Hover's (hover-api.md 4.2; the signature covers the body and a fresh Date, so they cannot be
# prepared ahead of time) for a webhook whose secret is put in the store, about 512 different
# jobs of a connected org; wrk's threads each send their share once (a delivery sent twice would
# be a replay: acknowledged, not stored). Every "accepted" 200 is an event row and its job's work
# item committed and fsynced (the receiver answers only after that); the events stored are
# counted in the store afterwards. Hover itself is unreachable and the background workers are
# off (--no-workers): the figures are those of the intake alone. Also printed: serve's CPU time
# per stored event (user + system, from /proc) and the load average.
# Usage: bench/webhook_intake.sh [SECONDS, default 10]
#   BUILD=dir (default build/release); CONNS="1 16 64"; DELIVERIES=n;
#   PERF=dir: perf record of serve during each run (PERF_OPTS, default -g)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
secs=${1:-10}
"$root/scripts/install-deps.sh" --bench
build=${BUILD:-build/release}
[ -f "$build/build.ninja" ] || meson setup "$build" -Dbuildtype=release -Dtests=disabled >/dev/null
ninja -C "$build" src/cli/hoversync >/dev/null
dir=$(mktemp -d /tmp/hs-webhook-bench-XXXXXX)
secret=YmVuY2gtc2VjcmV0LW9mLXRoZS13ZWJob29rLTAxMjM0NTY3
export HOVERSYNC_DB="$dir/store.db" HOVERSYNC_DATA_DIR="$dir/data"
export HOVERSYNC_API_KEY=bench-api-key-0123456789abcdef
export HOVER_BASE_URL=http://127.0.0.1:9 HOVER_ACCESS_TOKEN=unused HOVER_REFRESH_TOKEN=unused
"$build/src/cli/hoversync" serve --listen 127.0.0.1:0 --port-file "$dir/port" --no-workers \
    --pending-interval 0 >"$dir/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 200); do [ -s "$dir/port" ] && break; sleep 0.05; done
port=$(head -n 1 "$dir/port")
url="http://127.0.0.1:$port"

# The webhook, as `hoversync webhooks register` would have stored it.
python3 - "$dir/store.db" "$secret" <<'PY'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=30)
con.execute("INSERT INTO webhooks (id, connection_key, url, hmac_secret, verified_at, created_at,"
            " updated_at) VALUES (230293, 'default', 'http://127.0.0.1/webhooks/hover', ?,"
            " '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
            (sys.argv[2],))
con.commit()
PY

sign() { # $1: the deliveries file, $2: how many
    python3 - "$secret" "$1" "$2" <<'PY'
import base64, email.utils, hashlib, hmac, json, random, sys
secret, out, n = sys.argv[1].encode(), sys.argv[2], int(sys.argv[3])
random.seed(11)
date = email.utils.formatdate(usegmt=True)
events = ["job-state-changed-v2", "model-state-changed", "model-created"]
with open(out, "w") as f:
    f.write(date + "\n")
    for i in range(n):
        job = 15100000 + random.randrange(512)
        ev = random.choice(events)
        body = {"event": ev, "webhook_id": 230293, "job_id": job, "state": "complete",
                "job_external_identifier": None}
        # Every delivery distinct (a model id of its own; the job event carries a sequence
        # number as Hover's do not, but the receiver ignores unknown keys): a repeated one would
        # be a replay, acknowledged without a row.
        if ev != "job-state-changed-v2":
            body["model_id"] = 17400000 + i
        else:
            body["seq"] = i
        raw = json.dumps(body, separators=(",", ":"))
        md5 = base64.b64encode(hashlib.md5(raw.encode()).digest()).decode()
        canonical = ",".join(["application/json", md5, "/webhooks/hover", date])
        sig = base64.b64encode(hmac.new(secret, canonical.encode(), hashlib.sha256).digest())
        f.write("%s\t%s\t%s\n" % (md5, sig.decode(), raw))
PY
}

# wrk's Lua ($1: the file to write, $2: wrk's threads): each thread builds its share of the
# deliveries (every $2-th line) and sends each once; only a run that outlasts them wraps around
# (replays: 200 without a row, so the events-stored figure, counted in the store, stays honest).
lua() {
    cat >"$1" <<LUA
local file, nthreads = "$dir/deliveries.txt", $2
local built, i, next_id = {}, 0, 0
setup = function(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end
init = function(args)
  local id = wrk.thread:get("id") or 0
  local lines = io.lines(file)
  local date = lines()
  local k = 0
  for line in lines do
    if k % nthreads == id then
      local md5, sig, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
      built[#built + 1] = wrk.format("POST", "/webhooks/hover", {
        ["Content-Type"] = "application/json", ["Content-MD5"] = md5, ["Date"] = date,
        ["Authorization"] = "APIAuth-HMAC-SHA256 230293:" .. sig}, body)
    end
    k = k + 1
  end
end
request = function()
  i = i + 1
  return built[((i - 1) % #built) + 1]
end
LUA
}

cpu_ticks() { # serve's user+system CPU so far, in clock ticks
    awk '{print $14 + $15}' "/proc/$pid/stat"
}

count() {
    python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1], timeout=30); print(c.execute(sys.argv[2]).fetchone()[0])' \
        "$dir/store.db" "$1"
}

echo "hoversync serve on $url; store $dir/store.db (synchronous=FULL, WAL)"
# Enough distinct deliveries for the run at 20,000/s (DELIVERIES=n to change).
deliveries=${DELIVERIES:-$(( secs * 20000 ))}
for conns in ${CONNS:-1 16 64}; do
    threads=$(( conns < 2 ? 1 : 2 ))
    sign "$dir/deliveries.txt" "$deliveries"
    lua "$dir/deliveries.lua" "$threads"
    before=$(count "SELECT COUNT(*) FROM webhook_events WHERE status = 'accepted'")
    cpu_before=$(cpu_ticks)
    echo
    echo "== wrk: $threads threads, $conns connections, ${secs}s, $deliveries signed deliveries"
    # PERF=dir: a call-graph profile of serve during each run (perf report -i DIR/perf-N.data).
    [ -z "${PERF:-}" ] || { perf record ${PERF_OPTS:--g} -p "$pid" -o "$PERF/perf-$conns.data" 2>/dev/null &
        perf_pid=$!; }
    # wrk's own CPU time too (bash's time: user and system seconds): the load generator shares
    # the cores.
    { TIMEFORMAT="%U %S"; time wrk -t$threads -c"$conns" -d"${secs}s" --latency \
        -s "$dir/deliveries.lua" "$url" >"$dir/wrk.out"; } 2>"$dir/wrk.time"
    cat "$dir/wrk.out"
    [ -z "${PERF:-}" ] || { kill -INT "$perf_pid"; wait "$perf_pid" || true; }
    cpu_after=$(cpu_ticks)
    after=$(count "SELECT COUNT(*) FROM webhook_events WHERE status = 'accepted'")
    python3 - "$before" "$after" "$secs" "$dir/wrk.out" "$((cpu_after - cpu_before))" \
        "$(getconf CLK_TCK)" "$(tail -n 1 "$dir/wrk.time")" <<'PY'
import os, re, sys
before, after, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
cpu_s = int(sys.argv[5]) / int(sys.argv[6])
wrk_s = sum(float(x) for x in sys.argv[7].split())
out = open(sys.argv[4]).read()
lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
print("-> %d events stored durably (%.0f/s), ack latency p50 %s p99 %s, non-2xx %s"
      % (after - before, (after - before) / secs, lat.get("50", "?"), lat.get("99", "?"),
         non2xx.group(1) if non2xx else 0))
print("   serve's CPU %.0f%% of one core, %.0f us per stored event; wrk's %.0f%%; load average %s"
      % (100 * cpu_s / secs, 1e6 * cpu_s / max(after - before, 1), 100 * wrk_s / secs,
         " ".join(open("/proc/loadavg").read().split()[:3])))
PY
done
items=$(count "SELECT COUNT(*) FROM work_items")
echo
echo "work items: $items (events about the same job coalesce into one)"
