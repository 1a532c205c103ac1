"""Check the package's import graph: layers import down only, no entry module is imported by
anything in ``src/``, and no import cycle between modules. Prints one JSON object and exits 1
when a rule is broken.

Every ``import`` and ``from ... import`` of ``nercc`` modules is read from the source (also those
inside functions, which run later but are dependencies all the same).
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: The layers, top first: a module may import its own layer and those below it.
LAYERS = [
    ("entry", ["nercc.eval", "nercc.tune", "nercc.train", "nercc.serve", "nercc.loadtest",
               "nercc.demo", "nercc.figures.__main__"]),
    ("tasks", ["nercc.tasks"]),
    ("runtime/figures", ["nercc.runtime", "nercc.figures"]),
    ("tuning/serving", ["nercc.tuning", "nercc.serving"]),
    ("evaluation", ["nercc.evaluation"]),
    ("models/data", ["nercc.models", "nercc.data"]),
    ("stragglers", ["nercc.stragglers", "nercc.adversaries"]),
    ("coding", ["nercc.coding"]),
    ("utils", ["nercc.utils", "nercc.paths", "nercc"]),
]  # fmt: skip
ENTRY = dict(LAYERS)["entry"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    best, rank = -1, len(LAYERS)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    return rank


def imports_of(path: Path, module: str, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def main() -> int:
    paths = {module_name(p): p for p in (SRC / "nercc").rglob("*.py")}
    known = set(paths)
    graph = {m: imports_of(p, m, known) for m, p in paths.items()}
    upward = sorted(
        f"{m} -> {d}"
        for m, deps in graph.items()
        for d in deps
        if layer_of(d) < layer_of(m) and not (d == "nercc" or m.startswith(d + "."))
    )
    entry = sorted(f"{m} -> {d}" for m, deps in graph.items() for d in deps if d in ENTRY)
    cycles, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if dep.startswith(node + ".") or node.startswith(dep + "."):
                continue  # a package and its own modules
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    report = {
        "modules": len(graph),
        "imports": sum(len(d) for d in graph.values()),
        "upward": upward,
        "entry_imported": entry,
        "cycles": [" -> ".join(c) for c in cycles],
    }
    print(json.dumps(report, indent=1))
    return 1 if upward or entry or cycles else 0


if __name__ == "__main__":
    sys.exit(main())
