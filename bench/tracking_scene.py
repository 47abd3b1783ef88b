"""A clip with known identities for the tracking bench, and the id-switch count.

Three people cut out of scikit-image's photos (the crops of the golden
``crowd_crops`` scene: the astronaut's upper body, the cameraman, the
astronaut mirrored) walk to and fro across a 960x540 picture on sine paths
of different periods, at three depths: the near one larger, lower and drawn
on top, the far one smaller and higher. Every pair's vertical extents
overlap, so each time two of them pass, the nearer hides the other: a
crossing with an occlusion, the hard case for a tracker. Peak speeds are
1.1 to 1.6 of the person's own picture height per second (an upper body of
about 0.9 m walking at 1.0 to 1.4 m/s).

Identity comes from the compositing: ``Scene.labels(t)`` is the picture's map
of which person is visible at each pixel, and a detected skeleton is that of
the person under most of its keypoints (``match_people``, one to one).
``score_run`` counts, per person, the id switches (the standard CLEAR-MOT
definition: the track id given to a person differs from the one it had when
last matched), the fragmentations (its matches stop and resume), and over
the run the ids created.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from stages.pose._assignment import min_cost_pairs

SIZE = (960, 540)
FILL = 90  # grey of the background, as the golden scenes'
MIN_VOTES = 3  # keypoints on a person for a skeleton to be theirs


@dataclass(frozen=True, slots=True)
class Walker:
    """One person's picture and path: the centre's x is
    ``SIZE[0] / 2 + amplitude * sin(2 pi t / period + phase)``."""

    name: str
    photo: str                      # "astronaut" or "camera"
    crop: tuple[int, int, int, int]  # x0, y0, x1, y1 in the photo
    size: tuple[int, int]           # width, height in the clip
    top: int                        # y of the picture's top edge
    amplitude: float
    period: float
    phase: float
    flip: bool = False

    def box(self, t: float) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the person's picture at ``t`` seconds (may leave the frame)."""
        centre = SIZE[0] / 2 + self.amplitude * math.sin(2 * math.pi * t / self.period + self.phase)
        x0 = round(centre - self.size[0] / 2)
        return x0, self.top, x0 + self.size[0], self.top + self.size[1]


# far to near: later ones are drawn on top
WALKERS = (
    Walker("far", "astronaut", (0, 0, 400, 512), (156, 200), 110, 300, 6.0, 0.0, flip=True),
    Walker("middle", "camera", (100, 0, 500, 512), (203, 260), 190, 380, 8.0, 2.0, flip=True),
    Walker("near", "astronaut", (0, 0, 400, 512), (234, 300), 240, 400, 7.0, 4.0),
)


@dataclass(slots=True)
class Scene:
    """Draws the clip's pictures and says who is where."""

    walkers: tuple[Walker, ...] = WALKERS
    _tiles: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        from tests.support.people_maps import photo

        for w in self.walkers:
            x0, y0, x1, y1 = w.crop
            image = photo(w.photo)[y0:y1, x0:x1]
            image = image[:, ::-1] if w.flip else image
            self._tiles.append(cv2.resize(np.ascontiguousarray(image), w.size,
                                          interpolation=cv2.INTER_AREA))

    def picture(self, t: float) -> np.ndarray:
        """The HxWx3 uint8 BGR picture at ``t`` seconds."""
        canvas = np.full((SIZE[1], SIZE[0], 3), FILL, np.uint8)
        for walker, tile in zip(self.walkers, self._tiles):
            _paste(canvas, tile, walker.box(t))
        return canvas

    def labels(self, t: float) -> np.ndarray:
        """HxW int8: the index of the person seen at each pixel, -1 for the background."""
        out = np.full((SIZE[1], SIZE[0]), -1, np.int8)
        for index, walker in enumerate(self.walkers):
            x0, y0, x1, y1 = _clipped(walker.box(t))
            out[y0:y1, x0:x1] = index
        return out

    def crossings(self, times: np.ndarray) -> list[int]:
        """Per person, the times another passes them (their centres' order swaps) over ``times``."""
        centres = np.array([[(w.box(t)[0] + w.box(t)[2]) / 2 for w in self.walkers] for t in times])
        counts = [0] * len(self.walkers)
        for i in range(len(self.walkers)):
            for j in range(i + 1, len(self.walkers)):
                side = np.sign(centres[:, i] - centres[:, j])
                side = side[side != 0]
                swaps = int((side[1:] != side[:-1]).sum())
                counts[i] += swaps
                counts[j] += swaps
        return counts


def _clipped(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    return max(0, x0), max(0, y0), min(SIZE[0], x1), min(SIZE[1], y1)


def _paste(canvas: np.ndarray, tile: np.ndarray, box: tuple[int, int, int, int]) -> None:
    x0, y0, x1, y1 = _clipped(box)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = tile[y0 - box[1]:y1 - box[1], x0 - box[0]:x1 - box[0]]


def match_people(skeletons: list[np.ndarray], labels: np.ndarray) -> dict[int, int]:
    """Which person each skeleton is: {skeleton index: person index}, one to one.

    Args:
        skeletons: 18x3 keypoints (x, y, confidence; 0 confidence: missing).
        labels: ``Scene.labels`` of the frame.

    Returns:
        A skeleton is the person under most of its keypoints, when at least
        ``MIN_VOTES`` and half of them are on that person; of several such
        skeletons, the one with the most votes. Others are nobody's.
    """
    people = int(labels.max()) + 1
    votes = np.zeros((len(skeletons), max(people, 0)))
    for s, keypoints in enumerate(skeletons):
        present = keypoints[:, 2] > 0
        xy = np.round(keypoints[present, :2]).astype(int)
        inside = ((xy[:, 0] >= 0) & (xy[:, 0] < labels.shape[1])
                  & (xy[:, 1] >= 0) & (xy[:, 1] < labels.shape[0]))
        for label in labels[xy[inside, 1], xy[inside, 0]]:
            if label >= 0:
                votes[s, label] += 1
        counts = votes[s]
        counts[(counts < MIN_VOTES) | (counts < present.sum() / 2)] = 0
    cost = np.where(votes > 0, -votes, np.inf)
    return dict(min_cost_pairs(cost))


@dataclass(slots=True)
class RunScore:
    """Id switches and fragmentations per person, and the ids of one tracking run."""

    switches: list[int]
    fragments: list[int]
    matched: list[int]  # frames in which the person had a skeleton
    ids: int            # distinct track ids given in the run
    frames: int
    person_ids: list[int]  # distinct track ids each person was given


def visible(labels: np.ndarray, walkers: tuple[Walker, ...], share: float = 0.3) -> list[bool]:
    """Per person: at least ``share`` of their picture is in sight (not hidden or out of frame)."""
    counts = np.bincount(labels.ravel() + 1, minlength=len(walkers) + 1)[1:]
    return [counts[i] >= share * w.size[0] * w.size[1] for i, w in enumerate(walkers)]


def score_run(per_frame: list[tuple[dict[int, int], list[int], list[bool]]],
              people: int) -> RunScore:
    """Count id switches, fragmentations and ids over a run.

    Args:
        per_frame: For each processed frame in order: ``match_people``'s
            {skeleton: person}, the track id of every skeleton, and
            ``visible``'s answer per person.
        people: How many people the scene has.

    Returns:
        The run's ``RunScore``. A fragmentation is a person's matches resuming
        after frames in which they were in sight but had no skeleton.
    """
    last_id: list[int | None] = [None] * people
    interrupted = [False] * people
    switches, fragments, matched = [0] * people, [0] * people, [0] * people
    ids: set[int] = set()
    carried: list[set[int]] = [set() for _ in range(people)]
    for owners, track_ids, seen in per_frame:
        ids.update(track_ids)
        now = {person: track_ids[s] for s, person in owners.items()}
        for person in range(people):
            if person not in now:
                interrupted[person] |= seen[person] and last_id[person] is not None
                continue
            if interrupted[person]:
                fragments[person] += 1
                interrupted[person] = False
            if last_id[person] is not None and now[person] != last_id[person]:
                switches[person] += 1
            last_id[person] = now[person]
            carried[person].add(now[person])
            matched[person] += 1
    return RunScore(switches, fragments, matched, len(ids), len(per_frame), [len(c) for c in carried])
