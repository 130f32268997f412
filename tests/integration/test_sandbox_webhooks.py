#!/usr/bin/env python3
"""test_sandbox_webhooks.py: drives the real hover-sandbox over loopback and checks its webhooks and
test jobs as a receiver would see them: registration and the verification handshake, signed
deliveries (checked with an independent implementation of hover-api.md 4.2 in Python), test jobs
and set_test_state with their simulated reconstruction, retries with backoff and last_error,
deletion, the chaos switches (duplicates, reordering, drops, unknown events) and the logs.

Every test runs its own sandbox (a small world, reconstructions of 1 s, retries from 50 ms) and its
own receiver (http.server on 127.0.0.1:0 in a thread) that records raw bodies and headers.

Standard library only. The binary comes from $HOVER_SANDBOX_BIN or the first argument.
"""

import atexit
import base64
import binascii
import email.utils
import hashlib
import hmac
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

BIN = os.environ.get("HOVER_SANDBOX_BIN")
if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
    BIN = sys.argv.pop(1)

MAIN_ORG = 463605
OTHER_ORG = 471122
MAIN_HOUSE = 15084301  # showcase: 3 complete models, external_identifier 8675309
MAIN_HOUSE_MODELS = [17338401, 17338402, 17338403]
DRAFT_JOB = 15084306  # showcase draft, no models
WEBHOOK_KEYS = {"id", "owner_type", "owner_id", "url", "created_at", "updated_at", "verified_at",
                "hmac_secret", "last_error", "content_type"}
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
AUTH_RE = re.compile(r"^APIAuth-HMAC-SHA256 (\d+):([A-Za-z0-9+/]+=*)$")
UNKNOWN_TYPES = {"capture-request-state-changed", "deliverable-change-request-state-changed",
                 "estimate-created"}
# Slower under sanitizers: every wait below is a deadline, not a sleep.
SLOW = 3 if os.environ.get("HOVERSYNC_SANITIZED") else 1

_procs = []


@atexit.register
def _kill_leftovers():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def wait_until(pred, timeout=10.0, step=0.02):
    deadline = time.monotonic() + timeout * SLOW
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


def request(method, url, body=None, form=False, token=None):
    """One request; returns (status, parsed JSON or None) for every status."""
    headers = {}
    data = None
    if body is not None:
        if form:
            data = urllib.parse.urlencode(body).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = "Bearer " + token
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        with e:
            status, raw = e.code, e.read()
    return status, (json.loads(raw) if raw else None)


class Sandbox:
    """One hover-sandbox process on free ports, with a request log in a temp dir."""

    def __init__(self, *args, jobs=30, seed=42):
        self.dir = tempfile.TemporaryDirectory(prefix="hs-sandbox-wh-")
        self.port_file = os.path.join(self.dir.name, "ports")
        self.log_path = os.path.join(self.dir.name, "requests.jsonl")
        self.err_path = os.path.join(self.dir.name, "stderr.txt")
        cmd = [BIN, "--port-file", self.port_file, "--request-log", self.log_path,
               "--jobs", str(jobs), "--seed", str(seed), "--log-level", "warn",
               "--rate-limit", "0", "--reconstruction-seconds", "1",
               "--webhook-retry-base-ms", "50", *args]
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.err)
        _procs.append(self.proc)
        deadline = time.monotonic() + 60
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("sandbox did not start: " + self.stderr())
            time.sleep(0.02)
        with open(self.port_file) as f:
            self.api = "http://127.0.0.1:%d" % int(f.read().split()[0])
        self.tok = self.token()

    def stderr(self):
        try:
            with open(self.err_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self):
        rc = self.proc.poll()
        if rc is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
        self.err.close()
        if rc != 0:  # sanitizer reports and crashes end up here
            sys.stderr.write("hover-sandbox exited with %r; its stderr:\n%s\n" % (rc, self.stderr()))
        self.dir.cleanup()
        return rc

    def admin(self, method, path, body=None):
        return request(method, self.api + path, body=body)

    def token(self, org_id=MAIN_ORG):
        status, tok = self.admin("POST", "/__sandbox/tokens", {"org_id": org_id})
        assert status == 200, (status, tok)
        return tok["access_token"]

    def call(self, method, path, body=None, form=False, token=None):
        return request(method, self.api + path, body=body, form=form, token=token or self.tok)

    def config(self, **settings):
        status, cfg = self.admin("POST", "/__sandbox/config", settings)
        assert status == 200, (status, cfg)
        return cfg

    def deliveries(self):
        return self.admin("GET", "/__sandbox/deliveries")[1]["deliveries"]

    def hook_admin(self, hook_id):
        for h in self.admin("GET", "/__sandbox/webhooks")[1]["webhooks"]:
            if h["id"] == hook_id:
                return h
        return None

    def fire(self, job_id, events=None, state=None):
        body = {}
        if events:
            body["events"] = events
        if state:
            body["state"] = state
        status, out = self.admin("POST", "/__sandbox/jobs/%d/events" % job_id, body)
        assert status == 200, (status, out)
        return out


class Receiver:
    """An HTTP receiver on 127.0.0.1:0 that records every POST (raw body, headers, request target)
    and answers `status` (an int, or a function of the record)."""

    def __init__(self, status=200, on_post=None):
        self.records = []
        self.lock = threading.Lock()
        self.status = status
        self.on_post = on_post
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                rec = {"target": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                       "body": body, "t": time.monotonic(), "wall": time.time()}
                try:
                    rec["json"] = json.loads(body)
                except ValueError:
                    rec["json"] = None
                with outer.lock:
                    outer.records.append(rec)
                if outer.on_post:
                    outer.on_post(rec)
                st = outer.status(rec) if callable(outer.status) else outer.status
                self.send_response(st)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.port = self.server.server_address[1]

    def url(self, path="/webhooks/hover"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def all(self):
        with self.lock:
            return list(self.records)

    def events(self, types=None, job_id=None):
        out = []
        for r in self.all():
            j = r["json"] or {}
            if types is not None and j.get("event") not in types:
                continue
            if job_id is not None and j.get("job_id") != job_id:
                continue
            out.append(r)
        return out

    def wait(self, pred, timeout=10.0):
        return wait_until(lambda: pred(self), timeout)


def expected_signature(secret, content_type, content_md5, request_uri, date):
    """hover-api.md 4.2, written independently of the sandbox's C code."""
    canonical = ",".join([content_type, content_md5, request_uri, date])
    mac = hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class WebhookCase(unittest.TestCase):
    """A fresh sandbox and receiver per test; helpers to register and check deliveries."""

    SANDBOX_ARGS = ()

    def setUp(self):
        self.sb = Sandbox(*self.SANDBOX_ARGS)
        self.rx = Receiver()

    def tearDown(self):
        self.rx.close()
        self.assertEqual(self.sb.stop(), 0)

    def register(self, rx=None, verify=True, token=None):
        """Registers rx's URL; returns the 201 body (with hmac_secret) after its code arrived (and
        was verified)."""
        rx = rx or self.rx
        status, hook = self.sb.call("POST", "/api/v2/webhooks",
                                    {"webhook": {"url": rx.url(), "content_type": "json"}},
                                    token=token)
        self.assertEqual(status, 201, hook)
        got = rx.wait(lambda r: self.code_of(r, hook["id"]))
        self.assertTrue(got, "no verification code for webhook %d" % hook["id"])
        hook["code"] = self.code_of(rx, hook["id"])
        if verify:
            status, out = self.sb.call("PUT", "/api/v2/webhooks/%s/verify" % hook["code"],
                                       token=token)
            self.assertEqual(status, 200, out)
            self.assertIsNotNone(out["verified_at"])
        return hook

    @staticmethod
    def code_of(rx, hook_id):
        codes = [r["json"]["code"] for r in rx.events({"webhook-verification-code"})
                 if r["json"].get("webhook_id") == hook_id]
        return codes[-1] if codes else None

    def assert_signed(self, rec, hook):
        """Content-MD5 matches the body, Date is an RFC 7231 date within 15 minutes, and the
        Authorization header carries the webhook id and the right HMAC."""
        h = rec["headers"]
        self.assertEqual(h.get("content-type"), "application/json")
        md5 = base64.b64encode(hashlib.md5(rec["body"]).digest()).decode()
        self.assertEqual(h.get("content-md5"), md5)
        self.assertRegex(h.get("date", ""),
                         r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|"
                         r"Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$")
        sent = email.utils.parsedate_to_datetime(h["date"]).timestamp()
        self.assertLess(abs(rec["wall"] - sent), 15 * 60)
        m = AUTH_RE.match(h.get("authorization", ""))
        self.assertIsNotNone(m, h.get("authorization"))
        self.assertEqual(int(m.group(1)), hook["id"])
        want = expected_signature(hook["hmac_secret"], h["content-type"], h["content-md5"],
                                  rec["target"], h["date"])
        self.assertTrue(hmac.compare_digest(m.group(2), want), (m.group(2), want))
        # The check can fail: another secret or another URI gives another signature.
        self.assertNotEqual(m.group(2), expected_signature(hook["hmac_secret"] + "x",
                                                           h["content-type"], h["content-md5"],
                                                           rec["target"], h["date"]))
        self.assertEqual(rec["json"]["webhook_id"], hook["id"])

    def job(self, job_id):
        status, job = self.sb.call("GET", "/api/v3/jobs/%d" % job_id)
        self.assertEqual(status, 200, job)
        return job

    def wait_job_event(self, job_id, timeout=15.0):
        ok = self.rx.wait(lambda r: r.events({"job-state-changed-v2"}, job_id), timeout)
        self.assertTrue(ok, "no job-state-changed-v2 for %d; got %r" %
                        (job_id, [r["json"] for r in self.rx.all()]))


class RegistrationTest(WebhookCase):

    def test_register_and_verification_handshake(self):
        status, hook = self.sb.call("POST", "/api/v2/webhooks",
                                    {"webhook": {"url": self.rx.url(), "content_type": "json"}})
        self.assertEqual(status, 201, hook)
        self.assertEqual(set(hook), WEBHOOK_KEYS)
        self.assertEqual((hook["owner_type"], hook["owner_id"], hook["url"], hook["verified_at"],
                          hook["last_error"], hook["content_type"]),
                         ("Org", MAIN_ORG, self.rx.url(), None, None, "json"))
        self.assertEqual(len(base64.b64decode(hook["hmac_secret"], validate=True)), 32)

        # The code arrives, signed, and nothing else does before the verify call.
        self.assertTrue(self.rx.wait(lambda r: r.all()))
        rec = self.rx.all()[0]
        self.assertEqual(set(rec["json"]), {"event", "webhook_id", "code"})
        self.assertEqual(rec["json"]["event"], "webhook-verification-code")
        self.assertRegex(rec["json"]["code"], UUID_RE)
        self.assert_signed(rec, hook)
        self.assertEqual(rec["target"], "/webhooks/hover")
        out = self.sb.fire(MAIN_HOUSE, ["job-state-changed-v2", "model-state-changed"])
        self.assertEqual((out["events"], out["webhooks"]), (4, 1))
        time.sleep(0.4 * SLOW)
        self.assertEqual(len(self.rx.all()), 1, [r["json"] for r in self.rx.all()])
        unverified = [d for d in self.sb.deliveries() if d["result"] == "unverified"]
        self.assertEqual(len(unverified), 4)
        self.assertEqual(self.sb.hook_admin(hook["id"])["unverified"], 4)

        # Wrong code, or the right code from another org: 404.
        self.assertEqual(self.sb.call("PUT", "/api/v2/webhooks/%s/verify" %
                                      "00000000-0000-4000-8000-000000000000")[0], 404)
        other = self.sb.token(OTHER_ORG)
        self.assertEqual(self.sb.call("PUT", "/api/v2/webhooks/%s/verify" % rec["json"]["code"],
                                      token=other)[0], 404)
        self.assertEqual(self.sb.call("GET", "/api/v2/webhooks/%s/verify" %
                                      rec["json"]["code"])[0], 405)
        status, verified = self.sb.call("PUT", "/api/v2/webhooks/%s/verify" % rec["json"]["code"])
        self.assertEqual(status, 200, verified)
        self.assertIsNotNone(verified["verified_at"])
        self.assertNotIn("hmac_secret", verified)
        self.assertEqual(verified["id"], hook["id"])
        # Verifying twice is harmless.
        self.assertEqual(self.sb.call("PUT", "/api/v2/webhooks/%s/verify" %
                                      rec["json"]["code"])[0], 200)

        status, listing = self.sb.call("GET", "/api/v2/webhooks")
        self.assertEqual(status, 200)
        self.assertEqual([w["id"] for w in listing["results"]], [hook["id"]])
        self.assertEqual(listing["results"][0]["verified_at"], verified["verified_at"])
        self.assertNotIn("hmac_secret", listing["results"][0])
        self.assertEqual(listing["pagination"]["total"], 1)
        self.assertEqual(self.sb.call("GET", "/api/v2/webhooks", token=other)[1]["results"], [])
        status, one = self.sb.call("GET", "/api/v2/webhooks/%d" % hook["id"])
        self.assertEqual((status, one["id"]), (200, hook["id"]))

        # Now events flow, in the shapes of hover-api.md 4.1.
        self.sb.fire(MAIN_HOUSE)
        self.assertTrue(self.rx.wait(lambda r: r.events({"job-state-changed-v2"})))
        ev = self.rx.events({"job-state-changed-v2"})[0]
        self.assert_signed(ev, hook)
        self.assertEqual(ev["json"], {"event": "job-state-changed-v2", "webhook_id": hook["id"],
                                      "job_id": MAIN_HOUSE, "job_external_identifier": "8675309",
                                      "state": "completed", "content-available": 1,
                                      "job_estimated_hours_to_completion": 0})
        self.assertEqual(list(ev["json"]), ["event", "webhook_id", "job_id",
                                            "job_external_identifier", "state",
                                            "content-available",
                                            "job_estimated_hours_to_completion"])
        self.sb.fire(MAIN_HOUSE, ["model-created", "model-state-changed"])
        self.assertTrue(self.rx.wait(lambda r: len(r.events({"model-created",
                                                             "model-state-changed"})) == 6))
        for rec in self.rx.events({"model-created", "model-state-changed"}):
            self.assert_signed(rec, hook)
            self.assertEqual(list(rec["json"]), ["event", "webhook_id", "job_id", "model_id",
                                                 "state", "job_external_identifier"])
            self.assertIn(rec["json"]["model_id"], MAIN_HOUSE_MODELS)
            self.assertEqual(rec["json"]["state"], "complete")

    def test_registration_validation(self):
        bad = [({"webhook": {"content_type": "json"}}, "url"),
               ({"webhook": {"url": ""}}, "url"),
               ({"webhook": {"url": "ftp://127.0.0.1/hook"}}, "url"),
               ({"webhook": {"url": "http://example.com/hook"}}, "url"),
               ({"webhook": {"url": "http://user@127.0.0.1/hook"}}, "url"),
               ({"webhook": {"url": "http://127.0.0.1:99999/hook"}}, "url"),
               ({"webhook": {"url": "http://127.0.0.1.example.com/hook"}}, "url"),
               ({"webhook": {"url": "http://127.0.0.1/a b"}}, "url"),
               ({"webhook": {"url": self.rx.url(), "content_type": "xml"}}, "content_type")]
        for body, field in bad:
            status, err = self.sb.call("POST", "/api/v2/webhooks", body)
            self.assertEqual(status, 422, (body, err))
            self.assertIn(field, err["errors"], err)
        self.assertEqual(request("POST", self.sb.api + "/api/v2/webhooks",
                                 {"webhook": {"url": self.rx.url()}})[0], 401)
        self.assertEqual(self.sb.call("PATCH", "/api/v2/webhooks")[0], 405)
        # Form bodies and localhost work; content_type defaults to json.
        status, a = self.sb.call("POST", "/api/v2/webhooks",
                                 {"webhook[url]": self.rx.url("/a?x=1")}, form=True)
        self.assertEqual((status, a["content_type"]), (201, "json"))
        status, b = self.sb.call("POST", "/api/v2/webhooks",
                                 {"webhook": {"url": "http://localhost:%d/b" % self.rx.port}})
        self.assertEqual(status, 201, b)
        self.assertTrue(self.rx.wait(lambda r: len(r.all()) == 2))
        by_target = {r["target"]: r for r in self.rx.all()}
        self.assertEqual(set(by_target), {"/a?x=1", "/b"})
        self.assert_signed(by_target["/a?x=1"], a)  # the query is part of the request URI
        self.assert_signed(by_target["/b"], b)
        status, page = self.sb.call("GET", "/api/v2/webhooks?per=1&page=2")
        self.assertEqual(status, 200)
        self.assertEqual([w["id"] for w in page["results"]], [b["id"]])
        self.assertEqual(page["pagination"], {"current_page": 2, "next_page": None,
                                              "prev_page": 1, "total_pages": 2, "total": 2})

    def test_request_verification_sends_a_new_code(self):
        hook = self.register(verify=False)
        first = hook["code"]
        status, out = self.sb.call("POST", "/api/v2/webhooks/%d/request_verification" % hook["id"])
        self.assertEqual(status, 200, out)
        self.assertTrue(self.rx.wait(lambda r: len(r.events({"webhook-verification-code"})) == 2))
        second = self.code_of(self.rx, hook["id"])
        self.assertNotEqual(first, second)
        self.assertRegex(second, UUID_RE)
        self.assert_signed(self.rx.events({"webhook-verification-code"})[1], hook)
        self.assertEqual(self.sb.call("PUT", "/api/v2/webhooks/%s/verify" % first)[0], 404)
        self.assertEqual(self.sb.call("PUT", "/api/v2/webhooks/%s/verify" % second)[0], 200)
        self.assertEqual(self.sb.call("POST", "/api/v2/webhooks/1/request_verification")[0], 404)

    def test_webhooks_belong_to_their_org(self):
        other_tok = self.sb.token(OTHER_ORG)
        other_rx = Receiver()
        try:
            main_hook = self.register()
            other_hook = self.register(rx=other_rx, token=other_tok)
            status, other_job = self.sb.admin("POST", "/__sandbox/jobs",
                                              {"org_id": OTHER_ORG, "models": 1,
                                               "state": "complete"})
            self.assertEqual(status, 201, other_job)
            self.sb.fire(other_job["id"])
            self.sb.fire(MAIN_HOUSE)
            self.assertTrue(other_rx.wait(lambda r: r.events({"job-state-changed-v2"})))
            self.assertTrue(self.rx.wait(lambda r: r.events({"job-state-changed-v2"})))
            time.sleep(0.2 * SLOW)
            self.assertEqual([r["json"]["job_id"] for r in
                              other_rx.events({"job-state-changed-v2"})], [other_job["id"]])
            self.assertEqual([r["json"]["job_id"] for r in
                              self.rx.events({"job-state-changed-v2"})], [MAIN_HOUSE])
            self.assert_signed(other_rx.events({"job-state-changed-v2"})[0], other_hook)
            self.assertEqual(self.sb.call("DELETE", "/api/v2/webhooks/%d" % main_hook["id"],
                                          token=other_tok)[0], 404)
        finally:
            other_rx.close()

    def test_verification_before_response(self):
        """With the switch on, the code reaches the receiver before the 201 reaches the client;
        a receiver can verify from inside its handler without knowing the webhook yet."""
        self.sb.config(verification_before_response=True)
        verified = []

        def verify_now(rec):
            if (rec["json"] or {}).get("event") == "webhook-verification-code":
                verified.append(self.sb.call("PUT", "/api/v2/webhooks/%s/verify" %
                                             rec["json"]["code"])[0])

        rx = Receiver(on_post=verify_now)
        try:
            status, hook = self.sb.call("POST", "/api/v2/webhooks", {"webhook": {"url": rx.url()}})
            answered = time.monotonic()
            self.assertEqual(status, 201, hook)
            recs = rx.events({"webhook-verification-code"})
            self.assertEqual(len(recs), 1, "the code did not arrive before the response")
            self.assertLess(recs[0]["t"], answered)
            self.assertEqual(verified, [200])
            self.assertIsNone(hook["verified_at"])  # as it was when the code went out
            self.assertIsNotNone(self.sb.call("GET", "/api/v2/webhooks")[1]["results"][0]
                                 ["verified_at"])
        finally:
            rx.close()


class TestJobTest(WebhookCase):

    def job_events(self, job_id):
        return [r for r in self.rx.events(job_id=job_id)]

    def test_test_job_complete(self):
        hook = self.register()
        status, out = self.sb.call("POST", "/api/v3/jobs/test_job",
                                   {"job_preset": "multi-structure-exterior", "state": "complete",
                                    "failed_models_count": 0})
        self.assertEqual(status, 200, out)
        self.assertIs(out["success"], True)
        job_id = out["job_id"]
        early = self.job(job_id)
        self.assertIn(early["reconstruction_state"], ("draft", "processing"))
        self.assertEqual([m["name"] for m in early["models"]], ["House", "Detached Garage", "Shed"])
        for m in early["models"]:
            self.assertIn(m["state"], ("uploading", "processing"))
            self.assertIsNone(m["artifacts"])
        self.wait_job_event(job_id)
        time.sleep(0.1 * SLOW)
        events = self.job_events(job_id)
        kinds = [r["json"]["event"] for r in events]
        self.assertEqual(sorted(kinds), sorted(["model-created"] * 3 + ["model-state-changed"] * 3
                                               + ["job-state-changed-v2"]), kinds)
        model_ids = [m["id"] for m in early["models"]]
        for r in events:
            self.assert_signed(r, hook)
            self.assertEqual(r["json"]["job_external_identifier"], early["external_identifier"])
        created = self.rx.events({"model-created"}, job_id)
        self.assertEqual(sorted(r["json"]["model_id"] for r in created), sorted(model_ids))
        self.assertEqual({r["json"]["state"] for r in created}, {"uploading"})
        changed = self.rx.events({"model-state-changed"}, job_id)
        self.assertEqual(sorted(r["json"]["model_id"] for r in changed), sorted(model_ids))
        self.assertEqual({r["json"]["state"] for r in changed}, {"complete"})
        done = self.rx.events({"job-state-changed-v2"}, job_id)[0]["json"]
        self.assertEqual((done["state"], done["content-available"]), ("completed", 1))

        job = self.job(job_id)
        self.assertEqual(job["reconstruction_state"], "completed")
        self.assertGreaterEqual(job["updated_at"], early["updated_at"])
        self.assertIsNotNone(job["completed_at"])
        for before, m in zip(early["models"], job["models"]):
            self.assertEqual(m["state"], "complete")
            self.assertGreater(m["updated_at"], before["updated_at"])
            self.assertIsNotNone(m["artifacts"])
            self.assertTrue(m["images"])
        status, _ = self.sb.call("GET", "/api/v3/models/%d/artifacts/measurements.json"
                                 % model_ids[0])
        self.assertEqual(status, 200)
        # The job is listed like any other of the org, and found by updated_since.
        status, listed = self.sb.call("GET", "/api/v3/jobs?per=100&updated_since=%d"
                                      % (int(time.time()) - 120))
        self.assertEqual(status, 200)
        self.assertIn(job_id, [j["id"] for j in listed["results"]])

    def test_test_job_one_failed_model_form_body(self):
        self.register()
        status, out = self.sb.call("POST", "/api/v3/jobs/test_job",
                                   {"job_preset": "multi-structure-exterior", "state": "complete",
                                    "failed_models_count": "1"}, form=True)
        self.assertEqual(status, 200, out)
        job_id = out["job_id"]
        self.wait_job_event(job_id)
        states = sorted(r["json"]["state"] for r in self.rx.events({"model-state-changed"}, job_id))
        self.assertEqual(states, ["complete", "complete", "failed"])
        self.assertEqual(self.rx.events({"job-state-changed-v2"}, job_id)[0]["json"]["state"],
                         "completed")
        job = self.job(job_id)
        self.assertEqual(job["reconstruction_state"], "completed")
        self.assertEqual([(m["name"], m["state"]) for m in job["models"]],
                         [("House", "complete"), ("Detached Garage", "complete"),
                          ("Shed", "failed")])
        self.assertIsNone(job["models"][2]["artifacts"])

    def test_test_job_failed(self):
        self.register()
        status, out = self.sb.call("POST", "/api/v3/jobs/test_job",
                                   {"job_preset": "multi-structure-exterior", "state": "failed"})
        self.assertEqual(status, 200, out)
        job_id = out["job_id"]
        self.wait_job_event(job_id)
        self.assertEqual([r["json"]["state"] for r in
                          self.rx.events({"model-state-changed"}, job_id)], ["failed"] * 3)
        self.assertEqual(self.rx.events({"job-state-changed-v2"}, job_id)[0]["json"]["state"],
                         "failed")
        job = self.job(job_id)
        self.assertEqual(job["reconstruction_state"], "failed")
        self.assertEqual({m["state"] for m in job["models"]}, {"failed"})

    def test_test_job_bad_values(self):
        status, err = self.sb.call("POST", "/api/v3/jobs/test_job",
                                   {"job_preset": "multi-structure-exterior",
                                    "failed_models_count": 4})
        self.assertEqual((status, err),
                         (422, {"error": {"job": "Invalid failed_models_count: 4. "
                                                 "Allowed: 0, 1, 2"}}))
        for body, msg in [({"failed_models_count": "-1"}, "Invalid failed_models_count: -1."),
                          ({"failed_models_count": "x"}, "Invalid failed_models_count: x."),
                          ({"state": "bogus"}, "Invalid state: bogus. Allowed: complete, failed"),
                          ({"job_preset": "single"}, "Invalid job_preset: single.")]:
            status, err = self.sb.call("POST", "/api/v3/jobs/test_job", body, form=True)
            self.assertEqual(status, 422, (body, err))
            self.assertTrue(err["error"]["job"].startswith(msg), err)
        self.assertEqual(request("POST", self.sb.api + "/api/v3/jobs/test_job", {})[0], 401)
        self.assertEqual(self.sb.call("GET", "/api/v3/jobs/test_job")[0], 405)
        # Nothing was created.
        self.assertEqual(self.sb.admin("GET", "/__sandbox/config")[1]["jobs"], 30)

    def test_set_test_state_on_a_single_structure_job(self):
        hook = self.register()
        status, job = self.sb.admin("POST", "/__sandbox/jobs", {"models": 1, "state": "uploading"})
        self.assertEqual(status, 201, job)
        self.assertEqual((job["reconstruction_state"], len(job["models"]),
                          job["models"][0]["state"]), ("draft", 1, "uploading"))
        job_id = job["id"]
        status, out = self.sb.call("PATCH", "/api/v2/jobs/%d/set_test_state.json?state=complete"
                                   % job_id)
        self.assertEqual((status, out), (200, {"success": True, "job_id": job_id}))
        self.assertEqual(self.sb.call("PATCH", "/api/v2/jobs/%d/set_test_state.json?state=complete"
                                      % job_id)[0], 422)  # already running
        self.wait_job_event(job_id)
        time.sleep(0.1 * SLOW)
        events = self.rx.events(job_id=job_id)
        self.assertEqual(sorted(r["json"]["event"] for r in events),
                         ["job-state-changed-v2", "model-created", "model-state-changed"])
        for r in events:
            self.assert_signed(r, hook)
        self.assertEqual(self.rx.events({"model-state-changed"}, job_id)[0]["json"]["model_id"],
                         job["models"][0]["id"])
        self.assertEqual(self.job(job_id)["reconstruction_state"], "completed")
        status, err = self.sb.call("PATCH", "/api/v2/jobs/%d/set_test_state.json?state=failed"
                                   % job_id)
        self.assertEqual(status, 422)
        self.assertIn("not uploading", err["error"]["job"])

        status, job2 = self.sb.admin("POST", "/__sandbox/jobs", {"models": 1})
        self.assertEqual(status, 201)
        status, err = self.sb.call("PATCH", "/api/v2/jobs/%d/set_test_state.json?state=done"
                                   % job2["id"])
        self.assertEqual((status, err["error"]["job"]),
                         (422, "Invalid state: done. Allowed: complete, failed"))
        self.assertEqual(self.sb.call("PUT", "/api/v2/jobs/%d/set_test_state.json?state=failed"
                                      % job2["id"])[0], 405)
        self.assertEqual(self.sb.call("PATCH", "/api/v2/jobs/%d/set_test_state.json?state=failed"
                                      % job2["id"], token=self.sb.token(OTHER_ORG))[0], 404)
        self.assertEqual(self.sb.call("PATCH", "/api/v2/jobs/1/set_test_state?state=failed")[0],
                         404)
        self.assertEqual(self.sb.call("PATCH", "/api/v2/jobs/%d/set_test_state?state=failed"
                                      % job2["id"])[0], 200)
        self.wait_job_event(job2["id"])
        self.assertEqual(self.rx.events({"job-state-changed-v2"}, job2["id"])[0]["json"]["state"],
                         "failed")

    def test_drafts_and_api_created_jobs_fire_nothing(self):
        self.register()
        status, job = self.sb.admin("POST", "/__sandbox/jobs",
                                    {"models": 2, "external_identifier": "CRM-1"})
        self.assertEqual(status, 201, job)
        status, err = self.sb.admin("POST", "/__sandbox/jobs/%d/events" % job["id"], {})
        self.assertEqual(status, 422, err)
        self.assertEqual(self.sb.admin("POST", "/__sandbox/jobs/%d/events" % DRAFT_JOB, {})[0], 422)
        self.assertEqual(self.sb.admin("POST", "/__sandbox/jobs/1/events", {})[0], 404)
        time.sleep(0.3 * SLOW)
        self.assertEqual([r["json"]["event"] for r in self.rx.all()],
                         ["webhook-verification-code"])
        # An explicit state forces one (a test tool), with the job's external identifier.
        self.sb.fire(job["id"], state="completed")
        self.assertTrue(self.rx.wait(lambda r: r.events({"job-state-changed-v2"}, job["id"])))
        self.assertEqual(self.rx.events({"job-state-changed-v2"})[0]["json"]
                         ["job_external_identifier"], "CRM-1")


class DeliveryFailureTest(WebhookCase):

    def test_retries_with_backoff_and_last_error(self):
        healthy = threading.Event()
        self.rx.status = lambda rec: 200 if healthy.is_set() else 500
        status, hook = self.sb.call("POST", "/api/v2/webhooks", {"webhook": {"url": self.rx.url()}})
        self.assertEqual(status, 201)
        self.assertTrue(self.rx.wait(lambda r: len(r.all()) >= 3), "no retries arrived")
        status, listing = self.sb.call("GET", "/api/v2/webhooks")
        self.assertEqual(listing["results"][0]["last_error"], "HTTP 500")
        healthy.set()
        self.assertTrue(wait_until(lambda: self.sb.hook_admin(hook["id"])["delivered"] == 1))
        recs = self.rx.all()
        self.assertEqual(len({r["body"] for r in recs}), 1)  # the same delivery each time
        for r in recs:
            self.assert_signed(r, hook)
        log = [d for d in self.sb.deliveries() if d["webhook_id"] == hook["id"]]
        self.assertEqual([d["attempt"] for d in log], list(range(1, len(recs) + 1)))
        self.assertEqual([d["result"] for d in log], ["failed"] * (len(recs) - 1) + ["delivered"])
        self.assertEqual([d["status"] for d in log], [500] * (len(recs) - 1) + [200])
        self.assertEqual([d["retry_in_ms"] for d in log[:-1]],
                         [50 * 2 ** i for i in range(len(recs) - 1)])
        gaps = [b["t"] - a["t"] for a, b in zip(recs, recs[1:])]
        for i, gap in enumerate(gaps):
            self.assertGreaterEqual(gap, 0.05 * 2 ** i * 0.9, gaps)
        admin = self.sb.hook_admin(hook["id"])
        self.assertEqual((admin["sent"], admin["failed"], admin["pending"]),
                         (len(recs), len(recs) - 1, 0))
        # A success clears last_error.
        self.assertIsNone(self.sb.call("GET", "/api/v2/webhooks")[1]["results"][0]["last_error"])

    def test_connection_refused(self):
        url = "http://127.0.0.1:%d/gone" % free_port()
        status, hook = self.sb.call("POST", "/api/v2/webhooks", {"webhook": {"url": url}})
        self.assertEqual(status, 201)
        self.assertTrue(wait_until(lambda: self.sb.hook_admin(hook["id"])["failed"] >= 2))
        listing = self.sb.call("GET", "/api/v2/webhooks")[1]["results"]
        self.assertEqual(listing[0]["last_error"], "connection refused")
        log = [d for d in self.sb.deliveries() if d["webhook_id"] == hook["id"]]
        self.assertEqual((log[0]["status"], log[0]["result"], log[0]["error"]),
                         (0, "failed", "connection refused"))

    def test_delete_stops_deliveries(self):
        failing = threading.Event()
        self.rx.status = lambda rec: 500 if failing.is_set() else 200
        hook = self.register()
        failing.set()
        self.sb.config(webhook_retry_base_ms=30)
        self.sb.fire(MAIN_HOUSE)
        self.assertTrue(self.rx.wait(lambda r: len(r.events({"job-state-changed-v2"})) >= 2))
        status, body = self.sb.call("DELETE", "/api/v2/webhooks/%d" % hook["id"])
        self.assertEqual((status, body), (204, None))
        n = len(self.rx.all())
        time.sleep(0.6 * SLOW)
        self.assertLessEqual(len(self.rx.all()), n + 1)  # at most the attempt in flight
        self.assertEqual(self.sb.call("DELETE", "/api/v2/webhooks/%d" % hook["id"])[0], 404)
        self.assertEqual(self.sb.call("GET", "/api/v2/webhooks")[1]["results"], [])
        self.assertEqual(self.sb.fire(MAIN_HOUSE)["webhooks"], 0)
        admin = self.sb.hook_admin(hook["id"])
        self.assertTrue(admin["deleted"])
        self.assertEqual(admin["pending"], 0)
        # The pending retry was cancelled, or the attempt in flight was the last one.
        last = [d for d in self.sb.deliveries() if d["webhook_id"] == hook["id"]][-1]
        self.assertTrue(last["result"] == "cancelled" or
                        (last["result"] == "failed" and last["retry_in_ms"] is None), last)


class ChaosTest(WebhookCase):

    def test_duplicates(self):
        hook = self.register()
        self.sb.config(webhook_duplicate_rate=1.0)
        self.sb.fire(MAIN_HOUSE, ["job-state-changed-v2", "model-state-changed"])
        admin = lambda: self.sb.hook_admin(hook["id"])
        self.assertTrue(wait_until(lambda: admin()["pending"] == 0 and admin()["delivered"] > 4))
        bodies = [r["body"] for r in self.rx.events({"job-state-changed-v2",
                                                     "model-state-changed"})]
        self.assertEqual(len(set(bodies)), 4)
        for b in set(bodies):
            self.assertGreaterEqual(bodies.count(b), 2)
        self.assertEqual(admin()["duplicated"], len(bodies) - 4)
        for r in self.rx.all():
            self.assert_signed(r, hook)
        copies = [d for d in self.sb.deliveries() if d["copy_of"]]
        self.assertEqual(len(copies), len(bodies) - 4)
        self.assertTrue(all("duplicate" in d["fault"] for d in copies))

    def test_drops(self):
        hook = self.register()
        self.sb.config(webhook_drop_rate=1.0)
        self.sb.fire(MAIN_HOUSE, ["job-state-changed-v2", "model-created"])
        time.sleep(0.4 * SLOW)
        self.assertEqual(len(self.rx.all()), 1)  # the verification code only
        dropped = [d for d in self.sb.deliveries() if d["result"] == "dropped"]
        self.assertEqual(len(dropped), 4)
        self.assertTrue(all(d["status"] == 0 and d["fault"] == "drop" for d in dropped))
        self.assertEqual(self.sb.hook_admin(hook["id"])["dropped"], 4)
        # and the request log says so too
        log = self.sb.admin("GET", "/__sandbox/requests")[1]["requests"]
        self.assertEqual(len([e for e in log if e["listener"] == "webhook"
                              and e["result"] == "dropped"]), 4)

    def test_drops_repeat_with_the_seed(self):
        def run():
            sb = Sandbox("--webhook-drop-rate", "0.5")
            rx = Receiver()
            try:
                old, self.sb = self.sb, sb
                try:
                    self.register(rx=rx)
                    sb.fire(MAIN_HOUSE, ["model-created", "model-state-changed",
                                         "job-state-changed-v2"] * 4)
                finally:
                    self.sb = old
                wait_until(lambda: not any(h["pending"] for h in
                                           sb.admin("GET", "/__sandbox/webhooks")[1]["webhooks"]))
                return [d["result"] for d in sb.deliveries()
                        if d["event"] != "webhook-verification-code"]
            finally:
                rx.close()
                self.assertEqual(sb.stop(), 0)
        first, second = run(), run()
        self.assertEqual(first, second)
        self.assertEqual(len(first), 28)
        self.assertTrue(0 < first.count("dropped") < 28, first)

    def test_reorder(self):
        hook = self.register()
        self.sb.config(webhook_reorder=True)
        out = self.sb.fire(MAIN_HOUSE, ["model-created", "model-state-changed"])
        self.assertEqual(out["events"], 6)
        self.assertTrue(self.rx.wait(lambda r: len(r.all()) == 7))
        got = [(r["json"]["event"], r["json"]["model_id"]) for r in self.rx.all()[1:]]
        emitted = [(e, m) for e in ("model-created", "model-state-changed")
                   for m in MAIN_HOUSE_MODELS]
        self.assertEqual(sorted(got), sorted(emitted))
        self.assertNotEqual(got, emitted)
        sent = [d for d in self.sb.deliveries() if d["result"] == "delivered"
                and d["event"] != "webhook-verification-code"]
        self.assertTrue(all("reordered" in d["fault"] for d in sent))
        # the deliveries went out in the shuffled order, one at a time
        self.assertEqual([(d["event"], d["model_id"]) for d in sent], got)
        for r in self.rx.all():
            self.assert_signed(r, hook)

    def test_unknown_events(self):
        hook = self.register()
        self.sb.config(webhook_unknown_events=True)
        self.sb.fire(MAIN_HOUSE, ["job-state-changed-v2", "model-created"])
        self.assertTrue(self.rx.wait(lambda r: len(r.all()) == 9))
        kinds = [r["json"]["event"] for r in self.rx.all()[1:]]
        unknown = [k for k in kinds if k in UNKNOWN_TYPES]
        self.assertEqual(len(unknown), 4, kinds)
        self.assertEqual(kinds.count("job-state-changed-v2") + kinds.count("model-created"), 4)
        for r in self.rx.all():
            self.assert_signed(r, hook)
            if r["json"]["event"] in UNKNOWN_TYPES:
                self.assertEqual(r["json"]["job_id"], MAIN_HOUSE)

    def test_switches_from_the_command_line_and_config(self):
        sb = Sandbox("--webhook-duplicate-rate", "0.25", "--webhook-drop-rate", "0.1",
                     "--webhook-reorder", "--webhook-unknown-events",
                     "--verification-before-response", "--reconstruction-seconds", "2.5",
                     "--webhook-retry-base-ms", "70")
        try:
            cfg = sb.admin("GET", "/__sandbox/config")[1]
            self.assertEqual({k: cfg[k] for k in (
                "webhook_duplicate_rate", "webhook_drop_rate", "webhook_reorder",
                "webhook_unknown_events", "verification_before_response",
                "reconstruction_seconds", "webhook_retry_base_ms")},
                {"webhook_duplicate_rate": 0.25, "webhook_drop_rate": 0.1,
                 "webhook_reorder": True, "webhook_unknown_events": True,
                 "verification_before_response": True, "reconstruction_seconds": 2.5,
                 "webhook_retry_base_ms": 70})
            for bad in ({"webhook_drop_rate": 2}, {"webhook_reorder": "yes"},
                        {"reconstruction_seconds": 0}, {"webhook_retry_base_ms": 0}):
                self.assertEqual(sb.admin("POST", "/__sandbox/config", bad)[0], 422, bad)
        finally:
            self.assertEqual(sb.stop(), 0)
        for args in (["--webhook-drop-rate", "1.5"], ["--reconstruction-seconds", "0"],
                     ["--webhook-retry-base-ms", "x"]):
            rc = subprocess.run([BIN, *args], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, timeout=30).returncode
            self.assertEqual(rc, 2, args)


# The signer variants (docs/SANDBOX.md): (method first, digest header, prefix, HMAC digest).
SIGNERS = {
    "1.x": (False, "content-md5", "APIAuth-HMAC-SHA256", hashlib.sha256),
    "2.4-sha1": (True, "content-md5", "APIAuth", hashlib.sha1),
    "2.4-sha256": (True, "content-md5", "APIAuth-HMAC-SHA256", hashlib.sha256),
    "2.5-sha256": (True, "x-authorization-content-sha256", "APIAuth-HMAC-SHA256",
                   hashlib.sha256),
    "2.5-sha512": (True, "x-authorization-content-sha256", "APIAuth-HMAC-SHA512",
                   hashlib.sha512),
}


class SignerTest(WebhookCase):
    """Each signer variant and access-id form signs as the api_auth release it names, checked
    against a signature computed here (Python's hmac/hashlib)."""

    def check(self, rec, hook, signer, access_id):
        method, digest_header, prefix, digest = SIGNERS[signer]
        h = rec["headers"]
        body_digest = (hashlib.md5 if digest_header == "content-md5" else hashlib.sha256)
        want_digest = base64.b64encode(body_digest(rec["body"]).digest()).decode()
        self.assertEqual(h.get(digest_header), want_digest, (signer, h))
        other = ("x-authorization-content-sha256" if digest_header == "content-md5"
                 else "content-md5")
        self.assertNotIn(other, h)
        parts = (["POST"] if method else []) + [h["content-type"], want_digest, rec["target"],
                                                h["date"]]
        sig = base64.b64encode(hmac.new(hook["hmac_secret"].encode(), ",".join(parts).encode(),
                                        digest).digest()).decode()
        self.assertEqual(h["authorization"], "%s %s:%s" % (prefix, access_id, sig), signer)

    def test_every_signer_and_access_id(self):
        ids = {"webhook-id": lambda hook: str(hook["id"]),
               "org-id": lambda hook: str(MAIN_ORG),
               "name": lambda hook: "hover-org-%d" % MAIN_ORG}
        for signer in SIGNERS:
            for form in ids:
                status, cfg = self.sb.admin("POST", "/__sandbox/config",
                                            {"webhook_signer": signer,
                                             "webhook_access_id": form})
                self.assertEqual(status, 200, cfg)
                self.assertEqual((cfg["webhook_signer"], cfg["webhook_access_id"]),
                                 (signer, form))
                rx = Receiver()
                try:
                    hook = self.register(rx=rx, verify=False)
                    rec = [r for r in rx.events({"webhook-verification-code"})][-1]
                    self.check(rec, hook, signer, ids[form](hook))
                finally:
                    rx.close()
        for bad in ({"webhook_signer": "2.6"}, {"webhook_signer": 1},
                    {"webhook_access_id": "email"}):
            self.assertEqual(self.sb.admin("POST", "/__sandbox/config", bad)[0], 422, bad)

    def test_signer_from_the_command_line(self):
        sb = Sandbox("--webhook-signer", "2.5-sha512", "--webhook-access-id", "name")
        try:
            cfg = sb.admin("GET", "/__sandbox/config")[1]
            self.assertEqual((cfg["webhook_signer"], cfg["webhook_access_id"]),
                             ("2.5-sha512", "name"))
        finally:
            self.assertEqual(sb.stop(), 0)
        self.assertEqual(self.sb.admin("GET", "/__sandbox/config")[1]["webhook_signer"], "1.x")
        for args in (["--webhook-signer", "3.0"], ["--webhook-access-id", "x"]):
            rc = subprocess.run([BIN, *args], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, timeout=30).returncode
            self.assertEqual(rc, 2, args)


class LogTest(WebhookCase):

    def test_delivery_attempts_in_the_request_log(self):
        hook = self.register()
        self.sb.fire(MAIN_HOUSE)
        self.assertTrue(self.rx.wait(lambda r: r.events({"job-state-changed-v2"})))
        self.assertTrue(wait_until(lambda: self.sb.hook_admin(hook["id"])["delivered"] == 2))
        log = self.sb.admin("GET", "/__sandbox/requests")[1]["requests"]
        hooks = [e for e in log if e["listener"] == "webhook"]
        self.assertEqual([(e["event"], e["job_id"], e["status"], e["attempt"], e["result"])
                          for e in hooks],
                         [("webhook-verification-code", None, 200, 1, "delivered"),
                          ("job-state-changed-v2", MAIN_HOUSE, 200, 1, "delivered")])
        e = hooks[1]
        self.assertEqual((e["method"], e["path"], e["query"], e["webhook_id"], e["auth"],
                          e["fault"], e["url"]),
                         ("POST", "/webhooks/hover", "", hook["id"], True, "none", self.rx.url()))
        self.assertEqual(json.loads(e["body"]), self.rx.events({"job-state-changed-v2"})[0]["json"])
        self.assertEqual(e["bytes"], len(e["body"]))
        # the API requests of the test are there too, and the file has the same lines
        self.assertTrue(any(x["listener"] == "api" and x["path"] == "/api/v2/webhooks"
                            for x in log))
        with open(self.sb.log_path) as f:
            lines = [json.loads(l) for l in f if l.strip()]
        self.assertEqual([l for l in lines if l["listener"] == "webhook"], hooks)
        # the secret is never logged
        with open(self.sb.log_path) as f:
            self.assertNotIn(hook["hmac_secret"], f.read())
        self.assertNotIn(hook["hmac_secret"], json.dumps(self.sb.deliveries()))
        self.assertNotIn(hook["hmac_secret"],
                         json.dumps(self.sb.admin("GET", "/__sandbox/webhooks")[1]))
        self.assertEqual(self.sb.admin("DELETE", "/__sandbox/deliveries")[0], 200)
        self.assertEqual(self.sb.deliveries(), [])


if __name__ == "__main__":
    if not BIN or not os.access(BIN, os.X_OK):
        sys.exit("test_sandbox_webhooks.py: set HOVER_SANDBOX_BIN or pass the hover-sandbox path")
    unittest.main(verbosity=2)
