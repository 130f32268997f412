#!/usr/bin/env bash
# Browser tests of the Hover import modal and the demo CRM page: installs the pinned npm packages
# (playwright-core only: it never downloads a browser), checks Debian's chromium, runs node's test
# runner. Real mode starts hover-sandbox and `hoversync serve` (HOVER_SANDBOX_BIN, HOVERSYNC_BIN;
# defaults: the first build tree that has them). MOCK=1 runs against tests/browser/mock-server.mjs.
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

exec node --test --test-concurrency=1 --test-timeout=180000 modal.test.mjs
