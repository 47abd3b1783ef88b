"""Display orientation: turn a decoded picture the way a player shows it.

Phones store video in the sensor's (coded) orientation and put a display
matrix in the file (the mp4 ``tkhd`` matrix; FFmpeg attaches it to every
decoded frame as ``DISPLAYMATRIX`` side data) saying how to turn it. FFmpeg's
command line applies it before anything else (``-autorotate``, on by default);
so do we, so the network sees the picture upright, keypoints are in the
displayed frame of reference and the annotated video is written upright
(and carries no display matrix of its own).

The matrix maps a coded pixel (p, q) to the displayed (p', q') with
``p' = a*p + c*q + x`` and ``q' = b*p + d*q + y`` (``libavutil/display.h``).
The right angles and mirrorings that cameras write (the eight EXIF
orientations) have two zero and two +-1 entries in ``a b c d``: that is a
transpose (when ``a`` and ``d`` are zero) followed by flips, which is what
``Orientation`` holds. Other matrices (a free angle, scaling) are reported as
unsupported and the picture is left as coded.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import av
import cv2
import numpy as np

log = logging.getLogger(__name__)

_DISPLAYMATRIX = av.sidedata.sidedata.Type.DISPLAYMATRIX


class UnsupportedOrientation(ValueError):
    """A display matrix that is not a right-angle rotation or mirroring."""


@dataclass(frozen=True, slots=True)
class Orientation:
    """How to turn a coded picture into the displayed one.

    Attributes:
        transpose: Swap rows and columns first (rotations by 90 or 270 degrees).
        flip_rows: Then reverse the rows (upside down).
        flip_cols: Then reverse the columns (left to right).
    """

    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False

    @property
    def mirrored(self) -> bool:
        """True when the display is a mirror image of the coded picture."""
        return self.transpose ^ self.flip_rows ^ self.flip_cols

    @property
    def rotation(self) -> int:
        """Counter-clockwise degrees (0, 90, 180, 270) the picture is turned
        by, before a left-to-right mirroring when ``mirrored``."""
        cols = self.flip_cols ^ self.mirrored
        if self.transpose:
            return 90 if self.flip_rows else 270
        return 180 if self.flip_rows and cols else 0

    @property
    def upright(self) -> bool:
        """True when the coded picture is shown as it is."""
        return not (self.transpose or self.flip_rows or self.flip_cols)

    def size(self, width: int, height: int) -> tuple[int, int]:
        """Displayed (width, height) of a coded ``width`` x ``height`` picture."""
        return (height, width) if self.transpose else (width, height)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The displayed picture (a new contiguous array unless upright)."""
        if self.transpose:
            image = cv2.transpose(image)
        if self.flip_rows or self.flip_cols:
            code = -1 if self.flip_rows and self.flip_cols else (0 if self.flip_rows else 1)
            image = cv2.flip(image, code)
        return image


UPRIGHT = Orientation()


def frame_orientation(av_frame: av.VideoFrame) -> Orientation:
    """The orientation a decoded frame's display matrix asks for.

    Args:
        av_frame: A decoded PyAV video frame.

    Returns:
        ``UPRIGHT`` when the frame carries no display matrix.

    Raises:
        UnsupportedOrientation: The matrix is not a right angle or a mirroring.
    """
    side = av_frame.side_data.get(_DISPLAYMATRIX)
    if side is None:
        return UPRIGHT
    return from_matrix(np.frombuffer(bytes(side), dtype=np.int32))


def from_matrix(matrix) -> Orientation:
    """The ``Orientation`` of a 3x3 display matrix (9 ints, FFmpeg's layout).

    Args:
        matrix: Row-major ``a b u c d v x y w``; ``a b c d`` in 16.16 fixed point.

    Raises:
        UnsupportedOrientation: The matrix is not a right angle or a mirroring.
    """
    a, b, c, d = (int(matrix[i]) for i in (0, 1, 3, 4))
    if a == 0 and d == 0 and b != 0 and c != 0:
        return Orientation(True, b < 0, c < 0)
    if b == 0 and c == 0 and a != 0 and d != 0:
        return Orientation(False, d < 0, a < 0)
    raise UnsupportedOrientation(f"display matrix {[int(v) for v in matrix]} is not a "
                                 f"right-angle rotation or mirroring")


def orientation_of(av_frame: av.VideoFrame, path: str | os.PathLike) -> Orientation:
    """``frame_orientation``, or upright with a warning naming ``path`` when the
    matrix is not a right angle or mirroring."""
    try:
        return frame_orientation(av_frame)
    except UnsupportedOrientation as exc:
        log.warning("%s: %s; processing the pictures as coded", os.fspath(path), exc)
        return UPRIGHT
