"""The network input size: its default and how it is written (``WxH``).

The graphs' maps are 1/``STRIDE`` of the input, so both sides must be
multiples of it.
"""

from __future__ import annotations

import re

from pipeline.errors import InputError

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
