"""What an operator's tools read from a running `hoversync serve`:

- `--log-format json`: after a few requests of every kind (search, a job, a sync and its
  progress, a refused webhook delivery, errors), every line of stderr is one JSON object with
  `time` (RFC 3339 UTC, milliseconds), `level` and `msg`, the fields as string members, and no
  secret (the API key, the OAuth client secret, the tokens) anywhere;
- `/metrics` after that kind of traffic passes `promtool check metrics` (Debian's prometheus
  package), counts the routes the traffic took, and has the webhook side's series (their
  movement is test_lifecycle.py's)."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import JOB_ALL_COMPLETE  # noqa: E402

TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def traffic(svc):
    """A little of everything the service answers; returns the sync's final state and the
    status of the refused webhook delivery."""
    assert svc.get("/healthz").status == 200
    assert svc.get("/api/jobs?q=meadow").status == 200
    job = svc.get("/api/jobs/%d" % JOB_ALL_COMPLETE)
    assert job.status == 200, job.body
    model = job.json["models"][0]["id"]
    r = svc.request("POST", "/api/syncs", {"job_id": JOB_ALL_COMPLETE, "model_ids": [model]})
    assert r.status == 202, r.body
    sync_id = r.json["id"]
    deadline = time.time() + 60
    state = None
    while time.time() < deadline:
        state = svc.get("/api/syncs/" + sync_id).json
        if state["status"] in ("done", "failed"):
            break
        time.sleep(0.1)
    assert svc.get("/api/syncs/%s/events" % sync_id).status == 200
    assert svc.get("/api/records?since=0").status == 200
    assert svc.get("/api/jobs/1", key="Bearer wrong-key-0123456789").status == 401
    assert svc.get("/no/such/route").status == 404
    hook = svc.request("POST", "/webhooks/hover", {"event": "job-state-changed-v2"}, key=False,
                       headers={"Authorization": "APIAuth 1:c2lnbmF0dXJl",
                                "Date": "Mon, 01 Jan 2024 00:00:00 GMT"})
    assert hook.status in (400, 401), hook.body
    return state, hook.status


class JsonLogs(unittest.TestCase):
    def test_every_line_is_a_json_object_without_secrets(self):
        sb = harness.Sandbox(jobs=10)
        tokens = sb.tokens()
        svc = harness.Service(sb, tokens, args=["--log-format", "json", "--log-level", "debug"])
        try:
            state, _ = traffic(svc)
            self.assertEqual(state["status"], "done", state)
        finally:
            self.assertEqual(svc.stop(), 0)
            text = svc.read_stderr()
            svc.cleanup()
            sb.stop()
        lines = text.splitlines()
        self.assertGreater(len(lines), 10, text[-3000:])
        seen_keys = set()
        for line in lines:
            try:
                o = json.loads(line)
            except ValueError as e:
                self.fail("not a JSON object (%s): %r" % (e, line))
            self.assertIsInstance(o, dict, line)
            self.assertEqual(list(o)[:3], ["time", "level", "msg"], line)
            self.assertRegex(o["time"], TIME)
            self.assertIn(o["level"], ("debug", "info", "warn", "error"))
            self.assertTrue(o["msg"], line)
            for k, v in o.items():
                self.assertIsInstance(v, str, "%s in %s" % (k, line))
            seen_keys.update(o)
        # The fields of today's lines are members of their own.
        self.assertIn("job", seen_keys)
        self.assertIn("status", seen_keys)
        for secret in (svc.api_key, harness.CLIENT_SECRET, tokens["access_token"],
                       tokens["refresh_token"]):
            self.assertNotIn(secret, text)


class Metrics(unittest.TestCase):
    def test_promtool_accepts_metrics_after_traffic(self):
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool is missing: scripts/install-deps.sh --test "
                             "installs Debian's prometheus package")
        sb = harness.Sandbox(jobs=10)
        svc = harness.Service(sb, sb.tokens())
        try:
            _, hook = traffic(svc)
            # The sync's progress is in the store when its worker commits; the worker counts
            # it in the process's counters a moment later.
            def counted():
                m = svc.get("/metrics", key=False)
                return m if re.search(r'hoversync_syncs_total\{result="done"\} 1\b',
                                      m.body.decode()) else None

            r = harness.wait_for("the sync counted in /metrics", counted, timeout=10)
            self.assertEqual(r.status, 200)
            self.assertTrue(r.header("Content-Type").startswith("text/plain; version=0.0.4"))
        finally:
            svc.stop()
            svc.cleanup()
            sb.stop()
        p = subprocess.run([promtool, "check", "metrics"], input=r.body, capture_output=True,
                           timeout=60)
        self.assertEqual(p.returncode, 0, (p.stdout + p.stderr).decode())
        text = r.body.decode()
        for route, status in (("/api/jobs/{id}", "200"), ("/api/syncs", "202"),
                              ("unmatched", "404"), ("/webhooks/hover", str(hook))):
            self.assertRegex(text, r'hoversync_http_requests_total\{route="%s",status="%s"\} [1-9]'
                             % (re.escape(route), status))
        self.assertRegex(text, r"hoversync_syncs_total\{result=\"done\"\} 1\b")
        # The webhook side's series, typed as Prometheus expects (promtool checked them above):
        # the refused delivery counted by its result, its intake time, and the store's queues.
        refused = "malformed" if hook == 400 else "bad_signature"
        self.assertRegex(text, r'hoversync_webhook_events_total\{result="%s"\} 1\b' % refused)
        for name, kind in (("hoversync_webhook_events_total", "counter"),
                           ("hoversync_webhook_intake_duration_seconds", "histogram"),
                           ("hoversync_work_items_due", "gauge"),
                           ("hoversync_work_items", "gauge"),
                           ("hoversync_work_oldest_due_age_seconds", "gauge"),
                           ("hoversync_outbox_backlog_messages", "gauge"),
                           ("hoversync_outbox_delivery_attempts_total", "counter"),
                           ("hoversync_budget_background_requests_total", "counter"),
                           ("hoversync_budget_background_wait_seconds_total", "counter"),
                           ("hoversync_budget_background_waiting", "gauge")):
            self.assertIn("# TYPE %s %s\n" % (name, kind), text)
        self.assertRegex(text, r"hoversync_webhook_intake_duration_seconds_count [1-9]")


if __name__ == "__main__":
    unittest.main(verbosity=2)
