#!/usr/bin/env python3
"""test_webhooks_intake.py: the service's webhook intake end to end, over loopback: the real
hover-sandbox delivers to the real `hoversync serve` (POST /webhooks/hover).

- `hoversync webhooks register` ends verified whether the sandbox delivers the verification code
  before or after the registration's answer (the verification race, both orders);
- a test job's events land in webhook_events as "accepted", with one work item for the job;
- unknown event types are stored as "ignored" and acknowledged;
- deliveries signed here, in Python (hmac/hashlib), in every form an api_auth signer produces
  (hover-api.md 4.2: with and without the method, Content-MD5 or X-Authorization-Content-SHA256,
  each HMAC digest, any access id) are accepted; each is refused when forged, stale or modified
  after signing, and unsigned or malformed ones too, with 401/400/413, leaving no row;
- a delivery sent again is answered 200 and stored once;
- deliveries acknowledged by a serve killed with SIGKILL right after an acknowledgement, others
  in flight, are every one stored with their work items;
- a flood of unsigned verification codes under ever new access ids keeps at most 1,000 rows,
  and the refusals' warn lines are rate-limited with a count of those suppressed;
- `hoversync status` and GET /api/status show the webhook's health and the queues.

The service runs with --no-workers: nothing consumes the work items while they are counted.
Standard library only; binaries from $HOVERSYNC_BIN and $HOVER_SANDBOX_BIN (set by meson).
"""

import base64
import email.utils
import hashlib
import hmac
import json
import os
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import free_port, wait_for  # noqa: E402

SLOW = 3 if os.environ.get("HOVERSYNC_SANITIZED") else 1
UNKNOWN_TYPES = {"capture-request-state-changed", "deliverable-change-request-state-changed",
                 "estimate-created"}
JOB_EVENTS = {"model-created", "model-state-changed", "job-state-changed-v2"}


# The api_auth gem's forms (hover-api.md 4.2): (method first?, digest header, header prefix,
# HMAC digest). "SHA" in a prefix is SHA-1 (src/webhook/signature.c says why).
FORMS = {
    "1.x": (False, "Content-MD5", "APIAuth", hashlib.sha1),
    "1.x-sha256": (False, "Content-MD5", "APIAuth-HMAC-SHA256", hashlib.sha256),
    "2.4-sha1": (True, "Content-MD5", "APIAuth", hashlib.sha1),
    "2.4-sha256": (True, "Content-MD5", "APIAuth-HMAC-SHA256", hashlib.sha256),
    "2.5-sha256": (True, "X-Authorization-Content-SHA256", "APIAuth-HMAC-SHA256",
                   hashlib.sha256),
    "2.5-sha512": (True, "X-Authorization-Content-SHA256", "APIAuth-HMAC-SHA512",
                   hashlib.sha512),
    "2.5-md5": (True, "X-Authorization-Content-SHA256", "APIAuth-HMAC-MD5", hashlib.md5),
    "2.5-sha": (True, "X-Authorization-Content-SHA256", "APIAuth-HMAC-SHA", hashlib.sha1),
    "2.5-sha1": (True, "X-Authorization-Content-SHA256", "APIAuth-HMAC-SHA1", hashlib.sha1),
    "2.5-sha224": (True, "X-Authorization-Content-SHA256", "APIAuth-HMAC-SHA224",
                   hashlib.sha224),
    "2.5-sha384": (True, "X-Authorization-Content-SHA256", "APIAuth-HMAC-SHA384",
                   hashlib.sha384),
}


def signed(secret, access_id, body, date=None, uri="/webhooks/hover", form="2.5-sha256"):
    """The headers of a delivery signed as the api_auth gem signs (hover-api.md 4.2), computed
    here independently of the service's code."""
    method, digest_header, prefix, hmac_digest = FORMS[form]
    if digest_header == "Content-MD5":
        digest = base64.b64encode(hashlib.md5(body).digest()).decode()
    else:
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    date = date or email.utils.formatdate(usegmt=True)
    parts = (["POST"] if method else []) + ["application/json", digest, uri, date]
    sig = base64.b64encode(hmac.new(secret.encode(), ",".join(parts).encode(),
                                    hmac_digest).digest()).decode()
    return {"Content-Type": "application/json", digest_header: digest, "Date": date,
            "Authorization": "%s %s:%s" % (prefix, access_id, sig)}


class Intake(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sandbox = harness.Sandbox("--webhook-retry-base-ms", "50", "--rate-limit", "0",
                                      jobs=60)
        cls.tokens = cls.sandbox.tokens()
        port = free_port()
        public = "http://127.0.0.1:%d" % port
        cls.service = harness.Service(cls.sandbox, cls.tokens,
                                      args=["--listen", "127.0.0.1:%d" % port, "--no-workers"],
                                      HOVERSYNC_PUBLIC_URL=public)
        assert cls.service.port == port
        cls.cli = cls.service.cli
        cls.sandbox.admin("POST", "config", {"reconstruction_seconds": 1})
        cls.webhook_id = cls.register(before_response=False)

    @classmethod
    def tearDownClass(cls):
        rc = cls.service.stop()
        log = cls.service.read_stderr()
        cls.cli.cleanup()
        cls.sandbox.stop()
        # A clean stop: no sanitizer report, no crash.
        if rc != 0:
            raise AssertionError("hoversync serve exited with %s:\n%s" % (rc, log[-4000:]))

    @classmethod
    def register(cls, before_response, force=False):
        cls.sandbox.admin("POST", "config", {"verification_before_response": before_response})
        args = ["webhooks", "register", "--wait", str(20 * SLOW), "--json"]
        r = cls.cli.run(*(args + (["--force"] if force else [])))
        if r.returncode != 0:
            raise AssertionError("register failed: %s\n%s\n%s" % (r.stdout, r.stderr,
                                                                   cls.service.read_stderr()))
        out = json.loads(r.stdout)
        assert out["verified_at"], out
        return out["id"]

    def count(self, sql):
        return self.cli.sql(sql)[0][0]

    def rows(self):
        return (self.count("SELECT COUNT(*) FROM webhook_events"),
                self.count("SELECT COUNT(*) FROM work_items"))

    def sandbox_webhook(self, wid):
        hooks = self.sandbox.admin("GET", "webhooks")["webhooks"]
        return next(h for h in hooks if h["id"] == wid)

    def post(self, body, headers):
        return harness.http_request(self.service.port, "POST", "/webhooks/hover", body, headers)

    def secret(self):
        return self.cli.sql("SELECT hmac_secret FROM webhooks WHERE id = %d"
                            % self.webhook_id)[0][0]

    # ---- registration and the verification race ----

    def test_register_is_verified_both_ways(self):
        # setUpClass registered with the code delivered after the 201: verified.
        self.assertTrue(self.sandbox_webhook(self.webhook_id)["verified"])
        for before in (True, False):
            wid = self.register(before_response=before, force=True)
            self.assertNotEqual(wid, self.webhook_id)
            hook = self.sandbox_webhook(wid)
            self.assertTrue(hook["verified"], (before, hook))
            stored = self.cli.sql("SELECT verified_at, hmac_secret IS NOT NULL, connection_key "
                                  "FROM webhooks WHERE id = %d" % wid)
            self.assertEqual(len(stored), 1)
            self.assertIsNotNone(stored[0][0])
            self.assertEqual(stored[0][1:], (1, "org-%d" % harness.MAIN_ORG))
            # Its code is on record, settled; nothing is left unverified.
            self.assertEqual(self.count(
                "SELECT COUNT(*) FROM webhook_events WHERE webhook_id = %d AND "
                "event = 'webhook-verification-code' AND status = 'processed'" % wid), 1)
            self.assertEqual(self.count(
                "SELECT COUNT(*) FROM webhook_events WHERE status = 'unverified'"), 0)
            # The secret never shows in the service's log.
            secret = self.cli.sql("SELECT hmac_secret FROM webhooks WHERE id = %d" % wid)[0][0]
            self.assertNotIn(secret, self.service.read_stderr())
            r = self.cli.run("webhooks", "delete", wid)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(self.sandbox_webhook(wid)["deleted"])
            self.assertEqual(self.count("SELECT COUNT(*) FROM webhooks WHERE id = %d" % wid), 0)
        # A verified webhook for the same URL is kept: registering again sends nothing.
        r = self.cli.run("webhooks", "register", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual((out["id"], out["outcome"]), (self.webhook_id, "already_verified"))

    # ---- events ----

    def test_job_events_are_accepted_with_one_work_item(self):
        self.run_test_job(unknown=False)

    def test_unknown_events_are_stored_as_ignored(self):
        self.sandbox.admin("POST", "config", {"webhook_unknown_events": True})
        try:
            job = self.run_test_job(unknown=True)
        finally:
            self.sandbox.admin("POST", "config", {"webhook_unknown_events": False})
        ignored = self.cli.sql("SELECT DISTINCT event FROM webhook_events WHERE job_id = %d "
                               "AND status = 'ignored'" % job)
        self.assertTrue(ignored)
        self.assertLessEqual({e for (e,) in ignored}, UNKNOWN_TYPES)

    def run_test_job(self, unknown):
        status, _, body = self.sandbox.call(
            "POST", "/api/v3/jobs/test_job", {},
            {"Authorization": "Bearer " + self.tokens["access_token"]})
        self.assertEqual(status, 200, body)
        job = body["job_id"]

        def settled():
            ds = self.sandbox.admin("GET", "deliveries?limit=100000")["deliveries"]
            mine = [d for d in ds if d["job_id"] == job and d["webhook_id"] == self.webhook_id]
            done = [d for d in mine if d["result"] == "delivered"]
            events = [d for d in done if d["event"] in JOB_EVENTS]
            # 3 model-created, 3 model-state-changed, 1 job-state-changed-v2
            if len(events) == 7 and len(done) == len(mine) and (not unknown or
                                                                len(done) > 7):
                return done
            return None

        done = wait_for("the test job's deliveries", settled, timeout=20)
        for d in done:
            self.assertEqual(d["status"], 200, d)
        accepted = self.cli.sql("SELECT event, status, connection_key FROM webhook_events "
                                "WHERE job_id = %d AND event IN ('model-created', "
                                "'model-state-changed', 'job-state-changed-v2')" % job)
        self.assertEqual(len(accepted), 7)
        self.assertEqual({(s, c) for _, s, c in accepted},
                         {("accepted", "org-%d" % harness.MAIN_ORG)})
        items = self.cli.sql("SELECT connection_key, reason, generation FROM work_items "
                             "WHERE job_id = %d" % job)
        self.assertEqual(items, [("org-%d" % harness.MAIN_ORG, "webhook", 7)])
        # The raw bodies are stored as delivered, byte for byte.
        bodies = {d["body"].encode() for d in done}
        stored = {b for (b,) in self.cli.sql("SELECT body FROM webhook_events WHERE "
                                             "job_id = %d" % job)}
        self.assertEqual(stored, bodies)
        return job

    # ---- refusals ----

    def test_bad_deliveries_are_refused_and_leave_no_row(self):
        secret = self.secret()
        wid = self.webhook_id
        body = json.dumps({"event": "job-state-changed-v2", "webhook_id": wid,
                           "job_id": harness.JOB_ALL_COMPLETE, "state": "completed"}).encode()
        stale = email.utils.formatdate(time.time() - 20 * 60, usegmt=True)
        cases = [
            ("forged", body, signed("bm90LXRoZS1zZWNyZXQ=", wid, body), 401),
            ("stale", body, signed(secret, wid, body, date=stale), 401),
            ("modified", body.replace(b"completed", b"failed"), signed(secret, wid, body), 401),
            ("unsigned", body, {"Content-Type": "application/json"}, 401),
            ("other uri", body, signed(secret, wid, body, uri="/webhooks/hover?x=1"), 401),
            ("unknown webhook", body, signed("c29tZS1vdGhlci1zZWNyZXQ=", 999999, body), 401),
            ("digest of another body", body,
             dict(signed(secret, wid, body),
                  **{"X-Authorization-Content-SHA256":
                     base64.b64encode(hashlib.sha256(b"{}").digest()).decode()}), 401),
            ("malformed auth", body, dict(signed(secret, wid, body),
                                          Authorization="APIAuth-HMAC-SHA256 x"), 400),
            ("malformed date", body, dict(signed(secret, wid, body), Date="not a date"), 400),
            ("not json", b"{\"event\":", signed(secret, wid, b"{\"event\":"), 400),
            ("oversize", b"{" + b" " * (64 * 1024) + b"}",
             signed(secret, wid, b"{" + b" " * (64 * 1024) + b"}"), 413),
        ]
        before = self.rows()
        for name, data, headers, want in cases:
            r = self.post(data, headers)
            self.assertEqual(r.status, want, (name, r.body))
            self.assertEqual(self.rows(), before, name)
        log = self.service.read_stderr()
        self.assertIn("webhook refused status=401", log)
        self.assertNotIn(secret, log)
        # The control: the same delivery, correctly signed, is stored (with an Origin header
        # too: the route is exempt from the browser origin checks).
        r = self.post(body, dict(signed(secret, wid, body), Origin="https://elsewhere.example"))
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json["status"], "accepted")
        self.assertEqual(self.count("SELECT COUNT(*) FROM webhook_events WHERE id = %d AND "
                                    "status = 'accepted'" % r.json["event_id"]), 1)
        self.assertEqual(self.count("SELECT COUNT(*) FROM work_items WHERE job_id = %d"
                                    % harness.JOB_ALL_COMPLETE), 1)

    def test_every_signer_form_and_its_forgeries(self):
        secret = self.secret()
        wid = self.webhook_id
        stale = email.utils.formatdate(time.time() - 20 * 60, usegmt=True)
        for n, form in enumerate(sorted(FORMS)):
            body = json.dumps({"event": "job-state-changed-v2", "webhook_id": wid,
                               "job_id": harness.JOB_ALL_COMPLETE + 1 + n,
                               "state": "completed"}).encode()
            before = self.rows()
            bad = [
                ("forged", body, signed("bm90LXRoZS1zZWNyZXQ=", wid, body, form=form)),
                ("stale", body, signed(secret, wid, body, date=stale, form=form)),
                ("modified", body.replace(b"completed", b"failed"),
                 signed(secret, wid, body, form=form)),
            ]
            for what, data, headers in bad:
                r = self.post(data, headers)
                self.assertEqual(r.status, 401, (form, what, r.body))
                self.assertEqual(self.rows(), before, (form, what))
            # The genuine one, with our webhook id and with an access id that is none (signed a
            # second apart: the access id is not signed, so the same second would be a replay;
            # both seconds from one reading of the clock, or a second boundary passed between
            # the two posts makes them one).
            now = int(time.time())
            for k, access_id in enumerate((str(wid), "hover-%s" % form)):
                date = email.utils.formatdate(now - k, usegmt=True)
                r = self.post(body, signed(secret, access_id, body, date=date, form=form))
                self.assertEqual(r.status, 200, (form, access_id, r.body))
                self.assertEqual(r.json["status"], "accepted", form)
            self.assertEqual(self.count(
                "SELECT COUNT(*) FROM webhook_events WHERE job_id = %d AND status = 'accepted' "
                "AND webhook_id = %d AND connection_key = 'org-%d'"
                % (harness.JOB_ALL_COMPLETE + 1 + n, wid, harness.MAIN_ORG)), 2)

    def test_replay_is_acknowledged_and_stored_once(self):
        secret = self.secret()
        body = json.dumps({"event": "model-state-changed", "webhook_id": self.webhook_id,
                           "job_id": harness.JOB_ALL_COMPLETE + 40, "model_id": 1,
                           "state": "complete"}).encode()
        headers = signed(secret, self.webhook_id, body)
        first = self.post(body, headers)
        self.assertEqual(first.status, 200, first.body)
        for _ in range(3):
            again = self.post(body, headers)
            self.assertEqual(again.status, 200, again.body)
            self.assertEqual(again.json["status"], "duplicate")
        self.assertEqual(self.count("SELECT COUNT(*) FROM webhook_events WHERE job_id = %d"
                                    % (harness.JOB_ALL_COMPLETE + 40)), 1)
        self.assertEqual(self.count("SELECT generation FROM work_items WHERE job_id = %d"
                                    % (harness.JOB_ALL_COMPLETE + 40)), 1)

    def test_secret_rotated_or_webhook_deleted_by_another_process(self):
        """serve keeps the webhooks it verified deliveries with for a second: a secret changed in
        the store by another process verifies at once, and a webhook deleted there is refused
        at once (the commit checks its row), nothing stored."""
        wid, job = 990001, harness.JOB_ALL_COMPLETE + 41
        key = "org-%d" % harness.MAIN_ORG
        self.cli.sql("INSERT INTO webhooks (id, connection_key, url, hmac_secret, verified_at, "
                     "created_at, updated_at) VALUES (?, ?, ?, 'c2VjcmV0LW9uZQ', "
                     "'2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', "
                     "'2026-01-01T00:00:00.000Z')",
                     (wid, key, "http://127.0.0.1:%d/webhooks/hover" % self.service.port))

        def deliver(secret, n):
            body = json.dumps({"event": "model-state-changed", "webhook_id": wid, "job_id": job,
                               "model_id": n, "state": "complete"}).encode()
            return self.post(body, signed(secret, wid, body))

        self.assertEqual(deliver("c2VjcmV0LW9uZQ", 1).status, 200)
        self.assertEqual(deliver("c2VjcmV0LW9uZQ", 2).status, 200)  # the kept webhook
        self.cli.sql("UPDATE webhooks SET hmac_secret = 'c2VjcmV0LXR3bw' WHERE id = ?", (wid,))
        r = deliver("c2VjcmV0LXR3bw", 3)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json["status"], "accepted")
        self.cli.sql("DELETE FROM webhooks WHERE id = ?", (wid,))
        r = deliver("c2VjcmV0LXR3bw", 4)  # within the kept webhook's second (receiver.h)
        self.assertEqual(r.status, 401, r.body)
        self.assertEqual(self.count("SELECT COUNT(*) FROM webhook_events WHERE job_id = %d"
                                    % job), 3)

    # ---- durable before acknowledged ----

    def test_acknowledged_deliveries_survive_kill_9(self):
        """16 connections deliver to a second serve on the same store, whose group commit writes
        batches while earlier ones are synced; it is killed (SIGKILL) right after the 150th
        acknowledgement, with deliveries still in flight. Every delivery acknowledged as
        accepted is a row with its job's work item; none is stored twice."""
        other = harness.Service(self.sandbox, None, args=["--no-workers"], db_dir=self.service.dir)
        secret, base = self.secret(), harness.JOB_ALL_COMPLETE + 1000
        acked, lock, killed = [], threading.Lock(), threading.Event()

        def deliver(k):
            for i in range(40):
                if killed.is_set():
                    return
                body = json.dumps({"event": "model-state-changed", "webhook_id": self.webhook_id,
                                   "job_id": base + k, "model_id": 1000 * k + i,
                                   "state": "complete"}).encode()
                try:
                    r = harness.http_request(other.port, "POST", "/webhooks/hover", body,
                                             signed(secret, self.webhook_id, body), timeout=30)
                except OSError:
                    return  # the kill: this one was never acknowledged
                if r.status != 200:
                    continue
                with lock:
                    acked.append((base + k, r.json["event_id"]))
                    if len(acked) == 150 and not killed.is_set():
                        other.proc.send_signal(signal.SIGKILL)
                        killed.set()

        threads = [threading.Thread(target=deliver, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        other.proc.wait()
        other.stop()
        other.cli.cleanup()
        self.assertTrue(killed.is_set(), "fewer than 150 deliveries were acknowledged")
        ids = sorted(e for _, e in acked)
        self.assertEqual(len(set(ids)), len(ids))
        stored = {row[0] for row in self.cli.sql(
            "SELECT id FROM webhook_events WHERE job_id >= %d AND job_id < %d AND status = "
            "'accepted'" % (base, base + 16))}
        self.assertEqual([e for e in ids if e not in stored], [],
                         "acknowledged deliveries lost by kill -9")
        jobs = {row[0] for row in self.cli.sql(
            "SELECT job_id FROM work_items WHERE job_id >= %d AND job_id < %d"
            % (base, base + 16))}
        self.assertEqual({j for j, _ in acked} - jobs, set())

    # ---- status ----

    def test_status_shows_webhook_health_and_queues(self):
        doc = self.cli.json("status")
        hook = next(h for h in doc["webhooks"] if h["id"] == self.webhook_id)
        self.assertTrue(hook["healthy"], hook)
        self.assertTrue(hook["at_hover"] and hook["stored"] and hook["secret_stored"])
        self.assertIsNone(hook["last_error"])
        self.assertEqual([c["key"] for c in doc["connections"]], ["org-%d" % harness.MAIN_ORG])
        self.assertEqual(doc["connections"][0]["auto_sync"], "all")
        self.assertEqual(set(doc["work"]), {"due", "total"})
        self.assertEqual(set(doc["outbox"]), {"pending"})
        self.assertIn("open", doc["selections"])
        r = self.cli.run("status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("%d" % self.webhook_id, r.stdout)
        self.assertIn("healthy", r.stdout)
        self.assertIn("work queue", r.stdout)
        api = self.service.get("/api/status")
        self.assertEqual(api.status, 200, api.body)
        self.assertEqual(set(api.json), set(doc))
        self.assertTrue(any(h["id"] == self.webhook_id and h["healthy"]
                            for h in api.json["webhooks"]))
        self.assertEqual(self.service.get("/api/status", key=False).status, 401)


class Flood(unittest.TestCase):
    """Unauthenticated floods against a service of its own (the rows it leaves would disturb
    the other tests' counts)."""

    @classmethod
    def setUpClass(cls):
        cls.sandbox = harness.Sandbox("--rate-limit", "0", jobs=5)
        port = free_port()
        cls.service = harness.Service(cls.sandbox, cls.sandbox.tokens(),
                                      args=["--listen", "127.0.0.1:%d" % port, "--no-workers"],
                                      HOVERSYNC_PUBLIC_URL="http://127.0.0.1:%d" % port)

    @classmethod
    def tearDownClass(cls):
        rc = cls.service.stop()
        log = cls.service.read_stderr()
        cls.service.cli.cleanup()
        cls.sandbox.stop()
        if rc != 0:
            raise AssertionError("hoversync serve exited with %s:\n%s" % (rc, log[-4000:]))

    def count(self, sql):
        return self.service.cli.sql(sql)[0][0]

    def post(self, body, headers):
        return harness.http_request(self.service.port, "POST", "/webhooks/hover", body, headers)

    def test_flood_of_unsigned_codes_is_bounded_and_quietly_logged(self):
        unverified = "SELECT COUNT(*) FROM webhook_events WHERE status = 'unverified'"
        before = self.count(unverified)
        # A refusal in a second of its own: whatever was held back before is counted on it.
        time.sleep(1.2)
        self.assertEqual(self.post(b"{}", {"Content-Type": "application/json"}).status, 401)
        log_before = len(self.service.read_stderr())
        sent = 1500
        started = time.time()
        for i in range(sent):
            body = json.dumps({"event": "webhook-verification-code", "webhook_id": 700000 + i,
                               "code": "flood-%d" % i}).encode()
            r = self.post(body, signed("YXR0YWNrZXI=", 700000 + i, body, form="1.x-sha256"))
            self.assertEqual(r.status, 202, r.body)
        # Refusals: each a warn line, through the rate limit.
        refused = 600
        for i in range(refused):
            self.assertEqual(self.post(b"{}", {"Content-Type": "application/json"}).status, 401)
        elapsed = time.time() - started
        time.sleep(1.2)  # a new second of the limit: the next line carries the count
        self.assertEqual(self.post(b"{}", {"Content-Type": "application/json"}).status, 401)
        after = self.count(unverified)
        print("flood: %d unsigned codes, unverified rows before %d, after %d"
              % (sent, before, after))
        self.assertLessEqual(after, 1000)
        self.assertGreaterEqual(after, 1000 - before)
        lines = [ln for ln in self.service.read_stderr()[log_before:].splitlines()
                 if "webhook refused" in ln]
        suppressed = sum(int(ln.split("suppressed=")[1].split()[0]) for ln in lines
                         if "suppressed=" in ln)
        print("refusals: %d sent, %d warn lines, %d counted as suppressed, over %.1f s"
              % (refused + 1, len(lines), suppressed, elapsed))
        self.assertEqual(len(lines) + suppressed, refused + 1)
        self.assertLessEqual(len(lines), 5 * (int(elapsed) + 3))



class RegisterOnStart(unittest.TestCase):
    """serve --register-webhooks registers the webhook of the seeded connection at start."""

    def test_serve_registers_at_start(self):
        sandbox = harness.Sandbox("--rate-limit", "0", "--verification-before-response",
                                  jobs=20)
        try:
            port = free_port()
            service = harness.Service(sandbox, sandbox.tokens(),
                                      args=["--listen", "127.0.0.1:%d" % port, "--no-workers",
                                            "--register-webhooks"],
                                      HOVERSYNC_PUBLIC_URL="http://127.0.0.1:%d" % port)
            try:
                hooks = wait_for("a verified webhook", lambda: [
                    h for h in sandbox.admin("GET", "webhooks")["webhooks"] if h["verified"]], timeout=20)
                self.assertEqual(len(hooks), 1)
                self.assertEqual(hooks[0]["url"], "http://127.0.0.1:%d/webhooks/hover" % port)
            finally:
                self.assertEqual(service.stop(), 0, service.read_stderr()[-4000:])
            # A restart finds it verified and registers nothing more.
            first = service
            service = harness.Service(sandbox, sandbox.tokens(), db_dir=first.dir,
                                      args=["--listen", "127.0.0.1:%d" % port, "--no-workers",
                                            "--register-webhooks"],
                                      HOVERSYNC_PUBLIC_URL="http://127.0.0.1:%d" % port,
                                      HOVERSYNC_LOG_LEVEL="info")
            try:
                wait_for("the start-up registration pass",
                         lambda: "already_verified" in service.read_stderr()
                         or "webhook registration failed" in service.read_stderr(), timeout=10)
                self.assertEqual(len(sandbox.admin("GET", "webhooks")["webhooks"]), 1)
            finally:
                self.assertEqual(service.stop(), 0, service.read_stderr()[-4000:])
                service.cli.cleanup()
                first.cli.cleanup()
        finally:
            sandbox.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
