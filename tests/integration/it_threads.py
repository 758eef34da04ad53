"""memring --threads N: several workers, each with its own loop, sharing
the pool ports (SO_REUSEPORT). Every connection is served whichever worker
the kernel gives it to, the admin sums the workers, and a reload reaches
every worker."""

import json
import os
import sys
import tempfile
import threading
import unittest
import urllib.request

import harness as h

NTHREADS = 2
NCONNS = 24


def admin_get(port, path):
    with urllib.request.urlopen("http://%s:%d%s" % (h.HOST, port, path),
                                timeout=5) as r:
        return r.status, r.read()


def admin_post(port, path):
    req = urllib.request.Request("http://%s:%d%s" % (h.HOST, port, path),
                                 method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status, r.read()


class TestThreads(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="memring-it-")
        self.servers = [h.Memcached().start() for _ in range(3)]
        self.port = h.free_port()
        self.conf = os.path.join(self.dir, "memring.yml")
        self.write_conf([("alpha", self.port)])
        self.mr = h.Memring(self.conf, wait=[self.port],
                            args=("--threads", str(NTHREADS)))
        self.addCleanup(h.stop_all, self.servers)
        self.addCleanup(self.mr.stop)
        self.mr.start()

    def write_conf(self, pools):
        text = ""
        for name, port in pools:
            text += ("%s:\n  listen: %s:%d\n  hash: md5\n  servers:\n%s\n"
                     % (name, h.HOST, port, h.servers_yaml(self.servers)))
        with open(self.conf, "w") as f:
            f.write(text)

    def hammer(self, port, tag):
        """NCONNS clients at once, each on its own connection: set and get
        its own keys. Returns the list of errors (empty when all is well)."""
        errors = []

        def client(i):
            try:
                with h.Conn(port) as c:
                    for j in range(20):
                        k = b"%s:%d:%d" % (tag, i, j)
                        v = b"v%d" % j
                        got = c.call(b"set %s 0 0 %d\r\n%s\r\n"
                                     % (k, len(v), v))
                        if got != b"STORED\r\n":
                            errors.append((k, got))
                        got = c.call(b"get %s\r\n" % k)
                        if got != b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (
                                k, len(v), v):
                            errors.append((k, got))
            except Exception as e:       # noqa: BLE001 - reported below
                errors.append((i, repr(e)))

        threads = [threading.Thread(target=client, args=(i,))
                   for i in range(NCONNS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertFalse(any(t.is_alive() for t in threads), "client hung")
        return errors

    def test_every_connection_is_served_and_summed(self):
        before = json.loads(admin_get(self.mr.stats_port, "/stats")[1])
        self.assertEqual(self.hammer(self.port, b"a"), [])
        status, body = admin_get(self.mr.stats_port, "/stats")
        self.assertEqual(status, 200)
        st = json.loads(body)
        self.assertEqual(st["memring_workers"], NTHREADS)
        self.assertEqual(st["alpha"]["memring_total_connections"] -
                         before["alpha"]["memring_total_connections"], NCONNS)
        self.assertEqual(st["alpha"]["memring_cmd_set"], NCONNS * 20)
        # every worker has its own ring for the pool
        status, body = admin_get(self.mr.stats_port, "/config")
        conf = json.loads(body)
        rings = conf["pools"][0]["ring"]
        self.assertEqual(len(rings), NTHREADS, rings)

    def test_reload_reaches_every_worker(self):
        port2 = h.free_port()
        self.write_conf([("alpha", self.port), ("beta", port2)])
        status, body = admin_post(self.mr.stats_port, "/reload")
        self.assertEqual(status, 200, body)
        self.assertEqual(self.hammer(port2, b"b"), [])
        self.assertEqual(self.hammer(self.port, b"a"), [])
        st = json.loads(admin_get(self.mr.stats_port, "/stats")[1])
        self.assertEqual(st["beta"]["memring_total_connections"], NCONNS)


if __name__ == "__main__":
    sys.exit(h.run_tests(globals()))
