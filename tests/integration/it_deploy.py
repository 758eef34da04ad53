"""What ships for deployment, checked as far as this machine can: every
shipped config passes `memring -t`; the systemd unit passes
`systemd-analyze verify`; `memring --check-health` (the container's
HEALTHCHECK and the Kubernetes liveness probe) answers for a running
memring; the Dockerfile's runtime packages cover what `ldd` says the binary
needs; every metric the Grafana dashboard queries is one /metrics exports;
the Kubernetes examples parse, use only flags memring has, and mount their
config where -c looks for it. Docker and a cluster cannot run here."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml

import harness as h

CONF = os.path.join(h.source_dir(), "conf")


def memring(*args, timeout=15):
    proc = subprocess.run([h.memring_bin()] + list(args),
                          stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout)
    return proc.returncode, (proc.stdout + proc.stderr).decode()


def kube_docs(name):
    with open(os.path.join(CONF, "kubernetes", name)) as f:
        return [d for d in yaml.safe_load_all(f) if d]


class DeployCase(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="memring-deploy-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def check_conf_text(self, text, what):
        path = h.write_conf(os.path.join(self.dir, "check.yml"), text)
        rc, out = memring("-t", "-c", path)
        self.assertEqual(rc, 0, "%s: %s" % (what, out))


class TestShippedConfigs(DeployCase):

    def test_every_config_passes_check(self):
        configs = [f for f in os.listdir(CONF) if f.endswith(".yml")]
        self.assertIn("memring-container.yml", configs)
        for name in configs:
            with self.subTest(config=name):
                rc, out = memring("-t", "-c", os.path.join(CONF, name))
                self.assertEqual(rc, 0, out)

    def test_container_config_listens_on_all_interfaces(self):
        with open(os.path.join(CONF, "memring-container.yml")) as f:
            pools = yaml.safe_load(f)
        for name, pool in pools.items():
            self.assertTrue(pool["listen"].startswith("0.0.0.0:"), name)


class TestSystemdUnit(DeployCase):

    def test_unit_verifies(self):
        """systemd-analyze verify on the unit, its binary path pointed at
        the build (verify checks that ExecStart is executable)."""
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            self.skipTest("systemd-analyze is not installed")
        with open(os.path.join(CONF, "memring.service")) as f:
            unit = f.read()
        self.assertIn("ExecReload=/bin/kill -HUP $MAINPID", unit)
        self.assertRegex(unit, r"(?m)^Type=simple$")
        self.assertRegex(unit, r"(?m)^LimitNOFILE=\d+$")
        unit = unit.replace("/usr/bin/memring", os.path.abspath(
            h.memring_bin()))
        path = h.write_conf(os.path.join(self.dir, "memring.service"), unit)
        proc = subprocess.run([analyze, "verify", path], capture_output=True,
                              timeout=60)
        out = (proc.stdout + proc.stderr).decode()
        # A machine without systemd as PID 1 still verifies a unit file;
        # only lines about this unit count (not the host's other units).
        own = [l for l in out.splitlines() if "memring.service" in l]
        self.assertEqual(proc.returncode, 0, out)
        self.assertEqual(own, [], out)


class TestCheckHealth(DeployCase):

    def start(self, server):
        port = h.free_port()
        conf = h.write_conf(os.path.join(self.dir, "m.yml"), h.pool_yaml(
            "alpha", port, [server], timeout=500, auto_eject_hosts=True,
            server_failure_limit=1))
        proxy = h.Memring(conf, wait=[port], args=(
            "--health-probe-interval", "100"))
        self.addCleanup(proxy.stop)
        return proxy.start()

    def test_healthy_unhealthy_and_nothing_there(self):
        mc = h.Memcached().start()
        self.addCleanup(mc.stop)
        proxy = self.start(mc)
        rc, out = memring("--check-health", "-s", str(proxy.stats_port))
        self.assertEqual(rc, 0, out)
        self.assertTrue(out.startswith("200 "), out)
        mc.stop()
        h.wait_for(lambda: memring("--check-health", "-s",
                                   str(proxy.stats_port))[0] == 1,
                   timeout=10, what="check-health to see the server gone")
        rc, out = memring("--check-health", "-s", str(proxy.stats_port))
        self.assertEqual(rc, 1)
        self.assertTrue(out.startswith("503 "), out)
        proxy.stop()
        rc, out = memring("--check-health", "-s", str(proxy.stats_port))
        self.assertEqual(rc, 1)
        self.assertIn("Connection refused", out)


def package_of(path):
    """The Debian package that holds path (a library as ldd names it), or
    "": dpkg knows it by one of its names under /lib or /usr/lib."""
    real = os.path.realpath(path)
    for p in (path, real, path.replace("/lib/", "/usr/lib/", 1),
              real.replace("/usr/lib/", "/lib/", 1)):
        owner = subprocess.run(["dpkg", "-S", p], capture_output=True,
                               timeout=30)
        if owner.returncode == 0:
            return owner.stdout.decode().split(":")[0]
    return ""


class TestDockerfile(DeployCase):

    def runtime_packages(self):
        with open(os.path.join(h.source_dir(), "Dockerfile")) as f:
            text = f.read()
        stages = re.split(r"(?m)^FROM ", text)
        runtime = stages[-1]
        self.assertTrue(runtime.startswith("debian:bookworm-slim"), runtime)
        install = re.search(r"apt-get install -y \\?\s*(.*?)(&&|$)",
                            runtime, re.S).group(1)
        words = install.replace("\\", " ").split()
        return {w for w in words if not w.startswith("-")}, text

    def test_runtime_stage_covers_ldd(self):
        if h.sanitized():
            self.skipTest("the image carries a release build, not this "
                          "sanitizer build (libasan, libubsan)")
        packages, text = self.runtime_packages()
        ldd = subprocess.run(["ldd", h.memring_bin()], capture_output=True,
                             timeout=30).stdout.decode()
        libs = re.findall(r"=> (/\S+)", ldd)
        self.assertTrue(libs, ldd)
        missing = []
        for lib in libs:
            pkg = package_of(lib)
            if pkg in ("libc6",):            # in every Debian image
                continue
            if pkg not in packages:
                missing.append("%s (%s)" % (lib, pkg or "no package"))
        self.assertEqual(missing, [], "runtime stage installs %s" % packages)
        self.assertIn("USER memring", text)
        self.assertIn('HEALTHCHECK', text)
        self.assertIn('"--check-health"', text)
        self.assertIn("scripts/install-deps --build-only", text)


class TestGrafana(DeployCase):

    def test_every_queried_metric_is_exported(self):
        with open(os.path.join(CONF, "grafana", "memring.json")) as f:
            dash = json.load(f)
        exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
        used = set(re.findall(r"\bmemring_[a-z_]+", " ".join(exprs)))
        self.assertGreaterEqual(len(used), 10)
        mc = h.Memcached().start()
        self.addCleanup(mc.stop)
        port = h.free_port()
        conf = h.write_conf(os.path.join(self.dir, "m.yml"),
                            h.pool_yaml("alpha", port, [mc]))
        proxy = h.Memring(conf, wait=[port])
        self.addCleanup(proxy.stop)
        proxy.start()
        status, body = h.http_request(proxy.stats_port, "/metrics")
        self.assertEqual(status, 200)
        exported = set(re.findall(r"(?m)^(memring_[a-z_]+)[{ ]",
                                  body.decode()))
        self.assertEqual(sorted(used - exported), [])
        for need in ("memring_pool_get_hits_total",
                     "memring_pool_server_ejects_total",
                     "memring_reloads_total",
                     "memring_pool_request_duration_seconds_bucket"):
            self.assertIn(need, used)


class TestKubernetes(DeployCase):

    def flags(self):
        _, out = memring("--help")
        return set(re.findall(r"(--[a-z-]+|-[a-zA-Z])\b", out))

    def check(self, name):
        docs = kube_docs(name)
        kinds = [d["kind"] for d in docs]
        self.assertIn("ConfigMap", kinds)
        config_maps = {d["metadata"]["name"]: d for d in docs
                       if d["kind"] == "ConfigMap"}
        for cm in config_maps.values():
            self.check_conf_text(cm["data"]["memring.yml"], name)
        known = self.flags()
        found = 0
        for d in docs:
            if d["kind"] not in ("Deployment", "StatefulSet"):
                continue
            spec = d["spec"]["template"]["spec"]
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            for c in spec["containers"]:
                if c["image"].split(":")[0] != "memring":
                    continue
                found += 1
                args = c["args"]
                for a in args:
                    if a.startswith("-"):
                        self.assertIn(a, known, "%s: %s" % (name, a))
                conf = args[args.index("-c") + 1]
                mounts = [m for m in c["volumeMounts"]
                          if conf.startswith(m["mountPath"] + "/")]
                self.assertEqual(len(mounts), 1, conf)
                cm = volumes[mounts[0]["name"]]["configMap"]["name"]
                self.assertIn(os.path.basename(conf),
                              config_maps[cm]["data"])
                ports = {p["name"] for p in c["ports"]}
                self.assertEqual(c["readinessProbe"]["httpGet"]["path"],
                                 "/healthz")
                self.assertIn(c["readinessProbe"]["httpGet"]["port"], ports)
                probe = c["livenessProbe"]["exec"]["command"]
                self.assertIn("--check-health", probe)
                self.assertIn("requests", c["resources"])
        self.assertGreaterEqual(found, 1)
        return docs

    def test_sidecar(self):
        docs = self.check("sidecar.yaml")
        deploy = [d for d in docs if d["kind"] == "Deployment"][0]
        containers = deploy["spec"]["template"]["spec"]["containers"]
        self.assertEqual(len(containers), 2)     # the app and memring
        self.assertIn("--watch-config",
                      [c for c in containers if c["name"] == "memring"][0]
                      ["args"])

    def test_edge_names_servers_by_alias(self):
        docs = self.check("edge.yaml")
        cm = [d for d in docs if d["kind"] == "ConfigMap"][0]
        pools = yaml.safe_load(cm["data"]["memring.yml"])
        for pool in pools.values():
            for server in pool["servers"]:
                self.assertEqual(len(server.split()), 2, server)  # alias
        self.assertIn("StatefulSet", [d["kind"] for d in docs])


if __name__ == "__main__":
    sys.exit(h.run_tests(globals()))
