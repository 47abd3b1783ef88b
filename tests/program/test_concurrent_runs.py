"""File and batch runs writing the same outputs at the same time (issue 21, item 2): the work
is done twice, nothing is lost, and both runs finish with a complete, consistent set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest

from stages.errors import OutputError
from stages.outputs import atomic
from stages.outputs.atomic import Staged, commit_set, partial_path
from stages.outputs.keypoint_log import read_keypoint_log
from stages.outputs.sample import make_test_clip
from tests.support.tables import RUN_TABLES

ROOT = Path(__file__).resolve().parents[2]
SLOW = ["--backend", "tests.support.fakes:SlowBackend", "--resolution", "64x48"]
FRAMES = 30


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def _both(args: list) -> list[subprocess.CompletedProcess]:
    """Start two runs of ``args`` at once and wait for both."""
    env = dict(os.environ, POSESTREAM_FAKE_DELAY="0.02", PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, str(ROOT / "run_stream.py"), *map(str, args)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    done = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def _assert_complete(folder: Path, stem: str) -> None:
    assert [r["frame"] for r in read_keypoint_log(folder / f"{stem}.jsonl")] == list(range(FRAMES))
    assert _frames(folder / f"{stem}.mp4") == FRAMES


def test_two_file_runs_into_one_folder_both_finish_with_one_complete_set(tmp_path):
    clip = make_test_clip(tmp_path / "clip.mp4", frames=FRAMES, size=(96, 64))
    out = tmp_path / "out"
    for run in _both([clip, "-o", out, *SLOW]):
        assert run.returncode == 0, run.stderr
    assert sorted(os.listdir(out)) == sorted(  # nothing hidden, nothing aside
        ["clip.jsonl", "clip.mp4", *RUN_TABLES])
    _assert_complete(out, "clip")


def test_two_batches_into_one_folder_both_finish_and_every_input_is_complete(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a", "b"):
        make_test_clip(inputs / f"{name}.mp4", frames=FRAMES, size=(96, 64))
    out = tmp_path / "out"
    for run in _both([inputs, "-o", out, *SLOW]):
        assert run.returncode == 0, run.stderr
    assert sorted(os.listdir(out)) == sorted(["a.jsonl", "a.manifest.json", "a.mp4", "b.jsonl",
                                              "b.manifest.json", "b.mp4", "batch-summary.json",
                                              *RUN_TABLES])
    json.loads((out / "batch-summary.json").read_text())  # whole: one run's, not a mix
    for name in ("a", "b"):
        _assert_complete(out, name)
        manifest = json.loads((out / f"{name}.manifest.json").read_text())
        assert manifest["frames"] == FRAMES and sorted(manifest["outputs"]) == [f"{name}.jsonl",
                                                                                f"{name}.mp4"]


def _staged(folder: Path, names: list[str], text: str) -> list[Staged]:
    staged = []
    for name in names:
        tmp = partial_path(folder / name)
        tmp.write_text(text)
        staged.append(Staged(tmp, folder / name))
    return staged


@pytest.mark.parametrize("index", [0, 1])
def test_a_commit_whose_old_output_another_run_just_moved_still_puts_its_set_in_place(
        tmp_path, monkeypatch, index):
    """The other run's commit moves the old output aside between this one's look and its own
    move: this run's set goes in place all the same, whole."""
    names = ["clip.mp4", "clip.jsonl"]
    for name in names:
        (tmp_path / name).write_text("old")
    staged = _staged(tmp_path, names, "new")
    replace = os.replace

    def racing(src, dst):
        if Path(src) == tmp_path / names[index] and ".old-" in Path(dst).name:
            replace(src, partial_path(Path(src), "old"))  # the other run got there first
        replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", racing)
    commit_set(staged)
    monkeypatch.undo()
    assert {n: (tmp_path / n).read_text() for n in names} == {n: "new" for n in names}
    assert [p.name for p in tmp_path.iterdir() if ".partial-" in p.name] == []


def test_a_commit_whose_own_file_is_missing_still_fails_and_keeps_the_old_output(tmp_path):
    (tmp_path / "clip.jsonl").write_text("old")
    with pytest.raises(OutputError):
        commit_set([Staged(tmp_path / ".clip.jsonl.partial-1", tmp_path / "clip.jsonl")])
    assert (tmp_path / "clip.jsonl").read_text() == "old"
    assert os.listdir(tmp_path) == ["clip.jsonl"]
