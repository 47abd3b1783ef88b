"""``OUT/<source>/live.jsonl``: one stable, append-only file per source to ``tail -F``.

Segments roll and get new names; this file does not. Every record of the
live feed (``stages.publish.feed``: source, frame, pts, wall, people with ids)
is appended to its source's ``live.jsonl`` as one whole line, in order,
across segment rolls, reconnects and restarts of posestream (a new run
appends to the file the last one left). When the next line would take the
file past ``max_bytes`` it rolls: ``live.jsonl`` is renamed to
``live.jsonl.1`` (replacing the older one) and a new ``live.jsonl`` starts,
so a source never holds more than about ``2 * max_bytes`` of it.

How to rotate so that ``tail -F`` neither loses nor repeats a line (GNU
coreutils 9.1, measured with a writer rolling a 4 KB file hundreds of times,
in both of tail's modes: inotify, and polling with ``---disable-inotify
-s S``):

- Every byte must reach the kernel (``write(2)``) before the rename. tail
  keeps reading the old file through its open descriptor only until it
  notices the rename: bytes written to the old file after the rename were
  lost in inotify mode (46 of 600 lines when a 600-byte buffer was flushed
  50 ms after the rename). Lines are therefore written with one unbuffered
  ``os.write`` each (``O_APPEND``), never held in a Python buffer.
- ``fsync`` plays no part: tail reads the page cache. With and without an
  ``fsync`` before the rename every line arrived exactly once (6000 lines,
  93 rolls, inotify; 600 lines, 9 rolls, polling).
- Rename, then create: tail reads the old file to its end, reports the
  name gone or replaced, opens the new file and reads it from its start.
  Creating the new file under a temporary name and renaming it over gains
  nothing. Copying and truncating in place (logrotate's ``copytruncate``)
  loses lines (10 of 600 when polling).
- tail follows a name, so a file must live longer than tail takes to
  notice a roll: milliseconds with inotify (files living ~1 ms lost whole
  files), but ``(--max-unchanged-stats + 1) * --sleep-interval`` when
  polling, 6 s with tail's defaults. At ``--live-log-size 64M`` a file
  lives for hours; only a tiny size and a polling follower can lose a file.
- ``tail -F`` started before the file exists polls (every ``-s``, 1 s by
  default, for good), since its inotify mode needs the file open: with
  files rolling every 0.64 s, 80 of 400 lines arrived. So every source's
  file is created when the run starts, and followers should start after
  that (or pass a short ``-s``).

A killed run may leave a torn last line; the next run ends it with a newline
before appending, so a follower sees one unparsable line rather than two
records glued together.

Writes never block the pipeline: ``offer`` puts the line on a bounded list
and returns; one thread writes every source's file. If the disk stalls so
long that ``MAX_PENDING`` lines wait, newer lines are dropped and counted
(``dropped``), with one warning per stall.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter, deque
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

LIVE_LOG = "live.jsonl"
MAX_PENDING = 4096  # lines waiting for the writer thread, all sources together
CLOSE_TIMEOUT = 0.5  # seconds close() waits for the writer to finish the pending lines


class LiveLogFile:
    """One source's ``live.jsonl``: whole lines appended, rolled by size.

    Not thread-safe: one writer per file (``LiveLogs``' thread).

    Args:
        path: The file, conventionally ``OUT/<source>/live.jsonl``.
        max_bytes: Size past which the next line starts a new file.
        reopened: Opened again after a failed write of this run (a torn
            line it left is ended without a warning: the failure was logged).

    Attributes:
        rolls: How many times the file rolled.

    Raises:
        OSError: The file cannot be opened.
    """

    def __init__(self, path: str | os.PathLike, max_bytes: int, *, reopened: bool = False) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.rolls = 0
        self._fd = -1
        self._size = 0
        self._open()
        self._end_torn_line(quietly=reopened)

    def append(self, line: bytes) -> None:
        """Append ``line`` (one record, ending in a newline), rolling first when due.

        Raises:
            OSError: The write or the roll failed.
        """
        if self._size and self._size + len(line) > self.max_bytes:
            self._roll()
        self._write(line)

    def close(self) -> None:
        """Close the file; idempotent."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._size = os.fstat(self._fd).st_size

    def _end_torn_line(self, quietly: bool = False) -> None:
        if self._size == 0:
            return
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            torn = f.read(1) != b"\n"
        if torn:
            if not quietly:
                log.warning("%s: the last run left a torn line; ending it", self.path)
            self._write(b"\n")

    def _roll(self) -> None:
        # every byte is already written (no user-space buffer): rename, then create
        os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        os.close(self._fd)
        self._fd = -1
        self._open()
        self.rolls += 1

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        self._size += len(data)


class LiveLogs:
    """The live-feed consumer that keeps every source's ``live.jsonl``.

    Args:
        outdir: The run's output folder; source ``name`` writes
            ``outdir/name/live.jsonl``.
        max_bytes: Size at which a source's file rolls (``LiveConfig.live_log_size``).
        sources: Sources whose files are created now, so that followers
            can start before the first record (others' on their first).
        max_pending: Lines that may wait for the writer before new ones are dropped.

    Attributes:
        written: Lines written, per source.
        dropped: Lines dropped (the writer was behind, or the file failed), per source.
    """

    def __init__(self, outdir: str | os.PathLike, max_bytes: int, *, sources: Iterable[str] = (),
                 max_pending: int = MAX_PENDING) -> None:
        self.outdir = Path(outdir)
        self.max_bytes = max_bytes
        self.max_pending = max_pending
        self.written: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self._pending: deque[tuple[str, bytes]] = deque()
        self._files: dict[str, LiveLogFile] = {}
        self._failed: set[str] = set()
        self._wake = threading.Condition()
        self._closing = False
        self._stalled = False
        for source in sources:
            self._open(source)
        self._thread = threading.Thread(target=self._run, name="live-log", daemon=True)
        self._thread.start()

    def path(self, source: str) -> Path:
        """The stable path of ``source``'s live log."""
        return self.outdir / source / LIVE_LOG

    def offer(self, source: str, line: bytes, record: dict) -> None:
        """Queue ``line`` for ``source``'s file; never blocks (see the module docstring)."""
        with self._wake:
            if self._closing:
                return
            if len(self._pending) >= self.max_pending:
                self.dropped[source] += 1
                if not self._stalled:
                    self._stalled = True
                    log.warning("live.jsonl: the disk is behind; dropping records until it catches up")
                return
            self._pending.append((source, line))
            self._wake.notify()

    def close(self) -> None:
        """Write what is pending (waiting at most ``CLOSE_TIMEOUT``), then close the files."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join(CLOSE_TIMEOUT)
        if self._thread.is_alive():
            log.warning("live.jsonl: the disk did not take the last %d records in time",
                        len(self._pending))

    def _run(self) -> None:
        try:
            while True:
                with self._wake:
                    while not self._pending and not self._closing:
                        self._wake.wait()
                    if not self._pending:
                        return
                    source, line = self._pending.popleft()
                    if not self._pending:
                        self._stalled = False
                self._append(source, line)
        finally:
            for file in self._files.values():
                file.close()

    def _open(self, source: str) -> LiveLogFile | None:
        try:
            file = self._files[source] = LiveLogFile(self.path(source), self.max_bytes,
                                                     reopened=source in self._failed)
        except OSError as exc:
            self._failing(source, exc)
            return None
        return file

    def _append(self, source: str, line: bytes) -> None:
        file = self._files.get(source) or self._open(source)
        try:
            if file is None:
                raise OSError("cannot open")
            file.append(line)
        except OSError as exc:  # e.g. a full disk: drop this line, reopen for the next
            self.dropped[source] += 1
            broken = self._files.pop(source, None)
            if broken is not None:
                broken.close()
            self._failing(source, exc)
            return
        self.written[source] += 1
        if source in self._failed:
            self._failed.discard(source)
            log.info("%s: writing again", self.path(source))

    def _failing(self, source: str, exc: OSError) -> None:
        if source not in self._failed:  # one line per failure, not per record
            self._failed.add(source)
            log.error("%s: cannot write (%s); trying again with the next record",
                      self.path(source), exc.strerror or exc)
