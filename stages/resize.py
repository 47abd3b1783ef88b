"""Resizing frames to the network input size."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import cv2
import numpy as np

from stages.errors import InputError
from stages.frames import Frame

DEFAULT_RESOLUTION = (432, 368)
STRIDE = 8


def parse_resolution(text: str) -> tuple[int, int]:
    """Parse ``WxH`` into (width, height), both positive multiples of 8.

    Raises:
        InputError: Not of the form WxH, zero, or not a multiple of 8.
    """
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise InputError(f"--resolution {text!r}: expected WIDTHxHEIGHT, e.g. 432x368")
    w, h = int(m[1]), int(m[2])
    if w <= 0 or h <= 0:
        raise InputError(f"--resolution {text!r}: width and height must be positive")
    if w % STRIDE or h % STRIDE:
        raise InputError(f"--resolution {text!r}: width and height must be multiples of {STRIDE}")
    return w, h


@dataclass(frozen=True, slots=True)
class NetInput:
    """A frame with its network-sized picture."""

    frame: Frame
    tensor: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        if self.tensor.ndim != 3 or self.tensor.shape[2] != 3:
            raise ValueError(f"NetInput.tensor must be HxWx3, got shape {self.tensor.shape}")


class Resizer:
    """Stretches frames to the network size, as tf-pose-estimation does (bicubic).

    Args:
        size: Network input (width, height).
    """

    def __init__(self, size: tuple[int, int] = DEFAULT_RESOLUTION) -> None:
        self.size = size

    def __call__(self, frame: Frame) -> NetInput:
        """Return the frame with its resized picture."""
        img = frame.image
        if (img.shape[1], img.shape[0]) != self.size:
            img = cv2.resize(img, self.size, interpolation=cv2.INTER_CUBIC)
        return NetInput(frame, img)
