"""Time for live sources: when a frame was captured, when a paced test source may
hand out its next frame, and how long to wait before reconnecting."""

from __future__ import annotations

import time
from typing import Callable

_DEFAULT_PERIOD = 1 / 25  # seconds per frame before a connection says its rate


def backoff_delay(failures: int, initial: float, maximum: float) -> float:
    """Seconds to wait after ``failures`` consecutive failures.

    ``initial`` after the first, doubling after each further one, never more
    than ``maximum``: 0.5, 1, 2, 4, ... 30, 30.

    Args:
        failures: Consecutive failures so far (>= 1).
        initial: Wait after the first failure.
        maximum: Cap.
    """
    if failures < 1:
        return 0.0
    return min(maximum, initial * 2.0 ** min(failures - 1, 64))


class StreamClock:
    """One clock in seconds for all the connections of a live source.

    Invariant: every ``stamp`` is greater than the one before (never equal,
    never backwards). The first stamp ever is 0. Within a connection a stamp
    advances as the stream's own timestamps do. The first frame of a
    connection is placed at the seconds elapsed since the first stamp (an
    outage shows as a gap), or one frame period after the previous stamp if
    that is later. A frame without a timestamp, or whose timestamp would not
    advance the clock, gets the previous stamp plus one period, and later
    timestamps of its connection count from there.

    Args:
        now: Monotonic time source, in seconds (injectable for tests).
    """

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._epoch: float | None = None
        self._last: float | None = None
        self._anchor: tuple[float, float] | None = None  # (stream s, clock s)
        self._period = _DEFAULT_PERIOD
        self._starting = True

    def start_connection(self, period: float) -> None:
        """Begin a connection whose nominal frame period is ``period`` seconds."""
        self._period = period if period > 0 else _DEFAULT_PERIOD
        self._anchor = None
        self._starting = True

    def stamp(self, stream_seconds: float | None) -> float:
        """The clock value of a frame whose stream timestamp is ``stream_seconds``."""
        now = self._now()
        if self._epoch is None:
            self._epoch = now
        last = self._last
        fallback = 0.0 if last is None else last + self._period
        if self._starting:
            self._starting = False
            fallback = max(fallback, now - self._epoch)
        pts = None
        if stream_seconds is not None and self._anchor is not None:
            pts = self._anchor[1] + (stream_seconds - self._anchor[0])
            if last is not None and pts <= last:
                pts = None
        if pts is None:
            pts = fallback
            if stream_seconds is not None:
                self._anchor = (stream_seconds, pts)
        self._last = pts
        return pts


class RealTimePacer:
    """Holds a generated stream's frames back until their time, as a camera delivers them.

    FFmpeg's lavfi sources make frames as fast as they are asked for; a
    stand-in for a camera must give them at its frame rate (what ``ffmpeg
    -re`` does), so that frames are dropped downstream only when processing
    is slower than the source. Invariant: a frame whose stream time is ``t``
    seconds after the first one is not released before ``t`` seconds of
    the ``now`` clock have passed since the first was. A reader that falls
    more than ``max_lag`` behind is not given a burst of late frames to
    catch up: the schedule restarts from the late frame.

    Args:
        now: Monotonic time source, in seconds (injectable for tests).
        max_lag: Seconds behind schedule after which the schedule restarts.
    """

    def __init__(self, now: Callable[[], float] = time.monotonic, max_lag: float = 1.0) -> None:
        self._now = now
        self.max_lag = max_lag
        self._origin: float | None = None  # now() minus stream seconds

    def delay(self, stream_seconds: float | None) -> float:
        """Seconds to wait before releasing the frame at ``stream_seconds`` (0: now)."""
        if stream_seconds is None:
            return 0.0
        now = self._now()
        if self._origin is None:
            self._origin = now - stream_seconds
        wait = self._origin + stream_seconds - now
        if wait < -self.max_lag:
            self._origin = now - stream_seconds
            return 0.0
        return max(0.0, wait)
