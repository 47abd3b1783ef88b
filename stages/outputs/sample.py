"""Media made on the spot: a sample clip with people, and tiny test clips.

``make_sample_clip`` puts two photos that scikit-image ships (the astronaut,
and the cameraman) side by side on a plain background, drifting a few pixels
per frame in opposite directions. ``make_test_clip`` writes flat colour
frames (``frame_colour(i)`` for frame i) with chosen timestamps, codec and
size, for fast tests. Both are deterministic.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from stages.sources.file_source import SourceInfo
from stages.outputs.video import VideoWriter, muxer_options

_BACKGROUND = (182, 190, 196)  # light grey-blue, BGR
_DRIFT_PX = 24          # largest offset of a photo from its rest position
_DRIFT_PERIOD = 50      # frames per back-and-forth


def make_sample_clip(path: str | os.PathLike, *, seconds: float = 2.0,
                     fps: Fraction = Fraction(25), size: tuple[int, int] = (1280, 720),
                     crf: int = 23, preset: str = "veryfast") -> Path:
    """Write a short H.264 mp4 with two people in it.

    Args:
        path: Output path (``.mp4``).
        seconds: Length; rounded to whole frames (at least one).
        fps: Frame rate.
        size: (width, height).
        crf: libx264 quality (lower is better).
        preset: libx264 preset.

    Returns:
        ``path`` as a Path.
    """
    fps = Fraction(fps)
    count = max(1, round(seconds * fps))
    info = SourceInfo(name="sample", width=size[0], height=size[1], rate=fps,
                      time_base=1 / fps, frames=count, duration=count / fps, codec="h264")
    with VideoWriter(path, info, preset=preset, crf=crf, faststart=True) as writer:
        for index, image in enumerate(sample_frames(count, size)):
            writer.write(image, index)
    return Path(path)


def sample_frames(count: int, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """The pictures of ``make_sample_clip``.

    Args:
        count: Number of frames.
        size: (width, height).

    Yields:
        HxWx3 uint8 BGR pictures.
    """
    width, height = size
    side = max(1, min(height * 9 // 10, width * 9 // 20))
    photos = [cv2.resize(p, (side, side), interpolation=cv2.INTER_AREA) for p in _photos()]
    margin = (width - 2 * side) // 3
    amplitude = max(0, min(_DRIFT_PX, margin))
    rest = (margin, width - margin - side)
    top = (height - side) // 2
    for i in range(count):
        dx = round(amplitude * math.sin(2 * math.pi * i / _DRIFT_PERIOD))
        canvas = np.empty((height, width, 3), np.uint8)
        canvas[:] = _BACKGROUND
        for photo, x in zip(photos, (rest[0] + dx, rest[1] - dx)):
            canvas[top:top + side, x:x + side] = photo
        yield canvas


def _photos() -> list[np.ndarray]:
    from skimage import data  # slow import; only needed here

    astronaut = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    cameraman = cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR)
    return [astronaut, cameraman]


def frame_colour(index: int) -> tuple[int, int, int]:
    """The flat BGR colour of frame ``index`` in a ``make_test_clip`` clip."""
    return ((40 + 67 * index) % 200 + 28, (90 + 29 * index) % 200 + 28,
            (150 + 113 * index) % 200 + 28)


def make_test_clip(path: str | os.PathLike, *, frames: int = 10, fps: Fraction = Fraction(25),
                   size: tuple[int, int] = (64, 48), first_pts: int = 0,
                   pts: Sequence[int] | None = None, time_base: Fraction | None = None,
                   codec: str = "libx264", faststart: bool = True) -> Path:
    """Write a tiny clip of flat colour frames with chosen timestamps.

    Args:
        path: Output path; the container follows the extension (mp4, mkv...).
        frames: Number of frames (ignored when ``pts`` is given).
        fps: Nominal frame rate.
        size: (width, height); odd sizes use yuv444p with libx264.
        first_pts: pts of the first frame, in ``time_base`` ticks.
        pts: Explicit pts of every frame in ``time_base`` ticks (for
            variable frame rate); increasing.
        time_base: Stream time base; defaults to ``1 / fps``.
        codec: Encoder name.
        faststart: Put the mp4 index first (so a cut file still opens).

    Returns:
        ``path`` as a Path.
    """
    fps = Fraction(fps)
    tb = Fraction(time_base) if time_base is not None else 1 / fps
    if pts is None:
        step = max(1, round(1 / (fps * tb)))
        pts = [first_pts + i * step for i in range(frames)]
    with _open_test_output(path, tb, faststart) as container:
        stream = _test_stream(container, codec, fps, tb, size)
        for index, ticks in enumerate(pts):
            image = np.empty((size[1], size[0], 3), np.uint8)
            image[:] = frame_colour(index)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = ticks, tb
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return Path(path)


def _open_test_output(path: str | os.PathLike, tb: Fraction, faststart: bool):
    fmt = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov"}.get(Path(path).suffix.lower(), "")
    return av.open(os.fspath(path), "w", options=muxer_options(fmt, tb, faststart=faststart))


def _test_stream(container, codec: str, fps: Fraction, tb: Fraction, size: tuple[int, int]):
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height = size
    if codec == "libx264":
        even = size[0] % 2 == 0 and size[1] % 2 == 0
        stream.pix_fmt = "yuv420p" if even else "yuv444p"
    stream.time_base = tb
    stream.codec_context.time_base = tb
    return stream
