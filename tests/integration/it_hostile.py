"""Hostile input through memring, three ways:

1. A table of malformed requests, each sent to memring and to a real
   memcached (the reference) on fresh connections, followed by a sentinel:
   the bytes up to the sentinel's reply must be the same. Where memring
   answers differently on purpose, the row says how and why (DIFFERENCES
   below), and the test checks both sides of that difference, so the table
   stays true if either program changes. Every row, and a few longer
   sequences, is also sent split into two writes at every byte (long rows:
   at the bytes that matter) and one byte per write, many connections at
   once: the answer must be the row's unsplit one.
2. Random garbage (seeded PRNG, bounded in time) from several connections
   at once while another client runs set/get: memring stays up and every
   one of that client's replies is right.
3. A fake backend answering garbage or oversized replies: each affected
   request gets SERVER_ERROR, the backend connection is replaced, the
   client connection stays in step, and memring stays up.

Everything on 127.0.0.1 free ports; every socket has a timeout and every
loop a bound in count and time. MEMRING_HOSTILE_SEED=<int> replays a
garbage run.
"""

import os
import random
import re
import socket
import string
import struct
import sys
import threading
import time
import unittest

import harness as h

# Sent after each input. A bad data block may swallow part of it, but
# __hostile holds "ok" from the start, so its last line always ends with
# GOT_SENTINEL: the end of what the input caused.
SENTINEL = b"set __hostile 0 0 2\r\nok\r\nget __hostile\r\n"
SENTINEL_REPLY = b"STORED\r\nVALUE __hostile 0 2\r\nok\r\nEND\r\n"
GOT_SENTINEL = b"VALUE __hostile 0 2\r\nok\r\nEND\r\n"
SEED = int(os.environ.get("MEMRING_HOSTILE_SEED", "20240611"))
GARBAGE_SECONDS = 3.0
GARBAGE_CLIENTS = 3

CL = None       # memring in front of 2 memcached
REF = None      # a plain memcached, the oracle


def setUpModule():
    global CL, REF
    CL, REF = h.start_shared(nservers=2)
    for t in (CL.port, REF.port):
        with h.Conn(t) as c:
            c.call(SENTINEL, count=2)


def long_key(n=251):
    return b"k" * n


# ---------------------------------------------------------------- the table

# Expectations, per row:
SAME = "same"           # memring's bytes == memcached's, up to the sentinel
OWN = "own"             # memring's answer and memcached's are as given
CLOSE = "close"         # memring sends `reply` and closes (see DIFFERENCES)

# (name, input, expectation, extra). Inputs use key "k" (deleted on both
# before each row) and never a key the sentinel uses.
TABLE = [
    # wrong arity
    ("get no key", b"get\r\n", SAME, None),
    ("gets no key", b"gets\r\n", SAME, None),
    ("gat no key", b"gat 10\r\n", SAME, None),
    ("set short", b"set k 0 0\r\nv\r\n", SAME, None),
    ("set long", b"set k 0 0 1 noreply x\r\nv\r\n", SAME, None),
    ("cas no unique", b"cas k 0 0 1\r\nv\r\n", SAME, None),
    ("incr bare", b"incr\r\n", SAME, None),
    ("incr no delta", b"incr k\r\n", SAME, None),
    ("incr too many", b"incr k 1 2 3\r\n", SAME, None),
    ("touch no time", b"touch k\r\n", SAME, None),
    ("delete bare", b"delete\r\n", SAME, None),
    ("delete hold", b"delete k 0 0\r\n", SAME, None),
    ("verbosity bare", b"verbosity\r\n", SAME, None),
    ("flush three", b"flush_all 1 2 3\r\n", SAME, None),
    # non-numeric and out-of-range fields
    ("set flags text", b"set k x 0 1\r\nv\r\n", SAME, None),
    ("set exptime text", b"set k 0 x 1\r\nv\r\n", SAME, None),
    ("set bytes text", b"set k 0 0 x\r\nv\r\n", SAME, None),
    ("set bytes negative", b"set k 0 0 -1\r\nv\r\n", SAME, None),
    ("set bytes 2^64", b"set k 0 0 18446744073709551616\r\nv\r\n", SAME,
     None),
    ("set flags 2^66", b"set k 99999999999999999999 0 1\r\nv\r\n", SAME,
     None),
    ("set bytes 1x", b"set k 0 0 1x\r\nv\r\n", SAME, None),
    ("set noreply bad", b"set k x 0 1 noreply\r\nv\r\n", SAME, None),
    ("cas unique text", b"cas k 0 0 1 x\r\nv\r\n", SAME, None),
    ("decr text", b"decr k abc\r\n", SAME, None),
    ("incr negative", b"incr k -1\r\n", SAME, None),
    ("touch text", b"touch k soon\r\n", SAME, None),
    ("gat text", b"gat x k\r\n", SAME, None),
    ("verbosity text", b"verbosity x\r\n", SAME, None),
    ("flush text", b"flush_all x\r\n", SAME, None),
    ("flush noreply delay", b"flush_all noreply 10\r\n", SAME, None),
    # bad data block terminator
    ("data too long", b"set k 0 0 1\r\nab\r\n", SAME, None),
    ("data lf only", b"set k 0 0 2\r\nab\n\r\n", SAME, None),
    ("data no crlf", b"set k 0 0 2\r\nabXY", SAME, None),
    ("data cr only", b"set k 0 0 2\r\nab\r", SAME, None),
    ("data lf lines", b"set k 0 0 1\nx\n", SAME, None),
    ("data short", b"set k 0 0 3\r\nab\r\n", SAME, None),
    # binary garbage and NUL bytes
    ("nul line", b"\x00\r\n", SAME, None),
    ("nul first", b"\x00get k\r\n", SAME, None),
    ("nul in command", b"get\x00 k\r\n", SAME, None),
    ("nul after key", b"get k\x00junk\r\n", SAME, None),
    ("nul in set", b"set k 0 0 1\x00 junk\r\nv\r\n", SAME, None),
    ("high bytes", b"\xff\xfe\xfd\r\n", SAME, None),
    ("garbage line", b"\x1b[2J\x07\x08 \x7f\xc3\x28 !!\r\n", SAME, None),
    ("blank lines", b"\r\n\n \r\n\t\r\n", SAME, None),
    ("value with nul", b"set k 0 0 3\r\n\x00\r\n\r\nget k\r\n", SAME, None),
    # unknown commands
    ("unknown", b"bogus\r\n", SAME, None),
    ("upper case", b"GET k\r\n", SAME, None),
    ("http", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", SAME, None),
    ("many tokens", b"foo" + b" x" * 30 + b"\r\n", SAME, None),
    # over-long keys and lines memcached answers too
    ("get long key", b"get " + long_key() + b"\r\n", SAME, None),
    ("set long key", b"set " + long_key() + b" 0 0 1\r\nv\r\n", SAME, None),
    ("longest key", b"set " + long_key(250) + b" 0 0 1\r\nv\r\nget " +
     long_key(250) + b"\r\n", SAME, None),
    ("2048-byte line", b"bogus " + b"x" * 2040 + b"\r\n", SAME, None),
    # keys with control and high bytes: memcached stores them
    ("ctl key get", b"get k\x01y\r\n", SAME, None),
    ("ctl key set", b"set \x1b[0m 0 0 1\r\nv\r\nget \x1b[0m\r\n", SAME, None),
    ("tab key delete", b"delete a\tb\r\n", SAME, None),
    ("del key incr", b"set k\x7f 0 0 1\r\n1\r\nincr k\x7f 1\r\n", SAME, None),
    ("high key", b"set \x10k\xff\xfe 0 0 1\r\nv\r\nget \x10k\xff\xfe\r\n",
     SAME, None),
    # lines over 2048 bytes that memcached reads at once (up to its 16 KiB
    # buffer): answered, the connection kept
    ("long unknown line", b"x" * 3000 + b"\r\n", SAME, None),
    ("long set line", b"set " + b"k" * 3000 + b" 0 0 1\r\nv\r\n", SAME,
     None),
    ("16k line", b"bogus " + b"x" * 16376 + b"\r\n", SAME, None),
    # a multiget line of any length (memcached buffers it without bound)
    ("huge get line", b"get " + b"k " * 40000 + b"\r\n", SAME, None),
    ("long get line", b"get " + b" ".join(b"key%05d" % i
                                           for i in range(5000)) + b"\r\n",
     SAME, None),

    # --- DIFFERENCES: memring answers otherwise, on purpose ---------------
    # Meta commands: passed on to a server, answered as memcached does.
    ("meta get", b"mg k v\r\n", SAME, None),
    ("meta noop", b"mn\r\n", SAME, None),
    # The binary protocol: memcached switches to it on a first byte of
    # 0x80; memring does not serve it yet, and answers each binary request
    # with the binary "unknown command" (status 0x0081), its body dropped
    # by the length in its header (never read as text), then goes on.
    ("binary get", b"\x80\x00\x00\x01" + b"\x00" * 4 + b"\x00\x00\x00\x01" +
     b"\x00" * 12 + b"k", OWN,
     (b"\x81\x00\x00\x00\x00\x00\x00\x81\x00\x00\x00\x0f" + b"\x00" * 12 +
      b"Unknown command" + SENTINEL_REPLY, b"\x81\x00\x00\x00")),
    # A meta set whose data block reads like commands: stored whole.
    ("meta set", b"ms k 18 T0\r\nflush_all\r\nget k\r\n\r\n", SAME, None),
    # A non-multiget line with no \n in 16 KiB: memcached's read buffer is
    # full of it and it closes; so does memring.
    ("long line no lf", b"x" * 20000, CLOSE, b""),
    # A value over 1 GiB: memcached replies and swallows the data block
    # (here: waits for 2 GB); memring replies the same line and closes.
    ("2 GB value", b"set k 0 0 2000000000\r\n", CLOSE,
     b"SERVER_ERROR object too large for cache\r\n"),
]

# What memcached does with the CLOSE rows, checked so that the table's
# comments stay true: "answers" (it replies and stays open), "closes" (as
# memring), "buffers" (no reply, open, within the quiet time), "swallows"
# (no reply yet, open).
MEMCACHED_ON_CLOSE_ROWS = {
    "long line no lf": "closes",
    "2 GB value": "swallows",
}


def exchange(target, data, timeout=5.0):
    """Sends data + SENTINEL on a fresh connection; returns (the bytes up
    to and including GOT_SENTINEL, or everything until a close; closed)."""
    with h.Conn(target, timeout) as c:
        try:
            c.send(data + SENTINEL)
        except (BrokenPipeError, ConnectionResetError):
            pass                # a close while sending: read what came
        try:
            return c.read_until(GOT_SENTINEL), False
        except h.ProtocolError as e:
            if "closed" not in str(e):
                raise
            return c.buf, True
        except ConnectionResetError:
            return c.buf, True


def forget(target, key=b"k"):
    with h.Conn(target) as c:
        c.call(b"delete %s\r\n" % key)


class TestMalformed(unittest.TestCase):
    """Each row of TABLE against memring and memcached."""

    def check_row(self, name, data, how, extra):
        if how == SAME:
            want, want_closed = exchange(REF.port, data)
            got, got_closed = exchange(CL.port, data)
            self.assertEqual(got, want)
            self.assertEqual(got_closed, want_closed)
        elif how == OWN:
            # extra: (memring's whole answer, how memcached's starts)
            got, got_closed = exchange(CL.port, data)
            want, _ = exchange(REF.port, data)
            self.assertEqual(got, extra[0])
            self.assertFalse(got_closed)
            self.assertTrue(want.startswith(extra[1]), want)
        elif how == CLOSE:
            self.check_close_row(name, data, extra)
        else:
            self.fail("bad row %s" % name)

    def check_close_row(self, name, data, reply):
        with h.Conn(CL.port, 5) as c:
            try:
                c.send(data)
            except (BrokenPipeError, ConnectionResetError):
                pass
            got = b""
            try:
                got = c.read_exact(len(reply)) if reply else b""
                self.assertTrue(c.expect_closed(3), "memring stayed open")
            except ConnectionResetError:
                got = got or c.buf
            self.assertEqual(got, reply)
        kind = MEMCACHED_ON_CLOSE_ROWS[name]
        with h.Conn(REF.port, 5) as c:
            c.send(data)
            if kind == "answers":
                self.assertTrue(c.read_line(3) != b"")
                c.send(SENTINEL)
                c.read_until(GOT_SENTINEL)    # still open, in step
            elif kind == "closes":
                self.assertTrue(c.expect_closed(3))
            elif kind == "buffers":
                self.assertEqual(c.read_all(quiet=0.3, timeout=1), b"")
                self.assertFalse(c.expect_closed(0.2))
            elif kind == "swallows":
                c.send(SENTINEL)                # swallowed as data
                self.assertNotIn(b"VALUE",
                                 c.read_all(quiet=0.3, timeout=1))
                self.assertFalse(c.expect_closed(0.2))

    def test_table(self):
        for name, data, how, extra in TABLE:
            with self.subTest(row=name):
                forget(CL.port)
                forget(REF.port)
                self.check_row(name, data, how, extra)
        self.assertTrue(CL.proxy.alive())


# ------------------------------------------------------------ split reads

# Every row of TABLE and these sequences is also sent split: into two
# writes at every byte, and one byte per write. How memring's reads fall
# must never change its answer, which is the unsplit one: memcached's for
# SAME rows and sequences, the row's own for OWN and CLOSE rows.
SPLIT_ROWS = [
    b"set k 0 0 5\r\nhello\r\nget k\r\n",
    b"set k 0 0 1\r\nab\r\nget k\r\n",
    b"set k 0 0 2\r\nab\n\r\nverbosity 1\r\n",
    b"gets k\r\nbogus\r\n\r\nincr k 1\r\ndelete k 0\r\n",
    b"get k\x00junk\r\n\xff\r\ntouch k x\r\n",
    b"set k 0 0 1 noreply\r\nv\r\nget k\r\n",
    b"delete k noreply\r\nGET k\r\ncas k 0 0 1 x\r\nv\r\n",
]

# Rows not split, and why.
SPLIT_SKIP = {
    # Its reply (none) does not depend on the split, but it schedules a
    # real flush of the shared servers 10 s ahead: sent a thousand times
    # it would keep one pending over the module's later tests.
    "flush noreply delay",
}

SPLIT_ALL_MAX = 128     # rows up to this long are cut at every byte;
SPLIT_EDGE = 24         # longer ones at their first and last bytes,
SPLIT_LINES = 8         # around their first line ends, around powers of 2
SPLIT_EVEN = 16         # (buffer sizes, limits) and at evenly spaced bytes
BYTE_EDGE = 128         # one byte per write: all of a row up to twice this,
BYTE_CHUNK = 4096       # else its head and tail, the middle in these
SPLIT_PAUSE = 0.002     # s between a connection's writes: separate reads
SPLIT_BUDGET = 60.0     # s for one test's cases, all told

# Cases run side by side, one key each: a row's key "k" becomes one of
# these (same length, so that the cuts stay where they were), and back to
# "k" in the reply.
SLOTS = [c.encode() for c in string.ascii_letters + string.digits
         if c != "k"]
_KEY_K = re.compile(rb"(?<= )k(?![!-~])")    # the key k, not a long key
_around_k = {}


def with_key(data, key):
    """data with its key k as key (a huge get line has 40000 of them)."""
    if data not in _around_k:
        _around_k[data] = _KEY_K.split(data)
    return key.join(_around_k[data])


def split_points(data):
    """Where to cut data in two: after every byte of a short row (the last
    cut puts the sentinel alone in the second write); in a long one, the
    bytes where a parser decides something."""
    n = len(data)
    if n <= SPLIT_ALL_MAX:
        return list(range(1, n + 1))
    at = set(range(1, SPLIT_EDGE + 1)) | set(range(n - SPLIT_EDGE, n + 1))
    ends = [i for i in range(n) if data[i] == 0x0a][:SPLIT_LINES]
    for i in ends:
        at |= {i - 1, i, i + 1, i + 2}
    p = 256
    while p <= n:
        at |= {p - 1, p, p + 1}
        p *= 2
    at |= {n * j // SPLIT_EVEN for j in range(1, SPLIT_EVEN)}
    return sorted(k for k in at if 1 <= k <= n)


def byte_writes(data):
    """data one byte per write; a long row's middle in BYTE_CHUNK writes."""
    n = len(data)
    if n <= 2 * BYTE_EDGE:
        return [data[i:i + 1] for i in range(n)]
    mid = range(BYTE_EDGE, n - BYTE_EDGE, BYTE_CHUNK)
    return ([data[i:i + 1] for i in range(BYTE_EDGE)] +
            [data[i:min(i + BYTE_CHUNK, n - BYTE_EDGE)] for i in mid] +
            [data[i:i + 1] for i in range(n - BYTE_EDGE, n)])


def split_cases():
    """[(name, data, want, closed, sentinel)]: every row to split, with
    the answer memring gives it unsplit and whether the sentinel follows.
    Asks memcached (unsplit) where that answer is memcached's."""
    rows = [(name, data, how, extra) for name, data, how, extra in TABLE
            if name not in SPLIT_SKIP]
    rows += [("sequence %d" % i, data, SAME, None)
             for i, data in enumerate(SPLIT_ROWS)]
    out = []
    for name, data, how, extra in rows:
        if how == CLOSE:
            out.append((name, data, extra, True, False))
            continue
        if how == OWN:
            out.append((name, data, extra[0], False, True))
            continue
        forget(REF.port)
        want, closed = exchange(REF.port, data)
        out.append((name, data, h.strip_cas(want), closed, True))
    return out


def read_answer(sock, until, deadline):
    """(bytes up to and including until, False), or (all bytes, True) when
    the peer closes first (or until is None); ProtocolError at deadline."""
    buf, how = h.read_to_eof(sock, max(0.05, deadline - time.monotonic()),
                             until)
    if how == "timeout":
        raise h.ProtocolError("timeout; got %r" % buf[-300:])
    return buf, how != "until"


def run_side_by_side(port, writes, sentinels, timeout=5.0):
    """One connection per entry of writes (a list of byte strings, at most
    len(SLOTS)), all at once: every connection's first write, a pause, every
    connection's second... then each answer, as (bytes, closed), or
    (b"<error>...", None) when it could not be read."""
    socks = []
    out = []
    try:
        for _ in writes:
            s = socket.create_connection((h.HOST, port), timeout=timeout)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            socks.append(s)
        dead = set()
        for i in range(max(len(w) for w in writes)):
            if i:
                time.sleep(SPLIT_PAUSE)
            for j, s in enumerate(socks):
                if i < len(writes[j]) and j not in dead:
                    try:
                        s.sendall(writes[j][i])
                    except (BrokenPipeError, ConnectionResetError):
                        dead.add(j)     # closed on us: read what came
        deadline = time.monotonic() + timeout
        for s, sentinel in zip(socks, sentinels):
            try:
                out.append(read_answer(s, GOT_SENTINEL if sentinel else None,
                                       deadline))
            except h.ProtocolError as e:
                out.append((b"<error> %s" % str(e).encode(), None))
    finally:
        for s in socks:
            s.close()
    return out


class TestSplitReads(unittest.TestCase):
    """Each case on its own connection with its own key, len(SLOTS) cases
    side by side, so that the pauses between writes are shared."""

    @classmethod
    def setUpClass(cls):
        cls.cases = split_cases()

    def run_cases(self, cases):
        """cases: [(label, data, cut, want, closed, sentinel)]: data in two
        writes cut at cut, or one byte per write when cut is None. Fails
        listing every wrong answer."""
        deadline = time.monotonic() + SPLIT_BUDGET
        bad = []
        for b in range(0, len(cases), len(SLOTS)):
            self.assertLess(time.monotonic(), deadline,
                            "split cases over %gs" % SPLIT_BUDGET)
            batch = cases[b:b + len(SLOTS)]
            with h.Conn(CL.port) as c:
                c.call(b"".join(b"delete %s\r\n" % k for k in SLOTS),
                       count=len(SLOTS))
            writes = []
            for (_, data, cut, _, _, sentinel), key in zip(batch, SLOTS):
                data = with_key(data, key)
                parts = (byte_writes(data) if cut is None else
                         [data[:cut], data[cut:]])
                parts[-1] += SENTINEL if sentinel else b""
                writes.append(parts)
            answers = run_side_by_side(CL.port, writes,
                                       [case[5] for case in batch])
            for case, key, (got, closed) in zip(batch, SLOTS, answers):
                label, _, _, want, want_closed, _ = case
                got = h.strip_cas(got.replace(b"VALUE %s " % key,
                                              b"VALUE k "))
                if (got, closed) != (want, want_closed):
                    bad.append("%s: want %r%s, got %r%s"
                               % (label, want[:200],
                                  " (closed)" if want_closed else "",
                                  got[:200], " (closed)" if closed else ""))
        self.assertTrue(CL.proxy.alive(), "memring died")
        sys.stderr.write("split: %d cases\n" % len(cases))
        if bad:
            self.fail("%d of %d cases differ; the first:\n%s"
                      % (len(bad), len(cases), "\n".join(bad[:10])))

    def test_two_writes_at_every_byte(self):
        cases = []
        for name, data, want, closed, sentinel in self.cases:
            for k in split_points(data):
                cases.append(("%s, cut at %d of %d" % (name, k, len(data)),
                              data, k, want, closed, sentinel))
        self.run_cases(cases)

    def test_one_byte_per_write(self):
        # Longest last, so that short rows share short batches.
        cases = sorted(((name + ", one byte per write", data, None, want,
                         closed, sentinel)
                        for name, data, want, closed, sentinel in self.cases),
                       key=lambda case: len(case[1]))
        self.run_cases(cases)


# ---------------------------------------------------------------- garbage

# Pieces the garbage is made of, besides raw random bytes: enough protocol
# to reach deep into the parser. No flush_all (it would wipe the good
# client's values) and no key the good client uses.
VOCAB = [b"get ", b"gets ", b"gat ", b"set ", b"add ", b"cas ", b"incr ",
         b"decr ", b"delete ", b"touch ", b"version", b"verbosity ",
         b"stats", b"quit", b"noreply", b" ", b"  ", b"\r\n", b"\n", b"\r",
         b"\x00", b"0", b"1", b"-1", b"99", b"4294967296", b"x", b"junk",
         b"GET / HTTP/1.1\r\n", b"\x80\x00\x00\x01", b"mg ", b"g:"]


def garbage_chunk(rng):
    """One burst: random bytes, random protocol words, or a mix."""
    kind = rng.random()
    if kind < 0.3:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 600)))
    out = []
    for _ in range(rng.randint(1, 60)):
        if rng.random() < 0.85:
            out.append(rng.choice(VOCAB))
        else:
            out.append(bytes(rng.getrandbits(8)
                             for _ in range(rng.randint(1, 8))))
    if kind > 0.9:
        out.append(b"y" * rng.randint(1000, 5000))   # long lines
    return b"".join(out)


def garbage_client(port, seed, deadline, stats):
    """Sends garbage until deadline, draining replies, reconnecting when
    memring closes, sometimes hanging up with a reset mid-request."""
    rng = random.Random(seed)
    sock = None
    sent = 0
    for _ in range(100000):
        if time.monotonic() >= deadline:
            break
        try:
            if sock is None:
                sock = socket.create_connection((h.HOST, port), timeout=1)
                stats["connects"] += 1
            sock.settimeout(1)
            sock.sendall(garbage_chunk(rng))
            sent += 1
            sock.setblocking(False)     # take what replies there are
            for _ in range(100):
                try:
                    if not sock.recv(65536):
                        raise ConnectionResetError("closed")
                except BlockingIOError:
                    break
            if rng.random() < 0.05:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                struct.pack("ii", 1, 0))
                raise ConnectionResetError("our reset")
        except (ConnectionResetError, BrokenPipeError, socket.timeout):
            if sock is not None:
                sock.close()
            sock = None
    if sock is not None:
        sock.close()
    stats["bursts"] += sent


class TestGarbage(unittest.TestCase):

    def test_garbage_while_another_client_works(self):
        deadline = time.monotonic() + GARBAGE_SECONDS
        stats = {"connects": 0, "bursts": 0}
        threads = [threading.Thread(target=garbage_client,
                                    args=(CL.port, SEED + i, deadline, stats),
                                    daemon=True)
                   for i in range(GARBAGE_CLIENTS)]
        for t in threads:
            t.start()
        good = CL.conn()
        self.addCleanup(good.close)
        rng = random.Random(SEED - 1)
        ops = 0
        tag = b"good:%d:" % SEED
        while time.monotonic() < deadline and ops < 50000:
            key = tag + b"%d" % (ops % 50)
            value = b"%d-%s" % (ops, b"v" * rng.randint(0, 300))
            self.assertEqual(good.call(b"set %s 3 0 %d\r\n%s\r\n"
                                       % (key, len(value), value)),
                             b"STORED\r\n", "seed %d" % SEED)
            self.assertEqual(good.call(b"get %s\r\n" % key),
                             b"VALUE %s 3 %d\r\n%s\r\nEND\r\n"
                             % (key, len(value), value), "seed %d" % SEED)
            ops += 1
        for t in threads:
            t.join(5)
        self.assertFalse(any(t.is_alive() for t in threads))
        self.assertTrue(CL.proxy.alive(), "memring died; seed %d" % SEED)
        self.assertEqual(good.call(SENTINEL, count=2), SENTINEL_REPLY)
        with CL.conn() as fresh:
            self.assertEqual(fresh.call(SENTINEL, count=2), SENTINEL_REPLY)
        sys.stderr.write("garbage: seed %d, %d bursts on %d connections; "
                         "good client: %d set+get, all right\n"
                         % (SEED, stats["bursts"], stats["connects"], ops))
        self.assertGreater(ops, 50)
        self.assertGreater(stats["bursts"], 50)


# ---------------------------------------------------------------- backend

class BadBackend(h.FakeMemcached):
    """The harness's fake memcached, answering by key: get of a key in
    `replies` sends those bytes (or calls them with the socket), anything
    else behaves (END / STORED). .connections counts the connections
    memring made, so a test can see it replace one."""

    def __init__(self, replies):
        self.replies = replies
        super().__init__()

    @property
    def connections(self):
        with self.lock:
            return len(self.socks)

    def _answer(self, s, words):
        cmd = words[0] if words else b""
        reply = b"STORED\r\n"
        if cmd in (b"get", b"gets"):
            reply = self.replies.get(words[1] if len(words) > 1 else b"",
                                     b"END\r\n")
        if callable(reply):
            reply(s)
        else:
            s.sendall(reply)
        return True


def dribble(data):
    """A reply sent one byte per write: valid, just slow to arrive."""
    def send(s):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(data)):
            s.sendall(data[i:i + 1])
            time.sleep(0.001)
    return send


_rng = random.Random(SEED)
BAD_REPLIES = {
    # key asked for -> what the backend answers
    b"garbage": b"\xff\xfe\x00" + bytes(_rng.getrandbits(8)
                                        for _ in range(3000)),
    b"binary": b"\x81\x00\x00\x00" + b"\x00" * 20,
    b"longline": b"SERVER_ERROR " + b"x" * 2000 + b"\r\n",
    b"endless": b"VALUE endless 0 1" + b" " * 3000,
    b"huge": b"VALUE huge 0 1073741825\r\n" + b"x" * 1000,
    b"bigflags": b"VALUE bigflags 4294967296 1\r\nx\r\nEND\r\n",
    b"badterm": b"VALUE badterm 0 3\r\nabcXY\r\nEND\r\n",
    b"ctlkey": b"VALUE ctl\x01key 0 1\r\nx\r\nEND\r\n",   # a key not asked
    b"nolen": b"VALUE nolen 0\r\nx\r\nEND\r\n",
    b"otherkey": b"VALUE someone 0 1\r\nx\r\nEND\r\n",
    b"extra": b"VALUE extra 0 1\r\nx\r\nVALUE more 0 1\r\ny\r\nEND\r\n",
    b"dup": b"VALUE dup 0 1\r\nx\r\nVALUE dup 0 1\r\nx\r\nEND\r\n",
    b"lfonly": b"END\n",
    b"twice": b"END\r\nEND\r\n",
    b"stored": b"STORED\r\n",
}
GOOD_REPLIES = {
    b"slowvalue": dribble(b"VALUE slowvalue 7 5\r\nhello\r\nEND\r\n"),
}


class TestBadBackend(unittest.TestCase):
    """memring in front of one BadBackend: every bad reply fails its
    request with SERVER_ERROR and costs the backend connection, the client
    connection stays in step, good requests after it work."""

    @classmethod
    def setUpClass(cls):
        replies = dict(BAD_REPLIES)
        replies.update(GOOD_REPLIES)
        cls.fake = BadBackend(replies)
        cls.addClassCleanup(cls.fake.stop)
        cls.cl = h.Cluster(cls, backends=[cls.fake.addr], timeout=500)

    def test_each_bad_reply_fails_its_request_only(self):
        c = self.cl.conn()
        self.addCleanup(c.close)
        self.assertEqual(c.call(b"get fine\r\n"), b"END\r\n")
        for key in BAD_REPLIES:
            with self.subTest(key=key):
                before = self.fake.connections
                got = c.call(b"get %s\r\n" % key)
                if key == b"twice":
                    # the request got its END; the stray second END, with
                    # no request waiting, costs the connection
                    self.assertEqual(got, b"END\r\n")
                else:
                    self.assertTrue(got.startswith(b"SERVER_ERROR "), got)
                    self.assertTrue(got.endswith(b"\r\n"), got)
                    self.assertEqual(got.count(b"\r\n"), 1, got)
                self.assertEqual(c.call(b"get fine\r\n"), b"END\r\n")
                self.assertGreater(self.fake.connections, before,
                                   "backend connection not replaced")
        self.assertEqual(c.call(b"set fine 0 0 1\r\nv\r\n"), b"STORED\r\n")
        self.assertTrue(self.cl.proxy.alive())

    def test_pipelined_behind_a_bad_reply(self):
        # Requests written behind the bad one on the same backend
        # connection fail with it: that stream cannot be trusted.
        c = self.cl.conn()
        self.addCleanup(c.close)
        got = c.call(b"get garbage\r\nget a\r\nset b 0 0 1\r\nv\r\n"
                     b"get huge\r\nget c\r\n", count=5)
        lines = got.split(b"\r\n")[:-1]
        self.assertEqual(len(lines), 5, got)
        self.assertTrue(lines[0].startswith(b"SERVER_ERROR"), got)
        self.assertTrue(lines[3].startswith(b"SERVER_ERROR"), got)
        for line in lines:
            self.assertTrue(line in (b"END", b"STORED") or
                            line.startswith(b"SERVER_ERROR "), got)
        self.assertEqual(c.call(b"get fine\r\n"), b"END\r\n")

    def test_reply_one_byte_per_write(self):
        with self.cl.conn() as c:
            self.assertEqual(c.call(b"get slowvalue\r\n"),
                             b"VALUE slowvalue 7 5\r\nhello\r\nEND\r\n")

    def test_random_garbage_replies(self):
        # Seeded random replies, none valid by construction (each starts
        # with a byte no reply starts with) and each ending in \r\n so
        # that the proxy can decide at once rather than time out.
        rng = random.Random(SEED + 100)
        keys = []
        for i in range(30):
            key = b"rnd%d" % i
            n = rng.choice((1, 10, 100, 1000, 5000))
            self.fake.replies[key] = b"\x01" + bytes(
                rng.getrandbits(8) for _ in range(n)) + b"\r\n"
            keys.append(key)
        with self.cl.conn() as c:
            for key in keys:
                got = c.call(b"get %s\r\n" % key)
                self.assertTrue(got.startswith(b"SERVER_ERROR "), got)
            self.assertEqual(c.call(b"get fine\r\n"), b"END\r\n")
        self.assertTrue(self.cl.proxy.alive())


if __name__ == "__main__":
    sys.exit(h.run_tests(globals()))
