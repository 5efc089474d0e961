"""Tamper evidence: `rtlog verify --file` names the first event that does not match after one
byte of an event changes (in a string, in a number), an event is dropped, two are swapped,
the file is cut short, or the whole chain is rewritten (caught against the store); an
untouched export verifies. Also a record changed inside the store itself
(CONTRACT.md "Tools": tamper evidence for auditors)."""
import json
import os
import re

from cli_common import check, chain_hashes, has_seq, main, ndjson_lines, one_line

STREAM = "workflow-runs/tamper"


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def expect_bad(ctx, path, what, *patterns, extra=(), data=True):
    rc, out, err = ctx.run("verify", "--file", path, *extra, expect=1, data=data, cwd=ctx.tmp)
    msg = one_line(err, what)
    for p in patterns:
        check(re.search(p, msg), "%s: message %r lacks %r" % (what, msg, p))
    check(not out.startswith(b"ok"), "%s: printed ok" % what)
    return msg


def change_string_byte(line):
    """Change one letter inside the "line" string value; JSON stays valid."""
    i = line.index(b'"line":"') + len(b'"line":"')
    # A letter outside any escape (\n, \u001b...): changing it keeps the JSON valid.
    while not (chr(line[i]).isalpha() and b"\\" not in line[max(0, i - 5):i]):
        i += 1
    new = b"X" if line[i:i + 1] != b"X" else b"Y"
    return line[:i] + new + line[i + 1:]


def change_number_digit(line):
    m = re.search(rb'"duration":(\d)', line)
    i = m.start(1)
    d = (line[i] - ord("0") + 1) % 10
    return line[:i] + str(d).encode() + line[i + 1:]


def body(ctx):
    src = os.path.join(ctx.runs_dir, "buildkite-buildah-build.ndjson")
    ctx.run("import", STREAM, src)
    doc_path = ctx.path("export.json")
    nd_path = ctx.path("export.ndjson")
    ctx.run("export", STREAM, "-o", doc_path)
    ctx.run("export", STREAM, "--ndjson", "-o", nd_path)
    with open(doc_path, "rb") as f:
        orig = f.read()
    with open(nd_path, "rb") as f:
        nd = f.read()
    doc_lines = orig.split(b"\n")
    n = json.loads(orig)["lastSeq"]
    head = json.loads(orig)["headHash"]
    check(n > 200, "test input too small: %d events" % n)

    # Untouched export verifies (with and without the store to compare against).
    _, out, _ = ctx.run("verify", "--file", doc_path)
    check(out.startswith(b"ok: ") and b"%d events" % n in out, "untouched: %r" % out)
    ctx.run("verify", "--file", doc_path, data=False, cwd=ctx.tmp)

    t = ctx.path("t.json")

    # One byte of a string value.
    k = 100
    check(b'"type":"step_log"' in doc_lines[k], "event %d is not a step_log" % k)
    lines = list(doc_lines)
    lines[k] = change_string_byte(lines[k])
    write(t, b"\n".join(lines))
    json.loads(b"\n".join(lines))  # still valid JSON: only the hash can tell
    msg = expect_bad(ctx, t, "string byte", r"\bseq %d\b" % k, "does not match")
    # The document's own "hashes" name it too, with no store to compare against.
    expect_bad(ctx, t, "string byte, no store", r"\bseq %d\b" % k, "export hash", data=False)

    # One digit of a number.
    k = next(s for s in range(1, n + 1) if re.search(rb'"duration":\d', doc_lines[s]))
    lines = list(doc_lines)
    lines[k] = change_number_digit(lines[k])
    write(t, b"\n".join(lines))
    json.loads(b"\n".join(lines))
    expect_bad(ctx, t, "number digit", r"\bseq %d\b" % k, "does not match")
    expect_bad(ctx, t, "number digit, no store", r"\bseq %d\b" % k, "export hash", data=False)

    # An event dropped from the middle.
    k = 150
    lines = doc_lines[:k] + doc_lines[k + 1:]
    write(t, b"\n".join(lines))
    expect_bad(ctx, t, "dropped event", r"position %d\b" % k, r"has seq %d\b" % (k + 1),
               r"expected seq %d\b" % k)

    # Two events swapped.
    i, j = 40, 90
    lines = list(doc_lines)
    lines[i], lines[j] = lines[j], lines[i]
    write(t, b"\n".join(lines))
    expect_bad(ctx, t, "swapped events", r"position %d\b" % i, r"has seq %d\b" % j)

    # The last event dropped (commas fixed so the JSON stays valid).
    lines = list(doc_lines)
    del lines[n]
    lines[n - 1] = lines[n - 1][:-1]
    write(t, b"\n".join(lines))
    json.loads(b"\n".join(lines))
    expect_bad(ctx, t, "last event dropped", "hashes")

    # A file cut short.
    write(t, orig[:len(orig) // 2])
    expect_bad(ctx, t, "truncated", "truncated")

    # headHash alone changed.
    bad_head = ("0" if head[0] != "0" else "1") + head[1:]
    write(t, orig.replace(head.encode(), bad_head.encode(), 1))
    expect_bad(ctx, t, "headHash changed", "head does not match")

    # A forger rewrites event 120 and every hash after it, and headHash: the document is
    # self-consistent, so only the store (or a published head) can tell.
    k = 120
    ev_lines = [l[:-1] if l.endswith(b",") else l for l in doc_lines[1:n + 1]]
    ev_lines[k - 1] = change_string_byte(ev_lines[k - 1])
    hashes = chain_hashes(ev_lines)
    forged = (doc_lines[0].replace(head.encode(), hashes[-1].encode()) + b"\n" +
              b",\n".join(ev_lines) + b"\n],\"hashes\":[\n" +
              b",\n".join(b'"%s"' % h.encode() for h in hashes) + b"\n]}\n")
    write(t, forged)
    _, out, _ = ctx.run("verify", "--file", t, data=False, cwd=ctx.tmp)  # no store here
    check(out.startswith(b"ok: "), "forged document without a reference: %r" % out)
    expect_bad(ctx, t, "forged vs store", r"\bseq %d\b" % k, "store")
    expect_bad(ctx, t, "forged vs --head", "--head", extra=("--head", head), data=False)

    # A truncated document recomputed to be self-consistent: a prefix of a chain is a valid
    # chain (an export taken while the stream grew), so it verifies, but never silently:
    # it is named a prefix; and a claim "sealed" at the cut is refused against the store.
    m = 300
    pre = [l[:-1] if l.endswith(b",") else l for l in doc_lines[1:m + 1]]
    pre_hashes = chain_hashes(pre)
    hdr = json.loads(doc_lines[0] + b"]}")
    check(hdr["sealed"] is True, "the test run is sealed")
    for sealed in (b"false", b"true"):
        cut = (b'{"stream":"%s","sealed":%s,"lastSeq":%d,"headHash":"%s","events":[\n'
               % (STREAM.encode(), sealed, m, pre_hashes[-1].encode()) +
               b",\n".join(pre) + b"\n],\"hashes\":[\n" +
               b",\n".join(b'"%s"' % h.encode() for h in pre_hashes) + b"\n]}\n")
        write(t, cut)
        if sealed == b"false":
            _, out, _ = ctx.run("verify", "--file", t)
            check(out.startswith(b"ok: ") and b"prefix" in out and b"%d events" % n in out,
                  "prefix export not named a prefix: %r" % out)
        else:
            expect_bad(ctx, t, "prefix claiming sealed", "sealed at seq %d" % m, "store")

    # NDJSON export with one byte changed: --head and the store both catch it.
    t_nd = ctx.path("t.ndjson")
    nd_lines = ndjson_lines(nd)
    k = 77
    check(b'"line":"' in nd_lines[k - 1], "NDJSON event %d is not a step_log" % k)
    nd_lines[k - 1] = change_string_byte(nd_lines[k - 1])
    write(t_nd, b"\n".join(nd_lines) + b"\n")
    expect_bad(ctx, t_nd, "ndjson --head", "head does not match --head", extra=("--head", head))
    expect_bad(ctx, t_nd, "ndjson vs store", r"\bseq %d\b" % k, extra=(STREAM,))
    # NDJSON with a gap.
    write(t_nd, b"\n".join(ndjson_lines(nd)[:9] + ndjson_lines(nd)[10:]) + b"\n")
    expect_bad(ctx, t_nd, "ndjson gap", r"position 10\b", r"has seq 11\b")
    ctx.run("verify", "--file", nd_path, "--head", head)

    # Not an export at all, or reformatted: refused with a reason, never "ok".
    write(t, json.dumps(json.loads(orig), indent=2).encode())
    expect_bad(ctx, t, "pretty-printed document", "reformatted")
    write(t, b"\x00\xff garbage \n more")
    expect_bad(ctx, t, "garbage", "neither")

    store_tamper(ctx)


def store_tamper(ctx):
    """Change one byte of a stored record inside data.mdb: verify and export must notice.
    The byte is found by a marker string; a backend that compresses or encrypts small
    records hides it, and then this part cannot run (reported, not counted as a pass)."""
    stream = "workflow-runs/store-tamper"
    marker = b"TAMPER-MARKER-0123456789"
    src = ctx.path("marker.ndjson")
    events = [
        {"type": "step_started", "nodeId": "a", "stepType": "script", "timestamp": "2026-01-01T00:00:00Z"},
        {"type": "step_log", "nodeId": "a", "line": "before", "level": "info", "timestamp": "2026-01-01T00:00:01Z"},
        {"type": "step_log", "nodeId": "a", "line": marker.decode(), "level": "info", "timestamp": "2026-01-01T00:00:02Z"},
        {"type": "step_log", "nodeId": "a", "line": "after", "level": "info", "timestamp": "2026-01-01T00:00:03Z"},
    ]
    with open(src, "w") as f:
        for e in events:
            f.write(json.dumps(e, separators=(",", ":")) + "\n")
    ctx.run("import", stream, src)
    ctx.run("verify", stream)
    mdb = os.path.join(ctx.data, "data.mdb")
    if not os.path.exists(mdb):
        print("NOTE: no data.mdb in the data directory; store tamper part skipped")
        return
    with open(mdb, "rb") as f:
        blob = f.read()
    if blob.count(marker) != 1:
        print("NOTE: marker found %d times in data.mdb; store tamper part skipped"
              % blob.count(marker))
        return
    pos = blob.index(marker) + 7  # the 'M' of MARKER
    with open(mdb, "r+b") as f:
        f.seek(pos)
        f.write(b"N")
    rc, out, err = ctx.run("verify", stream, expect=1)
    msg = one_line(err, "store tamper verify")
    check(has_seq(msg, 3) or re.search(r"\b3\b", msg), "store tamper: %r does not name seq 3" % msg)
    exp = ctx.path("tampered.ndjson")
    rc, out, err = ctx.run("export", stream, "--ndjson", "-o", exp, expect=1)
    msg = one_line(err, "store tamper export")
    check("warning" in msg and has_seq(msg, 3), "export of a tampered store: %r" % msg)
    check(os.path.exists(exp), "export of a tampered store was not written")


if __name__ == "__main__":
    main(body)
