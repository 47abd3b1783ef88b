"""Retention of live segments: by age (``--retain``) and by disk use (``--max-disk``).

What counts: the segments of the run's sources in ``OUTDIR/<source>/``;
for ``max_bytes``, those of every live source folder of ``OUTDIR`` too (one
holding a ``live.jsonl``, which every live run creates: another run's,
running or not), so runs sharing an output folder keep one cap together.
``max_age`` ages only the run's own sources. A segment is every file whose
name is ``<source>-YYYYmmddTHHMMSSZ-<n>`` followed by one of the suffixes
posestream writes (``.mkv``, ``.jsonl``, ``.csv``, ``.coco.json``, the
``.openpose`` folder, and their ``.partial`` names kept after a kill). Disk
use is what the files take on disk (their blocks). The open segments'
partial files (``.<name>.partial-<pid>-...``) and the rolling
``live.jsonl``/``live.jsonl.N`` logs count too. Nothing else in the
folders, and no other folder, is ever looked at or touched. Retention never
leaves ``OUTDIR``: a source folder that is a symbolic link is neither
counted nor touched (a WARNING says so, once), nor is a symbolic link in a
source folder (posestream writes none).

What goes: a closed segment whose newest file is older than ``max_age``,
and, while the total plus the headroom is over ``max_bytes``, the closed
segments oldest first (by the UTC start in their name). The headroom is
what the open segments may still grow by before they close: per source,
the largest segment it closed so far less what its open one holds. So the
cap holds between sweeps too, not only right after one, as long as a
segment is no larger than the largest one seen (a cap smaller than one
segment per source cannot hold: the WARNING below says so). A segment with any file still
under a partial name is open and never deleted. The rotated live logs
(``live.jsonl.1``...) go only when the cap still does not hold after every
closed segment went; ``live.jsonl`` itself never. When the cap cannot be
met (the open segments alone are over it) a WARNING says so, once until it
holds again.

Order within a segment: the video first, then its keypoint files. A
finished segment commits its keypoint files before its video, so at no
time, even after a crash mid-delete, is there a video without its keypoint
files; a crash can leave keypoint files without their video, which the
next sweep deletes.

``Retention`` sweeps in a thread of its own every ``interval`` seconds and
when poked (``poke()``, e.g. after a segment was finished).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from stages.outputs.atomic import aside_path, remove_quietly

log = logging.getLogger(__name__)

_FINAL_SUFFIXES = (".mkv", ".jsonl", ".csv", ".coco.json", ".openpose")
_SUFFIXES = _FINAL_SUFFIXES + tuple(aside_path(Path("x" + s)).name[1:] for s in _FINAL_SUFFIXES)
_VIDEO_SUFFIXES = (".mkv", ".partial.mkv")
_STAMP = r"\d{8}T\d{6}Z"
_PARTIAL = re.compile(r"^\.(?P<name>.+)\.partial-\d+(?:-[0-9a-f]+)?(?:@[A-Za-z0-9_-]+)?$")
_LIVE_LOG = re.compile(r"^live\.jsonl(?:\.(?P<n>\d+))?$")


@dataclass(slots=True)
class Segment:
    """The files of one segment in a source's folder.

    Attributes:
        base: ``<source>-<stamp>-<n>``.
        key: Sort key, oldest first: (stamp, n, base).
        paths: Its closed files (and folders).
        size: Bytes they take on disk.
        newest: The latest modification time among them.
        open: Some file of it is still being written (a partial name).
        source: Its source's name.
        open_size: Bytes its files still being written take.
    """

    base: str
    key: tuple[str, int, str]
    source: str = ""
    paths: list[Path] = field(default_factory=list)
    size: int = 0
    newest: float = 0.0
    open: bool = False
    open_size: int = 0


@dataclass(slots=True)
class Usage:
    """What a scan found in the output folder.

    Attributes:
        segments: Every segment, oldest first.
        rotated: Rotated live logs (``live.jsonl.N``), oldest first.
        total: Bytes of everything counted (segments, partials, live logs).
        linked: Source folders not looked into: symbolic links, which may lead
            out of the output folder.
        live: Bytes of each source's ``live.jsonl`` (the open live log).
    """

    segments: list[Segment]
    rotated: list[tuple[Path, int]]
    total: int
    linked: list[Path] = field(default_factory=list)
    live: dict[str, int] = field(default_factory=dict)


def disk_bytes(path: Path, folders: dict[Path, tuple[int, int]] | None = None) -> int:
    """Bytes ``path`` (a file, or a folder and everything in it) takes on disk; 0 if gone.

    Args:
        path: A file or folder.
        folders: A cache of folder sizes by modification time (an OpenPose
            folder holds a file per frame; a finished one never changes).
    """
    try:
        stat = path.lstat()
        if path.is_dir() and not path.is_symlink():
            cached = folders.get(path) if folders is not None else None
            if cached is not None and cached[0] == stat.st_mtime_ns:
                return cached[1]
            size = sum(disk_bytes(child) for child in path.iterdir())
            if folders is not None:
                folders[path] = (stat.st_mtime_ns, size)
            return size
    except OSError:
        return 0
    blocks = getattr(stat, "st_blocks", None)
    return blocks * 512 if blocks is not None else stat.st_size


def scan(outdir: Path, sources: Iterable[str],
         folders: dict[Path, tuple[int, int]] | None = None) -> Usage:
    """The segments and live logs of ``sources`` under ``outdir`` (``folders``: see
    ``disk_bytes``)."""
    segments: dict[str, Segment] = {}
    rotated: list[tuple[int, Path, int]] = []
    total, linked, live = 0, [], {}
    for source in sources:
        folder = Path(outdir) / source
        if folder.is_symlink():  # it may lead anywhere: retention never leaves outdir
            linked.append(folder)
            continue
        total += _scan_source(folder, source, folders, segments, rotated)
        live[source] = disk_bytes(folder / "live.jsonl")
    ordered = sorted(segments.values(), key=lambda s: s.key)
    return Usage(ordered, [(p, s) for _, p, s in sorted(rotated, key=lambda r: (r[0], str(r[1])))],
                 total, linked, live)


def live_sources(outdir: Path) -> list[str]:
    """The names of the live source folders of ``outdir``: real folders (not
    symbolic links) holding a ``live.jsonl`` file, which every live run creates."""
    try:
        entries = list(os.scandir(outdir))
    except OSError:
        return []
    return sorted(e.name for e in entries
                  if e.is_dir(follow_symlinks=False) and _is_file(Path(e.path) / "live.jsonl"))


def _is_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def _scan_source(folder: Path, source: str, folders: dict[Path, tuple[int, int]] | None,
                 segments: dict[str, Segment], rotated: list[tuple[int, Path, int]]) -> int:
    """Add the segments and rotated live logs of one source's folder; return the bytes counted."""
    pattern = re.compile(rf"^(?P<base>{re.escape(source)}-(?P<stamp>{_STAMP})-(?P<n>\d+))"
                         rf"(?P<suffix>{'|'.join(map(re.escape, _SUFFIXES))})$")
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    total = 0
    for entry in entries:
        if entry.is_symlink():  # not posestream's: it writes none
            continue
        name, path = entry.name, folder / entry.name
        partial = _PARTIAL.match(name)
        match = pattern.match(partial["name"] if partial else name)
        live = _LIVE_LOG.match(name)
        if match is None and live is None:
            continue
        size = disk_bytes(path, folders)
        total += size
        if live is not None:
            if live["n"] is not None:
                rotated.append((-int(live["n"]), path, size))
            continue
        segment = segments.setdefault(f"{source}/{match['base']}", Segment(
            match["base"], (match["stamp"], int(match["n"]), match["base"]), source))
        if partial:
            segment.open = True
            segment.open_size += size
            continue
        segment.paths.append(path)
        segment.size += size
        segment.newest = max(segment.newest, _mtime(path))
    return total


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0


def delete_segment(segment: Segment) -> None:
    """Delete a segment's files: its video first, then its keypoint files."""
    for path in sorted(segment.paths, key=lambda p: not p.name.endswith(_VIDEO_SUFFIXES)):
        remove_quietly(path)


class Retention:
    """Deletes the oldest closed segments of an output folder past an age or a size.

    Args:
        outdir: The output folder.
        sources: The run's source names (their folders are ``outdir/<name>``);
            ``max_bytes`` also counts the other live source folders of ``outdir``
            (``live_sources``).
        max_age: Seconds after which a closed segment is deleted (None: no limit).
        max_bytes: Bytes the counted files may take together (None: no cap).
        interval: Seconds between sweeps of the thread.
        clock: Wall clock, compared with the files' modification times.

    Attributes:
        deleted: Base names of the segments deleted so far.
        freed: Bytes deleted so far.
        used: Bytes counted at the last sweep, after its deletions.
    """

    def __init__(self, outdir: Path, sources: Iterable[str], *, max_age: float | None = None,
                 max_bytes: int | None = None, interval: float = 2.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.outdir = Path(outdir)
        self.sources = tuple(sources)
        self.max_age = max_age
        self.max_bytes = max_bytes
        self.interval = interval
        self._clock = clock
        self.deleted: list[str] = []
        self.freed = 0
        self.used = 0
        self._warned = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sweeping = threading.Lock()
        self._folders: dict[Path, tuple[int, int]] = {}
        self._largest: dict[str, int] = {}  # per source, the largest segment closed so far
        self._live_seen: dict[str, int] = {}  # per source, live.jsonl's bytes at the last sweep
        self._others: set[str] = set()  # other live sources of outdir counted so far
        self._linked: set[Path] = set()  # symlinked source folders warned about

    @property
    def enabled(self) -> bool:
        """Whether there is any limit to keep."""
        return self.max_age is not None or self.max_bytes is not None

    def sweep(self) -> list[str]:
        """Delete what is past a limit now; return the base names deleted."""
        with self._sweeping:
            usage = scan(self.outdir, self._counted(), self._folders)
            self._folders = {p: v for p, v in self._folders.items() if p.exists()}
            self._warn_linked(usage.linked)
            gone = self._expire(usage) + self._shrink(usage)
            self.used = usage.total
            self.deleted += gone
            return gone

    def _expire(self, usage: Usage) -> list[str]:
        if self.max_age is None:
            return []
        now, gone = self._clock(), []
        mine = [s for s in usage.segments if s.source in self.sources]
        for segment in [s for s in mine if not s.open and s.paths]:
            age = now - segment.newest
            if age > self.max_age:
                self._delete(segment, usage, f"older than --retain ({_days(age)})")
                gone.append(segment.base)
        return gone

    def _counted(self) -> tuple[str, ...]:
        """The sources whose folders count: the run's, and for ``max_bytes`` every other
        live source folder of the output folder (another run's), each logged once."""
        if self.max_bytes is None:
            return self.sources
        others = tuple(n for n in live_sources(self.outdir) if n not in self.sources)
        for name in sorted(set(others) - self._others):
            log.info("retention: --max-disk counts %s too (another run's source in this "
                     "output folder)", self.outdir / name)
        self._others.update(others)
        return self.sources + others

    def _warn_linked(self, linked: list[Path]) -> None:
        for folder in sorted(set(linked) - self._linked):
            log.warning("retention: %s is a symbolic link (to %s); its segments are neither "
                        "counted nor deleted (retention never leaves %s)", folder,
                        os.path.realpath(folder), self.outdir)
        self._linked.update(linked)

    def headroom(self, usage: Usage) -> int:
        """Bytes the folder may grow by before the next sweep: per source, the
        largest segment closed so far less its open segment's bytes, and what
        its ``live.jsonl`` grew by since the last sweep (it grows as much again
        by the next; ``live.jsonl`` is never deleted, so its growth must fit)."""
        live = self._live_growth(usage)
        for segment in usage.segments:
            if not segment.open and segment.paths:
                self._largest[segment.source] = max(self._largest.get(segment.source, 0),
                                                    segment.size)
        growing = {}
        for segment in usage.segments:
            if segment.open:
                growing[segment.source] = growing.get(segment.source, 0) + segment.open_size
        return live + sum(max(0, largest - growing.get(source, 0))
                          for source, largest in self._largest.items())

    def _live_growth(self, usage: Usage) -> int:
        grown = sum(max(0, size - self._live_seen.get(source, size))
                    for source, size in usage.live.items())
        self._live_seen = dict(usage.live)
        return grown

    def _shrink(self, usage: Usage) -> list[str]:
        if self.max_bytes is None:
            return []
        gone = []
        headroom = self.headroom(usage)
        for segment in [s for s in usage.segments if not s.open and s.paths]:
            if usage.total + headroom <= self.max_bytes:
                break
            self._delete(segment, usage, f"output folder over --max-disk {_size(self.max_bytes)}")
            gone.append(segment.base)
        while usage.rotated and usage.total > self.max_bytes:
            path, size = usage.rotated.pop(0)
            remove_quietly(path)
            usage.total -= size
            self.freed += size
            log.info("retention: deleted %s (output folder over --max-disk %s)", path,
                     _size(self.max_bytes))
        self._warn(usage)
        return gone

    def _delete(self, segment: Segment, usage: Usage, why: str) -> None:
        delete_segment(segment)
        usage.segments.remove(segment)
        usage.total -= segment.size
        self.freed += segment.size
        log.info("retention: deleted segment %s (%s, %s)", segment.base, _size(segment.size), why)

    def _warn(self, usage: Usage) -> None:
        over = usage.total > self.max_bytes
        if over and not self._warned:
            log.warning("retention: %s still takes %s, over --max-disk %s, with no closed "
                        "segment left to delete (what is being written stays)", self.outdir,
                        _size(usage.total), _size(self.max_bytes))
        self._warned = over

    def poke(self) -> None:
        """Sweep soon (e.g. a segment was just finished); never blocks."""
        self._wake.set()

    def start(self) -> Retention:
        """Sweep once now, then in a thread until ``close``; nothing happens without limits."""
        if self.enabled and self._thread is None:
            self._safe_sweep()
            self._thread = threading.Thread(target=self._loop, name="retention", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop the thread (after the sweep under way, if any); idempotent."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def __enter__(self) -> Retention:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if not self._stop.is_set():
                self._safe_sweep()

    def _safe_sweep(self) -> None:
        try:
            self.sweep()
        except OSError as exc:  # a folder that vanished, permissions: try again later
            log.warning("retention: sweep of %s failed: %s", self.outdir, exc)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _days(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds:.0f} s"
