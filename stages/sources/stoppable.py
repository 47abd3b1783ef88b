"""Iteration, stopping and clean-up shared by every source (files, streams, cameras)."""

from __future__ import annotations

import threading
from typing import Iterator

from stages.frames import Frame


class StoppableSource:
    """An iterator of Frames that any thread may stop.

    Subclasses define ``_frames()`` (a generator that releases its resources
    in ``finally``) and may define ``_release()`` (idempotent). ``__next__``
    holds ``_lock`` while the generator runs, so ``close()`` from another
    thread never closes a generator that is executing: it sets ``_stop`` and
    the iterating thread stops at the next frame boundary.
    """

    def __init__(self) -> None:
        self.frames_read = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._gen = self._frames()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        return self

    def __next__(self) -> Frame:
        with self._lock:
            if self._stop.is_set():
                self._shut()
                raise StopIteration
            return next(self._gen)

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._stop.is_set()

    def close(self) -> None:
        """Stop iteration and release the input; safe from any thread, idempotent."""
        self._stop.set()
        if self._lock.acquire(blocking=False):
            try:
                self._shut()
            finally:
                self._lock.release()

    def _shut(self) -> None:
        self._gen.close()
        self._release()

    def _frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    def _release(self) -> None:
        """Release what the generator's ``finally`` does not (nothing by default)."""
