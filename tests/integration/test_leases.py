"""Leases through real processes sharing one SQLite store and data directory
(docs/ARCHITECTURE.md "The work queue", "What is shared through the store"):

- a `hoversync worker` paused with SIGSTOP in the middle of a sync, past its work item's lease
  (--work-lease): a `serve` takes the item over and syncs the job; the worker, resumed with
  SIGCONT, finds its claim gone and its late result is refused (fenced), and the job is synced
  once (one successful result per model, no artifact row twice);
- reconciliation in two processes at once runs once per interval across both (its lease in the
  store), not once per interval in each.

Standard library only."""
import os
import signal
import sqlite3
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (HOVERSYNC_BIN, JOB_ALL_COMPLETE, SLOW, Sandbox, Service,  # noqa: E402
                     wait_for)
HOUSE = 17338401  # a complete model of JOB_ALL_COMPLETE


class Leases(unittest.TestCase):
    def setUp(self):
        self.sb = Sandbox(jobs=40)
        self.sb.admin("POST", "config", {"rate_limit": 0})
        self.tokens = self.sb.tokens()
        self.services = []
        self.workers = []

    def tearDown(self):
        for proc, err in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            proc.stdout.close()
            err.close()
        for svc in self.services:
            svc.stop()
        for svc in self.services:
            svc.cleanup()
        self.sb.stop()

    def serve(self, *args, db_dir=None):
        svc = Service(self.sb, self.tokens, db_dir=db_dir,
                      args=["--rate-limit", 0, *args], HOVERSYNC_LOG_LEVEL="info")
        self.services.append(svc)
        return svc

    def worker(self, svc, *args):
        """`hoversync worker` on svc's store and data directory; (process, stderr path)."""
        path = os.path.join(svc.cli.dir, "worker%d.stderr" % len(self.workers))
        err = open(path, "w")
        proc = subprocess.Popen([HOVERSYNC_BIN, "worker", "--rate-limit", "0", *map(str, args)],
                                env=svc.cli.env, stdout=subprocess.PIPE, stderr=err, text=True)
        self.workers.append((proc, err))
        self.assertEqual(proc.stdout.readline().strip(), "hoversync worker running")
        return proc, path

    @staticmethod
    def text(path):
        with open(path) as f:
            return f.read()

    def pause_outside_a_write(self, proc, db):
        """SIGSTOP, where the process holds no write transaction of the SQLite file (paused
        inside one, it would hold every other process's writes: SQLite has one writer)."""
        for _ in range(100):
            proc.send_signal(signal.SIGSTOP)
            con = sqlite3.connect(db, timeout=0.5, isolation_level=None)
            try:
                con.execute("BEGIN IMMEDIATE")
                con.execute("ROLLBACK")
                return
            except sqlite3.OperationalError:
                proc.send_signal(signal.SIGCONT)
                time.sleep(0.01)
            finally:
                con.close()
        self.fail("the worker was always inside a write")

    def state(self, svc, sync_id):
        r = svc.get("/api/syncs/" + sync_id)
        self.assertEqual(r.status, 200, r.body)
        return r.json

    def test_a_paused_worker_is_taken_over_and_its_late_result_refused(self):
        front = self.serve("--no-workers")
        # The worker's download of the model is slow: it is mid-sync when it is paused.
        self.sb.fault(path="/api/v3/models/%d/*" % HOUSE, latency_ms=4000 * SLOW)
        proc, log = self.worker(front, "--work-lease", 2, "--reconcile-interval", 0,
                                "--pending-interval", 0)
        r = front.request("POST", "/api/syncs", {"job_id": JOB_ALL_COMPLETE, "model_ids": [HOUSE]})
        self.assertEqual(r.status, 202, r.body)
        sync_id = r.json["id"]
        wait_for("the worker running the sync",
                 lambda: self.state(front, sync_id)["status"] == "running"
                 and "queue=claim" in self.text(log)
                 and front.cli.sql("SELECT COUNT(*) FROM sync_runs WHERE job_id = %d AND "
                                   "status = 'running'" % JOB_ALL_COMPLETE)[0][0] == 1)
        self.pause_outside_a_write(proc, front.cli.db)
        self.sb.clear_faults()
        # Past its lease (2 s; its heartbeat is stopped with it), a serve takes the item over.
        time.sleep(3)
        other = self.serve("--work-lease", 2, "--reconcile-interval", 0, db_dir=front.dir)
        st = wait_for("the sync finished by the other process",
                      lambda: (lambda s: s if s["status"] in ("done", "failed") else None)(
                          self.state(front, sync_id)), 60 * SLOW)
        self.assertEqual((st["status"], st["result"]), ("done", "synced"), st)
        self.assertIn("queue=claim conn=org-463605 job=%d" % JOB_ALL_COMPLETE,
                      other.read_stderr())

        # Resumed: its claim is gone, its writes are refused.
        proc.send_signal(signal.SIGCONT)
        wait_for("the resumed worker fenced",
                 lambda: "events=fenced" in self.text(log), 60 * SLOW)
        self.assertIn("job=%d" % JOB_ALL_COMPLETE,
                      [ln for ln in self.text(log).splitlines() if "events=fenced" in ln][0])
        proc.terminate()
        self.assertEqual(proc.wait(timeout=60), 0, self.text(log))

        # Synced once: one successful result per model, no artifact twice, the sync as it was.
        rows = front.cli.sql("SELECT r.model_id, COUNT(*) FROM sync_results r JOIN sync_runs s "
                             "ON s.id = r.run_id WHERE s.job_id = %d AND r.result = 'synced' "
                             "GROUP BY r.model_id" % JOB_ALL_COMPLETE)
        self.assertIn(HOUSE, [m for m, _ in rows])
        self.assertEqual([n for _, n in rows], [1] * len(rows), rows)
        self.assertEqual(front.cli.sql("SELECT model_id, kind FROM artifacts GROUP BY model_id, "
                                       "kind HAVING COUNT(*) > 1"), [])
        self.assertGreater(front.cli.sql("SELECT COUNT(*) FROM artifacts WHERE model_id = %d"
                                         % HOUSE)[0][0], 0)
        again = self.state(front, sync_id)
        self.assertEqual((again["status"], again["result"]), ("done", "synced"), again)
        self.assertEqual(again["models"][0]["artifacts_done"], again["models"][0]["artifacts_total"])
        self.assertEqual(other.get(again["records"]["pdf"]).status, 200)

    def test_reconciliation_runs_once_per_interval_across_processes(self):
        interval = 1
        start = time.time()
        a = self.serve("--reconcile-interval", interval)
        _, log = self.worker(a, "--reconcile-interval", interval)
        # Both look every quarter interval; the pass's lease lets one of them run it per interval.
        fence = "SELECT fence FROM leases WHERE name = 'duty:reconcile'"
        wait_for("two passes", lambda: (a.cli.sql(fence) or [(0,)])[0][0] >= 2, 60 * SLOW)
        time.sleep(4 * interval)
        for proc, _ in self.workers:
            proc.terminate()
            self.assertEqual(proc.wait(timeout=60), 0)
        a.stop()
        elapsed = time.time() - start
        # The passes each process ran, by its own log.
        passes = [text.count("reconcile=pass") for text in (a.read_stderr(), self.text(log))]
        self.assertEqual(sum(passes), a.cli.sql(fence)[0][0], passes)
        lists = [e for e in self.sb.requests() if e.get("listener", "api") == "api"
                 and e["method"] == "GET" and e["path"] == "/api/v3/jobs"]
        self.assertTrue(lists, "no reconciliation pass asked Hover")
        # Passes are an interval apart at least, whichever process runs them: each process alone
        # would make about as many again.
        self.assertLessEqual(sum(passes), elapsed / interval + 1,
                             "%s passes in %.1f s at %d s" % (passes, elapsed, interval))

if __name__ == "__main__":
    unittest.main(verbosity=2)
