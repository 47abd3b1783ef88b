"""Live sources: RTSP/HTTP streams and cameras that survive drops.

A ``LiveSource`` runs until closed: it connects with PyAV, yields ``Frame``s,
and when the stream ends, stalls or cannot be opened it waits (exponential
backoff) and connects again, for ever or until ``max_retries`` consecutive
failures. Dropping frames a slow consumer cannot take is the job of the queue
after it (``pipeline.channel.Policy.DROP_OLDEST``), not of the source; the
source only drops frames beyond ``max_fps`` (``--max-fps``, see ``RateCap``),
by their ``pts``, before they are converted to pixels, and counts them in
``rate_dropped``.

Behaviour worth knowing (PyAV 18 / FFmpeg 8, seen here):

* End of stream: when an RTSP server dies, demuxing simply ends, with no
  exception. On a live source an end of stream is a disconnect.
* Errors: opening and reading raise several ``av.FFmpegError`` subclasses,
  some of which are not ``OSError`` (``HTTPUnauthorizedError``,
  ``HTTPNotFoundError``, ``InvalidDataError``, ``ExitError``); both families
  are caught. Their text quotes the URL, credentials included, so only
  ``mask_credentials`` text is ever logged or raised (and never chained).
* Time limits: the FFmpeg ``timeout`` option (microseconds) and PyAV's
  ``timeout`` (seconds, its interrupt callback) are both set to
  ``stall_timeout``. A frozen server is then noticed after about twice that
  (``TimeoutError`` or ``ExitError``), an open to a frozen server fails after
  about once that (``InvalidDataError``); without them a read blocks for ever.
* Open time: ``probesize=32`` and ``analyzeduration=0`` cut an RTSP open from
  about 1.1 s to 0.1 s (the SDP already describes the stream).
* Joining: FFmpeg's H.264 decoder gives no picture before the first key
  frame, so the first frame of a connection can take up to one GOP.
* Pacing: a ``lavfi:`` source makes frames as fast as they are read, so it
  is held to its own frame rate (``RealTimePacer``, like ``ffmpeg -re``) to
  stand in for a camera: downstream drops then mean a slow pipeline.

Frames: ``index`` numbers every decoded picture over the whole life of the
source, across reconnects; it is gapless unless ``max_fps`` drops pictures
(their numbers are skipped, as the queue's drops skip them downstream). ``pts`` is a clock in seconds that only goes forward
(``StreamClock``): 0 at the first frame ever, advancing with the stream's own
timestamps within a connection, and at the start of a later connection set to
the seconds elapsed since the first frame, so an outage shows as a gap.
``pts_ticks`` and ``time_base`` are None (the clock is not the stream's).
``wall`` is ``time.time()`` at arrival. A new connection may bring another
picture size or rate: frames carry their own size, ``info`` describes the
current connection, and the ``connected`` event says ``size_changed``.

Packets: a ``PacketHook`` given as ``packets`` sees the connection's video
stream when it opens (``connection_started``), every demuxed video packet
before its pictures are handed out (``packet``, with the number the next
decoded picture will get), and the end of the connection
(``connection_ended``), all on the source's thread; ``stages.recording.raw``
copies them into segments. It must be quick and must not raise.

Codec changes: a stream whose codec changes mid-connection (an MPEG-TS
encoder restarted with another codec: FFmpeg's demuxer goes on calling the
packets by the first codec) is followed (``stages.sources._codec_follow``): the
change is logged ("codec changed from h264 to mpeg2video"), the pictures go on
from the new codec's first key frame, and the packet hook is told with
``connection_started`` again, with a stream that stands for the new codec.

Cameras: ``camera`` options (size, rate, format) go to FFmpeg's v4l2 input
(``stages.sources.camera``); ``mirror`` flips every picture left-right before it is
handed out, so inference sees what the person in front of the camera sees.

Stopping: ``close()`` may be called from any thread. A source waiting to
retry stops at once; one receiving frames stops at the next frame; one
blocked inside FFmpeg (frozen server) stops when FFmpeg gives up, within
about ``2 * stall_timeout``.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal, Protocol

import av
import cv2

from stages.sources._codec_follow import FollowingDecoder
from stages.sources.camera import check_camera_sources, open_camera
from stages.sources.credentials import mask_credentials
from stages.sources.file_source import SourceInfo
from stages.errors import InputError
from stages.frames import Frame
from stages.sources._live_timing import RealTimePacer, StreamClock, backoff_delay
from stages.sources._rate_cap import RateCap
from stages.sources.spec import LiveSpec
from stages.sources.stoppable import StoppableSource

log = logging.getLogger(__name__)

__all__ = ["LiveSource", "PacketHook", "RealTimePacer", "SourceEvent", "StreamClock",
           "backoff_delay"]

EventKind = Literal["connected", "disconnected", "stalled", "retry", "gave_up"]

_SAFE_NAME = re.compile(r"[A-Za-z0-9._\-]{1,100}\Z")
_TRANSPORTS = frozenset({"tcp", "udp", "udp_multicast", "http", "https"})
_DEFAULT_RATE = Fraction(25)
_DECODE_THREADS = 2  # slice threading: frame threading would delay output by threads - 1 frames


def _checked_name(name: str) -> str:
    """A source name given by the user: it names a folder, so it must be a plain file name."""
    if not _SAFE_NAME.match(name) or name in (".", ".."):
        raise InputError(f"source name {mask_credentials(name)!r}: use only letters, digits, "
                         f"'.', '-' and '_' (at most 100), since it names the output folder")
    return name


@dataclass(frozen=True, slots=True)
class SourceEvent:
    """Something that happened to a live source's connection.

    Attributes:
        source: Source id (``LiveSource.name``).
        kind: ``connected`` (first picture of a connection arrived),
            ``disconnected`` (the stream ended or failed), ``stalled`` (no
            data within the time limit), ``retry`` (waiting ``delay``
            seconds before connecting again), ``gave_up`` (``max_retries``
            exceeded; ``InputError`` follows).
        message: What happened, credentials masked.
        attempt: Consecutive failures so far (for ``connected``: failures
            before this connection; 0 when it worked at once).
        delay: Seconds until the next attempt (0 when none is planned).
        wall: ``time.time()`` of the event.
        connection: Number of the connection (1 for the first) that the
            event is about, or the last one made.
        reconnected: For ``connected``: this is not the first connection.
        size_changed: For ``connected``: the picture size differs from the
            previous connection's.
    """

    source: str
    kind: EventKind
    message: str
    attempt: int
    delay: float
    wall: float = field(default_factory=time.time)
    connection: int = 0
    reconnected: bool = False
    size_changed: bool = False


class PacketHook(Protocol):
    """Sees a live source's compressed video as it arrives (on the source's thread).

    Each method must return quickly and never raise.
    """

    def connection_started(self, stream: av.video.stream.VideoStream) -> None:
        """A connection opened, or its codec changed; its packets come from ``stream``
        from now on."""

    def packet(self, packet: av.Packet, next_index: int) -> None:
        """A demuxed packet of the stream, before it is decoded; ``next_index`` is the
        ``Frame.index`` the next decoded picture will get."""

    def connection_ended(self) -> None:
        """The connection ended (dropped, stalled, or the source was closed)."""


@dataclass(frozen=True, slots=True)
class _Outcome:
    """How one connection ended."""

    frames: int
    kind: Literal["disconnected", "stalled", "failed"]
    reason: str


class LiveSource(StoppableSource):
    """Frames of a live stream or camera, reconnecting when it drops.

    Attributes:
        name: Source id, copied into every ``Frame.source``.
        spec: The parsed source (``stages.sources.spec.LiveSpec``).
        masked_url: The spec with credentials masked (safe to show).
        info: ``SourceInfo`` of the current (or last) connection; None until
            the first connection delivers a picture.
        connection: Connections that delivered a picture so far.
        frames_read: Frames handed out so far.
        max_fps: The rate cap in frames per second, or None.
        rate_dropped: Pictures dropped because they came faster than
            ``max_fps``.
        events: Recent ``SourceEvent``s, oldest first (the last 100).
        packets: The ``PacketHook`` (settable before the first ``next()``), or None.
        camera: FFmpeg v4l2 options of a camera (``stages.sources.camera``), or None.
        mirror: Pictures are flipped left-right before they are handed out.
    """

    def __init__(self, spec: str | LiveSpec, *, name: str | None = None, transport: str = "tcp",
                 stall_timeout: float = 5.0, max_retries: int | None = None,
                 backoff_initial: float = 0.5, backoff_max: float = 30.0,
                 on_event: Callable[[SourceEvent], None] | None = None,
                 max_fps: float | None = None, packets: PacketHook | None = None,
                 camera: dict[str, str] | None = None, mirror: bool = False) -> None:
        """Check the settings; the first connection is made on the first ``next()``.

        Args:
            spec: ``rtsp://``/``rtsps://``/``http(s)://`` URL (credentials
                allowed, percent-encoded), ``/dev/videoN``, a camera index,
                or ``lavfi:GRAPH``; or one already parsed (``LiveSpec``).
            name: Source id; defaults to ``LiveSpec.name``.
            transport: RTSP lower transport: ``tcp`` or ``udp`` (also
                ``udp_multicast``, ``http``, ``https``).
            stall_timeout: Seconds without data after which an open or a
                read fails (noticed within about twice that).
            max_retries: Retries allowed in a row: a failed attempt and a
                lost connection each count one failure, a connection that
                delivered pictures starts the count again, and a failure past
                ``max_retries`` raises ``InputError``. None retries for ever;
                0 gives up at the first failure.
            backoff_initial: Wait after the first failure, in seconds.
            backoff_max: Longest wait between attempts, in seconds.
            on_event: Called with each ``SourceEvent``, in the iterating
                thread; what it raises propagates.
            max_fps: Most frames per second handed out, by the frames'
                ``pts``; pictures beyond it are dropped here (counted in
                ``rate_dropped``). None for no cap.
            packets: Sees every video packet of every connection (see the
                module docstring), or None.
            camera: ``video_size``, ``framerate`` and ``input_format`` for a
                camera's FFmpeg v4l2 input (``stages.sources.camera.camera_options``).
            mirror: Flip every picture left-right (a selfie view: keypoints
                then match what the person in front of the camera sees).

        Raises:
            InputError: ``spec`` is not live, is a URL that ``LiveSpec.parse``
                rejects, ``name`` is not a plain file name, or a setting is
                out of range.
            UsageError: ``camera`` options for a source that is not a camera.
        """
        self.spec = spec if isinstance(spec, LiveSpec) else LiveSpec.parse(spec)
        self.masked_url = self.spec.masked
        check_camera_sources([self.spec], camera or {})
        self.camera = dict(camera or {})
        self.mirror = mirror
        _check_settings(self.masked_url, transport, stall_timeout, max_retries,
                        backoff_initial, backoff_max)
        self.max_fps = max_fps
        try:
            self._cap = None if max_fps is None else RateCap(max_fps)
        except ValueError as exc:
            raise InputError(f"{self.masked_url}: --max-fps: {exc}") from None
        self.rate_dropped = 0
        self._pictures = 0
        self.name = _checked_name(name) if name else self.spec.name
        self.transport = transport
        self.stall_timeout = float(stall_timeout)
        self.max_retries = max_retries
        self.backoff_initial = float(backoff_initial)
        self.backoff_max = float(backoff_max)
        self._on_event = on_event
        self.packets = packets
        self.info: SourceInfo | None = None
        self.connection = 0
        self.events: list[SourceEvent] = []
        self._clock = StreamClock()
        super().__init__()

    @property
    def reconnects(self) -> int:
        """Connections after the first that delivered a picture."""
        return max(0, self.connection - 1)

    def __enter__(self) -> LiveSource:
        return self

    def __repr__(self) -> str:
        return (f"LiveSource({self.masked_url!r}, connection={self.connection}, "
                f"frames_read={self.frames_read}, closed={self.closed})")

    # -- the connect / read / back off loop ---------------------------------

    def _frames(self) -> Iterator[Frame]:
        failures = 0
        while not self._stop.is_set():
            outcome = yield from self._connection(failures)
            if self._stop.is_set():
                return
            failures = 1 if outcome.frames else failures + 1
            delay = backoff_delay(failures, self.backoff_initial, self.backoff_max)
            if outcome.kind != "failed":
                self._emit(outcome.kind, f"{outcome.kind}: {outcome.reason}", failures, delay)
            if self.max_retries is not None and failures > self.max_retries:
                self._give_up(failures, outcome.reason)
            self._emit("retry", f"retrying in {delay:g} s after: {outcome.reason}",
                       failures, delay)
            if self._stop.wait(delay):
                return

    def _give_up(self, failures: int, reason: str) -> None:
        plural = "s" if failures != 1 else ""
        message = (f"{self.masked_url}: gave up after {failures} failure{plural} in a row "
                   f"(max_retries={self.max_retries}): {reason}")
        self._emit("gave_up", message, failures, 0.0)
        raise InputError(message)

    def _connection(self, failures: int) -> Iterator[Frame]:
        try:
            container = self._open()
        except (av.FFmpegError, OSError) as exc:
            return _Outcome(0, "failed", f"cannot connect: {_reason(exc)}")
        try:
            if not container.streams.video:
                return _Outcome(0, "failed", "the stream has no video")
            if self.packets is not None:
                self.packets.connection_started(container.streams.video[0])
            return (yield from self._read(container, failures))
        finally:
            if self.packets is not None:
                self.packets.connection_ended()
            container.close()

    def _open(self):
        url, fmt, options = _open_args(self.spec, self.transport, self.stall_timeout, self.camera)
        if fmt == "v4l2":  # a refusal says which setting, in FFmpeg's log
            return open_camera(url, options, self.stall_timeout)
        return av.open(url, format=fmt, options=options,
                       timeout=(self.stall_timeout, self.stall_timeout))

    def _read(self, container, failures: int) -> Iterator[Frame]:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"
        stream.thread_count = _DECODE_THREADS
        decoder = FollowingDecoder(stream)
        count = 0
        last_picture = time.monotonic()
        pacer = RealTimePacer() if self.spec.kind == "lavfi" else None
        try:
            for packet in container.demux(stream):
                for av_frame in self._decode(decoder, packet):
                    if pacer is not None and self._stop.wait(pacer.delay(_seconds(av_frame))):
                        return _ended(count, "disconnected", "closed")
                    if count == 0:
                        self._connected(stream, av_frame, failures)
                    frame = self._to_frame(av_frame, first=count == 0)
                    count += 1
                    if frame is not None:
                        yield frame
                    last_picture = time.monotonic()
                if self._stop.is_set():
                    break
                if time.monotonic() - last_picture > 2 * self.stall_timeout:
                    return _ended(count, "stalled", f"data but no picture for "
                                  f"{2 * self.stall_timeout:g} s")
        except (av.error.TimeoutError, av.error.ExitError):
            return _ended(count, "stalled", f"no data for {self.stall_timeout:g} s")
        except av.error.EOFError:
            pass
        except (av.FFmpegError, OSError) as exc:
            return _ended(count, "disconnected", _reason(exc))
        finally:
            decoder.close()
        return _ended(count, "disconnected", "end of stream")

    def _decode(self, decoder: FollowingDecoder, packet: av.Packet) -> list[av.VideoFrame]:
        """The packet's pictures; the packet hook sees the packet (and a change of codec
        first) before the pictures are handed out."""
        decoded = decoder.decode(packet)
        if decoded.changed_from is not None:
            self._codec_changed(decoded.changed_from, decoder)
        if self.packets is not None:
            self.packets.packet(packet, self._pictures + decoded.drained)
        return decoded.pictures

    def _codec_changed(self, previous: str, decoder: FollowingDecoder) -> None:
        """The stream's codec changed mid-connection: say so, and tell the packet hook."""
        log.info("%s: codec changed from %s to %s", self.name, previous, decoder.codec)
        if self.info is not None:
            self.info = dataclasses.replace(self.info, codec=decoder.codec)
        if self.packets is not None:
            self.packets.connection_started(decoder.stream)

    def _connected(self, stream, av_frame: av.VideoFrame, failures: int) -> None:
        previous = self.info
        self.connection += 1
        self.info = _stream_info(self.name, stream, av_frame)
        size_changed = previous is not None and (previous.width, previous.height) != (
            self.info.width, self.info.height)
        message = (f"connected to {self.masked_url}: {self.info.width}x{self.info.height} "
                   f"{self.info.codec} at {float(self.info.rate):g} fps")
        if size_changed:
            message += f" (size changed from {previous.width}x{previous.height})"
        self._emit("connected", message, failures, 0.0, reconnected=self.connection > 1,
                   size_changed=size_changed)

    def _to_frame(self, av_frame: av.VideoFrame, *, first: bool) -> Frame | None:
        """The picture as a Frame, or None when ``max_fps`` drops it."""
        wall = time.time()
        if first:
            self._clock.start_connection(1.0 / float(self.info.rate))
        pts = self._clock.stamp(_seconds(av_frame))
        index, self._pictures = self._pictures, self._pictures + 1
        if self._cap is not None and not self._cap.admit(pts):
            self.rate_dropped += 1
            return None
        image = av_frame.to_ndarray(format="bgr24")
        if self.mirror:
            image = cv2.flip(image, 1)
        if self.info is not None and image.shape[:2] != (self.info.height, self.info.width):
            self.info = _resized(self.info, image.shape[1], image.shape[0])
            log.info("%s: picture size changed to %dx%d", self.name,
                     self.info.width, self.info.height)
        self.frames_read += 1
        return Frame(source=self.name, index=index, pts=pts, image=image, wall=wall)

    def _emit(self, kind: EventKind, message: str, attempt: int, delay: float,
              **flags: bool) -> None:
        event = SourceEvent(source=self.name, kind=kind, message=mask_credentials(message),
                            attempt=attempt, delay=delay, connection=self.connection, **flags)
        self.events = [*self.events[-99:], event]
        level = logging.INFO if kind == "connected" else logging.WARNING
        log.log(level, "%s: %s", self.name, event.message)
        if self._on_event is not None:
            self._on_event(event)


def _check_settings(shown: str, transport: str, stall_timeout: float,
                    max_retries: int | None, backoff_initial: float,
                    backoff_max: float) -> None:
    problems = []
    if transport not in _TRANSPORTS:
        problems.append(f"transport must be one of {', '.join(sorted(_TRANSPORTS))}, "
                        f"got {transport!r}")
    if not stall_timeout > 0:
        problems.append(f"stall_timeout must be > 0, got {stall_timeout}")
    if max_retries is not None and max_retries < 0:
        problems.append(f"max_retries must be >= 0 or None, got {max_retries}")
    if not 0 < backoff_initial <= backoff_max:
        problems.append(f"need 0 < backoff_initial <= backoff_max, got "
                        f"{backoff_initial} and {backoff_max}")
    if problems:
        raise InputError(f"{shown}: {'; '.join(problems)}")


def _open_args(spec: LiveSpec, transport: str, stall_timeout: float,
               camera: dict[str, str] | None = None) -> tuple[str, str | None, dict[str, str]]:
    """(url, format, options) for ``av.open``; ``camera`` options go to cameras only."""
    micros = str(round(stall_timeout * 1_000_000))
    if spec.kind == "rtsp":
        return spec.url, None, {"rtsp_transport": transport, "timeout": micros,
                                "probesize": "32", "analyzeduration": "0"}
    if spec.kind == "http":
        return spec.url, None, {"timeout": micros}
    if spec.kind == "lavfi":
        return spec.url, "lavfi", {}
    return spec.url, "v4l2", dict(camera or {})


def _seconds(av_frame: av.VideoFrame) -> float | None:
    """The frame's stream time in seconds, or None when it has no timestamp."""
    tb = av_frame.time_base
    return None if av_frame.pts is None or tb is None else float(av_frame.pts * tb)


def _stream_info(name: str, stream, av_frame: av.VideoFrame) -> SourceInfo:
    rate = stream.average_rate or stream.guessed_rate or _DEFAULT_RATE
    tb = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)
    return SourceInfo(name=name, width=av_frame.width, height=av_frame.height,
                      rate=Fraction(rate), time_base=tb, frames=None, duration=None,
                      codec=stream.codec_context.name)


def _resized(info: SourceInfo, width: int, height: int) -> SourceInfo:
    return SourceInfo(name=info.name, width=width, height=height, rate=info.rate,
                      time_base=info.time_base, frames=None, duration=None, codec=info.codec)


def _ended(frames: int, kind: Literal["disconnected", "stalled"], reason: str) -> _Outcome:
    """A connection that never delivered a picture failed; others were lost."""
    if frames:
        return _Outcome(frames, kind, reason)
    return _Outcome(0, "failed", f"connected, but no picture came ({reason})")


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return mask_credentials(text)
