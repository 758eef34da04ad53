"""Hot reload: SIGHUP, POST /reload and --watch-config apply a new config
file to a running memring; a bad file changes nothing. Real memcached
servers on free 127.0.0.1 ports, plus a fake backend that holds its replies
so that a request is in flight at a chosen moment.

The load test reloads 50 times between configs (server added, removed,
weight changed, pool added and removed, listen port changed) while client
threads pipeline batches of 20-100 requests and check every reply."""

import os
import random
import re
import shutil
import signal
import socket
import string
import sys
import tempfile
import threading
import time
import unittest

import harness as h

SERVERS = []        # five memcached shared by every test, flushed per test
WAIT = 5.0          # seconds: the longest any single wait in here may take


def setUpModule():
    SERVERS.extend(h.Memcached().start() for _ in range(5))
    unittest.addModuleCleanup(h.stop_all, SERVERS)


# ---------------------------------------------------------------- helpers

def pool(name, listen, servers, weights=None, names=None, hash="md5",
         distribution="ketama", conns=1, auto_eject=False, retry_ms=30000):
    """One pool's YAML section from reload_pool.yml.in. listen: a port;
    conns: server_connections."""
    with open(h.conf_template("reload_pool.yml.in")) as f:
        text = f.read()
    return string.Template(text).substitute(
        name=name, listen="%s:%d" % (h.HOST, listen), hash=hash,
        distribution=distribution, server_connections=conns,
        auto_eject_hosts=str(auto_eject).lower(),
        server_retry_timeout=retry_ms,
        servers=h.servers_yaml(servers, weights, names))


def render(pools):
    """A config file's text: reload.yml.in around the pool sections."""
    with open(h.conf_template("reload.yml.in")) as f:
        return string.Template(f.read()).substitute(pools="\n".join(pools))


def set_many(conn, keys, value=None, chunk=500):
    """Pipelined sets through conn, `chunk` per write; each must store."""
    for i in range(0, len(keys), chunk):
        part = keys[i:i + chunk]
        conn.send(b"".join(b"set %s 0 0 %d\r\n%s\r\n"
                           % (k, len(value or k), value or k) for k in part))
        got = conn.read_replies(len(part), timeout=10)
        bad = [r for r in got if r != b"STORED\r\n"]
        if bad:
            raise AssertionError("set replies: %r" % bad[:5])


def get_many(conn, keys, chunk=100):
    """{key: value} of those keys memring finds, by multi-gets."""
    out = {}
    for i in range(0, len(keys), chunk):
        reply = conn.call(b"get " + b" ".join(keys[i:i + chunk]) + b"\r\n")
        out.update((k, v) for k, _, v in h.parse_values(reply))
    return out


class Proxy:
    """memring on a config file that the test rewrites and reloads.
    pools: YAML sections from pool(). Stopped by pid in the test cleanup."""

    def __init__(self, test, pools, args=(), conf=None, log=None, wait=()):
        self.test = test
        self.dir = tempfile.mkdtemp(prefix="memring-reload-")
        test.addCleanup(shutil.rmtree, self.dir, True)
        self.conf = conf or os.path.join(self.dir, "memring.yml")
        if conf is None:
            self.write(pools)
        self.mr = h.Memring(self.conf, wait=list(wait), args=args,
                            log=log or os.path.join(self.dir, "memring.log"))
        test.addCleanup(self.mr.stop)
        self.mr.start()

    def write(self, pools, path=None):
        """Rewrites the config in place (what an editor that truncates
        does); memring only reads it when told to."""
        h.write_conf(path or self.conf, render(pools))

    def save(self, pools):
        """Rename-on-save: a temporary file renamed over the config."""
        tmp = self.conf + ".tmp"
        self.write(pools, tmp)
        os.rename(tmp, self.conf)

    def post(self, path="/reload", method="POST"):
        """(HTTP status, body text) from the admin port."""
        status, body = h.http_request(self.mr.stats_port, path, method,
                                      timeout=WAIT)
        return status, body.decode("utf-8", "replace")

    def reload(self, pools=None):
        """Writes pools (if given), POST /reload; (status, body)."""
        if pools is not None:
            self.write(pools)
        return self.post()

    def applied(self):
        """How many "reload N of FILE applied" lines the log holds."""
        return len(re.findall(r"reload \d+ of \S+ applied",
                              self.mr.log_text()))

    def refused(self):
        return self.mr.log_text().count(
            "reload refused, old config keeps serving: ")

    def counters(self):
        """(applied, refused) as /stats reports them."""
        st = h.admin_stats(self.mr.stats_port, timeout=WAIT)
        return st["memring_reloads"], st["memring_reload_failures"]

    def hup(self):
        """SIGHUP, then waits for the applied or refused log line; returns
        "applied", "refused", or None when neither came in time."""
        before = (self.applied(), self.refused())
        self.mr.proc.send_signal(signal.SIGHUP)
        return h.wait_for(lambda: "applied" if self.applied() > before[0]
                        else "refused" if self.refused() > before[1]
                        else None)

    def assert_ok(self, got, *words):
        """got is (status, body) of an applied reload naming words."""
        status, body = got
        self.test.assertEqual(status, 200, body)
        for w in words:
            self.test.assertIn(w, body)
        return body


class HeldServer:
    """A fake memcached that answers `get` (value b"held" for every key)
    only while .release is set: a request to it stays in flight until the
    test lets it go. Records the keys asked and when memring closes its
    connection. Stopped by the test cleanup."""

    def __init__(self, test):
        self.sock = socket.socket()
        self.sock.bind((h.HOST, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.addr = "%s:%d" % (h.HOST, self.port)
        self.release = threading.Event()
        self.release.set()
        self.eof = threading.Event()     # memring closed a connection
        self.keys = []                   # every key asked, in order
        self.done = False
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()
        test.addCleanup(self.stop)

    def _accept(self):
        while not self.done:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, c):
        c.settimeout(0.1)
        buf = b""
        with c:
            while not self.done:
                try:
                    chunk = c.recv(4096)
                except socket.timeout:
                    continue
                except OSError:
                    break
                if not chunk:
                    self.eof.set()
                    break
                buf += chunk
                while b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    keys = line.split()[1:]
                    self.keys.extend(keys)
                    deadline = time.monotonic() + 2 * WAIT
                    while not (self.release.wait(0.05) or self.done or
                               time.monotonic() > deadline):
                        pass
                    c.sendall(b"".join(b"VALUE %s 0 4\r\nheld\r\n" % k
                                       for k in keys) + b"END\r\n")

    def stop(self):
        self.done = True
        self.release.set()
        for t in self.threads:
            t.join(1)
        self.sock.close()


class ReloadCase(unittest.TestCase):

    def setUp(self):
        for s in SERVERS:
            s.flush()

    def assertServes(self, port, key=b"alive"):
        with h.Conn(port) as c:
            self.assertEqual(c.call(b"set %s 0 0 2\r\nok\r\nget %s\r\n"
                                    % (key, key), count=2),
                             b"STORED\r\nVALUE %s 0 2\r\nok\r\nEND\r\n" % key)


# ---------------------------------------------------------------- triggers

class TestTriggers(ReloadCase):

    def test_post_reload_adds_a_pool_and_reports_changes(self):
        pa, pb = h.free_port(), h.free_port()
        alpha = pool("alpha", pa, SERVERS[:2])
        px = Proxy(self, [alpha], wait=[pa])
        body = px.assert_ok(px.reload([alpha]), "alpha")
        self.assertIn("unchanged", body)
        self.assertFalse(h.accepts(pb))
        body = px.assert_ok(px.reload(
            [alpha, pool("beta", pb, SERVERS[2:4])]), "beta")
        self.assertIn("added", body)
        self.assertTrue(h.accepts(pb))
        self.assertServes(pb)
        self.assertServes(pa)
        self.assertEqual(px.applied(), 2)
        self.assertRegex(px.mr.log_text(),
                         r"reload 2 of %s applied" % re.escape(px.conf))

    def test_sighup_reloads(self):
        pa, pb = h.free_port(), h.free_port()
        alpha = pool("alpha", pa, SERVERS[:2])
        px = Proxy(self, [alpha], wait=[pa])
        px.write([alpha, pool("beta", pb, SERVERS[2:4])])
        self.assertEqual(px.hup(), "applied")
        self.assertTrue(h.wait_for(lambda: h.accepts(pb)))
        self.assertServes(pb)
        px.write([alpha])
        self.assertEqual(px.hup(), "applied")
        self.assertTrue(h.wait_for(lambda: not h.accepts(pb)))
        self.assertServes(pa)
        self.assertTrue(px.mr.alive())

    def test_get_reload_is_not_allowed(self):
        pa = h.free_port()
        px = Proxy(self, [pool("alpha", pa, SERVERS[:1])], wait=[pa])
        status, _ = px.post("/reload", method="GET")
        self.assertEqual(status, 405)
        self.assertEqual(px.applied(), 0)


# ---------------------------------------------------------------- watch

class TestWatch(ReloadCase):

    def test_saves(self):
        pa, pb = h.free_port(), h.free_port()
        alpha = pool("alpha", pa, SERVERS[:2])
        px = Proxy(self, [alpha], args=["--watch-config"], wait=[pa])
        self.assertTrue(h.wait_for(lambda: "watching" in px.mr.log_text()),
                        px.mr.log_text())
        both = [alpha, pool("beta", pb, SERVERS[2:4])]
        px.save(both)
        self.assertTrue(h.wait_for(lambda: h.accepts(pb)), px.mr.log_text())
        self.assertTrue(h.wait_for(lambda: px.applied() == 1))
        self.assertServes(pb)

        # The same bytes saved again, and a touch: no reload.
        px.save(both)
        os.utime(px.conf)
        time.sleep(0.4)
        self.assertEqual(px.applied(), 1)

        # Two saves inside the debounce window: one reload, of the last.
        px.save([alpha])
        px.save(both[:1] + [pool("beta", pb, SERVERS[4:5])])
        self.assertTrue(h.wait_for(lambda: px.applied() == 2))
        time.sleep(0.4)
        self.assertEqual(px.applied(), 2, px.mr.log_text())
        self.assertTrue(h.accepts(pb))

        # A bad save is refused and logged; the next good one applies.
        tmp = px.conf + ".tmp"
        with open(tmp, "w") as f:
            f.write("alpha:\n  listen: [\n")
        os.rename(tmp, px.conf)
        self.assertTrue(h.wait_for(lambda: px.refused() == 1))
        self.assertServes(pa)
        self.assertServes(pb)
        px.save([alpha])
        self.assertTrue(h.wait_for(lambda: not h.accepts(pb)))
        # the log line comes once every worker has switched: a moment
        # after the first one (which opened or closed the port) did
        self.assertTrue(h.wait_for(lambda: px.applied() == 3), px.applied())

        # Saved in place (truncate and write) works as well.
        px.write(both)
        self.assertTrue(h.wait_for(lambda: h.accepts(pb)), px.mr.log_text())
        self.assertTrue(h.wait_for(lambda: px.applied() == 4), px.applied())

    def test_configmap_symlink_swap(self):
        # A Kubernetes ConfigMap volume: dir/memring.yml -> ..data/memring.yml,
        # ..data -> ..<timestamp>; an update writes a new timestamped
        # directory and renames a new ..data symlink over the old one.
        pa, pb = h.free_port(), h.free_port()
        alpha = pool("alpha", pa, SERVERS[:2])
        both = [alpha, pool("beta", pb, SERVERS[2:4])]
        top = tempfile.mkdtemp(prefix="memring-configmap-")
        self.addCleanup(shutil.rmtree, top, True)
        mount = os.path.join(top, "mount")
        os.mkdir(mount)

        def publish(version, pools):
            d = os.path.join(mount, "..2026_" + version)
            os.mkdir(d)
            with open(os.path.join(d, "memring.yml"), "w") as f:
                f.write(render(pools))
            data, tmp = (os.path.join(mount, n) for n in ("..data",
                                                          "..data_tmp"))
            old = os.path.realpath(data) if os.path.lexists(data) else None
            os.symlink("..2026_" + version, tmp)
            os.rename(tmp, data)
            if old:
                shutil.rmtree(old)

        publish("a", [alpha])
        conf = os.path.join(mount, "memring.yml")
        os.symlink(os.path.join("..data", "memring.yml"), conf)
        px = Proxy(self, None, args=["--watch-config"], conf=conf,
                   log=os.path.join(top, "memring.log"), wait=[pa])
        self.assertTrue(h.wait_for(lambda: "watching" in px.mr.log_text()))

        publish("b", both)
        self.assertTrue(h.wait_for(lambda: h.accepts(pb)), px.mr.log_text())
        self.assertTrue(h.wait_for(lambda: px.applied() == 1), px.applied())
        self.assertServes(pb)
        publish("c", [alpha])
        self.assertTrue(h.wait_for(lambda: not h.accepts(pb)),
                        px.mr.log_text())
        self.assertTrue(h.wait_for(lambda: px.applied() == 2), px.applied())
        self.assertServes(pa)


# ---------------------------------------------------------------- refused

class TestRefused(ReloadCase):
    """A file that cannot be applied changes nothing: the old config keeps
    serving, the reason comes back from POST /reload and goes to the log."""

    def setUp(self):
        super().setUp()
        self.pa, self.pb = h.free_port(), h.free_port()
        self.alpha = pool("alpha", self.pa, SERVERS[:3])
        self.px = Proxy(self, [self.alpha], wait=[self.pa])
        with h.Conn(self.pa) as c:
            set_many(c, self.keys())
        self.placed = self.placement()

    def keys(self):
        return [b"refuse:%d" % i for i in range(60)]

    def placement(self):
        return {s.port: sorted(s.raw_get_many(self.keys()))
                for s in SERVERS}

    def assertUnchanged(self):
        """alpha still serves, on the same servers; beta never listened."""
        self.assertTrue(self.px.mr.alive())
        for s in SERVERS:
            s.flush()
        with h.Conn(self.pa) as c:
            set_many(c, self.keys())
        self.assertEqual(self.placement(), self.placed)
        self.assertFalse(h.accepts(self.pb))

    def assertRefused(self, got, reason):
        status, body = got
        self.assertTrue(400 <= status < 600, (status, body))
        self.assertRegex(body, reason)
        self.assertEqual(self.px.refused(), 1)
        self.assertEqual(self.px.counters(), (0, 1))
        self.assertRegex(self.px.mr.log_text(),
                         r"reload refused, old config keeps serving: .*"
                         + reason)
        self.assertEqual(self.px.applied(), 0)
        self.assertUnchanged()

    def bad_file(self, template):
        """Renders a bad template (with beta's port in it) over the config;
        returns its text."""
        h.render_conf(template, self.px.dir, name="memring.yml",
                      listen="%s:%d" % (h.HOST, self.pb))
        with open(self.px.conf) as f:
            return f.read()

    def test_yaml_syntax_error(self):
        self.bad_file("bad_syntax.yml.in")
        self.assertRefused(self.px.post(),
                           r"conf: %s:\d+:\d+: " % re.escape(self.px.conf))

    def test_redis_pool(self):
        text = self.bad_file("bad_redis.yml.in")
        line = 1 + text.splitlines().index("  redis: true")
        self.assertRefused(self.px.post(), r"conf: %s:%d:\d+: redis: "
                           % (re.escape(self.px.conf), line))

    def test_missing_file(self):
        os.rename(self.px.conf, self.px.conf + ".away")
        self.assertRefused(self.px.post(), r"conf: %s: cannot open"
                           % re.escape(self.px.conf))

    def test_refused_on_sighup_then_fixed(self):
        self.bad_file("bad_redis.yml.in")
        self.assertEqual(self.px.hup(), "refused")
        self.assertUnchanged()
        self.px.write([self.alpha, pool("beta", self.pb, SERVERS[3:5])])
        self.assertEqual(self.px.hup(), "applied")
        self.assertTrue(h.wait_for(lambda: h.accepts(self.pb)))

    def taken_port(self):
        """A port something else listens on, until the test ends."""
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind((h.HOST, 0))
        taken.listen(1)
        return taken.getsockname()[1]

    def test_new_listen_port_in_use(self):
        # beta would listen on a free port, gamma on a taken one: the file
        # is valid but cannot be applied, and nothing of it is.
        gamma = pool("gamma", self.taken_port(), SERVERS[3:5])
        self.px.write([self.alpha, pool("beta", self.pb, SERVERS[3:5]),
                       gamma])
        self.assertRefused(self.px.post(), r"gamma.*in use")

    def test_moved_listen_port_in_use(self):
        self.px.write([pool("alpha", self.taken_port(), SERVERS[:3])])
        self.assertRefused(self.px.post(), r"alpha.*in use")


# ---------------------------------------------------------------- placement

class TestPlacement(ReloadCase):

    def test_adding_a_fifth_server_moves_a_fifth_of_the_keys(self):
        # Named servers: the ring, and so the fraction, is the same on
        # every run whatever ports the servers got.
        port = h.free_port()
        names = ["mc%d" % i for i in range(1, 6)]
        four = [pool("alpha", port, SERVERS[:4], names=names[:4])]
        px = Proxy(self, four, wait=[port])
        keys = [b"move:%d" % i for i in range(5000)]
        with h.Conn(port) as c:
            set_many(c, keys)
            px.assert_ok(px.reload([pool("alpha", port, SERVERS,
                                        names=names)]))
            found = get_many(c, keys)
            self.assertTrue(all(found[k] == k for k in found))
            moved = sorted(set(keys) - set(found))
            fraction = len(moved) / len(keys)
            print("\nmoved by adding a 5th server: %d of %d keys (%.3f)"
                  % (len(moved), len(keys), fraction), file=sys.stderr)
            self.assertTrue(0.12 <= fraction <= 0.28, fraction)

            # Every key that moved went to the new server, none elsewhere.
            set_many(c, moved, b"again")
            self.assertEqual(sorted(SERVERS[4].raw_get_many(keys)), moved)

            # Removing it again puts every key back where it was.
            px.assert_ok(px.reload(four))
            self.assertEqual(get_many(c, keys), {k: k for k in keys})

    def test_ejected_server_stays_ejected(self):
        port = h.free_port()
        dead = h.Memcached().start()
        self.addCleanup(dead.stop)
        servers = SERVERS[:2] + [dead]
        px = Proxy(self, [pool("alpha", port, servers, auto_eject=True)],
                   wait=[port])
        keys = [b"eject:%d" % i for i in range(60)]
        with h.Conn(port) as c:
            set_many(c, keys)
            key = sorted(dead.raw_get_many(keys))[0]
            dead.stop()
            self.assertRegex(c.call(b"get %s\r\n" % key),
                             rb"\ASERVER_ERROR ")
            set_many(c, [key])      # ejected: the key goes elsewhere now
            px.assert_ok(px.reload([pool("alpha", port, servers,
                                         weights=[2, 1, 1],
                                         auto_eject=True)]), "changed")
            set_many(c, [key])      # still ejected after the reload
            self.assertEqual(get_many(c, [key]), {key: key})


# ---------------------------------------------------------------- draining

class TestDrain(ReloadCase):

    def test_request_in_flight_to_a_removed_server_finishes_there(self):
        held = HeldServer(self)
        port = h.free_port()
        kept = SERVERS[0]
        px = Proxy(self, [pool("alpha", port, [held.addr, kept])],
                   wait=[port])
        keys = [b"drain:%d" % i for i in range(40)]
        with h.Conn(port) as c:
            c.call(b"get " + b" ".join(keys) + b"\r\n")
            self.assertTrue(held.keys, "no key routed to the held server")
            key = held.keys[0]
            held.release.clear()
            c.send(b"get %s\r\n" % key)
            self.assertTrue(h.wait_for(lambda: held.keys.count(key) == 2))
            px.assert_ok(px.reload([pool("alpha", port, [kept])]))

            # Later requests for that key go to the server that stays,
            # their replies wait behind the held one.
            c.send(b"set %s 0 0 1\r\nx\r\nget %s\r\n" % (key, key))
            with h.Conn(port, timeout=2) as other:
                self.assertIn(other.call(b"get %s\r\n" % key),
                              (b"END\r\n",
                               b"VALUE %s 0 1\r\nx\r\nEND\r\n" % key))
            self.assertEqual(c.read_all(quiet=0.3), b"")
            self.assertFalse(held.eof.is_set())
            held.release.set()
            self.assertEqual(c.read_replies(3), [
                b"VALUE %s 0 4\r\nheld\r\nEND\r\n" % key, b"STORED\r\n",
                b"VALUE %s 0 1\r\nx\r\nEND\r\n" % key])
        self.assertTrue(held.eof.wait(WAIT),
                        "memring kept its connection to the removed server")
        self.assertEqual(kept.raw_get(key), b"x")

    def test_removed_pool_finishes_then_closes_its_clients(self):
        held = HeldServer(self)
        pa, pg = h.free_port(), h.free_port()
        alpha = pool("alpha", pa, SERVERS[:2])
        px = Proxy(self, [alpha, pool("gamma", pg, [held.addr])],
                   wait=[pa, pg])
        with h.Conn(pg) as c:
            self.assertEqual(c.call(b"get g\r\n"),
                             b"VALUE g 0 4\r\nheld\r\nEND\r\n")
            held.release.clear()
            c.send(b"get g1\r\n")
            self.assertTrue(h.wait_for(lambda: b"g1" in held.keys))
            body = px.assert_ok(px.reload([alpha]), "gamma")
            self.assertIn("removed", body)
            self.assertFalse(h.accepts(pg))
            self.assertEqual(c.read_all(quiet=0.3), b"")
            held.release.set()
            self.assertEqual(c.read_reply(),
                             b"VALUE g1 0 4\r\nheld\r\nEND\r\n")
            self.assertTrue(c.expect_closed(WAIT))
        self.assertTrue(held.eof.wait(WAIT))
        self.assertServes(pa)

    def test_moved_listener_keeps_existing_clients(self):
        p1, p2 = h.free_port(), h.free_port()
        px = Proxy(self, [pool("alpha", p1, SERVERS[:2])], wait=[p1])
        with h.Conn(p1) as c:
            self.assertEqual(c.call(b"set m 0 0 1\r\n1\r\n"), b"STORED\r\n")
            body = px.assert_ok(px.reload([pool("alpha", p2, SERVERS[:2])]))
            self.assertIn("new address", body)
            self.assertFalse(h.accepts(p1))
            self.assertEqual(c.call(b"get m\r\n"),
                             b"VALUE m 0 1\r\n1\r\nEND\r\n")
            self.assertServes(p2)
            px.assert_ok(px.reload([pool("alpha", p1, SERVERS[:2])]))
            self.assertFalse(h.accepts(p2))
            self.assertServes(p1)
            self.assertEqual(c.call(b"get m\r\n"),
                             b"VALUE m 0 1\r\n1\r\nEND\r\n")


# ---------------------------------------------------------------- load

class Load:
    """What the reloading thread shares with the client threads. New
    connections are made under .lock, which a reload holds: a client never
    dials a listen port that is being swapped."""

    def __init__(self, ports):
        self.lock = threading.Lock()
        self.ports = dict(ports)
        self.stop = threading.Event()
        self.gamma_removing = threading.Event()


class Client(threading.Thread):
    """One connection (or a series, with reconnect_every) pipelining
    batches of 20-100 requests to one pool and checking each reply: sets
    must be STORED; gets return, in key order, either a miss or a value
    this thread stored for that key no later than the request (strict: the
    latest value, for a pool whose ring never changes). removable: the
    pool may be removed; a close after gamma_removing ends the thread.
    reorder_ok: for a pool with server_connections > 1, where a get may
    reach memcached after a later set of the same key sent on another
    connection (as in twemproxy): a get may also see values that sets later
    in its own batch wrote."""

    NKEYS = 300

    def __init__(self, load, pool_name, tid, strict=False,
                 reconnect_every=0, removable=False, reorder_ok=False):
        super().__init__(daemon=True)
        self.load, self.pool, self.tid = load, pool_name, tid
        self.strict, self.removable = strict, removable
        self.reorder_ok = reorder_ok
        self.reconnect_every = reconnect_every
        self.rnd = random.Random(tid)
        self.latest = {}        # key -> seq of the last set
        self.seq = 0
        self.sent = self.answered = self.batches = 0
        self.failed = self.lost = self.drops = 0
        self.conns = 0
        self.closed_by_removal = False
        self.errors = []        # first few failure descriptions

    def key(self, i):
        return b"%s:%d:%d" % (self.pool.encode(), self.tid, i)

    def fail(self, what):
        self.failed += 1
        if len(self.errors) < 5:
            self.errors.append(what)

    def connect(self):
        with self.load.lock:
            c = h.Conn(self.load.ports[self.pool], timeout=WAIT)
        self.conns += 1
        return c

    def build(self):
        """(bytes, [(kind, expected)]) for one batch."""
        reqs, checks = [], []
        for _ in range(self.rnd.randint(20, 100)):
            r = self.rnd.random()
            if r < 0.4:
                k = self.key(self.rnd.randrange(self.NKEYS))
                self.seq += 1
                v = b"%s=%d" % (k, self.seq)
                reqs.append(b"set %s %d 0 %d\r\n%s\r\n"
                            % (k, self.tid, len(v), v))
                self.latest[k] = self.seq
                checks.append(("set", None))
            else:
                n = 1 if r < 0.85 else self.rnd.randint(2, 6)
                ks = [self.key(i) for i in
                      self.rnd.sample(range(self.NKEYS), n)]
                reqs.append(b"get %s\r\n" % b" ".join(ks))
                checks.append(("get", [(k, self.latest.get(k)) for k in ks]))
        if self.reorder_ok:
            checks = [(kind, want and [(k, self.latest.get(k))
                                       for k, _ in want])
                      for kind, want in checks]
        return b"".join(reqs), checks

    def check(self, reply, kind, want):
        if kind == "set":
            if reply != b"STORED\r\n":
                self.fail("set: %r" % reply[:200])
            return
        try:
            values = h.parse_values(reply)
        except h.ProtocolError:
            self.fail("get %r: %r" % (want, reply[:200]))
            return
        keys = [k for k, _ in want]
        latest = dict(want)
        if [k for k, _, _ in values] != [k for k in keys
                                         if k in {v[0] for v in values}]:
            self.fail("get %r: keys out of order: %r" % (keys, reply[:200]))
            return
        for k, flags, v in values:
            m = re.match(rb"(.*)=(\d+)\Z", v)
            seq = int(m.group(2)) if m and m.group(1) == k else None
            ok = (flags == self.tid and seq is not None and
                  latest[k] is not None and seq <= latest[k])
            if ok and self.strict:
                ok = seq == latest[k]
            if not ok:
                self.fail("get %s: %r, latest set %r" % (k, v, latest[k]))
        if self.strict and len(values) != sum(s is not None
                                              for _, s in want):
            self.fail("get %r: a miss on a pool that never changed: %r"
                      % (keys, reply[:200]))

    def run(self):
        c = self.connect()
        try:
            while not self.load.stop.is_set():
                if (self.reconnect_every and self.batches and
                        self.batches % self.reconnect_every == 0):
                    c.close()
                    c = self.connect()
                data, checks = self.build()
                self.batches += 1
                try:
                    c.send(data)
                except OSError as e:
                    if self.closed_early(c, 0, len(checks), e):
                        return
                    c = self.connect()
                    continue
                self.sent += len(checks)
                for i, (kind, want) in enumerate(checks):
                    try:
                        reply = c.read_reply(timeout=WAIT)
                    except (h.ProtocolError, OSError) as e:
                        if self.closed_early(c, i, len(checks), e):
                            return
                        c.close()
                        c = self.connect()
                        break
                    self.answered += 1
                    self.check(reply, kind, want)
        except Exception as e:      # counted, reported by the test
            self.fail("client died: %r" % e)
        finally:
            c.close()

    def closed_early(self, c, got, n, e):
        """The connection ended with replies n - got outstanding. True when
        that is the removed pool's close (the thread ends), else counts a
        drop or a timeout and returns False (the caller reconnects)."""
        closed = not (isinstance(e, socket.timeout) or
                      str(e).startswith("timeout"))
        if self.removable and closed and self.load.gamma_removing.is_set():
            self.closed_by_removal = True
            self.sent -= n - got
            if c.buf:
                self.fail("partial reply before close: %r" % c.buf[:200])
            return True
        if closed:
            self.drops += 1
        else:
            self.lost += n - got
        self.fail("batch %d: %d of %d replies, then %r"
                  % (self.batches, got, n, e))
        return False


class TestReloadUnderLoad(ReloadCase):

    RELOADS = 50

    def configs(self, p1, p2, pq, pg, pd):
        """The cycle of configs, each (alpha's port, gamma present, pools).
        beta is the same in all of them; delta changes only its
        server_connections."""
        a, b, c, d, e = SERVERS
        beta = pool("beta", pq, [a, b])
        gamma = pool("gamma", pg, [c, d])
        four, w3 = [a, b, c, d], [3, 1, 1, 1]
        steps = [
            (p1, four, {}),                         # start, and back
            (p1, four + [e], {}),                   # server added
            (p1, [a, b, c, e], {}),                 # server removed
            (p1, [a, b, c, e], {"weights": w3}),    # weight changed
            (p1, [a, b, c, e], {"weights": w3}),    # + gamma
            (p1, [a, b, c, e], {"weights": w3}),    # - gamma
            (p2, [a, b, c, e], {"weights": w3}),    # listen moved
            (p2, four, {"hash": "fnv1a_64",         # hash and
                        "distribution": "modula"}),  # distribution
        ]
        out = []
        for i, (port, servers, kw) in enumerate(steps):
            delta = pool("delta", pd, [c, d, e], conns=3 if i in (2, 5)
                         else 1)
            pools = [pool("alpha", port, servers, **kw), beta, delta]
            if i == 4:
                pools.append(gamma)
            out.append((port, i == 4, pools))
        return out

    def test_fifty_reloads_under_pipelined_load(self):
        p1, p2, pq, pg, pd = (h.free_port() for _ in range(5))
        cycle = self.configs(p1, p2, pq, pg, pd)
        px = Proxy(self, cycle[0][2], wait=[p1, pq, pd])
        load = Load({"alpha": p1, "beta": pq, "gamma": pg, "delta": pd})
        clients = [Client(load, "alpha", 1),
                   Client(load, "alpha", 2, reconnect_every=5),
                   Client(load, "beta", 3, strict=True),
                   Client(load, "beta", 4, strict=True, reconnect_every=7),
                   Client(load, "delta", 5, reorder_ok=True)]
        gammas = []
        self.addCleanup(load.stop.set)
        for t in clients:
            t.start()

        def progress():
            return sum(t.answered for t in clients + gammas)

        deadline = time.monotonic() + 40
        gamma_on = False
        for n in range(1, self.RELOADS + 1):
            self.assertLess(time.monotonic(), deadline, "too slow")
            before = progress()
            time.sleep(0.03)
            self.assertTrue(h.wait_for(lambda: progress() > before + 1000, 2),
                            "no load between reloads")
            port, with_gamma, pools = cycle[n % len(cycle)]
            old_port = load.ports["alpha"]
            with load.lock:
                if gamma_on and not with_gamma:
                    load.gamma_removing.set()
                px.write(pools)
                if n % 5 == 0:
                    self.assertEqual(px.hup(), "applied", n)
                else:
                    px.assert_ok(px.post())
                load.ports["alpha"] = port
            self.assertEqual(px.applied(), n)
            if port != old_port:
                self.assertFalse(h.accepts(old_port), n)
                self.assertTrue(h.accepts(port), n)
            if with_gamma:
                self.assertTrue(h.accepts(pg), n)
                load.gamma_removing.clear()
                g = Client(load, "gamma", 100 + n, removable=True)
                gammas.append(g)
                g.start()
            elif gamma_on:
                gammas[-1].join(WAIT)
                self.assertFalse(gammas[-1].is_alive(),
                                 "removed pool's client still open")
                self.assertTrue(gammas[-1].closed_by_removal)
                self.assertFalse(h.accepts(pg), n)
            gamma_on = with_gamma
        time.sleep(0.2)
        load.stop.set()
        for t in clients + gammas:
            t.join(2 * WAIT)
            self.assertFalse(t.is_alive(), t.pool)

        total = {k: sum(getattr(t, k) for t in clients + gammas)
                 for k in ("sent", "answered", "failed", "lost", "drops")}
        print("\n%d reloads; requests sent %d, answered %d, failed %d, "
              "lost %d; dropped connections %d; gamma clients closed by "
              "removal %d" % (self.RELOADS, total["sent"], total["answered"],
                              total["failed"], total["lost"], total["drops"],
                              sum(g.closed_by_removal for g in gammas)),
              file=sys.stderr)
        errors = [(t.pool, t.tid, e) for t in clients + gammas
                  for e in t.errors]
        self.assertEqual(errors, [], "\n".join(map(str, errors)))
        self.assertEqual((total["failed"], total["lost"], total["drops"]),
                         (0, 0, 0))
        self.assertEqual(total["sent"], total["answered"])
        # The clients that never reconnect kept their first connection
        # through every reload, the listen moves included.
        self.assertEqual([t.conns for t in clients if not t.reconnect_every],
                         [1, 1, 1])
        self.assertEqual(px.refused(), 0)
        self.assertTrue(px.mr.alive())


if __name__ == "__main__":
    sys.exit(h.run_tests(globals()))
