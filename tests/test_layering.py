"""Dependencies point one way: run_stream -> stages -> models -> pipeline.

``pipeline/`` knows nothing of pose, codecs or the project's other packages;
``models/`` never imports ``stages/`` (the error types they share live in
``pipeline.errors``, the network size in ``models.resolution``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"pipeline": {"stages", "models", "run_stream"}, "models": {"stages", "run_stream"}}


def imported_packages(path: Path) -> set[str]:
    """The top-level names of every module ``path`` imports, at any depth of its code."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_the_layers_above_it(package):
    wrong = {f"{path.relative_to(ROOT)} imports {', '.join(sorted(found))}"
             for path in sorted((ROOT / package).rglob("*.py"))
             if (found := imported_packages(path) & FORBIDDEN[package])}
    assert not wrong, "; ".join(sorted(wrong))


def test_the_scan_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from stages.errors import InputError\n    import models.fetch\n")
    assert imported_packages(module) == {"stages", "models"}


def test_stages_errors_are_the_pipelines_types():
    from pipeline import errors as low
    from stages import errors as high

    assert high.InputError is low.InputError and high.UsageError is low.UsageError


# Inside stages/: a role may import only the roles below it (and itself). The core
# modules (settings, options, values, frames, errors, version) are the bottom; api and cli the top.
RANKS = {"core": 0, "sources": 1, "pose": 1, "outputs": 2, "recording": 3, "publish": 3,
         "serve": 4, "display": 4, "jobs": 5, "cli": 6, "api": 6}
CORE = {"settings", "options", "values", "frames", "errors", "version"}


def stages_modules() -> dict[str, Path]:
    """Every module of stages/, models/ and pipeline/ by dotted name."""
    found = {}
    for package in ("stages", "models", "pipeline"):
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def module_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports, anywhere in its code (functions and
    ``TYPE_CHECKING`` blocks included), by dotted name."""
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def role(name: str) -> str:
    parts = name.split(".")
    if len(parts) == 2 and parts[1] in CORE:
        return "core"
    return parts[1] if len(parts) > 1 else "init"


def test_a_role_of_stages_never_imports_a_higher_or_sibling_role():
    modules = stages_modules()
    wrong = []
    for name, path in modules.items():
        if not name.startswith("stages.") or role(name) == "init":
            continue
        for target in module_imports(name, path, set(modules)):
            if not target.startswith("stages.") or target == "stages":
                continue
            mine, theirs = role(name), role(target)
            if mine != theirs and RANKS[theirs] >= RANKS[mine]:
                wrong.append(f"{name} ({mine}) imports {target} ({theirs})")
    assert not wrong, "; ".join(sorted(wrong))


def test_every_role_of_stages_has_a_rank():
    roles = {role(name) for name in stages_modules() if name.startswith("stages.")}
    assert roles - {"init"} <= set(RANKS), roles - set(RANKS)


def test_no_import_cycle_in_stages_models_or_pipeline():
    modules = stages_modules()
    graph = {name: module_imports(name, path, set(modules)) - {n for n in modules if
                                                                  modules[n].name == "__init__.py"
                                                                  and n != name and name.startswith(n + ".")}
             for name, path in modules.items()}
    cycles = _cycles(graph)
    assert not cycles, "; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_stages_has_at_most_twelve_modules_at_its_top_level():
    top = [p.name for p in (ROOT / "stages").glob("*.py")]
    assert len(top) <= 12, sorted(top)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found
