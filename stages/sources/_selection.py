"""Which frames of a video file to process: a stride and a time range.

``Selection`` holds ``frame_step``, ``start`` and ``end`` (``--frame-step``,
``--start``, ``--end``) and checks them. The helpers here serve
``VideoFileSource`` when it seeks to ``start``:

* ``frame_grid`` tells whether a stream is constant frame rate (CFR), so that
  a frame's decode index follows from its pts alone;
* ``pictures_before`` counts, for any other stream, the pictures before a
  point by reading packets from the file's start without decoding them.
"""

from __future__ import annotations

import math
import os
from array import array
from dataclasses import dataclass
from fractions import Fraction

import av

from stages.errors import InputError

# a frame's pts may sit this far (in frame periods) off the grid and still count as on it:
# Matroska keeps milliseconds, so 29.97 fps pts are up to 0.015 periods off
GRID_SLACK = 0.25
# reading packets without a dts, go this far past the target (B-frame reordering)
_REORDER_SLACK = Fraction(2)


@dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    """A stride and a time range over a video file's frames.

    Attributes:
        frame_step: Keep every Nth frame of the range, counting from its
            first frame (frames start, start + N, ...).
        start: Seconds from the file's start time (as players and
            ``ffmpeg -ss`` count them): frames with pts >= file start +
            ``start`` are in range. None for the first frame.
        end: Like ``start``; frames at or after it are out of range
            (exclusive). None for the last frame.

    Raises:
        InputError: A value is out of range (one line naming the option).
    """

    frame_step: int = 1
    start: float | None = None
    end: float | None = None

    def __post_init__(self) -> None:
        step = self.frame_step
        if isinstance(step, bool) or not isinstance(step, int) or step < 1:
            raise InputError(f"--frame-step: must be a whole number >= 1, got {step!r}")
        for option, value in (("--start", self.start), ("--end", self.end)):
            if value is None:
                continue
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or value < 0):
                raise InputError(f"{option}: must be a time in seconds >= 0, got {value!r}")
        if self.start is not None and self.end is not None and not self.start < self.end:
            raise InputError(f"--end: must be after --start, got --start {self.start:g} "
                             f"and --end {self.end:g}")

    @property
    def everything(self) -> bool:
        """True when every frame is selected (the defaults)."""
        return self.frame_step == 1 and self.start is None and self.end is None

    def bounds(self, origin: Fraction) -> tuple[Fraction | None, Fraction | None]:
        """(start, end) in seconds of stream time, given the file's start time ``origin``."""
        return (None if self.start is None else origin + _exact(self.start),
                None if self.end is None else origin + _exact(self.end))


def _exact(seconds: float) -> Fraction:
    """The decimal a user typed (``1.4`` is 7/5, not the nearest binary float)."""
    return Fraction(repr(float(seconds)))


def frame_grid(stream, rate: Fraction, time_base: Fraction) -> Fraction | None:
    """Ticks per frame when the stream is CFR with no gaps, else None.

    CFR is believed only when the container vouches for the whole stream: it
    declares a frame count (mp4, mov) and a duration, the frame count is the
    duration times the average rate, and the average rate is FFmpeg's
    ``r_frame_rate`` (the rate all timestamps fit). Matroska/WebM declare no
    frame count, so their streams count as unknown (see ``pictures_before``).

    Args:
        stream: The PyAV video stream.
        rate: Its average frame rate.
        time_base: Its time base.

    Returns:
        Frame period in ticks (maybe fractional), or None.
    """
    base = stream.base_rate
    if not (stream.frames and stream.duration and rate and base) or Fraction(base) != rate:
        return None
    if stream.duration * time_base * rate != stream.frames:
        return None
    return 1 / (rate * time_base)


def grid_index(ticks: int, first_ticks: int, period: Fraction) -> int | None:
    """Frame number of pts ``ticks`` on a grid starting at ``first_ticks``; None if off it."""
    position = (ticks - first_ticks) / period
    index = round(position)
    return index if abs(position - index) <= GRID_SLACK and index >= 0 else None


def pictures_before(path: str | os.PathLike, stream_index: int, first_ticks: int,
                    target_ticks: int) -> array:
    """Sorted pts of the pictures with ``first_ticks <= pts < target_ticks``.

    Reads packets from the file's start without decoding them (one packet is
    one picture), up to the first whose dts reaches ``target_ticks`` (or, for
    packets without a dts, whose pts passes it by ``_REORDER_SLACK`` seconds).
    The decode index of a picture with pts P at or before the target is then
    the number of these below P.

    Raises:
        InputError: The file cannot be read again.
    """
    try:
        container = av.open(os.fspath(path))
    except av.FFmpegError as exc:
        raise InputError(f"{os.fspath(path)}: cannot be read again to count its frames "
                         f"({exc})") from exc
    found = array("q")
    with container:
        stream = container.streams[stream_index]
        slack = round(_REORDER_SLACK / Fraction(stream.time_base))
        try:
            for packet in container.demux(stream):
                if not packet.size or packet.pts is None:
                    continue
                if packet.dts is not None and packet.dts >= target_ticks:
                    break
                if packet.dts is None and packet.pts >= target_ticks + slack:
                    break
                if first_ticks <= packet.pts < target_ticks:
                    found.append(packet.pts)
        except av.FFmpegError:
            pass  # a damaged or cut file: count what could be read
    return array("q", sorted(found))
