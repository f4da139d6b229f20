#!/usr/bin/env python3
"""Every target's dependencies are the modules it imports, no more, no less (#37).

Reads Package.swift (the targets' `name:`, `path:` and `dependencies:`) and every .swift file of each target,
and reports a module imported but not declared (it builds only because another target drags it in) and a
dependency declared but never imported. System modules (Foundation, Glibc, Dispatch, Testing, XCTest, ...) are
not dependencies. Exit 0 when clean, 1 with one line per problem.
"""
import os
import re
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
manifest = open(os.path.join(root, "Package.swift"), encoding="utf-8").read()
manifest = re.sub(r"//[^\n]*", "", manifest)

SYSTEM = {"Foundation", "FoundationEssentials", "FoundationNetworking", "FoundationXML", "Glibc", "Darwin", "Dispatch",
          "Testing", "XCTest", "Synchronization", "PackagePlugin", "os", "_Concurrency", "Musl", "Android"}

# .target( name: "X", ... ) blocks: the text up to the next target declaration.
starts = [m for m in re.finditer(r"\.(target|testTarget|executableTarget)\(\s*name:\s*\"([^\"]+)\"", manifest)]
problems = []
for i, m in enumerate(starts):
    kind, name = m.group(1), m.group(2)
    end = starts[i + 1].start() if i + 1 < len(starts) else len(manifest)
    block = manifest[m.start():end]
    path_match = re.search(r"path:\s*\"([^\"]+)\"", block)
    path = path_match.group(1) if path_match else ("Tests/" if kind == "testTarget" else "Sources/") + name
    deps_match = re.search(r"dependencies:\s*\[(.*?)\]\s*(,\s*(path|exclude|plugins|resources|swiftSettings)|\))", block, re.S)
    declared = set()
    if deps_match:
        text = deps_match.group(1)
        declared |= set(re.findall(r"\.product\(\s*name:\s*\"([^\"]+)\"", text))
        text = re.sub(r"\.product\([^)]*\)", "", text)
        declared |= set(re.findall(r"\"([^\"]+)\"", text))
    imported = set()
    directory = os.path.join(root, path)
    excluded = set(re.findall(r"exclude:\s*\[([^\]]*)\]", block))
    excluded = {e for group in excluded for e in re.findall(r"\"([^\"]+)\"", group)}
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = [d for d in dirnames if os.path.relpath(os.path.join(dirpath, d), directory) not in excluded]
        for f in filenames:
            if f.endswith(".swift"):
                source = open(os.path.join(dirpath, f), encoding="utf-8").read()
                imported |= set(re.findall(r"^(?:@testable\s+|@_exported\s+|@preconcurrency\s+|public\s+|internal\s+|package\s+)*import\s+(?:struct\s+|enum\s+|class\s+|func\s+)?([A-Za-z_][A-Za-z0-9_]*)", source, re.M))
    imported -= SYSTEM
    imported.discard(name)
    # System library targets (CZlib, CMalloc) are imported by module name too.
    for module in sorted(imported - declared):
        problems.append(f"{name}: imports {module} but does not declare it in Package.swift")
    for module in sorted(declared - imported):
        problems.append(f"{name}: declares {module} but never imports it")

for p in problems:
    print(p)
sys.exit(1 if problems else 0)
