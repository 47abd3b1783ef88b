"""What every file source shares: its description (``SourceInfo``), its base
class and the checks of the path it is opened from."""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from stages.errors import InputError, InputNotFoundError
from stages.sources.stoppable import StoppableSource


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What a source knows about its pictures before decoding them.

    Attributes:
        name: Source id, copied into every ``Frame.source``.
        width: Picture width in pixels, as displayed (after ``rotation``).
        height: Picture height in pixels, as displayed.
        rate: Frame rate: the container's average rate, else the guessed
            rate, else 25 (a hint only; timestamps are the truth).
        time_base: Exact stream time base.
        frames: Frames the source will yield: the count the container
            declares (for a stride or range, the frames selected), or None if
            unknown.
        duration: Seconds the yielded frames span: the stream's duration
            (for a range, the range's), or None if unknown.
        codec: Codec name (e.g. ``"h264"``, ``"png"``).
        rotation: Counter-clockwise degrees (0, 90, 180, 270) the coded
            pictures are turned by for display; frames come out turned.
    """

    name: str
    width: int
    height: int
    rate: Fraction
    time_base: Fraction
    frames: int | None
    duration: float | None
    codec: str
    rotation: int = 0


class FileSource(StoppableSource):
    """A file source: ``StoppableSource`` plus whether the file was cut short
    or damaged (see ``stages.sources.video.VideoFileSource``; an image is all or nothing).

    Subclasses set ``info`` and define ``_frames()`` and ``_release()``.
    """

    info: SourceInfo
    packets_skipped = 0
    frames_concealed = 0
    frames_lost = 0

    def __init__(self) -> None:
        self.truncated = False
        super().__init__()


def check_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputNotFoundError(f"{os.fspath(path)}: no such file")
    if p.is_dir():
        raise InputError(f"{os.fspath(path)}: is a directory, not a video or image file")
    if p.is_file() and p.stat().st_size == 0:
        raise InputError(f"{os.fspath(path)}: empty file (0 bytes)")
    if not os.access(p, os.R_OK):
        raise InputError(f"{os.fspath(path)}: permission denied")
    return p


def reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
