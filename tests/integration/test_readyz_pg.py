#!/usr/bin/python3
"""/readyz of a `hoversync serve` on a PostgreSQL store (run by tests/support/pg_cluster.sh, which
gives the cluster's URL and its restart command): 200 while the store answers; with the cluster
stopped, 503 "store_unreachable" while /healthz still answers 200 (the process is alive: a
restart would not mend the store); 200 again once the cluster is back. Standard library only."""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import wait_for  # noqa: E402

URL = os.environ.get("HS_TEST_PG_URL")
RESTART = os.environ.get("HS_TEST_PG_RESTART")


def stop_cluster():
    """The cluster's own pg_ctl, as its restart script runs it ("exec [runuser -u postgres --]
    BIN/pg_ctl -D DATA -l LOG ... restart"), told to stop instead: only -D matters for that."""
    with open(RESTART) as f:
        line = next(ln for ln in f.read().splitlines() if ln.startswith("exec "))
    head = line[len("exec "):].split(" -l ")[0]
    subprocess.run(head + " -m fast -w stop >/dev/null", shell=True, check=True)


class ReadyzPostgres(unittest.TestCase):
    def test_readyz_says_when_the_store_is_unreachable(self):
        self.assertTrue(URL and RESTART, "run through tests/support/pg_cluster.sh")
        sb = harness.Sandbox(jobs=10)
        svc = harness.Service(sb, sb.tokens(), args=["--no-workers"], HOVERSYNC_DB=URL)
        try:
            r = svc.get("/readyz", key=False)
            self.assertEqual((r.status, r.json["status"]), (200, "ready"), r.body)
            stop_cluster()
            r = svc.get("/readyz", key=False)
            self.assertEqual(r.status, 503, r.body)
            self.assertEqual(r.json["reason"], "store_unreachable")
            self.assertEqual(svc.get("/healthz", key=False).status, 200)
            subprocess.run([RESTART], check=True)
            wait_for("ready again", lambda: svc.get("/readyz", key=False).status == 200)
        finally:
            self.assertEqual(svc.stop(), 0, svc.read_stderr()[-3000:])
            svc.cleanup()
            sb.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
