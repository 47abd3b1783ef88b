"""The data-parallel worker pool: one thread per device slot, one model each."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any, Callable

from pipeline.channel import Channel
from pipeline.errors import Cancelled, EndOfStream, PoolInitError
from pipeline.metrics import StageCounter
from pipeline.ordering import Reorderer

Processor = Callable[[Any], Any]
Initializer = Callable[[int], Processor]


class WorkerPool:
    """Runs ``init(slot)`` once in each worker thread, then feeds it items.

    Each worker owns what its initializer returned (a model bound to one
    device slot). The initializer runs on a helper thread the worker waits
    for: a cancel ends the worker at once, without waiting for a model still
    loading (a load cannot be interrupted; the helper ends when it is done). Items are numbered as they are taken; with ``ordered`` a
    collector thread releases results in that order. A failing initializer
    raises ``PoolInitError`` in that worker, which fails the pipeline.

    Args:
        name: Stage name.
        init: Called with the slot number (0..workers-1) in the worker thread;
            returns the function applied to each item, or with ``batch`` > 1
            to each list of items (returning a list of as many results).
        workers: Number of worker threads.
        ordered: Keep input order in the output.
        batch: Most items one call takes: a worker takes what is queued, up to
            this many, once it has its first item.
        batch_timeout: Seconds a worker holding fewer than ``batch`` items may
            wait for more before it runs what it has (0: never waits).
    """

    def __init__(self, name: str, init: Initializer, workers: int, *, ordered: bool = True,
                 batch: int = 1, batch_timeout: float = 0.0) -> None:
        if workers < 1:
            raise ValueError(f"pool {name!r}: workers must be >= 1, got {workers}")
        if batch < 1 or batch_timeout < 0:
            raise ValueError(f"pool {name!r}: batch must be >= 1 and batch_timeout >= 0")
        self.name = name
        self.init = init
        self.workers = workers
        self.ordered = ordered
        self.batch = batch
        self.batch_timeout = batch_timeout
        self.counter = StageCounter(name, workers)
        self._take_lock = threading.Lock()
        self._seq = itertools.count()
        self._live = workers
        self._live_lock = threading.Lock()

    def bodies(self, inp: Channel, out: Channel,
               new_channel: Callable[..., Channel]) -> list[tuple[str, Callable[[], None]]]:
        """Return (thread name, body) for every thread the pool needs.

        ``new_channel(capacity, name=...)`` makes any internal channel, so the
        owner can cancel it with the rest.
        """
        ready = [new_channel(1, name=f"{self.name}[{i}].ready") for i in range(self.workers)]
        if not self.ordered:
            return [(f"{self.name}[{i}]", lambda i=i: self._work(i, inp, out, False, ready[i]))
                    for i in range(self.workers)]
        mid = new_channel(max(out.capacity, self.workers), name=f"{self.name}.done")
        bodies = [(f"{self.name}[{i}]", lambda i=i: self._work(i, inp, mid, True, ready[i]))
                  for i in range(self.workers)]
        bodies.append((f"{self.name}.reorder", lambda: self._reorder(mid, out)))
        return bodies

    def _work(self, slot: int, inp: Channel, out: Channel, numbered: bool, ready: Channel) -> None:
        threading.Thread(target=self._load, args=(slot, ready), name=f"{self.name}[{slot}].load",
                         daemon=True).start()
        loaded = ready.get()  # Cancelled here: the pipeline was cancelled during the load
        if isinstance(loaded, _LoadFailed):
            exc = loaded.error
            if not isinstance(exc, Exception):
                raise exc
            raise PoolInitError(f"{self.name} worker {slot} failed to start: {exc}") from exc
        process = loaded
        while taken := self._take(inp):
            seqs = [seq for seq, _ in taken]
            results = self._run(process, [item for _, item in taken])
            for seq, result in zip(seqs, results):
                out.put((seq, result) if numbered else result)
        self._worker_done(out)

    def _load(self, slot: int, ready: Channel) -> None:
        """Run ``init(slot)`` (on its own thread); hand its outcome to the worker."""
        try:
            loaded = self.init(slot)
        except BaseException as exc:  # noqa: BLE001 - the worker raises it (as PoolInitError)
            loaded = _LoadFailed(exc)
        try:
            ready.put(loaded)
        except Cancelled:  # nobody waits any more: the pipeline was cancelled
            pass

    def _take(self, inp: Channel) -> list[tuple[int, Any]]:
        """Up to ``batch`` numbered items; [] at end of stream."""
        taken: list[tuple[int, Any]] = []
        deadline = 0.0
        try:
            while len(taken) < self.batch:
                wait = None if not taken else max(0.0, deadline - time.monotonic())
                with self._take_lock:
                    item = inp.get(wait)
                    taken.append((next(self._seq), item))
                if len(taken) == 1:
                    deadline = time.monotonic() + self.batch_timeout
        except (TimeoutError, EndOfStream):
            pass
        return taken

    def _run(self, process: Processor, items: list) -> list:
        if self.batch == 1:
            return [self.counter.timed(process, items[0])]
        results = self.counter.timed(process, items, count=len(items))
        if len(results) != len(items):
            raise RuntimeError(f"{self.name}: {len(items)} items in, {len(results)} results out")
        return results

    def _worker_done(self, out: Channel) -> None:
        with self._live_lock:
            self._live -= 1
            if self._live == 0:
                out.close()

    @staticmethod
    def _reorder(mid: Channel, out: Channel) -> None:
        order: Reorderer = Reorderer()
        for seq, result in mid:
            for ready in order.push(seq, result):
                out.put(ready)
        if len(order):
            raise RuntimeError(f"{len(order)} results were never released in order")
        out.close()


class _LoadFailed:
    """What a worker's failed initializer raised, handed to the worker to raise."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error
