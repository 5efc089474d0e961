"""Bad input to `rtlog import` and friends: each kind of bad event (missing field, wrong
type, unknown type, invalid JSON, invalid UTF-8, an event over 1 MiB, an event after the
sealing event), a sealed stream, an --expected-seq mismatch, bad stream names, usage errors
and unreadable files. Each gives a non-zero exit and one precise line naming the physical
line and field, and `rtlog stat` shows the stream unchanged: nothing is written.
(CONTRACT.md "Tools", "Ingest"; handed.md C03 family: every id taken from a user.)"""
import json
import os
import re

from cli_common import check, main, one_line

STREAM = "workflow-runs/run-0001"


def ev(**kw):
    return json.dumps(kw, separators=(",", ":")).encode()


GOOD = [
    ev(type="step_started", nodeId="build", stepType="script", timestamp="2026-01-10T14:23:45Z"),
    ev(type="step_log", nodeId="build", line="\x1b[32mok\x1b[0m\r", level="info",
       timestamp="2026-01-10T14:23:46Z"),
    ev(type="step_progress", nodeId="build", progress=50, message="half"),
]


def write(ctx, name, lines):
    path = ctx.path(name)
    with open(path, "wb") as f:
        f.write(b"\n".join(lines) + b"\n")
    return path


def snapshot(ctx):
    return {s: ctx.stat(s) for s in (STREAM, "workflow-runs/sealed-run", "workflow-runs/new-run")}


def bad_import(ctx, name, lines, patterns, stream=STREAM, extra=()):
    """Import a file whose bad line is somewhere; expect exit 1, one line, patterns, and
    every stream unchanged."""
    before = snapshot(ctx)
    path = write(ctx, name + ".ndjson", lines)
    _, out, err = ctx.run("import", stream, path, *extra, expect=1)
    msg = one_line(err, name)
    check(msg.startswith("rtlog import: "), "%s: message %r" % (name, msg))
    for p in patterns:
        check(re.search(p, msg), "%s: message %r lacks %r" % (name, msg, p))
    check(out == b"", "%s: printed %r on stdout" % (name, out))
    after = snapshot(ctx)
    check(after == before, "%s: streams changed:\nbefore %r\nafter  %r" % (name, before, after))
    return msg


def body(ctx):
    ctx.run("import", STREAM, write(ctx, "good.ndjson", GOOD))
    sealed_src = os.path.join(ctx.runs_dir, "buildkite-buildah-build.ndjson")
    ctx.run("import", "workflow-runs/sealed-run", sealed_src)
    sealed_n = ctx.stat("workflow-runs/sealed-run")["lastSeq"]

    # The bad event is on physical line 5: a blank line before it must not shift the count.
    def with_bad(bad):
        return GOOD[:2] + [b""] + GOOD[2:] + [bad] + GOOD[1:2]

    bad_import(ctx, "missing-field", with_bad(ev(type="step_log", nodeId="build", level="info")),
               [r"\bline 5\b", r'"line"'])
    bad_import(ctx, "wrong-type", with_bad(ev(type="step_progress", nodeId="build",
                                              progress="fifty", message="x")),
               [r"\bline 5\b", r"progress"])
    bad_import(ctx, "unknown-type", with_bad(ev(type="step_exploded", nodeId="build")),
               [r"\bline 5\b", r"type|step_exploded"])
    bad_import(ctx, "not-an-object", with_bad(b'["step_log"]'), [r"\bline 5\b"])
    bad_import(ctx, "invalid-json", with_bad(b'{"type":"step_log","nodeId":"build",'),
               [r"\bline 5\b"])
    bad_import(ctx, "invalid-utf8", with_bad(b'{"type":"step_log","nodeId":"build","line":"\xff\xfe",'
                                             b'"level":"info"}'), [r"\bline 5\b"])
    bad_import(ctx, "duplicate-key", with_bad(b'{"type":"step_log","type":"step_started",'
                                              b'"nodeId":"b","line":"x"}'), [r"\bline 5\b"])
    big = ev(type="step_log", nodeId="build", line="x" * (1024 * 1024 + 10), level="info")
    bad_import(ctx, "oversize", with_bad(big), [r"\bline 5\b"])
    # A bad line after more than one batch of good events: still nothing written.
    many = [ev(type="step_log", nodeId="n", line="line %d" % i, level="info") for i in range(2500)]
    bad_import(ctx, "bad-after-batches", many + [b'{"type":'], [r"\bline 2501\b"],
               extra=("--batch", "100"))
    # An event after the sealing event in the same input.
    done = ev(type="workflow_completed", status="succeeded", duration=1.5, outputs={})
    bad_import(ctx, "after-seal", GOOD + [done] + GOOD[1:2], [r"\bline 5\b", "workflow_completed",
                                                            r"\bline 4\b", "nothing imported"])
    # A new stream: a refused import does not create it.
    bad_import(ctx, "new-stream", with_bad(b"{"), [r"\bline 5\b"], stream="workflow-runs/new-run")
    check(ctx.stat("workflow-runs/new-run") is None, "refused import created the stream")

    # Sealed stream.
    msg = bad_import(ctx, "sealed", GOOD, [
        r"stream workflow-runs/sealed-run is sealed \(workflow_completed at seq %d\); nothing "
        r"imported" % sealed_n], stream="workflow-runs/sealed-run")

    # --expected-seq: a mismatch writes nothing; the right value appends.
    last = ctx.stat(STREAM)["lastSeq"]
    bad_import(ctx, "expected-seq", GOOD, [r"expected seq 1\b", r"\bseq %d\b" % last,
                                           "nothing imported"], extra=("--expected-seq", "1"))
    _, out, _ = ctx.run("import", STREAM, write(ctx, "ok.ndjson", GOOD[1:2]), "--expected-seq",
                        str(last))
    check(out.decode() == "imported 1 events into %s (seq %d..%d)\n" % (STREAM, last + 1, last + 1),
          "import with the right --expected-seq: %r" % out)

    # Bad stream names: refused before anything is read or written.
    good = write(ctx, "g.ndjson", GOOD)
    for name in ("workflow-runs/bad id", "workflow-runs/", "nope/x", "workflow-runs/a/b",
                 "workflow-runs/" + "a" * 129, "workflow-runs/run\n0001", "dashboard/x", "",
                 "workflow-runs/run-0001%00", "workflow-runs/.."[:-1] + "\x1b[2J"):
        _, out, err = ctx.run("import", name, good, expect=1)
        msg = one_line(err, "stream name %r" % name)
        check("bad stream name" in msg, "stream name %r: %r" % (name, msg))
    _, out, _ = ctx.run("ls", "--json")
    names = sorted(s["stream"] for s in json.loads(out))
    check(names == ["workflow-runs/run-0001", "workflow-runs/sealed-run"],
          "streams after refused imports: %r" % names)
    # 128 characters is the longest id.
    ctx.run("import", "workflow-runs/" + "a" * 128, good)

    # Missing files and export/stat/verify of missing streams.
    _, _, err = ctx.run("import", STREAM, ctx.path("does-not-exist.ndjson"), expect=1)
    check("cannot open" in one_line(err, "missing file"), "missing file: %r" % err)
    for cmd in (["export", "workflow-runs/nope"], ["stat", "workflow-runs/nope"],
                ["verify", "workflow-runs/nope"], ["export", "workflow-runs/nope", "--ndjson"]):
        _, out, err = ctx.run(*cmd, expect=1)
        msg = one_line(err, " ".join(cmd))
        check(msg == "rtlog %s: stream workflow-runs/nope not found" % cmd[0],
              "%s: %r" % (cmd, msg))
    out_path = ctx.path("nope.json")
    ctx.run("export", "workflow-runs/nope", "-o", out_path, expect=1)
    check(not os.path.exists(out_path), "a failed export left a file")
    check(not [p for p in os.listdir(ctx.tmp) if ".tmp." in p], "a failed export left a temp file")
    # Readers never create a store where there is none.
    missing = ctx.path("no-such-dir")
    for cmd in (["ls"], ["stat", STREAM], ["export", STREAM], ["verify", STREAM]):
        _, _, err = ctx.run(*cmd, "--data", missing, expect=1, data=False)
        check("no rtlog data directory" in one_line(err, "missing dir"), "%s: %r" % (cmd, err))
    check(not os.path.exists(missing), "a reader created the data directory")

    # Usage errors: exit 2 with a hint to --help.
    for args in (["import"], ["import", STREAM], ["import", STREAM, good, "extra"],
                 ["import", STREAM, good, "--batch", "0"], ["import", STREAM, good, "--batch", "x"],
                 ["import", STREAM, good, "--expected-seq", "-1"], ["export"],
                 ["export", STREAM, "--bogus"], ["ls", "extra"], ["stat"], ["verify"],
                 ["verify", "--head", "abc", STREAM], ["export", STREAM, "-o"]):
        _, _, err = ctx.run(*args, expect=2, data=False)
        check(b"--help" in err, "%s: no hint to --help: %r" % (args, err))
    _, _, err = ctx.run("frobnicate", expect=2, data=False)
    check(b"--help" in err, "unknown command: %r" % err)
    ctx.run(expect=2, data=False)

    # Garbage of every kind never crashes (sanitizers are checked on every run).
    for i, blob in enumerate([b"\x00" * 100, os.urandom(4096), b"{" * 5000, b"[" * 100000,
                              b'{"type":"step_log","nodeId":"a","line":"\\ud800","level":"i"}',
                              b'{"type":"step_progress","nodeId":"a","progress":1e400,"message":"m"}',
                              b'{"type":"step_progress","nodeId":"a","progress":99999999999999999999999,"message":"m"}']):
        path = ctx.path("garbage%d" % i)
        with open(path, "wb") as f:
            f.write(blob)
        ctx.run("import", "workflow-runs/garbage", path, expect=1)
        ctx.run("verify", "--file", path, expect=1)


if __name__ == "__main__":
    main(body)
