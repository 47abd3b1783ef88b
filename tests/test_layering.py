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
