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
  gapless (unless a stride or range is selected) and ``Frame.pts`` is each decoded picture's own pts, so a lost
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
  upright; see ``stages.sources.orientation``.
* Stride and range (``frame_step``, ``start``, ``end``; see ``Selection``):
  the source yields every Nth decoded picture of ``[start, end)``, counting
  from the range's first picture. ``start``/``end`` are seconds from the
  file's start time (the container's, as ``ffmpeg -ss`` counts), compared
  with each picture's own pts. Every Frame keeps the original's numbers:
  ``index`` is the picture's decode index in the whole file and ``pts`` its
  own, so indexes have gaps. A file with timestamps is seeked (PyAV, on the
  video stream, backward to the key frame before ``start``), then decoded and
  discarded up to ``start``; a seek that lands after ``start`` is retried
  further back. The index of the picture landed on comes from its pts when
  the stream is CFR (``frame_grid``: an mp4/mov whose declared frame count
  is its duration times its rate, the pts on that grid), else from counting
  the packets before it, read from the file's start without decoding
  (``pictures_before``: VFR, and Matroska/WebM, which declare no frame
  count). After a seek the index counts every picture of the file before it,
  the undecodable ones of a damaged file too. A file without timestamps (raw
  H.264) is decoded from its start. Reading stops at the first picture at or
  after ``end``: the rest of the file is not read, and it is neither lost nor
  truncated (``frames_lost`` is then the rejected packets of what was read).
  A range that holds no picture is an ``InputError`` at open.
  ``info.frames`` is the number of frames that will be yielded, when known
  (a declared frame count; for a range also a CFR grid), and
  ``info.duration`` the span they cover.
* Resuming (``resume_at``, a run going on from a checkpoint,
  ``stages.outputs.resume``): the file is read for the same selection as the
  run that made the checkpoint, and the selected frames before the index
  given are decoded but neither converted nor yielded, so every frame after
  it has the index, pts and picture that run gave it. Given that frame's
  pts too, a CFR stream whose frame is on its grid at that index (no picture
  lost before it) is seeked straight there instead, as for ``start``; the
  tally of damage then covers what is read after the seek.
* Several video streams: the one FFmpeg's command line maps by default is
  read (``best_video_stream``: the largest picture, a stream marked
  default counting 5 million pixels more, cover art last), and one INFO line
  names it; ``video_stream`` picks another (the Nth video stream, from 0, as
  ``ffmpeg -map 0:v:N``).
* Stopping: ``close()`` may be called from any thread. A source being
  iterated elsewhere stops at the next frame boundary and releases the file
  in the iterating thread; otherwise it is released at once.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import logging
import math
import os
import time
from collections.abc import Iterator
from fractions import Fraction

import av

from stages.errors import InputError
from stages.sources.file_source import FileSource, SourceInfo, check_path, reason
from stages.frames import Frame
from stages.sources.image import ImageFileSource, is_still_image
from stages.sources.orientation import Orientation, orientation_of
from stages.sources.probe import (declared_end, is_image, stream_duration, stream_rate,
                          stream_time_base)
from stages.sources._read_tally import ReadTally
from stages.sources._selection import Selection, frame_grid, grid_index, pictures_before
from stages.sources.stream_choice import say_which_stream
from stages.sources.stream_choice import video_stream as choose_video_stream

log = logging.getLogger(__name__)

_AVFMT_NOTIMESTAMPS = 0x0080  # libavformat: the format has no timestamps (raw streams)
# a decoded picture: (decode index, pts ticks, the PyAV frame)
_Picture = tuple[int, int, av.VideoFrame]


def probe_input(path: str | os.PathLike, *, video_stream: int | None = None) -> None:
    """Check that ``path`` is a readable file with a video (or image) stream.

    Args:
        path: File to check.
        video_stream: The video stream wanted (None: FFmpeg's choice).

    Raises:
        InputNotFoundError: The path does not exist.
        InputError: A directory, an empty or unreadable file, a file PyAV
            cannot read, or one without a video stream (or the one wanted).
    """
    check_path(path)
    with _open_container(path) as container:
        choose_video_stream(container, path, video_stream)


def open_source(path: str | os.PathLike, *, name: str | None = None, frame_step: int = 1,
                start: float | None = None, end: float | None = None,
                video_stream: int | None = None, resume_at: int | None = None,
                resume_pts: float | None = None) -> VideoFileSource | ImageFileSource:
    """Open a file as the right kind of source.

    Image extensions (``is_image``) and files that PyAV sees as a
    single still picture (image demuxers) open as ``ImageFileSource``;
    anything else as ``VideoFileSource``.

    Args:
        path: Video or image file.
        name: Source id; defaults to the path as given.
        frame_step: Keep every Nth frame of the range (videos only).
        start: Seconds from the file's start time where the range begins
            (videos only; see ``VideoFileSource``).
        end: Seconds from the file's start time where the range ends,
            exclusive (videos only).
        video_stream: Which video stream to read, counting video streams
            from 0 (videos only; None: the one FFmpeg would pick, see
            ``best_video_stream``).
        resume_at: Yield only the frames from this index on (videos only; see
            ``VideoFileSource``).
        resume_pts: The pts of that frame, in seconds, to seek to it.

    Returns:
        An open source; use it as a context manager.

    Raises:
        InputError: The file cannot be used (see ``probe_input``), a
            selection setting is out of range, a selection or a video stream
            is given for a still image, the file has no such video stream, or
            the range holds no frame.
    """
    selection = Selection(frame_step=frame_step, start=start, end=end)
    p = check_path(path)
    if is_image(p) or is_still_image(path):
        if not selection.everything:
            raise InputError(f"{os.fspath(path)}: --frame-step, --start and --end apply to "
                             f"videos; this is a still image")
        if video_stream is not None:
            raise InputError(f"{os.fspath(path)}: --video-stream applies to videos; this is a "
                             f"still image")
        return ImageFileSource(path, name=name)
    return VideoFileSource(path, name=name, frame_step=frame_step, start=start, end=end,
                           video_stream=video_stream, resume_at=resume_at,
                           resume_pts=resume_pts)


class VideoFileSource(FileSource):
    """Frames of a video file, decoded by PyAV (slice-threaded; see ``_prime``).

    A ``Selection`` (``frame_step``, ``start``, ``end``) limits what is
    yielded; see the module's notes on frame stride and time range.

    Attributes:
        info: ``SourceInfo`` of the video stream.
        frames_read: Frames handed out so far.
        frames_decoded: Pictures the decoder put out so far, counting those a
            stride or range skipped (a seek keeps it low).
        seeked: True when the source seeked to ``start`` instead of decoding
            from the file's start.
        truncated: True when the file is cut short at its end (see the
            module's notes).
        packets_skipped: Video packets the decoder rejected (damaged data).
        frames_concealed: Frames handed out that the decoder repaired (its
            ``corrupt`` flag); they are kept, as FFmpeg keeps them.
        frames_lost: Pictures of the file that did not decode, counted once
            the file (or the range) was read to its end (0 before, and for an
            undamaged file).
    """

    def __init__(self, path: str | os.PathLike, *, name: str | None = None, frame_step: int = 1,
                 start: float | None = None, end: float | None = None,
                 video_stream: int | None = None, resume_at: int | None = None,
                 resume_pts: float | None = None) -> None:
        """Open ``path`` and decode its first frame (the first one selected).

        Args:
            path: Video file.
            name: Source id; defaults to the path as given.
            frame_step: Keep every Nth frame of the range, from its first.
            start: Seconds from the file's start time where the range begins.
            end: Seconds from the file's start time where it ends (exclusive).
            video_stream: Which video stream to read, counting video streams
                from 0 (None: ``best_video_stream``).
            resume_at: Yield only the selected frames whose index is at least
                this (a run resumed from a checkpoint, ``stages.outputs.resume``):
                the file is read as for the whole selection, so every frame
                keeps its index, and the frames before are decoded but not
                converted nor counted in ``frames_read``.
            resume_pts: The pts (seconds) of frame ``resume_at``: the source
                seeks straight to it where that keeps every index (a CFR
                stream, nothing lost before it; see the module's notes).

        Raises:
            InputError: The file cannot be used, has no decodable frame (or
                no such video stream), a selection setting is out of range,
                or the range holds no frame.
        """
        self._selection = Selection(frame_step=frame_step, start=start, end=end)
        self._resume_at = resume_at or 0
        self._resume_pts = resume_pts if resume_at else None
        check_path(path)
        self._path = os.fspath(path)
        self._wanted_stream = video_stream
        self._error: av.FFmpegError | None = None
        self.frames_lost = 0
        self.frames_decoded = 0
        self.seeked = False
        self._released = False
        self._container = _open_container(path)
        try:
            self._prime(name)
        except BaseException:
            self._container.close()
            raise
        super().__init__()

    def _prime(self, name: str | None) -> None:
        stream = choose_video_stream(self._container, self._path, self._wanted_stream)
        say_which_stream(self._path, self._container, stream, self._wanted_stream)
        # Not frame threading: when a frame-threaded decoder meets an error while
        # draining, PyAV stops the drain and the frames still in its threads are
        # lost (the last thread_count frames of a cut or damaged file).
        stream.thread_type = "SLICE"
        self._stream = stream
        self._tb, rate = stream_time_base(stream), stream_rate(stream)
        self._step = max(1, round(1 / (rate * self._tb)))
        self._start = stream.start_time or 0
        self._last_ticks: int | None = None
        self._begin_reading(stream.frames or None)
        first = next(self._pictures, None)
        if first is None:
            why = f" ({reason(self._error)})" if self._error else ""
            raise InputError(f"{self._path}: no decodable video frame, "
                             f"the file is truncated or damaged{why}")
        self._orientation = self._orientation_of(first[2])
        self._first_ticks = first[1]
        self._period = frame_grid(stream, rate, self._tb)
        self._start_at, self._end_at = self._selection.bounds(self._origin(first))
        self._at_end = False
        self._pending = self._first_in_range(first)
        info = _stream_info(name or self._path, stream, self._container, first[2],
                            self._orientation)
        frames, duration = self._planned(info)
        self.info = dataclasses.replace(info, frames=frames, duration=duration)
        if self._resume_pts is not None and self._resume_at > self._pending[0]:
            self._seek_to_resume(first)

    def _seek_to_resume(self, first: _Picture) -> None:
        """Seek straight to the frame a resumed run starts at, when that gives it, and
        every frame after it, the index a reading from the start gives: the stream
        is CFR (``frame_grid``) and the frame's pts is on the grid at its index (so
        no picture before it was lost). Otherwise the frames before it are decoded."""
        target = round(Fraction(self._resume_pts) / self._tb)
        on_grid = (self._period is not None and self._seekable(first)
                   and grid_index(target, self._first_ticks, self._period) == self._resume_at)
        if not on_grid:
            return
        reading = self._pictures
        landed = self._seek(target)
        if landed is None and self._pictures is reading:
            return  # the file cannot seek: decode up to the frame
        while landed is not None and landed[0] < self._resume_at:
            landed = next(self._pictures, None)
        if landed is None or landed[:2] != (self._resume_at, target):
            raise InputError(f"{self._path}: cannot seek to frame {self._resume_at} to resume "
                             f"there (landed on {landed[:2] if landed else 'nothing'})")
        self._pending = landed

    def _begin_reading(self, declared_frames: int | None) -> None:
        """Start (or, after a seek, restart) the tally and the decoded pictures."""
        stream = self._stream
        self._tally = ReadTally(os.path.getsize(self._path), self._tb, stream_rate(stream),
                                declared_frames, declared_end(stream, self._container))
        self._tallied = 0  # pictures out of the decoder since the tally began
        self._index = 0
        self._pictures = self._number(self._decode(stream))

    def _number(self, decoded: Iterator[av.VideoFrame]) -> Iterator[_Picture]:
        for av_frame in decoded:
            self._tallied += 1
            self.frames_decoded += 1
            index, self._index = self._index, self._index + 1
            yield index, self._ticks(av_frame), av_frame

    def _origin(self, first: _Picture) -> Fraction:
        """The file's start time in seconds, as ``ffmpeg -ss`` counts from it."""
        start = self._stream.start_time
        video = (first[1] if start is None else start) * self._tb
        start_us = self._container.start_time
        if start_us is None or round(video * 1_000_000) == start_us:
            return video
        return Fraction(start_us, 1_000_000)

    def _in_range(self, picture: _Picture, bound: Fraction | None) -> bool:
        return bound is None or picture[1] * self._tb >= bound

    def _first_in_range(self, first: _Picture) -> _Picture:
        """The first picture at or after ``start`` (seeking there if it can)."""
        picture = first
        if not self._in_range(first, self._start_at):
            if self._seekable(first):
                picture = self._seek(math.floor(self._start_at / self._tb)) or first
            while not self._in_range(picture, self._start_at):
                picture = next(self._pictures, None)
                if picture is None:
                    raise InputError(f"{self._path}: --start {self._selection.start:g} s is at "
                                     f"or beyond the end of the video: no frame to process")
        if self._end_at is not None and self._in_range(picture, self._end_at):
            raise InputError(f"{self._path}: no frame between --start "
                             f"{self._selection.start or 0:g} s and --end "
                             f"{self._selection.end:g} s")
        return picture

    def _seekable(self, first: _Picture) -> bool:
        return (first[2].pts is not None
                and not self._container.format.flags & _AVFMT_NOTIMESTAMPS)

    def _seek(self, target: int) -> _Picture | None:
        """Seek to the key frame at or before pts ``target`` and number the pictures.

        The index of the picture landed on comes from the frame grid (CFR,
        see ``frame_grid``) or else from counting the pictures before it
        (``pictures_before``). A seek that lands after ``target`` (a container
        indexing key frames by dts) is retried further back.

        Returns:
            The picture landed on, or None when the file cannot seek.
        """
        back, first = 0, self._first_ticks
        while True:
            to = max(target - back, first)
            try:
                self._container.seek(to, stream=self._stream, backward=True)
            except av.FFmpegError as exc:
                log.info("%s: cannot seek (%s); decoding up to --start", self._path,
                         reason(exc))
                return None
            self._pictures.close()
            self._begin_reading(None)
            landed = next(self._pictures, None)
            if landed is None or landed[1] <= target or to == first:
                break
            back = max(2 * back, round(1 / self._tb))
        self.seeked = True
        if landed is not None:
            landed = (self._index_of(landed[1], target), *landed[1:])
            self._index = landed[0] + 1
        return landed

    def _index_of(self, ticks: int, target: int) -> int:
        index = None
        if self._period is not None:
            index = grid_index(ticks, self._first_ticks, self._period)
        if index is None:
            log.info("%s: not constant frame rate: counting the frames before --start "
                     "(reading, not decoding, them)", self._path)
            before = pictures_before(self._path, self._stream.index, self._first_ticks,
                                     max(target, ticks) + 1)
            index = bisect.bisect_left(before, ticks)
        return index

    def _planned(self, info: SourceInfo) -> tuple[int | None, float | None]:
        """(frames, duration) that will be yielded, where known; see ``SourceInfo``."""
        declared = info.frames
        step = self._selection.frame_step
        if self._start_at is None and self._end_at is None:
            return (None if declared is None else -(-declared // step)), info.duration
        if self._period is None:
            return None, None
        period_s = self._period * self._tb
        first_s = self._first_ticks * self._tb
        ends = [declared] if declared else []
        if self._end_at is not None:
            ends.append(math.ceil((self._end_at - first_s) / period_s))
        if not ends:
            return None, None
        span = min(ends) - self._pending[0]
        if span <= 0:
            return None, None
        return -(-span // step), float(span * period_s)

    @property
    def packets_skipped(self) -> int:
        return self._tally.rejected

    @property
    def frames_concealed(self) -> int:
        return self._tally.repaired

    def _orientation_of(self, av_frame: av.VideoFrame) -> Orientation:
        orientation = orientation_of(av_frame, self._path)
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
                      packet.pos, reason(exc))
            return []
        self._tally.decoded(f.is_corrupt for f in frames)
        return frames

    def _frames(self) -> Iterator[Frame]:
        try:
            step = self._selection.frame_step
            for position, picture in enumerate(self._selected()):
                if position % step == 0 and picture[0] >= self._resume_at:
                    frame = self._to_frame(*picture)
                    self.frames_read += 1
                    yield frame
                elif self._stop.is_set():
                    return
            self._check_complete()
        finally:
            self._release()

    def _selected(self) -> Iterator[_Picture]:
        """The pictures of the range, from the first; stops reading at ``end``."""
        pending, self._pending = self._pending, None
        for picture in itertools.chain((pending,), self._pictures):
            if self._end_at is not None and self._in_range(picture, self._end_at):
                self._at_end = True
                return
            yield picture

    def _to_frame(self, index: int, ticks: int, av_frame: av.VideoFrame) -> Frame:
        tb = self._tb
        image = self._orientation.apply(av_frame.to_ndarray(format="bgr24"))
        return Frame(source=self.info.name, index=index,
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
        if self._at_end:
            # Reading stopped at --end: the rest of the file was never read, so it is
            # neither lost nor truncated; rejected packets are the pictures lost.
            self.frames_lost = tally.rejected
            self._warn_damage()
            return
        cut = tally.settle_cut()
        self.frames_lost = tally.lost(self._tallied)
        self._warn_damage()
        self.truncated = self._truncated(cut)

    def _warn_damage(self) -> None:
        tally = self._tally
        if self.frames_lost or tally.repaired:
            log.warning("%s: damaged: %d of %d pictures could not be decoded and were "
                        "skipped (%d undecodable packets), %d decoded with repairs",
                        self._path, self.frames_lost, tally.packets, tally.rejected,
                        tally.repaired)

    def _truncated(self, cut: bool) -> bool:
        tally = self._tally
        if self._error is not None:
            why = f"reading stopped after {self.frames_read} frames: {reason(self._error)}"
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
            self._pictures.close()
            self._container.close()


def _open_container(path: str | os.PathLike) -> av.container.InputContainer:
    try:
        return av.open(os.fspath(path))
    except av.FFmpegError as exc:
        raise InputError(f"{os.fspath(path)}: not a video file PyAV can read "
                         f"({reason(exc)})") from exc


def _stream_info(name: str, stream, container, first: av.VideoFrame,
                 orientation: Orientation) -> SourceInfo:
    tb = stream_time_base(stream)
    rate = stream_rate(stream)
    duration = stream_duration(stream, container)
    width, height = orientation.size(first.width, first.height)
    return SourceInfo(name=name, width=width, height=height, rate=Fraction(rate),
                      time_base=tb, frames=stream.frames or None, duration=duration,
                      codec=stream.codec_context.name, rotation=orientation.rotation)
