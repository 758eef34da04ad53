"""The ring tools: `memring ring locate` names the server a running memring
stores each key on (asked of the real memcached servers), and `memring
ring diff` predicts exactly which keys a config change leaves readable
(checked by reading them through a memring started on the new config)."""

import os
import random
import re
import shutil
import subprocess
import tempfile
import unittest

import harness as h

SERVERS = []        # five memcached shared by every test, flushed per test


def setUpModule():
    SERVERS.extend(h.Memcached().start() for _ in range(5))
    unittest.addModuleCleanup(h.stop_all, SERVERS)


def ring(*args, stdin=b"", timeout=60):
    """(exit status, stdout bytes, stderr text) of `memring ring ARGS`."""
    proc = subprocess.run([h.memring_bin(), "ring"] + list(args),
                          input=stdin, capture_output=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr.decode("utf-8",
                                                            "replace")


def odd_keys(n, seed):
    """n distinct keys memcached's text protocol takes: printable ASCII,
    bytes >= 0x80, hash tags, lengths 1..250."""
    rnd = random.Random(seed)
    alphabet = bytes(range(0x21, 0x7f)) + bytes(range(0x80, 0x100))
    keys = set()
    while len(keys) < n:
        kind = rnd.randrange(4)
        if kind == 0:
            k = b"user:%d" % rnd.randrange(10 ** 9)
        elif kind == 1:
            k = bytes(rnd.choice(alphabet)
                      for _ in range(rnd.randint(1, 250)))
        elif kind == 2:
            k = b"{tag%d}:%d" % (rnd.randrange(50), rnd.randrange(10 ** 6))
        else:
            k = bytes(rnd.choice(alphabet) for _ in range(rnd.randint(1, 8)))
        keys.add(k)
    return sorted(keys)


class RingCase(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="memring-ring-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        for s in SERVERS:
            s.flush()

    def conf(self, name, servers, port=None, names=None, weights=None,
             **keys):
        port = port or h.free_port()
        text = h.pool_yaml("alpha", port, h.servers_yaml(
            servers, weights=weights, names=names), **keys) + "\n"
        return h.write_conf(os.path.join(self.dir, name), text), port

    def start(self, path, port):
        return h.start_on_free_ports(
            lambda: h.Memring(path, wait=[(h.HOST, port)]))

    def store(self, port, keys):
        with h.Conn((h.HOST, port)) as c:
            for i in range(0, len(keys), 100):
                batch = keys[i:i + 100]
                c.send(b"".join(b"set %s 0 0 %d noreply\r\n%s\r\n"
                                % (k, len(k), k) for k in batch))
            self.assertEqual(c.call(b"version\r\n")[:8], b"VERSION ")

    def holders(self, keys):
        """{key: "host:port"} of the memcached servers holding each key."""
        where = {}
        for s in SERVERS:
            for k in keys:
                if s.raw_get(k) is not None:
                    self.assertNotIn(k, where, "key on two servers")
                    where[k] = s.addr
        return where

    def test_locate_names_the_server_memring_stores_on(self):
        names = ["a", "", "c", "", "e"]
        for keys_conf in (dict(hash="fnv1a_64", distribution="ketama"),
                          dict(hash="murmur", distribution="ketama",
                               hash_tag="\"{}\""),
                          dict(hash="crc32", distribution="modula")):
            with self.subTest(**keys_conf):
                for s in SERVERS:
                    s.flush()
                path, port = self.conf("locate.yml", SERVERS, names=names,
                                       weights=[1, 2, 1, 3, 1], **keys_conf)
                proxy = self.start(path, port)
                self.addCleanup(proxy.stop)
                keys = odd_keys(1500, 7)
                self.store(port, keys)
                rc, out, err = ring("locate", "-c", path,
                                    stdin=b"\n".join(keys) + b"\n")
                proxy.stop()
                self.assertEqual(rc, 0, err)
                lines = out.split(b"\n")
                self.assertEqual(lines[-1], b"")
                self.assertEqual(len(lines) - 1, len(keys))
                where = self.holders(keys)
                self.assertEqual(len(where), len(keys))
                by_addr = {s.addr: (names[i] or s.addr)
                           for i, s in enumerate(SERVERS)}
                for k, line in zip(keys, lines):
                    key, name, addr = line.split(b"\t")
                    self.assertEqual(key, k)
                    self.assertEqual(addr.decode(), where[k], k)
                    self.assertEqual(name.decode(), by_addr[where[k]])

    def test_locate_keys_as_arguments(self):
        path, _ = self.conf("args.yml", SERVERS[:3])
        rc, out, err = ring("locate", "-c", path, "k1", "k2", "--", "-k3")
        self.assertEqual(rc, 0, err)
        rows = [l.split(b"\t") for l in out.splitlines()]
        self.assertEqual([r[0] for r in rows], [b"k1", b"k2", b"-k3"])
        rc, single, _ = ring("locate", "-c", path, stdin=b"k2\n")
        self.assertEqual(single, out.splitlines(True)[1])

    def test_diff_predicts_the_hits_after_a_change(self):
        old, old_port = self.conf("old.yml", SERVERS[:4], hash="md5")
        new, new_port = self.conf("new.yml", SERVERS, hash="md5")
        keys = odd_keys(3000, 11)
        proxy = self.start(old, old_port)
        self.addCleanup(proxy.stop)
        self.store(old_port, keys)
        proxy.stop()
        keyfile = os.path.join(self.dir, "keys")
        with open(keyfile, "wb") as f:
            f.write(b"\n".join(keys) + b"\n")
        rc, out, err = ring("diff", "-c", old, new, "--keys", keyfile)
        self.assertEqual(rc, 0, err)
        text = out.decode("utf-8", "replace")
        m = re.match(r"pool alpha: (\d+) keys, (\d+) move \(([\d.]+)%\), "
                     r"expected hit ratio ([\d.]+)%\n", text)
        self.assertIsNotNone(m, text)
        nkeys, moved = int(m.group(1)), int(m.group(2))
        self.assertEqual(nkeys, len(keys))
        pairs = re.findall(r"^  \S+ (\S+) -> \S+ (\S+): (\d+) keys",
                           text, re.M)
        self.assertEqual(sum(int(p[2]) for p in pairs), moved)
        new_addr = SERVERS[4].addr
        self.assertTrue(pairs)
        for _, to, _ in pairs:      # ketama: a new server only takes keys
            self.assertEqual(to, new_addr)
        proxy = self.start(new, new_port)
        self.addCleanup(proxy.stop)
        hits = 0
        with h.Conn((h.HOST, new_port)) as c:
            for k in keys:
                reply = c.call(b"get %s\r\n" % k, until=b"END\r\n")
                hits += reply.startswith(b"VALUE ")
        self.assertEqual(hits, nkeys - moved)
        self.assertGreater(moved, 0)
        rc, same, err = ring("diff", "-c", old, old, "--keys", keyfile)
        self.assertIn(b"3000 keys, 0 move (0.00%), expected hit ratio "
                      b"100.00%", same)

    def test_diff_sample_and_pools_on_one_side(self):
        one = h.pool_yaml("alpha", h.free_port(),
                          h.servers_yaml(SERVERS[:4]))
        gone = h.pool_yaml("beta", h.free_port(), h.servers_yaml(SERVERS[:1]))
        fresh = h.pool_yaml("gamma", h.free_port(),
                            h.servers_yaml(SERVERS[1:2]))
        old = h.write_conf(os.path.join(self.dir, "o.yml"),
                           one + "\n" + gone + "\n")
        two = h.pool_yaml("alpha", h.free_port(), h.servers_yaml(SERVERS))
        new = h.write_conf(os.path.join(self.dir, "n.yml"),
                           two + "\n" + fresh + "\n")
        rc, out, err = ring("diff", old, new, "--sample", "200000")
        self.assertEqual(rc, 0, err)
        text = out.decode()
        m = re.search(r"pool alpha: 200000 keys, \d+ move \(([\d.]+)%\)",
                      text)
        self.assertIsNotNone(m, text)
        # One server in five added to a ketama ring takes about a fifth.
        self.assertTrue(10.0 < float(m.group(1)) < 30.0, text)
        self.assertIn("pool beta: not in %s: every key it holds is lost"
                      % new, text)
        self.assertIn("pool gamma: new in %s" % new, text)
        rc, only, _ = ring("diff", "-c", old, new, "--pool", "alpha",
                           "--sample", "1000")
        self.assertNotIn(b"beta", only)

    def test_admin_ring_diff_is_the_cli_report(self):
        """POST /ring/diff on the running config gives what `memring ring
        diff` says of the same two files; a bad body is a 400 naming it."""
        old, port = self.conf("old.yml", SERVERS[:4])
        new, _ = self.conf("new.yml", SERVERS, port=port)
        proxy = self.start(old, port)
        self.addCleanup(proxy.stop)
        with open(new, "rb") as f:
            body = f.read()
        status, report = h.http_request(proxy.stats_port,
                                        "/ring/diff?sample=50000",
                                        method="POST", body=body)
        self.assertEqual(status, 200, report)
        rc, out, err = ring("diff", old, new, "--sample", "50000")
        self.assertEqual(rc, 0, err)
        self.assertEqual(report, out)
        self.assertRegex(report.decode(), r"pool alpha: 50000 keys, [1-9]")
        status, report = h.http_request(proxy.stats_port, "/ring/diff",
                                        method="POST", body=b"alpha: [\n")
        self.assertEqual(status, 400)
        self.assertIn(b"conf: request body:", report)

    def test_errors(self):
        path, _ = self.conf("e.yml", SERVERS[:2])
        two = h.write_conf(os.path.join(self.dir, "two.yml"),
                           h.pool_yaml("p1", h.free_port(),
                                       h.servers_yaml(SERVERS[:1])) + "\n" +
                           h.pool_yaml("p2", h.free_port(),
                                       h.servers_yaml(SERVERS[1:2])) + "\n")
        bad = h.write_conf(os.path.join(self.dir, "bad.yml"),
                           "alpha:\n  listen: 127.0.0.1:1\n  hash: nope\n"
                           "  servers:\n    - 127.0.0.1:1:1\n")
        rnd, _ = self.conf("r.yml", SERVERS[:2], distribution="random")
        cases = [
            (["locate", "k"], "-c FILE is needed"),
            (["locate", "-c", two, "k"], "name one with --pool: p1 p2"),
            (["locate", "-c", two, "--pool", "zz", "k"], "has no pool zz"),
            (["locate", "-c", bad, "k"], "bad.yml:3:"),
            (["locate", "-c", rnd, "k"], "distribution random"),
            (["diff", "-c", path], "needs -c OLD NEW"),
            (["diff", "-c", path, path, "--sample", "x"], "--sample"),
            (["diff", "-c", path, path, "--keys", "/nonexistent"],
             "cannot open"),
            (["diff", "-c", path, two, "--pool", "zz"], "no pool zz"),
            (["frobnicate"], "unknown command"),
        ]
        for args, msg in cases:
            with self.subTest(args=args):
                rc, out, err = ring(*args)
                self.assertEqual(rc, 1, out)
                self.assertIn(msg, err)
        rc, out, _ = ring("--help")
        self.assertEqual(rc, 0)
        self.assertIn(b"memring ring locate", out)
        rc, two_ok, _ = ring("locate", "-c", two, "--pool", "p2", "k")
        self.assertEqual(two_ok, b"k\t%s\t%s\n" % (
            SERVERS[1].addr.encode(), SERVERS[1].addr.encode()))


if __name__ == "__main__":
    unittest.main()
