"""Several processes of one installation on one store: two `serve` and a CLI `backfill --sync`
share Hover's request budget (no 429, no 60 s window over the limit, whoever sends); a connect
flow started on one `serve` completes on the other; a webhook delivery replayed to the other
`serve` is stored once."""
import os
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (HOVERSYNC_BIN, MAIN_ORG, Cli, Sandbox, Service,  # noqa: E402
                     api_requests)

CONNECTION = "org-%d" % MAIN_ORG
LIMIT = 30  # requests a minute: low, so that a minute of load is enough to exceed it


def busiest_window(entries, window_ms=60000):
    """The most requests Hover accepted (answered other than 429) in any window_ms."""
    ts = sorted(e["ts_ms"] for e in entries if e["status"] != 429)
    best, lo = 0, 0
    for hi, t in enumerate(ts):
        while ts[lo] <= t - window_ms:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


class OneBudget(unittest.TestCase):
    def test_two_serves_and_a_backfill_share_one_budget(self):
        """Together they ask far more than LIMIT a minute (two people viewing jobs on two
        instances, a backfill syncing in the background): Hover sees at most LIMIT in any 60 s
        and never answers 429."""
        sb = Sandbox("--rate-limit", str(LIMIT), jobs=60)
        env = {"HOVERSYNC_RATE_LIMIT": LIMIT, "HOVERSYNC_LOG_LEVEL": "info"}
        a = Service(sb, sb.tokens(), args=("--no-workers",), **env)
        b = Service(sb, None, args=("--no-workers",), db_dir=a.dir, **env)
        back = Cli(sb, None, HOVERSYNC_CONNECTION=CONNECTION, HOVERSYNC_DB=a.cli.db,
                   HOVERSYNC_DATA_DIR=os.path.join(a.dir, "data"), **env)
        backfill = None
        try:
            start = sb.last_seq()
            backfill = subprocess.Popen([HOVERSYNC_BIN, "backfill", "--sync"], env=back.env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        text=True)
            answered = {"a": 0, "b": 0}
            stop = time.time() + 75

            def viewer(name, svc, first):
                # The four showcase jobs in turn, one view every 6 s: each view is a Show Job at
                # Hover (the service caches one for 5 s), 20 a minute from the two viewers.
                i = first
                while time.time() < stop:
                    r = svc.get("/api/jobs/%d" % (15084301 + i % 4), timeout=90)
                    if r.status == 200:
                        answered[name] += 1
                    i += 2
                    time.sleep(6)

            threads = [threading.Thread(target=viewer, args=("a", a, 0)),
                       threading.Thread(target=viewer, args=("b", b, 1))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            backfill.send_signal(signal.SIGTERM)
            backfill.wait(timeout=120)
            entries = api_requests(sb.requests(start), path_prefix="/")
            statuses = [e["status"] for e in entries]
            self.assertNotIn(429, statuses)
            busiest = busiest_window(entries)
            print("busiest 60 s window: %d requests (limit %d), %d requests in all"
                  % (busiest, LIMIT, len(entries)), file=sys.stderr)
            self.assertLessEqual(busiest, LIMIT)
            # The load was real: the budget was used, and every process got some of it.
            self.assertGreaterEqual(busiest, LIMIT * 3 // 4)
            self.assertGreater(answered["a"], 0)
            self.assertGreater(answered["b"], 0)
            synced = a.cli.sql("SELECT COUNT(*) FROM artifacts")[0][0]
            self.assertGreater(synced, 0, "the backfill synced nothing")
        finally:
            if backfill and backfill.poll() is None:
                backfill.kill()
                backfill.wait()
            a.stop()
            b.stop()
            back.cleanup()
            b.cleanup()
            a.cleanup()
            sb.stop()


if __name__ == "__main__":
    unittest.main()
