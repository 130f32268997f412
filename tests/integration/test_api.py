"""`hoversync serve` (docs/API.md) against the real sandbox: every route, its errors, the security
rules (API key, sessions and CSRF, origins and CORS, body cap), the connect flow end to end, a sync
with its progress stream and files, images proxied once, metrics, and the request budget of a
type-ahead burst."""
import hashlib
import http.client
import json
import os
import re
import socket
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from harness import (CLIENT_ID, JOB_ALL_COMPLETE, JOB_ONE_FAILED, JOB_PROCESSING,  # noqa: E402
                     MAIN_ORG, Sandbox, Service, api_requests, http_request, on_postgresql)

SECOND_ORG = 471122
ALLOWED = "http://crm.example"
ALLOWED_ENV = "https://crm2.example"
HOUSE, GARAGE, SHED = 17338401, 17338402, 17338403  # the models of JOB_ALL_COMPLETE
HARBOR_HOUSE = 17338407  # complete model of JOB_PROCESSING (never synced here)


class ServiceApi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox(jobs=60)
        cls.sb.admin("POST", "config", {"rate_limit": 0})
        cls.svc = Service(cls.sb, cls.sb.tokens(),
                          args=["--allow-origin", ALLOWED, "--demo-crm", "127.0.0.1:0"],
                          HOVERSYNC_ALLOW_ORIGINS=ALLOWED_ENV + ", http://crm3.example")

    @classmethod
    def tearDownClass(cls):
        rc = cls.svc.stop()
        err = cls.svc.read_stderr()
        cls.svc.cleanup()
        cls.sb.stop()
        assert rc == 0, "hoversync serve exited with %s: %s" % (rc, err[-3000:])

    def setUp(self):
        self.sb.clear_faults()

    # ---- helpers ----
    def assert_error(self, r, status, code):
        """docs/API.md's one error shape, with the status repeated in it."""
        self.assertEqual(r.status, status, r.body[:500])
        self.assertTrue(r.header("Content-Type").startswith("application/json"))
        self.assertEqual(set(r.json), {"error"})
        self.assertEqual(set(r.json["error"]), {"code", "message", "status"})
        self.assertEqual(r.json["error"]["code"], code)
        self.assertEqual(r.json["error"]["status"], status)
        self.assertTrue(r.json["error"]["message"])

    def new_session(self, user="crm-user-7", connections=("org-%d" % MAIN_ORG,)):
        r = self.svc.request("POST", "/api/sessions", {"user": user,
                                                        "connections": list(connections)})
        self.assertEqual(r.status, 201, r.body)
        return r.json

    def wait_sync(self, sync_id, timeout=90):
        deadline = time.time() + timeout
        while time.time() < deadline:
            r = self.svc.get("/api/syncs/" + sync_id)
            self.assertEqual(r.status, 200, r.body)
            if r.json["status"] in ("done", "failed"):
                return r.json
            time.sleep(0.1)
        self.fail("sync %s did not finish" % sync_id)

    def sandbox_pdf(self, model_id):
        """The PDF bytes straight from the sandbox (its redirect followed without the token)."""
        tok = self.sb.tokens()["access_token"]
        r = http_request(self.sb.port, "GET", "/api/v3/models/%d/artifacts/measurements.pdf"
                         % model_id, headers={"Authorization": "Bearer " + tok})
        self.assertEqual(r.status, 302)
        loc = urllib.parse.urlsplit(r.header("Location"))
        r2 = http_request(loc.port, "GET", loc.path + "?" + loc.query)
        self.assertEqual(r2.status, 200)
        return r2.body

    # ---- health, metrics, routing ----
    def test_healthz_needs_no_key(self):
        r = self.svc.get("/healthz", key=False)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["status"], "ok")
        self.assertTrue(r.json["version"])
        self.assertEqual(r.header("X-Content-Type-Options"), "nosniff")
        ready = self.svc.get("/readyz", key=False)
        self.assertEqual((ready.status, ready.json["status"]), (200, "ready"), ready.body)

    def test_unknown_route_and_wrong_method(self):
        self.assert_error(self.svc.get("/api/nope"), 404, "not_found")
        self.assert_error(self.svc.get("/api/jobs/1/nope"), 404, "not_found")
        self.assert_error(self.svc.get("/nope", key=False), 404, "not_found")
        r = self.svc.request("DELETE", "/api/syncs")
        self.assert_error(r, 405, "method_not_allowed")
        self.assertEqual(r.header("Allow"), "POST")
        r = self.svc.request("POST", "/api/jobs/15084301", {})
        self.assert_error(r, 405, "method_not_allowed")
        self.assertEqual(r.header("Allow"), "GET")

    # ---- authentication ----
    def test_api_key_required(self):
        for path in ("/api/connections", "/api/jobs?q=meadow", "/api/jobs/%d" % JOB_ALL_COMPLETE,
                     "/api/records", "/files/" + "0" * 64, "/api/images/1", "/api/syncs/x"):
            r = self.svc.get(path, key=False)
            self.assert_error(r, 401, "unauthorized")
            self.assertIn("Bearer", r.header("WWW-Authenticate"))
            self.assert_error(self.svc.get(path, key="Bearer wrong-key-0123456789abcdef"), 401,
                              "unauthorized")
        self.assert_error(self.svc.get("/api/connections", key="Basic dXNlcjpwYXNz"), 401,
                          "unauthorized")
        self.assert_error(self.svc.request("POST", "/api/syncs", {"job_id": 1, "model_ids": [2]},
                                           key=False), 401, "unauthorized")
        # A cookie that is not a session is no way in either.
        self.assert_error(self.svc.get("/api/connections", key=False, cookie="f" * 64), 401,
                          "unauthorized")
        self.assert_error(self.svc.get("/api/connections", key=False, cookie="bogus"), 401,
                          "unauthorized")

    def test_sessions_cookie_auth_and_csrf(self):
        s = self.new_session()
        self.assertRegex(s["session"], r"^[0-9a-f]{64}$")
        self.assertRegex(s["csrf_token"], r"^[0-9a-f]{64}$")
        self.assertRegex(s["expires_at"], r"^\d{4}-\d\d-\d\dT")
        # The token travels in the fragment: never to a server, never into an access log.
        self.assertEqual(s["modal_url"], self.svc.url + "/modal#session=" + s["session"])
        self.assertEqual(s["connections"], ["org-%d" % MAIN_ORG])
        tok, csrf = s["session"], s["csrf_token"]
        # Reads work by cookie alone.
        r = self.svc.get("/api/connections", key=False, cookie=tok)
        self.assertEqual(r.status, 200, r.body)
        r = self.svc.get("/api/session", key=False, cookie=tok)
        self.assertEqual(r.json["csrf_token"], csrf)
        self.assertEqual(r.json["user"], "crm-user-7")
        # A state-changing call by cookie needs the session's csrf token...
        body = {"job_id": JOB_ALL_COMPLETE, "model_ids": [SHED]}
        self.assert_error(self.svc.request("POST", "/api/syncs", body, key=False, cookie=tok),
                          403, "forbidden")
        self.assert_error(self.svc.request("POST", "/api/syncs", body, key=False, cookie=tok,
                                           headers={"X-CSRF-Token": "0" * 64}), 403, "forbidden")
        r = self.svc.request("POST", "/api/syncs", body, key=False, cookie=tok,
                             headers={"X-CSRF-Token": csrf})
        self.assertEqual(r.status, 202, r.body)
        self.wait_sync(r.json["id"])
        # ... and a session cannot mint sessions: that is the CRM back-end's API key.
        self.assert_error(self.svc.request("POST", "/api/sessions", {}, key=False, cookie=tok,
                                           headers={"X-CSRF-Token": csrf}), 403, "forbidden")
        self.assert_error(self.svc.request("POST", "/api/sessions", {}, key=False), 401,
                          "unauthorized")
        # Bodies are checked.
        self.assert_error(self.svc.request("POST", "/api/sessions", {"user": 5}), 400,
                          "bad_request")
        self.assert_error(self.svc.request("POST", "/api/sessions", "not json",
                                           headers={"Content-Type": "application/json"}),
                          400, "bad_request")
        self.assertEqual(self.svc.request("POST", "/api/sessions",
                                          {"connection": "org-%d" % MAIN_ORG}).status, 201)

    def test_modal_sets_the_cookie(self):
        s = self.new_session()
        r = self.svc.get("/modal?session=" + s["session"], key=False)
        self.assertEqual(r.status, 200, r.body[:300])
        self.assertTrue(r.header("Content-Type").startswith("text/html"))
        value, attrs = r.cookies()["hs_session"]
        self.assertEqual(value, s["session"])
        self.assertIn("HttpOnly", attrs)
        self.assertIn("SameSite=Lax", attrs)
        self.assertIn("Path=/", attrs)
        csp = r.header("Content-Security-Policy")
        self.assertIn("frame-ancestors 'self'", csp)
        for o in (ALLOWED, ALLOWED_ENV, "http://crm3.example", self.svc.demo_url):
            self.assertIn(o, csp)
        self.assertIn(s["csrf_token"].encode(), r.body)  # given to the page
        self.assertNotIn(s["session"].encode(), r.body)
        self.assertEqual(r.header("Referrer-Policy"), "no-referrer")
        # Then the page works by cookie; an unknown session gets an error page.
        self.assertEqual(self.svc.get("/modal", key=False, cookie=s["session"]).status, 200)
        r = self.svc.get("/modal?session=" + "a" * 64, key=False)
        self.assertEqual(r.status, 401)
        self.assertNotIn("hs_session", r.cookies())

    # ---- origins ----
    def test_origins(self):
        r = self.svc.get("/api/connections", origin="http://evil.example")
        self.assert_error(r, 403, "forbidden")
        self.assertIsNone(r.header("Access-Control-Allow-Origin"))
        self.assert_error(self.svc.get("/healthz", key=False, origin="null"), 403, "forbidden")
        for o in (ALLOWED, ALLOWED_ENV):
            r = self.svc.get("/api/connections", origin=o)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("Access-Control-Allow-Origin"), o)
            self.assertEqual(r.header("Access-Control-Allow-Credentials"), "true")
            self.assertIn("Origin", r.header("Vary"))
        # The service's own pages are not cross-origin: no CORS headers, no refusal.
        r = self.svc.get("/api/connections", origin=self.svc.url)
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.header("Access-Control-Allow-Origin"))

    def test_preflight(self):
        r = self.svc.request("OPTIONS", "/api/syncs", key=False, origin=ALLOWED,
                             headers={"Access-Control-Request-Method": "POST",
                                      "Access-Control-Request-Headers":
                                          "content-type,x-csrf-token"})
        self.assertEqual(r.status, 204)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), ALLOWED)
        self.assertEqual(r.header("Access-Control-Allow-Credentials"), "true")
        self.assertIn("POST", r.header("Access-Control-Allow-Methods"))
        self.assertIn("X-CSRF-Token", r.header("Access-Control-Allow-Headers"))
        self.assertIn("Authorization", r.header("Access-Control-Allow-Headers"))
        r = self.svc.request("OPTIONS", "/api/syncs", key=False, origin="http://evil.example",
                             headers={"Access-Control-Request-Method": "POST"})
        self.assert_error(r, 403, "forbidden")

    # ---- bodies ----
    def test_oversize_body(self):
        big = json.dumps({"job_id": JOB_ALL_COMPLETE, "model_ids": [HOUSE],
                          "pad": "x" * (100 * 1024)})
        self.assert_error(self.svc.request("POST", "/api/syncs", big,
                                           headers={"Content-Type": "application/json"}),
                          413, "payload_too_large")
        # Far over the cap and announced: refused before the body is sent.
        with socket.create_connection(("127.0.0.1", self.svc.port), timeout=30) as sk:
            sk.sendall(("POST /api/syncs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                        "Content-Type: application/json\r\nContent-Length: 50000000\r\n"
                        "Expect: 100-continue\r\n\r\n" % self.svc.api_key).encode())
            head = sk.recv(4096).decode(errors="replace")
        self.assertTrue(head.startswith("HTTP/1.1 413"), head[:200])

    def test_sync_request_validation(self):
        def post(body, ctype="application/json"):
            return self.svc.request("POST", "/api/syncs", body, headers={"Content-Type": ctype})
        for body in ("{", "[]", "null", '"x"', "",
                     '{"model_ids":[17338401]}',
                     '{"job_id":"15084301","model_ids":[17338401]}',
                     '{"job_id":15084301.5,"model_ids":[17338401]}',
                     '{"job_id":-4,"model_ids":[17338401]}',
                     '{"job_id":15084301,"model_ids":"17338401"}',
                     '{"job_id":15084301,"model_ids":["17338401"]}',
                     '{"job_id":15084301,"model_ids":[0]}',
                     '{"job_id":15084301,"model_ids":[]}',
                     '{"job_id":15084301}',
                     '{"job_id":15084301,"model_ids":[17338401],"when_ready":{}}',
                     '{"job_id":15084301,"model_ids":[17338401],"when_ready":[17338401]}',
                     '{"job_id":15084301,"model_ids":[17338401],"connection":7}'):
            self.assert_error(post(body), 400, "bad_request")
        self.assert_error(post('{"job_id":15084301,"model_ids":[17338401]}', "text/plain"),
                          415, "unsupported_media_type")
        # Ids that do not exist: the job (404), a model of another job (400), the connection.
        self.assert_error(post({"job_id": 99999999, "model_ids": [1]}), 404, "not_found")
        self.assert_error(post({"job_id": JOB_ALL_COMPLETE, "model_ids": [17338404]}), 400,
                          "bad_request")
        self.assert_error(post({"job_id": JOB_ALL_COMPLETE, "model_ids": [HOUSE],
                                "connection": "nope"}), 404, "not_found")

    # ---- search and jobs ----
    def test_search(self):
        r = self.svc.get("/api/jobs?q=meadow")
        self.assertEqual(r.status, 200, r.body)
        self.assertIn(r.json["source"], ("local", "hover", "local+hover"))
        self.assertIn(JOB_ALL_COMPLETE, [j["id"] for j in r.json["results"]])
        self.assertIn("more", r.json)
        self.assertEqual(r.json["page"], 1)
        self.assert_error(self.svc.get("/api/jobs?q=meadow&state=bogus"), 400, "bad_request")
        self.assert_error(self.svc.get("/api/jobs?q=meadow&page=zero"), 400, "bad_request")
        self.assert_error(self.svc.get("/api/jobs?q=meadow&per=1000"), 400, "bad_request")
        self.assert_error(self.svc.get("/api/jobs?q=" + "x" * 300), 400, "bad_request")
        self.assert_error(self.svc.get("/api/jobs?q=meadow&connection=nope"), 404, "not_found")
        # Few local matches and nothing typed after: the search leaves the connection's thread
        # for a Hover worker, waits out the debounce there and asks Hover, whose job is listed.
        r = self.svc.get("/api/jobs?q=" + urllib.parse.quote("118 Orchard Lane"))
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json["hover"], "asked", r.json)
        self.assertIn(r.json["source"], ("hover", "local+hover"))
        self.assertIn(JOB_ONE_FAILED, [j["id"] for j in r.json["results"]])

    def test_job_show(self):
        seq = self.sb.last_seq()
        r = self.svc.get("/api/jobs/%d" % JOB_ONE_FAILED)
        self.assertEqual(r.status, 200, r.body)
        j = r.json
        self.assertEqual(j["id"], JOB_ONE_FAILED)
        self.assertEqual(j["name"], "Whitfield Garage Addition")
        self.assertEqual(j["address"]["full"], "118 Orchard Lane, Boise, ID 83702")
        self.assertEqual(j["customer"]["name"], "Marcus Whitfield")
        self.assertEqual(j["reconstruction_state"], "completed")
        self.assertEqual(j["external_identifier"], "8675310")
        models = {m["id"]: m for m in j["models"]}
        house, garage = models[17338404], models[17338405]
        self.assertTrue(house["complete"])
        self.assertFalse(garage["complete"])
        self.assertEqual(garage["state"], "failed")
        self.assertRegex(house["thumbnail_url"], r"^/api/images/\d+$")
        kinds = {a["kind"] for a in house["artifacts"]}
        self.assertIn("measurements.pdf", kinds)
        self.assertIn("measurements.json", kinds)
        self.assertNotIn("url", house["artifacts"][0])  # Hover's links stay in the service
        self.assertEqual(garage["artifacts"], [])
        self.assertFalse(house["synced"])
        self.assertIsNone(house["selection"])
        # Fresh from Hover, then cached a few seconds: the second look costs nothing.
        self.assertEqual(self.svc.get("/api/jobs/%d" % JOB_ONE_FAILED).status, 200)
        shows = [e for e in api_requests(self.sb.requests(seq))
                 if e["path"] == "/api/v3/jobs/%d" % JOB_ONE_FAILED]
        self.assertEqual(len(shows), 1)
        # The local index learned the job.
        self.assertEqual(self.svc.cli.sql("SELECT COUNT(*) FROM jobs WHERE id = %d"
                                          % JOB_ONE_FAILED)[0][0], 1)
        self.assert_error(self.svc.get("/api/jobs/99999999"), 404, "not_found")
        self.assert_error(self.svc.get("/api/jobs/abc"), 400, "bad_request")
        self.assert_error(self.svc.get("/api/jobs/15084301?connection=nope"), 404, "not_found")

    def test_hover_failure_is_an_upstream_error(self):
        self.sb.fault(path="/api/v3/jobs/%d" % JOB_PROCESSING, status=500, count=20)
        r = self.svc.get("/api/jobs/%d" % JOB_PROCESSING)
        self.assertIn(r.status, (502, 503))
        self.assert_error(r, r.status, "upstream_unavailable" if r.status == 503
                          else "upstream_error")

    # ---- a sync: progress, records, files ----
    def test_sync_records_and_files(self):
        r = self.svc.request("POST", "/api/syncs", {"job_id": JOB_ALL_COMPLETE,
                                                     "model_ids": [HOUSE]})
        self.assertEqual(r.status, 202, r.body)
        self.assertEqual(r.json["status"], "queued")
        sync_id = r.json["id"]
        self.assertEqual(r.header("Location"), "/api/syncs/" + sync_id)
        st = self.wait_sync(sync_id)
        self.assertEqual(st["status"], "done")
        self.assertEqual(st["result"], "synced")
        m = st["models"][0]
        self.assertEqual((m["id"], m["result"]), (HOUSE, "synced"))
        self.assertEqual(m["artifacts_done"], m["artifacts_total"])
        pdf_path = st["records"]["pdf"]
        self.assertRegex(pdf_path, r"^/files/[0-9a-f]{64}$")

        r = self.svc.get(pdf_path)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Type"), "application/pdf")
        self.assertEqual(hashlib.sha256(r.body).hexdigest(), pdf_path.split("/")[-1])
        self.assertEqual(r.body, self.sandbox_pdf(HOUSE))
        etag = r.header("ETag")
        self.assertEqual(etag, '"%s"' % pdf_path.split("/")[-1])
        r = self.svc.get(pdf_path, headers={"If-None-Match": etag})
        self.assertEqual(r.status, 304)
        self.assertEqual(r.body, b"")
        self.assert_error(self.svc.get("/files/" + "0" * 64), 404, "not_found")
        self.assert_error(self.svc.get("/files/not-a-sha"), 400, "bad_request")
        self.assert_error(self.svc.get("/files/" + "A" * 64), 400, "bad_request")

        # The records feed over HTTP, as `hoversync export` gives it.
        r = self.svc.get("/api/records?since=0")
        self.assertEqual(r.status, 200)
        feed = r.json
        self.assertIn(JOB_ALL_COMPLETE, [j["id"] for j in feed["jobs"]])
        self.assertIn(pdf_path.split("/")[-1], [a["sha256"] for a in feed["artifacts"]])
        again = self.svc.get("/api/records?since=%d" % feed["cursor"]).json
        self.assertEqual(again["cursor"], feed["cursor"])
        self.assertEqual((again["jobs"], again["models"], again["artifacts"]), ([], [], []))
        self.assert_error(self.svc.get("/api/records?since=abc"), 400, "bad_request")
        self.assert_error(self.svc.get("/api/records?since=-1"), 400, "bad_request")

        # The job now shows the model synced.
        time.sleep(5.1)  # past the Show Job cache
        house = [x for x in self.svc.get("/api/jobs/%d" % JOB_ALL_COMPLETE).json["models"]
                 if x["id"] == HOUSE][0]
        self.assertTrue(house["synced"])
        self.assertEqual(house["selection"], "synced")
        self.assert_error(self.svc.get("/api/syncs/s0-nope"), 404, "not_found")
        self.assert_error(self.svc.get("/api/syncs/..%2F..%2Fetc"), 404, "not_found")

    def test_progress_stream(self):
        # Slow artifacts, so that the stream has something to follow.
        self.sb.fault(path="/api/v3/models/%d/*" % GARAGE, latency_ms=150)
        r = self.svc.request("POST", "/api/syncs", {"job_id": JOB_ALL_COMPLETE,
                                                     "model_ids": [GARAGE]})
        self.assertEqual(r.status, 202, r.body)
        sync_id = r.json["id"]
        conn = http.client.HTTPConnection("127.0.0.1", self.svc.port, timeout=60)
        conn.request("GET", "/api/syncs/%s/events" % sync_id,
                     headers={"Authorization": "Bearer " + self.svc.api_key})
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        self.assertTrue(resp.getheader("Content-Type").startswith("text/event-stream"))
        events, event = [], None
        deadline = time.time() + 90
        while time.time() < deadline:
            line = resp.readline()
            if not line:
                break
            line = line.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append((event, json.loads(line[6:])))
        conn.close()
        names = [e for e, _ in events]
        self.assertEqual(names[-1], "done", names)
        self.assertGreaterEqual(names.count("progress"), 2, names)
        self.assertEqual(names.index("done"), len(names) - 1)
        versions = [d["version"] for e, d in events if e == "progress"]
        self.assertEqual(versions, sorted(set(versions)))  # each change once, in order
        done = events[-1][1]
        self.assertEqual(done["id"], sync_id)
        self.assertEqual(done["status"], "done")
        self.assertEqual(done["models"][0]["result"], "synced")
        self.assertEqual(events[-2][1], done)  # the last progress is the final state
        self.assert_error(self.svc.get("/api/syncs/s0-nope/events"), 404, "not_found")

    # ---- images ----
    def test_images_proxied_and_stored(self):
        job = self.svc.get("/api/jobs/%d" % JOB_PROCESSING).json
        house = [m for m in job["models"] if m["id"] == HARBOR_HOUSE][0]
        thumb = house["thumbnail_url"]
        image_id = int(thumb.split("/")[-1])
        seq = self.sb.last_seq()
        first = self.svc.get(thumb)
        self.assertEqual(first.status, 200, first.body[:300])
        self.assertEqual(first.header("Content-Type"), "image/jpeg")
        self.assertEqual(first.body[:3], b"\xff\xd8\xff")
        second = self.svc.get(thumb)
        self.assertEqual(second.status, 200)
        self.assertEqual(second.body, first.body)
        fetched = [e for e in self.sb.requests(seq) if e["path"] == "/api/v3/images/%d" % image_id]
        self.assertEqual(len(fetched), 1, fetched)
        rows = self.svc.cli.sql("SELECT model_id, kind, content_type FROM artifacts "
                                "WHERE image_id = %d" % image_id)
        self.assertEqual(rows, [(HARBOR_HOUSE, "image.%d" % image_id, "image/jpeg")])
        self.assert_error(self.svc.get("/api/images/424242"), 404, "not_found")
        self.assert_error(self.svc.get("/api/images/x1"), 400, "bad_request")

    # ---- connecting orgs ----
    def test_connect_flow(self):
        self.assert_error(self.svc.get("/connect", key=False), 401, "unauthorized")
        self.assert_error(self.svc.get("/connect?connection=bad%20name"), 400, "bad_request")
        r = self.svc.get("/connect")
        self.assertEqual(r.status, 302)
        # The flow is bound to this browser by a cookie of the top-level /connect page.
        flow, attrs = r.cookies()["hs_flow"]
        self.assertRegex(flow, r"^[0-9a-f]{64}$")
        for a in ("HttpOnly", "SameSite=Lax", "Path=/"):
            self.assertIn(a, attrs)
        browser = {"Cookie": "hs_flow=" + flow}
        loc = urllib.parse.urlsplit(r.header("Location"))
        self.assertEqual("%s://%s" % (loc.scheme, loc.netloc), self.sb.url)
        self.assertEqual(loc.path, "/oauth/authorize")
        q = dict(urllib.parse.parse_qsl(loc.query))
        self.assertEqual(q["client_id"], CLIENT_ID)
        self.assertEqual(q["response_type"], "code")
        self.assertEqual(q["redirect_uri"], self.svc.url + "/oauth/callback")
        self.assertRegex(q["state"], r"^[0-9a-f]{32}$")

        # A callback that does not carry our state is refused (and costs nothing at Hover).
        for bad in ("/oauth/callback?code=abc&state=" + "0" * 32, "/oauth/callback?code=abc",
                    "/oauth/callback?code=abc&state=" + q["state"][:-1]):
            r = self.svc.get(bad, key=False, headers=browser)
            self.assertEqual(r.status, 400)
            self.assertTrue(r.header("Content-Type").startswith("text/html"))
            self.assertNotIn("hs_session", r.cookies())

        # The user allows access for the second org on Hover's page...
        form = urllib.parse.urlencode({**q, "org_id": SECOND_ORG, "decision": "allow"})
        r = http_request(self.sb.port, "POST", "/oauth/authorize", form,
                         {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(r.status, 302, r.body)
        back = urllib.parse.urlsplit(r.header("Location"))
        self.assertEqual("%s://%s" % (back.scheme, back.netloc), self.svc.url)
        # ... and the browser comes back. Another browser (no cookie, or another one) cannot
        # use the state, nor burn it.
        for other in ({}, {"Cookie": "hs_flow=" + "e" * 64}):
            r = self.svc.get(back.path + "?" + back.query, key=False, headers=other)
            self.assertEqual(r.status, 400, r.body)
            self.assertIn(b"this browser", r.body)
        r = self.svc.get(back.path + "?" + back.query, key=False, headers=browser)
        self.assertEqual(r.status, 200, r.body)
        self.assertIn(b"Connected", r.body)
        self.assertIn(b"postMessage", r.body)
        self.assertIn(b"org-471122", r.body)
        cookie, attrs = r.cookies()["hs_session"]
        self.assertIn("HttpOnly", attrs)
        conns = self.svc.get("/api/connections", key=False, cookie=cookie)
        self.assertEqual(conns.status, 200)
        by_key = {c["key"]: c for c in self.svc.get("/api/connections").json}
        self.assertIn("org-%d" % MAIN_ORG, by_key)
        self.assertEqual(by_key["org-471122"]["owner_id"], SECOND_ORG)
        self.assertEqual(by_key["org-471122"]["status"], "connected")
        self.assertTrue(by_key["org-471122"]["connected_at"])
        # The state was single-use.
        self.assertEqual(self.svc.get(back.path + "?" + back.query, key=False,
                                      headers=browser).status, 400)
        # The browser's session sees the connection it connected, not the others.
        self.assertEqual([c["key"] for c in conns.json], ["org-471122"])
        self.assertEqual(len(self.svc.get("/api/connections").json), 2)
        # The new org's jobs are reachable through its connection.
        r = self.svc.get("/api/jobs?connection=org-471122")
        self.assertEqual(r.status, 200, r.body)
        self.assertNotIn("access_token", self.svc.read_stderr())

    def test_connect_denied_or_bad_code(self):
        def start():
            r = self.svc.get("/connect?connection=named-org")
            q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(r.header("Location")).query))
            return q["state"], {"Cookie": "hs_flow=" + r.cookies()["hs_flow"][0]}
        state, browser = start()
        r = self.svc.get("/oauth/callback?error=access_denied&state=" + state, key=False,
                         headers=browser)
        self.assertEqual(r.status, 400)
        self.assertIn(b"access_denied", r.body)
        # Our state, but a code Hover never issued: the exchange fails, nothing is stored.
        state, browser = start()
        r = self.svc.get("/oauth/callback?code=forged&state=" + state, key=False,
                         headers=browser)
        self.assertEqual(r.status, 400)
        self.assertTrue(r.header("Content-Type").startswith("text/html"))
        self.assertNotIn("hs_session", r.cookies())
        keys = [c["key"] for c in self.svc.get("/api/connections").json]
        self.assertNotIn("named-org", keys)

    # ---- the libmicrohttpd threads ----
    def test_keep_alive(self):
        """Answers on one connection, worker routes included (a response queued on the first
        handler call would make libmicrohttpd close the connection)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.svc.port, timeout=30)
        hdrs = {"Authorization": "Bearer " + self.svc.api_key}
        try:
            for i in range(12):
                path = ("/healthz", "/api/connections", "/api/jobs/%d" % JOB_ALL_COMPLETE,
                        "/api/nope")[i % 4]
                conn.request("GET", path, headers=hdrs)
                if i == 0:
                    sock = conn.sock
                r = conn.getresponse()
                r.read()
                self.assertIn(r.status, (200, 404))
                self.assertIs(conn.sock, sock, "connection closed after %s" % path)
            conn.request("POST", "/api/syncs", body="{", headers={**hdrs, "Content-Type":
                                                                 "application/json"})
            r = conn.getresponse()
            r.read()
            self.assertEqual(r.status, 400)
            self.assertIs(conn.sock, sock)
        finally:
            conn.close()

    def test_open_streams_do_not_hold_up_other_requests(self):
        self.sb.fault(path="/api/v3/models/%d/*" % SHED, latency_ms=400)
        r = self.svc.request("POST", "/api/syncs", {"job_id": JOB_ALL_COMPLETE,
                                                     "model_ids": [SHED]})
        self.assertEqual(r.status, 202, r.body)
        streams = []
        try:
            for _ in range(12):  # more streams than libmicrohttpd has threads
                c = http.client.HTTPConnection("127.0.0.1", self.svc.port, timeout=60)
                c.request("GET", "/api/syncs/%s/events" % r.json["id"],
                          headers={"Authorization": "Bearer " + self.svc.api_key})
                self.assertEqual(c.getresponse().status, 200)
                streams.append(c)
            for _ in range(20):
                t0 = time.time()
                self.assertEqual(self.svc.get("/healthz", key=False).status, 200)
                self.assertLess(time.time() - t0, 0.5)
        finally:
            for c in streams:
                c.close()
        self.wait_sync(r.json["id"])

    # ---- browsers' files ----
    def test_static_files(self):
        for path, ctype in (("/hoversync-modal.js", "text/javascript"),
                            ("/modal.js", "text/javascript"), ("/modal.css", "text/css")):
            r = self.svc.get(path, key=False)
            self.assertEqual(r.status, 200, path)
            self.assertTrue(r.header("Content-Type").startswith(ctype), r.header("Content-Type"))
        for path in ("/../meson.build", "/%2e%2e/meson.build", "/.git/config", "/demo/crm.html",
                     "//etc/passwd", "/web/modal.js"):
            self.assert_error(self.svc.get(path, key=False), 404, "not_found")
        # An escaped NUL would cut the path short ("/modal.html%00.png" is not /modal.html).
        self.assert_error(self.svc.get("/modal.html%00.png", key=False), 400, "bad_request")

    def test_demo_crm(self):
        port = int(self.svc.demo_url.rsplit(":", 1)[1])
        r = http_request(port, "GET", "/")
        self.assertEqual(r.status, 200)
        page = r.body.decode()
        self.assertNotIn("__HOVERSYNC_SESSION__", page)
        self.assertNotIn("__HOVERSYNC_CSRF__", page)
        self.assertIn(self.svc.url, page)
        tokens = re.findall(r"\b[0-9a-f]{64}\b", page)
        self.assertGreaterEqual(len(tokens), 1)
        ok = [t for t in tokens
              if self.svc.get("/api/connections", key="Bearer " + t).status == 200]
        self.assertTrue(ok)  # the session it minted works
        # Its origin may call the API.
        r = self.svc.get("/api/connections", origin=self.svc.demo_url)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), self.svc.demo_url)
        self.assertEqual(http_request(port, "GET", "/nope.js").status, 404)
        self.assertEqual(http_request(port, "POST", "/", "x").status, 405)

    # ---- metrics ----
    def test_metrics(self):
        self.svc.get("/healthz", key=False)
        self.svc.get("/api/jobs/%d" % JOB_ALL_COMPLETE)
        r = self.svc.get("/metrics", key=False)
        self.assertEqual(r.status, 200)
        self.assertTrue(r.header("Content-Type").startswith("text/plain"))
        text = r.body.decode()
        for series in ('hoversync_http_requests_total{route="/healthz",status="200"}',
                       'hoversync_http_request_duration_seconds_bucket{route="/healthz",le="+Inf"}',
                       'hoversync_http_request_duration_seconds_count{route="/api/jobs/{id}"}',
                       "hoversync_hover_requests_total ", "hoversync_hover_rate_limit_waits_total ",
                       'hoversync_syncs_total{result="done"}', "hoversync_sync_queue_depth ",
                       "hoversync_search_hover_requests_total "):
            self.assertIn(series, text)
        hover = int(float(re.search(r"^hoversync_hover_requests_total (\S+)$", text,
                                    re.M).group(1)))
        self.assertGreater(hover, 0)
        answered = int(re.search(r'^hoversync_hover_responses_total\{status="2xx"\} (\d+)$', text,
                                 re.M).group(1))
        self.assertGreater(answered, 0)
        self.assertIn('hoversync_hover_responses_total{status="429"}', text)
        for line in text.splitlines():  # every sample is "name{labels} value"
            if line and not line.startswith("#"):
                self.assertRegex(line, r'^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? \S+$')


class TypeAhead(unittest.TestCase):
    """A user types two addresses letter by letter (and backspaces): 50 searches, at most a
    handful of List Jobs requests to Hover."""

    def test_burst_costs_few_list_jobs(self):
        sb = Sandbox(jobs=300)
        svc = None
        try:
            sb.admin("POST", "config", {"rate_limit": 0})
            svc = Service(sb, sb.tokens())
            first, second = "4312 Meadow Drive", "118 Orchard Lane, Boise"
            typed = [first[:i] for i in range(1, len(first) + 1)]
            typed += [first[:i] for i in range(len(first) - 1, 3, -1)]  # backspace to "4312"
            typed += [second[:i] for i in range(1, len(second) + 1)]
            typed = typed[:50]
            self.assertEqual(len(typed), 50)
            seq = sb.last_seq()
            last = {}
            for q in typed:
                r = svc.get("/api/jobs?" + urllib.parse.urlencode({"q": q}))
                self.assertEqual(r.status, 200, r.body)
                last[q] = r.json
                time.sleep(0.04)
            lists = [e for e in api_requests(sb.requests(seq)) if e["path"] == "/api/v3/jobs"]
            self.assertLessEqual(len(lists), 5, [e["query"] for e in lists])
            ids = [j["id"] for j in last[first]["results"]]
            self.assertIn(15084301, ids)
            self.assertIn(15084302, [j["id"] for j in last["118 Orchard Lane"]["results"]])
        finally:
            if svc:
                self.assertEqual(svc.stop(), 0, svc.read_stderr()[-2000:])
                svc.cleanup()
            sb.stop()


class Lifecycle(unittest.TestCase):
    def test_generated_key_printed_once_and_stops_cleanly(self):
        sb = Sandbox(jobs=20)
        try:
            a = Service(sb, sb.tokens(), api_key=None)
            self.assertRegex(a.api_key, r"^[0-9a-f]{64}$")
            self.assertEqual(a.get("/api/connections").status, 200)
            # Only its hash is stored.
            rows = a.cli.sql("SELECT name, key_sha256 FROM api_keys")
            self.assertEqual(rows, [("default", hashlib.sha256(a.api_key.encode()).hexdigest())])
            if on_postgresql():  # no file to read: no setting holds it
                self.assertEqual(a.cli.sql("SELECT COUNT(*) FROM settings WHERE value LIKE ?",
                                           ("%" + a.api_key + "%",)), [(0,)])
            else:
                with open(a.cli.db, "rb") as f:
                    self.assertNotIn(a.api_key.encode(), f.read())
            self.assertEqual(a.stop(), 0, a.read_stderr())
            # A restart keeps the key and does not print it again.
            b = Service(sb, None, api_key=None, db_dir=a.dir)
            self.assertNotIn("API key:", b.read_stderr())
            b.api_key = a.api_key
            self.assertEqual(b.get("/api/connections").status, 200)
            port = b.port
            t0 = time.time()
            self.assertEqual(b.stop(), 0, b.read_stderr())
            self.assertLess(time.time() - t0, 15)
            with self.assertRaises(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
            a.cleanup()
        finally:
            sb.stop()

    def test_bad_configuration_is_a_usage_error(self):
        sb = Sandbox(jobs=5)
        try:
            for args, env in ((["--allow-origin", "crm.example"], {}),
                              (["--allow-origin", "http://crm.example/path"], {}),
                              ([], {"api_key": "short"}),
                              (["--bogus"], {})):
                with self.assertRaises(RuntimeError):
                    s = Service(sb, None, args=args, **env)
                    s.stop()
                    s.cleanup()
        finally:
            sb.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
