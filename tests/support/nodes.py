"""File system nodes that are not regular files, made in a test's own ``tmp_path``:
copies of /dev/null and /dev/full (never the real ones), FIFOs with a reader, sockets."""

from __future__ import annotations

import os
import socket
import stat
import threading
from pathlib import Path

import pytest

NULL, FULL = 3, 7  # minor numbers of /dev/null and /dev/full (major 1)


def char_device(path: Path, minor: int = NULL) -> Path:
    """A character device node at ``path``, a copy of /dev/null (``NULL``) or /dev/full
    (``FULL``); skips the test where making one is not permitted (it needs root)."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    except PermissionError:
        pytest.skip("making a device node needs root (CAP_MKNOD)")
    return path


def unix_socket(path: Path) -> Path:
    """A UNIX socket node at ``path`` (its socket closed again; the node stays)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
    return path


class FifoReader:
    """A FIFO at ``path`` and a thread reading it to its end; a context manager.

    Leaving the block never hangs: a reader still waiting for a writer (the FIFO
    was never opened for writing, e.g. renamed over) is released through a hard
    link kept to the FIFO.

    Attributes:
        path: The FIFO.
        data: What the reader got, once ``wait`` returned.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        os.mkfifo(self.path)
        self._keep = self.path.with_name(f"{self.path.name}.keep")
        os.link(self.path, self._keep)  # the FIFO, whatever happens to its name
        self.data = b""
        self._thread = threading.Thread(target=self._read, name="fifo-reader", daemon=True)

    def __enter__(self) -> FifoReader:
        self._thread.start()
        return self

    def _read(self) -> None:
        with open(self._keep, "rb") as fifo:
            self.data = fifo.read()

    def wait(self, timeout: float = 30.0) -> bytes:
        """What the reader got once the writer closed (b"" if none came within ``timeout``)."""
        self._thread.join(timeout)
        return self.data

    def __exit__(self, *exc_info) -> None:
        if self._thread.is_alive():
            try:  # a reader waiting in open() is let go by a writer that opens and closes
                os.close(os.open(self._keep, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
            self._thread.join(10)
        self._keep.unlink(missing_ok=True)
