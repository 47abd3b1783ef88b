"""Copying an input file's audio streams into an output container, packet for packet
(see ``stages.outputs.video``, which interleaves it with the video it writes)."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av

log = logging.getLogger(__name__)


class AudioCopy:
    """Muxes the audio packets of an input file into an output, in time order.

    Attributes:
        packets: Packets copied so far.
    """

    def __init__(self, input: str | os.PathLike, container, fmt: str, shown: Path,
                 on_mux=None) -> None:
        self.packets = 0
        self._on_mux = on_mux
        self._shown = shown
        self._container = container
        self._input = av.open(os.fspath(input))
        self._outputs = {}
        try:
            for stream in self._input.streams.audio:
                if _muxer_takes(fmt, stream):
                    self._outputs[stream.index] = container.add_stream_from_template(stream)
                else:
                    log.warning("%s: the %s container cannot hold %s audio (stream %d); "
                                "audio stream dropped", shown, fmt,
                                stream.codec_context.name, stream.index)
        except BaseException:
            self._input.close()
            raise
        self._packets: Iterator[av.Packet] | None = None
        self._next: av.Packet | None = None
        if self._outputs:
            ins = [s for s in self._input.streams.audio if s.index in self._outputs]
            self._packets = self._input.demux(*ins)
            self._advance()
        else:
            self.close()

    @property
    def streams(self) -> int:
        """Audio streams being copied."""
        return len(self._outputs)

    def copy_until(self, seconds: Fraction | None) -> None:
        """Mux the packets that start before ``seconds`` (all when None)."""
        while self._next is not None:
            packet = self._next
            ticks = packet.dts if packet.dts is not None else packet.pts
            if seconds is not None and ticks is not None and ticks * packet.time_base >= seconds:
                return
            packet.stream = self._outputs[packet.stream_index]
            if self._on_mux is not None:
                self._on_mux(packet)
            try:
                self._container.mux(packet)
            except av.FFmpegError as exc:
                log.warning("%s: audio copy stopped after %d packets: the muxer refused "
                            "one (%s)", self._shown, self.packets, exc)
                self.close()
                return
            self.packets += 1
            self._advance()

    def skip_before(self, seconds: Fraction) -> None:
        """Drop, unmuxed, the packets that end at or before ``seconds`` (the
        audio of a part of the input that the video does not hold)."""
        while self._next is not None:
            packet = self._next
            ticks = packet.pts if packet.pts is not None else packet.dts
            if ticks is None or (ticks + (packet.duration or 0)) * packet.time_base > seconds:
                return
            self._advance()

    def _advance(self) -> None:
        self._next = None
        try:
            for packet in self._packets:
                if packet.size:  # the demuxer ends with empty flush packets
                    self._next = packet
                    return
        except av.FFmpegError as exc:
            log.warning("%s: audio copy stopped after %d packets: the input's audio "
                        "cannot be read (%s)", self._shown, self.packets, exc)
        self.close()

    def close(self) -> None:
        """Release the input; idempotent."""
        self._next = None
        self._packets = None
        self._input.close()


def open_audio(input: str | os.PathLike | None, container, fmt: str,
                path: Path, on_mux=None) -> AudioCopy | None:
    """The audio copy from ``input``, or None (no input, no audio stream, unreadable)."""
    if input is None:
        return None
    try:
        audio = AudioCopy(input, container, fmt, path, on_mux)
    except (av.FFmpegError, OSError, ValueError) as exc:
        log.warning("%s: audio not copied: %s cannot be read for its audio (%s)",
                    path, os.fspath(input), exc)
        return None
    return audio if audio.streams else None


def _muxer_takes(fmt: str, stream) -> bool:
    """Whether format ``fmt`` accepts ``stream``'s codec: a trial header in memory."""
    try:
        with av.open(io.BytesIO(), "w", format=fmt) as trial:
            trial.add_stream_from_template(stream)
            trial.start_encoding()
    except (ValueError, av.FFmpegError):
        return False
    return True
