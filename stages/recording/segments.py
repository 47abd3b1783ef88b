"""Outputs of a live source: crash-safe video segments and their keypoint files.

A live run has no end to wait for, so its video goes into Matroska segments
(``.mkv`` is written progressively: a file cut by a crash still plays up to
its last complete cluster). A segment ends, is finalised and renamed into
place when its time is up (``segment_seconds``), when the stream drops
(``end_segment``, so nothing waits half-written while a camera is away), or
when the frame size changes (with a video). Each segment has a file of every
keypoint format asked for beside it (``stages.outputs.formats``: ``.jsonl``,
``.csv``, ``.openpose/``, ``.coco.json``), written as frames come, the JSON
Lines and CSV with wall-clock capture time as well as stream pts; without
the video (``video=False``) a segment is its keypoint files alone. Names:
``OUTDIR/<source>/<source>-<UTC start YYYYmmddTHHMMSSZ>-<n>.mkv`` (and
``.jsonl`` ...), ``<n>`` counting the run's segments from 1 and skipping
names already on disk, so every segment is its own file set, also for a
source named ``127.0.0.1_8554_cam1`` or ``cam1.local``. One ``SegmentNamer``
per source hands out the names, so a raw recorder (``stages.recording.raw``)
and the keypoint logs of one source never pick the same one by chance.

Following another clock: ``start_at(index, base)`` says that the frames
from ``index`` on go into the segment named ``base``, which then ends only
at the next ``start_at``, ``end_segment`` or ``close``. With ``--record
raw`` the raw recorder rolls at a key frame and tells the logs, so a raw
video and the keypoint logs of the same frames share their base name. A
frame that comes when no segment is open and none was announced (e.g. a
camera that sends no key frame) starts a segment with a name of its own,
which rolls after ``segment_seconds`` as usual.

Failures: a write that fails (a full disk) stops the recording and never
the run (``stages.recording.pause``): the segment is finished and kept,
whole when every file of it could be finished, otherwise every file set
aside together under ``aside_path`` (``<base>.partial.mkv``, ``<base>.partial.jsonl``),
so no log is committed without its video. Frames go on past the writer
unrecorded until the disk has room; then a new segment starts.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

from stages.outputs.atomic import Staged, aside_path, commit, set_aside
from stages.sources.file_source import SourceInfo
from stages.errors import OutputError
from stages.outputs.formats import FORMATS, KeypointWriter, format_path, make_writers
from stages.frames import Result
from stages.outputs.video import VideoWriter
from stages.recording.pause import RecordingPause

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 1000)  # Matroska keeps milliseconds
VIDEO_SUFFIX = ".mkv"


def segment_paths(folder: Path, base: str, formats: Sequence[str] = ("jsonl",), *,
                  video: bool = True) -> tuple[Path, ...]:
    """The paths of the segment named ``base`` in ``folder``: the video (when
    ``video``), then one per keypoint format, in order.

    Args:
        folder: The source's folder.
        base: The segment's name without suffix; it may contain dots.
        formats: Keypoint formats (``stages.outputs.formats.FORMATS``).
        video: The segment has a video.
    """
    keypoints = tuple(format_path(f, folder, base) for f in dict.fromkeys(formats))
    return ((folder / f"{base}{VIDEO_SUFFIX}",) if video else ()) + keypoints


class SegmentNamer:
    """Hands out the segment names of one source: ``<source>-<UTC start>-<n>``.

    ``<n>`` counts from 1 over the run and skips every name of which a file
    (video or keypoints, in any format, final or set aside after a kill) is
    already on disk, from another run started in the same second. Thread-safe.

    Args:
        folder: The source's folder.
        name: The source's name.
    """

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = Path(folder)
        self.name = name
        self._count = 0
        self._lock = threading.Lock()

    def next(self, wall: float) -> str:
        """The next free base name for a segment starting at ``wall`` (``time.time()``).

        The suffixes are appended to the whole base name, never put in place
        of its last dotted part (``127.0.0.1`` and ``cam1.local`` keep their dots).
        """
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(wall))
        with self._lock:
            while True:
                self._count += 1
                base = f"{self.name}-{stamp}-{self._count}"
                paths = segment_paths(self.folder, base, FORMATS, video=True)
                if not any(path.exists() or aside_path(path).exists() for path in paths):
                    return base


class SegmentedOutputs:
    """Writes one live source's results into rolling segments.

    Args:
        outdir: Parent directory; the source gets a folder of its own.
        name: The source's display name (already free of credentials).
        formats: Keypoint formats written for every segment (``stages.outputs.formats.FORMATS``).
        video: Write the annotated video (``.mkv``); without it, only keypoint files.
        segment_seconds: Longest segment, in seconds of wall time (a segment
            begun by ``start_at`` lasts until the next one).
        rate: Nominal frame rate given to the encoder.
        preset: x264 preset.
        namer: The source's ``SegmentNamer`` (one is made when None).
        on_finish: Called (with no argument) after a segment was finished.
        on_recording: Called with the reason when recording stops (a failed
            write), None when it resumes.

    Attributes:
        finished: Paths of the files of every finished segment, in order.

    Raises:
        InputError: An unknown format name.
    """

    def __init__(self, outdir: Path, name: str, *, formats: Sequence[str] = ("jsonl",),
                 video: bool = True, segment_seconds: float = 600.0,
                 rate: Fraction = Fraction(25), preset: str = "veryfast",
                 namer: SegmentNamer | None = None,
                 on_finish: Callable[[], None] | None = None,
                 on_recording: Callable[[str | None], None] | None = None) -> None:
        self.folder = Path(outdir) / name
        self.name = name
        self.formats = tuple(dict.fromkeys(formats))
        self.video = video
        self.segment_seconds = segment_seconds
        self.rate = rate
        self.preset = preset
        self.finished: list[Path] = []
        segment_paths(self.folder, name, self.formats)  # an unknown format fails here, at start
        self._open = False
        self._video: VideoWriter | None = None
        self._writers: list[KeypointWriter] = []
        self._shape: tuple[int, ...] = ()
        self._started = 0.0
        self._pts0 = 0.0
        self._base = ""
        self._followed = False  # the current segment was begun by start_at
        self._namer = namer or SegmentNamer(self.folder, name)
        self._on_finish = on_finish
        self._announced: list[tuple[int, str]] = []  # (first frame index, base), by start_at
        self._pause = RecordingPause(name, self.folder, on_change=on_recording)
        self._resume_base: str | None = None  # announced while recording was stopped
        self._lock = threading.Lock()

    def start_at(self, index: int, base: str) -> None:
        """Start the segment ``base`` at the frame numbered ``index`` (thread-safe).

        The current segment goes on until a frame numbered ``index`` or later
        comes; frames dropped before they reach the logs change nothing.
        """
        with self._lock:
            self._announced.append((index, base))

    @property
    def stopped(self) -> str | None:
        """Why recording is stopped (a failed write), or None while it records."""
        return self._pause.reason

    @property
    def current(self) -> str | None:
        """The base name of the segment being written, or None."""
        return self._base if self._open else None

    def end_segment(self, base: str | None = None) -> None:
        """Finish the current segment now (thread-safe): e.g. the stream dropped.

        Args:
            base: Finish it only if it is this one (e.g. a delayed end that a
                newer segment may have overtaken).

        The next frame starts a new segment.
        """
        with self._lock:
            if base is None or base == self.current:
                self._end()

    def write(self, result: Result) -> Result:
        """Write one rendered result, rolling to a new segment when due; return it.

        A failed write stops the recording (see the module docstring); it never raises.
        """
        frame = result.frame
        image = result.image if result.image is not None else frame.image
        with self._lock:
            base = self._announced_base(frame.index)
            if self._pause.reason is not None:
                self._resume_base = base or self._resume_base
                if not self._pause.may_resume():
                    return result
                base, self._resume_base = self._resume_base, None
            try:
                self._record(result, image, base)
            except OutputError as exc:
                self._end()
                self._pause.stop(exc)
            else:
                self._pause.resumed()
        return result

    def close(self) -> None:
        """Finish the current segment; idempotent. A failure is logged, not raised
        (what was written is kept, see the module docstring)."""
        with self._lock:
            self._end()

    def _record(self, result: Result, image, base: str | None) -> None:
        frame = result.frame
        if base is not None or self._due(image.shape, frame.wall):
            self._roll(image.shape, frame, base)
        if self._video is not None:
            ticks = round((frame.pts - self._pts0) / TIME_BASE)
            self._video.write(image, max(ticks, 0))
        for writer in self._writers:
            writer.write(result)

    def _end(self) -> None:
        """``_finish``, its failure logged (a segment ended by the stream or the run)."""
        error = self._finish()
        if error is not None:
            log.error("%s: %s", self.name, error)

    def _finish(self) -> OutputError | None:
        """Finish every file of the current segment, then commit the keypoint files
        and the video: a finished video always has its keypoint files beside it.

        (Renames cannot be one step; a kill between them leaves keypoint files
        whose video is still under its partial name, which plays.) If a file
        cannot be finished, none is committed: every file is set aside (see the
        module docstring). Returns the first failure, naming what was kept.
        """
        video, writers, base = self._video, self._writers, self._base
        was_open = self._open
        self._open, self._video, self._writers = False, None, []
        files = [*writers, *([video] if video is not None else [])]
        staged, error = _finish_all(files)
        if video is not None:
            _trim_heap()
        if error is None:
            error = self._commit(staged)
        elif staged:
            kept = set_aside(staged)
            error = OutputError(f"{self.folder / base}: cannot finish the segment ({error}); "
                                f"kept as {', '.join(p.name for p in kept) or 'nothing'}")
        if was_open and self._on_finish is not None:
            self._on_finish()
        return error

    def _commit(self, staged: list[Staged]) -> OutputError | None:
        error = None
        for item in staged:
            try:
                commit(item.tmp, item.path)
            except OutputError as exc:
                error = error or exc
            else:
                self.finished.append(item.path)
        return error

    def _announced_base(self, index: int) -> str | None:
        """The base of the last announced segment that starts at or before frame ``index``."""
        base = None
        while self._announced and self._announced[0][0] <= index:
            base = self._announced.pop(0)[1]
        return base

    def _due(self, shape: tuple[int, ...], wall: float) -> bool:
        if not self._open:
            return True
        if self.video and shape != self._shape:
            log.info("%s: frame size changed to %dx%d; new segment", self.name, shape[1], shape[0])
            return True
        return not self._followed and wall - self._started >= self.segment_seconds

    def _roll(self, shape: tuple[int, ...], frame, base: str | None = None) -> None:
        error = self._finish()
        if error is not None:
            raise error
        self._shape = shape
        self._started = frame.wall
        self._pts0 = frame.pts
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self.folder}: cannot create ({exc.strerror or exc})") from exc
        self._followed = base is not None
        base = self._base = base or self._namer.next(frame.wall)
        self._writers = make_writers(self.formats, self.folder, base, wall_clock=True)
        if self.video:
            info = SourceInfo(name=self.name, width=shape[1], height=shape[0], rate=self.rate,
                              time_base=TIME_BASE, frames=None, duration=None, codec="h264")
            try:
                self._video = VideoWriter(self.folder / f"{base}{VIDEO_SUFFIX}", info,
                                          preset=self.preset)
            except BaseException:
                self._end()  # the keypoint files begun are finished; nothing is lost
                raise
        self._open = True
        log.info("%s: segment %s started", self.name, base)

    def __enter__(self) -> SegmentedOutputs:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _finish_all(files: list) -> tuple[list[Staged], str | None]:
    """Finish every file (``finish``: kept under its partial name); return the finished
    ones and those left partial by a failure, as ``Staged``, and why the first failed."""
    staged, why = [], None
    for file in files:
        try:
            done = file.finish()
        except OutputError as exc:
            why = why or _why(exc)
            if os.path.lexists(file.tmp):
                staged.append(Staged(file.tmp, file.path))
        else:
            if done is not None:
                staged.append(done)
    return staged, why


def _why(exc: OutputError) -> str:
    """The cause of ``exc`` in a few words (its OS error, without the paths)."""
    cause = exc.__cause__
    return getattr(cause, "strerror", None) or str(exc)


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
