#!/usr/bin/env python3
"""Reports the functions of src/ whose body is longer than a limit (100 lines by default).

Relies on the layout that the formatting check enforces (.clang-format, BreakBeforeBraces:
Linux): a function definition, and nothing else, opens with a "{" alone at column 0 and closes
with a "}" alone at column 0. A body's length is the lines between the two braces, blank lines
and comments included.

Usage: scripts/function-length.py [--limit N] [--allow FILE] FILE...
FILE of --allow names functions still waiting to be split, one "path function" a line (#
comments). An entry is reported when its function is no longer over the limit (or is gone), so
the list only shrinks. Exit 1 on a long function not allowed, or on a stale entry.
"""
import argparse
import re
import sys

NAME = re.compile(r"([A-Za-z_]\w*)\s*\(")


def signature_name(lines, brace):
    """The name of the function whose body opens at lines[brace]."""
    sig = []
    i = brace - 1
    while i >= 0:
        line = lines[i]
        if not line.strip() or line.rstrip().endswith((";", "}", "*/")) or line.startswith("#"):
            break
        sig.insert(0, line)
        i -= 1
    m = NAME.search(" ".join(sig))
    return m.group(1) if m else "?"


def long_functions(path, limit):
    """(name, first line, body length) of each function of path longer than limit."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    found, start = [], None
    for i, line in enumerate(lines):
        if line == "{":
            start = i
        elif line == "}" and start is not None:
            n = i - start - 1
            if n > limit:
                found.append((signature_name(lines, start), start + 1, n))
            start = None
    return found


def read_allow(path):
    allow = set()
    if not path:
        return allow
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                file, name = line.split()
                allow.add((file, name))
    return allow


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--allow")
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    allow = read_allow(a.allow)
    seen = set()
    status = 0
    for path in a.files:
        for name, line, n in long_functions(path, a.limit):
            if (path, name) in allow:
                seen.add((path, name))
                print(f"{path}:{line}: {name}: {n} lines (over {a.limit}; allowed until split)",
                      file=sys.stderr)
            else:
                print(f"{path}:{line}: {name}: {n} lines, over {a.limit}: split it into named steps",
                      file=sys.stderr)
                status = 1
    for path, name in sorted(allow - seen):
        print(f"{a.allow}: {path} {name} is not over {a.limit} lines (any more): remove the entry",
              file=sys.stderr)
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
