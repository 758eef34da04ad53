"""The admin endpoint on the stats port: /stats (twemproxy's JSON, key for
key against real nutcracker), /metrics (checked by promtool), /healthz,
/config, the twemproxy-style silent client, bad HTTP from raw sockets, and
a proxy port that keeps serving while admin clients misbehave."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import harness as h

PROMTOOL = "/usr/bin/promtool"
CURL = "/usr/bin/curl"

TWEMPROXY_TOP = {"service", "source", "version", "uptime", "timestamp",
                 "total_connections", "curr_connections"}
TWEMPROXY_POOL = {"client_eof", "client_err", "client_connections",
                  "server_ejects", "forward_error", "fragments"}
TWEMPROXY_SERVER = {"server_eof", "server_err", "server_timedout",
                    "server_connections", "server_ejected_at", "requests",
                    "request_bytes", "responses", "response_bytes",
                    "in_queue", "in_queue_bytes", "out_queue",
                    "out_queue_bytes"}

# ---------------------------------------------------------------- helpers

def raw(port, data=b"", timeout=5.0, shut=False, pause=0.0):
    """Connect, send data (a bytes, or a list of chunks sent `pause` s
    apart), optionally shut our side, and read until the server closes.
    Send errors (the server may answer and close before we finish) are
    ignored; the read is bounded by timeout."""
    deadline = time.monotonic() + timeout
    s = socket.create_connection((h.HOST, port), timeout=timeout)
    try:
        for chunk in (data if isinstance(data, list) else [data]):
            try:
                if chunk:
                    s.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            if pause:
                time.sleep(pause)
        if shut:
            s.shutdown(socket.SHUT_WR)
        out, how = h.read_to_eof(s, max(0.01, deadline - time.monotonic()))
        if how == "timeout":
            raise AssertionError("no close within %.1f s; got %r"
                                 % (timeout, out[:300]))
    finally:
        s.close()
    return out


def parse_http(resp, head_only=False):
    """(status, {lowercase header: value}, body) of one HTTP response."""
    head, sep, body = resp.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1.1 "):
        raise AssertionError("not an HTTP response: %r" % resp[:300])
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers and not head_only:
        if int(headers["content-length"]) != len(body):
            raise AssertionError("Content-Length %s, body %d bytes"
                                 % (headers["content-length"], len(body)))
    return status, headers, body


def request(port, method, path, extra=b"", **kw):
    """One raw HTTP/1.1 request; (status, headers, body)."""
    req = ("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % (method, path)).encode()
    return parse_http(raw(port, req + extra + b"\r\n", **kw),
                      head_only=method == "HEAD")


def curl(port, path, method="GET"):
    """(status, body) through curl, the HTTP client operators use."""
    proc = subprocess.run(
        [CURL, "-sS", "--max-time", "5", "-X", method, "-o", "-",
         "-w", "\n%{http_code}", "http://%s:%d%s" % (h.HOST, port, path)],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    if proc.returncode != 0:
        raise AssertionError("curl %s: %s" % (path, proc.stderr))
    body, _, code = proc.stdout.rpartition(b"\n")
    return int(code), body


def servers_of(pool):
    """The server objects of a /stats pool: its dict-valued members."""
    return {k: v for k, v in pool.items() if isinstance(v, dict)}


def promtool(text):
    """(exit status, output) of `promtool check metrics` on text."""
    proc = subprocess.run([PROMTOOL, "check", "metrics"], input=text,
                          capture_output=True, timeout=30)
    return proc.returncode, (proc.stdout + proc.stderr).decode()


def pool_yaml(name, listen, servers, eject=False):
    """The one pool these tests run: eject on the first failure when
    eject is set, servers back after 30 s."""
    return h.pool_yaml(name, listen, servers, hash="fnv1a_64",
                       distribution="ketama", timeout=2000,
                       auto_eject_hosts=eject, server_retry_timeout=30000,
                       server_failure_limit=1)


class Setup:
    """A temp dir, memcached servers, and memring in front, all stopped by
    the owning test (class) cleanups."""

    def __init__(self, owner, nservers=2, eject=False, name="alpha",
                 names=None, args=()):
        self.dir = tempfile.mkdtemp(prefix="memring-admin-")
        owner.addClassCleanup(shutil.rmtree, self.dir, True) \
            if isinstance(owner, type) else \
            owner.addCleanup(shutil.rmtree, self.dir, True)
        add = owner.addClassCleanup if isinstance(owner, type) \
            else owner.addCleanup
        self.servers = []
        for _ in range(nservers):
            m = h.Memcached().start()
            add(m.stop)
            self.servers.append(m)
        self.port = h.free_port()
        self.conf = h.write_conf(
            os.path.join(self.dir, "memring.yml"),
            pool_yaml(name, self.port,
                      h.servers_yaml(self.servers, names=names, indent=3),
                      eject))
        self.mr = h.Memring(self.conf, wait=[self.port], args=args)
        add(self.mr.stop)
        self.mr.start()
        h.wait_accepting(self.mr.stats_port)
        self.admin = self.mr.stats_port

    def conn(self):
        return h.Conn(self.port)


# ---------------------------------------------------------------- /stats

class TestStats(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.s = Setup(cls)

    def test_counters_move(self):
        before = h.admin_stats(self.s.admin)
        n = 20
        with self.s.conn() as c:
            for i in range(n):
                self.assertEqual(c.call(b"set k%d 0 0 1\r\nv\r\n" % i),
                                 b"STORED\r\n")
            for i in range(n):
                self.assertIn(b"VALUE", c.call(b"get k%d\r\n" % i))
            c.call(b"get nosuchkey\r\n")
            during = h.admin_stats(self.s.admin)

        def closed():
            st = h.admin_stats(self.s.admin)
            return st if st["alpha"]["client_connections"] == 0 else None

        # memring sees the client's EOF a moment after the close: the
        # counters are read once it has (after 5 s they are read anyway,
        # and the assertions below fail)
        after = h.wait_for(closed, timeout=5) or h.admin_stats(self.s.admin)
        p0, p1 = before["alpha"], after["alpha"]

        def delta(key):
            return p1[key] - p0[key]

        self.assertEqual(delta("memring_cmd_set"), n)
        self.assertEqual(delta("memring_cmd_get"), n + 1)
        self.assertEqual(delta("memring_get_hits"), n)
        self.assertEqual(delta("memring_get_misses"), 1)
        self.assertEqual(delta("memring_total_connections"), 1)
        self.assertEqual(after["total_connections"] -
                         before["total_connections"], 1)
        self.assertEqual(during["alpha"]["client_connections"], 1)
        self.assertGreaterEqual(during["curr_connections"], 2)
        self.assertEqual(p1["client_connections"], 0)
        self.assertEqual(delta("client_eof"), 1)     # the client hung up
        self.assertEqual(delta("client_err"), 0)
        self.assertGreaterEqual(delta("memring_latency_count"), 2 * n + 1)
        self.assertGreater(p1["memring_latency_p50_us"], 0)
        self.assertLessEqual(p1["memring_latency_p50_us"],
                             p1["memring_latency_p99_us"])
        s0, s1 = servers_of(p0), servers_of(p1)
        self.assertEqual(set(s1), {m.addr for m in self.s.servers})
        req = sum(s1[k]["requests"] - s0[k]["requests"] for k in s1)
        rsp = sum(s1[k]["responses"] - s0[k]["responses"] for k in s1)
        self.assertEqual(req, 2 * n + 1)
        self.assertEqual(rsp, 2 * n + 1)
        self.assertGreater(sum(s1[k]["request_bytes"] -
                               s0[k]["request_bytes"] for k in s1), 0)
        self.assertGreater(sum(s1[k]["response_bytes"] -
                               s0[k]["response_bytes"] for k in s1), 0)
        for k in s1:
            self.assertEqual(s1[k]["in_queue"], 0)
            self.assertEqual(s1[k]["out_queue"], 0)
            self.assertEqual(s1[k]["server_ejected_at"], 0)
            self.assertEqual(s1[k]["memring_live"], 1)
        self.assertGreaterEqual(after["timestamp"], before["timestamp"])
        self.assertEqual(after["service"], "memring")

    def test_silent_client_gets_json_then_close(self):
        """twemproxy's stats port protocol: connect, send nothing, read
        JSON until the server closes."""
        t0 = time.monotonic()
        out = raw(self.s.admin, timeout=3)
        took = time.monotonic() - t0
        self.assertFalse(out.startswith(b"HTTP/"), out[:100])
        doc = json.loads(out)
        self.assertIn("alpha", doc)
        self.assertLess(took, 2.0)
        # and one that shuts its side at once gets it without waiting
        t0 = time.monotonic()
        doc = json.loads(raw(self.s.admin, shut=True, timeout=3))
        self.assertIn("alpha", doc)
        self.assertLess(time.monotonic() - t0, 1.0)

    def test_http_and_raw_agree(self):
        status, headers, body = request(self.s.admin, "GET", "/stats")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(headers["connection"], "close")
        a = json.loads(body)
        b = json.loads(raw(self.s.admin, timeout=3))
        self.assertEqual(set(a), set(b))
        self.assertEqual(set(a["alpha"]), set(b["alpha"]))

    def test_metrics_pass_promtool(self):
        with self.s.conn() as c:
            c.call(b"set m 0 0 1\r\nv\r\nget m\r\n", count=2)
        status, body = curl(self.s.admin, "/metrics")
        self.assertEqual(status, 200)
        rc, out = promtool(body)
        self.assertEqual(rc, 0, out)
        self.assertEqual(out.strip(), "", out)
        text = body.decode()
        self.assertRegex(text, r'memring_pool_cmd_set_total\{pool="alpha"\}'
                               r' [1-9]')
        for m in self.s.servers:
            self.assertIn('memring_server_requests_total{pool="alpha",'
                          'server="%s"}' % m.addr, text)
        # histograms: cumulative buckets, +Inf == _count
        for fam in ("memring_pool_request_duration_seconds",
                    "memring_server_request_duration_seconds"):
            self.assertIn("# TYPE %s histogram" % fam, text)
        buckets = [int(v) for v in re.findall(
            r'^memring_pool_request_duration_seconds_bucket\{pool="alpha",'
            r'le="[^"]+"\} (\d+)$', text, re.M)]
        self.assertEqual(len(buckets), 19)
        self.assertEqual(buckets, sorted(buckets))
        count = int(re.search(r'^memring_pool_request_duration_seconds_count'
                              r'\{pool="alpha"\} (\d+)$', text, re.M)[1])
        self.assertEqual(buckets[-1], count)
        self.assertGreater(count, 0)
        self.assertIn('le="0.00001"', text)
        self.assertIn('le="+Inf"', text)

    def test_healthz_ok(self):
        status, body = curl(self.s.admin, "/healthz")
        self.assertEqual(status, 200, body)
        self.assertIn(b"ok", body)

    def test_config(self):
        status, body = curl(self.s.admin, "/config")
        self.assertEqual(status, 200)
        cfg = json.loads(body)
        self.assertEqual(cfg["file"], self.s.conf)
        self.assertGreater(cfg["loaded_at"], 0)
        (pool,) = cfg["pools"]
        self.assertEqual(pool["name"], "alpha")
        self.assertEqual(pool["hash"], "fnv1a_64")
        self.assertEqual(pool["distribution"], "ketama")
        self.assertEqual(pool["timeout"], 2000)
        self.assertEqual(pool["ring"][0]["npoints"], 320)
        self.assertEqual(pool["ring"][0]["ejected_servers"], 0)
        got = {(s["name"], s["host"], s["port"], s["weight"], s["ejected"])
               for s in pool["servers"]}
        want = {(m.addr, h.HOST, m.port, 1, False) for m in self.s.servers}
        self.assertEqual(got, want)

    def test_head_query_and_routes(self):
        status, headers, body = request(self.s.admin, "HEAD", "/stats")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"")
        self.assertGreater(int(headers["content-length"]), 0)
        self.assertEqual(curl(self.s.admin, "/stats?pretty=1")[0], 200)
        self.assertEqual(curl(self.s.admin, "/nope")[0], 404)
        status, body = curl(self.s.admin, "/")          # the status page
        self.assertEqual(status, 200)
        self.assertIn(b"<title>memring status</title>", body)
        # The same file again: applied, and every pool says it is unchanged.
        status, body = curl(self.s.admin, "/reload", "POST")
        self.assertEqual(status, 200, body)
        self.assertIn(b"unchanged", body)


# ---------------------------------------------------------------- bad HTTP

class TestBadHttp(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.s = Setup(cls, nservers=1)

    def assertProxyServes(self):
        with self.s.conn() as c:
            self.assertEqual(c.call(b"set p 0 0 1\r\nv\r\nget p\r\n",
                                    count=2),
                             b"STORED\r\nVALUE p 0 1\r\nv\r\nEND\r\n")

    def test_garbage_is_400(self):
        for junk in (b"hello there\r\n\r\n", b"GET /stats HTTP/9.9\r\n\r\n",
                     b"\x00\x01\x02\xff\r\n\r\n",
                     b"GET /stats HTTP/1.1\r\nBad Header\r\n\r\n"):
            status, _, _ = parse_http(raw(self.s.admin, junk))
            self.assertEqual(status, 400, junk)
        # a request cut short by the client shutting its side
        status, _, _ = parse_http(raw(self.s.admin, b"GET /stats HTTP/1.1\r\n",
                                      shut=True))
        self.assertEqual(status, 400)
        text = curl(self.s.admin, "/metrics")[1].decode()
        self.assertRegex(text, r"\nmemring_admin_bad_requests_total [1-9]")
        self.assertProxyServes()

    def test_wrong_method_is_405_with_allow(self):
        status, headers, _ = request(self.s.admin, "DELETE", "/stats")
        self.assertEqual(status, 405)
        self.assertEqual(headers["allow"], "GET, HEAD")
        status, headers, _ = request(self.s.admin, "POST", "/metrics",
                                     b"Content-Length: 2\r\n\r\nhi")
        self.assertEqual(status, 405)
        status, headers, _ = request(self.s.admin, "GET", "/reload")
        self.assertEqual(status, 405)
        self.assertEqual(headers["allow"], "POST")

    def test_unknown_path_is_404(self):
        self.assertEqual(request(self.s.admin, "GET", "/statsx")[0], 404)
        self.assertEqual(request(self.s.admin, "GET", "/stats/")[0], 404)

    def test_oversized_is_413(self):
        big = b"X-Filler: " + b"a" * 20000 + b"\r\n"
        status, _, _ = request(self.s.admin, "GET", "/stats", big)
        self.assertEqual(status, 413)
        many = b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 100)
                        for i in range(200))
        status, _, _ = request(self.s.admin, "GET", "/stats", many)
        self.assertEqual(status, 413)
        status, _, _ = request(self.s.admin, "POST", "/reload",
                               b"Content-Length: 100000000\r\n")
        self.assertEqual(status, 413)
        status, _, _ = request(self.s.admin, "GET", "/" + "u" * 5000)
        self.assertEqual(status, 414)
        # a chunked body over the bound is cut off too
        chunk = b"%x\r\n%s\r\n" % (40000, b"c" * 40000)
        status, _, _ = request(self.s.admin, "POST", "/reload",
                               b"Transfer-Encoding: chunked\r\n\r\n" +
                               chunk * 3 + b"0\r\n")
        self.assertEqual(status, 413)
        self.assertProxyServes()

    def test_split_request_is_served(self):
        parts = [b"GET /hea", b"lthz HTTP/1.1\r\nHo", b"st: x\r\n", b"\r\n"]
        status, _, body = parse_http(raw(self.s.admin, parts, pause=0.05))
        self.assertEqual(status, 200, body)

    def test_slowloris_times_out_proxy_serves(self):
        """A client trickling header bytes gets 408 within the request
        deadline (5 s from accept); meanwhile the proxy and the admin
        serve everybody else."""
        result = {}

        def slow():
            t0 = time.monotonic()
            parts = [b"GET /stats HTTP/1.1\r\n"] + [b"X-Slow: 1\r\n"] * 40
            try:
                result["resp"] = raw(self.s.admin, parts, pause=0.25,
                                     timeout=9)
            except Exception as e:      # reported by the main thread
                result["err"] = e
            result["took"] = time.monotonic() - t0

        t = threading.Thread(target=slow)
        t.start()
        try:
            time.sleep(0.5)
            for _ in range(5):
                self.assertProxyServes()
                self.assertEqual(curl(self.s.admin, "/healthz")[0], 200)
                time.sleep(0.2)
        finally:
            t.join(12)
        self.assertFalse(t.is_alive())
        self.assertNotIn("err", result, result.get("err"))
        status, _, _ = parse_http(result["resp"])
        self.assertEqual(status, 408)
        self.assertLess(result["took"], 8.0)
        text = curl(self.s.admin, "/metrics")[1].decode()
        self.assertRegex(text, r"\nmemring_admin_timeouts_total [1-9]")

    def test_connection_limit(self):
        """64 admin connections at once; more are refused at once, the
        proxy keeps serving, and the admin recovers when they go."""
        # Connections from earlier requests linger (at most 1 s) after
        # their reply; wait them out so that all 64 slots are free.
        time.sleep(1.2)
        held = []
        try:
            for _ in range(64):
                s = socket.create_connection((h.HOST, self.s.admin),
                                             timeout=5)
                s.sendall(b"GET /stats HTTP/1.1\r\n")   # never finished
                held.append(s)
            time.sleep(0.3)
            for s in held:              # all 64 held, none answered
                s.setblocking(False)
                with self.assertRaises(BlockingIOError):
                    s.recv(1)
            for _ in range(3):
                t0 = time.monotonic()
                out = raw(self.s.admin, b"GET /stats HTTP/1.1\r\n\r\n",
                          timeout=3)
                self.assertLess(time.monotonic() - t0, 1.0)
                self.assertFalse(out.startswith(b"HTTP/1.1 200"), out[:80])
                if out:
                    self.assertEqual(parse_http(out)[0], 503)
            self.assertProxyServes()
        finally:
            for s in held:
                s.close()
        h.wait_for(lambda: curl(self.s.admin, "/healthz")[0] == 200,
                 what="admin to recover")
        text = curl(self.s.admin, "/metrics")[1].decode()
        self.assertRegex(text, r"\nmemring_admin_refused_total [1-9]")


# ---------------------------------------------------------------- ejection

class TestEjection(unittest.TestCase):

    def test_ejected_server_shows_everywhere(self):
        # No health probe: it could find the stopped server down (and
        # eject it) before a request does, and requests are what this
        # test counts.
        s = Setup(self, nservers=2, eject=True,
                  args=("--health-probe-interval", "0"))
        a, b = s.servers
        a.stop()
        before = h.admin_stats(s.admin)["alpha"]

        def send_until_error(c, start):
            for i in range(start, start + 500):
                if c.call(b"get key%d\r\n" % i).startswith(b"SERVER_ERROR"):
                    return i + 1
            raise AssertionError("no request reached the stopped server")

        with s.conn() as c:
            nxt = send_until_error(c, 0)
            doc = h.admin_stats(s.admin)
            pool = doc["alpha"]
            self.assertGreater(pool["server_ejects"], before["server_ejects"])
            self.assertGreater(pool["forward_error"], 0)
            sa, sb = pool[a.addr], pool[b.addr]
            now_us = time.time() * 1e6
            self.assertGreater(sa["server_ejected_at"], now_us - 60e6)
            self.assertLessEqual(sa["server_ejected_at"], now_us + 1e6)
            self.assertEqual(sa["memring_ejected"], 1)
            self.assertEqual(sb["server_ejected_at"], 0)
            self.assertEqual(curl(s.admin, "/healthz")[0], 200)

            cfg = json.loads(curl(s.admin, "/config")[1])
            servers = {x["name"]: x for x in cfg["pools"][0]["servers"]}
            self.assertTrue(servers[a.addr]["ejected"])
            self.assertFalse(servers[a.addr]["live"])
            self.assertGreater(servers[a.addr]["retry_in_ms"], 20000)
            self.assertFalse(servers[b.addr]["ejected"])
            # One ring per worker; each catches up with the shared ejection
            # on its next request, so the one serving c already has.
            rings = cfg["pools"][0]["ring"]
            caught_up = [r for r in rings if r["ejected_servers"] == 1]
            self.assertTrue(caught_up, rings)
            self.assertEqual(caught_up[0]["npoints"], 160)

            # the last server goes too: no live server, 503 and why
            b.stop()
            send_until_error(c, nxt)
        status, body = curl(s.admin, "/healthz")
        self.assertEqual(status, 503, body)
        self.assertIn(b"pool alpha: no live server", body)
        status, body = curl(s.admin, "/metrics")
        self.assertEqual(promtool(body)[0], 0)
        self.assertIn(b'memring_pool_healthy{pool="alpha"} 0', body)
        self.assertIn(b'memring_server_ejected{pool="alpha",server="%s"} 1'
                      % a.addr.encode(), body)
        # twemproxy-style readers still get the JSON
        self.assertEqual(json.loads(raw(s.admin, timeout=3))["alpha"]
                         ["server_ejects"], 2)


# ---------------------------------------------------------------- shape

class TestShape(unittest.TestCase):

    def test_same_keys_as_nutcracker(self):
        """Every field of real nutcracker's stats JSON, at the same
        nesting, for the same config; memring's extras are prefixed and
        never nested, so twemproxy parsers see one object per server."""
        s = Setup(self, nservers=2, names=[None, "named"])
        nport = h.free_port()
        nconf = os.path.join(s.dir, "nutcracker.yml")
        with open(s.conf) as f:
            text = f.read()
        with open(nconf, "w") as f:
            f.write(re.sub(r"listen: \S+", "listen: %s:%d" % (h.HOST, nport),
                           text))
        nc = h.Nutcracker(nconf, wait=[nport])
        self.addCleanup(nc.stop)
        nc.start()
        want = json.loads(raw(h.wait_for(lambda: h.accepts(nc.stats_port) and
                                         nc.stats_port, what="admin port"),
                              timeout=3))
        got = json.loads(raw(s.admin, timeout=3))

        self.assertTrue(TWEMPROXY_TOP <= set(want))
        self.assertEqual(set(want) - set(got), set())
        extra = set(got) - set(want)
        self.assertTrue(all(k.startswith("memring_") for k in extra), extra)
        for k in ("service", "source", "version"):
            self.assertIsInstance(got[k], str)
        for k in TWEMPROXY_TOP - {"service", "source", "version"}:
            self.assertIsInstance(got[k], int)

        self.assertEqual(set(servers_of(got["alpha"])),
                         set(servers_of(want["alpha"])))
        self.assertEqual(set(servers_of(got["alpha"])),
                         {s.servers[0].addr, "named"})
        wpool = {k for k, v in want["alpha"].items()
                 if not isinstance(v, dict)}
        gpool = {k for k, v in got["alpha"].items()
                 if not isinstance(v, dict)}
        self.assertEqual(wpool, TWEMPROXY_POOL)
        self.assertTrue(wpool <= gpool)
        self.assertTrue(all(k.startswith("memring_") for k in gpool - wpool))
        self.assertTrue(all(isinstance(got["alpha"][k], int) for k in gpool))
        for name, wsrv in servers_of(want["alpha"]).items():
            gsrv = got["alpha"][name]
            self.assertEqual(set(wsrv), TWEMPROXY_SERVER)
            self.assertTrue(set(wsrv) <= set(gsrv))
            self.assertTrue(all(k.startswith("memring_")
                                for k in set(gsrv) - set(wsrv)))
            self.assertTrue(all(isinstance(v, int) for v in gsrv.values()))
        # twemproxy's field order, pool fields before servers
        self.assertEqual([k for k in got["alpha"] if k in wpool],
                         [k for k in want["alpha"] if k in wpool])

    def test_any_bytes_in_names(self):
        """Names with quotes, backslashes, control characters and
        non-ASCII come out as valid JSON and valid Prometheus labels."""
        pool = 'we"ird\\pool\tü\x01'
        yaml_name = '"we\\"ird\\\\pool\\tü\\x01"'
        s = Setup(self, nservers=2, name=yaml_name, names=['a"b\\c', "ö"])
        doc = h.admin_stats(s.admin)
        self.assertIn(pool, doc)
        self.assertEqual(set(servers_of(doc[pool])), {'a"b\\c', "ö"})
        cfg = json.loads(curl(s.admin, "/config")[1])
        self.assertEqual(cfg["pools"][0]["name"], pool)
        status, body = curl(s.admin, "/metrics")
        rc, out = promtool(body)
        self.assertEqual(rc, 0, out)
        self.assertIn('server="a\\"b\\\\c"', body.decode())
        self.assertIn('pool="we\\"ird\\\\pool\tü\x01"', body.decode())


# ---------------------------------------------------------------- flags

class TestFlags(unittest.TestCase):

    def start(self, *args):
        d = tempfile.mkdtemp(prefix="memring-admin-")
        self.addCleanup(shutil.rmtree, d, True)
        port = h.free_port()
        conf = h.write_conf(os.path.join(d, "m.yml"), pool_yaml(
            "alpha", port, h.servers_yaml(["127.0.0.1:1"], indent=3)))
        mr = h.Memring(conf, wait=[port], args=args)
        self.addCleanup(mr.stop)
        return mr

    def test_off(self):
        for args in (["-s", "0"], ["--no-admin"],
                     ["--stats-port", "0"]):
            mr = self.start(*args)
            mr.start()
            self.assertNotIn("admin: listening", mr.log_text())
            mr.stop()

    def test_long_forms(self):
        port = h.free_port()
        mr = self.start("--admin-port", str(port), "--admin-addr", h.HOST)
        mr.start()
        h.wait_accepting(port)
        # /stats, not /healthz: the pool's one server (port 1) is down,
        # which the health probe may have found already (a 503).
        self.assertEqual(curl(port, "/stats")[0], 200)

    def test_port_taken_is_fatal(self):
        with socket.socket() as busy:
            busy.bind((h.HOST, 0))
            busy.listen(1)
            mr = self.start("-s", str(busy.getsockname()[1]))
            mr.spawn()
            deadline = time.monotonic() + 5
            while mr.alive() and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertFalse(mr.alive())
            self.assertEqual(mr.proc.returncode, 1)
            self.assertIn("admin: listen", mr.log_text())

    def test_beyond_loopback_warns(self):
        mr = self.start("-a", "0.0.0.0")
        mr.start()
        h.wait_for(lambda: "beyond loopback" in mr.log_text(),
                 what="the warning")


class TestToken(unittest.TestCase):
    """--admin-token-file: /config, POST /reload and POST /ring/diff want
    the bearer token; /stats, /metrics and /healthz stay open."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="memring-token-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def start(self, token_text):
        token = h.write_conf(os.path.join(self.dir, "token"), token_text)
        port = h.free_port()
        conf = h.write_conf(os.path.join(self.dir, "m.yml"), pool_yaml(
            "alpha", port, h.servers_yaml(["127.0.0.1:1"], indent=3)))
        mr = h.Memring(conf, wait=[port], args=("--admin-token-file", token))
        self.addCleanup(mr.stop)
        return mr

    def test_no_wrong_and_right_token(self):
        mr = self.start("  Zm9vYmFy-42 \n# second line ignored\n").start()
        s = mr.stats_port
        for path in ("/stats", "/metrics"):
            self.assertEqual(h.http_request(s, path)[0], 200, path)
        self.assertIn(h.http_request(s, "/healthz")[0], (200, 503))
        self.assertEqual(h.http_request(s, "/config")[0], 401)
        self.assertEqual(h.http_request(s, "/reload", "POST", body=b"")[0],
                         401)
        wrong = [("Authorization", "Bearer Zm9vYmFy-43")]
        self.assertEqual(h.http_request(s, "/config", headers=wrong)[0], 403)
        self.assertEqual(h.http_request(s, "/reload", "POST", body=b"",
                                        headers=wrong)[0], 403)
        right = [("Authorization", "Bearer Zm9vYmFy-42")]
        status, body = h.http_request(s, "/config", headers=right)
        self.assertEqual(status, 200)
        self.assertIn(b"127.0.0.1:1", body)
        status, body = h.http_request(s, "/reload", "POST", body=b"",
                                      headers=right)
        self.assertEqual(status, 200, body)
        with socket.create_connection((h.HOST, s), timeout=5) as c:
            c.sendall(b"GET /config HTTP/1.1\r\nHost: x\r\n"
                      b"Connection: close\r\n\r\n")
            head = h.read_to_eof(c, 5)[0].split(b"\r\n\r\n")[0]
        self.assertIn(b"WWW-Authenticate: Bearer", head)

    def test_bad_token_files_refused_at_start(self):
        for text in ("", "\n\n", "two words\n", "x" * 300 + "\n"):
            mr = self.start(text)
            mr.spawn()
            self.assertEqual(mr.proc.wait(10), 1, repr(text))
            self.assertIn("admin token file", mr.output())
        mr = h.Memring(os.path.join(self.dir, "m.yml"), args=(
            "--admin-token-file", os.path.join(self.dir, "none")))
        self.addCleanup(mr.stop)
        mr.spawn()
        self.assertEqual(mr.proc.wait(10), 1)
        self.assertIn("No such file", mr.output())


if __name__ == "__main__":
    sys.exit(h.run_tests(globals()))
