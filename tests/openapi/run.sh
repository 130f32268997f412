#!/usr/bin/env bash
# Lints docs/openapi.yaml, the HTTP API's contract, with Redocly CLI (@redocly/cli, pinned in
# package-lock.json, installed here by npm ci; never globally): the recommended rules with every
# warning an error (redocly.yaml), the few exceptions in .redocly.lint-ignore.yaml.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "run.sh: node and npm are needed (scripts/install-deps.sh --test)" >&2
    exit 1
fi
# No telemetry, no update check: the lint needs nothing but the files.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_UPDATE_NOTIFIER=1
if [ ! -d node_modules/@redocly/cli ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
echo "redocly $(node node_modules/@redocly/cli/bin/cli.js --version 2>/dev/null | tail -n 1)"
exec node node_modules/@redocly/cli/bin/cli.js lint --config redocly.yaml ../../docs/openapi.yaml
