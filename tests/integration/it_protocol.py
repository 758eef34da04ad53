"""memcached text protocol through memring: a pool of 3 real memcached
servers behind memring, compared reply for reply with one plain memcached
(the reference) fed the same bytes."""

import os
import random
import stat
import sys
import threading
import time
import unittest

import harness as h

CL = None       # the shared cluster: 3 memcached behind memring
REF = None      # a plain memcached, the oracle

SENTINEL = b"set __sentinel 0 0 8\r\nSENTINEL\r\nget __sentinel\r\n"
SENTINEL_REPLY = b"STORED\r\nVALUE __sentinel 0 8\r\nSENTINEL\r\nEND\r\n"


def setUpModule():
    global CL, REF
    CL, REF = h.start_shared()


class ProxyCase(unittest.TestCase):
    """A fresh connection to memring (self.mr) and to the reference
    (self.mc) per test; all servers flushed directly first."""

    def setUp(self):
        for s in CL.servers + [REF]:
            s.flush()
        self.mr = CL.conn()
        self.addCleanup(self.mr.close)
        self.mc = REF.conn()
        self.addCleanup(self.mc.close)

    def both(self, data, count=1):
        return (self.mr.call(data, count=count),
                self.mc.call(data, count=count))

    def assertSame(self, data, count=1):
        """memring's replies equal the reference's (cas uniques masked)."""
        got, want = self.both(data, count)
        self.assertEqual(h.strip_cas(got), h.strip_cas(want), data[:200])
        return got

    def assertUsable(self, conn):
        self.assertEqual(conn.call(SENTINEL, count=2), SENTINEL_REPLY)

    def spread_keys(self, n=30, prefix=b"spread"):
        """Set n keys through memring; assert every server got some."""
        keys = [b"%s:%d" % (prefix, i) for i in range(n)]
        for k in keys:
            self.assertEqual(self.mr.call(b"set %s 5 0 %d\r\n%s\r\n"
                                          % (k, len(k), k)), b"STORED\r\n")
        for s in CL.servers:
            held = s.raw_get_many(keys)
            self.assertTrue(held, "server %s holds none of %d keys"
                            % (s.addr, n))
            self.assertTrue(all(held[k] == k for k in held))
        return keys


class TestStorage(ProxyCase):

    def test_single_key_commands_match_memcached(self):
        script = [
            b"get a\r\n", b"set a 3 0 2\r\nv1\r\n", b"get a\r\n",
            b"add a 0 0 1\r\nx\r\n", b"add b 7 0 1\r\nx\r\n",
            b"replace c 0 0 1\r\nx\r\n", b"replace a 4 0 2\r\nv2\r\n",
            b"append a 0 0 3\r\n+ap\r\n", b"prepend a 0 0 3\r\npp+\r\n",
            b"append nokey 0 0 1\r\nx\r\n", b"prepend nokey 0 0 1\r\nx\r\n",
            b"get a\r\n", b"gets a\r\n", b"gat 100 a\r\n", b"gats 100 a\r\n",
            b"touch a 100\r\n", b"touch nokey 100\r\n",
            b"set n 0 0 2\r\n10\r\n", b"incr n 5\r\n", b"decr n 3\r\n",
            b"decr n 100\r\n", b"incr nokey 1\r\n", b"decr nokey 1\r\n",
            b"incr a 1\r\n", b"set n 0 0 20\r\n18446744073709551615\r\n",
            b"incr n 2\r\n", b"delete a\r\n", b"delete a\r\n",
            b"get a\r\n", b"cas nokey 0 0 1 1\r\nx\r\n",
            b"set " + b"k" * 250 + b" 0 0 1\r\nx\r\n",
            b"get " + b"k" * 250 + b"\r\n",
            b"set z 4294967295 0 1\r\nx\r\n", b"get z\r\n",
        ]
        for req in script:
            self.assertSame(req)

    def test_cas_with_fresh_and_stale_unique(self):
        for conn in (self.mr, self.mc):
            self.assertEqual(conn.call(b"set c 0 0 1\r\n1\r\n"),
                             b"STORED\r\n")
            unique = int(conn.call(b"gets c\r\n").split(b"\r\n")[0].split()[4])
            self.assertEqual(conn.call(b"cas c 0 0 1 %d\r\n2\r\n" % unique),
                             b"STORED\r\n")
            self.assertEqual(conn.call(b"cas c 0 0 1 %d\r\n3\r\n" % unique),
                             b"EXISTS\r\n")
            self.assertEqual(conn.call(b"get c\r\n"),
                             h.value_reply(b"c", b"2"))

    def test_cas_unique_is_the_servers(self):
        self.mr.call(b"set u 0 0 1\r\nx\r\n")
        got = self.mr.call(b"gets u\r\n")
        direct = CL.owner_of(b"u").call(b"gets u\r\n")
        self.assertEqual(got, direct)

    def test_noreply_sends_nothing_and_takes_effect(self):
        # (noreply request, check whose reply must come next)
        cases = [
            (b"set k 1 0 1 noreply\r\nA\r\n", b"get k\r\n"),
            (b"add k 0 0 1 noreply\r\nB\r\n", b"get k\r\n"),
            (b"add k2 2 0 1 noreply\r\nB\r\n", b"get k2\r\n"),
            (b"replace k 3 0 1 noreply\r\nC\r\n", b"get k\r\n"),
            (b"replace nokey 0 0 1 noreply\r\nC\r\n", b"get nokey\r\n"),
            (b"append k 0 0 1 noreply\r\nD\r\n", b"get k\r\n"),
            (b"prepend k 0 0 1 noreply\r\nE\r\n", b"get k\r\n"),
            (b"cas k 0 0 1 1 noreply\r\nF\r\n", b"get k\r\n"),
            (b"set n 0 0 1 noreply\r\n5\r\n", b"get n\r\n"),
            (b"incr n 10 noreply\r\n", b"get n\r\n"),
            (b"decr n 3 noreply\r\n", b"get n\r\n"),
            (b"incr nokey 1 noreply\r\n", b"get nokey\r\n"),
            (b"touch k 100 noreply\r\n", b"get k\r\n"),
            (b"delete k noreply\r\n", b"get k\r\n"),
            (b"delete k noreply\r\n", b"get k\r\n"),
            (b"verbosity 1 noreply\r\n", b"get n\r\n"),
            (b"flush_all noreply\r\n", b"get n\r\n"),
        ]
        for req, check in cases:
            self.assertSame(req + check)

    def test_cas_noreply_with_fresh_unique(self):
        self.mr.call(b"set k 0 0 1\r\nA\r\n")
        unique = int(self.mr.call(b"gets k\r\n").split()[4])
        self.assertEqual(self.mr.call(b"cas k 0 0 1 %d noreply\r\nB\r\n"
                                      b"get k\r\n" % unique),
                         b"VALUE k 0 1\r\nB\r\nEND\r\n")

    def test_noreply_effect_is_on_the_owning_server(self):
        self.mr.send(b"set nr 9 0 3 noreply\r\nabc\r\n")
        self.assertEqual(self.mr.call(b"get nr\r\n"),
                         h.value_reply(b"nr", b"abc", 9))
        self.assertEqual(CL.owner_of(b"nr").raw_get(b"nr"), b"abc")


class TestMultiGet(ProxyCase):

    def request(self, keys):
        rnd = random.Random(1)
        req = list(keys) + [b"miss:%d" % i for i in range(5)]
        req += [keys[0], keys[-1], keys[0]]    # duplicates, repeated
        rnd.shuffle(req)
        return req

    def test_get_many_keys_across_servers_in_request_order(self):
        keys = self.spread_keys()
        req = self.request(keys)
        want = b"".join(h.value_block(k, k, 5) for k in req
                        if not k.startswith(b"miss:")) + b"END\r\n"
        self.assertEqual(self.mr.call(b"get " + b" ".join(req) + b"\r\n"),
                         want)
        for k in keys:
            self.mc.call(b"set %s 5 0 %d\r\n%s\r\n" % (k, len(k), k))
        self.assertSame(b"get " + b" ".join(req) + b"\r\n")

    def test_gets_gat_gats_across_servers(self):
        keys = self.spread_keys()
        req = self.request(keys)
        for k in keys:
            self.mc.call(b"set %s 5 0 %d\r\n%s\r\n" % (k, len(k), k))
        for cmd in (b"gets ", b"gat 600 ", b"gats 600 "):
            got = self.assertSame(cmd + b" ".join(req) + b"\r\n")
            self.assertEqual(h.parse_values(h.strip_cas(got)),
                             [(k, 5, k) for k in req
                              if not k.startswith(b"miss:")])

    def test_gets_uniques_come_from_each_owner(self):
        keys = self.spread_keys(12)
        got = self.mr.call(b"gets " + b" ".join(keys) + b"\r\n")
        lines = [l for l in got.split(b"\r\n") if l.startswith(b"VALUE")]
        for line in lines:
            key = line.split()[1]
            direct = CL.owner_of(key).call(b"gets " + key + b"\r\n")
            self.assertEqual(direct.split(b"\r\n")[0], line)

    def test_all_misses_is_one_end(self):
        self.assertSame(b"get " + b" ".join(b"none:%d" % i
                                            for i in range(40)) + b"\r\n")


class TestPipeline(ProxyCase):

    def build(self, n=3000, seed=7):
        """n mixed requests in one byte string, and the replies a memcached
        gives, computed from a model of the store."""
        rnd = random.Random(seed)
        keys = [b"p:%d" % i for i in range(120)]
        counters = [b"c:%d" % i for i in range(8)]
        store = {}
        reqs, replies = [], []
        for i in range(n):
            op = rnd.random()
            k = rnd.choice(keys)
            if op < 0.30:
                v = (b"v%d-" % i) * rnd.randint(1, 40)
                f = rnd.randint(0, 9)
                noreply = rnd.random() < 0.1
                reqs.append(b"set %s %d 0 %d%s\r\n%s\r\n"
                            % (k, f, len(v), b" noreply" if noreply else b"",
                               v))
                store[k] = (f, v)
                if not noreply:
                    replies.append(b"STORED\r\n")
            elif op < 0.50:
                reqs.append(b"get %s\r\n" % k)
                replies.append(self.values(store, [k]))
            elif op < 0.70:
                ks = [rnd.choice(keys) for _ in range(rnd.randint(2, 8))]
                reqs.append(b"get %s\r\n" % b" ".join(ks))
                replies.append(self.values(store, ks))
            elif op < 0.80:
                reqs.append(b"delete %s\r\n" % k)
                replies.append(b"DELETED\r\n" if store.pop(k, None)
                               else b"NOT_FOUND\r\n")
            else:
                c = rnd.choice(counters)
                if c not in store:
                    reqs.append(b"set %s 0 0 1\r\n0\r\n" % c)
                    replies.append(b"STORED\r\n")
                    store[c] = (0, b"0")
                delta = rnd.randint(1, 1000)
                v = b"%d" % (int(store[c][1]) + delta)
                store[c] = (0, v)
                reqs.append(b"incr %s %d\r\n" % (c, delta))
                replies.append(v + b"\r\n")
        return b"".join(reqs), replies

    @staticmethod
    def values(store, ks):
        return b"".join(h.value_block(k, store[k][1], store[k][0]) for k in ks
                        if k in store) + b"END\r\n"

    def pipeline(self, conn, data, n):
        """One sendall from a thread while this thread reads n replies (so
        neither side can stall on a full socket buffer)."""
        errors = []

        def send():
            try:
                conn.send(data)
            except OSError as e:
                errors.append(e)
        t = threading.Thread(target=send, daemon=True)
        t.start()
        try:
            return conn.read_replies(n, timeout=20)
        finally:
            t.join(5)
            self.assertFalse(errors)

    def check(self, conn, data, want):
        got = self.pipeline(conn, data, len(want))
        for i, (g, w) in enumerate(zip(got, want)):
            self.assertEqual(g, w, "reply %d of %d" % (i, len(want)))
        self.assertEqual(conn.call(b"get p:none\r\n"), b"END\r\n")

    def test_model_matches_memcached(self):
        data, want = self.build()
        self.check(self.mc, data, want)

    def test_thousands_of_mixed_requests_in_one_write(self):
        data, want = self.build()
        self.check(self.mr, data, want)

    def test_pipelined_on_many_connections_at_once(self):
        conns = [CL.conn() for _ in range(8)]
        for c in conns:
            self.addCleanup(c.close)
        results = {}

        def run(i, c):
            data, want = self.build(400, seed=100 + i)
            data = data.replace(b" p:", b" p%d:" % i).replace(b" c:",
                                                             b" c%d:" % i)
            want = [w.replace(b" p:", b" p%d:" % i) for w in want]
            try:
                results[i] = self.pipeline(c, data, len(want)) == want
            except Exception as e:     # reported below
                results[i] = e
        threads = [threading.Thread(target=run, args=(i, c), daemon=True)
                   for i, c in enumerate(conns)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(results, {i: True for i in range(len(conns))})


class TestValues(ProxyCase):

    def roundtrip(self, key, value, flags=0):
        req = b"set %s %d 0 %d\r\n%s\r\n" % (key, flags, len(value), value)
        self.assertEqual(self.mc.call(req), b"STORED\r\n", "reference")
        self.assertEqual(self.mr.call(req), b"STORED\r\n")
        want = h.value_reply(key, value, flags)
        self.assertEqual(self.mr.call(b"get %s\r\n" % key), want)
        self.assertEqual(CL.owner_of(key).raw_get(key), value)

    def test_empty_value(self):
        self.roundtrip(b"v0", b"")

    def test_one_byte(self):
        self.roundtrip(b"v1", b"x", 42)

    def test_binary_value_with_crlf_and_nul(self):
        self.roundtrip(b"vb", b"a\r\nEND\r\n\x00\xff\r\nVALUE x 0 1\r\n\x00")

    def test_100k(self):
        self.roundtrip(b"v100k", os.urandom(100 * 1024))

    def test_one_megabyte_minus_512(self):
        self.roundtrip(b"v1m", os.urandom(1024 * 1024 - 512))

    def test_too_large_gets_the_backends_reply(self):
        value = b"x" * (1024 * 1024 + 1)
        req = b"set big 0 0 %d\r\n%s\r\n" % (len(value), value)
        got = self.assertSame(req)
        self.assertTrue(got.startswith(b"SERVER_ERROR"), got)
        self.assertUsable(self.mr)


class TestAdmin(ProxyCase):

    def test_flush_all_reaches_every_server(self):
        keys = self.spread_keys()
        self.assertEqual(self.mr.call(b"flush_all\r\nget %s\r\n" % keys[0],
                                      count=2), b"OK\r\nEND\r\n")
        for s in CL.servers:
            self.assertEqual(s.raw_get_many(keys), {}, s.addr)

    def test_flush_all_noreply(self):
        keys = self.spread_keys()
        self.assertEqual(self.mr.call(b"flush_all noreply\r\nget %s\r\n"
                                      % b" ".join(keys)), b"END\r\n")
        for s in CL.servers:
            self.assertEqual(s.raw_get_many(keys), {}, s.addr)

    def test_version(self):
        got = self.mr.call(b"version\r\n")
        self.assertRegex(got, rb"\AVERSION [^\r\n]+\r\n\Z")
        self.assertUsable(self.mr)

    def test_verbosity(self):
        self.assertSame(b"verbosity 1\r\n")

    def stats(self):
        return h.parse_stats(self.mr.call(b"stats\r\n"))

    def test_stats(self):
        before = self.stats()
        for name in ("pid", "uptime", "curr_connections",
                     "total_connections", "cmd_get", "cmd_set"):
            self.assertRegex(before.get(name, ""), r"^\d+$", name)
        self.assertEqual(int(before["pid"]), CL.proxy.pid)
        self.assertGreaterEqual(int(before["curr_connections"]), 1)
        self.mr.call(b"set s 0 0 1\r\nx\r\nget s\r\nget s nokey\r\n",
                     count=3)
        after = self.stats()
        self.assertGreaterEqual(int(after["cmd_set"]),
                                int(before["cmd_set"]) + 1)
        self.assertGreaterEqual(int(after["cmd_get"]),
                                int(before["cmd_get"]) + 2)
        with CL.conn() as other:
            self.assertUsable(other)
        self.assertGreater(int(self.stats()["total_connections"]),
                           int(after["total_connections"]))

    def test_quit_after_pipelined_replies(self):
        self.mr.send(b"set q 0 0 1\r\nx\r\nget q\r\nquit\r\nget q\r\n")
        self.assertEqual(self.mr.read_replies(2),
                         [b"STORED\r\n", b"VALUE q 0 1\r\nx\r\nEND\r\n"])
        self.assertTrue(self.mr.expect_closed())


class TestBadInput(ProxyCase):
    """Each bad request, then a sentinel set+get on the same connection:
    memring's bytes up to the sentinel's reply equal memcached's."""

    CASES = [
        b"bogus\r\n", b"GET a\r\n", b"\r\n",
        b"get " + b"k" * 251 + b"\r\n",
        b"get a " + b"k" * 251 + b" b\r\n",
        b"set " + b"k" * 251 + b" 0 0 1\r\nx\r\n",
        b"set a 0 0 1\r\nxy\r\n", b"set a 0 0 3\r\nabcd\r\n",
        b"set a 0 0\r\n", b"set a 0 0 1 2 3\r\nx\r\n", b"get\r\n",
        b"gets\r\n", b"incr a\r\n", b"touch a\r\n", b"delete\r\n",
        b"delete a 5\r\n", b"gat\r\n", b"gat 10\r\n",
        b"set a abc 0 1\r\nx\r\n", b"set a 0 abc 1\r\nx\r\n",
        b"set a 0 0 abc\r\nx\r\n", b"set a -1 0 1\r\nx\r\n",
        b"set a 0 0 -1\r\n", b"cas a 0 0 1 abc\r\nx\r\n",
        b"cas a 0 0 1\r\nx\r\n", b"incr a abc\r\n", b"incr a -1\r\n",
        b"incr a 18446744073709551616\r\n", b"touch a abc\r\n",
        b"gat abc a\r\n", b"set n 0 0 1\r\nx\r\nincr n 1\r\n",
    ]

    def assertSameUpToSentinel(self, requests):
        """Each request on fresh connections to memring and the reference,
        followed by the sentinel: the bytes before its reply are equal."""
        for req in requests:
            with self.subTest(req=req[:60]), CL.conn() as mr, REF.conn() as mc:
                for c in (mr, mc):
                    c.send(req + SENTINEL)
                want = mc.read_until(SENTINEL_REPLY)
                self.assertEqual(mr.read_until(SENTINEL_REPLY), want)

    def test_bad_requests_answered_as_memcached_does(self):
        self.assertSameUpToSentinel(self.CASES)

    def test_key_with_control_characters(self):
        # memcached only splits on spaces: keys with control and high bytes
        # are stored and served (memcaslap's start with 0x10), and memring
        # answers them exactly as memcached does, routed as any key.
        for key in (b"k\x01y", b"t\x7fz", b"a\tb", b"\x1b[0m", b"\x10x\xff"):
            with self.subTest(key=key):
                for cmd in (b"set %s 0 0 1\r\n7\r\n", b"get %s\r\n",
                            b"incr %s 1\r\n", b"touch %s 100\r\n",
                            b"delete %s\r\n", b"get %s\r\n"):
                    until = b"END\r\n" if cmd.startswith(b"get") else None
                    want = self.mc.call(cmd % key, until=until)
                    got = self.mr.call(cmd % key, until=until)
                    self.assertEqual(got, want, cmd % key)
                self.assertUsable(self.mr)

    def test_broken_client_does_not_affect_another(self):
        keys = self.spread_keys(12)
        want = b"".join(h.value_block(k, k, 5) for k in keys) + b"END\r\n"
        getall = b"get " + b" ".join(keys) + b"\r\n"
        bad = CL.conn()
        self.addCleanup(bad.close)
        bad.send(b"set half 0 0 100\r\nabc")           # stalls mid-value
        self.assertEqual(self.mr.call(getall), want)
        bad.send(b"\x00\xff\xfe garbage " * 20 + b"\r\n")
        self.assertEqual(self.mr.call(getall), want)
        for _ in range(5):                              # die mid-request
            with CL.conn() as gone:
                gone.send(getall * 200)
        bad.close()
        self.assertEqual(self.mr.call(getall * 3, count=3), want * 3)


class TestBackendDown(unittest.TestCase):

    def test_request_to_a_stopped_server_gets_server_error(self):
        cl = h.Cluster(self, nservers=2, hash="md5")
        with cl.conn() as c:
            keys = [b"down:%d" % i for i in range(20)]
            for k in keys:
                c.call(b"set %s 0 0 1\r\nx\r\n" % k)
            dead, alive = cl.servers
            dead_keys = [k for k in keys if dead.raw_get(k)]
            live_keys = [k for k in keys if alive.raw_get(k)]
            self.assertTrue(dead_keys and live_keys)
            dead.stop()
            start = time.monotonic()
            for req in (b"get %s\r\n" % dead_keys[0],
                        b"set %s 0 0 1\r\ny\r\n" % dead_keys[0],
                        b"delete %s\r\n" % dead_keys[0]):
                got = c.call(req, timeout=5)
                self.assertRegex(got, rb"\ASERVER_ERROR [^\r\n]*\r\n\Z")
            self.assertLess(time.monotonic() - start, 8)
            self.assertEqual(c.call(b"get %s\r\n" % live_keys[0]),
                             b"VALUE %s 0 1\r\nx\r\nEND\r\n" % live_keys[0])
            # README: a failed server's multi-get fragment gives misses
            got = c.call(b"get " + b" ".join(keys) + b"\r\n", timeout=5)
            self.assertEqual(h.parse_values(got),
                             [(k, 0, b"x") for k in live_keys])


class TestListeners(unittest.TestCase):

    def test_two_pools_route_independently(self):
        a = [h.Memcached().start() for _ in range(2)]
        b = [h.Memcached().start() for _ in range(2)]
        self.addCleanup(h.stop_all, a + b)
        port_b = h.free_port()
        cl = h.Cluster(self, backends=a, template="two_pools.yml.in",
                       hash="md5",
                       listen_b="%s:%d" % (h.HOST, port_b),
                       servers_b=h.servers_yaml(b))
        self.assertTrue(cl.proxy.wait_ready([port_b]))
        keys = [b"pool:%d" % i for i in range(20)]
        with cl.conn() as ca, h.Conn(port_b) as cb:
            for k in keys:
                self.assertEqual(ca.call(b"set %s 0 0 1\r\nA\r\n" % k),
                                 b"STORED\r\n")
            self.assertEqual(cb.call(b"get %s\r\n" % keys[0]), b"END\r\n")
            for k in keys:
                self.assertEqual(cb.call(b"set %s 0 0 1\r\nB\r\n" % k),
                                 b"STORED\r\n")
            for servers, v in ((a, b"A"), (b, b"B")):
                held = {}
                for s in servers:
                    got = s.raw_get_many(keys)
                    self.assertTrue(got, s.addr)
                    held.update(got)
                self.assertEqual(held, {k: v for k in keys})

    def test_unix_socket_listener(self):
        cl = h.Cluster(self, nservers=2, listen="unix")
        self.assertEqual(stat.S_IMODE(os.stat(cl.port).st_mode), 0o666)
        with cl.conn() as c:
            self.assertEqual(c.call(b"set u 0 0 2\r\nok\r\nget u\r\n",
                                    count=2),
                             b"STORED\r\nVALUE u 0 2\r\nok\r\nEND\r\n")
        self.assertEqual(cl.owner_of(b"u").raw_get(b"u"), b"ok")


if __name__ == "__main__":
    sys.exit(h.run_tests(globals()))
