#!/usr/bin/env python3
"""Checks the README as a newcomer meets it: under a size limit, and every
`holterd` command it shows (in code spans and code blocks, as `holterd …` or
`cargo run --release -- …`) exists: `holterd <command> --help` succeeds.

Usage: tests/scripts/readme-check.py path/to/holterd [README.md] [limit-bytes]
"""
import re
import subprocess
import sys

GROUPS = {"eval", "bench", "wfdb", "dataset", "auth"}

def commands(text):
    code = re.findall(r"```.*?```", text, flags=re.S) + re.findall(r"`[^`\n]+`", text)
    found = set()
    for block in code:
        for m in re.finditer(r"(?:^|[\s`(])(?:holterd|cargo run --release --)[ \t]+([a-z][a-z0-9-]*)(?:[ \t]+([a-z][a-z0-9-]*))?", block, flags=re.M):
            first, second = m.group(1), m.group(2)
            found.add((first, second) if first in GROUPS and second else (first,))
    return sorted(found)

def main():
    binary = sys.argv[1]
    readme = sys.argv[2] if len(sys.argv) > 2 else "README.md"
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else 15000
    text = open(readme, encoding="utf-8").read()
    failures = []
    size = len(text.encode("utf-8"))
    if size >= limit:
        failures.append(f"{readme} is {size} bytes; keep it under {limit} (move detail to docs/)")
    cmds = commands(text)
    if not cmds:
        failures.append(f"{readme} shows no holterd command at all")
    for cmd in cmds:
        r = subprocess.run([binary, *cmd, "--help"], capture_output=True, text=True)
        if r.returncode != 0:
            failures.append(f"`holterd {' '.join(cmd)}` is shown in {readme} but `--help` fails: {r.stderr.strip()[:200]}")
    for f in failures:
        print("readme-check:", f)
    print(f"readme-check: {readme} {size} bytes, {len(cmds)} commands: " + ", ".join(" ".join(c) for c in cmds))
    sys.exit(1 if failures else 0)

if __name__ == "__main__":
    main()
