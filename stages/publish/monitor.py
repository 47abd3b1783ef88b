"""What each live source is doing now: its state and recent figures.

One ``SourceMonitor`` per live source is fed by the source's connection
events (``LiveSource`` ``on_event``), by every frame the pipeline finished
(``frame_done``) and by every frame dropped on the way (``dropped``). The
dashboard, the periodic log lines, ``/healthz``, ``/metrics`` and the MQTT
state topic all read it, so they never disagree.

States: ``connecting`` (no picture yet), ``live`` (pictures arriving),
``reconnecting`` (the stream dropped; retrying), ``given up``
(``--max-retries`` exceeded) and ``stopped`` (the run ended).

Figures: FPS is processed frames over the last ``FPS_WINDOW`` seconds (a
dead camera falls to 0 within that window, never "frames / run time");
reconnect ``attempts`` counts every retry, ``reconnects`` the retries that
delivered a picture; ``last_error`` is the last failure's text, with
credentials already masked by ``LiveSource``; latency is capture to written,
p50 and p95 over the last ``LATENCY_WINDOW`` frames, and counted since the
start in the ``LATENCY_BUCKETS`` of a Prometheus histogram (``histogram``).
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from collections.abc import Callable

from stages.frames import Result

CONNECTING, LIVE, RECONNECTING, GIVEN_UP, STOPPED = (
    "connecting", "live", "reconnecting", "given up", "stopped")
STATES = (CONNECTING, LIVE, RECONNECTING, GIVEN_UP, STOPPED)
FPS_WINDOW = 10.0  # seconds
LATENCY_WINDOW = 2000  # frames
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)  # seconds, capture to written

StateListener = Callable[[str, str, dict], None]  # source, state, row


class SourceMonitor:
    """State and figures of one live source; every method is thread-safe.

    Args:
        name: The source's name.
        stall_timeout: Seconds a live source may go without a processed
            frame before ``/healthz`` calls it stalled.
        clock: Monotonic clock (tests pass their own).
    """

    def __init__(self, name: str, stall_timeout: float = 5.0, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.stall_timeout = stall_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._listeners: list[StateListener] = []
        self.state = CONNECTING
        self.frames = 0
        self.dropped = 0
        self.rate_dropped = 0
        self.attempts = 0
        self.reconnects = 0
        self.last_error = ""
        self.recording_stopped: str | None = None  # why the source's recording is stopped
        self._stopped_parts: dict[str, str | None] = {}  # by part: segments, raw
        self.started = clock()
        self.last_frame: float | None = None  # monotonic time of the last processed frame
        self._times: deque[float] = deque()
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._in_bucket = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one: over every bound
        self._latency_sum = 0.0

    def on_state(self, listener: StateListener) -> None:
        """Call ``listener(name, state, row)`` at every change of state (in the
        thread that caused it; it must not block)."""
        with self._lock:
            self._listeners.append(listener)

    # -- fed by the source and the pipeline ---------------------------------

    def event(self, event) -> None:
        """Take one ``stages.sources.stream.SourceEvent``."""
        with self._lock:
            if event.kind == "connected":
                if event.reconnected:
                    self.reconnects += 1
                state = LIVE
            elif event.kind == "retry":
                self.attempts += 1
                self.last_error = event.message
                state = RECONNECTING if self.state != GIVEN_UP else GIVEN_UP
            elif event.kind == "gave_up":
                self.last_error = event.message
                state = GIVEN_UP
            else:  # disconnected, stalled
                self.last_error = event.message
                state = RECONNECTING
        self._set(state)

    def frame_done(self, result: Result) -> None:
        """One frame went through the pipeline and was written."""
        now = self._clock()
        latency = time.time() - result.frame.wall
        with self._lock:
            self.frames += 1
            self.last_frame = now
            self._times.append(now)
            self._latencies.append(latency)
            self._in_bucket[bisect.bisect_left(LATENCY_BUCKETS, latency)] += 1
            self._latency_sum += latency

    def dropped_one(self) -> None:
        """One frame was dropped by a queue (the pipeline was behind)."""
        with self._lock:
            self.dropped += 1

    def stopped(self) -> None:
        """The run ended; a source given up stays given up."""
        if self.state != GIVEN_UP:
            self._set(STOPPED)

    # -- read by the dashboard, the status server, MQTT -----------------------

    def fps(self) -> float:
        """Processed frames per second over the last ``FPS_WINDOW`` seconds."""
        now = self._clock()
        with self._lock:
            self._forget(now)
            if not self._times:
                return 0.0
            window = min(FPS_WINDOW, max(now - self.started, 1e-6))
            return len(self._times) / window

    def latency(self, q: float) -> float:
        """The q-quantile (0..1) of recent capture-to-written latencies, in seconds."""
        with self._lock:
            ordered = sorted(self._latencies)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def latencies(self) -> list[float]:
        """The recent latencies, in seconds, oldest first."""
        with self._lock:
            return list(self._latencies)

    def histogram(self) -> tuple[list[tuple[float, int]], float]:
        """Every latency since the start, as a Prometheus histogram.

        Returns:
            ([(upper bound in seconds, frames at or under it), ...], the sum of
            the latencies in seconds): cumulative counts, one per
            ``LATENCY_BUCKETS`` bound and a last one for ``math.inf`` (all frames).
        """
        with self._lock:
            counts, total = list(self._in_bucket), self._latency_sum
        cumulative, running = [], 0
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), counts):
            running += count
            cumulative.append((bound, running))
        return cumulative, total

    def stalled_for(self) -> float | None:
        """Seconds since the last processed frame (since the start when none
        came), or None when the source is given up or stopped."""
        with self._lock:
            if self.state in (GIVEN_UP, STOPPED):
                return None
            since = self.last_frame if self.last_frame is not None else self.started
        return self._clock() - since

    def recording(self, stopped: str | None, *, part: str = "segments") -> None:
        """A part of the source's recording (``segments``: video and logs; ``raw``: the
        copied packets) stopped (``stopped``: why, e.g. a full disk) or resumed (None);
        ``/healthz`` is unhealthy while any part is stopped."""
        with self._lock:
            self._stopped_parts[part] = stopped
            self.recording_stopped = next(
                (why for why in self._stopped_parts.values() if why is not None), None)

    def healthy(self) -> tuple[bool, str]:
        """(ok, reason): a source not given up must have delivered a frame within
        its stall timeout, and be recording (when it records)."""
        stopped = self.recording_stopped
        if stopped is not None and self.state not in (GIVEN_UP, STOPPED):
            return False, stopped
        stalled = self.stalled_for()
        if stalled is None or stalled <= self.stall_timeout:
            return True, ""
        if self.last_frame is None:
            return False, f"no frame yet after {stalled:.0f} s ({self.state})"
        return False, f"no frame for {stalled:.0f} s ({self.state})"

    def row(self) -> dict:
        """JSON-ready figures (the dashboard's row, the summary's, the MQTT state)."""
        fps = self.fps()
        with self._lock:
            row = {"source": self.name, "state": self.state, "frames": self.frames,
                   "dropped": self.dropped, "rate_dropped": self.rate_dropped,
                   "reconnect_attempts": self.attempts, "reconnects": self.reconnects,
                   "last_error": self.last_error}
        row.update(fps=round(fps, 2), latency_p50_ms=round(1000 * self.latency(0.5), 1),
                   latency_p95_ms=round(1000 * self.latency(0.95), 1))
        return row

    def _set(self, state: str) -> None:
        with self._lock:
            if state == self.state:
                return
            self.state = state
            listeners = list(self._listeners)
        if listeners:
            row = self.row()
            for listener in listeners:
                listener(self.name, state, row)

    def _forget(self, now: float) -> None:
        while self._times and self._times[0] < now - FPS_WINDOW:
            self._times.popleft()
