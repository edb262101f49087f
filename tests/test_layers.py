"""The package's layers, read from every module's imports (those inside functions too):

    core < model < storage < indexing < query < library < doors

A module imports only from its own layer or those below it, and no chain of imports comes
back to where it started. `core` holds what every layer needs (settings, errors, paths,
vocabulary, words); `model` turns pixels and text into vectors; `storage` keeps them
(LanceDB, snapshots, full text); `indexing` walks files into the store; `query` searches it;
`library.py` is the one object the front doors call; `doors/` parse, call and render (CLI,
fast path, server, web UI, MCP). `mmsearch.__main__` is a door. Imports under
`if TYPE_CHECKING:` never run and are not counted; nor is the package root, which names
nothing at import (its exports load on first use).

`KNOWN_UPWARD` lists the imports up the layers not yet removed: the library still asks a
running server and serves its store itself. The list must shrink, never grow: a test fails
for a new one, and for one that no longer exists (so the list stays true)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "mmsearch"
LAYERS = ("core", "model", "storage", "indexing", "query", "library", "doors")
KNOWN_UPWARD = {
    ("mmsearch.library", "mmsearch.doors.client"),
    ("mmsearch.library", "mmsearch.doors.protocol"),
    ("mmsearch.library", "mmsearch.doors.serve"),
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _type_checking_only(tree: ast.AST) -> set[int]:
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skipped


def _imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that `name` imports, anywhere in its body."""
    tree = ast.parse(path.read_text())
    skipped = _type_checking_only(tree)
    targets: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                here = here[: len(here) - node.level + 1]
                base = ".".join(here + ([base] if base else []))
            targets |= {
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            }
    return {t for t in targets if t in modules and t not in ("mmsearch", name)}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imported(name, path, modules) for name, path in modules.items()}


def _layer(module: str) -> int:
    first = module.split(".")[1] if "." in module else ""
    return LAYERS.index("doors" if first == "__main__" else first)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_module_belongs_to_a_layer() -> None:
    outside = [
        m for m in _modules() if m != "mmsearch" and m.split(".")[1] not in (*LAYERS, "__main__")
    ]
    assert outside == []


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    upward = {
        (m, t)
        for m, targets in _graph().items()
        if m != "mmsearch"
        for t in targets
        if _layer(t) > _layer(m)
    }
    assert upward - KNOWN_UPWARD == set(), "imports up the layers (see this file's docstring)"
    assert KNOWN_UPWARD - upward == set(), "gone: take them off KNOWN_UPWARD"


def test_no_chain_of_imports_comes_back_to_where_it_started() -> None:
    graph = _graph()
    for module, target in KNOWN_UPWARD:
        graph[module].discard(target)
    assert _cycles(graph) == []
