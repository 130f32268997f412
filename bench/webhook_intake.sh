#!/usr/bin/env bash
# Webhook intake throughput: verified, durably stored events per second and the acknowledgement
# latency of POST /webhooks/hover on a running `hoversync serve`, measured with wrk on loopback.
#
# Right before each run, N deliveries are signed like Hover's (hover-api.md 4.2; the signature
# covers the body and a fresh Date, so they cannot be prepared ahead of time) for a webhook whose
# secret is put in the store, about 512 different jobs of a connected org; wrk's Lua rotates
# through them. Every 200 is an event row and its job's work item committed with
# synchronous=FULL (the receiver answers only after the commit). Hover itself is unreachable and
# the background workers are off (--no-workers): the figures are those of the intake alone.
# Usage: bench/webhook_intake.sh [SECONDS, default 10]   (BUILD=dir; CONNS="1 16 64")
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

sign() { # $1: the Lua file to write
    python3 - "$secret" "$1" <<'PY'
import base64, email.utils, hashlib, hmac, json, random, sys
secret, out = sys.argv[1], sys.argv[2]
random.seed(11)
date = email.utils.formatdate(usegmt=True)
reqs = []
for i in range(256):
    job = 15100000 + random.randrange(512)
    ev = random.choice(["job-state-changed-v2", "model-state-changed", "model-created"])
    body = {"event": ev, "webhook_id": 230293, "job_id": job, "state": "complete",
            "job_external_identifier": None}
    if ev != "job-state-changed-v2":
        body["model_id"] = 17400000 + i
    raw = json.dumps(body, separators=(",", ":"))
    md5 = base64.b64encode(hashlib.md5(raw.encode()).digest()).decode()
    canonical = ",".join(["application/json", md5, "/webhooks/hover", date])
    sig = base64.b64encode(hmac.new(secret.encode(), canonical.encode(),
                                    hashlib.sha256).digest()).decode()
    reqs.append((raw, md5, sig))
with open(out, "w") as f:
    f.write("local date = %s\nlocal reqs = {\n" % json.dumps(date))
    f.write(",\n".join("{%s, %s, %s}" % tuple(json.dumps(x) for x in r) for r in reqs))
    f.write("}\nlocal built = {}\nlocal i = 0\n"
            "init = function(args)\n"
            "  for k, r in ipairs(reqs) do\n"
            "    built[k] = wrk.format('POST', '/webhooks/hover', {\n"
            "      ['Content-Type'] = 'application/json', ['Content-MD5'] = r[2],\n"
            "      ['Date'] = date,\n"
            "      ['Authorization'] = 'APIAuth-HMAC-SHA256 230293:' .. r[3]}, r[1])\n"
            "  end\nend\n"
            "request = function()\n  i = i + 1\n  return built[(i % #built) + 1]\nend\n")
PY
}

count() {
    python3 -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1], timeout=30); print(c.execute(sys.argv[2]).fetchone()[0])' \
        "$dir/store.db" "$1"
}

echo "hoversync serve on $url; store $dir/store.db (synchronous=FULL, WAL)"
for conns in ${CONNS:-1 16 64}; do
    sign "$dir/deliveries.lua"
    before=$(count "SELECT COUNT(*) FROM webhook_events WHERE status = 'accepted'")
    threads=$(( conns < 2 ? 1 : 2 ))
    echo
    echo "== wrk: $threads threads, $conns connections, ${secs}s, 256 signed deliveries"
    wrk -t$threads -c"$conns" -d"${secs}s" --latency -s "$dir/deliveries.lua" "$url" | tee "$dir/wrk.out"
    after=$(count "SELECT COUNT(*) FROM webhook_events WHERE status = 'accepted'")
    python3 - "$before" "$after" "$secs" "$dir/wrk.out" <<'PY'
import re, sys
before, after, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
out = open(sys.argv[4]).read()
lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
print("-> %d events stored durably (%.0f/s), ack latency p50 %s p99 %s, non-2xx %s"
      % (after - before, (after - before) / secs, lat.get("50", "?"), lat.get("99", "?"),
         non2xx.group(1) if non2xx else 0))
PY
done
items=$(count "SELECT COUNT(*) FROM work_items")
echo
echo "work items: $items (events about the same job coalesce into one)"
