"""Integration test harness: real memcached servers, the built memring binary
(or nutcracker, for comparison), configs rendered from tests/conf/*.yml.in,
and a raw-socket memcached text-protocol client.

Everything listens on 127.0.0.1 (or a unix socket in a temp dir), on ports
picked free at run time. Every process started is stopped by its pid: by the
test's addCleanup when started through Cluster, and by an atexit hook as a
last resort. Every wait and every socket read is bounded in time.

API (stable; it_placement.py relies on it):

  free_port() -> int
  Conn(target, timeout=5)      target: port int, (host, port) or unix path
    .send(data) .read_reply() .read_replies(n) .read_until(term)
    .read_line() .read_exact(n) .read_all(quiet=0.2) .expect_closed()
    .call(data, until=None, count=1) .close()     (also a context manager)
  call(conn, data, until=None, count=1) -> bytes   (function form)
  read_replies(conn, n) -> [bytes]                  (function form)
  Memcached(extra_args=())     .start() .stop() .port .addr .conn()
                               .call(data) .raw_get(key) -> bytes | None
                               .raw_get_many(keys) -> {key: value} .flush()
  Memring(conf, wait=[ports or unix paths], args=(), log=None)
  Nutcracker(conf, wait=[...], args=(), log=None)
                               both: .start() .stop() .pid .alive()
                               .stats_port .log .log_text()
                               .output() (stdout+stderr)
  stop_all([Process]), kill_pid(pid)
  freeze(test, pid)            SIGSTOP and wait until every thread stopped
  render_conf(template, out_dir, name=None, **subs) -> path
  servers_yaml(servers, weights=None, names=None, indent=4) -> str
  Cluster(test, nservers=2, template="pool.yml.in", proxy=None,
          listen=None, backends=None, **subs)
    .servers [Memcached] .proxy .port .conn() .dir .conf .stop()
    .owner_of(key) -> Memcached holding key (asks the servers directly)
  start_shared(nservers=3, **subs) -> (Cluster, ref Memcached), for
    setUpModule, stopped by module cleanups; hash md5 by default
  FakeMemcached()              a memcached look-alike thread: .mode .seen
                               .port .addr .stop(); subclass ._answer()
  start_on_free_ports(make, timeout=5) -> started proxy (make() picks
                               ports and builds it; again on "in use")
  pool_yaml(name, listen, servers, **keys) -> one pool's YAML section
  write_conf(path, text) -> path
  parse_values(get_reply) -> [(key, flags, value)]; strip_cas(reply)
  parse_stats(stats_reply) -> {name: str}
  proxy_stats(port) -> {name: int} (the `stats` command); stats_delta(a, b)
  http_request(port, path, method="GET") -> (status | None, body)
  admin_stats(stats_port) -> the /stats JSON as a dict
  set_cmd(key, value, noreply=False), value_block(key, value, flags=0),
  value_reply(key, value, flags=0), binary_request(opcode, key, value,
                               extras, opaque) -> request/reply bytes
  accepts(target) -> bool; wait_accepting(target, timeout=5)
  wait_for(pred, timeout=5, step=0.02, what=None) -> pred's first truthy
                               value (else its last, or AssertionError
                               naming `what` when given)
  read_to_eof(sock, timeout, until=None) -> (bytes, "eof" | "reset" |
                               "timeout" | "until")
  proc_kib(pid, field="VmRSS") -> KiB from /proc/PID/status
  memring_bin(), source_dir(), conf_template(name)
  run_tests(module_globals) -> exit status; prints "N passed, N failed"

Environment: MEMRING_BIN (binary), MEMRING_SOURCE_DIR (repo root),
MEMRING_IT_PROXY=memring|nutcracker|direct (what Cluster puts in front;
the last two only for checking the tests themselves). Words on the command
line of a test file select tests by substring of their id.
"""

import atexit
import json
import os
import re
import shutil
import signal
import socket
import string
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HOST = "127.0.0.1"
MEMCACHED_BIN = "/usr/bin/memcached"
NUTCRACKER_BIN = "/usr/sbin/nutcracker"
START_TIMEOUT = 5.0     # seconds to wait for a listener to accept
STOP_TIMEOUT = 3.0      # seconds between SIGTERM and SIGKILL
IO_TIMEOUT = 5.0        # default socket timeout

_live = []              # every Process still running, for the atexit sweep


# ---------------------------------------------------------------- locations

def source_dir():
    """Repo root: $MEMRING_SOURCE_DIR, else two levels above this file."""
    env = os.environ.get("MEMRING_SOURCE_DIR")
    if env:
        return env
    return os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))


def memring_bin():
    """Built binary: $MEMRING_BIN, else <repo>/build/memring."""
    return os.environ.get("MEMRING_BIN") or os.path.join(
        source_dir(), "build", "memring")


def conf_template(name):
    """Path of tests/conf/<name>."""
    return os.path.join(source_dir(), "tests", "conf", name)


# ---------------------------------------------------------------- sockets

_GIVEN_PORTS = set()


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to 0), and
    not one this process was given before: the kernel may hand the same
    free port out twice in a row, and two picks for one proxy (its pool
    and its admin port) then collide."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port
    return port


def _connect(target, timeout):
    if isinstance(target, str):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        addr = target
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        addr = (HOST, target) if isinstance(target, int) else tuple(target)
    s.settimeout(timeout)
    try:
        s.connect(addr)
    except OSError:
        s.close()
        raise
    return s


def accepts(target):
    """True when target (port, (host, port) or unix path) takes a
    connection within 0.2 s."""
    try:
        with _connect(target, 0.2):
            return True
    except OSError:
        return False


def wait_for(pred, timeout=5.0, step=0.02, what=None):
    """pred()'s first truthy value, polled every `step` s for `timeout` s.
    When time runs out: AssertionError "timed out waiting for WHAT" if
    `what` is given, else pred()'s last value."""
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() >= deadline:
            if what is not None:
                raise AssertionError("timed out waiting for " + what)
            return got
        time.sleep(step)


def wait_accepting(target, timeout=START_TIMEOUT):
    """Waits until target accepts (e.g. a proxy's stats_port, which
    _Proxy.start does not wait for); AssertionError after timeout."""
    wait_for(lambda: accepts(target), timeout,
             what="%s to accept" % (target,))


def read_to_eof(sock, timeout, until=None):
    """Reads sock until the peer closes or `timeout` s pass; with `until`,
    also stops once those bytes arrived. Returns (bytes, how), how being
    "eof", "reset", "timeout" (the bytes so far), or "until" (the bytes
    up to and including the first `until`; any later ones are dropped)."""
    deadline = time.monotonic() + timeout
    buf = bytearray()
    while True:
        if until is not None and until in buf:
            return bytes(buf[:buf.index(until) + len(until)]), "until"
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(buf), "timeout"
        sock.settimeout(left)
        try:
            chunk = sock.recv(1 << 16)
        except socket.timeout:
            return bytes(buf), "timeout"
        except ConnectionResetError:
            return bytes(buf), "reset"
        if not chunk:
            return bytes(buf), "eof"
        buf += chunk


# ---------------------------------------------------------------- client

class ProtocolError(AssertionError):
    """A reply did not arrive in time, or the connection closed early."""


class Conn:
    """A buffered raw-socket memcached text-protocol client.

    Bytes read past one reply stay buffered for the next read, so pipelined
    replies can be read one by one. Every read is bounded by `timeout`.
    """

    def __init__(self, target, timeout=IO_TIMEOUT):
        self.target = target
        self.timeout = timeout
        self.sock = _connect(target, timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise ProtocolError("timeout; buffered: %r" % self.buf[:300])
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(1 << 16)
        except socket.timeout:
            raise ProtocolError("timeout; buffered: %r"
                                % self.buf[:300]) from None
        if not chunk:
            raise ProtocolError("connection closed; buffered: %r"
                                % self.buf[:300])
        self.buf += chunk

    def _take(self, n):
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _deadline(self, timeout):
        return time.monotonic() + (timeout or self.timeout)

    def read_exact(self, n, timeout=None):
        """Exactly n bytes."""
        deadline = self._deadline(timeout)
        while len(self.buf) < n:
            self._fill(deadline)
        return self._take(n)

    def read_until(self, term, timeout=None):
        """Bytes up to and including the first occurrence of term."""
        deadline = self._deadline(timeout)
        start = 0
        while True:
            i = self.buf.find(term, start)
            if i >= 0:
                return self._take(i + len(term))
            start = max(0, len(self.buf) - len(term) + 1)
            self._fill(deadline)

    def read_line(self, timeout=None):
        return self.read_until(b"\r\n", timeout)

    def read_reply(self, timeout=None):
        """One complete reply: a single line, or VALUE.../STAT.../ITEM...
        lines up to and including END."""
        deadline = self._deadline(timeout)
        out = b""
        while True:
            line = self.read_line(max(0.001, deadline - time.monotonic()))
            out += line
            if line.startswith(b"VALUE "):
                # fields split on spaces only: a key may hold tabs, \r ...
                nbytes = int(line.split(b" ")[3])
                out += self.read_exact(
                    nbytes + 2, max(0.001, deadline - time.monotonic()))
                continue
            if line.startswith((b"STAT ", b"ITEM ")):
                continue
            return out

    def read_replies(self, n, timeout=None):
        """Exactly n complete replies, as a list of bytes. The default
        timeout grows with n (one per 500 replies, at least self.timeout)."""
        deadline = time.monotonic() + (timeout or max(self.timeout, n / 500))
        return [self.read_reply(max(0.001, deadline - time.monotonic()))
                for _ in range(n)]

    def read_all(self, quiet=0.2, timeout=None):
        """Whatever arrives until the line is quiet for `quiet` seconds or
        the peer closes; for replies whose shape is not known beforehand."""
        deadline = self._deadline(timeout)
        while time.monotonic() < deadline:
            self.sock.settimeout(quiet)
            try:
                chunk = self.sock.recv(1 << 16)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            self.buf += chunk
        return self._take(len(self.buf))

    def expect_closed(self, timeout=None):
        """True when the peer closes (EOF or reset) within timeout with no
        further bytes, False on timeout; ProtocolError if bytes arrive."""
        deadline = self._deadline(timeout)
        if self.buf:
            raise ProtocolError("unexpected bytes: %r" % self.buf[:300])
        self.sock.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            chunk = self.sock.recv(4096)
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        if chunk:
            raise ProtocolError("unexpected bytes: %r" % chunk[:300])
        return True

    def call(self, data, until=None, count=1, timeout=None):
        """Send data, then read `count` complete replies (joined), or, when
        `until` is given, read up to and including that terminator."""
        self.send(data)
        if until is not None:
            return self.read_until(until, timeout)
        return b"".join(self.read_replies(count, timeout))


def call(conn, data, until=None, count=1, timeout=None):
    """Function form of Conn.call."""
    return conn.call(data, until=until, count=count, timeout=timeout)


def read_replies(conn, n, timeout=None):
    """Function form of Conn.read_replies: n complete replies from a
    pipelined stream, in order."""
    return conn.read_replies(n, timeout)


# ---------------------------------------------------------------- admin port

def http_request(port, path, method="GET", timeout=IO_TIMEOUT, body=None,
                 headers=()):
    """(status, body) of one HTTP/1.1 request on a raw socket
    (Connection: close; read until the close), with body (bytes) and
    headers [(name, value)] when given; (None, all bytes) when the answer is not HTTP: a request that
    reaches the admin port more than 250 ms after the connect (a loaded
    box) gets twemproxy's bare JSON."""
    extra = "".join("%s: %s\r\n" % kv for kv in headers)
    if body is not None:
        extra += "Content-Length: %d\r\n" % len(body)
    req = ("%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s\r\n"
           % (method, path, HOST, extra)).encode() + (body or b"")
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(req)
        data, _ = read_to_eof(s, timeout)
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1."):
        return None, data
    return int(head.split(b" ", 2)[1]), body


def admin_stats(port, timeout=IO_TIMEOUT):
    """The admin port's /stats JSON as a dict (status 200, or the bare
    JSON of a late request, see http_request)."""
    status, body = http_request(port, "/stats", timeout=timeout)
    if status not in (None, 200):
        raise AssertionError("GET /stats: %s %r" % (status, body[:200]))
    return json.loads(body)


# ---------------------------------------------------------------- processes

class Process:
    """A child process, stopped by pid (SIGTERM, bounded wait, SIGKILL).
    stdout and stderr go to out_path when given."""

    def __init__(self, argv, out_path=None):
        self.argv = list(argv)
        self.out_path = out_path
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def spawn(self):
        out = open(self.out_path, "ab") if self.out_path else None
        try:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL,
                stdout=out or subprocess.DEVNULL, stderr=subprocess.STDOUT)
        finally:
            if out:
                out.close()
        _live.append(self)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, targets, timeout=START_TIMEOUT):
        """True once every target (port or unix path) accepts; False if the
        process exits first or time runs out."""
        deadline = time.monotonic() + timeout
        pending = list(targets)
        while pending and time.monotonic() < deadline:
            if not self.alive():
                return False
            if accepts(pending[0]):
                pending.pop(0)
                continue
            time.sleep(0.02)
        return not pending

    def stop(self):
        stop_all([self])

    def output(self):
        """What the process wrote to stdout and stderr so far."""
        if self.out_path and os.path.exists(self.out_path):
            with open(self.out_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        return ""


def sanitized(path=None):
    """True for a sanitizer build of memring (path, default the binary
    under test), which its sanitizer instruments: it reports crashes
    itself and is not what a package ships."""
    with open(path or memring_bin(), "rb") as f:
        data = f.read()
    return b"__asan_init" in data or b"__tsan_init" in data


def report_crash(p):
    """A process that a signal other than our SIGTERM/SIGKILL ended (a
    crash: memring's crash.c logged a backtrace), or that a sanitizer
    stopped: its status and the end of its output to stderr, where ctest
    --output-on-failure shows them."""
    rc = p.proc.poll() if p.proc is not None else None
    if rc is None or rc == 0 or -rc in (signal.SIGTERM, signal.SIGKILL):
        return
    text = p.output() + (p.log_text() if hasattr(p, "log_text") else "")
    if rc > 0 and "Sanitizer" not in text and "runtime error" not in text:
        return      # an exit it chose (a bad config...), not a crash
    sys.stderr.write("harness: %s %s; its output and log end:\n%s\n"
                     % (p.argv[0], "died of signal %d" % -rc if rc < 0 else
                        "exited %d" % rc, text[-6000:]))
    sys.stderr.flush()


def stop_all(procs):
    """Stop several Processes at once: SIGTERM to all, one bounded wait
    (memcached takes ~0.7 s to exit), then SIGKILL to stragglers."""
    running = [p for p in procs if p.alive()]
    for p in procs:
        report_crash(p)
    for p in running:
        p.proc.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    for p in running:
        try:
            p.proc.wait(max(0.001, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.proc.kill()
            p.proc.wait(STOP_TIMEOUT)
    for p in procs:
        if p in _live:
            _live.remove(p)


def kill_pid(pid, timeout=STOP_TIMEOUT):
    """Stop a process that is not our child (e.g. a daemon) by pid."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def freeze(test, pid):
    """SIGSTOP pid and wait until every thread of it is stopped: kill()
    returns before that, and a thread still running can answer a request
    sent right after. SIGCONT at cleanup."""
    os.kill(pid, signal.SIGSTOP)
    test.addCleanup(os.kill, pid, signal.SIGCONT)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        states = []
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                states.append(f.read().rpartition(")")[2].split()[0])
        if all(st in ("T", "t") for st in states):
            return
        time.sleep(0.005)
    raise AssertionError("pid %d did not stop: %s" % (pid, states))


def proc_kib(pid, field="VmRSS"):
    """A size line of /proc/PID/status (VmRSS, VmHWM ...), in KiB;
    AssertionError when the line is missing (e.g. a zombie)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


@atexit.register
def _sweep():
    stop_all(list(_live))


class Memcached(Process):
    """A real memcached in the foreground on a free 127.0.0.1 port."""

    def __init__(self, extra_args=()):
        super().__init__([])
        self.extra_args = list(extra_args)
        self.port = None

    @property
    def addr(self):
        return "%s:%d" % (HOST, self.port)

    def start(self, port=None, tries=5):
        """Start on `port` (or a free one, retried on a bind collision)."""
        for _ in range(tries):
            self.port = port or free_port()
            self.argv = [MEMCACHED_BIN, "-l", HOST, "-p", str(self.port),
                         "-U", "0", "-m", "64", "-t", "1"] + self.extra_args
            if os.geteuid() == 0:
                self.argv += ["-u", "root"]   # memcached refuses root else
            self.spawn()
            if self.wait_ready([self.port]):
                return self
            self.stop()
            if port:
                break
        raise RuntimeError("memcached did not start on port %s" % self.port)

    def conn(self, timeout=IO_TIMEOUT):
        return Conn(self.port, timeout)

    def call(self, data, until=None, count=1):
        """One shot: connect, call, close."""
        with self.conn() as c:
            return c.call(data, until=until, count=count)

    def raw_get(self, key):
        """The value stored under key on this server, or None."""
        if isinstance(key, str):
            key = key.encode()
        values = parse_values(self.call(b"get " + key + b"\r\n"))
        return values[0][2] if values else None

    def raw_get_many(self, keys):
        """{key (bytes): value} for those of keys this server holds."""
        keys = [k.encode() if isinstance(k, str) else k for k in keys]
        out = {}
        with self.conn() as c:
            for i in range(0, len(keys), 100):
                reply = c.call(b"get " + b" ".join(keys[i:i + 100]) + b"\r\n")
                for key, _, value in parse_values(reply):
                    out[key] = value
        return out

    def flush(self):
        self.call(b"flush_all\r\n")


class _Proxy(Process):
    """What Memring and Nutcracker share: BIN -c CONF -o LOG -v 5
    -s STATS_PORT -a 127.0.0.1 [args] (a free stats port, so parallel runs
    never collide on the default 22222), and a start that waits for the
    listeners and prints the log on failure."""

    bin = None

    def __init__(self, conf, wait=(), args=(), log=None):
        self.conf = conf
        self.wait = list(wait)
        self.stats_port = free_port()
        self.log = log or os.path.join(os.path.dirname(conf),
                                       type(self).__name__.lower() + ".log")
        argv = [self.bin or memring_bin(), "-c", conf, "-o", self.log,
                "-v", "5", "-s", str(self.stats_port), "-a", HOST] + list(args)
        super().__init__(argv, out_path=self.log + ".stdout")

    def start(self, timeout=START_TIMEOUT):
        """Spawn and wait until every `wait` target accepts. On failure the
        output and log go to stderr and RuntimeError is raised."""
        self.spawn()
        if self.wait_ready(self.wait, timeout):
            return self
        status = self.proc.poll()
        self.stop()
        sys.stderr.write("--- %s not ready (exit status %s)\n%s\n%s%s"
                         "--- end of log\n"
                         % (type(self).__name__, status, " ".join(self.argv),
                            self.output(), self.log_text()))
        raise RuntimeError("%s did not start" % type(self).__name__)

    def log_text(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


def start_on_free_ports(make, timeout=START_TIMEOUT, tries=3):
    """Starts the proxy that make() returns (make picks free ports, writes
    the config, builds the _Proxy); when a listen port was taken meanwhile
    (its log says "in use"), makes and starts it again. The started
    proxy; RuntimeError when it fails otherwise or keeps colliding."""
    for _ in range(tries):
        proxy = make()
        try:
            return proxy.start(timeout)
        except RuntimeError:
            if "in use" not in proxy.output() + proxy.log_text():
                raise
    raise RuntimeError("%s listen ports kept colliding"
                       % type(proxy).__name__)


class Memring(_Proxy):
    """The built memring binary (see memring_bin())."""


class Nutcracker(_Proxy):
    """/usr/sbin/nutcracker with the same flags."""

    bin = NUTCRACKER_BIN


# ---------------------------------------------------------------- configs

def render_conf(template, out_dir, name=None, **subs):
    """Render tests/conf/<template> with ${key} substitutions (every
    placeholder must be given) into out_dir/<name> (default: template
    without .in); returns the written path."""
    with open(conf_template(template)) as f:
        text = string.Template(f.read()).substitute(
            {k: str(v) for k, v in subs.items()})
    if name is None:
        name = template[:-3] if template.endswith(".in") else template
    return write_conf(os.path.join(out_dir, name), text)


def servers_yaml(servers, weights=None, names=None, indent=4):
    """YAML list lines for a pool's `servers:` key. `servers` holds
    Memcached objects or "host:port" strings; weights default to 1; names
    (aliases) are appended when given."""
    lines = []
    for i, s in enumerate(servers):
        addr = s.addr if isinstance(s, Memcached) else s
        item = "%s:%d" % (addr, weights[i] if weights else 1)
        if names and names[i]:
            item += " " + names[i]
        lines.append(" " * indent + "- " + item)
    return "\n".join(lines)


def pool_yaml(name, listen, servers, **keys):
    """One pool's YAML section: `name:`, `listen:` (a port on HOST, or
    any listen string), each of **keys as `key: value` in the order given
    (True/False as true/false; None left out), then `servers:`: a str
    of rendered lines, or a list for servers_yaml()."""
    if isinstance(listen, int):
        listen = "%s:%d" % (HOST, listen)
    lines = ["%s:" % name, "  listen: %s" % listen]
    for key, value in keys.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        lines.append("  %s: %s" % (key, value))
    if not isinstance(servers, str):
        servers = servers_yaml(servers)
    lines += ["  servers:", servers]
    return "\n".join(lines) + "\n"


def write_conf(path, text):
    """Writes a config file's text to path (in place); returns path."""
    with open(path, "w") as f:
        f.write(text)
    return path


# ---------------------------------------------------------------- cluster

class Cluster:
    """Memcached servers behind one proxy with one pool, torn down by the
    test's addCleanup (or by .stop()). Pass a TestCase class instead of an
    instance to use it from setUpClass (cleanup via addClassCleanup).

    Template placeholders filled here: ${listen} ${servers} ${hash}
    ${distribution} ${timeout}; any other placeholder comes from **subs,
    and **subs override these defaults. `servers` may be a string or a
    callable(list of Memcached) -> str (e.g. a lambda around servers_yaml
    with weights and names). `backends`: reuse these running Memcached
    (not stopped by this Cluster) instead of starting `nservers` new ones,
    e.g. to put memring and nutcracker in front of the same servers.
    listen defaults to 127.0.0.1:<free port>; listen="unix" listens on
    <dir>/memring.sock with mode 0666 (then .port is that path).
    proxy: "memring", "nutcracker", or "direct" (no proxy: one memcached,
    .port is its port; for checking tests against plain memcached);
    default $MEMRING_IT_PROXY, else "memring".
    test=None: no cleanup is registered; call .stop() yourself.
    args: extra command-line arguments for the proxy.
    """

    def __init__(self, test, nservers=2, template="pool.yml.in",
                 proxy=None, listen=None, backends=None, args=(), **subs):
        self.dir = tempfile.mkdtemp(prefix="memring-it-")
        self.proxy = None
        self.owned = []
        if isinstance(test, type):
            test.addClassCleanup(self.stop)
        elif test is not None:
            test.addCleanup(self.stop)
        proxy = proxy or os.environ.get("MEMRING_IT_PROXY", "memring")
        if proxy == "direct":
            nservers, backends = 1, None
        if backends is None:
            for _ in range(nservers):
                self.owned.append(Memcached().start())
        self.servers = list(backends) if backends is not None else self.owned
        subs.setdefault("hash", "fnv1a_64")
        subs.setdefault("distribution", "ketama")
        subs.setdefault("timeout", "2000")
        servers = subs.get("servers", servers_yaml)
        if callable(servers):
            subs["servers"] = servers(self.servers)
        if proxy == "direct":
            self.proxy, self.port = self.servers[0], self.servers[0].port
            return
        cls = Memring if proxy == "memring" else Nutcracker

        def make():
            if listen == "unix":
                self.port = os.path.join(self.dir, "memring.sock")
                subs["listen"] = self.port + " 0666"
            else:
                self.port = free_port()
                subs["listen"] = listen or "%s:%d" % (HOST, self.port)
            self.conf = render_conf(template, self.dir, **subs)
            self.proxy = cls(self.conf, wait=[self.port], args=args)
            return self.proxy

        start_on_free_ports(make)

    def conn(self, timeout=IO_TIMEOUT):
        return Conn(self.port, timeout)

    def owner_of(self, key):
        """The Memcached that holds key right now, or None."""
        for s in self.servers:
            if s.raw_get(key) is not None:
                return s
        return None

    def stop(self):
        stop_all(([self.proxy] if self.proxy else []) + self.owned)
        shutil.rmtree(self.dir, ignore_errors=True)


def start_shared(nservers=3, **subs):
    """For setUpModule: (Cluster, reference Memcached), both stopped by
    module cleanups. The pool hashes with md5 unless told otherwise: it
    spreads look-alike test keys evenly, where twemproxy's default
    fnv1a_64 can leave a server with none of 30 such keys."""
    ref = Memcached().start()
    unittest.addModuleCleanup(ref.stop)
    subs.setdefault("hash", "md5")
    cluster = Cluster(None, nservers=nservers, **subs)
    unittest.addModuleCleanup(cluster.stop)
    return cluster, ref


# ---------------------------------------------------------------- fakes

class FakeMemcached:
    """A memcached look-alike on a free 127.0.0.1 port whose behaviour the
    test sets through .mode, for the replies a real server never sends:

      ok        get -> END, storage -> STORED (keys seen are recorded)
      garbage   a line that is no memcached reply
      wrong     a well-formed reply of the wrong kind (STORED to a get)
      midvalue  half a VALUE block, then close
      partial   for a multi-key get: the first value whole, then close
      close     close without a word
      reset     close with RST (SO_LINGER 0)
      silent    read requests, never answer

    A thread in this process; every socket has a short timeout and every
    loop checks the stop flag; stop() joins the threads (bounded)."""

    def __init__(self):
        self.mode = "ok"
        self.seen = []
        self.halt = threading.Event()
        self.lock = threading.Lock()
        self.socks = []
        self.threads = []
        self.lis = socket.socket()
        self.lis.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lis.bind((HOST, 0))
        self.lis.listen(64)
        self.lis.settimeout(0.05)
        self.port = self.lis.getsockname()[1]
        self.addr = "%s:%d" % (HOST, self.port)
        self._spawn(self._accept_loop)

    def _spawn(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        self.threads.append(t)
        t.start()

    def _accept_loop(self):
        while not self.halt.is_set():
            try:
                s, _ = self.lis.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            s.settimeout(0.05)
            with self.lock:
                self.socks.append(s)
            self._spawn(self._serve, s)

    def _serve(self, s):
        buf = b""
        try:
            while not self.halt.is_set():
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    return
                buf += chunk
                while b"\r\n" in buf:
                    line, rest = buf.split(b"\r\n", 1)
                    words = line.split()
                    need = 0
                    if words and words[0] in (b"set", b"add", b"replace",
                                              b"append", b"prepend", b"cas"):
                        need = int(words[4]) + 2
                    if len(rest) < need:
                        break
                    buf = rest[need:]
                    if not self._answer(s, words):
                        return
        except OSError:
            return
        finally:
            s.close()

    def _answer(self, s, words):
        """Replies to one request; False when the connection must end."""
        mode = self.mode
        cmd = words[0] if words else b""
        keys = words[1:] if cmd in (b"get", b"gets") else words[1:2]
        with self.lock:
            self.seen.extend(keys)
        if mode == "ok":
            s.sendall(b"END\r\n" if cmd in (b"get", b"gets") else
                      b"STORED\r\n")
        elif mode == "garbage":
            s.sendall(b"HELLO? \x01\x02 this is no memcached\r\n")
        elif mode == "wrong":
            s.sendall(b"STORED\r\n" if cmd in (b"get", b"gets") else
                      b"END\r\n")
        elif mode == "midvalue":
            s.sendall(b"VALUE %s 0 100\r\n%s" % (keys[0], b"x" * 10))
            return False
        elif mode == "partial":
            s.sendall(b"VALUE %s 0 4\r\nfake\r\n" % keys[0])
            return False
        elif mode == "close":
            return False
        elif mode == "reset":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
            return False
        return True             # silent

    def stop(self):
        self.halt.set()
        self.lis.close()
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self.threads:
            t.join(2)


# ---------------------------------------------------------------- requests

def set_cmd(key, value, noreply=False):
    """A text-protocol set of key to value (flags 0, no expiry)."""
    return b"set %s 0 0 %d%s\r\n%s\r\n" % (
        key, len(value), b" noreply" if noreply else b"", value)


def value_block(key, value, flags=0):
    """One VALUE line and its data block, as a get reply holds it."""
    return b"VALUE %s %d %d\r\n%s\r\n" % (key, flags, len(value), value)


def value_reply(key, value, flags=0):
    """A whole one-key get reply: value_block + END."""
    return value_block(key, value, flags) + b"END\r\n"


def binary_request(opcode, key=b"", value=b"", extras=b"", opaque=0):
    """A memcached binary-protocol request: 24-byte header, then extras,
    key and value."""
    return struct.pack(">BBHBBHIIQ", 0x80, opcode, len(key), len(extras),
                       0, 0, len(extras) + len(key) + len(value), opaque,
                       0) + extras + key + value


# ---------------------------------------------------------------- parsing

# A VALUE line: fields split on spaces only (a key may hold tabs, \r ...);
# the cas field may have been replaced by strip_cas().
_VALUE = re.compile(rb"VALUE ([^ \n]+) (\d+) (\d+)(?: ([^ \r\n]+))?\r\n")


def parse_stats(reply):
    """{name: value text} of a `stats` reply; ProtocolError unless every
    line is "STAT name value" and the reply ends in END."""
    lines = reply.split(b"\r\n")
    if lines[-2:] != [b"END", b""]:
        raise ProtocolError("stats reply does not end in END: %r"
                            % reply[-200:])
    out = {}
    for line in lines[:-2]:
        parts = line.split(b" ", 2)
        if len(parts) != 3 or parts[0] != b"STAT":
            raise ProtocolError("not a STAT line: %r" % line[:200])
        out[parts[1].decode()] = parts[2].decode()
    return out


def proxy_stats(port):
    """The proxy's numeric `stats` counters, as {name: int}."""
    with Conn(port) as c:
        reply = c.call(b"stats\r\n")
    return {k: int(v) for k, v in parse_stats(reply).items() if v.isdigit()}


def stats_delta(before, after):
    """{name: after - before} of two proxy_stats() readings."""
    return {k: after[k] - before.get(k, 0) for k in after}


def parse_values(reply):
    """[(key, flags, value)] from a get/gets/gat/gats reply ending in END;
    ProtocolError when the reply is anything else."""
    out = []
    pos = 0
    while True:
        m = _VALUE.match(reply, pos)
        if not m:
            break
        start = m.end()
        end = start + int(m.group(3))
        if reply[end:end + 2] != b"\r\n":
            raise ProtocolError("bad data block in %r" % reply[:200])
        out.append((m.group(1), int(m.group(2)), reply[start:end]))
        pos = end + 2
    if reply[pos:] != b"END\r\n":
        raise ProtocolError("bad get reply tail: %r" % reply[pos:pos + 200])
    return out


def strip_cas(reply):
    """A gets/gats reply with every cas unique replaced by b'C'."""
    return re.sub(rb"(VALUE [^ \n]+ \d+ \d+) \d+\r\n", rb"\1 C\r\n", reply)


# ---------------------------------------------------------------- runner

def run_tests(module_globals):
    """Run every TestCase class in module_globals (command-line words
    filter test ids by substring); print a final "N passed, N failed";
    return 0 when something ran (or was skipped on purpose) and nothing
    failed (for sys.exit)."""
    loader = unittest.TestLoader()
    tests = []
    for obj in list(module_globals.values()):
        if isinstance(obj, type) and issubclass(obj, unittest.TestCase):
            tests.extend(_flatten(loader.loadTestsFromTestCase(obj)))
    words = [a for a in sys.argv[1:] if not a.startswith("-")]
    if words:
        tests = [t for t in tests if any(w in t.id() for w in words)]
    result = unittest.TextTestRunner(verbosity=2).run(
        unittest.TestSuite(tests))
    bad = result.failures + result.errors + \
        [(t, None) for t in result.unexpectedSuccesses]
    failed = len({getattr(t, "test_case", t).id() for t, _ in bad})
    passed = max(0, result.testsRun - failed - len(result.skipped))
    sys.stderr.flush()
    print("%d passed, %d failed" % (passed, failed), flush=True)
    # Something ran, or the suite skipped itself on purpose (a sanitizer
    # build it does not apply to); a filter that matched nothing fails.
    return 0 if failed == 0 and (result.testsRun > 0 or result.skipped) \
        else 1


def _flatten(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from _flatten(t)
        else:
            yield t
