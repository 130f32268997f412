#!/usr/bin/env bash
# `meson install` into a staging directory (--destdir): the executables, the modal's files and
# the API's openapi.yaml under <datadir>/hoversync/web (where the binary looks by default), the
# manual pages, bash completion and the systemd unit, each where its consumer looks for it.
set -uo pipefail
build=${BUILD_ROOT:?BUILD_ROOT is set by meson}
src=${SOURCE_ROOT:?SOURCE_ROOT is set by meson}
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --no-rebuild --destdir "$dest" --quiet >"$dest.log" 2>&1 ||
    {
        cat "$dest.log" >&2
        rm -f "$dest.log"
        fail "meson install failed"
    }
rm -f "$dest.log"
# Where meson put things: the build's own directories.
dirs=$(meson introspect "$build" --buildoptions | python3 -c '
import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
unitdir = o["systemdunitdir"] or o["prefix"] + "/lib/systemd/system"
print(o["prefix"], o["bindir"], o["datadir"], o["mandir"], unitdir)')
read -r prefix bindir datadir mandir unitdir <<<"$dirs"
root="$dest$prefix"

for exe in hoversync hover-sandbox; do
    [ -x "$root/$bindir/$exe" ] || fail "$bindir/$exe is not installed"
done
for f in modal.html modal.js modal.css hoversync-modal.js demo/crm.html; do
    cmp -s "$root/$datadir/hoversync/web/$f" "$src/web/$f" ||
        fail "$datadir/hoversync/web/$f is not the source tree's web/$f"
done
[ ! -e "$root/$datadir/hoversync/web/README.md" ] || fail "web/README.md is installed"
cmp -s "$root/$datadir/hoversync/web/openapi.yaml" "$src/docs/openapi.yaml" ||
    fail "$datadir/hoversync/web/openapi.yaml is not the source tree's docs/openapi.yaml"
# The installed binary's default web directory is this one (compiled in from the prefix).
grep -q "default: $prefix/$datadir/hoversync/web" <<<"$("$root/$bindir/hoversync" --help)" ||
    fail "hoversync's default --web-dir is not $prefix/$datadir/hoversync/web"
for page in hoversync hover-sandbox; do
    [ -s "$root/$mandir/man1/$page.1" ] || fail "$mandir/man1/$page.1 is not installed"
done
for c in hoversync hover-sandbox; do
    [ -s "$root/$datadir/bash-completion/completions/$c" ] || fail "no bash completion for $c"
done
case $unitdir in
/*) unit="$dest$unitdir/hoversync.service" ;;
*) unit="$root/$unitdir/hoversync.service" ;;
esac
[ -s "$unit" ] || fail "hoversync.service is not installed in $unitdir"
grep -qx "ExecStart=$prefix/$bindir/hoversync serve" "$unit" ||
    fail "the unit does not run $prefix/$bindir/hoversync"
echo "ok: meson install staged $(find "$dest" -type f | wc -l) files under $prefix"
find "$dest" -type f | sed "s|^$dest||" | sort
