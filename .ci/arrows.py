#!/usr/bin/env python3
"""The one-way arrows of the daemon's targets (docs/architecture.md), checked.

Reads the target graph from Package.swift (`swift package dump-package`), prints every arrow
between the package's own targets, and fails when one points up a layer or sideways within
one, when the graph has a target the layers below do not place, or when a source file imports
one of the package's targets that its target does not declare.

    python3 .ci/arrows.py [--package DIR] [--build-each]

--build-each then builds every target of ours alone, lowest layer first, with undeclared
imports as errors: each builds with nothing but what it declares.
"""
import json
import os
import re
import subprocess
import sys

# Lowest first. A target may depend only on targets of lower layers (and on the C and
# system targets of layer 0). Two targets of one layer never see each other.
LAYERS = [
    ["CAgentEvents", "CSupport", "CLibbpf", "COpenSSL", "CZlib", "CLibdeflate"],
    ["BPFKit", "AgentProbes", "AgentSupport"],
    ["AgentRecords"],
    ["AgentSensor", "AgentSessions", "AgentDetector"],
    ["AgentPipeline", "AgentOutputs", "AgentReplay"],
    ["AgentDaemon"],
    ["agentwatch"],
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def main():
    root = "."
    if "--package" in sys.argv:
        root = sys.argv[sys.argv.index("--package") + 1]
    dump = json.loads(subprocess.run(["swift", "package", "dump-package"], cwd=root, check=True,
                                     capture_output=True, text=True).stdout)
    targets = {t["name"]: t for t in dump["targets"]}
    own = {n for n, t in targets.items() if t["type"] in ("regular", "executable", "system")}
    problems = []
    arrows = {}
    for name, t in sorted(targets.items()):
        deps = []
        for d in t.get("dependencies", []):
            kind, value = next(iter(d.items()))
            dep = value[0]
            if dep in targets:
                deps.append(dep)
        arrows[name] = sorted(deps)
        if t["type"] == "test" or name not in own:
            continue
        if name not in LAYER:
            problems.append(f"Package.swift: target {name} has no layer in .ci/arrows.py (LAYERS)")
            continue
        for dep in deps:
            if dep not in LAYER:
                problems.append(f"Package.swift: {name} -> {dep}: {dep} has no layer")
            elif LAYER[dep] >= LAYER[name]:
                way = "sideways" if LAYER[dep] == LAYER[name] else "up"
                problems.append(f"Package.swift: {name} -> {dep} points {way} "
                                f"(layer {LAYER[name]} -> {LAYER[dep]})")
    # What the sources import must be what their target declares.
    for name, t in targets.items():
        path = t.get("path") or os.path.join("Tests" if t["type"] == "test" else "Sources", name)
        declared = set(arrows.get(name, []))
        for base, _, files in os.walk(os.path.join(root, path)):
            for f in files:
                if not f.endswith(".swift"):
                    continue
                file = os.path.join(base, f)
                for n, line in enumerate(open(file, encoding="utf-8"), 1):
                    m = re.match(r"^(?:@testable )?import (\w+)", line)
                    if m and m.group(1) in targets and m.group(1) not in declared:
                        problems.append(f"{os.path.relpath(file, root)}:{n}: imports {m.group(1)}, "
                                        f"which target {name} does not declare")
    for layer, names in enumerate(LAYERS[1:], 1):
        for name in names:
            inner = [d for d in arrows.get(name, []) if d in LAYER and LAYER[d] > 0]
            print(f"{layer}  {name:<14} -> {', '.join(inner) or '(nothing of ours)'}")
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"arrows: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("arrows: one way")
    if "--build-each" in sys.argv:
        for names in LAYERS[1:]:
            for name in names:
                if name not in targets:
                    continue
                print(f"building {name} alone", flush=True)
                r = subprocess.run(["swift", "build", "--target", name,
                                    "--explicit-target-dependency-import-check", "error"], cwd=root,
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    print(r.stdout[-4000:] + r.stderr[-4000:], file=sys.stderr)
                    print(f"arrows: {name} does not build alone", file=sys.stderr)
                    return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
