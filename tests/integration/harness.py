"""Shared pieces of the integration tests: start the real hover-sandbox on a free port, talk to
its admin routes, and run the real hoversync binary against it with a fresh store: a SQLite file
by default, or, with HS_TEST_INTEGRATION_STORE=postgresql and HS_TEST_PG_URL (on_postgresql.py
under tests/support/pg_cluster.sh), a fresh database of that throw-away cluster (store_location,
Cli.sql).

Binaries come from HOVER_SANDBOX_BIN and HOVERSYNC_BIN (set by meson). Every answer of a service
started here is checked against the API's contract, docs/openapi.yaml (contract.py: Debian's
python3-jsonschema and python3-yaml); the rest is the standard library.
"""
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import contract

SANDBOX_BIN = os.environ.get("HOVER_SANDBOX_BIN", "build/sandbox/hover-sandbox")
HOVERSYNC_BIN = os.environ.get("HOVERSYNC_BIN", "build/src/cli/hoversync")
CLIENT_ID = "sandbox-client"
CLIENT_SECRET = "sandbox-secret"
MAIN_ORG = 463605

# Waits are longer in the sanitizer build.
SLOW = 3 if os.environ.get("HOVERSYNC_SANITIZED") == "1" else 1


def free_port():
    """A loopback port free now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(what, pred, timeout=30):
    """pred()'s first true value, polled every 0.1 s for timeout seconds (times SLOW)."""
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


# The store under test: PostgreSQL when the cluster of tests/support/pg_cluster.sh is given.
# Only the runs that ask for it (tests/integration/on_postgresql.py) put every store on
# PostgreSQL; other tests under pg_cluster.sh (the fleet, store copy) choose their stores.
PG_URL = (os.environ.get("HS_TEST_PG_URL")
          if os.environ.get("HS_TEST_INTEGRATION_STORE") == "postgresql" else None)


def on_postgresql():
    return PG_URL is not None


def _pg_url(dbname):
    """PG_URL with its database replaced by dbname."""
    scheme, rest = PG_URL.split("://", 1)
    return scheme + "://" + re.sub(r"/[^/?]*", "/" + dbname, rest, count=1)


def _pg_name(d):
    """The database of the test directory d."""
    return "hs_" + hashlib.sha1(os.path.abspath(d).encode()).hexdigest()[:20]


def _pg_literal(v):
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, float)):
        return repr(v)
    return "'" + str(v).replace("'", "''") + "'"


_NULL = "\x01NULL\x01"


def _pg_value(v):
    """A psql field as the sqlite3 module would give it: None, int, float, bool (t/f), bytes
    (bytea, which psql shows as \\x and hex) or str."""
    if v == _NULL:
        return None
    if re.fullmatch(r"\\x(?:[0-9a-f]{2})+", v):
        return bytes.fromhex(v[2:])
    if re.fullmatch(r"-?\d+", v):
        return int(v)
    if re.fullmatch(r"-?\d+\.\d+(e[-+]?\d+)?", v):
        return float(v)
    if v in ("t", "f"):
        return v == "t"
    return v


def psql(url, query, params=()):
    """Runs query (with ? placeholders, as sqlite3 takes them) on url; the rows as tuples."""
    parts = query.split("?")
    if len(parts) != len(params) + 1:
        raise ValueError("%d parameters for %r" % (len(params), query))
    sql = parts[0] + "".join(_pg_literal(p) + rest for p, rest in zip(params, parts[1:]))
    r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-F", "\x1f",
                        "-R", "\x1e", "-P", "null=" + _NULL, "-d", url, "-c", sql],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("psql %r: %s" % (sql, r.stderr))
    out = r.stdout[:-1] if r.stdout.endswith("\n") else r.stdout
    return [tuple(_pg_value(f) for f in rec.split("\x1f")) for rec in out.split("\x1e") if rec]


def store_location(d):
    """The store of the test directory d, as HOVERSYNC_DB takes it: d/hoversync.db, or on
    PostgreSQL a database named after d (made from the cluster's database, which has the
    extensions, when it does not exist yet), so that a second service given d shares it."""
    if not on_postgresql():
        return os.path.join(d, "hoversync.db")
    admin, name = _pg_url("postgres"), _pg_name(d)
    if not psql(admin, "SELECT 1 FROM pg_database WHERE datname = ?", (name,)):
        template = re.search(r"/([^/?]+)", PG_URL.split("://", 1)[1]).group(1)
        psql(admin, 'CREATE DATABASE "%s" TEMPLATE "%s"' % (name, template))
    return _pg_url(name)


def store_drop(d):
    """Removes the store of the test directory d (on SQLite it goes with the directory)."""
    if on_postgresql():
        psql(_pg_url("postgres"), 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % _pg_name(d))


# Showcase jobs of the sandbox (fixed ids whatever the seed; see docs/SANDBOX.md).
JOB_ALL_COMPLETE = 15084301  # "Main House", 4312 Meadow Drive, 3 complete models
JOB_ONE_FAILED = 15084302  # 3 models, the garage failed
JOB_PROCESSING = 15084303  # one model complete, one processing
JOB_FAILED = 15084304  # every model failed
CAPTURING_USER = "jordan.reyes@summitroofing.example"

# The sandbox's S3 listener (Sandbox(*S3_ARGS)): its default credential and a bucket.
S3_KEY = "AKIAIOSFODNN7EXAMPLE"
S3_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
S3_BUCKET = "hoversync"
S3_ARGS = ("--s3-listen", "127.0.0.1:0", "--s3-bucket", S3_BUCKET)


def s3_env(sb, prefix="fleet", part_size=None):
    """The environment of a hoversync keeping its files in the sandbox's bucket under prefix
    (part_size: multipart uploads above it)."""
    env = {"HOVERSYNC_BLOBS": "s3://%s/%s" % (S3_BUCKET, prefix),
           "HOVERSYNC_S3_ENDPOINT": "http://127.0.0.1:%d" % sb.s3_port,
           "AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET}
    if part_size:
        env["HOVERSYNC_S3_PART_SIZE"] = str(part_size)
    return env


class Sandbox:
    """A hover-sandbox process on 127.0.0.1, stopped by stop() (or at exit of the test)."""

    def __init__(self, *args, jobs=300, seed=42):
        self.dir = tempfile.mkdtemp(prefix="hs-sandbox-")
        port_file = os.path.join(self.dir, "port")
        self.log_path = os.path.join(self.dir, "requests.log")
        cmd = [SANDBOX_BIN, "--seed", str(seed), "--jobs", str(jobs), "--port-file", port_file,
               "--request-log", self.log_path, *args]
        self.stderr = open(os.path.join(self.dir, "stderr"), "w")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.stderr)
        deadline = time.time() + 20
        while time.time() < deadline:
            if os.path.exists(port_file) and os.path.getsize(port_file) > 0:
                break
            if self.proc.poll() is not None:
                raise RuntimeError("hover-sandbox exited: " + self.read_stderr())
            time.sleep(0.02)
        else:
            self.stop()
            raise RuntimeError("hover-sandbox did not start")
        with open(port_file) as f:
            ports = f.read().split()
        self.port = int(ports[0])
        self.storage_port = int(ports[1]) if len(ports) > 1 else None
        self.s3_port = int(ports[2]) if len(ports) > 2 else None  # with --s3-listen
        self.url = "http://127.0.0.1:%d" % self.port

    def read_stderr(self):
        with open(os.path.join(self.dir, "stderr")) as f:
            return f.read()

    def call(self, method, path, body=None, headers=None):
        """An HTTP request to the sandbox; returns (status, headers, parsed JSON or bytes)."""
        data = None
        hdrs = dict(headers or {})
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, rh, raw = r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            status, rh, raw = e.code, dict(e.headers), e.read()
        try:
            return status, rh, json.loads(raw) if raw else None
        except ValueError:
            return status, rh, raw

    def admin(self, method, path, body=None):
        status, _, data = self.call(method, "/__sandbox/" + path, body)
        if status >= 300:
            raise RuntimeError("admin %s %s: %s %r" % (method, path, status, data))
        return data

    def tokens(self, org_id=MAIN_ORG):
        return self.admin("POST", "tokens", {"org_id": org_id})

    def requests(self, since=0):
        return self.admin("GET", "requests?since=%d" % since)["requests"]

    def last_seq(self):
        return self.admin("GET", "requests")["last_seq"]

    def clear_requests(self):
        self.admin("DELETE", "requests")

    def fault(self, **rule):
        return self.admin("POST", "faults", rule)

    def clear_faults(self):
        self.admin("DELETE", "faults")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Cli:
    """The hoversync binary with its own store (store_location) and environment, connected to a
    sandbox."""

    def __init__(self, sandbox, tokens=None, **env):
        self.dir = tempfile.mkdtemp(prefix="hs-cli-")
        self.db = store_location(self.dir)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("HOVER") and not k.startswith("HOVERSYNC")}
        self.env.update({
            "HOVERSYNC_DB": self.db,
            "HOVER_BASE_URL": sandbox.url if sandbox else "http://127.0.0.1:9",
            "HOVER_CLIENT_ID": CLIENT_ID,
            "HOVER_CLIENT_SECRET": CLIENT_SECRET,
        })
        if tokens:
            self.env["HOVER_ACCESS_TOKEN"] = tokens["access_token"]
            self.env["HOVER_REFRESH_TOKEN"] = tokens["refresh_token"]
        self.env.update({k: str(v) for k, v in env.items()})

    def run(self, *args, timeout=120, input=None):
        return subprocess.run([HOVERSYNC_BIN, *map(str, args)], env=self.env, timeout=timeout,
                              capture_output=True, text=True, input=input)

    def run_measured(self, *args):
        """Runs hoversync and returns (returncode, stdout, stderr, peak RSS in KiB) of that
        process alone (the rusage of wait4, not the maximum over every child so far)."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.Popen([HOVERSYNC_BIN, *map(str, args)], env=self.env,
                                    stdout=out, stderr=err)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            return proc.returncode, out.read().decode(), err.read().decode(), usage.ru_maxrss

    def json(self, *args):
        r = self.run(*args, "--json")
        if r.returncode != 0:
            raise AssertionError("hoversync %s failed (%d): %s" % (args, r.returncode, r.stderr))
        return json.loads(r.stdout)

    def sql(self, query, params=()):
        """Reads the store as a CRM developer would: the SQLite file with the sqlite3 module, or
        the PostgreSQL database with psql (values typed as sqlite3 gives them; ? placeholders)."""
        if on_postgresql():
            return psql(self.db, query, params)
        import sqlite3
        con = sqlite3.connect(self.db, timeout=30)
        try:
            rows = con.execute(query, params).fetchall()
            con.commit()
            return rows
        finally:
            con.close()

    def cleanup(self):
        store_drop(self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)


def api_requests(entries, path_prefix="/api/"):
    """The logged requests to Hover's API (not OAuth, not storage), in order."""
    return [e for e in entries if e.get("listener", "api") == "api"
            and e["path"].startswith(path_prefix)]


class Response:
    """An HTTP answer: status, headers (an http.client.HTTPMessage), body bytes, JSON or None."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def header(self, name):
        return self.headers.get(name)

    def cookies(self):
        """{name: (value, attributes string)} of the Set-Cookie headers."""
        out = {}
        for c in self.headers.get_all("Set-Cookie") or []:
            first, _, attrs = c.partition(";")
            name, _, value = first.partition("=")
            out[name.strip()] = (value.strip(), attrs)
        return out


def http_request(port, method, path, body=None, headers=None, timeout=60):
    """One request on a fresh connection to 127.0.0.1:port; redirects are not followed. The
    answer of a service started by Service must be one docs/openapi.yaml describes (else
    contract.ContractError, and the test fails)."""
    import http.client
    hdrs = dict(headers or {})
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
        hdrs.setdefault("Content-Type", "application/json")
    if isinstance(body, str):
        body = body.encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        resp = Response(r.status, r.headers, r.read())
    finally:
        conn.close()
    if port in contract.SERVICE_PORTS:
        contract.check(method, path, resp.status, resp.headers, resp.body)
    return resp


class Service:
    """`hoversync serve` on a free port of 127.0.0.1 with its own SQLite file and data directory,
    talking to a sandbox; stop() sends SIGTERM and returns the exit status.

    tokens: a pair (sandbox.tokens()) seeded as connection `connection`; api_key: the
    HOVERSYNC_API_KEY (None: the service generates one, read from its stderr)."""

    def __init__(self, sandbox, tokens=None, args=(), connection="org-%d" % MAIN_ORG,
                 api_key="test-api-key-0123456789abcdef", db_dir=None, **env):
        self.cli = Cli(sandbox, tokens, HOVERSYNC_CONNECTION=connection, **env)
        if db_dir:  # reuse another instance's store (restart tests)
            self.cli.db = store_location(db_dir)
            self.cli.env["HOVERSYNC_DB"] = self.cli.db
        self.dir = db_dir or self.cli.dir
        self.cli.env["HOVERSYNC_DATA_DIR"] = os.path.join(self.dir, "data")
        if api_key:
            self.cli.env["HOVERSYNC_API_KEY"] = api_key
        self.api_key = api_key
        self.port_file = os.path.join(self.cli.dir, "service.port")
        self.stderr_path = os.path.join(self.cli.dir, "service.stderr")
        self.stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(
            [HOVERSYNC_BIN, "serve", "--listen", "127.0.0.1:0", "--port-file", self.port_file,
             *map(str, args)],
            env=self.cli.env, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.lines = []
        deadline = time.time() + 30
        while time.time() < deadline:
            if os.path.exists(self.port_file) and os.path.getsize(self.port_file) > 0:
                break
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("hoversync serve exited: " + self.read_stderr())
            time.sleep(0.02)
        else:
            self.stop()
            raise RuntimeError("hoversync serve did not start: " + self.read_stderr())
        with open(self.port_file) as f:
            self.port = int(f.read().strip())
        contract.SERVICE_PORTS.add(self.port)
        # stdout: "hoversync serving URL", then the demo CRM's URL when asked for.
        self.lines.append(self.proc.stdout.readline().strip())
        if "--demo-crm" in map(str, args):
            self.lines.append(self.proc.stdout.readline().strip())
        self.url = self.lines[0].split()[-1]
        self.demo_url = self.lines[1].split()[-1] if len(self.lines) > 1 else None
        if not api_key:
            for line in self.read_stderr().splitlines():
                if "API key:" in line:
                    self.api_key = line.split()[-1]

    def read_stderr(self):
        with open(self.stderr_path) as f:
            return f.read()

    def request(self, method, path, body=None, headers=None, key=True, cookie=None, origin=None,
                timeout=60):
        """A request to the service: with the API key unless key is False (or another string),
        the hs_session cookie `cookie`, and an Origin header when given."""
        hdrs = dict(headers or {})
        if key is True:
            hdrs.setdefault("Authorization", "Bearer " + self.api_key)
        elif key:
            hdrs.setdefault("Authorization", key)
        if cookie:
            hdrs["Cookie"] = "hs_session=" + cookie
        if origin:
            hdrs["Origin"] = origin
        return http_request(self.port, method, path, body, hdrs, timeout)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        contract.SERVICE_PORTS.discard(getattr(self, "port", None))
        self.proc.stdout.close()
        self.stderr.close()
        return self.proc.returncode

    def cleanup(self):
        self.cli.cleanup()
