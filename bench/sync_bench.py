#!/usr/bin/env python3
"""Benchmark: sync 1,000 jobs from the sandbox (rate limit lifted on both sides) in one
`hoversync backfill --sync` process, and print models per second, requests per model and the
peak RSS of hoversync. Run on demand: bench/sync_bench.py [--jobs N] [--build DIR]."""
import argparse
import os
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "integration"))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=1000, help="jobs to sync [1000]")
    ap.add_argument("--build", default=os.path.join(here, "..", "build", "release"),
                    help="build directory with the binaries [build/release]")
    args = ap.parse_args()
    os.environ.setdefault("HOVER_SANDBOX_BIN", os.path.join(args.build, "sandbox", "hover-sandbox"))
    os.environ.setdefault("HOVERSYNC_BIN", os.path.join(args.build, "src", "cli", "hoversync"))
    import harness

    # The main org holds most generated jobs; ask for enough that it has args.jobs of them.
    sb = harness.Sandbox("--rate-limit", "0", jobs=int(args.jobs * 1.5) + 50, seed=1)
    try:
        # every artifact, as before artifact profiles: the figure stays comparable
        cli = harness.Cli(sb, sb.tokens(), HOVERSYNC_RATE_LIMIT=0, HOVERSYNC_ARTIFACTS="all")
        cli.env["HOVERSYNC_DATA_DIR"] = os.path.join(cli.dir, "data")
        listed = cli.json("search", "--all")
        if len(listed) < args.jobs:
            print("only %d jobs in the org" % len(listed))
        # updated_since of the args.jobs-th most recent job: the backfill walks exactly those.
        listed.sort(key=lambda j: j["updated_at"], reverse=True)
        cutoff = listed[min(args.jobs, len(listed)) - 1]["updated_at"]
        start_seq = sb.last_seq()
        t0 = time.monotonic()
        proc = subprocess.Popen([harness.HOVERSYNC_BIN, "backfill", "--sync", "--since", cutoff],
                                env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        out = proc.stdout.read().decode()
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.monotonic() - t0
        if not os.WIFEXITED(status) or os.WEXITSTATUS(status) not in (0, 1):
            print("backfill failed: " + out)
            sys.exit(1)
        peak_kb = usage.ru_maxrss
        reqs = [e for e in sb.requests(start_seq) if e["listener"] == "api"]
        storage = [e for e in sb.requests(start_seq) if e["listener"] == "storage"]
        jobs = cli.sql("SELECT COUNT(*) FROM jobs")[0][0]
        models = cli.sql("SELECT COUNT(*) FROM selections WHERE status = 'synced'")[0][0]
        artifacts = cli.sql("SELECT COUNT(*), COALESCE(SUM(bytes),0) FROM artifacts")[0]
        print("jobs walked:        %d" % jobs)
        print("models synced:      %d" % models)
        print("artifacts stored:   %d (%.1f MB)" % (artifacts[0], artifacts[1] / 1e6))
        print("elapsed:            %.2f s" % elapsed)
        print("models per second:  %.1f" % (models / elapsed if elapsed else 0))
        print("API requests:       %d (+%d storage downloads)" % (len(reqs), len(storage)))
        print("requests per model: %.2f" % (len(reqs) / models if models else 0))
        print("peak RSS:           %.1f MiB (hoversync backfill --sync)" % (peak_kb / 1024))
        cli.cleanup()
    finally:
        sb.stop()


if __name__ == "__main__":
    main()
