#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for a while over its corpus.
# Usage: scripts/fuzz.sh [SECONDS per target, default 60] [target name...]
#        FUZZ_RUNS=N scripts/fuzz.sh 0 [target name...]   N executions per target instead
#        FUZZ_MAX_LEN=N: the longest input tried (default 65536, the largest body we accept)
# Each run ends with libFuzzer's figures (executions, time, coverage; a crash stops it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/install-deps.sh" --test
secs=${1:-60}
shift || true
if [ ! -f build/fuzz/build.ninja ]; then
    # Libraries get coverage instrumentation too (fuzzer-no-link), so libFuzzer is guided by
    # the parsers' branches, not only by the target file's.
    CC=clang meson setup build/fuzz -Dfuzz=true -Db_lundef=false -Dbuildtype=debugoptimized \
        -Dc_args=-fsanitize=fuzzer-no-link -Db_sanitize=address,undefined -Dtests=enabled
fi
ninja -C build/fuzz
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(ls tests/fuzz/corpus)
fi
for t in "${targets[@]}"; do
    if [ -n "${FUZZ_RUNS:-}" ]; then
        limit=(-runs="$FUZZ_RUNS")
        echo "== fuzz $t for $FUZZ_RUNS executions"
    else
        limit=(-max_total_time="$secs")
        echo "== fuzz $t for ${secs}s"
    fi
    mkdir -p "build/fuzz/new-corpus/$t"
    start=$(date +%s)
    "build/fuzz/tests/fuzz/fuzz_$t" "${limit[@]}" -max_len="${FUZZ_MAX_LEN:-65536}" \
        -print_final_stats=1 "build/fuzz/new-corpus/$t" "tests/fuzz/corpus/$t"
    echo "== fuzz $t: $(($(date +%s) - start)) s"
done
