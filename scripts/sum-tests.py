#!/usr/bin/env python3
"""Adds up per-case counts from meson's testlog.json.

Each test program prints its own closing line ("N passed, N failed[, N
skipped]", optionally after one word and a colon, as the CEL conformance
runner and pytest do).  A program without such a line counts as one case,
by its meson result.  A program that failed but reports no failed case
(a crash after its summary, a sanitizer report) adds one failure.
"""
import json
import re
import sys

LINE = re.compile(
    r"(?:^|\s)(\d+) passed(?:, (\d+) failed)?(?:, (\d+) skipped)?")
PYTEST = re.compile(r"=+ (.*) in [\d.]+s")


def counts(out):
    p = f = s = None
    for line in out.splitlines():
        m = PYTEST.search(line)
        if m and ("passed" in line or "failed" in line or "skipped" in line):
            p = f = s = 0
            for num, word in re.findall(r"(\d+) (\w+)", m.group(1)):
                if word == "passed":
                    p += int(num)
                elif word in ("failed", "error", "errors"):
                    f += int(num)
                elif word == "skipped":
                    s += int(num)
            continue
        m = LINE.search(line)
        if m:
            p = int(m.group(1))
            f = int(m.group(2) or 0)
            s = int(m.group(3) or 0)
    return p, f, s


def main():
    tp = tf = ts = 0
    with open(sys.argv[1]) as fh:
        for raw in fh:
            t = json.loads(raw)
            res = t.get("result")
            p, f, s = counts(t.get("stdout") or "")
            if p is None:
                if res in ("OK", "EXPECTEDFAIL"):
                    p, f, s = 1, 0, 0
                elif res == "SKIP":
                    p, f, s = 0, 0, 1
                else:
                    p, f, s = 0, 1, 0
            elif res not in ("OK", "EXPECTEDFAIL", "SKIP") and f == 0:
                f = 1
            tp += p
            tf += f
            ts += s
    print(f"{tp} passed, {tf} failed, {ts} skipped")
    return 1 if tf else 0


if __name__ == "__main__":
    sys.exit(main())
