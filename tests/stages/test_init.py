"""The public face: ``import stages`` gives the API, lazily."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import stages

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("numpy", "cv2", "av", "tensorflow", "openvino")

PUBLIC = ["Frame", "InputError", "InputNotFoundError", "JobConfig", "JobSummary", "LiveConfig",
          "ModelError", "OutputError", "Person", "PosestreamError", "PostprocessConfig", "Result",
          "UsageError", "results", "run"]


def _fresh_python(code: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**environ, **env},
                          check=True, capture_output=True, text=True, timeout=60).stdout


def test_all_is_the_public_api():
    assert stages.__all__ == PUBLIC


@pytest.mark.parametrize("name", PUBLIC)
def test_every_name_is_the_object_of_its_home_module(name):
    home = importlib.import_module(stages._HOMES[name])
    assert getattr(stages, name) is getattr(home, name)
    assert name in dir(stages)


def test_every_name_has_a_home_and_the_type_checkers_see_the_same():
    assert sorted(stages._HOMES) == sorted(PUBLIC)
    tree = ast.parse(Path(stages.__file__).read_text(encoding="utf-8"))
    block = next(node for node in tree.body
                 if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING")
    seen = {alias.name: node.module for node in block.body for alias in node.names}
    assert seen == stages._HOMES


def test_star_import_gives_the_public_api():
    namespace: dict = {}
    exec("from stages import *", namespace)
    assert sorted(k for k in namespace if not k.startswith("__")) == sorted(PUBLIC)


def test_an_unknown_name_raises_attribute_error():
    with pytest.raises(AttributeError, match="no_such_thing"):
        stages.no_such_thing  # noqa: B018
    assert not hasattr(stages, "JobSumary")


def test_import_stages_loads_nothing_heavy_and_lists_the_api():
    out = _fresh_python(f"import sys, stages; print(stages.__all__); "
                        f"print([m for m in {HEAVY!r} if m in sys.modules])")
    listed, heavy = out.splitlines()
    assert listed == repr(PUBLIC)
    assert heavy == "[]"


def test_import_stages_pins_blas_to_one_thread_before_numpy_unless_the_user_chose():
    code = "import os, stages; print(os.environ['OPENBLAS_NUM_THREADS'])"
    assert _fresh_python(code).strip() == "1"
    assert _fresh_python(code, OPENBLAS_NUM_THREADS="4").strip() == "4"
