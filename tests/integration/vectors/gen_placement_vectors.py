#!/usr/bin/env python3
"""Writes the placement vectors that it_client_placement.py checks memring
against for the client libraries Debian 12 does not ship: libketama
(last.fm), libmc (douban) and the Python hash_ring package. Each vector is
what the library's own code answers for a pool and a list of keys:

    libketama  ketama.c and md5.c compiled with a small driver: the server
               file (ip:port<TAB>weight lines), ketama_roll(), then
               ketama_get_server() per key;
    libmc      its src/*.cpp compiled with a driver: ConnectionPool::init()
               with hosts, ports and aliases, setHashFunction(), then
               getServerAddressByKey() per key;
    hash_ring  its hash_ring/ring.py imported as it is: HashRing(nodes,
               weights).get_node(key).

Run it with the three upstream checkouts (any revision with these files;
the committed vectors came from RJ/ketama, douban/libmc and Doist/hash_ring
as mirrored on 2026-12-05) and commit what it writes:

    gen_placement_vectors.py --libketama KETAMA/libketama --libmc LIBMC \\
        --hash-ring HASH_RING --out tests/integration/vectors

Needs gcc, g++ and python3. Deterministic: the same sources give the same
files."""

import argparse
import importlib
import json
import os
import random
import subprocess
import sys
import tempfile

KETAMA_DRIVER = r"""
#include <stdio.h>
#include <string.h>
#include "ketama.h"
int main(int argc, char **argv) {
    ketama_continuum c;
    char line[4096];
    if (argc != 2 || !ketama_roll(&c, argv[1])) {
        fprintf(stderr, "ketama_roll: %s\n", ketama_error());
        return 1;
    }
    while (fgets(line, sizeof(line), stdin) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        printf("%s\n", ketama_get_server(line, c)->ip);
    }
    ketama_smoke(c);
    return 0;
}
"""

LIBMC_DRIVER = r"""
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include "ConnectionPool.h"
using douban::mc::ConnectionPool;
/* argv: HASH (0 md5, 1 fnv1_32, 2 fnv1a_32, 3 crc32), then SERVERS lines
 * "host port [alias]" in a file; keys on stdin. */
int main(int argc, char **argv) {
    std::vector<std::string> hosts, aliases;
    std::vector<uint32_t> ports;
    bool any_alias = false;
    char line[4096];
    FILE *f = fopen(argv[2], "r");
    while (fgets(line, sizeof(line), f) != NULL) {
        char host[512], alias[512] = "";
        unsigned port;
        if (sscanf(line, "%511s %u %511s", host, &port, alias) < 2) continue;
        hosts.push_back(host); ports.push_back(port); aliases.push_back(alias);
        any_alias = any_alias || alias[0] != '\0';
    }
    fclose(f);
    std::vector<const char*> h, a;
    for (size_t i = 0; i < hosts.size(); i++) {
        h.push_back(hosts[i].c_str());
        a.push_back(aliases[i].empty() ? NULL : aliases[i].c_str());
    }
    ConnectionPool pool;
    pool.setHashFunction((hash_function_options_t)atoi(argv[1]));
    pool.init(h.data(), ports.data(), h.size(), any_alias ? a.data() : NULL);
    while (fgets(line, sizeof(line), stdin) != NULL) {
        size_t n = strcspn(line, "\n");
        const char *name = pool.getServerAddressByKey(line, n);
        printf("%s\n", name ? name : "-");
    }
    return 0;
}
"""

LIBMC_HASHES = {"md5": 0, "fnv1_32": 1, "fnv1a_32": 2, "crc32": 3}


def odd_keys(n, seed, utf8_only=False):
    """Keys of 1..60 bytes of every kind but space, \\r, \\n and NUL
    (memcached's separators and C strings' end): printable, control,
    >= 0x80 (valid UTF-8 when utf8_only, for hash_ring's str keys)."""
    rng = random.Random(seed)
    keys = set()
    while len(keys) < n:
        if utf8_only:
            chars = [chr(rng.choice([rng.randint(0x21, 0x7e),
                                     rng.randint(0xa1, 0x2fff),
                                     rng.randint(1, 0x1f)]))
                     for _ in range(rng.randint(1, 30))]
            k = "".join(chars).encode("utf-8")
        else:
            k = bytes(rng.choice([rng.randint(0x21, 0x7e),
                                  rng.randint(0x80, 0xff),
                                  rng.randint(1, 0x1f)])
                      for _ in range(rng.randint(1, 60)))
        k = k.replace(b"\n", b"n").replace(b"\r", b"r").replace(b" ", b"s")
        keys.add(k)
    return sorted(keys)


def fleet(n, seed, ports=(11211, 11211, 11212), weights=(1, 1, 1, 2, 3, 10)):
    rng = random.Random(seed)
    return [["10.%d.%d.%d" % (i // 250, rng.randint(0, 255), i % 250 + 1),
             rng.choice(list(ports) + [21000 + i]), rng.choice(weights), None]
            for i in range(n)]


def build(tmp, name, sources, driver, compiler, flags):
    src = os.path.join(tmp, name + "_driver" + (".c" if compiler == "gcc"
                                               else ".cpp"))
    with open(src, "w") as f:
        f.write(driver)
    out = os.path.join(tmp, name)
    subprocess.run([compiler, "-O1", "-w", "-o", out, src] + sources + flags,
                   check=True)
    return out


def run(argv, keys):
    out = subprocess.run(argv, input=b"\n".join(keys) + b"\n",
                         capture_output=True, check=True).stdout
    names = out.decode().split("\n")[:-1]
    assert len(names) == len(keys), (len(names), len(keys))
    return names


def write(out_dir, name, placement, hash_name, servers, keys, expect):
    path = os.path.join(out_dir, name + ".json")
    with open(path, "w") as f:
        json.dump({"placement": placement, "hash": hash_name,
                   "servers": servers, "keys_hex": [k.hex() for k in keys],
                   "expect": expect}, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print("wrote", path)


def libketama(src, tmp, out_dir):
    exe = build(tmp, "ketama", [os.path.join(src, "ketama.c"),
                                os.path.join(src, "md5.c")],
                KETAMA_DRIVER, "gcc", ["-I" + src, "-lm"])
    for n in (1, 2, 3, 5, 10, 25, 47, 100):
        servers = fleet(n, 3000 + n, ports=(11211, 11212))
        keys = odd_keys(400, 3000 + n)
        sfile = os.path.join(tmp, "ketama-%d.servers" % n)
        with open(sfile, "w") as f:
            for host, port, weight, _ in servers:
                f.write("%s:%d\t%d\n" % (host, port, weight))
        write(out_dir, "libketama-%d" % n, "libketama", None, servers, keys,
              run([exe, sfile], keys))


def libmc(src, tmp, out_dir):
    cpps = [os.path.join(src, "src", f) for f in sorted(os.listdir(
        os.path.join(src, "src"))) if f.endswith(".cpp") and
        f != "c_client.cpp"]
    exe = build(tmp, "libmc", cpps, LIBMC_DRIVER, "g++",
                ["-I" + os.path.join(src, "include"), "-lpthread"])
    for hash_name, code in LIBMC_HASHES.items():
        for n in (1, 3, 10, 47):
            servers = fleet(n, 4000 + n, weights=(1,))
            if n == 10:
                for i in (2, 5):
                    servers[i][3] = "mc-%d.example" % i  # aliases
            keys = odd_keys(400, 4000 + n + code)
            sfile = os.path.join(tmp, "libmc-%d.servers" % n)
            with open(sfile, "w") as f:
                for host, port, _, alias in servers:
                    f.write("%s %d %s\n" % (host, port, alias or ""))
            write(out_dir, "libmc-%s-%d" % (hash_name, n), "libmc",
                  hash_name, servers, keys, run([exe, str(code), sfile], keys))


def hash_ring(pkg, out_dir):
    sys.path.insert(0, pkg)
    ring_module = importlib.import_module("hash_ring.ring")
    for n in (1, 2, 3, 5, 10, 25, 47, 100):
        servers = fleet(n, 5000 + n)
        nodes = ["%s:%d" % (s[0], s[1]) for s in servers]
        weights = {node: s[2] for node, s in zip(nodes, servers)}
        ring = ring_module.HashRing(nodes, weights)
        keys = odd_keys(400, 5000 + n, utf8_only=True)
        write(out_dir, "hash_ring-%d" % n, "hash_ring", None, servers, keys,
              [ring.get_node(k.decode("utf-8")) for k in keys])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--libketama", required=True)
    ap.add_argument("--libmc", required=True)
    ap.add_argument("--hash-ring", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        libketama(args.libketama, tmp, args.out)
        libmc(args.libmc, tmp, args.out)
    hash_ring(args.hash_ring, args.out)


if __name__ == "__main__":
    main()
