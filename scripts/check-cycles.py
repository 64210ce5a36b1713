#!/usr/bin/env python3
"""Import cycles between the modules of each crate.

For every crate (src/, signaling/src/, loadtest/src/, testkit/src/) and the
tests' shared harness (tests/common/, whose own paths are all `super::`)
this reads the `use crate::a::...` and `crate::a::` paths (and `super::`
from a file whose parent is known) of each file, maps every file to its
module at each level (`session`, `session::handlers`, ...), and reports
strongly connected components of more than one module among siblings
(modules with the same parent). Child-to-parent references (`super::`) are
not cycles: a parent declares its children. Exit status 1 when a cycle
exists.
    scripts/check-cycles.py
"""
import os
import re
import sys

CRATES = ["src", "signaling/src", "loadtest/src", "testkit/src", "tests/common"]
PATH = re.compile(r"\b(crate|super)((?:::[a-z_][a-z0-9_]*)+)")


def module_of(root, path):
    rel = os.path.relpath(path, root)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    if rel and rel[0] == "bin":
        return None
    return rel


def edges_for(root):
    edges = set()
    for d, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".rs"):
                continue
            p = os.path.join(d, f)
            me = module_of(root, p)
            if me is None:
                continue
            text = open(p, encoding="utf-8").read()
            # Unit tests may reach anywhere; they are not part of the graph.
            text = text.split("#[cfg(test)]")[0]
            # Comments (doc links included) are not dependencies.
            text = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("//"))
            for kind, rest in PATH.findall(text):
                parts = rest.strip(":").split("::")
                if kind == "crate":
                    target = parts
                else:
                    # `super` is the parent module, whatever the file's name.
                    ups = 1
                    while parts and parts[0] == "super":
                        parts = parts[1:]
                        ups += 1
                    target = me[: len(me) - ups] + parts
                # Compare at every common level: siblings under the same parent.
                for depth in range(1, min(len(me), len(target)) + 1):
                    a, b = me[:depth], target[:depth]
                    if a[:-1] != b[:-1]:
                        break
                    if a != b:
                        edges.add(("::".join(a), "::".join(b)))
                        break
    return edges


def cycles(edges):
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(here)
    bad = False
    for c in CRATES:
        root = os.path.join(repo, c)
        e = edges_for(root)
        found = cycles(e)
        print(f"{c}: {len(e)} sibling-module edges, {len(found)} cycle(s)")
        for comp in found:
            bad = True
            print("  cycle:", " <-> ".join(comp))
            for a, b in sorted(e):
                if a in comp and b in comp:
                    print(f"    {a} -> {b}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
