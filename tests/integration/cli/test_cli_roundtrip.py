"""Real runs round trip: import every real CI run, export it both ways, compare field by
field with the input, check sealing, the hash chain against tools/verify_chain.py, the
document layout, and that `rtlog verify` (store, JSON document, NDJSON) says ok.
Also: stdin import, an empty import that creates a stream, and redaction of task
credentials in exports (CONTRACT.md "Tools", "Agents")."""
import json
import os

from cli_common import (check, chain_hashes, deep_equal, main, ndjson_lines)


def roundtrip_one(ctx, path):
    stem = os.path.basename(path)[:-len(".ndjson")]
    stream = "workflow-runs/" + stem
    with open(path, "rb") as f:
        raw = f.read()
    inputs = [json.loads(l) for l in ndjson_lines(raw) if l.strip()]
    n = len(inputs)

    _, out, _ = ctx.run("import", stream, path)
    check(out.decode() == "imported %d events into %s (seq 1..%d)\n" % (n, stream, n),
          "import output: %r" % out)

    nd_path = ctx.path(stem + ".ndjson")
    doc_path = ctx.path(stem + ".json")
    ctx.run("export", stream, "--ndjson", "-o", nd_path)
    ctx.run("export", stream, "-o", doc_path)
    _, nd_stdout, _ = ctx.run("export", stream, "--ndjson")
    with open(nd_path, "rb") as f:
        nd = f.read()
    with open(doc_path, "rb") as f:
        doc_raw = f.read()
    check(nd == nd_stdout, "%s: -o and stdout NDJSON exports differ" % stream)
    check(not [p for p in os.listdir(ctx.tmp) if ".tmp." in p], "temp files left behind")

    # NDJSON: one event a line, each the input plus "seq" last, exactly.
    lines = ndjson_lines(nd)
    check(nd.endswith(b"\n") and len(lines) == n,
          "%s: --ndjson has %d lines for %d events" % (stream, len(lines), n))
    events = [json.loads(l) for l in lines]
    for i, (got, want) in enumerate(zip(events, inputs)):
        expected = dict(want)
        expected["seq"] = i + 1
        d = deep_equal(got, expected)
        check(d is None, "%s event %d differs from the input: %s" % (stream, i + 1, d))

    # JSON document: fields in the contract's order, same events, chain head.
    doc = json.loads(doc_raw)
    check(list(doc.keys()) == ["stream", "sealed", "lastSeq", "headHash", "events", "hashes"],
          "%s: document keys %r" % (stream, list(doc.keys())))
    check(doc["stream"] == stream and doc["lastSeq"] == n, "%s: header %r" % (
        stream, {k: doc[k] for k in ("stream", "lastSeq")}))
    check(doc["sealed"] is True, "%s: not sealed after workflow_completed" % stream)
    d = deep_equal(doc["events"], events)
    check(d is None, "%s: document events differ from --ndjson: %s" % (stream, d))
    head = ctx.chain_py(nd_path)
    check(doc["headHash"] == head, "%s: headHash %s, verify_chain.py %s" % (
        stream, doc["headHash"], head))
    check(doc["hashes"] == chain_hashes(lines), "%s: \"hashes\" differ from h(n)" % stream)
    # Layout promise: each event line of the document is byte for byte its NDJSON line.
    doc_lines = doc_raw.split(b"\n")
    body = [l[:-1] if l.endswith(b",") else l for l in doc_lines[1:n + 1]]
    check(body == lines, "%s: document event lines are not the NDJSON lines" % stream)

    st = ctx.stat(stream)
    check(st["lastSeq"] == n and st["events"] == n and st["sealed"] is True
          and st["firstSeq"] == 1, "%s: stat %r" % (stream, st))
    check(st["finalStatus"] == inputs[-1]["status"], "%s: finalStatus %r, input %r" % (
        stream, st["finalStatus"], inputs[-1]["status"]))
    check(st["headHash"] == head, "%s: stat head %s, chain %s" % (stream, st["headHash"], head))

    _, out, _ = ctx.run("verify", stream)
    check(out.decode() == "ok: %s %d events, head %s\n" % (stream, n, head),
          "verify output: %r" % out)
    _, out, _ = ctx.run("verify", "--file", doc_path)
    check(out.startswith(b"ok: ") and head.encode() in out and b"matches the store" in out,
          "verify --file document: %r" % out)
    _, out, _ = ctx.run("verify", "--file", nd_path, "--head", head)
    check(b"matches --head" in out, "verify --file ndjson --head: %r" % out)
    _, out, _ = ctx.run("verify", "--file", nd_path, stream)
    check(b"matches the store" in out, "verify --file ndjson STREAM: %r" % out)
    return nd


def stdin_and_empty(ctx, smallest, nd_of_smallest):
    stream = "workflow-runs/from-stdin"
    with open(smallest, "rb") as f:
        data = f.read()
    _, out, _ = ctx.run("import", stream, "-", "--batch", "7", stdin=data)
    n = len([l for l in ndjson_lines(data) if l.strip()])
    check(out.decode() == "imported %d events into %s (seq 1..%d)\n" % (n, stream, n),
          "stdin import output: %r" % out)
    _, nd, _ = ctx.run("export", stream, "--ndjson")
    check(nd == nd_of_smallest, "stdin import (batches of 7) exports differently from a file import")

    empty = ctx.path("empty.ndjson")
    open(empty, "wb").close()
    _, out, _ = ctx.run("import", "deployment-jobs/job-0001", empty)
    check(b"imported 0 events into deployment-jobs/job-0001" in out, "empty import: %r" % out)
    st = ctx.stat("deployment-jobs/job-0001")
    check(st is not None and st["lastSeq"] == 0 and st["sealed"] is False,
          "empty import did not create an empty open stream: %r" % st)
    _, nd, _ = ctx.run("export", "deployment-jobs/job-0001", "--ndjson")
    check(nd == b"", "export of an empty stream: %r" % nd)
    doc_path = ctx.path("empty.json")
    ctx.run("export", "deployment-jobs/job-0001", "-o", doc_path)
    with open(doc_path, "rb") as f:
        doc = json.loads(f.read())
    check(doc["events"] == [] and doc["hashes"] == [] and doc["lastSeq"] == 0
          and doc["headHash"] == "0" * 64, "empty document: %r" % doc)
    ctx.run("verify", "--file", doc_path)
    ctx.run("verify", "deployment-jobs/job-0001")


def agent_import_refused(ctx):
    """Agent streams are the server's (it seals task credentials and keeps the task table):
    importing one is a usage error that writes nothing, so no credentials reach the disk in
    clear through the CLI. The server path (sealed credentials, redacted exports) is
    tests/integration/server/agents.test.mjs."""
    stream = "agents/agent-a"
    secret = "s3cr3t-registry-pass-7f2a"
    assigned = {"type": "task_assigned", "task": {
        "taskId": "task-a1", "taskType": "docker.pull",
        "credentials": {"registry.username": "user", "registry.password": secret},
        "timeout": 300}}
    src = ctx.path("agent.ndjson")
    with open(src, "w") as f:
        f.write(json.dumps(assigned, separators=(",", ":")) + "\n")
    _, out, err = ctx.run("import", stream, src, expect=2)
    check(b"cannot be imported" in err and out == b"", "agent import: %r %r" % (out, err))
    check(ctx.stat(stream) is None, "a refused agent import created the stream")
    for name in os.listdir(ctx.data):
        with open(os.path.join(ctx.data, name), "rb") as f:
            check(secret.encode() not in f.read(), "secret in %s" % name)


def body(ctx):
    runs = ctx.real_runs()
    smallest = min(runs, key=os.path.getsize)
    nd_small = None
    for path in runs:
        nd = roundtrip_one(ctx, path)
        if path == smallest:
            nd_small = nd
    stdin_and_empty(ctx, smallest, nd_small)
    agent_import_refused(ctx)
    _, out, _ = ctx.run("ls", "--json")
    names = [s["stream"] for s in json.loads(out)]
    check(names == sorted(names), "ls is not sorted by name: %r" % names)
    check(len(names) == len(runs) + 2, "ls lists %d streams: %r" % (len(names), names))


if __name__ == "__main__":
    main(body)
