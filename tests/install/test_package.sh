#!/usr/bin/env bash
# The Debian package, as an administrator meets it: built with debhelper from a clean copy of
# the committed tree (git archive HEAD: uncommitted changes are not in it), installed with
# `apt-get install ./hoversync_*.deb`, checked (version, help, manual pages, the systemd unit,
# the modal's files found where the binary looks, the configuration and secrets files, bash
# completion, a running service), then purged: the machine is left as it was, also on failure.
#
# Needs root and apt (CI runs as root on a throwaway Debian 12 machine). One run at a time on a
# machine (a lock), whatever the build directory or checkout. The .deb of a tree is kept under
# build/package/<tree id> and reused by the next build directory of the same checkout.
# Exit 77 (meson: skipped) with a SKIP line when it cannot run here.
set -uo pipefail

src=${SOURCE_ROOT:?SOURCE_ROOT is set by meson}
skip() {
    echo "SKIP: $*"
    exit 77
}
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
ok() { echo "ok: $*"; }

[ "$(id -u)" -eq 0 ] || skip "installing a package needs root"
for tool in git dpkg-buildpackage dpkg-deb apt-get flock man; do
    command -v "$tool" >/dev/null || skip "$tool is missing (scripts/install-deps.sh --package installs it)"
done
git -C "$src" rev-parse --verify -q HEAD >/dev/null || skip "$src is not a git checkout with a commit"

lockdir=/var/lock
[ -d "$lockdir" ] && [ -w "$lockdir" ] || lockdir=/tmp
exec 9>"$lockdir/hoversync-package-test.lock"
flock -w 1800 9 || fail "another package test held $lockdir/hoversync-package-test.lock for 30 minutes"

# A package left installed by a run of this test that was killed is ours to purge; any other
# installed hoversync is the machine's: leave it alone.
marker=/var/tmp/hoversync-package-test.installed
installed() { dpkg-query -W -f='${Status}' hoversync 2>/dev/null | grep -q 'install ok installed'; }
apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -y -q "$@"; }
if installed; then
    [ -f "$marker" ] || skip "a hoversync package is installed on this machine: not replacing it"
    echo "purging the package a killed run of this test left"
    apt_get purge hoversync >/dev/null || fail "cannot purge the leftover package"
    rm -f "$marker"
fi

work=$(mktemp -d /tmp/hoversync-package.XXXXXX)
extras=()
we_installed=0
cleanup() {
    if [ "$we_installed" -eq 1 ] && installed; then
        apt_get purge hoversync "${extras[@]}" >/dev/null 2>&1 || echo "cleanup: purge failed" >&2
    fi
    rm -f "$marker"
    [ -n "${serve_pid:-}" ] && kill "$serve_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

version=$(sed -n "s/^  version : '\([^']*\)',\$/\1/p" "$src/meson.build")
[ -n "$version" ] || fail "cannot read the version in meson.build"

# ---- build (or reuse the .deb of this very tree) ----
tree=$(git -C "$src" rev-parse HEAD^{tree})
cache="$src/build/package/$tree"
if [ -n "$(git -C "$src" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    echo "NOTE: uncommitted changes are not in the package (built from HEAD)"
fi
t0=$(date +%s)
deb=$(ls "$cache"/hoversync_*.deb 2>/dev/null | head -n 1)
if [ -z "$deb" ]; then
    mkdir -p "$work/src"
    git -C "$src" archive --format=tar --prefix=hoversync/ HEAD | tar -x -C "$work/src" ||
        fail "git archive HEAD failed"
    if ! (cd "$work/src/hoversync" &&
        DEB_BUILD_OPTIONS="nocheck noddebs parallel=2" dpkg-buildpackage -b -us -uc \
            >"$work/build.log" 2>&1); then
        tail -n 40 "$work/build.log" >&2
        fail "dpkg-buildpackage failed"
    fi
    mkdir -p "$cache"
    cp "$work/src"/hoversync_*.deb "$cache/" || fail "no .deb was built"
    deb=$(ls "$cache"/hoversync_*.deb | head -n 1)
    echo "package: built $(basename "$deb") from tree $tree in $(($(date +%s) - t0)) s"
else
    echo "package: reusing $(basename "$deb") of tree $tree (built by an earlier run)"
fi
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] ||
    fail "the package's version $(dpkg-deb -f "$deb" Version) is not meson.build's $version (debian/changelog)"
ok "version $version in debian/changelog and meson.build"

# ---- install: whatever else apt would pull in is purged afterwards too ----
cp "$deb" "$work/"
cd "$work" || fail "cd $work"
mapfile -t extras < <(apt-get -s install "./$(basename "$deb")" 2>/dev/null |
    sed -n 's/^Inst \([^ ]*\) .*/\1/p' | grep -vx hoversync)
[ "${#extras[@]}" -eq 0 ] || echo "apt also installs: ${extras[*]} (purged at the end)"
t1=$(date +%s)
date >"$marker"
we_installed=1
# Slim images tell dpkg to skip manual pages (path-exclude): ours are part of what is checked.
apt_get -o DPkg::Options::=--path-include=/usr/share/man/man1/hover* \
    install "./$(basename "$deb")" >"$work/install.log" 2>&1 ||
    {
        cat "$work/install.log" >&2
        fail "apt-get install ./$(basename "$deb") failed"
    }
installed || fail "dpkg does not list hoversync as installed"
echo "package: installed in $(($(date +%s) - t1)) s"

# ---- checks ----
[ "$(command -v hoversync)" = /usr/bin/hoversync ] || fail "hoversync is not /usr/bin/hoversync"
[ "$(hoversync --version)" = "hoversync $version" ] || fail "hoversync --version: $(hoversync --version)"
ok "hoversync --version: hoversync $version"
help=$(hoversync --help) || fail "hoversync --help failed"
grep -q "^Usage: hoversync" <<<"$help" && grep -q -- "--config PATH" <<<"$help" ||
    fail "hoversync --help lacks its usage"
ok "hoversync --help"
# Captured first: with pipefail, grep -q closing the pipe early could fail the writer (SIGPIPE).
sb_help=$(hover-sandbox --help) || fail "hover-sandbox --help failed"
grep -q "^Usage: hover-sandbox" <<<"$sb_help" || fail "hover-sandbox --help lacks its usage"
ok "hover-sandbox --help"

for page in hoversync hover-sandbox; do
    out=$(MANWIDTH=100 man "$page" 2>"$work/man.err") || fail "man $page failed: $(cat "$work/man.err")"
    [ ! -s "$work/man.err" ] || fail "man $page warned: $(cat "$work/man.err")"
    grep -q "^NAME" <<<"$out" && grep -q "^SYNOPSIS" <<<"$out" || fail "man $page: no NAME/SYNOPSIS"
    ok "man $page renders ($(wc -l <<<"$out") lines)"
done
grep -q "CONFIGURATION FILE" <<<"$(MANWIDTH=100 man hoversync 2>/dev/null)" ||
    fail "man hoversync lacks the configuration file"

unit=/lib/systemd/system/hoversync.service
[ -f "$unit" ] || fail "$unit is missing"
grep -qx "ExecStart=/usr/bin/hoversync serve" "$unit" || fail "$unit does not run /usr/bin/hoversync serve"
grep -qx "EnvironmentFile=-/etc/hoversync/hoversync.env" "$unit" || fail "$unit: no EnvironmentFile"
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify "$unit" >"$work/verify.log" 2>&1 && [ ! -s "$work/verify.log" ] ||
        fail "systemd-analyze verify $unit: $(cat "$work/verify.log")"
    ok "$unit passes systemd-analyze verify"
else
    fail "systemd-analyze is missing (scripts/install-deps.sh --package installs systemd)"
fi
systemctl is-enabled hoversync.service >/dev/null 2>&1 && fail "the package enabled the service"
ok "the service is installed, not enabled"

for f in modal.html modal.js modal.css hoversync-modal.js demo/crm.html; do
    [ -s "/usr/share/hoversync/web/$f" ] || fail "/usr/share/hoversync/web/$f is missing"
done
ok "the modal's files are in /usr/share/hoversync/web"

[ "$(stat -c '%a %U' /etc/hoversync/hoversync.env)" = "600 root" ] ||
    fail "/etc/hoversync/hoversync.env is $(stat -c '%a %U' /etc/hoversync/hoversync.env), not 600 root"
ok "/etc/hoversync/hoversync.env: 600 root"
show=$(env -u HOVERSYNC_WEB_DIR -u HOVERSYNC_CONFIG hoversync config show) ||
    fail "hoversync config show failed with the shipped configuration file"
grep -Eq "^config +HOVERSYNC_CONFIG +/etc/hoversync/hoversync.conf +source=default$" <<<"$show" ||
    fail "config show does not read /etc/hoversync/hoversync.conf: $(head -n 1 <<<"$show")"
grep -Eq "^web-dir +HOVERSYNC_WEB_DIR +/usr/share/hoversync/web +source=default$" <<<"$show" ||
    fail "the installed binary does not default to /usr/share/hoversync/web: $(grep ^web-dir <<<"$show")"
ok "hoversync config show: /etc/hoversync/hoversync.conf read, web-dir /usr/share/hoversync/web"

for c in hoversync hover-sandbox; do
    bash -c "source /usr/share/bash-completion/completions/$c && complete -p $c" >/dev/null ||
        fail "bash completion of $c"
done
ok "bash completion of hoversync and hover-sandbox"

# The installed service serves the installed modal files.
mkdir -p "$work/run"
(cd "$work/run" && exec env -u HOVERSYNC_WEB_DIR HOVERSYNC_API_KEY=package-test-key-0123456789 \
    hoversync serve --listen 127.0.0.1:0 --port-file "$work/run/port" \
    >"$work/run/out" 2>"$work/run/err") &
serve_pid=$!
for _ in $(seq 1 200); do
    [ -s "$work/run/port" ] && break
    kill -0 "$serve_pid" 2>/dev/null || fail "hoversync serve exited: $(cat "$work/run/err")"
    sleep 0.05
done
[ -s "$work/run/port" ] || fail "hoversync serve did not start: $(cat "$work/run/err")"
port=$(cat "$work/run/port")
curl -sf "http://127.0.0.1:$port/hoversync-modal.js" -o "$work/run/got.js" ||
    fail "GET /hoversync-modal.js from the installed service failed"
cmp -s "$work/run/got.js" /usr/share/hoversync/web/hoversync-modal.js ||
    fail "the service did not serve /usr/share/hoversync/web/hoversync-modal.js"
kill "$serve_pid"
wait "$serve_pid" || fail "hoversync serve did not stop cleanly on SIGTERM: $(cat "$work/run/err")"
serve_pid=
ok "the installed service serves the installed modal files and stops on SIGTERM"

# ---- purge ----
t2=$(date +%s)
apt_get purge hoversync "${extras[@]}" >"$work/purge.log" 2>&1 ||
    {
        cat "$work/purge.log" >&2
        fail "apt-get purge hoversync failed"
    }
we_installed=0
rm -f "$marker"
installed && fail "hoversync is still installed after the purge"
for p in /usr/bin/hoversync /usr/bin/hover-sandbox "$unit" /etc/hoversync /usr/share/hoversync \
    /usr/share/man/man1/hoversync.1.gz; do
    [ ! -e "$p" ] || fail "$p is left after the purge"
done
echo "package: purged in $(($(date +%s) - t2)) s; total $(($(date +%s) - t0)) s"
ok "purged: nothing of the package is left"
