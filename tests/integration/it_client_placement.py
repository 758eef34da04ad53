"""placement: a pool places keys as the fleet's client library did, checked
against the real libraries Debian 12 ships:

- libmemcached 1.1 (libmemcached.so.11, through ctypes): for each of its
  distributions and hashes, memcached_generate_hash() names the server
  index of every key, for pools of 1 to 100 servers with weights (more
  than 100 trips an assertion inside libmemcached itself);
- python-memcached 1.59 (python3-memcache): Client._get_server() returns
  the server of every key; with a server marked dead, the server its
  rehash picks;
- the real clients writing to real memcached servers (pylibmc with
  ketama, python-memcached): memring on the same servers, with the
  matching placement, finds every key where the client put it;
- with auto_eject_hosts and a server killed, memring places keys where
  the library would with that server dead;
- libketama, libmc and hash_ring, which Debian does not ship: vectors
  their own code produced (vectors/gen_placement_vectors.py builds and
  runs it; vectors/*.json is what it wrote), key for key.

memring's side is `memring ring locate` (the rule pool_route uses) and a
running memring on real memcached servers."""

import ctypes
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import memcache
import pylibmc

import harness as h

LIBMEMCACHED = ctypes.CDLL("libmemcached.so.11")
LIBMEMCACHED.memcached_create.restype = ctypes.c_void_p
LIBMEMCACHED.memcached_create.argtypes = [ctypes.c_void_p]
LIBMEMCACHED.memcached_free.argtypes = [ctypes.c_void_p]
LIBMEMCACHED.memcached_server_add_with_weight.argtypes = [
    ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint16, ctypes.c_uint32]
LIBMEMCACHED.memcached_behavior_set.argtypes = [
    ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64]
LIBMEMCACHED.memcached_generate_hash.argtypes = [
    ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
LIBMEMCACHED.memcached_generate_hash.restype = ctypes.c_uint32

# enum memcached_behavior_t, memcached_server_distribution_t, memcached_hash_t
BEHAVIOR_HASH, BEHAVIOR_DISTRIBUTION, BEHAVIOR_KETAMA_WEIGHTED = 2, 9, 16
DIST = {"libmemcached_modula": 0, "libmemcached_ketama": 2}
LIBMEMCACHED_HASHES = ["default", "md5", "crc", "fnv1_64", "fnv1a_64",
                       "fnv1_32", "fnv1a_32", "murmur", "jenkins"]
HASH_CODE = {"default": 0, "md5": 1, "crc": 2, "fnv1_64": 3, "fnv1a_64": 4,
             "fnv1_32": 5, "fnv1a_32": 6, "hsieh": 7, "murmur": 8,
             "jenkins": 9}
POOL_SIZES = [1, 2, 3, 5, 10, 25, 47, 100]


def odd_keys(n, seed):
    """n keys of 1..60 bytes, printable, control and >= 0x80 bytes alike
    (no space, \\r or \\n: memcached's separators)."""
    rng = random.Random(seed)
    keys = set()
    while len(keys) < n:
        k = bytes(rng.choice([rng.randint(0x21, 0x7e), rng.randint(0x80, 0xff),
                              rng.randint(1, 0x1f)])
                  for _ in range(rng.randint(1, 60)))
        keys.add(k.replace(b"\n", b"n").replace(b"\r", b"r"))
    return sorted(keys)


def fleet(n, seed):
    """n (host, port, weight): ports 11211 (dropped from the point strings)
    and others, weights mostly 1."""
    rng = random.Random(seed)
    return [("10.%d.%d.%d" % (i // 250, rng.randint(0, 255), i % 250 + 1),
             rng.choice([11211, 11211, 11212, 21000 + i]),
             rng.choice([1, 1, 1, 2, 3, 10])) for i in range(n)]


def locate_rows(test, servers, keys, names=None, **pool_keys):
    """memring ring locate's (NAME, HOST:PORT, named) for each key, on a
    pool of servers [(host, port, weight)] with aliases `names`."""
    conf = os.path.join(test.dir, "locate.yml")
    h.write_conf(conf, h.pool_yaml(
        "p", "127.0.0.1:1",
        h.servers_yaml(["%s:%d" % (a, p) for a, p, _ in servers],
                       weights=[w for _, _, w in servers], names=names),
        **pool_keys))
    out = subprocess.run([h.memring_bin(), "ring", "locate", "-c", conf],
                         input=b"\n".join(keys) + b"\n", capture_output=True,
                         timeout=60)
    test.assertEqual(out.returncode, 0, out.stderr)
    lines = out.stdout.split(b"\n")[:-1]
    test.assertEqual(len(lines), len(keys))
    aliases = set(n for n in names or () if n)
    rows = []
    for line in lines:
        _, name, addr = line.rsplit(b"\t", 2)
        rows.append((name.decode(), addr.decode(), name.decode() in aliases))
    return rows


def locate(test, servers, keys, **pool_keys):
    """memring ring locate's HOST:PORT for each key."""
    return [addr for _, addr, _ in locate_rows(test, servers, keys,
                                               **pool_keys)]


def libmemcached_servers(servers, keys, dist=None, hash_name=None,
                         weighted=False):
    """libmemcached's server for each key: behaviours set first, then the
    servers added in order, as a C program would."""
    lib = LIBMEMCACHED
    m = lib.memcached_create(None)
    try:
        if weighted:
            lib.memcached_behavior_set(m, BEHAVIOR_KETAMA_WEIGHTED, 1)
        else:
            lib.memcached_behavior_set(m, BEHAVIOR_DISTRIBUTION, dist)
        if hash_name is not None:
            assert lib.memcached_behavior_set(m, BEHAVIOR_HASH,
                                              HASH_CODE[hash_name]) == 0
        for host, port, weight in servers:
            assert lib.memcached_server_add_with_weight(
                m, host.encode(), port, weight) == 0
        return ["%s:%d" % servers[lib.memcached_generate_hash(m, k, len(k))][:2]
                for k in keys]
    finally:
        lib.memcached_free(m)


def python_memcached_servers(servers, keys, dead=(), hash_function=None):
    """python-memcached's server for each key (Client._get_server), the
    servers in `dead` refusing to connect."""
    client = memcache.Client([("%s:%d" % (a, p), w) for a, p, w in servers])
    for s in client.servers:
        addr = "%s:%d" % (s.ip, s.port)
        s.connect = (lambda: 0) if addr in dead else (lambda: 1)
    saved = memcache.serverHashFunction
    if hash_function is not None:
        memcache.serverHashFunction = hash_function
    try:
        out = []
        for k in keys:
            s, _ = client._get_server(k)
            out.append(None if s is None else "%s:%d" % (s.ip, s.port))
        return out
    finally:
        memcache.serverHashFunction = saved


def cmemcache_hash_160(key):
    """python-memcached 1.60+'s cmemcache_hash: 1.59's without `or 1`
    (Debian 12 ships 1.59, so the newer rule is the shipped function with
    that one change)."""
    import binascii
    return ((binascii.crc32(key) & 0xffffffff) >> 16) & 0x7fff


class PlacementCase(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="memring-placement-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def assertSamePlaces(self, ours, theirs, what):
        wrong = [i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
        self.assertEqual(len(ours), len(theirs))
        self.assertFalse(wrong, "%s: %d of %d keys differ, first: ours %s, "
                         "the library's %s" % (what, len(wrong), len(ours),
                                               ours[wrong[0]] if wrong else "",
                                               theirs[wrong[0]] if wrong else ""))


class TestAgainstLibmemcached(PlacementCase):

    def test_modula_and_ketama_every_hash(self):
        for n in POOL_SIZES:
            servers = fleet(n, n)
            keys = odd_keys(1500, n)
            for hash_name in LIBMEMCACHED_HASHES:
                for placement, dist in DIST.items():
                    with self.subTest(servers=n, placement=placement,
                                      hash=hash_name):
                        self.assertSamePlaces(
                            locate(self, servers, keys, placement=placement,
                                   hash=hash_name),
                            libmemcached_servers(servers, keys, dist,
                                                 hash_name),
                            "%s %s, %d servers" % (placement, hash_name, n))

    def test_ketama_weighted(self):
        for n in POOL_SIZES:
            servers = fleet(n, 1000 + n)
            keys = odd_keys(3000, 1000 + n)
            with self.subTest(servers=n):
                self.assertSamePlaces(
                    locate(self, servers, keys,
                           placement="libmemcached_ketama_weighted"),
                    libmemcached_servers(servers, keys, weighted=True),
                    "ketama_weighted, %d servers" % n)

    def test_equal_weights_stay_unweighted(self):
        """All weights 1: the 100-point ring, which differs from the
        weighted one (so the weighted switch above is not vacuous)."""
        servers = [(a, p, 1) for a, p, _ in fleet(10, 7)]
        keys = odd_keys(2000, 7)
        ours = locate(self, servers, keys, placement="libmemcached_ketama")
        self.assertSamePlaces(ours, libmemcached_servers(servers, keys, 2),
                              "ketama, equal weights")
        weighted = libmemcached_servers(servers, keys, weighted=True)
        self.assertNotEqual(ours, weighted)


class TestAgainstPythonMemcached(PlacementCase):

    def test_table_with_weights(self):
        for n in POOL_SIZES + [130]:
            servers = fleet(n, 2000 + n)
            keys = odd_keys(3000, 2000 + n)
            with self.subTest(servers=n):
                self.assertSamePlaces(
                    locate(self, servers, keys,
                           placement="python_memcached_159"),
                    python_memcached_servers(servers, keys),
                    "python_memcached_159, %d servers" % n)
                self.assertSamePlaces(
                    locate(self, servers, keys, placement="python_memcached"),
                    python_memcached_servers(servers, keys,
                                             hash_function=cmemcache_hash_160),
                    "python_memcached, %d servers" % n)

    def test_releases_differ_on_hash_zero(self):
        """Keys whose 15-bit crc is 0: the two releases place them apart."""
        import binascii
        zero = [b"z%d" % i for i in range(300000)
                if (binascii.crc32(b"z%d" % i) >> 16) & 0x7fff == 0][:20]
        self.assertTrue(zero)
        servers = fleet(5, 3)
        old = locate(self, servers, zero, placement="python_memcached_159")
        new = locate(self, servers, zero, placement="python_memcached")
        self.assertSamePlaces(old, python_memcached_servers(servers, zero),
                              "1.59 on hash 0")
        self.assertNotEqual(old, new)


VECTORS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors")


class TestAgainstLibraryVectors(PlacementCase):
    """Every vectors/*.json: the pool (placement, hash, servers with
    weights and aliases) and what the library answered for each key."""

    def test_vectors(self):
        files = sorted(f for f in os.listdir(VECTORS) if f.endswith(".json"))
        self.assertGreaterEqual(len(files), 24)
        seen = set()
        for name in files:
            with open(os.path.join(VECTORS, name)) as f:
                v = json.load(f)
            seen.add(v["placement"])
            with self.subTest(vector=name):
                servers = [(h_, p, w) for h_, p, w, _ in v["servers"]]
                aliases = [a for _, _, _, a in v["servers"]]
                keys = [bytes.fromhex(k) for k in v["keys_hex"]]
                rows = locate_rows(self, servers, keys, names=aliases,
                                   placement=v["placement"], hash=v["hash"])
                ours = [name_ if alias_used else addr
                        for name_, addr, alias_used in rows]
                self.assertSamePlaces(ours, v["expect"], name)
        self.assertEqual(seen, {"libketama", "libmc", "hash_ring"})

    def test_libketama_server_file(self):
        """libketama's own server file (ip:port<TAB>weight lines) as the
        pool's servers_file: the same places as the vectors say."""
        for name in ("libketama-10.json", "libketama-47.json"):
            with open(os.path.join(VECTORS, name)) as f:
                v = json.load(f)
            sfile = os.path.join(self.dir, "ketama.servers")
            with open(sfile, "w") as f:
                f.write("# written as libketama reads it\n")
                for host, port, weight, _ in v["servers"]:
                    f.write("%s:%d\t%d\n" % (host, port, weight))
            conf = h.write_conf(os.path.join(self.dir, "file.yml"),
                                "p:\n  listen: 127.0.0.1:1\n"
                                "  placement: libketama\n"
                                "  servers_file: ketama.servers\n")
            keys = [bytes.fromhex(k) for k in v["keys_hex"]]
            out = subprocess.run([h.memring_bin(), "ring", "locate", "-c",
                                  conf], input=b"\n".join(keys) + b"\n",
                                 capture_output=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
            ours = [l.rsplit(b"\t", 1)[1].decode()
                    for l in out.stdout.split(b"\n")[:-1]]
            self.assertSamePlaces(ours, v["expect"], name + " via file")


def wait_ejected(test, port, key, timeout=10.0):
    """Asks for key until memring answers it (its server ejected)."""
    deadline = time.monotonic() + timeout
    with h.Conn(port) as c:
        while time.monotonic() < deadline:
            if c.call(b"get " + key + b"\r\n") == b"END\r\n":
                return
            time.sleep(0.05)
    test.fail("the killed server was not ejected in %.0f s" % timeout)


class TestRealFleet(PlacementCase):
    """Real clients and real memcached servers."""

    def start(self, servers, weights=None, **pool_keys):
        port = h.free_port()
        conf = h.write_conf(os.path.join(self.dir, "fleet.yml"), h.pool_yaml(
            "fleet", port, h.servers_yaml(servers, weights=weights),
            **pool_keys))
        proxy = h.Memring(conf, wait=[port])
        self.addCleanup(proxy.stop)
        proxy.start()
        return port

    def servers(self, n):
        out = []
        for _ in range(n):
            m = h.Memcached().start()
            self.addCleanup(m.stop)
            out.append(m)
        return out

    def read_all(self, port, keys):
        with h.Conn(port) as c:
            got = {}
            for i in range(0, len(keys), 50):
                reply = c.call(b"get " + b" ".join(keys[i:i + 50]) + b"\r\n")
                for k, _, v in h.parse_values(reply):
                    got[k] = v
        return got

    def test_pylibmc_fleet_moves_behind_memring_warm(self):
        """pylibmc with ketama on 4 servers, one weighted 2 (libmemcached
        then uses its weighted ring): memring with libmemcached_ketama
        reads every key the client wrote."""
        servers = self.servers(4)
        weights = [1, 2, 1, 1]
        keys = [b"pl:%d:\xc3\xa9" % i for i in range(2000)]
        client = pylibmc.Client(
            ["%s:%d" % (s.addr, w) for s, w in zip(servers, weights)],
            behaviors={"ketama": True})
        for k in keys:
            client.set(k, b"v" + k)
        port = self.start(servers, weights, placement="libmemcached_ketama")
        got = self.read_all(port, keys)
        self.assertEqual(len(got), len(keys))
        self.assertEqual(got, {k: b"v" + k for k in keys})

    def test_python_memcached_fleet_moves_behind_memring_warm(self):
        servers = self.servers(3)
        weights = [1, 3, 1]
        keys = [b"pm:%d" % i for i in range(2000)]
        client = memcache.Client(
            [(s.addr, w) for s, w in zip(servers, weights)])
        for k in keys:
            self.assertTrue(client.set(k.decode(), "v"))
        client.disconnect_all()
        port = self.start(servers, weights, placement="python_memcached_159")
        got = self.read_all(port, keys)
        self.assertEqual(len(got), len(keys))
        self.assertTrue(all(s.raw_get_many(keys[:200]) for s in servers))

    def check_dead_server(self, placement, expect):
        """auto_eject_hosts, server 1 of 4 killed: memring places keys as
        expect(addresses, keys, dead address) says the library does."""
        servers = self.servers(4)
        addrs = [s.addr for s in servers]
        port = self.start(servers, placement=placement, timeout=2000,
                          auto_eject_hosts=True, server_failure_limit=1,
                          server_retry_timeout=60000)
        keys = odd_keys(800, 11)
        before = locate(self, [(h.HOST, s.port, 1) for s in servers], keys,
                        placement=placement)
        victim = servers[1]
        victim.proc.kill()
        victim.proc.wait(5)
        wait_ejected(self, port, keys[before.index(addrs[1])])
        with h.Conn(port) as c:
            for k in keys:
                self.assertEqual(c.call(h.set_cmd(k, b"x")), b"STORED\r\n")
        want = expect(addrs, keys, addrs[1])
        held = {}
        for s, a in zip(servers, addrs):
            if s is not victim:
                for k in s.raw_get_many(keys):
                    held[k] = a
        self.assertSamePlaces([held.get(k) for k in keys], want,
                              "%s with a dead server" % placement)
        moved = sum(b == addrs[1] for b in before)
        self.assertGreater(moved, 0)

    def test_python_memcached_rehashes_around_a_dead_server(self):
        def expect(addrs, keys, dead):
            servers = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1]), 1)
                       for a in addrs]
            return python_memcached_servers(servers, keys, dead={dead})
        self.check_dead_server("python_memcached_159", expect)

    def test_libmemcached_ketama_rebuilds_without_a_dead_server(self):
        def expect(addrs, keys, dead):
            live = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1]), 1)
                    for a in addrs if a != dead]
            return libmemcached_servers(live, keys, DIST["libmemcached_ketama"])
        self.check_dead_server("libmemcached_ketama", expect)


if __name__ == "__main__":
    sys.exit(h.run_tests(globals()))
