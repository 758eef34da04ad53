"""The status page at `/` in a real browser: headless Chromium (Debian's
`chromium`) loads it from a running memring with traffic flowing and one
of its three memcached servers killed, lets its script read /stats a few
times, and the test reads what the page shows from the rendered DOM: the
killed server marked down (or ejected), the others live, request counters
that grow between two loads, a request rate and hits. A screenshot is kept
under the build directory (test-artifacts/status-page.png), not committed."""

import html.parser
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import harness as h

CHROMIUM = shutil.which("chromium")


def chromium(url, *args, budget_ms=7000):
    """Chromium, headless, on url; virtual time runs the page's timers
    (several refreshes) without waiting for them in real time."""
    profile = tempfile.mkdtemp(prefix="memring-chromium-")
    argv = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", "--no-first-run",
            "--user-data-dir=" + profile,
            "--virtual-time-budget=%d" % budget_ms] + list(args) + [url]
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=90)
    finally:
        shutil.rmtree(profile, True)
    return proc.returncode, proc.stdout.decode("utf-8", "replace")


class Dom(html.parser.HTMLParser):
    """What the page shows, by its data-* attributes: per server its state,
    per pool and counter the text of the element."""

    def __init__(self, text):
        super().__init__()
        self.states = {}
        self.counters = {}
        self.rates = {}
        self.refreshes = 0
        self.pool = None
        self.open = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body" and "data-refreshes" in a:
            self.refreshes = int(a["data-refreshes"])
        if "data-pool" in a:
            self.pool = a["data-pool"]
        if "data-server" in a:
            self.states[a["data-server"]] = a["data-state"]
        if tag == "b" and "data-counter" in a:
            self.open = (self.counters, a["data-counter"])
        elif tag == "b" and "data-rate" in a:
            self.open = (self.rates, a["data-rate"])

    def handle_data(self, data):
        if self.open is not None:
            table, name = self.open
            table[(self.pool, name)] = data.strip()
            self.open = None


def number(text):
    return float(text.replace(",", "").split()[0])


@unittest.skipIf(CHROMIUM is None, "chromium is not installed")
class TestStatusPage(unittest.TestCase):

    def setUp(self):
        self.cl = h.Cluster(self, nservers=3, template="failures.yml.in",
                            hash="md5", timeout=500, auto_eject_hosts="true",
                            server_failure_limit=1,
                            server_retry_timeout=60000, preconnect="false",
                            server_connections=1)
        self.stop = threading.Event()
        self.traffic = threading.Thread(target=self.load, daemon=True)
        self.traffic.start()
        self.addCleanup(self.traffic.join, 10)
        self.addCleanup(self.stop.set)

    def load(self):
        """sets and gets until told to stop (bounded: 10 minutes)."""
        deadline = time.monotonic() + 600
        i = 0
        with h.Conn(self.cl.port) as c:
            while not self.stop.is_set() and time.monotonic() < deadline:
                k = b"page:%d" % (i % 200)
                c.call(h.set_cmd(k, b"v"))
                c.call(b"get " + k + b"\r\n")
                i += 1
                time.sleep(0.002)

    def page(self, *args):
        url = "http://%s:%d/" % (h.HOST, self.cl.proxy.stats_port)
        rc, out = chromium(url, "--dump-dom", *args)
        self.assertEqual(rc, 0, out[-2000:])
        return Dom(out)

    def test_page_shows_the_fleet(self):
        status, body = h.http_request(self.cl.proxy.stats_port, "/")
        self.assertEqual(status, 200)
        self.assertNotRegex(body, rb"(src|href)=\"?https?:")  # no CDN
        victim = self.cl.servers[2]
        victim.proc.kill()
        victim.proc.wait(5)
        h.wait_for(lambda: h.admin_stats(self.cl.proxy.stats_port)
                   ["beta"][victim.addr]["memring_live"] == 0,
                   timeout=15, what="memring to see the killed server")

        first = self.page()
        self.assertGreaterEqual(first.refreshes, 2, "the page did not refresh")
        self.assertIn(first.states[victim.addr], ("down", "ejected"))
        for s in self.cl.servers[:2]:
            self.assertEqual(first.states[s.addr], "live")
        self.assertGreater(number(first.rates[("beta", "requests")]), 0)
        self.assertGreater(number(first.counters[("beta", "hits")]), 0)

        time.sleep(1)
        second = self.page()
        self.assertGreater(number(second.counters[("beta", "requests")]),
                           number(first.counters[("beta", "requests")]))

        shots = os.path.join(os.path.dirname(os.path.abspath(
            h.memring_bin())), "test-artifacts")
        os.makedirs(shots, exist_ok=True)
        shot = os.path.join(shots, "status-page.png")
        if os.path.exists(shot):
            os.remove(shot)
        rc, out = chromium("http://%s:%d/" % (h.HOST,
                                              self.cl.proxy.stats_port),
                           "--window-size=1280,900", "--screenshot=" + shot,
                           budget_ms=4000)
        self.assertEqual(rc, 0, out[-2000:])
        self.assertGreater(os.path.getsize(shot), 1000)


if __name__ == "__main__":
    sys.exit(h.run_tests(globals()))
