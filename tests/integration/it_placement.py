"""Placement parity: memring must put every key on the same memcached server
as nutcracker (twemproxy 0.5.0) does, given the very same config file.

For each config, both proxies run in turn in front of the same, freshly
flushed memcached servers; every key of tests/data/placement/keys.txt is set
through the proxy and then looked up on each server directly. The two
key -> server maps must be identical.

Also the library for scripts/gen-placement-vectors, which records
nutcracker's placement into tests/data/placement/ for the unit tests.

Run: /usr/bin/python3 it_placement.py [name-filter...]
Env: MEMRING_BIN (built memring), MEMRING_SOURCE_DIR (repo root).
"""

import os
import random
import shutil
import socket
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

HASHES = ["one_at_a_time", "md5", "crc16", "crc32", "crc32a", "fnv1_64",
          "fnv1a_64", "fnv1_32", "fnv1a_32", "hsieh", "murmur", "jenkins"]
DATA_DIR = os.path.join(harness.source_dir(), "tests", "data", "placement")
KEYS_FILE = os.path.join(DATA_DIR, "keys.txt")
SET_BATCH = 100                 # pipelined sets per round trip
MAX_EJECT_PROBES = 2000         # sets sent to find dead servers, at most


# ---------------------------------------------------------------- keys

def escape_key(key):
    """keys.txt form: printable ASCII as is; '\\', '#' and every other
    byte as \\xHH, so the file stays ASCII, one key per line, and '#'
    starts only comments."""
    return "".join(chr(b) if 0x21 <= b <= 0x7e and b not in b"\\#" else
                   "\\x%02x" % b for b in key)


def unescape_key(text):
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "\\":
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
        else:
            out.append(ord(text[i]))
            i += 1
    return bytes(out)


def load_keys(path=KEYS_FILE):
    """The shared key set: every line not starting with '#'."""
    with open(path) as f:
        return [unescape_key(line.rstrip("\n")) for line in f
                if line.strip() and not line.startswith("#")]


# ---------------------------------------------------------------- configs

def pool_yaml(listen, servers, hash_name="fnv1a_64", dist="ketama",
              hash_tag=None, eject=False, pool="placement"):
    """A one-pool nutcracker config. servers: [(addr, weight, alias|None)].
    eject=True ejects a server on its first failure for an hour, so that
    dead servers leave the ring and stay out while keys are recorded."""
    keys = dict(hash=hash_name, distribution=dist, timeout=2000,
                preconnect=False)
    if hash_tag:
        keys["hash_tag"] = '"%s"' % hash_tag
    if eject:
        keys.update(auto_eject_hosts=True, server_retry_timeout=3600000,
                    server_failure_limit=1)
    else:
        keys["auto_eject_hosts"] = False
    return harness.pool_yaml(pool, listen, harness.servers_yaml(
        [a for a, _, _ in servers], [w for _, w, _ in servers],
        [n for _, _, n in servers]), **keys)


def short_port_memcached(tries=200):
    """A memcached on a free port in 7000..9999. Its "host:port" name is one
    byte shorter than those on ephemeral ports (32768..60999) but compares
    higher bytewise, so only twemproxy's sort (shorter names first) puts it
    ahead of them."""
    rng = random.Random()
    for _ in range(tries):
        port = rng.randrange(7000, 10000)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((harness.HOST, port))
        except OSError:
            continue
        try:
            return harness.Memcached().start(port=port)
        except RuntimeError:
            continue
    raise RuntimeError("no free port below 10000")


# ---------------------------------------------------------------- recording

def _set_cmd(key):
    return b"set " + key + b" 0 0 1\r\nv\r\n"


def eject_dead(conn, keys, ndead):
    """Send sets one by one until ndead of them fail: each failure is a
    dead server being ejected (server_failure_limit: 1)."""
    failures = 0
    for i in range(MAX_EJECT_PROBES):
        if failures == ndead:
            return
        reply = conn.call(_set_cmd(keys[i % len(keys)]))
        if reply != b"STORED\r\n":
            failures += 1
    raise AssertionError("only %d of %d dead servers were hit"
                         % (failures, ndead))


def record_placement(proxy_port, backends, keys, ndead=0):
    """Set every key through the proxy on proxy_port, then ask each backend
    which keys it holds. Returns [backend position] in key order. Backends
    are flushed first; ndead > 0 first ejects that many dead servers."""
    for m in backends:
        m.flush()
    with harness.Conn(proxy_port, timeout=10) as c:
        if ndead:
            eject_dead(c, keys, ndead)
            for m in backends:
                m.flush()
        for i in range(0, len(keys), SET_BATCH):
            batch = keys[i:i + SET_BATCH]
            c.send(b"".join(_set_cmd(k) for k in batch))
            for k, reply in zip(batch, c.read_replies(len(batch))):
                if reply != b"STORED\r\n":
                    raise AssertionError("set %r: %r" % (k, reply))
    owner = {}
    for pos, m in enumerate(backends):
        for k in m.raw_get_many(keys):
            if k in owner:
                raise AssertionError("key %r on two servers" % k)
            owner[k] = pos
    missing = [k for k in keys if k not in owner]
    if missing:
        raise AssertionError("%d keys on no server, e.g. %r"
                             % (len(missing), missing[:3]))
    return [owner[k] for k in keys]


def write_conf(work_dir, name, text):
    """work_dir/name holding text (scripts/gen-placement-vectors uses it)."""
    return harness.write_conf(os.path.join(work_dir, name), text)


def run_proxy(cls, conf, port, backends, keys, ndead=0):
    """Runs proxy class cls (harness.Nutcracker or harness.Memring) on conf,
    listening on port; records the placement, then stops the proxy."""
    log = "%s.%s.log" % (conf, cls.__name__.lower())
    proxy = cls(conf, wait=[port], log=log)
    proxy.start()
    try:
        return record_placement(port, backends, keys, ndead)
    finally:
        proxy.stop()


# ---------------------------------------------------------------- the test

class Placement(unittest.TestCase):
    """Same config file, same servers: nutcracker and memring must agree."""

    NSERVERS = 130

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="memring-it-placement-")
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        cls.servers = []
        cls.addClassCleanup(harness.stop_all, cls.servers)
        cls.servers.append(short_port_memcached())
        for _ in range(cls.NSERVERS - 1):
            cls.servers.append(harness.Memcached().start())
        cls.keys = load_keys()

    def compare(self, nservers, hash_name="fnv1a_64", dist="ketama",
                weights=None, aliases=None, hash_tag=None, ndead=0):
        """nservers live backends; ndead more entries (listed first) point
        at ports nothing listens on and must be ejected by both proxies."""
        # listed backwards, so the short-port server is not first in the
        # file and the proxies' name sort has work to do
        backends = self.servers[:nservers][::-1]
        addrs = ["%s:%d" % (harness.HOST, harness.free_port())
                 for _ in range(ndead)] + [m.addr for m in backends]
        servers = [(a, weights[i] if weights else 1,
                    aliases[i] if aliases else None)
                   for i, a in enumerate(addrs)]
        port = harness.free_port()
        text = pool_yaml("%s:%d" % (harness.HOST, port), servers, hash_name,
                         dist, hash_tag, eject=ndead > 0)
        name = "%s.yml" % self.id().split(".")[-1]
        conf = write_conf(self.dir, name, text)
        want = run_proxy(harness.Nutcracker, conf, port, backends, self.keys,
                         ndead)
        got = run_proxy(harness.Memring, conf, port, backends, self.keys,
                        ndead)
        diff = [(self.keys[i], backends[w].addr, backends[g].addr)
                for i, (w, g) in enumerate(zip(want, got)) if w != g]
        if diff:
            self.fail("%s: %d of %d keys placed differently (key, nutcracker,"
                      " memring), first ones: %r" % (name, len(diff),
                                                     len(self.keys), diff[:5]))

    def test_ketama_every_hash(self):
        for h in HASHES:
            with self.subTest(hash=h):
                self.compare(5, hash_name=h)

    def test_modula_every_hash_weighted(self):
        for h in HASHES:
            with self.subTest(hash=h):
                self.compare(4, hash_name=h, dist="modula",
                             weights=[1, 2, 1, 3])

    def test_ketama_single_server(self):
        self.compare(1)

    def test_ketama_ten_weighted(self):
        self.compare(10, hash_name="murmur",
                     weights=[3, 1, 4, 1, 5, 9, 2, 6, 5, 3])

    def test_ketama_aliases_weighted(self):
        self.compare(5, hash_name="md5", weights=[1, 2, 3, 4, 10],
                     aliases=["alpha", "b", "cc", "delta", "e5"])

    def test_ketama_starved_weight(self):
        # weight 1 against 1000: the small server gets no ketama points
        self.compare(2, weights=[1000, 1])

    def test_ketama_hash_tag(self):
        self.compare(10, hash_name="jenkins", hash_tag="{}")

    def test_modula_hash_tag_same_chars(self):
        self.compare(5, hash_name="fnv1a_32", dist="modula", hash_tag="::")

    def test_ketama_100(self):
        self.compare(100)

    def test_ketama_130_aliases(self):
        self.compare(130, hash_name="hsieh",
                     aliases=["node-%d" % i for i in range(130)])

    def test_modula_100(self):
        self.compare(100, hash_name="crc32", dist="modula")

    def test_ketama_ejected_server(self):
        # auto_eject_hosts with one dead server: its points leave the ring
        self.compare(5, hash_name="one_at_a_time", ndead=1)

    def test_modula_ejected_servers(self):
        self.compare(4, hash_name="murmur", dist="modula",
                     weights=[2, 1, 3, 1, 2, 2], ndead=2)


if __name__ == "__main__":
    sys.exit(harness.run_tests(globals()))
