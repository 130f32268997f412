#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, checks the sources, then builds
# twice (warnings as errors; ASan+UBSan) and runs every test in each build: unit, integration
# against the real sandbox, fuzz corpora. Ends with one line: "N passed, N failed, N skipped"
# (a test that could not run here, meson's SKIP, is counted as skipped, never as passed).
# Usage: scripts/check.sh [meson test args...]   e.g. scripts/check.sh --suite unit
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

"$root/scripts/install-deps.sh" --test || { echo "0 passed, 1 failed, 0 skipped"; exit 1; }

passed=0
failed=0
skipped=0
out="$root/test-output"
mkdir -p "$out"

count() { # $1: a meson build dir; adds its testlog.json results to the totals
    local log="$1/meson-logs/testlog.json" p f s
    [ -f "$log" ] || { failed=$((failed + 1)); return; }
    read -r p f s < <(python3 - "$log" <<'PY'
import json, sys
ok = bad = skip = 0
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    t = json.loads(line)
    r = t.get("result")
    if r in ("OK", "EXPECTEDFAIL"):
        ok += 1
    elif r == "SKIP":
        skip += 1
        print("skipped:", t.get("name"), file=sys.stderr)
    else:
        bad += 1
print(ok, bad, skip)
PY
)
    passed=$((passed + p))
    failed=$((failed + f))
    skipped=$((skipped + s))
}

build() { # $1: dir, rest: meson options
    local dir=$1
    shift
    if [ -f "$dir/build.ninja" ]; then
        meson setup --reconfigure "$dir" "$@" >"$out/$(basename "$dir")-setup.log" 2>&1
    else
        meson setup "$dir" "$@" >"$out/$(basename "$dir")-setup.log" 2>&1
    fi || { cat "$out/$(basename "$dir")-setup.log" >&2; return 1; }
    ninja -C "$dir" >"$out/$(basename "$dir")-build.log" 2>&1 ||
        { tail -n 60 "$out/$(basename "$dir")-build.log" >&2; return 1; }
}

echo "== source checks"
if scripts/check-source.sh; then passed=$((passed + 1)); else failed=$((failed + 1)); fi

echo "== build: warnings as errors"
if build build/ci -Dwerror=true -Dbuildtype=debugoptimized -Dtests=enabled; then
    meson test -C build/ci --print-errorlogs --num-processes 2 "$@"
    count build/ci
else
    failed=$((failed + 1))
fi

echo "== build: ASan + UBSan"
if build build/asan -Dwerror=true -Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false \
    -Dtests=enabled; then
    meson test -C build/asan --print-errorlogs --num-processes 2 --timeout-multiplier 3 "$@"
    count build/asan
else
    failed=$((failed + 1))
fi

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
