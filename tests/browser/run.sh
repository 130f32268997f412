#!/usr/bin/env bash
# Browser tests of the Hover import modal and the demo CRM page: installs the pinned npm packages
# (playwright-core only: it never downloads a browser), checks Debian's chromium, runs node's test
# runner on modal.test.mjs and mock.test.mjs. Real mode starts hover-sandbox and `hoversync serve`
# (HOVER_SANDBOX_BIN, HOVERSYNC_BIN; defaults: the first build tree that has them) for
# modal.test.mjs; mock.test.mjs (the error states only a stand-in can inject) always runs against
# tests/browser/mock-server.mjs. MOCK=1 runs modal.test.mjs against the mock too, for fast UI work,
# and skips its scenarios that need the real service; without MOCK=1 a skipped scenario fails
# the run, so that the suite never counts one that did not run.
# Screenshots: test-output/browser/ (test-output/browser/mock/ for MOCK=1).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

if [ ! -x /usr/bin/chromium ]; then
    echo "run.sh: /usr/bin/chromium is missing (scripts/install-deps.sh --test installs it)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "run.sh: node and npm are needed" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
if [ ! -d node_modules/playwright-core ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
# --test-timeout bounds each FILE's run in node 20 (not each scenario): modal.test.mjs's dozen
# scenarios take about a minute on a quiet machine and several on a loaded one, inside meson's
# 600 s for the whole test.
node --test --test-reporter=tap --test-concurrency=1 --test-timeout=420000 \
    modal.test.mjs mock.test.mjs 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
skipped=$(sed -n 's/^# skipped \([0-9][0-9]*\)$/\1/p' "$log" | tail -n 1)
if [ "$status" -eq 0 ] && [ "${MOCK:-}" != 1 ] && [ "${skipped:-0}" != 0 ]; then
    echo "run.sh: $skipped scenario(s) skipped: every one must run here" >&2
    status=1
fi
exit "$status"
