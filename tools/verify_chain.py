#!/usr/bin/env python3
"""Recompute the rtlog hash-chain head of an NDJSON export, independently of rtlog.

    rtlog export workflow-runs/x --ndjson -o x.ndjson
    python3 tools/verify_chain.py x.ndjson        # or: ... | python3 tools/verify_chain.py -

h0 = 32 zero bytes; h(n) = SHA-256(h(n-1) + line n), line n = the exact bytes of the
n-th line without its newline. Prints h(last) as hex (64 zero digits for an empty file);
compare it with "headHash" of the JSON export or `rtlog stat`'s head hash.
Each line must be a JSON object whose "seq" is its line number (1, 2, 3 ...): anything
else (a JSON document export, a gap, a stray line) is refused with exit 1, naming the line.
Python standard library only (hashlib, json). Source: CONTRACT.md "Tools".
"""
import hashlib
import json
import sys


def chain_head(data: bytes) -> str:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the last line does not start another one
    h = bytes(32)
    for n, line in enumerate(lines, 1):
        try:
            ev = json.loads(line)
        except ValueError as e:
            raise SystemExit(f"verify_chain: line {n} is not JSON ({e}); "
                             "expected an `rtlog export --ndjson` file")
        if not isinstance(ev, dict) or type(ev.get("seq")) is not int or ev["seq"] != n:
            raise SystemExit(f"verify_chain: line {n} is not the event with seq {n}; "
                             "expected an `rtlog export --ndjson` file")
        h = hashlib.sha256(h + line).digest()
    return h.hex()


def main() -> int:
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print("usage: verify_chain.py EXPORT.ndjson|-   (prints the chain head as hex)",
              file=sys.stderr)
        return 0 if len(sys.argv) == 2 else 2
    path = sys.argv[1]
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
    except OSError as e:
        print(f"verify_chain: {e}", file=sys.stderr)
        return 1
    print(chain_head(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
