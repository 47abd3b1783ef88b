"""The version, written once in setup.cfg, read from the checkout, the metadata or neither."""

from __future__ import annotations

import configparser
from importlib import metadata
from pathlib import Path

import pytest

from stages import version as version_module
from stages.version import UNKNOWN, checkout_version, installed_version, version

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh(monkeypatch):
    """``version()`` computed again, as a process would the first time."""
    version.cache_clear()
    yield monkeypatch
    version.cache_clear()


def _setup_cfg(folder: Path, text: str) -> Path:
    path = folder / "setup.cfg"
    path.write_text(text)
    return path


def test_the_version_is_setup_cfgs():
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "setup.cfg")
    written = parser["metadata"]["version"]
    assert written.count(".") == 2 and all(part.isdigit() for part in written.split("."))
    assert version() == checkout_version(ROOT / "setup.cfg") == written


def test_a_checkout_is_read_before_the_installed_metadata(fresh, tmp_path):
    # an editable install keeps the metadata of the day it was installed
    fresh.setattr(version_module, "SETUP_CFG",
                  _setup_cfg(tmp_path, "[metadata]\nname = posestream\nversion = 9.8.7\n"))
    fresh.setattr(version_module, "installed_version", lambda: "0.0.1")
    assert version() == "9.8.7"


def test_without_a_checkout_the_installed_metadata_says_it(fresh, tmp_path):
    fresh.setattr(version_module, "SETUP_CFG", tmp_path / "setup.cfg")  # a wheel ships none
    fresh.setattr(metadata, "version", lambda name: {"posestream": "1.2.3"}[name])
    assert version() == "1.2.3"


def test_neither_gives_unknown(fresh, tmp_path):
    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    fresh.setattr(version_module, "SETUP_CFG", tmp_path / "setup.cfg")
    fresh.setattr(metadata, "version", not_installed)
    assert installed_version() is None
    assert version() == UNKNOWN


@pytest.mark.parametrize("text", [
    "[metadata]\nname = another\nversion = 5.0.0\n",  # some other project's
    "[metadata]\nname = posestream\n",  # no version
    "not an ini file\n",
    "[metadata]\nname = posestream\nversion =\n",
])
def test_a_setup_cfg_that_is_not_posestreams_or_says_no_version_is_not_read(tmp_path, text):
    assert checkout_version(_setup_cfg(tmp_path, text)) is None


def test_a_missing_setup_cfg_is_not_read(tmp_path):
    assert checkout_version(tmp_path / "setup.cfg") is None
