"""The limits that protect memring from its clients (README, *Limits*):

- --item-size-max: a longer value gets SERVER_ERROR as soon as its header
  is in, its data block is dropped as it arrives (memring's RSS does not
  grow by the value), and the connection stays usable;
- --pending-values-max: values held for all clients together, from
  their header until their server answers; past it memcached's out of
  memory line, the connection in step;
- --client-requests-max: a client with that many requests unanswered
  (a stopped server) is not read until half are; then all are answered;
- --client-output-max, --pending-output-max: a client that never reads
  is paused (its requests wait in the kernel) and holds little; one that
  has replies past the first unsent (large multi-gets asked before it fell
  behind), or all clients' together past the second, is cut off, while
  other clients go on;
- --max-clients and the pool key client_connections: a connection over
  the limit reads "ERROR Too many open connections" and is closed;
- --client-idle-timeout: clients silent that long are closed, unless
  memring still owes them a reply;
- many half-sent requests (slowloris): little memory each, and a normal
  client stays fast;
- --get-keys-max, which bounds a multi-get's keys (its line has no
  length limit of its own);
- a descriptor limit (RLIMIT_NOFILE) below --max-clients.

Each class starts its own memring (flags differ) in front of one shared
memcached, on 127.0.0.1 free ports. Memory is read from /proc/PID/status
(VmRSS, and VmHWM after resetting it through /proc/PID/clear_refs). Every
socket has a timeout, every loop a bound; the file runs in about 15 s.
Numbers measured are printed to stderr.
"""

import os
import resource
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
import unittest

import harness as h

TOO_LARGE = b"SERVER_ERROR object too large for cache\r\n"
TOO_MANY = b"ERROR Too many open connections\r\n"

MC = None               # the memcached every pool uses, unless told


def setUpModule():
    global MC
    MC = h.Memcached().start()
    unittest.addModuleCleanup(MC.stop)


def note(fmt, *args):
    sys.stderr.write("limits: " + (fmt % args) + "\n")
    sys.stderr.flush()


# ---------------------------------------------------------------- helpers

class Proxy:
    """memring with `args`, from limits.yml.in: pool alpha on .port and
    pool beta on .port_b (both on MC unless servers_b is given), stopped
    by the owner's (class) cleanups."""

    def __init__(self, owner, args=(), conns_a=0, conns_b=0,
                 timeout_b=2000, servers_b=None):
        add = owner.addClassCleanup if isinstance(owner, type) \
            else owner.addCleanup
        self.dir = tempfile.mkdtemp(prefix="memring-limits-")
        add(shutil.rmtree, self.dir, True)

        def make():
            self.port, self.port_b = h.free_port(), h.free_port()
            conf = h.render_conf(
                "limits.yml.in", self.dir,
                listen="%s:%d" % (h.HOST, self.port),
                listen_b="%s:%d" % (h.HOST, self.port_b),
                servers=h.servers_yaml([MC], indent=3),
                servers_b=h.servers_yaml(servers_b or [MC], indent=3),
                conns_a=conns_a, conns_b=conns_b, timeout_b=timeout_b)
            return h.Memring(conf, wait=[self.port, self.port_b], args=args)

        self.mr = h.start_on_free_ports(make)
        add(self.mr.stop)
        h.wait_accepting(self.mr.stats_port)
        self.settle()

    def settle(self, limit=5.0):
        """Waits until both pools' connection counts hold still for 0.3 s
        with no client open: the harness's readiness probe (one connect per
        port) may wait in a worker's accept queue until that worker's loop
        first runs, and would then count (or be refused) in a test."""
        deadline = time.monotonic() + limit
        last = None
        while time.monotonic() < deadline:
            st = self.stats()
            now = tuple((st[pool]["memring_total_connections"],
                         st[pool]["client_connections"])
                        for pool in ("alpha", "beta"))
            if now == last and all(curr == 0 for _, curr in now):
                return
            last = now
            time.sleep(0.3)

    def conn(self, pool="alpha", timeout=h.IO_TIMEOUT):
        return h.Conn(self.port if pool == "alpha" else self.port_b,
                      timeout)

    def stats(self):
        """The admin endpoint's GET /stats, parsed (h.admin_stats)."""
        return h.admin_stats(self.mr.stats_port)

    def stat(self, key, pool="alpha"):
        """One pool counter, e.g. "memring_client_refused"."""
        return self.stats()[pool][key]

    def wait_stat(self, key, pred, pool="alpha", timeout=5.0):
        """Polls a pool counter until pred(value); returns the value, or
        fails with the last one seen."""
        seen = []

        def ok():
            seen.append(self.stat(key, pool))
            return pred(seen[-1])

        if not h.wait_for(ok, timeout):
            raise AssertionError("%s.%s stuck at %d" % (pool, key, seen[-1]))
        return seen[-1]

    def rss(self):
        return h.proc_kib(self.mr.pid, "VmRSS")

    def reset_peak(self):
        """Restarts VmHWM (peak RSS) from the current RSS."""
        with open("/proc/%d/clear_refs" % self.mr.pid, "w") as f:
            f.write("5")

    def peak(self):
        return h.proc_kib(self.mr.pid, "VmHWM")


def pending(c):
    """Bytes that have arrived on Conn c and were not read yet."""
    c.sock.setblocking(False)
    try:
        return c.buf + c.sock.recv(4096, socket.MSG_PEEK)
    except BlockingIOError:
        return c.buf
    finally:
        c.sock.settimeout(c.timeout)


def wrap(sock, port, timeout=5):
    """A harness Conn around a socket connected here (to set options
    before the connect, or to send before memring accepts)."""
    c = h.Conn.__new__(h.Conn)
    c.target, c.timeout, c.sock, c.buf = port, timeout, sock, b""
    return c


def set_when_room(test, p, key, value, pool="alpha", limit=5.0):
    """Sets key on a new connection until it is STORED (within limit s):
    a value's room is given back when memring frees its request, which
    may be a loop turn after the reply went out, and a client's close is
    seen a moment after it closes. Returns how many sets were refused
    before."""
    t0 = time.monotonic()
    refused = 0
    while True:
        with p.conn(pool, timeout=10) as c:
            got = c.call(h.set_cmd(key, value))
        if got == b"STORED\r\n" or time.monotonic() > t0 + limit:
            break
        refused += 1
        time.sleep(0.05)
    test.assertEqual(got, b"STORED\r\n")
    return refused


def check_set_get(test, c, key, value):
    test.assertEqual(c.call(h.set_cmd(key, value)), b"STORED\r\n")
    test.assertEqual(c.call(b"get %s\r\n" % key), h.value_reply(key, value))


class Worker(threading.Thread):
    """A normal client doing set/get on its own connection until told to
    stop; records each call's latency (s) and the first error."""

    def __init__(self, port, key=b"normal"):
        super().__init__(daemon=True)
        self.port = port
        self.key = key
        self.stop_ev = threading.Event()
        self.lat = []
        self.error = None

    def run(self):
        try:
            with h.Conn(self.port, 5) as c:
                for i in range(100000):
                    if self.stop_ev.is_set():
                        break
                    v = b"v%d" % i
                    t = time.monotonic()
                    got = c.call(h.set_cmd(self.key, v))
                    self.lat.append(time.monotonic() - t)
                    assert got == b"STORED\r\n", got
                    t = time.monotonic()
                    got = c.call(b"get %s\r\n" % self.key)
                    self.lat.append(time.monotonic() - t)
                    assert got == h.value_reply(self.key, v), got
                    time.sleep(0.002)
        except Exception as e:      # reported by finish()
            self.error = e

    def finish(self, test):
        self.stop_ev.set()
        self.join(10)
        test.assertFalse(self.is_alive(), "normal client stuck")
        test.assertIsNone(self.error)
        test.assertGreater(len(self.lat), 10)
        lat = sorted(self.lat)
        return (statistics.median(lat) * 1000,
                lat[int(len(lat) * 0.99)] * 1000, lat[-1] * 1000, len(lat))


def timed_ops(test, c, n, key=b"probe"):
    """n set+get pairs on c; sorted latencies in ms."""
    lat = []
    for i in range(n):
        v = b"x%d" % i
        t = time.monotonic()
        test.assertEqual(c.call(h.set_cmd(key, v)), b"STORED\r\n")
        lat.append((time.monotonic() - t) * 1000)
        t = time.monotonic()
        test.assertEqual(c.call(b"get %s\r\n" % key), h.value_reply(key, v))
        lat.append((time.monotonic() - t) * 1000)
    return sorted(lat)


# ---------------------------------------------------------------- item size

ITEM_MAX = 100000


class TestItemSize(unittest.TestCase):
    """--item-size-max=100000."""

    @classmethod
    def setUpClass(cls):
        cls.p = Proxy(cls, args=["--item-size-max=%d" % ITEM_MAX])

    def setUp(self):
        self.before = self.p.stat("memring_request_too_large")

    def refused(self):
        return self.p.stat("memring_request_too_large") - self.before

    def test_one_byte_over_then_usable(self):
        with self.p.conn() as c:
            got = c.call(h.set_cmd(b"big", b"x" * (ITEM_MAX + 1)))
            self.assertEqual(got, TOO_LARGE)
            check_set_get(self, c, b"after", b"fine")
            self.assertEqual(c.call(b"get big\r\n"), b"END\r\n")
        self.assertEqual(self.refused(), 1)

    def test_exactly_the_limit_passes(self):
        value = bytes(range(256)) * (ITEM_MAX // 256) + \
            b"e" * (ITEM_MAX % 256)
        self.assertEqual(len(value), ITEM_MAX)
        with self.p.conn() as c:
            check_set_get(self, c, b"exact", value)
        self.assertEqual(MC.raw_get(b"exact"), value)
        self.assertEqual(self.refused(), 0)

    def test_every_storage_command(self):
        big = b"y" * (ITEM_MAX + 1)
        cmds = [b"set k 0 0 %d\r\n", b"add k 0 0 %d\r\n",
                b"replace k 0 0 %d\r\n", b"append k 0 0 %d\r\n",
                b"prepend k 0 0 %d\r\n", b"cas k 0 0 %d 1\r\n"]
        with self.p.conn() as c:
            for cmd in cmds:
                with self.subTest(cmd=cmd):
                    got = c.call(cmd % len(big) + big + b"\r\n")
                    self.assertEqual(got, TOO_LARGE)
            self.assertEqual(c.call(b"version\r\n")[:8], b"VERSION ")
        self.assertEqual(self.refused(), len(cmds))

    def test_noreply_says_nothing(self):
        with self.p.conn() as c:
            c.send(h.set_cmd(b"quiet", b"q" * (ITEM_MAX + 1), noreply=True))
            c.send(h.set_cmd(b"quiet2", b"ok") + b"get quiet quiet2\r\n")
            self.assertEqual(c.read_reply(), b"STORED\r\n")
            self.assertEqual(c.read_reply(), h.value_reply(b"quiet2", b"ok"))
            self.assertEqual(c.read_all(quiet=0.1), b"")
        self.assertEqual(self.refused(), 1)

    def test_pipelined_between_good_requests(self):
        data = (h.set_cmd(b"p1", b"one") +
                h.set_cmd(b"p2", b"z" * (ITEM_MAX + 1)) +
                h.set_cmd(b"p3", b"three") + b"get p1 p2 p3\r\n")
        with self.p.conn() as c:
            got = c.call(data, count=4)
        self.assertEqual(got, b"STORED\r\n" + TOO_LARGE + b"STORED\r\n" +
                         b"VALUE p1 0 3\r\none\r\nVALUE p3 0 5\r\nthree\r\n"
                         b"END\r\n")
        self.assertEqual(self.refused(), 1)

    def test_data_that_looks_like_commands_is_dropped(self):
        # The dropped block is data, not requests: memring must count its
        # bytes, not parse them (memcached swallows vlen + 2 bytes).
        inner = h.set_cmd(b"smuggled", b"no") + b"get smuggled\r\n"
        block = (inner * (ITEM_MAX // len(inner) + 1))[:ITEM_MAX + 1]
        with self.p.conn() as c:
            got = c.call(b"set k 0 0 %d\r\n%s\r\n" % (len(block), block))
            self.assertEqual(got, TOO_LARGE)
            self.assertEqual(c.call(b"get smuggled\r\n"), b"END\r\n")

    def test_refused_set_drops_the_old_value(self):
        # memcached 1.6 unlinks the key when a set is refused as too
        # large ("avoid stale data persisting in cache because we failed
        # alloc"), noreply or not; memring refuses the set itself, so it
        # sends the server a delete that nobody sees the reply of.
        with self.p.conn() as c:
            self.assertEqual(c.call(h.set_cmd(b"stale", b"old")),
                             b"STORED\r\n")
            self.assertEqual(c.call(h.set_cmd(b"stale", b"n" *
                                            (ITEM_MAX + 1))), TOO_LARGE)
            self.assertEqual(c.call(b"get stale\r\n"), b"END\r\n")


class TestItemSizeStreaming(unittest.TestCase):
    """A 50 MB value against --item-size-max=1000000, sent in chunks:
    refused at its header, its bytes dropped as they come."""

    VALUE = 50 * 1000 * 1000
    CHUNK = 256 * 1024

    @classmethod
    def setUpClass(cls):
        cls.p = Proxy(cls, args=["--item-size-max=1000000"])

    def test_huge_value_is_not_buffered(self):
        p = self.p
        before = p.stat("memring_request_too_large")
        with p.conn(timeout=10) as c:
            check_set_get(self, c, b"warm", b"w" * 1000)   # warm buffers
            base = p.rss()
            p.reset_peak()
            c.send(b"set huge 0 0 %d\r\n" % self.VALUE)
            # the refusal comes before the data: memring decides at the
            # header, it does not wait for the value
            self.assertEqual(c.read_line(timeout=3), TOO_LARGE)
            chunk = b"h" * self.CHUNK
            sent, top = 0, base
            t0 = time.monotonic()
            while sent < self.VALUE:
                n = min(self.CHUNK, self.VALUE - sent)
                c.send(chunk[:n])
                sent += n
                if sent % (16 * self.CHUNK) == 0:
                    top = max(top, p.rss())
                    time.sleep(0.001)   # let memring read in pieces
            c.send(b"\r\n")
            check_set_get(self, c, b"after", b"still in step")
            secs = time.monotonic() - t0
            top = max(top, p.rss())
            peak = p.peak()
        grew = max(top, peak) - base
        note("50 MB refused value: RSS before %d KiB, highest sample %d "
             "KiB, VmHWM %d KiB: grew %d KiB (%.2f s to send)",
             base, top, peak, grew, secs)
        self.assertLess(grew, 4 * 1024, "memring buffered the value")
        self.assertEqual(p.stat("memring_request_too_large") - before, 1)


# ---------------------------------------------------------------- output

OUTPUT_MAX = 1000000
BIG = 100 * 1000


def slow_socket(port):
    """A connected socket with a small receive buffer, set before the
    connect so that the window stays small."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(5)
    s.connect((h.HOST, port))
    return s


def drain(s, timeout):
    """(bytes read, closed?) reading s until EOF/reset or timeout."""
    data, how = h.read_to_eof(s, timeout)
    return len(data), how != "timeout"


class TestPendingValues(unittest.TestCase):
    """--pending-values-max=1000000: values held (from their header until
    their server answers), all clients together. One client's 600 kB
    value in progress leaves no room for a second one's: that one gets
    memcached's out-of-memory line at its header, its bytes are dropped,
    and its connection stays usable; once the first value is stored, the
    room is back."""

    SIZE = 600 * 1000
    OOM = b"SERVER_ERROR out of memory storing object\r\n"

    @classmethod
    def setUpClass(cls):
        cls.mc = h.Memcached().start()      # pool beta's, to be stopped
        cls.addClassCleanup(cls.mc.stop)
        cls.p = Proxy(cls, args=["--pending-values-max=1000000"],
                      servers_b=[cls.mc], timeout_b=60000)

    def test_values_held_for_a_stalled_server_count(self):
        """Values received whole still count until their server answers:
        two 400 kB sets pipelined to a stopped server hold 800 kB, so a
        third, and another client's 300 kB on the other pool, are
        refused; when the server runs again the two are stored, the third
        refused in its place in the stream, and the room is back."""
        p = self.p
        before = p.stat("memring_request_no_memory", "beta")
        h.freeze(self, self.mc.pid)
        vals = [bytes([ord("p") + i]) * 400000 for i in range(3)]
        with p.conn("beta", timeout=10) as c:
            c.send(b"".join(h.set_cmd(b"pv:s%d" % i, v)
                            for i, v in enumerate(vals)))
            p.wait_stat("memring_request_no_memory",
                        lambda v: v > before, "beta")
            with p.conn(timeout=10) as other:
                self.assertEqual(other.call(h.set_cmd(b"pv:o", b"o" * 300000)),
                                 self.OOM)
            os.kill(self.mc.pid, signal.SIGCONT)
            self.assertEqual(c.read_replies(3, timeout=10),
                             [b"STORED\r\n"] * 2 + [self.OOM])
            self.assertEqual(c.call(b"get pv:s1\r\n"),
                             h.value_reply(b"pv:s1", vals[1]))
            self.assertEqual(c.call(b"get pv:s2\r\n"), b"END\r\n")
        set_when_room(self, p, b"pv:o", b"o" * 300000)

    def test_second_value_in_flight_refused_then_room_again(self):
        p = self.p
        before = p.stat("memring_request_no_memory")
        a_value, b_value = b"a" * self.SIZE, b"b" * self.SIZE
        with p.conn(timeout=10) as a, p.conn(timeout=10) as b:
            check_set_get(self, b, b"pv:b", b"old")
            # a: header and half its value, then it stalls
            a.send(b"set pv:a 0 0 %d\r\n" % self.SIZE + a_value[:1000])
            time.sleep(0.2)
            # b: refused at the header, before its value
            b.send(b"set pv:b 0 0 %d\r\n" % self.SIZE)
            self.assertEqual(b.read_line(timeout=3), self.OOM)
            b.send(b_value + b"\r\n")
            # its bytes were dropped, not taken as commands; like memcached
            # the refused set also dropped the old value
            self.assertEqual(b.call(b"get pv:b\r\n"), b"END\r\n")
            # a finishes: stored, and the room is given back
            a.send(a_value[1000:] + b"\r\n")
            self.assertEqual(a.read_line(timeout=5), b"STORED\r\n")
            retried = set_when_room(self, p, b"pv:b", b_value)
            self.assertEqual(b.call(b"get pv:b\r\n"),
                             h.value_reply(b"pv:b", b_value))
        self.assertEqual(p.stat("memring_request_no_memory") - before,
                         1 + retried)

    def test_closing_mid_value_gives_the_room_back(self):
        p = self.p
        for i in range(3):
            with p.conn() as a:
                a.send(b"set pv:c 0 0 %d\r\n" % self.SIZE + b"c" * 100)
                time.sleep(0.05)
            # a is gone with 600 kB counted; a later value still fits
            set_when_room(self, p, b"pv:d%d" % i, b"d" * self.SIZE)


class TestClientRequestsMax(unittest.TestCase):
    """--client-requests-max=100 in front of a stalled server (SIGSTOP,
    no timeout that would fire): a client pipelining 20,000 gets has at
    most 100 of them taken in; memring stops reading it (its bytes wait in
    the kernel), another client is served meanwhile, and once the server
    runs again every request gets its one reply, in order."""

    LIMIT = 100
    N = 20000

    @classmethod
    def setUpClass(cls):
        cls.mc = h.Memcached().start()
        cls.addClassCleanup(cls.mc.stop)
        cls.p = Proxy(cls, args=["--client-requests-max=%d" % cls.LIMIT],
                      servers_b=[cls.mc], timeout_b=60000)

    def test_pipeline_past_the_limit_waits_then_is_answered(self):
        p = self.p
        with p.conn("beta") as c:
            check_set_get(self, c, b"rq:k", b"v")
        asked = lambda: p.stat("memring_cmd_get", "beta")
        before, paused = asked(), p.stat("memring_client_paused", "beta")
        h.freeze(self, self.mc.pid)
        c = p.conn("beta", timeout=30)
        self.addCleanup(c.close)
        sent = []

        def sender():           # blocks while memring does not read
            c.sock.sendall(b"get rq:k\r\n" * self.N)
            sent.append(True)
        t = threading.Thread(target=sender, daemon=True)
        t.start()
        self.addCleanup(t.join, 30)
        p.wait_stat("memring_client_paused", lambda v: v > paused, "beta")
        time.sleep(0.3)         # room for anything more it would take in
        taken = asked() - before
        note("client-requests-max %d: %d of %d pipelined gets taken in "
             "while the server was stopped", self.LIMIT, taken, self.N)
        self.assertGreaterEqual(taken, 1)
        self.assertLessEqual(taken, self.LIMIT)
        # Per client: another one on the other pool is served meanwhile.
        with p.conn("alpha") as other:
            check_set_get(self, other, b"rq:other", b"x")
        os.kill(self.mc.pid, signal.SIGCONT)
        t0 = time.monotonic()
        want = h.value_reply(b"rq:k", b"v")
        got = c.read_exact(len(want) * self.N, timeout=30)
        took = time.monotonic() - t0
        self.assertEqual(got, want * self.N)
        self.assertEqual(c.read_all(quiet=0.2), b"")
        t.join(5)
        self.assertEqual(sent, [True])
        self.assertEqual(asked() - before, self.N)
        note("client-requests-max %d: all %d answered in order %.2f s after "
             "the server ran again; paused %d times", self.LIMIT, self.N,
             took, p.stat("memring_client_paused", "beta") - paused)


class TestSlowReader(unittest.TestCase):
    """--client-output-max=1000000 and a 100 KB value."""

    NGETS = 1000        # 100 MB of replies asked for

    @classmethod
    def setUpClass(cls):
        cls.p = Proxy(cls, args=["--client-output-max=%d" % OUTPUT_MAX])
        with cls.p.conn() as c:
            assert c.call(h.set_cmd(b"big", b"b" * BIG)) == b"STORED\r\n"

    def test_reader_that_never_reads_is_paused(self):
        # As memcached: a client that does not read is no longer read, so
        # its requests wait in the kernel and memring holds a few replies
        # (the socket's worth, a window of requests), not all of them.
        p = self.p
        before = p.stat("memring_client_overflow")
        paused = p.stat("memring_client_paused")
        normal = Worker(p.port)
        normal.start()
        time.sleep(0.2)
        base = p.rss()
        p.reset_peak()
        s = slow_socket(p.port)
        self.addCleanup(s.close)
        s.setblocking(False)
        try:
            s.send(b"get big\r\n" * self.NGETS)
        except BlockingIOError:
            pass
        p.wait_stat("memring_client_paused", lambda v: v > paused, timeout=5)
        time.sleep(1.0)         # the normal client goes on meanwhile
        peak = p.peak()
        median, p99, worst, n = normal.finish(self)
        note("slow reader: paused; RSS %d KiB before, VmHWM %d KiB "
             "(+%d KiB); normal client meanwhile: %d calls, median %.2f ms, "
             "p99 %.2f ms, max %.2f ms", base, peak, peak - base, n, median,
             p99, worst)
        self.assertEqual(p.stat("memring_client_overflow"), before)
        self.assertLess(peak - base, 16 * 1024,
                        "memring held the slow reader's replies")
        self.assertLess(worst, 1000)
        self.assertLess(median, 20)
        with p.conn() as c:
            check_set_get(self, c, b"after", b"fine")

    def test_reader_behind_with_big_replies_is_cut_off(self):
        # The last line: replies already asked for that do not fit
        # --client-output-max (two 10 MB multi-gets sent before the client
        # fell behind) cut it off.
        p = self.p
        before = p.stat("memring_client_overflow")
        s = slow_socket(p.port)
        self.addCleanup(s.close)
        s.sendall((b"get " + b" ".join([b"big"] * 100) + b"\r\n") * 2)
        p.wait_stat("memring_client_overflow", lambda v: v > before,
                    timeout=5)
        got, closed = drain(s, 5)
        self.assertTrue(closed, "the slow reader was not closed")
        self.assertLess(got, 2 * 100 * BIG)
        self.assertEqual(p.stat("memring_client_overflow") - before, 1)
        with p.conn() as c:
            check_set_get(self, c, b"after", b"fine")

    def test_reading_client_gets_a_reply_over_the_limit(self):
        # The limit is on replies left unsent from earlier turns, so one
        # reply bigger than the limit (a 100-key get of this 100 KB value:
        # 10 MB) reaches a client that reads at full speed, as memcached
        # streams a reply of any size to a client that reads it.
        p = self.p
        before = p.stat("memring_client_overflow")
        with p.conn(timeout=10) as c:
            got = c.call(b"get " + b" ".join([b"big"] * 100) + b"\r\n",
                         timeout=10)
            self.assertEqual(len(h.parse_values(got)), 100)
        self.assertEqual(p.stat("memring_client_overflow"), before)

    def test_slow_reader_under_the_limit_is_kept(self):
        # 5 replies of 100 KB (500 KB unsent < 1 MB), read a second later.
        p = self.p
        before = p.stat("memring_client_overflow")
        s = slow_socket(p.port)
        self.addCleanup(s.close)
        s.sendall(b"get big\r\n" * 5)
        time.sleep(1.0)
        c = wrap(s, p.port)
        for _ in range(5):
            self.assertEqual(c.read_reply(), h.value_reply(b"big", b"b" * BIG))
        self.assertEqual(c.call(b"version\r\n")[:8], b"VERSION ")
        self.assertEqual(p.stat("memring_client_overflow"), before)


class TestPendingOutput(unittest.TestCase):
    """--pending-output-max=3000000 (all clients together), the per-client
    limit left at its 128 MiB: two clients that ask for two 10 MB
    multi-gets each and do not read pass it together and are cut; one that
    reads is not, even for a single 10 MB reply."""

    LIMIT = 3000000

    @classmethod
    def setUpClass(cls):
        cls.p = Proxy(cls, args=["--pending-output-max=%d" % cls.LIMIT])
        with cls.p.conn() as c:
            assert c.call(h.set_cmd(b"big", b"b" * BIG)) == b"STORED\r\n"

    def test_clients_behind_are_cut_past_the_total(self):
        p = self.p
        before = p.stat("memring_client_overflow")
        slow = [slow_socket(p.port) for _ in range(2)]
        for s in slow:
            self.addCleanup(s.close)
            s.sendall((b"get " + b" ".join([b"big"] * 100) + b"\r\n") * 2)
        p.wait_stat("memring_client_overflow", lambda v: v >= before + 2,
                    timeout=5)
        for s in slow:
            got, closed = drain(s, 5)
            self.assertTrue(closed, "a client behind was not closed")
            self.assertLess(got, 2 * 100 * BIG)
        with p.conn(timeout=10) as c:
            got = c.call(b"get " + b" ".join([b"big"] * 100) + b"\r\n",
                         timeout=10)
            self.assertEqual(len(h.parse_values(got)), 100)
            check_set_get(self, c, b"after", b"fine")
        self.assertEqual(p.stat("memring_client_overflow") - before, 2)


# ---------------------------------------------------------------- clients

def expect_refused(test, port):
    """A new connection reads TOO_MANY, then EOF."""
    with h.Conn(port, 3) as c:
        test.assertEqual(c.read_exact(len(TOO_MANY)), TOO_MANY)
        test.assertTrue(c.expect_closed(2), "refused but left open")


def expect_served(test, port):
    with h.Conn(port, 3) as c:
        test.assertEqual(c.call(b"version\r\n")[:8], b"VERSION ")


class TestMaxClients(unittest.TestCase):
    """--max-clients=5, over both pools together."""

    @classmethod
    def setUpClass(cls):
        cls.p = Proxy(cls, args=["--max-clients=5"])

    def setUp(self):
        # the previous test's clients are gone on memring's side too
        for pool in ("alpha", "beta"):
            self.p.wait_stat("client_connections", lambda v: v == 0, pool)

    def open_served(self, n, pool="alpha"):
        out = []
        for _ in range(n):
            c = self.p.conn(pool, 3)
            self.addCleanup(c.close)
            self.assertEqual(c.call(b"version\r\n")[:8], b"VERSION ")
            out.append(c)
        return out

    def test_sixth_refused_until_one_leaves(self):
        p = self.p
        before = p.stat("memring_client_refused")
        before_b = p.stat("memring_client_refused", "beta")
        conns = self.open_served(5)
        expect_refused(self, p.port)
        expect_refused(self, p.port_b)     # the limit is for all pools
        self.assertEqual(p.stat("memring_client_refused") - before, 1)
        self.assertEqual(p.stat("memring_client_refused", "beta") - before_b,
                         1)
        self.assertEqual(p.stat("client_connections"), 5)
        for c in conns[:4]:             # still served
            check_set_get(self, c, b"k", b"v")
        conns[0].close()
        p.wait_stat("client_connections", lambda v: v == 4)
        expect_served(self, p.port)
        # that client's close may reach another worker after the next
        # connect does: wait until memring has seen it
        p.wait_stat("client_connections", lambda v: v == 4)
        conns = conns[1:] + self.open_served(1)
        expect_refused(self, p.port)
        for c in conns:
            c.close()
        p.wait_stat("client_connections", lambda v: v == 0)
        self.open_served(5)             # nothing leaked: 5 fit again

    def test_request_sent_with_the_connect(self):
        # A client writes its request before memring accepts it: the
        # refusal must still arrive (closing a socket with unread input
        # sends a reset, which can destroy the line in flight).
        conns = self.open_served(5)
        got = []
        for _ in range(20):
            s = socket.create_connection((h.HOST, self.p.port), timeout=3)
            try:
                s.sendall(b"get k\r\n")
                c = wrap(s, self.p.port, 3)
                try:
                    got.append(c.read_exact(len(TOO_MANY)))
                except (h.ProtocolError, ConnectionResetError):
                    got.append(c.buf)
            finally:
                s.close()
        lost = sum(1 for g in got if g != TOO_MANY)
        note("refused with a request already sent: %d of %d lost the "
             "ERROR line", lost, len(got))
        self.assertEqual(lost, 0, got[:3])
        for c in conns:
            c.close()


class TestFileLimit(unittest.TestCase):
    """memring started with RLIMIT_NOFILE 64 (soft) and the default
    --max-clients (16384): the descriptors run out first."""

    FDS = 64

    @classmethod
    def setUpClass(cls):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (cls.FDS, hard))
        try:
            cls.p = Proxy(cls)          # inherits the low limit
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    def test_out_of_descriptors_is_refused_or_served(self):
        # memring raises its soft RLIMIT_NOFILE to the hard one (memcached
        # does, for -c): otherwise libuv's EMFILE fallback would accept
        # and close the extra clients with no ERROR line, no counter and
        # no log line. Raising the limit, or refusing, passes.
        socks, seen = [], {}
        self.addCleanup(lambda: [s.close() for s in socks])
        for _ in range(self.FDS + 16):
            s = socket.create_connection((h.HOST, self.p.port), timeout=3)
            socks.append(s)
            s.sendall(b"version\r\n")
            try:
                got = s.recv(64)
            except ConnectionResetError:
                got = b""
            kind = (b"served" if got.startswith(b"VERSION ") else
                    b"refused" if got == TOO_MANY else b"dropped")
            seen[kind] = seen.get(kind, 0) + 1
        note("RLIMIT_NOFILE %d, %d clients: %s", self.FDS, len(socks),
             ", ".join("%d %s" % (n, k.decode())
                       for k, n in sorted(seen.items())))
        self.assertEqual(seen.get(b"dropped", 0), 0, seen)


class TestPoolClientConnections(unittest.TestCase):
    """client_connections: 2 on pool beta; alpha has no cap."""

    @classmethod
    def setUpClass(cls):
        cls.p = Proxy(cls, conns_b=2)

    def test_third_refused_other_pool_accepts(self):
        p = self.p
        before = p.stat("memring_client_refused", "beta")
        b1, b2 = p.conn("beta", 3), p.conn("beta", 3)
        self.addCleanup(b1.close)
        self.addCleanup(b2.close)
        check_set_get(self, b1, b"b1", b"one")
        check_set_get(self, b2, b"b2", b"two")
        expect_refused(self, p.port_b)
        alphas = []
        for _ in range(5):              # alpha goes past beta's 2
            c = p.conn("alpha", 3)
            self.addCleanup(c.close)
            check_set_get(self, c, b"a", b"alpha")
            alphas.append(c)
        expect_refused(self, p.port_b)
        self.assertEqual(p.stat("memring_client_refused", "beta") - before,
                         2)
        self.assertEqual(p.stat("memring_client_refused", "alpha"), 0)
        check_set_get(self, b1, b"b1", b"still")
        b2.close()
        p.wait_stat("client_connections", lambda v: v == 1, pool="beta")
        expect_served(self, p.port_b)


# ---------------------------------------------------------------- idle

class TestIdleTimeout(unittest.TestCase):
    """--client-idle-timeout=1. Pool beta is one memcached that the test
    stops (SIGSTOP) to hold a request; its timeout is long (5 s)."""

    @classmethod
    def setUpClass(cls):
        cls.stall = h.Memcached().start()
        cls.addClassCleanup(cls.stall.stop)
        cls.p = Proxy(cls, args=["--client-idle-timeout=1"],
                      timeout_b=5000, servers_b=[cls.stall])

    def test_idle_closed_active_kept(self):
        p = self.p
        before = p.stat("memring_client_idle_closed")
        idle, partial, active = (p.conn(timeout=5) for _ in range(3))
        for c in (idle, partial, active):
            self.addCleanup(c.close)
            self.assertEqual(c.call(b"version\r\n")[:8], b"VERSION ")
        t0 = time.monotonic()
        partial.send(b"set k 0 0 10\r\nabc")    # half a request, then quiet
        closed = {}
        n, next_call = 0, t0
        while time.monotonic() < t0 + 2.8:
            if time.monotonic() >= next_call:   # every 300 ms
                self.assertEqual(
                    active.call(b"version\r\n")[:8], b"VERSION ",
                    "active client lost after %.2f s"
                    % (time.monotonic() - t0))
                n += 1
                next_call += 0.3
            for name, c in (("idle", idle), ("partial", partial)):
                if name not in closed and c.expect_closed(0.001):
                    closed[name] = time.monotonic() - t0
            time.sleep(0.02)
        note("idle timeout 1 s: idle client closed after %s s, half-sent "
             "request after %s s; active client (%d calls 300 ms apart) "
             "kept", "%.2f" % closed["idle"] if "idle" in closed else "-",
             "%.2f" % closed["partial"] if "partial" in closed else "-", n)
        # closed after 1 s of silence, at the next once-a-second sweep
        for name in ("idle", "partial"):
            self.assertIn(name, closed, "%s client left open" % name)
            self.assertGreaterEqual(closed[name], 0.9, name)
            self.assertLessEqual(closed[name], 3.0, name)
        self.assertEqual(p.stat("memring_client_idle_closed") - before, 2)
        check_set_get(self, active, b"k", b"active")

    def sweep_tick(self):
        """The monotonic time of a sweep: when a silent fresh client is
        closed (the sweeps are then 1 s apart)."""
        with self.p.conn(timeout=4) as c:
            self.assertTrue(c.expect_closed(3), "idle client left open")
            return time.monotonic()

    def test_request_held_at_a_server_is_not_idle(self):
        p = self.p
        before = p.stat("memring_client_idle_closed", "beta")
        waiting = p.conn("beta", timeout=5)
        self.addCleanup(waiting.close)
        self.assertEqual(waiting.call(b"get w\r\n"), b"END\r\n")
        h.freeze(self, self.stall.pid)
        t0 = time.monotonic()
        waiting.send(b"get w\r\n")      # held by the stopped server
        tick = self.sweep_tick()        # >= 1 s later: waiting survived it
        # resume just after the next sweep, which must keep it too
        time.sleep(max(0.0, tick + 1.15 - time.monotonic()))
        self.assertEqual(pending(waiting), b"", "not held by the server")
        os.kill(self.stall.pid, signal.SIGCONT)
        self.assertEqual(waiting.read_reply(timeout=3), b"END\r\n")
        replied = time.monotonic()
        self.assertTrue(waiting.expect_closed(3), "left open once idle")
        after = time.monotonic() - replied
        note("idle timeout 1 s: request held %.2f s at a stopped server: "
             "kept; closed %.2f s after its reply", replied - t0, after)
        self.assertEqual(p.stat("memring_client_idle_closed", "beta")
                         - before, 1)

    def test_idle_clock_starts_at_the_last_reply(self):
        # The idle clock runs from the client's last request or reply,
        # whichever is later: a client whose request took longer than the
        # timeout is not closed at the first sweep after its reply. Here
        # the reply comes 0.15 s after a sweep; the client must still be
        # open 1.35 s after it (it goes at the sweep 1.85 s after).
        p = self.p
        waiting = p.conn("beta", timeout=5)
        self.addCleanup(waiting.close)
        self.assertEqual(waiting.call(b"get w\r\n"), b"END\r\n")
        h.freeze(self, self.stall.pid)
        waiting.send(b"get w\r\n")
        tick = self.sweep_tick()
        time.sleep(max(0.0, tick + 1.15 - time.monotonic()))
        self.assertEqual(pending(waiting), b"", "not held by the server")
        os.kill(self.stall.pid, signal.SIGCONT)
        self.assertEqual(waiting.read_reply(timeout=3), b"END\r\n")
        replied = time.monotonic()
        self.assertTrue(waiting.expect_closed(3))
        self.assertGreater(time.monotonic() - replied, 1.35)


# ---------------------------------------------------------------- slowloris

SLOW_CONNS = 2000
PARTIALS = [b"set k 0 0 10\r\nabc", b"get slowloris-key-with-no-end",
            b"cas k 0 0 100 1\r\n" + b"d" * 50, b"delete k"]


class TestSlowloris(unittest.TestCase):
    """2000 connections each holding half a request."""

    @classmethod
    def setUpClass(cls):
        need = SLOW_CONNS + 200
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < need:
            if hard != resource.RLIM_INFINITY and hard < need:
                raise RuntimeError("RLIMIT_NOFILE hard limit %d < %d"
                                   % (hard, need))
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
        cls.p = Proxy(cls)      # started after: inherits the limit

    def open_all(self):
        socks = []
        for i in range(SLOW_CONNS):
            s = socket.create_connection((h.HOST, self.p.port), timeout=5)
            socks.append(s)
            s.sendall(PARTIALS[i % len(PARTIALS)])
        self.addCleanup(lambda: [s.close() for s in socks])
        return socks

    def settle(self, n):
        """Waits until memring has n clients and has read their bytes."""
        self.p.wait_stat("client_connections", lambda v: v == n,
                         timeout=10)
        time.sleep(0.3)

    def test_half_sent_requests_cost_little(self):
        p = self.p
        probe = p.conn()
        self.addCleanup(probe.close)
        timed_ops(self, probe, 50)              # warm up
        base = p.rss()
        t0 = time.monotonic()
        socks = self.open_all()
        self.settle(SLOW_CONNS + 1)
        opened = time.monotonic() - t0
        one = p.rss()
        lat1 = timed_ops(self, probe, 200)
        # one more byte each: the request is now split across reads
        for i, s in enumerate(socks):
            s.sendall(b"d" if i % len(PARTIALS) == 0 else b"x")
        time.sleep(0.5)
        two = p.rss()
        lat2 = timed_ops(self, probe, 200)
        per1 = (one - base) * 1024 / SLOW_CONNS
        per2 = (two - base) * 1024 / SLOW_CONNS
        note("slowloris: %d connections opened in %.2f s; RSS %d KiB "
             "before, %d KiB with one partial write each (%.0f B/conn), "
             "%d KiB after a second write each (%.0f B/conn)",
             SLOW_CONNS, opened, base, one, per1, two, per2)
        note("slowloris: normal client set/get during: median %.2f ms, "
             "p99 %.2f ms, max %.2f ms; after the second write: median "
             "%.2f ms, p99 %.2f ms, max %.2f ms",
             statistics.median(lat1), lat1[int(len(lat1) * 0.99)], lat1[-1],
             statistics.median(lat2), lat2[int(len(lat2) * 0.99)], lat2[-1])
        self.assertEqual(p.stat("client_connections"), SLOW_CONNS + 1)
        self.assertLess(per1, 16 * 1024)
        self.assertLess(per2, 16 * 1024)
        for lat in (lat1, lat2):
            self.assertLess(statistics.median(lat), 5)
            self.assertLess(lat[int(len(lat) * 0.99)], 50)
            self.assertLess(lat[-1], 1000)
        for s in socks:
            s.close()
        self.settle(1)
        timed_ops(self, probe, 10)
        self.assertTrue(p.mr.alive())


# ---------------------------------------------------------------- get line

class TestGetLine(unittest.TestCase):
    """A multi-get's line has no length limit (memcached has none); its
    keys are bounded by --get-keys-max (here 1000)."""

    KEYS_MAX = 1000

    @classmethod
    def setUpClass(cls):
        cls.p = Proxy(cls, args=["--get-keys-max=%d" % cls.KEYS_MAX])

    def test_most_keys_pass(self):
        # 1000 keys of 200 bytes: a 200 KB line, three times the old bound
        keys = [b"%04d" % i + b"x" * 196 for i in range(self.KEYS_MAX)]
        line = b"get " + b" ".join(keys) + b"\r\n"
        with self.p.conn(timeout=10) as c:
            c.send(h.set_cmd(keys[0], b"first") + h.set_cmd(keys[-1], b"last"))
            self.assertEqual(c.read_replies(2), [b"STORED\r\n"] * 2)
            for i in range(0, len(line), 7000):
                c.send(line[i:i + 7000])
            got = c.read_until(b"END\r\n", timeout=10)
        note("a %d-byte get line carries %d keys", len(line), len(keys))
        self.assertEqual(h.parse_values(got),
                         [(keys[0], 0, b"first"), (keys[-1], 0, b"last")])

    def test_one_key_more_is_refused(self):
        line = (b"get " + b" ".join(b"k%d" % i
                                    for i in range(self.KEYS_MAX + 1)) +
                b"\r\n")
        before = self.p.stat("memring_request_errors")
        with self.p.conn() as c:
            c.send(line)
            self.assertEqual(c.read_line(),
                             b"CLIENT_ERROR line too long\r\n")
            self.assertTrue(c.expect_closed(2))
        self.assertEqual(self.p.stat("memring_request_errors") - before, 1)
        expect_served(self, self.p.port)


if __name__ == "__main__":
    sys.exit(h.run_tests(globals()))
