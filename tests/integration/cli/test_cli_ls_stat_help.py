"""`rtlog ls`, `rtlog stat` and every --help: output sanity (text and --json agree with each
other and with what was imported), the data directory rule (--data beats RTLOG_DATA beats
./rtlog-data), and `rtlog --help` / `rtlog help` listing every subcommand.
(CONTRACT.md "Tools": "Every subcommand takes --data DIR; rtlog --help and rtlog CMD --help
explain them".)"""
import json
import os
import re

from cli_common import check, main, one_line


def body(ctx):
    run_src = os.path.join(ctx.runs_dir, "gha-pytorch-signal-crash-longline.ndjson")
    ctx.run("import", "workflow-runs/longline", run_src)
    empty = ctx.path("empty.ndjson")
    open(empty, "wb").close()
    ctx.run("import", "dashboard", empty)
    job = ctx.path("job.ndjson")
    with open(job, "w") as f:
        f.write('{"type":"task_started","taskId":"t1","targetId":"tg1","targetName":"prod-web-01",'
                '"taskType":"docker.pull","timestamp":"2026-01-10T14:23:45Z"}\n')
    ctx.run("import", "deployment-jobs/job-0001", job)

    # ls --json and stat --json agree.
    _, out, _ = ctx.run("ls", "--json")
    rows = json.loads(out)
    check([r["stream"] for r in rows] ==
          ["dashboard", "deployment-jobs/job-0001", "workflow-runs/longline"],
          "ls --json streams: %r" % [r["stream"] for r in rows])
    for r in rows:
        st = ctx.stat(r["stream"])
        for k in ("kind", "lastSeq", "sealed", "finalStatus", "events", "storedBytes",
                  "rawBytes", "created", "createdMs"):
            check(r[k] == st[k], "%s: ls %s=%r, stat %r" % (r["stream"], k, r[k], st[k]))
        check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["created"]),
              "created is not RFC 3339: %r" % r["created"])
    run = ctx.stat("workflow-runs/longline")
    with open(run_src, "rb") as f:
        n = sum(1 for l in f if l.strip())
    check(run["kind"] == "workflow-runs" and run["lastSeq"] == n and run["events"] == n
          and run["sealed"] is True and run["finalStatus"] == "failed" and run["firstSeq"] == 1,
          "stat of the run: %r" % run)
    check(run["rawBytes"] > 0 and run["storedBytes"] > 0
          and abs(run["ratio"] - run["rawBytes"] / run["storedBytes"]) < 0.01,
          "bytes/ratio: %r" % run)
    check(re.fullmatch(r"[0-9a-f]{64}", run["headHash"]), "headHash %r" % run["headHash"])
    dash = ctx.stat("dashboard")
    check(dash["kind"] == "dashboard" and dash["lastSeq"] == 0 and dash["sealed"] is False
          and dash["headHash"] == "0" * 64 and dash["finalStatus"] == "", "dashboard: %r" % dash)
    jb = ctx.stat("deployment-jobs/job-0001")
    check(jb["kind"] == "deployment-jobs" and jb["lastSeq"] == 1 and not jb["sealed"],
          "job: %r" % jb)

    # Text forms carry the same facts.
    _, out, _ = ctx.run("ls")
    lines = out.decode().splitlines()
    check(lines[0].split()[:2] == ["STREAM", "KIND"] and len(lines) == 4, "ls: %r" % lines)
    longline = next(l for l in lines if l.startswith("workflow-runs/longline"))
    f = longline.split()
    check(f[1] == "workflow-runs" and f[2] == str(n) and f[3] == "sealed" and f[4] == "failed"
          and f[5] == str(n) and f[-1] == run["created"], "ls row: %r" % longline)
    check(re.search(r"\d(\.\d)? (B|KiB|MiB)", longline), "ls stored size: %r" % longline)
    dash_row = next(l for l in lines if l.startswith("dashboard"))
    check(dash_row.split()[2:5] == ["0", "open", "-"], "ls dashboard row: %r" % dash_row)
    _, out, _ = ctx.run("stat", "workflow-runs/longline")
    text = out.decode()
    for label, value in (("stream", "workflow-runs/longline"), ("kind", "workflow-runs"),
                         ("last seq", str(n)), ("events", str(n)), ("state", "sealed"),
                         ("final status", "failed"), ("head hash", run["headHash"]),
                         ("created", run["created"]), ("first seq", "1")):
        check(re.search(r"^%s:\s+%s$" % (re.escape(label), re.escape(value)), text, re.M),
              "stat text lacks %s: %s\n%s" % (label, value, text))
    check(re.search(r"^raw bytes:\s+%d " % run["rawBytes"], text, re.M)
          and re.search(r"^stored bytes:\s+%d " % run["storedBytes"], text, re.M)
          and re.search(r"^ratio:\s+\d+\.\d\d", text, re.M), "stat sizes: %s" % text)

    # Data directory: --data beats RTLOG_DATA beats ./rtlog-data.
    other = ctx.path("other")
    ctx.run("import", "workflow-runs/elsewhere", empty, "--data", other, data=False)
    _, out, _ = ctx.run("ls", "--json", data=False, env=ctx.env({"RTLOG_DATA": other}))
    check([r["stream"] for r in json.loads(out)] == ["workflow-runs/elsewhere"],
          "RTLOG_DATA not used: %r" % out)
    _, out, _ = ctx.run("ls", "--json", "--data", ctx.data, data=False,
                        env=ctx.env({"RTLOG_DATA": other}))
    check(len(json.loads(out)) == 3, "--data does not win over RTLOG_DATA: %r" % out)
    cwd = ctx.path("cwd")
    os.mkdir(cwd)
    ctx.run("import", "workflow-runs/here", empty, data=False, cwd=cwd)
    check(os.path.isdir(os.path.join(cwd, "rtlog-data")), "default ./rtlog-data not used")
    _, out, _ = ctx.run("ls", "--json", data=False, cwd=cwd)
    check([r["stream"] for r in json.loads(out)] == ["workflow-runs/here"], "ls in cwd: %r" % out)
    _, out, _ = ctx.run("ls", "--data=" + other, data=False)
    check(b"workflow-runs/elsewhere" in out, "--data=DIR form: %r" % out)

    # Help: every subcommand of ours exits 0 and names its flags; the top level lists all.
    flags = {
        "import": ["--data", "--batch", "--expected-seq", "STREAM", "FILE", "atomic"],
        "export": ["--data", "--ndjson", "-o FILE", "headHash", "hashes", "REDACTED"],
        "ls": ["--data", "--json"],
        "stat": ["--data", "--json", "head"],
        "verify": ["--data", "--file", "--head", "STREAM"],
    }
    for cmd, words in flags.items():
        for form in ([cmd, "--help"], [cmd, "-h"], ["help", cmd]):
            _, out, err = ctx.run(*form, data=False)
            text = out.decode()
            check(text.startswith("Usage: rtlog %s" % cmd), "%s: %r" % (form, text[:80]))
            for w in words:
                check(w in text, "%s does not mention %s" % (form, w))
            check(err == b"", "%s wrote to stderr: %r" % (form, err))
    for form in (["--help"], ["-h"], ["help"]):
        _, out, _ = ctx.run(*form, data=False)
        text = out.decode()
        for cmd in ("serve", "token", "import", "export", "ls", "stat", "verify"):
            check(re.search(r"^  %s\s" % cmd, text, re.M), "%s does not list %s" % (form, cmd))
        check("--data DIR" in text and "RTLOG_DATA" in text, "%s: no --data" % (form,))
    _, _, err = ctx.run("help", "nosuch", expect=2, data=False)
    one_line(err, "help nosuch")


if __name__ == "__main__":
    main(body)
