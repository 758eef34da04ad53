"""The Debian package: `cpack -G DEB` in the build directory of the binary
under test; its dependencies are dpkg-shlibdeps' (not a hand-kept list),
it carries the binary, the man page, the default config (a conffile), the
systemd unit and the logrotate snippet; the man page names every flag
`memring --help` lists. Installed with `dpkg -i` on this machine when the
test runs as root and no memring is installed (else unpacked into a
scratch root): `memring -V` and `memring -t` on the installed config work,
the memring user exists, and `dpkg --purge` takes it all away again."""

import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import harness as h


def run(argv, timeout=300, **kw):
    proc = subprocess.run(argv, capture_output=True, timeout=timeout, **kw)
    return proc.returncode, (proc.stdout + proc.stderr).decode("utf-8",
                                                              "replace")


def installed(pkg):
    rc, out = run(["dpkg-query", "-W", "-f=${Status}", pkg])
    return rc == 0 and "install ok installed" in out


class TestDebianPackage(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if h.sanitized():
            raise unittest.SkipTest("a sanitizer build is not packaged")
        if shutil.which("cpack") is None or shutil.which("dpkg-deb") is None:
            raise unittest.SkipTest("cpack or dpkg-deb missing")
        cls.dir = tempfile.mkdtemp(prefix="memring-package-")
        build = os.path.dirname(os.path.abspath(h.memring_bin()))
        rc, out = run(["cpack", "-G", "DEB", "-B", cls.dir], cwd=build)
        if rc != 0:
            shutil.rmtree(cls.dir, True)
            raise AssertionError("cpack failed:\n" + out)
        debs = [f for f in os.listdir(cls.dir) if f.endswith(".deb")]
        assert len(debs) == 1, debs
        cls.deb = os.path.join(cls.dir, debs[0])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, True)

    def field(self, name):
        rc, out = run(["dpkg-deb", "-f", self.deb, name])
        self.assertEqual(rc, 0, out)
        return out.strip()

    def test_control(self):
        self.assertEqual(self.field("Package"), "memring")
        depends = [d.split()[0] for d in self.field("Depends").split(", ")]
        for lib in ("libuv1", "libyaml-0-2", "libmd0", "zlib1g", "libc6",
                    "adduser"):
            self.assertIn(lib, depends)
        rc, out = run(["dpkg-deb", "--ctrl-tarfile", self.deb])
        self.assertEqual(rc, 0)

    def test_contents(self):
        rc, out = run(["dpkg-deb", "-c", self.deb])
        self.assertEqual(rc, 0, out)
        for path in ("./usr/bin/memring", "./usr/share/man/man8/memring.8",
                     "./etc/memring/memring.yml",
                     "./lib/systemd/system/memring.service",
                     "./etc/logrotate.d/memring",
                     "./usr/share/doc/memring/README.md"):
            self.assertIn(" " + path + "\n", out + "\n", path)
        scratch = os.path.join(self.dir, "ctrl")
        rc, out = run(["dpkg-deb", "-e", self.deb, scratch])
        self.assertEqual(rc, 0, out)
        with open(os.path.join(scratch, "conffiles")) as f:
            conffiles = f.read().split()
        self.assertIn("/etc/memring/memring.yml", conffiles)
        self.assertTrue(os.access(os.path.join(scratch, "postinst"),
                                  os.X_OK))

    def test_man_page_names_every_flag(self):
        _, help_text = run([h.memring_bin(), "--help"])
        flags = set(re.findall(r"--[a-z][a-z-]+", help_text))
        self.assertGreater(len(flags), 20)
        with open(os.path.join(h.source_dir(), "docs", "memring.8")) as f:
            man = f.read().replace("\\-", "-")
        missing = sorted(f for f in flags if f not in man)
        self.assertEqual(missing, [])

    def test_install_check_remove(self):
        if os.geteuid() != 0 or installed("memring") or \
                os.path.exists("/usr/bin/memring"):
            self.unpacked_check()
            return
        self.addCleanup(run, ["dpkg", "--purge", "memring"])
        rc, out = run(["dpkg", "-i", self.deb])
        self.assertEqual(rc, 0, out)
        self.assertTrue(installed("memring"))
        rc, version = run(["/usr/bin/memring", "-V"])
        self.assertEqual(rc, 0, version)
        _, ours = run([h.memring_bin(), "-V"])
        self.assertEqual(version.splitlines()[0], ours.splitlines()[0])
        rc, out = run(["/usr/bin/memring", "-t", "-c",
                       "/etc/memring/memring.yml"])
        self.assertEqual(rc, 0, out)
        self.assertEqual(pwd.getpwnam("memring").pw_dir, "/nonexistent")
        rc, out = run(["dpkg", "--purge", "memring"])
        self.assertEqual(rc, 0, out)
        self.assertFalse(installed("memring"))
        self.assertFalse(os.path.exists("/usr/bin/memring"))
        self.assertFalse(os.path.exists("/etc/memring/memring.yml"))
        with self.assertRaises(KeyError):
            pwd.getpwnam("memring")

    def unpacked_check(self):
        root = os.path.join(self.dir, "root")
        rc, out = run(["dpkg-deb", "-x", self.deb, root])
        self.assertEqual(rc, 0, out)
        binary = os.path.join(root, "usr", "bin", "memring")
        rc, out = run([binary, "-V"])
        self.assertEqual(rc, 0, out)
        rc, out = run([binary, "-t", "-c", os.path.join(
            root, "etc", "memring", "memring.yml")])
        self.assertEqual(rc, 0, out)


if __name__ == "__main__":
    sys.exit(h.run_tests(globals()))
