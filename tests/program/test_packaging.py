"""setup.cfg packages every module of the program, and nothing of the tests or benches (fast).

The wheel itself is built, installed and run in ``test_wheel.py`` (slow).
"""

import configparser
from pathlib import Path

import setuptools

ROOT = Path(__file__).resolve().parents[2]
TOP = ("pipeline", "stages", "models")


def _setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ROOT / "setup.cfg")
    return cfg


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip() and not line.strip().startswith("#")]


def program_packages() -> set[str]:
    """Every folder of the program that holds Python modules, as a dotted name."""
    return {".".join(path.parent.relative_to(ROOT).parts)
            for top in TOP for path in (ROOT / top).rglob("*.py")
            if "__pycache__" not in path.parts}


def test_every_folder_with_modules_is_a_package_setuptools_finds():
    cfg = _setup_cfg()
    assert cfg["options"]["packages"].strip() == "find:"
    found = set(setuptools.find_packages(str(ROOT), include=_lines(cfg["options.packages.find"]["include"])))
    assert program_packages() <= found, f"left out of the wheel: {sorted(program_packages() - found)}"
    assert found <= program_packages()  # tests/, bench/ and the rest stay out
    assert {"stages.sources", "stages.outputs", "stages.jobs", "stages.cli"} <= found


def test_every_folder_with_modules_has_an_init_so_find_sees_it():
    # find: skips a folder without __init__.py, and so would the first test's set
    missing = [name for name in program_packages()
               if not (ROOT / Path(*name.split(".")) / "__init__.py").is_file()]
    assert not missing, f"no __init__.py, left out of the wheel: {sorted(missing)}"


def test_the_console_scripts_and_extras_users_install():
    cfg = _setup_cfg()
    scripts = dict(line.split(" = ") for line in _lines(cfg["options.entry_points"]["console_scripts"]))
    assert scripts["posestream"] == "run_stream:main"
    assert scripts["posestream-size"] == "run_stream:size_main"
    assert {"mqtt", "cluster", "parquet", "test"} <= set(cfg["options.extras_require"])
    assert "run_stream" in _lines(cfg["options"]["py_modules"])
