"""The configuration file through the real hoversync binary: --config and HOVERSYNC_CONFIG,
precedence (flag > environment > file > default) as `config show` reports it, values that drive
real behaviour (the store's path, the service's allowed origins), refusals that name the file and
the line (secrets, unknown options, malformed lines) without echoing a secret, and the modal's
default directory of a binary run from the build tree."""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Cli, Sandbox, Service  # noqa: E402

ORIGIN = "https://crm-from-file.example"


def show_rows(stdout):
    """`config show` as {name: (variable, value, source)}."""
    rows = {}
    for line in stdout.splitlines():
        head, _, source = line.rpartition(" source=")
        parts = head.split(None, 2)
        rows[parts[0]] = (parts[1], parts[2].strip() if len(parts) > 2 else "", source)
    return rows


class ConfigFile(unittest.TestCase):
    def setUp(self):
        self.cli = Cli(None)
        self.conf = os.path.join(self.cli.dir, "hoversync.conf")

    def tearDown(self):
        self.cli.cleanup()

    def write(self, text):
        with open(self.conf, "w") as f:
            f.write(text)

    def show(self, *args, **env):
        self.cli.env.update(env)
        r = self.cli.run(*args, "config", "show")
        self.assertEqual(r.returncode, 0, r.stderr)
        return show_rows(r.stdout)

    def test_precedence_and_sources(self):
        self.write("# tuned for the CRM\n"
                   "rate-limit = 60\n"
                   "timeout = 30   # seconds\n"
                   "max-attempts = 3\n"
                   "log-level = info\n")
        self.cli.env["HOVERSYNC_TIMEOUT"] = "20"
        self.cli.env["HOVERSYNC_LOG_LEVEL"] = "error"
        rows = self.show("--config", self.conf, "--log-level", "debug")
        self.assertEqual(rows["config"][1:], (self.conf, "flag"))
        self.assertEqual(rows["rate-limit"], ("HOVERSYNC_RATE_LIMIT", "60",
                                              "file:%s:2" % self.conf))
        self.assertEqual(rows["timeout"][1:], ("20", "env"))
        self.assertEqual(rows["max-attempts"][1:], ("3", "file:%s:4" % self.conf))
        self.assertEqual(rows["log-level"][1:], ("debug", "flag"))
        self.assertEqual(rows["pending-interval"][1:], ("900", "default"))
        self.assertEqual(rows["db"][1:], (self.cli.db, "env"))

    def test_file_named_by_the_environment_and_flag_wins(self):
        other = os.path.join(self.cli.dir, "other.conf")
        with open(other, "w") as f:
            f.write("rate-limit = 7\n")
        self.write("rate-limit = 8\n")
        rows = self.show(HOVERSYNC_CONFIG=other)
        self.assertEqual(rows["config"][1:], (other, "env"))
        self.assertEqual(rows["rate-limit"][1:], ("7", "file:%s:1" % other))
        rows = self.show("--config=" + self.conf, HOVERSYNC_CONFIG=other)
        self.assertEqual(rows["rate-limit"][1:], ("8", "file:%s:1" % self.conf))

    def test_file_values_drive_commands(self):
        db = os.path.join(self.cli.dir, "from-file.db")
        self.write("db = %s\n" % db)
        del self.cli.env["HOVERSYNC_DB"]
        r = self.cli.run("--config", self.conf, "status", "--offline", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(db), "the store named by the file was not created")

    def test_secrets_are_refused_and_never_echoed(self):
        for name, var in (("client-secret", "HOVER_CLIENT_SECRET"),
                          ("api-key", "HOVERSYNC_API_KEY"),
                          ("crm-secret", "HOVERSYNC_CRM_SECRET"),
                          ("access-token", "HOVER_ACCESS_TOKEN")):
            self.write("rate-limit = 60\n\n%s = tops3cret-%s\n" % (name, name))
            r = self.cli.run("--config", self.conf, "config", "show")
            self.assertEqual(r.returncode, 2, name)
            self.assertIn("%s:3: %s is a secret" % (self.conf, name), r.stderr)
            self.assertIn(var, r.stderr)
            self.assertNotIn("tops3cret", r.stderr + r.stdout)

    def test_bad_files_name_file_and_line(self):
        cases = [("timeout = 30\nrate-limt = 60\n", ":2: unknown option 'rate-limt'"),
                 ("rate-limit 60\n", ":1: expected 'name = value'"),
                 ("timeout = 5\ntimeout = 6\n", ":2: timeout is set twice (lines 1 and 2)"),
                 ("rate-limit = lots\n", ":1: rate-limit must be a whole number"),
                 ("listen =\n", ":1: listen has no value")]
        for text, why in cases:
            self.write(text)
            r = self.cli.run("--config", self.conf, "status", "--offline")
            self.assertEqual(r.returncode, 2, text)
            self.assertIn("hoversync: " + self.conf + why, r.stderr)
            self.assertFalse(os.path.exists(self.cli.db), "a refused file still ran the command")

    def test_named_file_must_exist(self):
        missing = os.path.join(self.cli.dir, "missing.conf")
        r = self.cli.run("--config", missing, "config", "show")
        self.assertEqual(r.returncode, 2)
        self.assertIn("cannot read the configuration file %s" % missing, r.stderr)
        self.cli.env["HOVERSYNC_CONFIG"] = missing
        r = self.cli.run("config", "show")
        self.assertEqual(r.returncode, 2)
        self.assertIn(missing, r.stderr)

    def test_help_still_works_with_a_bad_file(self):
        self.write("nonsense\n")
        r = self.cli.run("--config", self.conf, "--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--config PATH", r.stdout)
        self.assertIn("HOVERSYNC_CONFIG", r.stdout)

    def test_default_web_dir_of_a_build_tree_binary(self):
        # Before any install, a binary of the build tree serves the source tree's web/.
        installed = os.environ.get("HOVERSYNC_INSTALLED_WEB_DIR", "")
        if installed and os.path.exists(os.path.join(installed, "modal.html")):
            self.skipTest("an installed copy exists at %s: it wins" % installed)
        self.cli.env.pop("HOVERSYNC_WEB_DIR", None)
        rows = self.show()
        self.assertEqual(rows["web-dir"][1:],
                         (os.path.join(os.environ["SOURCE_ROOT"], "web"), "default"))


class ConfigFileDrivesTheService(unittest.TestCase):
    def test_allowed_origins_from_the_file(self):
        sb = Sandbox(jobs=20)
        conf_dir = tempfile.mkdtemp(prefix="hs-conf-")
        conf = os.path.join(conf_dir, "hoversync.conf")
        with open(conf, "w") as f:
            f.write("allow-origins = %s, https://other.example\npending-interval = 0\n" % ORIGIN)
        svc = Service(sb, sb.tokens(), HOVERSYNC_CONFIG=conf)
        try:
            r = svc.get("/api/connections", origin=ORIGIN)
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.header("Access-Control-Allow-Origin"), ORIGIN)
            r = svc.get("/api/connections", origin="https://not-listed.example")
            self.assertEqual(r.status, 403)
        finally:
            rc = svc.stop()
            svc.cleanup()
            sb.stop()
            os.unlink(conf)
            os.rmdir(conf_dir)
        self.assertEqual(rc, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
