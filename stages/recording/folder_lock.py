"""One writer per live source folder: ``OUTDIR/<source>/.posestream.lock``.

A live run holds an exclusive ``flock`` on the lock file of each of its
sources' folders for its whole life, and writes its pid and host name into
it. A second run for the same folder is refused at start with one line
naming them, instead of writing the same segment names over the first one's.
The file is removed when the run ends. The kernel drops the lock when its
process ends, however it ends (SIGKILL included), so a lock file left by a
killed run blocks nothing: the next run takes it over. A run that locked a
file some other run removed meanwhile lets it go and tries again, so two
runs never hold two different files of one name.

The lock is advisory: it binds posestream runs, not other programs. On a
network file system whose ``flock`` is local to each host it does not see a
run on another host.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from collections.abc import Iterable
from pathlib import Path

from stages.errors import InputError

LOCK_NAME = ".posestream.lock"


def lock_path(folder: Path) -> Path:
    """The lock file of a source's folder."""
    return Path(folder) / LOCK_NAME


def holder(folder: Path) -> str | None:
    """Who holds ``folder``'s lock now (``pid 123 on host cam-box``), or None when no
    run does. Takes no lock and creates nothing."""
    try:
        fd = os.open(lock_path(folder), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None  # no lock file (or none readable): no run holds it
    try:
        if _try_lock(fd, fcntl.LOCK_SH):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        return _describe(fd)
    finally:
        os.close(fd)


def check_free(folders: Iterable[Path]) -> None:
    """Refuse at once when another run holds any of ``folders``.

    Raises:
        InputError: One line naming the folder and the run that writes it.
    """
    for folder in folders:
        who = holder(folder)
        if who is not None:
            raise _busy(folder, who)


class FolderLocks:
    """Holds the lock of every folder given while open (a context manager).

    Args:
        folders: The source folders (created if missing).

    Raises:
        InputError: On ``__enter__``, when another run holds one of them (the
            locks taken so far are let go).
    """

    def __init__(self, folders: Iterable[Path]) -> None:
        self.folders = [Path(f) for f in folders]
        self._fds: list[int] = []

    def __enter__(self) -> FolderLocks:
        try:
            for folder in self.folders:
                self._fds.append(_acquire(folder))
        except BaseException:
            self.release()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def release(self) -> None:
        """Remove the lock files and let every lock go; idempotent."""
        while self._fds:
            folder, fd = self.folders[len(self._fds) - 1], self._fds.pop()
            try:
                if _is_file_at(fd, lock_path(folder)):
                    os.unlink(lock_path(folder))  # while still held: see the module's docstring
            except OSError:
                pass  # a file left behind blocks nothing
            finally:
                os.close(fd)  # closing the last descriptor drops the flock


def _acquire(folder: Path) -> int:
    """Lock ``folder``'s lock file and write this run's pid and host into it."""
    while True:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path(folder), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise InputError(f"{folder}: cannot create the source's folder lock "
                             f"({exc.strerror})") from None
        if not _try_lock(fd, fcntl.LOCK_EX):
            who = _describe(fd)
            os.close(fd)
            raise _busy(folder, who)
        if _is_file_at(fd, lock_path(folder)):
            break
        os.close(fd)  # its holder removed it as we locked it: lock the file there now
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
    return fd


def _is_file_at(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is the one named ``path`` (not removed nor replaced)."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _try_lock(fd: int, kind: int) -> bool:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _describe(fd: int) -> str:
    """``pid N on host H`` from a held lock file (written right after it was taken)."""
    words = os.pread(fd, 512, 0).decode("utf-8", "replace").split()
    if len(words) >= 2 and words[0].isdigit():
        return f"pid {words[0]} on host {words[1]}"
    return "pid unknown, it is just starting"


def _busy(folder: Path, who: str) -> InputError:
    return InputError(f"{folder}: another posestream run ({who}) is writing this source's "
                      f"folder; stop it, or give this run another --outdir or source name")
