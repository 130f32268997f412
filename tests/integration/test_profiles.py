"""Artifact profiles against the real sandbox: a sync downloads what its profile names (the
sandbox's request log says so) and records the rest with its Hover URL; the rest is fetched on
first use, checked, stored and served (`GET /files/models/{id}/{kind}`, `hoversync fetch`) and
costs Hover nothing the second time; a connection's own profile; unknown names refused; a store
of before profiles keeps `all`."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (JOB_ALL_COMPLETE, JOB_ONE_FAILED, MAIN_ORG, Cli, Sandbox,  # noqa: E402
                     Service, api_requests, wait_for)

CONNECTION = "org-%d" % MAIN_ORG


class Profiles(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox(jobs=40)

    @classmethod
    def tearDownClass(cls):
        cls.sb.stop()

    def setUp(self):
        self.sb.clear_faults()
        self.sb.admin("POST", "config", {"rate_limit": 0, "strict": False})
        self.cli = Cli(self.sb, self.sb.tokens(), HOVERSYNC_CONNECTION=CONNECTION)
        self.cli.env["HOVERSYNC_DATA_DIR"] = os.path.join(self.cli.dir, "data")

    def tearDown(self):
        self.cli.cleanup()

    def sync(self, job_id, *extra):
        r = self.cli.run(*extra, "sync", job_id, "--all-complete", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def requests_since(self, seq):
        return [e["path"] for e in api_requests(self.sb.requests(seq), "/")]

    def rows(self, job_id):
        """{(model_id, kind): (fetched, sha256, path, source_url)} of the job's artifacts."""
        got = self.cli.sql("SELECT a.model_id, a.kind, a.fetched, a.sha256, a.path, a.source_url "
                           "FROM artifacts a JOIN models m ON m.id = a.model_id "
                           "WHERE m.job_id = %d" % job_id)
        return {(m, k): (f, s, p, u) for m, k, f, s, p, u in got}

    def offered(self, job_id):
        """{model_id: (artifact kinds, image ids)} of the job's complete models, as Hover has
        them."""
        show = self.cli.json("show", job_id)
        out = {}
        for m in show["models"]:
            if m["state"] != "complete":
                continue
            kinds = [a["kind"] for a in m.get("artifacts", [])]
            out[m["id"]] = (kinds, [i["id"] for i in m.get("images", [])])
        return out

    def test_default_profile_fetches_what_a_record_shows_and_records_the_rest(self):
        offered = self.offered(JOB_ALL_COMPLETE)
        start = self.sb.last_seq()
        out = self.sync(JOB_ALL_COMPLETE)
        paths = self.requests_since(start)
        expect = ["/api/v3/jobs/%d" % JOB_ALL_COMPLETE]
        for mid, (kinds, images) in sorted(offered.items()):
            expect += ["/api/v3/models/%d/artifacts/measurements.pdf" % mid,
                       "/api/v3/models/%d/artifacts/measurements.json" % mid,
                       "/api/v3/images/%d" % images[0]]
        self.assertEqual(sorted(paths), sorted(expect))
        self.assertEqual(out["hover_requests"], len(expect))
        self.assertEqual(out["status"], "synced")
        rows = self.rows(JOB_ALL_COMPLETE)
        for mid, (kinds, images) in offered.items():
            every = set(kinds) | {"image.%d" % i for i in images}
            self.assertEqual({k for m, k in rows if m == mid}, every)
            fetched = {k for (m, k), r in rows.items() if m == mid and r[0] == 1}
            self.assertEqual(fetched, {"measurements.pdf", "measurements.json",
                                       "image.%d" % images[0]})
            for k in every - fetched:
                f, sha, path, url = rows[(mid, k)]
                self.assertEqual((sha, path), ("", ""), k)
                self.assertTrue(url.startswith(self.sb.url), url)
            # the measurement columns are extracted as with every artifact
            self.assertEqual(self.cli.sql("SELECT COUNT(*) FROM measurements WHERE model_id = %d"
                                          " AND roof_area_sqft > 0" % mid), [(1,)])
        feed = self.cli.json("export")
        unfetched = [a for a in feed["artifacts"] if not a["fetched"]]
        self.assertTrue(unfetched)
        self.assertTrue(all(a["sha256"] is None and a["path"] is None and a["source_url"]
                            for a in unfetched))
        # An unchanged re-sync asks for the job alone.
        start = self.sb.last_seq()
        self.sync(JOB_ALL_COMPLETE)
        self.assertEqual(self.requests_since(start), ["/api/v3/jobs/%d" % JOB_ALL_COMPLETE])
        # The same job with `all`: what was recorded is fetched now, nothing twice.
        self.sb.admin("POST", "models/%d" % min(offered), {"bump_revision": True})
        start = self.sb.last_seq()
        self.sync(JOB_ALL_COMPLETE, "--artifacts", "all")
        rows = self.rows(JOB_ALL_COMPLETE)
        mid = min(offered)
        self.assertTrue(all(r[0] == 1 for (m, k), r in rows.items() if m == mid))

    def test_fetch_from_the_command_line(self):
        self.sync(JOB_ALL_COMPLETE)
        mid = min(self.offered(JOB_ALL_COMPLETE))
        start = self.sb.last_seq()
        r = self.cli.run("fetch", mid, "measurements.xlsx")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("fetched from Hover", r.stdout)
        self.assertEqual(self.requests_since(start),
                         ["/api/v3/models/%d/artifacts/measurements.xlsx" % mid])
        f, sha, path, _ = self.rows(JOB_ALL_COMPLETE)[(mid, "measurements.xlsx")]
        self.assertEqual(f, 1)
        full = os.path.join(self.cli.env["HOVERSYNC_DATA_DIR"], path)
        self.assertIn(full, r.stdout)
        self.assertTrue(os.path.isfile(full))
        start = self.sb.last_seq()
        r = self.cli.run("fetch", mid, "measurements.xlsx")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("already stored", r.stdout)
        self.assertEqual(self.requests_since(start), [])
        # A kind the model does not offer, and usage errors.
        r = self.cli.run("fetch", mid, "measurements.nope")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no artifact 'measurements.nope'", r.stderr)
        self.assertEqual(self.cli.run("fetch", "x", "measurements.xlsx").returncode, 2)
        self.assertEqual(self.cli.run("fetch", mid).returncode, 2)

    def test_a_damaged_download_is_not_stored(self):
        self.sync(JOB_ALL_COMPLETE)
        mid = min(self.offered(JOB_ALL_COMPLETE))
        self.sb.fault(path="/api/v3/models/%d/artifacts/measurements.json" % mid,
                      malformed=True)
        r = self.cli.run("fetch", mid, "measurements.full_json")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertEqual(self.rows(JOB_ALL_COMPLETE)[(mid, "measurements.full_json")][:3],
                         (0, "", ""))
        self.sb.clear_faults()
        r = self.cli.run("fetch", mid, "measurements.full_json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.rows(JOB_ALL_COMPLETE)[(mid, "measurements.full_json")][0], 1)

    def test_connection_profile_and_unknown_names(self):
        r = self.cli.run("connections", "set-artifacts", CONNECTION, "default,measurements.pfd")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown artifact name 'measurements.pfd'", r.stderr)
        self.assertIn("measurements.pdf|json", r.stderr)
        r = self.cli.run("--artifacts", "images:some", "status", "--offline")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--artifacts: unknown artifact name 'images:some'", r.stderr)
        r = self.cli.run("connections", "set-artifacts", "org-nobody", "all")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no connection named 'org-nobody'", r.stderr)
        # The connection exists once its tokens are stored (the first run with a client seeds
        # them).
        offered = self.offered(JOB_ONE_FAILED)
        r = self.cli.run("connections", "set-artifacts", CONNECTION, "measurements.xlsx,images:none")
        self.assertEqual(r.returncode, 0, r.stderr)
        status = self.cli.json("status", "--offline")
        self.assertEqual([c["artifacts"] for c in status["connections"]],
                         ["measurements.xlsx,images:none"])
        text = self.cli.run("status", "--offline").stdout
        self.assertIn("artifacts measurements.xlsx,images:none", text)
        start = self.sb.last_seq()
        self.sync(JOB_ONE_FAILED)
        expect = ["/api/v3/jobs/%d" % JOB_ONE_FAILED] + \
            ["/api/v3/models/%d/artifacts/measurements.xlsx" % m for m in offered]
        self.assertEqual(sorted(self.requests_since(start)), sorted(expect))
        # Cleared: the installation's profile again.
        r = self.cli.run("connections", "set-artifacts", CONNECTION, "--clear")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("artifacts default (--artifacts)",
                      self.cli.run("status", "--offline").stdout)

    def test_store_of_before_profiles_keeps_all(self):
        """A store with data at the previous schema: its connection keeps fetching
        everything after the upgrade."""
        offered = self.offered(JOB_ALL_COMPLETE)  # stores the connection
        self.sync(JOB_ONE_FAILED, "--artifacts", "all")
        import sqlite3
        con = sqlite3.connect(self.cli.db)
        # (later migrations undone too: they are applied again after 17)
        con.executescript("DROP TABLE tickets; DROP VIEW images;"
                          "ALTER TABLE artifacts DROP COLUMN fetched;"
                          "ALTER TABLE connections DROP COLUMN artifacts;"
                          "CREATE VIEW images AS SELECT image_id, model_id, sha256, bytes, path,"
                          " content_type, source_url, fetched_at FROM artifacts"
                          " WHERE image_id IS NOT NULL;"
                          "DELETE FROM schema_migrations WHERE version >= 17;")
        con.close()
        self.assertEqual([c["artifacts"] for c in self.cli.json("status", "--offline")
                          ["connections"]], ["all"])
        start = self.sb.last_seq()
        self.sync(JOB_ALL_COMPLETE)
        every = sum(len(k) + len(i) for k, i in offered.values())
        self.assertEqual(len(self.requests_since(start)), 1 + every)
        rows = self.rows(JOB_ALL_COMPLETE)
        self.assertEqual(len(rows), every)
        self.assertTrue(all(r[0] == 1 for r in rows.values()))

    def test_files_route_fetches_on_first_use(self):
        svc = Service(self.sb, self.sb.tokens())
        try:
            # the service syncs through its queue: POST /api/syncs
            mids = sorted(self.offered_via(svc, JOB_ALL_COMPLETE))
            r = svc.request("POST", "/api/syncs", {"job_id": JOB_ALL_COMPLETE,
                                                   "model_ids": mids})
            self.assertEqual(r.status, 202, r.body)
            sync_id = r.json["id"]
            wait_for("the sync", lambda: svc.get("/api/syncs/%s" % sync_id).json["status"]
                     in ("done", "failed"))
            self.assertEqual(svc.get("/api/syncs/%s" % sync_id).json["result"], "synced")
            mid = mids[0]
            path = "/files/models/%d/cad_exports.skp" % mid
            start = self.sb.last_seq()
            first = svc.get(path)
            self.assertEqual(first.status, 200, first.body)
            self.assertEqual(self.requests_since(start),
                             ["/api/v3/models/%d/artifacts/cad_export.skp" % mid])
            start = self.sb.last_seq()
            second = svc.get(path)
            self.assertEqual(second.status, 200)
            self.assertEqual(second.body, first.body)
            self.assertEqual(self.requests_since(start), [])
            feed = svc.get("/api/records?since=0").json
            skp = [a for a in feed["artifacts"]
                   if a["model_id"] == mid and a["kind"] == "cad_exports.skp"]
            self.assertTrue(skp[0]["fetched"])
            self.assertEqual(svc.get("/files/%s" % skp[0]["sha256"]).body, first.body)
            self.assertEqual(svc.get("/files/models/%d/measurements.nope" % mid).status, 404)
            self.assertEqual(svc.get("/files/models/x/cad_exports.skp").status, 400)
            self.assertEqual(svc.get(path, key=False).status, 401)
        finally:
            svc.stop()
            svc.cleanup()

    def test_status_shows_the_budget(self):
        out = self.sync(JOB_ALL_COMPLETE)
        b = self.cli.json("status", "--offline")["budget"]
        # A CLI sync is a person waiting: interactive requests, each booked in the store.
        self.assertEqual(b["limit"], 120)
        self.assertEqual(b["interactive_last_minute"], out["hover_requests"])
        self.assertEqual(b["background_last_minute"], 0)
        self.assertEqual(b["requests_per_job"], out["hover_requests"])
        self.assertEqual((b["queued_jobs"], b["drain_seconds"]), (0, 0))
        text = self.cli.run("status", "--offline").stdout
        self.assertIn("budget       %d of 120 requests used in the last minute (%d interactive, 0 "
                      "background)" % (out["hover_requests"], out["hover_requests"]), text)
        self.assertIn("0 jobs queued, %.1f requests a job: nothing to drain"
                      % out["hover_requests"], text)
        # Background work (backfill's queue), whose progress line shows the budget too.
        r = self.cli.run("--rate-limit", "6000", "backfill", "--sync", timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stderr, r"; budget \d+/6000 a minute \(\d+ background\), \d+ jobs "
                                   r"queued")
        # Queued work that nothing drains here: the service without its workers.
        svc = Service(self.sb, self.sb.tokens(), args=["--no-workers"], db_dir=self.cli.dir,
                      connection=CONNECTION, HOVERSYNC_RATE_LIMIT=6000)
        try:
            mids = self.offered_via(svc, JOB_ONE_FAILED)
            r = svc.request("POST", "/api/syncs", {"job_id": JOB_ONE_FAILED, "model_ids": mids})
            self.assertEqual(r.status, 202, r.body)
            b = svc.get("/api/status").json["budget"]
        finally:
            svc.stop()
            svc.cleanup()
        self.assertEqual(b["limit"], 6000)
        self.assertGreater(b["background_last_minute"], 0)
        self.assertEqual(b["queued_jobs"], 1)
        per_job = b["requests_per_job"]
        self.assertGreater(per_job, 1)
        # the queued job's requests at the last minute's background pace, rounded up
        expect = -(-(int(round(per_job * 1000)) * 60) // (b["background_last_minute"] * 1000))
        self.assertEqual(b["drain_seconds"], expect)

    def offered_via(self, svc, job_id):
        doc = svc.get("/api/jobs/%d" % job_id).json
        return [m["id"] for m in doc["models"] if m["state"] == "complete"]


if __name__ == "__main__":
    unittest.main(verbosity=2)
