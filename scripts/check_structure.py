#!/usr/bin/env python3
"""Structure checks run by CI: no import cycle between modules, no long function.

Modules: every `.rs` file of a crate is a module (`a/b.rs` and `a/b/mod.rs` are `a::b`).
A file that names `crate::x::y` (in a `use` or in a path), `super::z` or, in a binary,
one of its own modules, depends on that module. Dependencies are compared between
siblings: a use of `crate::codec::log` from `index/sealed.rs` is an edge `index -> codec`
in the crate's top level; a use of `super::points` from `index/sealed.rs` is an edge
`sealed -> points` inside `index`. A module and its own submodules are one unit (a child
naming its parent's items is not a cycle). Every such graph must be acyclic.

Functions: no `fn` outside test code (`#[cfg(test)]` modules, `tests/`, files named
`tests.rs` or `*_tests.rs`) may be longer than 80 lines, unless the line above it (or its
doc comment) says `long-fn:` and why.

Usage: scripts/check_structure.py [repo root]; exits 1 and names each fault.
"""
import os
import re
import sys

MAX_FN_LINES = 80

CRATES = [
    # (root folder, crate roots: lib.rs / main.rs files that start a module tree)
    ("actors/src", ["lib.rs"]),
    ("src", ["lib.rs", "main.rs", "bin/storaged.rs", "bin/vectord-bench/main.rs",
             "bin/vectord-load/main.rs"]),
]


def strip_comments_and_strings(text):
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    # character and byte literals ('{', b'"', '\'', '\u{7b}'), not lifetimes ('a), first:
    # a quote or a brace in one is no string and no block
    text = re.sub(r"b?'(?:\\(?:u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^'\\\n])'", "' '", text)
    text = re.sub(r'r#*"(?:.|\n)*?"#*', '""', text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    return text


def test_spans(text):
    """Line ranges of `#[cfg(test)] mod x { ... }` blocks (1-based, inclusive)."""
    spans = []
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if "#[cfg(test)]" in line:
            # the item after the attribute
            j = i + 1
            while j < len(lines) and lines[j].strip().startswith("#["):
                j += 1
            if j < len(lines) and re.match(r"\s*(pub(\(\w+\))?\s+)?mod\s+\w+\s*\{", lines[j]):
                end = block_end(lines, j)
                spans.append((j + 1, end + 1))
    return spans


def block_end(lines, start):
    depth = 0
    seen = False
    for k in range(start, len(lines)):
        code = strip_comments_and_strings(lines[k])
        for ch in code:
            if ch == "{":
                depth += 1
                seen = True
            elif ch == "}":
                depth -= 1
                if seen and depth == 0:
                    return k
    return len(lines) - 1


def module_files(root, crate_root):
    """Maps module path tuples to files, following `mod x;` declarations."""
    mods = {}

    def visit(path, modpath):
        mods[modpath] = path
        text = strip_comments_and_strings(open(path, encoding="utf-8").read())
        base = os.path.dirname(path)
        name = os.path.basename(path)
        if name not in ("lib.rs", "main.rs", "mod.rs") and modpath:
            base = os.path.join(base, name[:-3])
        for m in re.finditer(r"(?m)^\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text):
            child = m.group(1)
            for cand in (os.path.join(base, child + ".rs"), os.path.join(base, child, "mod.rs")):
                if os.path.exists(cand):
                    visit(cand, modpath + (child,))
                    break

    visit(os.path.join(root, crate_root), ())
    return mods


def resolve(mods, path):
    """The longest module prefix of `path` (a tuple) that is a module."""
    for n in range(len(path), 0, -1):
        if path[:n] in mods:
            return path[:n]
    return None


def uses_of(text, modpath, mods):
    """Module paths named by this file."""
    text = strip_comments_and_strings(text)
    found = set()
    # expand `use a::{b, c::{d}}` groups roughly: collect every path-looking token chain
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        for p in expand_use(m.group(1).replace("\n", " ")):
            found.add(p)
    for m in re.finditer(r"\b((?:crate|super|self)(?:::\w+)+)", text):
        found.add(m.group(1))
    out = set()
    for p in found:
        parts = [x.strip() for x in p.split("::") if x.strip()]
        if not parts:
            continue
        if parts[0] == "crate":
            target = tuple(parts[1:])
        elif parts[0] in ("super", "self"):
            base = list(modpath)
            while parts and parts[0] in ("super", "self"):
                if parts[0] == "super" and base:
                    base.pop()
                parts.pop(0)
            target = tuple(base) + tuple(parts)
        elif (parts[0],) in mods:
            target = tuple(parts)
        else:
            continue
        r = resolve(mods, target)
        if r is not None:
            out.add(r)
    return out


def expand_use(tree):
    tree = tree.strip()
    if tree.startswith("pub "):
        tree = tree[4:]
    m = re.match(r"^([\w:]*?)(?:::)?\{(.*)\}$", tree, re.S)
    if not m:
        return [re.sub(r"\s+as\s+\w+$", "", tree)]
    prefix, inner = m.group(1), m.group(2)
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        p = p.strip()
        if not p:
            continue
        for e in expand_use(p):
            out.append(prefix + "::" + e if prefix else e)
    return out


def find_cycles(nodes, edges):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, sccs = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
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
                sccs.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            strong(v)
    return sccs


def check_cycles(repo):
    faults = []
    for root, crate_roots in CRATES:
        for cr in crate_roots:
            mods = module_files(os.path.join(repo, root), cr)
            # sibling graphs, keyed by parent module
            graphs = {}
            why = {}
            for modpath, path in mods.items():
                text = open(path, encoding="utf-8").read()
                spans = test_spans(text)
                if spans:
                    lines = text.split("\n")
                    keep = [l for i, l in enumerate(lines, 1)
                            if not any(a <= i <= b for a, b in spans)]
                    text = "\n".join(keep)
                if "tests" in modpath or path.endswith("_tests.rs"):
                    continue  # test code may use anything
                for target in uses_of(text, modpath, mods):
                    n = 0
                    while n < min(len(modpath), len(target)) and modpath[n] == target[n]:
                        n += 1
                    if n == len(modpath) or n == len(target):
                        continue  # ancestor or descendant: one unit
                    parent = modpath[:n]
                    a, b = modpath[n], target[n]
                    graphs.setdefault(parent, {}).setdefault(a, set()).add(b)
                    why.setdefault((parent, a, b), os.path.relpath(path, repo))
            for parent, edges in sorted(graphs.items()):
                nodes = set(edges) | {b for s in edges.values() for b in s}
                for comp in find_cycles(nodes, edges):
                    where = "::".join(parent) or "crate root"
                    detail = []
                    for a in comp:
                        for b in sorted(edges.get(a, ())):
                            if b in comp:
                                detail.append(f"{a} -> {b} ({why[(parent, a, b)]})")
                    faults.append(f"{root}/{cr}: import cycle in {where}: {', '.join(comp)}\n    "
                                  + "\n    ".join(detail))
    return faults


def check_long_functions(repo):
    faults = []
    for root, _ in CRATES:
        for dirpath, _, files in os.walk(os.path.join(repo, root)):
            for f in sorted(files):
                if not f.endswith(".rs") or f == "tests.rs" or f.endswith("_tests.rs"):
                    continue
                path = os.path.join(dirpath, f)
                if os.sep + "tests" + os.sep in path:
                    continue
                text = open(path, encoding="utf-8").read()
                lines = text.split("\n")
                spans = test_spans(text)
                for i, line in enumerate(lines):
                    if not re.match(r"\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?(extern\s+\"C\"\s+)?fn\s+\w+", line):
                        continue
                    if any(a <= i + 1 <= b for a, b in spans):
                        continue
                    # a declaration without a body (trait method)
                    j = i
                    while j < len(lines) and "{" not in strip_comments_and_strings(lines[j]) \
                            and not strip_comments_and_strings(lines[j]).rstrip().endswith(";"):
                        j += 1
                    if j >= len(lines) or "{" not in strip_comments_and_strings(lines[j]):
                        continue
                    end = block_end(lines, i)
                    length = end - i + 1
                    if length <= MAX_FN_LINES:
                        continue
                    k = i - 1
                    excused = False
                    while k >= 0 and (lines[k].strip().startswith("//") or lines[k].strip().startswith("#[")):
                        if "long-fn:" in lines[k]:
                            excused = True
                        k -= 1
                    if not excused:
                        name = re.search(r"fn\s+(\w+)", line).group(1)
                        faults.append(f"{os.path.relpath(path, repo)}:{i + 1}: fn {name} is {length} lines (most {MAX_FN_LINES})")
    return faults


def main():
    repo = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    faults = check_cycles(repo) + check_long_functions(repo)
    for f in faults:
        print(f)
    if faults:
        print(f"structure: {len(faults)} fault(s)")
        sys.exit(1)
    print("structure: no import cycle, no function over 80 lines")


if __name__ == "__main__":
    main()
