#!/usr/bin/python3
"""`hoversync store copy` (docs/SCALING.md "Moving a store from SQLite to PostgreSQL"), with real
processes: the sandbox, `hoversync serve` on a SQLite file, and the throw-away PostgreSQL cluster of
tests/support/pg_cluster.sh (HS_TEST_PG_URL; each store in a schema of its own).

The SQLite store is populated as a user's would be: secrets sealed under a key, a connection, a job
synced from the command line, the service's webhook registered and a test job synced by it (its
deliveries, replay memory and access ids kept), a browser session, a sync asked through the API
and still queued (serve --no-workers), notifications waiting for a CRM endpoint that is down, and
a follower's feed cursor taken half-way. Then:

- copied to PostgreSQL and straight back to a new SQLite file: every table of the file equal, row
  for row (the raw JSON compared as JSON: PostgreSQL keeps it as jsonb);
- on PostgreSQL, `export`, `status` and `show` (with the copied, still sealed tokens and no
  token in the environment) answer as on SQLite, and so do serve's /api routes (records, syncs,
  connections, the copied session) and the artifact files of the one data directory;
- a second copy into the now non-empty target is refused and changes nothing; --replace copies;
- the feed goes on: a sync on the target gets the numbers after the source's last, and a follower
  at the half-way cursor gets the source's later rows and the new ones, nothing twice;
- bad inputs (a missing source, a database without a store, an unreachable target, a target
  with a newer schema, one store for both) give clear errors and change nothing;
- the artifact files move too (--from-blobs, --to-blobs): from the data folder to PostgreSQL and
  the sandbox's S3 listener, where a serve with an empty data folder answers every /files as the
  SQLite one does, then from the bucket to a new folder; a file missing from the source stops
  the copy, naming the file, and the target gets no rows."""
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from harness import (HOVERSYNC_BIN, JOB_ALL_COMPLETE, JOB_ONE_FAILED, JOB_PROCESSING,  # noqa: E402
                     MAIN_ORG, S3_ARGS, S3_BUCKET, SLOW, Sandbox, Service, free_port, s3_env,
                     wait_for)

PG_URL = os.environ.get("HS_TEST_PG_URL")
KEY = "k8Yq1w1m6Hn3X0gQ7R2rQm0cF4yV9tB5sL2eP6aJ3dU="
CONN = "org-%d" % MAIN_ORG


def psql(sql, url=None):
    """Rows of sql run by psql on the cluster (or on url), as lists of text."""
    r = subprocess.run(["psql", "-X", "-q", "-t", "-A", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                        url or PG_URL, "-c", sql], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("psql %s: %s" % (sql, r.stderr))
    return [line.split("\t") for line in r.stdout.splitlines() if line]


_schemas = []


def fresh_schema():
    """The URL of a new empty schema of the cluster's database (search_path: it, then public,
    where the cluster's extensions are)."""
    name = "copy_%d_%d" % (os.getpid(), len(_schemas) + 1)
    psql("DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s" % (name, name))
    _schemas.append(name)
    sep = "&" if "?" in PG_URL else "?"
    return name, PG_URL + sep + "options=" + urllib.parse.quote("-csearch_path=%s,public" % name)


def tables_in(schema):
    return sorted(r[0] for r in psql("SELECT table_name FROM information_schema.tables WHERE "
                                     "table_schema = '%s'" % schema))


def sqlite_dump(path):
    """{table: sorted rows} of every table of a SQLite store but the search index's and the
    migrations' (raw_json as parsed JSON)."""
    con = sqlite3.connect(path)
    try:
        out = {}
        names = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'jobs_fts%' "
            "AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations'")]
        for t in names:
            cur = con.execute('SELECT * FROM "%s"' % t)
            cols = [d[0] for d in cur.description]
            rows = []
            for row in cur.fetchall():
                rows.append(tuple(json.loads(v) if c == "raw_json" and v is not None else v
                                  for c, v in zip(cols, row)))
            out[t] = sorted(rows, key=repr)
        return out
    finally:
        con.close()


@unittest.skipUnless(PG_URL, "needs a PostgreSQL cluster: run through tests/support/pg_cluster.sh")
class StoreCopy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox(*S3_ARGS, jobs=40)
        cls.sb.admin("POST", "config", {"rate_limit": 0, "reconstruction_seconds": 1,
                                        "webhook_retry_base_ms": 200,
                                        "webhook_signer": "2.5-sha256",
                                        "webhook_access_id": "name"})
        cls.tokens = cls.sb.tokens()
        cls.port = free_port()
        cls.public = "http://127.0.0.1:%d" % cls.port
        # Nobody listens there: the notifications stay in the outbox.
        cls.crm = "http://127.0.0.1:%d/crm" % free_port()
        cls.svc = cls.serve(cls.tokens, "--listen", "127.0.0.1:%d" % cls.port)
        cls.dir = cls.svc.dir
        cls.src = cls.svc.cli.db
        cls.data_dir = cls.svc.cli.env["HOVERSYNC_DATA_DIR"]
        try:
            cls.populate()
        except BaseException:
            cls.svc.stop()
            cls.sb.stop()
            raise
        cls.target_schema, cls.target = fresh_schema()
        cls.back = os.path.join(cls.dir, "back.db")

    @classmethod
    def serve(cls, tokens, *args, db_dir=None, **env):
        return Service(cls.sb, tokens, db_dir=db_dir,
                       args=["--public-url", cls.public, "--crm-endpoint", cls.crm,
                             "--reconcile-interval", 0, "--pending-interval", 0,
                             "--rate-limit", 0, *args],
                       HOVERSYNC_CRM_SECRET="crm-secret", HOVERSYNC_OUTBOX_RETRY_BASE_MS=600000,
                       HOVERSYNC_ENCRYPTION_KEY=KEY, **env)

    @classmethod
    def populate(cls):
        svc = cls.svc
        r = svc.cli.run("webhooks", "register", "--public-url", cls.public, "--wait", 20 * SLOW,
                        "--json", timeout=60 * SLOW)
        assert r.returncode == 0, "register: %s %s" % (r.stdout, r.stderr)
        r = svc.cli.run("sync", JOB_ALL_COMPLETE, "--all-complete", timeout=120 * SLOW)
        assert r.returncode == 0, "sync: %s" % r.stderr
        cls.mid_cursor = svc.cli.json("export")["cursor"]
        # A test job: Hover's deliveries make the service sync it.
        status, _, out = cls.sb.call(
            "POST", "/api/v3/jobs/test_job", {"failed_models_count": 1},
            headers={"Authorization": "Bearer " + cls.tokens["access_token"]})
        assert status == 200, out
        job = out["job_id"]

        def synced():
            return svc.cli.sql("SELECT COUNT(*) FROM models WHERE job_id = %d AND "
                               "synced_updated_at IS NOT NULL" % job)[0][0] == 2 and \
                svc.cli.sql("SELECT COUNT(*) FROM work_items WHERE job_id = %d" % job)[0][0] == 0
        wait_for("the test job synced", synced, 60)
        r = svc.request("POST", "/api/sessions", {"user": "crm-user-7", "connections": [CONN]})
        assert r.status == 201, r.body
        cls.session = r.json["session"]
        assert svc.stop() == 0, svc.read_stderr()[-3000:]
        # A sync asked through the API, still queued: no process works on it.
        front = cls.serve(None, "--no-workers", db_dir=cls.dir)
        try:
            job = front.get("/api/jobs/%d" % JOB_ONE_FAILED).json
            complete = [m["id"] for m in job["models"] if m["complete"]]
            r = front.request("POST", "/api/syncs", {"job_id": JOB_ONE_FAILED,
                                                     "model_ids": complete})
            assert r.status == 202, r.body
            cls.sync_id = r.json["id"]
        finally:
            assert front.stop() == 0, front.read_stderr()[-3000:]
            front.cli.cleanup()
        counts = {t: svc.cli.sql('SELECT COUNT(*) FROM "%s"' % t)[0][0] for t in (
            "connections", "oauth_tokens", "jobs", "models", "artifacts", "measurements",
            "selections", "sync_runs", "sync_results", "webhooks", "webhook_events",
            "webhook_replays", "webhook_access_ids", "work_items", "outbox", "sessions",
            "session_connections", "syncs", "sync_models", "settings")}
        empty = [t for t, n in counts.items() if n == 0]
        assert not empty, "the source store was meant to hold rows in %s" % empty
        cls.last_cursor = svc.cli.json("export")["cursor"]
        assert cls.last_cursor > cls.mid_cursor

    @classmethod
    def tearDownClass(cls):
        cls.svc.cleanup()
        cls.sb.stop()
        for s in _schemas:
            psql("DROP SCHEMA IF EXISTS %s CASCADE" % s)

    # ---- helpers ----
    def env(self, db, tokens=False):
        """The service's environment on store db; without the token pair unless asked for."""
        env = dict(self.svc.cli.env, HOVERSYNC_DB=db)
        if not tokens:
            env.pop("HOVER_ACCESS_TOKEN", None)
            env.pop("HOVER_REFRESH_TOKEN", None)
        return env

    def run_hs(self, db, *args, **kw):
        return subprocess.run([HOVERSYNC_BIN, *map(str, args)], env=self.env(db, **kw),
                              capture_output=True, text=True, timeout=120 * SLOW)

    def json_of(self, db, *args):
        r = self.run_hs(db, *args, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def copy(self, frm, to, *extra):
        return self.run_hs(self.src, "store", "copy", "--from", frm, "--to", to, *extra)

    def copy_files(self, frm, to, from_blobs, to_blobs):
        """store copy with the files, the S3 endpoint and credentials in the environment (and
        no --blobs there: each side is named)."""
        env = dict(self.env(self.src), **s3_env(self.sb))
        del env["HOVERSYNC_BLOBS"]
        return subprocess.run([HOVERSYNC_BIN, "store", "copy", "--from", frm, "--to", to,
                               "--from-blobs", from_blobs, "--to-blobs", to_blobs], env=env,
                              capture_output=True, text=True, timeout=120 * SLOW)

    def objects(self, prefix):
        """{key: size} of the bucket's objects under prefix/ (the sandbox's own view)."""
        return {o["key"]: o["size"] for b in self.sb.admin("GET", "s3")["buckets"]
                if b["name"] == S3_BUCKET for o in b["objects"]
                if o["key"].startswith(prefix + "/")}

    def digests(self):
        """The distinct SHA-256 of the source's fetched artifacts (a row recorded but not fetched
        has no file)."""
        con = sqlite3.connect(self.src)
        try:
            return sorted({sha for sha, in con.execute("SELECT sha256 FROM artifacts WHERE "
                                                       "fetched")})
        finally:
            con.close()

    def files(self, svc, digests):
        """{sha256: (status, content type, body)} of svc's /files answers."""
        out = {}
        for sha in digests:
            r = svc.get("/files/" + sha)
            out[sha] = (r.status, r.header("Content-Type"), r.body)
        return out

    # ---- the tests, in name order on one pair of stores ----
    def test_1_copy_to_postgresql_and_back_is_equal(self):
        r = self.copy(self.src, self.target)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^copied \d+ rows of \d+ tables into postgresql://")
        r = self.copy(self.target, self.back)
        self.assertEqual(r.returncode, 0, r.stderr)
        want, got = sqlite_dump(self.src), sqlite_dump(self.back)
        self.assertEqual(sorted(want), sorted(got))
        for t in want:
            self.assertEqual(want[t], got[t], "table %s differs after the round trip" % t)
        # Nothing of it went over in clear.
        token = self.tokens["refresh_token"]
        self.assertNotIn(token, json.dumps(psql("SELECT refresh_token FROM %s.oauth_tokens"
                                                % self.target_schema)))

    def test_2_cli_reads_the_same_on_postgresql(self):
        for args in (("export",), ("export", "--since", self.mid_cursor),
                     ("status", "--offline")):
            got, want = self.json_of(self.target, *args), self.json_of(self.src, *args)
            # The store's size is each back-end's own (pages, relations); the rest is the same.
            got.pop("storage", None)
            want.pop("storage", None)
            self.assertEqual(got, want, " ".join(map(str, args)))
        # The copied token pair, still sealed under the key, reaches Hover.
        job = self.json_of(self.target, "show", JOB_ALL_COMPLETE)
        self.assertEqual(job["id"], JOB_ALL_COMPLETE)
        without_key = dict(self.env(self.target))
        without_key.pop("HOVERSYNC_ENCRYPTION_KEY")
        r = subprocess.run([HOVERSYNC_BIN, "export"], env=without_key, capture_output=True,
                           text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("HOVERSYNC_ENCRYPTION_KEY", r.stderr)

    def test_3_serve_answers_the_same_on_postgresql(self):
        a = self.serve(None, "--no-workers", db_dir=self.dir)
        b = self.serve(None, "--no-workers", "--db", self.target, db_dir=self.dir)
        try:
            for path in ("/api/records?since=0", "/api/records?since=%d" % self.mid_cursor,
                         "/api/connections", "/api/syncs/" + self.sync_id):
                ra, rb = a.get(path), b.get(path)
                self.assertEqual(ra.status, 200, path)
                self.assertEqual(rb.status, 200, path)
                self.assertEqual(ra.json, rb.json, path)
            self.assertEqual(b.get("/api/syncs/" + self.sync_id).json["status"], "queued")
            rb = b.get("/api/session", key=False, cookie=self.session)
            self.assertEqual(rb.status, 200, rb.body)
            self.assertEqual(rb.json["user"], "crm-user-7")
            self.assertEqual(rb.json["connections"], [CONN])
            status = b.get("/api/status").json
            self.assertGreater(status["work"]["total"], 0)
            self.assertGreater(status["outbox"]["pending"], 0)
            self.assertTrue(status["webhooks"][0]["secret_stored"])
            art = b.get("/api/records?since=0").json["artifacts"][0]
            rb = b.get("/files/" + art["sha256"])
            self.assertEqual(rb.status, 200)
            self.assertEqual(hashlib.sha256(rb.body).hexdigest(), art["sha256"])
        finally:
            for svc in (a, b):
                self.assertEqual(svc.stop(), 0, svc.read_stderr()[-3000:])
                svc.cli.cleanup()

    def test_4_a_non_empty_target_is_refused(self):
        before = self.json_of(self.target, "export")
        r = self.copy(self.src, self.target)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not empty", r.stderr)
        self.assertIn("--replace", r.stderr)
        self.assertEqual(self.json_of(self.target, "export"), before)
        r = self.copy(self.src, self.target, "--replace")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.json_of(self.target, "export"), self.json_of(self.src, "export"))

    def test_5_the_feed_goes_on_from_the_cursor(self):
        last = self.last_cursor
        r = self.run_hs(self.target, "sync", JOB_PROCESSING, "--all-complete")
        self.assertEqual(r.returncode, 0, r.stderr)
        new = self.json_of(self.target, "export", "--since", last)
        self.assertGreater(new["cursor"], last)
        self.assertEqual({j["id"] for j in new["jobs"]}, {JOB_PROCESSING})
        self.assertTrue(new["models"])
        for kind in ("jobs", "models", "artifacts"):
            self.assertTrue(all(x["change_seq"] > last for x in new[kind]), kind)
        # A follower at the half-way cursor: the source's later rows, then the new ones, once.
        old = self.json_of(self.src, "export", "--since", self.mid_cursor)
        got = self.json_of(self.target, "export", "--since", self.mid_cursor)
        for kind, key in (("jobs", "id"), ("models", "id"), ("artifacts", "sha256")):
            keys = [x[key] for x in got[kind]] if kind != "artifacts" else \
                [(x["model_id"], x["kind"]) for x in got[kind]]
            self.assertEqual(len(keys), len(set(keys)), kind)
        self.assertEqual({j["id"] for j in got["jobs"]},
                         {j["id"] for j in old["jobs"]} | {JOB_PROCESSING})
        self.assertEqual(got["cursor"], new["cursor"])

    def test_6_bad_inputs_change_nothing(self):
        before = sqlite_dump(self.src)
        empty_schema, empty = fresh_schema()
        # A missing source: the target is not even opened.
        r = self.copy(os.path.join(self.dir, "missing.db"), empty)
        self.assertEqual(r.returncode, 1)
        self.assertIn("SOURCE: no store at", r.stderr)
        self.assertEqual(tables_in(empty_schema), [])
        # A database without a store as the source: nothing created in it.
        new_file = os.path.join(self.dir, "never.db")
        r = self.copy(empty, new_file)
        self.assertEqual(r.returncode, 1)
        self.assertIn("holds no hoversync store", r.stderr)
        self.assertEqual(tables_in(empty_schema), [])
        self.assertFalse(os.path.exists(new_file))
        # An unreachable target.
        r = self.copy(self.src, "postgresql://postgres@127.0.0.1:%d/hoversync" % free_port())
        self.assertEqual(r.returncode, 1)
        self.assertIn("TARGET: cannot connect to PostgreSQL", r.stderr)
        # A target whose schema is newer than this hoversync.
        newer_schema, newer = fresh_schema()
        psql("CREATE TABLE %s.schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
             "applied_at timestamptz NOT NULL DEFAULT now()); INSERT INTO %s.schema_migrations "
             "(version, name) VALUES (999, 'from the future')" % (newer_schema, newer_schema))
        r = self.copy(self.src, newer)
        self.assertEqual(r.returncode, 1)
        self.assertIn("TARGET: database schema version 999 is newer than this hoversync",
                      r.stderr)
        self.assertEqual(tables_in(newer_schema), ["schema_migrations"])
        # One store for both.
        r = self.copy(self.src, os.path.join(self.dir, ".", "hoversync.db"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("the same store", r.stderr)
        r = self.run_hs(self.src, "store", "copy", "--from", self.src)
        self.assertEqual(r.returncode, 2)
        self.assertEqual(sqlite_dump(self.src), before)

    def test_7_files_to_object_storage_and_back(self):
        digests = self.digests()
        self.assertGreater(len(digests), 8)
        schema, target = fresh_schema()
        r = self.copy_files(self.src, target, self.data_dir, "s3://%s/moved" % S3_BUCKET)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("copied %d artifact files from %s to s3://%s/moved (0 already there)"
                      % (len(digests), self.data_dir, S3_BUCKET), r.stdout)
        objects = self.objects("moved")
        for sha in digests:
            path = os.path.join(self.data_dir, "blobs", sha[:2], sha[2:4], sha)
            self.assertEqual(objects.get("moved/blobs/%s/%s/%s" % (sha[:2], sha[2:4], sha)),
                             os.path.getsize(path), sha)
        # Served from PostgreSQL and the bucket by an instance whose data folder is empty.
        a = self.serve(None, "--no-workers", db_dir=self.dir)
        b = self.serve(None, "--no-workers", "--db", target, **s3_env(self.sb, "moved"))
        try:
            self.assertFalse(os.path.exists(b.cli.env["HOVERSYNC_DATA_DIR"] + "/blobs"))
            want, got = self.files(a, digests), self.files(b, digests)
            for sha in digests:
                self.assertEqual(want[sha][0], 200, sha)
                self.assertEqual(hashlib.sha256(want[sha][2]).hexdigest(), sha)
                self.assertEqual(got[sha], want[sha], sha)
        finally:
            for svc in (a, b):
                self.assertEqual(svc.stop(), 0, svc.read_stderr()[-3000:])
                svc.cli.cleanup()
        # And back, from the bucket to a new folder beside a new SQLite file.
        back_db, back_dir = os.path.join(self.dir, "back-s3.db"), os.path.join(self.dir, "from-s3")
        r = self.copy_files(target, back_db, "s3://%s/moved" % S3_BUCKET, back_dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("copied %d artifact files" % len(digests), r.stdout)
        got = {}
        for d, _, names in os.walk(os.path.join(back_dir, "blobs")):
            for name in names:
                with open(os.path.join(d, name), "rb") as f:
                    got[name] = hashlib.sha256(f.read()).hexdigest()
        self.assertEqual(got, {sha: sha for sha in digests})
        self.assertEqual(os.listdir(os.path.join(back_dir, "tmp")), [])
        # Again: every file is there with its size, none copied twice.
        r = self.copy_files(target, os.path.join(self.dir, "again.db"),
                            "s3://%s/moved" % S3_BUCKET, back_dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("copied 0 artifact files", r.stdout)
        self.assertIn("(%d already there)" % len(digests), r.stdout)

    def test_8_a_file_missing_from_the_source_stops_the_copy(self):
        partial = os.path.join(self.dir, "partial")
        shutil.copytree(self.data_dir, partial)
        sha = self.digests()[3]
        os.unlink(os.path.join(partial, "blobs", sha[:2], sha[2:4], sha))
        schema, target = fresh_schema()
        r = self.copy_files(self.src, target, partial, "s3://%s/partial" % S3_BUCKET)
        self.assertEqual(r.returncode, 1)
        self.assertIn("lacks a file an artifact row of SOURCE points at", r.stderr)
        self.assertIn(sha, r.stderr)
        self.assertIn("--from-blobs", r.stderr)
        for table in ("jobs", "artifacts", "connections"):
            self.assertEqual(psql("SELECT COUNT(*) FROM %s.%s" % (schema, table)), [["0"]])
        # A folder that is not there is refused before anything is opened.
        r = self.copy_files(self.src, target, os.path.join(self.dir, "nowhere"), partial)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--from-blobs: no folder", r.stderr)


if __name__ == "__main__":
    unittest.main()
