"""memring --threads N: several workers, each with its own loop, sharing
the pool ports (SO_REUSEPORT). Every connection is served whichever worker
the kernel gives it to, the admin sums the workers, and a reload reaches
every worker."""

import json
import os
import sys
import tempfile
import threading
import time
import unittest

import harness as h

NTHREADS = 2
NCONNS = 24


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
        h.write_conf(self.conf, "\n".join(
            h.pool_yaml(name, port, self.servers, hash="md5")
            for name, port in pools))

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

    def settled_stats(self, limit=5.0):
        """/stats once memring_total_connections holds still for 0.3 s: the
        harness's readiness probe may sit in a worker's accept queue until
        that worker's loop first runs (slow under ASan), and would then be
        counted after the test took its `before`."""
        deadline = time.monotonic() + limit
        last = h.admin_stats(self.mr.stats_port)
        while time.monotonic() < deadline:
            time.sleep(0.3)
            now = h.admin_stats(self.mr.stats_port)
            if (now["alpha"]["memring_total_connections"] ==
                    last["alpha"]["memring_total_connections"]):
                return now
            last = now
        return last

    def test_every_connection_is_served_and_summed(self):
        before = self.settled_stats()
        self.assertEqual(self.hammer(self.port, b"a"), [])
        status, body = h.http_request(self.mr.stats_port, "/stats")
        self.assertEqual(status, 200)
        st = json.loads(body)
        self.assertEqual(st["memring_workers"], NTHREADS)
        self.assertEqual(st["alpha"]["memring_total_connections"] -
                         before["alpha"]["memring_total_connections"], NCONNS)
        self.assertEqual(st["alpha"]["memring_cmd_set"], NCONNS * 20)
        # every worker has its own ring for the pool
        status, body = h.http_request(self.mr.stats_port, "/config")
        conf = json.loads(body)
        rings = conf["pools"][0]["ring"]
        self.assertEqual(len(rings), NTHREADS, rings)

    def test_reload_reaches_every_worker(self):
        port2 = h.free_port()
        self.write_conf([("alpha", self.port), ("beta", port2)])
        status, body = h.http_request(self.mr.stats_port, "/reload",
                                      "POST")
        self.assertEqual(status, 200, body)
        self.assertEqual(self.hammer(port2, b"b"), [])
        self.assertEqual(self.hammer(self.port, b"a"), [])
        st = h.admin_stats(self.mr.stats_port)
        self.assertEqual(st["beta"]["memring_total_connections"], NCONNS)


class TestSharedState(unittest.TestCase):
    """What one twemproxy process decides once holds once for all of
    memring's workers: a server is ejected for every worker by the failures
    any of them saw, and the connection limits count every worker's
    clients. Clients open many connections, which the kernel spreads over
    the workers (SO_REUSEPORT)."""

    def start(self, pool_extra, args=()):
        self.dir = tempfile.mkdtemp(prefix="memring-it-")
        self.servers = [h.Memcached().start() for _ in range(2)]
        self.addCleanup(h.stop_all, self.servers)
        self.port = h.free_port()
        conf = h.write_conf(os.path.join(self.dir, "memring.yml"),
                            h.pool_yaml("alpha", self.port, self.servers,
                                        hash="md5", timeout=1000,
                                        **pool_extra))
        self.mr = h.Memring(conf, wait=[self.port],
                            args=("--threads", str(NTHREADS)) + tuple(args))
        self.addCleanup(self.mr.stop)
        self.mr.start()

    def stats(self):
        return h.admin_stats(self.mr.stats_port)

    def test_ejection_is_shared_by_workers(self):
        self.start(dict(auto_eject_hosts=True, server_failure_limit=1,
                        server_retry_timeout=30000))
        dead = self.servers[1]
        with h.Conn(self.port) as c:
            for i in range(40):
                k = b"ej:%d" % i
                self.assertEqual(c.call(b"set %s 0 0 1\r\nx\r\n" % k),
                                 b"STORED\r\n")
        keys = [b"ej:%d" % i for i in range(40)
                if dead.raw_get(b"ej:%d" % i) is not None]
        self.assertTrue(keys, "no key landed on the second server")
        dead.stop()
        conns = [h.Conn(self.port) for _ in range(NCONNS)]
        try:
            # One failure on one connection ejects the server ...
            got = conns[0].call(b"get %s\r\n" % keys[0])
            self.assertTrue(got.startswith(b"SERVER_ERROR"), got)
            # ... for every connection, whichever worker serves it: its
            # keys go to the live server (a miss), with no second failure.
            for c in conns[1:]:
                self.assertEqual(c.call(b"get %s\r\n" % keys[0]),
                                 b"END\r\n")
        finally:
            for c in conns:
                c.close()
        st = self.stats()
        self.assertEqual(st["alpha"]["server_ejects"], 1)
        self.assertEqual(st["alpha"][dead.addr]["memring_server_failures"], 1)
        # Every worker's ring has the server off (each served some of the
        # connections above, and a ring catches up on its next request).
        rings = json.loads(h.http_request(self.mr.stats_port,
                                     "/config")[1])["pools"][0]["ring"]
        self.assertEqual(len(rings), NTHREADS)
        self.assertEqual([r["ejected_servers"] for r in rings],
                         [1] * NTHREADS, rings)

    def count_served(self, n):
        """Opens n connections one after another; returns how many were
        served (answer version) and how many refused with memcached's
        words and closed. All are closed on return."""
        served, refused, conns = 0, 0, []
        try:
            for _ in range(n):
                c = h.Conn(self.port)
                conns.append(c)
                got = c.call(b"version\r\n")
                if got.startswith(b"VERSION "):
                    served += 1
                else:
                    self.assertEqual(got, b"ERROR Too many open "
                                          b"connections\r\n")
                    c.expect_closed()
                    refused += 1
        finally:
            for c in conns:
                c.close()
        return served, refused

    def test_pool_client_limit_counts_every_worker(self):
        self.start(dict(client_connections=5))
        self.assertEqual(self.count_served(NCONNS), (5, NCONNS - 5))
        self.assertEqual(self.stats()["alpha"]["memring_client_refused"],
                         NCONNS - 5)
        # closed connections give their places back, in every worker
        h.wait_for(lambda: self.stats()["alpha"]["client_connections"] == 0)
        self.assertEqual(self.count_served(NCONNS), (5, NCONNS - 5))

    def test_max_clients_counts_every_worker(self):
        self.start({}, args=("--max-clients", "3"))
        self.assertEqual(self.count_served(NCONNS), (3, NCONNS - 3))


if __name__ == "__main__":
    sys.exit(h.run_tests(globals()))
