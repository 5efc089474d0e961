#!/usr/bin/env python3
"""Recompute the rtlog hash-chain head of an NDJSON export, independently of rtlog.

    rtlog export workflow-runs/x --ndjson -o x.ndjson
    python3 tools/verify_chain.py x.ndjson        # or: ... | python3 tools/verify_chain.py -
    python3 tools/verify_chain.py --base HEX dashboard.ndjson   # a trimmed stream

h0 = 32 zero bytes; h(n) = SHA-256(h(n-1) + line n), line n = the exact bytes of the
n-th line without its newline. Prints h(last) as hex (64 zero digits for an empty file);
compare it with "headHash" of the JSON export or `rtlog stat`'s head hash.
Each line must be a JSON object whose "seq" is its line number (1, 2, 3 ...): anything
else (a JSON document export, a gap, a stray line) is refused with exit 1, naming the line.
A stream trimmed by retention (the dashboard) starts at seq F > 1: its lines must be
F, F+1, ... and the chain starts from h(F-1), given with --base HEX (the document export's
"baseHash", `rtlog stat`'s base hash); without --base such a file is refused.
Python standard library only (hashlib, json). Source: CONTRACT.md "Tools".
"""
import hashlib
import json
import sys


def chain_head(data: bytes, base: bytes = None) -> str:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the last line does not start another one
    h = bytes(32)
    first = 1
    for n, line in enumerate(lines, 1):
        try:
            ev = json.loads(line)
        except ValueError as e:
            raise SystemExit(f"verify_chain: line {n} is not JSON ({e}); "
                             "expected an `rtlog export --ndjson` file")
        seq = ev.get("seq") if isinstance(ev, dict) else None
        if n == 1 and type(seq) is int and seq > 1:
            if base is None:
                raise SystemExit(f"verify_chain: the file starts at seq {seq} (a stream trimmed "
                                 f"by retention): give --base HEX, h({seq - 1})")
            first, h = seq, base
        if type(seq) is not int or seq != first + n - 1:
            raise SystemExit(f"verify_chain: line {n} is not the event with seq {first + n - 1}; "
                             "expected an `rtlog export --ndjson` file")
        h = hashlib.sha256(h + line).digest()
    return h.hex()


def main() -> int:
    args = sys.argv[1:]
    base = None
    if len(args) == 3 and args[0] == "--base":
        try:
            base = bytes.fromhex(args[1])
        except ValueError:
            base = b""
        if len(base) != 32:
            print("verify_chain: --base wants 64 hex digits", file=sys.stderr)
            return 2
        args = args[2:]
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: verify_chain.py [--base HEX] EXPORT.ndjson|-   (prints the chain head "
              "as hex)", file=sys.stderr)
        return 0 if len(args) == 1 else 2
    path = args[0]
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
    except OSError as e:
        print(f"verify_chain: {e}", file=sys.stderr)
        return 1
    print(chain_head(data, base))
    return 0


if __name__ == "__main__":
    sys.exit(main())
