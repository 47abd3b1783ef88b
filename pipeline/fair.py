"""A channel shared by several producers (e.g. cameras), fair between them."""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Callable, Hashable, TypeVar

from pipeline.channel import Channel, Policy

T = TypeVar("T")


class FairChannel(Channel[T]):
    """Holds up to ``capacity`` items per key and hands them out round-robin.

    With ``Policy.DROP_OLDEST`` a full key evicts its own oldest item, so a
    fast source never pushes out a slow one's frames; with ``Policy.BLOCK``
    only the producer of a full key waits. Statistics count all keys.

    Args:
        capacity: Most items held per key.
        key: Maps an item to its producer (e.g. a frame to its source).
        policy, name, on_drop: As for ``Channel``.
    """

    def __init__(self, capacity: int, *, key: Callable[[T], Hashable], policy: Policy = Policy.BLOCK,
                 name: str = "channel", on_drop: Callable[[T], None] | None = None) -> None:
        super().__init__(capacity, policy=policy, name=name, on_drop=on_drop)
        self._key = key
        self._queues: OrderedDict[Hashable, deque[T]] = OrderedDict()
        self._count = 0

    def _size(self) -> int:
        return self._count

    def _has_room(self, item: T) -> bool:
        return len(self._queues.get(self._key(item), ())) < self.capacity

    def _append(self, item: T) -> None:
        self._queues.setdefault(self._key(item), deque()).append(item)
        self._count += 1

    def _evict(self, item: T) -> T:
        self._count -= 1
        return self._queues[self._key(item)].popleft()

    def _pop(self) -> T:
        # the first key with items is served, then goes to the back of the line
        for k, q in self._queues.items():
            if q:
                self._queues.move_to_end(k)
                self._count -= 1
                return q.popleft()
        raise AssertionError("_pop on an empty FairChannel")

    def _clear(self) -> None:
        self._queues.clear()
        self._count = 0
