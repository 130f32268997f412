#!/usr/bin/env python3
"""test_secrets.py: secrets and files at rest, through the real binaries.

- with HOVERSYNC_ENCRYPTION_KEY the OAuth tokens and the webhook secrets are sealed in the SQLite
  file (its raw bytes hold neither token), and the service still uses them (a webhook verified
  through its sealed secret);
- a wrong key, a missing key, a malformed key: a clear error, exit status 2;
- `hoversync store rotate-key`: a clear store encrypted, then another key, then back to clear;
- the store file and its -wal/-shm are 0600 and the data folder 0700 whatever the umask, and
  files made readable by others before are tightened when opened;
- without a key, serve says once at start that secrets are stored in clear;
- `config show` redacts passwords inside URLs.
Standard library only; binaries from $HOVERSYNC_BIN and $HOVER_SANDBOX_BIN (set by meson)."""
import json
import os
import stat
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import JOB_ALL_COMPLETE, free_port  # noqa: E402

SLOW = 3 if os.environ.get("HOVERSYNC_SANITIZED") else 1
KEY_A = "k8Yq1w1m6Hn3X0gQ7R2rQm0cF4yV9tB5sL2eP6aJ3dU="
KEY_B = "3f1c0e7a9b2d4c6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e"
HOUSE = 17338401


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def raw_bytes(db):
    out = b""
    for sfx in ("", "-wal"):
        if os.path.exists(db + sfx):
            with open(db + sfx, "rb") as f:
                out += f.read()
    return out


class Secrets(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sb = harness.Sandbox("--rate-limit", "0", jobs=20)

    @classmethod
    def tearDownClass(cls):
        cls.sb.stop()

    def cli(self, **env):
        c = harness.Cli(self.sb, self.sb.tokens(), **env)
        self.addCleanup(c.cleanup)
        return c

    def assert_sealed(self, cli, tokens):
        raw = raw_bytes(cli.db)
        self.assertFalse(tokens["access_token"].encode() in raw, "access token in the file")
        self.assertFalse(tokens["refresh_token"].encode() in raw, "refresh token in the file")
        for access, refresh in cli.sql("SELECT access_token, refresh_token FROM oauth_tokens"):
            self.assertTrue(access.startswith("hs1:") and refresh.startswith("hs1:"))

    def test_tokens_encrypted_and_key_checked(self):
        cli = self.cli(HOVERSYNC_ENCRYPTION_KEY=KEY_A)
        tokens = {"access_token": cli.env["HOVER_ACCESS_TOKEN"],
                  "refresh_token": cli.env["HOVER_REFRESH_TOKEN"]}
        self.assertTrue(cli.json("search", "meadow"))
        self.assert_sealed(cli, tokens)
        # Read back with the key: the stored pair works (no initial pair given this time).
        del cli.env["HOVER_ACCESS_TOKEN"], cli.env["HOVER_REFRESH_TOKEN"]
        self.assertTrue(cli.json("show", JOB_ALL_COMPLETE))
        cases = [
            ({"HOVERSYNC_ENCRYPTION_KEY": KEY_B}, "wrong HOVERSYNC_ENCRYPTION_KEY"),
            ({}, "set HOVERSYNC_ENCRYPTION_KEY"),
            ({"HOVERSYNC_ENCRYPTION_KEY": "not-a-key"}, "must be 32 random bytes"),
        ]
        for env, words in cases:
            cli.env.pop("HOVERSYNC_ENCRYPTION_KEY", None)
            cli.env.update(env)
            r = cli.run("show", JOB_ALL_COMPLETE)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(words, r.stderr)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
            self.assertNotIn("not-a-key", r.stderr.replace("'not-a-key'", ""))

    def test_rotate_key_round_trip(self):
        cli = self.cli()
        tokens = {"access_token": cli.env["HOVER_ACCESS_TOKEN"],
                  "refresh_token": cli.env["HOVER_REFRESH_TOKEN"]}
        self.assertTrue(cli.json("search", "meadow"))
        del cli.env["HOVER_ACCESS_TOKEN"], cli.env["HOVER_REFRESH_TOKEN"]
        self.assertTrue(tokens["access_token"].encode() in raw_bytes(cli.db))  # clear before
        # A clear store encrypted.
        cli.env["HOVERSYNC_NEW_ENCRYPTION_KEY"] = KEY_A
        r = cli.run("store", "rotate-key")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("2 secrets encrypted under key", r.stdout)
        self.assert_sealed(cli, tokens)
        r = cli.run("show", JOB_ALL_COMPLETE)
        self.assertEqual(r.returncode, 2)  # the old setting (no key) is refused now
        cli.env["HOVERSYNC_ENCRYPTION_KEY"] = KEY_A
        self.assertTrue(cli.json("show", JOB_ALL_COMPLETE))
        # To another key.
        cli.env["HOVERSYNC_NEW_ENCRYPTION_KEY"] = KEY_B
        self.assertEqual(cli.run("store", "rotate-key").returncode, 0)
        self.assertEqual(cli.run("show", JOB_ALL_COMPLETE).returncode, 2)
        cli.env["HOVERSYNC_ENCRYPTION_KEY"] = KEY_B
        self.assertTrue(cli.json("show", JOB_ALL_COMPLETE))
        self.assert_sealed(cli, tokens)
        # Usage errors.
        r = cli.run("store", "rotate-key", "--to-clear")
        self.assertEqual(r.returncode, 2)
        self.assertIn("together", r.stderr)
        # Back to clear.
        del cli.env["HOVERSYNC_NEW_ENCRYPTION_KEY"]
        r = cli.run("store", "rotate-key")
        self.assertEqual(r.returncode, 2)
        r = cli.run("store", "rotate-key", "--to-clear")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("stored in clear", r.stdout)
        del cli.env["HOVERSYNC_ENCRYPTION_KEY"]
        self.assertTrue(cli.json("show", JOB_ALL_COMPLETE))
        stored = cli.sql("SELECT access_token FROM oauth_tokens")[0][0]
        self.assertFalse(stored.startswith("hs1:"))

    def test_webhook_secret_sealed_and_used(self):
        port = free_port()
        svc = harness.Service(self.sb, self.sb.tokens(), args=[
            "--listen", "127.0.0.1:%d" % port, "--no-workers"],
            HOVERSYNC_PUBLIC_URL="http://127.0.0.1:%d" % port, HOVERSYNC_ENCRYPTION_KEY=KEY_A)
        try:
            r = svc.cli.run("webhooks", "register", "--wait", str(20 * SLOW), "--json")
            self.assertEqual(r.returncode, 0, r.stderr + svc.read_stderr()[-2000:])
            hook = json.loads(r.stdout)
            # Verified: the service checked the verification code's signature with the secret
            # it had sealed in the store.
            self.assertTrue(hook["verified_at"], hook)
            (secret,) = svc.cli.sql("SELECT hmac_secret FROM webhooks WHERE id = %d"
                                    % hook["id"])[0]
            self.assertTrue(secret.startswith("hs1:"), secret[:8])
            self.assertNotIn("stored in clear", svc.read_stderr())
        finally:
            rc = svc.stop()
            err = svc.read_stderr()
            svc.cleanup()
        self.assertEqual(rc, 0, err[-3000:])

    def test_files_private_whatever_the_umask(self):
        old = os.umask(0)
        try:
            svc = harness.Service(self.sb, self.sb.tokens())
        finally:
            os.umask(old)
        try:
            r = svc.request("POST", "/api/syncs", {"job_id": JOB_ALL_COMPLETE,
                                                  "model_ids": [HOUSE]})
            self.assertEqual(r.status, 202, r.body)
            deadline = time.time() + 60 * SLOW
            while time.time() < deadline:
                s = svc.get(r.header("Location")).json
                if s["status"] in ("done", "failed"):
                    break
                time.sleep(0.1)
            self.assertEqual(s["status"], "done", s)
            db = svc.cli.db
            for path in (db, db + "-wal", db + "-shm"):
                self.assertEqual(mode(path), 0o600, path)
            data = svc.cli.env["HOVERSYNC_DATA_DIR"]
            dirs = [data] + [os.path.join(root, d) for root, ds, _ in os.walk(data) for d in ds]
            self.assertGreater(len(dirs), 3)
            for d in dirs:
                self.assertEqual(mode(d), 0o700, d)
            stderr = svc.read_stderr()
            self.assertEqual(stderr.count("stored in clear"), 1, stderr)
        finally:
            rc = svc.stop()
            svc.cleanup()
        self.assertEqual(rc, 0)

    def test_existing_files_tightened(self):
        cli = self.cli()
        data = os.path.join(cli.dir, "data")
        os.mkdir(data, 0o755)
        os.chmod(data, 0o755)
        cli.env["HOVERSYNC_DATA_DIR"] = data
        with open(cli.db, "w"):
            pass
        os.chmod(cli.db, 0o644)
        self.assertTrue(cli.json("search", "meadow"))
        self.assertEqual(mode(cli.db), 0o600)
        self.assertEqual(mode(data), 0o700)

    def test_config_show_redacts_url_credentials(self):
        cli = self.cli(HOVER_BASE_URL="https://alice:hunter2@hover.example",
                       HOVERSYNC_CRM_ENDPOINTS="https://crm:s3cr3t@crm.example/hook",
                       HOVERSYNC_ENCRYPTION_KEY=KEY_A)
        r = cli.run("config", "show")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("hunter2", r.stdout)
        self.assertNotIn("s3cr3t", r.stdout)
        self.assertNotIn(KEY_A, r.stdout)
        self.assertIn("https://alice:***@hover.example", r.stdout)
        self.assertIn("https://crm:***@crm.example/hook", r.stdout)


if __name__ == "__main__":
    unittest.main()
