"""Per-stage counters that the metrics code and the CLI read."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StageStatistics:
    """A snapshot of one stage.

    Attributes:
        name: Stage name.
        workers: Threads running it.
        items: Items it finished.
        busy_seconds: Time spent inside its function, summed over workers.
    """

    name: str
    workers: int
    items: int
    busy_seconds: float

    @property
    def mean_seconds(self) -> float:
        """Mean time per item (0 when none)."""
        return self.busy_seconds / self.items if self.items else 0.0


class StageCounter:
    """Thread-safe item and busy-time counter for one stage."""

    def __init__(self, name: str, workers: int) -> None:
        self.name = name
        self.workers = workers
        self._lock = threading.Lock()
        self._items = 0
        self._busy = 0.0

    def timed(self, fn, item, count: int = 1):
        """Call ``fn(item)``, count ``count`` items and add its duration; return its result."""
        t0 = time.perf_counter()
        out = fn(item)
        dt = time.perf_counter() - t0
        with self._lock:
            self._items += count
            self._busy += dt
        return out

    def snapshot(self) -> StageStatistics:
        """Return the counters as a record."""
        with self._lock:
            return StageStatistics(self.name, self.workers, self._items, self._busy)
