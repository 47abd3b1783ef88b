"""Keypoints only (--no-video, issue 12 item 2): no annotated file, nothing encoded,
the same keypoint files, and the set, its commit and resume work without the video."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

import run_stream
import stages.outputs.file_set
from stages.jobs.batch import BatchJob
from stages.sources.video import ImageFileSource, VideoFileSource
from stages.errors import InputError
from stages.outputs.formats import FORMATS as ALL_FORMATS
from stages.frames import Result
from stages.sources.inputs import expand_inputs
from stages.jobs.file_job import FileJob
from stages.settings import JobConfig
from stages.outputs.manifest import output_settings, settings_serve
from stages.outputs.file_set import FileOutputs
from stages.outputs.sample import make_test_clip
from tests.stages.outputs.test_file_set import _run
from tests.stages.outputs.test_video import make_clip_with_audio
from tests.support.tables import RUN_TABLES

FORMATS = ("jsonl", "openpose", "coco")
ONE_PERSON = dict(backend="tests.support.fakes:OnePersonBackend", resolution=(432, 368), workers=1)
ZERO = dict(backend="tests.support.fakes:ZeroBackend", resolution=(64, 48), workers=2)


def _tree_bytes(folder) -> dict[str, bytes]:
    """Every file under ``folder`` (relative name -> bytes)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _refuse_encoding(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("encoded although there is no video")

    monkeypatch.setattr(stages.outputs.file_set, "VideoWriter", refuse)
    monkeypatch.setattr(stages.outputs.file_set, "stage_image", refuse)


@pytest.fixture
def no_encoding(monkeypatch):
    """Fail the test if anything would encode a video or an image."""
    _refuse_encoding(monkeypatch)


# -- FileOutputs -----------------------------------------------------------------

def test_without_video_only_the_keypoint_files_are_written(tmp_path, no_encoding):
    clip = make_clip_with_audio(tmp_path / "walk.mp4")
    out = tmp_path / "out"
    with VideoFileSource(clip) as source:
        outputs = FileOutputs(out, clip, source.info, formats=FORMATS, video=False)
        frames = _run(source, outputs)
    assert frames == 25
    assert outputs.paths == (out / "walk.jsonl", out / "walk.openpose", out / "walk.coco.json")
    assert outputs.written == outputs.paths
    assert sorted(os.listdir(out)) == ["walk.coco.json", "walk.jsonl", "walk.openpose"]


def test_the_keypoint_files_are_those_of_a_run_with_video(tmp_path):
    clip = make_clip_with_audio(tmp_path / "walk.mp4")
    for video in (True, False):
        with VideoFileSource(clip) as source:
            _run(source, FileOutputs(tmp_path / str(video), clip, source.info, formats=FORMATS,
                                     video=video))
    with_video, without = _tree_bytes(tmp_path / "True"), _tree_bytes(tmp_path / "False")
    assert with_video.pop("walk.mp4")
    assert without == with_video


def test_an_image_without_video_gets_no_annotated_image(tmp_path, no_encoding):
    # written into the image's own folder: only the annotated image would overwrite it
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.full((60, 80, 3), 200, np.uint8))
    before = photo.read_bytes()
    with ImageFileSource(photo) as source:
        _run(source, FileOutputs(tmp_path, photo, source.info, still=True,
                                 formats=["jsonl", "openpose"], video=False))
    assert sorted(os.listdir(tmp_path)) == ["photo.jsonl", "photo.png", "photo_keypoints.json"]
    assert photo.read_bytes() == before
    with pytest.raises(InputError, match="would overwrite the input"):
        FileOutputs(tmp_path, photo, source.info, still=True, video=True)


def test_no_video_and_no_format_is_refused(tmp_path, tiny_clip):
    clip = tiny_clip(frames=2)
    with VideoFileSource(clip) as source:
        with pytest.raises(InputError, match="--no-video with no --format"):
            FileOutputs(tmp_path / "out", clip, source.info, formats=(), video=False)


def test_an_interrupted_run_without_video_keeps_the_previous_set(tmp_path, tiny_clip):
    clip = tiny_clip(frames=6)
    out = tmp_path / "out"
    with VideoFileSource(clip) as source:
        _run(source, FileOutputs(out, clip, source.info, formats=["jsonl", "coco"]))
    previous = _tree_bytes(out)
    with VideoFileSource(clip) as source:
        outputs = FileOutputs(out, clip, source.info, formats=["jsonl", "coco"], video=False)
        with outputs:
            for frame in source:
                outputs.write(Result(frame=frame, people=()))
                break
            outputs.close("interrupted")
    assert outputs.kept_aside
    assert outputs.written == (out / "clip.partial.jsonl", out / "clip.coco.partial.json")
    kept = _tree_bytes(out)
    assert {k: kept[k] for k in previous} == previous
    assert sorted(set(kept) - set(previous)) == ["clip.coco.partial.json", "clip.partial.jsonl"]


def test_a_complete_run_without_video_replaces_the_keypoints_and_leaves_an_old_video(
        tmp_path, tiny_clip):
    clip = tiny_clip(frames=6)
    out = tmp_path / "out"
    with VideoFileSource(clip) as source:
        _run(source, FileOutputs(out, clip, source.info))
    video = (out / "clip.mp4").read_bytes()
    (out / "clip.manifest.json").write_text("{}")  # vouches for the old set: goes first
    with VideoFileSource(clip) as source:
        outputs = FileOutputs(out, clip, source.info, video=False)
        with outputs:
            for frame in source:
                outputs.write(Result(frame=frame, people=()))
            outputs.complete()
    assert outputs.written == (out / "clip.jsonl",)
    assert sorted(os.listdir(out)) == ["clip.jsonl", "clip.mp4"]
    assert (out / "clip.mp4").read_bytes() == video


# -- manifest settings -----------------------------------------------------------

def test_the_manifest_settings_say_whether_the_video_was_written():
    with_video = output_settings(JobConfig(**ZERO))
    without = output_settings(JobConfig(**ZERO, video=False))
    assert with_video["video"] is True and without["video"] is False
    assert "preset" not in without and "audio" not in without  # they shape only the video
    assert output_settings(JobConfig(**ZERO, video=False, preset="ultrafast", audio=False)) \
        == without
    assert settings_serve(with_video, with_video) and settings_serve(without, without)
    assert settings_serve(with_video, without)  # the same keypoints, and a video besides
    assert not settings_serve(without, with_video)  # the video is missing
    other = output_settings(JobConfig(**ZERO, video=False, track=False))
    assert not settings_serve(with_video, other) and not settings_serve(without, other)
    # manifests from before "video" was recorded are of runs with the video
    old = {k: v for k, v in with_video.items() if k != "video"}
    assert settings_serve(old, with_video) and settings_serve(old, without)
    assert not settings_serve(None, without)


# -- whole runs (fake backend) -----------------------------------------------------

def test_a_file_run_without_video_writes_the_same_keypoint_files(tmp_path, monkeypatch):
    clip = make_test_clip(tmp_path / "clip.mp4", frames=8, size=(160, 120))
    formats = ALL_FORMATS  # jsonl, openpose, coco and those added since
    stats = {}
    for video in (False, True):
        if video:
            monkeypatch.undo()
        else:
            _refuse_encoding(monkeypatch)
        config = JobConfig(**ONE_PERSON, formats=formats, video=video)
        summary = FileJob(clip, tmp_path / str(video), config).run()
        assert summary.frames_written == 8 and not summary.interrupted
        stats[video] = {s.name for s in summary.statistics.stages}
    with_video, without = _tree_bytes(tmp_path / "True"), _tree_bytes(tmp_path / "False")
    assert with_video.pop("clip.mp4")
    assert set(without) == set(with_video) and without == with_video
    assert any(b'"people":[{' in data for data in without.values())  # somebody was found
    assert "render" in stats[True] and "render" not in stats[False]


def test_a_batch_without_video_resumes_and_a_video_run_redoes_it(tmp_path):
    data = tmp_path / "data"
    (data / "b").mkdir(parents=True)
    make_test_clip(data / "a.mp4", frames=6)
    make_test_clip(data / "b" / "c.mov", frames=4)
    image = data / "b" / "photo.png"
    cv2.imwrite(str(image), np.full((48, 64, 3), 90, np.uint8))
    out = tmp_path / "out"
    items = expand_inputs([str(data)])
    no_video = JobConfig(**ZERO, video=False, formats=("jsonl", "coco"))
    reports = BatchJob(items, out, no_video).run()
    assert {r.status for r in reports.values()} == {"done"}
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "a.coco.json", "a.jsonl", "a.manifest.json", "b/c.coco.json", "b/c.jsonl",
        "b/c.manifest.json", "b/photo.coco.json", "b/photo.jsonl", "b/photo.manifest.json"]
    assert BatchJob(items, out, no_video).todo == 0
    assert BatchJob(items, out, JobConfig(**ZERO, video=False, preset="slow",
                                          formats=("jsonl", "coco"))).todo == 0
    with_video = JobConfig(**ZERO, formats=("jsonl", "coco"))
    assert BatchJob(items, out, with_video).todo == 3  # the videos are missing
    BatchJob(items, out, with_video).run()
    assert (out / "a.mp4").is_file() and (out / "b" / "photo.png").is_file()
    assert BatchJob(items, out, no_video).todo == 0  # a set with the video serves too


def test_the_command_line_without_video(tmp_path, capsys):
    clip = make_test_clip(tmp_path / "clip.mp4", frames=5)
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.full((48, 64, 3), 90, np.uint8))
    fake = ["--backend", "tests.support.fakes:ZeroBackend", "--resolution", "64x48", "--no-video"]
    assert run_stream.main([str(clip), "-o", str(tmp_path / "one"), *fake]) == 0
    assert sorted(os.listdir(tmp_path / "one")) == sorted(["clip.jsonl", *RUN_TABLES])
    assert run_stream.main([str(photo), "-o", str(tmp_path / "img"), *fake,
                            "--format", "jsonl", "coco"]) == 0
    assert sorted(os.listdir(tmp_path / "img")) == sorted(["keypoints.coco.json", "photo.coco.json",
                                                          "photo.jsonl", *RUN_TABLES])
