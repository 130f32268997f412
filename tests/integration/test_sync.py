"""`hoversync sync`, `export` and `backfill` against the real sandbox: exactly-once storage,
per-model states, the request budget, crash safety (kill -9 at several points), streaming of a
50 MB artifact, and the records feed cursor."""
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (HOVERSYNC_BIN, JOB_ALL_COMPLETE, JOB_FAILED, JOB_ONE_FAILED,  # noqa: E402
                     JOB_PROCESSING, Cli, Sandbox, api_requests, on_postgresql)

SANITIZED = os.environ.get("HOVERSYNC_SANITIZED") == "1"


class SyncAgainstSandbox(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox(jobs=60)

    @classmethod
    def tearDownClass(cls):
        cls.sb.stop()

    def setUp(self):
        self.sb.clear_faults()
        self.sb.admin("POST", "config", {"rate_limit": 0, "strict": False})
        self.cli = Cli(self.sb, self.sb.tokens())
        self.cli.env["HOVERSYNC_DATA_DIR"] = os.path.join(self.cli.dir, "data")

    def tearDown(self):
        self.cli.cleanup()

    # helpers
    def models(self, job_id):
        return self.cli.json("show", job_id)["models"]

    def sync(self, *args, expect=0):
        r = self.cli.run("sync", *map(str, args), "--json")
        self.assertEqual(r.returncode, expect, "sync %s: %s" % (args, r.stderr))
        return json.loads(r.stdout) if r.stdout.strip() else None

    def requests_since(self, seq):
        return api_requests(self.sb.requests(seq), "/")

    def count(self, table, where="1=1"):
        return self.cli.sql("SELECT COUNT(*) FROM %s WHERE %s" % (table, where))[0][0]

    def assert_store_consistent(self):
        """Every fetched artifact row points at a file with its size and hash, every other one
        (outside the artifact profile) at nothing but its Hover URL; no temp leftovers. Returns
        the number of fetched rows."""
        import hashlib
        data = self.cli.env["HOVERSYNC_DATA_DIR"]
        self.assertEqual(self.cli.sql("SELECT kind FROM artifacts WHERE NOT fetched AND "
                                      "(path != '' OR sha256 != '' OR source_url IS NULL)"), [])
        rows = self.cli.sql("SELECT path, bytes, sha256 FROM artifacts WHERE fetched")
        for path, size, sha in rows:
            full = os.path.join(data, path)
            self.assertTrue(os.path.isfile(full), "row points at missing file " + path)
            self.assertEqual(os.path.getsize(full), size)
            with open(full, "rb") as f:
                self.assertEqual(hashlib.sha256(f.read()).hexdigest(), sha)
        dup = self.cli.sql("SELECT model_id, kind, COUNT(*) FROM artifacts "
                           "GROUP BY model_id, kind HAVING COUNT(*) > 1")
        self.assertEqual(dup, [])
        return len(rows)

    # --- the cases ---
    def test_sync_one_model_then_two_more(self):
        ms = self.models(JOB_ALL_COMPLETE)
        first = self.sync(JOB_ALL_COMPLETE, "--model", ms[0]["id"])
        self.assertEqual(first["job_id"], JOB_ALL_COMPLETE)
        self.assertEqual(first["status"], "synced")
        self.assertEqual([m["id"] for m in first["models"]], [ms[0]["id"]])
        m0 = first["models"][0]
        self.assertEqual(m0["result"], "synced")
        kinds = {a["kind"] for a in m0["artifacts"]}
        self.assertIn("measurements.pdf", kinds)
        self.assertIn("measurements.json", kinds)
        self.assertTrue(any(k.startswith("image.") for k in kinds))
        for a in m0["artifacts"]:
            self.assertEqual(len(a["sha256"]), 64)
            self.assertGreater(a["bytes"], 0)
            self.assertTrue(a["path"].startswith("blobs/"))
        self.assertEqual(self.count("artifacts", "model_id != %d" % ms[0]["id"]), 0)
        self.assertEqual(self.count("models", "job_id = %d" % JOB_ALL_COMPLETE), 3)

        both = self.sync(JOB_ALL_COMPLETE, "--model", ms[1]["id"], "--model", ms[2]["id"])
        self.assertEqual([m["result"] for m in both["models"]], ["synced", "synced"])
        self.assertEqual(self.count("jobs", "id = %d" % JOB_ALL_COMPLETE), 1)
        per_model = self.cli.sql("SELECT model_id, COUNT(*) FROM artifacts GROUP BY model_id")
        self.assertEqual(len(per_model), 3)
        self.assert_store_consistent()
        # headline measurements landed in columns beside the raw JSON
        rows = self.cli.sql("SELECT roof_area_sqft, roof_facets, predominant_pitch, raw_json "
                            "FROM measurements WHERE model_id = %d" % ms[0]["id"])
        self.assertEqual(len(rows), 1)
        area, facets, pitch, raw = rows[0]
        self.assertGreater(area, 100)
        self.assertGreater(facets, 0)
        self.assertRegex(pitch, r"^\d+/12$")
        self.assertIn('"roof"', raw)

    def test_failed_model_makes_no_artifact_request(self):
        ms = self.models(JOB_ONE_FAILED)
        failed = next(m for m in ms if m["state"] == "failed")
        start = self.sb.last_seq()
        r = self.cli.run("sync", JOB_ONE_FAILED, *sum((["--model", str(m["id"])] for m in ms), []),
                         "--json")
        self.assertEqual(r.returncode, 1, "a failed model selected means exit 1")
        self.assertIn("failed_upstream", r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual(out["status"], "partial")
        results = {m["id"]: m["result"] for m in out["models"]}
        self.assertEqual(results[failed["id"]], "failed_upstream")
        self.assertEqual(sorted(results.values()).count("synced"), 2)
        paths = [e["path"] for e in self.requests_since(start)]
        self.assertFalse([p for p in paths if "/models/%d/" % failed["id"] in p])
        sel = self.cli.sql("SELECT status FROM selections WHERE model_id = %d" % failed["id"])
        self.assertEqual(sel, [("failed_upstream",)])
        # --all-complete picks the two complete ones only, exit 0
        out = self.sync(JOB_ONE_FAILED, "--all-complete")
        self.assertEqual(len(out["models"]), 2)
        self.assertEqual(out["status"], "synced")

    def test_failed_job_with_all_complete(self):
        r = self.cli.run("sync", JOB_FAILED, "--all-complete")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no complete model", r.stderr)

    def test_processing_model_synced_by_pending_once_complete(self):
        ms = self.models(JOB_PROCESSING)
        proc = next(m for m in ms if m["state"] != "complete")
        out = self.sync(JOB_PROCESSING, "--model", proc["id"])
        self.assertEqual(out["models"][0]["result"], "pending")
        self.assertIn("processing", out["models"][0]["message"])
        self.assertEqual(self.count("artifacts", "model_id = %d" % proc["id"]), 0)
        # still processing: --pending keeps it pending
        again = self.cli.json("sync", "--pending")
        self.assertEqual(again[0]["models"][0]["result"], "pending")
        self.sb.admin("POST", "models/%d" % proc["id"], {"state": "complete"})
        done = self.cli.json("sync", "--pending")
        self.assertEqual(len(done), 1)
        self.assertEqual(done[0]["models"][0]["result"], "synced")
        self.assertGreater(self.count("artifacts", "model_id = %d" % proc["id"]), 0)
        self.assertEqual(self.cli.sql("SELECT status FROM selections WHERE model_id = %d"
                                      % proc["id"]), [("synced",)])
        self.assertEqual(self.cli.json("sync", "--pending"), [])
        self.sb.admin("POST", "models/%d" % proc["id"], {"state": "processing"})

    def test_unknown_model_is_a_usage_error(self):
        r = self.cli.run("sync", JOB_ALL_COMPLETE, "--model", "123")
        self.assertEqual(r.returncode, 2)
        self.assertIn("model 123 is not on job %d" % JOB_ALL_COMPLETE, r.stderr)
        self.assertEqual(self.count("selections"), 0)

    def test_request_budget_and_unchanged_resync(self):
        start = self.sb.last_seq()
        first = self.sync(JOB_ALL_COMPLETE, "--all-complete")
        sent = self.requests_since(start)
        artifacts = sum(len(m["artifacts"]) for m in first["models"])
        api = [e for e in sent if e["listener"] == "api"]
        # one Show Job, one request per artifact (the PDF's redirect adds its storage hop)
        self.assertEqual(len(api), 1 + artifacts)
        self.assertEqual(first["hover_requests"], 1 + artifacts)
        print("\nbudget: 3-model job first sync = %d API requests (%d artifacts), " %
              (len(api), artifacts), end="")
        start = self.sb.last_seq()
        again = self.sync(JOB_ALL_COMPLETE, "--all-complete")
        sent = self.requests_since(start)
        self.assertEqual([(e["method"], e["path"]) for e in sent],
                         [("GET", "/api/v3/jobs/%d" % JOB_ALL_COMPLETE)])
        self.assertEqual(sum(m["downloaded"] for m in again["models"]), 0)
        print("re-sync = %d" % len(sent))
        n = self.assert_store_consistent()
        self.assertEqual(n, artifacts)

    def test_changed_artifact_is_downloaded_again(self):
        ms = self.models(JOB_ALL_COMPLETE)
        mid = ms[1]["id"]
        self.sync(JOB_ALL_COMPLETE, "--model", mid)
        before = dict(self.cli.sql("SELECT kind, sha256 FROM artifacts WHERE model_id = %d" % mid))
        cursor = self.cli.json("export")["cursor"]
        self.sb.admin("POST", "models/%d" % mid, {"bump_revision": True})
        start = self.sb.last_seq()
        out = self.sync(JOB_ALL_COMPLETE, "--model", mid)
        after = dict(self.cli.sql("SELECT kind, sha256 FROM artifacts WHERE model_id = %d" % mid))
        self.assertEqual(set(before), set(after))
        self.assertNotEqual(before["measurements.json"], after["measurements.json"])
        self.assertNotEqual(before["measurements.pdf"], after["measurements.pdf"])
        sent = self.requests_since(start)
        conditional = [e for e in sent if e.get("if_none_match")]
        self.assertTrue(conditional, "re-checks must be conditional requests")
        unchanged = [e for e in sent if e["status"] == 304]
        changed = [a for a in out["models"][0]["artifacts"] if a["changed"]]
        self.assertTrue(changed)
        # images did not change: answered 304, not downloaded again
        self.assertTrue(any("/images/" in e["path"] for e in unchanged))
        feed = self.cli.json("export", "--since", cursor)
        self.assertEqual({a["kind"] for a in feed["artifacts"]}, {a["kind"] for a in changed})
        self.assertEqual(self.count("artifacts", "model_id = %d" % mid), len(before))

    def test_export_cursor_returns_only_changes(self):
        ms = self.models(JOB_ALL_COMPLETE)
        self.sync(JOB_ALL_COMPLETE, "--model", ms[0]["id"])
        everything = self.cli.json("export")
        self.assertEqual([j["id"] for j in everything["jobs"]], [JOB_ALL_COMPLETE])
        c1 = everything["cursor"]
        self.assertEqual(self.cli.json("export", "--since", c1),
                         {"cursor": c1, "jobs": [], "models": [], "artifacts": []})
        self.sync(JOB_ALL_COMPLETE, "--model", ms[2]["id"])
        delta = self.cli.json("export", "--since", c1)
        self.assertGreater(delta["cursor"], c1)
        self.assertEqual({a["model_id"] for a in delta["artifacts"]}, {ms[2]["id"]})
        for a in delta["artifacts"]:
            self.assertEqual(set(a) >= {"kind", "sha256", "bytes", "path"}, True)
        self.assertEqual(self.cli.json("export", "--since", delta["cursor"])["artifacts"], [])
        # an unchanged re-sync changes nothing in the feed
        self.sync(JOB_ALL_COMPLETE, "--model", ms[0]["id"])
        self.assertEqual(self.cli.json("export", "--since", delta["cursor"])["artifacts"], [])

    def kill_then_complete(self, point, killed=None):
        """Kills a sync of JOB_ALL_COMPLETE at the crash point, calls killed(cli) on the store
        it left, then checks that `sync --pending` completes it and that every row points at a
        whole file; returns the number of fetched rows."""
        cli = Cli(self.sb, self.sb.tokens())
        cli.env["HOVERSYNC_DATA_DIR"] = os.path.join(cli.dir, "data")
        try:
            cli.env["HOVERSYNC_CRASHPOINT"] = point
            r = cli.run("sync", JOB_ALL_COMPLETE, "--all-complete")
            self.assertEqual(r.returncode, -9, "%s: not killed: %s" % (point, r.stderr))
            del cli.env["HOVERSYNC_CRASHPOINT"]
            self.cli, saved = cli, self.cli
            try:
                self.assert_store_consistent()  # what the crash left holds already
                if killed:
                    killed(cli)
                # the next run completes what was left
                r = cli.run("sync", "--pending", "--json")
                self.assertEqual(r.returncode, 0, point + ": " + r.stderr)
                n = self.assert_store_consistent()
            finally:
                self.cli = saved
            self.assertEqual(cli.sql("SELECT COUNT(*) FROM selections "
                                     "WHERE status != 'synced'")[0][0], 0, point)
            self.assertEqual(cli.sql("SELECT COUNT(*) FROM selections")[0][0], 3, point)
            tmp = os.path.join(cli.env["HOVERSYNC_DATA_DIR"], "tmp")
            self.assertEqual(os.listdir(tmp) if os.path.isdir(tmp) else [], [], point)
            return n
        finally:
            cli.cleanup()

    def test_kill_at_any_point_then_complete_cleanly(self):
        expected = None
        for point in ("after_selection", "after_download:1", "after_download:4",
                      "after_artifact_commit:2", "after_model:1"):
            def killed(cli, point=point):
                if point != "after_model:1":
                    open_sel = cli.sql("SELECT COUNT(*) FROM selections "
                                       "WHERE status != 'synced'")[0][0]
                    self.assertGreater(open_sel, 0, point + ": the selection was lost")
            n = self.kill_then_complete(point, killed)
            if expected is None:
                expected = n
            self.assertEqual(n, expected, point + ": artifact count differs")

    def test_kill_inside_a_batch_then_complete_cleanly(self):
        """A model's files are put in place one by one and their rows commit together with the
        model's result: killed in between, the files already written are there but no row
        points at them (the collector removes them unless a rerun claims them); killed after
        the commit, the model is whole. Either way the rerun completes every model."""
        def blobs(cli):
            out = []
            for d, _, files in os.walk(os.path.join(cli.env["HOVERSYNC_DATA_DIR"], "blobs")):
                out += [os.path.join(d, f) for f in files]
            return out

        def fetched(cli):
            return cli.sql("SELECT COUNT(*) FROM artifacts WHERE fetched")[0][0]

        expected = None
        # the point, and the models whose batch had committed when it was passed
        for point, whole in (("after_download:2", 0), ("batch_synced:1", 0),
                             ("batch_synced:2", 1), ("after_artifact_commit:1", 1)):
            def killed(cli, point=point, whole=whole):
                self.assertGreaterEqual(len(blobs(cli)), 2, point + ": the batch's files")
                synced = cli.sql("SELECT COUNT(*) FROM selections WHERE status = 'synced'")
                self.assertEqual(synced[0][0], whole, point)
                if whole:
                    self.assertGreater(fetched(cli), 0, point + ": the first model's rows")
                else:
                    self.assertEqual(fetched(cli), 0, point + ": rows before their commit")
            n = self.kill_then_complete(point, killed)
            if expected is None:
                expected = n
            self.assertEqual(n, expected, point + ": artifact count differs")

    # --- downloads are checked before they count ---
    def test_short_pdf_from_storage_is_not_stored(self):
        """The storage host cuts the PDF short but answers as if it were complete (Content-Length
        matching the bytes sent, the whole object's ETag): the model ends in error, no row and no
        file are stored, and the next sync --pending fetches it whole, without If-None-Match."""
        mid = self.models(JOB_ALL_COMPLETE)[0]["id"]
        self.sb.fault(path="/storage/*", malformed=True)
        r = self.cli.run("--max-attempts", "2", "sync", JOB_ALL_COMPLETE, "--model", mid, "--json")
        self.assertEqual(r.returncode, 1, "a short PDF was taken as complete: " + r.stdout)
        model = json.loads(r.stdout)["models"][0]
        self.assertEqual(model["result"], "error")
        self.assertIn("measurements.pdf", model["message"])
        self.assertIn("does not match its ETag", model["message"])
        self.assertIn("measurements.pdf", r.stderr)
        self.assertEqual(self.count("artifacts", "kind = 'measurements.pdf'"), 0)
        self.assertEqual(self.cli.sql("SELECT status FROM selections WHERE model_id = %d" % mid),
                         [("error",)])
        stored = self.assert_store_consistent()
        blobs = os.path.join(self.cli.env["HOVERSYNC_DATA_DIR"], "blobs")
        files = sum(len(f) for _, _, f in os.walk(blobs))
        self.assertEqual(files, len({r[0] for r in self.cli.sql("SELECT sha256 FROM artifacts")}))
        self.assertEqual(os.listdir(os.path.join(self.cli.env["HOVERSYNC_DATA_DIR"], "tmp")), [])

        self.sb.clear_faults()
        start = self.sb.last_seq()
        done = self.cli.json("sync", "--pending")
        self.assertEqual(done[0]["models"][0]["result"], "synced")
        storage = [e for e in self.sb.requests(start) if e["listener"] == "storage"]
        self.assertEqual([e["if_none_match"] for e in storage], [False])
        self.assertGreater(self.assert_store_consistent(), stored)
        path = self.cli.sql("SELECT path FROM artifacts WHERE kind = 'measurements.pdf'")[0][0]
        with open(os.path.join(self.cli.env["HOVERSYNC_DATA_DIR"], path), "rb") as f:
            body = f.read()
        self.assertTrue(body.startswith(b"%PDF-") and b"%%EOF" in body[-1024:])

    # --- the shared data folder ---
    def make_temp_files(self, data, tag="1"):
        """A temporary file that a live writer holds (locked, as hoversync's writers hold
        theirs) and a stale one (its writer was killed)."""
        import fcntl
        tmp = os.path.join(data, "tmp")
        os.makedirs(tmp, exist_ok=True)
        live, stale = os.path.join(tmp, "blob-live" + tag), os.path.join(tmp, "blob-stale" + tag)
        with open(stale, "wb") as f:
            f.write(b"%PDF-1.4 half of a file")
        holder = open(live, "wb")
        holder.write(b"%PDF-1.4 being written")
        holder.flush()
        fcntl.flock(holder, fcntl.LOCK_EX)
        return holder, live, stale

    def test_temp_file_of_a_live_writer_survives_a_sync_start(self):
        holder, live, stale = self.make_temp_files(self.cli.env["HOVERSYNC_DATA_DIR"])
        try:
            mid = self.models(JOB_ALL_COMPLETE)[0]["id"]
            self.sync(JOB_ALL_COMPLETE, "--model", mid)
            self.assertTrue(os.path.exists(live), "a concurrent writer's temp file was removed")
            self.assertFalse(os.path.exists(stale), "a stale temp file was left")
        finally:
            holder.close()

    def test_serve_and_worker_remove_stale_temp_files_at_start(self):
        import subprocess
        from harness import Service
        holder, live, stale = self.make_temp_files(os.path.join(self.cli.dir, "data"))
        try:
            svc = Service(self.sb, db_dir=self.cli.dir)
            svc.stop()
            svc.cleanup()
            self.assertFalse(os.path.exists(stale), "serve left a stale temp file")
            self.assertTrue(os.path.exists(live))
            holder2, live2, stale2 = self.make_temp_files(os.path.join(self.cli.dir, "data"), "2")
            env = dict(self.cli.env, HOVERSYNC_DATA_DIR=os.path.join(self.cli.dir, "data"))
            proc = subprocess.Popen([HOVERSYNC_BIN, "worker"], env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            try:
                self.assertEqual(proc.stdout.readline().strip(), "hoversync worker running")
            finally:
                proc.terminate()
                proc.communicate(timeout=60)
            holder2.close()
            self.assertFalse(os.path.exists(stale2), "worker left a stale temp file")
            self.assertTrue(os.path.exists(live) and os.path.exists(live2))
        finally:
            holder.close()

    # --- runs ---
    def test_killed_run_is_marked_interrupted(self):
        """A sync killed with -9 leaves its run "running" only until its lease lapses: then any
        process that looks (status, export, the next sync) marks it interrupted."""
        mid = self.models(JOB_ALL_COMPLETE)[0]["id"]
        self.cli.env["HOVERSYNC_RUN_LEASE"] = "2"
        self.cli.env["HOVERSYNC_CRASHPOINT"] = "after_download:2"
        r = self.cli.run("sync", JOB_ALL_COMPLETE, "--model", mid)
        self.assertEqual(r.returncode, -9, r.stderr)
        del self.cli.env["HOVERSYNC_CRASHPOINT"]
        self.assertEqual(self.cli.sql("SELECT status FROM sync_runs"), [("running",)])
        deadline = time.time() + 60

        def runs():
            return self.cli.json("status", "--offline").get("runs")
        while time.time() < deadline and (runs() or {}).get("interrupted") != 1:
            time.sleep(0.5)
        self.assertEqual(runs(), {"running": 0, "interrupted": 1})
        self.assertEqual(self.cli.sql("SELECT status FROM sync_runs"), [("interrupted",)])
        self.assertIn("1 interrupted", self.cli.run("status", "--offline").stdout)

    def test_live_run_keeps_its_lease(self):
        """A run whose download takes longer than its lease stays running: its process renews
        the lease while it works."""
        import subprocess
        mid = self.models(JOB_ALL_COMPLETE)[0]["id"]
        self.sb.fault(path="/storage/*", latency_ms=6000)
        env = dict(self.cli.env, HOVERSYNC_RUN_LEASE="2")
        proc = subprocess.Popen([HOVERSYNC_BIN, "sync", str(JOB_ALL_COMPLETE), "--model", str(mid)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            def runs():  # 0 until the process has made the store (a file, or the tables)
                if not on_postgresql() and not os.path.exists(self.cli.db):
                    return 0
                try:
                    return self.count("sync_runs")
                except RuntimeError:  # psql: the tables are not there yet
                    return 0
            deadline = time.time() + 60
            while time.time() < deadline and runs() == 0:
                time.sleep(0.1)
            time.sleep(4)  # two leases: a run nobody renewed would have lapsed by now
            self.assertIsNone(proc.poll(), "the sync ended before its slow download")
            st = self.cli.json("status", "--offline")
            self.assertEqual(st["runs"], {"running": 1, "interrupted": 0})
        finally:
            _, err = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 0, err)
        self.assertEqual(self.cli.sql("SELECT status FROM sync_runs"), [("synced",)])

    # --- waits on the rate limit ---
    def test_rate_limit_wait_is_said(self):
        """A request that waits for Hover's rate limit says so at the default log level, before
        the wait, naming it."""
        import subprocess
        self.models(JOB_ALL_COMPLETE)  # stores the token pair
        self.sb.admin("POST", "config", {"rate_limit": 1, "rate_window_ms": 5000})
        proc = subprocess.Popen([HOVERSYNC_BIN, "--rate-limit", "0", "sync", str(JOB_ALL_COMPLETE),
                                 "--all-complete"], env=self.cli.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        try:
            line = ""
            for _ in range(50):
                line = proc.stderr.readline()
                if not line or "wait_s=" in line:
                    break
        finally:
            proc.kill()
            proc.communicate()
            self.sb.admin("POST", "config", {"rate_limit": 0, "rate_window_ms": 60000})
        self.assertRegex(line, r"level=warn hover wait_s=[1-5] reason=429 request=\"GET /api/")
        self.assertIn("rate limit", line)

    @unittest.skipIf(SANITIZED, "peak RSS is not meaningful under AddressSanitizer")
    def test_50mb_artifact_streams_with_bounded_memory(self):
        ms = self.models(JOB_ALL_COMPLETE)
        mid = ms[2]["id"]
        size = 50 * 1024 * 1024
        self.sb.admin("POST", "models/%d" % mid, {"pdf_bytes": size})
        try:
            rc, stdout, stderr, peak_kb = self.cli.run_measured(
                "sync", JOB_ALL_COMPLETE, "--model", mid, "--json")
            self.assertEqual(rc, 0, stderr)
            out = json.loads(stdout)
            pdf = next(a for a in out["models"][0]["artifacts"] if a["kind"] == "measurements.pdf")
            self.assertEqual(pdf["bytes"], size)
            self.assertLess(peak_kb, 40 * 1024, "hoversync used %d KiB for a 50 MB file" % peak_kb)
            print("\npeak RSS syncing a 50 MB PDF: %d KiB" % peak_kb, end="")
            self.assert_store_consistent()
        finally:
            self.sb.admin("POST", "models/%d" % mid, {"pdf_bytes": 0})


class Backfill(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox("--rate-limit", "0", jobs=330, seed=9)

    @classmethod
    def tearDownClass(cls):
        cls.sb.stop()

    def test_backfill_resumes_after_a_kill(self):
        cli = Cli(self.sb, self.sb.tokens())
        cli.env["HOVERSYNC_DATA_DIR"] = os.path.join(cli.dir, "data")
        try:
            total = len(cli.json("search", "--all"))
            self.assertGreater(total, 200, "the walk must span several pages of 100")
            cli.env["HOVERSYNC_CRASHPOINT"] = "backfill_page:1"
            r = cli.run("backfill")
            self.assertEqual(r.returncode, -9, r.stderr)
            ck = cli.sql("SELECT value FROM checkpoints")
            self.assertEqual(len(ck), 1)
            indexed = cli.sql("SELECT COUNT(*) FROM jobs")[0][0]
            self.assertEqual(indexed, 100)
            del cli.env["HOVERSYNC_CRASHPOINT"]
            start = self.sb.last_seq()
            r = cli.run("backfill")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("resuming", r.stderr)
            first = [e for e in self.sb.requests(start) if e["path"] == "/api/v3/jobs"][0]
            since = json.loads(ck[0][0])["updated_since"]
            self.assertIn("updated_since=%d" % since, first["query"])
            self.assertIn("page=1", first["query"])
            self.assertEqual(cli.sql("SELECT COUNT(*) FROM jobs")[0][0], total)
            # a later run walks only what changed since: nothing here
            start = self.sb.last_seq()
            r = cli.run("backfill")
            self.assertEqual(r.returncode, 0, r.stderr)
            lists = [e for e in self.sb.requests(start) if e["path"] == "/api/v3/jobs"]
            self.assertEqual(len(lists), 1)
        finally:
            cli.cleanup()

    def test_backfill_sync_stores_complete_models(self):
        # The client-side limiter would pace this at 120 requests a minute: lift it here.
        cli = Cli(self.sb, self.sb.tokens(), HOVERSYNC_RATE_LIMIT=0)
        cli.env["HOVERSYNC_DATA_DIR"] = os.path.join(cli.dir, "data")
        try:
            r = cli.run("backfill", "--sync", "--since", "2026-06-01", "--state", "completed")
            self.assertIn("models synced", r.stdout, r.stderr)
            synced = cli.sql("SELECT COUNT(DISTINCT model_id) FROM artifacts")[0][0]
            complete = cli.sql("SELECT COUNT(*) FROM models WHERE state = 'complete' AND "
                               "deliverable_id != 7")[0][0]
            self.assertGreater(synced, 0)
            self.assertGreaterEqual(synced, complete)
            bad = cli.sql("SELECT COUNT(*) FROM artifacts a JOIN models m ON m.id = a.model_id "
                          "WHERE m.state != 'complete'")[0][0]
            self.assertEqual(bad, 0)
        finally:
            cli.cleanup()

    def test_backfill_names_failed_models_and_a_rerun_retries_them(self):
        cli = Cli(self.sb, self.sb.tokens(), HOVERSYNC_RATE_LIMIT=0)
        cli.env["HOVERSYNC_DATA_DIR"] = os.path.join(cli.dir, "data")
        args = ("backfill", "--sync", "--since", "2026-06-01", "--state", "completed")
        try:
            r = cli.run("backfill", "--since", "2026-06-01", "--state", "completed")
            self.assertEqual(r.returncode, 0, r.stderr)
            victim = cli.sql("SELECT m.id, m.job_id FROM models m JOIN jobs j ON j.id = m.job_id "
                             "WHERE m.state = 'complete' AND m.deliverable_id != 7 "
                             "ORDER BY j.hover_updated_at LIMIT 1")[0]
            fault = self.sb.fault(path="/api/v3/models/%d/*" % victim[0], status=404)["id"]
            try:
                r = cli.run(*args)
            finally:
                self.sb.admin("DELETE", "faults/%d" % fault)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn("1 models not synced", r.stdout)
            self.assertIn("job %d model %d: " % (victim[1], victim[0]), r.stdout)
            self.assertIn("hoversync " + " ".join(args), r.stdout)
            self.assertEqual(cli.sql("SELECT status FROM selections WHERE model_id = %d"
                                     % victim[0]), [("error",)])
            # The rerun resumes after the last page, and retries the model left in error first.
            r = cli.run(*args)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("retried 1 job left in error", r.stderr)
            self.assertEqual(cli.sql("SELECT status FROM selections WHERE model_id = %d"
                                     % victim[0]), [("synced",)])
            self.assertGreater(cli.sql("SELECT COUNT(*) FROM artifacts WHERE model_id = %d"
                                       % victim[0])[0][0], 0)
        finally:
            cli.cleanup()

    def test_backfill_archived_walks_the_archived_jobs(self):
        tok = self.sb.tokens()["access_token"]
        status, _, page = self.sb.call("GET", "/api/v3/jobs?archived=true&per=100",
                                       headers={"Authorization": "Bearer " + tok})
        self.assertEqual(status, 200)
        archived = {j["id"] for j in page["results"]}
        self.assertEqual(len(archived), page["pagination"]["total"])
        self.assertIn(15084307, archived)  # the showcase's archived job
        cli = Cli(self.sb, self.sb.tokens())
        try:
            r = cli.run("backfill")
            self.assertEqual(r.returncode, 0, r.stderr)
            stored = {row[0] for row in cli.sql("SELECT id FROM jobs")}
            self.assertEqual(stored & archived, set(), "archived jobs are listed apart")
            r = cli.run("backfill", "--archived")
            self.assertEqual(r.returncode, 0, r.stderr)
            stored = {row[0] for row in cli.sql("SELECT id FROM jobs")}
            self.assertEqual(archived - stored, set(), "archived jobs were never listed")
            self.assertIn("--archived", cli.run("backfill", "--help").stdout)
        finally:
            cli.cleanup()

    def test_backfill_bar_shows_a_rate_limit_wait(self):
        """On a terminal the progress bar says that the backfill waits for Hover's rate limit
        (and the log line says it too)."""
        import pty
        import select
        cli = Cli(self.sb, self.sb.tokens(), HOVERSYNC_RATE_LIMIT=0)
        cli.env["HOVERSYNC_DATA_DIR"] = os.path.join(cli.dir, "data")
        self.sb.admin("POST", "config", {"rate_limit": 1, "rate_window_ms": 5000})
        master, slave = pty.openpty()
        proc = subprocess.Popen([HOVERSYNC_BIN, "backfill", "--sync", "--since", "2026-09-01"],
                                env=cli.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=slave)
        os.close(slave)
        seen = b""
        try:
            deadline = time.time() + 120
            while time.time() < deadline and b"for Hover's rate limit" not in seen:
                ready, _, _ = select.select([master], [], [], 1)
                if ready:
                    try:
                        chunk = os.read(master, 4096)
                    except OSError:
                        break
                    if not chunk:
                        break
                    seen += chunk
        finally:
            proc.kill()
            proc.wait()
            os.close(master)
            self.sb.admin("POST", "config", {"rate_limit": 0, "rate_window_ms": 60000})
            cli.cleanup()
        text = seen.decode(errors="replace")
        self.assertRegex(text, r"\] \d+/\d+ jobs, \d+ models synced, waiting [1-5] s for "
                               r"Hover's rate limit")
        self.assertIn("hover wait_s=", text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
