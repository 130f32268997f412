#!/usr/bin/env bash
# The systemd unit as built (BUILD_ROOT/dist/hoversync.service): `systemd-analyze verify` finds
# nothing to say (directives, the command, the manual page it cites), it runs `hoversync serve`
# as a dynamic user with a state directory, secrets from an EnvironmentFile and restart on
# failure, and its sandboxing keeps `systemd-analyze security` exposure at 2.0 or below.
# systemd need not run: both commands work on a unit file. Exit 77 (skipped) without
# systemd-analyze.
set -uo pipefail
build=${BUILD_ROOT:?BUILD_ROOT is set by meson}
src=${SOURCE_ROOT:?SOURCE_ROOT is set by meson}
bin=${HOVERSYNC_BIN:?HOVERSYNC_BIN is set by meson}
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
command -v systemd-analyze >/dev/null || {
    echo "SKIP: systemd-analyze is not installed (scripts/install-deps.sh --package installs systemd)"
    exit 77
}

built="$build/dist/hoversync.service"
[ -f "$built" ] || fail "$built was not generated"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The unit names the installed binary; verify checks that the command exists, so the copy
# verified here runs the binary of this build. Its manual page is found through MANPATH.
exec_start=$(sed -n 's/^ExecStart=//p' "$built")
case $exec_start in
*/bin/hoversync" serve") ;;
*) fail "ExecStart is '$exec_start', not <bindir>/hoversync serve" ;;
esac
sed "s|^ExecStart=.*|ExecStart=$bin serve|" "$built" >"$work/hoversync.service"
mkdir -p "$work/man/man1"
cp "$src/man/hoversync.1" "$work/man/man1/"
if ! MANPATH="$work/man" systemd-analyze verify "$work/hoversync.service" >"$work/verify.log" 2>&1 ||
    [ -s "$work/verify.log" ]; then
    cat "$work/verify.log" >&2
    fail "systemd-analyze verify found problems"
fi
echo "ok: systemd-analyze verify: nothing to report"

want=(Type=exec DynamicUser=yes StateDirectory=hoversync "WorkingDirectory=%S/hoversync"
    Restart=on-failure ProtectSystem=strict NoNewPrivileges=yes PrivateTmp=yes ProtectHome=yes
    PrivateDevices=yes)
for line in "${want[@]}"; do
    grep -qxF "$line" "$built" || fail "the unit lacks $line"
done
grep -q "^EnvironmentFile=-/.*/hoversync/hoversync.env$" "$built" ||
    fail "the unit reads no secrets file"
grep -q "^RestrictAddressFamilies=" "$built" && grep -q "^SystemCallFilter=" "$built" ||
    fail "the unit restricts neither address families nor system calls"
echo "ok: dynamic user, state directory, secrets file, restart on failure, sandboxing"

systemd-analyze security --offline=true "$work/hoversync.service" >"$work/security.log" 2>&1
grep "Overall exposure" "$work/security.log"
systemd-analyze security --offline=true --threshold=20 "$work/hoversync.service" >/dev/null 2>&1 ||
    fail "exposure above 2.0: $(grep 'Overall exposure' "$work/security.log")"
echo "ok: exposure at 2.0 or below"
