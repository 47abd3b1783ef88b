"""Person tracking: a stable id per person across the frames of a source.

``PoseTracker`` is a pipeline ``map`` step placed *after* the ordered
inference pool (it needs every source's frames in increasing index order; a
frame index that does not increase raises ``ValueError``). It returns each
Result with its people replaced by copies carrying ``track_id``.

Everything is measured in stream time (``Frame.pts``) and in body sizes, so
a file processed at any speed, a file read with ``--frame-step`` and a live
camera at 2 FPS behave alike, and near and far people alike:

* A track remembers the keypoints of its person when last seen, the pts
  then, and a velocity (pixels per second of stream time, one 2-D vector for
  the whole skeleton: limbs swing, the body moves as one).
* For each new frame every track predicts where its person is now: the last
  keypoints moved by velocity x seconds elapsed. Without the prediction two
  people who cross between two frames swap ids (each is nearest to where the
  other was); with it they do not (``tests/stages/pose/test_tracking.py``).
* The distance between a track and a person is the mean Euclidean distance
  over the parts present in both, divided by the person's size (the larger
  bounding-box diagonal of the two skeletons, at least ``min_size`` pixels).
  No common part: no match.
* The gate grows with the time since the track was last seen:
  ``max_distance + max_speed * dt`` body sizes. ``max_distance`` covers
  what changes between two frames taken at once (limbs, detection noise),
  ``max_speed`` how far a person may stray from the prediction per second
  (walking off from standing still, stopping, turning). At 25 FPS the gate
  is ``max_distance`` and a bit; at 2 FPS, with a frame missed, it is wide
  enough for a brisk walk.
* Tracks and people are paired one to one at least total cost (the
  Hungarian method, ``stages.pose._assignment``), within the gate. The cost is the
  distance plus three terms:

  - twice the change of size (``|ln|`` of the ratio of the common parts'
    extents): a person does not grow or shrink much between frames, while a
    near and a far person who pass each other differ, which tells them apart
    when both predictions are poor (at 2 FPS, a person who turns round moves
    half a body away from where they were predicted);
  - the share of parts not in both skeletons: a stray piece of skeleton (the
    network sometimes finds a head, or an arm, as a second person next to
    the whole one) does not take the track of the whole person;
  - 0.5 per second since the track was last seen: of two tracks that fit a
    person, the one that followed them in the last frame keeps them, and
    the other, a stray piece's, runs out of memory instead of taking turns.
* A matched track takes the person's keypoints and updates its velocity:
  the mean displacement of the common parts per second, smoothed over about
  0.2 s of stream time (at 25 FPS detection noise averages out; at 2 FPS
  the last step is the velocity). A person nothing matches starts a new
  track with a new id.
* A track not seen for more than ``memory`` seconds of stream time is
  forgotten; a person who comes back later gets a new id. Ids count up from
  1 per source and are never reused within a run.

Sources are tracked separately, keyed by ``Frame.source``. The defaults
come from ``bench/bench_tracking.py`` (README, "Tracking").

Resuming: ``state(source)`` is everything the tracker knows of a source as a
JSON-ready dict (floats kept exactly), and ``restore(source, state)`` puts it
back, so a run resumed from a checkpoint gives the ids an uninterrupted run
gives. A checkpoint is written after the tracker has run ahead, so the
tracker keeps, when asked (``keep_states``), its state as it was right
before each frame that starts a piece of the output (``saved_state``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from stages.pose._assignment import min_cost_pairs
from stages.frames import Person, Result
from stages.settings import DEFAULT_TRACK_MEMORY

# Weights of the cost's terms (module docstring), set on bench/bench_tracking.py's clip
_SCALE_WEIGHT = 2.0     # per unit of |ln| of the size ratio
_UNSHARED_WEIGHT = 1.0  # per share of the two skeletons' parts not in both
_STALE_WEIGHT = 0.5     # per second since the track was last seen
_VELOCITY_TIME = 0.2    # seconds of stream time the velocity is smoothed over


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
    next_id: int = 1
    last_index: int = -1
    last_pts: float | None = None

    def as_dict(self) -> dict:
        return {"next_id": self.next_id, "last_index": self.last_index,
                "last_pts": self.last_pts,
                "tracks": [{"id": t.id, "keypoints": t.keypoints.tolist(),
                            "dtype": t.keypoints.dtype.str, "seen_at": t.seen_at,
                            "velocity": t.velocity.tolist(), "seen": t.seen}
                           for t in self.tracks]}

    @classmethod
    def from_dict(cls, data: dict) -> _SourceState:
        tracks = [_Track(id=int(t["id"]), keypoints=np.array(t["keypoints"], dtype=t["dtype"]),
                         seen_at=float(t["seen_at"]), velocity=np.array(t["velocity"], np.float64),
                         seen=int(t["seen"])) for t in data["tracks"]]
        return cls(tracks=tracks, next_id=int(data["next_id"]),
                   last_index=int(data["last_index"]), last_pts=data.get("last_pts"))


DEFAULT_MEMORY = DEFAULT_TRACK_MEMORY  # seconds of stream time an unseen track is kept
DEFAULT_MAX_DISTANCE = 0.5  # body sizes, the gate between frames taken at once
DEFAULT_MAX_SPEED = 1.0     # body sizes per second the gate grows by


class PoseTracker:
    """Gives every person a ``track_id`` that stays with them across frames.

    Args:
        memory: Seconds (stream time) a track survives unseen before it is
            forgotten (``--track-memory``).
        max_distance: The gate for frames taken at the same time: the largest
            mean keypoint distance from the prediction, as a fraction of the
            person's size, at which a person continues a track.
        max_speed: How much the gate grows per second since the track was
            last seen, in body sizes per second; 0 keeps it fixed.
        min_size: Smallest size in pixels used to normalise distances (for
            skeletons with one or two parts).
        predict: Predict each track's position at constant velocity; off,
            it is plain nearest-neighbour matching on the last position.

    Raises:
        ValueError: A setting out of range.
    """

    def __init__(self, *, memory: float = DEFAULT_MEMORY,
                 max_distance: float = DEFAULT_MAX_DISTANCE,
                 max_speed: float = DEFAULT_MAX_SPEED, min_size: float = 16.0,
                 predict: bool = True) -> None:
        check_memory(memory)
        if not 0 < max_distance < math.inf:
            raise ValueError(f"max_distance must be positive, got {max_distance}")
        if not 0 <= max_speed < math.inf:
            raise ValueError(f"max_speed must be 0 or more, got {max_speed}")
        self.memory = memory
        self.max_distance = max_distance
        self.max_speed = max_speed
        self.min_size = min_size
        self.predict = predict
        self._sources: dict[str, _SourceState] = {}
        self._lock = threading.Lock()
        self._mark: Callable[[float, float], bool] | None = None
        self._saved: dict[tuple[str, int], dict] = {}

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
            if (self._mark is not None and state.last_pts is not None
                    and self._mark(state.last_pts, frame.pts)):
                self._saved[(frame.source, frame.index)] = state.as_dict()
            state.last_index, state.last_pts = frame.index, frame.pts
            ids = self._assign(state, frame.pts, result.people)
        people = tuple(replace(p, track_id=i) for p, i in zip(result.people, ids))
        return replace(result, people=people)

    def forget(self, source: str) -> None:
        """Drop the tracks of ``source`` (e.g. when it ended); its ids restart at 1."""
        with self._lock:
            self._sources.pop(source, None)
            for key in [k for k in self._saved if k[0] == source]:
                del self._saved[key]

    def state(self, source: str) -> dict | None:
        """What the tracker knows of ``source`` now, JSON-ready; None before its first frame."""
        with self._lock:
            state = self._sources.get(source)
            return None if state is None else state.as_dict()

    def restore(self, source: str, state: dict | None) -> None:
        """Continue ``source`` from ``state`` (from ``state`` or ``saved_state``); None
        starts it afresh. Its next frame must come after the one the state was taken after.

        Raises:
            ValueError: ``state`` is not such a dict.
        """
        try:
            restored = None if state is None else _SourceState.from_dict(state)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{source}: not a tracker state ({exc})") from exc
        with self._lock:
            if restored is None:
                self._sources.pop(source, None)
            else:
                self._sources[source] = restored

    def keep_states(self, before: Callable[[float, float], bool]) -> None:
        """From now on keep the state of a source right before each frame for which
        ``before(pts of its previous frame, its pts)`` is true, until ``saved_state``
        takes it (a checkpoint taken at that frame; see the module docstring)."""
        with self._lock:
            self._mark = before

    def saved_state(self, source: str, index: int) -> dict | None:
        """The state kept right before frame ``index`` of ``source`` (``keep_states``),
        removed from the tracker with any kept before it; None if none was kept."""
        with self._lock:
            state = self._saved.pop((source, index), None)
            for key in [k for k in self._saved if k[0] == source and k[1] < index]:
                del self._saved[key]
            return state

    def _assign(self, state: _SourceState, t: float, people: tuple[Person, ...]) -> list[int]:
        tracks = [tr for tr in state.tracks if t - tr.seen_at <= self.memory]
        ids: list[int | None] = [None] * len(people)
        for ti, pi in min_cost_pairs(self._costs(tracks, t, people)):
            ids[pi] = tracks[ti].id
            self._update(tracks[ti], people[pi], t)
        for pi, person in enumerate(people):
            if ids[pi] is None:
                track = _Track(id=state.next_id, keypoints=person.keypoints.copy(), seen_at=t)
                state.next_id += 1
                tracks.append(track)
                ids[pi] = track.id
        state.tracks = tracks
        return ids

    def _costs(self, tracks: list[_Track], t: float, people: tuple[Person, ...]) -> np.ndarray:
        """Track x person costs (module docstring); ``inf`` outside the gate."""
        costs = np.full((len(tracks), len(people)), np.inf)
        present = [_present(p.keypoints) for p in people]
        sizes = [_diagonal(p.keypoints) for p in people]
        for ti, track in enumerate(tracks):
            predicted = track.predicted(t, self.predict)
            track_present, track_size = _present(track.keypoints), _diagonal(track.keypoints)
            dt = t - track.seen_at
            gate = self.max_distance + self.max_speed * dt
            for pi, person in enumerate(people):
                common = track_present & present[pi]
                if not common.any():
                    continue
                size = max(track_size, sizes[pi], self.min_size)
                xy = person.keypoints[common, :2]
                distance = float(np.linalg.norm(xy - predicted[common], axis=1).mean() / size)
                if distance <= gate:
                    shared = common.sum() / (track_present | present[pi]).sum()
                    costs[ti, pi] = (distance + self._scale_change(predicted[common], xy)
                                     + _UNSHARED_WEIGHT * (1 - shared) + _STALE_WEIGHT * dt)
        return costs

    def _scale_change(self, before: np.ndarray, after: np.ndarray) -> float:
        """The cost of a change of size between the same parts of two skeletons."""
        a = max(_extent(before), self.min_size)
        b = max(_extent(after), self.min_size)
        return _SCALE_WEIGHT * abs(math.log(a / b))

    @staticmethod
    def _update(track: _Track, person: Person, t: float) -> None:
        common = _present(track.keypoints) & _present(person.keypoints)
        dt = max(t - track.seen_at, 1e-3)  # pts may repeat (a still image sequence)
        step = (person.keypoints[common, :2] - track.keypoints[common, :2]).mean(axis=0) / dt
        # the newest displacement weighs more the longer it took: at 25 FPS
        # detection noise is smoothed out, at 2 FPS the velocity is the last step
        weight = 1.0 if track.seen == 1 else 1.0 - math.exp(-dt / _VELOCITY_TIME)
        track.velocity = weight * step + (1 - weight) * track.velocity
        track.keypoints = person.keypoints.copy()
        track.seen_at = t
        track.seen += 1


def check_memory(seconds: float) -> None:
    """Raise ``ValueError`` unless ``seconds`` is a usable track memory (finite, > 0)."""
    if not 0 < seconds < math.inf:  # also false for nan
        raise ValueError(f"--track-memory {seconds}: must be a finite number of seconds above 0")


def _present(keypoints: np.ndarray) -> np.ndarray:
    return (keypoints[:, 2] > 0) & np.isfinite(keypoints).all(axis=1)


def _diagonal(keypoints: np.ndarray) -> float:
    return _extent(keypoints[_present(keypoints), :2])


def _extent(xy: np.ndarray) -> float:
    """The bounding-box diagonal of points (N x 2); 0 for none."""
    if len(xy) == 0:
        return 0.0
    return float(np.linalg.norm(xy.max(axis=0) - xy.min(axis=0)))
