"""Outputs commit as a set (issue 11, items 2-5 and 8): real files, real signals, a real tmpfs.

The command line runs as a subprocess with the fake backends of tests/support/fakes.py
(``SlowBackend`` paces the frames so that a signal lands mid-run).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

import run_stream
from stages.outputs import atomic
from stages.errors import OutputError
from stages.outputs.keypoint_log import read_keypoint_log
from stages.outputs.sample import make_test_clip
from tests.support.processes import tmpfs
from tests.support.tables import RUN_TABLES

ROOT = Path(__file__).resolve().parents[2]
FAKE = ["--backend", "tests.support.fakes:ZeroBackend", "--resolution", "64x48"]
SLOW = ["--backend", "tests.support.fakes:SlowBackend", "--resolution", "64x48"]


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative name -> bytes)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _popen(args: list, delay: str = "0.02") -> subprocess.Popen:
    env = dict(os.environ, POSESTREAM_FAKE_DELAY=delay, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, str(ROOT / "run_stream.py"), *map(str, args)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_partial(folder: Path, name: str, proc: subprocess.Popen, lines: int) -> Path:
    """The JSON Lines file of ``name`` being written (in its work folder,
    ``stages.outputs.resume``), once it holds ``lines`` lines."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        for partial in folder.glob(f".partial/*/{name}.partial"):
            try:
                if partial.read_text().count("\n") >= lines:
                    return partial
            except FileNotFoundError:
                pass
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"no progress: {proc.communicate()}")


def _stop(proc: subprocess.Popen, sig: int) -> tuple[str, str]:
    proc.send_signal(sig)
    try:
        return proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()


# -- item 2: a stopped rerun leaves the previous complete outputs --------------

@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stopped_rerun_keeps_the_complete_outputs_and_sets_its_own_aside(tmp_path, capsys,
                                                                           sig, code):
    clip = make_test_clip(tmp_path / "clip.mp4", frames=300)
    out = tmp_path / "out"
    assert run_stream.main([str(clip), "-o", str(out), *FAKE, "--format", "jsonl", "coco"]) == 0
    capsys.readouterr()
    before = _snapshot(out)
    proc = _popen([clip, "-o", out, *SLOW, "--format", "jsonl", "coco"])
    _wait_for_partial(out, "clip.jsonl", proc, lines=5)
    stdout, stderr = _stop(proc, sig)
    assert proc.returncode == code, stderr
    after = _snapshot(out)
    assert {k: v for k, v in after.items() if not k.startswith(".partial/")} == before  # untouched
    # this run's work is kept in its work folder, under names no glob of the outputs finds
    work = out / ".partial" / "clip"
    kept = read_keypoint_log(work / "clip.jsonl.partial")
    assert 5 <= len(kept) < 300 and [r["frame"] for r in kept] == list(range(len(kept)))
    assert json.loads((work / "clip.coco.json.partial").read_text()) == []
    assert stdout.strip().splitlines()[-1] == (
        f"partial: {len(kept)} of 300 frames done, kept in {work}; the outputs there before "
        "this run stay; the same command starts over")  # 12 s of video: no checkpoint yet
    assert sorted(os.listdir(out)) == sorted([".partial", *before])
    # a complete run replaces the set and clears the partial results
    assert run_stream.main([str(clip), "-o", str(out), *FAKE, "--format", "jsonl", "coco"]) == 0
    assert sorted(os.listdir(out)) == sorted(["clip.coco.json", "clip.jsonl", "clip.mp4",
                                              "keypoints.coco.json", *RUN_TABLES])


def test_a_failed_run_never_publishes_under_the_final_names(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("POSESTREAM_FAKE_FAIL_AT", "20")
    clip = make_test_clip(tmp_path / "clip.mp4", frames=60)
    out = tmp_path / "out"
    code = run_stream.main([str(clip), "-o", str(out), "--backend", "tests.support.fakes:FailingBackend",
                            "--resolution", "64x48", "--workers", "1", "--format", "jsonl",
                            "openpose"])
    assert code == 1 and "fake accelerator fault" in capsys.readouterr().err
    assert os.listdir(out) == []  # nothing published, nothing left behind


# -- item 3: the manifest is never trusted beyond what the outputs show ---------

def test_a_stopped_force_rerun_with_coco_only_keeps_the_set_and_its_manifest(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    make_test_clip(data / "a.mp4", frames=300)
    out = tmp_path / "out"
    args = [data, "-o", out, "--format", "coco", "--files-in-flight", "1"]
    assert run_stream.main([str(a) for a in args] + FAKE) == 0
    capsys.readouterr()
    before = _snapshot(out)
    proc = _popen(args + SLOW + ["--force"])
    deadline = time.monotonic() + 60
    while not _has_a_fragment(out, "a.mp4") and time.monotonic() < deadline:
        time.sleep(0.02)  # a cut-short rerun: some frames are done
    _stop(proc, signal.SIGINT)
    assert proc.returncode == 130
    after = _snapshot(out)
    assert {k: v for k, v in after.items()
            if not k.startswith(".partial/") and k != "batch-summary.json"} == \
        {k: v for k, v in before.items() if k != "batch-summary.json"}
    assert run_stream.main([str(a) for a in args] + FAKE) == 0  # resumes: nothing to redo
    rows = json.loads((out / "batch-summary.json").read_text())["files"]
    assert [r["status"] for r in rows] == ["skipped"]


def _has_a_fragment(folder: Path, name: str) -> bool:
    """Whether the video of ``name`` being written (its first piece, in the work folder
    of ``stages.outputs.resume``) holds a finished fragment (frames written)."""
    stem = name.rsplit(".", 1)[0]
    for partial in folder.glob(f".partial/{stem}/.piece-000001.mp4.partial-*"):
        try:
            if b"moof" in partial.read_bytes():
                return True
        except FileNotFoundError:
            pass
    return False


def test_resume_checks_every_output_not_only_the_jsonl(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    make_test_clip(data / "a.mp4", frames=12)
    out = tmp_path / "out"
    args = [str(data), "-o", str(out), "--format", "coco", "openpose", *FAKE]

    def rerun() -> str:
        assert run_stream.main(args) == 0
        capsys.readouterr()
        return json.loads((out / "batch-summary.json").read_text())["files"][0]["status"]

    assert rerun() == "done" and rerun() == "skipped"
    (out / "a.openpose" / "a_000000000011_keypoints.json").unlink()  # a frame missing
    assert rerun() == "done" and len(os.listdir(out / "a.openpose")) == 12
    coco = out / "a.coco.json"
    coco.write_text(coco.read_text()[:-3])  # cut short: no longer a JSON array
    assert rerun() == "done" and json.loads(coco.read_text()) == []
    shutil.copy(make_test_clip(tmp_path / "short.mp4", frames=5), out / "a.mp4")  # short video
    assert rerun() == "done" and _frames(out / "a.mp4") == 12
    assert rerun() == "skipped"


def test_a_failed_commit_restores_the_previous_set_and_drops_the_manifest(tmp_path):
    old = {"a.mp4": b"old video", "a.jsonl": b"old log\n"}
    for name, data in old.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "a.manifest.json").write_text("{}")
    new_video = atomic.partial_path(tmp_path / "a.mp4")
    new_video.write_bytes(b"new video")
    staged = [atomic.Staged(new_video, tmp_path / "a.mp4"),
              atomic.Staged(atomic.partial_path(tmp_path / "a.jsonl"), tmp_path / "a.jsonl")]  # never written
    with pytest.raises(OutputError, match="the previous ones are kept"):
        atomic.commit_set(staged, remove_first=[tmp_path / "a.manifest.json"])
    assert sorted(os.listdir(tmp_path)) == ["a.jsonl", "a.mp4"]
    assert {n: (tmp_path / n).read_bytes() for n in old} == old


# -- item 4: same stem, different extensions -----------------------------------

def test_inputs_with_the_same_stem_never_collide(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    make_test_clip(data / "x.mp4", frames=9)
    make_test_clip(data / "x.mkv", frames=7)
    cv2.imwrite(str(data / "x.jpg"), np.full((48, 64, 3), 120, np.uint8))
    make_test_clip(data / "y.mp4", frames=3)
    out = tmp_path / "out"
    code = run_stream.main([str(data), "-o", str(out), *FAKE, "--files-in-flight", "3"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "batch" in printed and "x.mkv" in printed  # the table
    for name, frames in (("x.mp4", 9), ("x.mkv", 7), ("x.jpg", 1)):
        records = read_keypoint_log(out / f"{name}.jsonl")
        assert [r["frame"] for r in records] == list(range(frames))
        assert (out / f"{name}.manifest.json").is_file()
    assert _frames(out / "x.mp4.mp4") == 9 and _frames(out / "x.mkv.mp4") == 7
    assert cv2.imread(str(out / "x.jpg")).shape == (48, 64, 3)
    assert _frames(out / "y.mp4") == 3 and (out / "y.jsonl").is_file()  # no clash: the stem
    assert not [p for p in os.listdir(out) if p.startswith(".") or ".partial" in p]
    assert run_stream.main([str(data), "-o", str(out), *FAKE]) == 0  # each has its own manifest
    rows = json.loads((out / "batch-summary.json").read_text())["files"]
    assert {r["status"] for r in rows} == {"skipped"}
    # a single-file run names its outputs the same way
    assert run_stream.main([str(data / "x.mkv"), "-o", str(tmp_path / "one"), *FAKE]) == 0
    assert sorted(os.listdir(tmp_path / "one")) == sorted(["x.mkv.jsonl", "x.mkv.mp4", *RUN_TABLES])


def test_partial_names_are_unique_per_writer(tmp_path):
    first, second = atomic.AtomicTextFile(tmp_path / "k.jsonl"), atomic.AtomicTextFile(tmp_path / "k.jsonl")
    assert first.tmp != second.tmp and first.tmp.exists() and second.tmp.exists()
    assert str(os.getpid()) in first.tmp.name
    first.write("first\n")
    second.write("second\n")
    first.close()
    second.close()
    assert os.listdir(tmp_path) == ["k.jsonl"] and (tmp_path / "k.jsonl").read_text() == "second\n"


# -- item 5: a full disk --------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 300 KB tmpfs (needs root)."""
    with tmpfs(tmp_path / "small", "300k") as mount:
        yield mount


def test_a_full_disk_publishes_nothing_and_keeps_the_previous_set(tmp_path, small_disk, capsys):
    clip = make_test_clip(tmp_path / "clip.mp4", frames=45)
    args = [str(clip), *FAKE, "--format", "jsonl", "openpose", "coco"]
    first = small_disk / "first"
    assert run_stream.main([*args, "-o", str(first)]) == 0  # 45 one-page files and a few more
    before = _snapshot(first)
    assert len(before) == 48 + 1 + len(RUN_TABLES)  # and the run's dataset and tables
    code = run_stream.main([*args, "-o", str(first)])  # no room for a second set
    err = capsys.readouterr().err
    assert code == 1 and "No space left" in err and len(err.strip().splitlines()) == 1, err
    assert _snapshot(first) == before  # and the failed run's files are gone
    assert sorted(os.listdir(first)) == sorted(["clip.coco.json", "clip.jsonl", "clip.mp4",
                                                "clip.openpose", "keypoints.coco.json", *RUN_TABLES])
    fresh = small_disk / "fresh"  # a first run that fails publishes nothing at all
    code = run_stream.main([str(make_test_clip(tmp_path / "long.mp4", frames=120)), *FAKE,
                            "--format", "jsonl", "openpose", "coco", "-o", str(fresh)])
    assert code == 1 and os.listdir(fresh) == []


def test_a_full_disk_in_a_batch_fails_that_file_and_the_batch_ends_with_its_table(
        tmp_path, small_disk, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a", "b"):
        make_test_clip(data / f"{name}.mp4", frames=45)
    out = small_disk / "out"
    code = run_stream.main([str(data), "-o", str(out), *FAKE, "--files-in-flight", "1",
                            "--format", "jsonl", "openpose", "coco"])
    printed = capsys.readouterr().out
    assert code == 1 and "batch" in printed
    rows = {r["input"]: r for r in json.loads((out / "batch-summary.json").read_text())["files"]}
    assert rows["a.mp4"]["status"] == "done" and rows["b.mp4"]["status"] == "failed"
    assert "No space left" in rows["b.mp4"]["error"]
    assert len(read_keypoint_log(out / "a.jsonl")) == 45 and (out / "a.manifest.json").is_file()
    assert sorted(os.listdir(out)) == sorted(["a.coco.json", "a.jsonl", "a.manifest.json", "a.mp4",
                                              "a.openpose", "batch-summary.json",
                                              "keypoints.coco.json", *RUN_TABLES])
    dataset = json.loads((out / "keypoints.coco.json").read_text())  # the completed input only
    assert {image["file_name"] for image in dataset["images"]} == {"a.mp4"}


# -- item 8: what a killed run leaves ---------------------------------------------

def test_a_killed_runs_work_stays_in_its_work_folder_readable_and_the_next_run_leaves_it(
        tmp_path, capsys):
    clip = make_test_clip(tmp_path / "long.mp4", frames=2000)
    out = tmp_path / "out"
    proc = _popen([clip, "-o", out, *SLOW], delay="0.005")
    _wait_for_partial(out, "long.jsonl", proc, lines=120)
    proc.kill()
    proc.wait(10)
    assert os.listdir(out) == [".partial"]  # nothing under a final name, nothing beside them
    work = out / ".partial" / "long"
    records = read_keypoint_log(work / "long.jsonl.partial")  # readable up to the kill
    assert len(records) >= 120 and [r["frame"] for r in records] == list(range(len(records)))
    [piece] = work.glob(f".piece-000001.mp4.partial-{proc.pid}-*")  # fragmented: readable
    assert 25 <= _frames(piece) <= len(records)
    other = make_test_clip(tmp_path / "other.mp4", frames=3)
    assert run_stream.main([str(other), "-o", str(out), *FAKE]) == 0  # the next run there
    assert sorted(os.listdir(out)) == sorted([".partial", "other.jsonl", "other.mp4", *RUN_TABLES])
    assert len(read_keypoint_log(work / "long.jsonl.partial")) == len(records)  # left as it was
    capsys.readouterr()


def test_a_run_stopped_before_its_first_frame_lists_and_creates_no_output(tmp_path):
    from stages.jobs.file_job import FileJob
    from stages.settings import JobConfig

    clip = make_test_clip(tmp_path / "clip.mp4", frames=20)
    out = tmp_path / "out"
    job = FileJob(clip, out, JobConfig(backend="tests.support.fakes:ZeroBackend", resolution=(64, 48)))
    job.cancel()  # e.g. a signal while the model loads
    summary = job.run()
    assert summary.interrupted and summary.outputs == () and summary.frames_written == 0
    assert os.listdir(out) == []


def test_only_partials_of_dead_processes_of_this_host_are_touched(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    make_test_clip(data / "a.mp4", frames=4)
    out = tmp_path / "out"
    assert run_stream.main([str(data), "-o", str(out), *FAKE]) == 0
    dead = _dead_pid()
    host = atomic._HOST
    names = {f".a.jsonl.partial-{dead}-0123abcd@{host}": "a.partial.jsonl",  # set aside
             f".a.csv.partial-{dead}-0123abcd@{host}": "a.partial.csv",      # set aside
             f".a.mp4.manifest.json.partial-{dead}-0123abcd@{host}": None,    # removed
             f".a.jsonl.old-{dead}-0123abcd@{host}": None,                    # removed
             f".a.jsonl.partial-{dead}-0123abcd@otherhost": "keep",          # not ours to judge
             f".a.jsonl.partial-{os.getppid()}-0123abcd@{host}": "keep"}     # still running
    for name in names:
        (out / name).write_text('{"frame": 0}\n')
    assert run_stream.main([str(data), "-o", str(out), *FAKE]) == 0  # all skipped
    capsys.readouterr()
    left = set(os.listdir(out))
    for name, fate in names.items():
        assert (name in left) == (fate == "keep"), name
        assert fate in (None, "keep") or fate in left, fate


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_partials_of_a_killed_process_not_yet_reaped_are_set_aside(tmp_path, capsys):
    # A SIGKILLed run whose parent has not reaped it yet is a zombie: kill(pid, 0)
    # still finds it, but it will never finish its files.
    out = tmp_path / "out"
    out.mkdir()
    zombie = subprocess.Popen(["sleep", "60"])
    try:
        zombie.kill()
        os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
        name = f".a.jsonl.partial-{zombie.pid}-0123abcd@{atomic._HOST}"
        (out / name).write_text('{"frame": 0}\n')
        other = make_test_clip(tmp_path / "other.mp4", frames=3)
        assert run_stream.main([str(other), "-o", str(out), *FAKE]) == 0
        capsys.readouterr()
        assert sorted(os.listdir(out)) == sorted(["a.partial.jsonl", "other.jsonl", "other.mp4",
                                                  *RUN_TABLES])
    finally:
        zombie.wait()
