"""The webhook-driven flow end to end (docs/WEBHOOKS.md), through real processes on loopback: the
sandbox with its webhooks and test jobs (reconstructions of 1 s), `hoversync serve` with its
webhook registered by `hoversync webhooks register`, and a CRM endpoint (http.server in a thread)
that checks every notification's signature. Nobody asks for a sync: test jobs end up synced.
The sandbox's rate limit and the service's budget are lifted (the budget has its unit tests and
bench/event_to_synced.py).

- a test job with 3 complete models: all 3 synced by the event worker (trigger "webhook");
- 1 and 2 failed models: only the complete ones synced;
- duplicated, reordered and unknown deliveries: every model downloaded once, one notification
  per change;
- every delivery dropped: reconciliation (a second service, --reconcile-interval 1) syncs the job;
- kill -9 of the service while a burst of jobs reconstructs, restart: every event accepted before
  the kill ends processed, every job synced, artifact rows unique;
- the CRM endpoint answering 503 for a while: every notification delivered once it is back, once
  per change, in order per job, retried with the same idempotency key;
- serve --no-workers and a separate `hoversync worker` process on the same SQLite file, with the
  sandbox signing as Hover's docs describe (api_auth 1.x: no method, Content-MD5);
- Hover's verify endpoint slow (longer than the sandbox waits for a delivery's answer): the
  verification code is still acknowledged at once, and the webhook verified in the background.

The sandbox signs as api_auth 2.5 does (method first, X-Authorization-Content-SHA256,
HMAC-SHA256) except where a test says otherwise; test 2 uses HMAC-SHA512 and an access id that
is no webhook id (the org's name).

Standard library only."""
import hashlib
import hmac
import http.server
import json
import os
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (HOVERSYNC_BIN, MAIN_ORG, Sandbox, Service, free_port,  # noqa: E402
                     on_postgresql, store_location, wait_for)

SECRET = "crm-shared-secret-for-tests"
SLOW = 3 if os.environ.get("HOVERSYNC_SANITIZED") else 1
# Artifacts of a complete model of a test job (deliverable 3): measurements JSON in 4 versions,
# PDF, xlsx, 2 CAD exports, and 2-4 photos.
MIN_ARTIFACTS = 8


class Crm:
    """A CRM endpoint: answers `status` (200 unless told otherwise), checks the signature of every
    POST and records it: (status answered, idempotency key, payload)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.status = 200
        self.posts = []
        self.bad_signatures = 0
        crm = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ts = self.headers.get("X-Hoversync-Timestamp", "")
                sig = self.headers.get("X-Hoversync-Signature", "")
                want = "v1=" + hmac.new(SECRET.encode(), ts.encode() + b"." + body,
                                        hashlib.sha256).hexdigest()
                ok = hmac.compare_digest(sig, want) and abs(time.time() - int(ts or 0)) < 300
                with crm.lock:
                    status = crm.status if ok else 401
                    if not ok:
                        crm.bad_signatures += 1
                    crm.posts.append((status, self.headers.get("Idempotency-Key"),
                                      json.loads(body)))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/hoversync" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def acked(self, job_id=None):
        """(key, payload) of the notifications answered 2xx, in arrival order."""
        with self.lock:
            return [(k, p) for s, k, p in self.posts
                    if s < 300 and (job_id is None or p["job_id"] == job_id)]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class WebhooksEndToEnd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox(jobs=40)
        cls.sb.admin("POST", "config", {"rate_limit": 0, "reconstruction_seconds": 1,
                                        "webhook_retry_base_ms": 200,
                                        "webhook_signer": "2.5-sha256"})
        cls.crm = Crm()
        cls.tokens = cls.sb.tokens()
        cls.port = free_port()
        cls.svc = cls.start_service(cls.port)
        cls.register(cls.svc, cls.port)

    @classmethod
    def start_service(cls, port, db_dir=None, reconcile=0, extra=()):
        url = "http://127.0.0.1:%d" % port
        return Service(cls.sb, cls.tokens, db_dir=db_dir,
                       args=["--listen", "127.0.0.1:%d" % port, "--public-url", url,
                             "--crm-endpoint", cls.crm.url, "--reconcile-interval", reconcile,
                             "--pending-interval", 0, "--rate-limit", 0, *extra],
                       HOVERSYNC_CRM_SECRET=SECRET, HOVERSYNC_OUTBOX_RETRY_BASE_MS=100,
                       HOVERSYNC_LOG_LEVEL="info")

    @classmethod
    def register(cls, svc, port):
        r = svc.cli.run("webhooks", "register", "--public-url", "http://127.0.0.1:%d" % port,
                        "--wait", 20 * SLOW, "--json", timeout=60 * SLOW)
        assert r.returncode == 0, "register: %s %s %s" % (r.returncode, r.stdout, r.stderr)
        return json.loads(r.stdout)

    @classmethod
    def tearDownClass(cls):
        rc = cls.svc.stop()
        err = cls.svc.read_stderr()
        cls.svc.cleanup()
        cls.crm.stop()
        cls.sb.stop()
        assert rc == 0, "hoversync serve exited with %s: %s" % (rc, err[-3000:])

    # ---- helpers ----
    def sql(self, q, args=(), svc=None):
        return (svc or self.svc).cli.sql(q, args)

    def new_test_job(self, failed=0):
        status, _, out = self.sb.call(
            "POST", "/api/v3/jobs/test_job", {"failed_models_count": failed},
            headers={"Authorization": "Bearer " + self.tokens["access_token"]})
        self.assertEqual(status, 200, out)
        return out["job_id"]

    def job_models(self, job_id):
        tok = self.tokens["access_token"]
        status, _, job = self.sb.call("GET", "/api/v3/jobs/%d" % job_id,
                                      headers={"Authorization": "Bearer " + tok})
        self.assertEqual(status, 200)
        return {m["id"]: m["state"] for m in job["models"]}

    def synced_models(self, job_id, svc=None):
        return {r[0] for r in self.sql(
            "SELECT m.id FROM models m WHERE m.job_id = ? AND m.synced_updated_at IS NOT NULL",
            (job_id,), svc)}

    def wait_synced(self, job_id, want, svc=None, timeout=30):
        """Waits until exactly the models `want` are synced and Hover's job is final."""
        def done():
            return self.synced_models(job_id, svc) == set(want) and \
                self.sql("SELECT COUNT(*) FROM work_items WHERE job_id = ?", (job_id,),
                         svc)[0][0] == 0
        try:
            wait_for("job %d synced" % job_id, done, timeout)
        except AssertionError:
            raise AssertionError("job %d not synced: synced %s of %s; work %s; events %s; log %s"
                                 % (job_id, self.synced_models(job_id, svc), sorted(want),
                                    self.sql("SELECT * FROM work_items", (), svc),
                                    self.sql("SELECT id, event, status FROM webhook_events "
                                             "WHERE job_id = ?", (job_id,), svc),
                                    "\n".join(l for l in (svc or self.svc).read_stderr()
                                              .splitlines() if "sync=artifact" not in l)[-4000:]))

    def quiet(self, svc=None, timeout=30):
        """Waits until the sandbox has nothing left to deliver, the service no work item and no
        undelivered notification."""
        def q():
            hooks = self.sb.admin("GET", "webhooks")["webhooks"]
            pending = sum(h["pending"] for h in hooks if not h["deleted"])
            work = self.sql("SELECT COUNT(*) FROM work_items", (), svc)[0][0]
            out = self.sql("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL", (), svc)[0][0]
            return pending == 0 and work == 0 and out == 0
        try:
            wait_for("quiet", q, timeout)
        except AssertionError:
            raise AssertionError("not quiet: sandbox %s; work %s; outbox %s; log %s" % (
                [(h["id"], h["pending"]) for h in self.sb.admin("GET", "webhooks")["webhooks"]],
                self.sql("SELECT * FROM work_items", (), svc),
                self.sql("SELECT id, job_id, attempts, last_error FROM outbox WHERE "
                         "delivered_at IS NULL", (), svc),
                (svc or self.svc).read_stderr()[-2000:]))
        time.sleep(0.3)
        return True

    def fetch_counts(self, job_id, svc=None):
        """{model id: number of sync results that downloaded something}."""
        return dict(self.sql(
            "SELECT r.model_id, COUNT(*) FROM sync_results r JOIN sync_runs s ON s.id = r.run_id "
            "WHERE s.job_id = ? AND r.artifacts_fetched > 0 GROUP BY r.model_id", (job_id,), svc))

    def check_notifications(self, job_id, svc=None):
        """One acknowledged notification per sync run that downloaded something, each with its
        own key, in cursor order."""
        runs = self.sql(
            "SELECT COUNT(DISTINCT s.id) FROM sync_runs s JOIN sync_results r ON r.run_id = s.id "
            "WHERE s.job_id = ? AND r.artifacts_fetched > 0", (job_id,), svc)[0][0]
        acked = self.crm.acked(job_id)
        keys = [k for k, _ in acked]
        self.assertEqual(len(set(keys)), len(keys), "a notification was acknowledged twice")
        self.assertGreaterEqual(runs, 1)
        self.assertEqual(len(acked), runs)
        cursors = [p["cursor"] for _, p in acked]
        self.assertEqual(cursors, sorted(cursors))
        for _, p in acked:
            self.assertEqual(p["type"], "hoversync.job.synced")
            self.assertTrue(p["records_url"].startswith("/api/records?since="))
        return acked

    # ---- the tests (run in name order, on one service) ----
    def test_1_test_job_synced_without_user_action(self):
        job = self.new_test_job()
        models = wait_for("reconstruction", lambda: (lambda m: m if set(m.values()) == {"complete"}
                                                      else None)(self.job_models(job)))
        self.assertEqual(len(models), 3)
        self.wait_synced(job, models.keys())
        self.quiet()
        for m in models:
            n = self.sql("SELECT COUNT(*) FROM artifacts WHERE model_id = ?", (m,))[0][0]
            self.assertGreaterEqual(n, MIN_ARTIFACTS)
        triggers = {r[0] for r in self.sql("SELECT trigger FROM sync_runs WHERE job_id = ?",
                                           (job,))}
        self.assertEqual(triggers, {"webhook"})
        self.assertEqual({r[0] for r in self.sql(
            "SELECT status FROM selections WHERE job_id = ?", (job,))}, {"synced"})
        # Every event about the job was processed; the ones of unknown types are not its work.
        statuses = dict(self.sql("SELECT status, COUNT(*) FROM webhook_events WHERE job_id = ? "
                                 "GROUP BY status", (job,)))
        self.assertEqual(set(statuses), {"processed"}, statuses)
        self.assertGreaterEqual(statuses["processed"], 7)  # 3 created, 3 changed, 1 job
        self.assertTrue(all(n == 1 for n in self.fetch_counts(job).values()))
        self.check_notifications(job)
        self.assertEqual(self.crm.bad_signatures, 0)

    def test_2_failed_models_only_complete_ones_sync(self):
        self.sb.admin("POST", "config", {"webhook_signer": "2.5-sha512",
                                         "webhook_access_id": "name"})
        self.addCleanup(self.sb.admin, "POST", "config", {"webhook_signer": "2.5-sha256",
                                                          "webhook_access_id": "webhook-id"})
        one, two = self.new_test_job(failed=1), self.new_test_job(failed=2)
        for job, n_complete in ((one, 2), (two, 1)):
            models = wait_for("reconstruction", lambda j=job: (
                lambda m: m if "processing" not in m.values() and "uploading" not in m.values()
                else None)(self.job_models(j)))
            complete = [m for m, s in models.items() if s == "complete"]
            self.assertEqual(len(complete), n_complete)
            self.wait_synced(job, complete)
        self.quiet()
        for job in (one, two):
            models = self.job_models(job)
            for m, state in models.items():
                n = self.sql("SELECT COUNT(*) FROM artifacts WHERE model_id = ?", (m,))[0][0]
                if state == "complete":
                    self.assertGreaterEqual(n, MIN_ARTIFACTS)
                else:
                    self.assertEqual(state, "failed")
                    self.assertEqual(n, 0, "a failed model got artifacts")
            self.check_notifications(job)

    def test_2b_every_read_stores_what_hover_says(self):
        """Each Show Job read updates the stored job and all its models, whatever it syncs: a
        model that failed after its siblings synced ends "failed" in the store (not the
        "processing" of the read that synced them), a job whose models all failed has its row,
        and the records feed lists both changes."""
        cursor = self.svc.cli.json("export")["cursor"]
        one = self.new_test_job(failed=1)
        status, _, out = self.sb.call(
            "POST", "/api/v3/jobs/test_job", {"state": "failed"},
            headers={"Authorization": "Bearer " + self.tokens["access_token"]})
        self.assertEqual(status, 200, out)
        all_failed = out["job_id"]
        for job in (one, all_failed):
            wait_for("reconstruction", lambda j=job: (
                lambda m: m if "processing" not in m.values() and "uploading" not in m.values()
                else None)(self.job_models(j)))

        def stored_as_hover(job):
            return dict(self.sql("SELECT id, state FROM models WHERE job_id = ?",
                                 (job,))) == self.job_models(job)
        try:
            for job in (one, all_failed):
                wait_for("job %d stored as Hover has it" % job, lambda j=job: stored_as_hover(j))
        finally:
            self.quiet()
        self.assertEqual(set(self.job_models(all_failed).values()), {"failed"})
        self.assertEqual(self.sql("SELECT reconstruction_state FROM jobs WHERE id = ?",
                                  (all_failed,)), [("failed",)])
        feed = self.svc.cli.json("export", "--since", cursor)
        self.assertIn(all_failed, [j["id"] for j in feed["jobs"]])
        failed_in_feed = {m["id"] for m in feed["models"] if m["state"] == "failed"}
        want = {m for job in (one, all_failed) for m, st in self.job_models(job).items()
                if st == "failed"}
        self.assertEqual(failed_in_feed & want, want)
        self.assertEqual(len(want), 4)  # one Shed, and the three of the failed job

    def test_3_duplicated_reordered_unknown_deliveries_change_nothing_twice(self):
        self.sb.admin("POST", "config", {"webhook_duplicate_rate": 1.0, "webhook_reorder": True,
                                         "webhook_unknown_events": True})
        try:
            jobs = [self.new_test_job(), self.new_test_job()]
            for job in jobs:
                wait_for("reconstruction", lambda j=job: set(self.job_models(j).values()) ==
                         {"complete"})
                self.wait_synced(job, self.job_models(job).keys())
            self.quiet()
        finally:
            self.sb.admin("POST", "config", {"webhook_duplicate_rate": 0, "webhook_reorder": False,
                                             "webhook_unknown_events": False})
        deliveries = self.sb.admin("GET", "deliveries?limit=20000")["deliveries"]
        for job in jobs:
            mine = [d for d in deliveries if d["job_id"] == job and d["result"] == "delivered"]
            self.assertTrue(any(d["copy_of"] for d in mine), "no duplicate was delivered")
            self.assertTrue(any("reordered" in d["fault"] for d in mine))
            # Each model was downloaded by exactly one sync; its artifact rows are unique.
            counts = self.fetch_counts(job)
            self.assertEqual(set(counts), set(self.job_models(job)))
            self.assertTrue(all(n == 1 for n in counts.values()), counts)
            dup = self.sql("SELECT model_id, kind, COUNT(*) FROM artifacts WHERE model_id IN "
                           "(SELECT id FROM models WHERE job_id = ?) GROUP BY model_id, kind "
                           "HAVING COUNT(*) > 1", (job,))
            self.assertEqual(dup, [])
            statuses = dict(self.sql("SELECT status, COUNT(*) FROM webhook_events WHERE "
                                     "job_id = ? GROUP BY status", (job,)))
            self.assertEqual(set(statuses), {"processed", "ignored"}, statuses)
            self.check_notifications(job)

    def test_4_dropped_deliveries_caught_by_reconciliation(self):
        import tempfile
        from harness import Cli
        # A store whose reconciliation starts now (not an hour back, which would sync the jobs
        # of the tests before: a fresh install does that, but it is not this test's point).
        db_dir = tempfile.mkdtemp(prefix="hs-reconcile-")
        prep = Cli(self.sb, HOVERSYNC_DB=store_location(db_dir))
        prep.db = store_location(db_dir)
        self.assertEqual(prep.run("export", "--since", "0").returncode, 0)
        prep.sql("INSERT INTO checkpoints (name, value, updated_at) VALUES (?, ?, %s)"
                 % ("now()" if on_postgresql() else "''"),
                 ("reconcile:org-%d" % MAIN_ORG, str(int(time.time()) - 2)))
        prep.cleanup()
        port = free_port()
        svc = self.start_service(port, db_dir=db_dir, reconcile=1)
        try:
            hook = self.register(svc, port)
            hook_id = hook.get("id") or hook.get("webhook", {}).get("id")
            self.sb.admin("POST", "config", {"webhook_drop_rate": 1.0})
            try:
                job = self.new_test_job()
                wait_for("reconstruction", lambda: set(self.job_models(job).values()) ==
                         {"complete"})
                self.wait_synced(job, self.job_models(job).keys(), svc=svc)
            finally:
                self.sb.admin("POST", "config", {"webhook_drop_rate": 0})
            self.assertEqual(self.sql("SELECT COUNT(*) FROM webhook_events WHERE job_id = ?",
                                      (job,), svc)[0][0], 0, "an event got through")
            dropped = [d for d in self.sb.admin("GET", "deliveries?limit=20000")["deliveries"]
                       if d["job_id"] == job]
            self.assertTrue(dropped and all(d["result"] == "dropped" for d in dropped))
            self.assertEqual({r[0] for r in self.sql(
                "SELECT trigger FROM sync_runs WHERE job_id = ?", (job,), svc)}, {"reconcile"})
            self.assertTrue(self.sql("SELECT value FROM checkpoints WHERE name LIKE "
                                     "'reconcile:%'", (), svc))
        finally:
            if hook_id:
                svc.cli.run("webhooks", "delete", hook_id)
            svc.stop()
            svc.cleanup()
            import shutil
            shutil.rmtree(db_dir, ignore_errors=True)

    def test_5_kill9_while_events_arrive_loses_nothing(self):
        cls = type(self)
        jobs = [self.new_test_job() for _ in range(4)]
        # Kill while a sync holds a work item (its lease would last 2 minutes) and events keep
        # arriving (models are still being reconstructed).
        wait_for("a claimed work item", lambda: self.sql(
            "SELECT COUNT(*) FROM work_items WHERE claimed_by IS NOT NULL")[0][0] > 0, 20)
        cls.svc.proc.send_signal(signal.SIGKILL)
        cls.svc.proc.wait()
        held = self.sql("SELECT COUNT(*) FROM work_items WHERE claimed_by IS NOT NULL")[0][0]
        accepted = {r[0] for r in self.sql("SELECT id FROM webhook_events WHERE status IN "
                                           "('accepted', 'processed')")}
        self.assertTrue(accepted, "no event had arrived before the kill")
        time.sleep(0.5)  # Hover's deliveries fail meanwhile and are retried
        old = cls.svc
        cls.svc = self.start_service(cls.port, db_dir=old.dir)
        old.proc.stdout.close()
        old.stderr.close()
        restarted = time.time()
        for job in jobs:
            wait_for("reconstruction", lambda j=job: set(self.job_models(j).values()) ==
                     {"complete"})
            self.wait_synced(job, self.job_models(job).keys())
        # The dead process's claims were freed at the restart, not after their lease.
        self.assertLess(time.time() - restarted, 60)
        if held:
            self.assertIn("events=release_dead", self.svc.read_stderr())
        self.quiet()
        left = self.sql("SELECT id, status FROM webhook_events WHERE id IN (%s) AND status != "
                        "'processed'" % ",".join(map(str, accepted)))
        self.assertEqual(left, [], "events accepted before the kill were not processed")
        for job in jobs:
            dup = self.sql("SELECT model_id, kind, COUNT(*) FROM artifacts WHERE model_id IN "
                           "(SELECT id FROM models WHERE job_id = ?) GROUP BY model_id, kind "
                           "HAVING COUNT(*) > 1", (job,))
            self.assertEqual(dup, [])
            for m in self.job_models(job):
                self.assertGreaterEqual(self.sql("SELECT COUNT(*) FROM artifacts WHERE "
                                                 "model_id = ?", (m,))[0][0], MIN_ARTIFACTS)
            # A message the CRM acknowledged just before the kill may come again after the
            # restart (docs/WEBHOOKS.md: drop repeats by key); a repeat is the same message, never
            # a second one for the same change.
            acked = self.crm.acked(job)
            self.assertGreaterEqual(len(acked), 1)
            first = {}
            for k, p in acked:
                self.assertEqual(p, first.setdefault(k, p), "two messages with one key")

    def test_6_crm_down_then_up_every_notification_once_in_order(self):
        before = len(self.crm.posts)
        self.crm.status = 503
        try:
            jobs = [self.new_test_job(), self.new_test_job()]
            for job in jobs:
                wait_for("reconstruction", lambda j=job: set(self.job_models(j).values()) ==
                         {"complete"})
                self.wait_synced(job, self.job_models(job).keys())
            wait_for("refused attempts", lambda: sum(
                1 for s, _, p in self.crm.posts[before:] if s == 503) >= 3)
            self.assertEqual([p for s, _, p in self.crm.posts[before:] if s < 300], [])
            undelivered = self.sql("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL")[0][0]
            self.assertGreaterEqual(undelivered, 2)
            time.sleep(1.5)
        finally:
            self.crm.status = 200
        self.quiet()
        for job in jobs:
            acked = self.check_notifications(job)
            refused = {k for s, k, p in self.crm.posts[before:] if s == 503 and p["job_id"] == job}
            self.assertTrue(refused <= {k for k, _ in acked},
                            "a retried notification changed its idempotency key")
            # In order per job: each one starts where the one before ended.
            for (_, a), (_, b) in zip(acked, acked[1:]):
                self.assertEqual(b["previous_cursor"], a["cursor"])
        rows = self.sql("SELECT MAX(attempts) FROM outbox")
        self.assertGreaterEqual(rows[0][0], 2)

    def test_7_worker_process_does_the_background_work(self):
        """serve --no-workers takes the deliveries; a `hoversync worker` process on the same
        SQLite file syncs and notifies; SIGTERM stops it cleanly."""
        import subprocess
        port = free_port()
        svc = self.start_service(port, extra=["--no-workers"])
        worker = None
        hook_id = None
        self.sb.admin("POST", "config", {"webhook_signer": "1.x"})
        self.addCleanup(self.sb.admin, "POST", "config", {"webhook_signer": "2.5-sha256"})
        try:
            hook_id = self.register(svc, port).get("id")
            job = self.new_test_job()
            wait_for("reconstruction", lambda: set(self.job_models(job).values()) == {"complete"})
            time.sleep(1.5)
            # Accepted and queued, but nobody syncs in the service.
            self.assertEqual(self.synced_models(job, svc), set())
            self.assertGreater(self.sql("SELECT COUNT(*) FROM work_items WHERE job_id = ?",
                                        (job,), svc)[0][0], 0)
            env = dict(svc.cli.env, HOVERSYNC_CRM_SECRET=SECRET)
            worker = subprocess.Popen(
                [HOVERSYNC_BIN,
                 "worker", "--crm-endpoint", self.crm.url, "--rate-limit", "0"],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.wait_synced(job, self.job_models(job).keys(), svc=svc)
            wait_for("notification", lambda: self.crm.acked(job))
            worker.send_signal(signal.SIGTERM)
            out, err = worker.communicate(timeout=30)
            self.assertEqual(worker.returncode, 0, err[-2000:])
            self.assertIn("hoversync worker running", out)
            self.assertEqual({r[0] for r in self.sql(
                "SELECT trigger FROM sync_runs WHERE job_id = ?", (job,), svc)}, {"webhook"})
        finally:
            if worker and worker.poll() is None:
                worker.kill()
                worker.communicate()
            if hook_id:
                svc.cli.run("webhooks", "delete", hook_id)
            svc.stop()
            svc.cleanup()

    def test_8_verification_answered_while_hover_is_slow(self):
        """Hover's verify endpoint answers after 11 s, past the 10 s the sandbox waits for a
        delivery's answer: the code is still acknowledged (the call is background work), and
        the webhook ends verified."""
        self.sb.admin("POST", "faults", {"path": "/api/v2/webhooks/*/verify",
                                         "latency_ms": 11000, "count": 1})
        hook_id = None
        try:
            r = self.svc.cli.run("webhooks", "register", "--force", "--public-url",
                                 "http://127.0.0.1:%d" % self.port, "--wait", 40 * SLOW,
                                 "--json", timeout=90 * SLOW)
            self.assertEqual(r.returncode, 0, (r.stdout, r.stderr))
            out = json.loads(r.stdout)
            hook_id = out["id"]
            self.assertTrue(out["verified_at"])
            codes = [d for d in self.sb.admin("GET", "deliveries?limit=100000")["deliveries"]
                     if d["webhook_id"] == hook_id and d["event"] == "webhook-verification-code"]
            self.assertTrue(codes)
            self.assertEqual({(d["result"], d["status"]) for d in codes}, {("delivered", 202)})
            self.assertEqual(self.sql("SELECT COUNT(*) FROM webhook_verifications WHERE "
                                      "webhook_id = ? AND status = 'verified'", (hook_id,))[0][0],
                             1)
        finally:
            if hook_id:
                self.svc.cli.run("webhooks", "delete", hook_id)


if __name__ == "__main__":
    unittest.main(verbosity=2)
