"""Access to `hoversync serve` given and taken back (docs/API.md "API keys", "Sessions"): named
API keys made and revoked with `hoversync apikeys` or /api/apikeys take effect on running
instances without a restart, HOVERSYNC_API_KEY keeps working beside them and shows as `env`;
sessions revoked by the CRM (DELETE /api/sessions/{id}) or ended by the modal's logout
(DELETE /api/session) fail at once, on every instance sharing the store."""
import hashlib
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Sandbox, Service, wait_for  # noqa: E402


def bearer(token):
    return "Bearer " + token


class ApiKeys(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox(jobs=10)
        cls.a = Service(cls.sb, cls.sb.tokens())
        # A second instance of the installation: the same store.
        cls.b = Service(cls.sb, None, db_dir=cls.a.dir)

    @classmethod
    def tearDownClass(cls):
        rcs = [(s.stop(), s.read_stderr()) for s in (cls.b, cls.a)]
        cls.a.cleanup()
        cls.b.cleanup()
        cls.sb.stop()
        for rc, err in rcs:
            assert rc == 0, "hoversync serve exited with %s: %s" % (rc, err[-3000:])

    def status_with(self, svc, key):
        return svc.get("/api/connections", key=bearer(key)).status

    def test_cli_key_works_at_once_and_revoked_key_fails_everywhere(self):
        cli = self.a.cli
        r = cli.run("apikeys", "create", "crm-west")
        self.assertEqual(r.returncode, 0, r.stderr)
        key = r.stdout.strip()
        self.assertRegex(key, r"^hsk_[0-9a-f]{64}$")
        self.assertIn("shown this once", r.stderr)
        # Works at once on both running instances, without a restart.
        self.assertEqual(self.status_with(self.a, key), 200)
        self.assertEqual(self.status_with(self.b, key), 200)
        # Listed by name with its use; never the key nor its hash; the environment's as env.
        r = cli.run("apikeys", "list")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("crm-west", r.stdout)
        self.assertNotIn(key, r.stdout)
        self.assertNotIn(hashlib.sha256(key.encode()).hexdigest(), r.stdout)
        doc = cli.json("apikeys", "list")
        byname = {k["name"]: k for k in doc["keys"]}
        self.assertEqual(byname["env"]["source"], "environment")
        self.assertEqual(byname["crm-west"]["source"], "store")
        self.assertIsNotNone(byname["crm-west"]["last_used_at"])
        # Only the hash is in the store.
        self.assertEqual(cli.sql("SELECT key_sha256 FROM api_keys WHERE name = 'crm-west'"),
                         [(hashlib.sha256(key.encode()).hexdigest(),)])
        # A name is taken once; env is not a name to take, nor to revoke.
        r = cli.run("apikeys", "create", "crm-west")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertEqual(cli.run("apikeys", "create", "env").returncode, 2)
        self.assertEqual(cli.run("apikeys", "create", "bad name").returncode, 2)
        self.assertEqual(cli.run("apikeys", "revoke", "env").returncode, 2)
        # Revoked: refused by both instances within their second of cache.
        r = cli.run("apikeys", "revoke", "crm-west")
        self.assertEqual(r.returncode, 0, r.stderr)
        wait_for("instance a refuses the revoked key",
                 lambda: self.status_with(self.a, key) == 401, timeout=10)
        wait_for("instance b refuses the revoked key",
                 lambda: self.status_with(self.b, key) == 401, timeout=10)
        self.assertEqual(cli.run("apikeys", "revoke", "crm-west").returncode, 1)
        # The environment's key was never affected.
        self.assertEqual(self.a.get("/api/connections").status, 200)

    def test_api_routes_create_list_revoke(self):
        r = self.a.request("POST", "/api/apikeys", {"name": "crm-east"})
        self.assertEqual(r.status, 201, r.body)
        key = r.json["key"]
        self.assertEqual(r.json["name"], "crm-east")
        self.assertEqual(self.status_with(self.b, key), 200)
        self.assertEqual(self.a.request("POST", "/api/apikeys", {"name": "crm-east"}).status, 409)
        self.assertEqual(self.a.request("POST", "/api/apikeys", {"name": "env"}).status, 400)
        self.assertEqual(self.a.request("POST", "/api/apikeys", {"name": "a/b"}).status, 400)
        # The new key may manage keys too; the list shows names and times only.
        lst = self.b.get("/api/apikeys", key=bearer(key))
        self.assertEqual(lst.status, 200, lst.body)
        names = [k["name"] for k in lst.json["keys"]]
        self.assertIn("crm-east", names)
        self.assertIn("env", names)
        self.assertNotIn(key.encode(), lst.body)
        # A session may not.
        s = self.a.request("POST", "/api/sessions", {}).json["session"]
        self.assertEqual(self.a.get("/api/apikeys", key=bearer(s)).status, 403)
        self.assertEqual(self.a.request("DELETE", "/api/apikeys/env").status, 409)
        self.assertEqual(self.a.request("DELETE", "/api/apikeys/never-made").status, 404)
        self.assertEqual(self.b.request("DELETE", "/api/apikeys/crm-east").status, 204)
        wait_for("the revoked key refused", lambda: self.status_with(self.a, key) == 401,
                 timeout=10)


class PerKeyRate(unittest.TestCase):
    def test_each_named_key_has_its_own_caller_rate(self):
        sb = Sandbox(jobs=10)
        svc = Service(sb, sb.tokens(), args=["--caller-rate-limit", 2])
        try:
            keys = [svc.request("POST", "/api/apikeys", {"name": n}).json["key"]
                    for n in ("crm-one", "crm-two")]
            path = "/api/jobs?q=Meadow"
            for _ in range(2):
                self.assertEqual(svc.get(path, key=bearer(keys[0])).status, 200)
            self.assertEqual(svc.get(path, key=bearer(keys[0])).status, 429)
            # Another CRM's key, and the environment's, are not held back by the first one's.
            self.assertEqual(svc.get(path, key=bearer(keys[1])).status, 200)
            self.assertEqual(svc.get(path).status, 200)
        finally:
            rc = svc.stop()
            err = svc.read_stderr()
            svc.cleanup()
            sb.stop()
        self.assertEqual(rc, 0, err[-3000:])


class Sessions(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox(jobs=10)
        cls.a = Service(cls.sb, cls.sb.tokens())
        cls.b = Service(cls.sb, None, db_dir=cls.a.dir)

    @classmethod
    def tearDownClass(cls):
        rcs = [(s.stop(), s.read_stderr()) for s in (cls.b, cls.a)]
        cls.a.cleanup()
        cls.b.cleanup()
        cls.sb.stop()
        for rc, err in rcs:
            assert rc == 0, "hoversync serve exited with %s: %s" % (rc, err[-3000:])

    def new_session(self):
        r = self.a.request("POST", "/api/sessions", {"user": "u-1"})
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual(r.json["id"], hashlib.sha256(r.json["session"].encode()).hexdigest())
        return r.json

    def test_revoked_session_fails_at_once_on_every_instance(self):
        s = self.new_session()
        keep = self.new_session()
        for svc in (self.a, self.b):
            self.assertEqual(svc.get("/api/session", key=bearer(s["session"])).status, 200)
        r = self.b.request("DELETE", "/api/sessions/" + s["id"])
        self.assertEqual(r.status, 204, r.body)
        for svc in (self.a, self.b):
            r = svc.get("/api/session", key=bearer(s["session"]))
            self.assertEqual(r.status, 401, r.body)
            self.assertIn("revoked", r.json["error"]["message"])
            self.assertEqual(svc.get("/api/session", key=bearer(keep["session"])).status, 200)
        self.assertEqual(self.a.request("DELETE", "/api/sessions/" + s["id"]).status, 404)
        self.assertEqual(self.a.request("DELETE", "/api/sessions/not-an-id").status, 404)
        # Only the API key revokes sessions.
        r = self.a.request("DELETE", "/api/sessions/" + keep["id"], key=bearer(keep["session"]))
        self.assertEqual(r.status, 403)

    def test_logout_ends_the_callers_session(self):
        s = self.new_session()
        # The API key has no session of its own to end.
        self.assertEqual(self.a.request("DELETE", "/api/session").status, 400)
        # With the cookie, the CSRF token is needed, and the cookie is dropped.
        self.assertEqual(self.a.request("DELETE", "/api/session", key=False,
                                        cookie=s["session"]).status, 403)
        r = self.a.request("DELETE", "/api/session", key=False, cookie=s["session"],
                           headers={"X-CSRF-Token": s["csrf_token"]})
        self.assertEqual(r.status, 204, r.body)
        self.assertEqual(r.cookies()["hs_session"][0], "")
        self.assertIn("Max-Age=0", r.cookies()["hs_session"][1])
        for svc in (self.a, self.b):
            self.assertEqual(svc.get("/api/session", key=bearer(s["session"])).status, 401)
        # A Bearer session ends likewise.
        t = self.new_session()
        r = self.b.request("DELETE", "/api/session", key=bearer(t["session"]))
        self.assertEqual(r.status, 204, r.body)
        self.assertEqual(self.a.get("/api/connections", key=bearer(t["session"])).status, 401)


if __name__ == "__main__":
    unittest.main(verbosity=2)
