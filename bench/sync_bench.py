#!/usr/bin/env python3
"""Benchmark: syncing from the sandbox with its rate limit lifted (and hoversync's client-side
limit off), every artifact and image (`--artifacts all`), three ways side by side on the same
jobs, at each injected latency (a sandbox fault delaying every request, storage included):

  baseline  a straightforward sequential Python sync (this file: one keep-alive connection to
            the API and one to the storage host, every file written, fsynced and renamed, one
            SQLite transaction per job, WAL and synchronous=FULL as the service's store);
  backfill  `hoversync backfill --sync` over the same jobs;
  queue     `hoversync serve` with its workers, one POST /api/syncs per job naming its
            complete models, until every model is synced.

Then, at 0 ms: the fsync/fdatasync/syncfs calls per synced model of `backfill --sync` (strace -f -c -w;
skipped, saying so, without strace) and the peak RSS of `backfill --sync` over --rss-jobs jobs.

With --before DIR (another build, e.g. of main), backfill, queue, strace and rss also run that
build's hoversync against the same sandbox, each right before this build's: before and after in
one run.

Run on demand: bench/sync_bench.py [--jobs N] [--latency 0,50] [--rss-jobs N] [--build DIR]
[--before DIR]."""
import argparse
import atexit
import hashlib
import http.client
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "integration"))

PARTS = ("baseline", "backfill", "queue", "strace", "rss")

# The runs' folders, removed at the end: on ext4 a file or folder created soon after many were
# deleted costs more (the allocator steps over inodes freed in the last minute or more), so a
# run's cleanup would slow the next run's file creation and favour whichever runs first.
LATER = []


def remove_later(fn, *args):
    LATER.append(lambda: fn(*args))


@atexit.register
def remove_now():
    while LATER:
        LATER.pop(0)()


class World:
    """One sandbox (rate limit lifted, latency_ms on every request) and the n most recently
    updated jobs of the main org: the backfill's --since cutoff walks exactly those."""

    def __init__(self, harness, n, latency_ms):
        self.harness = harness
        # The main org holds most generated jobs; ask for enough that it has n of them.
        fault = ["--fault", "path=/*,latency_ms=%d" % latency_ms] if latency_ms else []
        self.sb = harness.Sandbox("--rate-limit", "0", *fault, jobs=int(n * 1.5) + 50, seed=1)
        cli = self.cli()
        listed = cli.json("search", "--all")
        cli.cleanup()
        if len(listed) < n:
            print("only %d jobs in the org" % len(listed))
        listed.sort(key=lambda j: j["updated_at"], reverse=True)
        self.cutoff = listed[min(n, len(listed)) - 1]["updated_at"]

    def cli(self):
        # every artifact, as before artifact profiles: the figures stay comparable
        cli = self.harness.Cli(self.sb, self.sb.tokens(), HOVERSYNC_RATE_LIMIT=0,
                               HOVERSYNC_ARTIFACTS="all")
        cli.env["HOVERSYNC_DATA_DIR"] = os.path.join(cli.dir, "data")
        return cli

    def stop(self):
        self.sb.stop()


def synced_models(cli):
    return cli.sql("SELECT COUNT(*) FROM selections WHERE status = 'synced'")[0][0]


# ---- the baseline ------------------------------------------------------------------------------

class Baseline:
    """The sequential script: keep-alive connections, files fsynced, a transaction per job."""

    def __init__(self, sb, token, folder):
        self.auth = {"Authorization": "Bearer " + token}
        self.api_host = "127.0.0.1:%d" % sb.port
        self.conns = {}
        self.data = os.path.join(folder, "data")
        os.makedirs(self.data)
        self.db = sqlite3.connect(os.path.join(folder, "baseline.db"), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(
            "CREATE TABLE jobs (id INTEGER PRIMARY KEY, name TEXT, updated_at TEXT, doc TEXT);"
            "CREATE TABLE models (id INTEGER PRIMARY KEY, job_id INTEGER, state TEXT,"
            " updated_at TEXT);"
            "CREATE TABLE artifacts (model_id INTEGER, kind TEXT, path TEXT, sha256 TEXT,"
            " bytes INTEGER, PRIMARY KEY (model_id, kind));")
        self.requests = 0
        self.models = 0
        self.files = 0
        self.plan = {}  # job id -> its complete models' ids (what the queue is asked for)

    def get(self, url, hops=5):
        """GET url on a kept-alive connection to its host, following redirects; the bearer
        token only to the API's host. The body, as bytes."""
        u = urllib.parse.urlsplit(url)
        conn = self.conns.get(u.netloc)
        if conn is None:
            conn = self.conns[u.netloc] = http.client.HTTPConnection(u.netloc, timeout=60)
        path = u.path + ("?" + u.query if u.query else "")
        conn.request("GET", path, headers=self.auth if u.netloc == self.api_host else {})
        r = conn.getresponse()
        body = r.read()
        self.requests += 1
        if r.status in (301, 302, 303, 307, 308) and hops > 0:
            return self.get(urllib.parse.urljoin(url, r.getheader("Location")), hops - 1)
        if r.status != 200:
            raise RuntimeError("GET %s: %d %r" % (url, r.status, body[:200]))
        return body

    def api(self, path):
        return json.loads(self.get("http://%s%s" % (self.api_host, path)))

    def store_file(self, model_id, kind, body):
        folder = os.path.join(self.data, str(model_id))
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, kind)
        with open(path + ".tmp", "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.rename(path + ".tmp", path)
        self.files += 1
        return path

    def sync_job(self, job):
        """One listed job (the list carries Show Job's shape: backfill asks no more)."""
        rows = []
        complete = [m for m in job.get("models") or [] if m.get("state") == "complete"]
        for m in complete:
            for kind, url in urls(m.get("artifacts"), ""):
                rows.append((m["id"], kind, url))
            for im in m.get("images") or []:
                if isinstance(im, dict) and im.get("url"):
                    rows.append((m["id"], "image.%d" % im["id"], im["url"]))
        stored = []
        for model_id, kind, url in rows:
            body = self.get(url)
            path = self.store_file(model_id, kind, body)
            stored.append((model_id, kind, path, hashlib.sha256(body).hexdigest(), len(body)))
        self.db.execute("BEGIN")
        self.db.execute("INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?)",
                        (job["id"], job.get("name"), job.get("updated_at"), json.dumps(job)))
        for m in job.get("models") or []:
            self.db.execute("INSERT OR REPLACE INTO models VALUES (?, ?, ?, ?)",
                            (m["id"], job["id"], m.get("state"), m.get("updated_at")))
        self.db.executemany("INSERT OR REPLACE INTO artifacts VALUES (?, ?, ?, ?, ?)", stored)
        self.db.execute("COMMIT")
        self.models += len(complete)
        if complete:
            self.plan[job["id"]] = [m["id"] for m in complete]

    def run(self, since):
        """Every job updated since `since` (unix seconds), oldest first, as backfill walks."""
        page = 1
        while True:
            q = urllib.parse.urlencode({"per": 100, "page": page, "sort_by": "updated_at",
                                        "sort_order": "ASC", "updated_since": since})
            out = self.api("/api/v3/jobs?" + q)
            for job in out.get("results") or []:
                self.sync_job(job)
            nxt = (out.get("pagination") or {}).get("next_page")
            if not nxt or not out.get("results"):
                break
            page = nxt

    def close(self):
        for c in self.conns.values():
            c.close()
        self.db.close()


def urls(v, path):
    """(dotted path, URL) of every http(s) string under v, as hoversync walks artifacts."""
    if isinstance(v, str):
        if v.lower().startswith(("http://", "https://")):
            yield path or "url", v
    elif isinstance(v, dict):
        for k, e in v.items():
            yield from urls(e, path + "." + k if path else k)
    elif isinstance(v, list):
        for i, e in enumerate(v):
            yield from urls(e, "%s.%d" % (path, i) if path else str(i))


def unix_seconds(iso):
    from datetime import datetime
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def run_baseline(world):
    folder = tempfile.mkdtemp(prefix="hs-baseline-")
    try:
        b = Baseline(world.sb, world.sb.tokens()["access_token"], folder)
        t0 = time.monotonic()
        # backfill's --since compares whole seconds too: the same jobs
        b.run(unix_seconds(world.cutoff))
        elapsed = time.monotonic() - t0
        b.close()
        return {"models": b.models, "elapsed": elapsed, "requests": b.requests,
                "files": b.files, "plan": b.plan}
    finally:
        remove_later(shutil.rmtree, folder, True)


# ---- hoversync ---------------------------------------------------------------------------------

class PeakRss:
    """The peak RSS (VmHWM) of a running process, read from /proc every 20 ms until stop(). Not
    wait4's ru_maxrss: the child Python forks (vfork) carries the bench's own RSS into it, which
    that figure then shows whatever hoversync uses. Under a prefix (strace) it is not read."""

    def __init__(self, pid, prefix):
        self.pid, self.kib, self.done = pid, 0, threading.Event()
        self.thread = None if prefix else threading.Thread(target=self.run, daemon=True)
        if self.thread:
            self.thread.start()

    def read(self):
        try:
            with open("/proc/%d/status" % self.pid) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        self.kib = max(self.kib, int(line.split()[1]))
        except (OSError, ValueError):
            pass

    def run(self):
        while not self.done.wait(0.02):
            self.read()

    def stop(self):
        self.done.set()
        if self.thread:
            self.thread.join()


def run_backfill(world, prefix=(), binary=None):
    """`backfill --sync` on a fresh store, under prefix (strace) if given; binary: another
    build's hoversync (--before)."""
    cli = world.cli()
    try:
        t0 = time.monotonic()
        proc = subprocess.Popen([*prefix, binary or world.harness.HOVERSYNC_BIN, "backfill",
                                 "--sync",
                                 "--since", world.cutoff], env=cli.env, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        peak = PeakRss(proc.pid, prefix)
        out = proc.stdout.read().decode()
        _, status, usage = os.wait4(proc.pid, 0)
        peak.stop()
        elapsed = time.monotonic() - t0
        if not os.WIFEXITED(status) or os.WEXITSTATUS(status) not in (0, 1):
            raise RuntimeError("backfill failed: " + out)
        art = cli.sql("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM artifacts")[0]
        return {"models": synced_models(cli), "elapsed": elapsed, "rss_kib": peak.kib,
                "jobs": cli.sql("SELECT COUNT(*) FROM jobs")[0][0], "artifacts": art[0],
                "bytes": art[1]}
    finally:
        remove_later(cli.cleanup)


def run_queue(world, plan, binary=None):
    """serve's workers: a POST /api/syncs per job, timed until every model is synced; binary:
    another build's hoversync (--before)."""
    h = world.harness
    this_bin = h.HOVERSYNC_BIN
    h.HOVERSYNC_BIN = binary or this_bin
    svc = h.Service(world.sb, world.sb.tokens(),
                    args=["--caller-rate-limit", 0, "--reconcile-interval", 0,
                          "--pending-interval", 0],
                    HOVERSYNC_RATE_LIMIT=0, HOVERSYNC_ARTIFACTS="all")
    try:
        want = sum(len(v) for v in plan.values())
        seq = world.sb.last_seq()
        t0 = time.monotonic()
        for job_id, models in plan.items():
            r = svc.request("POST", "/api/syncs", {"job_id": job_id, "model_ids": models})
            if r.status != 202:
                raise RuntimeError("POST /api/syncs job %d: %d %r" % (job_id, r.status, r.body))
        posted = time.monotonic() - t0
        done, last, seen = 0, time.monotonic(), -1
        while done < want and time.monotonic() - last < 120:
            done = synced_models(svc.cli)
            if done != seen:
                seen, last = done, time.monotonic()
            time.sleep(0.1)
        elapsed = time.monotonic() - t0
        if done < want:
            print("  queue: %d of %d models synced, no progress for 120 s" % (done, want))
        shows = sum(1 for e in world.sb.requests(seq) if e.get("listener", "api") == "api" and
                    e["method"] == "GET" and e["path"].startswith("/api/v3/jobs/"))
        return {"models": done, "elapsed": elapsed, "posted": posted, "show_jobs": shows}
    finally:
        svc.stop()
        remove_later(svc.cleanup)
        h.HOVERSYNC_BIN = this_bin


def fsyncs_per_model(world, binary=None):
    """strace -f -c -w of backfill --sync: ({syscall: calls}, seconds in them, the run)."""
    if not shutil.which("strace"):
        return None
    out = tempfile.NamedTemporaryFile(prefix="hs-strace-", delete=False)
    out.close()
    try:
        # -w: the time in those calls is wall-clock (a thread waiting for the disk), not CPU
        r = run_backfill(world, ["strace", "-f", "-c", "-w", "-e", "trace=fsync,fdatasync,syncfs",
                                 "-o", out.name], binary)
        calls, secs = {}, 0.0
        with open(out.name) as f:
            for line in f:
                fields = line.split()
                if fields and fields[-1] in ("fsync", "fdatasync", "syncfs"):
                    calls[fields[-1]] = int(fields[3])
                    secs += float(fields[1])
        return calls, secs, r
    finally:
        os.unlink(out.name)


# ---- the report --------------------------------------------------------------------------------

def rate(r):
    return r["models"] / r["elapsed"] if r and r["elapsed"] else 0.0


def print_fsyncs(world, label="", binary=None):
    st = fsyncs_per_model(world, binary)
    if st is None:
        print("  fsync/fdatasync/syncfs per model: skipped, strace is not installed "
              "(scripts/install-deps.sh --bench)")
        return
    calls, secs, r = st
    n = sum(calls.values())
    print("  fsync/fdatasync/syncfs per synced model%s (backfill --sync under strace -f -c -w): "
          "%.1f  (%s in all for %d models, %d artifacts; %.2f s waiting in those calls, "
          "summed over threads; %.2f s wall under strace)" %
          (label, n / r["models"] if r["models"] else 0,
           " + ".join("%d %s" % (v, k) for k, v in sorted(calls.items())) or "0",
           r["models"], r["artifacts"], secs, r["elapsed"]))


def builds(args):
    """(label, binary) of each build that runs: --before's first, then this one (None)."""
    if not args.before:
        return [("", None)]
    return [(" (before)", os.path.join(args.before, "src", "cli", "hoversync")), (" (after)", None)]


def side_by_side(harness, args, latency, only):
    world = World(harness, args.jobs, latency)
    try:
        print("latency %d ms per request, %d jobs (updated since %s):" %
              (latency, args.jobs, world.cutoff))
        if only & {"baseline", "backfill", "queue"}:
            # also when not shown: the ratios are to it, and it gives the queue its models
            base = run_baseline(world)
        if "baseline" in only:
            print("  baseline  %6.1f models/s  %d models in %.2f s, %d requests, %d files" %
                  (rate(base), base["models"], base["elapsed"], base["requests"], base["files"]))
        for label, binary in builds(args) if "backfill" in only else ():
            r = run_backfill(world, binary=binary)
            print("  backfill%-9s %6.1f models/s  %d models in %.2f s  %.2fx baseline  "
                  "(%d artifacts, %.1f MB; peak RSS %.1f MiB)" %
                  (label, rate(r), r["models"], r["elapsed"], rate(r) / rate(base),
                   r["artifacts"], r["bytes"] / 1e6, r["rss_kib"] / 1024))
        for label, binary in builds(args) if "queue" in only else ():
            r = run_queue(world, base["plan"], binary)
            print("  queue%-12s %6.1f models/s  %d models in %.2f s  %.2fx baseline  "
                  "(%d POST /api/syncs answered in %.2f s; %d Show Job)" %
                  (label, rate(r), r["models"], r["elapsed"], rate(r) / rate(base),
                   len(base["plan"]), r["posted"], r["show_jobs"]))
        for label, binary in builds(args) if "strace" in only and latency == 0 else ():
            print_fsyncs(world, label, binary)
    finally:
        world.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=300, help="jobs synced side by side [300]")
    ap.add_argument("--latency", default="0,50",
                    help="injected latency per request, ms, comma-separated [0,50]")
    ap.add_argument("--rss-jobs", type=int, default=1000,
                    help="jobs of the peak RSS run of backfill --sync [1000]")
    ap.add_argument("--only", default=",".join(PARTS),
                    help="parts to run, comma-separated, of: " + ", ".join(PARTS))
    ap.add_argument("--build", default=os.path.join(here, "..", "build", "release"),
                    help="build directory with the binaries [build/release]")
    ap.add_argument("--before", default=None,
                    help="another build directory whose hoversync also runs backfill, strace "
                    "and rss, before this build's")
    args = ap.parse_args()
    only = set(args.only.split(","))
    if only - set(PARTS):
        ap.error("unknown part: " + ", ".join(sorted(only - set(PARTS))))
    os.environ.setdefault("HOVER_SANDBOX_BIN", os.path.join(args.build, "sandbox", "hover-sandbox"))
    os.environ.setdefault("HOVERSYNC_BIN", os.path.join(args.build, "src", "cli", "hoversync"))
    import harness

    try:
        load = os.getloadavg()[0]
        print("load average (1 min) at the start: %.2f" % load)
    except OSError:
        pass
    if only & {"baseline", "backfill", "queue", "strace"}:
        for latency in (int(x) for x in args.latency.split(",") if x.strip()):
            side_by_side(harness, args, latency, only)
    if "rss" in only:
        world = World(harness, args.rss_jobs, 0)
        try:
            for label, binary in builds(args):
                r = run_backfill(world, binary=binary)
                print("peak RSS of backfill --sync%s over %d jobs: %.1f MiB  (%d models in %.2f s, "
                      "%.1f models/s, 0 ms)" % (label, r["jobs"], r["rss_kib"] / 1024, r["models"],
                                                r["elapsed"], rate(r)))
        finally:
            world.stop()
    try:
        print("load average (1 min) at the end: %.2f" % os.getloadavg()[0])
    except OSError:
        pass


if __name__ == "__main__":
    main()
