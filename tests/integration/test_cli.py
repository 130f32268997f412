"""The hoversync command line against the real sandbox over loopback: search, show, pagination,
token refresh and rotation, rate limiting, injected faults, and the exit-code contract."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import urllib.error  # noqa: E402

from harness import HOVERSYNC_BIN  # noqa: E402
from harness import (CAPTURING_USER, JOB_ALL_COMPLETE, JOB_FAILED, JOB_ONE_FAILED,  # noqa: E402
                     JOB_PROCESSING, Cli, Sandbox, api_requests)


class CliAgainstSandbox(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox(jobs=400)

    @classmethod
    def tearDownClass(cls):
        cls.sb.stop()

    def setUp(self):
        self.sb.clear_faults()
        self.sb.admin("POST", "config", {"rate_limit": 0, "strict": False})
        self.cli = Cli(self.sb, self.sb.tokens())

    def tearDown(self):
        self.cli.cleanup()

    # --- search ---
    def test_search_by_name(self):
        jobs = self.cli.json("search", "Main House")
        ids = [j["id"] for j in jobs]
        self.assertIn(JOB_ALL_COMPLETE, ids)
        job = next(j for j in jobs if j["id"] == JOB_ALL_COMPLETE)
        self.assertEqual(job["name"], "Main House")
        self.assertEqual(job["reconstruction_state"], "completed")
        self.assertEqual(job["address"]["line1"], "4312 Meadow Drive")
        self.assertEqual(job["address"]["city"], "Santa Maria")
        self.assertEqual([m["name"] for m in job["models"]], ["House", "Detached Garage", "Shed"])
        self.assertTrue(all(m["state"] == "complete" for m in job["models"]))
        self.assertTrue(all(isinstance(m["id"], int) for m in job["models"]))

    def test_search_by_address_fragment_is_case_insensitive(self):
        ids = [j["id"] for j in self.cli.json("search", "meadow dr")]
        self.assertIn(JOB_ALL_COMPLETE, ids)
        ids = [j["id"] for j in self.cli.json("search", "Orchard Lane")]
        self.assertEqual(ids, [JOB_ONE_FAILED])

    def test_search_by_capturing_user(self):
        jobs = self.cli.json("search", CAPTURING_USER, "--all")
        ids = {j["id"] for j in jobs}
        for showcase in (JOB_ALL_COMPLETE, JOB_ONE_FAILED, JOB_PROCESSING, JOB_FAILED):
            self.assertIn(showcase, ids)

    def test_search_state_filter_is_sent_and_applied(self):
        jobs = self.cli.json("search", "Cedar Ridge", "--state", "failed")
        self.assertEqual([j["id"] for j in jobs], [JOB_FAILED])
        self.assertEqual(self.cli.json("search", "Cedar Ridge", "--state", "completed"), [])

    def test_search_table_on_a_pipe(self):
        r = self.cli.run("search", "Meadow")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertTrue(lines[0].startswith("ID"))
        row = next(l for l in lines if l.startswith(str(JOB_ALL_COMPLETE)))
        self.assertIn("Main House", row)
        self.assertIn("3 (3 complete)", row)

    def test_search_nothing_found(self):
        r = self.cli.run("search", "zzqqxx-no-such-job")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("No jobs found", r.stdout)
        self.assertEqual(self.cli.json("search", "zzqqxx-no-such-job"), [])

    def test_pagination_walks_every_page_once(self):
        start = self.sb.last_seq()
        everything = self.cli.json("search", "--per", "7", "--all")
        lists = [e for e in api_requests(self.sb.requests(start)) if e["path"] == "/api/v3/jobs"]
        self.assertGreater(len(lists), 3)
        pages = [dict(p.split("=", 1) for p in e["query"].split("&"))["page"] for e in lists]
        self.assertEqual(pages, [str(i) for i in range(1, len(lists) + 1)])
        ids = [j["id"] for j in everything]
        self.assertEqual(len(ids), len(set(ids)), "a job appeared on two pages")
        first = self.cli.json("search", "--per", "7", "--page", "1")
        second = self.cli.json("search", "--per", "7", "--page", "2")
        self.assertEqual(len(first), 7)
        self.assertFalse({j["id"] for j in first} & {j["id"] for j in second})
        self.assertEqual([j["id"] for j in first + second], ids[:14])

    # --- show ---
    def test_show_lists_artifacts_of_complete_models_only(self):
        job = self.cli.json("show", JOB_ONE_FAILED)
        self.assertEqual(job["id"], JOB_ONE_FAILED)
        self.assertEqual(job["reconstruction_state"], "completed")
        states = {m["name"]: m["state"] for m in job["models"]}
        self.assertEqual(states["Detached Garage"], "failed")
        for m in job["models"]:
            kinds = [a["kind"] for a in m["artifacts"]]
            if m["state"] == "complete":
                self.assertIn("measurements.pdf", kinds)
                self.assertTrue(all(a["url"].startswith("http") for a in m["artifacts"]))
                self.assertEqual(m["deliverable"], "complete")
            else:
                self.assertEqual(kinds, [])

    def test_show_human_output(self):
        r = self.cli.run("show", JOB_PROCESSING)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Harbor View Remodel", r.stdout)
        self.assertIn("77 Harbor View Road", r.stdout)
        self.assertIn("no artifacts: the model is processing", r.stdout)
        self.assertIn("measurements.pdf", r.stdout)

    def test_show_unknown_job(self):
        r = self.cli.run("show", "999999999")
        self.assertEqual(r.returncode, 1)
        self.assertIn("job 999999999 not found", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1)

    # --- tokens ---
    def test_expired_token_is_refreshed_once_and_rotated_pair_persisted(self):
        self.cli.json("show", JOB_ALL_COMPLETE)  # stores the initial pair
        before = self.cli.sql("SELECT access_token, refresh_token, generation FROM oauth_tokens")
        self.sb.admin("POST", "tokens/expire")
        start = self.sb.last_seq()
        job = self.cli.json("show", JOB_ALL_COMPLETE)
        self.assertEqual(job["id"], JOB_ALL_COMPLETE)
        log = [(e["method"], e["path"], e["status"]) for e in self.sb.requests(start)]
        self.assertEqual(log, [("GET", "/api/v3/jobs/%d" % JOB_ALL_COMPLETE, 401),
                               ("POST", "/oauth/token", 200),
                               ("GET", "/api/v3/jobs/%d" % JOB_ALL_COMPLETE, 200)])
        after = self.cli.sql("SELECT access_token, refresh_token, generation FROM oauth_tokens")
        self.assertNotEqual(before[0][0], after[0][0])
        self.assertNotEqual(before[0][1], after[0][1])
        self.assertEqual(after[0][2], before[0][2] + 1)
        # The stored, rotated pair wins over the environment's now-dead initial pair.
        start = self.sb.last_seq()
        self.cli.json("show", JOB_ALL_COMPLETE)
        self.assertEqual([e["status"] for e in self.sb.requests(start)], [200])

    def test_reused_refresh_token_is_rejected(self):
        tokens = self.sb.tokens()
        first = Cli(self.sb, tokens)
        second = Cli(self.sb, tokens)  # another store holding the same pair
        try:
            first.json("show", JOB_ALL_COMPLETE)
            self.sb.admin("POST", "tokens/expire")
            first.json("show", JOB_ALL_COMPLETE)  # rotates: the old refresh token is spent
            r = second.run("show", JOB_ALL_COMPLETE)
            self.assertEqual(r.returncode, 1)
            self.assertIn("reconnect", r.stderr)
            status, _, body = self.sb.call(
                "POST", "/oauth/token",
                {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                 "client_id": "sandbox-client", "client_secret": "sandbox-secret"})
            self.assertEqual(status, 400)
            self.assertEqual(body["error"], "invalid_grant")
        finally:
            first.cleanup()
            second.cleanup()

    def test_lost_refresh_answer_shows_reconnect_required(self):
        """Hover rotated the pair but its answer never reached the store (what a kill -9 in the
        middle of a refresh leaves): the next refresh is refused, and `status` and the API of
        a service started later say that the org must be reconnected."""
        from harness import Service
        self.cli.json("show", JOB_ALL_COMPLETE)  # stores the initial pair
        stored = self.cli.sql("SELECT refresh_token FROM oauth_tokens")[0][0]
        status, _, _ = self.sb.call(
            "POST", "/oauth/token",
            {"grant_type": "refresh_token", "refresh_token": stored,
             "client_id": "sandbox-client", "client_secret": "sandbox-secret"})
        self.assertEqual(status, 200)  # rotated at Hover; this answer is the one that was lost
        self.sb.admin("POST", "tokens/expire")
        r = self.cli.run("show", JOB_ALL_COMPLETE)
        self.assertEqual(r.returncode, 1)
        self.assertIn("reconnect", r.stderr)
        conn = self.cli.json("status", "--offline")["connections"][0]
        self.assertEqual(conn["key"], "default")
        self.assertIs(conn["reconnect_required"], True)
        self.assertIn("reconnect_required", self.cli.run("status", "--offline").stdout)
        svc = Service(self.sb, connection="default", db_dir=self.cli.dir)
        try:
            r = svc.get("/api/connections")
            self.assertEqual(r.status, 200)
            self.assertEqual([(c["key"], c["status"]) for c in r.json],
                             [("default", "reconnect_required")])
            self.assertIs(svc.get("/api/status").json["connections"][0]["reconnect_required"],
                          True)
        finally:
            svc.stop()
            svc.cleanup()

    def test_kill_during_a_token_refresh(self):
        """A kill -9 once the rotated pair is stored loses nothing; one after Hover answered but
        before the store (the window kept as small as it can be) loses the pair, and the next run
        says so: reconnect_required."""
        self.cli.json("show", JOB_ALL_COMPLETE)
        self.sb.admin("POST", "tokens/expire")
        self.cli.env["HOVERSYNC_CRASHPOINT"] = "refresh_stored"
        r = self.cli.run("show", JOB_ALL_COMPLETE)
        self.assertEqual(r.returncode, -9, r.stderr)
        del self.cli.env["HOVERSYNC_CRASHPOINT"]
        self.assertEqual(self.cli.json("show", JOB_ALL_COMPLETE)["id"], JOB_ALL_COMPLETE)
        self.assertIs(self.cli.json("status", "--offline")["connections"][0]
                      ["reconnect_required"], False)

        self.sb.admin("POST", "tokens/expire")
        self.cli.env["HOVERSYNC_CRASHPOINT"] = "refresh_answered"
        r = self.cli.run("show", JOB_ALL_COMPLETE)
        self.assertEqual(r.returncode, -9, r.stderr)
        del self.cli.env["HOVERSYNC_CRASHPOINT"]
        r = self.cli.run("show", JOB_ALL_COMPLETE)
        self.assertEqual(r.returncode, 1)
        self.assertIn("reconnect", r.stderr)
        self.assertIs(self.cli.json("status", "--offline")["connections"][0]
                      ["reconnect_required"], True)

    def test_connect_through_the_authorization_code_flow(self):
        import subprocess
        import urllib.parse
        import urllib.request
        cli = Cli(self.sb)
        try:
            proc = subprocess.Popen([HOVERSYNC_BIN, "connect", "--timeout", "30"], env=cli.env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            url = proc.stdout.readline().strip()
            parts = urllib.parse.urlsplit(url)
            q = dict(urllib.parse.parse_qsl(parts.query))
            self.assertEqual(parts.path, "/oauth/authorize")
            self.assertEqual(q["client_id"], "sandbox-client")
            self.assertEqual(q["response_type"], "code")
            self.assertEqual(len(q["state"]), 32)
            callback = q["redirect_uri"]
            self.assertTrue(callback.startswith("http://127.0.0.1:"))
            # a forged redirect (wrong state) is ignored: the flow goes on waiting
            with self.assertRaises(urllib.error.HTTPError):
                urllib.request.urlopen(callback + "?code=forged&state=" + "0" * 32, timeout=10)
            self.assertIsNone(proc.poll())
            # the user presses Allow on Hover's page; the browser follows the redirect back
            status, _, page = self.sb.call("GET", "/oauth/authorize?" + parts.query)
            self.assertEqual(status, 200)
            self.assertIn(b"Allow", page)
            form = urllib.parse.urlencode({**q, "decision": "allow"}).encode()
            req = urllib.request.Request(self.sb.url + "/oauth/authorize", data=form,
                                         method="POST")
            with urllib.request.urlopen(req, timeout=10) as r:  # follows to hoversync
                self.assertEqual(r.status, 200)
                self.assertIn(b"Hover is connected", r.read())
            out, err = proc.communicate(timeout=30)
            self.assertEqual(proc.returncode, 0, err)
            self.assertIn("Connected Hover org 463605", err)
            self.assertEqual(cli.json("show", JOB_ALL_COMPLETE)["id"], JOB_ALL_COMPLETE)
            rows = cli.sql("SELECT c.owner_id FROM connections c JOIN oauth_tokens t "
                           "ON t.connection_key = c.key WHERE c.key = 'default'")
            self.assertEqual(rows, [(463605,)])
        finally:
            cli.cleanup()

    def test_no_credentials(self):
        cli = Cli(self.sb)
        try:
            r = cli.run("search", "Meadow")
            self.assertEqual(r.returncode, 1)
            self.assertIn("no Hover credentials", r.stderr)
        finally:
            cli.cleanup()

    # --- limits and faults ---
    def test_rate_limited_then_success_after_retry_after(self):
        self.sb.admin("POST", "config", {"rate_limit": 2, "rate_window_ms": 1000})
        start = self.sb.last_seq()
        jobs = self.cli.json("search", "--per", "50", "--all")
        self.assertGreater(len(jobs), 200)
        statuses = [e["status"] for e in api_requests(self.sb.requests(start))]
        self.assertIn(429, statuses)
        self.assertEqual(statuses[-1], 200)
        self.assertEqual(statuses.count(200), (len(jobs) + 49) // 50)

    def test_injected_5xx_are_retried(self):
        self.sb.fault(path="/api/v3/jobs/*", status=503, count=2)
        start = self.sb.last_seq()
        job = self.cli.json("show", JOB_ALL_COMPLETE)
        self.assertEqual(job["id"], JOB_ALL_COMPLETE)
        self.assertEqual([e["status"] for e in api_requests(self.sb.requests(start))],
                         [503, 503, 200])

    def test_persistent_5xx_ends_in_a_clear_error(self):
        self.sb.fault(path="/api/v3/jobs/*", status=500, count=-1)
        cli = Cli(self.sb, self.sb.tokens(), HOVERSYNC_MAX_ATTEMPTS=3)
        try:
            r = cli.run("show", JOB_ALL_COMPLETE)
            self.assertEqual(r.returncode, 1)
            self.assertIn("500", r.stderr)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1)
        finally:
            cli.cleanup()

    def test_truncated_body_is_retried(self):
        self.sb.fault(path="/api/v3/jobs/*", truncate=True, count=1)
        job = self.cli.json("show", JOB_ALL_COMPLETE)
        self.assertEqual(len(job["models"]), 3)

    def test_dropped_connection_is_retried(self):
        self.sb.fault(path="/api/v3/jobs/*", drop=True, count=1)
        job = self.cli.json("show", JOB_ALL_COMPLETE)
        self.assertEqual(job["id"], JOB_ALL_COMPLETE)

    def test_malformed_json_ends_in_a_clear_error(self):
        self.sb.fault(path="/api/v3/jobs/*", malformed=True, count=-1)
        r = self.cli.run("show", JOB_ALL_COMPLETE)
        self.assertEqual(r.returncode, 1)
        self.assertIn("malformed JSON", r.stderr)

    def test_hover_unreachable(self):
        cli = Cli(None, {"access_token": "a", "refresh_token": "b"},
                  HOVER_BASE_URL="http://127.0.0.1:9", HOVERSYNC_MAX_ATTEMPTS=2)
        try:
            r = cli.run("search", "Meadow")
            self.assertEqual(r.returncode, 1)
            self.assertIn("127.0.0.1", r.stderr)
        finally:
            cli.cleanup()

    def test_strict_mode_needs_a_user(self):
        self.sb.admin("POST", "config", {"strict": True})
        r = self.cli.run("show", JOB_ALL_COMPLETE)
        self.assertEqual(r.returncode, 1)
        self.assertIn("current_user", r.stderr)
        start = self.sb.last_seq()
        job = self.cli.json("--as-user", CAPTURING_USER, "show", JOB_ALL_COMPLETE)
        self.assertEqual(job["id"], JOB_ALL_COMPLETE)
        sent = self.sb.requests(start)[0]
        self.assertIn("current_user_email=jordan.reyes%40summitroofing.example", sent["query"])


class CommandLineContract(unittest.TestCase):
    def setUp(self):
        self.cli = Cli(None)

    def tearDown(self):
        self.cli.cleanup()

    def test_help_on_every_command(self):
        for cmd in ("search", "show", "config"):
            r = self.cli.run(cmd, "--help")
            self.assertEqual(r.returncode, 0, cmd)
            self.assertIn("Usage: hoversync " + cmd, r.stdout)
        r = self.cli.run("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("HOVERSYNC_DB", r.stdout)

    def test_usage_errors_exit_2(self):
        cases = [("frobnicate",), ("search", "ab"), ("show",), ("show", "abc"),
                 ("search", "Meadow", "--per", "101"), ("search", "--page", "2", "--all"),
                 ("search", "Meadow", "--state", "complete"), ("--rate-limit", "x", "search")]
        for args in cases:
            r = self.cli.run(*args)
            self.assertEqual(r.returncode, 2, "%s -> %s" % (args, r.stderr))
            self.assertTrue(r.stderr.startswith("hoversync: "), args)

    def test_config_show_redacts_secrets(self):
        cli = Cli(None, {"access_token": "tok-access-4411", "refresh_token": "tok-refresh-5522"})
        try:
            r = cli.run("config", "show")
            self.assertEqual(r.returncode, 0)
            self.assertNotIn("tok-access-4411", r.stdout)
            self.assertNotIn("tok-refresh-5522", r.stdout)
            self.assertNotIn("sandbox-secret", r.stdout)
            self.assertIn("(set, redacted)", r.stdout)
            # A PostgreSQL URL is shown without its user name (hs_url_redact).
            self.assertIn(cli.db.split("@", 1)[-1], r.stdout)
        finally:
            cli.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
