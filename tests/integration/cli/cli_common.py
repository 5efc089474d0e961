"""Shared helpers of the rtlog CLI integration tests (Python 3 standard library only).

Every test script is run by ctest as
    python3 test_x.py RTLOG_BINARY SHARED_DIR VERIFY_CHAIN_PY
and exits 0 on success, 1 with a "FAIL: ..." line otherwise. The binary is usually an
ASan+UBSan build: every run is checked for sanitizer reports, because a sanitizer error
exits with status 1, which an expected-failure check alone would accept.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

SANITIZER_MARKERS = (b"AddressSanitizer", b"LeakSanitizer", b"UndefinedBehaviorSanitizer",
                     b"runtime error:")


class TestFailure(Exception):
    pass


def fail(msg):
    raise TestFailure(msg)


def check(cond, msg):
    if not cond:
        fail(msg)


class Ctx:
    """Paths given by ctest plus a temp directory removed at the end."""

    def __init__(self):
        if len(sys.argv) != 4:
            print("usage: %s RTLOG SHARED_DIR VERIFY_CHAIN_PY" % sys.argv[0], file=sys.stderr)
            sys.exit(2)
        self.rtlog = os.path.abspath(sys.argv[1])
        self.shared = os.path.abspath(sys.argv[2])
        self.verify_chain = os.path.abspath(sys.argv[3])
        self.tmp = tempfile.mkdtemp(prefix="rtlog-cli-test-")
        self.data = os.path.join(self.tmp, "data")
        self.runs_dir = os.path.join(self.shared, "data", "real-runs")

    def real_runs(self):
        files = sorted(f for f in os.listdir(self.runs_dir) if f.endswith(".ndjson"))
        check(files, "no real runs in %s" % self.runs_dir)
        return [os.path.join(self.runs_dir, f) for f in files]

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def env(self, extra=None, drop_data_env=True):
        env = dict(os.environ)
        if drop_data_env:
            env.pop("RTLOG_DATA", None)
        if extra:
            env.update(extra)
        return env

    def run(self, *args, expect=0, stdin=None, env=None, cwd=None, data=True):
        """Run rtlog ARGS (with --data self.data unless data=False); return
        (returncode, stdout bytes, stderr bytes). expect=None accepts any status."""
        cmd = [self.rtlog] + list(args)
        if data:
            cmd += ["--data", self.data]
        p = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=env if env is not None else self.env(), cwd=cwd or self.tmp,
                           timeout=900)
        for m in SANITIZER_MARKERS:
            if m in p.stderr:
                fail("sanitizer report from %s:\n%s" % (" ".join(cmd),
                                                        p.stderr.decode(errors="replace")))
        if expect is not None and p.returncode != expect:
            fail("%s: exit %d, expected %d\nstdout: %s\nstderr: %s" % (
                " ".join(cmd), p.returncode, expect,
                p.stdout[:2000].decode(errors="replace"), p.stderr[:2000].decode(errors="replace")))
        return p.returncode, p.stdout, p.stderr

    def stat(self, stream):
        rc, out, err = self.run("stat", stream, "--json", expect=None)
        if rc != 0:
            return None
        return json.loads(out)

    def chain_py(self, path):
        """Head hash as the independent tools/verify_chain.py computes it."""
        p = subprocess.run([sys.executable, self.verify_chain, path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=300)
        check(p.returncode == 0, "verify_chain.py failed: %s" % p.stderr.decode(errors="replace"))
        return p.stdout.decode().strip()

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


def chain_hashes(lines):
    """h(1)..h(n) of byte lines (each without its newline)."""
    h = bytes(32)
    out = []
    for line in lines:
        h = hashlib.sha256(h + line).digest()
        out.append(h.hex())
    return out


def ndjson_lines(data):
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def one_line(err, what):
    """The error is exactly one non-empty line on stderr."""
    lines = [l for l in err.decode(errors="replace").split("\n") if l.strip()]
    check(len(lines) == 1, "%s: expected one line on stderr, got %d: %r" % (what, len(lines), lines))
    return lines[0]


def has_seq(text, seq):
    return re.search(r"\bseq %d\b" % seq, text) is not None


def deep_equal(a, b, path="$"):
    """Exact equality for parsed JSON: same types (int stays int, float stays float, bool is
    not int), same key order, same strings. Returns None or the first difference."""
    if type(a) is not type(b):
        return "%s: type %s vs %s (%r vs %r)" % (path, type(a).__name__, type(b).__name__,
                                                  a, b)
    if isinstance(a, dict):
        if list(a.keys()) != list(b.keys()):
            return "%s: keys %r vs %r" % (path, list(a.keys()), list(b.keys()))
        for k in a:
            d = deep_equal(a[k], b[k], "%s.%s" % (path, k))
            if d:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return "%s: length %d vs %d" % (path, len(a), len(b))
        for i, (x, y) in enumerate(zip(a, b)):
            d = deep_equal(x, y, "%s[%d]" % (path, i))
            if d:
                return d
        return None
    if a != b:
        return "%s: %r vs %r" % (path, a, b)
    return None


def main(body):
    """Run body(ctx); print PASS/FAIL; clean up; exit status for ctest."""
    ctx = Ctx()
    try:
        body(ctx)
    except TestFailure as e:
        print("FAIL: %s" % e)
        if os.environ.get("RTLOG_TEST_KEEP"):
            print("(temp dir kept for inspection: %s)" % ctx.tmp)
        else:
            ctx.cleanup()
        sys.exit(1)
    except BaseException:
        ctx.cleanup()
        raise
    ctx.cleanup()
    print("PASS")
    sys.exit(0)
