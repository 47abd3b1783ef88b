"""Which video stream of a file to read: the one asked for, else FFmpeg's choice.

With several video streams, ``ffmpeg -i FILE OUT`` maps the largest, a
stream marked default first (``best_video_stream``); ``--video-stream N``
reads another. One INFO line names the stream read when there is a choice.
"""

from __future__ import annotations

import logging
import os

import av

from stages.errors import InputError

log = logging.getLogger(__name__)


def video_stream(container, path: str | os.PathLike, wanted: int | None = None):
    """The video stream to read: the ``wanted``-th video stream, else FFmpeg's choice.

    Raises:
        InputError: The file has no video stream, or fewer than ``wanted`` + 1.
    """
    videos = list(container.streams.video)
    if not videos:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        raise InputError(f"{os.fspath(path)}: has no video stream "
                         f"(found: {', '.join(kinds)})")
    if wanted is None:
        return best_video_stream(videos)
    if not 0 <= wanted < len(videos):
        count = f"{len(videos)} video stream" + ("s" if len(videos) > 1 else "")
        raise InputError(f"{os.fspath(path)}: --video-stream {wanted}: the file has {count} "
                         f"(0 to {len(videos) - 1})")
    return videos[wanted]


_DEFAULT_BONUS = 5_000_000  # pixels a stream marked default counts over its own size


def best_video_stream(videos: list):
    """The video stream ``ffmpeg -i FILE OUT`` maps when none is named.

    FFmpeg's command line (``map_auto_video`` in ``fftools/ffmpeg_mux_init.c``)
    scores each video stream by its pixels (width x height) plus 5,000,000
    when its disposition is ``default``; an attached picture (cover art)
    scores 1. The highest score wins, the first stream on a tie. (FFmpeg also
    favours streams whose packets it has seen while probing; PyAV does not
    show that, and a stream without packets has no size either.)

    Args:
        videos: The container's video streams, in file order (not empty).
    """
    def score(stream) -> int:
        flags = stream.disposition
        if flags & av.stream.Disposition.attached_pic:
            return 1
        pixels = (stream.codec_context.width or 0) * (stream.codec_context.height or 0)
        return pixels + (_DEFAULT_BONUS if flags & av.stream.Disposition.default else 0)

    return max(videos, key=score)  # max keeps the first of equal scores


def say_which_stream(path: str, container, stream, wanted: int | None) -> None:
    """One INFO line naming the video stream read, when the file has more than one."""
    videos = list(container.streams.video)
    if len(videos) < 2:
        return
    number = videos.index(stream)
    why = "as --video-stream asks" if wanted is not None else \
        "the one FFmpeg picks: the largest, a default one first; --video-stream N reads another"
    default = ", default" if stream.disposition & av.stream.Disposition.default else ""
    log.info("%s: %d video streams; reading video stream %d (%dx%d %s%s), %s", path,
             len(videos), number, stream.codec_context.width, stream.codec_context.height,
             stream.codec_context.name, default, why)
