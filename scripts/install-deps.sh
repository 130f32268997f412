#!/usr/bin/env bash
# Installs the Debian 12 packages hoversync needs to build, test and run.
# Idempotent: packages already present are skipped, apt is only called when something is missing.
# Usage: scripts/install-deps.sh [--test | --bench | --package]   (--test: what the test suite
#        needs, --package included; --bench: that and the tools of bench/ (wrk, strace, perf);
#        --package: what building the Debian package and checking the installed files need: debhelper,
#        groff and man for the manual pages, systemd's systemd-analyze for the unit)
#
# The browser tests (playwright-core) and the lint of the API's OpenAPI document (@redocly/cli)
# need Node 20.19 or later with npm: when no `node` is on the PATH, --test installs the `nodejs`
# package of the machine's apt sources (on our machines that is Node 20, which brings npm with
# it). Debian's separate `npm` package is never installed: it pulls in Debian's older Node. A
# node older than 20.19 is an error that says what to install.
# The integration tests check the service's answers against docs/openapi.yaml with Debian's
# python3-jsonschema (and python3-yaml), and /metrics with promtool (Debian's `prometheus`
# package, which also brings the Prometheus server; --no-install-recommends keeps it at that).
set -euo pipefail

node_major=20
node_minor=19
build_pkgs=(build-essential pkg-config meson ninja-build
    libcurl4-openssl-dev libjansson-dev libmicrohttpd-dev libsqlite3-dev libpq-dev libssl-dev curl)
test_pkgs=(libcmocka-dev clang clang-format libclang-rt-14-dev sqlite3 python3 chromium
    python3-jsonschema python3-yaml prometheus postgresql-15 postgresql-contrib)

want=("${build_pkgs[@]}")
bench_pkgs=(wrk strace linux-perf)
package_pkgs=(debhelper dpkg-dev groff-base man-db systemd)
with_node=false
case "${1:-}" in
--test)
    want+=("${test_pkgs[@]}" "${package_pkgs[@]}")
    with_node=true
    ;;
--bench)
    want+=("${test_pkgs[@]}" "${package_pkgs[@]}" "${bench_pkgs[@]}")
    with_node=true
    ;;
--package) want+=("${package_pkgs[@]}") ;;
esac

missing=()
for p in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if $with_node && ! command -v node >/dev/null 2>&1; then
    missing+=(nodejs)
fi

if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}" >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if $with_node; then
    version=$(node --version 2>/dev/null || true)
    major=${version#v}
    minor=${major#*.}
    major=${major%%.*}
    minor=${minor%%.*}
    if ! [[ "$major" =~ ^[0-9]+$ && "$minor" =~ ^[0-9]+$ ]] || [ "$major" -lt "$node_major" ] ||
        { [ "$major" -eq "$node_major" ] && [ "$minor" -lt "$node_minor" ]; }; then
        echo "install-deps: the browser tests and the API document's lint need Node" \
            "$node_major.$node_minor or later (playwright-core, @redocly/cli); this machine has" \
            "${version:-no working node} ($(command -v node || echo 'not found'))." >&2
        echo "install-deps: install the 'nodejs' package of Node $node_major.$node_minor or later" \
            "(it brings npm), e.g. from NodeSource's node_$node_major.x apt repository, then run" \
            "this again; do not install Debian's separate 'npm' package." >&2
        exit 1
    fi
    if ! command -v npm >/dev/null 2>&1; then
        echo "install-deps: node $version has no npm: install the 'nodejs' package of Node" \
            "$node_major or later, which brings npm (not Debian's separate 'npm' package)." >&2
        exit 1
    fi
fi
