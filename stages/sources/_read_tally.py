"""What reading a video file met: packets, rejected packets, where the data ended.

``VideoFileSource`` feeds a ``ReadTally`` while it demuxes and decodes, and
asks it at the end whether the file was cut short and how many of its
pictures were lost to damage. The rules, as FFmpeg reads a file:

* Every video packet holds one picture (true of the containers and codecs
  we read: mp4/mov/Matroska samples, parsed raw H.264/HEVC).
* A packet the decoder rejects is damage, unless it is the last packet and
  reaches the end of the file: then the file was cut inside it.
* A file whose container declares a frame count (mp4, mov) is cut short when
  fewer packets were read. One that declares none (Matroska, WebM) is cut
  short when the packets read end more than ``END_SLACK`` frame periods
  before the duration it declares; packet times beyond that duration (damaged
  timestamps) are not believed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterable

END_SLACK = 2  # frame periods the video may end before the duration the file declares


@dataclass(slots=True)
class ReadTally:
    """Counts kept while a video file is read.

    Attributes:
        file_size: Bytes in the file.
        time_base: The video stream's time base.
        rate: The video's nominal frame rate.
        declared_frames: Frame count the container declares, or None.
        declared_end: Where the container says the video ends (seconds of
            stream time), or None.
        packets: Video packets read (pictures in the file, as far as read).
        rejected: Packets the decoder rejected (damage; see ``cut_inside``).
        repaired: Frames the decoder output with its ``corrupt`` flag.
    """

    file_size: int
    time_base: Fraction
    rate: Fraction
    declared_frames: int | None = None
    declared_end: float | None = None
    packets: int = 0
    rejected: int = 0
    repaired: int = 0
    # latest believable packet end (ticks); byte after the latest packet; whether
    # the decoder rejected the latest packet (or failed while draining)
    _read_until: int | None = field(default=None, init=False, repr=False)
    _last_byte: int | None = field(default=None, init=False, repr=False)
    _tail_rejected: bool = field(default=False, init=False, repr=False)

    def read(self, pts: int | None, duration: int | None, pos: int | None, size: int) -> None:
        """A video packet came out of the demuxer."""
        self.packets += 1
        self._tail_rejected = False
        self._last_byte = pos + size if pos is not None and pos >= 0 else None
        if pts is not None:
            end = pts + (duration or 0)
            if self.declared_end is None or end * self.time_base <= self.declared_end + 1:
                self._read_until = end if self._read_until is None else max(self._read_until, end)

    def reject(self) -> None:
        """The decoder rejected the latest packet (or failed while draining)."""
        self.rejected += 1
        self._tail_rejected = True

    def decoded(self, corrupt: Iterable[bool]) -> None:
        """The decoder output frames; ``corrupt`` holds each one's flag."""
        self.repaired += sum(1 for c in corrupt if c)

    def cut_inside(self) -> bool:
        """True when the last packet was rejected and reaches the end of the file."""
        return (self._tail_rejected and self._last_byte is not None
                and self._last_byte >= self.file_size)

    def settle_cut(self) -> bool:
        """Account a packet cut by the end of the file as truncation, not damage.

        Returns:
            True when the file was cut inside its last packet.
        """
        if not self.cut_inside():
            return False
        self.rejected -= 1
        self.packets -= 1
        self._tail_rejected = False
        return True

    def lost(self, frames_out: int) -> int:
        """Pictures that did not decode, given ``frames_out`` frames came out.

        Counted only when there is damage (a rejected packet or a repaired
        frame), so a clean file is never reported as lossy.
        """
        if not (self.rejected or self.repaired):
            return 0
        return max(0, self.packets - frames_out)

    def short_of_declared_count(self) -> bool:
        """True when fewer packets were read than the container declares frames."""
        return bool(self.declared_frames) and self.packets < self.declared_frames

    @property
    def read_until(self) -> float | None:
        """Seconds of stream time the packets read reach, or None."""
        return None if self._read_until is None else float(self._read_until * self.time_base)

    def ended_early(self) -> bool:
        """True when a container without a frame count declares a longer video than was read."""
        if self.declared_frames or self.declared_end is None or self._read_until is None:
            return False
        return self.read_until + END_SLACK / self.rate < self.declared_end
