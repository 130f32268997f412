#!/usr/bin/python3
"""A fleet on one PostgreSQL database (docs/SCALING.md), through real processes on loopback:
three `hoversync serve --no-workers` instances and two `hoversync worker` processes on the
database of tests/support/pg_cluster.sh and one shared data folder, behind a round-robin load
balancer (a small HTTP forwarder in this test: Hover's deliveries go to the instances in turn,
a dead instance answers 502 as a load balancer would, and Hover retries).

The sandbox makes test jobs (3 models, some with failed ones) with chaos on its deliveries:
duplicates, reordering and drops (reconciliation, a duty leased across the fleet, finds the jobs
whose events were all lost). Meanwhile a random instance or worker is killed with SIGKILL every
few seconds and started again, and PostgreSQL itself is restarted once. At the end:

- every complete model of every test job synced exactly once (one `synced` result), failed ones
  never downloaded, no artifact row twice;
- one download per artifact, unless a kill or the restart of PostgreSQL fell between two of its
  downloads (the sandbox's request log);
- every event accepted by any instance processed, none left in the queue;
- one CRM notification per change of a job (distinct idempotency keys, chained cursors), every
  one acknowledged; the same key twice only across a kill or the restart;
- no 429 from the sandbox: the five processes book one request budget in the database.

With HS_FLEET_BLOBS=s3 (meson test `fleet-s3`, through test_fleet_s3.py) the same fleet runs as
if on five machines: each process has a data folder of its own and keeps the artifact files in
object storage (--blobs s3://..., the sandbox's S3 listener, which checks every signature). Then
also: every artifact row's object is in the bucket with its size, no instance holds a file in its
own folder, and each instance serves /files of every artifact (all synced by the workers, other
processes) with the bytes of its digest.

Run by meson through tests/support/pg_cluster.sh (HS_TEST_PG_URL, HS_TEST_PG_RESTART); without
that cluster it says so and exits 77 (skipped). Standard library and psql."""
import hashlib
import http.client
import http.server
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import (CLIENT_ID, HOVERSYNC_BIN, MAIN_ORG, S3_ARGS, S3_BUCKET, SLOW,  # noqa: E402
                     Sandbox, Service, s3_env, wait_for)
from test_webhooks_e2e import SECRET, Crm  # noqa: E402

PG_URL = os.environ.get("HS_TEST_PG_URL")
PG_RESTART = os.environ.get("HS_TEST_PG_RESTART")
# The sandbox's limit a minute, and the fleet's budget: the work below needs more than a minute of
# it, so the budget is used in full while processes die and the database restarts.
RATE = 300
JOBS = 12
SEED = int(os.environ.get("HS_FLEET_SEED", "14"))
# Where the artifact files go: "folder" (one data folder for the fleet) or "s3" (a data folder per
# process, the files in the sandbox's bucket under the prefix "fleet").
BLOBS = os.environ.get("HS_FLEET_BLOBS", "folder")


def pg(query):
    """Rows of a query on the fleet's database (psql, as a CRM's tools would read it)."""
    r = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", PG_URL,
                        "-c", query], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("psql: %s: %s" % (query, r.stderr))
    return [tuple(line.split("\t")) for line in r.stdout.splitlines()]


def busiest(ts_ms, window_ms):
    """The most of the moments ts_ms (ms) in any window of window_ms."""
    ts = sorted(ts_ms)
    best, i = 0, 0
    for k in range(len(ts)):
        while ts[k] - ts[i] >= window_ms:
            i += 1
        best = max(best, k - i + 1)
    return best


class Balancer:
    """Round-robin HTTP forwarder to `backends` (ports of 127.0.0.1): one request each in turn;
    a backend that cannot be reached gives 502 (Hover retries the delivery)."""

    def __init__(self, backends):
        self.backends = backends
        self.lock = threading.Lock()
        self.turn = 0
        self.answers = {}  # (backend index, status) -> count
        lb = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lb.lock:
                    i = lb.turn % len(lb.backends)
                    lb.turn += 1
                    port = lb.backends[i]
                hdrs = {k: v for k, v in self.headers.items()
                        if k.lower() not in ("host", "connection", "content-length")}
                status, out = 502, b""
                try:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=9)
                    c.request("POST", self.path, body=body, headers=hdrs)
                    r = c.getresponse()
                    status, out = r.status, r.read()
                    c.close()
                except (OSError, http.client.HTTPException):
                    pass
                with lb.lock:
                    lb.answers[(i, status)] = lb.answers.get((i, status), 0) + 1
                self.send_response(status)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Fleet:
    """The sandbox, a CRM endpoint, the balancer, 3 serves and 2 workers on PG_URL and one data
    folder, or (blobs "s3") a data folder per process and the files in the sandbox's bucket. Also
    used by bench/fleet_intake.py (db None: a SQLite file in the shared folder)."""

    def __init__(self, sb, db=PG_URL, serves=3, workers=2, reconcile=3, rate=RATE,
                 blobs="folder"):
        self.sb = sb
        self.blobs = blobs
        self.dir = tempfile.mkdtemp(prefix="hs-fleet-")
        self.db = db or os.path.join(self.dir, "hoversync.db")
        self.logs = os.path.join(self.dir, "logs")
        os.mkdir(self.logs)
        self.crm = Crm()
        self.tokens = sb.tokens()
        self.ports = [0] * serves
        self.lb = Balancer(self.ports)
        self.rate = rate
        self.reconcile = reconcile
        self.serves = [None] * serves
        self.workers = [None] * workers
        self.starts = 0
        # The first process seeds the connection's tokens; the others read them from the store.
        for i in range(serves):
            self.start_serve(i, tokens=self.tokens if i == 0 else None)
        for i in range(workers):
            self.start_worker(i)

    def common_args(self, name):
        """The arguments of every process: every artifact (--artifacts all: the downloads checked
        are one per artifact and photo); with object storage, the data folder of `name`."""
        own = ["--data-dir", self.data_dir(name)] if self.blobs == "s3" else []
        return ["--db", self.db, "--rate-limit", self.rate, "--crm-endpoint", self.crm.url,
                "--reconcile-interval", self.reconcile, "--pending-interval", 0, "--artifacts", "all", *own]

    def data_dir(self, name):
        return os.path.join(self.dir, "data-" + name if self.blobs == "s3" else "data")

    def start_serve(self, i, tokens=None):
        listen = ["--listen", "127.0.0.1:%d" % self.ports[i]] if self.ports[i] else []
        s3 = s3_env(self.sb) if self.blobs == "s3" else {}
        svc = Service(self.sb, tokens, db_dir=self.dir,
                      args=[*self.common_args("serve%d" % i), "--no-workers", "--public-url",
                            self.lb.url, *listen],
                      HOVERSYNC_CRM_SECRET=SECRET, HOVERSYNC_LOG_LEVEL="info", **s3)
        self.ports[i] = svc.port
        self.serves[i] = svc
        self.starts += 1

    def start_worker(self, i):
        env = {k: v for k, v in self.serves[0].cli.env.items()
               if k not in ("HOVER_ACCESS_TOKEN", "HOVER_REFRESH_TOKEN")}
        env.update(HOVERSYNC_CRM_SECRET=SECRET, HOVERSYNC_OUTBOX_RETRY_BASE_MS="100",
                   HOVERSYNC_LOG_LEVEL="info")
        err = open(os.path.join(self.logs, "worker%d.stderr" % i), "a")
        proc = subprocess.Popen([HOVERSYNC_BIN, "worker",
                                 *map(str, self.common_args("worker%d" % i))],
                                env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        err.close()
        line = proc.stdout.readline().strip()
        if line != "hoversync worker running":
            raise AssertionError("worker %d did not start: %r" % (i, line))
        self.workers[i] = proc
        self.starts += 1

    def names(self):
        return ["serve%d" % i for i in range(len(self.serves))] + \
            ["worker%d" % i for i in range(len(self.workers))]

    def kill(self, name):
        """SIGKILL of one process, then the same one started again."""
        i = int(name[-1])
        if name.startswith("serve"):
            svc = self.serves[i]
            svc.proc.send_signal(signal.SIGKILL)
            svc.proc.wait()
            self.keep_log(svc, name)
            svc.stop()
            svc.cleanup()
            self.start_serve(i)
        else:
            proc = self.workers[i]
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
            self.start_worker(i)

    def keep_log(self, svc, name):
        with open(os.path.join(self.logs, name + ".stderr"), "a") as f:
            f.write(svc.read_stderr())

    def register(self):
        svc = self.serves[0]
        r = svc.cli.run("webhooks", "register", "--db", self.db, "--public-url", self.lb.url,
                        "--wait", 20 * SLOW, "--json", timeout=60 * SLOW)
        if r.returncode != 0:
            raise AssertionError("register: %s %s %s" % (r.returncode, r.stdout, r.stderr))
        return json.loads(r.stdout)

    def log_text(self):
        """Every process's log so far, the killed ones' included."""
        for i, svc in enumerate(self.serves):
            if svc:
                self.keep_log(svc, "serve%d.now" % i)
        text = ""
        for f in sorted(os.listdir(self.logs)):
            with open(os.path.join(self.logs, f)) as fh:
                text += fh.read()
            if f.endswith(".now.stderr"):
                os.unlink(os.path.join(self.logs, f))
        return text

    def stop(self):
        """SIGTERM to every process still running; their exit statuses by name (once)."""
        codes = {}
        for i, proc in enumerate(self.workers):
            if proc:
                if proc.poll() is None:
                    proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                proc.stdout.close()
                codes["worker%d" % i] = proc.returncode
                self.workers[i] = None
        for i, svc in enumerate(self.serves):
            if svc:
                codes["serve%d" % i] = svc.stop()
                self.keep_log(svc, "serve%d" % i)
                svc.cleanup()
                self.serves[i] = None
        if self.lb:
            self.lb.stop()
            self.crm.stop()
            self.lb = None
        return codes

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def reconcile_from_now(sb, db):
    """Migrates the store and starts reconciliation now, not an hour back (which would sync the
    sandbox's other jobs: a fresh install does that, but it is not this test's point)."""
    from harness import Cli
    prep = Cli(sb, HOVERSYNC_DB=db)
    r = prep.run("export", "--since", "0")
    prep.cleanup()
    if r.returncode != 0:
        raise AssertionError("export: " + r.stderr)
    pg("INSERT INTO checkpoints (name, value, updated_at) VALUES ('reconcile:org-%d', '%d', "
       "now())" % (MAIN_ORG, int(time.time()) - 2))


@unittest.skipUnless(PG_URL, "needs tests/support/pg_cluster.sh")
class FleetTest(unittest.TestCase):
    def setUp(self):
        self.rng = random.Random(SEED)
        self.sb = Sandbox(*(S3_ARGS if BLOBS == "s3" else ()), jobs=40)
        self.sb.admin("POST", "config", {"rate_limit": RATE, "rate_window_ms": 60000,
                                         "reconstruction_seconds": 2,
                                         "webhook_retry_base_ms": 200})
        # The test's own requests (test jobs, job views) use a token of another client id: they
        # do not count in the fleet's budget at the sandbox.
        self.own = self.sb.admin("POST", "tokens", {"org_id": MAIN_ORG,
                                                    "client_id": "fleet-test"})["access_token"]
        reconcile_from_now(self.sb, PG_URL)
        self.fleet = Fleet(self.sb, blobs=BLOBS)
        self.disruptions = []  # (from ms, to ms) of each kill and of the restart

    def tearDown(self):
        self.fleet.stop()
        self.fleet.cleanup()
        self.sb.stop()

    def hover(self, method, path, body=None):
        status, _, out = self.sb.call(method, path, body,
                                      headers={"Authorization": "Bearer " + self.own})
        self.assertEqual(status, 200, (path, out))
        return out

    def job_models(self, job):
        return {m["id"]: m["state"] for m in self.hover("GET", "/api/v3/jobs/%d" % job)["models"]}

    def chaos(self, stop, restart_at):
        """Until stop: a random process killed and started again every 2-4 s; PostgreSQL
        restarted once, at restart_at."""
        restarted = False
        while time.time() < stop:
            time.sleep(self.rng.uniform(2, 4))
            if not restarted and time.time() >= restart_at:
                t0 = time.time() * 1000
                r = subprocess.run([PG_RESTART], capture_output=True, text=True, timeout=120)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.disruptions.append((t0, time.time() * 1000, "postgresql"))
                restarted = True
                continue
            name = self.rng.choice(self.fleet.names())
            t0 = time.time() * 1000
            self.fleet.kill(name)
            self.disruptions.append((t0, time.time() * 1000, name))
        self.assertTrue(restarted, "PostgreSQL was not restarted")

    def disrupted(self, first_ms, last_ms):
        """A kill or the restart between two moments (the first moment's request may have been
        cut short by it)."""
        return any(t0 <= last_ms and t1 >= first_ms - 50 for t0, t1, _ in self.disruptions)

    def test_fleet_under_chaos(self):
        self.fleet.register()
        self.sb.admin("POST", "config", {"webhook_duplicate_rate": 0.3, "webhook_drop_rate": 0.1,
                                         "webhook_reorder": True})
        seq0 = self.sb.last_seq()
        t0 = time.time()
        chaos = threading.Thread(target=self.chaos_thread, args=(t0 + 45 * SLOW,
                                                                 t0 + 20 * SLOW))
        chaos.start()
        jobs = {}
        try:
            for i in range(JOBS):
                failed = (0, 0, 1, 0, 2, 0)[i % 6]
                jobs[self.hover("POST", "/api/v3/jobs/test_job",
                                {"failed_models_count": failed})["job_id"]] = failed
                time.sleep(2.5)
        finally:
            chaos.join()
        if self.chaos_error:
            raise self.chaos_error
        self.sb.admin("POST", "config", {"webhook_duplicate_rate": 0, "webhook_drop_rate": 0,
                                         "webhook_reorder": False})
        models = {}
        for job, failed in jobs.items():
            m = wait_for("reconstruction of %d" % job, lambda j=job: (
                lambda ms: ms if not {"uploading", "processing"} & set(ms.values()) else None)(
                    self.job_models(j)))
            self.assertEqual(sorted(m.values()).count("failed"), failed)
            models[job] = m
        complete = {m for ms in models.values() for m, s in ms.items() if s == "complete"}
        failed_models = {m for ms in models.values() for m, s in ms.items() if s == "failed"}
        self.wait_quiet(jobs, complete)
        self.check(jobs, complete, failed_models, seq0)

    chaos_error = None

    def chaos_thread(self, stop, restart_at):
        try:
            self.chaos(stop, restart_at)
        except BaseException as e:  # reported by the test's thread
            self.chaos_error = e

    def wait_quiet(self, jobs, complete):
        ids = ",".join(map(str, jobs))

        def quiet():
            hooks = self.sb.admin("GET", "webhooks")["webhooks"]
            pending = sum(h["pending"] for h in hooks if not h["deleted"])
            synced = pg("SELECT COUNT(*) FROM models WHERE synced_updated_at IS NOT NULL AND "
                        "id IN (%s)" % ",".join(map(str, complete)))[0][0]
            work = pg("SELECT COUNT(*) FROM work_items WHERE job_id IN (%s)" % ids)[0][0]
            out = pg("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL")[0][0]
            return pending == 0 and int(synced) == len(complete) and work == "0" and out == "0"
        try:
            wait_for("the fleet to finish", quiet, 150)
        except AssertionError:
            raise AssertionError("not finished: synced %s of %d; work %s; outbox %s; log %s" % (
                pg("SELECT COUNT(*) FROM models WHERE synced_updated_at IS NOT NULL AND id IN "
                   "(%s)" % ",".join(map(str, complete))), len(complete),
                pg("SELECT job_id, attempts, claimed_by, last_error FROM work_items"),
                pg("SELECT id, job_id, attempts, last_error FROM outbox WHERE delivered_at IS "
                   "NULL"), self.fleet.log_text()[-6000:]))
        # The deliverer may still be answering its last acknowledgement.
        time.sleep(1)

    def check(self, jobs, complete, failed_models, seq0):
        ids = ",".join(map(str, jobs))
        kills = [d for d in self.disruptions if d[2] != "postgresql"]
        self.assertGreaterEqual(len(kills), 6, self.disruptions)
        self.assertTrue({d[2][:5] for d in kills} == {"serve", "worke"}, kills)
        # Exactly one synced result per complete model; failed ones never synced.
        synced = dict(pg("SELECT r.model_id, COUNT(*) FROM sync_results r WHERE r.result = "
                         "'synced' AND r.model_id IN (%s) GROUP BY r.model_id"
                         % ",".join(map(str, complete | failed_models))))
        self.assertEqual(set(map(int, synced)), complete)
        self.assertEqual({k: v for k, v in synced.items() if v != "1"}, {})
        self.assertEqual(pg("SELECT COUNT(*) FROM artifacts WHERE model_id IN (%s)"
                            % ",".join(map(str, failed_models)))[0][0], "0")
        self.assertEqual(pg("SELECT model_id, kind FROM artifacts WHERE model_id IN (%s) GROUP "
                            "BY model_id, kind HAVING COUNT(*) > 1"
                            % ",".join(map(str, complete))), [])
        per_model = dict(pg("SELECT model_id, COUNT(*) FROM artifacts WHERE model_id IN (%s) "
                            "GROUP BY model_id" % ",".join(map(str, complete))))
        self.assertTrue(all(int(per_model.get(str(m), 0)) >= 8 for m in complete), per_model)
        # Every event that reached an instance was processed (or ignored: nothing to do).
        self.assertEqual(pg("SELECT id, status FROM webhook_events WHERE job_id IN (%s) AND "
                            "status NOT IN ('processed', 'ignored')" % ids), [])
        reqs = self.sb.requests(seq0)
        self.check_downloads(reqs, complete)
        # No 429: the fleet booked one budget.
        mine = [e for e in reqs if e.get("client_id") == CLIENT_ID]
        self.assertEqual([e for e in mine if e["status"] == 429], [])
        print("budget: busiest 60 s window %d requests of %d allowed, %d in all" % (
            busiest([e["ts_ms"] for e in mine if e["path"].startswith("/api/")], 60000), RATE,
            len(mine)))
        self.check_notifications(jobs)
        self.check_chaos(jobs)
        if BLOBS == "s3":
            self.check_objects(complete)
        codes = self.fleet.stop()
        self.assertEqual(set(codes.values()), {0}, (codes, self.fleet.log_text()[-4000:]))
        log = self.fleet.log_text()
        self.assertNotIn("AddressSanitizer", log)
        self.assertNotIn("runtime error:", log)
        print("logs: %d lines, %d warnings, %d errors, %d reconnections to PostgreSQL" % (
            log.count("\n"), log.count("level=warn"), log.count("level=error"),
            log.count("reconnecting")))
        kinds = {}
        for line in log.splitlines():
            if "level=warn" in line or "level=error" in line:
                k = " ".join(w for w in line.split()[1:] if not w[-1:].isdigit())[:110]
                kinds[k] = kinds.get(k, 0) + 1
        for k, n in sorted(kinds.items(), key=lambda kv: -kv[1])[:20]:
            print("  %4d %s" % (n, k))

    def check_objects(self, complete):
        """Object storage: every file of the complete models is an object with its row's size,
        none is in a process's own folder, and each instance serves every one of them, all synced
        by the workers."""
        rows = pg("SELECT DISTINCT sha256, bytes FROM artifacts WHERE model_id IN (%s)"
                  % ",".join(map(str, complete)))
        objects = {o["key"]: o["size"] for b in self.sb.admin("GET", "s3")["buckets"]
                   if b["name"] == S3_BUCKET for o in b["objects"]}
        for sha, size in rows:
            key = "fleet/blobs/%s/%s/%s" % (sha[:2], sha[2:4], sha)
            self.assertEqual(objects.get(key), int(size), key)
        for name in self.fleet.names():
            kept = [f for _, _, fs in os.walk(os.path.join(self.fleet.data_dir(name), "blobs"))
                    for f in fs]
            self.assertEqual(kept, [], name)
        served = 0
        for i, svc in enumerate(self.fleet.serves):
            for sha, size in rows:
                r = svc.get("/files/" + sha)
                self.assertEqual(r.status, 200, (i, sha, r.body[:200]))
                self.assertEqual(len(r.body), int(size), (i, sha))
                self.assertEqual(hashlib.sha256(r.body).hexdigest(), sha, (i, sha))
                served += 1
        print("objects: %d files in the bucket, served %d times by the %d instances, none in "
              "their folders" % (len(rows), served, len(self.fleet.serves)))

    def check_downloads(self, reqs, complete):
        """One download per artifact and photo, unless a kill or the restart came between."""
        seen = {}
        for e in reqs:
            if e["listener"] != "api" or e["status"] != 200:
                continue
            p = e["path"]
            if p.startswith("/api/v3/models/") and "/artifacts/" in p:
                if int(p.split("/")[4]) not in complete:
                    continue
            elif not p.startswith("/api/v3/images/"):
                continue
            seen.setdefault(p + "?" + e["query"], []).append(e["ts_ms"])
        self.assertGreaterEqual(len(seen), 8 * len(complete))
        twice = {k: v for k, v in seen.items() if len(v) > 1}
        unexplained = {k: v for k, v in twice.items() if not self.disrupted(min(v), max(v))}
        self.assertEqual(unexplained, {}, self.disruptions)
        print("downloads: %d artifacts and photos, %d fetched again after a kill or the restart"
              % (len(seen), len(twice)))

    def check_notifications(self, jobs):
        """One notification per change: every outbox row acknowledged, cursors chained per job,
        a key acknowledged twice only across a disruption."""
        rows = pg("SELECT idempotency_key, job_id FROM outbox")
        acked = {}
        with self.fleet.crm.lock:
            posts = list(self.fleet.crm.posts)
        self.assertEqual(self.fleet.crm.bad_signatures, 0)
        for status, key, payload in posts:
            if status < 300:
                acked.setdefault(key, []).append(payload)
        self.assertEqual(set(acked), {k for k, _ in rows})
        for job in jobs:
            if not any(int(j) == job for _, j in rows):
                continue
            chain = sorted({(p["previous_cursor"], p["cursor"]) for k, ps in acked.items()
                            for p in ps if p["job_id"] == job}, key=lambda c: c[1])
            for (_, a), (b, _) in zip(chain, chain[1:]):
                self.assertEqual(b, a, "job %d: notifications %s" % (job, chain))
        again = [k for k, ps in acked.items() if len(ps) > 1]
        if again:
            self.assertTrue(self.disruptions, again)
        synced_jobs = {int(r[0]) for r in pg(
            "SELECT DISTINCT s.job_id FROM sync_runs s JOIN sync_results r ON r.run_id = s.id "
            "WHERE r.result = 'synced' AND s.job_id IN (%s)" % ",".join(map(str, jobs)))}
        self.assertEqual({int(j) for _, j in rows} & set(jobs), synced_jobs)
        print("notifications: %d changes, %d acknowledged again after a kill or the restart"
              % (len(rows), len(again)))

    def check_chaos(self, jobs):
        """The chaos happened: duplicates, drops and reordering; every instance got deliveries."""
        deliveries = [d for d in self.sb.admin("GET", "deliveries?limit=20000")["deliveries"]
                      if d["job_id"] in jobs]
        self.assertTrue(any(d["copy_of"] for d in deliveries), "no duplicate")
        self.assertTrue(any(d["result"] == "dropped" for d in deliveries), "no drop")
        self.assertTrue(any("reordered" in d["fault"] for d in deliveries), "no reordering")
        lb = self.fleet.lb.answers
        for i in range(len(self.fleet.serves)):
            self.assertGreater(lb.get((i, 200), 0) + lb.get((i, 202), 0), 0, lb)
        print("fleet: %d process starts, disruptions %s; balancer answers %s" % (
            self.fleet.starts, [d[2] for d in self.disruptions], sorted(lb.items())))


if __name__ == "__main__":
    if not PG_URL:
        print("SKIP: the fleet needs a PostgreSQL cluster (run it through "
              "tests/support/pg_cluster.sh, as meson does)")
        sys.exit(77)
    unittest.main(verbosity=2)
