"""Artifacts in S3-compatible object storage (--blobs s3://...), against the sandbox's S3
listener, which checks every signature: a CLI sync stores the files as objects (large ones in
parts) and nothing under the data directory; an upload that keeps failing leaves no row; `serve`
streams /files from the bucket, or redirects to a presigned URL; two `serve` on separate data
directories, sharing the store and the bucket, serve each other's files and images."""
import hashlib
import http.client
import os
import shutil
import sys
import tempfile
import threading
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SLOW, JOB_ALL_COMPLETE, Cli, Sandbox, Service, wait_for  # noqa: E402

KEY, SECRET, BUCKET = harness.S3_KEY, harness.S3_SECRET, harness.S3_BUCKET
HOUSE = 17338401  # a complete model of JOB_ALL_COMPLETE


def s3_env(sb, prefix="fleet"):
    return harness.s3_env(sb, prefix, part_size=1024)  # larger files go up in parts


def files_under(path):
    return [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs]


class ObjectStorage(unittest.TestCase):
    def setUp(self):
        self.sb = Sandbox("--s3-listen", "127.0.0.1:0", "--s3-bucket", BUCKET,
                          "--s3-min-part-size", "1K", jobs=20)
        self.tmp = tempfile.mkdtemp(prefix="hs-objects-")

    def tearDown(self):
        self.sb.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def objects(self):
        """{key: size} of the bucket, from the sandbox's own view of its store."""
        store = self.sb.admin("GET", "s3")
        return {o["key"]: o["size"] for b in store["buckets"] if b["name"] == BUCKET
                for o in b["objects"]}

    def test_cli_sync_stores_objects_not_files(self):
        data = os.path.join(self.tmp, "data")
        # every artifact: small ones go up whole, larger ones in parts
        cli = Cli(self.sb, self.sb.tokens(), HOVERSYNC_DATA_DIR=data, HOVERSYNC_LOG_LEVEL="debug",
                  HOVERSYNC_ARTIFACTS="all", **s3_env(self.sb))
        try:
            r = cli.run("sync", JOB_ALL_COMPLETE, "--all-complete", "--json")
            self.assertEqual(r.returncode, 0, r.stderr)
            rows = cli.sql("SELECT path, bytes, sha256 FROM artifacts")
            self.assertGreater(len(rows), 3)
            objects = self.objects()
            for path, size, sha in rows:
                self.assertTrue(path.endswith(sha))
                self.assertEqual(objects.get("fleet/" + path), size, path)
            self.assertTrue(any(size > 1024 for _, size, _ in rows), "no multipart upload")
            ops = {e.get("op") for e in self.sb.requests() if e.get("listener") == "s3"}
            self.assertIn("UploadPart", ops)
            self.assertIn("PutObject", ops)
            # The data directory holds downloads in progress only: none are left.
            self.assertEqual(files_under(data), [])
            self.assertNotIn(SECRET, r.stderr)
            # A second run finds every object in place and uploads nothing.
            before = len(self.sb.requests())
            r = cli.run("sync", JOB_ALL_COMPLETE, "--all-complete", "--json")
            self.assertEqual(r.returncode, 0, r.stderr)
            ops = [e.get("op") for e in self.sb.requests()[before:] if e.get("listener") == "s3"]
            self.assertNotIn("PutObject", ops)
            self.assertNotIn("UploadPart", ops)
        finally:
            cli.cleanup()

    def test_failing_storage_leaves_no_row(self):
        """Object storage that answers 500 to every upload and drops every part: the sync fails
        saying so, no row points at an object that is not there, and a later run stores
        everything."""
        cli = Cli(self.sb, self.sb.tokens(), HOVERSYNC_DATA_DIR=os.path.join(self.tmp, "d"),
                  HOVERSYNC_MAX_ATTEMPTS="2", HOVERSYNC_ARTIFACTS="all", **s3_env(self.sb))
        try:
            self.sb.fault(op="PutObject", status=500)
            self.sb.fault(op="UploadPart", drop=True)
            r = cli.run("sync", JOB_ALL_COMPLETE, "--model", HOUSE, "--json")
            self.assertNotEqual(r.returncode, 0)
            self.assertRegex(r.stderr, r"sync: .*(PutObject .*InternalError|UploadPart .*Empty reply)")
            self.assertEqual(cli.sql("SELECT COUNT(*) FROM artifacts")[0][0], 0)
            self.assertEqual(self.objects(), {})
            self.sb.clear_faults()
            r = cli.run("sync", JOB_ALL_COMPLETE, "--model", HOUSE, "--json")
            self.assertEqual(r.returncode, 0, r.stderr)
            objects = self.objects()
            rows = cli.sql("SELECT path, bytes FROM artifacts")
            self.assertGreater(len(rows), 0)
            for path, size in rows:
                self.assertEqual(objects.get("fleet/" + path), size)
        finally:
            cli.cleanup()

    def test_downloads_are_checked_before_upload(self):
        """A PDF cut short by Hover's storage host but sent as complete: the download's checks
        (its digest against the ETag, its format) fail it before it is uploaded, so no object
        and no row."""
        cli = Cli(self.sb, self.sb.tokens(), HOVERSYNC_DATA_DIR=os.path.join(self.tmp, "d"),
                  HOVERSYNC_MAX_ATTEMPTS="2", **s3_env(self.sb))
        try:
            self.sb.fault(path="/storage/*", malformed=True)
            r = cli.run("sync", JOB_ALL_COMPLETE, "--model", HOUSE, "--json")
            self.assertNotEqual(r.returncode, 0)
            self.assertRegex(r.stderr, r"measurements\.pdf: .*(does not match its ETag|%%EOF)")
            pdfs = cli.sql("SELECT COUNT(*) FROM artifacts WHERE kind = 'measurements.pdf'")
            self.assertEqual(pdfs[0][0], 0)
            stored = {path for path, in cli.sql("SELECT path FROM artifacts")}
            self.assertEqual(set(self.objects()), {"fleet/" + p for p in stored})
        finally:
            cli.cleanup()

    def test_two_serves_share_files_streamed_and_redirected(self):
        env = s3_env(self.sb)
        a = Service(self.sb, self.sb.tokens(), **env)
        b = c = None
        try:
            r = a.request("POST", "/api/syncs", {"job_id": JOB_ALL_COMPLETE, "model_ids": [HOUSE]})
            self.assertEqual(r.status, 202, r.body)
            sync_id = r.json["id"]

            def finished():
                st = a.get("/api/syncs/" + sync_id).json
                return st if st["status"] in ("done", "failed") else None
            st = wait_for("the sync", finished, timeout=90)
            self.assertEqual(st["result"], "synced", st)
            pdf = st["records"]["pdf"]
            sha = pdf.split("/")[-1]
            self.assertEqual(files_under(os.path.join(a.dir, "data", "blobs")), [])

            # Another instance, its own data directory (another machine), the same store and
            # bucket: streamed from the bucket.
            other = os.path.join(self.tmp, "other-data")
            b = Service(self.sb, None, db_dir=a.dir, args=("--data-dir", other), **env)
            for svc in (a, b):
                r = svc.get(pdf)
                self.assertEqual(r.status, 200, r.body)
                self.assertEqual(r.header("Content-Type"), "application/pdf")
                self.assertEqual(r.header("ETag"), '"%s"' % sha)
                self.assertEqual(hashlib.sha256(r.body).hexdigest(), sha)
                self.assertEqual(svc.get(pdf, headers={"If-None-Match": '"%s"' % sha}).status,
                                 304)
            self.assertFalse(os.path.exists(os.path.join(other, "blobs")))

            # An image of a job one instance showed: served by both from the bucket (stored by
            # whichever fetched it first from Hover: a route, or a sync in the background).
            r = a.get("/api/jobs/%d" % JOB_ALL_COMPLETE)
            self.assertEqual(r.status, 200, r.body)
            image = [i["url"] for m in r.json["models"] if m["id"] != HOUSE
                     for i in m["images"]][0]
            first = b.get(image)
            self.assertEqual(first.status, 200, first.body)
            self.assertTrue(first.header("Content-Type").startswith("image/"))
            again = a.get(image)
            self.assertEqual((again.status, again.body), (200, first.body))
            digest = hashlib.sha256(first.body).hexdigest()
            self.assertIn("fleet/blobs/%s/%s/%s" % (digest[:2], digest[2:4], digest),
                          self.objects())
            for d in (os.path.join(a.dir, "data"), other):
                self.assertEqual(files_under(os.path.join(d, "blobs")), [])

            # The store fails in the middle of an answer: the client sees the answer end before
            # its Content-Length, never a complete-looking file.
            self.sb.fault(op="GetObject", status=500)
            with self.assertRaises((http.client.HTTPException, ConnectionError)):
                b.get(pdf)
            self.sb.clear_faults()
            self.assertIn("stored file stream failed", b.read_stderr())

            # The store failing before an answer starts: a 503 that names the artifact store,
            # not Hover, and says when to come back.
            self.sb.fault(op="HeadObject", status=503, count=100)
            r = b.get(pdf)
            self.sb.clear_faults()
            self.assertEqual(r.status, 503, r.body)
            self.assertEqual(r.json["error"]["code"], "storage_unavailable")
            self.assertIn("artifact store", r.json["error"]["message"])
            self.assertIsNotNone(r.header("Retry-After"))

            # With redirects: a presigned URL, fetched without any credential.
            c = Service(self.sb, None, db_dir=a.dir,
                        args=("--data-dir", os.path.join(self.tmp, "third"),
                              "--blobs-redirect", "300"), **env)
            r = c.get(pdf)
            self.assertEqual(r.status, 302, r.body)
            loc = r.header("Location")
            self.assertTrue(loc.startswith("http://127.0.0.1:%d/%s/fleet/blobs/"
                                           % (self.sb.s3_port, BUCKET)), loc)
            self.assertIn("X-Amz-Signature=", loc)
            self.assertNotIn(SECRET, loc)
            with urllib.request.urlopen(loc, timeout=30) as got:
                body = got.read()
                self.assertEqual(got.headers["Content-Type"], "application/pdf")
            self.assertEqual(hashlib.sha256(body).hexdigest(), sha)
            for svc in (c, b, a):  # a clean exit (and, in the sanitizer build, no leak)
                self.assertEqual(svc.stop(), 0, svc.read_stderr())
        finally:
            for svc in (c, b, a):
                if svc:
                    svc.stop()
                    svc.cleanup()

    def synced_pdf(self, svc):
        """Syncs HOUSE through svc; the /files path of its PDF."""
        r = svc.request("POST", "/api/syncs", {"job_id": JOB_ALL_COMPLETE, "model_ids": [HOUSE]})
        self.assertEqual(r.status, 202, r.body)
        sync_id = r.json["id"]

        def finished():
            st = svc.get("/api/syncs/" + sync_id).json
            return st if st["status"] in ("done", "failed") else None
        st = wait_for("the sync", finished, timeout=90)
        self.assertEqual(st["result"], "synced", st)
        return st["records"]["pdf"]

    def test_slow_storage_holds_up_no_other_request(self):
        """Eight downloads wait on a slow storage (more than the service's request threads):
        the service still answers other requests meanwhile, and then every download whole."""
        svc = Service(self.sb, self.sb.tokens(), **s3_env(self.sb))
        try:
            pdf = self.synced_pdf(svc)
            sha = pdf.split("/")[-1]
            self.sb.fault(op="GetObject", latency_ms=4000 * SLOW)
            results = []

            def download():
                r = svc.get(pdf)
                results.append((r.status, hashlib.sha256(r.body).hexdigest()))
            threads = [threading.Thread(target=download) for _ in range(8)]
            for t in threads:
                t.start()

            def answered():  # the eight answers' headers went out; their bodies wait
                m = svc.get("/metrics", key=False).body.decode()
                line = 'hoversync_http_requests_total{route="/files/{sha256}",status="200"} '
                return any(x.startswith(line) and int(x.split()[-1]) >= 8
                           for x in m.splitlines())
            wait_for("the downloads to be answered", answered)
            self.assertEqual(svc.get("/healthz", key=False).status, 200)
            self.assertEqual(results, [])  # all still waiting on the storage
            for t in threads:
                t.join(60 * SLOW)
            self.assertEqual(results, [(200, sha)] * 8)
            self.assertEqual(svc.stop(), 0, svc.read_stderr())
        finally:
            svc.stop()
            svc.cleanup()

    def test_bad_settings_are_refused(self):
        cli = Cli(self.sb, None, HOVERSYNC_DATA_DIR=os.path.join(self.tmp, "d"))
        try:
            r = cli.run("--blobs", "s3://hoversync/x", "status")
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("AWS_ACCESS_KEY_ID", r.stderr)
            r = cli.run("--blobs", "/some/dir", "status")
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("s3://", r.stderr)
            cli.env.update(AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET)
            r = cli.run("--blobs", "s3://Not_A_Bucket/x", "status")
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("bucket", r.stderr)
            r = cli.run("config", "show")
            self.assertNotIn(SECRET, r.stdout + r.stderr)
        finally:
            cli.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
