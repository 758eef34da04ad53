"""Every example in README.md and docs/*.md works as written.

Fenced blocks are taken from the Markdown (a fence may be indented, as in a
list item):
- ```yaml: a memring config (a mapping of pools, each with `listen:`) must
  pass `memring -t -c FILE`; any other YAML must parse;
- ```json must parse;
- ```sh / ```bash: run with `bash -e -o pipefail` in a temp dir holding a
  copy of README.md, conf/ and docs/ (the paths the docs use from the
  repository root), `memring` first on PATH, bounded in time. A block that
  uses memring's default ports (22121 for the pool, 22222 for the admin)
  runs against a memring in front of two memcached that this suite starts
  on free ports, those numbers replaced by the real ports. A block whose
  fence follows a line `<!-- no-run: reason -->` is not run, but must pass
  `bash -n` and name a reason.
Every shell block, run or not, may use only the `memring` flags that
`memring --help` (or `memring ring --help`) lists. Every relative link in
the Markdown must lead to a file, and a `#anchor` to a heading of its
target (GitHub's heading slugs)."""

import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import unittest

import yaml

import harness as h

SRC = h.source_dir()
RUN_TIMEOUT = 30        # seconds for one shell block
PROXY_PORT = "22121"    # the ports the docs use: conf/memring.yml's pool
ADMIN_PORT = "22222"    # and memring's default admin port
NO_RUN = re.compile(r"^\s*<!--\s*no-run:\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")

# What the output of a live block must contain, by a command it holds:
# exit status 0 alone would pass a curl that got a 500, or a get that
# missed.
EXPECT = [
    ("nc -q1 127.0.0.1 %s" % PROXY_PORT, "VALUE k 0 2"),
    ("/reload", "pool alpha"),
    ("<title>", "memring status"),
    ("/healthz", "200"),
    ("memccat", "# memring"),
    ("/stats | jq", "memring_cmd_get"),
]


def doc_files():
    """README.md and docs/*.md, as paths relative to the source tree."""
    return ["README.md"] + sorted(
        os.path.relpath(p, SRC)
        for p in glob.glob(os.path.join(SRC, "docs", "*.md")))


def read(rel):
    with open(os.path.join(SRC, rel), encoding="utf-8") as f:
        return f.read()


class Block:
    def __init__(self, path, line, lang, text, no_run):
        self.path, self.line, self.lang = path, line, lang
        self.text, self.no_run = text, no_run

    def where(self):
        return "%s:%d (```%s)" % (self.path, self.line, self.lang)


def blocks(rel):
    """The fenced blocks of one Markdown file. no_run: the reason given on
    the line right before the fence, or None."""
    lines = read(rel).split("\n")
    out = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = len(m.group(1)), m.group(2), m.group(3)
        prev = NO_RUN.match(lines[i - 1]) if i > 0 else None
        start = i + 1
        j = start
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        body = [l[indent:] if l[:indent].strip() == "" else l
                for l in lines[start:j]]
        out.append(Block(rel, start, lang.lower(), "\n".join(body) + "\n",
                         prev.group(1) if prev else None))
        i = j + 1
    return out


def all_blocks(*langs):
    return [b for rel in doc_files() for b in blocks(rel) if b.lang in langs]


def is_memring_config(data):
    return (isinstance(data, dict) and len(data) > 0 and
            all(isinstance(v, dict) and "listen" in v for v in data.values()))


def run(argv, timeout=15, **kw):
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout, **kw)
    return proc.returncode, (proc.stdout + proc.stderr).decode("utf-8",
                                                                "replace")


# ------------------------------------------------------------ memring flags

def help_flags():
    """Every flag `memring --help` and `memring ring --help` name."""
    text = ""
    for args in (["--help"], ["ring", "--help"]):
        _, out = run([h.memring_bin()] + args)
        text += out
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", text))


def shell_commands(text):
    """Simple commands of a shell text, as word lists (operators split,
    comments and line continuations dropped); good enough for examples."""
    text = text.replace("\\\n", " ")
    commands = []
    for line in text.split("\n"):
        lex = shlex.shlex(line, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        lex.commenters = "#"
        try:
            words = list(lex)
        except ValueError:
            continue    # bash -n judges the syntax
        cmd = []
        for w in words:
            if w and set(w) <= set("|&;()<>"):
                if cmd:
                    commands.append(cmd)
                cmd = []
            else:
                cmd.append(w)
        if cmd:
            commands.append(cmd)
    return commands


def memring_flags(text):
    """The flags given to memring in a shell text: (flag, command line)."""
    found = []
    for cmd in shell_commands(text):
        words = list(cmd)
        while words and ("=" in words[0] or words[0] in ("sudo", "exec")):
            words.pop(0)
        if not words or os.path.basename(words[0]) != "memring":
            continue
        for w in words[1:]:
            if w == "--":
                break
            if re.match(r"--?[A-Za-z]", w):
                found.append((w.split("=", 1)[0], " ".join(cmd)))
    return found


# ------------------------------------------------------------ links

def outside_fences(text):
    """The lines of a Markdown text that are not in a fenced block."""
    in_fence = None
    for line in text.split("\n"):
        m = FENCE.match(line)
        if m:
            if in_fence is None:
                in_fence = m.group(2)
            elif line.strip().startswith(in_fence):
                in_fence = None
            continue
        if in_fence is None:
            yield line


def slug_set(text):
    """GitHub's anchors for the headings of a Markdown text."""
    slugs, seen = set(), {}
    for line in outside_fences(text):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1))
        title = title.replace("`", "").replace("*", "").lower()
        slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        slugs.add(slug if n == 0 else "%s-%d" % (slug, n))
    return slugs


def prose(text):
    """The text outside fenced blocks and inline code spans."""
    return re.sub(r"(`+)(.+?)\1", "", "\n".join(outside_fences(text)),
                  flags=re.S)


def links(rel):
    """(target, line text) of every Markdown link of a file."""
    found = []
    for m in re.finditer(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?"
                         r"\s*\)", prose(read(rel))):
        found.append(m.group(1))
    return found


# ------------------------------------------------------------ the tests

class TestExtraction(unittest.TestCase):
    """The checks below see what they should: a change that broke the
    extraction would make them pass on nothing."""

    def test_blocks_found(self):
        self.assertIn("README.md", doc_files())
        self.assertGreaterEqual(len(doc_files()), 10)
        configs = [b for b in all_blocks("yaml")
                   if is_memring_config(yaml.safe_load(b.text))]
        self.assertGreaterEqual(len(configs), 2)
        runnable = [b for b in all_blocks("sh", "bash") if b.no_run is None]
        self.assertGreaterEqual(len(runnable), 4)
        self.assertTrue(any(PROXY_PORT in b.text for b in runnable))

    def test_no_run_marker(self):
        b = blocks("README.md")[0]
        self.assertEqual(b.lang, "sh")
        self.assertIn("scripts/run-local", b.text)
        self.assertIn("scripts/test", b.text)
        self.assertTrue(b.no_run)

    def test_flag_finder(self):
        text = ("memring -t -c x.yml && sudo memring --threads=2 \\\n"
                "    -c y.yml | tee log  # memring --not-this\n"
                "docker run -d memring\nkill -HUP \"$(cat memring.pid)\"\n")
        self.assertEqual([f for f, _ in memring_flags(text)],
                         ["-t", "-c", "--threads", "-c"])

    def test_slugs(self):
        self.assertEqual(
            slug_set("# A b\n## `/stats`: twemproxy's JSON\n## A b\n"
                     "```\n# not a heading\n```\n"
                     "## Access control: `--admin-token-file`\n"),
            {"a-b", "stats-twemproxys-json", "a-b-1",
             "access-control---admin-token-file"})


class TestYaml(unittest.TestCase):

    def test_yaml_blocks(self):
        tmp = tempfile.mkdtemp(prefix="memring-docs-")
        self.addCleanup(shutil.rmtree, tmp, True)
        for b in all_blocks("yaml", "yml"):
            with self.subTest(block=b.where()):
                try:
                    data = yaml.safe_load(b.text)
                except yaml.YAMLError as e:
                    self.fail("%s: does not parse: %s" % (b.where(), e))
                if not is_memring_config(data):
                    continue
                path = h.write_conf(os.path.join(tmp, "block.yml"), b.text)
                rc, out = run([h.memring_bin(), "-t", "-c", path])
                self.assertEqual(rc, 0, "%s: memring -t: %s"
                                 % (b.where(), out))

    def test_json_blocks(self):
        for b in all_blocks("json"):
            with self.subTest(block=b.where()):
                try:
                    json.loads(b.text)
                except ValueError as e:
                    self.fail("%s: %s" % (b.where(), e))


class TestShellStatic(unittest.TestCase):

    def test_syntax(self):
        for b in all_blocks("sh", "bash"):
            with self.subTest(block=b.where()):
                rc, out = self._bash_n(b.text)
                self.assertEqual(rc, 0, "%s: bash -n: %s" % (b.where(), out))
                if b.no_run is not None:
                    self.assertTrue(b.no_run, "%s: no-run without a reason"
                                    % b.where())

    def _bash_n(self, text):
        proc = subprocess.run(["bash", "-n"], input=text.encode(),
                              capture_output=True, timeout=15)
        return proc.returncode, (proc.stdout + proc.stderr).decode()

    def test_memring_flags_exist(self):
        known = help_flags()
        self.assertIn("--conf-file", known)
        self.assertIn("--pool", known)
        for b in all_blocks("sh", "bash"):
            for flag, cmd in memring_flags(b.text):
                with self.subTest(block=b.where(), flag=flag):
                    self.assertIn(flag, known, "%s: %s: memring --help has "
                                  "no %s" % (b.where(), cmd, flag))


class TestLinks(unittest.TestCase):

    def test_relative_links_resolve(self):
        checked = 0
        for rel in doc_files():
            base = os.path.dirname(os.path.join(SRC, rel))
            for target in links(rel):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                    continue            # http:, https:, mailto:
                with self.subTest(file=rel, link=target):
                    path, _, anchor = target.partition("#")
                    full = os.path.normpath(os.path.join(base, path)) \
                        if path else os.path.join(SRC, rel)
                    self.assertTrue(os.path.exists(full), "%s: %s: no such "
                                    "file" % (rel, target))
                    if anchor and full.endswith(".md"):
                        with open(full, encoding="utf-8") as f:
                            slugs = slug_set(f.read())
                        self.assertIn(anchor, slugs, "%s: %s: no such "
                                      "heading" % (rel, target))
                    checked += 1
        self.assertGreater(checked, 30)


class TestShellRun(unittest.TestCase):
    """Runs every shell block not marked no-run."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="memring-docs-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.servers = []
        cls.proxy = None
        cls.addClassCleanup(cls._stop)
        for _ in range(2):
            cls.servers.append(h.Memcached().start())
        bindir = os.path.join(cls.tmp, "bin")
        os.mkdir(bindir)
        os.symlink(os.path.abspath(h.memring_bin()),
                   os.path.join(bindir, "memring"))
        cls.env = dict(os.environ, PATH=bindir + os.pathsep +
                       os.environ.get("PATH", "/usr/bin:/bin"))

        def make():
            port = h.free_port()
            conf = h.write_conf(
                os.path.join(cls.tmp, "memring.yml"),
                h.pool_yaml("alpha", port, cls.servers, hash="fnv1a_64",
                            distribution="ketama", timeout=400))
            cls.port = port
            return h.Memring(conf, wait=[port], args=["--threads", "1"])
        cls.proxy = h.start_on_free_ports(make)

    @classmethod
    def _stop(cls):
        h.stop_all(([cls.proxy] if cls.proxy else []) + cls.servers)

    def workdir(self):
        """A temp dir shaped like the repository root, as far as the docs
        need it: README.md, conf/ and docs/."""
        d = tempfile.mkdtemp(prefix="block-", dir=self.tmp)
        shutil.copy(os.path.join(SRC, "README.md"), d)
        for sub in ("conf", "docs"):
            shutil.copytree(os.path.join(SRC, sub), os.path.join(d, sub))
        return d

    def run_block(self, b, text):
        """Runs a block in its own process group, stopped by its pid
        (the group) if it outlives RUN_TIMEOUT."""
        proc = subprocess.Popen(
            ["bash", "-e", "-o", "pipefail", "-c", text],
            cwd=self.workdir(), env=self.env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            raw, _ = proc.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=5)
            self.fail("%s: still running after %d s" % (b.where(),
                                                         RUN_TIMEOUT))
        out = raw.decode("utf-8", "replace")
        self.assertEqual(proc.returncode, 0, "%s: exit %d:\n%s\n%s"
                         % (b.where(), proc.returncode, text, out))
        return out

    def test_blocks_run(self):
        ran = 0
        for b in all_blocks("sh", "bash"):
            if b.no_run is not None:
                continue
            live = PROXY_PORT in b.text or ADMIN_PORT in b.text
            text = b.text
            if live:
                text = text.replace(PROXY_PORT, str(self.port)).replace(
                    ADMIN_PORT, str(self.proxy.stats_port))
            with self.subTest(block=b.where()):
                self.assertTrue(self.proxy.alive(), "memring exited")
                out = self.run_block(b, text)
                for command, expected in EXPECT:
                    if live and command.replace(PROXY_PORT, str(self.port)) \
                            in text:
                        self.assertIn(expected, out, "%s: %s" % (b.where(),
                                                                 command))
                ran += 1
        self.assertGreaterEqual(ran, 4)
        self.assertTrue(self.proxy.alive(), "memring exited")


if __name__ == "__main__":
    raise SystemExit(h.run_tests(globals()))
