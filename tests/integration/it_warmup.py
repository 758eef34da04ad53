"""The warm-up window (pool option warmup_ms): after a ring change, a get
that misses on a key's new server is looked up on the server the previous
ring gave it; a hit is answered and copied to the new server (an add, with
the item's flags and remaining TTL). Writes during the window also delete
the key on its previous server, so nothing older than a write comes back.

Real memcached servers on free 127.0.0.1 ports, memring reloaded through
its admin port. The headline measurement (issue: 10,000 keys on 4 servers,
reload to 5) is printed, with and without the window."""

import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import harness as h

NKEYS = 10000
WAIT = 5.0


def pool(listen, servers, warmup_ms=0, **keys):
    keys.setdefault("hash", "md5")
    keys.setdefault("distribution", "ketama")
    return h.pool_yaml("warm", listen, servers, timeout=2000,
                       warmup_ms=warmup_ms, **keys)


class Proxy:
    """memring on one pool whose config the test rewrites and reloads."""

    def __init__(self, test, servers, **keys):
        self.test = test
        self.dir = tempfile.mkdtemp(prefix="memring-warm-")
        test.addCleanup(shutil.rmtree, self.dir, True)
        self.conf = os.path.join(self.dir, "memring.yml")

        def make():
            self.port = h.free_port()
            h.write_conf(self.conf, pool(self.port, servers, **keys))
            self.mr = h.Memring(self.conf, wait=[self.port])
            return self.mr

        h.start_on_free_ports(make)
        test.addCleanup(self.mr.stop)

    def reload(self, servers, **keys):
        h.write_conf(self.conf, pool(self.port, servers, **keys))
        status, body = h.http_request(self.mr.stats_port, "/reload", "POST",
                                      timeout=WAIT)
        self.test.assertEqual(status, 200, body)

    def conn(self):
        return h.Conn(self.port, timeout=WAIT)

    def counters(self):
        st = h.admin_stats(self.mr.stats_port, timeout=WAIT)
        return {k: st["warm"]["memring_" + k] for k in
                ("warmup_lookups", "warmup_hits", "warmup_copies")}

    def owners(self, keys):
        """{key: "host:port"} as `memring ring locate` places keys with the
        config now on disk (what the proxy routes by, ring tools and proxy
        share one placement)."""
        out = subprocess.run([h.memring_bin(), "ring", "locate", "-c",
                              self.conf],
                             input=b"\n".join(keys) + b"\n",
                             stdout=subprocess.PIPE, check=True,
                             timeout=30).stdout
        got = {}
        for line in out.splitlines():
            key, _, addr = line.split(b"\t")
            got[key] = addr.decode()
        return got


def set_many(conn, items, flags=0, exptime=0, chunk=500):
    items = list(items)
    for i in range(0, len(items), chunk):
        part = items[i:i + chunk]
        conn.send(b"".join(b"set %s %d %d %d\r\n%s\r\n"
                           % (k, flags, exptime, len(v), v)
                           for k, v in part))
        got = conn.read_replies(len(part), timeout=10)
        bad = [r for r in got if r != b"STORED\r\n"]
        if bad:
            raise AssertionError("set replies: %r" % bad[:5])


def get_many(conn, keys, cmd=b"get", chunk=100):
    """[(key, flags, value)] of every hit, in reply order, by multi-gets
    of `chunk` keys; checks each reply's keys come in request order."""
    out = []
    for i in range(0, len(keys), chunk):
        part = keys[i:i + chunk]
        reply = conn.call(cmd + b" " + b" ".join(part) + b"\r\n")
        got = h.parse_values(reply)
        order = [k for k, _, _ in got]
        want = [k for k in part if k in set(order)]
        if order != want:
            raise AssertionError("values out of order: %r" % order[:5])
        out.extend(got)
    return out


def keyset(n, tag):
    return [b"%s:%06d" % (tag.encode(), i) for i in range(n)]


def value_of(key):
    return b"v-" + key + b"-" + b"x" * (len(key) % 17)


class Servers:
    """Five memcached shared by the tests of a class, flushed per test."""

    @classmethod
    def setUpClass(cls):
        cls.mc = [h.Memcached().start() for _ in range(5)]
        cls.addClassCleanup(h.stop_all, cls.mc)

    def setUp(self):
        for m in self.mc:
            m.flush()


class TestHitRatio(Servers, unittest.TestCase):
    """10,000 keys on 4 servers, reload to 5, one read pass."""

    def read_pass(self, warmup_ms):
        keys = keyset(NKEYS, "hr%d" % warmup_ms)
        proxy = Proxy(self, self.mc[:4], warmup_ms=warmup_ms)
        with proxy.conn() as c:
            set_many(c, ((k, value_of(k)) for k in keys))
            proxy.reload(self.mc[:5], warmup_ms=warmup_ms)
            got = get_many(c, keys)
        for k, _, v in got:
            self.assertEqual(v, value_of(k))
        return proxy, keys, len(got) / float(NKEYS)

    def test_without_window_about_a_fifth_misses(self):
        _, _, ratio = self.read_pass(0)
        print("\n  4 -> 5 servers, no window: hit ratio %.4f" % ratio)
        # ketama moves about 1/5 of the keys to the new server
        self.assertGreater(ratio, 0.70)
        self.assertLess(ratio, 0.90)

    def test_with_window_every_key_found_and_copied(self):
        proxy, keys, ratio = self.read_pass(60000)
        print("\n  4 -> 5 servers, warmup_ms 60000: hit ratio %.4f" % ratio)
        self.assertEqual(ratio, 1.0)
        n = proxy.counters()
        moved = n["warmup_hits"]
        self.assertGreater(moved, NKEYS // 10)
        self.assertEqual(n["warmup_lookups"], moved)
        # every copy is on the key's new server, as the ring tools place it
        h.wait_for(lambda: proxy.counters()["warmup_copies"] == moved,
                   what="copies answered")
        owners = proxy.owners(keys)
        by_server = {}
        for k in keys:
            by_server.setdefault(owners[k], []).append(k)
        for m in self.mc:
            held = m.raw_get_many(by_server.get(m.addr, []))
            self.assertEqual(len(held), len(by_server.get(m.addr, [])))
            for k, v in held.items():
                self.assertEqual(v, value_of(k))
        # a second pass finds them all where they belong: no lookup
        with proxy.conn() as c:
            self.assertEqual(len(get_many(c, keys)), NKEYS)
        self.assertEqual(proxy.counters()["warmup_lookups"], moved)


class TestWindow(Servers, unittest.TestCase):

    def moved_keys(self, proxy, keys, old_servers, new_servers):
        """Keys whose server differs between the two server lists."""
        before = proxy.owners(keys)
        proxy.reload(new_servers, warmup_ms=60000)
        after = proxy.owners(keys)
        moved = [k for k in keys if before[k] != after[k]]
        self.assertGreater(len(moved), 10)
        return moved, before, after

    def setup_moved(self, n=400, **keys):
        proxy = Proxy(self, self.mc[:3], warmup_ms=60000, **keys)
        ks = keyset(n, "w")
        with proxy.conn() as c:
            set_many(c, ((k, value_of(k)) for k in ks), flags=42,
                     exptime=500)
        moved, before, after = self.moved_keys(proxy, ks, self.mc[:3],
                                               self.mc[:4])
        return proxy, moved, before, after

    def server(self, addr):
        return [m for m in self.mc if m.addr == addr][0]

    def test_flags_and_ttl_are_copied(self):
        proxy, moved, _, after = self.setup_moved()
        with proxy.conn() as c:
            got = get_many(c, moved[:50])
        self.assertEqual([(k, f) for k, f, _ in got],
                         [(k, 42) for k in moved[:50]])
        h.wait_for(lambda: proxy.counters()["warmup_copies"] >= 50,
                   what="copies")
        for k in moved[:50]:
            reply = self.server(after[k]).call(b"mg " + k + b" t f v\r\n")
            head = reply.split(b"\r\n")[0].split()
            self.assertEqual(head[0], b"VA", reply)
            ttl = int([t for t in head if t.startswith(b"t")][0][1:])
            self.assertTrue(0 < ttl <= 500, reply)
            self.assertIn(b"f42", head)

    def test_single_key_get_and_gat(self):
        proxy, moved, _, after = self.setup_moved()
        with proxy.conn() as c:
            k = moved[0]
            self.assertEqual(c.call(b"get " + k + b"\r\n"),
                             b"VALUE %s 42 %d\r\n%s\r\nEND\r\n"
                             % (k, len(value_of(k)), value_of(k)))
            k = moved[1]
            reply = c.call(b"gat 900 " + k + b"\r\n")
            self.assertTrue(reply.startswith(b"VALUE " + k + b" 42 "), reply)
        h.wait_for(lambda: proxy.counters()["warmup_copies"] >= 2,
                   what="copies")
        reply = self.server(after[moved[1]]).call(
            b"mg " + moved[1] + b" t\r\n")
        ttl = int(reply.split()[1][1:])
        self.assertGreater(ttl, 500, "gat's exptime is the copy's TTL")

    def test_gets_answers_the_new_servers_cas(self):
        proxy, moved, _, after = self.setup_moved()
        k = moved[0]
        with proxy.conn() as c:
            reply = c.call(b"gets " + b" ".join(moved[:20]) + b"\r\n")
            values = h.parse_values(reply)
            self.assertEqual(len(values), 20, reply[:200])
            cas = int(reply.split(b"\r\n")[0].split()[4])
            # the CAS is the copy's, on the new server: cas works there
            self.assertEqual(
                c.call(b"cas %s 0 0 3 %d\r\nnew\r\n" % (k, cas)),
                b"STORED\r\n")
            self.assertEqual(c.call(b"get " + k + b"\r\n"),
                             b"VALUE %s 0 3\r\nnew\r\nEND\r\n" % k)

    def test_gets_after_a_write_on_the_new_server_is_a_miss(self):
        proxy, moved, before, after = self.setup_moved()
        k = moved[0]
        # someone wrote the key on its new server behind memring's back:
        # the previous server's value is older, never answered as current
        self.server(after[k]).call(b"set %s 0 0 5\r\nfresh\r\n" % k)
        self.server(after[k]).call(b"delete %s\r\n" % k)
        self.server(after[k]).call(b"add %s 0 0 5\r\nfresh\r\n" % k)
        with proxy.conn() as c:
            self.assertEqual(c.call(b"get " + k + b"\r\n"),
                             b"VALUE %s 0 5\r\nfresh\r\nEND\r\n" % k)

    def test_no_stale_value_after_delete_or_overwrite(self):
        proxy, moved, before, after = self.setup_moved()
        deleted, written = moved[:20], moved[20:40]
        with proxy.conn() as c:
            for k in deleted:
                self.assertEqual(c.call(b"delete " + k + b"\r\n"),
                                 b"NOT_FOUND\r\n")
            for k in written:
                self.assertEqual(c.call(b"set %s 0 0 3\r\nnew\r\n" % k),
                                 b"STORED\r\n")
            h.wait_for(lambda: all(self.server(before[k]).raw_get(k) is None
                                   for k in deleted + written),
                       what="previous servers forgot them")
            got = dict((k, v) for k, _, v in get_many(c, moved))
            for k in deleted:
                self.assertNotIn(k, got)
            for k in written:
                self.assertEqual(got[k], b"new")
            # the new server evicts (here: deletes) the new value: the old
            # one must not come back from the previous server
            for k in written:
                self.server(after[k]).call(b"delete " + k + b"\r\n")
            got = dict((k, v) for k, _, v in get_many(c, written))
            self.assertEqual(got, {})

    def test_with_a_key_prefix(self):
        proxy = Proxy(self, self.mc[:3], warmup_ms=60000, prefix='"app:"')
        ks = keyset(300, "px")
        with proxy.conn() as c:
            set_many(c, ((k, value_of(k)) for k in ks))
        before = proxy.owners(ks)
        proxy.reload(self.mc[:4], warmup_ms=60000, prefix='"app:"')
        after = proxy.owners(ks)
        moved = [k for k in ks if before[k] != after[k]]
        self.assertGreater(len(moved), 10)
        with proxy.conn() as c:
            got = get_many(c, ks)     # client keys back, in order
            self.assertEqual([k for k, _, _ in got], ks)
            for k, _, v in got:
                self.assertEqual(v, value_of(k))
            h.wait_for(lambda: proxy.counters()["warmup_copies"]
                       == len(moved), what="copies")
            k = moved[0]
            self.assertEqual(self.server(after[k]).raw_get(b"app:" + k),
                             value_of(k))
            self.assertEqual(c.call(b"delete " + k + b"\r\n"),
                             b"DELETED\r\n")
            h.wait_for(lambda: self.server(before[k]).raw_get(b"app:" + k)
                       is None, what="the previous server forgot it")

    def test_removed_server_is_reachable_until_the_window_closes(self):
        proxy = Proxy(self, self.mc[:3], warmup_ms=1500)
        ks = keyset(300, "rm")
        with proxy.conn() as c:
            set_many(c, ((k, value_of(k)) for k in ks))
        before = proxy.owners(ks)
        gone = [k for k in ks if before[k] == self.mc[2].addr]
        self.assertGreater(len(gone), 20)
        proxy.reload(self.mc[:2], warmup_ms=1500)
        with proxy.conn() as c:
            got = dict((k, v) for k, _, v in get_many(c, gone[:10]))
            self.assertEqual(len(got), 10)
            time.sleep(1.7)
            # closed: the rest of the removed server's keys miss
            lookups = proxy.counters()["warmup_lookups"]
            got = get_many(c, gone[10:])
            self.assertEqual(got, [])
            self.assertEqual(proxy.counters()["warmup_lookups"], lookups)
        self.assertIn("warm-up window closed", proxy.mr.log_text())

    def test_server_back_from_ejection_warms_its_keys(self):
        proxy = Proxy(self, self.mc[:3], warmup_ms=60000,
                      auto_eject_hosts=True, server_retry_timeout=1000,
                      server_failure_limit=1)
        ks = keyset(300, "ej")
        owners = proxy.owners(ks)
        away = self.mc[2]
        mine = [k for k in ks if owners[k] == away.addr]
        away.stop()
        with proxy.conn() as c:
            # the first request fails and ejects it; the rest go elsewhere
            h.wait_for(lambda: c.call(b"set %s 0 0 1\r\nx\r\n" % mine[0])
                       == b"STORED\r\n", what="ejection")
            set_many(c, ((k, value_of(k)) for k in mine))
            away.start(port=away.port)
            # back after server_retry_timeout; its keys come back to it
            # empty, and are looked up where they were written meanwhile
            time.sleep(1.2)
            got = {}
            deadline = time.monotonic() + WAIT
            while len(got) < len(mine) and time.monotonic() < deadline:
                got = dict((k, v) for k, _, v in get_many(c, mine))
        self.assertEqual(len(got), len(mine))
        self.assertGreater(proxy.counters()["warmup_hits"], 0)
        self.assertIsNotNone(away.raw_get(mine[1]))


class TestMigration(Servers, unittest.TestCase):
    """Adopt a python-memcached fleet (modulo on 2 servers), then move to
    memring's ketama on 3 with a window: the cache stays warm."""

    def fleet(self):
        import memcache
        mc = memcache.Client([m.addr for m in self.mc[:2]])
        self.addCleanup(mc.disconnect_all)
        keys = ["mig:%05d" % i for i in range(3000)]
        for k in keys:
            self.assertTrue(mc.set(k, "val-" + k))
        return [k.encode() for k in keys]

    def migrate(self, warmup_ms):
        keys = self.fleet()
        proxy = Proxy(self, self.mc[:2], placement="python_memcached",
                      hash=None, distribution=None)
        with proxy.conn() as c:
            self.assertEqual(len(get_many(c, keys)), len(keys))
            proxy.reload(self.mc[:3], warmup_ms=warmup_ms)
            return len(get_many(c, keys)) / float(len(keys))

    def test_without_window(self):
        ratio = self.migrate(0)
        print("\n  python_memcached 2 -> ketama 3, no window: %.4f" % ratio)
        self.assertLess(ratio, 0.5)

    def test_with_window(self):
        ratio = self.migrate(60000)
        print("\n  python_memcached 2 -> ketama 3, window: %.4f" % ratio)
        self.assertEqual(ratio, 1.0)


class TestUnderLoad(Servers, unittest.TestCase):
    """Clients write and read their own keys while the ring changes every
    few hundred ms with a window: every request gets exactly one reply, in
    order, and a read never returns a value older than the client's last
    write (or a value at all after its delete)."""

    def test_reloads_under_load(self):
        proxy = Proxy(self, self.mc[:4], warmup_ms=5000)
        stop = threading.Event()
        errors = []

        def client(tid):
            rnd = random.Random(tid)
            mine = keyset(200, "ld%d" % tid)
            last = {}
            try:
                with proxy.conn() as c:
                    while not stop.is_set():
                        batch = rnd.sample(mine, 20)
                        for k in batch[:5]:
                            if rnd.random() < 0.3:
                                c.send(b"delete " + k + b"\r\n")
                                last[k] = None
                            else:
                                v = b"%d" % rnd.randrange(10 ** 9)
                                c.send(b"set %s 0 0 %d\r\n%s\r\n"
                                       % (k, len(v), v))
                                last[k] = v
                        c.send(b"get " + b" ".join(batch) + b"\r\n")
                        for reply in c.read_replies(5, timeout=WAIT):
                            if reply not in (b"STORED\r\n", b"DELETED\r\n",
                                             b"NOT_FOUND\r\n"):
                                raise AssertionError(reply)
                        got = h.parse_values(c.read_until(b"END\r\n"))
                        for k, _, v in got:
                            if k not in last or v != last[k]:
                                raise AssertionError(
                                    "%r: %r, last written %r"
                                    % (k, v, last.get(k)))
            except Exception as e:   # reported by the main thread
                errors.append(e)

        threads = [threading.Thread(target=client, args=(i,))
                   for i in range(3)]
        for t in threads:
            t.start()
        try:
            for i in range(12):
                time.sleep(0.25)
                proxy.reload(self.mc[:4 + i % 2], warmup_ms=5000)
        finally:
            stop.set()
            for t in threads:
                t.join(2 * WAIT)
        self.assertEqual(errors, [])
        self.assertGreater(proxy.counters()["warmup_lookups"], 0)


if __name__ == "__main__":
    sys.exit(h.run_tests(globals()))
