#!/usr/bin/env python3
"""The docs say what the code does (#37 item 7). Run by DocsTests; exit 0 when every check passes, 1 with one line
per problem (what is wrong, where, what to do).

1. Policy keys: every set of keys a parser accepts (`mapping(allowed: ...)` in Sources/, with `SourcePolicy.commonKeys`
   and any other named key set resolved) equals the key column of one table of docs/policy.md, and every key table
   there (a table whose first header cell is `key`) is the keys of one parser set: no key undocumented, no key
   documented that no parser accepts.
2. docs/ARCHITECTURE.md: its kinds table (header `folder`) lists exactly the folders of Sources/BackupEngine/Kinds/,
   each with the `kind:` its adapter declares; its services table (a `file` column) lists exactly the files of
   Sources/BackupEngine/Services/; its targets table (a `may import` column) has a row per target of Package.swift
   with exactly the dependencies declared there (the view scripts/check-dependencies.py checks against the
   imports); its after-run table lists BackupRunner's steps in order; no file of Sources/BackupEngine outside Kinds/
   imports a kind's library (and no table of such exceptions is left); the services (Services/, reaching each
   other through EngineCore's accessors) call each other in no cycle.
3. Every relative link of README.md and docs/**/*.md resolves to a file or directory of the repository.
4. README.md has at most 200 lines, and its first code block starts with the two commands.
"""
import os
import re
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
problems = []


def read(rel):
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        return f.read()


def swift_files(rel):
    for dirpath, _, filenames in os.walk(os.path.join(root, rel)):
        for f in sorted(filenames):
            if f.endswith(".swift"):
                yield os.path.join(dirpath, f)


def strip_comments(text):
    # Whole-line comments only: string literals hold "//" (URLs).
    return re.sub(r"(?m)^\s*//[^\n]*$", "", text)


def strings(text):
    return re.findall(r'"((?:[^"\\]|\\.)*)"', text)


def balanced(text, start):
    """The text from `start` (just after an opening parenthesis) to its closing one."""
    depth, i = 1, start
    while i < len(text) and depth:
        c = text[i]
        if c == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        i += 1
    return text[start:i - 1]


def markdown_tables(text):
    """(heading, header cells, rows of cells) of every table, with the nearest heading above it."""
    tables, heading, lines, i = [], "", text.split("\n"), 0
    fence = False
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            fence = not fence
        if not fence and re.match(r"#{1,6} ", line):
            heading = line.lstrip("#").strip()
        if not fence and line.startswith("|") and i + 1 < len(lines) and re.match(r"^\|[\s:|-]+\|\s*$", lines[i + 1]):
            header = cells(line)
            rows, j = [], i + 2
            while j < len(lines) and lines[j].startswith("|"):
                rows.append(cells(lines[j]))
                j += 1
            tables.append((heading, header, rows))
            i = j
            continue
        i += 1
    return tables


def cells(line):
    line = line.strip().strip("|")
    return [c.strip() for c in re.split(r"(?<!\\)\|", line)]


def ticks(cell):
    return re.findall(r"`([^`]+)`", cell)


# 1. Policy keys ------------------------------------------------------------------------------------------------

sources = {path: strip_comments(open(path, encoding="utf-8").read()) for path in swift_files("Sources")}


def named_set(name):
    """A key set declared as `let NAME ... = [ "a", "b" ]` in Sources; declared in several files (each kind's
    `drillKeys`, the keys of the policy's `drill:` block that kind reads), their union: the block accepts them all."""
    keys, where = None, None
    for path, text in sources.items():
        for m in re.finditer(r"\blet\s+" + re.escape(name) + r"\b[^=\n]*=\s*\[", text):
            body = balanced(text, m.end())
            keys = (keys or set()) | set(strings(body))
            where = where or f"{os.path.relpath(path, root)}:{text[:m.start()].count(chr(10)) + 1}"
    return keys, where


code_sets = {}  # location -> set
for path, text in sources.items():
    rel = os.path.relpath(path, root)
    for m in re.finditer(r"mapping\(\s*allowed:\s*", text):
        expr = balanced(text, m.end())
        line = text[:m.start()].count("\n") + 1
        line_start = text.rfind("\n", 0, m.start()) + 1
        if expr.strip() == "nil" or re.search(r"\bfunc\s", text[line_start:m.start()]):
            continue
        literals = re.findall(r"\[([^\[\]]*)\]", expr)
        for body in literals:
            code_sets[f"{rel}:{line}"] = set(strings(body))
        rest = re.sub(r"\[[^\[\]]*\]", "", expr)
        rest = re.sub(r'"(?:[^"\\]|\\.)*"', "", rest)
        # A dotted name (`SourcePolicy.commonKeys.union`): the component that names a key set is resolved; the
        # others are types and methods.
        names = re.findall(r"[A-Za-z_][\w.]*", rest)
        for dotted in names:
            parts = [n for n in dotted.split(".") if n not in ("union", "nil", "Set", "self", "Self")]
            found = [(n,) + named_set(n) for n in parts]
            found = [f for f in found if f[1] is not None]
            if not found and parts:
                problems.append(f"{rel}:{line}: mapping(allowed: {expr.strip()}): cannot find the key set `{dotted}`; "
                                f"declare it as `let NAME: Set<String> = [...]` or teach scripts/check-docs.py to read it")
            for _, keys, where in found:
                code_sets[where] = keys
        if not literals and not names:
            problems.append(f"{rel}:{line}: mapping(allowed: {expr.strip()}): no key set found; teach scripts/check-docs.py to read it")

policy_doc = "docs/policy.md"
if not os.path.exists(os.path.join(root, policy_doc)):
    problems.append(f"{policy_doc} is missing: it must document every policy key")
    doc_sets = []
else:
    doc_sets = []
    for heading, header, rows in markdown_tables(read(policy_doc)):
        if header and header[0].lower() == "key":
            keys = set()
            for row in rows:
                names = ticks(row[0])
                if not names:
                    problems.append(f"{policy_doc}, section \"{heading}\": a row without a `key` in its first cell: {row[0]!r}")
                keys |= set(names)
            doc_sets.append((heading, keys))

unmatched_docs = list(doc_sets)
unmatched_code = []
for where, keys in sorted(code_sets.items()):
    hit = next((d for d in unmatched_docs if d[1] == keys), None)
    if hit is None:
        hit = next((d for d in doc_sets if d[1] == keys), None)
        if hit is None:
            unmatched_code.append((where, keys))
    else:
        unmatched_docs.remove(hit)
for where, keys in unmatched_code:
    best = max(unmatched_docs or doc_sets, key=lambda d: len(d[1] & keys), default=None)
    if best is None or not (best[1] & keys):
        problems.append(f"{where}: the policy keys {sorted(keys)} have no table in {policy_doc}: add a section with a "
                        f"`key | type | default | meaning` table listing them")
        continue
    missing, extra = sorted(keys - best[1]), sorted(best[1] - keys)
    problems.append(f"{where}: the parser accepts {sorted(keys)}; the closest table of {policy_doc} (section "
                    f"\"{best[0]}\") " + (f"lacks {missing}" if missing else "") + (" and " if missing and extra else "")
                    + (f"documents {extra}, which this parser does not accept" if extra else ""))
    if best in unmatched_docs:
        unmatched_docs.remove(best)
for heading, keys in unmatched_docs:
    if not any(keys == k for k in code_sets.values()):
        problems.append(f"{policy_doc}, section \"{heading}\": documents {sorted(keys)}, which no parser accepts as a set "
                        f"(a key removed or renamed in Sources? a table split in two?)")

# 2. ARCHITECTURE.md ----------------------------------------------------------------------------------------------

arch_path = "docs/ARCHITECTURE.md"
arch_tables = markdown_tables(read(arch_path))


def find_table(test, what):
    found = [t for t in arch_tables if test(t[1])]
    if not found:
        problems.append(f"{arch_path}: no {what} table found")
        return None
    return found[0]


def column(header, name):
    for i, h in enumerate(header):
        if h.lower() == name:
            return i
    return None


# Kinds: folders and `kind:` values.
kinds_dir = os.path.join(root, "Sources/BackupEngine/Kinds")
folders = {d for d in os.listdir(kinds_dir) if os.path.isdir(os.path.join(kinds_dir, d))}
kind_table = find_table(lambda h: h and h[0].lower() == "folder", "kinds (first header cell `folder`)")
kind_libraries = set()
if kind_table:
    _, header, rows = kind_table
    kc, lc = column(header, "kind:"), column(header, "library")
    documented = {}
    for row in rows:
        names = [n.split("/")[-1] for n in ticks(row[0])]
        for n in names:
            documented[n] = ticks(row[kc])[0].replace("kind:", "").strip() if kc is not None and ticks(row[kc]) else None
        if lc is not None:
            kind_libraries |= {n for n in ticks(row[lc]) if re.match(r"^[A-Z]\w+$", n)}
    for f in sorted(folders - documented.keys()):
        problems.append(f"{arch_path}: the kinds table lacks Kinds/{f} (a folder of Sources/BackupEngine/Kinds/)")
    for f in sorted(documented.keys() - folders):
        problems.append(f"{arch_path}: the kinds table names Kinds/{f}, which is not a folder of Sources/BackupEngine/Kinds/")
    for f in sorted(folders & documented.keys()):
        declared = set()
        for path in swift_files(f"Sources/BackupEngine/Kinds/{f}"):
            declared |= set(re.findall(r"\blet\s+kind\s*=\s*SourceKind\(\"([^\"]+)\"\)", sources.get(path, "")))
        if documented[f] is not None and declared and documented[f] not in declared:
            problems.append(f"{arch_path}: Kinds/{f} is documented as kind `{documented[f]}`; its adapter declares {sorted(declared)}")

# Services: the files of Services/.
services_dir = os.path.join(root, "Sources/BackupEngine/Services")
service_files = {f for f in os.listdir(services_dir) if f.endswith(".swift")}
service_table = find_table(lambda h: column(h, "file") is not None and h[0].lower() == "service", "services (`service | file | ...`)")
if service_table:
    _, header, rows = service_table
    fc = column(header, "file")
    documented = {n for row in rows for n in ticks(row[fc]) if n.endswith(".swift")}
    for f in sorted(service_files - documented):
        problems.append(f"{arch_path}: the services table lacks {f} (a file of Sources/BackupEngine/Services/)")
    for f in sorted(documented - service_files):
        problems.append(f"{arch_path}: the services table names {f}, which is not in Sources/BackupEngine/Services/")

# The service graph has no cycle: a service reaches another through the run context's accessors
# (`core.rotator` for `var rotator: Rotator { Rotator(core: self) }` in EngineCore.swift); a cycle (the runner
# calling the rotator calling the runner) is a problem (#37 item 5).
core_text = strip_comments(sources.get(os.path.join(root, "Sources/BackupEngine/Services/EngineCore.swift"), ""))
accessors = dict(re.findall(r"\bvar\s+(\w+)\s*:\s*(\w+)\s*\{\s*\2\(core:\s*self\)\s*\}", core_text))
graph = {}
for f in sorted(service_files):
    text = strip_comments(sources.get(os.path.join(services_dir, f), ""))
    for m in re.finditer(r"\bstruct\s+(\w+)\s*:\s*EngineService\b", text):
        graph.setdefault(m.group(1), set())
        uses = {accessors[a] for a in re.findall(r"\bcore\.(\w+)\b", text) if a in accessors}
        graph[m.group(1)] |= uses - {m.group(1)}
if not accessors or not graph:
    problems.append("Sources/BackupEngine/Services: found no service accessors in EngineCore.swift or no `struct X: EngineService`; update check-docs.py")
def find_cycle(graph):
    state = {}
    def visit(n, path):
        state[n] = 1
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return path[path.index(m):] + [m] if m in path else [n, m]
            if state.get(m) is None:
                c = visit(m, path + [m])
                if c:
                    return c
        state[n] = 2
        return None
    for n in sorted(graph):
        if state.get(n) is None:
            c = visit(n, [n])
            if c:
                return c
    return None
cycle = find_cycle(graph)
if cycle:
    problems.append("Sources/BackupEngine/Services: the services call each other in a cycle: " + " → ".join(cycle)
                    + "; move what both need into a service of its own (as CrashRecovery was)")

# Targets and who may import whom: Package.swift's declared dependencies (what check-dependencies.py holds to the
# imports).
manifest = re.sub(r"//[^\n]*", "", read("Package.swift"))
declared = {}
starts = list(re.finditer(r"\.(target|executableTarget)\(\s*name:\s*\"([^\"]+)\"", manifest))
for i, m in enumerate(starts):
    end = starts[i + 1].start() if i + 1 < len(starts) else len(manifest)
    block = manifest[m.start():end]
    deps = set()
    dm = re.search(r"dependencies:\s*\[(.*?)\]\s*(,\s*(path|exclude|plugins|resources|swiftSettings)|\))", block, re.S)
    if dm:
        text = dm.group(1)
        deps |= set(re.findall(r"\.product\(\s*name:\s*\"([^\"]+)\"", text))
        deps |= set(re.findall(r"\"([^\"]+)\"", re.sub(r"\.product\([^)]*\)", "", text)))
    declared[m.group(2)] = deps
target_table = find_table(lambda h: column(h, "may import") is not None, "targets (a `may import` column)")
if target_table:
    _, header, rows = target_table
    ic = column(header, "may import")
    seen = set()
    for row in rows:
        names = ticks(row[0])
        if len(names) != 1:
            problems.append(f"{arch_path}: targets table: name exactly one target in the first cell, found {row[0]!r}")
            continue
        name = names[0]
        seen.add(name)
        if name not in declared:
            problems.append(f"{arch_path}: targets table names `{name}`, which is not a target of Package.swift")
            continue
        documented = set(ticks(row[ic])) if row[ic].strip() not in ("—", "-", "nothing") else set()
        for d in sorted(declared[name] - documented):
            problems.append(f"{arch_path}: `{name}` declares {d} in Package.swift; its `may import` cell does not say so")
        for d in sorted(documented - declared[name]):
            problems.append(f"{arch_path}: `{name}` may import {d} by its `may import` cell; Package.swift does not declare it")
    for name in sorted(declared.keys() - seen):
        problems.append(f"{arch_path}: targets table lacks `{name}` (a target of Package.swift)")

# After-run steps, in order.
runner = sources.get(os.path.join(root, "Sources/BackupEngine/Services/BackupRunner.swift"), "")
steps = re.findall(r"AfterRunStep\(\s*name:\s*\"([^\"]+)\"", runner)
step_table = find_table(lambda h: column(h, "after-run step") is not None, "after-run steps (an `after-run step` column)")
if step_table and steps:
    _, header, rows = step_table
    sc = column(header, "after-run step")
    documented = [ticks(row[sc])[0] if ticks(row[sc]) else row[sc] for row in rows]
    if documented != steps:
        problems.append(f"{arch_path}: the after-run steps are {documented}; BackupRunner.afterRun runs {steps} (in that order)")

# No file outside Kinds/ imports a kind's library (#37 item 3): what a generic service needs of a kind, it asks the
# kind's adapter. (The table of exceptions this once checked is gone, and must stay gone.)
if kind_libraries:
    for path in swift_files("Sources/BackupEngine"):
        rel = os.path.relpath(path, os.path.join(root, "Sources/BackupEngine"))
        if rel.startswith("Kinds/"):
            continue
        found = set(re.findall(r"(?m)^(?:@\w+\s+)*import\s+(\w+)", sources.get(path, ""))) & kind_libraries
        if found:
            problems.append(f"Sources/BackupEngine/{rel} imports {sorted(found)} (a kind's library): only the files under Kinds/<kind>/ may; "
                            "move what it needs of the kind into the kind's folder, behind a SourceAdapter member")
    if any(t[1] and t[1][0].lower() == "file outside kinds/" for t in arch_tables):
        problems.append(f"{arch_path}: it has a table of files outside Kinds/ that import a kind's library; no file may any more (remove the table)")

# 3. Links --------------------------------------------------------------------------------------------------------

pages = ["README.md"] + sorted(os.path.relpath(os.path.join(d, f), root)
                               for d, _, fs in os.walk(os.path.join(root, "docs")) for f in fs if f.endswith(".md"))
for page in pages:
    text = re.sub(r"(?s)```.*?```", "", read(page))
    text = re.sub(r"`[^`\n]*`", "", text)
    for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        path = target.split("#")[0]
        resolved = os.path.normpath(os.path.join(os.path.dirname(os.path.join(root, page)), path))
        if not os.path.exists(resolved):
            problems.append(f"{page}: the link ({target}) resolves to {os.path.relpath(resolved, root)}, which does not exist")

# 4. README ---------------------------------------------------------------------------------------------------------

readme = read("README.md").split("\n")
if len(readme) > 200:
    problems.append(f"README.md has {len(readme)} lines; keep it at most 200 (move details to docs/)")
first_block = []
inside = False
for line in readme:
    if line.startswith("```"):
        if inside:
            break
        inside = True
        continue
    if inside:
        first_block.append(line)
if len(first_block) < 2 or not first_block[0].startswith("scripts/quickstart.sh") or not first_block[1].startswith("scripts/test.sh"):
    problems.append("README.md: its first code block must start with `scripts/quickstart.sh` then `scripts/test.sh` (the two commands)")

for p in problems:
    print(p)
sys.exit(1 if problems else 0)
