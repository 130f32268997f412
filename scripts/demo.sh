#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, starts the bundled Hover sandbox
# with a seeded set of jobs, connects the demo org (OAuth's authorization-code flow), shows a
# search and a job in the terminal, then starts `hoversync serve` on embedded defaults (SQLite
# file ./hoversync.db, artifacts under ./hoversync-data) with the demo CRM page, and prints its
# URL. Ctrl-C stops both. DEMO_SECONDS=N stops them after N seconds (for scripted runs).
# Usage: scripts/demo.sh [SEARCH TEXT] [JOB_ID]     (ports: DEMO_PORT=8080, DEMO_CRM_PORT=8081)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
query=${1:-Meadow}
job=${2:-15084301}

"$root/scripts/install-deps.sh"
if [ ! -f build/release/build.ninja ]; then
    meson setup build/release -Dbuildtype=release -Dtests=disabled >/dev/null
fi
ninja -C build/release >/dev/null
bin="$root/build/release"

run=$(mktemp -d /tmp/hoversync-demo.XXXXXX)
cleanup() {
    for pid in ${serve_pid:-} ${sandbox_pid:-}; do
        kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    rm -rf "$run"
}
trap cleanup EXIT INT TERM

"$bin/sandbox/hover-sandbox" --seed 42 --jobs 500 --port-file "$run/port" \
    --request-log "$run/requests.log" >"$run/sandbox.out" 2>"$run/sandbox.err" &
sandbox_pid=$!
for _ in $(seq 1 100); do
    [ -s "$run/port" ] && break
    sleep 0.05
done
[ -s "$run/port" ] || { cat "$run/sandbox.err" >&2; echo "demo: the sandbox did not start" >&2; exit 1; }
port=$(head -n 1 "$run/port")
export HOVER_BASE_URL="http://127.0.0.1:$port"
export HOVER_CLIENT_ID=sandbox-client HOVER_CLIENT_SECRET=sandbox-secret
echo "Hover sandbox: $HOVER_BASE_URL (500 jobs, seed 42)"

# Connect the demo org through OAuth's authorization-code flow. hoversync prints the authorize
# URL and waits for the redirect; this script plays the user's browser: it opens the page,
# presses Allow (posts the form) and follows Hover's redirect back to hoversync.
"$bin/src/cli/hoversync" connect --timeout 30 >"$run/connect.out" 2>"$run/connect.err" &
connect_pid=$!
for _ in $(seq 1 100); do
    [ -s "$run/connect.out" ] && break
    sleep 0.05
done
url=$(head -n 1 "$run/connect.out")
curl -fsS -o /dev/null "$url"
back=$(curl -fsS -o /dev/null -w '%{redirect_url}' --data "${url#*\?}&decision=allow" \
    "$HOVER_BASE_URL/oauth/authorize")
curl -fsS -o /dev/null "$back"
if ! wait "$connect_pid"; then
    cat "$run/connect.err" >&2
    exit 1
fi
tail -n 1 "$run/connect.err"

echo
echo "\$ hoversync search \"$query\""
"$bin/src/cli/hoversync" search "$query"
echo
echo "\$ hoversync show $job"
"$bin/src/cli/hoversync" show "$job"

port=${DEMO_PORT:-8080}
crm_port=${DEMO_CRM_PORT:-8081}
export HOVERSYNC_API_KEY=${HOVERSYNC_API_KEY:-demo-api-key-0123456789abcdef}
"$bin/src/cli/hoversync" serve --listen "127.0.0.1:$port" --demo-crm "127.0.0.1:$crm_port" \
    --pending-interval 5 >"$run/serve.out" 2>"$run/serve.err" &
serve_pid=$!
for _ in $(seq 1 100); do
    grep -q "demo CRM" "$run/serve.out" 2>/dev/null && break
    if ! kill -0 "$serve_pid" 2>/dev/null; then
        cat "$run/serve.err" >&2
        echo "demo: hoversync serve did not start (is port $port or $crm_port taken? set DEMO_PORT)" >&2
        exit 1
    fi
    sleep 0.05
done
echo
cat "$run/serve.out"
echo
echo "Open the demo CRM page: http://127.0.0.1:$crm_port/  (\"Import from Hover\", then type an address,"
echo "e.g. Orchard or Meadow). API key for the HTTP API: $HOVERSYNC_API_KEY. Ctrl-C stops the demo."
if [ -n "${DEMO_SECONDS:-}" ]; then
    sleep "$DEMO_SECONDS"
else
    wait "$serve_pid"
fi
