"""prefix: a pool's key prefix (issue 14, libmc's PREFIX), through
pymemcache and raw sockets against real memcached servers.

Servers see the prefix in every key of every command; clients never see
it (VALUE lines carry the client's own key, in the order asked, fanned
out or not). Two pools with different prefixes on the same servers do
not see each other's keys. A key the prefix would make longer than 250
bytes gets exactly what memcached answers for a 251-byte key (asked of a
real memcached). Placement: the prefix is hashed under `placement: libmc`
only, as libmc hashes the key it sends (normalize_key() puts the prefix
first, after a leading '?'); elsewhere a prefix moves no key. libmc is
checked against the vectors its own code produced
(vectors/libmc-*.json): a vector key P + x is where libmc with prefix P
puts the client key x."""

import collections
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from pymemcache.client.base import Client

import harness as h

SERVERS = []
PROXY = None
PORTS = {}          # pool name -> listen port
DIR = None
PREFIXES = {"a": "app1:", "b": "app2:", "plain": None, "lm": "lm:"}
VECTORS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors")


def setUpModule():
    global PROXY, DIR
    SERVERS.extend(h.Memcached().start() for _ in range(3))
    unittest.addModuleCleanup(h.stop_all, SERVERS)
    DIR = tempfile.mkdtemp(prefix="memring-it-prefix-")
    unittest.addModuleCleanup(shutil.rmtree, DIR, True)

    def make():
        text = ""
        for name, prefix in PREFIXES.items():
            PORTS[name] = h.free_port()
            keys = {"placement": "libmc"} if name == "lm" else {
                "hash": "md5"}
            keys["prefix"] = '"%s"' % prefix if prefix else None
            text += h.pool_yaml(name, PORTS[name], SERVERS, **keys)
        conf = h.write_conf(os.path.join(DIR, "prefix.yml"), text)
        return h.Memring(conf, wait=list(PORTS.values()))

    PROXY = h.start_on_free_ports(make)
    unittest.addModuleCleanup(PROXY.stop)


def holders(key):
    """The servers (indexes) that hold key (bytes), asked directly."""
    return [i for i, s in enumerate(SERVERS) if s.raw_get(key) is not None]


def locate(pool, keys):
    """memring ring locate's HOST:PORT for each key of pool."""
    out = subprocess.run([h.memring_bin(), "ring", "locate", "-c",
                          PROXY.conf, "--pool", pool],
                         input=b"".join(k + b"\n" for k in keys),
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [line.rsplit(b"\t", 1)[1].decode()
            for line in out.stdout.split(b"\n")[:-1]]


class PrefixCase(unittest.TestCase):
    def setUp(self):
        for s in SERVERS:
            s.flush()

    def client(self, pool):
        c = Client((h.HOST, PORTS[pool]), connect_timeout=5, timeout=5,
                   default_noreply=False)
        self.addCleanup(c.close)
        return c

    def call(self, pool, data, count=1):
        with h.Conn(PORTS[pool]) as c:
            return c.call(data, count=count)


class TestIsolation(PrefixCase):
    def test_two_pools_do_not_see_each_others_keys(self):
        a, b, plain = self.client("a"), self.client("b"), self.client("plain")
        a.set("shared", b"from-a")
        self.assertIsNone(b.get("shared"))
        self.assertIsNone(plain.get("shared"))
        b.set("shared", b"from-b")
        self.assertEqual(a.get("shared"), b"from-a")
        self.assertEqual(b.get("shared"), b"from-b")
        a.delete("shared")
        self.assertIsNone(a.get("shared"))
        self.assertEqual(b.get("shared"), b"from-b")
        # memcached itself holds the prefixed keys, nothing unprefixed
        self.assertEqual(len(holders(b"app2:shared")), 1)
        self.assertEqual(holders(b"app1:shared"), [])
        self.assertEqual(holders(b"shared"), [])

    def test_server_sees_prefixed_keys(self):
        a = self.client("a")
        keys = ["k%d" % i for i in range(60)]
        a.set_many({k: k.encode() + b"!" for k in keys})
        for k in keys:
            where = holders(b"app1:" + k.encode())
            self.assertEqual(len(where), 1, k)
            self.assertEqual(SERVERS[where[0]].raw_get(b"app1:" + k.encode()),
                             k.encode() + b"!")
            self.assertEqual(holders(k.encode()), [])

    def test_prefix_moves_no_key(self):
        """Without libmc the key is hashed as the client sent it: the
        prefixed pool puts every key on the server the plain pool does."""
        keys = [b"m%d" % i for i in range(200)]
        self.assertEqual(locate("a", keys), locate("plain", keys))
        a, plain = self.client("a"), self.client("plain")
        for k in keys[:40]:
            a.set(k, b"x")
            plain.set(k, b"y")
            self.assertEqual(holders(b"app1:" + k), holders(k), k)


class TestCommands(PrefixCase):
    def assertOnServer(self, key, value):
        where = holders(b"app1:" + key)
        self.assertEqual(len(where), 1, key)
        self.assertEqual(SERVERS[where[0]].raw_get(b"app1:" + key), value)

    def test_every_command_through_pymemcache(self):
        a = self.client("a")
        self.assertTrue(a.set(b"s", b"1", expire=0))
        self.assertOnServer(b"s", b"1")
        self.assertTrue(a.add(b"n", b"10"))
        self.assertFalse(a.add(b"n", b"11"))
        self.assertTrue(a.replace(b"n", b"20"))
        self.assertFalse(a.replace(b"nope", b"1"))
        self.assertTrue(a.append(b"s", b"2"))
        self.assertTrue(a.prepend(b"s", b"0"))
        self.assertOnServer(b"s", b"012")
        value, cas = a.gets(b"s")
        self.assertEqual(value, b"012")
        self.assertTrue(a.cas(b"s", b"new", cas))
        self.assertFalse(a.cas(b"s", b"stale", cas))
        self.assertOnServer(b"s", b"new")
        self.assertEqual(a.incr(b"n", 5), 25)
        self.assertEqual(a.decr(b"n", 3), 22)
        self.assertIsNone(a.incr(b"nope", 1))
        self.assertOnServer(b"n", b"22")
        self.assertTrue(a.touch(b"n", 100))
        self.assertFalse(a.touch(b"nope", 100))
        self.assertTrue(a.delete(b"n"))
        self.assertFalse(a.delete(b"n"))
        self.assertEqual(holders(b"app1:n"), [])
        # noreply forms (pymemcache's default for storage)
        a.set(b"q", b"v", noreply=True)
        a.delete(b"s", noreply=True)
        self.assertEqual(a.get(b"q"), b"v")
        self.assertIsNone(a.get(b"s"))
        self.assertOnServer(b"q", b"v")

    def test_gat_gats_and_gets_give_back_the_clients_keys(self):
        a = self.client("a")
        a.set(b"t", b"tv", expire=0)
        reply = self.call("a", b"gat 100 t nope\r\n")
        self.assertEqual(reply, h.value_reply(b"t", b"tv"))
        reply = self.call("a", b"gats 100 t\r\n")
        self.assertTrue(reply.startswith(b"VALUE t 0 2 "), reply)
        reply = self.call("a", b"gets t\r\n")
        self.assertTrue(reply.startswith(b"VALUE t 0 2 "), reply)
        self.assertTrue(reply.endswith(b"\r\ntv\r\nEND\r\n"), reply)

    def test_multi_get_across_servers_in_order(self):
        a = self.client("a")
        keys = [b"g%d" % i for i in range(50)]
        a.set_many({k: b"v-" + k for k in keys if k != b"g7"})
        owners = set(i for k in keys if k != b"g7" for i in holders(b"app1:" + k))
        self.assertGreaterEqual(len(owners), 2)     # fanned out
        asked = [keys[3]] + keys + [b"missing", keys[3]]
        for cmd in (b"get", b"gets", b"gat 0"):
            reply = self.call("a", cmd + b" " + b" ".join(asked) + b"\r\n")
            got = [k for k, _, _ in h.parse_values(reply)]
            self.assertEqual(got, [k for k in asked
                                   if k not in (b"g7", b"missing")], cmd)
        self.assertEqual(a.get_many(keys)[b"g9"], b"v-g9")
        self.assertEqual(len(a.get_many(keys)), 49)

    def test_single_server_large_reply(self):
        """A reply big enough for the buffer hand-over (server.c takes a
        whole reply without copying when it can): the prefix still goes."""
        a = self.client("a")
        big = b"x" * 200000
        a.set(b"big", big)
        self.assertEqual(self.call("a", b"get big\r\n"),
                         h.value_reply(b"big", big))


def answers(port, data, count):
    with h.Conn(port) as c:
        return c.call(data, count=count)


class TestKeyLength(PrefixCase):
    """A key the prefix (5 bytes) makes longer than 250 is answered as
    memcached answers a 251-byte key; 245 bytes still pass."""

    REQUESTS = [
        (b"set %s 0 0 1\r\nx\r\n", 2),          # data line read as a command
        (b"set %s 0 0 1 noreply\r\nx\r\n", 1),
        (b"get %s\r\n", 1),
        (b"get ok %s\r\n", 1),
        (b"gets %s ok\r\n", 1),
        (b"gat 10 %s\r\n", 1),
        (b"delete %s\r\n", 1),
        (b"incr %s 1\r\n", 1),
        (b"touch %s 10\r\n", 1),
        (b"append %s 0 0 1\r\nx\r\n", 2),
    ]

    def test_too_long_with_the_prefix(self):
        for req, count in self.REQUESTS:
            with self.subTest(req=req):
                want = answers(SERVERS[0].port, req % (b"k" * 251)
                               + b"version\r\n", count + 1)
                got = answers(PORTS["a"], req % (b"k" * 246)
                              + b"version\r\n", count + 1)
                # everything up to the version line is memcached's
                self.assertEqual(got.rsplit(b"VERSION", 1)[0],
                                 want.rsplit(b"VERSION", 1)[0])
                if b"noreply" not in req:
                    self.assertIn(b"CLIENT_ERROR bad command line format",
                                  got)

    def test_longest_key_that_fits(self):
        key = b"k" * 245
        self.assertEqual(self.call("a", h.set_cmd(key, b"v")), b"STORED\r\n")
        self.assertEqual(self.call("a", b"get %s\r\n" % key),
                         h.value_reply(key, b"v"))
        self.assertEqual(len(holders(b"app1:" + key)), 1)
        # the plain pool still takes 250
        key = b"p" * 250
        self.assertEqual(self.call("plain", h.set_cmd(key, b"v")),
                         b"STORED\r\n")


class TestLibmc(PrefixCase):
    def test_libmc_vectors_with_a_prefix(self):
        """A vector key c + x (c one byte) is where libmc with prefix c
        puts client key x (normalize_key(): c + x), and "?" + c + x where
        it puts "?" + x. Prefixes that memring takes, several per file."""
        files = sorted(f for f in os.listdir(VECTORS)
                       if f.startswith("libmc-") and f.endswith(".json"))
        self.assertGreaterEqual(len(files), 16)
        checked = 0
        for name in files:
            with open(os.path.join(VECTORS, name)) as f:
                v = json.load(f)
            if any(a for _, _, _, a in v["servers"]):
                continue            # aliases: locate prints the name
            groups = collections.defaultdict(list)
            for khex, want in zip(v["keys_hex"], v["expect"]):
                k = bytes.fromhex(khex)
                if k[:1] == b"?":
                    c, x = k[1:2], b"?" + k[2:]
                else:
                    c, x = k[:1], k[1:]
                    if x[:1] == b"?" or not x:
                        continue    # libmc would put c after that '?'
                # a prefix memring takes, one byte of YAML's UTF-8 text
                if len(c) == 1 and 0x20 < c[0] < 0x7f and c != b"?":
                    groups[c].append((x, want))
            for c, pairs in sorted(groups.items(),
                                   key=lambda kv: -len(kv[1]))[:3]:
                conf = h.write_conf(
                    os.path.join(DIR, "vec.yml"),
                    h.pool_yaml("p", "127.0.0.1:1", h.servers_yaml(
                        ["%s:%d" % (a, p) for a, p, _, _ in v["servers"]],
                        weights=[w for _, _, w, _ in v["servers"]]),
                        placement="libmc", hash=v["hash"],
                        prefix=json.dumps(c.decode())))
                out = subprocess.run(
                    [h.memring_bin(), "ring", "locate", "-c", conf],
                    input=b"".join(x + b"\n" for x, _ in pairs),
                    capture_output=True, timeout=60)
                self.assertEqual(out.returncode, 0, out.stderr)
                got = [line.rsplit(b"\t", 1)[1].decode()
                       for line in out.stdout.split(b"\n")[:-1]]
                self.assertEqual(got, [w for _, w in pairs],
                                 "%s prefix %r" % (name, c))
                checked += len(pairs)
        self.assertGreater(checked, 100)

    def test_libmc_pool_stores_where_it_locates(self):
        """The running proxy and the ring tool agree, prefix hashed: each
        key is on the server ring locate names; '?' keys keep it first."""
        lm = self.client("lm")
        keys = [b"l%d" % i for i in range(40)] + [b"?q%d" % i
                                                   for i in range(20)]
        for k in keys:
            lm.set(k, b"v" + k)
        addrs = [s.addr for s in SERVERS]
        for k, where in zip(keys, locate("lm", keys)):
            sk = b"?lm:" + k[1:] if k.startswith(b"?") else b"lm:" + k
            self.assertEqual([addrs[i] for i in holders(sk)], [where], k)
        reply = self.call("lm", b"get " + b" ".join(keys) + b"\r\n")
        self.assertEqual([k for k, _, _ in h.parse_values(reply)], keys)
        self.assertEqual(lm.get(b"?q3"), b"v?q3")


class TestConfig(unittest.TestCase):
    def test_config_endpoint_shows_the_prefix(self):
        status, body = h.http_request(PROXY.stats_port, "/config")[:2]
        self.assertEqual(status, 200)
        pools = {p["name"]: p for p in json.loads(body)["pools"]}
        self.assertEqual(pools["a"]["prefix"], "app1:")
        self.assertIsNone(pools["plain"]["prefix"])

    def test_bad_prefix_is_a_config_error(self):
        conf = h.write_conf(os.path.join(DIR, "bad.yml"), h.pool_yaml(
            "p", "127.0.0.1:1", ["127.0.0.1:11211"], prefix='"a b"'))
        out = subprocess.run([h.memring_bin(), "-t", "-c", conf],
                             capture_output=True, timeout=30)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn(b"bad.yml:3:11: prefix: a key prefix holds no space",
                      out.stdout + out.stderr)


if __name__ == "__main__":
    unittest.main()
