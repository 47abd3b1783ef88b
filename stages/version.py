"""The program's version, written in one place: ``[metadata] version`` of setup.cfg.

``version()`` reads it from the source checkout's own setup.cfg when the code
runs from one (an editable install's package metadata keeps the version it
was installed with, and would lag behind a bump until the next ``pip
install -e``), else from the installed package's metadata (a wheel, where no
setup.cfg is shipped), else says ``unknown``.
"""

from __future__ import annotations

import configparser
import functools
from pathlib import Path

DISTRIBUTION = "posestream"
UNKNOWN = "unknown"
SETUP_CFG = Path(__file__).resolve().parents[1] / "setup.cfg"  # beside run_stream.py


@functools.cache
def version() -> str:
    """posestream's version (``X.Y.Z``), or ``unknown`` when nothing says it."""
    return checkout_version(SETUP_CFG) or installed_version() or UNKNOWN


def checkout_version(path: Path) -> str | None:
    """The version in ``path`` (a setup.cfg) if it is posestream's; None otherwise."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, configparser.Error):
        return None
    if parser.get("metadata", "name", fallback=None) != DISTRIBUTION:
        return None
    return parser.get("metadata", "version", fallback=None) or None


def installed_version() -> str | None:
    """The version in the installed package's metadata; None when it is not installed."""
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None
