"""Resizing frames to the network input size."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from models.resolution import DEFAULT_RESOLUTION, STRIDE, parse_resolution
from stages.frames import Frame

__all__ = ["DEFAULT_RESOLUTION", "STRIDE", "NetInput", "Resizer", "parse_resolution"]

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
