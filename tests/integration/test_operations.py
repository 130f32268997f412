"""Running it for years (docs/OPERATIONS.md), through the real binaries and the sandbox:

- retention: rows dated long ago (the store's own dates set back, as a clock moved forward
  would see them) are deleted by `store prune` in transactions of --batch rows, and by the
  retention duty of a running `serve` (--retention-interval); current rows stay, and each
  model's latest sync result whatever its age;
- the collector of artifact files: an orphan older than --blob-grace goes, a file a row points
  at and a fresh orphan stay; it and a backup hold the files in turn;
- `status` shows the store's size, its largest tables and the files' total;
- `store backup` taken while a serve and a backfill sync sandbox jobs, restored into a new
  folder: every model and file synced before the backup began is there (files checked by their
  digest), every row points at a file, and a service started on the restored store serves them;
  restore refuses a target that is not empty; a PostgreSQL store's backup is refused with a
  pointer to the documentation.

Standard library only."""
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (HOVERSYNC_BIN, JOB_ALL_COMPLETE, Cli, Sandbox, Service,  # noqa: E402
                     wait_for)

OLD = "2020-01-01T00:00:00.000Z"
HOUSE, GARAGE = 17338401, 17338402  # complete models of JOB_ALL_COMPLETE


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def write(db, sql, rows=None):
    con = sqlite3.connect(db)
    try:
        if rows is None:
            con.execute(sql)
        else:
            con.executemany(sql, rows)
        con.commit()
    finally:
        con.close()


class Retention(unittest.TestCase):
    def setUp(self):
        self.sb = Sandbox(jobs=20)
        self.sb.admin("POST", "config", {"rate_limit": 0})
        self.cli = Cli(self.sb, self.sb.tokens())
        self.data = os.path.join(self.cli.dir, "data")
        self.cli.env["HOVERSYNC_DATA_DIR"] = self.data
        self.services = []

    def tearDown(self):
        for svc in self.services:
            svc.stop()
            svc.cleanup()
        self.cli.cleanup()
        self.sb.stop()

    def run_ok(self, *args):
        r = self.cli.run(*args)
        self.assertEqual(r.returncode, 0, "%s: %s" % (args, r.stderr))
        return r.stdout

    def count(self, sql):
        return self.cli.sql(sql)[0][0]

    def old_rows(self, n_events):
        """n_events handled deliveries received long ago, one still waiting for its work, and
        two delivered notifications of one job long ago (the later stays: the next follows
        it)."""
        write(self.cli.db, "INSERT INTO webhook_events (connection_key, event, job_id, body, "
                           "status, received_at) VALUES ('default', 'job-state-changed-v2', ?, "
                           "x'7b7d', ?, ?)",
              [(i, "processed", OLD) for i in range(n_events)] + [(99, "accepted", OLD)])
        write(self.cli.db, "INSERT INTO outbox (endpoint, job_id, seq_in_job, idempotency_key, "
                           "payload, delivered_at, created_at) VALUES ('http://127.0.0.1:9/', "
                           "7, ?, ?, '{}', ?, ?)",
              [(1, "k1", OLD, OLD), (2, "k2", OLD, OLD)])

    def prune_output(self, out):
        return {line.split()[0]: int(line.split()[1]) for line in out.splitlines()}

    def test_store_prune_in_batches_keeps_current_rows(self):
        # Two syncs of the same model: two runs, two results of it; the newer one is its latest.
        self.run_ok("sync", JOB_ALL_COMPLETE, "--model", HOUSE)
        self.run_ok("sync", JOB_ALL_COMPLETE, "--model", HOUSE, "--model", GARAGE)
        self.assertEqual(self.count("SELECT COUNT(*) FROM sync_results WHERE model_id = %d"
                                    % HOUSE), 2)
        latest = self.cli.sql("SELECT run_id FROM sync_results WHERE model_id = %d "
                              "ORDER BY at DESC, run_id DESC LIMIT 1" % HOUSE)[0][0]
        self.old_rows(1200)
        # The runs and results of today are not old: nothing of them goes.
        out = self.prune_output(self.run_ok("store", "prune", "--batch", 500))
        self.assertEqual(out["webhook_events"], 1200)
        self.assertEqual(out["outbox"], 1)
        self.assertEqual((out["sync_results"], out["sync_runs"]), (0, 0))
        self.assertGreaterEqual(out["transactions"], 4)  # 500 + 500 + 200, then the outbox
        self.assertEqual(self.cli.sql("SELECT job_id, status FROM webhook_events"),
                         [(99, "accepted")])
        self.assertEqual(self.cli.sql("SELECT idempotency_key FROM outbox"), [("k2",)])
        # Then the runs grow old (as 100 days later): each model's latest result and its run
        # stay, the rest goes.
        write(self.cli.db, "UPDATE sync_results SET at = '2020-01-01T00:00:0' || "
                           "(run_id % 10) || '.000Z'")
        write(self.cli.db, "UPDATE sync_runs SET started_at = ?", [(OLD,)])
        out = self.prune_output(self.run_ok("store", "prune"))
        self.assertEqual(out["sync_results"], 1)
        self.assertEqual(out["sync_runs"], 1)  # the first run holds no latest result: goes
        self.assertEqual(self.count("SELECT COUNT(*) FROM sync_results"), 2)
        self.assertEqual(self.cli.sql("SELECT run_id FROM sync_results WHERE model_id = %d"
                                      % HOUSE), [(latest,)])
        # The records a CRM follows are untouched.
        self.assertEqual(self.count("SELECT COUNT(*) FROM models WHERE synced_updated_at IS NOT "
                                    "NULL"), 2)

    def test_the_duty_of_a_running_service_prunes(self):
        self.run_ok("sync", JOB_ALL_COMPLETE, "--model", HOUSE)
        self.old_rows(700)
        svc = Service(self.sb, None, db_dir=self.cli.dir, connection="default",
                      args=["--reconcile-interval", 0, "--pending-interval", 2,
                            "--retention-interval", 1],
                      HOVERSYNC_LOG_LEVEL="info")
        self.services.append(svc)
        wait_for("the retention duty", lambda: self.count(
            "SELECT COUNT(*) FROM webhook_events WHERE status = 'processed'") == 0, 60)
        wait_for("its log line", lambda: "retention=rows table=webhook_events removed=700"
                 in svc.read_stderr(), 10)
        self.assertEqual(self.count("SELECT COUNT(*) FROM webhook_events"), 1)  # the accepted
        self.assertEqual(self.count("SELECT COUNT(*) FROM sync_results"), 1)
        # Counted once the pass has ended (the files after the rows).
        wait_for("the pass counted", lambda: "hoversync_retention_rows_deleted_total 701"
                 in svc.get("/metrics").body.decode(), 10)

    def test_files_collected_after_their_grace(self):
        self.run_ok("sync", JOB_ALL_COMPLETE, "--model", HOUSE)
        used = self.cli.sql("SELECT DISTINCT path FROM artifacts WHERE fetched")
        self.assertTrue(used)

        def orphan(content, age_s):
            sha = hashlib.sha256(content).hexdigest()
            d = os.path.join(self.data, "blobs", sha[:2], sha[2:4])
            os.makedirs(d, exist_ok=True)
            path = os.path.join(d, sha)
            with open(path, "wb") as f:
                f.write(content)
            t = time.time() - age_s
            os.utime(path, (t, t))
            return path

        gone = b"%PDF- a version replaced two hours ago"
        old = orphan(gone, 7200)
        fresh = orphan(b"%PDF- a crash's orphan of a minute ago", 60)
        for (rel,) in used:
            t = time.time() - 7200
            os.utime(os.path.join(self.data, rel), (t, t))
        before = json.loads(self.run_ok("status", "--offline", "--json"))["storage"]["files"]
        self.assertEqual(before["count"], len(used) + 2)
        out = self.run_ok("store", "prune")
        self.assertIn("files            1 (%d bytes); 1 unreferenced kept within the grace"
                      % len(gone), out)
        self.assertFalse(os.path.exists(old))
        self.assertTrue(os.path.exists(fresh))
        for (rel,) in used:
            self.assertTrue(os.path.exists(os.path.join(self.data, rel)), rel)
        after = json.loads(self.run_ok("status", "--offline", "--json"))["storage"]["files"]
        self.assertEqual(after["count"], len(used) + 1)
        # A shorter grace takes the other orphan too (no shorter than a minute).
        self.cli.env["HOVERSYNC_BLOB_GRACE"] = "60"
        time.sleep(1)
        self.run_ok("store", "prune")
        self.assertFalse(os.path.exists(fresh))

    def test_backup_and_collector_hold_the_files_in_turn(self):
        self.run_ok("sync", JOB_ALL_COMPLETE, "--model", HOUSE)
        sha = hashlib.sha256(b"an old orphan").hexdigest()
        d = os.path.join(self.data, "blobs", sha[:2], sha[2:4])
        os.makedirs(d, exist_ok=True)
        orphan = os.path.join(d, sha)
        with open(orphan, "wb") as f:
            f.write(b"an old orphan")
        os.utime(orphan, (time.time() - 7200, time.time() - 7200))
        # A backup holds the files (as another process's would): the collector leaves them.
        until = int(time.time() * 1000) + 600000
        write(self.cli.db, "INSERT INTO leases (name, fence, until_ms) VALUES ('files:hold', 7, ?)",
              [(until,)])
        self.run_ok("store", "prune")
        self.assertTrue(os.path.exists(orphan))
        # The collector holds them (a long pass): a backup waits for the end of it.
        target = os.path.join(self.cli.dir, "backup")
        proc = subprocess.Popen([HOVERSYNC_BIN, "store", "backup", target], env=self.cli.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stderr.readline()
            self.assertIn("waiting for the collector of files", line)
            self.assertFalse(os.path.exists(os.path.join(target, "hoversync.db")))
            write(self.cli.db, "UPDATE leases SET until_ms = 0 WHERE name = 'files:hold'")
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.assertEqual(proc.returncode, 0, err)
        self.assertIn("backup %s" % target, out)
        # Its hold released: the next pass collects.
        self.run_ok("store", "prune")
        self.assertFalse(os.path.exists(orphan))

    def test_status_shows_sizes(self):
        self.run_ok("sync", JOB_ALL_COMPLETE, "--model", HOUSE, "--model", GARAGE)
        self.old_rows(300)
        write(self.cli.db, "UPDATE webhook_events SET body = randomblob(2000)")
        st = json.loads(self.run_ok("status", "--offline", "--json"))["storage"]
        self.assertEqual(st["backend"], "sqlite")
        self.assertGreater(st["bytes"], 300 * 2000)
        self.assertEqual(len(st["tables"]), 5)
        by_name = {t["name"]: t for t in st["tables"]}
        self.assertIn("webhook_events", by_name)
        self.assertEqual(by_name["webhook_events"]["rows"], 301)
        files = {}
        for root, _, names in os.walk(os.path.join(self.data, "blobs")):
            for n in names:
                files[n] = os.path.getsize(os.path.join(root, n))
        self.assertEqual(st["files"], {"count": len(files), "bytes": sum(files.values())})
        text = self.run_ok("status", "--offline")
        self.assertIn("store        sqlite", text)
        self.assertIn("webhook_events", text)
        self.assertIn("files        %d" % len(files), text)


class Backup(unittest.TestCase):
    def setUp(self):
        self.sb = Sandbox(jobs=40)
        self.sb.admin("POST", "config", {"rate_limit": 0})
        self.tokens = self.sb.tokens()
        self.tmp = tempfile.mkdtemp(prefix="hs-backup-")
        self.services = []

    def tearDown(self):
        for svc in self.services:
            svc.stop()
            svc.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.sb.stop()

    def synced(self, cli, data):
        """{model id: synced_updated_at} and {(sha256, path)} of a store, each file checked."""
        models = dict(cli.sql("SELECT id, synced_updated_at FROM models "
                              "WHERE synced_updated_at IS NOT NULL"))
        files = set(cli.sql("SELECT sha256, path FROM artifacts WHERE fetched"))
        for sha, path in files:
            full = os.path.join(data, path)
            self.assertTrue(os.path.isfile(full), "a row points at a missing file " + path)
            self.assertEqual(sha256_file(full), sha)
        return models, files

    def test_backup_while_syncing_then_restore(self):
        svc = Service(self.sb, self.tokens, args=["--reconcile-interval", 0],
                      HOVERSYNC_LOG_LEVEL="info", HOVERSYNC_RATE_LIMIT=0)
        self.services.append(svc)
        r = svc.request("POST", "/api/syncs", {"job_id": JOB_ALL_COMPLETE,
                                              "model_ids": [HOUSE, GARAGE]})
        self.assertEqual(r.status, 202, r.body)
        sync_id = r.json["id"]
        wait_for("the first sync", lambda: svc.get("/api/syncs/" + sync_id).json["status"]
                 == "done", 60)
        data = svc.cli.env["HOVERSYNC_DATA_DIR"]
        models0, files0 = self.synced(svc.cli, data)
        # (the org's auto-sync policy may take the job's third model along)
        self.assertLessEqual({HOUSE, GARAGE}, set(models0))

        # Every job's complete models, synced through the queue by the backfill and the serve,
        # slowly enough that the backup runs in the middle of it.
        self.sb.fault(path="/api/v3/models/*", latency_ms=50)
        backfill = subprocess.Popen([HOVERSYNC_BIN, "backfill", "--sync"], env=svc.cli.env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_for("syncs running", lambda: len(svc.cli.sql(
                "SELECT DISTINCT model_id FROM artifacts")) > len(models0) + 2, 120)
            target = os.path.join(self.tmp, "backup")
            r = svc.cli.run("store", "backup", target)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("backup %s: store" % target, r.stdout)
            running = svc.cli.sql("SELECT COUNT(*) FROM work_items")[0][0]
        finally:
            _, err = backfill.communicate(timeout=300)
        self.assertEqual(backfill.returncode, 0, err)
        self.assertGreater(running, 0, "the backup did not overlap the syncs")
        with open(os.path.join(target, "manifest.json")) as f:
            manifest = json.load(f)
        self.assertEqual(manifest["missing"], [])
        self.assertEqual(manifest["db_sha256"], sha256_file(os.path.join(target,
                                                                         "hoversync.db")))

        # Restored on "a new machine": a new folder, the same configuration otherwise.
        new = os.path.join(self.tmp, "restored")
        os.mkdir(new)
        cli = Cli(self.sb)
        cli.db = os.path.join(new, "hoversync.db")
        cli.env.update({"HOVERSYNC_DB": cli.db,
                        "HOVERSYNC_DATA_DIR": os.path.join(new, "data")})
        r = cli.run("store", "restore", target)
        self.assertEqual(r.returncode, 0, r.stderr)
        models1, files1 = self.synced(cli, os.path.join(new, "data"))
        for m, at in models0.items():
            self.assertEqual(models1.get(m), at, "model %d" % m)
        self.assertLessEqual(files0, files1)
        self.assertGreater(len(files1), len(files0))  # syncs of the backfill made it in too
        n_files = sum(len(f) for _, _, f in os.walk(os.path.join(new, "data", "blobs")))
        self.assertEqual(n_files, len({sha for sha, _ in files1}))
        # A second restore into it is refused: the target is not empty.
        r = cli.run("store", "restore", target)
        self.assertEqual(r.returncode, 2)
        self.assertIn("not empty", r.stderr)

        # The restored service serves what was synced.
        restored = Service(self.sb, None, db_dir=new, args=["--no-workers"])
        self.services.append(restored)
        # (JSON documents left out: the contract check reads a JSON body against the file's
        # schema, a binary string.)
        binary = {sha for (sha,) in svc.cli.sql("SELECT sha256 FROM artifacts WHERE "
                                                 "content_type NOT LIKE '%json%'")}
        self.assertTrue(binary & {sha for sha, _ in files0})
        for sha in sorted(binary & {sha for sha, _ in files0}):
            r = restored.get("/files/" + sha)
            self.assertEqual(r.status, 200, sha)
            self.assertEqual(hashlib.sha256(r.body).hexdigest(), sha)
        st = restored.get("/api/status").json["storage"]
        self.assertEqual(st["files"]["count"], n_files)
        cli.cleanup()

    def test_damaged_backup_is_refused(self):
        cli = Cli(self.sb, self.tokens)
        cli.env["HOVERSYNC_DATA_DIR"] = os.path.join(cli.dir, "data")
        try:
            r = cli.run("sync", JOB_ALL_COMPLETE, "--model", HOUSE)
            self.assertEqual(r.returncode, 0, r.stderr)
            target = os.path.join(self.tmp, "b")
            self.assertEqual(cli.run("store", "backup", target).returncode, 0)
            with open(os.path.join(target, "manifest.json")) as f:
                victim = os.path.join(target, json.load(f)["files"][0]["path"])
            with open(victim, "r+b") as f:
                f.write(b"X")
            new = os.path.join(self.tmp, "n")
            other = Cli(self.sb, HOVERSYNC_DB=os.path.join(new, "hoversync.db"),
                        HOVERSYNC_DATA_DIR=os.path.join(new, "data"))
            os.mkdir(new)
            r = other.run("store", "restore", target)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("does not match its digest", r.stderr)
            self.assertFalse(os.path.exists(os.path.join(new, "hoversync.db")))
            other.cleanup()
        finally:
            cli.cleanup()

    def test_postgresql_backup_points_to_the_docs(self):
        cli = Cli(self.sb, HOVERSYNC_DB="postgresql://127.0.0.1:9/hoversync")
        try:
            r = cli.run("store", "backup", os.path.join(self.tmp, "pg"))
            self.assertEqual(r.returncode, 1)
            self.assertIn("pg_dump", r.stderr)
            self.assertIn("docs/OPERATIONS.md", r.stderr)
            self.assertFalse(os.path.exists(os.path.join(self.tmp, "pg")))
        finally:
            cli.cleanup()


if __name__ == "__main__":
    unittest.main()
