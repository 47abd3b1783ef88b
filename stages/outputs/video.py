"""Annotated video output: H.264 (libx264, yuv420p) through PyAV.

Exact timestamps: every picture is encoded with the pts the caller gives, in
the source's time base. The mp4/mov muxer stores them in a track timescale of
its own choosing and, for B-frames or a first pts other than 0, writes an edit
list whose times are in the *movie* timescale (1/1000 by default), which
rounds a start such as 7 * 1001/30000 s to whole milliseconds. So both
``video_track_timescale`` and ``movie_timescale`` are set to the same value: the
time base's denominator doubled until it is at least 10000 (what the muxer
picks by itself). Every source tick is then a whole number of output ticks and
pts read back in seconds are exactly the input's. Matroska (``.mkv``) keeps
timestamps in milliseconds only; use mp4/mov for exact timestamps.

Average rate: PyAV/FFmpeg report an mp4's average rate as frames divided by
the sum of the sample durations, and the last sample's duration is not implied
by any timestamp (libx264 packets carry none; the muxer then uses one period of
the stream rate). When as many frames were written as the source declares, the
last packet is given the duration that makes the total equal the source's
declared duration, so the average rate matches the input's, also for variable
frame rate; otherwise (partial runs, sources without a count) the muxer's
default applies. For this one packet is held back before muxing.

Odd sizes: yuv420p needs an even width and height, so an odd-sized picture is
padded by one pixel at the right and/or bottom (edge pixels repeated); the
output is then one pixel larger than the input and keypoint coordinates are
unaffected. ``VideoWriter.size`` tells the written size.

Safe files: the video is written to ``.<name>.partial-<pid>-<token>@<host>``
next to the final path. ``close()`` finalises it and renames it over the final
path, also when the ``with`` block raised (e.g. KeyboardInterrupt): the encoder
is flushed and the container finalised, so an interrupted run leaves a playable
video of the frames done. ``finish()`` does the same but leaves the renaming
to the caller (``stages.outputs.file_set`` commits a run's files as a set). A file that
already exists at the final path is replaced in one rename, never left
half-written. If no frame was written, the temporary file is removed and the
final path is not touched.

After a kill: an mp4/mov partial is written fragmented (a fragment per
keyframe or second of video, flushed as it is cut), and a Matroska one in
clusters of at most a second, flushed as they are cut, so what a SIGKILL
leaves is playable, with its audio, up to its last fragment or cluster:
about a second and the encoder's lookahead before the kill. A fragmented file has no edit list (the
muxer shifts all tracks by one offset and starts each at 0), so on finish it
is remuxed (no re-encoding) into an ordinary mp4 with every packet put back
at the times it was written with, from the first two packets of each track:
timestamps, durations and the audio's priming stay exact.

Audio: given ``audio_from`` (the input file), the input's audio streams are
copied into the output unchanged, packet for packet (no re-encoding, same
pts, same bytes). The streams are added from the input's as templates when
the writer is created (a stream cannot be added once writing started); a
second demuxer of the input, reading audio only, then feeds the muxer: before
each video packet, the audio packets up to its time are muxed, so the two are
interleaved as in the input and nothing is buffered. A codec the output
container does not take (e.g. pcm_mulaw into mp4; the muxer is asked by a
trial header in memory) is dropped with a warning; it is not transcoded. On
close the rest of the audio is copied when the whole source was written (as
many frames as it declares, or up to its duration); after an interrupted or
truncated run, only the audio that starts before the end of the last frame.
A damaged audio stream stops the audio copy with a warning; the video goes on.
Matroska cannot store the negative start of AAC audio (its encoder priming):
the muxer then shifts every stream, the video too, by that lead (about 20 ms);
mp4/mov keep it in an edit list and every timestamp stays exact.
"""

from __future__ import annotations

import logging
import os
import threading
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av
import cv2
import numpy as np

from stages.outputs.atomic import Staged, commit, partial_path, remove_quietly, set_aside
from stages.outputs._audio_copy import open_audio
from stages.errors import OutputError

if TYPE_CHECKING:
    from stages.sources.file_source import SourceInfo

log = logging.getLogger(__name__)

_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
_MAX_TIMESCALE = 2**31 - 1
_BT601 = 6  # AVCOL_SPC_SMPTE170M: the matrix of cv2.COLOR_BGR2YUV_I420
_LIMITED_RANGE = 1  # AVCOL_RANGE_MPEG


class VideoWriter:
    """Writes BGR pictures with given timestamps to an H.264 video file.

    Attributes:
        path: Final output path.
        size: (width, height) written, the input size rounded up to even.
        frames_written: Pictures encoded so far.
        pts_adjusted: Pictures whose pts was not after the previous one and
            was moved one tick later (the muxer needs increasing timestamps).
    """

    def __init__(self, path: str | os.PathLike, info: SourceInfo, *,
                 preset: str = "veryfast", crf: int = 23, threads: int = 0,
                 faststart: bool = False, audio_from: str | os.PathLike | None = None,
                 audio_range: bool = False, after_ticks: int | None = None) -> None:
        """Create the temporary output file and set up the encoder.

        Args:
            path: Final video path; ``.mp4``, ``.m4v``, ``.mov`` or ``.mkv``.
            info: Source description: width, height, rate and time_base are
                used. ``write`` takes pts in ``info.time_base`` ticks.
            preset: libx264 preset (speed/size trade-off).
            crf: libx264 constant rate factor (quality; lower is better).
            threads: Encoder threads, 0 for automatic.
            faststart: Move the mp4 index to the front on close (a second
                pass over the file) so players can start before downloading all.
            audio_from: Input file whose audio streams are copied into the
                output (see the module docstring); None for no audio.
            audio_range: The video holds a time range of the input
                (``--start``/``--end``): only the audio from its first frame
                to the end of its last is copied, so the two stay in sync.
            after_ticks: The pts of the picture before the first one this writer
                gets (the last of the previous piece of a video written in
                pieces, ``stages.outputs.pieces``): pictures must come after it.

        Raises:
            OutputError: Unsupported extension, or the file cannot be created.
        """
        self.path = Path(path)
        fmt = _format_for(self.path)
        self._shape = (info.height, info.width, 3)
        self.size = (info.width + info.width % 2, info.height + info.height % 2)
        self._tb = Fraction(info.time_base)
        self._step = max(1, round(1 / (Fraction(info.rate) * self._tb)))
        self._tmp = partial_path(self.path)
        self._fmt = fmt
        self._final_options = muxer_options(fmt, self._tb, faststart=faststart)
        self._fragmented = fmt in ("mp4", "mov")  # readable after a kill; remuxed on finish
        self._container = _open_output(self._tmp, self.path, fmt, _partial_options(fmt, self._tb))
        self._stream = self._add_stream(info.rate, preset, crf, threads)
        self._firsts = _FirstPackets()
        self._audio = open_audio(audio_from, self._container, fmt, self.path,
                                  on_mux=self._firsts.note)
        self._audio_range = audio_range
        self._duration = info.duration
        self.frames_written = 0
        self.pts_adjusted = 0
        self._last_ticks: int | None = after_ticks
        self._first_ticks: int | None = None
        self._whole_ticks = _whole_ticks(info, self._tb)
        self._first_dts: int | None = None
        self._held: av.Packet | None = None
        self._lock = threading.Lock()
        self._closed = False

    def _add_stream(self, rate: Fraction, preset: str, crf: int, threads: int):
        stream = self._container.add_stream(
            "libx264", rate=Fraction(rate), options={"preset": preset, "crf": str(crf)})
        stream.width, stream.height = self.size
        stream.pix_fmt = "yuv420p"
        stream.time_base = self._tb
        ctx = stream.codec_context
        ctx.time_base = self._tb
        ctx.thread_count = threads
        ctx.colorspace = _BT601
        ctx.color_range = _LIMITED_RANGE
        return stream

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            log.warning("%s: stopped by %s; keeping the %d frames written",
                        self.path, exc_type.__name__, self.frames_written)
        self.close()

    def write(self, image: np.ndarray, pts_ticks: int | None) -> None:
        """Encode one picture.

        Args:
            image: HxWx3 uint8 BGR picture of the source's size.
            pts_ticks: Presentation time in ``info.time_base`` ticks; None
                means one frame period (at ``info.rate``) after the previous.

        Raises:
            ValueError: The picture has the wrong shape or type.
            OutputError: The writer is closed, or encoding/writing failed.
        """
        if image.shape != self._shape or image.dtype != np.uint8:
            raise ValueError(f"{self.path}: expected a {self._shape} uint8 picture, "
                             f"got {image.shape} {image.dtype}")
        with self._lock:
            if self._closed:
                raise OutputError(f"{self.path}: write after close")
            frame = self._make_frame(image, self._next_ticks(pts_ticks))
            try:
                self._mux(self._stream.encode(frame))
            except av.FFmpegError as exc:
                raise OutputError(f"{self.path}: cannot encode or write ({exc})") from exc
            self.frames_written += 1

    def _next_ticks(self, pts_ticks: int | None) -> int:
        last = self._last_ticks
        if pts_ticks is None:
            pts_ticks = 0 if last is None else last + self._step
        elif last is not None and pts_ticks <= last:
            if not self.pts_adjusted:
                log.warning("%s: pts %d is not after %d; moved one tick later "
                            "(reported once)", self.path, pts_ticks, last)
            self.pts_adjusted += 1
            pts_ticks = last + 1
        self._last_ticks = pts_ticks
        if self._first_ticks is None:
            self._first_ticks = pts_ticks
        return pts_ticks

    def _make_frame(self, image: np.ndarray, ticks: int) -> av.VideoFrame:
        h, w = self._shape[:2]
        if (w, h) != self.size:
            image = cv2.copyMakeBorder(image, 0, self.size[1] - h, 0, self.size[0] - w,
                                       cv2.BORDER_REPLICATE)
        frame = av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420),
                                           format="yuv420p")
        frame.pts = ticks
        frame.time_base = self._tb
        return frame

    @property
    def first_ticks(self) -> int | None:
        """The pts (ticks) of the first picture written, None before it."""
        return self._first_ticks

    @property
    def last_ticks(self) -> int | None:
        """The pts (ticks) of the last picture written, as written (after any
        adjustment); ``after_ticks`` before the first."""
        return self._last_ticks

    @property
    def audio_packets(self) -> int:
        """Audio packets copied so far."""
        return self._audio.packets if self._audio is not None else 0

    def _mux(self, packets: list[av.Packet]) -> None:
        # One packet is held back so that the last one's duration can be set.
        for packet in packets:
            if self._first_dts is None:
                self._first_dts = packet.dts
            if self._held is not None:
                self._mux_video(self._held)
            self._held = packet

    def _mux_video(self, packet: av.Packet) -> None:
        if self._audio is not None and packet.dts is not None:
            if self._audio_range and self._first_dts == packet.dts and self._first_ticks is not None:
                self._audio.skip_before(self._first_ticks * self._tb)
            self._audio.copy_until(packet.dts * packet.time_base)
        self._firsts.note(packet)
        self._container.mux(packet)

    def _mux_last(self) -> None:
        packet, self._held = self._held, None
        if packet is None:
            return
        if self._whole_ticks and self.frames_written == self._whole_ticks[0]:
            duration = self._whole_ticks[1] - (packet.dts - self._first_dts)
            if 0 < duration <= max(4 * self._step, round(1 / self._tb)):
                packet.duration = duration
        self._mux_video(packet)

    def _whole_source_written(self) -> bool:
        if self._whole_ticks:
            return self.frames_written == self._whole_ticks[0]
        if self._duration and self._first_ticks is not None:
            written = (self._last_ticks + self._step - self._first_ticks) * self._tb
            return written >= Fraction(self._duration) - self._step * self._tb / 2
        return True

    def _finish_audio(self) -> None:
        if self._audio is None:
            return
        if self.frames_written and self._whole_source_written() and not self._audio_range:
            self._audio.copy_until(None)
        elif self.frames_written:
            self._audio.copy_until((self._last_ticks + self._step) * self._tb)
        self._audio.close()

    @property
    def tmp(self) -> Path:
        """The partial file being written (or finished, before it is committed)."""
        return self._tmp

    def close(self) -> None:
        """Flush the encoder, finalise the file and rename it to ``path``.

        Idempotent. With no frame written, the temporary file is removed and
        ``path`` is left as it was.

        Raises:
            OutputError: Finalising or renaming failed (``path`` is left as it
                was; what was written is kept under ``aside_path``, named in
                the message).
        """
        try:
            staged = self.finish()
        except OutputError as exc:
            kept = set_aside([Staged(self._tmp, self.path)]) if os.path.lexists(self._tmp) else ()
            where = f"partial video kept as {kept[0]}" if kept else "nothing kept"
            raise OutputError(f"{self.path}: cannot finish the video "
                              f"({getattr(exc.__cause__, 'strerror', None) or exc}); {where}") from exc
        if staged is not None:
            commit(staged.tmp, staged.path)

    def finish(self) -> Staged | None:
        """Flush the encoder and finalise the file under its partial name; return it
        as ``Staged`` (None with no frame written: the partial file is removed).
        Idempotent: None after the first call.

        A fragmented mp4/mov partial is rewritten as an ordinary one here.

        Raises:
            OutputError: Finalising failed; the partial file is left (named in
                the message), readable up to its last fragment.
        """
        with self._lock:
            if self._closed:
                return None
            self._closed = True
            return self._finish()

    def _finish(self) -> Staged | None:
        try:
            if self.frames_written:
                self._mux(self._stream.encode(None))
                self._mux_last()
            self._finish_audio()
            self._container.close()
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(f"{self.path}: cannot finish the video ({exc}); "
                              f"partial video left at {self._tmp}") from exc
        finally:
            if self._audio is not None:
                self._audio.close()
        if not self.frames_written:
            remove_quietly(self._tmp)
            log.warning("%s: no frames were written; file not created", self.path)
            return None
        if self._fragmented:
            self._defragment()
        return Staged(self._tmp, self.path)

    def _defragment(self) -> None:
        flat = partial_path(self.path)
        try:
            _remux(self._tmp, flat, self._fmt, self._final_options, self._firsts)
        except (av.FFmpegError, OSError) as exc:
            remove_quietly(flat)
            raise OutputError(f"{self.path}: cannot finish the video ({exc}); "
                              f"partial video left at {self._tmp}") from exc
        remove_quietly(self._tmp)
        self._tmp = flat


def _whole_ticks(info: SourceInfo, tb: Fraction) -> tuple[int, int] | None:
    """(frames, duration in ticks) of the whole source, when it declares both."""
    if not info.frames or not info.duration:
        return None
    return info.frames, round(info.duration / tb)


def muxer_options(fmt: str, time_base: Fraction, *, faststart: bool = False) -> dict[str, str]:
    """Muxer options that keep timestamps in ``time_base`` exact.

    Args:
        fmt: FFmpeg format name (``"mp4"``, ``"mov"``, ...).
        time_base: Time base of the pts that will be written.
        faststart: Put the mp4 index at the front of the file.

    Returns:
        Options for ``av.open(..., "w", options=...)``; empty for formats
        other than mp4/mov.
    """
    if fmt not in ("mp4", "mov"):
        return {}
    scale = Fraction(time_base).denominator
    while scale < 10000:
        scale *= 2
    options = {"movflags": "+faststart"} if faststart else {}
    if scale <= _MAX_TIMESCALE:
        options.update(video_track_timescale=str(scale), movie_timescale=str(scale))
    return options


# Matroska as it is written: a cluster at least every second, each flushed to the file as it
# is cut (by default the muxer buffers 5 s clusters, and the file megabytes at a time)
MATROSKA_FLUSHED = {"cluster_time_limit": "1000", "flush_packets": "1"}


def _partial_options(fmt: str, time_base: Fraction) -> dict[str, str]:
    """Muxer options of the partial file: ``muxer_options``, and for mp4/mov a
    fragment at every keyframe or second of video, for Matroska a cluster at
    least every second, flushed to the file as it is cut (a kill loses about a
    second and the encoder's lookahead)."""
    options = muxer_options(fmt, time_base)
    if fmt in ("mp4", "mov"):
        options.update(movflags="+frag_keyframe+empty_moov+default_base_moof",
                       frag_duration="1000000", flush_packets="1")
    elif fmt == "matroska":
        options.update(MATROSKA_FLUSHED)
    return options


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a still picture atomically (temporary name, then rename).

    Args:
        path: Output path; its extension picks the format (``.jpg``, ``.png``...).
        image: HxWx3 uint8 BGR picture.

    Raises:
        OutputError: Unknown format, encoding or writing failed.
    """
    staged = stage_image(path, image)
    commit(staged.tmp, staged.path)


def stage_image(path: str | os.PathLike, image: np.ndarray) -> Staged:
    """Write a still picture under a partial name next to ``path``; return it.

    Raises:
        OutputError: Unknown format, encoding or writing failed (nothing is left).
    """
    path = Path(path)
    try:
        ok, data = cv2.imencode(path.suffix or ".png", image)
    except cv2.error as exc:
        raise OutputError(f"{path}: cannot encode the image ({exc.err})") from exc
    if not ok:
        raise OutputError(f"{path}: cannot encode the image as {path.suffix!r}")
    tmp = partial_path(path)
    try:
        tmp.write_bytes(data.tobytes())
    except OSError as exc:
        remove_quietly(tmp)
        raise OutputError(f"{path}: cannot write ({exc.strerror})") from exc
    return Staged(tmp, path)


def _format_for(path: Path) -> str:
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise OutputError(f"{path}: unsupported video extension "
                          f"(use one of {', '.join(sorted(_FORMATS))})")
    return fmt


def _open_output(tmp: Path, path: Path, fmt: str, options: dict[str, str]):
    # PyAV creates the file only when the header is written (first packet, after
    # the encoder's lookahead); creating it now makes a bad path fail at once.
    try:
        tmp.touch()
        return av.open(os.fspath(tmp), "w", format=fmt, options=options)
    except (av.FFmpegError, OSError) as exc:
        remove_quietly(tmp)
        raise OutputError(f"{path}: cannot create ({getattr(exc, 'strerror', exc)})") from exc


class _FirstPackets:
    """The times (seconds) of the first two packets muxed into each output stream.

    A fragmented mp4 has no edit list: the muxer shifts every track by one
    offset and then starts each track's first sample at 0, stretching its
    duration. From the first two packets of each track the remux puts every
    packet back where it was written.
    """

    def __init__(self) -> None:
        self.times: dict[int, list[tuple[Fraction, Fraction, Fraction]]] = {}

    def note(self, packet: av.Packet) -> None:
        """Record ``packet`` if it is among the first two of its stream."""
        seen = self.times.setdefault(packet.stream.index, [])
        if len(seen) < 2 and packet.dts is not None:
            tb = packet.time_base
            seen.append((packet.pts * tb, packet.dts * tb, (packet.duration or 0) * tb))

    def restore(self, packet: av.Packet, number: int, shift: dict[int, int]) -> None:
        """Put the ``number``-th packet of its stream back at its written times."""
        index, tb = packet.stream_index, packet.time_base
        seen = self.times.get(index, [])
        if number == 0 and seen:
            pts, dts, duration = seen[0]
            packet.pts, packet.dts = round(pts / tb), round(dts / tb)
            packet.duration = round(duration / tb)
            return
        if index not in shift:
            shift[index] = round(seen[1][1] / tb) - packet.dts if len(seen) > 1 else 0
        packet.pts += shift[index]
        packet.dts += shift[index]


def _remux(src: Path, dst: Path, fmt: str, options: dict[str, str],
           firsts: _FirstPackets) -> None:
    """Copy every packet of the fragmented ``src`` into an ordinary file ``dst``,
    at the times it was written with (``firsts``)."""
    with av.open(os.fspath(src)) as inp:
        with av.open(os.fspath(dst), "w", format=fmt, options=options) as out:
            streams = {s.index: out.add_stream_from_template(s) for s in inp.streams
                       if s.type in ("video", "audio")}
            counts = dict.fromkeys(streams, 0)
            shift: dict[int, int] = {}
            for packet in inp.demux(*[s for s in inp.streams if s.index in streams]):
                if not packet.size:  # the demuxer ends with empty flush packets
                    continue
                firsts.restore(packet, counts[packet.stream_index], shift)
                counts[packet.stream_index] += 1
                packet.stream = streams[packet.stream_index]
                out.mux(packet)
