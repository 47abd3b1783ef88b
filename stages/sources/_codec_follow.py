"""A live stream's decoder that follows a change of codec the demuxer does not report.

An MPEG-TS stream whose encoder restarts with another codec on the same PID
(H.264, then MPEG-2, then H.264 again) keeps its first codec in FFmpeg's
mpegts demuxer (FFmpeg 8 ignores a new stream type in the PMT for a PID it
already knows): the new codec's packets come as the old one's, and the old
decoder rejects them (``InvalidDataError``) or silently turns them into
nothing. So a packet the decoder rejects, and a key frame after a packet
that gave no picture, is probed (FFmpeg's format probe over the packet's
bytes, well under a millisecond for a small picture); when the probe finds
another video codec whose decoder takes the packet, the old decoder is
drained and the new one decodes from that packet on.

The probe's stream, given the stream's time base, stands for the new codec
where a stream is wanted (``stream``: a ``PacketHook`` copies packets with
it as the template). The packets a demuxer's parser mixed up at the change
(the old codec's parser cut them) may be lost; the new codec's pictures
start at its first key frame.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field

import av

from stages.sources.credentials import mask_credentials

log = logging.getLogger(__name__)


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
        self._silent = False  # the last packet gave no picture

    @property
    def codec(self) -> str:
        """The current codec's name."""
        return self._context.name

    def decode(self, packet: av.Packet) -> Decoded:
        """The pictures of ``packet`` (an empty one drains the decoder)."""
        if packet.size and packet.is_keyframe and self._silent:
            changed = self._follow(packet)  # a codec the decoder does not know may come
            if changed is not None:
                return changed
        try:
            pictures = self._context.decode(packet)
        except av.error.InvalidDataError as exc:
            changed = self._follow(packet) if packet.size else None
            if changed is not None:
                return changed
            log.debug("skipped an undecodable packet: %s", mask_credentials(_reason(exc)))
            pictures = []
        self._silent = not pictures
        return Decoded(pictures)

    def close(self) -> None:
        """Close the probe's container; idempotent."""
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.close()

    def _follow(self, packet: av.Packet) -> Decoded | None:
        """Switch to the codec the probe finds in ``packet`` when it is another one that
        decodes it; the pictures, or None when the codec stays."""
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
        self._silent = not pictures
        return Decoded(drained + pictures, changed_from=previous, drained=len(drained))


def _probe(packet: av.Packet):
    """A container opened over the packet's bytes when FFmpeg finds video in them, else None."""
    try:
        container = av.open(io.BytesIO(bytes(packet)))
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
