"""A bounded, closable channel between two stages, with a full-queue policy.

Closing is end-of-stream: consumers drain what is left, then see
``EndOfStream``. Cancelling is abort: every waiter wakes and every later
call raises ``Cancelled``, so no producer blocks forever on a consumer that
went away.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Generic, Iterator, TypeVar

from pipeline.errors import Cancelled, EndOfStream

T = TypeVar("T")


class Policy(enum.Enum):
    """What ``put`` does when the channel is full."""

    BLOCK = "block"  # wait for room: finite sources, never drop
    DROP_OLDEST = "drop_oldest"  # evict the oldest item: live sources, never block


@dataclass(frozen=True, slots=True)
class ChannelStatistics:
    """A snapshot of one channel, for metrics."""

    name: str
    size: int
    capacity: int
    peak: int
    put: int
    dropped: int
    waiting_producers: int
    waiting_consumers: int
    closed: bool


class Channel(Generic[T]):
    """Bounded FIFO joining stages; thread-safe for many producers and consumers.

    Args:
        capacity: Most items held at once (>= 1).
        policy: What a put into a full channel does.
        name: Shown in statistics and errors.
        on_drop: Called with each item evicted by ``Policy.DROP_OLDEST``.
    """

    def __init__(self, capacity: int, *, policy: Policy = Policy.BLOCK, name: str = "channel",
                 on_drop: Callable[[T], None] | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"channel {name!r}: capacity must be >= 1, got {capacity}")
        self.name = name
        self.capacity = capacity
        self.policy = policy
        self._on_drop = on_drop
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._cancelled = False
        self._peak = self._put = self._dropped = 0
        self._waiting_put = self._waiting_get = 0

    def put(self, item: T) -> None:
        """Add an item, waiting for room or evicting the oldest, by policy.

        Raises:
            Cancelled: The channel was cancelled.
            EndOfStream: The channel was already closed (a producer bug).
        """
        dropped = None
        with self._cond:
            while True:
                self._check_cancelled()
                if self._closed:
                    raise EndOfStream(f"put on closed channel {self.name!r}")
                if self._has_room(item):
                    break
                if self.policy is Policy.DROP_OLDEST:
                    dropped = self._evict(item)
                    self._dropped += 1
                    break
                self._waiting_put += 1
                try:
                    self._cond.wait()
                finally:
                    self._waiting_put -= 1
            self._append(item)
            self._put += 1
            self._peak = max(self._peak, self._size())
            self._cond.notify_all()
        if dropped is not None and self._on_drop is not None:
            self._on_drop(dropped)

    def get(self, timeout: float | None = None) -> T:
        """Take the oldest item, waiting for one (at most ``timeout`` seconds).

        Raises:
            EndOfStream: Closed and drained.
            Cancelled: The channel was cancelled.
            TimeoutError: Nothing came within ``timeout``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                self._check_cancelled()
                if self._size():
                    item = self._pop()
                    self._cond.notify_all()
                    return item
                if self._closed:
                    raise EndOfStream(self.name)
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"nothing in {self.name!r} within {timeout} s")
                self._waiting_get += 1
                try:
                    self._cond.wait(left)
                finally:
                    self._waiting_get -= 1

    def __iter__(self) -> Iterator[T]:
        """Yield items until end-of-stream; ``Cancelled`` propagates."""
        while True:
            try:
                yield self.get()
            except EndOfStream:
                return

    def close(self) -> None:
        """Mark end-of-stream; idempotent. Items already queued stay gettable."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def cancel(self) -> None:
        """Abort: drop queued items and wake every waiter; idempotent."""
        with self._cond:
            self._cancelled = True
            self._clear()
            self._cond.notify_all()

    @property
    def cancelled(self) -> bool:
        """Whether ``cancel`` was called."""
        return self._cancelled

    def statistics(self) -> ChannelStatistics:
        """Return a consistent snapshot of sizes and counters."""
        with self._cond:
            return ChannelStatistics(
                name=self.name, size=self._size(), capacity=self.capacity,
                peak=self._peak, put=self._put, dropped=self._dropped,
                waiting_producers=self._waiting_put, waiting_consumers=self._waiting_get,
                closed=self._closed)

    # -- storage: override points (called with the lock held), as queue.Queue's _put/_get
    def _size(self) -> int:
        return len(self._items)

    def _has_room(self, item: T) -> bool:
        return len(self._items) < self.capacity

    def _append(self, item: T) -> None:
        self._items.append(item)

    def _evict(self, item: T) -> T:
        """Remove and return the item that makes room for ``item``."""
        return self._items.popleft()

    def _pop(self) -> T:
        return self._items.popleft()

    def _clear(self) -> None:
        self._items.clear()

    def _check_cancelled(self) -> None:
        if self._cancelled:
            raise Cancelled(self.name)

    def __repr__(self) -> str:
        s = self.statistics()
        return f"Channel({self.name!r}, {s.size}/{s.capacity}, {self.policy.value})"
