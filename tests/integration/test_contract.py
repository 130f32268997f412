"""The HTTP API's contract, docs/openapi.yaml:

- its paths are exactly the routes the service registers (the route table of
  src/server/server.c), besides the web files it marks x-static;
- `GET /openapi.yaml` serves it, without a key, as application/yaml;
- the check every integration test applies to the service's answers (contract.py) refuses what
  the document does not describe: an unknown route, a status not listed, a body off its schema,
  an event of a stream off its schema."""
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import contract  # noqa: E402
import harness  # noqa: E402

SOURCE_ROOT = contract.SOURCE_ROOT
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def registered_routes():
    """{(METHOD, pattern)} of the route table hs_routes[] in src/server/server.c."""
    with open(os.path.join(SOURCE_ROOT, "src", "server", "server.c")) as f:
        src = f.read()
    table = re.search(r"const struct route hs_routes\[\] = \{(.*?)\n\};", src, re.S)
    if not table:
        raise AssertionError("no route table (hs_routes[]) in src/server/server.c")
    with open(os.path.join(SOURCE_ROOT, "src", "webhook", "registration.h")) as f:
        macros = dict(re.findall(r'#define (\w+) "([^"]*)"', f.read()))
    routes = set()
    for method, pattern in re.findall(r'\{\s*"([A-Z]+)",\s*("[^"]*"|\w+)\s*,', table.group(1)):
        if not pattern.startswith('"'):
            if pattern not in macros:
                raise AssertionError("route pattern %s: macro not found" % pattern)
            pattern = '"%s"' % macros[pattern]
        routes.add((method, pattern.strip('"')))
    return routes


def documented_routes():
    """{(METHOD, path)} of the document's operations, the web files (x-static) left out."""
    out = set()
    for path, item in contract.document()["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is not None and not op.get("x-static"):
                out.add((method.upper(), path))
    return out


class RouteTable(unittest.TestCase):
    def test_every_registered_route_is_documented(self):
        routes = registered_routes()
        self.assertGreater(len(routes), 15)
        self.assertIn(("GET", "/api/jobs/{id}"), routes)
        self.assertIn(("POST", "/webhooks/hover"), routes)
        missing = sorted(routes - documented_routes())
        self.assertEqual(missing, [], "routes the service registers that docs/openapi.yaml lacks")

    def test_every_documented_route_is_registered(self):
        extra = sorted(documented_routes() - registered_routes())
        self.assertEqual(extra, [], "operations of docs/openapi.yaml that no route serves")


class ServedDocument(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = harness.Sandbox(jobs=5)
        # The source tree's web/ (where docs/ sits beside it), whatever is installed.
        cls.svc = harness.Service(cls.sb, cls.sb.tokens(),
                                  HOVERSYNC_WEB_DIR=os.path.join(SOURCE_ROOT, "web"))

    @classmethod
    def tearDownClass(cls):
        cls.svc.stop()
        cls.svc.cleanup()
        cls.sb.stop()

    def test_openapi_yaml_is_the_document(self):
        r = self.svc.get("/openapi.yaml", key=False)
        self.assertEqual(r.status, 200, r.body[:300])
        self.assertEqual(r.header("Content-Type"), "application/yaml")
        with open(contract.DOCUMENT, "rb") as f:
            self.assertEqual(r.body, f.read())
        head = self.svc.request("HEAD", "/openapi.yaml", key=False)
        self.assertEqual(head.status, 200)
        self.assertEqual(self.svc.request("POST", "/openapi.yaml", body={}).status, 405)

    def test_installed_copy_wins(self):
        """A web directory holding openapi.yaml (an install) serves that one."""
        d = os.path.join(self.svc.dir, "web")
        os.makedirs(d)
        with open(os.path.join(d, "openapi.yaml"), "w") as f:
            f.write("openapi: 3.1.0\n# installed\n")
        svc = harness.Service(self.sb, self.sb.tokens(), HOVERSYNC_WEB_DIR=d)
        try:
            r = svc.get("/openapi.yaml", key=False)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, b"openapi: 3.1.0\n# installed\n")
            # No copy beside the modal's files, and no docs/ beside them: 404.
            empty = os.path.join(d, "empty")
            os.makedirs(empty)
            svc2 = harness.Service(self.sb, self.sb.tokens(), HOVERSYNC_WEB_DIR=empty)
            try:
                self.assertEqual(svc2.get("/openapi.yaml", key=False).status, 404)
            finally:
                svc2.stop()
                svc2.cleanup()
        finally:
            svc.stop()
            svc.cleanup()


class Check(unittest.TestCase):
    """contract.check, the test every answer of the service goes through, can fail."""
    JSON = {"Content-Type": "application/json"}

    def assert_refused(self, *args, says):
        with self.assertRaises(contract.ContractError) as cm:
            contract.check(*args)
        self.assertIn(says, str(cm.exception))

    def test_documented_answers_pass(self):
        ok = b'{"status":"ok","db":"ok","version":"1","search":"ok","sync_queue":"off"}'
        contract.check("GET", "/healthz", 200, self.JSON, ok)
        contract.check("GET", "/healthz", 503, self.JSON,
                       b'{"error":{"code":"internal","message":"starting","status":503}}')
        contract.check("GET", "/no/such/route", 404, self.JSON,
                       b'{"error":{"code":"not_found","message":"no such route","status":404}}')
        contract.check("GET", "/files/" + "a" * 64, 304, {}, b"")

    def test_undocumented_route_status_and_shapes_fail(self):
        self.assert_refused("GET", "/api/nothing/here", 200, self.JSON, b"{}",
                            says="has no operation")
        self.assert_refused("GET", "/api/jobs/5", 201, self.JSON, b"{}",
                            says="status 201 is not documented for GET /api/jobs/{id}")
        self.assert_refused("GET", "/healthz", 200, self.JSON,
                            b'{"status":"ok","db":"ok","version":"1","search":"ok"}',
                            says="'sync_queue' is a required property")
        self.assert_refused("GET", "/healthz", 200, self.JSON,
                            b'{"status":"ok","db":"ok","version":"1","search":"ok",'
                            b'"sync_queue":"ok","new":1}',
                            says="Additional properties are not allowed")
        self.assert_refused("GET", "/api/connections", 200, {"Content-Type": "text/html"},
                            b"<p>", says="content type 'text/html'")
        self.assert_refused("GET", "/api/jobs/5", 404, self.JSON,
                            b'{"error":{"code":"gone","message":"x","status":404}}',
                            says="error/code")

    def test_stream_events_are_checked(self):
        sse = {"Content-Type": "text/event-stream; charset=utf-8"}
        path = "/api/syncs/abc/events"
        contract.check("GET", path, 200, sse, b"retry: 3000\n\n: keep-alive\n\n")
        self.assert_refused("GET", path, 200, sse, b'event: progress\ndata: {"id":"abc"}\n\n',
                            says="event progress")
        self.assert_refused("GET", path, 200, sse, b'event: other\ndata: {}\n\n',
                            says="event 'other' is not one of")


if __name__ == "__main__":
    unittest.main(verbosity=2)
