"""Outputs of a live source: crash-safe video segments and their keypoint logs.

A live run has no end to wait for, so its video goes into Matroska segments
(``.mkv`` is written progressively: a file cut by a crash still plays up to
its last complete cluster). A segment ends, is finalised and renamed into
place when its time is up (``segment_seconds``), when the stream drops
(``end_segment``, so nothing waits half-written while a camera is away), or
when the frame size changes. Each segment has a keypoint log beside it,
flushed per frame, with wall-clock capture time as well as stream pts.
Names: ``OUTDIR/<source>/<source>-<UTC start YYYYmmddTHHMMSSZ>-<n>.mkv/.jsonl``,
``<n>`` counting the run's segments from 1 and skipping names already on
disk, so every segment is its own file pair, also for a source named
``127.0.0.1_8554_cam1`` or ``cam1.local``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import time
from fractions import Fraction
from pathlib import Path

from stages.decode import SourceInfo
from stages.frames import Result
from stages.keypoint_log import KeypointLog
from stages.video_sink import VideoWriter

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 1000)  # Matroska keeps milliseconds
VIDEO_SUFFIX = ".mkv"
LOG_SUFFIX = ".jsonl"


def segment_paths(folder: Path, base: str) -> tuple[Path, Path]:
    """The (video, keypoint log) paths of the segment named ``base`` in ``folder``.

    Args:
        folder: The source's folder.
        base: The segment's name without suffix; it may contain dots.
    """
    return folder / f"{base}{VIDEO_SUFFIX}", folder / f"{base}{LOG_SUFFIX}"


class SegmentedOutputs:
    """Writes one live source's results into rolling segments.

    Args:
        outdir: Parent directory; the source gets a folder of its own.
        name: The source's display name (already free of credentials).
        segment_seconds: Longest segment, in seconds of wall time.
        rate: Nominal frame rate given to the encoder.
        preset: x264 preset.
    """

    def __init__(self, outdir: Path, name: str, *, segment_seconds: float = 600.0,
                 rate: Fraction = Fraction(25), preset: str = "veryfast") -> None:
        self.folder = Path(outdir) / name
        self.name = name
        self.segment_seconds = segment_seconds
        self.rate = rate
        self.preset = preset
        self.finished: list[Path] = []
        self._video: VideoWriter | None = None
        self._log: KeypointLog | None = None
        self._started = 0.0
        self._pts0 = 0.0
        self._count = 0
        self._lock = threading.Lock()

    def end_segment(self) -> None:
        """Finish the current segment now (thread-safe): e.g. the stream dropped.

        The next frame starts a new segment.
        """
        with self._lock:
            self._finish()

    def write(self, result: Result) -> Result:
        """Write one rendered result, rolling to a new segment when due; return it."""
        frame = result.frame
        image = result.image if result.image is not None else frame.image
        with self._lock:
            if self._due(image.shape, frame.wall):
                self._roll(image.shape, frame)
            ticks = round((frame.pts - self._pts0) / TIME_BASE)
            self._video.write(image, max(ticks, 0))
            self._log.write(result)
        return result

    def close(self) -> None:
        """Finish the current segment; idempotent."""
        with self._lock:
            self._finish()

    def _finish(self) -> None:
        """Commit the log, then the video: a finished video always has its log beside it.

        (Two renames cannot be one step; a kill between them leaves a log
        whose video is still under its partial name, which plays.)
        """
        video, klog, self._video, self._log = self._video, self._log, None, None
        try:
            if klog is not None:
                klog.close()
                self.finished.append(klog.path)
        finally:
            if video is not None:
                video.close()
                self.finished.append(video.path)
                _trim_heap()

    def _due(self, shape: tuple[int, ...], wall: float) -> bool:
        if self._video is None:
            return True
        if shape != self._shape:
            log.info("%s: frame size changed to %dx%d; new segment", self.name, shape[1], shape[0])
            return True
        return wall - self._started >= self.segment_seconds

    def _roll(self, shape: tuple[int, ...], frame) -> None:
        self._finish()
        self._count += 1
        self._shape = shape
        self._started = frame.wall
        self._pts0 = frame.pts
        self.folder.mkdir(parents=True, exist_ok=True)
        video_path, log_path = self._free_pair(frame.wall)
        info = SourceInfo(name=self.name, width=shape[1], height=shape[0], rate=self.rate,
                          time_base=TIME_BASE, frames=None, duration=None, codec="h264")
        self._video = VideoWriter(video_path, info, preset=self.preset)
        self._log = KeypointLog(log_path, wall_clock=True)
        log.info("%s: segment %s started", self.name, video_path.name[:-len(VIDEO_SUFFIX)])

    def _free_pair(self, wall: float) -> tuple[Path, Path]:
        """The next (video, log) names that no earlier segment has used.

        The suffixes are appended to the whole base name, never put in place
        of its last dotted part (``127.0.0.1`` and ``cam1.local`` keep their
        dots). A name already on disk, from another run started in the same
        second, is skipped.
        """
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(wall))
        while True:
            pair = segment_paths(self.folder, f"{self.name}-{stamp}-{self._count}")
            if not any(path.exists() for path in pair):
                return pair
            self._count += 1

    def __enter__(self) -> SegmentedOutputs:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _trim_heap() -> None:
    """Give freed heap pages back to the OS (glibc's malloc_trim; a no-op elsewhere).

    A closed 720p encoder leaves tens of MB of freed buffers in malloc's
    arenas; without this, RSS keeps the high-water mark of the segment rolls.
    """
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        _libc = ctypes.CDLL(name) if name else False
    trim = getattr(_libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


_libc = None
