"""What a file says about itself before it is decoded: still or video, frames, times.

Only the container's metadata is read (no packet is decoded): the frame count
the video stream declares (MP4 and MOV do; Matroska and raw H.264 usually do
not, and then the count is unknown rather than guessed). It sizes a batch's
progress; nothing depends on it being exact.
"""

from __future__ import annotations

import math
import os
from fractions import Fraction
from pathlib import Path

import av

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
_DEFAULT_RATE = Fraction(25)


def is_image(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a still image by its extension (``IMAGE_EXTENSIONS``, any case).

    Only the name is read: the file need not exist. ``is_still_format`` tells
    an open container that is a still picture whatever its name.
    """
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def is_still_format(container) -> bool:
    """Whether an open container is a single still picture (an image demuxer)."""
    fmt = container.format.name
    return fmt == "image2" or fmt.endswith("_pipe")


def declared_frames(path: str | os.PathLike) -> int | None:
    """Frames the file's video stream declares: 1 for a still image, None when
    the container does not say or cannot be read (the decoder reports why later)."""
    return _declared(path)[0]


def expected_frames(path: str | os.PathLike, *, frame_step: int = 1, start: float | None = None,
                    end: float | None = None) -> int | None:
    """Frames a run over ``path`` is expected to process, under a frame stride and
    a time range (``JobConfig.frame_step``, ``start``, ``end``); None if unknown.

    With a range, the declared count is scaled by the part of the duration the
    range covers (an estimate: progress only).
    """
    frames, duration = _declared(path)
    if frames is None:
        return None
    if (start or end is not None) and frames > 1:
        if not duration:
            return None
        first = min(max(start or 0.0, 0.0), duration)
        last = min(end if end is not None else duration, duration)
        frames = round(frames * max(last - first, 0.0) / duration)
    return math.ceil(frames / max(frame_step, 1))


def _declared(path: str | os.PathLike) -> tuple[int | None, float | None]:
    """(declared frames, duration in seconds), each None when not known."""
    if is_image(path):
        return 1, None
    try:
        with av.open(os.fspath(path)) as container:
            if is_still_format(container):
                return 1, None
            stream = container.streams.video[0]
            return stream.frames or None, stream_duration(stream, container) or None
    except (av.FFmpegError, IndexError, OSError, UnicodeDecodeError):
        return None, None


def stream_time_base(stream) -> Fraction:
    return Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)


def stream_rate(stream) -> Fraction:
    return Fraction(stream.average_rate or stream.guessed_rate or _DEFAULT_RATE)


def stream_duration(stream, container) -> float | None:
    """Seconds the video stream lasts: its own duration, else the file's; None if unknown."""
    if stream.duration is not None:
        return float(stream.duration * stream_time_base(stream))
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def declared_end(stream, container) -> float | None:
    """Where the file says the video ends, in seconds of stream time: the
    stream's duration, else its Matroska ``DURATION`` tag, else the file's
    duration when the video is its only stream.

    FFmpeg writes the tag as the time the track ends (its start included),
    other muxers as a length; past the start it is read as the end, so a
    file that starts late is not taken for a cut one.
    """
    tb = stream_time_base(stream)
    start = float((stream.start_time or 0) * tb)
    if stream.duration is not None:
        return start + float(stream.duration * tb)
    tag = _parse_clock(stream.metadata.get("DURATION", ""))
    if tag is not None:
        return tag if tag > start else start + tag
    if container.duration is not None and len(container.streams) == 1:
        return (container.start_time or 0) / av.time_base + container.duration / av.time_base
    return None


def _parse_clock(text: str) -> float | None:
    """Seconds of an ``HH:MM:SS.fraction`` clock, or None."""
    try:
        h, m, sec = text.strip().split(":")
        return 3600 * int(h) + 60 * int(m) + float(sec)
    except ValueError:
        return None
