"""File sources: decode a video file (PyAV) or a still image into Frames.

A source is opened on construction, so a bad input fails at once with an
``InputError`` whose message is one line naming the input. It is then a
context manager and an iterator of ``Frame`` (a generator inside, whose
``finally`` releases the file).

Behaviour worth knowing:

* Timestamps: ``Frame.pts_ticks`` is the frame's pts in the stream time base,
  exactly as the container stores it; ``Frame.pts`` is the same in seconds.
  A decoded frame without a pts (rare, raw streams) gets the previous pts plus
  the frame's duration (or one frame period at ``info.rate`` when the frame
  has none); the first such frame gets the stream start time, else 0.
* Damage: like FFmpeg, a packet the decoder rejects is skipped and decoding
  goes on with the next one (``packets_skipped``); the decoder conceals what
  it can (``frames_concealed`` counts pictures decoded with such repairs).
  Once the file is read to its end, ``frames_lost`` tells how many of its
  pictures (one per video packet) did not come out. ``Frame.index`` stays
  gapless and ``Frame.pts`` is each decoded picture's own pts, so a lost
  picture leaves a gap in time, not in index. The first frame is decoded at
  open, so a file with no decodable picture at all is an ``InputError``.
* Truncated files (cut short at the end): decoding stops at a demux error or
  at the end of the data, after the frames decoded so far, without raising.
  ``truncated`` becomes True, with a warning, when reading ended on an error,
  when fewer packets were read than the container declares frames, or when
  the last packet was cut by the end of the file (it is then counted as
  truncation, not damage). An mp4 cut before its index (``moov`` at the end,
  the default) cannot be opened at all: ``InputError``. A file that opens but
  yields no frame at all (cut right after its header) is an ``InputError`` at
  open too.
* Orientation: a display matrix (phones' rotate=90/180/270, mirroring) is
  applied to every picture, as FFmpeg's ``-autorotate`` does:
  ``info.width``/``info.height`` are the displayed size and frames are
  upright; see ``stages.orientation``.
* Stopping: ``close()`` may be called from any thread. A source being
  iterated elsewhere stops at the next frame boundary and releases the file
  in the iterating thread; otherwise it is released at once.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from stages.errors import InputError, InputNotFoundError
from stages.frames import Frame
from stages.orientation import UPRIGHT, Orientation, UnsupportedOrientation, frame_orientation
from stages.read_tally import ReadTally
from stages.source import StoppableSource

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
_DEFAULT_RATE = Fraction(25)


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
        frames: Frame count the container declares, or None if unknown.
        duration: Stream duration in seconds, or None if unknown.
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


def probe_input(path: str | os.PathLike) -> None:
    """Check that ``path`` is a readable file with a video (or image) stream.

    Args:
        path: File to check.

    Raises:
        InputNotFoundError: The path does not exist.
        InputError: A directory, an empty or unreadable file, a file PyAV
            cannot read, or one without a video stream.
    """
    _check_path(path)
    with _open_container(path) as container:
        _video_stream(container, path)


def open_source(path: str | os.PathLike, *, name: str | None = None
                ) -> VideoFileSource | ImageFileSource:
    """Open a file as the right kind of source.

    Image extensions (``IMAGE_EXTENSIONS``) and files that PyAV sees as a
    single still picture (image demuxers) open as ``ImageFileSource``;
    anything else as ``VideoFileSource``.

    Args:
        path: Video or image file.
        name: Source id; defaults to the path as given.

    Returns:
        An open source; use it as a context manager.

    Raises:
        InputError: The file cannot be used (see ``probe_input``).
    """
    p = _check_path(path)
    if p.suffix.lower() in IMAGE_EXTENSIONS or _is_still_image(path):
        return ImageFileSource(path, name=name)
    return VideoFileSource(path, name=name)


class _Source(StoppableSource):
    """A file source: ``StoppableSource`` plus whether the file was cut short
    or damaged (see ``VideoFileSource``; an image is all or nothing).

    Subclasses set ``info`` and define ``_frames()`` and ``_release()``.
    """

    info: SourceInfo
    packets_skipped = 0
    frames_concealed = 0
    frames_lost = 0

    def __init__(self) -> None:
        self.truncated = False
        super().__init__()


class VideoFileSource(_Source):
    """Frames of a video file, decoded by PyAV (slice-threaded; see ``_prime``).

    Attributes:
        info: ``SourceInfo`` of the video stream.
        frames_read: Frames handed out so far.
        truncated: True when the file is cut short at its end (see the
            module's notes).
        packets_skipped: Video packets the decoder rejected (damaged data).
        frames_concealed: Frames handed out that the decoder repaired (its
            ``corrupt`` flag); they are kept, as FFmpeg keeps them.
        frames_lost: Pictures of the file that did not decode, counted once
            the file was read to its end (0 before, and for an undamaged
            file).
    """

    def __init__(self, path: str | os.PathLike, *, name: str | None = None) -> None:
        """Open ``path`` and decode its first frame.

        Args:
            path: Video file.
            name: Source id; defaults to the path as given.

        Raises:
            InputError: The file cannot be used, or has no decodable frame.
        """
        _check_path(path)
        self._path = os.fspath(path)
        self._error: av.FFmpegError | None = None
        self.frames_lost = 0
        self._released = False
        self._container = _open_container(path)
        try:
            self._prime(name)
        except BaseException:
            self._container.close()
            raise
        super().__init__()

    def _prime(self, name: str | None) -> None:
        stream = _video_stream(self._container, self._path)
        # Not frame threading: when a frame-threaded decoder meets an error while
        # draining, PyAV stops the drain and the frames still in its threads are
        # lost (the last thread_count frames of a cut or damaged file).
        stream.thread_type = "SLICE"
        self._tally = ReadTally(os.path.getsize(self._path), _time_base(stream), _rate(stream),
                                stream.frames or None, _declared_end(stream, self._container))
        self._decoded = self._decode(stream)
        self._first = next(self._decoded, None)
        if self._first is None:
            why = f" ({_reason(self._error)})" if self._error else ""
            raise InputError(f"{self._path}: no decodable video frame, "
                             f"the file is truncated or damaged{why}")
        self._orientation = self._orientation_of(self._first)
        self.info = _stream_info(name or self._path, stream, self._container, self._first,
                                 self._orientation)
        self._tb = self.info.time_base
        self._step = max(1, round(1 / (self.info.rate * self._tb)))
        self._start = stream.start_time or 0
        self._last_ticks: int | None = None

    @property
    def packets_skipped(self) -> int:
        return self._tally.rejected

    @property
    def frames_concealed(self) -> int:
        return self._tally.repaired

    def _orientation_of(self, av_frame: av.VideoFrame) -> Orientation:
        orientation = _orientation(av_frame, self._path)
        if not orientation.upright:
            log.info("%s: display matrix (rotation %d degrees%s): frames are turned to "
                     "display orientation", self._path, orientation.rotation,
                     ", mirrored" if orientation.mirrored else "")
        return orientation

    def _decode(self, stream) -> Iterator[av.VideoFrame]:
        # PyAV's demux ends with an empty packet, which drains the decoder.
        # A demux error ends the file (as in FFmpeg); a decode error skips the packet.
        try:
            for packet in self._container.demux(stream):
                if packet.size:
                    self._tally.read(packet.pts, packet.duration, packet.pos, packet.size)
                yield from self._decode_packet(stream, packet)
        except av.error.EOFError:
            pass
        except av.FFmpegError as exc:
            self._error = exc

    def _decode_packet(self, stream, packet: av.Packet) -> list[av.VideoFrame]:
        try:
            frames = stream.decode(packet)
        except av.error.EOFError:
            raise
        except av.FFmpegError as exc:
            self._tally.reject()
            log.debug("%s: skipped an undecodable packet at byte %s: %s", self._path,
                      packet.pos, _reason(exc))
            return []
        self._tally.decoded(f.is_corrupt for f in frames)
        return frames

    def _frames(self) -> Iterator[Frame]:
        try:
            first, self._first = self._first, None
            for av_frame in itertools.chain((first,), self._decoded):
                frame = self._to_frame(av_frame)
                self.frames_read += 1
                yield frame
            self._check_complete()
        finally:
            self._release()

    def _to_frame(self, av_frame: av.VideoFrame) -> Frame:
        ticks = self._ticks(av_frame)
        tb = self._tb
        image = self._orientation.apply(av_frame.to_ndarray(format="bgr24"))
        return Frame(source=self.info.name, index=self.frames_read,
                     pts=ticks * tb.numerator / tb.denominator, image=image, wall=time.time(),
                     pts_ticks=ticks, time_base=(tb.numerator, tb.denominator))

    def _ticks(self, av_frame: av.VideoFrame) -> int:
        ticks = av_frame.pts
        if ticks is None:
            last = self._last_ticks
            ticks = self._start if last is None else last + (av_frame.duration or self._step)
        self._last_ticks = ticks
        return ticks

    def _check_complete(self) -> None:
        tally = self._tally
        cut = tally.settle_cut()
        self.frames_lost = tally.lost(self.frames_read)
        if self.frames_lost or tally.repaired:
            log.warning("%s: damaged: %d of %d pictures could not be decoded and were "
                        "skipped (%d undecodable packets), %d decoded with repairs",
                        self._path, self.frames_lost, tally.packets, tally.rejected,
                        tally.repaired)
        self.truncated = self._truncated(cut)

    def _truncated(self, cut: bool) -> bool:
        tally = self._tally
        if self._error is not None:
            why = f"reading stopped after {self.frames_read} frames: {_reason(self._error)}"
        elif tally.short_of_declared_count():
            why = (f"the file declares {tally.declared_frames} frames but holds only "
                   f"{tally.packets}; it is truncated")
        elif cut:
            why = (f"the last frame is cut short: the file is truncated after "
                   f"{self.frames_read} frames")
        elif tally.ended_early():
            why = (f"reading ended at {tally.read_until:.2f} s of the {tally.declared_end:.2f} s "
                   f"the file declares; it is truncated or damaged there")
        else:
            return False
        log.warning("%s: %s", self._path, why)
        return True

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self._decoded.close()
            self._container.close()


class ImageFileSource(_Source):
    """A still image as a one-frame source (pts 0, time base 1/1, rate 1).

    Decoded with OpenCV (by content, whatever the extension); formats OpenCV
    cannot read are tried with PyAV.
    """

    def __init__(self, path: str | os.PathLike, *, name: str | None = None) -> None:
        """Open and decode ``path``.

        Args:
            path: Image file.
            name: Source id; defaults to the path as given.

        Raises:
            InputError: The file cannot be used or is not a readable image.
        """
        p = _check_path(path)
        self._image: np.ndarray | None = _read_image(p, os.fspath(path))
        h, w = self._image.shape[:2]
        self.info = SourceInfo(name=name or os.fspath(path), width=w, height=h,
                               rate=Fraction(1), time_base=Fraction(1), frames=1,
                               duration=None, codec=p.suffix.lower().lstrip(".") or "image")
        super().__init__()

    def _frames(self) -> Iterator[Frame]:
        try:
            image, self._image = self._image, None
            frame = Frame(source=self.info.name, index=0, pts=0.0, image=image,
                          wall=time.time(), pts_ticks=0, time_base=(1, 1))
            self.frames_read = 1
            yield frame
        finally:
            self._release()

    def _release(self) -> None:
        self._image = None


def _check_path(path: str | os.PathLike) -> Path:
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


def _open_container(path: str | os.PathLike) -> av.container.InputContainer:
    try:
        return av.open(os.fspath(path))
    except av.FFmpegError as exc:
        raise InputError(f"{os.fspath(path)}: not a video file PyAV can read "
                         f"({_reason(exc)})") from exc


def _video_stream(container, path: str | os.PathLike):
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        raise InputError(f"{os.fspath(path)}: has no video stream "
                         f"(found: {', '.join(kinds)})")
    return container.streams.video[0]


def _time_base(stream) -> Fraction:
    return Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)


def _rate(stream) -> Fraction:
    return Fraction(stream.average_rate or stream.guessed_rate or _DEFAULT_RATE)


def _stream_info(name: str, stream, container, first: av.VideoFrame,
                 orientation: Orientation) -> SourceInfo:
    tb = _time_base(stream)
    rate = _rate(stream)
    if stream.duration is not None:
        duration = float(stream.duration * tb)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    else:
        duration = None
    width, height = orientation.size(first.width, first.height)
    return SourceInfo(name=name, width=width, height=height, rate=Fraction(rate),
                      time_base=tb, frames=stream.frames or None, duration=duration,
                      codec=stream.codec_context.name, rotation=orientation.rotation)


def _declared_end(stream, container) -> float | None:
    """Where the file says the video ends, in seconds of stream time: the
    stream's duration, else its Matroska ``DURATION`` tag, else the file's
    duration when the video is its only stream."""
    tb = _time_base(stream)
    start = float((stream.start_time or 0) * tb)
    if stream.duration is not None:
        return start + float(stream.duration * tb)
    tag = _parse_clock(stream.metadata.get("DURATION", ""))
    if tag is not None:
        return start + tag
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


def _orientation(av_frame: av.VideoFrame, path: str | os.PathLike) -> Orientation:
    try:
        return frame_orientation(av_frame)
    except UnsupportedOrientation as exc:
        log.warning("%s: %s; processing the pictures as coded", os.fspath(path), exc)
        return UPRIGHT


def _is_still_image(path: str | os.PathLike) -> bool:
    try:
        with av.open(os.fspath(path)) as container:
            fmt = container.format.name
    except av.FFmpegError:
        return False
    return fmt == "image2" or fmt.endswith("_pipe")


def _read_image(p: Path, shown: str) -> np.ndarray:
    image = cv2.imdecode(np.fromfile(p, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        image = _read_image_av(p)
    if image is None:
        raise InputError(f"{shown}: not an image file OpenCV or PyAV can read")
    return np.ascontiguousarray(image)


def _read_image_av(p: Path) -> np.ndarray | None:
    try:
        with av.open(os.fspath(p)) as container:
            for frame in container.decode(video=0):
                return _orientation(frame, p).apply(frame.to_ndarray(format="bgr24"))
    except (av.FFmpegError, IndexError):
        return None
    return None


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
