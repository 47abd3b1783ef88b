"""A still image as a one-frame source."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from stages.errors import InputError
from stages.sources.file_source import FileSource, SourceInfo, check_path
from stages.frames import Frame
from stages.sources.orientation import orientation_of
from stages.sources.probe import is_still_format


class ImageFileSource(FileSource):
    """A still image as a one-frame source (pts 0, time base 1/1, rate 1).

    Decoded with OpenCV (by content, whatever the extension); formats OpenCV
    cannot read are tried with PyAV.
    """

    def __init__(self, path: str | os.PathLike, *, name: str | None = None) -> None:
        """Open and decode ``path``.

        Args:
            path: Image file.
            name: Source id; defaults to the path as given.

        Raises:
            InputError: The file cannot be used or is not a readable image.
        """
        p = check_path(path)
        self._image: np.ndarray | None = _read_image(p, os.fspath(path))
        h, w = self._image.shape[:2]
        self.info = SourceInfo(name=name or os.fspath(path), width=w, height=h,
                               rate=Fraction(1), time_base=Fraction(1), frames=1,
                               duration=None, codec=p.suffix.lower().lstrip(".") or "image")
        super().__init__()

    def _frames(self) -> Iterator[Frame]:
        try:
            image, self._image = self._image, None
            frame = Frame(source=self.info.name, index=0, pts=0.0, image=image,
                          wall=time.time(), pts_ticks=0, time_base=(1, 1))
            self.frames_read = 1
            yield frame
        finally:
            self._release()

    def _release(self) -> None:
        self._image = None


def is_still_image(path: str | os.PathLike) -> bool:
    try:
        with av.open(os.fspath(path)) as container:
            return is_still_format(container)
    except av.FFmpegError:
        return False


def _read_image(p: Path, shown: str) -> np.ndarray:
    image = cv2.imdecode(np.fromfile(p, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        image = _read_image_av(p)
    if image is None:
        raise InputError(f"{shown}: not an image file OpenCV or PyAV can read")
    return np.ascontiguousarray(image)


def _read_image_av(p: Path) -> np.ndarray | None:
    try:
        with av.open(os.fspath(p)) as container:
            for frame in container.decode(video=0):
                return orientation_of(frame, p).apply(frame.to_ndarray(format="bgr24"))
    except (av.FFmpegError, IndexError):
        return None
    return None
