"""Keypoint formats: OpenPose and COCO read back against the JSON Lines of the same run."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from stages.errors import InputError, OutputError
from stages.outputs.formats import (COCO_PARTS, FORMATS, CocoWriter, OpenPoseWriter, coco_image_id,
                            coco_score, format_path, make_writers)
from stages.frames import NUM_PARTS, PART_NAMES, Frame, Person, Result
from stages.outputs.keypoint_log import read_keypoint_log

# The COCO person_keypoints category, in order.
COCO_NAMES = ("nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder",
              "l_elbow", "r_elbow", "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee",
              "r_knee", "l_ankle", "r_ankle")


def _person(seed: int, track_id: int | None = None, missing=(3, 9)) -> Person:
    rng = np.random.default_rng(seed)
    keypoints = np.zeros((NUM_PARTS, 3), np.float32)
    keypoints[:, 0] = rng.uniform(0, 640, NUM_PARTS)
    keypoints[:, 1] = rng.uniform(0, 480, NUM_PARTS)
    keypoints[:, 2] = rng.uniform(0.1, 1.0, NUM_PARTS)
    keypoints[list(missing)] = 0
    return Person(keypoints=keypoints, score=float(rng.uniform(0.2, 0.9)), track_id=track_id)


def _results(tracked: bool) -> list[Result]:
    """Six frames: 2 people, 1, nobody, 2, nobody, 1."""
    counts = [2, 1, 0, 2, 0, 1]
    results = []
    for index, count in enumerate(counts):
        frame = Frame(source="clip", index=index, pts=index / 25,
                      image=np.zeros((480, 640, 3), np.uint8))  # the keypoints' space
        people = tuple(_person(10 * index + k, track_id=(k + 1 if tracked else None))
                       for k in range(count))
        results.append(Result(frame=frame, people=people))
    return results


def _run(tmp_path, tracked: bool, number: int = 0):
    writers = make_writers(FORMATS, tmp_path, "clip", number=number)
    for result in _results(tracked):
        for writer in writers:
            writer.write(result)
    for writer in writers:
        writer.close()
    return read_keypoint_log(tmp_path / "clip.jsonl")


def test_coco_order_is_ours_less_the_neck():
    assert tuple(PART_NAMES[i] for i in COCO_PARTS) == COCO_NAMES
    assert set(range(NUM_PARTS)) - set(COCO_PARTS) == {PART_NAMES.index("neck")}


@pytest.mark.parametrize("tracked", [False, True], ids=["untracked", "tracked"])
def test_openpose_files_match_the_jsonl(tmp_path, tracked):
    records = _run(tmp_path, tracked)
    folder = tmp_path / "clip.openpose"
    names = sorted(os.listdir(folder))
    assert names == [f"clip_{i:012d}_keypoints.json" for i in range(len(records))]
    for record in records:
        doc = json.loads((folder / f"clip_{record['frame']:012d}_keypoints.json").read_text())
        assert doc["version"] == 1.3
        assert len(doc["people"]) == len(record["people"])
        for person, expected in zip(doc["people"], record["people"]):
            assert person["pose_keypoints_2d"] == [v for part in expected["keypoints"]
                                                   for v in part]
            assert len(person["pose_keypoints_2d"]) == 3 * NUM_PARTS
            assert person["person_id"] == [expected["id"] if tracked else -1]
            for key in ("face_keypoints_2d", "hand_left_keypoints_2d",
                        "hand_right_keypoints_2d", "pose_keypoints_3d", "face_keypoints_3d",
                        "hand_left_keypoints_3d", "hand_right_keypoints_3d"):
                assert person[key] == []
    assert sum(not r["people"] for r in records) == 2  # frames with nobody have a file too


@pytest.mark.parametrize("tracked", [False, True], ids=["untracked", "tracked"])
def test_coco_results_match_the_jsonl(tmp_path, tracked):
    records = _run(tmp_path, tracked, number=3)  # the run's third input
    results = json.loads((tmp_path / "clip.coco.json").read_text())
    expected = [(r["frame"], p) for r in records for p in r["people"]]
    assert len(results) == len(expected) == 6
    for got, (frame, person) in zip(results, expected):
        assert got["image_id"] == 3 * 10**9 + frame and got["category_id"] == 1
        assert got["score"] == round(person["score"] / 2, 4)  # halved: in [0, 1]
        triples = [got["keypoints"][3 * i:3 * i + 3] for i in range(17)]
        for name, triple in zip(COCO_NAMES, triples):
            assert triple == person["keypoints"][PART_NAMES.index(name)]
        assert triples[COCO_NAMES.index("r_elbow")] == triples[COCO_NAMES.index("r_knee")] \
            == [0, 0, 0]  # missing parts
        assert ("track_id" in got) == tracked
        if tracked:
            assert got["track_id"] == person["id"]


def test_jsonl_has_the_id_when_tracked(tmp_path):
    assert all("id" in p for r in _run(tmp_path, True) for p in r["people"])
    (tmp_path / "u").mkdir()
    assert not any("id" in p for r in _run(tmp_path / "u", False) for p in r["people"])


def test_coco_is_valid_json_for_frames_without_people(tmp_path):
    with CocoWriter(tmp_path / "c.coco.json") as writer:
        writer.write(_results(False)[2])
    assert json.loads((tmp_path / "c.coco.json").read_text()) == []


def test_nothing_written_leaves_previous_outputs(tmp_path):
    (tmp_path / "clip.coco.json").write_text("old")
    (tmp_path / "clip.openpose").mkdir()
    (tmp_path / "clip.openpose" / "old.json").write_text("old")
    for writer in make_writers(["coco", "openpose"], tmp_path, "clip"):
        writer.close()
    assert (tmp_path / "clip.coco.json").read_text() == "old"
    assert os.listdir(tmp_path / "clip.openpose") == ["old.json"]
    assert sorted(os.listdir(tmp_path)) == ["clip.coco.json", "clip.openpose"]


def test_openpose_folder_of_a_new_run_replaces_the_old_one(tmp_path):
    results = _results(False)
    with OpenPoseWriter(tmp_path / "clip.openpose", "clip") as writer:
        for result in results:
            writer.write(result)
    with OpenPoseWriter(tmp_path / "clip.openpose", "clip") as writer:
        writer.write(results[0])
        assert len(os.listdir(tmp_path / "clip.openpose")) == len(results)  # old until close
    assert os.listdir(tmp_path / "clip.openpose") == ["clip_000000000000_keypoints.json"]
    assert sorted(os.listdir(tmp_path)) == ["clip.openpose"]


def test_outputs_appear_only_when_closed_also_after_an_exception(tmp_path):
    results = _results(True)
    with pytest.raises(KeyboardInterrupt):
        with CocoWriter(tmp_path / "c.coco.json") as coco, \
                OpenPoseWriter(tmp_path / "o", "o") as openpose:
            for result in results[:2]:
                coco.write(result)
                openpose.write(result)
            assert sorted(os.listdir(tmp_path)) == sorted([coco.tmp.name, openpose.tmp.name])
            assert coco.tmp.name.startswith(f".c.coco.json.partial-{os.getpid()}-")
            raise KeyboardInterrupt
    assert len(json.loads((tmp_path / "c.coco.json").read_text())) == 3
    assert len(os.listdir(tmp_path / "o")) == 2
    assert sorted(os.listdir(tmp_path)) == ["c.coco.json", "o"]


def test_bad_uses(tmp_path):
    with pytest.raises(InputError, match="--format 'xml'"):
        make_writers(["jsonl", "xml"], tmp_path, "clip")
    assert os.listdir(tmp_path) == []  # names are checked before anything is created
    assert format_path("jsonl", tmp_path, "a") == tmp_path / "a.jsonl"
    writer = CocoWriter(tmp_path / "c.json")
    writer.close()
    writer.close()
    with pytest.raises(OutputError, match="after close"):
        writer.write(_results(False)[0])
    writer = OpenPoseWriter(tmp_path / "o", "o")
    writer.close()
    with pytest.raises(OutputError, match="after close"):
        writer.write(_results(False)[0])
    with pytest.raises(OutputError, match="cannot create"):
        CocoWriter(tmp_path / "missing" / "c.json")
    with pytest.raises(OutputError, match="cannot create"):
        OpenPoseWriter(tmp_path / "missing" / "o", "o")


def test_coco_ids_and_scores():
    assert coco_image_id(0, 17) == 17  # number 0 (live segments): the frame index
    assert coco_image_id(1, 0) == 10**9 and coco_image_id(12, 345) == 12_000_000_345
    for bad in ((1, -1), (1, 10**9), (-1, 0)):
        with pytest.raises(ValueError):
            coco_image_id(*bad)
    assert coco_score(1.2432) == 0.6216 and coco_score(0.3) == 0.15
    assert coco_score(2.5) == 1.0 and coco_score(0.0) == 0.0 and coco_score(-0.1) == 0.0
    scores = [0.31, 0.8, 1.2432, 1.9999]  # the order is kept
    assert sorted(scores, key=coco_score) == scores
    assert all(0 <= coco_score(s) <= 1 for s in scores)
