"""`rtlog export | (nobody reading)`: an export blocked on a full pipe must not pin an LMDB
read snapshot (handed.md C08: "rtlog export | sleep 1000 must not hold a read txn").
The export is observed blocked in the kernel's pipe write (/proc/PID/wchan); at that moment
the LMDB reader table (`mdb_stat -r`, lmdb-utils) must show no open transaction for it.
Then the reader resumes and the export completes intact. No timing assertions: the test
waits for the blocked state, whatever the speed."""
import json
import os
import shutil
import subprocess
import time

from cli_common import SANITIZER_MARKERS, check, fail, main, ndjson_lines


def body(ctx):
    mdb_stat = shutil.which("mdb_stat")
    check(mdb_stat, "mdb_stat (lmdb-utils, tools/deps.sh) is not installed")
    stream = "workflow-runs/slow-reader"
    src = ctx.path("many.ndjson")
    n = 20000
    with open(src, "w") as f:
        for i in range(n):
            f.write(json.dumps({"type": "step_log", "nodeId": "n", "line": "line %d %s" % (i, "y" * 200),
                                "level": "info"}, separators=(",", ":")) + "\n")
    ctx.run("import", stream, src)

    p = subprocess.Popen([ctx.rtlog, "export", stream, "--ndjson", "--data", ctx.data],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ctx.env(), cwd=ctx.tmp)
    try:
        # ~5 MB into a 64 KiB pipe nobody reads: the export must end up blocked writing.
        wchan = ""
        while "pipe" not in wchan:
            check(p.poll() is None, "export ended while its output was not read")
            with open("/proc/%d/wchan" % p.pid) as f:
                wchan = f.read()
            time.sleep(0.02)
        # mdb_stat 0.9.24 exits 1 even after printing the table: judge by its output.
        r = subprocess.run([mdb_stat, "-r", ctx.data], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        check(b"Reader Table Status" in r.stdout, "mdb_stat -r failed: %r %r" % (r.stdout, r.stderr))
        for line in r.stdout.decode().splitlines():
            fields = line.split()
            if len(fields) == 3 and fields[0] == str(p.pid):
                check(fields[2] == "-", "blocked export holds read txn %s:\n%s" % (
                    fields[2], r.stdout.decode()))
        # Unblocked, it completes with every event.
        out, err = p.communicate(timeout=600)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    for m in SANITIZER_MARKERS:
        if m in err:
            fail("sanitizer report:\n%s" % err.decode(errors="replace"))
    check(p.returncode == 0, "export exit %d: %r" % (p.returncode, err))
    lines = ndjson_lines(out)
    check(len(lines) == n and json.loads(lines[-1])["seq"] == n,
          "export after the stall has %d lines" % len(lines))
    _, full, _ = ctx.run("export", stream, "--ndjson")
    check(full == out, "stalled export differs from a normal one")


if __name__ == "__main__":
    main(body)
