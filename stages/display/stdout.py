"""The printed report on stdout, which may go away (``| head -1``) or fill (``> /dev/full``).

``guarded_stdout`` puts a ``GuardedStdout`` in place of ``sys.stdout`` for a
run: the first write or flush that fails (EPIPE: the reader closed the pipe;
ENOSPC, EIO: a full or failing device) ends the printing, and only the
printing: later text is dropped, the error is kept in ``error``, and the run
and its output files go on as if all had been printed. The file descriptor
is then pointed at /dev/null, so the interpreter's own last flush at exit
finds nothing to complain about. ``run_stream`` turns ``error`` into the exit
status (``stdout_status``).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
import threading
from collections.abc import Iterator
from typing import Iterable, TextIO

STATUS_PIPE_CLOSED = 141  # 128 + SIGPIPE: what a shell shows for `yes | head -1`


class GuardedStdout:
    """A text stream that passes everything to ``stream`` until a write fails, then drops it.

    Args:
        stream: The real stdout.

    Attributes:
        error: The first failure of ``stream`` (an ``OSError``), or None.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.error: OSError | None = None
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        """Write ``text``, or drop it once the stream failed; always "all written"."""
        self._guard(self.stream.write, text)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        """Write each of ``lines``."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Flush the stream, unless it failed already."""
        self._guard(self.stream.flush)

    def __getattr__(self, name: str):
        return getattr(self.stream, name)  # isatty, fileno, encoding... for rich and print

    def _guard(self, call, *args) -> None:
        with self._lock:
            if self.error is not None:
                return
            try:
                call(*args)
            except OSError as exc:  # BrokenPipeError included
                self.error = exc
                _point_at_devnull(self.stream)


def _point_at_devnull(stream: TextIO) -> None:
    """Send what ``stream`` still holds, and anything after, to /dev/null."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):
        return  # not a real file (a test's capture): nothing will flush it at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


@contextlib.contextmanager
def guarded_stdout() -> Iterator[GuardedStdout]:
    """``sys.stdout`` guarded for the block (see the module docstring); flushed at its end,
    so a failure of the last buffered text is seen too."""
    guard = GuardedStdout(sys.stdout)
    sys.stdout = guard
    try:
        yield guard
    finally:
        guard.flush()
        if sys.stdout is guard:
            sys.stdout = guard.stream


def stdout_status(code: int, error: OSError | None) -> int:
    """The exit status of a run whose status was ``code`` and whose stdout failed with ``error``.

    The rule: a run's own failure or stop (a non-zero ``code``) keeps its
    status. Otherwise a reader that went away (EPIPE) gives 141, as a Unix
    tool killed by SIGPIPE shows in the shell, quietly; any other failure
    (ENOSPC, EIO) gives 1, after one line on stderr (``stdout_error_line``).
    """
    if error is None or code != 0:
        return code
    return STATUS_PIPE_CLOSED if error.errno == errno.EPIPE else 1


def stdout_error_line(error: OSError | None) -> str | None:
    """The line for stderr about a failed stdout; None when there is nothing to say
    (no failure, or only a reader that went away)."""
    if error is None or error.errno == errno.EPIPE:
        return None
    return (f"stdout: cannot print the report ({error.strerror or error}); "
            "the output files are not affected")
