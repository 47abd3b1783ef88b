"""Data passed between stages: frames, people and per-frame results."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NUM_PARTS = 18
PART_NAMES = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow",
    "l_wrist", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle",
    "r_eye", "l_eye", "r_ear", "l_ear",
)


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded picture.

    Attributes:
        source: Id of the source that produced it.
        index: Decode order within the source, from 0; gapless unless a
            stride, range or rate cap leaves pictures out (they keep their numbers).
        pts: Presentation time in seconds (stream time).
        time_base: Exact time base of the source stream as (num, den), or None.
        pts_ticks: Presentation time in ``time_base`` units, or None.
        wall: Capture wall-clock time (``time.time()``), for latency.
        image: HxWx3 uint8 BGR pixels.
    """

    source: str
    index: int
    pts: float
    image: np.ndarray = field(repr=False)
    wall: float = 0.0
    pts_ticks: int | None = None
    time_base: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        img = self.image
        if not (isinstance(img, np.ndarray) and img.dtype == np.uint8
                and img.ndim == 3 and img.shape[2] == 3):
            raise ValueError(f"Frame.image must be HxWx3 uint8, got {_describe(img)}")
        if self.index < 0:
            raise ValueError(f"Frame.index must be >= 0, got {self.index}")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.image.shape[1], self.image.shape[0]

    def __repr__(self) -> str:
        return (f"Frame(source={self.source!r}, index={self.index}, pts={self.pts:.6f}, "
                f"image={_describe(self.image)})")


@dataclass(frozen=True, slots=True)
class Person:
    """One detected person.

    Attributes:
        keypoints: 18x3 float32: x, y in original frame pixels, confidence;
            missing parts are all zero.
        score: Overall score of the assembled skeleton.
        track_id: Stable id across frames, when tracking is on.
    """

    keypoints: np.ndarray = field(repr=False)
    score: float
    track_id: int | None = None

    def __post_init__(self) -> None:
        kp = self.keypoints
        if not (isinstance(kp, np.ndarray) and kp.shape == (NUM_PARTS, 3)):
            raise ValueError(f"Person.keypoints must be {NUM_PARTS}x3, got {_describe(kp)}")

    @property
    def present(self) -> np.ndarray:
        """Boolean mask of the parts that were found."""
        return self.keypoints[:, 2] > 0

    def __repr__(self) -> str:
        return (f"Person(score={self.score:.3f}, parts={int(self.present.sum())}, "
                f"track_id={self.track_id})")


@dataclass(frozen=True, slots=True)
class Result:
    """A frame with the people found in it and what each stage cost.

    Attributes:
        frame: The original frame.
        people: People found, in assembly order.
        timings: Seconds spent per stage name.
        image: The annotated picture, once rendered (else None).
    """

    frame: Frame
    people: tuple[Person, ...]
    timings: dict[str, float] = field(default_factory=dict, compare=False)
    image: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:
        return f"Result(frame={self.frame!r}, people={len(self.people)})"


def _describe(a: object) -> str:
    if isinstance(a, np.ndarray):
        return f"ndarray(shape={a.shape}, dtype={a.dtype})"
    return type(a).__name__
