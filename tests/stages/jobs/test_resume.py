"""Resuming file, batch and cluster runs from a checkpoint (issue 23, item 2), in process.

A run is cancelled from its ``on_result`` callback once it wrote past the first cut
(30 s of source time: frame 150 of a 5 FPS clip), as a stop signal cancels it; a
second run resumes and its outputs must equal those of an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import shutil
from fractions import Fraction

import pytest

from stages.jobs.batch import BatchJob
from stages.jobs.cluster import process_file
from stages.jobs.file_job import FileJob
from stages.outputs.keypoint_log import read_keypoint_log
from stages.outputs.sample import make_test_clip
from stages.settings import JobConfig
from stages.sources.inputs import expand_inputs
from tests.support.same_outputs import assert_same_outputs

FORMATS = ("jsonl", "csv", "coco", "openpose")
CONFIG = dict(backend="tests.support.fakes:BlinkingPersonBackend", workers=1, track_memory=0.1,
              formats=FORMATS)
FRAMES = 200  # 40 s at 5 FPS: a cut at 30 s (frame 150)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_test_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=FRAMES,
                          fps=Fraction(5))


def _cancel_after(job, index: int):
    def on_result(result) -> None:
        if result.frame.index >= index:
            job.cancel()
    return on_result


def _file_runs(clip, out, config, stop_at: int):
    """A file run cancelled once it wrote frame ``stop_at``, then a resumed one."""
    first = FileJob(clip, out, config)
    stopped = first.run(on_result=_cancel_after(first, stop_at))
    return stopped, FileJob(clip, out, config).run()


@pytest.mark.slow
@pytest.mark.parametrize("selection", [{}, {"frame_step": 3}, {"start": 12.2, "end": 38.0}],
                         ids=["all", "frame-step", "range"])
def test_a_file_run_resumes_where_its_checkpoint_is_and_writes_what_a_whole_run_writes(
        tmp_path, clip, selection):
    config = JobConfig(**CONFIG, **selection)
    whole = FileJob(clip, tmp_path / "whole", config).run()
    stopped, resumed = _file_runs(clip, tmp_path / "out", config, stop_at=160)
    assert stopped.interrupted and stopped.checkpoint_frames > 0
    assert stopped.partial == tmp_path / "out" / ".partial" / "clip"
    assert resumed.resumed_from == stopped.checkpoint_frames
    assert resumed.frames_written == whole.frames_written - resumed.resumed_from
    assert resumed.frames_done == whole.frames_done == whole.frames_written
    assert_same_outputs(tmp_path / "out", tmp_path / "whole", "clip")
    assert not (tmp_path / "out" / ".partial").exists()


def test_without_video_the_keypoint_files_resume_alike(tmp_path, clip):
    config = JobConfig(**CONFIG, video=False)
    FileJob(clip, tmp_path / "whole", config).run()
    stopped, resumed = _file_runs(clip, tmp_path / "out", config, stop_at=155)
    assert resumed.resumed_from == stopped.checkpoint_frames == 150
    assert_same_outputs(tmp_path / "out", tmp_path / "whole", "clip", video=False)
    assert sorted(os.listdir(tmp_path / "out")) == sorted(os.listdir(tmp_path / "whole"))


def test_a_checkpoint_of_other_settings_is_not_resumed(tmp_path, clip):
    config = JobConfig(**CONFIG)
    first = FileJob(clip, tmp_path / "out2", config)
    first.run(on_result=_cancel_after(first, 160))
    other = FileJob(clip, tmp_path / "out2", JobConfig(**{**CONFIG, "track_memory": 0.2})).run()
    assert other.resumed_from == 0 and other.frames_written == FRAMES


def test_a_batch_keeps_an_unfinished_inputs_work_aside_and_resumes_it(tmp_path, clip):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(clip, data / "a.mp4")
    make_test_clip(data / "b.mp4", frames=12, fps=Fraction(5))
    items = expand_inputs([str(data)])
    config = JobConfig(**CONFIG)
    BatchJob(items, tmp_path / "whole", config, lanes=1).run()
    out = tmp_path / "out"
    first = BatchJob(items, out, config, lanes=1)
    reports = first.run(on_result=_cancel_after(first, 160))
    a = reports["a.mp4"]
    assert (a.status, a.outputs, a.partial) == ("interrupted", [], [str(out / ".partial" / "a")])
    assert not [n for n in os.listdir(out) if n.startswith("a.")]  # nothing under a final name
    reports = BatchJob(items, out, config, lanes=1).run()
    assert reports["a.mp4"].status == "done" and reports["a.mp4"].resumed_from == 150
    assert reports["a.mp4"].as_dict()["frames_processed"] == FRAMES - 150
    assert reports["a.mp4"].frames == FRAMES and reports["a.mp4"].partial == []
    for stem in ("a", "b"):
        assert_same_outputs(out, tmp_path / "whole", stem)
    manifest = json.loads((out / "a.manifest.json").read_text())
    assert manifest["frames"] == FRAMES
    assert manifest["people"] == sum(len(r["people"]) for r in read_keypoint_log(out / "a.jsonl"))


def test_a_cluster_task_resumes_the_checkpoint_a_stopped_run_left(tmp_path, clip):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(clip, data / "a.mp4")
    [item] = expand_inputs([str(data)])
    config = JobConfig(**CONFIG)
    BatchJob([item], tmp_path / "whole", config).run()
    out = tmp_path / "out"
    first = BatchJob([item], out, config)
    first.run(on_result=_cancel_after(first, 160))  # e.g. a worker that was stopped
    report = process_file(str(item.path), str(item.rel), str(out), config)
    assert report["status"] == "done" and report["frames_resumed_from"] == 150
    assert report["frames_processed"] == FRAMES - 150
    assert_same_outputs(out, tmp_path / "whole", "a")
    fresh = process_file(str(item.path), str(item.rel), str(out), config, restart=True)
    assert fresh["frames_resumed_from"] == 0 and fresh["frames_processed"] == FRAMES
