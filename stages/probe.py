"""How many frames an input will give, known before decoding it.

Only the container's metadata is read (no packet is decoded): the frame count
the video stream declares (MP4 and MOV do; Matroska and raw H.264 usually do
not, and then the count is unknown rather than guessed). It sizes a batch's
progress; nothing depends on it being exact.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import av

from stages.decode import IMAGE_EXTENSIONS


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
    if Path(path).suffix.lower() in IMAGE_EXTENSIONS:
        return 1, None
    try:
        with av.open(os.fspath(path)) as container:
            fmt = container.format.name
            if fmt == "image2" or fmt.endswith("_pipe"):
                return 1, None
            stream = container.streams.video[0]
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            else:
                duration = container.duration / av.time_base if container.duration else None
            return stream.frames or None, duration
    except (av.FFmpegError, IndexError, OSError, UnicodeDecodeError):
        return None, None
