"""What an operator's probes, scrapers and process manager see of a running `hoversync serve`:

- /metrics has the webhook side's series and they move with what happens: deliveries counted
  by result (a good one, the same again, a forged one, a malformed one, an unknown event type),
  their intake time, the work queue's due and total items and the age of its oldest due item
  (read from the store, so a serve without workers sees the items pile up and age), the outbox's
  backlog, and the background Hover budget a second serve uses when it syncs those items; the
  page passes `promtool check metrics`;
- a CRM endpoint that answers 500 and then 200: the outbox's failed attempts rise while the
  notification stays in the backlog, then it is delivered and the backlog is empty again;
- background syncs queued beyond what a minute of a low --rate-limit allows: a background request
  is seen waiting for the budget, and the seconds waited add up;
- /healthz answers while the process does; /readyz answers 200 only with the store reachable
  and its schema current (a store behind this binary is 503 "migrations_pending"), and 503
  "draining" from the moment SIGTERM arrives;
- SIGTERM during a slow sync: new requests get 503, the sync runs out of --drain-timeout and is
  handed back (its lease released), the process exits 0, and a second serve finishes the sync
  long before the lease would have ended; nothing is lost. `hoversync worker` drains alike. A
  second SIGTERM ends the drain at once, with the item handed back all the same.

Standard library only, besides promtool (Debian's prometheus package)."""
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (JOB_ALL_COMPLETE, JOB_ONE_FAILED, JOB_PROCESSING, SLOW,  # noqa: E402
                     free_port, wait_for)
from test_webhooks_intake import signed  # noqa: E402
from test_webhooks_e2e import SECRET as CRM_SECRET, Crm  # noqa: E402

HOUSE = 17338401  # a complete model of JOB_ALL_COMPLETE
LONG_LEASE = 600  # seconds: a handed-back item must not wait for it


def write_sql(svc, query):
    """Changes the SQLite store behind a running service, as an operator's tool would."""
    con = sqlite3.connect(svc.cli.db)
    try:
        con.execute(query)
        con.commit()
    finally:
        con.close()


def series(text, name, labels=""):
    """The value of one sample of the page, or None."""
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else None


class Metrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = harness.Sandbox("--rate-limit", "0", jobs=40)
        cls.tokens = cls.sb.tokens()
        cls.others = []
        cls.front, cls.webhook_id = cls.webhook_front()

    @classmethod
    def webhook_front(cls):
        """A serve without workers and with its webhook registered: the work items the
        deliveries queue stay in its store, due. Returns it and the webhook's id."""
        port = free_port()
        front = harness.Service(cls.sb, cls.tokens,
                                args=["--listen", "127.0.0.1:%d" % port, "--no-workers"],
                                HOVERSYNC_PUBLIC_URL="http://127.0.0.1:%d" % port)
        r = front.cli.run("webhooks", "register", "--wait", str(20 * SLOW), "--json")
        if r.returncode != 0:
            front.stop()
            front.cleanup()
            raise AssertionError(r.stdout + r.stderr)
        return front, json.loads(r.stdout)["id"]

    @classmethod
    def tearDownClass(cls):
        for svc in [cls.front] + cls.others:
            svc.stop()
            svc.cleanup()
        cls.sb.stop()

    def page(self, svc=None):
        r = (svc or self.front).get("/metrics", key=False)
        self.assertEqual(r.status, 200, r.body)
        return r.body.decode()

    def deliver(self, body, headers, front=None):
        return harness.http_request((front or self.front).port, "POST", "/webhooks/hover", body,
                                    headers)

    def counts(self, svc):
        """The outbox's series of svc's page: (delivered, failed, backlog)."""
        text = self.page(svc)
        return (series(text, "hoversync_outbox_delivery_attempts_total", '{outcome="delivered"}'),
                series(text, "hoversync_outbox_delivery_attempts_total", '{outcome="failed"}'),
                series(text, "hoversync_outbox_backlog_messages"))

    def test_webhook_series_move_and_promtool_accepts_them(self):
        secret = self.front.cli.sql("SELECT hmac_secret FROM webhooks WHERE id = %d"
                                    % self.webhook_id)[0][0]
        wid = self.webhook_id
        before = self.page()
        counts = {}
        for result in ("accepted", "duplicate", "bad_signature", "malformed", "unknown_event"):
            counts[result] = series(before, "hoversync_webhook_events_total",
                                    '{result="%s"}' % result)
            self.assertIsNotNone(counts[result], result)
        intake = series(before, "hoversync_webhook_intake_duration_seconds_count")
        self.assertEqual(series(before, "hoversync_work_items_due"), 0)
        self.assertEqual(series(before, "hoversync_work_oldest_due_age_seconds"), 0)
        self.assertEqual(series(before, "hoversync_outbox_backlog_messages"), 0)

        good = json.dumps({"event": "job-state-changed-v2", "webhook_id": wid,
                           "job_id": JOB_ALL_COMPLETE, "state": "completed"}).encode()
        headers = signed(secret, wid, good)
        self.assertEqual(self.deliver(good, headers).status, 200)
        self.assertEqual(self.deliver(good, headers).json["status"], "duplicate")
        self.assertEqual(self.deliver(good, signed("Zm9yZ2Vk", wid, good)).status, 401)
        bad = b"{not json"
        self.assertEqual(self.deliver(bad, signed(secret, wid, bad)).status, 400)
        other = json.dumps({"event": "estimate-created", "webhook_id": wid}).encode()
        self.assertEqual(self.deliver(other, signed(secret, wid, other)).status, 200)

        time.sleep(1.1)  # the queued item ages past a second
        after = self.page()
        for result in counts:
            self.assertEqual(series(after, "hoversync_webhook_events_total",
                                    '{result="%s"}' % result), counts[result] + 1, result)
        self.assertEqual(series(after, "hoversync_webhook_intake_duration_seconds_count"),
                         intake + 5)
        self.assertEqual(series(after, "hoversync_webhook_intake_duration_seconds_bucket",
                                '{le="+Inf"}'), intake + 5)
        self.assertEqual(series(after, "hoversync_work_items_due"), 1)
        self.assertEqual(series(after, "hoversync_work_items"), 1)
        self.assertGreaterEqual(series(after, "hoversync_work_oldest_due_age_seconds"), 1)
        self.assertIsNotNone(series(after, "hoversync_budget_background_requests_total"))

        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool is missing: scripts/install-deps.sh --test "
                             "installs Debian's prometheus package")
        p = subprocess.run([promtool, "check", "metrics"], input=after.encode(),
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, (p.stdout + p.stderr).decode())

        # A serve with workers on the same store takes the item: the queue empties, and its
        # background requests come out of the budget.
        worker = harness.Service(self.sb, self.tokens, db_dir=self.front.dir,
                                 args=["--reconcile-interval", 0, "--pending-interval", 0])
        self.others.append(worker)
        wait_for("the queue drained", lambda: series(self.page(worker),
                                                     "hoversync_work_items") == 0, 60)
        text = self.page(worker)
        self.assertGreater(series(text, "hoversync_budget_background_requests_total"), 0)
        self.assertEqual(series(text, "hoversync_work_oldest_due_age_seconds"), 0)
        self.assertIsNotNone(series(text, "hoversync_outbox_delivery_attempts_total",
                                    '{outcome="delivered"}'))

    def test_outbox_attempts_count_a_failing_crm_then_its_recovery(self):
        crm = Crm()
        crm.status = 500
        self.addCleanup(crm.stop)
        svc = harness.Service(self.sb, self.tokens,
                              args=["--crm-endpoint", crm.url, "--reconcile-interval", 0,
                                    "--pending-interval", 0],
                              HOVERSYNC_CRM_SECRET=CRM_SECRET, HOVERSYNC_OUTBOX_RETRY_BASE_MS=100)
        self.others.append(svc)
        self.assertEqual(self.counts(svc), (0, 0, 0))

        # A sync that changed something: its notification goes to the CRM, which fails it.
        r = svc.request("POST", "/api/syncs", {"job_id": JOB_ALL_COMPLETE, "model_ids": [HOUSE]})
        self.assertEqual(r.status, 202, r.body)
        delivered, failed, backlog = wait_for(
            "a failed delivery counted", lambda: (lambda c: c if c[1] >= 1 else None)(
                self.counts(svc)), 60)
        self.assertEqual(delivered, 0)
        self.assertEqual(backlog, 1)
        self.assertEqual(crm.acked(), [])
        with crm.lock:
            self.assertGreaterEqual(len(crm.posts), failed)
            self.assertEqual({p[0] for p in crm.posts}, {500})

        # The CRM is back: the next retry is delivered and the backlog empties.
        crm.status = 200
        delivered, failed_after, backlog = wait_for(
            "the notification delivered", lambda: (lambda c: c if c[0] >= 1 and c[2] == 0
                                                   else None)(self.counts(svc)), 60)
        self.assertEqual(delivered, 1)
        self.assertGreaterEqual(failed_after, failed)
        self.assertEqual([p["job_id"] for _, p in crm.acked()], [JOB_ALL_COMPLETE])
        self.assertEqual(crm.bad_signatures, 0)
        self.assertEqual(svc.cli.sql("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL"),
                         [(0,)])

    def test_background_syncs_beyond_the_budget_wait_for_it(self):
        front, wid = self.webhook_front()
        self.others.append(front)
        secret = front.cli.sql("SELECT hmac_secret FROM webhooks WHERE id = %d" % wid)[0][0]
        jobs = (JOB_ALL_COMPLETE, JOB_ONE_FAILED, JOB_PROCESSING)
        for job in jobs:
            body = json.dumps({"event": "job-state-changed-v2", "webhook_id": wid,
                               "job_id": job, "state": "completed"}).encode()
            self.assertEqual(self.deliver(body, signed(secret, wid, body), front).status, 200)
        self.assertEqual(series(self.page(front), "hoversync_work_items_due"), len(jobs))

        # Six requests a minute (no reserve for people below ten): a lone backlog takes them at
        # once, then waits for the window; syncing three jobs (a Show Job and the downloads of
        # each complete model) takes more than a minute allows.
        # One worker thread downloading on one slot, and no periodic pass: one background request
        # at most waits at a time.
        worker = harness.Service(self.sb, self.tokens, db_dir=front.dir,
                                 args=["--rate-limit", 6, "--event-workers", 1, "--download-slots", 1,
                                       "--reconcile-interval", 0, "--pending-interval", 0,
                                       "--drain-timeout", 1])
        self.others.append(worker)
        seen = []

        def budget():
            text = self.page(worker)
            seen.append(series(text, "hoversync_budget_background_waiting"))
            return (series(text, "hoversync_budget_background_wait_seconds_total"),
                    series(text, "hoversync_budget_background_requests_total"), seen[-1])

        # A request seen waiting; once it is let through, its wait is in the total.
        total, granted, _ = wait_for("a background request waiting for the budget",
                                     lambda: (lambda b: b if b[2] == 1 else None)(budget()), 60)
        after = wait_for("the wait counted", lambda: (lambda b: b if b[0] > total and
                                                      b[1] > granted else None)(budget()), 120)
        self.assertGreater(after[0], 0)
        self.assertEqual(max(seen), 1, seen)
        # The budget holds the syncs back: the queue is not through yet, and the operator reads
        # why in the log too.
        self.assertGreater(series(self.page(worker), "hoversync_work_items"), 0)
        self.assertIn("reason=budget", worker.read_stderr())
        self.assertEqual(worker.stop(), 0, worker.read_stderr()[-3000:])


class Probes(unittest.TestCase):
    def test_readyz_follows_the_store_schema(self):
        sb = harness.Sandbox(jobs=10)
        svc = harness.Service(sb, sb.tokens(), args=["--no-workers"])
        try:
            self.assertEqual(svc.get("/healthz", key=False).status, 200)
            r = svc.get("/readyz", key=False)
            self.assertEqual((r.status, r.json["status"]), (200, "ready"), r.body)
            want = r.json["schema_version"]
            # A store behind this binary (another process migrating it, say): not ready, alive.
            name = svc.cli.sql("SELECT name FROM schema_migrations WHERE version = %d"
                               % want)[0][0]
            write_sql(svc, "DELETE FROM schema_migrations WHERE version = %d" % want)
            r = svc.get("/readyz", key=False)
            self.assertEqual(r.status, 503, r.body)
            self.assertEqual(r.json["reason"], "migrations_pending")
            self.assertTrue(r.header("Retry-After"))
            self.assertEqual(svc.get("/healthz", key=False).status, 200)
            write_sql(svc, "INSERT INTO schema_migrations (version, name) VALUES (%d, '%s')"
                      % (want, name))
            self.assertEqual(svc.get("/readyz", key=False).status, 200)
        finally:
            self.assertEqual(svc.stop(), 0)
            svc.cleanup()
            sb.stop()


class Drain(unittest.TestCase):
    def setUp(self):
        self.sb = harness.Sandbox(jobs=40)
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
        svc = harness.Service(self.sb, self.tokens, db_dir=db_dir,
                              args=["--rate-limit", 0, "--work-lease", LONG_LEASE,
                                    "--reconcile-interval", 0, "--pending-interval", 0, *args],
                              HOVERSYNC_LOG_LEVEL="info")
        self.services.append(svc)
        return svc

    def state(self, svc, sync_id):
        r = svc.get("/api/syncs/" + sync_id)
        self.assertEqual(r.status, 200, r.body)
        return r.json

    def start_slow_sync(self, svc):
        """A sync whose model download hangs far longer than any drain here."""
        self.sb.fault(path="/api/v3/models/%d/*" % HOUSE, latency_ms=120000)
        r = svc.request("POST", "/api/syncs", {"job_id": JOB_ALL_COMPLETE, "model_ids": [HOUSE]})
        self.assertEqual(r.status, 202, r.body)
        sync_id = r.json["id"]
        wait_for("the sync running", lambda: self.state(svc, sync_id)["status"] == "running"
                 and "queue=claim" in svc.read_stderr())
        return sync_id

    def claimed(self, svc):
        return svc.cli.sql("SELECT COUNT(*) FROM work_items WHERE claimed_by IS NOT NULL")[0][0]

    def test_sigterm_drains_hands_back_and_another_serve_finishes(self):
        a = self.serve("--drain-timeout", 3 * SLOW)
        sync_id = self.start_slow_sync(a)
        self.assertEqual(self.claimed(a), 1)
        a.proc.send_signal(signal.SIGTERM)
        # From the signal on: not ready, new requests refused, the probes and metrics answer.
        r = wait_for("readyz 503", lambda: (lambda x: x if x.status == 503 else None)(
            a.get("/readyz", key=False)), 5)
        self.assertEqual(r.json["reason"], "draining")
        self.assertEqual(a.get("/healthz", key=False).status, 200)
        refused = a.get("/api/connections")
        self.assertEqual(refused.status, 503, refused.body)
        self.assertEqual(a.get("/metrics", key=False).status, 200)
        self.assertEqual(a.proc.wait(timeout=60 * SLOW), 0, a.read_stderr()[-3000:])
        log = a.read_stderr()
        self.assertIn("events=handed_back job=%d" % JOB_ALL_COMPLETE, log)
        self.assertEqual(self.claimed(a), 0)

        # Another serve takes the item at once, not after the 10-minute lease.
        self.sb.clear_faults()
        b = self.serve(db_dir=a.dir)
        st = wait_for("the sync finished by the other serve",
                      lambda: (lambda s: s if s["status"] in ("done", "failed") else None)(
                          self.state(b, sync_id)), 60)
        self.assertEqual((st["status"], st["result"]), ("done", "synced"), st)
        self.assertIn("queue=claim conn=org-%d job=%d" % (harness.MAIN_ORG, JOB_ALL_COMPLETE),
                      b.read_stderr())
        # The sync reads done once its models have their results; the item goes right after.
        wait_for("the item done", lambda: b.cli.sql("SELECT COUNT(*) FROM work_items")[0][0] == 0)
        self.assertEqual(b.cli.sql("SELECT model_id, kind FROM artifacts GROUP BY model_id, "
                                   "kind HAVING COUNT(*) > 1"), [])
        self.assertGreater(b.cli.sql("SELECT COUNT(*) FROM artifacts WHERE model_id = %d"
                                     % HOUSE)[0][0], 0)

    def test_a_worker_drains_and_hands_back_too(self):
        front = self.serve("--no-workers")
        err_path = os.path.join(front.cli.dir, "worker.stderr")
        with open(err_path, "w") as err:
            proc = subprocess.Popen([harness.HOVERSYNC_BIN, "worker", "--rate-limit", "0",
                                     "--work-lease", str(LONG_LEASE), "--drain-timeout", "1",
                                     "--reconcile-interval", "0", "--pending-interval", "0"],
                                    env=front.cli.env, stdout=subprocess.PIPE, stderr=err,
                                    text=True)
            try:
                self.assertEqual(proc.stdout.readline().strip(), "hoversync worker running")
                self.sb.fault(path="/api/v3/models/%d/*" % HOUSE, latency_ms=120000)
                r = front.request("POST", "/api/syncs",
                                  {"job_id": JOB_ALL_COMPLETE, "model_ids": [HOUSE]})
                self.assertEqual(r.status, 202, r.body)
                wait_for("the worker running the sync", lambda: self.claimed(front) == 1)
                proc.terminate()
                self.assertEqual(proc.wait(timeout=60 * SLOW), 0)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                proc.stdout.close()
        with open(err_path) as f:
            self.assertIn("events=handed_back job=%d" % JOB_ALL_COMPLETE, f.read())
        self.assertEqual(self.claimed(front), 0)
        self.assertEqual(front.cli.sql("SELECT COUNT(*) FROM work_items")[0][0], 1)

    def test_a_second_signal_exits_at_once_and_still_hands_back(self):
        a = self.serve("--drain-timeout", 3600)
        self.start_slow_sync(a)
        a.proc.send_signal(signal.SIGTERM)
        wait_for("draining", lambda: a.get("/readyz", key=False).status == 503, 5)
        a.proc.send_signal(signal.SIGTERM)
        # Within the test's bound, not the hour of --drain-timeout nor the sync's two minutes.
        self.assertEqual(a.proc.wait(timeout=30 * SLOW), 1)
        self.assertIn("second signal", a.read_stderr())
        self.assertEqual(self.claimed(a), 0)
        self.assertEqual(a.cli.sql("SELECT COUNT(*) FROM work_items")[0][0], 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
