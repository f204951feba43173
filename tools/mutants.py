"""Mutation testing of the modules where a bug costs the most, with mutmut, one module at a time.

    python tools/mutants.py                                   # every module in tools/mutants.toml
    python tools/mutants.py --module consensus/certificate.py # one (repeatable)

`make mutants` (and `make mutants MODULE=...`) runs this after installing the `mutants` extra.

For each module this copies the packages, the tests and pyproject.toml into a scratch tree under
build/mutants/<module>/ (the working tree is never touched: mutmut writes its own `mutants/` copy
and its cache next to the pyproject it reads), adds a `[tool.mutmut]` section that mutates only that
module and selects only that module's tests (the mapping is tools/mutants.toml), and runs
`mutmut run`. mutmut runs each mutant in a forked pytest with -x, only on the tests that reached
the mutated function in the clean run, with a timeout scaled from the clean run's duration.

Lines that only produce text for people are not mutated: `raise SomeError("message")` statements
whose arguments are all messages, and logging calls. A mutant there changes a message, not
behaviour. Reason strings that reach receipts (`raise refuse(CODE, "reason")`) are mutated.

The report lists, per module, the kill rate and every survivor (file:line, the line, the mutant's
line); it is printed and written to build/mutants/report.md (or --report). Survivors listed as
equivalent in tools/mutants.toml are counted apart. `--report-only` reports again from the last
run (after editing that list); `--base HEAD --overlay tests/...` mutates a commit's modules, with
some working-tree files on top, while others are editing the working tree.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "tools" / "mutants.toml"
SEP = "\u01c1"  # mutmut's separator in mangled method names: xǁClassǁmethod

# mutmut's exit-code meaning (mutmut/stats.py, status_by_exit_code), folded into four outcomes.
KILLED_CODES = {1, 3}  # a test failed; 3 is pytest's internal error, which mutmut also counts
TIMEOUT_CODES = {36, -24, 24, 152, 255}  # counted as killed: the mutant hangs or crawls
SURVIVED_CODES = {0}
NO_TESTS_CODES = {5, 33}  # no selected test reaches the function: a survivor too


@dataclass
class Mutant:
    name: str
    status: str  # killed, timeout, survived, no tests, other:<code>
    function: str = ""  # Class.method or function
    line: int = 0
    before: str = ""
    after: str = ""
    equivalent: str | None = None  # the reason, when tools/mutants.toml lists it


@dataclass
class ModuleResult:
    module: str
    mutants: list[Mutant] = field(default_factory=list)
    seconds: float = 0.0
    tests: list[str] = field(default_factory=list)

    def count(self, *statuses: str) -> int:
        return sum(1 for m in self.mutants if m.status in statuses)

    @property
    def survivors(self) -> list[Mutant]:
        return [m for m in self.mutants if m.status not in ("killed", "timeout")]

    @property
    def equivalent(self) -> int:
        return sum(1 for m in self.survivors if m.equivalent)

    @property
    def raw_rate(self) -> float:
        return 100.0 * self.count("killed", "timeout") / len(self.mutants) if self.mutants else 100.0

    @property
    def kill_rate(self) -> float:
        scored = len(self.mutants) - self.equivalent
        return 100.0 * self.count("killed", "timeout") / scored if scored else 100.0


# -- what is not mutated ---------------------------------------------------------------------------

def _is_message(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return True
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp):  # "a " "b" % x, "..." + "..."
        return _is_message(node.left)
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "str"
            and len(node.args) == 1)


def _message_only_raise(node: ast.Raise) -> bool:
    exc = node.exc
    if not (isinstance(exc, ast.Call) and not exc.keywords):
        return False
    func = exc.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    return name[:1].isupper() and all(_is_message(arg) for arg in exc.args)


def _logging_call(node: ast.Expr) -> bool:
    call = node.value
    return (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
            and isinstance(call.func.value, ast.Name) and call.func.value.id in ("log", "logger", "_log", "LOG")
            and call.func.attr in ("debug", "info", "warning", "error", "critical", "exception"))


def message_lines(source: str) -> set[int]:
    """The line numbers of message-only raise statements and logging calls."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Raise) and _message_only_raise(node)) or (
                isinstance(node, ast.Expr) and _logging_call(node)):
            lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return lines


def do_not_mutate_patterns(source: str) -> list[str]:
    """mutmut skips lines matching any of these regexes: one exact-line pattern per message line."""
    text = source.splitlines()
    return sorted({"^" + re.escape(text[n - 1]) + "$" for n in message_lines(source) if text[n - 1].strip()})


# -- running mutmut --------------------------------------------------------------------------------

def _ignore(_dir: str, names: list[str]) -> set[str]:
    return {n for n in names if n in ("__pycache__", ".hypothesis", ".pytest_cache") or n.endswith(".pyc")}


def prepare(module: str, tests: list[str], deselect: list[str], run: dict, work: Path, base: str | None,
            overlay: list[str]) -> None:
    """The scratch tree: the working tree's packages, tests and pyproject.toml, or with `base` those
    of a commit (read with `git archive`, which touches neither the index nor the working tree)
    with the `overlay` files of the working tree on top."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    paths = [*run["packages"], "tests", "pyproject.toml"]
    if base is None:
        for path in paths[:-1]:
            shutil.copytree(ROOT / path, work / path, ignore=_ignore)
        shutil.copy2(ROOT / "pyproject.toml", work / "pyproject.toml")
    else:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", base, "--", *paths],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
        for path in overlay:
            (work / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / path, work / path)
    pyproject = tomllib.loads((work / "pyproject.toml").read_text())
    pyproject.setdefault("tool", {})["mutmut"] = {
        "source_paths": [f"{p}/" for p in run["packages"]],
        "only_mutate": [module],
        "pytest_add_cli_args_test_selection": tests,
        "pytest_add_cli_args": [*run.get("pytest_args", []), *(a for t in deselect for a in ("--deselect", t))],
        "timeout_multiplier": float(run.get("timeout_multiplier", 10.0)),
        "timeout_constant": float(run.get("timeout_constant", 2.0)),
        "do_not_mutate_patterns": do_not_mutate_patterns((work / module).read_text()),
        "use_git_change_detection": False,
    }
    (work / "pyproject.toml").write_text(tomli_w.dumps(pyproject))


def run_mutmut(work: Path, max_children: int, log: Path) -> None:
    with log.open("w") as out:
        proc = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children)],
                              cwd=work, stdout=out, stderr=subprocess.STDOUT,
                              env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"mutmut failed in {work} (exit {proc.returncode}); the end of {log}:\n{tail}")


# -- reading mutmut's results ----------------------------------------------------------------------

def _status(code: int | None) -> str:
    if code in KILLED_CODES:
        return "killed"
    if code in TIMEOUT_CODES:
        return "timeout"
    if code in SURVIVED_CODES:
        return "survived"
    if code in NO_TESTS_CODES:
        return "no tests"
    return f"other:{code}"


def _def_lines(source: str) -> dict[str, int]:
    """mutmut's mangled function names (x_func, xǁClassǁmethod) -> the line of their `def`."""
    found: dict[str, int] = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found[f"x_{node.name}"] = node.lineno
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    found[f"x{SEP}{node.name}{SEP}{item.name}"] = item.lineno
    return found


def collect(module: str, work: Path, equivalents: list[dict]) -> list[Mutant]:
    mutated = work / "mutants" / module
    meta = json.loads(Path(f"{mutated}.meta").read_text())["exit_code_by_key"]
    spans = json.loads(Path(f"{mutated}.spans").read_text())["spans"]
    mutated_lines = mutated.read_text().splitlines()
    original = (work / module).read_text()
    defs = _def_lines(original)
    known = {(e["function"], e["line"].strip(), e["mutant"].strip()): e["why"]
             for e in equivalents if e["module"] == module}
    result = []
    for name, code in meta.items():
        local = name.rsplit(".", 1)[-1]  # xǁClassǁmethod__mutmut_12
        mangled = local.rsplit("__mutmut_", 1)[0]
        function = (mangled[2:] if mangled.startswith("x_") else ".".join(mangled.split(SEP)[1:]))
        mutant = Mutant(name=local, status=_status(code), function=function)
        orig_span, mut_span = spans.get(f"{mangled}__mutmut_orig"), spans.get(local)
        if orig_span and mut_span:
            # a span covers the function node (leading blank lines, decorators, def, body); the
            # mutant's `def` line carries its own name, so it is renamed back before comparing
            orig = mutated_lines[orig_span[0] - 1:orig_span[1]]
            mut = [line.replace(local, f"{mangled}__mutmut_orig")
                   for line in mutated_lines[mut_span[0] - 1:mut_span[1]]]
            def_index = next((i for i, line in enumerate(orig) if f"{mangled}__mutmut_orig(" in line), 0)
            for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=orig, b=mut, autojunk=False).get_opcodes():
                if tag != "equal":
                    mutant.line = defs[mangled] + i1 - def_index if mangled in defs else 0
                    mutant.before = " / ".join(s.strip() for s in orig[i1:i2]) or "(nothing)"
                    mutant.after = " / ".join(s.strip() for s in mut[j1:j2]) or "(deleted)"
                    break
        if mutant.status not in ("killed", "timeout"):
            mutant.equivalent = known.get((mutant.function, mutant.before, mutant.after))
        result.append(mutant)
    result.sort(key=lambda m: (m.line, int(m.name.rsplit("_", 1)[-1])))
    return result


# -- the report ------------------------------------------------------------------------------------

def report(results: list[ModuleResult], started: str) -> str:
    out = [f"# Mutation testing report ({started})", "",
           "| module | mutants | killed | timeouts | survived | no tests | equivalent | kill rate | raw | time |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        out.append(f"| `{r.module}` | {len(r.mutants)} | {r.count('killed')} | {r.count('timeout')} | "
                   f"{r.count('survived')} | {r.count('no tests')} | {r.equivalent} | {r.kill_rate:.1f} % | "
                   f"{r.raw_rate:.1f} % | {r.seconds:.0f} s |")
    out.append("")
    out.append("kill rate = (killed + timeouts) / (mutants - equivalent); raw = (killed + timeouts) / mutants. "
               "A survivor with no tests counts against both.")
    for r in results:
        out += ["", f"## {r.module}", "", "tests: " + ", ".join(r.tests), ""]
        live = [m for m in r.survivors if not m.equivalent]
        if not live:
            out.append("no survivors outside the equivalent list.")
        for m in live:
            out.append(f"- {r.module}:{m.line} {m.function} [{m.status}] `{m.before}`  ->  `{m.after}`")
        eq = [m for m in r.survivors if m.equivalent]
        if eq:
            out += ["", "equivalent (tools/mutants.toml):"]
            out += [f"- {r.module}:{m.line} {m.function} `{m.before}` -> `{m.after}`: {m.equivalent}"
                    for m in eq]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", action="append", help="a module path, e.g. consensus/core.py (repeatable)")
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--workdir", type=Path, default=ROOT / "build" / "mutants")
    parser.add_argument("--report", type=Path, help="where to write the report (default: WORKDIR/report.md)")
    parser.add_argument("--max-children", type=int, help="mutants tested at once (default: from the config)")
    parser.add_argument("--base", metavar="REV", help="mutate a commit's tree (e.g. HEAD) instead of the working "
                        "tree, e.g. while others edit it; --overlay adds working-tree files on top")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: report again from the last run's results in --workdir (after "
                        "editing the equivalent list, say)")
    parser.add_argument("--overlay", action="append", default=[], metavar="PATH",
                        help="with --base: a working-tree file (e.g. a new test) copied over the commit's tree")
    args = parser.parse_args(argv)

    config = tomllib.loads(args.config.read_text())
    run, modules = config["run"], config["modules"]
    selected = args.module or list(modules)
    unknown = [m for m in selected if m not in modules]
    if unknown:
        parser.error(f"not in {args.config.name}: {', '.join(unknown)}; known: {', '.join(modules)}")
    max_children = args.max_children or int(run.get("max_children", os.cpu_count() or 1))
    started = time.strftime("%Y-%m-%d %H:%M %Z") + (f", tree of {args.base}" if args.base else "")
    results: list[ModuleResult] = []
    failed: list[str] = []
    for module in selected:
        def exists(path: str) -> bool:
            if args.base is None or path in args.overlay:
                return (ROOT / path).exists()
            return subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{args.base}:{path}"],
                                  capture_output=True).returncode == 0

        tests = [t for t in modules[module]["tests"] if exists(t)]
        missing = sorted(set(modules[module]["tests"]) - set(tests))
        if missing:
            print(f"{module}: skipping test paths that do not exist: {', '.join(missing)}", flush=True)
        if not tests:
            raise SystemExit(f"{module}: none of its test paths exist")
        work = args.workdir / module.replace("/", "__").removesuffix(".py")
        seconds_file = Path(f"{work}.seconds")
        if args.report_only:
            seconds = float(seconds_file.read_text()) if seconds_file.exists() else 0.0
        else:
            print(f"{module}: mutating, tests {' '.join(tests)} (log: {work}.log)", flush=True)
            t0 = time.monotonic()
            prepare(module, tests, modules[module].get("deselect", []), run, work, args.base, args.overlay)
            try:
                run_mutmut(work, max_children, Path(f"{work}.log"))
            except RuntimeError as exc:  # e.g. a test fails on the unmutated code: say so, go on
                print(f"{module}: NOT TESTED: {exc}", flush=True)
                failed.append(module)
                continue
            seconds = time.monotonic() - t0
            seconds_file.write_text(f"{seconds:.1f}\n")
        result = ModuleResult(module, collect(module, work, config.get("equivalent", [])), seconds, tests)
        print(f"{module}: {len(result.mutants)} mutants, {len(result.survivors)} survivors, "
              f"kill rate {result.kill_rate:.1f} % in {result.seconds:.0f} s", flush=True)
        results.append(result)
    text = report(results, started)
    path = args.report or args.workdir / "report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print()
    print(text)
    print(f"(written to {path})")
    if failed:
        print(f"NOT TESTED (see above): {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
