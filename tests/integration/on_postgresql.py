#!/usr/bin/python3
"""The integration tests of search, show, sync, export, serve and webhooks on PostgreSQL: run by
tests/support/pg_cluster.sh (meson test `integration-postgresql`), which starts a throw-away
cluster and sets HS_TEST_PG_URL; this sets HS_TEST_INTEGRATION_STORE=postgresql, so that the harness gives every
store a fresh database of that cluster instead of a SQLite file. Each file runs as it does on
SQLite; the time of each is printed. Exit status 1 if any failed."""
import os
import subprocess
import sys
import time

FILES = [
    "test_cli.py",             # search, show, export, tokens
    "test_sync.py",            # sync
    "test_api.py",             # serve: the HTTP API
    "test_webhooks_intake.py",  # webhooks: intake, registration, verification
    "test_webhooks_e2e.py",     # webhooks end to end, worker processes, CRM outbox
]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    status = 0
    for name in FILES:
        start = time.monotonic()
        env = dict(os.environ, HS_TEST_INTEGRATION_STORE="postgresql")
        rc = subprocess.run([sys.executable, os.path.join(here, name)], cwd=here,
                            env=env).returncode
        print("integration-postgresql: %s %s in %.1f s"
              % (name, "passed" if rc == 0 else "FAILED", time.monotonic() - start), flush=True)
        status = status or (1 if rc else 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
