"""memring's command line, which mirrors nutcracker's: -t config checks with
FILE:LINE:COL errors, -V, -h, bad flags, -d with -p, -o, -s/-a."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import yaml

import harness as h

LONG_FLAGS = ("--conf-file", "--test-conf", "--daemonize", "--pid-file",
              "--output", "--verbose", "--stats-port", "--stats-addr",
              "--version", "--help", "--shutdown-timeout")


def run(*args, timeout=10):
    """(exit status, stdout + stderr as text) of memring with args."""
    proc = subprocess.run([h.memring_bin()] + list(args),
                          stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout)
    return proc.returncode, (proc.stdout + proc.stderr).decode(
        "utf-8", "replace")


def project_version():
    with open(os.path.join(h.source_dir(), "CMakeLists.txt")) as f:
        return re.search(r"project\(memring VERSION ([0-9.]+)",
                         f.read()).group(1)


def marks(path, key):
    """1-based (line, col) of key's first occurrence in path's YAML and of
    its value, as libyaml (the parser memring uses) sees them."""
    with open(path) as f:
        root = yaml.compose(f, Loader=yaml.CLoader)
    for _, pool in root.value:
        for k, v in pool.value:
            if k.value == key:
                return [(n.start_mark.line + 1, n.start_mark.column + 1)
                        for n in (k, v)]
    raise KeyError(key)


class CliCase(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="memring-cli-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def render(self, template, **subs):
        subs.setdefault("listen", "%s:%d" % (h.HOST, h.free_port()))
        subs.setdefault("hash", "fnv1a_64")
        subs.setdefault("distribution", "ketama")
        subs.setdefault("timeout", "2000")
        subs.setdefault("servers", h.servers_yaml(["127.0.0.1:11211"]))
        return h.render_conf(template, self.dir, **subs)

    def start_logged(self):
        """A started memring on pool.yml.in, logging to out.log."""
        port = h.free_port()
        conf = self.render("pool.yml.in", listen="%s:%d" % (h.HOST, port))
        p = h.Memring(conf, wait=[port], log=os.path.join(self.dir, "out.log"))
        self.addCleanup(p.stop)
        return p.start()


class TestConfigCheck(CliCase):

    def test_good_configs_pass(self):
        port_b = h.free_port()
        for conf in (self.render("pool.yml.in"),
                     self.render("pool.yml.in", hash="murmur",
                                 distribution="modula"),
                     self.render("two_pools.yml.in",
                                 listen_b="%s:%d" % (h.HOST, port_b),
                                 servers_b=h.servers_yaml(
                                     ["127.0.0.1:11212"]))):
            self.assertEqual(run("-t", "-c", conf)[0], 0, conf)
        self.assertEqual(run("--test-conf", "--conf-file", conf)[0], 0)
        self.assertEqual(run("--test-conf", "--conf-file=" + conf)[0], 0)

    def check_bad(self, template, key, reason):
        """-t exits 1 and names FILE:LINE:COL at the key or at its value,
        then the key, then a reason matching `reason`."""
        conf = self.render(template)
        status, out = run("-t", "-c", conf)
        self.assertEqual(status, 1, out)
        m = re.search(re.escape(conf) + r":(\d+):(\d+)\b(.*)", out)
        self.assertTrue(m, "no %s:LINE:COL in %r" % (conf, out))
        where = (int(m.group(1)), int(m.group(2)))
        self.assertIn(where, marks(conf, key), out)
        self.assertIn(key, m.group(3), out)
        self.assertRegex(m.group(3).lower(), reason, out)

    def test_bad_configs_name_place_key_and_reason(self):
        cases = [
            ("bad_unknown_key.yml.in", "no_such_key",
             r"unknown|not known|unsupported|invalid"),
            ("bad_redis.yml.in", "redis",
             r"memcache|redis|not supported|unsupported"),
            ("bad_no_servers.yml.in", "servers", r"server|empty|at least|no "),
            ("bad_hash.yml.in", "hash", r"unknown|invalid|not a|no_such_hash"),
        ]
        for template, key, reason in cases:
            with self.subTest(template=template):
                self.check_bad(template, key, reason)

    def test_yaml_syntax_error(self):
        conf = self.render("bad_syntax.yml.in")
        try:
            with open(conf) as f:
                yaml.load(f, Loader=yaml.CLoader)
            self.fail("bad_syntax.yml.in parses")
        except yaml.YAMLError as e:
            where = "%s:%d:%d" % (conf, e.problem_mark.line + 1,
                                  e.problem_mark.column + 1)
            problem = e.problem
        status, out = run("-t", "-c", conf)
        self.assertEqual(status, 1, out)
        self.assertIn(where, out)
        self.assertIn(problem, out)

    def test_missing_file(self):
        status, out = run("-t", "-c", os.path.join(self.dir, "nope.yml"))
        self.assertEqual(status, 1, out)
        self.assertIn("nope.yml", out)


class TestFlags(CliCase):

    def test_version(self):
        """nutcracker's first line, then the git revision built and the
        library versions."""
        for flag in ("-V", "--version"):
            status, out = run(flag)
            self.assertEqual(status, 0, out)
            lines = out.splitlines()
            self.assertEqual(lines[0], "This is memring-%s"
                             % project_version())
            self.assertRegex(lines[1],
                             r"^git revision: ([0-9a-f]{7,}|unknown)$")
            self.assertRegex(lines[2], r"^libuv \d+\.\d+\.\d+, libyaml "
                             r"\d+\.\d+\.\d+, llhttp \d+\.\d+\.\d+$")
            self.assertEqual(len(lines), 3, out)

    def test_git_revision_script(self):
        """cmake/git_rev.cmake, which the build runs: this checkout's short
        hash; "unknown" in a folder of no checkout and in a subfolder of
        one (a tarball unpacked inside another repository)."""
        src = h.source_dir()
        script = os.path.join(src, "cmake", "git_rev.cmake")
        git = shutil.which("git")
        plain = os.path.join(self.dir, "plain")
        os.mkdir(plain)
        for where, want in ((plain, "unknown"),
                            (os.path.join(src, "tests"), "unknown"),
                            (src, None)):
            out = os.path.join(self.dir, "rev.h")
            proc = subprocess.run(["cmake", "-DSRC=" + where, "-DOUT=" + out,
                                   "-DGIT=" + (git or ""), "-P", script],
                                  capture_output=True, timeout=30)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            with open(out) as f:
                got = re.fullmatch(r'#define MEMRING_GIT_REV "(.*)"\n',
                                   f.read()).group(1)
            if want is None and git is not None and os.path.exists(
                    os.path.join(src, ".git")):
                want = subprocess.run(
                    [git, "rev-parse", "--short", "HEAD"], cwd=src,
                    capture_output=True, timeout=30).stdout.decode().strip()
            if want is not None:
                self.assertEqual(got, want, where)

    def test_help(self):
        for flag in ("-h", "--help"):
            status, out = run(flag)
            self.assertEqual(status, 0, out)
            self.assertRegex(out.lower(), "usage")
            for long_flag in LONG_FLAGS:
                self.assertIn(long_flag, out)

    def test_unknown_flag(self):
        for args in (["-Z"], ["--no-such-flag"], ["-v"]):
            status, out = run(*args)
            self.assertNotEqual(status, 0, args)

    def test_daemonize_writes_pid_file(self):
        port = h.free_port()
        conf = self.render("pool.yml.in", listen="%s:%d" % (h.HOST, port))
        pidfile = os.path.join(self.dir, "memring.pid")
        log = os.path.join(self.dir, "memring.log")
        status, out = run("-d", "-p", pidfile, "-c", conf, "-o", log,
                          "-s", str(h.free_port()), "-a", h.HOST)
        self.assertEqual(status, 0, out)
        deadline = time.monotonic() + h.START_TIMEOUT
        pid = None
        while pid is None and time.monotonic() < deadline:
            try:
                with open(pidfile) as f:
                    pid = int(f.read().strip())
            except (OSError, ValueError):
                time.sleep(0.02)
        self.assertIsNotNone(pid, "no pid file")
        self.addCleanup(h.kill_pid, pid)
        os.kill(pid, 0)
        h.Conn(port).close()            # the daemon is listening
        h.kill_pid(pid)
        with self.assertRaises(ProcessLookupError):
            os.kill(pid, 0)

    def test_output_log(self):
        p = self.start_logged()
        # -s/-a are accepted; the admin endpoint behind them is issue 4's.
        p.stop()
        self.assertTrue(os.path.getsize(p.log) > 0, "empty log")


class TestLogRotation(CliCase):

    def test_sigusr1_reopens_log(self):
        """logrotate renames the -o file and sends SIGUSR1: memring keeps
        running and writes its next lines to a new file at the path."""
        p = self.start_logged()
        rotated = p.log + ".1"
        os.rename(p.log, rotated)
        p.proc.send_signal(signal.SIGUSR1)
        h.wait_for(lambda: "log file reopened" in p.log_text(),
                   what="a new log file")
        self.assertIsNone(p.proc.poll(), "memring died of SIGUSR1")
        p.proc.send_signal(signal.SIGHUP)     # one more line, any later one
        h.wait_for(lambda: "reloading" in p.log_text(),
                   what="later lines in the new file")
        with open(rotated) as f:
            old = f.read()
        self.assertIn("started", old)
        self.assertNotIn("reopened", old)
        self.assertNotIn("started", p.log_text())
        p.stop()
        self.assertEqual(p.proc.returncode, 0)


class TestLogFormat(CliCase):

    def test_json_lines(self):
        """--log-format=json: every line of the log is one JSON object
        with the time (UTC), level, source and message."""
        port = h.free_port()
        conf = self.render("pool.yml.in", listen="%s:%d" % (h.HOST, port))
        log = os.path.join(self.dir, "json.log")
        p = h.Memring(conf, wait=[port], log=log,
                      args=("--log-format", "json"))
        self.addCleanup(p.stop)
        p.start()
        p.stop()
        with open(log) as f:
            lines = f.read().splitlines()
        self.assertGreaterEqual(len(lines), 2)
        for line in lines:
            doc = json.loads(line)
            self.assertEqual(sorted(doc), ["level", "msg", "src", "ts"])
            self.assertRegex(doc["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"
                             r"\.\d{3}Z$")
            self.assertRegex(doc["src"], r"^[a-z_]+\.c:\d+$")
        self.assertTrue(any("started" in json.loads(l)["msg"]
                            for l in lines))

    def test_unknown_format_refused(self):
        rc, out = run("--log-format", "xml", "-t")
        self.assertEqual(rc, 1)
        self.assertIn("expected text or json", out)


class TestCrashReport(CliCase):

    def test_fatal_signal_logs_a_backtrace(self):
        """SIGSEGV (as a crash would raise it): memring logs the signal and
        a backtrace naming its own functions, then dies of that signal."""
        if h.sanitized():
            self.skipTest("a sanitizer build reports crashes itself")
        p = self.start_logged()
        os.kill(p.pid, signal.SIGSEGV)
        self.assertEqual(p.proc.wait(10), -signal.SIGSEGV)
        text = p.log_text()
        self.assertIn("memring: fatal signal SIGSEGV; backtrace", text)
        self.assertRegex(text, r"\(main\+0x[0-9a-f]+\)")
        p.proc = None                   # reported here, not by the harness


if __name__ == "__main__":
    sys.exit(h.run_tests(globals()))
