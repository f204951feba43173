"""The architecture of docs/DESIGN.md, checked from the source: who may import whom, no import
circle inside a package, and no module reaching into another's underscore names.

Imports are read with `ast`, so a function-local import counts as much as one at the top (hiding
a circle inside a function does not remove it); imports under `if TYPE_CHECKING:` are left out,
since they never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ledger", "consensus", "node", "cli")
MAY_IMPORT = {
    "ledger": set(),
    "consensus": set(),
    "node": {"ledger", "consensus"},
    "cli": {"ledger", "node"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, less the bodies of `if TYPE_CHECKING:` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _imports(path: Path) -> Iterator[tuple[str, list[str]]]:
    """(absolute module imported, names imported from it) for each import in `path`."""
    module = _module_name(path)
    package = module if _is_package(path) else module.rpartition(".")[0]
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target, [alias.name for alias in node.names]


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


MODULES = {_module_name(p): p for p in _sources()}


def _resolve(target: str, names: list[str]) -> list[str]:
    """The project modules an import touches: `from ledger import layout` touches ledger.layout."""
    found = [target] if target in MODULES else []
    for name in names:
        if f"{target}.{name}" in MODULES:
            found.append(f"{target}.{name}")
    return found


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_packages_import_only_what_design_allows(path: Path) -> None:
    own = _module_name(path).split(".")[0]
    for target, _ in _imports(path):
        top = target.split(".")[0]
        if top in PACKAGES and top != own:
            assert top in MAY_IMPORT[own], f"{path.relative_to(ROOT)} imports {target}: {own} may not import {top}"


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_another_modules_private_names(path: Path) -> None:
    for target, names in _imports(path):
        if target.split(".")[0] not in PACKAGES:
            continue
        private = [n for n in names if n.startswith("_") and not n.startswith("__")]
        assert not private, f"{path.relative_to(ROOT)} imports private {private} from {target}"


def _import_graph(package: str) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        if module.split(".")[0] != package:
            continue
        edges: set[str] = set()
        for target, names in _imports(path):
            edges.update(m for m in _resolve(target, names) if m != module and m.split(".")[0] == package)
        graph[module] = edges
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            # A package's __init__ importing its own submodules is how packages gather their parts.
            if node == nxt.rpartition(".")[0] and _is_package(MODULES[node]):
                continue
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


@pytest.mark.parametrize("package", ["ledger", "consensus"])
def test_no_import_circle_inside_the_deterministic_packages(package: str) -> None:
    cycle = _find_cycle(_import_graph(package))
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_the_circle_finder_finds_a_circle() -> None:
    # The check above is only as good as this: a planted circle must be named.
    graph = {"ledger.a": {"ledger.b"}, "ledger.b": {"ledger.c"}, "ledger.c": {"ledger.a"}}
    assert _find_cycle(graph) == ["ledger.a", "ledger.b", "ledger.c", "ledger.a"]
    assert _find_cycle({"ledger.a": {"ledger.b"}, "ledger.b": set()}) is None
