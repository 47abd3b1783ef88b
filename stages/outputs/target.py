"""A path the user names for an output (``--summary-json``), and writing a whole file there.

Whatever is at the path decides how it is written, as a shell's ``>`` would:

- nothing, or a regular file: written under a partial name next to it and
  renamed into place (``stages.outputs.atomic``), so a reader never sees half
  of it; in place only when its folder takes no new file but the file itself
  opens for writing;
- a symbolic link: followed, and its target written as it asks (a dangling
  link's target is created);
- a FIFO or a device (``/dev/null``, a terminal), or an open file named
  through ``/proc/<pid>/fd`` (``/dev/stdout``, whatever it is): opened and
  written in place, never renamed over;
- anything else (a folder, a socket): refused, by ``check_target`` before a
  run starts.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from stages.errors import OutputError
from stages.outputs.atomic import partial_path, remove_quietly

FILE, STREAM = "file", "stream"  # renamed into place / written in place
_STREAMS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device"}
_REFUSED = {stat.S_IFDIR: "a folder", stat.S_IFSOCK: "a socket"}
_NO_NEW_FILE = (errno.EACCES, errno.EPERM, errno.EROFS)


@dataclass(frozen=True, slots=True)
class OutputTarget:
    """Where writing a named path lands.

    Attributes:
        path: The path as named.
        target: The same with every symbolic link followed.
        kind: ``FILE`` (a regular file or a new path) or ``STREAM`` (a FIFO or device).
    """

    path: Path
    target: Path
    kind: str


def node_kind(path: str | os.PathLike) -> str | None:
    """What is at ``path``, in words ("a FIFO", "a folder", "a symbolic link to a
    missing /x"...), links followed; None when nothing is there."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        if os.path.islink(path):
            return f"a symbolic link to a missing {os.path.realpath(path)}"
        return None
    except OSError as exc:
        return f"a path that cannot be followed ({exc.strerror})"
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFREG:
        return "a regular file"
    return _STREAMS.get(kind) or _REFUSED.get(kind) or "not a file"


def output_target(path: str | os.PathLike) -> OutputTarget:
    """How writing ``path`` would go (see the module docstring).

    Raises:
        OutputError: A folder, a socket or another node that takes no file, a
            path whose folder does not exist, or a link that cannot be followed
            (one line naming the path).
    """
    path = Path(path)
    descriptor = _descriptor_link(path)
    target = descriptor or Path(os.path.realpath(path))
    link = os.path.islink(path)
    shown = f"{path} (a link to {target})" if link and not descriptor else path
    try:
        mode = os.stat(target).st_mode
    except (FileNotFoundError, NotADirectoryError):
        if not target.parent.is_dir():
            raise OutputError(f"{shown}: no folder {target.parent if link else path.parent}") from None
        return OutputTarget(path, target, FILE)
    except OSError as exc:
        raise OutputError(f"{shown}: cannot follow ({exc.strerror})") from None
    kind = stat.S_IFMT(mode)
    if kind in _STREAMS or (kind == stat.S_IFREG and descriptor):
        return OutputTarget(path, target, STREAM)
    if kind == stat.S_IFREG:
        return OutputTarget(path, target, FILE)
    what = _REFUSED.get(kind, "not a file")
    raise OutputError(f"{shown}: is {what}; give a file path")


def _descriptor_link(path: Path) -> Path | None:
    """The ``/proc/<pid>/fd/<n>`` link that ``path``'s links pass through (``/dev/stdout``),
    if any: an open file, not a name (a pipe has no name to follow)."""
    current = os.path.abspath(path)
    for _ in range(40):  # the kernel's own limit on a chain of links
        if not os.path.islink(current):
            return None
        folder = os.path.dirname(current)
        real = os.path.realpath(folder)
        if re.fullmatch(r"/proc/\d+/fd", real):
            return Path(real) / os.path.basename(current)
        current = os.path.join(folder, os.readlink(current))
    return None


def check_target(path: str | os.PathLike) -> OutputTarget:
    """``output_target``, and whether it can be written now; writes, truncates
    and opens nothing a reader would see (a FIFO is not opened).

    Raises:
        OutputError: As ``output_target``, or it cannot be written (one line).
    """
    where = output_target(path)
    if where.kind == STREAM:
        if not os.access(where.target, os.W_OK):
            raise OutputError(f"{where.path}: cannot write ({os.strerror(errno.EACCES)})")
        return where
    folder = where.target.parent
    try:  # a real try, not os.access: root, ACLs and read-only mounts all answer truly
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".check-"):
            pass
    except OSError as exc:
        if not (exc.errno in _NO_NEW_FILE and _opens_for_writing(where.target)):
            raise OutputError(f"{where.path}: cannot write in {folder} ({exc.strerror})") from None
    return where


def write_whole(path: str | os.PathLike, data: bytes, *, what: str = "the file") -> Path:
    """Write ``data`` as the whole content of ``path``, as what is there asks
    (see the module docstring); return where it went (links followed).

    Raises:
        OutputError: It cannot be written (one line naming ``path`` and ``what``);
            a regular file there is left as it was, unless it had to be written in place.
    """
    where = output_target(path)
    try:
        if where.kind == STREAM:
            _write_in_place(where.target, data)
        else:
            _write_replacing(where.target, data)
    except OSError as exc:
        raise OutputError(f"{where.path}: cannot write {what} ({exc.strerror or exc})") from None
    return where.target


def _write_replacing(target: Path, data: bytes) -> None:
    """Write-then-rename; in place when the folder takes no new file but ``target`` opens."""
    tmp = partial_path(target)
    try:
        tmp.write_bytes(data)
    except OSError as exc:
        remove_quietly(tmp)
        if exc.errno in _NO_NEW_FILE and _opens_for_writing(target):
            _write_in_place(target, data, truncate=True)
            return
        raise
    try:
        os.replace(tmp, target)
    except OSError:
        remove_quietly(tmp)
        raise


def _write_in_place(target: Path, data: bytes, *, truncate: bool = False) -> None:
    """Open ``target`` for writing (no rename, nothing created) and write all of ``data``.

    One of this process's own descriptors (``/proc/<pid>/fd/<n>``) is written
    through a copy of it, at its offset, after what Python holds for it is flushed.
    """
    own = _own_descriptor(target)
    if own is not None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(AttributeError, OSError, ValueError):
                if stream.fileno() == own:
                    stream.flush()
        fd = os.dup(own)
    else:
        fd = os.open(target, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC | (os.O_TRUNC if truncate else 0))
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _own_descriptor(target: Path) -> int | None:
    match = re.fullmatch(r"/proc/(\d+)/fd/(\d+)", str(target))
    return int(match[2]) if match and int(match[1]) == os.getpid() else None


def _opens_for_writing(path: Path) -> bool:
    """Whether ``path`` is a regular file this process may open for writing (nothing written)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True
