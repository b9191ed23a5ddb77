"""The dependency directions of ../shared/DESIGN.md, enforced by parsing every import in the package.

tasks imports nothing of ours; harness imports tasks (and itself); only the CLI (harness/cli, the composition root)
reaches trainers and reports, and only lazily (inside a function, so `medbench --help` stays instant and a missing
optional stack fails one command, not all); trainers import tasks, and harness only through the runner's
evaluation API (the eval-during-training callback); reports render the run directory and nothing else: no
statistics, no grading. Nobody imports another folder's private (`_name`) helpers.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tasks", "harness", "trainers", "reports")

#: the only harness modules that trainers/ and reports/ may import
TRAINERS_MAY_USE = {"medbench.harness.run.evaluate"}
REPORTS_MAY_USE = {"medbench.harness.run.rundir", "medbench.harness.run.records",
                   "medbench.tasks.errors"}  # the one error base, which every folder derives from


@dataclass(frozen=True)
class Import:
    file: str  # path relative to the repo root
    line: int
    module: str  # absolute dotted module, e.g. medbench.harness.run.rundir
    names: tuple[str, ...]
    lazy: bool  # inside a function body


def _module_of(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return "medbench." + ".".join(parts)


def _imports(path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))
    here = _module_of(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    module = ".".join(base + ([child.module] if child.module else []))
                else:
                    module = child.module or ""
                names = tuple(a.name for a in child.names)
                if module.startswith("medbench"):
                    # `from medbench.harness import stats` imports a module: record it as one
                    for name in names:
                        sub = f"{module}.{name}"
                        target = sub if _is_module(sub) else module
                        found.append(Import(_rel(path), child.lineno, target, (name,), inner))
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.startswith("medbench"):
                        found.append(Import(_rel(path), child.lineno, alias.name, (), inner))
            visit(child, inner)

    visit(tree, False)
    return found


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _is_module(dotted: str) -> bool:
    parts = dotted.split(".")[1:]
    base = ROOT.joinpath(*parts)
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _all_imports() -> list[Import]:
    out: list[Import] = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            out.extend(_imports(path))
    return out


def _top(module: str) -> str:
    return module.split(".")[1] if module.count(".") >= 1 else ""


def violations(imports: list[Import]) -> list[str]:
    """Every import that breaks a rule, as 'file:line: what -- why'."""
    bad: list[str] = []
    for imp in imports:
        src = imp.file.split("/")[0]
        dst = _top(imp.module)
        where = f"{imp.file}:{imp.line}: {imp.module}"
        if src == "tasks" and dst != "tasks":
            bad.append(f"{where} -- tasks/ imports nothing of ours (graders are pure functions over strings)")
        elif src == "harness":
            in_cli = imp.file.startswith("harness/cli/")
            if dst in ("trainers", "reports"):
                if not in_cli:
                    bad.append(f"{where} -- only the CLI (harness/cli) may reach {dst}/")
                elif not imp.lazy:
                    bad.append(f"{where} -- the CLI imports {dst}/ lazily, inside the command that needs it")
        elif src == "trainers" and dst == "harness" and imp.module not in TRAINERS_MAY_USE:
            bad.append(f"{where} -- trainers/ use harness only through {sorted(TRAINERS_MAY_USE)}")
        elif src == "trainers" and dst == "reports":
            bad.append(f"{where} -- trainers/ never render reports")
        elif src == "reports" and dst not in ("reports",) and imp.module not in REPORTS_MAY_USE:
            bad.append(f"{where} -- reports/ render the run directory ({sorted(REPORTS_MAY_USE)}); "
                       "statistics and grading belong to harness/ and tasks/")
        private = [n for n in imp.names if n.startswith("_") and not n.startswith("__")]
        if private and imp.module.rsplit(".", 1)[0] != _module_of(ROOT / imp.file).rsplit(".", 1)[0]:
            bad.append(f"{where} imports private {private} -- make it public where it lives, or move it")
    return bad


def test_the_package_follows_the_dependency_directions():
    imports = _all_imports()
    assert len(imports) > 50, "the import scan found almost nothing: the scanner is broken"
    bad = violations(imports)
    assert not bad, "dependency rules broken:\n" + "\n".join(bad)


def test_the_checker_catches_each_kind_of_violation():
    """The rules above would pass vacuously if the scanner misread imports: feed it one of each."""
    cases = [
        Import("tasks/graders/x.py", 1, "medbench.harness.run.rundir", ("load_run",), False),
        Import("harness/run/runner.py", 1, "medbench.reports.render", ("render_report",), True),
        Import("harness/cli/bench.py", 1, "medbench.reports.render", ("render_report",), False),
        Import("trainers/sft.py", 1, "medbench.harness.stats.metrics", ("compute_metrics",), True),
        Import("reports/render.py", 1, "medbench.harness.stats.metrics", ("compute_metrics",), True),
        Import("reports/render.py", 1, "medbench.tasks.graders", ("parse_layout",), True),
        Import("trainers/data.py", 1, "medbench.tasks.loaders._io", ("_read_rows",), False),
    ]
    assert len(violations(cases)) == len(cases)
    fine = [
        Import("harness/cli/bench.py", 1, "medbench.reports.render", ("render_report",), True),
        Import("reports/render.py", 1, "medbench.harness.run.rundir", ("load_run",), False),
        Import("trainers/rewards.py", 1, "medbench.tasks.graders", ("grade",), False),
        Import("tasks/loaders/health.py", 1, "medbench.tasks.loaders._io", ("_read_rows",), False),
    ]
    assert violations(fine) == []


def test_the_scanner_resolves_relative_and_module_imports(tmp_path):
    imports = [i for i in _all_imports() if i.file == "harness/run/runner.py"]
    assert any(i.module == "medbench.harness.run.rundir" for i in imports)
