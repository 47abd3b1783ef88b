"""Files that appear under their final name only when complete."""

from __future__ import annotations

import logging
import os
import threading
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


class AtomicTextFile:
    """A text file written under ``partial_path`` and renamed into place by ``close``.

    Every ``write`` is flushed, so what a crash leaves in the temporary file
    is complete up to the last write. Thread-safe.

    Args:
        path: Final path.
        header: Text written first (e.g. "[" for a streamed JSON array).

    Raises:
        OutputError: The file cannot be created.
    """

    def __init__(self, path: Path, *, header: str = "") -> None:
        self.path = Path(path)
        self.tmp = partial_path(self.path)
        self._lock = threading.Lock()
        try:
            self._file = open(self.tmp, "w", encoding="utf-8", newline="\n")
            self._file.write(header)
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot create ({exc.strerror})") from exc

    def write(self, text: str) -> None:
        """Append ``text`` and flush it.

        Raises:
            OutputError: Closed already, or the write failed.
        """
        with self._lock:
            if self._file.closed:
                raise OutputError(f"{self.path}: write after close")
            try:
                self._file.write(text)
                self._file.flush()
            except OSError as exc:
                raise OutputError(f"{self.path}: cannot write ({exc.strerror})") from exc

    def close(self, *, footer: str = "", keep: bool = True) -> None:
        """Write ``footer`` and rename the file to ``path``; or, without
        ``keep``, remove it and leave any file at ``path`` as it was. Idempotent.

        Raises:
            OutputError: Finishing or renaming failed.
        """
        with self._lock:
            if self._file.closed:
                return
            try:
                self._file.write(footer)
                self._file.close()
            except OSError as exc:
                raise OutputError(f"{self.path}: cannot finish ({exc.strerror}); "
                                  f"partial file left at {self.tmp}") from exc
            if keep:
                commit(self.tmp, self.path)
            else:
                remove_quietly(self.tmp)
