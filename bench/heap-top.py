#!/usr/bin/env python3
"""Peak heap by allocation site, from `heaptrack_print --print-peaks` output.

    bench/heap-top.py PEAKS.txt N

Prints the allocation sites that held the most memory at the peak, each
with the first frames that are not allocator, runtime or std plumbing, and
the share per subscriber (size / N).
"""
import re
import sys

SIZE = re.compile(r"^\s*([\d.]+)([KMG]?) consumed over (\d+) calls from:?\s*$")
TOTAL = re.compile(r"^peak heap memory consumption: ([\d.]+)([KMG]?)")
PLUMBING = re.compile(
    r"^(alloc::|core::|std::|tokio::|_RN|<alloc|<core|<std|<tokio|__rust|start_thread|clone3|"
    r"<T as alloc|<u8 as alloc|<futures|futures_util::|hashbrown::|bytes::)"
)
UNIT = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9}


def demangle(frame: str) -> str:
    s = re.sub(r"::h[0-9a-f]{16}$", "", frame.strip())
    for a, b in (("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("$u7b$", "{"), ("$u7d$", "}"),
                 ("$C$", ","), ("$RF$", "&"), ("$LP$", "("), ("$RP$", ")"), ("..", "::")):
        s = s.replace(a, b)
    return s[1:] if s.startswith("_<") else s


def main() -> None:
    path, n = sys.argv[1], int(sys.argv[2])
    lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    sites = []
    total = None
    for i, line in enumerate(lines):
        t = TOTAL.match(line)
        if t:
            total = float(t.group(1)) * UNIT[t.group(2)]
        m = SIZE.match(line)
        if not m:
            continue
        frames = []
        for f in lines[i + 1:]:
            if SIZE.match(f) or "peak memory consumed" in f or not f.strip():
                break
            f = f.strip()
            if f.startswith(("at ", "in ")):
                continue
            d = demangle(f)
            if not PLUMBING.match(d) and d not in frames:
                frames.append(d)
            if len(frames) == 3:
                break
        size = float(m.group(1)) * UNIT[m.group(2)]
        sites.append((size, int(m.group(3)), frames))
    # One allocation site can appear under several call paths: add them up
    # by the site's first frames.
    grouped: dict = {}
    for size, calls, frames in sites:
        key = tuple(frames)
        prev = grouped.get(key, (0.0, 0))
        grouped[key] = (prev[0] + size, prev[1] + calls)
    sites = [(size, calls, list(key)) for key, (size, calls) in grouped.items()]
    sites.sort(key=lambda s: -s[0])
    if total:
        print(f"peak heap {total / 1e6:.1f} MB, {total / n / 1e6:.2f} MB per subscriber (N = {n})")
    print(f"{'at peak':>9} {'calls':>7} {'per sub':>9}  allocation site (first frames)")
    for size, calls, frames in sites[:15]:
        where = " <- ".join(f[:90] for f in frames) or "(runtime frames only: a spawned task's state)"
        print(f"{size / 1e6:8.2f}M {calls:7d} {size / n / 1e3:8.1f}K  {where}")


if __name__ == "__main__":
    main()
