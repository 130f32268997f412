#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for a while over its corpus.
# Usage: scripts/fuzz.sh [SECONDS per target, default 60] [target name...]
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
    echo "== fuzz $t for ${secs}s"
    mkdir -p "build/fuzz/new-corpus/$t"
    "build/fuzz/tests/fuzz/fuzz_$t" -max_total_time="$secs" -max_len=65536 \
        "build/fuzz/new-corpus/$t" "tests/fuzz/corpus/$t"
done
