"""OpenPose JSON of image inputs: one flat ``<name>_keypoints.json`` per image, as OpenPose writes."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

import run_stream
from stages.jobs.batch import BatchJob
from stages.errors import OutputError
from stages.outputs.formats import OpenPoseImageWriter, OpenPoseWriter, format_path, make_writers
from stages.sources.inputs import expand_inputs
from stages.settings import JobConfig
from stages.outputs.keypoint_log import read_keypoint_log
from stages.outputs.sample import make_test_clip
from tests.stages.outputs.test_formats import _results

PEOPLE = "tests.support.fakes:OnePersonBackend"


def test_an_image_gets_one_flat_file_with_the_document_a_video_frame_gets(tmp_path):
    result = _results(True)[0]  # two people
    assert format_path("openpose", tmp_path, "a", still=True) == tmp_path / "a_keypoints.json"
    assert format_path("openpose", tmp_path, "a") == tmp_path / "a.openpose"
    [writer] = make_writers(["openpose"], tmp_path / "", "a", still=True)
    assert isinstance(writer, OpenPoseImageWriter)
    writer.write(result)
    assert not (tmp_path / "a_keypoints.json").exists()  # only when closed
    writer.close()
    with OpenPoseWriter(tmp_path / "v.openpose", "v") as video:
        video.write(result)
    assert sorted(os.listdir(tmp_path)) == ["a_keypoints.json", "v.openpose"]
    frame = tmp_path / "v.openpose" / "v_000000000000_keypoints.json"
    assert (tmp_path / "a_keypoints.json").read_bytes() == frame.read_bytes()
    document = json.loads(frame.read_text())
    assert document["version"] == 1.3 and [p["person_id"] for p in document["people"]] == [[1], [2]]


def test_an_image_writer_keeps_one_frame_and_writes_nothing_without_it(tmp_path):
    (tmp_path / "a_keypoints.json").write_text("previous")
    with OpenPoseImageWriter(tmp_path / "a_keypoints.json"):
        pass  # nothing written: the previous file stays, no partial left
    assert os.listdir(tmp_path) == ["a_keypoints.json"]
    assert (tmp_path / "a_keypoints.json").read_text() == "previous"
    writer = OpenPoseImageWriter(tmp_path / "b_keypoints.json")
    writer.write(_results(False)[2])  # nobody in it: still a file, as OpenPose writes
    with pytest.raises(OutputError, match="one frame"):
        writer.write(_results(False)[3])
    writer.close()
    assert json.loads((tmp_path / "b_keypoints.json").read_text()) == {"version": 1.3, "people": []}


@pytest.fixture
def photos(tmp_path):
    """in/a.png, in/b.jpg, in/sub/c.png (one person each, drawn by the fake backend),
    and in/sub/walk.mp4 (3 frames)."""
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for name in ("a.png", "b.jpg", "sub/c.png"):
        cv2.imwrite(str(folder / name), np.full((64, 96, 3), 90, np.uint8))
    make_test_clip(folder / "sub" / "walk.mp4", frames=3, size=(96, 64))
    return folder


def test_a_batch_of_images_writes_flat_keypoint_files_and_resumes(photos, tmp_path):
    out = tmp_path / "out"
    config = JobConfig(backend=PEOPLE, formats=("openpose", "jsonl"))
    reports = BatchJob(expand_inputs([str(photos)]), out, config).run()
    assert {r.status for r in reports.values()} == {"done"}
    assert sorted(n for n in os.listdir(out) if not n.endswith(".manifest.json")) == [
        "a.jsonl", "a.png", "a_keypoints.json", "b.jpg", "b.jsonl", "b_keypoints.json", "sub"]
    assert sorted(n for n in os.listdir(out / "sub") if not n.endswith(".manifest.json")) == [
        "c.jsonl", "c.png", "c_keypoints.json", "walk.jsonl", "walk.mp4", "walk.openpose"]
    assert len(os.listdir(out / "sub" / "walk.openpose")) == 3  # a video keeps its folder
    for stem in ("a", "b", "sub/c"):
        document = json.loads((out / f"{stem}_keypoints.json").read_text())
        [record] = read_keypoint_log(out / f"{stem}.jsonl")
        assert [p["pose_keypoints_2d"] for p in document["people"]] == [
            [v for part in p["keypoints"] for v in part] for p in record["people"]]
        assert len(document["people"]) == 1
    # the manifests vouch for the new layout: a rerun skips every input ...
    again = BatchJob(expand_inputs([str(photos)]), out, config)
    assert again.todo == 0
    # ... and one whose file went missing is done again
    (out / "sub" / "c_keypoints.json").unlink()
    again = BatchJob(expand_inputs([str(photos)]), out, config)
    assert again.todo == 1
    assert again.run()["sub/c.png"].status == "done"
    assert (out / "sub" / "c_keypoints.json").is_file()


def test_an_image_run_writes_its_keypoints_file_beside_the_annotated_image(tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "photo.png"), np.full((64, 96, 3), 90, np.uint8))
    code = run_stream.main([str(tmp_path / "photo.png"), "-o", str(tmp_path / "out"),
                            "--backend", PEOPLE, "--format", "openpose"])
    assert code == 0, capsys.readouterr().err
    assert sorted(os.listdir(tmp_path / "out")) == ["photo.png", "photo_keypoints.json"]
    document = json.loads((tmp_path / "out" / "photo_keypoints.json").read_text())
    assert len(document["people"]) == 1 and len(document["people"][0]["pose_keypoints_2d"]) == 54
