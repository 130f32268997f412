"""Deleting a connection (docs/OPERATIONS.md "Disconnecting an org") through real
processes: `hoversync serve` with its webhook registered at the sandbox, jobs of two orgs synced
into one store, then `hoversync connections delete` (and DELETE /api/connections/{name}):

- without --purge: the token pair, the webhook (deregistered at the sandbox too) and the queued
  work go; the records stay and the records feed shows the job again with disconnected_at; a
  delivery signed with the deleted webhook's secret is refused as unknown and not stored;
- with --purge: the rows go, and the files only that connection held, but a file another
  connection's record holds by the same content stays;
- Hover unreachable: the connection is deleted here all the same and the answer names the
  webhook left at Hover."""
import json
import os
import sqlite3
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (JOB_ALL_COMPLETE, MAIN_ORG, SLOW, Cli, Sandbox, Service,  # noqa: E402
                     free_port, http_request)
from test_webhooks_intake import signed  # noqa: E402

SECOND_ORG = 471122
A, B = "org-%d" % MAIN_ORG, "org-%d" % SECOND_ORG


class Disconnect(unittest.TestCase):
    def setUp(self):
        self.sb = Sandbox("--rate-limit", "0", jobs=60)
        port = free_port()
        self.svc = Service(self.sb, self.sb.tokens(), connection=A,
                           args=["--listen", "127.0.0.1:%d" % port, "--rate-limit", 0,
                                 "--no-workers"],
                           HOVERSYNC_PUBLIC_URL="http://127.0.0.1:%d" % port)
        self.cli = self.svc.cli
        r = self.cli.run("webhooks", "register", "--wait", 20 * SLOW, "--json",
                         timeout=60 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr + self.svc.read_stderr())
        self.webhook_id = json.loads(r.stdout)["id"]
        self.secret = self.cli.sql("SELECT hmac_secret FROM webhooks")[0][0]
        self.sync(self.cli, JOB_ALL_COMPLETE)
        # The second org in the same store, through its own connection.
        self.cli_b = Cli(self.sb, self.sb.tokens(SECOND_ORG), HOVERSYNC_CONNECTION=B,
                         HOVERSYNC_DB=self.cli.db,
                         HOVERSYNC_DATA_DIR=self.cli.env["HOVERSYNC_DATA_DIR"])
        self.job_b = self.job_of(SECOND_ORG)
        self.sync(self.cli_b, self.job_b)

    def tearDown(self):
        rc, err = self.svc.stop(), self.svc.read_stderr()
        self.svc.cleanup()
        self.cli_b.cleanup()
        self.sb.stop()
        self.assertEqual(rc, 0, err[-3000:])

    def sync(self, cli, job):
        r = cli.run("sync", job, "--all-complete", "--rate-limit", 0, "--json",
                    timeout=120 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr)

    def job_of(self, org):
        tok = self.sb.tokens(org)["access_token"]
        jobs = http_request(self.sb.port, "GET", "/api/v3/jobs?per=50&reconstruction_state="
                            "completed", headers={"Authorization": "Bearer " + tok}).json
        return next(j["id"] for j in jobs["results"] if j["deliverable_id"] == 3)

    def count(self, sql):
        return self.cli.sql(sql)[0][0]

    def files(self, where):
        return [r[0] for r in self.cli.sql("SELECT DISTINCT a.path FROM artifacts a JOIN models "
                                           "m ON m.id = a.model_id JOIN jobs j ON j.id = "
                                           "m.job_id WHERE " + where)]

    def exists(self, rel):
        return os.path.exists(os.path.join(self.cli.env["HOVERSYNC_DATA_DIR"], rel))

    def sandbox_hook(self):
        return next(h for h in self.sb.admin("GET", "webhooks")["webhooks"]
                    if h["id"] == self.webhook_id)

    def test_delete_keeps_records_marked_and_refuses_later_deliveries(self):
        cursor = json.loads(self.cli.run("export", "--json").stdout)["cursor"]
        a_rows = self.count("SELECT COUNT(*) FROM artifacts")
        r = self.cli.run("connections", "delete", A, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual(out["webhooks_deregistered"], 1)
        self.assertEqual(out["webhooks_not_deregistered"], [])
        self.assertEqual(out["jobs"], 1)
        self.assertFalse(out["purged"])
        # Hover (the sandbox) no longer has the webhook; nothing of the org's grant is here.
        self.assertTrue(self.sandbox_hook()["deleted"])
        self.assertEqual(self.count("SELECT COUNT(*) FROM oauth_tokens WHERE connection_key = "
                                    "'%s'" % A), 0)
        self.assertEqual(self.count("SELECT COUNT(*) FROM webhooks"), 0)
        listed = [c["name"] for c in self.cli.json("connections", "list")["connections"]]
        self.assertEqual(listed, [B])
        # The records stay; the feed shows the job again, marked; the other org's is not.
        self.assertEqual(self.count("SELECT COUNT(*) FROM artifacts"), a_rows)
        feed = json.loads(self.cli.run("export", "--since", cursor, "--json").stdout)
        self.assertEqual([j["id"] for j in feed["jobs"]], [JOB_ALL_COMPLETE])
        self.assertIsNotNone(feed["jobs"][0]["disconnected_at"])
        # A delivery signed with the deleted webhook's secret: unknown, nothing stored.
        events = self.count("SELECT COUNT(*) FROM webhook_events")
        body = json.dumps({"event": "job-state-changed-v2", "webhook_id": self.webhook_id,
                           "job_id": JOB_ALL_COMPLETE, "state": "completed"}).encode()
        resp = http_request(self.svc.port, "POST", "/webhooks/hover", body,
                            signed(self.secret, self.webhook_id, body))
        self.assertEqual(resp.status, 401, resp.body)
        self.assertEqual(self.count("SELECT COUNT(*) FROM webhook_events"), events)
        self.assertEqual(self.count("SELECT COUNT(*) FROM work_items"), 0)
        # The service no longer offers the org; a second delete finds nothing.
        conns = [c["key"] for c in self.svc.get("/api/connections").json]
        self.assertNotIn(A, conns)
        self.assertEqual(self.cli.run("connections", "delete", A).returncode, 1)

    def test_purge_removes_rows_and_only_its_own_files(self):
        a_files = self.files("j.id = %d" % JOB_ALL_COMPLETE)
        b_files = self.files("j.id = %d" % self.job_b)
        self.assertTrue(a_files and b_files)
        self.assertTrue(all(self.exists(p) for p in a_files + b_files))
        # One of A's files is held by the same content by a record of B too (as when both
        # orgs hold the same bytes).
        shared = a_files[0]
        b_model = self.cli.sql("SELECT id FROM models WHERE job_id = %d" % self.job_b)[0][0]
        con_sql = ("INSERT INTO artifacts (model_id, kind, sha256, bytes, content_type, path, "
                   "change_seq) SELECT %d, 'shared.pdf', sha256, bytes, content_type, path, "
                   "change_seq FROM artifacts WHERE path = '%s' LIMIT 1" % (b_model, shared))
        con = sqlite3.connect(self.cli.db)
        con.execute(con_sql)
        con.commit()
        con.close()
        # The files were written a moment ago; a purge removes only those not written or reused
        # in the last minute (a sync of another org may be about to point at such a file): all
        # but one are made older, the recent one stays for the collector.
        own = sorted(set(a_files) - {shared})
        self.assertGreater(len(own), 1)
        recent = own[0]
        for rel in own[1:] + [shared]:
            full = os.path.join(self.cli.env["HOVERSYNC_DATA_DIR"], rel)
            old = os.stat(full).st_mtime - 3600
            os.utime(full, (old, old))
        r = self.svc.request("DELETE", "/api/connections/%s?purge=true" % A)
        self.assertEqual(r.status, 200, r.body)
        self.assertTrue(r.json["purged"])
        self.assertEqual(r.json["webhooks_deregistered"], 1)
        self.assertEqual(r.json["files_removed"], len(own) - 1)
        self.assertTrue(self.exists(recent), "a file written within the minute is the collector's")
        self.assertTrue(self.sandbox_hook()["deleted"])
        for table, where in (("jobs", "id = %d" % JOB_ALL_COMPLETE),
                             ("models", "job_id = %d" % JOB_ALL_COMPLETE),
                             ("selections", "job_id = %d" % JOB_ALL_COMPLETE),
                             ("sync_runs", "job_id = %d" % JOB_ALL_COMPLETE),
                             ("oauth_tokens", "connection_key = '%s'" % A)):
            self.assertEqual(self.count("SELECT COUNT(*) FROM %s WHERE %s" % (table, where)), 0,
                             table)
        self.assertEqual(self.count("SELECT COUNT(*) FROM artifacts a LEFT JOIN models m ON "
                                    "m.id = a.model_id WHERE m.id IS NULL"), 0)
        # A's own files are gone; the shared one and B's stay.
        self.assertFalse(any(self.exists(p) for p in own[1:]))
        self.assertTrue(self.exists(shared))
        self.assertTrue(all(self.exists(p) for p in b_files))
        self.assertEqual(self.count("SELECT COUNT(*) FROM jobs WHERE id = %d" % self.job_b), 1)

    def test_hover_unreachable_still_deletes_here(self):
        self.sb.fault(path="/api/v2/webhooks", method="DELETE", status=503, count=100)
        r = self.cli.run("connections", "delete", A, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual(out["webhooks_not_deregistered"], [self.webhook_id])
        self.assertIsNotNone(out["hover_error"])
        self.assertIn("could not be deregistered", r.stderr)
        self.assertFalse(self.sandbox_hook()["deleted"])
        self.assertEqual(self.count("SELECT COUNT(*) FROM webhooks"), 0)
        self.assertEqual(self.count("SELECT COUNT(*) FROM connections WHERE key = '%s'" % A), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
