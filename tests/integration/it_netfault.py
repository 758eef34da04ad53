"""Network faults between memring and a backend, injected in the kernel the
way memcached's stability suite does it: the backend runs in a network
namespace this test creates, reached through a veth pair with link-local
addresses (169.254.X.Y/30), and traffic control on the namespace's end
delays, loses or drops its packets. A second memcached on 127.0.0.1 is
the healthy control. Checked: timeouts fire on time, every request gets
exactly one reply, nothing hangs, the namespace is gone afterwards.

How the faults are made:
  loss, blackhole  a classic-BPF tc filter (cls_bpf, direct-action) on the
                   clsact hooks of the namespace's veth end, both
                   directions: `ld rand; mod 100; jge P` -> pass or drop.
                   It needs no qdisc module and no iptables.
  delay            sch_netem on the namespace's veth end (the replies),
                   when the kernel has it. Kernels built without netem
                   (CONFIG_NET_SCH_NETEM unset, no modules) get the same
                   delay from a relay inside the namespace that holds
                   each chunk of the server's replies for the delay; the
                   test says which on stderr.

Runs as root (ip netns, tc). `it_netfault.py --relay ...` is the relay's
own entry point, started by the test inside the namespace.
"""

import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import harness as h
import it_failures as itf

TIMEOUT_MS = itf.TIMEOUT_MS
SLACK = itf.SLACK
MC_PORT = 11211         # in the namespace, every port is free
RELAY_PORT = 11311

DROP_ALL = "1,6 0 0 2"                          # ret TC_ACT_SHOT


def drop_some(pct):
    """cBPF: A = random; A %= 100; A >= pct ? TC_ACT_OK : TC_ACT_SHOT."""
    return "5,32 0 0 4294963256,148 0 0 100,53 1 0 %d,6 0 0 2,6 0 0 0" % pct


def run(argv, timeout=10):
    """Runs a command; RuntimeError naming it and its stderr on failure."""
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("`%s` exited %d: %s" % (
            " ".join(argv), p.returncode,
            (p.stderr or p.stdout).decode(errors="replace").strip()))
    return p.stdout.decode(errors="replace")


def free_link_local_net(start):
    """A third octet X (1..250) such that no interface here has an address
    in 169.254.X.0/24, trying from start on: parallel runs of this test
    pick different /24s (and each run takes /30s inside its own)."""
    used = run(["ip", "-4", "-o", "addr", "show"])
    for i in range(250):
        x = 1 + (start + i) % 250
        if " 169.254.%d." % x not in used:
            return x
    raise RuntimeError("no free 169.254.X.0/24 here")


class NetNs:
    """A network namespace joined to this one by a veth pair: host end
    169.254.X.(4i+1)/30, namespace end .(4i+2), for the i-th namespace of
    this process. Created by up(), removed by down() (idempotent; also
    after a failed up())."""

    def __init__(self, index=0):
        pid = os.getpid()
        self.name = "memring-nf-%d-%d" % (pid, index)
        self.host_if = "mrnf%dh%d" % (pid, index)
        self.ns_if = "mrnf%dn%d" % (pid, index)
        third = free_link_local_net(pid % 250)
        self.host_addr = "169.254.%d.%d" % (third, 4 * index + 1)
        self.ns_addr = "169.254.%d.%d" % (third, 4 * index + 2)
        self.netem = None       # None: unknown; True; or the error text
        self.clsact = False

    def ns(self, *argv):
        return ["ip", "netns", "exec", self.name] + list(argv)

    def up(self):
        run(["ip", "netns", "add", self.name])
        run(["ip", "link", "add", self.host_if, "type", "veth", "peer",
             "name", self.ns_if, "netns", self.name])
        run(["ip", "addr", "add", self.host_addr + "/30", "dev",
             self.host_if])
        run(["ip", "link", "set", self.host_if, "up"])
        run(self.ns("ip", "addr", "add", self.ns_addr + "/30", "dev",
                    self.ns_if))
        run(self.ns("ip", "link", "set", self.ns_if, "up"))
        run(self.ns("ip", "link", "set", "lo", "up"))
        return self

    def down(self):
        for argv in (["ip", "link", "del", self.host_if],
                     ["ip", "netns", "del", self.name]):
            subprocess.run(argv, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=10)

    def exists(self):
        names = run(["ip", "netns", "list"]).split()
        links = subprocess.run(["ip", "link", "show", self.host_if],
                               capture_output=True, timeout=10)
        return self.name in names or links.returncode == 0

    def probe_netem(self):
        """True when sch_netem works here, else the failing command and
        its error (kept in self.netem)."""
        try:
            run(self.ns("tc", "qdisc", "add", "dev", "lo", "root", "netem",
                        "delay", "1ms"))
            run(self.ns("tc", "qdisc", "del", "dev", "lo", "root"))
            self.netem = True
        except RuntimeError as e:
            self.netem = str(e)
        return self.netem

    # -------------------------------------------------------- faults

    def drop(self, pct):
        """Drops pct% of the packets through the namespace's veth end, in
        each direction (100: a blackhole)."""
        self.clear_drop()
        if not self.clsact:
            run(self.ns("tc", "qdisc", "add", "dev", self.ns_if, "clsact"))
            self.clsact = True
        code = DROP_ALL if pct >= 100 else drop_some(pct)
        for hook in ("ingress", "egress"):
            run(self.ns("tc", "filter", "add", "dev", self.ns_if, hook,
                        "bpf", "da", "bytecode", code))

    def clear_drop(self):
        if self.clsact:
            for hook in ("ingress", "egress"):
                run(self.ns("tc", "filter", "del", "dev", self.ns_if, hook))

    def netem_delay(self, ms):
        """Delays the namespace's outgoing packets (netem); 0 removes."""
        if ms:
            run(self.ns("tc", "qdisc", "replace", "dev", self.ns_if, "root",
                        "netem", "delay", "%dms" % ms))
        else:
            subprocess.run(self.ns("tc", "qdisc", "del", "dev", self.ns_if,
                                   "root"), capture_output=True, timeout=10)


class NsMemcached(h.Memcached):
    """memcached inside a NetNs, on its link-local address."""

    def __init__(self, netns):
        super().__init__()
        self.netns = netns
        self.host = netns.ns_addr

    @property
    def addr(self):
        return "%s:%d" % (self.host, self.port)

    def start(self, port=MC_PORT):
        self.port = port
        self.argv = self.netns.ns(
            h.MEMCACHED_BIN, "-l", self.host, "-p", str(port), "-U", "0",
            "-m", "64", "-t", "1", "-u", "root")
        self.spawn()
        if not self.wait_ready([(self.host, port)]):
            self.stop()
            raise RuntimeError("memcached in %s did not start: %s"
                               % (self.netns.name, self.output()))
        return self

    def conn(self, timeout=h.IO_TIMEOUT):
        return h.Conn((self.host, self.port), timeout)


class Relay(h.Process):
    """The delaying relay inside the namespace (see relay_main): listens
    on ns_addr:RELAY_PORT, forwards to the namespace's memcached, and
    holds the replies for the delay written in its control file."""

    def __init__(self, netns, target_port, ctl):
        self.ctl = ctl
        self.set_delay(0)
        self.host, self.port = netns.ns_addr, RELAY_PORT
        super().__init__(netns.ns(sys.executable, os.path.abspath(__file__),
                                  "--relay", self.host, str(RELAY_PORT),
                                  str(target_port), ctl))

    @property
    def addr(self):
        return "%s:%d" % (self.host, self.port)

    def start(self):
        self.spawn()
        if not self.wait_ready([(self.host, self.port)]):
            self.stop()
            raise RuntimeError("relay did not start")
        return self

    def set_delay(self, ms):
        with open(self.ctl + ".tmp", "w") as f:
            f.write(str(ms))
        os.replace(self.ctl + ".tmp", self.ctl)


# ------------------------------------------------------------ module set-up

NET = None          # the namespace
NSMC = None         # memcached inside it
LOCAL = None        # memcached on 127.0.0.1
RELAY = None        # the delaying relay, when the kernel has no netem


def setUpModule():
    global NET, NSMC, LOCAL, RELAY
    NET = NetNs(0)
    unittest.addModuleCleanup(NET.down)
    NET.down()                  # a leftover from a killed run of this pid
    NET.up()
    if NET.probe_netem() is not True:
        sys.stderr.write("NOTE: no sch_netem on this kernel (%s); the "
                         "delay comes from a relay in the namespace, loss "
                         "and blackhole from cls_bpf as always\n"
                         % NET.netem)
    # clsact + cls_bpf must work: probe them now, loudly.
    NET.drop(100)
    NET.clear_drop()
    NSMC = NsMemcached(NET)
    unittest.addModuleCleanup(NSMC.stop)    # runs before NET.down
    NSMC.start()
    LOCAL = h.Memcached().start()
    unittest.addModuleCleanup(LOCAL.stop)
    if NET.netem is not True:
        ctl = os.path.join(tempfile.gettempdir(),
                           "memring-nf-relay-%d" % os.getpid())
        RELAY = Relay(NET, MC_PORT, ctl)
        unittest.addModuleCleanup(os.unlink, ctl)
        unittest.addModuleCleanup(RELAY.stop)
        RELAY.start()


def set_delay(ms):
    if RELAY is not None:
        RELAY.set_delay(ms)
        time.sleep(0.05)        # the relay reads its control file at 50 Hz
    else:
        NET.netem_delay(ms)


class NetCase(unittest.TestCase):
    """memring in front of LOCAL and the namespace's server (directly, or
    through the relay for delay tests on a kernel without netem)."""

    def start(self, via_relay=False, **knobs):
        ns_server = RELAY if via_relay and RELAY is not None else NSMC
        knobs.setdefault("auto_eject_hosts", "false")
        for s in (LOCAL, NSMC):
            s.flush()
        self.cl, self.c, self.values, owners = itf.cluster_with_keys(
            self, backends=[LOCAL, NSMC],
            servers=h.servers_yaml([LOCAL.addr, ns_server.addr]), **knobs)
        self.addCleanup(NET.clear_drop)
        self.addCleanup(set_delay, 0)
        self.nkeys = owners[NSMC]       # behind the faulty link
        self.lkeys = owners[LOCAL]
        # Connect before any fault: it must hit an established link.
        self.assertEqual(self.get(self.nkeys[0]), self.expect(self.nkeys[0]))

    def get(self, key, conn=None, timeout=None):
        return (conn or self.c).call(b"get %s\r\n" % key, timeout=timeout)

    def expect(self, key):
        return h.value_reply(key, self.values[key])

    def assertOnTime(self, took, what=""):
        self.assertGreaterEqual(took, TIMEOUT_MS / 1000 - 0.02, what)
        self.assertLess(took, TIMEOUT_MS / 1000 + SLACK, what)

    def local_latency(self):
        """Median latency of five gets of LOCAL's keys on a fresh
        connection, each checked (the median: one pause of this guest by
        its host must not read as a slow server)."""
        took = []
        with self.cl.conn() as c:
            for k in self.lkeys[:5]:
                reply, t = itf.timed_call(c, b"get %s\r\n" % k)
                self.assertEqual(reply, self.expect(k))
                took.append(t)
        return sorted(took)[len(took) // 2]


TIMED_OUT = (b"SERVER_ERROR connection timed out\r\n",
             b"SERVER_ERROR connect timed out\r\n")


class TestDelay(NetCase):

    def test_delay_below_timeout_is_only_slow(self):
        self.start(via_relay=True)
        set_delay(150)
        before = h.proxy_stats(self.cl.port)
        for k in self.nkeys[:8]:
            reply, took = itf.timed_call(self.c, b"get %s\r\n" % k)
            # The value itself is the proof that memring waited for it
            # and did not time out: no wall-clock upper bound (a paused
            # guest has made one such request take 388 ms end to end).
            self.assertEqual(reply, self.expect(k))
            self.assertGreaterEqual(took, 0.14)
        after = h.proxy_stats(self.cl.port)
        self.assertEqual(after["forward_error"] - before["forward_error"], 0)

    def test_delay_above_timeout_times_out_on_time(self):
        self.start(via_relay=True)
        set_delay(500)
        ks = self.nkeys[:10]
        batch = b"".join(b"get %s\r\n" % k for k in ks)
        replies, took = itf.timed_call(self.c, batch, count=len(ks),
                                       timeout=5)
        self.assertEqual(replies, TIMED_OUT[0] * len(ks))
        self.assertOnTime(took, "batch")
        self.assertLess(self.local_latency(), TIMEOUT_MS / 1000 / 2)
        # New connections meet the delay too (netem: at the handshake).
        for k in ks[:3]:
            reply, took = itf.timed_call(self.c, b"get %s\r\n" % k,
                                         timeout=5)
            self.assertIn(reply, TIMED_OUT)
            self.assertOnTime(took, reply)
        sys.stderr.write("delay 500 ms (%s): %d pipelined requests timed "
                         "out together after %.3f s (timeout %d ms)\n"
                         % ("netem" if RELAY is None else "relay", len(ks),
                            took, TIMEOUT_MS))
        # Delay gone: replies that arrived late were never handed to
        # anybody; every request now gets its own value.
        set_delay(0)
        time.sleep(0.6)         # the late replies land meanwhile
        for k in self.nkeys:
            self.assertEqual(self.get(k, timeout=5), self.expect(k))


class TestLoss(NetCase):

    def test_ten_percent_loss_every_request_one_reply(self):
        self.start()
        NET.drop(10)
        slow = failed = 0
        worst = 0.0
        t0 = time.monotonic()
        for i in range(60):
            k = self.nkeys[i % len(self.nkeys)]
            reply, took = itf.timed_call(self.c, b"get %s\r\n" % k,
                                         timeout=5)
            worst = max(worst, took)
            if reply in TIMED_OUT:
                failed += 1
            else:
                self.assertEqual(reply, self.expect(k), i)
                slow += took > 0.15
            # At worst a connect and then the request each wait `timeout`.
            self.assertLess(took, 2 * TIMEOUT_MS / 1000 + SLACK, reply)
        # Pipelined across both servers: one reply each, in order.
        ks = [k for pair in zip(self.nkeys, self.lkeys) for k in pair] * 2
        self.c.send(b"".join(b"get %s\r\n" % k for k in ks))
        got = self.c.read_replies(len(ks), timeout=10)
        self.assertEqual(self.c.read_all(quiet=0.3), b"")
        self.assertEqual(len(got), len(ks))
        for k, reply in zip(ks, got):
            if k in self.lkeys or reply not in TIMED_OUT:
                self.assertEqual(reply, self.expect(k))
        sys.stderr.write("10%% loss: 60 requests in %.2f s: %d slow "
                         "(retransmits), %d timed out, worst %.3f s\n"
                         % (time.monotonic() - t0, slow, failed, worst))
        # The fault was real: some requests needed a retransmission.
        self.assertGreater(slow + failed, 0)
        NET.clear_drop()
        time.sleep(0.1)
        for k in self.nkeys[:5]:
            self.assertEqual(self.get(k, timeout=5), self.expect(k))


class TestBlackhole(NetCase):

    RETRY_MS = 1000

    def test_blackhole_times_out_ejects_and_returns(self):
        self.start(auto_eject_hosts="true", server_failure_limit=2,
                   server_retry_timeout=self.RETRY_MS)
        before = h.proxy_stats(self.cl.port)
        NET.drop(100)
        ks = self.nkeys[:10]
        batch = b"".join(b"get %s\r\n" % k for k in ks) + \
            b"get %s\r\n" % self.lkeys[0]
        replies, took = itf.timed_call(self.c, batch, count=len(ks) + 1,
                                       timeout=5)
        self.assertEqual(replies, TIMED_OUT[0] * len(ks) +
                         self.expect(self.lkeys[0]))
        self.assertOnTime(took, "batch")
        # The next one reconnects into the void: the connect times out,
        # and that second failure ejects the server.
        reply, took2 = itf.timed_call(self.c, b"get %s\r\n" % ks[0],
                                      timeout=5)
        t_ejected = time.monotonic()
        self.assertEqual(reply, TIMED_OUT[1])
        self.assertOnTime(took2, "connect")
        d = h.stats_delta(before, h.proxy_stats(self.cl.port))
        self.assertEqual(d["server_ejects"], 1, d)
        self.assertEqual(d["forward_error"], len(ks) + 1, d)
        tooks = []
        for k in self.nkeys:
            reply, took3 = itf.timed_call(self.c, b"get %s\r\n" % k)
            self.assertEqual(reply, b"END\r\n")     # LOCAL's miss now
            tooks.append(took3)
        itf.assert_fast(self, tooks, "ejected server's keys")

        NET.clear_drop()
        away = itf.wait_home(self.c, NSMC, ks[1], t_ejected,
                             self.RETRY_MS / 1000 + 3)
        self.assertIsNotNone(away, "the server never came back")
        sys.stderr.write("blackhole: %d requests timed out after %.3f s, "
                         "connect timed out after %.3f s, ejected; back "
                         "%.3f s later (server_retry_timeout %d ms)\n"
                         % (len(ks), took, took2, away, self.RETRY_MS))
        self.assertGreaterEqual(away, self.RETRY_MS / 1000 - 0.05)
        self.assertLess(away, self.RETRY_MS / 1000 + 0.6)
        for k in self.nkeys[2:]:
            self.assertEqual(self.get(k), self.expect(k))


class TestNamespaceLifecycle(unittest.TestCase):

    def test_namespace_and_veth_are_removed(self):
        net = NetNs(1)
        self.addCleanup(net.down)
        net.up()
        self.assertTrue(net.exists())
        net.drop(100)
        mc = NsMemcached(net)
        self.addCleanup(mc.stop)
        net.clear_drop()
        mc.start()
        self.assertEqual(mc.call(b"version\r\n")[:8], b"VERSION ")
        mc.stop()
        net.down()
        self.assertFalse(net.exists())


# ------------------------------------------------------------ the relay


def relay_main(host, port, target_port, ctl):
    """Accepts on host:port, connects each client to host:target_port;
    client -> server bytes pass at once, server -> client bytes wait for
    the delay (ms) in the file ctl, in order. Exits after 10 minutes at
    the latest; normally it is stopped by pid."""
    end = time.monotonic() + 600
    delay = [0.0]

    def watch():
        while time.monotonic() < end:
            try:
                with open(ctl) as f:
                    delay[0] = int(f.read().strip() or 0) / 1000
            except (OSError, ValueError):
                pass
            time.sleep(0.02)

    def pump(src, dst, delayed):
        q = queue.Queue()

        def writer():
            while True:
                due, data = q.get()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                try:
                    if data is None:
                        dst.shutdown(socket.SHUT_WR)
                        return
                    dst.sendall(data)
                except OSError:
                    src.close()
                    return

        threading.Thread(target=writer, daemon=True).start()
        while time.monotonic() < end:
            try:
                data = src.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                data = b""
            q.put((time.monotonic() + (delay[0] if delayed else 0),
                   data or None))
            if not data:
                return

    threading.Thread(target=watch, daemon=True).start()
    lis = socket.socket()
    lis.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lis.bind((host, port))
    lis.listen(64)
    lis.settimeout(0.5)
    while time.monotonic() < end:
        try:
            c, _ = lis.accept()
        except socket.timeout:
            continue
        try:
            s = socket.create_connection((host, target_port), timeout=5)
        except OSError:
            c.close()
            continue
        for sock in (c, s):
            sock.settimeout(1)
        threading.Thread(target=pump, args=(c, s, False),
                         daemon=True).start()
        threading.Thread(target=pump, args=(s, c, True),
                         daemon=True).start()
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--relay"]:
        a = sys.argv[2:]
        sys.exit(relay_main(a[0], int(a[1]), int(a[2]), a[3]))
    sys.exit(h.run_tests(globals()))
