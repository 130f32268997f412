"""The one work queue through real processes (docs/ARCHITECTURE.md "The work queue"): the sandbox
and `hoversync serve` processes sharing one SQLite file and data directory.

- a sync accepted by POST /api/syncs survives a kill -9 of the service before any worker took
  it, and one killed while a worker was running it: the next start syncs it, and GET
  /api/syncs/{id} shows it;
- the progress of a sync is served by another process on the same store (serve --no-workers
  beside the serve whose workers run it): GET /api/syncs/{id} and its event stream;
- "sync when ready" without a webhook: the pending pass polls the job (at --pending-interval
  here); with a healthy webhook: no polling Show Job at all, the model-state-changed event
  brings the model in;
- one sync, one Show Job: the pass uses the job that POST /api/syncs read to check it;
- `backfill --sync` through the queue: the listed jobs synced without a Show Job each (their
  listing is the items' payload), a `serve` on the same store taking some of the items.

Standard library only."""
import http.client
import json
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (HOVERSYNC_BIN, JOB_ALL_COMPLETE, JOB_PROCESSING, SLOW,  # noqa: E402
                     Sandbox, Service, free_port, wait_for)
HOUSE, GARAGE = 17338401, 17338402  # complete models of JOB_ALL_COMPLETE
HARBOR_HOUSE, HARBOR_GARAGE = 17338407, 17338408  # JOB_PROCESSING: complete, processing


class Queue(unittest.TestCase):
    def setUp(self):
        self.sb = Sandbox(jobs=40)
        self.sb.admin("POST", "config", {"rate_limit": 0})
        self.tokens = self.sb.tokens()
        self.services = []

    def tearDown(self):
        for svc in self.services:
            svc.stop()
        for svc in self.services:
            svc.cleanup()
        self.sb.stop()

    def serve(self, *args, db_dir=None):
        svc = Service(self.sb, self.tokens, db_dir=db_dir,
                      args=["--reconcile-interval", 0, "--rate-limit", 0, *args],
                      HOVERSYNC_LOG_LEVEL="info")
        self.services.append(svc)
        return svc

    def kill(self, svc):
        svc.proc.send_signal(signal.SIGKILL)
        svc.proc.wait()

    def sync(self, svc, body):
        r = svc.request("POST", "/api/syncs", body)
        self.assertEqual(r.status, 202, r.body)
        return r.json["id"]

    def state(self, svc, sync_id):
        r = svc.get("/api/syncs/" + sync_id)
        self.assertEqual(r.status, 200, r.body)
        return r.json

    def finished(self, svc, sync_id, timeout=60):
        return wait_for("sync %s finished" % sync_id,
                        lambda: (lambda s: s if s["status"] in ("done", "failed") else None)(
                            self.state(svc, sync_id)), timeout)

    def show_jobs(self, job_id, since):
        return [e for e in self.sb.requests(since) if e.get("listener", "api") == "api"
                and e["method"] == "GET" and e["path"] == "/api/v3/jobs/%d" % job_id]

    def test_an_accepted_sync_survives_kill_9(self):
        # 1. No worker ever took it: answered, then the process is gone.
        a = self.serve("--no-workers")
        sync_id = self.sync(a, {"job_id": JOB_ALL_COMPLETE, "model_ids": [HOUSE]})
        self.assertEqual(self.state(a, sync_id)["status"], "queued")
        self.kill(a)
        b = self.serve(db_dir=a.dir)
        st = self.finished(b, sync_id)
        self.assertEqual((st["status"], st["result"]), ("done", "synced"), st)
        self.assertEqual(st["models"][0]["result"], "synced")
        self.assertRegex(st["records"]["pdf"], r"^/files/[0-9a-f]{64}$")
        self.assertEqual(b.get(st["records"]["pdf"]).status, 200)

        # 2. Killed while a worker was running it (slow artifacts of a model never synced): the
        # next start takes the item over (its lease was this host's dead process) and finishes
        # the sync.
        self.sb.fault(path="/api/v3/models/%d/*" % HARBOR_HOUSE, latency_ms=400)
        sync_id = self.sync(b, {"job_id": JOB_PROCESSING, "model_ids": [HARBOR_HOUSE]})
        wait_for("the sync running", lambda: self.state(b, sync_id)["status"] == "running")
        self.kill(b)
        self.sb.clear_faults()
        c = self.serve(db_dir=a.dir)
        st = self.finished(c, sync_id)
        self.assertEqual((st["status"], st["result"]), ("done", "synced"), st)
        self.assertEqual(st["models"][0]["artifacts_done"], st["models"][0]["artifacts_total"])
        rows = c.cli.sql("SELECT model_id, kind, COUNT(*) FROM artifacts GROUP BY model_id, "
                         "kind HAVING COUNT(*) > 1")
        self.assertEqual(rows, [])

    def stream(self, svc, sync_id, timeout=60):
        """The progress stream of a sync until it ends: [(event, data)]."""
        conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=timeout * SLOW)
        conn.request("GET", "/api/syncs/%s/events" % sync_id,
                     headers={"Authorization": "Bearer " + svc.api_key})
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        events, event = [], None
        while True:
            line = resp.readline()
            if not line:
                break
            line = line.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append((event, json.loads(line[6:])))
        conn.close()
        return events

    def test_progress_is_served_by_another_process(self):
        # every artifact, one at a time: enough slow downloads for the stream to see the sync
        # part-way
        worker = self.serve("--artifacts", "all", "--download-slots", "1")
        reader = self.serve("--no-workers", db_dir=worker.dir)
        self.sb.fault(path="/api/v3/models/%d/*" % HOUSE, latency_ms=150)
        # Asked on the process without workers: the other one runs it, this one follows it.
        sync_id = self.sync(reader, {"job_id": JOB_ALL_COMPLETE, "model_ids": [HOUSE]})
        events = self.stream(reader, sync_id)
        names = [e for e, _ in events]
        self.assertEqual(names[-1], "done", names)
        self.assertGreaterEqual(names.count("progress"), 3, names)  # queued, running..., done
        versions = [d["version"] for e, d in events if e == "progress"]
        self.assertEqual(versions, sorted(set(versions)))
        done = [d["models"][0]["artifacts_done"] for e, d in events if e == "progress"]
        self.assertTrue(any(0 < n < done[-1] for n in done), done)  # seen part-way
        final = events[-1][1]
        self.assertEqual((final["status"], final["result"]), ("done", "synced"))
        self.assertEqual(self.state(worker, sync_id), self.state(reader, sync_id))
        # A sync asked on the worker's process reads the same from the other one.
        sync_id = self.sync(worker, {"job_id": JOB_ALL_COMPLETE, "model_ids": [GARAGE]})
        st = self.finished(reader, sync_id)
        self.assertEqual((st["status"], st["result"]), ("done", "synced"), st)
        self.assertIn("queue=claim", worker.read_stderr())
        self.assertNotIn("queue=claim", reader.read_stderr())

    def when_ready(self, svc):
        """The harbor job's complete model now, its processing garage when ready."""
        sync_id = self.sync(svc, {"job_id": JOB_PROCESSING, "model_ids": [HARBOR_HOUSE],
                                  "when_ready": [HARBOR_GARAGE]})
        st = self.finished(svc, sync_id)
        self.assertEqual(st["models"][1]["result"], "pending", st)
        return sync_id

    def test_a_sync_asks_hover_for_the_job_once(self):
        svc = self.serve()
        # POST /api/syncs reads the job to check the selection; the pass syncs from that reading.
        seq = self.sb.last_seq()
        sync_id = self.sync(svc, {"job_id": JOB_ALL_COMPLETE, "model_ids": [HOUSE, GARAGE]})
        st = self.finished(svc, sync_id)
        self.assertEqual((st["status"], st["result"]), ("done", "synced"), st)
        self.assertEqual([m["result"] for m in st["models"]], ["synced", "synced"])
        self.assertEqual(len(self.show_jobs(JOB_ALL_COMPLETE, seq)), 1)
        # A job read earlier (a view of it, seconds before the sync) is checked from that
        # reading and not handed to the pass, which reads the job afresh: again one Show Job.
        self.assertEqual(svc.get("/api/jobs/%d" % JOB_PROCESSING).status, 200)
        time.sleep(6)
        seq = self.sb.last_seq()
        sync_id = self.sync(svc, {"job_id": JOB_PROCESSING, "model_ids": [HARBOR_HOUSE]})
        st = self.finished(svc, sync_id)
        self.assertEqual((st["status"], st["result"]), ("done", "synced"), st)
        self.assertEqual(len(self.show_jobs(JOB_PROCESSING, seq)), 1)

    def test_sync_when_ready_without_a_webhook_is_polled(self):
        svc = self.serve("--pending-interval", 1)
        seq = self.sb.last_seq()
        sync_id = self.when_ready(svc)
        time.sleep(4)
        # The modal's own pass, then a poll about every second (the cap here).
        self.assertGreaterEqual(len(self.show_jobs(JOB_PROCESSING, seq)), 3)
        self.sb.admin("POST", "models/%d" % HARBOR_GARAGE, {"state": "complete"})
        st = wait_for("the garage synced", lambda: (lambda s: s if s["models"][1]["result"] ==
                                                    "synced" else None)(self.state(svc, sync_id)))
        self.assertEqual(st["result"], "synced")

    def test_sync_when_ready_with_a_healthy_webhook_costs_no_poll(self):
        port = free_port()
        url = "http://127.0.0.1:%d" % port
        svc = self.serve("--listen", "127.0.0.1:%d" % port, "--public-url", url,
                         "--pending-interval", 1)
        r = svc.cli.run("webhooks", "register", "--public-url", url, "--wait", 20 * SLOW,
                        timeout=60 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)
        status = svc.get("/api/status").json
        self.assertTrue(any(h["healthy"] for h in status["webhooks"]), status)
        seq = self.sb.last_seq()
        sync_id = self.when_ready(svc)
        after_sync = self.sb.last_seq()
        time.sleep(4)
        self.assertEqual(self.show_jobs(JOB_PROCESSING, after_sync), [])
        # The modal's own: the check of POST /api/syncs, whose reading its pass uses.
        self.assertEqual(len(self.show_jobs(JOB_PROCESSING, seq)), 1)
        # Hover finishes the garage and says so: the event brings it in.
        self.sb.admin("POST", "models/%d" % HARBOR_GARAGE, {"state": "complete"})
        self.sb.admin("POST", "jobs/%d/events" % JOB_PROCESSING,
                      {"events": ["model-state-changed"]})
        st = wait_for("the garage synced", lambda: (lambda s: s if s["models"][1]["result"] ==
                                                    "synced" else None)(self.state(svc, sync_id)))
        self.assertEqual(st["result"], "synced")

    def test_backfill_syncs_through_the_queue(self):
        import subprocess
        svc = self.serve()  # its workers take some of the backfill's items
        self.sb.fault(path="/api/v3/models/*", latency_ms=20)
        seq = self.sb.last_seq()
        env = dict(svc.cli.env, HOVERSYNC_RATE_LIMIT="0", HOVERSYNC_EVENT_WORKERS="1")
        r = subprocess.run([HOVERSYNC_BIN, "backfill", "--sync", "--state", "completed"],
                           env=env, capture_output=True, text=True, timeout=300 * SLOW)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("models synced, 0 models not synced", r.stdout)
        sql = svc.cli.sql
        self.assertEqual(sql("SELECT COUNT(*) FROM work_items"), [(0,)])
        complete = sql("SELECT COUNT(*) FROM models m JOIN jobs j ON j.id = m.job_id WHERE "
                       "m.state = 'complete' AND j.reconstruction_state = 'completed'")[0][0]
        synced = sql("SELECT COUNT(*) FROM selections WHERE status = 'synced'")[0][0]
        self.assertGreater(synced, 0)
        self.assertGreaterEqual(synced, complete)
        self.assertGreater(sql("SELECT COUNT(*) FROM sync_runs WHERE trigger = 'backfill'")[0][0],
                           0)
        # The listing was each item's payload: List Jobs pages, no Show Job.
        shows = [e for e in self.sb.requests(seq) if e.get("listener", "api") == "api" and
                 e["method"] == "GET" and e["path"].startswith("/api/v3/jobs/")]
        self.assertEqual(shows, [])
        self.assertIn("reason=backfill", svc.read_stderr())


if __name__ == "__main__":
    unittest.main()
