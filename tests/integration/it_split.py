"""split_values: values larger than memcached's item size stored as chunks
under keys of their own plus an index item under the client's key (issue
14 part 4, libmc's do_split), through pymemcache and raw sockets against
real memcached servers (1 MB items).

A set of more than N bytes (the pool's split_values) writes its chunks,
each under "~<nonce>/<i>" (with the pool's prefix) on that key's server,
then the index; a get reassembles them. Whatever happens to a chunk
behind memring's back (deleted, or rewritten with other bytes of the same
length), the key is a miss, never a wrong value: the index carries the
value's crc32."""

import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

from pymemcache.client.base import Client

import harness as h

N = 262144                  # chunk size of the split pool
PREFIX = "app:"
SERVERS = []
PROXY = None
PORTS = {}
DIR = None
MAGIC = b"\0memring-split\0" b"1 "


def setUpModule():
    global PROXY, DIR
    SERVERS.extend(h.Memcached().start() for _ in range(3))
    unittest.addModuleCleanup(h.stop_all, SERVERS)
    DIR = tempfile.mkdtemp(prefix="memring-it-split-")
    unittest.addModuleCleanup(shutil.rmtree, DIR, True)

    def make():
        PORTS["split"] = h.free_port()
        PORTS["plain"] = h.free_port()
        text = h.pool_yaml("split", PORTS["split"], SERVERS, hash="md5",
                           prefix='"%s"' % PREFIX, split_values=N)
        text += h.pool_yaml("plain", PORTS["plain"], SERVERS, hash="md5")
        PORTS["max"] = h.free_port()
        text += h.pool_yaml("max", PORTS["max"], SERVERS, hash="md5",
                            split_values=1048000)
        conf = h.write_conf(os.path.join(DIR, "split.yml"), text)
        return h.Memring(conf, wait=list(PORTS.values()))

    PROXY = h.start_on_free_ports(make)
    unittest.addModuleCleanup(PROXY.stop)


def client(pool="split"):
    return Client(("127.0.0.1", PORTS[pool]), timeout=10, connect_timeout=5)


def conn(pool="split"):
    return h.Conn(PORTS[pool], timeout=10)


def counters():
    st = h.admin_stats(PROXY.stats_port)["split"]
    return {k: st["memring_" + k] for k in
            ("split_stored", "split_reassembled", "split_misses")}


def raw_item(key):
    """(server, value) holding the server-side key (bytes), or None."""
    for s in SERVERS:
        v = s.raw_get(key)
        if v is not None:
            return s, v
    return None


def index_of(key):
    """The index item of client key `key` (str): (nonce, chunk, nchunks,
    total, crc), read from the servers directly."""
    _, v = raw_item((PREFIX + key).encode())
    assert v.startswith(MAGIC), v[:40]
    nonce, chunk, n, total, crc = v[len(MAGIC):].split(b" ")
    return nonce.decode(), int(chunk), int(n), int(total), crc.decode()


def chunk_key(nonce, i):
    return ("%s~%s/%d" % (PREFIX, nonce, i)).encode()


def big(n, seed):
    return random.Random(seed).randbytes(n)


def get_raw(c, keys, cmd=b"get"):
    return c.call(cmd + b" " + b" ".join(keys) + b"\r\n", until=b"END\r\n")


class SplitTest(unittest.TestCase):

    def test_round_trip_3_and_5_mb(self):
        c = client()
        before = counters()
        for size, key in ((3 << 20, "big3"), (5 << 20, "big5")):
            value = big(size, size)
            self.assertTrue(c.set(key, value, noreply=False))
            self.assertEqual(c.get(key), value)
            nonce, chunk, n, total, _ = index_of(key)
            self.assertEqual((chunk, total), (N, size))
            self.assertEqual(n, -(-size // N))
            # chunks spread over the servers, each under its own key
            holders = {raw_item(chunk_key(nonce, i))[0].port
                       for i in range(n)}
            self.assertGreater(len(holders), 1)
        after = counters()
        self.assertEqual(after["split_stored"] - before["split_stored"], 2)
        self.assertEqual(
            after["split_reassembled"] - before["split_reassembled"], 2)

    def test_flags_and_multi_get_in_order(self):
        v1, v2 = big(N * 3 + 7, 1), big(N + 1, 2)
        with conn() as c:
            for key, flags, v in ((b"m1", 5, v1), (b"m2", 9, v2),
                                  (b"s1", 3, b"small")):
                self.assertEqual(c.call(b"set %s %d 0 %d\r\n%s\r\n" % (
                    key, flags, len(v), v)), b"STORED\r\n")
            keys = [b"s1", b"m1", b"nope", b"m2", b"s1", b"m1"]
            got = h.parse_values(get_raw(c, keys))
        self.assertEqual(got, [(b"s1", 3, b"small"), (b"m1", 5, v1),
                               (b"m2", 9, v2), (b"s1", 3, b"small"),
                               (b"m1", 5, v1)])

    def test_gets_has_the_index_cas(self):
        v = big(N * 2 + 100, 3)
        c = client()
        c.set("g1", v, noreply=False)
        value, cas = c.gets("g1")
        self.assertEqual(value, v)
        s, _ = raw_item((PREFIX + "g1").encode())
        raw = s.call(b"gets " + (PREFIX + "g1").encode() + b"\r\n",
                     until=b"END\r\n")
        self.assertEqual(int(re.match(rb"VALUE \S+ \d+ \d+ (\d+)", raw)
                             .group(1)), int(cas))
        # cas with that unique replaces the index (a small value)
        self.assertTrue(c.cas("g1", b"small", cas, noreply=False))
        self.assertEqual(c.get("g1"), b"small")
        with conn() as rc:
            reply = get_raw(rc, [b"g1"], b"gats 0")
        self.assertTrue(reply.startswith(b"VALUE g1 0 5 "), reply)

    def test_missing_chunk_is_a_miss(self):
        v = big(N * 4, 4)
        c = client()
        c.set("d1", v, noreply=False)
        nonce, _, n, _, _ = index_of("d1")
        before = counters()
        s, _ = raw_item(chunk_key(nonce, 2))
        self.assertEqual(s.call(b"delete " + chunk_key(nonce, 2) + b"\r\n"),
                         b"DELETED\r\n")
        self.assertIsNone(c.get("d1"))
        self.assertEqual(c.get_many(["d1", "nope"]), {})
        self.assertEqual(
            counters()["split_misses"] - before["split_misses"], 2)

    def test_rewritten_chunk_is_a_miss(self):
        v = big(N * 3 + 5, 5)
        c = client()
        c.set("w1", v, noreply=False)
        nonce, _, n, _, _ = index_of("w1")
        for i in (0, n - 1):        # a full chunk, and the short last one
            key = chunk_key(nonce, i)
            s, old = raw_item(key)
            other = bytes(b ^ 0xff for b in old[:16]) + old[16:]
            self.assertEqual(s.call(b"set %s 0 0 %d\r\n%s\r\n" % (
                key, len(other), other)), b"STORED\r\n")
            self.assertIsNone(c.get("w1"))
            self.assertEqual(s.call(b"set %s 0 0 %d\r\n%s\r\n" % (
                key, len(old), old)), b"STORED\r\n")
            self.assertEqual(c.get("w1"), v)
        # a chunk of another length: a miss too
        key = chunk_key(nonce, 1)
        s, _ = raw_item(key)
        s.call(b"set %s 0 0 3\r\nabc\r\n" % key)
        self.assertIsNone(c.get("w1"))

    def test_not_an_index_is_returned_as_is(self):
        c = client()
        for v in (MAGIC + b"garbage", MAGIC, b"\0memring-split\0"):
            c.set("x1", v, noreply=False)
            self.assertEqual(c.get("x1"), v)

    def test_n_and_n_plus_one(self):
        c = client()
        exact, over = big(N, 6), big(N + 1, 7)
        c.set("n0", exact, noreply=False)
        c.set("n1", over, noreply=False)
        self.assertEqual(raw_item((PREFIX + "n0").encode())[1], exact)
        self.assertTrue(
            raw_item((PREFIX + "n1").encode())[1].startswith(MAGIC))
        self.assertEqual(c.get_many(["n0", "n1"]),
                         {"n0": exact, "n1": over})

    def test_only_set_splits(self):
        v = big(2 << 20, 8)
        with conn() as c:
            for cmd in (b"add", b"replace", b"append"):
                self.assertEqual(c.call(b"%s o1 0 0 %d\r\n%s\r\n" % (
                    cmd, len(v), v)),
                    b"SERVER_ERROR object too large for cache\r\n")

    def test_pool_without_split_values(self):
        v = big(3 << 20, 9)
        with conn("plain") as c:
            self.assertEqual(c.call(b"set p1 0 0 %d\r\n%s\r\n" % (
                len(v), v)), b"SERVER_ERROR object too large for cache\r\n")
            self.assertEqual(c.call(b"get p1\r\n"), b"END\r\n")

    def test_noreply_set(self):
        c = client()
        v = big(N * 2 + 1, 10)
        c.set("q1", v)              # pymemcache: noreply by default
        self.assertEqual(c.get("q1"), v)
        with conn() as rc:
            rc.send(b"set q2 1 0 %d noreply\r\n%s\r\n" % (len(v), v))
            self.assertEqual(h.parse_values(get_raw(rc, [b"q2"])),
                             [(b"q2", 1, v)])

    def test_pipelined_then_half_close(self):
        values = [big(N * (i + 1) + i, 20 + i) for i in range(4)]
        keys = [b"pp%d" % i for i in range(4)]
        data = b"".join(b"set %s 0 0 %d\r\n%s\r\n" % (k, len(v), v)
                        for k, v in zip(keys, values))
        data += b"get " + b" ".join(keys) + b"\r\n"
        data += b"".join(b"get %s\r\n" % k for k in keys)
        sock = socket.create_connection(("127.0.0.1", PORTS["split"]),
                                        timeout=20)
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            reply, how = h.read_to_eof(sock, 30)
        finally:
            sock.close()
        self.assertEqual(how, "eof")
        self.assertTrue(reply.startswith(b"STORED\r\n" * 4), reply[:80])
        rest = reply[len(b"STORED\r\n") * 4:]
        want = b"".join(b"VALUE %s 0 %d\r\n%s\r\n" % (k, len(v), v)
                        for k, v in zip(keys, values)) + b"END\r\n"
        want += b"".join(b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (k, len(v), v)
                         for k, v in zip(keys, values))
        self.assertEqual(rest, want)

    def test_largest_chunks_no_prefix(self):
        """split_values at its maximum: chunks fit memcached's 1 MB item."""
        c = client("max")
        v = big((5 << 20) + 3, 12)
        self.assertTrue(c.set("mx", v, noreply=False))
        self.assertEqual(c.get("mx"), v)
        self.assertTrue(raw_item(b"mx")[1].startswith(MAGIC))

    def test_delete_deletes_the_index(self):
        c = client()
        c.set("del1", big(N * 2, 11), noreply=False)
        self.assertTrue(c.delete("del1", noreply=False))
        self.assertIsNone(c.get("del1"))

    def test_config_errors(self):
        for bad in ("5", "1048001", "-1", "big"):
            conf = h.write_conf(os.path.join(DIR, "bad.yml"), h.pool_yaml(
                "bad", 22121, SERVERS, split_values=bad))
            out = subprocess.run([h.memring_bin(), "-t", "-c", conf],
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, timeout=10)
            self.assertNotEqual(out.returncode, 0)
            self.assertRegex(out.stdout.decode(),
                             r"bad.yml:\d+:\d+: split_values: expected 0 "
                             r"\(off\) or a chunk size from 1024 to 1048000")

    def test_config_page(self):
        status, body = h.http_request(PROXY.stats_port, "/config")
        self.assertEqual(status, 200)
        self.assertIn(b'"split_values":%d' % N, body.replace(b" ", b""))


class WarmSplitTest(unittest.TestCase):
    """A split value written before a ring change, read in the warm-up
    window: the index is found on its previous server (warm.h) and each
    chunk that moved on its own previous server."""

    def test_reassembled_in_the_window(self):
        extra = [h.Memcached().start() for _ in range(2)]
        self.addCleanup(h.stop_all, extra)
        d = tempfile.mkdtemp(prefix="memring-it-split-warm-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "warm.yml")
        box = {}

        def text(servers, warmup_ms):
            return h.pool_yaml("split", box["port"], servers, hash="md5",
                               distribution="ketama", split_values=N,
                               warmup_ms=warmup_ms)

        def make():
            box["port"] = h.free_port()
            h.write_conf(path, text(SERVERS, 60000))
            box["mr"] = h.Memring(path, wait=[box["port"]])
            return box["mr"]

        mr = h.start_on_free_ports(make)
        self.addCleanup(mr.stop)
        c = Client(("127.0.0.1", box["port"]), timeout=10)
        values = {"wk%d" % i: big(N * 6 + i, 100 + i) for i in range(6)}
        for k, v in values.items():
            self.assertTrue(c.set(k, v, noreply=False))
        h.write_conf(path, text(SERVERS + extra, 60000))
        status, body = h.http_request(mr.stats_port, "/reload", "POST",
                                      timeout=10)
        self.assertEqual(status, 200, body)
        # every value whole, in one multi-get and one by one
        self.assertEqual(c.get_many(list(values)), values)
        for k, v in values.items():
            self.assertEqual(c.get(k), v)
        st = h.admin_stats(mr.stats_port)["split"]
        self.assertEqual(st["memring_split_misses"], 0)
        self.assertGreater(st["memring_split_reassembled"], 0)


if __name__ == "__main__":
    sys.exit(h.run_tests(globals()))
