"""Putting results of a parallel pool back in submission order."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class Reorderer(Generic[T]):
    """Releases items in sequence order, holding early arrivals.

    Invariant: every held item has a sequence number greater than
    ``next_seq``, and ``push`` releases the longest run starting at
    ``next_seq``; so items leave in exactly the order 0, 1, 2, ... and each
    leaves once. With N workers each holding one unfinished item, at most
    N - 1 + (items queued behind the pool) are ever held.
    """

    def __init__(self, start: int = 0) -> None:
        self.next_seq = start
        self._held: dict[int, T] = {}

    def push(self, seq: int, item: T) -> list[T]:
        """Accept item number ``seq``; return every item now releasable, in order.

        Raises:
            ValueError: ``seq`` was already released or is already held.
        """
        if seq < self.next_seq or seq in self._held:
            raise ValueError(f"sequence number {seq} seen twice")
        self._held[seq] = item
        released = []
        while self.next_seq in self._held:
            released.append(self._held.pop(self.next_seq))
            self.next_seq += 1
        return released

    def __len__(self) -> int:
        """Number of items held back."""
        return len(self._held)
