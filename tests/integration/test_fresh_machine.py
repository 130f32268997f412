"""What a fresh Debian machine goes through before the first build and test run:

- `scripts/install-deps.sh --test` with no `node` installs the `nodejs` package (Node 20 with npm
  on our machines), never Debian's separate `npm` package; a node older than 20.19 fails with a message
  naming what to install. apt-get, dpkg-query and node are stand-ins on a PATH of their own, so
  nothing is installed for real.
- the build (what `make` runs: meson setup with default options) configures on a machine without
  cmocka: the test suite is optional there.

Standard library only."""
import os
import shutil
import stat
import subprocess
import tempfile
import unittest

SOURCE_ROOT = os.environ.get("SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(SOURCE_ROOT, "scripts", "install-deps.sh")


def write_exe(path, text):
    with open(path, "w") as f:
        f.write("#!/bin/bash\n" + text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


class InstallDeps(unittest.TestCase):
    def setUp(self):
        self.bin = tempfile.mkdtemp(prefix="hs-fresh-bin-")
        self.log = os.path.join(self.bin, "apt.log")
        for tool in ("grep", "chmod"):
            os.symlink(shutil.which(tool), os.path.join(self.bin, tool))
        # Every Debian package is installed, as far as dpkg-query tells.
        write_exe(os.path.join(self.bin, "dpkg-query"), 'echo -n "install ok installed"\n')
        write_exe(os.path.join(self.bin, "id"), "echo 0\n")
        # apt-get logs its arguments; installing nodejs brings node 20 and npm.
        write_exe(os.path.join(self.bin, "apt-get"), f"""
echo "$@" >> {self.log}
for a in "$@"; do
    if [ "$a" = nodejs ]; then
        printf '#!/bin/bash\\necho v20.19.2\\n' > {self.bin}/node
        printf '#!/bin/bash\\necho 10.8.2\\n' > {self.bin}/npm
        chmod +x {self.bin}/node {self.bin}/npm
    fi
done
""")

    def tearDown(self):
        shutil.rmtree(self.bin, ignore_errors=True)

    def run_script(self, *args):
        return subprocess.run(["/bin/bash", SCRIPT, *args], env={"PATH": self.bin},
                              capture_output=True, text=True, timeout=60)

    def apt_calls(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [line.split() for line in f]

    def test_node_missing_installs_nodejs_and_never_npm(self):
        r = self.run_script("--test")
        self.assertEqual(r.returncode, 0, r.stderr)
        installs = [c for c in self.apt_calls() if "install" in c]
        self.assertEqual(len(installs), 1, self.apt_calls())
        self.assertIn("nodejs", installs[0])
        self.assertNotIn("npm", installs[0])
        self.assertTrue(os.path.exists(os.path.join(self.bin, "node")))

    def test_node_20_present_installs_nothing(self):
        write_exe(os.path.join(self.bin, "node"), "echo v20.19.2\n")
        write_exe(os.path.join(self.bin, "npm"), "echo 10.8.2\n")
        r = self.run_script("--test")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.apt_calls(), [])

    def test_old_node_fails_naming_what_to_install(self):
        write_exe(os.path.join(self.bin, "node"), "echo v18.19.0\n")
        write_exe(os.path.join(self.bin, "npm"), "echo 9.2.0\n")
        r = self.run_script("--test")
        self.assertEqual(r.returncode, 1)
        self.assertIn("Node 20.19 or later", r.stderr)
        self.assertIn("v18.19.0", r.stderr)
        self.assertIn("'nodejs' package", r.stderr)
        self.assertEqual(self.apt_calls(), [])

    def test_node_20_before_19_fails(self):
        """@redocly/cli needs 20.19: an older Node 20 is refused like an older major."""
        write_exe(os.path.join(self.bin, "node"), "echo v20.11.1\n")
        write_exe(os.path.join(self.bin, "npm"), "echo 10.2.4\n")
        r = self.run_script("--test")
        self.assertEqual(r.returncode, 1)
        self.assertIn("Node 20.19 or later", r.stderr)
        self.assertIn("v20.11.1", r.stderr)

    def test_node_without_npm_fails(self):
        write_exe(os.path.join(self.bin, "node"), "echo v20.19.2\n")
        r = self.run_script("--test")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no npm", r.stderr)

    def test_plain_build_needs_no_node(self):
        r = self.run_script()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.apt_calls(), [])


class BuildWithoutCmocka(unittest.TestCase):
    def test_meson_configures_without_cmocka(self):
        """make's build step (meson setup with default options) on a machine whose pkg-config
        knows every dependency but cmocka: hoversync is configured, the suite is left out."""
        pc = tempfile.mkdtemp(prefix="hs-fresh-pc-")
        build = tempfile.mkdtemp(prefix="hs-fresh-build-")
        try:
            paths = subprocess.run(["pkg-config", "--variable", "pc_path", "pkg-config"],
                                   capture_output=True, text=True, check=True).stdout.strip()
            for d in paths.split(":"):
                if not os.path.isdir(d):
                    continue
                for name in os.listdir(d):
                    dst = os.path.join(pc, name)
                    if name.endswith(".pc") and name != "cmocka.pc" and not os.path.exists(dst):
                        os.symlink(os.path.join(d, name), dst)
            env = dict(os.environ, PKG_CONFIG_LIBDIR=pc)
            env.pop("PKG_CONFIG_PATH", None)
            r = subprocess.run(["meson", "setup", build, SOURCE_ROOT], env=env,
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
            self.assertIn("building without the test suite (cmocka not found", r.stdout)
            r = subprocess.run(["ninja", "-C", build, "-t", "targets", "all"],
                               capture_output=True, text=True, check=True)
            targets = r.stdout
            self.assertIn("src/cli/hoversync:", targets)
            self.assertNotIn("tests/", targets)
        finally:
            shutil.rmtree(pc, ignore_errors=True)
            shutil.rmtree(build, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
