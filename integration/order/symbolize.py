#!/usr/bin/env python3
"""symbolize.py BINARY TRACE... : the functions of BINARY that the traces
(offsets written by steptrace) ran, as mangled names, in the order they
first ran across the traces, one per line."""
import bisect
import subprocess
import sys


def functions(binary):
    out = subprocess.run(["nm", "-S", "--defined-only", binary], capture_output=True,
                         text=True, check=True).stdout
    syms = []
    for line in out.splitlines():
        f = line.split()
        if len(f) == 4 and f[2] in "tTwW":
            syms.append((int(f[0], 16), int(f[1], 16), f[3]))
    syms.sort()
    return syms


def main():
    syms = functions(sys.argv[1])
    starts = [s[0] for s in syms]
    seen, order = set(), []
    for trace in sys.argv[2:]:
        for line in open(trace):
            off = int(line, 16)
            i = bisect.bisect_right(starts, off) - 1
            if i < 0:
                continue
            start, size, name = syms[i]
            if off < start + max(size, 1) and name not in seen:
                seen.add(name)
                order.append(name)
    sys.stdout.write("".join(n + "\n" for n in order))


main()
