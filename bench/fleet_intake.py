#!/usr/bin/env python3
"""Benchmark: hoversync as a fleet on PostgreSQL, with the SQLite figures of the same run beside
them (docs/SCALING.md). Real processes on loopback, a throw-away PostgreSQL cluster
(tests/support/pg_cluster.sh: the script runs itself through it).

1. Webhook intake: 1 and 3 `hoversync serve --no-workers` on one store (PostgreSQL, then one
   SQLite file), a webhook put in the store, and --conns connections (--procs load processes)
   posting deliveries signed as Hover signs them (api_auth 1.x), each about one of 512 jobs, to
   the instances in turn for --seconds: acknowledged deliveries per second, the ack latency
   p50/p99, the event rows stored (counted in the store afterwards), the non-2xx answers.
2. Event to synced and the fleet's busiest 60 s window: the fleet of tests/integration/
   test_fleet.py (3 serves behind a round-robin balancer, 2 workers, one data folder; rate limits
   lifted, no chaos) and --jobs test jobs (3 models, reconstructions of 1 s) made one every
   --interval s: per job, from the sandbox's delivery of job-state-changed-v2 to the commit of its
   last model (p50/p95); the busiest 60 s of events delivered and of models synced (per second).

Run on demand (a few minutes; the load generator shares the machine's cores with the fleet):
  bench/fleet_intake.py [--build build/ci] [--seconds 10] [--conns 16] [--jobs 120]
                        [--interval 0.5] [--only intake|latency]"""
import argparse
import base64
import email.utils
import hashlib
import hmac
import http.client
import json
import multiprocessing
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "integration"))
SECRET = "YmVuY2gtc2VjcmV0LW9mLXRoZS13ZWJob29rLTAxMjM0NTY3"
HOOK = 990001  # not an id the sandbox gives (230293 on), so both runs can share a database


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] if v else float("nan")


def column(db, sql):
    """The first column of a query on the store, as text: psql for PostgreSQL, sqlite3 for a
    file."""
    if db.startswith("postgresql://"):
        r = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", db, "-c", sql],
                           capture_output=True, text=True, check=True)
        return r.stdout.splitlines()
    con = sqlite3.connect(db, timeout=30)
    try:
        return [str(r[0]) for r in con.execute(sql).fetchall()]
    finally:
        con.close()


def query(db, sql):
    return column(db, sql)[0]


def execute(db, sql):
    if db.startswith("postgresql://"):
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", db, "-c", sql], check=True,
                       capture_output=True)
        return
    con = sqlite3.connect(db, timeout=30)
    con.execute(sql)
    con.commit()
    con.close()


def signed(job, model, ev):
    """A delivery's body and headers, signed as api_auth 1.x signs (docs/SANDBOX.md)."""
    body = {"event": ev, "webhook_id": HOOK, "job_id": job, "state": "complete",
            "job_external_identifier": None}
    if ev != "job-state-changed-v2":
        body["model_id"] = model
    raw = json.dumps(body, separators=(",", ":")).encode()
    md5 = base64.b64encode(hashlib.md5(raw).digest()).decode()
    date = email.utils.formatdate(usegmt=True)
    canonical = ",".join(["application/json", md5, "/webhooks/hover", date])
    sig = base64.b64encode(hmac.new(SECRET.encode(), canonical.encode(),
                                    hashlib.sha256).digest()).decode()
    return raw, {"Content-Type": "application/json", "Content-MD5": md5, "Date": date,
                 "Authorization": "APIAuth-HMAC-SHA256 %d:%s" % (HOOK, sig)}


def load(ports, first, conns, until, seed, out):
    """conns connections of one process, connection k to ports[(first + k) % n], one request at
    a time each; puts (latencies in ms, non-2xx count) on out."""
    import threading
    lat, bad = [], [0]
    lock = threading.Lock()

    def one(k):
        rng = random.Random(seed * 1000 + k)
        port = ports[(first + k) % len(ports)]
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, n_bad, model = [], 0, (seed * 1000 + k) * 100000
        while time.time() < until:
            model += 1
            # Model events only: each names its own model, so no two bodies are alike (the
            # same body and Date twice is a replay, acknowledged but stored once).
            raw, hdrs = signed(15100000 + rng.randrange(512), 17400000 + model,
                               rng.choice(["model-state-changed", "model-created"]))
            t = time.perf_counter()
            try:
                c.request("POST", "/webhooks/hover", body=raw, headers=hdrs)
                r = c.getresponse()
                r.read()
                status = r.status
            except (OSError, http.client.HTTPException):
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                status = 0
            mine.append((time.perf_counter() - t) * 1000)
            n_bad += not 200 <= status < 300
        with lock:
            lat.extend(mine)
            bad[0] += n_bad
    threads = [threading.Thread(target=one, args=(k,)) for k in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put((lat, bad[0]))


def intake(harness, db, n, seconds, conns, procs):
    d = tempfile.mkdtemp(prefix="hs-fleet-intake-")
    tokens = {"access_token": "unused", "refresh_token": "unused"}
    serves = []
    try:
        for i in range(n):
            serves.append(harness.Service(
                None, tokens if i == 0 else None, connection="default", db_dir=d,
                args=["--db", db, "--no-workers", "--pending-interval", 0,
                      "--reconcile-interval", 0]))
        execute(db, "INSERT INTO webhooks (id, connection_key, url, hmac_secret, verified_at, "
                    "created_at, updated_at) VALUES (%d, 'default', 'http://127.0.0.1/webhooks/"
                    "hover', '%s', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', "
                    "'2026-01-01T00:00:00.000Z') ON CONFLICT DO NOTHING" % (HOOK, SECRET))
        before = int(query(db, "SELECT COUNT(*) FROM webhook_events"))
        ports = [s.port for s in serves]
        until = time.time() + seconds
        q = multiprocessing.Queue()
        per = [conns // procs + (1 if k < conns % procs else 0) for k in range(procs)]
        ps = [multiprocessing.Process(target=load, args=(ports, sum(per[:k]), per[k], until,
                                                         k + 1, q)) for k in range(procs)]
        for p in ps:
            p.start()
        lat, bad = [], 0
        for _ in ps:
            lat_k, bad_k = q.get()
            lat += lat_k
            bad += bad_k
        for p in ps:
            p.join()
        stored = int(query(db, "SELECT COUNT(*) FROM webhook_events")) - before
    finally:
        for s in serves:
            s.stop()
            s.cleanup()
        import shutil
        shutil.rmtree(d, ignore_errors=True)
    kind = "PostgreSQL" if db.startswith("postgresql://") else "SQLite"
    print("%-10s %d serve%s %3d conns: %6.0f acks/s, %6.0f events stored/s, ack p50 %5.1f ms, "
          "p99 %6.1f ms, non-2xx %d" % (kind, n, " " if n == 1 else "s", conns,
                                         len(lat) / seconds, stored / seconds, pct(lat, 50),
                                         pct(lat, 99), bad))


def iso_ms(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1000


def latency(harness, fleet_mod, db, jobs, interval):
    sb = harness.Sandbox(jobs=40, seed=9)
    fleet = None
    try:
        sb.admin("POST", "config", {"rate_limit": 0, "reconstruction_seconds": 1,
                                    "webhook_retry_base_ms": 200})
        own = sb.admin("POST", "tokens", {"org_id": harness.MAIN_ORG,
                                          "client_id": "bench-client"})["access_token"]
        fleet = fleet_mod.Fleet(sb, db=db, reconcile=0, rate=0)
        db = fleet.db
        fleet.register()
        made = []
        for _ in range(jobs):
            st, _, out = sb.call("POST", "/api/v3/jobs/test_job", {},
                                 headers={"Authorization": "Bearer " + own})
            if st != 200:
                raise RuntimeError("test_job: %s %r" % (st, out))
            made.append(out["job_id"])
            time.sleep(interval)
        deadline = time.time() + 120
        ids = ",".join(map(str, made))
        sql = ("SELECT COUNT(DISTINCT r.model_id) FROM sync_results r JOIN sync_runs s ON s.id = "
               "r.run_id WHERE r.result = 'synced' AND s.job_id IN (%s)" % ids)
        while time.time() < deadline and int(query(db, sql)) < 3 * jobs:
            time.sleep(0.5)
        # each model's first synced result, as "model_id|at" (psql -At and sqlite3 alike)
        rows = {j: column(db, "SELECT r.model_id || '|' || MIN(r.at) FROM sync_results r JOIN "
                              "sync_runs s ON s.id = r.run_id WHERE s.job_id = %d AND r.result = "
                              "'synced' GROUP BY r.model_id" % j) for j in made}
        deliveries = sb.admin("GET", "deliveries?limit=20000")["deliveries"]
    finally:
        if fleet:
            fleet.stop()
            fleet.cleanup()
        sb.stop()
    synced_at = {j: {int(r.split("|", 1)[0]): pg_ms(r.split("|", 1)[1]) for r in rs}
                 for j, rs in rows.items()}
    # A model syncs on its own model-state-changed (a job's models complete one by one; the
    # job's job-state-changed-v2 comes after the last): from when that delivery was sent (its
    # log line's ts_ms is when the answer came back, after the ack) to the model's commit.
    from_event = []
    for j in made:
        for m, at in synced_at.get(j, {}).items():
            ev = [d["sent_ms"] for d in deliveries if d["model_id"] == m and
                  d["result"] == "delivered" and d["event"] == "model-state-changed"]
            if ev:
                from_event.append(at - min(ev))
    events = [d["ts_ms"] for d in deliveries if d["result"] == "delivered" and d["job_id"] in made]
    models = [t for ts in synced_at.values() for t in ts.values()]
    kind = "PostgreSQL" if db.startswith("postgresql://") else "SQLite"
    print("%-10s %d of %d jobs synced; model-state-changed to synced p50 %.0f ms, p95 %.0f ms; "
          "busiest 60 s: %.2f events/s, %.2f models synced/s"
          % (kind, sum(1 for j in made if len(synced_at.get(j, [])) == 3), jobs,
             pct(from_event, 50), pct(from_event, 95),
             fleet_mod.busiest(events, 60000) / 60, fleet_mod.busiest(models, 60000) / 60))


def pg_ms(s):
    """ms of a timestamp in PostgreSQL's text form or the SQLite store's ISO form."""
    s = s.strip().replace(" ", "T")
    if s.endswith("+00"):
        s += ":00"
    return iso_ms(s)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(here, "..", "build", "ci"))
    ap.add_argument("--seconds", type=int, default=10, help="each intake run [10]")
    ap.add_argument("--conns", type=int, default=16, help="intake connections [16]")
    ap.add_argument("--procs", type=int, default=2, help="load generator processes [2]")
    ap.add_argument("--jobs", type=int, default=120, help="test jobs of the latency run [120]")
    ap.add_argument("--interval", type=float, default=0.5,
                    help="seconds between test jobs [0.5]")
    ap.add_argument("--only", choices=["intake", "latency"])
    args = ap.parse_args()
    if not os.environ.get("HS_TEST_PG_URL"):
        # Through the throw-away cluster, which runs programs without arguments.
        os.environ["HS_FLEET_BENCH_ARGS"] = json.dumps(sys.argv[1:])
        # fsync on, as in production and as the SQLite store commits (synchronous=FULL).
        os.environ["HS_TEST_PG_DURABLE"] = "1"
        cluster = os.path.join(here, "..", "tests", "support", "pg_cluster.sh")
        os.execv(cluster, [cluster, os.path.abspath(__file__)])
    os.environ.setdefault("HOVER_SANDBOX_BIN", os.path.join(args.build, "sandbox", "hover-sandbox"))
    os.environ.setdefault("HOVERSYNC_BIN", os.path.join(args.build, "src", "cli", "hoversync"))
    import harness
    import test_fleet
    pg_url = os.environ["HS_TEST_PG_URL"]
    print("load average at start: %s" % open("/proc/loadavg").read().split()[0])
    if args.only != "latency":
        print("== webhook intake, %d s per run ==" % args.seconds)
        for n in (1, 3):
            intake(harness, pg_url, n, args.seconds, args.conns, args.procs)
            d = tempfile.mkdtemp(prefix="hs-fleet-sqlite-")
            intake(harness, os.path.join(d, "hoversync.db"), n, args.seconds, args.conns,
                   args.procs)
            import shutil
            shutil.rmtree(d, ignore_errors=True)
    if args.only != "intake":
        print("== event to synced: 3 serves + 2 workers, %d test jobs, one every %g s =="
              % (args.jobs, args.interval))
        latency(harness, test_fleet, pg_url, args.jobs, args.interval)
        latency(harness, test_fleet, None, args.jobs, args.interval)
    print("load average at end: %s" % open("/proc/loadavg").read().split()[0])


if __name__ == "__main__":
    if os.environ.get("HS_FLEET_BENCH_ARGS") and len(sys.argv) == 1:
        sys.argv += json.loads(os.environ["HS_FLEET_BENCH_ARGS"])
    main()
