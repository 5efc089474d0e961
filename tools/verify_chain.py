#!/usr/bin/env python3
"""Recompute the rtlog hash-chain head of an NDJSON export, independently of rtlog.

    rtlog export workflow-runs/x --ndjson -o x.ndjson
    python3 tools/verify_chain.py x.ndjson        # or: ... | python3 tools/verify_chain.py -

h0 = 32 zero bytes; h(n) = SHA-256(h(n-1) + line n), line n = the exact bytes of the
n-th line without its newline. Prints h(last) as hex (64 zero digits for an empty file);
compare it with "headHash" of the JSON export or `rtlog stat`'s head hash.
Python standard library only (hashlib). Source: CONTRACT.md "Tools".
"""
import hashlib
import sys


def chain_head(data: bytes) -> str:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline that ends the last line does not start another one
    h = bytes(32)
    for line in lines:
        h = hashlib.sha256(h + line).digest()
    return h.hex()


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: verify_chain.py EXPORT.ndjson|-", file=sys.stderr)
        return 2
    path = sys.argv[1]
    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        with open(path, "rb") as f:
            data = f.read()
    print(chain_head(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
