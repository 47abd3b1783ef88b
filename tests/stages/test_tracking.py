"""PoseTracker: ids follow people through a crossing, expire after the memory, per source."""

from __future__ import annotations

import numpy as np
import pytest

from stages.frames import NUM_PARTS, Frame, Person, Result
from stages.tracking import PoseTracker

# A standing skeleton, about 60 x 160 px, relative to its neck.
_SHAPE = np.array([
    (0, -20), (0, 0), (-20, 0), (-28, 30), (-30, 60), (20, 0), (28, 30), (30, 60),
    (-12, 60), (-14, 100), (-15, 140), (12, 60), (14, 100), (15, 140),
    (-5, -25), (5, -25), (-10, -22), (10, -22)], np.float32)
_IMAGE = np.zeros((4, 4, 3), np.uint8)


def _person(x: float, y: float, missing=()) -> Person:
    keypoints = np.ones((NUM_PARTS, 3), np.float32)
    keypoints[:, :2] = _SHAPE + (x, y)
    keypoints[list(missing)] = 0
    return Person(keypoints=keypoints, score=1.0)


def _result(index: int, people, source: str = "cam") -> Result:
    return Result(frame=Frame(source=source, index=index, pts=index / 25, image=_IMAGE),
                  people=tuple(people))


def _crossing(frames: int = 41):
    """A walks right, B walks left, 8 px a frame each, 6 px apart vertically.

    At frame 20 A is at x=260 and B at 268; at frame 21 A is at 268 and B at
    260: they cross between two frames, each landing where the other was.
    Detections come in a shuffled order, so list position says nothing.
    """
    rng = np.random.default_rng(1)
    for i in range(frames):
        a, b = _person(100 + 8 * i, 100), _person(428 - 8 * i, 106)
        flip = bool(rng.integers(2))
        yield i, ((b, a) if flip else (a, b)), flip


def _ids_by_person(tracker, frames):
    ids = {"a": [], "b": []}
    for i, people, flip in frames:
        out = tracker(_result(i, people))
        first, second = (p.track_id for p in out.people)
        a_id, b_id = (second, first) if flip else (first, second)
        ids["a"].append(a_id)
        ids["b"].append(b_id)
    return ids


def test_ids_stay_with_their_person_through_a_crossing():
    ids = _ids_by_person(PoseTracker(), _crossing())
    assert set(ids["a"]) == {1} and set(ids["b"]) == {2}


def test_without_prediction_the_crossing_swaps_ids():
    # Why the tracker predicts at constant velocity: nearest to where each
    # person was is the other person.
    ids = _ids_by_person(PoseTracker(predict=False), _crossing())
    assert ids["a"][20] == 1 and ids["a"][21] == 2


def test_people_are_copies_with_ids_and_the_rest_unchanged():
    people = (_person(100, 100), _person(400, 100))
    out = PoseTracker()(_result(0, people))
    assert [p.track_id for p in out.people] == [1, 2]
    assert all(p.track_id is None for p in people)
    for before, after in zip(people, out.people):
        assert after.keypoints is before.keypoints and after.score == before.score
    assert out.frame is not None and out.frame.index == 0


def _leave_and_return(absent: int, max_age: float = 0.65) -> list[int]:
    """A stays in place; B walks slowly, is missing for ``absent`` frames, then back."""
    tracker = PoseTracker(max_age=max_age)
    b_ids = []
    for i in range(10 + absent + 5):
        a = _person(100, 100)
        b = _person(400 + 2 * i, 100)
        gone = 10 <= i < 10 + absent
        out = tracker(_result(i, [a] if gone else [a, b]))
        assert out.people[0].track_id == 1
        if not gone:
            b_ids.append(out.people[1].track_id)
    return b_ids


def test_a_person_back_within_the_memory_keeps_the_id():
    assert set(_leave_and_return(absent=15)) == {2}


def test_a_person_back_after_the_memory_gets_a_new_id():
    ids = _leave_and_return(absent=16)
    assert ids[:10] == [2] * 10 and ids[10:] == [3] * 5


def test_ids_are_never_reused():
    tracker = PoseTracker(max_age=0)
    seen = []
    for i in range(6):  # a new person far away every other frame; old ones expire
        people = [_person(100 + 300 * (i % 2), 100)] if i % 2 == 0 else []
        seen += [p.track_id for p in tracker(_result(i, people)).people]
    assert seen == [1, 2, 3]


def test_new_people_get_new_ids_and_far_jumps_are_new_people():
    tracker = PoseTracker()
    assert [p.track_id for p in tracker(_result(0, [_person(100, 100)])).people] == [1]
    out = tracker(_result(1, [_person(104, 100), _person(900, 100)]))
    assert [p.track_id for p in out.people] == [1, 2]
    out = tracker(_result(2, [_person(600, 500)]))  # nobody known is near
    assert [p.track_id for p in out.people] == [3]


def test_partial_skeletons_match_on_the_parts_they_share():
    tracker = PoseTracker()
    tracker(_result(0, [_person(100, 100, missing=range(8, 18))]))  # upper body only
    out = tracker(_result(1, [_person(103, 100, missing=range(0, 8))]))  # then legs + head
    assert out.people[0].track_id == 2  # nothing in common with the track: a new person
    out = tracker(_result(2, [_person(106, 100)]))
    assert out.people[0].track_id == 2  # 3 px from track 2's parts, 6 px from track 1's


def test_sources_are_tracked_separately():
    tracker = PoseTracker()
    a = tracker(_result(0, [_person(100, 100)], source="cam1"))
    b = tracker(_result(0, [_person(100, 100)], source="cam2"))
    c = tracker(_result(1, [_person(102, 100)], source="cam1"))
    assert [r.people[0].track_id for r in (a, b, c)] == [1, 1, 1]
    tracker.forget("cam1")
    assert tracker(_result(0, [_person(900, 100)], source="cam1")).people[0].track_id == 1


def test_frames_out_of_order_are_refused():
    tracker = PoseTracker()
    tracker(_result(5, []))
    with pytest.raises(ValueError, match="in order"):
        tracker(_result(5, []))
    tracker(_result(7, []))  # gaps (dropped live frames) are fine


def test_bad_settings():
    with pytest.raises(ValueError):
        PoseTracker(max_distance=0)
    with pytest.raises(ValueError):
        PoseTracker(max_age=-1)
