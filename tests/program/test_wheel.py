"""Installing for use: the wheel built from the checkout, in a new virtual environment (slow).

``scripts/install.sh`` builds the wheel from this checkout, makes a new virtual
environment and installs the wheel and its dependencies there, from the
package index or pip's cache (no test extras). Then, from a folder outside
the checkout, with a model cache of its own (so the model is fetched on the
first run, as a new user's is): no test package is importable, the program
is the installed one, ``posestream --version`` says the checkout's version,
and a photo with a person in it is processed.

It takes minutes: the dependencies (TensorFlow, OpenVINO, ...) are installed
for real, from the package index or pip's cache, and removed after (42,000
files): 3.5-4 minutes in all on the 2-core machine (2026-12-07).
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from stages.outputs.keypoint_log import read_keypoint_log
from stages.version import checkout_version
from tests.program.test_packaging import ROOT, program_packages

pytestmark = pytest.mark.slow

TEST_PACKAGES = ("pytest", "pandas", "pycocotools", "dask", "distributed", "paho", "mkdocs")
INSTALL = ROOT / "scripts" / "install.sh"


def _environment(tmp: Path) -> dict:
    """This environment less anything that points into the checkout or its .venv."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "POSESTREAM_CACHE")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not p.startswith(str(ROOT)))
    env["POSESTREAM_CACHE"] = str(tmp / "model-cache")  # empty: the first run fetches the model
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(virtual environment, folder outside the checkout, its environment, the wheel)."""
    tmp = tmp_path_factory.mktemp("installed")
    env = {**_environment(tmp), "PYTHON": sys.executable}  # a venv made from a venv's Python is bare
    done = subprocess.run(["bash", str(INSTALL), "-w", str(tmp / "dist"), str(tmp / "venv")],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"posestream:      {tmp / 'venv' / 'bin' / 'posestream'}" in done.stdout
    [wheel] = (tmp / "dist").glob("posestream-*-py3-none-any.whl")
    yield tmp / "venv", tmp, _environment(tmp), wheel
    shutil.rmtree(tmp / "venv", ignore_errors=True)  # about 2.5 GB; pytest keeps its last runs' folders


def _python(installed, code: str) -> str:
    venv, tmp, env, _ = installed
    done = subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_wheel_holds_every_module_and_no_tests(installed):
    *_, wheel = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {n for n in names if n.endswith(".py")}
    source = {str(p.relative_to(ROOT)) for top in ("pipeline", "stages", "models")
              for p in (ROOT / top).rglob("*.py") if "__pycache__" not in p.parts}
    assert source | {"run_stream.py"} == modules
    assert {n.split("/")[0] for n in names} - {"pipeline", "stages", "models", "run_stream.py"} == {
        wheel.name.split("-py3")[0] + ".dist-info"}
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "posestream = run_stream:main" in text and "posestream-size = run_stream:size_main" in text
    for package in program_packages():  # stages.sources, stages.outputs, ...
        assert f"{package.replace('.', '/')}/__init__.py" in names


def test_no_test_package_is_importable_and_the_program_is_the_installed_one(installed):
    venv = installed[0]
    found = json.loads(_python(installed, "import importlib.util, json, stages, run_stream; print(json.dumps("
                                          f"[[m for m in {TEST_PACKAGES!r} if importlib.util.find_spec(m)], "
                                          "stages.__file__, run_stream.__file__]))"))
    assert found[0] == []
    for path in found[1:]:
        assert Path(path).is_relative_to(venv) and not Path(path).is_relative_to(ROOT / "stages")


def test_version_is_the_checkouts(installed):
    venv, tmp, env, _ = installed
    for program in ("posestream", "posestream-size"):
        done = subprocess.run([str(venv / "bin" / program), "--version"], cwd=tmp, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"{program} {checkout_version(ROOT / 'setup.cfg')}\n"


def test_a_photo_is_processed_with_the_model_fetched_on_the_first_run(installed):
    venv, tmp, env, _ = installed
    photo = tmp / "photo.png"
    cv2.imwrite(str(photo), cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    done = subprocess.run([str(venv / "bin" / "posestream"), "photo.png", "-o", "OUT"], cwd=tmp,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert (tmp / "model-cache" / "mobilenet_thin" / "graph_opt.pb").is_file()  # fetched now
    [record] = read_keypoint_log(tmp / "OUT" / "photo.jsonl")
    [person] = record["people"]
    nose = person["keypoints"][0]
    assert nose[2] > 0.1 and 190 < nose[0] < 260 and 90 < nose[1] < 160  # her face
    drawn = cv2.imread(str(tmp / "OUT" / "photo.png"))
    assert drawn.shape == (512, 512, 3)
    assert np.abs(drawn.astype(int) - cv2.imread(str(photo)).astype(int)).sum() > 0  # a skeleton
