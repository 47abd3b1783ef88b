"""Raw recording (``--record raw``): the camera's own packets, copied into segments.

Nothing is decoded or encoded for the recording: every video packet a live
source demuxes (``stages.sources.stream.PacketHook``) is muxed as it is into a
Matroska segment, so the recording has the camera's full frame rate and
quality for almost no CPU, while the pipeline decodes the same packets for
the keypoints.

Segments: ``OUTDIR/<source>/<source>-<UTC start>-<n>.mkv``, written under a
partial name (``stages.outputs.atomic.partial_path``) and renamed into place when
finished; a kill leaves the partial, playable up to its last cluster (the
muxer cuts one at about every key frame, and at least every second, and
each is flushed to the file as it is cut), which the next run sets aside as ``<base>.partial.mkv``. A segment starts at a key frame (the packets of a connection
before its first key frame are dropped and counted in ``skipped``), rolls
at the first key frame after ``segment_seconds`` of wall time, and ends
when the connection ends: the next connection starts a new one. The names
come from the source's ``SegmentNamer`` and each new segment is announced
(``on_segment(first frame index, base)``), so the keypoint logs of the same
frames get the same base name (``SegmentedOutputs.start_at``).

Timestamps: the camera's, rebased so that each segment starts at 0; a
packet without one, or whose decoding time does not increase, is put one
tick after the previous one (and its presentation time with it when it
would come first); a jump of the camera's clock by more than
``MAX_JUMP_SECONDS`` either way (a reset; a real outage ends the
connection) continues one frame after the previous packet.

Cut frames: a camera that drops in the middle of a frame leaves the
demuxer's parser holding the start of it, which it hands over when the
stream ends (FFmpeg's RTSP and H.264 demuxers both do; lost RTP packets can
do the same mid-stream). A start with a slice in it is a picture and is
copied; one without (delimiter, parameter sets, SEI: an H.264/HEVC packet
in Annex B form with no coded slice) is no picture, a decoder rejects it
("no frame!", ``av.InvalidDataError``), so it is not copied but counted in
``fragments``.

Errors: the recorder never raises into the source's thread. A failure to
create, write or finish a segment (a full disk) stops the recording, as it
does the annotated segments' (``stages.recording.pause``): it is said once,
kept in ``error`` and reported with ``on_recording``; the packets go on to
the decoder uncopied (counted in ``lost``), and at the first key frame after
the folder's file system has room again a new segment starts. A source
without packets to copy (decoded pictures) ends the recording for good:
``fatal``, which the job raises from its writer.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av

from stages.outputs.atomic import commit, partial_path, remove_quietly
from stages.outputs.video import MATROSKA_FLUSHED
from stages.errors import InputError, OutputError
from stages.recording.pause import RecordingPause
from stages.recording.segments import VIDEO_SUFFIX, SegmentNamer
from stages.sources.spec import LiveSpec

log = logging.getLogger(__name__)

# codecs of decoded pictures (lavfi, some capture devices): there is nothing compressed to copy
_NOT_COPYABLE = frozenset({"wrapped_avframe"})
MAX_JUMP_SECONDS = 10.0  # a larger step of the camera's clock, either way, is a reset, not a gap
# Annex B: each NAL unit's start code and first header byte; whether that byte is a coded slice's
_NAL_START = re.compile(rb"\x00\x00\x01(.)", re.DOTALL)
_IS_SLICE = {"h264": lambda header: 1 <= header & 0x1F <= 5,
             "hevc": lambda header: header >> 1 & 0x3F < 32}


def check_raw_source(spec: LiveSpec, name: str) -> None:
    """Fail at start for a source that has no packets to copy.

    Raises:
        InputError: ``spec`` is an FFmpeg lavfi graph (it makes decoded pictures).
    """
    if spec.kind == "lavfi":
        raise InputError(f"{name}: --record raw needs a stream with packets (rtsp://, "
                         "http(s)://, a camera); a lavfi: source makes decoded pictures "
                         "(use --record annotated or none)")


class RawSegment:
    """One Matroska file of copied packets, under its partial name until ``close``.

    Args:
        path: Final path (``.mkv``).
        stream: The input video stream the packets come from.

    Raises:
        OutputError: The file cannot be created or the stream not copied.
    """

    def __init__(self, path: Path, stream) -> None:
        self.path = Path(path)
        self.tmp = partial_path(self.path)
        self.packets = 0
        self._base: int | None = None
        self._last_dts: int | None = None
        tick = Fraction(stream.time_base or Fraction(1, 90000))
        self._jump = round(MAX_JUMP_SECONDS / tick)  # ticks
        self._step = max(1, round(Fraction(1, 25) / tick))  # a frame's ticks, until one is seen
        try:
            self.tmp.touch()  # the muxer creates the file at the first packet; fail now
            self._container = av.open(os.fspath(self.tmp), "w", format="matroska",
                                      options=dict(MATROSKA_FLUSHED))
            self._stream = self._container.add_stream_from_template(stream)
            if stream.codec_context.name == "rawvideo":  # Matroska needs its pixel format's tag
                self._stream.codec_context.codec_tag = stream.codec_context.codec_tag
        except (av.FFmpegError, OSError, ValueError) as exc:
            remove_quietly(self.tmp)
            raise OutputError(f"{self.path}: cannot create ({_why(exc)})") from exc

    def write(self, packet: av.Packet) -> None:
        """Mux a copy of ``packet`` (the packet itself is left as it was, for the decoder).

        Raises:
            OutputError: The write failed.
        """
        copy = av.Packet(packet)  # shares the bytes, not the timestamps
        copy.time_base = packet.time_base
        copy.dts, copy.pts = self._times(packet.dts, packet.pts)
        if packet.duration:
            copy.duration = packet.duration
        copy.is_keyframe = packet.is_keyframe
        copy.stream = self._stream
        try:
            self._container.mux(copy)
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(f"{self.path}: cannot write ({_why(exc)})") from exc
        self.packets += 1

    def _times(self, dts: int | None, pts: int | None) -> tuple[int, int]:
        """(dts, pts) rebased to the segment's start, dts increasing, pts not before dts."""
        stamp = dts if dts is not None else pts
        last = self._last_dts
        if stamp is None:  # no time: just after the previous packet
            new = 0 if last is None else last + 1
            self._last_dts = new
            return new, new
        if self._base is None:
            self._base = stamp
        new = stamp - self._base
        if last is not None and not 0 < new - last <= self._jump:
            if abs(new - last) > self._jump:  # the camera's clock jumped: go on a frame later
                self._base = stamp - last - self._step
                new = last + self._step
            else:  # not after the previous one
                new = last + 1
        elif last is not None:
            self._step = new - last
        self._last_dts = new
        return new, new if pts is None else max(pts - self._base, new)

    def close(self) -> bool:
        """Finish the file and rename it into place; return whether it was kept.

        A segment without a packet is removed. Idempotent.

        Raises:
            OutputError: Finishing or renaming failed (the partial file stays
                when finishing failed).
        """
        container, self._container = self._container, None
        if container is None:
            return False
        try:
            container.close()
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(f"{self.path}: cannot finish ({_why(exc)}); partial "
                              f"video left at {self.tmp}") from exc
        if not self.packets:
            remove_quietly(self.tmp)
            return False
        commit(self.tmp, self.path)
        return True


class RawRecorder:
    """Copies one live source's video packets into rolling segments (a ``PacketHook``).

    Args:
        namer: The source's ``SegmentNamer`` (its folder is where segments go).
        segment_seconds: Longest segment, in seconds of wall time (rolled at
            the next key frame).
        on_segment: Called with (first frame index, base) when a segment
            starts, on the source's thread.
        on_finish: Called (no argument) after a segment was finished.
        on_recording: Called with the reason when recording stops (a failed
            write), None when it resumes.
        clock: Wall clock (``time.time``).

    Attributes:
        finished: Paths of the finished segments, in order.
        packets: Packets copied so far.
        skipped: Packets dropped while waiting for a connection's first key frame.
        fragments: Packets not copied because they hold no picture (a cut frame's start).
        lost: Packets not copied while recording was stopped.
        error: Why recording is stopped (a failed create, write or finish),
            or the failure that ended it (``fatal``); None while it records.
        fatal: The failure that ended the recording for good (the source
            gives decoded pictures), or None.
    """

    def __init__(self, namer: SegmentNamer, *, segment_seconds: float,
                 on_segment: Callable[[int, str], None] | None = None,
                 on_finish: Callable[[], None] | None = None,
                 on_recording: Callable[[str | None], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.namer = namer
        self.segment_seconds = segment_seconds
        self._on_segment = on_segment
        self._on_finish = on_finish
        self._clock = clock
        self.finished: list[Path] = []
        self.packets = 0
        self.skipped = 0
        self.fragments = 0
        self.lost = 0
        self.error: OutputError | None = None
        self.fatal: OutputError | None = None
        self._pause = RecordingPause(namer.name, namer.folder, on_change=on_recording)
        self._stream = None
        self._is_slice: Callable[[int], bool] | None = None  # of an Annex B stream's NAL units
        self._segment: RawSegment | None = None
        self._started = 0.0
        self._closed = False
        self._lock = threading.Lock()

    def connection_started(self, stream) -> None:
        """A new connection: its packets come from ``stream``; wait for a key frame."""
        with self._lock:
            self._end()
            if stream.codec_context.name in _NOT_COPYABLE:
                self._fail(OutputError(f"{self.namer.name}: --record raw: the source gives "
                                       "decoded pictures, not packets to copy"))
            self._stream = stream
            self._is_slice = _slice_test(stream)

    def packet(self, packet: av.Packet, next_index: int) -> None:
        """Copy ``packet`` into the current segment, starting or rolling one at a key frame."""
        if not packet.size:  # the demuxer's empty flush packets
            return
        with self._lock:
            if self._closed or self.fatal is not None or self._stream is None:
                return
            if self._is_slice is not None and _no_picture(self._is_slice, packet):
                self.fragments += 1
                return
            if self._pause.reason is not None and not (packet.is_keyframe
                                                       and self._pause.may_resume()):
                self.lost += 1  # stopped: waiting for room, then for a key frame
                return
            try:
                if self._segment is None or (packet.is_keyframe and self._due()):
                    if not packet.is_keyframe:
                        self.skipped += 1
                        return
                    self._roll(next_index)
                self._segment.write(packet)
                self.packets += 1
            except OutputError as exc:
                self._stop(exc)
            else:
                self.error = None
                self._pause.resumed()

    def connection_ended(self) -> None:
        """The connection ended: finish its segment."""
        with self._lock:
            self._end()
            self._stream = None

    def close(self) -> None:
        """Finish the current segment and copy nothing more; idempotent."""
        with self._lock:
            self._closed = True
            self._end()

    def __enter__(self) -> RawRecorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _due(self) -> bool:
        return self._clock() - self._started >= self.segment_seconds

    def _roll(self, next_index: int) -> None:
        self._end()
        self._started = self._clock()
        try:
            self.namer.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self.namer.folder}: cannot create ({_why(exc)})") from exc
        base = self.namer.next(self._started)
        self._segment = RawSegment(self.namer.folder / f"{base}{VIDEO_SUFFIX}", self._stream)
        log.info("%s: raw segment %s started", self.namer.name, base)
        if self._on_segment is not None:
            self._on_segment(next_index, base)

    def _end(self) -> None:
        segment, self._segment = self._segment, None
        if segment is None:
            return
        try:
            kept = segment.close()
        except OutputError as exc:
            self._stop(exc)
            return
        if kept:
            self.finished.append(segment.path)
            if self._on_finish is not None:
                self._on_finish()

    def _stop(self, exc: OutputError) -> None:
        """Recording failed: stop it until the folder has room (said once, by the pause)."""
        self.error = self.error or exc
        self._pause.stop(exc)
        self._end()

    def _fail(self, exc: OutputError) -> None:
        """The recording cannot go on at all."""
        if self.fatal is None:
            log.error("%s: raw recording stopped: %s", self.namer.name, exc)
            self.fatal = self.error = exc
        self._end()


def _slice_test(stream) -> Callable[[int], bool] | None:
    """What tells a coded slice by its NAL unit's header byte, for an H.264/HEVC stream in
    Annex B form; None for other codecs, and for the length-prefixed form (its extradata is an
    avcC/hvcC record, version 1), whose packets come whole from their container."""
    if (stream.codec_context.extradata or b"")[:1] == b"\x01":
        return None
    return _IS_SLICE.get(stream.codec_context.name)


def _no_picture(is_slice: Callable[[int], bool], packet: av.Packet) -> bool:
    """Whether an Annex B ``packet`` has no coded slice (a cut frame's start)."""
    data = memoryview(packet)
    if data[:3] != b"\0\0\1" and data[:4] != b"\0\0\0\1":
        return False  # not Annex B after all: left as it is
    return not any(is_slice(start[1][0]) for start in _NAL_START.finditer(data))


def _why(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
