"""Files that appear under their final name only when complete, and sets of them.

A file (or folder) is written under a hidden partial name next to its final
name, ``.<name>.partial-<pid>-<token>@<host>``: the token is new for every
writer, so two writers of one process never share a partial file, and pid
and host say whose it is (``clean_dead_partials`` sets aside those of dead
processes on this host). A finished partial is a ``Staged`` file; a set of
them is put in place together by ``commit_set``, or kept aside under the
visible partial names (``aside_path``: ``clip.partial.mp4``) by ``set_aside``.

A name too long to take those additions within a file system's 255-byte
limit (over ``LONG_NAME`` bytes) is shortened in its partial and aside forms
to ``short_name``: the start of its stem, ``~``, a hash of the whole name and
its output suffix (``.jsonl``, ``.coco.json``), so the kind of a dead partial
still says whether it is kept, and every form of one name is the same.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import secrets
import shutil
import socket
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from stages.errors import OutputError

log = logging.getLogger(__name__)

_HOST = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40] or "host"
# .<name>.partial-<pid>[-<token>][@<host>], the backups of commit_set (.old-), the joins
# and copies of a resumable run's work (.join-) and its private work folders (.work-)
_PARTIAL = re.compile(r"^\.(?P<name>.+)\.(?P<kind>partial|old|join|work)-(?P<pid>\d+)"
                      r"(?:-(?P<token>[0-9a-f]+))?(?:@(?P<host>[A-Za-z0-9_-]+))?$")
# partial outputs worth keeping after a kill (readable up to where they stopped)
_KEPT_WHEN_KILLED = (".mp4", ".m4v", ".mov", ".mkv", ".jsonl", ".csv", ".openpose", ".coco.json")
NAME_MAX = 255  # bytes of one file name (ext4, xfs, btrfs, tmpfs)
# the most a partial name adds: "." ".partial-" pid (7 digits) "-" token (8) "@" host (40)
LONG_NAME = NAME_MAX - (1 + 9 + 7 + 1 + 8 + 1 + 40)


def short_name(name: str) -> str:
    """``name`` itself, or, when longer than ``LONG_NAME`` bytes (UTF-8), a shorter
    stand-in for its partial and aside forms: as much of the start as fits, ``~``,
    12 hex digits of its SHA-256, and its output suffix (``.coco.json``, ``.jsonl``...)."""
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) <= LONG_NAME:
        return name
    suffix = next((s for s in sorted(_KEPT_WHEN_KILLED, key=len, reverse=True) if name.endswith(s)),
                  Path(name).suffix if len(Path(name).suffix) <= 16 else "")
    tag = "~" + hashlib.sha256(raw).hexdigest()[:12] + suffix
    head = raw[:LONG_NAME - len(tag.encode())].decode("utf-8", "ignore")  # whole characters only
    return head + tag


def partial_path(path: Path, kind: str = "partial") -> Path:
    """A hidden temporary name for ``path``, unique to this writer (pid, random token,
    host); it fits wherever ``path`` fits (a long name is shortened by ``short_name``)."""
    path = Path(path)
    name = short_name(path.name)
    return path.with_name(f".{name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}@{_HOST}")


def aside_path(path: Path) -> Path:
    """The visible name an incomplete ``path`` is kept under: ``.partial`` before the
    last suffix (``clip.mp4`` -> ``clip.partial.mp4``, ``clip.coco.json`` ->
    ``clip.coco.partial.json``); of a long name's ``short_name``, so it fits too."""
    path = Path(path).with_name(short_name(Path(path).name))
    return path.with_name(f"{path.stem}.partial{path.suffix}")


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
    """Delete the file or folder ``path`` if it exists; log, never raise, on other errors."""
    try:
        if Path(path).is_dir() and not Path(path).is_symlink():
            shutil.rmtree(path)
        else:
            Path(path).unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG:  # a name too long was never made
            log.warning("%s: cannot remove temporary file: %s", path, exc)


@dataclass(frozen=True, slots=True)
class Staged:
    """A finished output still under its partial name ``tmp``; ``path`` is its final name."""

    tmp: Path
    path: Path


def commit_set(staged: Sequence[Staged], *, remove_first: Iterable[Path] = (),
               remove_after: Iterable[Path] = ()) -> None:
    """Put every staged output in place as one set.

    ``remove_first`` (e.g. a manifest that vouches for the old set) goes
    before any output is touched. The outputs present at the final names are
    moved to backups, the staged ones renamed in, then the backups and
    ``remove_after`` (e.g. older partial results) removed. If a rename fails,
    the renamed ones are taken out again and the backups restored, so the
    previous set stays whole.

    Raises:
        OutputError: A rename failed; the staged files are removed.
    """
    for path in remove_first:
        remove_quietly(path)
    backups: list[tuple[Path, Path]] = []
    placed: list[Staged] = []
    try:
        for item in staged:
            backup = _move_aside(item.path)
            if backup is not None:
                backups.append((backup, item.path))
            os.replace(item.tmp, item.path)
            placed.append(item)
    except OSError as exc:
        _roll_back(placed, backups)
        for item in staged:
            remove_quietly(item.tmp)
        raise OutputError(f"{exc.filename or staged[0].path}: cannot put the finished outputs "
                          f"in place ({exc.strerror}); the previous ones are kept") from exc
    for backup, _ in backups:
        remove_quietly(backup)
    for path in remove_after:
        remove_quietly(path)


def _move_aside(path: Path) -> Path | None:
    """Move the output at ``path`` to a backup name and return it; None when there is
    none, also when it went just now: another run committing the same outputs at the
    same time (duplicated work, never a failure) moved it to its own backup."""
    if not os.path.lexists(path):
        return None
    backup = partial_path(path, "old")
    try:
        os.replace(path, backup)
    except FileNotFoundError:
        return None  # (a folder that went fails the rename that follows)
    return backup


def _roll_back(placed: list[Staged], backups: list[tuple[Path, Path]]) -> None:
    for item in placed:
        remove_quietly(item.path)
    for backup, path in backups:
        try:
            os.replace(backup, path)
        except OSError as exc:
            log.error("%s: cannot restore the previous output from %s: %s", path, backup, exc)


def set_aside(staged: Sequence[Staged]) -> tuple[Path, ...]:
    """Rename each staged output to its ``aside_path`` (replacing an older one); return
    where they went. Never touches the final names."""
    placed = []
    for item in staged:
        target = aside_path(item.path)
        remove_quietly(target)
        try:
            os.replace(item.tmp, target)
        except OSError as exc:
            log.error("%s: cannot keep the partial output (%s); left at %s",
                      target, exc.strerror, item.tmp)
            continue
        placed.append(target)
    return tuple(placed)


def clean_dead_partials(folder: Path) -> list[Path]:
    """Deal with what killed processes left in ``folder``: their partial videos and
    keypoint files are set aside under ``aside_path`` (a fragmented mp4 or a
    JSON Lines log is readable up to where it stopped); their other partial
    files (manifests, images, summaries), commit backups, unfinished joins and
    copies and private work folders (``stages.outputs.resume``) are removed. Only
    names of processes of this host that no longer run are touched.

    Returns:
        The partial outputs set aside.
    """
    kept = []
    try:
        names = os.listdir(folder)
    except OSError:
        return kept
    for name in names:
        match = _PARTIAL.match(name)
        if match is None or (match["host"] or _HOST) != _HOST or _alive(int(match["pid"])):
            continue
        path = Path(folder) / name
        if match["kind"] != "partial" or not match["name"].endswith(_KEPT_WHEN_KILLED):
            remove_quietly(path)
            continue
        kept += set_aside([Staged(path, Path(folder) / match["name"])])
    if kept:
        log.warning("%s: set aside the partial outputs of a killed run: %s", folder,
                    ", ".join(p.name for p in kept))
    return kept


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    # A killed process stays in the table until its parent reaps it, and
    # kill(pid, 0) still finds it; its files are as dead as after the reaping.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


class AtomicTextFile:
    """A text file written under ``partial_path`` and renamed into place by ``close``.

    Every ``write`` is flushed, so what a crash leaves in the temporary file
    is complete up to the last write. Thread-safe.

    Args:
        path: Final path.
        header: Text written first (e.g. "[" for a streamed JSON array).
        tmp: Where to write it instead of a new ``partial_path`` (a resumable
            run's work folder, ``stages.outputs.resume``).
        resume_at: Continue the file at ``tmp`` from this many bytes (the rest,
            written after its last checkpoint, is cut off); the header is
            not written again.

    Raises:
        OutputError: The file cannot be created (or, resuming, opened).
    """

    def __init__(self, path: Path, *, header: str = "", tmp: Path | None = None,
                 resume_at: int | None = None) -> None:
        self.path = Path(path)
        self.tmp = Path(tmp) if tmp is not None else partial_path(self.path)
        self._lock = threading.Lock()
        try:
            if resume_at is None:
                self._file = open(self.tmp, "w", encoding="utf-8", newline="\n")
                self._file.write(header)
            else:
                os.truncate(self.tmp, resume_at)
                self._file = open(self.tmp, "a", encoding="utf-8", newline="\n")
            self._file.flush()  # a kill before the first frame still leaves the header
        except OSError as exc:
            if resume_at is None:
                remove_quietly(self.tmp)
            raise OutputError(f"{self.path}: cannot create ({exc.strerror})") from exc

    def sync(self) -> int:
        """Flush the file to the disk (``fsync``); return its size in bytes.

        Raises:
            OutputError: Closed already, or the flush failed.
        """
        with self._lock:
            if self._file.closed:
                raise OutputError(f"{self.path}: sync after close")
            try:
                self._file.flush()
                os.fsync(self._file.fileno())
                return os.fstat(self._file.fileno()).st_size
            except OSError as exc:
                raise OutputError(f"{self.path}: cannot write ({exc.strerror})") from exc

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

    def finish(self, *, footer: str = "", keep: bool = True) -> Staged | None:
        """Write ``footer`` and close the file under its partial name; return it as
        ``Staged``, or, without ``keep``, remove it and return None. Idempotent
        (None after the first call).

        Raises:
            OutputError: Finishing failed (the partial file stays, named in the message).
        """
        with self._lock:
            if self._file.closed:
                return None
            try:
                self._file.write(footer)
                self._file.flush()
            except OSError as exc:
                _close_quietly(self._file)
                raise OutputError(f"{self.path}: cannot finish ({exc.strerror}); "
                                  f"partial file left at {self.tmp}") from exc
            finally:
                _close_quietly(self._file)
            if not keep:
                remove_quietly(self.tmp)
                return None
            return Staged(self.tmp, self.path)

    def close(self, *, footer: str = "", keep: bool = True) -> None:
        """Write ``footer`` and rename the file to ``path``; or, without
        ``keep``, remove it and leave any file at ``path`` as it was. Idempotent.

        Raises:
            OutputError: Finishing or renaming failed.
        """
        staged = self.finish(footer=footer, keep=keep)
        if staged is not None:
            commit(staged.tmp, staged.path)


def _close_quietly(file) -> None:
    try:
        file.close()
    except OSError:
        pass


class StreamedTextWriter:
    """Base of the keypoint writers that stream text into one ``AtomicTextFile``.

    A subclass gives the text of each frame (``_text``) and, if the file needs
    them, a ``header`` and ``footer``; the file is kept only when a frame was
    written (otherwise it is removed and any file at ``path`` stays).

    Attributes:
        path: Final file.
        frames_written: Frames written so far.
    """

    header = ""
    footer = ""

    def __init__(self, path: str | os.PathLike, *, tmp: Path | None = None,
                 resume: dict | None = None) -> None:
        """Create the temporary file and write the header.

        Args:
            path: Final file.
            tmp: Where to write it (``AtomicTextFile``); default: a new partial name.
            resume: Continue ``tmp`` where a ``state()`` of an earlier writer of
                it says (a resumed run; see ``stages.outputs.resume``).

        Raises:
            OutputError: The file cannot be created.
        """
        self.path = Path(path)
        self._out = AtomicTextFile(self.path, header=self.header, tmp=tmp,
                                   resume_at=None if resume is None else int(resume["bytes"]))
        self.frames_written = 0 if resume is None else int(resume["frames"])

    def state(self) -> dict:
        """What a writer resuming this file needs, once it is on the disk (``sync``):
        its size and the frames written; subclasses add their counts.

        Raises:
            OutputError: The file cannot be flushed.
        """
        return {"bytes": self._out.sync(), "frames": self.frames_written}

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _text(self, result) -> str:
        raise NotImplementedError

    def write(self, result) -> None:
        """Append one frame's text and flush it.

        Raises:
            OutputError: The writer is closed or the write failed.
        """
        self._out.write(self._text(result))
        self.frames_written += 1

    @property
    def tmp(self) -> Path:
        """The partial file being written."""
        return self._out.tmp

    def finish(self) -> Staged | None:
        """Close the file under its partial name and return it (None, and the file
        removed, when no frame was written); idempotent.

        Raises:
            OutputError: Closing failed (the partial file stays).
        """
        return self._out.finish(footer=self.footer, keep=self.frames_written > 0)

    def close(self) -> None:
        """Close the file and rename it to ``path``; idempotent. With no frame
        written, the file is removed and ``path`` left as it was.

        Raises:
            OutputError: Closing or renaming failed.
        """
        self._out.close(footer=self.footer, keep=self.frames_written > 0)
