#!/usr/bin/env bash
# Installs the Debian 12 packages hoversync needs to build, test and run.
# Idempotent: packages already present are skipped, apt is only called when something is missing.
# Usage: scripts/install-deps.sh [--test | --bench | --package]   (--test: what the test suite
#        needs, --package included; --bench: that and the load generators of bench/; --package:
#        what building the Debian package and checking the installed files need: debhelper,
#        groff and man for the manual pages, systemd's systemd-analyze for the unit)
set -euo pipefail

build_pkgs=(build-essential pkg-config meson ninja-build
    libcurl4-openssl-dev libjansson-dev libmicrohttpd-dev libsqlite3-dev libssl-dev curl)
test_pkgs=(libcmocka-dev clang clang-format libclang-rt-14-dev sqlite3 python3 chromium)

want=("${build_pkgs[@]}")
bench_pkgs=(wrk)
package_pkgs=(debhelper dpkg-dev groff-base man-db systemd)
case "${1:-}" in
--test) want+=("${test_pkgs[@]}" "${package_pkgs[@]}") ;;
--bench) want+=("${test_pkgs[@]}" "${package_pkgs[@]}" "${bench_pkgs[@]}") ;;
--package) want+=("${package_pkgs[@]}") ;;
esac

missing=()
for p in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
