#!/usr/bin/env python3
"""Benchmark: the webhook-driven flow (docs/WEBHOOKS.md) through real processes on loopback.

1. Latency, the rate limit lifted on both sides: N test jobs (3 models, reconstructions of 1 s)
   created a few hundred ms apart; per job, from the sandbox's delivery of job-state-changed-v2
   (its delivery log, ts_ms) to the moment the job's last model's rows were committed
   (sync_results.at of its first "synced" result): p50 / p95 / max. Also from the delivery of the
   job's last model-state-changed. And from the commit of a work item's newest trigger to a
   worker claiming it (the workers' "queue=claim ... waited_ms=N" log lines; a service without
   them says n/a); and, from the sandbox's logs alone (so for any build), from the delivery of
   each event of a test job (logged once the service answered it, i.e. committed it) to the
   service's next Show Job of that job: the start of the pass that answers it. With --apart the service runs --no-workers and a `hoversync worker` process
   on the same store runs the work queue: nothing wakes it, it looks every 250 ms.
2. Budget, the sandbox's rate limit on (120 requests per 60 s sliding window, per OAuth client)
   and the service's budget at its default (--rate-limit 120, window 60 s + 1 s margin): enough
   test jobs for about two minutes of requests, all queued at once; the busiest 60 s window of
   API requests while work was queued, over 120 (the utilisation), the mean rate, and the number
   of 429 answers (must be 0: pacing alone never trips Hover's limit).

With --limit-on (and --latency-ms N, --interval S), the latency run has Hover's limit on and the
service's budget at its defaults, jobs far enough apart that nothing else is queued: a lone sync
takes the free budget at once, so event to synced is bounded by Hover's latency alone.

Run on demand: bench/event_to_synced.py [--jobs N] [--budget-jobs N] [--build DIR]."""
import argparse
import os
import statistics
import sys
import time
from datetime import datetime

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "integration"))


def iso_ms(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1000


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


class Run:
    def __init__(self, harness, sb, service_args=(), apart=False, **env):
        self.sb = sb
        self.tokens = sb.tokens()
        # The bench's own requests (test jobs) use a token labelled with another client id, so
        # that they do not count in the service's budget at the sandbox.
        self.bench_token = sb.admin("POST", "tokens", {"org_id": harness.MAIN_ORG,
                                                       "client_id": "bench-client"})
        self.port = harness.free_port()
        url = "http://127.0.0.1:%d" % self.port
        env.setdefault("HOVERSYNC_LOG_LEVEL", "info")
        self.svc = harness.Service(sb, self.tokens,
                                   args=["--listen", "127.0.0.1:%d" % self.port,
                                         "--public-url", url, "--reconcile-interval", 0,
                                         "--pending-interval", 0, *service_args,
                                         *(["--no-workers"] if apart else [])], **env)
        self.worker = None
        if apart:
            import subprocess
            self.worker_log = os.path.join(self.svc.cli.dir, "worker.stderr")
            self.worker_err = open(self.worker_log, "w")
            self.worker = subprocess.Popen(
                [harness.HOVERSYNC_BIN, "worker", "--reconcile-interval", "0",
                 "--pending-interval", "0", *map(str, service_args)],
                env=self.svc.cli.env, stdout=subprocess.DEVNULL, stderr=self.worker_err)
        r = self.svc.cli.run("webhooks", "register", "--public-url", url, "--wait", 20,
                             timeout=60)
        if r.returncode != 0:
            raise RuntimeError("register: " + r.stderr)

    def test_job(self):
        status, _, out = self.sb.call(
            "POST", "/api/v3/jobs/test_job", {},
            headers={"Authorization": "Bearer " + self.bench_token["access_token"]})
        if status != 200:
            raise RuntimeError("test_job: %s %r" % (status, out))
        return out["job_id"]

    def synced(self, job):
        """ms of the commit of the job's last model, once all 3 are synced; None before."""
        rows = self.svc.cli.sql(
            "SELECT r.model_id, MIN(r.at) FROM sync_results r JOIN sync_runs s ON s.id = "
            "r.run_id WHERE s.job_id = %d AND r.result = 'synced' GROUP BY r.model_id" % job)
        if len(rows) < 3:
            return None
        return max(iso_ms(at) for _, at in rows)

    def wait_all(self, jobs, timeout):
        deadline = time.time() + timeout
        done = {}
        while time.time() < deadline and len(done) < len(jobs):
            for j in jobs:
                if j not in done:
                    t = self.synced(j)
                    if t:
                        done[j] = t
            time.sleep(0.2)
        return done

    def claim_waits(self):
        """waited_ms of the claims of items a webhook triggered, from the workers' log."""
        text = self.svc.read_stderr()
        if self.worker:
            with open(self.worker_log) as f:
                text += f.read()
        out = []
        for line in text.splitlines():
            if "queue=claim" in line and "reason=webhook" in line and "waited_ms=" in line:
                out.append(int(line.split("waited_ms=")[1].split()[0]))
        return out

    def stop(self):
        if self.worker:
            self.worker.terminate()
            self.worker.wait()
            self.worker_err.close()
        self.svc.stop()
        self.svc.cleanup()


def latency(harness, n, apart=False, limit_on=False, latency_ms=0, interval=0.25):
    sb = harness.Sandbox(jobs=50, seed=7)
    try:
        sb.admin("POST", "config", {"rate_limit": 0, "reconstruction_seconds": 1})
        # With Hover's limit on, the service's budget is at its defaults (120 a minute).
        run = Run(harness, sb, [] if limit_on else ["--rate-limit", 0], apart=apart)
        try:
            if limit_on:
                sb.admin("POST", "config", {"rate_limit": 120, "rate_window_ms": 60000})
            if latency_ms:
                sb.fault(path="/*", latency_ms=latency_ms)
            seq0 = sb.last_seq()
            jobs = []
            for _ in range(n):
                jobs.append(run.test_job())
                time.sleep(interval)
            done = run.wait_all(jobs, 60 + n)
            deliveries = sb.admin("GET", "deliveries?limit=20000")["deliveries"]
            shows = [e for e in sb.requests(seq0) if e["listener"] == "api" and
                     e["client_id"] == harness.CLIENT_ID and e["method"] == "GET"]
            waits = run.claim_waits()
        finally:
            run.stop()
    finally:
        sb.stop()
    from_job, from_model, to_show = [], [], []
    for j in jobs:
        mine = [d for d in deliveries if d["job_id"] == j and d["result"] == "delivered"]
        job_ev = [d["ts_ms"] for d in mine if d["event"] == "job-state-changed-v2"]
        model_ev = [d["ts_ms"] for d in mine if d["event"] == "model-state-changed"]
        if j in done and job_ev:
            from_job.append(done[j] - min(job_ev))
        mine_shows = [e["ts_ms"] for e in shows if e["path"] == "/api/v3/jobs/%d" % j]
        for d in mine:
            later = [t for t in mine_shows if t >= d["ts_ms"]]
            if later:
                to_show.append(min(later) - d["ts_ms"])
        if j in done and model_ev:
            from_model.append(done[j] - max(model_ev))
    print("== event to synced (%s, %d ms per request), %d test jobs of 3 models, one every "
          "%.2f s%s ==" % ("Hover's limit on" if limit_on else "rate limits lifted", latency_ms,
                           n, interval, ", work queue in a separate worker process" if apart
                           else ""))
    if limit_on:
        print("the service's API GETs:      %d (%.1f per job)" % (len(shows), len(shows) / n))
    print("jobs synced:                 %d of %d" % (len(done), n))
    if from_job:
        print("from job-state-changed-v2:   p50 %.0f ms, p95 %.0f ms, max %.0f ms"
              % (pct(from_job, 50), pct(from_job, 95), max(from_job)))
    if from_model:
        print("from last model-state-changed: p50 %.0f ms, p95 %.0f ms, max %.0f ms"
              % (pct(from_model, 50), pct(from_model, 95), max(from_model)))
    if to_show:
        print("event to its pass's Show Job (%d events): p50 %.0f ms, p95 %.0f ms, max %.0f ms"
              % (len(to_show), pct(to_show, 50), pct(to_show, 95), max(to_show)))
    if waits:
        print("commit to claim (%d items):  p50 %.0f ms, p95 %.0f ms, max %.0f ms"
              % (len(waits), pct(waits, 50), pct(waits, 95), max(waits)))
    else:
        print("commit to claim:             n/a (no queue=claim lines in the log)")


def budget(harness, n):
    sb = harness.Sandbox(jobs=50, seed=8)
    try:
        sb.admin("POST", "config", {"rate_limit": 0, "reconstruction_seconds": 1})
        run = Run(harness, sb)  # the service's budget at its defaults
        try:
            # Hover's limit on from here: every request of the work below counts.
            sb.admin("POST", "config", {"rate_limit": 120, "rate_window_ms": 60000})
            seq0 = sb.last_seq()
            t0 = time.time()
            jobs = [run.test_job() for _ in range(n)]
            done = run.wait_all(jobs, 600)
            elapsed = time.time() - t0
            reqs = [e for e in sb.requests(seq0) if e["listener"] == "api" and
                    e["client_id"] == harness.CLIENT_ID]
        finally:
            run.stop()
    finally:
        sb.stop()
    api = sorted(e["ts_ms"] for e in reqs if e["path"].startswith("/api/"))
    too_many = sum(1 for e in reqs if e["status"] == 429)
    # While work was queued: from the first request of the work to the last one.
    busiest, i = 0, 0
    for k in range(len(api)):
        while api[k] - api[i] >= 60000:
            i += 1
        busiest = max(busiest, k - i + 1)
    span = (api[-1] - api[0]) / 1000 if len(api) > 1 else 0
    # Consecutive 60 s windows from the first request: the budget lets a window take its 120 as
    # soon as the requests of 61 s before have left it.
    per_window = [sum(1 for t in api if k * 60000 <= t - api[0] < (k + 1) * 60000)
                  for k in range(int(span // 60) + 1)]
    print("== budget (sandbox 120 requests / 60 s sliding window; service --rate-limit 120) ==")
    print("jobs synced:                 %d of %d in %.0f s" % (len(done), n, elapsed))
    print("API requests:                %d over %.0f s" % (len(api), span))
    print("per 60 s from the first:     %s" % ", ".join(map(str, per_window)))
    print("busiest 60 s window:         %d requests = %.1f%% of 120" % (busiest, busiest / 1.2))
    print("429 answers:                 %d" % too_many)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=20, help="test jobs for the latency run [20]")
    ap.add_argument("--budget-jobs", type=int, default=8,
                    help="test jobs for the budget run (about 35 requests each) [8]")
    ap.add_argument("--build", default=os.path.join(here, "..", "build", "release"),
                    help="build directory with the binaries [build/release]")
    ap.add_argument("--skip-budget", action="store_true")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--apart", action="store_true",
                    help="latency with the work queue in a `hoversync worker` process")
    ap.add_argument("--limit-on", action="store_true",
                    help="latency with Hover's limit on (120 a minute) and the service's budget "
                    "at its defaults")
    ap.add_argument("--latency-ms", type=int, default=0,
                    help="latency injected into every Hover request of the latency run [0]")
    ap.add_argument("--interval", type=float, default=0.25,
                    help="seconds between the latency run's test jobs [0.25]")
    args = ap.parse_args()
    os.environ.setdefault("HOVER_SANDBOX_BIN", os.path.join(args.build, "sandbox", "hover-sandbox"))
    os.environ.setdefault("HOVERSYNC_BIN", os.path.join(args.build, "src", "cli", "hoversync"))
    import harness
    if not args.skip_latency:
        latency(harness, args.jobs, args.apart, args.limit_on, args.latency_ms, args.interval)
    if not args.skip_budget:
        budget(harness, args.budget_jobs)


if __name__ == "__main__":
    main()
