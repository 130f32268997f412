#!/usr/bin/env bash
# Source checks run by the test suite (curl's checksrc, in small): no banned string or time
# functions in C sources, every C file formatted per .clang-format (clang-format missing is a
# failure: scripts/install-deps.sh --test installs it), and no function of src/ longer than 100
# lines but those of scripts/function-length.allow (scripts/function-length.py).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
status=0
files=$(git ls-files -co --exclude-standard -- '*.c' '*.h' 2>/dev/null || find src include sandbox tests bench -name '*.[ch]')
banned='\b(strcpy|strcat|sprintf|vsprintf|strtok|atoi|atol|atoll|gets|strncpy|localtime|gmtime|strerror|asctime|ctime)[[:space:]]*\('
for f in $files; do
    [ -f "$f" ] || continue
    # Strip string literals and comments roughly, then look for calls.
    hits=$(sed -e 's://.*$::' -e 's:"[^"]*"::g' "$f" | grep -nE "$banned" || true)
    if [ -n "$hits" ]; then
        echo "$f: banned function:" >&2
        echo "$hits" | sed 's/^/    /' >&2
        status=1
    fi
done
if command -v clang-format >/dev/null 2>&1; then
    for f in $files; do
        [ -f "$f" ] || continue
        if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
            echo "$f: not formatted (run: clang-format -i $f)" >&2
            status=1
        fi
    done
else
    echo "check-source: clang-format is missing, formatting cannot be checked" \
        "(scripts/install-deps.sh --test installs it)" >&2
    status=1
fi
# The length check reads the layout clang-format gives: it runs on formatted files only.
src_files=$(echo "$files" | tr ' ' '\n' | grep -E '^src/.*\.[ch]$' || true)
if ! python3 scripts/function-length.py --limit 100 --allow scripts/function-length.allow \
    $src_files; then
    status=1
fi
[ $status -eq 0 ] && echo "check-source: ok ($(echo "$files" | wc -w) files)"
exit $status
