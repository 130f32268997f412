#!/usr/bin/env python3
"""test_sandbox.py: drives the real hover-sandbox binary over loopback and checks what a client of
Hover's API would notice: the OAuth code flow, token expiry and rotation, the job list and search,
artifacts with ETags and presigned storage redirects, strict mode, rate limits, injected faults,
the request log and the admin routes.

Standard library only. The binary comes from $HOVER_SANDBOX_BIN or the first argument.
"""

import atexit
import calendar
import hashlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
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
SHOWCASE_USER = 2190402
SHOWCASE_EMAIL = "jordan.reyes@summitroofing.example"
OTHER_ORG_USER = 2190421
CLIENT_ID = "sandbox-client"
CLIENT_SECRET = "sandbox-secret"
REDIRECT = "http://127.0.0.1:9/callback"
TOKEN_KEYS = {"access_token", "token_type", "expires_in", "refresh_token", "scope", "created_at",
              "owner_id", "owner_type"}
LOG_KEYS = {"seq", "ts_ms", "listener", "method", "path", "query", "status", "auth", "client_id",
            "bytes", "fault", "if_none_match"}

_procs = []


@atexit.register
def _kill_leftovers():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()


class Sandbox:
    """One hover-sandbox process on free ports, with its port file and request log in a temp dir."""

    def __init__(self, *args, jobs=300, wait_s=60):
        self.dir = tempfile.TemporaryDirectory(prefix="hs-sandbox-test-")
        self.port_file = os.path.join(self.dir.name, "ports")
        self.log_path = os.path.join(self.dir.name, "requests.jsonl")
        self.err_path = os.path.join(self.dir.name, "stderr.txt")
        cmd = [BIN, "--port-file", self.port_file, "--request-log", self.log_path,
               "--jobs", str(jobs), "--log-level", "warn", *args]
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.err)
        _procs.append(self.proc)
        deadline = time.monotonic() + wait_s
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("sandbox did not start: " + self.stderr())
            time.sleep(0.02)
        with open(self.port_file) as f:
            lines = f.read().split()
        self.api_port, self.storage_port = int(lines[0]), int(lines[1])
        self.ready_line = self.proc.stdout.readline().decode()
        self.api = "http://127.0.0.1:%d" % self.api_port
        self.storage = "http://127.0.0.1:%d" % self.storage_port

    def stderr(self):
        try:
            with open(self.err_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self):
        """SIGTERM, and the exit status (0 expected)."""
        rc = self.proc.poll()
        if rc is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
        self.proc.stdout.close()
        self.err.close()
        if rc != 0:  # sanitizer reports and crashes end up here
            sys.stderr.write("hover-sandbox exited with %r; its stderr:\n%s\n" % (rc, self.stderr()))
        self.dir.cleanup()
        return rc

    # ---- HTTP helpers ----

    def admin(self, method, path, body=None):
        status, _, data = request(method, self.api + path, body=body)
        return status, (json.loads(data) if data else None)

    def token(self, org_id=None):
        body = {} if org_id is None else {"org_id": org_id}
        status, tok = self.admin("POST", "/__sandbox/tokens", body)
        assert status == 200, (status, tok)
        return tok

    def last_seq(self):
        return self.admin("GET", "/__sandbox/requests?limit=1&since=%d" % (2 ** 62))[1]["last_seq"]

    def requests_since(self, seq):
        return self.admin("GET", "/__sandbox/requests?since=%d" % seq)[1]["requests"]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(NoRedirect)


def request(method, url, body=None, headers=None, form=False, token=None):
    """One request; returns (status, headers, body bytes) for every status, redirects not followed."""
    headers = dict(headers or {})
    data = None
    if body is not None:
        if isinstance(body, (bytes, bytearray)):
            data = bytes(body)
        elif form:
            data = urllib.parse.urlencode(body).encode()
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        else:
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
    if token:
        headers["Authorization"] = "Bearer " + token
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with _opener.open(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers, e.read()


def get_json(url, token=None, headers=None):
    status, hdrs, data = request("GET", url, token=token, headers=headers)
    is_json = (hdrs.get("Content-Type") or "").startswith("application/json")
    return status, hdrs, (json.loads(data) if data and is_json else data)


def artifact_urls(node, path=""):
    """Every http(s) URL in a model's artifacts, keyed by its JSON path (what the client does)."""
    out = {}
    if isinstance(node, dict):
        for k, v in node.items():
            out.update(artifact_urls(v, path + "." + k if path else k))
    elif isinstance(node, str) and node.startswith("http"):
        out[path] = node
    return out


def oauth_code(sb, state, org_id=None, decision="allow"):
    form = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT, "response_type": "code",
            "state": state, "decision": decision}
    if org_id:
        form["org_id"] = str(org_id)
    status, hdrs, _ = request("POST", sb.api + "/oauth/authorize", body=form, form=True)
    assert status == 302, status
    return hdrs["Location"]


class SandboxTest(unittest.TestCase):
    """One shared sandbox (seed 42, 300 jobs, no rate limit); tests restore what they change."""

    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox("--rate-limit", "0")
        cls.tok = cls.sb.token()["access_token"]

    @classmethod
    def tearDownClass(cls):
        rc = cls.sb.stop()
        assert rc == 0, "sandbox exited with %r" % rc

    def tearDown(self):
        self.sb.admin("DELETE", "/__sandbox/faults")
        self.sb.admin("POST", "/__sandbox/config",
                      {"rate_limit": 0, "rate_window_ms": 60000, "strict": False})

    def api(self, path, token=None, headers=None):
        return get_json(self.sb.api + path, token=token or self.tok, headers=headers)

    # ---- start-up ----

    def test_ready_line_and_port_file(self):
        m = re.fullmatch(r"hover-sandbox ready api=http://127\.0\.0\.1:(\d+) "
                         r"storage=http://127\.0\.0\.1:(\d+) jobs=300\n", self.sb.ready_line)
        self.assertIsNotNone(m, self.sb.ready_line)
        self.assertEqual((int(m.group(1)), int(m.group(2))), (self.sb.api_port, self.sb.storage_port))
        status, _, body = request("GET", self.sb.api + "/healthz")
        self.assertEqual((status, body), (200, b"ok\n"))

    def test_keep_alive(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.sb.api_port, timeout=10)
        socks = set()
        for _ in range(3):
            conn.request("GET", "/api/v3/jobs?per=1", headers={"Authorization": "Bearer " + self.tok})
            r = conn.getresponse()
            r.read()
            self.assertEqual(r.status, 200)
            self.assertIsNotNone(conn.sock, "the server closed the connection")
            socks.add(id(conn.sock))
        conn.close()
        self.assertEqual(len(socks), 1)

    # ---- OAuth ----

    def test_authorize_page(self):
        q = urllib.parse.urlencode({"client_id": CLIENT_ID, "redirect_uri": REDIRECT,
                                    "response_type": "code", "state": "s<1>"})
        status, hdrs, body = request("GET", self.sb.api + "/oauth/authorize?" + q)
        page = body.decode()
        self.assertEqual(status, 200)
        self.assertTrue(hdrs["Content-Type"].startswith("text/html"))
        self.assertIn("Authorize sandbox-client to access Summit Roofing &amp; Exteriors?", page)
        self.assertIn('<form method="post" action="/oauth/authorize">', page)
        self.assertIn(">Allow</button>", page)
        self.assertIn('value="s&lt;1&gt;"', page)  # state kept, HTML-escaped
        self.assertIn('<option value="471122"', page)

    def test_authorize_rejects_unknown_client_and_bad_redirect(self):
        for params in ({"client_id": "nobody", "redirect_uri": REDIRECT},
                       {"client_id": CLIENT_ID, "redirect_uri": "http://127.0.0.1.evil.example/cb"},
                       {"client_id": CLIENT_ID, "redirect_uri": "https://attacker.example/cb"},
                       {"client_id": CLIENT_ID}):
            params["response_type"] = "code"
            status, hdrs, body = request(
                "GET", self.sb.api + "/oauth/authorize?" + urllib.parse.urlencode(params))
            self.assertEqual(status, 400, params)
            self.assertIsNone(hdrs.get("Location"))
            self.assertTrue(hdrs["Content-Type"].startswith("text/html"))

    def test_code_flow_refresh_rotation(self):
        state = "xyz 1&2=3/é"
        loc = oauth_code(self.sb, state)
        self.assertTrue(loc.startswith(REDIRECT + "?"), loc)
        qs = urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query)
        self.assertEqual(qs["state"], [state])
        code = qs["code"][0]
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        status, hdrs, body = request("POST", self.sb.api + "/oauth/token", body=form, form=True)
        self.assertEqual(status, 200, body)
        pair = json.loads(body)
        self.assertEqual(set(pair), TOKEN_KEYS)
        self.assertEqual((pair["token_type"], pair["expires_in"], pair["scope"], pair["owner_id"],
                          pair["owner_type"]), ("Bearer", 7200, "all", MAIN_ORG, "orgs"))
        self.assertLessEqual(abs(pair["created_at"] - time.time()), 5)
        self.assertEqual(hdrs["Cache-Control"], "no-store")
        # the code is single-use
        status, _, body = request("POST", self.sb.api + "/oauth/token", body=form, form=True)
        self.assertEqual((status, json.loads(body)["error"]), (400, "invalid_grant"))
        self.assertEqual(self.api("/api/v3/jobs?per=1", token=pair["access_token"])[0], 200)
        # refresh with a JSON body: a new pair; the old refresh token is then dead
        ref = {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"],
               "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        status, _, body = request("POST", self.sb.api + "/oauth/token", body=ref)
        self.assertEqual(status, 200, body)
        pair2 = json.loads(body)
        self.assertEqual(set(pair2), TOKEN_KEYS)
        self.assertNotEqual(pair2["refresh_token"], pair["refresh_token"])
        self.assertNotEqual(pair2["access_token"], pair["access_token"])
        status, _, body = request("POST", self.sb.api + "/oauth/token", body=ref)
        err = json.loads(body)
        self.assertEqual((status, err["error"]), (400, "invalid_grant"))
        self.assertIn("error_description", err)
        self.assertEqual(self.api("/api/v3/jobs?per=1", token=pair2["access_token"])[0], 200)

    def test_token_endpoint_errors(self):
        url = self.sb.api + "/oauth/token"
        status, _, body = request("POST", url, body={"grant_type": "refresh_token",
                                                     "refresh_token": "x", "client_id": CLIENT_ID,
                                                     "client_secret": "wrong"})
        self.assertEqual((status, json.loads(body)["error"]), (401, "invalid_client"))
        status, _, body = request("POST", url, body={"grant_type": "refresh_token",
                                                     "client_id": CLIENT_ID,
                                                     "client_secret": CLIENT_SECRET}, form=True)
        self.assertEqual((status, json.loads(body)["error"]), (400, "invalid_request"))
        status, _, body = request("POST", url, body=b'{"grant_type":',
                                  headers={"Content-Type": "application/json"})
        self.assertEqual((status, json.loads(body)),
                         (400, {"error": "invalid_request", "error_description": "malformed JSON"}))
        status, _, body = request("POST", url, body={"grant_type": "password"})
        self.assertEqual((status, json.loads(body)["error"]), (400, "unsupported_grant_type"))
        status, _, body = request("POST", url, body={"grant_type": "authorization_code",
                                                     "code": "nope", "redirect_uri": REDIRECT,
                                                     "client_id": CLIENT_ID,
                                                     "client_secret": CLIENT_SECRET})
        self.assertEqual((status, json.loads(body)["error"]), (400, "invalid_grant"))

    def test_code_bound_to_redirect_uri(self):
        code = urllib.parse.parse_qs(urllib.parse.urlsplit(oauth_code(self.sb, "s")).query)["code"][0]
        status, _, body = request("POST", self.sb.api + "/oauth/token", body={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT + "x",
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
        self.assertEqual((status, json.loads(body)["error"]), (400, "invalid_grant"))

    def test_deny_redirects_with_error(self):
        loc = oauth_code(self.sb, "st", decision="deny")
        qs = urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query)
        self.assertEqual((qs["error"], qs["state"]), (["access_denied"], ["st"]))
        self.assertNotIn("code", qs)

    def test_org_choice_scopes_the_token(self):
        loc = oauth_code(self.sb, "o", org_id=OTHER_ORG)
        code = urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query)["code"][0]
        status, _, body = request("POST", self.sb.api + "/oauth/token", form=True, body={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
        pair = json.loads(body)
        self.assertEqual(pair["owner_id"], OTHER_ORG)
        status, _, page = self.api("/api/v3/jobs?per=100", token=pair["access_token"])
        self.assertEqual(status, 200)
        self.assertTrue(page["results"])
        self.assertEqual({j["org"]["id"] for j in page["results"]}, {OTHER_ORG})
        # a job of the main org is invisible to this token
        self.assertEqual(self.api("/api/v3/jobs/15084301", token=pair["access_token"])[:3:2],
                         (404, {"error": "Not found"}))

    def test_api_needs_valid_token_and_expiry_says_so(self):
        status, hdrs, body = request("GET", self.sb.api + "/api/v3/jobs")
        self.assertEqual((status, json.loads(body)["error"]), (401, "invalid_token"))
        self.assertIn("Bearer", hdrs["WWW-Authenticate"])
        self.assertEqual(self.api("/api/v3/jobs", token="not-a-token")[0], 401)
        pair = self.sb.token()
        self.assertEqual(self.api("/api/v3/jobs?per=1", token=pair["access_token"])[0], 200)
        status, n = self.sb.admin("POST", "/__sandbox/tokens/expire")
        self.assertEqual(status, 200)
        self.assertGreaterEqual(n["expired"], 1)
        status, _, err = self.api("/api/v3/jobs?per=1", token=pair["access_token"])
        self.assertEqual((status, err["error"]), (401, "invalid_token"))
        self.assertIn("expired", err["error_description"])
        # the refresh token still works and gives a live access token
        status, _, body = request("POST", self.sb.api + "/oauth/token", body={
            "grant_type": "refresh_token", "refresh_token": pair["refresh_token"],
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
        self.assertEqual(status, 200)
        self.assertEqual(self.api("/api/v3/jobs?per=1",
                                  token=json.loads(body)["access_token"])[0], 200)
        type(self).tok = self.sb.token()["access_token"]  # the class token expired too

    # ---- jobs ----

    def test_list_v3_pagination_and_sort(self):
        status, hdrs, page = self.api("/api/v3/jobs")
        self.assertEqual(status, 200)
        self.assertEqual(hdrs["Content-Type"], "application/json")
        pg = page["pagination"]
        self.assertEqual(set(pg), {"current_page", "next_page", "prev_page", "total_pages", "total"})
        self.assertEqual((pg["current_page"], pg["next_page"], pg["prev_page"]), (1, 2, None))
        self.assertEqual(len(page["results"]), 25)
        self.assertEqual(pg["total_pages"], -(-pg["total"] // 25))
        created = [j["created_at"] for j in page["results"]]
        self.assertEqual(created, sorted(created, reverse=True))
        self.assertTrue(all(j["org"]["id"] == MAIN_ORG and not j["archived"]
                            for j in page["results"]))
        last = self.api("/api/v3/jobs?per=100&page=%d" % -(-pg["total"] // 100))[2]
        self.assertIsNone(last["pagination"]["next_page"])
        self.assertEqual(len(self.api("/api/v3/jobs?per=500")[2]["results"]), 100)  # clamped
        asc = self.api("/api/v3/jobs?sort_by=updated_at&sort_order=ASC&per=50")[2]["results"]
        upd = [j["updated_at"] for j in asc]
        self.assertEqual(upd, sorted(upd))
        # every job of the org exactly once across pages
        ids = []
        for p in range(1, -(-pg["total"] // 100) + 1):
            ids += [j["id"] for j in self.api("/api/v3/jobs?per=100&page=%d" % p)[2]["results"]]
        self.assertEqual(len(ids), pg["total"])
        self.assertEqual(len(set(ids)), pg["total"])

    def test_search(self):
        status, _, err = self.api("/api/v3/jobs?search=ab")
        self.assertEqual((status, err),
                         (422, {"errors": {"search": ["is too short (minimum is 3 characters)"]}}))
        for term in ("Meadow Drive", "meadow drive", "MAIN HOUSE", "Santa Maria", "jordan reyes",
                     "jordan.reyes@summitroofing"):
            res = self.api("/api/v3/jobs?per=100&search=" + urllib.parse.quote(term))[2]
            self.assertIn(15084301, [j["id"] for j in res["results"]], term)
        res = self.api("/api/v3/jobs?search=zzqqzzqq")[2]
        self.assertEqual((res["results"], res["pagination"]["total"]), ([], 0))

    def test_filters(self):
        res = self.api("/api/v3/jobs?per=100&archived=true")[2]["results"]
        self.assertIn(15084307, [j["id"] for j in res])
        self.assertTrue(all(j["archived"] for j in res))
        default = [j["id"] for j in self.api("/api/v3/jobs?per=100&search=old+mill")[2]["results"]]
        self.assertNotIn(15084307, default)
        res = self.api("/api/v3/jobs?per=100&reconstruction_state=failed")[2]["results"]
        self.assertIn(15084304, [j["id"] for j in res])
        self.assertEqual({j["reconstruction_state"] for j in res}, {"failed"})
        res = self.api("/api/v3/jobs?per=100&deliverable_ids[]=7&deliverable_ids[]=8")[2]["results"]
        self.assertTrue({15084305, 15084309} <= {j["id"] for j in res})
        self.assertEqual({j["deliverable_id"] for j in res} - {7, 8}, set())
        all_jobs = self.api("/api/v3/jobs?per=100&sort_by=updated_at")[2]["results"]
        pivot = all_jobs[10]["updated_at"]
        since = calendar.timegm(time.strptime(pivot[:19], "%Y-%m-%dT%H:%M:%S"))
        res = self.api("/api/v3/jobs?per=100&sort_by=updated_at&updated_since=%d" % since)[2]
        self.assertTrue(all(j["updated_at"][:19] >= pivot[:19] for j in res["results"]))
        self.assertGreaterEqual(len(res["results"]), 11)
        self.assertEqual(self.api("/api/v3/jobs?sort_by=name")[0], 422)

    def test_list_v2_shape(self):
        status, _, page = self.api("/api/v2/jobs?per=5")
        self.assertEqual(status, 200)
        self.assertEqual(set(page["pagination"]), {"current_page", "total_pages", "total"})
        self.assertEqual(len(page["results"]), 5)
        self.assertIn("location_line_1", page["results"][0])
        self.assertNotIn("models", page["results"][0])

    def test_show_job(self):
        status, _, job = self.api("/api/v3/jobs/15084301")
        self.assertEqual(status, 200)
        self.assertEqual((job["id"], job["name"], job["org"]["id"]), (15084301, "Main House", MAIN_ORG))
        self.assertEqual(len(job["models"]), 3)
        self.assertEqual(self.api("/api/v3/jobs/1")[:3:2], (404, {"error": "Not found"}))

    # ---- artifacts ----

    def test_every_artifact_url_of_the_showcase_works(self):
        seen_pdf = 0
        for job_id in range(15084301, 15084311):
            job = self.api("/api/v3/jobs/%d" % job_id)[2]
            for m in job["models"]:
                urls = artifact_urls(m["artifacts"])
                if m["state"] != "complete":
                    self.assertEqual(urls, {})
                    continue
                for kind, url in urls.items():
                    status, hdrs, body = request("GET", url, token=self.tok)
                    if kind == "measurements.pdf":
                        self.assertEqual(status, 302, url)
                        loc = hdrs["Location"]
                        self.assertTrue(loc.startswith(self.sb.storage + "/storage/pdf/"), loc)
                        status, hdrs, body = request("GET", loc)
                        self.assertEqual(hdrs["Content-Type"], "application/pdf")
                        self.assertTrue(body.startswith(b"%PDF-"))
                        seen_pdf += 1
                    self.assertEqual(status, 200, (kind, url, body[:200]))
                    self.assertRegex(hdrs["ETag"], r'^"[0-9a-f]{16,}"$')
                    self.assertEqual(int(hdrs["Content-Length"]), len(body))
                    if "/measurements.json" in url or url.endswith(".fml"):
                        self.assertEqual(hdrs["Content-Type"], "application/json")
                        json.loads(body)
                for img in m["images"]:
                    status, hdrs, body = request("GET", img["url"], token=self.tok)
                    self.assertEqual((status, hdrs["Content-Type"]), (200, "image/jpeg"))
                    self.assertTrue(body.startswith(b"\xff\xd8"))
        self.assertGreater(seen_pdf, 5)

    def test_content_types(self):
        base = self.sb.api + "/api/v3/models/17338401/artifacts/"
        want = {"measurements.xlsx":
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "cad_export.skp": "application/vnd.sketchup.skp",
                "cad_export.xml": "application/xml"}
        bodies = set()
        for name, ctype in want.items():
            status, hdrs, body = request("GET", base + name, token=self.tok)
            self.assertEqual((status, hdrs["Content-Type"]), (200, ctype))
            bodies.add(body)
        self.assertEqual(len(bodies), 3)
        status, hdrs, body = request("GET", self.sb.api +
                                     "/api/v3/models/17338411/artifacts/cad_export.fml",
                                     token=self.tok)
        self.assertEqual((status, hdrs["Content-Type"]), (200, "application/json"))
        self.assertIn("floors", json.loads(body))

    def test_artifacts_only_for_complete_models(self):
        status, _, err = self.api("/api/v3/models/17338408/artifacts/measurements.json")
        self.assertEqual((status, err),
                         (404, {"error": "Artifact not available: model state is processing"}))
        status, _, err = self.api("/api/v3/models/17338405/artifacts/measurements.pdf")
        self.assertEqual((status, err),
                         (404, {"error": "Artifact not available: model state is failed"}))
        # Capture Only offers no measurements
        self.assertEqual(self.api("/api/v3/models/17338416/artifacts/measurements.json")[0], 404)
        self.assertEqual(self.api("/api/v3/models/99/artifacts/measurements.json")[0], 404)

    def test_measurement_versions(self):
        base = "/api/v3/models/17338401/artifacts/measurements.json"
        self.assertEqual(self.api(base)[2]["version"], "summarized_json")
        self.assertEqual(self.api(base + "?version=full_json")[2]["version"], "full_json")
        status, _, err = self.api(base + "?version=sketch_json")
        self.assertEqual(status, 422)
        self.assertIn("version", err["errors"])
        # total living area (6) offers sketch_json only
        tla = "/api/v3/models/17338417/artifacts/measurements.json"
        self.assertEqual(self.api(tla)[2]["version"], "sketch_json")
        self.assertEqual(self.api(tla + "?version=summarized_json")[0], 422)

    def test_etag_and_304(self):
        for path in ("/api/v3/models/17338401/artifacts/measurements.json?version=full_json",
                     "/api/v3/images/166283801",
                     "/api/v3/models/17338401/artifacts/measurements.xlsx"):
            status, hdrs, body = request("GET", self.sb.api + path, token=self.tok)
            etag = hdrs["ETag"]
            self.assertEqual(status, 200)
            status, hdrs2, body2 = request("GET", self.sb.api + path, token=self.tok,
                                           headers={"If-None-Match": etag})
            self.assertEqual((status, body2, hdrs2["ETag"]), (304, b"", etag))
            status, _, body3 = request("GET", self.sb.api + path, token=self.tok,
                                       headers={"If-None-Match": '"0000", W/' + etag})
            self.assertEqual(status, 304)
            status, _, body4 = request("GET", self.sb.api + path, token=self.tok,
                                       headers={"If-None-Match": '"other"'})
            self.assertEqual((status, body4), (200, body))

    def test_pdf_redirect_and_storage_rules(self):
        status, hdrs, _ = request("GET", self.sb.api + "/api/v3/models/17338401/artifacts/"
                                  "measurements.pdf", token=self.tok)
        self.assertEqual(status, 302)
        loc = hdrs["Location"]
        parts = urllib.parse.urlsplit(loc)
        self.assertEqual(parts.port, self.sb.storage_port)
        self.assertRegex(parts.path, r"^/storage/pdf/17338401-r\d+\.pdf$")
        qs = urllib.parse.parse_qs(parts.query)
        self.assertGreater(int(qs["expires"][0]), time.time())
        seq = self.sb.last_seq()
        status, hdrs, pdf = request("GET", loc)
        self.assertEqual((status, hdrs["Content-Type"]), (200, "application/pdf"))
        # like S3 for a single-part object: the ETag is the MD5 of the bytes
        self.assertEqual(hdrs["ETag"], '"%s"' % hashlib.md5(pdf).hexdigest())
        status, _, body = request("GET", loc, headers={"If-None-Match": hdrs["ETag"]})
        self.assertEqual((status, body), (304, b""))
        # like S3: a request that also carries an Authorization header is refused
        status, hdrs, body = request("GET", loc, token=self.tok)
        self.assertEqual(status, 400)
        self.assertIn(b"<Code>InvalidArgument</Code>", body)
        bad = loc.replace("signature=" + qs["signature"][0], "signature=" + "0" * 64)
        status, _, body = request("GET", bad)
        self.assertEqual(status, 403)
        self.assertIn(b"SignatureDoesNotMatch", body)
        expired = urllib.parse.urlunsplit(parts._replace(query="expires=1&signature=" + "0" * 64))
        self.assertEqual(request("GET", expired)[0], 403)
        log = [r for r in self.sb.requests_since(seq) if r["listener"] == "storage"]
        self.assertEqual([(r["status"], r["auth"], r["if_none_match"]) for r in log],
                         [(200, False, False), (304, False, True), (400, True, False),
                          (403, False, False), (403, False, False)])

    # ---- strict mode ----

    def test_strict_mode(self):
        status, cfg = self.sb.admin("POST", "/__sandbox/config", {"strict": True})
        self.assertEqual((status, cfg["strict"]), (200, True))
        for path in ("/api/v3/jobs/15084301", "/api/v3/jobs?per=1", "/api/v3/images/166283801",
                     "/api/v3/models/17338401/artifacts/measurements.json"):
            status, _, err = self.api(path)
            self.assertEqual((status, err), (403, {"error": "current_user_id or "
                                                            "current_user_email is required"}), path)
            sep = "&" if "?" in path else "?"
            self.assertEqual(self.api(path + sep + "current_user_id=%d" % SHOWCASE_USER)[0], 200)
            self.assertEqual(self.api(path + sep + "current_user_email=" + SHOWCASE_EMAIL)[0], 200)
            self.assertEqual(self.api(path + sep + "current_user_id=%d" % OTHER_ORG_USER)[0], 403)
            self.assertEqual(self.api(path + sep + "current_user_email=nobody@example.com")[0], 403)
        self.sb.admin("POST", "/__sandbox/config", {"strict": False})
        self.assertEqual(self.api("/api/v3/jobs/15084301")[0], 200)

    # ---- rate limits ----

    def test_rate_limit_with_retry_after(self):
        self.sb.admin("POST", "/__sandbox/config", {"rate_limit": 3, "rate_window_ms": 800})
        statuses = [self.api("/api/v3/jobs?per=1")[0] for _ in range(3)]
        self.assertEqual(statuses, [200, 200, 200])
        status, hdrs, err = self.api("/api/v3/jobs?per=1")
        self.assertEqual((status, err), (429, {"error": "Rate limit exceeded"}))
        self.assertRegex(hdrs["Retry-After"], r"^[1-9][0-9]*$")
        # the token endpoint counts toward the same client's budget
        status, _, _ = request("POST", self.sb.api + "/oauth/token", body={
            "grant_type": "refresh_token", "refresh_token": "x", "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET})
        self.assertEqual(status, 429)
        # admin routes are never limited
        self.assertEqual(self.sb.admin("GET", "/__sandbox/config")[0], 200)
        time.sleep(0.85)
        self.assertEqual(self.api("/api/v3/jobs?per=1")[0], 200)

    def test_rate_limit_is_per_client(self):
        self.sb.admin("POST", "/__sandbox/config", {"rate_limit": 2, "rate_window_ms": 60000})
        other = self.sb.admin("POST", "/__sandbox/tokens", {"client_id": "other-app"})[1]
        for _ in range(2):
            self.assertEqual(self.api("/api/v3/jobs?per=1")[0], 200)
        self.assertEqual(self.api("/api/v3/jobs?per=1")[0], 429)
        self.assertEqual(self.api("/api/v3/jobs?per=1", token=other["access_token"])[0], 200)

    # ---- faults ----

    def fault(self, **rule):
        status, out = self.sb.admin("POST", "/__sandbox/faults", rule)
        self.assertEqual(status, 201, out)
        return out["id"]

    def raw_get(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.sb.api_port, timeout=10)
        conn.request("GET", path, headers={"Authorization": "Bearer " + self.tok})
        return conn

    def test_fault_status_count(self):
        self.fault(path="/api/v3/jobs*", status=503, count=2)
        got = [self.api("/api/v3/jobs/15084301")[0] for _ in range(3)]
        self.assertEqual(got, [503, 503, 200])
        self.assertEqual(self.sb.admin("GET", "/__sandbox/faults")[1], {"faults": []})

    def test_fault_method_filter(self):
        self.fault(path="/oauth/token", method="POST", status=500, count=1)
        self.assertEqual(self.api("/api/v3/jobs/15084301")[0], 200)
        status, _, _ = request("POST", self.sb.api + "/oauth/token", body={"grant_type": "x"})
        self.assertEqual(status, 500)

    def test_fault_drop(self):
        self.fault(path="/api/v3/jobs/*", drop=True, count=1)
        conn = self.raw_get("/api/v3/jobs/15084301")
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionResetError)):
            conn.getresponse()
        conn.close()
        self.assertEqual(self.api("/api/v3/jobs/15084301")[0], 200)

    def test_fault_truncate(self):
        self.fault(path="/api/v3/jobs/*", truncate=True, count=1)
        conn = self.raw_get("/api/v3/jobs/15084301")
        r = conn.getresponse()
        self.assertEqual(r.status, 200)
        announced = int(r.getheader("Content-Length"))
        with self.assertRaises(http.client.IncompleteRead) as cm:
            r.read()
        self.assertLess(len(cm.exception.partial), announced)
        conn.close()

    def test_fault_malformed(self):
        self.fault(path="/api/v3/jobs/*", malformed=True, count=1)
        conn = self.raw_get("/api/v3/jobs/15084301")
        r = conn.getresponse()
        body = r.read()
        conn.close()
        self.assertEqual(r.status, 200)
        self.assertEqual(int(r.getheader("Content-Length")), len(body))
        with self.assertRaises(ValueError):
            json.loads(body)

    def test_fault_latency(self):
        self.fault(path="/api/v3/jobs/15084301", latency_ms=250, count=1)
        t0 = time.monotonic()
        self.assertEqual(self.api("/api/v3/jobs/15084301")[0], 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.24)
        t0 = time.monotonic()
        self.assertEqual(self.api("/api/v3/jobs/15084301")[0], 200)
        self.assertLess(time.monotonic() - t0, 0.2)

    def test_fault_latency_does_not_block_other_requests(self):
        import threading
        self.fault(path="/api/v3/jobs/15084302", latency_ms=600, count=4)
        threads = [threading.Thread(target=self.api, args=("/api/v3/jobs/15084302",))
                   for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.05)
        t0 = time.monotonic()
        self.assertEqual(self.api("/api/v3/jobs/15084301")[0], 200)
        self.assertLess(time.monotonic() - t0, 0.3)
        for t in threads:
            t.join()

    def test_fault_rules_admin(self):
        a = self.fault(path="/api/v3/jobs*", status=502, rate=0.5)
        b = self.fault(path="/x", latency_ms=10, count=3)
        rules = self.sb.admin("GET", "/__sandbox/faults")[1]["faults"]
        self.assertEqual([r["id"] for r in rules], [a, b])
        self.assertEqual(rules[0]["rate"], 0.5)
        self.assertEqual(rules[1]["count"], 3)
        status, err = self.sb.admin("POST", "/__sandbox/faults", {"path": "/x"})
        self.assertEqual(status, 422)
        got = [self.api("/api/v3/jobs?per=1")[0] for _ in range(40)]
        self.assertTrue(10 < got.count(502) < 30, got)
        self.assertEqual(set(got), {200, 502})
        self.assertEqual(self.sb.admin("DELETE", "/__sandbox/faults/%d" % b)[0], 200)
        self.sb.admin("DELETE", "/__sandbox/faults")
        self.assertEqual(self.sb.admin("GET", "/__sandbox/faults")[1], {"faults": []})

    # ---- request log ----

    def test_request_log(self):
        seq = self.sb.last_seq()
        self.api("/api/v3/jobs?per=2&search=meadow")
        self.api("/api/v3/jobs/15084301", headers={"If-None-Match": '"x"'})
        request("GET", self.sb.api + "/api/v3/jobs")
        self.sb.admin("GET", "/__sandbox/config")  # admin: not logged
        entries = self.sb.requests_since(seq)
        self.assertEqual(len(entries), 3, entries)
        for e in entries:
            self.assertEqual(set(e), LOG_KEYS)
        a, b, c = entries
        self.assertEqual((a["listener"], a["method"], a["path"], a["query"], a["status"],
                          a["auth"], a["client_id"], a["fault"], a["if_none_match"]),
                         ("api", "GET", "/api/v3/jobs", "per=2&search=meadow", 200, True,
                          CLIENT_ID, "none", False))
        self.assertGreater(a["bytes"], 0)
        self.assertEqual([e["seq"] for e in entries], list(range(seq + 1, seq + 4)))
        self.assertTrue(b["if_none_match"])
        self.assertEqual((c["status"], c["auth"], c["client_id"]), (401, False, None))
        with open(self.sb.log_path) as f:
            lines = [json.loads(l) for l in f if l.strip()]
        self.assertEqual([l for l in lines if l["seq"] > seq], entries)

    def test_request_log_clear_keeps_seq(self):
        self.api("/api/v3/jobs?per=1")
        before = self.sb.last_seq()
        self.assertEqual(self.sb.admin("DELETE", "/__sandbox/requests")[0], 200)
        status, out = self.sb.admin("GET", "/__sandbox/requests")
        self.assertEqual((out["requests"], out["last_seq"]), ([], before))
        self.api("/api/v3/jobs?per=1")
        self.assertEqual([e["seq"] for e in self.sb.requests_since(0)], [before + 1])

    # ---- errors and admin ----

    def test_error_routes(self):
        status, _, err = self.api("/api/v3/nothing")
        self.assertEqual((status, err), (404, {"error": "Not found"}))
        status, hdrs, _ = request("DELETE", self.sb.api + "/api/v3/jobs/15084301", token=self.tok)
        self.assertEqual(status, 405)
        self.assertIn("GET", hdrs["Allow"])
        status, _, body = request("POST", self.sb.api + "/oauth/token", body=b"x" * (2 << 20),
                                  headers={"Content-Type": "application/json"})
        self.assertEqual(status, 413)
        status, _, body = request("POST", self.sb.api + "/__sandbox/faults", body=b"{",
                                  headers={"Content-Type": "application/json"})
        self.assertEqual((status, json.loads(body)),
                         (400, {"error": "invalid_request", "error_description": "malformed JSON"}))

    def test_admin_tokens_and_config(self):
        tok = self.sb.token(OTHER_ORG)
        self.assertEqual(set(tok), TOKEN_KEYS)
        self.assertEqual(tok["owner_id"], OTHER_ORG)
        self.assertEqual(self.sb.admin("POST", "/__sandbox/tokens", {"org_id": 1})[0], 404)
        status, cfg = self.sb.admin("GET", "/__sandbox/config")
        self.assertEqual(status, 200)
        self.assertEqual((cfg["rate_limit"], cfg["strict"], cfg["client_id"], cfg["jobs"],
                          cfg["api"], cfg["storage"]),
                         (0, False, CLIENT_ID, 300, self.sb.api, self.sb.storage))
        self.assertNotIn("client_secret", cfg)
        self.assertEqual(self.sb.admin("POST", "/__sandbox/config", {"nope": 1})[0], 422)
        orgs = self.sb.admin("GET", "/__sandbox/orgs")[1]["orgs"]
        self.assertIn(MAIN_ORG, [o["id"] for o in orgs])


class AdminModelTest(unittest.TestCase):
    """Changes to models through /__sandbox/models/{id}, on a sandbox of its own."""

    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox("--rate-limit", "0", jobs=50)
        cls.tok = cls.sb.token()["access_token"]

    @classmethod
    def tearDownClass(cls):
        assert cls.sb.stop() == 0

    def test_model_completes_and_job_follows(self):
        api = self.sb.api
        job = get_json(api + "/api/v3/jobs/15084303", token=self.tok)[2]
        self.assertEqual(job["reconstruction_state"], "processing")
        since = int(time.time())
        status, job = self.sb.admin("POST", "/__sandbox/models/17338408", {"state": "complete"})
        self.assertEqual(status, 200)
        self.assertEqual(job["reconstruction_state"], "completed")
        self.assertEqual({m["state"] for m in job["models"]}, {"complete"})
        res = get_json(api + "/api/v3/jobs?updated_since=%d" % since, token=self.tok)[2]
        self.assertEqual([j["id"] for j in res["results"]], [15084303])
        first = get_json(api + "/api/v3/jobs?sort_by=updated_at", token=self.tok)[2]["results"][0]
        self.assertEqual(first["id"], 15084303)
        status, hdrs, _ = request("GET", api + "/api/v3/models/17338408/artifacts/measurements.json",
                                  token=self.tok)
        self.assertEqual(status, 200)
        etag = hdrs["ETag"]
        self.assertEqual(self.sb.admin("POST", "/__sandbox/models/17338408",
                                       {"bump_revision": True})[0], 200)
        status, hdrs, _ = request("GET", api + "/api/v3/models/17338408/artifacts/measurements.json",
                                  token=self.tok, headers={"If-None-Match": etag})
        self.assertEqual(status, 200)
        self.assertNotEqual(hdrs["ETag"], etag)

    def test_pdf_bytes_and_failures(self):
        api = self.sb.api
        self.assertEqual(self.sb.admin("POST", "/__sandbox/models/17338401",
                                       {"pdf_bytes": 1 << 20})[0], 200)
        status, hdrs, _ = request("GET", api + "/api/v3/models/17338401/artifacts/measurements.pdf",
                                  token=self.tok)
        status, hdrs, pdf = request("GET", hdrs["Location"])
        self.assertEqual((status, len(pdf)), (200, 1 << 20))
        # 15084302: House complete, Garage failed, Shed complete. One complete model is enough
        # for "completed"; all failed makes the job failed.
        status, job = self.sb.admin("POST", "/__sandbox/models/17338404", {"state": "failed"})
        self.assertEqual(job["reconstruction_state"], "completed")
        status, job = self.sb.admin("POST", "/__sandbox/models/17338406", {"state": "failed"})
        self.assertEqual(job["reconstruction_state"], "failed")
        self.assertEqual(get_json(api + "/api/v3/models/17338404/artifacts/measurements.json",
                                  token=self.tok)[0], 404)
        self.assertEqual(self.sb.admin("POST", "/__sandbox/models/1", {"state": "complete"})[0], 404)
        self.assertEqual(self.sb.admin("POST", "/__sandbox/models/17338401", {})[0], 422)
        self.assertEqual(self.sb.admin("POST", "/__sandbox/models/17338401",
                                       {"pdf_bytes": "big"})[0], 422)


class CommandLineTest(unittest.TestCase):

    def test_help_and_usage_errors(self):
        r = subprocess.run([BIN, "--help"], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0)
        for word in (b"--listen", b"--storage-listen", b"--port-file", b"--seed", b"--jobs",
                     b"--strict", b"--rate-limit", b"--rate-window-ms", b"--token-lifetime",
                     b"--request-log", b"--client-id", b"--client-secret", b"--redirect-uri",
                     b"--fault", b"--log-level", b"--quiet"):
            self.assertIn(word, r.stdout)
        for bad in (["--jobs", "many"], ["--fault", "status=503"], ["--fault", "path=/x,bogus=1"],
                    ["--rate-limit", "-1"], ["--log-level", "loud"], ["--nope"], ["extra"],
                    ["--listen", "127.0.0.1:99999"], ["--storage-listen", "nowhere"]):
            r = subprocess.run([BIN, *bad], capture_output=True, timeout=30)
            self.assertEqual(r.returncode, 2, bad)
            self.assertTrue(r.stderr, bad)

    def test_cli_faults_and_options(self):
        sb = Sandbox("--fault", "path=/api/v3/jobs*,status=503,count=2",
                     "--fault", "path=/api/v3/jobs/15084302,latency_ms=200",
                     "--client-id", "my-app", "--client-secret", "s3cret",
                     "--token-lifetime", "60", "--redirect-uri", "http://localhost:5000/cb",
                     jobs=20)
        try:
            tok = sb.token()
            self.assertEqual(tok["expires_in"], 60)
            got = [get_json(sb.api + "/api/v3/jobs", token=tok["access_token"])[0]
                   for _ in range(3)]
            self.assertEqual(got, [503, 503, 200])
            t0 = time.monotonic()
            get_json(sb.api + "/api/v3/jobs/15084302", token=tok["access_token"])
            self.assertGreaterEqual(time.monotonic() - t0, 0.19)
            log = sb.requests_since(0)
            self.assertEqual([e["fault"] for e in log], ["status", "status", "none", "latency"])
            self.assertEqual([e["client_id"] for e in log], ["my-app"] * 4)
            q = {"client_id": "my-app", "response_type": "code"}
            for uri, want in (("http://localhost:5000/cb?x=1", 200), ("http://127.0.0.1/cb", 400)):
                q["redirect_uri"] = uri
                url = sb.api + "/oauth/authorize?" + urllib.parse.urlencode(q)
                self.assertEqual(request("GET", url)[0], want, uri)
        finally:
            self.assertEqual(sb.stop(), 0)

    def test_fault_rate_is_seeded(self):
        def run():
            sb = Sandbox("--seed", "7", "--rate-limit", "0",
                         "--fault", "path=/api/v3/jobs,status=500,rate=0.5", jobs=20)
            try:
                tok = sb.token()["access_token"]
                return [get_json(sb.api + "/api/v3/jobs?per=1", token=tok)[0] for _ in range(24)]
            finally:
                self.assertEqual(sb.stop(), 0)
        first, second = run(), run()
        self.assertEqual(first, second)
        self.assertEqual(set(first), {200, 500})


class ScaleTest(unittest.TestCase):

    def test_search_over_100k_jobs_is_fast(self):
        sb = Sandbox("--rate-limit", "0", jobs=100000, wait_s=120)
        try:
            self.assertTrue(sb.ready_line.endswith(" jobs=100000\n"), sb.ready_line)
            tok = sb.token()["access_token"]
            conn = http.client.HTTPConnection("127.0.0.1", sb.api_port, timeout=30)
            times = []
            for q in ("search=meadow", "search=zzqqzz", "search=drive&sort_by=updated_at",
                      "per=100&page=40", "search=santa&sort_order=ASC&per=100",
                      "search=gmail&archived=true", "search=meadow", "search=road"):
                t0 = time.monotonic()
                conn.request("GET", "/api/v3/jobs?" + q, headers={"Authorization": "Bearer " + tok})
                r = conn.getresponse()
                body = r.read()
                times.append(time.monotonic() - t0)
                self.assertEqual(r.status, 200, body[:200])
            conn.close()
            times.sort()
            # milliseconds, not a sort of 100,000 jobs per request (generous for sanitizer builds)
            self.assertLess(times[len(times) // 2], 0.25, times)
        finally:
            self.assertEqual(sb.stop(), 0)


if __name__ == "__main__":
    if not BIN or not os.access(BIN, os.X_OK):
        sys.exit("test_sandbox.py: set HOVER_SANDBOX_BIN or pass the hover-sandbox path")
    unittest.main(verbosity=2)
