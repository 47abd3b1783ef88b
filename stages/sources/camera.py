"""Camera settings: the size, rate and format a V4L2 camera is asked for.

``--camera-size WxH``, ``--camera-fps N`` and ``--camera-format NAME`` become
the options of FFmpeg's v4l2 input (``video_size``, ``framerate``,
``input_format``) for ``/dev/videoN`` and camera indexes; other live sources
have no such settings, and naming one for them is a usage error. Many USB
cameras give 5 FPS at 720p in raw YUYV and 30 FPS in MJPEG: the format is
often what makes the rate.

What can be checked before the camera opens is checked at start, as FFmpeg
would: the size's WxH form, a positive rate, and a format FFmpeg knows (its
v4l2 input takes a pixel format name for raw video, such as ``yuyv422``, or a
decoder name for compressed video, such as ``mjpeg`` or ``h264``). Whether
the camera offers them is known only when it opens: a refusal is FFmpeg's
reason, with the line FFmpeg logged (``open_camera``), in the source's
connection events.
"""

from __future__ import annotations

from collections.abc import Iterable

import av
import av.logging

from stages.errors import UsageError
from stages.settings import camera_format, check_camera
from stages.values import parse_picture_size
from stages.sources.spec import LiveSpec

__all__ = ["FLAGS", "camera_options", "check_camera_sources", "open_camera", "parse_camera_size"]

FLAGS = {"video_size": "--camera-size", "framerate": "--camera-fps",
         "input_format": "--camera-format"}  # FFmpeg's v4l2 option -> our flag


def parse_camera_size(text: str) -> tuple[int, int]:
    """``"1280x720"`` -> ``(1280, 720)``.

    Raises:
        InputError: Not WxH with both sides 1 to ``MAX_CAMERA_SIDE``.
    """
    size = parse_picture_size(text, "--camera-size")
    check_camera(size=size)
    return size


def camera_options(*, size: tuple[int, int] | None = None, fps: float | None = None,
                   format: str | None = None) -> dict[str, str]:
    """FFmpeg v4l2 input options for the settings given (empty when none is).

    Raises:
        InputError: A setting is malformed (``check_camera``).
    """
    check_camera(size=size, fps=fps, format=format)
    options = {}
    if size is not None:
        options["video_size"] = f"{size[0]}x{size[1]}"
    if fps is not None:
        options["framerate"] = f"{fps:g}"
    if format is not None:
        options["input_format"] = camera_format(format)
    return options


def check_camera_sources(specs: Iterable[LiveSpec], options: dict[str, str]) -> None:
    """Camera settings need a camera among ``specs`` (the others ignore them).

    Raises:
        UsageError: Settings given but no source is a camera.
    """
    if options and not any(spec.is_camera for spec in specs):
        flag = FLAGS[next(iter(options))]
        raise UsageError(f"{flag} is for cameras (/dev/videoN or a camera index), not "
                         "streams or test sources")


def open_camera(url: str, options: dict[str, str], timeout: float):
    """``av.open`` a V4L2 camera; a refusal carries the line FFmpeg logged about it.

    FFmpeg's errors say only "Invalid argument"; its log says which setting the
    camera refused ("Cannot find a proper format for codec 'mjpeg'..."). FFmpeg's
    logging is off in PyAV by default (it costs on every frame), so it is
    switched on for the open only.

    Raises:
        OSError: The open failed; the text is FFmpeg's reason and log line.
    """
    level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture() as logs:
            try:
                return av.open(url, format="v4l2", options=options, timeout=(timeout, timeout))
            except av.FFmpegError as exc:
                said = "; ".join(f"[{name}] {text.strip()}" for _, name, text in logs if text.strip())
                reason = exc.strerror or type(exc).__name__
                raise OSError(exc.errno, f"{reason} ({said})" if said else reason) from None
    finally:
        av.logging.set_level(level)
