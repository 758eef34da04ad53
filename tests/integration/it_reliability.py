"""Reliability: what memring must do where memcached 1.6.18 shows the way.

1. Half-close: a client that pipelines requests and then shuts its
   writing side (or ends with `quit`) gets every reply, in order, then EOF;
   also with one server stopped (SIGSTOP): its requests time out, in place.
2. Keys memcached accepts (tabs, control bytes, DEL, bytes >= 0x80, up to
   250 bytes) are stored and served, each on the server the ring names.
3. memcaslap (keys that start with byte 0x10), mixed and multi-get runs.
4. Long multi-get lines (7,500, 10,000 and 100,000 keys), sent in pieces;
   --get-keys-max bounds the keys of one get.
5. Clients that pipeline gets of a 100 kB value and never read: memring's
   memory stays bounded, other clients are served, memory comes back.
6. Long request lines of every command: memring's bytes and closes equal
   memcached's, whatever the length (memcached answers a complete line of
   up to 16 KiB read at once, and closes a longer non-get line).
7. /healthz tells the truth with no traffic: a dead server shows, a
   restarted one comes back (background probes).
8. A binary request gets one binary "unknown command" reply, at once, and
   the connection stays usable; a meta `ms` stores its data block
   dropped.

Most cases send the same bytes to memring and to a plain memcached (the
reference) and compare. Everything listens on 127.0.0.1 free ports; every
socket has a timeout and every loop a bound in count and time. Numbers
measured (RSS) are printed to stderr.
"""

import bisect
import hashlib
import math
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import unittest

import harness as h

# Sent after an input whose reply is checked (see TestLongLines): its last
# reply ends with GOT_SENTINEL, which no input here can produce.
SENTINEL = b"set __rel 0 0 2\r\nok\r\nget __rel\r\n"
GOT_SENTINEL = b"VALUE __rel 0 2\r\nok\r\nEND\r\n"
TIMED_OUT = b"SERVER_ERROR connection timed out\r\n"
LINE_TOO_LONG = b"CLIENT_ERROR line too long\r\n"
BAD_FORMAT = b"CLIENT_ERROR bad command line format\r\n"
MEMCASLAP = "/usr/bin/memcaslap"
MIB = 1024 * 1024

CL = None       # memring in front of 3 memcached (md5 ketama)
REF = None      # a plain memcached, the reference


def setUpModule():
    global CL, REF
    CL, REF = h.start_shared(nservers=3)


def note(fmt, *args):
    sys.stderr.write("reliability: " + (fmt % args) + "\n")
    sys.stderr.flush()


# ---------------------------------------------------------------- helpers

def values_of(reply):
    """[(key, value)] of a get/gets reply; ProtocolError (an
    AssertionError) when it does not end in END."""
    return [(k, v) for k, _, v in h.parse_values(reply)]


def half_close(port, data, timeout=10.0, shut=True):
    """Connect, send data, shut our writing side (unless shut is False: the
    data then ends with quit), read until the server closes."""
    with socket.create_connection((h.HOST, port), timeout=timeout) as s:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        return h.read_to_eof(s, timeout)


class Ring:
    """twemproxy's ketama with the md5 hash, equal weights, servers named
    host:port: the server a key belongs to, computed here and checked
    against where memring put printable keys (test_ring_model)."""

    def __init__(self, servers):
        self.servers = list(servers)
        n = len(self.servers)
        per = int(math.floor(1.0 / n * 160 / 4 * n + 1e-10)) * 4
        points = []
        for i, s in enumerate(self.servers):
            for p in range(per // 4):
                d = hashlib.md5(("%s-%d" % (s.addr, p)).encode()).digest()
                for x in range(4):
                    points.append((struct.unpack_from("<I", d, 4 * x)[0], i))
        points.sort()
        self.points = points

    def owner(self, key):
        hv = struct.unpack_from("<I", hashlib.md5(key).digest())[0]
        i = bisect.bisect_left(self.points, (hv, -1))
        return self.servers[self.points[i % len(self.points)][1]]


def holders(servers, keys):
    """{key: [servers holding it]}, asked one key per get (any key
    bytes)."""
    out = {k: [] for k in keys}
    for s in servers:
        with s.conn() as c:
            c.send(b"".join(b"get %s\r\n" % k for k in keys))
            for k, reply in zip(keys, c.read_replies(len(keys), timeout=10)):
                if values_of(reply):
                    out[k].append(s)
    return out


def keys_by_owner(cluster, prefix, per_server, ring=None):
    """per_server printable keys for each server of cluster, by the ring
    model: {Memcached: [keys]}."""
    ring = ring or Ring(cluster.servers)
    out = {s: [] for s in cluster.servers}
    for i in range(100000):
        k = b"%s%d" % (prefix, i)
        s = ring.owner(k)
        if len(out[s]) < per_server:
            out[s].append(k)
        if all(len(v) == per_server for v in out.values()):
            return out
    raise AssertionError("ring left a server without keys")


# ------------------------------------------------------------ 1. half-close

class TestHalfClose(unittest.TestCase):
    """Requests pipelined, then shutdown(SHUT_WR) or `quit`: every reply,
    in order, then EOF; as memcached does."""

    def both_endings(self, data, want, port=None, timeout=10.0):
        """data ended by a half-close, then by quit (and a request after
        it that must not be answered): want, then EOF, from memring; the
        reference gives want too (when port is None)."""
        port = port or CL.port
        for ending in ("shutdown", "quit"):
            with self.subTest(ending=ending):
                if ending == "shutdown":
                    sent, shut = data, True
                else:
                    sent, shut = data + b"quit\r\nget __after_quit\r\n", False
                if port == CL.port:
                    ref, how = half_close(REF.port, sent, timeout, shut)
                    self.assertEqual((ref, how), (want, "eof"),
                                     "the reference disagrees")
                got, how = half_close(port, sent, timeout, shut)
                self.assertEqual(len(got), len(want),
                                 "%d of %d reply bytes, then %s"
                                 % (len(got), len(want), how))
                self.assertEqual(got, want)
                self.assertEqual(how, "eof")

    def test_pipelined_sets(self):
        data = b"".join(h.set_cmd(b"hc:set:%d" % i, b"v%d" % i)
                        for i in range(2000))
        self.both_endings(data, b"STORED\r\n" * 2000)

    def test_single_key_gets(self):
        keys = [b"hc:get:%d" % i for i in range(300)]
        for port in (CL.port, REF.port):
            with h.Conn(port) as c:
                c.send(b"".join(h.set_cmd(k, k[::-1]) for k in keys[::2]))
                self.assertEqual(c.read_replies(150), [b"STORED\r\n"] * 150)
        data = b"".join(b"get %s\r\n" % k for k in keys)
        want = b"".join((h.value_block(k, k[::-1]) if i % 2 == 0 else b"") +
                        b"END\r\n" for i, k in enumerate(keys))
        self.both_endings(data, want)

    def test_multiget_across_servers(self):
        owned = keys_by_owner(CL, b"hc:multi:", 20)
        keys = [k for i in range(20) for s in CL.servers
                for k in owned[s][i:i + 1]]
        random.Random(7).shuffle(keys)
        for port in (CL.port, REF.port):
            with h.Conn(port) as c:
                c.send(b"".join(h.set_cmd(k, b"m" + k) for k in keys))
                self.assertEqual(c.read_replies(len(keys)),
                                 [b"STORED\r\n"] * len(keys))
        for s in CL.servers:      # the keys really span every server
            self.assertEqual(len(s.raw_get_many(owned[s])), 20)
        line = b"get " + b" ".join(keys) + b"\r\n"
        want = b"".join(h.value_block(k, b"m" + k) for k in keys) + b"END\r\n"
        self.both_endings(line * 3, want * 3)

    def test_noreply_mixed_in(self):
        data = (h.set_cmd(b"hc:nr:a", b"one", noreply=True) +
                b"get hc:nr:a\r\n" +
                h.set_cmd(b"hc:nr:b", b"two", noreply=True) +
                h.set_cmd(b"hc:nr:c", b"three") +
                b"delete hc:nr:a noreply\r\n" +
                b"get hc:nr:a hc:nr:b hc:nr:c\r\n" +
                h.set_cmd(b"hc:nr:d", b"four", noreply=True))
        want = (h.value_block(b"hc:nr:a", b"one") + b"END\r\n" +
                b"STORED\r\n" +
                h.value_block(b"hc:nr:b", b"two") +
                h.value_block(b"hc:nr:c", b"three") + b"END\r\n")
        self.both_endings(data, want)
        self.assertEqual(REF.raw_get(b"hc:nr:d"), b"four")
        with CL.conn() as c:
            self.assertEqual(c.call(b"get hc:nr:d\r\n"),
                             h.value_block(b"hc:nr:d", b"four") + b"END\r\n")

    def test_stalled_server(self):
        """One server SIGSTOPped, pool timeout 500 ms: its requests get
        SERVER_ERROR connection timed out, in place; the others their
        replies; then EOF (after the timeouts, not before)."""
        cl = h.Cluster(self, nservers=2, hash="md5", timeout=500)
        owned = keys_by_owner(cl, b"hc:stall:", 4)
        victim, live = cl.servers
        vk, lk = owned[victim], owned[live]
        with cl.conn() as c:
            c.send(b"".join(h.set_cmd(k, b"x" + k) for k in vk + lk))
            self.assertEqual(c.read_replies(8), [b"STORED\r\n"] * 8)
        self.assertEqual(victim.raw_get(vk[0]), b"x" + vk[0])
        h.freeze(self, victim.pid)
        data = (b"get %s\r\n" % lk[0] + b"get %s\r\n" % vk[0] +
                h.set_cmd(lk[1], b"new") + h.set_cmd(vk[1], b"new") +
                b"get %s\r\n" % lk[1] + b"delete %s\r\n" % vk[2] +
                b"get %s\r\n" % lk[2])
        want = (h.value_block(lk[0], b"x" + lk[0]) + b"END\r\n" + TIMED_OUT +
                b"STORED\r\n" + TIMED_OUT +
                h.value_block(lk[1], b"new") + b"END\r\n" + TIMED_OUT +
                h.value_block(lk[2], b"x" + lk[2]) + b"END\r\n")
        self.both_endings(data, want, port=cl.port)
        self.assertTrue(cl.proxy.alive())

    def test_shell_pipe(self):
        """printf '...' | nc: the way people try a cache by hand. nc -N
        shuts the socket's writing side at the end of its input; without
        nc, the same with a raw socket."""
        data = b"set hc:nc 0 0 2\r\nhi\r\nget hc:nc\r\n"
        want = b"STORED\r\n" + h.value_block(b"hc:nc", b"hi") + b"END\r\n"
        nc = shutil.which("nc")
        if nc is not None:      # OpenBSD's nc has -N; the traditional not
            usage = subprocess.run([nc, "-h"], capture_output=True,
                                   stdin=subprocess.DEVNULL, timeout=5)
            if b"-N" not in usage.stdout + usage.stderr:
                nc = None
        if nc is None:
            note("no OpenBSD nc here: a raw socket plays the shell pipe")
            self.assertEqual(half_close(CL.port, data), (want, "eof"))
            return
        for flags in (["-N"], ["-N", "-q1"]):
            with self.subTest(flags=flags):
                proc = subprocess.run(
                    [nc] + flags + [h.HOST, str(CL.port)], input=data,
                    capture_output=True, timeout=15)
                self.assertEqual(proc.stdout, want, proc.stderr)


# ---------------------------------------------------------------- 2. keys

def odd_keys():
    """Keys memcached stores: one per control byte (not \\n; \\r only
    inside), DEL and every byte >= 0x80, tabs, a memcaslap-like key, and
    250-byte keys of mixed bytes."""
    odd = list(range(0x01, 0x20)) + [0x7f] + list(range(0x80, 0x100))
    keys = [b"ok" + bytes([b]) + b"z" for b in odd if b != 0x0a]
    keys += [b"\tlead", b"trail\t", b"a\tb\tc", b"\x10memcaslap-like",
             b"\xc3\xa9t\xc3\xa9", b"\x1b[0m"]
    pool = bytes(b for b in range(1, 256) if b not in b" \n\r")
    keys.append(pool[:250])
    keys.append(pool[-250:])
    keys.append(b"\x01" * 250)
    keys.append(b"\xff" * 249 + b"z")
    return keys


class TestOddKeys(unittest.TestCase):
    """Every key memcached accepts works through memring, on the server
    the ring names; a 251-byte key is refused as memcached refuses it."""

    def test_ring_model(self):
        # The ring model of this file against memring with plain keys, so
        # that test_keys_memcached_accepts checks placement, not the model.
        keys = [b"ring:%d" % i for i in range(60)]
        with CL.conn() as c:
            c.send(b"".join(h.set_cmd(k, b"r") for k in keys))
            self.assertEqual(c.read_replies(len(keys)),
                             [b"STORED\r\n"] * len(keys))
        ring = Ring(CL.servers)
        held = holders(CL.servers, keys)
        self.assertEqual({k: [s.port for s in v] for k, v in held.items()},
                         {k: [ring.owner(k).port] for k in keys})

    def script(self, key, i):
        """Requests on one key and their count."""
        v = b"val%d" % i
        reqs = [h.set_cmd(key, v), b"get %s\r\n" % key, b"gets %s\r\n" % key,
                b"touch %s 1000\r\n" % key, b"gat 1000 %s\r\n" % key,
                b"delete %s\r\n" % key, b"get %s\r\n" % key,
                h.set_cmd(key, b"10"), b"incr %s 5\r\n" % key,
                b"decr %s 3\r\n" % key, b"append %s 0 0 1\r\n7\r\n" % key,
                b"get %s\r\n" % key, h.set_cmd(key, v)]
        return b"".join(reqs), len(reqs)

    def test_keys_memcached_accepts(self):
        keys = odd_keys()
        data, counts = b"", 0
        for i, k in enumerate(keys):
            d, n = self.script(k, i)
            data += d
            counts += n
        got = {}
        for name, port in (("memring", CL.port), ("memcached", REF.port)):
            with h.Conn(port, 10) as c:
                c.send(data)
                got[name] = [h.strip_cas(r) for r in
                             c.read_replies(counts, timeout=20)]
        mismatched = [(i, got["memcached"][i], got["memring"][i])
                      for i in range(counts)
                      if got["memring"][i] != got["memcached"][i]]
        self.assertEqual(mismatched[:5], [], "%d of %d replies differ"
                         % (len(mismatched), counts))
        # After the script each key holds val<i>: on exactly one server,
        # the one the ring names.
        ring = Ring(CL.servers)
        held = holders(CL.servers, keys)
        wrong = [(k, [s.port for s in held[k]], ring.owner(k).port)
                 for k in keys if held[k] != [ring.owner(k)]]
        self.assertEqual(wrong[:5], [], "%d of %d keys misplaced"
                         % (len(wrong), len(keys)))
        # A multi-get of all of them (they span every server), in order.
        line = b"get " + b" ".join(keys) + b"\r\n"
        want = b"".join(h.value_block(k, b"val%d" % i)
                        for i, k in enumerate(keys)) + b"END\r\n"
        for port in (REF.port, CL.port):
            with h.Conn(port) as c:
                c.send(line + b"gets " + b" ".join(keys[:40]) + b"\r\n")
                self.assertEqual(c.read_reply(), want)
                self.assertEqual([k for k, _ in values_of(c.read_reply())],
                                 keys[:40])

    def test_key_of_251_bytes(self):
        for key in (b"k" * 251, b"\x01" * 251, b"\xff\t" * 125 + b"z"):
            for req in (h.set_cmd(key, b"x"), b"get %s\r\n" % key,
                        b"get a %s b\r\n" % key, b"gets %s\r\n" % key,
                        b"delete %s\r\n" % key, b"incr %s 1\r\n" % key,
                        b"touch %s 1\r\n" % key):
                with self.subTest(req=req[:12] + b"..." + req[-12:]):
                    with h.Conn(REF.port) as c:
                        want = c.call(req + SENTINEL, until=GOT_SENTINEL)
                    self.assertTrue(want.startswith(BAD_FORMAT), want)
                    with CL.conn() as c:
                        got = c.call(req + SENTINEL, until=GOT_SENTINEL)
                    self.assertEqual(got, want)


# ---------------------------------------------------------------- 3. memcaslap

class TestMemcaslap(unittest.TestCase):
    """memcaslap's keys start with byte 0x10; its runs must go through."""

    def run_memcaslap(self, *args):
        before = h.proxy_stats(CL.port)
        proc = subprocess.run(
            [MEMCASLAP, "-s", "%s:%d" % (h.HOST, CL.port), "-T", "1",
             "-c", "4"] + list(args),
            stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        out = proc.stdout.decode("latin-1")
        self.assertEqual(proc.returncode, 0, out[-2000:])
        report = {m.group(1): int(m.group(2)) for m in
                  re.finditer(r"^(cmd_get|cmd_set|get_misses): (\d+)$",
                              out, re.M)}
        errors = [line for line in out.splitlines()
                  if "ERROR" in line]
        d = h.stats_delta(before, h.proxy_stats(CL.port))
        note("memcaslap %s: its report %s; memring: cmd_get %d cmd_set %d "
             "get_hits %d get_misses %d request_errors %d forward_error %d",
             " ".join(args), report, d["cmd_get"], d["cmd_set"],
             d["get_hits"], d["get_misses"], d["request_errors"],
             d["forward_error"])
        self.assertEqual(errors[:3], [])
        self.assertEqual(d["request_errors"], 0)
        self.assertEqual(d["forward_error"], 0)
        self.assertGreater(report["cmd_set"], 0)
        self.assertGreater(report["cmd_get"], 0)
        self.assertGreaterEqual(d["cmd_set"], report["cmd_set"])
        self.assertGreater(d["cmd_get"], 0)
        self.assertGreater(d["get_hits"], 0)
        # memcaslap gets only keys it has set: against one memcached its
        # misses are 0; allow a few through three servers.
        self.assertLessEqual(report["get_misses"], report["cmd_get"] // 100)
        return report, d

    def test_mixed_get_set(self):
        self.run_memcaslap("-x", "20000")

    def test_multi_get(self):
        self.run_memcaslap("-x", "10000", "-d", "20")


# ---------------------------------------------------------------- 4. long get

def send_in_pieces(conn, data, rng, pieces=6):
    """data in `pieces` sends cut at random points, a moment apart (so
    that they arrive as separate reads)."""
    cuts = sorted(rng.sample(range(1, len(data)), pieces - 1))
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for a, b in zip([0] + cuts, cuts + [len(data)]):
        conn.send(data[a:b])
        time.sleep(0.005)


class TestLongGetLines(unittest.TestCase):
    """get lines far over 64 KiB (default --get-keys-max: 100000 keys)."""

    def check(self, nkeys, every=1, cmd=b"get"):
        keys = [b"lg:%06d" % i for i in range(nkeys)]
        stored = keys[::every]
        for port in (CL.port, REF.port):
            with h.Conn(port, 20) as c:
                c.send(b"".join(h.set_cmd(k, b"v" + k[3:]) for k in stored))
                self.assertEqual(c.read_replies(len(stored), timeout=30),
                                 [b"STORED\r\n"] * len(stored))
        line = cmd + b" " + b" ".join(keys) + b"\r\n"
        got = {}
        for name, port in (("memcached", REF.port), ("memring", CL.port)):
            with h.Conn(port, 20) as c:
                send_in_pieces(c, line, random.Random(nkeys))
                got[name] = c.read_until(b"END\r\n", timeout=30)
                c.send(b"get %s\r\n" % keys[0])     # still in step
                self.assertEqual(c.read_reply(),
                                 h.value_block(keys[0], b"v" + keys[0][3:]) +
                                 b"END\r\n")
        if cmd == b"gets":
            got = {k: h.strip_cas(v) for k, v in got.items()}
        note("a %d-byte %s line of %d keys: %d values", len(line),
             cmd.decode(), nkeys, len(stored))
        self.assertEqual(len(got["memring"]), len(got["memcached"]))
        self.assertEqual(got["memring"], got["memcached"])
        self.assertEqual([k for k, _ in values_of(got["memring"])], stored)
        for s in CL.servers:        # the keys span every server
            self.assertTrue(s.raw_get_many(stored[:100]))

    def test_7500_keys(self):
        self.check(7500)

    def test_10000_keys(self):
        self.check(10000, every=2, cmd=b"gets")

    def test_100000_keys(self):
        self.check(100000, every=10)


class TestGetKeysMax(unittest.TestCase):
    """--get-keys-max=1000: one key more is CLIENT_ERROR line too long and
    a close; exactly the limit is served."""

    @classmethod
    def setUpClass(cls):
        cls.cl = h.Cluster(cls, nservers=2, hash="md5",
                           args=["--get-keys-max=1000"])

    def test_limit_and_one_more(self):
        keys = [b"gk:%d" % i for i in range(1001)]
        with self.cl.conn() as c:
            c.send(b"".join(h.set_cmd(k, k) for k in keys[::50]))
            self.assertEqual(c.read_replies(len(keys[::50])),
                             [b"STORED\r\n"] * len(keys[::50]))
        for cmd in (b"get", b"gets", b"gat 100", b"gats 100"):
            with self.subTest(cmd=cmd):
                with self.cl.conn() as c:
                    got = c.call(cmd + b" " + b" ".join(keys[:1000]) +
                                 b"\r\n", until=b"END\r\n")
                    self.assertEqual([k for k, _ in values_of(got)],
                                     keys[:1000:50])
                with self.cl.conn() as c:
                    c.send(cmd + b" " + b" ".join(keys) + b"\r\n")
                    self.assertEqual(c.read_line(), LINE_TOO_LONG)
                    self.assertTrue(c.expect_closed(3))


# ------------------------------------------------------------ 5. slow readers

BIG = 100 * 1000            # bytes of the value slow readers ask for
SLOW_GETS = 2000            # gets one slow reader pipelines (200 MB asked)
MANY_SLOW = 20
MANY_SLOW_GETS = 300        # each of the 20 (30 MB asked each)
PER_READER = 16 * MIB       # the most one slow reader may cost
MANY_SLOW_BOUND = 8 * MIB   # per reader, when twenty sit at once
SETTLE = 2.5                # s to watch memory while they sit
# KiB over the baseline that may stay once a slow reader has gone: the
# allocator keeps what fragmentation pins (typically 0.5-2 MiB here, 6.3
# MiB seen once in a full run; memring at e718ec4 kept 54 MiB)
RETURN_SLACK = 8 * 1024


def slow_reader(port, gets):
    """A client that pipelines `gets` gets of the big value and never
    reads; a small receive buffer, so that the kernel holds little of what
    memring sends it."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.settimeout(5)
    s.connect((h.HOST, port))
    s.sendall(b"get big\r\n" * gets)
    return s


class TestMemoryGivenBack(unittest.TestCase):
    """After a burst of large replies is freed, each worker's next tick
    hands the heap's free pages back (malloc_trim, which walks every free
    chunk: a damaged heap shows there); memring keeps serving. (On a
    sanitizer build the trim stands aside: an ASan run of this suite died
    inside glibc's trim, whose heap the sanitizer's malloc leaves unset;
    that death did not come back on demand, so this test cannot show it.)"""

    def test_burst_of_large_replies(self):
        cl = h.Cluster(self, nservers=2, hash="md5")
        value = b"x" * (512 * 1024)
        keys = [b"burst:%d" % i for i in range(6)]
        with h.Conn(cl.port, 20) as c:
            for k in keys:
                self.assertEqual(c.call(h.set_cmd(k, value)), b"STORED\r\n")
        # several connections (so that every worker sees some), each a
        # pipeline of multi-gets, read whole, then closed
        for _ in range(8):
            with h.Conn(cl.port, 20) as c:
                c.send((b"get " + b" ".join(keys) + b"\r\n") * 2)
                for _ in range(2):
                    got = c.read_until(b"END\r\n", timeout=20)
                    self.assertEqual(len(values_of(got)), len(keys))
        time.sleep(2.5)         # two ticks of every worker
        self.assertTrue(cl.proxy.alive(), "memring died after the burst")
        with h.Conn(cl.port) as c:
            self.assertEqual(c.call(b"get " + keys[0] + b"\r\n"),
                             h.value_block(keys[0], value) + b"END\r\n")


class TestSlowReaders(unittest.TestCase):
    """One server (so that the slow readers and the others share its
    connection), a 100 kB value, clients that ask for it and never read."""

    def setUp(self):
        self.cl = h.Cluster(self, nservers=1, hash="md5")
        self.value = bytes(range(256)) * (BIG // 256) + b"t" * (BIG % 256)
        with self.cl.conn() as c:
            self.assertEqual(c.call(h.set_cmd(b"big", self.value)),
                             b"STORED\r\n")
            for _ in range(3):          # warm memring's buffers
                self.assertEqual(c.call(b"get big\r\n"),
                                 h.value_reply(b"big", self.value))
        time.sleep(0.3)
        self.pid = self.cl.proxy.pid
        self.base = h.proc_kib(self.pid)

    def watch(self, seconds):
        """Peak RSS (KiB) over `seconds`, while a normal client does
        set/get on its own connection: every reply right, none late."""
        peak = h.proc_kib(self.pid)
        ops = 0
        deadline = time.monotonic() + seconds
        with self.cl.conn(timeout=3) as c:
            while time.monotonic() < deadline and ops < 10000:
                v = b"n%d" % ops
                self.assertEqual(c.call(h.set_cmd(b"normal", v)),
                                 b"STORED\r\n")
                self.assertEqual(c.call(b"get normal\r\n"),
                                 h.value_block(b"normal", v) + b"END\r\n")
                ops += 1
                peak = max(peak, h.proc_kib(self.pid))
                time.sleep(0.02)
        self.assertGreater(ops, 5)
        return peak

    def back_to_base(self, slack_kib):
        """RSS (KiB) once it is within slack of the baseline, polled for
        at most 5 s; the last sample otherwise."""
        deadline = time.monotonic() + 5
        while True:
            now = h.proc_kib(self.pid)
            if now <= self.base + slack_kib or time.monotonic() > deadline:
                return now
            time.sleep(0.1)

    def check(self, nclients, gets, bound_kib, must_return=True):
        socks = []
        try:
            for _ in range(nclients):
                socks.append(slow_reader(self.cl.port, gets))
            peak = self.watch(SETTLE)
            self.assertTrue(self.cl.proxy.alive())
        finally:
            for s in socks:
                s.close()
        after = self.back_to_base(RETURN_SLACK) if must_return else \
            h.proc_kib(self.pid)
        note("%d slow reader(s), %d gets of %d bytes each: RSS base %.1f MiB,"
             " peak %.1f MiB (+%.1f MiB, %.1f MiB per reader), %.1f MiB "
             "after they closed", nclients, gets, BIG, self.base / 1024,
             peak / 1024, (peak - self.base) / 1024,
             (peak - self.base) / 1024 / nclients, after / 1024)
        self.assertLess(peak - self.base, bound_kib,
                        "RSS grew by %d KiB" % (peak - self.base))
        if must_return:
            self.assertLessEqual(after - self.base, RETURN_SLACK,
                                 "RSS %d KiB over base after the close"
                                 % (after - self.base))
        with self.cl.conn() as c:
            self.assertEqual(c.call(b"get big\r\n"),
                             h.value_block(b"big", self.value) + b"END\r\n")

    def test_one_slow_reader(self):
        self.check(1, SLOW_GETS, PER_READER // 1024)

    def test_twenty_slow_readers(self):
        # Bound: 8 MiB per reader, half the single reader's. Measured on
        # this 2-core box: 26 MiB per reader when memring buffers every
        # reply (522 MiB for the 20), 0.5 to 2.7 MiB per reader with
        # output backpressure (two builds). What the allocator keeps after
        # they close is printed, not checked: twenty at once can leave
        # freed memory in the workers' malloc arenas (57 MiB seen once),
        # which is no leak; the single reader's test checks the return.
        self.check(MANY_SLOW, MANY_SLOW_GETS,
                   MANY_SLOW * MANY_SLOW_BOUND // 1024, must_return=False)


# ------------------------------------------------------------ 6. long lines

WORDS = {
    # word: (text between the word and the padding, text after it, data)
    b"set": (b"", b" 0 0 1", b"x\r\n"),
    b"add": (b"", b" 0 0 1", b"x\r\n"),
    b"replace": (b"", b" 0 0 1", b"x\r\n"),
    b"append": (b"", b" 0 0 1", b"x\r\n"),
    b"prepend": (b"", b" 0 0 1", b"x\r\n"),
    b"cas": (b"", b" 0 0 1 1", b"x\r\n"),
    b"delete": (b"", b"", b""),
    b"incr": (b"", b" 1", b""),
    b"decr": (b"", b" 1", b""),
    b"touch": (b"", b" 100", b""),
    b"verbosity": (b"", b"", b""),
    b"flush_all": (b"", b"", b""),
    b"version": (b"", b"", b""),
    b"bogus": (b"", b"", b""),
    b"get": (b"", b"", b""),
    b"gets": (b"", b"", b""),
    b"gat": (b"100 ", b"", b""),
    b"gats": (b"100 ", b"", b""),
}
GET_WORDS = (b"get", b"gets", b"gat", b"gats")
SHORT_MAX = 300             # every line length up to this
LONG_LENGTHS = sorted({
    400, 512, 1000, 1500, 2000, 2046, 2047, 2048, 2049, 2050, 2051, 2100,
    3000, 4094, 4095, 4096, 4097, 4098, 6000, 8190, 8191, 8192, 8193,
    8194, 10000, 12345, 16000, 16380, 16381, 16382, 16383, 16384, 16385,
    16386, 16387, 17000, 20000, 32768})
GET_LONG_LENGTHS = [40000, 65535, 65536, 65537, 70000]
MAX_STUCK = 3               # sentinel replies missing before giving up
_VERSION = re.compile(rb"VERSION [^\r\n]*\r\n")


def long_line(word, length, variant):
    """A request line of `length` bytes, \\r\\n included, for word:
    "key" pads it with one long key (k...), "tok" with many short tokens
    (a b a b ...); too short for either, a prefix of the shortest form.
    Storage commands' data block follows."""
    mid, tail, data = WORDS[word]
    head = word + b" " + mid
    room = length - 2 - len(head) - len(tail)
    if room < 1:
        body = (head + b"k" + tail)[:max(0, length - 2)]
    elif variant == b"key":
        body = head + b"k" * room + tail
    else:
        body = head + (b"a " * room)[:room - 1] + b"b" + tail
    return body + b"\r\n" + data


def normalize(reply):
    """memring answers version itself; the version string is its own."""
    return _VERSION.sub(b"VERSION x\r\n", reply)


class Exchanger:
    """One line + SENTINEL at a time on a connection to port, reopened
    after a close: (the bytes up to and including GOT_SENTINEL, or all
    until the close; closed), closed being False, True, or why the
    connection was given up (no sentinel reply in time)."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def __call__(self, data, timeout=5.0):
        if self.conn is None:
            self.conn = h.Conn(self.port, timeout)
        c = self.conn
        try:
            c.send(data + SENTINEL)
        except (BrokenPipeError, ConnectionResetError):
            pass
        closed = True
        try:
            return normalize(c.read_until(GOT_SENTINEL, timeout)), False
        except h.ProtocolError as e:
            if "closed" not in str(e):      # no sentinel reply in time
                closed = "no reply in %.0f s" % timeout
        except ConnectionResetError:
            pass
        out = normalize(c.buf)
        self.close()
        return out, closed

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None


class TestLongLines(unittest.TestCase):
    """Request lines of every command at many lengths, each followed by a
    sentinel, to memring and to memcached: the same bytes before the
    sentinel's reply, and a close on one side only where the other closes
    too."""

    @classmethod
    def setUpClass(cls):
        # The lines touch keys k, kk..., a, b: start both sides equal.
        for s in CL.servers + [REF]:
            s.flush()

    def test_every_length_up_to_300(self):
        # Lines this short are pipelined, one batch per word: memcached
        # answers them the same however its reads fall.
        t0 = time.monotonic()
        for word in WORDS:
            cases = [(n, v) for n in range(1, SHORT_MAX + 1)
                     for v in (b"key", b"tok")]
            data = b"".join(long_line(word, n, v) + SENTINEL
                            for n, v in cases)
            got = {}
            for name, port in (("memcached", REF.port), ("memring",
                                                         CL.port)):
                with h.Conn(port, 10) as c:
                    c.send(data)
                    parts = []
                    try:
                        for _ in cases:
                            parts.append(normalize(
                                c.read_until(GOT_SENTINEL, 10)))
                    except (h.ProtocolError, ConnectionResetError) as e:
                        parts.append(b"<%s> %r" % (
                            type(e).__name__.encode(), c.buf[:100]))
                    got[name] = parts
            with self.subTest(word=word):
                diff = [(cases[i], got["memcached"][i][:120],
                         got["memring"][i][:120])
                        for i in range(len(got["memring"]))
                        if got["memring"][i] != got["memcached"][i]]
                self.assertEqual(len(got["memcached"]), len(cases))
                self.assertEqual(diff[:3], [], "%d of %d lines differ"
                                 % (len(diff), len(cases)))
                self.assertEqual(len(got["memring"]), len(cases))
        note("every length up to %d, %d words: %.1f s", SHORT_MAX,
             len(WORDS), time.monotonic() - t0)

    def compare(self, words, lengths):
        ref, mr = Exchanger(REF.port), Exchanger(CL.port)
        self.addCleanup(ref.close)
        self.addCleanup(mr.close)
        diffs, n, stuck = [], 0, 0
        cases = [(w, n, v) for w in words for n in lengths
                 for v in (b"key", b"tok")]
        for word, length, v in cases:
            if stuck >= MAX_STUCK:      # each costs a timeout: stop here
                break
            line = long_line(word, length, v)
            want = ref(line)
            got = mr(line, timeout=3.0)
            n += 1
            if got != want:
                stuck += isinstance(got[1], str)
                diffs.append((word, length, v, want[0][:80], want[1],
                              got[0][:80], got[1]))
        self.assertEqual(diffs[:4], [], "%d of %d lines differ (%d not "
                         "tried)" % (len(diffs), n, len(cases) - n))

    def test_long_lines(self):
        t0 = time.monotonic()
        self.compare([w for w in WORDS if w not in GET_WORDS], LONG_LENGTHS)
        self.compare([b"get", b"gets"], LONG_LENGTHS + GET_LONG_LENGTHS)
        self.compare([b"gat", b"gats"],
                     [n for n in LONG_LENGTHS if n <= 16384])
        note("long lines: %.1f s", time.monotonic() - t0)

    def test_long_gat_lines(self):
        # memcached 1.6.18 takes only "get " and "gets " for a multi-get
        # that may outgrow its 16 KiB read buffer: a longer gat or gats
        # line is closed without a word, like any other long line.
        self.compare([b"gat", b"gats"],
                     [n for n in LONG_LENGTHS + GET_LONG_LENGTHS
                      if n > 16384])


# ---------------------------------------------------------------- 7. healthz

HEALTH_WITHIN = 5.0     # s; the target is ~3 s (probes every 1 s)


def poll_health(port, want_ok, within=HEALTH_WITHIN):
    """(status, body, seconds) once /healthz is 200 (want_ok) or not;
    the last answer when `within` runs out."""
    t0 = time.monotonic()
    while True:
        try:
            status, body = h.http_request(port, "/healthz", timeout=3.0)
        except OSError as e:
            status, body = None, repr(e).encode()
        took = time.monotonic() - t0
        if status is not None and (status == 200) == want_ok:
            return status, body, took
        if took > within:
            return status, body, took
        time.sleep(0.1)


class TestHealthz(unittest.TestCase):
    """/healthz with no client traffic at all: only probes find out."""

    def test_dead_only_server(self):
        dead = "%s:%d" % (h.HOST, h.free_port())
        cl = h.Cluster(self, nservers=0, hash="md5",
                       servers=h.servers_yaml([dead]))
        h.wait_accepting(cl.proxy.stats_port)
        status, body, took = poll_health(cl.proxy.stats_port, want_ok=False)
        note("healthz with a dead server: %s after %.2f s: %r", status, took,
             body[:200])
        self.assertNotEqual(status, 200, body)
        self.assertIsNotNone(status, body)
        self.assertIn(dead.encode(), body)

    def test_server_killed_and_restarted(self):
        cl = h.Cluster(self, nservers=1, hash="md5")
        port = cl.proxy.stats_port
        h.wait_accepting(port)
        server = cl.servers[0]
        status, body, _ = poll_health(port, want_ok=True)
        self.assertEqual(status, 200, body)
        server.stop()
        status, body, took = poll_health(port, want_ok=False)
        note("healthz after the only server stopped: %s after %.2f s",
             status, took)
        self.assertNotEqual(status, 200, body)
        self.assertIsNotNone(status, body)
        self.assertIn(server.addr.encode(), body)
        server.start(port=server.port)
        status, body, took = poll_health(port, want_ok=True)
        note("healthz after the server came back: %s after %.2f s",
             status, took)
        self.assertEqual(status, 200, body)


# ------------------------------------------------------------ 8. binary, ms

class TestBinaryAndMeta(unittest.TestCase):

    def read_binary(self, c):
        """One binary response: (header fields, body); bounded at 2 s
        (the reply is due at once, not after a 5 s timer)."""
        head = c.read_exact(24, timeout=2)
        magic, opcode, keylen, extlen, _, status, total, opaque, _ = \
            struct.unpack(">BBHBBHIIQ", head)
        body = c.read_exact(total, timeout=2)
        return (magic, opcode, status, opaque), body

    def test_binary_requests_get_unknown_command(self):
        before = h.proxy_stats(CL.port)
        with CL.conn() as c:
            t0 = time.monotonic()
            c.send(h.binary_request(0x00, key=b"foo", opaque=0xdeadbeef))
            fields, body = self.read_binary(c)
            self.assertEqual(fields, (0x81, 0x00, 0x0081, 0xdeadbeef), body)
            c.send(h.binary_request(0x01, key=b"foo", extras=b"\0" * 8,
                                  value=b"bar", opaque=0x01020304))
            fields, body = self.read_binary(c)
            self.assertEqual(fields, (0x81, 0x01, 0x0081, 0x01020304), body)
            took = time.monotonic() - t0
            self.assertEqual(c.read_all(quiet=0.2), b"")    # nothing more
            self.assertFalse(c.expect_closed(0.1))          # still open
        note("two binary requests answered in %.3f s", took)
        self.assertLess(took, 1.0)
        d = h.stats_delta(before, h.proxy_stats(CL.port))
        self.assertEqual(d.get("request_binary"), 2, d)
        with CL.conn() as c:        # nothing was stored
            self.assertEqual(c.call(b"get foo\r\n"), b"END\r\n")

    def test_meta_set_stores_its_data_block_whole(self):
        with CL.conn() as c:
            self.assertIn(c.call(b"delete k\r\n"),
                          (b"DELETED\r\n", b"NOT_FOUND\r\n"))
            c.send(b"ms k 16 T0\r\nflush_all\r\nget k\r\n")
            self.assertEqual(c.read_line(), b"HD\r\n")
            self.assertEqual(c.call(b"get k\r\n"),
                             b"VALUE k 0 16\r\nflush_all\r\nget k\r\nEND\r\n")
            self.assertEqual(c.read_all(quiet=0.1), b"")


if __name__ == "__main__":
    sys.exit(h.run_tests(globals()))
