"""SIGTERM and SIGINT drain memring: it stops accepting, answers every
request it has read (the pipelined ones still in a client's buffer, and
multi-gets half answered, too), closes each client once its replies are
out, and exits 0. A second signal stops it at once; --shutdown-timeout
bounds a drain that cannot finish."""

import os
import signal
import socket
import sys
import threading
import time
import unittest

import harness as h

NCLIENTS = 4
NREQUESTS = 300         # per client, pipelined in one send
NPRESET = 40            # keys the gets read
EXIT_WAIT = 10          # seconds memring may take to exit once it can


def rx_queues(port):
    """{peer port: bytes unread} of the established sockets on 127.0.0.1
    whose local port is `port` (memring's side of its clients)."""
    out = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if state != "01" or int(local.split(":")[1], 16) != port:
                continue
            rx = int(fields[4].split(":")[1], 16)
            out[int(remote.split(":")[1], 16)] = rx
    return out


def preset_key(i):
    return b"pre:%d" % i


def payload(client):
    """(bytes, expected replies) of NREQUESTS pipelined requests: sets, and
    gets of four preset keys (on several servers: fan-outs)."""
    reqs, want = [], []
    for j in range(NREQUESTS):
        if j % 2 == 0:
            value = b"v%d.%d" % (client, j)
            reqs.append(h.set_cmd(b"d:%d:%d" % (client, j), value))
            want.append(b"STORED\r\n")
        else:
            keys = [preset_key((j + k * 7) % NPRESET) for k in range(4)]
            reqs.append(b"get " + b" ".join(keys) + b"\r\n")
            want.append(b"".join(h.value_block(k, b"val-" + k) for k in keys)
                        + b"END\r\n")
    return b"".join(reqs), want


def wait_exit(proc, timeout=EXIT_WAIT):
    """memring's exit status, or AssertionError if it is still running."""
    try:
        return proc.wait(timeout)
    except Exception:
        raise AssertionError("memring still running %ss after the signal"
                             % timeout) from None


class ShutdownCase(unittest.TestCase):

    def start(self, args=("--threads=2",)):
        """A cluster of two memcached behind memring (server timeout long
        enough never to answer for a stopped server), keys preset."""
        self.cluster = h.Cluster(self, nservers=2, timeout=60000,
                                 args=list(args))
        self.proxy = self.cluster.proxy
        with self.cluster.conn() as c:
            for i in range(NPRESET):
                k = preset_key(i)
                self.assertEqual(c.call(h.set_cmd(k, b"val-" + k)),
                                 b"STORED\r\n")
        return self.cluster

    def signal(self, sig=signal.SIGTERM, nth=1):
        """Sends sig and waits until memring logged it (nth time)."""
        self.proxy.proc.send_signal(sig)
        h.wait_for(lambda: self.proxy.log_text().count(
                   "signal %d" % sig) >= nth,
                   what="memring to log signal %d" % sig)

    def wait_read_all(self, conns):
        """Until memring has read every byte these clients sent."""
        ports = {c.sock.getsockname()[1] for c in conns}

        def done():
            q = rx_queues(self.cluster.port)
            return all(q.get(p) == 0 for p in ports)
        h.wait_for(done, what="memring to read what clients sent")

    def read_replies_to_eof(self, conn, want, timeout=10):
        """Reads conn to its EOF: exactly the replies in want."""
        got = conn.read_replies(len(want), timeout)
        for i, (g, w) in enumerate(zip(got, want)):
            self.assertEqual(g, w, "reply %d of %d" % (i, len(want)))
        self.assertTrue(conn.expect_closed(timeout),
                        "no close after the last reply")


class TestDrain(ShutdownCase):

    def test_answers_every_request_read(self):
        """Clients pipeline hundreds of requests while a server is stopped:
        memring read them all, answered a few, holds the rest (most still
        unparsed in its buffers, a client over its window). SIGTERM: the
        port closes, and once the server runs again every request gets its
        reply, in order, then the close; exit status 0."""
        cluster = self.start()
        conns = [cluster.conn() for _ in range(NCLIENTS)]
        for c in conns:
            self.addCleanup(c.close)
        h.freeze(self, cluster.servers[0].pid)
        wants = []
        for i, c in enumerate(conns):
            data, want = payload(i)
            c.send(data)
            wants.append(want)
        # An unfinished request at the end is not one memring read whole:
        # dropped, not answered.
        tail = cluster.conn()
        self.addCleanup(tail.close)
        tail_data, tail_want = payload(NCLIENTS)
        tail.send(tail_data + b"set d:partial 0 0 10\r\nabc")
        self.wait_read_all(conns + [tail])

        self.signal(signal.SIGTERM)
        h.wait_for(lambda: not h.accepts(cluster.port),
                   what="the port to close")
        self.assertIsNone(self.proxy.proc.poll(), "exited with replies owed")
        os.kill(cluster.servers[0].pid, signal.SIGCONT)
        for c, want in zip(conns + [tail], wants + [tail_want]):
            self.read_replies_to_eof(c, want)
        self.assertEqual(wait_exit(self.proxy.proc), 0)
        self.assertFalse(h.accepts(cluster.port))
        self.assertIn("drained", self.proxy.log_text())
        # what the replies said is true: the sets are stored
        self.assertEqual(cluster.owner_of(b"d:0:0").raw_get(b"d:0:0"),
                         b"v0.0")

    def test_sigint_idle_clients(self):
        """SIGINT with idle clients connected: they are closed at once and
        memring exits 0."""
        cluster = self.start(args=())
        with cluster.conn() as c, cluster.conn() as d:
            self.assertEqual(c.call(b"get " + preset_key(1) + b"\r\n"),
                             h.value_reply(preset_key(1), b"val-pre:1"))
            self.signal(signal.SIGINT)
            self.assertTrue(c.expect_closed())
            self.assertTrue(d.expect_closed())
        self.assertEqual(wait_exit(self.proxy.proc), 0)

    def test_client_still_sending(self):
        """A client that sends more than memring reads (it reads its
        replies slowly: memring pauses it, and its bytes wait in the
        kernel): once drained, its connection ends with the replies and a
        close (FIN), not a reset, which would drop replies in flight."""
        cluster = self.start()
        sock = socket.create_connection((h.HOST, cluster.port), 5)
        self.addCleanup(sock.close)
        req = b"get " + preset_key(3) + b"\r\n"
        one = h.value_reply(preset_key(3), b"val-pre:3")
        stop = threading.Event()

        def send():
            deadline = time.monotonic() + 20
            try:
                while not stop.is_set() and time.monotonic() < deadline:
                    sock.sendall(req * 500)
            except OSError:
                pass                    # timed out (memring paused), or shut
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        self.addCleanup(sender.join, 10)
        self.addCleanup(stop.set)
        first, how = h.read_to_eof(sock, 5, until=one * 100)
        self.assertEqual(how, "until")
        # Not reading: memring pauses the client, its bytes pile up unread.
        port = sock.getsockname()[1]
        seen = [None]

        def paused():
            last, seen[0] = seen[0], rx_queues(cluster.port).get(port, 0)
            return seen[0] > 0 and seen[0] == last
        h.wait_for(paused, timeout=10, step=0.2,
                   what="memring to leave the client's bytes unread")
        self.signal(signal.SIGTERM)
        rest, how = h.read_to_eof(sock, 15)
        stop.set()
        self.assertEqual(how, "eof", "connection ended by a %s" % how)
        data = first + rest
        self.assertGreater(len(rest), 0)
        self.assertEqual(len(data) % len(one), 0, "a reply cut short")
        self.assertEqual(data, one * (len(data) // len(one)))
        sock.shutdown(socket.SHUT_RDWR)
        sender.join(10)
        self.assertEqual(wait_exit(self.proxy.proc), 0)


class TestStopNow(ShutdownCase):

    def pending_get(self, cluster):
        """A connection with a get waiting on a stopped server."""
        c = cluster.conn()
        self.addCleanup(c.close)
        owner = cluster.owner_of(preset_key(0))
        h.freeze(self, owner.pid)
        c.send(b"get " + preset_key(0) + b"\r\n")
        self.wait_read_all([c])
        return c

    def test_second_signal_stops_at_once(self):
        """A drain waiting on a stopped server: memring keeps running after
        the first SIGTERM; a second one closes the client and exits 0."""
        cluster = self.start()
        c = self.pending_get(cluster)
        self.signal(signal.SIGTERM)
        h.wait_for(lambda: not h.accepts(cluster.port),
                   what="the port to close")
        self.assertIsNone(self.proxy.proc.poll(), "exited with a reply owed")
        self.signal(signal.SIGTERM, nth=2)
        self.assertEqual(wait_exit(self.proxy.proc), 0)
        self.assertTrue(c.expect_closed())
        self.assertIn("again: stopping now", self.proxy.log_text())

    def test_shutdown_timeout(self):
        """--shutdown-timeout ends a drain that cannot finish: memring
        closes the client still owed a reply and exits 0."""
        cluster = self.start(args=("--shutdown-timeout=300",))
        c = self.pending_get(cluster)
        self.signal(signal.SIGTERM)
        self.assertEqual(wait_exit(self.proxy.proc), 0)
        self.assertTrue(c.expect_closed())
        self.assertIn("shutdown timeout", self.proxy.log_text())


if __name__ == "__main__":
    sys.exit(h.run_tests(globals()))
