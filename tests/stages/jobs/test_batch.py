"""Batches: inputs, mirrored outputs, resume, failure isolation, several files in flight."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import run_stream
from stages.jobs.batch import BatchJob
from stages.errors import InputError, InputNotFoundError
from stages.sources.inputs import expand_inputs
from stages.settings import JobConfig
from stages.outputs.keypoint_log import read_keypoint_log
from stages.outputs.sample import make_test_clip

ROOT = Path(__file__).resolve().parents[3]
FAKE = JobConfig(backend="tests.support.fakes:ZeroBackend", resolution=(64, 48), workers=2)


@pytest.fixture
def tree(tmp_path):
    """data/a/clip.mp4 (12 frames), data/b/clip.mp4 (7), data/b/deep/x.mov (5), data/notes.txt"""
    data = tmp_path / "data"
    for folder in ("a", "b/deep"):
        (data / folder).mkdir(parents=True)
    make_test_clip(data / "a" / "clip.mp4", frames=12)
    make_test_clip(data / "b" / "clip.mp4", frames=7)
    make_test_clip(data / "b" / "deep" / "x.mov", frames=5)
    (data / "notes.txt").write_text("not media")
    return data


def test_inputs_expand_dirs_globs_and_lists_into_mirrored_relative_paths(tree, tmp_path):
    items = expand_inputs([str(tree)])
    assert [i.key for i in items] == ["a/clip.mp4", "b/clip.mp4", "b/deep/x.mov"]
    listing = tmp_path / "list.txt"
    listing.write_text(f"# one per line\n{tree / 'b' / 'clip.mp4'}\n")
    items = expand_inputs([str(tree / "a" / "*.mp4")], listing)
    assert [i.key for i in items] == ["a/clip.mp4", "b/clip.mp4"]
    assert len(expand_inputs([str(tree / "a" / "clip.mp4"), str(tree / "a")])) == 1


def test_input_errors_name_the_input(tmp_path):
    with pytest.raises(InputNotFoundError, match="nope"):
        expand_inputs([str(tmp_path / "nope")])
    with pytest.raises(InputError, match="matches no file"):
        expand_inputs([str(tmp_path / "*.mp4")])


def test_same_named_files_get_their_own_outputs_and_manifests(tree, tmp_path):
    out = tmp_path / "out"
    reports = BatchJob(expand_inputs([str(tree)]), out, FAKE, lanes=3).run()
    assert {k: (r.status, r.frames) for k, r in reports.items()} == {
        "a/clip.mp4": ("done", 12), "b/clip.mp4": ("done", 7), "b/deep/x.mov": ("done", 5)}
    for rel, n in (("a/clip", 12), ("b/clip", 7), ("b/deep/x", 5)):
        records = read_keypoint_log(out / f"{rel}.jsonl")
        assert [r["frame"] for r in records] == list(range(n))
        assert (out / f"{rel}.mp4").is_file() and (out / f"{rel}.manifest.json").is_file()
    assert not list(out.rglob(".*partial*"))


def test_a_second_run_skips_complete_inputs_and_force_redoes_them(tree, tmp_path):
    out = tmp_path / "out"
    BatchJob(expand_inputs([str(tree)]), out, FAKE).run()
    stamp = (out / "a" / "clip.mp4").stat().st_mtime_ns
    again = BatchJob(expand_inputs([str(tree)]), out, FAKE)
    assert again.todo == 0
    skipped = again.run()
    assert {r.status for r in skipped.values()} == {"skipped"}
    assert (out / "a" / "clip.mp4").stat().st_mtime_ns == stamp
    # a skipped file still says what processed it, from its manifest
    assert skipped["a/clip.mp4"].engine["backend"] == "tests.support.fakes:ZeroBackend"
    other = JobConfig(backend="tests.support.fakes:ZeroBackend", resolution=(64, 48), preset="ultrafast")
    assert BatchJob(expand_inputs([str(tree)]), out, other).todo == 3  # other settings: redo
    forced = BatchJob(expand_inputs([str(tree)]), out, FAKE, force=True)
    assert forced.todo == 3 and {r.status for r in forced.run().values()} == {"done"}


def test_a_changed_input_is_redone(tree, tmp_path):
    out = tmp_path / "out"
    BatchJob(expand_inputs([str(tree)]), out, FAKE).run()
    make_test_clip(tree / "b" / "clip.mp4", frames=9)
    job = BatchJob(expand_inputs([str(tree)]), out, FAKE)
    assert job.todo == 1
    assert job.run()["b/clip.mp4"].frames == 9


def test_bad_files_are_reported_and_skipped_and_the_batch_goes_on(tree, tmp_path, capsys):
    (tree / "broken.mp4").write_text("this is text, not video")
    full = make_test_clip(tmp_path / "full.mp4", frames=60, size=(160, 120))
    (tree / "cut.mp4").write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.6)])
    out = tmp_path / "out"
    code = run_stream.main([str(tree), "-o", str(out), "--backend", "tests.support.fakes:ZeroBackend",
                            "--resolution", "64x48"])
    printed = capsys.readouterr().out
    assert code == 1
    rows = {r["input"]: r for r in json.loads((out / "batch-summary.json").read_text())["files"]}
    assert rows["broken.mp4"]["status"] == "failed" and "broken.mp4" in rows["broken.mp4"]["error"]
    assert rows["cut.mp4"]["status"] == "done" and rows["cut.mp4"]["truncated"]
    assert 0 < rows["cut.mp4"]["frames"] < 60
    assert rows["a/clip.mp4"]["frames"] == 12 and rows["b/deep/x.mov"]["status"] == "done"
    assert rows["a/clip.mp4"]["engine"]["backend"] == "tests.support.fakes:ZeroBackend"
    assert rows["a/clip.mp4"]["engine"]["resolution"] == "64x48"
    assert "engine" not in rows["broken.mp4"]  # nothing ran it
    assert "broken.mp4" in printed and "failed" in printed


def test_sigkill_mid_batch_then_rerun_completes_everything_once(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        make_test_clip(data / f"c{i}.mp4", frames=40, size=(64, 48))
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "run_stream.py"), str(data), "-o", str(out),
           "--backend", "tests.support.fakes:SlowBackend", "--resolution", "64x48", "--files-in-flight", "1"]
    env = dict(os.environ, POSESTREAM_FAKE_DELAY="0.01", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if list(out.glob("*.manifest.json")) and list(out.glob(".*partial*")):
                break  # one file complete, another half-written
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    done_before = {p.name.split(".")[0] for p in out.glob("*.manifest.json")}
    assert 1 <= len(done_before) < 4
    code = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120).returncode
    assert code == 0
    rows = {r["input"]: r for r in json.loads((out / "batch-summary.json").read_text())["files"]}
    for name, row in rows.items():
        assert row["status"] == ("skipped" if name.split(".")[0] in done_before else "done"), rows
        assert [r["frame"] for r in read_keypoint_log(out / name.replace(".mp4", ".jsonl"))] == list(range(40))
    # the rerun set aside what the killed process was writing, then replaced it
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") or ".partial" in p.name]
    shutil.rmtree(out)


def test_sigint_mid_batch_keeps_finished_files_and_redoes_the_rest(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        make_test_clip(data / f"c{i}.mp4", frames=60, size=(64, 48))
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "run_stream.py"), str(data), "-o", str(out),
           "--backend", "tests.support.fakes:SlowBackend", "--resolution", "64x48", "--files-in-flight", "1"]
    env = dict(os.environ, POSESTREAM_FAKE_DELAY="0.01", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and not list(out.glob("*.manifest.json")):
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130
    summary = json.loads((out / "batch-summary.json").read_text())["files"]
    rows = {r["input"]: r["status"] for r in summary}
    assert "done" in rows.values() and "done" != rows["c2.mp4"]
    for row in summary:  # an unfinished input: nothing under its final names, its work listed
        stem = row["input"].split(".")[0]
        if row["status"] != "done":
            assert not list(out.glob(f"{stem}.*")) and row["outputs"] == []
            work = out / ".partial" / stem  # none when it was stopped before its first frame
            assert row["partial"] == ([str(work)] if work.is_dir() else [])
    assert {p.name for p in out.glob(".*")} <= {".partial"}
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0
    rows2 = {r["input"]: r["status"] for r in json.loads((out / "batch-summary.json").read_text())["files"]}
    assert all((rows2[k] == "skipped") == (v == "done") for k, v in rows.items())
    for i in range(3):
        assert len(read_keypoint_log(out / f"c{i}.jsonl")) == 60
