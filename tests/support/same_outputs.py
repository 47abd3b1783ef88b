"""Whether two runs wrote the same outputs for an input (resumed runs against uninterrupted ones)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def video_frames(path: Path) -> tuple[list[Fraction], list[np.ndarray]]:
    """Every decoded frame's pts (seconds, exact) and picture."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
        return ([f.pts * f.time_base for f in frames],
                [f.to_ndarray(format="bgr24") for f in frames])


def assert_same_outputs(ours: Path, theirs: Path, stem: str, *,
                        formats=("jsonl", "csv", "coco", "openpose"), video: bool = True) -> None:
    """The outputs of ``stem`` in ``ours`` are those in ``theirs``: the keypoint files byte
    for byte (file and batch runs' records carry no timing field), the video's frame count,
    timestamps and decoded pictures."""
    suffixes = {"jsonl": ".jsonl", "csv": ".csv", "coco": ".coco.json"}
    for fmt in formats:
        if fmt == "openpose":
            folder, other = ours / f"{stem}.openpose", theirs / f"{stem}.openpose"
            assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in other.iterdir())
            assert all((folder / p.name).read_bytes() == p.read_bytes() for p in other.iterdir())
        else:
            name = stem + suffixes[fmt]
            assert (ours / name).read_bytes() == (theirs / name).read_bytes(), name
    if video:
        our_pts, our_pictures = video_frames(ours / f"{stem}.mp4")
        their_pts, their_pictures = video_frames(theirs / f"{stem}.mp4")
        assert our_pts == their_pts
        assert all(np.array_equal(a, b) for a, b in zip(our_pictures, their_pictures, strict=True))
