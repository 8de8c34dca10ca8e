#!/usr/bin/env python3
"""Fails the build when a source file includes a folder its library may not use.

Link-level separation (one static library per folder, src/CMakeLists.txt) does not catch an
include of a header-only part of another folder, so every build runs this over src/: each
`#include "folder/..."` line is checked against the layering table that src/CMakeLists.txt
declares (CMake writes it to <build>/layering.txt). Also checked: the table itself has no cycle,
and every folder under src/ with sources belongs to a declared library.

Table lines: <module> TAB <path prefixes under src/, comma-separated> TAB <modules it may use>.
A path belongs to the module with the longest matching prefix ("telemetry/metrics." is the
metrics registry, "telemetry/" the rest of telemetry).

Test files (*_test.cc) are not part of any library (they link everything, as tests do), so they
may include any module and "tests/support/..."; production files never may include test support. Exit 0 when clean, 1 with one line per violation otherwise.
Usage: check_layering.py --table build/layering.txt --src src
"""
import argparse
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
SOURCE_EXT = (".h", ".hpp", ".cc", ".cpp")


def read_table(path):
    modules = {}  # name -> (prefixes, uses)
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            name, prefixes, uses = (line.split("\t") + ["", ""])[:3]
            modules[name] = ([p for p in prefixes.split(",") if p], {u for u in uses.split(",") if u})
    return modules


def find_cycle(modules):
    """Returns one cycle as a list of module names, or None."""
    state = {}

    def visit(m, stack):
        state[m] = "open"
        stack.append(m)
        for u in sorted(modules.get(m, ((), set()))[1]):
            if state.get(u) == "open":
                return stack[stack.index(u):] + [u]
            if u not in state:
                found = visit(u, stack)
                if found:
                    return found
        stack.pop()
        state[m] = "done"
        return None

    for m in sorted(modules):
        if m not in state:
            found = visit(m, [])
            if found:
                return found
    return None


def module_of(rel_path, modules):
    best, best_len = None, -1
    for name, (prefixes, _) in modules.items():
        for p in prefixes:
            if rel_path.startswith(p) and len(p) > best_len:
                best, best_len = name, len(p)
    return best


def check(table_path, src_dir):
    modules = read_table(table_path)
    problems = []
    for name, (_, uses) in sorted(modules.items()):
        for u in sorted(uses - modules.keys()):
            problems.append(f"layering table: {name} may use unknown module {u}")
    cycle = find_cycle(modules)
    if cycle:
        problems.append("layering table has a cycle: " + " -> ".join(cycle))
    top_folders = {e.name for e in os.scandir(src_dir) if e.is_dir()}

    for root, _, files in os.walk(src_dir):
        for fname in sorted(files):
            if not fname.endswith(SOURCE_EXT):
                continue
            path = os.path.join(root, fname)
            rel = os.path.relpath(path, src_dir).replace(os.sep, "/")
            owner = module_of(rel, modules)
            if owner is None:
                problems.append(f"src/{rel}: no library declares this folder (add it to src/CMakeLists.txt)")
                continue
            allowed = modules[owner][1] | {owner}
            is_test = fname.endswith("_test.cc")
            with open(path, encoding="utf-8", errors="replace") as f:
                for lineno, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if not m or "/" not in m.group(1):
                        continue
                    inc = m.group(1)
                    if inc.startswith("tests/support/"):
                        if not is_test:
                            problems.append(f"src/{rel}:{lineno}: production code includes test support \"{inc}\"")
                        continue
                    if inc.split("/", 1)[0] not in top_folders:
                        continue  # a third-party header such as "curl/curl.h"
                    target = module_of(inc, modules)
                    if is_test and target is not None:
                        continue
                    if target is None:
                        problems.append(f"src/{rel}:{lineno}: includes \"{inc}\", which no library declares")
                    elif target not in allowed:
                        problems.append(f"src/{rel}:{lineno}: {owner} may not include \"{inc}\" ({target}); "
                                        f"{owner} may use: {', '.join(sorted(modules[owner][1])) or 'nothing'}")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", required=True)
    ap.add_argument("--src", required=True)
    args = ap.parse_args()
    problems = check(args.table, args.src)
    for p in problems:
        print("layering: " + p, file=sys.stderr)
    if problems:
        print(f"layering: {len(problems)} violation(s); the allowed table is in src/CMakeLists.txt", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
