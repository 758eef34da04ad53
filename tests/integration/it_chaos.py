"""Chaos soak: memring under a seeded, random storm of backend faults while
client threads pipeline checked traffic through two pools.

  pool strict  three memcached; auto_eject_hosts false, timeout 300 ms;
               never reloaded. Its servers are SIGSTOPped (then SIGCONT),
               SIGKILLed or SIGTERMed (then restarted on the same port).
  pool chaos   memcached (some joined and left by SIGHUP reloads), one
               memcached behind an in-process relay (normal, delayed
               50-500 ms, or a black hole that accepts and never
               forwards) and a fake backend (harness.FakeMemcached:
               garbage, wrong replies, cut values, silence ...);
               auto_eject_hosts true, server_failure_limit 2,
               server_retry_timeout 700 ms, timeout 300 ms.

Every reply is checked against a model of what each key may hold:
  1. exactly one reply per request, in order, on every connection: each
     reply must be of its request's kind (a get's values only for keys it
     asked, in its order), a VERSION sentinel (answered by memring itself)
     ends every batch, and nothing may arrive after it;
  2. never a value that was not written for that key: values carry their
     key, writer, sequence number, pad length and a CRC, counters are
     multiples of a per-key prime no larger than all increments sent;
  3. pool strict only: never a value overwritten before the read was sent
     (see PoolModel.check_fresh for what counts as "overwritten");
  4. memring's RSS stays under RSS_LIMIT_MIB (sampled twice a second);
  5. memring is alive at the end, serves a fresh connection on both pools,
     and exits 0 on SIGTERM with no sanitizer report in its output.

MEMRING_CHAOS_SECONDS (default 60) sets the length; the test process's
own memory is bounded for any length (the model keeps RECS_PER_KEY writes
per key, counters only). MEMRING_CHAOS_SEED replays the chaos schedule and
every thread's choices (the seed is printed first; thread timing still
differs between runs, so a replay is likely, not certain, to hit the same
interleaving).
"""

import collections
import os
import random
import re
import select
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
import unittest
import zlib

import harness as h

SECONDS = float(os.environ.get("MEMRING_CHAOS_SECONDS") or 60)
SEED = int(os.environ.get("MEMRING_CHAOS_SEED") or
           random.SystemRandom().randrange(1 << 32))

TIMEOUT_MS = 300        # both pools
RETRY_MS = 700          # pool chaos: server_retry_timeout
NKEYS = 48              # plain keys per pool
PRIMES = (3, 5, 7, 11, 13, 17, 19, 23)     # one counter key per prime
NWORKERS = 4            # client threads, each with a connection per pool
# A batch's replies must all be in within this (seconds after it was
# sent). Legitimately a request waits at most two timeouts (a connect,
# then the request) plus reconnect backoff (1 s): a few seconds on a
# loaded box under ASan. Twenty is a hang.
BATCH_TIMEOUT = 20.0
RECS_PER_KEY = 64       # writes remembered per key for rule 3
EVENT_GAP = (0.5, 2.0)  # seconds between chaos events
# memring's steady state allocates nothing per request (pooled buffers):
# a few MiB of code and pools, plus what the clients hold in flight here
# (4 clients x 40 requests x at most 100 KB values ~ 16 MiB, twice while
# forwarded), plus ~4 KB per reload (README, Caveats: 30 reloads a minute
# for an hour is ~7 MiB). 200 MiB is several times that: only a leak or
# unbounded buffering reaches it. Under ASan the allocator keeps freed
# memory in a quarantine (256 MiB by default) and adds shadow memory and
# redzones, so the bound grows by that quarantine and the same again.
RSS_LIMIT_MIB = 200
ASAN_EXTRA_MIB = 512
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")

PAD = (b"0123456789abcdefghijklmnopqrstuvwxyz" * 3000)[:100000]
FAKE_MODES = ("ok", "garbage", "wrong", "midvalue", "partial", "close",
              "reset", "silent")

STORE_OK = {
    b"set": (b"STORED\r\n",),
    b"add": (b"STORED\r\n", b"NOT_STORED\r\n"),
    b"replace": (b"STORED\r\n", b"NOT_STORED\r\n"),
    b"append": (b"STORED\r\n", b"NOT_STORED\r\n"),
    b"cas": (b"STORED\r\n", b"EXISTS\r\n", b"NOT_FOUND\r\n"),
}


class ChaosFailure(AssertionError):
    """A guarantee was broken; the message says which and how."""


# ---------------------------------------------------------------- values

def make_value(key, wid, seq, padlen):
    """(value, flags) for writer wid's write number seq to key."""
    head = b"%s|%d|%d|%d" % (key, wid, seq, padlen)
    crc = zlib.crc32(head)
    return head + b"|%08x|" % crc + PAD[:padlen], crc & 0xffff


def make_suffix(key, wid, seq):
    head = b"%s+%d.%d" % (key, wid, seq)
    return b"+%d.%d.%08x" % (wid, seq, zlib.crc32(head))


def parse_value(key, value, flags):
    """[(wid, seq), ...]: the base write, then each append, of a value read
    for key; ChaosFailure when it is not one this test could have written
    for key (another key's value, cut, shifted or corrupted bytes)."""
    parts = value.split(b"+")
    base = parts[0].split(b"|", 5)
    if len(base) != 6 or base[0] != key:
        raise ChaosFailure("value not written for %r: %r" % (key, value[:120]))
    try:
        wid, seq, padlen = int(base[1]), int(base[2]), int(base[3])
    except ValueError:
        raise ChaosFailure("value not written for %r: %r"
                           % (key, value[:120])) from None
    want, want_flags = make_value(key, wid, seq, padlen)
    if parts[0] != want or flags != want_flags:
        raise ChaosFailure("corrupt value for %r (flags %d): %r"
                           % (key, flags, value[:120]))
    out = [(wid, seq)]
    for sfx in parts[1:]:
        words = sfx.split(b".")
        try:
            w, s = int(words[0]), int(words[1])
        except (ValueError, IndexError):
            raise ChaosFailure("corrupt append in %r: %r"
                               % (key, value[:200])) from None
        if b"+" + sfx != make_suffix(key, w, s):
            raise ChaosFailure("corrupt append in %r: %r"
                               % (key, value[:200]))
        out.append((w, s))
    return out


def parse_get(reply, gets):
    """[(key, flags, value)] of a get (or gets) reply ending in END."""
    out = []
    pos = 0
    while reply.startswith(b"VALUE ", pos):
        eol = reply.find(b"\r\n", pos)
        words = reply[pos:eol].split()
        if len(words) != (5 if gets else 4) or eol < 0:
            raise ChaosFailure("bad VALUE line: %r" % reply[pos:pos + 200])
        try:
            flags, n = int(words[2]), int(words[3])
            if gets:
                int(words[4])
        except ValueError:
            raise ChaosFailure("bad VALUE line: %r"
                               % reply[pos:pos + 200]) from None
        start = eol + 2
        if reply[start + n:start + n + 2] != b"\r\n":
            raise ChaosFailure("bad data block: %r" % reply[pos:pos + 200])
        out.append((words[1], flags, reply[start:start + n],
                    int(words[4]) if gets else None))
        pos = start + n + 2
    if reply[pos:] != b"END\r\n":
        raise ChaosFailure("not a get reply: %r" % reply[:200])
    return out


# ---------------------------------------------------------------- model

class Write:
    """One write the model remembers for rule 3 (set, add, replace, cas,
    delete). t_ack: when its definite reply was read (None: none yet, or
    never: noreply, SERVER_ERROR, abandoned). effective: that reply says
    the write took effect (STORED; DELETED or NOT_FOUND for a delete)."""

    __slots__ = ("op", "t_send", "t_ack", "effective")

    def __init__(self, op, t_send):
        self.op = op
        self.t_send = t_send
        self.t_ack = None
        self.effective = False


class KeyModel:
    __slots__ = ("max_seq", "recs")

    def __init__(self):
        self.max_seq = {}                       # writer -> last seq sent
        self.recs = collections.OrderedDict()   # (wid, seq) -> Write


class PoolModel:
    """What the keys of one pool may hold. Shared by the workers; every
    access holds self.lock. Bounded: NKEYS keys x RECS_PER_KEY writes."""

    def __init__(self, name, prefix, strict):
        self.name = name
        self.strict = strict
        self.lock = threading.Lock()
        self.keys = [b"%s:%d" % (prefix, i) for i in range(NKEYS)]
        self.model = {k: KeyModel() for k in self.keys}
        self.counters = [b"%sn:%d" % (prefix, i) for i in range(len(PRIMES))]
        self.cmodel = {k: [p, 0] for k, p in zip(self.counters, PRIMES)}
        self.port = None

    def sent(self, key, wid, seq, op, t_send):
        """Records a write about to be sent; the Write, or None for an
        append (appends are checked by rule 2 only)."""
        km = self.model[key]
        km.max_seq[wid] = seq
        if op == b"append":
            return None
        w = Write(op, t_send)
        km.recs[(wid, seq)] = w
        while len(km.recs) > RECS_PER_KEY:
            km.recs.popitem(last=False)
        return w

    def check_written(self, key, writes):
        """Rule 2: every (wid, seq) of a value read was sent to key (the
        CRC already proved it was made for key). Holds in both pools:
        keys that move (ejection, reloads) may come back with old values,
        but only ones once written for that key; memring must never hand
        a request another request's reply, or bytes of a cut one."""
        km = self.model[key]
        for wid, seq in writes:
            if seq > km.max_seq.get(wid, -1):
                raise ChaosFailure("%s: %r holds writer %d's write %d, "
                                   "never sent" % (self.name, key, wid, seq))

    def check_fresh(self, key, wid, seq, t_read):
        """Rule 3 (pool strict): the value whose base is write (wid, seq),
        read by a request sent at t_read, was not overwritten before.

        Sound because in pool strict a key never leaves its server
        (auto_eject_hosts false), and:
        - a write w read back is "settled" only if its STORED was read
          at w.t_ack: the server applied it before that moment;
        - a later write w2 "overwrites" it only if w2 was sent after
          w.t_ack (so the server applied w2 after w) and its own definite
          STORED/DELETED/NOT_FOUND was read before t_read (so w2 was
          applied before the read reached the server);
        - a server that restarts loses everything, and nothing re-sends a
          write that was already answered, so w cannot come back.
        Writes without a definite reply (noreply, SERVER_ERROR, abandoned
        connections) are never settled and never overwrite: they may have
        been applied at any time, even seconds later (a stopped server
        reads a closed connection's bytes when it resumes), or never.
        Writes of one batch all share its send time, so a batch never
        overwrites its own earlier writes here: unchecked, not unsound.
        Returns 1 when a check ran (the value's write is still
        remembered and settled), else 0."""
        km = self.model[key]
        w = km.recs.get((wid, seq))
        if w is None or w.t_ack is None or not w.effective or \
                w.op == b"delete":
            return 0
        for (w2id, s2), w2 in km.recs.items():
            if (w2.effective and w2.t_ack is not None and
                    w2.t_ack < t_read and w2.t_send > w.t_ack):
                raise ChaosFailure(
                    "%s: stale read of %r: got writer %d's write %d "
                    "(STORED at %.3f), but writer %d's %s %d was sent at "
                    "%.3f and answered at %.3f, before this read was sent "
                    "at %.3f" % (self.name, key, wid, seq, w.t_ack, w2id,
                                 w2.op.decode(), s2, w2.t_send, w2.t_ack,
                                 t_read))
        return 1

    def check_counter(self, key, text, at_least=0):
        """Rule 2 for counters: a multiple of the key's prime, no larger
        than every increment sent to it (incr/decr never leave [0, sum]),
        at least `at_least` (an incr's reply includes its own delta).
        memcached pads a counter that got shorter with spaces."""
        p, total = self.cmodel[key]
        s = text.rstrip(b" ")
        if not s.isdigit():
            raise ChaosFailure("%s: counter %r holds %r" % (self.name, key,
                                                          text[:80]))
        n = int(s)
        if n % p or n > total or n < at_least:
            raise ChaosFailure("%s: counter %r is %d: not a multiple of %d "
                               "in [%d, %d]" % (self.name, key, n, p,
                                                at_least, total))


# ---------------------------------------------------------------- relay

class Relay:
    """A TCP relay thread in this process, in front of one memcached.
    Modes: normal; delay (replies held for the delay, in order); blackhole
    (accepts, then forwards nothing either way and stays silent, like a
    route that drops every packet). Connections black-holed stay dead;
    leaving blackhole cuts them (memring sees them close). One thread per
    relayed connection; every socket wait is bounded (select, 50 ms)."""

    def __init__(self, target_port):
        self.target = (h.HOST, target_port)
        self.delay = 0.0
        self.blackhole = False
        self.halt = threading.Event()
        self.lock = threading.Lock()
        self.pairs = []
        self.accepted = 0
        self.lis = socket.socket()
        self.lis.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lis.bind((h.HOST, 0))
        self.lis.listen(64)
        self.lis.settimeout(0.05)
        self.port = self.lis.getsockname()[1]
        self.addr = "%s:%d" % (h.HOST, self.port)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def set_mode(self, mode, delay_ms=0):
        with self.lock:
            self.blackhole = mode == "blackhole"
            self.delay = delay_ms / 1000 if mode == "delay" else 0.0
            if not self.blackhole:
                for p in self.pairs:
                    if p["dead"]:
                        p["cut"] = True

    def _accept(self):
        while not self.halt.is_set():
            try:
                c, _ = self.lis.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            pair = {"dead": self.blackhole, "cut": False, "thread": None}
            t = threading.Thread(target=self._pair, args=(c, pair),
                                 daemon=True)
            pair["thread"] = t
            with self.lock:
                self.pairs = [p for p in self.pairs
                              if p["thread"].is_alive()]
                self.pairs.append(pair)
            t.start()

    def _pair(self, c, pair):
        s = None
        try:
            c.settimeout(2)
            if not pair["dead"]:
                s = socket.create_connection(self.target, timeout=1)
                s.settimeout(2)
            held = collections.deque()      # (due, bytes) for the client
            s_eof = False
            while not self.halt.is_set() and not pair["cut"]:
                wait = 0.05
                if held:
                    wait = max(0.0, min(wait, held[0][0] - time.monotonic()))
                socks = [c] + ([s] if s is not None and not s_eof else [])
                ready, _, _ = select.select(socks, [], [], wait)
                if c in ready:
                    data = c.recv(65536)
                    if not data:
                        break
                    if self.blackhole:
                        pair["dead"] = True
                    if not pair["dead"]:
                        s.sendall(data)
                if s is not None and s in ready:
                    data = s.recv(65536)
                    if not data:
                        s_eof = True
                    elif not pair["dead"]:
                        held.append((time.monotonic() + self.delay, data))
                if pair["dead"]:
                    held.clear()
                while held and held[0][0] <= time.monotonic():
                    c.sendall(held.popleft()[1])
                if s_eof and not held and not pair["dead"]:
                    break
        except OSError:
            pass
        finally:
            for sock in (c, s):
                if sock is not None:
                    sock.close()

    def stop(self):
        self.halt.set()
        self.lis.close()
        self.thread.join(2)
        with self.lock:
            pairs = list(self.pairs)
        for p in pairs:
            p["thread"].join(2)


class ChaosFake(h.FakeMemcached):
    """harness.FakeMemcached that forgets what it saw (an hour of traffic
    would otherwise pile up in .seen) and can drop finished threads."""

    accepted = 0

    def _serve(self, s):
        self.accepted += 1
        return super()._serve(s)

    def _answer(self, s, words):
        with self.lock:
            if len(self.seen) > 1000:
                del self.seen[:]
        return super()._answer(s, words)

    def prune(self):
        with self.lock:
            self.socks = [s for s in self.socks if s.fileno() != -1]
        self.threads = [t for t in self.threads if t.is_alive()]


# ---------------------------------------------------------------- backends

class Backend:
    """A memcached that the chaos stops, kills and restarts on its port.
    state: up, stopped (SIGSTOP), dead (awaiting restart), lost (its port
    was taken by someone else while it was down)."""

    def __init__(self, name):
        self.name = name
        self.mc = h.Memcached().start()
        self.port = self.mc.port
        self.addr = self.mc.addr
        self.state = "up"
        self.restart_tries = 0

    def signal(self, sig):
        try:
            self.mc.proc.send_signal(sig)
        except (ProcessLookupError, AttributeError):
            pass


class LogTail:
    """Reads memring's log from where it last stopped: bounded memory for
    any length of run. Counts ejections as it goes."""

    APPLIED = re.compile(r"reload \d+ of \S+ applied")

    def __init__(self, path):
        self.path = path
        self.off = 0
        self.rest = b""
        self.ejects = 0
        self.returns = 0

    def lines(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.off)
                data = f.read(1 << 24)
        except OSError:
            return []
        self.off += len(data)
        data = self.rest + data
        cut = data.rfind(b"\n") + 1
        self.rest = data[cut:]
        out = data[:cut].decode("utf-8", "replace").splitlines()
        for line in out:
            self.ejects += "ejected, retry in" in line
            self.returns += "back on the ring" in line
        return out

    def wait_reload(self, timeout):
        """'applied', 'refused: LINE', or None when neither came in time
        (call lines() before the SIGHUP to skip older lines)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines():
                if self.APPLIED.search(line):
                    return "applied"
                if "reload refused" in line:
                    return "refused: " + line
            time.sleep(0.02)
        return None


# ---------------------------------------------------------------- the run

class Run:
    """Everything one soak run shares: backends, memring, the models, the
    halt flag and the failures (the first few; the first one halts)."""

    def __init__(self, test):
        self.test = test
        self.halt = threading.Event()
        self.lock = threading.Lock()
        self.failures = []
        self.dir = tempfile.mkdtemp(prefix="memring-chaos-")
        test.addCleanup(shutil.rmtree, self.dir, True)
        self.conf = os.path.join(self.dir, "memring.yml")
        self.strict = PoolModel("strict", b"s", True)
        self.chaos = PoolModel("chaos", b"c", False)
        self.s_backends = []
        self.c_backends = []
        for i in range(3):
            self.s_backends.append(self._backend("S%d" % i))
        for i in range(4):
            self.c_backends.append(self._backend("C%d" % i))
        self.cr = self._backend("CR")     # behind the relay
        self.c_backends.append(self.cr)
        self.relay = Relay(self.cr.port)
        test.addCleanup(self.relay.stop)
        self.fake = ChaosFake()
        test.addCleanup(self.fake.stop)
        # pool chaos's members: names of c_backends (C3 starts out),
        # "relay", "fake".
        self.c_members = ["C0", "C1", "C2", "relay", "fake"]
        self.mr = None
        self.asan = False

    def _backend(self, name):
        b = Backend(name)
        # SIGCONT first: a stopped memcached would sit out SIGTERM.
        self.test.addCleanup(lambda: (b.signal(signal.SIGCONT),
                                      b.mc.stop()))
        return b

    def fail(self, msg):
        with self.lock:
            if len(self.failures) < 10:
                self.failures.append(msg)
        self.halt.set()

    def failed(self):
        return bool(self.failures)

    def c_addrs(self):
        byname = {b.name: b.addr for b in self.c_backends}
        byname["relay"] = self.relay.addr
        byname["fake"] = self.fake.addr
        return [byname[n] for n in self.c_members]

    def write_conf(self):
        common = dict(hash="md5", distribution="ketama", timeout=TIMEOUT_MS)
        text = ("# it_chaos.py: rewritten by the chaos driver; only pool "
                "chaos changes.\n" +
                h.pool_yaml("strict", self.strict.port,
                            [b.addr for b in self.s_backends], **common,
                            auto_eject_hosts=False,
                            server_retry_timeout=1000,
                            server_failure_limit=2, server_connections=1) +
                h.pool_yaml("chaos", self.chaos.port, self.c_addrs(),
                            **common, auto_eject_hosts=True,
                            server_retry_timeout=RETRY_MS,
                            server_failure_limit=2, server_connections=2))
        os.replace(h.write_conf(self.conf + ".tmp", text), self.conf)

    def start_memring(self):
        def make():
            self.strict.port, self.chaos.port = h.free_port(), h.free_port()
            self.write_conf()
            self.mr = h.Memring(self.conf, wait=[self.strict.port,
                                                 self.chaos.port],
                                log=os.path.join(self.dir, "memring.log"))
            self.test.addCleanup(self.mr.stop)
            return self.mr

        h.start_on_free_ports(make, timeout=10)
        self.tail = LogTail(self.mr.log)
        with open(self.mr.argv[0], "rb") as f:
            self.asan = b"__asan_init" in f.read()

    def rss_kib(self):
        try:
            return h.proc_kib(self.mr.pid, "VmRSS")
        except AssertionError:      # exiting: no VmRSS line any more
            return 0

    def reload(self):
        """Rewrites the config, SIGHUP, waits for the 'applied' line."""
        self.write_conf()
        self.tail.lines()
        self.mr.proc.send_signal(signal.SIGHUP)
        got = self.tail.wait_reload(15)
        if got != "applied":
            self.fail("reload with pool chaos = %s: %s"
                      % (self.c_members, got or "no applied line in 15 s"))
        return got == "applied"


class Op:
    """One request of a batch and what its reply may be."""

    __slots__ = ("kind", "cmd", "keys", "noreply", "rec", "delta", "data")

    def __init__(self, kind, cmd, keys, data, noreply=False, rec=None,
                 delta=0):
        self.kind = kind        # store, get, delete, arith, version
        self.cmd = cmd
        self.keys = keys
        self.data = data
        self.noreply = noreply
        self.rec = rec
        self.delta = delta


class Worker(threading.Thread):
    """A client: batches of 5-40 pipelined requests, to one pool at a time,
    over its own connection to each; every reply checked as it is read.
    Sometimes closes a connection with a batch unread (memring must
    swallow its replies) or reconnects cleanly."""

    def __init__(self, run, wid, end):
        super().__init__(daemon=True, name="chaos-worker-%d" % wid)
        self.run_ = run
        self.wid = wid
        self.end = end
        self.rng = random.Random(SEED * 1000 + wid)
        self.seq = 0
        self.conns = {}
        self.cas = {}           # (pool, key) -> last cas unique seen
        self.stats = collections.Counter()

    def run(self):
        try:
            self.loop()
        except ChaosFailure as e:
            self.run_.fail("worker %d: %s" % (self.wid, e))
        except Exception:
            self.run_.fail("worker %d crashed:\n%s"
                           % (self.wid, traceback.format_exc()))
        finally:
            for c in self.conns.values():
                if c is not None:
                    c.close()

    def loop(self):
        pools = (self.run_.strict, self.run_.chaos)
        for _ in range(10 ** 9):
            if self.run_.halt.is_set() or time.monotonic() > self.end:
                break
            pm = self.rng.choice(pools)
            conn = self.connect(pm)
            ops = self.batch(pm)
            with pm.lock:
                t_send = time.monotonic()
                for op in ops:
                    if op.rec is not None:
                        op.rec = pm.sent(*op.rec, t_send)
            try:
                conn.send(b"".join(op.data for op in ops))
            except OSError as e:
                raise ChaosFailure("%s: sending a batch: %r (memring closed "
                                   "the client?)" % (pm.name, e)) from None
            self.stats["requests"] += len(ops)
            self.stats["batches"] += 1
            if self.rng.random() < 0.02:
                self.stats["abandoned"] += 1
                conn.close()
                self.conns[pm.name] = None
                continue
            self.read_batch(pm, conn, ops, t_send)
            if self.rng.random() < 0.02:
                self.stats["reconnects"] += 1
                self.finish_conn(pm)
            time.sleep(self.rng.uniform(0.002, 0.02))
        for pm in pools:
            self.finish_conn(pm)

    def connect(self, pm):
        conn = self.conns.get(pm.name)
        if conn is None:
            try:
                conn = h.Conn(pm.port, timeout=BATCH_TIMEOUT)
            except OSError as e:
                raise ChaosFailure("%s: connect to memring: %r"
                                   % (pm.name, e)) from None
            self.conns[pm.name] = conn
        else:
            self.check_quiet(pm, conn)
        return conn

    def check_quiet(self, pm, conn):
        """Rule 1: nothing arrived after the last batch's sentinel."""
        extra = conn.buf
        conn.sock.setblocking(False)
        try:
            extra += conn.sock.recv(4096)
            closed = not extra
        except BlockingIOError:
            closed = False
        except OSError as e:
            raise ChaosFailure("%s: client connection: %r" % (pm.name, e))
        finally:
            conn.sock.settimeout(conn.timeout)
        if closed:
            raise ChaosFailure("%s: memring closed a client connection"
                               % pm.name)
        if extra:
            raise ChaosFailure("%s: bytes after a batch's last reply: %r"
                               % (pm.name, extra[:200]))

    def finish_conn(self, pm):
        conn = self.conns.get(pm.name)
        if conn is None:
            return
        self.conns[pm.name] = None
        try:
            extra = conn.read_all(quiet=0.2, timeout=1)
        finally:
            conn.close()
        if extra:
            raise ChaosFailure("%s: bytes after a batch's last reply: %r"
                               % (pm.name, extra[:200]))

    # ------------------------------------------------ requests

    def next_seq(self):
        self.seq += 1
        return self.seq

    def padlen(self):
        r = self.rng.random()
        if r < 0.9:
            return self.rng.randrange(0, 100)
        if r < 0.99:
            return self.rng.randrange(100, 5000)
        return self.rng.randrange(5000, len(PAD))

    def batch(self, pm):
        ops = [self.op(pm) for _ in range(self.rng.randrange(5, 41))]
        if self.rng.random() < 0.1:
            ops.insert(self.rng.randrange(len(ops)),
                       Op("version", b"version", (), b"version\r\n"))
        ops.append(Op("version", b"version", (), b"version\r\n"))
        return ops

    def op(self, pm):
        rng = self.rng
        r = rng.random()
        nr = rng.random() < 0.1
        nrw = b" noreply" if nr else b""
        key = rng.choice(pm.keys)
        if r < 0.31:
            cmd = b"set" if r < 0.25 else rng.choice((b"add", b"replace"))
            seq = self.next_seq()
            val, flags = make_value(key, self.wid, seq, self.padlen())
            data = b"%s %s %d 0 %d%s\r\n%s\r\n" % (cmd, key, flags, len(val),
                                                   nrw, val)
            return Op("store", cmd, (key,), data, nr,
                      (key, self.wid, seq, cmd))
        if r < 0.37:
            seq = self.next_seq()
            sfx = make_suffix(key, self.wid, seq)
            data = b"append %s 0 0 %d%s\r\n%s\r\n" % (key, len(sfx), nrw,
                                                       sfx)
            return Op("store", b"append", (key,), data, nr,
                      (key, self.wid, seq, b"append"))
        if r < 0.41:
            seq = self.next_seq()
            val, flags = make_value(key, self.wid, seq, self.padlen())
            unique = self.cas.get((pm.name, key), rng.randrange(1, 1 << 20))
            data = b"cas %s %d 0 %d %d\r\n%s\r\n" % (key, flags, len(val),
                                                     unique, val)
            return Op("store", b"cas", (key,), data, False,
                      (key, self.wid, seq, b"cas"))
        if r < 0.47:
            seq = self.next_seq()
            return Op("delete", b"delete", (key,),
                      b"delete %s%s\r\n" % (key, nrw), nr,
                      (key, self.wid, seq, b"delete"))
        if r < 0.60:
            ck = rng.choice(pm.counters)
            p = pm.cmodel[ck][0]
            delta = p * rng.randrange(1, 20)
            cmd = b"incr" if rng.random() < 0.75 else b"decr"
            if cmd == b"incr":
                with pm.lock:
                    pm.cmodel[ck][1] += delta   # before it can land
            return Op("arith", cmd, (ck,),
                      b"%s %s %d%s\r\n" % (cmd, ck, delta, nrw), nr,
                      delta=delta if cmd == b"incr" else 0)
        if r < 0.63:
            ck = rng.choice(pm.counters)
            return Op("store", b"add", (ck,),
                      b"add %s 0 0 1%s\r\n0\r\n" % (ck, nrw), nr)
        if r < 0.80:
            cmd = b"gets" if rng.random() < 0.3 else b"get"
            k = rng.choice(pm.keys + pm.counters[:2])
            return Op("get", cmd, (k,), b"%s %s\r\n" % (cmd, k))
        cmd = b"gets" if rng.random() < 0.3 else b"get"
        ks = rng.sample(pm.keys + pm.counters, rng.randrange(2, 9))
        return Op("get", cmd, tuple(ks),
                  b"%s %s\r\n" % (cmd, b" ".join(ks)))

    # ------------------------------------------------ replies

    def read_batch(self, pm, conn, ops, t_send):
        deadline = t_send + BATCH_TIMEOUT
        for i, op in enumerate(ops):
            if op.noreply:
                self.stats["noreply"] += 1
                continue
            try:
                reply = conn.read_reply(
                    max(0.001, deadline - time.monotonic()))
            except h.ProtocolError as e:
                raise ChaosFailure(
                    "%s: no reply to request %d of %d (%r) within %.0f s "
                    "of sending: %s" % (pm.name, i, len(ops), op.data[:80],
                                        BATCH_TIMEOUT, e)) from None
            try:
                self.check(pm, op, reply, t_send)
            except ChaosFailure as e:
                raise ChaosFailure("%s: request %d of %d %r: reply %r: %s"
                                   % (pm.name, i, len(ops), op.data[:100],
                                      reply[:200], e)) from None
            self.stats["replies"] += 1

    def check(self, pm, op, reply, t_send):
        """Rule 1 for one reply (and rules 2, 3 for what it carries). The
        replies allowed are memcached's own for the command, plus one
        SERVER_ERROR line for anything sent to a backend (README, "When a
        backend fails": a backend fault is answered with exactly one
        SERVER_ERROR line in the request's place). A backend's reply of
        the wrong kind (the fake's STORED to a delete or an incr) must
        have become `SERVER_ERROR unexpected reply from server`, so it
        fails here like any other misplaced reply."""
        now = time.monotonic()
        if reply.startswith(b"SERVER_ERROR "):
            # A write so answered stays "maybe applied": its Write never
            # settles (README: SERVER_ERROR means the outcome is unknown).
            # The sentinel never reaches a backend: no error for it.
            if op.kind == "version" or reply.count(b"\r\n") != 1:
                raise ChaosFailure("SERVER_ERROR not allowed here")
            self.stats["server_error_" + pm.name] += 1
            return
        if op.kind == "version":
            if not reply.startswith(b"VERSION ") or \
                    reply.count(b"\r\n") != 1:
                raise ChaosFailure("the sentinel's reply is not VERSION")
            return
        if op.kind == "store":
            if reply not in STORE_OK[op.cmd]:
                raise ChaosFailure("not a %s reply" % op.cmd.decode())
            if op.rec is not None:
                with pm.lock:
                    op.rec.t_ack = now
                    op.rec.effective = reply == b"STORED\r\n"
            return
        if op.kind == "delete":
            if reply not in (b"DELETED\r\n", b"NOT_FOUND\r\n"):
                raise ChaosFailure("not a delete reply")
            with pm.lock:
                op.rec.t_ack = now
                op.rec.effective = True
            return
        if op.kind == "arith":
            if reply == b"NOT_FOUND\r\n":
                return
            if not reply[:-2].isdigit() or reply.count(b"\r\n") != 1:
                raise ChaosFailure("not an incr/decr reply")
            with pm.lock:
                pm.check_counter(op.keys[0], reply[:-2], op.delta)
            return
        self.check_get(pm, op, reply, t_send)

    def check_get(self, pm, op, reply, t_send):
        """A get's values: the keys asked, in order (memring gathers a
        multi-get in key order); any key may be missing (a miss, a failed
        server's part of a multi-get, a server restarted empty)."""
        values = parse_get(reply, op.cmd == b"gets")
        at = 0
        for key, flags, value, unique in values:
            # Keys in request order, each once, none not asked for.
            while at < len(op.keys) and op.keys[at] != key:
                at += 1
            if at == len(op.keys):
                raise ChaosFailure("value for %r: not asked for, repeated "
                                   "or out of order" % key)
            at += 1
            self.stats["values"] += 1
            if unique is not None:
                self.cas[(pm.name, key)] = unique
            with pm.lock:
                if key in pm.cmodel:
                    if flags != 0:
                        raise ChaosFailure("counter %r with flags %d"
                                           % (key, flags))
                    pm.check_counter(key, value)
                    continue
                writes = parse_value(key, value, flags)
                pm.check_written(key, writes)
                if pm.strict:
                    self.stats["fresh_checks"] += pm.check_fresh(
                        key, writes[0][0], writes[0][1], t_send)
        self.stats["misses"] += len(op.keys) - len(values)


# ---------------------------------------------------------------- chaos

class Chaos(threading.Thread):
    """Every EVENT_GAP seconds one random fault (seeded); the faults that
    last (SIGSTOP, a dead server, a relay mode) are undone by a pending
    action due later. finish() runs every pending action at once."""

    KINDS = ("s_sigstop", "s_sigkill", "s_sigterm", "c_sigstop",
             "c_sigkill", "relay", "fake", "reload")
    WEIGHTS = (3, 1, 1, 2, 1, 2, 2, 3)

    def __init__(self, run, end):
        super().__init__(daemon=True, name="chaos-driver")
        self.run_ = run
        self.end = end
        self.rng = random.Random(SEED)
        self.pending = []           # [due, n, fn, args], sorted by due
        self.n = 0
        self.events = collections.Counter()

    def later(self, delay, fn, *args):
        self.n += 1
        self.pending.append([time.monotonic() + delay, self.n, fn, args])
        self.pending.sort(key=lambda p: (p[0], p[1]))

    def run(self):
        try:
            nxt = time.monotonic() + self.rng.uniform(*EVENT_GAP)
            for _ in range(10 ** 9):
                now = time.monotonic()
                if self.run_.halt.is_set() or now > self.end:
                    break
                while self.pending and self.pending[0][0] <= now:
                    _, _, fn, args = self.pending.pop(0)
                    fn(*args)
                if now >= nxt:
                    kind = self.rng.choices(self.KINDS, self.WEIGHTS)[0]
                    done = getattr(self, "ev_" + kind)()
                    self.events[kind if done else "skipped"] += 1
                    self.run_.fake.prune()
                    nxt = time.monotonic() + self.rng.uniform(*EVENT_GAP)
                time.sleep(0.02)
        except Exception:
            self.run_.fail("chaos driver crashed:\n%s"
                           % traceback.format_exc())

    def finish(self):
        """Undo every lasting fault now: SIGCONT, restarts, relay back to
        normal (bounded: each restart is tried a few times)."""
        for _ in range(100):
            if not self.pending:
                break
            _, _, fn, args = self.pending.pop(0)
            fn(*args)
        self.run_.relay.set_mode("normal")
        for b in self.run_.s_backends + self.run_.c_backends:
            if b.state == "stopped":
                self.cont(b)

    # ------------------------------------------------ backend faults

    def pick(self, backends):
        up = [b for b in backends if b.state == "up"]
        return self.rng.choice(up) if up else None

    def sigstop(self, backends):
        b = self.pick(backends)
        if b is None:
            return False
        b.signal(signal.SIGSTOP)
        b.state = "stopped"
        self.later(self.rng.uniform(0.2, 2.0), self.cont, b)
        return True

    def cont(self, b):
        if b.state == "stopped":
            b.signal(signal.SIGCONT)
            b.state = "up"

    def kill(self, backends, sig):
        b = self.pick(backends)
        if b is None:
            return False
        b.signal(sig)
        b.state = "dead"
        b.restart_tries = 0
        self.later(self.rng.uniform(0.1, 1.5), self.restart, b)
        return True

    def restart(self, b):
        if b.state != "dead":
            return
        b.mc.stop()             # reaps it (SIGKILL if SIGTERM was slow)
        try:
            b.mc.start(port=b.port)
            b.state = "up"
            self.events["restarts"] += 1
        except RuntimeError:
            # Another process took the port while it was free.
            b.restart_tries += 1
            self.events["restart_failures"] += 1
            if b.restart_tries < 5:
                self.later(0.5, self.restart, b)
            else:
                b.state = "lost"

    def ev_s_sigstop(self):
        return self.sigstop(self.run_.s_backends)

    def ev_s_sigkill(self):
        return self.kill(self.run_.s_backends, signal.SIGKILL)

    def ev_s_sigterm(self):
        return self.kill(self.run_.s_backends, signal.SIGTERM)

    def ev_c_sigstop(self):
        return self.sigstop(self.run_.c_backends)

    def ev_c_sigkill(self):
        return self.kill(self.run_.c_backends, signal.SIGKILL)

    # ------------------------------------------------ relay, fake, reload

    def ev_relay(self):
        mode = self.rng.choice(("normal", "delay", "delay", "blackhole"))
        ms = self.rng.randrange(50, 501)
        self.run_.relay.set_mode(mode, ms)
        self.events["relay_" + mode] += 1
        if mode != "normal":
            self.later(self.rng.uniform(0.5, 3.0),
                       self.run_.relay.set_mode, "normal")
        return True

    def ev_fake(self):
        mode = self.rng.choice(FAKE_MODES)
        self.run_.fake.mode = mode
        self.events["fake_" + mode] += 1
        return True

    def ev_reload(self):
        """Adds or removes one server of pool chaos (the relay and the
        fake among them), keeping at least two plain memcached in it."""
        r = self.run_
        names = [b.name for b in r.c_backends if b is not r.cr]
        name = self.rng.choice(names + ["relay", "fake"])
        if name in r.c_members:
            plain = [n for n in r.c_members if n in names]
            if name in names and len(plain) <= 2:
                return False
            r.c_members.remove(name)
            self.events["reload_remove"] += 1
        else:
            r.c_members.append(name)
            self.events["reload_add"] += 1
        return r.reload()


# ---------------------------------------------------------------- the test

class TestChaos(unittest.TestCase):

    def test_chaos_soak(self):
        sys.stderr.write("chaos: seed %d (MEMRING_CHAOS_SEED=%d replays "
                         "it), %.0f s\n" % (SEED, SEED, SECONDS))
        run = Run(self)
        run.start_memring()
        limit_mib = RSS_LIMIT_MIB + (ASAN_EXTRA_MIB if run.asan else 0)
        t0 = time.monotonic()
        end = t0 + SECONDS
        workers = [Worker(run, i, end) for i in range(NWORKERS)]
        chaos = Chaos(run, end)
        for t in workers + [chaos]:
            t.start()
        max_rss = 0
        try:
            for _ in range(10 ** 9):
                if run.halt.is_set() or time.monotonic() > end:
                    break
                if not run.mr.alive():
                    run.fail("memring exited during the run (status %s)"
                             % run.mr.proc.poll())
                    break
                try:
                    rss = run.rss_kib()
                except OSError:
                    continue            # exited: the next turn says so
                max_rss = max(max_rss, rss)
                if rss > limit_mib * 1024:
                    run.fail("memring RSS %d KiB over %d MiB"
                             % (rss, limit_mib))
                time.sleep(0.5)
        finally:
            run.halt.set()
            chaos.join(30)
            chaos.finish()
            for w in workers:
                w.join(BATCH_TIMEOUT + 10)
                if w.is_alive():
                    run.fail("worker %d did not finish (a read hung past "
                             "its timeout?)" % w.wid)
        took = time.monotonic() - t0

        if not run.failed() and run.mr.alive():
            max_rss = max(max_rss, run.rss_kib())
            self.settle(run)
        if not run.failed() and run.mr.alive():
            self.final_checks(run)
        if not run.failed():
            self.stop_memring(run)

        stats = collections.Counter()
        for w in workers:
            stats.update(w.stats)
        run.tail.lines()
        sys.stderr.write(
            "chaos: seed %d, %.1f s: %d requests in %d batches (%d "
            "noreply, %d batches abandoned, %d reconnects), %d replies "
            "checked, SERVER_ERROR %d strict / %d chaos, %d values "
            "checked (%d for freshness), %d misses; memring max RSS %.1f "
            "MiB (limit %d%s); ejections %d, returns %d; relay accepted "
            "%d connections, the fake %d\n"
            "chaos events: %s\n"
            % (SEED, took, stats["requests"], stats["batches"],
               stats["noreply"], stats["abandoned"], stats["reconnects"],
               stats["replies"], stats["server_error_strict"],
               stats["server_error_chaos"], stats["values"],
               stats["fresh_checks"], stats["misses"], max_rss / 1024,
               limit_mib, ", ASan build" if run.asan else "",
               run.tail.ejects, run.tail.returns, run.relay.accepted,
               run.fake.accepted,
               ", ".join("%s %d" % kv for kv in sorted(chaos.events.items()))))
        if run.failed():
            sys.stderr.write("--- memring log (tail)\n%s\n--- end of log\n"
                             % run.mr.log_text()[-4000:])
        self.assertEqual(run.failures, [], "seed %d" % SEED)
        # The run did something: traffic on both pools, and faults.
        self.assertGreater(stats["replies"], 100)
        self.assertGreater(sum(chaos.events.values()), 0)

    def settle(self, run):
        """Pool chaos back to plain memcached only (the relay and the fake
        out), every server running."""
        run.c_members = [b.name for b in run.c_backends if b is not run.cr]
        run.reload()

    def final_checks(self, run):
        """Rule 5: a fresh connection to each pool answers, and writes and
        reads there work again once the servers are back (ejected ones
        return after server_retry_timeout, backoff ends within 1 s)."""
        lost = [b.name for b in run.s_backends + run.c_backends
                if b.state == "lost"]
        if lost:
            sys.stderr.write("chaos: NOTE: %s could not be restarted on "
                             "its port (taken meanwhile): pool strict's "
                             "final check is skipped\n" % lost)
        for pm in (run.strict, run.chaos):
            if lost and pm is run.strict:
                continue
            deadline = time.monotonic() + 15
            for _ in range(200):
                why = self.serves(pm)
                if why is None or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            if why is not None:
                run.fail("%s: not serving 15 s after the chaos ended: %s"
                         % (pm.name, why))

    def serves(self, pm):
        """None when a fresh connection to pm answers version, stores 40
        keys and reads them all back; else what went wrong."""
        keys = [b"final:%s:%d" % (pm.name.encode(), i) for i in range(40)]
        with h.Conn(pm.port, timeout=10) as c:
            v = c.call(b"version\r\n")
            if not v.startswith(b"VERSION "):
                return "version: %r" % v
            c.send(b"".join(b"set %s 0 0 %d\r\n%s\r\n" % (k, len(k), k)
                            for k in keys))
            sets = c.read_replies(len(keys), timeout=10)
            bad = [r for r in sets if r != b"STORED\r\n"]
            if bad:
                return "set: %r" % bad[:3]
            reply = c.call(b"get " + b" ".join(keys) + b"\r\n", timeout=10)
            got = [(k, v) for k, _, v, _ in parse_get(reply, False)]
            if got != [(k, k) for k in keys]:
                return "get: %d of %d values back" % (len(got), len(keys))
        return None

    def stop_memring(self, run):
        """Rule 5: SIGTERM ends memring with status 0 and no sanitizer
        report (ASan and UBSan write theirs to stderr)."""
        run.mr.proc.send_signal(signal.SIGTERM)
        try:
            status = run.mr.proc.wait(30)
        except Exception:
            status = None
        out = run.mr.output()
        marks = [m for m in SANITIZER_MARKS if m in out]
        if status != 0 or marks:
            run.fail("memring on SIGTERM: exit status %s, sanitizer: %s\n%s"
                     % (status, marks, out[-4000:]))


if __name__ == "__main__":
    sys.exit(h.run_tests(globals()))
