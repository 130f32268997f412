#!/usr/bin/env python3
"""Benchmark: what a slow Hover, a status poller and slow clients cost `hoversync serve`, through
real processes on loopback. Prints figures; run it against two builds to compare.

1. Show Job of one job delayed in the sandbox (--latency-ms, 45 s by default) while 8 views of it
   wait: the time /api/connections (store only), another job's view (same org) and a signed
   webhook delivery take meanwhile, and what the slow views answer, when.
2. 160 GET /api/status calls: the requests they cost at Hover (the sandbox's request log).
3. 300 connections from 5 addresses, each sending a header line every --trickle-s seconds (the
   service's header deadline is --header-timeout): how long /healthz takes meanwhile, and how
   many slow connections are closed while they still trickle.

Run on demand: bench/service_limits.py [--build DIR] [--latency-ms MS] [--only 1,2,3]."""
import argparse
import base64
import email.utils
import hashlib
import hmac
import json
import os
import socket
import sqlite3
import sys
import threading
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "integration"))


def timed(fn):
    t = time.monotonic()
    try:
        r = fn()
        return r.status, time.monotonic() - t
    except Exception as e:  # a timeout is a figure too
        return type(e).__name__, time.monotonic() - t


def signed(secret, webhook_id, body):
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    date = email.utils.formatdate(usegmt=True)
    canonical = ",".join(["application/json", md5, "/webhooks/hover", date])
    sig = base64.b64encode(hmac.new(secret.encode(), canonical.encode(),
                                    hashlib.sha256).digest()).decode()
    return {"Content-Type": "application/json", "Content-MD5": md5, "Date": date,
            "Authorization": "APIAuth-HMAC-SHA256 %d:%s" % (webhook_id, sig)}


def slow_show_job(harness, latency_ms):
    sb = harness.Sandbox("--rate-limit", "0", jobs=60)
    svc = harness.Service(sb, sb.tokens())
    try:
        secret = "YmVuY2gtc2VjcmV0LWJlbmNoLXNlY3JldA=="
        con = sqlite3.connect(svc.cli.db, timeout=30)
        con.execute("INSERT INTO webhooks (id, connection_key, url, hmac_secret, verified_at, "
                    "created_at, updated_at) VALUES (777001, ?, 'http://x/webhooks/hover', ?, "
                    "'2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
                    ("org-%d" % harness.MAIN_ORG, secret))
        con.commit()
        con.close()
        slow = "/api/v3/jobs/%d" % harness.JOB_ALL_COMPLETE
        sb.fault(path=slow, method="GET", latency_ms=latency_ms)
        views = []

        def view():
            views.append(timed(lambda: svc.get("/api/jobs/%d" % harness.JOB_ALL_COMPLETE,
                                               timeout=latency_ms / 1000 + 60)))

        threads = [threading.Thread(target=view) for _ in range(8)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        out = {}
        body = json.dumps({"event": "job-state-changed-v2", "webhook_id": 777001,
                           "job_id": harness.JOB_ONE_FAILED, "state": "completed"}).encode()
        jobs = {
            "/api/connections": lambda: svc.get("/api/connections", timeout=300),
            "another job's view": lambda: svc.get("/api/jobs/%d" % harness.JOB_ONE_FAILED,
                                                  timeout=300),
            "webhook delivery": lambda: harness.http_request(
                svc.port, "POST", "/webhooks/hover", body, signed(secret, 777001, body),
                timeout=300),
        }
        side = []
        for name, fn in jobs.items():
            def run(name=name, fn=fn):
                out[name] = timed(fn)
            side.append(threading.Thread(target=run))
        for t in side:
            t.start()
        for t in side + threads:
            t.join()
        print("1. Show Job delayed %d ms, 8 views of it waiting:" % latency_ms)
        for name in jobs:
            status, secs = out[name]
            print("   %-22s %s in %.2f s" % (name, status, secs))
        statuses = sorted(set(str(s) for s, _ in views))
        print("   the 8 slow views        %s after %.1f..%.1f s" % (
            "/".join(statuses), min(t for _, t in views), max(t for _, t in views)))
    finally:
        svc.stop()
        svc.cleanup()
        sb.stop()


def status_calls(harness):
    sb = harness.Sandbox("--rate-limit", "0", jobs=20)
    svc = harness.Service(sb, sb.tokens())
    try:
        seq = sb.last_seq()
        t0 = time.monotonic()
        codes = {}
        for _ in range(160):
            s, _ = timed(lambda: svc.get("/api/status", timeout=120))
            codes[s] = codes.get(s, 0) + 1
        hover = harness.api_requests(sb.requests(seq))
        print("2. 160 GET /api/status: %d requests to Hover (%.2f per call), answers %s, %.1f s" % (
            len(hover), len(hover) / 160.0, codes, time.monotonic() - t0))
    finally:
        svc.stop()
        svc.cleanup()
        sb.stop()


def slow_headers(harness, trickle_s, header_timeout, duration_s):
    sb = harness.Sandbox(jobs=10)
    svc = harness.Service(sb, sb.tokens(), HOVERSYNC_HEADER_TIMEOUT=header_timeout)
    socks, alive, stop = [], {}, threading.Event()
    try:
        for i in range(300):
            s = socket.socket()
            s.bind(("127.0.0.%d" % (1 + i % 5), 0))
            s.connect(("127.0.0.1", svc.port))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            socks.append(s)
            alive[i] = True

        def trickle():
            while not stop.is_set():
                for i, s in enumerate(socks):
                    if alive[i]:
                        try:
                            s.sendall(b"X-Slow: %d\r\n" % i)
                        except OSError:
                            alive[i] = False
                stop.wait(trickle_s)

        t = threading.Thread(target=trickle)
        t.start()
        time.sleep(1)
        status, secs = timed(lambda: harness.http_request(svc.port, "GET", "/healthz",
                                                          timeout=duration_s))
        deadline = time.monotonic() + duration_s
        while time.monotonic() < deadline and any(alive.values()):
            time.sleep(0.2)
        closed = sum(not a for a in alive.values())
        print("3. 300 slow-header connections (a line every %.0f s, header timeout %d s): "
              "/healthz %s in %.2f s; %d of 300 closed within %d s while trickling" % (
                  trickle_s, header_timeout, status, secs, closed, duration_s))
    finally:
        stop.set()
        for s in socks:
            s.close()
        svc.stop()
        svc.cleanup()
        sb.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", default=os.path.join(here, "..", "build", "ci"),
                    help="build directory with the binaries [build/ci]")
    ap.add_argument("--latency-ms", type=int, default=45000)
    ap.add_argument("--trickle-s", type=float, default=5)
    ap.add_argument("--header-timeout", type=int, default=10)
    ap.add_argument("--duration-s", type=int, default=40)
    ap.add_argument("--only", default="1,2,3")
    args = ap.parse_args()
    os.environ.setdefault("HOVER_SANDBOX_BIN", os.path.join(args.build, "sandbox", "hover-sandbox"))
    os.environ.setdefault("HOVERSYNC_BIN", os.path.join(args.build, "src", "cli", "hoversync"))
    import harness
    only = args.only.split(",")
    if "1" in only:
        slow_show_job(harness, args.latency_ms)
    if "2" in only:
        status_calls(harness)
    if "3" in only:
        slow_headers(harness, args.trickle_s, args.header_timeout, args.duration_s)


if __name__ == "__main__":
    main()
