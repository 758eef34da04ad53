"""Backend failures as a client sees them through memring: a server stopped
(SIGSTOP) or killed (SIGKILL) under traffic, a server that answers garbage
or hangs up mid-value, ejection and return with auto_eject_hosts, fast
failure without it, and a thousand pipelined requests while a server dies.

Servers are real memcached on free 127.0.0.1 ports, plus a tiny fake
memcached (harness.FakeMemcached, a thread in this process) for the
replies a real one never sends. Where keys live is checked by asking the
servers directly. Timeouts are short (timeout: 300 ms) and the timing
assertions generous: they catch a timer that never fires or a loop that
blocks, not scheduling jitter.
"""

import os
import random
import signal
import socket
import sys
import threading
import time
import unittest

import harness as h

TIMEOUT_MS = 300
SLACK = 0.25            # s allowed past a deadline (timers, a loaded box)
FAST = 0.2              # s: a failure that needs no timer to fire


def make_cluster(test, nservers=3, **knobs):
    """A pool from failures.yml.in: md5 (spreads look-alike keys), short
    timeout, auto_eject on with limit 2; knobs override."""
    subs = dict(hash="md5", timeout=TIMEOUT_MS, auto_eject_hosts="true",
                server_retry_timeout=2000, server_failure_limit=2,
                preconnect="false", server_connections=1)
    subs.update(knobs)
    return h.Cluster(test, nservers=nservers, template="failures.yml.in",
                     **subs)


def assert_fast(test, tooks, what=""):
    """Requests that need no timer came back fast: at most one of tooks
    (seconds) over FAST, none past a timeout. One may be slow because
    the host pauses this guest now and then (steal): one such pause has
    added 238 ms to a request; a wait for a timer would show in them all."""
    over = [round(t, 3) for t in tooks if t >= FAST]
    test.assertLessEqual(len(over), 1, "%s: %d of %d over %.1f s: %s"
                         % (what, len(over), len(tooks), FAST, over))
    test.assertLess(max(tooks), TIMEOUT_MS / 1000 + SLACK, what)


def timed_call(conn, data, count=1, timeout=None):
    t = time.monotonic()
    reply = conn.call(data, count=count, timeout=timeout)
    return reply, time.monotonic() - t


def place_keys(cl, conn, n, prefix=b"k", min_each=6):
    """Sets at least n keys (value = b"v:" + key) through the proxy, more
    (in batches of n, at most 20 n in all) until every server holds at
    least min_each of them: where keys land depends on the servers' names,
    which hold the ports picked at random. Returns ({key: value},
    {Memcached: [keys]}) from asking every server."""
    values = {}
    owners = {s: [] for s in cl.servers}
    for batch in range(20):
        fresh = {}
        for i in range(batch * n, (batch + 1) * n):
            k = b"%s:%d" % (prefix, i)
            fresh[k] = b"v:" + k
        data = b"".join(b"set %s 0 0 %d\r\n%s\r\n" % (k, len(v), v)
                        for k, v in fresh.items())
        replies = conn.call(data, count=n)
        assert replies == b"STORED\r\n" * n, replies[:200]
        values.update(fresh)
        for s in cl.servers:
            held = s.raw_get_many(list(fresh))
            assert all(held[k] == fresh[k] for k in held)
            owners[s] = sorted(owners[s] + list(held))
        assert sum(len(v) for v in owners.values()) == len(values)
        if all(len(v) >= min_each for v in owners.values()):
            return values, owners
    raise AssertionError("a server holds fewer than %d of %d keys: %s" % (
        min_each, len(values), {s.addr: len(v) for s, v in owners.items()}))


def cluster_with_keys(test, nkeys=40, **knobs):
    """make_cluster + a client connection (closed by test's cleanup) +
    place_keys: (cluster, conn, values, owners)."""
    cl = make_cluster(test, **knobs)
    c = cl.conn()
    test.addCleanup(c.close)
    values, owners = place_keys(cl, c, nkeys)
    return cl, c, values, owners


def wait_home(conn, server, key, since, limit):
    """Sets key through the proxy (a new value each time, every 20 ms)
    until the value lands on server, asked directly. Returns how long
    after `since` the set that landed was sent; None if none did within
    `limit` seconds of `since`."""
    for i in range(2000):
        now = time.monotonic()
        if now > since + limit:
            break
        val = b"home%d" % i
        reply = conn.call(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(val), val),
                          timeout=5)
        assert reply == b"STORED\r\n", reply
        if server.raw_get(key) == val:
            return now - since
        time.sleep(0.02)
    return None


class Sampler(threading.Thread):
    """Gets healthy keys over its own connection every few ms and records
    each latency, until stopped (bounded: 30 s, 20000 requests)."""

    def __init__(self, port, values):
        super().__init__(daemon=True)
        self.port = port
        self.items = sorted(values.items())
        self.latencies = []
        self.errors = []
        self.halt = threading.Event()

    def run(self):
        deadline = time.monotonic() + 30
        try:
            with h.Conn(self.port, timeout=3) as c:
                for i in range(20000):
                    if self.halt.is_set() or time.monotonic() > deadline:
                        break
                    k, v = self.items[i % len(self.items)]
                    reply, took = timed_call(c, b"get %s\r\n" % k)
                    self.latencies.append(took)
                    if reply != h.value_reply(k, v):
                        self.errors.append((k, reply))
                    time.sleep(0.003)
        except Exception as e:          # reported by the test
            self.errors.append(("exception", repr(e)))

    def finish(self):
        self.halt.set()
        self.join(5)
        return not self.is_alive()


# ------------------------------------------------------------ SIGSTOP


class TestStoppedServer(unittest.TestCase):
    """SIGSTOP: the server's kernel still accepts connections and reads
    requests, but nothing answers. Only the timeout can tell."""

    def test_sigstop_times_out_ejects_and_others_stay_fast(self):
        # One worker: the sampler's connection shares the loop of the
        # stalled one, so a loop that waited on the stall would show.
        cl, c, values, owners = cluster_with_keys(self,
                                                  server_retry_timeout=30000,
                                                  args=("--threads", "1"))
        victim = cl.servers[0]
        vkeys = owners[victim]
        healthy = {k: values[k] for s in cl.servers[1:] for k in owners[s]}
        hk = sorted(healthy)

        sampler = Sampler(cl.port, healthy)
        sampler.start()
        self.addCleanup(sampler.finish)
        before = h.proxy_stats(cl.port)
        h.freeze(self, victim.pid)

        # Four requests in flight on the stalled connection, one of them a
        # multi-get that spans it: all are answered when the oldest one's
        # deadline passes, not one timeout after another.
        batch = (b"get %s\r\n" % vkeys[0] +
                 b"get %s %s %s\r\n" % (hk[0], vkeys[1], hk[1]) +
                 b"set %s 0 0 1\r\nx\r\n" % vkeys[2] +
                 b"get %s\r\n" % vkeys[3])
        replies, took = timed_call(c, batch, count=4, timeout=5)
        err = b"SERVER_ERROR connection timed out\r\n"
        spanning = b"".join(b"VALUE %s 0 %d\r\n%s\r\n"
                            % (k, len(values[k]), values[k])
                            for k in hk[:2]) + b"END\r\n"
        self.assertEqual(replies, err + spanning + err + err)
        self.assertGreaterEqual(took, TIMEOUT_MS / 1000 - 0.02)
        self.assertLess(took, TIMEOUT_MS / 1000 + SLACK)
        mid = h.stats_delta(before, h.proxy_stats(cl.port))
        # One closed connection is one failure, whatever it held.
        self.assertEqual(mid["server_ejects"], 0, mid)
        self.assertEqual(mid["forward_error"], 4, mid)
        self.assertEqual(mid["get_misses"], 1, mid)

        # The second failure (a new connection, accepted by the stopped
        # server's kernel, then silence) ejects it.
        reply, took2 = timed_call(c, b"get %s\r\n" % vkeys[0], timeout=5)
        self.assertEqual(reply, err)
        self.assertGreaterEqual(took2, TIMEOUT_MS / 1000 - 0.02)
        self.assertLess(took2, TIMEOUT_MS / 1000 + SLACK)
        self.assertEqual(h.stats_delta(before, h.proxy_stats(cl.port))["server_ejects"],
                         1)

        # Ejected: its keys now belong to the others, at once.
        tooks = []
        for k in vkeys:
            reply, took3 = timed_call(c, b"get %s\r\n" % k)
            self.assertEqual(reply, b"END\r\n", k)
            tooks.append(took3)
        assert_fast(self, tooks, "ejected server's keys")
        k = vkeys[0]
        self.assertEqual(c.call(b"set %s 0 0 3\r\nnew\r\n" % k),
                         b"STORED\r\n")
        self.assertEqual(c.call(b"get %s\r\n" % k), h.value_reply(k, b"new"))
        landed = [s for s in cl.servers[1:] if s.raw_get(k) == b"new"]
        self.assertEqual(len(landed), 1)
        # Healthy keys did not move.
        for s in cl.servers[1:]:
            self.assertEqual(s.raw_get_many(owners[s]),
                             {x: values[x] for x in owners[s]})

        # The stall never slowed the other servers' traffic.
        time.sleep(0.05)
        self.assertTrue(sampler.finish())
        self.assertEqual(sampler.errors, [])
        lat = sampler.latencies
        self.assertGreater(len(lat), 20)
        # A loop that waited on the stall would hold the sampler for both
        # timeouts (2 x 300 ms) in a few slow samples. The bound is on
        # their sum, not on the worst one: a single pause of this guest by
        # its host (steal) has shown as one 161 ms sample.
        slow = [x for x in lat if x > 0.05]
        sys.stderr.write("sigstop: timeout replies after %.3f s and %.3f s "
                         "(timeout %d ms); ejected %.3f s after the stop; "
                         "%d requests to other servers meanwhile, max "
                         "%.4f s, %d over 50 ms (%.3f s in all)\n"
                         % (took, took2, TIMEOUT_MS, took + took2, len(lat),
                            max(lat), len(slow), sum(slow)))
        self.assertLess(sum(slow), TIMEOUT_MS / 1000)

    def test_clients_gone_before_the_timeout(self):
        """Clients that hang up while their requests wait on a stalled
        server: the timeout later fails requests nobody waits for; memring
        must neither crash nor leak them into other clients' replies."""
        cl, c, values, owners = cluster_with_keys(self,
                                                  auto_eject_hosts="false")
        victim = cl.servers[0]
        vk = owners[victim]
        hk = owners[cl.servers[1]]
        h.freeze(self, victim.pid)
        for i in range(5):
            with cl.conn() as gone:
                gone.send(b"get %s\r\n" % vk[0] +
                          b"get %s %s %s\r\n" % (hk[0], vk[1], hk[1]) +
                          b"set %s 0 0 1 noreply\r\nx\r\n" % vk[2] +
                          b"get %s\r\n" % hk[2])
                if i % 2:
                    time.sleep(0.01)    # let the healthy replies queue up
        # A client that stays sees only its own replies, in order.
        reply, took = timed_call(c, b"get %s\r\nget %s\r\n"
                                 % (vk[3], hk[3]), count=2, timeout=5)
        self.assertEqual(reply, b"SERVER_ERROR connection timed out\r\n" +
                         h.value_reply(hk[3], values[hk[3]]))
        self.assertLess(took, TIMEOUT_MS / 1000 + SLACK)
        time.sleep(0.1)
        self.assertTrue(cl.proxy.alive(), cl.proxy.log_text()[-2000:])
        os.kill(victim.pid, signal.SIGCONT)
        for k in vk[:4] + hk[:4]:
            self.assertEqual(c.call(b"get %s\r\n" % k, timeout=5),
                             h.value_reply(k, values[k]))
        self.assertEqual(h.proxy_stats(cl.port)["client_connections"], 2)


# ------------------------------------------------------------ SIGKILL


class TestKilledServer(unittest.TestCase):
    """SIGKILL: connects are refused at once. Nothing waits for a timer;
    after server_retry_timeout the restarted server gets its keys back."""

    def test_sigkill_fails_fast_ejects_and_returns_home(self):
        retry = 1500
        cl, c, values, owners = cluster_with_keys(self, timeout=2000,
                                                  server_retry_timeout=retry,
                                                  server_failure_limit=2)
        victim = cl.servers[1]
        port = victim.port
        vkeys = owners[victim]
        before = h.proxy_stats(cl.port)

        victim.proc.kill()
        victim.proc.wait(5)
        time.sleep(0.1)     # let memring see its idle connection close

        # Exactly server_failure_limit fast failures, then its keys are
        # served by the others.
        errors = []
        tooks = []
        t_ejected = None
        for _ in range(10):
            reply, took = timed_call(c, b"get %s\r\n" % vkeys[0])
            tooks.append(took)
            if reply != b"END\r\n":
                errors.append(reply)
                t_ejected = time.monotonic()
                continue
            break
        assert_fast(self, tooks, "failures of a killed server")
        self.assertEqual(len(errors), 2, errors)
        for e in errors:
            self.assertIn(e, (b"SERVER_ERROR connection refused\r\n",
                              b"SERVER_ERROR cannot connect to server\r\n"))
        self.assertEqual(errors[0], b"SERVER_ERROR connection refused\r\n")
        self.assertEqual(h.stats_delta(before, h.proxy_stats(cl.port))["server_ejects"],
                         1)
        for k in vkeys:
            self.assertEqual(c.call(b"set %s 0 0 4\r\naway\r\n" % k),
                             b"STORED\r\n")
        for k in vkeys:
            self.assertEqual(
                sum(s.raw_get(k) == b"away" for s in cl.servers
                    if s is not victim), 1, k)

        # Same port again; it must come back after retry, not before.
        victim.start(port=port)
        away = wait_home(c, victim, vkeys[0], t_ejected, retry / 1000 + 2)
        self.assertIsNotNone(away, "server never came back")
        sys.stderr.write("sigkill: failures in <%.0f ms; back on the ring "
                         "%.3f s after ejection (server_retry_timeout "
                         "%d ms)\n" % (FAST * 1000, away, retry))
        self.assertGreaterEqual(away, retry / 1000 - 0.05)
        self.assertLess(away, retry / 1000 + 0.5)

        # Every key of the victim routes home again; the rest never moved.
        for k in vkeys:
            self.assertEqual(c.call(b"set %s 0 0 4\r\nhome\r\n" % k),
                             b"STORED\r\n")
        self.assertEqual(victim.raw_get_many(vkeys),
                         {k: b"home" for k in vkeys})
        for k in vkeys:
            self.assertEqual(c.call(b"get %s\r\n" % k),
                             h.value_reply(k, b"home"))
        for s in cl.servers:
            if s is not victim:
                self.assertEqual(s.raw_get_many(owners[s]),
                                 {x: values[x] for x in owners[s]})
        self.assertEqual(h.stats_delta(before, h.proxy_stats(cl.port))["server_ejects"],
                         1)

    def test_all_servers_down_then_back(self):
        retry = 1000
        cl, c, values, owners = cluster_with_keys(self, nkeys=20, nservers=2,
                                                  server_retry_timeout=retry,
                                                  server_failure_limit=1)
        ports = [s.port for s in cl.servers]
        h.stop_all(cl.servers)
        time.sleep(0.1)
        keys = sorted(values)
        replies = []
        tooks = []
        for k in keys[:10]:
            reply, took = timed_call(c, b"get %s\r\n" % k)
            tooks.append(took)
            replies.append(reply)
        assert_fast(self, tooks, "all servers down")
        t_down = time.monotonic()
        nowhere = b"SERVER_ERROR no server available\r\n"
        self.assertTrue(all(r.startswith(b"SERVER_ERROR ") for r in replies),
                        replies)
        self.assertEqual(replies[-1], nowhere)
        self.assertEqual(c.call(b"get %s\r\n" % b" ".join(keys)), nowhere)
        self.assertEqual(c.call(b"set x 0 0 1 noreply\r\nx\r\nget x\r\n"),
                         nowhere)
        self.assertEqual(h.proxy_stats(cl.port)["server_ejects"], 2)
        for s, port in zip(cl.servers, ports):
            s.start(port=port)
        for _ in range(300):
            if c.call(b"get %s\r\n" % keys[0]) != nowhere:
                break
            time.sleep(0.02)
        back = time.monotonic() - t_down
        self.assertLess(back, retry / 1000 + 0.5)
        # Fresh servers: misses, but served by the right ones again.
        for k in keys:
            self.assertEqual(c.call(b"set %s 0 0 1\r\ny\r\n" % k),
                             b"STORED\r\n")
        for s in cl.servers:
            self.assertEqual(sorted(s.raw_get_many(keys)), owners[s])


# ------------------------------------------------------------ no ejection


class TestWithoutEjection(unittest.TestCase):
    """auto_eject_hosts: false: a dead server keeps its keys, and its
    requests fail at once; reconnects back off instead of spinning."""

    def test_dead_server_fails_fast_others_unaffected(self):
        cl, c, values, owners = cluster_with_keys(self,
                                                  auto_eject_hosts="false",
                                                  timeout=2000)
        victim = cl.servers[2]
        vkeys = owners[victim]
        before = h.proxy_stats(cl.port)
        victim.proc.kill()
        victim.proc.wait(5)
        time.sleep(0.1)

        refused = cannot = n = 0
        tooks = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.0 and n < 100000:
            k = vkeys[n % len(vkeys)]
            reply, took = timed_call(c, b"get %s\r\n" % k)
            tooks.append(took)
            n += 1
            if reply == b"SERVER_ERROR connection refused\r\n":
                refused += 1
            elif reply == b"SERVER_ERROR cannot connect to server\r\n":
                cannot += 1
            else:
                self.fail("request %d for %s: %r" % (n, k, reply))
        sys.stderr.write("no-eject: %d requests in %.2f s to a dead server: "
                         "%d connect attempts refused, %d failed during "
                         "backoff; slowest %.4f s\n"
                         % (n, time.monotonic() - t0, refused, cannot,
                            max(tooks)))
        assert_fast(self, tooks, "no-eject")
        self.assertGreater(n, 50)
        # Backoff 10 ms doubling to 1 s: ~8 attempts in a second, not one
        # per request.
        self.assertGreaterEqual(refused, 2)
        self.assertLessEqual(refused, 12)
        self.assertGreater(cannot, refused)

        # The others are untouched, and nothing was ejected or moved.
        for s in cl.servers[:2]:
            for k in owners[s]:
                self.assertEqual(c.call(b"get %s\r\n" % k),
                                 h.value_reply(k, values[k]))
        d = h.stats_delta(before, h.proxy_stats(cl.port))
        self.assertEqual(d["server_ejects"], 0, d)
        self.assertEqual(d["forward_error"], n, d)
        reply = c.call(b"set %s 0 0 1\r\nx\r\n" % vkeys[0])
        self.assertTrue(reply.startswith(b"SERVER_ERROR "), reply)
        # noreply stays silent even when it fails
        hk = owners[cl.servers[0]][0]
        self.assertEqual(c.call(b"set %s 0 0 1 noreply\r\nx\r\n"
                                b"delete %s noreply\r\nget %s\r\n"
                                % (vkeys[1], vkeys[2], hk)),
                         h.value_reply(hk, values[hk]))
        # flush_all reaches the live servers and reports the dead one
        reply = c.call(b"flush_all\r\n")
        self.assertTrue(reply.startswith(b"SERVER_ERROR "), reply)
        for s in cl.servers[:2]:
            self.assertEqual(s.raw_get_many(owners[s]), {})

    def test_connect_timeout(self):
        """A server whose SYNs go unanswered (a listener with a full accept
        queue): the connect attempt times out after `timeout`."""
        real = h.Memcached().start()
        self.addCleanup(real.stop)
        lis = socket.socket()
        self.addCleanup(lis.close)
        lis.bind((h.HOST, 0))
        lis.listen(0)
        filler = socket.create_connection(lis.getsockname(), timeout=1)
        self.addCleanup(filler.close)
        black = "%s:%d" % lis.getsockname()
        cl = make_cluster(self, backends=[real], auto_eject_hosts="false",
                          servers=h.servers_yaml([real.addr, black]))
        c = cl.conn()
        self.addCleanup(c.close)
        # Find keys on each side: the black server's fail, real ones work.
        keys = [b"ct:%d" % i for i in range(12)]
        replies = []
        took_black = []
        took_real = []
        for k in keys:
            reply, took = timed_call(c, b"set %s 0 0 1\r\nx\r\n" % k,
                                     timeout=5)
            replies.append(reply)
            if reply != b"STORED\r\n":
                self.assertEqual(reply,
                                 b"SERVER_ERROR connect timed out\r\n")
                took_black.append(took)
            else:
                took_real.append(took)
        assert_fast(self, took_real, "real server's sets")
        self.assertTrue(took_black, "no key routed to the black server")
        self.assertIn(b"STORED\r\n", replies)
        sys.stderr.write("connect timeout: %d connects timed out after "
                         "%.3f..%.3f s (timeout %d ms)\n"
                         % (len(took_black), min(took_black),
                            max(took_black), TIMEOUT_MS))
        for took in took_black:
            self.assertGreaterEqual(took, TIMEOUT_MS / 1000 - 0.02)
            self.assertLess(took, TIMEOUT_MS / 1000 + SLACK)


class TestNoTimeout(unittest.TestCase):
    """`timeout: 0` means no timeout, as in twemproxy (msg_tmo_insert
    ignores timeouts <= 0): requests wait for a slow server as long as it
    takes, and connects are not cut short."""

    def test_timeout_zero_waits_for_a_stalled_server(self):
        cl, c, values, owners = cluster_with_keys(self, nkeys=20, timeout=0)
        self.assertEqual(h.proxy_stats(cl.port)["server_ejects"], 0)
        victim = cl.servers[0]
        k = owners[victim][0]
        h.freeze(self, victim.pid)
        c.send(b"get %s\r\n" % k)
        with self.assertRaises(h.ProtocolError):
            c.read_reply(timeout=0.5)
        os.kill(victim.pid, signal.SIGCONT)
        self.assertEqual(c.read_reply(timeout=5), h.value_reply(k, values[k]))


# ------------------------------------------------------------ bad replies


def fake_pool(owner, **knobs):
    """Sets owner.real (Memcached), owner.fake (h.FakeMemcached), owner.cl
    (memring in front of both), owner.fkeys / owner.rkeys (keys the fake /
    the real server owns; the real ones hold their own name as value).
    owner is a TestCase class (class cleanups) or instance."""
    add = (owner.addClassCleanup if isinstance(owner, type)
           else owner.addCleanup)
    owner.real = h.Memcached().start()
    add(owner.real.stop)
    owner.fake = h.FakeMemcached()
    add(owner.fake.stop)
    owner.cl = make_cluster(owner, backends=[owner.real],
                            servers=h.servers_yaml([owner.real.addr,
                                                    owner.fake.addr]),
                            **knobs)
    # Which keys the fake owns: the ones it is asked for.
    probe = [b"bad:%d" % i for i in range(60)]
    with owner.cl.conn() as c:
        for k in probe:
            c.call(b"get %s\r\n" % k)
        owner.fkeys = sorted(set(owner.fake.seen))
        owner.rkeys = [k for k in probe if k not in owner.fkeys]
        for k in owner.rkeys:
            c.call(b"set %s 0 0 %d\r\n%s\r\n" % (k, len(k), k))
    assert len(owner.fkeys) >= 4 and len(owner.rkeys) >= 4, owner.fkeys


class TestBadReplies(unittest.TestCase):
    """One real memcached and one FakeMemcached behind memring, without
    ejection: whatever the fake does, its requests get one SERVER_ERROR
    each, the client connection stays in step, and the real server's
    requests pipelined behind them are answered."""

    @classmethod
    def setUpClass(cls):
        fake_pool(cls, auto_eject_hosts="false")

    def setUp(self):
        self.fake.mode = "ok"
        self.c = self.cl.conn()
        self.addCleanup(self.c.close)
        self.before = h.proxy_stats(self.cl.port)

    def check_mode(self, mode, line, slow=False):
        """Three requests for the fake's keys, pipelined with two for the
        real server's: the fake's get `line`, the real ones their values,
        all in order; then the fake behaves again and the stream is in
        step."""
        fk, rk = self.fkeys, self.rkeys
        self.fake.mode = mode
        data = (b"get %s\r\n" % fk[0] + b"get %s\r\n" % rk[0] +
                b"set %s 0 0 2\r\nab\r\n" % fk[1] + b"get %s\r\n" % fk[2] +
                b"get %s\r\n" % rk[1])
        replies, took = timed_call(self.c, data, count=5, timeout=5)
        err = b"SERVER_ERROR " + line + b"\r\n"
        self.assertEqual(replies, err + h.value_reply(rk[0], rk[0]) + err +
                         err + h.value_reply(rk[1], rk[1]))
        if slow:
            self.assertGreaterEqual(took, TIMEOUT_MS / 1000 - 0.02)
            self.assertLess(took, TIMEOUT_MS / 1000 + SLACK)
        else:
            # No timer waited for: under the timeout's deadline (one sample,
            # so not FAST: a pause of this guest has added 238 ms).
            self.assertLess(took, TIMEOUT_MS / 1000 - 0.02)
        self.fake.mode = "ok"
        self.assertEqual(self.c.call(b"get %s\r\nget %s\r\n"
                                     % (fk[3], rk[2]), count=2),
                         b"END\r\n" + h.value_reply(rk[2], rk[2]))
        d = h.stats_delta(self.before, h.proxy_stats(self.cl.port))
        self.assertEqual(d["forward_error"], 3, d)
        self.assertEqual(d["server_ejects"], 0, d)
        return took

    def test_garbage(self):
        self.check_mode("garbage", b"invalid reply from server")

    def test_wrong_kind_of_reply(self):
        self.check_mode("wrong", b"unexpected reply from server")

    def test_close_mid_value(self):
        self.check_mode("midvalue", b"connection closed by server")

    def test_close_without_reply(self):
        self.check_mode("close", b"connection closed by server")

    def test_reset(self):
        self.check_mode("reset", b"connection reset by peer")

    def test_silent_times_out(self):
        took = self.check_mode("silent", b"connection timed out", slow=True)
        sys.stderr.write("silent fake: timed out after %.3f s (timeout "
                         "%d ms)\n" % (took, TIMEOUT_MS))

    def test_multiget_spanning_a_failing_server(self):
        fk, rk = self.fkeys, self.rkeys
        for mode in ("garbage", "partial", "midvalue"):
            self.fake.mode = mode
            reply = self.c.call(b"get %s %s %s %s %s\r\n"
                                % (rk[0], fk[0], rk[1], fk[1], rk[2]),
                                timeout=5)
            self.assertEqual(h.parse_values(reply),
                             [(rk[0], 0, rk[0]), (rk[1], 0, rk[1]),
                              (rk[2], 0, rk[2])], mode)
        d = h.stats_delta(self.before, h.proxy_stats(self.cl.port))
        self.assertEqual(d["forward_error"], 3, d)
        self.assertEqual(d["get_misses"], 6, d)
        self.assertEqual(d["get_hits"], 9, d)


class TestEjectionRules(unittest.TestCase):
    """The ejection rules end to end, with a fake server failing on
    command: failures must be consecutive, a readmitted server is on
    probation (its first failure ejects it again), and a success ends
    both the streak and the probation."""

    RETRY_MS = 500

    def setUp(self):
        fake_pool(self, server_failure_limit=2,
                  server_retry_timeout=self.RETRY_MS)
        self.c = self.cl.conn()
        self.addCleanup(self.c.close)

    def request(self, mode):
        """One get for a fake key with the fake in mode; the reply."""
        self.fake.mode = mode
        return self.c.call(b"get %s\r\n" % self.fkeys[0], timeout=5)

    def ejects(self):
        return h.proxy_stats(self.cl.port)["server_ejects"]

    def wait_return(self, since, mode):
        """Polls with the fake in mode until a request reaches it again;
        returns (how long after `since` that was, the reply it got)."""
        self.fake.mode = mode
        seen = len(self.fake.seen)
        for _ in range(500):
            now = time.monotonic()
            reply = self.c.call(b"get %s\r\n" % self.fkeys[1], timeout=5)
            if len(self.fake.seen) > seen:
                return now - since, reply
            self.assertEqual(reply, b"END\r\n")   # the real server's miss
            time.sleep(0.01)
        self.fail("the fake server never came back")

    def test_streak_probation_and_success(self):
        bad = b"SERVER_ERROR invalid reply from server\r\n"
        # failure, success, failure: no streak of two
        self.assertEqual(self.request("garbage"), bad)
        self.assertEqual(self.request("ok"), b"END\r\n")
        self.assertEqual(self.request("garbage"), bad)
        self.assertEqual(self.ejects(), 0)
        # the second in a row ejects: the fake's keys go to the real one
        self.assertEqual(self.request("garbage"), bad)
        t_ejected = time.monotonic()
        self.assertEqual(self.ejects(), 1)
        k = self.fkeys[0]
        self.assertEqual(self.c.call(b"set %s 0 0 2\r\nok\r\n" % k),
                         b"STORED\r\n")
        self.assertEqual(self.real.raw_get(k), b"ok")

        # back after retry, on probation: its first failure ejects it
        away, reply = self.wait_return(t_ejected, "garbage")
        t_ejected = time.monotonic()
        self.assertEqual(reply, bad)
        self.assertGreaterEqual(away, self.RETRY_MS / 1000 - 0.05)
        self.assertLess(away, self.RETRY_MS / 1000 + 0.5)
        self.assertEqual(self.ejects(), 2)
        self.assertEqual(self.request("garbage"), h.value_reply(k, b"ok"))

        # back again; a success ends probation: a streak of two again
        _, reply = self.wait_return(t_ejected, "ok")
        self.assertEqual(reply, b"END\r\n")
        self.assertEqual(self.request("garbage"), bad)
        self.assertEqual(self.ejects(), 2)
        self.assertEqual(self.request("garbage"), bad)
        self.assertEqual(self.ejects(), 3)
        sys.stderr.write("ejection rules: back %.3f s after ejection "
                         "(server_retry_timeout %d ms)\n"
                         % (away, self.RETRY_MS))


# ------------------------------------------------------------ pipeline


class TestPipelineWhileServerDies(unittest.TestCase):
    """A thousand requests pipelined on one connection across three
    servers; one server is killed when half are sent. Every request gets
    exactly one reply, in order, and each reply is the right one for its
    request."""

    N = 1000

    def test_thousand_in_flight_one_server_dies(self):
        cl = make_cluster(self, timeout=1000, server_retry_timeout=30000)
        c = cl.conn(timeout=10)
        self.addCleanup(c.close)
        values, owners = place_keys(cl, c, 150, prefix=b"pk")
        _, new_owners = place_keys(cl, c, 200, prefix=b"nk")
        victim = cl.servers[2]
        dead = set(owners[victim]) | set(new_owners[victim])
        keys = sorted(values)
        rnd = random.Random(7)

        reqs = []           # (kind, keys)
        nk = iter(sorted(k for s in new_owners.values() for k in s))
        for i in range(self.N):
            x = rnd.random()
            if x < 0.15:
                reqs.append(("set", [next(nk)]))
            elif x < 0.30:
                reqs.append(("get", rnd.sample(keys, 3)))
            else:
                reqs.append(("get", [rnd.choice(keys)]))

        def wire(kind, ks):
            if kind == "set":
                return b"set %s 0 0 3\r\nnew\r\n" % ks[0]
            return b"get %s\r\n" % b" ".join(ks)

        sender = c.sock.dup()
        self.addCleanup(sender.close)
        sender.settimeout(10)
        oops = []

        def send_all():
            try:
                for i in range(0, self.N, 20):
                    if i == self.N // 2:
                        victim.proc.kill()
                    sender.sendall(b"".join(wire(*r)
                                            for r in reqs[i:i + 20]))
                    time.sleep(0.002)
            except OSError as e:
                oops.append(e)

        t = threading.Thread(target=send_all, daemon=True)
        t.start()
        replies = c.read_replies(self.N, timeout=20)
        t.join(10)
        self.assertEqual(oops, [])
        self.assertEqual(c.read_all(quiet=0.3), b"")

        victim_ok = victim_failed = 0
        for i, ((kind, ks), reply) in enumerate(zip(reqs, replies)):
            where = "request %d %s %r: %r" % (i, kind, ks, reply[:200])
            if kind == "set":
                if ks[0] in dead:
                    self.assertTrue(reply == b"STORED\r\n" or
                                    reply.startswith(b"SERVER_ERROR "),
                                    where)
                else:
                    self.assertEqual(reply, b"STORED\r\n", where)
                continue
            if reply.startswith(b"SERVER_ERROR "):
                # Only a request all of whose keys were on the dead server
                # can fail whole; spanning gets turn its keys into misses.
                self.assertTrue(all(k in dead for k in ks), where)
                victim_failed += 1
                continue
            got = h.parse_values(reply)
            got_keys = [k for k, _, _ in got]
            self.assertEqual(got_keys, [k for k in ks if k in got_keys],
                             where)
            for k, flags, v in got:
                self.assertEqual((flags, v), (0, values[k]), where)
            for k in ks:
                if k not in dead:
                    self.assertIn(k, got_keys, where)
                elif k in got_keys:
                    victim_ok += 1
                else:
                    victim_failed += 1
        sys.stderr.write("pipeline: %d replies in order; dead server's "
                         "keys: %d answered before the kill, %d failed or "
                         "missed after\n"
                         % (len(replies), victim_ok, victim_failed))
        # The kill really happened mid-stream.
        self.assertGreater(victim_ok, 0)
        self.assertGreater(victim_failed, 0)
        # The connection is still in step.
        self.assertEqual(c.call(b"set after 0 0 2\r\nok\r\nget after\r\n",
                                count=2),
                         b"STORED\r\n" + h.value_reply(b"after", b"ok"))
        self.assertEqual(h.proxy_stats(cl.port)["server_ejects"], 1)


if __name__ == "__main__":
    sys.exit(h.run_tests(globals()))
