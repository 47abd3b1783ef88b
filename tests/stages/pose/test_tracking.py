"""PoseTracker: ids follow people through a crossing, expire after the memory, per source."""

from __future__ import annotations

import numpy as np
import pytest

from stages.frames import NUM_PARTS, Frame, Person, Result
from stages.pose.tracking import PoseTracker

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


def _leave_and_return(absent: int, memory: float = 0.65) -> list[int]:
    """A stays in place; B walks slowly, is missing for ``absent`` frames, then back."""
    tracker = PoseTracker(memory=memory)
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
    tracker = PoseTracker(memory=0.01)
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
    for memory in (-1, 0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="--track-memory"):
            PoseTracker(memory=memory)
    with pytest.raises(ValueError):
        PoseTracker(max_speed=-1)


# -- booth frame rates: time in pts, distances in body sizes (issue 15) -----------------------------

_HEIGHT_PX = 165  # of _SHAPE; a 1.7 m person: 97 px a metre
_WALK = 1.4 * 97  # px per second: 1.4 m/s, an ordinary walk


def _timed(index: int, pts: float, people, source: str = "cam") -> Result:
    return Result(frame=Frame(source=source, index=index, pts=pts, image=_IMAGE),
                  people=tuple(people))


def _scaled(x: float, y: float, scale: float) -> Person:
    keypoints = np.ones((NUM_PARTS, 3), np.float32)
    keypoints[:, :2] = _SHAPE * scale + (x, y)
    return Person(keypoints=keypoints, score=1.0)


def _jittered(person: Person, rng, px: float = 6.0) -> Person:
    """Limbs that swing and a detector that wobbles by up to ``px``."""
    keypoints = person.keypoints.copy()
    keypoints[:, :2] += rng.uniform(-px, px, (NUM_PARTS, 2))
    return Person(keypoints=keypoints, score=1.0)


def _walk_at_2_fps(tracker: PoseTracker) -> list[int]:
    """Walks right for 3 s, stands 1 s, walks back; 2 FPS, the detector misses t = 1.5 s."""
    rng, ids = np.random.default_rng(3), []
    for i in range(16):
        t = i / 2
        x = 100 + _WALK * min(t, 3.0) - _WALK * max(0.0, t - 4.0)
        if t == 1.5:
            continue
        out = tracker(_timed(i, t, [_jittered(_person(x, 100), rng)]))
        ids.append(out.people[0].track_id)
    return ids


def test_a_walker_at_2_fps_keeps_the_id_through_a_missed_frame_a_stop_and_a_turn():
    assert set(_walk_at_2_fps(PoseTracker())) == {1}


def test_the_old_fixed_memory_and_gate_lost_the_walker():
    # 0.65 s of memory and a gate that ignores the time between frames: at
    # 2 FPS one missed detection is a new id (issue 15: 55 ids for 3 people).
    ids = _walk_at_2_fps(PoseTracker(memory=0.65, max_speed=0))
    assert len(set(ids)) > 1


def test_two_people_crossing_at_2_fps_keep_their_ids_when_one_is_hidden():
    """A and B walk towards each other at 1.4 m/s, seen at 2 FPS; the nearer
    hides the other for the two frames around the crossing."""
    rng = np.random.default_rng(5)
    tracker, seen = PoseTracker(), {"a": set(), "b": set()}
    for i in range(14):
        t = i / 2
        a = _jittered(_person(100 + _WALK * t, 100), rng)
        b = _jittered(_person(100 + _WALK * 6.5 - _WALK * t, 112), rng)
        hidden = i in (6, 7)  # they cross at t = 3.25 s
        people = [b] if hidden else [b, a] if i % 2 else [a, b]
        out = tracker(_timed(i, t, people))
        ids = {("a" if p.keypoints[1, 1] < 106 else "b"): p.track_id for p in out.people}
        for name, track_id in ids.items():
            seen[name].add(track_id)
    assert seen == {"a": {1}, "b": {2}}


def test_gates_scale_with_the_person_not_the_picture():
    # At 25 FPS a far person (40 px tall) and a near one (400 px) both step
    # 60 px: a third of the near one's size, but 1.5 times the far one's, who
    # cannot have walked that far in 40 ms.
    tracker = PoseTracker()
    far, near = (0.25, 100), (2.4, 800)
    first = tracker(_timed(0, 0.0, [_scaled(100, 100, far[0]), _scaled(800, 100, near[0])]))
    assert [p.track_id for p in first.people] == [1, 2]
    out = tracker(_timed(1, 0.04, [_scaled(160, 100, far[0]), _scaled(860, 100, near[0])]))
    assert [p.track_id for p in out.people] == [3, 2]
    # at 2 FPS both walk 0.4 of their size between frames and keep their ids
    tracker = PoseTracker()
    ids = []
    for i in range(8):
        people = [_scaled(100 + 0.4 * 41 * i, 100, far[0]), _scaled(600 + 0.4 * 396 * i, 100, near[0])]
        ids.append([p.track_id for p in tracker(_timed(i, i / 2, people)).people])
    assert ids == [[1, 2]] * 8


def _near_and_far_pass(tracker: PoseTracker) -> list[int]:
    """A far person (100 px tall) and a near one (200 px) walk 1 height per
    second towards each other; seen twice, 0.5 s apart, so there is no
    velocity yet: each is nearer to where the other was."""
    tracker(_timed(0, 0.0, [_scaled(100, 100, 0.6), _scaled(220, 100, 1.2)]))
    out = tracker(_timed(1, 0.5, [_scaled(150, 100, 0.6), _scaled(120, 100, 1.2)]))
    return [p.track_id for p in out.people]


def test_a_near_and_a_far_person_passing_are_told_apart_by_size(monkeypatch):
    from stages.pose import tracking
    assert _near_and_far_pass(PoseTracker()) == [1, 2]
    monkeypatch.setattr(tracking, "_SCALE_WEIGHT", 0.0)  # distance alone swaps them
    assert _near_and_far_pass(PoseTracker()) == [2, 1]


def _piece_beside_whole(tracker: PoseTracker) -> list[int]:
    """A whole person, then the whole person 4 px on and, where their head was, a
    stray head-only skeleton (the network finds such pieces)."""
    tracker(_timed(0, 0.0, [_person(100, 100)]))
    out = tracker(_timed(1, 0.04, [_person(104, 100), _person(100, 100, missing=range(1, 14))]))
    return [p.track_id for p in out.people]


def test_a_stray_piece_does_not_take_the_whole_persons_track(monkeypatch):
    from stages.pose import tracking
    assert _piece_beside_whole(PoseTracker()) == [1, 2]
    monkeypatch.setattr(tracking, "_UNSHARED_WEIGHT", 0.0)  # the head fits better on its own
    assert _piece_beside_whole(PoseTracker()) == [2, 1]


def _fresh_against_stale(tracker: PoseTracker) -> int:
    """Track 1 follows a standing person to t = 0.4 s; track 2 (a duplicate skeleton's,
    once) was last seen at t = 0.2 s 4 px to the right, where the person is at 0.44 s."""
    tracker(_timed(0, 0.0, [_person(100, 100)]))
    tracker(_timed(1, 0.2, [_person(100, 100), _person(104, 100)]))
    tracker(_timed(2, 0.4, [_person(100, 100)]))
    return tracker(_timed(3, 0.44, [_person(104, 100)])).people[0].track_id


def test_the_track_seen_last_keeps_its_person(monkeypatch):
    from stages.pose import tracking
    assert _fresh_against_stale(PoseTracker()) == 1
    monkeypatch.setattr(tracking, "_STALE_WEIGHT", 0.0)  # ids would take turns
    assert _fresh_against_stale(PoseTracker()) == 2


def _absent_for(frames: int, fps: float, memory: float) -> list[int]:
    """A person seen for 5 frames, missing for ``frames`` frames, seen again; frame numbers
    step by 3 (as with --frame-step 3): only the pts count."""
    tracker, ids = PoseTracker(memory=memory), []
    for n in range(5 + frames + 2):
        if 5 <= n < 5 + frames:
            continue
        out = tracker(_timed(3 * n, n / fps, [_person(100 + n, 100)]))
        ids.append(out.people[0].track_id)
    return ids


def test_a_track_expires_after_its_memory_in_stream_time_not_frames():
    assert set(_absent_for(10, fps=25, memory=1.0)) == {1}    # 0.44 s unseen
    assert _absent_for(10, fps=5, memory=1.0)[-1] == 2         # 2.2 s unseen: forgotten
    assert set(_absent_for(10, fps=5, memory=2.5)) == {1}     # kept with a longer memory
    assert set(_absent_for(1, fps=0.5, memory=4.5)) == {1}    # 4 s unseen at 0.5 FPS
    assert _absent_for(1, fps=0.5, memory=3.5)[-1] == 2


def test_pairs_are_chosen_for_the_least_total_distance():
    # Nearest first would give track 1 (at x=100) the person at 115 (15 px),
    # leaving the person at 55 to start a new track (track 2, at 180, is 125
    # px from it: out of the gate). One to one at least total distance keeps
    # both: 45 + 65 px.
    tracker = PoseTracker(max_distance=0.5, max_speed=0)
    tracker(_timed(0, 0.0, [_person(100, 100), _person(180, 100)]))
    out = tracker(_timed(1, 0.0, [_person(55, 100), _person(115, 100)]))
    assert [p.track_id for p in out.people] == [1, 2]


# -- --track-memory from the command line to the tracker ---------------------------------------------

@pytest.fixture
def made_trackers(monkeypatch) -> list[PoseTracker]:
    """Every tracker the pipeline builder makes, in order."""
    from stages.jobs import builder
    made = []

    class Recorded(PoseTracker):
        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            made.append(self)

    monkeypatch.setattr(builder, "PoseTracker", Recorded)
    return made


def test_track_memory_reaches_the_tracker_of_a_file_run(tmp_path, made_trackers):
    import run_stream
    from stages.outputs.keypoint_log import read_keypoint_log
    from stages.outputs.sample import make_test_clip

    clip = make_test_clip(tmp_path / "a.mp4", frames=3, size=(432, 368))
    code = run_stream.main([str(clip), "-o", str(tmp_path / "out"), "--no-video",
                            "--backend", "tests.support.fakes:OnePersonBackend", "--track-memory", "3.5"])
    assert code == 0
    assert [t.memory for t in made_trackers] == [3.5]
    records = read_keypoint_log(tmp_path / "out" / "a.jsonl")
    assert [p["id"] for r in records for p in r["people"]] == [1, 1, 1]


def test_track_memory_reaches_the_tracker_of_a_live_run(tmp_path, made_trackers):
    import run_stream

    source = "lavfi:testsrc2=size=64x48:rate=25:duration=0.4"  # ends; the source gives up
    run_stream.main([source, "-o", str(tmp_path / "out"), "--backend", "tests.support.fakes:ZeroBackend",
                     "--resolution", "64x48", "--max-retries", "0", "--track-memory", "0.25"])
    assert [t.memory for t in made_trackers] == [0.25]


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_a_bad_track_memory_is_one_line(tmp_path, capsys, value):
    import run_stream

    code = run_stream.main(["-o", str(tmp_path / "out"), "--backend", "tests.support.fakes:ZeroBackend",
                            "--track-memory", value])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "--track-memory" in err[0], err
    assert not (tmp_path / "out").exists()


def test_the_command_line_default_is_the_trackers():
    import run_stream
    from stages.settings import JobConfig
    from stages.pose.tracking import DEFAULT_MEMORY

    assert run_stream.build_parser().get_default("track_memory") == DEFAULT_MEMORY
    assert JobConfig().track_memory == DEFAULT_MEMORY


def _scene(frames: int = 60):
    """Two walkers who leave and come back (new ids), with noise: results by frame."""
    rng = np.random.default_rng(7)
    for i in range(frames):
        people = [_person(100 + 3.7 * i + rng.normal(), 100 + rng.normal())]
        if i % 17 > 4:  # B is away for 5 frames out of 17: a new id each time
            people.append(_person(400 - 2.3 * i + rng.normal(), 120))
        yield _result(i, people)


def test_a_restored_state_gives_the_ids_and_velocities_of_an_unbroken_run():
    import json

    unbroken = PoseTracker(memory=0.1)
    whole = [tuple(p.track_id for p in unbroken(r).people) for r in _scene()]
    assert max(max(ids) for ids in whole) > 4  # B came back under new ids
    first = PoseTracker(memory=0.1)
    first.keep_states(lambda before, now: int(now * 25) // 20 > int(before * 25) // 20)
    results = list(_scene())
    for result in results[:27]:  # ran ahead of the checkpoint at frame 20
        first(result)
    state = json.loads(json.dumps(first.saved_state("cam", 20)))  # as a checkpoint stores it
    assert first.saved_state("cam", 20) is None  # taken once
    resumed = PoseTracker(memory=0.1)
    resumed.restore("cam", state)
    tail = [tuple(p.track_id for p in resumed(r).people) for r in results[20:]]
    assert tail == whole[20:]
    assert resumed.state("cam") == unbroken.state("cam")  # velocities too, to the last bit
    with pytest.raises(ValueError, match="frame 5 after frame 59"):
        resumed(results[5])  # the restored state knows where it was


def test_restore_refuses_what_is_not_a_state_and_none_starts_afresh():
    tracker = PoseTracker()
    with pytest.raises(ValueError, match="not a tracker state"):
        tracker.restore("cam", {"tracks": []})
    tracker(_result(0, [_person(100, 100)]))
    tracker.restore("cam", None)
    assert tracker.state("cam") is None
    assert [p.track_id for p in tracker(_result(0, [_person(100, 100)])).people] == [1]
