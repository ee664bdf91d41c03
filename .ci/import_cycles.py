#!/usr/bin/env python3
"""Check the cargo workspace for import cycles between the source files of each crate.

Usage: import_cycles.py [--root DIR] [--graph CRATE] [--strict]

Files: each crate's module tree, built from src/lib.rs, src/main.rs and src/bin/*.rs by following
`mod x;` (x.rs or x/mod.rs next to lib.rs, main.rs or a mod.rs; a/x.rs or a/x/mod.rs for a
`mod x;` in a.rs). Undeclared files are not compiled and are ignored; so is test code: `tests/`
directories, tests.rs files, and items under `#[cfg(test)]` (an inline `mod tests { .. }` is cut
out by brace matching; the file of a `#[cfg(test)] mod x;` is skipped). `#[path]` is not
supported (warned about); inline non-test modules count as part of their file.

Edges: comments and string/char literals are stripped first. File A -> file B when A names an
item defined in B through a path, in a private `use` (groups, `self`, `as`, globs) or inline in
code (`super::events::Reply<T>`). Paths are resolved when they start with `crate`, `self`,
`super`, a child module of A or a name A imports; other crates are ignored (cargo already forbids
crate cycles). Leading segments are walked through the module tree while they name modules; the
next one is an item: defined there (struct, enum, fn, trait, type, const, static, union,
macro_rules, mod) -> that file; imported there by a `use` (a re-export such as `pub use
self::x::Item as Alias`, or a private use, which submodules may name too) -> followed to its
definition; else -> the reached module's file. A path ending at a module -> that module's file.
Not edges: a file to itself, `pub use` / `pub(..) use` statements (a facade re-exporting its
children is layering, not a cycle), `mod x;` declarations. The uses inside function bodies are
counted as the file's.

A module and its submodules are one unit: an edge between the files of a module and of one of its
ancestors (a child's `super::Engine` for an `impl Engine` block, a parent's
`follower::FollowerState`, anything lib.rs or main.rs defines) is shown by --graph, marked
[parent/child], but left out of the cycle search unless --strict is given.

Output: every strongly connected component (Tarjan) of more than one file, with the items behind
each edge inside it, so a developer knows what to move; exit status 1 if there is any, else 0.
`--graph CRATE` prints all the edges of one crate instead.
"""

import argparse
import re
import sys
import tomllib
from pathlib import Path

ITEM_KW = "struct|enum|fn|trait|type|const|static|union|mod"
ITEM_RE = re.compile(rf"\b(?:{ITEM_KW})\s+(?:r#)?([A-Za-z_]\w*)|\bmacro_rules!\s*([A-Za-z_]\w*)")
KEYWORDS = set(ITEM_KW.split("|")) | {"unsafe", "async", "extern", "impl", "where", "for", "mut"}
MOD_DECL_RE = re.compile(r"(?<![\w:])(?:pub\s*(?:\([^()]*\))?\s*)?mod\s+(?:r#)?(\w+)\s*([;{])")
USE_RE = re.compile(r"(?<![\w:])(pub\s*(?:\([^()]*\))?\s*)?use\s+([^;]+);")
PATH_RE = re.compile(r"(?<![\w:$])(?:r#)?([A-Za-z_]\w*)((?:\s*::\s*(?:r#)?[A-Za-z_]\w*)+)")
USE_TOKEN_RE = re.compile(r"::|[{},*]|\w+")
CFG_TEST_RE = re.compile(r"#\s*\[\s*cfg\s*\(\s*(?:test|all\s*\(\s*test\b[^\]]*\))\s*\)\s*\]")
ATTR_RE = re.compile(r"\s*#\s*\[[^\]]*\]")
ITEM_START_RE = re.compile(
    rf"\s*(?:pub\s*(?:\([^()]*\))?\s*)?(?:(?:unsafe|async|const|extern)\s+)*"
    rf"({ITEM_KW}|impl|use|macro_rules)\b(?:\s+(\w+))?"
)
LITERAL_RE = re.compile(r"//|/\*|(?<!\w)[bc]?r#*\"|(?<!\w)[bc]?\"|'")
CHAR_RE = re.compile(r"'(?:\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F_]{1,8}\}|.)|[^\\'\n])'")


def blank(text):
    """Replace everything but newlines with spaces, so offsets and line numbers survive."""
    return re.sub(r"[^\n]", " ", text)


def strip_comments_and_literals(src):
    out, i = [], 0
    while (m := LITERAL_RE.search(src, i)) is not None:
        start, tok = m.start(), m.group()
        out.append(src[i:start])
        if tok == "//":
            end = src.find("\n", start)
            end = len(src) if end < 0 else end
        elif tok == "/*":  # block comments nest in Rust
            depth, end = 1, start + 2
            while end < len(src) and depth:
                if src.startswith("/*", end):
                    depth, end = depth + 1, end + 2
                elif src.startswith("*/", end):
                    depth, end = depth - 1, end + 2
                else:
                    end += 1
        elif tok == "'":  # a char literal, or else a lifetime / label that stays
            if (c := CHAR_RE.match(src, start)) is None:
                out.append("'")
                i = start + 1
                continue
            end = c.end()
        elif "r" in tok:  # raw string: ends at `"` followed by as many `#`
            close = '"' + "#" * tok.count("#")
            end = src.find(close, m.end())
            end = len(src) if end < 0 else end + len(close)
        else:  # ordinary (byte / C) string with escapes
            end = m.end()
            while end < len(src) and src[end] != '"':
                end += 2 if src[end] == "\\" else 1
            end += 1
        out.append(blank(src[start:end]))
        i = end
    out.append(src[i:])
    return "".join(out)


def matching_brace(text, open_pos):
    depth = 0
    for j in range(open_pos, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(text)


def remove_cfg_test(code):
    """Blank every `#[cfg(test)]` item; return the new text and the names of `mod x;` skipped."""
    skipped, pos = set(), 0
    while (m := CFG_TEST_RE.search(code, pos)) is not None:
        end = m.end()
        while (a := ATTR_RE.match(code, end)) is not None:  # further attributes on the item
            end = a.end()
        item = ITEM_START_RE.match(code, end)
        if item is None:  # a gated field, arm or statement: drop just the attribute
            code = code[: m.start()] + blank(code[m.start() : m.end()]) + code[m.end() :]
            pos = m.end()
            continue
        semi, brace = code.find(";", item.end()), code.find("{", item.end())
        if brace < 0 or 0 <= semi < brace:
            end = semi + 1 if semi >= 0 else len(code)
            if item.group(1) == "mod":
                skipped.add(item.group(2))
        else:
            end = matching_brace(code, brace)
        code = code[: m.start()] + blank(code[m.start() : end]) + code[end:]
        pos = end
    return code, skipped


def depth_zero(code):
    """Offsets -> True when at brace depth 0 (module level); returns a predicate."""
    depth, depths = 0, []
    for ch in code:
        depths.append(depth)
        depth += (ch == "{") - (ch == "}")
    return lambda offset: depths[offset] == 0


def parse_use_tree(toks, pos, prefix, out):
    """Expand one use tree into (segments, bound name or '*') pairs; returns the next position."""
    segs = list(prefix)
    while pos < len(toks) and toks[pos] not in ("{", "*", ",", "}", "as"):
        if toks[pos] != "::":
            segs.append(toks[pos])
        elif not segs:
            segs.append("::")  # `::name` is an absolute path into another crate
        pos += 1
    tok = toks[pos] if pos < len(toks) else None
    if tok == "{":
        pos += 1
        while pos < len(toks) and toks[pos] != "}":
            pos = parse_use_tree(toks, pos, segs, out)
            if pos < len(toks) and toks[pos] == ",":
                pos += 1
        return pos + 1
    if tok == "*":
        out.append((segs, "*"))
        return pos + 1
    alias = None
    if tok == "as" and pos + 1 < len(toks):
        alias, pos = toks[pos + 1], pos + 2
    if segs and segs[-1] == "self":
        segs = segs[:-1]
    if segs:
        out.append((segs, alias or segs[-1]))
    return pos


class Module:
    def __init__(self, name, file, parent):
        self.name, self.file, self.parent = name, file, parent
        self.root = parent.root if parent else self
        self.children, self.items, self.imports, self.globs = {}, set(), {}, []
        self.uses = []  # (segments, bound name, is_reexport) of every use in the file
        self.code = ""  # the file's code without comments, literals, tests, uses, mod decls


def is_test_file(path, src_dir):
    rel = path.relative_to(src_dir)
    return path.name == "tests.rs" or "tests" in rel.parts[:-1]


def load_module(module, src_dir, files):
    raw = module.file.read_text(encoding="utf-8", errors="replace")
    if re.search(r"#\s*\[\s*path\s*=", raw):
        print(f"warning: #[path] in {module.file} is not supported", file=sys.stderr)
    code, skipped = remove_cfg_test(strip_comments_and_literals(raw))
    top = depth_zero(code)
    files[module.file] = module
    for m in ITEM_RE.finditer(code):
        name = m.group(1) or m.group(2)
        if top(m.start()) and name not in KEYWORDS:
            module.items.add(name)
    uses = sorted(USE_RE.finditer(code), key=lambda m: top(m.start()))  # top level wins
    for m in uses:
        pairs = []
        parse_use_tree(USE_TOKEN_RE.findall(m.group(2)), 0, [], pairs)
        for segs, bound in pairs:
            module.uses.append((segs, bound, m.group(1) is not None))
            if bound == "*":
                module.globs.append(segs)
            elif bound != "_":
                module.imports[bound] = segs
    code = USE_RE.sub(lambda m: blank(m.group()), code)
    here = module.file.parent
    if module.file.name not in ("lib.rs", "main.rs", "mod.rs"):
        here = here / module.file.stem  # edition 2018+: a.rs keeps its children in a/
    for m in MOD_DECL_RE.finditer(code):
        name = m.group(1)
        if not top(m.start()) or name in skipped:
            continue
        if m.group(2) == "{":  # inline module: part of this file
            module.children[name] = Module(name, module.file, module)
            continue
        for cand in (here / f"{name}.rs", here / name / "mod.rs"):
            if cand.is_file() and not is_test_file(cand, src_dir) and cand not in files:
                module.children[name] = Module(name, cand, module)
                load_module(module.children[name], src_dir, files)
                break
    module.code = MOD_DECL_RE.sub(lambda m: blank(m.group()) if m.group(2) == ";" else m.group(), code)


def resolve(module, segs, seen=frozenset()):
    """Resolve a path written in `module` to (Module, item or None), or None if out of crate."""
    first, rest = segs[0], segs[1:]
    if first == "crate":
        cur = module.root
    elif first == "self":
        cur = module
    elif first == "super":
        cur = module.parent
    elif first in module.children:
        cur = module.children[first]
    elif first in module.imports:
        target = resolve_name(module, first, seen)
        if target is None or target[1] is not None:
            return target  # an imported item: what follows are variants or associated items
        cur = target[0]
    else:
        return None  # another crate, a prelude name, a local type...
    for seg in rest:
        if cur is None:
            return None
        if seg == "super":
            cur = cur.parent
        elif seg in cur.children:
            cur = cur.children[seg]
        elif seg != "self":
            return resolve_name(cur, seg, seen)
    return None if cur is None else (cur, None)


def resolve_name(module, name, seen):
    """Find where the item `name`, as seen from inside `module`, is defined."""
    if name in module.items:
        return (module, name)
    if (module, name) in seen:  # e.g. `use async_trait::async_trait;`: not in this crate
        return None
    seen = seen | {(module, name)}
    if name in module.imports:
        return resolve(module, module.imports[name], seen)
    for glob in module.globs:
        found = resolve(module, glob + [name], seen)
        if found and found[1] in found[0].items:
            return found
    return (module, name)


def crate_graph(crate_dir):
    """Return ({file: Module}, {(from, to): {item names}}) for one crate."""
    src = crate_dir / "src"
    roots = [src / "lib.rs", src / "main.rs", *sorted(src.glob("bin/*.rs")), *sorted(src.glob("bin/*/main.rs"))]
    files, edges = {}, {}
    for root in roots:
        if root.is_file() and root not in files:
            load_module(Module("crate", root, None), src, files)
    for module in files.values():
        refs = [(segs, bound) for segs, bound, reexport in module.uses if not reexport]
        for m in PATH_RE.finditer(module.code):
            refs.append(([m.group(1)] + re.split(r"\s*::\s*(?:r#)?", m.group(2).strip())[1:], None))
        for segs, bound in refs:
            target = resolve(module, segs) if segs[0] != "::" else None
            if target is None or target[0].file == module.file:
                continue
            item = target[1] or ("*" if bound == "*" else f"mod {target[0].name}")
            edges.setdefault((module.file, target[0].file), set()).add(item)
    return files, edges


def nested(a, b):
    """True when one of the two modules is an ancestor of the other."""
    def above(x, y):
        while y is not None and y is not x:
            y = y.parent
        return y is x
    return above(a, b) or above(b, a)


def tarjan(nodes, succ):
    index, low, stack, on_stack, sccs = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in succ.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.append(w)
                if w == v:
                    break
            sccs.append(scc)

    for v in nodes:
        if v not in index:
            visit(v)
    return sccs


def covering_cycle(scc, succ, budget=100_000):
    """A cycle through every file of the SCC if a quick search finds one, else None."""
    members, start = set(scc), scc[0]

    def extend(path):
        nonlocal budget
        budget -= 1
        if len(path) == len(scc):
            return path + [start] if start in succ.get(path[-1], ()) else None
        for w in sorted(members & succ.get(path[-1], set()) - set(path)):
            if budget > 0 and (found := extend(path + [w])) is not None:
                return found
        return None

    return extend([start])


def label(items):
    """Sorted item names; `mod x` only when no item of x is named."""
    named = sorted(i for i in items if not i.startswith("mod "))
    return named or sorted(items)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--graph", metavar="CRATE", help="print every edge of one crate")
    parser.add_argument("--strict", action="store_true", help="count parent/child edges too")
    args = parser.parse_args()
    workspace = tomllib.loads((args.root / "Cargo.toml").read_text(encoding="utf-8"))["workspace"]
    crate_dirs = [d for pat in workspace["members"] for d in sorted(args.root.glob(pat)) if (d / "src").is_dir()]
    sys.setrecursionlimit(10_000)
    cycles = total_files = 0
    for crate_dir in crate_dirs:
        manifest = tomllib.loads((crate_dir / "Cargo.toml").read_text(encoding="utf-8"))
        crate = manifest.get("package", {}).get("name", crate_dir.name)
        if args.graph and args.graph not in (crate, crate_dir.name):
            continue
        files, edges = crate_graph(crate_dir)
        total_files += len(files)
        name = lambda f: f.relative_to(crate_dir / "src").as_posix()  # noqa: E731
        by_name = lambda e: (name(e[0]), name(e[1]))  # noqa: E731
        show = lambda a, b: f"{name(a)} -> {name(b)} ({', '.join(label(edges[a, b]))})"  # noqa: E731
        if args.graph:
            for a, b in sorted(edges, key=by_name):
                print(show(a, b) + ("  [parent/child]" if nested(files[a], files[b]) else ""))
            return 0
        succ = {}
        for a, b in list(edges):
            if args.strict or not nested(files[a], files[b]):
                succ.setdefault(a, set()).add(b)
            else:
                del edges[a, b]
        for scc in (sorted(c, key=name) for c in tarjan(sorted(files, key=name), succ) if len(c) > 1):
            cycles += 1
            path = covering_cycle(scc, succ)
            head = " -> ".join(map(name, path)) if path else "{" + ", ".join(map(name, scc)) + "}"
            print(f"cycle in {crate}: {head}")
            for a, b in sorted((e for e in edges if e[0] in scc and e[1] in scc), key=by_name):
                print(f"    {show(a, b)}")
    if args.graph:
        print(f"no crate named {args.graph}", file=sys.stderr)
        return 2
    if cycles:
        print(f"import cycles: {cycles} found ({total_files} files in {len(crate_dirs)} crates)")
        return 1
    print(f"import cycles: none ({total_files} files in {len(crate_dirs)} crates)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
