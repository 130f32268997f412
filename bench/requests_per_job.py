#!/usr/bin/env python3
"""Benchmark: Hover requests per 3-model job with an artifact profile, from the sandbox's
request log, and the jobs an hour that fit in Hover's 120 requests a minute. Syncs every job of
the sandbox's main org with three complete models, once with `--artifacts all` (what every sync
fetched before profiles) and once with the default profile, each into a fresh store. Run on
demand: bench/requests_per_job.py [--jobs N] [--build DIR]."""
import argparse
import os
import statistics
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "integration"))

PER_MINUTE = 120


def three_model_jobs(harness, sb, limit):
    """Ids of jobs whose three models are all complete (as Show Job has them)."""
    cli = harness.Cli(sb, sb.tokens(), HOVERSYNC_RATE_LIMIT=0)
    try:
        found = []
        for j in cli.json("search", "--all"):
            show = cli.json("show", j["id"])
            models = show["models"]
            if len(models) == 3 and all(m["state"] == "complete" for m in models):
                found.append(j["id"])
            if len(found) >= limit:
                break
        return found
    finally:
        cli.cleanup()


def requests_per_job(harness, sb, jobs, profile):
    """[(API requests, storage hops) per job] of one sync of each job with `profile`, into a
    fresh store."""
    cli = harness.Cli(sb, sb.tokens(), HOVERSYNC_RATE_LIMIT=0, HOVERSYNC_ARTIFACTS=profile)
    cli.env["HOVERSYNC_DATA_DIR"] = os.path.join(cli.dir, "data")
    try:
        out = []
        for job in jobs:
            start = sb.last_seq()
            r = cli.run("sync", job, "--all-complete")
            if r.returncode != 0:
                raise RuntimeError("sync %d: %s" % (job, r.stderr))
            log = sb.requests(start)
            api = [e for e in log if e["listener"] == "api" and e["path"].startswith("/api/")]
            storage = [e for e in log if e["listener"] == "storage"]
            out.append((len(api), len(storage)))
        return out
    finally:
        cli.cleanup()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=20, help="3-model jobs to sync [20]")
    ap.add_argument("--build", default=os.path.join(here, "..", "build", "release"),
                    help="build directory with the binaries [build/release]")
    args = ap.parse_args()
    os.environ.setdefault("HOVER_SANDBOX_BIN", os.path.join(args.build, "sandbox", "hover-sandbox"))
    os.environ.setdefault("HOVERSYNC_BIN", os.path.join(args.build, "src", "cli", "hoversync"))
    import harness

    sb = harness.Sandbox("--rate-limit", "0", jobs=300, seed=42)
    try:
        jobs = three_model_jobs(harness, sb, args.jobs)
        print("3-model jobs (every model complete): %d" % len(jobs))
        print("%-10s %9s %9s %9s %14s %12s" % ("profile", "requests", "min", "max",
                                               "+storage hops", "jobs/hour"))
        for profile in ("all", "default"):
            got = requests_per_job(harness, sb, jobs, profile)
            api = [a for a, _ in got]
            mean = statistics.mean(api)
            print("%-10s %9.2f %9d %9d %14.2f %12.0f" % (
                profile, mean, min(api), max(api), statistics.mean(s for _, s in got),
                PER_MINUTE * 60 / mean))
        for profile in ("all", "default"):
            (api, _), = requests_per_job(harness, sb, [harness.JOB_ALL_COMPLETE], profile)
            print("showcase job %d (\"Main House\", 3 complete models), %s: %d requests, "
                  "%.0f jobs/hour" % (harness.JOB_ALL_COMPLETE, profile, api,
                                      PER_MINUTE * 60 / api))
        print("(requests: Hover API requests per job, Show Job included, from the sandbox's "
              "request log; jobs/hour: %d requests a minute / requests per job x 60)" % PER_MINUTE)
    finally:
        sb.stop()


if __name__ == "__main__":
    main()
