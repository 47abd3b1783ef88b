"""A cap on how many frames per second a live source lets through (``--max-fps``)."""

from __future__ import annotations

import math

# times closer than this to the next slot count as on it (float pts of a 1/90000 clock)
_EPSILON = 1e-6


class RateCap:
    """Lets a frame through when its time reaches the next slot; the rest are dropped.

    Slots are ``1 / max_fps`` apart and follow on from each other, so a
    stream faster than the cap yields ``max_fps`` frames per second on
    average (30 fps capped at 25 keeps 5 of every 6). After a pause longer
    than a slot the schedule starts again from the next frame, so an outage
    is not followed by a burst.
    """

    def __init__(self, max_fps: float) -> None:
        """Args:
            max_fps: Frames per second let through; > 0.

        Raises:
            ValueError: ``max_fps`` is not a positive finite number.
        """
        if isinstance(max_fps, bool) or not (isinstance(max_fps, (int, float))
                                             and math.isfinite(max_fps) and max_fps > 0):
            raise ValueError(f"max_fps must be a number > 0, got {max_fps!r}")
        self.interval = 1.0 / max_fps
        self._due: float | None = None

    def admit(self, seconds: float) -> bool:
        """Whether the frame at time ``seconds`` (non-decreasing) goes through."""
        due = self._due
        if due is not None and seconds + _EPSILON < due:
            return False
        late = due is None or seconds >= due + self.interval
        self._due = (seconds if late else due) + self.interval
        return True
