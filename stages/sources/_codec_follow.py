"""A live stream's decoder that follows a change of codec the demuxer does not report.

An MPEG-TS stream whose encoder restarts with another codec on the same PID
(H.264, then MPEG-2, then H.264 again) keeps its first codec in FFmpeg's
mpegts demuxer (FFmpeg 8 ignores a new stream type in the PMT for a PID it
already knows): the new codec's packets come as the old one's, and the old
decoder rejects them (``InvalidDataError``), turns them into nothing, or
hands out its last picture again. So a packet the decoder rejects, and a key
frame whose first bytes are unlike those of the key frames seen since the
codec last changed (a codec's key frames start alike, with its headers; an
RTSP server may send a key frame with and without them), is probed: FFmpeg's
format probe over the packet's first ``PROBE_BYTES`` (about 1 ms for MPEG-2,
10 to 20 ms for a 1080p H.264 picture, hence not at every key frame). When the probe finds
another video codec whose decoder takes the packet, the old decoder is
drained and the new one decodes from that packet on.

The probe's stream, given the stream's time base, stands for the new codec
where a stream is wanted (``stream``: a ``PacketHook`` copies packets with it
as the template). Packets that the demuxer's parser (still the first codec's)
cut wrongly at a change may give no picture; the new codec's pictures start
at its first key frame.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field

import av

from stages.sources.credentials import mask_credentials

log = logging.getLogger(__name__)

PROBE_BYTES = 4096  # of a packet, for FFmpeg's probe: a codec's headers come first
_PREFIX_BYTES = 8  # of a key frame, compared with those of the codec's key frames so far
_MAX_PREFIXES = 16  # kept; forgotten all at once when more come


@dataclass(frozen=True, slots=True)
class Decoded:
    """The pictures of one packet.

    Attributes:
        pictures: Every picture the packet released, in order.
        changed_from: The previous codec's name when this packet changed the
            codec, else None.
        drained: How many of ``pictures`` (the first ones) are the previous
            codec's last, drained from its decoder.
    """

    pictures: list[av.VideoFrame] = field(default_factory=list)
    changed_from: str | None = None
    drained: int = 0


class FollowingDecoder:
    """Decodes one connection's video stream, following a change of codec.

    Args:
        stream: The container's video stream (its threading already set).

    Attributes:
        stream: The current codec's stream: the container's, or the probe's
            after a change (with the container's time base).
    """

    def __init__(self, stream) -> None:
        self.stream = stream
        self._time_base = stream.time_base
        self._threads = (stream.thread_type, stream.thread_count)
        self._context = stream.codec_context
        self._probe = None  # the container the current codec was probed from, kept for stream
        self._key_starts: set[bytes] = set()  # first bytes of the current codec's key frames

    @property
    def codec(self) -> str:
        """The current codec's name."""
        return self._context.name

    def decode(self, packet: av.Packet) -> Decoded:
        """The pictures of ``packet`` (an empty one drains the decoder)."""
        if packet.size and packet.is_keyframe and self._new_kind_of_key_frame(packet):
            changed = self._follow(packet)
            if changed is not None:
                return changed
        try:
            return Decoded(self._context.decode(packet))
        except av.error.InvalidDataError as exc:
            changed = self._follow(packet) if packet.size else None
            if changed is not None:
                return changed
            log.debug("skipped an undecodable packet: %s", mask_credentials(_reason(exc)))
            return Decoded()

    def close(self) -> None:
        """Close the probe's container; idempotent."""
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.close()

    def _new_kind_of_key_frame(self, packet: av.Packet) -> bool:
        """Whether the key frame ``packet`` starts unlike the codec's key frames so far
        (the first one is taken as it is)."""
        start = bytes(memoryview(packet)[:_PREFIX_BYTES])
        if start in self._key_starts:
            return False
        first = not self._key_starts
        if len(self._key_starts) >= _MAX_PREFIXES:
            self._key_starts.clear()
        self._key_starts.add(start)
        return not first

    def _follow(self, packet: av.Packet) -> Decoded | None:
        """Switch to the codec the probe finds in ``packet`` when it is another one whose
        decoder takes it; the pictures, or None when the codec stays."""
        probe = _probe(packet)
        if probe is None:
            return None
        stream = probe.streams.video[0]
        context = stream.codec_context
        context.thread_type, context.thread_count = self._threads
        pictures = None if context.name == self.codec else _try_decode(context, packet)
        if pictures is None:
            probe.close()
            return None
        previous, drained = self.codec, _drain(self._context)
        self.close()
        stream.time_base = self._time_base
        self.stream, self._context, self._probe = stream, context, probe
        self._key_starts = {bytes(memoryview(packet)[:_PREFIX_BYTES])} if packet.is_keyframe \
            else set()
        return Decoded(drained + pictures, changed_from=previous, drained=len(drained))


def _probe(packet: av.Packet):
    """A container over the packet's first bytes when FFmpeg finds video in them, else None."""
    try:
        container = av.open(io.BytesIO(bytes(memoryview(packet)[:PROBE_BYTES])))
    except (av.FFmpegError, OSError, ValueError):
        return None
    if not container.streams.video:
        container.close()
        return None
    return container


def _try_decode(context, packet: av.Packet) -> list[av.VideoFrame] | None:
    """The pictures of ``packet``, or None when the decoder rejects it."""
    try:
        return context.decode(packet)
    except av.error.InvalidDataError:
        return None


def _drain(context) -> list[av.VideoFrame]:
    """The pictures a decoder still holds."""
    try:
        return context.decode(None)
    except av.FFmpegError:
        return []


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
