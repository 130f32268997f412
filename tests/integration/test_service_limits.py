#!/usr/bin/env python3
"""test_service_limits.py: nobody can exhaust `hoversync serve`, and a slow Hover holds up only its
own work. Real processes on loopback:

- slow headers: 300 connections from 5 addresses trickling a header line at a time do not keep a
  normal client out, and are closed at the header deadline while they still trickle;
- strict HTTP before routing (raw sockets): ambiguous framing is refused with 400, an unsupported
  Transfer-Encoding with 501, a body over the cap with 413, never a hang;
- routes that spend Hover requests are limited per API key and per session (429, Retry-After);
- GET /api/status answers from the store and a cached webhook health (the sandbox's request log
  counts what 160 status calls cost);
- Show Job delayed in the sandbox: meanwhile a store-only route, another job's view and a webhook
  delivery are answered; the slow views answer 504 after --hover-wait, and the Show Job that goes
  on in the background fills the cache.
Standard library only; binaries from $HOVERSYNC_BIN and $HOVER_SANDBOX_BIN (set by meson)."""
import base64
import email.utils
import hashlib
import hmac
import json
import os
import socket
import sqlite3
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import JOB_ALL_COMPLETE, JOB_ONE_FAILED, http_request, wait_for  # noqa: E402

SLOW = 3 if os.environ.get("HOVERSYNC_SANITIZED") else 1


def raw_exchange(port, data, timeout=10, until_close=False):
    """Sends raw bytes; returns (status or None, the answer's bytes, closed: the server closed
    the connection). A server that neither answers nor closes within timeout (nor closes after
    its answer, with until_close) fails the test."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(timeout)
    out = b""
    closed = False
    try:
        s.sendall(data)
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                closed = True
                break
            if not b:
                closed = True
                break
            out += b
            head, sep, rest = out.partition(b"\r\n\r\n")
            if sep and not head.startswith(b"HTTP/1.1 100"):
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if len(rest) >= length and not until_close:
                    break
    except socket.timeout:
        raise AssertionError("no answer and no close within %d s (a hang): %r" % (timeout, out))
    finally:
        s.close()
    status = int(out.split(b" ", 2)[1]) if out.startswith(b"HTTP/") else None
    return status, out, closed


def signed(secret, webhook_id, body):
    """A delivery signed like Hover's (hover-api.md 4.2)."""
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    date = email.utils.formatdate(usegmt=True)
    canonical = ",".join(["application/json", md5, "/webhooks/hover", date])
    sig = base64.b64encode(hmac.new(secret.encode(), canonical.encode(),
                                    hashlib.sha256).digest()).decode()
    return {"Content-Type": "application/json", "Content-MD5": md5, "Date": date,
            "Authorization": "APIAuth-HMAC-SHA256 %d:%s" % (webhook_id, sig)}


def metric(svc, name):
    text = svc.get("/metrics").body.decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError("no metric %s in:\n%s" % (name, text))


class SlowHeaders(unittest.TestCase):
    N = 300
    ADDRESSES = 5  # 60 connections each: under the per-address cap of 64

    def test_slow_headers_do_not_keep_clients_out(self):
        sb = harness.Sandbox(jobs=10)
        svc = harness.Service(sb, sb.tokens(), HOVERSYNC_HEADER_TIMEOUT=8 * SLOW)
        socks, stop = [], threading.Event()
        alive = {}
        try:
            for i in range(self.N):
                s = socket.socket()
                s.bind(("127.0.0.%d" % (1 + i % self.ADDRESSES), 0))
                s.connect(("127.0.0.1", svc.port))
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                socks.append(s)
                alive[i] = True

            def trickle():  # one header line each, twice a second: the idle timeout never fires
                while not stop.is_set():
                    for i, s in enumerate(socks):
                        if alive[i]:
                            try:
                                s.sendall(b"X-Slow: %d\r\n" % i)
                            except OSError:
                                alive[i] = False
                    stop.wait(0.5)

            t = threading.Thread(target=trickle)
            t.start()
            r = http_request(svc.port, "GET", "/healthz", timeout=60)
            self.assertEqual(r.status, 200)
            open_after = sum(alive.values())
            # Answered while the slow connections were still there.
            self.assertGreater(open_after, 0)
            # They are closed at the deadline although they keep trickling.
            wait_for("the slow connections closed", lambda: not any(alive.values()), 60)
            stop.set()
            t.join()
            self.assertGreaterEqual(metric(svc, "hoversync_http_header_timeouts_total"), self.N)
            self.assertEqual(http_request(svc.port, "GET", "/healthz").status, 200)
        finally:
            stop.set()
            for s in socks:
                s.close()
            rc = svc.stop()
            err = svc.read_stderr()
            svc.cleanup()
            sb.stop()
        self.assertEqual(rc, 0, err[-3000:])


    def test_near_the_connection_limit_slow_headers_go_first(self):
        # A header deadline far away: only the pressure rule can close them while they trickle.
        sb = harness.Sandbox(jobs=10)
        svc = harness.Service(sb, sb.tokens(), HOVERSYNC_HEADER_TIMEOUT=300,
                              HOVERSYNC_MAX_CONNECTIONS=40)
        socks, extra = [], []

        def slow():
            s = socket.socket()
            s.connect(("127.0.0.1", svc.port))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            return s

        try:
            socks = [slow() for _ in range(36)]  # over three quarters of 40
            closed = set()

            def all_closed():
                for i, s in enumerate(socks):
                    if i in closed:
                        continue
                    try:
                        s.sendall(b"X-Slow: %d\r\n" % i)
                    except OSError:
                        closed.add(i)
                        # The pressure holds while slow clients keep coming: one accepted less
                        # than a second before the others were closed is closed in its turn.
                        try:
                            extra.append(slow())
                        except OSError:
                            pass
                time.sleep(0.2)
                return len(closed) == len(socks)

            wait_for("the slow connections closed under pressure", all_closed, 60)
            self.assertEqual(http_request(svc.port, "GET", "/healthz").status, 200)
        finally:
            for s in socks + extra:
                s.close()
            rc = svc.stop()
            err = svc.read_stderr()
            svc.cleanup()
            sb.stop()
        self.assertEqual(rc, 0, err[-3000:])


class StrictHttp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = harness.Sandbox(jobs=10)
        cls.svc = harness.Service(cls.sb, cls.sb.tokens())
        cls.key = b"Authorization: Bearer " + cls.svc.api_key.encode() + b"\r\n"

    @classmethod
    def tearDownClass(cls):
        rc = cls.svc.stop()
        err = cls.svc.read_stderr()
        cls.svc.cleanup()
        cls.sb.stop()
        assert rc == 0, err[-3000:]

    def post(self, headers, body=b""):
        return (b"POST /api/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n" + self.key +
                b"Content-Type: application/json\r\n" + headers + b"\r\n" + body)

    def assert_refused(self, data, status, code, words):
        got, out, closed = raw_exchange(self.svc.port, data, until_close=True)
        self.assertEqual(got, status, out[:300])
        body = json.loads(out.partition(b"\r\n\r\n")[2])
        self.assertEqual(body["error"]["code"], code)
        self.assertEqual(body["error"]["status"], status)
        self.assertIn(words, body["error"]["message"])
        self.assertTrue(closed, "the connection must close after a framing error")

    def test_ambiguous_framing_is_400(self):
        body = b'{"user":"x"}'
        chunked = b"c\r\n" + body + b"\r\n0\r\n\r\n"
        self.assert_refused(self.post(b"Content-Length: 12\r\nTransfer-Encoding: chunked\r\n",
                                      chunked), 400, "bad_request", "Transfer-Encoding")
        self.assert_refused(self.post(b"Content-Length: 12\r\nContent-Length: 13\r\n",
                                      body + b"x"), 400, "bad_request", "Content-Length")
        self.assert_refused(self.post(b"Transfer-Encoding: chunked\r\n"
                                      b"Transfer-Encoding: chunked\r\n", chunked),
                            400, "bad_request", "chunked")
        self.assert_refused(b"GET /healthz HTTP/1.1\r\n\r\n", 400, "bad_request", "Host")
        self.assert_refused(b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                            400, "bad_request", "Host")
        # Repeating the same length is not ambiguous; HTTP/1.0 has no Host rule.
        status, _, _ = raw_exchange(self.svc.port, self.post(
            b"Content-Length: 12\r\nContent-Length: 12\r\nConnection: close\r\n", body))
        self.assertEqual(status, 201)
        status, _, _ = raw_exchange(self.svc.port, b"GET /healthz HTTP/1.0\r\n\r\n")
        self.assertEqual(status, 200)

    def test_unsupported_coding_is_501(self):
        self.assert_refused(self.post(b"Transfer-Encoding: gzip\r\n", b"xx"),
                            501, "not_implemented", "gzip")
        self.assert_refused(self.post(b"Transfer-Encoding: gzip, chunked\r\n", b"2\r\nxx\r\n"),
                            501, "not_implemented", "gzip")

    def test_bodies_over_the_cap_are_answered(self):
        for length in (b"9223372036854775808", b"18446744073709551615", b"2000000"):
            self.assert_refused(self.post(b"Content-Length: " + length + b"\r\n", b"x" * 1000),
                                413, "payload_too_large", "limited")
        # A client that waits for "100 Continue" gets the 413 instead, before sending the body.
        got, out, closed = raw_exchange(self.svc.port, self.post(
            b"Content-Length: 100000\r\nExpect: 100-continue\r\n"))
        self.assertEqual(got, 413, out[:200])
        self.assertNotIn(b"100 Continue", out)
        # Sent in full: read, dropped, answered, and the connection stays usable.
        got, out, closed = raw_exchange(self.svc.port, self.post(
            b"Content-Length: 100000\r\n", b"x" * 100000))
        self.assertEqual(got, 413, out[:200])
        # A chunked body past 1 MiB: libmicrohttpd 0.9.75 takes no answer in the middle of a
        # body, so the connection closes at once (not a hang).
        piece = b"%x\r\n" % 100000 + b"x" * 100000 + b"\r\n"
        got, out, closed = raw_exchange(self.svc.port, self.post(
            b"Transfer-Encoding: chunked\r\n", piece * 20 + b"0\r\n\r\n"))
        self.assertIsNone(got)
        self.assertTrue(closed)
        self.assertEqual(http_request(self.svc.port, "GET", "/healthz").status, 200)


class CallerRates(unittest.TestCase):
    def test_hover_routes_limited_per_key_and_session(self):
        sb = harness.Sandbox("--rate-limit", "0", jobs=10)
        svc = harness.Service(sb, sb.tokens(), HOVERSYNC_CALLER_RATE_LIMIT=2)
        try:
            path = "/api/jobs/%d" % JOB_ALL_COMPLETE
            for _ in range(2):
                self.assertEqual(svc.get(path).status, 200)
            seq = sb.last_seq()
            r = svc.get(path)
            self.assertEqual(r.status, 429, r.body)
            self.assertEqual(harness.api_requests(sb.requests(seq)), [])  # nothing spent
            self.assertEqual(r.json["error"]["code"], "rate_limited")
            self.assertIn("API key", r.json["error"]["message"])
            self.assertGreaterEqual(int(r.header("Retry-After")), 1)
            # Store-only routes are not limited.
            self.assertEqual(svc.get("/api/connections").status, 200)
            # Each session has its own allowance.
            sessions = []
            for user in ("u1", "u2"):
                s = svc.request("POST", "/api/sessions", {"user": user})
                self.assertEqual(s.status, 201, s.body)
                sessions.append(s.json["session"])
            for _ in range(2):
                self.assertEqual(svc.get(path, key=False, cookie=sessions[0]).status, 200)
            r = svc.get(path, key=False, cookie=sessions[0])
            self.assertEqual(r.status, 429)
            self.assertIn("session", r.json["error"]["message"])
            self.assertEqual(svc.get(path, key=False, cookie=sessions[1]).status, 200)
            self.assertGreaterEqual(metric(svc, "hoversync_http_rate_limited_total"), 2)
        finally:
            rc = svc.stop()
            err = svc.read_stderr()
            svc.cleanup()
            sb.stop()
        self.assertEqual(rc, 0, err[-3000:])

    def test_status_answers_from_the_store_and_a_cache(self):
        sb = harness.Sandbox("--rate-limit", "0", jobs=10)
        svc = harness.Service(sb, sb.tokens())
        try:
            before = sb.last_seq()
            for _ in range(160):
                r = svc.get("/api/status")
                self.assertEqual(r.status, 200, r.body)
            hover = harness.api_requests(sb.requests(before))
            # One connection: its webhook list asked once, not once per call.
            self.assertLessEqual(len(hover), 1, [e["path"] for e in hover])
            self.assertEqual(set(r.json), {"connections", "webhooks", "work", "outbox",
                                           "selections", "runs", "storage"})
        finally:
            rc = svc.stop()
            err = svc.read_stderr()
            svc.cleanup()
            sb.stop()
        self.assertEqual(rc, 0, err[-3000:])


class SlowHover(unittest.TestCase):
    SLOW_VIEWS = 8  # as many as the store pool has threads
    LATENCY_MS = 15000

    def test_slow_show_job_holds_up_only_itself(self):
        sb = harness.Sandbox("--rate-limit", "0", jobs=60)
        svc = harness.Service(sb, sb.tokens(), HOVERSYNC_HOVER_WAIT=3 * SLOW)
        try:
            self.run_scenario(sb, svc)
        finally:
            rc = svc.stop()
            err = svc.read_stderr()
            svc.cleanup()
            sb.stop()
        self.assertEqual(rc, 0, err[-3000:])

    def add_webhook(self, svc, secret):
        con = sqlite3.connect(svc.cli.db, timeout=30)
        try:
            con.execute("INSERT INTO webhooks (id, connection_key, url, hmac_secret, verified_at, "
                        "created_at, updated_at) VALUES (777001, ?, 'http://x/webhooks/hover', ?, "
                        "'2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
                        ("org-%d" % harness.MAIN_ORG, secret))
            con.commit()
        finally:
            con.close()

    def run_scenario(self, sb, svc):
        secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I="
        self.add_webhook(svc, secret)
        slow_path = "/api/v3/jobs/%d" % JOB_ALL_COMPLETE
        sb.fault(path=slow_path, method="GET", latency_ms=self.LATENCY_MS)
        done = [None] * self.SLOW_VIEWS

        def slow_view(i):
            r = svc.get("/api/jobs/%d" % JOB_ALL_COMPLETE, timeout=120)
            done[i] = (r, len(sb.requests(0)))

        threads = [threading.Thread(target=slow_view, args=(i,)) for i in range(self.SLOW_VIEWS)]
        for t in threads:
            t.start()
        time.sleep(0.5 * SLOW)  # the slow views reach the service first

        # Meanwhile: a store-only route, another job of the same connection, a delivery.
        conns = svc.get("/api/connections", timeout=120)
        conns_pending = sum(d is None for d in done)
        other = svc.get("/api/jobs/%d" % JOB_ONE_FAILED, timeout=120)
        other_pending = sum(d is None for d in done)
        body = json.dumps({"event": "job-state-changed-v2", "webhook_id": 777001,
                           "job_id": JOB_ONE_FAILED, "state": "completed"}).encode()
        hook = http_request(svc.port, "POST", "/webhooks/hover", body, signed(secret, 777001, body),
                            timeout=120)
        hook_pending = sum(d is None for d in done)
        self.assertEqual(conns.status, 200, conns.body)
        self.assertEqual(other.status, 200, other.body)
        self.assertEqual(hook.status, 200, hook.body)
        # Each was answered while every slow view was still waiting.
        self.assertEqual((conns_pending, other_pending, hook_pending), (self.SLOW_VIEWS,) * 3)

        for t in threads:
            t.join()
        for r, logged in done:
            self.assertEqual(r.status, 504, r.body)
            self.assertEqual(r.json["error"]["code"], "upstream_timeout")
            self.assertIn("Hover did not answer", r.json["error"]["message"])
        # The 504s went out before Hover answered the slow Show Job.
        self.assertFalse([e for e in sb.requests(0) if e["path"] == slow_path])
        self.assertGreaterEqual(metric(svc, 'hoversync_hover_waits_total{result="timed_out"}'),
                                self.SLOW_VIEWS)
        # Answered (504) means no longer waiting: the gauge is back to none.
        self.assertEqual(metric(svc, "hoversync_hover_waiting"), 0)

        # The Show Job goes on in the background and fills the cache: once the sandbox answered
        # it, the view is served without asking Hover again.
        wait_for("the slow Show Jobs answered and handled",
                 lambda: [e for e in sb.requests(0) if e["path"] == slow_path] and
                 metric(svc, "hoversync_hover_handlers_running") == 0, 60)
        sb.clear_faults()
        seq = sb.last_seq()
        r = svc.get("/api/jobs/%d" % JOB_ALL_COMPLETE)
        self.assertEqual(r.status, 200, r.body)
        self.assertFalse([e for e in sb.requests(seq) if e["path"] == slow_path])


if __name__ == "__main__":
    unittest.main()
