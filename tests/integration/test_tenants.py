"""Tenants of `hoversync serve` (docs/API.md "Tenants") against the real sandbox with two Hover
orgs connected: a browser session sees only the connections it was given (every other tenant's
job, sync, progress stream, record, file, image and connection is 404), Bearer sessions and
tickets, the connect flow bound to the browser that started it, the confirmation before a
connection is re-pointed to another org, and pending flows that a flood cannot push out."""
import os
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from harness import MAIN_ORG, Sandbox, Service, http_request  # noqa: E402

SECOND_ORG = 471122
A, B = "org-%d" % MAIN_ORG, "org-%d" % SECOND_ORG
CRM = "http://crm.example"
JOB_A = 15084301  # Main House (org 463605), models below
HOUSE_A = 17338401


def bearer(token):
    return "Bearer " + token


class Flow:
    """A browser going through the connect flow: /connect (with whatever authenticates it),
    Hover's authorize page, back to the callback with the flow cookie."""

    def __init__(self, svc, sb, start_path, key=True, cookie=None):
        self.svc, self.sb = svc, sb
        hdrs = {"Cookie": "hs_flow=" + cookie} if cookie else {}
        self.start = svc.get(start_path, key=key, headers=hdrs)
        self.cookie = cookie
        if self.start.status == 302:
            self.cookie = self.start.cookies()["hs_flow"][0]
            loc = urllib.parse.urlsplit(self.start.header("Location"))
            self.query = dict(urllib.parse.parse_qsl(loc.query))

    def authorize(self, org):
        """The user allows access for org on Hover's page; the redirect back (path?query)."""
        form = urllib.parse.urlencode({**self.query, "org_id": org, "decision": "allow"})
        r = http_request(self.sb.port, "POST", "/oauth/authorize", form,
                         {"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status == 302, r.body
        back = urllib.parse.urlsplit(r.header("Location"))
        return back.path + "?" + back.query

    def back(self, path, cookie=True):
        hdrs = {"Cookie": "hs_flow=" + self.cookie} if cookie else {}
        return self.svc.get(path, key=False, headers=hdrs)

    def complete(self, org):
        return self.back(self.authorize(org))


class Tenants(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox(jobs=60)
        cls.sb.admin("POST", "config", {"rate_limit": 0})
        cls.svc = Service(cls.sb, cls.sb.tokens(), connection=A, args=["--allow-origin", CRM])
        # The second org is connected the way an operator does it: the flow, with the API key.
        r = Flow(cls.svc, cls.sb, "/connect").complete(SECOND_ORG)
        assert r.status == 200, r.body
        cls.sessions = {}
        for name in (A, B):
            r = cls.svc.request("POST", "/api/sessions", {"user": "u-" + name,
                                                          "connections": [name]})
            assert r.status == 201, r.body
            cls.sessions[name] = r.json["session"]
        cls.job_b, cls.model_b, cls.image_b = cls.find_job_of_b()

    @classmethod
    def tearDownClass(cls):
        rc = cls.svc.stop()
        err = cls.svc.read_stderr()
        cls.svc.cleanup()
        cls.sb.stop()
        assert rc == 0, "hoversync serve exited with %s: %s" % (rc, err[-3000:])

    @classmethod
    def find_job_of_b(cls):
        """A completed job of the second org with a complete measured model that has photos,
        straight from the sandbox (the service has not seen it yet)."""
        tok = cls.sb.tokens(SECOND_ORG)["access_token"]
        hdrs = {"Authorization": bearer(tok)}
        jobs = http_request(cls.sb.port, "GET", "/api/v3/jobs?per=100&reconstruction_state="
                            "completed", headers=hdrs).json["results"]
        for j in jobs:
            if j["deliverable_id"] != 3:
                continue
            full = http_request(cls.sb.port, "GET", "/api/v3/jobs/%d" % j["id"],
                                headers=hdrs).json
            for m in full["models"]:
                if m["state"] == "complete" and m.get("images"):
                    return j["id"], m["id"], m["images"][0]["id"]
        raise AssertionError("no job of org %d to test with" % SECOND_ORG)

    # ---- helpers ----
    def as_(self, name, method, path, body=None, headers=None):
        """A request with tenant `name`'s session as a Bearer token (None: the API key)."""
        key = bearer(self.sessions[name]) if name else True
        return self.svc.request(method, path, body, headers=headers, key=key)

    def get(self, name, path):
        return self.as_(name, "GET", path)

    def assert_404(self, r):
        self.assertEqual(r.status, 404, r.body[:300])
        self.assertEqual(r.json["error"]["code"], "not_found")

    def sync(self, name, job_id, model_id):
        r = self.as_(name, "POST", "/api/syncs", {"job_id": job_id, "model_ids": [model_id]})
        self.assertEqual(r.status, 202, r.body)
        sync_id = r.json["id"]
        deadline = time.time() + 90
        while time.time() < deadline:
            st = self.get(name, "/api/syncs/" + sync_id)
            self.assertEqual(st.status, 200, st.body)
            if st.json["status"] in ("done", "failed"):
                self.assertEqual(st.json["status"], "done", st.json)
                return sync_id, st.json
            time.sleep(0.1)
        self.fail("sync %s did not finish" % sync_id)

    def ticket(self, name, body):
        return self.as_(name, "POST", "/api/tickets", body)

    # ---- sessions name their connections ----
    def test_sessions_name_their_connections(self):
        # Two orgs connected: a session must say which.
        r = self.svc.request("POST", "/api/sessions", {"user": "x"})
        self.assertEqual(r.status, 422, r.body)
        self.assertEqual(r.json["error"]["code"], "connection_required")
        names = self.get(None, "/api/connections").json
        self.assertEqual(r.json["error"]["connections"], [c["key"] for c in names])
        self.assertLessEqual({A, B}, set(r.json["error"]["connections"]))
        r = self.svc.request("POST", "/api/sessions", {"connections": [A, "nope"]})
        self.assertEqual(r.status, 422, r.body)
        self.assertEqual(r.json["error"]["code"], "unknown_connection")
        self.assertLessEqual({A, B}, set(r.json["error"]["connections"]))
        for bad in ({"connections": "org-1"}, {"connections": [5]}, {"connection": 5}):
            r = self.svc.request("POST", "/api/sessions", bad)
            self.assertEqual(r.status, 400, (bad, r.body))
        r = self.svc.request("POST", "/api/sessions", {"connections": [B, A, B]})
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual(r.json["connections"], [B, A])
        r = self.svc.request("POST", "/api/sessions", {"connection": B})
        self.assertEqual(r.json["connections"], [B])
        me = self.get(A, "/api/session").json
        self.assertEqual((me["auth"], me["connections"]), ("session", [A]))

    def test_connections_list_is_the_sessions(self):
        self.assertEqual([c["key"] for c in self.get(A, "/api/connections").json], [A])
        self.assertEqual([c["key"] for c in self.get(B, "/api/connections").json], [B])
        self.assertEqual(sorted(c["key"] for c in self.get(None, "/api/connections").json),
                         [A, B])
        # The cookie of a session of the service's own pages is scoped the same way.
        r = self.svc.get("/api/connections", key=False, cookie=self.sessions[B])
        self.assertEqual([c["key"] for c in r.json], [B])

    # ---- every route a session reaches answers within its connections ----
    def test_jobs_and_search_stay_in_the_tenant(self):
        path_b = "/api/jobs/%d" % self.job_b
        r = self.get(B, path_b)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json["connection"], B)
        name_b = r.json["name"]
        # Org A's session gets 404, whichever way it asks (and even while the job is cached).
        self.assert_404(self.get(A, path_b))
        self.assert_404(self.get(A, path_b + "?connection=" + B))
        self.assert_404(self.svc.get(path_b, key=False, cookie=self.sessions[A]))
        self.assert_404(self.get(A, "/api/jobs?q=x&connection=" + B))
        self.assert_404(self.get(B, "/api/jobs/%d" % JOB_A))
        self.assertEqual(self.get(A, "/api/jobs/%d" % JOB_A).status, 200)
        self.assertEqual(self.get(None, path_b).status, 200)  # the API key sees both
        # The job is in the local index now: found by its tenant, not by the other.
        q = urllib.parse.quote(name_b)
        ids_b = [j["id"] for j in self.get(B, "/api/jobs?q=" + q).json["results"]]
        self.assertIn(self.job_b, ids_b)
        for path in ("/api/jobs?q=" + q, "/api/jobs?q=" + q + "&connection=" + A, "/api/jobs"):
            r = self.get(A, path)
            self.assertEqual(r.status, 200, r.body)
            self.assertNotIn(self.job_b, [j["id"] for j in r.json["results"]], path)
        self.assertIn(self.job_b, [j["id"] for j in self.get(None, "/api/jobs?q=" + q).json[
            "results"]])

    def test_syncs_progress_records_and_files_stay_in_the_tenant(self):
        sync_b, st = self.sync(B, self.job_b, self.model_b)
        self.assertEqual(st["connection"], B)
        pdf = st["records"]["pdf"]
        sha = pdf.split("/")[-1]
        # The other tenant: the sync, its stream, its ticket, its file: 404.
        self.assert_404(self.get(A, "/api/syncs/" + sync_b))
        self.assert_404(self.get(A, "/api/syncs/%s/events" % sync_b))
        self.assert_404(self.ticket(A, {"purpose": "events", "sync_id": sync_b}))
        self.assert_404(self.get(A, pdf))
        self.assert_404(self.ticket(A, {"purpose": "file", "sha256": sha}))
        self.assertEqual(self.get(B, pdf).status, 200)
        self.assertEqual(self.get(None, pdf).status, 200)
        # A session cannot sync another tenant's job, by any route.
        body = {"job_id": self.job_b, "model_ids": [self.model_b]}
        self.assert_404(self.as_(A, "POST", "/api/syncs", body))
        self.assert_404(self.as_(A, "POST", "/api/syncs", {**body, "connection": B}))
        # The records feed: each tenant its own rows; the API key all of them.
        feed_a = self.get(A, "/api/records?since=0").json
        feed_b = self.get(B, "/api/records?since=0").json
        feed = self.get(None, "/api/records?since=0").json
        self.assertNotIn(self.job_b, [j["id"] for j in feed_a["jobs"]])
        self.assertNotIn(self.model_b, [m["id"] for m in feed_a["models"]])
        self.assertNotIn(sha, [a["sha256"] for a in feed_a["artifacts"]])
        self.assertIn(self.job_b, [j["id"] for j in feed_b["jobs"]])
        self.assertIn(sha, [a["sha256"] for a in feed_b["artifacts"]])
        self.assertEqual({j["org_id"] for j in feed_b["jobs"]}, {SECOND_ORG})
        self.assertIn(self.job_b, [j["id"] for j in feed["jobs"]])
        # Org A syncs its own job; B does not see it.
        sync_a, st_a = self.sync(A, JOB_A, HOUSE_A)
        self.assert_404(self.get(B, "/api/syncs/" + sync_a))
        self.assert_404(self.get(B, st_a["records"]["pdf"]))
        self.assertNotIn(JOB_A, [j["id"] for j in self.get(B, "/api/records").json["jobs"]])

    def test_images_stay_in_the_tenant(self):
        self.assertEqual(self.get(B, "/api/jobs/%d" % self.job_b).status, 200)
        path = "/api/images/%d" % self.image_b
        self.assert_404(self.get(A, path))  # known to the service (B's job listed it), not A's
        r = self.get(B, path)
        self.assertEqual(r.status, 200, r.body[:200])
        self.assertEqual(r.body[:3], b"\xff\xd8\xff")
        self.assert_404(self.get(A, path))  # stored now: still B's
        self.assertEqual(self.get(None, path).status, 200)

    def test_status_is_for_the_api_key(self):
        r = self.get(A, "/api/status")
        self.assertEqual(r.status, 403, r.body)
        self.assertEqual(self.get(None, "/api/status").status, 200)

    # ---- Bearer sessions and tickets ----
    def test_bearer_session_needs_no_csrf_and_cannot_mint_sessions(self):
        r = self.as_(A, "POST", "/api/syncs", {"job_id": JOB_A, "model_ids": [HOUSE_A]})
        self.assertEqual(r.status, 202, r.body)  # no X-CSRF-Token: a header is not ambient
        r = self.as_(A, "POST", "/api/sessions", {"connections": [A]})
        self.assertEqual(r.status, 403, r.body)
        r = self.svc.get("/api/connections", key=bearer("f" * 64))
        self.assertEqual(r.status, 401)

    def test_tickets_are_single_use_and_single_purpose(self):
        sync_a, st = self.sync(A, JOB_A, HOUSE_A)
        sha = st["records"]["pdf"].split("/")[-1]
        r = self.ticket(A, {"purpose": "events", "sync_id": sync_a})
        self.assertEqual(r.status, 201, r.body)
        t = r.json
        self.assertRegex(t["ticket"], r"^[0-9a-f]{64}$")
        self.assertEqual(t["url"], "%s/api/syncs/%s/events?ticket=%s" % (self.svc.url, sync_a,
                                                                        t["ticket"]))
        path = urllib.parse.urlsplit(t["url"])
        stream = self.svc.get(path.path + "?" + path.query, key=False)
        self.assertEqual(stream.status, 200, stream.body)  # a finished sync: the stream ends
        self.assertIn(b"event: done", stream.body)
        again = self.svc.get(path.path + "?" + path.query, key=False)
        self.assertEqual(again.status, 401)
        # A file ticket opens that file once, and nothing else.
        t = self.ticket(A, {"purpose": "file", "sha256": sha}).json
        other = self.svc.get("/api/syncs/%s/events?ticket=%s" % (sync_a, t["ticket"]), key=False)
        self.assertEqual(other.status, 401)  # and it is used up by the wrong use
        t = self.ticket(A, {"purpose": "file", "sha256": sha}).json
        r = self.svc.get("/files/%s?ticket=%s" % (sha, t["ticket"]), key=False)
        self.assertEqual(r.status, 200)
        self.assertTrue(r.body.startswith(b"%PDF"))
        self.assertEqual(self.svc.get("/files/%s?ticket=%s" % (sha, t["ticket"]),
                                      key=False).status, 401)
        # Not where no ticket is taken.
        t = self.ticket(A, {"purpose": "file", "sha256": sha}).json
        self.assertEqual(self.svc.get("/api/records?ticket=" + t["ticket"], key=False).status,
                         401)
        for bad in ({"purpose": "nope"}, {"purpose": "file", "sha256": "x"},
                    {"purpose": "events"}, {"purpose": "connect", "connection": 3}):
            self.assertEqual(self.ticket(A, bad).status, 400, bad)

    # ---- the connect flow ----
    def test_session_connects_only_its_own_or_new_connections(self):
        r = self.svc.request("POST", "/api/sessions", {"connections": [A]})
        self.sessions["A2"] = r.json["session"]
        self.assert_404(self.as_("A2", "GET", "/connect?connection=" + B))
        self.assert_404(self.ticket("A2", {"purpose": "connect", "connection": B}))
        r = self.as_("A2", "GET", "/connect?connection=" + A)
        self.assertEqual(r.status, 302)
        # A new connection, through a ticket opened in a new tab: the session gains it.
        t = self.ticket("A2", {"purpose": "connect", "connection": "a-second"}).json
        self.assertIn("connection=a-second", t["url"])
        url = urllib.parse.urlsplit(t["url"])
        flow = Flow(self.svc, self.sb, url.path + "?" + url.query, key=False)
        self.assertEqual(flow.start.status, 302, flow.start.body)
        r = flow.complete(MAIN_ORG)
        self.assertEqual(r.status, 200, r.body)
        keys = [c["key"] for c in self.get("A2", "/api/connections").json]
        self.assertEqual(keys, [A, "a-second"])
        self.assertNotIn("a-second", [c["key"] for c in self.get(B, "/api/connections").json])
        # The ticket worked once.
        self.assertEqual(self.svc.get(url.path + "?" + url.query, key=False).status, 401)

    def test_repoint_needs_confirmation_from_the_same_browser(self):
        # "acme" is bound to org A (connected with the API key).
        self.assertEqual(Flow(self.svc, self.sb, "/connect?connection=acme")
                         .complete(MAIN_ORG).status, 200)
        r = self.svc.request("POST", "/api/sessions", {"connections": ["acme"]})
        acme = r.json["session"]
        # Its user signs in to the other org: a question, nothing stored yet.
        flow = Flow(self.svc, self.sb, "/connect?connection=acme", key=bearer(acme))
        r = flow.complete(SECOND_ORG)
        self.assertEqual(r.status, 200, r.body)
        page = r.body.decode()
        self.assertIn("Connect another Hover org?", page)
        self.assertNotIn("hs_session", r.cookies())
        owners = {c["key"]: c["owner_id"] for c in self.get(None, "/api/connections").json}
        self.assertEqual(owners["acme"], MAIN_ORG)
        action = [a for a in page.split('action="')[1:] if "decision=repoint" in a][0]
        action = action.split('"')[0].replace("&amp;", "&")
        # Not from another browser, not from another site's page.
        self.assertEqual(self.svc.request("POST", action, key=False).status, 400)
        cookie = {"Cookie": "hs_flow=" + flow.cookie}
        r = self.svc.request("POST", action, key=False, origin=CRM, headers=cookie)
        self.assertEqual(r.status, 403)
        r = self.svc.request("POST", action, key=False, origin=self.svc.url, headers=cookie)
        self.assertEqual(r.status, 200, r.body)
        self.assertIn(b"Connected Hover org %d" % SECOND_ORG, r.body)
        owners = {c["key"]: c["owner_id"] for c in self.get(None, "/api/connections").json}
        self.assertEqual(owners["acme"], SECOND_ORG)
        self.assertEqual(self.svc.request("POST", action, key=False, headers=cookie).status, 400)
        log = self.svc.read_stderr()
        self.assertIn("re-pointed", log)
        self.assertIn("connection=acme old_owner_id=%d owner_id=%d by=session_confirmed"
                      % (MAIN_ORG, SECOND_ORG), log)
        # Cancelled: nothing changes.
        flow = Flow(self.svc, self.sb, "/connect?connection=acme", key=bearer(acme))
        page = flow.complete(MAIN_ORG).body.decode()
        cancel = [a for a in page.split('action="')[1:] if "decision=cancel" in a][0]
        r = self.svc.request("POST", cancel.split('"')[0].replace("&amp;", "&"), key=False,
                             headers={"Cookie": "hs_flow=" + flow.cookie})
        self.assertEqual(r.status, 200)
        self.assertIn(b"Nothing was changed", r.body)
        owners = {c["key"]: c["owner_id"] for c in self.get(None, "/api/connections").json}
        self.assertEqual(owners["acme"], SECOND_ORG)
        # With the API key it is the operator's decision: done at once, and logged.
        r = Flow(self.svc, self.sb, "/connect?connection=acme").complete(MAIN_ORG)
        self.assertEqual(r.status, 200)
        self.assertIn(b"Connected Hover org %d" % MAIN_ORG, r.body)
        self.assertIn("connection=acme old_owner_id=%d owner_id=%d by=api_key"
                      % (SECOND_ORG, MAIN_ORG), self.svc.read_stderr())


class PendingFlows(unittest.TestCase):
    """A flood of /connect calls cannot push out the pending flow of another browser."""

    def test_flood_does_not_evict_a_pending_flow(self):
        sb = Sandbox(jobs=5)
        svc = None
        try:
            svc = Service(sb, sb.tokens(), connection=A)
            victim = Flow(svc, sb, "/connect")
            self.assertEqual(victim.start.status, 302)
            # One browser starting flow after flow replaces only its own older ones...
            same = Flow(svc, sb, "/connect")
            first = same
            for _ in range(6):
                same = Flow(svc, sb, "/connect", cookie=first.cookie)
                self.assertEqual(same.start.status, 302)
            self.assertEqual(first.complete(MAIN_ORG).status, 400)  # its oldest: replaced
            # ... and new browsers from one address are refused past the bound.
            statuses = [Flow(svc, sb, "/connect").start.status for _ in range(40)]
            self.assertIn(429, statuses)
            self.assertEqual(statuses[-1], 429)
            self.assertNotIn(500, statuses)
            # The first flow still completes.
            r = victim.complete(SECOND_ORG)
            self.assertEqual(r.status, 200, r.body)
            self.assertIn(b"Connected Hover org %d" % SECOND_ORG, r.body)
            self.assertEqual(same.complete(MAIN_ORG).status, 200)
        finally:
            if svc:
                self.assertEqual(svc.stop(), 0, svc.read_stderr()[-2000:])
                svc.cleanup()
            sb.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
