"""A live source's recording, stopped by a failed write and resumed when the disk has room.

A live run outlives a full disk (or any other failure to write a segment):
its recording stops, which is logged once, and the frames go on being
processed (the live log, ``/events`` and MQTT carry them where they can);
``/healthz`` says why while it lasts (``on_change``). Every
``retry_seconds`` the recorder asks ``may_resume``, which says yes once the
folder's file system has ``min_free`` bytes free; the recorder then starts
a new segment, and says ``resumed`` when it writes again (logged once).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

RETRY_SECONDS = 2.0  # between checks for room, while stopped
MIN_FREE_BYTES = 1 << 20  # free space on the folder's file system before recording again


class RecordingPause:
    """Whether one source's recording is stopped, and why. Not thread-safe (the
    recorder's lock guards it).

    Args:
        name: The source's name, in messages.
        folder: The source's folder (its file system's free space is checked).
        retry_seconds: Seconds between checks for room while stopped.
        min_free: Free bytes needed to record again.
        on_change: Called with the reason when recording stops, None when it resumes.
        clock: Monotonic clock (tests pass their own).

    Attributes:
        reason: Why recording is stopped (one line), or None while recording.
    """

    def __init__(self, name: str, folder: Path, *, retry_seconds: float = RETRY_SECONDS,
                 min_free: int = MIN_FREE_BYTES,
                 on_change: Callable[[str | None], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.folder = Path(folder)
        self.retry_seconds = retry_seconds
        self.min_free = min_free
        self.reason: str | None = None
        self._on_change = on_change
        self._clock = clock
        self._next_try = 0.0

    def stop(self, error: BaseException) -> None:
        """Recording failed with ``error``: stop it (logged and reported once per stop)."""
        self._next_try = self._clock() + self.retry_seconds
        if self.reason is not None:
            return
        self.reason = f"recording stopped: {error}"
        log.error("%s: %s; frames are still processed, recording resumes when %s has room",
                  self.name, error, self.folder)
        if self._on_change is not None:
            self._on_change(self.reason)

    def may_resume(self) -> bool:
        """Whether to try recording now: always while recording; while stopped, every
        ``retry_seconds``, once the folder's file system has ``min_free`` bytes free."""
        if self.reason is None:
            return True
        if self._clock() < self._next_try:
            return False
        self._next_try = self._clock() + self.retry_seconds
        return self._free() >= self.min_free

    def resumed(self) -> None:
        """A segment was written again after a stop (logged and reported once)."""
        if self.reason is None:
            return
        self.reason = None
        log.warning("%s: recording again in %s", self.name, self.folder)
        if self._on_change is not None:
            self._on_change(None)

    def _free(self) -> int:
        folder = self.folder
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        try:
            return shutil.disk_usage(folder).free
        except OSError:
            return 0
