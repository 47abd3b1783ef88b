"""Files that appear under their final name only when complete."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from stages.errors import OutputError

log = logging.getLogger(__name__)


def partial_path(path: Path) -> Path:
    """The hidden temporary name ``path`` is written under until it is complete."""
    return path.with_name(f".{path.name}.partial-{os.getpid()}")


def commit(tmp: Path, path: Path) -> None:
    """Rename the finished ``tmp`` over ``path`` (atomic on one file system).

    Raises:
        OutputError: The rename failed; ``tmp`` is removed.
    """
    try:
        os.replace(tmp, path)
    except OSError as exc:
        remove_quietly(tmp)
        raise OutputError(f"{path}: cannot rename the finished file ({exc.strerror})") from exc


def remove_quietly(path: Path) -> None:
    """Delete ``path`` if it exists; log, never raise, on other errors."""
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("%s: cannot remove temporary file: %s", path, exc)
