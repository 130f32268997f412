"""Several processes of one installation on one store: two `serve` and a CLI `backfill --sync`
share Hover's request budget (no 429, no 60 s window over the limit, whoever sends); a connect
flow started on one `serve` completes on the other, and a ticket minted by one is taken once by
the other; a webhook delivery replayed to the other `serve` is stored once."""
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (CLIENT_ID, HOVERSYNC_BIN, JOB_ALL_COMPLETE, MAIN_ORG, Cli,  # noqa: E402
                     Sandbox, Service, api_requests, http_request)
from test_webhooks_intake import free_port, signed  # noqa: E402

CONNECTION = "org-%d" % MAIN_ORG
LIMIT = 30  # requests a minute: low, so that a minute of load is enough to exceed it


def busiest_window(entries, window_ms=60000, rejected=False):
    """The most requests Hover accepted (answered other than 429; all of them with rejected) in
    any window_ms of the sandbox's request log entries."""
    ts = sorted(e["ts_ms"] for e in entries if rejected or e["status"] != 429)
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


class SharedState(unittest.TestCase):
    """Two instances of the service behind one public URL (as behind a load balancer), on one
    store: a request may reach either."""

    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox("--rate-limit", "0", jobs=30)
        port = free_port()
        public = "http://127.0.0.1:%d" % port
        cls.a = Service(cls.sb, cls.sb.tokens(), args=("--listen", "127.0.0.1:%d" % port,
                                                       "--no-workers"),
                        HOVERSYNC_PUBLIC_URL=public)
        cls.b = Service(cls.sb, None, args=("--no-workers",), db_dir=cls.a.dir,
                        HOVERSYNC_PUBLIC_URL=public)

    @classmethod
    def tearDownClass(cls):
        for svc in (cls.a, cls.b):
            rc = svc.stop()
            if rc != 0:
                raise AssertionError("serve exited with %s:\n%s" % (rc, svc.read_stderr()[-3000:]))
        cls.b.cleanup()
        cls.a.cleanup()
        cls.sb.stop()

    def test_connect_flow_started_on_one_serve_completes_on_the_other(self):
        r = self.a.get("/connect?connection=sales")
        self.assertEqual(r.status, 302, r.body)
        browser = {"Cookie": "hs_flow=" + r.cookies()["hs_flow"][0]}
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(r.header("Location")).query))
        self.assertEqual(q["client_id"], CLIENT_ID)
        form = urllib.parse.urlencode({**q, "org_id": MAIN_ORG, "decision": "allow"})
        r = http_request(self.sb.port, "POST", "/oauth/authorize", form,
                         {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(r.status, 302, r.body)
        back = urllib.parse.urlsplit(r.header("Location"))
        # Hover sends the browser back; the other instance answers.
        r = self.b.get(back.path + "?" + back.query, key=False, headers=browser)
        self.assertEqual(r.status, 200, r.body)
        self.assertIn(b"Connected", r.body)
        self.assertIn(b"sales", r.body)
        names = [c["key"] for c in self.a.get("/api/connections").json]
        self.assertIn("sales", names)
        # The state worked once, on either instance.
        for svc in (self.a, self.b):
            r = svc.get(back.path + "?" + back.query, key=False, headers=browser)
            self.assertEqual(r.status, 400, r.body)

    def test_ticket_minted_on_one_serve_is_taken_once_on_the_other(self):
        r = self.a.request("POST", "/api/tickets", {"purpose": "connect", "connection": "tix"})
        self.assertEqual(r.status, 201, r.body)
        ticket, url = r.json["ticket"], urllib.parse.urlsplit(r.json["url"])
        # Stored as its SHA-256 only.
        digest = hashlib.sha256(ticket.encode()).hexdigest()
        self.assertEqual(self.a.cli.sql("SELECT COUNT(*) FROM tickets WHERE hash = ?", (digest,)),
                         [(1,)])
        self.assertEqual(self.a.cli.sql("SELECT COUNT(*) FROM tickets WHERE hash = ? OR target = ?",
                                        (ticket, ticket)), [(0,)])
        # Opened in a new tab, the link reaches the other instance: it works there, once.
        r = self.b.get(url.path + "?" + url.query, key=False)
        self.assertEqual(r.status, 302, r.body)
        for svc in (self.b, self.a):
            r = svc.get(url.path + "?" + url.query, key=False)
            self.assertEqual(r.status, 401, r.body)
            self.assertIn("the ticket is unknown, used, expired or for another request",
                          r.json["error"]["message"])
        # Tried on another target on one instance, it is used up for its own on the other.
        r = self.b.request("POST", "/api/tickets", {"purpose": "connect", "connection": "tix"})
        self.assertEqual(r.status, 201, r.body)
        t = r.json["ticket"]
        self.assertEqual(self.b.get("/connect?connection=other&ticket=" + t, key=False).status, 401)
        self.assertEqual(self.a.get("/connect?connection=tix&ticket=" + t, key=False).status, 401)

    def test_webhook_replayed_to_the_other_serve_is_stored_once(self):
        secret = "c2hhcmVkLXN0b3JlLXNlY3JldC1zaGFyZWQtc3RvcmU="
        con = sqlite3.connect(self.a.cli.db, timeout=30)
        con.execute("INSERT INTO webhooks (id, connection_key, url, hmac_secret, verified_at, "
                    "created_at, updated_at) VALUES (777001, ?, 'http://x/webhooks/hover', ?, "
                    "'2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
                    ("org-%d" % MAIN_ORG, secret))
        con.commit()
        con.close()
        body = json.dumps({"event": "job-state-changed-v2", "webhook_id": 777001,
                           "job_id": JOB_ALL_COMPLETE, "state": "completed"}).encode()
        headers = signed(secret, "777001", body)
        r = self.a.request("POST", "/webhooks/hover", body, headers, key=False)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json["status"], "accepted")
        r = self.b.request("POST", "/webhooks/hover", body, headers, key=False)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json["status"], "duplicate")
        self.assertEqual(self.a.cli.sql("SELECT COUNT(*) FROM webhook_events WHERE "
                                        "webhook_id = 777001")[0][0], 1)

    def test_image_of_a_job_shown_by_one_serve_is_served_by_the_other(self):
        r = self.a.get("/api/jobs/%d" % JOB_ALL_COMPLETE)
        self.assertEqual(r.status, 200, r.body)
        urls = [i["url"] for m in r.json["models"] for i in m["images"]]
        self.assertTrue(urls)
        r = self.b.get(urls[0])
        self.assertEqual(r.status, 200, r.body)
        self.assertTrue(r.header("Content-Type").startswith("image/"))


if __name__ == "__main__":
    unittest.main()
