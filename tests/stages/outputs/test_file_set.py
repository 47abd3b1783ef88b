"""FileOutputs: every format of one run, the input's audio in the video, safe names."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

from stages.sources.video import ImageFileSource, VideoFileSource
from stages.errors import InputError
from stages.outputs.formats import FORMATS
from stages.frames import NUM_PARTS, Person, Result
from stages.outputs.keypoint_log import read_keypoint_log
from stages.outputs.file_set import FileOutputs, output_paths
from stages.pose.draw import Renderer
from stages.pose.tracking import PoseTracker
from tests.stages.outputs.test_video import audio_packets, make_clip_with_audio


def _people(index: int) -> tuple[Person, ...]:
    """Two people walking apart, and nobody on every fifth frame."""
    if index % 5 == 4:
        return ()
    people = []
    for x in (10 - index, 40 + index):
        keypoints = np.zeros((NUM_PARTS, 3), np.float32)
        keypoints[:14, 0] = x + np.arange(14) % 3
        keypoints[:14, 1] = 5 + 3 * np.arange(14)
        keypoints[:14, 2] = 0.8
        people.append(Person(keypoints=keypoints, score=0.7))
    return tuple(people)


def _run(source, outputs: FileOutputs) -> int:
    tracker, renderer = PoseTracker(), Renderer()
    count = 0
    with outputs:
        for frame in source:
            outputs.write(renderer(tracker(Result(frame=frame, people=_people(frame.index)))))
            count += 1
    return count


def test_every_format_and_the_audio_of_one_run(tmp_path):
    clip = make_clip_with_audio(tmp_path / "walk.mp4")
    outdir = tmp_path / "out"
    with VideoFileSource(clip) as source:
        outputs = FileOutputs(outdir, clip, source.info, formats=FORMATS)
        frames = _run(source, outputs)
    assert outputs.paths == (outdir / "walk.mp4", outdir / "walk.jsonl",
                             outdir / "walk.openpose", outdir / "walk.coco.json",
                             outdir / "walk.csv")
    assert sorted(os.listdir(outdir)) == ["walk.coco.json", "walk.csv", "walk.jsonl",
                                          "walk.mp4", "walk.openpose"]
    assert audio_packets(outdir / "walk.mp4") == audio_packets(clip)
    with VideoFileSource(outdir / "walk.mp4") as out, VideoFileSource(clip) as inp:
        assert [f.pts for f in out] == [f.pts for f in inp]
    records = read_keypoint_log(outdir / "walk.jsonl")
    assert [r["frame"] for r in records] == list(range(frames)) and frames == 25
    assert {p["id"] for r in records for p in r["people"]} == {1, 2}
    assert len(os.listdir(outdir / "walk.openpose")) == frames
    coco = json.loads((outdir / "walk.coco.json").read_text())
    assert len(coco) == sum(len(r["people"]) for r in records)
    assert [c["track_id"] for c in coco] == [p["id"] for r in records for p in r["people"]]


def test_audio_can_be_left_out(tmp_path):
    clip = make_clip_with_audio(tmp_path / "walk.mp4")
    with VideoFileSource(clip) as source:
        _run(source, FileOutputs(tmp_path / "out", clip, source.info, audio=False))
    assert audio_packets(tmp_path / "out" / "walk.mp4") == []
    assert len(audio_packets(clip)[0]) > 0


def test_default_outputs_are_the_video_and_the_jsonl(tmp_path, tiny_clip):
    clip = tiny_clip("clip.mp4", frames=4)
    with VideoFileSource(clip) as source:
        _run(source, FileOutputs(tmp_path / "out", clip, source.info))
    assert sorted(os.listdir(tmp_path / "out")) == ["clip.jsonl", "clip.mp4"]


def test_a_still_image_gets_an_annotated_image_and_its_formats(tmp_path):
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.full((60, 80, 3), 200, np.uint8))
    with ImageFileSource(photo) as source:
        _run(source, FileOutputs(tmp_path / "out", photo, source.info, still=True,
                                 formats=["coco", "openpose"]))
    # OpenPose writes an image's keypoints as one flat <name>_keypoints.json
    assert sorted(os.listdir(tmp_path / "out")) == ["photo.coco.json", "photo.png",
                                                    "photo_keypoints.json"]


def test_outputs_that_would_overwrite_the_input_are_refused(tmp_path):
    clip = tmp_path / "clip.jsonl"
    clip.write_text("x")
    with pytest.raises(InputError, match="would overwrite the input"):
        output_paths(tmp_path, clip, still=False)
    with pytest.raises(InputError, match="--format"):
        output_paths(tmp_path, tmp_path / "a.mp4", still=False, formats=["xml"])
