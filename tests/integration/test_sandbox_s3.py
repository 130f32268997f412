#!/usr/bin/env python3
"""test_sandbox_s3.py: the sandbox's S3 listener, driven over loopback by two signers that share
no code with it: AWS Signature Version 4 written here with hmac and hashlib, and curl's
--aws-sigv4 (the code libcurl's CURLOPT_AWS_SIGV4 runs). It checks what a client would notice:
objects stored and read back (ranges, ETags), listings and their pages, multipart uploads and
their checks, buckets, presigned URLs and session tokens, every refusal with AWS's code, the
store's capacity, injected faults per operation and the request log.

Standard library only. The binary comes from $HOVER_SANDBOX_BIN or the first argument.
"""

import atexit
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import xml.etree.ElementTree as ET

BIN = os.environ.get("HOVER_SANDBOX_BIN")
if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
    BIN = sys.argv.pop(1)

KEY = "AKIAIOSFODNN7EXAMPLE"  # the sandbox's default credentials (AWS's documentation example)
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
REGION = "us-east-1"
EMPTY_SHA = hashlib.sha256(b"").hexdigest()
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
MIN_PART = 64  # --s3-min-part-size for the tests: small parts, same rules

_procs = []


@atexit.register
def _kill_leftovers():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()


class Sandbox:
    """A hover-sandbox with its S3 listener on free ports; port file and request log in a temp
    dir."""

    def __init__(self, *args, s3=True):
        self.dir = tempfile.mkdtemp(prefix="hs-sandbox-s3-")
        self.port_file = os.path.join(self.dir, "ports")
        self.log_path = os.path.join(self.dir, "requests.jsonl")
        self.err_path = os.path.join(self.dir, "stderr.txt")
        cmd = [BIN, "--port-file", self.port_file, "--request-log", self.log_path, "--jobs", "5",
               "--log-level", "warn"]
        if s3:
            cmd += ["--s3-listen", "127.0.0.1:0", "--s3-min-part-size", str(MIN_PART)]
        cmd += list(args)
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.err)
        _procs.append(self.proc)
        deadline = time.monotonic() + 60
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("sandbox did not start: " + self.stderr())
            time.sleep(0.02)
        with open(self.port_file) as f:
            self.ports = [int(x) for x in f.read().split()]
        self.ready_line = self.proc.stdout.readline().decode()
        self.api_port = self.ports[0]
        self.s3_port = self.ports[2] if s3 else None

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def admin(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=30)
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None)
            r = conn.getresponse()
            data = r.read()
            return r.status, json.loads(data) if data else None
        finally:
            conn.close()

    def requests(self, since=0):
        return self.admin("GET", "/__sandbox/requests?since=%d" % since)[1]["requests"]

    def last_seq(self):
        return self.admin("GET", "/__sandbox/requests")[1]["last_seq"]

    def store(self):
        return self.admin("GET", "/__sandbox/s3")[1]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.proc.returncode


# ---- an independent SigV4 signer ----

def uri_encode(s, slash_too=True):
    """AWS's UriEncode: every byte but A-Z a-z 0-9 - . _ ~ as %XX (and '/' kept for paths)."""
    return urllib.parse.quote(s, safe="-_.~" if slash_too else "/-_.~")


def canonical_query(pairs):
    enc = sorted((uri_encode(k), uri_encode(v)) for k, v in pairs)
    return "&".join("%s=%s" % kv for kv in enc)


def signing_key(secret, date8, region, service="s3"):
    k = hmac.new(("AWS4" + secret).encode(), date8.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def amz_now(offset_s=0):
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() + offset_s))


class Resp:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def xml(self):
        return ET.fromstring(self.body)

    def code(self):
        """The <Code> of an S3 error body."""
        return self.xml().findtext("Code")


class S3:
    """Signs requests the way AWS's documentation says, with hmac/hashlib only."""

    def __init__(self, port, key=KEY, secret=SECRET, region=REGION, token=None):
        self.port, self.key, self.secret, self.region, self.token = port, key, secret, region, token
        self.host = "127.0.0.1:%d" % port

    def sign(self, method, path, query, headers, payload_hash, amz_date, signed=None):
        """Adds X-Amz-Date and Authorization to headers (a list of pairs, repeats kept) and
        returns them; `signed` limits the signed headers (default: all)."""
        headers = list(headers) + [("X-Amz-Date", amz_date)]
        names = {}
        for k, v in headers + [("Host", self.host)]:
            names.setdefault(k.lower(), []).append(" ".join(v.split()))
        sign_names = sorted(n for n in names if signed is None or n in signed or n == "host")
        creq = "\n".join([method, uri_encode(path, slash_too=False), canonical_query(query),
                          "".join("%s:%s\n" % (n, ",".join(names[n])) for n in sign_names),
                          ";".join(sign_names), payload_hash])
        scope = "%s/%s/s3/aws4_request" % (amz_date[:8], self.region)
        sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(creq.encode()).hexdigest()])
        sig = hmac.new(signing_key(self.secret, amz_date[:8], self.region), sts.encode(),
                       hashlib.sha256).hexdigest()
        headers.append(("Authorization", "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, "
                        "Signature=%s" % (self.key, scope, ";".join(sign_names), sig)))
        return headers

    def presign(self, method, path, query=(), expires=600, amz_date=None):
        amz_date = amz_date or amz_now()
        scope = "%s/%s/s3/aws4_request" % (amz_date[:8], self.region)
        q = list(query) + [("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
                           ("X-Amz-Credential", "%s/%s" % (self.key, scope)),
                           ("X-Amz-Date", amz_date), ("X-Amz-Expires", str(expires)),
                           ("X-Amz-SignedHeaders", "host")]
        if self.token:
            q.append(("X-Amz-Security-Token", self.token))
        creq = "\n".join([method, uri_encode(path, slash_too=False), canonical_query(q),
                          "host:%s\n" % self.host, "host", "UNSIGNED-PAYLOAD"])
        sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(creq.encode()).hexdigest()])
        sig = hmac.new(signing_key(self.secret, amz_date[:8], self.region), sts.encode(),
                       hashlib.sha256).hexdigest()
        return q + [("X-Amz-Signature", sig)]

    def send(self, method, target, headers, body=b""):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", self.host)
            for k, v in headers:
                conn.putheader(k, v)
            if body or method in ("PUT", "POST"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body if body else None)
            r = conn.getresponse()
            return Resp(r.status, r.headers, r.read())
        finally:
            conn.close()

    def request(self, method, path, query=(), body=b"", headers=(), payload="auto",
                amz_date=None, signed=None, raw_path=None):
        """payload: "auto" (the body's SHA-256), None (no x-amz-content-sha256), or a value."""
        headers = list(headers)
        if payload == "auto":
            payload = hashlib.sha256(body).hexdigest()
        if payload is not None:
            headers.append(("x-amz-content-sha256", payload))
        if self.token:
            headers.append(("X-Amz-Security-Token", self.token))
        headers = self.sign(method, path, query, headers,
                            payload if payload is not None else EMPTY_SHA,
                            amz_date or amz_now(), signed)
        target = raw_path or uri_encode(path, slash_too=False)
        if query:
            target += "?" + "&".join("%s=%s" % (uri_encode(k), uri_encode(v)) for k, v in query)
        return self.send(method, target, headers, body)

    def put(self, bucket, key, body, **kw):
        return self.request("PUT", "/%s/%s" % (bucket, key), body=body, **kw)

    def get(self, bucket, key, **kw):
        return self.request("GET", "/%s/%s" % (bucket, key), **kw)


def md5_etag(data):
    return '"%s"' % hashlib.md5(data).hexdigest()


def keys_of(listing):
    return [c.findtext(NS + "Key") for c in listing.findall(NS + "Contents")]


def prefixes_of(listing):
    return [c.findtext(NS + "Prefix") for c in listing.findall(NS + "CommonPrefixes")]


class S3ListenerTest(unittest.TestCase):
    sb = None

    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox("--s3-bucket", "bkt", "--s3-bucket", "other", "--s3-capacity", "64M")
        cls.s3 = S3(cls.sb.s3_port)

    @classmethod
    def tearDownClass(cls):
        if cls.sb:
            assert cls.sb.stop() == 0

    def tearDown(self):
        self.sb.admin("DELETE", "/__sandbox/faults")

    # ---- start-up ----

    def test_ready_line_and_port_file(self):
        m = re.fullmatch(r"hover-sandbox ready api=http://127\.0\.0\.1:(\d+) "
                         r"storage=http://127\.0\.0\.1:(\d+) s3=http://127\.0\.0\.1:(\d+) jobs=5\n",
                         self.sb.ready_line)
        self.assertIsNotNone(m, self.sb.ready_line)
        self.assertEqual([int(m.group(i)) for i in (1, 2, 3)], self.sb.ports)
        status, cfg = self.sb.admin("GET", "/__sandbox/config")
        self.assertEqual(cfg["s3"], "http://127.0.0.1:%d" % self.sb.s3_port)
        store = self.sb.store()
        self.assertEqual(store["capacity"], 64 << 20)
        self.assertEqual(store["min_part_size"], MIN_PART)
        self.assertEqual(store["access_key"], KEY)
        self.assertNotIn("secret", json.dumps(store).lower())
        self.assertEqual([b["name"] for b in store["buckets"]], ["bkt", "other"])

    def test_without_the_option_there_is_no_s3_listener(self):
        sb = Sandbox(s3=False)
        try:
            self.assertEqual(len(sb.ports), 2)
            self.assertNotIn("s3=", sb.ready_line)
            self.assertEqual(sb.admin("GET", "/__sandbox/s3")[0], 404)
            self.assertIsNone(sb.admin("GET", "/__sandbox/config")[1]["s3"])
        finally:
            self.assertEqual(sb.stop(), 0)

    def test_usage_errors(self):
        for bad in (["--s3-bucket", "bkt"], ["--s3-listen", "127.0.0.1:0", "--s3-bucket", "B_ad"],
                    ["--s3-listen", "127.0.0.1:0", "--s3-capacity", "12X"],
                    ["--s3-listen", "127.0.0.1:0", "--s3-min-part-size", "0"],
                    ["--s3-listen", "nowhere:port"], ["--s3-listen", "127.0.0.1:0",
                                                      "--s3-access-key", "a/b"],
                    ["--s3-listen", "127.0.0.1:0", "--s3-secret-key", ""],
                    ["--fault", "path=/bkt,op=PutObjekt,status=500"]):
            r = subprocess.run([BIN, *bad], capture_output=True, timeout=30)
            self.assertEqual(r.returncode, 2, bad)
            self.assertTrue(r.stderr, bad)
        r = subprocess.run([BIN, "--help"], capture_output=True, timeout=30)
        for word in (b"--s3-listen", b"--s3-access-key", b"--s3-secret-key", b"--s3-session-token",
                     b"--s3-region", b"--s3-bucket", b"--s3-capacity", b"--s3-min-part-size",
                     b"--s3-dir"):
            self.assertIn(word, r.stdout)

    # ---- objects ----

    def test_put_get_head_delete(self):
        data = b"hello, object storage\n" * 10
        r = self.s3.put("bkt", "round/trip.txt", data, headers=[("Content-Type", "text/plain")])
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.headers["ETag"], md5_etag(data))
        self.assertTrue(r.headers["x-amz-request-id"])
        r = self.s3.get("bkt", "round/trip.txt")
        self.assertEqual((r.status, r.body), (200, data))
        self.assertEqual(r.headers["ETag"], md5_etag(data))
        self.assertEqual(r.headers["Content-Type"], "text/plain")
        self.assertTrue(r.headers["Last-Modified"].endswith(" GMT"))
        r = self.s3.request("HEAD", "/bkt/round/trip.txt")
        self.assertEqual((r.status, r.body), (200, b""))
        self.assertEqual(int(r.headers["Content-Length"]), len(data))
        self.assertEqual(r.headers["ETag"], md5_etag(data))
        # ranges
        r = self.s3.get("bkt", "round/trip.txt", headers=[("Range", "bytes=7-12")])
        self.assertEqual((r.status, r.body), (206, data[7:13]))
        self.assertEqual(r.headers["Content-Range"], "bytes 7-12/%d" % len(data))
        r = self.s3.get("bkt", "round/trip.txt", headers=[("Range", "bytes=-5")])
        self.assertEqual((r.status, r.body), (206, data[-5:]))
        r = self.s3.get("bkt", "round/trip.txt", headers=[("Range", "bytes=%d-" % len(data))])
        self.assertEqual((r.status, r.code()), (416, "InvalidRange"))
        r = self.s3.get("bkt", "round/trip.txt", headers=[("Range", "bytes=0-1,4-5")])
        self.assertEqual((r.status, r.body), (200, data))  # S3 ignores several ranges
        # replace, delete
        r = self.s3.put("bkt", "round/trip.txt", b"v2")
        self.assertEqual(self.s3.get("bkt", "round/trip.txt").body, b"v2")
        r = self.s3.request("DELETE", "/bkt/round/trip.txt")
        self.assertEqual((r.status, r.body), (204, b""))
        r = self.s3.get("bkt", "round/trip.txt")
        self.assertEqual((r.status, r.code()), (404, "NoSuchKey"))
        self.assertEqual(r.xml().findtext("Key"), "round/trip.txt")
        r = self.s3.request("HEAD", "/bkt/round/trip.txt")
        self.assertEqual((r.status, r.body), (404, b""))
        self.assertEqual(self.s3.request("DELETE", "/bkt/round/trip.txt").status, 204)
        r = self.s3.get("nobucket", "k")
        self.assertEqual((r.status, r.code()), (404, "NoSuchBucket"))
        # an empty object
        self.assertEqual(self.s3.put("bkt", "empty", b"").status, 200)
        r = self.s3.get("bkt", "empty")
        self.assertEqual((r.status, r.body, r.headers["ETag"]), (200, b"", md5_etag(b"")))

    def test_keys_are_encoded_once(self):
        keys = ["sp ace/plus+sign", "dollar$and=equals&amp", "tilde~under_score.dot-dash",
                "unicode/\u00e9t\u00e9/\u1234", "a%2Fb literally", "semi;colon,comma'quote"]
        for k in keys:
            body = k.encode() * 3
            r = self.s3.put("bkt", "enc/" + k, body)
            self.assertEqual(r.status, 200, (k, r.body))
            r = self.s3.get("bkt", "enc/" + k)
            self.assertEqual((r.status, r.body), (200, body), k)
        r = self.s3.request("GET", "/bkt", query=[("list-type", "2"), ("prefix", "enc/")])
        self.assertEqual(sorted(keys_of(r.xml())), sorted("enc/" + k for k in keys))
        # A client that leaves '$' unescaped on the wire names the same key: S3 decodes the path
        # and encodes it once for the signature.
        r = self.s3.request("GET", "/bkt/enc/dollar$and=equals&amp",
                            raw_path="/bkt/enc/dollar$and=equals%26amp")
        self.assertEqual((r.status, r.body), (200, b"dollar$and=equals&amp" * 3))
        r = self.s3.request("PUT", "/bkt/" + "k" * 1025, body=b"x")
        self.assertEqual((r.status, r.code()), (400, "KeyTooLongError"))

    def test_payload_hash_and_digest_checks(self):
        body = b"the body as sent"
        r = self.s3.put("bkt", "sha/wrong", body, payload=hashlib.sha256(b"other").hexdigest())
        self.assertEqual((r.status, r.code()), (400, "XAmzContentSHA256Mismatch"))
        self.assertEqual(r.xml().findtext("S3ComputedContentSHA256"),
                         hashlib.sha256(body).hexdigest())
        self.assertEqual(self.s3.get("bkt", "sha/wrong").status, 404)  # nothing half-stored
        # UNSIGNED-PAYLOAD is accepted, as AWS accepts it as the signed header's value.
        r = self.s3.put("bkt", "sha/unsigned", body, payload="UNSIGNED-PAYLOAD")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.s3.get("bkt", "sha/unsigned").body, body)
        r = self.s3.put("bkt", "sha/none", body, payload=None)
        self.assertEqual((r.status, r.code()), (400, "InvalidRequest"))
        self.assertIn(b"x-amz-content-sha256", r.body)
        r = self.s3.put("bkt", "sha/stream", body, payload="STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
        self.assertEqual((r.status, r.code()), (501, "NotImplemented"))
        r = self.s3.put("bkt", "sha/bad", body, payload="abc")
        self.assertEqual((r.status, r.code()), (400, "InvalidArgument"))
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        r = self.s3.put("bkt", "sha/md5", body, headers=[("Content-MD5", md5)])
        self.assertEqual(r.status, 200, r.body)
        wrong = base64.b64encode(hashlib.md5(b"x").digest()).decode()
        r = self.s3.put("bkt", "sha/md5", body, headers=[("Content-MD5", wrong)])
        self.assertEqual((r.status, r.code()), (400, "BadDigest"))
        r = self.s3.put("bkt", "sha/md5", body, headers=[("Content-MD5", "nope")])
        self.assertEqual((r.status, r.code()), (400, "InvalidDigest"))
        # A GET's empty body is checked too.
        r = self.s3.get("bkt", "sha/md5", payload=hashlib.sha256(b"x").hexdigest())
        self.assertEqual((r.status, r.code()), (400, "XAmzContentSHA256Mismatch"))

    def test_if_none_match_star(self):
        self.assertEqual(self.s3.put("bkt", "once", b"1", headers=[("If-None-Match", "*")]).status,
                         200)
        r = self.s3.put("bkt", "once", b"2", headers=[("If-None-Match", "*")])
        self.assertEqual((r.status, r.code()), (412, "PreconditionFailed"))
        self.assertEqual(self.s3.get("bkt", "once").body, b"1")

    # ---- signatures ----

    def test_signature_refusals(self):
        self.assertEqual(self.s3.put("bkt", "auth/k", b"data").status, 200)
        cases = [
            (S3(self.s3.port, secret="wrong-secret"), {}, 403, "SignatureDoesNotMatch"),
            (S3(self.s3.port, key="AKIAOTHERKEY"), {}, 403, "InvalidAccessKeyId"),
            (S3(self.s3.port, region="eu-west-1"), {}, 400, "AuthorizationHeaderMalformed"),
            (self.s3, {"amz_date": amz_now(-20 * 60)}, 403, "RequestTimeTooSkewed"),
            (self.s3, {"amz_date": amz_now(+20 * 60)}, 403, "RequestTimeTooSkewed"),
            (self.s3, {"headers": [("x-amz-meta-color", "red")], "signed": {"x-amz-date",
                       "x-amz-content-sha256"}}, 403, "AccessDenied"),
            (self.s3, {"headers": [("X-Amz-Security-Token", "t")]}, 403, "InvalidToken"),
        ]
        for client, kw, status, code in cases:
            r = client.get("bkt", "auth/k", **kw)
            self.assertEqual((r.status, r.code()), (status, code), (kw, r.body))
        r = S3(self.s3.port, secret="wrong-secret").get("bkt", "auth/k")
        x = r.xml()
        self.assertTrue(x.findtext("CanonicalRequest").startswith("GET\n/bkt/auth/k\n\nhost:"))
        self.assertEqual(x.findtext("AWSAccessKeyId"), KEY)
        self.assertIn("20", x.findtext("StringToSign"))
        # 14 minutes of skew are allowed
        self.assertEqual(self.s3.get("bkt", "auth/k", amz_date=amz_now(-14 * 60)).status, 200)
        # No signature at all.
        r = self.s3.send("GET", "/bkt/auth/k", [("x-amz-content-sha256", EMPTY_SHA)])
        self.assertEqual((r.status, r.code()), (403, "AccessDenied"))
        # Signed for one key, sent for another.
        h = self.s3.sign("GET", "/bkt/auth/k", [], [("x-amz-content-sha256", EMPTY_SHA)],
                         EMPTY_SHA, amz_now())
        r = self.s3.send("GET", "/bkt/auth/other", h)
        self.assertEqual((r.status, r.code()), (403, "SignatureDoesNotMatch"))
        # A header's repeats are signed in the order sent: the listener keeps that order.
        r = self.s3.get("bkt", "auth/k", headers=[("My-Header", "b"), ("My-Header", "a   z")])
        self.assertEqual(r.status, 200, r.body)
        # The query is canonicalised: any order on the wire.
        for q in ([("prefix", "auth/"), ("list-type", "2")],
                  [("list-type", "2"), ("prefix", "auth/")]):
            r = self.s3.request("GET", "/bkt", query=q)
            self.assertEqual(keys_of(r.xml()), ["auth/k"])

    def test_presigned_urls(self):
        data = b"shared through a presigned URL"
        self.assertEqual(self.s3.put("bkt", "pre/file.pdf", data).status, 200)
        q = self.s3.presign("GET", "/bkt/pre/file.pdf", [("response-content-disposition",
                                                          'attachment; filename="x.pdf"')])
        target = "/bkt/pre/file.pdf?" + urllib.parse.urlencode(q, quote_via=urllib.parse.quote)
        r = self.s3.send("GET", target, [])
        self.assertEqual((r.status, r.body), (200, data))
        self.assertEqual(r.headers["Content-Disposition"], 'attachment; filename="x.pdf"')
        # expired: signed two hours ago for one hour
        q = self.s3.presign("GET", "/bkt/pre/file.pdf", expires=3600, amz_date=amz_now(-7200))
        r = self.s3.send("GET", "/bkt/pre/file.pdf?" + urllib.parse.urlencode(q), [])
        self.assertEqual((r.status, r.code()), (403, "AccessDenied"))
        self.assertEqual(r.xml().findtext("Message"), "Request has expired")
        # a week is the most
        q = self.s3.presign("GET", "/bkt/pre/file.pdf", expires=604801)
        r = self.s3.send("GET", "/bkt/pre/file.pdf?" + urllib.parse.urlencode(q), [])
        self.assertEqual((r.status, r.code()), (400, "AuthorizationQueryParametersError"))
        # tampered: a longer life than signed
        q = [(k, "7200" if k == "X-Amz-Expires" else v)
             for k, v in self.s3.presign("GET", "/bkt/pre/file.pdf", expires=600)]
        r = self.s3.send("GET", "/bkt/pre/file.pdf?" + urllib.parse.urlencode(q), [])
        self.assertEqual((r.status, r.code()), (403, "SignatureDoesNotMatch"))
        # both forms at once
        q = self.s3.presign("GET", "/bkt/pre/file.pdf")
        h = self.s3.sign("GET", "/bkt/pre/file.pdf", [], [], EMPTY_SHA, amz_now())
        r = self.s3.send("GET", "/bkt/pre/file.pdf?" + urllib.parse.urlencode(q), h)
        self.assertEqual((r.status, r.code()), (400, "InvalidArgument"))
        # a presigned PUT (the body is not signed: UNSIGNED-PAYLOAD)
        q = self.s3.presign("PUT", "/bkt/pre/upload.bin")
        r = self.s3.send("PUT", "/bkt/pre/upload.bin?" + urllib.parse.urlencode(q), [], b"up")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.s3.get("bkt", "pre/upload.bin").body, b"up")

    # ---- listing ----

    def test_list_objects(self):
        keys = ["list/%03d" % i for i in range(25)] + ["list/sub/a", "list/sub/b", "list/zz/c"]
        for k in keys:
            self.assertEqual(self.s3.put("bkt", k, b"x").status, 200)
        got, token, pages = [], None, 0
        while True:
            q = [("list-type", "2"), ("prefix", "list/"), ("max-keys", "10")]
            if token:
                q.append(("continuation-token", token))
            r = self.s3.request("GET", "/bkt", query=q)
            self.assertEqual(r.status, 200, r.body)
            x = r.xml()
            got += keys_of(x)
            pages += 1
            self.assertEqual(int(x.findtext(NS + "KeyCount")), len(keys_of(x)))
            if x.findtext(NS + "IsTruncated") == "false":
                self.assertIsNone(x.find(NS + "NextContinuationToken"))
                break
            token = x.findtext(NS + "NextContinuationToken")
        self.assertEqual(got, sorted(keys))
        self.assertEqual(pages, 3)
        x = self.s3.request("GET", "/bkt", query=[("list-type", "2"), ("prefix", "list/"),
                                                  ("delimiter", "/")]).xml()
        self.assertEqual(keys_of(x), ["list/%03d" % i for i in range(25)])
        self.assertEqual(prefixes_of(x), ["list/sub/", "list/zz/"])
        x = self.s3.request("GET", "/bkt", query=[("list-type", "2"), ("prefix", "list/"),
                                                  ("start-after", "list/023")]).xml()
        self.assertEqual(keys_of(x), ["list/024", "list/sub/a", "list/sub/b", "list/zz/c"])
        # ListObjects (V1), as in the S3 documentation's example: max-keys and prefix
        x = self.s3.request("GET", "/bkt", query=[("max-keys", "2"), ("prefix", "list/0")]).xml()
        self.assertEqual(keys_of(x), ["list/000", "list/001"])
        self.assertEqual(x.findtext(NS + "IsTruncated"), "true")
        x = self.s3.request("GET", "/bkt", query=[("marker", x.findtext(NS + "NextMarker")),
                                                  ("prefix", "list/0"), ("max-keys", "2")]).xml()
        self.assertEqual(keys_of(x), ["list/002", "list/003"])
        # encoding-type=url
        self.assertEqual(self.s3.put("bkt", "list-enc/a b", b"x").status, 200)
        x = self.s3.request("GET", "/bkt", query=[("list-type", "2"), ("prefix", "list-enc/"),
                                                  ("encoding-type", "url")]).xml()
        self.assertEqual(keys_of(x), ["list-enc/a%20b"])
        r = self.s3.request("GET", "/bkt", query=[("list-type", "2"), ("max-keys", "x")])
        self.assertEqual((r.status, r.code()), (400, "InvalidArgument"))
        r = self.s3.request("GET", "/bkt", query=[("list-type", "2"),
                                                  ("continuation-token", "zz")])
        self.assertEqual((r.status, r.code()), (400, "InvalidArgument"))
        r = self.s3.request("GET", "/nobucket", query=[("list-type", "2")])
        self.assertEqual((r.status, r.code()), (404, "NoSuchBucket"))

    # ---- buckets ----

    def test_buckets(self):
        self.assertEqual(self.s3.request("PUT", "/made-here").status, 200)
        r = self.s3.request("PUT", "/made-here")
        self.assertEqual((r.status, r.code()), (409, "BucketAlreadyOwnedByYou"))
        r = self.s3.request("PUT", "/Bad_Name")
        self.assertEqual((r.status, r.code()), (400, "InvalidBucketName"))
        self.assertEqual(self.s3.request("HEAD", "/made-here").status, 200)
        self.assertEqual(self.s3.request("HEAD", "/never-made").status, 404)
        x = self.s3.request("GET", "/").xml()
        names = [b.findtext(NS + "Name") for b in x.iter(NS + "Bucket")]
        self.assertIn("made-here", names)
        self.assertEqual(self.s3.put("made-here", "k", b"x").status, 200)
        r = self.s3.request("DELETE", "/made-here")
        self.assertEqual((r.status, r.code()), (409, "BucketNotEmpty"))
        self.assertEqual(self.s3.request("DELETE", "/made-here/k").status, 204)
        self.assertEqual(self.s3.request("DELETE", "/made-here").status, 204)
        r = self.s3.request("DELETE", "/made-here")
        self.assertEqual((r.status, r.code()), (404, "NoSuchBucket"))
        r = self.s3.request("GET", "/bkt", query=[("acl", "")])
        self.assertEqual((r.status, r.code()), (501, "NotImplemented"))
        r = self.s3.request("POST", "/")
        self.assertEqual((r.status, r.code()), (405, "MethodNotAllowed"))

    # ---- multipart uploads ----

    def create_upload(self, key):
        r = self.s3.request("POST", "/bkt/" + key, query=[("uploads", "")],
                            headers=[("Content-Type", "application/pdf")])
        self.assertEqual(r.status, 200, r.body)
        x = r.xml()
        self.assertEqual(x.findtext(NS + "Key"), key)
        return x.findtext(NS + "UploadId")

    def upload_part(self, key, upload_id, n, data):
        return self.s3.request("PUT", "/bkt/" + key, body=data,
                               query=[("partNumber", str(n)), ("uploadId", upload_id)])

    def complete(self, key, upload_id, parts):
        body = "<CompleteMultipartUpload>%s</CompleteMultipartUpload>" % "".join(
            "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>" % p for p in parts)
        return self.s3.request("POST", "/bkt/" + key, body=body.encode(),
                               query=[("uploadId", upload_id)])

    def test_multipart_upload(self):
        key = "mp/big.pdf"
        upload_id = self.create_upload(key)
        chunks = [os.urandom(MIN_PART), os.urandom(MIN_PART + 7), os.urandom(10)]
        etags = []
        for i, c in enumerate(chunks, 1):
            r = self.upload_part(key, upload_id, i, c)
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.headers["ETag"], md5_etag(c))
            etags.append(r.headers["ETag"])
        # not visible until completed
        self.assertEqual(self.s3.get("bkt", key).status, 404)
        uploads = [u for b in self.sb.store()["buckets"] if b["name"] == "bkt"
                   for u in b["uploads"] if u["upload_id"] == upload_id]
        self.assertEqual([p["size"] for p in uploads[0]["parts"]], [len(c) for c in chunks])
        # the checks, none of which changes anything
        bad = [(1, etags[0]), (2, md5_etag(b"not it")), (3, etags[2])]
        r = self.complete(key, upload_id, bad)
        self.assertEqual((r.status, r.code()), (400, "InvalidPart"))
        r = self.complete(key, upload_id, [(2, etags[1]), (1, etags[0])])
        self.assertEqual((r.status, r.code()), (400, "InvalidPartOrder"))
        r = self.complete(key, upload_id, [(1, etags[0]), (3, etags[2]), (4, etags[2])])
        self.assertEqual((r.status, r.code()), (400, "InvalidPart"))
        r = self.complete(key, upload_id, [(3, etags[2]), (4, etags[2])])
        self.assertEqual(r.status, 400)
        r = self.s3.request("POST", "/bkt/" + key, body=b"<CompleteMultipartUpload>",
                            query=[("uploadId", upload_id)])
        self.assertEqual((r.status, r.code()), (400, "MalformedXML"))
        r = self.upload_part(key, upload_id, 10001, b"x")
        self.assertEqual((r.status, r.code()), (400, "InvalidArgument"))
        # a part under the minimum that is not the last one
        small_id = self.create_upload("mp/small")
        e1 = self.upload_part("mp/small", small_id, 1, b"tiny").headers["ETag"]
        e2 = self.upload_part("mp/small", small_id, 2, b"last").headers["ETag"]
        r = self.complete("mp/small", small_id, [(1, e1), (2, e2)])
        self.assertEqual((r.status, r.code()), (400, "EntityTooSmall"))
        self.assertEqual(self.s3.request("DELETE", "/bkt/mp/small",
                                         query=[("uploadId", small_id)]).status, 204)
        r = self.upload_part("mp/small", small_id, 3, b"x")
        self.assertEqual((r.status, r.code()), (404, "NoSuchUpload"))
        # complete with the right list; ETags with or without quotes
        r = self.complete(key, upload_id, [(1, etags[0]), (2, etags[1].strip('"')),
                                           (3, etags[2])])
        self.assertEqual(r.status, 200, r.body)
        want = '"%s-3"' % hashlib.md5(b"".join(hashlib.md5(c).digest() for c in chunks)).hexdigest()
        self.assertEqual(r.xml().findtext(NS + "ETag"), want)
        r = self.s3.get("bkt", key)
        self.assertEqual((r.status, r.body), (200, b"".join(chunks)))
        self.assertEqual(r.headers["ETag"], want)
        self.assertEqual(r.headers["Content-Type"], "application/pdf")
        r = self.complete(key, upload_id, [(1, etags[0])])
        self.assertEqual((r.status, r.code()), (404, "NoSuchUpload"))

    # ---- faults and the request log ----

    def test_faults_per_operation(self):
        sb = self.sb
        self.assertEqual(self.s3.put("bkt", "f/obj", b"0123456789" * 100).status, 200)
        seq = sb.last_seq()
        status, _ = sb.admin("POST", "/__sandbox/faults", {"op": "PutObject", "status": 503,
                                                           "count": 1})
        self.assertEqual(status, 201)
        r = self.s3.put("bkt", "f/retry", b"payload")
        self.assertEqual((r.status, r.code()), (503, "SlowDown"))
        self.assertEqual(r.headers["Retry-After"], "1")
        self.assertEqual(self.s3.get("bkt", "f/retry").status, 404)  # the fault came first
        self.assertEqual(self.s3.put("bkt", "f/retry", b"payload").status, 200)
        # other operations are untouched by an op= rule
        sb.admin("POST", "/__sandbox/faults", {"op": "UploadPart", "drop": True, "count": 1})
        self.assertEqual(self.s3.get("bkt", "f/retry").status, 200)
        upload_id = self.create_upload("f/mp")
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            self.upload_part("f/mp", upload_id, 1, b"p" * MIN_PART)
        up = [u for b in sb.store()["buckets"] for u in b["uploads"] if u["upload_id"] == upload_id]
        self.assertEqual(up[0]["parts"], [])  # dropped before storing
        self.assertEqual(self.upload_part("f/mp", upload_id, 1, b"p" * MIN_PART).status, 200)
        # a truncated download
        sb.admin("POST", "/__sandbox/faults", {"op": "GetObject", "path": "/bkt/f/*",
                                               "truncate": True, "count": 1})
        with self.assertRaises(http.client.IncompleteRead):
            self.s3.get("bkt", "f/obj")
        self.assertEqual(self.s3.get("bkt", "f/obj").body, b"0123456789" * 100)
        # a slow answer, and a 500 as S3 words it
        sb.admin("POST", "/__sandbox/faults", {"op": "HeadObject", "latency_ms": 50, "count": 1})
        self.assertEqual(self.s3.request("HEAD", "/bkt/f/obj").status, 200)
        sb.admin("POST", "/__sandbox/faults", {"op": "ListObjectsV2", "status": 500, "count": 1})
        r = self.s3.request("GET", "/bkt", query=[("list-type", "2")])
        self.assertEqual((r.status, r.code()), (500, "InternalError"))
        status, body = sb.admin("POST", "/__sandbox/faults", {"op": "Nope", "status": 500})
        self.assertEqual(status, 422)
        log = [e for e in sb.requests(seq) if e["listener"] == "s3"]
        faults = [(e["op"], e["fault"], e["status"]) for e in log if e["fault"] != "none"]
        self.assertEqual(faults, [("PutObject", "status", 503), ("UploadPart", "drop", 0),
                                  ("GetObject", "truncate", 200), ("HeadObject", "latency", 200),
                                  ("ListObjectsV2", "status", 500)])

    def test_request_log(self):
        sb = self.sb
        seq = sb.last_seq()
        self.s3.put("bkt", "log/a", b"abc")
        S3(self.s3.port, secret="bad").get("bkt", "log/a")
        q = self.s3.presign("GET", "/bkt/log/a")
        self.s3.send("GET", "/bkt/log/a?" + urllib.parse.urlencode(q), [])
        log = [e for e in sb.requests(seq) if e["listener"] == "s3"]
        self.assertEqual([(e["method"], e["op"], e["bucket"], e["key"], e["status"],
                           e["auth_type"], e["s3_error"], e["client_id"]) for e in log],
                         [("PUT", "PutObject", "bkt", "log/a", 200, "header", None, KEY),
                          ("GET", "GetObject", "bkt", "log/a", 403, "header",
                           "SignatureDoesNotMatch", KEY),
                          ("GET", "GetObject", "bkt", "log/a", 200, "presigned", None, KEY)])
        self.assertEqual(log[0]["request_bytes"], 3)
        self.assertEqual(log[2]["bytes"], 3)
        self.assertTrue(log[2]["query"].startswith("X-Amz-Algorithm="))
        self.assertTrue(all(e["auth"] is (e["auth_type"] == "header") for e in log))
        self.assertTrue(re.fullmatch(r"[0-9A-F]{16}", log[0]["request_id"]))


class S3TokenAndCapacityTest(unittest.TestCase):

    def test_session_token(self):
        sb = Sandbox("--s3-bucket", "tok", "--s3-session-token", "FwoGZXIvYXdzEXAMPLE+/=",
                     "--s3-access-key", "ASIATEMPKEY", "--s3-secret-key", "temp/secret+key",
                     "--s3-region", "eu-central-1")
        try:
            s3 = S3(sb.s3_port, key="ASIATEMPKEY", secret="temp/secret+key",
                    region="eu-central-1", token="FwoGZXIvYXdzEXAMPLE+/=")
            self.assertEqual(s3.put("tok", "k", b"v").status, 200)
            self.assertEqual(s3.get("tok", "k").body, b"v")
            plain = S3(sb.s3_port, key="ASIATEMPKEY", secret="temp/secret+key",
                       region="eu-central-1")
            r = plain.get("tok", "k")
            self.assertEqual((r.status, r.code()), (403, "InvalidToken"))
            wrong = S3(sb.s3_port, key="ASIATEMPKEY", secret="temp/secret+key",
                       region="eu-central-1", token="other")
            self.assertEqual(wrong.get("tok", "k").code(), "InvalidToken")
            # the token must be signed
            r = s3.get("tok", "k", signed={"x-amz-date", "x-amz-content-sha256"})
            self.assertEqual((r.status, r.code()), (403, "AccessDenied"))
            q = s3.presign("GET", "/tok/k")
            r = s3.send("GET", "/tok/k?" + urllib.parse.urlencode(q), [])
            self.assertEqual((r.status, r.body), (200, b"v"))
            seq_entries = [e for e in sb.requests() if e["listener"] == "s3"]
            self.assertIn("X-Amz-Security-Token=REDACTED", seq_entries[-1]["query"])
            with open(sb.log_path) as f:
                self.assertNotIn("FwoGZXIvYXdzEXAMPLE", f.read())
            self.assertNotIn("temp/secret", sb.stderr())
        finally:
            self.assertEqual(sb.stop(), 0)

    def test_capacity_and_body_limit(self):
        sb = Sandbox("--s3-bucket", "small", "--s3-capacity", "1K")
        try:
            s3 = S3(sb.s3_port)
            self.assertEqual(s3.put("small", "a", b"a" * 800).status, 200)
            r = s3.put("small", "b", b"b" * 300)
            self.assertEqual((r.status, r.code()), (507, "SandboxStorageFull"))
            self.assertIn("800 of 1024 bytes", r.xml().findtext("Message"))
            self.assertEqual(s3.get("small", "b").status, 404)
            r = s3.put("small", "c", b"c" * 2000)
            self.assertEqual((r.status, r.code()), (400, "EntityTooLarge"))
            self.assertEqual(s3.request("DELETE", "/small/a").status, 204)
            self.assertEqual(s3.put("small", "b", b"b" * 300).status, 200)
            self.assertEqual(sb.store()["used"], 300)
        finally:
            self.assertEqual(sb.stop(), 0)

    def test_directory_survives_a_restart(self):
        d = tempfile.mkdtemp(prefix="hs-s3-dir-")
        try:
            sb = Sandbox("--s3-bucket", "keep", "--s3-dir", os.path.join(d, "objects"))
            s3 = S3(sb.s3_port)
            self.assertEqual(s3.put("keep", "x/y", b"durable").status, 200)
            self.assertEqual(sb.stop(), 0)
            sb = Sandbox("--s3-dir", os.path.join(d, "objects"))
            try:
                r = S3(sb.s3_port).get("keep", "x/y")
                self.assertEqual((r.status, r.body), (200, b"durable"))
                self.assertEqual(r.headers["ETag"], md5_etag(b"durable"))
            finally:
                self.assertEqual(sb.stop(), 0)
        finally:
            shutil.rmtree(d, ignore_errors=True)


CURL = shutil.which("curl")


def curl_version():
    out = subprocess.run([CURL, "--version"], capture_output=True, text=True).stdout
    return out.split()[1] if out else ""


@unittest.skipUnless(CURL, "curl is not installed")
class CurlSigV4Test(unittest.TestCase):
    """curl --aws-sigv4 is libcurl's CURLOPT_AWS_SIGV4, which hoversync's S3 client uses."""

    @classmethod
    def setUpClass(cls):
        cls.sb = Sandbox("--s3-bucket", "curl")
        cls.base = "http://127.0.0.1:%d" % cls.sb.s3_port
        cls.tmp = tempfile.mkdtemp(prefix="hs-curl-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        assert cls.sb.stop() == 0

    def curl(self, *args, secret=SECRET, sha=EMPTY_SHA, user_key=KEY):
        cmd = [CURL, "-sS", "-v", "--aws-sigv4", "aws:amz:%s:s3" % REGION, "--user",
               "%s:%s" % (user_key, secret), "-w", "\n%{http_code}"]
        if sha:
            cmd += ["-H", "x-amz-content-sha256: " + sha]
        r = subprocess.run(cmd + list(args), capture_output=True, timeout=60)
        body, _, code = r.stdout.rpartition(b"\n")
        auth = re.search(rb"^> Authorization: (.*?)\r?$", r.stderr, re.M)
        self.last_dates = [d.decode() for d in re.findall(rb"^> X-Amz-Date: (\S+)", r.stderr,
                                                            re.M)]
        return int(code), body, auth.group(1).decode() if auth else None

    def test_put_get_head_delete_list(self):
        path = os.path.join(self.tmp, "upload.bin")
        data = os.urandom(5000)
        with open(path, "wb") as f:
            f.write(data)
        sha = hashlib.sha256(data).hexdigest()
        code, body, _ = self.curl("-T", path, self.base + "/curl/dir/file%20one.bin", sha=sha)
        self.assertEqual(code, 200, body)
        out = os.path.join(self.tmp, "download.bin")
        code, _, _ = self.curl("-o", out, self.base + "/curl/dir/file%20one.bin")
        self.assertEqual(code, 200)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), data)
        code, _, _ = self.curl("-I", self.base + "/curl/dir/file%20one.bin")
        self.assertEqual(code, 200)
        # ListObjectsV2: curl 7.88 signs the query as written, so it is written canonically
        code, body, _ = self.curl(self.base + "/curl?list-type=2&prefix=dir%2F")
        self.assertEqual(code, 200, body)
        self.assertEqual(keys_of(ET.fromstring(body)), ["dir/file one.bin"])
        # CreateMultipartUpload needs "uploads=" spelt out for the same reason
        code, body, _ = self.curl("-X", "POST", self.base + "/curl/dir/mp?uploads=")
        self.assertEqual(code, 200, body)
        code, _, _ = self.curl("-X", "DELETE", self.base + "/curl/dir/file%20one.bin")
        self.assertEqual(code, 204)
        code, body, _ = self.curl(self.base + "/curl/dir/file%20one.bin")
        self.assertEqual((code, ET.fromstring(body).findtext("Code")), (404, "NoSuchKey"))

    def test_refusals(self):
        url = self.base + "/curl/refused"
        code, body, _ = self.curl(url, secret="forged-secret")
        self.assertEqual((code, ET.fromstring(body).findtext("Code")),
                         (403, "SignatureDoesNotMatch"))
        code, body, _ = self.curl(url, secret=SECRET, user_key="AKIAFORGEDKEY")
        self.assertEqual((code, ET.fromstring(body).findtext("Code")), (403, "InvalidAccessKeyId"))
        # A signature taken from a curl request and put on another one.
        code, _, auth = self.curl(url)
        self.assertEqual(code, 404)
        headers = [("Authorization", auth), ("X-Amz-Date", self.last_dates[0]),
                   ("x-amz-content-sha256", EMPTY_SHA)]
        s3 = S3(self.sb.s3_port)
        self.assertEqual(s3.send("GET", "/curl/refused", headers).code(), "NoSuchKey")
        self.assertEqual(s3.send("GET", "/curl/other", headers).code(), "SignatureDoesNotMatch")
        stale = amz_now(-30 * 60)
        code, body, _ = self.curl("-H", "X-Amz-Date: " + stale, url)
        self.assertEqual((code, ET.fromstring(body).findtext("Code")),
                         (403, "RequestTimeTooSkewed"))
        code, body, _ = self.curl(url, sha=None)
        self.assertEqual((code, ET.fromstring(body).findtext("Code")), (400, "InvalidRequest"))
        # An upload of unknown length goes out chunked, which S3 refuses for a plain PUT.
        with open(os.path.join(self.tmp, "stdin.bin"), "wb") as f:
            f.write(b"streamed")
        with open(os.path.join(self.tmp, "stdin.bin"), "rb") as f:
            r = subprocess.run([CURL, "-sS", "--aws-sigv4", "aws:amz:%s:s3" % REGION, "--user",
                                "%s:%s" % (KEY, SECRET), "-H", "x-amz-content-sha256: "
                                "UNSIGNED-PAYLOAD", "-T", "-", "-w", "\n%{http_code}",
                                self.base + "/curl/chunked"], stdin=f, capture_output=True,
                               timeout=60)
        body, _, code = r.stdout.rpartition(b"\n")
        self.assertEqual((int(code), ET.fromstring(body).findtext("Code")),
                         (411, "MissingContentLength"))

    @unittest.skipUnless(curl_version() == "7.88.1",
                         "what curl signs is pinned for curl 7.88.1 (Debian 12); this is "
                         "curl %s" % curl_version())
    def test_what_curl_7_88_signs(self):
        """The findings docs/SANDBOX.md records for the S3 client built on libcurl 7.88."""
        path = os.path.join(self.tmp, "small.bin")
        with open(path, "wb") as f:
            f.write(b"abc")
        sha = hashlib.sha256(b"abc").hexdigest()
        # Signed: host, x-amz-date and every header given with -H, nothing else (not
        # Content-Length, Content-Type set by curl itself, User-Agent, Accept, Expect).
        code, _, auth = self.curl("-T", path, self.base + "/curl/pin/a", sha=sha)
        self.assertEqual(code, 200)
        self.assertIn("SignedHeaders=host;x-amz-content-sha256;x-amz-date,", auth)
        code, _, auth = self.curl("-T", path, "-H", "Content-Type: text/plain", "-H",
                                  "X-Amz-Meta-Sha256: " + sha, self.base + "/curl/pin/b", sha=sha)
        self.assertEqual(code, 200)
        self.assertIn("SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;"
                      "x-amz-meta-sha256,", auth)
        # The payload hash it signs is the x-amz-content-sha256 header's value, whatever the
        # body: a wrong value is signed as sent and caught by the body check...
        code, body, _ = self.curl("-T", path, self.base + "/curl/pin/c",
                                  sha=hashlib.sha256(b"other").hexdigest())
        self.assertEqual((code, ET.fromstring(body).findtext("Code")),
                         (400, "XAmzContentSHA256Mismatch"))
        # ...and without the header it signs the hash of an empty payload for an upload (-T),
        # adding no header: S3 refuses the request.
        code, body, auth = self.curl("-T", path, self.base + "/curl/pin/d", sha=None)
        self.assertIn("SignedHeaders=host;x-amz-date,", auth)
        self.assertEqual(code, 400)
        # The query is signed as written (not sorted, "uploads" without "="): a query that is not
        # already canonical fails.
        code, body, _ = self.curl(self.base + "/curl?prefix=pin%2F&list-type=2")
        self.assertEqual((code, ET.fromstring(body).findtext("Code")),
                         (403, "SignatureDoesNotMatch"))
        code, body, _ = self.curl("-X", "POST", self.base + "/curl/pin/mp?uploads")
        self.assertEqual((code, ET.fromstring(body).findtext("Code")),
                         (403, "SignatureDoesNotMatch"))
        # A caller's X-Amz-Date is signed as the date, but curl sends the header twice (its own
        # and the caller's): the repeated header's values join in the canonical request, and the
        # signature (computed over one) does not match.
        date = amz_now(-300)
        code, body, _ = self.curl("-H", "X-Amz-Date: " + date, self.base + "/curl/pin/a")
        x = ET.fromstring(body)
        self.assertEqual((code, x.findtext("Code")), (403, "SignatureDoesNotMatch"))
        self.assertIn("\nx-amz-date:%s,%s\n" % (date, date), x.findtext("CanonicalRequest"))
        # The path is signed as written too: a key must go out percent-encoded the S3 way.
        code, body, _ = self.curl(self.base + "/curl/pin/a%24")
        self.assertEqual(code, 404)  # signed fine, no such key
        code, body, _ = self.curl(self.base + "/curl/pin/a$")
        self.assertEqual((code, ET.fromstring(body).findtext("Code")),
                         (403, "SignatureDoesNotMatch"))


if __name__ == "__main__":
    if not BIN or not os.access(BIN, os.X_OK):
        sys.exit("test_sandbox_s3.py: set HOVER_SANDBOX_BIN or pass the hover-sandbox path")
    unittest.main(verbosity=2)
