"""A newcomer's first minutes: on a fresh `git clone` of the repository (what
is committed, not the working tree), the run command at the top of the
README starts a proxy that a client can set and get through, and its admin
port answers.

scripts/run-local installs what is missing, builds its own build/ in the
clone (a few minutes on 2 cores: bounded by BUILD_TIMEOUT, 600 s, and ctest
gives this suite 900 s), then starts three memcached and memring. It takes
its ports from MEMRING_PORT, MEMRING_ADMIN_PORT and MEMCACHED_PORTS, here
free ones. Everything it started is one process group (run-local's own,
made by start_new_session), stopped by that pid at the end."""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import harness as h

BUILD_TIMEOUT = 600     # seconds from the run command to a listening proxy
STOP_TIMEOUT = 15       # seconds for run-local's group to exit on SIGTERM


def readme_run_command(readme):
    """The line of the README's first sh block that runs scripts/run-local,
    without its comment."""
    m = re.search(r"```sh\n(.*?)```", readme, re.S)
    assert m, "no sh block in README.md"
    for line in m.group(1).split("\n"):
        if "run-local" in line:
            return line.split("#", 1)[0].strip()
    raise AssertionError("README's first sh block has no run-local line")


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def stop_group(proc):
    """SIGTERM to the group (run-local's trap stops its memcached servers,
    memring drains), a bounded wait, then SIGKILL to what is left."""
    if group_alive(proc.pid):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while group_alive(proc.pid) and time.monotonic() < deadline:
        if proc.poll() is None:
            try:
                proc.wait(0.1)
            except subprocess.TimeoutExpired:
                pass
        else:
            time.sleep(0.1)
    if group_alive(proc.pid):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.wait(5)


class TestNewcomer(unittest.TestCase):

    def setUp(self):
        if h.sanitized():
            # run-local builds its own release binary in the clone: the
            # sanitizer stage would only repeat the release stage's run.
            self.skipTest("the newcomer's build is a release build")
        self.dir = tempfile.mkdtemp(prefix="memring-newcomer-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.clone = os.path.join(self.dir, "memring")
        rc = subprocess.run(["git", "clone", "-q", h.source_dir(),
                             self.clone], stdin=subprocess.DEVNULL,
                            timeout=120).returncode
        self.assertEqual(rc, 0, "git clone failed")

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def test_run_local_serves(self):
        with open(os.path.join(self.clone, "README.md")) as f:
            command = readme_run_command(f.read())
        self.assertEqual(command, "scripts/run-local")
        port, admin = h.free_port(), h.free_port()
        backends = [h.free_port() for _ in range(3)]
        env = dict(os.environ, MEMRING_PORT=str(port),
                   MEMRING_ADMIN_PORT=str(admin),
                   MEMCACHED_PORTS=" ".join(map(str, backends)))
        self.log_path = os.path.join(self.dir, "run-local.log")
        with open(self.log_path, "wb") as out:
            proc = subprocess.Popen(["bash", "-c", command], cwd=self.clone,
                                    env=env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.addCleanup(stop_group, proc)

        deadline = time.monotonic() + BUILD_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            if h.accepts(port):
                break
            time.sleep(0.5)
        self.assertTrue(h.accepts(port), "no proxy on %d (run-local %s):\n%s"
                        % (port, "exited %s" % proc.returncode
                               if proc.poll() is not None else "still running",
                           self.log()[-4000:]))
        self.assertTrue(os.path.exists(os.path.join(self.clone, "build",
                                                    "memring")))
        for p in backends:
            h.wait_accepting(p)

        with h.Conn(port) as c:
            self.assertEqual(c.call(h.set_cmd(b"newcomer", b"hello")),
                             b"STORED\r\n")
            self.assertEqual(c.call(b"get newcomer\r\n"),
                             h.value_reply(b"newcomer", b"hello"))
        holders = []
        for p in backends:
            with h.Conn(p) as c:
                if b"VALUE" in c.call(b"get newcomer\r\n"):
                    holders.append(p)
        self.assertEqual(len(holders), 1, "the key is on one memcached")

        status, body = h.http_request(admin, "/stats")
        self.assertEqual(status, 200, body)
        self.assertIn(b'"alpha"', body)

        stop_group(proc)
        self.assertFalse(group_alive(proc.pid))
        self.assertFalse(h.accepts(port))


if __name__ == "__main__":
    raise SystemExit(h.run_tests(globals()))
