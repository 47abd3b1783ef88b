"""Person tracking: a stable id per person across the frames of a source.

``PoseTracker`` is a pipeline ``map`` step placed *after* the ordered
inference pool (it needs every source's frames in increasing index order; a
frame index that does not increase raises ``ValueError``). It returns each
Result with its people replaced by copies carrying ``track_id``.

Algorithm (greedy matching with constant-velocity prediction):

* A track remembers the keypoints of its person when last seen, the frame's
  pts then, and a velocity (pixels per second of stream time, one 2-D vector
  for the whole skeleton: limbs swing, the body moves as one). Time, not
  frame counts: live sources drop frames and files may have a variable rate.
* For each new frame every track predicts where its person is now: the last
  keypoints moved by velocity x seconds elapsed. Without the prediction two
  people who cross between two frames swap ids (each is nearest to where the
  other was); with it they do not (``tests/stages/test_tracking.py``).
* The distance between a track and a person is the mean Euclidean distance
  over the parts present in both, divided by the person's size (the larger
  bounding-box diagonal of the two skeletons, at least ``min_size`` pixels),
  so the gate means the same for near and far people. No common part: no
  match.
* Pairs are taken greedily, nearest first, while the distance is within
  ``max_distance``. A matched track takes the person's keypoints and updates
  its velocity (the mean displacement of the common parts per second,
  smoothed); an unmatched person starts a new track with a new id.
* A track not seen for more than ``max_age`` seconds is forgotten; a person
  who comes back later gets a new id. Ids count up from 1 per source and are
  never reused within a run.

Sources are tracked separately, keyed by ``Frame.source``.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field, replace

import numpy as np

from stages.frames import Person, Result

_SMOOTHING = 0.5  # weight of the newest displacement in the velocity


@dataclass(slots=True)
class _Track:
    id: int
    keypoints: np.ndarray  # 18x3 of the person when last seen
    seen_at: float         # pts (seconds) when last seen
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    seen: int = 1          # frames matched

    def predicted(self, t: float, predict: bool) -> np.ndarray:
        xy = self.keypoints[:, :2]
        if not predict:
            return xy
        return xy + self.velocity * (t - self.seen_at)


@dataclass(slots=True)
class _SourceState:
    tracks: list[_Track] = field(default_factory=list)
    ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    last_index: int = -1


class PoseTracker:
    """Gives every person a ``track_id`` that stays with them across frames.

    Args:
        max_distance: Gate: the largest mean keypoint distance, as a fraction
            of the person's size, at which a person continues a track.
        max_age: Seconds (stream time) a track survives unseen before it is
            forgotten; 0.65 s keeps a person missing from 15 frames at 25 FPS.
        min_size: Smallest size in pixels used to normalise distances (for
            skeletons with one or two parts).
        predict: Predict each track's position at constant velocity; off,
            it is plain nearest-neighbour matching on the last position.
    """

    def __init__(self, *, max_distance: float = 0.5, max_age: float = 0.65,
                 min_size: float = 16.0, predict: bool = True) -> None:
        if max_distance <= 0:
            raise ValueError(f"max_distance must be positive, got {max_distance}")
        if max_age < 0:
            raise ValueError(f"max_age must be >= 0, got {max_age}")
        self.max_distance = max_distance
        self.max_age = max_age
        self.min_size = min_size
        self.predict = predict
        self._sources: dict[str, _SourceState] = {}
        self._lock = threading.Lock()

    def __call__(self, result: Result) -> Result:
        """Return ``result`` with every person carrying its track id.

        Raises:
            ValueError: The frame index is not after the previous one of the
                same source (the tracker must run in frame order).
        """
        frame = result.frame
        with self._lock:
            state = self._sources.setdefault(frame.source, _SourceState())
            if frame.index <= state.last_index:
                raise ValueError(f"{frame.source}: frame {frame.index} after frame "
                                 f"{state.last_index}; the tracker needs frames in order")
            state.last_index = frame.index
            ids = self._assign(state, frame.pts, result.people)
        people = tuple(replace(p, track_id=i) for p, i in zip(result.people, ids))
        return replace(result, people=people)

    def forget(self, source: str) -> None:
        """Drop the tracks of ``source`` (e.g. when it ended); its ids restart at 1."""
        with self._lock:
            self._sources.pop(source, None)

    def _assign(self, state: _SourceState, t: float, people: tuple[Person, ...]) -> list[int]:
        tracks = [tr for tr in state.tracks if t - tr.seen_at <= self.max_age]
        ids: list[int | None] = [None] * len(people)
        taken: set[int] = set()
        for cost, ti, pi in sorted(self._pairs(tracks, t, people)):
            if ids[pi] is None and ti not in taken and cost <= self.max_distance:
                ids[pi] = tracks[ti].id
                taken.add(ti)
                self._update(tracks[ti], people[pi], t)
        for pi, person in enumerate(people):
            if ids[pi] is None:
                track = _Track(id=next(state.ids), keypoints=person.keypoints.copy(), seen_at=t)
                tracks.append(track)
                ids[pi] = track.id
        state.tracks = tracks
        return ids

    def _pairs(self, tracks: list[_Track], t: float, people: tuple[Person, ...]):
        for ti, track in enumerate(tracks):
            predicted = track.predicted(t, self.predict)
            track_present = _present(track.keypoints)
            for pi, person in enumerate(people):
                common = track_present & _present(person.keypoints)
                if not common.any():
                    continue
                size = max(_diagonal(track.keypoints), _diagonal(person.keypoints), self.min_size)
                distance = np.linalg.norm(person.keypoints[common, :2] - predicted[common], axis=1)
                yield float(distance.mean() / size), ti, pi

    @staticmethod
    def _update(track: _Track, person: Person, t: float) -> None:
        common = _present(track.keypoints) & _present(person.keypoints)
        step = (person.keypoints[common, :2] - track.keypoints[common, :2]).mean(axis=0)
        step /= max(t - track.seen_at, 1e-3)  # pts may repeat (a still image sequence)
        track.velocity = step if track.seen == 1 else (
            _SMOOTHING * step + (1 - _SMOOTHING) * track.velocity)
        track.keypoints = person.keypoints.copy()
        track.seen_at = t
        track.seen += 1


def _present(keypoints: np.ndarray) -> np.ndarray:
    return (keypoints[:, 2] > 0) & np.isfinite(keypoints).all(axis=1)


def _diagonal(keypoints: np.ndarray) -> float:
    xy = keypoints[_present(keypoints), :2]
    if len(xy) == 0:
        return 0.0
    return float(np.linalg.norm(xy.max(axis=0) - xy.min(axis=0)))
