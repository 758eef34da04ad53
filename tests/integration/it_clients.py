"""Real, unmodified memcached clients pointed at memring: pymemcache's
Client, and the libmemcached command line tools (memccp, memccat, memcrm,
memcflush, memcexist, memctouch, memcstat)."""

import os
import subprocess
import sys
import unittest

from pymemcache.client.base import Client

import harness as h

CL = None       # 3 memcached behind memring
REF = None      # a plain memcached: what the tools print against it


def setUpModule():
    global CL, REF
    CL, REF = h.start_shared()


def flush_all_servers():
    for s in CL.servers + [REF]:
        s.flush()


class TestPymemcache(unittest.TestCase):

    def setUp(self):
        flush_all_servers()
        self.mc = Client((h.HOST, CL.port), connect_timeout=5, timeout=5,
                         default_noreply=False)
        self.addCleanup(self.mc.close)

    def test_set_get_delete(self):
        self.assertTrue(self.mc.set("a", b"1"))
        self.assertEqual(self.mc.get("a"), b"1")
        self.assertTrue(self.mc.delete("a"))
        self.assertFalse(self.mc.delete("a"))
        self.assertIsNone(self.mc.get("a"))

    def test_noreply_default_client(self):
        quiet = Client((h.HOST, CL.port), connect_timeout=5, timeout=5)
        self.addCleanup(quiet.close)
        for i in range(50):
            self.assertTrue(quiet.set("nr%d" % i, b"%d" % i))
        quiet.delete("nr0")
        self.assertEqual(quiet.get_many(["nr0", "nr1", "nr49"]),
                         {"nr1": b"1", "nr49": b"49"})

    def test_get_many_across_servers(self):
        values = {"many%d" % i: b"v%d" % i for i in range(40)}
        self.assertEqual(self.mc.set_many(values), [])
        for s in CL.servers:
            self.assertTrue(s.raw_get_many(list(values)), s.addr)
        keys = list(values) + ["missing1", "missing2"]
        self.assertEqual(self.mc.get_many(keys), values)

    def test_incr_decr(self):
        self.assertIsNone(self.mc.incr("n", 1))
        self.mc.set("n", b"10")
        self.assertEqual(self.mc.incr("n", 5), 15)
        self.assertEqual(self.mc.decr("n", 20), 0)

    def test_gets_cas(self):
        self.mc.set("c", b"1")
        value, unique = self.mc.gets("c")
        self.assertEqual(value, b"1")
        self.assertTrue(self.mc.cas("c", b"2", unique))
        self.assertFalse(self.mc.cas("c", b"3", unique))
        self.assertEqual(self.mc.get("c"), b"2")
        self.assertIsNone(self.mc.cas("nokey", b"x", unique))

    def test_add_replace_append_prepend(self):
        self.assertTrue(self.mc.add("k", b"mid"))
        self.assertFalse(self.mc.add("k", b"other"))
        self.assertFalse(self.mc.replace("nokey", b"x"))
        self.assertTrue(self.mc.append("k", b">"))
        self.assertTrue(self.mc.prepend("k", b"<"))
        self.assertEqual(self.mc.get("k"), b"<mid>")
        self.assertTrue(self.mc.replace("k", b"new"))
        self.assertEqual(self.mc.get("k"), b"new")

    def test_touch(self):
        self.mc.set("t", b"x", expire=1000)
        self.assertTrue(self.mc.touch("t", 2000))
        self.assertFalse(self.mc.touch("nokey", 2000))

    def test_flush_all(self):
        self.mc.set_many({"f%d" % i: b"x" for i in range(20)})
        self.assertTrue(self.mc.flush_all())
        self.assertEqual(self.mc.get_many(["f%d" % i for i in range(20)]),
                         {})
        for s in CL.servers:
            self.assertEqual(s.raw_get_many(["f%d" % i for i in range(20)]),
                             {})

    def test_version_and_stats(self):
        self.assertTrue(self.mc.version())
        stats = self.mc.stats()
        for name in (b"pid", b"uptime", b"curr_connections",
                     b"total_connections", b"cmd_get", b"cmd_set"):
            self.assertIn(name, stats)
        self.assertEqual(int(stats[b"pid"]), CL.proxy.pid)

    def test_large_value(self):
        value = os.urandom(512 * 1024)
        self.assertTrue(self.mc.set("big", value))
        self.assertEqual(self.mc.get("big"), value)


class TestLibmemcachedTools(unittest.TestCase):
    """Each tool is run against memring and against the reference
    memcached; exit status and output must agree."""

    def setUp(self):
        flush_all_servers()
        self.dir = CL.dir

    def tool(self, server, *args):
        argv = [args[0], "--servers=" + server] + list(args[1:])
        proc = subprocess.run(argv, capture_output=True, timeout=10)
        return proc.returncode, proc.stdout

    def both(self, *args):
        got = self.tool("%s:%d" % (h.HOST, CL.port), *args)
        want = self.tool(REF.addr, *args)
        self.assertEqual(got, want, args)
        return got

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_copy_cat_exist_touch_remove(self):
        data = b"hello from a file\n" + os.urandom(1000)
        path = self.write("tool-file", data)
        self.assertEqual(self.both("memccp", path), (0, b""))
        self.assertEqual(CL.owner_of("tool-file").raw_get("tool-file"), data)
        rc, out = self.both("memccat", "tool-file")
        self.assertEqual(rc, 0)
        self.assertTrue(out.startswith(data))
        self.assertEqual(self.both("memcexist", "tool-file")[0], 0)
        self.assertNotEqual(self.both("memcexist", "nokey")[0], 0)
        self.assertEqual(self.both("memctouch", "--expire=1000",
                                   "tool-file")[0], 0)
        self.assertNotEqual(self.both("memctouch", "--expire=1000",
                                      "nokey")[0], 0)
        self.assertEqual(self.both("memcrm", "tool-file")[0], 0)
        self.assertNotEqual(self.both("memccat", "tool-file")[0], 0)
        self.assertIsNone(CL.owner_of("tool-file"))

    def test_copy_many_files_then_flush(self):
        names = ["tool%d" % i for i in range(20)]
        paths = [self.write(n, n.encode()) for n in names]
        self.assertEqual(self.both("memccp", *paths)[0], 0)
        held = {}
        for s in CL.servers:
            got = s.raw_get_many(names)
            self.assertTrue(got, s.addr)
            held.update(got)
        self.assertEqual(held, {n.encode(): n.encode() for n in names})
        self.assertEqual(self.both("memcflush")[0], 0)
        for s in CL.servers:
            self.assertEqual(s.raw_get_many(names), {}, s.addr)

    def test_memcstat(self):
        rc, out = self.tool("%s:%d" % (h.HOST, CL.port), "memcstat")
        self.assertEqual(rc, 0)
        self.assertIn(b"pid: %d\n" % CL.proxy.pid, out)
        for name in (b"uptime", b"curr_connections", b"cmd_get"):
            self.assertIn(b"\t" + name + b": ", out)


if __name__ == "__main__":
    sys.exit(h.run_tests(globals()))
