"""The annotated video of a resumable run: encoded in pieces, joined once at the end.

A file run's video is encoded piece by piece (``stages.outputs.resume`` says
where a piece ends: every ``PIECE_SECONDS`` of source time). Each piece is
its own H.264 stream from a new encoder, so it starts with a key frame and
no picture refers to another piece (closed GOPs); a finished piece is a
flat, video-only mp4 in the run's work folder (``piece-000001.mp4.partial``,
a name no ``*.mp4`` matches). A piece being written when the process is
killed is lost; the committed ones stay, and a resumed run writes the next.

``join_pieces`` copies the packets of every piece, in order and without
re-encoding, into one mp4 under a partial name next to the final one, as
``VideoWriter`` would have muxed them: the same muxer options (every pts
exactly the source's), the input's audio copied and interleaved
(``stages.outputs._audio_copy``; only the range's audio for ``--start`` or
``--end``), and, when every frame of the source was written, the last
picture given the duration that makes the video's length the source's. The
encoders of all pieces have the same settings, so their stream headers
(SPS/PPS) are the same and the packets of one play after another's; a piece
whose header differs is refused rather than joined into a broken stream.

Decode times: with B-frames a picture is decoded (dts) some pictures before
it is shown (pts), and each encoder starts its dts that far before its first
pts, so the dts of one piece run back into the last piece's. The join gives
every packet the dts x264 itself gives when it encodes a whole stream: with
a reordering depth of R pictures (the deepest of the pieces'), the i-th
packet's dts is the (i-R)-th smallest pts, and the first R packets' are the
first R pts moved back by the span of the first R+1. They increase, none is
after its packet's pts (no piece's pictures are reordered across its first
key frame), and the video's length (its dts span plus the last picture's
duration) is a single encoder's; the pts, which say when each picture is
shown, are never touched.
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from stages.errors import OutputError
from stages.outputs._audio_copy import open_audio
from stages.outputs.atomic import Staged, commit, partial_path, remove_quietly
from stages.outputs.video import VideoWriter, muxer_options
from stages.sources.file_source import SourceInfo

log = logging.getLogger(__name__)

PIECE_SUFFIX = ".mp4.partial"


@dataclass(frozen=True, slots=True)
class Piece:
    """A finished piece of video.

    Attributes:
        name: Its file's name in the work folder.
        frames: Pictures in it.
        first_ticks: The pts of its first picture, in the source's time base.
        last_ticks: The pts of its last picture.
    """

    name: str
    frames: int
    first_ticks: int
    last_ticks: int

    def as_dict(self) -> dict:
        """JSON-ready record (a checkpoint's)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Piece:
        """The piece a record (``as_dict``) describes.

        Raises:
            KeyError, TypeError, ValueError: Not such a record.
        """
        return cls(name=str(data["name"]), frames=int(data["frames"]),
                   first_ticks=int(data["first_ticks"]), last_ticks=int(data["last_ticks"]))


def piece_name(number: int) -> str:
    """The file name of piece ``number`` (from 1)."""
    return f"piece-{number:06d}{PIECE_SUFFIX}"


class PieceVideo:
    """Writes the annotated video in pieces into ``folder``.

    Args:
        folder: The run's work folder.
        info: The source's description (size, rate, time base).
        preset: x264 preset.
        pieces: The pieces an earlier run committed (a resumed run).

    Attributes:
        pieces: The committed pieces, in order.
    """

    def __init__(self, folder: Path, info: SourceInfo, *, preset: str = "veryfast",
                 pieces: Sequence[Piece] = ()) -> None:
        self.folder = Path(folder)
        # pieces know nothing of the whole source: its length is the join's business
        self._info = dataclasses.replace(info, frames=None, duration=None)
        self._preset = preset
        self.pieces: list[Piece] = list(pieces)
        self._writer: VideoWriter | None = None

    @property
    def frames_written(self) -> int:
        """Pictures written: the committed pieces' and the current piece's."""
        current = self._writer.frames_written if self._writer is not None else 0
        return sum(p.frames for p in self.pieces) + current

    @property
    def tmp(self) -> Path:
        """The folder the pieces are written in."""
        return self.folder

    def write(self, image, pts_ticks: int | None) -> None:
        """Encode one picture into the current piece (begun if need be).

        Raises:
            OutputError: The piece cannot be created or written.
        """
        if self._writer is None:
            after = self.pieces[-1].last_ticks if self.pieces else None
            self._writer = VideoWriter(self._current_path(), self._info, preset=self._preset,
                                       after_ticks=after)
        self._writer.write(image, pts_ticks)

    def _current_path(self) -> Path:
        # the encoder's file: VideoWriter takes the format from ".mp4"
        return self.folder / piece_name(len(self.pieces) + 1)[:-len(".partial")]

    def cut(self) -> Piece | None:
        """Finish the current piece and put it under its piece name (flushed to the
        disk); return it, or None when no picture was written since the last cut.

        Raises:
            OutputError: The piece cannot be finished (it is removed).
        """
        writer, self._writer = self._writer, None
        if writer is None:
            return None
        try:
            staged = writer.finish()
        except OutputError:
            remove_quietly(writer.tmp)
            raise
        if staged is None:
            return None
        piece = Piece(piece_name(len(self.pieces) + 1), writer.frames_written,
                      writer.first_ticks, writer.last_ticks)
        _fsync(staged.tmp)
        commit(staged.tmp, self.folder / piece.name)
        self.pieces.append(piece)
        return piece

    def discard(self) -> None:
        """Drop the piece being written (the work since the last cut); idempotent."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            staged = writer.finish()
        except OutputError as exc:
            log.debug("%s", exc)
            staged = None
        remove_quietly(staged.tmp if staged is not None else writer.tmp)

    def join(self, path: Path, *, source_info: SourceInfo, audio_from: Path | None = None,
             audio_range: bool = False) -> Staged | None:
        """The committed pieces joined into one video for ``path`` (``join_pieces``);
        None when there is none. Cut the current piece first."""
        if not self.pieces:
            return None
        return join_pieces([self.folder / p.name for p in self.pieces], self.pieces, path,
                           source_info, audio_from=audio_from, audio_range=audio_range)


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def join_pieces(files: Sequence[Path], pieces: Sequence[Piece], path: Path, info: SourceInfo, *,
                audio_from: Path | None = None, audio_range: bool = False) -> Staged:
    """Copy the packets of ``files`` (the pieces, in order) into one mp4 under a partial
    name next to ``path`` (see the module docstring); return it as ``Staged``.

    Args:
        files: The pieces' files.
        pieces: What they hold.
        path: The final video path (``.mp4``, ``.m4v`` or ``.mov``).
        info: The whole source's description (its frame count and duration
            say whether every frame was written).
        audio_from: The input whose audio is copied, or None.
        audio_range: Only the audio of the frames written (``--start``/``--end``).

    Raises:
        OutputError: A piece cannot be read or is not like the first, or the
            video cannot be written (nothing is left).
    """
    fmt = {".mov": "mov"}.get(Path(path).suffix.lower(), "mp4")
    tmp = partial_path(path, "join")  # a join cut short is of no use: removed, never kept
    joint = _Joint(pieces, info, audio_range)
    try:
        with av.open(os.fspath(tmp), "w", format=fmt,
                     options=muxer_options(fmt, Fraction(info.time_base))) as out:
            with av.open(os.fspath(files[0])) as first:
                video = out.add_stream_from_template(first.streams.video[0])
                header = bytes(first.streams.video[0].codec_context.extradata or b"")
            audio = open_audio(audio_from, out, fmt, path)
            try:
                joint.depth = max(_depth(file) for file in files)
                for file in files:
                    _copy_piece(file, header, video, out, joint, audio)
                joint.mux_last(out, audio)
                joint.finish_audio(audio)
            finally:
                if audio is not None:
                    audio.close()
    except (av.FFmpegError, OSError) as exc:
        remove_quietly(tmp)
        raise OutputError(f"{path}: cannot join the pieces of the video ({exc})") from exc
    except OutputError:
        remove_quietly(tmp)
        raise
    return Staged(tmp, Path(path))


def _depth(file: Path) -> int:
    """How many pictures a piece's encoder reorders: its packets decoded before its
    first picture is shown (x264's B-frame delay; 0 for a piece too short for B-frames)."""
    with av.open(os.fspath(file)) as piece:
        stream = piece.streams.video[0]
        first, depth = None, 0
        for number, packet in enumerate(p for p in piece.demux(stream) if p.size):
            if first is None:
                first = packet.pts
            if number >= 32 or packet.dts is None or packet.dts >= first:
                break
            depth += 1
        return depth


def _copy_piece(file: Path, header: bytes, video, out, joint: _Joint, audio) -> None:
    with av.open(os.fspath(file)) as piece:
        stream = piece.streams.video[0]
        if bytes(stream.codec_context.extradata or b"") != header:
            raise OutputError(f"{file}: its H.264 stream header differs from the first "
                              f"piece's; the pieces cannot be joined")
        for packet in piece.demux(stream):
            if packet.size:  # the demuxer ends with empty flush packets
                packet.stream = video
                joint.mux(packet, out, audio)


class _DecodeTimes:
    """The dts of the joined packets, in decode order (see the module docstring).

    A packet waits until the pts its dts comes from are known: the (i-R)-th
    smallest is known once packet i is in (no picture is reordered by more
    than R), the first R packets' once 2R+1 are.
    """

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self._pts: list[int] = []  # heap of the pts not yet taken in order
        self._ordered: collections.deque[int] = collections.deque()  # S[taken - len:taken]
        self._taken = 0  # smallest pts taken out of the heap so far
        self._head: list[int] = []  # S[0..R], for the first R packets
        self._waiting: collections.deque[tuple[int, av.Packet]] = collections.deque()
        self._count = 0

    def push(self, packet: av.Packet) -> list[av.Packet]:
        """Take the next packet; return those whose dts are now set, in order."""
        heapq.heappush(self._pts, packet.pts)
        self._waiting.append((self._count, packet))
        self._count += 1
        return self._ready(final=False)

    def finish(self) -> list[av.Packet]:
        """The packets still waiting, their dts set."""
        if self._count <= self.depth:  # shorter than the reordering: as short encodes do
            self.depth = max(self._count - 1, 0)
        return self._ready(final=True)

    def _take(self, upto: int, final: bool) -> bool:
        """Take the smallest pts in order up to S[upto]; whether it is known."""
        while self._taken <= upto:
            if not self._pts or not (final or self._count > self._taken + self.depth):
                return False
            value = heapq.heappop(self._pts)
            self._ordered.append(value)
            if len(self._head) <= self.depth:
                self._head.append(value)
            self._taken += 1
        return True

    def _ready(self, final: bool) -> list[av.Packet]:
        out = []
        while self._waiting:
            i, packet = self._waiting[0]
            r = self.depth
            if not self._take(max(i - r, r if i < r else 0), final):
                break
            if i < r:
                packet.dts = self._head[i] - (self._head[r] - self._head[0])
            else:
                packet.dts = self._ordered[i - r - (self._taken - len(self._ordered))]
            self._waiting.popleft()
            while len(self._ordered) > 1 and self._taken - len(self._ordered) < i - r + 1:
                self._ordered.popleft()  # S values no later packet needs
            out.append(packet)
        return out


class _Joint:
    """The join's running state: the packet held back (the last one's duration is set
    when the whole source was written) and the audio copied along."""

    def __init__(self, pieces: Sequence[Piece], info: SourceInfo, audio_range: bool) -> None:
        tb = Fraction(info.time_base)
        self.frames = sum(p.frames for p in pieces)
        self.first = pieces[0].first_ticks * tb  # seconds
        step = max(1, round(1 / (Fraction(info.rate) * tb)))
        self.end = (pieces[-1].last_ticks + step) * tb  # end of the last frame, seconds
        self.step = step * tb
        self.second = round(1 / tb) * tb  # a second, in whole ticks
        # (frames, duration in seconds of whole ticks) of the whole source, as VideoWriter's
        self.whole = (info.frames, round(Fraction(info.duration) / tb) * tb) \
            if info.frames and info.duration else None
        self.duration = Fraction(info.duration) if info.duration else None
        self.audio_range = audio_range
        self.first_dts: Fraction | None = None
        self.held: av.Packet | None = None
        self.depth = 0
        self._times: _DecodeTimes | None = None

    def mux(self, packet: av.Packet, out, audio) -> None:
        if self._times is None:
            self._times = _DecodeTimes(self.depth)
        for ready in self._times.push(packet):
            self._hold(ready, out, audio)

    def _hold(self, packet: av.Packet, out, audio) -> None:
        if self.first_dts is None and packet.dts is not None:
            self.first_dts = packet.dts * packet.time_base
            if audio is not None and self.audio_range:
                audio.skip_before(self.first)
        if self.held is not None:
            self._mux_video(self.held, out, audio)
        self.held = packet

    def _mux_video(self, packet: av.Packet, out, audio) -> None:
        if audio is not None and packet.dts is not None:
            audio.copy_until(packet.dts * packet.time_base)
        out.mux(packet)

    def mux_last(self, out, audio) -> None:
        for ready in self._times.finish() if self._times is not None else ():
            self._hold(ready, out, audio)
        packet, self.held = self.held, None
        if packet is None:
            return
        if self.whole and self.frames == self.whole[0] and self.first_dts is not None:
            tb = packet.time_base
            duration = (self.whole[1] - (packet.dts * tb - self.first_dts)) / tb
            if 0 < duration <= max(4 * self.step, self.second) / tb and duration.denominator == 1:
                packet.duration = int(duration)
        self._mux_video(packet, out, audio)

    def whole_source_written(self) -> bool:
        if self.whole:
            return self.frames == self.whole[0]
        if self.duration:
            return self.end - self.first >= self.duration - self.step / 2
        return True

    def finish_audio(self, audio) -> None:
        if audio is None:
            return
        if self.whole_source_written() and not self.audio_range:
            audio.copy_until(None)
        else:
            audio.copy_until(self.end)
