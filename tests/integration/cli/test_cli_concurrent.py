"""Export while another process appends: a background `rtlog import` of a big file (many
small batches, each its own durable commit) into one stream, while this test repeatedly
exports another stream (must stay byte-identical) and the growing stream itself (each
export must be a consistent prefix: gapless, its chain verifying, its lastSeq matching
its events). No timing assertions: the loop runs at least a few rounds and until the
import ends. (CONTRACT.md "Tools": export works beside writers; handed.md C08.)"""
import json
import os
import pty
import subprocess

from cli_common import SANITIZER_MARKERS, check, deep_equal, fail, main, ndjson_lines


def body(ctx):
    steady = "workflow-runs/steady"
    ctx.run("import", steady, os.path.join(ctx.runs_dir, "gitlab-runner-trace-rspec.ndjson"))
    _, reference, _ = ctx.run("export", steady, "--ndjson")
    _, reference_doc, _ = ctx.run("export", steady)

    # One big run: every step event of every real run, then one workflow_completed.
    inputs = []
    for path in ctx.real_runs():
        with open(path, "rb") as f:
            for line in ndjson_lines(f.read()):
                e = json.loads(line)
                if e["type"] != "workflow_completed":
                    inputs.append(e)
    inputs.append({"type": "workflow_completed", "status": "succeeded", "duration": 1.25,
                   "outputs": {}, "timestamp": "2026-01-01T00:00:00.000Z"})
    big_src = ctx.path("big.ndjson")
    with open(big_src, "w", encoding="utf-8") as f:
        for e in inputs:
            f.write(json.dumps(e, separators=(",", ":"), ensure_ascii=False) + "\n")
    n = len(inputs)
    check(n > 15000, "big input has only %d events" % n)

    big = "workflow-runs/big"
    err_path = ctx.path("import.err")
    with open(err_path, "wb") as errf:
        proc = subprocess.Popen([ctx.rtlog, "import", big, big_src, "--batch", "20", "--data",
                                 ctx.data], stdout=subprocess.PIPE, stderr=errf,
                                env=ctx.env(), cwd=ctx.tmp)
        try:
            rounds = 0
            grown = set()
            while rounds < 3 or proc.poll() is None:
                rounds += 1
                _, out, _ = ctx.run("export", steady, "--ndjson")
                check(out == reference, "round %d: export of the steady stream changed" % rounds)
                st = ctx.stat(big)
                if st is None:
                    continue
                doc_path = ctx.path("big-%d.json" % (rounds % 2))
                ctx.run("export", big, "-o", doc_path)
                with open(doc_path, "rb") as f:
                    doc = json.loads(f.read())
                k = doc["lastSeq"]
                grown.add(k)
                check(len(doc["events"]) == k and k >= st["lastSeq"],
                      "round %d: lastSeq %d with %d events (stat said %d)" % (
                          rounds, k, len(doc["events"]), st["lastSeq"]))
                check([e["seq"] for e in doc["events"]] == list(range(1, k + 1)),
                      "round %d: seqs are not 1..%d" % (rounds, k))
                for i in (0, k // 2, k - 1) if k else ():
                    want = dict(inputs[i])
                    want["seq"] = i + 1
                    d = deep_equal(doc["events"][i], want)
                    check(d is None, "round %d: event %d: %s" % (rounds, i + 1, d))
                check(doc["sealed"] == (k == n), "round %d: sealed %r at %d/%d" % (
                    rounds, doc["sealed"], k, n))
                ctx.run("verify", "--file", doc_path)
                ctx.run("verify", big)
            out, _ = proc.communicate(timeout=900)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    with open(err_path, "rb") as f:
        err = f.read()
    for m in SANITIZER_MARKERS:
        if m in err:
            fail("sanitizer report from the background import:\n%s" % err.decode(errors="replace"))
    check(proc.returncode == 0, "background import exit %d: %s" % (proc.returncode, err))
    check(err == b"", "import wrote to stderr that is not a terminal: %r" % err[:300])
    check(out.decode() == "imported %d events into %s (seq 1..%d)\n" % (n, big, n),
          "background import output: %r" % out)
    print("exports of the growing stream saw lastSeq values: %s" % sorted(grown))

    _, out, _ = ctx.run("export", steady)
    check(out == reference_doc, "steady stream document changed")
    _, nd, _ = ctx.run("export", big, "--ndjson")
    lines = ndjson_lines(nd)
    check(len(lines) == n, "final export has %d of %d events" % (len(lines), n))
    for i in range(0, n, 997):
        want = dict(inputs[i])
        want["seq"] = i + 1
        d = deep_equal(json.loads(lines[i]), want)
        check(d is None, "final event %d: %s" % (i + 1, d))
    _, out, _ = ctx.run("verify", big)
    check(out.startswith(b"ok: %s %d events" % (big.encode(), n)), "final verify: %r" % out)

    progress_on_a_terminal(ctx, big_src, n)


def run_pty_stderr(ctx, args):
    """Run rtlog with stderr on a pseudo-terminal; return (status, stdout, stderr bytes)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([ctx.rtlog] + args + ["--data", ctx.data], stdout=subprocess.PIPE,
                         stderr=slave, env=ctx.env(), cwd=ctx.tmp)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    out = p.stdout.read()
    p.wait()
    os.close(master)
    err = b"".join(chunks)
    for m in SANITIZER_MARKERS:
        if m in err:
            fail("sanitizer report from %s:\n%s" % (args, err.decode(errors="replace")))
    return p.returncode, out, err


def progress_on_a_terminal(ctx, src, n):
    """More than 10,000 events with stderr on a terminal: one updating progress line."""
    rc, out, err = run_pty_stderr(ctx, ["import", "workflow-runs/tty", src])
    check(rc == 0, "import on a terminal: exit %d: %r" % (rc, err[-300:]))
    check(b"\rimport workflow-runs/tty: " in err, "no progress line on a terminal: %r" % err[:200])
    last = err.rstrip(b"\r\n").split(b"\r")[-1]
    check(last == b"import workflow-runs/tty: %d/%d events (100%%)" % (n, n),
          "final progress line %r" % last)
    check(err.endswith(b"\n"), "progress line not ended by a newline: %r" % err[-50:])
    check(out.startswith(b"imported %d events" % n), "import output %r" % out)
    exp = ctx.path("tty.json")
    rc, out, err = run_pty_stderr(ctx, ["export", "workflow-runs/tty", "-o", exp])
    check(rc == 0, "export on a terminal: exit %d: %r" % (rc, err[-300:]))
    last = err.rstrip(b"\r\n").split(b"\r")[-1]
    check(last == b"export workflow-runs/tty: %d/%d events (100%%)" % (n, n),
          "final export progress line %r" % last)
    ctx.run("verify", "--file", exp)


if __name__ == "__main__":
    main(body)
