"""A linear streaming pipeline: a source, map stages and pools on threads.

Stages are joined by bounded channels. The caller iterates the pipeline to
receive the last stage's outputs. The first stage that raises cancels every
channel, so its siblings stop at once, and its exception is re-raised to the
caller with the stage's name in a note. Closing is idempotent.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from pipeline.channel import Channel, ChannelStatistics, Policy
from pipeline.fair import FairChannel
from pipeline.errors import Cancelled, PipelineError
from pipeline.metrics import StageCounter, StageStatistics
from pipeline.pool import Initializer, WorkerPool

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PipelineStatistics:
    """Snapshot of every stage and channel, upstream first."""

    stages: tuple[StageStatistics, ...]
    channels: tuple[ChannelStatistics, ...]

    def stage_rows(self, elapsed: float) -> list[dict]:
        """Per stage, JSON-ready: items, busy seconds and % (of its workers' time over
        ``elapsed`` seconds), mean ms, and its output queue (size, capacity, peak, dropped)."""
        queues = {c.name: c for c in self.channels}
        rows = []
        for st in self.stages:
            q = queues.get(f"{st.name}.out")
            rows.append({"stage": st.name, "workers": st.workers, "items": st.items,
                         "busy_seconds": round(st.busy_seconds, 3),
                         "busy_pct": round(100 * st.busy_seconds / max(elapsed * st.workers, 1e-9), 1),
                         "mean_ms": round(1000 * st.mean_seconds, 2),
                         "queue": q.size if q else 0, "queue_capacity": q.capacity if q else 0,
                         "queue_peak": q.peak if q else 0, "dropped": q.dropped if q else 0})
        return rows


@dataclass(slots=True)
class _Step:
    name: str
    counter: StageCounter
    bodies: Callable[[Channel | None, Channel, Callable[..., Channel]],
                     list[tuple[str, Callable[[], None]]]]
    queue_size: int
    policy: Policy
    on_drop: Callable[[Any], None] | None = None
    key: Callable[[Any], Any] | None = None


class Pipeline:
    """Build with ``source``/``map``/``pool``, then iterate for the outputs.

    Args:
        queue_size: Default capacity of every channel.
        name: Used in thread names and logs.
    """

    def __init__(self, *, queue_size: int = 8, name: str = "pipeline") -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.name = name
        self.queue_size = queue_size
        self._steps: list[_Step] = []
        self._channels: list[Channel] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._started = False
        self._stopping = threading.Event()
        self._source_stops: list[Callable[[], None]] = []
        self._source_counter: StageCounter | None = None

    # -- building -------------------------------------------------------
    def source(self, name: str, items: Iterable, *, stop: Callable[[], None] | None = None,
               policy: Policy = Policy.BLOCK, queue_size: int | None = None,
               on_drop: Callable[[Any], None] | None = None) -> Pipeline:
        """Set the source: an iterable drained on its own thread.

        Args:
            name: Stage name.
            items: Iterated once; each item goes downstream.
            stop: Called by ``stop()`` to make a blocked source return early.
            policy: Policy of the channel the source feeds (DROP_OLDEST for live).
            queue_size: Capacity of that channel.
            on_drop: Called with each item the policy evicts.
        """
        return self.sources(name, [(items, stop)], policy=policy, queue_size=queue_size,
                            on_drop=on_drop)

    def sources(self, name: str, feeds: list[tuple[Iterable, Callable[[], None] | None]], *,
                key: Callable[[Any], Any] | None = None, policy: Policy = Policy.BLOCK,
                queue_size: int | None = None,
                on_drop: Callable[[Any], None] | None = None) -> Pipeline:
        """Set several sources, one thread each, merged into one stream.

        With ``key`` (item -> its source) the merge is a ``FairChannel``: each
        source has its own ``queue_size`` and policy, and items are taken
        round-robin, so one fast or stalled source never starves the others.

        Args:
            name: Stage name.
            feeds: (iterable, stop callback or None) per source.
            key, policy, queue_size, on_drop: See above and ``source``.
        """
        if self._steps:
            raise PipelineError("the source must be the first step")
        if not feeds:
            raise PipelineError("no source given")
        counter = self._source_counter = StageCounter(name, len(feeds))
        self._source_stops = [stop for _, stop in feeds if stop is not None]
        live = [len(feeds)]
        lock = threading.Lock()

        def bodies(_inp, out, _new):
            return [(f"{name}[{i}]" if len(feeds) > 1 else name,
                     lambda items=items: self._run_source(items, out, counter, live, lock))
                    for i, (items, _) in enumerate(feeds)]

        self._add(_Step(name, counter, bodies, queue_size or self.queue_size, policy, on_drop, key))
        return self

    def map(self, name: str, fn: Callable[[Any], Any], *, queue_size: int | None = None,
            policy: Policy = Policy.BLOCK, key: Callable[[Any], Any] | None = None,
            on_drop: Callable[[Any], None] | None = None) -> Pipeline:
        """Append a one-thread stage applying ``fn`` to every item.

        ``policy``, ``key`` and ``on_drop`` set up its output channel as for
        ``sources``: e.g. DROP_OLDEST right before a slow pool, so the pool
        always takes the freshest frame of each live source.
        """
        counter = StageCounter(name, 1)
        body = lambda inp, out, _new: [(name, lambda: self._run_map(fn, inp, out, counter))]  # noqa: E731
        self._add(_Step(name, counter, body, queue_size or self.queue_size, policy, on_drop, key))
        return self

    def pool(self, name: str, init: Initializer, *, workers: int, ordered: bool = True,
             batch: int = 1, batch_timeout: float = 0.0, queue_size: int | None = None) -> Pipeline:
        """Append a data-parallel stage; see ``WorkerPool``."""
        pool = WorkerPool(name, init, workers, ordered=ordered, batch=batch,
                          batch_timeout=batch_timeout)
        self._add(_Step(name, pool.counter, pool.bodies, queue_size or self.queue_size, Policy.BLOCK))
        return self

    def _add(self, step: _Step) -> None:
        if self._started:
            raise PipelineError("cannot add a stage to a started pipeline")
        if self._steps == [] and step.counter is not self._source_counter:
            raise PipelineError(f"stage {step.name!r} added before the source")
        self._steps.append(step)

    # -- running --------------------------------------------------------
    def start(self) -> None:
        """Start every thread; idempotent."""
        with self._lock:
            if self._started:
                return
            if not self._steps:
                raise PipelineError("pipeline has no source")
            self._started = True
            inp: Channel | None = None
            for step in self._steps:
                out = self._new_channel(step.queue_size, policy=step.policy, key=step.key,
                                        name=f"{step.name}.out", on_drop=step.on_drop)
                for tname, body in step.bodies(inp, out, self._new_channel):
                    self._threads.append(threading.Thread(
                        target=self._guard, args=(tname, body), name=f"{self.name}:{tname}",
                        daemon=True))
                inp = out
            self._output = inp
        for t in self._threads:
            t.start()

    def _new_channel(self, capacity: int, *, key: Callable[[Any], Any] | None = None,
                     **kwargs: Any) -> Channel:
        ch: Channel = Channel(capacity, **kwargs) if key is None else FairChannel(capacity, key=key, **kwargs)
        self._channels.append(ch)
        return ch

    def __iter__(self) -> Iterator[Any]:
        """Start if needed and yield the last stage's outputs in order.

        Raises:
            Exception: The first exception any stage raised, re-raised as is.
        """
        self.start()
        finished = False
        try:
            yield from self._output
            finished = True
        except Cancelled:
            pass
        finally:
            if not finished:
                self.cancel()
            self.join()
        if self._error is not None:
            raise self._error

    def run(self) -> int:
        """Drain the pipeline; return how many items came out of the last stage."""
        return sum(1 for _ in self)

    def stop(self) -> None:
        """Ask the source to end now; items already in flight finish normally."""
        self._stopping.set()
        for stop in self._source_stops:
            stop()

    def cancel(self) -> None:
        """Abort: every channel is cancelled and in-flight items are dropped."""
        self._stopping.set()
        for ch in self._channels:
            ch.cancel()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for every thread; return True when all have ended."""
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout)
        return not any(t.is_alive() for t in self._threads)

    def close(self, timeout: float | None = 10.0) -> None:
        """Cancel and join; idempotent. Threads still alive after ``timeout`` are logged."""
        self.cancel()
        if not self.join(timeout):
            alive = [t.name for t in self._threads if t.is_alive()]
            log.warning("pipeline %s: threads still running after close: %s", self.name, alive)

    @property
    def error(self) -> BaseException | None:
        """The first exception a stage raised, if any."""
        return self._error

    def statistics(self) -> PipelineStatistics:
        """Return a snapshot of every stage and channel."""
        return PipelineStatistics(
            stages=tuple(s.counter.snapshot() for s in self._steps),
            channels=tuple(c.statistics() for c in self._channels))

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- thread bodies --------------------------------------------------
    def _guard(self, name: str, body: Callable[[], None]) -> None:
        try:
            body()
        except Cancelled:
            pass
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the caller
            self._fail(name, exc)

    def _fail(self, name: str, exc: BaseException) -> None:
        with self._lock:
            first = self._error is None
            if first:
                exc.add_note(f"(raised in pipeline stage {name!r})")
                self._error = exc
        if first:
            log.debug("stage %s failed; cancelling the pipeline", name, exc_info=exc)
        self.cancel()

    def _run_source(self, items: Iterable, out: Channel, counter: StageCounter,
                    live: list[int], lock: threading.Lock) -> None:
        it = iter(items)
        try:
            while not self._stopping.is_set():
                try:
                    item = counter.timed(next, it)
                except StopIteration:
                    break
                out.put(item)
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()
        with lock:  # the last source to finish ends the stream
            live[0] -= 1
            if live[0] == 0:
                out.close()

    @staticmethod
    def _run_map(fn: Callable[[Any], Any], inp: Channel, out: Channel,
                 counter: StageCounter) -> None:
        for item in inp:
            out.put(counter.timed(fn, item))
        out.close()
