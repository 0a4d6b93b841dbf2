#!/usr/bin/env python3
"""Check tagged output: every instance must print 1..LINES exactly once.

usage: check_lines.py FILE N LINES mgr|mpi
  mgr: lines "pK | X" (K = 1..N); manager notes ("pK # ...") are ignored
  mpi: lines "[R] X" (R = 0..N-1), as written by `mpiexec -l`
Prints "BAD TOTAL": BAD = numbers missing + numbers seen more than once
+ lines that are not a well-formed tagged line (e.g. two lines glued together),
TOTAL = output lines excluding manager notes.
"""
import re
import sys

path, n, lines, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if mode == "mgr":
    pat, first = re.compile(rb"p(\d+) \| (\d+)\Z"), 1
else:
    pat, first = re.compile(rb"\[(\d+)\] (\d+)\Z"), 0
seen = {k: bytearray(lines + 1) for k in range(first, first + n)}
malformed = total = 0
with open(path, "rb") as fh:
    for line in fh:
        line = line.rstrip(b"\n")
        m = pat.match(line)
        if m is None:
            if mode == "mgr" and b" # " in line:
                continue
            malformed += 1
            total += 1
            continue
        total += 1
        k, x = int(m.group(1)), int(m.group(2))
        s = seen.get(k)
        if s is None or not 1 <= x <= lines:
            malformed += 1
            continue
        if s[x] < 255:
            s[x] += 1
bad = malformed
for s in seen.values():
    counts = s[1:]
    bad += counts.count(0)  # missing
    bad += sum(c - 1 for c in counts if c > 1)  # duplicated
print(bad, total)
