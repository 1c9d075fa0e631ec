"""The architecture, enforced: layers import only downwards and the domain package has no import cycles.

    cli  ->  deployments  ->  flows  ->  tasks  ->  blocks  ->  flywheel
    examples -> flywheel            bench/ and tests/ may import anything

Every import counts, also the ones inside functions (that is where cycles hide), but not imports in
docstrings or under ``if TYPE_CHECKING:``. Each check is also run on a small tree with a planted
violation, so a checker that finds nothing cannot pass for a clean codebase.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# What each top-level package may import from the project (besides third-party packages).
ALLOWED = {
    "flywheel": {"flywheel"},
    "examples": {"flywheel", "examples"},
    "blocks": {"flywheel", "blocks"},
    "tasks": {"flywheel", "blocks", "tasks"},
    "flows": {"flywheel", "blocks", "tasks", "flows"},
    "deployments": {"flywheel", "blocks", "tasks", "flows", "deployments"},
    "cli": {"flywheel", "blocks", "tasks", "flows", "deployments", "examples", "cli"},
}
FORBIDDEN_THIRD_PARTY = {"flywheel": {"prefect", "prefect_dask", "prefect_ray"}}


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def imports(path: Path, module: str) -> set[str]:
    """Absolute names of every module imported anywhere in the file (relative imports resolved)."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if _type_checking_block(node):
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import module`
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return found


def project_modules(root: Path, packages=tuple(ALLOWED)) -> dict[str, Path]:
    out = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")) if (root / pkg).is_dir() else []:
            out[module_name(root, path)] = path
    return out


def layer_violations(root: Path) -> list[str]:
    mods = project_modules(root)
    bad = []
    for mod, path in mods.items():
        layer = mod.split(".")[0]
        names = imports(path, mod)
        for name in sorted(n for n in names if n.rpartition(".")[0] not in names):  # `from a.b import c`: a.b
            top = name.split(".")[0]
            if top in ALLOWED and top not in ALLOWED[layer]:
                bad.append(f"{mod} imports {name} ({layer} may not import {top})")
            if top in FORBIDDEN_THIRD_PARTY.get(layer, ()):
                bad.append(f"{mod} imports {name} ({layer} never imports {top})")
    return bad


def import_cycles(root: Path, package: str = "flywheel") -> list[list[str]]:
    """Strongly connected components (size > 1, or a self-import) of the package's module graph (Tarjan)."""
    mods = project_modules(root, (package,))
    graph = {m: sorted({n for n in imports(p, m) if n in mods and n != m}) for m, p in mods.items()}
    # `from flywheel.core import config` names the package too; only a package's __init__ is that module.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            strongconnect(v)
    return sorted(cycles)


def test_layers_import_only_downwards():
    assert len(project_modules(ROOT)) > 80
    assert layer_violations(ROOT) == []


def test_the_domain_package_has_no_import_cycles():
    assert import_cycles(ROOT) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


CLEAN = {
    "flywheel/__init__.py": "",
    "flywheel/core/__init__.py": "",
    "flywheel/core/errors.py": "class FlywheelError(Exception):\n    pass\n",
    "flywheel/stage/__init__.py": "",
    "flywheel/stage/logic.py": "from flywheel.core.errors import FlywheelError\nimport numpy\n",
    "tasks/__init__.py": "",
    "tasks/stage.py": "from prefect import task\nfrom flywheel.stage import logic\n",
    "flows/__init__.py": "",
    "flows/stage.py": "from prefect import flow\nfrom tasks.stage import logic\n",
    "cli/__init__.py": "",
    "cli/main.py": "from flows.stage import flow\nfrom examples import data\n",
}


def test_a_clean_tree_passes_both_checks(tmp_path):
    root = _tree(tmp_path, CLEAN)
    assert layer_violations(root) == [] and import_cycles(root) == []


@pytest.mark.parametrize(
    "path,text,expected",
    [
        (
            "flywheel/stage/logic.py",
            "def f():\n    from prefect import flow\n",
            "flywheel.stage.logic imports prefect (flywheel never imports prefect)",
        ),
        (
            "flywheel/stage/logic.py",
            "def f():\n    from examples.fraud import generate\n",
            "flywheel.stage.logic imports examples.fraud (flywheel may not import examples)",
        ),
        (
            "tasks/stage.py",
            "from flows.stage import flow\n",
            "tasks.stage imports flows.stage (tasks may not import flows)",
        ),
        ("flows/stage.py", "import cli.main\n", "flows.stage imports cli.main (flows may not import cli)"),
        (
            "examples/data.py",
            "from tasks import stage\n",
            "examples.data imports tasks (examples may not import tasks)",
        ),
        (
            "flywheel/stage/logic.py",
            "from .. import core\nfrom ...tasks import stage\n",
            "flywheel.stage.logic imports tasks (flywheel may not import tasks)",
        ),
    ],
)
def test_a_planted_layer_violation_is_reported(tmp_path, path, text, expected):
    root = _tree(tmp_path, {**CLEAN, path: text})
    assert expected in layer_violations(root)


def test_an_import_inside_a_function_that_closes_a_cycle_is_reported(tmp_path):
    root = _tree(
        tmp_path,
        {
            **CLEAN,
            "flywheel/core/errors.py": "def f():\n    from flywheel.stage.logic import g\n",
            "flywheel/stage/other.py": "from flywheel.stage import logic\n",
        },
    )
    assert import_cycles(root) == [["flywheel.core.errors", "flywheel.stage.logic"]]


def test_docstrings_and_type_checking_imports_do_not_count(tmp_path):
    root = _tree(
        tmp_path,
        {
            **CLEAN,
            "flywheel/core/errors.py": (
                '"""Use it so:\n\n    from flywheel.stage.logic import g\n"""\nfrom typing import TYPE_CHECKING\n'
                "if TYPE_CHECKING:\n    from flywheel.stage.logic import g\n"
            ),
        },
    )
    assert import_cycles(root) == [] and layer_violations(root) == []


SUPPORT_MODULES = {"tasks.common", "tasks.events"}  # helpers the tasks share: the home, logging, event sinks


def test_flows_hold_only_flows_and_tasks_only_tasks():
    """Every public function defined in flows/ is a Prefect flow, and every one in tasks/ a Prefect task."""
    import importlib
    import inspect

    from prefect import Flow, Task

    wrong = []
    for layer, kind in (("flows", Flow), ("tasks", Task)):
        for mod_name in sorted(m for m in project_modules(ROOT, (layer,)) if m not in SUPPORT_MODULES):
            mod = importlib.import_module(mod_name)
            for name, obj in vars(mod).items():
                if name.startswith("_") or getattr(obj, "__module__", None) != mod_name:
                    continue  # private helpers, and names imported from elsewhere
                if inspect.isfunction(obj) or inspect.isclass(obj) or isinstance(obj, (Flow, Task)):
                    if not isinstance(obj, kind):
                        wrong.append(f"{mod_name}.{name} is not a {kind.__name__}")
    assert wrong == []
