"""tools/mutants.toml names modules, functions and source lines; a move or rename in the code
must move the file's entries with it, or the mutation report silently counts real survivors as
equivalent (or equivalents as survivors)."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / "tools" / "mutants.toml").read_text())


def _functions(path: Path) -> dict[str, str]:
    """Qualified name (Class.method) -> source, for every function in the module."""
    source = path.read_text()
    found: dict[str, str] = {}

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found[prefix + child.name] = ast.get_source_segment(source, child) or ""
            elif isinstance(child, ast.ClassDef):
                walk(child, prefix + child.name + ".")

    walk(ast.parse(source), "")
    return found


def test_every_mutated_module_and_its_tests_exist() -> None:
    for module, entry in CONFIG["modules"].items():
        assert (ROOT / module).is_file(), f"tools/mutants.toml: modules.{module} does not exist"
        for test in entry["tests"]:
            assert (ROOT / test).exists(), f"tools/mutants.toml: modules.{module}: {test} does not exist"


def test_every_equivalent_mutant_points_at_a_line_of_a_function_that_exists() -> None:
    functions = {module: _functions(ROOT / module) for module in CONFIG["modules"]}
    for entry in CONFIG["equivalent"]:
        module, function = entry["module"], entry["function"]
        assert module in functions, f"equivalent mutant in {module}, which is not a mutated module"
        assert function in functions[module], f"{module} has no function {function} (equivalent: {entry['line']})"
        first_line = entry["line"].split(" / ")[0]
        assert first_line in functions[module][function], f"{module}:{function} has no line {first_line!r}"
