#!/usr/bin/env python3
"""Benchmark: one Hover budget for every process of an installation. Two `serve` (each with its
background workers), one `hoversync worker` and a CLI `backfill --sync` on one store, against the
sandbox limited to --rate requests a minute, with a person on each serve viewing jobs and
starting modal syncs (POST /api/syncs). Prints, from the sandbox's request log: the busiest 60 s
window of requests sent to Hover's API (429s included) and of requests it accepted, the 429
answers, and the requests in all. Work stays queued the whole run (the backfill alone has more
than the budget allows), so the busiest window also says how much of the budget was used.

Run on demand, against two builds to compare:
  bench/shared_budget.py [--build DIR] [--rate 120] [--seconds 150] [--jobs 300]"""
import argparse
import os
import signal
import subprocess
import sys
import threading
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "integration"))


def person(harness, svc, first, stop, counts):
    """Views a job, then syncs its complete models, every 5 s; the jobs in turn."""
    i = first
    while time.time() < stop:
        job = 15084301 + i % 4
        r = svc.get("/api/jobs/%d" % job, timeout=120)
        counts["views"] += 1
        if r.status == 200 and r.json:
            models = [m["id"] for m in r.json.get("models", []) if m.get("state") == "complete"]
            if models:
                s = svc.request("POST", "/api/syncs", {"job_id": job, "model_ids": models},
                                timeout=120)
                counts["syncs"] += s.status == 202
        i += 2
        time.sleep(5)


def run(harness, busiest, rate, seconds, jobs):
    sb = harness.Sandbox("--rate-limit", str(rate), jobs=jobs)
    env = {"HOVERSYNC_RATE_LIMIT": rate}
    a = harness.Service(sb, sb.tokens(), **env)
    b = harness.Service(sb, None, db_dir=a.dir, **env)
    conn = "org-%d" % harness.MAIN_ORG
    side = harness.Cli(sb, None, HOVERSYNC_CONNECTION=conn, HOVERSYNC_DB=a.cli.db,
                       HOVERSYNC_DATA_DIR=os.path.join(a.dir, "data"), **env)
    procs = []
    try:
        start = sb.last_seq()
        t0 = time.time()
        for args in (["worker"], ["backfill", "--sync"]):
            procs.append(subprocess.Popen([harness.HOVERSYNC_BIN, *args], env=side.env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        stop = t0 + seconds
        counts = {"views": 0, "syncs": 0}
        people = [threading.Thread(target=person, args=(harness, s, n, stop, counts))
                  for n, s in ((0, a), (1, b))]
        for p in people:
            p.start()
        for p in people:
            p.join()
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=120)
        entries = [e for e in sb.requests(start) if e.get("listener", "api") == "api"]
        accepted = [e for e in entries if e["status"] != 429]
        print("rate limit %d/min, %d s, 2 serve + worker + backfill --sync on one store"
              % (rate, seconds))
        print("  busiest 60 s window, requests sent:     %d (%.0f%% of the limit)"
              % (busiest(entries, rejected=True), 100.0 * busiest(entries, rejected=True) / rate))
        print("  busiest 60 s window, requests accepted: %d (%.0f%% of the limit)"
              % (busiest(accepted), 100.0 * busiest(accepted) / rate))
        print("  429 answers: %d of %d requests" % (len(entries) - len(accepted), len(entries)))
        print("  job views: %d, modal syncs queued: %d" % (counts["views"], counts["syncs"]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        a.stop()
        b.stop()
        side.cleanup()
        b.cleanup()
        a.cleanup()
        sb.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(here, "..", "build", "ci"))
    ap.add_argument("--rate", type=int, default=120)
    ap.add_argument("--seconds", type=int, default=150)
    ap.add_argument("--jobs", type=int, default=300)
    o = ap.parse_args()
    os.environ["HOVERSYNC_BIN"] = os.path.join(o.build, "src", "cli", "hoversync")
    os.environ.setdefault("HOVER_SANDBOX_BIN", os.path.join(o.build, "sandbox", "hover-sandbox"))
    import harness
    from test_shared_store import busiest_window
    run(harness, busiest_window, o.rate, o.seconds, o.jobs)


if __name__ == "__main__":
    main()
